/* bench/tamper.sh's open loop: N opens (and closes) of one path with the given flags, printing
 * the mean nanoseconds per open and how many were refused. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: tamper_open PATH r|w N\n"); return 2; }
    int flags = strcmp(argv[2], "w") == 0 ? O_WRONLY : O_RDONLY;
    long n = atol(argv[3]), refused = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        int fd = open(argv[1], flags);
        if (fd < 0) refused++; else close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("%.0f %ld\n", ns / n, refused);
    return 0;
}
