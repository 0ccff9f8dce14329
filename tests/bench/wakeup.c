/* wakeup: the machine's floor for any relay or RPC, measured in the benchmark's own run.
 *
 * Two processes bounce one byte over a unix socket pair, each blocking in read() between
 * bounces, as a daemon blocks in epoll_wait() between calls. Prints the median round trip in
 * nanoseconds of `rounds` batches (argv[1], default 7) of 5000 bounces each, and nothing else,
 * so the benchmarks can express their overheads as multiples of it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BOUNCES 5000

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int xfer(int fd, char *c, int out)
{
    for (;;) {
        ssize_t n = out ? write(fd, c, 1) : read(fd, c, 1);
        if (n == 1)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

static int cmp(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    if (rounds < 1 || rounds > 99) {
        fprintf(stderr, "usage: wakeup [rounds 1-99]\n");
        return 2;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
        perror("wakeup: socketpair");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("wakeup: fork");
        return 1;
    }
    char c = 'x';
    if (child == 0) {
        close(sv[0]);
        while (!xfer(sv[1], &c, 0) && !xfer(sv[1], &c, 1))
            ;
        _exit(0);
    }
    close(sv[1]);
    long long med[99];
    int rc = 0;
    for (int r = 0; r < rounds && !rc; r++) {
        long long t0 = now_ns();
        for (int i = 0; i < BOUNCES && !rc; i++)
            rc = xfer(sv[0], &c, 1) || xfer(sv[0], &c, 0);
        med[r] = (now_ns() - t0) / BOUNCES;
    }
    close(sv[0]); /* the child's read sees EOF and it exits */
    waitpid(child, NULL, 0);
    if (rc) {
        fprintf(stderr, "wakeup: the echo process went away\n");
        return 1;
    }
    qsort(med, (size_t)rounds, sizeof(med[0]), cmp);
    printf("%lld\n", med[rounds / 2]);
    return 0;
}
