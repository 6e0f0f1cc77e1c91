/*
 * pipeline — the batch loop of tailord and the owner of the delivery
 * contract:
 *
 *   poll batch -> decode (rejects to the dead-letter topic) -> load cache
 *   misses from Redis (one pipeline) -> apply features and evaluate rules in
 *   offset order, skipping events at or below the vector's watermark ->
 *   produce triggers -> wait for delivery -> flush changed vectors (one
 *   pipeline of compare-and-set scripts) -> commit offsets.
 *
 * A crash between any two steps loses nothing and double-counts nothing: see
 * docs/architecture.md.
 *
 * Ownership: the pipeline borrows cfg (which must outlive it) and owns its
 * Kafka handles, Redis connection, cache and buffers.
 */
#ifndef TL_PIPELINE_H
#define TL_PIPELINE_H

#include <signal.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "rule.h"

typedef struct tl_stats {
    uint64_t events;          /* messages consumed */
    uint64_t applied;         /* events applied to a vector */
    uint64_t duplicates;      /* events at or below the watermark: no-ops */
    uint64_t late;            /* older than events.max_lateness allows */
    uint64_t dead_letters[TL_REJECT__COUNT]; /* by tl_reject */
    uint64_t triggers;        /* triggers produced (holdouts included) */
    uint64_t holdouts;        /* of which in a control group */
    uint64_t suppressed[TL_SUP__COUNT]; /* rule candidates, by reason
                                         * (index TL_SUP_NONE unused) */
    uint64_t batches;
    uint64_t flushed;         /* vectors written to Redis */
    uint64_t fenced;          /* vector writes refused by the watermark CAS */
    uint64_t state_errors;    /* malformed stored state (feature reset) */
    uint64_t store_errors;    /* vector writes the Redis server refused */
    uint64_t commit_errors;
    uint64_t redis_round_trips; /* tl_store_round_trips, after each batch */
    uint64_t redis_commands;    /* tl_store_commands, after each batch */
    int64_t first_event_ms, last_commit_ms; /* monotonic clock */
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

const tl_stats *tl_pipeline_stats(const tl_pipeline *p);

/* Leaves the consumer group (committing what was processed) and frees. */
void tl_pipeline_free(tl_pipeline *p);

#endif
