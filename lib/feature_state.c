/*
 * feature_state.c: a feature's internal state as text, stored in the
 * customer's Redis hash as field "_f:<name>" (see vec.h) and read back
 * exactly: tl_feature_save_size, tl_feature_save, tl_feature_load.
 * The text is "<updated>;<body>" with a body per kind (last_seen has none
 * and no ';'; since saves nothing, it has no state), and it gives back the
 * slice exactly.  The flush saves the features that changed; a customer
 * loaded from Redis is restored with tl_feature_load.
 */
#include "feature.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "feature_int.h"

size_t tl_feature_save_size(const tl_feature *f)
{
    size_t n = 3 * (TL_NUMBUF + 1);
    switch (f->kind) {
    case TL_FK_WINDOW_COUNT:
    case TL_FK_WINDOW_SUM:
        n += (size_t)f->nbuckets * (TL_NUMBUF + 1);
        break;
    case TL_FK_LAST:
        n += f->max_len;
        break;
    case TL_FK_TOP_K:
        n += (size_t)f->capacity * (3 * TL_NUMBUF + f->max_len);
        break;
    case TL_FK_DISTINCT:
        n += 2 * distinct_bytes(f) + 16;
        break;
    case TL_FK_LAST_N:
        n += (size_t)f->n * (2 * TL_NUMBUF + f->max_len);
        break;
    default:
        break;
    }
    return n + 1;
}

static size_t put_num(char *buf, double v) { return (size_t)tl_fmt_state_double(buf, v); }
static size_t put_int(char *buf, int64_t v) { return (size_t)tl_fmt_i64(buf, v); }

static const char hexd[] = "0123456789abcdef";

/* Window: "<head>;<bucket>,<bucket>...", newest bucket first; trailing
 * zero buckets are implied. */
static size_t save_window(const tl_feature *f, const unsigned char *s,
                          char *buf)
{
    size_t n = 0;
    int64_t head = geti(s + HDR);
    const unsigned char *ring = s + HDR + 8;
    n += put_int(buf + n, head);
    buf[n++] = ';';
    uint32_t last = 0;
    for (uint32_t k = 0; k < f->nbuckets; k++)
        if (getd(ring + 8 * ring_index(head - k, f->nbuckets)) != 0)
            last = k + 1;
    for (uint32_t k = 0; k < last; k++) {
        if (k) buf[n++] = ',';
        n += put_num(buf + n,
                     getd(ring + 8 * ring_index(head - k, f->nbuckets)));
    }
    return n;
}

/* top_k: "<ref>;" then count "/" error "," length ":" bytes, per entry, in
 * rank: the length makes any byte in a value safe. */
static size_t save_top_k(const tl_feature *f, const unsigned char *s,
                         char *buf)
{
    const hdr *h = (const hdr *)s;
    size_t n = 0;
    n += put_int(buf + n, geti(s + HDR));
    buf[n++] = ';';
    for (uint32_t i = 0; i < h->len; i++) {
        const unsigned char *e = tk_entry(f, (unsigned char *)s, i);
        n += put_num(buf + n, getd(e + tk_count_off(f)));
        buf[n++] = '/';
        n += put_num(buf + n, getd(e + tk_err_off(f)));
        buf[n++] = ',';
        n += put_int(buf + n, getu(e));
        buf[n++] = ':';
        memcpy(buf + n, e + 4, getu(e));
        n += getu(e);
    }
    return n;
}

/* distinct: "E;" and the hashes as big-endian hex, or "H;" and the
 * registers, one byte each. */
static size_t save_distinct(const tl_feature *f, const unsigned char *s,
                            char *buf)
{
    const hdr *h = (const hdr *)s;
    size_t n = 0;
    int hll = h->len == DISTINCT_HLL;
    buf[n++] = hll ? 'H' : 'E';
    buf[n++] = ';';
    size_t bytes = hll ? (size_t)1 << f->precision : (size_t)h->len * 8;
    const unsigned char *d = s + HDR;
    for (size_t i = 0; i < bytes; i++) {
        unsigned char c = hll ? d[i] : d[(i / 8) * 8 + 7 - i % 8];
        buf[n++] = hexd[c >> 4];
        buf[n++] = hexd[c & 15];
    }
    return n;
}

/* last_n: per entry, most recent first, "<ts>," then "<len>:<bytes>" or
 * "<number>;". */
static size_t save_last_n(const tl_feature *f, const unsigned char *s,
                          char *buf)
{
    const hdr *h = (const hdr *)s;
    size_t n = 0;
    size_t es = ln_entry_size(f), to = ln_ts_off(f);
    for (uint32_t i = 0; i < h->len; i++) {
        const unsigned char *e = s + HDR + i * es;
        n += put_int(buf + n, geti(e + to));
        buf[n++] = ',';
        if (f->type == TL_T_LIST_STR) {
            n += put_int(buf + n, getu(e));
            buf[n++] = ':';
            memcpy(buf + n, e + 4, getu(e));
            n += getu(e);
        } else {
            n += put_num(buf + n, getd(e));
            buf[n++] = ';';
        }
    }
    return n;
}

size_t tl_feature_save(const tl_feature *f, const unsigned char *block,
                       char *buf)
{
    const unsigned char *s = block + f->offset;
    const hdr *h = (const hdr *)s;
    size_t n = 0;
    if (f->kind == TL_FK_SINCE) {
        buf[0] = '\0';
        return 0;
    }
    n += put_int(buf + n, h->updated);
    switch (f->kind) {
    case TL_FK_LAST_SEEN:
        break;
    case TL_FK_FIRST_SEEN:
        buf[n++] = ';';
        n += put_int(buf + n, geti(s + HDR));
        break;
    case TL_FK_AVG:
        buf[n++] = ';';
        n += put_num(buf + n, getd(s + HDR));
        buf[n++] = ';';
        n += put_num(buf + n, getd(s + HDR + 8));
        break;
    case TL_FK_DECAYED_COUNT:
    case TL_FK_DECAYED_SUM:
        buf[n++] = ';';
        n += put_num(buf + n, getd(s + HDR));
        buf[n++] = ';';
        n += put_int(buf + n, geti(s + HDR + 8));
        break;
    case TL_FK_WINDOW_COUNT:
    case TL_FK_WINDOW_SUM:
        buf[n++] = ';';
        n += save_window(f, s, buf + n);
        break;
    case TL_FK_TOP_K:
        buf[n++] = ';';
        n += save_top_k(f, s, buf + n);
        break;
    case TL_FK_DISTINCT:
        buf[n++] = ';';
        n += save_distinct(f, s, buf + n);
        break;
    case TL_FK_LAST_N:
        buf[n++] = ';';
        n += save_last_n(f, s, buf + n);
        break;
    case TL_FK_LAST:
        buf[n++] = ';';
        if (f->type == TL_T_STR) {
            memcpy(buf + n, s + HDR, h->len);
            n += h->len;
        } else {
            n += put_num(buf + n, getd(s + HDR));
        }
        break;
    default: /* count, sum, min, max */
        buf[n++] = ';';
        n += put_num(buf + n, getd(s + HDR));
        break;
    }
    buf[n] = '\0';
    return n;
}

/* A cursor over saved text. */
typedef struct cur {
    const char *p, *end;
} cur;

/* Reads up to (not including) `stop` (or the end when stop is 0). */
static int take(cur *c, char stop, const char **part, size_t *len)
{
    const char *q = stop ? memchr(c->p, stop, (size_t)(c->end - c->p)) : NULL;
    if (stop && !q) return -1;
    if (!q) q = c->end;
    *part = c->p;
    *len = (size_t)(q - c->p);
    c->p = q + (stop ? 1 : 0);
    return 0;
}

static int take_i64(cur *c, char stop, int64_t *v)
{
    const char *p;
    size_t n;
    return take(c, stop, &p, &n) || tl_parse_i64(p, n, v) ? -1 : 0;
}

static int take_num(cur *c, char stop, double *v)
{
    const char *p;
    size_t n;
    return take(c, stop, &p, &n) || tl_parse_double(p, n, v) ? -1 : 0;
}

/* "<len>:<bytes>" */
static int take_str(cur *c, uint32_t max, const char **s, uint32_t *len)
{
    int64_t n;
    if (take_i64(c, ':', &n) || n < 0 || n > max || n > c->end - c->p) return -1;
    *s = c->p;
    *len = (uint32_t)n;
    c->p += n;
    return 0;
}

/* Window: "<head>;<bucket>,<bucket>...", newest first.  The head is the
 * bucket of `updated` (the newest event): one that is not was saved with
 * another resolution, and would be misread.  Buckets beyond nbuckets were
 * saved with a longer window at this resolution: they are older than this
 * window, and dropping them gives exactly the state this window would
 * have. */
static int load_window(const tl_feature *f, unsigned char *s, cur *c)
{
    int64_t head;
    double d;
    if (take_i64(c, ';', &head) ||
        head != bucket_of(((const hdr *)s)->updated, f->resolution_ms))
        return -1;
    puti(s + HDR, head);
    for (uint32_t k = 0; c->p < c->end; k++) {
        const char *comma = memchr(c->p, ',', (size_t)(c->end - c->p));
        if (take_num(c, comma ? ',' : 0, &d)) return -1;
        if (k < f->nbuckets)
            putd(s + HDR + 8 + 8 * ring_index(head - k, f->nbuckets), d);
        if (comma && c->p == c->end) return -1; /* trailing comma */
    }
    return 0;
}

/* top_k: "<ref>;" then "<count>/<err>,<len>:<bytes>" per entry.  State
 * saved before errors were kept has "<count>,<len>:<bytes>" entries: all
 * exact while the table was not full; a full one may have evicted, and
 * every error is at most the smallest count, which it is taken to be (the
 * rank by count is kept, the guaranteed counts stay lower bounds). */
static int load_top_k(const tl_feature *f, unsigned char *s, cur *c)
{
    hdr *h = (hdr *)s;
    int64_t ref;
    double d, err = 0, min = 0;
    int old = 0;
    if (take_i64(c, ';', &ref)) return -1;
    puti(s + HDR, ref);
    while (c->p < c->end) {
        const char *v;
        uint32_t len;
        const char *comma = memchr(c->p, ',', (size_t)(c->end - c->p));
        const char *slash = memchr(c->p, '/', (size_t)(c->end - c->p));
        int has_err = slash && comma && slash < comma;
        if (h->len && has_err == old) return -1; /* one form per body */
        old = !has_err;
        if (h->len >= f->capacity || take_num(c, has_err ? '/' : ',', &d) ||
            (has_err && (take_num(c, ',', &err) || err < 0 || err > d)) ||
            take_str(c, f->max_len, &v, &len))
            return -1;
        unsigned char *e = tk_entry(f, s, h->len++);
        putu(e, len);
        memcpy(e + 4, v, len);
        putd(e + tk_count_off(f), d);
        putd(e + tk_err_off(f), err);
        if (h->len == 1 || d < min) min = d;
    }
    if (old && h->len == f->capacity) {
        for (uint32_t i = 0; i < h->len; i++)
            putd(tk_entry(f, s, i) + tk_err_off(f), min);
        tl_feature_top_k_sort(f, s);
    }
    return 0;
}

/* distinct: "E;" and strictly ascending hashes, or "H;" and all the
 * registers, in hex. */
static int load_distinct(const tl_feature *f, unsigned char *s, cur *c)
{
    hdr *h = (hdr *)s;
    if (c->end - c->p < 2 || (c->p[0] != 'E' && c->p[0] != 'H') ||
        c->p[1] != ';')
        return -1;
    int hll = c->p[0] == 'H';
    c->p += 2;
    size_t hex = (size_t)(c->end - c->p);
    size_t bytes = hex / 2;
    if (hex % 2 || (hll ? bytes != ((size_t)1 << f->precision)
                        : bytes % 8 || bytes / 8 > f->exact_up_to))
        return -1;
    unsigned char *dst = s + HDR;
    for (size_t i = 0; i < bytes; i++) {
        int hi = tl_hexval(c->p[2 * i]), lo = tl_hexval(c->p[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        dst[hll ? i : (i / 8) * 8 + 7 - i % 8] = (unsigned char)(hi << 4 | lo);
    }
    h->len = hll ? DISTINCT_HLL : (uint32_t)(bytes / 8);
    for (uint32_t i = 1; !hll && i < h->len; i++) {
        uint64_t a, b;
        memcpy(&a, dst + 8 * (size_t)(i - 1), 8);
        memcpy(&b, dst + 8 * (size_t)i, 8);
        if (a >= b) return -1; /* must be strictly sorted */
    }
    c->p = c->end;
    return 0;
}

/* last_n: "<ts>," then "<len>:<bytes>" or "<number>;" per entry, most
 * recent first.  Entries beyond n were saved with a larger n: the n most
 * recent are exactly what this n would hold, the others are dropped. */
static int load_last_n(const tl_feature *f, unsigned char *s, cur *c)
{
    hdr *h = (hdr *)s;
    size_t es = ln_entry_size(f), to = ln_ts_off(f);
    int str = f->type == TL_T_LIST_STR;
    while (c->p < c->end) {
        int64_t ts;
        double d = 0;
        const char *v = NULL;
        uint32_t len = 0;
        if (take_i64(c, ',', &ts) ||
            (str ? take_str(c, f->max_len, &v, &len) : take_num(c, ';', &d)))
            return -1;
        if (h->len >= f->n) continue;
        unsigned char *e = s + HDR + h->len * es;
        if (str) {
            putu(e, len);
            memcpy(e + 4, v, len);
        } else {
            putd(e, d);
        }
        puti(e + to, ts);
        h->len++;
    }
    return 0;
}

static int load_body(const tl_feature *f, unsigned char *s, cur *c)
{
    hdr *h = (hdr *)s;
    int64_t i64;
    double d;
    switch (f->kind) {
    case TL_FK_LAST_SEEN:
        return c->p == c->end ? 0 : -1;
    case TL_FK_FIRST_SEEN:
        if (take_i64(c, 0, &i64)) return -1;
        puti(s + HDR, i64);
        return 0;
    case TL_FK_AVG:
        if (take_num(c, ';', &d)) return -1;
        putd(s + HDR, d);
        if (take_num(c, 0, &d) || d < 1) return -1;
        putd(s + HDR + 8, d);
        return 0;
    case TL_FK_DECAYED_COUNT:
    case TL_FK_DECAYED_SUM:
        if (take_num(c, ';', &d) || take_i64(c, 0, &i64)) return -1;
        putd(s + HDR, d);
        puti(s + HDR + 8, i64);
        return 0;
    case TL_FK_WINDOW_COUNT:
    case TL_FK_WINDOW_SUM:
        return load_window(f, s, c);
    case TL_FK_TOP_K:
        return load_top_k(f, s, c);
    case TL_FK_DISTINCT:
        return load_distinct(f, s, c);
    case TL_FK_LAST_N:
        return load_last_n(f, s, c);
    case TL_FK_LAST:
        if (f->type == TL_T_STR) {
            /* The rest is the raw string, which may itself contain ';'. */
            size_t n = utf8_cut(c->p, (size_t)(c->end - c->p), f->max_len);
            memcpy(s + HDR, c->p, n);
            s[HDR + n] = '\0';
            h->len = (uint32_t)n;
            c->p = c->end;
            return 0;
        }
        if (take_num(c, 0, &d)) return -1;
        putd(s + HDR, d);
        return 0;
    default:
        if (take_num(c, 0, &d)) return -1;
        putd(s + HDR, d);
        return 0;
    }
}

int tl_feature_load(const tl_feature *f, unsigned char *block,
                    const char *text, size_t len, char *err, size_t errsz)
{
    unsigned char *s = block + f->offset;
    hdr *h = (hdr *)s;
    cur c = {text, text + len};
    int64_t upd;
    tl_feature_reset(f, block);
    if (f->kind == TL_FK_SINCE) return TL_OK;
    int has_body = f->kind != TL_FK_LAST_SEEN;
    /* The body may check itself against updated (load_window). */
    if (take_i64(&c, has_body ? ';' : 0, &upd) ||
        (h->updated = upd, load_body(f, s, &c)) || c.p != c.end) {
        tl_feature_reset(f, block);
        return tl_errf(err, errsz, TL_ERR_DECODE,
                       "feature %s: malformed stored state '%.*s'", f->name,
                       (int)(len > 80 ? 80 : len), text);
    }
    h->updated = upd;
    h->set = 1;
    return TL_OK;
}
