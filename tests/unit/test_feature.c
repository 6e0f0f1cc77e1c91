/* Feature kinds: hand-computed values, boundaries, and exact save/load. */
#include <CUnit/Basic.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "../support/expr_util.h"
#include "../support/testutil.h"
#include "feature.h"

#define DAY 86400000LL

/* A finished feature laid out alone at offset 0; `o` carries the options
 * of the newer kinds (k, n, half_life, ttl, ...). */
static tl_feature make_opts(tl_feature_kind kind, const char *where,
                            const char *field, int64_t window, int64_t res,
                            uint32_t max_len, const tl_feature *o)
{
    tl_feature f;
    if (o)
        f = *o;
    else
        memset(&f, 0, sizeof f);
    f.name = strdup("f");
    f.kind = kind;
    f.where = where ? tl_test_event_expr(where, TL_T_BOOL) : NULL;
    f.field = field ? tl_test_event_expr(field, TL_T_NULL) : NULL;
    f.window_ms = window;
    f.resolution_ms = res;
    f.max_len = max_len;
    char err[256];
    int rc = tl_feature_finish(&f, NULL, err, sizeof err);
    if (rc) fprintf(stderr, "finish: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, TL_OK);
    tl_features_layout(&f, 1, 0);
    return f;
}

static tl_feature make(tl_feature_kind kind, const char *where,
                       const char *field, int64_t window, int64_t res,
                       uint32_t max_len)
{
    return make_opts(kind, where, field, window, res, max_len, NULL);
}

static tl_event event(int64_t ts, const char *type, const char *item,
                      double amount, int has_amount)
{
    tl_event e;
    memset(&e, 0, sizeof e);
    e.event_id = "e";
    e.customer_id = "c";
    e.customer_id_len = 1;
    e.ts = ts;
    e.channel = TL_CH_STORE;
    e.type = type;
    e.item = item;
    e.amount = amount;
    e.has_amount = has_amount;
    return e;
}

static int apply(const tl_feature *f, unsigned char *b, tl_event e)
{
    return tl_feature_apply(f, b, &e, tl_event_fetch, &e);
}

static double num(const tl_feature *f, const unsigned char *b, int64_t now)
{
    tl_value v;
    tl_feature_read(f, b, now, &v);
    CU_ASSERT_EQUAL(v.type, TL_T_NUM);
    return v.u.num;
}

static void fmt_is(const tl_feature *f, const unsigned char *b, const char *want)
{
    char buf[256];
    const unsigned char *h = b + f->offset;
    int64_t now;
    memcpy(&now, h, sizeof now); /* as of the feature's own newest event */
    int n = tl_feature_format(f, b, now, buf, sizeof buf);
    if (!want) {
        CU_ASSERT_EQUAL(n, -1);
        return;
    }
    CU_ASSERT_EQUAL(n, (int)strlen(want));
    CU_ASSERT_STRING_EQUAL(buf, want);
}

/* save -> load into a fresh block gives the same bytes. */
static void roundtrip(const tl_feature *f, const unsigned char *b)
{
    char *text = malloc(tl_feature_save_size(f));
    size_t n = tl_feature_save(f, b, text);
    CU_ASSERT_EQUAL(n, strlen(text));
    unsigned char *c = calloc(1, f->size);
    char err[256];
    CU_ASSERT_EQUAL(tl_feature_load(f, c, text, n, err, sizeof err), TL_OK);
    CU_ASSERT(memcmp(b, c, f->size) == 0);
    free(c);
    free(text);
}

static void test_count(void)
{
    tl_feature f = make(TL_FK_COUNT, "type == \"purchase\"", NULL, 0, 0, 0);
    unsigned char *b = calloc(1, f.size);
    CU_ASSERT_EQUAL(num(&f, b, 0), 0); /* nothing counted reads 0 */
    fmt_is(&f, b, "0");                /* ... and is written so */
    CU_ASSERT_EQUAL(apply(&f, b, event(1000, "purchase", "a", 1, 1)), 1);
    CU_ASSERT_EQUAL(apply(&f, b, event(2000, "visit", NULL, 0, 0)), 0);
    CU_ASSERT_EQUAL(apply(&f, b, event(500, "purchase", "b", 1, 1)), 1);
    CU_ASSERT_EQUAL(num(&f, b, 3000), 2);
    fmt_is(&f, b, "2");
    roundtrip(&f, b);
    free(b);
    tl_feature_clear(&f);
}

static void test_sum(void)
{
    tl_feature f = make(TL_FK_SUM, NULL, "amount", 0, 0, 0);
    unsigned char *b = calloc(1, f.size);
    apply(&f, b, event(1, "purchase", "a", 15.3, 1));
    CU_ASSERT_EQUAL(apply(&f, b, event(2, "purchase", "a", 0, 0)), 0); /* null skipped */
    apply(&f, b, event(3, "return", "a", -5.1, 1));
    CU_ASSERT_DOUBLE_EQUAL(num(&f, b, 3), 15.3 - 5.1, 1e-12);
    /* Readable: 15 significant digits, not the exact 10.200000000000001. */
    fmt_is(&f, b, "10.2");
    roundtrip(&f, b);
    free(b);
    tl_feature_clear(&f);
}

static void test_last_string(void)
{
    tl_feature f = make(TL_FK_LAST, NULL, "item", 0, 0, 0);
    CU_ASSERT_EQUAL(f.type, TL_T_STR);
    unsigned char *b = calloc(1, f.size);
    tl_value v;
    tl_feature_read(&f, b, 0, &v);
    CU_ASSERT_EQUAL(v.type, TL_T_NULL);
    apply(&f, b, event(100, "purchase", "fries", 0, 0));
    CU_ASSERT_EQUAL(apply(&f, b, event(50, "purchase", "older", 0, 0)), 0);
    fmt_is(&f, b, "fries");
    apply(&f, b, event(100, "purchase", "same;time", 0, 0)); /* tie: later arrival */
    fmt_is(&f, b, "same;time");
    CU_ASSERT_EQUAL(apply(&f, b, event(200, "visit", NULL, 0, 0)), 0); /* null item */
    fmt_is(&f, b, "same;time");
    roundtrip(&f, b);
    free(b);
    tl_feature_clear(&f);
}

static void test_last_truncates_utf8(void)
{
    tl_feature f = make(TL_FK_LAST, NULL, "item", 0, 0, 5);
    unsigned char *b = calloc(1, f.size);
    apply(&f, b, event(1, "purchase", "abcd\xc3\xa9xyz", 0, 0)); /* "abcdé" + "xyz" */
    fmt_is(&f, b, "abcd");  /* the 2-byte é does not fit in 5 bytes */
    apply(&f, b, event(2, "purchase", "ab\xc3\xa9xyz", 0, 0));
    fmt_is(&f, b, "ab\xc3\xa9x");
    roundtrip(&f, b);
    free(b);
    tl_feature_clear(&f);
}

static void test_last_number(void)
{
    tl_feature f = make(TL_FK_LAST, NULL, "amount", 0, 0, 0);
    CU_ASSERT_EQUAL(f.type, TL_T_NUM);
    unsigned char *b = calloc(1, f.size);
    apply(&f, b, event(1, "purchase", NULL, 2.5, 1));
    apply(&f, b, event(2, "purchase", NULL, -0.25, 1));
    CU_ASSERT_EQUAL(num(&f, b, 2), -0.25);
    fmt_is(&f, b, "-0.25");
    roundtrip(&f, b);
    free(b);
    tl_feature_clear(&f);
}

static void test_last_seen(void)
{
    tl_feature f = make(TL_FK_LAST_SEEN, "type == \"visit\"", NULL, 0, 0, 0);
    unsigned char *b = calloc(1, f.size);
    fmt_is(&f, b, NULL);
    apply(&f, b, event(1487001600000LL, "visit", NULL, 0, 0));
    CU_ASSERT_EQUAL(apply(&f, b, event(1487001500000LL, "visit", NULL, 0, 0)), 0);
    apply(&f, b, event(1487001700000LL, "purchase", NULL, 0, 0));
    fmt_is(&f, b, "1487001600000");
    roundtrip(&f, b);
    free(b);
    tl_feature_clear(&f);
}

static void test_window_count(void)
{
    tl_feature f = make(TL_FK_WINDOW_COUNT, NULL, NULL, 3 * DAY, DAY, 0);
    CU_ASSERT_EQUAL(f.nbuckets, 3);
    unsigned char *b = calloc(1, f.size);
    int64_t t0 = 17000 * DAY; /* a day boundary */
    apply(&f, b, event(t0, "v", NULL, 0, 0));                 /* day 0 */
    apply(&f, b, event(t0 + DAY + 5, "v", NULL, 0, 0));       /* day 1 */
    apply(&f, b, event(t0 + 2 * DAY - 1, "v", NULL, 0, 0));   /* day 1 */
    CU_ASSERT_EQUAL(num(&f, b, t0 + 2 * DAY - 1), 3);
    /* The window is (now - 3d, now] at day resolution: at day 3 day 0 is out. */
    CU_ASSERT_EQUAL(num(&f, b, t0 + 3 * DAY), 2);
    CU_ASSERT_EQUAL(num(&f, b, t0 + 2 * DAY), 3);
    apply(&f, b, event(t0 + 3 * DAY, "v", NULL, 0, 0));       /* day 3 evicts day 0 */
    CU_ASSERT_EQUAL(num(&f, b, t0 + 3 * DAY), 3);
    /* Out of order inside the window counts; older than the window does not. */
    CU_ASSERT_EQUAL(apply(&f, b, event(t0 + DAY, "v", NULL, 0, 0)), 1);
    CU_ASSERT_EQUAL(apply(&f, b, event(t0, "v", NULL, 0, 0)), 0);
    CU_ASSERT_EQUAL(num(&f, b, t0 + 3 * DAY), 4);
    fmt_is(&f, b, "4");
    roundtrip(&f, b);
    /* Far later, everything has slid out. */
    CU_ASSERT_EQUAL(num(&f, b, t0 + 100 * DAY), 0);
    apply(&f, b, event(t0 + 100 * DAY, "v", NULL, 0, 0));
    CU_ASSERT_EQUAL(num(&f, b, t0 + 100 * DAY), 1);
    roundtrip(&f, b);
    free(b);
    tl_feature_clear(&f);
}

static void test_window_before_1970(void)
{
    tl_feature f = make(TL_FK_WINDOW_COUNT, NULL, NULL, 2 * DAY, DAY, 0);
    unsigned char *b = calloc(1, f.size);
    apply(&f, b, event(-1, "v", NULL, 0, 0));     /* day -1 */
    apply(&f, b, event(0, "v", NULL, 0, 0));      /* day 0 */
    CU_ASSERT_EQUAL(num(&f, b, 0), 2);
    CU_ASSERT_EQUAL(num(&f, b, DAY), 1);
    roundtrip(&f, b);
    free(b);
    tl_feature_clear(&f);
}

static void test_window_default_resolution(void)
{
    tl_feature f = make(TL_FK_WINDOW_COUNT, NULL, NULL, 30 * DAY, 0, 0);
    CU_ASSERT_EQUAL(f.resolution_ms, DAY);
    CU_ASSERT_EQUAL(f.nbuckets, 30);
    tl_feature_clear(&f);
}

static void finish_fails(tl_feature_kind k, const char *field, int64_t win,
                         int64_t res, uint32_t max_len, const char *want)
{
    tl_feature f;
    memset(&f, 0, sizeof f);
    f.name = strdup("f");
    f.kind = k;
    f.field = field ? tl_test_event_expr(field, TL_T_NULL) : NULL;
    f.window_ms = win;
    f.resolution_ms = res;
    f.max_len = max_len;
    char err[256] = "";
    CU_ASSERT_EQUAL(tl_feature_finish(&f, NULL, err, sizeof err), TL_ERR_CONFIG);
    if (strcmp(err, want) != 0) fprintf(stderr, "got: %s\n", err);
    CU_ASSERT_STRING_EQUAL(err, want);
    tl_feature_clear(&f);
}

static void test_finish_errors(void)
{
    finish_fails(TL_FK_SUM, NULL, 0, 0, 0,
                 "kind sum needs 'field' (the event value it uses)");
    finish_fails(TL_FK_SUM, "item", 0, 0, 0,
                 "field of kind sum must be a number, got string");
    finish_fails(TL_FK_COUNT, "item", 0, 0, 0, "kind count takes no 'field'");
    finish_fails(TL_FK_COUNT, NULL, DAY, 0, 0,
                 "kind count takes no 'window' or 'resolution'");
    finish_fails(TL_FK_WINDOW_COUNT, NULL, 0, 0, 0,
                 "kind window_count needs a 'window' above 0");
    finish_fails(TL_FK_WINDOW_COUNT, NULL, 30 * DAY, 7 * DAY, 0,
                 "window (2592000000 ms) must be a multiple of resolution "
                 "(604800000 ms)");
    finish_fails(TL_FK_WINDOW_COUNT, NULL, 365 * DAY, 1000, 0,
                 "window/resolution gives 31536000 buckets, more than 4096: "
                 "use a coarser resolution");
    finish_fails(TL_FK_LAST, "amount", 0, 0, 10,
                 "'max_length' applies only to kinds last, last_n and top_k "
                 "on a string field");
    finish_fails(TL_FK_LAST, "null", 0, 0, 0,
                 "field of kind last must be a number or a string or a bool, "
                 "got null");
}

static void test_load_rejects_malformed(void)
{
    tl_feature c = make(TL_FK_COUNT, NULL, NULL, 0, 0, 0);
    tl_feature w = make(TL_FK_WINDOW_COUNT, NULL, NULL, 3 * DAY, DAY, 0);
    tl_feature s = make(TL_FK_LAST_SEEN, NULL, NULL, 0, 0, 0);
    unsigned char *b = calloc(1, w.size > c.size ? w.size : c.size);
    char err[256];
    const char *bad_count[] = {"", "x;1", "1;", "1;2;3", "1;abc", "1"};
    for (size_t i = 0; i < sizeof bad_count / sizeof *bad_count; i++)
        CU_ASSERT_EQUAL(tl_feature_load(&c, b, bad_count[i], strlen(bad_count[i]),
                                        err, sizeof err), TL_ERR_DECODE);
    /* "1;5;..." : a head (5) that is not the bucket of updated (1 ms). */
    const char *bad_win[] = {"1;5;1,2,3,4", "1;x;1", "604800000;7;a", "1",
                             "1;5;"};
    for (size_t i = 0; i < sizeof bad_win / sizeof *bad_win; i++)
        CU_ASSERT_EQUAL(tl_feature_load(&w, b, bad_win[i], strlen(bad_win[i]),
                                        err, sizeof err), TL_ERR_DECODE);
    CU_ASSERT_EQUAL(tl_feature_load(&s, b, "1;2", 3, err, sizeof err), TL_ERR_DECODE);
    CU_ASSERT_EQUAL(tl_feature_load(&w, b, "604800005;7;", 12, err, sizeof err),
                    TL_OK);
    CU_ASSERT_EQUAL(num(&w, b, 7 * DAY), 0);
    CU_ASSERT_EQUAL(tl_feature_load(&w, b, "604800005;7;2,1", 15, err,
                                    sizeof err), TL_OK);
    CU_ASSERT_EQUAL(num(&w, b, 7 * DAY), 3);
    CU_ASSERT_EQUAL(num(&w, b, 8 * DAY), 3);
    CU_ASSERT_EQUAL(num(&w, b, 9 * DAY), 2);
    free(b);
    tl_feature_clear(&c);
    tl_feature_clear(&w);
    tl_feature_clear(&s);
}

static void test_layout_and_kinds(void)
{
    tl_feature fs[2];
    fs[0] = make(TL_FK_COUNT, NULL, NULL, 0, 0, 0);
    fs[1] = make(TL_FK_LAST, NULL, "item", 0, 0, 0);
    size_t end = tl_features_layout(fs, 2, 4);
    CU_ASSERT_EQUAL(fs[0].offset, 8);
    CU_ASSERT_EQUAL(fs[1].offset, 8 + fs[0].size);
    CU_ASSERT_EQUAL(end, 8 + fs[0].size + fs[1].size);
    CU_ASSERT_EQUAL(end % 8, 0);
    tl_feature_kind k;
    CU_ASSERT_EQUAL(tl_feature_kind_parse("window_count", &k), 0);
    CU_ASSERT_EQUAL(k, TL_FK_WINDOW_COUNT);
    CU_ASSERT_EQUAL(tl_feature_kind_parse("nope", &k), -1);
    CU_ASSERT_STRING_EQUAL(tl_feature_kind_get(TL_FK_SUM)->name, "sum");
    tl_feature_clear(&fs[0]);
    tl_feature_clear(&fs[1]);
}


/* ---- the kinds of issue 3 ---------------------------------------------------- */

static void list_is(const tl_feature *f, const unsigned char *b, int64_t now,
                    const char *const *want, uint32_t n)
{
    tl_value v;
    tl_feature_read(f, b, now, &v);
    CU_ASSERT_EQUAL_FATAL(v.type, TL_T_LIST_STR);
    CU_ASSERT_EQUAL(v.u.list.n, n);
    for (uint32_t i = 0; i < n && i < v.u.list.n; i++) {
        size_t len;
        const char *e = tl_list_str(&v, i, &len);
        if (len != strlen(want[i]) || memcmp(e, want[i], len) != 0)
            fprintf(stderr, "element %u: want %s, got %.*s\n", i, want[i],
                    (int)len, e);
        CU_ASSERT(len == strlen(want[i]) && memcmp(e, want[i], len) == 0);
    }
}

static void test_min_max_avg(void)
{
    tl_feature mn = make(TL_FK_MIN, NULL, "amount", 0, 0, 0);
    tl_feature mx = make(TL_FK_MAX, NULL, "amount", 0, 0, 0);
    tl_feature av = make(TL_FK_AVG, NULL, "amount", 0, 0, 0);
    tl_feature *fs[] = {&mn, &mx, &av};
    unsigned char *b[3];
    double amounts[] = {5, 2, 9};
    for (int k = 0; k < 3; k++) {
        b[k] = calloc(1, fs[k]->size);
        for (int i = 0; i < 3; i++) apply(fs[k], b[k], event(10 - i, "p", "x", amounts[i], 1));
        apply(fs[k], b[k], event(20, "p", "x", 0, 0)); /* null amount: no effect */
    }
    CU_ASSERT_EQUAL(num(&mn, b[0], 20), 2);
    CU_ASSERT_EQUAL(num(&mx, b[1], 20), 9);
    CU_ASSERT_DOUBLE_EQUAL(num(&av, b[2], 20), 16.0 / 3, 1e-12);
    fmt_is(&av, b[2], "5.33333333333333");
    for (int k = 0; k < 3; k++) {
        roundtrip(fs[k], b[k]);
        free(b[k]);
        tl_feature_clear(fs[k]);
    }
}

static void test_first_seen(void)
{
    tl_feature f = make(TL_FK_FIRST_SEEN, NULL, NULL, 0, 0, 0);
    unsigned char *b = calloc(1, f.size);
    apply(&f, b, event(5000, "v", NULL, 0, 0));
    apply(&f, b, event(3000, "v", NULL, 0, 0)); /* out of order: earlier */
    apply(&f, b, event(9000, "v", NULL, 0, 0));
    CU_ASSERT_EQUAL(num(&f, b, 9000), 3000);
    roundtrip(&f, b);
    free(b);
    tl_feature_clear(&f);
}

static void test_window_sum(void)
{
    tl_feature f = make(TL_FK_WINDOW_SUM, NULL, "amount", 2 * DAY, DAY, 0);
    unsigned char *b = calloc(1, f.size);
    int64_t t0 = 100 * DAY;
    apply(&f, b, event(t0, "p", "x", 1.25, 1));
    apply(&f, b, event(t0 + DAY, "p", "x", 2.5, 1));
    apply(&f, b, event(t0 + DAY + 1, "p", "x", 0.25, 1));
    CU_ASSERT_EQUAL(num(&f, b, t0 + DAY), 4);
    CU_ASSERT_EQUAL(num(&f, b, t0 + 2 * DAY), 2.75);
    roundtrip(&f, b);
    free(b);
    tl_feature_clear(&f);
}

static void test_decayed(void)
{
    tl_feature o = {.half_life_ms = DAY};
    tl_feature c = make_opts(TL_FK_DECAYED_COUNT, NULL, NULL, 0, 0, 0, &o);
    tl_feature s = make_opts(TL_FK_DECAYED_SUM, NULL, "amount", 0, 0, 0, &o);
    unsigned char *b1 = calloc(1, c.size), *b2 = calloc(1, c.size);
    /* A half-life apart: 1 * 0.5 + 1, whatever the arrival order. */
    apply(&c, b1, event(0, "v", NULL, 0, 0));
    apply(&c, b1, event(DAY, "v", NULL, 0, 0));
    apply(&c, b2, event(DAY, "v", NULL, 0, 0));
    apply(&c, b2, event(0, "v", NULL, 0, 0));
    CU_ASSERT_EQUAL(num(&c, b1, DAY), 1.5);
    CU_ASSERT_EQUAL(num(&c, b2, DAY), 1.5);
    CU_ASSERT_EQUAL(num(&c, b1, 3 * DAY), 0.375);
    fmt_is(&c, b1, "1.5");
    roundtrip(&c, b1);
    unsigned char *b3 = calloc(1, s.size);
    apply(&s, b3, event(0, "p", "x", 8, 1));
    apply(&s, b3, event(2 * DAY, "p", "x", 1, 1));
    CU_ASSERT_EQUAL(num(&s, b3, 2 * DAY), 3);
    roundtrip(&s, b3);
    free(b1), free(b2), free(b3);
    tl_feature_clear(&c);
    tl_feature_clear(&s);
}

/* Sums saturate at +-DBL_MAX rather than overflow to an infinity no later
 * event could undo: sum, avg's sum, window_sum's buckets and total,
 * decayed_sum (also read before its reference time). */
static void test_sums_saturate(void)
{
    tl_feature o = {.half_life_ms = DAY};
    tl_feature fs[] = {
        make(TL_FK_SUM, NULL, "amount", 0, 0, 0),
        make(TL_FK_AVG, NULL, "amount", 0, 0, 0),
        make(TL_FK_WINDOW_SUM, NULL, "amount", 2 * DAY, DAY, 0),
        make_opts(TL_FK_DECAYED_SUM, NULL, "amount", 0, 0, 0, &o),
        /* an expression's own overflow (amount * 1e300 is inf) */
        make(TL_FK_SUM, NULL, "amount * 1e300", 0, 0, 0),
    };
    size_t n = sizeof fs / sizeof fs[0];
    for (size_t k = 0; k < n; k++) {
        for (int sign = 1; sign >= -1; sign -= 2) {
            unsigned char *b = calloc(1, fs[k].size);
            apply(&fs[k], b, event(DAY, "p", "x", sign * 1e308, 1));
            apply(&fs[k], b, event(DAY, "p", "x", sign * 1e308, 1));
            double want = fs[k].kind == TL_FK_AVG ? DBL_MAX / 2 : DBL_MAX;
            CU_ASSERT_EQUAL(num(&fs[k], b, DAY), sign * want);
            /* window_sum: a third in the next bucket, summed on read */
            apply(&fs[k], b, event(2 * DAY, "p", "x", sign * 1e308, 1));
            double v = num(&fs[k], b, 2 * DAY);
            CU_ASSERT(isfinite(v) && v * sign >= want / 1.5);
            /* decayed_sum read a day before its reference: doubled */
            v = num(&fs[k], b, DAY);
            CU_ASSERT(isfinite(v));
            char buf[64];
            CU_ASSERT(tl_feature_format(&fs[k], b, 2 * DAY, buf,
                                        sizeof buf) > 0);
            CU_ASSERT_PTR_NULL(strstr(buf, "inf"));
            roundtrip(&fs[k], b);
            free(b);
        }
        tl_feature_clear(&fs[k]);
    }
}

static void test_top_k(void)
{
    tl_feature o = {.k = 2, .capacity = 3};
    tl_feature f = make_opts(TL_FK_TOP_K, NULL, "item", 0, 0, 0, &o);
    CU_ASSERT_EQUAL(f.type, TL_T_LIST_STR);
    unsigned char *b = calloc(1, f.size);
    const char *seq[] = {"a", "b", "a", "c"};
    for (int i = 0; i < 4; i++) apply(&f, b, event(i + 1, "p", seq[i], 0, 0));
    const char *w1[] = {"a", "b"}; /* a:2, b:1, c:1 - the tie goes by value */
    list_is(&f, b, 4, w1, 2);
    /* Full: d takes over the least counter (c, 1) and counts 1 + 1, of
     * which 1 is certain: it ties b, and the tie goes by value. */
    apply(&f, b, event(5, "p", "d", 0, 0));
    const char *w2[] = {"a", "b"};
    list_is(&f, b, 5, w2, 2);
    fmt_is(&f, b, "[\"a\",\"b\"]");
    roundtrip(&f, b);
    /* d once more: 2 certain, above b. */
    apply(&f, b, event(6, "p", "d", 0, 0));
    const char *w2b[] = {"a", "d"};
    list_is(&f, b, 6, w2b, 2);
    roundtrip(&f, b);
    free(b);
    tl_feature_clear(&f);

    tl_feature od = {.k = 3, .half_life_ms = DAY};
    tl_feature g = make_opts(TL_FK_TOP_K, NULL, "item", 0, 0, 0, &od);
    CU_ASSERT_EQUAL(g.capacity, 10);
    b = calloc(1, g.size);
    apply(&g, b, event(0, "p", "tea", 0, 0));
    apply(&g, b, event(0, "p", "tea", 0, 0));
    apply(&g, b, event(2 * DAY, "p", "milk", 0, 0)); /* tea decayed to 0.5 */
    const char *w3[] = {"milk", "tea"};
    list_is(&g, b, 2 * DAY, w3, 2);
    apply(&g, b, event(DAY, "p", "tea", 0, 0)); /* late: weight 0.5, ties milk */
    const char *w4[] = {"milk", "tea"};        /* 1 vs 1: by value */
    list_is(&g, b, 2 * DAY, w4, 2);
    apply(&g, b, event(2 * DAY, "p", "tea", 0, 0));
    const char *w5[] = {"tea", "milk"};
    list_is(&g, b, 2 * DAY, w5, 2);
    roundtrip(&g, b);
    free(b);
    tl_feature_clear(&g);
}

static void test_distinct(void)
{
    tl_feature o = {.exact_up_to = 3, .precision = 10};
    tl_feature f = make_opts(TL_FK_DISTINCT, NULL, "item", 0, 0, 0, &o);
    unsigned char *b = calloc(1, f.size), *c = calloc(1, f.size);
    const char *vals[] = {"x", "y", "x", "z", "y"};
    for (int i = 0; i < 5; i++) apply(&f, b, event(i, "p", vals[i], 0, 0));
    CU_ASSERT_EQUAL(num(&f, b, 5), 3);
    fmt_is(&f, b, "3");
    roundtrip(&f, b);
    /* Past the bound it becomes a sketch: 1000 values within 3 sigma. */
    char item[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(item, sizeof item, "item-%d", i);
        apply(&f, b, event(10 + i, "p", item, 0, 0));
        snprintf(item, sizeof item, "item-%d", 999 - i);
        apply(&f, c, event(10 + i, "p", item, 0, 0));
    }
    for (int i = 0; i < 5; i++) apply(&f, c, event(2000 + i, "p", vals[i], 0, 0));
    double est = num(&f, b, 2000);
    CU_ASSERT(est > 1003 * (1 - 3 * 1.04 / 32) && est < 1003 * (1 + 3 * 1.04 / 32));
    /* The sketch does not depend on the order values came in. */
    CU_ASSERT(memcmp((char *)b + 16, (char *)c + 16, f.size - 16) == 0);
    roundtrip(&f, b);
    /* Numbers count by value. */
    tl_feature g = make(TL_FK_DISTINCT, NULL, "amount", 0, 0, 0);
    unsigned char *d = calloc(1, g.size);
    apply(&g, d, event(1, "p", NULL, 1.5, 1));
    apply(&g, d, event(2, "p", NULL, 1.5, 1));
    apply(&g, d, event(3, "p", NULL, 2, 1));
    CU_ASSERT_EQUAL(num(&g, d, 3), 2);
    free(b), free(c), free(d);
    tl_feature_clear(&f);
    tl_feature_clear(&g);
}

static void test_last_n(void)
{
    tl_feature o = {.n = 3};
    tl_feature f = make_opts(TL_FK_LAST_N, NULL, "item", 0, 0, 0, &o);
    CU_ASSERT_EQUAL(f.type, TL_T_LIST_STR);
    unsigned char *b = calloc(1, f.size);
    apply(&f, b, event(1, "p", "a", 0, 0));
    apply(&f, b, event(3, "p", "b", 0, 0));
    apply(&f, b, event(2, "p", "c", 0, 0)); /* out of order */
    apply(&f, b, event(4, "p", "d", 0, 0));
    const char *w1[] = {"d", "b", "c"};
    list_is(&f, b, 4, w1, 3);
    apply(&f, b, event(4, "p", "e", 0, 0)); /* tie: the later arrival first */
    const char *w2[] = {"e", "d", "b"};
    list_is(&f, b, 4, w2, 3);
    CU_ASSERT_EQUAL(apply(&f, b, event(0, "p", "old", 0, 0)), 0);
    fmt_is(&f, b, "[\"e\",\"d\",\"b\"]");
    roundtrip(&f, b);
    free(b);
    tl_feature_clear(&f);

    tl_feature g = make_opts(TL_FK_LAST_N, NULL, "amount", 0, 0, 0, &o);
    CU_ASSERT_EQUAL(g.type, TL_T_LIST_NUM);
    b = calloc(1, g.size);
    apply(&g, b, event(1, "p", NULL, 1.5, 1));
    apply(&g, b, event(2, "p", NULL, -2, 1));
    tl_value v;
    tl_feature_read(&g, b, 2, &v);
    CU_ASSERT_EQUAL(v.u.list.n, 2);
    CU_ASSERT_EQUAL(tl_list_num(&v, 0), -2);
    CU_ASSERT_EQUAL(tl_list_num(&v, 1), 1.5);
    roundtrip(&g, b);
    free(b);
    tl_feature_clear(&g);
}

static void test_since(void)
{
    tl_feature fs[2];
    memset(fs, 0, sizeof fs);
    fs[0].name = strdup("last_visit");
    fs[0].kind = TL_FK_LAST_SEEN;
    fs[1].name = strdup("since_visit");
    fs[1].kind = TL_FK_SINCE;
    fs[1].of = 0;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(tl_feature_finish(&fs[0], fs, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL_FATAL(tl_feature_finish(&fs[1], fs, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(fs[1].size, 0);
    CU_ASSERT(!tl_feature_has_state(&fs[1]));
    size_t size = tl_features_layout(fs, 2, 0);
    unsigned char *b = calloc(1, size);
    tl_value v;
    tl_feature_read(&fs[1], b, 5000, &v);
    CU_ASSERT_EQUAL(v.type, TL_T_NULL);
    tl_event e = event(1000, "visit", NULL, 0, 0);
    tl_feature_apply(&fs[0], b, &e, tl_event_fetch, &e);
    tl_feature_read(&fs[1], b, 61000, &v);
    CU_ASSERT_EQUAL(v.type, TL_T_NUM);
    CU_ASSERT_EQUAL(v.u.num, 60);
    char buf[32];
    CU_ASSERT_EQUAL(tl_feature_format(&fs[1], b, 91000, buf, sizeof buf), 2);
    CU_ASSERT_STRING_EQUAL(buf, "90");
    /* since of a count is refused */
    fs[0].kind = TL_FK_COUNT;
    CU_ASSERT_EQUAL(tl_feature_finish(&fs[1], fs, err, sizeof err), TL_ERR_CONFIG);
    if (strstr(err, "is a count") == NULL) fprintf(stderr, "since: %s\n", err);
    CU_ASSERT_STRING_EQUAL(err, "'of' must name a first_seen or last_seen "
                                "feature; 'last_visit' is a count");
    free(b);
    tl_feature_clear(&fs[0]);
    tl_feature_clear(&fs[1]);
}

/* Before any event, the readable value is what a rule reads: 0 for the
 * counting kinds, none (-1: no field) for the others; and a count expired
 * by ttl has none either. */
static void test_format_never_set(void)
{
    tl_feature hl = {.half_life_ms = DAY}, k = {.k = 2}, n = {.n = 2},
               ttl = {.ttl_ms = DAY};
    struct {
        tl_feature f;
        const char *want;
    } c[] = {
        {make(TL_FK_COUNT, NULL, NULL, 0, 0, 0), "0"},
        {make(TL_FK_SUM, NULL, "amount", 0, 0, 0), "0"},
        {make(TL_FK_WINDOW_COUNT, NULL, NULL, DAY, 0, 0), "0"},
        {make(TL_FK_WINDOW_SUM, NULL, "amount", DAY, 0, 0), "0"},
        {make_opts(TL_FK_DECAYED_COUNT, NULL, NULL, 0, 0, 0, &hl), "0"},
        {make_opts(TL_FK_DECAYED_SUM, NULL, "amount", 0, 0, 0, &hl), "0"},
        {make(TL_FK_DISTINCT, NULL, "item", 0, 0, 0), "0"},
        {make_opts(TL_FK_COUNT, NULL, NULL, 0, 0, 0, &ttl), "0"},
        {make(TL_FK_MIN, NULL, "amount", 0, 0, 0), NULL},
        {make(TL_FK_MAX, NULL, "amount", 0, 0, 0), NULL},
        {make(TL_FK_AVG, NULL, "amount", 0, 0, 0), NULL},
        {make(TL_FK_LAST, NULL, "item", 0, 0, 0), NULL},
        {make(TL_FK_FIRST_SEEN, NULL, NULL, 0, 0, 0), NULL},
        {make(TL_FK_LAST_SEEN, NULL, NULL, 0, 0, 0), NULL},
        {make_opts(TL_FK_TOP_K, NULL, "item", 0, 0, 0, &k), NULL},
        {make_opts(TL_FK_LAST_N, NULL, "item", 0, 0, 0, &n), NULL},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        unsigned char *b = calloc(1, c[i].f.size);
        char buf[32];
        int len = tl_feature_format(&c[i].f, b, 5 * DAY, buf, sizeof buf);
        if (c[i].want) {
            CU_ASSERT_EQUAL(len, (int)strlen(c[i].want));
            CU_ASSERT_STRING_EQUAL(buf, c[i].want);
        } else {
            CU_ASSERT_EQUAL(len, -1);
        }
        if (c[i].f.ttl_ms) { /* counted, then expired: none */
            apply(&c[i].f, b, event(DAY, "p", NULL, 0, 0));
            CU_ASSERT_EQUAL(tl_feature_format(&c[i].f, b, 3 * DAY, buf,
                                              sizeof buf), -1);
        }
        free(b);
        tl_feature_clear(&c[i].f);
    }
}

/* Lists in Redis are JSON arrays: an item with a comma, a quote, a
 * backslash or a control character reads back as itself. */
static void test_format_lists_json(void)
{
    tl_feature o = {.n = 4};
    tl_feature f = make_opts(TL_FK_LAST_N, NULL, "item", 0, 0, 0, &o);
    unsigned char *b = calloc(1, f.size);
    apply(&f, b, event(1, "p", "Boots", 0, 0));
    apply(&f, b, event(2, "p", "Shoes, red", 0, 0));
    apply(&f, b, event(3, "p", "say \"hi\"\\", 0, 0));
    apply(&f, b, event(4, "p", "tab\there \xc3\xa9 \xff", 0, 0));
    fmt_is(&f, b, "[\"tab\\u0009here \xc3\xa9 \xef\xbf\xbd\",\"say \\\"hi\\\"\\\\\","
                  "\"Shoes, red\",\"Boots\"]");
    free(b);
    tl_feature_clear(&f);
    tl_feature nums = make_opts(TL_FK_LAST_N, NULL, "amount", 0, 0, 0, &o);
    b = calloc(1, nums.size);
    apply(&nums, b, event(1, "p", NULL, 1.5, 1));
    apply(&nums, b, event(2, "p", NULL, 3, 1));
    fmt_is(&nums, b, "[3,1.5]");
    free(b);
    tl_feature_clear(&nums);
}

static void test_ttl(void)
{
    tl_feature o = {.ttl_ms = DAY};
    tl_feature f = make_opts(TL_FK_COUNT, NULL, NULL, 0, 0, 0, &o);
    unsigned char *b = calloc(1, f.size);
    char buf[32];
    apply(&f, b, event(0, "v", NULL, 0, 0));
    apply(&f, b, event(10, "v", NULL, 0, 0));
    CU_ASSERT_EQUAL(num(&f, b, DAY + 10), 2);          /* exactly ttl old: live */
    CU_ASSERT(tl_feature_live(&f, b, DAY + 10));
    CU_ASSERT(!tl_feature_live(&f, b, DAY + 11));       /* older: missing */
    tl_value gone;
    tl_feature_read(&f, b, DAY + 11, &gone);
    CU_ASSERT_EQUAL(gone.type, TL_T_NULL);              /* not 0: missing */
    CU_ASSERT_EQUAL(tl_feature_format(&f, b, DAY + 11, buf, sizeof buf), -1);
    /* An event after expiry starts over instead of continuing. */
    apply(&f, b, event(3 * DAY, "v", NULL, 0, 0));
    CU_ASSERT_EQUAL(num(&f, b, 3 * DAY), 1);
    free(b);
    tl_feature_clear(&f);

    tl_feature l = make_opts(TL_FK_LAST, NULL, "item", 0, 0, 0, &o);
    b = calloc(1, l.size);
    apply(&l, b, event(0, "p", "tea", 0, 0));
    tl_value v;
    tl_feature_read(&l, b, 2 * DAY, &v);
    CU_ASSERT_EQUAL(v.type, TL_T_NULL);
    free(b);
    tl_feature_clear(&l);
}

static void test_new_finish_errors(void)
{
    tl_feature o;
    char err[256];
    struct {
        tl_feature_kind kind;
        const char *field;
        tl_feature opts;
        const char *want;
    } cases[] = {
        {TL_FK_DECAYED_COUNT, NULL, {.k = 0},
         "kind decayed_count needs a 'half_life' above 0"},
        {TL_FK_COUNT, NULL, {.half_life_ms = DAY}, "kind count takes no 'half_life'"},
        {TL_FK_TOP_K, "item", {.k = 0}, "k must be from 1 to 100, got 0"},
        {TL_FK_TOP_K, "item", {.k = 5, .capacity = 3},
         "capacity must be from k (5) to 10000, got 3"},
        {TL_FK_TOP_K, "amount", {.k = 1}, "field of kind top_k must be a string, got number"},
        {TL_FK_SUM, "amount", {.k = 1}, "kind sum takes no 'k' or 'capacity'"},
        {TL_FK_LAST_N, "item", {.n = 0}, "n must be from 1 to 100, got 0"},
        {TL_FK_COUNT, NULL, {.n = 2}, "kind count takes no 'n'"},
        {TL_FK_DISTINCT, "item", {.precision = 3}, "precision must be from 4 to 16, got 3"},
        {TL_FK_COUNT, NULL, {.exact_up_to = 3},
         "kind count takes no 'exact_up_to' or 'precision'"},
        {TL_FK_SINCE, NULL, {.of = -1},
         "kind since needs 'of' (a first_seen or last_seen feature)"},
        {TL_FK_COUNT, NULL, {.ttl_ms = -1}, "ttl must not be negative"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        o = cases[i].opts;
        o.name = strdup("f");
        o.kind = cases[i].kind;
        o.field = cases[i].field
                      ? tl_test_event_expr(cases[i].field, TL_T_NULL)
                      : NULL;
        err[0] = 0;
        CU_ASSERT_EQUAL(tl_feature_finish(&o, NULL, err, sizeof err), TL_ERR_CONFIG);
        if (strcmp(err, cases[i].want) != 0)
            fprintf(stderr, "case %zu: got '%s'\n", i, err);
        CU_ASSERT_STRING_EQUAL(err, cases[i].want);
        tl_feature_clear(&o);
    }
}

/* Issue 20: a customer's 19 purchase lines, one item (85123A) bought twice
 * and 17 bought once, with the shipped config's top_k (k 3, the default
 * capacity 10).  Ranked by Space-Saving's estimates, eight items that only
 * took over a counter tied 85123A at 2 and sorted before it; ranked by the
 * guaranteed count (estimate - error), 85123A is the one certainly bought
 * twice. */
static void test_top_k_ranks_what_is_certain(void)
{
    tl_feature o = {.k = 3};
    tl_feature f = make_opts(TL_FK_TOP_K, NULL, "item", 0, 0, 16, &o);
    CU_ASSERT_EQUAL(f.capacity, 10);
    unsigned char *b = calloc(1, f.size);
    const char *lines[] = {"85123A", "85123A", "20725",  "21212", "21931",
                           "22086",  "22197",  "22383",  "22423", "22457",
                           "22720",  "23203",  "47566",  "48138", "71053",
                           "79321",  "82482",  "84879",  "85099B"};
    for (int i = 0; i < 19; i++)
        apply(&f, b, event(i + 1, "purchase", lines[i], 0, 0));
    tl_value v;
    tl_feature_read(&f, b, 19, &v);
    CU_ASSERT_EQUAL(v.u.list.n, 3);
    size_t len;
    const char *first = tl_list_str(&v, 0, &len);
    CU_ASSERT(len == 6 && memcmp(first, "85123A", 6) == 0);
    /* The rest are certain once: by value, the one never taken over
     * (20725) and the first takeover. */
    const char *want[] = {"85123A", "20725", "23203"};
    list_is(&f, b, 19, want, 3);
    roundtrip(&f, b);
    free(b);

    /* Within capacity counts are exact whatever the order: 85123A second
     * to last. */
    tl_feature o2 = {.k = 3, .capacity = 20};
    tl_feature g = make_opts(TL_FK_TOP_K, NULL, "item", 0, 0, 16, &o2);
    b = calloc(1, g.size);
    for (int i = 1; i < 19; i++)
        apply(&g, b, event(i, "purchase", lines[i], 0, 0));
    apply(&g, b, event(19, "purchase", "85123A", 0, 0));
    const char *want2[] = {"85123A", "20725", "21212"};
    list_is(&g, b, 19, want2, 3);
    free(b);
    tl_feature_clear(&f);
    tl_feature_clear(&g);
}

/* The state keeps each count's error ("<count>/<err>"); state saved before
 * it did ("<count>,...") still loads: exact while the table was not full,
 * else every error is taken to be the smallest count, the order kept. */
static void test_top_k_state_with_errors(void)
{
    tl_feature o = {.k = 2, .capacity = 3};
    tl_feature f = make_opts(TL_FK_TOP_K, NULL, "item", 0, 0, 0, &o);
    unsigned char *b = calloc(1, f.size);
    char err[256], *text = malloc(tl_feature_save_size(&f));
    const char *seq[] = {"a", "b", "a", "c", "d"};
    for (int i = 0; i < 5; i++) apply(&f, b, event(i + 1, "p", seq[i], 0, 0));
    tl_feature_save(&f, b, text);
    CU_ASSERT_STRING_EQUAL(text, "5;0;2/0,1:a1/0,1:b2/1,1:d");

    const char *old_partial = "5;0;2,1:a1,1:b";
    CU_ASSERT_EQUAL(tl_feature_load(&f, b, old_partial, strlen(old_partial), err, sizeof err), TL_OK);
    tl_feature_save(&f, b, text);
    CU_ASSERT_STRING_EQUAL(text, "5;0;2/0,1:a1/0,1:b");
    const char *old_full = "5;0;3,1:d2,1:a1,1:b";
    CU_ASSERT_EQUAL(tl_feature_load(&f, b, old_full, strlen(old_full), err, sizeof err), TL_OK);
    tl_feature_save(&f, b, text);
    CU_ASSERT_STRING_EQUAL(text, "5;0;3/1,1:d2/1,1:a1/1,1:b");
    const char *w[] = {"d", "a"};
    list_is(&f, b, 5, w, 2);

    const char *bad[] = {"5;0;2/0,1:a1,1:b",  /* forms mixed */
                         "5;0;2,1:a1/0,1:b", "5;0;1/2,1:a", /* err above count */
                         "5;0;1/-1,1:a", "5;0;1/x,1:a"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CU_ASSERT_EQUAL(tl_feature_load(&f, b, bad[i], strlen(bad[i]), err, sizeof err),
                        TL_ERR_DECODE);
    free(text);
    free(b);
    tl_feature_clear(&f);
}

static void test_new_load_rejects_malformed(void)
{
    tl_feature o = {.k = 2, .capacity = 2};
    tl_feature tk = make_opts(TL_FK_TOP_K, NULL, "item", 0, 0, 0, &o);
    tl_feature on = {.n = 2};
    tl_feature ln = make_opts(TL_FK_LAST_N, NULL, "item", 0, 0, 0, &on);
    tl_feature ob = {.exact_up_to = 2};
    tl_feature ds = make_opts(TL_FK_DISTINCT, NULL, "item", 0, 0, 0, &ob);
    unsigned char *b = calloc(1, 8192);
    char err[256];
    const char *bad_tk[] = {"1;0;1,2:a", "1;0;1,1:a2,1:b1,1:c", "1;0;x,1:a", "1;0"};
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(tl_feature_load(&tk, b, bad_tk[i], strlen(bad_tk[i]), err, sizeof err),
                        TL_ERR_DECODE);
    const char *good_tk = "1;0;2,1:a1,3:b;c";
    CU_ASSERT_EQUAL(tl_feature_load(&tk, b, good_tk, strlen(good_tk), err, sizeof err), TL_OK);
    const char *w[] = {"a", "b;c"};
    list_is(&tk, b, 1, w, 2);
    const char *bad_ln[] = {"1;5,2:a", "1;5,1:a6,1:bc", "1;x,1:a"};
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(tl_feature_load(&ln, b, bad_ln[i], strlen(bad_ln[i]), err, sizeof err),
                        TL_ERR_DECODE);
    const char *bad_ds[] = {"1;E;0a", "1;X;", "1;E;00000000000000020000000000000001",
                            "1;H;00"};
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(tl_feature_load(&ds, b, bad_ds[i], strlen(bad_ds[i]), err, sizeof err),
                        TL_ERR_DECODE);
    free(b);
    tl_feature_clear(&tk);
    tl_feature_clear(&ln);
    tl_feature_clear(&ds);
}

/* Applies the same events to features a and b, saves a's state and loads
 * it into a fresh block of b: 0 when the load refuses it. */
static int reshape(const tl_feature *a, const tl_feature *b,
                   unsigned char *ba, unsigned char *bb, unsigned char *loaded,
                   const int64_t *ts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        apply(a, ba, event(ts[i], "view", i % 2 ? "x" : "y", 0, 0));
        apply(b, bb, event(ts[i], "view", i % 2 ? "x" : "y", 0, 0));
    }
    char *text = malloc(tl_feature_save_size(a));
    size_t len = tl_feature_save(a, ba, text);
    char err[256];
    int rc = tl_feature_load(b, loaded, text, len, err, sizeof err);
    free(text);
    return rc == TL_OK;
}

/* A reload may shorten a window at the same resolution, or last_n's n:
 * the stored state then loads as exactly the state the new option would
 * have built (what config_reload lets through without --force).  A state
 * saved at another resolution is refused (reset), not misread. */
static void test_load_converts_exactly(void)
{
    /* Late events too: within the long window, outside the short one. */
    const int64_t ts[] = {DAY, 5 * DAY, 20 * DAY, 26 * DAY + 5, 21 * DAY,
                          27 * DAY, 8 * DAY, 29 * DAY + 1, 28 * DAY};
    size_t nts = sizeof ts / sizeof *ts;
    tl_feature w30 = make(TL_FK_WINDOW_COUNT, NULL, NULL, 30 * DAY, DAY, 0);
    tl_feature w7 = make(TL_FK_WINDOW_COUNT, NULL, NULL, 7 * DAY, DAY, 0);
    tl_feature w7h = make(TL_FK_WINDOW_COUNT, NULL, NULL, 7 * DAY, DAY / 2, 0);
    unsigned char *ba = calloc(1, w30.size), *bb = calloc(1, w7.size),
                  *loaded = calloc(1, w7.size);
    CU_ASSERT_FATAL(reshape(&w30, &w7, ba, bb, loaded, ts, nts));
    CU_ASSERT(memcmp(bb, loaded, w7.size) == 0);
    CU_ASSERT_EQUAL(num(&w7, loaded, 29 * DAY + 1), 4);
    free(bb);
    free(loaded);
    memset(ba, 0, w30.size);
    bb = calloc(1, w7h.size);
    loaded = calloc(1, w7h.size);
    CU_ASSERT(!reshape(&w7, &w7h, ba, bb, loaded, ts, nts));
    CU_ASSERT_EQUAL(num(&w7h, loaded, 29 * DAY + 1), 0);
    free(ba);
    free(bb);
    free(loaded);
    tl_feature o5 = {.n = 5}, o2 = {.n = 2};
    tl_feature l5 = make_opts(TL_FK_LAST_N, NULL, "item", 0, 0, 0, &o5);
    tl_feature l2 = make_opts(TL_FK_LAST_N, NULL, "item", 0, 0, 0, &o2);
    ba = calloc(1, l5.size);
    bb = calloc(1, l2.size);
    loaded = calloc(1, l2.size);
    CU_ASSERT_FATAL(reshape(&l5, &l2, ba, bb, loaded, ts, nts));
    CU_ASSERT(memcmp(bb, loaded, l2.size) == 0);
    const char *want[] = {"x", "y"};
    list_is(&l2, loaded, 29 * DAY + 1, want, 2);
    free(ba);
    free(bb);
    free(loaded);
    tl_feature_clear(&w30);
    tl_feature_clear(&w7);
    tl_feature_clear(&w7h);
    tl_feature_clear(&l5);
    tl_feature_clear(&l2);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("feature", NULL, NULL);
    CU_add_test(s, "count", test_count);
    CU_add_test(s, "sum", test_sum);
    CU_add_test(s, "last (string)", test_last_string);
    CU_add_test(s, "last truncates at a UTF-8 boundary", test_last_truncates_utf8);
    CU_add_test(s, "last (number)", test_last_number);
    CU_add_test(s, "last_seen", test_last_seen);
    CU_add_test(s, "window_count", test_window_count);
    CU_add_test(s, "window_count before 1970", test_window_before_1970);
    CU_add_test(s, "window_count default resolution", test_window_default_resolution);
    CU_add_test(s, "finish errors", test_finish_errors);
    CU_add_test(s, "load rejects malformed state", test_load_rejects_malformed);
    CU_add_test(s, "layout and kind names", test_layout_and_kinds);
    CU_add_test(s, "min, max, avg", test_min_max_avg);
    CU_add_test(s, "first_seen", test_first_seen);
    CU_add_test(s, "window_sum", test_window_sum);
    CU_add_test(s, "decayed_count, decayed_sum", test_decayed);
    CU_add_test(s, "sums saturate at DBL_MAX", test_sums_saturate);
    CU_add_test(s, "top_k", test_top_k);
    CU_add_test(s, "top_k ranks by the guaranteed count", test_top_k_ranks_what_is_certain);
    CU_add_test(s, "top_k state keeps the errors, old state loads",
                test_top_k_state_with_errors);
    CU_add_test(s, "distinct", test_distinct);
    CU_add_test(s, "last_n", test_last_n);
    CU_add_test(s, "since", test_since);
    CU_add_test(s, "ttl", test_ttl);
    CU_add_test(s, "never set: counts write 0, others nothing",
                test_format_never_set);
    CU_add_test(s, "lists are JSON arrays", test_format_lists_json);
    CU_add_test(s, "option errors of the newer kinds", test_new_finish_errors);
    CU_add_test(s, "newer kinds reject malformed state", test_new_load_rejects_malformed);
    CU_add_test(s, "a shorter window or last_n loads exactly",
                test_load_converts_exactly);
    return tl_test_run();
}
