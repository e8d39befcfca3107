/* Supervision as init: the real binary, real processes, PID 1 of its own namespace when root. */
#include <dirent.h>

#include "supervise_test.h"

TestSuite(supervisor, .fini = kill_leftovers);

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

/* ---- signal windows ---------------------------------------------------------------------- */

/* Whether the hex mask of "key:\t..." in /proc/pid/status has signal sig's bit. */
static int proc_sigmask_has(pid_t pid, const char *key, int sig)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    cr_assert_geq(pgt_read_proc(path, buf, sizeof buf), 0, "cannot read %s", path);
    char *p = strstr(buf, key);
    cr_assert_not_null(p, "no %s in %s", key, path);
    unsigned long long mask = strtoull(p + strlen(key), NULL, 16);
    return (int)((mask >> (sig - 1)) & 1);
}

Test(supervisor, ttin_and_ttou_are_ignored_not_forwarded, .timeout = 30)
{
    char dir[256], file[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "signals");
    const char *argv[] = {"pgentry", "--health-addr", "off", "--", CHILD, "signals", file, "0",
                          NULL};
    spawn(&p, argv);
    wait_text(file, "ready", 10000);
    /* As tini: pgentry ignores them (a background init touching the terminal must not stop)... */
    cr_assert(proc_sigmask_has(p.pid, "SigIgn:\t", SIGTTIN), "TTIN not ignored by pgentry");
    cr_assert(proc_sigmask_has(p.pid, "SigIgn:\t", SIGTTOU), "TTOU not ignored by pgentry");
    /* ...and never passes them on; USR1 after them shows that forwarding still works. */
    cr_assert_eq(kill(p.pid, SIGTTOU), 0);
    cr_assert_eq(kill(p.pid, SIGTTIN), 0);
    cr_assert_eq(kill(p.pid, SIGUSR1), 0);
    wait_text(file, "USR1", 5000);
    cr_assert_eq(kill(p.pid, SIGTERM), 0);
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    char *s = pgt_read_file(file);
    cr_assert_null(strstr(s, "TTOU"), "TTOU forwarded:\n%s", s);
    cr_assert_null(strstr(s, "TTIN"), "TTIN forwarded:\n%s", s);
    free(s);
    pgt_proc_free(&p);
}

Test(supervisor, late_stop_signals_keep_the_app_exit_code, .timeout = 60)
{
    char dir[256], file[320];
    /* TERM makes the app exit 7; TERMs keep coming while pgentry tears down and exits. One that
     * lands after the watchers are gone used to kill pgentry (143). */
    for (int round = 0; round < 10; round++) {
        struct pgt_proc p;
        scratch(dir, sizeof dir, file, sizeof file, "signals");
        const char *argv[] = {"pgentry", "--health-addr", "off", "--", CHILD, "signals", file, "7",
                              NULL};
        spawn(&p, argv);
        wait_text(file, "ready", 10000);
        int st = 0;
        while (waitpid(p.pid, &st, WNOHANG) == 0)
            kill(p.pid, SIGTERM);
        p.status = st;
        p.exited = 1;
        cr_assert(WIFEXITED(st), "round %d: pgentry died of signal %d", round,
                  WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        cr_assert_eq(WEXITSTATUS(st), 7, "round %d: exit %d", round, WEXITSTATUS(st));
        pgt_proc_free(&p);
        nstarted = 0;
    }
}

/* Whether pid has a descriptor open on dir or on a file in it. */
static int has_fd_in(pid_t pid, const char *dir)
{
    char path[64], link[512], target[512];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    struct dirent *de;
    int found = 0;
    if (!d)
        return 0;
    while (!found && (de = readdir(d))) {
        snprintf(link, sizeof link, "%s/%s", path, de->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        found = strncmp(target, dir, strlen(dir)) == 0;
    }
    closedir(d);
    return found;
}

Test(supervisor, stop_signal_while_scanning_migrations_is_not_lost_as_pid1, .timeout = 120)
{
    pgt_ns_require();
    char dir[256], file[320], mig[300], url[128], name[400];
    struct pgt_proc p;
    scratch(dir, sizeof dir, file, sizeof file, "status");
    snprintf(mig, sizeof mig, "%s/migrations", dir);
    /* Enough files that reading them all takes a while: the signal lands mid-scan, when
     * PID 1 used to have no watcher and the kernel dropped it. */
    for (int i = 1; i <= 4000; i++) {
        snprintf(name, sizeof name, "%s/%05d_m.up.sql", mig, i);
        pgt_write_file(name, "CREATE TABLE IF NOT EXISTS t (id int);\n");
    }
    /* The database is a closed port: a lost signal leaves pgentry waiting (then 69). */
    snprintf(url, sizeof url, "postgres://u:pw@127.0.0.1:%d/db", pgt_free_port());
    const char *argv[] = {"--health-addr",
                          "off",
                          "--database-url",
                          url,
                          "--migrations",
                          mig,
                          "--wait-timeout",
                          "20s",
                          "--",
                          CHILD,
                          "status",
                          file,
                          NULL};
    ns_spawn(&p, argv);
    pid_t init = pgt_ns_init_pid(&p, 10000);
    int64_t deadline = pgt_now_ms() + 20000;
    while (!has_fd_in(init, mig)) {
        cr_assert_lt(pgt_now_ms(), deadline, "never saw pgentry reading the migrations");
        usleep(200);
    }
    cr_assert_eq(kill(init, SIGTERM), 0);
    int64_t t0 = pgt_now_ms();
    int rc = pgt_proc_wait(&p, 30000);
    cr_assert_eq(rc, 143, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert_lt(pgt_now_ms() - t0, 10000, "the stop took %lld ms", (long long)(pgt_now_ms() - t0));
    cr_assert_eq(access(file, F_OK), -1, "COMMAND ran although pgentry was stopped first");
    pgt_proc_free(&p);
}
