/*
 * batch — messages taken from the consumer, in the order they came.
 *
 * Ownership: a batch owns its messages until tl_batch_clear destroys them
 * (or tl_batch_move hands them to another batch); tl_batch_free also frees
 * the array.  Start from {0}.
 */
#ifndef TL_BATCH_H
#define TL_BATCH_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "common.h"

typedef struct tl_batch {
    rd_kafka_message_t **msgs;
    size_t n, cap;
} tl_batch;

void tl_batch_clear(tl_batch *b);
void tl_batch_free(tl_batch *b);
/* Appends m (the batch takes it). */
void tl_batch_push(tl_batch *b, rd_kafka_message_t *m);
/* Appends every message of src to dst, in order; src is left empty. */
void tl_batch_move(tl_batch *dst, tl_batch *src);

#endif
