/*
 * expr — tailor's expression language: lexer, parser, type checker and an
 * evaluator that allocates nothing.
 *
 * Grammar (lowest precedence first):
 *   expr    := or
 *   or      := and ("or" and)*
 *   and     := not ("and" not)*
 *   not     := "not" not | cmp
 *   cmp     := sum (("=="|"!="|"<"|"<="|">"|">=") sum
 *                  | ["not"] "in" (sum | "[" "]"))?
 *   sum     := prod (("+"|"-") prod)*
 *   prod    := unary (("*"|"/") unary)*
 *   unary   := "-" unary | postfix
 *   postfix := primary ("[" expr "]")*
 *   primary := NUMBER | STRING | "true" | "false" | "null"
 *            | IDENT | IDENT "[" STRING "]" | IDENT "(" args ")"
 *            | "[" expr ("," expr)* "]" | "(" expr ")"
 *   args    := expr ("," expr)*
 * Strings are '...' or "..." with \\ \" \' \n \t escapes.  Identifiers are
 * [A-Za-z_][A-Za-z0-9_.]*; and, or, not, in, true, false, null are words of
 * the language.  Parentheses, brackets and calls count toward one nesting
 * bound of 64.
 *
 * Types: null, bool, number (double), string, list<number>, list<string>.
 * Every variable has a static type but may be null at run time (an absent
 * field, a feature never set or expired).
 * Null rules: a comparison with a null operand is false, except `x == null`
 * and `x != null` against the literal null, which test for absence; null in
 * arithmetic gives null, and so does division by zero; null as an operand
 * of and/or/not counts as false; `x in l` and `x not in l` are both false
 * when x or l is null.  The literal null is accepted wherever a value may be
 * absent (as an operand, an index, a function argument).
 * Type errors (1 + "a", "a" < 2, not 3, a top-level non-bool where a bool is
 * required) are compile-time errors.
 *
 * Lists.  name["key"] (a string literal) is resolved at compile time with
 * the key, as for attrs["color"]; any other index is a number expression on
 * a list: l[0] is the first element, of the element type, and a negative,
 * fractional or out-of-range index gives null.  A list literal [1, 2, 3] or
 * ["a", "b"] holds constants of one type, number or string (a constant is
 * an expression without names, e.g. -1 or lower("A")); the empty list []
 * is allowed only directly after in / not in.  `x in l` is membership (x of
 * the element type); lists compare with == and != element-wise.
 *
 * Functions (arity and argument types are checked at compile time; the
 * literal null is accepted for any argument and gives a null result, or
 * false for contains):
 *   len(list | string) -> number   elements; characters of a UTF-8 string
 *   contains(list, elem) -> bool   membership, like `elem in list`
 *   contains(string, sub) -> bool  substring (bytes; "" is in every string)
 *   coalesce(a, b, ...) -> type of its arguments (all alike): the first
 *                                  non-null, at least 2 arguments
 *   lower(string) -> string        A-Z lowered, other bytes kept; the result
 *                                  is cut to at most 256 bytes (on a UTF-8
 *                                  character boundary), because evaluation
 *                                  writes it into a buffer of that size
 *                                  inside the expression
 *   days_since(t) -> number        (now - t) / 86400000: fractional days from
 *                                  t (epoch ms) to "now", the time of the
 *                                  event being evaluated (see below)
 *   hour(t, tz) -> number          local hour 0..23 of t (epoch ms) in tz
 *   weekday(t, tz) -> number       local ISO weekday of t in tz: 1 = Monday
 *                                  .. 7 = Sunday
 * "now" for days_since: compiling a call asks the scope for the plain name
 * "ts" (a number, epoch ms: the event's time) as if the expression had
 * named it, and evaluating the call fetches that variable, so it is listed
 * by tl_expr_vars after the call's own variables.  A scope without a number
 * "ts" cannot compile days_since.  Evaluation never reads the clock: event
 * time everywhere, also under replay.
 * Time zones: tz must be a string literal naming a zone of the tz database
 * ("Europe/Madrid"), loaded while compiling (tl_tz_load, tz.h: from $TZDIR
 * or else /usr/share/zoneinfo; "UTC" is built in) and owned by the
 * expression.  Evaluation is a binary search in that memory: no file access,
 * no localtime, no setenv.  For t outside +-8.64e15 ms (about 273,000 years)
 * hour and weekday give null.
 *
 * Names are resolved at compile time through a tl_expr_scope supplied by the
 * caller (event fields, feature names, ...): expr itself knows no names.
 *
 * Ownership: tl_expr_compile returns a tree owned by the caller, freed with
 * tl_expr_free.  Values produced by evaluation borrow string memory from the
 * expression (literals, list literals, lower's buffer) or from whatever the
 * fetch callback returned; they are valid until the next evaluation or until
 * that memory changes.  Because lower writes into the expression, one
 * expression must not be evaluated by two threads at once (tailor evaluates
 * on one thread).
 *
 * Files: expr.c (this API, the evaluator), expr_lex.c (lexer, compile
 * errors), expr_parse.c (parser, type checker), expr_int.h (what they
 * share).  Time zones are the tz module's (tz.h).
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
    TL_T_LIST_NUM, /* list<number> */
    TL_T_LIST_STR, /* list<string> */
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
        /* A borrowed view of n elements, `stride` bytes apart from `base`
         * (no alignment promised: read with tl_list_num / tl_list_str).
         * A list<number> element is a double; a list<string> element is a
         * uint32_t byte length followed by the bytes. */
        struct {
            const unsigned char *base;
            uint32_t n, stride;
        } list;
    } u;
} tl_value;

/* Element i (< n) of a list<number> / list<string> value. */
static inline double tl_list_num(const tl_value *v, uint32_t i)
{
    double d;
    __builtin_memcpy(&d, v->u.list.base + (size_t)i * v->u.list.stride, sizeof d);
    return d;
}
static inline const char *tl_list_str(const tl_value *v, uint32_t i,
                                      size_t *len)
{
    const unsigned char *e = v->u.list.base + (size_t)i * v->u.list.stride;
    uint32_t n;
    __builtin_memcpy(&n, e, sizeof n);
    *len = n;
    return (const char *)e + sizeof n;
}

#define TL_VALUE_NULL ((tl_value){.type = TL_T_NULL})

/* The name of a type for messages: "null", "bool", "number", "string",
 * "list<number>", "list<string>". */
const char *tl_type_name(tl_type t);

/*
 * Name resolution, called while compiling.  For `name` (NUL-terminated) and,
 * for an index expression name["key"], the key (NUL-terminated; NULL for a
 * plain name): return 0 and set *var (any id the caller likes) and *type, or
 * return -1 if the name is unknown (or cannot be indexed).  An unknown name is
 * reported as a compile error at the name's column: "unknown name 'x'", or
 * what `explain` (optional, may be NULL) writes for it into msg (size
 * bytes, returning 1; 0 keeps the default), e.g. a close name the user may
 * have meant.  A name indexed by a number, l[0], is unknown when it
 * resolves neither plain nor with a key (asked with the key "").
 */
typedef struct tl_expr_scope {
    int (*resolve)(void *ud, const char *name, const char *key, uint32_t *var,
                   tl_type *type);
    void *ud;
    int (*explain)(void *ud, const char *name, char *msg, size_t size);
} tl_expr_scope;

/*
 * Variable access, called while evaluating: fill *out with the value of
 * variable `var` (as returned by resolve) and, for an index expression, its
 * key (keylen bytes, also NUL-terminated); set TL_T_NULL when absent.
 * A value of another type than resolve promised reads as null.  Lists are
 * borrowed views as described at tl_value (a string element's stride must
 * cover its length).  Must not fail.
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
 * (key NULL for plain names), in source order; days_since also reads "ts".
 * For explanations and for knowing which features a rule depends on. */
void tl_expr_vars(const tl_expr *e,
                  void (*fn)(void *ud, uint32_t var, const char *key), void *ud);

/* Evaluates; never allocates, never fails. */
void tl_expr_eval(const tl_expr *e, tl_expr_fetch fetch, void *ud,
                  tl_value *out);

/* Convenience for conditions: true iff the result is bool true. */
int tl_expr_true(const tl_expr *e, tl_expr_fetch fetch, void *ud);

void tl_expr_free(tl_expr *e);

/* Writes a value as text for people: numbers via tl_fmt_number (at most 15
 * significant digits), bools true/false, null as "" (empty), strings
 * verbatim, lists as their elements joined with "," ("big_mac,fries,water";
 * the empty list as "").  Returns bytes that would have been written (like
 * snprintf); always NUL-terminates when size > 0. */
size_t tl_value_format(const tl_value *v, char *buf, size_t size);

/* Writes a value as JSON text, like tl_value_format: null, true/false,
 * numbers as tl_fmt_number writes them (NaN and infinities as null),
 * strings quoted and escaped (a byte that is not UTF-8 as U+FFFD), lists as
 * arrays: ["Shoes, red","Boots"]. */
size_t tl_value_format_json(const tl_value *v, char *buf, size_t size);

#endif
