/*
 * flusher — one batch's vector writes, written behind.
 *
 * The pipeline renders a batch's dirty vectors into the flusher's job
 * (tl_flusher_render), hands it over (tl_flusher_submit) and goes on
 * decoding and applying the next batch while the flusher's thread runs the
 * writes on a Redis connection of its own.  The next batch then waits for
 * the attempt (tl_flusher_wait), retries an outage itself on its own
 * connection (tl_flusher_run), reads the results (tl_flusher_job) and
 * commits the job's messages; tl_flusher_end frees the slot.  At most one
 * job exists at a time.
 *
 * Threads: the flusher's thread touches only the job's writes and its
 * store, between submit and the end of its attempt; everything else is the
 * pipeline thread's.  The job's mutex orders the two.
 *
 * Ownership: the flusher owns its store (given to tl_flusher_new), the
 * job's rendered text and the messages moved into it; the vectors are the
 * cache's, and must stay in it until the job ends.
 */
#ifndef TL_FLUSHER_H
#define TL_FLUSHER_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "metrics.h"
#include "vec.h"
#include "store.h"

typedef struct tl_flush_job {
    tl_store_write *writes; /* writes[i] stores vecs[i] */
    tl_vec **vecs;
    uint32_t **wmk;         /* wmk[i][k]: index in vecs[i]->wm of
                             * writes[i].wm[k] */
    size_t n;
    tl_batch msgs;          /* committed once the writes are done */
    int rc;                 /* the last attempt's result, and its message */
    char err[TL_ERRSZ];
} tl_flush_job;

typedef struct tl_flusher tl_flusher;

/* Starts the thread on store (the flusher takes it); every attempt's time
 * is observed in seconds (borrowed, outlives the flusher).  NULL with err
 * when the thread cannot start. */
tl_flusher *tl_flusher_new(tl_store *store, tl_histogram *seconds, char *err,
                           size_t errsz);
/* Waits for an attempt in progress, stops the thread, frees. */
void tl_flusher_free(tl_flusher *f);

/* Renders vecs[0..n) (the job must be free) and moves msgs into the job;
 * the vectors' dirty and changed marks are cleared (what changes next is
 * the next batch's to write). */
void tl_flusher_render(tl_flusher *f, tl_vec **vecs, size_t n,
                       const tl_layout *l, const char *prefix, int64_t ttl_ms,
                       tl_batch *msgs);

/* Hands the rendered job to the thread. */
void tl_flusher_submit(tl_flusher *f);
/* Runs one attempt here, on store (the thread is idle: the job was not
 * submitted, or its attempt is over).  Returns its result. */
int tl_flusher_run(tl_flusher *f, tl_store *store);
/* Waits for the thread's attempt; returns its result. */
int tl_flusher_wait(tl_flusher *f);
/* Whether the thread's attempt is over (or none was handed over), without
 * waiting. */
int tl_flusher_done(tl_flusher *f);

/* Whether a job is rendered and not yet ended. */
int tl_flusher_busy(const tl_flusher *f);
/* The job, for its results and messages (pipeline thread, not while an
 * attempt runs). */
tl_flush_job *tl_flusher_job(tl_flusher *f);
/* The job is over: its messages go to keep (NULL: destroyed), the slot is
 * free.  Waits for an attempt in progress first. */
void tl_flusher_end(tl_flusher *f, tl_batch *keep);

/* The flusher's store's counters (round trips, commands). */
const tl_store *tl_flusher_store(const tl_flusher *f);

#endif
