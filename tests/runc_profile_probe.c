/* A probe run inside run.lasso.profile containers: makes one system call that an unprivileged
 * process may normally make, and prints whether the kernel let it. Built statically by
 * tests/runc_profile.rs. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long r;
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "keyctl")) r = syscall(SYS_keyctl, 1 /* JOIN_SESSION_KEYRING */, 0);
    else if (!strcmp(argv[1], "unshare")) r = unshare(CLONE_NEWUSER);
    else return 2;
    printf("%s=%s\n", argv[1], r < 0 ? strerror(errno) : "ok");
    return r < 0 ? 1 : 0;
}
