/*
 * The floor under the exec gate's per-exec cost: what the kernel mechanisms it is built on cost
 * with nothing else done (no reads of the caller, no identification, no policy, no audit).
 *
 * A workload process forks and execs /bin/true N times; a supervisor (this process) serves its
 * exec notifications in one of these modes:
 *   bare       no seccomp filter at all (the workload's own baseline)
 *   allow      a seccomp filter that allows everything (what every sandbox pays anyway)
 *   continue   execve/execveat notified, answered with SECCOMP_USER_NOTIF_FLAG_CONTINUE alone
 *              (not race-free on its own: see seccomp_unotify(2))
 *   seize      notified; PTRACE_SEIZE (TRACEEXEC) before CONTINUE, wait for the exec event,
 *              detach: the smallest ptrace round that makes CONTINUE safe for an exec that succeeds
 *   interrupt  as seize, plus PTRACE_INTERRUPT right after CONTINUE, as lasso's gate does so that
 *              a failed exec (no exec event) cannot leave the supervisor waiting
 * Modes are interleaved round by round so that a change in the machine's load lands in all of
 * them; the per-exec median over rounds is printed for each, and its difference to `allow`.
 *
 * Build: cc -O2 -o gate_floor benches/gate_floor.c   Run as root: ./gate_floor [N] [ROUNDS]
 * benches/gate.sh builds and runs it beside lasso's own gate.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif

enum { BARE, ALLOW, CONTINUE, SEIZE, INTERRUPT, MODES };
static const char *names[MODES] = {"bare", "allow", "continue", "seize", "interrupt"};

static void die(const char *what) {
    perror(what);
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int install(int notify) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execve, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execveat, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, notify ? SECCOMP_RET_USER_NOTIF : SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        die("no_new_privs");
    int fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                     notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0, &prog);
    if (fd < 0)
        die("seccomp");
    return fd;
}

static void send_fd(int sock, int fd) {
    char b = 0;
    struct iovec io = {.iov_base = &b, .iov_len = 1};
    char ctl[CMSG_SPACE(sizeof(int))];
    memset(ctl, 0, sizeof ctl);
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (sendmsg(sock, &m, 0) != 1)
        die("sendmsg");
}

static int recv_fd(int sock) {
    char b;
    struct iovec io = {.iov_base = &b, .iov_len = 1};
    char ctl[CMSG_SPACE(sizeof(int))];
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    if (recvmsg(sock, &m, 0) != 1)
        die("recvmsg");
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        die("no fd");
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

/* The workload: N fork + execve(/bin/true) + wait; writes the seconds it took to `sock`. */
static void workload(int mode, int n, int sock) {
    if (mode != BARE) {
        int fd = install(mode != ALLOW);
        if (mode != ALLOW) {
            send_fd(sock, fd);
            close(fd);
        }
    }
    char go;
    if (read(sock, &go, 1) != 1)
        die("read go");
    char *argv[] = {"true", NULL}, *envp[] = {NULL};
    double t0 = now();
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) {
            execve("/bin/true", argv, envp);
            _exit(127);
        }
        int st;
        if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st))
            die("exec loop");
    }
    double dt = now() - t0;
    if (write(sock, &dt, sizeof dt) != sizeof dt)
        die("write result");
    _exit(0);
}

static void serve_one(int lfd, int mode) {
    struct seccomp_notif req;
    memset(&req, 0, sizeof req);
    if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &req)) {
        if (errno == ENOENT || errno == EINTR)
            return;
        die("RECV");
    }
    pid_t tid = req.pid;
    int traced = 0;
    if (mode >= SEIZE) {
        if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL))
            die("SEIZE");
        traced = 1;
    }
    struct seccomp_notif_resp resp = {.id = req.id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
    if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp))
        die("SEND");
    if (!traced)
        return;
    if (mode == INTERRUPT)
        ptrace(PTRACE_INTERRUPT, tid, 0, 0);
    for (;;) {
        int st;
        pid_t p = waitpid(tid, &st, __WALL);
        if (p < 0) {
            if (errno == EINTR)
                continue;
            die("waitpid tracee");
        }
        if (WIFSTOPPED(st)) {
            int ev = st >> 16;
            ptrace(PTRACE_DETACH, p, 0, (ev == 0) ? WSTOPSIG(st) : 0);
            if (ev == PTRACE_EVENT_EXEC || ev == PTRACE_EVENT_STOP || ev == 0)
                return;
        } else {
            return;
        }
    }
}

static double cpu_now(void) {
    struct rusage s, c;
    getrusage(RUSAGE_SELF, &s);
    getrusage(RUSAGE_CHILDREN, &c);
    return s.ru_utime.tv_sec + s.ru_stime.tv_sec + c.ru_utime.tv_sec + c.ru_stime.tv_sec +
           (s.ru_utime.tv_usec + s.ru_stime.tv_usec + c.ru_utime.tv_usec + c.ru_stime.tv_usec) / 1e6;
}

/* One round: the wall clock per exec as the workload saw it; `cpu` gets the CPU per exec of the
 * whole tree (supervisor, workload and every exec'd child), which a busy machine disturbs less. */
static double one_round(int mode, int n, double *cpu) {
    double c0 = cpu_now();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        die("socketpair");
    pid_t w = fork();
    if (w == 0) {
        close(sv[0]);
        workload(mode, n, sv[1]);
    }
    close(sv[1]);
    int lfd = -1;
    if (mode >= CONTINUE) {
        lfd = recv_fd(sv[0]);
        /* As lasso does: wake the served thread on the supervisor's CPU (kernel 6.6+). */
        uint64_t flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
        ioctl(lfd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags);
    }
    if (write(sv[0], "g", 1) != 1)
        die("write go");
    double dt = -1;
    for (;;) {
        struct pollfd p[2] = {{.fd = sv[0], .events = POLLIN}, {.fd = lfd, .events = POLLIN}};
        if (poll(p, lfd >= 0 ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (lfd >= 0 && (p[1].revents & POLLIN))
            serve_one(lfd, mode);
        if (p[0].revents & (POLLIN | POLLHUP)) {
            if (read(sv[0], &dt, sizeof dt) != sizeof dt)
                die("read result");
            break;
        }
    }
    int st;
    waitpid(w, &st, 0);
    if (lfd >= 0)
        close(lfd);
    close(sv[0]);
    *cpu = (cpu_now() - c0) / n;
    return dt / n;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    int rounds = argc > 2 ? atoi(argv[2]) : 7;
    if (n <= 0 || rounds <= 0) {
        fprintf(stderr, "usage: gate_floor [EXECS_PER_ROUND>0] [ROUNDS>0]\n");
        return 2;
    }
    double *per[MODES], *cpu[MODES];
    for (int m = 0; m < MODES; m++) {
        per[m] = calloc(rounds, sizeof(double));
        cpu[m] = calloc(rounds, sizeof(double));
    }
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < MODES; k++) {
            /* Rotate the order each round, so no mode always runs first or last. */
            int m = (k + r) % MODES;
            per[m][r] = one_round(m, n, &cpu[m][r]);
        }
    double med[MODES], cmed[MODES];
    for (int m = 0; m < MODES; m++) {
        qsort(per[m], rounds, sizeof(double), cmp);
        qsort(cpu[m], rounds, sizeof(double), cmp);
        med[m] = per[m][rounds / 2];
        cmed[m] = cpu[m][rounds / 2];
    }
    double load = -1;
    getloadavg(&load, 1);
    printf("floor (%d rounds of %d fork+exec of /bin/true, median per exec; load %.1f):\n", rounds, n,
           load);
    printf("  %-10s %9s %10s %9s %10s\n", "mode", "wall", "vs allow", "CPU", "vs allow");
    for (int m = 0; m < MODES; m++)
        printf("  %-10s %7.1f us %+7.1f us %7.1f us %+7.1f us\n", names[m], med[m] * 1e6,
               (med[m] - med[ALLOW]) * 1e6, cmed[m] * 1e6, (cmed[m] - cmed[ALLOW]) * 1e6);
    return 0;
}
