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
 * Kinds (issue #2 set; later kinds extend this enum):
 *   count         number of matching events                      -> number
 *   sum           sum of `field` (number) over matching events   -> number
 *   last          `field` of the latest matching event (by ts; a
 *                 tie goes to the later arrival)                 -> field's type
 *   last_seen     ts (epoch ms) of the latest matching event     -> number
 *   window_count  matching events with ts in (now - window, now],
 *                 in buckets of `resolution` (default window/30) -> number
 *
 * Ownership: tl_feature owns name and its expressions (tl_feature_clear).
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
    TL_FK__COUNT
} tl_feature_kind;

/* What a kind needs from its configuration, for the config loader. */
typedef struct tl_feature_kind_info {
    const char *name;   /* "count", "sum", ... */
    int needs_field;    /* `field` is required (and allowed) */
    tl_type field_type; /* required type of field; TL_T_NULL: number or string */
    int needs_window;   /* `window` required, `resolution` allowed */
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
    uint32_t max_len;      /* last on strings: longer values are truncated */
    tl_type type;          /* type of the value read in rules */
    size_t offset, size;   /* slice of the vector's state block */
} tl_feature;

/*
 * Finishes a feature whose name, kind, where, field, window_ms,
 * resolution_ms (0 = default) and max_len (0 = default) the caller set:
 * checks what the kind requires, derives type and nbuckets and the slice size.
 * Returns TL_OK or TL_ERR_CONFIG with a message naming the offending key, e.g.
 * "window 30d is not a multiple of resolution 7d".
 */
int tl_feature_finish(tl_feature *f, char *err, size_t errsz);

/* Assigns offsets to n finished features starting at `base`; returns the end
 * offset (the total size when base is 0), 8-byte aligned. */
size_t tl_features_layout(tl_feature *fs, size_t n, size_t base);

/* Zeroes a feature's slice (a customer never seen). */
void tl_feature_reset(const tl_feature *f, unsigned char *block);

/* Applies one event: evaluates `where` and `field` with fetch/ud (the event's
 * names) and updates the slice.  Returns 1 if the slice changed. */
int tl_feature_apply(const tl_feature *f, unsigned char *block,
                     const tl_event *ev, tl_expr_fetch fetch, void *ud);

/* Reads the feature's value as of event time `now`.  Strings borrow from the
 * block. */
void tl_feature_read(const tl_feature *f, const unsigned char *block,
                     int64_t now, tl_value *out);

/*
 * Redis encoding.  Readable value (decimal numbers, strings verbatim) as of
 * the feature's last update: tl_feature_format writes it and returns its
 * length, or -1 when the feature is unset (no readable field then).
 * The internal state, stored in field "_f:<name>", round-trips exactly:
 * tl_feature_save writes it (returns length; buf must hold
 * tl_feature_save_size bytes) and tl_feature_load restores the slice from it
 * (TL_OK, or TL_ERR_DECODE with a message if the text is malformed).
 */
int tl_feature_format(const tl_feature *f, const unsigned char *block,
                      char *buf, size_t size);
size_t tl_feature_save_size(const tl_feature *f);
size_t tl_feature_save(const tl_feature *f, const unsigned char *block,
                       char *buf);
int tl_feature_load(const tl_feature *f, unsigned char *block,
                    const char *text, size_t len, char *err, size_t errsz);

void tl_feature_clear(tl_feature *f);

#endif
