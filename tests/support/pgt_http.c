/* Test helpers for HTTP: a health server in a child process, a real-socket client, checkers. */
#include "pgt_http.h"

#include "pgt.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgentry/common/log.h"

/* ---- the server child ---- */

static void server_child(struct pgt_server *s, const char *host, const struct pge_health_opts *opts,
                         int spare, int ready_fd)
{
    char addr[128], err[256];
    struct ev_loop *loop;
    struct pge_health *h;

    /* Never outlive the test, even when an assertion ends it early. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    pge_log_setup(PGE_LOG_WARN, PGE_LOG_TEXT);
    loop = ev_loop_new(EVFLAG_AUTO);
    snprintf(addr, sizeof addr, "%s:%d", host, s->port);
    h = pge_health_new_opts(loop, addr, s->st, opts, err, sizeof err);
    if (!h) {
        dprintf(ready_fd, "0%s", err);
        _exit(1);
    }
    if (spare >= 0) {
        /* The highest descriptor open now bounds what is in use. */
        int top = 0;
        for (int fd = 0; fd < 1024; fd++)
            if (fcntl(fd, F_GETFD) >= 0)
                top = fd;
        struct rlimit rl = {(rlim_t)(top + 1 + spare), (rlim_t)(top + 1 + spare)};
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (write(ready_fd, "1", 1) != 1)
        _exit(1);
    close(ready_fd);
    ev_run(loop, 0);
    _exit(0);
}

static void server_start(struct pgt_server *s, const char *host, const struct pge_health_opts *opts,
                         int spare)
{
    int pfd[2];
    char buf[300] = {0};

    s->st = mmap(NULL, sizeof *s->st, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(s->st, MAP_FAILED);
    pge_runstate_init(s->st);
    for (int attempt = 0; attempt < 5; attempt++) {
        s->port = pgt_free_port();
        cr_assert_eq(pipe(pfd), 0);
        s->pid = fork();
        cr_assert_neq(s->pid, -1);
        if (s->pid == 0) {
            close(pfd[0]);
            server_child(s, host ? host : "127.0.0.1", opts, spare, pfd[1]);
        }
        close(pfd[1]);
        ssize_t n = read(pfd[0], buf, sizeof buf - 1);
        close(pfd[0]);
        if (n > 0 && buf[0] == '1')
            return;
        waitpid(s->pid, NULL, 0);
        /* Another test may have taken the port between probe and bind. */
        if (!strstr(buf, "in use"))
            break;
    }
    cr_assert_fail("health server did not start: %s", buf + 1);
}

void pgt_server_start(struct pgt_server *s, const char *host, const struct pge_health_opts *opts)
{
    server_start(s, host, opts, -1);
}

void pgt_server_start_fdlimit(struct pgt_server *s, const struct pge_health_opts *opts, int spare)
{
    server_start(s, NULL, opts, spare);
}

void pgt_server_stop(struct pgt_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    if (s->st && s->st != MAP_FAILED)
        munmap(s->st, sizeof *s->st);
    s->st = NULL;
}

long pgt_rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

long pgt_cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long ut, st;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the parenthesised command name: state is 3rd, utime 14th, stime 15th. */
    char *p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)((ut + st) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

/* ---- client side ---- */

int pgt_connect(const char *host, int port)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;
    struct timeval tv = {5, 0};
    int one = 1;
    int fd;

    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        len = sizeof *sin;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        len = sizeof *sin6;
    } else {
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int pgt_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fill(struct pgt_http_reader *r)
{
    if (r->len == sizeof r->buf)
        return -1;
    ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
    if (n < 0 && errno == EINTR)
        return 0;
    if (n <= 0)
        return -1;
    r->len += (size_t)n;
    return 0;
}

int pgt_http_read(struct pgt_http_reader *r, int head_only, struct pgt_http_resp *out)
{
    char *end;
    size_t head_len, clen = 0;
    char v[32];

    for (;;) {
        end = memmem(r->buf, r->len, "\r\n\r\n", 4);
        if (end)
            break;
        if (fill(r) < 0)
            return -1;
    }
    head_len = (size_t)(end - r->buf) + 4;
    if (head_len >= sizeof out->head)
        return -1;
    memcpy(out->head, r->buf, head_len);
    out->head[head_len] = '\0';
    if (sscanf(out->head, "HTTP/1.1 %d ", &out->status) != 1)
        return -1;
    if (!pgt_http_header(out, "Content-Length", v, sizeof v))
        return -1;
    clen = strtoul(v, NULL, 10);
    if (head_only)
        clen = 0;
    if (clen > PGT_HTTP_BODY_MAX)
        return -1;
    while (r->len < head_len + clen)
        if (fill(r) < 0)
            return -1;
    memcpy(r->body, r->buf + head_len, clen);
    r->body[clen] = '\0';
    out->body = r->body;
    out->body_len = clen;
    memmove(r->buf, r->buf + head_len + clen, r->len - head_len - clen);
    r->len -= head_len + clen;
    return 0;
}

int pgt_wait_closed(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char c[4096];
    for (;;) {
        int n = poll(&p, 1, ms);
        if (n <= 0)
            return 0;
        ssize_t got = recv(fd, c, sizeof c, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
            return 1;
    }
}

int pgt_http_get(const char *host, int port, const char *method, const char *path,
                 struct pgt_http_resp *out)
{
    static struct pgt_http_reader r;
    char req[512];
    int fd = pgt_connect(host, port);
    if (fd < 0)
        return -1;
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", method,
             path);
    r.fd = fd;
    r.len = 0;
    int rc = pgt_send_all(fd, req, strlen(req)) == 0 &&
                     pgt_http_read(&r, strcmp(method, "HEAD") == 0, out) == 0
                 ? out->status
                 : -1;
    close(fd);
    return rc;
}

const char *pgt_http_header(const struct pgt_http_resp *r, const char *name, char *buf, size_t size)
{
    size_t n = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p && p[2] != '\r') {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            snprintf(buf, size, "%.*s", (int)(e - v), v);
            return buf;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

/* ---- strict JSON ---- */

struct jp {
    const unsigned char *p, *end;
    int depth;
    char *err;
    size_t errsize;
};

__attribute__((format(printf, 2, 3))) static int jfail(struct jp *j, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(j->err, j->errsize, "at %ld: ", (long)(j->end - j->p));
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < j->errsize)
        vsnprintf(j->err + n, j->errsize - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static void jws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int jvalue(struct jp *j);

static int jhex4(struct jp *j, unsigned *out)
{
    *out = 0;
    for (int i = 0; i < 4; i++, j->p++) {
        if (j->p >= j->end || !isxdigit(*j->p))
            return jfail(j, "bad \\u escape");
        *out = *out * 16 + (unsigned)(isdigit(*j->p) ? *j->p - '0' : (tolower(*j->p) - 'a' + 10));
    }
    return 0;
}

static int jstring(struct jp *j)
{
    j->p++; /* the opening quote */
    while (j->p < j->end && *j->p != '"') {
        unsigned c = *j->p;
        if (c < 0x20)
            return jfail(j, "raw control byte 0x%02x in string", c);
        if (c == '\\') {
            j->p++;
            if (j->p >= j->end)
                return jfail(j, "truncated escape");
            if (*j->p == 'u') {
                unsigned u, lo;
                j->p++;
                if (jhex4(j, &u) < 0)
                    return -1;
                if (u >= 0xdc00 && u <= 0xdfff)
                    return jfail(j, "lone low surrogate");
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
                        return jfail(j, "lone high surrogate");
                    j->p += 2;
                    if (jhex4(j, &lo) < 0)
                        return -1;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return jfail(j, "bad surrogate pair");
                }
            } else if (strchr("\"\\/bfnrt", *j->p) && *j->p) {
                j->p++;
            } else {
                return jfail(j, "bad escape \\%c", *j->p);
            }
            continue;
        }
        if (c < 0x80) {
            j->p++;
            continue;
        }
        /* UTF-8: lead byte, continuation bytes, no overlong, no surrogates, ≤ U+10FFFF. */
        size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
        unsigned cp = c & (n == 4 ? 0x07 : n == 3 ? 0x0f : 0x1f);
        if (n == 0 || c > 0xf4 || (size_t)(j->end - j->p) < n)
            return jfail(j, "invalid UTF-8 lead byte 0x%02x", c);
        for (size_t i = 1; i < n; i++) {
            if ((j->p[i] & 0xc0) != 0x80)
                return jfail(j, "invalid UTF-8 continuation");
            cp = (cp << 6) | (j->p[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return jfail(j, "invalid UTF-8 sequence");
        j->p += n;
    }
    if (j->p >= j->end)
        return jfail(j, "unterminated string");
    j->p++;
    return 0;
}

static int jdigits(struct jp *j)
{
    const unsigned char *s = j->p;
    while (j->p < j->end && isdigit(*j->p))
        j->p++;
    return j->p > s ? 0 : jfail(j, "digits expected");
}

static int jnumber(struct jp *j)
{
    if (*j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (jdigits(j) < 0)
        return -1;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (jdigits(j) < 0)
            return -1;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (jdigits(j) < 0)
            return -1;
    }
    return 0;
}

static int jcontainer(struct jp *j, char close)
{
    if (++j->depth > 64)
        return jfail(j, "nested too deep");
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 0;
    }
    for (;;) {
        jws(j);
        if (close == '}') {
            if (j->p >= j->end || *j->p != '"')
                return jfail(j, "object key expected");
            if (jstring(j) < 0)
                return -1;
            jws(j);
            if (j->p >= j->end || *j->p != ':')
                return jfail(j, "':' expected");
            j->p++;
        }
        if (jvalue(j) < 0)
            return -1;
        jws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == (unsigned char)close) {
            j->p++;
            j->depth--;
            return 0;
        }
        return jfail(j, "',' or '%c' expected", close);
    }
}

static int jvalue(struct jp *j)
{
    static const char *const lits[] = {"true", "false", "null"};
    jws(j);
    if (j->p >= j->end)
        return jfail(j, "value expected");
    if (*j->p == '{')
        return jcontainer(j, '}');
    if (*j->p == '[')
        return jcontainer(j, ']');
    if (*j->p == '"')
        return jstring(j);
    if (*j->p == '-' || isdigit(*j->p))
        return jnumber(j);
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(j->end - j->p) >= n && memcmp(j->p, lits[i], n) == 0) {
            j->p += n;
            return 0;
        }
    }
    return jfail(j, "unexpected byte 0x%02x", *j->p);
}

int pgt_json_check(const char *text, size_t len, char *err, size_t errsize)
{
    struct jp j = {(const unsigned char *)text, (const unsigned char *)text + len, 0, err, errsize};
    if (jvalue(&j) < 0)
        return -1;
    jws(&j);
    if (j.p != j.end)
        return jfail(&j, "trailing bytes");
    return 0;
}

/* ---- strict Prometheus text format ---- */

#define PROM_MAX_FAMILIES 128
#define PROM_MAX_SERIES   1024

struct prom_family {
    char name[128];
    char type[16];
    int help, has_type, samples, closed;
};

struct prom {
    struct prom_family fam[PROM_MAX_FAMILIES];
    size_t nfam;
    char *series[PROM_MAX_SERIES];
    size_t nseries;
    struct prom_family *current; /* family of the previous sample */
    int line;
    char *err;
    size_t errsize;
};

__attribute__((format(printf, 2, 3))) static int pfail(struct prom *p, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(p->err, p->errsize, "line %d: ", p->line);
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < p->errsize)
        vsnprintf(p->err + n, p->errsize - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int metric_name_ok(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return 0;
    return 1;
}

static int label_name_ok(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    if (n >= 2 && s[0] == '_' && s[1] == '_')
        return 0; /* reserved */
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return 0;
    return 1;
}

static struct prom_family *family(struct prom *p, const char *name, size_t n, int create)
{
    for (size_t i = 0; i < p->nfam; i++)
        if (strlen(p->fam[i].name) == n && memcmp(p->fam[i].name, name, n) == 0)
            return &p->fam[i];
    if (!create || p->nfam == PROM_MAX_FAMILIES || n >= sizeof p->fam[0].name)
        return NULL;
    struct prom_family *f = &p->fam[p->nfam++];
    memset(f, 0, sizeof *f);
    memcpy(f->name, name, n);
    return f;
}

static int prom_comment(struct prom *p, const char *l, size_t n)
{
    int is_help = n > 7 && memcmp(l, "# HELP ", 7) == 0;
    int is_type = n > 7 && memcmp(l, "# TYPE ", 7) == 0;
    if (!is_help && !is_type)
        return 0; /* a plain comment */
    const char *name = l + 7, *sp = memchr(name, ' ', n - 7);
    if (!sp)
        return pfail(p, "HELP/TYPE without text");
    if (!metric_name_ok(name, (size_t)(sp - name)))
        return pfail(p, "bad metric name in HELP/TYPE");
    struct prom_family *f = family(p, name, (size_t)(sp - name), 1);
    if (!f)
        return pfail(p, "too many families");
    if (is_help) {
        if (f->help++)
            return pfail(p, "second HELP for %s", f->name);
        return 0;
    }
    if (f->has_type++)
        return pfail(p, "second TYPE for %s", f->name);
    if (f->samples)
        return pfail(p, "TYPE for %s after its samples", f->name);
    size_t tn = n - (size_t)(sp + 1 - l);
    static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    for (size_t i = 0; i < 5; i++)
        if (tn == strlen(types[i]) && memcmp(sp + 1, types[i], tn) == 0) {
            strcpy(f->type, types[i]);
            return 0;
        }
    return pfail(p, "unknown type \"%.*s\"", (int)tn, sp + 1);
}

static int prom_value_ok(const char *s, size_t n)
{
    char buf[64];
    char *end;
    if (n == 0 || n >= sizeof buf)
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (strcmp(buf, "NaN") == 0 || strcmp(buf, "+Inf") == 0 || strcmp(buf, "-Inf") == 0)
        return 1;
    if (isspace((unsigned char)buf[0]))
        return 0;
    double v = strtod(buf, &end);
    /* strtod also takes "inf", "nan" and hex: the format does not. */
    return *end == '\0' && isfinite(v) && !strpbrk(buf, "xXiInN");
}

/* The family a sample belongs to: summaries and histograms own their suffixed series. */
static struct prom_family *sample_family(struct prom *p, const char *name, size_t n)
{
    static const char *const sfx[] = {"_sum", "_count", "_bucket"};
    for (size_t i = 0; i < 3; i++) {
        size_t k = strlen(sfx[i]);
        if (n > k && memcmp(name + n - k, sfx[i], k) == 0) {
            struct prom_family *f = family(p, name, n - k, 0);
            if (f && (strcmp(f->type, "summary") == 0 || strcmp(f->type, "histogram") == 0))
                return f;
        }
    }
    return family(p, name, n, 1);
}

static int prom_sample(struct prom *p, const char *l, size_t n)
{
    size_t i = 0;
    while (i < n && l[i] != '{' && l[i] != ' ')
        i++;
    if (!metric_name_ok(l, i))
        return pfail(p, "bad metric name");
    struct prom_family *f = sample_family(p, l, i);
    if (!f)
        return pfail(p, "too many families");
    if (f != p->current) {
        if (f->closed)
            return pfail(p, "samples of %s are not contiguous", f->name);
        if (p->current)
            p->current->closed = 1;
        p->current = f;
    }
    f->samples++;
    size_t series_end;
    if (i < n && l[i] == '{') {
        char seen[16][64];
        size_t nseen = 0;
        i++;
        while (i < n && l[i] != '}') {
            size_t s = i;
            while (i < n && l[i] != '=')
                i++;
            if (!label_name_ok(l + s, i - s) || i - s >= 64)
                return pfail(p, "bad label name");
            for (size_t k = 0; k < nseen; k++)
                if (strlen(seen[k]) == i - s && memcmp(seen[k], l + s, i - s) == 0)
                    return pfail(p, "duplicate label");
            if (nseen < 16) {
                memcpy(seen[nseen], l + s, i - s);
                seen[nseen++][i - s] = '\0';
            }
            if (i + 1 >= n || l[i + 1] != '"')
                return pfail(p, "label value must be quoted");
            i += 2;
            while (i < n && l[i] != '"') {
                if (l[i] == '\\') {
                    if (i + 1 >= n || !strchr("\\\"n", l[i + 1]) || !l[i + 1])
                        return pfail(p, "bad escape in label value");
                    i++;
                }
                i++;
            }
            if (i >= n)
                return pfail(p, "unterminated label value");
            i++;
            if (i < n && l[i] == ',')
                i++;
            else if (i < n && l[i] != '}')
                return pfail(p, "',' or '}' expected after label");
        }
        if (i >= n)
            return pfail(p, "unterminated label set");
        i++;
    }
    series_end = i;
    if (i >= n || l[i] != ' ')
        return pfail(p, "space before value expected");
    i++;
    size_t vs = i;
    while (i < n && l[i] != ' ')
        i++;
    if (!prom_value_ok(l + vs, i - vs))
        return pfail(p, "bad value \"%.*s\"", (int)(i - vs), l + vs);
    if (i < n) {
        size_t ts = ++i;
        if (ts == n)
            return pfail(p, "trailing space");
        if (l[i] == '-')
            i++;
        while (i < n && isdigit((unsigned char)l[i]))
            i++;
        if (i != n || i == ts)
            return pfail(p, "bad timestamp");
    }
    for (size_t k = 0; k < p->nseries; k++)
        if (strlen(p->series[k]) == series_end && memcmp(p->series[k], l, series_end) == 0)
            return pfail(p, "duplicate series %.*s", (int)series_end, l);
    if (p->nseries < PROM_MAX_SERIES)
        p->series[p->nseries++] = strndup(l, series_end);
    return 0;
}

static int prom_lint(struct prom *p)
{
    p->line = 0;
    for (size_t i = 0; i < p->nfam; i++) {
        const struct prom_family *f = &p->fam[i];
        size_t n = strlen(f->name);
        int total = n > 6 && strcmp(f->name + n - 6, "_total") == 0;
        if (!f->samples)
            continue;
        if (!f->help || !f->has_type)
            return pfail(p, "%s lacks HELP or TYPE", f->name);
        if (strcmp(f->type, "counter") == 0 && !total)
            return pfail(p, "counter %s should end in _total", f->name);
        if (strcmp(f->type, "counter") != 0 && total)
            return pfail(p, "non-counter %s should not end in _total", f->name);
    }
    return 0;
}

int pgt_prom_check(const char *text, char *err, size_t errsize)
{
    struct prom *p = calloc(1, sizeof *p);
    const char *l = text;
    int rc = 0;

    p->err = err;
    p->errsize = errsize;
    if (!*text || text[strlen(text) - 1] != '\n') {
        rc = pfail(p, "text must end with a newline");
        goto out;
    }
    while (*l) {
        const char *nl = strchr(l, '\n');
        size_t n = (size_t)(nl - l);
        p->line++;
        if (n == 0)
            rc = pfail(p, "empty line");
        else if (memchr(l, '\r', n))
            rc = pfail(p, "carriage return");
        else if (l[0] == '#')
            rc = prom_comment(p, l, n);
        else
            rc = prom_sample(p, l, n);
        if (rc < 0)
            goto out;
        l = nl + 1;
    }
    rc = prom_lint(p);
out:
    for (size_t i = 0; i < p->nseries; i++)
        free(p->series[i]);
    free(p);
    return rc;
}

int pgt_pipe_cmd(const char *cmd, const char *text, char *out, size_t outsize)
{
    char path[] = "/tmp/pgt_pipe_XXXXXX", line[8192];
    int fd = mkstemp(path), st;
    size_t used = 0;
    FILE *f;

    if (fd < 0)
        return -1;
    f = fdopen(fd, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        unlink(path);
        return -1;
    }
    snprintf(line, sizeof line, "%s < %s 2>&1", cmd, path);
    f = popen(line, "r");
    if (!f) {
        unlink(path);
        return -1;
    }
    if (outsize)
        out[0] = '\0';
    while (fgets(line, sizeof line, f))
        if (used + 1 < outsize)
            used += (size_t)snprintf(out + used, outsize - used, "%s", line);
    st = pclose(f);
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
