/* pge_cloexec_from: every descriptor from a bound up is marked, none below, all stay open. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <unistd.h>

#include "pgentry/common/cloexec.h"

static int cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    cr_assert_geq(flags, 0, "descriptor %d was closed", fd);
    return flags & FD_CLOEXEC;
}

Test(cloexec, marks_every_descriptor_from_the_bound_and_none_below, .timeout = 10)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    int high = dup2(p[0], 900);
    cr_assert_eq(high, 900);
    cr_assert_eq(cloexec(p[0]) | cloexec(p[1]) | cloexec(high), 0);

    cr_assert_eq(pge_cloexec_from(p[1]), 0);
    cr_assert_eq(cloexec(p[0]), 0, "below the bound: untouched");
    cr_assert(cloexec(p[1]));
    cr_assert(cloexec(high));

    cr_assert_eq(pge_cloexec_from(0 + 3), 0);
    cr_assert(cloexec(p[0]));
    cr_assert_eq(cloexec(0), 0, "stdin is COMMAND's too");
    /* Still open and usable until an exec. */
    cr_assert_eq(write(p[1], "x", 1), 1);
    char c;
    cr_assert_eq(read(high, &c, 1), 1);
    close(p[0]);
    close(p[1]);
    close(high);
}
