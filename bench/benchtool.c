/* benchtool: the measuring instruments of the bench/ scripts, one small static binary.
 *
 *   benchtool stamp FILE               append CLOCK_MONOTONIC (ns) to FILE, exit 0: the COMMAND
 *                                      whose start marks "the application is running"
 *   benchtool run FILE -- CMD [ARG...] run CMD, then write one line to FILE:
 *                                      start_ns end_ns status utime_us stime_us maxrss_kib
 *                                      (monotonic ns around fork+exec and wait4; rusage of CMD
 *                                      and every descendant it reaped); exit with CMD's status
 *   benchtool runmem FILE -- CMD [ARG...]
 *                                      as run, also sampling /proc/PID/status every ms and
 *                                      appending the peak RssAnon and RssFile seen (KiB): the
 *                                      private memory apart from shared library pages
 *   benchtool clock                    print "REALTIME_NS MONOTONIC_NS" read back to back
 *                                      (to place wall-clock log timestamps on the monotonic axis)
 *   benchtool ping HOST PORT FILE [INTERVAL_US]
 *                                      every INTERVAL_US (1000) send a PostgreSQL startup packet,
 *                                      as pg_isready does, until the server answers with an
 *                                      authentication request (it accepts connections); then
 *                                      write "last_refused_ns first_ok_ns attempts" to FILE
 *
 * It is built by the scripts with `cc -O2 -static` (falling back to dynamic) so that its own
 * start-up costs the same few hundred microseconds for every contestant. No libpq on purpose. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int append_line(const char *path, const char *line)
{
    FILE *f = fopen(path, "a");
    if (!f) {
        perror(path);
        return -1;
    }
    fputs(line, f);
    return fclose(f) == 0 ? 0 : -1;
}

static int cmd_stamp(const char *path)
{
    int64_t t = now_ns(CLOCK_MONOTONIC);
    char buf[64];
    snprintf(buf, sizeof buf, "%lld\n", (long long)t);
    return append_line(path, buf) == 0 ? 0 : 1;
}

/* The RssAnon and RssFile of pid (KiB), raising *anon and *file to them. */
static void sample_rss(pid_t pid, long *anon, long *file)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        long v;
        if (sscanf(line, "RssAnon: %ld", &v) == 1 && v > *anon)
            *anon = v;
        else if (sscanf(line, "RssFile: %ld", &v) == 1 && v > *file)
            *file = v;
    }
    fclose(f);
}

static int cmd_run(const char *path, char **argv, int mem)
{
    int64_t t0 = now_ns(CLOCK_MONOTONIC);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 70;
    }
    if (pid == 0) {
        execvp(argv[0], argv);
        perror(argv[0]);
        _exit(127);
    }
    int status;
    struct rusage ru;
    long anon = 0, file = 0;
    for (;;) {
        pid_t r = wait4(pid, &status, mem ? WNOHANG : 0, &ru);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            perror("wait4");
            return 70;
        }
        if (r == 0) {
            sample_rss(pid, &anon, &file);
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
            nanosleep(&ts, NULL);
        }
    }
    int64_t t1 = now_ns(CLOCK_MONOTONIC);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%lld %lld %d %lld %lld %ld", (long long)t0, (long long)t1,
                     code, (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
                     (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, ru.ru_maxrss);
    if (mem)
        snprintf(buf + n, sizeof buf - (size_t)n, " %ld %ld", anon, file);
    strcat(buf, "\n");
    if (append_line(path, buf) < 0)
        return 70;
    return code;
}

static int cmd_clock(void)
{
    /* Bracket the realtime read with two monotonic reads and take their midpoint. */
    int64_t m0 = now_ns(CLOCK_MONOTONIC);
    int64_t r = now_ns(CLOCK_REALTIME);
    int64_t m1 = now_ns(CLOCK_MONOTONIC);
    printf("%lld %lld\n", (long long)r, (long long)(m0 + (m1 - m0) / 2));
    return 0;
}

/* One startup packet: 1 = the server asks for authentication (accepting), 0 = refused or an
 * error such as 57P03 "the database system is starting up", -1 = local failure. */
static int ping_once(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int ok = 0;
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0) {
        static const char params[] = "user\0postgres\0database\0postgres\0application_name\0"
                                     "benchtool-ping\0";
        unsigned char pkt[8 + sizeof params];
        uint32_t len = htonl((uint32_t)sizeof pkt), ver = htonl(196608); /* protocol 3.0 */
        memcpy(pkt, &len, 4);
        memcpy(pkt + 4, &ver, 4);
        memcpy(pkt + 8, params, sizeof params);
        if (write(fd, pkt, sizeof pkt) == (ssize_t)sizeof pkt) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            char c;
            if (poll(&p, 1, 2000) == 1 && read(fd, &c, 1) == 1)
                ok = c == 'R';
        }
    }
    close(fd);
    return ok;
}

static int cmd_ping(const char *host, const char *port, const char *path, long interval_us)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "benchtool ping: %s is not an IPv4 address\n", host);
        return 64;
    }
    int64_t last_refused = 0;
    long attempts = 0;
    int64_t deadline = now_ns(CLOCK_MONOTONIC) + (int64_t)120 * 1000000000;
    for (;;) {
        int64_t t = now_ns(CLOCK_MONOTONIC);
        if (t > deadline) {
            fprintf(stderr, "benchtool ping: no answer within 120 s\n");
            return 69;
        }
        attempts++;
        int r = ping_once(&sa);
        if (r < 0) {
            perror("benchtool ping");
            return 70;
        }
        if (r == 1) {
            char buf[128];
            snprintf(buf, sizeof buf, "%lld %lld %ld\n", (long long)last_refused, (long long)t,
                     attempts);
            return append_line(path, buf) == 0 ? 0 : 70;
        }
        last_refused = t;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = interval_us * 1000};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "stamp") == 0)
        return cmd_stamp(argv[2]);
    if (argc >= 5 && strcmp(argv[1], "run") == 0 && strcmp(argv[3], "--") == 0)
        return cmd_run(argv[2], argv + 4, 0);
    if (argc >= 5 && strcmp(argv[1], "runmem") == 0 && strcmp(argv[3], "--") == 0)
        return cmd_run(argv[2], argv + 4, 1);
    if (argc == 2 && strcmp(argv[1], "clock") == 0)
        return cmd_clock();
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "ping") == 0)
        return cmd_ping(argv[2], argv[3], argv[4], argc == 6 ? atol(argv[5]) : 1000);
    fprintf(stderr, "usage: benchtool stamp FILE | run|runmem FILE -- CMD [ARG...] | clock |"
                    " ping HOST PORT FILE [INTERVAL_US]\n");
    return 64;
}
