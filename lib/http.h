/*
 * http — tailord's HTTP endpoint (libmicrohttpd, a pool of polling
 * worker threads); the client side for tailorctl is lib/httpc.
 *
 * Routes (README.md "HTTP endpoint"):
 *   GET  /healthz            200 while the process serves requests
 *   GET  /readyz             200 "ready" (and opts.ready's note, if any,
 *                            on a second line), or 503 "not ready: REASON" (Redis PING on
 *                            the endpoint's own connection, then opts.ready;
 *                            REASON is a cause such as "redis unreachable",
 *                            never an address or the server's text)
 *   GET  /metrics            Prometheus text 0.0.4 (opts.metrics)
 *   GET  /v1/customers/{id}  the vector as JSON (lib/view), expired
 *                            features omitted; 404 for an unknown customer
 *                            (400 for an id with NUL or invalid UTF-8)
 *   POST /v1/reload[?force=1] opts.reload, then 202
 * /v1/ is refused with 401 unless the request carries "Authorization:
 * Bearer TOKEN" when a token is configured (compared in constant time),
 * as soon as the headers are in.  A request body over 1 KiB (or chunked)
 * gets 413 before it is read; a request not whole within 10 s is cut.
 * /healthz takes no lock and never waits on Redis: the workers that may
 * wait on Redis are bounded (/v1/ beyond that gets 503 at once).  The
 * endpoint has its own two Redis connections (never the pipeline's): one
 * for customer lookups, one for the readiness PING.  opts' callbacks may
 * be called from several workers at once.
 *
 * Ownership: tl_http_start copies opts but borrows cfg (until
 * tl_http_set_config replaces it) and the callbacks' ud, which must outlive
 * tl_http_stop.
 */
#ifndef TL_HTTP_H
#define TL_HTTP_H

#include <stddef.h>

#include "config.h"
#include "metrics.h"

typedef struct tl_http_opts {
    const tl_config *cfg;  /* http_listen, http_token, redis_*, features */
    void (*metrics)(void *ud, tl_buf *b);
    /* 1: ready (why: a note, or left ""); 0: why says why not */
    int (*ready)(void *ud, char *why, size_t whysz);
    /* force: ?force=1 was given.  NULL: /v1/reload answers 501. */
    void (*reload)(void *ud, int force);
    void *ud;
} tl_http_opts;

typedef struct tl_http tl_http;

/* Binds cfg->http_listen and starts serving.  NULL with a message (e.g.
 * "http.listen 127.0.0.1:9464: cannot bind: Address already in use"). */
tl_http *tl_http_start(const tl_http_opts *opts, char *err, size_t errsz);
/* For a configuration reload: the routes use cfg (features, prefix, token)
 * from the next request on; returns once no request uses the old one, which
 * the caller may then free.  The listen address and Redis URL stay as
 * started. */
void tl_http_set_config(tl_http *h, const tl_config *cfg);

/* Stops serving (in-flight requests finish) and frees.  NULL: no-op. */
void tl_http_stop(tl_http *h);

/* 1 when `given` (len glen) equals the token; time depends only on the
 * token's length. */
int tl_http_token_ok(const char *token, const char *given, size_t glen);

#endif
