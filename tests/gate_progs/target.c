/* Stand-in program for the race test. Built twice: as "okprog" (allowed) and "marker" (blocked).
 * It leaves evidence when it runs something it must never run: the blocked build always writes
 * MARKER_DIR/ran-marker; the allowed build writes ran-forbidden-arg when given the forbidden argument,
 * and otherwise logs the argv[1] it received to okprog-argv1. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#ifndef MARKER_DIR
#error MARKER_DIR
#endif
/* Appends one line (atomically: a single O_APPEND write) to MARKER_DIR/name. */
static void leave_line(const char *name, const char *text) {
    char p[600], line[600];
    strcpy(p, MARKER_DIR); strcat(p, "/"); strcat(p, name);
    size_t n = strlen(text);
    if (n > 500) n = 500;
    memcpy(line, text, n); line[n] = '\n';
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) { write(fd, line, n + 1); close(fd); }
}
static void leave(const char *name) { leave_line(name, "x"); }
int main(int argc, char **argv) {
#ifdef BLOCKED
    leave("ran-marker");
    return 3;
#else
    if (argc > 1 && strncmp(argv[1], "forbidden", 9) == 0) { leave("ran-forbidden-arg"); return 4; }
    /* What it really received, for the test to compare with the audit. */
    leave_line("okprog-argv1", argc > 1 ? argv[1] : "(none)");
    return 0;
#endif
}
