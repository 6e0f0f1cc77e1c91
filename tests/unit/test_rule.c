/* Rules, templates and the rule name scope. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/alloc_count.h"
#include "../support/expr_util.h"
#include "../support/testutil.h"
#include "rule.h"
#include "trigger.h"

#define HOUR 3600000LL
#define MINUTE 60000LL
#define DAY (24 * HOUR)
/* Midnight UTC of 2024-01-15 (a Monday, Madrid on CET = UTC+1) and of
 * 2024-07-15 (Madrid on CEST = UTC+2). */
#define WINTER 1705276800000LL
#define SUMMER 1721001600000LL


static tl_feature feats[2];
static tl_names names = {feats, 2};
static unsigned char *block;
static size_t block_size;

static tl_expr *names_expr(const char *src)
{
    tl_expr_scope sc = TL_NAMES_SCOPE(&names);
    size_t off;
    char err[256];
    tl_expr *e = tl_expr_compile(src, strlen(src), &sc, TL_T_BOOL, &off, err, sizeof err);
    if (!e) fprintf(stderr, "%s: %s\n", src, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    return e;
}

/* The message compiling src in sc gives, and where. */
static void compile_fails(const tl_expr_scope *sc, const char *src,
                          const char *want, size_t want_off)
{
    size_t off = 99;
    char err[256] = "";
    tl_expr *e = tl_expr_compile(src, strlen(src), sc, TL_T_BOOL, &off, err, sizeof err);
    CU_ASSERT_PTR_NULL(e);
    tl_expr_free(e);
    if (strcmp(err, want) != 0) fprintf(stderr, "`%s`: got %s\n", src, err);
    CU_ASSERT_STRING_EQUAL(err, want);
    CU_ASSERT_EQUAL(off, want_off);
}

/* Issue 20: unknown names say what is near, and `when` says why a feature
 * is not there. */
static void test_unknown_names_explained(void)
{
    tl_expr_scope nm = TL_NAMES_SCOPE(&names), ev = TL_WHEN_SCOPE(&names);
    compile_fails(&nm, "purchase > 1", "unknown name 'purchase'; did you mean 'purchases'?", 0);
    compile_fails(&nm, "len(lastitme) > 1", "unknown name 'lastitme'; did you mean 'last_item'?", 4);
    compile_fails(&nm, "chanel == 'web'", "unknown name 'chanel'; did you mean 'channel'?", 0);
    compile_fails(&nm, "wholly_else > 1", "unknown name 'wholly_else'", 0);
    compile_fails(&nm, "x > 1", "unknown name 'x'", 0);
    compile_fails(&ev, "type == 'p' and purchases > 1",
                  "'purchases' is a feature: features cannot be read in `when`; move it to `if`", 16);
    compile_fails(&ev, "purchase > 1", "unknown name 'purchase'", 0); /* features are not offered */
    compile_fails(&ev, "chanel == 'web'", "unknown name 'chanel'; did you mean 'channel'?", 0);
}

static int suite_init(void)
{
    memset(feats, 0, sizeof feats);
    char err[256];
    feats[0].name = strdup("purchases");
    feats[0].kind = TL_FK_COUNT;
    feats[0].where = NULL;
    feats[1].name = strdup("last_item");
    feats[1].kind = TL_FK_LAST;
    tl_expr_scope sc = {tl_event_resolve, NULL};
    size_t off;
    feats[1].field = tl_expr_compile("item", 4, &sc, TL_T_NULL, &off, err, sizeof err);
    if (!feats[1].field || tl_feature_finish(&feats[0], NULL, err, sizeof err) ||
        tl_feature_finish(&feats[1], NULL, err, sizeof err))
        return 1;
    block_size = tl_features_layout(feats, 2, 0);
    return 0;
}

static int suite_clean(void)
{
    tl_feature_clear(&feats[0]);
    tl_feature_clear(&feats[1]);
    return 0;
}

static tl_event event(int64_t ts, const char *type, const char *item)
{
    tl_event e;
    memset(&e, 0, sizeof e);
    e.event_id = "ev-1";
    e.customer_id = "c1";
    e.customer_id_len = 2;
    e.ts = ts;
    e.channel = TL_CH_STORE;
    e.type = type;
    e.item = item;
    return e;
}

/* Applies features then evaluates the rule, as the pipeline does. */
static int step(const tl_rule *r, tl_event e)
{
    for (int i = 0; i < 2; i++)
        tl_feature_apply(&feats[i], block, &e, tl_event_fetch, &e);
    tl_eval_ctx ctx = {&e, feats, block};
    return tl_rule_eval(r, block, &e, tl_eval_fetch, &ctx);
}

static tl_rule make_rule(const char *when, const char *cond, tl_rule_mode mode,
                         int64_t cooldown)
{
    tl_rule r;
    memset(&r, 0, sizeof r);
    r.name = strdup("r");
    r.when = when ? tl_test_event_expr(when, TL_T_BOOL) : NULL;
    r.cond = cond ? names_expr(cond) : NULL;
    r.mode = mode;
    r.cooldown_ms = cooldown;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(tl_rule_finish(&r, err, sizeof err), TL_OK);
    size_t end = tl_rules_layout(&r, 1, block_size);
    free(block);
    block = calloc(1, end);
    return r;
}

/* Issue 20: a trigger's explain gives each value as JSON text, so a null
 * reads null (it was "", as an empty string would), and a number 1 is not
 * the string "1". */
static void test_explain_json_values(void)
{
    tl_rule r = make_rule(NULL, "last_item == null and purchases >= 1",
                          TL_MODE_EVERY, 0);
    tl_event e = event(0, "visit", NULL);
    CU_ASSERT_EQUAL_FATAL(step(&r, e), 1);
    tl_eval_ctx ctx = {&e, feats, block};
    tl_firing fi = {&r, TL_CH_STORE, 0};
    tl_arena a;
    tl_arena_init(&a, 0);
    tl_trigger t;
    tl_trigger_build(&t, &fi, &e, "in", 0, 7, &ctx, &a);
    CU_ASSERT_EQUAL_FATAL(t.nexplain, 2);
    CU_ASSERT_STRING_EQUAL(t.explain[0].key, "last_item");
    CU_ASSERT_STRING_EQUAL(t.explain[0].val, "null");
    CU_ASSERT_STRING_EQUAL(t.explain[1].key, "purchases");
    CU_ASSERT_STRING_EQUAL(t.explain[1].val, "1");
    tl_rule r2 = make_rule(NULL, "last_item == 'big_mac'", TL_MODE_EVERY, 0);
    tl_event e2 = event(HOUR, "purchase", "big_mac");
    CU_ASSERT_EQUAL_FATAL(step(&r2, e2), 1);
    ctx.ev = &e2;
    ctx.block = block;
    fi.rule = &r2;
    tl_trigger_build(&t, &fi, &e2, "in", 0, 8, &ctx, &a);
    CU_ASSERT_EQUAL_FATAL(t.nexplain, 1);
    CU_ASSERT_STRING_EQUAL(t.explain[0].val, "\"big_mac\"");
    tl_arena_free(&a);
    tl_rule_clear(&r);
    tl_rule_clear(&r2);
}

static void test_every_with_cooldown(void)
{
    tl_rule r = make_rule("type == \"visit\"", "purchases >= 2", TL_MODE_EVERY, 12 * HOUR);
    CU_ASSERT_EQUAL(step(&r, event(0, "visit", NULL)), 0);         /* 1 event */
    CU_ASSERT_EQUAL(step(&r, event(1 * HOUR, "purchase", "a")), 0); /* when false */
    CU_ASSERT_EQUAL(step(&r, event(2 * HOUR, "visit", NULL)), 1);
    CU_ASSERT_EQUAL(step(&r, event(13 * HOUR, "visit", NULL)), 0);  /* 11h later */
    CU_ASSERT_EQUAL(step(&r, event(14 * HOUR, "visit", NULL)), 1);  /* exactly 12h */
    CU_ASSERT_EQUAL(step(&r, event(3 * HOUR, "visit", NULL)), 0);   /* older: inside */
    tl_rule_clear(&r);
}

static void test_edge(void)
{
    tl_rule r = make_rule(NULL, "last_item == \"tea\"", TL_MODE_EDGE, 0);
    CU_ASSERT_EQUAL(step(&r, event(1, "purchase", "coffee")), 0);
    CU_ASSERT_EQUAL(step(&r, event(2, "purchase", "tea")), 1);
    CU_ASSERT_EQUAL(step(&r, event(3, "purchase", "tea")), 0);   /* still true */
    CU_ASSERT_EQUAL(step(&r, event(4, "purchase", "milk")), 0);
    CU_ASSERT_EQUAL(step(&r, event(5, "purchase", "tea")), 1);   /* true again */
    tl_rule_clear(&r);
}

static void test_once_and_save_load(void)
{
    tl_rule r = make_rule(NULL, "purchases >= 1", TL_MODE_ONCE, 0);
    CU_ASSERT_EQUAL(step(&r, event(10, "purchase", "a")), 1);
    char buf[64];
    size_t n = tl_rule_save(&r, block, buf);
    CU_ASSERT_STRING_EQUAL(buf, "1;10;1");
    CU_ASSERT_EQUAL(n, 6);
    /* A restarted instance loading that state does not fire again. */
    unsigned char *copy = calloc(1, r.offset + r.size);
    char err[256];
    CU_ASSERT_EQUAL(tl_rule_load(&r, copy, buf, n, err, sizeof err), TL_OK);
    CU_ASSERT(memcmp(copy + r.offset, block + r.offset, r.size) == 0);
    CU_ASSERT_EQUAL(step(&r, event(20, "purchase", "b")), 0);
    const char *bad[] = {"", "2;1;0", "1;x;0", "1;1;0;", "1;1"};
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(tl_rule_load(&r, copy, bad[i], strlen(bad[i]), err, sizeof err),
                        TL_ERR_DECODE);
    free(copy);
    tl_rule_clear(&r);
}

static void test_explain_lists_features_read(void)
{
    tl_rule r = make_rule(NULL, "last_item != null and purchases > 1 and type == \"x\" and purchases < 9",
                          TL_MODE_EVERY, 0);
    CU_ASSERT_EQUAL(r.nexplain, 2);
    CU_ASSERT_EQUAL(r.explain[0], 1);
    CU_ASSERT_EQUAL(r.explain[1], 0);
    tl_rule_clear(&r);
}

static void test_names(void)
{
    uint32_t var;
    tl_type t;
    CU_ASSERT_EQUAL(tl_names_resolve(&names, "purchases", NULL, &var, &t), 0);
    CU_ASSERT_EQUAL(var, TL_EVENT_VAR_LIMIT + 0);
    CU_ASSERT_EQUAL(t, TL_T_NUM);
    CU_ASSERT_EQUAL(tl_names_resolve(&names, "last_item", NULL, &var, &t), 0);
    CU_ASSERT_EQUAL(t, TL_T_STR);
    CU_ASSERT_EQUAL(tl_names_resolve(&names, "event.item", NULL, &var, &t), 0);
    CU_ASSERT(var < TL_EVENT_VAR_LIMIT);
    CU_ASSERT_EQUAL(tl_names_resolve(&names, "event.attrs", "k", &var, &t), 0);
    CU_ASSERT_EQUAL(tl_names_resolve(&names, "event.purchases", NULL, &var, &t), -1);
    CU_ASSERT_EQUAL(tl_names_resolve(&names, "nope", NULL, &var, &t), -1);
}

static void test_template(void)
{
    tl_expr_scope sc = TL_NAMES_SCOPE(&names);
    tl_template t;
    size_t off = 0;
    char err[256];
    const char *src = "Hi {{customer_id}}: {{purchases}} buys, last {{last_item}}{{ attrs[\"x\"] }}!";
    CU_ASSERT_EQUAL_FATAL(tl_template_compile(&t, src, strlen(src), &sc, &off, err, sizeof err), TL_OK);
    memset(block, 0, block_size);
    tl_event e = event(5, "purchase", "tea");
    for (int i = 0; i < 2; i++) tl_feature_apply(&feats[i], block, &e, tl_event_fetch, &e);
    tl_feature_apply(&feats[0], block, &e, tl_event_fetch, &e);
    tl_eval_ctx ctx = {&e, feats, block};
    char buf[128];
    size_t n = tl_template_render(&t, tl_eval_fetch, &ctx, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "Hi c1: 2 buys, last tea!");
    CU_ASSERT_EQUAL(n, strlen(buf));
    /* Truncation reports the full length, like snprintf. */
    char small[8];
    n = tl_template_render(&t, tl_eval_fetch, &ctx, small, sizeof small);
    CU_ASSERT_EQUAL(n, strlen("Hi c1: 2 buys, last tea!"));
    CU_ASSERT_STRING_EQUAL(small, "Hi c1: ");
    tl_template_clear(&t);

    const char *bad = "ok {{ nope }} x";
    CU_ASSERT_EQUAL(tl_template_compile(&t, bad, strlen(bad), &sc, &off, err, sizeof err),
                    TL_ERR_CONFIG);
    CU_ASSERT_EQUAL(off, 6);
    const char *open = "ok {{ purchases";
    CU_ASSERT_EQUAL(tl_template_compile(&t, open, strlen(open), &sc, &off, err, sizeof err),
                    TL_ERR_CONFIG);
    CU_ASSERT_EQUAL(off, 3);
    CU_ASSERT_STRING_EQUAL(err, "'{{' without a closing '}}'");
    const char *plain = "no placeholders";
    CU_ASSERT_EQUAL(tl_template_compile(&t, plain, strlen(plain), &sc, &off, err, sizeof err), TL_OK);
    n = tl_template_render(&t, tl_eval_fetch, &ctx, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, plain);
    tl_template_clear(&t);
}

static void test_modes(void)
{
    tl_rule_mode m;
    CU_ASSERT_EQUAL(tl_rule_mode_parse("edge", &m), 0);
    CU_ASSERT_EQUAL(m, TL_MODE_EDGE);
    CU_ASSERT_EQUAL(tl_rule_mode_parse("sometimes", &m), -1);
    CU_ASSERT_STRING_EQUAL(tl_rule_mode_name(TL_MODE_ONCE), "once");
}


/* ---- rule sets ---------------------------------------------------------- */

#define FX_MAX 8

/* Rules evaluated together, with their own block (features first). */
typedef struct fixture {
    tl_rule r[FX_MAX];
    size_t n;
    tl_ruleset rs;
    unsigned char *blk;
    tl_firing out[FX_MAX];
    tl_suppress why[FX_MAX];
    size_t nout;
} fixture;

static tl_expr *str_expr(const char *src)
{
    tl_expr_scope sc = TL_NAMES_SCOPE(&names);
    size_t off;
    char err[256];
    tl_expr *e = tl_expr_compile(src, strlen(src), &sc, TL_T_NULL, &off, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    return e;
}

/* Adds a rule emitting on `channel` (-1: the event's channel). */
static tl_rule *fx_rule(fixture *f, const char *name, const char *when,
                        const char *cond, tl_rule_mode mode, int channel)
{
    CU_ASSERT_FATAL(f->n < FX_MAX);
    tl_rule *r = &f->r[f->n++];
    memset(r, 0, sizeof *r);
    r->name = strdup(name);
    r->when = when ? tl_test_event_expr(when, TL_T_BOOL) : NULL;
    r->cond = cond ? names_expr(cond) : NULL;
    r->mode = mode;
    if (channel >= 0) {
        r->has_channel = 1;
        r->channel = (tl_channel)channel;
    }
    return r;
}

static void fx_cap(tl_rule *r, uint32_t max, int64_t per, tl_channel ch)
{
    r->has_cap = 1;
    r->cap = (tl_cap){.max = max, .per_ms = per, .channel = ch};
}

static void fx_quiet(tl_rule *r, int from, int to, const char *tz)
{
    r->has_quiet = 1;
    r->quiet.from_min = from;
    r->quiet.to_min = to;
    r->quiet.tz_name = tz ? strdup(tz) : NULL;
}

static void fx_start(fixture *f)
{
    char err[256];
    for (size_t i = 0; i < f->n; i++) {
        int rc = tl_rule_finish(&f->r[i], err, sizeof err);
        if (rc) fprintf(stderr, "%s: %s\n", f->r[i].name, err);
        CU_ASSERT_EQUAL_FATAL(rc, TL_OK);
    }
    CU_ASSERT_EQUAL_FATAL(tl_ruleset_init(&f->rs, f->r, f->n, block_size, err, sizeof err), TL_OK);
    f->blk = calloc(1, f->rs.end);
}

static void fx_end(fixture *f)
{
    tl_ruleset_clear(&f->rs);
    for (size_t i = 0; i < f->n; i++) tl_rule_clear(&f->r[i]);
    free(f->blk);
    f->n = 0;
}

/* Applies the features then evaluates the set, as the pipeline does. */
static size_t fx_step(fixture *f, tl_event e)
{
    for (int i = 0; i < 2; i++)
        tl_feature_apply(&feats[i], f->blk, &e, tl_event_fetch, &e);
    tl_eval_ctx ctx = {&e, feats, f->blk};
    f->nout = tl_ruleset_eval(&f->rs, f->blk, &e, tl_eval_fetch, &ctx, f->out, f->why);
    return f->nout;
}

/* The rules that fired, by index, in output order: "0,2". */
static const char *fx_fired_list(const fixture *f)
{
    static char buf[64];
    buf[0] = '\0';
    for (size_t k = 0; k < f->nout; k++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%d", k ? "," : "",
                 (int)(f->out[k].rule - f->r));
    return buf;
}

static void test_set_modes(void)
{
    fixture f = {0};
    fx_rule(&f, "every", NULL, "last_item == \"tea\"", TL_MODE_EVERY, -1);
    fx_rule(&f, "edge", NULL, "last_item == \"tea\"", TL_MODE_EDGE, -1);
    fx_rule(&f, "once", NULL, "last_item == \"tea\"", TL_MODE_ONCE, -1);
    fx_start(&f);
    const char *items[] = {"coffee", "tea", "tea", "milk", "tea", "tea"};
    const char *want[] = {"", "0,1,2", "0", "", "0,1", "0"};
    for (int i = 0; i < 6; i++) {
        fx_step(&f, event(i + 1, "purchase", items[i]));
        CU_ASSERT_STRING_EQUAL(fx_fired_list(&f), want[i]);
        for (int k = 0; k < 3; k++) CU_ASSERT_EQUAL(f.why[k], TL_SUP_NONE);
    }
    /* The trigger's channel is the event's without emit.channel. */
    fx_step(&f, event(10, "purchase", "tea"));
    CU_ASSERT_EQUAL(f.out[0].channel, TL_CH_STORE);
    CU_ASSERT_EQUAL(f.out[0].holdout, 0);
    fx_end(&f);

    /* `when` false: the condition is not evaluated and the edge memory
     * stays as it was. */
    fx_rule(&f, "w", "type == \"visit\"", NULL, TL_MODE_EDGE, TL_CH_EMAIL);
    fx_start(&f);
    CU_ASSERT_EQUAL(fx_step(&f, event(1, "purchase", "a")), 0);
    CU_ASSERT_EQUAL(fx_step(&f, event(2, "visit", NULL)), 1);
    CU_ASSERT_EQUAL(f.out[0].channel, TL_CH_EMAIL);
    CU_ASSERT_EQUAL(fx_step(&f, event(3, "purchase", "a")), 0);
    CU_ASSERT_EQUAL(fx_step(&f, event(4, "visit", NULL)), 0); /* still true */
    fx_end(&f);
}

static void test_set_cooldown(void)
{
    fixture f = {0};
    tl_rule *r = fx_rule(&f, "cd", "type == \"visit\"", "purchases >= 2", TL_MODE_EVERY, -1);
    r->cooldown_ms = 12 * HOUR;
    fx_start(&f);
    CU_ASSERT_EQUAL(fx_step(&f, event(0, "visit", NULL)), 0);
    CU_ASSERT_EQUAL(f.why[0], TL_SUP_NONE); /* condition false: no candidate */
    CU_ASSERT_EQUAL(fx_step(&f, event(1 * HOUR, "purchase", "a")), 0);
    CU_ASSERT_EQUAL(fx_step(&f, event(2 * HOUR, "visit", NULL)), 1);
    CU_ASSERT_EQUAL(fx_step(&f, event(13 * HOUR, "visit", NULL)), 0);
    CU_ASSERT_EQUAL(f.why[0], TL_SUP_COOLDOWN);
    CU_ASSERT_EQUAL(fx_step(&f, event(14 * HOUR, "visit", NULL)), 1); /* exactly 12h */
    CU_ASSERT_EQUAL(fx_step(&f, event(3 * HOUR, "visit", NULL)), 0);  /* older: inside */
    CU_ASSERT_EQUAL(f.why[0], TL_SUP_COOLDOWN);
    fx_end(&f);
}

/* A suppressed edge or once rule changes none of its state: it is still
 * armed on the next event. */
static void test_set_suppressed_edge_and_once_fire_later(void)
{
    fixture f = {0};
    tl_rule *e = fx_rule(&f, "edge", NULL, "last_item == \"tea\"", TL_MODE_EDGE, -1);
    e->cooldown_ms = HOUR;
    tl_rule *o = fx_rule(&f, "once", "type == \"visit\"", NULL, TL_MODE_ONCE, -1);
    fx_quiet(o, 22 * 60, 8 * 60, "UTC");
    fx_start(&f);
    int64_t t = WINTER + 12 * HOUR;
    fx_step(&f, event(t, "purchase", "tea"));
    CU_ASSERT_STRING_EQUAL(fx_fired_list(&f), "0");
    fx_step(&f, event(t + 1 * MINUTE, "purchase", "milk"));
    fx_step(&f, event(t + 2 * MINUTE, "purchase", "tea")); /* edge, in cooldown */
    CU_ASSERT_EQUAL(f.nout, 0);
    CU_ASSERT_EQUAL(f.why[0], TL_SUP_COOLDOWN);
    fx_step(&f, event(t + 30 * MINUTE, "purchase", "tea")); /* still armed */
    CU_ASSERT_EQUAL(f.why[0], TL_SUP_COOLDOWN);
    fx_step(&f, event(t + 61 * MINUTE, "purchase", "tea"));
    CU_ASSERT_STRING_EQUAL(fx_fired_list(&f), "0");
    fx_step(&f, event(t + 62 * MINUTE, "purchase", "tea")); /* now remembered */
    CU_ASSERT_EQUAL(f.nout, 0);
    CU_ASSERT_EQUAL(f.why[0], TL_SUP_NONE);

    int64_t night = WINTER + 23 * HOUR;
    fx_step(&f, event(night, "visit", NULL));
    CU_ASSERT_EQUAL(f.nout, 0);
    CU_ASSERT_EQUAL(f.why[1], TL_SUP_QUIET_HOURS);
    fx_step(&f, event(night + 8 * HOUR, "visit", NULL)); /* 07:00 */
    CU_ASSERT_EQUAL(f.why[1], TL_SUP_QUIET_HOURS);
    fx_step(&f, event(night + 9 * HOUR, "visit", NULL)); /* 08:00 */
    CU_ASSERT_STRING_EQUAL(fx_fired_list(&f), "1");
    fx_step(&f, event(night + 10 * HOUR, "visit", NULL));
    CU_ASSERT_EQUAL(f.nout, 0);
    CU_ASSERT_EQUAL(f.why[1], TL_SUP_NONE);
    fx_end(&f);
}

static void test_set_cap(void)
{
    fixture f = {0};
    /* Two capped rules on email (the deeper cap sets the ledger depth), an
     * uncapped email rule that still counts, and a web rule that does not. */
    tl_rule *a = fx_rule(&f, "a", "type == \"a\"", NULL, TL_MODE_EVERY, TL_CH_EMAIL);
    fx_cap(a, 2, DAY, TL_CH_EMAIL);
    tl_rule *b = fx_rule(&f, "b", "type == \"b\"", NULL, TL_MODE_EVERY, TL_CH_EMAIL);
    fx_cap(b, 3, DAY, TL_CH_EMAIL);
    fx_rule(&f, "c", "type == \"c\"", NULL, TL_MODE_EVERY, TL_CH_EMAIL);
    fx_rule(&f, "d", "type == \"d\"", NULL, TL_MODE_EVERY, TL_CH_WEB);
    fx_start(&f);
    CU_ASSERT_EQUAL(f.rs.depth[TL_CH_EMAIL], 3);
    CU_ASSERT_EQUAL(f.rs.depth[TL_CH_WEB], 0);
    CU_ASSERT_EQUAL(tl_ruleset_nledgers(&f.rs), 1);
    CU_ASSERT_EQUAL(tl_ruleset_ledger_channel(&f.rs, 0), TL_CH_EMAIL);
    CU_ASSERT(f.rs.ledger_off[TL_CH_EMAIL] >= f.r[3].offset + f.r[3].size);
    CU_ASSERT_EQUAL(f.rs.ledger_off[TL_CH_EMAIL] % 8, 0);
    CU_ASSERT_EQUAL(f.rs.end, f.rs.ledger_off[TL_CH_EMAIL] + 8 + 3 * 8);
    CU_ASSERT_EQUAL(f.r[0].offset % 8, 0);
    CU_ASSERT(f.r[0].offset >= block_size);
    CU_ASSERT_EQUAL(tl_ruleset_ledger_used(&f.rs, 0, f.blk), 0);

    CU_ASSERT_EQUAL(fx_step(&f, event(0, "a", NULL)), 1);
    CU_ASSERT_EQUAL(fx_step(&f, event(1 * HOUR, "d", NULL)), 1); /* web: not counted */
    CU_ASSERT_EQUAL(fx_step(&f, event(2 * HOUR, "b", NULL)), 1);
    CU_ASSERT_EQUAL(fx_step(&f, event(3 * HOUR, "a", NULL)), 0); /* 2 in 24h */
    CU_ASSERT_EQUAL(f.why[0], TL_SUP_CAP);
    CU_ASSERT_EQUAL(fx_step(&f, event(4 * HOUR, "c", NULL)), 1); /* uncapped, counts */
    CU_ASSERT_EQUAL(fx_step(&f, event(5 * HOUR, "b", NULL)), 0); /* 3 in 24h */
    CU_ASSERT_EQUAL(f.why[1], TL_SUP_CAP);
    CU_ASSERT_EQUAL(tl_ruleset_ledger_used(&f.rs, 0, f.blk), 1);

    /* The window slides in event time: at 24h the send at 0 is out. */
    CU_ASSERT_EQUAL(fx_step(&f, event(DAY - 1, "b", NULL)), 0);
    CU_ASSERT_EQUAL(fx_step(&f, event(DAY, "b", NULL)), 1);   /* 2h, 4h, 24h */
    CU_ASSERT_EQUAL(fx_step(&f, event(DAY + 1, "a", NULL)), 0);
    CU_ASSERT_EQUAL(f.why[0], TL_SUP_CAP);
    CU_ASSERT_EQUAL(fx_step(&f, event(DAY + 4 * HOUR, "a", NULL)), 1); /* 24h, 28h */

    /* Save: newest first, only the newest `depth` kept. */
    char buf[256];
    CU_ASSERT(tl_ruleset_ledger_save_size(&f.rs, 0) >= 3 * 21);
    size_t n = tl_ruleset_ledger_save(&f.rs, 0, f.blk, buf);
    char want[128];
    snprintf(want, sizeof want, "%lld,%lld,%lld", DAY + 4 * HOUR, DAY, 4 * HOUR);
    CU_ASSERT_STRING_EQUAL(buf, want);
    CU_ASSERT_EQUAL(n, strlen(want));

    /* Load into a fresh block: the same bytes, the same text, the same
     * decisions. */
    unsigned char *copy = calloc(1, f.rs.end);
    char err[256];
    CU_ASSERT_EQUAL(tl_ruleset_ledger_load(&f.rs, TL_CH_EMAIL, copy, buf, n, err, sizeof err), TL_OK);
    size_t lo = f.rs.ledger_off[TL_CH_EMAIL];
    CU_ASSERT(memcmp(copy + lo, f.blk + lo, f.rs.end - lo) == 0);
    char again[256];
    CU_ASSERT_EQUAL(tl_ruleset_ledger_save(&f.rs, 0, copy, again), n);
    CU_ASSERT_STRING_EQUAL(again, buf);
    /* Extremes round-trip too. */
    const char *ext = "9223372036854775807,0,-9223372036854775808";
    CU_ASSERT_EQUAL(tl_ruleset_ledger_load(&f.rs, TL_CH_EMAIL, copy, ext, strlen(ext), err, sizeof err), TL_OK);
    tl_ruleset_ledger_save(&f.rs, 0, copy, again);
    CU_ASSERT_STRING_EQUAL(again, ext);
    /* More entries than the depth (a cap lowered since): the newest kept. */
    const char *more = "50,40,30,20,10";
    CU_ASSERT_EQUAL(tl_ruleset_ledger_load(&f.rs, TL_CH_EMAIL, copy, more, strlen(more), err, sizeof err), TL_OK);
    tl_ruleset_ledger_save(&f.rs, 0, copy, again);
    CU_ASSERT_STRING_EQUAL(again, "50,40,30");
    /* A channel no rule caps: ignored, nothing written. */
    memset(copy, 0, f.rs.end);
    CU_ASSERT_EQUAL(tl_ruleset_ledger_load(&f.rs, TL_CH_WEB, copy, "1", 1, err, sizeof err), TL_OK);
    for (size_t k = 0; k < f.rs.end; k++) CU_ASSERT_EQUAL_FATAL(copy[k], 0);
    const char *bad[] = {"", "1,", ",1", "x", "1,2", "1;2", " 1", "+1", "1,,0",
                         "99999999999999999999", "5,4,x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memcpy(copy, f.blk, f.rs.end);
        err[0] = '\0';
        CU_ASSERT_EQUAL(tl_ruleset_ledger_load(&f.rs, TL_CH_EMAIL, copy, bad[i], strlen(bad[i]), err, sizeof err),
                        TL_ERR_DECODE);
        CU_ASSERT(strstr(err, "send ledger of channel email: malformed") != NULL);
        CU_ASSERT_EQUAL(tl_ruleset_ledger_used(&f.rs, 0, copy), 0); /* reset */
    }
    free(copy);
    fx_end(&f);
}

/* A cap counts the channel it names; the trigger is recorded on its own
 * channel's ledger.  Priority decides who gets the last slot. */
static void test_set_cap_priority_and_channels(void)
{
    fixture f = {0};
    tl_rule *lo = fx_rule(&f, "lo", NULL, NULL, TL_MODE_EVERY, TL_CH_EMAIL);
    fx_cap(lo, 1, DAY, TL_CH_EMAIL);
    tl_rule *hi = fx_rule(&f, "hi", NULL, NULL, TL_MODE_EVERY, TL_CH_EMAIL);
    fx_cap(hi, 1, DAY, TL_CH_EMAIL);
    hi->priority = 3;
    fx_start(&f);
    CU_ASSERT_EQUAL(fx_step(&f, event(0, "x", NULL)), 1);
    CU_ASSERT_STRING_EQUAL(fx_fired_list(&f), "1");
    CU_ASSERT_EQUAL(f.why[0], TL_SUP_CAP);
    CU_ASSERT_EQUAL(f.why[1], TL_SUP_NONE);
    fx_end(&f);

    /* Without emit.channel a rule emits on the event's channel; its cap
     * (store) is checked on the store ledger whatever the event. */
    tl_rule *s = fx_rule(&f, "s", NULL, NULL, TL_MODE_EVERY, -1);
    fx_cap(s, 1, DAY, TL_CH_STORE);
    fx_start(&f);
    tl_event e = event(0, "x", NULL);
    e.channel = TL_CH_WEB;
    CU_ASSERT_EQUAL(fx_step(&f, e), 1); /* recorded on web: no ledger */
    CU_ASSERT_EQUAL(f.out[0].channel, TL_CH_WEB);
    CU_ASSERT_EQUAL(tl_ruleset_ledger_used(&f.rs, 0, f.blk), 0);
    CU_ASSERT_EQUAL(fx_step(&f, event(1, "x", NULL)), 1); /* store */
    CU_ASSERT_EQUAL(tl_ruleset_ledger_used(&f.rs, 0, f.blk), 1);
    CU_ASSERT_EQUAL(fx_step(&f, e), 0);
    CU_ASSERT_EQUAL(f.why[0], TL_SUP_CAP);
    fx_end(&f);
}

/* Expects, for each (ts, quiet?) pair, the rule suppressed or fired. */
static void quiet_case(fixture *f, int64_t ts, int quiet, tl_event e)
{
    e.ts = ts;
    size_t n = fx_step(f, e);
    if (n != (size_t)!quiet || f->why[0] != (quiet ? TL_SUP_QUIET_HOURS : TL_SUP_NONE))
        fprintf(stderr, "\n  ts %lld: want %s\n", (long long)ts, quiet ? "quiet" : "fire");
    CU_ASSERT_EQUAL(n, (size_t)!quiet);
    CU_ASSERT_EQUAL(f->why[0], quiet ? TL_SUP_QUIET_HOURS : TL_SUP_NONE);
}

static void quiet_rule(fixture *f, int from, int to, const char *tz)
{
    tl_rule *r = fx_rule(f, "q", NULL, NULL, TL_MODE_EVERY, -1);
    fx_quiet(r, from, to, tz);
    fx_start(f);
}

static void test_set_quiet_hours_utc(void)
{
    fixture f = {0};
    tl_event e = event(0, "visit", NULL);
    quiet_rule(&f, 22 * 60, 8 * 60, "UTC"); /* wraps midnight */
    quiet_case(&f, WINTER - 2 * HOUR - 1 * MINUTE, 0, e); /* 21:59 */
    quiet_case(&f, WINTER - 2 * HOUR, 1, e);              /* 22:00 */
    quiet_case(&f, WINTER, 1, e);                         /* 00:00 */
    quiet_case(&f, WINTER + 3 * HOUR, 1, e);
    quiet_case(&f, WINTER + 8 * HOUR - 1, 1, e);          /* 07:59:59.999 */
    quiet_case(&f, WINTER + 8 * HOUR, 0, e);              /* 08:00 */
    quiet_case(&f, WINTER + 12 * HOUR, 0, e);
    fx_end(&f);

    quiet_rule(&f, 9 * 60, 17 * 60 + 30, NULL); /* no tz: UTC; no wrap */
    quiet_case(&f, WINTER + 9 * HOUR - 1, 0, e);
    quiet_case(&f, WINTER + 9 * HOUR, 1, e);
    quiet_case(&f, WINTER + 17 * HOUR + 29 * MINUTE, 1, e);
    quiet_case(&f, WINTER + 17 * HOUR + 30 * MINUTE, 0, e);
    quiet_case(&f, WINTER + 23 * HOUR, 0, e);
    quiet_case(&f, WINTER - 1, 0, e);
    fx_end(&f);

    quiet_rule(&f, 10 * 60, 10 * 60, "UTC"); /* from == to: never quiet */
    for (int h = 0; h < 24; h++) quiet_case(&f, WINTER + h * HOUR, 0, e);
    fx_end(&f);

    quiet_rule(&f, 0, 1439, "UTC"); /* all but the last minute */
    quiet_case(&f, WINTER, 1, e);
    quiet_case(&f, WINTER + 23 * HOUR + 58 * MINUTE, 1, e);
    quiet_case(&f, WINTER + 23 * HOUR + 59 * MINUTE, 0, e);
    fx_end(&f);
}

static void test_set_quiet_hours_madrid_dst(void)
{
    fixture f = {0};
    tl_event e = event(0, "visit", NULL);
    quiet_rule(&f, 22 * 60, 8 * 60, "Europe/Madrid");
    /* Winter, UTC+1 */
    quiet_case(&f, WINTER + 20 * HOUR + 59 * MINUTE, 0, e); /* 21:59 local */
    quiet_case(&f, WINTER + 21 * HOUR, 1, e);               /* 22:00 */
    quiet_case(&f, WINTER + 6 * HOUR + 59 * MINUTE, 1, e);  /* 07:59 */
    quiet_case(&f, WINTER + 7 * HOUR, 0, e);                /* 08:00 */
    /* Summer, UTC+2 */
    quiet_case(&f, SUMMER + 19 * HOUR + 59 * MINUTE, 0, e); /* 21:59 local */
    quiet_case(&f, SUMMER + 20 * HOUR, 1, e);               /* 22:00 */
    quiet_case(&f, SUMMER + 5 * HOUR + 59 * MINUTE, 1, e);  /* 07:59 */
    quiet_case(&f, SUMMER + 6 * HOUR, 0, e);                /* 08:00 */
    fx_end(&f);

    /* Spring forward, 2024-03-31 01:00Z: 02:00 local becomes 03:00. */
    const int64_t spring = 1711846800000LL;
    quiet_rule(&f, 3 * 60, 4 * 60, "Europe/Madrid");
    quiet_case(&f, spring - 1000, 0, e);             /* 01:59:59 CET */
    quiet_case(&f, spring, 1, e);                    /* 03:00 CEST */
    quiet_case(&f, spring + HOUR - 1000, 1, e);      /* 03:59:59 */
    quiet_case(&f, spring + HOUR, 0, e);             /* 04:00 */
    fx_end(&f);

    /* Fall back, 2024-10-27 01:00Z: 02:00-03:00 local happens twice. */
    const int64_t fall = 1729990800000LL;
    quiet_rule(&f, 2 * 60, 3 * 60, "Europe/Madrid");
    quiet_case(&f, fall - HOUR - 1000, 0, e);        /* 01:59:59 CEST */
    quiet_case(&f, fall - HOUR, 1, e);               /* 02:00 CEST */
    quiet_case(&f, fall - 1000, 1, e);               /* 02:59:59 CEST */
    quiet_case(&f, fall, 1, e);                      /* 02:00 CET */
    quiet_case(&f, fall + HOUR - 1000, 1, e);        /* 02:59:59 CET */
    quiet_case(&f, fall + HOUR, 0, e);               /* 03:00 CET */
    fx_end(&f);
}

static tl_event event_tz(int64_t ts, tl_attr *a, const char *tz)
{
    tl_event e = event(ts, "visit", NULL);
    if (tz) {
        a->key = "tz";
        a->keylen = 2;
        a->val = tz;
        a->vallen = strlen(tz);
        e.attrs = a;
        e.nattrs = 1;
    }
    return e;
}

static void test_set_quiet_hours_tz_expression(void)
{
    fixture f = {0};
    tl_rule *r = fx_rule(&f, "q", NULL, NULL, TL_MODE_EVERY, -1);
    r->has_quiet = 1;
    r->quiet.from_min = 22 * 60;
    r->quiet.to_min = 8 * 60;
    r->quiet.tz_expr = str_expr("attrs[\"tz\"]");
    fx_start(&f);
    tl_attr a;
    const int64_t t = WINTER + 21 * HOUR + 30 * MINUTE; /* 21:30Z */
    for (int round = 0; round < 2; round++) { /* the second from the cache */
        quiet_case(&f, t, 1, event_tz(t, &a, "Europe/Madrid"));  /* 22:30 */
        quiet_case(&f, t, 0, event_tz(t, &a, "UTC"));
        quiet_case(&f, t, 0, event_tz(t, &a, "Mars/Olympus_Mons")); /* -> UTC */
        quiet_case(&f, t, 0, event_tz(t, &a, "../../etc/passwd"));   /* -> UTC */
        quiet_case(&f, t, 0, event_tz(t, &a, ""));
        quiet_case(&f, t, 0, event_tz(t, &a, NULL));                 /* null -> UTC */
        quiet_case(&f, t + HOUR, 1, event_tz(t + HOUR, &a, "Mars/Olympus_Mons"));
        quiet_case(&f, t + 6 * HOUR, 1, event_tz(t + 6 * HOUR, &a, "America/New_York"));
        quiet_case(&f, t + 16 * HOUR, 0, event_tz(t + 16 * HOUR, &a, "America/New_York"));
    }
    /* More zone names than the cache holds stay correct (bounded cache). */
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "No/Zone_%d", i);
        quiet_case(&f, t, 0, event_tz(t, &a, name));
    }
    quiet_case(&f, t, 1, event_tz(t, &a, "Europe/Madrid"));
    fx_end(&f);
}

static void test_finish_checks_options(void)
{
    char err[256];
    tl_rule r;

    memset(&r, 0, sizeof r);
    r.name = strdup("x");
    fx_quiet(&r, 22 * 60, 8 * 60, "Mars/Olympus_Mons");
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err, "quiet_hours.tz: unknown time zone 'Mars/Olympus_Mons'");
    tl_rule_clear(&r);

    memset(&r, 0, sizeof r);
    fx_quiet(&r, 1440, 8 * 60, "UTC");
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_ERR_CONFIG);
    CU_ASSERT(strstr(err, "quiet_hours: from and to") != NULL);
    tl_rule_clear(&r);

    memset(&r, 0, sizeof r);
    fx_quiet(&r, 0, 60, "UTC");
    r.quiet.tz_expr = str_expr("purchases");
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_ERR_CONFIG);
    CU_ASSERT(strstr(err, "not both") != NULL);
    free(r.quiet.tz_name);
    r.quiet.tz_name = NULL;
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err, "quiet_hours.tz: the expression must yield a string (a zone name), got number");
    tl_rule_clear(&r);

    memset(&r, 0, sizeof r);
    fx_cap(&r, 0, DAY, TL_CH_EMAIL);
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err, "cap.max must be from 1 to 1000, got 0");
    fx_cap(&r, 1001, DAY, TL_CH_EMAIL);
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_ERR_CONFIG);
    fx_cap(&r, 3, 0, TL_CH_EMAIL);
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err, "cap.per must be a positive duration");
    fx_cap(&r, 3, DAY, TL_CH__COUNT);
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_ERR_CONFIG);
    fx_cap(&r, 1000, DAY, TL_CH_EMAIL);
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_OK);
    r.holdout = 1.5;
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err, "holdout must be a share from 0% to 100%");
    r.holdout = -0.1;
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_ERR_CONFIG);
    r.holdout = 1;
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_OK);
    /* finish twice (reloaded zone, no leak) */
    fx_quiet(&r, 60, 120, "Europe/Madrid");
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(tl_rule_finish(&r, err, sizeof err), TL_OK);
    CU_ASSERT_PTR_NOT_NULL(r.quiet_zone);
    /* and clear frees attrs, group and the rest */
    r.group = strdup("g");
    r.nattrs = 1;
    r.attrs = calloc(1, sizeof *r.attrs);
    r.attrs[0].key = strdup("k");
    tl_expr_scope sc = TL_NAMES_SCOPE(&names);
    size_t off;
    CU_ASSERT_EQUAL(tl_template_compile(&r.attrs[0].value, "{{purchases}}", 13, &sc, &off, err, sizeof err), TL_OK);
    tl_rule_clear(&r);
    CU_ASSERT_PTR_NULL(r.attrs);

    /* tl_ruleset_init checks caps itself (its ledgers depend on them). */
    tl_rule rs1[1];
    memset(rs1, 0, sizeof rs1);
    rs1[0].name = "raw";
    rs1[0].has_cap = 1;
    tl_ruleset set;
    CU_ASSERT_EQUAL(tl_ruleset_init(&set, rs1, 1, 0, err, sizeof err), TL_ERR_CONFIG);
    CU_ASSERT(strstr(err, "trigger raw: cap") != NULL);
    CU_ASSERT_EQUAL(tl_ruleset_init(&set, rs1, 0, 0, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(set.end, 0);
    CU_ASSERT_EQUAL(tl_ruleset_nledgers(&set), 0);
    tl_ruleset_clear(&set);
}

static void test_set_group_priority(void)
{
    fixture f = {0};
    tl_rule *g1 = fx_rule(&f, "g1", NULL, "purchases >= 1", TL_MODE_EDGE, -1);
    g1->group = strdup("g");
    g1->priority = 1;
    tl_rule *g2 = fx_rule(&f, "g2", "item == \"tea\"", NULL, TL_MODE_EVERY, -1);
    g2->group = strdup("g");
    g2->priority = 5;
    g2->cooldown_ms = HOUR;
    tl_rule *g3 = fx_rule(&f, "g3", "item == \"tea\"", NULL, TL_MODE_EVERY, -1);
    g3->group = strdup("g");
    g3->priority = 5; /* tie with g2: config order */
    fx_rule(&f, "n", "item == \"tea\"", NULL, TL_MODE_EVERY, -1); /* no group */
    tl_rule *o = fx_rule(&f, "o", "item == \"tea\"", NULL, TL_MODE_EVERY, -1);
    o->group = strdup("other");
    o->priority = -2;
    fx_start(&f);

    fx_step(&f, event(0, "purchase", "tea"));
    CU_ASSERT_STRING_EQUAL(fx_fired_list(&f), "1,3,4"); /* priority order */
    CU_ASSERT_EQUAL(f.why[0], TL_SUP_GROUP);
    CU_ASSERT_EQUAL(f.why[2], TL_SUP_GROUP);
    CU_ASSERT_EQUAL(f.why[1], TL_SUP_NONE);
    /* g1 was suppressed, so its edge is still armed. */
    fx_step(&f, event(1 * MINUTE, "purchase", "coffee"));
    CU_ASSERT_STRING_EQUAL(fx_fired_list(&f), "0");
    /* A rule in its cooldown does not take its group's turn: g3 fires. */
    fx_step(&f, event(2 * MINUTE, "purchase", "tea"));
    CU_ASSERT_STRING_EQUAL(fx_fired_list(&f), "2,3,4");
    CU_ASSERT_EQUAL(f.why[1], TL_SUP_COOLDOWN);
    CU_ASSERT_EQUAL(f.why[2], TL_SUP_NONE);
    fx_step(&f, event(HOUR, "purchase", "tea"));
    CU_ASSERT_STRING_EQUAL(fx_fired_list(&f), "1,3,4");
    CU_ASSERT_EQUAL(f.why[2], TL_SUP_GROUP);
    fx_end(&f);
}

static void test_holdout_share(void)
{
    tl_rule r;
    memset(&r, 0, sizeof r);
    r.name = "welcome_back";
    r.holdout = 0.1;
    char id[32];
    int in = 0;
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(id, sizeof id, "cust-%05d", i);
        int h = tl_rule_in_holdout(&r, id, (size_t)n);
        CU_ASSERT_EQUAL(tl_rule_in_holdout(&r, id, (size_t)n), h); /* deterministic */
        in += h;
    }
    double share = in / 20000.0;
    printf("\n  holdout share %.4f for 0.1 over 20000 customers ", share);
    CU_ASSERT(share >= 0.085 && share <= 0.115);
    /* The rule name takes part: another rule picks other customers. */
    tl_rule r2 = r;
    r2.name = "promo";
    int same = 0, in2 = 0;
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(id, sizeof id, "%d", 100000 + i);
        int a = tl_rule_in_holdout(&r, id, (size_t)n), b = tl_rule_in_holdout(&r2, id, (size_t)n);
        same += a && b;
        in2 += b;
    }
    CU_ASSERT(in2 >= 1700 && in2 <= 2300);
    CU_ASSERT(same < 400); /* about 1% of customers are in both */
    r.holdout = 0;
    CU_ASSERT_EQUAL(tl_rule_in_holdout(&r, "c1", 2), 0);
    r.holdout = 1;
    CU_ASSERT_EQUAL(tl_rule_in_holdout(&r, "c1", 2), 1);
    /* FNV-1a 64 of customer "\0" rule, as a fraction of 2^64. */
    uint64_t h = tl_fnv1a(TL_FNV_OFFSET, "c1\0welcome_back", 15);
    r.holdout = (double)h / 18446744073709551616.0;
    CU_ASSERT_EQUAL(tl_rule_in_holdout(&r, "c1", 2), 0);
    r.holdout = r.holdout * 1.0000001;
    CU_ASSERT_EQUAL(tl_rule_in_holdout(&r, "c1", 2), 1);
}

/* Holdout triggers fire like the others: marked, and counted for cooldowns
 * and caps. */
static void test_set_holdout_counts(void)
{
    fixture f = {0};
    tl_rule *r = fx_rule(&f, "h", NULL, NULL, TL_MODE_EVERY, TL_CH_EMAIL);
    r->holdout = 0.5;
    r->cooldown_ms = HOUR;
    tl_rule *c = fx_rule(&f, "capped", NULL, NULL, TL_MODE_EVERY, TL_CH_EMAIL);
    fx_cap(c, 1, DAY, TL_CH_EMAIL);
    c->priority = -1;
    fx_start(&f);
    /* A customer in the holdout of h and one out of it. */
    char in_id[16] = "", out_id[16] = "";
    for (int i = 0; i < 100 && (!in_id[0] || !out_id[0]); i++) {
        char id[16];
        snprintf(id, sizeof id, "k%d", i);
        snprintf(tl_rule_in_holdout(r, id, strlen(id)) ? in_id : out_id, 16, "%s", id);
    }
    CU_ASSERT_FATAL(in_id[0] && out_id[0]);
    tl_event e = event(0, "x", NULL);
    e.customer_id = in_id;
    e.customer_id_len = strlen(in_id);
    CU_ASSERT_EQUAL(fx_step(&f, e), 1);
    CU_ASSERT_EQUAL(f.out[0].holdout, 1);
    CU_ASSERT_EQUAL(f.why[1], TL_SUP_CAP); /* the holdout send counted */
    e.ts = 30 * MINUTE;
    CU_ASSERT_EQUAL(fx_step(&f, e), 0);
    CU_ASSERT_EQUAL(f.why[0], TL_SUP_COOLDOWN);
    fx_end(&f);

    r = fx_rule(&f, "h", NULL, NULL, TL_MODE_EVERY, TL_CH_EMAIL);
    r->holdout = 0.5;
    fx_start(&f);
    e = event(0, "x", NULL);
    e.customer_id = out_id;
    e.customer_id_len = strlen(out_id);
    CU_ASSERT_EQUAL(fx_step(&f, e), 1);
    CU_ASSERT_EQUAL(f.out[0].holdout, 0);
    fx_end(&f);
}

static void test_suppress_names(void)
{
    CU_ASSERT_STRING_EQUAL(tl_suppress_name(TL_SUP_NONE), "none");
    CU_ASSERT_STRING_EQUAL(tl_suppress_name(TL_SUP_COOLDOWN), "cooldown");
    CU_ASSERT_STRING_EQUAL(tl_suppress_name(TL_SUP_QUIET_HOURS), "quiet_hours");
    CU_ASSERT_STRING_EQUAL(tl_suppress_name(TL_SUP_CAP), "cap");
    CU_ASSERT_STRING_EQUAL(tl_suppress_name(TL_SUP_GROUP), "group");
    CU_ASSERT_STRING_EQUAL(tl_suppress_name(TL_SUP__COUNT), "?");
}

/* The rules of a typical config: an event filter, a condition on two
 * features, cooldowns; one capped, one with quiet hours in a named zone,
 * one with quiet hours from an attribute, two in a group. */
static void typical_rules(fixture *f, size_t n)
{
    static const char *const conds[] = {
        "purchases >= 2 and last_item != null",
        "last_item in [\"tea\", \"coffee\"] and purchases > 1",
        "purchases > 3",
        "last_item == \"tea\" or purchases >= 10",
    };
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "rule%zu", i);
        tl_rule *r = fx_rule(f, name, i % 2 ? "type == \"purchase\"" : "type == \"visit\" or type == \"purchase\"",
                             conds[i % 4], i % 3 == 2 ? TL_MODE_EDGE : TL_MODE_EVERY,
                             i % 2 ? TL_CH_EMAIL : TL_CH_APP);
        r->cooldown_ms = (int64_t)(i + 1) * HOUR;
        if (i % 4 == 1) fx_cap(r, 3, 7 * DAY, TL_CH_EMAIL);
        if (i % 4 == 2) fx_quiet(r, 22 * 60, 8 * 60, "Europe/Madrid");
        if (i % 8 == 3) {
            r->has_quiet = 1;
            r->quiet.from_min = 22 * 60;
            r->quiet.to_min = 7 * 60;
            r->quiet.tz_expr = str_expr("attrs[\"tz\"]");
        }
        if (i % 4 == 0) {
            r->group = strdup("greeting");
            r->priority = (int)i;
        }
        r->holdout = 0.1;
    }
    fx_start(f);
}

static void typical_events(tl_event *evs, tl_attr *a, size_t n, char ids[][16])
{
    a->key = "tz";
    a->keylen = 2;
    a->val = "America/New_York";
    a->vallen = strlen(a->val);
    static const char *const items[] = {"tea", "coffee", "milk", NULL};
    for (size_t i = 0; i < n; i++) {
        evs[i] = event(WINTER + (int64_t)i * 7 * MINUTE, i % 3 ? "purchase" : "visit", items[i % 4]);
        snprintf(ids[i % 16], 16, "cust-%d", (int)(i % 16));
        evs[i].customer_id = ids[i % 16];
        evs[i].customer_id_len = strlen(ids[i % 16]);
        if (i % 2) {
            evs[i].attrs = a;
            evs[i].nattrs = 1;
        }
    }
}

/* Steady state evaluates without allocating (zones are cached). */
static void test_set_eval_allocates_nothing(void)
{
    if (tl_test_under_valgrind()) return;
    fixture f = {0};
    typical_rules(&f, 8);
    tl_event evs[64];
    tl_attr a;
    char ids[16][16];
    typical_events(evs, &a, 64, ids);
    for (int round = 0; round < 2; round++) {
        memset(f.blk, 0, f.rs.end);
        unsigned long fired = 0;
        tl_alloc_counting = round == 1; /* the first round loads zones */
        tl_alloc_calls = 0;
        for (size_t i = 0; i < 64; i++) {
            tl_eval_ctx ctx = {&evs[i], feats, f.blk};
            for (int k = 0; k < 2; k++)
                tl_feature_apply(&feats[k], f.blk, &evs[i], tl_event_fetch, &evs[i]);
            fired += tl_ruleset_eval(&f.rs, f.blk, &evs[i], tl_eval_fetch, &ctx, f.out, f.why);
        }
        tl_alloc_counting = 0;
        CU_ASSERT(fired > 0);
        if (round == 1) CU_ASSERT_EQUAL(tl_alloc_calls, 0);
    }
    fx_end(&f);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Micro-benchmark (printed, not asserted): tl_ruleset_eval over the
 * typical rules, features already applied, per rule. */
static void test_bench_eval(void)
{
    enum { NRULES = 8, NEV = 256 };
    fixture f = {0};
    typical_rules(&f, NRULES);
    tl_event evs[NEV];
    tl_attr a;
    char ids[16][16];
    typical_events(evs, &a, NEV, ids);
    /* One block per customer, as the cache holds them. */
    unsigned char *blocks = calloc(16, f.rs.end);
    tl_eval_ctx ctx[NEV];
    for (size_t i = 0; i < NEV; i++) {
        unsigned char *b = blocks + (i % 16) * f.rs.end;
        for (int k = 0; k < 2; k++)
            tl_feature_apply(&feats[k], b, &evs[i], tl_event_fetch, &evs[i]);
        ctx[i] = (tl_eval_ctx){&evs[i], feats, b};
    }
    int rounds = tl_test_under_valgrind() ? 2 : 100;
    unsigned long fired = 0;
    int64_t best = INT64_MAX;
    for (int rep = 0; rep < (tl_test_under_valgrind() ? 2 : 15); rep++) {
        memset(blocks, 0, 16 * f.rs.end);
        for (size_t i = 0; i < NEV; i++) { /* features again after the reset */
            for (int k = 0; k < 2; k++)
                tl_feature_apply(&feats[k], (unsigned char *)ctx[i].block, &evs[i], tl_event_fetch, &evs[i]);
        }
        int64_t t0 = now_ns();
        for (int r = 0; r < rounds; r++)
            for (size_t i = 0; i < NEV; i++) {
                /* Later rounds move in time so cooldowns and caps keep
                 * deciding both ways. */
                evs[i].ts += 30 * HOUR;
                fired += tl_ruleset_eval(&f.rs, (unsigned char *)ctx[i].block, &evs[i], tl_eval_fetch,
                                         &ctx[i], f.out, f.why);
            }
        int64_t dt = now_ns() - t0;
        if (dt < best) best = dt;
    }
    double per_rule = (double)best / ((double)rounds * NEV * NRULES);
    printf("\n  %lu firings; %d rules (when + if on 2 features, cooldown, cap, quiet hours, group, holdout)\n",
           fired, NRULES);
    printf("rule eval: %.0f ns per rule\n", per_rule);
    CU_ASSERT(fired > 0);
    free(blocks);
    fx_end(&f);
}

int main(void)
{
    tl_alloc_counter_install();
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("rule", suite_init, suite_clean);
    CU_add_test(s, "explain: values as JSON text", test_explain_json_values);
    CU_add_test(s, "every with cooldown", test_every_with_cooldown);
    CU_add_test(s, "edge", test_edge);
    CU_add_test(s, "once, save and load", test_once_and_save_load);
    CU_add_test(s, "explain lists the features the condition reads", test_explain_lists_features_read);
    CU_add_test(s, "names", test_names);
    CU_add_test(s, "unknown names explained", test_unknown_names_explained);
    CU_add_test(s, "template", test_template);
    CU_add_test(s, "mode names", test_modes);
    CU_add_test(s, "rule set: every, edge, once", test_set_modes);
    CU_add_test(s, "rule set: cooldown", test_set_cooldown);
    CU_add_test(s, "rule set: suppressed edge and once rules fire later",
                test_set_suppressed_edge_and_once_fire_later);
    CU_add_test(s, "rule set: cap across rules, sliding window, ledger save/load", test_set_cap);
    CU_add_test(s, "rule set: cap by priority, cap channel vs trigger channel",
                test_set_cap_priority_and_channels);
    CU_add_test(s, "rule set: quiet hours in UTC", test_set_quiet_hours_utc);
    CU_add_test(s, "rule set: quiet hours in Europe/Madrid across DST",
                test_set_quiet_hours_madrid_dst);
    CU_add_test(s, "rule set: quiet hours zone from an expression",
                test_set_quiet_hours_tz_expression);
    CU_add_test(s, "finish and init check cap, quiet hours, holdout", test_finish_checks_options);
    CU_add_test(s, "rule set: group priority", test_set_group_priority);
    CU_add_test(s, "holdout share and determinism", test_holdout_share);
    CU_add_test(s, "rule set: holdout triggers count", test_set_holdout_counts);
    CU_add_test(s, "suppression reason names", test_suppress_names);
    CU_add_test(s, "rule set: evaluation allocates nothing", test_set_eval_allocates_nothing);
    CU_add_test(s, "rule set: micro-benchmark", test_bench_eval);
    int rc = tl_test_run();
    free(block);
    return rc;
}
