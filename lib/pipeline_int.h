/*
 * The pipeline's own state, shared by lib/pipeline.c (the loop, pipeline
 * thread) and lib/pipeline_metrics.c (what other threads may read: the
 * counters in `stats`, and cfg under obs_lock).  Not a public header.
 */
#ifndef TL_PIPELINE_INT_H
#define TL_PIPELINE_INT_H

#include <pthread.h>

#include "cache.h"
#include "flusher.h"
#include "pipeline.h"
#include "sink.h"
#include "source.h"
#include "store.h"
#include "trigger.h"

/* One input message of the batch: its event and the customer's vector
 * (NULL: dead-lettered at decode). */
typedef struct tl_item {
    tl_event ev;
    tl_vec *vec;
} tl_item;

struct tl_pipeline {
    const tl_config *cfg;
    tl_config *owned;       /* cfg when it came from a reload */
    tl_config *pending;     /* queued by tl_pipeline_reload */
    tl_event_decoder *pending_dec;
    void (*tick)(void *ud); /* observation only: systemd, watchdog */
    void *tick_ud;
    void (*boundary)(void *ud); /* between batches: reload requests */
    void *boundary_ud;
    /* Called after a reload swapped the config in, before the old one is
     * freed (tl_pipeline_set_config_hook). */
    void (*on_config)(void *ud, const tl_config *cfg);
    void *on_config_ud;
    /* Held by tl_pipeline_metrics and tl_pipeline_ready (other threads),
     * by apply_reload while it swaps cfg and the per-rule counters, and by
     * the loop when the cause of a Redis outage changes: a reload is
     * rare, a scrape about once a second, an outage's cause rarer still. */
    pthread_mutex_t obs_lock;
    char redis_why[64];     /* under obs_lock: the cause while redis_down */
    tl_layout layout;
    tl_event_decoder *dec;
    tl_trigger_codec *tcodec;
    tl_store *store;        /* loads, and retried flushes */
    tl_source *src;
    tl_sink *sink;
    tl_cache *cache;
    tl_flusher *flusher;    /* the last flush, maybe in flight */
    /* The flusher's job is rendered but not handed over: it waits for the
     * triggers and dead letters of its batches (the sink's mark). */
    int unsent;

    tl_batch batch;         /* the batch being filled, then processed */
    tl_batch held;          /* messages that arrived while paused */
    tl_batch spare;         /* for requeueing an abandoned batch */
    /* Messages applied whose flush redis.flush_interval holds back: their
     * vectors are on the dirty list, and their offsets are committed with
     * the flush that writes them. */
    tl_batch deferred;
    int64_t last_flush_ms;  /* monotonic: the last flush handed over */
    tl_arena arena;         /* everything that lives for one batch */
    tl_item *items;
    size_t items_cap;
    tl_vec **misses, **dirty;
    const char **unloaded;  /* per miss: why its stored vector cannot be
                             * used (batch arena); NULL: loaded */
    size_t nmiss, ndirty, vec_cap;
    tl_firing *firings;     /* room for every rule */
    tl_suppress *why;

    volatile sig_atomic_t *stop;
    int64_t stop_deadline;  /* monotonic ms: shutdown_timeout after SIGTERM */
    int in_batch;           /* a batch is being processed: waits pause input */
    int abandon;            /* a wait gave up for a recorded revocation */
    int64_t deliver_until;  /* monotonic ms: a delivery wait that a recorded
                             * revocation lets go on until then */
    int paused;             /* partitions paused while redis is down */
    int failed;
    char fail_msg[TL_ERRSZ];
    int redis_down;
    uint32_t evictions;     /* times evicted_keys was seen to grow */
    int64_t evicted_seen;   /* evicted_keys at the last look, -1: unknown */
    char *brokers;
    char *cluster_id;       /* the Kafka cluster's id (_k), NULL: unknown */
    uint64_t cluster;       /* its tl_fnv1a, 0: unknown */
    tl_stats stats;
};


/* pipeline.c: room for `need` vectors in the batch's lists; a vector out
 * of the cache and the batch's dirty list (its write was refused). */
void tl_pipeline_grow_vecs(tl_pipeline *p, size_t need);
void tl_pipeline_drop_vec(tl_pipeline *p, tl_vec *v);

/* pipeline_loss.c: the loss epoch a vector read or written now is stamped
 * with; after a flush job's results, evictions looked for when a key was
 * gone; a gone key's vector written back (returns 1: Redis lost it) or
 * dropped (0: erased or expired); at start, an evicting maxmemory-policy
 * refused (TL_ERR_CONFIG) unless redis.allow_eviction. */
uint32_t tl_pipeline_loss_epoch(const tl_pipeline *p);
void tl_pipeline_loss_look(tl_pipeline *p, const tl_flush_job *j);
int tl_pipeline_loss_gone(tl_pipeline *p, tl_vec *v, uint32_t epoch);
int tl_pipeline_loss_check_policy(tl_pipeline *p, char *err, size_t errsz);


/* pipeline_metrics.c: the loop's progress line, at most every 10 s (the
 * events, their rate since the last line, triggers, dead letters, the
 * cache's size). */
void tl_pipeline_log_progress(tl_pipeline *p, int64_t *last_ms,
                              uint64_t *last_n);

/* pipeline_reset.c: an event at or below its watermark, wm: 1 when that
 * watermark is stale (offsets went backwards: said once per partition,
 * counted) and events.on_offset_reset says to apply the event; the Kafka
 * cluster's id learnt at start (p->cluster_id, p->cluster). */
int tl_pipeline_reset_check(tl_pipeline *p, tl_wm *wm,
                            const rd_kafka_message_t *m);
void tl_pipeline_reset_learn_cluster(tl_pipeline *p);

#endif
