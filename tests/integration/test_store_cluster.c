/*
 * Integration tests of lib/store against a real, private Redis Cluster of
 * three masters (tests/support/redis_server: three cluster-enabled
 * redis-servers joined by redis-cli --cluster create): key slots equal the
 * server's CLUSTER KEYSLOT, routing of pipelined loads and flushes to the
 * owners (one round trip per node), MOVED after a slot moved by hand, ASK
 * while a slot is half migrated, NOSCRIPT on one node, a node killed and
 * restarted, AUTH on every node, and the URL and mode errors.
 *
 * The cluster belongs to the suite and is stopped (by pid) in its cleanup.
 */
#include "../support/redis_server.h"
#include "../support/testutil.h"
#include "redis_url.h"
#include "store.h"
#include "vec.h"

#include <CUnit/Basic.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_MS 3000
#define NODES 3

static tl_redis_cluster *cl;
static tl_store *st;

static int suite_init(void)
{
    char err[TL_ERRSZ];
    cl = tl_redis_cluster_start(NODES, err, sizeof err);
    if (!cl) {
        fprintf(stderr, "cluster start: %s\n", err);
        return 1;
    }
    st = tl_store_new(cl->url, TIMEOUT_MS, err, sizeof err);
    if (!st) fprintf(stderr, "tl_store_new(%s): %s\n", cl->url, err);
    return st ? 0 : 1;
}

static int suite_clean(void)
{
    tl_store_free(st);
    tl_redis_cluster_stop(cl);
    return 0;
}

/* A command on node i; the reply (caller frees) or NULL. */
static redisReply *on(size_t i, const char *fmt, ...)
{
    redisContext *c = tl_redis_cluster_connect(cl, i);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static void on_ok(size_t i, const char *fmt, ...)
{
    redisContext *c = tl_redis_cluster_connect(cl, i);
    CU_ASSERT_FATAL(c && !c->err);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r || r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "node %zu: %s: %s\n", i, fmt, r ? r->str : c->errstr);
    CU_ASSERT(r && r->type != REDIS_REPLY_ERROR);
    if (r) freeReplyObject(r);
    redisFree(c);
}

/* A command on node i after ASKING (what an importing node needs to
 * answer for a key of its slot). */
static redisReply *on_asking(size_t i, const char *fmt, const char *key)
{
    redisContext *c = tl_redis_cluster_connect(cl, i);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    redisReply *r = redisCommand(c, "ASKING");
    if (r) freeReplyObject(r);
    r = redisCommand(c, fmt, key);
    redisFree(c);
    return r;
}

static char *node_id(size_t i)
{
    char *id = tl_redis_cluster_node_id(cl, i);
    CU_ASSERT_FATAL(id != NULL);
    return id;
}

static int slot_of(const char *key)
{
    return (int)tl_store_cluster_key_slot(key, strlen(key));
}

/* One conditional write: watermark _o:in:0 from `expected` to `next`, and
 * field v = val. */
typedef struct wfix {
    tl_store_write w;
    tl_store_wm wm;
    const char *f[1], *v[1];
    size_t fl[1], vl[1];
} wfix;

static void wfix_set(wfix *x, const char *key, int64_t expected, int64_t next,
                     const char *val)
{
    memset(x, 0, sizeof *x);
    x->wm = (tl_store_wm){"_o:in:0", 7, expected, next};
    x->f[0] = "v", x->fl[0] = 1;
    x->v[0] = val, x->vl[0] = strlen(val);
    x->w = (tl_store_write){.key = key, .keylen = strlen(key), .wm = &x->wm,
                            .nwm = 1, .fields = x->f, .flens = x->fl,
                            .vals = x->v, .vlens = x->vl, .nfields = 1};
}

/* n writes of keys printf(fmt, i), each from `expected` to `next`; names
 * and fixtures are the caller's arrays. */
static void fill_batch(char (*names)[32], wfix *x, tl_store_write *w, int n,
                       const char *fmt, int64_t expected, int64_t next,
                       const char *val)
{
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], fmt, i);
        wfix_set(&x[i], names[i], expected, next, val);
        w[i] = x[i].w;
        w[i].wm = &x[i].wm;
    }
}

/* Flushes w (asserting TL_OK) and returns its round trips.  A PING first
 * connects every master and reads a fresh map, so that neither handshakes
 * nor a map refresh count. */
static uint64_t flush_round_trips(tl_store_write *w, size_t n)
{
    char err[TL_ERRSZ] = "";
    CU_ASSERT_EQUAL(tl_store_ping(st, err, sizeof err), TL_OK);
    uint64_t rt = tl_store_round_trips(st);
    int rc = tl_store_flush(st, w, n, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CU_ASSERT_EQUAL(rc, TL_OK);
    return tl_store_round_trips(st) - rt;
}

static int flush1(const char *key, int64_t expected, int64_t next,
                  const char *val, char *err, size_t errsz)
{
    wfix x;
    wfix_set(&x, key, expected, next, val);
    int rc = tl_store_flush(st, &x.w, 1, err, errsz);
    if (rc != TL_OK) fprintf(stderr, "flush %s: %s\n", key, err);
    return rc == TL_OK ? x.w.result : rc;
}

typedef struct got {
    char v[8][64];
} got;

static void load_cb(void *ud, size_t idx, const char *field, size_t flen,
                    const char *val, size_t vlen)
{
    got *g = ud;
    if (flen == 1 && field[0] == 'v' && idx < 8)
        snprintf(g->v[idx], sizeof g->v[idx], "%.*s", (int)vlen, val);
}

/* Loads one key through the store; its field v ("" when absent). */
static int load1(const char *key, char *out, size_t outsz)
{
    got g;
    memset(&g, 0, sizeof g);
    const char *keys[] = {key};
    size_t lens[] = {strlen(key)};
    char err[TL_ERRSZ];
    int rc = tl_store_load(st, keys, lens, 1, load_cb, NULL, &g, err, sizeof err);
    if (rc != TL_OK) fprintf(stderr, "load %s: %s\n", key, err);
    snprintf(out, outsz, "%s", g.v[0]);
    return rc;
}

/* The value of field v of key, read on the node that owns it. */
static char *owner_v(const char *key)
{
    int o = tl_redis_cluster_owner(cl, key);
    if (o < 0) return strdup("(no owner)");
    redisReply *r = on((size_t)o, "HGET %s v", key);
    char *v = strdup(r && r->type == REDIS_REPLY_STRING ? r->str : "(nil)");
    if (r) freeReplyObject(r);
    return v;
}

#define ASSERT_OWNER_V(key, want)                                            \
    do {                                                                     \
        char *v_ = owner_v(key);                                             \
        if (strcmp(v_, want))                                                \
            fprintf(stderr, "%s: v = %s, want %s\n", key, v_, want);         \
        CU_ASSERT_STRING_EQUAL(v_, want);                                    \
        free(v_);                                                            \
    } while (0)

/* ------------------------------------------------------------------------ */

static void test_key_slot(void)
{
    static const char *const keys[] = {
        "", "a", "foo", "bar", "123456789", "tailor:cx:{C-0001}",
        "{user1000}.following", "{user1000}.followers", "foo{}{bar}",
        "foo{{bar}}zap", "foo{bar}{zap}", "{", "}", "{}", "x{y", "x}y{z}",
        "t:cx:{\xc3\xa9t\xc3\xa9}"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        redisReply *r = on(0, "CLUSTER KEYSLOT %b", keys[i], strlen(keys[i]));
        CU_ASSERT_FATAL(r && r->type == REDIS_REPLY_INTEGER);
        if ((unsigned)r->integer != tl_store_cluster_key_slot(keys[i], strlen(keys[i])))
            fprintf(stderr, "slot of \"%s\": %u, server %lld\n", keys[i],
                    tl_store_cluster_key_slot(keys[i], strlen(keys[i])), r->integer);
        CU_ASSERT_EQUAL(tl_store_cluster_key_slot(keys[i], strlen(keys[i])),
                        (unsigned)r->integer);
        freeReplyObject(r);
    }
    /* The spec's check value, and 1000 generated keys. */
    CU_ASSERT_EQUAL(tl_store_cluster_key_slot("123456789", 9), 0x31C3 & 16383);
    for (int i = 0; i < 1000; i++) {
        char key[64];
        snprintf(key, sizeof key, "p:cx:{c%d-%x}", i, i * 7919);
        redisReply *r = on(0, "CLUSTER KEYSLOT %s", key);
        CU_ASSERT_FATAL(r && r->type == REDIS_REPLY_INTEGER);
        CU_ASSERT_EQUAL(tl_store_cluster_key_slot(key, strlen(key)),
                        (unsigned)r->integer);
        freeReplyObject(r);
    }
}

/* 300 customers over three masters: each write lands on its slot's owner,
 * one round trip per node; the load reads them all back. */
static void test_routing(void)
{
    enum { N = 300 };
    static char names[N][32];
    static wfix x[N];
    tl_store_write w[N];
    int per_node[NODES] = {0};
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "r:cx:{cust-%d}", i);
        char val[16];
        snprintf(val, sizeof val, "%d", i * 3);
        wfix_set(&x[i], names[i], -1, 1, strdup(val));
        w[i] = x[i].w;
        w[i].wm = &x[i].wm;
        per_node[tl_redis_cluster_owner(cl, names[i])]++;
    }
    for (int j = 0; j < NODES; j++) CU_ASSERT(per_node[j] > 50);
    /* One pipeline per master. */
    CU_ASSERT_EQUAL(flush_round_trips(w, N), NODES);
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(w[i].result, TL_OK);
        ASSERT_OWNER_V(names[i], x[i].v[0]);
        free((char *)x[i].v[0]);
    }

}

static int loaded_ok;
static void count_cb(void *ud, size_t idx, const char *field, size_t flen,
                     const char *val, size_t vlen)
{
    (void)ud;
    char want[16];
    snprintf(want, sizeof want, "%zu", idx * 3);
    if (flen == 1 && field[0] == 'v' && vlen == strlen(want) &&
        !memcmp(val, want, vlen))
        loaded_ok++;
}

static void test_routing_load(void)
{
    enum { N = 300 };
    static char names[N][32];
    const char *keys[N];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "r:cx:{cust-%d}", i);
        keys[i] = names[i];
        lens[i] = strlen(names[i]);
    }
    char err[TL_ERRSZ] = "";
    loaded_ok = 0;
    uint64_t rt = tl_store_round_trips(st);
    int rc = tl_store_load(st, keys, lens, N, count_cb, NULL, NULL, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CU_ASSERT_EQUAL(rc, TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(st) - rt, NODES);
    CU_ASSERT_EQUAL(loaded_ok, N);
}

/* Moves `slot` from node `from` to node `to` as redis-cli does, by hand:
 * IMPORTING on the target, MIGRATING on the source, MIGRATE every key,
 * then SETSLOT NODE everywhere.  With finish = 0 it stops after migrating
 * only the keys in `only` (NULL: none), leaving the slot half migrated. */
static void move_slot(int slot, size_t from, size_t to, int finish,
                      const char *only)
{
    char *fid = node_id(from), *tid = node_id(to);
    on_ok(to, "CLUSTER SETSLOT %d IMPORTING %s", slot, fid);
    on_ok(from, "CLUSTER SETSLOT %d MIGRATING %s", slot, tid);
    if (only) {
        on_ok(from, "MIGRATE 127.0.0.1 %d %s 0 5000", cl->node[to]->port,
              only);
    } else {
        redisReply *r = on(from, "CLUSTER GETKEYSINSLOT %d 1000", slot);
        CU_ASSERT_FATAL(r && r->type == REDIS_REPLY_ARRAY);
        for (size_t i = 0; i < r->elements; i++)
            on_ok(from, "MIGRATE 127.0.0.1 %d %s 0 5000", cl->node[to]->port,
                  r->element[i]->str);
        freeReplyObject(r);
    }
    if (finish)
        for (size_t i = 0; i < NODES; i++)
            on_ok(i, "CLUSTER SETSLOT %d NODE %s", slot, tid);
    free(fid);
    free(tid);
}

/* The store's map still says `from`: the first command gets MOVED, follows
 * it, and the next call has a fresh map. */
static void test_moved(void)
{
    const char *key = "m:cx:{moved}";
    char err[TL_ERRSZ], v[64];
    CU_ASSERT_EQUAL(flush1(key, -1, 1, "before", err, sizeof err), TL_OK);
    int from = tl_redis_cluster_owner(cl, key);
    CU_ASSERT_FATAL(from >= 0);
    size_t to = ((size_t)from + 1) % NODES;
    move_slot(slot_of(key), (size_t)from, to, 1, NULL);
    CU_ASSERT_EQUAL(tl_redis_cluster_owner(cl, key), (int)to);

    uint64_t rt = tl_store_round_trips(st);
    CU_ASSERT_EQUAL(load1(key, v, sizeof v), TL_OK);
    CU_ASSERT_STRING_EQUAL(v, "before");
    /* HGETALL on the old owner (MOVED), then on the new one. */
    CU_ASSERT(tl_store_round_trips(st) - rt >= 2);

    CU_ASSERT_EQUAL(flush1(key, 1, 2, "after", err, sizeof err), TL_OK);
    ASSERT_OWNER_V(key, "after");
    /* The map was refreshed: one round trip now. */
    rt = tl_store_round_trips(st);
    CU_ASSERT_EQUAL(load1(key, v, sizeof v), TL_OK);
    CU_ASSERT_STRING_EQUAL(v, "after");
    CU_ASSERT_EQUAL(tl_store_round_trips(st) - rt, 1);
}

/* A slot half migrated: a key already moved is answered with ASK by the
 * source and served by the target after ASKING; a key still at the source
 * is served there; a new key goes to the target.  Then the migration
 * finishes and everything is where it should be. */
static void test_ask(void)
{
    const char *moved = "a:cx:{ask}", *stays = "a:xx:{ask}",
               *fresh = "a:new:{ask}";
    char err[TL_ERRSZ], v[64];
    CU_ASSERT_EQUAL(flush1(moved, -1, 1, "m1", err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(flush1(stays, -1, 1, "s1", err, sizeof err), TL_OK);
    int from = tl_redis_cluster_owner(cl, moved);
    CU_ASSERT_FATAL(from >= 0);
    size_t to = ((size_t)from + 1) % NODES;
    int slot = slot_of(moved);
    move_slot(slot, (size_t)from, to, 0, moved);

    /* The source no longer has it: it must say ASK (checked directly). */
    redisReply *r = on((size_t)from, "HGETALL %s", moved);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT(r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "ASK ", 4));
    freeReplyObject(r);

    CU_ASSERT_EQUAL(load1(moved, v, sizeof v), TL_OK);
    CU_ASSERT_STRING_EQUAL(v, "m1");
    CU_ASSERT_EQUAL(load1(stays, v, sizeof v), TL_OK);
    CU_ASSERT_STRING_EQUAL(v, "s1");
    CU_ASSERT_EQUAL(flush1(moved, 1, 2, "m2", err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(flush1(stays, 1, 2, "s2", err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(flush1(fresh, -1, 1, "f1", err, sizeof err), TL_OK);
    /* A fenced write through ASK stays fenced. */
    CU_ASSERT_EQUAL(flush1(moved, 0, 5, "zombie", err, sizeof err),
                    TL_ERR_FENCED);

    /* Where the data is, mid-migration. */
    r = on_asking(to, "HGET %s v", moved);
    CU_ASSERT(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "m2"));
    if (r) freeReplyObject(r);
    r = on((size_t)from, "HGET %s v", stays);
    CU_ASSERT(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "s2"));
    if (r) freeReplyObject(r);
    r = on_asking(to, "HGET %s v", fresh);
    CU_ASSERT(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "f1"));
    if (r) freeReplyObject(r);

    /* Finish: the remaining keys, then the slot's new owner everywhere. */
    move_slot(slot, (size_t)from, to, 1, NULL);
    CU_ASSERT_EQUAL(tl_redis_cluster_owner(cl, moved), (int)to);
    ASSERT_OWNER_V(moved, "m2");
    ASSERT_OWNER_V(stays, "s2");
    CU_ASSERT_EQUAL(load1(fresh, v, sizeof v), TL_OK);
    CU_ASSERT_STRING_EQUAL(v, "f1");
}

/* One node forgot the script: writes there are retried after SCRIPT LOAD
 * on that node only; the others answer in the first round. */
static void test_noscript_one_node(void)
{
    enum { N = 30 };
    static char names[N][32];
    static wfix x[N];
    tl_store_write w[N];
    on_ok(1, "SCRIPT FLUSH");
    fill_batch(names, x, w, N, "n:cx:{ns-%d}", -1, 1, "ns");
    /* Three pipelines, then SCRIPT LOAD + the retries on node 1. */
    CU_ASSERT_EQUAL(flush_round_trips(w, N), NODES + 1);
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(w[i].result, TL_OK);
        ASSERT_OWNER_V(names[i], "ns");
    }
}

/* A master killed: writes to its slots fail with TL_ERR_IO naming it (the
 * others still apply); once it is back, the next call reconnects. */
static void test_node_restart(void)
{
    enum { N = 60 };
    static char names[N][32];
    static wfix x[N];
    tl_store_write w[N];
    fill_batch(names, x, w, N, "k:cx:{kill-%d}", -1, 1, "one");
    char err[TL_ERRSZ] = "";
    CU_ASSERT_EQUAL(tl_store_flush(st, w, N, err, sizeof err), TL_OK);

    tl_redis_server_kill(cl->node[2]);
    fill_batch(names, x, w, N, "k:cx:{kill-%d}", 1, 2, "two");
    int rc = tl_store_flush(st, w, N, err, sizeof err);
    CU_ASSERT_EQUAL(rc, TL_ERR_IO);
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", cl->node[2]->port);
    if (!strstr(err, where)) fprintf(stderr, "no %s in: %s\n", where, err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, where));
    int failed = 0, applied = 0;
    for (int i = 0; i < N; i++) {
        if (w[i].result == TL_ERR_IO) failed++;
        if (w[i].result == TL_OK) applied++;
    }
    CU_ASSERT(failed > 0);
    CU_ASSERT_EQUAL(failed + applied, N);

    char e2[TL_ERRSZ];
    CU_ASSERT_EQUAL_FATAL(tl_redis_server_restart(cl->node[2], e2, sizeof e2),
                          0);
    CU_ASSERT_EQUAL_FATAL(tl_redis_cluster_wait_ok(cl, 30000, e2, sizeof e2),
                          0);
    /* The restarted node persisted nothing but its nodes.conf: its keys
     * start over (watermark absent), the others expect 2. */
    for (int i = 0; i < N; i++) {
        int lost = tl_redis_cluster_owner(cl, names[i]) == 2;
        wfix_set(&x[i], names[i], lost ? -1 : 1, 2, "two");
        w[i] = x[i].w;
        w[i].wm = &x[i].wm;
    }
    rc = tl_store_flush(st, w, N, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CU_ASSERT_EQUAL(rc, TL_OK);
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(w[i].result, TL_OK);
        ASSERT_OWNER_V(names[i], "two");
    }
}

static void test_errors(void)
{
    char err[TL_ERRSZ] = "";
    tl_redis_url u;
    CU_ASSERT_EQUAL(tl_redis_url_parse("redis-cluster://h1:7000,[::1]:7001,h3",
                                       &u, err, sizeof err), TL_OK);
    CU_ASSERT(u.cluster);
    CU_ASSERT_EQUAL(u.nseeds, 3);
    if (u.nseeds == 3) {
        CU_ASSERT_STRING_EQUAL(u.seed_hosts[1], "::1");
        CU_ASSERT_EQUAL(u.seed_ports[1], 7001);
        CU_ASSERT_EQUAL(u.seed_ports[2], 6379);
    }
    tl_redis_url_clear(&u);
    CU_ASSERT_EQUAL(tl_redis_url_parse("redis-cluster://u:secret@h1:7000,:7001",
                                       &u, err, sizeof err), TL_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err,
        "redis URL \"redis-cluster://u:***@h1:7000,:7001\": host is missing; "
        "expected redis-cluster://[[user]:password@]host[:port][,host[:port]...]");
    CU_ASSERT_EQUAL(tl_redis_url_parse("redis-cluster://h1:7000/2", &u, err,
                                       sizeof err), TL_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Redis Cluster has only database 0"));

    /* A single server behind a redis-cluster:// URL: a configuration error
     * (TL_ERR_AUTH: tailord stops at start), not a wait. */
    tl_redis_server *single = tl_redis_server_start(NULL, err, sizeof err);
    CU_ASSERT_FATAL(single != NULL);
    char url[128];
    snprintf(url, sizeof url, "redis-cluster://127.0.0.1:%d", single->port);
    tl_store *s = tl_store_new_lazy(url, TIMEOUT_MS, err, sizeof err);
    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT_EQUAL(tl_store_ping(s, err, sizeof err), TL_ERR_AUTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "use redis:// instead"));
    tl_store_free(s);
    tl_redis_server_stop(single);

    /* A cluster node behind a single-server URL: keys of other nodes' slots
     * are "not now" with a hint (retried), never refused writes. */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", cl->node[0]->port);
    s = tl_store_new(url, TIMEOUT_MS, err, sizeof err);
    CU_ASSERT_FATAL(s != NULL);
    char *keep_key = NULL;
    for (int i = 0; i < 100 && !keep_key; i++) {
        char key[32];
        snprintf(key, sizeof key, "w:cx:{%d}", i);
        if (tl_redis_cluster_owner(cl, key) != 0) keep_key = strdup(key);
    }
    CU_ASSERT_FATAL(keep_key != NULL);
    const char *ks[] = {keep_key};
    size_t kls[] = {strlen(keep_key)};
    CU_ASSERT_EQUAL(tl_store_load(s, ks, kls, 1, load_cb, NULL, &(got){{{0}}}, err,
                                  sizeof err), TL_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "MOVED"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "use a redis-cluster:// URL"));
    wfix x;
    wfix_set(&x, keep_key, -1, 1, "v");
    CU_ASSERT_EQUAL(tl_store_flush(s, &x.w, 1, err, sizeof err), TL_ERR_IO);
    CU_ASSERT_EQUAL(x.w.result, TL_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "use a redis-cluster:// URL"));
    free(keep_key);
    tl_store_free(s);

    /* No seed answers. */
    snprintf(url, sizeof url, "redis-cluster://127.0.0.1:%d,127.0.0.1:%d",
             tl_test_free_port(), tl_test_free_port());
    CU_ASSERT_PTR_NULL(tl_store_new(url, TIMEOUT_MS, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "connection refused"));

    /* A dead seed first, a live one second: the map comes from the second. */
    snprintf(url, sizeof url, "redis-cluster://127.0.0.1:%d,127.0.0.1:%d",
             tl_test_free_port(), cl->node[1]->port);
    s = tl_store_new(url, TIMEOUT_MS, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL(s);
    if (s) CU_ASSERT_EQUAL(tl_store_ping(s, err, sizeof err), TL_OK);
    tl_store_free(s);
}

/* requirepass on every node: the URL's credentials go to each. Last, since
 * it leaves the cluster password-protected. */
static void test_auth_every_node(void)
{
    for (size_t i = 0; i < NODES; i++)
        on_ok(i, "CONFIG SET requirepass s3cret");
    char err[TL_ERRSZ] = "", url[1100];
    const char *hosts = cl->url + strlen("redis-cluster://");
    snprintf(url, sizeof url, "redis-cluster://:s3cret@%s", hosts);
    tl_store *s = tl_store_new(url, TIMEOUT_MS, err, sizeof err);
    if (!s) fprintf(stderr, "%s\n", err);
    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT_EQUAL(tl_store_ping(s, err, sizeof err), TL_OK);
    tl_store *keep = st;
    st = s;
    char v[64];
    for (int i = 0; i < 20; i++) {
        char key[32];
        snprintf(key, sizeof key, "auth:cx:{%d}", i);
        CU_ASSERT_EQUAL(flush1(key, -1, 1, "pw", err, sizeof err), TL_OK);
        CU_ASSERT_EQUAL(load1(key, v, sizeof v), TL_OK);
        CU_ASSERT_STRING_EQUAL(v, "pw");
    }
    st = keep;
    tl_store_free(s);

    snprintf(url, sizeof url, "redis-cluster://:wrong@%s", hosts);
    s = tl_store_new_lazy(url, TIMEOUT_MS, err, sizeof err);
    CU_ASSERT_EQUAL(tl_store_ping(s, err, sizeof err), TL_ERR_AUTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "AUTH failed"));
    tl_store_free(s);
    s = tl_store_new_lazy(cl->url, TIMEOUT_MS, err, sizeof err);
    CU_ASSERT_EQUAL(tl_store_ping(s, err, sizeof err), TL_ERR_AUTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "requires a password"));
    tl_store_free(s);
}

/* Ids with a brace ("victim}1", ...) once hashed by their text before the
 * brace, all on one slot: through tl_vec_key they spread over the masters,
 * round-trip through the store, and sit under the documented key. */
static void test_brace_ids_spread(void)
{
    enum { N = 60 };
    static char ids[N][32];
    static wfix x[N];
    tl_store_write w[N];
    const char *keys[N];
    size_t lens[N];
    int per_node[NODES] = {0};
    tl_arena a;
    tl_arena_init(&a, 4096);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "victim}%d", i + 1);
        keys[i] = tl_vec_key(&a, "v:", ids[i], strlen(ids[i]), &lens[i]);
        redisReply *r = on(0, "CLUSTER KEYSLOT %b", keys[i], lens[i]);
        CU_ASSERT_FATAL(r && r->type == REDIS_REPLY_INTEGER);
        CU_ASSERT_EQUAL(tl_store_cluster_key_slot(keys[i], lens[i]),
                        (unsigned)r->integer);
        freeReplyObject(r);
        wfix_set(&x[i], keys[i], -1, 1, ids[i]);
        w[i] = x[i].w;
        w[i].wm = &x[i].wm;
        per_node[tl_redis_cluster_owner(cl, keys[i])]++;
    }
    for (int j = 0; j < NODES; j++) CU_ASSERT(per_node[j] >= 5);
    CU_ASSERT_EQUAL(flush_round_trips(w, N), NODES);
    got g[N / 8 + 1];
    memset(g, 0, sizeof g);
    char err[TL_ERRSZ];
    for (int i = 0; i < N; i += 8) {
        int n = N - i < 8 ? N - i : 8;
        CU_ASSERT_EQUAL(tl_store_load(st, keys + i, lens + i, (size_t)n,
                                      load_cb, NULL, &g[i / 8], err, sizeof err),
                        TL_OK);
        for (int k = 0; k < n; k++)
            CU_ASSERT_STRING_EQUAL(g[i / 8].v[k], ids[i + k]);
    }
    /* What the README tells redis-cli users to type. */
    ASSERT_OWNER_V("v:cx:%{victim%7D1}", "victim}1");
    ASSERT_OWNER_V("v:cx:%{victim%7D60}", "victim}60");
    tl_arena_free(&a);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("store_cluster", suite_init, suite_clean);
    CU_add_test(s, "key slots equal CLUSTER KEYSLOT", test_key_slot);
    CU_add_test(s, "flush routed to the owners, one round trip per node",
                test_routing);
    CU_add_test(s, "load routed to the owners, one round trip per node",
                test_routing_load);
    CU_add_test(s, "ids with braces spread over the masters",
                test_brace_ids_spread);
    CU_add_test(s, "MOVED after a slot moved by hand", test_moved);
    CU_add_test(s, "ASK while a slot is half migrated", test_ask);
    CU_add_test(s, "NOSCRIPT on one node", test_noscript_one_node);
    CU_add_test(s, "master killed and restarted", test_node_restart);
    CU_add_test(s, "URL and mode errors", test_errors);
    CU_add_test(s, "AUTH on every node", test_auth_every_node);
    return tl_test_run();
}
