/* Integration tests for the logger's sink: a full, unread stderr never stops PID 1. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgentry/common/log.h"
#include "pgentry/common/logsink.h"
#include "pgt.h"
#include "pgt_http.h"

static pid_t g_pid;     /* the pgentry under test, killed by the fini when a test fails */
static int g_hide_proc; /* run it in a mount namespace with an empty /proc */

static void kill_pgentry(void)
{
    if (g_pid > 0 && kill(g_pid, SIGKILL) == 0)
        waitpid(g_pid, NULL, 0);
    g_pid = 0;
}

/* pgentry with stderr on errfd (-1: closed), stdout into outpath (NULL: /dev/null). */
static pid_t spawn_with_stderr(const char *const *args, int errfd, const char *outpath)
{
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid > 0)
        return g_pid = pid;
    static char asan[512];
    const char *env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "LANG=C", NULL, NULL};
    if (getenv("ASAN_OPTIONS")) {
        snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s", getenv("ASAN_OPTIONS"));
        env[3] = asan;
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    int out = outpath ? open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : devnull;
    dup2(devnull, 0);
    dup2(out, 1);
    if (errfd >= 0)
        dup2(errfd, 2);
    else
        close(2);
    if (g_hide_proc &&
        (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
         mount("none", "/proc", "tmpfs", 0, NULL) < 0))
        _exit(99);
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(PGT_PGENTRY_BIN, (char *const *)args, (char *const *)env);
    _exit(127);
}

/* The exit code (128+N for signal N), or -1 after timeout_ms (the process is then killed). */
static int wait_exit(pid_t pid, int timeout_ms)
{
    int64_t deadline = pgt_now_ms() + timeout_ms;
    int status;
    while (pgt_now_ms() < deadline) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            g_pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(10000);
    }
    kill_pgentry();
    return -1;
}

/* pgentry_log_lines_dropped_total from /metrics, or -1 when /metrics does not answer. */
static long long dropped_metric(int port)
{
    struct pgt_http_resp resp;
    if (pgt_http_get("127.0.0.1", port, "GET", "/metrics", &resp) != 200)
        return -1;
    const char *p = strstr(resp.body, "\npgentry_log_lines_dropped_total ");
    cr_assert_not_null(p, "the metric is listed");
    return strtoll(p + strlen("\npgentry_log_lines_dropped_total "), NULL, 10);
}

/* Poll /metrics until lines were dropped; every answer must come while stderr is full. */
static long long wait_for_drops(int port)
{
    int64_t deadline = pgt_now_ms() + 30000;
    long long n = 0;
    while (pgt_now_ms() < deadline) {
        n = dropped_metric(port);
        if (n > 0)
            return n;
        if (n < 0)
            usleep(20000); /* not listening yet */
        else
            usleep(50000);
    }
    cr_assert_fail("no log line was dropped within 30 s (last: %lld)", n);
    return -1;
}

/* A debug log of a refused dependency retried every millisecond: hundreds of lines a second. */
#define CHATTY_ARGS(hport, wport)                                                                  \
    "pgentry", "--log-level", "debug", "--health-addr", hport, "--no-migrate", "--wait-tcp",       \
        wport, "--wait-timeout", "0", "--backoff-initial", "1ms", "--backoff-max", "1ms",          \
        "--stop-timeout", "20s"

/* With stderr full and never read: health answers, the dependency comes up, COMMAND starts,
 * SIGTERM reaches it (143, not the 137 of the stop timeout's SIGKILL). */
static void full_stderr_keeps_pid1_going(int errfd)
{
    int hport = pgt_free_port(), wport = pgt_free_port();
    char haddr[64], waddr[64];
    snprintf(haddr, sizeof haddr, "127.0.0.1:%d", hport);
    snprintf(waddr, sizeof waddr, "127.0.0.1:%d", wport);
    const char *args[] = {CHATTY_ARGS(haddr, waddr), "--", "sleep", "60", NULL};
    pid_t pid = spawn_with_stderr(args, errfd, NULL);

    wait_for_drops(hport);
    int lfd = pgt_tcp_listen(&wport);
    struct pgt_http_resp resp;
    int64_t deadline = pgt_now_ms() + 20000;
    while (pgt_http_get("127.0.0.1", hport, "GET", "/readyz", &resp) != 200)
        cr_assert(pgt_now_ms() < deadline, "COMMAND did not start within 20 s");
    int64_t t0 = pgt_now_ms();
    cr_assert_eq(pgt_http_get("127.0.0.1", hport, "GET", "/livez", &resp), 200);
    cr_assert_lt(pgt_now_ms() - t0, 2000, "/livez took %lld ms", (long long)(pgt_now_ms() - t0));
    cr_assert_gt(dropped_metric(hport), 0);

    cr_assert_eq(kill(pid, SIGTERM), 0);
    int code = wait_exit(pid, 15000);
    cr_assert_eq(code, 143, "SIGTERM forwarded to COMMAND, its death reported (got %d)", code);
    close(lfd);
}

/* A full pipe of the smallest size: full after a few lines rather than 64 KiB of them. */
static void full_pipe_keeps_pid1_going(void)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    cr_assert(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 0, "F_SETPIPE_SZ: %s", strerror(errno));
    full_stderr_keeps_pid1_going(p[1]);
    close(p[0]);
    close(p[1]);
}

Test(logsink, full_pipe_keeps_health_and_signals, .timeout = 90, .fini = kill_pgentry)
{
    full_pipe_keeps_pid1_going();
}

/* No /proc to reopen the pipe through: the fallback polls before each write. */
Test(logsink, full_pipe_without_proc_keeps_health_and_signals, .timeout = 90, .fini = kill_pgentry)
{
    if (geteuid() != 0)
        cr_skip_test("hiding /proc needs a mount namespace (root)");
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("the sanitizers' runtime needs /proc");
#endif
    g_hide_proc = 1;
    full_pipe_keeps_pid1_going();
}

Test(logsink, full_socket_keeps_health_and_signals, .timeout = 90, .fini = kill_pgentry)
{
    int s[2], small = 4096;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
    setsockopt(s[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(s[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    full_stderr_keeps_pid1_going(s[1]);
    close(s[0]);
    close(s[1]);
}

Test(logsink, full_terminal_keeps_health_and_signals, .timeout = 90, .fini = kill_pgentry)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    cr_assert(master >= 0, "posix_openpt: %s", strerror(errno));
    cr_assert_eq(grantpt(master), 0);
    cr_assert_eq(unlockpt(master), 0);
    int slave = open(ptsname(master), O_WRONLY | O_NOCTTY | O_CLOEXEC);
    cr_assert(slave >= 0);
    full_stderr_keeps_pid1_going(slave);
    close(slave);
    close(master);
}

/* Read fd until EOF or timeout_ms into a growing buffer (owned); *len gets its length. */
static char *read_until_eof(int fd, int timeout_ms, const char *stop_after, size_t *len)
{
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    int64_t deadline = pgt_now_ms() + timeout_ms;
    cr_assert_not_null(buf);
    while (pgt_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            cr_assert_not_null(buf);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        if (stop_after && strstr(buf, stop_after) && buf[n - 1] == '\n')
            break;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Every line whole: one timestamp, one level, one pgentry[PID] each, and a final newline. */
static void assert_whole_lines(const char *text, size_t len, size_t min_lines)
{
    regex_t re;
    cr_assert_eq(regcomp(&re,
                         "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                         "(debug|info |warn |error) pgentry\\[[0-9]+\\] [a-z]",
                         REG_EXTENDED | REG_NOSUB),
                 0);
    cr_assert(len > 0 && text[len - 1] == '\n', "the output ends with a whole line");
    size_t nlines = 0;
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        char line[20000];
        size_t n = (size_t)(e - p);
        cr_assert_lt(n, sizeof line);
        memcpy(line, p, n);
        line[n] = '\0';
        cr_assert_eq(regexec(&re, line, 0, NULL, 0), 0, "not a whole line: %s", line);
        cr_assert_eq(strstr(strstr(line, "pgentry[") + 1, "pgentry["), NULL, "glued: %s", line);
        nlines++;
        p = e + 1;
    }
    regfree(&re);
    cr_assert_geq(nlines, min_lines);
}

/* Once a full pipe drains, one line says how many were dropped, and nothing came out split. */
Test(logsink, drained_pipe_reports_the_drops_in_whole_lines, .timeout = 90, .fini = kill_pgentry)
{
    int p[2];
    int hport = pgt_free_port(), wport = pgt_free_port();
    char haddr[64], waddr[64];
    snprintf(haddr, sizeof haddr, "127.0.0.1:%d", hport);
    snprintf(waddr, sizeof waddr, "127.0.0.1:%d", wport);
    const char *args[] = {CHATTY_ARGS(haddr, waddr), NULL};
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    cr_assert(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 0, "F_SETPIPE_SZ: %s", strerror(errno));
    pid_t pid = spawn_with_stderr(args, p[1], NULL);
    close(p[1]);

    long long dropped = wait_for_drops(hport);
    size_t len;
    char *out = read_until_eof(p[0], 30000, "log lines dropped: stderr was full", &len);
    const char *notice = strstr(out, "warn  pgentry[");
    cr_assert_not_null(strstr(out, "log lines dropped: stderr was full dropped="),
                       "the notice was written once the pipe drained");
    notice = strstr(out, "dropped=");
    cr_assert_geq(strtoll(notice + strlen("dropped="), NULL, 10), dropped,
                  "it counts at least what /metrics had counted before the drain");
    cr_assert_gt(dropped_metric(hport), 0);

    cr_assert_eq(kill(pid, SIGTERM), 0);
    size_t rest_len;
    char *rest = read_until_eof(p[0], 15000, NULL, &rest_len);
    cr_assert_eq(wait_exit(pid, 15000), 143);
    assert_whole_lines(out, len, 10);
    if (rest_len > 0)
        assert_whole_lines(rest, rest_len, 1);
    free(out);
    free(rest);
    close(p[0]);
}

/* stderr closed at start: a descriptor that later takes number 2 (a socket, the loop's own)
 * must never get log lines; pgentry runs and answers as usual. */
Test(logsink, closed_stderr_discards_lines, .timeout = 60, .fini = kill_pgentry)
{
    int hport = pgt_free_port(), wport = pgt_free_port();
    char haddr[64], waddr[64];
    snprintf(haddr, sizeof haddr, "127.0.0.1:%d", hport);
    snprintf(waddr, sizeof waddr, "127.0.0.1:%d", wport);
    const char *args[] = {CHATTY_ARGS(haddr, waddr), NULL};
    pid_t pid = spawn_with_stderr(args, -1, NULL);
    struct pgt_http_resp resp;
    int64_t deadline = pgt_now_ms() + 20000;
    while (pgt_http_get("127.0.0.1", hport, "GET", "/livez", &resp) != 200)
        cr_assert(pgt_now_ms() < deadline, "/livez did not answer within 20 s");
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(pgt_http_get("127.0.0.1", hport, "GET", "/status", &resp), 200);
        char err[256];
        cr_assert_eq(pgt_json_check(resp.body, resp.body_len, err, sizeof err), 0, "%s: %s", err,
                     resp.body);
    }
    cr_assert_eq(dropped_metric(hport), 0, "discarded, not dropped: nothing was full");
    cr_assert_eq(kill(pid, SIGTERM), 0);
    cr_assert_eq(wait_exit(pid, 15000), 143);
}

/* COMMAND shares pgentry's stderr pipe: its description must stay blocking, or the
 * application's own writes would fail with EAGAIN. */
Test(logsink, command_keeps_a_blocking_stderr, .timeout = 60, .fini = kill_pgentry)
{
    int p[2];
    char outpath[] = "/tmp/pgt-logsink-XXXXXX";
    int ofd = mkstemp(outpath);
    cr_assert(ofd >= 0);
    close(ofd);
    const char *args[] = {"pgentry",
                          "--no-migrate",
                          "--health-addr",
                          "off",
                          "--log-level",
                          "debug",
                          "--",
                          "sh",
                          "-c",
                          "grep ^flags: /proc/self/fdinfo/2",
                          NULL};
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = spawn_with_stderr(args, p[1], outpath);
    close(p[1]);
    size_t len;
    char *log = read_until_eof(p[0], 20000, NULL, &len);
    cr_assert_eq(wait_exit(pid, 20000), 0, "log: %s", log);
    char *flags = pgt_read_file(outpath);
    unlink(outpath);
    cr_assert_not_null(strstr(flags, "flags:"), "COMMAND printed its stderr flags: %s", flags);
    long f = strtol(strstr(flags, "flags:") + strlen("flags:"), NULL, 8);
    cr_assert_eq(f & O_NONBLOCK, 0, "COMMAND's stderr is non-blocking (flags %lo)", f);
    cr_assert_eq(f & O_ACCMODE, O_WRONLY);
    assert_whole_lines(log, len, 1);
    free(flags);
    free(log);
    close(p[0]);
}

/* ---- In process: the sink itself, on a pipe whose write end is non-blocking --------------- */

/* A pipe of one page, non-blocking on the logger's side; the logger writes to p[1]. */
static void small_pipe(int p[2])
{
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    cr_assert(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 0);
    cr_assert_eq(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
    pge_log_setup(PGE_LOG_DEBUG, PGE_LOG_TEXT);
    pge_log_set_fd(p[1]);
}

static void *fill(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000 && pge_logsink_dropped() == 0; i++)
        pge_info("filling the pipe", PGE_INT("i", i), PGE_STR("pad", "xxxxxxxxxxxxxxxxxxxxxxxxxx"));
    return NULL;
}

struct drain {
    ev_io io;
    ev_timer timeout;
    char *buf;
    size_t len, cap;
};

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct drain *d = (struct drain *)w;
    (void)revents;
    if (d->len + 65536 + 1 > d->cap) {
        d->cap = d->cap * 2 + 65536 + 1;
        d->buf = realloc(d->buf, d->cap);
        cr_assert_not_null(d->buf);
    }
    ssize_t r = read(w->fd, d->buf + d->len, 65536);
    if (r > 0)
        d->len += (size_t)r;
    d->buf[d->len] = '\0';
    const char *n = strstr(d->buf, "log lines dropped: stderr was full");
    if (n && strchr(n, '\n'))
        ev_break(loop, EVBREAK_ALL);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Fill the pipe (from the loop's thread or another), then only read it while the loop runs:
 * the sink's watcher alone writes the backlog and, once drained, the notice. */
static void backlog_drains_on_the_loop(int from_thread)
{
    int p[2];
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct drain d = {.buf = NULL};
    small_pipe(p);
    pge_logsink_attach(loop);
    if (from_thread) {
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, fill, NULL), 0);
        pthread_join(t, NULL);
    } else {
        fill(NULL);
    }
    unsigned long long dropped = pge_logsink_dropped();
    cr_assert_gt(dropped, 0);
    ev_io_init(&d.io, on_readable, p[0], EV_READ);
    ev_io_start(loop, &d.io);
    ev_timer_init(&d.timeout, on_timeout, 20.0, 0);
    ev_timer_start(loop, &d.timeout);
    ev_run(loop, 0);
    cr_assert_not_null(d.buf);
    const char *n = strstr(d.buf, "log lines dropped: stderr was full dropped=");
    cr_assert_not_null(n, "the watcher wrote the backlog and the notice");
    cr_assert_eq(strtoull(n + strlen("log lines dropped: stderr was full dropped="), NULL, 10),
                 dropped);
    assert_whole_lines(d.buf, d.len, 10);
    pge_logsink_detach();
    ev_loop_destroy(loop);
    free(d.buf);
    close(p[0]);
    close(p[1]);
}

Test(logsink, backlog_drains_through_the_loop_watcher, .timeout = 60)
{
    backlog_drains_on_the_loop(0);
}

Test(logsink, backlog_from_a_worker_thread_wakes_the_loop, .timeout = 60)
{
    backlog_drains_on_the_loop(1);
}

struct reader {
    int fd;
    char *buf;
    size_t len, cap;
};

/* A slow reader: the writers meet a full pipe now and then. */
static void *slow_read(void *arg)
{
    struct reader *r = arg;
    for (;;) {
        if (r->len + 4096 + 1 > r->cap) {
            r->cap = r->cap * 2 + 4096 + 1;
            r->buf = realloc(r->buf, r->cap);
        }
        ssize_t n = read(r->fd, r->buf + r->len, 4096);
        if (n <= 0)
            break;
        r->len += (size_t)n;
        usleep(300);
    }
    r->buf[r->len] = '\0';
    return NULL;
}

static void *log_lines(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < 3000; i++)
        pge_info("thread line", PGE_INT("t", id), PGE_INT("i", i));
    return NULL;
}

/* Four threads at once: every line whole, each thread's lines in order, and each line either
 * written or counted as dropped. */
Test(logsink, threads_log_whole_lines_in_order, .timeout = 60)
{
    int p[2];
    pthread_t w[4], rt;
    struct reader r = {.buf = NULL};
    small_pipe(p);
    r.fd = p[0];
    cr_assert_eq(pthread_create(&rt, NULL, slow_read, &r), 0);
    for (long i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&w[i], NULL, log_lines, (void *)i), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(w[i], NULL);
    cr_assert_eq(pge_logsink_flush(20000), 0);
    close(p[1]);
    pthread_join(rt, NULL);
    assert_whole_lines(r.buf, r.len, 100);
    long last[4] = {-1, -1, -1, -1};
    unsigned long long got = 0;
    for (const char *l = strstr(r.buf, "thread line"); l; l = strstr(l + 1, "thread line")) {
        long t = strtol(strstr(l, " t=") + 3, NULL, 10);
        long i = strtol(strstr(l, " i=") + 3, NULL, 10);
        cr_assert(t >= 0 && t < 4);
        cr_assert_gt(i, last[t], "thread %ld: line %ld after %ld", t, i, last[t]);
        last[t] = i;
        got++;
    }
    cr_assert_leq(got, 12000);
    cr_assert_geq(got + pge_logsink_dropped(), 12000, "written or counted: %llu + %llu", got,
                  pge_logsink_dropped());
    free(r.buf);
    close(p[0]);
}

/* A forked child (a spawn helper) that logs writes its own line only: the parent's backlog is
 * the parent's to write, once. */
Test(logsink, forked_child_does_not_repeat_the_backlog, .timeout = 60)
{
    int p[2];
    pthread_t rt;
    struct reader r = {.buf = NULL};
    small_pipe(p);
    fill(NULL);
    cr_assert_gt(pge_logsink_dropped(), 0, "a backlog is queued");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        pge_info("from the child");
        _exit(pge_logsink_flush(20000) == 0 ? 0 : 1);
    }
    r.fd = p[0];
    cr_assert_eq(pthread_create(&rt, NULL, slow_read, &r), 0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(pge_logsink_flush(20000), 0);
    close(p[1]);
    pthread_join(rt, NULL);
    assert_whole_lines(r.buf, r.len, 10);
    cr_assert_not_null(strstr(r.buf, "from the child"));
    long last = -1;
    for (const char *l = strstr(r.buf, "filling the pipe"); l;
         l = strstr(l + 1, "filling the pipe")) {
        long i = strtol(strstr(l, " i=") + 3, NULL, 10);
        cr_assert_gt(i, last, "line i=%ld written twice or out of order (after %ld)", i, last);
        last = i;
    }
    free(r.buf);
    close(p[0]);
}
