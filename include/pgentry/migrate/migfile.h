/* Migration files on disk: name parsing, directory scan, normalised text, checksums, revision. */
#ifndef PGENTRY_MIGRATE_MIGFILE_H
#define PGENTRY_MIGRATE_MIGFILE_H

#include <stddef.h>
#include <stdint.h>

#include "pgentry/common/outcome.h"

#define PGE_MIGFILE_MAX_BYTES        (64u * 1024u * 1024u) /* larger files are refused */
#define PGE_MIGFILE_CHECKSUM_LEN     64                    /* hex digits of a SHA-256 */
#define PGE_MIGFILE_SLUG_MAX         60                    /* slug length made by revision */
#define PGE_MIGFILE_NO_TX_MARK       "-- pgentry:no-transaction"
#define PGE_MIGFILE_ENVSUBST_MARK    "-- pgentry:envsubst"
#define PGE_MIGFILE_KNOWN_DIRECTIVES "no-transaction, envsubst" /* for messages */
#define PGE_MIGFILE_VAR_MAX          255                        /* longest ${NAME} */

/* What a scan, read or revision ended with. pge_migfile_outcome() says which exit code. */
enum pge_migfile_result {
    PGE_MIGFILE_OK = 0,
    PGE_MIGFILE_NO_DIR,        /* the directory does not exist (78, or create it) */
    PGE_MIGFILE_NOT_DIR,       /* the path exists but is not a directory (78) */
    PGE_MIGFILE_UNREADABLE,    /* directory or file cannot be read, or is not a regular file (78) */
    PGE_MIGFILE_TOO_BIG,       /* a file is over PGE_MIGFILE_MAX_BYTES (78) */
    PGE_MIGFILE_BAD_NAME,      /* NNNN... .up.sql/.down.sql that is not NNNN_slug.up.sql (65) */
    PGE_MIGFILE_DUPLICATE,     /* two files with the same numeric version and kind (65) */
    PGE_MIGFILE_ORPHAN_DOWN,   /* a .down.sql without its .up.sql (65) */
    PGE_MIGFILE_MISMATCH,      /* .up.sql and .down.sql of one version named differently (65) */
    PGE_MIGFILE_BAD_MESSAGE,   /* revision: the message has no letter or digit for a slug (64) */
    PGE_MIGFILE_EXISTS,        /* revision: a file to create already exists (78) */
    PGE_MIGFILE_FULL,          /* revision: the highest version is already the largest (65) */
    PGE_MIGFILE_SYSTEM,        /* out of memory, I/O or crypto failure (70) */
    PGE_MIGFILE_BAD_DIRECTIVE, /* a "-- pgentry:WORD" header line this version does not know (65) */
    PGE_MIGFILE_BAD_PLACEHOLDER, /* envsubst: "${" not followed by NAME and "}" (65) */
    PGE_MIGFILE_UNSET,           /* envsubst: ${NAME} is not set in the environment (65) */
};

/* Which outcome (and so which exit code) a status stands for. Pure. */
enum pge_outcome_kind pge_migfile_outcome(enum pge_migfile_result st);

/* ---- File names ------------------------------------------------------------------------ */

enum pge_migfile_name_result {
    PGE_MIGFILE_NAME_OK = 0,
    PGE_MIGFILE_NAME_OTHER,     /* not a migration file: README, .gitkeep, x.up.sql~ (ignore) */
    PGE_MIGFILE_NAME_MALFORMED, /* starts with a digit and ends in .up.sql or .down.sql, but is
                                 * not NNNN_slug: a typo that must not be skipped silently */
};

/* A parsed name. Pointers point into the caller's name, which must outlive them. */
struct pge_migfile_name {
    int64_t version;          /* 0 .. INT64_MAX (the history table's bigint) */
    const char *version_text; /* digits as written, e.g. "0001" */
    size_t version_len;
    const char *slug; /* between '_' and ".up.sql"/".down.sql"; never empty */
    size_t slug_len;
    int down;        /* 0: .up.sql, 1: .down.sql */
    const char *why; /* MALFORMED only: what is wrong (static text), else NULL */
};

/* Parse name[0..len) (a directory entry's name, not a path; no NUL needed, a NUL inside is
 * OTHER) as "NNNN_slug.up.sql" or "NNNN_slug.down.sql": one or more decimal digits whose value
 * fits in int64, '_', a non-empty slug of bytes other than '/' and control characters, then the
 * suffix. Fills *out on OK and MALFORMED (only out->why on MALFORMED); on OTHER *out is
 * untouched. Pure, bounded by len, never allocates. */
enum pge_migfile_name_result pge_migfile_parse_name(const char *name, size_t len,
                                                    struct pge_migfile_name *out);

/* Parse name[0..len) (a directory entry's name) as a repeatable migration "R__slug.sql" (Flyway's
 * convention): OK with the slug in slug and slug_len (into name), MALFORMED when it starts with
 * "R__" and ends in ".sql" but the slug is empty or has a control character or '/', OTHER for
 * anything else (then nothing is set). Pure, bounded by len. */
enum pge_migfile_name_result pge_migfile_parse_repeatable(const char *name, size_t len,
                                                          const char **slug, size_t *slug_len);

/* Parse s[0..len) as a decimal version: one or more digits, leading zeros allowed, value at most
 * INT64_MAX. Returns 0 and sets *version, or -1 (empty, non-digit, overflow). Pure. */
int pge_migfile_parse_version(const char *s, size_t len, int64_t *version);

/* ---- Text ------------------------------------------------------------------------------ */

/* Normalise buf[0..len) in place: drop one leading UTF-8 BOM, turn every CRLF into LF (a lone CR
 * stays). Returns the new length (never longer). Not idempotent on "\r\r\n" or a double BOM, so
 * normalise raw text exactly once. Pure. */
size_t pge_migfile_normalize(char *buf, size_t len);

/* The checksum recorded in the history table: lowercase hex SHA-256 of the normalised form of
 * the raw text[0..len), written as 64 hex digits and a NUL into hex. Text differing only by a
 * BOM or CRLF line ends has the same checksum. Does not allocate text copies; no I/O. */
void pge_migfile_checksum(const char *text, size_t len, char hex[PGE_MIGFILE_CHECKSUM_LEN + 1]);

/* ---- Directives and placeholders (migtext.c) ------------------------------------------ */

/* Directive flags. */
#define PGE_MIGFILE_DIR_NO_TX    1u /* -- pgentry:no-transaction */
#define PGE_MIGFILE_DIR_ENVSUBST 2u /* -- pgentry:envsubst */

/* The directives of a file, or where the first unknown one is. */
struct pge_migfile_directives {
    unsigned flags;   /* PGE_MIGFILE_DIR_* found */
    unsigned line;    /* unknown directive only: its 1-based line */
    const char *word; /* unknown directive only: what follows "pgentry:" (into text), trimmed */
    size_t word_len;
};

/* Read the directives of text[0..len) (raw or normalised). Directives live in the file's
 * header: the lines before the first line that is neither blank nor a "--" comment (after a
 * UTF-8 BOM; leading blanks allowed; a block comment ends the header). A header line that is
 * "--", optional blanks, "pgentry:" (any case), then a word, is a directive; the word (trailing
 * blanks and CR dropped) must be exactly "no-transaction" or "envsubst". Returns 0 with
 * out->flags, or -1 at the first other word (out->line, out->word set), so a typo or a newer
 * release's directive is never read as a plain comment. Pure, bounded by len. */
int pge_migfile_directives(const char *text, size_t len, struct pge_migfile_directives *out);

/* Whether text[0..len) asks to run outside a transaction: its header (above) holds
 * "-- pgentry:no-transaction" and no unknown directive. Returns 1 or 0. Pure. */
int pge_migfile_no_transaction(const char *text, size_t len);

/* Looks NAME (name[0..len), not NUL-terminated) up: its value, or NULL when unset. */
typedef const char *(*pge_migfile_lookup_cb)(void *arg, const char *name, size_t len);

/* The outcome of a substitution: OK, BAD_PLACEHOLDER, UNSET, TOO_BIG or SYSTEM (memory). */
struct pge_migfile_subst {
    char *text; /* OK with want_text: the malloc'd NUL-terminated result, the caller frees */
    size_t len;
    unsigned line;    /* error: 1-based line of the placeholder */
    const char *name; /* UNSET / BAD_PLACEHOLDER: the name (into the input; may be empty) */
    size_t name_len;
};

/* Replace every "${NAME}" (NAME = [A-Za-z_][A-Za-z0-9_]*, at most PGE_MIGFILE_VAR_MAX bytes)
 * in text[0..len) with lookup's value, everywhere - inside quotes, $$ bodies and comments too:
 * it is plain text substitution before any SQL is read. A "$" not followed by "{" stays as it
 * is; "${" not followed by NAME and "}" is BAD_PLACEHOLDER (there is no escape); an unset NAME
 * is UNSET. Both report the first offender. With want_text 0 only checks (nothing allocated);
 * else out->text holds the result (at most PGE_MIGFILE_MAX_BYTES, else TOO_BIG). On error
 * out->text is NULL. Pure apart from lookup. */
enum pge_migfile_result pge_migfile_envsubst(const char *text, size_t len,
                                             pge_migfile_lookup_cb lookup, void *arg, int want_text,
                                             struct pge_migfile_subst *out);

/* Copy msg into out (NUL-terminated, truncated to size) with the value of every placeholder of
 * text[0..len) (looked up again) replaced by "***", so an error message PostgreSQL built from
 * the substituted SQL shows no value. Returns out. Pure apart from lookup. */
char *pge_migfile_envsubst_redact(const char *text, size_t len, pge_migfile_lookup_cb lookup,
                                  void *arg, const char *msg, char *out, size_t size);

/* lookup for the process environment (getenv). */
const char *pge_migfile_getenv(void *arg, const char *name, size_t len);

/* Load a migration file normalised. On OK *text is a malloc'd NUL-terminated copy the caller
 * frees, *len its length without the NUL, and when checksum is not NULL it receives the
 * checksum of exactly this text (so what runs is what gets recorded). Refuses directories,
 * FIFOs and other non-regular files (UNREADABLE) without blocking, and files over
 * PGE_MIGFILE_MAX_BYTES (TOO_BIG). On error *text is NULL and err holds one line naming the
 * file and the fix. */
enum pge_migfile_result pge_migfile_read(const char *path, char **text, size_t *len, char *checksum,
                                         char *err, size_t errsize);

/* ---- Directory scan -------------------------------------------------------------------- */

/* One migration: its .up.sql and maybe its .down.sql. */
struct pge_migfile {
    int64_t version;
    char *version_text;                          /* as written in the .up.sql name, e.g. "0001" */
    char *name;                                  /* the slug, e.g. "add_users" */
    char *up_path;                               /* dir + "/" + file name */
    char *down_path;                             /* NULL when there is no .down.sql */
    char checksum[PGE_MIGFILE_CHECKSUM_LEN + 1]; /* pge_migfile_checksum() of the .up.sql */
    int no_transaction;                          /* .up.sql has the no-transaction directive */
    int down_no_transaction;                     /* .down.sql has it */
    int envsubst;                                /* .up.sql has the envsubst directive */
    int down_envsubst;                           /* .down.sql has it */
    int repeatable; /* R__slug.sql: version -1, version_text "R", no .down.sql */
    int up_empty;   /* .up.sql has no statement (empty, or comments only): never applied */
};

/* A scanned directory. Plain data owned by the caller; release with pge_migfile_set_free(). */
struct pge_migset {
    struct pge_migfile *items; /* sorted by version, strictly ascending */
    size_t count;
    char **ignored; /* names of directory entries that are not migrations, in directory order
                     * (for the caller's debug log); "." and ".." are left out */
    size_t nignored;
    struct pge_migfile *repeatables; /* R__slug.sql files, sorted by name (strcmp) */
    size_t nrepeatables;
};

/* Scan dir: parse every entry's name, read and checksum every .up.sql and .down.sql, pair them
 * by version and sort numerically ("2" < "10" < "0011"). A missing .down.sql is fine; so is a
 * directory with no migrations. Errors (first one found, in version order): NO_DIR, NOT_DIR,
 * UNREADABLE, TOO_BIG, BAD_NAME, DUPLICATE, ORPHAN_DOWN, MISMATCH, SYSTEM, each with one line in
 * err naming the file and the fix. *set is always initialised (empty on error) and must be
 * released with pge_migfile_set_free(). Reads the file system; never logs. */
enum pge_migfile_result pge_migfile_scan(const char *dir, struct pge_migset *set, char *err,
                                         size_t errsize);

/* The index of version in set->items, or -1. Binary search; pure. */
long pge_migfile_set_find(const struct pge_migset *set, int64_t version);

/* Free everything the set owns and empty it. NULL-safe; the set may be scanned into again. */
void pge_migfile_set_free(struct pge_migset *set);

/* ---- Revision -------------------------------------------------------------------------- */

/* The slug for a message: ASCII letters lowercased and digits kept, every run of other bytes
 * becomes one '_', no '_' at either end, at most PGE_MIGFILE_SLUG_MAX bytes (cut, then trimmed
 * again). Writes it NUL-terminated into out (size > PGE_MIGFILE_SLUG_MAX is always enough).
 * Returns its length, or -1 when it would be empty or does not fit. Pure. */
int pge_migfile_slugify(const char *message, char *out, size_t size);

/* Create dir/VERSION_SLUG.up.sql and dir/VERSION_SLUG.down.sql (version_text and slug used
 * as given), with O_EXCL: an existing file is never overwritten (EXISTS). Each starts with a
 * "-- MESSAGE" comment (control characters become spaces so the message stays one comment
 * line); the .up.sql also says how to opt out of the transaction. If the .down.sql cannot be
 * made the .up.sql just created is removed again. Errors: EXISTS, UNREADABLE (cannot create or
 * write), SYSTEM. On OK *up_path and *down_path are malloc'd paths the caller frees; on error
 * both are NULL. */
enum pge_migfile_result pge_migfile_create_pair(const char *dir, const char *version_text,
                                                const char *slug, const char *message,
                                                char **up_path, char **down_path, char *err,
                                                size_t errsize);

/* `pgentry revision -m MESSAGE`: create dir if it does not exist (one level, mode 0755), scan
 * it, then pge_migfile_create_pair() for the highest existing version + 1, padded with zeros
 * to the width of that version's text (4 in an empty directory: "0001"), and the slug of
 * message. Errors: any scan error, BAD_MESSAGE, FULL, and those of pge_migfile_create_pair();
 * UNREADABLE also when the directory cannot be created. Paths as for pge_migfile_create_pair(). */
enum pge_migfile_result pge_migfile_revision(const char *dir, const char *message, char **up_path,
                                             char **down_path, char *err, size_t errsize);

#endif
