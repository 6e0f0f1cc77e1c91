/*
 * pipeline_reset — offsets gone backwards: a topic recreated, a broker that
 * lost its data, tailord --embedded started again.  Vectors' watermarks then
 * lie above the new log's offsets and every event would be a duplicate.  A
 * watermark is stale when it is at or beyond the partition's end offset (as
 * the consumer last fetched it: no request), or was written under another
 * Kafka cluster (the vector's _k).  Said once per partition, counted, and
 * handled by events.on_offset_reset (reapply, skip).
 */
#include "pipeline_int.h"
#include "kafka.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The counter of (topic, partition) in stats.resets, created if absent;
 * *first is set when it was.  NULL when the table is full. */
static tl_reset_count *reset_count(tl_pipeline *p, const char *topic,
                                   int32_t partition, int *first)
{
    size_t n = atomic_load_explicit(&p->stats.nresets, memory_order_relaxed);
    *first = 0;
    for (size_t i = 0; i < n; i++)
        if (p->stats.resets[i].partition == partition &&
            !strcmp(p->stats.resets[i].topic, topic))
            return &p->stats.resets[i];
    if (n == TL_MAX_RESET_PARTS) return NULL;
    tl_reset_count *r = &p->stats.resets[n];
    r->topic = tl_xstrdup(topic);
    r->partition = partition;
    atomic_store_explicit(&p->stats.nresets, n + 1, memory_order_release);
    *first = 1;
    return r;
}

/* A stale watermark of (topic, partition) found: counted, and said once
 * per partition (not per customer), with what it means and what to do. */
static void report_reset(tl_pipeline *p, const char *topic, int32_t partition,
                         const tl_wm *wm, int64_t end)
{
    int first;
    tl_reset_count *r = reset_count(p, topic, partition, &first);
    if (r) tl_counter_add(&r->n, 1);
    if (r && !first) return;
    char why[160];
    if (wm->foreign)
        snprintf(why, sizeof why, "a customer's watermark %" PRId64 " was "
                 "written under another Kafka cluster than %s", wm->applied,
                 p->cluster_id);
    else
        snprintf(why, sizeof why, "a customer's watermark %" PRId64 " is at "
                 "or beyond the partition's end offset %" PRId64,
                 wm->applied, end);
    if (p->cfg->on_offset_reset == TL_RESET_SKIP)
        tl_error("pipeline", "offsets of %s [%" PRId32 "] went backwards: %s "
                 "(topic recreated, or broker data lost); "
                 "events.on_offset_reset is skip: events at or below such "
                 "watermarks are skipped as duplicates, NOT applied (see "
                 "tailor_offset_resets_total); if this log is new, set "
                 "events.on_offset_reset: reapply", topic, partition, why);
    else
        tl_warn("pipeline", "offsets of %s [%" PRId32 "] went backwards: %s "
                "(topic recreated, or broker data lost, as with "
                "tailord --embedded at each start); events.on_offset_reset "
                "is reapply: such watermarks are stale and the events are "
                "applied (see tailor_offset_resets_total); if this log's "
                "events were applied already (offsets kept by a migration), "
                "set events.on_offset_reset: skip", topic, partition, why);
}

/* An event at or below its watermark: whether that watermark is stale
 * (offsets went backwards) and the event is to be applied after all
 * (events.on_offset_reset: reapply).  Only this rare path looks at the
 * partition's end, which the consumer already knows: no request. */
int tl_pipeline_reset_check(tl_pipeline *p, tl_wm *wm,
                             const rd_kafka_message_t *m)
{
    if (wm->kept) return 0;
    const char *topic = rd_kafka_topic_name(m->rkt);
    int64_t end = tl_source_end(p->src, topic, m->partition);
    if (!tl_wm_stale(wm, end)) return 0;
    report_reset(p, topic, m->partition, wm, end);
    wm->foreign = 0;
    if (p->cfg->on_offset_reset == TL_RESET_SKIP) {
        wm->kept = 1;
        return 0;
    }
    wm->applied = -1; /* stored stays: the flush's compare-and-set */
    return 1;
}

/* A mock cluster this process hosts (tailord --embedded) is named after
 * its address, which the next run may repeat: its id is made this run's
 * own, the same for every pipeline of the process.  A mock in another
 * process (the tests') keeps its id, which its clients share. */
static char *own_id(const tl_pipeline *p, const char *id)
{
    int64_t born = tl_kafka_mock_born(p->brokers);
    if (!born) return tl_xstrdup(id);
    char buf[160];
    snprintf(buf, sizeof buf, "%s@%ld.%" PRId64, id, (long)getpid(), born);
    return tl_xstrdup(buf);
}

/* The Kafka cluster's id, written with the vectors (_k): watermarks
 * written under another cluster belong to another log. */
void tl_pipeline_reset_learn_cluster(tl_pipeline *p)
{
    const char *id = tl_source_cluster_id(p->src, 10000);
    if (!id || !*id) {
        tl_info("pipeline", "the Kafka cluster did not tell its id: stored "
                "watermarks of another cluster are found only when beyond "
                "a partition's end");
        return;
    }
    free(p->cluster_id);
    p->cluster_id = own_id(p, id);
    /* The hash a loaded vector's _k is compared with: of the id written. */
    p->cluster = tl_fnv1a(TL_FNV_OFFSET, p->cluster_id, strlen(p->cluster_id));
    p->layout.cluster_id = p->cluster_id;
    tl_info("pipeline", "kafka cluster id %s", p->cluster_id);
}
