/*
 * avro_write — an Avro value into a growing memory buffer (tl_avro_write,
 * event.h), for the event encoder and the trigger codec.
 */
#include <avro.h>
#include <errno.h>

#include "event.h"

int tl_avro_write(struct avro_value *value, struct avro_writer_t_ *w,
                  void **buf, size_t *cap, size_t max, size_t *outlen)
{
    for (;;) {
        avro_writer_memory_set_dest(w, *buf, (int64_t)*cap);
        int rc = avro_value_write(w, value);
        if (rc == 0) break;
        if (rc != ENOSPC || *cap >= max) return -1;
        *cap *= 2;
        *buf = tl_xrealloc(*buf, *cap);
    }
    *outlen = (size_t)avro_writer_tell(w);
    return 0;
}
