/*
 * Unit tests for lib/expr: compile errors (exact message and byte offset),
 * static types, evaluation with null rules, short-circuit, precedence,
 * escapes, division by zero, lists, functions, time zones (DST boundaries,
 * the POSIX footer past the table, hand-made TZif files, and a cross-check
 * against glibc), variable listing, value formatting, and a check that
 * evaluation never allocates.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../support/alloc_count.h"
#include "../support/testutil.h"
#include "common.h"
#include "expr.h"
#include "tz.h"


/* ---- test scope ------------------------------------------------------- */

enum {
    V_VISITS = 1,
    V_AMOUNT,
    V_SPEND, /* null at run time */
    V_ZERO,
    V_CHANNEL,
    V_ITEM,
    V_NICK, /* null at run time */
    V_VIP,
    V_CHURNED,
    V_OPTIN, /* null at run time */
    V_EVITEM,
    V_BOOM,  /* bool true; its fetches are counted */
    V_WEIRD, /* number by resolve, string by fetch */
    V_FLAG2, /* bool whose fetch says 7 */
    V_LONG,  /* string from env.str */
    V_INSTORE,
    V_ATTRS = 20,
    V_ORDER,    /* list<string> big_mac,fries,water: unaligned, stride 12 */
    V_AMOUNTS,  /* list<number> 12.5,3,-7,0.5: unaligned, stride 10 */
    V_NOITEMS,  /* list<string>, empty */
    V_GONE,     /* list<number>, null at run time */
    V_TAGS,     /* list<string> "",Déjà Vu,x */
    V_TS,       /* the event time: 2024-03-31T10:00:00Z */
    V_LASTSEEN, /* ts - 45.5 days */
    V_NAME,
    V_IDX,  /* 1 */
    V_HALF, /* 0.5 */
    V_T,    /* number from env.t */
    V_MAX = 32,
};

#define TS_NOW 1711879200000.0
#define NAME_VAL "Ana M\xc3\x9cLLER-Smith"

static const struct {
    const char *name;
    int indexed;
    uint32_t id;
    tl_type type;
} names[] = {
    {"visits", 0, V_VISITS, TL_T_NUM},
    {"amount", 0, V_AMOUNT, TL_T_NUM},
    {"spend", 0, V_SPEND, TL_T_NUM},
    {"zero", 0, V_ZERO, TL_T_NUM},
    {"channel", 0, V_CHANNEL, TL_T_STR},
    {"item", 0, V_ITEM, TL_T_STR},
    {"nick", 0, V_NICK, TL_T_STR},
    {"vip", 0, V_VIP, TL_T_BOOL},
    {"churned", 0, V_CHURNED, TL_T_BOOL},
    {"optin", 0, V_OPTIN, TL_T_BOOL},
    {"event.item", 0, V_EVITEM, TL_T_STR},
    {"boom", 0, V_BOOM, TL_T_BOOL},
    {"weird", 0, V_WEIRD, TL_T_NUM},
    {"flag2", 0, V_FLAG2, TL_T_BOOL},
    {"attrs", 1, V_ATTRS, TL_T_STR},
    /* Same id as attrs but plain: tl_expr_vars must keep the two apart. */
    {"attrs_all", 0, V_ATTRS, TL_T_STR},
    {"long", 0, V_LONG, TL_T_STR},
    {"in_store", 0, V_INSTORE, TL_T_BOOL},
    {"usual_order", 0, V_ORDER, TL_T_LIST_STR},
    {"amounts", 0, V_AMOUNTS, TL_T_LIST_NUM},
    {"no_items", 0, V_NOITEMS, TL_T_LIST_STR},
    {"gone", 0, V_GONE, TL_T_LIST_NUM},
    {"tags", 0, V_TAGS, TL_T_LIST_STR},
    {"ts", 0, V_TS, TL_T_NUM},
    {"last_seen", 0, V_LASTSEEN, TL_T_NUM},
    {"name", 0, V_NAME, TL_T_STR},
    {"idx", 0, V_IDX, TL_T_NUM},
    {"half", 0, V_HALF, TL_T_NUM},
    {"t", 0, V_T, TL_T_NUM},
};

/* List values in the borrowed layout of expr.h, deliberately unaligned and
 * with strides wider than the elements, as a feature's state may hold them. */
static unsigned char order_buf[1 + 3 * 12];
static unsigned char amounts_buf[1 + 4 * 10];
static unsigned char tags_buf[3 * 14];

static void put_str_elem(unsigned char *at, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    memcpy(at, &n, sizeof n);
    memcpy(at + sizeof n, s, n);
}

static void init_lists(void)
{
    static const char *order[] = {"big_mac", "fries", "water"};
    static const double amounts[] = {12.5, 3, -7, 0.5};
    static const char *tags[] = {"", "D\xc3\xa9j\xc3\xa0 Vu", "x"};
    memset(order_buf, 0xee, sizeof order_buf);
    memset(amounts_buf, 0xee, sizeof amounts_buf);
    memset(tags_buf, 0xee, sizeof tags_buf);
    for (int i = 0; i < 3; i++) put_str_elem(order_buf + 1 + 12 * i, order[i]);
    for (int i = 0; i < 4; i++)
        memcpy(amounts_buf + 1 + 10 * i, &amounts[i], sizeof(double));
    for (int i = 0; i < 3; i++) put_str_elem(tags_buf + 14 * i, tags[i]);
}

static void list_value(tl_value *out, tl_type type, const unsigned char *base,
                       uint32_t n, uint32_t stride)
{
    out->type = type;
    out->u.list.base = base;
    out->u.list.n = n;
    out->u.list.stride = stride;
}

static const struct {
    const char *key;
    const char *val;
} attrs[] = {
    {"color", "red"}, {"size", "L"}, {"empty", ""}, {"q\"uote", "x"},
    {"a b", "spaced"},
};

static int scope_marker;
static int resolve_bad_ud;

static int test_resolve(void *ud, const char *name, const char *key,
                        uint32_t *var, tl_type *type)
{
    if (ud != &scope_marker) resolve_bad_ud = 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(names[i].name, name) != 0) continue;
        if (names[i].indexed != (key != NULL)) return -1;
        *var = names[i].id;
        *type = names[i].type;
        return 0;
    }
    return -1;
}

static const tl_expr_scope scope = {.resolve = test_resolve,
                                    .ud = &scope_marker};

typedef struct env {
    int fetches[V_MAX];
    int bad_key; /* a key arrived without its NUL or with a wrong length */
    double t;        /* value of `t` */
    const char *str; /* value of `long` (NULL: null) */
    size_t slen;
} env;

static void test_fetch(void *ud, uint32_t var, const char *key, size_t keylen,
                       tl_value *out)
{
    env *en = ud;
    if (var < V_MAX) en->fetches[var]++;
    *out = TL_VALUE_NULL;
    switch (var) {
    case V_VISITS: out->type = TL_T_NUM, out->u.num = 3; break;
    case V_AMOUNT: out->type = TL_T_NUM, out->u.num = 12.5; break;
    case V_ZERO: out->type = TL_T_NUM, out->u.num = 0; break;
    case V_CHANNEL:
        out->type = TL_T_STR, out->u.str.ptr = "email", out->u.str.len = 5;
        break;
    case V_ITEM:
        /* Not NUL-terminated on purpose: values carry a length. */
        out->type = TL_T_STR, out->u.str.ptr = "coffee!", out->u.str.len = 6;
        break;
    case V_EVITEM:
        out->type = TL_T_STR, out->u.str.ptr = "tea", out->u.str.len = 3;
        break;
    case V_VIP:
    case V_BOOM: out->type = TL_T_BOOL, out->u.b = 1; break;
    case V_CHURNED: out->type = TL_T_BOOL, out->u.b = 0; break;
    case V_FLAG2: out->type = TL_T_BOOL, out->u.b = 7; break;
    case V_WEIRD:
        out->type = TL_T_STR, out->u.str.ptr = "x", out->u.str.len = 1;
        break;
    case V_LONG:
        if (en->str)
            out->type = TL_T_STR, out->u.str.ptr = en->str,
            out->u.str.len = en->slen;
        break;
    case V_INSTORE: out->type = TL_T_BOOL, out->u.b = 1; break;
    case V_ORDER: list_value(out, TL_T_LIST_STR, order_buf + 1, 3, 12); break;
    case V_AMOUNTS:
        list_value(out, TL_T_LIST_NUM, amounts_buf + 1, 4, 10);
        break;
    case V_NOITEMS: list_value(out, TL_T_LIST_STR, NULL, 0, 0); break;
    case V_TAGS: list_value(out, TL_T_LIST_STR, tags_buf, 3, 14); break;
    case V_TS: out->type = TL_T_NUM, out->u.num = TS_NOW; break;
    case V_LASTSEEN:
        out->type = TL_T_NUM, out->u.num = TS_NOW - 45.5 * 86400000;
        break;
    case V_NAME:
        out->type = TL_T_STR, out->u.str.ptr = NAME_VAL,
        out->u.str.len = strlen(NAME_VAL);
        break;
    case V_IDX: out->type = TL_T_NUM, out->u.num = 1; break;
    case V_HALF: out->type = TL_T_NUM, out->u.num = 0.5; break;
    case V_T: out->type = TL_T_NUM, out->u.num = en->t; break;
    case V_ATTRS:
        if (!key) break; /* attrs_all */
        if (key[keylen] != '\0' || strlen(key) != keylen) en->bad_key = 1;
        for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
            if (strcmp(attrs[i].key, key) == 0) {
                out->type = TL_T_STR;
                out->u.str.ptr = attrs[i].val;
                out->u.str.len = strlen(attrs[i].val);
            }
        }
        break;
    default: break; /* spend, nick, optin: absent */
    }
}

static tl_expr *compile(const char *src, tl_type want)
{
    size_t off = 0;
    char err[TL_ERRSZ] = "";
    tl_expr *e = tl_expr_compile(src, strlen(src), &scope, want, &off, err,
                                 sizeof err);
    if (!e)
        fprintf(stderr, "\n  unexpected compile error in `%s` at %zu: %s\n",
                src, off, err);
    return e;
}

/* ---- compile table ------------------------------------------------------ */

typedef struct ccase {
    const char *src;
    tl_type want;
    tl_type type;    /* static type when valid */
    const char *msg; /* NULL: valid */
    size_t off;
} ccase;

#define OK(s, w, t) {s, w, t, NULL, 0}
#define BAD(s, w, m, o) {s, w, TL_T_NULL, m, o}
#define ANY TL_T_NULL
/* An unknown function's message lists those that exist. */
#define FNS "(functions: len, contains, coalesce, lower, days_since, hour, weekday)"
#define ESCAPES "(use \\\\, \\\", \\', \\n or \\t)"

static const ccase compile_cases[] = {
    /* valid, with static types */
    OK("1", ANY, TL_T_NUM),
    OK("'abc'", ANY, TL_T_STR),
    OK("true", ANY, TL_T_BOOL),
    OK("null", ANY, TL_T_NULL),
    OK("visits", TL_T_NUM, TL_T_NUM),
    OK("item", TL_T_STR, TL_T_STR),
    OK("visits > 2", TL_T_BOOL, TL_T_BOOL),
    OK("channel == \"email\"", TL_T_BOOL, TL_T_BOOL),
    OK("spend == null", TL_T_BOOL, TL_T_BOOL),
    OK("null != nick", TL_T_BOOL, TL_T_BOOL),
    OK("null == null", TL_T_BOOL, TL_T_BOOL),
    OK("visits < null", TL_T_BOOL, TL_T_BOOL),
    OK("vip == null", TL_T_BOOL, TL_T_BOOL),
    OK("-visits * 2", TL_T_NUM, TL_T_NUM),
    OK("not vip", TL_T_BOOL, TL_T_BOOL),
    OK("not null", TL_T_BOOL, TL_T_BOOL),
    OK("vip and null", TL_T_BOOL, TL_T_BOOL),
    OK("null or null", TL_T_BOOL, TL_T_BOOL),
    OK("null + 1", ANY, TL_T_NUM),
    OK("-null", ANY, TL_T_NUM),
    OK("attrs[\"color\"]", TL_T_STR, TL_T_STR),
    OK("attrs['size'] != 'M'", TL_T_BOOL, TL_T_BOOL),
    OK("attrs [ \"color\" ]", ANY, TL_T_STR),
    OK("attrs[\"\"]", ANY, TL_T_STR),
    OK("event.item == item", TL_T_BOOL, TL_T_BOOL),
    OK("(((visits)))", ANY, TL_T_NUM),
    OK("vip == churned", ANY, TL_T_BOOL),
    OK("(visits > 1) != (amount > 1)", ANY, TL_T_BOOL),
    OK("1 + 2 * 3 - 4 / 5", ANY, TL_T_NUM),
    OK("  visits\t>=\n1  ", TL_T_BOOL, TL_T_BOOL),
    OK("1.5e3 + .5 + 1. + 1E-3 + 2e+2", ANY, TL_T_NUM),
    OK("not not vip", ANY, TL_T_BOOL),
    OK("vip or churned and optin", ANY, TL_T_BOOL),
    OK("\"a\" < \"b\"", ANY, TL_T_BOOL),
    OK("not(vip)and(churned)", ANY, TL_T_BOOL),
    OK("visits>1", ANY, TL_T_BOOL),
    OK("attrs_all == attrs[\"x\"]", ANY, TL_T_BOOL),
    /* lists */
    OK("usual_order", ANY, TL_T_LIST_STR),
    OK("amounts", TL_T_LIST_NUM, TL_T_LIST_NUM),
    OK("usual_order[0]", TL_T_STR, TL_T_STR),
    OK("amounts[idx + 1] * 2", TL_T_NUM, TL_T_NUM),
    OK("usual_order [ 0 ] == 'big_mac'", TL_T_BOOL, TL_T_BOOL),
    OK("usual_order[null]", ANY, TL_T_STR),
    OK("usual_order[amounts[1]]", ANY, TL_T_STR),
    OK("usual_order == null", TL_T_BOOL, TL_T_BOOL),
    OK("usual_order != tags", TL_T_BOOL, TL_T_BOOL),
    OK("[1, 2, 3]", ANY, TL_T_LIST_NUM),
    OK("['a', \"b\"]", TL_T_LIST_STR, TL_T_LIST_STR),
    OK("[-1, 2 * 3, (4), 1 / 4]", ANY, TL_T_LIST_NUM),
    OK("[lower('A'), 'b', coalesce(null, 'c')]", ANY, TL_T_LIST_STR),
    OK("[hour(0, 'UTC')]", ANY, TL_T_LIST_NUM),
    OK("[10, 20][1]", ANY, TL_T_NUM),
    OK("[1] == [1]", ANY, TL_T_BOOL),
    /* in */
    OK("visits in [1, 2, 3]", TL_T_BOOL, TL_T_BOOL),
    OK("item not in ['a']", TL_T_BOOL, TL_T_BOOL),
    OK("item in []", TL_T_BOOL, TL_T_BOOL),
    OK("visits not in [ ]", TL_T_BOOL, TL_T_BOOL),
    OK("null in usual_order", TL_T_BOOL, TL_T_BOOL),
    OK("item in null", TL_T_BOOL, TL_T_BOOL),
    OK("'fries' in usual_order and not visits in amounts", TL_T_BOOL,
       TL_T_BOOL),
    OK("visits in[1]", TL_T_BOOL, TL_T_BOOL),
    OK("visits not  in amounts", TL_T_BOOL, TL_T_BOOL),
    OK("visits + 1 in amounts", TL_T_BOOL, TL_T_BOOL),
    OK("vip == (visits in [3])", TL_T_BOOL, TL_T_BOOL),
    OK("in_store and not vip", TL_T_BOOL, TL_T_BOOL),
    /* functions */
    OK("len(usual_order)", TL_T_NUM, TL_T_NUM),
    OK("len(item) + len(amounts)", ANY, TL_T_NUM),
    OK("len(null)", ANY, TL_T_NUM),
    OK("contains(usual_order, 'x')", TL_T_BOOL, TL_T_BOOL),
    OK("contains(amounts, 1)", TL_T_BOOL, TL_T_BOOL),
    OK("contains(item, 'off')", TL_T_BOOL, TL_T_BOOL),
    OK("contains(null, 1) or contains(item, null)", TL_T_BOOL, TL_T_BOOL),
    OK("coalesce(spend, visits, 0)", TL_T_NUM, TL_T_NUM),
    OK("coalesce(null, nick)", ANY, TL_T_STR),
    OK("coalesce(null, null)", ANY, TL_T_NULL),
    OK("coalesce(optin, vip, false)", ANY, TL_T_BOOL),
    OK("coalesce(gone, amounts)", ANY, TL_T_LIST_NUM),
    OK("coalesce(gone, amounts)[0]", ANY, TL_T_NUM),
    OK("lower(item) == 'coffee'", TL_T_BOOL, TL_T_BOOL),
    OK("days_since(last_seen) > 30", TL_T_BOOL, TL_T_BOOL),
    OK("days_since(null)", ANY, TL_T_NUM),
    OK("hour(ts, 'Europe/Madrid') >= 22", TL_T_BOOL, TL_T_BOOL),
    OK("weekday(ts, \"UTC\")", TL_T_NUM, TL_T_NUM),
    OK("hour ( ts , ('America/New_York') )", ANY, TL_T_NUM),
    OK("weekday(null, 'UTC')", ANY, TL_T_NUM),
    OK("len(lower(coalesce(nick, usual_order[0], '')))", ANY, TL_T_NUM),
    /* empty */
    BAD("", ANY, "empty expression", 0),
    BAD("   ", ANY, "empty expression", 0),
    /* names */
    BAD("visitz > 1", ANY, "unknown name 'visitz'", 0),
    BAD("1 + visitz", ANY, "unknown name 'visitz'", 4),
    BAD("visits..", ANY, "unknown name 'visits..'", 0),
    BAD("attrs", ANY, "unknown name 'attrs'", 0),
    BAD("visits[\"a\"]", ANY, "'visits' cannot be indexed", 0),
    BAD("vip and attrz['a']", ANY, "unknown name 'attrz['a']'", 8),
    BAD("attrs[color]", ANY, "expected a string key but found 'color'", 6),
    BAD("attrs[1]", ANY, "expected a string key but found number 1", 6),
    BAD("attrs[]", ANY, "expected a string key but found ']'", 6),
    BAD("attrs[\"a\"", ANY, "expected ']' but found end of expression", 9),
    BAD("attrs[\"a\" \"b\"]", ANY, "expected ']' but found string \"b\"", 10),
    BAD("attrs[\"a\") ", ANY, "expected ']' but found ')'", 9),
    /* structure */
    BAD("(visits > 1", ANY, "expected ')' but found end of expression", 11),
    BAD("(visits > 1 vip)", ANY, "expected ')' but found 'vip'", 12),
    BAD("visits vip", ANY, "expected end of expression but found 'vip'", 7),
    BAD("visits 2", ANY, "expected end of expression but found number 2", 7),
    BAD("(1))", ANY, "expected end of expression but found ')'", 3),
    BAD("true[\"x\"]", ANY, "only a list can be indexed, got bool", 4),
    BAD("1 +", ANY, "expected a value but found end of expression", 3),
    BAD("1 + )", ANY, "expected a value but found ')'", 4),
    BAD(")", ANY, "expected a value but found ')'", 0),
    BAD("(", ANY, "expected a value but found end of expression", 1),
    BAD("()", ANY, "expected a value but found ')'", 1),
    BAD("and", ANY, "expected a value but found 'and'", 0),
    BAD("vip and or churned", ANY, "expected a value but found 'or'", 8),
    BAD("visits > 1 and", ANY, "expected a value but found end of expression",
        14),
    BAD("not", ANY, "expected a value but found end of expression", 3),
    BAD("1 * * 2", ANY, "expected a value but found '*'", 4),
    BAD("]", ANY, "expected a value but found ']'", 0),
    BAD("1 < visits < 5", ANY,
        "comparisons cannot be chained; use 'and' or parentheses", 11),
    BAD("vip == churned == optin", ANY,
        "comparisons cannot be chained; use 'and' or parentheses", 15),
    BAD("spend == null == vip", ANY,
        "comparisons cannot be chained; use 'and' or parentheses", 14),
    /* types */
    BAD("1 + \"a\"", ANY, "operator '+' needs two numbers, got number and string",
        2),
    BAD("\"a\" + \"b\"", ANY,
        "operator '+' needs two numbers, got string and string", 4),
    BAD("1 + 2 + \"a\"", ANY,
        "operator '+' needs two numbers, got number and string", 6),
    BAD("item * 2", ANY, "operator '*' needs two numbers, got string and number",
        5),
    BAD("visits / vip", ANY, "operator '/' needs two numbers, got number and bool",
        7),
    BAD("visits - (1 < 2)", ANY,
        "operator '-' needs two numbers, got number and bool", 7),
    BAD("-item", ANY, "operator '-' needs a number, got string", 0),
    BAD("- -vip", ANY, "operator '-' needs a number, got bool", 2),
    BAD("\"a\" < 2", ANY,
        "operator '<' needs two numbers or two strings, got string and number",
        4),
    BAD("visits < item", ANY,
        "operator '<' needs two numbers or two strings, got number and string",
        7),
    BAD("visits >= vip", ANY,
        "operator '>=' needs two numbers or two strings, got number and bool",
        7),
    BAD("vip < churned", ANY,
        "operator '<' needs two numbers or two strings, got bool and bool", 4),
    BAD("visits == item", ANY,
        "operator '==' needs two values of the same type, got number and "
        "string",
        7),
    BAD("vip != 1", ANY,
        "operator '!=' needs two values of the same type, got bool and number",
        4),
    BAD("not 3", ANY, "operator 'not' needs a bool, got number", 0),
    BAD("vip and not item", ANY, "operator 'not' needs a bool, got string", 8),
    BAD("vip and 1", ANY, "operator 'and' needs two bools, got bool and number",
        4),
    BAD("visits or vip", ANY, "operator 'or' needs two bools, got number and bool",
        7),
    BAD("vip and churned and visits", ANY,
        "operator 'and' needs two bools, got bool and number", 16),
    BAD("vip or 'x' == item or attrs['size']", ANY,
        "operator 'or' needs two bools, got bool and string", 19),
    /* want */
    BAD("visits", TL_T_BOOL, "expression must be bool, got number", 0),
    BAD("vip", TL_T_NUM, "expression must be number, got bool", 0),
    BAD("null", TL_T_BOOL, "expression must be bool, got null", 0),
    BAD("  item", TL_T_NUM, "expression must be number, got string", 0),
    BAD("visits > 1", TL_T_STR, "expression must be string, got bool", 0),
    /* lexical */
    BAD("visits # 2", ANY, "unexpected character '#'", 7),
    BAD("visits = 1", ANY, "unexpected character '=' (use '==' to compare)", 7),
    BAD("!vip", ANY, "unexpected character '!' (use 'not' or '!=')", 0),
    BAD("vip && churned", ANY, "unexpected character '&' (use 'and')", 4),
    BAD("vip || churned", ANY, "unexpected character '|' (use 'or')", 4),
    BAD(".", ANY, "unexpected character '.'", 0),
    BAD("visits{1}", ANY, "unexpected character '{'", 6),
    BAD("\"x\" == \xc3\xa9", ANY, "unexpected byte 0xc3", 7),
    BAD("1 +\x01", ANY, "unexpected byte 0x01", 3),
    BAD("\"abc", ANY, "unterminated string", 0),
    BAD("item == 'abc", ANY, "unterminated string", 8),
    BAD("item == 'abc\"", ANY, "unterminated string", 8),
    BAD("\"abc\\", ANY, "unterminated string", 0),
    BAD("\"abc\\\"", ANY, "unterminated string", 0),
    BAD("'a\\q'", ANY, "unknown escape '\\q' in string " ESCAPES, 2),
    BAD("item == \"\\x41\"", ANY, "unknown escape '\\x' in string " ESCAPES, 9),
    BAD("'\\\x01'", ANY, "unknown escape in string " ESCAPES, 1),
    BAD("1.2.3", ANY, "invalid number '1.2.3'", 0),
    BAD("12abc", ANY, "invalid number '12abc'", 0),
    BAD("0x1F", ANY, "invalid number '0x1F'", 0),
    BAD("1e", ANY, "invalid number '1e'", 0),
    BAD("2 * 1e+", ANY, "invalid number '1e+'", 4),
    BAD("visits > 1or vip", ANY, "invalid number '1or'", 9),
    BAD("1e999", ANY, "number out of range '1e999'", 0),
    BAD("-1e400 < visits", ANY, "number out of range '1e400'", 1),
    /* list indexes */
    BAD("usual_order['x']", ANY, "list index must be a number, got string",
        12),
    BAD("usual_order[item]", ANY, "list index must be a number, got string",
        12),
    BAD("usual_order[1 < 2]", ANY, "list index must be a number, got bool", 12),
    BAD("usual_order[amounts]", ANY,
        "list index must be a number, got list<number>", 12),
    BAD("visits[0]", ANY, "'visits' cannot be indexed", 0),
    BAD("vip and item[1 + 1]", ANY, "'item' cannot be indexed", 8),
    BAD("attrs[0]", ANY, "expected a string key but found number 0", 6),
    BAD("usual_order[0", ANY, "expected ']' but found end of expression", 13),
    BAD("usual_order[0 1]", ANY, "expected ']' but found number 1", 14),
    BAD("usual_order[]", ANY, "expected a value but found ']'", 12),
    BAD("usual_order[0][0]", ANY, "only a list can be indexed, got string", 14),
    BAD("(visits)[0]", ANY, "only a list can be indexed, got number", 8),
    BAD("attrs['a'][0]", ANY, "only a list can be indexed, got string", 10),
    BAD("null[0]", ANY, "only a list can be indexed, got null", 4),
    BAD("usual_order[visitz]", ANY, "unknown name 'visitz'", 12),
    /* Issue 20: a name that is neither a list nor takes keys is what is
     * wrong, not its index. */
    BAD("usual_ordr[0] == 'x'", ANY, "unknown name 'usual_ordr'", 0),
    BAD("vip and zzz[1 + 1]", ANY, "unknown name 'zzz'", 8),
    /* list literals */
    BAD("[]", ANY, "an empty list [] is allowed only after 'in'", 0),
    BAD("len([ ])", ANY, "an empty list [] is allowed only after 'in'", 4),
    BAD("item in ([])", ANY, "an empty list [] is allowed only after 'in'", 9),
    BAD("[1, 'a']", ANY,
        "list elements must all have one type, got number and string", 4),
    BAD("['a', 'b', 3]", ANY,
        "list elements must all have one type, got string and number", 11),
    BAD("[visits]", ANY, "list elements must be constants", 1),
    BAD("[1, -visits]", ANY, "list elements must be constants", 4),
    BAD("[1, days_since(0)]", ANY, "list elements must be constants", 4),
    BAD("[true]", ANY, "list elements must be numbers or strings, got bool", 1),
    BAD("[null]", ANY, "list elements must be numbers or strings, got null", 1),
    BAD("[[1]]", ANY,
        "list elements must be numbers or strings, got list<number>", 1),
    BAD("[1, 1 / 0]", ANY, "list element is null", 4),
    BAD("[1, 2", ANY, "expected ',' or ']' but found end of expression", 5),
    BAD("[1 2]", ANY, "expected ',' or ']' but found number 2", 3),
    BAD("[1, 2)", ANY, "expected ',' or ']' but found ')'", 5),
    BAD("[1,]", ANY, "expected a value but found ']'", 3),
    BAD("[,]", ANY, "expected a value but found ','", 1),
    BAD("1, 2", ANY, "expected end of expression but found ','", 1),
    BAD("[1] + 1", ANY,
        "operator '+' needs two numbers, got list<number> and number", 4),
    BAD("-[1]", ANY, "operator '-' needs a number, got list<number>", 0),
    BAD("[1] < [2]", ANY,
        "operator '<' needs two numbers or two strings, got list<number> and "
        "list<number>",
        4),
    BAD("[1] == ['a']", ANY,
        "operator '==' needs two values of the same type, got list<number> "
        "and list<string>",
        4),
    BAD("usual_order == 'big_mac'", ANY,
        "operator '==' needs two values of the same type, got list<string> "
        "and string",
        12),
    BAD("not usual_order", ANY, "operator 'not' needs a bool, got list<string>",
        0),
    BAD("[1]", TL_T_BOOL, "expression must be bool, got list<number>", 0),
    BAD("usual_order", TL_T_STR, "expression must be string, got list<string>",
        0),
    /* in */
    BAD("vip in [1]", ANY,
        "operator 'in' needs a number or a string on its left, got bool", 4),
    BAD("vip not in []", ANY,
        "operator 'not in' needs a number or a string on its left, got bool",
        4),
    BAD("usual_order in usual_order", ANY,
        "operator 'in' needs a number or a string on its left, got "
        "list<string>",
        12),
    BAD("visits in ['a']", ANY,
        "operator 'in' needs a list<number> on its right, got list<string>", 7),
    BAD("item in amounts", ANY,
        "operator 'in' needs a list<string> on its right, got list<number>", 5),
    BAD("item in 'coffee'", ANY,
        "operator 'in' needs a list<string> on its right, got string", 5),
    BAD("null in 1", ANY, "operator 'in' needs a list on its right, got number",
        5),
    BAD("visits not in ['a']", ANY,
        "operator 'not in' needs a list<number> on its right, got "
        "list<string>",
        7),
    BAD("visits in [1] in [true]", ANY,
        "comparisons cannot be chained; use 'and' or parentheses", 14),
    BAD("visits in amounts not in amounts", ANY,
        "comparisons cannot be chained; use 'and' or parentheses", 18),
    BAD("visits == 1 in [1]", ANY,
        "comparisons cannot be chained; use 'and' or parentheses", 12),
    BAD("item in [] == vip", ANY,
        "comparisons cannot be chained; use 'and' or parentheses", 11),
    BAD("item in [] + 1", ANY, "expected end of expression but found '+'",
        11),
    BAD("visits in", ANY, "expected a value but found end of expression", 9),
    BAD("visits not [1]", ANY, "expected end of expression but found 'not'",
        7),
    BAD("visits not inside", ANY, "expected end of expression but found 'not'",
        7),
    BAD("in", ANY, "expected a value but found 'in'", 0),
    BAD("vip and in", ANY, "expected a value but found 'in'", 8),
    BAD("item in [1]", ANY,
        "operator 'in' needs a list<string> on its right, got list<number>", 5),
    /* functions */
    BAD("foo(1)", ANY, "unknown function 'foo' " FNS, 0),
    BAD("1 + lenn (item)", ANY, "unknown function 'lenn' " FNS, 4),
    BAD("visits(1)", ANY, "unknown function 'visits' " FNS, 0),
    BAD("foo(visitz", ANY, "unknown function 'foo' " FNS, 0),
    BAD("now() > 1", ANY, "unknown function 'now' " FNS, 0),
    BAD("len()", ANY, "function 'len' takes 1 argument, got 0", 4),
    BAD("len(item, item)", ANY, "function 'len' takes only 1 argument", 10),
    BAD("hour(ts)", ANY, "function 'hour' takes 2 arguments, got 1", 7),
    BAD("coalesce(spend)", ANY,
        "function 'coalesce' takes at least 2 arguments, got 1", 14),
    BAD("contains(usual_order, 'a', 'b')", ANY,
        "function 'contains' takes only 2 arguments", 27),
    BAD("len(visits)", ANY,
        "argument 1 of 'len' must be a list or a string, got number", 4),
    BAD("len(vip)", ANY,
        "argument 1 of 'len' must be a list or a string, got bool", 4),
    BAD("contains(visits, 1)", ANY,
        "argument 1 of 'contains' must be a list or a string, got number", 9),
    BAD("contains(usual_order, 1)", ANY,
        "argument 2 of 'contains' must be a string, got number", 22),
    BAD("contains(amounts, 'a')", ANY,
        "argument 2 of 'contains' must be a number, got string", 18),
    BAD("contains(item, 1)", ANY,
        "argument 2 of 'contains' must be a string, got number", 15),
    BAD("contains(null, vip)", ANY,
        "argument 2 of 'contains' must be a number or a string, got bool", 15),
    BAD("coalesce(visits, item)", ANY,
        "argument 2 of 'coalesce' must be a number, got string", 17),
    BAD("coalesce(null, item, 1)", ANY,
        "argument 3 of 'coalesce' must be a string, got number", 21),
    BAD("coalesce(usual_order, amounts)", ANY,
        "argument 2 of 'coalesce' must be a list<string>, got list<number>",
        22),
    BAD("lower(visits)", ANY,
        "argument 1 of 'lower' must be a string, got number", 6),
    BAD("lower(usual_order)", ANY,
        "argument 1 of 'lower' must be a string, got list<string>", 6),
    BAD("days_since(item)", ANY,
        "argument 1 of 'days_since' must be a number, got string", 11),
    BAD("hour(item, 'UTC')", ANY,
        "argument 1 of 'hour' must be a number, got string", 5),
    BAD("weekday(vip, 'UTC')", ANY,
        "argument 1 of 'weekday' must be a number, got bool", 8),
    BAD("hour(ts, item)", ANY, "time zone must be a string literal", 9),
    BAD("hour(ts, 1)", ANY, "time zone must be a string literal", 9),
    BAD("weekday(ts, coalesce(nick, 'UTC'))", ANY,
        "time zone must be a string literal", 12),
    BAD("hour(ts, 'Mars/Base')", ANY, "unknown time zone 'Mars/Base'", 9),
    BAD("hour(ts, \"Europe/Madrid \")", ANY,
        "unknown time zone 'Europe/Madrid '", 9),
    BAD("hour(ts, 'europe/madrid')", ANY, "unknown time zone 'europe/madrid'",
        9),
    BAD("hour(ts, '../../../etc/passwd')", ANY,
        "unknown time zone '../../../etc/passwd'", 9),
    BAD("hour(ts, '/etc/localtime')", ANY, "unknown time zone '/etc/localtime'",
        9),
    BAD("hour(ts, 'Europe')", ANY, "unknown time zone 'Europe'", 9),
    BAD("hour(ts, '')", ANY, "unknown time zone ''", 9),
    BAD("len(item", ANY, "expected ',' or ')' but found end of expression", 8),
    BAD("len(item item)", ANY, "expected ',' or ')' but found 'item'", 9),
    BAD("len(item]", ANY, "expected ',' or ')' but found ']'", 8),
    BAD("len(item,)", ANY, "expected a value but found ')'", 9),
    BAD("len(,)", ANY, "expected a value but found ','", 4),
    BAD("len(item) + 'a'", ANY,
        "operator '+' needs two numbers, got number and string", 10),
    BAD("lower(item) > 1", ANY,
        "operator '>' needs two numbers or two strings, got string and number",
        12),
    BAD("days_since(last_seen)", TL_T_BOOL,
        "expression must be bool, got number", 0),
    BAD("len(visitz)", ANY, "unknown name 'visitz'", 4),
    BAD("contains(usual_order, 'a'", ANY,
        "expected ',' or ')' but found end of expression", 25),
    BAD("coalesce(1, 2, 'a', visitz)", ANY,
        "argument 3 of 'coalesce' must be a number, got string", 15),
    /* first error in source order wins */
    BAD("visitz # 1", ANY, "unknown name 'visitz'", 0),
    BAD("1 + 'a' + visitz", ANY,
        "operator '+' needs two numbers, got number and string", 2),
    /* long tokens are cut in messages */
    BAD("1 \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", ANY,
        "expected end of expression but found string "
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...",
        2),
    /* Found by fuzz_config: control characters of the source (a line break
     * inside a string literal) are shown as '?', messages stay one line. */
    BAD("item\"\n \"", ANY,
        "expected end of expression but found string \"? \"", 4),
    BAD("visits \"a\r\nb\x7f\"", ANY,
        "expected end of expression but found string \"a??b?\"", 7),
    BAD("hour(ts, 'Europe/\tMadrid\n')", ANY,
        "unknown time zone 'Europe/?Madrid?'", 9),
};

static int run_compile_case(const ccase *c)
{
    size_t off = 12345;
    char err[TL_ERRSZ];
    strcpy(err, "(untouched)");
    tl_expr *e =
        tl_expr_compile(c->src, strlen(c->src), &scope, c->want, &off, err,
                        sizeof err);
    int good;
    if (!c->msg) {
        good = e && tl_expr_type(e) == c->type;
        if (!good)
            fprintf(stderr, "\n  `%s`: want valid %s, got %s (%s at %zu)\n",
                    c->src, tl_type_name(c->type),
                    e ? tl_type_name(tl_expr_type(e)) : "error", err, off);
    } else {
        good = !e && off == c->off && strcmp(err, c->msg) == 0;
        if (!good)
            fprintf(stderr,
                    "\n  `%s`:\n    want %zu: %s\n    got  %zu: %s%s\n",
                    c->src, c->off, c->msg, off, e ? "(compiled) " : "", err);
    }
    tl_expr_free(e);
    return good;
}

static void test_compile_table(void)
{
    size_t n = sizeof compile_cases / sizeof compile_cases[0], valid = 0;
    for (size_t i = 0; i < n; i++) {
        const ccase *c = &compile_cases[i];
        valid += c->msg == NULL;
        CU_ASSERT(run_compile_case(c));
    }
    CU_ASSERT(n >= 60);
    CU_ASSERT(valid >= 20 && n - valid >= 60);
    CU_ASSERT_FALSE(resolve_bad_ud);
}

/* Sources with NUL bytes, which a C string table cannot hold. */
static void test_compile_nul_bytes(void)
{
    size_t off = 0;
    char err[TL_ERRSZ] = "";
    static const char key_nul[] = "attrs[\"a\0b\"]";
    CU_ASSERT_PTR_NULL(tl_expr_compile(key_nul, sizeof key_nul - 1, &scope,
                                       ANY, &off, err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "index key must not contain a NUL byte");
    CU_ASSERT_EQUAL(off, 6);

    static const char stray[] = "1 +\0 2";
    CU_ASSERT_PTR_NULL(tl_expr_compile(stray, sizeof stray - 1, &scope, ANY,
                                       &off, err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "unexpected byte 0x00");
    CU_ASSERT_EQUAL(off, 3);

    /* Only len bytes count: what follows is not part of the expression. */
    tl_expr *e = tl_expr_compile("visits > 1 garbage", 10, &scope, TL_T_BOOL,
                                 &off, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL(e);
    tl_expr_free(e);
    CU_ASSERT_PTR_NULL(tl_expr_compile("(1 + 2)", 6, &scope, ANY, &off, err,
                                       sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "expected ')' but found end of expression");
    CU_ASSERT_EQUAL(off, 6);

    /* A string literal may hold a NUL byte: values carry a length. */
    static const char lit[] = "\"a\0b\"";
    e = tl_expr_compile(lit, sizeof lit - 1, &scope, TL_T_STR, &off, err,
                        sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    tl_value v;
    tl_expr_eval(e, test_fetch, &(env){0}, &v);
    CU_ASSERT_EQUAL(v.type, TL_T_STR);
    CU_ASSERT_EQUAL(v.u.str.len, 3);
    CU_ASSERT(memcmp(v.u.str.ptr, "a\0b", 3) == 0);
    tl_expr_free(e);
    static const char cmp[] = "\"a\0b\" < \"a\0c\"";
    e = tl_expr_compile(cmp, sizeof cmp - 1, &scope, TL_T_BOOL, &off, err,
                        sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_TRUE(tl_expr_true(e, test_fetch, &(env){0}));
    tl_expr_free(e);
}

static void test_compile_args(void)
{
    /* err and err_offset are optional. */
    CU_ASSERT_PTR_NULL(
        tl_expr_compile("visitz", 6, &scope, ANY, NULL, NULL, 0));
    /* A short buffer gets a truncated, terminated message. */
    char small[8];
    size_t off = 99;
    CU_ASSERT_PTR_NULL(
        tl_expr_compile("1 + visitz", 10, &scope, ANY, &off, small, sizeof small));
    CU_ASSERT_STRING_EQUAL(small, "unknown");
    CU_ASSERT_EQUAL(off, 4);
    /* No scope: constants compile, every name is unknown. */
    tl_expr *e = tl_expr_compile("1 + 2", 5, NULL, TL_T_NUM, &off, small,
                                 sizeof small);
    CU_ASSERT_PTR_NOT_NULL(e);
    tl_expr_free(e);
    char err[TL_ERRSZ];
    CU_ASSERT_PTR_NULL(
        tl_expr_compile("1 + x", 5, NULL, ANY, &off, err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "unknown name 'x'");
    CU_ASSERT_EQUAL(off, 4);
    /* An empty source may be NULL. */
    CU_ASSERT_PTR_NULL(tl_expr_compile(NULL, 0, &scope, ANY, &off, err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "empty expression");
    tl_expr_free(NULL);
}

/* ---- nesting ------------------------------------------------------------ */

static char *repeat(const char *pre, int n, const char *mid, const char *post,
                    int m)
{
    size_t len = strlen(pre) * n + strlen(mid) + strlen(post) * m + 1;
    char *s = malloc(len), *w = s;
    for (int i = 0; i < n; i++) w = stpcpy(w, pre);
    w = stpcpy(w, mid);
    for (int i = 0; i < m; i++) w = stpcpy(w, post);
    return s;
}

static void expect_depth(const char *pre, const char *mid, const char *post,
                         size_t width)
{
    size_t off = 0;
    char err[TL_ERRSZ] = "";
    char *ok = repeat(pre, 64, mid, post, 64);
    tl_expr *e = tl_expr_compile(ok, strlen(ok), &scope, ANY, &off, err,
                                 sizeof err);
    CU_ASSERT_PTR_NOT_NULL(e);
    if (!e) fprintf(stderr, "\n  depth 64 `%s...`: %s\n", pre, err);
    tl_expr_free(e);
    free(ok);
    char *deep = repeat(pre, 65, mid, post, 65);
    CU_ASSERT_PTR_NULL(tl_expr_compile(deep, strlen(deep), &scope, ANY, &off,
                                       err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "expression nested too deeply");
    CU_ASSERT_EQUAL(off, 64 * width);
    free(deep);
    /* Very deep input fails the same way instead of overflowing the stack. */
    deep = repeat(pre, 200000, mid, post, 0);
    CU_ASSERT_PTR_NULL(tl_expr_compile(deep, strlen(deep), &scope, ANY, &off,
                                       err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "expression nested too deeply");
    CU_ASSERT_EQUAL(off, 64 * width);
    free(deep);
}

static void test_nesting(void)
{
    expect_depth("(", "visits", ")", 1);
    expect_depth("not ", "vip", "", 4);
    expect_depth("-", "visits", "", 1);

    /* Parentheses and unary operators share one budget. */
    size_t off = 0;
    char err[TL_ERRSZ] = "";
    char *mixed = repeat("(-", 32, "visits", ")", 32);
    tl_expr *e = compile(mixed, TL_T_NUM);
    CU_ASSERT_PTR_NOT_NULL(e);
    tl_expr_free(e);
    free(mixed);
    mixed = repeat("(-", 33, "visits", ")", 33);
    CU_ASSERT_PTR_NULL(tl_expr_compile(mixed, strlen(mixed), &scope, ANY, &off,
                                       err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "expression nested too deeply");
    CU_ASSERT_EQUAL(off, 64);
    free(mixed);

    /* Depth is nesting, not length: many siblings at shallow depth are fine,
     * and so are very long flat chains, evaluated without deep recursion. */
    char *s = repeat("(1)+", 1000, "(1)", "", 0);
    e = compile(s, TL_T_NUM);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    tl_value v;
    tl_expr_eval(e, test_fetch, &(env){0}, &v);
    CU_ASSERT(v.type == TL_T_NUM && v.u.num == 1001);
    tl_expr_free(e);
    free(s);

    s = repeat("visits+", 200000, "1", "", 0);
    e = compile(s, TL_T_NUM);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    env en = {0};
    tl_expr_eval(e, test_fetch, &en, &v);
    CU_ASSERT(v.type == TL_T_NUM && v.u.num == 600001);
    CU_ASSERT_EQUAL(en.fetches[V_VISITS], 200000);
    tl_expr_free(e);
    free(s);

    s = repeat("vip and ", 100000, "churned", " or vip", 100000);
    e = compile(s, TL_T_BOOL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_TRUE(tl_expr_true(e, test_fetch, &(env){0}));
    tl_expr_free(e);
    free(s);
}

/* ---- evaluation table -------------------------------------------------- */

typedef struct ecase {
    const char *src;
    tl_type type; /* run-time type of the result */
    double num;
    const char *str; /* for TL_T_STR; length strlen unless slen */
    size_t slen;
} ecase;

#define NUM(s, v) {s, TL_T_NUM, v, NULL, 0}
#define T(s) {s, TL_T_BOOL, 1, NULL, 0}
#define F(s) {s, TL_T_BOOL, 0, NULL, 0}
#define NUL(s) {s, TL_T_NULL, 0, NULL, 0}
#define STR(s, v) {s, TL_T_STR, 0, v, 0}
/* lists: compared through tl_value_format */
#define LNUM(s, v) {s, TL_T_LIST_NUM, 0, v, 0}
#define LSTR(s, v) {s, TL_T_LIST_STR, 0, v, 0}

static const ecase eval_cases[] = {
    /* precedence and associativity */
    NUM("1 + 2 * 3", 7),
    NUM("(1 + 2) * 3", 9),
    NUM("10 - 4 - 3", 3),
    NUM("100 / 10 / 5", 2),
    NUM("2 * 3 / 4", 1.5),
    NUM("1 - 2 * 3 + 4", -1),
    NUM("8 / 2 * 4", 16),
    NUM("-2 * 3", -6),
    NUM("- -2", 2),
    NUM("-(1 + 2)", -3),
    NUM("2 - -1", 3),
    NUM("2--1", 3),
    NUM("-visits", -3),
    NUM("- - visits", 3),
    NUM("-visits * -2", 6),
    NUM("visits * amount", 37.5),
    NUM("amount - visits * 2", 6.5),
    T("not true or true"),
    F("not (true or true)"),
    T("true or false and false"),
    F("(true or false) and false"),
    T("not 1 == 2"),
    T("1 + 1 == 2 and 2 < 3"),
    T("not vip == churned"),
    F("not not churned"),
    T("-visits < 0"),
    /* numbers */
    NUM("1.5e3", 1500),
    NUM(".5", 0.5),
    NUM("1.", 1),
    NUM("007", 7),
    NUM("1E-3", 0.001),
    NUM("2.5e+1", 25),
    NUM("123456789012345678901234567890", 123456789012345678901234567890.0),
    /* comparisons */
    T("visits > 2"),
    T("visits >= 3"),
    F("visits < 3"),
    T("visits <= 3"),
    T("visits == 3"),
    F("visits != 3"),
    T("amount > visits"),
    T("zero == -0"),
    T("vip == true"),
    T("vip != churned"),
    F("vip == churned"),
    T("(visits > 1) == (amount > 1)"),
    /* null rules */
    F("spend > 1"),
    F("spend < 1"),
    F("spend >= 0"),
    F("spend == 1"),
    F("spend != 1"),
    F("1 != spend"),
    F("spend == spend"),
    F("spend != spend"),
    F("visits == spend"),
    T("spend == null"),
    F("spend != null"),
    T("null == spend"),
    F("null != spend"),
    F("visits == null"),
    T("visits != null"),
    T("null == null"),
    F("null != null"),
    F("visits < null"),
    F("null >= null"),
    F("null < visits"),
    F("nick == \"\""),
    F("nick != \"x\""),
    F("nick < \"x\""),
    T("nick == null"),
    T("item != null"),
    T("optin == null"),
    F("optin == true"),
    F("optin != true"),
    F("optin == optin"),
    NUL("spend + 1"),
    NUL("1 + spend"),
    NUL("1 + 2 * spend"),
    NUL("spend * 0"),
    NUL("-spend"),
    NUL("null + 1"),
    NUL("-null"),
    NUL("null"),
    NUL("spend"),
    NUL("nick"),
    NUL("optin"),
    T("(spend + 1) == null"),
    F("(spend + 1) != null"),
    F("spend + 1 > 0"),
    /* division by zero gives null */
    NUL("1 / 0"),
    NUL("0 / 0"),
    NUL("-1 / 0"),
    NUL("visits / zero"),
    NUL("visits / -0"),
    NUL("1 / 0 + 5"),
    NUL("5 + 1 / 0"),
    NUL("1 / (visits - 3)"),
    T("(1 / 0) == null"),
    F("1 / 0 > 0"),
    NUM("zero / 4", 0),
    NUM("1 / 4", 0.25),
    /* bool operators with null */
    F("not vip"),
    T("not churned"),
    T("not optin"),
    T("not null"),
    T("optin or vip"),
    F("optin or churned"),
    F("optin and vip"),
    F("vip and optin"),
    T("not (optin and vip)"),
    T("null or vip"),
    F("null and vip"),
    F("null or null"),
    T("vip and not churned"),
    T("churned or churned or vip"),
    F("vip and vip and churned"),
    T("vip and vip and vip"),
    /* bool values are normalized */
    T("flag2"),
    T("flag2 == vip"),
    T("flag2 == true"),
    /* a fetch of the wrong type reads as null */
    NUL("weird"),
    T("weird == null"),
    F("weird > 0"),
    /* strings: escapes */
    STR("\"a\\\"b\"", "a\"b"),
    STR("'it\\'s'", "it's"),
    STR("\"tab\\there\"", "tab\there"),
    STR("\"back\\\\slash\"", "back\\slash"),
    STR("\"nl\\n\"", "nl\n"),
    STR("'dq\"in'", "dq\"in"),
    STR("\"sq'in\"", "sq'in"),
    STR("''", ""),
    STR("\"\"", ""),
    STR("\"a\\\\\"", "a\\"),
    STR("'\\\\\\''", "\\'"),
    STR("\"caf\xc3\xa9\"", "caf\xc3\xa9"),
    STR("\"raw\nnewline\"", "raw\nnewline"),
    T("'a\\tb' == \"a\tb\""),
    /* strings: bytewise ordering, then length */
    T("\"abc\" < \"abd\""),
    T("\"ab\" < \"abc\""),
    F("\"abc\" < \"ab\""),
    T("\"\" < \"a\""),
    F("\"\" < \"\""),
    T("\"\" == ''"),
    T("\"b\" > \"abc\""),
    T("\"abc\" == \"abc\""),
    F("\"abc\" != \"abc\""),
    T("\"abc\" <= \"abc\""),
    F("\"abc\" >= \"abd\""),
    T("\"Z\" < \"a\""),
    T("\"\xc3\xa9\" > \"z\""),
    T("item == \"coffee\""),
    F("item == \"coffee!\""),
    T("item < \"coffee!\""),
    T("event.item == \"tea\""),
    T("channel != item"),
    T("(channel > item) == true"),
    STR("item", "coffee"),
    STR("event.item", "tea"),
    /* index expressions */
    STR("attrs[\"color\"]", "red"),
    T("attrs['size'] == \"L\""),
    STR("attrs[\"q\\\"uote\"]", "x"),
    STR("attrs['q\"uote']", "x"),
    T("attrs[\"empty\"] == \"\""),
    STR("attrs[\"a b\"]", "spaced"),
    STR("attrs [ 'color' ]", "red"),
    T("attrs[\"missing\"] == null"),
    F("attrs[\"missing\"] == \"\""),
    T("attrs[\"color\"] != null"),
    F("attrs[\"color\"] < attrs[\"size\"]"),
    NUL("attrs_all"),
    /* literals */
    T("true"),
    F("false"),
    STR("'x'", "x"),
    /* list elements */
    STR("usual_order[0]", "big_mac"),
    STR("usual_order[2]", "water"),
    STR("usual_order[idx]", "fries"),
    STR("usual_order[idx * 2]", "water"),
    STR("usual_order[-0]", "big_mac"),
    STR("usual_order[2.0]", "water"),
    STR("usual_order[amounts[3] * 4]", "water"),
    NUL("usual_order[3]"),
    NUL("usual_order[-1]"),
    NUL("usual_order[0.5]"),
    NUL("usual_order[half]"),
    NUL("usual_order[1e300]"),
    NUL("usual_order[4294967296]"),
    NUL("usual_order[null]"),
    NUL("usual_order[spend]"),
    NUL("usual_order[1 / 0]"),
    T("usual_order[0] == 'big_mac'"),
    F("usual_order[5] == 'big_mac'"),
    T("usual_order[5] == null"),
    NUM("amounts[0]", 12.5),
    NUM("amounts[3]", 0.5),
    NUM("amounts[2] * 2", -14),
    NUL("amounts[4]"),
    NUL("gone[0]"),
    NUL("no_items[0]"),
    STR("tags[0]", ""),
    STR("tags[1]", "D\xc3\xa9j\xc3\xa0 Vu"),
    STR("tags[2]", "x"),
    /* list literals */
    NUM("[10, 20, 30][1]", 20),
    NUM("[1, 2, 3][visits - 1]", 3),
    NUL("[1][1]"),
    STR("['a', 'bc', ''][1]", "bc"),
    STR("['a', 'bc', ''][2]", ""),
    STR("['', 'longer string'][0]", ""),
    STR("[lower('AB'), 'c'][0]", "ab"),
    LNUM("[1, 2.5, -3, 1 / 4]", "1,2.5,-3,0.25"),
    LSTR("['x', \"y z\", '']", "x,y z,"),
    LSTR("usual_order", "big_mac,fries,water"),
    LNUM("amounts", "12.5,3,-7,0.5"),
    LSTR("no_items", ""),
    NUL("gone"),
    /* list equality */
    T("usual_order == usual_order"),
    T("usual_order == ['big_mac', 'fries', 'water']"),
    F("usual_order == ['big_mac', 'fries']"),
    F("usual_order == ['big_mac', 'fries', 'wate']"),
    T("usual_order != tags"),
    T("amounts == [12.5, 3, -7, 0.5]"),
    F("gone == amounts"),
    F("gone != amounts"),
    T("gone == null"),
    F("no_items == null"),
    /* in */
    T("visits in [1, 2, 3]"),
    F("visits in [1, 2]"),
    T("visits not in [1, 2]"),
    F("visits not in [3]"),
    T("'fries' in usual_order"),
    F("'Fries' in usual_order"),
    F("'frie' in usual_order"),
    F("'fries' not in usual_order"),
    T("'' in tags"),
    T("item in ['tea', 'coffee']"),
    F("item in ['coffee!']"),
    T("12.5 in amounts"),
    T("-7 in amounts"),
    F("7 in amounts"),
    T("amounts[1] in amounts"),
    F("spend in [1]"),
    F("spend not in [1]"),
    F("null in usual_order"),
    F("null not in usual_order"),
    F("1 in gone"),
    F("1 not in gone"),
    F("item in null"),
    F("item not in null"),
    F("item in []"),
    T("item not in []"),
    F("'x' in no_items"),
    T("'x' not in no_items"),
    T("not visits in [1]"),
    T("visits + 1 in [4]"),
    T("3 in [1, 2, 3] and 'water' in usual_order"),
    T("(visits in [3]) == true"),
    /* len */
    NUM("len(usual_order)", 3),
    NUM("len(amounts)", 4),
    NUM("len(no_items)", 0),
    NUL("len(gone)"),
    NUM("len(item)", 6),
    NUM("len('')", 0),
    NUM("len(name)", 16),
    NUM("len('D\xc3\xa9j\xc3\xa0')", 4),
    NUM("len(attrs['color'])", 3),
    NUM("len([1, 2])", 2),
    NUL("len(nick)"),
    NUL("len(null)"),
    /* contains */
    T("contains(usual_order, 'water')"),
    F("contains(usual_order, 'wat')"),
    T("contains(amounts, 3)"),
    F("contains(amounts, 4)"),
    F("contains(gone, 3)"),
    F("contains(no_items, 'x')"),
    T("contains(['a', 'b'], 'b')"),
    T("contains(item, 'off')"),
    T("contains(item, 'coffee')"),
    T("contains(item, 'c')"),
    T("contains(item, 'e')"),
    T("contains(item, '')"),
    F("contains(item, 'coffee!')"), /* the '!' lies just past item's length */
    F("contains(item, 'cofe')"),
    F("contains(item, 'coffeecoffee')"),
    T("contains('', '')"),
    F("contains('', 'a')"),
    T("contains(name, 'M\xc3\x9cLLER')"),
    F("contains(nick, 'a')"),
    F("contains(item, nick)"),
    F("contains(usual_order, nick)"),
    F("contains(null, 1)"),
    /* coalesce */
    NUM("coalesce(spend, visits)", 3),
    NUM("coalesce(spend, null, 7)", 7),
    NUM("coalesce(zero, 7)", 0),
    NUM("coalesce(1 / 0, 2)", 2),
    NUL("coalesce(spend, null)"),
    NUL("coalesce(null, null)"),
    STR("coalesce(nick, item)", "coffee"),
    STR("coalesce(nick, 'anon')", "anon"),
    STR("coalesce(attrs['missing'], attrs['size'], '?')", "L"),
    T("coalesce(optin, vip)"),
    F("coalesce(churned, vip)"),
    LSTR("coalesce(no_items, usual_order)", ""), /* empty is not null */
    LNUM("coalesce(gone, amounts)", "12.5,3,-7,0.5"),
    NUM("coalesce(gone, amounts)[1]", 3),
    /* lower */
    STR("lower(name)", "ana m\xc3\x9cller-smith"),
    STR("lower('ABC xyz 123 @[`{')", "abc xyz 123 @[`{"),
    STR("lower(item)", "coffee"),
    STR("lower('')", ""),
    STR("lower('\xc3\x80\xc3\x89')", "\xc3\x80\xc3\x89"),
    NUL("lower(nick)"),
    NUL("lower(null)"),
    T("lower(channel) == 'email'"),
    T("lower('FRIES') in usual_order"),
    /* days_since: now is ts, 2024-03-31T10:00:00Z */
    NUM("days_since(last_seen)", 45.5),
    NUM("days_since(ts)", 0),
    NUM("days_since(ts + 86400000)", -1),
    NUM("days_since(ts - 12 * 3600000)", 0.5),
    NUM("days_since(0)", 19813 + 10.0 / 24),
    T("days_since(last_seen) > 30"),
    NUL("days_since(spend)"),
    NUL("days_since(null)"),
    F("days_since(spend) > 30"),
    /* hour, weekday (more in the time zone tables) */
    NUM("hour(ts, 'UTC')", 10),
    NUM("weekday(ts, 'UTC')", 7),
    NUM("hour(ts, 'Europe/Madrid')", 12),
    NUM("hour(ts, 'America/New_York')", 6),
    NUM("hour(0, 'UTC')", 0),
    NUM("weekday(0, 'UTC')", 4),
    NUM("hour(-1, 'UTC')", 23),
    NUM("weekday(-1, 'UTC')", 3),
    NUM("hour(86399999.9, 'UTC')", 23),
    NUM("weekday(8.64e15, 'UTC')", 6),
    NUM("weekday(-8.64e15, 'UTC')", 2),
    NUM("hour(-8.64e15, 'UTC')", 0),
    NUL("hour(8.64e15 + 1000, 'UTC')"),
    NUL("hour(-1e300, 'UTC')"),
    NUL("hour(spend, 'UTC')"),
    NUL("weekday(null, 'Europe/Madrid')"),
    T("weekday(ts, 'Europe/Madrid') in [6, 7] and hour(ts, 'UTC') < 12"),
};

static int same_value(const tl_value *v, const ecase *c)
{
    if (v->type != c->type) return 0;
    switch (c->type) {
    case TL_T_LIST_NUM:
    case TL_T_LIST_STR: {
        char buf[256];
        size_t n = tl_value_format(v, buf, sizeof buf);
        return n == strlen(c->str) && strcmp(buf, c->str) == 0;
    }
    case TL_T_NUM: return v->u.num == c->num;
    case TL_T_BOOL: return v->u.b == (c->num != 0);
    case TL_T_STR: {
        size_t n = c->slen ? c->slen : strlen(c->str);
        return v->u.str.len == n && memcmp(v->u.str.ptr, c->str, n) == 0;
    }
    default: return 1;
    }
}

static void test_eval_table(void)
{
    size_t n = sizeof eval_cases / sizeof eval_cases[0];
    for (size_t i = 0; i < n; i++) {
        const ecase *c = &eval_cases[i];
        tl_expr *e = compile(c->src, ANY);
        CU_ASSERT_PTR_NOT_NULL(e);
        if (!e) continue;
        env en = {0};
        tl_value v;
        tl_expr_eval(e, test_fetch, &en, &v);
        int good = same_value(&v, c);
        CU_ASSERT(good);
        CU_ASSERT_FALSE(en.bad_key);
        if (!good) {
            char buf[64];
            tl_value_format(&v, buf, sizeof buf);
            fprintf(stderr, "\n  `%s`: got %s '%s'\n", c->src,
                    tl_type_name(v.type), buf);
        }
        /* A run-time value is null or of the static type. */
        CU_ASSERT(v.type == TL_T_NULL || v.type == tl_expr_type(e));
        /* Evaluation is repeatable. */
        tl_value w;
        tl_expr_eval(e, test_fetch, &en, &w);
        CU_ASSERT(same_value(&w, c));
        CU_ASSERT_EQUAL(tl_expr_true(e, test_fetch, &en),
                        c->type == TL_T_BOOL && c->num != 0);
        tl_expr_free(e);
    }
}

static int fetches_of(const char *src, int var)
{
    tl_expr *e = compile(src, TL_T_BOOL);
    if (!e) return -1;
    env en = {0};
    tl_value v;
    tl_expr_eval(e, test_fetch, &en, &v);
    tl_expr_free(e);
    return en.fetches[var];
}

static int boom_fetches(const char *src) { return fetches_of(src, V_BOOM); }

static void test_short_circuit(void)
{
    CU_ASSERT_EQUAL(boom_fetches("false and boom"), 0);
    CU_ASSERT_EQUAL(boom_fetches("churned and boom"), 0);
    CU_ASSERT_EQUAL(boom_fetches("optin and boom"), 0);
    CU_ASSERT_EQUAL(boom_fetches("spend > 1 and boom"), 0);
    CU_ASSERT_EQUAL(boom_fetches("vip and churned and boom"), 0);
    CU_ASSERT_EQUAL(boom_fetches("true or boom"), 0);
    CU_ASSERT_EQUAL(boom_fetches("vip or boom"), 0);
    CU_ASSERT_EQUAL(boom_fetches("churned or vip or boom"), 0);
    CU_ASSERT_EQUAL(boom_fetches("vip or boom and boom"), 0);
    CU_ASSERT_EQUAL(boom_fetches("true and boom"), 1);
    CU_ASSERT_EQUAL(boom_fetches("false or boom"), 1);
    CU_ASSERT_EQUAL(boom_fetches("optin or boom"), 1);
    CU_ASSERT_EQUAL(boom_fetches("churned or churned or boom"), 1);
    CU_ASSERT_EQUAL(boom_fetches("boom and boom and churned"), 2);
    CU_ASSERT_EQUAL(boom_fetches("not boom or boom"), 2);
    /* coalesce stops at the first non-null; in and contains skip the list
     * when the value is null */
    CU_ASSERT_EQUAL(boom_fetches("coalesce(vip, boom)"), 0);
    CU_ASSERT_EQUAL(boom_fetches("coalesce(churned, boom)"), 0);
    CU_ASSERT_EQUAL(boom_fetches("coalesce(optin, boom, boom)"), 1);
    CU_ASSERT_EQUAL(boom_fetches("coalesce(optin, null, boom)"), 1);
    CU_ASSERT_EQUAL(fetches_of("nick in usual_order", V_ORDER), 0);
    CU_ASSERT_EQUAL(fetches_of("nick not in usual_order", V_ORDER), 0);
    CU_ASSERT_EQUAL(fetches_of("item in usual_order", V_ORDER), 1);
    CU_ASSERT_EQUAL(fetches_of("contains(gone, visits)", V_VISITS), 0);
    CU_ASSERT_EQUAL(fetches_of("contains(amounts, visits)", V_VISITS), 1);
    CU_ASSERT_EQUAL(fetches_of("gone[visits] == 1", V_VISITS), 0);
}

static void test_borrowed_strings(void)
{
    env en = {0};
    tl_value v, w;
    tl_expr *e = compile("attrs[\"color\"]", TL_T_STR);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    tl_expr_eval(e, test_fetch, &en, &v);
    /* The value is the fetch's memory, not a copy. */
    CU_ASSERT_PTR_EQUAL(v.u.str.ptr, attrs[0].val);
    tl_expr_free(e);

    e = compile("'lit'", TL_T_STR);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    tl_expr_eval(e, test_fetch, &en, &v);
    tl_expr_eval(e, test_fetch, &en, &w);
    CU_ASSERT_PTR_EQUAL(v.u.str.ptr, w.u.str.ptr);
    CU_ASSERT_EQUAL(v.u.str.len, 3);
    tl_expr_free(e);

    /* List elements and lists are the fetch's memory too. */
    e = compile("usual_order[1]", TL_T_STR);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    tl_expr_eval(e, test_fetch, &en, &v);
    CU_ASSERT_PTR_EQUAL(v.u.str.ptr, (const char *)order_buf + 1 + 12 + 4);
    CU_ASSERT_EQUAL(v.u.str.len, 5);
    tl_expr_free(e);
    e = compile("coalesce(null, usual_order)", TL_T_LIST_STR);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    tl_expr_eval(e, test_fetch, &en, &v);
    CU_ASSERT_PTR_EQUAL(v.u.list.base, order_buf + 1);
    tl_expr_free(e);
    /* lower borrows its input when there is nothing to lower. */
    e = compile("lower(item)", TL_T_STR);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    tl_expr_eval(e, test_fetch, &en, &v);
    tl_expr_eval(e, test_fetch, &en, &w);
    CU_ASSERT(v.u.str.len == 6 && w.u.str.ptr == v.u.str.ptr &&
              memcmp(v.u.str.ptr, "coffee!", 7) == 0);
    tl_expr_free(e);
    /* A list literal is stored once, in the expression. */
    e = compile("['a', 'bcd']", TL_T_LIST_STR);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    tl_expr_eval(e, test_fetch, &en, &v);
    tl_expr_eval(e, test_fetch, &en, &w);
    CU_ASSERT(v.u.list.base == w.u.list.base && v.u.list.n == 2 &&
              v.u.list.stride == 7);
    tl_expr_free(e);
}

/* ---- variables ---------------------------------------------------------- */

typedef struct seen {
    int n;
    uint32_t var[16];
    char key[16][32];
    int haskey[16];
} seen;

static void collect(void *ud, uint32_t var, const char *key)
{
    seen *s = ud;
    if (s->n >= 16) return;
    s->var[s->n] = var;
    s->haskey[s->n] = key != NULL;
    snprintf(s->key[s->n], sizeof s->key[0], "%s", key ? key : "");
    s->n++;
}

/* expect: "id" for a plain name or "id:key", space separated. */
static int vars_are(const char *src, const char *expect)
{
    tl_expr *e = compile(src, ANY);
    if (!e) return 0;
    seen s = {0};
    tl_expr_vars(e, collect, &s);
    tl_expr_free(e);
    char got[512] = "";
    for (int i = 0; i < s.n; i++) {
        size_t l = strlen(got);
        snprintf(got + l, sizeof got - l, "%s%u%s%s", i ? " " : "",
                 (unsigned)s.var[i], s.haskey[i] ? ":" : "", s.key[i]);
    }
    if (strcmp(got, expect) != 0) {
        fprintf(stderr, "\n  vars of `%s`: want \"%s\", got \"%s\"\n", src,
                expect, got);
        return 0;
    }
    return 1;
}

static void test_vars(void)
{
    CU_ASSERT(vars_are("1 + 2", ""));
    CU_ASSERT(vars_are("visits", "1"));
    CU_ASSERT(vars_are("spend == null", "3"));
    CU_ASSERT(vars_are("null != spend", "3"));
    CU_ASSERT(vars_are("event.item == item", "11 6"));
    CU_ASSERT(vars_are("item == event.item", "6 11"));
    CU_ASSERT(vars_are("visits > 1 and attrs[\"color\"] == \"red\" or "
                       "visits < 5 and attrs[\"size\"] != attrs[\"color\"] "
                       "and channel == \"x\"",
                       "1 20:color 20:size 5"));
    CU_ASSERT(vars_are("attrs['color'] == attrs[\"color\"]", "20:color"));
    CU_ASSERT(vars_are("attrs['q\\\"uote'] == attrs[\"\"]", "20:q\"uote 20:"));
    CU_ASSERT(vars_are("attrs_all == attrs[\"x\"] or attrs_all == 'y'",
                       "20 20:x"));
    CU_ASSERT(vars_are("-(amount + visits) * amount / zero", "2 1 4"));
    /* Short-circuit does not hide variables: the list is static. */
    CU_ASSERT(vars_are("false and (boom or vip)", "12 8"));
    CU_ASSERT(vars_are("not not optin", "10"));
    /* lists, functions; days_since also reads ts (26), after its argument */
    CU_ASSERT(vars_are("usual_order[idx] in tags", "21 29 25"));
    CU_ASSERT(vars_are("[1, 2][idx] in amounts", "29 22"));
    CU_ASSERT(vars_are("coalesce(nick, item, 'x') != lower(item)", "7 6"));
    CU_ASSERT(vars_are("days_since(last_seen) > 1", "27 26"));
    CU_ASSERT(vars_are("days_since(ts)", "26"));
    CU_ASSERT(vars_are("ts > 0 and days_since(last_seen) < 1", "26 27"));
    CU_ASSERT(vars_are("hour(t, 'UTC') + weekday(t, 'Europe/Madrid')", "31"));
    CU_ASSERT(vars_are("contains(usual_order, attrs['k'])", "21 20:k"));
}

/* ---- formatting --------------------------------------------------------- */

static void test_format(void)
{
    char buf[64];
    tl_value v = TL_VALUE_NULL;
    memset(buf, 'x', sizeof buf);
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, sizeof buf), 0);
    CU_ASSERT_STRING_EQUAL(buf, "");

    v.type = TL_T_BOOL;
    v.u.b = 1;
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, sizeof buf), 4);
    CU_ASSERT_STRING_EQUAL(buf, "true");
    v.u.b = 0;
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, sizeof buf), 5);
    CU_ASSERT_STRING_EQUAL(buf, "false");

    static const struct {
        double v;
        const char *s;
    } nums[] = {{6, "6"},       {0.29, "0.29"},     {-0.5, "-0.5"},
                {1e300, "1e+300"}, {15.3, "15.3"}, {-0.0, "0"},
                {1.0 / 3, "0.333333333333333"}, {0.1 + 0.2, "0.3"},
                {50.269999999999996, "50.27"}, {1e15, "1e+15"},
                {123456789012345.0, "123456789012345"}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        v.type = TL_T_NUM;
        v.u.num = nums[i].v;
        CU_ASSERT_EQUAL(tl_value_format(&v, buf, sizeof buf),
                        strlen(nums[i].s));
        CU_ASSERT_STRING_EQUAL(buf, nums[i].s);
    }

    /* Strings verbatim, by length: no terminator needed, NULs kept. */
    v.type = TL_T_STR;
    v.u.str.ptr = "hello, world";
    v.u.str.len = 5;
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, sizeof buf), 5);
    CU_ASSERT_STRING_EQUAL(buf, "hello");
    v.u.str.ptr = "a\0b";
    v.u.str.len = 3;
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, sizeof buf), 3);
    CU_ASSERT(memcmp(buf, "a\0b\0", 4) == 0);
    v.u.str.ptr = NULL;
    v.u.str.len = 0;
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, sizeof buf), 0);
    CU_ASSERT_STRING_EQUAL(buf, "");

    /* Truncation like snprintf. */
    v.u.str.ptr = "hello";
    v.u.str.len = 5;
    memset(buf, 'x', sizeof buf);
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, 3), 5);
    CU_ASSERT_STRING_EQUAL(buf, "he");
    CU_ASSERT_EQUAL(buf[3], 'x');
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, 1), 5);
    CU_ASSERT_STRING_EQUAL(buf, "");
    memset(buf, 'x', sizeof buf);
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, 0), 5);
    CU_ASSERT_EQUAL(buf[0], 'x');
    CU_ASSERT_EQUAL(tl_value_format(&v, NULL, 0), 5);
    v.type = TL_T_NUM;
    v.u.num = 12345.5;
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, 4), 7);
    CU_ASSERT_STRING_EQUAL(buf, "123");
    v.type = TL_T_BOOL;
    v.u.b = 0;
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, 5), 5);
    CU_ASSERT_STRING_EQUAL(buf, "fals");

    /* Lists: elements joined with ",", numbers as above, strings verbatim. */
    unsigned char lb[3 * 16];
    static const char *elems[] = {"big_mac", "", "water"};
    for (int i = 0; i < 3; i++) put_str_elem(lb + 16 * i, elems[i]);
    v.type = TL_T_LIST_STR;
    v.u.list.base = lb;
    v.u.list.n = 3;
    v.u.list.stride = 16;
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, sizeof buf), 14);
    CU_ASSERT_STRING_EQUAL(buf, "big_mac,,water");
    memset(buf, 'x', sizeof buf);
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, 10), 14);
    CU_ASSERT_STRING_EQUAL(buf, "big_mac,,");
    CU_ASSERT_EQUAL(buf[10], 'x');
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, 8), 14);
    CU_ASSERT_STRING_EQUAL(buf, "big_mac");
    CU_ASSERT_EQUAL(tl_value_format(&v, NULL, 0), 14);
    v.u.list.n = 1;
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, sizeof buf), 7);
    CU_ASSERT_STRING_EQUAL(buf, "big_mac");
    v.u.list.n = 0;
    v.u.list.base = NULL;
    memset(buf, 'x', sizeof buf);
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, sizeof buf), 0);
    CU_ASSERT_STRING_EQUAL(buf, "");
    double nl[3] = {0.1 + 0.2, -0.5, 1e300};
    v.type = TL_T_LIST_NUM;
    v.u.list.base = (const unsigned char *)nl;
    v.u.list.n = 3;
    v.u.list.stride = sizeof(double);
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, sizeof buf), 15);
    CU_ASSERT_STRING_EQUAL(buf, "0.3,-0.5,1e+300");
    v.type = TL_T_LIST_STR; /* a string of 0 bytes per element, stride 4 */
    unsigned char zeros[8] = {0};
    v.u.list.base = zeros;
    v.u.list.n = 2;
    v.u.list.stride = 4;
    CU_ASSERT_EQUAL(tl_value_format(&v, buf, sizeof buf), 1);
    CU_ASSERT_STRING_EQUAL(buf, ",");

    /* Round trip: what eval produces formats as expected. */
    tl_expr *e = compile("visits * amount", TL_T_NUM);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    tl_expr_eval(e, test_fetch, &(env){0}, &v);
    tl_value_format(&v, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "37.5");
    tl_expr_free(e);
    e = compile("coalesce(gone, amounts)", TL_T_LIST_NUM);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    tl_expr_eval(e, test_fetch, &(env){0}, &v);
    tl_value_format(&v, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "12.5,3,-7,0.5");
    tl_expr_free(e);
}

/* JSON text: null, bools, numbers (non-finite as null), strings escaped,
 * lists as arrays (the empty list too); snprintf-like lengths. */
static void test_format_json(void)
{
    char buf[64];
    tl_value v = TL_VALUE_NULL;
    CU_ASSERT_EQUAL(tl_value_format_json(&v, buf, sizeof buf), 4);
    CU_ASSERT_STRING_EQUAL(buf, "null");
    CU_ASSERT_EQUAL(tl_value_format_json(NULL, buf, sizeof buf), 4);
    v.type = TL_T_BOOL;
    v.u.b = 1;
    tl_value_format_json(&v, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "true");
    v.type = TL_T_NUM;
    v.u.num = 0.1 + 0.2;
    tl_value_format_json(&v, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "0.3");
    v.u.num = NAN;
    tl_value_format_json(&v, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "null");
    v.u.num = -INFINITY;
    tl_value_format_json(&v, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "null");
    v.type = TL_T_STR;
    v.u.str.ptr = "a\"b\\c\n\x01\xe2\x82";
    v.u.str.len = strlen(v.u.str.ptr);
    CU_ASSERT_EQUAL(tl_value_format_json(&v, NULL, 0), 27);
    tl_value_format_json(&v, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "\"a\\\"b\\\\c\\u000a\\u0001\xef\xbf\xbd\xef\xbf\xbd\"");
    memset(buf, 'x', sizeof buf);
    CU_ASSERT_EQUAL(tl_value_format_json(&v, buf, 5), 27);
    CU_ASSERT_STRING_EQUAL(buf, "\"a\\\"");
    unsigned char lb[2 * 16];
    put_str_elem(lb, "Shoes, red");
    put_str_elem(lb + 16, "");
    v.type = TL_T_LIST_STR;
    v.u.list.base = lb;
    v.u.list.n = 2;
    v.u.list.stride = 16;
    tl_value_format_json(&v, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "[\"Shoes, red\",\"\"]");
    v.u.list.n = 0;
    v.u.list.base = NULL;
    tl_value_format_json(&v, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "[]");
    double nl[2] = {-0.5, 1e300};
    v.type = TL_T_LIST_NUM;
    v.u.list.base = (const unsigned char *)nl;
    v.u.list.n = 2;
    v.u.list.stride = sizeof(double);
    tl_value_format_json(&v, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "[-0.5,1e+300]");
}

static void test_type_names(void)
{
    CU_ASSERT_STRING_EQUAL(tl_type_name(TL_T_NULL), "null");
    CU_ASSERT_STRING_EQUAL(tl_type_name(TL_T_BOOL), "bool");
    CU_ASSERT_STRING_EQUAL(tl_type_name(TL_T_NUM), "number");
    CU_ASSERT_STRING_EQUAL(tl_type_name(TL_T_STR), "string");
    CU_ASSERT_STRING_EQUAL(tl_type_name(TL_T_LIST_NUM), "list<number>");
    CU_ASSERT_STRING_EQUAL(tl_type_name(TL_T_LIST_STR), "list<string>");
}

/* ---- time zones ---------------------------------------------------------- */

/* Expected values from Python's zoneinfo (an independent reader of the same
 * tzdata).  DST changes are tested one second before and at the change. */
static const struct tzcase {
    const char *zone;
    long long ms;
    int hour, weekday;
} tz_cases[] = {
    /* Europe/Madrid 2024: spring forward 01:00Z, fall back 01:00Z */
    /* 2024-03-31 00:59:59Z = 01:59:59 CET */
    {"Europe/Madrid", 1711846799000LL, 1, 7},
    /* 2024-03-31 01:00:00Z = 03:00:00 CEST */
    {"Europe/Madrid", 1711846800000LL, 3, 7},
    /* 2024-10-27 00:59:59Z = 02:59:59 CEST */
    {"Europe/Madrid", 1729990799000LL, 2, 7},
    /* 2024-10-27 01:00:00Z = 02:00:00 CET */
    {"Europe/Madrid", 1729990800000LL, 2, 7},
    /* 2024-10-27 01:59:59Z = 02:59:59 CET */
    {"Europe/Madrid", 1729994399000LL, 2, 7},
    /* 2024-10-27 02:00:00Z = 03:00:00 CET */
    {"Europe/Madrid", 1729994400000LL, 3, 7},
    /* 2024-03-30 23:30:00Z = 03-31 00:30 CET */
    {"Europe/Madrid", 1711841400000LL, 0, 7},
    /* 2024-03-31 22:30:00Z = 04-01 00:30 CEST */
    {"Europe/Madrid", 1711924200000LL, 0, 1},
    /* 2024-01-15 12:00:00Z = 13:00 CET */
    {"Europe/Madrid", 1705320000000LL, 13, 1},
    /* America/New_York 2024 */
    /* 2024-03-10 06:59:59Z = 01:59:59 EST */
    {"America/New_York", 1710053999000LL, 1, 7},
    /* 2024-03-10 07:00:00Z = 03:00:00 EDT */
    {"America/New_York", 1710054000000LL, 3, 7},
    /* 2024-11-03 05:59:59Z = 01:59:59 EDT */
    {"America/New_York", 1730613599000LL, 1, 7},
    /* 2024-11-03 06:00:00Z = 01:00:00 EST */
    {"America/New_York", 1730613600000LL, 1, 7},
    /* 2024-11-03 07:00:00Z = 02:00:00 EST */
    {"America/New_York", 1730617200000LL, 2, 7},
    /* 2024-03-11 03:00:00Z = 03-10 23:00 EDT */
    {"America/New_York", 1710126000000LL, 23, 7},
    /* UTC */
    {"UTC", 1711846799000LL, 0, 7},
    {"UTC", 0LL, 0, 4},
    {"UTC", -1000LL, 23, 3},
    /* past the table (2037): the POSIX footer rule */
    /* 2040-03-25 00:59:59Z = 01:59:59 CET */
    {"Europe/Madrid", 2216249999000LL, 1, 7},
    /* 2040-03-25 01:00:00Z = 03:00:00 CEST */
    {"Europe/Madrid", 2216250000000LL, 3, 7},
    /* 2040-10-28 00:59:59Z = 02:59:59 CEST */
    {"Europe/Madrid", 2234998799000LL, 2, 7},
    /* 2040-10-28 01:00:00Z = 02:00:00 CET */
    {"Europe/Madrid", 2234998800000LL, 2, 7},
    /* 2100-03-28 00:59:59Z = 01:59:59 CET */
    {"Europe/Madrid", 4109878799000LL, 1, 7},
    /* 2100-03-28 01:00:00Z = 03:00:00 CEST */
    {"Europe/Madrid", 4109878800000LL, 3, 7},
    /* 2100-10-31 00:59:59Z = 02:59:59 CEST */
    {"Europe/Madrid", 4128627599000LL, 2, 7},
    /* 2100-10-31 01:00:00Z = 02:00:00 CET */
    {"Europe/Madrid", 4128627600000LL, 2, 7},
    /* 2050-03-13 06:59:59Z = 01:59:59 EST */
    {"America/New_York", 2530767599000LL, 1, 7},
    /* 2050-03-13 07:00:00Z = 03:00:00 EDT */
    {"America/New_York", 2530767600000LL, 3, 7},
    /* 2050-11-06 05:59:59Z = 01:59:59 EDT */
    {"America/New_York", 2551327199000LL, 1, 7},
    /* 2050-11-06 06:00:00Z = 01:00:00 EST */
    {"America/New_York", 2551327200000LL, 1, 7},
    /* southern hemisphere: daylight time across the new year */
    /* 2045-04-01 15:59:59Z = 04-02 02:59:59 AEDT */
    {"Australia/Sydney", 2374675199000LL, 2, 7},
    /* 2045-04-01 16:00:00Z = 04-02 02:00:00 AEST */
    {"Australia/Sydney", 2374675200000LL, 2, 7},
    /* 2045-09-30 15:59:59Z = 10-01 01:59:59 AEST */
    {"Australia/Sydney", 2390399999000LL, 1, 7},
    /* 2045-09-30 16:00:00Z = 10-01 03:00:00 AEDT */
    {"Australia/Sydney", 2390400000000LL, 3, 7},
    /* half-hour daylight saving */
    /* 2060-01-10 13:15Z = 01-11 00:15 +11 */
    {"Australia/Lord_Howe", 2840966100000LL, 0, 7},
    /* 2060-07-10 13:15Z = 23:45 +1030 */
    {"Australia/Lord_Howe", 2856690900000LL, 23, 6},
    /* 2060-04-03 16:15Z = 04-04 02:45 +1030 */
    {"Australia/Lord_Howe", 2848234500000LL, 2, 7},
    /* negative DST: standard time IST in summer, GMT as "daylight" in winter */
    /* 2060-03-28 00:59:59Z = 00:59:59 GMT */
    {"Europe/Dublin", 2847661199000LL, 0, 7},
    /* 2060-03-28 01:00:00Z = 02:00:00 IST */
    {"Europe/Dublin", 2847661200000LL, 2, 7},
    /* 2060-10-31 00:59:59Z = 01:59:59 IST */
    {"Europe/Dublin", 2866409999000LL, 1, 7},
    /* 2060-10-31 01:00:00Z = 01:00:00 GMT */
    {"Europe/Dublin", 2866410000000LL, 1, 7},
    /* TZif v3 rule times: -1 (the day before, 23:00) and 0 */
    /* 2050-03-27 00:59:59Z = 03-26 22:59:59 -02 */
    {"America/Nuuk", 2531955599000LL, 22, 6},
    /* 2050-03-27 01:00:00Z = 00:00:00 -01 */
    {"America/Nuuk", 2531955600000LL, 0, 7},
    /* 2050-10-30 00:59:59Z = 10-29 23:59:59 -01 */
    {"America/Nuuk", 2550704399000LL, 23, 6},
    /* 2050-10-30 01:00:00Z = 10-29 23:00:00 -02 */
    {"America/Nuuk", 2550704400000LL, 23, 6},
    /* odd offsets, without DST */
    /* 2024-06-01 18:14:59Z = 23:59:59 +0545 */
    {"Asia/Kathmandu", 1717265699000LL, 23, 6},
    /* 2024-06-01 18:15:00Z = 06-02 00:00 +0545 */
    {"Asia/Kathmandu", 1717265700000LL, 0, 7},
    /* 2050-12-31 18:29:59Z = 23:59:59 IST */
    {"Asia/Kolkata", 2556124199000LL, 23, 6},
    /* 2050-12-31 18:30:00Z = 2051-01-01 00:00 IST */
    {"Asia/Kolkata", 2556124200000LL, 0, 7},
    /* 2040-07-01 02:29:59Z = 06-30 23:59:59 NDT */
    {"America/St_Johns", 2224722599000LL, 23, 6},
    /* 2050-01-15 12:00Z = 09:00 -03 */
    {"America/Sao_Paulo", 2525860800000LL, 9, 6},
    /* 2070-01-01 00:00Z = 13:45 +1345 */
    {"Pacific/Chatham", 3155760000000LL, 13, 3},
    /* 2024-01-01 09:59:59Z = 23:59:59 +14 */
    {"Pacific/Kiritimati", 1704103199000LL, 23, 1},
    /* 2024-01-01 10:00:00Z = 01-02 00:00 +14 */
    {"Pacific/Kiritimati", 1704103200000LL, 0, 2},
    /* before the first transition: local mean time (type 0) */
    /* 1800-01-01 00:00Z = 1799-12-31 23:45:16 LMT */
    {"Europe/Madrid", -5364662400000LL, 23, 2},
    /* 1883-11-18 16:59:59Z = 12:03:57 LMT */
    {"America/New_York", -2717650801000LL, 12, 7},
    /* 1883-11-18 17:00:00Z = 12:00:00 EST */
    {"America/New_York", -2717650800000LL, 12, 7},
    /* around the 32-bit limit, which the 64-bit table must not care about */
    {"Europe/Madrid", -2147483649000LL, 20, 5},
    {"Europe/Madrid", -2147483648000LL, 20, 5},
};

/* hour(t, zone) and weekday(t, zone), compiled once per zone. */
typedef struct zexpr {
    tl_expr *hour, *wday;
} zexpr;

static int zexpr_compile(zexpr *z, const char *zone)
{
    char src[128];
    snprintf(src, sizeof src, "hour(t, '%s')", zone);
    z->hour = compile(src, TL_T_NUM);
    snprintf(src, sizeof src, "weekday(t, \"%s\")", zone);
    z->wday = compile(src, TL_T_NUM);
    return z->hour && z->wday;
}

static void zexpr_free(zexpr *z)
{
    tl_expr_free(z->hour);
    tl_expr_free(z->wday);
}

/* hour and weekday at ms; -1 for null. */
static void zexpr_eval(const zexpr *z, double ms, int *hour, int *wday)
{
    env en = {.t = ms};
    tl_value v;
    tl_expr_eval(z->hour, test_fetch, &en, &v);
    *hour = v.type == TL_T_NUM ? (int)v.u.num : -1;
    tl_expr_eval(z->wday, test_fetch, &en, &v);
    *wday = v.type == TL_T_NUM ? (int)v.u.num : -1;
}

static void test_tz_table(void)
{
    size_t n = sizeof tz_cases / sizeof tz_cases[0];
    for (size_t i = 0; i < n; i++) {
        const struct tzcase *c = &tz_cases[i];
        zexpr z;
        int ok = zexpr_compile(&z, c->zone);
        CU_ASSERT(ok);
        if (ok) {
            int h, w;
            zexpr_eval(&z, (double)c->ms, &h, &w);
            CU_ASSERT(h == c->hour && w == c->weekday);
            if (h != c->hour || w != c->weekday)
                fprintf(stderr,
                        "\n  %s at %lld: hour %d weekday %d, want %d %d\n",
                        c->zone, c->ms, h, w, c->hour, c->weekday);
            /* A millisecond before the second: still the same second. */
            zexpr_eval(&z, (double)c->ms + 999, &h, &w);
            CU_ASSERT(h == c->hour && w == c->weekday);
        }
        zexpr_free(&z);
    }
}


/* The public zone API (tl_tz_*) gives the hours of the table above, and
 * minutes. */
static void test_tz_public(void)
{
    size_t n = sizeof tz_cases / sizeof tz_cases[0];
    char err[256];
    for (size_t i = 0; i < n; i++) {
        const struct tzcase *c = &tz_cases[i];
        tl_tz *z = tl_tz_load(c->zone, strlen(c->zone), err, sizeof err);
        CU_ASSERT_PTR_NOT_NULL(z);
        if (!z) continue;
        int m = -1;
        if (c->ms >= -8.64e15 && c->ms <= 8.64e15) {
            CU_ASSERT_EQUAL(tl_tz_local_minutes(z, c->ms, &m), 0);
            CU_ASSERT_EQUAL(m / 60, c->hour);
        }
        tl_tz_free(z);
    }
    /* Minutes: Kathmandu is UTC+5:45; before the epoch floors. */
    tl_tz *k = tl_tz_load("Asia/Kathmandu", 14, err, sizeof err);
    tl_tz *u = tl_tz_load("UTCX", 3, err, sizeof err); /* len 3: "UTC" */
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    int m;
    CU_ASSERT_EQUAL(tl_tz_local_minutes(k, 1705276800000LL, &m), 0);
    CU_ASSERT_EQUAL(m, 5 * 60 + 45);
    CU_ASSERT_EQUAL(tl_tz_local_minutes(u, 1705276800000LL + 61999, &m), 0);
    CU_ASSERT_EQUAL(m, 1);
    CU_ASSERT_EQUAL(tl_tz_local_minutes(u, -1, &m), 0);
    CU_ASSERT_EQUAL(m, 1439);
    CU_ASSERT_EQUAL(tl_tz_local_minutes(u, INT64_MAX, &m), -1);
    CU_ASSERT_EQUAL(tl_tz_local_minutes(u, INT64_MIN, &m), -1);
    tl_tz_free(k);
    tl_tz_free(u);
    tl_tz_free(NULL);
    /* The messages of hour() and weekday(). */
    CU_ASSERT_PTR_NULL(tl_tz_load("Europe/Madird", 13, err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "unknown time zone 'Europe/Madird'");
    CU_ASSERT_PTR_NULL(tl_tz_load("../etc/passwd", 13, err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "unknown time zone '../etc/passwd'");
    CU_ASSERT_PTR_NULL(tl_tz_load("", 0, NULL, 0));
}

/*
 * The same answers as glibc's localtime_r (another independent TZif reader)
 * for many zones, at random times from 1900 to 2200 and densely through the
 * DST months of years in and past the table.  The test may use localtime and
 * setenv; the evaluator may not.
 */
static void test_tz_glibc(void)
{
    static const char *zones[] = {
        "Europe/Madrid",    "America/New_York",   "Australia/Sydney",
        "Europe/Dublin",    "America/Nuuk",       "Australia/Lord_Howe",
        "Asia/Kathmandu",   "America/St_Johns",   "Pacific/Chatham",
        "Africa/Casablanca", "America/Santiago",  "Asia/Tehran",
        "Europe/London",    "America/Los_Angeles", "UTC",
    };
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    uint64_t rng = 0x9e3779b97f4a7c15u;
    int quick = tl_test_under_valgrind();
    long checked = 0, bad = 0;
    for (size_t zi = 0; zi < sizeof zones / sizeof zones[0]; zi++) {
        zexpr z;
        int ok = zexpr_compile(&z, zones[zi]);
        CU_ASSERT(ok);
        if (!ok) {
            zexpr_free(&z);
            continue;
        }
        setenv("TZ", zones[zi], 1);
        tzset();
        int nrand = quick ? 300 : 4000;
        /* 1900-01-01 .. 2200-01-01 */
        const int64_t lo = -2208988800LL, hi = 7258118400LL;
        for (int k = 0; k < nrand + 3 * 2 * 31 * 24 * 4; k++) {
            int64_t t;
            if (k < nrand) {
                rng = rng * 6364136223846793005u + 1442695040888963407u;
                t = lo + (int64_t)((rng >> 11) % (uint64_t)(hi - lo));
            } else {
                /* every 15 minutes through March/April and October/November
                 * (southern changes too) of 2024, 2040 and 2100 */
                static const int64_t mar1[] = {1709251200LL, 2214345600LL,
                                               4107542400LL};
                int j = k - nrand, y = j / (2 * 31 * 24 * 4),
                    half = j / (31 * 24 * 4) % 2, q = j % (31 * 24 * 4);
                t = mar1[y] + (half ? 214 * 86400LL : 15 * 86400LL) +
                    q * 900LL + (q % 7); /* and a few seconds off the hour */
            }
            time_t tt = (time_t)t;
            struct tm tm;
            if (!localtime_r(&tt, &tm)) continue;
            int h, w;
            zexpr_eval(&z, (double)t * 1000, &h, &w);
            int want_w = tm.tm_wday == 0 ? 7 : tm.tm_wday;
            checked++;
            if (h != tm.tm_hour || w != want_w) {
                if (bad++ < 10)
                    fprintf(stderr,
                            "\n  %s at %lld s: hour %d weekday %d, "
                            "glibc %d %d\n",
                            zones[zi], (long long)t, h, w, tm.tm_hour, want_w);
            }
        }
        zexpr_free(&z);
    }
    if (saved) setenv("TZ", saved, 1);
    else unsetenv("TZ");
    tzset();
    free(saved);
    CU_ASSERT(checked > 1000);
    CU_ASSERT_EQUAL(bad, 0);
}

/* ---- hand-made TZif files (TZDIR) --------------------------------------- */

typedef struct tzfile {
    int version;               /* 0 (v1 only), 2 or 3 */
    int ntrans;
    const int64_t *at;
    const unsigned char *idx;
    int ntypes;
    const int32_t *off;
    const char *footer;        /* v2+: the TZ string (without newlines) */
    uint32_t leapcnt;
} tzfile;

static unsigned char *put32(unsigned char *w, uint32_t v)
{
    w[0] = (unsigned char)(v >> 24), w[1] = (unsigned char)(v >> 16);
    w[2] = (unsigned char)(v >> 8), w[3] = (unsigned char)v;
    return w + 4;
}

/* One header and data block, with times of tsize bytes. */
static unsigned char *put_block(unsigned char *w, const tzfile *f, int tsize)
{
    memcpy(w, "TZif", 4);
    w[4] = f->version ? (unsigned char)('0' + f->version) : 0;
    memset(w + 5, 0, 15);
    w += 20;
    w = put32(w, 0);                   /* isutcnt */
    w = put32(w, 0);                   /* isstdcnt */
    w = put32(w, f->leapcnt);          /* leapcnt */
    w = put32(w, (uint32_t)f->ntrans); /* timecnt */
    w = put32(w, (uint32_t)f->ntypes); /* typecnt */
    w = put32(w, 4);                   /* charcnt */
    for (int i = 0; i < f->ntrans; i++) {
        if (tsize == 8) w = put32(w, (uint32_t)((uint64_t)f->at[i] >> 32));
        w = put32(w, (uint32_t)f->at[i]);
    }
    for (int i = 0; i < f->ntrans; i++) *w++ = f->idx[i];
    for (int i = 0; i < f->ntypes; i++) {
        w = put32(w, (uint32_t)f->off[i]);
        *w++ = 0; /* isdst */
        *w++ = 0; /* desigidx */
    }
    memcpy(w, "ABC", 4);
    w += 4;
    for (uint32_t i = 0; i < f->leapcnt; i++) {
        w = put32(w, 0);
        if (tsize == 8) w = put32(w, 0);
        w = put32(w, 1);
    }
    return w;
}

static void write_file(const char *dir, const char *name, const void *data,
                       size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    CU_ASSERT_EQUAL(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

static void write_tzif(const char *dir, const char *name, const tzfile *f)
{
    static unsigned char buf[8192];
    unsigned char *w = put_block(buf, f, 4);
    if (f->version) {
        w = put_block(w, f, 8);
        size_t fl = strlen(f->footer);
        *w++ = '\n';
        memcpy(w, f->footer, fl);
        w += fl;
        *w++ = '\n';
    }
    write_file(dir, name, buf, (size_t)(w - buf));
}

/* hour of t seconds in zone; -1 for null, -2 if it does not compile. */
static int hour_in(const char *zone, int64_t t)
{
    char src[128];
    snprintf(src, sizeof src, "hour(t, '%s')", zone);
    tl_expr *e = compile(src, TL_T_NUM);
    if (!e) return -2;
    env en = {.t = (double)t * 1000};
    tl_value v;
    tl_expr_eval(e, test_fetch, &en, &v);
    tl_expr_free(e);
    return v.type == TL_T_NUM ? (int)v.u.num : -1;
}

static int zone_error(const char *src, const char *msg, size_t off)
{
    size_t o = 0;
    char err[TL_ERRSZ] = "";
    tl_expr *e = tl_expr_compile(src, strlen(src), &scope, ANY, &o, err,
                                 sizeof err);
    tl_expr_free(e);
    if (!e && o == off && strcmp(err, msg) == 0) return 1;
    fprintf(stderr, "\n  `%s`: want %zu: %s\n    got %zu: %s\n", src, off, msg,
            o, e ? "(compiled)" : err);
    return 0;
}

static void test_tzdir(void)
{
    char *dir = tl_test_tmpdir();
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char sub[512];
    snprintf(sub, sizeof sub, "%s/Test", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0755), 0);
    const char *old = getenv("TZDIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("TZDIR", dir, 1);

    /* v1 only: 32-bit table, no footer; the last type holds after it. */
    static const int64_t v1_at[] = {0, 864000};
    static const unsigned char v1_idx[] = {1, 0};
    static const int32_t v1_off[] = {-3600, 7200};
    write_tzif(dir, "Test/V1",
               &(tzfile){0, 2, v1_at, v1_idx, 2, v1_off, "", 0});
    CU_ASSERT_EQUAL(hour_in("Test/V1", -1), 22);     /* type 0 before */
    CU_ASSERT_EQUAL(hour_in("Test/V1", 0), 2);
    CU_ASSERT_EQUAL(hour_in("Test/V1", 863999), 1);  /* day 9, 23:59:59 +2 */
    CU_ASSERT_EQUAL(hour_in("Test/V1", 864000), 23); /* day 9, 23:00 -1 */
    CU_ASSERT_EQUAL(hour_in("Test/V1", 4000000000LL), 6);

    /* v2 without transitions: the footer for all time. */
    static const int32_t fixed_off[] = {19800};
    write_tzif(dir, "Test/Fixed",
               &(tzfile){2, 0, NULL, NULL, 1, fixed_off, "<+0530>-5:30", 0});
    CU_ASSERT_EQUAL(hour_in("Test/Fixed", 0), 5);
    CU_ASSERT_EQUAL(hour_in("Test/Fixed", 66600), 0); /* 18:30Z */

    /* Daylight time all year (start Jan 1 00:00, end Dec 31 25:00): -4 on
     * both sides of the new year, where a one-year rule window would slip
     * to standard time. */
    static const int32_t perm_off[] = {-18000};
    write_tzif(dir, "Test/Perm",
               &(tzfile){3, 0, NULL, NULL, 1, perm_off, "EST5EDT4,0/0,J365/25",
                         0});
    /* 2030-01-01 00:30Z */
    CU_ASSERT_EQUAL(hour_in("Test/Perm", 1893457800LL), 20);
    /* 2030-01-01 04:30Z */
    CU_ASSERT_EQUAL(hour_in("Test/Perm", 1893472200LL), 0);
    /* 2030-06-01 12:00Z */
    CU_ASSERT_EQUAL(hour_in("Test/Perm", 1906545600LL), 8);
    /* 2030-12-31 23:30Z */
    CU_ASSERT_EQUAL(hour_in("Test/Perm", 1924990200LL), 19);

    /* Southern rule with a Julian-day and a zero-based-day date. */
    static const int32_t south_off[] = {-10800};
    write_tzif(dir, "Test/South",
               &(tzfile){2, 0, NULL, NULL, 1, south_off,
                         "<-03>3<-02>,J288/0,45/0", 0});
    /* 2050-01-15 12:00Z */
    CU_ASSERT_EQUAL(hour_in("Test/South", 2525860800LL), 10);
    /* 2050-07-15 12:00Z */
    CU_ASSERT_EQUAL(hour_in("Test/South", 2541499200LL), 9);
    /* J288 is October 15 (Feb 29 not counted); day 45 is February 15. */
    /* 2050-10-15 02:59:59Z */
    CU_ASSERT_EQUAL(hour_in("Test/South", 2549415599LL), 23);
    CU_ASSERT_EQUAL(hour_in("Test/South", 2549415600LL), 1);  /* 03:00Z */
    /* 2050-02-14 03:00Z */
    CU_ASSERT_EQUAL(hour_in("Test/South", 2528420400LL), 1);
    /* 2050-02-15 02:59:59Z */
    CU_ASSERT_EQUAL(hour_in("Test/South", 2528506799LL), 23);
    /* In a leap year J288 is still October 15 (day 45 still February 15). */
    /* 2048-10-14 03:30Z */
    CU_ASSERT_EQUAL(hour_in("Test/South", 2486259000LL), 0);
    /* 2048-10-15 02:59:59Z */
    CU_ASSERT_EQUAL(hour_in("Test/South", 2486343599LL), 23);
    CU_ASSERT_EQUAL(hour_in("Test/South", 2486343600LL), 1);  /* 03:00Z */

    /* A footer after a table. */
    static const int64_t tab_at[] = {1000000000LL};
    static const unsigned char tab_idx[] = {1};
    static const int32_t tab_off[] = {0, 3600};
    write_tzif(dir, "Test/Table",
               &(tzfile){2, 1, tab_at, tab_idx, 2, tab_off,
                         "CET-1CEST,M3.5.0,M10.5.0/3", 0});
    /* 01:46:39Z, +0 */
    CU_ASSERT_EQUAL(hour_in("Test/Table", 999999999LL), 1);
    /* 2001-09-09: CEST */
    CU_ASSERT_EQUAL(hour_in("Test/Table", 1000000000LL), 3);
    /* 2024-01-15 12:00Z */
    CU_ASSERT_EQUAL(hour_in("Test/Table", 1705320000LL), 13);

    /* Unusable files. */
    write_file(dir, "Test/Trunc", "TZif2\0\0\0", 8);
    write_file(dir, "Test/Text", "# not a zone\n", 13);
    write_tzif(dir, "Test/Leap",
               &(tzfile){2, 0, NULL, NULL, 1, fixed_off, "UTC0", 1});
    write_tzif(dir, "Test/Footer",
               &(tzfile){2, 0, NULL, NULL, 1, fixed_off, "UTC0,", 0});
    static const int64_t uns_at[] = {100, 50};
    static const unsigned char uns_idx[] = {0, 0};
    write_tzif(dir, "Test/Unsorted",
               &(tzfile){2, 2, uns_at, uns_idx, 1, fixed_off, "", 0});
    static const unsigned char bad_idx[] = {1};
    write_tzif(dir, "Test/BadType",
               &(tzfile){2, 1, tab_at, bad_idx, 1, fixed_off, "", 0});
    static const int32_t huge_off[] = {100000};
    write_tzif(dir, "Test/Huge",
               &(tzfile){2, 0, NULL, NULL, 1, huge_off, "", 0});
    CU_ASSERT(zone_error("hour(t, 'Test/Trunc')",
                         "cannot use time zone 'Test/Trunc': not a valid TZif "
                         "file", 8));
    CU_ASSERT(zone_error("hour(t, 'Test/Text')",
                         "unknown time zone 'Test/Text'", 8));
    CU_ASSERT(zone_error("hour(t, 'Test/Leap')",
                         "cannot use time zone 'Test/Leap': zones with leap "
                         "seconds are not supported", 8));
    CU_ASSERT(zone_error("weekday(t, 'Test/Footer')",
                         "cannot use time zone 'Test/Footer': its POSIX TZ "
                         "rule cannot be read", 11));
    CU_ASSERT(zone_error("hour(t, 'Test/Unsorted')",
                         "cannot use time zone 'Test/Unsorted': not a valid "
                         "TZif file", 8));
    CU_ASSERT(zone_error("hour(t, 'Test/BadType')",
                         "cannot use time zone 'Test/BadType': not a valid "
                         "TZif file", 8));
    CU_ASSERT(zone_error("hour(t, 'Test/Huge')",
                         "cannot use time zone 'Test/Huge': not a valid TZif "
                         "file", 8));
    CU_ASSERT(zone_error("hour(t, 'Test')", "unknown time zone 'Test'", 8));
    CU_ASSERT(zone_error("hour(t, 'Test/./V1')",
                         "unknown time zone 'Test/./V1'", 8));
    CU_ASSERT(zone_error("hour(t, 'Test//V1')",
                         "unknown time zone 'Test//V1'", 8));
    CU_ASSERT(zone_error("hour(t, 'Test/V1/')",
                         "unknown time zone 'Test/V1/'", 8));
    /* Only this directory is searched; UTC is built in. */
    CU_ASSERT(zone_error("hour(t, 'Europe/Madrid')",
                         "unknown time zone 'Europe/Madrid'", 8));
    CU_ASSERT_EQUAL(hour_in("UTC", 3600), 1);

    if (saved) setenv("TZDIR", saved, 1);
    else unsetenv("TZDIR");
    free(saved);
    tl_test_rmdir(dir);
    free(dir);
}

/* ---- lower's bound ------------------------------------------------------ */

static void lower_of(const char *in, size_t n, const char **ptr, size_t *len)
{
    static tl_expr *e;
    if (!e) e = compile("lower(long)", TL_T_STR);
    if (!in) { /* cleanup */
        tl_expr_free(e);
        e = NULL;
        return;
    }
    env en = {.str = in, .slen = n};
    tl_value v;
    tl_expr_eval(e, test_fetch, &en, &v);
    CU_ASSERT_EQUAL(v.type, TL_T_STR);
    *ptr = v.u.str.ptr;
    *len = v.u.str.len;
}

static void test_lower_bound(void)
{
    char in[400], want[400];
    const char *p;
    size_t n;

    /* Capitals: lowered into the expression's buffer, cut at 256 bytes. */
    memset(in, 'A', 300);
    memset(want, 'a', 300);
    lower_of(in, 300, &p, &n);
    CU_ASSERT(n == 256 && memcmp(p, want, 256) == 0);
    CU_ASSERT(p < in || p >= in + sizeof in);
    lower_of(in, 256, &p, &n);
    CU_ASSERT(n == 256 && memcmp(p, want, 256) == 0);
    lower_of(in, 10, &p, &n);
    CU_ASSERT(n == 10 && memcmp(p, want, 10) == 0);

    /* No capital: the input itself, cut the same way. */
    memset(in, 'a', 300);
    lower_of(in, 300, &p, &n);
    CU_ASSERT(p == in && n == 256);
    lower_of(in, 5, &p, &n);
    CU_ASSERT(p == in && n == 5);

    /* The cut never splits a UTF-8 character. */
    memset(in, 'A', 255);
    memcpy(in + 255, "\xc3\xa9xyz", 5); /* é at bytes 255-256 */
    lower_of(in, 260, &p, &n);
    CU_ASSERT(n == 255 && memcmp(p, want, 255) == 0);
    memset(in, 'A', 254);
    memcpy(in + 254, "\xc3\xa9XYZ", 5); /* é at bytes 254-255: kept */
    lower_of(in, 259, &p, &n);
    CU_ASSERT(n == 256 && memcmp(p, want, 254) == 0 &&
              memcmp(p + 254, "\xc3\xa9", 2) == 0);
    memset(in, 'A', 253);
    memcpy(in + 253, "\xf0\x9f\x98\x80!", 5); /* a 4-byte character at 253 */
    lower_of(in, 258, &p, &n);
    CU_ASSERT(n == 253);
    /* Bytes that are not UTF-8 lose at most 3. */
    memset(in, 0x80, 300);
    lower_of(in, 300, &p, &n);
    CU_ASSERT(p == in && n == 253);
    lower_of(NULL, 0, &p, &n);

    /* Two call sites have two buffers. */
    tl_expr *e = compile("lower(name) == lower('ANA M\xc3\x9cLLER-SMITH') and "
                         "lower(item) == 'coffee'",
                         TL_T_BOOL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_TRUE(tl_expr_true(e, test_fetch, &(env){0}));
    tl_expr_free(e);
}

/* ---- days_since and the event time -------------------------------------- */

static int clockless_resolve(void *ud, const char *name, const char *key,
                             uint32_t *var, tl_type *type)
{
    if (strcmp(name, "ts") == 0) return -1;
    return test_resolve(ud, name, key, var, type);
}

static int strclock_resolve(void *ud, const char *name, const char *key,
                            uint32_t *var, tl_type *type)
{
    if (strcmp(name, "ts") == 0) {
        *var = V_ITEM;
        *type = TL_T_STR;
        return 0;
    }
    return test_resolve(ud, name, key, var, type);
}

/* A scope that explains the names it does not know. */
static int explaining(void *ud, const char *name, char *msg, size_t size)
{
    if (ud != &scope_marker) resolve_bad_ud = 1;
    if (strcmp(name, "silent") == 0) return 0;
    snprintf(msg, size, "no '%s' here", name);
    return 1;
}

static void test_scope_explains_unknown_names(void)
{
    tl_expr_scope sc = {test_resolve, &scope_marker, explaining};
    const struct {
        const char *src, *want;
        size_t off;
    } cases[] = {
        {"vip and nope", "no 'nope' here", 8},
        {"nope[0] == 'x'", "no 'nope' here", 0},  /* indexed by a number */
        {"silent > 1", "unknown name 'silent'", 0}, /* 0: the default */
        {"attrs[0]", "expected a string key but found number 0", 6},
        {"nope['k']", "unknown name 'nope['k']'", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t off = 99;
        char err[TL_ERRSZ] = "";
        CU_ASSERT_PTR_NULL(tl_expr_compile(cases[i].src, strlen(cases[i].src),
                                           &sc, ANY, &off, err, sizeof err));
        if (strcmp(err, cases[i].want) != 0 || off != cases[i].off)
            fprintf(stderr, "`%s`: got %zu: %s\n", cases[i].src, off, err);
        CU_ASSERT_STRING_EQUAL(err, cases[i].want);
        CU_ASSERT_EQUAL(off, cases[i].off);
    }
    CU_ASSERT_EQUAL(resolve_bad_ud, 0);
}

static void test_days_since_now(void)
{
    size_t off = 0;
    char err[TL_ERRSZ] = "";
    tl_expr_scope clockless = {clockless_resolve, &scope_marker};
    tl_expr_scope strclock = {strclock_resolve, &scope_marker};
    CU_ASSERT_PTR_NULL(tl_expr_compile("1 + days_since(last_seen)", 25,
                                       &clockless, ANY, &off, err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "function 'days_since' needs the event time "
                                "'ts', which is not a name here");
    CU_ASSERT_EQUAL(off, 4);
    CU_ASSERT_PTR_NULL(tl_expr_compile("days_since(0)", 13, NULL, ANY, &off,
                                       err, sizeof err));
    CU_ASSERT_EQUAL(off, 0);
    CU_ASSERT_PTR_NULL(tl_expr_compile("days_since(last_seen)", 21, &strclock,
                                       ANY, &off, err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "function 'days_since' needs the event time "
                                "'ts' to be a number, got string");
    CU_ASSERT_EQUAL(off, 0);
    /* Without a clock the other functions still compile. */
    tl_expr *e = tl_expr_compile("hour(last_seen, 'UTC')", 22, &clockless,
                                 TL_T_NUM, &off, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL(e);
    tl_expr_free(e);

    /* "now" is fetched at each evaluation, like any variable. */
    e = compile("days_since(last_seen)", TL_T_NUM);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    env en = {0};
    tl_value v;
    tl_expr_eval(e, test_fetch, &en, &v);
    CU_ASSERT(v.type == TL_T_NUM && v.u.num == 45.5);
    CU_ASSERT_EQUAL(en.fetches[V_TS], 1);
    CU_ASSERT_EQUAL(en.fetches[V_LASTSEEN], 1);
    tl_expr_free(e);
    /* Null now (no fetch at all) gives null. */
    e = compile("days_since(0)", TL_T_NUM);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    tl_expr_eval(e, NULL, NULL, &v);
    CU_ASSERT_EQUAL(v.type, TL_T_NULL);
    tl_expr_free(e);
}

/* ---- no allocation during evaluation ----------------------------------- */

static void test_eval_allocates_nothing(void)
{
    static const char *srcs[] = {
        "visits * amount - 3 / zero + -spend",
        "attrs[\"color\"] == 'red' and item < \"d\" or nick == null",
        "not (optin or vip) and churned or spend != null",
        "'lit' == \"lit\" and event.item >= 'tea' and weird == null",
        "1 / 0",
        "attrs['size']",
        "usual_order[idx] in ['fries', 'water'] and 12.5 in amounts",
        "usual_order == tags or gone == amounts or [1, 2] == [1, 2]",
        "len(usual_order) + len(name) + len(gone) + amounts[-1]",
        "contains(usual_order, 'water') and contains(item, 'ff')",
        "coalesce(spend, amounts[3], 0) + coalesce(gone, amounts)[0]",
        "lower(name) == lower('ANA') or lower(item) == 'coffee'",
        "days_since(last_seen) > 30 and days_since(null) == null",
        "hour(ts, 'Europe/Madrid') + weekday(ts, 'America/New_York')",
        "hour(4109878800000, 'Europe/Madrid') + weekday(-1, 'UTC')",
        "item not in [] and 'x' not in no_items",
    };
    enum { N = sizeof srcs / sizeof srcs[0] };
    tl_expr *es[N];

    /* The counter must see allocations, or this test proves nothing. */
    tl_alloc_counter_install();
    tl_alloc_counting = 1;
    tl_alloc_calls = 0;
    for (int i = 0; i < N; i++) es[i] = compile(srcs[i], ANY);
    tl_alloc_counting = 0;
    for (int i = 0; i < N; i++) CU_ASSERT_PTR_NOT_NULL_FATAL(es[i]);
    if (tl_alloc_calls == 0 && tl_test_under_valgrind()) {
        fprintf(stderr, "\n  note: allocations cannot be counted under "
                        "valgrind; the plain and ASan builds check them\n");
        for (int i = 0; i < N; i++) tl_expr_free(es[i]);
        return;
    }
    CU_ASSERT(tl_alloc_calls > 0);

    env en = {0};
    tl_value v;
    double sink = 0;
    tl_alloc_counting = 1;
    tl_alloc_calls = 0;
    for (int round = 0; round < 10000; round++) {
        for (int i = 0; i < N; i++) {
            tl_expr_eval(es[i], test_fetch, &en, &v);
            sink += v.type;
            sink += tl_expr_true(es[i], test_fetch, &en);
        }
    }
    tl_alloc_counting = 0;
    CU_ASSERT_EQUAL(tl_alloc_calls, 0);
    CU_ASSERT(sink > 0);
    for (int i = 0; i < N; i++) tl_expr_free(es[i]);
}

int main(void)
{
    init_lists();
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("expr_compile", NULL, NULL);
    CU_add_test(s, "compile table", test_compile_table);
    CU_add_test(s, "NUL bytes and len", test_compile_nul_bytes);
    CU_add_test(s, "optional arguments", test_compile_args);
    CU_add_test(s, "nesting bound", test_nesting);
    s = CU_add_suite("expr_eval", NULL, NULL);
    CU_add_test(s, "evaluation table", test_eval_table);
    CU_add_test(s, "short-circuit", test_short_circuit);
    CU_add_test(s, "borrowed strings", test_borrowed_strings);
    CU_add_test(s, "variables", test_vars);
    CU_add_test(s, "value format", test_format);
    CU_add_test(s, "value format as JSON", test_format_json);
    CU_add_test(s, "type names", test_type_names);
    CU_add_test(s, "lower's bound", test_lower_bound);
    CU_add_test(s, "days_since and now", test_days_since_now);
    CU_add_test(s, "eval allocates nothing", test_eval_allocates_nothing);
    CU_add_test(s, "a scope explains the names it does not know",
                test_scope_explains_unknown_names);
    s = CU_add_suite("expr_timezones", NULL, NULL);
    CU_add_test(s, "time zone table", test_tz_table);
    CU_add_test(s, "public zone API", test_tz_public);
    CU_add_test(s, "agrees with glibc", test_tz_glibc);
    CU_add_test(s, "TZif files (TZDIR)", test_tzdir);
    return tl_test_run();
}
