/*
 * Unit tests for lib/log: level and format names, text lines (control
 * characters escaped, so a logged value cannot forge a line), JSON lines
 * that a JSON parser reads back to the same message whatever it holds
 * (quotes, backslashes, control characters, UTF-8, invalid bytes), and
 * level and format changes while other threads log (run under `make tsan`).
 */
#include <CUnit/Basic.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static void test_text_escapes(void)
{
    char buf[256];
    tl_log_format_line(buf, sizeof buf, TL_LOG_TEXT, WHEN, TL_LOG_DEBUG,
                       "pipeline", "customer a\nb");
    CU_ASSERT_STRING_EQUAL(buf, WHEN " debug [pipeline] customer a\\nb");
    tl_log_format_line(buf, sizeof buf, TL_LOG_TEXT, WHEN, TL_LOG_INFO, "m\r",
                       "\r\t\x01\x1b[31m\x1f\x7f caf\xc3\xa9 \\n");
    CU_ASSERT_STRING_EQUAL(buf, WHEN " info  [m\\r] \\r\\t\\x01\\x1b[31m\\x1f"
                                "\\x7f caf\xc3\xa9 \\n");
    /* The length needed counts the escapes. */
    char small[4];
    size_t n = tl_log_format_line(small, sizeof small, TL_LOG_TEXT, WHEN,
                                  TL_LOG_INFO, "m", "\n");
    CU_ASSERT_EQUAL(n, strlen(WHEN " info  [m] \\n"));
}

/* stderr (fd 2, where tl_log_write writes) into a temporary file until
 * capture_end, which returns what was written (malloc'd). */
typedef struct capture {
    char path[64];
    int saved;
} capture;

static void capture_begin(capture *c)
{
    snprintf(c->path, sizeof c->path, "/tmp/tailor-log-XXXXXX");
    int fd = mkstemp(c->path);
    CU_ASSERT_FATAL(fd >= 0);
    fflush(stderr);
    c->saved = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *capture_end(capture *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    char *text = tl_test_read_all(c->path);
    unlink(c->path);
    return text;
}

/* Issue 21 item 7: a customer id holding a newline forged a line of the
 * text log. */
static void test_write_one_line(void)
{
    tl_log_level was = tl_log_current;
    tl_log_set_level(TL_LOG_DEBUG);
    capture c;
    capture_begin(&c);
    tl_error("test", "customer %s", "a\nb");
    tl_warn("test", "customer %s", "a\r\nb");
    tl_info("test", "customer %s", "a\nb");
    tl_debug("test", "customer %s", "a\n2026-11-22T15:04:05.123Z info  [x] forged");
    tl_log_set_format(TL_LOG_JSON);
    tl_debug("test", "customer %s", "a\nb");
    tl_log_set_format(TL_LOG_TEXT);
    char *text = capture_end(&c);
    tl_log_set_level(was);
    CU_ASSERT_EQUAL(tl_test_count_in(text, "\n"), 5);
    CU_ASSERT_EQUAL(tl_test_count_in(text, "\r"), 0);
    CU_ASSERT_EQUAL(tl_test_count_in(text, "customer a\\nb\n"), 2);
    CU_ASSERT_EQUAL(tl_test_count_in(text, "customer a\\r\\nb\n"), 1);
    CU_ASSERT_EQUAL(tl_test_count_in(text, "\"msg\":\"customer a\\nb\"}\n"), 1);
    free(text);
}

#define LOGGERS 4
#define LINES 2000

static void *logger(void *arg)
{
    (void)arg;
    for (int i = 0; i < LINES; i++) {
        tl_info("race", "info %d", i);
        tl_debug("race", "debug %d", i);
    }
    return NULL;
}

/* A reload sets the level and the format while librdkafka's, the HTTP and
 * the flusher threads log: every line is still whole, text or JSON. */
static void test_set_while_logging(void)
{
    tl_log_level was = tl_log_current;
    capture c;
    capture_begin(&c);
    pthread_t t[LOGGERS];
    for (int i = 0; i < LOGGERS; i++)
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, logger, NULL) == 0);
    for (int i = 0; i < 1000; i++) {
        tl_log_set_level(i % 2 ? TL_LOG_DEBUG : TL_LOG_INFO);
        tl_log_set_format(i % 3 ? TL_LOG_TEXT : TL_LOG_JSON);
    }
    for (int i = 0; i < LOGGERS; i++) pthread_join(t[i], NULL);
    tl_log_set_format(TL_LOG_TEXT);
    tl_log_set_level(was);
    char *text = capture_end(&c);
    size_t lines = 0, bad = 0, info = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        lines++;
        json_t *o = line[0] == '{' ? json_loads(line, 0, NULL) : NULL;
        const char *msg = o ? json_string_value(json_object_get(o, "msg"))
                            : strstr(line, " [race] ");
        if (!msg) {
            bad++;
        } else if (strncmp(o ? msg : msg + 8, "info ", 5) == 0) {
            info++;
        }
        json_decref(o);
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* Info lines are on at either level; debug lines only some of the time. */
    CU_ASSERT_EQUAL(info, LOGGERS * LINES);
    CU_ASSERT(lines >= info && lines <= 2 * LOGGERS * LINES);
    free(text);
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
    CU_add_test(s, "text lines escape control characters", test_text_escapes);
    CU_add_test(s, "a value holding a newline is one line", test_write_one_line);
    CU_add_test(s, "level and format set while threads log",
                test_set_while_logging);
    CU_add_test(s, "json lines parse back", test_json);
    return tl_test_run();
}
