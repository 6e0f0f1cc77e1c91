/* Metrics: histogram buckets, the exposition writer, the strict parser,
 * the bearer-token comparison. */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../support/testutil.h"
#include "http.h"
#include "metrics.h"

typedef struct seen {
    char text[4096]; /* "name{k=v,...} value\n" per sample */
    int n;
} seen;

static void record(void *ud, const char *name, const char *const *labels,
                   size_t nl, double v)
{
    seen *s = ud;
    size_t len = strlen(s->text);
    len += (size_t)snprintf(s->text + len, sizeof s->text - len, "%s{", name);
    for (size_t i = 0; i < nl; i++)
        len += (size_t)snprintf(s->text + len, sizeof s->text - len, "%s%s=%s",
                                i ? "," : "", labels[2 * i], labels[2 * i + 1]);
    snprintf(s->text + len, sizeof s->text - len, "} %g\n", v);
    s->n++;
}

static int parse(const char *text, seen *s, char *err, size_t errsz)
{
    memset(s, 0, sizeof *s);
    return tl_prom_parse(text, strlen(text), record, s, err, errsz);
}

static void test_histogram(void)
{
    tl_histogram h;
    memset(&h, 0, sizeof h);
    tl_histogram_observe_us(&h, 500);      /* 0.0005 s: first bucket */
    tl_histogram_observe_us(&h, 1000);     /* exactly 1 ms: le is inclusive */
    tl_histogram_observe_us(&h, 30000);    /* 0.03 s: le 0.05 */
    tl_histogram_observe_us(&h, 60000000); /* 60 s: +Inf */
    CU_ASSERT_EQUAL(tl_counter_get(&h.bucket[0]), 2);
    CU_ASSERT_EQUAL(tl_counter_get(&h.bucket[5]), 1);
    CU_ASSERT_EQUAL(tl_counter_get(&h.bucket[TL_HIST_BUCKETS]), 1);
    CU_ASSERT_EQUAL(tl_counter_get(&h.sum_us), 60031500);

    tl_buf b = {0};
    tl_prom_family(&b, "x_seconds", "histogram", "test");
    const char *lb[] = {"op", "load", NULL};
    tl_prom_histogram(&b, "x_seconds", lb, &h);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.s, "x_seconds_bucket{op=\"load\",le=\"0.001\"} 2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.s, "x_seconds_bucket{op=\"load\",le=\"0.025\"} 2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.s, "x_seconds_bucket{op=\"load\",le=\"0.05\"} 3\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.s, "x_seconds_bucket{op=\"load\",le=\"+Inf\"} 4\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.s, "x_seconds_sum{op=\"load\"} 60.031500\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.s, "x_seconds_count{op=\"load\"} 4\n"));
    seen s;
    char err[TL_ERRSZ] = "";
    CU_ASSERT_EQUAL(parse(b.s, &s, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(s.n, TL_HIST_BUCKETS + 3);
    tl_buf_free(&b);
}

static void test_writer_escapes_and_parses(void)
{
    tl_buf b = {0};
    tl_prom_family(&b, "t_total", "counter", "a \\\\ help");
    const char *lb[] = {"rule", "a\"b\\c\nd", "v", "", NULL};
    tl_prom_sample_u64(&b, "t_total", lb, 18446744073709551615ULL);
    tl_prom_family(&b, "g", "gauge", "g");
    tl_prom_sample(&b, "g", NULL, 0.25);
    tl_prom_sample(&b, "g", (const char *[]){"k", "inf", NULL}, INFINITY);
    tl_prom_sample(&b, "g", (const char *[]){"k", "nan", NULL}, NAN);
    CU_ASSERT_STRING_EQUAL(
        b.s, "# HELP t_total a \\\\ help\n# TYPE t_total counter\n"
             "t_total{rule=\"a\\\"b\\\\c\\nd\",v=\"\"} 18446744073709551615\n"
             "# HELP g g\n# TYPE g gauge\ng 0.25\ng{k=\"inf\"} +Inf\n"
             "g{k=\"nan\"} NaN\n");
    seen s;
    char err[TL_ERRSZ] = "";
    CU_ASSERT_EQUAL(parse(b.s, &s, err, sizeof err), TL_OK);
    CU_ASSERT_STRING_EQUAL(s.text, "t_total{rule=a\"b\\c\nd,v=} 1.84467e+19\n"
                                   "g{} 0.25\ng{k=inf} inf\ng{k=nan} nan\n");
    tl_buf_free(&b);
}

static void test_parser_rejects(void)
{
    static const char *const T = "# TYPE m counter\n";
    static const char *const bad[][2] = {
        {"m 1\n", "line 1: sample m without a # TYPE line for its family"},
        {"# TYPE m counter\nm 1", "line 2: the text does not end with a newline"},
        {"# TYPE m counter\n# TYPE m gauge\n", "line 2: second # TYPE for m"},
        {"# TYPE m countr\n", "line 1: unknown metric type 'countr'"},
        {"# TYPE 1m counter\n", "line 1: # TYPE without a valid metric name"},
        {"# HELP m bad \\x escape\n", "line 1: bad escape in # HELP text"},
        {"%sm{a=\"1\",a=\"2\"} 1\n", "line 2: label a twice"},
        {"%sm{a=1} 1\n", "line 2: expected =\" after label a"},
        {"%sm{a=\"1} 1\n", "line 2: unterminated label value"},
        {"%sm{a=\"\\t\"} 1\n", "line 2: bad escape \\t in label value"},
        {"%sm{a=\"1\" b=\"2\"} 1\n", "line 2: expected , or } after a label"},
        {"%sm{:a=\"1\"} 1\n", "line 2: expected a label name"},
        {"%sm 1x\n", "line 2: bad value '1x'"},
        {"%sm  1\n", "line 2: bad value ''"},
        {"%sm\n", "line 2: expected a space before the value"},
        {"%sm 1 12.5\n", "line 2: bad timestamp '12.5'"},
        {"%sm inf\n", "line 2: bad value 'inf'"},
        {"# TYPE h histogram\nh 1\n",
         "line 2: sample h without a # TYPE line for its family"},
        {"# TYPE h histogram\nh_bucket 1\n", "line 2: h_bucket without an le label"},
        {"# TYPE s summary\ns_bucket{le=\"1\"} 1\n",
         "line 2: sample s_bucket without a # TYPE line for its family"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256], err[TL_ERRSZ] = "";
        snprintf(text, sizeof text, bad[i][0], T);
        seen s;
        int rc = parse(text, &s, err, sizeof err);
        if (rc != TL_ERR_DECODE || strcmp(err, bad[i][1]))
            fprintf(stderr, "\n  case %zu: got %d '%s'\n", i, rc, err);
        CU_ASSERT_EQUAL(rc, TL_ERR_DECODE);
        CU_ASSERT_STRING_EQUAL(err, bad[i][1]);
    }
    /* What is allowed: comments, blank lines, timestamps, exponents. */
    seen s;
    char err[TL_ERRSZ] = "";
    CU_ASSERT_EQUAL(parse("# a comment\n\n# TYPE m counter\nm 1e3 1700000000000\n"
                          "m{} -2.5\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\n"
                          "h_count 1\nh_sum 0.5\n",
                          &s, err, sizeof err),
                    TL_OK);
    CU_ASSERT_STRING_EQUAL(s.text, "m{} 1000\nm{} -2.5\nh_bucket{le=+Inf} 1\n"
                                   "h_count{} 1\nh_sum{} 0.5\n");
}

static void test_token(void)
{
    CU_ASSERT_TRUE(tl_http_token_ok("s3cret", "s3cret", 6));
    CU_ASSERT_FALSE(tl_http_token_ok("s3cret", "s3cre", 5));
    CU_ASSERT_FALSE(tl_http_token_ok("s3cret", "s3cretX", 7));
    CU_ASSERT_FALSE(tl_http_token_ok("s3cret", "s3creT", 6));
    CU_ASSERT_FALSE(tl_http_token_ok("s3cret", "", 0));
    /* A given token that is the real one followed by NULs is still wrong. */
    CU_ASSERT_FALSE(tl_http_token_ok("ab", "ab\0", 3));
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
    CU_add_test(s, "histogram buckets and text", test_histogram);
    CU_add_test(s, "writer escapes, parser reads it back", test_writer_escapes_and_parses);
    CU_add_test(s, "parser rejects malformed text", test_parser_rejects);
    CU_add_test(s, "bearer token comparison", test_token);
    return tl_test_run();
}
