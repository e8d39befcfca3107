/* `pgentry healthcheck`: probe the health endpoint once with libcurl, for Docker HEALTHCHECK. */
#include "pgentry/health/healthcheck.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "pgentry/common/errbuf.h"
#include "pgentry/common/parse.h"
#include "pgentry/common/redact.h"
#include "pgentry/net/httpprobe.h"

#define URL_MAX 2048

int pge_healthcheck_default_url(const char *health_addr, char *url, size_t size)
{
    char host[64];
    int port, n;
    struct in_addr a4;
    struct in6_addr a6;

    if (!health_addr || pge_parse_hostport(health_addr, host, sizeof host, &port) < 0)
        return -1;
    /* A server bound to every address is reached on loopback, in its own family. */
    if (host[0] == '\0' || (inet_pton(AF_INET, host, &a4) == 1 && a4.s_addr == INADDR_ANY))
        n = snprintf(url, size, "http://127.0.0.1:%d/healthz", port);
    else if (inet_pton(AF_INET6, host, &a6) == 1)
        n = snprintf(url, size, "http://[%s]:%d/healthz",
                     IN6_IS_ADDR_UNSPECIFIED(&a6) ? "::1" : host, port);
    else
        n = snprintf(url, size, "http://%s:%d/healthz", host, port);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int pge_healthcheck_run(const char *url_or_null, const char *health_addr, char *line,
                        size_t linesize)
{
    char url[URL_MAX], shown[URL_MAX], errbuf[CURL_ERROR_SIZE] = "";
    CURL *curl = NULL;
    CURLcode rc;
    long status = 0;
    int healthy = 0;

    if (url_or_null) {
        if (snprintf(url, sizeof url, "%s", url_or_null) >= (int)sizeof url) {
            pge_errbuf_set(line, linesize, "unhealthy: URL longer than %d bytes", URL_MAX - 1);
            goto out;
        }
    } else if (pge_healthcheck_default_url(health_addr, url, sizeof url) < 0) {
        pge_errbuf_set(
            line, linesize,
            "unhealthy: no URL to probe (health address %s); give one: pgentry healthcheck URL",
            health_addr ? health_addr : "off");
        goto out;
    }
    pge_redact(url, shown, sizeof shown);
    curl = curl_easy_init();
    if (!curl) {
        pge_errbuf_set(line, linesize, "unhealthy: cannot initialise libcurl (%s)", shown);
        goto out;
    }
    if (pge_httpprobe_setup_easy(curl, url, PGE_HEALTHCHECK_CONNECT_TIMEOUT_MS,
                                 PGE_HEALTHCHECK_TIMEOUT_MS, "pgentry-healthcheck/" PGENTRY_VERSION,
                                 errbuf) < 0) {
        pge_errbuf_set(line, linesize, "unhealthy: cannot set up libcurl (%s)", shown);
        goto out;
    }
    rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        pge_errbuf_set(line, linesize, "unhealthy: %s (%s)",
                       errbuf[0] ? errbuf : curl_easy_strerror(rc), shown);
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    healthy = status >= 200 && status <= 299;
    pge_errbuf_set(line, linesize, "%s: %ld %s", healthy ? "healthy" : "unhealthy", status, shown);
out:
    curl_easy_cleanup(curl);
    return healthy ? 0 : 1;
}
