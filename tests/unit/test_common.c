/*
 * Unit tests of lib/common's number text: tl_fmt_double and tl_fmt_number
 * against the printf definitions they must keep (shortest of %.15g, %.16g,
 * %.17g that reads back; %.15g; %.0f for whole numbers); tl_fmt_state_double
 * (reads back exactly; tl_fmt_double's text or glibc's %a) and tl_fmt_i64
 * (%lld).
 */
#include <CUnit/Basic.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/testutil.h"
#include "common.h"

/* The definitions, written with printf only. */
static void ref_double(char *buf, double v)
{
    if (isnan(v)) { snprintf(buf, TL_NUMBUF, "nan"); return; }
    if (isinf(v)) { snprintf(buf, TL_NUMBUF, v < 0 ? "-inf" : "inf"); return; }
    if (v == 0) { snprintf(buf, TL_NUMBUF, "0"); return; }
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, TL_NUMBUF, "%.0f", v);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, TL_NUMBUF, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
    snprintf(buf, TL_NUMBUF, "%.17g", v);
}

static void ref_number(char *buf, double v)
{
    if (isnan(v) || isinf(v) || v == 0 || (v == floor(v) && fabs(v) < 1e15))
        ref_double(buf, v);
    else
        snprintf(buf, TL_NUMBUF, "%.15g", v);
}

static size_t mismatches;

static void mismatch(const char *fn, double v, const char *got,
                     const char *want)
{
    if (mismatches++ < 10)
        fprintf(stderr, "\n%s(%a): '%s', expected: '%s'\n", fn, v, got, want);
}

/* Exact, and either the decimal tl_fmt_double gives (short or whole
 * numbers: nothing changes for counts and money) or glibc's %a. */
static void check_state(double v)
{
    char a[TL_NUMBUF], b[TL_NUMBUF];
    int n = tl_fmt_state_double(a, v);
    double back;
    if ((size_t)n != strlen(a) || tl_parse_double(a, (size_t)n, &back) ||
        (isnan(v) ? !isnan(back) : back != v || signbit(back) != signbit(v))) {
        if (v == 0 && back == 0) return; /* -0 reads "0", as tl_fmt_double */
        mismatch("tl_fmt_state_double (read back)", v, a, "the same value");
        return;
    }
    if (strstr(a, "0x"))
        snprintf(b, sizeof b, "%a", v);
    else
        tl_fmt_double(b, v);
    if (strcmp(a, b)) mismatch("tl_fmt_state_double", v, a, b);
}

static void check_i64(int64_t v)
{
    char a[24], b[24];
    int n = tl_fmt_i64(a, v);
    snprintf(b, sizeof b, "%lld", (long long)v);
    if (strcmp(a, b) || (size_t)n != strlen(a)) mismatch("tl_fmt_i64", (double)v, a, b);
}

static void check(double v)
{
    char a[TL_NUMBUF], b[TL_NUMBUF];
    check_state(v);
    int n = tl_fmt_double(a, v);
    ref_double(b, v);
    if (strcmp(a, b) || (size_t)n != strlen(a)) {
        if (mismatches++ < 10)
            fprintf(stderr, "\ntl_fmt_double(%a): '%s', printf: '%s'\n", v, a, b);
    }
    n = tl_fmt_number(a, v);
    ref_number(b, v);
    if (strcmp(a, b) || (size_t)n != strlen(a)) {
        if (mismatches++ < 10)
            fprintf(stderr, "\ntl_fmt_number(%a): '%s', printf: '%s'\n", v, a, b);
    }
}

static void test_fmt_matches_printf(void)
{
    static const double edges[] = {
        1, -1, 0.5, 0.1, 0.2, 0.3, 15.3, 50.27, 50.269999999999996, 2.55,
        1e-4, 9.9999e-5, 0.00010000000000000002, 1e15, 999999999999999.0,
        999999999999999.9, 1e15 - 0.5, 123456789012345.6, 12345678901234.56,
        0.1 + 0.2, 1.0 / 3, 2.0 / 3, 1e-5, 1e300, -1e-300, 4503599627370497.0,
        9007199254740993.0, 1e16, 0.30000000000000004, 100, 1e14, 1e14 + 0.25};
    mismatches = 0;
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        check(edges[i]);
        check(-edges[i]);
        check(nextafter(edges[i], 0));
        check(nextafter(edges[i], INFINITY));
    }
    /* Money, counts, their sums and averages, and arbitrary doubles. */
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 40000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double cents = (double)(int64_t)(x % 2000000) - 1000000;
        check(cents / 100);
        check(cents / 1000 + (double)(x >> 40) / 100);
        check(cents / 7);
        check((double)(x >> 11) * 0x1p-53 * pow(10, (double)(int)(x % 40) - 20));
        double bits;
        uint64_t y = x;
        memcpy(&bits, &y, sizeof bits);
        check(bits);
        check_i64((int64_t)x);
        check_i64((int64_t)(x % 100000) - 50000);
    }
    CU_ASSERT_EQUAL(mismatches, 0);
}

static void test_state_and_int_edges(void)
{
    static const double edges[] = {
        0x1p-1074, 0x1.fffffffffffffp-1023, 0x1p-1022, DBL_MAX, DBL_MIN,
        0x1.8p+3, 1.0 / 3, 0.5 * exp2(-30), 1e15, 1e15 + 1, 123456.789012345678};
    static const int64_t ints[] = {0, 1, -1, 9, 10, -10, INT64_MAX, INT64_MIN,
                                   INT64_MIN + 1, 1000000000000000000LL};
    mismatches = 0;
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        check_state(edges[i]);
        check_state(-edges[i]);
    }
    check_state(NAN);
    check_state(INFINITY);
    check_state(-INFINITY);
    check_state(-0.0);
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) check_i64(ints[i]);
    char a[TL_NUMBUF];
    CU_ASSERT_STRING_EQUAL((tl_fmt_state_double(a, 1.0 / 3), a), "0x1.5555555555555p-2");
    CU_ASSERT_STRING_EQUAL((tl_fmt_state_double(a, 0x1p-1074), a), "0x0.0000000000001p-1022");
    CU_ASSERT_STRING_EQUAL((tl_fmt_state_double(a, -24.5), a), "-24.5");
    CU_ASSERT_EQUAL(mismatches, 0);
}

/* Days from 1970 and back, against timegm, every day from 1600 to 2600. */
static void test_civil_days(void)
{
    int bad = 0;
    for (int64_t z = tl_days_from_civil(1600, 1, 1);
         z < tl_days_from_civil(2600, 1, 1); z++) {
        int64_t y;
        int m, d;
        tl_civil_from_days(z, &y, &m, &d);
        if (tl_days_from_civil(y, m, d) != z || d < 1 ||
            d > tl_month_days(y, m))
            bad++;
        struct tm tm = {0};
        time_t t = (time_t)z * 86400;
        gmtime_r(&t, &tm);
        if (tm.tm_year + 1900 != y || tm.tm_mon + 1 != m || tm.tm_mday != d)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(tl_days_from_civil(1970, 1, 1), 0);
    CU_ASSERT_EQUAL(tl_days_from_civil(1969, 12, 31), -1);
    CU_ASSERT_EQUAL(tl_month_days(2024, 2), 29);
    CU_ASSERT_EQUAL(tl_month_days(2023, 2), 28);
    CU_ASSERT_EQUAL(tl_month_days(2000, 2), 29); /* divisible by 400 */
    CU_ASSERT_EQUAL(tl_month_days(1900, 2), 28); /* by 100, not by 400 */
    CU_ASSERT_EQUAL(tl_month_days(2100, 2), 28);
    CU_ASSERT_EQUAL(tl_month_days(2025, 4), 30);
    CU_ASSERT_EQUAL(tl_month_days(2025, 12), 31);
}

static void test_parse_time(void)
{
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {
        {"2025-03-11T14:33:22Z", INT64_C(1741703602000)},
        {"2025-03-11t14:33:22z", INT64_C(1741703602000)},
        {"2025-03-11T15:33:22+01:00", INT64_C(1741703602000)},
        {"2025-03-11T09:03:22-05:30", INT64_C(1741703602000)},
        {"2025-03-12T00:03:22+09:30", INT64_C(1741703602000)},
        {"2025-03-11T14:33:22+00:00", INT64_C(1741703602000)},
        {"2025-03-11T14:33:22-00:00", INT64_C(1741703602000)},
        {"2025-03-11T14:33:22.5Z", INT64_C(1741703602500)},
        {"2025-03-11T14:33:22.25Z", INT64_C(1741703602250)},
        {"2025-03-11T14:33:22.123Z", INT64_C(1741703602123)},
        {"2025-03-11T14:33:22.123999999Z", INT64_C(1741703602123)},
        {"2025-03-11T15:33:22.250+01:00", INT64_C(1741703602250)},
        {"1970-01-01T00:00:00Z", 0},
        {"1970-01-01T00:00:00.001Z", 1},
        {"1970-01-01T00:59:59+01:00", -1000},
        {"1969-12-31T23:59:59Z", -1000},
        {"2000-01-01T00:00:00Z", INT64_C(946684800000)},
        {"2000-02-29T12:00:00Z", INT64_C(951825600000)},
        {"2024-02-29T23:59:59Z", INT64_C(1709251199000)},
        {"2200-01-01T00:00:00Z", INT64_C(7258118400000)},
        {"2023-12-31T23:59:59-23:59", INT64_C(1704153539000)},
        {"0000-01-01T00:00:00Z", INT64_C(-62167219200000)},
        {"9999-12-31T23:59:59Z", INT64_C(253402300799000)},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        int64_t ms = 42;
        int rc = tl_parse_time(ok[i].s, strlen(ok[i].s), &ms);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(ms, ok[i].ms);
        if (rc || ms != ok[i].ms)
            fprintf(stderr, "\n%s: rc %d, %lld\n", ok[i].s, rc, (long long)ms);
    }
    static const char *const bad[] = {
        "",
        "2025-03-11",                 /* no time */
        "2025-03-11T14:33:22",        /* no offset: which zone? */
        "2025-03-11T14:33Z",          /* no seconds */
        "2025-03-11 14:33:22Z",       /* space for T */
        "2025-03-11T14:33:22 Z",
        " 2025-03-11T14:33:22Z",
        "2025-03-11T14:33:22Z ",
        "2025-03-11T14:33:22ZZ",
        "25-03-11T14:33:22Z",
        "+2025-03-11T14:33:22Z",
        "2025-3-11T14:33:22Z",
        "2025-03-1T14:33:22Z",
        "2025/03/11T14:33:22Z",
        "20250311T143322Z",           /* basic format */
        "2025-03-11T4:33:22Z",
        "2025-03-11T14:33:2Z",
        "2025-03-11T14:33:22.Z",      /* a point without digits */
        "2025-03-11T14:33:22.1234567890Z", /* ten digits */
        "2025-03-11T14:33:22,5Z",
        "2025-03-11T14:33:22+01",
        "2025-03-11T14:33:22+0100",
        "2025-03-11T14:33:22+1:00",
        "2025-03-11T14:33:22+24:00",
        "2025-03-11T14:33:22+01:60",
        "2025-03-11T14:33:22UTC",
        "2025-00-11T14:33:22Z",
        "2025-13-11T14:33:22Z",
        "2025-03-00T14:33:22Z",
        "2025-03-32T14:33:22Z",
        "2025-04-31T14:33:22Z",
        "2023-02-29T00:00:00Z",       /* not a leap year */
        "1900-02-29T00:00:00Z",       /* by 100, not by 400 */
        "2025-03-11T24:00:00Z",
        "2025-03-11T14:60:00Z",
        "2025-03-11T14:33:60Z",       /* no leap seconds */
        "1741700002",
        "2025-03-11T14:33:22\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t ms = 42;
        CU_ASSERT_EQUAL(tl_parse_time(bad[i], strlen(bad[i]), &ms), -1);
        CU_ASSERT_EQUAL(ms, 42);
    }
    /* Only len bytes are read. */
    int64_t ms;
    CU_ASSERT_EQUAL(tl_parse_time("2025-03-11T14:33:22Zjunk", 20, &ms), 0);
    CU_ASSERT_EQUAL(ms, INT64_C(1741703602000));
}

static void test_fmt_time(void)
{
    static const struct {
        int64_t ms;
        const char *s;
    } cases[] = {
        {0, "1970-01-01T00:00:00Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {INT64_C(1741700002000), "2025-03-11T13:33:22Z"},
        {INT64_C(1741703602250), "2025-03-11T14:33:22.250Z"},
        {INT64_C(946684800000), "2000-01-01T00:00:00Z"},
        {INT64_C(951825600000), "2000-02-29T12:00:00Z"},
        {INT64_C(7258118400000), "2200-01-01T00:00:00Z"},
        {INT64_C(32503680000000), "3000-01-01T00:00:00Z"},
        {INT64_C(-62167219200000), "0000-01-01T00:00:00Z"},
    };
    char buf[TL_TIMEBUF];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CU_ASSERT_STRING_EQUAL(tl_fmt_time(buf, cases[i].ms), cases[i].s);
        int64_t back;
        CU_ASSERT_EQUAL(tl_parse_time(buf, strlen(buf), &back), 0);
        CU_ASSERT_EQUAL(back, cases[i].ms);
    }
    /* The extremes print something, within the buffer. */
    CU_ASSERT(strlen(tl_fmt_time(buf, INT64_MAX)) < TL_TIMEBUF);
    CU_ASSERT(strlen(tl_fmt_time(buf, INT64_MIN)) < TL_TIMEBUF);
}

int main(void)
{
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("common_numbers", NULL, NULL);
    CU_add_test(s, "tl_fmt_double and tl_fmt_number = printf", test_fmt_matches_printf);
    CU_add_test(s, "tl_fmt_state_double and tl_fmt_i64 at the edges",
                test_state_and_int_edges);
    s = CU_add_suite("common_time", NULL, NULL);
    CU_add_test(s, "days from 1970 and back, month lengths", test_civil_days);
    CU_add_test(s, "tl_parse_time: ISO 8601 forms, offsets, leap years",
                test_parse_time);
    CU_add_test(s, "tl_fmt_time", test_fmt_time);
    return tl_test_run();
}
