/*
 * config_yaml — reading the libyaml document of tailord.yaml: messages at
 * FILE:LINE:COL, typed values (strings, integers, durations, mappings with
 * known keys, names, expressions), and positions inside scalars.
 *
 * Every node keeps the start mark libyaml gave it, so every message can
 * name FILE:LINE:COL.  Expressions and templates report a byte offset
 * inside the *decoded* scalar; to turn that into a file position the scalar
 * is decoded a second time from the raw text (srcmap below), recording
 * where each decoded byte came from.
 */
#include "config_int.h"

#include <stdarg.h>
#include <string.h>
#include <yaml.h>

#include "common.h"

#define MAX_KEYS 16 /* the most keys one mapping may allow */
#define NAME_MAX_LEN 64 /* feature, trigger and group names */

/* ---- errors ------------------------------------------------------------- */

int tl_config_yaml_fail_at(loader *L, size_t line, size_t col, const char *fmt,
                           ...)
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

const char *tl_config_yaml_describe(const yaml_node_t *n, char *buf,
                                    size_t size)
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
void tl_config_yaml_index_lines(loader *L)
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
int tl_config_yaml_mark_offset(const loader *L, yaml_mark_t m, size_t *out)
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
void tl_config_yaml_offset_pos(const loader *L, size_t off, size_t *line,
                               size_t *col)
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
void tl_config_yaml_scalar_pos(const loader *L, const yaml_node_t *n,
                               size_t off, size_t *line, size_t *col)
{
    *line = n->start_mark.line + 1;
    *col = n->start_mark.column + 1;
    size_t p;
    if (!L->src || tl_config_yaml_mark_offset(L, n->start_mark, &p) != 0)
        return;
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
        tl_config_yaml_offset_pos(L, raw, line, col);
    }
    free(m.out);
    free(m.at);
    free(m.atend);
}

int tl_config_yaml_fail_in(loader *L, const yaml_node_t *n, size_t off,
                           const char *fmt, ...)
{
    char msg[1024];
    size_t line, col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tl_config_yaml_scalar_pos(L, n, off, &line, &col);
    return tl_config_yaml_fail_at(L, line, col, "%s", msg);
}

/* ---- typed values -------------------------------------------------------- */

int tl_config_yaml_str(loader *L, const yaml_node_t *n, const char *path,
                       int allow_empty, char **out)
{
    char got[96];
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail_node(L, n, "%s: expected a %sstring, got %s", path,
                         allow_empty ? "" : "non-empty ",
                         tl_config_yaml_describe(n, got, sizeof got));
    if (memchr(scalar(n), '\0', scalar_len(n)))
        return fail_node(L, n, "%s: expected a string without NUL characters",
                         path);
    if (!allow_empty && !scalar_len(n))
        return fail_node(L, n, "%s: expected a non-empty string, got ''", path);
    free(*out);
    *out = tl_xstrndup(scalar(n), scalar_len(n));
    return TL_OK;
}

int tl_config_yaml_int(loader *L, const yaml_node_t *n, const char *path,
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
                         tl_config_yaml_describe(n, got, sizeof got));
    *out = v;
    return TL_OK;
}

/* positive: the duration must be above 0; max: upper bound or 0 for none
 * (timeouts end up as int milliseconds in librdkafka and hiredis calls). */
int tl_config_yaml_duration(loader *L, const yaml_node_t *n, const char *path,
                            int positive, int64_t max, int64_t *out)
{
    char got[96];
    int64_t v;
    int rc = n->type == YAML_SCALAR_NODE && !is_null(n)
                 ? tl_config_duration_parse(scalar(n), scalar_len(n), &v)
                 : -1;
    if (rc == -2)
        return fail_node(L, n, "%s: duration %s is too large", path,
                         tl_config_yaml_describe(n, got, sizeof got));
    if (rc != 0)
        return fail_node(L, n,
                         "%s: bad duration %s (expected a number and a unit: "
                         "ms, s, m, h, d, w; e.g. 30d, 12h, 500ms)",
                         path, tl_config_yaml_describe(n, got, sizeof got));
    if (positive && v == 0)
        return fail_node(L, n, "%s: expected a duration above 0, got '0'",
                         path);
    if (max && v > max) {
        char d[32];
        return fail_node(L, n, "%s: expected a duration of at most %s, got %s",
                         path, tl_config_duration_fmt(max, d, sizeof d),
                         tl_config_yaml_describe(n, got, sizeof got));
    }
    *out = v;
    return TL_OK;
}

/* `where` names the mapping in messages ("kafka", "features[2]"); NULL for
 * the top level, whose keys are sections. */
int tl_config_yaml_map_keys(loader *L, yaml_node_t *map, const char *where,
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
                             where ? where : "",
                             tl_config_yaml_describe(k, got, sizeof got));
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
                                 tl_config_yaml_describe(k, got, sizeof got),
                                 list);
            return fail_node(L, k, "unknown key %s in %s (expected one of: %s)",
                             tl_config_yaml_describe(k, got, sizeof got),
                             where, list);
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

int tl_config_yaml_map(loader *L, yaml_node_t *map, const char *where,
                       const char *const *keys, size_t nkeys,
                       yaml_node_t **vals)
{
    return tl_config_yaml_map_keys(L, map, where, keys, nkeys, vals, NULL);
}

/* A section or list item that must be a mapping; null counts as absent. */
int tl_config_yaml_want_map(loader *L, yaml_node_t *n, const char *path,
                            const char *what)
{
    char got[96];
    if (n->type == YAML_MAPPING_NODE) return TL_OK;
    return fail_node(L, n, "%s: expected %s, got %s", path, what,
                     tl_config_yaml_describe(n, got, sizeof got));
}

/* A value outside a fixed set: "PATH.KEY: unknown KEY 'x' (expected one of:
 * LIST)", or, for no value or a non-scalar, "expected one of: LIST, got
 * ...". */
int tl_config_yaml_choice(loader *L, const yaml_node_t *n, const char *at,
                          const char *key, const char *list)
{
    char got[96];
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail_node(L, n, "%s.%s: expected one of: %s, got %s", at, key,
                         list, tl_config_yaml_describe(n, got, sizeof got));
    return fail_node(L, n, "%s.%s: unknown %s %s (expected one of: %s)", at,
                     key, key, tl_config_yaml_describe(n, got, sizeof got),
                     list);
}

static const char *const keywords[] = {"and", "or", "not", "true", "false",
                                       "null", "in"};

/* [a-z][a-z0-9_]*, or for a group [a-z_][a-z0-9_]*. */
static int name_chars(const char *s, size_t len, int group)
{
    int ok = len > 0 &&
             ((s[0] >= 'a' && s[0] <= 'z') || (group && s[0] == '_'));
    for (size_t i = 1; ok && i < len; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
             s[i] == '_';
    return ok;
}

static int name_length(loader *L, const yaml_node_t *n, const char *path,
                       size_t len)
{
    if (len > NAME_MAX_LEN)
        return fail_node(L, n, "%s: name is %zu characters long (at most %d)",
                         path, len, NAME_MAX_LEN);
    return TL_OK;
}

int tl_config_yaml_name(loader *L, const yaml_node_t *n, const char *path,
                        const char *s, int is_feature)
{
    size_t len = strlen(s);
    char got[96];
    int rc;
    if (s[0] == '_') /* described: quoted, cut at 60 characters */
        return fail_node(L, n,
                         "%s: name %s starts with '_', which is reserved for "
                         "internal Redis fields",
                         path, tl_config_yaml_describe(n, got, sizeof got));
    if (!name_chars(s, len, 0))
        return fail_node(L, n,
                         "%s: bad name %s (expected lowercase letters, digits "
                         "and '_', starting with a letter)",
                         path, tl_config_yaml_describe(n, got, sizeof got));
    if ((rc = name_length(L, n, path, len))) return rc;
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

int tl_config_yaml_group(loader *L, const yaml_node_t *n, const char *path,
                         const char *s)
{
    char got[96];
    size_t len = strlen(s);
    if (!name_chars(s, len, 1))
        return fail_node(L, n,
                         "%s: bad group name %s (expected lowercase letters, "
                         "digits and '_', not starting with a digit)",
                         path, tl_config_yaml_describe(n, got, sizeof got));
    return name_length(L, n, path, len);
}

/* The earlier names are compared by their nodes' text, which is what the
 * names were copied from. */
int tl_config_yaml_unique_name(loader *L, yaml_node_t *n, yaml_node_t *name,
                               const char *at, int is_feature,
                               yaml_node_t **seen, size_t idx, char **out)
{
    char path[64];
    int rc;
    if (!name) return fail_node(L, n, "%s: missing required key 'name'", at);
    snprintf(path, sizeof path, "%s.name", at);
    if ((rc = tl_config_yaml_str(L, name, path, 0, out)) ||
        (rc = tl_config_yaml_name(L, name, path, *out, is_feature)))
        return rc;
    for (size_t i = 0; i < idx; i++)
        if (!strcmp(scalar(seen[i]), *out))
            return fail_node(L, name,
                             "%s: duplicate %s name '%s' (first at %zu:%zu)",
                             path, is_feature ? "feature" : "trigger", *out,
                             seen[i]->start_mark.line + 1,
                             seen[i]->start_mark.column + 1);
    seen[idx] = name;
    return TL_OK;
}

/* Compiles the expression in scalar n; errors point inside the scalar. */
int tl_config_yaml_expr(loader *L, const yaml_node_t *n, const char *path,
                        const tl_expr_scope *scope, tl_type want, tl_expr **out,
                        char **text)
{
    char got[96], msg[TL_ERRSZ];
    if (n->type != YAML_SCALAR_NODE || is_null(n) || !scalar_len(n))
        return fail_node(L, n, "%s: expected an expression, got %s", path,
                         tl_config_yaml_describe(n, got, sizeof got));
    size_t off = 0;
    tl_expr *e = tl_expr_compile(scalar(n), scalar_len(n), scope, want, &off,
                                 msg, sizeof msg);
    if (!e) return tl_config_yaml_fail_in(L, n, off, "%s: %s", path, msg);
    tl_expr_free(*out);
    *out = e;
    free(*text);
    *text = tl_xstrndup(scalar(n), scalar_len(n));
    return TL_OK;
}

