/*
 * Unit tests for lib/log: level and format names, text lines, and JSON lines
 * that a JSON parser reads back to the same message whatever it holds
 * (quotes, backslashes, control characters, UTF-8, invalid bytes).
 */
#include <CUnit/Basic.h>
#include <jansson.h>
#include <string.h>

#include "../support/testutil.h"
#include "log.h"

#define WHEN "2026-11-22T15:04:05.123Z"

static void test_names(void)
{
    tl_log_format f;
    CU_ASSERT_EQUAL(tl_log_format_parse("json", &f), 0);
    CU_ASSERT_EQUAL(f, TL_LOG_JSON);
    CU_ASSERT_EQUAL(tl_log_format_parse("text", &f), 0);
    CU_ASSERT_EQUAL(f, TL_LOG_TEXT);
    CU_ASSERT_EQUAL(tl_log_format_parse("JSON", &f), -1);
    CU_ASSERT_STRING_EQUAL(tl_log_format_name(TL_LOG_JSON), "json");
    tl_log_level l;
    CU_ASSERT_EQUAL(tl_log_level_parse("warn", &l), 0);
    CU_ASSERT_EQUAL(l, TL_LOG_WARN);
}

static void test_text(void)
{
    char buf[256];
    size_t n = tl_log_format_line(buf, sizeof buf, TL_LOG_TEXT, WHEN,
                                  TL_LOG_INFO, "pipeline", "assigned 4");
    CU_ASSERT_STRING_EQUAL(buf, WHEN " info  [pipeline] assigned 4");
    CU_ASSERT_EQUAL(n, strlen(buf));
    /* Truncated like snprintf, returning the length it needed. */
    char small[10];
    n = tl_log_format_line(small, sizeof small, TL_LOG_TEXT, WHEN, TL_LOG_INFO,
                           "pipeline", "assigned 4");
    CU_ASSERT_EQUAL(n, strlen(WHEN " info  [pipeline] assigned 4"));
    CU_ASSERT_EQUAL(strlen(small), sizeof small - 1);
}

static void check_json(const char *msg, const char *want_msg)
{
    char buf[4096];
    size_t n = tl_log_format_line(buf, sizeof buf, TL_LOG_JSON, WHEN,
                                  TL_LOG_WARN, "source", msg);
    CU_ASSERT_EQUAL(n, strlen(buf));
    CU_ASSERT_PTR_NULL(strchr(buf, '\n'));
    json_error_t e;
    json_t *o = json_loads(buf, 0, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "ts")), WHEN);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "level")), "warn");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "module")),
                           "source");
    const char *got = json_string_value(json_object_get(o, "msg"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_STRING_EQUAL(got, want_msg);
    CU_ASSERT_EQUAL(json_object_size(o), 4);
    json_decref(o);
}

static void test_json(void)
{
    check_json("plain", "plain");
    check_json("say \"hi\" \\ bye", "say \"hi\" \\ bye");
    check_json("line\nbreak\ttab\r\x01\x1f\x7f", "line\nbreak\ttab\r\x01\x1f\x7f");
    check_json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8d\x94", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8d\x94");
    /* Invalid UTF-8 (a lone continuation byte, an overlong '/', a surrogate,
     * a truncated sequence) becomes U+FFFD, byte by byte. */
    check_json("a\x80z", "a\xef\xbf\xbdz");
    check_json("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");
    check_json("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    check_json("end\xe2\x82", "end\xef\xbf\xbd\xef\xbf\xbd");
    char buf[256];
    tl_log_format_line(buf, sizeof buf, TL_LOG_JSON, WHEN, TL_LOG_ERROR, "x",
                       "m");
    CU_ASSERT_STRING_EQUAL(buf, "{\"ts\":\"" WHEN "\",\"level\":\"error\","
                                "\"module\":\"x\",\"msg\":\"m\"}");
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("log", NULL, NULL);
    CU_add_test(s, "level and format names", test_names);
    CU_add_test(s, "text lines", test_text);
    CU_add_test(s, "json lines parse back", test_json);
    return tl_test_run();
}
