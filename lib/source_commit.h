/*
 * source_commit — the consumer's offset commits: sent asynchronously, their
 * answers read by the loop, failed ones sent again.
 *
 * A commit is handed to librdkafka (rd_kafka_commit_queue) and the loop
 * goes on; the answer arrives as an event on a queue of this module's own,
 * which only the loop reads (tl_commits_serve, tl_commits_wait): no
 * callback runs, nothing is acted on from librdkafka's threads.  Per
 * assigned partition it keeps the newest offset handed over and what the
 * broker holds as far as the answers tell, so a newer offset supersedes an
 * older one, an answer for an older request never undoes a newer one, and
 * a partition whose newest request failed is sent again (with the next
 * commit, or at most every 200 ms) until it goes through or the partition
 * is revoked — a refusal for an old generation (ILLEGAL_GENERATION,
 * UNKNOWN_MEMBER_ID) included: a cooperative rebalance leaves a member the
 * partitions it is not asked to revoke, and the broker takes a commit only
 * from the current generation's member.  Only a consumer closing or failed
 * (__DESTROY, __FATAL) ends the re-sending.
 *
 * Ownership: the tl_commits belongs to the source; rk and health are
 * borrowed and outlive it.  Only the pipeline thread calls these.
 */
#ifndef TL_SOURCE_COMMIT_H
#define TL_SOURCE_COMMIT_H

#include <librdkafka/rdkafka.h>

#include "batch.h"
#include "kafka_health.h"

typedef struct tl_commits tl_commits;

tl_commits *tl_commits_new(rd_kafka_t *rk, tl_kafka_health *health);

/* Sends, without waiting, the offset after the last message of each
 * partition in b, together with the partitions whose last commit failed. */
void tl_commits_send(tl_commits *c, const tl_batch *b);

/* Takes the answers that arrived (no wait): failures are counted in
 * health->commit_errors and logged once per kind of error until commits go
 * through again; failed partitions still assigned are sent again, at most
 * every 200 ms. */
void tl_commits_serve(tl_commits *c);

/* Waits, at most timeout_ms, until every partition's newest offset is
 * committed, sending failed ones again meanwhile: TL_OK, or TL_ERR_IO
 * (logged) when some were not. */
int tl_commits_wait(tl_commits *c, int timeout_ms);

/* Revoked partitions: nothing more is sent for them, and answers still on
 * their way are ignored (their next owner may have committed further). */
void tl_commits_forget(tl_commits *c,
                       const rd_kafka_topic_partition_list_t *parts);

/* Before the consumer closes (the answers' queue is released). */
void tl_commits_free(tl_commits *c);

#endif
