/*
 * trigger — the trigger record: its deterministic id, its Avro encoding per
 * schemas/trigger.avsc, decoding (for tailorctl and tests) and JSON rendering.
 *
 * trigger_id = 16 lowercase hex digits of 64-bit FNV-1a over
 *   topic "\0" partition(decimal) "\0" offset(decimal) "\0" rule
 * so a re-consumed event yields the same id and consumers can drop duplicates.
 *
 * Ownership: a tl_trigger only borrows its strings.  Decoded triggers borrow
 * from the arena passed to tl_trigger_decode.  The codec owns its Avro schema,
 * value and output buffer; encoded bytes are valid until the next encode.
 * A schema of exactly the trigger's fields (the built-in one, any order) is
 * encoded directly into the buffer, allocating nothing once it is large
 * enough; a schema with more fields goes through Avro-C's generic value.
 */
#ifndef TL_TRIGGER_H
#define TL_TRIGGER_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "event.h"
#include "rule.h"

#define TL_TRIGGER_ID_LEN 16

typedef struct tl_trigger {
    char id[TL_TRIGGER_ID_LEN + 1];
    const char *rule;
    const char *customer_id;
    int64_t ts;                /* the cause event's ts (epoch ms) */
    const char *cause_event_id;
    tl_channel channel;
    const char *message;
    const tl_attr *attrs;      /* rendered emit attributes */
    size_t nattrs;
    const tl_attr *explain;    /* every feature and event field the rule's
                                * `if` read -> its value as text */
    size_t nexplain;
    int holdout;               /* control group: record, do not act */
} tl_trigger;

void tl_trigger_make_id(char out[TL_TRIGGER_ID_LEN + 1], const char *topic,
                        int32_t partition, int64_t offset, const char *rule);

/*
 * The trigger a firing rule makes for the event at (topic, partition,
 * offset): its id, the rule's message and attrs rendered, and `explain`:
 * every variable the rule's `if` read, named as written ("visits_30d",
 * "type", "attrs[\"tier\"]") with its value, so "why did it fire" never
 * needs the config at hand.  ctx is the evaluation context the rule saw
 * (features: its feature table, for their names).  Every string is
 * allocated in arena (or borrowed from the rule and the event).
 */
void tl_trigger_build(tl_trigger *t, const tl_firing *fi, const tl_event *ev,
                      const char *topic, int32_t partition, int64_t offset,
                      tl_eval_ctx *ctx, tl_arena *arena);

typedef struct tl_trigger_codec tl_trigger_codec;
/* schema_json NULL: the built-in schemas/trigger.avsc. */
tl_trigger_codec *tl_trigger_codec_new(const char *schema_json, char *err,
                                       size_t errsz);
void tl_trigger_codec_free(tl_trigger_codec *c);
int tl_trigger_encode(tl_trigger_codec *c, const tl_trigger *t,
                      const void **out, size_t *outlen, char *err,
                      size_t errsz);
int tl_trigger_decode(tl_trigger_codec *c, const void *buf, size_t len,
                      tl_arena *arena, tl_trigger *t, char *err, size_t errsz);

/* One-line JSON object (malloc'd, caller frees):
 * {"trigger_id":..,"rule":..,"customer_id":..,"ts":..,"cause_event_id":..,
 *  "channel":..,"message":..,"attrs":{..},"explain":{..},"holdout":false} */
char *tl_trigger_to_json(const tl_trigger *t);

#endif
