/*
 * expr.c: the expression module's public API (expr.h) and the evaluator,
 * which allocates nothing.  Lexing is in expr_lex.c, parsing and type
 * checking in expr_parse.c; expr_int.h holds what the three share.
 */
#include "expr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "expr_int.h"
#include "tz.h"

const char *tl_type_name(tl_type t)
{
    switch (t) {
    case TL_T_NULL: return "null";
    case TL_T_BOOL: return "bool";
    case TL_T_NUM: return "number";
    case TL_T_STR: return "string";
    case TL_T_LIST_NUM: return "list<number>";
    case TL_T_LIST_STR: return "list<string>";
    }
    return "unknown";
}

tl_expr *tl_expr_compile(const char *src, size_t len, const tl_expr_scope *scope,
                         tl_type want, size_t *err_offset, char *err,
                         size_t errsz)
{
    TL_ASSERT(src || len == 0);
    tl_expr *e = tl_xcalloc(1, sizeof *e);
    if (tl_expr_parse(e, src, len, scope, want, err_offset, err, errsz) == 0)
        return e;
    tl_expr_free(e); /* the nodes made before the error */
    return NULL;
}

tl_type tl_expr_type(const tl_expr *e) { return e->type; }

void tl_expr_vars(const tl_expr *e,
                  void (*fn)(void *ud, uint32_t var, const char *key), void *ud)
{
    for (size_t i = 0; i < e->nvars; i++)
        fn(ud, e->vars[i]->u.var.id, e->vars[i]->u.var.key);
}

void tl_expr_free(tl_expr *e)
{
    if (!e) return;
    node *n = e->all;
    while (n) {
        node *next = n->all;
        free(n->own);
        free(n);
        n = next;
    }
    free(e->vars);
    free(e);
}

/* ---- evaluation -------------------------------------------------------- */

static void eval(const node *n, tl_expr_fetch fetch, void *ud, tl_value *out);

/* and/or/not: null (and anything not bool) counts as false. */
static int truth(const node *n, tl_expr_fetch fetch, void *ud)
{
    tl_value v;
    eval(n, fetch, ud, &v);
    return v.type == TL_T_BOOL && v.u.b;
}

static int order(int op, int c)
{
    switch (op) {
    case OP_EQ: return c == 0;
    case OP_NE: return c != 0;
    case OP_LT: return c < 0;
    case OP_LE: return c <= 0;
    case OP_GT: return c > 0;
    default: return c >= 0;
    }
}

static int same_str(const char *a, size_t la, const char *b, size_t lb)
{
    return la == lb && (la == 0 || memcmp(a, b, la) == 0);
}

/* Whether list l holds x (of its element type). */
static int list_has(const tl_value *l, const tl_value *x)
{
    uint32_t n = l->u.list.n;
    if (l->type == TL_T_LIST_NUM && x->type == TL_T_NUM) {
        for (uint32_t i = 0; i < n; i++)
            if (tl_list_num(l, i) == x->u.num) return 1;
    } else if (l->type == TL_T_LIST_STR && x->type == TL_T_STR) {
        for (uint32_t i = 0; i < n; i++) {
            size_t len;
            const char *e = tl_list_str(l, i, &len);
            if (same_str(e, len, x->u.str.ptr, x->u.str.len)) return 1;
        }
    }
    return 0;
}

static int lists_equal(const tl_value *a, const tl_value *b)
{
    if (a->u.list.n != b->u.list.n) return 0;
    for (uint32_t i = 0; i < a->u.list.n; i++) {
        if (a->type == TL_T_LIST_NUM) {
            if (tl_list_num(a, i) != tl_list_num(b, i)) return 0;
        } else {
            size_t la, lb;
            const char *ea = tl_list_str(a, i, &la);
            const char *eb = tl_list_str(b, i, &lb);
            if (!same_str(ea, la, eb, lb)) return 0;
        }
    }
    return 1;
}

static void list_elem(const tl_value *l, uint32_t i, tl_value *out)
{
    if (l->type == TL_T_LIST_NUM) {
        out->type = TL_T_NUM;
        out->u.num = tl_list_num(l, i);
    } else {
        out->type = TL_T_STR;
        out->u.str.ptr = tl_list_str(l, i, &out->u.str.len);
    }
}

/* Naive search: haystacks are event fields and feature values, short. */
static int has_sub(const tl_value *s, const tl_value *sub)
{
    size_t n = s->u.str.len, m = sub->u.str.len;
    if (m == 0) return 1;
    for (size_t i = 0; m <= n && i <= n - m; i++)
        if (memcmp(s->u.str.ptr + i, sub->u.str.ptr, m) == 0) return 1;
    return 0;
}

/* Characters of UTF-8 text: bytes that do not continue a sequence. */
static size_t utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

/* lower(): the input cut to LOWER_MAX bytes on a character boundary, with
 * A-Z lowered into buf, or the input itself when it has no capital. */
static void lower(const tl_value *s, char *buf, tl_value *out)
{
    const char *in = s->u.str.ptr;
    size_t n = s->u.str.len;
    if (n > LOWER_MAX) {
        n = LOWER_MAX;
        /* Back off a cut multibyte sequence (at most 3 continuation bytes,
         * so that bytes that are not UTF-8 cannot empty the result). */
        for (int k = 0; k < 3 && ((unsigned char)in[n] & 0xc0) == 0x80; k++)
            n--;
    }
    out->type = TL_T_STR;
    out->u.str.ptr = in;
    out->u.str.len = n;
    size_t i = 0;
    while (i < n && !(in[i] >= 'A' && in[i] <= 'Z')) i++;
    if (i == n) return;
    for (i = 0; i < n; i++)
        buf[i] = in[i] >= 'A' && in[i] <= 'Z' ? (char)(in[i] - 'A' + 'a')
                                              : in[i];
    out->u.str.ptr = buf;
}

static void set_num(tl_value *out, double v)
{
    out->type = TL_T_NUM;
    out->u.num = v;
}

static void eval_call(const node *n, tl_expr_fetch fetch, void *ud,
                      tl_value *out)
{
    const node *a = n->kids;
    tl_value v, w;
    eval(a, fetch, ud, &v);
    switch ((enum fn_id)n->op) {
    case F_LEN:
        if (is_list(v.type))
            set_num(out, v.u.list.n);
        else if (v.type == TL_T_STR)
            set_num(out, (double)utf8_len(v.u.str.ptr, v.u.str.len));
        else
            break;
        return;
    case F_CONTAINS:
        out->type = TL_T_BOOL;
        out->u.b = 0;
        if (v.type == TL_T_NULL) return;
        eval(a->next, fetch, ud, &w);
        if (v.type == TL_T_STR)
            out->u.b = w.type == TL_T_STR && has_sub(&v, &w);
        else
            out->u.b = list_has(&v, &w);
        return;
    case F_COALESCE:
        for (a = a->next; v.type == TL_T_NULL && a; a = a->next)
            eval(a, fetch, ud, &v);
        *out = v;
        return;
    case F_LOWER:
        if (v.type != TL_T_STR) break;
        lower(&v, n->u.buf, out);
        return;
    case F_DAYS_SINCE:
        eval(a->next, fetch, ud, &w); /* "ts": now */
        if (v.type != TL_T_NUM || w.type != TL_T_NUM) break;
        set_num(out, (w.u.num - v.u.num) / 86400000.0);
        return;
    case F_HOUR:
    case F_WEEKDAY: {
        int m, wd;
        if (v.type != TL_T_NUM ||
            tl_tz_local_time(n->u.tz, v.u.num, &m, &wd) != 0)
            break;
        set_num(out, n->op == F_HOUR ? (double)(m / 60) : (double)wd);
        return;
    }
    }
    *out = TL_VALUE_NULL;
}

static int compare(int op, const tl_value *a, const tl_value *b)
{
    /* Types can differ at run time only through null, which compares false. */
    if (a->type != b->type) return 0;
    switch (a->type) {
    case TL_T_NUM:
        /* Direct comparisons, so that NaN compares unequal to everything. */
        switch (op) {
        case OP_EQ: return a->u.num == b->u.num;
        case OP_NE: return a->u.num != b->u.num;
        case OP_LT: return a->u.num < b->u.num;
        case OP_LE: return a->u.num <= b->u.num;
        case OP_GT: return a->u.num > b->u.num;
        default: return a->u.num >= b->u.num;
        }
    case TL_T_STR: {
        size_t la = a->u.str.len, lb = b->u.str.len;
        int c = memcmp(a->u.str.ptr, b->u.str.ptr, la < lb ? la : lb);
        if (c == 0) c = la < lb ? -1 : la > lb;
        return order(op, c);
    }
    case TL_T_BOOL:
        return order(op, (a->u.b != 0) - (b->u.b != 0));
    case TL_T_LIST_NUM:
    case TL_T_LIST_STR:
        /* Only == and != type-check for lists. */
        if (op == OP_EQ) return lists_equal(a, b);
        return op == OP_NE && !lists_equal(a, b);
    default:
        return 0;
    }
}

static void eval(const node *n, tl_expr_fetch fetch, void *ud, tl_value *out)
{
    switch ((node_kind)n->kind) {
    case N_LIT:
        *out = n->u.lit;
        return;
    case N_VAR:
        *out = TL_VALUE_NULL;
        if (fetch) fetch(ud, n->u.var.id, n->u.var.key, n->u.var.keylen, out);
        /* A value of another type than resolve promised would be read
         * through the wrong union member: treat it as absent instead. */
        if (out->type != n->type) *out = TL_VALUE_NULL;
        else if (out->type == TL_T_BOOL) out->u.b = out->u.b != 0;
        else if (is_list(out->type) && out->u.list.n && !out->u.list.base)
            *out = TL_VALUE_NULL;
        return;
    case N_NEG:
        eval(n->kids, fetch, ud, out);
        if (out->type == TL_T_NUM) out->u.num = -out->u.num;
        else *out = TL_VALUE_NULL;
        return;
    case N_NOT:
        out->type = TL_T_BOOL;
        out->u.b = !truth(n->kids, fetch, ud);
        return;
    case N_AND:
    case N_OR: {
        int stop = n->kind == N_OR; /* the value that decides the result */
        out->type = TL_T_BOOL;
        for (const node *k = n->kids; k; k = k->next) {
            if (truth(k, fetch, ud) == stop) {
                out->u.b = stop;
                return;
            }
        }
        out->u.b = !stop;
        return;
    }
    case N_ARITH: {
        tl_value v;
        eval(n->kids, fetch, ud, out);
        if (out->type != TL_T_NUM) break;
        double acc = out->u.num;
        for (const node *k = n->kids->next; k; k = k->next) {
            eval(k, fetch, ud, &v);
            if (v.type != TL_T_NUM) goto null;
            switch (k->link) {
            case OP_ADD: acc += v.u.num; break;
            case OP_SUB: acc -= v.u.num; break;
            case OP_MUL: acc *= v.u.num; break;
            default:
                /* Division by zero gives null ("no value"), not an infinity
                 * or NaN that would then flow into features and messages.
                 * Other overflows keep their IEEE result. */
                if (v.u.num == 0) goto null;
                acc /= v.u.num;
                break;
            }
        }
        out->type = TL_T_NUM;
        out->u.num = acc;
        return;
    }
    case N_CMP: {
        tl_value a, b;
        int r = 0;
        eval(n->kids, fetch, ud, &a);
        if (a.type != TL_T_NULL) {
            eval(n->kids->next, fetch, ud, &b);
            r = compare(n->op, &a, &b);
        }
        out->type = TL_T_BOOL;
        out->u.b = r;
        return;
    }
    case N_NULLTEST: {
        tl_value v;
        eval(n->kids, fetch, ud, &v);
        out->type = TL_T_BOOL;
        out->u.b = (v.type == TL_T_NULL) == (n->op == OP_EQ);
        return;
    }
    case N_INDEX: {
        tl_value l, i;
        eval(n->kids, fetch, ud, &l);
        if (!is_list(l.type)) break;
        eval(n->kids->next, fetch, ud, &i);
        /* Written so that NaN fails too. */
        if (i.type != TL_T_NUM || !(i.u.num >= 0 && i.u.num < l.u.list.n))
            break;
        uint32_t k = (uint32_t)i.u.num;
        if ((double)k != i.u.num) break; /* not a whole number */
        list_elem(&l, k, out);
        return;
    }
    case N_IN: {
        tl_value x, l;
        int r = 0;
        eval(n->kids, fetch, ud, &x);
        if (x.type != TL_T_NULL) {
            eval(n->kids->next, fetch, ud, &l);
            /* null on either side: false for `in` and `not in` alike */
            if (is_list(l.type)) r = list_has(&l, &x) != n->op;
        }
        out->type = TL_T_BOOL;
        out->u.b = r;
        return;
    }
    case N_CALL:
        eval_call(n, fetch, ud, out);
        return;
    }
null:
    *out = TL_VALUE_NULL;
}

void tl_expr_eval(const tl_expr *e, tl_expr_fetch fetch, void *ud,
                  tl_value *out)
{
    eval(e->root, fetch, ud, out);
}

void tl_expr_eval_node(const node *n, tl_expr_fetch fetch, void *ud,
                       tl_value *out)
{
    eval(n, fetch, ud, out);
}

int tl_expr_true(const tl_expr *e, tl_expr_fetch fetch, void *ud)
{
    tl_value v;
    eval(e->root, fetch, ud, &v);
    return v.type == TL_T_BOOL && v.u.b;
}

/* snprintf-like output: counts everything, stores what fits. */
typedef struct sink {
    char *buf;
    size_t size, n;
} sink;

static void put(sink *o, const char *s, size_t n)
{
    if (o->size > o->n + 1 && n) {
        size_t room = o->size - 1 - o->n;
        memcpy(o->buf + o->n, s, n < room ? n : room);
    }
    o->n += n;
}

static void put_scalar(sink *o, const tl_value *v)
{
    char num[TL_NUMBUF];
    switch (v->type) {
    case TL_T_BOOL:
        put(o, v->u.b ? "true" : "false", v->u.b ? 4 : 5);
        break;
    case TL_T_NUM:
        put(o, num, (size_t)tl_fmt_number(num, v->u.num));
        break;
    case TL_T_STR:
        put(o, v->u.str.ptr, v->u.str.len);
        break;
    default:
        break;
    }
}

size_t tl_value_format(const tl_value *v, char *buf, size_t size)
{
    sink o = {buf, size, 0};
    if (v && is_list(v->type)) {
        for (uint32_t i = 0; i < v->u.list.n; i++) {
            tl_value e;
            if (i) put(&o, ",", 1);
            list_elem(v, i, &e);
            put_scalar(&o, &e);
        }
    } else if (v) {
        put_scalar(&o, v);
    }
    if (size > 0) buf[o.n < size - 1 ? o.n : size - 1] = '\0';
    return o.n;
}

/* A JSON string: '"' and '\' escaped, control characters as \u00XX, and
 * a byte that is not valid UTF-8 as U+FFFD, so that every parser takes it
 * (cut strings end at a UTF-8 boundary; event strings are not checked). */
static void put_json_str(sink *o, const char *s, size_t n)
{
    put(o, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t l = tl_utf8_seq((const unsigned char *)s + i, n - i);
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            put(o, esc, 2);
        } else if (c < 0x20) {
            put(o, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", c));
        } else if (!l) {
            put(o, "\xEF\xBF\xBD", 3);
            l = 1;
        } else {
            put(o, s + i, l);
        }
        i += l ? l : 1;
    }
    put(o, "\"", 1);
}

static void put_json_scalar(sink *o, const tl_value *v)
{
    if (v->type == TL_T_STR)
        put_json_str(o, v->u.str.ptr, v->u.str.len);
    else if (v->type == TL_T_BOOL || (v->type == TL_T_NUM && isfinite(v->u.num)))
        put_scalar(o, v);
    else /* null, and the numbers JSON has no word for */
        put(o, "null", 4);
}

size_t tl_value_format_json(const tl_value *v, char *buf, size_t size)
{
    sink o = {buf, size, 0};
    if (v && is_list(v->type)) {
        put(&o, "[", 1);
        for (uint32_t i = 0; i < v->u.list.n; i++) {
            tl_value e;
            if (i) put(&o, ",", 1);
            list_elem(v, i, &e);
            put_json_scalar(&o, &e);
        }
        put(&o, "]", 1);
    } else if (v) {
        put_json_scalar(&o, v);
    } else {
        put(&o, "null", 4);
    }
    if (size > 0) buf[o.n < size - 1 ? o.n : size - 1] = '\0';
    return o.n;
}

