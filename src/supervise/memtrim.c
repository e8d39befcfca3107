/* Give back memory the idle supervisor no longer uses: heap slack and clean library pages. */
#include "pgentry/supervise/memtrim.h"

#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

struct mapping {
    unsigned long start, end;
    char perms[8];
    int file; /* backed by a file (path starts with '/') */
    long rss_kb, anon_kb;
};

/* Drop it only when every resident page is an unmodified page of the file. */
static long release(const struct mapping *m)
{
    int code = strcmp(m->perms, "r-xp") == 0;
    int rodata = strcmp(m->perms, "r--p") == 0 && m->anon_kb == 0;
    if (!m->file || m->rss_kb == 0 || !(code || rodata) || m->anon_kb != 0)
        return 0;
    if (madvise((void *)m->start, m->end - m->start, MADV_DONTNEED) != 0)
        return 0;
    return m->rss_kb;
}

long pge_memtrim_release(void)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    char line[512];
    struct mapping cur;
    int have = 0;
    long released = 0;

    if (!f)
        return -1;
    malloc_trim(0);
    memset(&cur, 0, sizeof cur);
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        char perms[8];
        int n = 0;
        /* A mapping's header: "start-end perms offset dev inode [path]". */
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &s, &e, perms, &n) == 3 && n > 0) {
            if (have)
                released += release(&cur);
            memset(&cur, 0, sizeof cur);
            cur.start = s;
            cur.end = e;
            snprintf(cur.perms, sizeof cur.perms, "%s", perms);
            cur.file = line[n] == '/';
            have = 1;
            continue;
        }
        if (strncmp(line, "Rss:", 4) == 0)
            sscanf(line + 4, "%ld", &cur.rss_kb);
        else if (strncmp(line, "Anonymous:", 10) == 0)
            sscanf(line + 10, "%ld", &cur.anon_kb);
    }
    if (have)
        released += release(&cur);
    fclose(f);
    return released;
}
