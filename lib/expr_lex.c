/*
 * expr_lex.c: the expression language's lexer (source bytes to tokens:
 * words, names, numbers, string literals with their escapes, operators)
 * and the report of the first compile error, which the parser shares.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr_int.h"

int tl_expr_lex_fail(parser *p, size_t off, const char *fmt, ...)
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

int tl_expr_lex_ident_char(unsigned char c)
{
    return is_ident_start(c) || is_digit(c) || c == '.';
}

size_t tl_expr_lex_space(const parser *p, size_t i)
{
    while (i < p->len && is_space((unsigned char)p->src[i])) i++;
    return i;
}

/* The current token as the "found ..." part of a message. */
const char *tl_expr_lex_found(const parser *p, char buf[FOUNDSZ])
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
        if (j >= p->len) return tl_expr_lex_fail(p, i, "unterminated string");
        if (s[j] == q) break;
        if (s[j] != '\\') {
            j++;
            continue;
        }
        if (j + 1 >= p->len)
            return tl_expr_lex_fail(p, i, "unterminated string");
        unsigned char x = (unsigned char)s[j + 1];
        switch (x) {
        case '\\': case '"': case '\'': case 'n': case 't': break;
        default:
            if (x > 0x20 && x < 0x7f)
                return tl_expr_lex_fail(p, j,
                                        "unknown escape '\\%c' in string "
                                        "(use \\\\, \\\", \\', \\n or \\t)", x);
            return tl_expr_lex_fail(p, j,
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
size_t tl_expr_lex_unescape(const char *s, size_t n, char *out)
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
    if (j < n && tl_expr_lex_ident_char((unsigned char)s[j])) {
        ok = 0;
        while (j < n && tl_expr_lex_ident_char((unsigned char)s[j])) j++;
    }
    if (!ok)
        return tl_expr_lex_fail(p, i, "invalid number '%s'",
                                tl_fmt_show(s + i, j - i, sh));
    /* strtod needs a terminated string and src need not be one; the syntax
     * checked above keeps strtod from taking hex, inf or nan. */
    char *tmp = tl_xstrndup(s + i, j - i);
    double v = strtod(tmp, NULL);
    free(tmp);
    if (isinf(v))
        return tl_expr_lex_fail(p, i, "number out of range '%s'",
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

int tl_expr_lex(parser *p)
{
    const char *s = p->src;
    size_t n = p->len;
    size_t i = tl_expr_lex_space(p, p->pos), j = i + 1;
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
            return tl_expr_lex_fail(
                p, i, "unexpected character '=' (use '==' to compare)");
        t->kind = K_EQ;
        j++;
        break;
    case '!':
        if (!eq_next)
            return tl_expr_lex_fail(
                p, i, "unexpected character '!' (use 'not' or '!=')");
        t->kind = K_NE;
        j++;
        break;
    case '&':
        return tl_expr_lex_fail(p, i, "unexpected character '&' (use 'and')");
    case '|':
        return tl_expr_lex_fail(p, i, "unexpected character '|' (use 'or')");
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
            while (j < n && tl_expr_lex_ident_char((unsigned char)s[j])) j++;
            t->kind = word_kind(s + i, j - i);
        } else if (c > 0x20 && c < 0x7f) {
            return tl_expr_lex_fail(p, i, "unexpected character '%c'", c);
        } else {
            return tl_expr_lex_fail(p, i, "unexpected byte 0x%02x", c);
        }
    }
    t->len = j - i;
    p->pos = j;
    return 0;
}
