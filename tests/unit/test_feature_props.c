/*
 * Property tests of the feature engine, over 10,000 seeded random streams of
 * one customer with a feature of every kind:
 *   - in order, and shuffled within the lateness bound (every event arrives
 *     at most max_lateness after a newer one), give the same vector (decayed
 *     and floating sums equal within 1e-9 relative);
 *   - saving every feature to its Redis text and loading it back at random
 *     points gives exactly the same bytes as never saving.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <string.h>

#include "../support/expr_util.h"
#include "../support/testutil.h"
#include "feature.h"

#define HOUR 3600000LL
#define DAY (24 * HOUR)
#define LATENESS HOUR
#define STREAMS 10000
#define MAXEV 64

static tl_feature fs[16];
static size_t nfs, block_size;

static void add(const char *name, tl_feature_kind kind, const char *where,
                const char *field, tl_feature opts)
{
    tl_feature *f = &fs[nfs++];
    *f = opts;
    f->name = strdup(name);
    f->kind = kind;
    f->where = where ? tl_test_event_expr(where, TL_T_BOOL) : NULL;
    f->field = field ? tl_test_event_expr(field, TL_T_NULL) : NULL;
}

static int suite_init(void)
{
    add("n", TL_FK_COUNT, "type == \"p\"", NULL, (tl_feature){0});
    add("spend", TL_FK_SUM, NULL, "amount", (tl_feature){0});
    add("lo", TL_FK_MIN, NULL, "amount", (tl_feature){0});
    add("hi", TL_FK_MAX, NULL, "amount", (tl_feature){0});
    add("mean", TL_FK_AVG, NULL, "amount", (tl_feature){0});
    add("last_item", TL_FK_LAST, NULL, "item", (tl_feature){0});
    add("first", TL_FK_FIRST_SEEN, NULL, NULL, (tl_feature){0});
    add("seen", TL_FK_LAST_SEEN, "type == \"v\"", NULL, (tl_feature){0});
    add("day_n", TL_FK_WINDOW_COUNT, NULL, NULL,
        (tl_feature){.window_ms = DAY, .resolution_ms = HOUR});
    add("day_spend", TL_FK_WINDOW_SUM, NULL, "amount",
        (tl_feature){.window_ms = DAY, .resolution_ms = HOUR});
    add("heat", TL_FK_DECAYED_COUNT, NULL, NULL, (tl_feature){.half_life_ms = DAY});
    add("heat_spend", TL_FK_DECAYED_SUM, NULL, "amount",
        (tl_feature){.half_life_ms = DAY});
    add("usual", TL_FK_TOP_K, NULL, "item",
        (tl_feature){.k = 3, .capacity = 8, .half_life_ms = 2 * DAY});
    add("kinds", TL_FK_DISTINCT, NULL, "item",
        (tl_feature){.exact_up_to = 4, .precision = 6});
    add("recent", TL_FK_LAST_N, NULL, "item", (tl_feature){.n = 4});
    add("since_seen", TL_FK_SINCE, NULL, NULL, (tl_feature){.of = 7});
    char err[256];
    for (size_t i = 0; i < nfs; i++)
        if (tl_feature_finish(&fs[i], fs, err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", fs[i].name, err);
            return 1;
        }
    block_size = tl_features_layout(fs, nfs, 0);
    return 0;
}

static int suite_clean(void)
{
    for (size_t i = 0; i < nfs; i++) tl_feature_clear(&fs[i]);
    return 0;
}

static uint64_t rng;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static int64_t uniform(int64_t n) { return (int64_t)(next() % (uint64_t)n); }

static const char *items[] = {"tea", "milk", "bread", "eggs", "jam", "rice", "salt"};

typedef struct stream {
    tl_event ev[MAXEV];
    int n;
} stream;

static void make_stream(stream *s)
{
    s->n = 8 + (int)uniform(MAXEV - 8);
    int64_t ts = 1500000000000LL + uniform(DAY);
    for (int i = 0; i < s->n; i++) {
        tl_event *e = &s->ev[i];
        memset(e, 0, sizeof *e);
        /* Distinct times: "in order" is then well defined. */
        ts += 1 + uniform(uniform(4) == 0 ? 30 * HOUR : 2 * HOUR);
        e->ts = ts;
        e->event_id = "e";
        e->customer_id = "c";
        e->type = uniform(3) ? "p" : "v";
        e->item = uniform(8) ? items[uniform(7)] : NULL;
        e->has_amount = uniform(6) != 0;
        e->amount = (double)(uniform(20001) - 2000) / 100.0;
    }
}

/* Arrival order: sort by ts + U[0, lateness): no event arrives more than the
 * lateness bound after a newer one. */
static void shuffle(const stream *in, stream *out)
{
    int64_t key[MAXEV];
    int idx[MAXEV];
    for (int i = 0; i < in->n; i++) {
        key[i] = in->ev[i].ts + uniform(LATENESS);
        idx[i] = i;
    }
    for (int i = 1; i < in->n; i++)
        for (int j = i; j > 0 && key[idx[j - 1]] > key[idx[j]]; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    out->n = in->n;
    for (int i = 0; i < in->n; i++) out->ev[i] = in->ev[idx[i]];
}

static void apply_all(unsigned char *b, const tl_event *e)
{
    for (size_t k = 0; k < nfs; k++)
        tl_feature_apply(&fs[k], b, e, tl_event_fetch, (void *)e);
}

static int close_enough(double a, double b)
{
    return a == b || fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b));
}

/* Compares every feature as read at `now`; returns the first that differs. */
static const char *differs(const unsigned char *a, const unsigned char *b,
                           int64_t now)
{
    for (size_t k = 0; k < nfs; k++) {
        tl_value x, y;
        tl_feature_read(&fs[k], a, now, &x);
        tl_feature_read(&fs[k], b, now, &y);
        if (x.type != y.type) return fs[k].name;
        switch (x.type) {
        case TL_T_NUM:
            if (!close_enough(x.u.num, y.u.num)) return fs[k].name;
            break;
        case TL_T_STR:
            if (x.u.str.len != y.u.str.len ||
                memcmp(x.u.str.ptr, y.u.str.ptr, x.u.str.len))
                return fs[k].name;
            break;
        case TL_T_LIST_STR:
            if (x.u.list.n != y.u.list.n) return fs[k].name;
            for (uint32_t i = 0; i < x.u.list.n; i++) {
                size_t lx, ly;
                const char *sx = tl_list_str(&x, i, &lx), *sy = tl_list_str(&y, i, &ly);
                if (lx != ly || memcmp(sx, sy, lx)) return fs[k].name;
            }
            break;
        default:
            break;
        }
    }
    return NULL;
}

static void save_load_all(unsigned char *b)
{
    static char text[65536];
    unsigned char *copy = calloc(1, block_size);
    char err[256];
    for (size_t k = 0; k < nfs; k++) {
        if (!tl_feature_has_state(&fs[k])) continue;
        const unsigned char *h = b + fs[k].offset;
        uint32_t set;
        memcpy(&set, h + 8, sizeof set);
        if (!set) continue; /* an unset feature writes no field */
        size_t n = tl_feature_save(&fs[k], b, text);
        CU_ASSERT(n < tl_feature_save_size(&fs[k]));
        if (tl_feature_load(&fs[k], copy, text, n, err, sizeof err))
            fprintf(stderr, "load %s: %s\n", fs[k].name, err);
    }
    memcpy(b, copy, block_size);
    free(copy);
}

static void test_order_and_storage_do_not_matter(void)
{
    unsigned char *in_order = calloc(1, block_size);
    unsigned char *shuffled = calloc(1, block_size);
    unsigned char *stored = calloc(1, block_size);
    int order_failures = 0, store_failures = 0;
    rng = 0x9e3779b97f4a7c15ULL;
    stream s, t;
    for (int run = 0; run < STREAMS; run++) {
        make_stream(&s);
        shuffle(&s, &t);
        memset(in_order, 0, block_size);
        memset(shuffled, 0, block_size);
        memset(stored, 0, block_size);
        for (int i = 0; i < s.n; i++) {
            apply_all(in_order, &s.ev[i]);
            apply_all(shuffled, &t.ev[i]);
            apply_all(stored, &s.ev[i]);
            if (uniform(5) == 0) save_load_all(stored);
        }
        int64_t now = s.ev[s.n - 1].ts;
        const char *d = differs(in_order, shuffled, now);
        if (d && order_failures++ < 5)
            fprintf(stderr, "stream %d: %s differs when shuffled\n", run, d);
        if (memcmp(in_order, stored, block_size) != 0 && store_failures++ < 5)
            fprintf(stderr, "stream %d: differs after save/load\n", run);
    }
    CU_ASSERT_EQUAL(order_failures, 0);
    CU_ASSERT_EQUAL(store_failures, 0);
    free(in_order);
    free(shuffled);
    free(stored);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("feature properties", suite_init, suite_clean);
    CU_add_test(s, "10,000 streams: arrival order and save/load do not matter",
                test_order_and_storage_do_not_matter);
    return tl_test_run();
}
