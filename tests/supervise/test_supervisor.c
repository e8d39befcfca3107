/* Supervision as init: the real binary, real processes, PID 1 of its own namespace when root. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgt.h"
#include "pgt_proc_ns.h"

#define CHILD       PGT_CHILD_BIN
#define MAX_STARTED 4

/* What this test started, killed with everything below it when the test ends, passed or
 * failed: a failed assertion must not leave pgentry and its children behind. */
static pid_t started[MAX_STARTED];
static size_t nstarted;

static void kill_leftovers(void)
{
    for (size_t i = 0; i < nstarted; i++)
        pgt_kill_tree(started[i]);
    nstarted = 0;
}

TestSuite(supervisor, .fini = kill_leftovers);

static void spawn(struct pgt_proc *p, const char *const *argv)
{
    pgt_proc_spawn(p, argv, NULL);
    if (nstarted < MAX_STARTED)
        started[nstarted++] = p->pid;
}

static void ns_spawn(struct pgt_proc *p, const char *const *argv)
{
    pgt_ns_spawn(p, argv, NULL);
    if (nstarted < MAX_STARTED)
        started[nstarted++] = p->pid;
}

/* A scratch directory every user may write to (--user runs COMMAND as nobody), and a file
 * path in it. */
static void scratch(char *dir, size_t dsize, char *file, size_t fsize, const char *name)
{
    pgt_tempdir(dir, dsize);
    cr_assert_eq(chmod(dir, 0777), 0, "chmod: %s", strerror(errno));
    snprintf(file, fsize, "%s/%s", dir, name);
}

static void wait_text(const char *file, const char *needle, int ms)
{
    if (pgt_wait_for_text(file, needle, ms) < 0) {
        char *s = pgt_read_file(file);
        cr_assert_fail("\"%s\" did not appear in %s within %d ms; it holds:\n%s", needle, file, ms,
                       s);
    }
}

/* The text after "key" in the file's first line holding it, as an integer. */
static long field(const char *file, const char *key)
{
    char *s = pgt_read_file(file);
    char *p = strstr(s, key);
    cr_assert_not_null(p, "no %s in %s:\n%s", key, file, s);
    long v = strtol(p + strlen(key), NULL, 10);
    free(s);
    return v;
}

static int count_lines(const char *file, const char *line)
{
    char *s = pgt_read_file(file);
    int n = 0;
    size_t len = strlen(line);
    for (char *p = s; *p;) {
        char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        n += l == len && strncmp(p, line, len) == 0;
        p += l + (nl ? 1 : 0);
    }
    free(s);
    return n;
}

/* ---- reaping ----------------------------------------------------------------------------- */

Test(supervisor, orphans_exiting_together_are_all_reaped_as_pid1, .timeout = 60)
{
    pgt_ns_require();
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "orphans");
    const char *argv[] = {"--health-addr", "off", "--", CHILD,   "orphans", "300",
                          "1500",          file,  "0",  "check", NULL};
    ns_spawn(&p, argv);
    int rc = pgt_proc_wait(&p, 30000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    /* pgentry, the main child and the 300 orphans were alive at once... */
    cr_assert_geq(field(file, "before procs="), 302, "orphans were not all alive together");
    /* ...and once they exited, only pgentry and the main child remain (the child polls 10 s). */
    cr_assert_eq(field(file, "zombies="), 0, "zombies left:\n%s", pgt_read_file(file));
    cr_assert_eq(field(file, "after procs="), 2, "processes left:\n%s", pgt_read_file(file));
    pgt_proc_free(&p);
}

Test(supervisor, orphan_is_adopted_and_reaped_when_not_pid1, .timeout = 30)
{
    char dir[256], file[320], want[64];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "adopt");
    const char *argv[] = {"pgentry", "--health-addr", "off", "--", CHILD, "adopt", file, NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    snprintf(want, sizeof want, "adopted-by=%d", (int)p.pid);
    cr_assert_eq(count_lines(file, want), 1, "not adopted by pgentry (pid %d):\n%s", (int)p.pid,
                 pgt_read_file(file));
    /* '-' = gone: reaped, not a zombie ('Z'). */
    cr_assert_eq(count_lines(file, "grandchild-state=-"), 1, "%s", pgt_read_file(file));
    pgt_proc_free(&p);
}

Test(supervisor, main_exit_coinciding_with_orphans_never_hangs, .timeout = 180)
{
    pgt_ns_require();
    char dir[256], file[320];
    scratch(dir, sizeof dir, file, sizeof file, "race");
    for (int i = 0; i < 30; i++) {
        struct pgt_proc p;
        const char *argv[] = {"--health-addr", "off", "--", CHILD,  "orphans", "20",
                              "150",           file,  "5",  "race", NULL};
        ns_spawn(&p, argv);
        int rc = pgt_proc_wait(&p, 5000);
        cr_assert_eq(rc, 5, "run %d: exit %d, stderr:\n%s", i, rc, p.err);
        cr_assert_lt(p.elapsed_ms, 3000, "run %d took %lld ms", i, (long long)p.elapsed_ms);
        pgt_proc_free(&p);
    }
}

/* ---- signals ----------------------------------------------------------------------------- */

Test(supervisor, signals_from_outside_the_namespace_reach_the_child, .timeout = 30)
{
    pgt_ns_require();
    static const int sigs[] = {SIGHUP, SIGWINCH, SIGUSR1};
    static const char *const names[] = {"HUP", "WINCH", "USR1"};
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "signals");
    const char *argv[] = {"--health-addr", "off", "--", CHILD, "signals", file, "42", NULL};
    ns_spawn(&p, argv);
    pid_t init = pgt_ns_init_pid(&p, 5000);
    wait_text(file, "ready", 5000);
    for (size_t i = 0; i < 3; i++) {
        char line[16];
        cr_assert_eq(kill(init, sigs[i]), 0);
        snprintf(line, sizeof line, "\n%s\n", names[i]);
        wait_text(file, line, 5000);
    }
    cr_assert_eq(kill(init, SIGTERM), 0);
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, 42, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert_eq(count_lines(file, "TERM"), 1, "%s", pgt_read_file(file));
    pgt_proc_free(&p);
}

Test(supervisor, signals_from_inside_the_namespace_reach_the_child, .timeout = 30)
{
    pgt_ns_require();
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "signals");
    /* The child signals its parent, PID 1, and waits for each signal to come back. */
    const char *argv[] = {"--health-addr", "off", "--", CHILD, "signals", file, "43", "self", NULL};
    ns_spawn(&p, argv);
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, 43, "exit %d, stderr:\n%s", rc, p.err);
    char *s = pgt_read_file(file);
    cr_assert(strstr(s, "\nHUP\nWINCH\nUSR1\nTERM\n"), "got:\n%s", s);
    free(s);
    pgt_proc_free(&p);
}

Test(supervisor, rewrite_term_to_quit_delivers_quit, .timeout = 30)
{
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "signals");
    const char *argv[] = {"pgentry",   "--health-addr",  "off",   "--rewrite",
                          "TERM:QUIT", "--stop-timeout", "500ms", "--",
                          CHILD,       "signals",        file,    "0",
                          NULL};
    spawn(&p, argv);
    wait_text(file, "ready", 5000);
    cr_assert_eq(kill(p.pid, SIGTERM), 0);
    /* The child ends only on TERM, which it never gets: the stop timeout KILLs it. */
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, 137, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert_eq(count_lines(file, "QUIT"), 1, "%s", pgt_read_file(file));
    cr_assert_eq(count_lines(file, "TERM"), 0, "%s", pgt_read_file(file));
    pgt_proc_free(&p);
}

Test(supervisor, rewrite_to_zero_drops_the_signal, .timeout = 30)
{
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "signals");
    const char *argv[] = {"pgentry", "--health-addr", "off", "--rewrite", "USR1:0", "--",
                          CHILD,     "signals",       file,  "9",         NULL};
    spawn(&p, argv);
    wait_text(file, "ready", 5000);
    cr_assert_eq(kill(p.pid, SIGUSR1), 0);
    cr_assert_eq(kill(p.pid, SIGHUP), 0);
    wait_text(file, "HUP", 5000);
    cr_assert_eq(kill(p.pid, SIGTERM), 0);
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, 9, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert_eq(count_lines(file, "USR1"), 0, "%s", pgt_read_file(file));
    pgt_proc_free(&p);
}

static void group_run(int signal_group, int expect_grand_usr1)
{
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "group");
    const char *argv[] = {
        "pgentry", "--health-addr", "off", "--signal-group", "--", CHILD, "group", file, NULL};
    if (!signal_group)
        argv[3] = "--no-migrate"; /* a harmless option in its place */
    spawn(&p, argv);
    wait_text(file, "main:ready", 5000);
    wait_text(file, "grand:ready", 5000);
    cr_assert_eq(kill(p.pid, SIGUSR1), 0);
    wait_text(file, "main:USR1", 5000);
    if (expect_grand_usr1)
        wait_text(file, "grand:USR1", 5000);
    else
        usleep(300 * 1000);
    cr_assert_eq(count_lines(file, "grand:USR1"), expect_grand_usr1, "%s", pgt_read_file(file));
    cr_assert_eq(kill(p.pid, SIGTERM), 0);
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    /* Either way the grandchild ends with TERM: forwarded to the group, or sent by the
     * cleanup once the main child is gone. */
    cr_assert_eq(count_lines(file, "grand:TERM"), 1, "%s", pgt_read_file(file));
    pgt_proc_free(&p);
}

Test(supervisor, signal_group_reaches_grandchildren, .timeout = 30)
{
    group_run(1, 1);
}

Test(supervisor, without_signal_group_only_the_child_is_signalled, .timeout = 30)
{
    group_run(0, 0);
}

/* ---- exit codes -------------------------------------------------------------------------- */

Test(supervisor, exit_codes_pass_through, .timeout = 60)
{
    static const struct {
        const char *cmd, *arg;
        int want;
    } cases[] = {
        {"exit", "3", 3},       {"exit", "255", 255},   {"exit", "0", 0},
        {"raise", "KILL", 137}, {"raise", "TERM", 143}, {"raise", "SEGV", 139},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pgt_proc p;
        const char *argv[] = {"pgentry", "--health-addr", "off",        "--",
                              CHILD,     cases[i].cmd,    cases[i].arg, NULL};
        int rc = pgt_run(&p, argv, NULL, 10000);
        cr_assert_eq(rc, cases[i].want, "%s %s: exit %d, stderr:\n%s", cases[i].cmd, cases[i].arg,
                     rc, p.err);
        pgt_proc_free(&p);
    }
}

Test(supervisor, exit_code_of_the_child_as_pid1, .timeout = 30)
{
    pgt_ns_require();
    struct pgt_proc p;
    const char *argv[] = {"--health-addr", "off", "--", CHILD, "raise", "TERM", NULL};
    ns_spawn(&p, argv);
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, 143, "exit %d, stderr:\n%s", rc, p.err);
    pgt_proc_free(&p);
}

Test(supervisor, missing_command_is_127, .timeout = 30)
{
    struct pgt_proc p;
    const char *argv[] = {"pgentry", "--health-addr", "off", "--", "pgt-no-such-command", NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 127, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "command not found: pgt-no-such-command"), "%s", p.err);
    pgt_proc_free(&p);
}

Test(supervisor, non_executable_file_is_126, .timeout = 30)
{
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "script.sh");
    pgt_write_file(file, "#!/bin/sh\nexit 0\n");
    cr_assert_eq(chmod(file, 0644), 0);
    const char *argv[] = {"pgentry", "--health-addr", "off", "--", file, NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 126, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "cannot execute"), "%s", p.err);
    cr_assert(strstr(p.err, "Permission denied"), "%s", p.err);
    pgt_proc_free(&p);
}

/* ---- stopping ---------------------------------------------------------------------------- */

static void cleanup_run(int as_pid1)
{
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "cleanup");
    const char *args[] = {"--health-addr", "off", "--", CHILD, "cleanup", file, NULL};
    const char *argv[] = {"pgentry", "--health-addr", "off", "--", CHILD, "cleanup", file, NULL};
    if (as_pid1)
        ns_spawn(&p, args);
    else
        spawn(&p, argv);
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, 7, "exit %d, stderr:\n%s", rc, p.err);
    char *s = pgt_read_file(file);
    cr_assert(strstr(s, "main:exit\nhelper:TERM\nhelper:done\n"), "got:\n%s", s);
    free(s);
    cr_assert_geq(p.elapsed_ms, 500, "pgentry did not wait for the helper (%lld ms)",
                  (long long)p.elapsed_ms);
    cr_assert(strstr(p.err, "stopping the remaining processes"), "%s", p.err);
    pgt_proc_free(&p);
}

Test(supervisor, helper_gets_term_and_finishes_before_exit_as_pid1, .timeout = 30)
{
    pgt_ns_require();
    cleanup_run(1);
}

Test(supervisor, helper_gets_term_and_finishes_before_exit_as_subreaper, .timeout = 30)
{
    cleanup_run(0);
}

Test(supervisor, child_ignoring_term_is_killed_after_stop_timeout, .timeout = 30)
{
    pgt_ns_require();
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "ignore");
    const char *argv[] = {
        "--health-addr", "off", "--stop-timeout", "1s", "--", CHILD, "ignore-term", file, NULL};
    ns_spawn(&p, argv);
    pid_t init = pgt_ns_init_pid(&p, 5000);
    wait_text(file, "ready", 5000);
    int64_t t0 = pgt_now_ms();
    cr_assert_eq(kill(init, SIGTERM), 0);
    int rc = pgt_proc_wait(&p, 10000);
    int64_t took = pgt_now_ms() - t0;
    cr_assert_eq(rc, 137, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert_geq(took, 1000, "killed before the stop timeout: %lld ms", (long long)took);
    cr_assert_leq(took, 1500, "killed too late: %lld ms", (long long)took);
    pgt_proc_free(&p);
}

static void stop_before_command(int sig, int want)
{
    char dir[256], file[320], addr[64];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "status");
    snprintf(addr, sizeof addr, "127.0.0.1:%d", pgt_free_port());
    const char *argv[] = {"pgentry", "--health-addr",  "off", "--wait-tcp",
                          addr,      "--wait-timeout", "30s", "--",
                          CHILD,     "status",         file,  NULL};
    spawn(&p, argv);
    wait_text(p.err_path, "waiting for dependency", 10000);
    cr_assert_eq(kill(p.pid, sig), 0);
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, want, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert_eq(access(file, F_OK), -1, "COMMAND ran although pgentry was stopped first");
    pgt_proc_free(&p);
}

Test(supervisor, stop_signal_before_the_command_starts_is_128_plus_n, .timeout = 30)
{
    stop_before_command(SIGTERM, 143);
    stop_before_command(SIGINT, 130);
    stop_before_command(SIGQUIT, 131);
}

/* ---- the child's start ------------------------------------------------------------------- */

Test(supervisor, child_starts_with_default_mask_and_no_ignored_signals, .timeout = 30)
{
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "status");
    /* Started normally (nothing blocked, nothing ignored): the child has the defaults, even
     * though pgentry itself ignores SIGPIPE and handles every other signal. */
    const char *argv[] = {PGT_PGENTRY_BIN, "--health-addr", "off", "--",
                          CHILD,           "status",        file,  NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert_eq(count_lines(file, "SigBlk:\t0000000000000000"), 1, "%s", pgt_read_file(file));
    cr_assert_eq(count_lines(file, "SigIgn:\t0000000000000000"), 1, "%s", pgt_read_file(file));
    pgt_proc_free(&p);
}

Test(supervisor, child_gets_the_original_mask_and_default_dispositions, .timeout = 30)
{
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "status");
    /* pgentry itself starts with USR2 and INT blocked, HUP and QUIT ignored: the child gets
     * the same mask back (bits 1 and 11: INT and USR2), but nothing ignored. */
    const char *argv[] = {CHILD, "masked", PGT_PGENTRY_BIN, "--health-addr",
                          "off", "--",     CHILD,           "status",
                          file,  NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert_eq(count_lines(file, "SigBlk:\t0000000000000802"), 1, "%s", pgt_read_file(file));
    cr_assert_eq(count_lines(file, "SigIgn:\t0000000000000000"), 1, "%s", pgt_read_file(file));
    pgt_proc_free(&p);
}

Test(supervisor, signals_blocked_or_ignored_at_start_are_still_forwarded, .timeout = 30)
{
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "signals");
    const char *argv[] = {
        CHILD, "masked", PGT_PGENTRY_BIN, "--health-addr", "off", "--", CHILD, "signals", file,
        "0",   NULL};
    spawn(&p, argv);
    wait_text(file, "ready", 5000);
    cr_assert_eq(kill(p.pid, SIGUSR2), 0);
    wait_text(file, "USR2", 5000);
    cr_assert_eq(kill(p.pid, SIGHUP), 0);
    wait_text(file, "HUP", 5000);
    cr_assert_eq(kill(p.pid, SIGTERM), 0);
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    pgt_proc_free(&p);
}

/* Run COMMAND under --user spec and check the identity it reports (ids as "Uid:\t..." lines
 * of /proc/self/status, the only supplementary group, HOME). */
static void user_run(const char *spec, const char *uid, const char *gid, const char *home)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to switch users");
    char dir[256], file[320], line[128];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "status");
    const char *argv[] = {"pgentry", "--health-addr", "off",    "--user", spec,
                          "--",      CHILD,           "status", file,     NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    char *got = pgt_read_file(file);
    snprintf(line, sizeof line, "Uid:\t%s\t%s\t%s\t%s", uid, uid, uid, uid);
    cr_assert_eq(count_lines(file, line), 1, "want %s in:\n%s", line, got);
    snprintf(line, sizeof line, "Gid:\t%s\t%s\t%s\t%s", gid, gid, gid, gid);
    cr_assert_eq(count_lines(file, line), 1, "want %s in:\n%s", line, got);
    /* The starting (root) groups are gone: only the primary group remains. */
    snprintf(line, sizeof line, "Groups:\t%s ", gid);
    cr_assert_eq(count_lines(file, line), 1, "want %s in:\n%s", line, got);
    snprintf(line, sizeof line, "HOME=%s", home);
    cr_assert_eq(count_lines(file, line), 1, "want %s in:\n%s", line, got);
    free(got);
    pgt_proc_free(&p);
}

Test(supervisor, user_nobody_runs_as_65534_with_groups_dropped, .timeout = 30)
{
    user_run("nobody", "65534", "65534", "/nonexistent");
}

Test(supervisor, user_numeric_needs_no_passwd_entry, .timeout = 30)
{
    user_run("43210:43211", "43210", "43211", "/");
    user_run("43212", "43212", "43212", "/");
}

Test(supervisor, unknown_user_is_78_and_the_command_never_runs, .timeout = 30)
{
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "status");
    const char *argv[] = {"pgentry", "--health-addr", "off",    "--user", "pgt-no-such-user",
                          "--",      CHILD,           "status", file,     NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 78, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "unknown user"), "%s", p.err);
    cr_assert_eq(access(file, F_OK), -1, "COMMAND ran");
    pgt_proc_free(&p);
}

/* ---- --exec ------------------------------------------------------------------------------ */

Test(supervisor, exec_replaces_pgentry, .timeout = 30)
{
    struct pgt_proc p;
    char want[32];
    const char *argv[] = {"pgentry", "--health-addr", "off", "--exec", "--", "/bin/sh",
                          "-c",      "echo $$",       NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    snprintf(want, sizeof want, "%d\n", (int)p.pid);
    cr_assert_str_eq(p.out, want, "COMMAND did not take pgentry's pid");
    pgt_proc_free(&p);
}

Test(supervisor, exec_does_not_hand_on_the_subreaper_flag, .timeout = 30)
{
    /* The flag survives execve: an app exec'd by pgentry would collect orphans it never
     * reaps. */
    struct pgt_proc p;
    char dir[256], file[300];
    scratch(dir, sizeof dir, file, sizeof file, "subreaper");
    const char *argv[] = {"pgentry", "--health-addr", "off", "--exec", "--",
                          CHILD,     "subreaper",     file,  NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    char *notes = pgt_read_file(file);
    cr_assert_str_eq(notes, "subreaper=0\n");
    free(notes);
    pgt_proc_free(&p);
}

Test(supervisor, exec_as_pid1_warns_that_nothing_reaps, .timeout = 30)
{
    pgt_ns_require();
    struct pgt_proc p;
    const char *argv[] = {"--health-addr", "off", "--exec", "--", "/bin/sh", "-c", "echo $$", NULL};
    ns_spawn(&p, argv);
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert_str_eq(p.out, "1\n");
    cr_assert(strstr(p.err, "--exec as PID 1"), "no warning:\n%s", p.err);
    pgt_proc_free(&p);
}

Test(supervisor, exec_of_a_missing_command_is_127, .timeout = 30)
{
    struct pgt_proc p;
    const char *argv[] = {"pgentry", "--health-addr",       "off", "--exec",
                          "--",      "pgt-no-such-command", NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 127, "exit %d, stderr:\n%s", rc, p.err);
    pgt_proc_free(&p);
}

Test(supervisor, help_says_what_exec_gives_up, .timeout = 30)
{
    struct pgt_proc p;
    const char *argv[] = {"pgentry", "--help", NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 0);
    cr_assert(strstr(p.out, "no health"), "%s", p.out);
    cr_assert(strstr(p.out, "no zombie reaping"), "%s", p.out);
    cr_assert(strstr(p.out, "no stop"), "%s", p.out);
    pgt_proc_free(&p);
}

/* ---- terminal ---------------------------------------------------------------------------- */

struct pty_run {
    pid_t pid;
    int master;
    char out[16384];
    size_t n;
};

/* Read what the terminal shows for up to ms (keeps writers from blocking). */
static void pty_pump(struct pty_run *t, int ms)
{
    struct pollfd pfd = {.fd = t->master, .events = POLLIN};
    if (poll(&pfd, 1, ms) <= 0)
        return;
    ssize_t r = read(t->master, t->out + t->n, sizeof t->out - 1 - t->n);
    if (r > 0)
        t->n += (size_t)r;
    t->out[t->n] = '\0';
}

static void pty_wait_text(struct pty_run *t, const char *file, const char *needle, int ms)
{
    int64_t deadline = pgt_now_ms() + ms;
    while (pgt_now_ms() < deadline) {
        char *s = pgt_read_file(file);
        int found = strstr(s, needle) != NULL;
        free(s);
        if (found)
            return;
        pty_pump(t, 5);
    }
    cr_assert_fail("\"%s\" not in %s after %d ms; terminal:\n%s", needle, file, ms, t->out);
}

static int pty_wait(struct pty_run *t, int ms)
{
    int64_t deadline = pgt_now_ms() + ms;
    int st;
    while (waitpid(t->pid, &st, WNOHANG) != t->pid) {
        if (pgt_now_ms() > deadline) {
            kill(t->pid, SIGKILL);
            waitpid(t->pid, &st, 0);
            cr_assert_fail("no exit within %d ms; terminal:\n%s", ms, t->out);
        }
        pty_pump(t, 5);
    }
    pty_pump(t, 0);
    close(t->master);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The foreground process group of the terminal whose session leader is pid. */
static long tpgid_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char s[1024];
    long v = -1;
    if (pgt_read_proc(path, s, sizeof s) < 0)
        return -1;
    char *p = strrchr(s, ')');
    /* After ')': state ppid pgrp session tty_nr tpgid */
    if (p)
        sscanf(p + 1, " %*c %*d %*d %*d %*d %ld", &v);
    return v;
}

static void pty_spawn(struct pty_run *t, const char *const *argv)
{
    memset(t, 0, sizeof *t);
    t->pid = forkpty(&t->master, NULL, NULL, NULL);
    cr_assert(t->pid >= 0, "forkpty: %s", strerror(errno));
    if (t->pid > 0 && nstarted < MAX_STARTED)
        started[nstarted++] = t->pid;
    if (t->pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
}

Test(supervisor, tty_command_gets_the_foreground, .timeout = 30)
{
    char dir[256], file[320];
    struct pty_run t;
    scratch(dir, sizeof dir, file, sizeof file, "status");
    const char *argv[] = {PGT_PGENTRY_BIN, "--health-addr", "off", "--",
                          CHILD,           "status",        file,  NULL};
    pty_spawn(&t, argv);
    int rc = pty_wait(&t, 10000);
    cr_assert_eq(rc, 0, "exit %d; terminal:\n%s", rc, t.out);
    long pgrp = field(file, "pgrp=");
    cr_assert_eq(field(file, "tpgid="), pgrp, "COMMAND is not the foreground:\n%s",
                 pgt_read_file(file));
    /* pgentry is the session leader here: its group is its pid, and COMMAND has its own. */
    cr_assert_eq(field(file, "parent_pgrp="), t.pid);
    cr_assert_neq(pgrp, t.pid);
}

Test(supervisor, tty_ctrl_c_goes_to_the_command_directly, .timeout = 30)
{
    char dir[256], file[320], script[700];
    struct pty_run t;
    scratch(dir, sizeof dir, file, sizeof file, "status");
    snprintf(script, sizeof script, "%s status %s; exec sleep 30", CHILD, file);
    const char *argv[] = {PGT_PGENTRY_BIN, "--health-addr",
                          "off",           "--log-level",
                          "debug",         "--",
                          "/bin/sh",       "-c",
                          script,          NULL};
    pty_spawn(&t, argv);
    pty_wait_text(&t, file, "parent_pgrp=", 10000);
    cr_assert_eq(write(t.master, "\x03", 1), 1);
    int rc = pty_wait(&t, 10000);
    cr_assert_eq(rc, 130, "exit %d; terminal:\n%s", rc, t.out);
    /* The terminal signalled COMMAND's group; pgentry, in the background, got nothing. */
    cr_assert_null(strstr(t.out, "forwarding signal"), "%s", t.out);
}

/* A minimal job-control shell on the pty: runs pgentry as a job in the foreground, reports
 * the job stopping, then resumes it in the foreground (fg) and reports how it ended. */
static void mini_shell(const char *const *argv, const char *report)
{
    int st;
    signal(SIGTTOU, SIG_IGN);
    pid_t job = fork();
    if (job == 0) {
        setpgid(0, 0);
        tcsetpgrp(0, getpid());
        signal(SIGTTOU, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    setpgid(job, job);
    tcsetpgrp(0, job);
    if (waitpid(job, &st, WUNTRACED) != job || !WIFSTOPPED(st)) {
        pgt_write_file(report, "not stopped\n");
        _exit(1);
    }
    tcsetpgrp(0, getpgrp());
    pgt_write_file(report, "stopped\n");
    tcsetpgrp(0, job);
    kill(-job, SIGCONT);
    if (waitpid(job, &st, 0) != job)
        _exit(1);
    char line[64];
    snprintf(line, sizeof line, "stopped\ncontinued\nexit %d\n",
             WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    pgt_write_file(report, line);
    _exit(0);
}

Test(supervisor, tty_ctrl_z_stops_the_job_and_fg_resumes_it, .timeout = 30)
{
    char dir[256], file[320], report[320], script[700];
    struct pty_run t;
    scratch(dir, sizeof dir, file, sizeof file, "status");
    snprintf(report, sizeof report, "%s/report", dir);
    snprintf(script, sizeof script, "%s status %s; exec sleep 30", CHILD, file);
    const char *argv[] = {
        PGT_PGENTRY_BIN, "--health-addr", "off", "--", "/bin/sh", "-c", script, NULL};
    memset(&t, 0, sizeof t);
    t.pid = forkpty(&t.master, NULL, NULL, NULL);
    cr_assert(t.pid >= 0, "forkpty: %s", strerror(errno));
    if (t.pid > 0 && nstarted < MAX_STARTED)
        started[nstarted++] = t.pid;
    if (t.pid == 0)
        mini_shell(argv, report);
    pty_wait_text(&t, file, "parent_pgrp=", 10000);
    long cmd_pgrp = field(file, "pgrp=");
    cr_assert_eq(write(t.master, "\x1a", 1), 1); /* Ctrl-Z */
    pty_wait_text(&t, report, "stopped", 5000);
    /* After fg, pgentry hands the terminal back to COMMAND's group. */
    int64_t deadline = pgt_now_ms() + 5000;
    while (tpgid_of(t.pid) != cmd_pgrp && pgt_now_ms() < deadline)
        pty_pump(&t, 5);
    cr_assert_eq(tpgid_of(t.pid), cmd_pgrp,
                 "COMMAND did not get the terminal back; "
                 "terminal:\n%s",
                 t.out);
    cr_assert_eq(write(t.master, "\x03", 1), 1); /* Ctrl-C */
    pty_wait_text(&t, report, "exit ", 10000);
    int rc = pty_wait(&t, 10000);
    cr_assert_eq(rc, 0, "shell exit %d; terminal:\n%s", rc, t.out);
    cr_assert_eq(count_lines(report, "exit 130"), 1, "%s\nterminal:\n%s", pgt_read_file(report),
                 t.out);
}
