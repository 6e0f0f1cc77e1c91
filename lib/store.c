/*
 * store — Redis I/O on hiredis 0.14 (blocking context, pipelining with
 * redisAppendCommandArgv + redisGetReply).  See store.h for the contract.
 *
 * Every public call that talks to Redis follows the same shape:
 *   1. reconnect if an earlier call dropped the connection (one attempt);
 *   2. append every command of the batch (hiredis formats them into its
 *      output buffer at once, so our argv arrays are reused per command);
 *   3. read every reply (the first redisGetReply writes the whole buffer);
 *   4. a NULL reply means the context is dead: free it, report TL_ERR_IO,
 *      and let the next call reconnect.
 */
#include "store.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* URL parsing                                                              */
/* ------------------------------------------------------------------------ */

#define FORM_TCP "redis://[[user]:password@]host[:port][/db]"
#define FORM_UNIX "unix://[[user]:password@]/path[?db=N]"
#define FORM_ANY FORM_TCP " or " FORM_UNIX

/* Longest socket path the kernel accepts (sun_path minus the NUL). */
#define UNIX_PATH_MAX_LEN (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* "redis URL "<shown>": <what>; expected <form>".  `shown` is the URL with
 * the password replaced by *** so that the message can go to a log. */
static int url_fail(char *err, size_t errsz, const char *shown,
                    const char *form, const char *fmt, ...) TL_PRINTF(5, 6);
static int url_fail(char *err, size_t errsz, const char *shown,
                    const char *form, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return tl_errf(err, errsz, TL_ERR_CONFIG, "redis URL \"%s\": %s; expected %s",
                   shown, what, form);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into a malloc'd string; NULL when an escape is
 * malformed or decodes to NUL (which could not be passed on as a C string). */
static char *pct_decode(const char *s, size_t len)
{
    char *out = tl_xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        if (i + 2 >= len) {
            free(out);
            return NULL;
        }
        int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
        if (h < 0 || l < 0 || (h == 0 && l == 0)) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(h << 4 | l);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* Parses a non-negative decimal integer s[0..len) no larger than max. */
static int parse_uint(const char *s, size_t len, long max, long *out)
{
    if (len == 0 || len > 10) return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max) return -1;
    *out = v;
    return 0;
}

/* Builds the URL as shown in messages: userinfo [ui, at) becomes "user:***"
 * (or "***" when it has no colon). */
static char *redact(const char *url, const char *ui, const char *at)
{
    if (!ui) return tl_xstrdup(url);
    const char *colon = memchr(ui, ':', (size_t)(at - ui));
    size_t keep = colon ? (size_t)(colon - url) + 1 : (size_t)(ui - url);
    size_t rest = strlen(at);
    char *s = tl_xmalloc(keep + 3 + rest + 1);
    memcpy(s, url, keep);
    memcpy(s + keep, "***", 3);
    memcpy(s + keep + 3, at, rest + 1);
    return s;
}

void tl_redis_url_clear(tl_redis_url *u)
{
    if (!u) return;
    free(u->host);
    free(u->unix_path);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof *u);
}

int tl_redis_url_parse(const char *url, tl_redis_url *out, char *err,
                       size_t errsz)
{
    memset(out, 0, sizeof *out);
    if (!url || !*url)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "redis URL is empty; expected %s", FORM_ANY);

    const char *sep = strstr(url, "://");
    const char *rest = sep ? sep + 3 : url;
    int is_unix = sep && (size_t)(sep - url) == 4 &&
                  strncasecmp(url, "unix", 4) == 0;

    /* Find the userinfo first, so that no message can show a password.  A
     * TCP URL's host, port and db cannot hold '@', so its userinfo ends at
     * the last one (an unescaped '/' or '@' in a password still works); a
     * socket path may hold anything, so there it ends at the first "@/". */
    const char *ui = NULL, *at = NULL;
    if (is_unix) {
        if (*rest != '/' && (at = strstr(rest, "@/")) != NULL) ui = rest;
    } else if ((at = strrchr(rest, '@')) != NULL) {
        ui = rest;
    }
    char *shown = redact(url, ui, at);
    int rc = TL_ERR_CONFIG;

    if (!sep) {
        url_fail(err, errsz, shown, FORM_ANY, "missing scheme");
        goto fail;
    }
    size_t slen = (size_t)(sep - url);
    const char *form = is_unix ? FORM_UNIX : FORM_TCP;
    if (!is_unix && !(slen == 5 && strncasecmp(url, "redis", 5) == 0)) {
        if (slen == 6 && strncasecmp(url, "rediss", 6) == 0)
            url_fail(err, errsz, shown, FORM_ANY,
                     "TLS (rediss://) is not supported by this build");
        else
            url_fail(err, errsz, shown, FORM_ANY,
                     "scheme \"%.*s\" is not supported", (int)slen, url);
        goto fail;
    }

    if (ui) {
        const char *colon = memchr(ui, ':', (size_t)(at - ui));
        if (!colon) {
            url_fail(err, errsz, shown, form,
                     "credentials must be [user]:password");
            goto fail;
        }
        if (colon > ui) {
            out->user = pct_decode(ui, (size_t)(colon - ui));
            if (!out->user) {
                url_fail(err, errsz, shown, form,
                         "user has an invalid percent-escape (use %%XX, not "
                         "%%00)");
                goto fail;
            }
        }
        out->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
        if (!out->password) {
            url_fail(err, errsz, shown, form,
                     "password has an invalid percent-escape (use %%XX, not "
                     "%%00)");
            goto fail;
        }
        /* "redis://:@host" means no AUTH; "user:@" is AUTH user "" (an ACL
         * user with nopass). */
        if (!*out->password && !out->user) {
            free(out->password);
            out->password = NULL;
        }
        rest = at + 1;
    }

    if (is_unix) {
        if (*rest != '/') {
            url_fail(err, errsz, shown, form, "socket path must be absolute");
            goto fail;
        }
        const char *q = strchr(rest, '?');
        size_t plen = q ? (size_t)(q - rest) : strlen(rest);
        if (plen < 2) {
            url_fail(err, errsz, shown, form, "socket path is missing");
            goto fail;
        }
        if (plen > UNIX_PATH_MAX_LEN) {
            url_fail(err, errsz, shown, form,
                     "socket path is longer than %zu bytes",
                     (size_t)UNIX_PATH_MAX_LEN);
            goto fail;
        }
        out->unix_path = tl_xstrndup(rest, plen);
        if (q) {
            long db;
            if (strncmp(q + 1, "db=", 3) != 0) {
                url_fail(err, errsz, shown, form,
                         "query \"%s\" is not supported (only db=N)", q + 1);
                goto fail;
            }
            if (parse_uint(q + 4, strlen(q + 4), INT_MAX, &db) != 0) {
                url_fail(err, errsz, shown, form,
                         "database \"%s\" is not a non-negative integer",
                         q + 4);
                goto fail;
            }
            out->db = (int)db;
        }
        free(shown);
        return TL_OK;
    }

    /* host[:port] up to the first '/', then the db. */
    const char *query = strchr(rest, '?');
    if (query) {
        url_fail(err, errsz, shown, form, "query \"%s\" is not supported",
                 query + 1);
        goto fail;
    }
    const char *slash = strchr(rest, '/');
    const char *hend = slash ? slash : rest + strlen(rest);
    const char *h = rest, *hp_end, *pstart = NULL;
    if (*h == '[') { /* [IPv6]:port */
        const char *rb = memchr(h, ']', (size_t)(hend - h));
        if (!rb) {
            url_fail(err, errsz, shown, form, "IPv6 host lacks its ']'");
            goto fail;
        }
        out->host = tl_xstrndup(h + 1, (size_t)(rb - h - 1));
        hp_end = rb + 1;
        if (hp_end < hend && *hp_end != ':') {
            url_fail(err, errsz, shown, form,
                     "unexpected \"%.*s\" after the IPv6 host",
                     (int)(hend - hp_end), hp_end);
            goto fail;
        }
        if (hp_end < hend) pstart = hp_end + 1;
    } else {
        const char *colon = memchr(h, ':', (size_t)(hend - h));
        hp_end = colon ? colon : hend;
        out->host = tl_xstrndup(h, (size_t)(hp_end - h));
        if (colon) pstart = colon + 1;
    }
    if (!*out->host) {
        url_fail(err, errsz, shown, form, "host is missing");
        goto fail;
    }
    out->port = 6379;
    if (pstart) {
        long port;
        if (parse_uint(pstart, (size_t)(hend - pstart), 65535, &port) != 0 ||
            port == 0) {
            url_fail(err, errsz, shown, form,
                     "port \"%.*s\" is not a number in 1..65535",
                     (int)(hend - pstart), pstart);
            goto fail;
        }
        out->port = (int)port;
    }
    if (slash && slash[1]) {
        long db;
        if (parse_uint(slash + 1, strlen(slash + 1), INT_MAX, &db) != 0) {
            url_fail(err, errsz, shown, form,
                     "database \"%s\" is not a non-negative integer",
                     slash + 1);
            goto fail;
        }
        out->db = (int)db;
    }
    free(shown);
    return TL_OK;

fail:
    free(shown);
    tl_redis_url_clear(out);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The flush script                                                         */
/* ------------------------------------------------------------------------ */

/*
 * One conditional write of one hash, atomic because Redis runs a script to
 * completion.  One key per call keeps every call inside one Cluster slot.
 *
 *   KEYS[1]  the customer hash
 *   ARGV[1]  ttl_ms (PEXPIRE after the write when > 0)
 *   ARGV[2]  nwm, the number of watermark triples that follow
 *   ARGV[3]  ndel, the number of fields to delete that follow the triples
 *   ARGV[4..3+3*nwm]  field, expected, next  (per watermark)
 *   then     ndel field names (HDEL together: values that expired)
 *   then     field, value, field, value, ...  (HSET together)
 *
 * Each watermark field must hold `expected` (this writer's previous flush)
 * or `next` (this very write, applied by an attempt whose reply was lost);
 * an absent field counts as "-1".  Anything else means another writer has
 * moved the watermark: return 0 and write nothing (zombie fencing).
 * Otherwise HDEL the deletions, HSET the pairs, then the watermarks to
 * `next` (so they win over a pair naming the same field), PEXPIRE, and
 * return 1.
 *
 * Watermarks are compared as decimal strings, never as numbers: Lua numbers
 * are doubles, exact only up to 2^53, while Kafka offsets are 64-bit.  Both
 * sides are written by tl_store_flush with PRId64, so equal offsets are
 * equal strings.
 *
 * HDEL and HSET go in chunks of 1000 arguments because unpack() is limited
 * by the Lua C stack (LUAI_MAXCSTACK, 8000 slots); 1000 is even, so no pair
 * splits.
 */
static const char flush_script[] =
    "local key = KEYS[1]\n"
    "local nwm = tonumber(ARGV[2])\n"
    "local ndel = tonumber(ARGV[3])\n"
    "for i = 0, nwm - 1 do\n"
    "  local cur = redis.call('HGET', key, ARGV[4 + 3 * i]) or '-1'\n"
    "  if cur ~= ARGV[5 + 3 * i] and cur ~= ARGV[6 + 3 * i] then\n"
    "    return 0\n"
    "  end\n"
    "end\n"
    "local d = 4 + 3 * nwm\n"
    "for i = d, d + ndel - 1, 1000 do\n"
    "  redis.call('HDEL', key, unpack(ARGV, i, math.min(i + 999, d + ndel - 1)))\n"
    "end\n"
    "for i = d + ndel, #ARGV, 1000 do\n"
    "  redis.call('HSET', key, unpack(ARGV, i, math.min(i + 999, #ARGV)))\n"
    "end\n"
    "for i = 0, nwm - 1 do\n"
    "  redis.call('HSET', key, ARGV[4 + 3 * i], ARGV[6 + 3 * i])\n"
    "end\n"
    "if tonumber(ARGV[1]) > 0 then\n"
    "  redis.call('PEXPIRE', key, ARGV[1])\n"
    "end\n"
    "return 1\n";

/* ------------------------------------------------------------------------ */
/* Store                                                                    */
/* ------------------------------------------------------------------------ */

/* Decimal text of an int64 with its NUL: "-9223372036854775808" + 1. */
#define I64_TEXT 21
/* w[i].result while its reply is still to come (or to be retried after
 * NOSCRIPT); positive, so it cannot be mistaken for a tl_err. */
#define RESULT_PENDING 1

struct tl_store {
    tl_redis_url url;
    char where[300];      /* "redis 127.0.0.1:6379": prefix of messages */
    int timeout_ms;       /* <= 0: none */
    redisContext *c;      /* NULL after an I/O error, until reconnected */
    char sha[41];         /* of flush_script, from SCRIPT LOAD */
    uint64_t round_trips, commands;
    int hide_keys;        /* tl_store_hide_keys */

    /* Reused across calls and grown to the high-water mark, so that a
     * steady-state batch allocates only inside hiredis. */
    const char **argv;    /* one command at a time: hiredis copies it */
    size_t *argvlen;
    size_t argcap;
    char *nums;           /* decimal text of ttl, nwm, expected, next */
    size_t numcap;
    redisReply **replies; /* load: held until every reply has arrived */
    size_t repcap;
};

/*
 * hiredis writes with write(2), so a server that went away raises SIGPIPE,
 * whose default action kills the process.  A library must not rely on the
 * program ignoring it: each call blocks SIGPIPE in the calling thread and
 * swallows one that it caused (hiredis reports the EPIPE, which we act on).
 */
typedef struct pipe_guard {
    sigset_t old;
    int was_pending;
} pipe_guard;

static void guard_begin(pipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void guard_end(pipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pending);
    if (!g->was_pending && sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        int saved = errno;
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
        }
        errno = saved;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static void grow_argv(tl_store *s, size_t argc)
{
    if (argc <= s->argcap) return;
    size_t cap = s->argcap ? s->argcap : 16;
    while (cap < argc) cap *= 2;
    s->argv = tl_xrealloc(s->argv, cap * sizeof *s->argv);
    s->argvlen = tl_xrealloc(s->argvlen, cap * sizeof *s->argvlen);
    s->argcap = cap;
}

static void grow_nums(tl_store *s, size_t bytes)
{
    if (bytes <= s->numcap) return;
    size_t cap = s->numcap ? s->numcap : 256;
    while (cap < bytes) cap *= 2;
    s->nums = tl_xrealloc(s->nums, cap);
    s->numcap = cap;
}

static void grow_replies(tl_store *s, size_t n)
{
    if (n <= s->repcap) return;
    size_t cap = s->repcap ? s->repcap : 64;
    while (cap < n) cap *= 2;
    s->replies = tl_xrealloc(s->replies, cap * sizeof *s->replies);
    s->repcap = cap;
}

/* A key as shown in messages: printable bytes, at most 64 of them; with
 * hide_keys, a hash tag's content (the customer id) as "...". */
static const char *show_key(const tl_store *s, char buf[80], const char *key,
                            size_t len)
{
    size_t n = len < 64 ? len : 64, o = 0;
    const char *tag = s->hide_keys ? memchr(key, '{', len) : NULL;
    if (tag) {
        const char *close = memchr(tag, '}', len - (size_t)(tag - key));
        size_t pre = (size_t)(tag - key) + 1 < 60 ? (size_t)(tag - key) + 1 : 60;
        for (size_t i = 0; i < pre; i++)
            buf[o++] = key[i] >= 0x20 && key[i] < 0x7f ? key[i] : '?';
        memcpy(buf + o, "...", 3);
        o += 3;
        if (close) buf[o++] = '}';
        buf[o] = '\0';
        return buf;
    }
    for (size_t i = 0; i < n; i++)
        buf[o++] = key[i] >= 0x20 && key[i] < 0x7f ? key[i] : '?';
    if (n < len) buf[o++] = '.', buf[o++] = '.', buf[o++] = '.';
    buf[o] = '\0';
    return buf;
}

static void drop(tl_store *s)
{
    if (s->c) redisFree(s->c);
    s->c = NULL;
}

/* The context died (NULL reply, failed append): say why, drop it.  Ops
 * other than the handshake say that the next call reconnects. */
static int io_fail(tl_store *s, const char *op, char *err, size_t errsz)
{
    int handshake = strcmp(op, "handshake") == 0;
    char why[160];
    redisContext *c = s->c;
    if (!c || c->err == 0)
        snprintf(why, sizeof why, "connection failed");
    else if (c->err == REDIS_ERR_EOF)
        snprintf(why, sizeof why, "server closed the connection");
    else if (c->err == REDIS_ERR_IO &&
             (strcmp(c->errstr, strerror(EAGAIN)) == 0 ||
              strcmp(c->errstr, strerror(ETIMEDOUT)) == 0))
        /* SO_RCVTIMEO expired: hiredis reports EAGAIN. */
        snprintf(why, sizeof why, "no reply within %d ms (timeout)",
                 s->timeout_ms);
    else
        snprintf(why, sizeof why, "%s", c->errstr);
    drop(s);
    return tl_errf(err, errsz, TL_ERR_IO,
                   "%s: %s: %s%s", s->where, op, why,
                   handshake ? "" : " (will reconnect on the next call)");
}

/* Error replies that say "this server cannot take writes right now" rather
 * than "this write is wrong": retrying later (on a fresh connection, which
 * follows a failover behind a DNS name) is the remedy. */
static int transient_error(const redisReply *r)
{
    static const char *const prefixes[] = {
        "LOADING", "READONLY", "MASTERDOWN", "BUSY", "OOM",
        "TRYAGAIN", "CLUSTERDOWN", "NOAUTH", NULL};
    for (const char *const *p = prefixes; *p; p++) {
        size_t n = strlen(*p);
        if (r->len >= n && strncmp(r->str, *p, n) == 0 &&
            (r->len == n || r->str[n] == ' '))
            return 1;
    }
    return 0;
}

static int is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 &&
           strncmp(r->str, "NOSCRIPT", 8) == 0;
}

static int append(tl_store *s, int argc, const char **argv,
                  const size_t *argvlen)
{
    if (redisAppendCommandArgv(s->c, argc, argv, argvlen) != REDIS_OK)
        return -1;
    s->commands++;
    return 0;
}

static int append_script_load(tl_store *s)
{
    const char *argv[] = {"SCRIPT", "LOAD", flush_script};
    const size_t lens[] = {6, 4, sizeof flush_script - 1};
    return append(s, 3, argv, lens);
}

/* Checks a SCRIPT LOAD reply and keeps the SHA. */
static int take_sha(tl_store *s, const redisReply *r, char *err, size_t errsz)
{
    if (r->type != REDIS_REPLY_STRING || r->len != 40)
        return tl_errf(err, errsz, TL_ERR,
                       "%s: SCRIPT LOAD of the flush script failed: %.*s",
                       s->where, r->type == REDIS_REPLY_ERROR ? (int)r->len : 0,
                       r->type == REDIS_REPLY_ERROR ? r->str : "");
    memcpy(s->sha, r->str, 40);
    s->sha[40] = '\0';
    return TL_OK;
}

static int connect_fail(tl_store *s, redisContext *c, char *err, size_t errsz)
{
    static const char hint[] =
        "is redis-server running? set redis.url or TAILOR_REDIS_URL";
    int code = TL_ERR_IO;
    if (!c)
        code = tl_errf(err, errsz, TL_ERR_NOMEM,
                       "%s: cannot allocate a connection", s->where);
    else if (strcmp(c->errstr, strerror(ECONNREFUSED)) == 0)
        tl_errf(err, errsz, code, "%s: connection refused (%s)", s->where,
                hint);
    else if (strcmp(c->errstr, strerror(ETIMEDOUT)) == 0)
        tl_errf(err, errsz, code, "%s: connect timed out after %d ms (%s)",
                s->where, s->timeout_ms, hint);
    else if (strcmp(c->errstr, strerror(ENOENT)) == 0)
        tl_errf(err, errsz, code, "%s: no such socket (%s)", s->where, hint);
    else if (c->err == REDIS_ERR_OTHER && s->url.host)
        tl_errf(err, errsz, code, "%s: cannot connect: %s (check the host in "
                "redis.url or TAILOR_REDIS_URL)", s->where, c->errstr);
    else
        tl_errf(err, errsz, code, "%s: cannot connect: %s (%s)", s->where,
                c->errstr, hint);
    if (c) redisFree(c);
    return code;
}

/*
 * Connects and runs the handshake in one round trip: [AUTH], [SELECT],
 * SCRIPT LOAD.  The replies come in order; the first failure is reported
 * (an AUTH failure also fails the others with NOAUTH, which says less).
 * A refused AUTH or SELECT is TL_ERR_AUTH (a configuration problem, which
 * tailord reports and stops on at start); every other failure is TL_ERR_IO.
 * Callers retrying load or flush treat both alike, since an operator may fix
 * the server meanwhile.
 */
static int do_connect(tl_store *s, char *err, size_t errsz)
{
    TL_ASSERT(!s->c);
    struct timeval tv = {s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000};
    int timed = s->timeout_ms > 0;
    redisContext *c;
    if (s->url.unix_path)
        c = timed ? redisConnectUnixWithTimeout(s->url.unix_path, tv)
                  : redisConnectUnix(s->url.unix_path);
    else
        c = timed ? redisConnectWithTimeout(s->url.host, s->url.port, tv)
                  : redisConnect(s->url.host, s->url.port);
    if (!c || c->err) return connect_fail(s, c, err, errsz);
    /* The connect timeout covers only connect(2); commands need their own. */
    if (timed && redisSetTimeout(c, tv) != REDIS_OK) {
        int rc = tl_errf(err, errsz, TL_ERR_IO, "%s: cannot set timeout: %s",
                         s->where, c->errstr);
        redisFree(c);
        return rc;
    }
    s->c = c;

    int nreplies = 0, rc = TL_OK, refused = 0;
    int has_auth = s->url.password != NULL;
    char dbtext[I64_TEXT];
    if (has_auth) {
        const char *argv[3] = {"AUTH"};
        size_t lens[3] = {4};
        int argc = 1;
        if (s->url.user) {
            argv[argc] = s->url.user;
            lens[argc++] = strlen(s->url.user);
        }
        argv[argc] = s->url.password;
        lens[argc++] = strlen(s->url.password);
        if (append(s, argc, argv, lens) != 0) goto io;
        nreplies++;
    }
    if (s->url.db != 0) {
        const char *argv[] = {"SELECT", dbtext};
        size_t lens[] = {6, (size_t)snprintf(dbtext, sizeof dbtext, "%d",
                                             s->url.db)};
        if (append(s, 2, argv, lens) != 0) goto io;
        nreplies++;
    }
    if (append_script_load(s) != 0) goto io;
    nreplies++;
    s->round_trips++;

    for (int i = 0; i < nreplies; i++) {
        redisReply *r = NULL;
        if (redisGetReply(s->c, (void **)&r) != REDIS_OK || !r) goto io;
        int is_auth = has_auth && i == 0;
        int is_select = s->url.db != 0 && i == (has_auth ? 1 : 0);
        if (rc != TL_OK) {
            /* Already failed: drain the rest to report the first cause. */
        } else if (r->type == REDIS_REPLY_ERROR && is_auth) {
            refused = 1;
            rc = tl_errf(err, errsz, TL_ERR_IO,
                         "%s: AUTH failed: %s (check the credentials in "
                         "redis.url or TAILOR_REDIS_URL)",
                         s->where, r->str);
        } else if (r->type == REDIS_REPLY_ERROR &&
                   strncmp(r->str, "NOAUTH", 6) == 0) {
            refused = 1;
            rc = tl_errf(err, errsz, TL_ERR_IO,
                         "%s: the server requires a password: %s (put it in "
                         "redis.url as redis://[[user]:password@]host...)",
                         s->where, r->str);
        } else if (r->type == REDIS_REPLY_ERROR && is_select) {
            refused = 1;
            rc = tl_errf(err, errsz, TL_ERR_IO,
                         "%s: SELECT %d failed: %s (check the /db part of "
                         "redis.url)",
                         s->where, s->url.db, r->str);
        } else if (!is_auth && !is_select) {
            rc = take_sha(s, r, err, errsz);
        }
        freeReplyObject(r);
    }
    if (rc != TL_OK) {
        drop(s);
        rc = refused ? TL_ERR_AUTH : TL_ERR_IO;
    }
    return rc;

io:
    return io_fail(s, "handshake", err, errsz);
}

static int ensure_connected(tl_store *s, char *err, size_t errsz)
{
    return s->c ? TL_OK : do_connect(s, err, errsz);
}

tl_store *tl_store_new(const char *url, int timeout_ms, char *err,
                       size_t errsz)
{
    tl_store *s = tl_store_new_lazy(url, timeout_ms, err, errsz);
    if (!s) return NULL;
    pipe_guard g;
    guard_begin(&g);
    int rc = do_connect(s, err, errsz);
    guard_end(&g);
    if (rc != TL_OK) {
        tl_store_free(s);
        return NULL;
    }
    return s;
}

tl_store *tl_store_new_lazy(const char *url, int timeout_ms, char *err,
                            size_t errsz)
{
    tl_store *s = tl_xcalloc(1, sizeof *s);
    if (tl_redis_url_parse(url, &s->url, err, errsz) != TL_OK) goto fail;
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    if (s->url.unix_path)
        snprintf(s->where, sizeof s->where, "redis unix:%s", s->url.unix_path);
    else if (strchr(s->url.host, ':'))
        snprintf(s->where, sizeof s->where, "redis [%s]:%d", s->url.host,
                 s->url.port);
    else
        snprintf(s->where, sizeof s->where, "redis %s:%d", s->url.host,
                 s->url.port);

    return s;

fail:
    tl_store_free(s);
    return NULL;
}

void tl_store_free(tl_store *s)
{
    if (!s) return;
    drop(s);
    tl_redis_url_clear(&s->url);
    free(s->argv);
    free(s->argvlen);
    free(s->nums);
    free(s->replies);
    free(s);
}

uint64_t tl_store_round_trips(const tl_store *s) { return s->round_trips; }
uint64_t tl_store_commands(const tl_store *s) { return s->commands; }

/* One command, one reply (*out, the caller frees): TL_OK, or TL_ERR_IO with
 * the connection dropped, or the server's error reply as TL_ERR_IO. */
static int command(tl_store *s, int argc, const char **argv,
                   const size_t *lens, redisReply **out, char *err,
                   size_t errsz)
{
    pipe_guard g;
    guard_begin(&g);
    *out = NULL;
    int rc = ensure_connected(s, err, errsz);
    if (rc != TL_OK) goto done;
    redisReply *r = NULL;
    if (append(s, argc, argv, lens) != 0) {
        rc = io_fail(s, argv[0], err, errsz);
        goto done;
    }
    s->round_trips++;
    if (redisGetReply(s->c, (void **)&r) != REDIS_OK || !r) {
        rc = io_fail(s, argv[0], err, errsz);
        goto done;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        rc = tl_errf(err, errsz, TL_ERR_IO, "%s: %s: %s", s->where, argv[0],
                     r->str);
        freeReplyObject(r);
        goto done;
    }
    *out = r;
done:
    guard_end(&g);
    return rc;
}

void tl_store_hide_keys(tl_store *s) { s->hide_keys = 1; }

int tl_store_ping(tl_store *s, char *err, size_t errsz)
{
    const char *argv[] = {"PING"};
    const size_t lens[] = {4};
    redisReply *r;
    int rc = command(s, 1, argv, lens, &r, err, errsz);
    if (rc != TL_OK) return rc;
    if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0)
        rc = tl_errf(err, errsz, TL_ERR_IO, "%s: PING: unexpected reply type %d",
                     s->where, r->type);
    freeReplyObject(r);
    return rc;
}

int tl_store_delete(tl_store *s, const char *key, size_t keylen, int *existed,
                    char *err, size_t errsz)
{
    const char *argv[] = {"DEL", key};
    const size_t lens[] = {3, keylen};
    redisReply *r;
    int rc = command(s, 2, argv, lens, &r, err, errsz);
    if (rc != TL_OK) return rc;
    if (r->type != REDIS_REPLY_INTEGER)
        rc = tl_errf(err, errsz, TL_ERR_IO, "%s: DEL: unexpected reply type %d",
                     s->where, r->type);
    else if (existed)
        *existed = r->integer > 0;
    freeReplyObject(r);
    return rc;
}

static int check_hgetall(tl_store *s, const redisReply *r, const char *key,
                         size_t keylen, char *err, size_t errsz)
{
    char kb[80];
    if (r->type == REDIS_REPLY_ERROR && transient_error(r))
        return tl_errf(err, errsz, TL_ERR_IO,
                       "%s: load: HGETALL %s: %s (will reconnect on the next "
                       "call)",
                       s->where, show_key(s, kb, key, keylen), r->str);
    if (r->type == REDIS_REPLY_ERROR)
        return tl_errf(err, errsz, TL_ERR, "%s: HGETALL %s: %s", s->where,
                       show_key(s, kb, key, keylen), r->str);
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
        return tl_errf(err, errsz, TL_ERR,
                       "%s: HGETALL %s: unexpected reply (type %d, %zu "
                       "elements)",
                       s->where, show_key(s, kb, key, keylen), r->type,
                       r->elements);
    for (size_t j = 0; j < r->elements; j++)
        if (r->element[j]->type != REDIS_REPLY_STRING)
            return tl_errf(err, errsz, TL_ERR,
                           "%s: HGETALL %s: element %zu is not a string",
                           s->where, show_key(s, kb, key, keylen), j);
    return TL_OK;
}

/*
 * All replies are held until the last one has arrived and only then handed
 * to the callback, so a failed load calls back nothing: the caller never
 * sees half a batch.
 */
int tl_store_load(tl_store *s, const char *const *keys, const size_t *keylens,
                  size_t n, tl_store_field_cb cb, void *ud, char *err,
                  size_t errsz)
{
    if (n == 0) return TL_OK;
    pipe_guard g;
    guard_begin(&g);
    size_t got = 0;
    int rc = ensure_connected(s, err, errsz);
    if (rc != TL_OK) goto out;
    grow_replies(s, n);

    for (size_t i = 0; i < n; i++) {
        const char *argv[] = {"HGETALL", keys[i]};
        const size_t lens[] = {7, keylens[i]};
        if (append(s, 2, argv, lens) != 0) {
            rc = io_fail(s, "load", err, errsz);
            goto out;
        }
    }
    s->round_trips++;
    for (; got < n; got++) {
        if (redisGetReply(s->c, (void **)&s->replies[got]) != REDIS_OK ||
            !s->replies[got]) {
            rc = io_fail(s, "load", err, errsz);
            goto out;
        }
        if (rc == TL_OK)
            rc = check_hgetall(s, s->replies[got], keys[got], keylens[got],
                               err, errsz);
    }
    if (rc == TL_ERR_IO) drop(s);
    if (rc != TL_OK) goto out;
    for (size_t i = 0; i < n; i++) {
        const redisReply *r = s->replies[i];
        for (size_t j = 0; j + 1 < r->elements; j += 2)
            cb(ud, i, r->element[j]->str, r->element[j]->len,
               r->element[j + 1]->str, r->element[j + 1]->len);
    }

out:
    for (size_t i = 0; i < got; i++) freeReplyObject(s->replies[i]);
    guard_end(&g);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Flush                                                                    */
/* ------------------------------------------------------------------------ */

static size_t write_argc(const tl_store_write *w)
{
    return 7 + 3 * w->nwm + w->ndels + 2 * w->nfields;
}

static void put_num(tl_store *s, size_t k, char **p, int64_t v)
{
    int len = snprintf(*p, I64_TEXT, "%" PRId64, v);
    s->argv[k] = *p;
    s->argvlen[k] = (size_t)len;
    *p += len;
}

/* Builds the EVALSHA of one write in the reused arrays and appends it. */
static int append_write(tl_store *s, const tl_store_write *w)
{
    size_t argc = write_argc(w);
    grow_argv(s, argc);
    grow_nums(s, (3 + 2 * w->nwm) * I64_TEXT);
    const char **a = s->argv;
    size_t *l = s->argvlen;
    char *p = s->nums;
    size_t k = 0;
    a[k] = "EVALSHA", l[k++] = 7;
    a[k] = s->sha, l[k++] = 40;
    a[k] = "1", l[k++] = 1;
    a[k] = w->key, l[k++] = w->keylen;
    put_num(s, k++, &p, w->ttl_ms);
    put_num(s, k++, &p, (int64_t)w->nwm);
    put_num(s, k++, &p, (int64_t)w->ndels);
    for (size_t j = 0; j < w->nwm; j++) {
        a[k] = w->wm[j].field, l[k++] = w->wm[j].flen;
        put_num(s, k++, &p, w->wm[j].expected);
        put_num(s, k++, &p, w->wm[j].next);
    }
    for (size_t j = 0; j < w->ndels; j++)
        a[k] = w->dels[j], l[k++] = w->dlens[j];
    for (size_t j = 0; j < w->nfields; j++) {
        a[k] = w->fields[j], l[k++] = w->flens[j];
        a[k] = w->vals[j], l[k++] = w->vlens[j];
    }
    TL_ASSERT(k == argc);
    return append(s, (int)argc, a, l);
}

/*
 * Sends every write still RESULT_PENDING (after a SCRIPT LOAD when reload)
 * and reads all their replies.  NOSCRIPT leaves a write pending and counts
 * it in *retry.  An error reply fails only its write (result TL_ERR), unless
 * it says the server cannot take writes now: then the connection is dropped
 * and the round returns TL_ERR_IO like any I/O failure.
 */
static int flush_round(tl_store *s, tl_store_write *w, size_t n, int reload,
                       size_t *retry, char *err, size_t errsz)
{
    *retry = 0;
    if (reload && append_script_load(s) != 0)
        return io_fail(s, "flush", err, errsz);
    for (size_t i = 0; i < n; i++)
        if (w[i].result == RESULT_PENDING && append_write(s, &w[i]) != 0)
            return io_fail(s, "flush", err, errsz);
    s->round_trips++;

    int rc = TL_OK, transient = 0;
    redisReply *r = NULL;
    if (reload) {
        if (redisGetReply(s->c, (void **)&r) != REDIS_OK || !r)
            return io_fail(s, "flush", err, errsz);
        rc = take_sha(s, r, err, errsz);
        freeReplyObject(r);
    }
    for (size_t i = 0; i < n; i++) {
        if (w[i].result != RESULT_PENDING) continue;
        if (redisGetReply(s->c, (void **)&r) != REDIS_OK || !r)
            return io_fail(s, "flush", err, errsz);
        if (r->type == REDIS_REPLY_INTEGER && (r->integer == 0 ||
                                               r->integer == 1)) {
            w[i].result = r->integer == 1 ? TL_OK : TL_ERR_FENCED;
        } else if (is_noscript(r)) {
            (*retry)++;
        } else {
            w[i].result = TL_ERR;
            if (r->type == REDIS_REPLY_ERROR && transient_error(r))
                transient = 1;
            if (rc == TL_OK) {
                char kb[80];
                rc = tl_errf(err, errsz, TL_ERR, "%s: flush of %s: %s",
                             s->where, show_key(s, kb, w[i].key, w[i].keylen),
                             r->type == REDIS_REPLY_ERROR
                                 ? r->str
                                 : "unexpected reply from the flush script");
                if (transient && err && errsz > 0) {
                    size_t len = strlen(err);
                    snprintf(err + len, errsz - len,
                             " (will reconnect on the next call)");
                }
            }
        }
        freeReplyObject(r);
    }
    if (transient) {
        drop(s);
        rc = TL_ERR_IO;
    }
    return rc;
}

int tl_store_flush(tl_store *s, tl_store_write *w, size_t n, char *err,
                   size_t errsz)
{
    if (n == 0) return TL_OK;
    for (size_t i = 0; i < n; i++) {
        char kb[80];
        if (write_argc(&w[i]) > INT_MAX)
            return tl_errf(err, errsz, TL_ERR, "%s: flush of %s: %zu fields "
                           "do not fit in one command", s->where,
                           show_key(s, kb, w[i].key, w[i].keylen), w[i].nfields);
        w[i].result = RESULT_PENDING;
    }
    pipe_guard g;
    guard_begin(&g);
    size_t retry = 0;
    int rc = ensure_connected(s, err, errsz);
    if (rc == TL_OK) rc = flush_round(s, w, n, 0, &retry, err, errsz);
    /* The script cache was emptied under us (SCRIPT FLUSH by an operator,
     * or a failover to a server that never saw our SCRIPT LOAD): load the
     * script again and retry those writes once, in one more round trip. */
    if (rc != TL_ERR_IO && retry > 0) {
        char scratch[TL_ERRSZ];
        int first_ok = rc == TL_OK;
        int rc2 = flush_round(s, w, n, 1, &retry, first_ok ? err : scratch,
                              first_ok ? errsz : sizeof scratch);
        if (rc2 == TL_ERR_IO && !first_ok && err && errsz > 0)
            snprintf(err, errsz, "%s", scratch);
        if (first_ok || rc2 == TL_ERR_IO) rc = rc2;
        if (rc == TL_OK && retry > 0)
            rc = tl_errf(err, errsz, TL_ERR,
                         "%s: flush: NOSCRIPT again right after SCRIPT LOAD "
                         "(%zu writes); is something flushing the script "
                         "cache?",
                         s->where, retry);
    }
    /* Writes whose reply never came: unknown, which the caller must treat
     * as failed (and retry: the watermark makes that safe). */
    for (size_t i = 0; i < n; i++)
        if (w[i].result == RESULT_PENDING)
            w[i].result = rc == TL_ERR_IO ? TL_ERR_IO : TL_ERR;
    guard_end(&g);
    return rc;
}
