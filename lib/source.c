#include "source.h"

#include <string.h>

#include <jansson.h>

#include "kafka.h"
#include "log.h"

struct tl_source {
    rd_kafka_t *rk;
    void (*drain)(void *ud);
    void *ud;
    int assigned;
    int paused; /* tl_source_pause in effect */
    /* The offsets of the last asynchronous commit, until tl_source_sync
     * commits them again synchronously (owned). */
    rd_kafka_topic_partition_list_t *last;
    tl_kafka_health *health;
};

/* How often librdkafka reports its statistics (brokers' states, lag): the
 * delay with which /readyz sees a broker go down or come back. */
#define STATS_INTERVAL_MS "1000"

void tl_kafka_health_init(tl_kafka_health *h)
{
    memset(h, 0, sizeof *h);
    tl_gauge_set(&h->assigned, -1);
    tl_gauge_set(&h->brokers_up, -1);
    pthread_mutex_init(&h->lock, NULL);
}

static void free_lag(tl_lag *l, size_t n)
{
    for (size_t i = 0; i < n; i++) free(l[i].topic);
    free(l);
}

void tl_kafka_health_destroy(tl_kafka_health *h)
{
    free_lag(h->lag, h->nlag);
    h->lag = NULL;
    h->nlag = 0;
    pthread_mutex_destroy(&h->lock);
}

void tl_kafka_health_lag(tl_kafka_health *h,
                         void (*fn)(void *ud, const tl_lag *l), void *ud)
{
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->nlag; i++) fn(ud, &h->lag[i]);
    pthread_mutex_unlock(&h->lock);
}

/* librdkafka's statistics JSON (see its STATISTICS.md): brokers' states,
 * and per partition the consumer lag (-1 while unknown or not assigned).
 * Runs inside the consumer's poll, once per STATS_INTERVAL_MS. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *ud)
{
    (void)rk;
    tl_source *s = ud;
    json_t *root = json_loadb(json, len, 0, NULL);
    if (!root) return 0;
    int64_t up = 0;
    const char *name;
    json_t *b, *t;
    json_object_foreach(json_object_get(root, "brokers"), name, b) {
        /* Bootstrap entries (nodeid -1) are only how brokers are found. */
        json_t *st = json_object_get(b, "state");
        if (json_integer_value(json_object_get(b, "nodeid")) >= 0 &&
            json_is_string(st) && strcmp(json_string_value(st), "UP") == 0)
            up++;
    }
    tl_lag *lag = NULL;
    size_t n = 0;
    json_object_foreach(json_object_get(root, "topics"), name, t) {
        const char *pk;
        json_t *pv;
        json_object_foreach(json_object_get(t, "partitions"), pk, pv) {
            json_int_t part = json_integer_value(json_object_get(pv, "partition"));
            json_t *cl = json_object_get(pv, "consumer_lag");
            const char *fs = json_string_value(json_object_get(pv, "fetch_state"));
            if (part < 0 || !json_is_integer(cl) || json_integer_value(cl) < 0 ||
                !fs || strcmp(fs, "none") == 0)
                continue;
            lag = tl_xrealloc(lag, (n + 1) * sizeof *lag);
            lag[n++] = (tl_lag){tl_xstrdup(name), (int32_t)part,
                                (int64_t)json_integer_value(cl)};
        }
    }
    json_decref(root);
    tl_kafka_health *h = s->health;
    tl_gauge_set(&h->brokers_up, up);
    pthread_mutex_lock(&h->lock);
    tl_lag *old = h->lag;
    size_t nold = h->nlag;
    h->lag = lag;
    h->nlag = n;
    pthread_mutex_unlock(&h->lock);
    free_lag(old, nold);
    return 0;
}

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
        tl_gauge_set(&s->health->assigned, s->assigned);
        /* Partitions that join during backpressure wait like the others,
         * or their input would pile up in the held batch. */
        if (s->paused && !e && !re) {
            rd_kafka_resp_err_t pe = rd_kafka_pause_partitions(rk, parts);
            if (pe)
                tl_warn("source", "pausing new partitions: %s",
                        rd_kafka_err2str(pe));
        }
    } else {
        tl_gauge_set(&s->health->assigned, -1);
        /* Finish and commit what was polled while we still own it. */
        tl_info("source", "%s %d partition(s): finishing the current batch",
                rd_kafka_assignment_lost(rk) ? "lost" : "revoking", parts->cnt);
        s->drain(s->ud);
        if (cooperative)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            re = rd_kafka_assign(rk, NULL);
        s->assigned = cooperative ? s->assigned - parts->cnt : 0;
        /* Cooperative: what remains is still assigned; eager: nothing is
         * until the next assignment. */
        if (cooperative) tl_gauge_set(&s->health->assigned, s->assigned);
    }
    tl_counter_add(&s->health->rebalances, 1);
    if (e) {
        tl_error("source", "rebalance: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else if (re) {
        tl_error("source", "rebalance: %s", rd_kafka_err2str(re));
    }
}

/* The result of an asynchronous commit, served by the consumer's poll. */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *ud)
{
    (void)rk;
    tl_source *s = ud;
    const char *what = err ? rd_kafka_err2str(err) : NULL;
    for (int i = 0; !what && offsets && i < offsets->cnt; i++)
        if (offsets->elems[i].err) what = rd_kafka_err2str(offsets->elems[i].err);
    /* No offsets to commit is not a failure (librdkafka's own commits). */
    if (!what || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
    tl_counter_add(&s->health->commit_errors, 1);
    tl_warn("source", "offset commit: %s (the batch will be re-read and "
            "skipped)", what);
}

tl_source *tl_source_new(const tl_config *cfg, const char *brokers,
                         void (*drain)(void *ud), void *ud,
                         tl_kafka_health *health, char *err, size_t errsz)
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
        {"statistics.interval.ms", STATS_INTERVAL_MS},
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
    s->health = health;
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
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

/* Commits l (asynchronously: queues it) and reports a failure, counted in
 * health->commit_errors. */
static int commit_list(tl_source *s, rd_kafka_topic_partition_list_t *l,
                       int async, char *err, size_t errsz)
{
    rd_kafka_resp_err_t e = rd_kafka_commit(s->rk, l, async);
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
    if (rc) tl_counter_add(&s->health->commit_errors, 1);
    return rc;
}

static void drop_last(tl_source *s)
{
    if (s->last) rd_kafka_topic_partition_list_destroy(s->last);
    s->last = NULL;
}

int tl_source_commit(tl_source *s, const tl_batch *b, int async, char *err,
                     size_t errsz)
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
    int rc = commit_list(s, l, async, err, errsz);
    if (async && !rc) {
        drop_last(s);
        s->last = l;
        return rc;
    }
    rd_kafka_topic_partition_list_destroy(l);
    /* A synchronous commit returns after the coordinator answered the
     * asynchronous ones sent before it (one connection, in order), so there
     * is nothing to send again; sending it would move those partitions'
     * offsets back. */
    if (!async) drop_last(s);
    return rc;
}

int tl_source_sync(tl_source *s, char *err, size_t errsz)
{
    if (!s->last) return TL_OK;
    /* The same offsets again, synchronously: it returns once the
     * coordinator has them, after the asynchronous request sent before. */
    int rc = commit_list(s, s->last, 0, err, errsz);
    drop_last(s);
    return rc;
}

static void set_paused(tl_source *s, int pause)
{
    s->paused = pause;
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
    drop_last(s);
    rd_kafka_destroy(s->rk);
    free(s);
}
