#include "flusher.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

struct tl_flusher {
    tl_flush_job job;
    tl_arena arena;        /* the writes' text, until the job ends */
    size_t cap;
    int busy;              /* rendered, not ended (pipeline thread only) */
    tl_store *store;       /* the thread's connection */
    tl_histogram *seconds;
    pthread_t thread;
    pthread_mutex_t lock;  /* queued, done, quit */
    pthread_cond_t cond;
    int queued;            /* handed to the thread, attempt not over */
    int quit;
};

/* One attempt at the job's writes on store, timed. */
static int attempt(tl_flusher *f, tl_store *store)
{
    tl_flush_job *j = &f->job;
    int64_t t0 = tl_now_mono_us();
    int rc = tl_store_flush(store, j->writes, j->n, j->err, sizeof j->err);
    tl_histogram_observe_us(f->seconds, (uint64_t)(tl_now_mono_us() - t0));
    return rc;
}

static void *flusher_main(void *ud)
{
    tl_flusher *f = ud;
    pthread_mutex_lock(&f->lock);
    for (;;) {
        while (!f->quit && !f->queued) pthread_cond_wait(&f->cond, &f->lock);
        if (f->quit) break;
        pthread_mutex_unlock(&f->lock);
        int rc = attempt(f, f->store);
        pthread_mutex_lock(&f->lock);
        f->job.rc = rc;
        f->queued = 0;
        pthread_cond_broadcast(&f->cond);
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

tl_flusher *tl_flusher_new(tl_store *store, tl_histogram *seconds, char *err,
                           size_t errsz)
{
    tl_flusher *f = tl_xcalloc(1, sizeof *f);
    f->store = store;
    f->seconds = seconds;
    tl_arena_init(&f->arena, 1 << 20);
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    int e = pthread_create(&f->thread, NULL, flusher_main, f);
    if (e) {
        tl_errf(err, errsz, TL_ERR, "cannot start the flusher thread: %s",
                strerror(e));
        pthread_cond_destroy(&f->cond);
        pthread_mutex_destroy(&f->lock);
        tl_arena_free(&f->arena);
        free(f);
        return NULL;
    }
    return f;
}

int tl_flusher_wait(tl_flusher *f)
{
    pthread_mutex_lock(&f->lock);
    while (f->queued) pthread_cond_wait(&f->cond, &f->lock);
    pthread_mutex_unlock(&f->lock);
    return f->job.rc;
}

int tl_flusher_done(tl_flusher *f)
{
    pthread_mutex_lock(&f->lock);
    int done = !f->queued;
    pthread_mutex_unlock(&f->lock);
    return done;
}

void tl_flusher_free(tl_flusher *f)
{
    if (!f) return;
    tl_flusher_end(f, NULL);
    pthread_mutex_lock(&f->lock);
    f->quit = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    tl_batch_free(&f->job.msgs);
    tl_arena_free(&f->arena);
    free(f->job.writes);
    free(f->job.vecs);
    free(f->job.wmk);
    tl_store_free(f->store);
    free(f);
}

static void grow(tl_flusher *f, size_t n)
{
    if (n <= f->cap) return;
    tl_flush_job *j = &f->job;
    f->cap = n * 2;
    j->writes = tl_xrealloc(j->writes, f->cap * sizeof *j->writes);
    j->vecs = tl_xrealloc(j->vecs, f->cap * sizeof *j->vecs);
    j->wmk = tl_xrealloc(j->wmk, f->cap * sizeof *j->wmk);
}

/* The watermarks v's batch advanced, each with the index of its tl_wm. */
static void render_wms(tl_arena *a, const tl_vec *v, tl_store_write *w,
                       uint32_t **wmk_out)
{
    tl_store_wm *wm = tl_arena_alloc(a, (v->nwm ? v->nwm : 1) * sizeof *wm);
    uint32_t *wmk = tl_arena_alloc(a, (v->nwm ? v->nwm : 1) * sizeof *wmk);
    size_t nwm = 0;
    for (size_t k = 0; k < v->nwm; k++) {
        if (v->wm[k].applied == v->wm[k].stored) continue;
        size_t tl = strlen(v->wm[k].topic);
        char *field = tl_arena_alloc(a, tl + 20);
        int n = snprintf(field, tl + 20, "_o:%s:%" PRId32, v->wm[k].topic,
                         v->wm[k].partition);
        wmk[nwm] = (uint32_t)k;
        wm[nwm++] = (tl_store_wm){field, (size_t)n, v->wm[k].stored,
                                  v->wm[k].applied};
    }
    w->wm = wm;
    w->nwm = nwm;
    *wmk_out = wmk;
}

/* v's fields to set and delete (tl_vec_encode). */
static void render_fields(tl_arena *a, const tl_vec *v, const tl_layout *l,
                          tl_store_write *w)
{
    size_t maxf = tl_vec_max_fields(l), maxd = tl_vec_max_dels(l) + 1;
    const char **fields = tl_arena_alloc(a, maxf * sizeof *fields);
    const char **vals = tl_arena_alloc(a, maxf * sizeof *vals);
    size_t *flens = tl_arena_alloc(a, maxf * sizeof *flens);
    size_t *vlens = tl_arena_alloc(a, maxf * sizeof *vlens);
    const char **dels = tl_arena_alloc(a, maxd * sizeof *dels);
    size_t *dlens = tl_arena_alloc(a, maxd * sizeof *dlens);
    w->nfields = tl_vec_encode(v, l, a, fields, flens, vals, vlens, dels,
                               dlens, &w->ndels);
    w->fields = fields;
    w->flens = flens;
    w->vals = vals;
    w->vlens = vlens;
    w->dels = dels;
    w->dlens = dlens;
}

void tl_flusher_render(tl_flusher *f, tl_vec **vecs, size_t n,
                       const tl_layout *l, const char *prefix, int64_t ttl_ms,
                       tl_batch *msgs)
{
    TL_ASSERT(!f->busy);
    tl_flush_job *j = &f->job;
    tl_arena_reset(&f->arena);
    grow(f, n);
    for (size_t i = 0; i < n; i++) {
        tl_vec *v = vecs[i];
        tl_store_write *w = &j->writes[i];
        memset(w, 0, sizeof *w);
        w->key = tl_vec_key(&f->arena, prefix, v->customer_id, v->idlen,
                              &w->keylen);
        render_wms(&f->arena, v, w, &j->wmk[i]);
        render_fields(&f->arena, v, l, w);
        w->ttl_ms = ttl_ms;
        j->vecs[i] = v;
        /* What the next batch changes is its own to write. */
        v->dirty = 0;
        v->changed = 0;
    }
    j->n = n;
    j->rc = TL_OK;
    j->err[0] = '\0';
    tl_batch_move(&j->msgs, msgs);
    f->busy = 1;
}

void tl_flusher_submit(tl_flusher *f)
{
    pthread_mutex_lock(&f->lock);
    f->queued = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

int tl_flusher_run(tl_flusher *f, tl_store *store)
{
    tl_flusher_wait(f);
    f->job.rc = attempt(f, store);
    return f->job.rc;
}

int tl_flusher_busy(const tl_flusher *f) { return f->busy; }

tl_flush_job *tl_flusher_job(tl_flusher *f) { return &f->job; }

void tl_flusher_end(tl_flusher *f, tl_batch *keep)
{
    tl_flusher_wait(f);
    if (keep)
        tl_batch_move(keep, &f->job.msgs);
    else
        tl_batch_clear(&f->job.msgs);
    f->job.n = 0;
    f->busy = 0;
}

const tl_store *tl_flusher_store(const tl_flusher *f) { return f->store; }
