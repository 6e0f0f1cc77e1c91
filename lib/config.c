#include "config.h"
#include "redis_url.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <yaml.h>

#include "common.h"
#include "schemas.h"

/*
 * The loader parses the whole file into a libyaml document (node tree with
 * marks), then walks it section by section.  Every node keeps the start mark
 * libyaml gave it, so every message can name FILE:LINE:COL.  Expressions and
 * templates report a byte offset inside the *decoded* scalar; to turn that
 * into a file position the scalar is decoded a second time from the raw text
 * (srcmap below), recording where each decoded byte came from.
 */

#define NAME_MAX_LEN 64
#define MAX_LENGTH_LIMIT 4096
#define MAX_KEYS 16
#define TIMEOUT_MAX INT64_C(3600000) /* 1h */
#define K_MAX 100               /* top_k: k */
#define CAPACITY_MAX 10000      /* top_k: capacity */
#define N_MAX 100               /* last_n: n */
#define EXACT_UP_TO_MAX 100000  /* distinct: exact_up_to */
#define PRECISION_MIN 4         /* distinct: precision */
#define PRECISION_MAX 16
#define CAP_MAX 1000            /* cap: max */
#define PRIORITY_MAX 1000       /* priority: -1000 to 1000 */

/* tl_expr keeps no source text, so the summary needs its own copy. */
typedef struct feat_text {
    char *where, *field;
} feat_text;
typedef struct rule_text {
    char *when, *cond, *message;
    char *tz;      /* quiet_hours.tz when it is an expression */
    char **attrs;  /* emit.attrs templates, parallel to tl_rule.attrs */
    size_t nattrs;
} rule_text;
struct tl_config_text {
    feat_text *features; /* parallel to tl_config.features */
    rule_text *rules;    /* parallel to tl_config.rules */
};

typedef struct loader {
    const char *name;   /* file name for messages */
    const char *src;    /* raw text, for positions inside scalars */
    size_t srclen;
    size_t *lines;      /* raw offset of the start of each line of src */
    size_t nlines;
    const char *dir;    /* prefix for relative paths: "" or "dir/" */
    yaml_document_t doc;
    tl_config *c;
    yaml_node_t **fname; /* name nodes of features, for duplicates */
    yaml_node_t **fnode; /* mappings of features, for tl_feature_finish errors */
    yaml_node_t **fof;   /* `of` values of features, or NULL */
    yaml_node_t **rname; /* name nodes of triggers */
    yaml_node_t *triggers; /* the triggers list, for tl_ruleset_init errors */
    char *err;
    size_t errsz;
} loader;

/* ---- errors ------------------------------------------------------------- */

static int fail_at(loader *L, size_t line, size_t col, const char *fmt, ...)
    TL_PRINTF(4, 5);
static int fail_at(loader *L, size_t line, size_t col, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One line whatever the file holds: control characters that reach a
     * message (a line break in a quoted key or topic name) show as '?'. */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return tl_errf(L->err, L->errsz, TL_ERR_CONFIG, "%s:%zu:%zu: %s", L->name,
                   line, col, msg);
}

#define fail_mark(L, m, ...)                                                   \
    fail_at(L, (m).line + 1, (m).column + 1, __VA_ARGS__)
#define fail_node(L, n, ...) fail_mark(L, (n)->start_mark, __VA_ARGS__)

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static size_t scalar_len(const yaml_node_t *n) { return n->data.scalar.length; }

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *seq_item(loader *L, const yaml_node_t *n, size_t i)
{
    return yaml_document_get_node(&L->doc, n->data.sequence.items.start[i]);
}

/* A plain scalar that YAML reads as null: nothing at all, ~ or null. */
static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE ||
        n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = scalar(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") ||
           !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* What the user wrote, for "got ..." in messages: the value quoted (short
 * and printable), or the kind of node. */
static const char *describe(const yaml_node_t *n, char *buf, size_t size)
{
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    if (is_null(n)) return *scalar(n) ? "null" : "nothing";
    size_t len = scalar_len(n), max = 60, o = 0;
    if (size < max + 8) max = size > 8 ? size - 8 : 0;
    buf[o++] = '\'';
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char ch = (unsigned char)scalar(n)[i];
        buf[o++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    if (len > max) buf[o++] = '.', buf[o++] = '.', buf[o++] = '.';
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

/* ---- positions inside scalars ------------------------------------------ */

/* Bytes of the line break at p (libyaml's set: LF, CR, CRLF, NEL, LS, PS). */
static size_t brk(const char *s, size_t n, size_t p)
{
    if (p >= n) return 0;
    unsigned char c = (unsigned char)s[p];
    if (c == '\n') return 1;
    if (c == '\r') return p + 1 < n && s[p + 1] == '\n' ? 2 : 1;
    if (c == 0xC2 && p + 1 < n && (unsigned char)s[p + 1] == 0x85) return 2;
    if (c == 0xE2 && p + 2 < n && (unsigned char)s[p + 1] == 0x80 &&
        ((unsigned char)s[p + 2] == 0xA8 || (unsigned char)s[p + 2] == 0xA9))
        return 3;
    return 0;
}

static int blank_at(const char *s, size_t n, size_t p)
{
    return p < n && (s[p] == ' ' || s[p] == '\t');
}

static size_t u8len(const char *s, size_t n, size_t p)
{
    unsigned char c = (unsigned char)s[p];
    size_t w = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return p + w <= n ? w : n - p;
}

static size_t bom_len(const char *s, size_t n)
{
    return n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3) ? 3 : 0;
}

/* The start of every line of the raw text (libyaml's line breaks), so that
 * a mark's offset costs its column, not the whole text before it. */
static void index_lines(loader *L)
{
    const char *s = L->src;
    size_t n = L->srclen, p = bom_len(s, n), cap = 64;
    L->lines = tl_xmalloc(cap * sizeof *L->lines);
    L->lines[0] = p;
    L->nlines = 1;
    while (p < n) {
        size_t b = brk(s, n, p);
        if (!b) {
            p += u8len(s, n, p);
            continue;
        }
        p += b;
        if (L->nlines == cap)
            L->lines = tl_xrealloc(L->lines, (cap *= 2) * sizeof *L->lines);
        L->lines[L->nlines++] = p;
    }
}

/* Raw byte offset of a libyaml mark (line/column count characters). */
static int mark_offset(const loader *L, yaml_mark_t m, size_t *out)
{
    const char *s = L->src;
    size_t n = L->srclen, col = 0;
    if (!L->lines || m.line >= L->nlines) return -1;
    size_t p = L->lines[m.line];
    while (col < m.column) {
        if (p >= n || brk(s, n, p)) return -1;
        p += u8len(s, n, p);
        col++;
    }
    *out = p;
    return 0;
}

/* 1-based line and column of raw byte offset `off`. */
static void offset_pos(const loader *L, size_t off, size_t *line, size_t *col)
{
    const char *s = L->src;
    size_t n = L->srclen, p = bom_len(s, n);
    *line = 1;
    *col = 1;
    while (p < off && p < n) {
        size_t b = brk(s, n, p);
        if (b) {
            (*line)++;
            *col = 1;
            p += b;
        } else {
            (*col)++;
            p += u8len(s, n, p);
        }
    }
}

/* The decoded scalar, rebuilt from the raw text, with the raw range each
 * decoded byte came from. */
typedef struct srcmap {
    const char *s;
    size_t n, p;       /* raw text and the read position */
    size_t want;       /* decoding stops once this many bytes are out */
    char *out;
    size_t *at, *atend;
    size_t len, cap;
    int bad;           /* the raw text is not what the scalar says */
} srcmap;

static void emit(srcmap *m, const char *bytes, size_t nb, size_t from,
                 size_t to)
{
    if (m->len + nb > m->cap) {
        m->cap = (m->len + nb) * 2 + 16;
        m->out = tl_xrealloc(m->out, m->cap);
        m->at = tl_xrealloc(m->at, m->cap * sizeof *m->at);
        m->atend = tl_xrealloc(m->atend, m->cap * sizeof *m->atend);
    }
    for (size_t i = 0; i < nb; i++) {
        m->out[m->len] = bytes[i];
        m->at[m->len] = from;
        m->atend[m->len] = to;
        m->len++;
    }
}

static void emit_char(srcmap *m)
{
    size_t w = u8len(m->s, m->n, m->p);
    emit(m, m->s + m->p, w, m->p, m->p + w);
    m->p += w;
}

/* A line break as a scalar holds it: LS and PS stay, the others are LF. */
static void emit_break(srcmap *m, size_t at)
{
    size_t b = brk(m->s, m->n, at);
    if (b == 3) emit(m, m->s + at, 3, at, at + 3);
    else emit(m, "\n", 1, at, at + b);
}

/* Folds a run of blanks and line breaks at m->p as YAML plain and quoted
 * scalars do: blanks alone stay; one break becomes a space; n breaks become
 * n-1 newlines; indentation is dropped.  `escaped`: the run follows a
 * backslash-escaped line break (double quotes), which adds nothing itself. */
static void fold(srcmap *m, int escaped)
{
    const char *s = m->s;
    size_t n = m->n, lead = 0, q = m->p, ntrail = 0;
    int lead_lf = 0;
    if (!escaped) {
        while (blank_at(s, n, q)) q++;
        size_t b = brk(s, n, q);
        if (!b) {
            for (size_t i = m->p; i < q; i++) emit(m, s + i, 1, i, i + 1);
            m->p = q;
            return;
        }
        lead = q;
        lead_lf = b != 3;
        if (!lead_lf) emit_break(m, lead);
        q += b;
    }
    for (;;) {
        while (blank_at(s, n, q)) q++;
        size_t b = brk(s, n, q);
        if (!b) break;
        emit_break(m, q);
        ntrail++;
        q += b;
    }
    if (!escaped && lead_lf && !ntrail) emit(m, " ", 1, lead, lead + 1);
    m->p = q;
}

/* One backslash escape of a double-quoted scalar at m->p. */
static void escape(srcmap *m)
{
    const char *s = m->s;
    size_t n = m->n, p = m->p;
    if (p + 1 >= n) {
        m->bad = 1;
        return;
    }
    char b[4];
    size_t nb = 1, hex = 0;
    switch (s[p + 1]) {
    case '0': b[0] = '\0'; break;
    case 'a': b[0] = '\a'; break;
    case 'b': b[0] = '\b'; break;
    case 't': case '\t': b[0] = '\t'; break;
    case 'n': b[0] = '\n'; break;
    case 'v': b[0] = '\v'; break;
    case 'f': b[0] = '\f'; break;
    case 'r': b[0] = '\r'; break;
    case 'e': b[0] = '\x1b'; break;
    case ' ': case '"': case '/': case '\\': case '\'': b[0] = s[p + 1]; break;
    case 'N': memcpy(b, "\xC2\x85", nb = 2); break;
    case '_': memcpy(b, "\xC2\xA0", nb = 2); break;
    case 'L': memcpy(b, "\xE2\x80\xA8", nb = 3); break;
    case 'P': memcpy(b, "\xE2\x80\xA9", nb = 3); break;
    case 'x': hex = 2; break;
    case 'u': hex = 4; break;
    case 'U': hex = 8; break;
    default: m->bad = 1; return;
    }
    if (hex) {
        unsigned long cp = 0;
        for (size_t i = 0; i < hex; i++) {
            int v = p + 2 + i < n ? tl_hexval(s[p + 2 + i]) : -1;
            if (v < 0) {
                m->bad = 1;
                return;
            }
            cp = cp * 16 + (unsigned long)v;
        }
        nb = tl_utf8_put(b, cp);
    }
    emit(m, b, nb, p, p + 2 + hex);
    m->p = p + 2 + hex;
}

static void decode_plain(srcmap *m)
{
    while (m->len < m->want && m->p < m->n && !m->bad) {
        if (blank_at(m->s, m->n, m->p) || brk(m->s, m->n, m->p)) fold(m, 0);
        else emit_char(m);
    }
}

static void decode_quoted(srcmap *m, int dbl)
{
    const char *s = m->s;
    m->p++; /* opening quote */
    while (m->len < m->want && m->p < m->n && !m->bad) {
        char ch = s[m->p];
        if (!dbl && ch == '\'') {
            if (m->p + 1 < m->n && s[m->p + 1] == '\'') {
                emit(m, "'", 1, m->p, m->p + 2);
                m->p += 2;
            } else break;
        } else if (dbl && ch == '"') {
            break;
        } else if (dbl && ch == '\\' && brk(s, m->n, m->p + 1)) {
            m->p += 1 + brk(s, m->n, m->p + 1);
            fold(m, 1);
        } else if (dbl && ch == '\\') {
            escape(m);
        } else if (blank_at(s, m->n, m->p) || brk(s, m->n, m->p)) {
            fold(m, 0);
        } else {
            emit_char(m);
        }
    }
}

/* Skips the indentation of the lines at *p, collecting empty lines' breaks
 * in trail; returns the column reached on the first line with content
 * (below `indent` when the scalar has ended). */
static size_t block_breaks(const char *s, size_t n, size_t *p, size_t indent,
                           size_t **trail, size_t *ntrail, size_t *cap)
{
    for (;;) {
        size_t col = 0;
        while (col < indent && *p < n && s[*p] == ' ') (*p)++, col++;
        size_t b = brk(s, n, *p);
        if (!b) return col;
        if (*ntrail == *cap) {
            *cap = *cap * 2 + 8;
            *trail = tl_xrealloc(*trail, *cap * sizeof **trail);
        }
        (*trail)[(*ntrail)++] = *p;
        *p += b;
    }
}

/* Literal (|) and folded (>) block scalars with an auto-detected
 * indentation.  An explicit indentation indicator is relative to the parent
 * node's indentation, which the raw text alone does not tell: give up. */
static void decode_block(srcmap *m, int folded)
{
    const char *s = m->s;
    size_t n = m->n, p = m->p + 1;
    while (p < n && (s[p] == '+' || s[p] == '-' ||
                     (s[p] >= '0' && s[p] <= '9'))) {
        if (s[p] >= '0' && s[p] <= '9') {
            m->bad = 1;
            return;
        }
        p++;
    }
    while (blank_at(s, n, p)) p++;
    if (p < n && s[p] == '#')
        while (p < n && !brk(s, n, p)) p++;
    p += brk(s, n, p);

    /* Indentation: the deepest of the leading empty lines and the first
     * content line, at least 1. */
    size_t indent = 1;
    for (size_t q = p;;) {
        size_t k = 0;
        while (q + k < n && s[q + k] == ' ') k++;
        if (k > indent) indent = k;
        size_t b = brk(s, n, q + k);
        if (!b) break;
        q += k + b;
    }

    size_t *trail = NULL, ntrail = 0, cap = 0, lead = 0;
    int has_lead = 0, leading_blank = 0;
    size_t col = block_breaks(s, n, &p, indent, &trail, &ntrail, &cap);
    while (col == indent && p < n && m->len < m->want) {
        int tb = blank_at(s, n, p);
        if (folded && has_lead && brk(s, n, lead) != 3 && !leading_blank &&
            !tb) {
            if (!ntrail) emit(m, " ", 1, lead, lead + 1);
        } else if (has_lead) {
            emit_break(m, lead);
        }
        for (size_t i = 0; i < ntrail; i++) emit_break(m, trail[i]);
        ntrail = 0;
        has_lead = 0;
        leading_blank = tb;
        m->p = p;
        while (m->p < n && !brk(s, n, m->p)) emit_char(m);
        p = m->p;
        if (brk(s, n, p)) {
            lead = p;
            has_lead = 1;
            p += brk(s, n, p);
        }
        col = block_breaks(s, n, &p, indent, &trail, &ntrail, &cap);
    }
    /* Clip and keep chomping add the final breaks; comparing only the
     * scalar's length makes strip work too. */
    if (has_lead) emit_break(m, lead);
    for (size_t i = 0; i < ntrail; i++) emit_break(m, trail[i]);
    free(trail);
    m->p = p;
}

/*
 * File position of byte `off` of scalar node n's value.  If the raw text
 * does not decode to the scalar's value (an unusual encoding, an explicit
 * indentation indicator), the scalar's own start is the best answer left.
 */
static void scalar_pos(const loader *L, const yaml_node_t *n, size_t off,
                       size_t *line, size_t *col)
{
    *line = n->start_mark.line + 1;
    *col = n->start_mark.column + 1;
    size_t p;
    if (!L->src || mark_offset(L, n->start_mark, &p) != 0) return;
    srcmap m = {.s = L->src, .n = L->srclen, .want = scalar_len(n)};
    /* The node's start mark is that of its anchor or tag, if any. */
    while (p < m.n && (m.s[p] == '&' || m.s[p] == '!')) {
        while (p < m.n && !blank_at(m.s, m.n, p) && !brk(m.s, m.n, p)) p++;
        while (blank_at(m.s, m.n, p) || brk(m.s, m.n, p))
            p += brk(m.s, m.n, p) ? brk(m.s, m.n, p) : 1;
    }
    m.p = p;
    size_t content = p;
    char want = 0;
    switch (n->data.scalar.style) {
    case YAML_SINGLE_QUOTED_SCALAR_STYLE: want = '\''; break;
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE: want = '"'; break;
    case YAML_LITERAL_SCALAR_STYLE: want = '|'; break;
    case YAML_FOLDED_SCALAR_STYLE: want = '>'; break;
    default: break;
    }
    if (want && (p >= m.n || m.s[p] != want)) return;
    switch (n->data.scalar.style) {
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
        decode_quoted(&m, want == '"');
        content++;
        break;
    case YAML_LITERAL_SCALAR_STYLE:
    case YAML_FOLDED_SCALAR_STYLE:
        decode_block(&m, want == '>');
        break;
    default:
        decode_plain(&m);
        break;
    }
    if (!m.bad && m.len >= m.want &&
        (m.want == 0 || !memcmp(m.out, scalar(n), m.want))) {
        size_t raw = off < m.want ? m.at[off]
                     : m.want   ? m.atend[m.want - 1]
                                : content;
        offset_pos(L, raw, line, col);
    }
    free(m.out);
    free(m.at);
    free(m.atend);
}

/* ---- typed values -------------------------------------------------------- */

static int get_str(loader *L, const yaml_node_t *n, const char *path,
                   int allow_empty, char **out)
{
    char got[96];
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail_node(L, n, "%s: expected a %sstring, got %s", path,
                         allow_empty ? "" : "non-empty ",
                         describe(n, got, sizeof got));
    if (memchr(scalar(n), '\0', scalar_len(n)))
        return fail_node(L, n, "%s: expected a string without NUL characters",
                         path);
    if (!allow_empty && !scalar_len(n))
        return fail_node(L, n, "%s: expected a non-empty string, got ''", path);
    free(*out);
    *out = tl_xstrndup(scalar(n), scalar_len(n));
    return TL_OK;
}

static int get_int(loader *L, const yaml_node_t *n, const char *path,
                   int64_t min, int64_t max, int64_t *out)
{
    char got[96], want[96];
    if (max == INT64_MAX)
        snprintf(want, sizeof want, "an integer >= %lld", (long long)min);
    else
        snprintf(want, sizeof want, "an integer from %lld to %lld",
                 (long long)min, (long long)max);
    int64_t v;
    int ok = n->type == YAML_SCALAR_NODE && scalar_len(n) > 0;
    if (ok) {
        const char *s = scalar(n);
        size_t i = s[0] == '-';
        if (i == scalar_len(n)) ok = 0;
        for (; ok && i < scalar_len(n); i++)
            if (s[i] < '0' || s[i] > '9') ok = 0;
    }
    if (!ok || tl_parse_i64(scalar(n), scalar_len(n), &v) != 0 || v < min ||
        v > max)
        return fail_node(L, n, "%s: expected %s, got %s", path, want,
                         describe(n, got, sizeof got));
    *out = v;
    return TL_OK;
}

/* 0 ok, -1 syntax, -2 too large. */
static int parse_duration(const char *s, size_t len, int64_t *ms)
{
    size_t i = 0;
    int64_t v = 0;
    int over = 0;
    if (!len || s[0] < '0' || s[0] > '9') return -1;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10) over = 1;
        else v = v * 10 + d;
    }
    const char *u = s + i;
    size_t ulen = len - i;
    int64_t mult;
    if (!ulen) {
        if (over || v) return -1;
        *ms = 0;
        return 0;
    }
    if (ulen == 2 && !memcmp(u, "ms", 2)) mult = 1;
    else if (ulen == 1 && *u == 's') mult = 1000;
    else if (ulen == 1 && *u == 'm') mult = 60 * 1000;
    else if (ulen == 1 && *u == 'h') mult = 3600 * 1000;
    else if (ulen == 1 && *u == 'd') mult = INT64_C(86400000);
    else if (ulen == 1 && *u == 'w') mult = INT64_C(604800000);
    else return -1;
    if (over || v > INT64_MAX / mult) return -2;
    *ms = v * mult;
    return 0;
}

int tl_parse_duration(const char *s, int64_t *ms)
{
    int64_t v;
    if (!s || parse_duration(s, strlen(s), &v) != 0) return -1;
    *ms = v;
    return 0;
}

/* Shortest exact spelling of a duration ("30d", "100ms", "0"). */
static const char *fmt_duration(int64_t ms, char *buf, size_t size)
{
    static const struct {
        const char *u;
        int64_t m;
    } units[] = {{"w", INT64_C(604800000)}, {"d", INT64_C(86400000)},
                 {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    if (ms == 0) {
        snprintf(buf, size, "0");
        return buf;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms % units[i].m == 0) {
            snprintf(buf, size, "%lld%s", (long long)(ms / units[i].m),
                     units[i].u);
            break;
        }
    return buf;
}

/* positive: the duration must be above 0; max: upper bound or 0 for none
 * (timeouts end up as int milliseconds in librdkafka and hiredis calls). */
static int get_duration(loader *L, const yaml_node_t *n, const char *path,
                        int positive, int64_t max, int64_t *out)
{
    char got[96];
    int64_t v;
    int rc = n->type == YAML_SCALAR_NODE && !is_null(n)
                 ? parse_duration(scalar(n), scalar_len(n), &v)
                 : -1;
    if (rc == -2)
        return fail_node(L, n, "%s: duration %s is too large", path,
                         describe(n, got, sizeof got));
    if (rc != 0)
        return fail_node(L, n,
                         "%s: bad duration %s (expected a number and a unit: "
                         "ms, s, m, h, d, w; e.g. 30d, 12h, 500ms)",
                         path, describe(n, got, sizeof got));
    if (positive && v == 0)
        return fail_node(L, n, "%s: expected a duration above 0, got '0'",
                         path);
    if (max && v > max) {
        char d[32];
        return fail_node(L, n, "%s: expected a duration of at most %s, got %s",
                         path, fmt_duration(max, d, sizeof d),
                         describe(n, got, sizeof got));
    }
    *out = v;
    return TL_OK;
}

/*
 * Checks mapping `map` against the allowed `keys` (unknown and duplicate keys
 * are errors) and sets vals[i] to the value of keys[i] or NULL, and kout[i]
 * (if kout is not NULL) to the key node.  `where` names the mapping in
 * messages ("kafka", "features[2]"); NULL for the top level, whose keys are
 * sections.
 */
static int read_map_keys(loader *L, yaml_node_t *map, const char *where,
                         const char *const *keys, size_t nkeys,
                         yaml_node_t **vals, yaml_node_t **kout)
{
    yaml_node_t *knodes[MAX_KEYS] = {0};
    TL_ASSERT(nkeys <= MAX_KEYS);
    for (size_t i = 0; i < nkeys; i++) vals[i] = NULL;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
         pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(&L->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(&L->doc, pr->value);
        char got[96];
        if (k->type != YAML_SCALAR_NODE)
            return fail_node(L, k, "expected a key name %s%s, got %s",
                             where ? "in " : "at the top level",
                             where ? where : "", describe(k, got, sizeof got));
        size_t i = 0;
        while (i < nkeys && strcmp(keys[i], scalar(k)) != 0) i++;
        if (i == nkeys) {
            char list[256] = "";
            for (size_t j = 0; j < nkeys; j++)
                snprintf(list + strlen(list), sizeof list - strlen(list),
                         "%s%s", j ? ", " : "", keys[j]);
            if (!where)
                return fail_node(L, k,
                                 "unknown section %s (expected one of: %s)",
                                 describe(k, got, sizeof got), list);
            return fail_node(L, k, "unknown key %s in %s (expected one of: %s)",
                             describe(k, got, sizeof got), where, list);
        }
        if (knodes[i])
            return fail_node(L, k, "duplicate key '%s'%s%s (first at %zu:%zu)",
                             keys[i], where ? " in " : "", where ? where : "",
                             knodes[i]->start_mark.line + 1,
                             knodes[i]->start_mark.column + 1);
        knodes[i] = k;
        vals[i] = v;
    }
    if (kout) memcpy(kout, knodes, nkeys * sizeof *kout);
    return TL_OK;
}

static int read_map(loader *L, yaml_node_t *map, const char *where,
                    const char *const *keys, size_t nkeys, yaml_node_t **vals)
{
    return read_map_keys(L, map, where, keys, nkeys, vals, NULL);
}

/* A section or list item that must be a mapping; null counts as absent. */
static int want_map(loader *L, yaml_node_t *n, const char *path,
                    const char *what)
{
    char got[96];
    if (n->type == YAML_MAPPING_NODE) return TL_OK;
    return fail_node(L, n, "%s: expected %s, got %s", path, what,
                     describe(n, got, sizeof got));
}

/* A value outside a fixed set: "PATH.KEY: unknown KEY 'x' (expected one of:
 * LIST)", or, for no value or a non-scalar, "expected one of: LIST, got
 * ...". */
static int bad_choice(loader *L, const yaml_node_t *n, const char *at,
                      const char *key, const char *list)
{
    char got[96];
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail_node(L, n, "%s.%s: expected one of: %s, got %s", at, key,
                         list, describe(n, got, sizeof got));
    return fail_node(L, n, "%s.%s: unknown %s %s (expected one of: %s)", at,
                     key, key, describe(n, got, sizeof got), list);
}

static const char *const keywords[] = {"and", "or", "not", "true", "false",
                                       "null", "in"};

/* Feature and trigger names: [a-z][a-z0-9_]*, at most 64 characters. */
static int check_name(loader *L, const yaml_node_t *n, const char *path,
                      const char *s, int is_feature)
{
    size_t len = strlen(s);
    char got[96];
    if (s[0] == '_') /* describe: quoted, cut at 60 characters */
        return fail_node(L, n,
                         "%s: name %s starts with '_', which is reserved for "
                         "internal Redis fields",
                         path, describe(n, got, sizeof got));
    int ok = len > 0 && s[0] >= 'a' && s[0] <= 'z';
    for (size_t i = 1; ok && i < len; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
             s[i] == '_';
    if (!ok)
        return fail_node(L, n,
                         "%s: bad name %s (expected lowercase letters, digits "
                         "and '_', starting with a letter)",
                         path, describe(n, got, sizeof got));
    if (len > NAME_MAX_LEN)
        return fail_node(L, n, "%s: name is %zu characters long (at most %d)",
                         path, len, NAME_MAX_LEN);
    if (!is_feature) return TL_OK;
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (!strcmp(s, keywords[i]))
            return fail_node(L, n,
                             "%s: '%s' is a word of the expression language "
                             "and cannot name a feature",
                             path, s);
    uint32_t var;
    tl_type type;
    if (tl_event_resolve(NULL, s, NULL, &var, &type) == 0)
        return fail_node(L, n,
                         "%s: '%s' is the name of an event field; choose "
                         "another feature name",
                         path, s);
    return TL_OK;
}

/* Compiles the expression in scalar n; errors point inside the scalar. */
static int get_expr(loader *L, const yaml_node_t *n, const char *path,
                    const tl_expr_scope *scope, tl_type want, tl_expr **out,
                    char **text)
{
    char got[96], msg[TL_ERRSZ];
    if (n->type != YAML_SCALAR_NODE || is_null(n) || !scalar_len(n))
        return fail_node(L, n, "%s: expected an expression, got %s", path,
                         describe(n, got, sizeof got));
    size_t off = 0, line, col;
    tl_expr *e = tl_expr_compile(scalar(n), scalar_len(n), scope, want, &off,
                                 msg, sizeof msg);
    if (!e) {
        scalar_pos(L, n, off, &line, &col);
        return fail_at(L, line, col, "%s: %s", path, msg);
    }
    tl_expr_free(*out);
    *out = e;
    free(*text);
    *text = tl_xstrndup(scalar(n), scalar_len(n));
    return TL_OK;
}

/* ---- ${NAME} substitution ------------------------------------------------ */

static int env_name_char(int ch, int first)
{
    return ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (!first && ch >= '0' && ch <= '9');
}

/* Replaces scalar n's value by its expansion (see config.h).  Errors point
 * at the '$' of the offending reference. */
static int expand_scalar(loader *L, yaml_node_t *n)
{
    const char *s = scalar(n);
    size_t len = scalar_len(n);
    if (!memchr(s, '$', len)) return TL_OK;
    size_t cap = len + 64, o = 0;
    char *buf = tl_xmalloc(cap);
    for (size_t i = 0; i < len;) {
        const char *piece = s + i;
        size_t plen = 1, adv = 1;
        if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            piece = "${";
            plen = 2;
            adv = 3;
        } else if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
            size_t j = i + 2;
            while (j < len && env_name_char((unsigned char)s[j], j == i + 2)) j++;
            size_t line, col;
            if (j == i + 2 || j >= len || s[j] != '}') {
                free(buf);
                scalar_pos(L, n, i, &line, &col);
                return fail_at(L, line, col,
                               "expected ${NAME} (NAME of letters, digits and "
                               "_, not starting with a digit) for an "
                               "environment variable; write $${ for a "
                               "literal ${");
            }
            char name[256];
            size_t nl = j - i - 2 < sizeof name - 1 ? j - i - 2 : sizeof name - 1;
            memcpy(name, s + i + 2, nl);
            name[nl] = '\0';
            piece = getenv(name);
            if (!piece) {
                free(buf);
                scalar_pos(L, n, i, &line, &col);
                return fail_at(L, line, col,
                               "environment variable %s is not set (referenced "
                               "as ${%s}; set it, e.g. in the EnvironmentFile, "
                               "or write $${ for a literal ${)",
                               name, name);
            }
            plen = strlen(piece);
            adv = j + 1 - i;
        }
        if (o + plen + 1 > cap) {
            while (o + plen + 1 > cap) cap *= 2;
            buf = tl_xrealloc(buf, cap);
        }
        memcpy(buf + o, piece, plen);
        o += plen;
        i += adv;
    }
    buf[o] = '\0';
    /* libyaml frees values with free() (yaml_free) in yaml_document_delete. */
    free(n->data.scalar.value);
    n->data.scalar.value = (yaml_char_t *)buf;
    n->data.scalar.length = o;
    return TL_OK;
}

/* Every scalar that is not a mapping key. */
static int expand_env(loader *L)
{
    size_t nn = (size_t)(L->doc.nodes.top - L->doc.nodes.start);
    unsigned char *is_key = tl_xcalloc(nn + 1, 1);
    for (size_t i = 0; i < nn; i++) {
        yaml_node_t *m = &L->doc.nodes.start[i];
        if (m->type != YAML_MAPPING_NODE) continue;
        for (yaml_node_pair_t *pr = m->data.mapping.pairs.start;
             pr < m->data.mapping.pairs.top; pr++)
            if (pr->key >= 1 && (size_t)pr->key <= nn) is_key[pr->key] = 1;
    }
    int rc = TL_OK;
    for (size_t i = 0; rc == TL_OK && i < nn; i++)
        if (L->doc.nodes.start[i].type == YAML_SCALAR_NODE && !is_key[i + 1])
            rc = expand_scalar(L, &L->doc.nodes.start[i]);
    free(is_key);
    return rc;
}

/* ---- sections ------------------------------------------------------------ */

static int load_kafka(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"brokers", "group", "input",
                                       "output", "dead_letter", "properties",
                                       "batch_size", "batch_timeout", "audit"};
    yaml_node_t *v[9];
    tl_config *c = L->c;
    char got[96];
    int rc;
    if ((rc = want_map(L, n, "kafka", "a mapping")) ||
        (rc = read_map(L, n, "kafka", keys, 9, v)))
        return rc;
    if (v[8] && (rc = get_str(L, v[8], "kafka.audit", 0, &c->audit)))
        return rc;
    if ((v[0] && (rc = get_str(L, v[0], "kafka.brokers", 0, &c->brokers))) ||
        (v[1] && (rc = get_str(L, v[1], "kafka.group", 0, &c->group))))
        return rc;
    if (v[2]) {
        yaml_node_t *in = v[2];
        if (in->type == YAML_SCALAR_NODE) {
            char *t = NULL;
            if ((rc = get_str(L, in, "kafka.input", 0, &t))) return rc;
            free(c->inputs[0]);
            c->inputs[0] = t;
        } else if (in->type == YAML_SEQUENCE_NODE && seq_len(in) > 0) {
            size_t cnt = seq_len(in);
            for (size_t i = 0; i < c->ninputs; i++) free(c->inputs[i]);
            free(c->inputs);
            c->inputs = tl_xcalloc(cnt, sizeof *c->inputs);
            c->ninputs = 0;
            for (size_t i = 0; i < cnt; i++) {
                yaml_node_t *it = seq_item(L, in, i);
                char path[64];
                snprintf(path, sizeof path, "kafka.input[%zu]", i);
                if ((rc = get_str(L, it, path, 0, &c->inputs[i]))) return rc;
                c->ninputs++;
                for (size_t j = 0; j < i; j++)
                    if (!strcmp(c->inputs[j], c->inputs[i]))
                        return fail_node(L, it,
                                         "%s: topic '%s' is listed twice", path,
                                         c->inputs[i]);
            }
        } else {
            return fail_node(L, in,
                             "kafka.input: expected a topic name or a "
                             "non-empty list of topic names, got %s",
                             in->type == YAML_SEQUENCE_NODE
                                 ? "an empty list"
                                 : describe(in, got, sizeof got));
        }
    }
    if ((v[3] && (rc = get_str(L, v[3], "kafka.output", 0, &c->output))) ||
        (v[4] && (rc = get_str(L, v[4], "kafka.dead_letter", 0,
                               &c->dead_letter))))
        return rc;
    if (v[5] && !is_null(v[5])) {
        yaml_node_t *pm = v[5];
        if ((rc = want_map(L, pm, "kafka.properties",
                           "a mapping of librdkafka properties to values")))
            return rc;
        size_t cnt = (size_t)(pm->data.mapping.pairs.top -
                              pm->data.mapping.pairs.start);
        c->properties = tl_xcalloc(cnt ? cnt : 1, sizeof *c->properties);
        for (size_t i = 0; i < cnt; i++) {
            yaml_node_pair_t *pr = &pm->data.mapping.pairs.start[i];
            yaml_node_t *k = yaml_document_get_node(&L->doc, pr->key);
            yaml_node_t *val = yaml_document_get_node(&L->doc, pr->value);
            tl_kv *kv = &c->properties[i];
            if ((rc = get_str(L, k, "kafka.properties: key", 0, &kv->key)))
                return rc;
            c->nproperties++;
            for (size_t j = 0; j < i; j++)
                if (!strcmp(c->properties[j].key, kv->key)) {
                    yaml_node_t *first = yaml_document_get_node(
                        &L->doc, pm->data.mapping.pairs.start[j].key);
                    return fail_node(L, k,
                                     "duplicate key '%s' in kafka.properties "
                                     "(first at %zu:%zu)",
                                     kv->key, first->start_mark.line + 1,
                                     first->start_mark.column + 1);
                }
            char path[160];
            snprintf(path, sizeof path, "kafka.properties.%s", kv->key);
            if ((rc = get_str(L, val, path, 1, &kv->val))) return rc;
        }
    }
    int64_t x;
    if (v[6]) {
        if ((rc = get_int(L, v[6], "kafka.batch_size", 1, 100000, &x)))
            return rc;
        c->batch_size = (int)x;
    }
    if (v[7] && (rc = get_duration(L, v[7], "kafka.batch_timeout", 1,
                                   TIMEOUT_MAX, &c->batch_timeout_ms)))
        return rc;
    return TL_OK;
}

/* redis.cluster: seed nodes as host[:port] strings, turned into the
 * redis-cluster:// URL that the store takes (each checked by the store's
 * own URL parser, so both forms accept the same hosts). */
static int load_redis_cluster(loader *L, yaml_node_t *n)
{
    char got[96];
    if (n->type != YAML_SEQUENCE_NODE || seq_len(n) == 0)
        return fail_node(L, n,
                         "redis.cluster: expected a non-empty list of "
                         "host:port seed nodes, got %s",
                         n->type == YAML_SEQUENCE_NODE
                             ? "an empty list"
                             : describe(n, got, sizeof got));
    size_t cap = 32, len = 0;
    char *url = tl_xmalloc(cap);
    len = (size_t)snprintf(url, cap, "redis-cluster://");
    for (size_t i = 0; i < seq_len(n); i++) {
        yaml_node_t *it = seq_item(L, n, i);
        char path[64], *hp = NULL, one[300], err[TL_ERRSZ];
        snprintf(path, sizeof path, "redis.cluster[%zu]", i);
        int rc = get_str(L, it, path, 0, &hp);
        if (rc) {
            free(url);
            return rc;
        }
        tl_redis_url u;
        snprintf(one, sizeof one, "redis-cluster://%s", hp);
        if (strpbrk(hp, ",@/?") ||
            tl_redis_url_parse(one, &u, err, sizeof err) != TL_OK) {
            if (strpbrk(hp, ",@/?"))
                snprintf(err, sizeof err, "one host[:port] per item");
            rc = fail_node(L, it, "%s: \"%s\": %s", path, hp, err);
            free(hp);
            free(url);
            return rc;
        }
        tl_redis_url_clear(&u);
        size_t need = len + strlen(hp) + 2;
        if (need > cap) url = tl_xrealloc(url, cap = need * 2);
        len += (size_t)snprintf(url + len, cap - len, "%s%s", i ? "," : "",
                                hp);
        free(hp);
    }
    free(L->c->redis_url);
    L->c->redis_url = url;
    return TL_OK;
}

static int load_redis(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"url", "prefix", "ttl", "timeout",
                                       "cluster"};
    yaml_node_t *v[5];
    tl_config *c = L->c;
    int rc;
    if ((rc = want_map(L, n, "redis", "a mapping")) ||
        (rc = read_map(L, n, "redis", keys, 5, v)))
        return rc;
    if (v[0] && v[4])
        return fail_node(L, v[4],
                         "redis.cluster: give either redis.url or "
                         "redis.cluster, not both (a cluster URL is "
                         "redis-cluster://[[user]:password@]host:port,...)");
    if (v[0]) {
        if ((rc = get_str(L, v[0], "redis.url", 0, &c->redis_url))) return rc;
        if (strncmp(c->redis_url, "redis://", 8) &&
            strncmp(c->redis_url, "unix://", 7) &&
            strncmp(c->redis_url, "redis-cluster://", 16)) {
            char got[96];
            return fail_node(L, v[0],
                             "redis.url: expected "
                             "redis://[[user]:password@]host[:port][/db], "
                             "unix://[[user]:password@]/path/to/redis.sock "
                             "or redis-cluster://[[user]:password@]host:port"
                             "[,host:port...], got %s",
                             /* a password must not reach the log */
                             strchr(c->redis_url, '@')
                                 ? "a value with credentials (not shown)"
                                 : describe(v[0], got, sizeof got));
        }
    }
    if (v[4] && (rc = load_redis_cluster(L, v[4]))) return rc;
    if (v[1] && (rc = get_str(L, v[1], "redis.prefix", 1, &c->redis_prefix)))
        return rc;
    if (v[2] &&
        (rc = get_duration(L, v[2], "redis.ttl", 0, 0, &c->redis_ttl_ms)))
        return rc;
    if (v[3] && (rc = get_duration(L, v[3], "redis.timeout", 1,
                                   TIMEOUT_MAX, &c->redis_timeout_ms)))
        return rc;
    return TL_OK;
}

static int read_schema(loader *L, yaml_node_t *n, const char *path,
                       char **out)
{
    char *file = NULL, msg[TL_ERRSZ];
    int rc = get_str(L, n, path, 0, &file);
    if (rc) return rc;
    size_t dlen = file[0] == '/' ? 0 : strlen(L->dir), flen = strlen(file);
    char *full = tl_xmalloc(dlen + flen + 1);
    memcpy(full, L->dir, dlen);
    memcpy(full + dlen, file, flen + 1);
    size_t len;
    char *text = tl_read_file(full, &len, msg, sizeof msg);
    if (!text)
        rc = fail_node(L, n, "%s: %s", path, msg); /* msg names the file */
    free(file);
    free(full);
    if (rc) return rc;
    free(*out);
    *out = text;
    return TL_OK;
}

static int load_events(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"format", "schema", "writer_schema",
                                       "max_lateness"};
    yaml_node_t *v[4];
    tl_config *c = L->c;
    char got[96];
    int rc;
    if ((rc = want_map(L, n, "events", "a mapping")) ||
        (rc = read_map(L, n, "events", keys, 4, v)))
        return rc;
    if (v[0]) {
        const char *s = v[0]->type == YAML_SCALAR_NODE ? scalar(v[0]) : "";
        if (!strcmp(s, "avro"))
            c->format = TL_FMT_AVRO;
        else if (!strcmp(s, "json"))
            c->format = TL_FMT_JSON;
        else
            return fail_node(L, v[0],
                             "events.format: expected avro or json, got %s",
                             describe(v[0], got, sizeof got));
    }
    if (v[1] && (rc = read_schema(L, v[1], "events.schema", &c->schema_json)))
        return rc;
    if (v[2] && (rc = read_schema(L, v[2], "events.writer_schema",
                                  &c->writer_schema_json)))
        return rc;
    if (v[3] && (rc = get_duration(L, v[3], "events.max_lateness", 0, 0,
                                   &c->max_lateness_ms)))
        return rc;
    return TL_OK;
}

static int load_state(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"cache_size"};
    yaml_node_t *v[1];
    int64_t x;
    int rc;
    if ((rc = want_map(L, n, "state", "a mapping")) ||
        (rc = read_map(L, n, "state", keys, 1, v)))
        return rc;
    if (v[0]) {
        if ((rc = get_int(L, v[0], "state.cache_size", 1, INT64_MAX, &x)))
            return rc;
        L->c->cache_size = (size_t)x;
    }
    return TL_OK;
}

static int load_daemon(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"shutdown_timeout"};
    yaml_node_t *v[1];
    int rc;
    if ((rc = want_map(L, n, "daemon", "a mapping")) ||
        (rc = read_map(L, n, "daemon", keys, 1, v)))
        return rc;
    if (v[0] && (rc = get_duration(L, v[0], "daemon.shutdown_timeout", 1, 0,
                                   &L->c->shutdown_timeout_ms)))
        return rc;
    return TL_OK;
}

/* "HOST:PORT" with HOST an IPv4 address or localhost: the endpoint is for
 * loopback and private networks, never a name resolved at start. */
static int check_listen(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return -1;
    size_t hl = (size_t)(colon - s);
    if (!(hl == 9 && !memcmp(s, "localhost", 9))) {
        int dots = 0, digits = 0;
        for (const char *c = s; c < colon; c++) {
            if (*c == '.') {
                if (!digits) return -1;
                dots++;
                digits = 0;
            } else if (*c >= '0' && *c <= '9' && digits < 3) {
                digits++;
            } else {
                return -1;
            }
        }
        if (dots != 3 || !digits) return -1;
    }
    int64_t port;
    if (tl_parse_i64(colon + 1, strlen(colon + 1), &port) || port < 1 ||
        port > 65535 || colon[1] == '+' || colon[1] == '-')
        return -1;
    return 0;
}

static int load_http(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"listen", "token"};
    yaml_node_t *v[2];
    tl_config *c = L->c;
    int rc;
    if ((rc = want_map(L, n, "http", "a mapping")) ||
        (rc = read_map(L, n, "http", keys, 2, v)))
        return rc;
    if (v[0]) {
        if ((rc = get_str(L, v[0], "http.listen", 1, &c->http_listen)))
            return rc;
        if (!*c->http_listen || !strcmp(c->http_listen, "off")) {
            free(c->http_listen);
            c->http_listen = NULL;
        } else if (check_listen(c->http_listen)) {
            char got[96];
            return fail_node(L, v[0],
                             "http.listen: expected HOST:PORT with HOST an "
                             "IPv4 address or localhost and PORT 1..65535 "
                             "(or \"\" / off for no endpoint), got %s",
                             describe(v[0], got, sizeof got));
        }
    }
    if (v[1]) {
        if ((rc = get_str(L, v[1], "http.token", 1, &c->http_token))) return rc;
        if (!*c->http_token) {
            free(c->http_token);
            c->http_token = NULL;
        }
    }
    return TL_OK;
}

static int load_log(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"level", "format"};
    yaml_node_t *v[2];
    char got[96];
    int rc;
    if ((rc = want_map(L, n, "log", "a mapping")) ||
        (rc = read_map(L, n, "log", keys, 2, v)))
        return rc;
    if (v[1] && (v[1]->type != YAML_SCALAR_NODE ||
                 tl_log_format_parse(scalar(v[1]), &L->c->log_format) != 0))
        return fail_node(L, v[1], "log.format: expected one of text, json, "
                         "got %s", describe(v[1], got, sizeof got));
    if (v[0] && (v[0]->type != YAML_SCALAR_NODE ||
                 tl_log_level_parse(scalar(v[0]), &L->c->log_level) != 0))
        return fail_node(L, v[0],
                         "log.level: expected one of error, warn, info, debug, "
                         "got %s",
                         describe(v[0], got, sizeof got));
    return TL_OK;
}

static int load_feature(loader *L, yaml_node_t *n, size_t idx)
{
    static const char *const keys[] = {
        "name", "kind", "where", "field", "window", "resolution",
        "max_length", "half_life", "ttl", "k", "capacity", "n",
        "exact_up_to", "precision", "of"};
    enum {
        K_NAME, K_KIND, K_WHERE, K_FIELD, K_WINDOW, K_RES, K_MAXLEN,
        K_HALF_LIFE, K_TTL, K_K, K_CAPACITY, K_N, K_EXACT, K_PRECISION, K_OF,
        K__N
    };
    yaml_node_t *v[K__N], *kn[K__N];
    tl_feature *f = &L->c->features[idx];
    feat_text *txt = &L->c->text->features[idx];
    tl_expr_scope ev_scope = {tl_event_resolve, NULL};
    char at[32], path[64];
    int rc;
    snprintf(at, sizeof at, "features[%zu]", idx);
    if ((rc = want_map(L, n, at,
                       "a mapping with name, kind and the kind's keys")) ||
        (rc = read_map_keys(L, n, at, keys, K__N, v, kn)))
        return rc;
    L->fnode[idx] = n;

    if (!v[K_NAME])
        return fail_node(L, n, "%s: missing required key 'name'", at);
    snprintf(path, sizeof path, "%s.name", at);
    if ((rc = get_str(L, v[K_NAME], path, 0, &f->name)) ||
        (rc = check_name(L, v[K_NAME], path, f->name, 1)))
        return rc;
    for (size_t i = 0; i < idx; i++)
        if (!strcmp(L->c->features[i].name, f->name))
            return fail_node(L, v[K_NAME],
                             "%s: duplicate feature name '%s' (first at "
                             "%zu:%zu)",
                             path, f->name, L->fname[i]->start_mark.line + 1,
                             L->fname[i]->start_mark.column + 1);
    L->fname[idx] = v[K_NAME];

    if (!v[K_KIND])
        return fail_node(L, n, "%s: missing required key 'kind' (one of: %s)",
                         at, tl_feature_kind_list());
    if (v[K_KIND]->type != YAML_SCALAR_NODE ||
        tl_feature_kind_parse(scalar(v[K_KIND]), &f->kind) != 0)
        return bad_choice(L, v[K_KIND], at, "kind", tl_feature_kind_list());
    const tl_feature_kind_info *ki = tl_feature_kind_get(f->kind);

    if (v[K_WHERE]) {
        snprintf(path, sizeof path, "%s.where", at);
        if ((rc = get_expr(L, v[K_WHERE], path, &ev_scope, TL_T_BOOL, &f->where,
                           &txt->where)))
            return rc;
    }

    snprintf(path, sizeof path, "%s.field", at);
    if (v[K_FIELD] && !ki->needs_field)
        return fail_node(L, v[K_FIELD], "%s: kind %s takes no field", path,
                         ki->name);
    if (!v[K_FIELD] && ki->needs_field)
        return fail_node(L, n,
                         "%s: missing required key 'field' (kind %s needs the "
                         "event value it uses)",
                         at, ki->name);
    if (v[K_FIELD]) {
        if ((rc = get_expr(L, v[K_FIELD], path, &ev_scope, TL_T_NULL, &f->field,
                           &txt->field)))
            return rc;
        tl_type t = tl_expr_type(f->field);
        if (ki->field_type != TL_T_NULL && t != ki->field_type) {
            size_t line, col;
            scalar_pos(L, v[K_FIELD], 0, &line, &col);
            return fail_at(L, line, col,
                           "%s: kind %s needs a %s field, but this is a %s",
                           path, ki->name, tl_type_name(ki->field_type),
                           tl_type_name(t));
        }
    }

    for (int k = K_WINDOW; k <= K_RES; k++) {
        snprintf(path, sizeof path, "%s.%s", at, keys[k]);
        if (v[k] && !ki->needs_window)
            return fail_node(L, v[k], "%s: kind %s takes no %s", path, ki->name,
                             keys[k]);
        if (v[k] && (rc = get_duration(L, v[k], path, 1, 0,
                                       k == K_WINDOW ? &f->window_ms
                                                     : &f->resolution_ms)))
            return rc;
    }
    if (ki->needs_window && !v[K_WINDOW])
        return fail_node(L, n,
                         "%s: missing required key 'window' (kind %s counts "
                         "over a sliding window, e.g. window: 30d)",
                         at, ki->name);

    int64_t x;
    if (v[K_MAXLEN]) {
        snprintf(path, sizeof path, "%s.max_length", at);
        if (!f->field || tl_expr_type(f->field) != TL_T_STR)
            return fail_node(L, v[K_MAXLEN],
                             "%s: applies only to a feature that keeps a "
                             "string field (e.g. kind last)",
                             path);
        if ((rc = get_int(L, v[K_MAXLEN], path, 1, MAX_LENGTH_LIMIT, &x)))
            return rc;
        f->max_len = (uint32_t)x;
    }

    /* The kind's options (TL_OPT_*): one it does not take is an error at
     * its key, a required one missing an error at the feature.  capacity
     * goes with k, precision with exact_up_to; ttl suits every kind. */
    const int allow[K__N] = {
        [K_HALF_LIFE] = ki->half_life, [K_TTL] = TL_OPT_MAY, [K_K] = ki->k,
        [K_CAPACITY] = ki->k ? TL_OPT_MAY : TL_OPT_NO, [K_N] = ki->n,
        [K_EXACT] = ki->bounds,
        [K_PRECISION] = ki->bounds ? TL_OPT_MAY : TL_OPT_NO, [K_OF] = ki->of};
    for (int k = K_HALF_LIFE; k < K__N; k++)
        if (v[k] && allow[k] == TL_OPT_NO)
            return fail_node(L, kn[k], "%s: kind %s takes no '%s'", at,
                             ki->name, keys[k]);
    for (int k = K_HALF_LIFE; k < K__N; k++)
        if (!v[k] && allow[k] == TL_OPT_MUST)
            return fail_node(L, n, "%s: kind %s needs '%s'", at, ki->name,
                             keys[k]);
    if (v[K_CAPACITY] && !v[K_K])
        return fail_node(L, kn[K_CAPACITY], "%s: 'capacity' needs 'k'", at);

    if (v[K_HALF_LIFE]) {
        snprintf(path, sizeof path, "%s.half_life", at);
        if ((rc = get_duration(L, v[K_HALF_LIFE], path, 1, 0,
                               &f->half_life_ms)))
            return rc;
    }
    if (v[K_TTL]) {
        snprintf(path, sizeof path, "%s.ttl", at);
        if ((rc = get_duration(L, v[K_TTL], path, 0, 0, &f->ttl_ms)))
            return rc;
    }
    /* Integer options: key, bounds, destination. */
    const struct {
        int key;
        int64_t min, max;
        uint32_t *out;
    } ints[] = {
        {K_K, 1, K_MAX, &f->k},
        {K_CAPACITY, 0, CAPACITY_MAX, &f->capacity}, /* min: k, below */
        {K_N, 1, N_MAX, &f->n},
        {K_EXACT, 1, EXACT_UP_TO_MAX, &f->exact_up_to},
        {K_PRECISION, PRECISION_MIN, PRECISION_MAX, &f->precision},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        yaml_node_t *val = v[ints[i].key];
        if (!val) continue;
        int64_t min = ints[i].key == K_CAPACITY ? (int64_t)f->k : ints[i].min;
        snprintf(path, sizeof path, "%s.%s", at, keys[ints[i].key]);
        if ((rc = get_int(L, val, path, min, ints[i].max, &x))) return rc;
        *ints[i].out = (uint32_t)x;
    }
    if (v[K_OF]) {
        /* A name for now; load_features resolves it once every feature is
         * known (it may name a later one). */
        char *name = NULL;
        snprintf(path, sizeof path, "%s.of", at);
        if ((rc = get_str(L, v[K_OF], path, 0, &name))) return rc;
        free(name);
        L->fof[idx] = v[K_OF];
    }
    return TL_OK;
}

/* First/last-seen kinds: what `of` must name. */
static int is_time_feature(const tl_feature *f)
{
    return f->kind == TL_FK_FIRST_SEEN || f->kind == TL_FK_LAST_SEEN;
}

static int load_features(loader *L, yaml_node_t *n)
{
    tl_config *c = L->c;
    char got[96], msg[TL_ERRSZ];
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_node(L, n, "features: expected a list of features, got %s",
                         describe(n, got, sizeof got));
    size_t cnt = seq_len(n);
    c->features = tl_xcalloc(cnt ? cnt : 1, sizeof *c->features);
    c->text->features = tl_xcalloc(cnt ? cnt : 1, sizeof *c->text->features);
    L->fname = tl_xcalloc(cnt ? cnt : 1, sizeof *L->fname);
    L->fnode = tl_xcalloc(cnt ? cnt : 1, sizeof *L->fnode);
    L->fof = tl_xcalloc(cnt ? cnt : 1, sizeof *L->fof);
    for (size_t i = 0; i < cnt; i++) {
        /* Counted first so that tl_config_free clears a half-built one. */
        c->nfeatures = i + 1;
        int rc = load_feature(L, seq_item(L, n, i), i);
        if (rc) return rc;
    }
    /* `of` names any feature of the list, earlier or later. */
    for (size_t i = 0; i < cnt; i++) {
        if (!L->fof[i]) continue;
        const char *name = scalar(L->fof[i]);
        size_t j = 0;
        while (j < cnt && strcmp(c->features[j].name, name)) j++;
        if (j == cnt)
            return fail_node(L, L->fof[i], "features[%zu]: unknown feature %s "
                             "in of", i, describe(L->fof[i], got, sizeof got));
        c->features[i].of = (int)j;
    }
    /* Features that read another one (since) last, so that the one they
     * read is finished. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < cnt; i++) {
            tl_feature *f = &c->features[i];
            if ((tl_feature_kind_get(f->kind)->of != TL_OPT_NO) != pass)
                continue;
            if (tl_feature_finish(f, c->features, msg, sizeof msg) == TL_OK)
                continue;
            /* Most likely `of` names a feature of the wrong kind: point at
             * it then. */
            yaml_node_t *where = L->fnode[i];
            if (L->fof[i] && !is_time_feature(&c->features[f->of]))
                where = L->fof[i];
            return fail_node(L, where, "features[%zu] (%s): %s", i, f->name,
                             msg);
        }
    return TL_OK;
}

/* ---- trigger options ----------------------------------------------------- */

static int get_channel(loader *L, const yaml_node_t *n, const char *at,
                       tl_channel *out)
{
    char list[160] = "";
    for (int ch = 0; ch < TL_CH__COUNT; ch++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 ch ? ", " : "", tl_channel_name((tl_channel)ch));
    if (n->type != YAML_SCALAR_NODE ||
        tl_channel_parse(scalar(n), scalar_len(n), out) != 0)
        return bad_choice(L, n, at, "channel", list);
    return TL_OK;
}

/* cap: {max, per, channel}; a missing channel is the rule's emit.channel,
 * which load_trigger fills in once emit is read (*chan: the channel node). */
static int load_cap(loader *L, yaml_node_t *n, const char *at, tl_rule *r,
                    yaml_node_t **chan)
{
    static const char *const keys[] = {"max", "per", "channel"};
    yaml_node_t *v[3];
    char path[64], sub[80];
    int64_t x;
    int rc;
    snprintf(path, sizeof path, "%s.cap", at);
    if ((rc = want_map(L, n, path,
                       "a mapping with max, per and optional channel")) ||
        (rc = read_map(L, n, path, keys, 3, v)))
        return rc;
    if (!v[0])
        return fail_node(L, n,
                         "%s: missing required key 'max' (the most triggers "
                         "per period, e.g. max: 3)",
                         path);
    if (!v[1])
        return fail_node(L, n,
                         "%s: missing required key 'per' (the period, e.g. "
                         "per: 7d)",
                         path);
    snprintf(sub, sizeof sub, "%s.max", path);
    if ((rc = get_int(L, v[0], sub, 1, CAP_MAX, &x))) return rc;
    r->cap.max = (uint32_t)x;
    snprintf(sub, sizeof sub, "%s.per", path);
    if ((rc = get_duration(L, v[1], sub, 1, 0, &r->cap.per_ms))) return rc;
    if (v[2] && (rc = get_channel(L, v[2], path, &r->cap.channel))) return rc;
    *chan = v[2];
    r->has_cap = 1;
    return TL_OK;
}

/* "HH:MM", 00:00 to 23:59: minutes after midnight. */
static int get_time_of_day(loader *L, const yaml_node_t *n, const char *path,
                           int *out)
{
    char got[96];
    const char *s = n->type == YAML_SCALAR_NODE ? scalar(n) : "";
    int ok = n->type == YAML_SCALAR_NODE && scalar_len(n) == 5 && s[2] == ':';
    for (int i = 0; ok && i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9')) ok = 0;
    int h = ok ? (s[0] - '0') * 10 + (s[1] - '0') : 0;
    int m = ok ? (s[3] - '0') * 10 + (s[4] - '0') : 0;
    if (!ok || h > 23 || m > 59)
        return fail_node(L, n,
                         "%s: expected a time of day HH:MM from 00:00 to "
                         "23:59, got %s",
                         path, describe(n, got, sizeof got));
    *out = h * 60 + m;
    return TL_OK;
}

/* What a tz database zone name is made of ("Europe/Madrid", "Etc/GMT+1");
 * anything else in quiet_hours.tz makes it an expression. */
static int is_zone_name(const char *s, size_t len)
{
    if (!len) return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '+' ||
              ch == '-' || ch == '/'))
            return 0;
    }
    return 1;
}

/* quiet_hours: {from, to, tz}; *tz: the tz node (for tl_rule_finish's
 * unknown-zone message), or NULL. */
static int load_quiet(loader *L, yaml_node_t *n, const char *at, tl_rule *r,
                      rule_text *txt, const tl_expr_scope *scope,
                      yaml_node_t **tz)
{
    static const char *const keys[] = {"from", "to", "tz"};
    yaml_node_t *v[3];
    char path[64], sub[80], got[96];
    int rc;
    snprintf(path, sizeof path, "%s.quiet_hours", at);
    if ((rc = want_map(L, n, path, "a mapping with from, to and optional tz")) ||
        (rc = read_map(L, n, path, keys, 3, v)))
        return rc;
    if (!v[0])
        return fail_node(L, n,
                         "%s: missing required key 'from' (the start of the "
                         "quiet time, e.g. from: \"22:00\")",
                         path);
    if (!v[1])
        return fail_node(L, n,
                         "%s: missing required key 'to' (the end of the quiet "
                         "time, e.g. to: \"08:00\")",
                         path);
    snprintf(sub, sizeof sub, "%s.from", path);
    if ((rc = get_time_of_day(L, v[0], sub, &r->quiet.from_min))) return rc;
    snprintf(sub, sizeof sub, "%s.to", path);
    if ((rc = get_time_of_day(L, v[1], sub, &r->quiet.to_min))) return rc;
    if (r->quiet.to_min == r->quiet.from_min)
        return fail_node(L, v[1],
                         "%s: the same time as 'from' (the quiet time would "
                         "be empty)",
                         sub);
    *tz = v[2];
    if (!v[2]) {
        r->quiet.tz_name = tl_xstrdup("UTC");
    } else {
        yaml_node_t *t = v[2];
        snprintf(sub, sizeof sub, "%s.tz", path);
        if (t->type != YAML_SCALAR_NODE || is_null(t) || !scalar_len(t))
            return fail_node(L, t,
                             "%s: expected a time zone name or a string "
                             "expression, got %s",
                             sub, describe(t, got, sizeof got));
        if (is_zone_name(scalar(t), scalar_len(t)))
            r->quiet.tz_name = tl_xstrndup(scalar(t), scalar_len(t));
        else if ((rc = get_expr(L, t, sub, scope, TL_T_STR, &r->quiet.tz_expr,
                                &txt->tz)))
            return rc;
    }
    r->has_quiet = 1;
    return TL_OK;
}

/* Group names: [a-z_][a-z0-9_]*, at most 64 characters. */
static int check_group(loader *L, const yaml_node_t *n, const char *path,
                       const char *s)
{
    char got[96];
    size_t len = strlen(s);
    int ok = len > 0 && ((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_');
    for (size_t i = 1; ok && i < len; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
             s[i] == '_';
    if (!ok)
        return fail_node(L, n,
                         "%s: bad group name %s (expected lowercase letters, "
                         "digits and '_', not starting with a digit)",
                         path, describe(n, got, sizeof got));
    if (len > NAME_MAX_LEN)
        return fail_node(L, n, "%s: name is %zu characters long (at most %d)",
                         path, len, NAME_MAX_LEN);
    return TL_OK;
}

/* holdout: "10%" (0% to 100%) or a number from 0 to 1, as a share.  Both are
 * decimals without sign or exponent; "12.5%" is read as 12.5e-2, so that it
 * is exactly the double 0.125 would be. */
static int get_share(loader *L, const yaml_node_t *n, const char *path,
                     double *out)
{
    char got[96], buf[64];
    int scal = n->type == YAML_SCALAR_NODE;
    const char *s = scal ? scalar(n) : "";
    size_t len = scal ? scalar_len(n) : 0;
    int pct = len > 0 && s[len - 1] == '%';
    size_t nlen = len - (size_t)pct, digits = 0, dots = 0;
    int ok = nlen > 0 && nlen + 4 <= sizeof buf;
    for (size_t i = 0; ok && i < nlen; i++) {
        if (s[i] >= '0' && s[i] <= '9') digits++;
        else if (s[i] == '.' && !dots) dots++;
        else ok = 0;
    }
    double v = 0;
    if (ok && digits) {
        memcpy(buf, s, nlen);
        buf[nlen] = '\0';
        if (pct) memcpy(buf + nlen, "e-2", 4);
        ok = tl_parse_double(buf, strlen(buf), &v) == 0 && v >= 0 && v <= 1;
    } else {
        ok = 0;
    }
    if (!ok)
        return fail_node(L, n,
                         "%s: expected a share: a percentage from 0%% to 100%% "
                         "(e.g. 10%%) or a number from 0 to 1, got %s",
                         path, describe(n, got, sizeof got));
    *out = v;
    return TL_OK;
}

/* emit.attrs: attribute name -> template, in file order. */
static int load_attrs(loader *L, yaml_node_t *n, const char *at, tl_rule *r,
                      rule_text *txt, const tl_expr_scope *scope)
{
    char path[64], kpath[80], vpath[160], got[96], msg[TL_ERRSZ];
    int rc;
    snprintf(path, sizeof path, "%s.emit.attrs", at);
    if (is_null(n)) return TL_OK;
    if ((rc = want_map(L, n, path,
                       "a mapping of attribute names to templates")))
        return rc;
    size_t cnt = (size_t)(n->data.mapping.pairs.top -
                          n->data.mapping.pairs.start);
    r->attrs = tl_xcalloc(cnt ? cnt : 1, sizeof *r->attrs);
    txt->attrs = tl_xcalloc(cnt ? cnt : 1, sizeof *txt->attrs);
    snprintf(kpath, sizeof kpath, "%s: key", path);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *pr = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = yaml_document_get_node(&L->doc, pr->key);
        yaml_node_t *val = yaml_document_get_node(&L->doc, pr->value);
        char *key = NULL;
        if ((rc = get_str(L, k, kpath, 0, &key))) return rc;
        /* Counted at once, so that tl_rule_clear frees it. */
        tl_rule_attr *a = &r->attrs[r->nattrs++];
        a->key = key;
        txt->nattrs = r->nattrs;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(r->attrs[j].key, key)) {
                yaml_node_t *first = yaml_document_get_node(
                    &L->doc, n->data.mapping.pairs.start[j].key);
                return fail_node(L, k,
                                 "duplicate key '%s' in %s (first at %zu:%zu)",
                                 key, path, first->start_mark.line + 1,
                                 first->start_mark.column + 1);
            }
        snprintf(vpath, sizeof vpath, "%s.%s", path, key);
        if (val->type != YAML_SCALAR_NODE || is_null(val))
            return fail_node(L, val, "%s: expected a template, got %s", vpath,
                             describe(val, got, sizeof got));
        size_t off = 0;
        if (tl_template_compile(&a->value, scalar(val), scalar_len(val), scope,
                                &off, msg, sizeof msg) != TL_OK) {
            size_t line, col;
            scalar_pos(L, val, off, &line, &col);
            return fail_at(L, line, col, "%s: %s", vpath, msg);
        }
        txt->attrs[i] = tl_xstrndup(scalar(val), scalar_len(val));
    }
    return TL_OK;
}

/* ---- rule version -------------------------------------------------------- */

static int mark_before(yaml_mark_t a, yaml_mark_t b)
{
    return a.line < b.line || (a.line == b.line && a.column < b.column);
}

/* Nodes walked for a rule's version: seen (by node index) and the nodes
 * written outside the text being walked (alias targets), each hashed as a
 * text of its own. */
typedef struct vwalk {
    unsigned char *seen;
    yaml_node_t **todo;
    size_t ntodo, cap;
} vwalk;

static void vwalk_push(vwalk *w, yaml_node_t *n)
{
    if (w->ntodo == w->cap) {
        w->cap = w->cap * 2 + 4;
        w->todo = tl_xrealloc(w->todo, w->cap * sizeof *w->todo);
    }
    w->todo[w->ntodo++] = n;
}

/*
 * Where node n's own text ends.  libyaml ends a block mapping or sequence
 * at the token that follows it, past the comments and blank lines before
 * the next rule; the rule's text ends with its last scalar or flow
 * collection instead.  A child that starts before n (an alias of a node
 * written elsewhere) is queued to be hashed on its own.  Called on a rule
 * the loader has accepted, so the nesting is shallow.
 */
static yaml_mark_t node_end(loader *L, vwalk *w, yaml_node_t *n)
{
    w->seen[n - L->doc.nodes.start] = 1;
    int block = (n->type == YAML_MAPPING_NODE &&
                 n->data.mapping.style != YAML_FLOW_MAPPING_STYLE) ||
                (n->type == YAML_SEQUENCE_NODE &&
                 n->data.sequence.style != YAML_FLOW_SEQUENCE_STYLE);
    if (!block) return n->end_mark;
    yaml_node_item_t *ids = NULL;
    size_t nids = 0;
    yaml_node_item_t pair_ids[2];
    yaml_mark_t end = n->start_mark;
    size_t count = n->type == YAML_MAPPING_NODE
                       ? (size_t)(n->data.mapping.pairs.top -
                                  n->data.mapping.pairs.start)
                       : seq_len(n);
    for (size_t i = 0; i < count; i++) {
        if (n->type == YAML_MAPPING_NODE) {
            pair_ids[0] = n->data.mapping.pairs.start[i].key;
            pair_ids[1] = n->data.mapping.pairs.start[i].value;
            ids = pair_ids;
            nids = 2;
        } else {
            ids = &n->data.sequence.items.start[i];
            nids = 1;
        }
        for (size_t j = 0; j < nids; j++) {
            yaml_node_t *c = yaml_document_get_node(&L->doc, ids[j]);
            if (!c || w->seen[c - L->doc.nodes.start]) continue;
            if (mark_before(c->start_mark, n->start_mark)) {
                w->seen[c - L->doc.nodes.start] = 1;
                vwalk_push(w, c);
                continue;
            }
            yaml_mark_t e = node_end(L, w, c);
            if (mark_before(end, e)) end = e;
        }
    }
    return end;
}

/*
 * rule_version: FNV-1a 64 of the rule's source text, from its start to the
 * end of its last value (trailing blanks and line breaks, comments after it
 * and the blank lines before the next rule do not count), followed by the
 * text of every node it reaches through an alias but that is written
 * elsewhere.  Editing a rule changes its version; editing another does not.
 */
static void rule_version(loader *L, yaml_node_t *n, char out[17])
{
    size_t nnodes = (size_t)(L->doc.nodes.top - L->doc.nodes.start);
    vwalk w = {.seen = tl_xcalloc(nnodes ? nnodes : 1, 1)};
    uint64_t h = TL_FNV_OFFSET;
    vwalk_push(&w, n);
    for (size_t i = 0; i < w.ntodo; i++) {
        yaml_node_t *x = w.todo[i];
        yaml_mark_t end = node_end(L, &w, x);
        size_t from, to;
        if (i) h = tl_fnv1a(h, "", 1);
        if (mark_offset(L, x->start_mark, &from) != 0 ||
            mark_offset(L, end, &to) != 0 || to < from) {
            /* Not expected: the marks come from this text. */
            from = to = 0;
        }
        while (to > from && (L->src[to - 1] == ' ' || L->src[to - 1] == '\t' ||
                             L->src[to - 1] == '\n' || L->src[to - 1] == '\r'))
            to--;
        h = tl_fnv1a(h, L->src + from, to - from);
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    free(w.seen);
    free(w.todo);
}

/* ---- triggers ------------------------------------------------------------ */

static int load_trigger(loader *L, yaml_node_t *n, size_t idx,
                        const tl_names *names)
{
    static const char *const keys[] = {
        "name", "when", "if", "mode", "cooldown", "cap", "quiet_hours",
        "priority", "group", "holdout", "emit"};
    static const char *const ekeys[] = {"channel", "message", "attrs"};
    enum {
        K_NAME, K_WHEN, K_IF, K_MODE, K_COOLDOWN, K_CAP, K_QUIET, K_PRIORITY,
        K_GROUP, K_HOLDOUT, K_EMIT, K__N
    };
    yaml_node_t *v[K__N], *e[3], *cap_channel = NULL, *tz = NULL;
    tl_rule *r = &L->c->rules[idx];
    rule_text *txt = &L->c->text->rules[idx];
    tl_expr_scope ev_scope = {tl_event_resolve, NULL};
    tl_expr_scope nm_scope = TL_NAMES_SCOPE(names);
    char at[32], path[64], got[96], msg[TL_ERRSZ];
    int64_t x;
    int rc;
    snprintf(at, sizeof at, "triggers[%zu]", idx);
    if ((rc = want_map(L, n, at,
                       "a mapping with name, emit and optional when, if, "
                       "mode, cooldown, cap, quiet_hours, priority, group, "
                       "holdout")) ||
        (rc = read_map(L, n, at, keys, K__N, v)))
        return rc;

    if (!v[K_NAME])
        return fail_node(L, n, "%s: missing required key 'name'", at);
    snprintf(path, sizeof path, "%s.name", at);
    if ((rc = get_str(L, v[K_NAME], path, 0, &r->name)) ||
        (rc = check_name(L, v[K_NAME], path, r->name, 0)))
        return rc;
    for (size_t i = 0; i < idx; i++)
        if (!strcmp(L->c->rules[i].name, r->name))
            return fail_node(L, v[K_NAME],
                             "%s: duplicate trigger name '%s' (first at "
                             "%zu:%zu)",
                             path, r->name, L->rname[i]->start_mark.line + 1,
                             L->rname[i]->start_mark.column + 1);
    L->rname[idx] = v[K_NAME];

    if (v[K_WHEN]) {
        snprintf(path, sizeof path, "%s.when", at);
        if ((rc = get_expr(L, v[K_WHEN], path, &ev_scope, TL_T_BOOL, &r->when,
                           &txt->when)))
            return rc;
    }
    if (v[K_IF]) {
        snprintf(path, sizeof path, "%s.if", at);
        if ((rc = get_expr(L, v[K_IF], path, &nm_scope, TL_T_BOOL, &r->cond,
                           &txt->cond)))
            return rc;
    }
    if (v[K_MODE] && (v[K_MODE]->type != YAML_SCALAR_NODE ||
                      tl_rule_mode_parse(scalar(v[K_MODE]), &r->mode) != 0))
        return bad_choice(L, v[K_MODE], at, "mode", "every, edge, once");
    if (v[K_COOLDOWN]) {
        snprintf(path, sizeof path, "%s.cooldown", at);
        if ((rc = get_duration(L, v[K_COOLDOWN], path, 0, 0, &r->cooldown_ms)))
            return rc;
    }
    if (v[K_CAP] && (rc = load_cap(L, v[K_CAP], at, r, &cap_channel)))
        return rc;
    if (v[K_QUIET] &&
        (rc = load_quiet(L, v[K_QUIET], at, r, txt, &nm_scope, &tz)))
        return rc;
    if (v[K_PRIORITY]) {
        snprintf(path, sizeof path, "%s.priority", at);
        if ((rc = get_int(L, v[K_PRIORITY], path, -PRIORITY_MAX, PRIORITY_MAX,
                          &x)))
            return rc;
        r->priority = (int)x;
    }
    if (v[K_GROUP]) {
        snprintf(path, sizeof path, "%s.group", at);
        if ((rc = get_str(L, v[K_GROUP], path, 0, &r->group)) ||
            (rc = check_group(L, v[K_GROUP], path, r->group)))
            return rc;
    }
    if (v[K_HOLDOUT]) {
        snprintf(path, sizeof path, "%s.holdout", at);
        if ((rc = get_share(L, v[K_HOLDOUT], path, &r->holdout))) return rc;
    }

    if (!v[K_EMIT])
        return fail_node(L, n,
                         "%s: missing required key 'emit' (the trigger's "
                         "message and channel)",
                         at);
    snprintf(path, sizeof path, "%s.emit", at);
    if ((rc = want_map(L, v[K_EMIT], path,
                       "a mapping with message and optional channel, "
                       "attrs")) ||
        (rc = read_map(L, v[K_EMIT], path, ekeys, 3, e)))
        return rc;
    if (e[0]) {
        if ((rc = get_channel(L, e[0], path, &r->channel))) return rc;
        r->has_channel = 1;
    }
    if (!e[1])
        return fail_node(L, v[K_EMIT],
                         "%s: missing required key 'message' (the text sent, "
                         "with {{name}} placeholders)",
                         path);
    snprintf(path, sizeof path, "%s.emit.message", at);
    yaml_node_t *m = e[1];
    if (m->type != YAML_SCALAR_NODE || is_null(m) || !scalar_len(m))
        return fail_node(L, m, "%s: expected a non-empty message, got %s", path,
                         describe(m, got, sizeof got));
    size_t off = 0;
    if (tl_template_compile(&r->message, scalar(m), scalar_len(m), &nm_scope,
                            &off, msg, sizeof msg) != TL_OK) {
        size_t line, col;
        scalar_pos(L, m, off, &line, &col);
        return fail_at(L, line, col, "%s: %s", path, msg);
    }
    txt->message = tl_xstrndup(scalar(m), scalar_len(m));
    if (e[2] && (rc = load_attrs(L, e[2], at, r, txt, &nm_scope))) return rc;

    /* The cap counts the triggers of one channel: its own, or the one the
     * rule emits on (the event's channel would differ from event to
     * event). */
    if (r->has_cap && !cap_channel) {
        if (!r->has_channel)
            return fail_node(L, v[K_CAP],
                             "%s.cap: cap needs a channel (or emit.channel)",
                             at);
        r->cap.channel = r->channel;
    }

    rule_version(L, n, r->version);
    if (tl_rule_finish(r, msg, sizeof msg) != TL_OK) {
        /* An unknown zone in quiet_hours.tz: at the zone's name. */
        yaml_node_t *where = n;
        if (tz && r->quiet.tz_name &&
            (!strncmp(msg, "quiet_hours.tz", 14) ||
             strstr(msg, r->quiet.tz_name)))
            where = tz;
        return fail_node(L, where, "%s (%s): %s", at, r->name, msg);
    }
    return TL_OK;
}

static int load_triggers(loader *L, yaml_node_t *n)
{
    tl_config *c = L->c;
    char got[96];
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_node(L, n, "triggers: expected a list of triggers, got %s",
                         describe(n, got, sizeof got));
    size_t cnt = seq_len(n);
    L->triggers = n;
    c->rules = tl_xcalloc(cnt ? cnt : 1, sizeof *c->rules);
    c->text->rules = tl_xcalloc(cnt ? cnt : 1, sizeof *c->text->rules);
    L->rname = tl_xcalloc(cnt ? cnt : 1, sizeof *L->rname);
    tl_names names = {c->features, c->nfeatures};
    for (size_t i = 0; i < cnt; i++) {
        c->nrules = i + 1;
        int rc = load_trigger(L, seq_item(L, n, i), i, &names);
        if (rc) return rc;
    }
    return TL_OK;
}

static int load_root(loader *L, yaml_node_t *root)
{
    static const char *const keys[] = {"kafka", "redis", "events", "state",
                                       "daemon", "log", "http", "features",
                                       "triggers"};
    static int (*const loaders[])(loader *, yaml_node_t *) = {
        load_kafka, load_redis, load_events, load_state,
        load_daemon, load_log, load_http, load_features, load_triggers};
    enum { NSECTIONS = sizeof keys / sizeof keys[0] };
    yaml_node_t *v[NSECTIONS];
    char got[96], msg[TL_ERRSZ];
    if (root->type != YAML_MAPPING_NODE)
        return fail_node(L, root,
                         "expected a mapping of sections (kafka, redis, "
                         "events, state, daemon, log, http, features, triggers) "
                         "at the top "
                         "level, got %s",
                         describe(root, got, sizeof got));
    int rc = read_map(L, root, NULL, keys, NSECTIONS, v);
    /* Fixed order: triggers need every feature, wherever they are written. */
    for (size_t i = 0; !rc && i < NSECTIONS; i++)
        if (v[i] && !is_null(v[i])) rc = loaders[i](L, v[i]);
    if (rc) return rc;
    tl_config *c = L->c;
    /* Each customer key lives as long as its longest-lived value. */
    c->key_ttl_ms = c->redis_ttl_ms;
    for (size_t i = 0; c->key_ttl_ms && i < c->nfeatures; i++)
        if (c->features[i].ttl_ms > c->key_ttl_ms)
            c->key_ttl_ms = c->features[i].ttl_ms;
    /* The block: features, then the rules' slices and the cap ledgers. */
    size_t end = tl_features_layout(c->features, c->nfeatures, 0);
    if (tl_ruleset_init(&c->ruleset, c->rules, c->nrules, end, msg,
                        sizeof msg) != TL_OK)
        return fail_node(L, L->triggers ? L->triggers : root, "triggers: %s",
                         msg);
    c->block_size = c->ruleset.end;
    return TL_OK;
}

/* ---- load -------------------------------------------------------------- */

static int syntax_error(loader *L, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return tl_errf(L->err, L->errsz, TL_ERR_NOMEM, "%s: out of memory",
                       L->name);
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark. */
        size_t line, col;
        offset_pos(L, p->problem_offset, &line, &col);
        return fail_at(L, line, col, "YAML error: %s",
                       p->problem ? p->problem : "cannot read");
    }
    if (p->context)
        return fail_mark(L, p->problem_mark,
                         "YAML syntax error: %s (%s at %zu:%zu)",
                         p->problem ? p->problem : "invalid YAML", p->context,
                         p->context_mark.line + 1, p->context_mark.column + 1);
    return fail_mark(L, p->problem_mark, "YAML syntax error: %s",
                     p->problem ? p->problem : "invalid YAML");
}

static tl_config *new_config(const char *path)
{
    tl_config *c = tl_xcalloc(1, sizeof *c);
    c->path = tl_xstrdup(path);
    c->brokers = tl_xstrdup("localhost:9092");
    c->group = tl_xstrdup("tailord");
    c->inputs = tl_xcalloc(1, sizeof *c->inputs);
    c->inputs[0] = tl_xstrdup("interactions");
    c->ninputs = 1;
    c->output = tl_xstrdup("triggers");
    c->dead_letter = tl_xstrdup("interactions.dlq");
    c->audit = tl_xstrdup("tailor.audit");
    c->batch_size = 1000;
    c->batch_timeout_ms = 100;
    c->redis_url = tl_xstrdup("redis://127.0.0.1:6379/0");
    c->redis_prefix = tl_xstrdup("tailor:");
    c->redis_ttl_ms = INT64_C(400) * 86400000;
    c->redis_timeout_ms = 2000;
    c->format = TL_FMT_AVRO;
    c->schema_json = tl_xstrdup(tl_schema_interaction_event);
    c->max_lateness_ms = 3600000;
    c->cache_size = 100000;
    c->shutdown_timeout_ms = 10000;
    c->log_level = TL_LOG_INFO;
    c->text = tl_xcalloc(1, sizeof *c->text);
    return c;
}

static void env_override(char **field, const char *var)
{
    const char *v = getenv(var);
    if (v && *v) {
        free(*field);
        *field = tl_xstrdup(v);
    }
}

static tl_config *load(const char *text, size_t len, const char *name,
                       const char *dir, const char *path, char *err,
                       size_t errsz)
{
    loader L = {.name = name, .src = text, .srclen = len, .dir = dir,
                .err = err, .errsz = errsz};
    yaml_parser_t parser;
    int rc = TL_ERR_CONFIG, have_doc = 0;
    L.c = new_config(path);
    snprintf(L.c->version, sizeof L.c->version, "%016llx",
             (unsigned long long)tl_fnv1a(TL_FNV_OFFSET, text, len));
    if (!yaml_parser_initialize(&parser)) {
        rc = tl_errf(err, errsz, TL_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &L.doc)) {
        rc = syntax_error(&L, &parser);
        yaml_parser_delete(&parser);
        goto done;
    }
    have_doc = 1;
    index_lines(&L);
    yaml_node_t *root = yaml_document_get_root_node(&L.doc);
    if (!root) {
        rc = fail_at(&L, 1, 1,
                     "empty configuration (expected a mapping of sections: "
                     "kafka, redis, events, state, daemon, log, http, features, "
                     "triggers)");
        yaml_parser_delete(&parser);
        goto done;
    }
    /* Anything after the first document is a mistake, not something to
     * ignore silently. */
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        rc = syntax_error(&L, &parser);
        yaml_parser_delete(&parser);
        goto done;
    }
    yaml_node_t *xroot = yaml_document_get_root_node(&extra);
    if (xroot)
        rc = fail_node(&L, xroot,
                       "a second YAML document (expected the configuration "
                       "to be one document)");
    yaml_document_delete(&extra);
    yaml_parser_delete(&parser);
    if (xroot) goto done;

    rc = expand_env(&L);
    if (rc == TL_OK) rc = load_root(&L, root);
    if (rc == TL_OK) {
        env_override(&L.c->brokers, "TAILOR_KAFKA_BROKERS");
        env_override(&L.c->redis_url, "TAILOR_REDIS_URL");
    }
done:
    if (have_doc) yaml_document_delete(&L.doc);
    free(L.fname);
    free(L.fnode);
    free(L.fof);
    free(L.rname);
    free(L.lines);
    if (rc != TL_OK) {
        tl_config_free(L.c);
        return NULL;
    }
    return L.c;
}

static char *read_config_file(const char *path, size_t *len, char *err,
                              size_t errsz)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        tl_errf(err, errsz, TL_ERR_IO, "%s: cannot open configuration: %s",
                path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = tl_xmalloc(cap);
    int bad = 0;
    for (;;) {
        if (n + 1 >= cap) buf = tl_xrealloc(buf, cap *= 2);
        errno = 0;
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            bad = ferror(f) ? (errno ? errno : EIO) : 0;
            break;
        }
    }
    fclose(f);
    if (bad) {
        tl_errf(err, errsz, TL_ERR_IO, "%s: cannot read configuration: %s",
                path, strerror(bad));
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

tl_config *tl_config_load(const char *path, char *err, size_t errsz)
{
    size_t len;
    char *text = read_config_file(path, &len, err, errsz);
    if (!text) return NULL;
    const char *slash = strrchr(path, '/');
    char *dir = tl_xstrndup(path, slash ? (size_t)(slash - path) + 1 : 0);
    tl_config *c = load(text, len, path, dir, path, err, errsz);
    free(dir);
    free(text);
    return c;
}

tl_config *tl_config_load_string(const char *text, size_t len,
                                 const char *name, char *err, size_t errsz)
{
    if (!name) name = "<string>";
    return load(text, len, name, "", name, err, errsz);
}

void tl_config_free(tl_config *c)
{
    if (!c) return;
    free(c->path);
    free(c->brokers);
    free(c->group);
    for (size_t i = 0; i < c->ninputs; i++) free(c->inputs[i]);
    free(c->inputs);
    free(c->output);
    free(c->dead_letter);
    free(c->audit);
    for (size_t i = 0; i < c->nproperties; i++) {
        free(c->properties[i].key);
        free(c->properties[i].val);
    }
    free(c->properties);
    free(c->redis_url);
    free(c->redis_prefix);
    free(c->http_listen);
    free(c->http_token);
    free(c->schema_json);
    free(c->writer_schema_json);
    for (size_t i = 0; i < c->nfeatures; i++) tl_feature_clear(&c->features[i]);
    free(c->features);
    tl_ruleset_clear(&c->ruleset);
    for (size_t i = 0; i < c->nrules; i++) tl_rule_clear(&c->rules[i]);
    free(c->rules);
    if (c->text) {
        for (size_t i = 0; c->text->features && i < c->nfeatures; i++) {
            free(c->text->features[i].where);
            free(c->text->features[i].field);
        }
        for (size_t i = 0; c->text->rules && i < c->nrules; i++) {
            free(c->text->rules[i].when);
            free(c->text->rules[i].cond);
            free(c->text->rules[i].message);
            free(c->text->rules[i].tz);
            for (size_t j = 0; j < c->text->rules[i].nattrs; j++)
                free(c->text->rules[i].attrs[j]);
            free(c->text->rules[i].attrs);
        }
        free(c->text->features);
        free(c->text->rules);
        free(c->text);
    }
    free(c);
}

/* ---- reload ------------------------------------------------------------ */

static int str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

int tl_config_reloadable(const tl_config *cur, const tl_config *next,
                         int force, char *err, size_t errsz)
{
    const char *what = NULL;
    if (str_differs(cur->brokers, next->brokers)) what = "kafka.brokers";
    else if (str_differs(cur->group, next->group)) what = "kafka.group";
    else if (cur->ninputs != next->ninputs) what = "kafka.input";
    else if (cur->nproperties != next->nproperties) what = "kafka.properties";
    else if (str_differs(cur->redis_url, next->redis_url)) what = "redis.url";
    else if (str_differs(cur->redis_prefix, next->redis_prefix))
        what = "redis.prefix";
    else if (cur->redis_timeout_ms != next->redis_timeout_ms)
        what = "redis.timeout";
    /* The endpoint follows a new token, but its socket stays bound. */
    else if (str_differs(cur->http_listen, next->http_listen))
        what = "http.listen";
    for (size_t i = 0; !what && i < cur->ninputs; i++)
        if (strcmp(cur->inputs[i], next->inputs[i])) what = "kafka.input";
    for (size_t i = 0; !what && i < cur->nproperties; i++)
        if (strcmp(cur->properties[i].key, next->properties[i].key) ||
            strcmp(cur->properties[i].val, next->properties[i].val))
            what = "kafka.properties";
    if (what)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "%s: %s changed, which needs a restart (connections "
                       "are not reopened by a reload); the running "
                       "configuration stays",
                       next->path ? next->path : "", what);
    char list[512] = "";
    size_t n = 0;
    for (size_t i = 0; i < cur->nfeatures; i++) {
        const tl_feature *f = &cur->features[i], *g = NULL;
        for (size_t j = 0; !g && j < next->nfeatures; j++)
            if (!strcmp(next->features[j].name, f->name)) g = &next->features[j];
        if (g && g->kind == f->kind) continue;
        const tl_feature_kind_info *ki = tl_feature_kind_get(f->kind);
        const tl_feature_kind_info *gi = g ? tl_feature_kind_get(g->kind) : NULL;
        size_t l = strlen(list);
        if (g)
            snprintf(list + l, sizeof list - l, "%s%s (%s -> %s)",
                     n ? ", " : "", f->name, ki ? ki->name : "?",
                     gi ? gi->name : "?");
        else
            snprintf(list + l, sizeof list - l, "%s%s (removed)",
                     n ? ", " : "", f->name);
        n++;
    }
    if (n && !force)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "%s: refused: feature%s %s; stored state would be "
                       "misread or left behind (rename the feature instead, "
                       "or reload with force: tailord --force)",
                       next->path ? next->path : "", n > 1 ? "s" : "", list);
    if (n)
        tl_warn("config", "reload with force: feature%s %s (their stored "
                "state is read by the new kind where it parses, reset where "
                "it does not)", n > 1 ? "s" : "", list);
    return TL_OK;
}

/* ---- summary ----------------------------------------------------------- */

int tl_config_is_secret_key(const char *key)
{
    static const char *const words[] = {"password", "secret", "token",
                                        "sasl.jaas"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strcasestr(key, words[i])) return 1;
    return 0;
}

/* Writes url with the password (or, without a ':', all of the user info)
 * replaced by ***.  The user info ends at the last '@' before any query. */
static void put_masked_url(FILE *out, const char *url)
{
    const char *sep = strstr(url, "://");
    if (!sep) {
        fputs(url, out);
        return;
    }
    const char *ui = sep + 3, *q = strchr(ui, '?'), *at = NULL;
    for (const char *p = ui; *p && (!q || p < q); p++)
        if (*p == '@') at = p;
    const char *rest = url;
    if (at) {
        const char *colon = memchr(ui, ':', (size_t)(at - ui));
        const char *from = colon ? colon + 1 : ui;
        fwrite(url, 1, (size_t)(from - url), out);
        fputs("***", out);
        rest = at;
    }
    /* A password may also come as a query parameter. */
    const char *pw = q ? strstr(q, "password=") : NULL;
    if (pw) {
        fwrite(rest, 1, (size_t)(pw + 9 - rest), out);
        fputs("***", out);
        rest = pw + 9 + strcspn(pw + 9, "&");
    }
    fputs(rest, out);
}

void tl_config_print_summary(const tl_config *c, FILE *out)
{
    char d1[32], d2[32];
    fprintf(out, "configuration %s\n", c->path ? c->path : "");
    fprintf(out,
            "kafka\n  brokers        %s\n  group          %s\n"
            "  input          ",
            c->brokers, c->group);
    for (size_t i = 0; i < c->ninputs; i++)
        fprintf(out, "%s%s", i ? ", " : "", c->inputs[i]);
    fprintf(out, "\n  output         %s\n  dead letters   %s\n"
            "  audit          %s\n", c->output, c->dead_letter, c->audit);
    for (size_t i = 0; i < c->nproperties; i++)
        fprintf(out, "  property       %s = %s\n", c->properties[i].key,
                tl_config_is_secret_key(c->properties[i].key)
                    ? "***"
                    : c->properties[i].val);
    fprintf(out, "  batches        up to %d events or %s\n", c->batch_size,
            fmt_duration(c->batch_timeout_ms, d1, sizeof d1));
    fputs("redis\n  url            ", out);
    put_masked_url(out, c->redis_url);
    fprintf(out,
            "\n  prefix         '%s'\n  ttl            %s\n"
            "  timeout        %s\n",
            c->redis_prefix,
            c->redis_ttl_ms ? fmt_duration(c->redis_ttl_ms, d1, sizeof d1)
                            : "none (keys never expire)",
            fmt_duration(c->redis_timeout_ms, d2, sizeof d2));
    if (c->key_ttl_ms != c->redis_ttl_ms)
        fprintf(out, "  key ttl        %s (the longest feature ttl)\n",
                fmt_duration(c->key_ttl_ms, d1, sizeof d1));
    fprintf(out, "events\n  format         %s\n  schema         %s\n",
            c->format == TL_FMT_JSON ? "json" : "avro",
            c->schema_json &&
                    !strcmp(c->schema_json, tl_schema_interaction_event)
                ? "built-in interaction_event"
                : "from events.schema");
    if (c->writer_schema_json)
        fputs("  writer schema  from events.writer_schema\n", out);
    fprintf(out, "  max lateness   %s\n",
            fmt_duration(c->max_lateness_ms, d1, sizeof d1));
    fprintf(out, "state\n  cache          %zu customers, %zu bytes each\n",
            c->cache_size, c->block_size);
    fprintf(out, "daemon\n  shutdown       within %s\n",
            fmt_duration(c->shutdown_timeout_ms, d1, sizeof d1));
    fprintf(out, "log\n  level          %s\n  format         %s\n",
            tl_log_level_name(c->log_level),
            tl_log_format_name(c->log_format));
    fprintf(out, "http\n  listen         %s\n  token          %s\n",
            c->http_listen ? c->http_listen : "(off)",
            c->http_token ? "(set)" : "(none)");

    fprintf(out, "features (%zu)\n", c->nfeatures);
    for (size_t i = 0; i < c->nfeatures; i++) {
        const tl_feature *f = &c->features[i];
        const feat_text *t =
            c->text && c->text->features ? &c->text->features[i] : NULL;
        const tl_feature_kind_info *ki = tl_feature_kind_get(f->kind);
        fprintf(out, "  %-20s %-13s", f->name, ki ? ki->name : "?");
        if (t && t->field) fprintf(out, " field %s", t->field);
        if (f->window_ms)
            fprintf(out, " window %s by %s",
                    fmt_duration(f->window_ms, d1, sizeof d1),
                    fmt_duration(f->resolution_ms, d2, sizeof d2));
        if (f->k) fprintf(out, " k %u", (unsigned)f->k);
        if (f->capacity) fprintf(out, " capacity %u", (unsigned)f->capacity);
        if (f->n) fprintf(out, " n %u", (unsigned)f->n);
        if (f->exact_up_to)
            fprintf(out, " exact_up_to %u", (unsigned)f->exact_up_to);
        if (f->precision) fprintf(out, " precision %u", (unsigned)f->precision);
        if (f->half_life_ms)
            fprintf(out, " half_life %s",
                    fmt_duration(f->half_life_ms, d1, sizeof d1));
        if (ki && ki->of != TL_OPT_NO && f->of >= 0 &&
            (size_t)f->of < c->nfeatures)
            fprintf(out, " of %s", c->features[f->of].name);
        if (f->ttl_ms)
            fprintf(out, " ttl %s", fmt_duration(f->ttl_ms, d1, sizeof d1));
        if (t && t->where) fprintf(out, " where %s", t->where);
        fputc('\n', out);
    }
    fprintf(out, "triggers (%zu)\n", c->nrules);
    for (size_t i = 0; i < c->nrules; i++) {
        const tl_rule *r = &c->rules[i];
        const rule_text *t =
            c->text && c->text->rules ? &c->text->rules[i] : NULL;
        fprintf(out, "  %-20s mode %s", r->name, tl_rule_mode_name(r->mode));
        if (r->cooldown_ms)
            fprintf(out, ", cooldown %s",
                    fmt_duration(r->cooldown_ms, d1, sizeof d1));
        fprintf(out, ", channel %s\n",
                r->has_channel ? tl_channel_name(r->channel) : "(the event's)");
        if (t && t->when) fprintf(out, "    when     %s\n", t->when);
        if (t && t->cond) fprintf(out, "    if       %s\n", t->cond);
        if (t && t->message) fprintf(out, "    message  %s\n", t->message);
        for (size_t j = 0; j < r->nattrs; j++)
            fprintf(out, "    attr     %s = %s\n", r->attrs[j].key,
                    t && j < t->nattrs && t->attrs[j] ? t->attrs[j] : "");
        if (r->has_cap)
            fprintf(out, "    cap      %u per %s on %s\n", (unsigned)r->cap.max,
                    fmt_duration(r->cap.per_ms, d1, sizeof d1),
                    tl_channel_name(r->cap.channel));
        if (r->has_quiet) {
            const tl_quiet *q = &r->quiet;
            fprintf(out, "    quiet    %02d:%02d to %02d:%02d, ", q->from_min / 60,
                    q->from_min % 60, q->to_min / 60, q->to_min % 60);
            if (q->tz_name) fprintf(out, "tz %s\n", q->tz_name);
            else fprintf(out, "tz from %s\n", t && t->tz ? t->tz : "?");
        }
        if (r->group)
            fprintf(out, "    group    %s, priority %d\n", r->group,
                    r->priority);
        else if (r->priority)
            fprintf(out, "    priority %d\n", r->priority);
        if (r->holdout > 0) {
            char num[TL_NUMBUF];
            tl_fmt_number(num, r->holdout * 100);
            fprintf(out, "    holdout  %s%% (control group, not acted on)\n",
                    num);
        }
        fprintf(out, "    version  %s\n", r->version);
    }
}
