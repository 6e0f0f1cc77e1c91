/*
 * sink — the Kafka producer for triggers and dead letters.
 *
 * Idempotent producer (enable.idempotence=true: librdkafka retries without
 * duplicates or reordering).  The pipeline produces a batch, then calls
 * tl_sink_wait, which returns only when every message of the batch is
 * acknowledged by the broker.  A message that librdkafka finally gives up on
 * (delivery.timeout.ms) is produced again from the sink's own copy, with
 * backoff, until it is delivered or the caller asks to stop: a batch's
 * offsets are never committed while one of its triggers is undelivered.
 *
 * Ownership: tl_sink_produce copies key, value and headers (into a per-batch
 * arena reset by tl_sink_wait after success).
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

/* Waits until every message queued since the last successful wait is
 * delivered (see above).  Returns TL_OK, or TL_ERR_IO if give_up said so,
 * or a fatal producer error occurred, before that. */
int tl_sink_wait(tl_sink *s, char *err, size_t errsz);

/* 1 with the reason in err when librdkafka raised a fatal error on the
 * producer (idempotence can no longer be guaranteed; the pipeline stops). */
int tl_sink_fatal(tl_sink *s, char *err, size_t errsz);

#endif
