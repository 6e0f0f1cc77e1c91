/* Feature kinds: hand-computed values, boundaries, and exact save/load. */
#include <CUnit/Basic.h>
#include <string.h>

#include "../support/testutil.h"
#include "feature.h"

#define DAY 86400000LL

static tl_expr *ev_expr(const char *src, tl_type want)
{
    tl_expr_scope sc = {tl_event_resolve, NULL};
    size_t off = 0;
    char err[256];
    tl_expr *e = tl_expr_compile(src, strlen(src), &sc, want, &off, err, sizeof err);
    if (!e) fprintf(stderr, "compile %s: %s\n", src, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    return e;
}

/* A finished feature laid out alone at offset 0. */
static tl_feature make(tl_feature_kind kind, const char *where,
                       const char *field, int64_t window, int64_t res,
                       uint32_t max_len)
{
    tl_feature f;
    memset(&f, 0, sizeof f);
    f.name = strdup("f");
    f.kind = kind;
    f.where = where ? ev_expr(where, TL_T_BOOL) : NULL;
    f.field = field ? ev_expr(field, TL_T_NULL) : NULL;
    f.window_ms = window;
    f.resolution_ms = res;
    f.max_len = max_len;
    char err[256];
    int rc = tl_feature_finish(&f, err, sizeof err);
    if (rc) fprintf(stderr, "finish: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, TL_OK);
    tl_features_layout(&f, 1, 0);
    return f;
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
    char buf[128];
    int n = tl_feature_format(f, b, buf, sizeof buf);
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
    fmt_is(&f, b, NULL);               /* ... but is not written */
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
    f.field = field ? ev_expr(field, TL_T_NULL) : NULL;
    f.window_ms = win;
    f.resolution_ms = res;
    f.max_len = max_len;
    char err[256] = "";
    CU_ASSERT_EQUAL(tl_feature_finish(&f, err, sizeof err), TL_ERR_CONFIG);
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
                 "'max_length' applies only to kind last on a string field");
    finish_fails(TL_FK_LAST, "null", 0, 0, 0,
                 "field of kind last must be a number, string or bool, not "
                 "always null");
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
    const char *bad_win[] = {"1;5;1,2,3,4", "1;x;1", "1;5;a", "1"};
    for (size_t i = 0; i < sizeof bad_win / sizeof *bad_win; i++)
        CU_ASSERT_EQUAL(tl_feature_load(&w, b, bad_win[i], strlen(bad_win[i]),
                                        err, sizeof err), TL_ERR_DECODE);
    CU_ASSERT_EQUAL(tl_feature_load(&s, b, "1;2", 3, err, sizeof err), TL_ERR_DECODE);
    CU_ASSERT_EQUAL(tl_feature_load(&w, b, "5;7;", 4, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(num(&w, b, 7 * DAY), 0);
    CU_ASSERT_EQUAL(tl_feature_load(&w, b, "5;7;2,1", 7, err, sizeof err), TL_OK);
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
    return tl_test_run();
}
