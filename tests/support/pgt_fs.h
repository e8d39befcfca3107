/* Test helpers for real files: throwaway directories, writing and reading whole files. */
#ifndef PGT_FS_H
#define PGT_FS_H

#include <stddef.h>

/* A new empty directory under $TMPDIR (or /tmp). Returns a malloc'd path; fails the test if it
 * cannot be made. Remove it with pgt_rmtree(). */
char *pgt_tmpdir(void);

/* Remove path and everything below it (links are removed, not followed). Best effort. */
void pgt_rmtree(const char *path);

/* dir + "/" + name into buf (fails the test when it does not fit). Returns buf. */
char *pgt_join(char *buf, size_t size, const char *dir, const char *name);

/* Create or truncate dir/name with exactly data[0..len); fails the test on error. */
void pgt_write(const char *dir, const char *name, const char *data, size_t len);

/* Like pgt_write() for a NUL-terminated string. */
void pgt_write_str(const char *dir, const char *name, const char *text);

/* The whole content of path, malloc'd and NUL-terminated, *len without the NUL; NULL (and
 * errno) when it cannot be read. */
char *pgt_read(const char *path, size_t *len);

#endif
