/*
 * source — the Kafka consumer: group membership, batch polling, rebalance
 * handling and manual offset commits.
 *
 * Offsets are committed only by tl_source_commit, which the pipeline calls
 * after the batch's triggers are delivered and its vectors are flushed
 * (enable.auto.commit=false).  Before partitions are revoked (or lost), the
 * source calls the pipeline's `drain` callback, so the batch polled so far is
 * finished and committed while this instance still owns the partitions.
 *
 * Ownership: messages in a tl_batch belong to the batch until
 * tl_batch_clear destroys them.
 */
#ifndef TL_SOURCE_H
#define TL_SOURCE_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "metrics.h"

/* Consumer lag of one assigned partition: high watermark minus committed
 * offset, as librdkafka's statistics report it. */
typedef struct tl_lag {
    char *topic;
    int32_t partition;
    int64_t lag;
} tl_lag;

/*
 * What the consumer knows about its group and brokers, for /readyz and
 * /metrics on another thread.  The gauges are atomics; the lag table is
 * replaced under `lock` once per statistics interval (1 s), never per
 * message.  Initialize with tl_kafka_health_init, release with
 * tl_kafka_health_destroy (owner: the pipeline's tl_stats).
 */
typedef struct tl_kafka_health {
    tl_gauge assigned;    /* partitions assigned; -1 before the first
                           * assignment and while a revocation is handled */
    tl_counter rebalances; /* assignments and revocations */
    tl_counter commit_errors; /* offset commits that failed, either way */
    tl_gauge brokers_up;  /* brokers in state UP at the last statistics;
                           * -1 before the first */
    pthread_mutex_t lock;
    tl_lag *lag;
    size_t nlag;
} tl_kafka_health;

void tl_kafka_health_init(tl_kafka_health *h);
void tl_kafka_health_destroy(tl_kafka_health *h);
/* Calls fn for each partition's lag, under the lock. */
void tl_kafka_health_lag(tl_kafka_health *h,
                         void (*fn)(void *ud, const tl_lag *l), void *ud);

typedef struct tl_batch {
    rd_kafka_message_t **msgs;
    size_t n, cap;
} tl_batch;

void tl_batch_clear(tl_batch *b);
void tl_batch_free(tl_batch *b);

typedef struct tl_source tl_source;

/* drain(ud) is called from inside tl_source_poll / tl_source_close, before a
 * revocation takes effect.  health (borrowed, outlives the source) is kept
 * current from the rebalance and statistics callbacks. */
tl_source *tl_source_new(const tl_config *cfg, const char *brokers,
                         void (*drain)(void *ud), void *ud,
                         tl_kafka_health *health, char *err, size_t errsz);

/* Appends messages to b until it holds max or timeout_ms passed (returns
 * early when *stop is set).  Consumer errors are logged, not returned. */
void tl_source_poll(tl_source *s, tl_batch *b, size_t max, int timeout_ms,
                    volatile sig_atomic_t *stop);

/* Commits the offset after the last message of each partition in b.
 * Synchronous: TL_OK, or TL_ERR_IO with the broker's reason.  Asynchronous
 * (async != 0): returns TL_OK once the request is queued; its result comes
 * back through a later poll, which logs and counts a failure.  Either way a
 * failed commit only means the batch is consumed again after a restart or
 * rebalance, which the watermarks make harmless; the pipeline commits
 * asynchronously between batches, so that no batch waits for the group
 * coordinator, and synchronously before partitions are given up.  Failures
 * count in health->commit_errors. */
int tl_source_commit(tl_source *s, const tl_batch *b, int async, char *err,
                     size_t errsz);

/* Commits the offsets of the last asynchronous commit again, synchronously,
 * so that they are with the coordinator when this returns (before
 * partitions are given up or the consumer closes).  TL_OK when there is
 * nothing to do. */
int tl_source_sync(tl_source *s, char *err, size_t errsz);

/* Backpressure while the batch cannot be finished (Redis down): pause
 * every assigned partition, then keep serving the group (heartbeats,
 * rebalances) with tl_source_idle, which polls for up to ms and appends any
 * message that was already on its way to `held` (to be processed, in order,
 * with the next batch).  tl_source_resume undoes the pause. */
void tl_source_pause(tl_source *s);
void tl_source_resume(tl_source *s);
void tl_source_idle(tl_source *s, tl_batch *held, int ms);

/* Number of partitions currently assigned. */
int tl_source_assigned(tl_source *s);

/* Leaves the group (revokes, so drain runs) and destroys the consumer. */
void tl_source_free(tl_source *s);

#endif
