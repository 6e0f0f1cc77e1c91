#include "slice.h"

#include <CUnit/Basic.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common.h"
#include "event.h"
#include "kafka_util.h"
#include "redis_server.h"
#include "schemas.h"
#include "trigger.h"

size_t tl_test_produce_slice(const char *brokers, const char *topic,
                             int first_round, int rounds)
{
    char err[512], e[512];
    tl_event_encoder *enc =
        tl_event_encoder_new(tl_schema_interaction_event, err, sizeof err);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, e, sizeof e);
    rd_kafka_conf_set(conf, "linger.ms", "20", e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!enc || !rk) {
        if (rk) rd_kafka_destroy(rk);
        else rd_kafka_conf_destroy(conf);
        tl_event_encoder_free(enc);
        return 0;
    }
    tl_arena arena;
    tl_arena_init(&arena, 1 << 16);
    static char line[1 << 16];
    size_t n = 0;
    for (int round = first_round; round < first_round + rounds; round++) {
        gzFile gz = gzopen(TL_TEST_SLICE, "rb");
        if (!gz) break;
        while (gzgets(gz, line, sizeof line)) {
            tl_arena_reset(&arena);
            tl_event ev;
            if (tl_event_from_json(line, strlen(line), &arena, &ev, err, sizeof err))
                continue;
            char id[64];
            int idlen = snprintf(id, sizeof id, "%s-r%d", ev.customer_id, round);
            ev.customer_id = id;
            ev.customer_id_len = (size_t)idlen;
            const void *buf;
            size_t len;
            if (tl_event_encode(enc, &ev, &buf, &len, err, sizeof err)) continue;
            while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                     RD_KAFKA_V_KEY(id, (size_t)idlen),
                                     RD_KAFKA_V_VALUE((void *)buf, len),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                     RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 50);
            rd_kafka_poll(rk, 0);
            n++;
        }
        gzclose(gz);
    }
    rd_kafka_flush(rk, 60000);
    CU_ASSERT_EQUAL(rd_kafka_outq_len(rk), 0);
    rd_kafka_destroy(rk);
    tl_arena_free(&arena);
    tl_event_encoder_free(enc);
    return n;
}

size_t tl_test_slice_customers(char ***ids)
{
    gzFile gz = gzopen(TL_TEST_SLICE, "rb");
    static char line[1 << 16];
    tl_arena arena;
    tl_arena_init(&arena, 1 << 16);
    char err[256];
    char **out = NULL;
    size_t n = 0;
    while (gz && gzgets(gz, line, sizeof line)) {
        tl_arena_reset(&arena);
        tl_event ev;
        if (tl_event_from_json(line, strlen(line), &arena, &ev, err, sizeof err))
            continue;
        size_t k = 0;
        while (k < n && strcmp(out[k], ev.customer_id)) k++;
        if (k == n) {
            out = tl_xrealloc(out, (n + 1) * sizeof *out);
            out[n++] = tl_xstrdup(ev.customer_id);
        }
    }
    if (gz) gzclose(gz);
    tl_arena_free(&arena);
    *ids = out;
    return n;
}

void tl_test_free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
}

static char *hash_text(redisContext *c, const char *key)
{
    char *t = tl_test_hash_text(c, key);
    return t ? t : tl_xstrdup("(error)");
}

size_t tl_test_compare_passes(redisContext *a, const char *pa, redisContext *b,
                              const char *pb, char **ids, size_t n,
                              int first_round, int rounds, size_t *empty)
{
    size_t differ = 0;
    *empty = 0;
    for (int round = first_round; round < first_round + rounds; round++)
        for (size_t i = 0; i < n; i++) {
            char ka[256], kb[256];
            snprintf(ka, sizeof ka, "%scx:{%s-r%d}", pa, ids[i], round);
            snprintf(kb, sizeof kb, "%scx:{%s-r%d}", pb, ids[i], round);
            char *x = hash_text(a, ka), *y = hash_text(b, kb);
            if (!*x) (*empty)++;
            if (strcmp(x, y) && differ++ < 3)
                fprintf(stderr, "%s differs:\n--- %s\n%s--- %s\n%s", kb, ka, x,
                        kb, y);
            free(x);
            free(y);
        }
    return differ;
}

typedef struct ids {
    tl_trigger_codec *codec;
    tl_arena arena;
    char **v;
    size_t n;
} ids;

static void collect(void *ud, const rd_kafka_message_t *m)
{
    ids *s = ud;
    tl_trigger t;
    char err[256];
    tl_arena_reset(&s->arena);
    if (tl_trigger_decode(s->codec, m->payload, m->len, &s->arena, &t, err, sizeof err))
        return;
    s->v = tl_xrealloc(s->v, (s->n + 1) * sizeof *s->v);
    char buf[160];
    snprintf(buf, sizeof buf, "%s %s %s %lld", t.id, t.rule, t.customer_id,
             (long long)t.ts);
    s->v[s->n++] = tl_xstrdup(buf);
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t distinct(ids *s)
{
    qsort(s->v, s->n, sizeof *s->v, cmp);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (k && !strcmp(s->v[k - 1], s->v[i])) {
            free(s->v[i]);
            continue;
        }
        s->v[k++] = s->v[i];
    }
    return s->n = k;
}

void tl_test_compare_trigger_ids(const char *brokers, const char *clean_topic,
                                 const char *topic, size_t *raw)
{
    char err[256];
    ids clean = {.codec = tl_trigger_codec_new(NULL, err, sizeof err)};
    ids other = {.codec = tl_trigger_codec_new(NULL, err, sizeof err)};
    tl_arena_init(&clean.arena, 1 << 14);
    tl_arena_init(&other.arena, 1 << 14);
    size_t raw_other = tl_test_consume_all(brokers, topic, collect, &other);
    tl_test_consume_all(brokers, clean_topic, collect, &clean);
    distinct(&clean);
    distinct(&other);
    if (raw) {
        /* No duplicates wanted: every trigger exactly once. */
        CU_ASSERT_EQUAL(raw_other, other.n);
        *raw = raw_other;
    }
    printf("triggers: %zu distinct in the clean pass; %zu produced, %zu distinct "
           "on %s\n", clean.n, raw_other, other.n, topic);
    CU_ASSERT(clean.n > 1000);
    CU_ASSERT_EQUAL(clean.n, other.n);
    size_t same = 0;
    for (size_t i = 0, j = 0; i < clean.n && j < other.n;) {
        int c = strcmp(clean.v[i], other.v[j]);
        if (!c) same++, i++, j++;
        else if (c < 0) fprintf(stderr, "missing: %s\n", clean.v[i++]);
        else fprintf(stderr, "extra: %s\n", other.v[j++]);
    }
    CU_ASSERT_EQUAL(same, clean.n);
    for (size_t i = 0; i < clean.n; i++) free(clean.v[i]);
    for (size_t i = 0; i < other.n; i++) free(other.v[i]);
    free(clean.v);
    free(other.v);
    tl_arena_free(&clean.arena);
    tl_arena_free(&other.arena);
    tl_trigger_codec_free(clean.codec);
    tl_trigger_codec_free(other.codec);
}
