/* --password-file and --password-command: read or run before every attempt, on the real binary
 * against a real PostgreSQL; the reader itself on real files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgentry/db/password.h"
#include "pgt.h"
#include "pgt_hooks.h"

PGT_SHARED_PG_HOOKS()

/* The shared server's URL without the password: only the option can give it. */
static void bare_url(char *buf, size_t size)
{
    snprintf(buf, size, "postgres://postgres@127.0.0.1:%d/postgres", pgt_pg_shared()->port);
}

static void assert_no_password(const struct pgt_proc *p)
{
    cr_assert_null(strstr(p->err, PGT_PASSWORD), "the password was printed: %s", p->err);
    cr_assert_null(strstr(p->out, PGT_PASSWORD), "the password was printed: %s", p->out);
}

/* pgentry wait with a password option and a short wait; returns the exit code. */
static int run_wait(struct pgt_proc *p, const char *flag, const char *value, const char *wait,
                    const char *connect)
{
    char url[256];
    bare_url(url, sizeof url);
    const char *argv[] = {"pgentry",
                          "wait",
                          "--database-url",
                          url,
                          flag,
                          value,
                          "--wait-timeout",
                          wait,
                          "--connect-timeout",
                          connect,
                          "--log-level",
                          "debug",
                          NULL};
    return pgt_run(p, argv, NULL, 60000);
}

Test(password, reader_drops_one_trailing_newline_and_rereads_the_file, .timeout = 10)
{
    char dir[256], path[300], out[PGE_PASSWORD_MAX + 2], err[256];
    pgt_tempdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/pw", dir);
    pgt_write_file(path, "first\n");
    cr_assert_eq(pge_password_read_file(path, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(out, "first");
    pgt_write_file(path, "second\r\n");
    cr_assert_eq(pge_password_read_file(path, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(out, "second");
    pgt_write_file(path, "keeps inner\nlines\n\n");
    cr_assert_eq(pge_password_read_file(path, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(out, "keeps inner\nlines\n");
}

Test(password, reader_errors_name_the_file_never_the_content, .timeout = 10)
{
    char dir[256], path[300], out[PGE_PASSWORD_MAX + 2], err[256];
    pgt_tempdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/missing", dir);
    cr_assert_eq(pge_password_read_file(path, out, sizeof out, err, sizeof err), -1);
    cr_assert(strstr(err, "does not exist yet") && strstr(err, path), "%s", err);

    cr_assert_eq(pge_password_read_file(dir, out, sizeof out, err, sizeof err), -1);
    cr_assert(strstr(err, "not a regular file"), "%s", err);

    snprintf(path, sizeof path, "%s/empty", dir);
    pgt_write_file(path, "\n");
    cr_assert_eq(pge_password_read_file(path, out, sizeof out, err, sizeof err), -1);
    cr_assert(strstr(err, "is empty"), "%s", err);

    char *big = malloc(PGE_PASSWORD_MAX + 2);
    cr_assert_not_null(big);
    memset(big, 'x', PGE_PASSWORD_MAX + 1);
    big[PGE_PASSWORD_MAX + 1] = '\0';
    snprintf(path, sizeof path, "%s/big", dir);
    pgt_write_file(path, big);
    cr_assert_eq(pge_password_read_file(path, out, sizeof out, err, sizeof err), -1);
    cr_assert(strstr(err, "longer than 4096"), "%s", err);
    cr_assert_null(strstr(err, "xxxx"), "%s", err);
    big[PGE_PASSWORD_MAX] = '\0';
    pgt_write_file(path, big);
    cr_assert_eq(pge_password_read_file(path, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert_eq(strlen(out), PGE_PASSWORD_MAX);
    free(big);
}

Test(password, file_that_appears_late_is_waited_for_then_used, .timeout = 60)
{
    char dir[256], path[300], url[256];
    struct pgt_proc p;
    pgt_tempdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/secret/password", dir);
    bare_url(url, sizeof url);
    const char *argv[] = {
        "pgentry", "wait",        "--database-url", url, "--password-file", path, "--wait-timeout",
        "30s",     "--log-level", "debug",          NULL};
    pgt_proc_spawn(&p, argv, NULL);
    cr_assert_eq(pgt_wait_for_text(p.err_path, "does not exist yet", 20000), 0,
                 "the missing file was not reported as not ready");
    /* First an empty file (a secret being written): still not ready, and proof that the file
     * is read again on each attempt, not only checked for existence. */
    pgt_write_file(path, "");
    cr_assert_eq(pgt_wait_for_text(p.err_path, "is empty", 20000), 0);
    pgt_write_file(path, PGT_PASSWORD "\n");
    cr_assert_eq(pgt_proc_wait(&p, 30000), 0, "%s", p.err);
    assert_no_password(&p);
    pgt_proc_free(&p);
}

Test(password, file_wins_over_a_wrong_password_in_the_url_and_wrong_file_is_77, .timeout = 60)
{
    char dir[256], path[300], url[256];
    struct pgt_proc p;
    pgt_tempdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/pw", dir);
    pgt_write_file(path, PGT_PASSWORD "\n");
    snprintf(url, sizeof url, "postgres://postgres:wrong-in-url@127.0.0.1:%d/postgres",
             pgt_pg_shared()->port);
    const char *argv[] = {
        "pgentry", "wait", "--database-url", url, "--password-file", path, "--wait-timeout",
        "20s",     NULL};
    cr_assert_eq(pgt_run(&p, argv, NULL, 30000), 0, "%s", p.err);
    pgt_proc_free(&p);

    pgt_write_file(path, "wrong-in-file\n");
    cr_assert_eq(pgt_run(&p, argv, NULL, 30000), 77, "%s", p.err);
    cr_assert_null(strstr(p.err, "wrong-in-file"), "%s", p.err);
    pgt_proc_free(&p);
}

Test(password, command_output_is_the_password, .timeout = 60)
{
    struct pgt_proc p;
    cr_assert_eq(run_wait(&p, "--password-command", "printf '%s\\n' " PGT_PASSWORD, "20s", "5s"), 0,
                 "%s", p.err);
    assert_no_password(&p);
    pgt_proc_free(&p);
}

Test(password, command_sees_only_descriptors_0_1_2_and_stdin_is_dev_null, .timeout = 60)
{
    char dir[256], cmd[1024];
    struct pgt_proc p;
    pgt_tempdir(dir, sizeof dir);
    /* $$ is the shell pgentry started: its descriptors, listed from a subshell so that the
     * shell's own redirections (which save descriptors above 9) are not in the listing. */
    snprintf(cmd, sizeof cmd,
             "(ls /proc/$$/fd > %s/fds; readlink /proc/$$/fd/0 > %s/stdin); printf %s", dir, dir,
             PGT_PASSWORD);
    cr_assert_eq(run_wait(&p, "--password-command", cmd, "20s", "5s"), 0, "%s", p.err);
    pgt_proc_free(&p);
    snprintf(cmd, sizeof cmd, "%s/fds", dir);
    char *fds = pgt_read_file(cmd);
    cr_assert_str_eq(fds, "0\n1\n2\n");
    free(fds);
    snprintf(cmd, sizeof cmd, "%s/stdin", dir);
    char *in = pgt_read_file(cmd);
    cr_assert_str_eq(in, "/dev/null\n");
    free(in);
}

Test(password, failing_command_is_retried_as_not_ready, .timeout = 60)
{
    struct pgt_proc p;
    cr_assert_eq(run_wait(&p, "--password-command", "echo vault sealed >&2; exit 3", "2s", "5s"),
                 69, "%s", p.err);
    cr_assert(strstr(p.err, "password command exited with status 3"), "%s", p.err);
    cr_assert(strstr(p.err, "vault sealed"), "its stderr is pgentry's: %s", p.err);
    pgt_proc_free(&p);
}

/* The password belongs to the attempt, not to one host: a failing command must not send the
 * other hosts of a multi-host URL a connection without it (refused for good: exit 77). */
Test(password, failing_command_with_several_hosts_is_still_not_ready, .timeout = 60)
{
    struct pgt_proc p;
    char url[256];
    int port = pgt_pg_shared()->port;
    snprintf(url, sizeof url, "postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres", port, port);
    const char *argv[] = {"pgentry",
                          "wait",
                          "--database-url",
                          url,
                          "--password-command",
                          "exit 3",
                          "--wait-timeout",
                          "2s",
                          "--connect-timeout",
                          "5s",
                          NULL};
    cr_assert_eq(pgt_run(&p, argv, NULL, 60000), 69, "%s", p.err);
    cr_assert(strstr(p.err, "password command exited with status 3"), "%s", p.err);
    pgt_proc_free(&p);
}

Test(password, command_that_prints_nothing_is_an_error, .timeout = 60)
{
    struct pgt_proc p;
    cr_assert_eq(run_wait(&p, "--password-command", "true", "2s", "5s"), 69, "%s", p.err);
    cr_assert(strstr(p.err, "printed nothing"), "%s", p.err);
    pgt_proc_free(&p);
}

Test(password, hanging_command_is_killed_at_connect_timeout_and_retried, .timeout = 60)
{
    char dir[256], cmd[1024], path[300];
    struct pgt_proc p;
    pgt_tempdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/pids", dir);
    /* The shell and its child both record themselves: the whole group must go. */
    snprintf(cmd, sizeof cmd, "echo $$ >> %s; sh -c 'echo $$ >> %s; exec sleep 100'; true", path,
             path);
    int64_t t0 = pgt_now_ms();
    cr_assert_eq(run_wait(&p, "--password-command", cmd, "3s", "400ms"), 69, "%s", p.err);
    cr_assert_lt(pgt_now_ms() - t0, 20000);
    cr_assert(strstr(p.err, "password command did not finish after"), "%s", p.err);
    pgt_proc_free(&p);

    char *pids = pgt_read_file(path);
    int n = 0;
    for (char *s = pids, *end; *s; s = end) {
        long pid = strtol(s, &end, 10);
        if (end == s)
            break;
        n++;
        /* Orphans of pgentry are reaped by this runner's init: poll until they are gone. */
        int alive = 1;
        for (int i = 0; i < 200 && alive; i++) {
            char stat[64];
            snprintf(stat, sizeof stat, "/proc/%ld/stat", pid);
            char *st = pgt_read_file(stat);
            char *close_paren = strrchr(st, ')');
            alive = st[0] && !(close_paren && close_paren[2] == 'Z');
            free(st);
            if (alive)
                usleep(10000);
        }
        cr_assert_not(alive, "process %ld of the password command still runs", pid);
    }
    cr_assert_geq(n, 4, "the command should have been retried: %s", pids);
    free(pids);
}

Test(password, both_options_are_a_usage_error, .timeout = 30)
{
    struct pgt_proc p;
    const char *argv[] = {"pgentry",
                          "wait",
                          "--database-url",
                          "postgres://x@127.0.0.1/x",
                          "--password-file",
                          "/x",
                          "--password-command",
                          "true",
                          NULL};
    cr_assert_eq(pgt_run(&p, argv, NULL, 10000), 64, "%s", p.err);
    cr_assert(strstr(p.err, "keep one"), "%s", p.err);
    pgt_proc_free(&p);
}
