/*
 * expr_int.h: private to the expression module (expr.c, expr_lex.c,
 * expr_parse.c), not for other modules.  The tokens and the compile state
 * that the lexer and the parser share, the tree the parser builds and the
 * evaluator walks, and the functions the three files call in each other.
 *
 * Ownership: a tl_expr owns every node of its tree (chained through `all`)
 * and what a node's `own` points to; tl_expr_free releases them.
 */
#ifndef TL_EXPR_INT_H
#define TL_EXPR_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "expr.h"
#include "tz.h"

/* A token quoted in a message is cut (tl_fmt_show): a message names the
 * token, it need not reproduce a long literal. */
#define FOUNDSZ (TL_SHOWSZ + 16)

/* lower() writes its result into a buffer of this size inside its node, so
 * that evaluation needs no allocation; longer results are cut (see expr.h). */
#define LOWER_MAX 256

/* ---- tokens ------------------------------------------------------------- */

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

/* ---- tree --------------------------------------------------------------- */

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

static inline int is_list(tl_type t)
{
    return t == TL_T_LIST_NUM || t == TL_T_LIST_STR;
}

/* ---- expr_lex.c: tokens, and the compile's error report ----------------- */

/* Reads the next token into p->tok; 0, or -1 after tl_expr_lex_fail. */
int tl_expr_lex(parser *p);
/* Records a compile error at byte off (the first one wins); returns -1. */
int tl_expr_lex_fail(parser *p, size_t off, const char *fmt, ...)
    TL_PRINTF(3, 4);
/* The current token as the "found ..." part of a message. */
const char *tl_expr_lex_found(const parser *p, char buf[FOUNDSZ]);
/* The first byte at or after i that is not white space. */
size_t tl_expr_lex_space(const parser *p, size_t i);
/* Decodes a string literal's body (n bytes between the quotes, checked by
 * the lexer) into out, NUL-terminated; returns its length, at most n. */
size_t tl_expr_lex_unescape(const char *s, size_t n, char *out);
/* Whether c may continue an identifier. */
int tl_expr_lex_ident_char(unsigned char c);

/* ---- expr_parse.c ------------------------------------------------------- */

/* Parses and type-checks src into e (root, type, vars; nodes on e->all even
 * on failure).  0, or -1 with *err_offset and err as tl_expr_compile
 * reports them. */
int tl_expr_parse(tl_expr *e, const char *src, size_t len,
                  const tl_expr_scope *scope, tl_type want, size_t *err_offset,
                  char *err, size_t errsz);

/* ---- expr.c ------------------------------------------------------------- */

/* Evaluates the subtree at n (the parser folds list literals with it). */
void tl_expr_eval_node(const node *n, tl_expr_fetch fetch, void *ud,
                       tl_value *out);

#endif
