/*
 * Poison input through the real daemon: a stream of real events (the first
 * 4,000 lines of the data slice, Avro) with 20% poison interleaved — random
 * bytes, truncated Avro, Avro of another schema (a trigger), an empty
 * message, invalid UTF-8, timestamps in the year 3000, before 1970 and in
 * seconds (the event's own time, whose dead letter must say so), a
 * missing customer, a customer id of 300 bytes, a map of 100,000 attrs, late
 * events — some of them under an empty or a 1 MB key.  Then the largest
 * message the mock cluster carries (5 MiB less 16 KiB; see below) between
 * two good events.
 *
 * Asserted: every poison message is on the dead-letter topic exactly once,
 * with its original key and bytes and the expected `tailor.reason`; nothing
 * else is; tailord's counts by reason match; and no good event is lost: every
 * customer's `count` and `sum` equal a recomputation from the good events
 * alone (good events under an empty or a 1 MB key included: the customer
 * comes from the payload, keys are not read).
 *
 * Kafka's default message size is 1 MB, so the test's producer, tailord
 * (kafka.properties) and the test's consumers raise message.max.bytes and the
 * fetch limits to carry the 10 MB message and the 1 MB keys.
 *
 * The mock cluster cannot carry a 10 MB message: it keeps at most 5 MiB of
 * message sets per partition (rdkafka_mock.c: max_size, no API to change it
 * in librdkafka 2.0.2) and drops the oldest sets beyond that; a set of more
 * than 5 MiB drops every set before it and, as the partition's start offset
 * is then moved to its end, itself: produced, acknowledged (offset 1289),
 * and the partition reads 1290..1290.  So the stream keeps each partition
 * under 4 MiB (checked), and the big message goes, with the events around
 * it, through a topic and a dead-letter topic of its own (second run of
 * tailord, its own group), each under 5 MiB in all.  The decoder's handling
 * of a real 10 MB message (refused before a byte is read, no allocation) is
 * in tests/unit/test_event.c.
 */
#include <CUnit/Basic.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../support/kafka_util.h"
#include "../support/redis_server.h"
#include "../support/testutil.h"
#include "common.h"
#include "event.h"
#include "kafka.h"
#include "trigger.h"

#define SLICE "tests/data/complete_journey_slice.jsonl.gz"
#define IN_TOPIC "interactions"
#define OUT_TOPIC "triggers"
#define DLQ_TOPIC "interactions.dlq"
#define GROUP "poison"
#define PARTITIONS 4
#define NGOOD 4000
#define NPOISON 1000 /* 20% of the 5,000 messages */
#define NLATE 10     /* of which late events, at the end */
#define BIG_KEY (1 << 20)
/* The largest message the mock carries with a small one before and after
 * it in one partition. */
#define BIG_MSG ((5 << 20) - (16 << 10))
#define BIG_TOPIC "interactions.big"
#define BIG_DLQ "interactions.big.dlq"
#define BIG_GROUP "poison-big"
#define DAY_MS 86400000LL
#define TEST_BOUND_MS 90000
/* What a mock partition keeps (5 MB), less room for batch headers. */
#define MOCK_PARTITION_BUDGET (4 << 20)

/* Raised Kafka limits: the 10 MB message, and 1 MB keys beside events. */
#define KAFKA_BIG_PROPS                                                        \
    "{ message.max.bytes: '33554432', fetch.message.max.bytes: '33554432', "   \
    "receive.message.max.bytes: '67108864' }"

static const char *big_config_text =
    "kafka:\n"
    "  group: " BIG_GROUP "\n"
    "  input: [" BIG_TOPIC "]\n"
    "  output: " OUT_TOPIC "\n"
    "  dead_letter: " BIG_DLQ "\n"
    "  batch_timeout: 20ms\n"
    "  properties: " KAFKA_BIG_PROPS "\n"
    "redis:\n"
    "  prefix: 'poison:'\n"
    "features:\n"
    "  - { name: n, kind: count }\n"
    "  - { name: total, kind: sum, field: amount }\n";

static const char *config_text =
    "kafka:\n"
    "  group: " GROUP "\n"
    "  input: [" IN_TOPIC "]\n"
    "  output: " OUT_TOPIC "\n"
    "  dead_letter: " DLQ_TOPIC "\n"
    "  batch_size: 500\n"
    "  batch_timeout: 20ms\n"
    "  properties: " KAFKA_BIG_PROPS "\n"
    "redis:\n"
    "  prefix: 'poison:'\n"
    "features:\n"
    "  - { name: n, kind: count }\n"
    "  - { name: total, kind: sum, field: amount }\n";

/* ---- the stream ---------------------------------------------------------- */

enum kind {
    K_GOOD,
    K_RANDOM,
    K_TRUNCATED,
    K_TRIGGER,
    K_EMPTY,
    K_UTF8_ITEM,
    K_UTF8_ATTR,
    K_UTF8_CUSTOMER,
    K_TS_3000,
    K_TS_1969,
    K_TS_SECONDS,
    K_NO_CUSTOMER,
    K_LONG_CUSTOMER,
    K_ATTRS_100K,
    K_BIG_MSG,
    K_LATE,
    K__COUNT
};

static const char *const kind_names[K__COUNT] = {
    [K_GOOD] = "good event",
    [K_RANDOM] = "random bytes",
    [K_TRUNCATED] = "truncated Avro",
    [K_TRIGGER] = "Avro of another schema (a trigger)",
    [K_EMPTY] = "empty message",
    [K_UTF8_ITEM] = "invalid UTF-8 in item",
    [K_UTF8_ATTR] = "invalid UTF-8 in an attrs value",
    [K_UTF8_CUSTOMER] = "invalid UTF-8 in customer_id",
    [K_TS_3000] = "ts in the year 3000",
    [K_TS_1969] = "ts before 1970",
    [K_TS_SECONDS] = "ts in seconds",
    [K_NO_CUSTOMER] = "missing customer",
    [K_LONG_CUSTOMER] = "customer_id of 300 bytes",
    [K_ATTRS_100K] = "map of 100,000 attrs",
    [K_BIG_MSG] = "message of 5 MiB - 16 KiB",
    [K_LATE] = "late event",
};

static const char *kind_reason(enum kind k)
{
    switch (k) {
    case K_GOOD: return NULL;
    case K_TS_3000:
    case K_TS_1969:
    case K_TS_SECONDS: return "bad_timestamp";
    case K_NO_CUSTOMER: return "missing_customer";
    case K_LATE: return "late";
    default: return "decode";
    }
}

/* The cheap kinds, cycled through; the big ones are placed by count. */
static const enum kind cycle[] = {
    K_RANDOM,    K_TRUNCATED,  K_TRIGGER,       K_EMPTY,
    K_UTF8_ITEM, K_UTF8_ATTR,  K_UTF8_CUSTOMER, K_TS_3000,
    K_TS_1969,   K_TS_SECONDS, K_NO_CUSTOMER,   K_LONG_CUSTOMER,
};
#define N_ATTRS_100K 1
#define N_BIG_KEY_POISON 2 /* poison under a 1 MB key */
#define N_BIG_KEY_GOOD 2   /* good events under a 1 MB key */

typedef struct msg {
    enum kind kind;
    char *key;
    size_t klen;
    unsigned char *val;
    size_t vlen;
    int32_t partition;
    int64_t offset; /* from the delivery report; -1 until delivered */
    int dlq_seen;
} msg;

static msg *msgs;
static size_t nmsgs;
static size_t kind_count[K__COUNT];

/* Recomputation from the good events alone. */
typedef struct cust {
    char *id;
    uint64_t n;
    double total;
    int has_total;
    int64_t newest;
} cust;
static cust *custs;
static size_t ncusts;

static cust *find_cust(const char *id)
{
    for (size_t i = 0; i < ncusts; i++)
        if (strcmp(custs[i].id, id) == 0) return &custs[i];
    custs = realloc(custs, (ncusts + 1) * sizeof *custs);
    cust *c = &custs[ncusts++];
    memset(c, 0, sizeof *c);
    c->id = strdup(id);
    return c;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL; /* fixed: the run is repeatable */
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A customer's partition: all of a customer's events in one partition, in
 * order, whatever their key says. */
static int32_t partition_of(const char *customer)
{
    return (int32_t)(tl_fnv1a(TL_FNV_OFFSET, customer, strlen(customer)) %
                     PARTITIONS);
}

static size_t part_bytes[PARTITIONS];

/* Poison may go anywhere: the least filled partition. */
static int32_t emptiest(void)
{
    int32_t best = 0;
    for (int32_t i = 1; i < PARTITIONS; i++)
        if (part_bytes[i] < part_bytes[best]) best = i;
    return best;
}

static msg *add_msg(enum kind k, const char *key, size_t klen,
                    const void *val, size_t vlen, int32_t part)
{
    part_bytes[part] += klen + vlen + 64;
    msgs = realloc(msgs, (nmsgs + 1) * sizeof *msgs);
    msg *m = &msgs[nmsgs++];
    memset(m, 0, sizeof *m);
    m->kind = k;
    m->key = malloc(klen ? klen : 1);
    if (klen) memcpy(m->key, key, klen);
    m->klen = klen;
    m->val = malloc(vlen ? vlen : 1);
    if (vlen) memcpy(m->val, val, vlen);
    m->vlen = vlen;
    m->partition = part;
    m->offset = -1;
    kind_count[k]++;
    return m;
}

static char *big_key(void)
{
    char *k = malloc(BIG_KEY);
    for (size_t i = 0; i < BIG_KEY; i++) k[i] = (char)('a' + next_rand() % 26);
    return k;
}

static tl_event_encoder *enc;
static tl_event_decoder *dec; /* only to keep random bytes undecodable */
static tl_trigger_codec *tcodec;
static tl_arena arena;

static void encode(const tl_event *ev, const void **buf, size_t *len)
{
    char err[TL_ERRSZ];
    int rc = tl_event_encode(enc, ev, buf, len, err, sizeof err);
    if (rc) fprintf(stderr, "encode: %s\n", err);
    CU_ASSERT_FATAL(rc == TL_OK);
}

/* One poison message of kind k, modelled on `base` (a real event whose
 * customer also has good events, so that a poison event wrongly applied
 * would show in the vectors). */
static void add_poison(enum kind k, const tl_event *base, int key_style)
{
    tl_event ev = *base;
    const void *buf = NULL;
    size_t len = 0;
    unsigned char rnd[256];
    char item[64], cid[301];
    tl_attr *attrs = NULL;
    switch (k) {
    case K_RANDOM: {
        /* Random bytes that do not happen to be an event. */
        char err[TL_ERRSZ];
        tl_event scratch;
        do {
            len = 1 + next_rand() % sizeof rnd;
            for (size_t i = 0; i < len; i++) rnd[i] = (unsigned char)next_rand();
            tl_arena_reset(&arena);
        } while (tl_event_decode(dec, rnd, len, &arena, &scratch, err,
                                 sizeof err) != TL_REJECT_DECODE);
        buf = rnd;
        break;
    }
    case K_TRUNCATED:
        encode(&ev, &buf, &len);
        len = len / 2;
        break;
    case K_TRIGGER: {
        tl_trigger t;
        char err[TL_ERRSZ];
        memset(&t, 0, sizeof t);
        tl_trigger_make_id(t.id, IN_TOPIC, 0, (int64_t)nmsgs, "r");
        t.rule = "welcome";
        t.customer_id = base->customer_id;
        t.ts = base->ts;
        t.cause_event_id = base->event_id;
        t.channel = TL_CH_EMAIL;
        t.message = "hello";
        CU_ASSERT_FATAL(tl_trigger_encode(tcodec, &t, &buf, &len, err,
                                          sizeof err) == TL_OK);
        break;
    }
    case K_EMPTY: len = 0; break;
    case K_UTF8_ITEM:
        snprintf(item, sizeof item, "%s\xff\xfe", base->item ? base->item : "x");
        ev.item = item;
        encode(&ev, &buf, &len);
        break;
    case K_UTF8_ATTR: {
        size_t n = base->nattrs + 1;
        attrs = malloc(n * sizeof *attrs);
        memcpy(attrs, base->attrs, base->nattrs * sizeof *attrs);
        attrs[n - 1] = (tl_attr){"zz_bad", "\xed\xa0\x80", 6, 3}; /* surrogate */
        ev.attrs = attrs;
        ev.nattrs = n;
        encode(&ev, &buf, &len);
        break;
    }
    case K_UTF8_CUSTOMER:
        snprintf(cid, sizeof cid, "%s\xc0\xaf", base->customer_id);
        ev.customer_id = cid;
        ev.customer_id_len = strlen(cid);
        encode(&ev, &buf, &len);
        break;
    case K_TS_3000:
        ev.ts = 32503680000000LL; /* 3000-01-01 */
        encode(&ev, &buf, &len);
        break;
    case K_TS_1969:
        ev.ts = -86400000LL * (1 + (int64_t)(next_rand() % 1000));
        encode(&ev, &buf, &len);
        break;
    case K_TS_SECONDS: /* a producer's unit mistake: January 1970 in ms */
        ev.ts = base->ts / 1000;
        encode(&ev, &buf, &len);
        break;
    case K_NO_CUSTOMER:
        ev.customer_id = "";
        ev.customer_id_len = 0;
        encode(&ev, &buf, &len);
        break;
    case K_LONG_CUSTOMER:
        memset(cid, 'c', 300);
        cid[300] = 0;
        ev.customer_id = cid;
        ev.customer_id_len = 300;
        encode(&ev, &buf, &len);
        break;
    case K_ATTRS_100K: {
        size_t n = 100000;
        attrs = malloc(n * sizeof *attrs);
        char *keys = malloc(n * 8);
        for (size_t i = 0; i < n; i++) {
            snprintf(keys + 8 * i, 8, "k%06zu", i);
            attrs[i] = (tl_attr){keys + 8 * i, "v", 7, 1};
        }
        ev.attrs = attrs;
        ev.nattrs = n;
        encode(&ev, &buf, &len);
        CU_ASSERT(len < TL_EVENT_MAX_SIZE); /* refused for the count */
        add_msg(k, base->customer_id, base->customer_id_len, buf, len,
                emptiest());
        free(keys);
        free(attrs);
        return;
    }
    case K_GOOD:
    case K_BIG_MSG:
    case K_LATE:
    case K__COUNT: CU_FAIL_FATAL("not a poison kind");
    }
    int32_t part = emptiest();
    if (key_style == 1) {
        add_msg(k, "", 0, buf, len, part);
    } else if (key_style == 2) {
        char *bk = big_key();
        add_msg(k, bk, BIG_KEY, buf, len, part);
        free(bk);
    } else {
        char key[32];
        snprintf(key, sizeof key, "poison-%zu", nmsgs);
        add_msg(k, key, strlen(key), buf, len, part);
    }
    free(attrs);
}

static int build_stream(void)
{
    char err[TL_ERRSZ];
    gzFile gz = gzopen(SLICE, "rb");
    if (!gz) return -1;
    static char line[1 << 16];
    tl_arena lines;
    tl_arena_init(&lines, 1 << 20);
    /* Good events: the first NGOOD lines. */
    tl_event *evs = calloc(NGOOD, sizeof *evs);
    size_t nevs = 0;
    while (nevs < NGOOD && gzgets(gz, line, sizeof line)) {
        if (tl_event_from_json(line, strlen(line), &lines, &evs[nevs], err,
                               sizeof err) != TL_REJECT_NONE) {
            fprintf(stderr, "%s: %s\n", SLICE, err);
            gzclose(gz);
            return -1;
        }
        nevs++;
    }
    gzclose(gz);
    if (nevs < NGOOD) return -1;

    size_t big_good = 0, big_poison = 0, n100k = 0, np = 0;
    size_t ci = 0;
    for (size_t g = 0; g < NGOOD; g++) {
        const tl_event *e = &evs[g];
        const void *buf;
        size_t len;
        encode(e, &buf, &len);
        int32_t part = partition_of(e->customer_id);
        if (g % 50 == 7) { /* an empty key: fine, the payload names the customer */
            add_msg(K_GOOD, "", 0, buf, len, part);
        } else if (g % 1000 == 500 && big_good < N_BIG_KEY_GOOD) {
            char *bk = big_key();
            add_msg(K_GOOD, bk, BIG_KEY, buf, len, part);
            free(bk);
            big_good++;
        } else {
            add_msg(K_GOOD, e->customer_id, e->customer_id_len, buf, len,
                    part);
        }
        cust *c = find_cust(e->customer_id);
        c->n++;
        if (e->has_amount) {
            c->total += e->amount;
            c->has_total = 1;
        }
        if (e->ts > c->newest) c->newest = e->ts;

        /* One poison message after every fourth good event. */
        if (g % 4 == 3 && np < NPOISON - NLATE) {
            /* A real customer seen already, so a wrongly applied poison
             * event would change a vector the test checks. */
            tl_event base = evs[next_rand() % (g + 1)];
            enum kind k;
            if (np % 300 == 150 && n100k < N_ATTRS_100K) {
                k = K_ATTRS_100K;
                n100k++;
            } else {
                k = cycle[ci++ % (sizeof cycle / sizeof cycle[0])];
            }
            int key_style = 0;
            if (np % 13 == 5) key_style = 1;
            if (np % 250 == 100 && big_poison < N_BIG_KEY_POISON &&
                k != K_ATTRS_100K) {
                key_style = 2;
                big_poison++;
            }
            add_poison(k, &base, key_style);
            np++;
        }
    }
    /* Late events: two days before their customer's newest, at the end of
     * the customer's partition (so after that newest event). */
    for (size_t i = 0; i < NLATE; i++, np++) {
        const cust *c = &custs[i * 7 % ncusts];
        tl_event late = {.event_id = "late", .customer_id = c->id,
                         .customer_id_len = strlen(c->id),
                         .ts = c->newest - 2 * DAY_MS, .channel = TL_CH_STORE,
                         .type = "purchase", .item = "late-item",
                         .amount = 1000, .has_amount = 1};
        const void *buf;
        size_t len;
        encode(&late, &buf, &len);
        add_msg(K_LATE, c->id, strlen(c->id), buf, len, partition_of(c->id));
    }
    tl_arena_free(&lines);
    free(evs);
    CU_ASSERT_EQUAL(np, NPOISON);
    CU_ASSERT_EQUAL(n100k, N_ATTRS_100K);
    for (int i = 0; i < PARTITIONS; i++)
        CU_ASSERT(part_bytes[i] < MOCK_PARTITION_BUDGET);
    CU_ASSERT_EQUAL(big_poison, N_BIG_KEY_POISON);
    CU_ASSERT_EQUAL(big_good, N_BIG_KEY_GOOD);
    return 0;
}

/* ---- Kafka ----------------------------------------------------------------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *ud)
{
    (void)rk;
    (void)ud;
    size_t i = (size_t)(uintptr_t)m->_private;
    if (m->err) {
        fprintf(stderr, "delivery of message %zu (%s): %s\n", i,
                kind_names[msgs[i].kind], rd_kafka_err2str(m->err));
        return;
    }
    msgs[i].offset = m->offset;
    CU_ASSERT_EQUAL(m->partition, msgs[i].partition);
}

static rd_kafka_conf_t *big_conf(const char *brokers, int consumer)
{
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *props[][2] = {
        {"bootstrap.servers", brokers},
        {"message.max.bytes", "33554432"},
        {"receive.message.max.bytes", "67108864"},
        {"fetch.message.max.bytes", "33554432"}, /* consumers only */
    };
    for (size_t i = 0; i < sizeof props / sizeof props[0] - !consumer; i++)
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], e, sizeof e)) {
            fprintf(stderr, "%s: %s\n", props[i][0], e);
            CU_FAIL_FATAL("kafka property");
        }
    return conf;
}

static int produce_stream(const char *brokers)
{
    char e[512];
    rd_kafka_conf_t *conf = big_conf(brokers, 0);
    rd_kafka_conf_set(conf, "enable.idempotence", "true", e, sizeof e);
    rd_kafka_conf_set(conf, "linger.ms", "5", e, sizeof e);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
    for (size_t i = 0; i < nmsgs; i++) {
        msg *m = &msgs[i];
        rd_kafka_resp_err_t err;
        for (;;) {
            err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(IN_TOPIC), RD_KAFKA_V_PARTITION(m->partition),
                RD_KAFKA_V_KEY(m->klen ? m->key : NULL, m->klen),
                RD_KAFKA_V_VALUE(m->vlen ? m->val : NULL, m->vlen),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_OPAQUE((void *)(uintptr_t)i), RD_KAFKA_V_END);
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
            rd_kafka_poll(rk, 50);
        }
        if (err) {
            fprintf(stderr, "produce %zu (%s, %zu bytes): %s\n", i,
                    kind_names[m->kind], m->vlen, rd_kafka_err2str(err));
            rd_kafka_destroy(rk);
            return -1;
        }
        rd_kafka_poll(rk, 0);
    }
    int rc = rd_kafka_flush(rk, 60000) ? -1 : 0;
    rd_kafka_destroy(rk);
    size_t undelivered = 0;
    for (size_t i = 0; i < nmsgs; i++) undelivered += msgs[i].offset < 0;
    if (undelivered) fprintf(stderr, "%zu messages undelivered\n", undelivered);
    return rc || undelivered ? -1 : 0;
}

/* Every message of a topic, with the raised fetch limits (the helper in
 * kafka_util uses the defaults). */
static size_t consume_topic(const char *brokers, const char *topic,
                            int partitions,
                            void (*fn)(const rd_kafka_message_t *m))
{
    char e[512];
    rd_kafka_conf_t *conf = big_conf(brokers, 1);
    rd_kafka_conf_set(conf, "group.id", "poison-reader", e, sizeof e);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", e, sizeof e);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    int remaining = 0;
    for (int p = 0; p < partitions; p++) {
        int64_t lo, hi;
        rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(l, topic, p)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
            remaining++;
        }
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    size_t n = 0;
    int64_t deadline = tl_now_mono_ms() + 30000;
    while (remaining > 0 && tl_now_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            remaining--;
        } else if (m->err) {
            fprintf(stderr, "consume %s: %s\n", topic,
                    rd_kafka_message_errstr(m));
        } else {
            fn(m);
            n++;
        }
        rd_kafka_message_destroy(m);
    }
    CU_ASSERT_EQUAL(remaining, 0);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* ---- setup ----------------------------------------------------------------- */

static tl_test_world world;
static pid_t tailord; /* running from the first test to the 10 MB one */
static char cfg_path[512], log_path[512], big_cfg_path[512], big_log_path[512];
static int64_t suite_start_ms;

static int suite_init(void)
{
    char err[TL_ERRSZ];
    suite_start_ms = tl_now_mono_ms();
    if (tl_test_world_start(&world, PARTITIONS, IN_TOPIC, OUT_TOPIC,
                            DLQ_TOPIC))
        return 1;
    snprintf(cfg_path, sizeof cfg_path, "%s/poison.yaml", world.tmp);
    snprintf(log_path, sizeof log_path, "%s/tailord.log", world.tmp);
    snprintf(big_cfg_path, sizeof big_cfg_path, "%s/big.yaml", world.tmp);
    snprintf(big_log_path, sizeof big_log_path, "%s/tailord-big.log",
             world.tmp);
    FILE *f = fopen(cfg_path, "w");
    if (!f) return 1;
    fputs(config_text, f);
    fclose(f);
    if (!(f = fopen(big_cfg_path, "w"))) return 1;
    fputs(big_config_text, f);
    fclose(f);
    if (tl_test_world_topic(&world, BIG_TOPIC, 1) ||
        tl_test_world_topic(&world, BIG_DLQ, 1))
        return 1;
    enc = tl_event_encoder_new(NULL, err, sizeof err);
    dec = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err, sizeof err);
    tcodec = tl_trigger_codec_new(NULL, err, sizeof err);
    if (!enc || !dec || !tcodec) return 1;
    tl_arena_init(&arena, 1 << 16);
    return 0;
}

static int suite_clean(void)
{
    if (tailord > 0) tl_test_stop(tailord, SIGKILL, 5000);
    if (getenv("TAILOR_POISON_KEEP")) { /* debugging: keep the log */
        char cmd[700];
        snprintf(cmd, sizeof cmd, "cp %s/*.log /tmp/", world.tmp);
        if (system(cmd)) {}
    }
    tl_test_world_stop(&world);
    for (size_t i = 0; i < nmsgs; i++) free(msgs[i].key), free(msgs[i].val);
    free(msgs);
    for (size_t i = 0; i < ncusts; i++) free(custs[i].id);
    free(custs);
    tl_event_encoder_free(enc);
    tl_event_decoder_free(dec);
    tl_trigger_codec_free(tcodec);
    tl_arena_free(&arena);
    return 0;
}

/* ---- the tests ------------------------------------------------------------- */

static int processed;
static size_t want_by_reason[4];
static size_t input_mismatch;

static void on_input(const rd_kafka_message_t *m)
{
    for (size_t i = 0; i < nmsgs; i++)
        if (msgs[i].partition == m->partition && msgs[i].offset == m->offset) {
            if (m->len != msgs[i].vlen || m->key_len != msgs[i].klen)
                input_mismatch++;
            return;
        }
    input_mismatch++;
}

static void test_stream_through_tailord(void)
{
    CU_ASSERT_EQUAL_FATAL(build_stream(), 0);
    size_t npoison = 0;
    for (size_t i = 0; i < nmsgs; i++) npoison += msgs[i].kind != K_GOOD;
    CU_ASSERT_EQUAL(npoison, NPOISON);
    CU_ASSERT_EQUAL(nmsgs, NGOOD + NPOISON);
    printf("\n    %zu messages, %zu poison (%.0f%%):", nmsgs, npoison,
           100.0 * (double)npoison / (double)nmsgs);
    for (int k = 1; k < K__COUNT; k++)
        if (kind_count[k])
            printf("%s %zu %s", k > 1 ? "," : "", kind_count[k], kind_names[k]);
    printf("\n    ");
    /* tailord runs from here to the counts test (a restart in the same
     * group would wait out the mock coordinator's session timeout). */
    tailord = tl_test_start_tailord(cfg_path, log_path);
    CU_ASSERT_FATAL(tailord > 0);
    CU_ASSERT_EQUAL_FATAL(produce_stream(world.brokers), 0);
    /* The broker holds the whole stream, big messages included. */
    CU_ASSERT_EQUAL_FATAL(consume_topic(world.brokers, IN_TOPIC, PARTITIONS,
                                        on_input),
                          nmsgs);
    CU_ASSERT_EQUAL(input_mismatch, 0);

    int left = TEST_BOUND_MS - (int)(tl_now_mono_ms() - suite_start_ms) - 30000;
    int ok = tl_test_wait_drained(world.brokers, GROUP, IN_TOPIC,
                                  left > 5000 ? left : 5000);
    CU_ASSERT(ok);
    if (!ok) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "tail -n 30 %s >&2", log_path);
        if (system(cmd)) {}
    }
    processed = ok;
}

static size_t dlq_unknown, dlq_good, dlq_bad_reason, dlq_bad_bytes,
    dlq_dupes, dlq_no_error, dlq_no_seconds_hint;
static size_t dlq_by_reason[4];
static const char *const reasons[4] = {"decode", "missing_customer", "late",
                                       "bad_timestamp"};

static void on_dead_letter(const rd_kafka_message_t *m)
{
    size_t tl = 0, pl = 0, ol = 0, rl = 0, el = 0;
    const char *topic = tl_test_header(m, "tailor.topic", &tl);
    const char *part = tl_test_header(m, "tailor.partition", &pl);
    const char *off = tl_test_header(m, "tailor.offset", &ol);
    const char *reason = tl_test_header(m, "tailor.reason", &rl);
    const char *error = tl_test_header(m, "tailor.error", &el);
    char buf[32];
    int32_t p = -1;
    int64_t o = -1;
    if (part && pl < sizeof buf) {
        snprintf(buf, sizeof buf, "%.*s", (int)pl, part);
        p = (int32_t)atoi(buf);
    }
    if (off && ol < sizeof buf) {
        snprintf(buf, sizeof buf, "%.*s", (int)ol, off);
        o = strtoll(buf, NULL, 10);
    }
    msg *hit = NULL;
    if (topic && tl == strlen(IN_TOPIC) && !memcmp(topic, IN_TOPIC, tl))
        for (size_t i = 0; i < nmsgs && !hit; i++)
            if (msgs[i].partition == p && msgs[i].offset == o) hit = &msgs[i];
    if (!hit) {
        dlq_unknown++;
        return;
    }
    if (hit->kind == K_GOOD) {
        dlq_good++;
        fprintf(stderr, "good event at %d/%lld dead-lettered: %.*s\n", p,
                (long long)o, (int)el, error ? error : "");
        return;
    }
    if (hit->dlq_seen++) dlq_dupes++;
    const char *want = kind_reason(hit->kind);
    if (!reason || rl != strlen(want) || memcmp(reason, want, rl)) {
        if (dlq_bad_reason++ < 5)
            fprintf(stderr, "%s: reason %.*s (%.*s), want %s\n",
                    kind_names[hit->kind], (int)rl, reason ? reason : "",
                    (int)el, error ? error : "", want);
    }
    for (int r = 0; r < 4; r++)
        if (reason && rl == strlen(reasons[r]) && !memcmp(reason, reasons[r], rl))
            dlq_by_reason[r]++;
    if (!error || el == 0) dlq_no_error++;
    static const char hint[] = "ts looks like seconds since 1970 (";
    if (hit->kind == K_TS_SECONDS &&
        (!error || !memmem(error, el, hint, sizeof hint - 1) ||
         !memmem(error, el, "tailor expects milliseconds", 27)) &&
        dlq_no_seconds_hint++ < 5)
        fprintf(stderr, "ts in seconds: error '%.*s'\n", (int)el,
                error ? error : "");
    int same = m->len == hit->vlen && m->key_len == hit->klen &&
               (!m->len || memcmp(m->payload, hit->val, m->len) == 0) &&
               (!m->key_len || memcmp(m->key, hit->key, m->key_len) == 0);
    if (!same && dlq_bad_bytes++ < 5)
        fprintf(stderr, "%s: dead letter of %zu bytes (key %zu), sent %zu "
                        "(key %zu)\n",
                kind_names[hit->kind], m->len, m->key_len, hit->vlen,
                hit->klen);
}

static void test_poison_dead_lettered(void)
{
    CU_ASSERT_FATAL(processed);
    size_t n = consume_topic(world.brokers, DLQ_TOPIC, 1, on_dead_letter);
    size_t missing = 0;
    for (size_t i = 0; i < nmsgs; i++) {
        if (msgs[i].kind == K_GOOD) continue;
        const char *w = kind_reason(msgs[i].kind);
        for (int r = 0; r < 4; r++)
            if (!strcmp(w, reasons[r])) want_by_reason[r]++;
        if (!msgs[i].dlq_seen && missing++ < 5)
            fprintf(stderr, "not dead-lettered: %s at %d/%lld\n",
                    kind_names[msgs[i].kind], msgs[i].partition,
                    (long long)msgs[i].offset);
    }
    CU_ASSERT_EQUAL(n, NPOISON);
    CU_ASSERT_EQUAL(missing, 0);
    CU_ASSERT_EQUAL(dlq_unknown, 0);
    CU_ASSERT_EQUAL(dlq_good, 0);
    CU_ASSERT_EQUAL(dlq_dupes, 0);
    CU_ASSERT_EQUAL(dlq_bad_reason, 0);
    CU_ASSERT_EQUAL(dlq_bad_bytes, 0);
    CU_ASSERT_EQUAL(dlq_no_error, 0);
    CU_ASSERT(kind_count[K_TS_SECONDS] > 0);
    CU_ASSERT_EQUAL(dlq_no_seconds_hint, 0);
    for (int r = 0; r < 4; r++) CU_ASSERT_EQUAL(dlq_by_reason[r], want_by_reason[r]);
}

static void test_no_good_event_lost(void)
{
    CU_ASSERT_FATAL(processed);
    redisContext *c = redisConnect("127.0.0.1", world.redis->port);
    CU_ASSERT_FATAL(c && !c->err);
    size_t bad = 0;
    for (size_t i = 0; i < ncusts; i++) {
        const cust *u = &custs[i];
        char key[128];
        snprintf(key, sizeof key, "poison:cx:{%s}", u->id);
        redisReply *r = redisCommand(c, "HMGET %s n total", key);
        CU_ASSERT_FATAL(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        const redisReply *n = r->element[0], *t = r->element[1];
        int ok = n->type == REDIS_REPLY_STRING &&
                 strtoull(n->str, NULL, 10) == u->n;
        if (u->has_total)
            ok = ok && t->type == REDIS_REPLY_STRING &&
                 fabs(strtod(t->str, NULL) - u->total) <=
                     1e-9 * fmax(1, fabs(u->total));
        if (!ok && bad++ < 10)
            fprintf(stderr, "customer %s: n %s total %s, want %llu %.15g\n",
                    u->id, n->type == REDIS_REPLY_STRING ? n->str : "(none)",
                    t->type == REDIS_REPLY_STRING ? t->str : "(none)",
                    (unsigned long long)u->n, u->total);
        freeReplyObject(r);
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* Only the good events' customers have vectors (the poison ones of 300
     * bytes, with invalid UTF-8 or none have not). */
    redisReply *r = redisCommand(c, "DBSIZE");
    CU_ASSERT(r && r->type == REDIS_REPLY_INTEGER &&
              (size_t)r->integer == ncusts);
    if (r && r->type == REDIS_REPLY_INTEGER && (size_t)r->integer != ncusts)
        fprintf(stderr, "%lld keys in redis, %zu customers\n", r->integer,
                ncusts);
    freeReplyObject(r);
    redisFree(c);
    printf("\n    %zu customers checked ", ncusts);
}

/* tailord counted its dead letters by reason (its last lines, at stop). */
static int log_has_counts(const char *path, size_t decode, size_t missing,
                          size_t late, size_t bad_ts)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096], last[4096] = "";
    while (fgets(line, sizeof line, f))
        if (strstr(line, "dead letters by reason:"))
            snprintf(last, sizeof last, "%s", line);
    fclose(f);
    char want[256];
    snprintf(want, sizeof want,
             "dead letters by reason: decode %zu, missing_customer %zu, late "
             "%zu, bad_timestamp %zu, store 0\n",
             decode, missing, late, bad_ts);
    if (strstr(last, want)) return 1;
    fprintf(stderr, "log: %swant: %s", last[0] ? last : "(no counts)\n", want);
    return 0;
}

static void test_counts_by_reason(void)
{
    CU_ASSERT_FATAL(processed);
    CU_ASSERT_EQUAL(tl_test_stop(tailord, SIGTERM, 15000), 0);
    tailord = 0;
    CU_ASSERT(log_has_counts(log_path, want_by_reason[0], want_by_reason[1],
                             want_by_reason[2], want_by_reason[3]));
}

/* ---- the largest message the mock carries, between two good events ------ */

static msg big, around[2];
static size_t big_seen, big_other;
static char big_error[256];

static void on_big_dead_letter(const rd_kafka_message_t *m)
{
    size_t pl = 0, ol = 0, rl = 0, el = 0;
    const char *part = tl_test_header(m, "tailor.partition", &pl);
    const char *off = tl_test_header(m, "tailor.offset", &ol);
    const char *reason = tl_test_header(m, "tailor.reason", &rl);
    const char *error = tl_test_header(m, "tailor.error", &el);
    char p[32] = "", o[32] = "";
    if (part) snprintf(p, sizeof p, "%.*s", (int)pl, part);
    if (off) snprintf(o, sizeof o, "%.*s", (int)ol, off);
    if (atoi(p) != big.partition || strtoll(o, NULL, 10) != big.offset) {
        big_other++;
        return;
    }
    int same = m->len == big.vlen && m->key_len == big.klen &&
               memcmp(m->payload, big.val, m->len) == 0 &&
               memcmp(m->key, big.key, m->key_len) == 0 && reason &&
               rl == 6 && memcmp(reason, "decode", 6) == 0;
    if (error) snprintf(big_error, sizeof big_error, "%.*s", (int)el, error);
    if (same) big_seen++;
}

static void on_one_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                            void *ud)
{
    (void)rk;
    (void)ud;
    if (!m->err) ((msg *)m->_private)->offset = m->offset;
}

/* Produces m and records its offset. */
static void produce_one(rd_kafka_t *rk, msg *m)
{
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(BIG_TOPIC), RD_KAFKA_V_PARTITION(m->partition),
        RD_KAFKA_V_KEY(m->key, m->klen), RD_KAFKA_V_VALUE(m->val, m->vlen),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(m),
        RD_KAFKA_V_END);
    CU_ASSERT_EQUAL_FATAL(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    CU_ASSERT_EQUAL_FATAL(rd_kafka_flush(rk, 30000), 0);
    CU_ASSERT_FATAL(m->offset >= 0);
}

/* A purchase of `customer` as a message of exactly `size` bytes when size is
 * not 0 (the item is grown to fit). */
static void one_msg(msg *m, const char *customer, double amount, size_t size)
{
    const void *buf;
    size_t len;
    char *item = malloc(size + 4);
    strcpy(item, "tea");
    tl_event ev = {.event_id = "big-phase", .customer_id = customer,
                   .customer_id_len = strlen(customer), .ts = 1500000000000,
                   .channel = TL_CH_APP, .type = "purchase", .item = item,
                   .amount = amount, .has_amount = 1};
    encode(&ev, &buf, &len);
    if (size) {
        /* Grow the item, then correct for its longer length varint. */
        size_t n = 3;
        for (int i = 0; i < 4 && len != size; i++) {
            n += size - len;
            memset(item, 'x', n);
            item[n] = 0;
            encode(&ev, &buf, &len);
        }
        CU_ASSERT_EQUAL(len, size);
    }
    memset(m, 0, sizeof *m);
    m->key = strdup(customer);
    m->klen = strlen(customer);
    m->val = malloc(len);
    memcpy(m->val, buf, len);
    m->vlen = len;
    m->partition = 0;
    m->offset = -1;
    free(item);
}

static void test_big_message(void)
{
    one_msg(&around[0], "before-big", 1.25, 0);
    one_msg(&big, "in-big", 99, BIG_MSG);
    one_msg(&around[1], "after-big", 2.5, 0);

    char e[512];
    rd_kafka_conf_t *conf = big_conf(world.brokers, 0);
    rd_kafka_conf_set_dr_msg_cb(conf, on_one_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
    pid_t pid = tl_test_start_tailord(big_cfg_path, big_log_path);
    CU_ASSERT_FATAL(pid > 0);
    msg *seq[3] = {&around[0], &big, &around[1]};
    for (int i = 0; i < 3; i++) produce_one(rk, seq[i]);
    rd_kafka_destroy(rk);
    CU_ASSERT(tl_test_wait_drained(world.brokers, BIG_GROUP, BIG_TOPIC, 20000));
    CU_ASSERT_EQUAL(tl_test_stop(pid, SIGTERM, 15000), 0);

    /* On the dead-letter topic as sent, with the reason and the size. */
    CU_ASSERT_EQUAL(consume_topic(world.brokers, BIG_DLQ, 1,
                                  on_big_dead_letter),
                    1);
    CU_ASSERT_EQUAL(big_seen, 1);
    CU_ASSERT_EQUAL(big_other, 0);
    char want_err[128];
    snprintf(want_err, sizeof want_err, "message is %zu bytes, more than %zu",
             big.vlen, TL_EVENT_MAX_SIZE);
    CU_ASSERT_STRING_EQUAL(big_error, want_err);

    /* The events around it were applied, it was not. */
    redisContext *c = redisConnect("127.0.0.1", world.redis->port);
    CU_ASSERT_FATAL(c && !c->err);
    const char *want[][2] = {{"before-big", "1.25"}, {"after-big", "2.5"}};
    for (int i = 0; i < 2; i++) {
        redisReply *r =
            redisCommand(c, "HGET poison:cx:{%s} total", want[i][0]);
        CU_ASSERT(r && r->type == REDIS_REPLY_STRING &&
                  strcmp(r->str, want[i][1]) == 0);
        freeReplyObject(r);
    }
    redisReply *r = redisCommand(c, "EXISTS poison:cx:{in-big}");
    CU_ASSERT(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
    freeReplyObject(r);
    redisFree(c);
    CU_ASSERT(log_has_counts(big_log_path, 1, 0, 0, 0));
    for (int i = 0; i < 2; i++) free(around[i].key), free(around[i].val);
    free(big.key);
    free(big.val);
}

static void test_within_bound(void)
{
    int64_t took = tl_now_mono_ms() - suite_start_ms;
    printf("\n    %.1f s ", (double)took / 1000.0);
    CU_ASSERT(took < TEST_BOUND_MS);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("poison", suite_init, suite_clean);
    CU_add_test(s, "20% poison through tailord", test_stream_through_tailord);
    CU_add_test(s, "each poison message dead-lettered as sent, by reason",
                test_poison_dead_lettered);
    CU_add_test(s, "no good event lost", test_no_good_event_lost);
    CU_add_test(s, "tailord counted the dead letters by reason",
                test_counts_by_reason);
    CU_add_test(s, "a 5 MiB message between two good events",
                test_big_message);
    CU_add_test(s, "within the time bound", test_within_bound);
    return tl_test_run();
}
