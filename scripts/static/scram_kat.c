/* Checks of the static libpq's patched SCRAM pieces, run by build-static.sh. */

/*
 * scripts/build-static.sh builds this against the libpgcommon it has just built (the
 * PostgreSQL source tree's headers, -DFRONTEND) before the library enters the cache, so a
 * wrong SaltedPassword (a bad patch in scripts/static/patches/postgresql-15/) never lands
 * there. The expected values come from an independent PBKDF2-HMAC-SHA-256, Python's
 * hashlib.pbkdf2_hmac('sha256', password, salt, iterations, 32); the same implementation
 * reproduces RFC 7677's ClientProof and ServerSignature from the first case's output.
 * It also draws twice from pg_strong_random (SCRAM's nonce; strong-random-getrandom.patch
 * takes it from getrandom): both draws must succeed and differ. And it checks the hashes and
 * HMAC that common-builtin-hashes.patch takes from PostgreSQL's own code instead of OpenSSL's
 * EVP (SCRAM's other steps, MD5 logins) against published known answers.
 * Exit 0 if every case matches, 1 (one line per mismatch on stderr) if not.
 */
#include "postgres_fe.h"

#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/scram-common.h"

#include <stdio.h>
#include <string.h>

struct kat {
    const char *what;
    const char *password;
    const char *salt;
    int saltlen;
    int iterations;
    const char *want; /* hex */
};

static const struct kat kats[] = {
    /* RFC 7677 section 3: password "pencil", salt "W22ZaJ0SNY7soEsUEjb6gQ==" (base64). */
    {"RFC 7677 example", "pencil",
     "\x5b\x6d\x99\x68\x9d\x12\x35\x8e\xec\xa0\x4b\x14\x12\x36\xfa\x81", 16, 4096,
     "c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d"},
    /* Longer than SHA-256's 64-byte block: HMAC hashes the key first. The salt holds NUL
     * bytes, so its length must be taken from saltlen. */
    {"100-byte password, salt with NUL bytes",
     "pgentry-long-password-pgentry-long-password-pgentry-long-password-pgentry-long-"
     "password-pgentry-long",
     "\x00\x01\xfe\xff\x00\x7f\x80\x10\x20\x30\x40\x50\x60\x70\x80\x90", 16, 4096,
     "25908a37ad81b974b7051f3105fbca363ad9ad583a4bf6b9b8b40a304911c366"},
    /* Exactly one block long: used as the key as it is. */
    {"64-byte password, 3 iterations",
     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
     "\x00\x01\xfe\xff\x00\x7f\x80\x10\x20\x30\x40\x50\x60\x70\x80\x90", 16, 3,
     "370007ba9ffe8b265bb9c46909fc109efdb35dae8183903bdea01199d973d6cc"},
    /* One iteration: only U1, and a 4-byte salt. */
    {"1 iteration, short salt", "x", "salt", 4, 1,
     "99fd8dc22ee5365d3018093c77032d5c909b05f3a89ad3e2609e70e97713daeb"},
};

static void to_hex(const uint8 *in, size_t len, char *out)
{
    for (size_t j = 0; j < len; j++)
        snprintf(out + 2 * j, 3, "%02x", in[j]);
}

struct hash_kat {
    const char *what;
    pg_cryptohash_type type;
    const char *key; /* NULL: a plain hash, else HMAC with this key */
    size_t keylen;
    const char *msg;
    const char *want; /* hex */
};

/* RFC 4231's long key is 131 bytes of 0xaa: 13 times 10, and 1. */
#define AA10 "\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa"

static const struct hash_kat hash_kats[] = {
    {"SHA-256 of \"abc\" (FIPS 180-2)", PG_SHA256, NULL, 0, "abc",
     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"MD5 of \"abc\" (RFC 1321)", PG_MD5, NULL, 0, "abc", "900150983cd24fb0d6963f7d28e17f72"},
    {"HMAC-SHA-256 test case 2 (RFC 4231)", PG_SHA256, "Jefe", 4, "what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    /* A key longer than the block: HMAC hashes it first. */
    {"HMAC-SHA-256 test case 6 (RFC 4231)", PG_SHA256,
     AA10 AA10 AA10 AA10 AA10 AA10 AA10 AA10 AA10 AA10 AA10 AA10 AA10 "\xaa", 131,
     "Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
};

/* Returns 0 and fills out (len bytes), or -1. */
static int run_hash(const struct hash_kat *k, uint8 *out, size_t len)
{
    const uint8 *msg = (const uint8 *)k->msg;
    size_t n = strlen(k->msg);
    int rc = -1;

    if (k->key) {
        pg_hmac_ctx *h = pg_hmac_create(k->type);
        if (h && pg_hmac_init(h, (const uint8 *)k->key, k->keylen) == 0 &&
            pg_hmac_update(h, msg, n) == 0 && pg_hmac_final(h, out, len) == 0)
            rc = 0;
        pg_hmac_free(h);
    } else {
        pg_cryptohash_ctx *c = pg_cryptohash_create(k->type);
        if (c && pg_cryptohash_init(c) == 0 && pg_cryptohash_update(c, msg, n) == 0 &&
            pg_cryptohash_final(c, out, len) == 0)
            rc = 0;
        pg_cryptohash_free(c);
    }
    return rc;
}

static int check_hashes(void)
{
    int failed = 0;

    for (size_t i = 0; i < sizeof(hash_kats) / sizeof(hash_kats[0]); i++) {
        const struct hash_kat *k = &hash_kats[i];
        size_t len = strlen(k->want) / 2;
        uint8 out[64];
        char hex[2 * sizeof out + 1];

        if (run_hash(k, out, len) < 0) {
            fprintf(stderr, "scram_kat: %s: failed\n", k->what);
            failed = 1;
            continue;
        }
        to_hex(out, len, hex);
        if (strcmp(hex, k->want) != 0) {
            fprintf(stderr, "scram_kat: %s: got %s, expected %s\n", k->what, hex, k->want);
            failed = 1;
            continue;
        }
        printf("scram_kat: %s: ok\n", k->what);
    }
    return failed;
}

/* Two 32-byte draws: a source that fails, or fills nothing, or repeats itself is caught. */
static int check_strong_random(void)
{
    uint8 a[32], b[32];

    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    if (!pg_strong_random(a, sizeof a) || !pg_strong_random(b, sizeof b)) {
        fprintf(stderr, "scram_kat: pg_strong_random failed\n");
        return 1;
    }
    if (memcmp(a, b, sizeof a) == 0) {
        fprintf(stderr, "scram_kat: pg_strong_random gave the same 32 bytes twice\n");
        return 1;
    }
    printf("scram_kat: pg_strong_random: ok\n");
    return 0;
}

int main(void)
{
    int failed = check_strong_random() | check_hashes();

    for (size_t i = 0; i < sizeof(kats) / sizeof(kats[0]); i++) {
        const struct kat *k = &kats[i];
        uint8 out[SCRAM_KEY_LEN];
        char hex[2 * SCRAM_KEY_LEN + 1];
        const char *errstr = NULL;

        if (scram_SaltedPassword(k->password, k->salt, k->saltlen, k->iterations, out, &errstr) !=
            0) {
            fprintf(stderr, "scram_kat: %s: scram_SaltedPassword failed: %s\n", k->what,
                    errstr ? errstr : "(no message)");
            failed = 1;
            continue;
        }
        to_hex(out, SCRAM_KEY_LEN, hex);
        if (strcmp(hex, k->want) != 0) {
            fprintf(stderr, "scram_kat: %s: SaltedPassword is %s, expected %s\n", k->what, hex,
                    k->want);
            failed = 1;
            continue;
        }
        printf("scram_kat: %s: ok\n", k->what);
    }
    return failed;
}
