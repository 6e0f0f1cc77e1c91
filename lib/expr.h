/*
 * expr — tailor's expression language: lexer, parser, type checker and an
 * evaluator that allocates nothing.
 *
 * Grammar (lowest precedence first):
 *   expr    := or
 *   or      := and ("or" and)*
 *   and     := not ("and" not)*
 *   not     := "not" not | cmp
 *   cmp     := sum (("=="|"!="|"<"|"<="|">"|">=") sum)?
 *   sum     := prod (("+"|"-") prod)*
 *   prod    := unary (("*"|"/") unary)*
 *   unary   := "-" unary | primary
 *   primary := NUMBER | STRING | "true" | "false" | "null"
 *            | IDENT | IDENT "[" STRING "]" | "(" expr ")"
 * Strings are '...' or "..." with \\ \" \' \n \t escapes.  Identifiers are
 * [A-Za-z_][A-Za-z0-9_.]*.
 *
 * Types: null, bool, number (double), string.  Every variable has a static
 * type but may be null at run time (an absent field, a feature never set).
 * Null rules: a comparison with a null operand is false, except `x == null`
 * and `x != null` against the literal null, which test for absence; null in
 * arithmetic gives null, and so does division by zero; null as an operand
 * of and/or/not counts as false.
 * Type errors (1 + "a", "a" < 2, not 3, a top-level non-bool where a bool is
 * required) are compile-time errors.
 *
 * Names are resolved at compile time through a tl_expr_scope supplied by the
 * caller (event fields, feature names, ...): expr itself knows no names.
 *
 * Ownership: tl_expr_compile returns a tree owned by the caller, freed with
 * tl_expr_free.  Values produced by evaluation borrow string memory from the
 * expression (literals) or from whatever the fetch callback returned; they are
 * valid until the next evaluation or until that memory changes.
 */
#ifndef TL_EXPR_H
#define TL_EXPR_H

#include <stddef.h>
#include <stdint.h>

typedef enum tl_type {
    TL_T_NULL = 0,
    TL_T_BOOL,
    TL_T_NUM,
    TL_T_STR,
} tl_type;

typedef struct tl_value {
    tl_type type;
    union {
        int b;
        double num;
        struct {
            const char *ptr; /* not necessarily NUL-terminated */
            size_t len;
        } str;
    } u;
} tl_value;

#define TL_VALUE_NULL ((tl_value){.type = TL_T_NULL})

/* The name of a type for messages: "null", "bool", "number", "string". */
const char *tl_type_name(tl_type t);

/*
 * Name resolution, called while compiling.  For `name` (NUL-terminated) and,
 * for an index expression name["key"], the key (NUL-terminated; NULL for a
 * plain name): return 0 and set *var (any id the caller likes) and *type, or
 * return -1 if the name is unknown (or cannot be indexed).  An unknown name is
 * reported as a compile error at the name's column.
 */
typedef struct tl_expr_scope {
    int (*resolve)(void *ud, const char *name, const char *key, uint32_t *var,
                   tl_type *type);
    void *ud;
} tl_expr_scope;

/*
 * Variable access, called while evaluating: fill *out with the value of
 * variable `var` (as returned by resolve) and, for an index expression, its
 * key (keylen bytes, also NUL-terminated); set TL_T_NULL when absent.
 * Must not fail.
 */
typedef void (*tl_expr_fetch)(void *ud, uint32_t var, const char *key,
                              size_t keylen, tl_value *out);

typedef struct tl_expr tl_expr;

/*
 * Compiles `src` (len bytes).  `want` is the required result type
 * (TL_T_BOOL for conditions), or TL_T_NULL to accept any type.
 * On error returns NULL, sets *err_offset to the byte offset in src where the
 * problem is (0-based), and writes a message without position, e.g.
 * "unknown name 'visitz'" or "expected ')' but found end of expression".
 */
tl_expr *tl_expr_compile(const char *src, size_t len, const tl_expr_scope *scope,
                         tl_type want, size_t *err_offset, char *err,
                         size_t errsz);

/* The static type of the compiled expression's result. */
tl_type tl_expr_type(const tl_expr *e);

/* Calls fn(ud, var, key) once for each distinct variable the expression reads
 * (key NULL for plain names), in source order.  For explanations and for
 * knowing which features a rule depends on. */
void tl_expr_vars(const tl_expr *e,
                  void (*fn)(void *ud, uint32_t var, const char *key), void *ud);

/* Evaluates; never allocates, never fails. */
void tl_expr_eval(const tl_expr *e, tl_expr_fetch fetch, void *ud,
                  tl_value *out);

/* Convenience for conditions: true iff the result is bool true. */
int tl_expr_true(const tl_expr *e, tl_expr_fetch fetch, void *ud);

void tl_expr_free(tl_expr *e);

/* Writes a value as text for people: numbers via tl_fmt_number (at most 15
 * significant digits), bools true/false, null as
 * "" (empty), strings verbatim.  Returns bytes that would have been written
 * (like snprintf); always NUL-terminates when size > 0. */
size_t tl_value_format(const tl_value *v, char *buf, size_t size);

#endif
