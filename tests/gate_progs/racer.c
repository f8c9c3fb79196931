/* Race driver for the exec gate: execs an allowed program while other threads (mode "threads")
 * or another process through a shared mapping (mode "shared") rewrite the path and argv buffers.
 * usage: racer MODE ATTEMPTS WORKERS ALLOWED BLOCKED   (ALLOWED and BLOCKED of equal length)
 * Prints "exited0=N refused=N killed=N other=N". */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARG_OK  "harmless-arg"
#define ARG_BAD "forbidden-ar"

struct shared {
    char path[512];
    char arg[64];
    char arg_alt[64];
    char *argv[3];
};

static const char *allowed, *blocked;
static struct shared *S;

/* Flips the path between allowed and blocked, and the argument between harmless and forbidden. */
static void flip_once(struct shared *s) {
    memcpy(s->path, blocked, strlen(blocked));
    memcpy(s->arg, ARG_BAD, sizeof ARG_BAD);
    s->argv[1] = s->arg_alt;
    memcpy(s->path, allowed, strlen(allowed));
    memcpy(s->arg, ARG_OK, sizeof ARG_OK);
    s->argv[1] = s->arg;
}

static void *flipper(void *p) {
    for (;;) flip_once((struct shared *)p);
    return NULL;
}

static void reset(struct shared *s) {
    strcpy(s->path, allowed);
    strcpy(s->arg, ARG_OK);
    strcpy(s->arg_alt, ARG_BAD);
    s->argv[0] = s->path;
    s->argv[1] = s->arg;
    s->argv[2] = NULL;
}

extern char **environ;

static void attempt_threads(void) {
    struct shared local;
    reset(&local);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, flipper, &local);
    pthread_create(&t2, NULL, flipper, &local);
    execve(local.path, local.argv, environ);
    _exit(errno == EACCES ? 126 : 127);
}

static void attempt_shared(void) {
    execve(S->path, S->argv, environ);
    _exit(errno == EACCES ? 126 : 127);
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage\n"); return 2; }
    const char *mode = argv[1];
    int attempts = atoi(argv[2]), workers = atoi(argv[3]);
    allowed = argv[4]; blocked = argv[5];
    if (strlen(allowed) != strlen(blocked) || strlen(allowed) >= 500) { fprintf(stderr, "lengths\n"); return 2; }
    int shared_mode = strcmp(mode, "shared") == 0;
    int fds[2];
    if (pipe(fds)) return 2;
    for (int w = 0; w < workers; w++) {
        if (fork() != 0) continue;
        close(fds[0]);
        long ok = 0, refused = 0, killed = 0, other = 0;
        pid_t writer = -1;
        if (shared_mode) {
            S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            reset(S);
            S->argv[1] = S->arg;
            writer = fork();
            if (writer == 0) for (;;) flip_once(S);
        }
        for (int i = w; i < attempts; i += workers) {
            pid_t c = fork();
            if (c == 0) { if (shared_mode) attempt_shared(); else attempt_threads(); }
            int st;
            waitpid(c, &st, 0);
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
            else if (WIFEXITED(st) && WEXITSTATUS(st) == 126) refused++;
            else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) killed++;
            else other++;
        }
        if (writer > 0) { kill(writer, SIGKILL); waitpid(writer, NULL, 0); }
        char line[128];
        int n = snprintf(line, sizeof line, "%ld %ld %ld %ld\n", ok, refused, killed, other);
        write(fds[1], line, n);
        _exit(0);
    }
    close(fds[1]);
    long t[4] = {0}, v[4];
    FILE *f = fdopen(fds[0], "r");
    while (fscanf(f, "%ld %ld %ld %ld", &v[0], &v[1], &v[2], &v[3]) == 4)
        for (int k = 0; k < 4; k++) t[k] += v[k];
    while (wait(NULL) > 0) {}
    printf("exited0=%ld refused=%ld killed=%ld other=%ld\n", t[0], t[1], t[2], t[3]);
    return 0;
}
