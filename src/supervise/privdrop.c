/* --user USER[:GROUP]: resolve an account once, switch a process to it before exec. */
#include "pgentry/supervise/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Most accounts have a handful of groups; getgrouplist tells us when it needs more. */
#define GROUPS_INITIAL 32
#define GROUPS_MAX     65536

/* A decimal id that fits uid_t/gid_t and is not (uid_t)-1, which means "unchanged". */
static int parse_id(const char *s, unsigned long *out)
{
    char *end;
    if (!*s || strspn(s, "0123456789") != strlen(s))
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v >= (unsigned long)UINT_MAX)
        return -1;
    *out = v;
    return 0;
}

static int lookup_group(const char *name, gid_t *gid, char *err, size_t errsize)
{
    unsigned long v;
    if (parse_id(name, &v) == 0) {
        *gid = (gid_t)v;
        return 0;
    }
    errno = 0;
    struct group *gr = getgrnam(name);
    if (!gr) {
        snprintf(err, errsize, "--user: unknown group \"%s\"%s%s", name, errno ? ": " : "",
                 errno ? strerror(errno) : "");
        return -1;
    }
    *gid = gr->gr_gid;
    return 0;
}

/* The account's groups from the group database, primary group included. */
static int account_groups(const char *name, gid_t gid, struct pge_privdrop *c, char *err,
                          size_t errsize)
{
    int n = GROUPS_INITIAL;
    for (;;) {
        gid_t *g = malloc((size_t)n * sizeof *g);
        int want = n;
        if (!g) {
            snprintf(err, errsize, "--user: out of memory");
            return -1;
        }
        if (getgrouplist(name, gid, g, &want) >= 0) {
            c->groups = g;
            c->ngroups = (size_t)want;
            return 0;
        }
        free(g);
        /* want now holds the number needed; grow once more, within reason. */
        if (want <= n || want > GROUPS_MAX) {
            snprintf(err, errsize, "--user: cannot list the groups of \"%s\"", name);
            return -1;
        }
        n = want;
    }
}

static int set_home(struct pge_privdrop *c, const char *home, char *err, size_t errsize)
{
    size_t len = strlen("HOME=") + strlen(home) + 1;
    c->home_var = malloc(len);
    if (!c->home_var) {
        snprintf(err, errsize, "--user: out of memory");
        return -1;
    }
    snprintf(c->home_var, len, "HOME=%s", home);
    return 0;
}

int pge_privdrop_resolve(const char *spec, struct pge_privdrop *c, char *err, size_t errsize)
{
    char user[256];
    const char *group = NULL;
    const char *colon = strchr(spec, ':');
    const char *home = "/";
    const struct passwd *pw = NULL;
    unsigned long v;
    int rc = -1;

    memset(c, 0, sizeof *c);
    size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (ulen == 0 || ulen >= sizeof user || (colon && !colon[1])) {
        snprintf(err, errsize, "--user: expected USER[:GROUP], got \"%s\"", spec);
        goto out;
    }
    memcpy(user, spec, ulen);
    user[ulen] = '\0';
    if (colon)
        group = colon + 1;

    errno = 0;
    if (parse_id(user, &v) == 0) {
        c->uid = (uid_t)v;
        c->gid = (gid_t)v; /* without an account: the uid's own number, never root's group */
        pw = getpwuid(c->uid);
    } else {
        pw = getpwnam(user);
        if (!pw) {
            snprintf(err, errsize, "--user: unknown user \"%s\"%s%s", user, errno ? ": " : "",
                     errno ? strerror(errno) : "");
            goto out;
        }
    }
    if (pw) {
        c->uid = pw->pw_uid;
        c->gid = pw->pw_gid;
        if (pw->pw_dir && pw->pw_dir[0])
            home = pw->pw_dir;
    }
    if (set_home(c, home, err, errsize) < 0)
        goto out;
    if (group) {
        if (lookup_group(group, &c->gid, err, errsize) < 0)
            goto out;
    }
    if (pw && !group) {
        /* pw points into static storage that getgrouplist may reuse: copy the name first. */
        char name[256];
        snprintf(name, sizeof name, "%s", pw->pw_name);
        if (account_groups(name, c->gid, c, err, errsize) < 0)
            goto out;
    } else {
        c->groups = malloc(sizeof *c->groups);
        if (!c->groups) {
            snprintf(err, errsize, "--user: out of memory");
            goto out;
        }
        c->groups[0] = c->gid;
        c->ngroups = 1;
    }
    c->switch_ids = 1;
    if (geteuid() != 0) {
        /* Without root only "become who we already are" can succeed; anything else would
         * fail in the child, so say it now. */
        if (c->uid != geteuid() || c->gid != getegid()) {
            snprintf(err, errsize, "--user %s needs root (running as uid %u)", spec,
                     (unsigned)geteuid());
            goto out;
        }
        c->switch_ids = 0;
    }
    rc = 0;
out:
    if (rc < 0)
        pge_privdrop_free(c);
    return rc;
}

int pge_privdrop_apply(const struct pge_privdrop *c, const char **step)
{
    if (!c->switch_ids)
        return 0;
    *step = "setgroups";
    if (setgroups(c->ngroups, c->groups) < 0)
        return -1;
    *step = "setgid";
    if (setgid(c->gid) < 0)
        return -1;
    *step = "setuid";
    if (setuid(c->uid) < 0)
        return -1;
    /* A uid switch that left a way back to root would be worse than failing. */
    *step = "verify";
    if (getuid() != c->uid || geteuid() != c->uid || getgid() != c->gid || getegid() != c->gid) {
        errno = EPERM;
        return -1;
    }
    if (c->uid != 0 && setuid(0) == 0) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

char **pge_privdrop_environ(const struct pge_privdrop *c, char *const *envp)
{
    size_t n = 0;
    size_t j = 0;
    while (envp && envp[n])
        n++;
    char **out = malloc((n + 2) * sizeof *out);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(envp[i], "HOME=", 5) != 0)
            out[j++] = envp[i];
    out[j++] = c->home_var;
    out[j] = NULL;
    return out;
}

void pge_privdrop_free(struct pge_privdrop *c)
{
    free(c->groups);
    free(c->home_var);
    c->groups = NULL;
    c->home_var = NULL;
    c->ngroups = 0;
}
