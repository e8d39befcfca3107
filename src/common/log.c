/* The one logger: level-filtered, one line per event on stderr, text (logfmt) or JSON. Lines
 * leave through logsink, which never blocks. */
#include "pgentry/common/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgentry/common/json.h"
#include "pgentry/common/logsink.h"

#define LINE_MAX_BYTES 16384
#define LINE_RESERVE   32
#define VALUE_MAX      1024
#define MAX_SECRETS    16
#define SECRET_MAX     256
#define FREE_TEXT_MIN  3 /* shorter secrets are hidden only where they stand as a password */

static enum pge_log_level g_level = PGE_LOG_INFO;
static enum pge_log_format g_format = PGE_LOG_TEXT;
static char g_secrets[MAX_SECRETS][SECRET_MAX];
static size_t g_nsecrets;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void pge_log_setup(enum pge_log_level level, enum pge_log_format format)
{
    g_level = level;
    g_format = format;
}

void pge_log_set_fd(int fd)
{
    pge_logsink_use_fd(fd);
}

int pge_log_parse_level(const char *s, enum pge_log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum pge_log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = PGE_LOG_WARN;
        return 0;
    }
    return -1;
}

int pge_log_parse_format(const char *s, enum pge_log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = PGE_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = PGE_LOG_JSON;
    else
        return -1;
    return 0;
}

int pge_log_enabled(enum pge_log_level level)
{
    return level >= g_level;
}

int pge_log_add_secret(const char *secret)
{
    size_t len = strlen(secret);
    if (len == 0)
        return 0;
    for (size_t i = 0; i < g_nsecrets; i++)
        if (strcmp(g_secrets[i], secret) == 0)
            return 0;
    if (g_nsecrets == MAX_SECRETS || len >= SECRET_MAX)
        return -1;
    memcpy(g_secrets[g_nsecrets], secret, len + 1);
    g_nsecrets++;
    return 0;
}

const char *pge_log_fmt_ms(long long ms, char *buf, size_t size)
{
    if (ms < 0)
        ms = 0;
    if (ms < 1000)
        snprintf(buf, size, "%lldms", ms);
    else if (ms < 60000)
        snprintf(buf, size, "%lld.%03llds", ms / 1000, ms % 1000);
    else if (ms < 3600000)
        snprintf(buf, size, "%lldm%02llds", ms / 60000, (ms / 1000) % 60);
    else
        snprintf(buf, size, "%lldh%02lldm", ms / 3600000, (ms / 60000) % 60);
    /* Trim "1.500s" to "1.5s": shorter lines, same meaning. */
    char *dot = strchr(buf, '.');
    if (dot) {
        size_t n = strlen(buf);
        char *s = buf + n - 1; /* the 's' */
        char *p = s - 1;
        while (p > dot && *p == '0')
            p--;
        if (p == dot)
            p--;
        memmove(p + 1, s, 2);
    }
    return buf;
}

/* Whether the n bytes at p (inside text starting at begin) stand where a password does: a
 * URL's userinfo ("user:PW@host") or a password= value (a URL query or a conninfo). A secret of
 * 1 or 2 bytes is hidden only there: anywhere else it would mangle innocent text. */
static int password_position(const char *begin, const char *p, size_t n)
{
    static const char key[] = "password=";
    size_t klen = sizeof key - 1;
    const char *v = p > begin && p[-1] == '\'' ? p - 1 : p; /* password='x' */
    char next = p[n];
    if (p > begin && p[-1] == ':' && next == '@')
        return 1;
    return (size_t)(v - begin) >= klen && strncasecmp(v - klen, key, klen) == 0 &&
           (next == '\0' || next == '&' || next == '\'' || next == '"' ||
            isspace((unsigned char)next));
}

/* Copy src into dst (bounded) with every registered secret replaced by "***". A value cut at
 * the bound loses its partial UTF-8 sequence so the line stays valid UTF-8. */
static const char *scrub(const char *src, char *dst, size_t size)
{
    const char *begin = src;
    size_t o = 0;
    while (*src && o + 1 < size) {
        size_t hit = 0;
        /* The longest match: a secret that extends another must not leave its tail behind. */
        for (size_t i = 0; i < g_nsecrets; i++) {
            size_t n = strlen(g_secrets[i]);
            if (n > hit && strncmp(src, g_secrets[i], n) == 0 &&
                (n >= FREE_TEXT_MIN || password_position(begin, src, n)))
                hit = n;
        }
        if (hit) {
            for (const char *r = "***"; *r && o + 1 < size; r++)
                dst[o++] = *r;
            src += hit;
        } else {
            dst[o++] = *src++;
        }
    }
    if (*src) {
        size_t k = o;
        while (k > 0 && ((unsigned char)dst[k - 1] & 0xc0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)dst[k - 1] & 0x80))
            o = k - 1;
    }
    dst[o] = '\0';
    return dst;
}

char *pge_log_scrub(const char *text, char *out, size_t size)
{
    scrub(text, out, size);
    return out;
}

static int needs_quotes(const char *s)
{
    if (*s == '\0')
        return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            return 1;
    return 0;
}

/* logfmt value: bare when safe, else quoted with the JSON escapes (one line, always). */
static void put_text_value(struct pge_json_buf *l, const char *s)
{
    if (needs_quotes(s))
        pge_json_string(l, s);
    else
        pge_json_puts(l, s);
}

/* The message of a text line: control characters escaped so that one event stays one line. */
static void put_text_msg(struct pge_json_buf *l, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n')
            pge_json_put(l, "\\n", 2);
        else if (*p < 0x20 || *p == 0x7f)
            pge_json_put(l, "?", 1);
        else
            pge_json_put(l, (const char *)p, 1);
    }
}

static void put_timestamp(struct pge_json_buf *l)
{
    struct timespec ts;
    struct tm tm;
    char buf[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03ldZ", ts.tv_nsec / 1000000);
    pge_json_puts(l, buf);
}

static const char *field_value(const struct pge_log_field *f, char *buf, size_t size)
{
    switch (f->type) {
    case PGE_LOG_F_STR:
        return scrub(f->s ? f->s : "", buf, size);
    case PGE_LOG_F_INT:
        snprintf(buf, size, "%lld", f->i);
        return buf;
    case PGE_LOG_F_MS:
        return pge_log_fmt_ms(f->i, buf, size);
    case PGE_LOG_F_END:
        break;
    }
    return "";
}

/* Append one formatted field to the line, whole or not at all. */
static int append_field(struct pge_json_buf *l, const struct pge_log_field *f)
{
    char vbuf[VALUE_MAX];
    char fbuf[LINE_MAX_BYTES - LINE_RESERVE];
    struct pge_json_buf fb = PGE_JSON_BUF(fbuf, sizeof fbuf);
    const char *v = field_value(f, vbuf, sizeof vbuf);

    if (g_format == PGE_LOG_JSON) {
        pge_json_puts(&fb, ",");
        pge_json_string(&fb, f->key);
        pge_json_puts(&fb, ":");
        if (f->type == PGE_LOG_F_INT) {
            pge_json_puts(&fb, v);
        } else if (f->type == PGE_LOG_F_MS) {
            char num[64];
            /* Machines get the exact number next to the human form. */
            pge_json_string(&fb, v);
            snprintf(num, sizeof num, ",\"%.40s_ms\":%lld", f->key, f->i);
            pge_json_puts(&fb, num);
        } else {
            pge_json_string(&fb, v);
        }
    } else {
        pge_json_puts(&fb, " ");
        pge_json_puts(&fb, f->key);
        pge_json_puts(&fb, "=");
        put_text_value(&fb, v);
    }
    if (fb.overflow)
        return -1;
    pge_json_put(l, fb.p, fb.len);
    return l->overflow ? -1 : 0;
}

void pge_log_emit(enum pge_log_level level, const char *msg, ...)
{
    char line[LINE_MAX_BYTES];
    /* Room is kept for the line's closing bytes, whatever the fields did. */
    struct pge_json_buf l = PGE_JSON_BUF(line, sizeof line - LINE_RESERVE);
    char vbuf[VALUE_MAX];
    char pidbuf[32];
    va_list ap;
    int saved_errno = errno;
    int truncated = 0;

    if (level < g_level)
        return;
    if (level > PGE_LOG_ERROR)
        level = PGE_LOG_ERROR;
    snprintf(pidbuf, sizeof pidbuf, "%ld", (long)getpid());

    if (g_format == PGE_LOG_JSON) {
        pge_json_puts(&l, "{\"ts\":\"");
        put_timestamp(&l);
        pge_json_puts(&l, "\",\"level\":\"");
        pge_json_puts(&l, level_names[level]);
        pge_json_puts(&l, "\",\"pid\":");
        pge_json_puts(&l, pidbuf);
        pge_json_puts(&l, ",\"msg\":");
        pge_json_string(&l, scrub(msg, vbuf, sizeof vbuf));
    } else {
        put_timestamp(&l);
        pge_json_puts(&l, " ");
        pge_json_puts(&l, level_names[level]);
        pge_json_puts(&l,
                      level == PGE_LOG_INFO || level == PGE_LOG_WARN ? "  pgentry[" : " pgentry[");
        pge_json_puts(&l, pidbuf);
        pge_json_puts(&l, "] ");
        put_text_msg(&l, scrub(msg, vbuf, sizeof vbuf));
    }

    va_start(ap, msg);
    for (;;) {
        struct pge_log_field f = va_arg(ap, struct pge_log_field);
        if (f.type == PGE_LOG_F_END || f.key == NULL)
            break;
        if (!truncated && append_field(&l, &f) < 0)
            truncated = 1;
    }
    va_end(ap);

    /* The reserve always has room for the closing bytes. */
    l.overflow = 0;
    l.cap = sizeof line;
    if (truncated)
        pge_json_puts(&l, g_format == PGE_LOG_JSON ? ",\"truncated\":true" : " truncated=true");
    if (g_format == PGE_LOG_JSON)
        pge_json_puts(&l, "}");
    pge_json_put(&l, "\n", 1);

    pge_logsink_write(l.p, l.len);
    errno = saved_errno;
}
