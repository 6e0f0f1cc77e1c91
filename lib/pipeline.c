/*
 * The batch loop.  One thread, one loop, explicit stages, each a function
 * with the batch as its data:
 *
 *   take requests (fatal errors, reload) -> poll -> [revocation] ->
 *   decode -> load -> apply (features, rules, produce) -> finish the
 *   previous flush and commit it -> deliver -> flush (handed behind)
 *
 * Nothing calls back into the loop: the consumer's rebalance callback only
 * records (source.h), the daemon's tick only observes, and reloads are
 * taken at the top of the loop.  docs/architecture.md has the contract.
 */
#include "pipeline_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The run cannot go on: err is why (the uncommitted events are consumed
 * again at the next start). */
static void fail(tl_pipeline *p, const char *fmt, ...) TL_PRINTF(2, 3);
static void fail(tl_pipeline *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->fail_msg, sizeof p->fail_msg, fmt, ap);
    va_end(ap);
    p->failed = 1;
}

void tl_pipeline_grow_vecs(tl_pipeline *p, size_t need)
{
    if (need <= p->vec_cap) return;
    while (p->vec_cap < need) p->vec_cap = p->vec_cap ? p->vec_cap * 2 : 1024;
    p->misses = tl_xrealloc(p->misses, p->vec_cap * sizeof *p->misses);
    p->unloaded = tl_xrealloc(p->unloaded, p->vec_cap * sizeof *p->unloaded);
    p->dirty = tl_xrealloc(p->dirty, p->vec_cap * sizeof *p->dirty);
}

/* Whether a wait should end: at once after a second signal or when a
 * revocation was recorded (the loop then hands the partitions over; a
 * delivery wait goes on until p->deliver_until first); after
 * daemon.shutdown_timeout once stopping was asked for; otherwise never
 * (outages are waited out).  A query: it only records why. */
static int give_up(void *ud)
{
    tl_pipeline *p = ud;
    if (p->tick) p->tick(p->tick_ud);
    if (*p->stop >= 2) return 1;
    if (tl_source_revoking(p->src) && tl_now_mono_ms() >= p->deliver_until) {
        p->abandon = 1;
        return 1;
    }
    if (*p->stop == 1) {
        int64_t now = tl_now_mono_ms();
        if (!p->stop_deadline)
            p->stop_deadline = now + p->cfg->shutdown_timeout_ms;
        return now >= p->stop_deadline;
    }
    return 0;
}

static void set_paused(tl_pipeline *p, int paused)
{
    if (p->paused == paused) return;
    if (paused) tl_source_pause(p->src); else tl_source_resume(p->src);
    p->paused = paused;
    tl_gauge_set(&p->stats.paused, paused);
    if (paused) tl_info("pipeline", "partitions paused until the batch can finish");
}

/* Waits ms while a batch cannot finish.  The partitions are paused, so no
 * new input piles up in memory (backpressure), but the consumer keeps
 * serving its group: a rebalance is recorded, and ends the wait. */
static void wait_blocked(tl_pipeline *p, int ms)
{
    if (!p->src || !p->in_batch) {
        tl_sleep_ms(ms);
        return;
    }
    set_paused(p, 1);
    int64_t end = tl_now_mono_ms() + ms;
    for (int64_t now = tl_now_mono_ms();
         now < end && !tl_source_revoking(p->src); now = tl_now_mono_ms()) {
        tl_source_idle(p->src, &p->held, (int)(end - now < 1000 ? end - now : 1000));
        if (p->tick) p->tick(p->tick_ud);
    }
}

/* Redis holds the pipeline; msg (a store message) gives the cause that
 * /readyz names ("redis out of memory", ...), set before the gauge so
 * that a reader who sees the one finds the other. */
static void set_redis_down(tl_pipeline *p, const char *msg)
{
    char why[sizeof p->redis_why];
    tl_store_reply_cause(msg, why, sizeof why);
    /* The loop is the only writer: it may read without the lock. */
    if (strcmp(why, p->redis_why) != 0) {
        pthread_mutex_lock(&p->obs_lock);
        memcpy(p->redis_why, why, sizeof why);
        pthread_mutex_unlock(&p->obs_lock);
    }
    tl_gauge_set(&p->stats.redis_down, 1);
}

/* Redis outages are retried with capped backoff until give_up says
 * otherwise, logging one line when Redis goes away and one when it is back,
 * not one per attempt.  0: go on; 1: try again; -1: give up. */
static int redis_retry(tl_pipeline *p, int rc, const char *what,
                       const char *msg, int *backoff)
{
    if (rc == TL_OK) {
        /* At the level of the line that said it was gone, so that whoever
         * sees one sees the other. */
        if (p->redis_down) tl_warn("pipeline", "redis available again");
        p->redis_down = 0;
        tl_gauge_set(&p->stats.redis_down, 0);
        set_paused(p, 0);
        return 0;
    }
    if (!p->redis_down)
        tl_warn("pipeline", "%s failed: %s; retrying until redis is back",
                what, msg);
    p->redis_down = 1;
    set_redis_down(p, msg);
    if (give_up(p)) return -1;
    wait_blocked(p, *backoff);
    if (*backoff < 5000) *backoff *= 2;
    return 1;
}

/* Defined below, next to the stages that dead-letter at decode and apply. */
static void dead_letter(tl_pipeline *p, const rd_kafka_message_t *m,
                        tl_reject why, const char *msg);

/* The stored vector of miss idx cannot be used (the first reason is
 * kept): its customer's events are dead-lettered (reject_unloaded). */
static void load_refused(void *ud, size_t idx, const char *msg)
{
    tl_pipeline *p = ud;
    if (!p->unloaded[idx])
        p->unloaded[idx] = tl_arena_strndup(&p->arena, msg, strlen(msg));
}

static void load_cb(void *ud, size_t idx, const char *field, size_t flen,
                    const char *val, size_t vlen)
{
    tl_pipeline *p = ud;
    char err[TL_ERRSZ];
    if (p->unloaded[idx]) return;
    int rc = tl_vec_load_field(p->misses[idx], &p->layout, field, flen, val,
                               vlen, err, sizeof err);
    if (rc == TL_ERR) {
        load_refused(p, idx, err);
    } else if (rc) {
        tl_counter_add(&p->stats.state_errors, 1);
        /* The id only at debug: ids identify people (see log.h). */
        tl_warn("pipeline", "stored state of a customer: %s (that part "
                "starts over)", err);
        tl_debug("pipeline", "... customer %s", p->misses[idx]->customer_id);
    }
}

/* A customer whose stored vector cannot be used, and why. */
typedef struct unloaded {
    uintptr_t vec;
    const char *why;
} unloaded;

static int by_vec(const void *a, const void *b)
{
    uintptr_t x = ((const unloaded *)a)->vec, y = ((const unloaded *)b)->vec;
    return x < y ? -1 : x > y;
}

/* Customers whose stored vector cannot be used (a key of another type, a
 * garbled watermark): retrying cannot help and must not hold the others,
 * so their events go to the dead-letter topic (reason store, the error as
 * detail) and count as handled, and they leave the cache, so that their
 * next event reads Redis again.  The key is left for an operator. */
static void reject_unloaded(tl_pipeline *p)
{
    unloaded *u = NULL;
    size_t n = 0;
    for (size_t i = 0; i < p->nmiss; i++) {
        if (!p->unloaded[i]) continue;
        if (!u) u = tl_arena_alloc(&p->arena, p->nmiss * sizeof *u);
        u[n++] = (unloaded){(uintptr_t)p->misses[i], p->unloaded[i]};
    }
    if (!n) return;
    qsort(u, n, sizeof *u, by_vec);
    for (size_t i = 0; i < p->batch.n; i++) {
        tl_item *it = &p->items[i];
        unloaded key = {(uintptr_t)it->vec, NULL};
        const unloaded *hit =
            it->vec ? bsearch(&key, u, n, sizeof *u, by_vec) : NULL;
        if (!hit) continue;
        dead_letter(p, p->batch.msgs[i], TL_REJECT_STORE, hit->why);
        it->vec = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        tl_vec *v = (tl_vec *)u[i].vec;
        tl_warn("pipeline", "stored vector of a customer cannot be used; its "
                "events go to the dead-letter topic (reason store): %s",
                u[i].why);
        tl_debug("pipeline", "... customer %s", v->customer_id);
        tl_cache_remove(p->cache, v);
    }
}

/* Stage: the batch's cache misses, loaded from Redis in one pipeline. */
static int stage_load(tl_pipeline *p)
{
    if (!p->nmiss) return TL_OK;
    const char **keys = tl_arena_alloc(&p->arena, p->nmiss * sizeof *keys);
    size_t *lens = tl_arena_alloc(&p->arena, p->nmiss * sizeof *lens);
    for (size_t i = 0; i < p->nmiss; i++)
        keys[i] = tl_vec_key(&p->arena, p->cfg->redis_prefix,
                               p->misses[i]->customer_id,
                               p->misses[i]->idlen, &lens[i]);
    int backoff = 100;
    for (;;) {
        char err[TL_ERRSZ];
        memset(p->unloaded, 0, p->nmiss * sizeof *p->unloaded);
        int64_t t0 = tl_now_mono_us();
        int rc = tl_store_load(p->store, keys, lens, p->nmiss, load_cb,
                               load_refused, p, err, sizeof err);
        tl_histogram_observe_us(&p->stats.redis_load_seconds,
                                (uint64_t)(tl_now_mono_us() - t0));
        int r = redis_retry(p, rc, "redis load", err, &backoff);
        if (r == 0) {
            uint32_t e = tl_pipeline_loss_epoch(p);
            for (size_t i = 0; i < p->nmiss; i++) {
                p->misses[i]->epoch = e;
                tl_vec_check_cluster(p->misses[i], p->cluster);
            }
            reject_unloaded(p);
            return TL_OK;
        }
        if (r < 0) {
            snprintf(p->fail_msg, sizeof p->fail_msg,
                     "stopped while redis was unavailable: %.400s", err);
            return TL_ERR_IO;
        }
        /* A partial load may have filled some vectors: start them over. */
        for (size_t i = 0; i < p->nmiss; i++)
            tl_vec_reset(p->misses[i], &p->layout);
    }
}

static void dead_letter(tl_pipeline *p, const rd_kafka_message_t *m,
                        tl_reject why, const char *msg)
{
    char part[16], off[24];
    snprintf(part, sizeof part, "%" PRId32, m->partition);
    snprintf(off, sizeof off, "%" PRId64, m->offset);
    const char *topic = rd_kafka_topic_name(m->rkt);
    const char *reason = tl_reject_name(why);
    tl_header h[] = {
        {"tailor.reason", reason, strlen(reason)},
        {"tailor.error", msg, strlen(msg)},
        {"tailor.topic", topic, strlen(topic)},
        {"tailor.partition", part, strlen(part)},
        {"tailor.offset", off, strlen(off)},
    };
    char err[TL_ERRSZ];
    if (tl_sink_produce(p->sink, p->cfg->dead_letter, m->key, m->key_len,
                        m->payload, m->len, h, 5, err, sizeof err)) {
        /* Usually too large for the dead-letter topic (an input message near
         * Kafka's limit plus our headers): keep its head and say so, rather
         * than lose the record of it. */
        char size[24];
        snprintf(size, sizeof size, "%zu", m->len);
        tl_header h2[6];
        memcpy(h2, h, sizeof h);
        h2[5] = (tl_header){"tailor.truncated_from", size, strlen(size)};
        size_t keep = m->len < 65536 ? m->len : 65536;
        size_t klen = m->key_len < 4096 ? m->key_len : 4096;
        if (tl_sink_produce(p->sink, p->cfg->dead_letter, m->key, klen,
                            m->payload, keep, h2, 6, err, sizeof err))
            tl_error("pipeline", "dead letter of %s [%" PRId32 "] @%" PRId64
                     " lost: %s", topic, m->partition, m->offset, err);
    }
    tl_counter_add(&p->stats.dead_letters[why], 1);
    tl_debug("pipeline", "dead letter %s [%" PRId32 "] @%" PRId64 ": %s: %s",
             topic, m->partition, m->offset, reason, msg);
}

/* A firing rule's trigger, built and produced. */
static int emit(tl_pipeline *p, const tl_firing *fi, const tl_event *ev,
                const rd_kafka_message_t *m, tl_eval_ctx *ctx)
{
    const tl_rule *r = fi->rule;
    tl_trigger t;
    tl_trigger_build(&t, fi, ev, rd_kafka_topic_name(m->rkt), m->partition,
                     m->offset, ctx, &p->arena);
    const void *buf;
    size_t len;
    char err[TL_ERRSZ];
    tl_header h = {"rule_version", r->version, strlen(r->version)};
    if (tl_trigger_encode(p->tcodec, &t, &buf, &len, err, sizeof err) ||
        tl_sink_produce(p->sink, p->cfg->output, ev->customer_id,
                        ev->customer_id_len, buf, len, &h, 1, err,
                        sizeof err)) {
        /* Abandoned (a full queue given up for a revocation): the batch is
         * taken again; anything else ends the run. */
        if (!p->abandon) fail(p, "trigger %.64s: %.400s", r->name, err);
        return TL_ERR_IO;
    }
    tl_counter_add(&p->stats.triggers, 1);
    tl_counter_add(&p->stats.rule_triggers[r - p->cfg->rules], 1);
    if (fi->holdout) tl_counter_add(&p->stats.holdouts, 1);
    return TL_OK;
}

/* Features, then rules on the updated vector; triggers are produced. */
static int apply_event(tl_pipeline *p, tl_vec *v, const tl_event *ev,
                       const rd_kafka_message_t *m)
{
    tl_vec_apply(v, &p->layout, ev);
    tl_eval_ctx ctx = {ev, p->layout.features, v->block};
    size_t n = tl_ruleset_eval(&p->cfg->ruleset, v->block, ev, tl_eval_fetch,
                               &ctx, p->firings, p->why);
    for (size_t k = 0; k < p->layout.nrules; k++)
        if (p->why[k] != TL_SUP_NONE)
            tl_counter_add(&p->stats.suppressed[p->why[k]], 1);
    for (size_t k = 0; k < n; k++)
        if (emit(p, &p->firings[k], ev, m, &ctx)) return TL_ERR_IO;
    tl_counter_add(&p->stats.applied, 1);
    return TL_OK;
}

/* Stage: every message decoded into the batch arena (rejects to the
 * dead-letter topic), its customer's vector found in the cache or created
 * there as a miss to load. */
static void stage_decode(tl_pipeline *p)
{
    tl_batch *b = &p->batch;
    if (b->n > p->items_cap) {
        p->items_cap = b->n * 2;
        p->items = tl_xrealloc(p->items, p->items_cap * sizeof *p->items);
    }
    /* The dirty list keeps what a deferred flush did not write yet. */
    tl_pipeline_grow_vecs(p, p->ndirty + b->n);
    tl_counter_add(&p->stats.events, b->n);
    tl_counter_add(&p->stats.batches, 1);
    /* The accepted event times, from the clock once per batch (the decoder
     * clamps the sum; max_future is at most TL_EVENT_MAX_TS, no overflow). */
    tl_event_decoder_set_range(p->dec, p->cfg->min_time_ms,
                               tl_now_wall_ms() + p->cfg->max_future_ms);
    for (size_t i = 0; i < b->n; i++) {
        const rd_kafka_message_t *m = b->msgs[i];
        tl_item *it = &p->items[i];
        char err[TL_ERRSZ];
        it->vec = NULL;
        tl_reject why = tl_event_decode(p->dec, m->payload, m->len, &p->arena,
                                        &it->ev, err, sizeof err);
        if (why != TL_REJECT_NONE) {
            dead_letter(p, m, why, err);
            continue;
        }
        tl_vec *v = tl_cache_get(p->cache, it->ev.customer_id,
                                 it->ev.customer_id_len);
        if (!v) {
            v = tl_cache_put(p->cache, it->ev.customer_id,
                             it->ev.customer_id_len);
            p->misses[p->nmiss++] = v;
            tl_counter_add(&p->stats.cache_misses, 1);
        } else {
            tl_counter_add(&p->stats.cache_hits, 1);
        }
        it->vec = v;
    }
}

/* An event too late to be placed exactly would rewrite history that rules
 * already acted on: it goes to the dead-letter topic, and its offset
 * counts as handled. */
static void reject_late(tl_pipeline *p, const tl_vec *v, const tl_event *ev,
                        const rd_kafka_message_t *m)
{
    char why[192];
    snprintf(why, sizeof why,
             "event time %lld ms is %lld ms before the customer's "
             "newest event; events.max_lateness is %lld ms",
             (long long)ev->ts, (long long)(v->newest - ev->ts),
             (long long)p->cfg->max_lateness_ms);
    dead_letter(p, m, TL_REJECT_LATE, why);
    tl_counter_add(&p->stats.late, 1);
}

/* Stage: in offset order, each event above its vector's watermark is
 * applied (or rejected as late); the vector joins the dirty list. */
static int stage_apply(tl_pipeline *p)
{
    tl_batch *b = &p->batch;
    for (size_t i = 0; i < b->n; i++) {
        tl_item *it = &p->items[i];
        if (!it->vec) continue;
        const rd_kafka_message_t *m = b->msgs[i];
        tl_vec *v = it->vec;
        tl_wm *wm = tl_vec_wm(v, rd_kafka_topic_name(m->rkt), m->partition);
        if (m->offset <= wm->applied && !tl_pipeline_reset_check(p, wm, m)) {
            /* Applied before a crash or rebalance. */
            tl_counter_add(&p->stats.duplicates, 1);
            continue;
        }
        const tl_event *ev = &it->ev;
        if (v->has_newest && ev->ts < v->newest - p->cfg->max_lateness_ms)
            reject_late(p, v, ev, m);
        else if (apply_event(p, v, ev, m))
            return TL_ERR_IO;
        wm->applied = m->offset;
        wm->foreign = 0; /* now a watermark of this cluster's log */
        if (!v->dirty) {
            v->dirty = 1;
            p->dirty[p->ndirty++] = v;
        }
    }
    return TL_OK;
}

/* A vector whose write was refused leaves the cache, and the current
 * batch's dirty list if it is there. */
void tl_pipeline_drop_vec(tl_pipeline *p, tl_vec *v)
{
    if (v->dirty)
        for (size_t i = 0; i < p->ndirty; i++)
            if (p->dirty[i] == v) {
                p->dirty[i] = p->dirty[--p->ndirty];
                break;
            }
    tl_cache_remove(p->cache, v);
}

/* The flush's results go back to the vectors: stored watermarks; a fenced
 * or refused customer leaves the cache; one whose key Redis lost is
 * written back. */
static void take_results(tl_pipeline *p, const tl_flush_job *j,
                         const char *refused)
{
    tl_pipeline_loss_look(p, j);
    uint32_t epoch = tl_pipeline_loss_epoch(p);
    size_t lost = 0;
    for (size_t i = 0; i < j->n; i++) {
        tl_vec *v = j->vecs[i];
        const tl_store_write *w = &j->writes[i];
        if (w->result == TL_ERR) {
            tl_counter_add(&p->stats.store_errors, 1);
            tl_error("pipeline", "redis refused the vector of a customer, "
                     "which keeps its previous stored state: %s", refused);
            tl_debug("pipeline", "... customer %s", v->customer_id);
            tl_pipeline_drop_vec(p, v);
        } else if (w->result == TL_ERR_FENCED) {
            /* Someone else wrote this customer since we read it: we no
             * longer own its partition (a zombie after a rebalance).  Our
             * copy is stale; drop it rather than overwrite newer state. */
            tl_counter_add(&p->stats.fenced, 1);
            tl_warn("pipeline",
                    "write of a customer vector refused: another instance "
                    "advanced it (this instance lost its partition)");
            tl_pipeline_drop_vec(p, v);
        } else if (w->result == TL_ERR_GONE) {
            lost += (size_t)tl_pipeline_loss_gone(p, v, epoch);
        } else {
            for (size_t k = 0; k < w->nwm; k++)
                v->wm[j->wmk[i][k]].stored = w->wm[k].next;
            v->epoch = epoch;
            tl_counter_add(&p->stats.flushed, 1);
        }
    }
    if (lost)
        tl_warn("pipeline", "redis lost the stored vectors of %zu customers "
                "(it restarted without its data, or evicted keys: see "
                "tailor_redis_restarts_total, tailor_redis_evicted_keys_total); "
                "they are written back from the cache, which holds their "
                "whole state", lost);
}

/* The job's offsets, committed asynchronously: the loop goes on, and
 * takes the answer at its next boundary (take_requests).  A failure is
 * not fatal: the source sends those offsets again (and logs it); events
 * read twice meanwhile are skipped by the watermarks. */
static void commit(tl_pipeline *p, const tl_batch *msgs)
{
    tl_source_commit(p->src, msgs);
    p->stats.last_commit_ms = tl_now_mono_ms();
    const tl_store *fs = tl_flusher_store(p->flusher);
    atomic_store_explicit(&p->stats.redis_round_trips,
                          tl_store_round_trips(p->store) +
                              tl_store_round_trips(fs),
                          memory_order_relaxed);
    uint64_t ra = tl_store_restarts(p->store), rb = tl_store_restarts(fs);
    atomic_store_explicit(&p->stats.redis_restarts, ra > rb ? ra : rb,
                          memory_order_relaxed);
    atomic_store_explicit(&p->stats.redis_commands,
                          tl_store_commands(p->store) + tl_store_commands(fs),
                          memory_order_relaxed);
}

/* How long a revocation or the stop waits for the offset commits in
 * flight (and failed ones sent again): a coordinator away for longer
 * leaves the last events to be read again, which the watermarks make
 * harmless. */
#define COMMIT_WAIT_MS 5000

/* How long a delivery wait goes on once a revocation is recorded: the
 * triggers of the batches since the last flush are on their way (their
 * acknowledgements take milliseconds), and giving up abandons those
 * batches, which are then applied and their triggers produced again. */
#define DELIVER_WAIT_MS 5000

/* Stage: every trigger and dead letter queued so far delivered. */
static int stage_deliver(tl_pipeline *p)
{
    char err[TL_ERRSZ];
    p->deliver_until = tl_now_mono_ms() + DELIVER_WAIT_MS;
    int rc = tl_sink_wait(p->sink, err, sizeof err);
    p->deliver_until = 0;
    if (!rc) return TL_OK;
    snprintf(p->fail_msg, sizeof p->fail_msg, "%s", err);
    return TL_ERR_IO;
}

static void hand_over(tl_pipeline *p)
{
    tl_flusher_submit(p->flusher);
    p->unsent = 0;
}

/* Stage: the last flush finished, waiting for whatever it still waits
 * for — its triggers' delivery, then the writes, an outage retried here
 * (with backoff, the input paused) — the results given back to the
 * vectors, and its offsets committed. */
static int stage_finish(tl_pipeline *p)
{
    if (!tl_flusher_busy(p->flusher)) return TL_OK;
    if (p->unsent) {
        int rc = stage_deliver(p);
        if (rc) return rc;
        hand_over(p);
    }
    int rc = tl_flusher_wait(p->flusher), backoff = 100;
    tl_flush_job *j = tl_flusher_job(p->flusher);
    char refused[TL_ERRSZ] = "";
    for (;;) {
        if (rc == TL_ERR) {
            /* Every reply arrived, but the server refused some writes (say
             * a key of another type in our keyspace): retrying cannot help,
             * so those customers are reported and the rest goes on. */
            snprintf(refused, sizeof refused, "%s", j->err);
            rc = TL_OK;
        }
        int r = redis_retry(p, rc, "redis flush", j->err, &backoff);
        if (r == 0) break;
        if (r < 0) {
            snprintf(p->fail_msg, sizeof p->fail_msg,
                     "stopped while redis was unavailable: %.400s", j->err);
            return TL_ERR_IO;
        }
        rc = tl_flusher_run(p->flusher, p->store);
    }
    take_results(p, j, refused);
    commit(p, &j->msgs);
    tl_flusher_end(p->flusher, NULL);
    return TL_OK;
}

/* Stage, between batches, without waiting: the last flush handed over
 * once the broker has acknowledged its batches' triggers and dead letters
 * (a vector is never stored ahead of a trigger it caused: the watermark
 * would skip that event after a crash, and the trigger would be lost), and
 * finished once written.  Meanwhile the loop polls and applies: neither
 * the broker's acknowledgements nor Redis's writes stop it. */
static int stage_settle(tl_pipeline *p)
{
    if (!tl_flusher_busy(p->flusher)) return TL_OK;
    if (p->unsent) {
        int m = tl_sink_marked(p->sink);
        if (m < 0) return stage_finish(p); /* failures produced again */
        if (!m) return TL_OK;
        hand_over(p);
    }
    return tl_flusher_done(p->flusher) ? stage_finish(p) : TL_OK;
}

/* Stage: the dirty vectors rendered for the flusher (the slot is free),
 * with msgs, the messages to commit after (the deferred batches', or none
 * for vectors written back alone).  sync: written here, the caller having
 * waited for every trigger; otherwise handed over by stage_settle once the
 * triggers queued so far are delivered. */
static void stage_flush(tl_pipeline *p, int sync, tl_batch *msgs)
{
    /* Nothing is in flight: vectors may leave the cache now. */
    tl_cache_trim(p->cache);
    tl_gauge_set(&p->stats.cache_size, (int64_t)tl_cache_size(p->cache));
    tl_flusher_render(p->flusher, p->dirty, p->ndirty, &p->layout,
                      p->cfg->redis_prefix, p->cfg->key_ttl_ms, msgs);
    p->ndirty = 0;
    p->last_flush_ms = tl_now_mono_ms();
    if (sync) {
        tl_flusher_run(p->flusher, p->store);
    } else {
        tl_sink_mark(p->sink);
        p->unsent = 1;
    }
}

/* A batch that could not finish.  Its vectors were changed in memory but
 * not stored: the whole cache goes, so that what follows starts from
 * Redis.  Abandoned for a revocation, its messages (and the unfinished
 * flush's) are not lost: those of the partitions that stay are taken
 * again, in order, by the next batch (as no-ops where they were applied
 * and stored); the revoked ones are read by their new owner, with the
 * same trigger ids.  Otherwise the run fails. */
static void batch_failed(tl_pipeline *p)
{
    tl_batch *q = &p->spare;
    if (p->abandon && !p->failed) {
        tl_flusher_end(p->flusher, q);
        tl_batch_move(q, &p->deferred);
        tl_batch_move(q, &p->batch);
        tl_batch_move(q, &p->held);
        tl_batch t = p->batch;
        p->batch = *q;
        *q = t;
        tl_counter_add(&p->stats.abandoned, 1);
        tl_warn("pipeline", "batch abandoned: partitions were revoked while "
                "it could not finish; %zu events of the partitions that "
                "stay are taken again", p->batch.n);
        /* What is still assigned must not stay paused by a batch that no
         * longer exists. */
        set_paused(p, 0);
    } else {
        tl_flusher_end(p->flusher, NULL);
        p->failed = 1;
    }
    p->unsent = 0;
    p->abandon = 0;
    for (size_t i = 0; i < p->ndirty; i++) p->dirty[i]->dirty = 0;
    p->ndirty = 0;
    tl_cache_clear(p->cache);
    tl_gauge_set(&p->stats.cache_size, 0);
}

/* The last flush finished and every trigger delivered; then the deferred
 * batches' flush run here and finished, then the vectors to write back
 * that its finish found (sync: a reload, the stop, a revocation).  TL_OK,
 * or the failed stage's code. */
static int flush_now(tl_pipeline *p)
{
    int rc = stage_finish(p);
    if (!rc) rc = stage_deliver(p);
    if (rc) return rc;
    stage_flush(p, 1, &p->deferred);
    rc = stage_finish(p);
    if (!rc && p->ndirty) {
        stage_flush(p, 1, &p->deferred);
        rc = stage_finish(p);
    }
    return rc;
}

/* Whether the deferred batches' flush is due: redis.flush_interval since
 * the last one.  Until then a customer that the next batches change again
 * is written once for all of them (Redis runs each write as a script on
 * one thread: half of what a backlog cost it). */
static int flush_due(const tl_pipeline *p)
{
    return tl_now_mono_ms() - p->last_flush_ms >= p->cfg->redis_flush_interval_ms;
}

/* The stages after polling: this batch applied (its triggers queued), the
 * last flush moved on (stage_settle), and the deferred batches' flush
 * rendered when due.  sync: everything up to this batch delivered, written
 * and committed before returning (a reload, the last batch before
 * stopping). */
static int process_batch(tl_pipeline *p, int sync)
{
    if (p->failed) return TL_ERR;
    /* An empty batch still finishes the job in flight, and hands over the
     * deferred flush when due: an input gone quiet does not leave the last
     * batches uncommitted. */
    if (!p->batch.n && !tl_flusher_busy(p->flusher) && !p->ndirty &&
        !p->deferred.n)
        return TL_OK;
    int64_t t0 = tl_now_mono_us();
    int n = p->batch.n > 0, rc = TL_OK;
    p->in_batch = 1;
    tl_arena_reset(&p->arena);
    /* The dirty list may hold vectors to write back (write_back). */
    p->nmiss = 0;
    if (n) {
        if (!p->stats.first_event_ms) p->stats.first_event_ms = tl_now_mono_ms();
        stage_decode(p);
        rc = stage_load(p);
        if (!rc) rc = stage_apply(p);
    }
    /* sync: the last flush finished whether or not one follows (a reload
     * swaps the config in right after). */
    if (!rc) rc = sync ? stage_finish(p) : stage_settle(p);
    if (!rc) tl_batch_move(&p->deferred, &p->batch);
    if (!rc && (p->deferred.n || p->ndirty) && (sync || flush_due(p))) {
        if (sync) {
            rc = flush_now(p);
        } else {
            /* One job at a time: a flush still unfinished after a whole
             * interval is waited for here. */
            rc = stage_finish(p);
            if (!rc) stage_flush(p, 0, &p->deferred);
            if (!rc) rc = stage_settle(p);
        }
    }
    if (!rc && n)
        tl_histogram_observe_us(&p->stats.batch_seconds,
                                (uint64_t)(tl_now_mono_us() - t0));
    p->in_batch = 0;
    if (rc) batch_failed(p);
    return rc;
}

static int of_revoked(void *ud, const tl_vec *v)
{
    for (size_t k = 0; k < v->nwm; k++)
        if (tl_source_is_revoked(ud, v->wm[k].topic, v->wm[k].partition))
            return 1;
    return 0;
}

/* Stage, when a revocation was recorded: the flush in flight and the one
 * the flush interval deferred are finished and committed while the
 * partitions are still ours; their unprocessed
 * messages and their customers' cached vectors go (the new owner reads
 * both again: stable trigger ids, and the watermarks stop double
 * counting); then they are given up. */
static void stage_revoke(tl_pipeline *p)
{
    if (tl_flusher_busy(p->flusher) || p->ndirty || p->deferred.n) {
        p->in_batch = 1;
        int rc = stage_finish(p);
        /* What the flush interval deferred, and vectors to write back,
         * while their partitions are ours; the batch being filled is not
         * these flushes' to commit. */
        if (!rc && (p->ndirty || p->deferred.n)) rc = flush_now(p);
        if (rc) batch_failed(p);
        p->in_batch = 0;
    }
    /* Their offsets committed (or the failure logged) before the
     * rebalance completes. */
    tl_source_commit_wait(p->src, COMMIT_WAIT_MS);
    tl_source_drop_revoked(p->src, &p->batch);
    tl_source_drop_revoked(p->src, &p->held);
    tl_cache_drop_if(p->cache, of_revoked, p->src);
    tl_gauge_set(&p->stats.cache_size, (int64_t)tl_cache_size(p->cache));
    tl_source_revoke(p->src);
}

tl_pipeline *tl_pipeline_new(const tl_config *cfg, const char *brokers,
                             char *err, size_t errsz)
{
    /* Until tl_pipeline_run supplies the caller's flag: "not stopping". */
    static volatile sig_atomic_t not_stopping;
    tl_pipeline *p = tl_xcalloc(1, sizeof *p);
    p->stop = &not_stopping;
    p->cfg = cfg;
    tl_kafka_health_init(&p->stats.kafka);
    pthread_mutex_init(&p->obs_lock, NULL);
    p->stats.rule_triggers = tl_xcalloc(cfg->nrules + 1,
                                        sizeof *p->stats.rule_triggers);
    p->layout = (tl_layout){cfg->features, cfg->nfeatures, cfg->rules,
                            cfg->nrules, cfg->block_size, &cfg->ruleset,
                            NULL};
    tl_arena_init(&p->arena, 1 << 20);
    if (!brokers) brokers = cfg->brokers;
    p->brokers = tl_xstrdup(brokers);
    p->evicted_seen = -1;
    /* Redis is connected, and the group joined, in tl_pipeline_run: an
     * unreachable Redis at start is waited for, not fatal. */
    tl_store *fstore = NULL;
    if (!(p->dec = tl_event_decoder_new(cfg->format, cfg->schema_json,
                                        cfg->writer_schema_json, err, errsz)) ||
        !(p->tcodec = tl_trigger_codec_new(NULL, err, errsz)) ||
        !(p->store = tl_store_new_lazy(cfg->redis_url,
                                       (int)cfg->redis_timeout_ms, err,
                                       errsz)) ||
        !(fstore = tl_store_new_lazy(cfg->redis_url,
                                     (int)cfg->redis_timeout_ms, err, errsz)) ||
        !(p->sink = tl_sink_new(&(tl_kafka_opts){brokers, cfg->properties,
                                                  cfg->nproperties},
                                cfg->output, err, errsz))) {
        tl_store_free(fstore);
        tl_pipeline_free(p);
        return NULL;
    }
    tl_store_hide_keys(p->store);
    tl_store_hide_keys(fstore);
    if (!(p->flusher = tl_flusher_new(fstore, &p->stats.redis_flush_seconds,
                                      err, errsz))) {
        tl_store_free(fstore);
        tl_pipeline_free(p);
        return NULL;
    }
    tl_sink_set_give_up(p->sink, give_up, p);
    p->cache = tl_cache_new(&p->layout, cfg->cache_size);
    p->firings = tl_xcalloc(cfg->nrules + 1, sizeof *p->firings);
    p->why = tl_xcalloc(cfg->nrules + 1, sizeof *p->why);
    return p;
}

/* Between batches only (see tl_pipeline_reload). */
static void apply_reload(tl_pipeline *p)
{
    tl_config *next = p->pending;
    const tl_config *prev = p->cfg;
    p->pending = NULL;
    tl_cache_free(p->cache);
    tl_event_decoder_free(p->dec);
    p->dec = p->pending_dec;
    p->pending_dec = NULL;
    /* A rule whose name and text are unchanged keeps its count (same
     * Prometheus series); an edited rule is a new series from zero. */
    tl_counter *rt = tl_xcalloc(next->nrules + 1, sizeof *rt);
    for (size_t i = 0; i < next->nrules; i++)
        for (size_t j = 0; j < prev->nrules; j++)
            if (!strcmp(next->rules[i].name, prev->rules[j].name) &&
                !strcmp(next->rules[i].version, prev->rules[j].version))
                tl_counter_add(&rt[i],
                               tl_counter_get(&p->stats.rule_triggers[j]));
    pthread_mutex_lock(&p->obs_lock);
    tl_counter *old_rt = p->stats.rule_triggers;
    p->stats.rule_triggers = rt;
    p->cfg = next;
    pthread_mutex_unlock(&p->obs_lock);
    /* Outside obs_lock: the hook may wait for an HTTP request that is
     * itself waiting for obs_lock. */
    if (p->on_config) p->on_config(p->on_config_ud, next);
    free(old_rt);
    tl_config_free(p->owned);
    p->owned = next;
    p->layout = (tl_layout){next->features, next->nfeatures, next->rules,
                            next->nrules, next->block_size, &next->ruleset,
                            p->cluster_id};
    p->cache = tl_cache_new(&p->layout, next->cache_size);
    free(p->firings);
    free(p->why);
    p->firings = tl_xcalloc(next->nrules + 1, sizeof *p->firings);
    p->why = tl_xcalloc(next->nrules + 1, sizeof *p->why);
    tl_info("pipeline", "configuration %s applied: %zu features, %zu rules "
            "(cache dropped: vectors are read again from redis)",
            next->path ? next->path : "", next->nfeatures, next->nrules);
}

void tl_pipeline_set_config_hook(tl_pipeline *p,
                                 void (*fn)(void *ud, const tl_config *cfg),
                                 void *ud)
{
    p->on_config = fn;
    p->on_config_ud = ud;
}

int tl_pipeline_reload(tl_pipeline *p, tl_config *next, int force, char *err,
                       size_t errsz)
{
    int rc = tl_config_reloadable(p->cfg, next, force, err, errsz);
    if (rc) return rc;
    char msg[TL_ERRSZ];
    tl_event_decoder *dec = tl_event_decoder_new(
        next->format, next->schema_json, next->writer_schema_json, msg,
        sizeof msg);
    if (!dec)
        return tl_errf(err, errsz, TL_ERR_CONFIG, "%s: events: %s",
                       next->path ? next->path : "", msg);
    tl_config_free(p->pending);
    tl_event_decoder_free(p->pending_dec);
    p->pending = next;
    p->pending_dec = dec;
    return TL_OK;
}

void tl_pipeline_set_tick(tl_pipeline *p, void (*fn)(void *ud), void *ud)
{
    p->tick = fn;
    p->tick_ud = ud;
}

void tl_pipeline_set_boundary(tl_pipeline *p, void (*fn)(void *ud), void *ud)
{
    p->boundary = fn;
    p->boundary_ud = ud;
}

int tl_pipeline_assigned(const tl_pipeline *p)
{
    return p->src ? tl_source_assigned(p->src) : 0;
}

const tl_config *tl_pipeline_config(const tl_pipeline *p) { return p->cfg; }

/* Redis before the group: joining and then not polling while Redis is down
 * would only cause rebalances. Wrong credentials are fatal (TL_ERR_AUTH),
 * an unreachable server is waited for. */
static int start(tl_pipeline *p, char *err, size_t errsz)
{
    int backoff = 100, logged = 0;
    for (;;) {
        int rc = tl_store_ping(p->store, err, errsz);
        if (rc == TL_OK) break;
        if (rc == TL_ERR_AUTH) return rc;
        if (!logged++)
            tl_error("pipeline", "%s; waiting for redis (retrying with "
                     "backoff up to 5 s)", err);
        set_redis_down(p, err);
        if (*p->stop) return tl_errf(err, errsz, TL_ERR_IO,
                                      "stopped while waiting for redis");
        if (p->tick) p->tick(p->tick_ud);
        tl_sleep_ms(backoff);
        if (backoff < 5000) backoff *= 2;
    }
    if (logged) tl_info("pipeline", "redis available");
    int rc = tl_pipeline_loss_check_policy(p, err, errsz);
    if (rc) return rc;
    tl_gauge_set(&p->stats.redis_down, 0);
    const tl_config *c = p->cfg;
    tl_source_opts o = {{p->brokers, c->properties, c->nproperties}, c->group,
                        c->inputs, c->ninputs};
    p->src = tl_source_new(&o, &p->stats.kafka, err, errsz);
    if (!p->src) return TL_ERR_CONFIG;
    tl_pipeline_reset_learn_cluster(p);
    return TL_OK;
}

/* Stage: requests taken between batches, never inside one: a fatal
 * librdkafka error ends the run; the daemon's boundary hook may queue a
 * reload, which is applied once nothing is in flight (the batch in hand
 * and the job finished: triggers delivered, vectors flushed, offsets
 * committed). */
static void take_requests(tl_pipeline *p)
{
    char err[TL_ERRSZ];
    if (tl_sink_fatal(p->sink, err, sizeof err) ||
        tl_source_fatal(p->src, err, sizeof err)) {
        fail(p, "%s; stopping (the uncommitted events are consumed again "
             "at the next start)", err);
        return;
    }
    /* Commits answered: failed ones sent again, even when no batch comes. */
    tl_source_commit_serve(p->src);
    if (p->boundary) p->boundary(p->boundary_ud);
    if (p->pending && process_batch(p, 1) == TL_OK) apply_reload(p);
}

/* Stage: the batch filled, what arrived while paused first, then up to
 * kafka.batch_size messages or kafka.batch_timeout, in slices of at most a
 * second so that the tick keeps its pace; a recorded revocation ends it. */
static void stage_poll(tl_pipeline *p)
{
    tl_batch_move(&p->batch, &p->held);
    size_t max = (size_t)p->cfg->batch_size;
    int64_t fill_end = tl_now_mono_ms() + p->cfg->batch_timeout_ms;
    for (;;) {
        int64_t left = fill_end - tl_now_mono_ms();
        tl_source_poll(p->src, &p->batch, max,
                       (int)(left < 0 ? 0 : left > 1000 ? 1000 : left),
                       p->stop);
        if (p->tick) p->tick(p->tick_ud);
        if (*p->stop || p->batch.n >= max || tl_now_mono_ms() >= fill_end ||
            tl_source_revoking(p->src))
            break;
    }
}

int tl_pipeline_run(tl_pipeline *p, volatile sig_atomic_t *stop, char *err,
                    size_t errsz)
{
    p->stop = stop;
    int rc = start(p, err, errsz);
    if (rc != TL_OK) return *stop && rc == TL_ERR_IO ? TL_OK : rc;
    tl_gauge_set(&p->stats.running, 1);
    int64_t last_ms = tl_now_mono_ms();
    uint64_t last_n = 0;
    while (!*stop && !p->failed) {
        take_requests(p);
        if (p->failed) break;
        stage_poll(p);
        if (*stop > 1) break;
        if (tl_source_revoking(p->src)) {
            stage_revoke(p);
            continue;
        }
        process_batch(p, 0);
        tl_pipeline_log_progress(p, &last_ms, &last_n);
    }
    if (*stop > 1 && !p->failed)
        fail(p, "stopped at once by a second signal; uncommitted events "
             "will be consumed again at the next start");
    /* The last batch, flushed and committed before the partitions go.  Not
     * a clean stop when it was abandoned instead (a revocation while Redis
     * was away): its events are consumed again. */
    if (!p->failed && process_batch(p, 1) != TL_OK && !p->failed)
        fail(p, "stopped while the last batch could not finish (its "
             "partitions were revoked); its events are consumed again");
    /* What was handed over is committed before the group is left (failed
     * commits sent again meanwhile), bounded. */
    if (*stop < 2) tl_source_commit_wait(p->src, COMMIT_WAIT_MS);
    /* A revocation recorded by the last poll is carried out now: librdkafka
     * waits for it, and closing the consumer would wait forever. */
    if (tl_source_revoking(p->src)) stage_revoke(p);
    tl_gauge_set(&p->stats.running, 0);
    if (p->failed)
        return tl_errf(err, errsz, TL_ERR_IO, "%s", p->fail_msg);
    return TL_OK;
}

void tl_pipeline_free(tl_pipeline *p)
{
    if (!p) return;
    /* Closing the consumer gives its partitions up at once: what was
     * processed is committed (tl_pipeline_run), the rest is read again. */
    tl_source_free(p->src);
    tl_flusher_free(p->flusher);
    tl_batch_free(&p->batch);
    tl_batch_free(&p->held);
    tl_batch_free(&p->deferred);
    tl_batch_free(&p->spare);
    free(p->brokers);
    tl_sink_free(p->sink);
    tl_store_free(p->store);
    tl_cache_free(p->cache);
    tl_trigger_codec_free(p->tcodec);
    tl_event_decoder_free(p->dec);
    tl_arena_free(&p->arena);
    free(p->items);
    free(p->misses);
    free(p->unloaded);
    free(p->dirty);
    free(p->firings);
    free(p->why);
    free(p->stats.rule_triggers);
    for (size_t i = 0; i < p->stats.nresets; i++) free(p->stats.resets[i].topic);
    free(p->cluster_id);
    pthread_mutex_destroy(&p->obs_lock);
    tl_kafka_health_destroy(&p->stats.kafka);
    tl_event_decoder_free(p->pending_dec);
    tl_config_free(p->pending);
    tl_config_free(p->owned);
    free(p);
}
