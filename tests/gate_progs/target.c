/* Stand-in program for the race test. Built twice: as "okprog" (allowed) and "marker" (blocked).
 * It leaves evidence when it runs something it must never run: the blocked build always writes
 * MARKER_DIR/ran-marker; the allowed build writes ran-forbidden-arg when given the forbidden argument. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#ifndef MARKER_DIR
#error MARKER_DIR
#endif
static void leave(const char *name) {
    char p[600];
    strcpy(p, MARKER_DIR); strcat(p, "/"); strcat(p, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) { write(fd, "x\n", 2); close(fd); }
}
int main(int argc, char **argv) {
#ifdef BLOCKED
    leave("ran-marker");
    return 3;
#else
    if (argc > 1 && strncmp(argv[1], "forbidden", 9) == 0) { leave("ran-forbidden-arg"); return 4; }
    return 0;
#endif
}
