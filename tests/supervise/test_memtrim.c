/* Tests of memtrim: library pages are given back, and the code that used them still works. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgentry/supervise/memtrim.h"
#include "pgentry/migrate/migfile.h"

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Initialised, writable data of this program (its .data segment, a private file mapping):
 * 256 KiB that the test reads but never writes, and one page it writes. */
#define DATA_BYTES (256 * 1024)
static volatile unsigned char read_only_data[DATA_BYTES] = {1, 2, 3, [DATA_BYTES - 1] = 42};
static volatile unsigned char written_data[8192] = {7};

/* Resident kilobytes of the mapping that holds addr, from /proc/self/smaps. */
static long mapping_rss_kb(const volatile void *addr)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    long kb = -1;
    int in = 0;
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx ", &s, &e) == 2 &&
            strchr(line, ' ') == line + strcspn(line, " ")) {
            in = (uintptr_t)addr >= s && (uintptr_t)addr < e;
            continue;
        }
        if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb;
}

static void sha256_hex(const char *text, char out[65])
{
    pge_migfile_checksum(text, strlen(text), out);
}

Test(memtrim, releases_library_pages_and_code_keeps_working, .timeout = 10)
{
    char before[65], after[65];
    /* Touch libcrypto's code and tables. */
    sha256_hex("abc", before);
    cr_assert_str_eq(before, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    long rss0 = rss_kb();
    long released = pge_memtrim_release();
    long rss1 = rss_kb();
    cr_assert_gt(released, 100, "released only %ld kB", released);
    cr_assert_lt(rss1, rss0, "RSS did not drop: %ld → %ld kB", rss0, rss1);
    /* Pages come back from the page cache, unchanged. */
    sha256_hex("abc", after);
    cr_assert_str_eq(after, before);
    /* Relocated data (RELRO) was not touched: a call through libcrypto's tables works. */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    cr_assert_not_null(ctx);
    cr_assert_eq(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
    EVP_MD_CTX_free(ctx);
    /* A second call finds (almost) nothing left to give. */
    cr_assert_lt(pge_memtrim_release(), released);
}

/* In a child with one thread (Criterion's worker runs a second one, and memtrim leaves
 * writable mappings alone while other threads run). Returns 0, or the number of the check that
 * failed. */
static int trim_data_in_single_thread(void)
{
    unsigned sum = 0;
    for (size_t i = 0; i < DATA_BYTES; i += 64)
        sum += read_only_data[i];
    written_data[4096] = 99;
    long before = mapping_rss_kb(read_only_data);
    if (before < DATA_BYTES / 1024)
        return 1;
    if (pge_memtrim_release() <= 0)
        return 2;
    long after = mapping_rss_kb(read_only_data);
    if (after > before - DATA_BYTES / 1024 / 2)
        return 3;
    /* What was never written comes back from the file; what was written was kept. */
    if (read_only_data[0] + read_only_data[1] + read_only_data[2] != 6 ||
        read_only_data[DATA_BYTES - 1] != 42 || sum != 1u)
        return 4;
    if (written_data[0] != 7 || written_data[4096] != 99)
        return 5;
    return 0;
}

Test(memtrim, drops_clean_data_pages_and_keeps_written_ones, .timeout = 10)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(trim_data_in_single_thread());
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    cr_assert_eq(WEXITSTATUS(status), 0,
                 "check %d failed (1 data not resident, 2 nothing released, 3 data pages kept, "
                 "4 data changed, 5 a write was lost)",
                 WEXITSTATUS(status));
}

Test(memtrim, leaves_writable_data_alone_while_other_threads_run, .timeout = 10)
{
    unsigned sum = 0;
    for (size_t i = 0; i < DATA_BYTES; i += 64)
        sum += read_only_data[i];
    cr_assert_eq(sum, 1u);
    /* Criterion's worker runs a second thread: a write from it could be lost. */
    long before = mapping_rss_kb(read_only_data);
    pge_memtrim_release();
    cr_assert_geq(mapping_rss_kb(read_only_data), before);
}
