#include "sink.h"

#include <string.h>
#include <time.h>

#include "kafka.h"
#include "log.h"

/* The sink's copy of one queued message, kept until it is delivered. */
typedef struct pending {
    const char *topic;
    const void *key, *val;
    size_t klen, vlen;
    tl_header *hdrs;
    size_t nhdrs;
    int state; /* 0 in flight, 1 delivered, -1 failed */
} pending;

struct tl_sink {
    rd_kafka_t *rk;
    tl_arena arena;
    pending *msgs;
    size_t n, cap;
    size_t inflight;
    int (*give_up)(void *ud); /* tl_sink_set_give_up */
    void *give_up_ud;
    char last_err[256];
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *ud)
{
    (void)rk;
    tl_sink *s = ud;
    size_t i = (size_t)(uintptr_t)m->_private;
    if (i >= s->n) return; /* not ours (cannot happen) */
    s->inflight--;
    if (m->err) {
        s->msgs[i].state = -1;
        snprintf(s->last_err, sizeof s->last_err, "%s",
                 rd_kafka_err2str(m->err));
    } else {
        s->msgs[i].state = 1;
    }
}

tl_sink *tl_sink_new(const tl_kafka_opts *o, const char *output, char *err,
                     size_t errsz)
{
    rd_kafka_conf_t *conf = tl_kafka_conf(o, err, errsz);
    if (!conf) return NULL;
    char e[512];
    /* Idempotence gives retries without duplicates or reordering; acks=all
     * follows from it.  The defaults below give way to kafka.properties.
     * linger.ms 2: the batch's end sends what lingers anyway (tl_sink_wait
     * flushes).  2 requests in flight, not librdkafka's 5: each batch waits
     * for its triggers, and with 5 that wait was 40 ms a batch on
     * librdkafka 2.0.2's mock cluster against 1 ms with 2, and no faster on
     * a real broker (docs/benchmarks.md, "Fast defaults"). */
    if (rd_kafka_conf_set(conf, "enable.idempotence", "true", e, sizeof e) ||
        tl_kafka_conf_default(o, conf, "linger.ms", "2", e, sizeof e) ||
        tl_kafka_conf_default(o, conf, "max.in.flight.requests.per.connection",
                              "2", e, sizeof e)) {
        rd_kafka_conf_destroy(conf);
        tl_errf(err, errsz, TL_ERR_CONFIG, "kafka producer: %s", e);
        return NULL;
    }
    tl_sink *s = tl_xcalloc(1, sizeof *s);
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!s->rk) {
        rd_kafka_conf_destroy(conf);
        free(s);
        tl_errf(err, errsz, TL_ERR_CONFIG, "kafka producer: %s", e);
        return NULL;
    }
    tl_arena_init(&s->arena, 1 << 20);
    /* The producer learns the output topic's partitions and leaders on its
     * first message, which then waits for that metadata request (half a
     * second and more measured on the mock cluster: the first batch's
     * delivery wait).  Asked for now, while the consumer joins its group.
     * Bounded, and harmless when it fails: the first message asks again. */
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(s->rk, output, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (rkt && rd_kafka_metadata(s->rk, 0, rkt, &md, 5000) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);
    if (rkt) rd_kafka_topic_destroy(rkt);
    return s;
}

void tl_sink_free(tl_sink *s)
{
    if (!s) return;
    rd_kafka_flush(s->rk, 10000);
    if (rd_kafka_outq_len(s->rk) > 0)
        tl_warn("sink", "%d messages not delivered at shutdown",
                rd_kafka_outq_len(s->rk));
    rd_kafka_destroy(s->rk);
    tl_arena_free(&s->arena);
    free(s->msgs);
    free(s);
}

static int stop_now(tl_sink *s)
{
    return s->give_up && s->give_up(s->give_up_ud);
}

void tl_sink_set_give_up(tl_sink *s, int (*give_up)(void *ud), void *ud)
{
    s->give_up = give_up;
    s->give_up_ud = ud;
}

int tl_sink_fatal(tl_sink *s, char *err, size_t errsz)
{
    char fe[512];
    if (!rd_kafka_fatal_error(s->rk, fe, sizeof fe)) return 0;
    tl_errf(err, errsz, TL_ERR_IO, "kafka producer fatal error: %s", fe);
    return 1;
}

static int send_one(tl_sink *s, size_t i, char *err, size_t errsz)
{
    pending *p = &s->msgs[i];
    for (;;) {
        rd_kafka_headers_t *h = NULL;
        if (p->nhdrs) {
            h = rd_kafka_headers_new(p->nhdrs);
            for (size_t k = 0; k < p->nhdrs; k++)
                rd_kafka_header_add(h, p->hdrs[k].name, -1, p->hdrs[k].val,
                                    (ssize_t)p->hdrs[k].vlen);
        }
        rd_kafka_resp_err_t e = rd_kafka_producev(
            s->rk, RD_KAFKA_V_TOPIC(p->topic),
            RD_KAFKA_V_KEY((void *)p->key, p->klen),
            RD_KAFKA_V_VALUE((void *)p->val, p->vlen),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)i),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (!e) {
            p->state = 0;
            s->inflight++;
            return TL_OK;
        }
        if (h) rd_kafka_headers_destroy(h);
        /* After a fatal error every produce is refused with __FATAL: say
         * the error itself, which tells what to do. */
        if (e == RD_KAFKA_RESP_ERR__FATAL && tl_sink_fatal(s, err, errsz))
            return TL_ERR_IO;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return tl_errf(err, errsz, TL_ERR_IO, "produce to %s: %s",
                           p->topic, rd_kafka_err2str(e));
        /* Backpressure: serve delivery reports until there is room, or
         * until the caller stops (a broker that stays away would otherwise
         * hold a stopping tailord here for good). */
        rd_kafka_poll(s->rk, 100);
        if (stop_now(s))
            return tl_errf(err, errsz, TL_ERR_IO,
                           "stopped while the producer's queue was full "
                           "(%s)", p->topic);
    }
}

int tl_sink_produce(tl_sink *s, const char *topic, const void *key,
                    size_t klen, const void *val, size_t vlen,
                    const tl_header *hdrs, size_t nhdrs, char *err,
                    size_t errsz)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->msgs = tl_xrealloc(s->msgs, s->cap * sizeof *s->msgs);
    }
    pending *p = &s->msgs[s->n];
    p->topic = tl_arena_strndup(&s->arena, topic, strlen(topic));
    p->key = tl_arena_strndup(&s->arena, key, klen);
    p->klen = klen;
    void *v = tl_arena_alloc(&s->arena, vlen ? vlen : 1);
    if (vlen) memcpy(v, val, vlen);
    p->val = v;
    p->vlen = vlen;
    p->nhdrs = nhdrs;
    p->hdrs = nhdrs ? tl_arena_alloc(&s->arena, nhdrs * sizeof *p->hdrs) : NULL;
    for (size_t k = 0; k < nhdrs; k++) {
        p->hdrs[k].name =
            tl_arena_strndup(&s->arena, hdrs[k].name, strlen(hdrs[k].name));
        p->hdrs[k].val = tl_arena_strndup(&s->arena, hdrs[k].val, hdrs[k].vlen);
        p->hdrs[k].vlen = hdrs[k].vlen;
    }
    s->n++;
    int rc = send_one(s, s->n - 1, err, errsz);
    /* Refused outright (too large, unknown topic...): it was never queued,
     * so the batch does not wait for it; the caller decides what to do. */
    if (rc) s->n--;
    rd_kafka_poll(s->rk, 0);
    return rc;
}

int tl_sink_wait(tl_sink *s, char *err, size_t errsz)
{
    int backoff_ms = 100;
    for (;;) {
        while (s->inflight > 0) {
            /* rd_kafka_flush sends at once, ignoring linger.ms. */
            rd_kafka_flush(s->rk, 100);
            if (tl_sink_fatal(s, err, errsz)) return TL_ERR_IO;
            if (stop_now(s))
                return tl_errf(err, errsz, TL_ERR_IO,
                               "stopped while %zu messages were in flight",
                               s->inflight);
        }
        size_t failed = 0;
        for (size_t i = 0; i < s->n; i++) failed += s->msgs[i].state < 0;
        if (!failed) break;
        tl_warn("sink", "%zu messages not delivered (%s); producing them again "
                "in %d ms", failed, s->last_err, backoff_ms);
        tl_sleep_ms(backoff_ms);
        if (stop_now(s))
            return tl_errf(err, errsz, TL_ERR_IO,
                           "stopped with %zu undelivered messages: %s", failed,
                           s->last_err);
        if (backoff_ms < 5000) backoff_ms *= 2;
        for (size_t i = 0; i < s->n; i++)
            if (s->msgs[i].state < 0) {
                int rc = send_one(s, i, err, errsz);
                if (rc) return rc;
            }
    }
    s->n = 0;
    tl_arena_reset(&s->arena);
    return TL_OK;
}
