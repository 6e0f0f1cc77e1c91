/*
 * event_json_direct — the JSON events producers write, read in one pass
 * without jansson: tl_event_json_direct, tried first by tl_event_json.
 *
 * Why not jansson here: json_loadb builds a tree of mallocs (some 60 per
 * Online Retail event) that is then looked up by name and freed; reading
 * the flat object straight into the event and the arena allocates nothing
 * and is several times faster (docs/benchmarks.md, "JSON decoding").
 * Routing jansson's allocations into the arena instead would take
 * json_set_alloc_funcs, which is process-wide (the HTTP thread, the config
 * and tailorctl use jansson too), and would keep the tree, the hashing and
 * the lookups.
 *
 * jansson stays the reference (event_from_json.c): this reader takes only
 * the flat object (every value a string, number, true, false or null, attrs
 * an object of those) and says no to anything else (a nested value, an
 * escaped key, more than DIRECT_MAX attributes in attrs or beside it, a
 * number strtod or strtoll would not take exactly) and to every error; the
 * caller then reads the message with jansson, which gives the same event or
 * its own error message.  So acceptance and messages are jansson's by
 * construction, as long as this reader never says yes where jansson says
 * no, or to another event: test_event.c compares the two on every prefix
 * and mutation of fuzz/corpus/json.
 */
#include <math.h>
#include <string.h>

#include "event_int.h"

/* Attributes read per group (attrs, and the other top-level fields). */
#define DIRECT_MAX 64

typedef struct cur {
    const unsigned char *p, *end;
} cur;

enum kind { K_STR, K_INT, K_REAL, K_TRUE, K_FALSE, K_NULL };

/* A scalar as it is in the text; s..s+n is a string's inside. */
typedef struct val {
    enum kind kind;
    const char *s;
    size_t n;
    int esc; /* a string with escapes */
} val;

static void ws(cur *c)
{
    while (c->p < c->end &&
           (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(cur *c, char ch)
{
    ws(c);
    if (c->p == c->end || *c->p != (unsigned char)ch) return -1;
    c->p++;
    return 0;
}

/* A string at c->p (its quote): its extent, text valid UTF-8 without
 * control characters, escapes well formed (their code points are checked
 * when decoded). */
static int scan_string(cur *c, val *v)
{
    const unsigned char *p = c->p + 1;
    v->kind = K_STR;
    v->esc = 0;
    while (p < c->end && *p != '"') {
        if (*p == '\\') {
            v->esc = 1;
            if (++p == c->end) return -1;
            if (*p == 'u') {
                if (c->end - p < 5) return -1;
                for (int i = 1; i <= 4; i++)
                    if (tl_hexval((char)p[i]) < 0) return -1;
                p += 5;
            } else if (*p && strchr("\"\\/bfnrt", *p)) {
                p++;
            } else {
                return -1;
            }
        } else if (*p < 0x20) {
            return -1;
        } else if (*p < 0x80) {
            p++;
        } else {
            size_t k = tl_utf8_seq(p, (size_t)(c->end - p));
            if (!k) return -1;
            p += k;
        }
    }
    if (p == c->end) return -1;
    v->s = (const char *)c->p + 1;
    v->n = (size_t)(p - c->p - 1);
    c->p = p + 1;
    return 0;
}

static const unsigned char *digits(const unsigned char *p,
                                   const unsigned char *end)
{
    while (p < end && *p >= '0' && *p <= '9') p++;
    return p;
}

/* A number, by JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(cur *c, val *v)
{
    const unsigned char *p = c->p, *end = c->end, *q;
    if (p < end && *p == '-') p++;
    if (p < end && *p == '0')
        p++;
    else if ((q = digits(p, end)) > p)
        p = q;
    else
        return -1;
    v->kind = K_INT;
    if (p < end && *p == '.') {
        if ((q = digits(p + 1, end)) == p + 1) return -1;
        p = q;
        v->kind = K_REAL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if ((q = digits(p, end)) == p) return -1;
        p = q;
        v->kind = K_REAL;
    }
    v->s = (const char *)c->p;
    v->n = (size_t)(p - c->p);
    c->p = p;
    return 0;
}

static int scan_word(cur *c, const char *w, enum kind k, val *v)
{
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n)) return -1;
    c->p += n;
    v->kind = k;
    return 0;
}

/* A scalar value; -1 for anything else (objects, arrays, errors). */
static int scan_value(cur *c, val *v)
{
    ws(c);
    if (c->p == c->end) return -1;
    switch (*c->p) {
    case '"': return scan_string(c, v);
    case 't': return scan_word(c, "true", K_TRUE, v);
    case 'f': return scan_word(c, "false", K_FALSE, v);
    case 'n': return scan_word(c, "null", K_NULL, v);
    default: return scan_number(c, v);
    }
}

/* The next member's key of the object being read (after its '{'; *n
 * members so far): 1, 0 at the object's end, -1 when not taken. */
static int next_key(cur *c, size_t *n, val *key)
{
    ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 0;
    }
    if (*n && eat(c, ',')) return -1;
    ws(c);
    if (c->p == c->end || *c->p != '"' || scan_string(c, key) || key->esc ||
        eat(c, ':'))
        return -1;
    ++*n;
    return 1;
}

/* The four hex digits at s, and with them a surrogate pair's second half;
 * 0 for \u0000 and lone surrogates (jansson refuses both). */
static unsigned long code_point(const char *s, const char *end,
                                size_t *used)
{
    unsigned long cp = 0, lo = 0;
    for (int i = 0; i < 4; i++) cp = cp * 16 + (unsigned)tl_hexval(s[i]);
    *used = 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return 0;
    if (cp < 0xD800 || cp > 0xDBFF) return cp;
    if (end - s < 10 || s[4] != '\\' || s[5] != 'u') return 0;
    for (int i = 6; i < 10; i++) {
        int h = tl_hexval(s[i]);
        if (h < 0) return 0;
        lo = lo * 16 + (unsigned)h;
    }
    if (lo < 0xDC00 || lo > 0xDFFF) return 0;
    *used = 10;
    return 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
}

/* A string's text, unescaped, into the arena (NUL-terminated); NULL when
 * an escape is refused. */
static char *str_text(const val *v, tl_arena *arena, size_t *len)
{
    if (!v->esc) {
        *len = v->n;
        return tl_arena_strndup(arena, v->s, v->n);
    }
    char *o = tl_arena_alloc(arena, v->n + 1), *w = o;
    const char *s = v->s, *end = v->s + v->n;
    while (s < end) {
        if (*s != '\\') {
            *w++ = *s++;
            continue;
        }
        char e = s[1];
        s += 2;
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        if (e != 'u') {
            *w++ = to[strchr(from, e) - from];
            continue;
        }
        size_t used;
        unsigned long cp = code_point(s, end, &used);
        if (!cp) return NULL;
        w += tl_utf8_put(w, cp);
        s += used;
    }
    *w = 0;
    *len = (size_t)(w - o);
    return o;
}

/* A number as a double: what json_number_value gives (an integer through
 * long long); -1 for what jansson would refuse or read differently. */
static int num_value(const val *v, double *out)
{
    int64_t i;
    if (v->kind == K_INT) {
        if (tl_parse_i64(v->s, v->n, &i)) return -1;
        *out = (double)i;
        return 0;
    }
    return v->kind == K_REAL && !tl_parse_double(v->s, v->n, out) &&
                   isfinite(*out)
               ? 0
               : -1;
}

/* An attribute's value as tl_event_from_json has it (a string as it is,
 * numbers as jansson reads them in their compact text, true, false);
 * NULL for null.  -1 when not taken. */
static int attr_value(const val *v, tl_arena *arena, tl_attr *at)
{
    char num[TL_NUMBUF];
    double d;
    int64_t i;
    at->val = NULL;
    at->vallen = 0;
    switch (v->kind) {
    case K_STR: return (at->val = str_text(v, arena, &at->vallen)) ? 0 : -1;
    case K_INT:
        if (tl_parse_i64(v->s, v->n, &i)) return -1;
        at->vallen = (size_t)tl_fmt_i64(num, i);
        break;
    case K_REAL:
        if (num_value(v, &d)) return -1;
        at->vallen = (size_t)tl_fmt_double(num, d);
        break;
    case K_TRUE: at->val = "true"; at->vallen = 4; return 0;
    case K_FALSE: at->val = "false"; at->vallen = 5; return 0;
    case K_NULL: return 0;
    }
    at->val = tl_arena_strndup(arena, num, at->vallen);
    return 0;
}

/* Attributes read so far: [0] from attrs, [1] the other top-level
 * fields; keys point into the message until the event is assembled. */
typedef struct attrs {
    tl_attr a[2][DIRECT_MAX];
    size_t n[2];
} attrs;

static int add_attr(attrs *t, int g, const val *key, const val *v,
                    tl_arena *arena)
{
    if (t->n[g] == DIRECT_MAX) return -1;
    tl_attr *at = &t->a[g][t->n[g]++];
    at->key = key->s;
    at->keylen = key->n;
    return attr_value(v, arena, at);
}

/* The attrs object (after its '{'). */
static int read_attrs(cur *c, attrs *t, tl_arena *arena)
{
    size_t n = 0;
    val key, v;
    int more;
    while ((more = next_key(c, &n, &key)) == 1)
        if (scan_value(c, &v) || add_attr(t, 0, &key, &v, arena)) return -1;
    return more;
}

/* Both groups sorted, no key twice in one (jansson refuses duplicates),
 * merged into the event: an attrs entry wins over a top-level field of
 * the same name, even a null one; nulls are dropped. */
static int assemble(attrs *t, tl_arena *arena, tl_event *ev)
{
    for (int g = 0; g < 2; g++) {
        tl_event_attrs_isort(t->a[g], t->n[g]);
        for (size_t i = 1; i < t->n[g]; i++)
            if (!tl_event_attr_cmp(t->a[g][i - 1].key, t->a[g][i - 1].keylen,
                                   t->a[g][i].key, t->a[g][i].keylen))
                return -1;
    }
    tl_attr *out = tl_arena_alloc(arena, (t->n[0] + t->n[1]) * sizeof *out);
    size_t i = 0, j = 0, k = 0;
    while (i < t->n[0] || j < t->n[1]) {
        int cmp = i == t->n[0]   ? 1
                  : j == t->n[1] ? -1
                                 : tl_event_attr_cmp(t->a[0][i].key,
                                                     t->a[0][i].keylen,
                                                     t->a[1][j].key,
                                                     t->a[1][j].keylen);
        const tl_attr *at = cmp <= 0 ? &t->a[0][i++] : &t->a[1][j++];
        if (cmp == 0) j++;
        if (!at->val) continue;
        out[k] = *at;
        out[k++].key = tl_arena_strndup(arena, at->key, at->keylen);
    }
    ev->attrs = out;
    ev->nattrs = k;
    return 0;
}

/* A string or null for an optional text field. */
static int opt_str(const val *v, tl_arena *arena, const char **out,
                   size_t *len)
{
    size_t n = 0;
    if (v->kind == K_NULL) return 0;
    if (v->kind != K_STR || !(*out = str_text(v, arena, &n))) return -1;
    if (len) *len = n;
    return 0;
}

/* The value of event field f; -1 when it is not one jansson's reader would
 * take. */
static int set_field(int f, const val *v, tl_arena *arena, tl_event *ev)
{
    size_t n;
    const char *s;
    switch (f) {
    case F_EVENT_ID:
    case F_TYPE:
        if (v->kind != K_STR) return -1;
        return opt_str(v, arena, f == F_TYPE ? &ev->type : &ev->event_id,
                       NULL);
    case F_CUSTOMER_ID:
        return opt_str(v, arena, &ev->customer_id, &ev->customer_id_len);
    case F_ITEM: return opt_str(v, arena, &ev->item, NULL);
    case F_STORE: return opt_str(v, arena, &ev->store, NULL);
    case F_TS:
        if (v->kind == K_INT) return tl_parse_i64(v->s, v->n, &ev->ts);
        if (v->kind != K_STR || !(s = str_text(v, arena, &n))) return -1;
        return tl_parse_time(s, n, &ev->ts);
    case F_CHANNEL:
        return v->kind == K_STR && !v->esc
                   ? tl_channel_parse(v->s, v->n, &ev->channel)
                   : -1;
    case F_QUANTITY:
        if (v->kind == K_NULL) return 0;
        ev->has_quantity = 1;
        return num_value(v, &ev->quantity);
    case F_AMOUNT:
        if (v->kind == K_NULL) return 0;
        ev->has_amount = 1;
        return num_value(v, &ev->amount);
    }
    return -1;
}

/* The event field a key names, -1 for another (an attribute). */
static int field_of(const val *key)
{
    for (int f = 0; f < F__COUNT; f++) {
        const char *name = tl_event_schema_fields[f].name;
        /* The first byte first: strncmp per name was a tenth of the time. */
        if (key->n && name[0] == key->s[0] &&
            !strncmp(name, key->s, key->n) && !name[key->n])
            return f;
    }
    return -1;
}

int tl_event_json_direct(const char *json, size_t len, tl_arena *arena,
                         tl_event *ev)
{
    static const unsigned required = 1u << F_EVENT_ID | 1u << F_TS |
                                     1u << F_CHANNEL | 1u << F_TYPE;
    cur c = {(const unsigned char *)json, (const unsigned char *)json + len};
    attrs t;
    unsigned seen = 0;
    size_t n = 0;
    val key, v;
    int more, f;
    if (!json || eat(&c, '{')) return -1;
    t.n[0] = t.n[1] = 0;
    while ((more = next_key(&c, &n, &key)) == 1) {
        if ((f = field_of(&key)) < 0) {
            if (scan_value(&c, &v) || add_attr(&t, 1, &key, &v, arena))
                return -1;
            continue;
        }
        if (seen & 1u << f) return -1;
        seen |= 1u << f;
        if (f == F_ATTRS && !eat(&c, '{')) {
            if (read_attrs(&c, &t, arena)) return -1;
        } else if (scan_value(&c, &v) ||
                   (f == F_ATTRS ? v.kind != K_NULL
                                 : set_field(f, &v, arena, ev))) {
            return -1;
        }
    }
    ws(&c);
    if (more || c.p != c.end || (seen & required) != required) return -1;
    return assemble(&t, arena, ev);
}
