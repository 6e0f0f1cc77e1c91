/*
 * store — Redis I/O on hiredis 0.14 (blocking context, pipelining with
 * RESP built here, redisAppendFormattedCommand, redisGetReply).  See
 * store.h for the contract.  The URL is parsed by redis_url.c; Redis
 * Cluster routing (key slots, the slot map, MOVED and ASK) is
 * store_cluster.c's, error replies (outage or one key's, their causes)
 * store_reply.c's, and store_int.h holds what the files share.
 *
 * Every public call that talks to Redis follows the same shape:
 *   1. reconnect if an earlier call dropped the connection (one attempt);
 *   2. append every command of the batch (hiredis formats them into its
 *      output buffer at once, so our argv arrays are reused per command);
 *   3. read every reply (the first redisGetReply writes the whole buffer);
 *   4. a NULL reply means the context is dead: free it, report TL_ERR_IO,
 *      and let the next call reconnect.
 */
#include "store_int.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdatomic.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Store                                                                    */
/* ------------------------------------------------------------------------ */

/* Decimal text of an int64 with its NUL: "-9223372036854775808" + 1. */
#define I64_TEXT 21
/* w[i].result while its reply is still to come (or to be retried after
 * NOSCRIPT or a redirect); positive, so it cannot be mistaken for a tl_err. */
#define RESULT_PENDING 1

/* Rounds of one load or flush: the first, then at most this many minus one
 * after redirects (MOVED, ASK, TRYAGAIN) or a NOSCRIPT.  A slot moves once
 * per migration, so more rounds would only chase a cluster in turmoil; the
 * caller's retry with backoff is the better remedy then. */
#define MAX_ROUNDS 5
/* Wait before a round that follows TRYAGAIN (a multi-key command during a
 * migration; ours are single-key, so this is a safety net). */
#define TRYAGAIN_SLEEP_MS 20

/*
 * hiredis writes with write(2), so a server that went away raises SIGPIPE,
 * whose default action kills the process.  A library must not rely on the
 * program ignoring it: each call blocks SIGPIPE in the calling thread and
 * swallows one that it caused (hiredis reports the EPIPE, which we act on).
 */
void tl_store_guard_begin(tl_store_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

void tl_store_guard_end(tl_store_guard *g)
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

static void grow_items(tl_store *s, size_t n)
{
    if (n <= s->itemcap) return;
    size_t cap = s->itemcap ? s->itemcap : 64;
    while (cap < n) cap *= 2;
    s->replies = tl_xrealloc(s->replies, cap * sizeof *s->replies);
    s->route = tl_xrealloc(s->route, cap * sizeof *s->route);
    s->kslot = tl_xrealloc(s->kslot, cap * sizeof *s->kslot);
    s->flags = tl_xrealloc(s->flags, cap);
    s->itemcap = cap;
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

static void drop(tl_store_node *k)
{
    if (k->c) redisFree(k->c);
    k->c = NULL;
}

/* The context died (NULL reply, failed append): say why, drop it.  Ops
 * other than the handshake say that the next call reconnects. */
int tl_store_io_fail(tl_store *s, tl_store_node *k, const char *op,
                     char *err, size_t errsz)
{
    int handshake = strcmp(op, "handshake") == 0;
    char why[160];
    redisContext *c = k->c;
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
    drop(k);
    /* A cluster node that fails may have lost its slots to another. */
    if (s->slots) s->map_stale = 1;
    return tl_errf(err, errsz, TL_ERR_IO,
                   "%s: %s: %s%s", k->where, op, why,
                   handshake ? "" : " (will reconnect on the next call)");
}

static char *put_len(char *p, char type, size_t n)
{
    *p++ = type;
    p += tl_fmt_i64(p, (int64_t)n);
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* The command in RESP, built here in a reused buffer rather than by
 * redisAppendCommandArgv, whose sdscatfmt costs more than the rest of a
 * flush's formatting and allocates a string per command. */
int tl_store_append(tl_store *s, tl_store_node *k, int argc,
                    const char **argv, const size_t *argvlen)
{
    size_t need = 24;
    for (int i = 0; i < argc; i++) need += argvlen[i] + 26;
    if (need > s->respcap) {
        size_t cap = s->respcap ? s->respcap : 4096;
        while (cap < need) cap *= 2;
        s->resp = tl_xrealloc(s->resp, cap);
        s->respcap = cap;
    }
    char *p = put_len(s->resp, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        p = put_len(p, '$', argvlen[i]);
        memcpy(p, argv[i], argvlen[i]);
        p += argvlen[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    if (redisAppendFormattedCommand(k->c, s->resp, (size_t)(p - s->resp)) !=
        REDIS_OK)
        return -1;
    s->commands++;
    k->sent++;
    return 0;
}

static int append_script_load(tl_store *s, tl_store_node *k)
{
    const char *argv[] = {"SCRIPT", "LOAD", tl_store_script};
    const size_t lens[] = {6, 4, tl_store_script_len};
    return tl_store_append(s, k, 3, argv, lens);
}

/* Checks a SCRIPT LOAD reply and keeps the SHA (the same on every node:
 * it is the script's SHA1). */
static int take_sha(tl_store *s, const tl_store_node *k, const redisReply *r,
                    char *err, size_t errsz)
{
    if (r->type != REDIS_REPLY_STRING || r->len != 40)
        return tl_errf(err, errsz, TL_ERR,
                       "%s: SCRIPT LOAD of the flush script failed: %.*s",
                       k->where, r->type == REDIS_REPLY_ERROR ? (int)r->len : 0,
                       r->type == REDIS_REPLY_ERROR ? r->str : "");
    memcpy(s->sha, r->str, 40);
    s->sha[40] = '\0';
    return TL_OK;
}

static int connect_fail(const tl_store_node *k, redisContext *c, int tcp,
                        int timeout_ms, char *err, size_t errsz)
{
    static const char hint[] =
        "is redis-server running? set redis.url or TAILOR_REDIS_URL";
    int code = TL_ERR_IO;
    if (!c)
        code = tl_errf(err, errsz, TL_ERR_NOMEM,
                       "%s: cannot allocate a connection", k->where);
    else if (strcmp(c->errstr, strerror(ECONNREFUSED)) == 0)
        tl_errf(err, errsz, code, "%s: connection refused (%s)", k->where,
                hint);
    else if (strcmp(c->errstr, strerror(ETIMEDOUT)) == 0)
        tl_errf(err, errsz, code, "%s: connect timed out after %d ms (%s)",
                k->where, timeout_ms, hint);
    else if (strcmp(c->errstr, strerror(ENOENT)) == 0)
        tl_errf(err, errsz, code, "%s: no such socket (%s)", k->where, hint);
    else if (c->err == REDIS_ERR_OTHER && tcp)
        tl_errf(err, errsz, code, "%s: cannot connect: %s (check the host in "
                "redis.url or TAILOR_REDIS_URL)", k->where, c->errstr);
    else
        tl_errf(err, errsz, code, "%s: cannot connect: %s (%s)", k->where,
                c->errstr, hint);
    if (c) redisFree(c);
    return code;
}

/* Opens k's connection (the URL's server, or a cluster node) with the
 * store's timeout for connect(2) and for every command. */
static int open_context(tl_store *s, tl_store_node *k, char *err,
                        size_t errsz)
{
    struct timeval tv = {s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000};
    int timed = s->timeout_ms > 0;
    const char *host = k->host ? k->host : s->url.host;
    int port = k->host ? k->port : s->url.port;
    redisContext *c;
    if (!k->host && s->url.unix_path)
        c = timed ? redisConnectUnixWithTimeout(s->url.unix_path, tv)
                  : redisConnectUnix(s->url.unix_path);
    else
        c = timed ? redisConnectWithTimeout(host, port, tv)
                  : redisConnect(host, port);
    if (!c || c->err)
        return connect_fail(k, c, host != NULL, s->timeout_ms, err, errsz);
    /* The connect timeout covers only connect(2); commands need their own. */
    if (timed && redisSetTimeout(c, tv) != REDIS_OK) {
        int rc = tl_errf(err, errsz, TL_ERR_IO, "%s: cannot set timeout: %s",
                         k->where, c->errstr);
        redisFree(c);
        return rc;
    }
    k->c = c;
    return TL_OK;
}

/* Appends [AUTH], [SELECT], SCRIPT LOAD and INFO server; returns how many
 * replies to read, or -1 when the context failed. */
static int append_handshake(tl_store *s, tl_store_node *k)
{
    int nreplies = 0;
    if (s->url.password) {
        const char *argv[3] = {"AUTH"};
        size_t lens[3] = {4};
        int argc = 1;
        if (s->url.user) {
            argv[argc] = s->url.user;
            lens[argc++] = strlen(s->url.user);
        }
        argv[argc] = s->url.password;
        lens[argc++] = strlen(s->url.password);
        if (tl_store_append(s, k, argc, argv, lens) != 0) return -1;
        nreplies++;
    }
    if (s->url.db != 0) {
        char dbtext[I64_TEXT];
        const char *argv[] = {"SELECT", dbtext};
        size_t lens[] = {6, (size_t)snprintf(dbtext, sizeof dbtext, "%d",
                                             s->url.db)};
        if (tl_store_append(s, k, 2, argv, lens) != 0) return -1;
        nreplies++;
    }
    if (append_script_load(s, k) != 0) return -1;
    /* The run_id tells a restarted server (its data possibly gone) from a
     * dropped connection, at no extra round trip. */
    const char *info[] = {"INFO", "server"};
    const size_t infolens[] = {4, 6};
    if (tl_store_append(s, k, 2, info, infolens) != 0) return -1;
    return nreplies + 2;
}

/*
 * Connects and runs the handshake in one round trip: [AUTH], [SELECT],
 * SCRIPT LOAD, INFO server (the run_id: tl_store_restarts).  The replies come in order; the first failure is reported
 * (an AUTH failure also fails the others with NOAUTH, which says less).
 * A refused AUTH or SELECT is TL_ERR_AUTH (a configuration problem, which
 * tailord reports and stops on at start); every other failure is TL_ERR_IO.
 * Callers retrying load or flush treat both alike, since an operator may fix
 * the server meanwhile.  Every node of a cluster gets the same credentials.
 */
int tl_store_connect(tl_store *s, tl_store_node *k, char *err, size_t errsz)
{
    TL_ASSERT(!k->c);
    int rc = open_context(s, k, err, errsz);
    if (rc != TL_OK) return rc;
    k->reload = 0;

    int refused = 0;
    int has_auth = s->url.password != NULL;
    int nreplies = append_handshake(s, k);
    if (nreplies < 0) goto io;
    s->round_trips++;

    for (int i = 0; i < nreplies; i++) {
        redisReply *r = NULL;
        if (redisGetReply(k->c, (void **)&r) != REDIS_OK || !r) goto io;
        int is_auth = has_auth && i == 0;
        int is_select = s->url.db != 0 && i == (has_auth ? 1 : 0);
        if (rc != TL_OK) {
            /* Already failed: drain the rest to report the first cause. */
        } else if (r->type == REDIS_REPLY_ERROR && is_auth) {
            refused = 1;
            rc = tl_errf(err, errsz, TL_ERR_IO,
                         "%s: AUTH failed: %s (check the credentials in "
                         "redis.url or TAILOR_REDIS_URL)",
                         k->where, r->str);
        } else if (r->type == REDIS_REPLY_ERROR &&
                   strncmp(r->str, "NOAUTH", 6) == 0) {
            refused = 1;
            rc = tl_errf(err, errsz, TL_ERR_IO,
                         "%s: the server requires a password: %s (put it in "
                         "redis.url as redis://[[user]:password@]host...)",
                         k->where, r->str);
        } else if (r->type == REDIS_REPLY_ERROR && is_select) {
            refused = 1;
            rc = tl_errf(err, errsz, TL_ERR_IO,
                         "%s: SELECT %d failed: %s (check the /db part of "
                         "redis.url)",
                         k->where, s->url.db, r->str);
        } else if (i == nreplies - 1) {
            tl_store_take_run_id(s, k, r);
        } else if (!is_auth && !is_select) {
            rc = take_sha(s, k, r, err, errsz);
        }
        freeReplyObject(r);
    }
    k->sent = 0;
    if (rc != TL_OK) {
        drop(k);
        rc = refused ? TL_ERR_AUTH : TL_ERR_IO;
    }
    return rc;

io:
    k->sent = 0;
    return tl_store_io_fail(s, k, "handshake", err, errsz);
}

void tl_store_node_where(tl_store_node *k, const char *host, int port)
{
    if (strchr(host, ':'))
        snprintf(k->where, sizeof k->where, "redis [%s]:%d", host, port);
    else
        snprintf(k->where, sizeof k->where, "redis %s:%d", host, port);
}

/* ------------------------------------------------------------------------ */
/* The batch engine shared by load and flush                                */
/* ------------------------------------------------------------------------ */

/*
 * A batch is n items, one single-key command each.  Each round appends the
 * pending items to the connection of their node (the only one, or the
 * master of their slot), writes every connection's buffer, then reads every
 * connection's replies: one round trip per node, the nodes working in
 * parallel.  A reply that redirects (MOVED: the slot has moved, so fix the
 * map and refresh it; ASK: this key is being migrated, so send it to the
 * target with ASKING first), says TRYAGAIN, or NOSCRIPT (load the script
 * there first) leaves its item pending for the next round; every other
 * reply is handed to take().
 */
typedef struct batch {
    size_t n;
    const char *op; /* "load" or "flush", for messages */
    int (*append_item)(tl_store *s, tl_store_node *k, size_t i, void *ud);
    /* Owns r.  Returns TL_OK, TL_ERR (message in msg) or TL_ERR_IO when the
     * node cannot serve now (msg too): it is dropped after the round. */
    int (*take)(tl_store *s, tl_store_node *k, size_t i, redisReply *r,
                void *ud, char *msg, size_t msgsz);
    void *ud;
} batch;

/* Keeps the message that matters most: the first one, unless a later one
 * is an I/O failure (what the caller acts on) and the first one is not. */
static void merge(int *rc, int code, const char *msg, char *err, size_t errsz)
{
    if (code == TL_OK) return;
    if (*rc == TL_OK || (code == TL_ERR_IO && *rc != TL_ERR_IO)) {
        *rc = code;
        if (err && errsz) snprintf(err, errsz, "%s", msg);
    }
}

/* Reads the replies of node k for this round.  Returns TL_OK, or the
 * merged failure; *again is set when an item stays pending. */
static int read_node(tl_store *s, const batch *b, uint16_t ki, int *again,
                     int *tryagain, char *err, size_t errsz)
{
    tl_store_node *k = s->nodes[ki];
    char msg[TL_ERRSZ];
    int rc = TL_OK;
    redisReply *r = NULL;
    if (k->loaded) {
        if (redisGetReply(k->c, (void **)&r) != REDIS_OK || !r)
            goto io;
        merge(&rc, take_sha(s, k, r, msg, sizeof msg), msg, err, errsz);
        freeReplyObject(r);
    }
    for (size_t i = 0; i < b->n; i++) {
        if (!(s->flags[i] & ITEM_PENDING) || s->route[i] != ki) continue;
        if (s->flags[i] & ITEM_ASKING) {
            /* ASKING's +OK; its error would show again on the command. */
            if (redisGetReply(k->c, (void **)&r) != REDIS_OK || !r) goto io;
            freeReplyObject(r);
            s->flags[i] &= (unsigned char)~ITEM_ASKING;
        }
        if (redisGetReply(k->c, (void **)&r) != REDIS_OK || !r) goto io;
        if (s->slots && tl_store_cluster_redirected(s, k, i, r, tryagain)) {
            *again = 1;
            freeReplyObject(r);
            continue;
        }
        if (tl_store_reply_is(r, "NOSCRIPT") && !k->loaded) {
            /* The script cache was emptied under us (SCRIPT FLUSH by an
             * operator, or a failover to a server that never saw our
             * SCRIPT LOAD): load it again there, then retry. */
            k->reload = 1;
            *again = 1;
            freeReplyObject(r);
            continue;
        }
        s->flags[i] &= (unsigned char)~ITEM_PENDING;
        int code = b->take(s, k, i, r, b->ud, msg, sizeof msg);
        if (code == TL_ERR_IO) k->broken = 1;
        merge(&rc, code, msg, err, errsz);
    }
    return rc;

io:
    tl_store_io_fail(s, k, b->op, msg, sizeof msg);
    merge(&rc, TL_ERR_IO, msg, err, errsz);
    return rc;
}

/* Writes k's whole output buffer: the commands of every node are sent
 * before any reply is awaited, so the nodes work in parallel. */
static int write_node(redisContext *c)
{
    int done = 0;
    do {
        if (redisBufferWrite(c, &done) != REDIS_OK) return -1;
    } while (!done);
    return 0;
}

/* Runs a batch whose items are all ITEM_PENDING (and, in a cluster, have
 * their kslot).  Items still pending at the end got no usable reply. */
static int run_batch(tl_store *s, const batch *b, char *err, size_t errsz)
{
    char msg[TL_ERRSZ];
    int rc = TL_OK;
    for (int round = 0;; round++) {
        int code = s->slots ? tl_store_cluster_route(s, b->n, b->op, round,
                                                     msg, sizeof msg)
                            : TL_OK;
        if (code != TL_OK) {
            merge(&rc, code, msg, err, errsz);
            return rc;
        }
        for (size_t j = 0; j < s->nnodes; j++) s->nodes[j]->sent = 0;
        for (size_t i = 0; i < b->n; i++) {
            if (!(s->flags[i] & ITEM_PENDING)) continue;
            tl_store_node *k = s->nodes[s->route[i]];
            if (!k->c &&
                (code = tl_store_connect(s, k, msg, sizeof msg)) != TL_OK) {
                if (s->slots) s->map_stale = 1;
                merge(&rc, code, msg, err, errsz);
                goto abandon;
            }
            if (k->sent == 0 && k->reload) {
                if (append_script_load(s, k) != 0) goto append_failed;
                k->loaded = 1;
                k->reload = 0;
            }
            if (s->flags[i] & ITEM_ASKING) {
                const char *argv[] = {"ASKING"};
                const size_t lens[] = {6};
                if (tl_store_append(s, k, 1, argv, lens) != 0)
                    goto append_failed;
            }
            if (b->append_item(s, k, i, b->ud) != 0) goto append_failed;
            continue;
        append_failed:
            tl_store_io_fail(s, k, b->op, msg, sizeof msg);
            merge(&rc, TL_ERR_IO, msg, err, errsz);
            goto abandon;
        }
        int again = 0, tryagain = 0;
        for (size_t j = 0; j < s->nnodes; j++) {
            tl_store_node *k = s->nodes[j];
            if (!k->sent) continue;
            s->round_trips++;
            if (write_node(k->c) != 0) {
                k->sent = 0;
                tl_store_io_fail(s, k, b->op, msg, sizeof msg);
                merge(&rc, TL_ERR_IO, msg, err, errsz);
            }
        }
        for (size_t j = 0; j < s->nnodes; j++) {
            tl_store_node *k = s->nodes[j];
            if (!k->sent) continue;
            merge(&rc, read_node(s, b, (uint16_t)j, &again, &tryagain, msg,
                                 sizeof msg),
                  msg, err, errsz);
            k->loaded = 0;
            k->sent = 0;
            if (k->broken) {
                k->broken = 0;
                drop(k);
                if (s->slots) s->map_stale = 1;
            }
        }
        if (rc == TL_ERR_IO || !again) return rc;
        if (round + 1 >= MAX_ROUNDS) {
            merge(&rc, tl_errf(msg, sizeof msg, TL_ERR_IO,
                               "%s: %s: still redirected after %d rounds "
                               "(slots moving?); will retry",
                               s->where, b->op, MAX_ROUNDS),
                  msg, err, errsz);
            return rc;
        }
        if (tryagain) tl_sleep_ms(TRYAGAIN_SLEEP_MS);
    }

abandon:
    /* Commands were appended to some connections but will not be read:
     * those connections are out of step, so drop them. */
    for (size_t j = 0; j < s->nnodes; j++) {
        tl_store_node *k = s->nodes[j];
        if (k->sent) drop(k);
        k->sent = 0;
        k->loaded = 0;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */
/* ------------------------------------------------------------------------ */

tl_store *tl_store_new(const char *url, int timeout_ms, char *err,
                       size_t errsz)
{
    tl_store *s = tl_store_new_lazy(url, timeout_ms, err, errsz);
    if (!s) return NULL;
    tl_store_guard g;
    tl_store_guard_begin(&g);
    int rc = s->slots ? tl_store_cluster_refresh(s, err, errsz)
                      : tl_store_connect(s, s->nodes[0], err, errsz);
    tl_store_guard_end(&g);
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
    if (s->url.cluster) {
        tl_store_cluster_init(s);
        return s;
    }
    tl_store_node *k = tl_xcalloc(1, sizeof *k);
    s->nodes = tl_xmalloc(sizeof *s->nodes);
    s->nodes[0] = k;
    s->nnodes = 1;
    if (s->url.unix_path)
        snprintf(k->where, sizeof k->where, "redis unix:%s", s->url.unix_path);
    else
        tl_store_node_where(k, s->url.host, s->url.port);
    memcpy(s->where, k->where, sizeof s->where);
    return s;

fail:
    tl_store_free(s);
    return NULL;
}

void tl_store_free(tl_store *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nnodes; i++) {
        drop(s->nodes[i]);
        free(s->nodes[i]->host);
        free(s->nodes[i]);
    }
    free(s->nodes);
    free(s->slots);
    tl_redis_url_clear(&s->url);
    free(s->argv);
    free(s->argvlen);
    free(s->nums);
    free(s->resp);
    free(s->replies);
    free(s->route);
    free(s->kslot);
    free(s->flags);
    free(s);
}

uint64_t tl_store_round_trips(const tl_store *s) { return s->round_trips; }
uint64_t tl_store_commands(const tl_store *s) { return s->commands; }
uint64_t tl_store_restarts(const tl_store *s)
{
    return atomic_load_explicit(&s->restarts, memory_order_relaxed);
}

/* One command on node k (connected first if need be), its reply in *out
 * (the caller frees it): TL_OK, or TL_ERR_IO / TL_ERR_AUTH with err. */
int tl_store_command_node(tl_store *s, tl_store_node *k, int argc,
                          const char **argv, const size_t *lens,
                          redisReply **out, char *err, size_t errsz)
{
    int rc = k->c ? TL_OK : tl_store_connect(s, k, err, errsz);
    if (rc != TL_OK) return rc;
    redisReply *r = NULL;
    if (tl_store_append(s, k, argc, argv, lens) != 0) {
        k->sent = 0;
        return tl_store_io_fail(s, k, argv[0], err, errsz);
    }
    k->sent = 0;
    s->round_trips++;
    if (redisGetReply(k->c, (void **)&r) != REDIS_OK || !r)
        return tl_store_io_fail(s, k, argv[0], err, errsz);
    *out = r;
    return TL_OK;
}

/* Marks items 0..n-1 pending (a single server: on its only node). */
static void start_items(tl_store *s, size_t n)
{
    grow_items(s, n);
    memset(s->flags, ITEM_PENDING, n);
    if (!s->slots) memset(s->route, 0, n * sizeof *s->route);
}

/* In a cluster, hashes the key of item i to its slot for routing. */
static void slot_item(tl_store *s, size_t i, const char *key, size_t len)
{
    if (s->slots) s->kslot[i] = (uint16_t)tl_store_cluster_key_slot(key, len);
}

void tl_store_hide_keys(tl_store *s) { s->hide_keys = 1; }

/* ------------------------------------------------------------------------ */
/* Delete                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct del_item {
    const char *key;
    size_t keylen;
    int existed;
} del_item;

static int del_append(tl_store *s, tl_store_node *k, size_t i, void *ud)
{
    (void)i;
    const del_item *d = ud;
    const char *argv[] = {"DEL", d->key};
    const size_t lens[] = {3, d->keylen};
    return tl_store_append(s, k, 2, argv, lens);
}

static int del_take(tl_store *s, tl_store_node *k, size_t i, redisReply *r,
                    void *ud, char *msg, size_t msgsz)
{
    (void)i;
    del_item *d = ud;
    char kb[80];
    int rc = TL_OK;
    if (r->type == REDIS_REPLY_INTEGER)
        d->existed = r->integer > 0;
    else if (r->type == REDIS_REPLY_ERROR)
        rc = tl_errf(msg, msgsz, tl_store_reply_transient(r) ? TL_ERR_IO : TL_ERR,
                     "%s: DEL %s: %s%s", k->where,
                     show_key(s, kb, d->key, d->keylen), r->str, tl_store_reply_hint(r));
    else
        rc = tl_errf(msg, msgsz, TL_ERR, "%s: DEL %s: unexpected reply type %d",
                     k->where, show_key(s, kb, d->key, d->keylen), r->type);
    freeReplyObject(r);
    return rc;
}

/* Through the batch engine, so that a cluster routes it and follows its
 * redirects like any load or flush. */
int tl_store_delete(tl_store *s, const char *key, size_t keylen, int *existed,
                    char *err, size_t errsz)
{
    tl_store_guard g;
    tl_store_guard_begin(&g);
    start_items(s, 1);
    slot_item(s, 0, key, keylen);
    del_item d = {key, keylen, 0};
    batch b = {1, "DEL", del_append, del_take, &d};
    int rc = run_batch(s, &b, err, errsz);
    if (rc == TL_OK && (s->flags[0] & ITEM_PENDING))
        rc = tl_errf(err, errsz, TL_ERR_IO, "%s: DEL: no reply", s->where);
    if (rc == TL_OK && existed) *existed = d.existed;
    tl_store_guard_end(&g);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Load                                                                     */
/* ------------------------------------------------------------------------ */

/* Checks one HGETALL reply: TL_ERR for a wrong reply (this key's own
 * error), TL_ERR_IO for an error reply meaning "not now" (the caller then
 * drops the connection).  Messages say "load of KEY: ", not the command,
 * so that tl_store_reply_cause finds the error's code as the first upper-case
 * word after ": ". */
static int check_hgetall(const tl_store *s, const tl_store_node *k,
                         const redisReply *r, const char *key, size_t keylen,
                         char *err, size_t errsz)
{
    char kb[80];
    if (r->type == REDIS_REPLY_ERROR && tl_store_reply_transient(r))
        return tl_errf(err, errsz, TL_ERR_IO,
                       "%s: load of %s: %s%s (will reconnect on the next "
                       "call)",
                       k->where, show_key(s, kb, key, keylen), r->str,
                       tl_store_reply_hint(r));
    if (r->type == REDIS_REPLY_ERROR)
        return tl_errf(err, errsz, TL_ERR, "%s: load of %s: %s", k->where,
                       show_key(s, kb, key, keylen), r->str);
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
        return tl_errf(err, errsz, TL_ERR,
                       "%s: load of %s: unexpected reply to HGETALL (type "
                       "%d, %zu elements)",
                       k->where, show_key(s, kb, key, keylen), r->type,
                       r->elements);
    for (size_t j = 0; j < r->elements; j++)
        if (r->element[j]->type != REDIS_REPLY_STRING)
            return tl_errf(err, errsz, TL_ERR,
                           "%s: load of %s: element %zu of HGETALL's reply "
                           "is not a string",
                           k->where, show_key(s, kb, key, keylen), j);
    return TL_OK;
}

typedef struct load_batch {
    const char *const *keys;
    const size_t *keylens;
    tl_store_key_error_cb kerr; /* NULL: a key's error fails the call */
} load_batch;

static int load_append(tl_store *s, tl_store_node *k, size_t i, void *ud)
{
    const load_batch *lb = ud;
    const char *argv[] = {"HGETALL", lb->keys[i]};
    const size_t lens[] = {7, lb->keylens[i]};
    return tl_store_append(s, k, 2, argv, lens);
}

/* The reply is kept for the callbacks; a key's own error is one of them
 * when the caller takes those (its message is made again then). */
static int load_take(tl_store *s, tl_store_node *k, size_t i, redisReply *r,
                     void *ud, char *msg, size_t msgsz)
{
    const load_batch *lb = ud;
    s->replies[i] = r;
    int rc = check_hgetall(s, k, r, lb->keys[i], lb->keylens[i], msg, msgsz);
    return rc == TL_ERR && lb->kerr ? TL_OK : rc;
}

/* Every reply arrived: each key's fields, or its error, to the caller. */
static void load_deliver(tl_store *s, const load_batch *lb, size_t n,
                         tl_store_field_cb cb, void *ud)
{
    for (size_t i = 0; i < n; i++) {
        const redisReply *r = s->replies[i];
        char msg[TL_ERRSZ];
        if (lb->kerr && check_hgetall(s, s->nodes[s->route[i]], r,
                                      lb->keys[i], lb->keylens[i], msg,
                                      sizeof msg) != TL_OK) {
            lb->kerr(ud, i, msg);
            continue;
        }
        for (size_t j = 0; j + 1 < r->elements; j += 2)
            cb(ud, i, r->element[j]->str, r->element[j]->len,
               r->element[j + 1]->str, r->element[j + 1]->len);
    }
}

/*
 * All replies are held until the last one has arrived and only then handed
 * to the callbacks, so a failed load calls back nothing: the caller never
 * sees half a batch.
 */
int tl_store_load(tl_store *s, const char *const *keys, const size_t *keylens,
                  size_t n, tl_store_field_cb cb, tl_store_key_error_cb kerr,
                  void *ud, char *err, size_t errsz)
{
    if (n == 0) return TL_OK;
    tl_store_guard g;
    tl_store_guard_begin(&g);
    start_items(s, n);
    memset(s->replies, 0, n * sizeof *s->replies);
    for (size_t i = 0; i < n; i++) slot_item(s, i, keys[i], keylens[i]);
    load_batch lb = {keys, keylens, kerr};
    batch b = {n, "load", load_append, load_take, &lb};
    int rc = run_batch(s, &b, err, errsz);
    if (rc == TL_OK) load_deliver(s, &lb, n, cb, ud);
    for (size_t i = 0; i < n; i++)
        if (s->replies[i]) freeReplyObject(s->replies[i]);
    tl_store_guard_end(&g);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Flush                                                                    */
/* ------------------------------------------------------------------------ */

static size_t write_argc(const tl_store_write *w)
{
    return 7 + 4 * w->nwm + w->ndels + 2 * w->nfields;
}

static void put_num(tl_store *s, size_t k, char **p, int64_t v)
{
    int len = tl_fmt_i64(*p, v);
    s->argv[k] = *p;
    s->argvlen[k] = (size_t)len;
    *p += len;
}

/* Builds the EVALSHA of write i in the reused arrays and appends it; the
 * arguments are in the order tl_store_script reads them (store_script.c). */
static int flush_append(tl_store *s, tl_store_node *nd, size_t i, void *ud)
{
    const tl_store_write *w = (const tl_store_write *)ud + i;
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
    }
    for (size_t j = 0; j < w->ndels; j++)
        a[k] = w->dels[j], l[k++] = w->dlens[j];
    for (size_t j = 0; j < w->nfields; j++) {
        a[k] = w->fields[j], l[k++] = w->flens[j];
        a[k] = w->vals[j], l[k++] = w->vlens[j];
    }
    for (size_t j = 0; j < w->nwm; j++) {
        a[k] = w->wm[j].field, l[k++] = w->wm[j].flen;
        put_num(s, k++, &p, w->wm[j].next);
    }
    TL_ASSERT(k == argc);
    return tl_store_append(s, nd, (int)argc, a, l);
}

/* An error reply fails only its write (result TL_ERR), unless it says the
 * server cannot take writes now: then the node's connection is dropped and
 * the batch returns TL_ERR_IO like any I/O failure. */
static int flush_take(tl_store *s, tl_store_node *k, size_t i, redisReply *r,
                      void *ud, char *msg, size_t msgsz)
{
    tl_store_write *w = (tl_store_write *)ud + i;
    int rc = TL_OK;
    if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0 &&
        r->integer <= 2) {
        w->result = r->integer == 1   ? TL_OK
                    : r->integer == 2 ? TL_ERR_GONE
                                      : TL_ERR_FENCED;
    } else if (tl_store_reply_is(r, "NOSCRIPT")) {
        w->result = TL_ERR;
        rc = tl_errf(msg, msgsz, TL_ERR,
                     "%s: flush: NOSCRIPT again right after SCRIPT LOAD; is "
                     "something flushing the script cache?",
                     k->where);
    } else {
        char kb[80];
        int transient = r->type == REDIS_REPLY_ERROR && tl_store_reply_transient(r);
        w->result = TL_ERR;
        rc = tl_errf(msg, msgsz, transient ? TL_ERR_IO : TL_ERR,
                     "%s: flush of %s: %s%s%s", k->where,
                     show_key(s, kb, w->key, w->keylen),
                     r->type == REDIS_REPLY_ERROR
                         ? r->str
                         : "unexpected reply from the flush script",
                     tl_store_reply_hint(r),
                     transient ? " (will reconnect on the next call)" : "");
    }
    freeReplyObject(r);
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
    tl_store_guard g;
    tl_store_guard_begin(&g);
    start_items(s, n);
    for (size_t i = 0; i < n; i++) slot_item(s, i, w[i].key, w[i].keylen);
    batch b = {n, "flush", flush_append, flush_take, w};
    int rc = run_batch(s, &b, err, errsz);
    /* Writes whose reply never came: unknown, which the caller must treat
     * as failed (and retry: the watermark makes that safe). */
    for (size_t i = 0; i < n; i++)
        if (w[i].result == RESULT_PENDING)
            w[i].result = rc == TL_ERR_IO ? TL_ERR_IO : TL_ERR;
    tl_store_guard_end(&g);
    return rc;
}
