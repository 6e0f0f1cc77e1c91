#include "batch.h"

void tl_batch_clear(tl_batch *b)
{
    for (size_t i = 0; i < b->n; i++) rd_kafka_message_destroy(b->msgs[i]);
    b->n = 0;
}

void tl_batch_free(tl_batch *b)
{
    tl_batch_clear(b);
    free(b->msgs);
    b->msgs = NULL;
    b->cap = 0;
}

void tl_batch_push(tl_batch *b, rd_kafka_message_t *m)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 1024;
        b->msgs = tl_xrealloc(b->msgs, b->cap * sizeof *b->msgs);
    }
    b->msgs[b->n++] = m;
}

void tl_batch_move(tl_batch *dst, tl_batch *src)
{
    for (size_t i = 0; i < src->n; i++) tl_batch_push(dst, src->msgs[i]);
    src->n = 0;
}
