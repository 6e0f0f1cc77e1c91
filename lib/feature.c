/*
 * feature.c: the feature kinds (their table, tl_feature_finish, the slice
 * layout) and the per-event path: tl_feature_apply and tl_feature_read,
 * which allocate nothing (one exception: a distinct set turning into a
 * sketch, once per customer).  The saved state is feature_state.c's.
 */
#include "feature.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "feature_int.h"

#define DEFAULT_EXACT_UP_TO 100
#define DEFAULT_PRECISION 10

static const tl_feature_kind_info kinds[TL_FK__COUNT] = {
    /* name, field, field type, window, half_life, k, n, bounds, of */
    [TL_FK_COUNT] = {"count", 0, TL_T_NULL, 0, 0, 0, 0, 0, 0},
    [TL_FK_SUM] = {"sum", 1, TL_T_NUM, 0, 0, 0, 0, 0, 0},
    [TL_FK_LAST] = {"last", 1, TL_T_NULL, 0, 0, 0, 0, 0, 0},
    [TL_FK_LAST_SEEN] = {"last_seen", 0, TL_T_NULL, 0, 0, 0, 0, 0, 0},
    [TL_FK_WINDOW_COUNT] = {"window_count", 0, TL_T_NULL, 1, 0, 0, 0, 0, 0},
    [TL_FK_MIN] = {"min", 1, TL_T_NUM, 0, 0, 0, 0, 0, 0},
    [TL_FK_MAX] = {"max", 1, TL_T_NUM, 0, 0, 0, 0, 0, 0},
    [TL_FK_AVG] = {"avg", 1, TL_T_NUM, 0, 0, 0, 0, 0, 0},
    [TL_FK_FIRST_SEEN] = {"first_seen", 0, TL_T_NULL, 0, 0, 0, 0, 0, 0},
    [TL_FK_WINDOW_SUM] = {"window_sum", 1, TL_T_NUM, 1, 0, 0, 0, 0, 0},
    [TL_FK_DECAYED_COUNT] = {"decayed_count", 0, TL_T_NULL, 0, TL_OPT_MUST, 0,
                             0, 0, 0},
    [TL_FK_DECAYED_SUM] = {"decayed_sum", 1, TL_T_NUM, 0, TL_OPT_MUST, 0, 0, 0,
                           0},
    [TL_FK_TOP_K] = {"top_k", 1, TL_T_STR, 0, TL_OPT_MAY, TL_OPT_MUST, 0, 0, 0},
    [TL_FK_DISTINCT] = {"distinct", 1, TL_T_NULL, 0, 0, 0, 0, TL_OPT_MAY, 0},
    [TL_FK_LAST_N] = {"last_n", 1, TL_T_NULL, 0, 0, 0, TL_OPT_MUST, 0, 0},
    [TL_FK_SINCE] = {"since", 0, TL_T_NULL, 0, 0, 0, 0, 0, TL_OPT_MUST},
};

const tl_feature_kind_info *tl_feature_kind_get(tl_feature_kind k)
{
    return (unsigned)k < TL_FK__COUNT ? &kinds[k] : NULL;
}

int tl_feature_kind_parse(const char *name, tl_feature_kind *out)
{
    for (int i = 0; i < TL_FK__COUNT; i++)
        if (strcmp(kinds[i].name, name) == 0) {
            *out = (tl_feature_kind)i;
            return 0;
        }
    return -1;
}

const char *tl_feature_kind_list(void)
{
    return "count, sum, min, max, avg, last, first_seen, last_seen, "
           "window_count, window_sum, decayed_count, decayed_sum, top_k, "
           "distinct, last_n, since";
}

static int strings(const tl_feature *f) { return f->field && tl_expr_type(f->field) == TL_T_STR; }

/* The checks all kinds share, in this order: the options the kind does not
 * take or needs, ttl, the field's type, max_length (set to its default where
 * it applies).  ft is the field's type (TL_T_NULL without a field). */
static int check_options(tl_feature *f, const tl_feature_kind_info *ki,
                         tl_type ft, char *err, size_t errsz)
{
    if (ki->needs_field && !f->field)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "kind %s needs 'field' (the event value it uses)",
                       ki->name);
    if (!ki->needs_field && f->field)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "kind %s takes no 'field'", ki->name);
    if (!ki->needs_window && (f->window_ms || f->resolution_ms))
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "kind %s takes no 'window' or 'resolution'", ki->name);
    if (!ki->half_life && f->half_life_ms)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "kind %s takes no 'half_life'", ki->name);
    if (ki->half_life == TL_OPT_MUST && f->half_life_ms <= 0)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "kind %s needs a 'half_life' above 0", ki->name);
    if (!ki->k && (f->k || f->capacity))
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "kind %s takes no 'k' or 'capacity'", ki->name);
    if (!ki->n && f->n)
        return tl_errf(err, errsz, TL_ERR_CONFIG, "kind %s takes no 'n'",
                       ki->name);
    if (!ki->bounds && (f->exact_up_to || f->precision))
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "kind %s takes no 'exact_up_to' or 'precision'",
                       ki->name);
    if (!ki->of && f->of_feature)
        return tl_errf(err, errsz, TL_ERR_CONFIG, "kind %s takes no 'of'",
                       ki->name);
    if (f->ttl_ms < 0)
        return tl_errf(err, errsz, TL_ERR_CONFIG, "ttl must not be negative");
    if (ki->needs_field && ki->field_type != TL_T_NULL &&
        tl_expr_type(f->field) != ki->field_type)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "field of kind %s must be a %s, got %s", ki->name,
                       tl_type_name(ki->field_type),
                       tl_type_name(tl_expr_type(f->field)));
    if (ki->needs_field && ki->field_type == TL_T_NULL &&
        ft != TL_T_NUM && ft != TL_T_STR &&
        !(ft == TL_T_BOOL && f->kind != TL_FK_LAST_N))
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "field of kind %s must be a number or a string%s, got %s",
                       ki->name, f->kind == TL_FK_LAST_N ? "" : " or a bool",
                       tl_type_name(ft));
    int takes_len = strings(f) && (f->kind == TL_FK_LAST ||
                                   f->kind == TL_FK_LAST_N ||
                                   f->kind == TL_FK_TOP_K);
    if (f->max_len && !takes_len)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "'max_length' applies only to kinds last, last_n and "
                       "top_k on a string field");
    if (!f->max_len && takes_len) f->max_len = TL_FEATURE_DEFAULT_MAX_LEN;
    if (f->max_len > 4096)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "max_length %u is above the limit 4096", f->max_len);
    return TL_OK;
}

/* window_count, window_sum: the resolution (default window/30) and the
 * number of buckets. */
static int finish_window(tl_feature *f, const char *kind, char *err,
                         size_t errsz)
{
    if (f->window_ms <= 0)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "kind %s needs a 'window' above 0", kind);
    if (!f->resolution_ms) {
        /* Default: 30 buckets, but never finer than a millisecond. */
        f->resolution_ms = f->window_ms / 30 ? f->window_ms / 30 : 1;
        while (f->window_ms % f->resolution_ms) f->resolution_ms--;
    }
    if (f->resolution_ms <= 0 || f->window_ms % f->resolution_ms)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "window (%lld ms) must be a multiple of resolution "
                       "(%lld ms)",
                       (long long)f->window_ms,
                       (long long)f->resolution_ms);
    int64_t nb = f->window_ms / f->resolution_ms;
    if (nb > TL_FEATURE_MAX_BUCKETS)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "window/resolution gives %lld buckets, more than "
                       "%d: use a coarser resolution",
                       (long long)nb, TL_FEATURE_MAX_BUCKETS);
    f->nbuckets = (uint32_t)nb;
    return TL_OK;
}

/* since: `of` must be a first_seen or last_seen feature of `all`. */
static int finish_since(tl_feature *f, const tl_feature *all, char *err,
                        size_t errsz)
{
    const tl_feature *of = all && f->of >= 0 ? &all[f->of] : NULL;
    if (!of)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "kind since needs 'of' (a first_seen or last_seen "
                       "feature)");
    if (of->kind != TL_FK_FIRST_SEEN && of->kind != TL_FK_LAST_SEEN)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "'of' must name a first_seen or last_seen feature; "
                       "'%s' is a %s",
                       of->name, kinds[of->kind].name);
    f->of_feature = of;
    return TL_OK;
}

/* The kind's own options; sets type (and nbuckets) and *size, the slice
 * size before alignment (see feature_int.h for the layouts). */
static int finish_kind(tl_feature *f, const tl_feature *all, tl_type ft,
                       size_t *size, char *err, size_t errsz)
{
    int rc = TL_OK;
    f->type = TL_T_NUM;
    *size = HDR + sizeof(double);
    switch (f->kind) {
    case TL_FK_COUNT:
    case TL_FK_SUM:
    case TL_FK_MIN:
    case TL_FK_MAX:
        break;
    case TL_FK_AVG:
        *size = HDR + 2 * sizeof(double);
        break;
    case TL_FK_LAST:
        f->type = ft;
        if (ft == TL_T_STR) *size = HDR + f->max_len + 1;
        break;
    case TL_FK_FIRST_SEEN:
        *size = HDR + sizeof(int64_t);
        break;
    case TL_FK_LAST_SEEN:
        *size = HDR;
        break;
    case TL_FK_WINDOW_COUNT:
    case TL_FK_WINDOW_SUM:
        rc = finish_window(f, kinds[f->kind].name, err, errsz);
        *size = HDR + sizeof(int64_t) + sizeof(double) * f->nbuckets;
        break;
    case TL_FK_DECAYED_COUNT:
    case TL_FK_DECAYED_SUM:
        *size = HDR + sizeof(double) + sizeof(int64_t);
        break;
    case TL_FK_TOP_K:
        if (f->k < 1 || f->k > 100)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "k must be from 1 to 100, got %u", f->k);
        if (!f->capacity) f->capacity = f->k * 3 > 10 ? f->k * 3 : 10;
        if (f->capacity < f->k || f->capacity > 10000)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "capacity must be from k (%u) to 10000, got %u",
                           f->k, f->capacity);
        f->type = TL_T_LIST_STR;
        *size = HDR + sizeof(int64_t) + f->capacity * tk_entry_size(f);
        break;
    case TL_FK_DISTINCT:
        if (!f->exact_up_to) f->exact_up_to = DEFAULT_EXACT_UP_TO;
        if (!f->precision) f->precision = DEFAULT_PRECISION;
        if (f->exact_up_to > 100000)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "exact_up_to must be at most 100000, got %u",
                           f->exact_up_to);
        if (f->precision < 4 || f->precision > 16)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "precision must be from 4 to 16, got %u",
                           f->precision);
        *size = HDR + distinct_bytes(f);
        break;
    case TL_FK_LAST_N:
        if (f->n < 1 || f->n > 100)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "n must be from 1 to 100, got %u", f->n);
        f->type = ft == TL_T_STR ? TL_T_LIST_STR : TL_T_LIST_NUM;
        *size = HDR + f->n * (ft == TL_T_STR ? str_entry(f) : 16);
        break;
    case TL_FK_SINCE:
        rc = finish_since(f, all, err, errsz);
        *size = 0;
        break;
    default:
        return tl_errf(err, errsz, TL_ERR_CONFIG, "unknown kind");
    }
    return rc;
}

int tl_feature_finish(tl_feature *f, const tl_feature *all, char *err,
                      size_t errsz)
{
    const tl_feature_kind_info *ki = tl_feature_kind_get(f->kind);
    if (!ki) return tl_errf(err, errsz, TL_ERR_CONFIG, "unknown kind");
    tl_type ft = f->field ? tl_expr_type(f->field) : TL_T_NULL;
    size_t size;
    int rc = check_options(f, ki, ft, err, errsz);
    if (rc == TL_OK) rc = finish_kind(f, all, ft, &size, err, errsz);
    if (rc != TL_OK) return rc;
    f->size = align8(size);
    return TL_OK;
}

size_t tl_features_layout(tl_feature *fs, size_t n, size_t base)
{
    size_t off = align8(base);
    for (size_t i = 0; i < n; i++) {
        fs[i].offset = off;
        off += fs[i].size;
    }
    return off;
}

void tl_feature_reset(const tl_feature *f, unsigned char *block)
{
    memset(block + f->offset, 0, f->size);
}

int tl_feature_has_state(const tl_feature *f) { return f->kind != TL_FK_SINCE; }


static int expired(const tl_feature *f, const hdr *h, int64_t now)
{
    return f->ttl_ms && now - h->updated > f->ttl_ms;
}

int tl_feature_follows_time(const tl_feature *f)
{
    switch (f->kind) {
    case TL_FK_WINDOW_COUNT:
    case TL_FK_WINDOW_SUM:
    case TL_FK_DECAYED_COUNT:
    case TL_FK_DECAYED_SUM:
    case TL_FK_SINCE:
        return 1;
    default:
        return f->ttl_ms > 0;
    }
}

int tl_feature_live(const tl_feature *f, const unsigned char *block,
                    int64_t now)
{
    if (f->kind == TL_FK_SINCE) return tl_feature_live(f->of_feature, block, now);
    const hdr *h = (const hdr *)(block + f->offset);
    return h->set && !expired(f, h, now);
}

/* Sums saturate at +-DBL_MAX: the decoders refuse NaN and infinities, but
 * enough large values (or a field expression's own overflow) would add up
 * to an infinity that no later event could bring back.  A NaN (an
 * expression's inf - inf) passes through unchanged. */
static inline double sat(double x)
{
    return x > DBL_MAX ? DBL_MAX : x < -DBL_MAX ? -DBL_MAX : x;
}

/* ---- windows --------------------------------------------------------------- */

static int window_add(const tl_feature *f, unsigned char *s, int set,
                      int64_t ts, double v)
{
    unsigned char *ring = s + HDR + 8;
    int64_t b = bucket_of(ts, f->resolution_ms), head = geti(s + HDR);
    uint32_t n = f->nbuckets;
    if (!set) {
        head = b;
    } else if (b > head) {
        if (b - head >= n)
            memset(ring, 0, sizeof(double) * n);
        else
            for (int64_t k = head + 1; k <= b; k++)
                putd(ring + 8 * ring_index(k, n), 0);
        head = b;
    } else if (b <= head - (int64_t)n) {
        return 0; /* older than the whole window: cannot matter any more */
    }
    puti(s + HDR, head);
    unsigned char *slot = ring + 8 * ring_index(b, n);
    putd(slot, sat(getd(slot) + v));
    return 1;
}

static double window_read(const tl_feature *f, const unsigned char *s,
                          int64_t now)
{
    const unsigned char *ring = s + HDR + 8;
    int64_t head = geti(s + HDR), nb = bucket_of(now, f->resolution_ms);
    int64_t n = f->nbuckets, lo = nb - n + 1, hi = nb;
    if (head - n + 1 > lo) lo = head - n + 1;
    if (head < hi) hi = head;
    double sum = 0;
    for (int64_t k = lo; k <= hi; k++)
        sum = sat(sum + getd(ring + 8 * ring_index(k, f->nbuckets)));
    return sum;
}

/* ---- exponential decay ----------------------------------------------------- */

/* Value and reference time (value as of ref).  Adding x at ts: an event newer
 * than ref moves ref forward, decaying what was there; an older one adds its
 * decayed weight.  Up to rounding this is independent of arrival order. */
static void decay_add(const tl_feature *f, unsigned char *s, int set,
                      int64_t ts, double x)
{
    double v = getd(s + HDR);
    int64_t ref = geti(s + HDR + 8);
    double hl = (double)f->half_life_ms;
    if (!set) {
        v = x;
        ref = ts;
    } else if (ts >= ref) {
        v = sat(v * exp2(-(double)(ts - ref) / hl) + x);
        ref = ts;
    } else {
        v = sat(v + x * exp2(-(double)(ref - ts) / hl));
    }
    putd(s + HDR, v);
    puti(s + HDR + 8, ref);
}

static double decay_read(const tl_feature *f, const unsigned char *s,
                         int64_t now)
{
    /* Read before the reference time (an older event's turn) the value
     * grows back, and may overflow. */
    return sat(getd(s + HDR) * exp2(-(double)(now - geti(s + HDR + 8)) /
                                    (double)f->half_life_ms));
}

/* ---- top_k: Space-Saving with (optionally decayed) counts ------------------ */

/* Counts may be overestimates: a counter taken over keeps the count it took
 * over as its error.  What a value was certainly seen (count - err) is what
 * ranks it, so an item bought twice ranks above ones that only inherited a
 * count; while nothing was evicted every err is 0 and counts are exact. */
static double tk_sure(const tl_feature *f, const unsigned char *e)
{
    return getd(e + tk_count_off(f)) - getd(e + tk_err_off(f));
}

/* Equal within rounding: decay makes order-dependent last bits. */
static int tk_near(double a, double b)
{
    return fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b));
}

/* Order: higher guaranteed count first; equal ones compare by value bytes,
 * so the order does not depend on the order events arrived in. */
static int tk_before(const tl_feature *f, const unsigned char *a,
                     const unsigned char *b)
{
    double ga = tk_sure(f, a), gb = tk_sure(f, b);
    if (!tk_near(ga, gb)) return ga > gb;
    uint32_t la = getu(a), lb = getu(b);
    int c = memcmp(a + 4, b + 4, la < lb ? la : lb);
    return c ? c < 0 : la < lb;
}

static void tk_swap(const tl_feature *f, unsigned char *a, unsigned char *b)
{
    unsigned char tmp[8 + 4096 + 16];
    size_t n = tk_entry_size(f);
    memcpy(tmp, a, n);
    memcpy(a, b, n);
    memcpy(b, tmp, n);
}

/* Moves entry i, the only one whose rank changed, up or down to its place. */
static void tk_settle(const tl_feature *f, unsigned char *s, uint32_t i)
{
    uint32_t n = ((hdr *)s)->len;
    while (i > 0 && tk_before(f, tk_entry(f, s, i), tk_entry(f, s, i - 1))) {
        tk_swap(f, tk_entry(f, s, i), tk_entry(f, s, i - 1));
        i--;
    }
    while (i + 1 < n && tk_before(f, tk_entry(f, s, i + 1), tk_entry(f, s, i))) {
        tk_swap(f, tk_entry(f, s, i), tk_entry(f, s, i + 1));
        i++;
    }
}

void tl_feature_top_k_sort(const tl_feature *f, unsigned char *s)
{
    for (uint32_t i = 1; i < ((hdr *)s)->len; i++) tk_settle(f, s, i);
}

/* Space-Saving's victim: the smallest count (which bounds every error);
 * among equal ones the last in rank, the least certain, then the greatest
 * value. */
static uint32_t tk_victim(const tl_feature *f, unsigned char *s)
{
    uint32_t v = 0;
    double min = getd(tk_entry(f, s, 0) + tk_count_off(f));
    for (uint32_t i = 1; i < ((hdr *)s)->len; i++) {
        double c = getd(tk_entry(f, s, i) + tk_count_off(f));
        if (c < min || tk_near(c, min)) v = i, min = c < min ? c : min;
    }
    return v;
}

/* With half_life: counts and errors are kept as of the reference time (the
 * newest event); returns the weight of an event at ts. */
static double tk_decay(const tl_feature *f, unsigned char *s, int set,
                       int64_t ts)
{
    hdr *h = (hdr *)s;
    int64_t ref = geti(s + HDR);
    double hl = (double)f->half_life_ms;
    if (!set) {
        puti(s + HDR, ts);
    } else if (ts > ref) {
        double factor = exp2(-(double)(ts - ref) / hl);
        for (uint32_t i = 0; i < h->len; i++) {
            unsigned char *e = tk_entry(f, s, i);
            putd(e + tk_count_off(f), getd(e + tk_count_off(f)) * factor);
            putd(e + tk_err_off(f), getd(e + tk_err_off(f)) * factor);
        }
        puti(s + HDR, ts);
    } else {
        return exp2(-(double)(ref - ts) / hl);
    }
    return 1;
}

static void tk_add(const tl_feature *f, unsigned char *s, int set, int64_t ts,
                   const char *v, size_t len)
{
    hdr *h = (hdr *)s;
    double w = f->half_life_ms ? tk_decay(f, s, set, ts) : 1;
    len = utf8_cut(v, len, f->max_len);
    uint32_t i = 0;
    for (; i < h->len; i++) {
        unsigned char *e = tk_entry(f, s, i);
        if (getu(e) == len && memcmp(e + 4, v, len) == 0) break;
    }
    unsigned char *e;
    if (i < h->len) {
        e = tk_entry(f, s, i);
        putd(e + tk_count_off(f), getd(e + tk_count_off(f)) + w);
    } else {
        double base = 0;
        if (h->len < f->capacity) {
            i = h->len++;
        } else {
            /* Space-Saving: the least frequent counter is taken over and
             * keeps its count as the newcomer's possible overestimate. */
            i = tk_victim(f, s);
            base = getd(tk_entry(f, s, i) + tk_count_off(f));
        }
        e = tk_entry(f, s, i);
        memset(e, 0, tk_entry_size(f));
        putu(e, (uint32_t)len);
        memcpy(e + 4, v, len);
        putd(e + tk_count_off(f), base + w);
        putd(e + tk_err_off(f), base);
    }
    tk_settle(f, s, i);
}

/* ---- distinct: exact hash set, then HyperLogLog ------------------------------ */

static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finalizer: FNV alone leaves high bits too regular for
     * HyperLogLog's register index. */
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

static void hll_add(const tl_feature *f, unsigned char *regs, uint64_t h)
{
    unsigned p = f->precision;
    size_t idx = (size_t)(h >> (64 - p));
    uint64_t w = h << p;
    unsigned rho = w ? (unsigned)__builtin_clzll(w) + 1 : 64 - p + 1;
    if (rho > 64 - p + 1) rho = 64 - p + 1;
    if (regs[idx] < rho) regs[idx] = (unsigned char)rho;
}

static double hll_estimate(const tl_feature *f, const unsigned char *regs)
{
    size_t m = (size_t)1 << f->precision, zeros = 0;
    double sum = 0;
    for (size_t i = 0; i < m; i++) {
        sum += ldexp(1.0, -(int)regs[i]);
        zeros += regs[i] == 0;
    }
    double alpha = m == 16 ? 0.673 : m == 32 ? 0.697 : m == 64 ? 0.709
                                                 : 0.7213 / (1 + 1.079 / (double)m);
    double e = alpha * (double)m * (double)m / sum;
    if (e <= 2.5 * (double)m && zeros)
        e = (double)m * log((double)m / (double)zeros); /* linear counting */
    return e;
}

static int distinct_add(const tl_feature *f, unsigned char *s, uint64_t h)
{
    hdr *hd = (hdr *)s;
    unsigned char *data = s + HDR;
    if (hd->len == DISTINCT_HLL) {
        hll_add(f, data, h);
        return 1;
    }
    /* Sorted array of hashes: binary search for h. */
    uint32_t lo = 0, hi = hd->len;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        uint64_t m;
        memcpy(&m, data + 8 * (size_t)mid, 8);
        if (m < h) lo = mid + 1;
        else hi = mid;
    }
    if (lo < hd->len) {
        uint64_t m;
        memcpy(&m, data + 8 * (size_t)lo, 8);
        if (m == h) return 1;
    }
    if (hd->len < f->exact_up_to) {
        memmove(data + 8 * ((size_t)lo + 1), data + 8 * (size_t)lo,
                8 * (size_t)(hd->len - lo));
        memcpy(data + 8 * (size_t)lo, &h, 8);
        hd->len++;
        return 1;
    }
    /* Past the exact bound: the set becomes a sketch, once per customer.
     * The hashes and the registers share the slice, so the hashes are copied
     * out first (the one allocation this feature ever makes). */
    size_t nh = hd->len;
    uint64_t *tmp = tl_xmalloc(nh * 8);
    memcpy(tmp, data, nh * 8);
    memset(data, 0, distinct_bytes(f));
    for (size_t i = 0; i < nh; i++) hll_add(f, data, tmp[i]);
    free(tmp);
    hll_add(f, data, h);
    hd->len = DISTINCT_HLL;
    return 1;
}

static uint64_t value_hash(const tl_value *v)
{
    char num[TL_NUMBUF];
    const char *p = num;
    size_t n;
    if (v->type == TL_T_STR) {
        p = v->u.str.ptr;
        n = v->u.str.len;
    } else if (v->type == TL_T_BOOL) {
        p = v->u.b ? "true" : "false";
        n = strlen(p);
    } else {
        n = (size_t)tl_fmt_double(num, v->u.num);
    }
    return mix64(tl_fnv1a(TL_FNV_OFFSET, p, n));
}

static double distinct_read(const tl_feature *f, const unsigned char *s)
{
    const hdr *h = (const hdr *)s;
    if (h->len != DISTINCT_HLL) return h->len;
    return round(hll_estimate(f, s + HDR));
}

/* ---- last_n ------------------------------------------------------------------ */


static int last_n_add(const tl_feature *f, unsigned char *s, int64_t ts,
                      const tl_value *v)
{
    hdr *h = (hdr *)s;
    size_t es = ln_entry_size(f), to = ln_ts_off(f);
    unsigned char *base = s + HDR;
    /* Most recent first; an equal ts goes before the entries already there
     * (the later arrival counts as more recent). */
    uint32_t i = 0;
    while (i < h->len && geti(base + i * es + to) > ts) i++;
    if (i >= f->n) return 0;
    uint32_t keep = h->len < f->n ? h->len : f->n - 1;
    memmove(base + (i + 1) * es, base + i * es, (keep - i) * es);
    unsigned char *e = base + i * es;
    memset(e, 0, es);
    if (f->type == TL_T_LIST_STR) {
        size_t n = utf8_cut(v->u.str.ptr, v->u.str.len, f->max_len);
        putu(e, (uint32_t)n);
        memcpy(e + 4, v->u.str.ptr, n);
    } else {
        putd(e, v->type == TL_T_BOOL ? v->u.b : v->u.num);
    }
    puti(e + to, ts);
    h->len = keep + 1;
    return 1;
}

/* ---- apply / read ------------------------------------------------------------ */

int tl_feature_apply(const tl_feature *f, unsigned char *block,
                     const tl_event *ev, tl_expr_fetch fetch, void *ud)
{
    if (f->kind == TL_FK_SINCE) return 0;
    unsigned char *s = block + f->offset;
    hdr *h = (hdr *)s;
    if (f->where && !tl_expr_true(f->where, fetch, ud)) return 0;
    tl_value v = TL_VALUE_NULL;
    if (f->field) {
        tl_expr_eval(f->field, fetch, ud, &v);
        /* An event without the value does not count for this feature. */
        if (v.type == TL_T_NULL) return 0;
    }
    int64_t ts = ev->ts;
    /* ttl with teeth: state older than ttl is gone, not continued; that is
     * a change even if the event then adds nothing. */
    int reset = h->set && expired(f, h, ts);
    if (reset) tl_feature_reset(f, block);
    int set = (int)h->set;
    double x = v.type == TL_T_BOOL ? v.u.b : v.u.num;
    switch (f->kind) {
    case TL_FK_COUNT:
        putd(s + HDR, getd(s + HDR) + 1);
        break;
    case TL_FK_SUM:
        putd(s + HDR, sat(getd(s + HDR) + x));
        break;
    case TL_FK_MIN:
        if (!set || x < getd(s + HDR)) putd(s + HDR, x);
        break;
    case TL_FK_MAX:
        if (!set || x > getd(s + HDR)) putd(s + HDR, x);
        break;
    case TL_FK_AVG:
        putd(s + HDR, sat(getd(s + HDR) + x));
        putd(s + HDR + 8, getd(s + HDR + 8) + 1);
        break;
    case TL_FK_LAST:
        /* Latest by event time; a tie goes to the later arrival. */
        if (set && ts < h->updated) return reset;
        if (v.type == TL_T_STR) {
            size_t n = utf8_cut(v.u.str.ptr, v.u.str.len, f->max_len);
            /* The rest is zeroed so that equal values are equal bytes. */
            memset(s + HDR, 0, f->max_len + 1);
            memcpy(s + HDR, v.u.str.ptr, n);
            h->len = (uint32_t)n;
        } else {
            putd(s + HDR, x);
        }
        break;
    case TL_FK_FIRST_SEEN:
        if (!set || ts < geti(s + HDR)) puti(s + HDR, ts);
        break;
    case TL_FK_LAST_SEEN:
        if (set && ts <= h->updated) return reset;
        break;
    case TL_FK_WINDOW_COUNT:
        if (!window_add(f, s, set, ts, 1)) return reset;
        break;
    case TL_FK_WINDOW_SUM:
        if (!window_add(f, s, set, ts, x)) return reset;
        break;
    case TL_FK_DECAYED_COUNT:
        decay_add(f, s, set, ts, 1);
        break;
    case TL_FK_DECAYED_SUM:
        decay_add(f, s, set, ts, x);
        break;
    case TL_FK_TOP_K:
        tk_add(f, s, set, ts, v.u.str.ptr, v.u.str.len);
        break;
    case TL_FK_DISTINCT:
        distinct_add(f, s, value_hash(&v));
        break;
    case TL_FK_LAST_N:
        if (!last_n_add(f, s, ts, &v)) return reset;
        break;
    default:
        return reset;
    }
    if (!set || ts > h->updated) h->updated = ts;
    h->set = 1;
    return 1;
}

void tl_feature_read(const tl_feature *f, const unsigned char *block,
                     int64_t now, tl_value *out)
{
    *out = TL_VALUE_NULL;
    if (!tl_feature_live(f, block, now)) {
        /* Expired by ttl reads as missing, whatever the kind; but nothing
         * counted yet is a count of zero, not an unknown. */
        if (f->kind == TL_FK_SINCE ||
            ((const hdr *)(block + f->offset))->set)
            return;
        switch (f->kind) {
        case TL_FK_COUNT:
        case TL_FK_SUM:
        case TL_FK_WINDOW_COUNT:
        case TL_FK_WINDOW_SUM:
        case TL_FK_DECAYED_COUNT:
        case TL_FK_DECAYED_SUM:
        case TL_FK_DISTINCT:
            out->type = TL_T_NUM;
            out->u.num = 0;
            break;
        default:
            break;
        }
        return;
    }
    const unsigned char *s = block + f->offset;
    const hdr *h = (const hdr *)s;
    out->type = TL_T_NUM;
    switch (f->kind) {
    case TL_FK_COUNT:
    case TL_FK_SUM:
    case TL_FK_MIN:
    case TL_FK_MAX:
        out->u.num = getd(s + HDR);
        return;
    case TL_FK_AVG:
        out->u.num = getd(s + HDR) / getd(s + HDR + 8);
        return;
    case TL_FK_LAST:
        out->type = f->type;
        if (f->type == TL_T_STR) {
            out->u.str.ptr = (const char *)(s + HDR);
            out->u.str.len = h->len;
        } else if (f->type == TL_T_BOOL) {
            out->u.b = getd(s + HDR) != 0;
        } else {
            out->u.num = getd(s + HDR);
        }
        return;
    case TL_FK_FIRST_SEEN:
        out->u.num = (double)geti(s + HDR);
        return;
    case TL_FK_LAST_SEEN:
        out->u.num = (double)h->updated;
        return;
    case TL_FK_WINDOW_COUNT:
    case TL_FK_WINDOW_SUM:
        out->u.num = window_read(f, s, now);
        return;
    case TL_FK_DECAYED_COUNT:
    case TL_FK_DECAYED_SUM:
        out->u.num = decay_read(f, s, now);
        return;
    case TL_FK_TOP_K:
        out->type = TL_T_LIST_STR;
        out->u.list.base = s + HDR + 8;
        out->u.list.n = h->len < f->k ? h->len : f->k;
        out->u.list.stride = (uint32_t)tk_entry_size(f);
        return;
    case TL_FK_DISTINCT:
        out->u.num = distinct_read(f, s);
        return;
    case TL_FK_LAST_N:
        out->type = f->type;
        out->u.list.base = s + HDR;
        out->u.list.n = h->len;
        out->u.list.stride = (uint32_t)ln_entry_size(f);
        return;
    case TL_FK_SINCE: {
        tl_value t;
        tl_feature_read(f->of_feature, block, now, &t);
        out->u.num = (now - (double)t.u.num) / 1000.0;
        return;
    }
    default:
        *out = TL_VALUE_NULL;
    }
}

int tl_feature_format(const tl_feature *f, const unsigned char *block,
                      int64_t now, char *buf, size_t size)
{
    tl_value v;
    tl_feature_read(f, block, now, &v);
    if (v.type == TL_T_NULL) return -1;
    /* A list joined with commas cannot hold "Shoes, red": lists are JSON. */
    if (v.type == TL_T_LIST_STR || v.type == TL_T_LIST_NUM)
        return (int)tl_value_format_json(&v, buf, size);
    return (int)tl_value_format(&v, buf, size);
}

void tl_feature_clear(tl_feature *f)
{
    if (!f) return;
    free(f->name);
    tl_expr_free(f->where);
    tl_expr_free(f->field);
    memset(f, 0, sizeof *f);
}
