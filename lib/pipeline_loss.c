/*
 * pipeline_loss — data lost by Redis told from fencing and erasure.  A
 * vector carries the loss epoch (Redis restarts seen by either connection,
 * plus eviction episodes) of its last read or write; the flush script
 * answers "gone" for a key that no longer exists, and such a key is Redis's
 * loss when the epoch moved since (the cached vector is written back
 * whole), otherwise an erasure or expiry (the vector is dropped).  At start
 * an evicting maxmemory-policy is refused unless redis.allow_eviction.
 */
#include "pipeline_int.h"

#include <inttypes.h>
#include <string.h>

/* How many times Redis has been seen to lose data so far (a restart, seen
 * as a new run_id by either connection before it sent anything to the new
 * server, or evictions): a vector stamped with an older epoch was read or
 * written before a loss, so its key going missing is that loss. */
uint32_t tl_pipeline_loss_epoch(const tl_pipeline *p)
{
    uint64_t a = tl_store_restarts(p->store),
             b = tl_store_restarts(tl_flusher_store(p->flusher));
    return (uint32_t)(a > b ? a : b) + p->evictions;
}

/* Whether Redis evicted keys since the last look (INFO, on the rare
 * flush that found a key gone): then the evictions are a loss. */
static void look_for_evictions(tl_pipeline *p)
{
    tl_store_facts f;
    char err[TL_ERRSZ];
    if (tl_store_facts_get(p->store, &f, err, sizeof err) != TL_OK) {
        tl_warn("pipeline", "cannot ask redis whether it evicted keys: %s",
                err);
        return;
    }
    if (p->evicted_seen >= 0 && f.evicted_keys > p->evicted_seen) {
        p->evictions++;
        tl_counter_add(&p->stats.redis_evicted,
                       (uint64_t)(f.evicted_keys - p->evicted_seen));
        tl_warn("pipeline", "redis evicted %" PRId64 " keys (maxmemory-policy "
                "%s): customers' stored vectors may be gone; set it to "
                "noeviction and give redis more memory",
                f.evicted_keys - p->evicted_seen, f.policy);
    }
    p->evicted_seen = f.evicted_keys;
}

static int any_gone(const tl_flush_job *j)
{
    for (size_t i = 0; i < j->n; i++)
        if (j->writes[i].result == TL_ERR_GONE) return 1;
    return 0;
}

/* After a flush: if a key was gone, whether Redis evicted keys meanwhile. */
void tl_pipeline_loss_look(tl_pipeline *p, const tl_flush_job *j)
{
    if (any_gone(j)) look_for_evictions(p);
}

/* A vector whose key Redis lost: the cached copy is the truth, written
 * back whole at the next flush against an absent key. */
static void write_back(tl_pipeline *p, tl_vec *v)
{
    for (size_t k = 0; k < v->nwm; k++) v->wm[k].stored = -1;
    v->changed = UINT64_MAX;
    tl_counter_add(&p->stats.redis_lost, 1);
    if (v->dirty) return;
    v->dirty = 1;
    tl_pipeline_grow_vecs(p, p->ndirty + 1);
    p->dirty[p->ndirty++] = v;
}

/* A write refused because the key is gone: lost by Redis if Redis lost
 * data since the vector was read or written (write it back), otherwise
 * erased or expired (drop it, as a fenced one).  Returns 1 when lost. */
int tl_pipeline_loss_gone(tl_pipeline *p, tl_vec *v, uint32_t epoch)
{
    if (v->epoch < epoch) {
        write_back(p, v);
        return 1;
    }
    tl_counter_add(&p->stats.redis_gone, 1);
    tl_info("pipeline", "write of a customer vector refused: its key is "
            "gone from redis (erased by tailorctl forget, or expired) and "
            "redis reports no data loss; the cached vector is dropped");
    tl_debug("pipeline", "... customer %s", v->customer_id);
    tl_pipeline_drop_vec(p, v);
    return 0;
}

/* A Redis that may evict our keys loses customers' state silently:
 * refused unless redis.allow_eviction says otherwise. */
int tl_pipeline_loss_check_policy(tl_pipeline *p, char *err, size_t errsz)
{
    tl_store_facts f;
    char why[TL_ERRSZ];
    if (tl_store_facts_get(p->store, &f, why, sizeof why) != TL_OK) {
        tl_warn("pipeline", "cannot read redis's maxmemory-policy (%s); "
                "make sure it is noeviction", why);
        return TL_OK;
    }
    p->evicted_seen = f.evicted_keys;
    int ttl = p->cfg->key_ttl_ms > 0;
    if (!tl_store_policy_evicts(f.policy, ttl)) return TL_OK;
    if (p->cfg->redis_allow_eviction) {
        tl_warn("pipeline", "redis's maxmemory-policy is %s: it may evict "
                "customers' vectors (redis.allow_eviction is true; a key "
                "evicted while cached is written back, one evicted after "
                "its customer left the cache is lost)", f.policy);
        return TL_OK;
    }
    return tl_errf(err, errsz, TL_ERR_CONFIG,
                   "redis's maxmemory-policy is %s, which may evict "
                   "customers' vectors (%s): set it to noeviction "
                   "(CONFIG SET maxmemory-policy noeviction, and in "
                   "redis.conf), or set redis.allow_eviction: true to run "
                   "anyway",
                   f.policy,
                   ttl && strncmp(f.policy, "volatile-", 9) == 0
                       ? "they carry a TTL (redis.ttl)"
                       : "any key may go");
}
