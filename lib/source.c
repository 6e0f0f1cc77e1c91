#include "source.h"

#include <string.h>

#include <jansson.h>

#include "kafka.h"
#include "log.h"
#include "source_commit.h"

struct tl_source {
    rd_kafka_t *rk;
    int assigned;
    int paused;  /* tl_source_pause in effect */
    int closing; /* tl_source_free: revocations are carried out at once */
    int cooperative; /* of the recorded revocation */
    /* Recorded by the rebalance callback, carried out by tl_source_revoke
     * (owned; NULL when none is pending). */
    rd_kafka_topic_partition_list_t *revoking;
    /* The offset commits, asynchronous, failed ones sent again (owned). */
    tl_commits *commits;
    /* End offsets asked of the leaders while paused (query_ends), for the
     * partitions whose statistics have not caught up with them yet (owned;
     * NULL when none).  Only the pipeline thread touches it: the statistics
     * callback runs inside its poll. */
    rd_kafka_topic_partition_list_t *ends;
    int64_t ends_at;       /* monotonic ms: query_ends' next query */
    char *cluster_id;      /* tl_source_cluster_id (librdkafka's; NULL) */
    int cluster_asked;
    tl_kafka_health *health;
};

/* How often librdkafka reports its statistics (brokers' states, lag): the
 * delay with which /readyz sees a broker go down or come back. */
#define STATS_INTERVAL_MS "1000"
/* While paused, the end offsets are asked of the leaders as often as the
 * statistics come, each time waiting at most about twice this (leaders,
 * then offsets): the loop is only waiting for Redis then, and its tick
 * keeps its pace (tl_source_idle polls that much less). */
#define ENDS_INTERVAL_MS 1000
#define ENDS_TIMEOUT_MS 250

/* One partition's lag from its statistics: the end offset (librdkafka's
 * consumer_lag is end - committed, the end being its high watermark, or the
 * last stable offset under read_committed), or what query_ends got if that
 * is further: librdkafka 2.0.2 sets its end only from Fetch responses, so
 * it stops while the partition is paused.  -1 while unknown; *partition
 * is the statistics' partition. */
static int64_t partition_lag(tl_source *s, const char *topic, json_t *pv,
                             int32_t *partition)
{
    json_int_t part = json_integer_value(json_object_get(pv, "partition"));
    *partition = (int32_t)part;
    json_t *cl = json_object_get(pv, "consumer_lag");
    json_t *co = json_object_get(pv, "committed_offset");
    const char *fs = json_string_value(json_object_get(pv, "fetch_state"));
    if (part < 0 || !json_is_integer(co) || json_integer_value(co) < 0 ||
        !fs || strcmp(fs, "none") == 0)
        return -1;
    int64_t committed = json_integer_value(co);
    int64_t end = json_is_integer(cl) && json_integer_value(cl) >= 0
                      ? committed + json_integer_value(cl)
                      : -1;
    rd_kafka_topic_partition_t *q =
        s->ends ? rd_kafka_topic_partition_list_find(s->ends, topic, *partition)
                : NULL;
    if (q && q->offset > end)
        end = q->offset;
    else if (q) /* librdkafka knows as much again: no longer needed */
        rd_kafka_topic_partition_list_del(s->ends, topic, *partition);
    return end >= committed ? end - committed : -1;
}

/* librdkafka's statistics JSON (see its STATISTICS.md): brokers' states,
 * and per partition the consumer lag (partition_lag).  Runs inside the
 * consumer's poll, once per STATS_INTERVAL_MS. */
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
            int32_t part;
            int64_t l = partition_lag(s, name, pv, &part);
            if (l < 0) continue;
            lag = tl_xrealloc(lag, (n + 1) * sizeof *lag);
            lag[n++] = (tl_lag){tl_xstrdup(name), part, l};
        }
    }
    json_decref(root);
    tl_kafka_health *h = s->health;
    tl_gauge_set(&h->brokers_up, up);
    tl_kafka_health_set_lag(h, lag, n);
    return 0;
}

/* Carries out a revocation: the partitions are given up. */
static void unassign(tl_source *s, rd_kafka_topic_partition_list_t *parts,
                     int cooperative)
{
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t re = 0;
    if (cooperative)
        e = rd_kafka_incremental_unassign(s->rk, parts);
    else
        re = rd_kafka_assign(s->rk, NULL);
    /* Their end offsets go too (eager: all of them). */
    for (int i = 0; cooperative && s->ends && i < parts->cnt; i++)
        rd_kafka_topic_partition_list_del(s->ends, parts->elems[i].topic,
                                          parts->elems[i].partition);
    if (!cooperative && s->ends) {
        rd_kafka_topic_partition_list_destroy(s->ends);
        s->ends = NULL;
    }
    s->assigned = cooperative ? s->assigned - parts->cnt : 0;
    /* Cooperative: what remains is still assigned; eager: nothing is
     * until the next assignment. */
    if (cooperative) tl_gauge_set(&s->health->assigned, s->assigned);
    if (e) {
        tl_error("source", "rebalance: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else if (re) {
        tl_error("source", "rebalance: %s", rd_kafka_err2str(re));
    }
}

static void assign(tl_source *s, rd_kafka_topic_partition_list_t *parts,
                   int cooperative)
{
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t re = 0;
    tl_info("source", "assigned %d partition(s)%s", parts->cnt,
            cooperative ? " (incremental)" : "");
    if (cooperative)
        e = rd_kafka_incremental_assign(s->rk, parts);
    else
        re = rd_kafka_assign(s->rk, parts);
    s->assigned = cooperative ? s->assigned + parts->cnt : parts->cnt;
    tl_gauge_set(&s->health->assigned, s->assigned);
    /* Partitions that join during backpressure wait like the others,
     * or their input would pile up in the held batch. */
    if (s->paused && !e && !re) {
        rd_kafka_resp_err_t pe = rd_kafka_pause_partitions(s->rk, parts);
        if (pe)
            tl_warn("source", "pausing new partitions: %s",
                    rd_kafka_err2str(pe));
    }
    if (e) {
        tl_error("source", "rebalance: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else if (re) {
        tl_error("source", "rebalance: %s", rd_kafka_err2str(re));
    }
}

/* Runs inside rd_kafka_consumer_poll.  An assignment is taken at once (it
 * asks nothing of the pipeline); a revocation is only recorded: the
 * pipeline's loop carries it out at its next safe point (tl_source_revoke),
 * after finishing and committing what it owes those partitions.  librdkafka
 * waits for that unassign call (its WAIT_UNASSIGN_CALL join state, during
 * which it keeps heartbeating).  While closing, nothing is left to finish,
 * so a revocation is carried out here. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *ud)
{
    tl_source *s = ud;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    tl_counter_add(&s->health->rebalances, 1);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assign(s, parts, cooperative);
        return;
    }
    tl_gauge_set(&s->health->assigned, -1);
    tl_info("source", "%s %d partition(s)%s",
            rd_kafka_assignment_lost(rk) ? "lost" : "revoking", parts->cnt,
            s->closing ? "" : ": finishing what was taken from them");
    if (s->closing) {
        unassign(s, parts, cooperative);
        return;
    }
    /* librdkafka does not call again before the unassign; merged anyway. */
    if (!s->revoking) s->revoking = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < parts->cnt; i++)
        if (!rd_kafka_topic_partition_list_find(s->revoking, parts->elems[i].topic,
                                                parts->elems[i].partition))
            rd_kafka_topic_partition_list_add(s->revoking, parts->elems[i].topic,
                                              parts->elems[i].partition);
    s->cooperative = cooperative;
}

int tl_source_revoking(const tl_source *s) { return s && s->revoking; }

int tl_source_is_revoked(const tl_source *s, const char *topic,
                         int32_t partition)
{
    return s->revoking &&
           rd_kafka_topic_partition_list_find(s->revoking, topic, partition);
}

void tl_source_drop_revoked(tl_source *s, tl_batch *b)
{
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        rd_kafka_message_t *m = b->msgs[i];
        if (tl_source_is_revoked(s, rd_kafka_topic_name(m->rkt), m->partition))
            rd_kafka_message_destroy(m);
        else
            b->msgs[k++] = m;
    }
    b->n = k;
}

void tl_source_revoke(tl_source *s)
{
    if (!s->revoking) return;
    /* Their failed commits are not sent again: the new owner may have
     * committed further already. */
    tl_commits_forget(s->commits, s->revoking);
    unassign(s, s->revoking, s->cooperative);
    rd_kafka_topic_partition_list_destroy(s->revoking);
    s->revoking = NULL;
}

tl_source *tl_source_new(const tl_source_opts *o, tl_kafka_health *health,
                         char *err, size_t errsz)
{
    rd_kafka_conf_t *conf = tl_kafka_conf(&o->kafka, err, errsz);
    if (!conf) return NULL;
    char e[512];
    /* Offsets move only after delivery + flush (the delivery contract);
     * a group with no committed offset starts at the beginning, so no event
     * published before tailord first ran is skipped. */
    const char *props[][2] = {
        {"group.id", o->group},
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
     * keep flowing (on_rebalance handles incremental assign and revoke).
     * On the mock cluster this process hosts (tailord --embedded), a fetch
     * wait of 5 ms: the mock answers a fetch that finds nothing only after
     * the whole wait, even when events arrive meanwhile, so librdkafka's
     * 500 ms would be every event's latency (a real broker answers at
     * once).
     * queued.min.messages 1,000,000: librdkafka 2.0.2 compares it with the
     * length of the consumer's one queue that every partition feeds, not
     * with the partition's own, so at its default (100,000) all fetching
     * stopped once 100,000 messages were queued, and resumed only when the
     * broker thread next woke, 0.4-0.6 s later: a backlog drained that
     * queue first, and tailord waited half of its time with nothing to do
     * (docs/benchmarks.md, "The fetcher's pauses").  The bytes queued stay
     * bounded by queued.max.messages.kbytes (64 MB). */
    if (tl_kafka_conf_default(&o->kafka, conf, "partition.assignment.strategy",
                              "cooperative-sticky", e, sizeof e) ||
        tl_kafka_conf_default(&o->kafka, conf, "queued.min.messages",
                              "1000000", e, sizeof e) ||
        (tl_kafka_mock_born(o->kafka.brokers) &&
         tl_kafka_conf_default(&o->kafka, conf, "fetch.wait.max.ms", "5", e,
                               sizeof e))) {
        rd_kafka_conf_destroy(conf);
        tl_errf(err, errsz, TL_ERR_CONFIG, "kafka consumer: %s", e);
        return NULL;
    }
    tl_source *s = tl_xcalloc(1, sizeof *s);
    s->health = health;
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!s->rk) {
        rd_kafka_conf_destroy(conf);
        free(s);
        tl_errf(err, errsz, TL_ERR_CONFIG, "kafka consumer: %s", e);
        return NULL;
    }
    rd_kafka_poll_set_consumer(s->rk);
    s->commits = tl_commits_new(s->rk, health);
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new((int)o->ninputs);
    for (size_t i = 0; i < o->ninputs; i++)
        rd_kafka_topic_partition_list_add(topics, o->inputs[i],
                                          RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t re = rd_kafka_subscribe(s->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (re) {
        tl_errf(err, errsz, TL_ERR_IO, "kafka subscribe: %s",
                rd_kafka_err2str(re));
        tl_commits_free(s->commits);
        rd_kafka_destroy(s->rk);
        free(s);
        return NULL;
    }
    return s;
}

/* A polled message joins b; a consumer error (not the end of a partition)
 * is logged and dropped. */
static void take(rd_kafka_message_t *m, tl_batch *b)
{
    if (!m->err) {
        tl_batch_push(b, m);
        return;
    }
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        tl_warn("source", "consumer: %s", rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
}

void tl_source_poll(tl_source *s, tl_batch *b, size_t max, int timeout_ms,
                    volatile sig_atomic_t *stop)
{
    int64_t deadline = tl_now_mono_ms() + timeout_ms;
    while (b->n < max && !(stop && *stop) && !s->revoking) {
        int64_t left = deadline - tl_now_mono_ms();
        if (left < 0) left = 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, (int)left);
        if (!m) {
            if (left == 0) break;
            continue;
        }
        take(m, b);
    }
}

void tl_source_commit(tl_source *s, const tl_batch *b)
{
    tl_commits_send(s->commits, b);
}

void tl_source_commit_serve(tl_source *s) { tl_commits_serve(s->commits); }

int tl_source_commit_wait(tl_source *s, int timeout_ms)
{
    return tl_commits_wait(s->commits, timeout_ms);
}

int tl_source_fatal(tl_source *s, char *err, size_t errsz)
{
    char fe[512];
    if (!rd_kafka_fatal_error(s->rk, fe, sizeof fe)) return 0;
    tl_errf(err, errsz, TL_ERR_IO, "kafka consumer fatal error: %s", fe);
    return 1;
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

/* Asks the leaders for the end offsets of the assignment (as timestamps,
 * RD_KAFKA_OFFSET_END means the latest: the high watermark, or the last
 * stable offset under read_committed, as librdkafka's own lag), at most
 * every ENDS_INTERVAL_MS, and keeps them for partition_lag.  Failures are
 * only logged at debug: the next try is a second away, and the lag stays
 * as librdkafka reports it meanwhile. */
static void query_ends(tl_source *s)
{
    int64_t now = tl_now_mono_ms();
    if (now < s->ends_at) return;
    s->ends_at = now + ENDS_INTERVAL_MS;
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(s->rk, &l) || !l) return;
    for (int i = 0; i < l->cnt; i++) l->elems[i].offset = RD_KAFKA_OFFSET_END;
    rd_kafka_resp_err_t e =
        l->cnt ? rd_kafka_offsets_for_times(s->rk, l, ENDS_TIMEOUT_MS) : 0;
    if (e) tl_debug("source", "end offsets while paused: %s", rd_kafka_err2str(e));
    for (int i = 0; !e && i < l->cnt; i++) {
        const rd_kafka_topic_partition_t *q = &l->elems[i];
        if (q->err || q->offset < 0) continue;
        if (!s->ends) s->ends = rd_kafka_topic_partition_list_new(l->cnt);
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(s->ends, q->topic, q->partition);
        if (!p) p = rd_kafka_topic_partition_list_add(s->ends, q->topic, q->partition);
        p->offset = q->offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
}

void tl_source_idle(tl_source *s, tl_batch *held, int ms)
{
    int64_t t0 = tl_now_mono_ms();
    if (s->paused) query_ends(s);
    ms -= (int)(tl_now_mono_ms() - t0);
    rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, ms > 0 ? ms : 0);
    if (m) take(m, held);
}

const char *tl_source_cluster_id(tl_source *s, int timeout_ms)
{
    if (!s->cluster_asked) s->cluster_id = rd_kafka_clusterid(s->rk, timeout_ms);
    s->cluster_asked = 1;
    return s->cluster_id;
}

int64_t tl_source_end(tl_source *s, const char *topic, int32_t partition)
{
    int64_t lo, hi;
    if (rd_kafka_get_watermark_offsets(s->rk, topic, partition, &lo, &hi) ||
        hi < 0)
        return -1;
    return hi;
}

int tl_source_assigned(tl_source *s) { return s->assigned; }

void tl_source_free(tl_source *s)
{
    if (!s) return;
    /* librdkafka waits for the unassign of a recorded revocation before
     * anything else, closing included. */
    if (s->revoking) tl_source_revoke(s);
    s->closing = 1;
    rd_kafka_consumer_close(s->rk);
    if (s->revoking) rd_kafka_topic_partition_list_destroy(s->revoking);
    /* After the close: librdkafka answers what is in flight first. */
    tl_commits_free(s->commits);
    if (s->ends) rd_kafka_topic_partition_list_destroy(s->ends);
    if (s->cluster_id) rd_kafka_mem_free(s->rk, s->cluster_id);
    rd_kafka_destroy(s->rk);
    free(s);
}
