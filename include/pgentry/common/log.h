/* The one logger: level-filtered, one line per event on stderr, text (logfmt) or JSON. */
#ifndef PGENTRY_COMMON_LOG_H
#define PGENTRY_COMMON_LOG_H

#include <stddef.h>

enum pge_log_level {
    PGE_LOG_DEBUG = 0,
    PGE_LOG_INFO = 1,
    PGE_LOG_WARN = 2,
    PGE_LOG_ERROR = 3,
};

enum pge_log_format {
    PGE_LOG_TEXT = 0,
    PGE_LOG_JSON = 1,
};

enum pge_log_ftype {
    PGE_LOG_F_END = 0,
    PGE_LOG_F_STR,
    PGE_LOG_F_INT,
    PGE_LOG_F_MS, /* a duration in milliseconds, printed as "1.25s" / "40ms" */
};

/* One key=value field of a log line. Build with the PGE_* macros below. */
struct pge_log_field {
    const char *key;
    enum pge_log_ftype type;
    const char *s;
    long long i;
};

#define PGE_STR(k, v) ((struct pge_log_field){.key = (k), .type = PGE_LOG_F_STR, .s = (v)})
#define PGE_INT(k, v) ((struct pge_log_field){.key = (k), .type = PGE_LOG_F_INT, .i = (v)})
#define PGE_MS(k, v)  ((struct pge_log_field){.key = (k), .type = PGE_LOG_F_MS, .i = (v)})
#define PGE_LOG_END_  ((struct pge_log_field){.key = NULL, .type = PGE_LOG_F_END})

/* Configure the logger. Not thread-safe against concurrent logging; call at start-up. */
void pge_log_setup(enum pge_log_level level, enum pge_log_format format);

/* Parse "debug|info|warn|error" / "text|json". Return 0, or -1 for an unknown word. */
int pge_log_parse_level(const char *s, enum pge_log_level *out);
int pge_log_parse_format(const char *s, enum pge_log_format *out);

/* Whether a line at this level would be written (checked before any formatting). */
int pge_log_enabled(enum pge_log_level level);

/* Register a secret (a password) that must never be printed: every occurrence in any later
 * line is replaced by "***". The string is copied. Up to 16 secrets. One of 1 or 2 bytes is
 * replaced only where it stands as a password - between ':' and '@' of a URL's userinfo, or as
 * a password= value - because anywhere else it would mangle innocent text; URLs shown through
 * pge_redact() hide it whatever its length. "" is ignored. Returns 0 or -1 when the table is
 * full. */
int pge_log_add_secret(const char *secret);

/* Copy text into out (size > 0; NUL-terminated, truncated to fit) with every registered
 * secret replaced by "***", exactly as a log line would show it: for text that leaves
 * pgentry another way (the health endpoint's last_error). Returns out. */
char *pge_log_scrub(const char *text, char *out, size_t size);

/* Send lines to fd, as it is, instead of stderr (tests). */
void pge_log_set_fd(int fd);

/* Write one line. Variadic arguments are struct pge_log_field values, ending with
 * PGE_LOG_END_; use the pge_log() macro, which adds it. Safe to call from any thread; never
 * blocks (logsink.h: a full stderr queues the line in a bounded buffer, or drops and counts
 * it). Never fails visibly: a line that cannot be written is dropped. */
void pge_log_emit(enum pge_log_level level, const char *msg, ...);

#define pge_log(level, ...)                                                                        \
    do {                                                                                           \
        if (pge_log_enabled(level))                                                                \
            pge_log_emit((level), __VA_ARGS__, PGE_LOG_END_);                                      \
    } while (0)

#define pge_debug(...) pge_log(PGE_LOG_DEBUG, __VA_ARGS__)
#define pge_info(...)  pge_log(PGE_LOG_INFO, __VA_ARGS__)
#define pge_warn(...)  pge_log(PGE_LOG_WARN, __VA_ARGS__)
#define pge_error(...) pge_log(PGE_LOG_ERROR, __VA_ARGS__)

/* Format milliseconds as a short human duration ("40ms", "1.5s", "2m03s") into buf. */
const char *pge_log_fmt_ms(long long ms, char *buf, size_t size);

#endif
