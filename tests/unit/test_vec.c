/* Vectors: Redis key and field encoding round trip, watermarks, the cache. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "../support/testutil.h"
#include "cache.h"
#include "store.h"

#define DAY 86400000LL

static tl_feature feats[3];
static tl_rule rules[1];
static tl_layout layout;

static tl_expr *compile(const char *src, const tl_expr_scope *sc, tl_type want)
{
    size_t off;
    char err[256];
    return tl_expr_compile(src, strlen(src), sc, want, &off, err, sizeof err);
}

static int suite_init(void)
{
    char err[256];
    tl_expr_scope ev = {tl_event_resolve, NULL};
    memset(feats, 0, sizeof feats);
    memset(rules, 0, sizeof rules);
    feats[0] = (tl_feature){.name = strdup("visits"), .kind = TL_FK_COUNT};
    feats[1] = (tl_feature){.name = strdup("last_item"), .kind = TL_FK_LAST,
                            .field = compile("item", &ev, TL_T_NULL)};
    feats[2] = (tl_feature){.name = strdup("week"), .kind = TL_FK_WINDOW_COUNT,
                            .window_ms = 7 * DAY, .resolution_ms = DAY};
    for (int i = 0; i < 3; i++)
        if (tl_feature_finish(&feats[i], NULL, err, sizeof err)) return 1;
    size_t end = tl_features_layout(feats, 3, 0);
    tl_names names = {feats, 3};
    tl_expr_scope ns = TL_NAMES_SCOPE(&names);
    rules[0] = (tl_rule){.name = strdup("hello"), .cond = compile("visits > 1", &ns, TL_T_BOOL)};
    if (tl_rule_finish(&rules[0], err, sizeof err)) return 1;
    end = tl_rules_layout(rules, 1, end);
    layout = (tl_layout){feats, 3, rules, 1, end};
    return 0;
}

static int suite_clean(void)
{
    for (int i = 0; i < 3; i++) tl_feature_clear(&feats[i]);
    tl_rule_clear(&rules[0]);
    return 0;
}

static void feed(tl_vec *v, int64_t ts, const char *item)
{
    tl_event e;
    memset(&e, 0, sizeof e);
    e.event_id = "x";
    e.customer_id = v->customer_id;
    e.ts = ts;
    e.type = "visit";
    e.item = item;
    tl_vec_apply(v, &layout, &e);
    tl_eval_ctx ctx = {&e, feats, v->block};
    tl_rule_eval(&rules[0], v->block, &e, tl_eval_fetch, &ctx);
}

static const char *key_of(tl_arena *a, const char *id, size_t idlen,
                          size_t *len)
{
    return tl_vec_key(a, "tailor:", id, idlen, len);
}

#define ASSERT_KEY(id, want)                                                 \
    do {                                                                     \
        size_t len_;                                                         \
        const char *k_ = key_of(&a, id, strlen(id), &len_);                  \
        CU_ASSERT_STRING_EQUAL(k_, want);                                    \
        CU_ASSERT_EQUAL(len_, strlen(want));                                 \
    } while (0)

/* Ids without a brace keep today's key byte for byte (stored vectors of
 * existing deployments must be found), '%' and escape look-alikes too. */
static void test_key(void)
{
    tl_arena a;
    tl_arena_init(&a, 256);
    ASSERT_KEY("1453", "tailor:cx:{1453}");
    ASSERT_KEY("", "tailor:cx:{}");
    ASSERT_KEY("%", "tailor:cx:{%}");
    ASSERT_KEY("50%off", "tailor:cx:{50%off}");
    ASSERT_KEY("a%7Db", "tailor:cx:{a%7Db}");
    ASSERT_KEY("C-0001", "tailor:cx:{C-0001}");
    ASSERT_KEY("\xc3\xa9t\xc3\xa9", "tailor:cx:{\xc3\xa9t\xc3\xa9}");
    /* Bytes are bytes: a NUL inside an id stays in the key. */
    size_t len;
    const char *k = key_of(&a, "a\0b", 3, &len);
    CU_ASSERT_EQUAL(len, 15);
    CU_ASSERT(memcmp(k, "tailor:cx:{a\0b}", 15) == 0);
    k = tl_vec_key(&a, "", "x", 1, &len);
    CU_ASSERT_STRING_EQUAL(k, "cx:{x}");
    tl_arena_free(&a);
}

/* An id with a brace is escaped inside a marked tag, so that the tag holds
 * the whole id. */
static void test_key_braces(void)
{
    tl_arena a;
    tl_arena_init(&a, 256);
    ASSERT_KEY("victim}1", "tailor:cx:%{victim%7D1}");
    ASSERT_KEY("victim{1", "tailor:cx:%{victim%7B1}");
    ASSERT_KEY("{victim}", "tailor:cx:%{%7Bvictim%7D}");
    ASSERT_KEY("}", "tailor:cx:%{%7D}");
    ASSERT_KEY("{", "tailor:cx:%{%7B}");
    ASSERT_KEY("}{", "tailor:cx:%{%7D%7B}");
    ASSERT_KEY("a}b", "tailor:cx:%{a%7Db}");
    ASSERT_KEY("%{", "tailor:cx:%{%25%7B}");
    ASSERT_KEY("50%}", "tailor:cx:%{50%25%7D}");
    ASSERT_KEY("%7D}", "tailor:cx:%{%257D%7D}");
    ASSERT_KEY("{a%b}", "tailor:cx:%{%7Ba%25b%7D}"); /* README's example */
    tl_arena_free(&a);
}

/* Every id over an alphabet of the escape's own bytes, up to 4 long: no
 * two keys are equal, and each key's hash tag decodes back to its id. */
static void test_key_injective(void)
{
    static const char alpha[] = "a%{}7D";
    enum { K = 6, N = 1 + K + K * K + K * K * K + K * K * K * K };
    static char ids[N][5];
    static const char *keys[N];
    static size_t lens[N];
    size_t n = 0;
    for (int l = 0; l <= 4; l++) {
        int total = 1;
        for (int i = 0; i < l; i++) total *= K;
        for (int c = 0; c < total; c++, n++)
            for (int i = 0, x = c; i < l; i++, x /= K) ids[n][i] = alpha[x % K];
    }
    CU_ASSERT_EQUAL_FATAL(n, N);
    tl_arena a;
    tl_arena_init(&a, 4096);
    for (size_t i = 0; i < n; i++) {
        size_t il = strlen(ids[i]);
        keys[i] = key_of(&a, ids[i], il, &lens[i]);
        /* The tag: from the first '{' to the next '}', the key's end. */
        const char *open = memchr(keys[i], '{', lens[i]);
        CU_ASSERT_FATAL(open != NULL);
        const char *close = memchr(open + 1, '}', lens[i] - (size_t)(open + 1 - keys[i]));
        CU_ASSERT_FATAL(close == keys[i] + lens[i] - 1);
        char back[5];
        size_t bl = 0;
        int marked = open[-1] == '%';
        for (const char *p = open + 1; p < close && bl < sizeof back; bl++) {
            if (marked && *p == '%') {
                CU_ASSERT_FATAL(close - p >= 3);
                back[bl] = p[1] == '2' ? '%' : p[2] == 'B' ? '{' : '}';
                p += 3;
            } else {
                back[bl] = *p++;
            }
        }
        CU_ASSERT(bl == il && memcmp(back, ids[i], il) == 0);
        CU_ASSERT_EQUAL(marked, strpbrk(ids[i], "{}") != NULL);
    }
    int same = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (lens[i] == lens[j] && !memcmp(keys[i], keys[j], lens[i]))
                same++;
    CU_ASSERT_EQUAL(same, 0);
    tl_arena_free(&a);
}

/* "victim}1".."victim}100" once all hashed as "victim": one hot slot. */
static void test_key_slots_spread(void)
{
    static unsigned char seen[16384];
    memset(seen, 0, sizeof seen);
    tl_arena a;
    tl_arena_init(&a, 4096);
    int slots = 0;
    for (int i = 1; i <= 100; i++) {
        char id[32];
        size_t len;
        snprintf(id, sizeof id, "victim}%d", i);
        const char *k = key_of(&a, id, strlen(id), &len);
        unsigned s = tl_store_cluster_key_slot(k, len);
        if (!seen[s]++) slots++;
    }
    CU_ASSERT(slots >= 95);
    /* Plain ids hash by the whole id, as before. */
    size_t len;
    const char *k = key_of(&a, "victim", 6, &len);
    CU_ASSERT_EQUAL(tl_store_cluster_key_slot(k, len),
                    tl_store_cluster_key_slot("victim", 6));
    tl_arena_free(&a);
}

/* Offsets going backwards: a watermark written under another cluster, or
 * at or beyond the partition's end, is stale; _k is written with the
 * watermarks when the cluster is known, and read back as its hash. */
static void test_stale_watermarks(void)
{
    tl_wm w = {NULL, 0, 15, 15, 0, 0};
    CU_ASSERT(!tl_wm_stale(&w, 16)); /* the last offset of the log */
    CU_ASSERT(!tl_wm_stale(&w, 1000));
    CU_ASSERT(tl_wm_stale(&w, 15));  /* no offset 15 in the log yet */
    CU_ASSERT(tl_wm_stale(&w, 0));
    CU_ASSERT(!tl_wm_stale(&w, -1)); /* end unknown: not stale */
    w.foreign = 1;
    CU_ASSERT(tl_wm_stale(&w, 1000));
    CU_ASSERT(tl_wm_stale(&w, -1));
    w = (tl_wm){NULL, 0, -1, -1, 0, 0};
    CU_ASSERT(!tl_wm_stale(&w, 0)); /* nothing applied: nothing to skip */

    tl_cache *c = tl_cache_new(&layout, 10);
    tl_vec *v = tl_cache_put(c, "c1", 2);
    char err[256];
    uint64_t a = tl_fnv1a(TL_FNV_OFFSET, "clusterA", 8);
    uint64_t b = tl_fnv1a(TL_FNV_OFFSET, "clusterB", 8);
    CU_ASSERT_EQUAL(tl_vec_load_field(v, &layout, "_o:in:0", 7, "15", 2, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(tl_vec_load_field(v, &layout, "_o:in:1", 7, "7", 1, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(v->cluster, 0);
    /* Written by a version without _k: nothing to compare. */
    CU_ASSERT_EQUAL(tl_vec_check_cluster(v, b), 0);
    CU_ASSERT_EQUAL(v->cluster, b);
    CU_ASSERT(!v->wm[0].foreign && !v->wm[1].foreign);
    /* The same cluster: nothing marked. */
    CU_ASSERT_EQUAL(tl_vec_load_field(v, &layout, "_k", 2, "clusterB", 8, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(tl_vec_check_cluster(v, b), 0);
    /* Unknown now: nothing marked either. */
    CU_ASSERT_EQUAL(tl_vec_load_field(v, &layout, "_k", 2, "clusterA", 8, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(v->cluster, a);
    CU_ASSERT_EQUAL(tl_vec_check_cluster(v, 0), 0);
    /* Another cluster: every watermark. */
    CU_ASSERT_EQUAL(tl_vec_load_field(v, &layout, "_k", 2, "clusterA", 8, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(tl_vec_check_cluster(v, b), 2);
    CU_ASSERT(v->wm[0].foreign && v->wm[1].foreign);
    CU_ASSERT(tl_wm_stale(&v->wm[1], 100));
    CU_ASSERT_EQUAL(v->cluster, b);
    /* A reset vector forgets the cluster with its watermarks. */
    tl_vec_reset(v, &layout);
    CU_ASSERT_EQUAL(v->cluster, 0);

    /* _k goes with the watermarks, and only when the cluster is known. */
    tl_layout l = layout;
    l.cluster_id = "clusterB";
    tl_arena ar;
    tl_arena_init(&ar, 1024);
    const char *f[9], *val[9], *del[6];
    size_t fl[9], vl[9], dl[6], nd;
    CU_ASSERT_EQUAL(tl_vec_encode(v, &l, &ar, f, fl, val, vl, del, dl, &nd), 0);
    tl_vec_wm(v, "in", 0)->applied = 3;
    size_t n = tl_vec_encode(v, &l, &ar, f, fl, val, vl, del, dl, &nd);
    CU_ASSERT_FATAL(n == 1);
    CU_ASSERT_STRING_EQUAL(f[0], "_k");
    CU_ASSERT_EQUAL(fl[0], 2);
    CU_ASSERT_EQUAL(vl[0], 8);
    CU_ASSERT_NSTRING_EQUAL(val[0], "clusterB", 8);
    CU_ASSERT_EQUAL(tl_vec_encode(v, &layout, &ar, f, fl, val, vl, del, dl, &nd), 0);
    tl_arena_free(&ar);
    tl_cache_free(c);
}

static void test_encode_load_roundtrip(void)
{
    tl_cache *c = tl_cache_new(&layout, 10);
    tl_vec *v = tl_cache_put(c, "c1", 2);
    feed(v, 10 * DAY, "tea");
    feed(v, 11 * DAY, "milk;2%");
    feed(v, 12 * DAY, NULL);
    tl_wm *w = tl_vec_wm(v, "interactions", 3);
    w->applied = 41;

    tl_arena a;
    tl_arena_init(&a, 1024);
    size_t maxf = tl_vec_max_fields(&layout);
    CU_ASSERT_EQUAL(maxf, 9); /* _ts and _k besides features and rules */
    CU_ASSERT_EQUAL(tl_vec_max_dels(&layout), 6);
    const char *f[9], *val[9], *del[6];
    size_t fl[9], vl[9], dl[6], nd = 99;
    size_t n = tl_vec_encode(v, &layout, &a, f, fl, val, vl, del, dl, &nd);
    CU_ASSERT_EQUAL(n, 8);
    CU_ASSERT_EQUAL(nd, 0);
    const char *want[][2] = {
        {"visits", "3"},          {"_f:visits", "1036800000;3"},
        {"last_item", "milk;2%"}, {"_f:last_item", "950400000;milk;2%"},
        {"week", "3"},            {"_f:week", "1036800000;12;1,1,1"},
        {"_r:hello", "1;1036800000;1"}, {"_ts", "1036800000"},
    };
    for (size_t i = 0; i < n && i < 8; i++) {
        CU_ASSERT_STRING_EQUAL(f[i], want[i][0]);
        CU_ASSERT_EQUAL(fl[i], strlen(want[i][0]));
        CU_ASSERT_STRING_EQUAL(val[i], want[i][1]);
        CU_ASSERT_EQUAL(vl[i], strlen(want[i][1]));
    }
    /* What a restarted instance reads back equals what was written. */
    tl_vec *u = tl_cache_put(c, "c2", 2);
    char err[256];
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(tl_vec_load_field(u, &layout, f[i], fl[i], val[i], vl[i], err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(tl_vec_load_field(u, &layout, "_o:interactions:3", 17, "41", 2, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(tl_vec_load_field(u, &layout, "_f:removed_feature", 18, "1;1", 3, err, sizeof err), TL_OK);
    CU_ASSERT(memcmp(u->block, v->block, layout.block_size) == 0);
    CU_ASSERT(u->has_newest && u->newest == v->newest);
    const tl_wm *uw = tl_vec_wm_find(u, "interactions", 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(uw);
    CU_ASSERT_EQUAL(uw->applied, 41);
    CU_ASSERT_EQUAL(uw->stored, 41);
    CU_ASSERT_PTR_NULL(tl_vec_wm_find(u, "interactions", 4));
    /* Loaded from Redis: written whole at its next flush. */
    CU_ASSERT_EQUAL(u->changed, UINT64_MAX);
    CU_ASSERT_EQUAL(tl_vec_encode(u, &layout, &a, f, fl, val, vl, del, dl, &nd), 8);
    CU_ASSERT_EQUAL(tl_vec_load_field(u, &layout, "_o:t", 4, "1", 1, err, sizeof err), TL_ERR);
    CU_ASSERT_EQUAL(tl_vec_load_field(u, &layout, "_o:t:1", 6, "x", 1, err, sizeof err), TL_ERR);
    CU_ASSERT_STRING_EQUAL(err, "malformed watermark field '_o:t:1' = 'x'");
    CU_ASSERT_EQUAL(tl_vec_load_field(u, &layout, "_f:visits", 9, "oops", 4, err, sizeof err), TL_ERR_DECODE);
    tl_arena_free(&a);
    tl_cache_free(c);
}

static void test_never_seen_encodes_nothing(void)
{
    tl_cache *c = tl_cache_new(&layout, 10);
    tl_vec *v = tl_cache_put(c, "c1", 2);
    tl_arena a;
    tl_arena_init(&a, 1024);
    const char *f[8], *val[8], *del[6];
    size_t fl[8], vl[8], dl[6], nd = 0;
    CU_ASSERT_EQUAL(tl_vec_encode(v, &layout, &a, f, fl, val, vl, del, dl, &nd), 0);
    /* Nothing to set; the fields of what follows time (the window) are
     * deleted (HDEL of absent fields is harmless, and this is how expired
     * values leave Redis); the unchanged others are left alone. */
    CU_ASSERT_EQUAL(nd, 2);
    CU_ASSERT_STRING_EQUAL(del[0], "week");
    CU_ASSERT_STRING_EQUAL(del[1], "_f:week");
    /* Everything marked changed (as after a load): every feature's fields. */
    v->changed = UINT64_MAX;
    CU_ASSERT_EQUAL(tl_vec_encode(v, &layout, &a, f, fl, val, vl, del, dl, &nd), 0);
    CU_ASSERT_EQUAL(nd, 6);
    CU_ASSERT_STRING_EQUAL(del[0], "visits");
    CU_ASSERT_STRING_EQUAL(del[1], "_f:visits");
    tl_arena_free(&a);
    tl_cache_free(c);
}

/* A customer whose events matched none of a count's: its first write
 * gives the count the 0 rules read (a campaign tool's HGET finds it), the
 * window its 0, and nothing for a `last` (null); later writes leave the
 * count alone until an event changes it. */
static void test_encode_counts_of_nothing(void)
{
    tl_cache *c = tl_cache_new(&layout, 10);
    tl_vec *v = tl_cache_put(c, "c1", 2);
    v->has_newest = 1; /* as after an event that no feature counted */
    v->newest = 10 * DAY;
    tl_vec_wm(v, "interactions", 0)->applied = 5;
    tl_arena a;
    tl_arena_init(&a, 1024);
    const char *f[8], *val[8], *del[6];
    size_t fl[8], vl[8], dl[6], nd = 99;
    size_t n = tl_vec_encode(v, &layout, &a, f, fl, val, vl, del, dl, &nd);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_EQUAL(nd, 0);
    CU_ASSERT_STRING_EQUAL(f[0], "visits");
    CU_ASSERT_STRING_EQUAL(val[0], "0");
    CU_ASSERT_STRING_EQUAL(f[1], "week");
    CU_ASSERT_STRING_EQUAL(val[1], "0");
    CU_ASSERT_STRING_EQUAL(f[2], "_ts");
    /* Stored: the count's 0 is in Redis, the window follows time. */
    v->wm[0].stored = 5;
    n = tl_vec_encode(v, &layout, &a, f, fl, val, vl, del, dl, &nd);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_STRING_EQUAL(f[0], "week");
    CU_ASSERT_STRING_EQUAL(f[1], "_ts");
    tl_arena_free(&a);
    tl_cache_free(c);
}

/* After a flush only what an event changed is written, plus what follows
 * time; the result in Redis is what a whole rewrite would leave. */
static void test_encode_changed_only(void)
{
    tl_cache *c = tl_cache_new(&layout, 10);
    tl_vec *v = tl_cache_put(c, "c1", 2);
    feed(v, 10 * DAY, "tea");
    CU_ASSERT_EQUAL(v->changed, 7); /* visits, last_item, week */
    v->changed = 0;                 /* flushed */
    feed(v, 11 * DAY, NULL);        /* no item: last_item stays */
    CU_ASSERT_EQUAL(v->changed, 5);
    tl_arena a;
    tl_arena_init(&a, 1024);
    const char *f[8], *val[8], *del[6];
    size_t fl[8], vl[8], dl[6], nd = 99;
    size_t n = tl_vec_encode(v, &layout, &a, f, fl, val, vl, del, dl, &nd);
    const char *want[] = {"visits", "_f:visits", "week", "_f:week",
                          "_r:hello", "_ts"};
    CU_ASSERT_EQUAL_FATAL(n, 6);
    CU_ASSERT_EQUAL(nd, 0);
    for (size_t i = 0; i < n; i++) CU_ASSERT_STRING_EQUAL(f[i], want[i]);
    /* Nothing changed, time moved on: the window's value is written again,
     * its state is not. */
    v->changed = 0;
    v->newest = 20 * DAY;
    n = tl_vec_encode(v, &layout, &a, f, fl, val, vl, del, dl, &nd);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_STRING_EQUAL(f[0], "week");
    CU_ASSERT_STRING_EQUAL(val[0], "0");
    CU_ASSERT_STRING_EQUAL(f[1], "_r:hello");
    tl_arena_free(&a);
    tl_cache_free(c);
}

static void test_cache_lru_and_dirty(void)
{
    tl_cache *c = tl_cache_new(&layout, 3);
    char id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "c%d", i);
        tl_cache_put(c, id, strlen(id));
    }
    CU_ASSERT_EQUAL(tl_cache_size(c), 5);
    tl_cache_get(c, "c0", 2)->dirty = 1; /* most recent and pinned */
    tl_cache_get(c, "c1", 2);            /* most recent */
    tl_cache_trim(c);
    CU_ASSERT_EQUAL(tl_cache_size(c), 3);
    CU_ASSERT_PTR_NOT_NULL(tl_cache_get(c, "c0", 2));
    CU_ASSERT_PTR_NOT_NULL(tl_cache_get(c, "c1", 2));
    CU_ASSERT_PTR_NOT_NULL(tl_cache_get(c, "c4", 2));
    CU_ASSERT_PTR_NULL(tl_cache_get(c, "c2", 2));
    CU_ASSERT_PTR_NULL(tl_cache_get(c, "c3", 2));
    /* Dirty vectors survive even when over the limit. */
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "c%d", i == 2 ? 4 : i);
        tl_cache_get(c, id, strlen(id))->dirty = 1;
    }
    tl_cache_put(c, "c9", 2);
    tl_cache_trim(c);
    CU_ASSERT_EQUAL(tl_cache_size(c), 3);
    CU_ASSERT_PTR_NULL(tl_cache_get(c, "c9", 2));
    tl_cache_clear(c);
    CU_ASSERT_EQUAL(tl_cache_size(c), 0);
    tl_cache_free(c);
}

/* Random puts and removes against a plain array: the open-addressing table
 * with backward-shift deletion must never lose or invent an entry. */
static void test_cache_random_ops(void)
{
    tl_cache *c = tl_cache_new(&layout, 100000);
    enum { N = 3000 };
    static char present[N];
    memset(present, 0, sizeof present);
    unsigned seed = 12345;
    char id[16];
    size_t count = 0;
    for (int op = 0; op < 60000; op++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % N);
        snprintf(id, sizeof id, "k%d", k);
        tl_vec *v = tl_cache_get(c, id, strlen(id));
        CU_ASSERT_EQUAL(v != NULL, present[k]);
        if (v && (seed & 1)) {
            tl_cache_remove(c, v);
            present[k] = 0;
            count--;
        } else if (!v) {
            v = tl_cache_put(c, id, strlen(id));
            CU_ASSERT_STRING_EQUAL(v->customer_id, id);
            present[k] = 1;
            count++;
        }
        CU_ASSERT_EQUAL(tl_cache_size(c), count);
    }
    for (int k = 0; k < N; k++) {
        snprintf(id, sizeof id, "k%d", k);
        CU_ASSERT_EQUAL(tl_cache_get(c, id, strlen(id)) != NULL, present[k]);
    }
    tl_cache_free(c);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("state", suite_init, suite_clean);
    CU_add_test(s, "redis key of an id without braces: as always", test_key);
    CU_add_test(s, "redis key of an id with braces: escaped, marked",
                test_key_braces);
    CU_add_test(s, "redis keys: injective, the tag holds the whole id",
                test_key_injective);
    CU_add_test(s, "redis keys: victim}N spread over the slots",
                test_key_slots_spread);
    CU_add_test(s, "encode, load: exact round trip", test_encode_load_roundtrip);
    CU_add_test(s, "stale watermarks: another cluster, beyond the end",
                test_stale_watermarks);
    CU_add_test(s, "a never-seen vector encodes no field", test_never_seen_encodes_nothing);
    CU_add_test(s, "only changed features, and those following time",
                test_encode_changed_only);
    CU_add_test(s, "counts of nothing: 0 at the first write",
                test_encode_counts_of_nothing);
    CU_add_test(s, "cache LRU keeps dirty vectors", test_cache_lru_and_dirty);
    CU_add_test(s, "cache random operations", test_cache_random_ops);
    return tl_test_run();
}
