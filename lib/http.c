#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"
#include "store.h"
#include "view.h"

/* The endpoint's own Redis round trips: /readyz must answer within a
 * probe's usual timeout (1 s) even when Redis hangs. */
#define HTTP_REDIS_TIMEOUT_MS 900

struct tl_http {
    tl_http_opts o;
    struct MHD_Daemon *d;
    tl_store *store; /* used by the server's thread only */
    pthread_mutex_t lock; /* held while a request uses o.cfg */
};

int tl_http_token_ok(const char *token, const char *given, size_t glen)
{
    size_t tlen = strlen(token);
    unsigned diff = glen != tlen;
    for (size_t i = 0; i < tlen; i++) {
        unsigned char g = i < glen ? (unsigned char)given[i] : 0;
        diff |= g ^ (unsigned char)token[i];
    }
    /* Read through a volatile so the loop cannot be cut short. */
    volatile unsigned r = diff;
    return r == 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             const char *type, const char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"tailord\"");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status,
                            const char *fmt, ...) TL_PRINTF(3, 4);
static enum MHD_Result text(struct MHD_Connection *c, unsigned status,
                            const char *fmt, ...)
{
    char buf[TL_ERRSZ + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    return reply(c, status, "text/plain; charset=utf-8", buf, (size_t)n);
}

static int authorized(tl_http *h, struct MHD_Connection *c)
{
    const char *tok = h->o.cfg->http_token;
    if (!tok) return 1;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (!a || strncasecmp(a, "Bearer ", 7) != 0) return 0;
    a += 7;
    while (*a == ' ') a++;
    return tl_http_token_ok(tok, a, strlen(a));
}

static enum MHD_Result readyz(tl_http *h, struct MHD_Connection *c)
{
    char why[TL_ERRSZ];
    if (tl_store_ping(h->store, why, sizeof why) != TL_OK)
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "not ready: redis unreachable (%s)\n", why);
    if (!h->o.ready(h->o.ud, why, sizeof why))
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: %s\n", why);
    return text(c, MHD_HTTP_OK, "ready\n");
}

static enum MHD_Result metrics(tl_http *h, struct MHD_Connection *c)
{
    tl_buf b = {0};
    h->o.metrics(h->o.ud, &b);
    enum MHD_Result rc = reply(c, MHD_HTTP_OK,
                               "text/plain; version=0.0.4; charset=utf-8",
                               b.s ? b.s : "", b.len);
    tl_buf_free(&b);
    return rc;
}

static enum MHD_Result customer(tl_http *h, struct MHD_Connection *c,
                                const char *id)
{
    const tl_config *cfg = h->o.cfg;
    size_t idlen = strlen(id);
    if (!idlen) return text(c, MHD_HTTP_NOT_FOUND, "no customer id\n");
    tl_view_fields raw = {NULL, 0}, shown = {NULL, 0};
    char err[TL_ERRSZ];
    enum MHD_Result rc;
    if (tl_view_load(h->store, cfg->redis_prefix, id, idlen, &raw, err,
                     sizeof err) != TL_OK) {
        rc = text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "redis: %s\n", err);
        goto done;
    }
    if (!raw.n) {
        rc = text(c, MHD_HTTP_NOT_FOUND, "no such customer\n");
        goto done;
    }
    int64_t as_of;
    int vrc = tl_view_compute(cfg, id, &raw, TL_VIEW_AT_NEWEST, 0, &shown,
                              &as_of, err, sizeof err);
    if (vrc != TL_OK) {
        /* A vector without _ts (older writer): read it now instead. */
        tl_view_fields_free(&shown);
        vrc = tl_view_compute(cfg, id, &raw, TL_VIEW_AT_NOW, 0, &shown,
                              &as_of, err, sizeof err);
    }
    if (vrc != TL_OK) {
        rc = text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "customer state: %s\n",
                  err);
        goto done;
    }
    char *js = tl_view_json(id, &shown, 1, as_of, 1);
    if (!js) {
        rc = text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot encode JSON\n");
        goto done;
    }
    size_t n = strlen(js);
    js[n] = '\0';
    rc = reply(c, MHD_HTTP_OK, "application/json", js, n);
    free(js);
done:
    tl_view_fields_free(&raw);
    tl_view_fields_free(&shown);
    return rc;
}

static enum MHD_Result route(tl_http *h, struct MHD_Connection *c,
                             const char *url, const char *method);

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    (void)version;
    (void)upload;
    tl_http *h = cls;
    /* Answer once the whole request (any body) has arrived: MHD calls
     * first with no data, then per body chunk, then with size 0. */
    static int seen;
    if (!*state) {
        *state = &seen;
        if (strcmp(method, MHD_HTTP_METHOD_POST) == 0) return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* bodies are not used: discard */
        return MHD_YES;
    }
    pthread_mutex_lock(&h->lock);
    enum MHD_Result rc = route(h, c, url, method);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

static enum MHD_Result route(tl_http *h, struct MHD_Connection *c,
                             const char *url, const char *method)
{
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
              strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    const char *id_prefix = "/v1/customers/";
    if (!strcmp(url, "/healthz"))
        return get ? text(c, MHD_HTTP_OK, "ok\n")
                   : text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
    if (!strcmp(url, "/readyz"))
        return get ? readyz(h, c)
                   : text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
    if (!strcmp(url, "/metrics"))
        return get ? metrics(h, c)
                   : text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
    if (!strncmp(url, "/v1/", 4)) {
        if (!authorized(h, c))
            return text(c, MHD_HTTP_UNAUTHORIZED,
                        "missing or wrong bearer token\n");
        if (!strncmp(url, id_prefix, strlen(id_prefix)))
            return get ? customer(h, c, url + strlen(id_prefix))
                       : text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
        if (!strcmp(url, "/v1/reload")) {
            if (!post)
                return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST\n");
            if (!h->o.reload)
                return text(c, MHD_HTTP_NOT_IMPLEMENTED, "no reload here\n");
            const char *f = MHD_lookup_connection_value(
                c, MHD_GET_ARGUMENT_KIND, "force");
            int force = f && (!strcmp(f, "1") || !strcmp(f, "true"));
            tl_info("http", "configuration reload requested over HTTP%s",
                    force ? " (force)" : "");
            h->o.reload(h->o.ud, force);
            return text(c, MHD_HTTP_ACCEPTED, "reload requested\n");
        }
    }
    return text(c, MHD_HTTP_NOT_FOUND, "not found\n");
}

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[TL_ERRSZ];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n') buf[--n] = '\0';
    tl_warn("http", "%s", buf);
}

tl_http *tl_http_start(const tl_http_opts *opts, char *err, size_t errsz)
{
    const tl_config *cfg = opts->cfg;
    const char *listen = cfg->http_listen;
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (!colon)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "http.listen: expected HOST:PORT"), NULL;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "http.listen %s: not an IPv4 address", listen), NULL;
    tl_http *h = tl_xcalloc(1, sizeof *h);
    h->o = *opts;
    pthread_mutex_init(&h->lock, NULL);
    h->store = tl_store_new_lazy(cfg->redis_url, HTTP_REDIS_TIMEOUT_MS, err,
                                 errsz);
    if (!h->store) {
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    /* MHD reports a failed bind only through its log: probe it here to
     * give the real reason. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        tl_errf(err, errsz, TL_ERR_IO, "http.listen %s: cannot bind: %s",
                listen, strerror(errno));
        if (fd >= 0) close(fd);
        tl_store_free(h->store);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    close(fd);
    h->d = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        handle, h, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!h->d) {
        tl_errf(err, errsz, TL_ERR_IO, "http.listen %s: cannot start the "
                "HTTP server (see the log line before)", listen);
        tl_store_free(h->store);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    tl_info("http", "listening on http://%s (token %s)", listen,
            cfg->http_token ? "required for /v1/" : "not set");
    return h;
}

void tl_http_set_config(tl_http *h, const tl_config *cfg)
{
    pthread_mutex_lock(&h->lock);
    h->o.cfg = cfg;
    pthread_mutex_unlock(&h->lock);
}

void tl_http_stop(tl_http *h)
{
    if (!h) return;
    MHD_stop_daemon(h->d);
    tl_store_free(h->store);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
