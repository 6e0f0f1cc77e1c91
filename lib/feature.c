#include "feature.h"

#include <math.h>
#include <string.h>

#include "common.h"

/*
 * Slice layout.  Every kind starts with a header so that "never set" and the
 * time of the last change are uniform; what follows depends on the kind:
 *   count, sum, last (number/bool)  double value
 *   last (string)                   char text[max_len + 1]
 *   last_seen                       nothing (the value is `updated`)
 *   window_count                    int64 head bucket, double ring[nbuckets]
 * Window buckets are a ring indexed by (bucket number mod nbuckets); `head`
 * is the newest bucket number seen, so bucket k is live iff
 * head - nbuckets < k <= head.
 */
typedef struct hdr {
    int64_t updated; /* event time of the last change */
    uint32_t set;    /* 1 once any event changed the feature */
    uint32_t len;    /* string length for `last` on strings */
} hdr;

typedef struct win {
    hdr h;
    int64_t head;
    double ring[];
} win;

static const tl_feature_kind_info kinds[TL_FK__COUNT] = {
    [TL_FK_COUNT] = {"count", 0, TL_T_NULL, 0},
    [TL_FK_SUM] = {"sum", 1, TL_T_NUM, 0},
    [TL_FK_LAST] = {"last", 1, TL_T_NULL, 0},
    [TL_FK_LAST_SEEN] = {"last_seen", 0, TL_T_NULL, 0},
    [TL_FK_WINDOW_COUNT] = {"window_count", 0, TL_T_NULL, 1},
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
    return "count, sum, last, last_seen, window_count";
}

static int is_string_last(const tl_feature *f)
{
    return f->kind == TL_FK_LAST && f->type == TL_T_STR;
}

int tl_feature_finish(tl_feature *f, char *err, size_t errsz)
{
    const tl_feature_kind_info *ki = tl_feature_kind_get(f->kind);
    if (!ki) return tl_errf(err, errsz, TL_ERR_CONFIG, "unknown kind");
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
    switch (f->kind) {
    case TL_FK_COUNT:
    case TL_FK_SUM:
    case TL_FK_WINDOW_COUNT:
    case TL_FK_LAST_SEEN:
        f->type = TL_T_NUM;
        break;
    case TL_FK_LAST:
        f->type = tl_expr_type(f->field);
        if (f->type == TL_T_NULL)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "field of kind last must be a number, string or "
                           "bool, not always null");
        break;
    default:
        break;
    }
    if (ki->needs_field && ki->field_type != TL_T_NULL &&
        tl_expr_type(f->field) != ki->field_type)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "field of kind %s must be a %s, got %s", ki->name,
                       tl_type_name(ki->field_type),
                       tl_type_name(tl_expr_type(f->field)));
    if (f->max_len && !is_string_last(f))
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "'max_length' applies only to kind last on a string "
                       "field");
    if (!f->max_len) f->max_len = TL_FEATURE_DEFAULT_MAX_LEN;
    if (f->max_len > 4096)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "max_length %u is above the limit 4096", f->max_len);

    size_t size = sizeof(hdr);
    if (f->kind == TL_FK_WINDOW_COUNT) {
        if (f->window_ms <= 0)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "kind window_count needs a 'window' above 0");
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
        size = sizeof(win) + sizeof(double) * f->nbuckets;
    } else if (is_string_last(f)) {
        size += f->max_len + 1;
    } else if (f->kind != TL_FK_LAST_SEEN) {
        size += sizeof(double);
    }
    f->size = (size + 7) & ~(size_t)7;
    return TL_OK;
}

size_t tl_features_layout(tl_feature *fs, size_t n, size_t base)
{
    size_t off = (base + 7) & ~(size_t)7;
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

static double *num_slot(unsigned char *s) { return (double *)(s + sizeof(hdr)); }
static char *str_slot(unsigned char *s) { return (char *)(s + sizeof(hdr)); }

/* Bucket number of ts: floor division so that times before 1970 still map
 * to consecutive buckets. */
static int64_t bucket_of(int64_t ts, int64_t res)
{
    int64_t q = ts / res;
    if ((ts % res) && ts < 0) q--;
    return q;
}

static size_t ring_index(int64_t bucket, uint32_t n)
{
    int64_t r = bucket % (int64_t)n;
    return (size_t)(r < 0 ? r + n : r);
}

/* Cuts a string to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max) return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

static int window_add(const tl_feature *f, win *w, int64_t ts, double v)
{
    int64_t b = bucket_of(ts, f->resolution_ms);
    uint32_t n = f->nbuckets;
    if (!w->h.set) {
        w->head = b;
    } else if (b > w->head) {
        int64_t adv = b - w->head;
        if (adv >= n)
            memset(w->ring, 0, sizeof(double) * n);
        else
            for (int64_t k = w->head + 1; k <= b; k++)
                w->ring[ring_index(k, n)] = 0;
        w->head = b;
    } else if (b <= w->head - (int64_t)n) {
        return 0; /* older than the whole window: cannot matter any more */
    }
    w->ring[ring_index(b, n)] += v;
    return 1;
}

static double window_read(const tl_feature *f, const win *w, int64_t now)
{
    int64_t nb = bucket_of(now, f->resolution_ms);
    int64_t n = f->nbuckets;
    int64_t lo = nb - n + 1, hi = nb;
    if (w->head - n + 1 > lo) lo = w->head - n + 1;
    if (w->head < hi) hi = w->head;
    double sum = 0;
    for (int64_t k = lo; k <= hi; k++) sum += w->ring[ring_index(k, f->nbuckets)];
    return sum;
}

int tl_feature_apply(const tl_feature *f, unsigned char *block,
                     const tl_event *ev, tl_expr_fetch fetch, void *ud)
{
    unsigned char *s = block + f->offset;
    hdr *h = (hdr *)s;
    if (f->where && !tl_expr_true(f->where, fetch, ud)) return 0;
    tl_value v = TL_VALUE_NULL;
    if (f->field) {
        tl_expr_eval(f->field, fetch, ud, &v);
        /* An event without the value does not count for this feature. */
        if (v.type == TL_T_NULL) return 0;
    }
    switch (f->kind) {
    case TL_FK_COUNT:
        *num_slot(s) += 1;
        break;
    case TL_FK_SUM:
        *num_slot(s) += v.u.num;
        break;
    case TL_FK_LAST:
        /* Latest by event time; a tie goes to the later arrival. */
        if (h->set && ev->ts < h->updated) return 0;
        if (v.type == TL_T_STR) {
            size_t n = utf8_cut(v.u.str.ptr, v.u.str.len, f->max_len);
            memcpy(str_slot(s), v.u.str.ptr, n);
            str_slot(s)[n] = '\0';
            h->len = (uint32_t)n;
        } else {
            *num_slot(s) = v.type == TL_T_BOOL ? v.u.b : v.u.num;
        }
        break;
    case TL_FK_LAST_SEEN:
        if (h->set && ev->ts <= h->updated) return 0;
        break;
    case TL_FK_WINDOW_COUNT:
        if (!window_add(f, (win *)s, ev->ts, 1)) return 0;
        break;
    default:
        return 0;
    }
    if (!h->set || ev->ts > h->updated) h->updated = ev->ts;
    h->set = 1;
    return 1;
}

void tl_feature_read(const tl_feature *f, const unsigned char *block,
                     int64_t now, tl_value *out)
{
    const unsigned char *s = block + f->offset;
    const hdr *h = (const hdr *)s;
    switch (f->kind) {
    case TL_FK_COUNT:
    case TL_FK_SUM:
        /* Nothing counted yet is a count of zero, not an unknown. */
        out->type = TL_T_NUM;
        out->u.num = h->set ? *(const double *)(s + sizeof(hdr)) : 0;
        return;
    case TL_FK_WINDOW_COUNT:
        out->type = TL_T_NUM;
        out->u.num = h->set ? window_read(f, (const win *)s, now) : 0;
        return;
    case TL_FK_LAST_SEEN:
        if (!h->set) break;
        out->type = TL_T_NUM;
        out->u.num = (double)h->updated;
        return;
    case TL_FK_LAST:
        if (!h->set) break;
        out->type = f->type;
        if (f->type == TL_T_STR) {
            out->u.str.ptr = (const char *)(s + sizeof(hdr));
            out->u.str.len = h->len;
        } else if (f->type == TL_T_BOOL) {
            out->u.b = *(const double *)(s + sizeof(hdr)) != 0;
        } else {
            out->u.num = *(const double *)(s + sizeof(hdr));
        }
        return;
    default:
        break;
    }
    *out = TL_VALUE_NULL;
}

int tl_feature_format(const tl_feature *f, const unsigned char *block,
                      char *buf, size_t size)
{
    const hdr *h = (const hdr *)(block + f->offset);
    if (!h->set) return -1;
    tl_value v;
    tl_feature_read(f, block, h->updated, &v);
    return (int)tl_value_format(&v, buf, size);
}

size_t tl_feature_save_size(const tl_feature *f)
{
    /* updated ";" value, or for windows updated ";" head ";" n numbers */
    size_t n = 2 * TL_NUMBUF + 2;
    if (f->kind == TL_FK_WINDOW_COUNT) n += (size_t)f->nbuckets * (TL_NUMBUF + 1);
    if (is_string_last(f)) n += f->max_len;
    return n + 1;
}

size_t tl_feature_save(const tl_feature *f, const unsigned char *block,
                       char *buf)
{
    const unsigned char *s = block + f->offset;
    const hdr *h = (const hdr *)s;
    size_t n = (size_t)sprintf(buf, "%lld", (long long)h->updated);
    switch (f->kind) {
    case TL_FK_LAST_SEEN:
        break;
    case TL_FK_WINDOW_COUNT: {
        const win *w = (const win *)s;
        n += (size_t)sprintf(buf + n, ";%lld;", (long long)w->head);
        /* Newest bucket first; trailing zero buckets are implied. */
        uint32_t last = 0;
        for (uint32_t k = 0; k < f->nbuckets; k++)
            if (w->ring[ring_index(w->head - k, f->nbuckets)] != 0) last = k + 1;
        for (uint32_t k = 0; k < last; k++) {
            if (k) buf[n++] = ',';
            n += (size_t)tl_fmt_double(
                buf + n, w->ring[ring_index(w->head - k, f->nbuckets)]);
        }
        break;
    }
    default:
        buf[n++] = ';';
        if (is_string_last(f)) {
            memcpy(buf + n, s + sizeof(hdr), h->len);
            n += h->len;
        } else {
            n += (size_t)tl_fmt_double(buf + n, *(const double *)(s + sizeof(hdr)));
        }
    }
    buf[n] = '\0';
    return n;
}

/* Splits off the text up to the next ';' (or the end). */
static int next_part(const char **p, const char *end, const char **part,
                     size_t *len)
{
    if (*p > end) return -1;
    const char *q = memchr(*p, ';', (size_t)(end - *p));
    if (!q) q = end;
    *part = *p;
    *len = (size_t)(q - *p);
    *p = q + 1;
    return 0;
}

int tl_feature_load(const tl_feature *f, unsigned char *block,
                    const char *text, size_t len, char *err, size_t errsz)
{
    unsigned char *s = block + f->offset;
    hdr *h = (hdr *)s;
    const char *p = text, *end = text + len, *part;
    size_t plen;
    tl_feature_reset(f, block);
    int64_t upd;
    if (next_part(&p, end, &part, &plen) || tl_parse_i64(part, plen, &upd))
        goto bad;
    h->updated = upd;
    h->set = 1;
    switch (f->kind) {
    case TL_FK_LAST_SEEN:
        if (p <= end) goto bad;
        return TL_OK;
    case TL_FK_WINDOW_COUNT: {
        win *w = (win *)s;
        if (next_part(&p, end, &part, &plen) ||
            tl_parse_i64(part, plen, &w->head) || p > end + 1)
            goto bad;
        /* The remaining text is a comma list, newest bucket first. */
        const char *q = part + plen + 1;
        uint32_t k = 0;
        while (q < end) {
            const char *c = memchr(q, ',', (size_t)(end - q));
            if (!c) c = end;
            double v;
            if (k >= f->nbuckets || tl_parse_double(q, (size_t)(c - q), &v))
                goto bad;
            w->ring[ring_index(w->head - k, f->nbuckets)] = v;
            k++;
            q = c + 1;
        }
        return TL_OK;
    }
    default:
        if (p > end) goto bad;
        if (is_string_last(f)) {
            /* The rest is the raw string, which may itself contain ';'. */
            size_t n = (size_t)(end - p);
            if (n > f->max_len) n = utf8_cut(p, n, f->max_len);
            memcpy(s + sizeof(hdr), p, n);
            ((char *)(s + sizeof(hdr)))[n] = '\0';
            h->len = (uint32_t)n;
            return TL_OK;
        }
        if (next_part(&p, end, &part, &plen) ||
            tl_parse_double(part, plen, num_slot(s)) || p <= end)
            goto bad;
        return TL_OK;
    }
bad:
    tl_feature_reset(f, block);
    return tl_errf(err, errsz, TL_ERR_DECODE,
                   "feature %s: malformed stored state '%.*s'", f->name,
                   (int)(len > 80 ? 80 : len), text);
}

void tl_feature_clear(tl_feature *f)
{
    if (!f) return;
    free(f->name);
    tl_expr_free(f->where);
    tl_expr_free(f->field);
    memset(f, 0, sizeof *f);
}
