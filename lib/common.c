#include "common.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

int tl_errf(char *err, size_t errsz, int code, const char *fmt, ...)
{
    if (err && errsz > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return code;
}

void tl_assert_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "tailor: assertion failed at %s:%d: %s\n", file, line,
            what);
    abort();
}

static void *check(void *p, size_t n)
{
    if (!p && n) {
        fprintf(stderr, "tailor: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

void *tl_xmalloc(size_t n) { return check(malloc(n ? n : 1), n); }
void *tl_xcalloc(size_t n, size_t size)
{
    return check(calloc(n ? n : 1, size ? size : 1), n * size);
}
void *tl_xrealloc(void *p, size_t n) { return check(realloc(p, n ? n : 1), n); }
char *tl_xstrdup(const char *s) { return tl_xstrndup(s, strlen(s)); }
char *tl_xstrndup(const char *s, size_t n)
{
    char *d = tl_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

struct tl_arena_chunk {
    tl_arena_chunk *next;
    size_t size, used;
    _Alignas(8) unsigned char data[];
};

void tl_arena_init(tl_arena *a, size_t chunk_size)
{
    a->head = a->chunks = NULL;
    a->chunk_size = chunk_size ? chunk_size : 65536;
}

void *tl_arena_alloc(tl_arena *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    tl_arena_chunk *c = a->head;
    /* Walk forward through chunks kept from earlier batches before growing. */
    while (c && c->used + n > c->size) {
        c = c->next;
        if (c) c->used = 0;
        a->head = c ? c : a->head;
    }
    if (!c) {
        size_t sz = n > a->chunk_size ? n : a->chunk_size;
        c = tl_xmalloc(sizeof *c + sz);
        c->size = sz;
        c->used = 0;
        c->next = NULL;
        /* Append after the current head so that reset order is preserved. */
        if (a->head) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->chunks;
            a->chunks = c;
        }
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

char *tl_arena_strndup(tl_arena *a, const char *s, size_t n)
{
    char *d = tl_arena_alloc(a, n + 1);
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void tl_arena_reset(tl_arena *a)
{
    a->head = a->chunks;
    if (a->head) a->head->used = 0;
}

void tl_arena_free(tl_arena *a)
{
    tl_arena_chunk *c = a->chunks;
    while (c) {
        tl_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = a->chunks = NULL;
}

uint64_t tl_fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* Decimal digits of u, unterminated; returns how many. */
static int put_u64(char *buf, uint64_t u)
{
    char tmp[20];
    int n = 0, len = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n) buf[len++] = tmp[--n];
    return len;
}

int tl_fmt_i64(char *buf, int64_t v)
{
    int len = 0;
    if (v < 0) buf[len++] = '-';
    /* 0 - (uint64_t)v is |v| even for INT64_MIN. */
    len += put_u64(buf + len, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
    buf[len] = '\0';
    return len;
}

/*
 * Numbers of at most 15 significant digits between 1e-4 and 1e15 (counts,
 * money, most sums) without printf, which costs a microsecond per number
 * and formats tens of thousands per batch flush.  If r / 10^k == |v| for a
 * whole r < 1e15, the decimal r * 10^-k is exactly what %.15g prints for v
 * (|v| is within half an ulp of it, far less than half a unit in the 15th
 * digit) and parses back to v (r and 10^k are exact, so r / 10^k and
 * strtod round the same real number); the smallest such k leaves no
 * trailing zero, as %g does.  -1 when v is not such a number.
 */
static int fmt_short_decimal(char *buf, double v)
{
    static const double p10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6, 1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14};
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e15)) return -1;
    for (int k = 0; k < 15; k++) {
        double s = a * p10[k];
        if (s >= 1e15) return -1;
        double r = nearbyint(s);
        if (r / p10[k] != a) continue;
        uint64_t whole = (uint64_t)r, scale = (uint64_t)p10[k];
        uint64_t fp = whole % scale;
        int len = 0;
        if (v < 0) buf[len++] = '-';
        len += put_u64(buf + len, whole / scale);
        if (k) {
            buf[len++] = '.';
            for (int d = k - 1; d >= 0; d--) {
                buf[len + d] = (char)('0' + fp % 10);
                fp /= 10;
            }
            len += k;
        }
        buf[len] = '\0';
        return len;
    }
    return -1;
}

int tl_fmt_double(char *buf, double v)
{
    if (isnan(v)) return snprintf(buf, TL_NUMBUF, "nan");
    if (isinf(v)) return snprintf(buf, TL_NUMBUF, v < 0 ? "-inf" : "inf");
    if (v == 0) return snprintf(buf, TL_NUMBUF, "0"); /* also for -0 */
    int fast = fmt_short_decimal(buf, v);
    if (fast >= 0) return fast;
    /* Whole numbers that fit print without exponent, like the datasets do. */
    if (v == floor(v) && fabs(v) < 1e15)
        return snprintf(buf, TL_NUMBUF, "%.0f", v);
    for (int prec = 15; prec <= 17; prec++) {
        int n = snprintf(buf, TL_NUMBUF, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return n;
    }
    return snprintf(buf, TL_NUMBUF, "%.17g", v);
}

/* C99 hexadecimal float of a finite nonzero v: "-0x1.8p+3" (normal) or
 * "0x0.0000000000001p-1022" (subnormal).  It is exact by construction:
 * the 52 stored mantissa bits as 13 hex digits, trailing zeros dropped. */
static int fmt_hex(char *buf, double v)
{
    static const char hexd[] = "0123456789abcdef";
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int exp = (int)((bits >> 52) & 0x7ff);
    uint64_t man = bits & ((UINT64_C(1) << 52) - 1);
    int len = 0;
    if (bits >> 63) buf[len++] = '-';
    buf[len++] = '0';
    buf[len++] = 'x';
    buf[len++] = exp ? '1' : '0';
    if (man) {
        buf[len++] = '.';
        for (int shift = 48; man; shift -= 4) {
            buf[len++] = hexd[(man >> shift) & 15];
            man &= (UINT64_C(1) << shift) - 1;
        }
    }
    int e = exp ? exp - 1023 : -1022;
    buf[len++] = 'p';
    buf[len++] = e < 0 ? '-' : '+';
    len += put_u64(buf + len, (uint64_t)(e < 0 ? -e : e));
    buf[len] = '\0';
    return len;
}

int tl_fmt_state_double(char *buf, double v)
{
    if (isnan(v) || isinf(v) || v == 0) return tl_fmt_double(buf, v);
    /* Whole numbers below 1e15 are short decimals too (k = 0). */
    int n = fmt_short_decimal(buf, v);
    if (n >= 0) return n;
    return fmt_hex(buf, v);
}

int tl_fmt_number(char *buf, double v)
{
    if (isnan(v) || isinf(v) || v == 0 || (v == floor(v) && fabs(v) < 1e15))
        return tl_fmt_double(buf, v);
    int n = fmt_short_decimal(buf, v);
    if (n >= 0) return n;
    return snprintf(buf, TL_NUMBUF, "%.15g", v);
}

const char *tl_fmt_show(const char *s, size_t n, char buf[TL_SHOWSZ])
{
    size_t m = n > TL_SHOW_MAX ? TL_SHOW_MAX : n;
    for (size_t i = 0; i < m; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (n > TL_SHOW_MAX)
        memcpy(buf + TL_SHOW_MAX, "...", 4);
    else
        buf[m] = '\0';
    return buf;
}

int tl_parse_double(const char *s, size_t len, double *out)
{
    char tmp[64];
    if (len == 0 || len >= sizeof tmp) return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end != tmp + len || errno == ERANGE) return -1;
    *out = v;
    return 0;
}

int tl_parse_i64(const char *s, size_t len, int64_t *out)
{
    char tmp[32];
    if (len == 0 || len >= sizeof tmp) return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (end != tmp + len || errno == ERANGE) return -1;
    *out = v;
    return 0;
}

/* After Howard Hinnant's days_from_civil / civil_from_days: eras of 400
 * years, years starting in March (so that February's length comes last). */
int64_t tl_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void tl_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int tl_month_days(int64_t y, int m)
{
    static const unsigned char n[12] = {31, 28, 31, 30, 31, 30,
                                        31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return n[m - 1] + (m == 2 && leap);
}

/* n decimal digits at s[*i] into *out, advancing *i; -1 if not all digits. */
static int digits(const char *s, size_t len, size_t *i, int n, int *out)
{
    int v = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9') return -1;
        v = v * 10 + (s[*i] - '0');
    }
    *out = v;
    return 0;
}

/* The expected separator c at s[*i], advancing *i. */
static int sep(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c) return -1;
    (*i)++;
    return 0;
}

/* ".123456789" (at least one digit) as milliseconds, or nothing. */
static int fraction(const char *s, size_t len, size_t *i, int *ms)
{
    *ms = 0;
    if (*i >= len || s[*i] != '.') return 0;
    (*i)++;
    int n = 0;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        if (n < 3) *ms = *ms * 10 + (s[*i] - '0');
        n++;
        (*i)++;
    }
    if (n == 0 || n > 9) return -1;
    for (int k = n; k < 3; k++) *ms *= 10;
    return 0;
}

/* "Z", or "+HH:MM" / "-HH:MM" as minutes east of UTC. */
static int offset(const char *s, size_t len, size_t *i, int *minutes)
{
    if (*i < len && (s[*i] == 'Z' || s[*i] == 'z')) {
        (*i)++;
        *minutes = 0;
        return 0;
    }
    if (*i >= len || (s[*i] != '+' && s[*i] != '-')) return -1;
    int sign = s[(*i)++] == '-' ? -1 : 1, hh, mm;
    if (digits(s, len, i, 2, &hh) || sep(s, len, i, ':') ||
        digits(s, len, i, 2, &mm) || hh > 23 || mm > 59)
        return -1;
    *minutes = sign * (hh * 60 + mm);
    return 0;
}

int tl_parse_time(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    int y, mo, d, h, mi, sec, ms, off;
    if (digits(s, len, &i, 4, &y) || sep(s, len, &i, '-') ||
        digits(s, len, &i, 2, &mo) || sep(s, len, &i, '-') ||
        digits(s, len, &i, 2, &d))
        return -1;
    if (i >= len || (s[i] != 'T' && s[i] != 't')) return -1;
    i++;
    if (digits(s, len, &i, 2, &h) || sep(s, len, &i, ':') ||
        digits(s, len, &i, 2, &mi) || sep(s, len, &i, ':') ||
        digits(s, len, &i, 2, &sec) || fraction(s, len, &i, &ms) ||
        offset(s, len, &i, &off) || i != len)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > tl_month_days(y, mo) || h > 23 ||
        mi > 59 || sec > 59)
        return -1;
    int64_t t = tl_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 +
                sec - (int64_t)off * 60;
    *out = t * 1000 + ms;
    return 0;
}

const char *tl_fmt_time(char *buf, int64_t ms)
{
    /* Floor division, so that times before 1970 print the right second;
     * the days stay within int64 for every ms. */
    int64_t msec = ms % 1000, sec = ms / 1000;
    if (msec < 0) msec += 1000, sec--;
    int64_t days = sec / 86400, rem = sec % 86400;
    if (rem < 0) rem += 86400, days--;
    int64_t y;
    int m, d;
    tl_civil_from_days(days, &y, &m, &d);
    int n = snprintf(buf, TL_TIMEBUF, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d",
                     y, m, d, (int)(rem / 3600), (int)(rem / 60 % 60),
                     (int)(rem % 60));
    if (msec)
        snprintf(buf + n, TL_TIMEBUF - n, ".%03dZ", (int)msec);
    else
        snprintf(buf + n, TL_TIMEBUF - n, "Z");
    return buf;
}

int64_t tl_now_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tl_now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tl_buf_append(tl_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        b->s = tl_xrealloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void tl_buf_printf(tl_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        tl_buf_append(b, small, (size_t)n);
        return;
    }
    char *big = tl_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    tl_buf_append(b, big, (size_t)n);
    free(big);
}

void tl_buf_free(tl_buf *b)
{
    free(b->s);
    *b = (tl_buf){0};
}

size_t tl_utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned long cp;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef) len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) len = 4, cp = s[0] & 0x07;
    else return 0; /* a continuation byte, 0xc0, 0xc1, 0xf5.. */
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

int tl_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { /* the common case, without a call */
            i++;
            continue;
        }
        size_t k = tl_utf8_seq(s + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

size_t tl_utf8_put(char *b, unsigned long cp)
{
    if (cp < 0x80) {
        b[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int tl_hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void tl_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
char *tl_read_file(const char *path, size_t *len, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 4096;
    if (!f) {
        tl_errf(err, errsz, TL_ERR_IO, "cannot open %s: %s", path,
                strerror(errno));
        return NULL;
    }
    buf = tl_xmalloc(cap);
    for (;;) {
        if (cap - n < 2) {
            cap *= 2;
            buf = tl_xrealloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                tl_errf(err, errsz, TL_ERR_IO, "cannot read %s: %s", path,
                        strerror(errno));
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
fail:
    fclose(f);
    free(buf);
    return NULL;
}
