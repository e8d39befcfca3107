/* How COMMAND starts: its mask and dispositions, --user, --exec, the terminal. The real binary. */
#include "supervise_test.h"

TestSuite(spawn, .fini = kill_leftovers);

/* ---- the child's start ------------------------------------------------------------------- */

Test(spawn, child_starts_with_default_mask_and_no_ignored_signals, .timeout = 30)
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

Test(spawn, child_gets_the_original_mask_and_default_dispositions, .timeout = 30)
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

Test(spawn, signals_blocked_or_ignored_at_start_are_still_forwarded, .timeout = 30)
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

Test(spawn, user_nobody_runs_as_65534_with_groups_dropped, .timeout = 30)
{
    user_run("nobody", "65534", "65534", "/nonexistent");
}

Test(spawn, user_numeric_needs_no_passwd_entry, .timeout = 30)
{
    user_run("43210:43211", "43210", "43211", "/");
    user_run("43212", "43212", "43212", "/");
}

Test(spawn, unknown_user_is_78_and_the_command_never_runs, .timeout = 30)
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

Test(spawn, exec_replaces_pgentry, .timeout = 30)
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

Test(spawn, exec_does_not_hand_on_the_subreaper_flag, .timeout = 30)
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

Test(spawn, exec_as_pid1_warns_that_nothing_reaps, .timeout = 30)
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

/* COMMAND starts on a stack of pgentry's own making (spawn.c): glibc's execvpe runs a script
 * without "#!" through /bin/sh with a copy of argv on that stack, so the stack must grow
 * with the arguments. 40000 of them: 320 KB of pointers. */
Test(spawn, a_script_without_shebang_gets_forty_thousand_arguments, .timeout = 60)
{
    enum { NARGS = 40000 };
    char dir[256], out[320], script[320];
    struct pgt_proc p;
    scratch(dir, sizeof dir, out, sizeof out, "count");
    snprintf(script, sizeof script, "%s/noshebang", dir);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f, "fopen %s: %s", script, strerror(errno));
    fprintf(f, "echo $# > %s\n", out);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(chmod(script, 0755), 0, "chmod: %s", strerror(errno));

    const char **argv = calloc(NARGS + 6, sizeof *argv);
    cr_assert_not_null(argv);
    size_t n = 0;
    argv[n++] = PGT_PGENTRY_BIN;
    argv[n++] = "--health-addr";
    argv[n++] = "off";
    argv[n++] = "--";
    argv[n++] = script;
    for (int i = 0; i < NARGS; i++)
        argv[n++] = "a";
    argv[n] = NULL;
    int rc = pgt_run(&p, argv, NULL, 30000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    char *got = pgt_read_file(out);
    cr_assert_not_null(got, "the script did not run");
    cr_assert_eq(atoi(got), NARGS, "the script saw %s arguments", got);
    free(got);
    free(argv);
    pgt_proc_free(&p);
}

Test(spawn, exec_of_a_missing_command_is_127, .timeout = 30)
{
    struct pgt_proc p;
    const char *argv[] = {"pgentry", "--health-addr",       "off", "--exec",
                          "--",      "pgt-no-such-command", NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 127, "exit %d, stderr:\n%s", rc, p.err);
    pgt_proc_free(&p);
}

Test(spawn, help_says_what_exec_gives_up, .timeout = 30)
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

Test(spawn, tty_command_gets_the_foreground, .timeout = 30)
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

Test(spawn, tty_ctrl_c_goes_to_the_command_directly, .timeout = 30)
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

Test(spawn, tty_ctrl_z_stops_the_job_and_fg_resumes_it, .timeout = 30)
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
