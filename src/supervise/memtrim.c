/* Give back memory the idle supervisor no longer uses: heap slack and clean library pages. */
#include "pgentry/supervise/memtrim.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* /proc/PID/pagemap, one 64-bit entry per page (Documentation/admin-guide/mm/pagemap.rst). */
#define PRESENT   (UINT64_C(1) << 63)
#define FILE_PAGE (UINT64_C(1) << 61) /* still the file's page: never copied on write */
#define BATCH     512                 /* entries read at once: 2 MiB of address space */

/* Drop [start, end) from this process when it holds something. Returns the kilobytes dropped. */
static long drop(uintptr_t start, uintptr_t end)
{
    if (end <= start || madvise((void *)start, end - start, MADV_DONTNEED) != 0)
        return 0;
    return (long)((end - start) / 1024);
}

/* Within one private file mapping, drop each run of resident pages that are still the file's
 * own: a page the program wrote (relocated data, a variable) is anonymous and is kept, so
 * nothing written is ever lost. */
static long release_mapping(int pagemap, uintptr_t start, uintptr_t end, long page)
{
    uint64_t entry[BATCH];
    uintptr_t run = 0; /* start of the current run of droppable pages, 0 when none */
    long released = 0;

    for (uintptr_t at = start; at < end;) {
        size_t want = (size_t)((end - at) / (uintptr_t)page);
        if (want > BATCH)
            want = BATCH;
        off_t off = (off_t)(at / (uintptr_t)page * sizeof entry[0]);
        ssize_t got = pread(pagemap, entry, want * sizeof entry[0], off);
        if (got <= 0)
            break;
        for (size_t i = 0; i < (size_t)got / sizeof entry[0]; i++, at += (uintptr_t)page) {
            int clean = (entry[i] & PRESENT) && (entry[i] & FILE_PAGE);
            if (clean && !run)
                run = at;
            else if (!clean && run) {
                released += drop(run, at);
                run = 0;
            }
        }
    }
    if (run)
        released += drop(run, end);
    return released;
}

/* The number of threads of this process, or -1. */
static int threads(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    int n = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

long pge_memtrim_release(void)
{
    long page = sysconf(_SC_PAGESIZE);
    FILE *maps = fopen("/proc/self/maps", "re");
    int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    char line[512];
    long released = -1;
    sigset_t all, old;

    /* A page of writable data read by pagemap as the file's could be written between that
     * read and madvise(), and the write would be lost: writable mappings are trimmed only
     * when no other thread, and no signal handler, can run meanwhile. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int writable = threads() == 1;
    if (!maps || pagemap < 0 || page <= 0)
        goto done;
    malloc_trim(0);
    released = 0;
    while (fgets(line, sizeof line, maps)) {
        unsigned long s, e;
        char perms[8];
        int n = 0;
        /* "start-end perms offset dev inode [path]": private mappings of a file only. */
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &s, &e, perms, &n) != 3 || n == 0)
            continue;
        if (line[n] != '/' || perms[3] != 'p' || perms[0] != 'r' || (perms[1] == 'w' && !writable))
            continue;
        released += release_mapping(pagemap, s, e, page);
    }
done:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pagemap >= 0)
        close(pagemap);
    if (maps)
        fclose(maps);
    return released;
}
