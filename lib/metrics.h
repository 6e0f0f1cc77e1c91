/*
 * metrics — counters and histograms that one thread (the pipeline) updates
 * and another (the HTTP server) reads, the Prometheus text exposition
 * format 0.0.4 written into a growable buffer, and a strict parser of that
 * format (for `tailorctl stats` and the tests).
 *
 * Concurrency: every counter has a single writer, so tl_counter_add is a
 * relaxed load plus a relaxed store (a plain add on x86, no lock prefix, no
 * allocation); readers on other threads see each value whole (never torn)
 * but possibly a few events old, which is what a scrape needs.
 *
 * Ownership: tl_prom_parse calls back
 * with pointers into its own scratch, valid during the callback only.
 */
#ifndef TL_METRICS_H
#define TL_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef _Atomic uint64_t tl_counter;
typedef _Atomic int64_t tl_gauge;

static inline void tl_counter_add(tl_counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}
static inline uint64_t tl_counter_get(const tl_counter *c)
{
    return atomic_load_explicit((tl_counter *)c, memory_order_relaxed);
}
static inline void tl_gauge_set(tl_gauge *g, int64_t v)
{
    atomic_store_explicit(g, v, memory_order_relaxed);
}
static inline int64_t tl_gauge_get(const tl_gauge *g)
{
    return atomic_load_explicit((tl_gauge *)g, memory_order_relaxed);
}

/* Latency histogram in seconds with fixed bounds (1 ms to 10 s, roughly
 * ×2.5 per bucket): cumulative buckets are computed when written, so an
 * observation is one bucket search plus two counter adds. */
#define TL_HIST_BUCKETS 12
extern const double tl_hist_bounds[TL_HIST_BUCKETS];
typedef struct tl_histogram {
    tl_counter bucket[TL_HIST_BUCKETS + 1]; /* last: above every bound */
    tl_counter sum_us;                      /* microseconds */
} tl_histogram;

void tl_histogram_observe_us(tl_histogram *h, uint64_t us);

/* Monotonic clock in microseconds, for latencies. */
int64_t tl_now_mono_us(void);

/* Exposition writers.  Label values are escaped (\\, \", \n); names are the
 * caller's constants.  `labels` is NULL or alternating name, value, ending
 * with NULL. */
void tl_prom_family(tl_buf *b, const char *name, const char *type,
                    const char *help);
void tl_prom_sample(tl_buf *b, const char *name, const char *const *labels,
                    double value);
void tl_prom_sample_u64(tl_buf *b, const char *name,
                        const char *const *labels, uint64_t value);
/* A family of one unlabelled sample: HELP, TYPE and the value. */
void tl_prom_one(tl_buf *b, const char *name, const char *type,
                 const char *help, double value);
void tl_prom_one_u64(tl_buf *b, const char *name, const char *type,
                     const char *help, uint64_t value);
/* _bucket{le=...} (cumulative), _sum and _count of one series of family
 * `name` (whose TYPE line the caller wrote as histogram). */
void tl_prom_histogram(tl_buf *b, const char *name, const char *const *labels,
                       const tl_histogram *h);

/*
 * Parses text in the exposition format 0.0.4, strictly: every line is
 * empty, a comment, "# HELP name text", "# TYPE name counter|gauge|
 * histogram|summary|untyped" (at most one per family, before its samples),
 * or a sample `name{l="v",...} value [timestamp]` with a valid metric name,
 * valid label names, properly escaped label values, no duplicate label, and
 * a value Go's ParseFloat accepts (incl. +Inf, -Inf, NaN).  The sample's
 * family must have had its TYPE line (histogram samples: name_bucket,
 * _sum, _count; bucket samples need `le`).  The text must end with '\n'.
 * For each sample, cb(ud, name, labels, nlabels, value) with labels as
 * alternating name, value (unescaped).  TL_OK, or TL_ERR_DECODE with
 * "line N: what" in err.
 */
typedef void (*tl_prom_sample_cb)(void *ud, const char *name,
                                  const char *const *labels, size_t nlabels,
                                  double value);
int tl_prom_parse(const char *text, size_t len, tl_prom_sample_cb cb, void *ud,
                  char *err, size_t errsz);

#endif
