#include "sink.h"

#include <string.h>
#include <time.h>

#include "kafka.h"
#include "log.h"

/* A message librdkafka gave up on (delivery.timeout.ms), copied from its
 * delivery report: produced again by tl_sink_wait.  Only failures are
 * copied; a message in flight is librdkafka's own copy. */
typedef struct failed {
    char *topic;
    void *key, *val;
    size_t klen, vlen;
    rd_kafka_headers_t *hdrs; /* owned until produced again */
    uint64_t seq;
} failed;

struct tl_sink {
    rd_kafka_t *rk;
    failed *failed;
    size_t nfailed, fcap;
    size_t inflight;
    uint64_t next_seq;        /* each message's number, its opaque */
    uint64_t mark;            /* tl_sink_mark: messages numbered below */
    size_t before;            /* ... not delivered yet */
    int (*give_up)(void *ud); /* tl_sink_set_give_up */
    void *give_up_ud;
    char last_err[256];
};

/* NULL stays NULL: a message without a key is produced again without
 * one (partitioned as before), not with an empty key. */
static void *dup_bytes(const void *p, size_t n)
{
    if (!p) return NULL;
    void *d = tl_xmalloc(n ? n : 1);
    if (n) memcpy(d, p, n);
    return d;
}

/* A failure is kept (allocations on this path only); a success of a
 * message below the mark counts toward it. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *ud)
{
    (void)rk;
    tl_sink *s = ud;
    uint64_t seq = (uint64_t)(uintptr_t)m->_private;
    s->inflight--;
    if (!m->err) {
        if (seq < s->mark) s->before--;
        return;
    }
    snprintf(s->last_err, sizeof s->last_err, "%s", rd_kafka_err2str(m->err));
    if (s->nfailed == s->fcap) {
        s->fcap = s->fcap ? s->fcap * 2 : 64;
        s->failed = tl_xrealloc(s->failed, s->fcap * sizeof *s->failed);
    }
    failed *f = &s->failed[s->nfailed++];
    f->topic = tl_xstrdup(rd_kafka_topic_name(m->rkt));
    f->key = dup_bytes(m->key, m->key_len);
    f->klen = m->key_len;
    f->val = dup_bytes(m->payload, m->len);
    f->vlen = m->len;
    rd_kafka_headers_t *h = NULL;
    f->hdrs = rd_kafka_message_headers(m, &h) ? NULL : rd_kafka_headers_copy(h);
    f->seq = seq;
}

static void failed_free(failed *f)
{
    free(f->topic);
    free(f->key);
    free(f->val);
    if (f->hdrs) rd_kafka_headers_destroy(f->hdrs);
}

tl_sink *tl_sink_new(const tl_kafka_opts *o, const char *output, char *err,
                     size_t errsz)
{
    rd_kafka_conf_t *conf = tl_kafka_conf(o, err, errsz);
    if (!conf) return NULL;
    char e[512];
    /* Idempotence gives retries without duplicates or reordering; acks=all
     * follows from it.  The defaults below give way to kafka.properties.
     * linger.ms 2: a trigger leaves within 2 ms of its batch (tl_sink_wait
     * flushes at once).  2 requests in flight, not librdkafka's 5: when
     * every batch waited for its triggers, that wait was 40 ms a batch on
     * librdkafka 2.0.2's mock cluster with 5 against 1 ms with 2, and no
     * faster on a real broker (docs/benchmarks.md, "Fast defaults"). */
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
    for (size_t i = 0; i < s->nfailed; i++) failed_free(&s->failed[i]);
    free(s->failed);
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

/* Queues one message numbered seq; librdkafka copies key and value and
 * takes hdrs when it accepts the message (the caller's otherwise). */
static int produce_one(tl_sink *s, const char *topic, const void *key,
                       size_t klen, const void *val, size_t vlen,
                       rd_kafka_headers_t *hdrs, uint64_t seq, char *err,
                       size_t errsz)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            s->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((void *)key, klen),
            RD_KAFKA_V_VALUE((void *)val, vlen),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)seq),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (!e) {
            s->inflight++;
            return TL_OK;
        }
        /* After a fatal error every produce is refused with __FATAL: say
         * the error itself, which tells what to do. */
        if (e == RD_KAFKA_RESP_ERR__FATAL && tl_sink_fatal(s, err, errsz))
            return TL_ERR_IO;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return tl_errf(err, errsz, TL_ERR_IO, "produce to %s: %s", topic,
                           rd_kafka_err2str(e));
        /* Backpressure: serve delivery reports until there is room, or
         * until the caller stops (a broker that stays away would otherwise
         * hold a stopping tailord here for good). */
        rd_kafka_poll(s->rk, 100);
        if (stop_now(s))
            return tl_errf(err, errsz, TL_ERR_IO,
                           "stopped while the producer's queue was full "
                           "(%s)", topic);
    }
}

int tl_sink_produce(tl_sink *s, const char *topic, const void *key,
                    size_t klen, const void *val, size_t vlen,
                    const tl_header *hdrs, size_t nhdrs, char *err,
                    size_t errsz)
{
    rd_kafka_headers_t *h = NULL;
    if (nhdrs) {
        h = rd_kafka_headers_new(nhdrs);
        for (size_t k = 0; k < nhdrs; k++)
            rd_kafka_header_add(h, hdrs[k].name, -1, hdrs[k].val,
                                (ssize_t)hdrs[k].vlen);
    }
    int rc = produce_one(s, topic, key, klen, val, vlen, h, s->next_seq, err,
                         errsz);
    /* Refused outright (too large, unknown topic...): it was never queued,
     * so no wait counts it; the caller decides what to do. */
    if (rc) {
        if (h) rd_kafka_headers_destroy(h);
    } else {
        s->next_seq++;
    }
    rd_kafka_poll(s->rk, 0);
    return rc;
}

/* The failed messages produced again, with their numbers (a mark set
 * before counts them until they are delivered).  Failures reported
 * meanwhile go to a fresh list, for the next round. */
static int resend_failed(tl_sink *s, char *err, size_t errsz)
{
    failed *list = s->failed;
    size_t n = s->nfailed;
    s->failed = NULL;
    s->nfailed = s->fcap = 0;
    int rc = TL_OK;
    for (size_t i = 0; i < n; i++) {
        failed *f = &list[i];
        if (!rc) {
            rc = produce_one(s, f->topic, f->key, f->klen, f->val, f->vlen,
                             f->hdrs, f->seq, err, errsz);
            if (!rc) f->hdrs = NULL; /* librdkafka's now */
        }
        failed_free(f);
    }
    free(list);
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
        if (!s->nfailed) break;
        tl_warn("sink", "%zu messages not delivered (%s); producing them again "
                "in %d ms", s->nfailed, s->last_err, backoff_ms);
        tl_sleep_ms(backoff_ms);
        if (stop_now(s))
            return tl_errf(err, errsz, TL_ERR_IO,
                           "stopped with %zu undelivered messages: %s",
                           s->nfailed, s->last_err);
        if (backoff_ms < 5000) backoff_ms *= 2;
        int rc = resend_failed(s, err, errsz);
        if (rc) return rc;
    }
    s->before = 0;
    return TL_OK;
}

void tl_sink_mark(tl_sink *s)
{
    s->mark = s->next_seq;
    s->before = s->inflight + s->nfailed;
}

int tl_sink_marked(tl_sink *s)
{
    rd_kafka_poll(s->rk, 0);
    if (s->nfailed) return -1;
    return s->before == 0;
}
