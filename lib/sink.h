/*
 * sink — the Kafka producer for triggers and dead letters.
 *
 * Idempotent producer (enable.idempotence=true: librdkafka retries without
 * duplicates or reordering).  The pipeline queues a batch's messages and
 * goes on; before it stores the vectors those messages came from, it sets
 * a mark (tl_sink_mark) and asks, between batches, whether every message
 * queued before the mark is acknowledged by the broker (tl_sink_marked), or
 * waits for all of them (tl_sink_wait).  A message that librdkafka finally
 * gives up on (delivery.timeout.ms) is copied from its delivery report and
 * produced again by tl_sink_wait, with backoff, until it is delivered or
 * the caller asks to stop: offsets are never committed while a trigger of
 * theirs is undelivered.
 *
 * Ownership: tl_sink_produce copies key, value and headers (librdkafka
 * holds the copy while the message is in flight; the sink, only the copies
 * of failed messages).  Pipeline thread only: delivery reports are served
 * by the sink's calls.
 */
#ifndef TL_SINK_H
#define TL_SINK_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "common.h"
#include "kafka.h"

typedef struct tl_sink tl_sink;

typedef struct tl_header {
    const char *name;
    const char *val;
    size_t vlen;
} tl_header;

/* Creates the producer (o borrowed); asks for `output`'s metadata at
 * once, so that the first batch does not wait for it. */
tl_sink *tl_sink_new(const tl_kafka_opts *o, const char *output, char *err,
                     size_t errsz);
void tl_sink_free(tl_sink *s);

/* give_up(ud) is asked while the sink waits (a full queue, deliveries):
 * when it says 1, the wait ends with TL_ERR_IO.  A query, not a callback
 * that acts: it must not call into the sink. */
void tl_sink_set_give_up(tl_sink *s, int (*give_up)(void *ud), void *ud);

/* Queues one message (all inputs copied). Blocks, serving delivery reports,
 * while librdkafka's queue is full (until give_up says so). */
int tl_sink_produce(tl_sink *s, const char *topic, const void *key,
                    size_t klen, const void *val, size_t vlen,
                    const tl_header *hdrs, size_t nhdrs, char *err,
                    size_t errsz);

/* Waits until every message queued so far is delivered, failed ones
 * produced again (see above).  Returns TL_OK, or TL_ERR_IO if give_up said
 * so, or a fatal producer error occurred, before that. */
int tl_sink_wait(tl_sink *s, char *err, size_t errsz);

/* Marks the messages queued so far: tl_sink_marked then tells when they
 * are all delivered.  A later mark replaces the earlier one. */
void tl_sink_mark(tl_sink *s);

/* Serves the delivery reports without blocking: 1 when every message
 * queued before the mark is delivered, 0 while some are in flight, -1 when
 * some failed (tl_sink_wait produces them again). */
int tl_sink_marked(tl_sink *s);

/* 1 with the reason in err when librdkafka raised a fatal error on the
 * producer (idempotence can no longer be guaranteed; the pipeline stops). */
int tl_sink_fatal(tl_sink *s, char *err, size_t errsz);

#endif
