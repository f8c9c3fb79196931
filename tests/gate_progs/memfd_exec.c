/* Copies a program into a memfd and runs it with fexecve: usage memfd_exec PROGRAM ARGS... */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int in = open(argv[1], O_RDONLY), mfd = memfd_create("payload", MFD_CLOEXEC);
    char buf[65536]; ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) write(mfd, buf, n);
    fexecve(mfd, argv + 1, environ);
    perror("fexecve");
    return errno == EACCES ? 126 : 127;
}
