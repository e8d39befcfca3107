/* One HTTP GET that counts as ready on a 2xx answer (dependency waits, app health). */
#include "pgentry/net/httpprobe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/redact.h"

struct pge_httpprobe {
    struct pge_curlloop *c;
    CURL *easy;
    char url[1024]; /* redacted, for messages */
    pge_httpprobe_cb cb;
    void *arg;
    char errbuf[CURL_ERROR_SIZE];
};

/* The body is not needed, only the status: take it and drop it. */
static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

int pge_httpprobe_setup_easy(CURL *easy, const char *url, int64_t connect_timeout_ms,
                             int64_t timeout_ms, const char *user_agent, char *errbuf)
{
    CURLcode rc = CURLE_OK;
    /* Each step runs only while the ones before it succeeded. */
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(easy, opt, val);                                                 \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    /* A container's HTTP_PROXY must not turn a local probe into a remote one. */
    SET(CURLOPT_NOPROXY, "*");
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    /* A fresh connection per probe: a reused one could hide that the server went away. */
    SET(CURLOPT_FORBID_REUSE, 1L);
    SET(CURLOPT_USERAGENT, user_agent);
    SET(CURLOPT_WRITEFUNCTION, discard);
    SET(CURLOPT_ERRORBUFFER, errbuf);
#undef SET
    return rc == CURLE_OK ? 0 : -1;
}

static void on_done(void *arg, CURL *easy, CURLcode rc, long status)
{
    struct pge_httpprobe *p = arg;
    char msg[1400];
    enum pge_attempt_outcome o;
    int ok = 0;

    (void)easy;
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        ok = 1;
        o = PGE_ATTEMPT_OK;
        snprintf(msg, sizeof msg, "%s answered %ld", p->url, status);
    } else if (rc == CURLE_OK) {
        o = PGE_ATTEMPT_HTTP_STATUS;
        snprintf(msg, sizeof msg, "%s answered %ld", p->url, status);
    } else {
        switch (rc) {
        case CURLE_COULDNT_RESOLVE_HOST:
            o = PGE_ATTEMPT_DNS;
            break;
        case CURLE_OPERATION_TIMEDOUT:
            o = PGE_ATTEMPT_TIMEOUT;
            break;
        case CURLE_COULDNT_CONNECT:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
            o = PGE_ATTEMPT_REFUSED;
            break;
        default:
            o = PGE_ATTEMPT_OTHER;
        }
        snprintf(msg, sizeof msg, "%s: %s", p->url,
                 p->errbuf[0] ? p->errbuf : curl_easy_strerror(rc));
    }
    curl_easy_cleanup(p->easy);
    p->easy = NULL;
    p->cb(p->arg, ok, status, o, msg);
}

struct pge_httpprobe *pge_httpprobe_start(struct pge_curlloop *c, const char *url,
                                          int64_t timeout_ms, pge_httpprobe_cb cb, void *arg)
{
    struct pge_httpprobe *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->c = c;
    p->cb = cb;
    p->arg = arg;
    pge_redact(url, p->url, sizeof p->url);
    p->easy = curl_easy_init();
    if (!p->easy)
        goto fail;
    if (pge_httpprobe_setup_easy(p->easy, url, timeout_ms, timeout_ms, "pgentry/" PGENTRY_VERSION,
                                 p->errbuf) < 0)
        goto fail;
    if (pge_curlloop_add(c, p->easy, on_done, p) < 0)
        goto fail;
    return p;
fail:
    if (p->easy)
        curl_easy_cleanup(p->easy);
    free(p);
    return NULL;
}

void pge_httpprobe_free(struct pge_httpprobe *p)
{
    if (!p)
        return;
    if (p->easy) {
        pge_curlloop_remove(p->c, p->easy);
        curl_easy_cleanup(p->easy);
    }
    free(p);
}
