/*
 * source — the Kafka consumer: group membership, batch polling, rebalance
 * bookkeeping and manual offset commits.
 *
 * Offsets are committed only by tl_source_commit, which the pipeline calls
 * after the batch's triggers are delivered and its vectors are flushed
 * (enable.auto.commit=false), asynchronously (lib/source_commit.c): the
 * loop reads the answers and sends failed ones again, and waits for them
 * before partitions are given up.  The rebalance callback runs
 * inside the consumer's poll and only records: an assignment is taken at
 * once, a revocation is kept (tl_source_revoking) until the pipeline's
 * loop, at its next safe point, has finished and committed what it owes
 * those partitions and calls tl_source_revoke.  Polling returns early as
 * soon as a revocation is recorded.
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

#include "batch.h"
#include "kafka.h"
#include "kafka_health.h"
#include "metrics.h"

typedef struct tl_source tl_source;

/* What the consumer needs (borrowed, only during tl_source_new). */
typedef struct tl_source_opts {
    tl_kafka_opts kafka;
    const char *group;
    char *const *inputs;
    size_t ninputs;
} tl_source_opts;

/* health (borrowed, outlives the source) is kept current from the
 * rebalance and statistics callbacks. */
tl_source *tl_source_new(const tl_source_opts *o, tl_kafka_health *health,
                         char *err, size_t errsz);

/* Appends messages to b until it holds max or timeout_ms passed; returns
 * early when *stop is set or a revocation was recorded.  Consumer errors
 * are logged, not returned. */
void tl_source_poll(tl_source *s, tl_batch *b, size_t max, int timeout_ms,
                    volatile sig_atomic_t *stop);

/* A recorded revocation: whether one is pending, whether (topic,
 * partition) is part of it, dropping its partitions' messages from b (the
 * others keep their order), and carrying it out (the partitions are given
 * up; call it once nothing more is owed to them). */
int tl_source_revoking(const tl_source *s);
int tl_source_is_revoked(const tl_source *s, const char *topic,
                         int32_t partition);
void tl_source_drop_revoked(tl_source *s, tl_batch *b);
void tl_source_revoke(tl_source *s);

/* Commits the offset after the last message of each partition in b,
 * without waiting, together with offsets whose commit failed before
 * (tl_commits_send).  tl_source_commit_serve takes the answers that
 * arrived and sends failed ones again (at most every 200 ms), until they
 * go through or their partitions are revoked; failures are counted in
 * health->commit_errors and logged once per kind of error.  A restart or
 * rebalance in between only means events consumed again, which the
 * watermarks make harmless.  tl_source_commit_wait waits at most
 * timeout_ms until every offset handed over is committed (before
 * partitions are given up): TL_OK, or TL_ERR_IO, logged. */
void tl_source_commit(tl_source *s, const tl_batch *b);
void tl_source_commit_serve(tl_source *s);
int tl_source_commit_wait(tl_source *s, int timeout_ms);

/* 1 with the reason in err when librdkafka raised a fatal error on the
 * consumer (the consumer cannot go on; the pipeline stops). */
int tl_source_fatal(tl_source *s, char *err, size_t errsz);

/* Backpressure while the batch cannot be finished (Redis down): pause
 * every assigned partition, then keep serving the group (heartbeats,
 * rebalances) with tl_source_idle, which polls for up to ms and appends any
 * message that was already on its way to `held` (to be processed, in order,
 * with the next batch).  While paused it also asks the leaders for the
 * partitions' end offsets, once a second, within the ms (blocking at most
 * about 500 ms): librdkafka's own end offset stops with its fetches, and
 * the lag in health would freeze.  tl_source_resume undoes the pause. */
void tl_source_pause(tl_source *s);
void tl_source_resume(tl_source *s);
void tl_source_idle(tl_source *s, tl_batch *held, int ms);

/* The id of the Kafka cluster (a metadata request, once, at most
 * timeout_ms), for telling whether stored watermarks were written under
 * this cluster; NULL when the broker does not say or did not answer in
 * time.  Valid until tl_source_free. */
const char *tl_source_cluster_id(tl_source *s, int timeout_ms);

/* The end offset of (topic, partition) that the consumer last learnt from
 * a fetch (no request: cheap enough for the batch loop): the offset the
 * next message will get; -1 while unknown. */
int64_t tl_source_end(tl_source *s, const char *topic, int32_t partition);

/* Number of partitions currently assigned. */
int tl_source_assigned(tl_source *s);

/* Leaves the group (what is assigned is given up at once: commit first)
 * and destroys the consumer. */
void tl_source_free(tl_source *s);

#endif
