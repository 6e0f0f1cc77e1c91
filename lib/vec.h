/*
 * vec — a customer's vector in memory (feature and rule state block plus
 * per-partition offset watermarks), its Redis key, and the vector's
 * (de)serialization to Redis hash fields.  No I/O.  The cache of vectors
 * is cache.h.
 *
 * Redis fields of one customer hash:
 *   <feature>                 readable value (decimal text, strings verbatim)
 *   _f:<feature>              feature state, exact (tl_feature_save)
 *   _r:<rule>                 rule state (cooldown clock, edge/once memory)
 *   _c:<channel>              send ledger of a capped channel
 *   _o:<topic>:<partition>    offset watermark: the last input offset applied
 *   _ts                       the customer's newest event time (lateness)
 *   _k                        the Kafka cluster id the watermarks were
 *                             written under (a log of another cluster has
 *                             offsets of its own: see tl_vec_check_cluster)
 * Readable values are as of the customer's newest event; a feature with no
 * value then (never set, or expired by its ttl) has its fields deleted.
 */
#ifndef TL_VEC_H
#define TL_VEC_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "feature.h"
#include "rule.h"

/* What makes up a vector: the config's features and rules (and the rule
 * set's cap ledgers, when ruleset is not NULL). */
typedef struct tl_layout {
    const tl_feature *features;
    size_t nfeatures;
    const tl_rule *rules;
    size_t nrules;
    size_t block_size;
    const tl_ruleset *ruleset;
    const char *cluster_id; /* written as _k; NULL: unknown, not written */
} tl_layout;

typedef struct tl_wm {
    char *topic;        /* owned */
    int32_t partition;
    int64_t applied;    /* last offset applied to the vector, -1: none */
    int64_t stored;     /* watermark as last read from / written to Redis */
    int foreign;        /* applied was written under another cluster and no
                           event of this one has been applied since */
    int kept;           /* found stale and kept (events.on_offset_reset:
                           skip): not reported again */
} tl_wm;

typedef struct tl_vec {
    char *customer_id;  /* owned, NUL-terminated */
    size_t idlen;
    unsigned char *block;
    tl_wm *wm;
    size_t nwm;
    int64_t newest;     /* newest event ts applied (valid when has_newest) */
    int has_newest;
    int dirty;          /* changed since the last flush */
    uint64_t cluster;   /* tl_fnv1a of the _k read from Redis, 0: none */
    uint32_t epoch;     /* the pipeline's Redis loss epoch when it was last
                           read from or written to Redis (pipeline.c) */
    /* Features whose state changed since the last flush: bit i for feature
     * i < 64 (those from 64 on always count as changed).  The flush writes
     * a feature's fields only if its bit is set or its readable value
     * follows time (tl_vec_encode); all ones after a load from Redis, so a
     * stored vector is rewritten whole once per load. */
    uint64_t changed;
    /* cache bookkeeping */
    uint64_t hash;
    struct tl_vec *prev, *next; /* LRU list, most recent at the head */
} tl_vec;

/* Watermark of (topic, partition), created (applied = stored = -1) if
 * absent. */
tl_wm *tl_vec_wm(tl_vec *v, const char *topic, int32_t partition);
/* Same without creating; NULL when absent. */
const tl_wm *tl_vec_wm_find(const tl_vec *v, const char *topic,
                            int32_t partition);

/*
 * Offsets going backwards.  A watermark is stale, from a log of the
 * partition that is no more (a topic recreated, a broker that started over
 * without its data, as `tailord --embedded` does at each start), when it
 * was written under another cluster (foreign), or when it lies at or
 * beyond the partition's end offset `end` (the offset the next message
 * will get; < 0: unknown): no offset of the log as it is now reaches it.
 * Both are cheap: a flag, and an end the consumer already knows.
 */
int tl_wm_stale(const tl_wm *w, int64_t end);

/* After a load: when v's stored _k (v->cluster) names a cluster other than
 * `cluster` (both known, non-zero), marks every watermark of v foreign;
 * then v->cluster = cluster.  Returns the number marked. */
size_t tl_vec_check_cluster(tl_vec *v, uint64_t cluster);

/* Applies one event to every feature of the vector (tl_feature_apply, with
 * the event's own names), marks in v->changed those that changed, and
 * advances v->newest. */
void tl_vec_apply(tl_vec *v, const tl_layout *l, const tl_event *ev);

/* Resets the block to "never seen" and drops watermarks. */
void tl_vec_reset(tl_vec *v, const tl_layout *l);

/* Applies a field read from Redis (HGETALL) to the vector, and marks every
 * feature changed.  Readable fields
 * and fields of features or rules no longer configured are ignored.  Returns
 * TL_OK, TL_ERR_DECODE with a message for malformed internal state (the
 * feature is then reset), or TL_ERR with a message for a malformed offset
 * watermark: then the vector as a whole cannot be used. */
int tl_vec_load_field(tl_vec *v, const tl_layout *l, const char *field,
                      size_t flen, const char *val, size_t vlen, char *err,
                      size_t errsz);

/*
 * Serializes the vector's fields (all but watermarks, which the store's
 * compare-and-set writes) into arena-allocated strings: fields/flens/vals/
 * vlens get the fields to set (room for tl_vec_max_fields), dels/dlens the
 * fields to delete (room for tl_vec_max_dels), *ndels their number.
 * Features are left out (neither set nor deleted) when their bit in
 * v->changed is clear and their readable value does not follow time: what
 * Redis holds for them is what would be written; when it does follow time,
 * only the readable value is written.  Rule state, ledgers and _ts are
 * always written.  Returns the number of fields to set.
 */
size_t tl_vec_max_fields(const tl_layout *l);
size_t tl_vec_max_dels(const tl_layout *l);
size_t tl_vec_encode(const tl_vec *v, const tl_layout *l, tl_arena *arena,
                     const char **fields, size_t *flens, const char **vals,
                     size_t *vlens, const char **dels, size_t *dlens,
                     size_t *ndels);

/* Redis key of a customer into the arena: <prefix>cx:{<customer_id>}, as
 * always, for an id without a brace; for an id with '{' or '}',
 * <prefix>cx:%{<id with '%' '{' '}' as %25 %7B %7D>}, so that the Redis
 * Cluster hash tag holds the whole id.  Injective over ids. */
char *tl_vec_key(tl_arena *arena, const char *prefix, const char *id,
                 size_t idlen, size_t *keylen);

/* Frees a vector made outside a cache (the cache frees its own). */
void tl_vec_free(tl_vec *v);

#endif
