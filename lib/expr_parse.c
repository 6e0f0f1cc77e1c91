/*
 * expr_parse.c: the expression language's parser and type checker: the
 * grammar of expr.h by recursive descent over the lexer's tokens, names
 * resolved through the caller's scope, the builtin functions' arity and
 * argument types, list literals folded to constants, time zones loaded
 * (tl_tz_load) for hour() and weekday().
 */
#include <stdlib.h>
#include <string.h>

#include "expr_int.h"

/*
 * Nesting bound.  Parser recursion, and through the tree's height the
 * evaluator's recursion, grow only with nesting (parentheses, `not`, unary
 * minus, brackets, calls), so a generated or hostile expression cannot
 * overflow the stack.
 * Flat chains such as a + b + c ... or x and y and z ... become one n-ary node
 * evaluated by a loop, so their length needs no bound.
 */
#define MAX_DEPTH 64

/* A list literal is stored with a fixed stride (the longest string sets it
 * for all), so a literal of many long strings could be huge: bound it. */
#define LIST_LIT_MAX (1u << 20)

static node *new_node(parser *p, node_kind kind, tl_type type, size_t extra)
{
    node *n = tl_xcalloc(1, sizeof *n + extra);
    n->kind = (unsigned char)kind;
    n->type = type;
    n->all = p->e->all;
    p->e->all = n;
    return n;
}

static int enter(parser *p, size_t off)
{
    if (p->depth >= MAX_DEPTH)
        return tl_expr_lex_fail(p, off, "expression nested too deeply");
    p->depth++;
    return 0;
}

static int is_null_lit(const node *n)
{
    return n->kind == N_LIT && n->type == TL_T_NULL;
}

/* Operand types accepted where a number or a bool is required: the literal
 * null is allowed anywhere a value may be absent. */
static int num_ok(tl_type t) { return t == TL_T_NUM || t == TL_T_NULL; }
static int bool_ok(tl_type t) { return t == TL_T_BOOL || t == TL_T_NULL; }

static int str_ok(tl_type t) { return t == TL_T_STR || t == TL_T_NULL; }
static tl_type elem_type(tl_type list)
{
    return list == TL_T_LIST_NUM ? TL_T_NUM : TL_T_STR;
}
static tl_type list_of(tl_type elem)
{
    return elem == TL_T_STR ? TL_T_LIST_STR : TL_T_LIST_NUM;
}

/* A type as what a message says is needed: "a number", "a list<string>". */
static const char *a_type(tl_type t)
{
    switch (t) {
    case TL_T_BOOL: return "a bool";
    case TL_T_NUM: return "a number";
    case TL_T_STR: return "a string";
    case TL_T_LIST_NUM: return "a list<number>";
    case TL_T_LIST_STR: return "a list<string>";
    default: return "null";
    }
}

static void add_var(tl_expr *e, node *v)
{
    for (size_t i = 0; i < e->nvars; i++) {
        const node *o = e->vars[i];
        if (o->u.var.id != v->u.var.id) continue;
        if (!o->u.var.key && !v->u.var.key) return;
        if (o->u.var.key && v->u.var.key &&
            o->u.var.keylen == v->u.var.keylen &&
            memcmp(o->u.var.key, v->u.var.key, v->u.var.keylen) == 0)
            return;
    }
    if (e->nvars == e->capvars) {
        e->capvars = e->capvars ? 2 * e->capvars : 4;
        e->vars = tl_xrealloc(e->vars, e->capvars * sizeof *e->vars);
    }
    e->vars[e->nvars++] = v;
}

static int try_resolve(const parser *p, const char *name, const char *key,
                       uint32_t *id, tl_type *type)
{
    if (!p->scope || !p->scope->resolve) return -1;
    int r = p->scope->resolve(p->scope->ud, name, key, id, type);
    /* A resolver returning another type is a bug in the caller. */
    if (r == 0) TL_ASSERT((unsigned)*type <= (unsigned)TL_T_LIST_STR);
    return r;
}

/* Reports a name the scope does not know, at off: in the scope's words when
 * it has some (why the name is not here, a close one). */
static void unknown_name(parser *p, size_t off, const char *nm)
{
    char msg[TL_ERRSZ];
    if (p->scope && p->scope->explain &&
        p->scope->explain(p->scope->ud, nm, msg, sizeof msg) == 1)
        tl_expr_lex_fail(p, off, "%s", msg);
    else
        tl_expr_lex_fail(p, off, "unknown name '%s'", nm);
}

/* A resolved variable (n made by the caller with room for its key). */
static node *finish_var(parser *p, node *n, uint32_t id, tl_type type)
{
    n->type = type;
    n->u.var.id = id;
    p->nvarnodes++;
    add_var(p->e, n);
    return n;
}

static node *resolve_var(parser *p, const token *name, const token *key)
{
    node *n = new_node(p, N_VAR, TL_T_NULL, key ? key->len - 1 : 0);
    if (key) {
        n->u.var.keylen = tl_expr_lex_unescape(p->src + key->off + 1,
                                               key->len - 2, n->text);
        n->u.var.key = n->text;
        /* Resolvers see the key NUL-terminated, so it cannot hold a NUL. */
        if (memchr(n->text, '\0', n->u.var.keylen)) {
            tl_expr_lex_fail(p, key->off,
                             "index key must not contain a NUL byte");
            return NULL;
        }
    }
    char *nm = tl_xstrndup(p->src + name->off, name->len);
    uint32_t id = 0;
    tl_type type = TL_T_NULL;
    if (try_resolve(p, nm, n->u.var.key, &id, &type) != 0) {
        uint32_t id2;
        tl_type type2;
        char sh[TL_SHOWSZ];
        int plain = key ? try_resolve(p, nm, NULL, &id2, &type2) : -1;
        if (!key)
            unknown_name(p, name->off, nm);
        else if (plain == 0 && is_list(type2))
            tl_expr_lex_fail(p, key->off,
                             "list index must be a number, got string");
        else if (plain == 0)
            tl_expr_lex_fail(p, name->off, "'%s' cannot be indexed", nm);
        else
            tl_expr_lex_fail(p, name->off, "unknown name '%s[%s]'", nm,
                             tl_fmt_show(p->src + key->off, key->len, sh));
        free(nm);
        return NULL;
    }
    free(nm);
    return finish_var(p, n, id, type);
}

static node *parse_or(parser *p);
static node *parse_sum(parser *p);

/* The rest of an index, from the token after "[" (at open) on: a number
 * expression and "]". */
static node *parse_index(parser *p, node *list, size_t open)
{
    char fb[FOUNDSZ];
    if (enter(p, open)) return NULL;
    size_t off = p->tok.off;
    node *i = parse_or(p);
    if (!i) return NULL;
    if (!num_ok(i->type)) {
        tl_expr_lex_fail(p, off, "list index must be a number, got %s",
                         tl_type_name(i->type));
        return NULL;
    }
    if (p->tok.kind != K_RBRACK) {
        tl_expr_lex_fail(p, p->tok.off, "expected ']' but found %s",
                         tl_expr_lex_found(p, fb));
        return NULL;
    }
    p->depth--;
    if (tl_expr_lex(p)) return NULL;
    node *n = new_node(p, N_INDEX, elem_type(list->type), 0);
    n->kids = list;
    list->next = i;
    return n;
}

/* ---- functions ---------------------------------------------------------- */

static const struct fn_info {
    const char *name;
    unsigned min, max; /* arity; max 0: unbounded */
} fns[] = {
    [F_LEN] = {"len", 1, 1},
    [F_CONTAINS] = {"contains", 2, 2},
    [F_COALESCE] = {"coalesce", 2, 0},
    [F_LOWER] = {"lower", 1, 1},
    [F_DAYS_SINCE] = {"days_since", 1, 1},
    [F_HOUR] = {"hour", 2, 2},
    [F_WEEKDAY] = {"weekday", 2, 2},
};

/* Loads the zone a string literal names; the literal node owns it, so that
 * it is freed with the tree however the compile ends. */
static int load_zone(parser *p, node *a, size_t off)
{
    if (a->kind != N_LIT || a->type != TL_T_STR)
        return tl_expr_lex_fail(p, off, "time zone must be a string literal");
    char msg[TL_ERRSZ];
    const tl_value *v = &a->u.lit;
    tl_tz *z = tl_tz_load(v->u.str.ptr, v->u.str.len, msg, sizeof msg);
    if (!z) return tl_expr_lex_fail(p, off, "%s", msg);
    a->own = z;
    return 0;
}

/*
 * Checks argument i (0-based) of a call to f as soon as it is parsed, so that
 * errors come in source order.  *t1 is what earlier arguments fixed: the
 * haystack's type for contains, the first non-null type for coalesce.
 */
static int check_arg(parser *p, int f, unsigned i, node *a, size_t off,
                     tl_type *t1)
{
    tl_type t = a->type;
    const char *want = NULL;
    switch (f) {
    case F_LEN:
    case F_CONTAINS:
        if (i == 0) {
            if (!is_list(t) && !str_ok(t)) want = "a list or a string";
            *t1 = t;
        } else if (*t1 == TL_T_NULL) {
            if (!num_ok(t) && !str_ok(t)) want = "a number or a string";
        } else {
            tl_type need = *t1 == TL_T_LIST_NUM ? TL_T_NUM : TL_T_STR;
            if (t != need && t != TL_T_NULL) want = a_type(need);
        }
        break;
    case F_COALESCE:
        if (t == TL_T_NULL) break;
        if (*t1 == TL_T_NULL) *t1 = t;
        else if (t != *t1) want = a_type(*t1);
        break;
    case F_LOWER:
        if (!str_ok(t)) want = "a string";
        break;
    case F_DAYS_SINCE:
        if (!num_ok(t)) want = "a number";
        break;
    default: /* hour, weekday */
        if (i == 1) return load_zone(p, a, off);
        if (!num_ok(t)) want = "a number";
        break;
    }
    if (want)
        return tl_expr_lex_fail(p, off,
                                "argument %u of '%s' must be %s, got %s", i + 1,
                                fns[f].name, want, tl_type_name(t));
    return 0;
}

/* IDENT "(" args ")", at the IDENT. */
static node *parse_call(parser *p)
{
    token name = p->tok;
    char fb[FOUNDSZ];
    int f = -1;
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        if (strlen(fns[i].name) == name.len &&
            memcmp(fns[i].name, p->src + name.off, name.len) == 0)
            f = (int)i;
    if (f < 0) {
        char *nm = tl_xstrndup(p->src + name.off, name.len);
        char known[128];
        size_t n = 0;
        for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
            n += (size_t)snprintf(known + n, sizeof known - n, "%s%s",
                                  i ? ", " : "", fns[i].name);
        tl_expr_lex_fail(p, name.off, "unknown function '%s' (functions: %s)",
                         nm, known);
        free(nm);
        return NULL;
    }
    const struct fn_info *fi = &fns[f];
    /* days_since's "now" is the event's time, read like any variable: ask
     * for it before the arguments, so that a scope without it is reported
     * at the function's name. */
    uint32_t ts_id = 0;
    tl_type ts_type = TL_T_NULL;
    if (f == F_DAYS_SINCE) {
        if (try_resolve(p, "ts", NULL, &ts_id, &ts_type) != 0) {
            tl_expr_lex_fail(
                p, name.off,
                "function 'days_since' needs the event time 'ts', which is "
                "not a name here");
            return NULL;
        }
        if (ts_type != TL_T_NUM) {
            tl_expr_lex_fail(
                p, name.off,
                "function 'days_since' needs the event time 'ts' to be a "
                "number, got %s", tl_type_name(ts_type));
            return NULL;
        }
    }
    if (tl_expr_lex(p)) return NULL; /* "(" */
    if (enter(p, p->tok.off) || tl_expr_lex(p)) return NULL;
    node *first = NULL, *last = NULL;
    unsigned nargs = 0;
    tl_type t1 = TL_T_NULL;
    while (p->tok.kind != K_RPAREN || nargs > 0) {
        size_t off = p->tok.off;
        /* A trailing comma is reported below as a missing value. */
        if (fi->max && nargs == fi->max && p->tok.kind != K_RPAREN) {
            tl_expr_lex_fail(p, off, "function '%s' takes only %u argument%s",
                             fi->name, fi->max, fi->max == 1 ? "" : "s");
            return NULL;
        }
        node *a = parse_or(p);
        if (!a || check_arg(p, f, nargs, a, off, &t1)) return NULL;
        if (last) last->next = a;
        else first = a;
        last = a;
        nargs++;
        if (p->tok.kind == K_RPAREN) break;
        if (p->tok.kind != K_COMMA) {
            tl_expr_lex_fail(p, p->tok.off, "expected ',' or ')' but found %s",
                             tl_expr_lex_found(p, fb));
            return NULL;
        }
        if (tl_expr_lex(p)) return NULL;
    }
    if (nargs < fi->min) {
        tl_expr_lex_fail(p, p->tok.off,
                         "function '%s' takes %s%u argument%s, got %u",
                         fi->name, fi->max ? "" : "at least ", fi->min,
                         fi->min == 1 ? "" : "s", nargs);
        return NULL;
    }
    p->depth--;
    tl_type rt = TL_T_NUM;
    if (f == F_CONTAINS) rt = TL_T_BOOL;
    else if (f == F_COALESCE) rt = t1;
    else if (f == F_LOWER) rt = TL_T_STR;
    node *n = new_node(p, N_CALL, rt, f == F_LOWER ? LOWER_MAX : 0);
    n->op = (unsigned char)f;
    n->kids = first;
    if (f == F_LOWER) n->u.buf = n->text;
    if (f == F_HOUR || f == F_WEEKDAY) n->u.tz = first->next->own;
    if (f == F_DAYS_SINCE)
        last->next = finish_var(p, new_node(p, N_VAR, TL_T_NUM, 0), ts_id,
                                TL_T_NUM);
    if (tl_expr_lex(p)) return NULL; /* past ")" */
    return n;
}

/* IDENT, IDENT "[" STRING "]" (a name resolved with a key), IDENT "[" expr
 * "]" (an element of a list variable) or IDENT "(" args ")". */
static node *parse_name(parser *p)
{
    token name = p->tok;
    char fb[FOUNDSZ];
    /* Looking at the raw source rather than lexing ahead keeps errors in
     * source order: an unknown plain name is reported before whatever bad
     * token follows it. */
    size_t k = tl_expr_lex_space(p, name.off + name.len);
    if (k < p->len && p->src[k] == '(') return parse_call(p);
    if (k >= p->len || p->src[k] != '[') {
        node *n = resolve_var(p, &name, NULL);
        if (!n || tl_expr_lex(p)) return NULL;
        return n;
    }
    if (tl_expr_lex(p)) return NULL; /* "[" */
    size_t open = p->tok.off;
    if (tl_expr_lex(p)) return NULL; /* the key, or the index's first token */
    if (p->tok.kind != K_STR) {
        /* Not a key: the name must be a list, indexed by a number. */
        char *nm = tl_xstrndup(p->src + name.off, name.len);
        uint32_t id;
        tl_type type;
        int r = try_resolve(p, nm, NULL, &id, &type);
        /* Neither a list nor a name taking keys: the name is the error,
         * not the index. */
        if (r != 0 && try_resolve(p, nm, "", &id, &type) != 0)
            unknown_name(p, name.off, nm);
        else if (r != 0)
            tl_expr_lex_fail(p, p->tok.off,
                             "expected a string key but found %s",
                             tl_expr_lex_found(p, fb));
        else if (!is_list(type))
            tl_expr_lex_fail(p, name.off, "'%s' cannot be indexed", nm);
        free(nm);
        if (p->failed) return NULL;
        node *list = finish_var(p, new_node(p, N_VAR, type, 0), id, type);
        return parse_index(p, list, open);
    }
    token key = p->tok;
    node *n = resolve_var(p, &name, &key);
    if (!n || tl_expr_lex(p)) return NULL;
    if (p->tok.kind != K_RBRACK) {
        tl_expr_lex_fail(p, p->tok.off, "expected ']' but found %s",
                         tl_expr_lex_found(p, fb));
        return NULL;
    }
    if (tl_expr_lex(p)) return NULL;
    return n;
}

/* "[" expr ("," expr)* "]" of constants of one type, at the "[".  The
 * elements are evaluated now and stored in the view's layout, so that the
 * literal is a value like any other. */
static node *parse_list(parser *p)
{
    size_t open = p->tok.off;
    char fb[FOUNDSZ];
    if (enter(p, open) || tl_expr_lex(p)) return NULL;
    if (p->tok.kind == K_RBRACK) {
        /* Its element type would be unknown; after `in` it is not needed. */
        tl_expr_lex_fail(p, open,
                         "an empty list [] is allowed only after 'in'");
        return NULL;
    }
    node *first = NULL, *last = NULL;
    size_t count = 0, maxlen = 0;
    tl_type et = TL_T_NULL;
    for (;;) {
        size_t off = p->tok.off;
        unsigned long vars = p->nvarnodes;
        node *el = parse_or(p);
        if (!el) return NULL;
        tl_value v;
        if (p->nvarnodes != vars) {
            tl_expr_lex_fail(p, off, "list elements must be constants");
            return NULL;
        }
        if (el->type != TL_T_NUM && el->type != TL_T_STR) {
            tl_expr_lex_fail(p, off,
                             "list elements must be numbers or strings, got %s",
                             tl_type_name(el->type));
            return NULL;
        }
        if (count && el->type != et) {
            tl_expr_lex_fail(
                p, off, "list elements must all have one type, got %s and %s",
                tl_type_name(et), tl_type_name(el->type));
            return NULL;
        }
        et = el->type;
        tl_expr_eval_node(el, NULL, NULL, &v);
        if (v.type != et) { /* 1 / 0 */
            tl_expr_lex_fail(p, off, "list element is null");
            return NULL;
        }
        if (et == TL_T_STR && v.u.str.len > maxlen) maxlen = v.u.str.len;
        if (last) last->next = el;
        else first = el;
        last = el;
        count++;
        if (p->tok.kind == K_RBRACK) break;
        if (p->tok.kind != K_COMMA) {
            tl_expr_lex_fail(p, p->tok.off, "expected ',' or ']' but found %s",
                             tl_expr_lex_found(p, fb));
            return NULL;
        }
        if (tl_expr_lex(p)) return NULL;
    }
    p->depth--;
    size_t stride = et == TL_T_NUM ? sizeof(double) : sizeof(uint32_t) + maxlen;
    if (stride > LIST_LIT_MAX || count > LIST_LIT_MAX / stride) {
        tl_expr_lex_fail(p, open,
                         "list literal too large (over %u bytes stored)",
                         LIST_LIT_MAX);
        return NULL;
    }
    node *n = new_node(p, N_LIT, list_of(et), 0);
    unsigned char *buf = tl_xcalloc(count, stride), *w = buf;
    n->own = buf;
    for (node *el = first; el; el = el->next, w += stride) {
        tl_value v;
        tl_expr_eval_node(el, NULL, NULL, &v);
        if (et == TL_T_NUM) {
            memcpy(w, &v.u.num, sizeof v.u.num);
        } else {
            uint32_t len = (uint32_t)v.u.str.len;
            memcpy(w, &len, sizeof len);
            if (len) memcpy(w + sizeof len, v.u.str.ptr, len);
        }
    }
    n->u.lit.type = n->type;
    n->u.lit.u.list.base = buf;
    n->u.lit.u.list.n = (uint32_t)count;
    n->u.lit.u.list.stride = (uint32_t)stride;
    if (tl_expr_lex(p)) return NULL; /* past "]" */
    return n;
}

static node *parse_primary(parser *p)
{
    token t = p->tok;
    char fb[FOUNDSZ];
    node *n;
    switch (t.kind) {
    case K_NUM:
        n = new_node(p, N_LIT, TL_T_NUM, 0);
        n->u.lit.type = TL_T_NUM;
        n->u.lit.u.num = t.num;
        break;
    case K_STR:
        n = new_node(p, N_LIT, TL_T_STR, t.len - 1);
        n->u.lit.type = TL_T_STR;
        n->u.lit.u.str.ptr = n->text;
        n->u.lit.u.str.len =
            tl_expr_lex_unescape(p->src + t.off + 1, t.len - 2, n->text);
        break;
    case K_TRUE:
    case K_FALSE:
        n = new_node(p, N_LIT, TL_T_BOOL, 0);
        n->u.lit.type = TL_T_BOOL;
        n->u.lit.u.b = t.kind == K_TRUE;
        break;
    case K_NULL:
        n = new_node(p, N_LIT, TL_T_NULL, 0);
        n->u.lit.type = TL_T_NULL;
        break;
    case K_IDENT:
        return parse_name(p);
    case K_LBRACK:
        return parse_list(p);
    case K_LPAREN:
        if (enter(p, t.off) || tl_expr_lex(p)) return NULL;
        n = parse_or(p);
        if (!n) return NULL;
        if (p->tok.kind != K_RPAREN) {
            tl_expr_lex_fail(p, p->tok.off, "expected ')' but found %s",
                             tl_expr_lex_found(p, fb));
            return NULL;
        }
        p->depth--;
        break;
    default:
        tl_expr_lex_fail(p, t.off, "expected a value but found %s",
                         tl_expr_lex_found(p, fb));
        return NULL;
    }
    if (tl_expr_lex(p)) return NULL;
    return n;
}

/* primary ("[" expr "]")*: elements of lists that are not plain names
 * (those are parse_name's), e.g. coalesce(a, b)[0]. */
static node *parse_postfix(parser *p)
{
    node *n = parse_primary(p);
    while (n && p->tok.kind == K_LBRACK) {
        size_t open = p->tok.off;
        if (!is_list(n->type)) {
            tl_expr_lex_fail(p, open, "only a list can be indexed, got %s",
                             tl_type_name(n->type));
            return NULL;
        }
        if (tl_expr_lex(p)) return NULL;
        n = parse_index(p, n, open);
    }
    return n;
}

static node *parse_unary(parser *p)
{
    if (p->tok.kind != K_MINUS) return parse_postfix(p);
    size_t off = p->tok.off;
    if (enter(p, off) || tl_expr_lex(p)) return NULL;
    node *c = parse_unary(p);
    if (!c) return NULL;
    p->depth--;
    if (!num_ok(c->type)) {
        tl_expr_lex_fail(p, off, "operator '-' needs a number, got %s",
                         tl_type_name(c->type));
        return NULL;
    }
    if (c->kind == N_LIT && c->type == TL_T_NUM) {
        /* Folding keeps "-1" a single literal. */
        c->u.lit.u.num = -c->u.lit.u.num;
        return c;
    }
    node *n = new_node(p, N_NEG, TL_T_NUM, 0);
    n->kids = c;
    return n;
}

/* prod and sum: left-associative chains kept as one n-ary node. */
static node *parse_arith(parser *p, tok_kind k1, tok_kind k2,
                         node *(*sub)(parser *))
{
    node *first = sub(p);
    if (!first || (p->tok.kind != k1 && p->tok.kind != k2)) return first;
    node *n = new_node(p, N_ARITH, TL_T_NUM, 0);
    node *last = first;
    tl_type lt = first->type;
    n->kids = first;
    while (p->tok.kind == k1 || p->tok.kind == k2) {
        token o = p->tok;
        if (tl_expr_lex(p)) return NULL;
        node *r = sub(p);
        if (!r) return NULL;
        if (!num_ok(lt) || !num_ok(r->type)) {
            tl_expr_lex_fail(p, o.off,
                             "operator '%c' needs two numbers, got %s and %s",
                             p->src[o.off], tl_type_name(lt),
                             tl_type_name(r->type));
            return NULL;
        }
        switch (o.kind) {
        case K_PLUS: r->link = OP_ADD; break;
        case K_MINUS: r->link = OP_SUB; break;
        case K_STAR: r->link = OP_MUL; break;
        default: r->link = OP_DIV; break;
        }
        last->next = r;
        last = r;
        lt = TL_T_NUM;
    }
    return n;
}

static node *parse_prod(parser *p)
{
    return parse_arith(p, K_STAR, K_SLASH, parse_unary);
}

static node *parse_sum(parser *p)
{
    return parse_arith(p, K_PLUS, K_MINUS, parse_prod);
}

static int cmp_op(tok_kind k)
{
    switch (k) {
    case K_EQ: return OP_EQ;
    case K_NE: return OP_NE;
    case K_LT: return OP_LT;
    case K_LE: return OP_LE;
    case K_GT: return OP_GT;
    case K_GE: return OP_GE;
    default: return -1;
    }
}

/* At `in`, or at `not` directly followed by the word `in`.  Raw source again:
 * `not` elsewhere after a value is an error reported by the caller. */
static int at_in(const parser *p)
{
    if (p->tok.kind == K_IN) return 1;
    if (p->tok.kind != K_NOT) return 0;
    size_t k = tl_expr_lex_space(p, p->tok.off + p->tok.len);
    return k + 2 <= p->len && memcmp(p->src + k, "in", 2) == 0 &&
           (k + 2 == p->len ||
            !tl_expr_lex_ident_char((unsigned char)p->src[k + 2]));
}

/* l ["not"] "in" list, at the "in" or "not". */
static node *parse_in(parser *p, node *l)
{
    token ot = p->tok;
    int neg = ot.kind == K_NOT;
    const char *op = neg ? "not in" : "in";
    if (neg && tl_expr_lex(p)) return NULL; /* to "in" */
    if (l->type != TL_T_NUM && l->type != TL_T_STR && l->type != TL_T_NULL) {
        tl_expr_lex_fail(
            p, ot.off,
            "operator '%s' needs a number or a string on its left, "
            "got %s", op, tl_type_name(l->type));
        return NULL;
    }
    if (tl_expr_lex(p)) return NULL;
    node *r;
    size_t k = tl_expr_lex_space(p, p->tok.off + 1);
    if (p->tok.kind == K_LBRACK && k < p->len && p->src[k] == ']') {
        /* [] holds nothing, so it takes whatever type the left side needs. */
        r = new_node(p, N_LIT, list_of(l->type), 0);
        r->u.lit.type = r->type;
        if (tl_expr_lex(p) || tl_expr_lex(p)) return NULL;
    } else {
        r = parse_sum(p);
        if (!r) return NULL;
        int ok = r->type == TL_T_NULL ||
                 (is_list(r->type) &&
                  (l->type == TL_T_NULL || elem_type(r->type) == l->type));
        if (!ok) {
            tl_expr_lex_fail(
                p, ot.off, "operator '%s' needs %s on its right, got %s", op,
                l->type == TL_T_NULL ? "a list" : a_type(list_of(l->type)),
                tl_type_name(r->type));
            return NULL;
        }
    }
    node *n = new_node(p, N_IN, TL_T_BOOL, 0);
    n->op = (unsigned char)neg;
    n->kids = l;
    l->next = r;
    return n;
}

static node *parse_cmp(parser *p)
{
    node *l = parse_sum(p);
    if (!l) return NULL;
    node *n;
    if (at_in(p)) {
        n = parse_in(p, l);
        if (!n) return NULL;
        goto chained;
    }
    int o = cmp_op(p->tok.kind);
    if (o < 0) return l;
    token ot = p->tok;
    char os[TL_SHOWSZ];
    tl_fmt_show(p->src + ot.off, ot.len, os);
    if (tl_expr_lex(p)) return NULL;
    node *r = parse_sum(p);
    if (!r) return NULL;
    int ordering = o != OP_EQ && o != OP_NE;
    if (is_null_lit(l) || is_null_lit(r)) {
        if (!ordering) {
            n = new_node(p, N_NULLTEST, TL_T_BOOL, 0);
            n->kids = is_null_lit(l) ? r : l;
            n->op = (unsigned char)o;
            goto chained;
        }
        /* Ordering against null is allowed and always false (null rule). */
    } else if (l->type != r->type && !ordering) {
        tl_expr_lex_fail(
            p, ot.off,
            "operator '%s' needs two values of the same type, got %s and %s",
            os, tl_type_name(l->type), tl_type_name(r->type));
        return NULL;
    } else if (l->type != r->type ||
               (ordering && l->type != TL_T_NUM && l->type != TL_T_STR)) {
        tl_expr_lex_fail(
            p, ot.off,
            "operator '%s' needs two numbers or two strings, got %s and %s", os,
            tl_type_name(l->type), tl_type_name(r->type));
        return NULL;
    }
    n = new_node(p, N_CMP, TL_T_BOOL, 0);
    n->kids = l;
    l->next = r;
    n->op = (unsigned char)o;
chained:
    if (cmp_op(p->tok.kind) >= 0 || at_in(p)) {
        tl_expr_lex_fail(
            p, p->tok.off,
            "comparisons cannot be chained; use 'and' or parentheses");
        return NULL;
    }
    return n;
}

static node *parse_not(parser *p)
{
    if (p->tok.kind != K_NOT) return parse_cmp(p);
    size_t off = p->tok.off;
    if (enter(p, off) || tl_expr_lex(p)) return NULL;
    node *c = parse_not(p);
    if (!c) return NULL;
    p->depth--;
    if (!bool_ok(c->type)) {
        tl_expr_lex_fail(p, off, "operator 'not' needs a bool, got %s",
                         tl_type_name(c->type));
        return NULL;
    }
    node *n = new_node(p, N_NOT, TL_T_BOOL, 0);
    n->kids = c;
    return n;
}

static node *parse_logic(parser *p, tok_kind k, node_kind nk,
                         node *(*sub)(parser *))
{
    node *first = sub(p);
    if (!first || p->tok.kind != k) return first;
    const char *name = k == K_AND ? "and" : "or";
    node *n = new_node(p, nk, TL_T_BOOL, 0);
    node *last = first;
    tl_type lt = first->type;
    n->kids = first;
    while (p->tok.kind == k) {
        size_t off = p->tok.off;
        if (tl_expr_lex(p)) return NULL;
        node *r = sub(p);
        if (!r) return NULL;
        if (!bool_ok(lt) || !bool_ok(r->type)) {
            tl_expr_lex_fail(p, off,
                             "operator '%s' needs two bools, got %s and %s",
                             name, tl_type_name(lt), tl_type_name(r->type));
            return NULL;
        }
        last->next = r;
        last = r;
        lt = TL_T_BOOL;
    }
    return n;
}

static node *parse_and(parser *p)
{
    return parse_logic(p, K_AND, N_AND, parse_not);
}

static node *parse_or(parser *p)
{
    return parse_logic(p, K_OR, N_OR, parse_and);
}
int tl_expr_parse(tl_expr *e, const char *src, size_t len,
                  const tl_expr_scope *scope, tl_type want, size_t *err_offset,
                  char *err, size_t errsz)
{
    parser p = {.src = src ? src : "", .len = len, .scope = scope, .e = e,
                .err = err, .errsz = errsz};
    char fb[FOUNDSZ];
    node *root = NULL;
    if (tl_expr_lex(&p) == 0) {
        if (p.tok.kind == K_EOF) {
            tl_expr_lex_fail(&p, 0, "empty expression");
        } else {
            root = parse_or(&p);
            if (root && p.tok.kind != K_EOF)
                tl_expr_lex_fail(&p, p.tok.off,
                                 "expected end of expression but found %s",
                                 tl_expr_lex_found(&p, fb));
            else if (root && want != TL_T_NULL && root->type != want)
                tl_expr_lex_fail(&p, 0, "expression must be %s, got %s",
                                 tl_type_name(want), tl_type_name(root->type));
        }
    }
    if (p.failed) {
        if (err_offset) *err_offset = p.err_off;
        return -1;
    }
    e->root = root;
    e->type = root->type;
    return 0;
}
