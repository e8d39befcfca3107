/* A small COMMAND for the supervision tests: records signals, makes orphans, reports state. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Append one line to path (one write: lines of several processes never interleave). */
static void note(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const char *path, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return;
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
    close(fd);
}

static void block_all(void)
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

static int wait_signal(void)
{
    sigset_t all;
    sigfillset(&all);
    for (;;) {
        int sig = sigwaitinfo(&all, NULL);
        if (sig > 0)
            return sig;
    }
}

static const char *name(int sig)
{
    const char *n = sigabbrev_np(sig);
    return n ? n : "?";
}

static struct timespec after_ms(long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static void sleep_until(const struct timespec *t)
{
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) == EINTR)
        ;
}

static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return '-';
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return '-';
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

/* Processes visible in /proc (the namespace's own with --mount-proc) and how many are zombies. */
static void count_procs(int *procs, int *zombies)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    *procs = *zombies = 0;
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char st = proc_state((pid_t)pid);
        if (st == '-')
            continue;
        (*procs)++;
        *zombies += st == 'Z';
    }
    closedir(d);
}

/* signals FILE CODE [self]: record every signal; TERM exits CODE. With "self", send HUP,
 * WINCH, USR1 and TERM to our parent (the init) one by one, each after the previous came back. */
static int cmd_signals(char **av)
{
    const char *file = av[0];
    int code = atoi(av[1]);
    int self = av[2] && strcmp(av[2], "self") == 0;
    static const int seq[] = {SIGHUP, SIGWINCH, SIGUSR1, SIGTERM};
    size_t next = 0;
    block_all();
    note(file, "ready pid=%d", (int)getpid());
    if (self)
        kill(getppid(), seq[next]);
    for (;;) {
        int sig = wait_signal();
        note(file, "%s", name(sig));
        if (sig == SIGTERM)
            return code;
        if (self && next + 1 < sizeof seq / sizeof seq[0] && sig == seq[next])
            kill(getppid(), seq[++next]);
    }
}

/* group FILE: a grandchild in our process group; both record signals; TERM ends each. */
static int cmd_group(char **av)
{
    const char *file = av[0];
    block_all();
    pid_t g = fork();
    if (g < 0)
        return 99;
    const char *who = g == 0 ? "grand" : "main";
    note(file, "%s:ready", who);
    for (;;) {
        int sig = wait_signal();
        note(file, "%s:%s", who, name(sig));
        if (sig == SIGTERM)
            return 0;
    }
}

/* orphans N DELAY_MS FILE CODE check|race: N orphans (their parent exits at once) that all
 * exit together when released: DELAY_MS from now, but never before every one of them exists
 * (they block on a pipe we close, so a slow fork on a loaded machine cannot thin them out).
 * "check": count processes while they live, then (polling up to 10 s) the zombies after they
 * exited, then exit CODE. "race": exit CODE at the very moment they do. */
static int cmd_orphans(char **av)
{
    int n = atoi(av[0]);
    struct timespec at = after_ms(atol(av[1]));
    const char *file = av[2];
    int code = atoi(av[3]);
    int check = strcmp(av[4], "check") == 0;
    int gate[2];
    if (pipe2(gate, O_CLOEXEC) < 0)
        return 99;
    pid_t mid = fork();
    if (mid < 0)
        return 99;
    if (mid == 0) {
        close(gate[1]);
        for (int i = 0; i < n; i++) {
            pid_t c = fork();
            if (c == 0) {
                char b;
                while (read(gate[0], &b, 1) < 0 && errno == EINTR)
                    ;
                _exit(0);
            }
            if (c < 0)
                _exit(98);
        }
        _exit(0);
    }
    close(gate[0]);
    int st;
    if (waitpid(mid, &st, 0) != mid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        note(file, "forking failed");
        return 99;
    }
    int procs, zombies;
    if (check) {
        count_procs(&procs, &zombies);
        note(file, "before procs=%d", procs);
    }
    sleep_until(&at);
    close(gate[1]); /* every orphan's read() returns 0 now */
    if (!check)
        return code;
    /* Poll rather than sleep a fixed time: on a loaded machine reaping 300 orphans takes
     * longer than any fixed pause, and a supervisor that never reaps still fails after 10 s. */
    for (int i = 0; i < 500; i++) {
        count_procs(&procs, &zombies);
        if (procs == 2 && zombies == 0)
            break;
        usleep(20 * 1000);
    }
    note(file, "after procs=%d zombies=%d", procs, zombies);
    return code;
}

/* cleanup FILE: a helper that needs 0.5 s to finish after TERM; we exit 7 while it runs. */
static int cmd_cleanup(char **av)
{
    const char *file = av[0];
    int p[2];
    if (pipe(p) < 0)
        return 99;
    block_all();
    pid_t h = fork();
    if (h < 0)
        return 99;
    if (h == 0) {
        close(p[0]);
        note(file, "helper:ready");
        close(p[1]);
        for (;;) {
            int sig = wait_signal();
            note(file, "helper:%s", name(sig));
            if (sig == SIGTERM) {
                usleep(500 * 1000);
                note(file, "helper:done");
                _exit(0);
            }
        }
    }
    close(p[1]);
    char c;
    while (read(p[0], &c, 1) > 0)
        ;
    note(file, "main:exit");
    return 7;
}

/* ignore-term FILE: ignore TERM and wait forever. */
static int cmd_ignore_term(char **av)
{
    signal(SIGTERM, SIG_IGN);
    note(av[0], "ready");
    for (;;)
        pause();
    return 0;
}

/* adopt FILE: a grandchild outlives its parent; report who adopted it and whether it was
 * reaped 500 ms after it exited. */
static int cmd_adopt(char **av)
{
    const char *file = av[0];
    int p[2];
    if (pipe(p) < 0)
        return 99;
    pid_t mid = fork();
    if (mid < 0)
        return 99;
    if (mid == 0) {
        /* Our pid, not the grandchild's getppid(): we may be gone before it asks. */
        pid_t old = getpid();
        pid_t g = fork();
        if (g == 0) {
            close(p[0]);
            ssize_t w = write(p[1], &(pid_t){getpid()}, sizeof(pid_t));
            (void)w;
            close(p[1]);
            while (getppid() == old)
                usleep(1000);
            note(file, "adopted-by=%d", (int)getppid());
            usleep(100 * 1000);
            _exit(0);
        }
        _exit(g < 0 ? 98 : 0);
    }
    close(p[1]);
    pid_t g = 0;
    if (read(p[0], &g, sizeof g) != (ssize_t)sizeof g)
        return 99;
    waitpid(mid, NULL, 0);
    usleep(800 * 1000);
    note(file, "grandchild-state=%c", proc_state(g));
    return 0;
}

/* status FILE: the identity, signal state and terminal of this process. */
static int cmd_status(char **av)
{
    const char *file = av[0];
    FILE *f = fopen("/proc/self/status", "r");
    char line[512];
    if (!f)
        return 99;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "SigBlk:", 7) || !strncmp(line, "SigIgn:", 7) ||
            !strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4) ||
            !strncmp(line, "Groups:", 7)) {
            line[strcspn(line, "\n")] = '\0';
            note(file, "%s", line);
        }
    }
    fclose(f);
    const char *home = getenv("HOME");
    note(file, "HOME=%s", home ? home : "(unset)");
    note(file, "pgrp=%d tpgid=%d parent_pgrp=%d", (int)getpgrp(), (int)tcgetpgrp(0),
         (int)getpgid(getppid()));
    return 0;
}

/* subreaper FILE: whether this process is a child subreaper (the flag survives execve, so
 * an init that exec'd us would hand it on). */
static int cmd_subreaper(char **av)
{
    int on = -1;
    if (prctl(PR_GET_CHILD_SUBREAPER, &on, 0, 0, 0) < 0)
        return 99;
    note(av[0], "subreaper=%d", on);
    return 0;
}

/* fds FILE: the descriptors this process has open, "fds=0,1,2" and one line per descriptor
 * with what it is (a leak shows as "fd 5 -> socket:[1234]"). */
static int cmd_fds(char **av)
{
    char list[1024] = "", line[600], path[64], target[512];
    size_t used = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int fds[256], n = 0;
    if (!d)
        return 99;
    while ((de = readdir(d)) != NULL && n < 256) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (*end || de->d_name[0] == '.' || fd == dirfd(d))
            continue;
        fds[n++] = (int)fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++) /* readdir order is not numeric */
        for (int j = i + 1; j < n; j++)
            if (fds[j] < fds[i]) {
                int t = fds[i];
                fds[i] = fds[j];
                fds[j] = t;
            }
    for (int i = 0; i < n && used + 16 < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%d", i ? "," : "", fds[i]);
    note(av[0], "fds=%s", list);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
        ssize_t k = readlink(path, target, sizeof target - 1);
        target[k > 0 ? k : 0] = '\0';
        snprintf(line, sizeof line, "fd %d -> %s", fds[i], target);
        note(av[0], "%s", line);
    }
    return 0;
}

/* masked PROG ARGS...: exec PROG with USR2 and INT blocked, HUP and QUIT ignored. */
static int cmd_masked(char **av)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    sigaddset(&s, SIGINT);
    sigprocmask(SIG_SETMASK, &s, NULL);
    signal(SIGHUP, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    execv(av[0], av);
    return 127;
}

/* raise SIG: die of SIG (no core file). */
static int cmd_raise(char **av)
{
    struct rlimit none = {0, 0};
    int sig = strcmp(av[0], "KILL") == 0 ? SIGKILL : strcmp(av[0], "SEGV") == 0 ? SIGSEGV : SIGTERM;
    setrlimit(RLIMIT_CORE, &none);
    signal(sig, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigprocmask(SIG_SETMASK, &s, NULL);
    raise(sig);
    return 99;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int nargs;
        int (*fn)(char **);
    } cmds[] = {
        {"signals", 2, cmd_signals},         {"group", 1, cmd_group},   {"orphans", 5, cmd_orphans},
        {"cleanup", 1, cmd_cleanup},         {"adopt", 1, cmd_adopt},   {"status", 1, cmd_status},
        {"ignore-term", 1, cmd_ignore_term}, {"masked", 1, cmd_masked}, {"raise", 1, cmd_raise},
        {"subreaper", 1, cmd_subreaper},     {"fds", 1, cmd_fds},
    };
    if (argc >= 3 && strcmp(argv[1], "exit") == 0)
        return atoi(argv[2]);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (argc >= 2 + cmds[i].nargs && strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].fn(argv + 2);
    fprintf(stderr, "pgt_child: unknown or incomplete command\n");
    return 99;
}
