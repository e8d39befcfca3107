/* The migration-file tests' fixture: one throwaway directory per test, and paths inside it. */
#ifndef PGT_MIGFILE_FIXTURE_H
#define PGT_MIGFILE_FIXTURE_H

#include <stdlib.h>

#include "pgt_fs.h"

#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_ABC   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static char *dir;

static inline void setup(void)
{
    dir = pgt_tmpdir();
}

static inline void teardown(void)
{
    pgt_rmtree(dir);
    free(dir);
}

/* dir/name in a static buffer (valid until the next call). */
static inline char *path_of(const char *name)
{
    static char buf[4096];
    return pgt_join(buf, sizeof buf, dir, name);
}

#endif
