/* libFuzzer target for the option-value parsers: signal names, HOST:PORT, booleans. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    int signo = -1;
    if (pge_parse_signal(s, 1, &signo) == 0) {
        if (signo < 0 || signo > SIGRTMAX)
            abort();
        /* A named signal parses back to itself. */
        const char *name = pge_parse_signal_name(signo);
        int again = -1;
        if (name && (pge_parse_signal(name, 1, &again) != 0 || again != signo))
            abort();
    }

    char host[64];
    int port = -1;
    memset(host, 'x', sizeof host);
    if (pge_parse_hostport(s, host, sizeof host, &port) == 0) {
        if (port < 1 || port > 65535 || memchr(host, '\0', sizeof host) == NULL)
            abort();
        if (strlen(host) >= size)
            abort();
    }

    int b = -1;
    if (pge_parse_bool(s, &b) == 0 && b != 0 && b != 1)
        abort();
    free(s);
    return 0;
}
