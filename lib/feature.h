/*
 * feature — feature kinds and their pure update, read and (de)serialization
 * functions.  No I/O.
 *
 * A customer's vector is one contiguous state block; each feature owns the
 * fixed-size slice [offset, offset + size) of it, laid out once at config load
 * by tl_features_layout.  Fixed sizes mean a vector is allocated once per
 * customer and updating it never allocates.
 *
 * Every slice starts with `int64_t updated`: the event time (ms) of the last
 * event that changed the feature, 0 when it never did (then it reads as null).
 *
 * Time is event time: windows are positioned by the event's ts, never the
 * clock.  Reads take `now`, the ts of the event being processed.
 *
 * Kinds ("matching" = the event passes `where` and `field` is not null):
 *   count          matching events                                 -> number
 *   sum, min, max, avg   of `field` (number)                       -> number
 *   last           `field` of the latest matching event by ts (a
 *                  tie goes to the later arrival)                  -> field's type
 *   first_seen, last_seen   ts (epoch ms) of the earliest/latest   -> number
 *   window_count, window_sum   over ts in (now - window, now], in
 *                  buckets of `resolution` (default window/30)     -> number
 *   decayed_count, decayed_sum   exponentially decayed with
 *                  `half_life`, stored as (value, reference time)  -> number
 *   top_k          the k most frequent values of `field` (string),
 *                  Space-Saving over `capacity` counters, counts
 *                  decayed with optional `half_life`; ranked by the
 *                  guaranteed count (count - its overestimate, exact
 *                  while nothing was evicted), ties by value       -> list<string>
 *   distinct       number of distinct values of `field`: exact up
 *                  to `exact_up_to`, then a HyperLogLog sketch of
 *                  2^precision registers (error ~1.04/sqrt(2^p))   -> number
 *   last_n         the last `n` values of `field` by ts, most
 *                  recent first                                    -> list of field's type
 *   since          seconds from feature `of` (first_seen/last_seen)
 *                  to now                                          -> number
 * Any kind may have `ttl`: a value whose last update is older than ttl at
 * `now` reads as null.
 *
 * Ownership: tl_feature owns name and its expressions (tl_feature_clear).
 *
 * Files: feature.c (kinds, finish, apply, read), feature_state.c (save and
 * load of the internal state), feature_int.h (the slice layout both use).
 */
#ifndef TL_FEATURE_H
#define TL_FEATURE_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "expr.h"

typedef enum tl_feature_kind {
    TL_FK_COUNT = 0,
    TL_FK_SUM,
    TL_FK_LAST,
    TL_FK_LAST_SEEN,
    TL_FK_WINDOW_COUNT,
    TL_FK_MIN,
    TL_FK_MAX,
    TL_FK_AVG,
    TL_FK_FIRST_SEEN,
    TL_FK_WINDOW_SUM,
    TL_FK_DECAYED_COUNT,
    TL_FK_DECAYED_SUM,
    TL_FK_TOP_K,
    TL_FK_DISTINCT,
    TL_FK_LAST_N,
    TL_FK_SINCE,
    TL_FK__COUNT
} tl_feature_kind;

/* Whether a kind takes an option: not allowed, optional or required. */
enum { TL_OPT_NO = 0, TL_OPT_MAY = 1, TL_OPT_MUST = 2 };

/* What a kind needs from its configuration, for the config loader (which
 * rejects options a kind does not take, and reports missing required ones). */
typedef struct tl_feature_kind_info {
    const char *name;   /* "count", "sum", ... */
    int needs_field;    /* `field` is required (and allowed) */
    tl_type field_type; /* required type of field; TL_T_NULL: number or string */
    int needs_window;   /* `window` required, `resolution` allowed */
    int half_life;      /* TL_OPT_*: `half_life` */
    int k;              /* TL_OPT_*: `k` (and `capacity` optional with it) */
    int n;              /* TL_OPT_*: `n` */
    int bounds;         /* TL_OPT_*: `exact_up_to`, `precision` (optional) */
    int of;             /* TL_OPT_*: `of` (name of a first_seen/last_seen) */
} tl_feature_kind_info;

const tl_feature_kind_info *tl_feature_kind_get(tl_feature_kind k);
/* 0 and *out for a known kind name, else -1. */
int tl_feature_kind_parse(const char *name, tl_feature_kind *out);
/* Comma-separated list of kind names, for error messages. */
const char *tl_feature_kind_list(void);

#define TL_FEATURE_DEFAULT_MAX_LEN 64
#define TL_FEATURE_MAX_BUCKETS 4096

typedef struct tl_feature {
    char *name;
    tl_feature_kind kind;
    tl_expr *where;        /* NULL: every event matches */
    tl_expr *field;        /* value expression for sum/last; else NULL */
    int64_t window_ms;     /* window_count */
    int64_t resolution_ms; /* window_count bucket width */
    uint32_t nbuckets;     /* window_ms / resolution_ms */
    uint32_t max_len;      /* string values kept (last, last_n, top_k):
                            * longer ones are cut at a UTF-8 boundary */
    int64_t half_life_ms;  /* decayed_*, top_k (0: top_k without decay) */
    int64_t ttl_ms;        /* 0: never expires */
    uint32_t k;            /* top_k: values exposed */
    uint32_t capacity;     /* top_k: values tracked (0 = default max(10, 3k)) */
    uint32_t n;            /* last_n */
    uint32_t exact_up_to;  /* distinct: exact bound (0 = default 100) */
    uint32_t precision;    /* distinct: HLL precision 4..16 (0 = default 10) */
    int of;                /* since: index of its first_seen/last_seen
                            * feature in the config's feature array */
    const struct tl_feature *of_feature; /* since: set by tl_feature_finish */
    tl_type type;          /* type of the value read in rules */
    size_t offset, size;   /* slice of the vector's state block */
} tl_feature;

/*
 * Finishes a feature whose name, kind, where, field, window_ms,
 * resolution_ms (0 = default), max_len (0 = default) and the kind's options
 * above the caller set (`of` must already point at a finished feature of
 * `all`, which may be NULL for kinds other than since):
 * checks what the kind requires, derives type and nbuckets and the slice size.
 * Returns TL_OK or TL_ERR_CONFIG with a message naming the offending key, e.g.
 * "window 30d is not a multiple of resolution 7d".
 */
int tl_feature_finish(tl_feature *f, const tl_feature *all, char *err,
                      size_t errsz);

/* Assigns offsets to n finished features starting at `base`; returns the end
 * offset (the total size when base is 0), 8-byte aligned. */
size_t tl_features_layout(tl_feature *fs, size_t n, size_t base);

/* Zeroes a feature's slice (a customer never seen). */
void tl_feature_reset(const tl_feature *f, unsigned char *block);

/* Applies one event: evaluates `where` and `field` with fetch/ud (the event's
 * names) and updates the slice.  Returns 1 if the slice may have changed,
 * 0 if it certainly did not (the event does not count for the feature):
 * the flush writes only the features that changed (see tl_vec_encode). */
int tl_feature_apply(const tl_feature *f, unsigned char *block,
                     const tl_event *ev, tl_expr_fetch fetch, void *ud);

/* Reads the feature's value as of event time `now` (null when unset or
 * expired by ttl).  Strings and lists borrow from the block. */
void tl_feature_read(const tl_feature *f, const unsigned char *block,
                     int64_t now, tl_value *out);

/* 1 when the feature has a value at `now` (set, and not expired by ttl). */
int tl_feature_live(const tl_feature *f, const unsigned char *block,
                    int64_t now);

/* 1 when the readable value can change with `now` alone, the state
 * unchanged: windows, decayed values, since, and any feature with ttl. */
int tl_feature_follows_time(const tl_feature *f);

/* 1 when the kind keeps state of its own (all but since, which reads
 * another feature's). */
int tl_feature_has_state(const tl_feature *f);

/*
 * Redis encoding.  Readable value (decimal numbers, strings verbatim, lists
 * as JSON arrays: ["Shoes, red","Boots"], [3,1.5]) of what a rule reads at
 * `now` (the customer's newest event), so a count of nothing is "0":
 * tl_feature_format writes it like snprintf and returns its full length, or
 * -1 when the feature reads null at `now` (no readable field then: never
 * set and not a count, or expired by ttl).
 * The internal state, stored in field "_f:<name>", round-trips exactly:
 * tl_feature_save writes it (returns length; buf must hold
 * tl_feature_save_size bytes) and tl_feature_load restores the slice from it
 * (TL_OK, or TL_ERR_DECODE with a message if the text is malformed).
 */
int tl_feature_format(const tl_feature *f, const unsigned char *block,
                      int64_t now, char *buf, size_t size);
size_t tl_feature_save_size(const tl_feature *f);
size_t tl_feature_save(const tl_feature *f, const unsigned char *block,
                       char *buf);
int tl_feature_load(const tl_feature *f, unsigned char *block,
                    const char *text, size_t len, char *err, size_t errsz);

void tl_feature_clear(tl_feature *f);

#endif
