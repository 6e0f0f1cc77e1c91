#include "expr.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tz.h"

/*
 * Nesting bound.  Parser recursion, and through the tree's height the
 * evaluator's recursion, grow only with nesting (parentheses, `not`, unary
 * minus, brackets, calls), so a generated or hostile expression cannot
 * overflow the stack.
 * Flat chains such as a + b + c ... or x and y and z ... become one n-ary node
 * evaluated by a loop, so their length needs no bound.
 */
#define MAX_DEPTH 64

/* A token quoted in a message is cut (tl_fmt_show): a message names the
 * token, it need not reproduce a long literal. */
#define FOUNDSZ (TL_SHOWSZ + 16)

/* lower() writes its result into a buffer of this size inside its node, so
 * that evaluation needs no allocation; longer results are cut (see expr.h). */
#define LOWER_MAX 256

/* A list literal is stored with a fixed stride (the longest string sets it
 * for all), so a literal of many long strings could be huge: bound it. */
#define LIST_LIT_MAX (1u << 20)

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

/* ---- lexer ------------------------------------------------------------- */

typedef enum tok_kind {
    K_EOF,
    K_NUM,
    K_STR,
    K_IDENT,
    K_AND,
    K_OR,
    K_NOT,
    K_TRUE,
    K_FALSE,
    K_NULL,
    K_EQ,
    K_NE,
    K_LT,
    K_LE,
    K_GT,
    K_GE,
    K_PLUS,
    K_MINUS,
    K_STAR,
    K_SLASH,
    K_LPAREN,
    K_RPAREN,
    K_LBRACK,
    K_RBRACK,
    K_COMMA,
    K_IN,
} tok_kind;

typedef struct token {
    tok_kind kind;
    size_t off, len; /* source bytes, quotes included for strings */
    double num;
} token;

/* ---- tree -------------------------------------------------------------- */

typedef enum node_kind {
    N_LIT,
    N_VAR,
    N_NEG,
    N_NOT,
    N_AND,
    N_OR,
    N_ARITH,
    N_CMP,
    N_NULLTEST,
    N_INDEX, /* kids: list, index */
    N_IN,    /* kids: value, list; op: 1 for `not in` */
    N_CALL,  /* kids: arguments (days_since: then the "ts" variable); op: fn */
} node_kind;

enum op_kind {
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
};

/* Builtin functions, in the order of the table `fns`. */
enum fn_id {
    F_LEN,
    F_CONTAINS,
    F_COALESCE,
    F_LOWER,
    F_DAYS_SINCE,
    F_HOUR,
    F_WEEKDAY,
};

typedef struct node node;
struct node {
    node *kids; /* operands in source order, chained through next */
    node *next;
    node *all; /* every node of a tree: freeing needs neither recursion nor
                  per-path cleanup when a compile fails halfway */
    void *own;  /* freed with the node: a list literal's elements; on the
                   string literal naming a time zone, the loaded zone */
    unsigned char kind;
    unsigned char op;   /* N_CMP, N_NULLTEST: the comparison; N_IN: negated;
                           N_CALL: the function */
    unsigned char link; /* operand of N_ARITH: how it joins the value so far */
    tl_type type;       /* static type */
    union {
        tl_value lit; /* N_LIT; a list literal's view points into own */
        struct {
            uint32_t id;
            size_t keylen;
            const char *key; /* into text, or NULL for a plain name */
        } var;
        const tl_tz *tz; /* N_CALL hour, weekday: owned by the zone literal */
        char *buf;       /* N_CALL lower: LOWER_MAX bytes in text */
    } u;
    char text[]; /* unescaped string literal or index key, NUL-terminated;
                    lower's result buffer */
};

struct tl_expr {
    node *root;
    node *all;
    node **vars; /* distinct N_VAR nodes in source order */
    size_t nvars, capvars;
    tl_type type;
};

typedef struct parser {
    const char *src;
    size_t len;
    size_t pos; /* where the lexer resumes */
    token tok;  /* current token */
    const tl_expr_scope *scope;
    tl_expr *e;
    int depth;
    unsigned long nvarnodes; /* N_VAR nodes made so far: a list element that
                                made none is a constant */
    int failed;
    size_t err_off;
    char *err;
    size_t errsz;
} parser;

static int fail(parser *p, size_t off, const char *fmt, ...) TL_PRINTF(3, 4);
static int fail(parser *p, size_t off, const char *fmt, ...)
{
    /* The first error is the one to report: later ones are usually fallout. */
    if (p->failed) return -1;
    p->failed = 1;
    p->err_off = off;
    if (p->err && p->errsz > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->errsz, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

/* Not <ctype.h>: the language must not change with the process locale. */
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int is_ident_start(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_ident_char(unsigned char c)
{
    return is_ident_start(c) || is_digit(c) || c == '.';
}

static size_t skip_space(const parser *p, size_t i)
{
    while (i < p->len && is_space((unsigned char)p->src[i])) i++;
    return i;
}

/* The current token as the "found ..." part of a message. */
static const char *found(const parser *p, char buf[FOUNDSZ])
{
    const token *t = &p->tok;
    char sh[TL_SHOWSZ];
    tl_fmt_show(p->src + t->off, t->len, sh);
    switch (t->kind) {
    case K_EOF: return "end of expression";
    case K_NUM: snprintf(buf, FOUNDSZ, "number %s", sh); break;
    case K_STR: snprintf(buf, FOUNDSZ, "string %s", sh); break;
    default: snprintf(buf, FOUNDSZ, "'%s'", sh); break;
    }
    return buf;
}

static int lex_string(parser *p, size_t i, size_t *end)
{
    const char *s = p->src;
    char q = s[i];
    size_t j = i + 1;
    for (;;) {
        if (j >= p->len) return fail(p, i, "unterminated string");
        if (s[j] == q) break;
        if (s[j] != '\\') {
            j++;
            continue;
        }
        if (j + 1 >= p->len) return fail(p, i, "unterminated string");
        unsigned char x = (unsigned char)s[j + 1];
        switch (x) {
        case '\\': case '"': case '\'': case 'n': case 't': break;
        default:
            if (x > 0x20 && x < 0x7f)
                return fail(p, j,
                            "unknown escape '\\%c' in string "
                            "(use \\\\, \\\", \\', \\n or \\t)",
                            x);
            return fail(p, j,
                        "unknown escape in string "
                        "(use \\\\, \\\", \\', \\n or \\t)");
        }
        j += 2;
    }
    *end = j + 1;
    return 0;
}

/* Decodes a string literal's body, already checked by lex_string; the result
 * is never longer than the body. */
static size_t unescape(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') {
            c = s[++i];
            if (c == 'n') c = '\n';
            else if (c == 't') c = '\t';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return o;
}

/*
 * NUMBER: digits with an optional fraction (".5" and "1." are accepted) and
 * exponent.  Letters, digits, '_' or '.' directly after a number make the whole
 * run one invalid number ("1.2.3", "12abc", "0x1f"), which is clearer than
 * lexing a number followed by a name.
 */
static int lex_number(parser *p, size_t i, size_t *end, double *out)
{
    const char *s = p->src;
    size_t n = p->len, j = i;
    int ok = 1;
    char sh[TL_SHOWSZ];
    while (j < n && is_digit((unsigned char)s[j])) j++;
    if (j < n && s[j] == '.') {
        j++;
        while (j < n && is_digit((unsigned char)s[j])) j++;
    }
    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        j++;
        if (j < n && (s[j] == '+' || s[j] == '-')) j++;
        size_t d = j;
        while (j < n && is_digit((unsigned char)s[j])) j++;
        if (j == d) ok = 0;
    }
    if (j < n && is_ident_char((unsigned char)s[j])) {
        ok = 0;
        while (j < n && is_ident_char((unsigned char)s[j])) j++;
    }
    if (!ok)
        return fail(p, i, "invalid number '%s'",
                    tl_fmt_show(s + i, j - i, sh));
    /* strtod needs a terminated string and src need not be one; the syntax
     * checked above keeps strtod from taking hex, inf or nan. */
    char *tmp = tl_xstrndup(s + i, j - i);
    double v = strtod(tmp, NULL);
    free(tmp);
    if (isinf(v))
        return fail(p, i, "number out of range '%s'",
                    tl_fmt_show(s + i, j - i, sh));
    *out = v;
    *end = j;
    return 0;
}

static tok_kind word_kind(const char *s, size_t n)
{
    static const struct {
        const char *word;
        tok_kind kind;
    } words[] = {
        {"and", K_AND},   {"or", K_OR},       {"not", K_NOT},
        {"true", K_TRUE}, {"false", K_FALSE}, {"null", K_NULL},
        {"in", K_IN},
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i].word) == n && memcmp(words[i].word, s, n) == 0)
            return words[i].kind;
    return K_IDENT;
}

static int lex(parser *p)
{
    const char *s = p->src;
    size_t n = p->len;
    size_t i = skip_space(p, p->pos), j = i + 1;
    token *t = &p->tok;
    t->off = i;
    t->num = 0;
    if (i >= n) {
        t->kind = K_EOF;
        t->len = 0;
        p->pos = i;
        return 0;
    }
    unsigned char c = (unsigned char)s[i];
    int eq_next = j < n && s[j] == '=';
    switch (c) {
    case '(': t->kind = K_LPAREN; break;
    case ')': t->kind = K_RPAREN; break;
    case '[': t->kind = K_LBRACK; break;
    case ']': t->kind = K_RBRACK; break;
    case ',': t->kind = K_COMMA; break;
    case '+': t->kind = K_PLUS; break;
    case '-': t->kind = K_MINUS; break;
    case '*': t->kind = K_STAR; break;
    case '/': t->kind = K_SLASH; break;
    case '<': t->kind = eq_next ? K_LE : K_LT; j += eq_next; break;
    case '>': t->kind = eq_next ? K_GE : K_GT; j += eq_next; break;
    /* The hints name what other languages spell differently. */
    case '=':
        if (!eq_next)
            return fail(p, i, "unexpected character '=' (use '==' to compare)");
        t->kind = K_EQ;
        j++;
        break;
    case '!':
        if (!eq_next)
            return fail(p, i, "unexpected character '!' (use 'not' or '!=')");
        t->kind = K_NE;
        j++;
        break;
    case '&': return fail(p, i, "unexpected character '&' (use 'and')");
    case '|': return fail(p, i, "unexpected character '|' (use 'or')");
    case '"':
    case '\'':
        if (lex_string(p, i, &j)) return -1;
        t->kind = K_STR;
        break;
    default:
        if (is_digit(c) || (c == '.' && j < n && is_digit((unsigned char)s[j]))) {
            if (lex_number(p, i, &j, &t->num)) return -1;
            t->kind = K_NUM;
        } else if (is_ident_start(c)) {
            while (j < n && is_ident_char((unsigned char)s[j])) j++;
            t->kind = word_kind(s + i, j - i);
        } else if (c > 0x20 && c < 0x7f) {
            return fail(p, i, "unexpected character '%c'", c);
        } else {
            return fail(p, i, "unexpected byte 0x%02x", c);
        }
    }
    t->len = j - i;
    p->pos = j;
    return 0;
}

/* ---- parser and type checker ------------------------------------------- */

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
        return fail(p, off, "expression nested too deeply");
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
static int is_list(tl_type t)
{
    return t == TL_T_LIST_NUM || t == TL_T_LIST_STR;
}
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
        n->u.var.keylen = unescape(p->src + key->off + 1, key->len - 2, n->text);
        n->u.var.key = n->text;
        /* Resolvers see the key NUL-terminated, so it cannot hold a NUL. */
        if (memchr(n->text, '\0', n->u.var.keylen)) {
            fail(p, key->off, "index key must not contain a NUL byte");
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
            fail(p, name->off, "unknown name '%s'", nm);
        else if (plain == 0 && is_list(type2))
            fail(p, key->off, "list index must be a number, got string");
        else if (plain == 0)
            fail(p, name->off, "'%s' cannot be indexed", nm);
        else
            fail(p, name->off, "unknown name '%s[%s]'", nm,
                 tl_fmt_show(p->src + key->off, key->len, sh));
        free(nm);
        return NULL;
    }
    free(nm);
    return finish_var(p, n, id, type);
}

static node *parse_or(parser *p);
static node *parse_sum(parser *p);
static void eval(const node *n, tl_expr_fetch fetch, void *ud, tl_value *out);

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
        fail(p, off, "list index must be a number, got %s",
             tl_type_name(i->type));
        return NULL;
    }
    if (p->tok.kind != K_RBRACK) {
        fail(p, p->tok.off, "expected ']' but found %s", found(p, fb));
        return NULL;
    }
    p->depth--;
    if (lex(p)) return NULL;
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
        return fail(p, off, "time zone must be a string literal");
    char msg[TL_ERRSZ];
    const tl_value *v = &a->u.lit;
    tl_tz *z = tl_tz_load(v->u.str.ptr, v->u.str.len, msg, sizeof msg);
    if (!z) return fail(p, off, "%s", msg);
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
        return fail(p, off, "argument %u of '%s' must be %s, got %s", i + 1,
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
        fail(p, name.off, "unknown function '%s'", nm);
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
            fail(p, name.off,
                 "function 'days_since' needs the event time 'ts', which is "
                 "not a name here");
            return NULL;
        }
        if (ts_type != TL_T_NUM) {
            fail(p, name.off,
                 "function 'days_since' needs the event time 'ts' to be a "
                 "number, got %s",
                 tl_type_name(ts_type));
            return NULL;
        }
    }
    if (lex(p)) return NULL; /* "(" */
    if (enter(p, p->tok.off) || lex(p)) return NULL;
    node *first = NULL, *last = NULL;
    unsigned nargs = 0;
    tl_type t1 = TL_T_NULL;
    while (p->tok.kind != K_RPAREN || nargs > 0) {
        size_t off = p->tok.off;
        /* A trailing comma is reported below as a missing value. */
        if (fi->max && nargs == fi->max && p->tok.kind != K_RPAREN) {
            fail(p, off, "function '%s' takes only %u argument%s", fi->name,
                 fi->max, fi->max == 1 ? "" : "s");
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
            fail(p, p->tok.off, "expected ',' or ')' but found %s",
                 found(p, fb));
            return NULL;
        }
        if (lex(p)) return NULL;
    }
    if (nargs < fi->min) {
        fail(p, p->tok.off, "function '%s' takes %s%u argument%s, got %u",
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
    if (lex(p)) return NULL; /* past ")" */
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
    size_t k = skip_space(p, name.off + name.len);
    if (k < p->len && p->src[k] == '(') return parse_call(p);
    if (k >= p->len || p->src[k] != '[') {
        node *n = resolve_var(p, &name, NULL);
        if (!n || lex(p)) return NULL;
        return n;
    }
    if (lex(p)) return NULL; /* "[" */
    size_t open = p->tok.off;
    if (lex(p)) return NULL; /* the key, or the index's first token */
    if (p->tok.kind != K_STR) {
        /* Not a key: the name must be a list, indexed by a number. */
        char *nm = tl_xstrndup(p->src + name.off, name.len);
        uint32_t id;
        tl_type type;
        int r = try_resolve(p, nm, NULL, &id, &type);
        if (r != 0)
            fail(p, p->tok.off, "expected a string key but found %s",
                 found(p, fb));
        else if (!is_list(type))
            fail(p, name.off, "'%s' cannot be indexed", nm);
        free(nm);
        if (p->failed) return NULL;
        node *list = finish_var(p, new_node(p, N_VAR, type, 0), id, type);
        return parse_index(p, list, open);
    }
    token key = p->tok;
    node *n = resolve_var(p, &name, &key);
    if (!n || lex(p)) return NULL;
    if (p->tok.kind != K_RBRACK) {
        fail(p, p->tok.off, "expected ']' but found %s", found(p, fb));
        return NULL;
    }
    if (lex(p)) return NULL;
    return n;
}

/* "[" expr ("," expr)* "]" of constants of one type, at the "[".  The
 * elements are evaluated now and stored in the view's layout, so that the
 * literal is a value like any other. */
static node *parse_list(parser *p)
{
    size_t open = p->tok.off;
    char fb[FOUNDSZ];
    if (enter(p, open) || lex(p)) return NULL;
    if (p->tok.kind == K_RBRACK) {
        /* Its element type would be unknown; after `in` it is not needed. */
        fail(p, open, "an empty list [] is allowed only after 'in'");
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
            fail(p, off, "list elements must be constants");
            return NULL;
        }
        if (el->type != TL_T_NUM && el->type != TL_T_STR) {
            fail(p, off, "list elements must be numbers or strings, got %s",
                 tl_type_name(el->type));
            return NULL;
        }
        if (count && el->type != et) {
            fail(p, off, "list elements must all have one type, got %s and %s",
                 tl_type_name(et), tl_type_name(el->type));
            return NULL;
        }
        et = el->type;
        eval(el, NULL, NULL, &v);
        if (v.type != et) { /* 1 / 0 */
            fail(p, off, "list element is null");
            return NULL;
        }
        if (et == TL_T_STR && v.u.str.len > maxlen) maxlen = v.u.str.len;
        if (last) last->next = el;
        else first = el;
        last = el;
        count++;
        if (p->tok.kind == K_RBRACK) break;
        if (p->tok.kind != K_COMMA) {
            fail(p, p->tok.off, "expected ',' or ']' but found %s",
                 found(p, fb));
            return NULL;
        }
        if (lex(p)) return NULL;
    }
    p->depth--;
    size_t stride = et == TL_T_NUM ? sizeof(double) : sizeof(uint32_t) + maxlen;
    if (stride > LIST_LIT_MAX || count > LIST_LIT_MAX / stride) {
        fail(p, open, "list literal too large (over %u bytes stored)",
             LIST_LIT_MAX);
        return NULL;
    }
    node *n = new_node(p, N_LIT, list_of(et), 0);
    unsigned char *buf = tl_xcalloc(count, stride), *w = buf;
    n->own = buf;
    for (node *el = first; el; el = el->next, w += stride) {
        tl_value v;
        eval(el, NULL, NULL, &v);
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
    if (lex(p)) return NULL; /* past "]" */
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
        n->u.lit.u.str.len = unescape(p->src + t.off + 1, t.len - 2, n->text);
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
        if (enter(p, t.off) || lex(p)) return NULL;
        n = parse_or(p);
        if (!n) return NULL;
        if (p->tok.kind != K_RPAREN) {
            fail(p, p->tok.off, "expected ')' but found %s", found(p, fb));
            return NULL;
        }
        p->depth--;
        break;
    default:
        fail(p, t.off, "expected a value but found %s", found(p, fb));
        return NULL;
    }
    if (lex(p)) return NULL;
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
            fail(p, open, "only a list can be indexed, got %s",
                 tl_type_name(n->type));
            return NULL;
        }
        if (lex(p)) return NULL;
        n = parse_index(p, n, open);
    }
    return n;
}

static node *parse_unary(parser *p)
{
    if (p->tok.kind != K_MINUS) return parse_postfix(p);
    size_t off = p->tok.off;
    if (enter(p, off) || lex(p)) return NULL;
    node *c = parse_unary(p);
    if (!c) return NULL;
    p->depth--;
    if (!num_ok(c->type)) {
        fail(p, off, "operator '-' needs a number, got %s",
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
        if (lex(p)) return NULL;
        node *r = sub(p);
        if (!r) return NULL;
        if (!num_ok(lt) || !num_ok(r->type)) {
            fail(p, o.off, "operator '%c' needs two numbers, got %s and %s",
                 p->src[o.off], tl_type_name(lt), tl_type_name(r->type));
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
    size_t k = skip_space(p, p->tok.off + p->tok.len);
    return k + 2 <= p->len && memcmp(p->src + k, "in", 2) == 0 &&
           (k + 2 == p->len || !is_ident_char((unsigned char)p->src[k + 2]));
}

/* l ["not"] "in" list, at the "in" or "not". */
static node *parse_in(parser *p, node *l)
{
    token ot = p->tok;
    int neg = ot.kind == K_NOT;
    const char *op = neg ? "not in" : "in";
    if (neg && lex(p)) return NULL; /* to "in" */
    if (l->type != TL_T_NUM && l->type != TL_T_STR && l->type != TL_T_NULL) {
        fail(p, ot.off, "operator '%s' needs a number or a string on its left, "
                        "got %s", op, tl_type_name(l->type));
        return NULL;
    }
    if (lex(p)) return NULL;
    node *r;
    size_t k = skip_space(p, p->tok.off + 1);
    if (p->tok.kind == K_LBRACK && k < p->len && p->src[k] == ']') {
        /* [] holds nothing, so it takes whatever type the left side needs. */
        r = new_node(p, N_LIT, list_of(l->type), 0);
        r->u.lit.type = r->type;
        if (lex(p) || lex(p)) return NULL;
    } else {
        r = parse_sum(p);
        if (!r) return NULL;
        int ok = r->type == TL_T_NULL ||
                 (is_list(r->type) &&
                  (l->type == TL_T_NULL || elem_type(r->type) == l->type));
        if (!ok) {
            fail(p, ot.off, "operator '%s' needs %s on its right, got %s", op,
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
    if (lex(p)) return NULL;
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
        fail(p, ot.off,
             "operator '%s' needs two values of the same type, got %s and %s",
             os, tl_type_name(l->type), tl_type_name(r->type));
        return NULL;
    } else if (l->type != r->type ||
               (ordering && l->type != TL_T_NUM && l->type != TL_T_STR)) {
        fail(p, ot.off,
             "operator '%s' needs two numbers or two strings, got %s and %s",
             os, tl_type_name(l->type), tl_type_name(r->type));
        return NULL;
    }
    n = new_node(p, N_CMP, TL_T_BOOL, 0);
    n->kids = l;
    l->next = r;
    n->op = (unsigned char)o;
chained:
    if (cmp_op(p->tok.kind) >= 0 || at_in(p)) {
        fail(p, p->tok.off,
             "comparisons cannot be chained; use 'and' or parentheses");
        return NULL;
    }
    return n;
}

static node *parse_not(parser *p)
{
    if (p->tok.kind != K_NOT) return parse_cmp(p);
    size_t off = p->tok.off;
    if (enter(p, off) || lex(p)) return NULL;
    node *c = parse_not(p);
    if (!c) return NULL;
    p->depth--;
    if (!bool_ok(c->type)) {
        fail(p, off, "operator 'not' needs a bool, got %s",
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
        if (lex(p)) return NULL;
        node *r = sub(p);
        if (!r) return NULL;
        if (!bool_ok(lt) || !bool_ok(r->type)) {
            fail(p, off, "operator '%s' needs two bools, got %s and %s", name,
                 tl_type_name(lt), tl_type_name(r->type));
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

tl_expr *tl_expr_compile(const char *src, size_t len, const tl_expr_scope *scope,
                         tl_type want, size_t *err_offset, char *err,
                         size_t errsz)
{
    TL_ASSERT(src || len == 0);
    tl_expr *e = tl_xcalloc(1, sizeof *e);
    parser p = {.src = src ? src : "", .len = len, .scope = scope, .e = e,
                .err = err, .errsz = errsz};
    char fb[FOUNDSZ];
    node *root = NULL;
    if (lex(&p) == 0) {
        if (p.tok.kind == K_EOF) {
            fail(&p, 0, "empty expression");
        } else {
            root = parse_or(&p);
            if (root && p.tok.kind != K_EOF)
                fail(&p, p.tok.off, "expected end of expression but found %s",
                     found(&p, fb));
            else if (root && want != TL_T_NULL && root->type != want)
                fail(&p, 0, "expression must be %s, got %s", tl_type_name(want),
                     tl_type_name(root->type));
        }
    }
    if (p.failed) {
        if (err_offset) *err_offset = p.err_off;
        tl_expr_free(e);
        return NULL;
    }
    e->root = root;
    e->type = root->type;
    return e;
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
