/* Shared test helpers: run the real binary, throwaway PostgreSQL, real listeners. */
#include "pgt.h"
#include "pgt_fs.h"
#include "pgt_hooks.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t pgt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pgt_free_port(void)
{
    int port = 0;
    int fd = pgt_tcp_listen(&port);
    close(fd);
    return port;
}

/* Temp directories made by this process, removed when it exits (each test is its own
 * process; the runner's, which hold the shared server, are removed by its teardown). */
#define MAX_TEMPDIRS 64
static char tempdirs[MAX_TEMPDIRS][256];
static size_t ntempdirs;
static pid_t tempdirs_owner;

static void remove_tempdirs(void)
{
    if (getpid() != tempdirs_owner)
        return;
    for (size_t i = 0; i < ntempdirs; i++)
        pgt_rmtree(tempdirs[i]);
}

void pgt_tempdir(char *buf, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, size, "%s/pgt-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(buf), "mkdtemp: %s", strerror(errno));
    if (tempdirs_owner != getpid()) {
        /* First directory of this (possibly forked) process: a fresh list. */
        tempdirs_owner = getpid();
        ntempdirs = 0;
        atexit(remove_tempdirs);
    }
    if (ntempdirs < MAX_TEMPDIRS)
        snprintf(tempdirs[ntempdirs++], sizeof tempdirs[0], "%s", buf);
}

char *pgt_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    n = (long)fread(buf, 1, (size_t)n, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

void pgt_write_file(const char *path, const char *content)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    fputs(content, f);
    fclose(f);
}

/* ---- processes ---------------------------------------------------------------------------- */

void pgt_proc_spawn(struct pgt_proc *p, const char *const *argv, const char *const *env)
{
    const char *envv[128];
    size_t n = 0;
    char pathvar[1024];
    char tmpl[64];
    int fd;

    memset(p, 0, sizeof *p);
    snprintf(tmpl, sizeof tmpl, "/tmp/pgt-out-XXXXXX");
    fd = mkstemp(tmpl);
    cr_assert(fd >= 0);
    close(fd);
    snprintf(p->out_path, sizeof p->out_path, "%s", tmpl);
    snprintf(tmpl, sizeof tmpl, "/tmp/pgt-err-XXXXXX");
    fd = mkstemp(tmpl);
    cr_assert(fd >= 0);
    close(fd);
    snprintf(p->err_path, sizeof p->err_path, "%s", tmpl);

    snprintf(pathvar, sizeof pathvar, "PATH=%s",
             getenv("PATH") ? getenv("PATH") : "/usr/local/bin:/usr/bin:/bin");
    envv[n++] = pathvar;
    envv[n++] = "HOME=/tmp";
    envv[n++] = "LANG=C";
    /* Sanitizer builds: keep the options the suite runs with. */
    static char asan[512], ubsan[512];
    if (getenv("ASAN_OPTIONS")) {
        snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s", getenv("ASAN_OPTIONS"));
        envv[n++] = asan;
    }
    if (getenv("UBSAN_OPTIONS")) {
        snprintf(ubsan, sizeof ubsan, "UBSAN_OPTIONS=%s", getenv("UBSAN_OPTIONS"));
        envv[n++] = ubsan;
    }
    for (size_t i = 0; env && env[i] && n < 126; i++)
        envv[n++] = env[i];
    envv[n] = NULL;

    p->started_ms = pgt_now_ms();
    p->pid = fork();
    cr_assert(p->pid >= 0, "fork: %s", strerror(errno));
    if (p->pid == 0) {
        int o = open(p->out_path, O_WRONLY | O_TRUNC);
        int e = open(p->err_path, O_WRONLY | O_TRUNC);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(o, 1);
        dup2(e, 2);
        /* Own process group: a test can signal pgentry alone, and Criterion's group is safe. */
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        const char *path = strcmp(argv[0], "pgentry") == 0 ? PGT_PGENTRY_BIN : argv[0];
        execve(path, (char *const *)argv, (char *const *)envv);
        _exit(127);
    }
}

int pgt_proc_wait(struct pgt_proc *p, int timeout_ms)
{
    int64_t deadline = pgt_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(p->pid, &p->status, WNOHANG);
        if (r == p->pid)
            break;
        if (pgt_now_ms() > deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &p->status, 0);
            p->out = pgt_read_file(p->out_path);
            p->err = pgt_read_file(p->err_path);
            cr_assert_fail("process %d did not exit within %d ms; stderr:\n%s", (int)p->pid,
                           timeout_ms, p->err);
        }
        usleep(2000);
    }
    p->exited = 1;
    p->elapsed_ms = pgt_now_ms() - p->started_ms;
    p->out = pgt_read_file(p->out_path);
    p->err = pgt_read_file(p->err_path);
    if (WIFEXITED(p->status))
        return WEXITSTATUS(p->status);
    return 128 + WTERMSIG(p->status);
}

void pgt_proc_free(struct pgt_proc *p)
{
    free(p->out);
    free(p->err);
    p->out = p->err = NULL;
    if (p->out_path[0])
        unlink(p->out_path);
    if (p->err_path[0])
        unlink(p->err_path);
}

int pgt_run(struct pgt_proc *p, const char *const *argv, const char *const *env, int timeout_ms)
{
    pgt_proc_spawn(p, argv, env);
    return pgt_proc_wait(p, timeout_ms);
}

int pgt_wait_for_text(const char *path, const char *needle, int timeout_ms)
{
    int64_t deadline = pgt_now_ms() + timeout_ms;
    while (pgt_now_ms() < deadline) {
        char *s = pgt_read_file(path);
        int found = strstr(s, needle) != NULL;
        free(s);
        if (found)
            return 0;
        usleep(5000);
    }
    return -1;
}

/* ---- PostgreSQL ------------------------------------------------------------------------------ */

static void find_bindir(char *buf, size_t size)
{
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        snprintf(buf, size, "%s", g.gl_pathv[g.gl_pathc - 1]);
        *strrchr(buf, '/') = '\0';
        globfree(&g);
        return;
    }
    globfree(&g);
    snprintf(buf, size, "/usr/bin");
}

int pgt_try_as_pg(const char *const *argv, int quiet)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0) {
            struct passwd *pw = getpwnam("postgres");
            if (!pw)
                pw = getpwnam("nobody");
            if (!pw || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
                _exit(111);
        }
        if (quiet) {
            int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, 1);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return st;
}

void pgt_run_as_pg(const char *const *argv, int quiet)
{
    int st = pgt_try_as_pg(argv, quiet);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed (status %d)", argv[0], st);
}

void pgt_chown_to_pg(const char *path)
{
    if (geteuid() != 0)
        return;
    struct passwd *pw = getpwnam("postgres");
    if (!pw)
        pw = getpwnam("nobody");
    cr_assert_not_null(pw);
    cr_assert_eq(chown(path, pw->pw_uid, pw->pw_gid), 0);
}

void pgt_pg_init(struct pgt_pg *pg)
{
    char initdb[300], pwfile[300], conf[300], hba[300];
    memset(pg, 0, sizeof *pg);
    find_bindir(pg->bindir, sizeof pg->bindir);
    pgt_tempdir(pg->dir, sizeof pg->dir);
    chmod(pg->dir, 0700);
    pgt_chown_to_pg(pg->dir);
    pg->port = pgt_free_port();

    snprintf(pwfile, sizeof pwfile, "%s.pw", pg->dir);
    pgt_write_file(pwfile, PGT_PASSWORD "\n");
    pgt_chown_to_pg(pwfile);
    snprintf(initdb, sizeof initdb, "%s/initdb", pg->bindir);
    char pwopt[320];
    snprintf(pwopt, sizeof pwopt, "--pwfile=%s", pwfile);
    const char *argv[] = {initdb,
                          "-D",
                          pg->dir,
                          "-U",
                          "postgres",
                          pwopt,
                          "--auth-local=trust",
                          "--auth-host=scram-sha-256",
                          "--no-sync",
                          "-E",
                          "UTF8",
                          "--locale=C",
                          NULL};
    pgt_run_as_pg(argv, 1);
    unlink(pwfile);

    snprintf(conf, sizeof conf, "%s/postgresql.conf", pg->dir);
    FILE *f = fopen(conf, "a");
    cr_assert_not_null(f);
    fprintf(f,
            "listen_addresses = '127.0.0.1,::1'\nport = %d\nunix_socket_directories = '%s'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "max_connections = 60\nshared_buffers = 16MB\nlog_min_messages = warning\n"
            "logging_collector = off\nwal_keep_size = 128MB\n",
            pg->port, pg->dir);
    fclose(f);
    /* A role that pg_hba.conf turns away (28000), ahead of the catch-all lines. */
    snprintf(hba, sizeof hba, "%s/pg_hba.conf", pg->dir);
    char *old = pgt_read_file(hba);
    f = fopen(hba, "w");
    cr_assert_not_null(f);
    fprintf(f, "host all pgt_nohba 127.0.0.1/32 reject\nhost all pgt_nohba ::1/128 reject\n%s",
            old);
    fclose(f);
    free(old);
}

void pgt_pg_start(struct pgt_pg *pg)
{
    char pgctl[300], logfile[300];
    snprintf(pgctl, sizeof pgctl, "%s/pg_ctl", pg->bindir);
    snprintf(logfile, sizeof logfile, "%s/server.log", pg->dir);
    const char *argv[] = {pgctl, "-D", pg->dir, "-l", logfile, "-w", "-t", "30", "start", NULL};
    pgt_run_as_pg(argv, 1);
    pg->running = 1;
}

void pgt_pg_stop(struct pgt_pg *pg)
{
    char pgctl[300];
    if (!pg->running)
        return;
    snprintf(pgctl, sizeof pgctl, "%s/pg_ctl", pg->bindir);
    const char *argv[] = {pgctl, "-D", pg->dir, "-m", "immediate", "-w", "stop", NULL};
    pgt_run_as_pg(argv, 1);
    pg->running = 0;
}

void pgt_pg_destroy(struct pgt_pg *pg)
{
    char cmd[400];
    pgt_pg_stop(pg);
    if (pg->dir[0] && strncmp(pg->dir, "/tmp/", 5) == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", pg->dir);
        int rc = system(cmd);
        (void)rc;
    }
}

const char *pgt_pg_url(const struct pgt_pg *pg, const char *db, char *buf, size_t size)
{
    snprintf(buf, size, "postgres://postgres:%s@127.0.0.1:%d/%s", PGT_PASSWORD, pg->port, db);
    return buf;
}

static void no_notices(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static PGconn *connect_socket(const struct pgt_pg *pg, const char *db)
{
    char port[16];
    snprintf(port, sizeof port, "%d", pg->port);
    const char *kw[] = {"host", "port", "dbname", "user", NULL};
    const char *val[] = {pg->dir, port, db, "postgres", NULL};
    PGconn *c = PQconnectdbParams(kw, val, 0);
    cr_assert(PQstatus(c) == CONNECTION_OK, "test connection failed: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, no_notices, NULL);
    return c;
}

char *pgt_pg_try(const struct pgt_pg *pg, const char *db, const char *sql, char sqlstate[6])
{
    char port[16];
    snprintf(port, sizeof port, "%d", pg->port);
    const char *kw[] = {"host", "port", "dbname", "user", NULL};
    const char *val[] = {pg->dir, port, db, "postgres", NULL};
    PGconn *c = PQconnectdbParams(kw, val, 0);
    char *out = NULL;
    sqlstate[0] = '\0';
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(sqlstate, 6, "08000");
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, no_notices, NULL);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        out = strdup(st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    } else {
        const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(sqlstate, 6, "%s", s ? s : "XX000");
    }
    PQclear(r);
    PQfinish(c);
    return out;
}

char *pgt_pg_query(const struct pgt_pg *pg, const char *db, const char *sql)
{
    PGconn *c = connect_socket(pg, db);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "query failed: %s\n%s", sql,
              PQresultErrorMessage(r));
    char *out = strdup(st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(c);
    return out;
}

void pgt_pg_createdb(const struct pgt_pg *pg, char *name, size_t size)
{
    static unsigned counter;
    char sql[128];
    snprintf(name, size, "t_%d_%u_%lld", (int)getpid(), counter++,
             (long long)(pgt_now_ms() % 100000));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    free(pgt_pg_query(pg, "postgres", sql));
}

/* One server per test binary: PGT_SHARED_PG_HOOKS() starts it in the runner before any
 * test and publishes it through the environment the test processes inherit. */
static struct pgt_pg shared;

struct pgt_pg *pgt_pg_shared(void)
{
    const char *dir = getenv("PGT_SHARED_DIR");
    const char *port = getenv("PGT_SHARED_PORT");
    cr_assert(dir && port, "PGT_SHARED_PG_HOOKS() missing in this test file");
    if (!shared.port) {
        snprintf(shared.dir, sizeof shared.dir, "%s", dir);
        find_bindir(shared.bindir, sizeof shared.bindir);
        shared.port = atoi(port);
        shared.running = 1;
    }
    return &shared;
}

/* ---- listeners --------------------------------------------------------------------------- */

int pgt_tcp_listen(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)*port);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(fd, 64), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

pid_t pgt_http_server(int port, int status)
{
    int p = port;
    int fd = pgt_tcp_listen(&p);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        for (;;) {
            int c = accept(fd, NULL, NULL);
            char buf[4096], resp[256];
            if (c < 0)
                continue;
            ssize_t n = read(c, buf, sizeof buf);
            (void)n;
            int len = snprintf(resp, sizeof resp,
                               "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                               status);
            ssize_t w = write(c, resp, (size_t)len);
            (void)w;
            close(c);
        }
    }
    close(fd);
    return pid;
}

void pgt_kill(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

/* ---- the per-binary shared server ------------------------------------------------------------ */

static struct pgt_pg runner_server;
static pid_t runner_pid;

static void shared_teardown(void)
{
    /* Test processes forked from the runner inherit this handler: only the runner stops it. */
    if (getpid() == runner_pid)
        pgt_pg_destroy(&runner_server);
}

void pgt_shared_pg_setup(void)
{
    char port[16];
    pgt_pg_init(&runner_server);
    pgt_pg_start(&runner_server);
    runner_pid = getpid();
    atexit(shared_teardown);
    snprintf(port, sizeof port, "%d", runner_server.port);
    setenv("PGT_SHARED_DIR", runner_server.dir, 1);
    setenv("PGT_SHARED_PORT", port, 1);
}
