/*
 * Unit tests of lib/trigger: the deterministic id, the Avro codec and the
 * JSON rendering.
 */
#include <CUnit/Basic.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/alloc_count.h"
#include "../support/testutil.h"
#include "schemas.h"
#include "trigger.h"

#define ATTR(k, v) {k, v, sizeof k - 1, sizeof v - 1}

/* FNV-1a 64 written out from its definition, independent of tl_fnv1a. */
static void fnv_hex(const unsigned char *p, size_t n, char out[17])
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

static void test_id_known(void)
{
    char id[TL_TRIGGER_ID_LEN + 1], want[17];
    static const unsigned char bytes[] =
        "interactions\0" "3\0" "12345\0" "greet_with_usual_order";
    tl_trigger_make_id(id, "interactions", 3, 12345, "greet_with_usual_order");
    fnv_hex(bytes, sizeof bytes - 1, want);
    CU_ASSERT_STRING_EQUAL(id, want);
    /* The same value computed outside C (Python). */
    CU_ASSERT_STRING_EQUAL(id, "6478d7fde0ba5706");
    CU_ASSERT_EQUAL(strlen(id), TL_TRIGGER_ID_LEN);
    for (int i = 0; i < TL_TRIGGER_ID_LEN; i++)
        CU_ASSERT(isdigit((unsigned char)id[i]) ||
                  (id[i] >= 'a' && id[i] <= 'f'));

    /* Empty strings and zeros: "\0" "0\0" "0\0". */
    tl_trigger_make_id(id, "", 0, 0, "");
    CU_ASSERT_STRING_EQUAL(id, "e50a305e89124a0f");
    /* Negative and extreme numbers print in decimal. */
    static const unsigned char neg[] =
        "t\0" "-2147483648\0" "-9223372036854775808\0" "r";
    fnv_hex(neg, sizeof neg - 1, want);
    tl_trigger_make_id(id, "t", INT32_MIN, INT64_MIN, "r");
    CU_ASSERT_STRING_EQUAL(id, want);
}

static void test_id_deterministic(void)
{
    char a[TL_TRIGGER_ID_LEN + 1], b[TL_TRIGGER_ID_LEN + 1];
    tl_trigger_make_id(a, "interactions", 1, 99, "rule");
    tl_trigger_make_id(b, "interactions", 1, 99, "rule");
    CU_ASSERT_STRING_EQUAL(a, b);
    tl_trigger_make_id(b, "interactions", 1, 100, "rule");
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
    tl_trigger_make_id(b, "interactions", 2, 99, "rule");
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
    tl_trigger_make_id(b, "interactions", 1, 99, "rule2");
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
    tl_trigger_make_id(b, "interaction", 1, 99, "rule");
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
    /* The separators keep the parts apart: partition 1 offset 23 is not
     * partition 12 offset 3. */
    tl_trigger_make_id(a, "t", 1, 23, "r");
    tl_trigger_make_id(b, "t", 12, 3, "r");
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
}

static tl_trigger sample(tl_attr *attrs, size_t nattrs, tl_attr *features,
                         size_t nfeatures)
{
    tl_trigger t = {0};
    tl_trigger_make_id(t.id, "interactions", 0, 42, "greet_with_usual_order");
    t.rule = "greet_with_usual_order";
    t.customer_id = "906";
    t.ts = 1483273827000;
    t.cause_event_id = "cj-31198705046-6139";
    t.channel = TL_CH_STORE;
    t.message = "Welcome back! The usual 1075313?";
    t.attrs = attrs;
    t.nattrs = nattrs;
    t.explain = features;
    t.nexplain = nfeatures;
    return t;
}

static int attrs_equal(const tl_attr *a, size_t na, const tl_attr *b,
                       size_t nb)
{
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i].key, b[i].key) || strcmp(a[i].val, b[i].val) ||
            a[i].keylen != b[i].keylen || a[i].vallen != b[i].vallen)
            return 0;
    return 1;
}

static int triggers_equal(const tl_trigger *a, const tl_trigger *b)
{
    return !strcmp(a->id, b->id) && !strcmp(a->rule, b->rule) &&
           !strcmp(a->customer_id, b->customer_id) && a->ts == b->ts &&
           !strcmp(a->cause_event_id, b->cause_event_id) &&
           a->channel == b->channel && !strcmp(a->message, b->message) &&
           attrs_equal(a->attrs, a->nattrs, b->attrs, b->nattrs) &&
           attrs_equal(a->explain, a->nexplain, b->explain, b->nexplain) &&
           a->holdout == b->holdout;
}

static void test_roundtrip(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_trigger out;
    const void *buf;
    size_t len;
    tl_attr attrs[] = {ATTR("offer", "usual_order"), ATTR("lang", "en")};
    tl_attr features[] = {ATTR("visits_30d", "4"),
                          ATTR("usual_order", "1075313,850562"),
                          ATTR("spend_total", "15.3")};
    tl_trigger t = sample(attrs, 2, features, 3);
    tl_arena_init(&a, 0);
    tl_trigger_codec *c = tl_trigger_codec_new(NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL_FATAL(tl_trigger_encode(c, &t, &buf, &len, err, sizeof err),
                          TL_OK);
    CU_ASSERT_EQUAL_FATAL(
        tl_trigger_decode(c, buf, len, &a, &out, err, sizeof err), TL_OK);
    /* Map order on the wire is the order given. */
    CU_ASSERT(triggers_equal(&t, &out));
    CU_ASSERT_STRING_EQUAL(out.explain[1].key, "usual_order");

    /* The codec is reused: a second trigger without maps has none. */
    tl_trigger t2 = sample(NULL, 0, NULL, 0);
    t2.holdout = 1;
    t2.channel = TL_CH_CALL_CENTER;
    t2.message = "";
    t2.ts = -1;
    CU_ASSERT_EQUAL_FATAL(
        tl_trigger_encode(c, &t2, &buf, &len, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL_FATAL(
        tl_trigger_decode(c, buf, len, &a, &out, err, sizeof err), TL_OK);
    CU_ASSERT(triggers_equal(&t2, &out));
    CU_ASSERT_EQUAL(out.nattrs, 0);
    CU_ASSERT_EQUAL(out.nexplain, 0);
    CU_ASSERT_EQUAL(out.holdout, 1);
    CU_ASSERT_EQUAL(out.channel, TL_CH_CALL_CENTER);

    /* A large trigger grows the output buffer. */
    size_t big = 100000;
    char *val = malloc(big + 1);
    memset(val, 'x', big);
    val[big] = '\0';
    tl_attr bigattr[] = {{"big", val, 3, big}};
    tl_trigger t3 = sample(bigattr, 1, features, 3);
    CU_ASSERT_EQUAL_FATAL(
        tl_trigger_encode(c, &t3, &buf, &len, err, sizeof err), TL_OK);
    CU_ASSERT(len > big);
    CU_ASSERT_EQUAL_FATAL(
        tl_trigger_decode(c, buf, len, &a, &out, err, sizeof err), TL_OK);
    CU_ASSERT(triggers_equal(&t3, &out));
    free(val);
    tl_trigger_codec_free(c);
    tl_arena_free(&a);
}

static void test_decode_errors(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_trigger out;
    const void *buf;
    size_t len;
    tl_attr attrs[] = {ATTR("k", "v")};
    tl_trigger t = sample(attrs, 1, attrs, 1);
    tl_arena_init(&a, 0);
    tl_trigger_codec *c = tl_trigger_codec_new(NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL_FATAL(tl_trigger_encode(c, &t, &buf, &len, err, sizeof err),
                          TL_OK);
    unsigned char *msg = malloc(len + 2);
    memcpy(msg, buf, len);
    for (size_t n = 0; n < len; n++) {
        unsigned char *p = malloc(n ? n : 1);
        memcpy(p, msg, n);
        err[0] = '\0';
        CU_ASSERT_EQUAL(tl_trigger_decode(c, p, n, &a, &out, err, sizeof err),
                        TL_ERR_DECODE);
        CU_ASSERT(err[0] != '\0');
        free(p);
        tl_arena_reset(&a);
    }
    CU_ASSERT_EQUAL(tl_trigger_decode(c, msg, 3, &a, &out, err, sizeof err),
                    TL_ERR_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "truncated Avro data");
    /* Lengths Avro-C would trust: -2 (it asks malloc for SIZE_MAX bytes)
     * and 2^40. */
    static const unsigned char neg[] = {0x03, 'a', 'b'};
    static const unsigned char huge[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x40};
    CU_ASSERT_EQUAL(
        tl_trigger_decode(c, neg, sizeof neg, &a, &out, err, sizeof err),
        TL_ERR_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "negative Avro string length");
    CU_ASSERT_EQUAL(
        tl_trigger_decode(c, huge, sizeof huge, &a, &out, err, sizeof err),
        TL_ERR_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "truncated Avro data");
    msg[len] = 7;
    msg[len + 1] = 8;
    CU_ASSERT_EQUAL(
        tl_trigger_decode(c, msg, len + 2, &a, &out, err, sizeof err),
        TL_ERR_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "2 trailing bytes after the trigger");
    CU_ASSERT_EQUAL(tl_trigger_decode(c, msg, len, &a, &out, err, sizeof err),
                    TL_OK);
    free(msg);
    tl_trigger_codec_free(c);
    tl_arena_free(&a);
}

static void test_codec_schema(void)
{
    char err[TL_ERRSZ];
    CU_ASSERT_PTR_NULL(tl_trigger_codec_new("{", err, sizeof err));
    CU_ASSERT_EQUAL(strncmp(err, "trigger schema: ", 16), 0);
    CU_ASSERT_PTR_NULL(tl_trigger_codec_new(
        "{\"type\":\"record\",\"name\":\"T\",\"fields\":["
        "{\"name\":\"trigger_id\",\"type\":\"string\"}]}",
        err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err,
                           "trigger schema: needs field 'rule' of type string");

    /* A channel enum without "chat" cannot carry a chat trigger. */
    tl_trigger_codec *c = tl_trigger_codec_new(
        "{\"type\":\"record\",\"name\":\"T\",\"fields\":["
        "{\"name\":\"trigger_id\",\"type\":\"string\"},"
        "{\"name\":\"rule\",\"type\":\"string\"},"
        "{\"name\":\"customer_id\",\"type\":\"string\"},"
        "{\"name\":\"ts\",\"type\":\"long\"},"
        "{\"name\":\"cause_event_id\",\"type\":\"string\"},"
        "{\"name\":\"channel\",\"type\":{\"type\":\"enum\",\"name\":\"C\","
        "\"symbols\":[\"store\",\"web\"]}},"
        "{\"name\":\"message\",\"type\":\"string\"},"
        "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":"
        "\"string\"}},"
        "{\"name\":\"explain\",\"type\":{\"type\":\"map\",\"values\":"
        "\"string\"}},"
        "{\"name\":\"holdout\",\"type\":\"boolean\"}]}",
        err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    tl_trigger t = sample(NULL, 0, NULL, 0);
    const void *buf;
    size_t len;
    t.channel = TL_CH_CHAT;
    CU_ASSERT_EQUAL(tl_trigger_encode(c, &t, &buf, &len, err, sizeof err),
                    TL_ERR);
    CU_ASSERT_STRING_EQUAL(
        err, "channel 'chat' is not a symbol of the trigger schema");
    t.channel = TL_CH_WEB;
    CU_ASSERT_EQUAL(tl_trigger_encode(c, &t, &buf, &len, err, sizeof err),
                    TL_OK);
    tl_arena a;
    tl_trigger out;
    tl_arena_init(&a, 0);
    CU_ASSERT_EQUAL(tl_trigger_decode(c, buf, len, &a, &out, err, sizeof err),
                    TL_OK);
    CU_ASSERT_EQUAL(out.channel, TL_CH_WEB);
    tl_arena_free(&a);
    tl_trigger_codec_free(c);
}

/* The direct encoder (a schema of exactly the trigger's fields) writes the
 * bytes Avro-C writes: the same schema with one more field of type null
 * (zero bytes on the wire) goes through Avro-C's generic value. */
static void test_direct_bytes(void)
{
    static const char *const fields_json =
        "{\"name\":\"holdout\",\"type\":\"boolean\"},"
        "{\"name\":\"explain\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
        "{\"name\":\"trigger_id\",\"type\":\"string\"},"
        "{\"name\":\"rule\",\"type\":\"string\"},"
        "{\"name\":\"customer_id\",\"type\":\"string\"},"
        "{\"name\":\"ts\",\"type\":\"long\"},"
        "{\"name\":\"cause_event_id\",\"type\":\"string\"},"
        "{\"name\":\"channel\",\"type\":{\"type\":\"enum\",\"name\":\"C\","
        "\"symbols\":[\"chat\",\"web\",\"app\",\"store\",\"call_center\","
        "\"email\",\"other\"]}},"
        "{\"name\":\"message\",\"type\":\"string\"},"
        "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":\"string\"}}";
    char err[TL_ERRSZ], direct_schema[2048], avroc_schema[2048];
    /* The built-in order, and a shuffled one with its own enum order. */
    for (int shuffled = 0; shuffled < 2; shuffled++) {
        if (shuffled) {
            snprintf(direct_schema, sizeof direct_schema,
                     "{\"type\":\"record\",\"name\":\"T\",\"fields\":[%s]}",
                     fields_json);
            snprintf(avroc_schema, sizeof avroc_schema,
                     "{\"type\":\"record\",\"name\":\"T\",\"fields\":[%s,"
                     "{\"name\":\"pad\",\"type\":\"null\"}]}",
                     fields_json);
        } else {
            const char *builtin = tl_schema_trigger;
            const char *end = strrchr(builtin, ']');
            CU_ASSERT_PTR_NOT_NULL_FATAL(end);
            snprintf(direct_schema, sizeof direct_schema, "%s", builtin);
            snprintf(avroc_schema, sizeof avroc_schema,
                     "%.*s,{\"name\":\"pad\",\"type\":\"null\"}%s",
                     (int)(end - builtin), builtin, end);
        }
        tl_trigger_codec *d = tl_trigger_codec_new(direct_schema, err, sizeof err);
        tl_trigger_codec *v = tl_trigger_codec_new(avroc_schema, err, sizeof err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        tl_attr attrs[] = {ATTR("offer", "usual_order"), ATTR("lang", "en"),
                           ATTR("offer", "second wins"), ATTR("", "")};
        tl_attr explain[] = {ATTR("visits_30d", "4"), ATTR("z\xc3\xa9", "\xe2\x82\xac")};
        struct { size_t na, ne; int ch, holdout; int64_t ts; const char *msg; } cases[] = {
            {0, 0, TL_CH_WEB, 0, 0, ""},
            {2, 1, TL_CH_STORE, 1, -1, "hi"},
            {4, 2, TL_CH_CHAT, 0, INT64_MIN, "Welcome back! The usual 1075313?"},
            {3, 2, TL_CH_OTHER, 1, INT64_MAX, NULL},
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            tl_trigger t = sample(attrs, cases[i].na, explain, cases[i].ne);
            t.channel = (tl_channel)cases[i].ch;
            t.holdout = cases[i].holdout;
            t.ts = cases[i].ts;
            t.message = cases[i].msg;
            const void *b1, *b2;
            size_t l1, l2;
            CU_ASSERT_EQUAL_FATAL(tl_trigger_encode(d, &t, &b1, &l1, err, sizeof err), TL_OK);
            char *copy = malloc(l1);
            memcpy(copy, b1, l1);
            CU_ASSERT_EQUAL_FATAL(tl_trigger_encode(v, &t, &b2, &l2, err, sizeof err), TL_OK);
            CU_ASSERT_EQUAL(l1, l2);
            CU_ASSERT(l1 == l2 && memcmp(copy, b2, l1) == 0);
            free(copy);
        }
        tl_trigger_codec_free(d);
        tl_trigger_codec_free(v);
    }
}

/* Encoding a trigger allocates nothing once the buffer is large enough. */
static void test_direct_no_alloc(void)
{
    char err[TL_ERRSZ];
    const void *buf;
    size_t len;
    if (tl_test_under_valgrind()) return;
    tl_alloc_counter_install();
    tl_trigger_codec *c = tl_trigger_codec_new(NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    tl_attr features[] = {ATTR("visits_30d", "4")};
    tl_trigger t = sample(NULL, 0, features, 1);
    CU_ASSERT_EQUAL(tl_trigger_encode(c, &t, &buf, &len, err, sizeof err), TL_OK);
    tl_alloc_calls = 0;
    tl_alloc_counting = 1;
    for (int i = 0; i < 1000; i++)
        tl_trigger_encode(c, &t, &buf, &len, err, sizeof err);
    tl_alloc_counting = 0;
    CU_ASSERT_EQUAL(tl_alloc_calls, 0);
    tl_trigger_codec_free(c);
}

static void test_json(void)
{
    tl_attr attrs[] = {ATTR("offer", "usual_order"),
                       ATTR("note", "say \"hi\"")};
    tl_attr features[] = {ATTR("visits_30d", "4"),
                          ATTR("usual_order", "1075313,850562")};
    tl_trigger t = sample(attrs, 2, features, 2);
    char *s = tl_trigger_to_json(&t);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(
        s,
        "{\"trigger_id\":\"" /* the id is checked below too */
        "758809e77104324e\",\"rule\":\"greet_with_usual_order\","
        "\"customer_id\":\"906\",\"ts\":1483273827000,"
        "\"cause_event_id\":\"cj-31198705046-6139\",\"channel\":\"store\","
        "\"message\":\"Welcome back! The usual 1075313?\","
        "\"attrs\":{\"offer\":\"usual_order\",\"note\":\"say \\\"hi\\\"\"},"
        "\"explain\":{\"visits_30d\":\"4\","
        "\"usual_order\":\"1075313,850562\"},\"holdout\":false}");
    free(s);

    static const unsigned char bytes[] =
        "interactions\0" "0\0" "42\0" "greet_with_usual_order";
    char want[17];
    fnv_hex(bytes, sizeof bytes - 1, want);
    CU_ASSERT_STRING_EQUAL(t.id, want);

    /* Empty maps, a control character, and bytes that are not UTF-8. */
    tl_trigger e = sample(NULL, 0, NULL, 0);
    strcpy(e.id, "0123456789abcdef");
    e.ts = -5;
    e.channel = TL_CH_EMAIL;
    e.message = "line1\nline2 \xff\xc3\xa9";
    s = tl_trigger_to_json(&e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(
        s, "{\"trigger_id\":\"0123456789abcdef\","
           "\"rule\":\"greet_with_usual_order\",\"customer_id\":\"906\","
           "\"ts\":-5,\"cause_event_id\":\"cj-31198705046-6139\","
           "\"channel\":\"email\","
           "\"message\":\"line1\\nline2 \xef\xbf\xbd\xc3\xa9\","
           "\"attrs\":{},\"explain\":{},\"holdout\":false}");
    free(s);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("trigger_id", NULL, NULL);
    CU_add_test(s, "known value", test_id_known);
    CU_add_test(s, "deterministic and distinct", test_id_deterministic);
    s = CU_add_suite("trigger_codec", NULL, NULL);
    CU_add_test(s, "encode/decode round trip", test_roundtrip);
    CU_add_test(s, "truncated and trailing", test_decode_errors);
    CU_add_test(s, "schemas", test_codec_schema);
    CU_add_test(s, "direct encoding = Avro-C bytes", test_direct_bytes);
    CU_add_test(s, "encoding allocates nothing", test_direct_no_alloc);
    s = CU_add_suite("trigger_json", NULL, NULL);
    CU_add_test(s, "exact JSON", test_json);
    return tl_test_run();
}
