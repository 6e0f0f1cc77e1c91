#include "source.h"

#include <string.h>

#include "kafka.h"
#include "log.h"

struct tl_source {
    rd_kafka_t *rk;
    void (*drain)(void *ud);
    void *ud;
    int assigned;
};

void tl_batch_clear(tl_batch *b)
{
    for (size_t i = 0; i < b->n; i++) rd_kafka_message_destroy(b->msgs[i]);
    b->n = 0;
}

void tl_batch_free(tl_batch *b)
{
    tl_batch_clear(b);
    free(b->msgs);
    b->msgs = NULL;
    b->cap = 0;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *ud)
{
    tl_source *s = ud;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t re = 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        tl_info("source", "assigned %d partition(s)%s", parts->cnt,
                cooperative ? " (incremental)" : "");
        if (cooperative)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            re = rd_kafka_assign(rk, parts);
        s->assigned = cooperative ? s->assigned + parts->cnt : parts->cnt;
    } else {
        /* Finish and commit what was polled while we still own it. */
        tl_info("source", "%s %d partition(s): finishing the current batch",
                rd_kafka_assignment_lost(rk) ? "lost" : "revoking", parts->cnt);
        s->drain(s->ud);
        if (cooperative)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            re = rd_kafka_assign(rk, NULL);
        s->assigned = cooperative ? s->assigned - parts->cnt : 0;
    }
    if (e) {
        tl_error("source", "rebalance: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else if (re) {
        tl_error("source", "rebalance: %s", rd_kafka_err2str(re));
    }
}

tl_source *tl_source_new(const tl_config *cfg, const char *brokers,
                         void (*drain)(void *ud), void *ud, char *err,
                         size_t errsz)
{
    rd_kafka_conf_t *conf = tl_kafka_conf(cfg, brokers, err, errsz);
    if (!conf) return NULL;
    char e[512];
    /* Offsets move only after delivery + flush (the delivery contract);
     * a group with no committed offset starts at the beginning, so no event
     * published before tailord first ran is skipped. */
    const char *props[][2] = {
        {"group.id", cfg->group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
    };
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], e, sizeof e)) {
            rd_kafka_conf_destroy(conf);
            tl_errf(err, errsz, TL_ERR_CONFIG, "kafka consumer: %s", e);
            return NULL;
        }
    /* Cooperative-sticky unless kafka.properties chose: a member joining or
     * leaving moves only the partitions that change owner, so the others
     * keep flowing (on_rebalance handles incremental assign and revoke). */
    int chosen = 0;
    for (size_t i = 0; i < cfg->nproperties; i++)
        chosen |= !strcmp(cfg->properties[i].key, "partition.assignment.strategy");
    if (!chosen && rd_kafka_conf_set(conf, "partition.assignment.strategy",
                                     "cooperative-sticky", e, sizeof e)) {
        rd_kafka_conf_destroy(conf);
        tl_errf(err, errsz, TL_ERR_CONFIG, "kafka consumer: %s", e);
        return NULL;
    }
    tl_source *s = tl_xcalloc(1, sizeof *s);
    s->drain = drain;
    s->ud = ud;
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!s->rk) {
        rd_kafka_conf_destroy(conf);
        free(s);
        tl_errf(err, errsz, TL_ERR_CONFIG, "kafka consumer: %s", e);
        return NULL;
    }
    rd_kafka_poll_set_consumer(s->rk);
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new((int)cfg->ninputs);
    for (size_t i = 0; i < cfg->ninputs; i++)
        rd_kafka_topic_partition_list_add(topics, cfg->inputs[i],
                                          RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t re = rd_kafka_subscribe(s->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (re) {
        tl_errf(err, errsz, TL_ERR_IO, "kafka subscribe: %s",
                rd_kafka_err2str(re));
        rd_kafka_destroy(s->rk);
        free(s);
        return NULL;
    }
    return s;
}

void tl_source_poll(tl_source *s, tl_batch *b, size_t max, int timeout_ms,
                    volatile sig_atomic_t *stop)
{
    int64_t deadline = tl_now_mono_ms() + timeout_ms;
    while (b->n < max && !(stop && *stop)) {
        int64_t left = deadline - tl_now_mono_ms();
        if (left < 0) left = 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, (int)left);
        if (!m) {
            if (left == 0) break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                tl_warn("source", "consumer: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (b->n == b->cap) {
            b->cap = b->cap ? b->cap * 2 : 1024;
            b->msgs = tl_xrealloc(b->msgs, b->cap * sizeof *b->msgs);
        }
        b->msgs[b->n++] = m;
    }
}

int tl_source_commit(tl_source *s, const tl_batch *b, char *err, size_t errsz)
{
    if (!b->n) return TL_OK;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < b->n; i++) {
        const rd_kafka_message_t *m = b->msgs[i];
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(l, topic, m->partition);
        if (!p) p = rd_kafka_topic_partition_list_add(l, topic, m->partition);
        if (m->offset + 1 > p->offset) p->offset = m->offset + 1;
    }
    rd_kafka_resp_err_t e = rd_kafka_commit(s->rk, l, 0);
    int rc = TL_OK;
    if (e) {
        rc = tl_errf(err, errsz, TL_ERR_IO, "offset commit: %s",
                     rd_kafka_err2str(e));
    } else {
        for (int i = 0; i < l->cnt; i++)
            if (l->elems[i].err) {
                rc = tl_errf(err, errsz, TL_ERR_IO,
                             "offset commit of %s [%d]: %s", l->elems[i].topic,
                             l->elems[i].partition,
                             rd_kafka_err2str(l->elems[i].err));
                break;
            }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static void set_paused(tl_source *s, int pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(s->rk, &l) || !l) return;
    if (l->cnt) {
        rd_kafka_resp_err_t e = pause ? rd_kafka_pause_partitions(s->rk, l)
                                      : rd_kafka_resume_partitions(s->rk, l);
        if (e)
            tl_warn("source", "%s partitions: %s", pause ? "pausing" : "resuming",
                    rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

void tl_source_pause(tl_source *s) { set_paused(s, 1); }
void tl_source_resume(tl_source *s) { set_paused(s, 0); }

void tl_source_idle(tl_source *s, tl_batch *held, int ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, ms);
    if (!m) return;
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            tl_warn("source", "consumer: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    if (held->n == held->cap) {
        held->cap = held->cap ? held->cap * 2 : 64;
        held->msgs = tl_xrealloc(held->msgs, held->cap * sizeof *held->msgs);
    }
    held->msgs[held->n++] = m;
}

int tl_source_assigned(tl_source *s) { return s->assigned; }

void tl_source_free(tl_source *s)
{
    if (!s) return;
    rd_kafka_consumer_close(s->rk);
    rd_kafka_destroy(s->rk);
    free(s);
}
