/* Rules, templates and the rule name scope. */
#include <CUnit/Basic.h>
#include <string.h>

#include "../support/testutil.h"
#include "rule.h"

#define HOUR 3600000LL

static tl_feature feats[2];
static tl_names names = {feats, 2};
static unsigned char *block;
static size_t block_size;

static tl_expr *ev_expr(const char *src)
{
    tl_expr_scope sc = {tl_event_resolve, NULL};
    size_t off;
    char err[256];
    tl_expr *e = tl_expr_compile(src, strlen(src), &sc, TL_T_BOOL, &off, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    return e;
}

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
    r.when = when ? ev_expr(when) : NULL;
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

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("rule", suite_init, suite_clean);
    CU_add_test(s, "every with cooldown", test_every_with_cooldown);
    CU_add_test(s, "edge", test_edge);
    CU_add_test(s, "once, save and load", test_once_and_save_load);
    CU_add_test(s, "explain lists the features the condition reads", test_explain_lists_features_read);
    CU_add_test(s, "names", test_names);
    CU_add_test(s, "template", test_template);
    CU_add_test(s, "mode names", test_modes);
    int rc = tl_test_run();
    free(block);
    return rc;
}
