#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double tl_hist_bounds[TL_HIST_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

void tl_histogram_observe_us(tl_histogram *h, uint64_t us)
{
    double s = (double)us / 1e6;
    size_t i = 0;
    while (i < TL_HIST_BUCKETS && s > tl_hist_bounds[i]) i++;
    tl_counter_add(&h->bucket[i], 1);
    tl_counter_add(&h->sum_us, us);
}

int64_t tl_now_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- writing ------------------------------------------------------------- */

void tl_prom_family(tl_buf *b, const char *name, const char *type,
                    const char *help)
{
    tl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void labels_out(tl_buf *b, const char *const *labels, const char *le)
{
    if ((!labels || !labels[0]) && !le) return;
    tl_buf_append(b, "{", 1);
    int first = 1;
    for (size_t i = 0; labels && labels[i]; i += 2) {
        if (!first) tl_buf_append(b, ",", 1);
        first = 0;
        tl_buf_printf(b, "%s=\"", labels[i]);
        for (const char *v = labels[i + 1]; *v; v++) {
            if (*v == '\\') tl_buf_append(b, "\\\\", 2);
            else if (*v == '"') tl_buf_append(b, "\\\"", 2);
            else if (*v == '\n') tl_buf_append(b, "\\n", 2);
            else tl_buf_append(b, v, 1);
        }
        tl_buf_append(b, "\"", 1);
    }
    if (le) tl_buf_printf(b, "%sle=\"%s\"", first ? "" : ",", le);
    tl_buf_append(b, "}", 1);
}

void tl_prom_sample(tl_buf *b, const char *name, const char *const *labels,
                    double value)
{
    tl_buf_append(b, name, strlen(name));
    labels_out(b, labels, NULL);
    if (isnan(value)) tl_buf_printf(b, " NaN\n");
    else if (isinf(value)) tl_buf_printf(b, " %sInf\n", value > 0 ? "+" : "-");
    else tl_buf_printf(b, " %.17g\n", value);
}

void tl_prom_sample_u64(tl_buf *b, const char *name,
                        const char *const *labels, uint64_t value)
{
    tl_buf_append(b, name, strlen(name));
    labels_out(b, labels, NULL);
    tl_buf_printf(b, " %llu\n", (unsigned long long)value);
}

void tl_prom_one(tl_buf *b, const char *name, const char *type,
                 const char *help, double value)
{
    tl_prom_family(b, name, type, help);
    tl_prom_sample(b, name, NULL, value);
}

void tl_prom_one_u64(tl_buf *b, const char *name, const char *type,
                     const char *help, uint64_t value)
{
    tl_prom_family(b, name, type, help);
    tl_prom_sample_u64(b, name, NULL, value);
}

void tl_prom_histogram(tl_buf *b, const char *name, const char *const *labels,
                       const tl_histogram *h)
{
    uint64_t cum = 0;
    for (size_t i = 0; i <= TL_HIST_BUCKETS; i++) {
        cum += tl_counter_get(&h->bucket[i]);
        char le[32];
        if (i < TL_HIST_BUCKETS) snprintf(le, sizeof le, "%g", tl_hist_bounds[i]);
        else snprintf(le, sizeof le, "+Inf");
        tl_buf_printf(b, "%s_bucket", name);
        labels_out(b, labels, le);
        tl_buf_printf(b, " %llu\n", (unsigned long long)cum);
    }
    tl_buf_printf(b, "%s_sum", name);
    labels_out(b, labels, NULL);
    tl_buf_printf(b, " %.6f\n", (double)tl_counter_get(&h->sum_us) / 1e6);
    tl_buf_printf(b, "%s_count", name);
    labels_out(b, labels, NULL);
    tl_buf_printf(b, " %llu\n", (unsigned long long)cum);
}

/* ---- parsing ------------------------------------------------------------- */

#define MAX_LABELS 32

typedef struct family {
    char *name, *type;
} family;

typedef struct parser {
    family *fam;
    size_t nfam;
    size_t line;
    char *err;
    size_t errsz;
} parser;

static int perr(parser *P, const char *fmt, ...) TL_PRINTF(2, 3);
static int perr(parser *P, const char *fmt, ...)
{
    char msg[TL_ERRSZ];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tl_errf(P->err, P->errsz, TL_ERR_DECODE, "line %zu: %s", P->line,
                   msg);
}

static int name_start(char c, int colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (colon && c == ':');
}
static int name_char(char c, int colon)
{
    return name_start(c, colon) || (c >= '0' && c <= '9');
}

/* Length of the metric (colon = 1) or label name at s, 0 if none. */
static size_t scan_name(const char *s, const char *end, int colon)
{
    if (s >= end || !name_start(*s, colon)) return 0;
    size_t n = 1;
    while (s + n < end && name_char(s[n], colon)) n++;
    return n;
}

static family *find_family(parser *P, const char *name, size_t n)
{
    for (size_t i = 0; i < P->nfam; i++)
        if (strlen(P->fam[i].name) == n && !memcmp(P->fam[i].name, name, n))
            return &P->fam[i];
    return NULL;
}

static int ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n > k && !memcmp(s + n - k, suf, k);
}

/* The family a sample named s[0..n) belongs to, by its TYPE. */
static family *sample_family(parser *P, const char *s, size_t n, int *is_bucket)
{
    *is_bucket = 0;
    family *f = find_family(P, s, n);
    if (f) {
        if (!strcmp(f->type, "histogram")) return NULL; /* needs a suffix */
        return f;
    }
    static const char *const sufs[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < 3; i++) {
        if (!ends_with(s, n, sufs[i])) continue;
        f = find_family(P, s, n - strlen(sufs[i]));
        if (f && (!strcmp(f->type, "histogram") ||
                  (i > 0 && !strcmp(f->type, "summary")))) {
            *is_bucket = i == 0;
            return f;
        }
    }
    return NULL;
}

/* Go's ParseFloat forms that the format allows, strictly. */
static int parse_value(const char *s, size_t n, double *v)
{
    if (n == 4 && !memcmp(s, "+Inf", 4)) return *v = INFINITY, 0;
    if (n == 4 && !memcmp(s, "-Inf", 4)) return *v = -INFINITY, 0;
    if (n == 3 && !memcmp(s, "NaN", 3)) return *v = NAN, 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789+-.eE", s[i])) return -1;
    return tl_parse_double(s, n, v);
}

static int parse_comment(parser *P, const char *s, const char *end)
{
    /* "#" then anything; only HELP and TYPE have a grammar. */
    const char *p = s + 1;
    if (p >= end || *p != ' ') return TL_OK;
    p++;
    int help = end - p >= 5 && !memcmp(p, "HELP ", 5);
    int type = end - p >= 5 && !memcmp(p, "TYPE ", 5);
    if (!help && !type) return TL_OK;
    p += 5;
    size_t n = scan_name(p, end, 1);
    if (!n) return perr(P, "# %s without a valid metric name", help ? "HELP" : "TYPE");
    const char *name = p;
    p += n;
    if (help) {
        if (p < end && *p != ' ') return perr(P, "bad metric name in # HELP");
        for (const char *q = p; q < end; q++)
            if (*q == '\\' && (q + 1 >= end || (q[1] != '\\' && q[1] != 'n')))
                return perr(P, "bad escape in # HELP text");
            else if (*q == '\\') q++;
        return TL_OK;
    }
    if (p >= end || *p != ' ') return perr(P, "# TYPE needs a type");
    p++;
    static const char *const types[] = {"counter", "gauge", "histogram",
                                        "summary", "untyped"};
    size_t tn = (size_t)(end - p), k;
    for (k = 0; k < 5; k++)
        if (strlen(types[k]) == tn && !memcmp(p, types[k], tn)) break;
    if (k == 5) return perr(P, "unknown metric type '%.*s'", (int)tn, p);
    if (find_family(P, name, n))
        return perr(P, "second # TYPE for %.*s", (int)n, name);
    P->fam = tl_xrealloc(P->fam, (P->nfam + 1) * sizeof *P->fam);
    P->fam[P->nfam].name = tl_xstrndup(name, n);
    P->fam[P->nfam].type = tl_xstrdup(types[k]);
    P->nfam++;
    return TL_OK;
}

static int parse_sample(parser *P, const char *s, const char *end,
                        tl_prom_sample_cb cb, void *ud)
{
    const char *p = s;
    size_t n = scan_name(p, end, 1);
    if (!n) return perr(P, "expected a metric name");
    char name[256];
    if (n >= sizeof name) return perr(P, "metric name too long");
    memcpy(name, p, n);
    name[n] = '\0';
    p += n;
    int is_bucket;
    if (!sample_family(P, name, n, &is_bucket))
        return perr(P, "sample %s without a # TYPE line for its family", name);
    /* Label values unescaped into one scratch string. */
    char scratch[4096];
    size_t used = 0, nl = 0;
    const char *labels[2 * MAX_LABELS];
    int have_le = 0;
    if (p < end && *p == '{') {
        p++;
        while (p < end && *p != '}') {
            size_t ln = scan_name(p, end, 0);
            if (!ln) return perr(P, "expected a label name");
            if (nl == MAX_LABELS) return perr(P, "too many labels");
            if (used + ln + 1 > sizeof scratch) return perr(P, "labels too long");
            char *lname = scratch + used;
            memcpy(lname, p, ln);
            lname[ln] = '\0';
            used += ln + 1;
            p += ln;
            for (size_t i = 0; i < nl; i++)
                if (!strcmp(labels[2 * i], lname))
                    return perr(P, "label %s twice", lname);
            if (p + 1 >= end || p[0] != '=' || p[1] != '"')
                return perr(P, "expected =\" after label %s", lname);
            p += 2;
            char *val = scratch + used;
            for (;;) {
                if (p >= end) return perr(P, "unterminated label value");
                char c = *p++;
                if (c == '"') break;
                if (c == '\\') {
                    if (p >= end) return perr(P, "unterminated label value");
                    c = *p++;
                    if (c == 'n') c = '\n';
                    else if (c != '\\' && c != '"')
                        return perr(P, "bad escape \\%c in label value", c);
                }
                if (used + 2 > sizeof scratch) return perr(P, "labels too long");
                scratch[used++] = c;
            }
            scratch[used++] = '\0';
            labels[2 * nl] = lname;
            labels[2 * nl + 1] = val;
            nl++;
            if (!strcmp(lname, "le")) have_le = 1;
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            if (p >= end || *p != '}') return perr(P, "expected , or } after a label");
        }
        if (p >= end) return perr(P, "unterminated label set");
        p++;
    }
    if (is_bucket && !have_le) return perr(P, "%s without an le label", name);
    if (p >= end || *p != ' ') return perr(P, "expected a space before the value");
    p++;
    const char *v = p;
    while (p < end && *p != ' ') p++;
    double value;
    if (p == v || parse_value(v, (size_t)(p - v), &value))
        return perr(P, "bad value '%.*s'", (int)(p - v), v);
    if (p < end) {
        /* Optional timestamp: an integer of milliseconds. */
        p++;
        int64_t ts;
        if (p >= end || tl_parse_i64(p, (size_t)(end - p), &ts))
            return perr(P, "bad timestamp '%.*s'", (int)(end - p), p);
    }
    cb(ud, name, labels, nl, value);
    return TL_OK;
}

int tl_prom_parse(const char *text, size_t len, tl_prom_sample_cb cb, void *ud,
                  char *err, size_t errsz)
{
    parser P = {.err = err, .errsz = errsz};
    int rc = TL_OK;
    if (len && text[len - 1] != '\n') {
        P.line = 1;
        for (size_t i = 0; i < len; i++) P.line += text[i] == '\n';
        return perr(&P, "the text does not end with a newline");
    }
    const char *p = text, *end = text + len;
    while (rc == TL_OK && p < end) {
        P.line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (memchr(p, '\0', (size_t)(nl - p))) rc = perr(&P, "NUL byte");
        else if (nl == p) rc = TL_OK;
        else if (*p == '#') rc = parse_comment(&P, p, nl);
        else rc = parse_sample(&P, p, nl, cb, ud);
        p = nl + 1;
    }
    for (size_t i = 0; i < P.nfam; i++) {
        free(P.fam[i].name);
        free(P.fam[i].type);
    }
    free(P.fam);
    return rc;
}
