/* ${NAME} placeholders of envsubst migrations: checked before anything runs, substituted per
 * file, and their values kept out of every log line. */
#include "engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/log.h"

/* Report a failed substitution of path (r: UNSET, BAD_PLACEHOLDER, TOO_BIG or SYSTEM). */
static void report(const char *path, enum pge_migfile_result r, const struct pge_migfile_subst *s)
{
    char where[600], name[PGE_MIGFILE_VAR_MAX + 1];
    snprintf(where, sizeof where, "%s:%u", path, s->line);
    snprintf(name, sizeof name, "%.*s", (int)s->name_len, s->name ? s->name : "");
    if (r == PGE_MIGFILE_UNSET)
        pge_error("migration uses an environment variable that is not set: set it (an empty "
                  "value counts as set), or remove -- pgentry:envsubst; nothing was applied",
                  PGE_STR("variable", name), PGE_STR("at", where));
    else if (r == PGE_MIGFILE_BAD_PLACEHOLDER)
        pge_error("migration has a \"${\" that is not a placeholder ${NAME} (NAME: letters, "
                  "digits, _, not starting with a digit); an envsubst file cannot hold a literal "
                  "\"${\": move that statement to a file without -- pgentry:envsubst; nothing "
                  "was applied",
                  PGE_STR("at", where));
    else if (r == PGE_MIGFILE_TOO_BIG)
        pge_error("migration is too large once its placeholders are replaced; nothing was applied",
                  PGE_STR("file", path));
    else
        pge_error("out of memory replacing placeholders", PGE_STR("file", path));
}

/* Check (or, with want_text, substitute) text of path when its header asks for envsubst.
 * Returns the result; *s as pge_migfile_envsubst() leaves it, or zeroed when not envsubst. */
static enum pge_migfile_result subst_file(const char *path, const char *text, size_t len,
                                          int want_text, struct pge_migfile_subst *s)
{
    struct pge_migfile_directives d;
    memset(s, 0, sizeof *s);
    if (pge_migfile_directives(text, len, &d) < 0 || !(d.flags & PGE_MIGFILE_DIR_ENVSUBST))
        return PGE_MIGFILE_OK;
    enum pge_migfile_result r =
        pge_migfile_envsubst(text, len, pge_migfile_getenv, NULL, want_text, s);
    if (r != PGE_MIGFILE_OK)
        report(path, r, s);
    return r;
}

int pge_migrate_check_placeholders(struct pge_migrate *m)
{
    char err[1024];
    for (size_t i = 0; i < m->plan.count; i++) {
        const struct pge_migplan_item *it = &m->plan.items[i];
        int down = it->action == PGE_MIGPLAN_DO_REVERT;
        if (!it->file || (it->action != PGE_MIGPLAN_DO_APPLY && !down) ||
            !(down ? it->file->down_envsubst : it->file->envsubst))
            continue;
        const char *path = down ? it->file->down_path : it->file->up_path;
        char *text = NULL;
        size_t len = 0;
        struct pge_migfile_subst s;
        enum pge_migfile_result r = pge_migfile_read(path, &text, &len, NULL, err, sizeof err);
        if (r != PGE_MIGFILE_OK) {
            pge_error(err);
            return -1;
        }
        r = subst_file(path, text, len, 0, &s);
        free(text);
        if (r != PGE_MIGFILE_OK)
            return -1;
    }
    return 0;
}

int pge_migrate_substitute(struct pge_migrate *m)
{
    struct pge_migfile_subst s;
    free(m->raw);
    m->raw = NULL;
    if (subst_file(m->path, m->text, m->text_len, 1, &s) != PGE_MIGFILE_OK)
        return -1;
    if (!s.text)
        return 0;
    m->raw = m->text;
    m->raw_len = m->text_len;
    m->text = s.text;
    m->text_len = s.len;
    return 0;
}

const char *pge_migrate_mask_values(const struct pge_migrate *m, const char *msg, char *buf,
                                    size_t size)
{
    if (!msg)
        return "";
    if (!m->raw)
        return msg;
    return pge_migfile_envsubst_redact(m->raw, m->raw_len, pge_migfile_getenv, NULL, msg, buf,
                                       size);
}
