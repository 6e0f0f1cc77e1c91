#include "tz.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

/* A zone is loaded once from a TZif file (RFC 8536) into one allocation;
 * converting a time only reads it. */

/* |t| beyond this (ms) has no local time; it keeps every calendar
 * computation far inside int64 (it is the range of a JavaScript Date). */
#define TS_MS_MAX 8.64e15

/* A TZif file is a few KiB; anything much larger is not one. */
#define TZ_FILE_MAX (256u * 1024)

/* UTC offsets a TZif file may hold (RFC 8536 bounds on a time type). */
#define TZ_OFF_MIN (-89999)
#define TZ_OFF_MAX 93599

/* A POSIX TZ rule date: Jn (1..365, February 29 never counted), n (0..365,
 * zero-based) or Mm.w.d (weekday d, 0 = Sunday, of week w of month m; week 5
 * is the last), with the local time of the change. */
typedef struct tz_rule {
    char kind; /* 'J', 'D' or 'M' */
    int m, w, d, day;
    int32_t time; /* seconds after local midnight; may be < 0 or > 24h */
} tz_rule;

struct tl_tz {
    uint32_t ntrans;
    int32_t off0;             /* UTC offset before the first transition */
    int footer;               /* a POSIX rule governs after the table */
    int dst;                  /* the rule has daylight time */
    int32_t std_off, dst_off; /* seconds east of UTC */
    tz_rule start, end;       /* into and out of daylight time */
    /* ntrans transition times (s, ascending), then ntrans int32_t UTC
     * offsets in force from each transition on */
    int64_t data[];
};

static const int64_t *tz_at(const tl_tz *z) { return z->data; }
static const int32_t *tz_off(const tl_tz *z)
{
    return (const int32_t *)(z->data + z->ntrans);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if (a % b != 0 && (a < 0) != (b < 0)) q--;
    return q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

/* The year of day z (days from 1970-01-01). */
static int64_t year_of_day(int64_t z)
{
    int64_t y;
    int m, d;
    tl_civil_from_days(z, &y, &m, &d);
    return y;
}

/* The day (from 1970-01-01) on which rule date r falls in year y. */
static int64_t rule_day(const tz_rule *r, int64_t y)
{
    int64_t jan1 = tl_days_from_civil(y, 1, 1);
    switch (r->kind) {
    case 'J': /* Julian day 1..365, February 29 never counted */
        return jan1 + r->day - 1 + (tl_month_days(y, 2) == 29 && r->day >= 60);
    case 'D': return jan1 + r->day;
    default: {
        int64_t first = tl_days_from_civil(y, r->m, 1);
        int wd = (int)floor_mod(first + 4, 7); /* 1970-01-01 was a Thursday */
        int d = (r->d - wd + 7) % 7 + 7 * (r->w - 1);
        while (d >= tl_month_days(y, r->m)) d -= 7;
        return first + d;
    }
    }
}

/* The footer rule's offset at t.  Of the changes in the years around t's,
 * the latest at or before t decides; on a tie the later one in (year, start
 * before end) order wins, so that a zone in daylight time all year (start
 * Jan 1 00:00, end Dec 31 25:00) stays in it across the new year. */
static int32_t rule_offset(const tl_tz *z, int64_t t)
{
    if (!z->dst) return z->std_off;
    int64_t y = year_of_day(floor_div(t, 86400));
    int64_t best = INT64_MIN;
    int in_dst = 0;
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        /* The start is in local standard time, the end in daylight time. */
        int64_t s =
            rule_day(&z->start, yy) * 86400 + z->start.time - z->std_off;
        int64_t e = rule_day(&z->end, yy) * 86400 + z->end.time - z->dst_off;
        if (s <= t && s >= best) best = s, in_dst = 1;
        if (e <= t && e >= best) best = e, in_dst = 0;
    }
    return in_dst ? z->dst_off : z->std_off;
}

/* UTC offset (s) in force at t (s since the epoch). */
static int32_t tz_offset(const tl_tz *z, int64_t t)
{
    uint32_t n = z->ntrans;
    const int64_t *at = tz_at(z);
    /* RFC 8536: the footer governs after the last transition, and for all
     * time when there is none; time type 0 before the first. */
    if (n == 0 || t >= at[n - 1]) {
        if (z->footer) return rule_offset(z, t);
        return n == 0 ? z->off0 : tz_off(z)[n - 1];
    }
    if (t < at[0]) return z->off0;
    uint32_t lo = 0, hi = n - 1; /* at[lo] <= t < at[hi] */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (at[mid] <= t) lo = mid;
        else hi = mid;
    }
    return tz_off(z)[lo];
}

/* Local time of ms (epoch ms) in z as seconds from the local epoch;
 * 0 if ms is not a usable time. */
static int local_secs(const tl_tz *z, double ms, int64_t *out)
{
    if (!(ms >= -TS_MS_MAX && ms <= TS_MS_MAX)) return 0; /* also NaN */
    int64_t t = floor_div((int64_t)floor(ms), 1000);
    *out = t + tz_offset(z, t);
    return 1;
}

static int tz_digit(char c) { return c >= '0' && c <= '9'; }
static int tz_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* A zone abbreviation in a TZ string: 3 or more letters, or <...> of letters,
 * digits, + and -. */
static const char *tz_abbr(const char *s, const char *e)
{
    const char *b = s;
    if (s < e && *s == '<') {
        for (s++; s < e && *s != '>'; s++)
            if (!tz_alpha(*s) && !tz_digit(*s) && *s != '+' && *s != '-')
                return NULL;
        return s < e && s - b > 3 ? s + 1 : NULL;
    }
    while (s < e && tz_alpha(*s)) s++;
    return s - b >= 3 ? s : NULL;
}

static const char *tz_int(const char *s, const char *e, int lo, int hi,
                          int *out)
{
    int v = 0, nd = 0;
    while (s < e && tz_digit(*s) && nd < 4) v = v * 10 + (*s++ - '0'), nd++;
    if (nd == 0 || (s < e && tz_digit(*s)) || v < lo || v > hi) return NULL;
    *out = v;
    return s;
}

/* [+-]h[h[h]][:mm[:ss]], hours at most maxh. */
static const char *tz_hms(const char *s, const char *e, int maxh,
                          int32_t *out)
{
    int sign = 1, h, m = 0, sec = 0;
    if (s < e && (*s == '+' || *s == '-')) sign = *s++ == '-' ? -1 : 1;
    if (!(s = tz_int(s, e, 0, maxh, &h))) return NULL;
    if (s < e && *s == ':') {
        if (!(s = tz_int(s + 1, e, 0, 59, &m))) return NULL;
        if (s < e && *s == ':' && !(s = tz_int(s + 1, e, 0, 59, &sec)))
            return NULL;
    }
    *out = sign * (h * 3600 + m * 60 + sec);
    return s;
}

static const char *tz_date(const char *s, const char *e, tz_rule *r)
{
    if (s < e && *s == 'J') {
        r->kind = 'J';
        s = tz_int(s + 1, e, 1, 365, &r->day);
    } else if (s < e && *s == 'M') {
        r->kind = 'M';
        if ((s = tz_int(s + 1, e, 1, 12, &r->m)) && s < e && *s == '.' &&
            (s = tz_int(s + 1, e, 1, 5, &r->w)) && s < e && *s == '.')
            s = tz_int(s + 1, e, 0, 6, &r->d);
        else
            s = NULL;
    } else {
        r->kind = 'D';
        s = tz_int(s, e, 0, 365, &r->day);
    }
    r->time = 2 * 3600; /* POSIX default */
    /* Hours up to 167, possibly negative: the TZif v3 extension. */
    if (s && s < e && *s == '/') s = tz_hms(s + 1, e, 167, &r->time);
    return s;
}

/* The TZif footer: std offset [dst [offset] [,start[/time],end[/time]]]. */
static int tz_footer(tl_tz *z, const char *s, const char *e)
{
    int32_t std, dst;
    if (s == e) return 0; /* empty: no rule */
    if (!(s = tz_abbr(s, e)) || !(s = tz_hms(s, e, 167, &std))) return -1;
    z->footer = 1;
    z->std_off = -std; /* POSIX offsets count west of Greenwich */
    if (s == e) return 0;
    if (!(s = tz_abbr(s, e))) return -1;
    z->dst = 1;
    dst = std - 3600;
    if (s < e && *s != ',' && !(s = tz_hms(s, e, 167, &dst))) return -1;
    z->dst_off = -dst;
    if (s == e) {
        /* POSIX leaves a missing rule to the implementation; this is
         * glibc's (US rules), though tzdata always writes one. */
        z->start = (tz_rule){.kind = 'M', .m = 3, .w = 2, .d = 0, .time = 7200};
        z->end = (tz_rule){.kind = 'M', .m = 11, .w = 1, .d = 0, .time = 7200};
        return 0;
    }
    if (*s != ',' || !(s = tz_date(s + 1, e, &z->start)) || s == e ||
        *s != ',' || !(s = tz_date(s + 1, e, &z->end)) || s != e)
        return -1;
    return 0;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
           b[3];
}

static int64_t sbe32(const unsigned char *b)
{
    uint32_t u = be32(b);
    return u < 0x80000000u ? (int64_t)u : (int64_t)u - 4294967296;
}

static int64_t sbe64(const unsigned char *b)
{
    uint64_t u = (uint64_t)be32(b) << 32 | be32(b + 4);
    return u < UINT64_C(0x8000000000000000)
               ? (int64_t)u
               : -(int64_t)(~u) - 1; /* two's complement without overflow */
}

/* Parses a whole TZif file.  0 with *out, or -2 with why. */
static int tz_parse(const unsigned char *b, size_t n, tl_tz **out, char *why,
                    size_t whysz)
{
    /* header counts: isutcnt isstdcnt leapcnt timecnt typecnt charcnt */
    uint32_t c[6];
    size_t pos = 0;
    int tsize = 4;
    tl_tz *z = NULL;
    const char *what = "not a valid TZif file";
    if (n < 44) goto bad;
    for (int i = 0; i < 6; i++) c[i] = be32(b + 20 + 4 * i);
    if (b[4] >= '2') {
        /* Skip the 32-bit (version 1) data to the 64-bit header and data. */
        uint64_t v1 = (uint64_t)c[3] * 5 + (uint64_t)c[4] * 6 + c[5] +
                      (uint64_t)c[2] * 8 + c[1] + c[0];
        if (v1 > n || 88 + v1 > n) goto bad;
        pos = 44 + (size_t)v1;
        if (memcmp(b + pos, "TZif", 4) != 0) goto bad;
        for (int i = 0; i < 6; i++) c[i] = be32(b + pos + 20 + 4 * i);
        tsize = 8;
    }
    pos += 44;
    uint32_t isut = c[0], isstd = c[1], nleap = c[2], ntrans = c[3],
             ntypes = c[4], nchars = c[5];
    if (ntypes == 0 || ntypes > 256 || (isstd && isstd != ntypes) ||
        (isut && isut != ntypes))
        goto bad;
    if (nleap) {
        what = "zones with leap seconds are not supported";
        goto bad;
    }
    uint64_t need = (uint64_t)ntrans * (unsigned)(tsize + 1) +
                    (uint64_t)ntypes * 6 + nchars + isstd + isut;
    if (need > n - pos) goto bad;
    const unsigned char *tt = b + pos, *ti = tt + (size_t)ntrans * tsize,
                        *ty = ti + ntrans;
    int32_t uto[256];
    for (uint32_t k = 0; k < ntypes; k++) {
        int64_t v = sbe32(ty + 6 * k);
        if (v < TZ_OFF_MIN || v > TZ_OFF_MAX || ty[6 * k + 4] > 1) goto bad;
        uto[k] = (int32_t)v;
    }
    z = tl_xcalloc(1, sizeof *z + (size_t)ntrans * (sizeof(int64_t) +
                                                    sizeof(int32_t)));
    z->ntrans = ntrans;
    z->off0 = uto[0];
    int64_t *at = z->data;
    int32_t *off = (int32_t *)(z->data + ntrans);
    for (uint32_t k = 0; k < ntrans; k++) {
        at[k] = tsize == 8 ? sbe64(tt + 8 * (size_t)k)
                           : sbe32(tt + 4 * (size_t)k);
        if ((k && at[k] <= at[k - 1]) || ti[k] >= ntypes) goto bad;
        off[k] = uto[ti[k]];
    }
    pos += (size_t)need;
    if (tsize == 8) {
        /* "\n" POSIX-TZ-string "\n" */
        const unsigned char *nl;
        if (pos >= n || b[pos] != '\n' ||
            !(nl = memchr(b + pos + 1, '\n', n - pos - 1)))
            goto bad;
        if (tz_footer(z, (const char *)b + pos + 1, (const char *)nl) != 0) {
            what = "its POSIX TZ rule cannot be read";
            goto bad;
        }
    }
    *out = z;
    return 0;
bad:
    free(z);
    snprintf(why, whysz, "%s", what);
    return -2;
}

/* Names as in the tz database: components of letters, digits, '_', '+',
 * '-' and '.', not starting with '.', so no name leaves the directory. */
static int tz_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 255) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int start = i == 0 || s[i - 1] == '/';
        if (start && (c == '.' || c == '/')) return 0;
        if (!tz_alpha(c) && !tz_digit(c) && c != '_' && c != '+' && c != '-' &&
            c != '.' && c != '/')
            return 0;
    }
    return s[n - 1] != '/';
}

/*
 * Loads zone `name` (n bytes).  0 with *out (owned by the caller); -1 when
 * there is no such zone (a bad name, no file, or a file that is not TZif,
 * such as zone.tab); -2 with why when the zone's file cannot be used.
 */
static int tz_load(const char *name, size_t n, tl_tz **out, char *why,
                   size_t whysz)
{
    /* Built in, so that UTC works without tzdata. */
    if (n == 3 && memcmp(name, "UTC", 3) == 0) {
        *out = tl_xcalloc(1, sizeof **out);
        return 0;
    }
    if (!tz_name_ok(name, n)) return -1;
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir) dir = "/usr/share/zoneinfo";
    size_t plen = strlen(dir) + n + 2;
    char *path = tl_xmalloc(plen);
    snprintf(path, plen, "%s/%.*s", dir, (int)n, name);
    FILE *f = fopen(path, "rb");
    free(path);
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR) return -1;
        snprintf(why, whysz, "%s", strerror(errno));
        return -2;
    }
    struct stat st;
    int r = -1; /* a directory or an empty file: not a zone */
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 4) {
        fclose(f);
        return r;
    }
    if ((uintmax_t)st.st_size > TZ_FILE_MAX) {
        fclose(f);
        snprintf(why, whysz, "its file is over %u bytes", TZ_FILE_MAX);
        return -2;
    }
    size_t want = (size_t)st.st_size;
    unsigned char *buf = tl_xmalloc(want);
    size_t len = fread(buf, 1, want, f);
    fclose(f);
    if (len >= 4 && memcmp(buf, "TZif", 4) == 0)
        r = tz_parse(buf, len, out, why, whysz);
    free(buf);
    return r;
}

/* ---- public zone API ---------------------------------------------------- */

tl_tz *tl_tz_load(const char *name, size_t len, char *err, size_t errsz)
{
    char why[128] = "", sh[TL_SHOWSZ];
    tl_tz *z = NULL;
    int r = tz_load(name, len, &z, why, sizeof why);
    if (r == 0) return z;
    if (r == -1)
        tl_errf(err, errsz, TL_ERR_CONFIG, "unknown time zone '%s'",
                tl_fmt_show(name, len, sh));
    else
        tl_errf(err, errsz, TL_ERR_CONFIG, "cannot use time zone '%s': %s",
                tl_fmt_show(name, len, sh), why);
    return NULL;
}

int tl_tz_local_time(const tl_tz *z, double ms, int *minute_of_day,
                     int *iso_weekday)
{
    int64_t t;
    if (!local_secs(z, ms, &t)) return -1;
    *minute_of_day = (int)(floor_mod(t, 86400) / 60);
    if (iso_weekday) /* 1970-01-01 was a Thursday, ISO day 4 */
        *iso_weekday = (int)(floor_mod(floor_div(t, 86400) + 3, 7) + 1);
    return 0;
}

int tl_tz_local_minutes(const tl_tz *z, int64_t ms, int *minute_of_day)
{
    /* The same conversion as hour(); |ms| <= TS_MS_MAX < 2^53 is exact as a
     * double. */
    return tl_tz_local_time(z, (double)ms, minute_of_day, NULL);
}

void tl_tz_free(tl_tz *z) { free(z); }
