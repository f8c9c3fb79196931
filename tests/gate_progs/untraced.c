/* Makes a child with clone(CLONE_UNTRACED), which a tracer's fork tracing does not attach to,
 * and has it exec: usage untraced PROGRAM ARGV0 ARGS... Exits with the child's status. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static char **args;

static int child(void *unused) {
    (void)unused;
    execve(args[1], args + 2, environ);
    int e = errno;
    perror("execve");
    return e == EACCES ? 126 : 127;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    args = argv;
    size_t size = 1 << 20;
    char *stack = malloc(size);
    pid_t pid = clone(child, stack + size, CLONE_UNTRACED | SIGCHLD, NULL);
    if (pid < 0) { perror("clone"); return 3; }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
