/* Small pure parsers for option values: durations, signal names, HOST:PORT, booleans. */
#include "pgentry/common/parse.h"

#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DURATION_MAX_MS (100LL * 24 * 3600 * 1000)

int pge_parse_duration(const char *s, int64_t *ms)
{
    /* Accumulate in microseconds-free integer math: value = whole + frac/10^digits. */
    int64_t total = 0;
    int any = 0;
    const char *p = s;

    if (!s || !*s)
        return -1;
    while (*p) {
        int64_t whole = 0, frac = 0, scale = 1;
        int digits = 0;
        while (isdigit((unsigned char)*p)) {
            whole = whole * 10 + (*p - '0');
            if (whole > DURATION_MAX_MS)
                return -1;
            p++;
            digits++;
        }
        if (*p == '.') {
            p++;
            while (isdigit((unsigned char)*p)) {
                /* Digits beyond microseconds cannot change a millisecond result. */
                if (scale < 1000000) {
                    frac = frac * 10 + (*p - '0');
                    scale *= 10;
                }
                p++;
                digits++;
            }
        }
        if (digits == 0)
            return -1;
        int64_t unit;
        if (strncmp(p, "ms", 2) == 0) {
            unit = 1;
            p += 2;
        } else if (*p == 's') {
            unit = 1000;
            p++;
        } else if (*p == 'm') {
            unit = 60 * 1000;
            p++;
        } else if (*p == 'h') {
            unit = 3600 * 1000;
            p++;
        } else if (*p == '\0' && !any) {
            unit = 1000; /* a bare number is seconds */
        } else {
            return -1;
        }
        if (whole > DURATION_MAX_MS / unit)
            return -1;
        total += whole * unit + (frac * unit * 2 + scale) / (2 * scale);
        if (total > DURATION_MAX_MS)
            return -1;
        any = 1;
    }
    *ms = total;
    return 0;
}

static const struct {
    const char *name;
    int signo;
} signals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},     {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},
    {"FPE", SIGFPE},       {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},     {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},
    {"XCPU", SIGXCPU},     {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH},   {"IO", SIGIO},     {"POLL", SIGPOLL},     {"PWR", SIGPWR},
    {"SYS", SIGSYS},
};

const char *pge_parse_signal_name(int signo)
{
    static const char *const rt[] = {
        "RTMIN",    "RTMIN+1",  "RTMIN+2",  "RTMIN+3",  "RTMIN+4",  "RTMIN+5",  "RTMIN+6",
        "RTMIN+7",  "RTMIN+8",  "RTMIN+9",  "RTMIN+10", "RTMIN+11", "RTMIN+12", "RTMIN+13",
        "RTMIN+14", "RTMIN+15", "RTMAX-14", "RTMAX-13", "RTMAX-12", "RTMAX-11", "RTMAX-10",
        "RTMAX-9",  "RTMAX-8",  "RTMAX-7",  "RTMAX-6",  "RTMAX-5",  "RTMAX-4",  "RTMAX-3",
        "RTMAX-2",  "RTMAX-1",  "RTMAX"};
    /* The canonical name comes first in the table: ABRT before its alias IOT, IO before POLL. */
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
        if (signals[i].signo == signo)
            return signals[i].name;
    if (signo >= SIGRTMIN && signo <= SIGRTMAX &&
        signo - SIGRTMIN < (int)(sizeof rt / sizeof rt[0]))
        return rt[signo - SIGRTMIN];
    return NULL;
}

static int parse_uint(const char *s, long max, long *out)
{
    long v = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

int pge_parse_signal(const char *s, int allow_zero, int *signo)
{
    long n;
    if (!s || !*s)
        return -1;
    if (isdigit((unsigned char)*s)) {
        if (parse_uint(s, SIGRTMAX, &n) < 0)
            return -1;
        if (n == 0 && !allow_zero)
            return -1;
        *signo = (int)n;
        return 0;
    }
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        if (strcasecmp(s, signals[i].name) == 0) {
            *signo = signals[i].signo;
            return 0;
        }
    }
    if (strncasecmp(s, "RTMIN", 5) == 0 || strncasecmp(s, "RTMAX", 5) == 0) {
        int base = toupper((unsigned char)s[3]) == 'I' ? SIGRTMIN : SIGRTMAX;
        const char *r = s + 5;
        n = 0;
        if (*r == '+' || *r == '-') {
            int neg = *r == '-';
            if (parse_uint(r + 1, SIGRTMAX, &n) < 0)
                return -1;
            n = neg ? -n : n;
        } else if (*r != '\0') {
            return -1;
        }
        long v = base + n;
        if (v < SIGRTMIN || v > SIGRTMAX)
            return -1;
        *signo = (int)v;
        return 0;
    }
    return -1;
}

int pge_parse_hostport(const char *s, char *host, size_t hostsize, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    long p;

    if (!s)
        return -1;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
        if (hlen == 0)
            return -1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hlen = (size_t)(colon - s);
        /* An unbracketed IPv6 address is ambiguous: refuse it rather than guess. */
        if (memchr(s, ':', hlen))
            return -1;
    }
    if (parse_uint(colon + 1, 65535, &p) < 0 || p == 0)
        return -1;
    if (hlen + 1 > hostsize)
        return -1;
    for (size_t i = 0; i < hlen; i++)
        if (isspace((unsigned char)h[i]) || h[i] == '/' || h[i] == '[' || h[i] == ']')
            return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

int pge_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    return -1;
}
