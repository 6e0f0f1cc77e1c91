/*
 * pipeline — the batch loop of tailord and the owner of the delivery
 * contract.  One loop on the calling thread, in stages (lib/pipeline.c):
 *
 *   take requests -> poll -> decode (rejects to the dead-letter topic) ->
 *   load cache misses from Redis (one pipeline; a customer whose key cannot
 *   be read as a vector has its events dead-lettered) -> apply features and
 *   evaluate rules in offset order, skipping events at or below the
 *   vector's watermark, producing triggers -> settle the last flush without
 *   waiting (handed to the flusher thread once the broker acknowledged its
 *   triggers, finished and its offsets committed once written) -> when
 *   redis.flush_interval is due, render the next flush (one pipeline of
 *   compare-and-set scripts).
 *
 * A crash between any two steps loses nothing and double-counts nothing: see
 * docs/architecture.md.
 *
 * Nothing calls into the loop while it runs: the consumer's rebalance
 * callback records a revocation, which the loop carries out at its next
 * safe point; stop is a flag; reloads are queued by the boundary hook,
 * which the loop calls between batches only, and applied when every
 * trigger is delivered, every vector flushed and every offset committed.
 * The cache is dropped then (the state block's layout follows the features
 * and rules), so vectors are read again from Redis, where state is stored
 * by feature and rule name.
 *
 * Ownership: the pipeline borrows the cfg given to tl_pipeline_new (which
 * must outlive it) and owns configs given to tl_pipeline_reload, its Kafka
 * handles, Redis connections, flusher, cache and buffers.
 */
#ifndef TL_PIPELINE_H
#define TL_PIPELINE_H

#include <signal.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"
#include "kafka_health.h"
#include "event.h"
#include "rule.h"

/* Stale watermarks found in one partition (events.on_offset_reset). */
typedef struct tl_reset_count {
    char *topic;        /* owned by the pipeline */
    int32_t partition;
    tl_counter n;
} tl_reset_count;

/* Partitions with offset resets counted one by one; more share a line. */
#define TL_MAX_RESET_PARTS 1024

/*
 * Counters of the pipeline.  The pipeline thread is their only writer
 * (tl_counter_add: no lock, no allocation); the HTTP server's thread reads
 * them for /metrics and /readyz while the pipeline runs.
 */
typedef struct tl_stats {
    tl_counter events;        /* messages consumed */
    tl_counter applied;       /* events applied to a vector */
    tl_counter duplicates;    /* events at or below the watermark: no-ops */
    /* Stored watermarks found stale (offsets went backwards), by partition:
     * the pipeline thread fills resets[nresets] and then publishes it by
     * raising nresets (release); readers take nresets (acquire) first. */
    tl_reset_count resets[TL_MAX_RESET_PARTS];
    _Atomic size_t nresets;
    tl_counter late;          /* older than events.max_lateness allows */
    tl_counter dead_letters[TL_REJECT__COUNT]; /* by tl_reject */
    tl_counter triggers;      /* triggers produced (holdouts included) */
    tl_counter holdouts;      /* of which in a control group */
    tl_counter *rule_triggers; /* triggers produced, by rule (config order) */
    tl_counter suppressed[TL_SUP__COUNT]; /* rule candidates, by reason
                                           * (index TL_SUP_NONE unused) */
    tl_counter batches;
    tl_counter abandoned;     /* batches given up for a revocation: their
                               * events taken again */
    tl_counter flushed;       /* vectors written to Redis */
    tl_counter fenced;        /* vector writes refused by the watermark CAS */
    tl_counter state_errors;  /* malformed stored state (feature reset) */
    tl_counter store_errors;  /* vector writes the Redis server refused */
    tl_counter redis_lost;    /* customers whose key Redis lost (restarted
                                 empty, evicted): written back from cache */
    tl_counter redis_gone;    /* writes refused for a key gone with no loss
                                 seen (erased, expired): vector dropped */
    tl_counter redis_restarts; /* new run_ids seen, after each batch */
    tl_counter redis_evicted; /* growth of Redis's evicted_keys, as seen */
    tl_counter redis_round_trips; /* tl_store_round_trips, after each batch */
    tl_counter redis_commands;    /* tl_store_commands, after each batch */
    tl_counter cache_hits, cache_misses; /* vector lookups of decoded events */
    tl_gauge cache_size;      /* customers cached, after each batch */
    tl_histogram batch_seconds; /* first decode to commit, per batch */
    tl_histogram redis_load_seconds, redis_flush_seconds; /* per round trip,
                                                            * failures too */
    tl_gauge redis_down;      /* 1 while a Redis outage holds the pipeline */
    tl_gauge paused;          /* 1 while its partitions are paused */
    tl_gauge running;         /* 1 once Redis answered and the consumer
                               * joins (tl_pipeline_run), 0 after it stops */
    tl_kafka_health kafka;    /* assignment, brokers, lag (source.h) */
    int64_t first_event_ms, last_commit_ms; /* monotonic clock; pipeline
                                             * thread only */
} tl_stats;

typedef struct tl_pipeline tl_pipeline;

/* Connects to Redis and Kafka (brokers overrides cfg->brokers when not
 * NULL).  NULL with a message when something cannot be set up. */
tl_pipeline *tl_pipeline_new(const tl_config *cfg, const char *brokers,
                             char *err, size_t errsz);

/*
 * Runs until *stop is set (1: finish the current batch and stop cleanly;
 * 2 or more: stop as soon as possible without committing more).
 * Returns TL_OK after a clean stop, or an error code when the pipeline
 * had to stop without finishing a batch (err says why); the uncommitted
 * events are consumed again at the next start.
 */
int tl_pipeline_run(tl_pipeline *p, volatile sig_atomic_t *stop, char *err,
                    size_t errsz);

/* fn(ud) is called from the loop of tl_pipeline_run at least once a second
 * (between batches, and while a batch waits for Redis or Kafka, and while
 * waiting for Redis at start): for a watchdog and readiness.  It observes
 * only: it must not block, and may call nothing of the pipeline's but
 * tl_pipeline_assigned and tl_pipeline_stats. */
void tl_pipeline_set_tick(tl_pipeline *p, void (*fn)(void *ud), void *ud);

/* fn(ud) is called from the loop between batches only, never while one is
 * under way: the place to call tl_pipeline_reload. */
void tl_pipeline_set_boundary(tl_pipeline *p, void (*fn)(void *ud), void *ud);

/* fn(ud, cfg) is called from the loop when a reload has been applied, with
 * the new config, before the previous one is freed: for readers on other
 * threads (the HTTP endpoint) to switch over.  It may block briefly. */
void tl_pipeline_set_config_hook(tl_pipeline *p,
                                 void (*fn)(void *ud, const tl_config *cfg),
                                 void *ud);

/* Partitions assigned to this instance now (0 before it joined). */
int tl_pipeline_assigned(const tl_pipeline *p);

/* The config in use (the last reload applied). */
const tl_config *tl_pipeline_config(const tl_pipeline *p);

/*
 * From the boundary hook (or before tl_pipeline_run): queues `next` to
 * replace the running config once nothing is in flight
 * (replacing one queued before and not yet applied).  Refused (TL_ERR_CONFIG,
 * err says what and what to do; `next` stays the caller's) when
 * tl_config_reloadable refuses it (force: TL_RELOAD_FORCE) or its event
 * decoder cannot be built.  On TL_OK the pipeline owns next.
 */
int tl_pipeline_reload(tl_pipeline *p, tl_config *next, int force, char *err,
                       size_t errsz);

const tl_stats *tl_pipeline_stats(const tl_pipeline *p);
/* The dead letters of s, every reason together. */
uint64_t tl_pipeline_dead_letters(const tl_stats *s);

/* The pipeline's counters in the Prometheus text format (appended to b):
 * callable from another thread while tl_pipeline_run runs.  Names and the
 * meaning of each family: README.md "Metrics". */
void tl_pipeline_metrics(const tl_pipeline *p, tl_buf *b);

/* Readiness from the pipeline's point of view, from any thread: 1 when it
 * runs, holds an assignment (possibly of zero partitions: a group with more
 * members than partitions is healthy), is not held by a Redis outage and a
 * broker is up; else 0 with a short reason in why (for an outage, its
 * cause: "redis unreachable", "redis out of memory", ..., tl_store_reply_cause).
 * When ready, why is a note or "": Redis lost data since start (restarts,
 * evictions, vectors written back), which does not stop tailord. */
int tl_pipeline_ready(const tl_pipeline *p, char *why, size_t whysz);

/* Leaves the consumer group (committing what was processed) and frees. */
void tl_pipeline_free(tl_pipeline *p);

#endif
