/* Helper of bench/supervise.sh: signal-forwarding latency and orphan-reaping time of an init. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* recv FIFO: under the init. Report the receipt time of every USR1 on FIFO; exit on TERM. */
static int recv_role(const char *fifo)
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    int fd = open(fifo, O_WRONLY);
    if (fd < 0)
        return 2;
    int64_t ready = 0;
    if (write(fd, &ready, sizeof ready) != (ssize_t)sizeof ready)
        return 2;
    for (;;) {
        int sig = sigwaitinfo(&all, NULL);
        if (sig == SIGUSR1) {
            int64_t t = now_ns();
            if (write(fd, &t, sizeof t) != (ssize_t)sizeof t)
                return 2;
        } else if (sig == SIGTERM) {
            return 0;
        }
    }
}

/* latency N FIFO -- INIT...: start INIT (whose COMMAND is "recv FIFO"), send it N USR1 one at a
 * time, each after the previous was received, and print median, p99 and max in microseconds. */
static int latency_role(int n, const char *fifo, char **init)
{
    int64_t *lat = calloc((size_t)n, sizeof *lat);
    int64_t t;
    unlink(fifo);
    if (!lat || mkfifo(fifo, 0600) < 0) {
        perror("mkfifo");
        return 2;
    }
    pid_t pid = fork();
    if (pid == 0) {
        execvp(init[0], init);
        _exit(127);
    }
    int fd = open(fifo, O_RDONLY);
    if (fd < 0 || read_full(fd, &t, sizeof t) < 0) {
        fprintf(stderr, "the command never became ready\n");
        return 2;
    }
    for (int i = 0; i < n; i++) {
        int64_t t0 = now_ns();
        kill(pid, SIGUSR1);
        if (read_full(fd, &t, sizeof t) < 0) {
            fprintf(stderr, "signal %d never arrived\n", i);
            return 2;
        }
        lat[i] = t - t0;
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    unlink(fifo);
    qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
    printf("median_us=%.1f p99_us=%.1f max_us=%.1f\n", (double)lat[n / 2] / 1000.0,
           (double)lat[(n * 99) / 100] / 1000.0, (double)lat[n - 1] / 1000.0);
    free(lat);
    return 0;
}

/* How many pids /proc/1/task/1/children lists (PID 1's children, zombies included). */
static int init_children(void)
{
    static char buf[1 << 16];
    int fd = open("/proc/1/task/1/children", O_RDONLY);
    size_t n = 0;
    if (fd < 0)
        return -1;
    for (ssize_t r; n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0;)
        n += (size_t)r;
    close(fd);
    int count = 0;
    for (size_t i = 0; i < n; i++)
        count += buf[i] == ' ';
    return count;
}

/* orphans N: as the init's COMMAND, PID 1 of a namespace. N orphans (their parent exits) are
 * released together; print the time until PID 1 has reaped them all (only we are left). */
static int orphans_role(int n)
{
    int p[2];
    if (pipe(p) < 0)
        return 2;
    pid_t mid = fork();
    if (mid == 0) {
        close(p[1]);
        for (int i = 0; i < n; i++) {
            pid_t c = fork();
            if (c == 0) {
                char b;
                while (read(p[0], &b, 1) > 0)
                    ;
                _exit(0);
            }
            if (c < 0)
                _exit(1);
        }
        _exit(0);
    }
    close(p[0]);
    int st;
    if (waitpid(mid, &st, 0) != mid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "forking the orphans failed\n");
        return 2;
    }
    while (init_children() < n + 1)
        usleep(1000);
    int64_t t0 = now_ns();
    close(p[1]);
    while (init_children() > 1)
        usleep(200);
    printf("reap_ms=%.2f\n", (double)(now_ns() - t0) / 1e6);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "recv") == 0)
        return recv_role(argv[2]);
    if (argc == 3 && strcmp(argv[1], "orphans") == 0)
        return orphans_role(atoi(argv[2]));
    if (argc >= 6 && strcmp(argv[1], "latency") == 0 && strcmp(argv[4], "--") == 0)
        return latency_role(atoi(argv[2]), argv[3], argv + 5);
    fprintf(stderr, "usage: %s latency N FIFO -- INIT... | recv FIFO | orphans N\n", argv[0]);
    return 2;
}
