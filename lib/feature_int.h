/*
 * feature_int.h: private to the feature module (feature.c: kinds, update and
 * read; feature_state.c: the saved state), not for other modules.  The
 * layout of a feature's slice of the state block, which both read and
 * write, and its accessors.  Everything here is inline and allocates
 * nothing: the update path uses it per event.
 *
 * Slice layouts.  Every kind but `since` starts with a header so that "never
 * set", ttl and the time of the last change are uniform:
 *   count, sum, min, max, last (number/bool)   hdr, double value
 *   avg                                        hdr, double sum, double n
 *   last (string)                              hdr, char text[max_len + 1]
 *   first_seen                                 hdr, int64 first
 *   last_seen                                  hdr (the value is `updated`)
 *   window_count, window_sum                   hdr, int64 head, double ring[nb]
 *   decayed_count, decayed_sum                 hdr, double value, int64 ref
 *   top_k                                      hdr, int64 ref, entry[capacity]
 *                                              entry = u32 len, bytes, double count,
 *                                              double err
 *   distinct                                   hdr, u64 hash[] | u8 register[]
 *   last_n                                     hdr, entry[n]
 *                                              entry = (u32 len, bytes | double), i64 ts
 *   since                                      nothing: it reads `of`
 * hdr.len is the string length (last), the entries used (top_k, last_n) or
 * the exact hashes held (distinct; DISTINCT_HLL once it became a sketch).
 * Window buckets are a ring indexed by (bucket number mod nb); `head` is the
 * newest bucket number seen, so bucket k is live iff head - nb < k <= head.
 */
#ifndef TL_FEATURE_INT_H
#define TL_FEATURE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "feature.h"

typedef struct hdr {
    int64_t updated; /* event time of the newest matching event */
    uint32_t set;    /* 1 once any event matched */
    uint32_t len;
} hdr;

#define HDR ((size_t)sizeof(hdr))
#define DISTINCT_HLL UINT32_MAX

static inline size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Entry sizes of the list kinds: a u32 length and the bytes, padded, then
 * the count (top_k) or the ts (last_n). */
static inline size_t str_entry(const tl_feature *f)
{
    return align8(4 + f->max_len) + 8;
}

static inline size_t distinct_bytes(const tl_feature *f)
{
    size_t a = (size_t)f->exact_up_to * 8, b = (size_t)1 << f->precision;
    return align8(a > b ? a : b);
}

/* Unaligned-safe access to the slice's numbers. */
static inline double getd(const unsigned char *p)
{
    double d;
    memcpy(&d, p, sizeof d);
    return d;
}
static inline void putd(unsigned char *p, double d)
{
    memcpy(p, &d, sizeof d);
}
static inline int64_t geti(const unsigned char *p)
{
    int64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void puti(unsigned char *p, int64_t v)
{
    memcpy(p, &v, sizeof v);
}
static inline uint32_t getu(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void putu(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

/* Bucket number of ts: floor division so that times before 1970 still map
 * to consecutive buckets. */
static inline int64_t bucket_of(int64_t ts, int64_t res)
{
    int64_t q = ts / res;
    if ((ts % res) && ts < 0) q--;
    return q;
}

/* The ring slot of window bucket number `bucket` (of n). */
static inline size_t ring_index(int64_t bucket, uint32_t n)
{
    int64_t r = bucket % (int64_t)n;
    return (size_t)(r < 0 ? r + n : r);
}

/* Cuts a string to at most max bytes without splitting a UTF-8 sequence. */
static inline size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max) return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

/* top_k: an entry is a string entry plus the count's error (Space-Saving's
 * overestimate: the count it took over, 0 while nothing was evicted).
 * Entries are kept sorted by guaranteed count (count - err), then value. */
static inline size_t tk_entry_size(const tl_feature *f)
{
    return str_entry(f) + 8;
}
/* top_k entry i, and where its count and its error are in an entry. */
static inline unsigned char *tk_entry(const tl_feature *f, unsigned char *s,
                                      uint32_t i)
{
    return s + HDR + 8 + (size_t)i * tk_entry_size(f);
}
static inline size_t tk_count_off(const tl_feature *f)
{
    return align8(4 + f->max_len);
}
static inline size_t tk_err_off(const tl_feature *f)
{
    return align8(4 + f->max_len) + 8;
}
/* Sorts a top_k slice's entries into rank (feature.c; for loading state
 * saved in another order). */
void tl_feature_top_k_sort(const tl_feature *f, unsigned char *s);

/* last_n: the size of an entry, and where its ts is in one. */
static inline size_t ln_entry_size(const tl_feature *f)
{
    return f->type == TL_T_LIST_STR ? str_entry(f) : 16;
}
static inline size_t ln_ts_off(const tl_feature *f)
{
    return f->type == TL_T_LIST_STR ? align8(4 + f->max_len) : 8;
}

#endif
