#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
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
/*
 * What keeps /healthz answering whatever clients and Redis do (these would
 * be http.* settings; fixed for now):
 * - workers poll their connections (epoll), so a slow client costs a slot,
 *   not a thread; at most HTTP_SLOW_MAX of the HTTP_THREADS workers may
 *   wait on Redis (the /v1/ routes) and one more on the readiness PING, so
 *   one always accepts and answers the probes;
 * - slots: HTTP_MAX_CONNS in all, HTTP_MAX_PER_IP from one address (the
 *   probes may come from the same address as a misbehaving client, so the
 *   per-address bound is well above what a test or a scraper opens);
 * - time: a connection idle HTTP_IDLE_TIMEOUT_S is closed by libmicrohttpd,
 *   and one whose request is not whole HTTP_REQUEST_DEADLINE_MS after it
 *   connected (or after its previous response) is cut by the sweeper, so
 *   a client trickling a header line every few seconds frees its slot;
 * - when the headers are in, before any body is read: /v1/ checks the
 *   token, and every route refuses a body over HTTP_MAX_BODY (none needs
 *   one).
 */
#define HTTP_THREADS 8
#define HTTP_SLOW_MAX (HTTP_THREADS - 2)
#define HTTP_MAX_CONNS 512
#define HTTP_MAX_PER_IP 128
#define HTTP_IDLE_TIMEOUT_S 5
#define HTTP_REQUEST_DEADLINE_MS 10000
#define HTTP_SWEEP_MS 250
#define HTTP_MAX_BODY 1024
/* At most one warning line per this period; the rest are counted. */
#define HTTP_WARN_EVERY_MS 10000

/* A connection the sweeper watches (its MHD socket context). */
typedef struct http_conn {
    int fd;
    _Atomic int64_t since; /* accepted, or its last response queued */
    int cut;               /* shut down by the sweeper */
    struct http_conn *prev, *next;
} http_conn;

struct tl_http {
    tl_http_opts o;
    struct MHD_Daemon *d;
    /* The config: read-locked while a request uses it, write-locked by
     * tl_http_set_config (writers first, so a reload is not starved). */
    pthread_rwlock_t cfg_lock;
    /* Customer lookups: one at a time on this connection. */
    tl_store *store;
    pthread_mutex_t store_lock;
    atomic_int slow; /* requests in the /v1/ routes */
    /* Readiness PING: its own connection, one PING at a time (pinging);
     * callers meanwhile get the last completed result. */
    tl_store *ping_store;
    pthread_mutex_t ping_lock;
    int pinging, ping_ok;
    char ping_why[96];
    /* Connections and their sweeper. */
    pthread_mutex_t conn_lock;
    pthread_cond_t conn_cond;
    http_conn *conns;
    int sweeping, stopping;
    pthread_t sweeper;
    /* Warnings, rate-limited. */
    pthread_mutex_t warn_lock;
    int64_t warn_at;
    unsigned long warn_dropped;
};

/* Per-request flags, kept in MHD's request context pointer (no
 * allocation): the address of flag_marks[flags]. */
enum { REQ_SEEN = 1, REQ_NUL = 2 };
static const char flag_marks[4];
static void *req_mark(int flags) { return (void *)(flag_marks + flags); }
static int req_flags(void *state)
{
    return state ? (int)((const char *)state - flag_marks) : 0;
}

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

/* Logs a warning at most once per HTTP_WARN_EVERY_MS, counting the lines
 * it drops: a flood of bad requests must not flood the log. */
static void warn(tl_http *h, const char *msg)
{
    int64_t now = tl_now_mono_ms();
    unsigned long dropped = 0;
    int say = 0;
    pthread_mutex_lock(&h->warn_lock);
    if (!h->warn_at || now - h->warn_at >= HTTP_WARN_EVERY_MS) {
        say = 1;
        dropped = h->warn_dropped;
        h->warn_dropped = 0;
        h->warn_at = now;
    } else {
        h->warn_dropped++;
    }
    pthread_mutex_unlock(&h->warn_lock);
    if (say && dropped)
        tl_warn("http", "%s (%lu more HTTP warning(s) not logged in the "
                "last %d s)", msg, dropped, HTTP_WARN_EVERY_MS / 1000);
    else if (say)
        tl_warn("http", "%s", msg);
}

/* ---- connections and their deadline ------------------------------------ */

static http_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* MHD calls this when it accepts a connection and before it closes the
 * socket: the sweeper only ever shuts down a socket still listed here. */
static void on_connection(void *cls, struct MHD_Connection *c,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    tl_http *h = cls;
    http_conn *k = *socket_context;
    pthread_mutex_lock(&h->conn_lock);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        k = tl_xcalloc(1, sizeof *k);
        k->fd = ci ? ci->connect_fd : -1;
        atomic_init(&k->since, tl_now_mono_ms());
        k->next = h->conns;
        if (h->conns) h->conns->prev = k;
        h->conns = k;
        *socket_context = k;
    } else if (k) {
        if (k->prev) k->prev->next = k->next;
        else h->conns = k->next;
        if (k->next) k->next->prev = k->prev;
        free(k);
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&h->conn_lock);
}

/* Cuts connections whose request did not arrive whole in time: the idle
 * timeout alone never fires for a client that sends a byte now and then. */
static void *sweep(void *ud)
{
    tl_http *h = ud;
    unsigned long cut = 0;
    pthread_mutex_lock(&h->conn_lock);
    while (!h->stopping) {
        int64_t now = tl_now_mono_ms();
        for (http_conn *k = h->conns; k; k = k->next)
            if (!k->cut && k->fd >= 0 &&
                now - atomic_load(&k->since) > HTTP_REQUEST_DEADLINE_MS) {
                shutdown(k->fd, SHUT_RDWR); /* MHD then closes it */
                k->cut = 1;
                cut++;
            }
        if (cut) {
            char msg[128];
            snprintf(msg, sizeof msg, "closed %lu connection(s) whose request "
                     "took over %d s", cut, HTTP_REQUEST_DEADLINE_MS / 1000);
            cut = 0;
            pthread_mutex_unlock(&h->conn_lock);
            warn(h, msg);
            pthread_mutex_lock(&h->conn_lock);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += HTTP_SWEEP_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->conn_cond, &h->conn_lock, &ts);
    }
    pthread_mutex_unlock(&h->conn_lock);
    return NULL;
}

/* ---- responses ------------------------------------------------------------ */

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
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    /* A keep-alive connection's next request gets the full deadline. */
    http_conn *k = conn_of(c);
    if (k) atomic_store(&k->since, tl_now_mono_ms());
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

/* ---- /readyz ---------------------------------------------------------------- */

/* One PING at a time on the endpoint's own connection, bounded by
 * HTTP_REDIS_TIMEOUT_MS; a caller arriving meanwhile gets the last result
 * at once instead of holding a second worker on a hung Redis. */
static int ping_redis(tl_http *h, char *why, size_t whysz)
{
    pthread_mutex_lock(&h->ping_lock);
    if (h->pinging) {
        int ok = h->ping_ok;
        snprintf(why, whysz, "%s", h->ping_why);
        pthread_mutex_unlock(&h->ping_lock);
        return ok;
    }
    h->pinging = 1;
    pthread_mutex_unlock(&h->ping_lock);
    char detail[TL_ERRSZ], cause[sizeof h->ping_why] = "";
    int ok = tl_store_ping(h->ping_store, detail, sizeof detail) == TL_OK;
    if (!ok) tl_store_reply_cause(detail, cause, sizeof cause);
    pthread_mutex_lock(&h->ping_lock);
    int changed = ok != h->ping_ok || strcmp(cause, h->ping_why) != 0;
    h->ping_ok = ok;
    snprintf(h->ping_why, sizeof h->ping_why, "%s", cause);
    h->pinging = 0;
    pthread_mutex_unlock(&h->ping_lock);
    /* The detail (with the address) goes to the log only, once per
     * change: not rate-limited with the clients' noise. */
    if (changed && !ok) tl_warn("http", "/readyz: %s", detail);
    snprintf(why, whysz, "%s", cause);
    return ok;
}

static enum MHD_Result readyz(tl_http *h, struct MHD_Connection *c)
{
    char why[TL_ERRSZ];
    if (!ping_redis(h, why, sizeof why))
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: %s\n", why);
    why[0] = '\0';
    if (!h->o.ready(h->o.ud, why, sizeof why))
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: %s\n", why);
    /* A note (Redis lost data) goes on a line of its own: the first line
     * stays "ready" for whatever reads it. */
    return text(c, MHD_HTTP_OK, "ready\n%s%s", why, why[0] ? "\n" : "");
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

/* ---- /v1/ ------------------------------------------------------------------- */

/* Under cfg_lock (read). */
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

/* Under cfg_lock (read).  `nul`: the raw path had %00, which MHD decoded
 * into a NUL that would cut the id short. */
static enum MHD_Result customer(tl_http *h, struct MHD_Connection *c,
                                const char *id, int nul)
{
    const tl_config *cfg = h->o.cfg;
    size_t idlen = strlen(id);
    if (nul || !tl_utf8_valid((const unsigned char *)id, idlen))
        return text(c, MHD_HTTP_BAD_REQUEST,
                    "customer id: not UTF-8 or contains NUL\n");
    if (!idlen) return text(c, MHD_HTTP_NOT_FOUND, "no customer id\n");
    tl_view_fields raw = {NULL, 0}, shown = {NULL, 0};
    char err[TL_ERRSZ];
    enum MHD_Result rc;
    pthread_mutex_lock(&h->store_lock);
    int lrc = tl_view_load(h->store, cfg->redis_prefix, id, idlen, &raw, err,
                           sizeof err);
    pthread_mutex_unlock(&h->store_lock);
    if (lrc != TL_OK) {
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
    char *js = tl_view_json(id, &shown, 1, as_of);
    if (!js) {
        rc = text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot encode JSON\n");
        goto done;
    }
    size_t n = strlen(js);
    rc = reply(c, MHD_HTTP_OK, "application/json", js, n);
    free(js);
done:
    tl_view_fields_free(&raw);
    tl_view_fields_free(&shown);
    return rc;
}

/* Under cfg_lock (read). */
static enum MHD_Result reload(tl_http *h, struct MHD_Connection *c, int post)
{
    if (!post) return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST\n");
    if (!h->o.reload)
        return text(c, MHD_HTTP_NOT_IMPLEMENTED, "no reload here\n");
    const char *f = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                                "force");
    int force = f && (!strcmp(f, "1") || !strcmp(f, "true"));
    tl_info("http", "configuration reload requested over HTTP%s",
            force ? " (force)" : "");
    h->o.reload(h->o.ud, force);
    return text(c, MHD_HTTP_ACCEPTED, "reload requested\n");
}

/* The /v1/ routes may wait on Redis: at most HTTP_SLOW_MAX workers do, the
 * others answer the probes (and further /v1/ callers get 503 at once). */
static enum MHD_Result v1(tl_http *h, struct MHD_Connection *c,
                          const char *url, int get, int post, int flags)
{
    const char *id_prefix = "/v1/customers/";
    if (atomic_fetch_add(&h->slow, 1) >= HTTP_SLOW_MAX) {
        atomic_fetch_sub(&h->slow, 1);
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy, try again\n");
    }
    enum MHD_Result rc;
    pthread_rwlock_rdlock(&h->cfg_lock);
    /* Checked again: the config may have changed since the headers. */
    if (!authorized(h, c))
        rc = text(c, MHD_HTTP_UNAUTHORIZED, "missing or wrong bearer token\n");
    else if (!strncmp(url, id_prefix, strlen(id_prefix)))
        rc = get ? customer(h, c, url + strlen(id_prefix), flags & REQ_NUL)
                 : text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
    else if (!strcmp(url, "/v1/reload"))
        rc = reload(h, c, post);
    else
        rc = text(c, MHD_HTTP_NOT_FOUND, "not found\n");
    pthread_rwlock_unlock(&h->cfg_lock);
    atomic_fetch_sub(&h->slow, 1);
    return rc;
}

static enum MHD_Result route(tl_http *h, struct MHD_Connection *c,
                             const char *url, const char *method, int flags)
{
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
              strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    /* The probes take no lock and touch neither the config nor Redis. */
    if (!strcmp(url, "/healthz"))
        return get ? text(c, MHD_HTTP_OK, "ok\n")
                   : text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
    if (!strcmp(url, "/readyz"))
        return get ? readyz(h, c)
                   : text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
    if (!strcmp(url, "/metrics"))
        return get ? metrics(h, c)
                   : text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
    if (!strncmp(url, "/v1/", 4)) return v1(h, c, url, get, post, flags);
    return text(c, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* ---- requests ----------------------------------------------------------------- */

/* MHD's raw request target, before it decodes it: a %00 in the path would
 * become a NUL that silently shortens the URL the handler sees. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    (void)c;
    size_t n = strcspn(uri, "?");
    for (size_t i = 0; i + 2 < n; i++)
        if (uri[i] == '%' && uri[i + 1] == '0' && uri[i + 2] == '0')
            return req_mark(REQ_NUL);
    return req_mark(0);
}

/* When the headers are in, before any body is read: a /v1/ request
 * without the token gets 401 and a body over HTTP_MAX_BODY (or of unknown
 * length) 413, at once, so that nobody holds a connection by trickling a
 * large body.  1 with *rc set when it answered. */
static int refuse_early(tl_http *h, struct MHD_Connection *c,
                        const char *url, enum MHD_Result *rc)
{
    if (!strncmp(url, "/v1/", 4)) {
        pthread_rwlock_rdlock(&h->cfg_lock);
        int ok = authorized(h, c);
        pthread_rwlock_unlock(&h->cfg_lock);
        if (!ok) {
            *rc = text(c, MHD_HTTP_UNAUTHORIZED,
                       "missing or wrong bearer token\n");
            return 1;
        }
    }
    const char *len = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if ((len && strtoull(len, NULL, 10) > HTTP_MAX_BODY) ||
        (te && strcasecmp(te, "identity") != 0)) {
        char msg[96];
        snprintf(msg, sizeof msg, "refused a request body over %d bytes "
                 "(413)", HTTP_MAX_BODY);
        warn(h, msg);
        *rc = text(c, MHD_HTTP_CONTENT_TOO_LARGE,
                   "request body too large (at most %d bytes)\n",
                   HTTP_MAX_BODY);
        return 1;
    }
    return 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    (void)version;
    (void)upload;
    tl_http *h = cls;
    int flags = req_flags(*state);
    /* MHD calls first when the headers are in, then per body chunk, then
     * with size 0; a POST is answered once its (small) body is in. */
    if (!(flags & REQ_SEEN)) {
        *state = req_mark(flags | REQ_SEEN);
        enum MHD_Result rc;
        if (refuse_early(h, c, url, &rc)) return rc;
        if (strcmp(method, MHD_HTTP_METHOD_POST) == 0) return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* bodies are not used: discard */
        return MHD_YES;
    }
    return route(h, c, url, method, flags);
}

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    char buf[TL_ERRSZ];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n') buf[--n] = '\0';
    warn(cls, buf);
}

/* ---- start and stop ------------------------------------------------------------- */

static void http_free(tl_http *h)
{
    tl_store_free(h->store);
    tl_store_free(h->ping_store);
    pthread_rwlock_destroy(&h->cfg_lock);
    pthread_mutex_destroy(&h->store_lock);
    pthread_mutex_destroy(&h->ping_lock);
    pthread_mutex_destroy(&h->conn_lock);
    pthread_cond_destroy(&h->conn_cond);
    pthread_mutex_destroy(&h->warn_lock);
    free(h);
}

static tl_http *http_new(const tl_http_opts *opts, char *err, size_t errsz)
{
    tl_http *h = tl_xcalloc(1, sizeof *h);
    h->o = *opts;
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&h->cfg_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&h->store_lock, NULL);
    pthread_mutex_init(&h->ping_lock, NULL);
    pthread_mutex_init(&h->conn_lock, NULL);
    pthread_cond_init(&h->conn_cond, NULL);
    pthread_mutex_init(&h->warn_lock, NULL);
    atomic_init(&h->slow, 0);
    snprintf(h->ping_why, sizeof h->ping_why, "redis not checked yet");
    const char *url = opts->cfg->redis_url;
    h->store = tl_store_new_lazy(url, HTTP_REDIS_TIMEOUT_MS, err, errsz);
    if (h->store)
        h->ping_store = tl_store_new_lazy(url, HTTP_REDIS_TIMEOUT_MS, err,
                                          errsz);
    if (!h->ping_store) {
        http_free(h);
        return NULL;
    }
    return h;
}

/* "HOST:PORT" (IPv4) into sa; 0, or -1 with a message. */
static int parse_listen(const char *listen, struct sockaddr_in *sa, char *err,
                        size_t errsz)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (!colon)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "http.listen: expected HOST:PORT"), -1;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "http.listen %s: not an IPv4 address", listen), -1;
    return 0;
}

tl_http *tl_http_start(const tl_http_opts *opts, char *err, size_t errsz)
{
    const char *listen = opts->cfg->http_listen;
    struct sockaddr_in sa;
    if (parse_listen(listen, &sa, err, errsz) != 0) return NULL;
    /* MHD reports a failed bind only through its log: probe it here to
     * give the real reason. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        tl_errf(err, errsz, TL_ERR_IO, "http.listen %s: cannot bind: %s",
                listen, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    close(fd);
    tl_http *h = http_new(opts, err, errsz);
    if (!h) return NULL;
    h->d = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        handle, h, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_MAX_PER_IP,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, h, MHD_OPTION_END);
    if (!h->d) {
        tl_errf(err, errsz, TL_ERR_IO, "http.listen %s: cannot start the "
                "HTTP server (see the log line before)", listen);
        http_free(h);
        return NULL;
    }
    h->sweeping = pthread_create(&h->sweeper, NULL, sweep, h) == 0;
    tl_info("http", "listening on http://%s (token %s)", listen,
            opts->cfg->http_token ? "required for /v1/" : "not set");
    return h;
}

void tl_http_set_config(tl_http *h, const tl_config *cfg)
{
    pthread_rwlock_wrlock(&h->cfg_lock);
    h->o.cfg = cfg;
    pthread_rwlock_unlock(&h->cfg_lock);
}

void tl_http_stop(tl_http *h)
{
    if (!h) return;
    if (h->sweeping) {
        pthread_mutex_lock(&h->conn_lock);
        h->stopping = 1;
        pthread_cond_signal(&h->conn_cond);
        pthread_mutex_unlock(&h->conn_lock);
        pthread_join(h->sweeper, NULL);
    }
    MHD_stop_daemon(h->d);
    http_free(h);
}
