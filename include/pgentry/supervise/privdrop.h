/* --user USER[:GROUP]: resolve an account once, switch a process to it before exec. */
#ifndef PGENTRY_SUPERVISE_PRIVDROP_H
#define PGENTRY_SUPERVISE_PRIVDROP_H

#include <stddef.h>
#include <sys/types.h>

/* A resolved identity; plain data owned by the caller (release with pge_privdrop_free). */
struct pge_privdrop {
    uid_t uid;
    gid_t gid;
    gid_t *groups; /* supplementary groups to set (owned); includes gid */
    size_t ngroups;
    char *home_var; /* "HOME=..." for COMMAND's environment (owned) */
    int switch_ids; /* 0: already running as uid:gid without root, nothing to switch */
};

/* Resolve spec ("name", "uid", "name:group", "uid:gid"; numbers need no /etc/passwd).
 * Supplementary groups: the account's groups from the group database when it has a passwd
 * entry and no GROUP was given, otherwise just the primary group. A numeric uid without a
 * passwd entry and without GROUP gets gid = uid (never root's group by accident) and HOME=/.
 * Calls getpwnam/getgrnam/getgrouplist: blocking file or NSS I/O, meant for start-up only.
 * Returns 0, or -1 with a one-line message in err (unknown user or group, not root). */
int pge_privdrop_resolve(const char *spec, struct pge_privdrop *c, char *err, size_t errsize);

/* Switch the calling process: setgroups, setgid, setuid, then check root cannot be regained.
 * Only async-signal-safe calls: usable in a forked child. Returns 0, or -1 with errno and
 * *step naming the call that failed (static string). */
int pge_privdrop_apply(const struct pge_privdrop *c, const char **step);

/* A copy of envp (pointers only; the array is owned by the caller, free() it) with HOME
 * replaced by c->home_var. NULL when out of memory. */
char **pge_privdrop_environ(const struct pge_privdrop *c, char *const *envp);

/* Release what pge_privdrop_resolve allocated; safe on a zeroed struct. */
void pge_privdrop_free(struct pge_privdrop *c);

#endif
