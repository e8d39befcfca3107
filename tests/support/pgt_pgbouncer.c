/* A throwaway PgBouncer in front of a test's PostgreSQL server, in session or transaction mode. */
#include "pgt_pgbouncer.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PGBOUNCER_BIN "/usr/sbin/pgbouncer"

int pgt_bouncer_available(void)
{
    return access(PGBOUNCER_BIN, X_OK) == 0;
}

static int accepts(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void write_config(struct pgt_bouncer *b, const struct pgt_pg *pg, const char *mode,
                         int pool_size)
{
    char path[320], auth[320], text[2048];
    snprintf(auth, sizeof auth, "%s/userlist.txt", b->dir);
    pgt_write_file(auth, "\"postgres\" \"\"\n");
    /* The server side goes over the socket (trust); clients are trusted too: these tests are
     * about pooling, not authentication. server_reset_query is the default (DISCARD ALL). */
    snprintf(text, sizeof text,
             "[databases]\n* = host=%s port=%d user=postgres\n"
             "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\n"
             "auth_type = trust\nauth_file = %s\npool_mode = %s\nmax_client_conn = 200\n"
             "default_pool_size = %d\nmin_pool_size = 0\nlogfile = %s/pgbouncer.log\n"
             "ignore_startup_parameters = extra_float_digits,options\n",
             pg->dir, pg->port, b->port, auth, mode, pool_size, b->dir);
    snprintf(path, sizeof path, "%s/pgbouncer.ini", b->dir);
    pgt_write_file(path, text);
}

void pgt_bouncer_start(struct pgt_bouncer *b, const struct pgt_pg *pg, const char *mode,
                       int pool_size)
{
    char ini[320];
    memset(b, 0, sizeof *b);
    pgt_tempdir(b->dir, sizeof b->dir);
    b->port = pgt_free_port();
    write_config(b, pg, mode, pool_size);
    snprintf(ini, sizeof ini, "%s/pgbouncer.ini", b->dir);
    /* PgBouncer refuses to run as root. */
    struct passwd *pw = geteuid() == 0 ? getpwnam("postgres") : NULL;
    if (pw) {
        cr_assert_eq(chown(b->dir, pw->pw_uid, pw->pw_gid), 0, "chown: %s", strerror(errno));
        chmod(b->dir, 0755);
    }
    pid_t parent = getpid();
    b->pid = fork();
    cr_assert(b->pid >= 0, "fork: %s", strerror(errno));
    if (b->pid == 0) {
        if (pw && (setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0))
            _exit(111);
        /* Set after the uid change (which clears it): a failing test leaves no bouncer. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(0);
        execl(PGBOUNCER_BIN, "pgbouncer", "-q", ini, (char *)NULL);
        _exit(127);
    }
    int64_t deadline = pgt_now_ms() + 20000;
    while (!accepts(b->port)) {
        int st;
        if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
            char log[320];
            snprintf(log, sizeof log, "%s/pgbouncer.log", b->dir);
            char *text = pgt_read_file(log);
            cr_assert_fail("pgbouncer exited (status %d): %s", st, text);
        }
        cr_assert(pgt_now_ms() < deadline, "pgbouncer did not listen within 20 s");
        usleep(20000);
    }
}

const char *pgt_bouncer_url(const struct pgt_bouncer *b, const char *db, char *buf, size_t size)
{
    snprintf(buf, size, "postgres://postgres:%s@127.0.0.1:%d/%s", PGT_PASSWORD, b->port, db);
    return buf;
}

void pgt_bouncer_stop(struct pgt_bouncer *b)
{
    int st;
    if (b->pid <= 0)
        return;
    kill(b->pid, SIGTERM);
    waitpid(b->pid, &st, 0);
    b->pid = 0;
}
