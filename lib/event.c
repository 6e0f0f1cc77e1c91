/*
 * event — the event itself: channels, reject reasons, attrs, the checks
 * every decoder ends with, the decoder's front (tl_event_decode) and
 * lifetime, and the event's names for expressions.  The decoders and the
 * encoder are in the event_*.c files listed in event_int.h.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "event_int.h"

/* ------------------------------------------------------------------------
 * Channels and reject reasons
 */

static const char *const channel_names[TL_CH__COUNT] = {
    "web", "app", "store", "call_center", "email", "chat", "other",
};

const char *tl_channel_name(tl_channel c)
{
    /* Out-of-range values are a caller bug; "other" keeps output valid. */
    return (unsigned)c < TL_CH__COUNT ? channel_names[c] : "other";
}

int tl_channel_parse(const char *s, size_t len, tl_channel *out)
{
    for (int i = 0; i < TL_CH__COUNT; i++) {
        if (strlen(channel_names[i]) == len &&
            memcmp(channel_names[i], s, len) == 0) {
            *out = (tl_channel)i;
            return 0;
        }
    }
    return -1;
}

const char *tl_reject_name(tl_reject r)
{
    switch (r) {
    case TL_REJECT_NONE: return "none";
    case TL_REJECT_DECODE: return "decode";
    case TL_REJECT_MISSING_CUSTOMER: return "missing_customer";
    case TL_REJECT_LATE: return "late";
    case TL_REJECT_BAD_TIMESTAMP: return "bad_timestamp";
    case TL_REJECT_STORE: return "store";
    case TL_REJECT__COUNT: break;
    }
    return "decode";
}

/* ------------------------------------------------------------------------
 * Attributes: sorted by key in byte order, looked up by binary search
 */

int tl_event_attr_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

void tl_event_attrs_isort(tl_attr *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        tl_attr x = a[i];
        size_t j = i;
        while (j > 0 && tl_event_attr_cmp(a[j - 1].key, a[j - 1].keylen,
                                          x.key, x.keylen) > 0) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/* Merge sort (stable, O(n log n)) with scratch from the arena: qsort may
 * malloc for large arrays, and the Avro path must not allocate. */
void tl_event_attrs_sort(tl_attr *a, size_t n, tl_arena *arena)
{
    if (n < 2) return;
    if (n <= 16) {
        tl_event_attrs_isort(a, n);
        return;
    }
    tl_attr *tmp = tl_arena_alloc(arena, n * sizeof *tmp);
    tl_attr *src = a, *dst = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n;
            size_t hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                dst[k++] = tl_event_attr_cmp(src[j].key, src[j].keylen,
                                             src[i].key, src[i].keylen) < 0
                               ? src[j++]
                               : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        tl_attr *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
}

const tl_attr *tl_event_attr(const tl_event *ev, const char *key,
                             size_t keylen)
{
    size_t lo = 0, hi = ev->nattrs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const tl_attr *a = &ev->attrs[mid];
        int c = tl_event_attr_cmp(a->key, a->keylen, key, keylen);
        if (c == 0) return a;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * What every decoder ends with
 */

void tl_event_default_attrs(const tl_event_decoder *d, tl_arena *arena,
                            tl_event *ev)
{
    tl_attr *a = tl_arena_alloc(arena, d->def_nattrs * sizeof *a);
    for (size_t i = 0; i < d->def_nattrs; i++) {
        const tl_attr *s = &d->def_attrs[i];
        a[i] = *s;
        a[i].key = tl_arena_strndup(arena, s->key, s->keylen);
        a[i].val = tl_arena_strndup(arena, s->val, s->vallen);
    }
    ev->attrs = a;
    ev->nattrs = d->def_nattrs;
}

/* A time outside the range that, read in another unit, would be inside it
 * and after 2000 (a time of today's data, not a coincidence): a producer's
 * unit mistake, worth saying so ("", or the unit's name, and the time in
 * milliseconds in *ms). */
static const char *unit_hint(int64_t ts, int64_t min_ts, int64_t max_ts,
                             int64_t *ms)
{
    const int64_t y2000 = INT64_C(946684800000);
    if (min_ts < y2000) min_ts = y2000;
    /* Seconds compared by division: ts * 1000 may overflow (the range is
     * within [0, 2200], so min_ts / 1000 rounds the right way). */
    if (ts >= (min_ts + 999) / 1000 && ts <= max_ts / 1000) {
        *ms = ts * 1000;
        return "seconds";
    }
    static const struct { const char *name; int64_t div; } units[] = {
        {"microseconds", 1000},
        {"nanoseconds", 1000000},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        int64_t x = ts / units[i].div;
        if (x >= min_ts && x <= max_ts) {
            *ms = x;
            return units[i].name;
        }
    }
    return "";
}

/* "ts N is before|after BOUND", and the unit hint when there is one. */
static tl_reject bad_time(int64_t ts, int64_t min_ts, int64_t max_ts,
                          char *err, size_t errsz)
{
    char bound[TL_TIMEBUF], as[TL_TIMEBUF];
    int before = ts < min_ts;
    tl_fmt_time(bound, before ? min_ts : max_ts);
    int64_t ms = 0;
    const char *unit = unit_hint(ts, min_ts, max_ts, &ms);
    if (!*unit) {
        tl_errf(err, errsz, 0, "ts %" PRId64 " is %s %s", ts,
                before ? "before" : "after", bound);
        return TL_REJECT_BAD_TIMESTAMP;
    }
    tl_errf(err, errsz, 0,
            "ts %" PRId64 " is %s %s: ts looks like %s since 1970 (%s); "
            "tailor expects milliseconds",
            ts, before ? "before" : "after", bound, unit, tl_fmt_time(as, ms));
    return TL_REJECT_BAD_TIMESTAMP;
}

/* The checks both formats share, once the fields are read: the decode
 * limits and finite numbers first, then a missing customer, then the
 * time. */
tl_reject tl_event_check(const tl_event *ev, const char *no_customer,
                         int64_t min_ts, int64_t max_ts, char *err,
                         size_t errsz)
{
    if (ev->customer_id_len > TL_EVENT_MAX_CUSTOMER_ID) {
        tl_errf(err, errsz, 0, "customer_id is %zu bytes, more than %d",
                ev->customer_id_len, TL_EVENT_MAX_CUSTOMER_ID);
        return TL_REJECT_DECODE;
    }
    if (ev->nattrs > TL_EVENT_MAX_ATTRS) {
        tl_errf(err, errsz, 0, "field 'attrs' has %zu entries, more than %d",
                ev->nattrs, TL_EVENT_MAX_ATTRS);
        return TL_REJECT_DECODE;
    }
    /* Avro can carry NaN and infinities (JSON cannot): one would stay in a
     * sum or an average for good, or print as "inf" in a trigger. */
    double x = 0;
    const char *field =
        ev->has_quantity && !isfinite(x = ev->quantity) ? "quantity"
        : ev->has_amount && !isfinite(x = ev->amount)   ? "amount"
                                                        : NULL;
    if (field) {
        char num[TL_NUMBUF];
        tl_fmt_double(num, x);
        tl_errf(err, errsz, 0, "field '%s' must be a finite number, not %s",
                field, num);
        return TL_REJECT_DECODE;
    }
    if (!ev->customer_id || ev->customer_id_len == 0) {
        tl_errf(err, errsz, 0, "%s", no_customer);
        return TL_REJECT_MISSING_CUSTOMER;
    }
    if (ev->ts < min_ts || ev->ts > max_ts)
        return bad_time(ev->ts, min_ts, max_ts, err, errsz);
    return TL_REJECT_NONE;
}

/* ------------------------------------------------------------------------
 * The decoder's front
 */

tl_event_decoder *tl_event_decoder_new(tl_event_format fmt,
                                       const char *reader_schema_json,
                                       const char *writer_schema_json,
                                       char *err, size_t errsz)
{
    tl_event_decoder *d = tl_xcalloc(1, sizeof *d);
    d->fmt = fmt;
    d->min_ts = TL_EVENT_MIN_TS;
    d->max_ts = TL_EVENT_MAX_TS;
    d->def_channel = TL_CH_OTHER;
    if (fmt == TL_FMT_JSON) return d;
    if (fmt != TL_FMT_AVRO) {
        tl_errf(err, errsz, TL_ERR_CONFIG, "unknown event format %d",
                (int)fmt);
        goto fail;
    }
    if (tl_event_avro_init(d, reader_schema_json, writer_schema_json, err,
                           errsz))
        goto fail;
    return d;
fail:
    tl_event_decoder_free(d);
    return NULL;
}

void tl_event_decoder_free(tl_event_decoder *d)
{
    if (!d) return;
    tl_event_avro_fini(d);
    free(d);
}

void tl_event_decoder_set_range(tl_event_decoder *d, int64_t min_ts,
                                int64_t max_ts)
{
    d->min_ts = min_ts > TL_EVENT_MIN_TS ? min_ts : TL_EVENT_MIN_TS;
    d->max_ts = max_ts < TL_EVENT_MAX_TS ? max_ts : TL_EVENT_MAX_TS;
}

tl_reject tl_event_decode(tl_event_decoder *d, const void *buf, size_t len,
                          tl_arena *arena, tl_event *ev, char *err,
                          size_t errsz)
{
    memset(ev, 0, sizeof *ev);
    /* Before anything looks at the bytes. */
    if (len > TL_EVENT_MAX_SIZE) {
        tl_errf(err, errsz, 0, "message is %zu bytes, more than %zu", len,
                TL_EVENT_MAX_SIZE);
        return TL_REJECT_DECODE;
    }
    if (d->fmt == TL_FMT_JSON)
        return tl_event_json(buf, len, arena, ev, d->min_ts, d->max_ts, err,
                             errsz);
    return tl_event_avro_decode(d, buf, len, arena, ev, err, errsz);
}

/* ------------------------------------------------------------------------
 * Names for expressions
 */

enum var {
    V_EVENT_ID,
    V_CUSTOMER_ID,
    V_TS,
    V_CHANNEL,
    V_TYPE,
    V_ITEM,
    V_STORE,
    V_QUANTITY,
    V_AMOUNT,
    V_ATTRS,
    V__COUNT
};

_Static_assert(V__COUNT <= TL_EVENT_VAR_LIMIT, "event vars over the limit");

static const struct {
    const char *name;
    tl_type type;
} vars[V__COUNT] = {
    [V_EVENT_ID] = {"event_id", TL_T_STR},
    [V_CUSTOMER_ID] = {"customer_id", TL_T_STR},
    [V_TS] = {"ts", TL_T_NUM},
    [V_CHANNEL] = {"channel", TL_T_STR},
    [V_TYPE] = {"type", TL_T_STR},
    [V_ITEM] = {"item", TL_T_STR},
    [V_STORE] = {"store", TL_T_STR},
    [V_QUANTITY] = {"quantity", TL_T_NUM},
    [V_AMOUNT] = {"amount", TL_T_NUM},
    [V_ATTRS] = {"attrs", TL_T_STR},
};

int tl_event_resolve(void *ud, const char *name, const char *key,
                     uint32_t *var, tl_type *type)
{
    (void)ud;
    for (uint32_t i = 0; i < V__COUNT; i++) {
        if (strcmp(vars[i].name, name) != 0) continue;
        /* attrs only with a key, every other name only without one */
        if ((i == V_ATTRS) != (key != NULL)) return -1;
        *var = i;
        *type = vars[i].type;
        return 0;
    }
    return -1;
}

const char *tl_event_var_name(uint32_t var)
{
    return var < V__COUNT ? vars[var].name : NULL;
}

static void str_value(tl_value *out, const char *s, size_t len)
{
    if (!s) {
        *out = TL_VALUE_NULL;
        return;
    }
    out->type = TL_T_STR;
    out->u.str.ptr = s;
    out->u.str.len = len;
}

static void num_value(tl_value *out, int has, double v)
{
    if (!has) {
        *out = TL_VALUE_NULL;
        return;
    }
    out->type = TL_T_NUM;
    out->u.num = v;
}

void tl_event_fetch(void *ud, uint32_t var, const char *key, size_t keylen,
                    tl_value *out)
{
    const tl_event *ev = ud;
    const tl_attr *a;
    switch ((enum var)var) {
    case V_EVENT_ID:
        str_value(out, ev->event_id, ev->event_id ? strlen(ev->event_id) : 0);
        return;
    case V_CUSTOMER_ID:
        str_value(out, ev->customer_id, ev->customer_id_len);
        return;
    case V_TS: num_value(out, 1, (double)ev->ts); return;
    case V_CHANNEL: {
        const char *c = tl_channel_name(ev->channel);
        str_value(out, c, strlen(c));
        return;
    }
    case V_TYPE:
        str_value(out, ev->type, ev->type ? strlen(ev->type) : 0);
        return;
    case V_ITEM:
        str_value(out, ev->item, ev->item ? strlen(ev->item) : 0);
        return;
    case V_STORE:
        str_value(out, ev->store, ev->store ? strlen(ev->store) : 0);
        return;
    case V_QUANTITY: num_value(out, ev->has_quantity, ev->quantity); return;
    case V_AMOUNT: num_value(out, ev->has_amount, ev->amount); return;
    case V_ATTRS:
        a = key ? tl_event_attr(ev, key, keylen) : NULL;
        str_value(out, a ? a->val : NULL, a ? a->vallen : 0);
        return;
    case V__COUNT: break;
    }
    *out = TL_VALUE_NULL;
}
