/* Path helpers shared by the migration file modules (migfile, migscan, revision); private. */
#ifndef PGENTRY_MIGRATE_MIGFILE_INT_H
#define PGENTRY_MIGRATE_MIGFILE_INT_H

/* A malloc'd formatted string (the caller frees it), or NULL when out of memory (asprintf
 * leaves its pointer undefined on failure). */
char *pge_migfile_fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

/* dir + "/" + name (no doubled '/') as a malloc'd string, or NULL when out of memory. */
char *pge_migfile_join(const char *dir, const char *name);

#endif
