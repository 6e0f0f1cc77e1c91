/*
 * fuzz_expr — the expression compiler and evaluator (libFuzzer).
 *
 * Each input is the source text of one expression, compiled with
 * tl_expr_compile (any result type) against a scope of typed names:
 *   visits, amount, ts, last_seen  number      channel, item   string
 *   vip                            bool        attrs["k"]      string (any key)
 *   usual_order                    list<string>
 *   amounts                        list<number>
 * A rejected source must come with a one-line message and an offset inside
 * it.  A
 * compiled expression is evaluated five times, with a fetch returning
 *   0 ordinary values (lists unaligned, strings not NUL-terminated),
 *   1 null for everything,
 *   2 awkward values: NaN, infinities, -0, times out of range, "", a 300-byte
 *     string with invalid UTF-8, empty lists, a list of NaN/inf,
 *   3 values of the wrong type (which must read as null),
 *   4 a mix of the above chosen by a hash of the input,
 * and each result must be null or of the expression's static type, must be
 * readable in full (ASan checks every byte), and evaluation must not
 * allocate (checked with a sanitizer malloc hook).  tl_expr_vars must only
 * report names of the scope.  The expression is freed after each input.
 */
#include <math.h>
#include <sanitizer/allocator_interface.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "expr.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__,       \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

enum {
    V_VISITS = 1,
    V_AMOUNT,
    V_TS,
    V_LASTSEEN,
    V_CHANNEL,
    V_ITEM,
    V_VIP,
    V_ORDER,
    V_AMOUNTS,
    V_ATTRS,
    V__END
};

static const struct {
    const char *name;
    uint32_t id;
    tl_type type;
} names[] = {
    {"visits", V_VISITS, TL_T_NUM},      {"amount", V_AMOUNT, TL_T_NUM},
    {"ts", V_TS, TL_T_NUM},              {"last_seen", V_LASTSEEN, TL_T_NUM},
    {"channel", V_CHANNEL, TL_T_STR},    {"item", V_ITEM, TL_T_STR},
    {"vip", V_VIP, TL_T_BOOL},           {"usual_order", V_ORDER, TL_T_LIST_STR},
    {"amounts", V_AMOUNTS, TL_T_LIST_NUM},
};

static int resolve(void *ud, const char *name, const char *key, uint32_t *var,
                   tl_type *type)
{
    (void)ud;
    if (strcmp(name, "attrs") == 0) {
        if (!key) return -1;
        *var = V_ATTRS;
        *type = TL_T_STR;
        return 0;
    }
    if (key) return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(names[i].name, name) == 0) {
            *var = names[i].id;
            *type = names[i].type;
            return 0;
        }
    }
    return -1;
}

static const tl_expr_scope scope = {.resolve = resolve, .ud = NULL};

/* ---- values --------------------------------------------------------------
 * Lists live in buffers of exactly their size (ASan's redzones follow), one
 * byte off alignment where the layout allows it. */

#define TS_NOW 1711879200000.0

static unsigned char order_buf[1 + 3 * 12];   /* big_mac, fries, water */
static unsigned char amounts_buf[1 + 4 * 10]; /* 12.5, 3, -7, 0.5 */
static unsigned char odd_buf[5 * 8];          /* -0, NaN, inf, -inf, 1e300 */
static unsigned char tight_buf[2 * 7];        /* "", "\xff\xfe\x80": the last
                                               * element ends the buffer */
static char long_str[300];

static void put_str_elem(unsigned char *at, const char *s, size_t n)
{
    uint32_t len = (uint32_t)n;
    memcpy(at, &len, sizeof len);
    memcpy(at + sizeof len, s, n);
}

static void init_values(void)
{
    static const char *order[] = {"big_mac", "fries", "water"};
    static const double amounts[] = {12.5, 3, -7, 0.5};
    const double odd[] = {-0.0, NAN, INFINITY, -INFINITY, 1e300};
    for (int i = 0; i < 3; i++)
        put_str_elem(order_buf + 1 + 12 * i, order[i], strlen(order[i]));
    for (int i = 0; i < 4; i++)
        memcpy(amounts_buf + 1 + 10 * i, &amounts[i], sizeof(double));
    for (int i = 0; i < 5; i++) memcpy(odd_buf + 8 * i, &odd[i], sizeof(double));
    put_str_elem(tight_buf, "", 0);
    put_str_elem(tight_buf + 7, "\xff\xfe\x80", 3);
    /* Upper case (lower() has work), a 2-byte character across byte 256
     * (where lower() cuts) and invalid UTF-8 at the end. */
    memset(long_str, 'A', sizeof long_str);
    long_str[255] = (char)0xc3;
    long_str[256] = (char)0x89;
    long_str[298] = (char)0xff;
    long_str[299] = (char)0xc3;
}

static void set_num(tl_value *v, double x)
{
    v->type = TL_T_NUM;
    v->u.num = x;
}

static void set_str(tl_value *v, const char *s, size_t n)
{
    v->type = TL_T_STR;
    v->u.str.ptr = s;
    v->u.str.len = n;
}

static void set_list(tl_value *v, tl_type t, const unsigned char *base,
                     uint32_t n, uint32_t stride)
{
    v->type = t;
    v->u.list.base = base;
    v->u.list.n = n;
    v->u.list.stride = stride;
}

/* Profile 0: ordinary values. */
static void fetch_plain(uint32_t var, const char *key, size_t keylen,
                        tl_value *out)
{
    switch (var) {
    case V_VISITS: set_num(out, 3); return;
    case V_AMOUNT: set_num(out, 12.5); return;
    case V_TS: set_num(out, TS_NOW); return;
    case V_LASTSEEN: set_num(out, TS_NOW - 45.5 * 86400000); return;
    case V_CHANNEL: set_str(out, "email", 5); return;
    case V_ITEM: set_str(out, "Coffee!", 6); return; /* no NUL at [6] */
    case V_VIP: out->type = TL_T_BOOL, out->u.b = 1; return;
    case V_ORDER: set_list(out, TL_T_LIST_STR, order_buf + 1, 3, 12); return;
    case V_AMOUNTS:
        set_list(out, TL_T_LIST_NUM, amounts_buf + 1, 4, 10);
        return;
    case V_ATTRS:
        if (keylen == 5 && memcmp(key, "color", 5) == 0)
            set_str(out, "red", 3);
        else if (keylen == 0)
            set_str(out, "empty key", 9);
        else
            *out = TL_VALUE_NULL;
        return;
    }
    *out = TL_VALUE_NULL;
}

/* Profile 2: awkward values. */
static void fetch_odd(uint32_t var, const char *key, size_t keylen,
                      tl_value *out)
{
    (void)key;
    switch (var) {
    case V_VISITS: set_num(out, NAN); return;
    case V_AMOUNT: set_num(out, INFINITY); return;
    case V_TS: set_num(out, -8.64e15 - 1); return;
    case V_LASTSEEN: set_num(out, 1e308); return;
    case V_CHANNEL: set_str(out, "", 0); return;
    case V_ITEM: set_str(out, long_str, sizeof long_str); return;
    case V_VIP: out->type = TL_T_BOOL, out->u.b = 0; return;
    case V_ORDER: set_list(out, TL_T_LIST_STR, tight_buf, 2, 7); return;
    case V_AMOUNTS: set_list(out, TL_T_LIST_NUM, odd_buf, 5, 8); return;
    case V_ATTRS:
        set_str(out, long_str + 290, keylen % 11);
        return;
    }
    *out = TL_VALUE_NULL;
}

/* Profile 3: every variable of another type than resolve promised. */
static void fetch_wrong(uint32_t var, tl_value *out)
{
    switch (var) {
    case V_VISITS:
    case V_TS: set_str(out, "12", 2); return;
    case V_AMOUNT:
    case V_LASTSEEN:
        set_list(out, TL_T_LIST_NUM, amounts_buf + 1, 4, 10);
        return;
    case V_CHANNEL:
    case V_ITEM:
    case V_ATTRS: set_num(out, 1); return;
    case V_VIP: set_list(out, TL_T_LIST_STR, order_buf + 1, 3, 12); return;
    case V_ORDER: set_list(out, TL_T_LIST_NUM, amounts_buf + 1, 4, 10); return;
    case V_AMOUNTS: out->type = TL_T_BOOL, out->u.b = 1; return;
    }
    *out = TL_VALUE_NULL;
}

typedef struct env {
    int profile;
    uint64_t mix; /* profile 4: 2 bits per variable */
} env;

static void fetch(void *ud, uint32_t var, const char *key, size_t keylen,
                  tl_value *out)
{
    const env *en = ud;
    CHECK(var >= V_VISITS && var < V__END);
    CHECK((var == V_ATTRS) == (key != NULL));
    if (key) CHECK(key[keylen] == '\0' && strlen(key) == keylen);
    int p = en->profile;
    if (p == 4) p = (int)((en->mix >> (2 * var)) & 3);
    switch (p) {
    case 0: fetch_plain(var, key, keylen, out); return;
    case 2: fetch_odd(var, key, keylen, out); return;
    case 3: fetch_wrong(var, out); return;
    default: *out = TL_VALUE_NULL; return;
    }
}

/* ---- checks ------------------------------------------------------------- */

static volatile size_t sink;
static volatile int in_eval;
static volatile size_t eval_mallocs;

static void malloc_hook(const volatile void *ptr, size_t size)
{
    (void)ptr;
    (void)size;
    if (in_eval) eval_mallocs++;
}

static void free_hook(const volatile void *ptr) { (void)ptr; }

static void touch(const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t h = 0;
    for (size_t i = 0; i < n; i++) h = h * 31 + b[i];
    sink = h;
}

static void check_value(const tl_expr *e, const tl_value *v)
{
    tl_type t = tl_expr_type(e);
    if (v->type != TL_T_NULL && v->type != t) {
        fprintf(stderr, "fuzz_expr: result is %s, static type %s\n",
                tl_type_name(v->type), tl_type_name(t));
        abort();
    }
    switch (v->type) {
    case TL_T_STR:
        CHECK(v->u.str.len == 0 || v->u.str.ptr != NULL);
        touch(v->u.str.ptr, v->u.str.len);
        break;
    case TL_T_LIST_NUM:
        for (uint32_t i = 0; i < v->u.list.n; i++) {
            double d = tl_list_num(v, i);
            touch(&d, sizeof d);
        }
        break;
    case TL_T_LIST_STR:
        for (uint32_t i = 0; i < v->u.list.n; i++) {
            size_t n;
            const char *s = tl_list_str(v, i, &n);
            touch(s, n);
        }
        break;
    default: break;
    }
    /* The text form, measured first, then written in full. */
    size_t n = tl_value_format(v, NULL, 0);
    char *buf = tl_xmalloc(n + 1);
    CHECK(tl_value_format(v, buf, n + 1) == n);
    CHECK(strlen(buf) <= n);
    free(buf);
    char small[8];
    CHECK(tl_value_format(v, small, sizeof small) == n);
    CHECK(strlen(small) < sizeof small);
}

static void var_cb(void *ud, uint32_t var, const char *key)
{
    (void)ud;
    CHECK(var >= V_VISITS && var < V__END);
    CHECK((var == V_ATTRS) == (key != NULL));
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    init_values();
    if (!__sanitizer_install_malloc_and_free_hooks(malloc_hook, free_hook)) {
        fprintf(stderr, "fuzz_expr: cannot install the malloc hook\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[TL_ERRSZ];
    size_t off = (size_t)-1;
    err[0] = '\0';
    tl_expr *e = tl_expr_compile((const char *)data, size, &scope, TL_T_NULL,
                                 &off, err, sizeof err);
    if (!e) {
        CHECK(err[0] != '\0' && !strchr(err, '\n')); /* one line */
        CHECK(off <= size);
        return 0;
    }
    tl_expr_vars(e, var_cb, NULL);
    env en = {.profile = 0,
              .mix = tl_fnv1a(TL_FNV_OFFSET, data, size)};
    for (en.profile = 0; en.profile <= 4; en.profile++) {
        tl_value v;
        in_eval = 1;
        eval_mallocs = 0;
        tl_expr_eval(e, fetch, &en, &v);
        in_eval = 0;
        CHECK(eval_mallocs == 0);
        check_value(e, &v);
        int want = v.type == TL_T_BOOL && v.u.b;
        in_eval = 1;
        int truth = tl_expr_true(e, fetch, &en);
        in_eval = 0;
        CHECK(eval_mallocs == 0);
        CHECK(truth == want);
    }
    tl_expr_free(e);
    return 0;
}
