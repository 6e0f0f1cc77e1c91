/*
 * cache — the bounded LRU cache of customer vectors (vec.h), keyed by
 * customer id.
 *
 * Ownership: the cache owns its vectors (created by tl_cache_put, freed on
 * eviction, removal or tl_cache_free).  A vector pointer stays valid until
 * it leaves the cache; dirty vectors are never evicted by tl_cache_trim.
 */
#ifndef TL_CACHE_H
#define TL_CACHE_H

#include <stddef.h>

#include "vec.h"

typedef struct tl_cache tl_cache;

/* max: customers kept; the cache may exceed it while vectors are dirty. */
tl_cache *tl_cache_new(const tl_layout *l, size_t max);
void tl_cache_free(tl_cache *c);
/* Looks up and marks most recently used; NULL when absent. */
tl_vec *tl_cache_get(tl_cache *c, const char *id, size_t idlen);
/* Inserts a new vector (reset, not dirty) for an id that is absent. */
tl_vec *tl_cache_put(tl_cache *c, const char *id, size_t idlen);
/* Removes and frees one vector. */
void tl_cache_remove(tl_cache *c, tl_vec *v);
/* Evicts least recently used clean vectors until at most max remain. */
void tl_cache_trim(tl_cache *c);
/* Removes every vector for which pred(ud, v) says 1 (the customers of
 * partitions given up in a rebalance: others may write them next). */
void tl_cache_drop_if(tl_cache *c, int (*pred)(void *ud, const tl_vec *v),
                      void *ud);
/* Drops every vector. */
void tl_cache_clear(tl_cache *c);
size_t tl_cache_size(const tl_cache *c);

#endif
