/* Unit tests for the error-message buffer helper. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "pgentry/common/errbuf.h"

Test(errbuf, formats_truncates_and_tolerates_no_buffer, .timeout = 5)
{
    char buf[8];
    memset(buf, 'x', sizeof buf);
    pge_errbuf_set(buf, sizeof buf, "%s %d", "ab", 12);
    cr_assert_str_eq(buf, "ab 12");
    pge_errbuf_set(buf, sizeof buf, "%s", "0123456789");
    cr_assert_str_eq(buf, "0123456", "truncated and terminated");
    pge_errbuf_set(NULL, 10, "%s", "nothing");
    memset(buf, 'x', sizeof buf);
    pge_errbuf_set(buf, 0, "%s", "nothing");
    cr_assert_eq(buf[0], 'x', "size 0 writes nothing");
}

Test(errbuf, keeps_errno, .timeout = 5)
{
    char buf[64];
    errno = ENOENT;
    pge_errbuf_set(buf, sizeof buf, "cannot open %s: %s", "f", strerror(errno));
    cr_assert_eq(errno, ENOENT);
    cr_assert_str_eq(buf, "cannot open f: No such file or directory");
}
