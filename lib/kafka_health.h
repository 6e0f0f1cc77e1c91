/*
 * kafka_health — what the consumer knows about its group and brokers, kept
 * by the source's callbacks and read by /readyz and /metrics on another
 * thread.
 */
#ifndef TL_KAFKA_HEALTH_H
#define TL_KAFKA_HEALTH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

/* Consumer lag of one assigned partition: high watermark minus committed
 * offset, as librdkafka's statistics report it, or, while the partition is
 * paused and librdkafka fetches nothing, with the end offset asked of its
 * leader (source.c). */
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
/* Replaces the lag table with lag[0..n) (malloc'd, topics too; the health
 * takes them). */
void tl_kafka_health_set_lag(tl_kafka_health *h, tl_lag *lag, size_t n);

#endif
