#include "pipeline.h"

#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "sink.h"
#include "source.h"
#include "state.h"
#include "store.h"
#include "trigger.h"

typedef struct item {
    tl_event ev;
    tl_vec *vec; /* NULL: rejected */
} item;

/*
 * One batch's flush and commit, written behind: the pipeline thread renders
 * the writes and hands them to the flusher thread, which runs them on a
 * connection of its own while the pipeline thread decodes and applies the
 * next batch; that batch then finishes this job (finish_job: the results,
 * any retry, the commit) before its own flush.  So the delivery contract
 * holds batch by batch (triggers delivered, then flush, then commit), and
 * at most one job is in flight.  Between its hand-off and its finish, no
 * vector is evicted or freed: eviction runs only after a finish, and a
 * customer of the job cannot be loaded from Redis meanwhile since it stays
 * cached.
 */
typedef struct flush_job {
    tl_arena arena;        /* the writes' text, until the job is finished */
    tl_store_write *writes;
    tl_vec **vecs;         /* vecs[i] is what writes[i] stores */
    uint32_t **wmk;        /* wmk[i][k]: index in vecs[i]->wm of writes[i].wm[k] */
    size_t n, cap;
    tl_batch msgs;         /* the batch's messages, committed after the flush */
    int queued;            /* handed over and not yet finished */
    int done;              /* the flusher's attempt is over (under flock) */
    int rc;                /* its result, and its message: */
    char err[TL_ERRSZ];
} flush_job;

struct tl_pipeline {
    const tl_config *cfg;
    tl_config *owned;       /* cfg when it came from a reload */
    tl_config *pending;     /* queued by tl_pipeline_reload */
    tl_event_decoder *pending_dec;
    void (*tick)(void *ud);
    /* Called after a reload swapped the config in, before the old one is
     * freed (tl_pipeline_set_config_hook). */
    void (*on_config)(void *ud, const tl_config *cfg);
    void *on_config_ud;
    /* Held by tl_pipeline_metrics (another thread) and by apply_reload
     * while it swaps cfg and the per-rule counters: a reload is rare, a
     * scrape about once a second, the batch loop never takes it. */
    pthread_mutex_t obs_lock;
    void *tick_ud;
    tl_layout layout;
    tl_event_decoder *dec;
    tl_trigger_codec *tcodec;
    tl_store *store;
    tl_source *src;
    tl_sink *sink;
    tl_cache *cache;

    tl_batch batch;
    tl_arena arena; /* everything that lives for one batch */
    item *items;
    size_t items_cap;
    tl_vec **misses, **dirty;
    size_t nmiss, ndirty, vec_cap;
    flush_job job;          /* the previous batch's flush, maybe in flight */
    tl_store *fstore;       /* the flusher thread's own connection */
    pthread_t flusher;
    int flusher_started;
    pthread_mutex_t flock;  /* job.queued/done/rc, fquit */
    pthread_cond_t fcond;
    int fquit;
    tl_firing *firings; /* room for every rule */
    tl_suppress *why;

    volatile sig_atomic_t *stop;
    int64_t stop_deadline;  /* monotonic ms: shutdown_timeout after SIGTERM */
    int in_batch;           /* inside process_batch (drain cannot run it) */
    int commit_sync;        /* commit this batch synchronously */
    int abandon;            /* the batch's partitions were revoked mid-batch */
    int paused;             /* partitions paused while redis is down */
    tl_batch held;          /* messages that arrived while paused */
    char *brokers;
    int failed;
    char fail_msg[TL_ERRSZ];
    int redis_down;
    tl_stats stats;
};

static void grow_vecs(tl_pipeline *p, size_t need)
{
    if (need <= p->vec_cap) return;
    while (p->vec_cap < need) p->vec_cap = p->vec_cap ? p->vec_cap * 2 : 1024;
    p->misses = tl_xrealloc(p->misses, p->vec_cap * sizeof *p->misses);
    p->dirty = tl_xrealloc(p->dirty, p->vec_cap * sizeof *p->dirty);
}

/* Whether to stop retrying: at once after a second signal or a revocation
 * of the batch's partitions; after daemon.shutdown_timeout once stopping
 * was asked for; otherwise never (outages are waited out). */
static int give_up(void *ud)
{
    tl_pipeline *p = ud;
    if (p->tick) p->tick(p->tick_ud);
    if (p->abandon || *p->stop >= 2) return 1;
    if (*p->stop == 1) {
        int64_t now = tl_now_mono_ms();
        if (!p->stop_deadline)
            p->stop_deadline = now + p->cfg->shutdown_timeout_ms;
        return now >= p->stop_deadline;
    }
    return 0;
}

/* Waits ms while a batch cannot finish.  The partitions are paused, so no
 * new input piles up in memory (backpressure), but the consumer keeps
 * serving its group: a rebalance is answered instead of timing out. */
static void wait_blocked(tl_pipeline *p, int ms)
{
    if (!p->src || !p->in_batch) {
        tl_sleep_ms(ms);
        return;
    }
    if (!p->paused) {
        tl_source_pause(p->src);
        p->paused = 1;
        tl_gauge_set(&p->stats.paused, 1);
        tl_info("pipeline", "partitions paused until the batch can finish");
    }
    int64_t end = tl_now_mono_ms() + ms;
    for (int64_t now = tl_now_mono_ms(); now < end && !p->abandon;
         now = tl_now_mono_ms()) {
        tl_source_idle(p->src, &p->held, (int)(end - now < 1000 ? end - now : 1000));
        if (p->tick) p->tick(p->tick_ud);
    }
}

/* Redis outages are retried with capped backoff until give_up says
 * otherwise, logging one line when Redis goes away and one when it is back,
 * not one per attempt. */
static int redis_retry(tl_pipeline *p, int rc, const char *what,
                       const char *msg, int *backoff)
{
    if (rc == TL_OK) {
        /* At the level of the line that said it was gone, so that whoever
         * sees one sees the other. */
        if (p->redis_down) tl_warn("pipeline", "redis available again");
        p->redis_down = 0;
        tl_gauge_set(&p->stats.redis_down, 0);
        if (p->paused) {
            tl_source_resume(p->src);
            p->paused = 0;
            tl_gauge_set(&p->stats.paused, 0);
        }
        return 0;
    }
    if (!p->redis_down)
        tl_warn("pipeline", "%s failed: %s; retrying until redis is back",
                what, msg);
    p->redis_down = 1;
    tl_gauge_set(&p->stats.redis_down, 1);
    if (give_up(p)) return -1;
    wait_blocked(p, *backoff);
    if (*backoff < 5000) *backoff *= 2;
    return 1;
}

static void load_cb(void *ud, size_t idx, const char *field, size_t flen,
                    const char *val, size_t vlen)
{
    tl_pipeline *p = ud;
    char err[TL_ERRSZ];
    if (tl_vec_load_field(p->misses[idx], &p->layout, field, flen, val, vlen,
                          err, sizeof err)) {
        tl_counter_add(&p->stats.state_errors, 1);
        /* The id only at debug: ids identify people (see log.h). */
        tl_warn("pipeline", "stored state of a customer: %s (that part "
                "starts over)", err);
        tl_debug("pipeline", "... customer %s", p->misses[idx]->customer_id);
    }
}

static int load_misses(tl_pipeline *p)
{
    if (!p->nmiss) return TL_OK;
    const char **keys = tl_arena_alloc(&p->arena, p->nmiss * sizeof *keys);
    size_t *lens = tl_arena_alloc(&p->arena, p->nmiss * sizeof *lens);
    for (size_t i = 0; i < p->nmiss; i++)
        keys[i] = tl_state_key(&p->arena, p->cfg->redis_prefix,
                               p->misses[i]->customer_id,
                               p->misses[i]->idlen, &lens[i]);
    int backoff = 100;
    for (;;) {
        char err[TL_ERRSZ];
        int64_t t0 = tl_now_mono_us();
        int rc = tl_store_load(p->store, keys, lens, p->nmiss, load_cb, p, err,
                               sizeof err);
        tl_histogram_observe_us(&p->stats.redis_load_seconds,
                                (uint64_t)(tl_now_mono_us() - t0));
        int r = redis_retry(p, rc, "redis load", err, &backoff);
        if (r == 0) return TL_OK;
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

/* A template rendered into the batch arena. */
static const char *render(tl_pipeline *p, const tl_template *t,
                          tl_eval_ctx *ctx)
{
    size_t n = tl_template_render(t, tl_eval_fetch, ctx, NULL, 0);
    char *s = tl_arena_alloc(&p->arena, n + 1);
    tl_template_render(t, tl_eval_fetch, ctx, s, n + 1);
    return s;
}

/* The explanation of a trigger: every variable the rule's `if` read, named
 * as written ("visits_30d", "type", "attrs[\"tier\"]") with its value. */
typedef struct explainer {
    tl_pipeline *p;
    tl_eval_ctx *ctx;
    tl_attr *out; /* NULL while counting */
    size_t n;
} explainer;

static void explain_var(void *ud, uint32_t var, const char *key)
{
    explainer *x = ud;
    if (!x->out) {
        x->n++;
        return;
    }
    tl_pipeline *p = x->p;
    const char *name;
    if (var >= TL_EVENT_VAR_LIMIT) {
        name = p->layout.features[var - TL_EVENT_VAR_LIMIT].name;
    } else if (key) {
        size_t n = strlen(key) + 16;
        char *s = tl_arena_alloc(&p->arena, n);
        snprintf(s, n, "%s[\"%s\"]", tl_event_var_name(var), key);
        name = s;
    } else {
        name = tl_event_var_name(var);
    }
    tl_value v;
    tl_eval_fetch(x->ctx, var, key, key ? strlen(key) : 0, &v);
    size_t n = tl_value_format(&v, NULL, 0);
    char *s = tl_arena_alloc(&p->arena, n + 1);
    tl_value_format(&v, s, n + 1);
    x->out[x->n++] = (tl_attr){name, s, strlen(name), n};
}

static int emit(tl_pipeline *p, const tl_firing *fi, const tl_event *ev,
                const rd_kafka_message_t *m, tl_eval_ctx *ctx)
{
    const tl_rule *r = fi->rule;
    tl_trigger t;
    memset(&t, 0, sizeof t);
    tl_trigger_make_id(t.id, rd_kafka_topic_name(m->rkt), m->partition,
                       m->offset, r->name);
    t.rule = r->name;
    t.customer_id = ev->customer_id;
    t.ts = ev->ts;
    t.cause_event_id = ev->event_id;
    t.channel = fi->channel;
    t.holdout = fi->holdout;
    t.message = render(p, &r->message, ctx);
    if (r->nattrs) {
        tl_attr *a = tl_arena_alloc(&p->arena, r->nattrs * sizeof *a);
        for (size_t i = 0; i < r->nattrs; i++) {
            const char *v = render(p, &r->attrs[i].value, ctx);
            a[i] = (tl_attr){r->attrs[i].key, v, strlen(r->attrs[i].key),
                             strlen(v)};
        }
        t.attrs = a;
        t.nattrs = r->nattrs;
    }
    if (r->cond) {
        explainer x = {p, ctx, NULL, 0};
        tl_expr_vars(r->cond, explain_var, &x);
        x.out = tl_arena_alloc(&p->arena, (x.n ? x.n : 1) * sizeof *x.out);
        x.n = 0;
        tl_expr_vars(r->cond, explain_var, &x);
        t.explain = x.out;
        t.nexplain = x.n;
    }

    const void *buf;
    size_t len;
    char err[TL_ERRSZ];
    tl_header h = {"rule_version", r->version, strlen(r->version)};
    if (tl_trigger_encode(p->tcodec, &t, &buf, &len, err, sizeof err) ||
        tl_sink_produce(p->sink, p->cfg->output, ev->customer_id,
                        ev->customer_id_len, buf, len, &h, 1, err,
                        sizeof err)) {
        snprintf(p->fail_msg, sizeof p->fail_msg, "trigger %.64s: %.400s",
                 r->name, err);
        return TL_ERR_IO;
    }
    tl_counter_add(&p->stats.triggers, 1);
    tl_counter_add(&p->stats.rule_triggers[r - p->cfg->rules], 1);
    if (fi->holdout) tl_counter_add(&p->stats.holdouts, 1);
    return TL_OK;
}

/* Renders the batch's dirty vectors into the job, and moves the batch's
 * messages into it (they are committed when the job is finished). */
static void render_job(tl_pipeline *p)
{
    flush_job *j = &p->job;
    tl_arena_reset(&j->arena);
    if (p->ndirty > j->cap) {
        j->cap = p->ndirty * 2;
        j->writes = tl_xrealloc(j->writes, j->cap * sizeof *j->writes);
        j->vecs = tl_xrealloc(j->vecs, j->cap * sizeof *j->vecs);
        j->wmk = tl_xrealloc(j->wmk, j->cap * sizeof *j->wmk);
    }
    size_t maxf = tl_vec_max_fields(&p->layout);
    size_t maxd = tl_vec_max_dels(&p->layout) + 1;
    for (size_t i = 0; i < p->ndirty; i++) {
        tl_vec *v = p->dirty[i];
        tl_store_write *w = &j->writes[i];
        memset(w, 0, sizeof *w);
        w->key = tl_state_key(&j->arena, p->cfg->redis_prefix, v->customer_id,
                              v->idlen, &w->keylen);
        tl_store_wm *wm = tl_arena_alloc(&j->arena, v->nwm * sizeof *wm);
        uint32_t *wmk = tl_arena_alloc(&j->arena, v->nwm * sizeof *wmk);
        size_t nwm = 0;
        for (size_t k = 0; k < v->nwm; k++) {
            if (v->wm[k].applied == v->wm[k].stored) continue;
            size_t tl = strlen(v->wm[k].topic);
            char *f = tl_arena_alloc(&j->arena, tl + 20);
            int n = snprintf(f, tl + 20, "_o:%s:%" PRId32, v->wm[k].topic,
                             v->wm[k].partition);
            wmk[nwm] = (uint32_t)k;
            wm[nwm++] = (tl_store_wm){f, (size_t)n, v->wm[k].stored,
                                      v->wm[k].applied};
        }
        w->wm = wm;
        w->nwm = nwm;
        const char **fields = tl_arena_alloc(&j->arena, maxf * sizeof *fields);
        const char **vals = tl_arena_alloc(&j->arena, maxf * sizeof *vals);
        size_t *flens = tl_arena_alloc(&j->arena, maxf * sizeof *flens);
        size_t *vlens = tl_arena_alloc(&j->arena, maxf * sizeof *vlens);
        const char **dels = tl_arena_alloc(&j->arena, maxd * sizeof *dels);
        size_t *dlens = tl_arena_alloc(&j->arena, maxd * sizeof *dlens);
        w->nfields = tl_vec_encode(v, &p->layout, &j->arena, fields, flens,
                                   vals, vlens, dels, dlens, &w->ndels);
        w->fields = fields;
        w->flens = flens;
        w->vals = vals;
        w->vlens = vlens;
        w->dels = dels;
        w->dlens = dlens;
        w->ttl_ms = p->cfg->key_ttl_ms;
        j->vecs[i] = v;
        j->wmk[i] = wmk;
        /* What the next batch changes is its own to write. */
        v->dirty = 0;
        v->changed = 0;
    }
    j->n = p->ndirty;
    p->ndirty = 0;
    tl_batch t = j->msgs;
    j->msgs = p->batch;
    p->batch = t;
}

/* One attempt at the job's writes on connection st, timed. */
static int run_flush(tl_pipeline *p, tl_store *st)
{
    flush_job *j = &p->job;
    int64_t t0 = tl_now_mono_us();
    int rc = tl_store_flush(st, j->writes, j->n, j->err, sizeof j->err);
    tl_histogram_observe_us(&p->stats.redis_flush_seconds,
                            (uint64_t)(tl_now_mono_us() - t0));
    return rc;
}

static void *flusher_main(void *ud)
{
    tl_pipeline *p = ud;
    flush_job *j = &p->job;
    pthread_mutex_lock(&p->flock);
    for (;;) {
        while (!p->fquit && !(j->queued && !j->done))
            pthread_cond_wait(&p->fcond, &p->flock);
        if (p->fquit) break;
        pthread_mutex_unlock(&p->flock);
        int rc = run_flush(p, p->fstore);
        pthread_mutex_lock(&p->flock);
        j->rc = rc;
        j->done = 1;
        pthread_cond_broadcast(&p->fcond);
    }
    pthread_mutex_unlock(&p->flock);
    return NULL;
}

/* The job's state, which the flusher thread reads under flock. */
static void set_job(tl_pipeline *p, int queued, int done)
{
    pthread_mutex_lock(&p->flock);
    p->job.queued = queued;
    p->job.done = done;
    pthread_cond_broadcast(&p->fcond);
    pthread_mutex_unlock(&p->flock);
}

/* Hands the rendered job over: to the flusher thread, or, when this batch
 * must be committed before returning (commit_sync), runs it here. */
static void submit_job(tl_pipeline *p)
{
    flush_job *j = &p->job;
    if (p->commit_sync) {
        /* The flusher is idle (no job is queued), so j is ours. */
        j->rc = run_flush(p, p->store);
        set_job(p, 1, 1);
        return;
    }
    set_job(p, 1, 0);
}

/* The job is over (finished or discarded): its messages go, the slot is
 * free for the next batch. */
static void end_job(tl_pipeline *p)
{
    tl_batch_clear(&p->job.msgs);
    set_job(p, 0, 0);
}

static void wait_job(tl_pipeline *p)
{
    flush_job *j = &p->job;
    pthread_mutex_lock(&p->flock);
    while (j->queued && !j->done) pthread_cond_wait(&p->fcond, &p->flock);
    pthread_mutex_unlock(&p->flock);
}

/* A job that will not be finished (the batch after it failed): its
 * messages are not committed, so they are read again, as no-ops where the
 * flush went through. */
static void discard_job(tl_pipeline *p)
{
    wait_job(p);
    end_job(p);
}

/* A vector whose write was refused leaves the cache, and the current
 * batch's dirty list if it is there. */
static void drop_vec(tl_pipeline *p, tl_vec *v)
{
    if (v->dirty)
        for (size_t i = 0; i < p->ndirty; i++)
            if (p->dirty[i] == v) {
                p->dirty[i] = p->dirty[--p->ndirty];
                break;
            }
    tl_cache_remove(p->cache, v);
}

/* The previous batch's flush: an outage is retried here (with backoff,
 * the input paused), the results go back to the vectors, then its offsets
 * are committed. */
static int finish_job(tl_pipeline *p)
{
    flush_job *j = &p->job;
    if (!j->queued) return TL_OK;
    wait_job(p);
    int rc = j->rc, backoff = 100;
    char refused[TL_ERRSZ] = "";
    for (;;) {
        if (rc == TL_ERR) {
            /* Every reply arrived, but the server refused some writes (say a
             * key of another type in our keyspace): retrying cannot help, so
             * those customers are reported below and the rest goes on. */
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
        rc = run_flush(p, p->store);
    }
    for (size_t i = 0; i < j->n; i++) {
        tl_vec *v = j->vecs[i];
        const tl_store_write *w = &j->writes[i];
        if (w->result == TL_ERR) {
            tl_counter_add(&p->stats.store_errors, 1);
            tl_error("pipeline", "redis refused the vector of a customer, "
                     "which keeps its previous stored state: %s", refused);
            tl_debug("pipeline", "... customer %s", v->customer_id);
            drop_vec(p, v);
            continue;
        }
        if (w->result == TL_ERR_FENCED) {
            /* Someone else wrote this customer since we read it: we no longer
             * own its partition (a zombie after a rebalance). Our copy is
             * stale; drop it rather than overwrite newer state. */
            tl_counter_add(&p->stats.fenced, 1);
            tl_warn("pipeline",
                    "write of a customer vector refused: another instance "
                    "advanced it (this instance lost its partition)");
            drop_vec(p, v);
            continue;
        }
        for (size_t k = 0; k < w->nwm; k++)
            v->wm[j->wmk[i][k]].stored = w->wm[k].next;
        tl_counter_add(&p->stats.flushed, 1);
    }
    char err[TL_ERRSZ];
    /* Synchronous: an asynchronous commit that fails (a rebalance in
     * progress) is not sent again, and a partition that then stays quiet
     * keeps its committed offset behind for good (seen once in CI, the
     * real-broker multi-instance test under ASan).  Until failed commits
     * are re-sent, every batch waits for its commit as before. */
    if (tl_source_commit(p->src, &j->msgs, 0, err, sizeof err))
        /* Not fatal: the events will be consumed again and skipped by the
         * watermarks. */
        tl_warn("pipeline", "%s (the batch will be re-read and skipped)", err);
    p->stats.last_commit_ms = tl_now_mono_ms();
    atomic_store_explicit(&p->stats.redis_round_trips,
                          tl_store_round_trips(p->store) +
                              tl_store_round_trips(p->fstore),
                          memory_order_relaxed);
    atomic_store_explicit(&p->stats.redis_commands,
                          tl_store_commands(p->store) +
                              tl_store_commands(p->fstore),
                          memory_order_relaxed);
    end_job(p);
    return TL_OK;
}

/* Features, then rules on the updated vector; triggers are produced. */
static void apply_event(tl_pipeline *p, tl_vec *v, const tl_event *ev,
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
        if (emit(p, &p->firings[k], ev, m, &ctx)) {
            p->failed = 1;
            return;
        }
    tl_counter_add(&p->stats.applied, 1);
}

/* Decode, cache, load, features, rules and triggers of the batch. */
static int apply_batch(tl_pipeline *p)
{
    tl_batch *b = &p->batch;
    if (!p->stats.first_event_ms) p->stats.first_event_ms = tl_now_mono_ms();
    if (b->n > p->items_cap) {
        p->items_cap = b->n * 2;
        p->items = tl_xrealloc(p->items, p->items_cap * sizeof *p->items);
    }
    grow_vecs(p, b->n);
    tl_counter_add(&p->stats.events, b->n);
    tl_counter_add(&p->stats.batches, 1);

    for (size_t i = 0; i < b->n; i++) {
        const rd_kafka_message_t *m = b->msgs[i];
        item *it = &p->items[i];
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
    if (load_misses(p)) return TL_ERR;

    for (size_t i = 0; i < b->n; i++) {
        item *it = &p->items[i];
        if (!it->vec) continue;
        const rd_kafka_message_t *m = b->msgs[i];
        tl_vec *v = it->vec;
        tl_wm *wm = tl_vec_wm(v, rd_kafka_topic_name(m->rkt), m->partition);
        if (m->offset <= wm->applied) {
            tl_counter_add(&p->stats.duplicates, 1); /* applied before a crash or rebalance */
            continue;
        }
        const tl_event *ev = &it->ev;
        if (v->has_newest && ev->ts < v->newest - p->cfg->max_lateness_ms) {
            /* Too late to be placed exactly: it would rewrite history that
             * rules already acted on. It goes to the dead-letter topic, and
             * its offset counts as handled. */
            char why[192];
            snprintf(why, sizeof why,
                     "event time %lld ms is %lld ms before the customer's "
                     "newest event; events.max_lateness is %lld ms",
                     (long long)ev->ts, (long long)(v->newest - ev->ts),
                     (long long)p->cfg->max_lateness_ms);
            dead_letter(p, m, TL_REJECT_LATE, why);
            tl_counter_add(&p->stats.late, 1);
        } else {
            apply_event(p, v, ev, m);
            if (p->failed) return TL_ERR;
        }
        wm->applied = m->offset;
        if (!v->dirty) {
            v->dirty = 1;
            p->dirty[p->ndirty++] = v;
        }
    }
    return TL_OK;
}

/* Everything after polling: the delivery contract, in order, for this
 * batch (applied, triggers delivered, flush handed over) and for the one
 * before it (flush finished, offsets committed). */
static int process_batch(tl_pipeline *p)
{
    tl_batch *b = &p->batch;
    if (p->failed) return TL_ERR;
    /* An empty batch still finishes the job in flight: an input gone quiet
     * does not leave the last batch uncommitted. */
    if (!b->n && !p->job.queued) return TL_OK;
    int64_t t0 = tl_now_mono_us();
    p->in_batch = 1;
    tl_arena_reset(&p->arena);
    p->nmiss = p->ndirty = 0;
    if (b->n && apply_batch(p)) goto fail;
    if (finish_job(p)) goto fail;
    if (b->n) {
        char err[TL_ERRSZ];
        if (tl_sink_wait(p->sink, give_up, p, err, sizeof err)) {
            snprintf(p->fail_msg, sizeof p->fail_msg, "%s", err);
            goto fail;
        }
        /* Nothing is in flight: vectors may leave the cache now. */
        tl_cache_trim(p->cache);
        tl_gauge_set(&p->stats.cache_size, (int64_t)tl_cache_size(p->cache));
        render_job(p);
        submit_job(p);
        if (p->commit_sync && finish_job(p)) goto fail;
        tl_histogram_observe_us(&p->stats.batch_seconds,
                                (uint64_t)(tl_now_mono_us() - t0));
    }
    p->in_batch = 0;
    return TL_OK;
fail:
    if (p->job.queued) discard_job(p);
    /* Vectors of this batch were changed in memory but not stored: forget
     * them all so that a later run starts from Redis again. */
    if (p->abandon) {
        /* Not a failure: the partitions went to another owner, which reads
         * the uncommitted events again (same trigger ids, no double
         * counting thanks to the watermarks). */
        tl_warn("pipeline", "batch of %zu events abandoned: its partitions "
                "were revoked while it could not finish", b->n);
        p->abandon = 0;
        /* What is still assigned (a cooperative rebalance revokes only
         * some partitions) must not stay paused. */
        if (p->paused) tl_source_resume(p->src);
        p->paused = 0;
        tl_gauge_set(&p->stats.paused, 0);
    } else {
        p->failed = 1;
    }
    for (size_t i = 0; i < p->ndirty; i++) p->dirty[i]->dirty = 0;
    tl_cache_clear(p->cache);
    tl_gauge_set(&p->stats.cache_size, 0);
    p->ndirty = 0;
    tl_batch_clear(b);
    p->in_batch = 0;
    return TL_ERR;
}



/* Before partitions are given up: the last asynchronous commit is with the
 * coordinator when this returns (a failure only means re-reading). */
static void sync_commits(tl_pipeline *p)
{
    char err[TL_ERRSZ];
    if (tl_source_sync(p->src, err, sizeof err))
        tl_warn("pipeline", "%s (the last batch will be re-read and skipped)",
                err);
}

static void drain(void *ud)
{
    tl_pipeline *p = ud;
    if (p->in_batch) {
        /* A revocation while the batch waits for Redis: it cannot be
         * finished in time, so it is abandoned, with what was held. */
        p->abandon = 1;
        tl_batch_clear(&p->held);
        return;
    }
    p->commit_sync = 1;
    int rc = process_batch(p);
    p->commit_sync = 0;
    sync_commits(p);
    if (rc == TL_OK) {
        tl_cache_clear(p->cache);
        tl_gauge_set(&p->stats.cache_size, 0);
    }
}

tl_pipeline *tl_pipeline_new(const tl_config *cfg, const char *brokers,
                             char *err, size_t errsz)
{
    /* Until tl_pipeline_run supplies the caller's flag, a drain (consumer
     * close after a failed start) sees "not stopping". */
    static volatile sig_atomic_t not_stopping;
    tl_pipeline *p = tl_xcalloc(1, sizeof *p);
    p->stop = &not_stopping;
    p->cfg = cfg;
    tl_kafka_health_init(&p->stats.kafka);
    pthread_mutex_init(&p->obs_lock, NULL);
    p->stats.rule_triggers = tl_xcalloc(cfg->nrules + 1,
                                        sizeof *p->stats.rule_triggers);
    p->layout = (tl_layout){cfg->features, cfg->nfeatures, cfg->rules,
                            cfg->nrules, cfg->block_size, &cfg->ruleset};
    tl_arena_init(&p->arena, 1 << 20);
    tl_arena_init(&p->job.arena, 1 << 20);
    pthread_mutex_init(&p->flock, NULL);
    pthread_cond_init(&p->fcond, NULL);
    if (!brokers) brokers = cfg->brokers;
    p->brokers = tl_xstrdup(brokers);
    /* Redis is connected, and the group joined, in tl_pipeline_run: an
     * unreachable Redis at start is waited for, not fatal. */
    if (!(p->dec = tl_event_decoder_new(cfg->format, cfg->schema_json,
                                        cfg->writer_schema_json, err, errsz)) ||
        !(p->tcodec = tl_trigger_codec_new(NULL, err, errsz)) ||
        !(p->store = tl_store_new_lazy(cfg->redis_url,
                                       (int)cfg->redis_timeout_ms, err,
                                       errsz)) ||
        !(p->fstore = tl_store_new_lazy(cfg->redis_url,
                                        (int)cfg->redis_timeout_ms, err,
                                        errsz)) ||
        !(p->sink = tl_sink_new(cfg, brokers, err, errsz))) {
        tl_pipeline_free(p);
        return NULL;
    }
    tl_store_hide_keys(p->store);
    tl_store_hide_keys(p->fstore);
    int e = pthread_create(&p->flusher, NULL, flusher_main, p);
    if (e) {
        tl_errf(err, errsz, TL_ERR, "cannot start the flusher thread: %s",
                strerror(e));
        tl_pipeline_free(p);
        return NULL;
    }
    p->flusher_started = 1;
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
                            next->nrules, next->block_size, &next->ruleset};
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

int tl_pipeline_assigned(const tl_pipeline *p)
{
    return p->src ? tl_source_assigned(p->src) : 0;
}

const tl_config *tl_pipeline_config(const tl_pipeline *p) { return p->cfg; }

static uint64_t dead_letters(const tl_stats *s)
{
    uint64_t n = 0;
    for (int i = 1; i < TL_REJECT__COUNT; i++) n += s->dead_letters[i];
    return n;
}

static void log_progress(tl_pipeline *p, int64_t *last_ms, uint64_t *last_n)
{
    int64_t now = tl_now_mono_ms();
    if (now - *last_ms < 10000) return;
    const tl_stats *s = &p->stats;
    double rate = (double)(s->events - *last_n) * 1000.0 / (double)(now - *last_ms);
    tl_info("pipeline",
            "%" PRIu64 " events (%.0f/s), %" PRIu64 " triggers, %" PRIu64
            " dead letters, %zu customers cached",
            s->events, rate, s->triggers,
            dead_letters(s), tl_cache_size(p->cache));
    *last_ms = now;
    *last_n = s->events;
}

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
        tl_gauge_set(&p->stats.redis_down, 1);
        if (*p->stop) return tl_errf(err, errsz, TL_ERR_IO,
                                      "stopped while waiting for redis");
        if (p->tick) p->tick(p->tick_ud);
        tl_sleep_ms(backoff);
        if (backoff < 5000) backoff *= 2;
    }
    if (logged) tl_info("pipeline", "redis available");
    tl_gauge_set(&p->stats.redis_down, 0);
    p->src = tl_source_new(p->cfg, p->brokers, drain, p, &p->stats.kafka, err,
                           errsz);
    return p->src ? TL_OK : TL_ERR_CONFIG;
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
        /* What arrived while paused comes first, in its order. */
        for (size_t i = 0; i < p->held.n; i++) {
            if (p->batch.n == p->batch.cap) {
                p->batch.cap = p->batch.cap ? p->batch.cap * 2 : 1024;
                p->batch.msgs = tl_xrealloc(p->batch.msgs,
                                            p->batch.cap * sizeof *p->batch.msgs);
            }
            p->batch.msgs[p->batch.n++] = p->held.msgs[i];
        }
        p->held.n = 0;
        /* In slices of at most a second, so that the tick keeps its pace
         * whatever kafka.batch_timeout is. */
        int64_t fill_end = tl_now_mono_ms() + p->cfg->batch_timeout_ms;
        for (;;) {
            int64_t left = fill_end - tl_now_mono_ms();
            tl_source_poll(p->src, &p->batch, (size_t)p->cfg->batch_size,
                           (int)(left < 0 ? 0 : left > 1000 ? 1000 : left),
                           stop);
            if (p->tick) p->tick(p->tick_ud);
            if (*stop || p->batch.n >= (size_t)p->cfg->batch_size ||
                tl_now_mono_ms() >= fill_end)
                break;
        }
        if (*stop > 1) break;
        process_batch(p);
        log_progress(p, &last_ms, &last_n);
        /* The batch boundary: nothing dirty; once the job in flight is
         * finished (an empty batch does that), nothing in flight. */
        if (p->pending && !p->failed && process_batch(p) == TL_OK)
            apply_reload(p);
    }
    if (*stop > 1 && !p->failed) {
        p->failed = 1;
        snprintf(p->fail_msg, sizeof p->fail_msg,
                 "stopped at once by a second signal; uncommitted events will "
                 "be consumed again at the next start");
    }
    p->commit_sync = 1;
    if (!p->failed) process_batch(p);
    sync_commits(p);
    tl_gauge_set(&p->stats.running, 0);
    if (p->failed)
        return tl_errf(err, errsz, TL_ERR_IO, "%s", p->fail_msg);
    return TL_OK;
}

const tl_stats *tl_pipeline_stats(const tl_pipeline *p) { return &p->stats; }

void tl_pipeline_free(tl_pipeline *p)
{
    if (!p) return;
    /* Closing the consumer revokes its partitions, which drains the batch. */
    tl_source_free(p->src);
    if (p->flusher_started) {
        if (p->job.queued) discard_job(p);
        pthread_mutex_lock(&p->flock);
        p->fquit = 1;
        pthread_cond_broadcast(&p->fcond);
        pthread_mutex_unlock(&p->flock);
        pthread_join(p->flusher, NULL);
    }
    pthread_cond_destroy(&p->fcond);
    pthread_mutex_destroy(&p->flock);
    tl_batch_free(&p->job.msgs);
    tl_arena_free(&p->job.arena);
    free(p->job.writes);
    free(p->job.vecs);
    free(p->job.wmk);
    tl_store_free(p->fstore);
    tl_batch_free(&p->batch);
    tl_batch_free(&p->held);
    free(p->brokers);
    tl_sink_free(p->sink);
    tl_store_free(p->store);
    tl_cache_free(p->cache);
    tl_trigger_codec_free(p->tcodec);
    tl_event_decoder_free(p->dec);
    tl_arena_free(&p->arena);
    free(p->items);
    free(p->misses);
    free(p->dirty);
    free(p->firings);
    free(p->why);
    free(p->stats.rule_triggers);
    pthread_mutex_destroy(&p->obs_lock);
    tl_kafka_health_destroy(&p->stats.kafka);
    tl_event_decoder_free(p->pending_dec);
    tl_config_free(p->pending);
    tl_config_free(p->owned);
    free(p);
}

/* ---- observation from another thread ------------------------------------ */

static void lag_sample(void *ud, const tl_lag *l)
{
    char part[16];
    snprintf(part, sizeof part, "%" PRId32, l->partition);
    const char *lb[] = {"topic", l->topic, "partition", part, NULL};
    tl_prom_sample_u64(ud, "tailor_consumer_lag", lb, (uint64_t)l->lag);
}

/* A counter family by reason, from index 1 (0 means "none"). */
static void by_reason(tl_buf *b, const char *name, const char *help,
                      const char *const *reasons, const tl_counter *c, int n)
{
    tl_prom_family(b, name, "counter", help);
    for (int i = 1; i < n; i++) {
        const char *lb[] = {"reason", reasons[i], NULL};
        tl_prom_sample_u64(b, name, lb, tl_counter_get(&c[i]));
    }
}

void tl_pipeline_metrics(const tl_pipeline *cp, tl_buf *b)
{
    /* Only atomics, the lag table (under its lock) and, under obs_lock, the
     * config and per-rule counters a reload may swap are read here. */
    tl_pipeline *p = (tl_pipeline *)cp;
    pthread_mutex_lock(&p->obs_lock);
    tl_stats *s = &p->stats;
    const tl_config *cfg = p->cfg;

    uint64_t dead = 0;
    for (int i = 1; i < TL_REJECT__COUNT; i++)
        dead += tl_counter_get(&s->dead_letters[i]);
    tl_prom_one_u64(b, "tailor_events_consumed_total", "counter",
                    "Input messages taken into a batch (a batch abandoned or "
                    "retried after a restart counts again).",
                    tl_counter_get(&s->events));
    tl_prom_family(b, "tailor_events_total", "counter",
                   "Input events by result: applied to a vector, duplicate "
                   "(at or below the watermark, a no-op), dead_letter.");
    const char *applied[] = {"result", "applied", NULL};
    const char *dup[] = {"result", "duplicate", NULL};
    const char *dl[] = {"result", "dead_letter", NULL};
    tl_prom_sample_u64(b, "tailor_events_total", applied,
                       tl_counter_get(&s->applied));
    tl_prom_sample_u64(b, "tailor_events_total", dup,
                       tl_counter_get(&s->duplicates));
    tl_prom_sample_u64(b, "tailor_events_total", dl, dead);
    const char *rejects[TL_REJECT__COUNT];
    for (int i = 1; i < TL_REJECT__COUNT; i++)
        rejects[i] = tl_reject_name((tl_reject)i);
    by_reason(b, "tailor_dead_letters_total",
              "Events sent to the dead-letter topic, by reason.", rejects,
              s->dead_letters, TL_REJECT__COUNT);
    tl_prom_family(b, "tailor_triggers_total", "counter",
                   "Triggers produced, by rule (holdouts included).");
    for (size_t i = 0; i < cfg->nrules; i++) {
        const char *lb[] = {"rule", cfg->rules[i].name, "rule_version",
                            cfg->rules[i].version, NULL};
        tl_prom_sample_u64(b, "tailor_triggers_total", lb,
                           tl_counter_get(&s->rule_triggers[i]));
    }
    tl_prom_one_u64(b, "tailor_trigger_holdouts_total", "counter",
                    "Triggers produced for a control group (holdout).",
                    tl_counter_get(&s->holdouts));
    static const char *const sup[TL_SUP__COUNT] = {
        [TL_SUP_COOLDOWN] = "cooldown", [TL_SUP_QUIET_HOURS] = "quiet_hours",
        [TL_SUP_CAP] = "cap", [TL_SUP_GROUP] = "group"};
    by_reason(b, "tailor_triggers_suppressed_total",
              "Rule matches not emitted, by reason.", sup, s->suppressed,
              TL_SUP__COUNT);

    tl_prom_one_u64(b, "tailor_batches_total", "counter",
                    "Batches committed or abandoned.",
                    tl_counter_get(&s->batches));
    tl_prom_family(b, "tailor_batch_duration_seconds", "histogram",
                   "From decoding a batch to handing its flush over (the "
                   "previous batch's flush and commit included).");
    tl_prom_histogram(b, "tailor_batch_duration_seconds", NULL,
                      &s->batch_seconds);
    tl_prom_family(b, "tailor_redis_duration_seconds", "histogram",
                   "Redis pipelined round trips (failed attempts included).");
    const char *load[] = {"op", "load", NULL}, *flush[] = {"op", "flush", NULL};
    tl_prom_histogram(b, "tailor_redis_duration_seconds", load,
                      &s->redis_load_seconds);
    tl_prom_histogram(b, "tailor_redis_duration_seconds", flush,
                      &s->redis_flush_seconds);
    tl_prom_one_u64(b, "tailor_vectors_written_total", "counter",
                    "Customer vectors written to Redis.",
                    tl_counter_get(&s->flushed));
    tl_prom_family(b, "tailor_vector_write_errors_total", "counter",
                   "Vector writes not done, by reason: fenced (another "
                   "instance owns the partition), refused (Redis error "
                   "reply).");
    const char *fen[] = {"reason", "fenced", NULL};
    const char *ref[] = {"reason", "refused", NULL};
    tl_prom_sample_u64(b, "tailor_vector_write_errors_total", fen,
                       tl_counter_get(&s->fenced));
    tl_prom_sample_u64(b, "tailor_vector_write_errors_total", ref,
                       tl_counter_get(&s->store_errors));
    tl_prom_one_u64(b, "tailor_redis_round_trips_total", "counter",
                    "Round trips to Redis (a pipelined batch to one node is "
                    "one).",
                    tl_counter_get(&s->redis_round_trips));
    tl_prom_one_u64(b, "tailor_redis_commands_total", "counter",
                    "Commands sent to Redis.",
                    tl_counter_get(&s->redis_commands));
    tl_prom_one_u64(b, "tailor_state_errors_total", "counter",
                    "Malformed stored feature state (that feature restarted).",
                    tl_counter_get(&s->state_errors));
    tl_prom_one_u64(b, "tailor_commit_errors_total", "counter",
                    "Offset commits that failed (the batch is re-read and "
                    "skipped).",
                    tl_counter_get(&s->kafka.commit_errors));

    uint64_t hits = tl_counter_get(&s->cache_hits);
    uint64_t misses = tl_counter_get(&s->cache_misses);
    tl_prom_one_u64(b, "tailor_cache_customers", "gauge",
                    "Customer vectors held in memory.",
                    (uint64_t)tl_gauge_get(&s->cache_size));
    tl_prom_family(b, "tailor_cache_lookups_total", "counter",
                   "Vector lookups of decoded events: hit (in memory) or "
                   "miss (loaded from Redis).");
    const char *hit[] = {"result", "hit", NULL}, *miss[] = {"result", "miss", NULL};
    tl_prom_sample_u64(b, "tailor_cache_lookups_total", hit, hits);
    tl_prom_sample_u64(b, "tailor_cache_lookups_total", miss, misses);
    tl_prom_one(b, "tailor_cache_hit_ratio", "gauge",
                "Hits over lookups since start (0 before the first).",
                hits + misses ? (double)hits / (double)(hits + misses) : 0);

    tl_kafka_health *k = &s->kafka;
    tl_prom_family(b, "tailor_consumer_lag", "gauge",
                   "Messages behind the high watermark (committed offset), "
                   "per assigned partition, as of librdkafka's last "
                   "statistics (1 s).");
    tl_kafka_health_lag(k, lag_sample, b);
    tl_prom_one_u64(b, "tailor_rebalances_total", "counter",
                    "Partition assignments and revocations.",
                    tl_counter_get(&k->rebalances));
    tl_prom_one(b, "tailor_assigned_partitions", "gauge",
                "Partitions assigned (-1: none yet, or being revoked).",
                (double)tl_gauge_get(&k->assigned));
    tl_prom_one(b, "tailor_kafka_brokers_up", "gauge",
                "Brokers connected (-1: not known yet).",
                (double)tl_gauge_get(&k->brokers_up));
    tl_prom_one_u64(b, "tailor_redis_up", "gauge",
                    "0 while a Redis outage holds the pipeline.",
                    tl_gauge_get(&s->redis_down) ? 0 : 1);
    tl_prom_one_u64(b, "tailor_paused", "gauge",
                    "1 while the input partitions are paused (backpressure).",
                    (uint64_t)tl_gauge_get(&s->paused));
    tl_prom_family(b, "tailor_config_info", "gauge",
                   "The running configuration: its file and a hash of its "
                   "text (config_version).");
    const char *ci[] = {"path", cfg->path, "config_version", cfg->version,
                        NULL};
    tl_prom_sample_u64(b, "tailor_config_info", ci, 1);
    pthread_mutex_unlock(&p->obs_lock);
}

int tl_pipeline_ready(const tl_pipeline *cp, char *why, size_t whysz)
{
    tl_pipeline *p = (tl_pipeline *)cp;
    const char *no = NULL;
    if (tl_gauge_get(&p->stats.redis_down)) no = "redis unreachable";
    else if (!tl_gauge_get(&p->stats.running)) no = "not running";
    else if (tl_gauge_get(&p->stats.kafka.assigned) < 0)
        no = "no partition assignment";
    else if (tl_gauge_get(&p->stats.kafka.brokers_up) <= 0)
        no = "kafka brokers unreachable";
    if (no) snprintf(why, whysz, "%s", no);
    return !no;
}
