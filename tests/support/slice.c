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
#include "schemas.h"
#include "redis_server.h"

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
