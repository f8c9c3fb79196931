/* Copies a program into a memfd and runs it with fexecve: usage memfd_exec PROGRAM ARGV0 ARGS... */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int in = open(argv[1], O_RDONLY), mfd = memfd_create("payload", MFD_CLOEXEC);
    char buf[65536]; ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) write(mfd, buf, n);
    fexecve(mfd, argv + 2, environ);
    int e = errno;
    perror("fexecve");
    return e == EACCES ? 126 : 127;
}
