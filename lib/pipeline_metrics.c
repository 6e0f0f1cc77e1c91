/* The pipeline's counters as Prometheus text, and its readiness: read from
 * another thread (the HTTP endpoint's) while the loop runs. */
#include "pipeline_int.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

const tl_stats *tl_pipeline_stats(const tl_pipeline *p) { return &p->stats; }

static void lag_sample(void *ud, const tl_lag *l)
{
    char part[16];
    snprintf(part, sizeof part, "%" PRId32, l->partition);
    const char *lb[] = {"topic", l->topic, "partition", part, NULL};
    tl_prom_sample_u64(ud, "tailor_consumer_lag", lb, (uint64_t)l->lag);
}

/* A counter family by reason, from index 1 (0 means "none"). */
static void by_reason(tl_buf *b, const char *name, const char *help,
                      const char *const *reasons, const tl_counter *c, int n)
{
    tl_prom_family(b, name, "counter", help);
    for (int i = 1; i < n; i++) {
        const char *lb[] = {"reason", reasons[i], NULL};
        tl_prom_sample_u64(b, name, lb, tl_counter_get(&c[i]));
    }
}

uint64_t tl_pipeline_dead_letters(const tl_stats *s)
{
    uint64_t n = 0;
    for (int i = 1; i < TL_REJECT__COUNT; i++)
        n += tl_counter_get(&s->dead_letters[i]);
    return n;
}

/* Events, dead letters and triggers. */
static void events_metrics(tl_buf *b, tl_stats *s, const tl_config *cfg)
{
    uint64_t dead = tl_pipeline_dead_letters(s);
    tl_prom_one_u64(b, "tailor_events_consumed_total", "counter",
                    "Input messages taken into a batch (a batch abandoned or "
                    "retried after a restart counts again).",
                    tl_counter_get(&s->events));
    tl_prom_family(b, "tailor_events_total", "counter",
                   "Input events by result: applied to a vector, duplicate "
                   "(at or below the watermark, a no-op), dead_letter.");
    const char *applied[] = {"result", "applied", NULL};
    const char *dup[] = {"result", "duplicate", NULL};
    const char *dl[] = {"result", "dead_letter", NULL};
    tl_prom_sample_u64(b, "tailor_events_total", applied,
                       tl_counter_get(&s->applied));
    tl_prom_sample_u64(b, "tailor_events_total", dup,
                       tl_counter_get(&s->duplicates));
    tl_prom_sample_u64(b, "tailor_events_total", dl, dead);
    tl_prom_family(b, "tailor_offset_resets_total", "counter",
                   "Stored watermarks found stale, by partition: the "
                   "partition's offsets went backwards (topic recreated, "
                   "broker data lost, another cluster); what became of the "
                   "events: events.on_offset_reset.");
    size_t nr = atomic_load_explicit(&s->nresets, memory_order_acquire);
    for (size_t i = 0; i < nr; i++) {
        char part[16];
        snprintf(part, sizeof part, "%" PRId32, s->resets[i].partition);
        const char *lb[] = {"topic", s->resets[i].topic, "partition", part,
                            NULL};
        tl_prom_sample_u64(b, "tailor_offset_resets_total", lb,
                           tl_counter_get(&s->resets[i].n));
    }
    const char *rejects[TL_REJECT__COUNT];
    for (int i = 1; i < TL_REJECT__COUNT; i++)
        rejects[i] = tl_reject_name((tl_reject)i);
    by_reason(b, "tailor_dead_letters_total",
              "Events sent to the dead-letter topic, by reason.", rejects,
              s->dead_letters, TL_REJECT__COUNT);
    tl_prom_family(b, "tailor_triggers_total", "counter",
                   "Triggers produced, by rule (holdouts included).");
    for (size_t i = 0; i < cfg->nrules; i++) {
        const char *lb[] = {"rule", cfg->rules[i].name, "rule_version",
                            cfg->rules[i].version, NULL};
        tl_prom_sample_u64(b, "tailor_triggers_total", lb,
                           tl_counter_get(&s->rule_triggers[i]));
    }
    tl_prom_one_u64(b, "tailor_trigger_holdouts_total", "counter",
                    "Triggers produced for a control group (holdout).",
                    tl_counter_get(&s->holdouts));
    static const char *const sup[TL_SUP__COUNT] = {
        [TL_SUP_COOLDOWN] = "cooldown", [TL_SUP_QUIET_HOURS] = "quiet_hours",
        [TL_SUP_CAP] = "cap", [TL_SUP_GROUP] = "group"};
    by_reason(b, "tailor_triggers_suppressed_total",
              "Rule matches not emitted, by reason.", sup, s->suppressed,
              TL_SUP__COUNT);
}

/* Batches, Redis and offset commits. */
static void store_metrics(tl_buf *b, tl_stats *s)
{
    tl_prom_one_u64(b, "tailor_batches_total", "counter",
                    "Batches committed or abandoned.",
                    tl_counter_get(&s->batches));
    tl_prom_one_u64(b, "tailor_batches_abandoned_total", "counter",
                    "Batches given up because their partitions were revoked "
                    "while they could not finish (their events are taken "
                    "again).",
                    tl_counter_get(&s->abandoned));
    tl_prom_family(b, "tailor_batch_duration_seconds", "histogram",
                   "From decoding a batch to the end of its stages (a "
                   "flush it waited for included).");
    tl_prom_histogram(b, "tailor_batch_duration_seconds", NULL,
                      &s->batch_seconds);
    tl_prom_family(b, "tailor_redis_duration_seconds", "histogram",
                   "Redis pipelined round trips (failed attempts included).");
    const char *load[] = {"op", "load", NULL}, *flush[] = {"op", "flush", NULL};
    tl_prom_histogram(b, "tailor_redis_duration_seconds", load,
                      &s->redis_load_seconds);
    tl_prom_histogram(b, "tailor_redis_duration_seconds", flush,
                      &s->redis_flush_seconds);
    tl_prom_one_u64(b, "tailor_vectors_written_total", "counter",
                    "Customer vectors written to Redis.",
                    tl_counter_get(&s->flushed));
    tl_prom_family(b, "tailor_vector_write_errors_total", "counter",
                   "Vector writes not done, by reason: fenced (another "
                   "instance owns the partition), refused (Redis error "
                   "reply).");
    const char *fen[] = {"reason", "fenced", NULL};
    const char *ref[] = {"reason", "refused", NULL};
    tl_prom_sample_u64(b, "tailor_vector_write_errors_total", fen,
                       tl_counter_get(&s->fenced));
    tl_prom_sample_u64(b, "tailor_vector_write_errors_total", ref,
                       tl_counter_get(&s->store_errors));
    tl_prom_one_u64(b, "tailor_redis_lost_vectors_total", "counter",
                    "Customers whose key Redis lost (restarted without its "
                    "data, evicted) while their vector was cached: written "
                    "back from the cache.",
                    tl_counter_get(&s->redis_lost));
    tl_prom_one_u64(b, "tailor_redis_gone_vectors_total", "counter",
                    "Vector writes refused because the key was gone with no "
                    "loss by Redis seen (erased, expired): vector dropped.",
                    tl_counter_get(&s->redis_gone));
    tl_prom_one_u64(b, "tailor_redis_restarts_total", "counter",
                    "Redis restarts seen (a new run_id on reconnecting).",
                    tl_counter_get(&s->redis_restarts));
    tl_prom_one_u64(b, "tailor_redis_evicted_keys_total", "counter",
                    "Keys Redis evicted, as seen when a key was found gone.",
                    tl_counter_get(&s->redis_evicted));
    tl_prom_one_u64(b, "tailor_redis_round_trips_total", "counter",
                    "Round trips to Redis (a pipelined batch to one node is "
                    "one).",
                    tl_counter_get(&s->redis_round_trips));
    tl_prom_one_u64(b, "tailor_redis_commands_total", "counter",
                    "Commands sent to Redis.",
                    tl_counter_get(&s->redis_commands));
    tl_prom_one_u64(b, "tailor_state_errors_total", "counter",
                    "Malformed stored feature state (that feature restarted).",
                    tl_counter_get(&s->state_errors));
    tl_prom_one_u64(b, "tailor_commit_errors_total", "counter",
                    "Offset commit requests that failed (sent again while "
                    "their partitions stay assigned; else re-read and "
                    "skipped).",
                    tl_counter_get(&s->kafka.commit_errors));
}

/* The cache, Kafka's view and the running configuration. */
static void state_metrics(tl_buf *b, tl_stats *s, const tl_config *cfg)
{
    uint64_t hits = tl_counter_get(&s->cache_hits);
    uint64_t misses = tl_counter_get(&s->cache_misses);
    tl_prom_one_u64(b, "tailor_cache_customers", "gauge",
                    "Customer vectors held in memory.",
                    (uint64_t)tl_gauge_get(&s->cache_size));
    tl_prom_family(b, "tailor_cache_lookups_total", "counter",
                   "Vector lookups of decoded events: hit (in memory) or "
                   "miss (loaded from Redis).");
    const char *hit[] = {"result", "hit", NULL}, *miss[] = {"result", "miss", NULL};
    tl_prom_sample_u64(b, "tailor_cache_lookups_total", hit, hits);
    tl_prom_sample_u64(b, "tailor_cache_lookups_total", miss, misses);
    tl_prom_one(b, "tailor_cache_hit_ratio", "gauge",
                "Hits over lookups since start (0 before the first).",
                hits + misses ? (double)hits / (double)(hits + misses) : 0);

    tl_kafka_health *k = &s->kafka;
    tl_prom_family(b, "tailor_consumer_lag", "gauge",
                   "Messages behind the high watermark (committed offset), "
                   "per assigned partition, as of librdkafka's last "
                   "statistics (1 s); while paused, of the leaders' "
                   "end offsets.");
    tl_kafka_health_lag(k, lag_sample, b);
    tl_prom_one_u64(b, "tailor_rebalances_total", "counter",
                    "Partition assignments and revocations.",
                    tl_counter_get(&k->rebalances));
    tl_prom_one(b, "tailor_assigned_partitions", "gauge",
                "Partitions assigned (-1: none yet, or being revoked).",
                (double)tl_gauge_get(&k->assigned));
    tl_prom_one(b, "tailor_kafka_brokers_up", "gauge",
                "Brokers connected (-1: not known yet).",
                (double)tl_gauge_get(&k->brokers_up));
    tl_prom_one_u64(b, "tailor_redis_up", "gauge",
                    "0 while a Redis outage holds the pipeline.",
                    tl_gauge_get(&s->redis_down) ? 0 : 1);
    tl_prom_one_u64(b, "tailor_paused", "gauge",
                    "1 while the input partitions are paused (backpressure).",
                    (uint64_t)tl_gauge_get(&s->paused));
    tl_prom_family(b, "tailor_config_info", "gauge",
                   "The running configuration: its file and a hash of its "
                   "text (config_version).");
    const char *ci[] = {"path", cfg->path, "config_version", cfg->version,
                        NULL};
    tl_prom_sample_u64(b, "tailor_config_info", ci, 1);
}

void tl_pipeline_metrics(const tl_pipeline *cp, tl_buf *b)
{
    /* Only atomics, the lag table (under its lock) and, under obs_lock, the
     * config and per-rule counters a reload may swap are read here. */
    tl_pipeline *p = (tl_pipeline *)cp;
    pthread_mutex_lock(&p->obs_lock);
    events_metrics(b, &p->stats, p->cfg);
    store_metrics(b, &p->stats);
    state_metrics(b, &p->stats, p->cfg);
    pthread_mutex_unlock(&p->obs_lock);
}

/* Ready, but Redis lost data since start: said beside "ready" (tailord
 * works on, so a probe must not fail), with what was seen. */
static void loss_note(tl_stats *s, char *note, size_t notesz)
{
    uint64_t restarts = tl_counter_get(&s->redis_restarts),
             evicted = tl_counter_get(&s->redis_evicted),
             lost = tl_counter_get(&s->redis_lost);
    note[0] = '\0';
    if (!restarts && !evicted && !lost) return;
    snprintf(note, notesz,
             "redis lost data since start: %" PRIu64 " restarts without "
             "their data, %" PRIu64 " keys evicted, %" PRIu64 " cached "
             "vectors written back (see tailor_redis_* in /metrics)",
             restarts, evicted, lost);
}

int tl_pipeline_ready(const tl_pipeline *cp, char *why, size_t whysz)
{
    tl_pipeline *p = (tl_pipeline *)cp;
    const char *no = NULL;
    if (tl_gauge_get(&p->stats.redis_down)) {
        /* The cause the loop set before the gauge (set_redis_down). */
        pthread_mutex_lock(&p->obs_lock);
        snprintf(why, whysz, "%s",
                 p->redis_why[0] ? p->redis_why : "redis unreachable");
        pthread_mutex_unlock(&p->obs_lock);
        return 0;
    }
    if (!tl_gauge_get(&p->stats.running)) no = "not running";
    else if (tl_gauge_get(&p->stats.kafka.assigned) < 0)
        no = "no partition assignment";
    else if (tl_gauge_get(&p->stats.kafka.brokers_up) <= 0)
        no = "kafka brokers unreachable";
    if (no) {
        snprintf(why, whysz, "%s", no);
        return 0;
    }
    loss_note(&p->stats, why, whysz);
    return 1;
}

void tl_pipeline_log_progress(tl_pipeline *p, int64_t *last_ms,
                              uint64_t *last_n)
{
    int64_t now = tl_now_mono_ms();
    if (now - *last_ms < 10000) return;
    const tl_stats *s = &p->stats;
    double rate = (double)(s->events - *last_n) * 1000.0 / (double)(now - *last_ms);
    tl_info("pipeline",
            "%" PRIu64 " events (%.0f/s), %" PRIu64 " triggers, %" PRIu64
            " dead letters, %zu customers cached",
            s->events, rate, s->triggers,
            tl_pipeline_dead_letters(s), tl_cache_size(p->cache));
    *last_ms = now;
    *last_n = s->events;
}
