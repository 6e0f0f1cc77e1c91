#include "expr.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/*
 * Nesting bound.  Parser recursion, and through the tree's height the
 * evaluator's recursion, grow only with nesting (parentheses, `not`, unary
 * minus), so a generated or hostile expression cannot overflow the stack.
 * Flat chains such as a + b + c ... or x and y and z ... become one n-ary node
 * evaluated by a loop, so their length needs no bound.
 */
#define MAX_DEPTH 64

/* Token text quoted in a message is cut here: a message names the token, it
 * need not reproduce a long literal. */
#define SHOW_MAX 40
#define SHOWSZ (SHOW_MAX + 4)
#define FOUNDSZ (SHOWSZ + 16)

const char *tl_type_name(tl_type t)
{
    switch (t) {
    case TL_T_NULL: return "null";
    case TL_T_BOOL: return "bool";
    case TL_T_NUM: return "number";
    case TL_T_STR: return "string";
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

typedef struct node node;
struct node {
    node *kids; /* operands in source order, chained through next */
    node *next;
    node *all; /* every node of a tree: freeing needs neither recursion nor
                  per-path cleanup when a compile fails halfway */
    unsigned char kind;
    unsigned char op;   /* N_CMP, N_NULLTEST: the comparison */
    unsigned char link; /* operand of N_ARITH: how it joins the value so far */
    tl_type type;       /* static type */
    union {
        tl_value lit;
        struct {
            uint32_t id;
            size_t keylen;
            const char *key; /* into text, or NULL for a plain name */
        } var;
    } u;
    char text[]; /* unescaped string literal or index key, NUL-terminated */
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

/* Source text for a message, cut at SHOW_MAX bytes. */
static const char *show(const char *s, size_t n, char buf[SHOWSZ])
{
    if (n > SHOW_MAX) {
        memcpy(buf, s, SHOW_MAX);
        memcpy(buf + SHOW_MAX, "...", 4);
    } else {
        memcpy(buf, s, n);
        buf[n] = '\0';
    }
    return buf;
}

/* The current token as the "found ..." part of a message. */
static const char *found(const parser *p, char buf[FOUNDSZ])
{
    const token *t = &p->tok;
    char sh[SHOWSZ];
    show(p->src + t->off, t->len, sh);
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
    char sh[SHOWSZ];
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
        return fail(p, i, "invalid number '%s'", show(s + i, j - i, sh));
    /* strtod needs a terminated string and src need not be one; the syntax
     * checked above keeps strtod from taking hex, inf or nan. */
    char *tmp = tl_xstrndup(s + i, j - i);
    double v = strtod(tmp, NULL);
    free(tmp);
    if (isinf(v))
        return fail(p, i, "number out of range '%s'", show(s + i, j - i, sh));
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
    return p->scope->resolve(p->scope->ud, name, key, id, type);
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
        char sh[SHOWSZ];
        if (!key)
            fail(p, name->off, "unknown name '%s'", nm);
        else if (try_resolve(p, nm, NULL, &id2, &type2) == 0)
            fail(p, name->off, "'%s' cannot be indexed", nm);
        else
            fail(p, name->off, "unknown name '%s[%s]'", nm,
                 show(p->src + key->off, key->len, sh));
        free(nm);
        return NULL;
    }
    free(nm);
    /* A resolver returning something else is a bug in the caller. */
    TL_ASSERT((unsigned)type <= (unsigned)TL_T_STR);
    n->type = type;
    n->u.var.id = id;
    add_var(p->e, n);
    return n;
}

static node *parse_or(parser *p);

/* IDENT or IDENT "[" STRING "]". */
static node *parse_name(parser *p)
{
    token name = p->tok;
    char fb[FOUNDSZ];
    /* Looking at the raw source rather than lexing ahead keeps errors in
     * source order: an unknown plain name is reported before whatever bad
     * token follows it. */
    size_t k = skip_space(p, name.off + name.len);
    if (k >= p->len || p->src[k] != '[') {
        node *n = resolve_var(p, &name, NULL);
        if (!n || lex(p)) return NULL;
        return n;
    }
    if (lex(p) || lex(p)) return NULL; /* "[" then the key */
    if (p->tok.kind != K_STR) {
        fail(p, p->tok.off, "expected a string key but found %s", found(p, fb));
        return NULL;
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

static node *parse_unary(parser *p)
{
    if (p->tok.kind != K_MINUS) return parse_primary(p);
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

static node *parse_cmp(parser *p)
{
    node *l = parse_sum(p);
    if (!l) return NULL;
    int o = cmp_op(p->tok.kind);
    if (o < 0) return l;
    token ot = p->tok;
    char os[SHOWSZ];
    show(p->src + ot.off, ot.len, os);
    if (lex(p)) return NULL;
    node *r = parse_sum(p);
    if (!r) return NULL;
    int ordering = o != OP_EQ && o != OP_NE;
    node *n;
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
    if (cmp_op(p->tok.kind) >= 0) {
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

size_t tl_value_format(const tl_value *v, char *buf, size_t size)
{
    char num[TL_NUMBUF];
    const char *s = "";
    size_t n = 0;
    switch (v ? v->type : TL_T_NULL) {
    case TL_T_BOOL:
        s = v->u.b ? "true" : "false";
        n = strlen(s);
        break;
    case TL_T_NUM:
        n = (size_t)tl_fmt_number(num, v->u.num);
        s = num;
        break;
    case TL_T_STR:
        s = v->u.str.ptr;
        n = v->u.str.len;
        break;
    default:
        break;
    }
    if (size > 0) {
        size_t c = n < size - 1 ? n : size - 1;
        if (c) memcpy(buf, s, c);
        buf[c] = '\0';
    }
    return n;
}
