/* Close-on-exec for every descriptor: what a child of pgentry must not inherit. */
#include "pgentry/common/cloexec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* The last resort without /proc: bounded, since a container may allow a million descriptors. */
#define SCAN_LIMIT 65536

/* The layout of struct linux_dirent64, which glibc does not declare. */
struct dirent64_raw {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

static void mark(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC))
        (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

/* Each entry of /proc/self/fd, read with getdents64 into a stack buffer (opendir allocates). */
static int mark_listed(int minfd)
{
    char buf[4096];
    int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    for (;;) {
        long n = syscall(SYS_getdents64, dfd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(dfd);
            errno = e;
            return n < 0 ? -1 : 0;
        }
        for (long off = 0; off < n;) {
            const struct dirent64_raw *d = (const struct dirent64_raw *)(buf + off);
            int fd = 0;
            const char *p = d->name;
            for (; *p >= '0' && *p <= '9' && fd < 1 << 24; p++)
                fd = fd * 10 + (*p - '0');
            if (p != d->name && *p == '\0' && fd >= minfd && fd != dfd)
                mark(fd);
            off += d->reclen;
        }
    }
}

int pge_cloexec_from(int minfd)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)minfd, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return 0;
#endif
    /* Before Linux 5.11, or a seccomp filter that refuses it. */
    if (mark_listed(minfd) == 0)
        return 0;
    struct rlimit rl;
    rlim_t max = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : SCAN_LIMIT;
    if (max > SCAN_LIMIT)
        max = SCAN_LIMIT;
    for (int fd = minfd; (rlim_t)fd < max; fd++)
        mark(fd);
    return 0;
}
