/*
 * gen_corpus — writes the seed corpora of fuzz_avro, fuzz_json and
 * fuzz_expr under fuzz/corpus/ (`make fuzz-corpus`; run from the source
 * root).  fuzz_config's seeds are copies of config files (see the Makefile).
 *
 *   avro  real events from tests/data/complete_journey_slice.jsonl.gz (a
 *         purchase, a coupon redemption, a zero-amount line) encoded with
 *         tl_event_encoder, a few hand-made ones (every optional field null,
 *         other channels, an empty customer) and one event in the writer
 *         schema of fuzz_avro.c (hand-written bytes: the encoder only
 *         writes event fields);
 *   json  the same dataset lines verbatim and a few edge cases;
 *   expr  expressions from tests/unit/test_expr.c, over fuzz_expr's names.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common.h"
#include "event.h"

#define SLICE "tests/data/complete_journey_slice.jsonl.gz"

static void write_file(const char *dir, const char *name, const void *data,
                       size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "fuzz/corpus/%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "gen_corpus: cannot write %s: %s\n", path,
                strerror(errno));
        exit(1);
    }
}

/* Lines of the slice picked by event_id. */
static const char *const picks[] = {
    "cj-31198705046-6139",   /* the first purchase, 13 attrs */
    "cjc-165-53377610033-3", /* a coupon redemption: nulls, attrs true */
    "cj-31316691574-47832",  /* quantity 0, amount 0 */
};
#define NPICKS (sizeof picks / sizeof picks[0])

static char lines[NPICKS][1024];

static void read_slice(void)
{
    gzFile gz = gzopen(SLICE, "rb");
    char buf[4096];
    size_t found = 0;
    if (!gz) {
        fprintf(stderr, "gen_corpus: cannot open %s\n", SLICE);
        exit(1);
    }
    while (found < NPICKS && gzgets(gz, buf, sizeof buf)) {
        for (size_t i = 0; i < NPICKS; i++) {
            char id[64];
            snprintf(id, sizeof id, "\"event_id\":\"%s\"", picks[i]);
            if (!lines[i][0] && strstr(buf, id)) {
                size_t n = strcspn(buf, "\n");
                if (n >= sizeof lines[i]) {
                    fprintf(stderr, "gen_corpus: %s: line too long\n",
                            picks[i]);
                    exit(1);
                }
                memcpy(lines[i], buf, n);
                lines[i][n] = '\0';
                found++;
            }
        }
    }
    gzclose(gz);
    if (found != NPICKS) {
        fprintf(stderr, "gen_corpus: %zu of %zu lines found\n", found,
                (size_t)NPICKS);
        exit(1);
    }
}

static const char *const json_extra[] = {
    /* minimal: only the required fields */
    "{\"event_id\":\"\",\"customer_id\":\"c\",\"ts\":0,\"channel\":\"web\","
    "\"type\":\"visit\"}",
    /* attrs of every JSON type (null ones are dropped) */
    "{\"event_id\":\"e-2\",\"customer_id\":\"c-9\",\"ts\":1,"
    "\"channel\":\"call_center\",\"type\":\"call\",\"item\":null,"
    "\"quantity\":1e300,\"amount\":-0.5,\"store\":\"\",\"attrs\":{\"s\":\"x\","
    "\"n\":6,\"r\":0.1,\"t\":true,\"f\":false,\"z\":null,\"a\":[1,\"b\",null],"
    "\"o\":{\"k\":{}}}}",
    /* no customer: missing_customer */
    "{\"event_id\":\"e-3\",\"ts\":1700000000000,\"channel\":\"app\","
    "\"type\":\"view\",\"attrs\":{}}",
    /* unicode escapes and a ts out of range (bad_timestamp) */
    "{\"event_id\":\"\\u00e9\\ud83d\\ude00\",\"customer_id\":\"D\\u00e9j\\u00e0\","
    "\"ts\":9223372036854775807,\"channel\":\"chat\",\"type\":\"message\","
    "\"attrs\":{\"lang\":\"de\",\"\":\"empty key\"}}",
};

static void gen_json(void)
{
    char name[64];
    for (size_t i = 0; i < NPICKS; i++) {
        snprintf(name, sizeof name, "slice-%zu.json", i + 1);
        write_file("json", name, lines[i], strlen(lines[i]));
    }
    for (size_t i = 0; i < sizeof json_extra / sizeof json_extra[0]; i++) {
        snprintf(name, sizeof name, "edge-%zu.json", i + 1);
        write_file("json", name, json_extra[i], strlen(json_extra[i]));
    }
}

static void encode_to(tl_event_encoder *enc, const tl_event *ev,
                      const char *name)
{
    char err[TL_ERRSZ];
    const void *out;
    size_t len;
    if (tl_event_encode(enc, ev, &out, &len, err, sizeof err)) {
        fprintf(stderr, "gen_corpus: %s: %s\n", name, err);
        exit(1);
    }
    write_file("avro", name, out, len);
}

/* Avro binary by hand, for the writer schema of fuzz_avro.c. */
typedef struct bytes {
    unsigned char b[512];
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

static void gen_avro(void)
{
    char err[TL_ERRSZ], name[64];
    tl_arena arena;
    tl_event ev;
    tl_event_encoder *enc = tl_event_encoder_new(NULL, err, sizeof err);
    if (!enc) {
        fprintf(stderr, "gen_corpus: encoder: %s\n", err);
        exit(1);
    }
    tl_arena_init(&arena, 0);
    for (size_t i = 0; i < NPICKS; i++) {
        if (tl_event_from_json(lines[i], strlen(lines[i]), &arena, &ev, err,
                               sizeof err)) {
            fprintf(stderr, "gen_corpus: line %zu: %s\n", i + 1, err);
            exit(1);
        }
        snprintf(name, sizeof name, "slice-%zu.avro", i + 1);
        encode_to(enc, &ev, name);
    }

    /* Every optional field null, no attrs, the web channel. */
    memset(&ev, 0, sizeof ev);
    ev.event_id = "";
    ev.customer_id = "c";
    ev.customer_id_len = 1;
    ev.ts = 0;
    ev.channel = TL_CH_WEB;
    ev.type = "visit";
    encode_to(enc, &ev, "nulls.avro");

    /* Other channel, the largest ts, odd numbers, non-ASCII strings. */
    tl_attr attrs[] = {{"", "empty key", 0, 9},
                       {"lang", "de", 4, 2},
                       {"z\xc3\xa9", "D\xc3\xa9j\xc3\xa0 vu", 3, 9}};
    ev.event_id = "e-\xf0\x9f\x98\x80";
    ev.customer_id = "D\xc3\xa9j\xc3\xa0";
    ev.customer_id_len = strlen(ev.customer_id);
    ev.ts = 7258118400000; /* the last ms accepted: 2200-01-01 */
    ev.channel = TL_CH_CALL_CENTER;
    ev.type = "call";
    ev.item = "";
    ev.store = "s-1";
    ev.has_quantity = 1;
    ev.quantity = 1e300;
    ev.has_amount = 1;
    ev.amount = -0.5;
    ev.attrs = attrs;
    ev.nattrs = 3;
    encode_to(enc, &ev, "odd.avro");

    /* An empty customer: missing_customer. */
    ev.customer_id = "";
    ev.customer_id_len = 0;
    ev.channel = TL_CH_OTHER;
    encode_to(enc, &ev, "no-customer.avro");

    tl_event_encoder_free(enc);
    tl_arena_free(&arena);

    /* fuzz_avro.c's writer schema: customer_id, event_id, session_id, ts,
     * channel (kiosk, chat, web, ...), type, item, quantity, amount, store,
     * attrs (written as a block with a byte size), score. */
    bytes b = {.n = 0};
    put_str(&b, "c-42");
    put_str(&b, "ev-9");
    put_str(&b, "session-77");
    put_long(&b, 1700000000123);
    put_long(&b, 1); /* chat */
    put_str(&b, "message");
    put_long(&b, 0);
    put_long(&b, 0);
    put_long(&b, 1);
    put_double(&b, -0.5);
    put_long(&b, 1);
    put_str(&b, "s-1");
    put_long(&b, -2);
    put_long(&b, 24);
    put_str(&b, "lang");
    put_str(&b, "de");
    put_str(&b, "app_version");
    put_str(&b, "7.1");
    put_long(&b, 0);
    put_long(&b, 1);
    put_double(&b, 0.75);
    write_file("avro", "writer-schema.avro", b.b, b.n);
}

/* From tests/unit/test_expr.c (valid there), over the names fuzz_expr.c
 * resolves: visits amount ts last_seen channel item vip usual_order amounts
 * attrs["k"]. */
static const char *const exprs[] = {
    "1",
    "'abc'",
    "null",
    "visits > 2",
    "channel == \"email\"",
    "amount == null",
    "null != item",
    "visits < null",
    "-visits * 2",
    "not vip",
    "vip and null",
    "attrs[\"color\"]",
    "attrs['size'] != 'M'",
    "attrs[\"\"]",
    "(visits > 1) != (amount > 1)",
    "1 + 2 * 3 - 4 / 5",
    "  visits\t>=\n1  ",
    "1.5e3 + .5 + 1. + 1E-3 + 2e+2",
    "not(vip)and(visits > 1)",
    "usual_order[0]",
    "amounts[visits - 2] * 2",
    "usual_order[amounts[1]]",
    "usual_order != ['big_mac', \"fries\"]",
    "[-1, 2 * 3, (4), 1 / 4]",
    "[lower('A'), 'b', coalesce(null, 'c')]",
    "[10, 20][1]",
    "visits in [1, 2, 3]",
    "item not in []",
    "'fries' in usual_order and not visits in amounts",
    "len(usual_order) + len(item)",
    "contains(usual_order, 'water') or contains(item, 'off')",
    "coalesce(attrs[\"nick\"], lower(channel), 'x')",
    "days_since(last_seen) > 30",
    "hour(ts, 'Europe/Madrid') >= 9 and weekday(ts, 'UTC') < 6",
    "hour(last_seen, 'America/New_York')",
    "amount / 0 == null",
    "'a\\'b\\\"c\\\\d\\n\\t' < \"b\"",
    "((((((visits))))))",
    "lower(item) == \"coffee\"",
    "-null",
};

static void gen_expr(void)
{
    char name[64];
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        snprintf(name, sizeof name, "expr-%02zu", i + 1);
        write_file("expr", name, exprs[i], strlen(exprs[i]));
    }
}

int main(void)
{
    read_slice();
    gen_json();
    gen_avro();
    gen_expr();
    return 0;
}
