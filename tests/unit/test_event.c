/*
 * Unit tests of lib/event: Avro decoding (with writer->reader resolution),
 * JSON lines, the Avro encoder, expression names and tl_read_file.
 */
#include <CUnit/Basic.h>
#include <avro.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../support/alloc_count.h"
#include "../support/testutil.h"
#include "event.h"
#include "event_int.h"
#include "schemas.h"

/* ------------------------------------------------------------------------
 * Helpers
 */

/* Avro binary written by hand from the spec, so that the decoder is checked
 * against the format itself and not only against our own encoder. */
typedef struct bytes {
    unsigned char b[8192];
    size_t n;
} bytes;

static void put_long(bytes *o, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z > 0x7f) {
        o->b[o->n++] = (unsigned char)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    o->b[o->n++] = (unsigned char)z;
}

static void put_str(bytes *o, const char *s)
{
    size_t len = strlen(s);
    put_long(o, (int64_t)len);
    memcpy(o->b + o->n, s, len);
    o->n += len;
}

static void put_double(bytes *o, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    for (int i = 0; i < 8; i++) o->b[o->n++] = (unsigned char)(u >> (8 * i));
}

/* A full event per schemas/interaction_event.avsc, attrs on the wire in
 * unsorted order. */
static void handmade_event(bytes *o, const char *customer)
{
    o->n = 0;
    put_str(o, "e-1");
    put_str(o, customer);
    put_long(o, 1483273827000);
    put_long(o, 2); /* store */
    put_str(o, "purchase");
    put_long(o, 1); /* item: string branch */
    put_str(o, "1075313");
    put_long(o, 1); /* quantity: double branch */
    put_double(o, 2);
    put_long(o, 1); /* amount */
    put_double(o, 3.55);
    put_long(o, 0); /* store: null */
    put_long(o, 3); /* attrs: one block of 3 */
    put_str(o, "week");
    put_str(o, "1");
    put_str(o, "basket_id");
    put_str(o, "31198705046");
    put_str(o, "Zeta");
    put_str(o, "upper sorts first");
    put_long(o, 0);
}

static int str_eq(const char *a, const char *b)
{
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

static int events_equal(const tl_event *a, const tl_event *b)
{
    if (!str_eq(a->event_id, b->event_id) ||
        !str_eq(a->customer_id, b->customer_id) ||
        a->customer_id_len != b->customer_id_len || a->ts != b->ts ||
        a->channel != b->channel || !str_eq(a->type, b->type) ||
        !str_eq(a->item, b->item) || !str_eq(a->store, b->store) ||
        a->has_quantity != b->has_quantity || a->has_amount != b->has_amount ||
        (a->has_quantity && a->quantity != b->quantity) ||
        (a->has_amount && a->amount != b->amount) || a->nattrs != b->nattrs)
        return 0;
    for (size_t i = 0; i < a->nattrs; i++) {
        const tl_attr *x = &a->attrs[i], *y = &b->attrs[i];
        if (x->keylen != y->keylen || x->vallen != y->vallen ||
            strcmp(x->key, y->key) || memcmp(x->val, y->val, x->vallen))
            return 0;
    }
    return 1;
}

static const char *attr(const tl_event *ev, const char *key)
{
    const tl_attr *a = tl_event_attr(ev, key, strlen(key));
    return a ? a->val : NULL;
}

static int attrs_sorted(const tl_event *ev)
{
    for (size_t i = 1; i < ev->nattrs; i++)
        if (strcmp(ev->attrs[i - 1].key, ev->attrs[i].key) >= 0) return 0;
    return 1;
}

static tl_event sample_event(tl_attr *attrs, size_t nattrs)
{
    tl_event ev = {0};
    ev.event_id = "cj-1";
    ev.customer_id = "906";
    ev.customer_id_len = 3;
    ev.ts = 1483273827000;
    ev.channel = TL_CH_STORE;
    ev.type = "purchase";
    ev.item = "1075313";
    ev.store = "319";
    ev.quantity = 1;
    ev.has_quantity = 1;
    ev.amount = 1.5;
    ev.has_amount = 1;
    ev.attrs = attrs;
    ev.nattrs = nattrs;
    return ev;
}

#define ATTR(k, v) {k, v, sizeof k - 1, sizeof v - 1}

/* The interaction schema with `fields` spliced in place of its field list. */
static char *schema_with_fields(const char *fields)
{
    size_t n = strlen(fields) + 256;
    char *s = malloc(n);
    snprintf(s, n,
             "{\"type\":\"record\",\"name\":\"InteractionEvent\","
             "\"namespace\":\"io.tailor\",\"fields\":[%s]}",
             fields);
    return s;
}

#define CHANNEL_ENUM                                                           \
    "{\"type\":\"enum\",\"name\":\"Channel\",\"symbols\":[\"web\",\"app\","   \
    "\"store\",\"call_center\",\"email\",\"chat\",\"other\"],"                 \
    "\"default\":\"other\"}"

/* ------------------------------------------------------------------------
 * Channels
 */

static void test_channel_names(void)
{
    for (int i = 0; i < TL_CH__COUNT; i++) {
        const char *n = tl_channel_name((tl_channel)i);
        tl_channel c;
        CU_ASSERT_EQUAL(tl_channel_parse(n, strlen(n), &c), 0);
        CU_ASSERT_EQUAL(c, (tl_channel)i);
    }
    tl_channel c = TL_CH_WEB;
    CU_ASSERT_STRING_EQUAL(tl_channel_name(TL_CH_CALL_CENTER), "call_center");
    CU_ASSERT_EQUAL(tl_channel_parse("kiosk", 5, &c), -1);
    CU_ASSERT_EQUAL(tl_channel_parse("webx", 3, &c), 0);
    CU_ASSERT_EQUAL(c, TL_CH_WEB);
    CU_ASSERT_EQUAL(tl_channel_parse("we", 2, &c), -1);
    CU_ASSERT_STRING_EQUAL(tl_reject_name(TL_REJECT_DECODE), "decode");
    CU_ASSERT_STRING_EQUAL(tl_reject_name(TL_REJECT_MISSING_CUSTOMER),
                           "missing_customer");
    CU_ASSERT_STRING_EQUAL(tl_reject_name(TL_REJECT_LATE), "late");
    CU_ASSERT_STRING_EQUAL(tl_reject_name(TL_REJECT_BAD_TIMESTAMP),
                           "bad_timestamp");
    CU_ASSERT_STRING_EQUAL(tl_reject_name(TL_REJECT_STORE), "store");
}

/* ------------------------------------------------------------------------
 * Avro decoding
 */

static void test_avro_handmade(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    bytes b;
    tl_arena_init(&a, 0);
    tl_event_decoder *d =
        tl_event_decoder_new(TL_FMT_AVRO, tl_schema_interaction_event, NULL,
                             err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    handmade_event(&b, "906");
    CU_ASSERT_EQUAL_FATAL(
        tl_event_decode(d, b.b, b.n, &a, &ev, err, sizeof err),
        TL_REJECT_NONE);
    CU_ASSERT_STRING_EQUAL(ev.event_id, "e-1");
    CU_ASSERT_STRING_EQUAL(ev.customer_id, "906");
    CU_ASSERT_EQUAL(ev.customer_id_len, 3);
    CU_ASSERT_EQUAL(ev.ts, 1483273827000);
    CU_ASSERT_EQUAL(ev.channel, TL_CH_STORE);
    CU_ASSERT_STRING_EQUAL(ev.type, "purchase");
    CU_ASSERT_STRING_EQUAL(ev.item, "1075313");
    CU_ASSERT_PTR_NULL(ev.store);
    CU_ASSERT(ev.has_quantity && ev.quantity == 2);
    CU_ASSERT(ev.has_amount && ev.amount == 3.55);
    CU_ASSERT_EQUAL_FATAL(ev.nattrs, 3);
    CU_ASSERT(attrs_sorted(&ev));
    CU_ASSERT_STRING_EQUAL(ev.attrs[0].key, "Zeta");
    CU_ASSERT_STRING_EQUAL(ev.attrs[1].key, "basket_id");
    CU_ASSERT_STRING_EQUAL(ev.attrs[2].key, "week");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "basket_id"), "31198705046");
    CU_ASSERT_EQUAL(tl_event_attr(&ev, "week", 4)->vallen, 1);
    CU_ASSERT_PTR_NULL(tl_event_attr(&ev, "wee", 3));
    CU_ASSERT_PTR_NULL(tl_event_attr(&ev, "weekx", 5));
    /* The built-in schema is also the default reader. */
    tl_event_decoder *d2 = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                                sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d2);
    tl_event ev2;
    CU_ASSERT_EQUAL(tl_event_decode(d2, b.b, b.n, &a, &ev2, err, sizeof err),
                    TL_REJECT_NONE);
    CU_ASSERT(events_equal(&ev, &ev2));
    tl_event_decoder_free(d2);
    tl_event_decoder_free(d);
    tl_arena_free(&a);
}

static void test_avro_roundtrip(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    const void *buf;
    size_t len;
    tl_attr attrs[] = {ATTR("week", "1"), ATTR("basket_id", "311987"),
                       ATTR("", "empty key"), ATTR("retail_disc", "0.29")};
    tl_event in = sample_event(attrs, 4);
    tl_arena_init(&a, 0);
    tl_event_encoder *enc = tl_event_encoder_new(NULL, err, sizeof err);
    tl_event_decoder *d = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                               sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_encode(enc, &in, &buf, &len, err, sizeof err),
        TL_OK);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_decode(d, buf, len, &a, &ev, err, sizeof err),
        TL_REJECT_NONE);
    CU_ASSERT_EQUAL_FATAL(ev.nattrs, 4);
    CU_ASSERT(attrs_sorted(&ev));
    CU_ASSERT_STRING_EQUAL(ev.attrs[0].key, "");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "retail_disc"), "0.29");
    CU_ASSERT_STRING_EQUAL(ev.store, "319");
    CU_ASSERT_EQUAL(ev.quantity, 1);
    CU_ASSERT_EQUAL(ev.amount, 1.5);
    /* Equal to the input once the input's attrs are sorted too. */
    tl_attr sorted[] = {ATTR("", "empty key"), ATTR("basket_id", "311987"),
                        ATTR("retail_disc", "0.29"), ATTR("week", "1")};
    in.attrs = sorted;
    CU_ASSERT(events_equal(&in, &ev));
    tl_event_decoder_free(d);
    tl_event_encoder_free(enc);
    tl_arena_free(&a);
}

static void test_avro_nulls(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    const void *buf;
    size_t len;
    tl_event in = sample_event(NULL, 0);
    in.item = in.store = NULL;
    in.has_quantity = in.has_amount = 0;
    in.event_id = "";
    tl_arena_init(&a, 0);
    tl_event_encoder *enc = tl_event_encoder_new(NULL, err, sizeof err);
    tl_event_decoder *d = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                               sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_encode(enc, &in, &buf, &len, err, sizeof err),
        TL_OK);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_decode(d, buf, len, &a, &ev, err, sizeof err),
        TL_REJECT_NONE);
    CU_ASSERT_PTR_NULL(ev.item);
    CU_ASSERT_PTR_NULL(ev.store);
    CU_ASSERT_FALSE(ev.has_quantity);
    CU_ASSERT_FALSE(ev.has_amount);
    CU_ASSERT_EQUAL(ev.nattrs, 0);
    CU_ASSERT_STRING_EQUAL(ev.event_id, "");
    CU_ASSERT(events_equal(&in, &ev));
    tl_event_decoder_free(d);
    tl_event_encoder_free(enc);
    tl_arena_free(&a);
}

static void check_every_prefix(tl_event_decoder *d, const unsigned char *msg,
                               size_t n)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    tl_arena_init(&a, 0);
    for (size_t len = 0; len < n; len++) {
        /* A copy of exactly len bytes, so that ASan sees any overread. */
        unsigned char *p = malloc(len ? len : 1);
        memcpy(p, msg, len);
        err[0] = '\0';
        tl_reject r = tl_event_decode(d, p, len, &a, &ev, err, sizeof err);
        CU_ASSERT_EQUAL(r, TL_REJECT_DECODE);
        CU_ASSERT(err[0] != '\0');
        free(p);
        tl_arena_reset(&a);
    }
    CU_ASSERT_EQUAL(tl_event_decode(d, msg, n, &a, &ev, err, sizeof err),
                    TL_REJECT_NONE);
    tl_arena_free(&a);
}

static void test_avro_truncated(void)
{
    char err[TL_ERRSZ];
    bytes b;
    const void *buf;
    size_t len;
    tl_attr attrs[] = {ATTR("a", "1"), ATTR("b", "two")};
    tl_event in = sample_event(attrs, 2);
    tl_event_decoder *d = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                               sizeof err);
    tl_event_encoder *enc = tl_event_encoder_new(NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    handmade_event(&b, "906");
    check_every_prefix(d, b.b, b.n);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_encode(enc, &in, &buf, &len, err, sizeof err),
        TL_OK);
    check_every_prefix(d, buf, len);
    /* The message for a cut inside a string. */
    tl_arena a;
    tl_event ev;
    tl_arena_init(&a, 0);
    CU_ASSERT_EQUAL(tl_event_decode(d, b.b, 3, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "truncated Avro data");
    CU_ASSERT_EQUAL(tl_event_decode(d, NULL, 0, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "empty message");
    tl_arena_free(&a);
    tl_event_encoder_free(enc);
    tl_event_decoder_free(d);
}

static void test_avro_trailing(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    bytes b;
    tl_arena_init(&a, 0);
    tl_event_decoder *d = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                               sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    handmade_event(&b, "906");
    b.b[b.n++] = 0;
    b.b[b.n++] = 1;
    b.b[b.n++] = 2;
    CU_ASSERT_EQUAL(tl_event_decode(d, b.b, b.n, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "3 trailing bytes after the event");
    tl_event_decoder_free(d);
    tl_arena_free(&a);
}

/* Lengths, counts and indexes that Avro-C would trust. */
static void test_avro_corrupt(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    bytes b;
    tl_arena_init(&a, 0);
    tl_event_decoder *d = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                               sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    static const struct {
        int64_t first; /* the event_id length */
        const char *msg;
    } lens[] = {
        {-1, "negative Avro string length"},
        {-2, "negative Avro string length"},
        {(int64_t)1 << 40, "truncated Avro data"},
        {INT64_MAX, "truncated Avro data"},
        {INT64_MIN, "negative Avro string length"},
    };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        b.n = 0;
        put_long(&b, lens[i].first);
        put_str(&b, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        CU_ASSERT_EQUAL(tl_event_decode(d, b.b, b.n, &a, &ev, err, sizeof err),
                        TL_REJECT_DECODE);
        CU_ASSERT_STRING_EQUAL(err, lens[i].msg);
    }
    /* A varint of 11 bytes. */
    memset(b.b, 0xff, 11);
    b.b[11] = 0;
    CU_ASSERT_EQUAL(tl_event_decode(d, b.b, 12, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "Avro varint longer than 10 bytes");

    /* Enum index 7 (there are 7 symbols), then union index 2. */
    handmade_event(&b, "906");
    size_t chan_at = 1 + 3 + 1 + 3 + 6; /* event_id, customer_id, ts */
    CU_ASSERT_EQUAL_FATAL(b.b[chan_at], 4); /* zigzag 2 */
    b.b[chan_at] = 14;
    CU_ASSERT_EQUAL(tl_event_decode(d, b.b, b.n, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "out of range"));
    handmade_event(&b, "906");
    size_t item_at = chan_at + 1 + 9;
    CU_ASSERT_EQUAL_FATAL(b.b[item_at], 2); /* zigzag 1 */
    b.b[item_at] = 4;
    CU_ASSERT_EQUAL(tl_event_decode(d, b.b, b.n, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "Avro union index 2 out of range");
    /* A map block count far beyond the message. */
    b.n = 0;
    handmade_event(&b, "906");
    b.n -= 1 + 5 + 2 + 10 + 12 + 5 + 18 + 1; /* back to the attrs count */
    put_long(&b, 1000000);
    put_str(&b, "k");
    put_str(&b, "v");
    CU_ASSERT_EQUAL(tl_event_decode(d, b.b, b.n, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "truncated Avro data");

    /* Every byte replaced by a few values: any outcome but a crash. */
    static const unsigned char vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0x13};
    bytes good;
    handmade_event(&good, "906");
    for (size_t i = 0; i < good.n; i++) {
        for (size_t k = 0; k < sizeof vals; k++) {
            bytes m = good;
            m.b[i] = vals[k];
            tl_reject r =
                tl_event_decode(d, m.b, m.n, &a, &ev, err, sizeof err);
            CU_ASSERT(r == TL_REJECT_NONE || r == TL_REJECT_DECODE ||
                      r == TL_REJECT_MISSING_CUSTOMER ||
                      r == TL_REJECT_BAD_TIMESTAMP);
            tl_arena_reset(&a);
        }
    }
    tl_event_decoder_free(d);
    tl_arena_free(&a);
}

static void test_avro_missing_customer(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    bytes b;
    tl_arena_init(&a, 0);
    tl_event_decoder *d = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                               sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    handmade_event(&b, "");
    CU_ASSERT_EQUAL(tl_event_decode(d, b.b, b.n, &a, &ev, err, sizeof err),
                    TL_REJECT_MISSING_CUSTOMER);
    CU_ASSERT_STRING_EQUAL(err, "customer_id is empty");
    tl_event_decoder_free(d);
    tl_arena_free(&a);
}

/* A producer's newer schema: fields reordered, an extra field, an extra
 * channel symbol in another order. */
static void test_avro_writer_extra_field(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    bytes b = {.n = 0};
    char *writer = schema_with_fields(
        "{\"name\":\"customer_id\",\"type\":\"string\"},"
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"session_id\",\"type\":\"string\"},"
        "{\"name\":\"ts\",\"type\":\"long\"},"
        "{\"name\":\"channel\",\"type\":{\"type\":\"enum\",\"name\":"
        "\"Channel\",\"symbols\":[\"kiosk\",\"chat\",\"web\",\"app\","
        "\"store\",\"call_center\",\"email\",\"other\"]}},"
        "{\"name\":\"type\",\"type\":\"string\"},"
        "{\"name\":\"item\",\"type\":[\"null\",\"string\"],\"default\":null},"
        "{\"name\":\"quantity\",\"type\":[\"null\",\"double\"]},"
        "{\"name\":\"amount\",\"type\":[\"null\",\"double\"]},"
        "{\"name\":\"store\",\"type\":[\"null\",\"string\"]},"
        "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":"
        "\"string\"}},"
        "{\"name\":\"score\",\"type\":[\"null\",\"double\"]}");
    tl_arena_init(&a, 0);
    tl_event_decoder *d = tl_event_decoder_new(
        TL_FMT_AVRO, tl_schema_interaction_event, writer, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);

    put_str(&b, "c-42");
    put_str(&b, "ev-9");
    put_str(&b, "session-77");
    put_long(&b, 1700000000123);
    put_long(&b, 1); /* chat in the writer's order (5 in the reader's) */
    put_str(&b, "message");
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 1);
    put_double(&b, -0.5);
    put_long(&b, 1);
    put_str(&b, "s-1");
    put_long(&b, -2); /* a block with a byte size, as Java writes them */
    put_long(&b, 24); /* bytes in the block */
    put_str(&b, "lang");
    put_str(&b, "de");
    put_str(&b, "app_version");
    put_str(&b, "7.1");
    put_long(&b, 0);
    put_long(&b, 1);
    put_double(&b, 0.75);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_decode(d, b.b, b.n, &a, &ev, err, sizeof err),
        TL_REJECT_NONE);
    CU_ASSERT_STRING_EQUAL(ev.event_id, "ev-9");
    CU_ASSERT_STRING_EQUAL(ev.customer_id, "c-42");
    CU_ASSERT_EQUAL(ev.ts, 1700000000123);
    CU_ASSERT_EQUAL(ev.channel, TL_CH_CHAT);
    CU_ASSERT_STRING_EQUAL(ev.type, "message");
    CU_ASSERT_PTR_NULL(ev.item);
    CU_ASSERT_FALSE(ev.has_quantity);
    CU_ASSERT(ev.has_amount && ev.amount == -0.5);
    CU_ASSERT_STRING_EQUAL(ev.store, "s-1");
    CU_ASSERT_EQUAL_FATAL(ev.nattrs, 2);
    CU_ASSERT_STRING_EQUAL(ev.attrs[0].key, "app_version");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "lang"), "de");

    /* "kiosk" is unknown to the reader: its enum default, other. */
    size_t chan_at = 5 + 5 + 11 + 6;
    CU_ASSERT_EQUAL_FATAL(b.b[chan_at], 2);
    b.b[chan_at] = 0;
    CU_ASSERT_EQUAL(tl_event_decode(d, b.b, b.n, &a, &ev, err, sizeof err),
                    TL_REJECT_NONE);
    CU_ASSERT_EQUAL(ev.channel, TL_CH_OTHER);
    /* Every prefix fails cleanly through the resolver too. */
    check_every_prefix(d, b.b, b.n);
    tl_event_decoder_free(d);

    /* Without an enum default, an unknown symbol is a decode error. */
    char *reader = schema_with_fields(
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"customer_id\",\"type\":\"string\"},"
        "{\"name\":\"ts\",\"type\":\"long\"},"
        "{\"name\":\"channel\",\"type\":{\"type\":\"enum\",\"name\":"
        "\"Channel\",\"symbols\":[\"web\",\"chat\"]}},"
        "{\"name\":\"type\",\"type\":\"string\"}");
    d = tl_event_decoder_new(TL_FMT_AVRO, reader, writer, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(tl_event_decode(d, b.b, b.n, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(
        err, "channel 'kiosk' is not a symbol of the reader schema");
    b.b[chan_at] = 2;
    CU_ASSERT_EQUAL(tl_event_decode(d, b.b, b.n, &a, &ev, err, sizeof err),
                    TL_REJECT_NONE);
    CU_ASSERT_EQUAL(ev.channel, TL_CH_CHAT);
    /* Fields the reader does not have are absent. */
    CU_ASSERT_PTR_NULL(ev.store);
    CU_ASSERT_FALSE(ev.has_amount);
    CU_ASSERT_EQUAL(ev.nattrs, 0);
    tl_event_decoder_free(d);
    free(reader);
    free(writer);
    tl_arena_free(&a);
}

/* An older producer: fields the reader has with defaults are missing. */
static void test_avro_writer_lacks_fields(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    const void *buf;
    size_t len;
    tl_attr attrs[] = {ATTR("k", "v")};
    tl_event in = sample_event(attrs, 1);
    char *writer = schema_with_fields(
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"customer_id\",\"type\":\"string\"},"
        "{\"name\":\"ts\",\"type\":\"long\"},"
        "{\"name\":\"channel\",\"type\":" CHANNEL_ENUM "},"
        "{\"name\":\"item\",\"type\":[\"null\",\"string\"]},"
        "{\"name\":\"amount\",\"type\":[\"null\",\"double\"]}");
    tl_arena_init(&a, 0);
    tl_event_encoder *enc = tl_event_encoder_new(writer, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    /* The encoder writes what its schema has: no type, store, attrs. */
    CU_ASSERT_EQUAL(tl_event_encode(enc, &in, &buf, &len, err, sizeof err),
                    TL_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "attrs"));
    in.nattrs = 0;
    CU_ASSERT_EQUAL_FATAL(
        tl_event_encode(enc, &in, &buf, &len, err, sizeof err),
        TL_OK);

    /* The built-in reader's "type" has no default. */
    tl_event_decoder *d = tl_event_decoder_new(
        TL_FMT_AVRO, tl_schema_interaction_event, writer, err, sizeof err);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_STRING_EQUAL(
        err, "writer schema lacks reader field 'type', which has no default");

    /* A reader with defaults for everything the writer lacks. */
    char *reader = schema_with_fields(
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"customer_id\",\"type\":\"string\"},"
        "{\"name\":\"ts\",\"type\":\"long\"},"
        "{\"name\":\"channel\",\"type\":" CHANNEL_ENUM "},"
        "{\"name\":\"type\",\"type\":\"string\",\"default\":\"visit\"},"
        "{\"name\":\"item\",\"type\":[\"null\",\"string\"],\"default\":null},"
        "{\"name\":\"quantity\",\"type\":[\"null\",\"double\"],"
        "\"default\":null},"
        "{\"name\":\"amount\",\"type\":[\"null\",\"double\"],"
        "\"default\":null},"
        "{\"name\":\"store\",\"type\":[\"string\",\"null\"],"
        "\"default\":\"S1\"},"
        "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":"
        "\"string\"},\"default\":{\"src\":\"legacy\",\"a\":\"1\"}}");
    d = tl_event_decoder_new(TL_FMT_AVRO, reader, writer, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_decode(d, buf, len, &a, &ev, err, sizeof err),
        TL_REJECT_NONE);
    CU_ASSERT_STRING_EQUAL(ev.event_id, "cj-1");
    CU_ASSERT_STRING_EQUAL(ev.customer_id, "906");
    CU_ASSERT_EQUAL(ev.ts, 1483273827000);
    CU_ASSERT_EQUAL(ev.channel, TL_CH_STORE);
    CU_ASSERT_STRING_EQUAL(ev.type, "visit");
    CU_ASSERT_STRING_EQUAL(ev.item, "1075313");
    CU_ASSERT_FALSE(ev.has_quantity);
    CU_ASSERT(ev.has_amount && ev.amount == 1.5);
    CU_ASSERT_STRING_EQUAL(ev.store, "S1");
    CU_ASSERT_EQUAL_FATAL(ev.nattrs, 2);
    CU_ASSERT_STRING_EQUAL(ev.attrs[0].key, "a");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "src"), "legacy");
    tl_event_decoder_free(d);

    /* The same event with the built-in reader and a writer lacking only
     * optional fields. */
    char *writer2 = schema_with_fields(
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"customer_id\",\"type\":\"string\"},"
        "{\"name\":\"ts\",\"type\":\"long\"},"
        "{\"name\":\"channel\",\"type\":" CHANNEL_ENUM "},"
        "{\"name\":\"type\",\"type\":\"string\"}");
    tl_event_encoder_free(enc);
    enc = tl_event_encoder_new(writer2, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_encode(enc, &in, &buf, &len, err, sizeof err),
        TL_OK);
    d = tl_event_decoder_new(TL_FMT_AVRO, NULL, writer2, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_decode(d, buf, len, &a, &ev, err, sizeof err),
        TL_REJECT_NONE);
    CU_ASSERT_STRING_EQUAL(ev.type, "purchase");
    CU_ASSERT_PTR_NULL(ev.item);
    CU_ASSERT_PTR_NULL(ev.store);
    CU_ASSERT_FALSE(ev.has_quantity || ev.has_amount);
    CU_ASSERT_EQUAL(ev.nattrs, 0);
    tl_event_decoder_free(d);
    tl_event_encoder_free(enc);
    free(writer2);
    free(reader);
    free(writer);
    tl_arena_free(&a);
}

static void test_avro_bad_schemas(void)
{
    char err[TL_ERRSZ];
    /* ts as a string cannot be read as a long. */
    char *writer = schema_with_fields(
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"customer_id\",\"type\":\"string\"},"
        "{\"name\":\"ts\",\"type\":\"string\"},"
        "{\"name\":\"channel\",\"type\":" CHANNEL_ENUM "},"
        "{\"name\":\"type\",\"type\":\"string\"}");
    tl_event_decoder *d = tl_event_decoder_new(
        TL_FMT_AVRO, tl_schema_interaction_event, writer, err, sizeof err);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err, "writer schema does not resolve to the reader schema"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "ts"));
    free(writer);

    d = tl_event_decoder_new(TL_FMT_AVRO, NULL, "{\"type\":", err, sizeof err);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_EQUAL(strncmp(err, "writer schema: ", 15), 0);
    d = tl_event_decoder_new(TL_FMT_AVRO, "\"string\"", NULL, err, sizeof err);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_STRING_EQUAL(err, "reader schema: must be a record");

    char *reader = schema_with_fields(
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"customer_id\",\"type\":\"string\"},"
        "{\"name\":\"ts\",\"type\":\"string\"},"
        "{\"name\":\"channel\",\"type\":" CHANNEL_ENUM "},"
        "{\"name\":\"type\",\"type\":\"string\"}");
    d = tl_event_decoder_new(TL_FMT_AVRO, reader, NULL, err, sizeof err);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_STRING_EQUAL(
        err, "reader schema: field 'ts' must be a long or an int");
    free(reader);

    reader = schema_with_fields(
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"customer_id\",\"type\":\"string\"},"
        "{\"name\":\"ts\",\"type\":\"long\"},"
        "{\"name\":\"type\",\"type\":\"string\"}");
    d = tl_event_decoder_new(TL_FMT_AVRO, reader, NULL, err, sizeof err);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_STRING_EQUAL(err, "reader schema: field 'channel' is missing");
    free(reader);

    reader = schema_with_fields(
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"customer_id\",\"type\":\"string\"},"
        "{\"name\":\"ts\",\"type\":\"long\"},"
        "{\"name\":\"channel\",\"type\":{\"type\":\"enum\",\"name\":"
        "\"Channel\",\"symbols\":[\"web\",\"kiosk\"]}},"
        "{\"name\":\"type\",\"type\":\"string\"}");
    d = tl_event_decoder_new(TL_FMT_AVRO, reader, NULL, err, sizeof err);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'kiosk'"));
    free(reader);
}

/* ------------------------------------------------------------------------
 * JSON
 */

static const char first_line[] =
    "{\"event_id\":\"cj-31198705046-6139\",\"customer_id\":\"906\",\"ts\":"
    "1483273827000,\"channel\":\"store\",\"type\":\"purchase\",\"item\":"
    "\"1075313\",\"quantity\":1,\"amount\":1.5,\"store\":\"319\",\"attrs\":{"
    "\"source_row\":6139,\"basket_id\":\"31198705046\",\"week\":1,"
    "\"retail_disc\":0.29,\"coupon_disc\":0,\"coupon_match_disc\":0,"
    "\"currency\":\"USD\",\"department\":\"GROCERY\",\"product_category\":"
    "\"SEAFOOD - SHELF STABLE\",\"product_type\":\"TUNA\",\"brand\":"
    "\"National\",\"package_size\":\"5.0 OZ\",\"manufacturer_id\":\"2326\"}}\n";

static void test_json_line(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    tl_arena_init(&a, 0);
    CU_ASSERT_EQUAL_FATAL(tl_event_from_json(first_line, strlen(first_line),
                                             &a, &ev, err, sizeof err),
                          TL_REJECT_NONE);
    CU_ASSERT_STRING_EQUAL(ev.event_id, "cj-31198705046-6139");
    CU_ASSERT_STRING_EQUAL(ev.customer_id, "906");
    CU_ASSERT_EQUAL(ev.customer_id_len, 3);
    CU_ASSERT_EQUAL(ev.ts, 1483273827000);
    CU_ASSERT_EQUAL(ev.channel, TL_CH_STORE);
    CU_ASSERT_STRING_EQUAL(ev.type, "purchase");
    CU_ASSERT_STRING_EQUAL(ev.item, "1075313");
    CU_ASSERT_STRING_EQUAL(ev.store, "319");
    CU_ASSERT(ev.has_quantity && ev.quantity == 1);
    CU_ASSERT(ev.has_amount && ev.amount == 1.5);
    CU_ASSERT_EQUAL(ev.nattrs, 13);
    CU_ASSERT(attrs_sorted(&ev));
    CU_ASSERT_STRING_EQUAL(attr(&ev, "source_row"), "6139");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "week"), "1");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "retail_disc"), "0.29");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "coupon_disc"), "0");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "package_size"), "5.0 OZ");
    tl_arena_free(&a);
}

static void test_json_attr_formatting(void)
{
    static const char line[] =
        "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":0,\"channel\":"
        "\"web\",\"type\":\"view\",\"attrs\":{\"a\":0.29,\"b\":6,\"c\":true,"
        "\"d\":false,\"e\":null,\"f\":{\"x\":[1,2.5,\"s\\\"q\\n\"],\"y\":null,"
        "\"z\":{}},\"g\":6.0,\"h\":-0.5,\"i\":1e300,\"j\":"
        "12345678901234567,\"k\":[],\"l\":\"\\u00e9\\t\",\"m\":0.1e1,"
        "\"n\":1.0000000000000002}}";
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    tl_arena_init(&a, 0);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_from_json(line, strlen(line), &a, &ev, err, sizeof err),
        TL_REJECT_NONE);
    CU_ASSERT_EQUAL(ev.nattrs, 13); /* "e" dropped */
    CU_ASSERT_PTR_NULL(attr(&ev, "e"));
    CU_ASSERT_STRING_EQUAL(attr(&ev, "a"), "0.29");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "b"), "6");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "c"), "true");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "d"), "false");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "f"),
                           "{\"x\":[1,2.5,\"s\\\"q\\n\"],\"y\":null,\"z\":{}}");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "g"), "6");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "h"), "-0.5");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "i"), "1e+300");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "j"), "12345678901234567");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "k"), "[]");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "l"), "\xc3\xa9\t");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "m"), "1");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "n"), "1.0000000000000002");
    /* A top-level field the event does not have is an attribute, not lost
     * (issue 20, item 10): a string as it is, anything else its JSON text,
     * null dropped; an attrs entry of the same name wins. */
    static const char extra[] =
        "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":0,\"channel\":"
        "\"web\",\"type\":\"view\",\"item\":null,\"page\":\"home\","
        "\"n\":6,\"gone\":null,\"ref\":\"top\",\"attrs\":{\"ref\":\"attrs\","
        "\"a\":\"x\"}}";
    CU_ASSERT_EQUAL_FATAL(
        tl_event_from_json(extra, strlen(extra), &a, &ev, err, sizeof err),
        TL_REJECT_NONE);
    CU_ASSERT_EQUAL(ev.nattrs, 4);
    CU_ASSERT(attrs_sorted(&ev));
    CU_ASSERT_STRING_EQUAL(attr(&ev, "page"), "home");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "n"), "6");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "ref"), "attrs");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "a"), "x");
    CU_ASSERT_PTR_NULL(attr(&ev, "gone"));
    CU_ASSERT_PTR_NULL(attr(&ev, "item"));
    CU_ASSERT_PTR_NULL(attr(&ev, "type"));
    tl_arena_free(&a);
}

static void test_json_errors(void)
{
    static const struct {
        const char *line;
        tl_reject r;
        const char *err; /* exact, or a prefix when ending in '*' */
    } cases[] = {
        {"{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":\"1\","
         "\"channel\":\"web\",\"type\":\"v\"}",
         TL_REJECT_DECODE,
         "field 'ts': \"1\" is not an ISO 8601 time like "
         "2025-03-11T14:33:22Z or 2025-03-11T15:33:22.250+01:00 (date, time "
         "and offset are required)"},
        {"{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1.5,"
         "\"channel\":\"web\",\"type\":\"v\"}",
         TL_REJECT_DECODE,
         "field 'ts' must be an integer (epoch milliseconds) or an ISO 8601 "
         "time in a string"},
        {"{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":null,"
         "\"channel\":\"web\",\"type\":\"v\"}",
         TL_REJECT_DECODE, "field 'ts' must be an integer*"},
        {"{\"event_id\":\"e\",\"customer_id\":\"c\","
         "\"ts\":\"2025-03-11T14:33:22\",\"channel\":\"web\",\"type\":\"v\"}",
         TL_REJECT_DECODE, "field 'ts': \"2025-03-11T14:33:22\" is not an*"},
        {"{\"event_id\":\"e\",\"customer_id\":\"c\","
         "\"ts\":\"2023-02-29T00:00:00Z\",\"channel\":\"web\",\"type\":\"v\"}",
         TL_REJECT_DECODE, "field 'ts': \"2023-02-29T00:00:00Z\" is not an*"},
        {"{\"customer_id\":\"c\",\"ts\":1,\"channel\":\"web\",\"type\":\"v\"}",
         TL_REJECT_DECODE, "missing field 'event_id'"},
        {"{\"event_id\":3,\"customer_id\":\"c\",\"ts\":1,\"channel\":\"web\","
         "\"type\":\"v\"}",
         TL_REJECT_DECODE, "field 'event_id' must be a string"},
        {"{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,"
         "\"channel\":\"kiosk\",\"type\":\"v\"}",
         TL_REJECT_DECODE,
         "field 'channel' must be one of web, app, store, call_center, email, "
         "chat, other"},
        {"{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,"
         "\"type\":\"v\"}",
         TL_REJECT_DECODE, "missing field 'channel'"},
        {"{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,"
         "\"channel\":\"web\"}",
         TL_REJECT_DECODE, "missing field 'type'"},
        {"{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,"
         "\"channel\":\"web\",\"type\":\"v\",\"item\":5}",
         TL_REJECT_DECODE, "field 'item' must be a string or null"},
        {"{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,"
         "\"channel\":\"web\",\"type\":\"v\",\"amount\":\"5\"}",
         TL_REJECT_DECODE, "field 'amount' must be a number or null"},
        {"{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,"
         "\"channel\":\"web\",\"type\":\"v\",\"attrs\":[1]}",
         TL_REJECT_DECODE, "field 'attrs' must be an object"},
        {"{\"event_id\":\"e\",\"customer_id\":7,\"ts\":1,"
         "\"channel\":\"web\",\"type\":\"v\"}",
         TL_REJECT_DECODE, "field 'customer_id' must be a string"},
        {"[1,2]", TL_REJECT_DECODE, "the event must be a JSON object"},
        {"{\"event_id\":\"e\",}", TL_REJECT_DECODE,
         "invalid JSON at line 1 column 17: *"},
        {"", TL_REJECT_DECODE, "invalid JSON at line 1 column 0: *"},
        {"{\"event_id\":\"e\",\"event_id\":\"f\"}", TL_REJECT_DECODE,
         "invalid JSON at *"},
        /* A missing customer is its own reason, after the other checks. */
        {"{\"event_id\":\"e\",\"customer_id\":\"\",\"ts\":1,"
         "\"channel\":\"web\",\"type\":\"v\"}",
         TL_REJECT_MISSING_CUSTOMER, "customer_id is missing or empty"},
        {"{\"event_id\":\"e\",\"ts\":1,\"channel\":\"web\",\"type\":\"v\"}",
         TL_REJECT_MISSING_CUSTOMER, "customer_id is missing or empty"},
        {"{\"event_id\":\"e\",\"customer_id\":null,\"ts\":1,"
         "\"channel\":\"web\",\"type\":\"v\"}",
         TL_REJECT_MISSING_CUSTOMER, "customer_id is missing or empty"},
        {"{\"event_id\":\"e\",\"ts\":\"x\",\"channel\":\"web\",\"type\":\"v\"}",
         TL_REJECT_DECODE, "field 'ts': \"x\" is not an ISO 8601 time*"},
    };
    tl_arena a;
    tl_event ev;
    tl_arena_init(&a, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[TL_ERRSZ] = "";
        tl_reject r = tl_event_from_json(cases[i].line, strlen(cases[i].line),
                                         &a, &ev, err, sizeof err);
        CU_ASSERT_EQUAL(r, cases[i].r);
        size_t n = strlen(cases[i].err);
        int ok = cases[i].err[n - 1] == '*'
                     ? strncmp(err, cases[i].err, n - 1) == 0 && err[n - 1]
                     : strcmp(err, cases[i].err) == 0;
        if (!ok || r != cases[i].r)
            fprintf(stderr, "\ncase %zu: got %d '%s'\n", i, (int)r, err);
        CU_ASSERT(ok);
    }
    tl_arena_free(&a);
}

static void test_json_decoder(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    tl_arena_init(&a, 0);
    tl_event_decoder *d =
        tl_event_decoder_new(TL_FMT_JSON, NULL, NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(tl_event_decode(d, first_line, strlen(first_line), &a, &ev,
                                    err, sizeof err),
                    TL_REJECT_NONE);
    CU_ASSERT_STRING_EQUAL(ev.customer_id, "906");
    /* An empty Kafka message: NULL payload. */
    CU_ASSERT_EQUAL(tl_event_decode(d, NULL, 0, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_EQUAL(strncmp(err, "invalid JSON", 12), 0);
    /* Not NUL-terminated: only len bytes are read. */
    CU_ASSERT_EQUAL(tl_event_decode(d, first_line, 20, &a, &ev, err,
                                    sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_EQUAL(strncmp(err, "invalid JSON", 12), 0);
    /* A top-level field the event does not have is an attribute. */
    static const char page[] =
        "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":0,\"channel\":"
        "\"web\",\"type\":\"view\",\"page\":\"cart\"}";
    CU_ASSERT_EQUAL_FATAL(
        tl_event_decode(d, page, strlen(page), &a, &ev, err, sizeof err),
        TL_REJECT_NONE);
    CU_ASSERT_EQUAL(ev.nattrs, 1);
    CU_ASSERT_STRING_EQUAL(attr(&ev, "page"), "cart");
    tl_event_decoder_free(d);
    tl_arena_free(&a);
}


/* JSON -> event -> Avro -> event gives the same event, for real data. */
static void test_json_slice_roundtrip(void)
{
    char err[TL_ERRSZ], line[65536];
    tl_arena a, b;
    int n = 0;
    const char *path =
        tl_test_src("tests/data/complete_journey_slice.jsonl.gz");
    gzFile gz = gzopen(path, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(gz);
    tl_arena_init(&a, 0);
    tl_arena_init(&b, 0);
    tl_event_encoder *enc = tl_event_encoder_new(NULL, err, sizeof err);
    tl_event_decoder *d =
        tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    while (n < 200 && gzgets(gz, line, sizeof line)) {
        tl_event ev, back;
        const void *buf;
        size_t len;
        tl_arena_reset(&a);
        tl_arena_reset(&b);
        n++;
        if (tl_event_from_json(line, strlen(line), &a, &ev, err, sizeof err) !=
            TL_REJECT_NONE) {
            fprintf(stderr, "\nline %d: %s\n", n, err);
            CU_FAIL("JSON line rejected");
            continue;
        }
        CU_ASSERT(attrs_sorted(&ev));
        CU_ASSERT_EQUAL_FATAL(
            tl_event_encode(enc, &ev, &buf, &len, err, sizeof err), TL_OK);
        CU_ASSERT_EQUAL_FATAL(
            tl_event_decode(d, buf, len, &b, &back, err, sizeof err),
            TL_REJECT_NONE);
        CU_ASSERT(events_equal(&ev, &back));
    }
    CU_ASSERT_EQUAL(n, 200);
    gzclose(gz);
    tl_event_decoder_free(d);
    tl_event_encoder_free(enc);
    tl_arena_free(&a);
    tl_arena_free(&b);
}

/* Decodes buf once (it must be accepted), then 1,000 times more into the
 * reset arena: the allocations those made. */
static unsigned long decode_allocs(tl_event_decoder *d, const void *buf,
                                   size_t len, tl_arena *a, tl_event *ev)
{
    char err[TL_ERRSZ];
    tl_alloc_counter_install();
    CU_ASSERT_EQUAL(tl_event_decode(d, buf, len, a, ev, err, sizeof err),
                    TL_REJECT_NONE);
    tl_alloc_calls = 0;
    tl_alloc_counting = 1;
    for (int i = 0; i < 1000; i++) {
        tl_arena_reset(a);
        tl_event_decode(d, buf, len, a, ev, err, sizeof err);
    }
    tl_alloc_counting = 0;
    return tl_alloc_calls;
}

/* Decoding a JSON event allocates nothing once the arena has its chunk
 * (issue 14 item 4): strings escaped or not, numbers, nulls, top-level
 * fields that are attributes, ts as an ISO string. */
static void test_json_no_alloc(void)
{
    static const char other[] =
        "{\"event_id\":\"or-536365-1\",\"customer_id\":\"17850\",\"ts\":"
        "\"2010-12-01T08:26:00Z\",\"channel\":\"web\",\"type\":\"purchase\","
        "\"item\":\"85123A\",\"quantity\":-6,\"amount\":15.3,\"store\":null,"
        "\"page\":\"home\",\"attrs\":{\"description\":\"WHITE \\\"HEART\\\" "
        "\\u00e9\\ud83d\\ude00\",\"unit_price\":2.55,\"gift\":false,"
        "\"none\":null}}";
    const char *lines[] = {first_line, other};
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    if (tl_test_under_valgrind()) return;
    tl_arena_init(&a, 1 << 16);
    tl_event_decoder *d =
        tl_event_decoder_new(TL_FMT_JSON, NULL, NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    for (int k = 0; k < 2; k++)
        CU_ASSERT_EQUAL(
            decode_allocs(d, lines[k], strlen(lines[k]), &a, &ev), 0);
    CU_ASSERT_EQUAL(ev.ts, INT64_C(1291191960000));
    CU_ASSERT_EQUAL(ev.nattrs, 4);
    CU_ASSERT_STRING_EQUAL(attr(&ev, "description"),
                           "WHITE \"HEART\" \xc3\xa9\xf0\x9f\x98\x80");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "unit_price"), "2.55");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "gift"), "false");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "page"), "home");
    tl_event_decoder_free(d);
    tl_arena_free(&a);
}

/* 1 when the decoder (the direct reader, else jansson's) and jansson's
 * reader alone agree on json: verdict, message, event.  *direct: the
 * direct reader took it. */
static int json_agree(const char *json, size_t len, tl_arena *a, tl_arena *b,
                      int *direct)
{
    char e1[TL_ERRSZ] = "", e2[TL_ERRSZ] = "";
    tl_event x, y;
    tl_arena_reset(a);
    tl_arena_reset(b);
    memset(&x, 0, sizeof x);
    *direct = !tl_event_json_direct(json, len, a, &x);
    tl_reject r1 = tl_event_from_json(json, len, a, &x, e1, sizeof e1);
    tl_reject r2 = tl_event_json_tree(json, len, b, &y, TL_EVENT_MIN_TS,
                                      TL_EVENT_MAX_TS, e2, sizeof e2);
    int ok = r1 == r2 && !strcmp(e1, e2) &&
             (r1 != TL_REJECT_NONE || (events_equal(&x, &y) &&
                                       attrs_sorted(&x)));
    if (!ok)
        fprintf(stderr, "\n%.*s\n  decoder: %s (%s), jansson: %s (%s)\n",
                (int)len, json, tl_reject_name(r1), e1, tl_reject_name(r2),
                e2);
    return ok;
}

/* The direct reader against jansson's: every seed of fuzz/corpus/json and
 * a few lines of the corners (escapes, surrogates, numbers, duplicates,
 * nesting), every prefix of them, and every byte replaced by one that
 * matters to JSON. */
static void test_json_direct_vs_jansson(void)
{
    static const char *const seeds[] = {"edge-1.json", "edge-2.json",
                                        "edge-3.json", "edge-4.json",
                                        "slice-1.json", "slice-2.json",
                                        "slice-3.json"};
    static const char *const lines[] = {
        "{\"event_id\":\"e\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\","
        "\"customer_id\":\"c\",\"ts\":1,\"channel\":\"web\",\"type\":\"v\","
        "\"attrs\":{\"a\":\"\\ud83d\\ude00\",\"b\":\"\\ud83d\",\"c\":1}}",
        "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":-0,\"channel\":"
        "\"web\",\"type\":\"v\",\"quantity\":-0,\"amount\":1e-400,\"attrs\":"
        "{\"i\":-0,\"j\":9223372036854775807,\"k\":9223372036854775808,"
        "\"r\":-0.0,\"e\":1E+2}}",
        " {\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,\"channel\":"
        "\"app\",\"type\":\"v\",\"x\":1,\"x\":2} ",
        "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,\"channel\":"
        "\"app\",\"type\":\"v\",\"r\":\"top\",\"s\":\"top\",\"attrs\":{\"r\":"
        "null,\"s\":\"a\"},\"n\":{\"k\":[1]}}",
        "{\"ev\\u0065nt_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,\"channel\":"
        "\"web\",\"type\":\"v\",\"attrs\":null,\"item\":null}",
        "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":\"2025-03-11T15:33:"
        "22.250+01:00\",\"channel\":\"w\\u0065b\",\"type\":\"v\",\"store\":"
        "\"s\",\"attrs\":{},\"attrs\":{}}",
    };
    static const char subst[] = {'"', '\\', '{', '}', '[', ',', ':', ' ',
                                 '0', '9', '-', '.', 'e', 'n', 'u', 'x',
                                 '\0', '\x01', '\x80', '\xff'};
    const char *text[sizeof seeds / sizeof *seeds + sizeof lines / sizeof *lines];
    char *owned[sizeof seeds / sizeof *seeds];
    size_t ntext = 0, inputs = 0, agreed = 0, direct = 0;
    tl_arena a, b;
    tl_arena_init(&a, 0);
    tl_arena_init(&b, 0);
    for (size_t s = 0; s < sizeof seeds / sizeof *seeds; s++) {
        char rel[256], err[TL_ERRSZ];
        size_t len;
        snprintf(rel, sizeof rel, "fuzz/corpus/json/%s", seeds[s]);
        owned[s] = tl_read_file(tl_test_src(rel), &len, err, sizeof err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(owned[s]);
        text[ntext++] = owned[s];
    }
    for (size_t l = 0; l < sizeof lines / sizeof *lines; l++)
        text[ntext++] = lines[l];
    for (size_t t = 0; t < ntext; t++) {
        size_t len = strcspn(text[t], "\n");
        char *m = malloc(len + 1);
        for (size_t cut = 0; cut <= len; cut++) {
            int d;
            inputs++;
            agreed += json_agree(text[t], cut, &a, &b, &d);
            direct += d;
        }
        for (size_t i = 0; i < len; i++)
            for (size_t k = 0; k < sizeof subst; k++) {
                int d;
                memcpy(m, text[t], len);
                m[i] = subst[k];
                inputs++;
                agreed += json_agree(m, len, &a, &b, &d);
                direct += d;
            }
        free(m);
    }
    CU_ASSERT_EQUAL(agreed, inputs);
    /* The direct reader takes many of them, and leaves many to jansson. */
    CU_ASSERT(direct > 1000);
    CU_ASSERT(inputs - direct > 1000);
    for (size_t s = 0; s < sizeof seeds / sizeof *seeds; s++) free(owned[s]);
    tl_arena_free(&a);
    tl_arena_free(&b);
}

/* ------------------------------------------------------------------------
 * Expression names
 */

static void test_resolve(void)
{
    static const struct {
        const char *name;
        tl_type type;
    } names[] = {
        {"event_id", TL_T_STR}, {"customer_id", TL_T_STR},
        {"ts", TL_T_NUM},       {"channel", TL_T_STR},
        {"type", TL_T_STR},     {"item", TL_T_STR},
        {"store", TL_T_STR},    {"quantity", TL_T_NUM},
        {"amount", TL_T_NUM},
    };
    uint32_t seen[16];
    size_t nseen = 0;
    uint32_t var;
    tl_type type;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        CU_ASSERT_EQUAL_FATAL(
            tl_event_resolve(NULL, names[i].name, NULL, &var, &type), 0);
        CU_ASSERT_EQUAL(type, names[i].type);
        CU_ASSERT(var < TL_EVENT_VAR_LIMIT);
        for (size_t k = 0; k < nseen; k++) CU_ASSERT_NOT_EQUAL(seen[k], var);
        seen[nseen++] = var;
        /* No plain name can be indexed. */
        CU_ASSERT_EQUAL(tl_event_resolve(NULL, names[i].name, "k", &var, &type),
                        -1);
    }
    CU_ASSERT_EQUAL(tl_event_resolve(NULL, "attrs", "basket_id", &var, &type),
                    0);
    CU_ASSERT_EQUAL(type, TL_T_STR);
    CU_ASSERT(var < TL_EVENT_VAR_LIMIT);
    for (size_t k = 0; k < nseen; k++) CU_ASSERT_NOT_EQUAL(seen[k], var);
    CU_ASSERT_EQUAL(tl_event_resolve(NULL, "attrs", NULL, &var, &type), -1);
    CU_ASSERT_EQUAL(tl_event_resolve(NULL, "visitz", NULL, &var, &type), -1);
    CU_ASSERT_EQUAL(tl_event_resolve(NULL, "", NULL, &var, &type), -1);
    CU_ASSERT_EQUAL(tl_event_resolve(NULL, "Type", NULL, &var, &type), -1);
}

static tl_value fetch(const tl_event *ev, const char *name, const char *key)
{
    uint32_t var;
    tl_type type;
    tl_value v = {.type = TL_T_BOOL};
    CU_ASSERT_EQUAL_FATAL(tl_event_resolve(NULL, name, key, &var, &type), 0);
    tl_event_fetch((void *)ev, var, key, key ? strlen(key) : 0, &v);
    return v;
}

static int is_str(tl_value v, const char *s)
{
    return v.type == TL_T_STR && v.u.str.len == strlen(s) &&
           memcmp(v.u.str.ptr, s, v.u.str.len) == 0;
}

static void test_fetch(void)
{
    tl_attr attrs[] = {ATTR("basket_id", "311"), ATTR("week", "1")};
    tl_event ev = sample_event(attrs, 2);
    CU_ASSERT(is_str(fetch(&ev, "event_id", NULL), "cj-1"));
    CU_ASSERT(is_str(fetch(&ev, "customer_id", NULL), "906"));
    tl_value v = fetch(&ev, "ts", NULL);
    CU_ASSERT(v.type == TL_T_NUM && v.u.num == 1483273827000.0);
    CU_ASSERT(is_str(fetch(&ev, "channel", NULL), "store"));
    CU_ASSERT(is_str(fetch(&ev, "type", NULL), "purchase"));
    CU_ASSERT(is_str(fetch(&ev, "item", NULL), "1075313"));
    CU_ASSERT(is_str(fetch(&ev, "store", NULL), "319"));
    v = fetch(&ev, "quantity", NULL);
    CU_ASSERT(v.type == TL_T_NUM && v.u.num == 1);
    v = fetch(&ev, "amount", NULL);
    CU_ASSERT(v.type == TL_T_NUM && v.u.num == 1.5);
    CU_ASSERT(is_str(fetch(&ev, "attrs", "week"), "1"));
    CU_ASSERT(is_str(fetch(&ev, "attrs", "basket_id"), "311"));
    CU_ASSERT_EQUAL(fetch(&ev, "attrs", "missing").type, TL_T_NULL);
    ev.item = ev.store = NULL;
    ev.has_quantity = ev.has_amount = 0;
    CU_ASSERT_EQUAL(fetch(&ev, "item", NULL).type, TL_T_NULL);
    CU_ASSERT_EQUAL(fetch(&ev, "store", NULL).type, TL_T_NULL);
    CU_ASSERT_EQUAL(fetch(&ev, "quantity", NULL).type, TL_T_NULL);
    CU_ASSERT_EQUAL(fetch(&ev, "amount", NULL).type, TL_T_NULL);
    /* Unknown ids never fail. */
    v.type = TL_T_BOOL;
    tl_event_fetch(&ev, TL_EVENT_VAR_LIMIT - 1, NULL, 0, &v);
    CU_ASSERT_EQUAL(v.type, TL_T_NULL);
}

/* ------------------------------------------------------------------------
 * Arena reuse, encoder, files
 */

static void test_arena_reuse(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    bytes b;
    tl_arena_init(&a, 4096);
    tl_event_decoder *d = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                               sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    handmade_event(&b, "906");
    CU_ASSERT_EQUAL_FATAL(
        tl_event_decode(d, b.b, b.n, &a, &ev, err, sizeof err),
        TL_REJECT_NONE);
    tl_arena_chunk *chunks = a.chunks;
    for (int i = 0; i < 1000; i++) {
        tl_arena_reset(&a);
        CU_ASSERT_EQUAL(tl_event_decode(d, b.b, b.n, &a, &ev, err, sizeof err),
                        TL_REJECT_NONE);
    }
    /* The same single chunk served every message. */
    CU_ASSERT_PTR_EQUAL(a.chunks, chunks);
    CU_ASSERT_PTR_EQUAL(a.head, chunks);
    CU_ASSERT_STRING_EQUAL(ev.customer_id, "906");
    CU_ASSERT_STRING_EQUAL(attr(&ev, "week"), "1");
    /* Strings live in the arena, not in the decoder's Avro value: the next
     * message (no arena reset) leaves them intact. */
    const char *cid = ev.customer_id;
    handmade_event(&b, "1234567");
    tl_event ev2;
    CU_ASSERT_EQUAL(tl_event_decode(d, b.b, b.n, &a, &ev2, err, sizeof err),
                    TL_REJECT_NONE);
    CU_ASSERT_STRING_EQUAL(cid, "906");
    CU_ASSERT_STRING_EQUAL(ev2.customer_id, "1234567");
    tl_event_decoder_free(d);
    tl_arena_free(&a);
}

static void test_encoder_errors(void)
{
    char err[TL_ERRSZ];
    const void *buf;
    size_t len;
    tl_event ev = sample_event(NULL, 0);
    char *s =
        schema_with_fields("{\"name\":\"event_id\",\"type\":\"string\"},"
                           "{\"name\":\"session_id\",\"type\":\"string\"}");
    tl_event_encoder *enc = tl_event_encoder_new(s, err, sizeof err);
    CU_ASSERT_PTR_NULL(enc);
    CU_ASSERT_STRING_EQUAL(
        err, "event schema: field 'session_id' is not an event field");
    free(s);

    s = schema_with_fields(
        "{\"name\":\"channel\",\"type\":{\"type\":\"enum\",\"name\":"
        "\"Channel\",\"symbols\":[\"web\"]}},"
        "{\"name\":\"item\",\"type\":\"string\"},"
        "{\"name\":\"quantity\",\"type\":[\"null\",\"long\"]}");
    enc = tl_event_encoder_new(s, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    CU_ASSERT_EQUAL(tl_event_encode(enc, &ev, &buf, &len, err, sizeof err),
                    TL_ERR);
    CU_ASSERT_STRING_EQUAL(err,
                           "channel 'store' is not a symbol of the schema");
    ev.channel = TL_CH_WEB;
    CU_ASSERT_EQUAL(tl_event_encode(enc, &ev, &buf, &len, err, sizeof err),
                    TL_OK);
    ev.quantity = 1.5;
    CU_ASSERT_EQUAL(tl_event_encode(enc, &ev, &buf, &len, err, sizeof err),
                    TL_ERR);
    CU_ASSERT_STRING_EQUAL(err, "field 'quantity': 1.5 does not fit the "
                                "schema's long");
    ev.quantity = 2;
    ev.item = NULL;
    CU_ASSERT_EQUAL(tl_event_encode(enc, &ev, &buf, &len, err, sizeof err),
                    TL_ERR);
    CU_ASSERT_STRING_EQUAL(
        err, "field 'item' is absent but the schema does not allow null");
    tl_event_encoder_free(enc);
    free(s);

    s = schema_with_fields("{\"name\":\"attrs\",\"type\":{\"type\":\"map\","
                           "\"values\":\"long\"}}");
    CU_ASSERT_PTR_NULL(tl_event_encoder_new(s, err, sizeof err));
    CU_ASSERT_STRING_EQUAL(
        err, "event schema: field 'attrs' must be a map of strings");
    free(s);
}

static void test_encoder_growth(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    const void *buf;
    size_t len;
    size_t big = 200000;
    char *val = malloc(big + 1);
    for (size_t i = 0; i < big; i++) val[i] = (char)('a' + i % 26);
    val[big] = '\0';
    tl_attr attrs[] = {{"big", val, 3, big}, ATTR("small", "x")};
    tl_event in = sample_event(attrs, 2);
    tl_arena_init(&a, 0);
    tl_event_encoder *enc = tl_event_encoder_new(NULL, err, sizeof err);
    tl_event_decoder *d = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                               sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_encode(enc, &in, &buf, &len, err, sizeof err),
        TL_OK);
    CU_ASSERT(len > big);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_decode(d, buf, len, &a, &ev, err, sizeof err),
        TL_REJECT_NONE);
    CU_ASSERT(events_equal(&in, &ev));
    /* A smaller event after a large one: the map holds only its keys. */
    in.attrs = attrs + 1;
    in.nattrs = 1;
    CU_ASSERT_EQUAL_FATAL(
        tl_event_encode(enc, &in, &buf, &len, err, sizeof err),
        TL_OK);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_decode(d, buf, len, &a, &ev, err, sizeof err),
        TL_REJECT_NONE);
    CU_ASSERT(events_equal(&in, &ev));
    tl_event_decoder_free(d);
    tl_event_encoder_free(enc);
    tl_arena_free(&a);
    free(val);
}

static void test_read_file(void)
{
    char err[TL_ERRSZ];
    size_t len = 0;
    char *dir = tl_test_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/s.avsc", dir);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    /* Larger than the first buffer, with a NUL inside. */
    for (int i = 0; i < 10000; i++) fputc(i == 5 ? 0 : 'a' + i % 26, f);
    fclose(f);
    char *s = tl_read_file(path, &len, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(len, 10000);
    CU_ASSERT_EQUAL(s[10000], '\0');
    CU_ASSERT_EQUAL(s[5], '\0');
    CU_ASSERT_EQUAL(s[9999], 'a' + 9999 % 26);
    free(s);

    snprintf(path, sizeof path, "%s/missing.avsc", dir);
    CU_ASSERT_PTR_NULL(tl_read_file(path, &len, err, sizeof err));
    char want[4200];
    snprintf(want, sizeof want, "cannot open %s: No such file or directory",
             path);
    CU_ASSERT_STRING_EQUAL(err, want);
    CU_ASSERT_PTR_NULL(tl_read_file(dir, NULL, err, sizeof err));
    snprintf(want, sizeof want, "cannot read %s: Is a directory", dir);
    CU_ASSERT_STRING_EQUAL(err, want);

    /* The schema file on disk matches the built-in one. */
    s = tl_read_file(tl_test_src("schemas/interaction_event.avsc"), &len, err,
                     sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s, tl_schema_interaction_event);
    free(s);
    tl_test_rmdir(dir);
    free(dir);
}

/* ------------------------------------------------------------------------
 * Limits of an input event: text, sizes, counts, time
 */

/* A growable Avro buffer for messages beyond `bytes`. */
typedef struct big {
    unsigned char *b;
    size_t n, cap;
} big;

static void big_reserve(big *o, size_t more)
{
    if (o->n + more <= o->cap) return;
    while (o->n + more > o->cap) o->cap = o->cap ? o->cap * 2 : 4096;
    o->b = realloc(o->b, o->cap);
}

static void big_long(big *o, int64_t v)
{
    big_reserve(o, 10);
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z > 0x7f) {
        o->b[o->n++] = (unsigned char)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    o->b[o->n++] = (unsigned char)z;
}

static void big_strn(big *o, const char *s, size_t len)
{
    big_long(o, (int64_t)len);
    big_reserve(o, len);
    memcpy(o->b + o->n, s, len);
    o->n += len;
}

static void big_str(big *o, const char *s) { big_strn(o, s, strlen(s)); }

/* An event per schemas/interaction_event.avsc with the given fields (item
 * and customer as raw bytes of a given length), attrs written by the
 * caller (when `attrs_by_caller`) or as one empty map. */
typedef struct spec {
    const char *event_id, *customer, *type, *item, *store;
    size_t customer_len, item_len;
    int64_t ts;
} spec;

static void spec_event(big *o, const spec *sp, int attrs_by_caller)
{
    o->n = 0;
    big_str(o, sp->event_id ? sp->event_id : "e-1");
    if (sp->customer_len)
        big_strn(o, sp->customer, sp->customer_len);
    else
        big_str(o, sp->customer ? sp->customer : "906");
    big_long(o, sp->ts);
    big_long(o, 2); /* store */
    big_str(o, sp->type ? sp->type : "purchase");
    big_long(o, 1); /* item: string */
    if (sp->item_len)
        big_strn(o, sp->item, sp->item_len);
    else
        big_str(o, sp->item ? sp->item : "1075313");
    big_long(o, 0); /* quantity: null */
    big_long(o, 0); /* amount: null */
    if (sp->store) {
        big_long(o, 1);
        big_str(o, sp->store);
    } else {
        big_long(o, 0);
    }
    if (!attrs_by_caller) big_long(o, 0);
}

static tl_reject decode_big(tl_event_decoder *d, const big *o, tl_arena *a,
                            tl_event *ev, char *err, size_t errsz)
{
    tl_arena_reset(a);
    return tl_event_decode(d, o->b, o->n, a, ev, err, errsz);
}

static void test_avro_utf8(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    big o = {0};
    tl_arena_init(&a, 0);
    tl_event_decoder *d = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                               sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    static const struct {
        const char *s;
        size_t len;
    } bad[] = {
        {"\xff", 1},                 /* never in UTF-8 */
        {"ab\x80", 3},               /* lone continuation byte */
        {"\xc0\x80", 2},             /* overlong NUL */
        {"\xc1\xbf", 2},             /* overlong */
        {"\xe0\x80\xaf", 3},         /* overlong '/' */
        {"\xed\xa0\x80", 3},         /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 4},     /* U+110000 */
        {"\xf8\x88\x80\x80\x80", 5}, /* 5-byte form */
        {"caf\xc3", 4},              /* cut inside a character */
        {"\xe2\x82", 2},             /* cut inside a character */
        {"\xe2\x28\xa1", 3},         /* bad continuation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        spec sp = {.item = bad[i].s, .item_len = bad[i].len,
                   .ts = 1483273827000};
        spec_event(&o, &sp, 0);
        CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                        TL_REJECT_DECODE);
        CU_ASSERT_STRING_EQUAL(err, "field 'item' is not valid UTF-8");
    }
    /* Valid text of every length, up to U+10FFFF. */
    static const char *const good[] = {"caf\xc3\xa9", "\xe2\x82\xac",
                                       "\xf0\x9d\x84\x9e",
                                       "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf",
                                       "\xee\x80\x80", "\x7f"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        spec sp = {.item = good[i], .ts = 1483273827000};
        spec_event(&o, &sp, 0);
        CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                        TL_REJECT_NONE);
        CU_ASSERT_STRING_EQUAL(ev.item, good[i]);
    }
    /* A NUL inside a string would silently cut it short in C. */
    spec sp = {.item = "a\0b", .item_len = 3, .ts = 1483273827000};
    spec_event(&o, &sp, 0);
    CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "field 'item' contains a NUL byte");
    /* Every string field is named. */
    sp = (spec){.customer = "9\xff", .customer_len = 2, .ts = 1483273827000};
    spec_event(&o, &sp, 0);
    CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "field 'customer_id' is not valid UTF-8");
    sp = (spec){.event_id = "\xfe", .ts = 1483273827000};
    spec_event(&o, &sp, 0);
    CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "field 'event_id' is not valid UTF-8");
    sp = (spec){.type = "vis\xc3t", .ts = 1483273827000};
    spec_event(&o, &sp, 0);
    CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "field 'type' is not valid UTF-8");
    sp = (spec){.store = "\x80", .ts = 1483273827000};
    spec_event(&o, &sp, 0);
    CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "field 'store' is not valid UTF-8");
    /* attrs: a key, a value, a NUL in a key (Avro-C would cut the key). */
    const char *kv[][2] = {{"k\xff", "v"}, {"k", "v\xff"}};
    const char *want[] = {"field 'attrs' has a key that is not valid UTF-8",
                          "field 'attrs' is not valid UTF-8"};
    for (int i = 0; i < 2; i++) {
        sp = (spec){.ts = 1483273827000};
        spec_event(&o, &sp, 1);
        big_long(&o, 2);
        big_str(&o, "fine");
        big_str(&o, "ok");
        big_str(&o, kv[i][0]);
        big_str(&o, kv[i][1]);
        big_long(&o, 0);
        CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                        TL_REJECT_DECODE);
        CU_ASSERT_STRING_EQUAL(err, want[i]);
    }
    sp = (spec){.ts = 1483273827000};
    spec_event(&o, &sp, 1);
    big_long(&o, 1);
    big_strn(&o, "a\0b", 3);
    big_str(&o, "v");
    big_long(&o, 0);
    CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "field 'attrs' has a key that contains a NUL "
                                "byte");
    /* tl_avro_check itself stays a bounds check only (triggers, tools). */
    sp = (spec){.item = "\xff", .ts = 1483273827000};
    spec_event(&o, &sp, 0);
    size_t used = 0;
    tl_event_decoder_free(d);
    avro_schema_t sch;
    CU_ASSERT_FATAL(avro_schema_from_json_length(
                        tl_schema_interaction_event,
                        strlen(tl_schema_interaction_event), &sch) == 0);
    CU_ASSERT_EQUAL(tl_avro_check(sch, o.b, o.n, &used, err, sizeof err),
                    TL_OK);
    CU_ASSERT_EQUAL(used, o.n);
    avro_schema_decref(sch);
    free(o.b);
    tl_arena_free(&a);
}

static void test_timestamps(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    big o = {0};
    tl_arena_init(&a, 0);
    tl_event_decoder *d = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                               sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    static const struct {
        int64_t ts;
        tl_reject r;
        const char *msg;
    } cases[] = {
        {0, TL_REJECT_NONE, ""},
        {1, TL_REJECT_NONE, ""},
        {7258118400000, TL_REJECT_NONE, ""}, /* 2200-01-01T00:00:00Z */
        {-1, TL_REJECT_BAD_TIMESTAMP, "ts -1 is before 1970-01-01T00:00:00Z"},
        {-86400000, TL_REJECT_BAD_TIMESTAMP,
         "ts -86400000 is before 1970-01-01T00:00:00Z"},
        {INT64_MIN, TL_REJECT_BAD_TIMESTAMP,
         "ts -9223372036854775808 is before 1970-01-01T00:00:00Z"},
        {7258118400001, TL_REJECT_BAD_TIMESTAMP,
         "ts 7258118400001 is after 2200-01-01T00:00:00Z"},
        {32503680000000, TL_REJECT_BAD_TIMESTAMP, /* the year 3000 */
         "ts 32503680000000 is after 2200-01-01T00:00:00Z"},
        {INT64_MAX, TL_REJECT_BAD_TIMESTAMP,
         "ts 9223372036854775807 is after 2200-01-01T00:00:00Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spec sp = {.ts = cases[i].ts};
        spec_event(&o, &sp, 0);
        err[0] = 0;
        CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                        cases[i].r);
        if (cases[i].r) CU_ASSERT_STRING_EQUAL(err, cases[i].msg);
        if (!cases[i].r) CU_ASSERT_EQUAL(ev.ts, cases[i].ts);
        /* The JSON decoder applies the same bounds. */
        char line[512];
        snprintf(line, sizeof line,
                 "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":%lld,"
                 "\"channel\":\"web\",\"type\":\"visit\"}",
                 (long long)cases[i].ts);
        tl_arena_reset(&a);
        err[0] = 0;
        CU_ASSERT_EQUAL(tl_event_from_json(line, strlen(line), &a, &ev, err,
                                           sizeof err),
                        cases[i].r);
        if (cases[i].r) CU_ASSERT_STRING_EQUAL(err, cases[i].msg);
    }
    /* A missing customer is reported before a bad time. */
    spec sp = {.customer = "", .ts = -5};
    spec_event(&o, &sp, 0);
    CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                    TL_REJECT_MISSING_CUSTOMER);
    tl_event_decoder_free(d);
    free(o.b);
    tl_arena_free(&a);
}

/* JSON events may carry ts as an ISO 8601 string; the same instant as the
 * integer, whatever the offset. */
static void test_json_iso_ts(void)
{
    static const struct {
        const char *ts;
        int64_t ms;
    } cases[] = {
        {"\"2025-03-11T14:33:22Z\"", INT64_C(1741703602000)},
        {"\"2025-03-11T15:33:22+01:00\"", INT64_C(1741703602000)},
        {"\"2025-03-11T15:33:22.250+01:00\"", INT64_C(1741703602250)},
        {"\"2025-03-11T09:33:22.5-05:00\"", INT64_C(1741703602500)},
        {"\"2024-02-29T00:00:00Z\"", INT64_C(1709164800000)},
        {"1741703602000", INT64_C(1741703602000)},
    };
    char err[TL_ERRSZ], line[256];
    tl_arena a;
    tl_event ev;
    tl_arena_init(&a, 0);
    tl_event_decoder *d =
        tl_event_decoder_new(TL_FMT_JSON, NULL, NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(line, sizeof line,
                 "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":%s,"
                 "\"channel\":\"web\",\"type\":\"visit\"}",
                 cases[i].ts);
        tl_arena_reset(&a);
        err[0] = 0;
        CU_ASSERT_EQUAL(tl_event_from_json(line, strlen(line), &a, &ev, err,
                                           sizeof err),
                        TL_REJECT_NONE);
        CU_ASSERT_EQUAL(ev.ts, cases[i].ms);
        if (ev.ts != cases[i].ms) fprintf(stderr, "\n%s: %s\n", line, err);
        tl_arena_reset(&a);
        CU_ASSERT_EQUAL(tl_event_decode(d, line, strlen(line), &a, &ev, err,
                                        sizeof err),
                        TL_REJECT_NONE);
        CU_ASSERT_EQUAL(ev.ts, cases[i].ms);
    }
    /* An ISO time outside the range is a bad timestamp like any other. */
    tl_event_decoder_set_range(d, INT64_C(946684800000),
                               INT64_C(1741780800000));
    snprintf(line, sizeof line,
             "{\"event_id\":\"e\",\"customer_id\":\"c\","
             "\"ts\":\"1999-12-31T23:59:59.999Z\",\"channel\":\"web\","
             "\"type\":\"visit\"}");
    tl_arena_reset(&a);
    CU_ASSERT_EQUAL(tl_event_decode(d, line, strlen(line), &a, &ev, err,
                                    sizeof err),
                    TL_REJECT_BAD_TIMESTAMP);
    CU_ASSERT_STRING_EQUAL(err, "ts 946684799999 is before "
                                "2000-01-01T00:00:00Z");
    tl_event_decoder_free(d);
    tl_arena_free(&a);
}

/* The decoder's range, as the pipeline sets it per batch: from 2000 to a
 * day ahead of a clock at 2025-03-11T12:00:00Z.  A ts in seconds is
 * refused, and said to look like seconds; the same for the Avro paths
 * (direct and Avro-C's) and JSON. */
static void test_time_range(void)
{
    const int64_t y2000 = INT64_C(946684800000);
    const int64_t max = INT64_C(1741694400000) + 86400000; /* 03-12 12:00 */
    static const struct {
        int64_t ts;
        tl_reject r;
        const char *msg;
    } cases[] = {
        {INT64_C(1741700002000), TL_REJECT_NONE, ""},
        {INT64_C(946684800000), TL_REJECT_NONE, ""},  /* min_time itself */
        {INT64_C(1741780800000), TL_REJECT_NONE, ""}, /* the max itself */
        {INT64_C(1262304000000), TL_REJECT_NONE, ""}, /* the datasets' */
        {INT64_C(1741700002), TL_REJECT_BAD_TIMESTAMP,
         "ts 1741700002 is before 2000-01-01T00:00:00Z: ts looks like seconds "
         "since 1970 (2025-03-11T13:33:22Z); tailor expects milliseconds"},
        {INT64_C(1000000000), TL_REJECT_BAD_TIMESTAMP,
         "ts 1000000000 is before 2000-01-01T00:00:00Z: ts looks like seconds "
         "since 1970 (2001-09-09T01:46:40Z); tailor expects milliseconds"},
        {INT64_C(1741700002000000), TL_REJECT_BAD_TIMESTAMP,
         "ts 1741700002000000 is after 2025-03-12T12:00:00Z: ts looks like "
         "microseconds since 1970 (2025-03-11T13:33:22Z); tailor expects "
         "milliseconds"},
        {INT64_C(1741700002000000000), TL_REJECT_BAD_TIMESTAMP,
         "ts 1741700002000000000 is after 2025-03-12T12:00:00Z: ts looks like "
         "nanoseconds since 1970 (2025-03-11T13:33:22Z); tailor expects "
         "milliseconds"},
        /* Seconds that would be out of range too: no hint. */
        {INT64_C(1900000000), TL_REJECT_BAD_TIMESTAMP,
         "ts 1900000000 is before 2000-01-01T00:00:00Z"},
        {INT64_C(900000000), TL_REJECT_BAD_TIMESTAMP,
         "ts 900000000 is before 2000-01-01T00:00:00Z"},
        {1, TL_REJECT_BAD_TIMESTAMP, "ts 1 is before 2000-01-01T00:00:00Z"},
        {0, TL_REJECT_BAD_TIMESTAMP, "ts 0 is before 2000-01-01T00:00:00Z"},
        {-1741700002, TL_REJECT_BAD_TIMESTAMP,
         "ts -1741700002 is before 2000-01-01T00:00:00Z"},
        {INT64_C(946684799999), TL_REJECT_BAD_TIMESTAMP,
         "ts 946684799999 is before 2000-01-01T00:00:00Z"},
        {INT64_C(1741780800001), TL_REJECT_BAD_TIMESTAMP,
         "ts 1741780800001 is after 2025-03-12T12:00:00Z"},
        {INT64_C(32503680000000), TL_REJECT_BAD_TIMESTAMP, /* the year 3000 */
         "ts 32503680000000 is after 2025-03-12T12:00:00Z"},
        {INT64_MIN, TL_REJECT_BAD_TIMESTAMP,
         "ts -9223372036854775808 is before 2000-01-01T00:00:00Z"},
        {INT64_MAX, TL_REJECT_BAD_TIMESTAMP,
         "ts 9223372036854775807 is after 2025-03-12T12:00:00Z"},
    };
    char err[TL_ERRSZ], line[512];
    tl_arena a;
    tl_event ev;
    big o = {0};
    tl_arena_init(&a, 0);
    tl_event_decoder *ds[] = {
        tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err, sizeof err),
        tl_event_decoder_new(TL_FMT_AVRO, NULL, tl_schema_interaction_event,
                             err, sizeof err),
        tl_event_decoder_new(TL_FMT_JSON, NULL, NULL, err, sizeof err),
    };
    for (size_t k = 0; k < 3; k++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(ds[k]);
        tl_event_decoder_set_range(ds[k], y2000, max);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spec sp = {.ts = cases[i].ts};
        spec_event(&o, &sp, 0);
        snprintf(line, sizeof line,
                 "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":%lld,"
                 "\"channel\":\"web\",\"type\":\"visit\"}",
                 (long long)cases[i].ts);
        for (size_t k = 0; k < 3; k++) {
            err[0] = 0;
            tl_arena_reset(&a);
            tl_reject r =
                k < 2 ? decode_big(ds[k], &o, &a, &ev, err, sizeof err)
                      : tl_event_decode(ds[k], line, strlen(line), &a, &ev,
                                        err, sizeof err);
            CU_ASSERT_EQUAL(r, cases[i].r);
            if (cases[i].r) CU_ASSERT_STRING_EQUAL(err, cases[i].msg);
            if (r != cases[i].r || (r && strcmp(err, cases[i].msg)))
                fprintf(stderr, "\ncase %zu decoder %zu: %d '%s'\n", i, k,
                        (int)r, err);
            if (!cases[i].r) CU_ASSERT_EQUAL(ev.ts, cases[i].ts);
        }
    }
    /* The range is clamped to what events may ever be; tl_event_from_json
     * keeps that widest range. */
    tl_event_decoder_set_range(ds[0], INT64_MIN, INT64_MAX);
    spec sp = {.ts = -1};
    spec_event(&o, &sp, 0);
    CU_ASSERT_EQUAL(decode_big(ds[0], &o, &a, &ev, err, sizeof err),
                    TL_REJECT_BAD_TIMESTAMP);
    CU_ASSERT_STRING_EQUAL(err, "ts -1 is before 1970-01-01T00:00:00Z");
    sp.ts = INT64_C(7258118400001);
    spec_event(&o, &sp, 0);
    CU_ASSERT_EQUAL(decode_big(ds[0], &o, &a, &ev, err, sizeof err),
                    TL_REJECT_BAD_TIMESTAMP);
    CU_ASSERT_STRING_EQUAL(err,
                           "ts 7258118400001 is after 2200-01-01T00:00:00Z");
    snprintf(line, sizeof line,
             "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1741700002,"
             "\"channel\":\"web\",\"type\":\"visit\"}");
    CU_ASSERT_EQUAL(tl_event_from_json(line, strlen(line), &a, &ev, err,
                                       sizeof err),
                    TL_REJECT_NONE);
    for (size_t k = 0; k < 3; k++) tl_event_decoder_free(ds[k]);
    free(o.b);
    tl_arena_free(&a);
}

static void test_customer_id_length(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    big o = {0};
    char id[1001];
    memset(id, '7', sizeof id - 1);
    id[sizeof id - 1] = 0;
    tl_arena_init(&a, 0);
    tl_event_decoder *d = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                               sizeof err);
    tl_event_decoder *j = tl_event_decoder_new(TL_FMT_JSON, NULL, NULL, err,
                                               sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    static const size_t lens[] = {1, 255, 256, 257, 1000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        spec sp = {.customer = id, .customer_len = lens[i], .ts = 1};
        spec_event(&o, &sp, 0);
        tl_reject want = lens[i] <= 256 ? TL_REJECT_NONE : TL_REJECT_DECODE;
        char msg[128];
        snprintf(msg, sizeof msg, "customer_id is %zu bytes, more than 256",
                 lens[i]);
        CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err), want);
        if (want) CU_ASSERT_STRING_EQUAL(err, msg);
        if (!want) CU_ASSERT_EQUAL(ev.customer_id_len, lens[i]);
        char line[1400];
        snprintf(line, sizeof line,
                 "{\"event_id\":\"e\",\"customer_id\":\"%.*s\",\"ts\":1,"
                 "\"channel\":\"web\",\"type\":\"visit\"}",
                 (int)lens[i], id);
        tl_arena_reset(&a);
        CU_ASSERT_EQUAL(
            tl_event_decode(j, line, strlen(line), &a, &ev, err, sizeof err),
            want);
        if (want) CU_ASSERT_STRING_EQUAL(err, msg);
    }
    tl_event_decoder_free(j);
    tl_event_decoder_free(d);
    free(o.b);
    tl_arena_free(&a);
}

/* NaN and the infinities: Avro can carry them (JSON cannot), and they are
 * refused by the direct decoder and by Avro-C's resolving path alike, for
 * double and float fields, naming the field. */
static void test_non_finite(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    const void *buf;
    size_t len;
    /* quantity as a float, amount as a double */
    char *fschema = schema_with_fields(
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"customer_id\",\"type\":\"string\"},"
        "{\"name\":\"ts\",\"type\":\"long\"},"
        "{\"name\":\"channel\",\"type\":" CHANNEL_ENUM "},"
        "{\"name\":\"type\",\"type\":\"string\"},"
        "{\"name\":\"quantity\",\"type\":[\"null\",\"float\"]},"
        "{\"name\":\"amount\",\"type\":\"double\"}");
    tl_event_encoder *enc[2] = {tl_event_encoder_new(NULL, err, sizeof err),
                                tl_event_encoder_new(fschema, err,
                                                     sizeof err)};
    /* Per encoder: the direct decoder of its schema, the resolving one. */
    tl_event_decoder *dec[2][2] = {
        {tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err, sizeof err),
         tl_event_decoder_new(TL_FMT_AVRO, NULL, tl_schema_interaction_event,
                              err, sizeof err)},
        {tl_event_decoder_new(TL_FMT_AVRO, fschema, NULL, err, sizeof err),
         tl_event_decoder_new(TL_FMT_AVRO, NULL, fschema, err, sizeof err)}};
    tl_arena_init(&a, 0);
    static const double bad[] = {NAN, INFINITY, -INFINITY};
    static const char *const text[] = {"nan", "inf", "-inf"};
    for (int e = 0; e < 2; e++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(enc[e]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(dec[e][0]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(dec[e][1]);
        for (int b = 0; b < 3; b++)
            for (int f = 0; f < 2; f++) {
                tl_event in = sample_event(NULL, 0);
                *(f ? &in.amount : &in.quantity) = bad[b];
                CU_ASSERT_EQUAL_FATAL(
                    tl_event_encode(enc[e], &in, &buf, &len, err, sizeof err),
                    TL_OK);
                char want[64];
                snprintf(want, sizeof want,
                         "field '%s' must be a finite number, not %s",
                         f ? "amount" : "quantity", text[b]);
                for (int r = 0; r < 2; r++) {
                    tl_arena_reset(&a);
                    CU_ASSERT_EQUAL(tl_event_decode(dec[e][r], buf, len, &a,
                                                    &ev, err, sizeof err),
                                    TL_REJECT_DECODE);
                    CU_ASSERT_STRING_EQUAL(err, want);
                }
            }
        /* The largest finite values still pass. */
        tl_event in = sample_event(NULL, 0);
        in.quantity = -FLT_MAX;
        in.amount = e ? DBL_MAX : -DBL_MAX;
        CU_ASSERT_EQUAL_FATAL(
            tl_event_encode(enc[e], &in, &buf, &len, err, sizeof err), TL_OK);
        for (int r = 0; r < 2; r++) {
            tl_arena_reset(&a);
            CU_ASSERT_EQUAL(tl_event_decode(dec[e][r], buf, len, &a, &ev, err,
                                            sizeof err),
                            TL_REJECT_NONE);
            CU_ASSERT_EQUAL(ev.quantity, -FLT_MAX);
            CU_ASSERT_EQUAL(ev.amount, in.amount);
        }
    }
    /* JSON has no such numbers; one out of range is invalid JSON. */
    tl_event_decoder *j = tl_event_decoder_new(TL_FMT_JSON, NULL, NULL, err,
                                               sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    static const char *const lines[] = {"NaN", "Infinity", "1e999", "-1e999"};
    for (size_t i = 0; i < 4; i++) {
        char line[256];
        snprintf(line, sizeof line,
                 "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,"
                 "\"channel\":\"web\",\"type\":\"visit\",\"amount\":%s}",
                 lines[i]);
        tl_arena_reset(&a);
        CU_ASSERT_EQUAL(
            tl_event_decode(j, line, strlen(line), &a, &ev, err, sizeof err),
            TL_REJECT_DECODE);
    }
    tl_event_decoder_free(j);
    for (int e = 0; e < 2; e++) {
        tl_event_decoder_free(dec[e][0]);
        tl_event_decoder_free(dec[e][1]);
        tl_event_encoder_free(enc[e]);
    }
    free(fschema);
    tl_arena_free(&a);
}

/* n attrs "k<i>" -> "v", in blocks of `block` entries. */
static void attrs_blocks(big *o, size_t n, size_t block)
{
    spec sp = {.ts = 1483273827000};
    spec_event(o, &sp, 1);
    for (size_t i = 0; i < n; i += block) {
        size_t c = n - i < block ? n - i : block;
        big_long(o, (int64_t)c);
        for (size_t k = i; k < i + c; k++) {
            char key[24];
            snprintf(key, sizeof key, "k%zu", k);
            big_str(o, key);
            big_str(o, "v");
        }
    }
    big_long(o, 0);
}

static void test_attrs_limit(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    big o = {0};
    tl_arena_init(&a, 0);
    tl_event_decoder *d = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                               sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    /* 10,000 is fine, in one block or many. */
    attrs_blocks(&o, 10000, 10000);
    CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                    TL_REJECT_NONE);
    CU_ASSERT_EQUAL(ev.nattrs, 10000);
    CU_ASSERT(attrs_sorted(&ev));
    attrs_blocks(&o, 10000, 7);
    CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                    TL_REJECT_NONE);
    CU_ASSERT_EQUAL(ev.nattrs, 10000);
    /* One more, however the blocks split it. */
    static const size_t blocks[] = {10001, 5000, 3, 1};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        attrs_blocks(&o, 10001, blocks[i]);
        CU_ASSERT_EQUAL(decode_big(d, &o, &a, &ev, err, sizeof err),
                        TL_REJECT_DECODE);
        CU_ASSERT_STRING_EQUAL(err, "field 'attrs' has more than 10000 "
                                    "entries");
    }
    /* 100,000 attrs (about 1 MB, under the size limit) are refused on the
     * block count, before Avro-C reads a single entry: no allocation. */
    attrs_blocks(&o, 100000, 100000);
    CU_ASSERT(o.n < TL_EVENT_MAX_SIZE);
    tl_arena_reset(&a);
    tl_alloc_counter_install();
    tl_alloc_calls = 0;
    tl_alloc_counting = 1;
    int64_t t0 = tl_now_mono_ms();
    tl_reject r = tl_event_decode(d, o.b, o.n, &a, &ev, err, sizeof err);
    int64_t took = tl_now_mono_ms() - t0;
    tl_alloc_counting = 0;
    CU_ASSERT_EQUAL(r, TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "field 'attrs' has more than 10000 entries");
    if (!tl_test_under_valgrind()) {
        CU_ASSERT_EQUAL(tl_alloc_calls, 0);
        CU_ASSERT(took < 1000);
    }
    /* The JSON decoder counts too. */
    size_t cap = 32 * 10001 + 256, n = 0;
    char *line = malloc(cap);
    n += (size_t)snprintf(line + n, cap - n,
                          "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,"
                          "\"channel\":\"web\",\"type\":\"visit\",\"attrs\":{");
    for (size_t i = 0; i < 10001; i++)
        n += (size_t)snprintf(line + n, cap - n, "%s\"k%zu\":\"v\"",
                              i ? "," : "", i);
    n += (size_t)snprintf(line + n, cap - n, "}}");
    tl_arena_reset(&a);
    CU_ASSERT_EQUAL(tl_event_from_json(line, n, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "field 'attrs' has 10001 entries, more than "
                                "10000");
    free(line);
    tl_event_decoder_free(d);
    free(o.b);
    tl_arena_free(&a);
}

static void test_message_size(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    const void *buf;
    size_t len;
    tl_arena_init(&a, 0);
    tl_event_decoder *d = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err,
                                               sizeof err);
    tl_event_decoder *j = tl_event_decoder_new(TL_FMT_JSON, NULL, NULL, err,
                                               sizeof err);
    tl_event_encoder *enc = tl_event_encoder_new(NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    /* A real event of exactly TL_EVENT_MAX_SIZE bytes passes, one byte more
     * does not. */
    size_t biglen = 10 << 20;
    char *item = malloc(biglen + 1);
    memset(item, 'x', biglen);
    item[biglen] = 0;
    tl_event in = sample_event(NULL, 0);
    item[1000] = 0;
    in.item = item;
    CU_ASSERT_FATAL(tl_event_encode(enc, &in, &buf, &len, err, sizeof err) ==
                    TL_OK);
    size_t fits = 1000 + (TL_EVENT_MAX_SIZE - len) - 1; /* longer varint */
    item[1000] = 'x';
    item[fits] = 0;
    CU_ASSERT_FATAL(tl_event_encode(enc, &in, &buf, &len, err, sizeof err) ==
                    TL_OK);
    CU_ASSERT_EQUAL_FATAL(len, TL_EVENT_MAX_SIZE);
    tl_arena_reset(&a);
    CU_ASSERT_EQUAL(tl_event_decode(d, buf, len, &a, &ev, err, sizeof err),
                    TL_REJECT_NONE);
    CU_ASSERT_EQUAL(strlen(ev.item), fits);
    item[fits] = 'x';
    item[fits + 1] = 0;
    CU_ASSERT_FATAL(tl_event_encode(enc, &in, &buf, &len, err, sizeof err) ==
                    TL_OK);
    CU_ASSERT_EQUAL(len, TL_EVENT_MAX_SIZE + 1);
    tl_arena_reset(&a);
    CU_ASSERT_EQUAL(tl_event_decode(d, buf, len, &a, &ev, err, sizeof err),
                    TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "message is 1048577 bytes, more than 1048576");
    /* 10 MB: refused before a byte is read, in either format. */
    item[fits + 1] = 'x';
    CU_ASSERT_FATAL(tl_event_encode(enc, &in, &buf, &len, err, sizeof err) ==
                    TL_OK);
    CU_ASSERT(len > biglen);
    tl_arena_reset(&a);
    tl_alloc_counter_install();
    tl_alloc_calls = 0;
    tl_alloc_counting = 1;
    tl_reject r1 = tl_event_decode(d, buf, len, &a, &ev, err, sizeof err);
    tl_reject r2 = tl_event_decode(j, item, biglen, &a, &ev, err, sizeof err);
    tl_alloc_counting = 0;
    CU_ASSERT_EQUAL(r1, TL_REJECT_DECODE);
    CU_ASSERT_EQUAL(r2, TL_REJECT_DECODE);
    CU_ASSERT_STRING_EQUAL(err, "message is 10485760 bytes, more than 1048576");
    if (!tl_test_under_valgrind()) CU_ASSERT_EQUAL(tl_alloc_calls, 0);
    free(item);
    tl_event_encoder_free(enc);
    tl_event_decoder_free(j);
    tl_event_decoder_free(d);
    tl_arena_free(&a);
}

static void test_json_text(void)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_event ev;
    tl_arena_init(&a, 0);
    /* jansson refuses invalid UTF-8 and \u0000: both are decode errors. */
    static const char *const lines[] = {
        "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,\"channel\":"
        "\"web\",\"type\":\"visit\",\"item\":\"\xff\"}",
        "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,\"channel\":"
        "\"web\",\"type\":\"visit\",\"item\":\"\xed\xa0\x80\"}",
        "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,\"channel\":"
        "\"web\",\"type\":\"visit\",\"item\":\"a\\u0000b\"}",
        "{\"event_id\":\"e\",\"customer_id\":\"c\",\"ts\":1,\"channel\":"
        "\"web\",\"type\":\"visit\",\"attrs\":{\"k\xc0\xaf\":\"v\"}}",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        tl_arena_reset(&a);
        CU_ASSERT_EQUAL(tl_event_from_json(lines[i], strlen(lines[i]), &a, &ev,
                                           err, sizeof err),
                        TL_REJECT_DECODE);
        CU_ASSERT_NSTRING_EQUAL(err, "invalid JSON", 12);
    }
    tl_arena_free(&a);
}


/* ------------------------------------------------------------------------
 * Direct decoding against Avro-C: a decoder without a writer schema reads
 * the bytes itself; given the same schema as writer, it goes through
 * Avro-C's resolver.  Both must agree on every input.
 */

typedef struct two_decoders {
    tl_event_decoder *direct, *avroc;
    tl_arena a, b;
} two_decoders;

static void two_new(two_decoders *t, const char *schema)
{
    char err[TL_ERRSZ];
    t->direct = tl_event_decoder_new(TL_FMT_AVRO, schema, NULL, err, sizeof err);
    t->avroc = tl_event_decoder_new(TL_FMT_AVRO, schema,
                                    schema ? schema : tl_schema_interaction_event,
                                    err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t->direct);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t->avroc);
    tl_arena_init(&t->a, 0);
    tl_arena_init(&t->b, 0);
}

static void two_free(two_decoders *t)
{
    tl_event_decoder_free(t->direct);
    tl_event_decoder_free(t->avroc);
    tl_arena_free(&t->a);
    tl_arena_free(&t->b);
}

/* Decodes with both; 1 when they agree (same verdict, same message, same
 * event).  *accepted: whether the event was accepted. */
static int two_agree(two_decoders *t, const void *buf, size_t len,
                     int *accepted)
{
    char e1[TL_ERRSZ] = "", e2[TL_ERRSZ] = "";
    tl_event x, y;
    tl_arena_reset(&t->a);
    tl_arena_reset(&t->b);
    tl_reject r1 = tl_event_decode(t->direct, buf, len, &t->a, &x, e1, sizeof e1);
    tl_reject r2 = tl_event_decode(t->avroc, buf, len, &t->b, &y, e2, sizeof e2);
    if (accepted) *accepted = r1 == TL_REJECT_NONE;
    if (r1 != r2) {
        fprintf(stderr, "\ndirect: %s (%s), Avro-C: %s (%s)\n",
                tl_reject_name(r1), e1, tl_reject_name(r2), e2);
        return 0;
    }
    if (r1 != TL_REJECT_NONE) {
        if (strcmp(e1, e2)) fprintf(stderr, "\n'%s' vs '%s'\n", e1, e2);
        return strcmp(e1, e2) == 0;
    }
    /* NaN (a mutated double) is not equal to itself: compare bits. */
    if (x.has_quantity && y.has_quantity &&
        memcmp(&x.quantity, &y.quantity, sizeof x.quantity) == 0)
        x.quantity = y.quantity = 0;
    if (x.has_amount && y.has_amount &&
        memcmp(&x.amount, &y.amount, sizeof x.amount) == 0)
        x.amount = y.amount = 0;
    if (!events_equal(&x, &y) || !attrs_sorted(&x)) {
        fprintf(stderr, "\naccepted, but the events differ (customer '%s', "
                "%zu and %zu attrs)\n", x.customer_id, x.nattrs, y.nattrs);
        return 0;
    }
    return 1;
}

static void test_direct_slice(void)
{
    char err[TL_ERRSZ], line[65536];
    two_decoders t;
    tl_arena a;
    size_t n = 0, same = 0;
    gzFile gz = gzopen(tl_test_src("tests/data/complete_journey_slice.jsonl.gz"),
                       "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(gz);
    two_new(&t, NULL);
    tl_arena_init(&a, 0);
    tl_event_encoder *enc = tl_event_encoder_new(NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    while (gzgets(gz, line, sizeof line)) {
        tl_event ev;
        const void *buf;
        size_t len;
        int ok;
        tl_arena_reset(&a);
        if (tl_event_from_json(line, strlen(line), &a, &ev, err, sizeof err) !=
                TL_REJECT_NONE ||
            tl_event_encode(enc, &ev, &buf, &len, err, sizeof err))
            continue;
        n++;
        same += two_agree(&t, buf, len, &ok) && ok;
    }
    CU_ASSERT(n > 19000);
    CU_ASSERT_EQUAL(same, n);
    gzclose(gz);
    tl_event_encoder_free(enc);
    tl_arena_free(&a);
    two_free(&t);
}

/* Every seed of fuzz/corpus/avro, every prefix of it, and every byte of it
 * replaced by 0x00, 0x01, 0x7f, 0x80 and 0xff. */
static void test_direct_corpus(void)
{
    static const char *const seeds[] = {
        "no-customer.avro", "nulls.avro",   "odd.avro",          "slice-1.avro",
        "slice-2.avro",     "slice-3.avro", "writer-schema.avro"};
    static const unsigned char subst[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    two_decoders t;
    two_new(&t, NULL);
    size_t inputs = 0, agreed = 0, accepted = 0;
    for (size_t s = 0; s < sizeof seeds / sizeof *seeds; s++) {
        char rel[256], err[TL_ERRSZ];
        size_t len;
        snprintf(rel, sizeof rel, "fuzz/corpus/avro/%s", seeds[s]);
        char *buf = tl_read_file(tl_test_src(rel), &len, err, sizeof err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        unsigned char *m = malloc(len ? len : 1);
        for (size_t cut = 0; cut <= len; cut++) {
            int ok;
            inputs++;
            agreed += two_agree(&t, buf, cut, &ok);
            accepted += ok;
        }
        for (size_t i = 0; i < len; i++)
            for (size_t k = 0; k < sizeof subst; k++) {
                int ok;
                memcpy(m, buf, len);
                m[i] = subst[k];
                inputs++;
                agreed += two_agree(&t, m, len, &ok);
                accepted += ok;
            }
        free(m);
        free(buf);
    }
    CU_ASSERT_EQUAL(agreed, inputs);
    /* Both verdicts are exercised. */
    CU_ASSERT(accepted > 100);
    CU_ASSERT(inputs - accepted > 100);
    two_free(&t);
}

/* A key given twice (across blocks, one with the negative count and byte
 * size form): the last value wins, as in Avro-C's map. */
static void test_direct_duplicate_keys(void)
{
    bytes b;
    two_decoders t;
    tl_event ev;
    char err[TL_ERRSZ];
    two_new(&t, NULL);
    b.n = 0;
    put_str(&b, "e-1");
    put_str(&b, "906");
    put_long(&b, 1483273827000);
    put_long(&b, 2);
    put_str(&b, "purchase");
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 2);
    put_str(&b, "k");
    put_str(&b, "first");
    put_str(&b, "a");
    put_str(&b, "x");
    put_long(&b, -2); /* two entries, then their size in bytes */
    put_long(&b, 12);
    put_str(&b, "k");
    put_str(&b, "second");
    put_str(&b, "b");
    put_str(&b, "y");
    put_long(&b, 0);
    int ok;
    CU_ASSERT(two_agree(&t, b.b, b.n, &ok));
    CU_ASSERT(ok);
    tl_arena_reset(&t.a);
    CU_ASSERT_EQUAL_FATAL(
        tl_event_decode(t.direct, b.b, b.n, &t.a, &ev, err, sizeof err),
        TL_REJECT_NONE);
    CU_ASSERT_EQUAL(ev.nattrs, 3);
    CU_ASSERT_STRING_EQUAL(attr(&ev, "k"), "second");
    two_free(&t);
}

/* A reader schema of other shapes: fields in another order, ts an int,
 * quantity a plain float, amount a union with null second, item a plain
 * string, fields tailor does not read (of every complex type) in between,
 * and no store or attrs. */
static void test_direct_other_shapes(void)
{
    char *schema = schema_with_fields(
        "{\"name\":\"customer_id\",\"type\":\"string\"},"
        "{\"name\":\"extra_rec\",\"type\":{\"type\":\"record\",\"name\":\"X\","
        "\"fields\":[{\"name\":\"a\",\"type\":\"boolean\"},"
        "{\"name\":\"b\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":3}}]}},"
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"ts\",\"type\":\"int\"},"
        "{\"name\":\"extra_arr\",\"type\":{\"type\":\"array\",\"items\":[\"null\",\"bytes\",\"float\"]}},"
        "{\"name\":\"channel\",\"type\":" CHANNEL_ENUM "},"
        "{\"name\":\"type\",\"type\":\"string\"},"
        "{\"name\":\"item\",\"type\":\"string\"},"
        "{\"name\":\"quantity\",\"type\":\"float\"},"
        "{\"name\":\"amount\",\"type\":[\"double\",\"null\"]},"
        "{\"name\":\"extra_map\",\"type\":{\"type\":\"map\",\"values\":\"long\"}}");
    two_decoders t;
    two_new(&t, schema);
    bytes b;
    for (int variant = 0; variant < 2; variant++) {
        b.n = 0;
        put_str(&b, "17850");
        b.b[b.n++] = 1; /* boolean */
        memcpy(b.b + b.n, "abc", 3);
        b.n += 3;
        put_str(&b, "or-1");
        put_long(&b, 1291191);
        put_long(&b, 3); /* array: null, bytes, float */
        put_long(&b, 0);
        put_long(&b, 1);
        put_str(&b, "\x01\x02");
        put_long(&b, 2);
        memcpy(b.b + b.n, "\x00\x00\xc0\x3f", 4);
        b.n += 4;
        put_long(&b, 0);
        put_long(&b, 0); /* web */
        put_str(&b, "purchase");
        put_str(&b, "85123A");
        memcpy(b.b + b.n, "\x00\x00\xc0\x40", 4); /* 6.0f */
        b.n += 4;
        if (variant == 0) {
            put_long(&b, 0);
            put_double(&b, 15.3);
        } else {
            put_long(&b, 1); /* null */
        }
        put_long(&b, 1);
        put_str(&b, "n");
        put_long(&b, -5);
        put_long(&b, 0);
        int ok;
        CU_ASSERT(two_agree(&t, b.b, b.n, &ok));
        CU_ASSERT(ok);
        tl_event ev;
        char err[TL_ERRSZ];
        tl_arena_reset(&t.a);
        CU_ASSERT_EQUAL_FATAL(
            tl_event_decode(t.direct, b.b, b.n, &t.a, &ev, err, sizeof err),
            TL_REJECT_NONE);
        CU_ASSERT_STRING_EQUAL(ev.customer_id, "17850");
        CU_ASSERT_STRING_EQUAL(ev.event_id, "or-1");
        CU_ASSERT_EQUAL(ev.ts, 1291191);
        CU_ASSERT_STRING_EQUAL(ev.item, "85123A");
        CU_ASSERT_PTR_NULL(ev.store);
        CU_ASSERT(ev.has_quantity && ev.quantity == 6.0);
        CU_ASSERT_EQUAL(ev.has_amount, variant == 0);
        CU_ASSERT_EQUAL(ev.nattrs, 0);
    }
    two_free(&t);
    free(schema);
}

/* The direct path allocates nothing once the arena has its chunk. */
static void test_direct_no_alloc(void)
{
    char err[TL_ERRSZ];
    bytes b;
    tl_arena a;
    tl_event ev;
    if (tl_test_under_valgrind()) return;
    tl_arena_init(&a, 1 << 16);
    tl_event_decoder *d =
        tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    handmade_event(&b, "906");
    CU_ASSERT_EQUAL(decode_allocs(d, b.b, b.n, &a, &ev), 0);
    CU_ASSERT_STRING_EQUAL(attr(&ev, "basket_id"), "31198705046");
    tl_event_decoder_free(d);
    tl_arena_free(&a);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("event_channel", NULL, NULL);
    CU_add_test(s, "channel and reject names", test_channel_names);
    s = CU_add_suite("event_avro", NULL, NULL);
    CU_add_test(s, "hand-written Avro bytes", test_avro_handmade);
    CU_add_test(s, "encode/decode all fields", test_avro_roundtrip);
    CU_add_test(s, "nulls and empty attrs", test_avro_nulls);
    CU_add_test(s, "truncated at every length", test_avro_truncated);
    CU_add_test(s, "trailing bytes", test_avro_trailing);
    CU_add_test(s, "corrupt lengths and indexes", test_avro_corrupt);
    CU_add_test(s, "empty customer", test_avro_missing_customer);
    CU_add_test(s, "writer with extra field", test_avro_writer_extra_field);
    CU_add_test(s, "writer lacking fields", test_avro_writer_lacks_fields);
    CU_add_test(s, "bad and incompatible schemas", test_avro_bad_schemas);
    s = CU_add_suite("event_avro_direct", NULL, NULL);
    CU_add_test(s, "slice: direct = Avro-C", test_direct_slice);
    CU_add_test(s, "corpus, prefixes, mutations: direct = Avro-C",
                test_direct_corpus);
    CU_add_test(s, "duplicate map keys", test_direct_duplicate_keys);
    CU_add_test(s, "other reader shapes", test_direct_other_shapes);
    CU_add_test(s, "no allocation", test_direct_no_alloc);
    s = CU_add_suite("event_json", NULL, NULL);
    CU_add_test(s, "dataset line", test_json_line);
    CU_add_test(s, "attrs formatting, unknown top-level fields",
                test_json_attr_formatting);
    CU_add_test(s, "errors and missing customer", test_json_errors);
    CU_add_test(s, "JSON decoder", test_json_decoder);
    CU_add_test(s, "slice JSON->Avro->event", test_json_slice_roundtrip);
    CU_add_test(s, "no allocation", test_json_no_alloc);
    CU_add_test(s, "direct reader = jansson's", test_json_direct_vs_jansson);
    s = CU_add_suite("event_names", NULL, NULL);
    CU_add_test(s, "resolve", test_resolve);
    CU_add_test(s, "fetch", test_fetch);
    s = CU_add_suite("event_misc", NULL, NULL);
    CU_add_test(s, "arena reuse", test_arena_reuse);
    CU_add_test(s, "encoder errors", test_encoder_errors);
    CU_add_test(s, "encoder buffer growth", test_encoder_growth);
    CU_add_test(s, "tl_read_file", test_read_file);
    s = CU_add_suite("event_limits", NULL, NULL);
    CU_add_test(s, "Avro text is valid UTF-8", test_avro_utf8);
    CU_add_test(s, "timestamps from 1970 to 2200", test_timestamps);
    CU_add_test(s, "the decoder's range; seconds said to be seconds",
                test_time_range);
    CU_add_test(s, "JSON ts as an ISO 8601 string", test_json_iso_ts);
    CU_add_test(s, "customer_id up to 256 bytes", test_customer_id_length);
    CU_add_test(s, "NaN and infinities refused", test_non_finite);
    CU_add_test(s, "up to 10,000 attrs, 100,000 refused at once",
                test_attrs_limit);
    CU_add_test(s, "messages up to 1 MiB, 10 MB refused at once",
                test_message_size);
    CU_add_test(s, "JSON text is valid UTF-8", test_json_text);
    return tl_test_run();
}
