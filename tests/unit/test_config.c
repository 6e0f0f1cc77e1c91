/*
 * Unit tests for lib/config: the example config/tailord.yaml, defaults,
 * environment overrides, durations, the summary (password masking), and every
 * kind of error with its exact "FILE:LINE:COL: message" — in particular the
 * column of an expression error inside single-quoted, double-quoted, plain
 * and block scalars.  Fixtures live in tests/data/config/; tests run from the
 * source root.
 */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/testutil.h"
#include "config.h"
#include "schemas.h"

#define FIXTURES "tests/data/config/"
#define DAY INT64_C(86400000)
#define HOUR INT64_C(3600000)
/* tl_feature_kind_list(), as messages show it. */
#define KINDS                                                                  \
    "count, sum, min, max, avg, last, first_seen, last_seen, window_count, "  \
    "window_sum, decayed_count, decayed_sum, top_k, distinct, last_n, since"

/* Tests must not see the developer's or CI's environment. */
static void clear_env(void)
{
    unsetenv("TAILOR_KAFKA_BROKERS");
    unsetenv("TAILOR_REDIS_URL");
}

static tl_config *load_ok(const char *path)
{
    char err[TL_ERRSZ] = "";
    tl_config *c = tl_config_load(path, err, sizeof err);
    if (!c) fprintf(stderr, "\n  %s: unexpected error: %s\n", path, err);
    return c;
}

static tl_config *load_str_ok(const char *text)
{
    char err[TL_ERRSZ] = "";
    tl_config *c = tl_config_load_string(text, strlen(text), "t.yaml", err,
                                         sizeof err);
    if (!c) fprintf(stderr, "\n  unexpected error: %s\n", err);
    return c;
}

/* Asserts that loading fails with exactly `want`, reporting the caller's
 * line.  text NULL: load the file `path`; else load text named `path`. */
static void check_error(const char *path, const char *text, const char *want,
                        int line)
{
    char err[TL_ERRSZ] = "";
    tl_config *c = text ? tl_config_load_string(text, strlen(text), path, err,
                                                sizeof err)
                        : tl_config_load(path, err, sizeof err);
    int ok = !c && strcmp(err, want) == 0;
    if (!ok)
        fprintf(stderr, "\n  %s:%d\n    want: %s\n    got:  %s\n", __FILE__,
                line, want, c ? "(loaded)" : err);
    CU_assertImplementation(ok, (unsigned)line, "error message matches",
                            __FILE__, "", CU_FALSE);
    tl_config_free(c);
}

/* EXPECT_FILE("x.yaml", "3:5: msg") loads tests/data/config/x.yaml. */
#define EXPECT_FILE(file, msg)                                                 \
    check_error(FIXTURES file, NULL, FIXTURES file ":" msg, __LINE__)
/* EXPECT_STR("yaml text", "3:5: msg") loads the text as t.yaml. */
#define EXPECT_STR(text, msg)                                                  \
    check_error("t.yaml", text, "t.yaml:" msg, __LINE__)

static const tl_feature *feature(const tl_config *c, const char *name)
{
    for (size_t i = 0; i < c->nfeatures; i++)
        if (!strcmp(c->features[i].name, name)) return &c->features[i];
    return NULL;
}

static const tl_rule *rule(const tl_config *c, const char *name)
{
    for (size_t i = 0; i < c->nrules; i++)
        if (!strcmp(c->rules[i].name, name)) return &c->rules[i];
    return NULL;
}

static char *summary(const tl_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    tl_config_print_summary(c, f);
    fclose(f);
    return buf;
}

/* ---- valid configurations ---------------------------------------------- */

static void test_example(void)
{
    clear_env();
    tl_config *c = load_ok("config/tailord.yaml");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->path, "config/tailord.yaml");
    CU_ASSERT_STRING_EQUAL(c->brokers, "localhost:9092");
    CU_ASSERT_STRING_EQUAL(c->group, "tailord");
    CU_ASSERT_EQUAL_FATAL(c->ninputs, 1);
    CU_ASSERT_STRING_EQUAL(c->inputs[0], "interactions");
    CU_ASSERT_STRING_EQUAL(c->output, "triggers");
    CU_ASSERT_STRING_EQUAL(c->dead_letter, "interactions.dlq");
    CU_ASSERT_EQUAL_FATAL(c->nproperties, 2);
    CU_ASSERT_STRING_EQUAL(c->properties[0].key, "security.protocol");
    CU_ASSERT_STRING_EQUAL(c->properties[0].val, "plaintext");
    CU_ASSERT_STRING_EQUAL(c->properties[1].key, "socket.keepalive.enable");
    CU_ASSERT_STRING_EQUAL(c->properties[1].val, "true");
    CU_ASSERT_EQUAL(c->batch_size, 5000);
    CU_ASSERT_EQUAL(c->batch_timeout_ms, 5);
    CU_ASSERT_STRING_EQUAL(c->redis_url, "redis://127.0.0.1:6379/0");
    CU_ASSERT_STRING_EQUAL(c->redis_prefix, "tailor:");
    CU_ASSERT_EQUAL(c->redis_ttl_ms, 400 * DAY);
    CU_ASSERT_EQUAL(c->redis_timeout_ms, 2000);
    CU_ASSERT_EQUAL(c->redis_flush_interval_ms, 100);
    CU_ASSERT_STRING_EQUAL(c->http_listen, "127.0.0.1:9464");
    CU_ASSERT_PTR_NULL(c->http_token);
    CU_ASSERT_EQUAL(c->format, TL_FMT_AVRO);
    /* events.schema names schemas/interaction_event.avsc relative to
     * config/, the same text that is built in. */
    CU_ASSERT_PTR_NOT_NULL_FATAL(c->schema_json);
    CU_ASSERT_STRING_EQUAL(c->schema_json, tl_schema_interaction_event);
    CU_ASSERT_PTR_NULL(c->writer_schema_json);
    CU_ASSERT_EQUAL(c->cache_size, 100000);
    CU_ASSERT_EQUAL(c->log_level, TL_LOG_INFO);

    CU_ASSERT_EQUAL(c->max_lateness_ms, HOUR);
    CU_ASSERT_EQUAL(c->key_ttl_ms, 400 * DAY); /* no feature ttl is longer */

    /* An example of every kind. */
    static const struct {
        const char *name;
        tl_feature_kind kind;
        int where;
    } want[] = {
        {"purchases_30d", TL_FK_WINDOW_COUNT, 1},
        {"spend_total", TL_FK_SUM, 1},
        {"last_item", TL_FK_LAST, 1},
        {"last_purchase", TL_FK_LAST_SEEN, 1},
        {"coupon_uses", TL_FK_COUNT, 1},
        {"returns_90d", TL_FK_WINDOW_COUNT, 1},
        {"usual_order", TL_FK_TOP_K, 1},
        {"stores_visited", TL_FK_DISTINCT, 0},
        {"recent_items", TL_FK_LAST_N, 1},
        {"spend_90d", TL_FK_WINDOW_SUM, 1},
        {"engagement", TL_FK_DECAYED_COUNT, 0},
        {"spend_decay", TL_FK_DECAYED_SUM, 1},
        {"min_line", TL_FK_MIN, 1},
        {"max_line", TL_FK_MAX, 1},
        {"avg_line", TL_FK_AVG, 1},
        {"first_purchase", TL_FK_FIRST_SEEN, 1},
        {"since_last_purchase", TL_FK_SINCE, 0},
        {"failed_checkouts_1d", TL_FK_WINDOW_COUNT, 1},
    };
    size_t nwant = sizeof want / sizeof want[0];
    CU_ASSERT_EQUAL_FATAL(c->nfeatures, nwant);
    int seen[TL_FK__COUNT] = {0};
    for (size_t i = 0; i < nwant; i++) {
        CU_ASSERT_STRING_EQUAL(c->features[i].name, want[i].name);
        CU_ASSERT_EQUAL(c->features[i].kind, want[i].kind);
        CU_ASSERT_EQUAL(c->features[i].where != NULL, want[i].where);
        seen[c->features[i].kind] = 1;
    }
    for (int k = 0; k < TL_FK__COUNT; k++) CU_ASSERT(seen[k]);
    const tl_feature *f = feature(c, "purchases_30d");
    CU_ASSERT_EQUAL(f->window_ms, 30 * DAY);
    CU_ASSERT_EQUAL(f->resolution_ms, DAY);
    CU_ASSERT_EQUAL(f->nbuckets, 30);
    f = feature(c, "returns_90d");
    CU_ASSERT_EQUAL(f->window_ms, 90 * DAY);
    CU_ASSERT_EQUAL(f->resolution_ms, 3 * DAY); /* default: window / 30 */
    f = feature(c, "spend_total");
    CU_ASSERT_PTR_NOT_NULL(f->field);
    CU_ASSERT_EQUAL(f->type, TL_T_NUM);
    f = feature(c, "last_item");
    CU_ASSERT_EQUAL(f->type, TL_T_STR);
    CU_ASSERT_EQUAL(f->max_len, 64);
    CU_ASSERT_PTR_NULL(feature(c, "last_purchase")->field);
    f = feature(c, "usual_order");
    CU_ASSERT_EQUAL(f->k, 3);
    CU_ASSERT_EQUAL(f->max_len, 16);
    CU_ASSERT_EQUAL(f->half_life_ms, 60 * DAY);
    CU_ASSERT_EQUAL(f->type, TL_T_LIST_STR);
    f = feature(c, "stores_visited");
    CU_ASSERT_EQUAL(f->exact_up_to, 100);
    CU_ASSERT_EQUAL(f->precision, 10);
    CU_ASSERT_EQUAL(f->type, TL_T_NUM);
    f = feature(c, "recent_items");
    CU_ASSERT_EQUAL(f->n, 5);
    CU_ASSERT_EQUAL(f->max_len, 16);
    CU_ASSERT_EQUAL(f->ttl_ms, 180 * DAY);
    CU_ASSERT_EQUAL(f->type, TL_T_LIST_STR);
    f = feature(c, "spend_90d");
    CU_ASSERT_EQUAL(f->window_ms, 90 * DAY);
    CU_ASSERT_EQUAL(f->nbuckets, 30);
    CU_ASSERT_EQUAL(feature(c, "engagement")->half_life_ms, 7 * DAY);
    CU_ASSERT_EQUAL(feature(c, "spend_decay")->half_life_ms, 30 * DAY);
    f = feature(c, "since_last_purchase");
    CU_ASSERT_EQUAL(f->of, 3); /* last_purchase */
    CU_ASSERT_EQUAL(f->type, TL_T_NUM);
    for (size_t i = 0; i < c->nfeatures; i++)
        if (strcmp(c->features[i].name, "recent_items"))
            CU_ASSERT_EQUAL(c->features[i].ttl_ms, 0);

    f = feature(c, "failed_checkouts_1d");
    CU_ASSERT_EQUAL(f->window_ms, DAY);
    CU_ASSERT_EQUAL(f->resolution_ms, HOUR);

    CU_ASSERT_EQUAL_FATAL(c->nrules, 8);
    const tl_rule *r = rule(c, "greet_regular");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_NOT_NULL(r->when);
    CU_ASSERT_PTR_NOT_NULL(r->cond);
    CU_ASSERT_EQUAL(r->mode, TL_MODE_EVERY);
    CU_ASSERT_EQUAL(r->cooldown_ms, 12 * 3600 * 1000);
    CU_ASSERT(r->has_channel);
    CU_ASSERT_EQUAL(r->channel, TL_CH_STORE);
    CU_ASSERT(r->message.nparts >= 2);
    /* explain lists the features the condition reads, in source order. */
    CU_ASSERT_EQUAL_FATAL(r->nexplain, 2);
    CU_ASSERT_EQUAL(r->explain[0], 0); /* purchases_30d */
    CU_ASSERT_EQUAL(r->explain[1], 2); /* last_item */
    CU_ASSERT(!r->has_cap);
    CU_ASSERT(!r->has_quiet);
    CU_ASSERT_PTR_NULL(r->group);
    CU_ASSERT_EQUAL(r->priority, 0);
    CU_ASSERT_EQUAL(r->holdout, 0.0);
    CU_ASSERT_EQUAL(r->nattrs, 0);
    r = rule(c, "returns_follow_up");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->mode, TL_MODE_EDGE);
    CU_ASSERT_EQUAL(r->cooldown_ms, 30 * DAY);
    CU_ASSERT_EQUAL(r->channel, TL_CH_EMAIL);
    CU_ASSERT(r->has_cap); /* channel: emit's */
    CU_ASSERT_EQUAL(r->cap.max, 2);
    CU_ASSERT_EQUAL(r->cap.per_ms, 7 * DAY);
    CU_ASSERT_EQUAL(r->cap.channel, TL_CH_EMAIL);
    r = rule(c, "coupon_fan");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->mode, TL_MODE_ONCE);
    CU_ASSERT_EQUAL(r->cooldown_ms, 0);
    CU_ASSERT(!r->has_channel);

    /* The seed scenarios of issue 4, with an example of every option. */
    r = rule(c, "usual_greeting"); /* "the usual" at store entry */
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->channel, TL_CH_STORE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->group);
    CU_ASSERT_STRING_EQUAL(r->group, "store_greeting");
    CU_ASSERT_EQUAL(r->priority, 10);
    CU_ASSERT_EQUAL_FATAL(r->nattrs, 3);
    CU_ASSERT_STRING_EQUAL(r->attrs[0].key, "offer");
    CU_ASSERT_STRING_EQUAL(r->attrs[1].key, "usual");
    CU_ASSERT_STRING_EQUAL(r->attrs[2].key, "store");
    r = rule(c, "store_hello"); /* loses to usual_greeting */
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->group);
    CU_ASSERT_STRING_EQUAL(r->group, "store_greeting");
    CU_ASSERT_EQUAL(r->priority, 0);
    r = rule(c, "welcome_back"); /* 30 days away */
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT(r->has_cap);
    CU_ASSERT_EQUAL(r->cap.max, 2);
    CU_ASSERT_EQUAL(r->cap.per_ms, 7 * DAY);
    CU_ASSERT_EQUAL(r->cap.channel, TL_CH_EMAIL);
    CU_ASSERT(r->has_quiet);
    CU_ASSERT_EQUAL(r->quiet.from_min, 21 * 60);
    CU_ASSERT_EQUAL(r->quiet.to_min, 9 * 60);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->quiet.tz_name);
    CU_ASSERT_STRING_EQUAL(r->quiet.tz_name, "Europe/Madrid");
    CU_ASSERT_EQUAL(r->holdout, 0.1);
    CU_ASSERT_EQUAL(r->nattrs, 2);
    r = rule(c, "gold_segment"); /* entering a segment */
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->mode, TL_MODE_EDGE);
    CU_ASSERT_PTR_NULL(r->when);
    CU_ASSERT(r->has_quiet);
    CU_ASSERT_EQUAL(r->quiet.from_min, 22 * 60);
    CU_ASSERT_EQUAL(r->quiet.to_min, 8 * 60);
    CU_ASSERT_PTR_NULL(r->quiet.tz_name);
    CU_ASSERT_PTR_NOT_NULL(r->quiet.tz_expr); /* the customer's zone */
    CU_ASSERT_EQUAL(r->holdout, 0.05);
    r = rule(c, "agent_prompt"); /* two failed web checkouts */
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->channel, TL_CH_CALL_CENTER);
    CU_ASSERT_EQUAL(r->priority, 100);
    CU_ASSERT_PTR_NULL(r->group);
    CU_ASSERT_EQUAL_FATAL(r->nexplain, 1);
    CU_ASSERT_STRING_EQUAL(c->features[r->explain[0]].name,
                           "failed_checkouts_1d");
    /* Every option appears somewhere. */
    int has_cap = 0, has_quiet = 0, has_group = 0, has_holdout = 0,
        has_attrs = 0, has_prio = 0;
    for (size_t i = 0; i < c->nrules; i++) {
        has_cap |= c->rules[i].has_cap;
        has_quiet |= c->rules[i].has_quiet;
        has_group |= c->rules[i].group != NULL;
        has_holdout |= c->rules[i].holdout > 0;
        has_attrs |= c->rules[i].nattrs > 0;
        has_prio |= c->rules[i].priority != 0;
    }
    CU_ASSERT(has_cap && has_quiet && has_group && has_holdout && has_attrs &&
              has_prio);

    /* Features first, then rules, contiguous and 8-byte aligned; the cap
     * ledgers after them (tl_ruleset_init). */
    size_t end = 0;
    for (size_t i = 0; i < c->nfeatures; i++) {
        CU_ASSERT_EQUAL(c->features[i].offset, end);
        end = c->features[i].offset + c->features[i].size;
    }
    for (size_t i = 0; i < c->nrules; i++) {
        CU_ASSERT_EQUAL(c->rules[i].offset % 8, 0);
        CU_ASSERT(c->rules[i].offset >= end);
        end = c->rules[i].offset + c->rules[i].size;
    }
    CU_ASSERT_EQUAL(c->block_size, c->ruleset.end);
    CU_ASSERT(c->block_size >= end);
    CU_ASSERT_PTR_EQUAL(c->ruleset.rules, c->rules);
    CU_ASSERT_EQUAL(c->ruleset.nrules, c->nrules);
    tl_config_free(c);
}

static void test_defaults(void)
{
    clear_env();
    tl_config *c = load_str_ok("{}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->path, "t.yaml");
    CU_ASSERT_STRING_EQUAL(c->brokers, "localhost:9092");
    CU_ASSERT_STRING_EQUAL(c->group, "tailord");
    CU_ASSERT_EQUAL_FATAL(c->ninputs, 1);
    CU_ASSERT_STRING_EQUAL(c->inputs[0], "interactions");
    CU_ASSERT_STRING_EQUAL(c->output, "triggers");
    CU_ASSERT_STRING_EQUAL(c->dead_letter, "interactions.dlq");
    CU_ASSERT_EQUAL(c->nproperties, 0);
    CU_ASSERT_EQUAL(c->batch_size, 5000);
    CU_ASSERT_EQUAL(c->batch_timeout_ms, 5);
    CU_ASSERT_STRING_EQUAL(c->redis_url, "redis://127.0.0.1:6379/0");
    CU_ASSERT_STRING_EQUAL(c->redis_prefix, "tailor:");
    CU_ASSERT_EQUAL(c->redis_ttl_ms, 400 * DAY);
    CU_ASSERT_EQUAL(c->redis_timeout_ms, 2000);
    CU_ASSERT_EQUAL(c->redis_flush_interval_ms, 100);
    CU_ASSERT_EQUAL(c->format, TL_FMT_AVRO);
    CU_ASSERT_STRING_EQUAL(c->schema_json, tl_schema_interaction_event);
    CU_ASSERT_PTR_NULL(c->writer_schema_json);
    CU_ASSERT_EQUAL(c->cache_size, 100000);
    CU_ASSERT_EQUAL(c->log_level, TL_LOG_INFO);
    CU_ASSERT_EQUAL(c->nfeatures, 0);
    CU_ASSERT_EQUAL(c->nrules, 0);
    CU_ASSERT_EQUAL(c->block_size, 0);
    tl_config_free(c);

    /* Sections left empty (null) keep their defaults too. */
    c = load_ok(FIXTURES "valid_null_sections.yaml");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->brokers, "localhost:9092");
    CU_ASSERT_STRING_EQUAL(c->redis_url, "redis://127.0.0.1:6379/0");
    CU_ASSERT_EQUAL(c->nfeatures, 0);
    CU_ASSERT_EQUAL(c->nrules, 0);
    tl_config_free(c);

    /* Feature and trigger defaults. */
    c = load_ok(FIXTURES "valid_minimal.yaml");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL_FATAL(c->nfeatures, 1);
    CU_ASSERT_PTR_NULL(c->features[0].where);
    CU_ASSERT_EQUAL_FATAL(c->nrules, 1);
    CU_ASSERT_PTR_NULL(c->rules[0].when);
    CU_ASSERT_PTR_NULL(c->rules[0].cond);
    CU_ASSERT_EQUAL(c->rules[0].mode, TL_MODE_EVERY);
    CU_ASSERT_EQUAL(c->rules[0].cooldown_ms, 0);
    CU_ASSERT(!c->rules[0].has_channel);
    tl_config_free(c);
}

/* Every key set, in flow style, with triggers written before features. */
static void test_flow_style(void)
{
    clear_env();
    tl_config *c = load_ok(FIXTURES "valid_flow.yaml");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->brokers, "k1:9092,k2:9092");
    CU_ASSERT_STRING_EQUAL(c->group, "g1");
    CU_ASSERT_EQUAL_FATAL(c->ninputs, 1);
    CU_ASSERT_STRING_EQUAL(c->inputs[0], "orders");
    CU_ASSERT_STRING_EQUAL(c->output, "out");
    CU_ASSERT_STRING_EQUAL(c->dead_letter, "dlq");
    CU_ASSERT_EQUAL(c->batch_size, 5);
    CU_ASSERT_EQUAL(c->batch_timeout_ms, 2000);
    CU_ASSERT_EQUAL_FATAL(c->nproperties, 3);
    CU_ASSERT_STRING_EQUAL(c->properties[0].key, "linger.ms");
    CU_ASSERT_STRING_EQUAL(c->properties[0].val, "5");
    CU_ASSERT_STRING_EQUAL(c->properties[1].key, "acks");
    CU_ASSERT_STRING_EQUAL(c->properties[1].val, "all");
    CU_ASSERT_STRING_EQUAL(c->properties[2].key, "client.rack");
    CU_ASSERT_STRING_EQUAL(c->properties[2].val, "");
    CU_ASSERT_STRING_EQUAL(c->redis_url,
                           "redis://app:s3cret@redis.example:6380/2");
    CU_ASSERT_STRING_EQUAL(c->redis_prefix, "");
    CU_ASSERT_EQUAL(c->redis_ttl_ms, 0);
    CU_ASSERT_EQUAL(c->redis_timeout_ms, 250);
    CU_ASSERT_EQUAL(c->redis_flush_interval_ms, 0);
    CU_ASSERT_EQUAL(c->format, TL_FMT_JSON);
    CU_ASSERT_EQUAL(c->cache_size, 1);
    CU_ASSERT_EQUAL(c->log_level, TL_LOG_DEBUG);
    CU_ASSERT_EQUAL_FATAL(c->nfeatures, 2);
    CU_ASSERT_STRING_EQUAL(c->features[0].name, "spend");
    CU_ASSERT_STRING_EQUAL(c->features[1].name, "seen");
    CU_ASSERT_EQUAL_FATAL(c->nrules, 1);
    const tl_rule *r = &c->rules[0];
    CU_ASSERT_STRING_EQUAL(r->name, "big_spender");
    CU_ASSERT_EQUAL(r->mode, TL_MODE_EDGE);
    CU_ASSERT_EQUAL(r->channel, TL_CH_WEB);
    CU_ASSERT_EQUAL_FATAL(r->nexplain, 1);
    CU_ASSERT_EQUAL(r->explain[0], 0);
    tl_config_free(c);

    /* A list of input topics; schemas relative to the working directory
     * for tl_config_load_string. */
    c = load_str_ok("kafka: { input: [a, b, c] }\n"
                    "events:\n"
                    "  schema: schemas/interaction_event.avsc\n"
                    "  writer_schema: schemas/trigger.avsc\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL_FATAL(c->ninputs, 3);
    CU_ASSERT_STRING_EQUAL(c->inputs[0], "a");
    CU_ASSERT_STRING_EQUAL(c->inputs[2], "c");
    CU_ASSERT_STRING_EQUAL(c->schema_json, tl_schema_interaction_event);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c->writer_schema_json);
    CU_ASSERT_STRING_EQUAL(c->writer_schema_json, tl_schema_trigger);
    tl_config_free(c);

    /* Anchors and aliases are plain YAML and work. */
    c = load_str_ok("features:\n"
                    "  - { name: a, kind: count,\n"
                    "      where: &p 'type == \"purchase\"' }\n"
                    "  - { name: b, kind: sum, field: amount, where: *p }\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL(c->features[1].where);
    tl_config_free(c);
}

/* redis.cluster: a list of seeds becomes the store's redis-cluster:// URL;
 * the URL form is taken as it is. */
static void test_redis_cluster(void)
{
    tl_config *c = load_str_ok("redis:\n  cluster: [10.0.0.1:7000, 'h2:7001', "
                               "'[::1]:7002', h4]\n");
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_STRING_EQUAL(c->redis_url, "redis-cluster://10.0.0.1:7000,"
                                         "h2:7001,[::1]:7002,h4");
    tl_config_free(c);
    c = load_str_ok("redis: {url: 'redis-cluster://u:pw@h1:7000,h2:7000'}\n");
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_STRING_EQUAL(c->redis_url, "redis-cluster://u:pw@h1:7000,h2:7000");
    tl_config_free(c);
    EXPECT_STR("redis:\n  url: redis://h\n  cluster: [h:7000]\n",
               "3:12: redis.cluster: give either redis.url or redis.cluster, "
               "not both (a cluster URL is "
               "redis-cluster://[[user]:password@]host:port,...)");
    /* redis.allow_eviction: false unless given, true or false only. */
    c = load_str_ok("redis: {allow_eviction: true}\n");
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(c->redis_allow_eviction, 1);
    tl_config_free(c);
    c = load_str_ok("redis: {allow_eviction: false}\n");
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(c->redis_allow_eviction, 0);
    tl_config_free(c);
    c = load_str_ok("redis: {}\n");
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(c->redis_allow_eviction, 0);
    tl_config_free(c);
    EXPECT_STR("redis: {allow_eviction: yes}\n",
               "1:25: redis.allow_eviction: unknown allow_eviction 'yes' "
               "(expected one of: true, false)");
    EXPECT_STR("redis:\n  cluster: []\n",
               "2:12: redis.cluster: expected a non-empty list of host:port "
               "seed nodes, got an empty list");
    EXPECT_STR("redis: {cluster: h1:7000}\n",
               "1:18: redis.cluster: expected a non-empty list of host:port "
               "seed nodes, got 'h1:7000'");
    EXPECT_STR("redis:\n  cluster:\n    - h1:7000\n    - h2:70x0\n",
               "4:7: redis.cluster[1]: \"h2:70x0\": redis URL "
               "\"redis-cluster://h2:70x0\": port \"70x0\" is not a number in "
               "1..65535; expected "
               "redis-cluster://[[user]:password@]host[:port][,host[:port]...]");
    EXPECT_STR("redis:\n  cluster: ['a:1,b:2']\n",
               "2:13: redis.cluster[0]: \"a:1,b:2\": one host[:port] per item");
}

static void test_env_overrides(void)
{
    clear_env();
    setenv("TAILOR_KAFKA_BROKERS", "b1:9092,b2:9092", 1);
    setenv("TAILOR_REDIS_URL", "redis://:pw@10.0.0.1:6379/3", 1);
    tl_config *c = load_ok(FIXTURES "valid_flow.yaml");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->brokers, "b1:9092,b2:9092");
    CU_ASSERT_STRING_EQUAL(c->redis_url, "redis://:pw@10.0.0.1:6379/3");
    CU_ASSERT_STRING_EQUAL(c->group, "g1"); /* the rest is the file's */
    tl_config_free(c);

    /* Over the defaults too. */
    c = load_str_ok("{}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->brokers, "b1:9092,b2:9092");
    CU_ASSERT_STRING_EQUAL(c->redis_url, "redis://:pw@10.0.0.1:6379/3");
    tl_config_free(c);

    /* Empty values do not count. */
    setenv("TAILOR_KAFKA_BROKERS", "", 1);
    setenv("TAILOR_REDIS_URL", "", 1);
    c = load_ok(FIXTURES "valid_flow.yaml");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->brokers, "k1:9092,k2:9092");
    CU_ASSERT_STRING_EQUAL(c->redis_url,
                           "redis://app:s3cret@redis.example:6380/2");
    tl_config_free(c);

    /* An invalid file stays invalid whatever the environment says. */
    setenv("TAILOR_KAFKA_BROKERS", "b1:9092", 1);
    EXPECT_FILE("invalid_type_string.yaml",
                "2:12: kafka.brokers: expected a non-empty string, got a list");
    clear_env();
}

static void test_parse_duration(void)
{
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"0", 0},          {"0ms", 0},         {"000", 0},
        {"500ms", 500},    {"10s", 10000},     {"5m", 300000},
        {"12h", 43200000}, {"30d", 30 * DAY},  {"2w", 14 * DAY},
        {"400d", 400 * DAY},
        {"9223372036854775807ms", INT64_MAX},
        {"15250284452w", INT64_C(15250284452) * 7 * DAY},
    };
    static const char *const bad[] = {
        "", "d", "10", "-5s", "+5s", " 5s", "5s ", "5 s", "5S", "1.5h", "10x",
        "10sec", "1h30m", "ms", "9223372036854775808ms", "15250284453w",
        "99999999999999999999999d",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = -1;
        CU_ASSERT_EQUAL(tl_parse_duration(good[i].s, &ms), 0);
        CU_ASSERT_EQUAL(ms, good[i].ms);
        if (ms != good[i].ms) fprintf(stderr, "\n  duration '%s'\n", good[i].s);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 42;
        int rc = tl_parse_duration(bad[i], &ms);
        CU_ASSERT_NOT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(ms, 42);
        if (rc == 0)
            fprintf(stderr, "\n  accepted bad duration '%s'\n", bad[i]);
    }
    int64_t ms;
    CU_ASSERT_NOT_EQUAL(tl_parse_duration(NULL, &ms), 0);
}

/* Issue 3's options, at their bounds; `of` resolved to an index wherever
 * the feature it names is. */
static void test_feature_options(void)
{
    clear_env();
    tl_config *c = load_ok(FIXTURES "valid_feature_options.yaml");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL_FATAL(c->nfeatures, 9);
    const tl_feature *f = feature(c, "age");
    CU_ASSERT_EQUAL(f->kind, TL_FK_SINCE);
    CU_ASSERT_EQUAL(f->of, 8);
    CU_ASSERT_EQUAL(f->ttl_ms, 0);
    CU_ASSERT_EQUAL(f->type, TL_T_NUM);
    f = feature(c, "usual");
    CU_ASSERT_EQUAL(f->k, 100);
    CU_ASSERT_EQUAL(f->capacity, 10000);
    CU_ASSERT_EQUAL(f->half_life_ms, 1);
    CU_ASSERT_EQUAL(f->max_len, 4096);
    CU_ASSERT_EQUAL(f->type, TL_T_LIST_STR);
    f = feature(c, "usual_small");
    CU_ASSERT_EQUAL(f->k, 1);
    CU_ASSERT_EQUAL(f->capacity, 1); /* capacity may equal k */
    CU_ASSERT_EQUAL(f->half_life_ms, 0); /* no decay */
    f = feature(c, "stores");
    CU_ASSERT_EQUAL(f->exact_up_to, 100000);
    CU_ASSERT_EQUAL(f->precision, 16);
    CU_ASSERT_EQUAL(f->type, TL_T_NUM);
    f = feature(c, "quantities"); /* distinct takes numbers too */
    CU_ASSERT_EQUAL(f->exact_up_to, 1);
    CU_ASSERT_EQUAL(f->precision, 4);
    f = feature(c, "recent");
    CU_ASSERT_EQUAL(f->n, 100);
    CU_ASSERT_EQUAL(f->ttl_ms, 45 * DAY);
    CU_ASSERT_EQUAL(f->type, TL_T_LIST_NUM);
    f = feature(c, "recent_one");
    CU_ASSERT_EQUAL(f->n, 1);
    CU_ASSERT_EQUAL(f->max_len, 1);
    CU_ASSERT_EQUAL(f->type, TL_T_LIST_STR);
    CU_ASSERT_EQUAL(feature(c, "engaged")->half_life_ms, 520 * 7 * DAY);
    /* A feature ttl (45d) longer than redis.ttl (30d) keeps the key. */
    CU_ASSERT_EQUAL(c->redis_ttl_ms, 30 * DAY);
    CU_ASSERT_EQUAL(c->key_ttl_ms, 45 * DAY);
    CU_ASSERT_EQUAL(c->max_lateness_ms, 0);
    tl_config_free(c);

    /* `of` an earlier feature; several since features of one feature. */
    c = load_str_ok("features:\n"
                    "  - {name: seen, kind: last_seen}\n"
                    "  - {name: a, kind: since, of: seen}\n"
                    "  - {name: b, kind: since, of: seen, where: 'type == "
                    "\"return\"'}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->features[1].of, 0);
    CU_ASSERT_EQUAL(c->features[2].of, 0);
    tl_config_free(c);
}

/* What each kind takes, from tl_feature_kind_get: a valid feature of every
 * kind with the options it requires, with ttl; an option it does not take
 * is an error at the key, a required one missing an error at the feature. */
typedef struct opt_case {
    const char *key, *val;
} opt_case;

static const opt_case opt_cases[] = {
    {"half_life", "2d"}, {"k", "4"},         {"capacity", "12"},
    {"n", "3"},          {"exact_up_to", "50"}, {"precision", "12"},
    {"of", "fs"},
};

static int opt_flag(const tl_feature_kind_info *ki, const char *key)
{
    if (!strcmp(key, "half_life")) return ki->half_life;
    if (!strcmp(key, "k")) return ki->k;
    if (!strcmp(key, "capacity")) return ki->k ? TL_OPT_MAY : TL_OPT_NO;
    if (!strcmp(key, "n")) return ki->n;
    if (!strcmp(key, "exact_up_to")) return ki->bounds;
    if (!strcmp(key, "precision")) return ki->bounds ? TL_OPT_MAY : TL_OPT_NO;
    return ki->of;
}

/* features[1] of kind ki with its required options (but `omit`), then
 * `extra`; features[0] is a first_seen for `of`. */
static void kind_text(char *buf, size_t size, const tl_feature_kind_info *ki,
                      const char *omit, const char *extra)
{
    size_t o = (size_t)snprintf(buf, size,
                                "features: [{name: fs, kind: first_seen}, "
                                "{name: f, kind: %s",
                                ki->name);
    if (ki->needs_field)
        o += (size_t)snprintf(buf + o, size - o, ", field: %s",
                              ki->field_type == TL_T_NUM ? "amount" : "item");
    if (ki->needs_window)
        o += (size_t)snprintf(buf + o, size - o, ", window: 1d");
    for (size_t i = 0; i < sizeof opt_cases / sizeof opt_cases[0]; i++)
        if (opt_flag(ki, opt_cases[i].key) == TL_OPT_MUST &&
            (!omit || strcmp(omit, opt_cases[i].key)))
            o += (size_t)snprintf(buf + o, size - o, ", %s: %s",
                                  opt_cases[i].key, opt_cases[i].val);
    snprintf(buf + o, size - o, "%s}]\n", extra);
}

static void test_kind_options(void)
{
    clear_env();
    char text[512], want[512], extra[64];
    int nno = 0, nmust = 0;
    for (int k = 0; k < TL_FK__COUNT; k++) {
        const tl_feature_kind_info *ki = tl_feature_kind_get((tl_feature_kind)k);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ki);
        /* Every kind, with what it requires, and with ttl. */
        kind_text(text, sizeof text, ki, NULL, ", ttl: 3d");
        tl_config *c = load_str_ok(text);
        CU_ASSERT_PTR_NOT_NULL(c);
        if (c) {
            CU_ASSERT_EQUAL(c->features[1].kind, (tl_feature_kind)k);
            CU_ASSERT_EQUAL(c->features[1].ttl_ms, 3 * DAY);
            tl_config_free(c);
        }
        for (size_t i = 0; i < sizeof opt_cases / sizeof opt_cases[0]; i++) {
            const opt_case *oc = &opt_cases[i];
            int flag = opt_flag(ki, oc->key);
            snprintf(extra, sizeof extra, ", %s: %s", oc->key, oc->val);
            if (flag == TL_OPT_NO) {
                /* Not taken: an error at the key. */
                kind_text(text, sizeof text, ki, NULL, extra);
                const char *at = strstr(text, extra);
                snprintf(want, sizeof want,
                         "t.yaml:1:%zu: features[1]: kind %s takes no '%s'",
                         (size_t)(at - text) + 3, ki->name, oc->key);
                check_error("t.yaml", text, want, __LINE__);
                nno++;
            } else if (flag == TL_OPT_MUST) {
                /* Required: missing, an error at the feature. */
                kind_text(text, sizeof text, ki, oc->key, "");
                snprintf(want, sizeof want,
                         "t.yaml:1:42: features[1]: kind %s needs '%s'",
                         ki->name, oc->key);
                check_error("t.yaml", text, want, __LINE__);
                nmust++;
            } else if (!strcmp(oc->key, "capacity") && ki->k == TL_OPT_MAY) {
                /* capacity goes with k. */
                kind_text(text, sizeof text, ki, NULL, extra);
                snprintf(want, sizeof want,
                         "t.yaml:1:%zu: features[1]: 'capacity' needs 'k'",
                         (size_t)(strstr(text, extra) - text) + 3);
                check_error("t.yaml", text, want, __LINE__);
            } else if (strcmp(oc->key, "capacity") ||
                       ki->k == TL_OPT_MUST) {
                /* Optional and given: loads. */
                kind_text(text, sizeof text, ki, NULL, extra);
                tl_config *c2 = load_str_ok(text);
                CU_ASSERT_PTR_NOT_NULL(c2);
                tl_config_free(c2);
            }
        }
    }
    /* The kinds of issue 3 use each flag both ways. */
    CU_ASSERT(nno >= 50);
    CU_ASSERT(nmust >= 5);
}

static void test_max_lateness(void)
{
    clear_env();
    tl_config *c = load_str_ok("{}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->max_lateness_ms, HOUR);
    char *s = summary(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  max lateness   1h\n"));
    free(s);
    tl_config_free(c);

    c = load_str_ok("events: {max_lateness: 90s}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->max_lateness_ms, 90000);
    s = summary(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  max lateness   90s\n"));
    free(s);
    tl_config_free(c);

    c = load_str_ok("events: {format: json, max_lateness: 0}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->max_lateness_ms, 0); /* strictly in order */
    tl_config_free(c);

    c = load_str_ok("events: {max_lateness: 2w}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->max_lateness_ms, 14 * DAY);
    tl_config_free(c);
}

/* events.on_offset_reset: reapply by default, skip, nothing else. */
static void test_on_offset_reset(void)
{
    clear_env();
    tl_config *c = load_str_ok("{}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->on_offset_reset, TL_RESET_REAPPLY);
    char *s = summary(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  offset reset   reapply\n"));
    free(s);
    tl_config_free(c);

    c = load_str_ok("events: {on_offset_reset: skip}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->on_offset_reset, TL_RESET_SKIP);
    s = summary(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  offset reset   skip\n"));
    free(s);
    tl_config_free(c);

    c = load_str_ok("events: {on_offset_reset: reapply}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->on_offset_reset, TL_RESET_REAPPLY);
    tl_config_free(c);

    EXPECT_STR("events:\n  on_offset_reset: drop\n",
               "2:20: events.on_offset_reset: expected reapply or skip, "
               "got 'drop'");
    EXPECT_STR("events: {on_offset_reset: [skip]}\n",
               "1:27: events.on_offset_reset: expected reapply or skip, "
               "got a list");
}

/* events.min_time and events.max_future: the range of event times. */
static void test_event_times(void)
{
    clear_env();
    tl_config *c = load_str_ok("{}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->min_time_ms, INT64_C(946684800000)); /* 2000 */
    CU_ASSERT_EQUAL(c->max_future_ms, DAY);
    char *s = summary(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(
        s, "  times          from 2000-01-01T00:00:00Z to 1d ahead of the "
           "clock\n"));
    free(s);
    tl_config_free(c);

    c = load_str_ok("events:\n  min_time: 2009-12-01T09:00:00+01:00\n"
                    "  max_future: 0\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->min_time_ms, INT64_C(1259654400000));
    CU_ASSERT_EQUAL(c->max_future_ms, 0);
    s = summary(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(
        s, "  times          from 2009-12-01T08:00:00Z to 0 ahead of the "
           "clock\n"));
    free(s);
    tl_config_free(c);

    c = load_str_ok("events: {min_time: \"1970-01-01T00:00:00Z\", "
                    "max_future: 2w}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->min_time_ms, 0);
    CU_ASSERT_EQUAL(c->max_future_ms, 14 * DAY);
    tl_config_free(c);

    EXPECT_STR("events: {min_time: 2000-01-01}\n",
               "1:20: events.min_time: expected an ISO 8601 time like "
               "2000-01-01T00:00:00Z, got '2000-01-01'");
    EXPECT_STR("events:\n  min_time: 946684800000\n",
               "2:13: events.min_time: expected an ISO 8601 time like "
               "2000-01-01T00:00:00Z, got '946684800000'");
    EXPECT_STR("events: {min_time: [2000-01-01T00:00:00Z]}\n",
               "1:20: events.min_time: expected an ISO 8601 time like "
               "2000-01-01T00:00:00Z, got a list");
    EXPECT_STR("events: {min_time: 1969-12-31T23:59:59Z}\n",
               "1:20: events.min_time: expected a time from "
               "1970-01-01T00:00:00Z to before 2200-01-01T00:00:00Z, got "
               "'1969-12-31T23:59:59Z'");
    EXPECT_STR("events: {min_time: 2200-01-01T00:00:00Z}\n",
               "1:20: events.min_time: expected a time from "
               "1970-01-01T00:00:00Z to before 2200-01-01T00:00:00Z, got "
               "'2200-01-01T00:00:00Z'");
    EXPECT_STR("events: {max_future: 1 day}\n",
               "1:22: events.max_future: bad duration '1 day' (expected a "
               "number and a unit: ms, s, m, h, d, w; e.g. 30d, 12h, 500ms)");
    EXPECT_STR("events: {max_future: 1000000d}\n",
               "1:22: events.max_future: expected a duration of at most "
               "84006d, got '1000000d'");
}

/* key_ttl_ms: the longest of redis.ttl and the features' ttl; 0 with
 * redis.ttl 0. */
static void test_key_ttl(void)
{
    static const struct {
        const char *text;
        int64_t want;
    } cases[] = {
        {"{}", 400 * DAY},
        {"redis: {ttl: 10d}\n", 10 * DAY},
        {"redis: {ttl: 10d}\n"
         "features: [{name: a, kind: count, ttl: 5d}]\n",
         10 * DAY},
        {"redis: {ttl: 10d}\n"
         "features: [{name: a, kind: count, ttl: 5d},\n"
         "           {name: b, kind: count, ttl: 30d},\n"
         "           {name: c, kind: count, ttl: 20d},\n"
         "           {name: d, kind: count}]\n",
         30 * DAY},
        {"features: [{name: a, kind: last_seen, ttl: 401d}]\n", 401 * DAY},
        {"features: [{name: a, kind: last_seen, ttl: 400d}]\n", 400 * DAY},
        {"redis: {ttl: 0}\n"
         "features: [{name: a, kind: count, ttl: 30d}]\n",
         0},
        {"redis: {ttl: 1h}\n"
         "features: [{name: a, kind: count, ttl: 0}]\n",
         HOUR},
    };
    clear_env();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tl_config *c = load_str_ok(cases[i].text);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->key_ttl_ms, cases[i].want);
        if (c->key_ttl_ms != cases[i].want)
            fprintf(stderr, "\n  key ttl case %zu: %lld\n", i,
                    (long long)c->key_ttl_ms);
        tl_config_free(c);
    }
    /* The summary tells when a feature lengthens the keys' life. */
    tl_config *c = load_str_ok("redis: {ttl: 10d}\n"
                               "features: [{name: a, kind: count, ttl: 4w}]\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    char *s = summary(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  ttl            10d\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(s, "  key ttl        4w (the longest feature ttl)\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  a                    count         "
                                     "ttl 4w\n"));
    free(s);
    tl_config_free(c);
}

static void test_summary(void)
{
    clear_env();
    tl_config *c = load_ok(FIXTURES "valid_flow.yaml");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    char *s = summary(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "k1:9092,k2:9092"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "orders"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "redis://app:***@redis.example:6380/2"));
    CU_ASSERT_PTR_NULL(strstr(s, "s3cret"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "never expire"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "json"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "spend"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "field amount"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "big_spender"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "mode edge"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "spend >= 100"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "Spent {{spend}} so far"));
    free(s);
    tl_config_free(c);

    c = load_ok("config/tailord.yaml");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    s = summary(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "purchases_30d"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "window_count"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "window 30d by 1d"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "where type == \"purchase\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "ttl            400d"));
    CU_ASSERT_PTR_NULL(strstr(s, "key ttl")); /* the same as redis.ttl */
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "cooldown 12h"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  max lateness   1h\n"));
    /* Issue 3's options, per feature. */
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  usual_order          top_k         "
                                     "field item k 3 "));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, " half_life 60d where type == "));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  stores_visited       distinct      "
                                     "field store exact_up_to 100 "
                                     "precision 10\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "field item n 5 ttl 180d where"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "window 90d by 3d where"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  engagement           decayed_count "
                                     "half_life 1w\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  since_last_purchase  since         "
                                     "of last_purchase\n"));
    /* Issue 4's rule options. */
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    cap      2 per 1w on email\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(s, "    quiet    21:00 to 09:00, tz Europe/Madrid\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    quiet    22:00 to 08:00, tz from "
                                     "coalesce(attrs[\"tz\"], "
                                     "\"Europe/Madrid\")\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    group    store_greeting, priority "
                                     "10\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    priority 100\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    holdout  10% "));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    holdout  5% "));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    attr     offer = "
                                     "{{usual_order[0]}}\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    version  "));
    free(s);
    tl_config_free(c);

    c = load_ok(FIXTURES "valid_feature_options.yaml");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    s = summary(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  age                  since         "
                                     "of first_purchase\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, " k 100 capacity 10000 half_life 1ms\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, " n 100 ttl 45d\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  max lateness   0\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "  key ttl        45d (the longest "
                                     "feature ttl)\n"));
    free(s);
    tl_config_free(c);

    /* Masking: the password, or all user info without a ':'. */
    static const struct {
        const char *url, *shown, *hidden;
    } urls[] = {
        {"redis://h:6379/0", "redis://h:6379/0", NULL},
        {"redis://:pw@h:6379/0", "redis://:***@h:6379/0", "pw@"},
        {"redis://user:p/a@ss@h/1", "redis://user:***@h/1", "p/a"},
        {"redis://secret@h", "redis://***@h", "secret"},
        {"unix://:pw@/run/redis.sock?db=2",
         "unix://:***@/run/redis.sock?db=2", "pw@"},
        {"redis://h/0?password=pw&x=1", "redis://h/0?password=***&x=1", "=pw"},
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "redis: { url: '%s' }\n", urls[i].url);
        c = load_str_ok(text);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        s = summary(c);
        CU_ASSERT_PTR_NOT_NULL(strstr(s, urls[i].shown));
        if (urls[i].hidden) CU_ASSERT_PTR_NULL(strstr(s, urls[i].hidden));
        if (!strstr(s, urls[i].shown))
            fprintf(stderr, "\n  %s not shown as %s\n", urls[i].url,
                    urls[i].shown);
        free(s);
        tl_config_free(c);
    }
    tl_config_free(NULL); /* NULL-safe */
}

/* ---- errors -------------------------------------------------------------- */

static void test_err_yaml(void)
{
    EXPECT_FILE("invalid_syntax.yaml",
                "4:8: YAML syntax error: did not find expected ',' or ']' "
                "(while parsing a flow sequence at 3:10)");
    EXPECT_FILE("invalid_empty.yaml",
                "1:1: empty configuration (expected a mapping of sections: "
                "kafka, redis, events, state, daemon, log, http, features, triggers)");
    EXPECT_FILE("invalid_not_mapping.yaml",
                "1:1: expected a mapping of sections (kafka, redis, events, "
                "state, daemon, log, http, features, triggers) at the top level, got a list");
    EXPECT_FILE("invalid_two_documents.yaml",
                "3:1: a second YAML document (expected the configuration to be "
                "one document)");
    EXPECT_STR("", "1:1: empty configuration (expected a mapping of sections: "
                   "kafka, redis, events, state, daemon, log, http, features, triggers)");
    EXPECT_STR("x: 'unterminated\n",
               "2:1: YAML syntax error: found unexpected end of stream (while "
               "scanning a quoted scalar at 1:4)");
    EXPECT_STR("\t\n", "1:1: YAML syntax error: found character that cannot "
                       "start any token (while scanning for the next token at "
                       "1:1)");
    EXPECT_STR("a: *x\n", "1:4: YAML syntax error: found undefined alias");
    EXPECT_STR("{? [a] : b}\n",
               "1:4: expected a key name at the top level, got a list");

    char err[TL_ERRSZ];
    CU_ASSERT_PTR_NULL(
        tl_config_load(FIXTURES "no_such_file.yaml", err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, FIXTURES "no_such_file.yaml: cannot open "
                                         "configuration: No such file or "
                                         "directory");
    CU_ASSERT_PTR_NULL(tl_config_load("tests/data/config", err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "tests/data/config: cannot read "
                                "configuration: Is a directory");
    CU_ASSERT_PTR_NULL(tl_config_load_string("[", 1, NULL, err, sizeof err));
    CU_ASSERT_EQUAL(strncmp(err, "<string>:", 9), 0);
}

static void test_err_unknown_key(void)
{
    EXPECT_FILE("invalid_section.yaml",
                "2:1: unknown section 'kafak' (expected one of: kafka, redis, "
                "events, state, daemon, log, http, features, triggers)");
    EXPECT_FILE("invalid_key_kafka.yaml",
                "3:3: unknown key 'brokerz' in kafka (expected one of: brokers, "
                "group, input, output, dead_letter, properties, batch_size, "
                "batch_timeout, audit)");
    EXPECT_FILE("invalid_key_redis.yaml",
                "4:3: unknown key 'tll' in redis (expected one of: url, prefix, "
                "ttl, timeout, cluster, allow_eviction, flush_interval)");
    EXPECT_FILE("invalid_key_events.yaml",
                "1:25: unknown key 'shema' in events (expected one of: format, "
                "schema, writer_schema, max_lateness, min_time, max_future, "
                "on_offset_reset)");
    EXPECT_FILE("invalid_key_state.yaml",
                "2:3: unknown key 'cache' in state (expected one of: "
                "cache_size)");
    EXPECT_FILE("invalid_key_log.yaml",
                "2:3: unknown key 'lvl' in log (expected one of: level, format)");
    EXPECT_FILE("invalid_key_feature.yaml",
                "4:5: unknown key 'wher' in features[0] (expected one of: name, "
                "kind, where, field, window, resolution, max_length, "
                "half_life, ttl, k, capacity, n, exact_up_to, precision, of)");
    EXPECT_FILE("invalid_key_trigger.yaml",
                "3:5: unknown key 'iff' in triggers[0] (expected one of: name, "
                "when, if, mode, cooldown, cap, quiet_hours, priority, group, "
                "holdout, emit)");
    EXPECT_FILE("invalid_key_emit.yaml",
                "3:26: unknown key 'chanel' in triggers[0].emit (expected one "
                "of: channel, message, attrs)");
}

static void test_err_duplicate_key(void)
{
    EXPECT_FILE("invalid_duplicate_key.yaml",
                "4:3: duplicate key 'group' in kafka (first at 2:3)");
    EXPECT_FILE("invalid_duplicate_section.yaml",
                "3:1: duplicate key 'log' (first at 1:1)");
    EXPECT_STR("features: [{name: a, kind: count, name: b}]\n",
               "1:35: duplicate key 'name' in features[0] (first at 1:13)");
    EXPECT_STR("kafka: {properties: {a: 1, a: 2}}\n",
               "1:28: duplicate key 'a' in kafka.properties (first at 1:22)");
    EXPECT_STR("triggers: [{name: t, emit: {message: a, message: b}}]\n",
               "1:41: duplicate key 'message' in triggers[0].emit (first at "
               "1:29)");
}

static void test_err_wrong_type(void)
{
    EXPECT_FILE("invalid_type_string.yaml",
                "2:12: kafka.brokers: expected a non-empty string, got a list");
    EXPECT_FILE("invalid_type_mapping.yaml",
                "1:8: redis: expected a mapping, got 'redis://localhost'");
    EXPECT_FILE("invalid_type_list.yaml",
                "1:11: features: expected a list of features, got a mapping");
    EXPECT_FILE("invalid_input_empty.yaml",
                "2:10: kafka.input: expected a topic name or a non-empty list "
                "of topic names, got an empty list");
    EXPECT_FILE("invalid_format.yaml",
                "2:11: events.format: expected avro or json, got 'protobuf'");
    EXPECT_FILE("invalid_level.yaml",
                "2:10: log.level: expected one of error, warn, info, debug, got "
                "'verbose'");
    EXPECT_FILE("invalid_redis_url.yaml",
                "2:8: redis.url: expected "
                "redis://[[user]:password@]host[:port][/db], "
                "unix://[[user]:password@]/path/to/redis.sock or "
                "redis-cluster://[[user]:password@]host:port[,host:port...], "
                "got 'localhost:6379'");
    EXPECT_FILE("invalid_schema_missing.yaml",
                "2:11: events.schema: cannot open " FIXTURES
                "no_such_schema.avsc: No such file or directory");
    EXPECT_STR("kafka:\n  brokers: \"\"\n",
               "2:12: kafka.brokers: expected a non-empty string, got ''");
    EXPECT_STR("kafka:\n  brokers:\n",
               "2:11: kafka.brokers: expected a non-empty string, got nothing");
    EXPECT_STR("kafka: {brokers: ~}\n",
               "1:18: kafka.brokers: expected a non-empty string, got null");
    EXPECT_STR("kafka: {group: \"a\\0b\"}\n",
               "1:16: kafka.group: expected a string without NUL characters");
    EXPECT_STR("kafka: [1]\n", "1:8: kafka: expected a mapping, got a list");
    EXPECT_STR("kafka: {input: [a, [b]]}\n",
               "1:20: kafka.input[1]: expected a non-empty string, got a list");
    EXPECT_STR("kafka: {input: [a, b, a]}\n",
               "1:23: kafka.input[2]: topic 'a' is listed twice");
    EXPECT_STR("kafka: {properties: [a]}\n",
               "1:21: kafka.properties: expected a mapping of librdkafka "
               "properties to values, got a list");
    EXPECT_STR("features: [1]\n",
               "1:12: features[0]: expected a mapping with name, kind and the "
               "kind's keys, got '1'");
    EXPECT_STR("triggers: [{name: t, emit: hi}]\n",
               "1:28: triggers[0].emit: expected a mapping with message and "
               "optional channel, attrs, got 'hi'");
    EXPECT_STR("triggers: [{name: t, emit: {message: ''}}]\n",
               "1:38: triggers[0].emit.message: expected a non-empty message, "
               "got ''");
    EXPECT_STR("features: [{name: v, kind: count, where: ''}]\n",
               "1:42: features[0].where: expected an expression, got ''");
}

static void test_err_integer(void)
{
    EXPECT_FILE("invalid_integer.yaml",
                "2:15: kafka.batch_size: expected an integer from 1 to 100000, "
                "got 'abc'");
    EXPECT_FILE("invalid_integer_range.yaml",
                "2:15: kafka.batch_size: expected an integer from 1 to 100000, "
                "got '100001'");
    EXPECT_FILE("invalid_cache_size.yaml",
                "2:15: state.cache_size: expected an integer >= 1, got '0'");
    EXPECT_STR("kafka: {batch_size: 1.5}\n",
               "1:21: kafka.batch_size: expected an integer from 1 to 100000, "
               "got '1.5'");
    EXPECT_STR("state: {cache_size: 99999999999999999999}\n",
               "1:21: state.cache_size: expected an integer >= 1, got "
               "'99999999999999999999'");
    EXPECT_STR("features: [{name: s, kind: last, field: item, "
               "max_length: 5000}]\n",
               "1:59: features[0].max_length: expected an integer from 1 to "
               "4096, got '5000'");
}

static void test_err_duration(void)
{
    EXPECT_FILE("invalid_duration.yaml",
                "6:13: features[2].window: bad duration '30x' (expected a "
                "number and a unit: ms, s, m, h, d, w; e.g. 30d, 12h, 500ms)");
    EXPECT_FILE("invalid_duration_overflow.yaml",
                "2:8: redis.ttl: duration '99999999999999999w' is too large");
    EXPECT_FILE("invalid_timeout_zero.yaml",
                "2:12: redis.timeout: expected a duration above 0, got '0'");
    EXPECT_STR("kafka: {batch_timeout: 2h}\n",
               "1:24: kafka.batch_timeout: expected a duration of at most 1h, "
               "got '2h'");
    EXPECT_STR("triggers: [{name: t, cooldown: 5, emit: {message: 'x'}}]\n",
               "1:32: triggers[0].cooldown: bad duration '5' (expected a "
               "number and a unit: ms, s, m, h, d, w; e.g. 30d, 12h, 500ms)");
    EXPECT_STR("features: [{name: s, kind: window_count, window: 0}]\n",
               "1:50: features[0].window: expected a duration above 0, got "
               "'0'");
    EXPECT_STR("features: [{name: s, kind: window_count, window: 30d, "
               "resolution: 7d}]\n",
               "1:12: features[0] (s): window (2592000000 ms) must be a "
               "multiple of resolution (604800000 ms)");
}

static void test_err_names(void)
{
    EXPECT_FILE("invalid_duplicate_feature.yaml",
                "7:11: features[2].name: duplicate feature name 'visits' "
                "(first at 2:11)");
    EXPECT_FILE("invalid_duplicate_trigger.yaml",
                "4:13: triggers[1].name: duplicate trigger name 'hello' (first "
                "at 2:11)");
    EXPECT_FILE("invalid_feature_event_field.yaml",
                "2:11: features[0].name: 'amount' is the name of an event "
                "field; choose another feature name");
    EXPECT_FILE("invalid_reserved_name.yaml",
                "2:11: features[0].name: name '_internal' starts with '_', "
                "which is reserved for internal Redis fields");
    EXPECT_FILE("invalid_bad_name.yaml",
                "2:11: triggers[0].name: bad name 'Greet-Me' (expected "
                "lowercase letters, digits and '_', starting with a letter)");
    EXPECT_STR("triggers: [{name: _t, emit: {message: x}}]\n",
               "1:19: triggers[0].name: name '_t' starts with '_', which is "
               "reserved for internal Redis fields");
    EXPECT_STR("features: [{name: type, kind: count}]\n",
               "1:19: features[0].name: 'type' is the name of an event field; "
               "choose another feature name");
    EXPECT_STR("features: [{name: not, kind: count}]\n",
               "1:19: features[0].name: 'not' is a word of the expression "
               "language and cannot name a feature");
    EXPECT_STR("features: [{name: 9lives, kind: count}]\n",
               "1:19: features[0].name: bad name '9lives' (expected lowercase "
               "letters, digits and '_', starting with a letter)");
    EXPECT_STR("features: [{name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
               "aaaaaaaaaaaaaaaaaa, kind: count}]\n",
               "1:19: features[0].name: name is 65 characters long (at most "
               "64)");
    /* 64 is fine, and a trigger may share a feature's name. */
    tl_config *c = load_str_ok(
        "features: [{name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaa, kind: count}, {name: hello, kind: count}]\n"
        "triggers: [{name: hello, emit: {message: x}}]\n");
    CU_ASSERT_PTR_NOT_NULL(c);
    tl_config_free(c);
}

static void test_err_missing(void)
{
    EXPECT_FILE("invalid_missing_name.yaml",
                "2:5: features[0]: missing required key 'name'");
    EXPECT_FILE("invalid_missing_kind.yaml",
                "2:5: features[0]: missing required key 'kind' (one of: " KINDS
                ")");
    EXPECT_FILE("invalid_missing_field.yaml",
                "2:5: features[0]: missing required key 'field' (kind sum "
                "needs the event value it uses)");
    EXPECT_FILE("invalid_missing_window.yaml",
                "2:5: features[0]: missing required key 'window' (kind "
                "window_count counts over a sliding window, e.g. window: 30d)");
    EXPECT_FILE("invalid_missing_emit.yaml",
                "2:5: triggers[0]: missing required key 'emit' (the trigger's "
                "message and channel)");
    EXPECT_FILE("invalid_missing_message.yaml",
                "4:7: triggers[0].emit: missing required key 'message' (the "
                "text sent, with {{name}} placeholders)");
    EXPECT_STR("triggers: [{emit: {message: x}}]\n",
               "1:12: triggers[0]: missing required key 'name'");
}

static void test_err_kind_channel_mode(void)
{
    EXPECT_FILE("invalid_unknown_kind.yaml",
                "3:11: features[0].kind: unknown kind 'counter' (expected one "
                "of: " KINDS ")");
    EXPECT_FILE("invalid_unknown_channel.yaml",
                "3:22: triggers[0].emit.channel: unknown channel 'sms' "
                "(expected one of: web, app, store, call_center, email, chat, "
                "other)");
    EXPECT_FILE("invalid_unknown_mode.yaml",
                "3:11: triggers[0].mode: unknown mode 'always' (expected one "
                "of: every, edge, once)");
    EXPECT_STR("triggers: [{name: t, mode: , emit: {message: x}}]\n",
               "1:28: triggers[0].mode: expected one of: every, edge, once, "
               "got nothing");
    EXPECT_STR("features: [{name: t, kind: [count]}]\n",
               "1:28: features[0].kind: expected one of: " KINDS ", got a "
               "list");
    EXPECT_FILE("invalid_field_not_allowed.yaml",
                "2:36: features[0].field: kind count takes no field");
    EXPECT_FILE("invalid_field_type.yaml",
                "2:35: features[0].field: kind sum needs a number field, but "
                "this is a string");
    EXPECT_STR("features: [{name: s, kind: count, resolution: 1d}]\n",
               "1:47: features[0].resolution: kind count takes no resolution");
    EXPECT_STR("features: [{name: s, kind: last, field: amount, "
               "max_length: 10}]\n",
               "1:61: features[0].max_length: applies only to a feature that "
               "keeps a string field (e.g. kind last)");
    EXPECT_STR("features: [{name: s, kind: last, field: 'null'}]\n",
               "1:12: features[0] (s): field of kind last must be a number or "
               "a string or a bool, got null");
}

/* Issue 3's options: not taken, missing, out of range, wrong type, bad
 * durations, `of` naming nothing or the wrong kind. */
static void test_err_feature_options(void)
{
    /* Not taken by the kind: at the key. */
    EXPECT_FILE("invalid_option_not_allowed.yaml",
                "6:5: features[0]: kind count takes no 'k'");
    EXPECT_STR("features: [{name: s, kind: count, k: 3}]\n",
               "1:35: features[0]: kind count takes no 'k'");
    EXPECT_STR("features: [{name: s, kind: sum, field: amount,\n"
               "             half_life: 7d}]\n",
               "2:14: features[0]: kind sum takes no 'half_life'");
    EXPECT_STR("features: [{name: s, kind: last_n, field: item, n: 2, "
               "capacity: 5}]\n",
               "1:55: features[0]: kind last_n takes no 'capacity'");
    EXPECT_STR("features: [{name: s, kind: top_k, field: item, k: 2, n: 5}]\n",
               "1:54: features[0]: kind top_k takes no 'n'");
    EXPECT_STR("features: [{name: s, kind: count, exact_up_to: 5}]\n",
               "1:35: features[0]: kind count takes no 'exact_up_to'");
    EXPECT_STR("features: [{name: s, kind: top_k, field: item, k: 2, "
               "precision: 5}]\n",
               "1:54: features[0]: kind top_k takes no 'precision'");
    EXPECT_STR("features: [{name: s, kind: last_seen, of: s}]\n",
               "1:39: features[0]: kind last_seen takes no 'of'");
    /* ... even when its value is wrong too. */
    EXPECT_STR("features: [{name: s, kind: count, half_life: [x]}]\n",
               "1:35: features[0]: kind count takes no 'half_life'");

    /* Required and missing: at the feature. */
    EXPECT_FILE("invalid_missing_k.yaml",
                "6:5: features[3]: kind top_k needs 'k'");
    EXPECT_STR("features: [{name: s, kind: decayed_count}]\n",
               "1:12: features[0]: kind decayed_count needs 'half_life'");
    EXPECT_STR("features: [{name: s, kind: decayed_sum, field: amount}]\n",
               "1:12: features[0]: kind decayed_sum needs 'half_life'");
    EXPECT_STR("features: [{name: s, kind: last_n, field: item}]\n",
               "1:12: features[0]: kind last_n needs 'n'");
    EXPECT_STR("features:\n  - name: s\n    kind: since\n    ttl: 1d\n",
               "2:5: features[0]: kind since needs 'of'");
    /* The field comes first. */
    EXPECT_STR("features: [{name: s, kind: top_k}]\n",
               "1:12: features[0]: missing required key 'field' (kind top_k "
               "needs the event value it uses)");
    EXPECT_STR("features: [{name: s, kind: top_k, field: amount, k: 3}]\n",
               "1:42: features[0].field: kind top_k needs a string field, but "
               "this is a number");

    /* Out of range. */
    EXPECT_STR("features: [{name: s, kind: top_k, field: item, k: 0}]\n",
               "1:51: features[0].k: expected an integer from 1 to 100, got "
               "'0'");
    EXPECT_STR("features: [{name: s, kind: top_k, field: item, k: 101}]\n",
               "1:51: features[0].k: expected an integer from 1 to 100, got "
               "'101'");
    EXPECT_FILE("invalid_capacity.yaml",
                "6:15: features[0].capacity: expected an integer from 20 to "
                "10000, got '10'");
    EXPECT_STR("features: [{name: s, kind: top_k, field: item, k: 3, "
               "capacity: 10001}]\n",
               "1:64: features[0].capacity: expected an integer from 3 to "
               "10000, got '10001'");
    EXPECT_STR("features: [{name: s, kind: last_n, field: item, n: 0}]\n",
               "1:52: features[0].n: expected an integer from 1 to 100, got "
               "'0'");
    EXPECT_STR("features: [{name: s, kind: last_n, field: item, n: 101}]\n",
               "1:52: features[0].n: expected an integer from 1 to 100, got "
               "'101'");
    EXPECT_STR("features: [{name: s, kind: distinct, field: item, "
               "exact_up_to: 0}]\n",
               "1:64: features[0].exact_up_to: expected an integer from 1 to "
               "100000, got '0'");
    EXPECT_STR("features: [{name: s, kind: distinct, field: item, "
               "exact_up_to: 100001}]\n",
               "1:64: features[0].exact_up_to: expected an integer from 1 to "
               "100000, got '100001'");
    EXPECT_STR("features: [{name: s, kind: distinct, field: item, "
               "precision: 3}]\n",
               "1:62: features[0].precision: expected an integer from 4 to 16, "
               "got '3'");
    EXPECT_STR("features: [{name: s, kind: distinct, field: item, "
               "precision: 17}]\n",
               "1:62: features[0].precision: expected an integer from 4 to 16, "
               "got '17'");
    EXPECT_STR("features: [{name: s, kind: top_k, field: item, k: -3}]\n",
               "1:51: features[0].k: expected an integer from 1 to 100, got "
               "'-3'");

    /* Wrong types. */
    EXPECT_STR("features: [{name: s, kind: top_k, field: item, k: three}]\n",
               "1:51: features[0].k: expected an integer from 1 to 100, got "
               "'three'");
    EXPECT_STR("features: [{name: s, kind: top_k, field: item, k: 2.5}]\n",
               "1:51: features[0].k: expected an integer from 1 to 100, got "
               "'2.5'");
    EXPECT_STR("features: [{name: s, kind: last_n, field: item, n: [5]}]\n",
               "1:52: features[0].n: expected an integer from 1 to 100, got a "
               "list");
    EXPECT_STR("features: [{name: s, kind: distinct, field: item, "
               "precision: }]\n",
               "1:62: features[0].precision: expected an integer from 4 to 16, "
               "got nothing");
    EXPECT_STR("features: [{name: s, kind: since, of: [a]}]\n",
               "1:39: features[0].of: expected a non-empty string, got a list");
    EXPECT_STR("features: [{name: s, kind: since, of: ''}]\n",
               "1:39: features[0].of: expected a non-empty string, got ''");
    EXPECT_STR("features: [{name: s, kind: since, of: ~}]\n",
               "1:39: features[0].of: expected a non-empty string, got null");

    /* Durations. */
    EXPECT_FILE("invalid_half_life.yaml",
                "4:16: features[0].half_life: expected a duration above 0, got "
                "'0'");
    EXPECT_STR("features: [{name: s, kind: decayed_count, half_life: 7days}]\n",
               "1:54: features[0].half_life: bad duration '7days' (expected a "
               "number and a unit: ms, s, m, h, d, w; e.g. 30d, 12h, 500ms)");
    EXPECT_STR("features: [{name: s, kind: top_k, field: item, k: 1, "
               "half_life: {d: 1}}]\n",
               "1:65: features[0].half_life: bad duration a mapping (expected "
               "a number and a unit: ms, s, m, h, d, w; e.g. 30d, 12h, 500ms)");
    EXPECT_STR("features: [{name: s, kind: count, ttl: -1d}]\n",
               "1:40: features[0].ttl: bad duration '-1d' (expected a number "
               "and a unit: ms, s, m, h, d, w; e.g. 30d, 12h, 500ms)");
    EXPECT_STR("features: [{name: s, kind: count, ttl: 30}]\n",
               "1:40: features[0].ttl: bad duration '30' (expected a number "
               "and a unit: ms, s, m, h, d, w; e.g. 30d, 12h, 500ms)");
    EXPECT_STR("features: [{name: s, kind: count, ttl: 99999999999999999w}]\n",
               "1:40: features[0].ttl: duration '99999999999999999w' is too "
               "large");
    EXPECT_FILE("invalid_max_lateness.yaml",
                "2:17: events.max_lateness: bad duration '1 hour' (expected a "
                "number and a unit: ms, s, m, h, d, w; e.g. 30d, 12h, 500ms)");
    EXPECT_STR("events: {max_lateness: [1h]}\n",
               "1:24: events.max_lateness: bad duration a list (expected a "
               "number and a unit: ms, s, m, h, d, w; e.g. 30d, 12h, 500ms)");

    /* of: a name of the list, resolved after all of them are read. */
    EXPECT_FILE("invalid_unknown_of.yaml",
                "6:9: features[1]: unknown feature 'last_purchse' in of");
    EXPECT_STR("features: [{name: s, kind: since, of: nope},\n"
               "           {name: t, kind: top_k, field: item}]\n",
               "2:12: features[1]: kind top_k needs 'k'");
    EXPECT_STR("features: [{name: s, kind: since, of: \"S\"}]\n",
               "1:39: features[0]: unknown feature 'S' in of");
    EXPECT_STR("features: [{name: s, kind: since, of: nope}]\n"
               "triggers: [{name: t, emit: {message: x}}]\n",
               "1:39: features[0]: unknown feature 'nope' in of");
    /* tl_feature_finish checks what `of` names; the message is reported at
     * the `of` value. */
    EXPECT_FILE("invalid_of_kind.yaml",
                "5:9: features[0] (since_visits): 'of' must name a first_seen "
                "or last_seen feature; 'visits' is a count");
    EXPECT_STR("features: [{name: s, kind: since, of: s}]\n",
               "1:39: features[0] (s): 'of' must name a first_seen or "
               "last_seen feature; 's' is a since");
    EXPECT_STR("features: [{name: s, kind: since, of: t},\n"
               "           {name: t, kind: since, of: u},\n"
               "           {name: u, kind: first_seen}]\n",
               "1:39: features[0] (s): 'of' must name a first_seen or "
               "last_seen feature; 't' is a since");
    /* max_length: the loader wants a string field, tl_feature_finish a
     * kind that keeps its values. */
    EXPECT_STR("features: [{name: s, kind: last_n, field: amount, n: 2, "
               "max_length: 8}]\n",
               "1:69: features[0].max_length: applies only to a feature that "
               "keeps a string field (e.g. kind last)");
    EXPECT_STR("features: [{name: s, kind: distinct, field: item, "
               "max_length: 8}]\n",
               "1:12: features[0] (s): 'max_length' applies only to kinds "
               "last, last_n and top_k on a string field");
    /* Duplicate keys are duplicate keys. */
    EXPECT_STR("features: [{name: s, kind: top_k, field: item, k: 1, k: 2}]\n",
               "1:54: duplicate key 'k' in features[0] (first at 1:48)");
}

/* Expression errors point at the offending character inside the scalar,
 * whatever its style. */
static void test_err_expr_position(void)
{
    /* 'type == ''visit'' and chanel ...': '' is one quote in the value. */
    EXPECT_FILE("invalid_expr_single.yaml",
                "4:35: features[0].where: unknown name 'chanel'");
    /* "type == \"visit\" and chanel ...": escapes are two columns. */
    EXPECT_FILE("invalid_expr_double.yaml",
                "4:35: features[0].where: unknown name 'chanel'");
    EXPECT_FILE("invalid_expr_plain.yaml",
                "4:32: features[0].where: unknown name 'chanel'");
    EXPECT_FILE("invalid_expr_plain_multiline.yaml",
                "5:11: features[0].where: unknown name 'chanel'");
    EXPECT_FILE("invalid_expr_folded.yaml",
                "7:7: features[0].where: unknown name 'chanel'");
    EXPECT_FILE("invalid_expr_literal.yaml",
                "5:13: triggers[0].when: unknown name 'chanel'; did you mean "
                "'channel'?");
    /* A backslash-escaped line break and a \t escape. */
    EXPECT_FILE("invalid_expr_double_multiline.yaml",
                "3:14: features[0].where: unknown name 'chanel'");
    /* Columns count characters, as libyaml's do: "é" is one. */
    EXPECT_FILE("invalid_expr_unicode.yaml",
                "4:32: features[0].where: unknown name 'chanel'");
    EXPECT_FILE("invalid_expr_syntax.yaml",
                "4:18: features[0].where: unexpected character '=' (use '==' to "
                "compare)");
    EXPECT_FILE("invalid_when_feature.yaml",
                "5:12: triggers[0].when: 'purchases' is a feature: features "
                "cannot be read in `when`; move it to `if`");

    /* CRLF line ends. */
    EXPECT_STR("features:\r\n  - name: v\r\n    kind: count\r\n"
               "    where: 'type == \"a\" or chanel'\r\n",
               "4:28: features[0].where: unknown name 'chanel'");
    /* An anchor or a tag before the scalar. */
    EXPECT_STR("features:\n  - name: v\n    kind: count\n"
               "    where: &w 'chanel == 1'\n",
               "4:16: features[0].where: unknown name 'chanel'");
    EXPECT_STR("features:\n  - name: v\n    kind: count\n"
               "    where: !!str 'chanel == 1'\n",
               "4:19: features[0].where: unknown name 'chanel'");
    EXPECT_STR("features:\n  - name: v\n    kind: count\n    where: !!str\n"
               "      type == \"a\" or chanel\n",
               "5:22: features[0].where: unknown name 'chanel'");
    /* The end of the expression is the closing quote. */
    EXPECT_STR("features:\n  - name: v\n    kind: count\n"
               "    where: 'type =='\n",
               "4:20: features[0].where: expected a value but found end of "
               "expression");
    /* A byte-order mark is not a column. */
    EXPECT_STR("\xEF\xBB\xBF"
               "features:\n  - {name: v, kind: count, where: 'chanel'}\n",
               "2:36: features[0].where: unknown name 'chanel'");
    /* A tab inside quotes is one column; \u and \x escapes are 6 and 4. */
    EXPECT_STR("features: [{name: v, kind: count, where: \"type == \\\"a\\\"\tor "
               "chanel\"}]\n",
               "1:60: features[0].where: unknown name 'chanel'");
    EXPECT_STR("features: [{name: v, kind: count, where: \"item == "
               "\\\"\\u00e9\\x41\\\" or chanel\"}]\n",
               "1:69: features[0].where: unknown name 'chanel'");
    /* Folded with strip chomping and an empty line (a newline in the value);
     * literal with a header comment. */
    EXPECT_STR("features:\n  - name: v\n    kind: count\n    where: >-\n"
               "      type == \"a\"\n\n      or chanel\n",
               "7:10: features[0].where: unknown name 'chanel'");
    EXPECT_STR("features:\n  - name: v\n    kind: count\n"
               "    where: | # a comment\n      type == \"a\"\n      or chanel\n",
               "6:10: features[0].where: unknown name 'chanel'");
    /* An explicit indentation indicator depends on the parent's indentation,
     * which the raw text does not tell: the scalar's start is reported. */
    EXPECT_STR("features:\n  - name: v\n    kind: count\n    where: |2\n"
               "        type == \"a\" or chanel\n",
               "4:12: features[0].where: unknown name 'chanel'");
}

/* Inputs found by fuzz/fuzz_config.c, byte for byte. */
static void test_err_fuzz_regressions(void)
{
    /* A folded scalar whose more-indented line puts a line break inside a
     * string literal: the message showed the raw line break (two lines). */
    EXPECT_STR("features:\n  - name: v\n    kind: count\n    where: >\n"
               "     type\"\n      \"",
               "5:10: features[0].where: expected end of expression but "
               "found string \"? \"");
    /* A name starting with '_' that holds a line break: it was printed
     * whole and raw. */
    EXPECT_STR("features:\n- {name: _\n\n\"}",
               "2:10: features[0].name: name '_?\"' starts with '_', which "
               "is reserved for internal Redis fields");
    /* The same class of input elsewhere: quoted names with control
     * characters in messages that quote them. */
    EXPECT_STR("kafka: {input: [\"a\\nb\", \"a\\nb\"]}\n",
               "1:25: kafka.input[1]: topic 'a?b' is listed twice");
    EXPECT_STR("kafka: {properties: {\"x\\ty\": 1, \"x\\ty\": 2}}\n",
               "1:33: duplicate key 'x?y' in kafka.properties (first at "
               "1:22)");
}

static void test_err_if_type(void)
{
    EXPECT_FILE("invalid_if_type.yaml",
                "6:39: triggers[0].if: operator '>' needs two numbers or two "
                "strings, got string and number");
    EXPECT_FILE("invalid_if_not_bool.yaml",
                "5:10: triggers[0].if: expression must be bool, got number");
    EXPECT_STR("features: [{name: v, kind: count, where: 'amount'}]\n",
               "1:43: features[0].where: expression must be bool, got number");
}

static void test_err_template(void)
{
    EXPECT_FILE("invalid_template.yaml",
                "6:53: triggers[0].emit.message: unknown name 'lastitem'; did "
                "you mean 'last_item'?");
    EXPECT_FILE("invalid_template_unclosed.yaml",
                "3:26: triggers[0].emit.message: '{{' without a closing '}}'");
    EXPECT_STR("triggers: [{name: t, emit: {message: \"{{ item }} and {{ 1 + "
               "}}\"}}]\n",
               "1:61: triggers[0].emit.message: expected a value but found end "
               "of expression");
}

/* ---- rule options (issue 4) ----------------------------------------------- */

static int is_version(const char *v)
{
    if (strlen(v) != 16) return 0;
    for (size_t i = 0; i < 16; i++)
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
            return 0;
    return 1;
}

/* The version a rule whose text is exactly `text` gets. */
static void version_text(char out[17], const char *text)
{
    snprintf(out, 17, "%016llx",
             (unsigned long long)tl_fnv1a(TL_FNV_OFFSET, text, strlen(text)));
}

static void test_rule_options(void)
{
    clear_env();
    tl_config *c = load_ok(FIXTURES "valid_rule_options.yaml");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL_FATAL(c->nrules, 4);

    const tl_rule *r = rule(c, "full");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT(r->has_cap);
    CU_ASSERT_EQUAL(r->cap.max, 3);
    CU_ASSERT_EQUAL(r->cap.per_ms, 7 * DAY);
    CU_ASSERT_EQUAL(r->cap.channel, TL_CH_EMAIL); /* its own, not emit's */
    CU_ASSERT_EQUAL(r->channel, TL_CH_APP);
    CU_ASSERT(r->has_quiet);
    CU_ASSERT_EQUAL(r->quiet.from_min, 22 * 60);
    CU_ASSERT_EQUAL(r->quiet.to_min, 8 * 60);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->quiet.tz_name);
    CU_ASSERT_STRING_EQUAL(r->quiet.tz_name, "Europe/Madrid");
    CU_ASSERT_PTR_NULL(r->quiet.tz_expr);
    CU_ASSERT_EQUAL(r->priority, -1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->group);
    CU_ASSERT_STRING_EQUAL(r->group, "_greeting_2");
    CU_ASSERT_EQUAL(r->holdout, 0.125);
    CU_ASSERT_EQUAL_FATAL(r->nattrs, 4);
    static const char *const keys[] = {"offer", "spend", "plain", "empty"};
    for (size_t i = 0; i < 4; i++)
        CU_ASSERT_STRING_EQUAL(r->attrs[i].key, keys[i]);
    /* Compiled like the message: literal and expression parts. */
    CU_ASSERT_EQUAL(r->attrs[0].value.nparts, 2);
    CU_ASSERT_STRING_EQUAL(r->attrs[0].value.parts[0].lit, "the usual ");
    CU_ASSERT_PTR_NOT_NULL(r->attrs[0].value.parts[0].expr);
    CU_ASSERT_PTR_NOT_NULL(r->attrs[1].value.parts[0].expr);
    CU_ASSERT_EQUAL(r->attrs[2].value.nparts, 1);
    CU_ASSERT_STRING_EQUAL(r->attrs[2].value.parts[0].lit, "WELCOME10");
    CU_ASSERT_EQUAL(r->attrs[3].value.nparts, 1);
    CU_ASSERT_EQUAL(r->attrs[3].value.parts[0].litlen, 0);
    CU_ASSERT(is_version(r->version));

    r = rule(c, "defaults");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT(r->has_cap);
    CU_ASSERT_EQUAL(r->cap.max, 1000);
    CU_ASSERT_EQUAL(r->cap.per_ms, 1);
    CU_ASSERT_EQUAL(r->cap.channel, TL_CH_EMAIL); /* emit.channel */
    CU_ASSERT(r->has_quiet);
    CU_ASSERT_EQUAL(r->quiet.from_min, 0);
    CU_ASSERT_EQUAL(r->quiet.to_min, 23 * 60 + 59);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->quiet.tz_name);
    CU_ASSERT_STRING_EQUAL(r->quiet.tz_name, "UTC"); /* the default */
    CU_ASSERT_EQUAL(r->priority, 1000);
    CU_ASSERT_PTR_NULL(r->group);
    CU_ASSERT_EQUAL(r->holdout, 1.0);
    CU_ASSERT_EQUAL(r->nattrs, 0);

    /* Not a zone name: a string expression over the rule's names. */
    r = rule(c, "tz_expr");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT(!r->has_cap);
    CU_ASSERT_EQUAL(r->quiet.from_min, 23 * 60 + 59);
    CU_ASSERT_EQUAL(r->quiet.to_min, 0);
    CU_ASSERT_PTR_NULL(r->quiet.tz_name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->quiet.tz_expr);
    CU_ASSERT_EQUAL(tl_expr_type(r->quiet.tz_expr), TL_T_STR);
    CU_ASSERT_EQUAL(r->holdout, 0.0);
    CU_ASSERT_EQUAL(r->priority, 0);
    CU_ASSERT_EQUAL(r->nattrs, 0); /* attrs: with nothing */
    r = rule(c, "tz_feature");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_NULL(r->quiet.tz_name);
    CU_ASSERT_PTR_NOT_NULL(r->quiet.tz_expr);
    CU_ASSERT_EQUAL(r->holdout, 0.25);
    CU_ASSERT_EQUAL(r->nattrs, 0);

    /* The options in the summary. */
    char *s = summary(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    cap      3 per 1w on email\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    cap      1000 per 1ms on email\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(s, "    quiet    22:00 to 08:00, tz Europe/Madrid\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    quiet    00:00 to 23:59, tz UTC\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    quiet    23:59 to 00:00, tz from "
                                     "coalesce(attrs[\"tz\"], \"UTC\")\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    group    _greeting_2, priority "
                                     "-1000\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    priority 1000\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    holdout  12.5% "));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    holdout  100% "));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    holdout  25% "));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    attr     offer = the usual "
                                     "{{item}}\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "    attr     empty = \n"));
    char line[64];
    snprintf(line, sizeof line, "    version  %s\n", rule(c, "full")->version);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, line));
    free(s);
    tl_config_free(c);

    /* Holdout spellings: a percentage is exactly the share it names. */
    static const struct {
        const char *text;
        double share;
    } shares[] = {
        {"10%", 0.1},  {"0%", 0},        {"100%", 1},   {"12.5%", 0.125},
        {"7%", 0.07},  {"33.3%", 0.333}, {"0.5%", 0.005}, {"'1.%'", 0.01},
        {"0.1", 0.1},  {"0", 0},         {"1", 1},      {"1.0", 1},
        {".5", 0.5},   {"0.333", 0.333}, {"\"0.07\"", 0.07}, {"000.2", 0.2},
    };
    for (size_t i = 0; i < sizeof shares / sizeof shares[0]; i++) {
        char text[128];
        snprintf(text, sizeof text,
                 "triggers: [{name: t, holdout: %s, emit: {message: x}}]\n",
                 shares[i].text);
        c = load_str_ok(text);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->rules[0].holdout, shares[i].share);
        if (c->rules[0].holdout != shares[i].share)
            fprintf(stderr, "\n  holdout %s: %.17g\n", shares[i].text,
                    c->rules[0].holdout);
        tl_config_free(c);
    }

    /* Times of day, plain or quoted. */
    static const struct {
        const char *text;
        int min;
    } times[] = {{"00:00", 0}, {"'00:01'", 1}, {"\"09:30\"", 570},
                 {"12:00", 720}, {"23:59", 1439}};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        char text[160];
        snprintf(text, sizeof text,
                 "triggers: [{name: t, quiet_hours: {from: %s, to: '12:34'}, "
                 "emit: {message: x}}]\n",
                 times[i].text);
        c = load_str_ok(text);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->rules[0].quiet.from_min, times[i].min);
        CU_ASSERT_EQUAL(c->rules[0].quiet.to_min, 12 * 60 + 34);
        tl_config_free(c);
    }

    /* Zone names: letters, digits and _ + - /; the rest is an expression. */
    static const struct {
        const char *tz;
        int literal;
    } zones[] = {
        {"UTC", 1},           {"Etc/GMT+1", 1},        {"Etc/GMT-14", 1},
        {"America/Port-au-Prince", 1}, {"America/Argentina/Buenos_Aires", 1},
        {"'\"UTC\"'", 0},     {"'attrs[\"tz\"]'", 0},  {"'event.store'", 0},
        {"'lower(\"UTC\")'", 0}, {"'coalesce(attrs[\"tz\"], \"UTC\")'", 0},
    };
    for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) {
        char text[200];
        snprintf(text, sizeof text,
                 "triggers: [{name: t, quiet_hours: {from: '22:00', to: "
                 "'06:00', tz: %s}, emit: {message: x}}]\n",
                 zones[i].tz);
        c = load_str_ok(text);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(c->rules[0].quiet.tz_name != NULL, zones[i].literal);
        CU_ASSERT_EQUAL(c->rules[0].quiet.tz_expr != NULL, !zones[i].literal);
        if (zones[i].literal && c->rules[0].quiet.tz_name)
            CU_ASSERT_STRING_EQUAL(c->rules[0].quiet.tz_name, zones[i].tz);
        tl_config_free(c);
    }

    /* A rule without the options has none of them. */
    c = load_str_ok("triggers: [{name: t, emit: {message: x}}]\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    r = &c->rules[0];
    CU_ASSERT(!r->has_cap);
    CU_ASSERT(!r->has_quiet);
    CU_ASSERT_PTR_NULL(r->quiet.tz_name);
    CU_ASSERT_PTR_NULL(r->quiet.tz_expr);
    CU_ASSERT_EQUAL(r->priority, 0);
    CU_ASSERT_PTR_NULL(r->group);
    CU_ASSERT_EQUAL(r->holdout, 0.0);
    CU_ASSERT_EQUAL(r->nattrs, 0);
    CU_ASSERT_PTR_NULL(r->attrs);
    CU_ASSERT(is_version(r->version));
    s = summary(c);
    CU_ASSERT_PTR_NULL(strstr(s, "    cap "));
    CU_ASSERT_PTR_NULL(strstr(s, "    quiet "));
    CU_ASSERT_PTR_NULL(strstr(s, "    priority "));
    CU_ASSERT_PTR_NULL(strstr(s, "    holdout "));
    CU_ASSERT_PTR_NULL(strstr(s, "    attr "));
    free(s);
    tl_config_free(c);
}

/* The block holds the features, the rules' slices and the cap ledgers:
 * tl_ruleset_init lays them out and block_size is its end. */
static void test_ruleset_layout(void)
{
    clear_env();
    tl_config *c = load_str_ok(
        "features: [{name: a, kind: count}, {name: b, kind: last, field: item}]\n"
        "triggers:\n"
        "  - {name: t1, cap: {max: 3, per: 7d}, emit: {channel: email, "
        "message: x}}\n"
        "  - {name: t2, emit: {message: y}}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_EQUAL(c->ruleset.rules, c->rules);
    CU_ASSERT_EQUAL(c->ruleset.nrules, 2);
    CU_ASSERT_EQUAL(c->block_size, c->ruleset.end);
    size_t end = c->features[1].offset + c->features[1].size;
    for (size_t i = 0; i < c->nrules; i++) {
        CU_ASSERT(c->rules[i].offset >= end);
        CU_ASSERT(c->rules[i].size > 0);
        end = c->rules[i].offset + c->rules[i].size;
    }
    CU_ASSERT(c->block_size >= end);
    tl_config_free(c);

    /* No rules, no features. */
    c = load_str_ok("{}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->ruleset.nrules, 0);
    CU_ASSERT_EQUAL(c->block_size, c->ruleset.end);
    tl_config_free(c);
}

/* rule_version: a hash of the rule's text, from its first key to its last
 * value: the same text, the same version, wherever it is; a change of the
 * rule changes it, a change elsewhere does not. */
static void test_rule_version(void)
{
    clear_env();
    static const char base[] =
        "features: [{name: n, kind: count}]\n"
        "triggers:\n"
        "  - name: a\n"
        "    if: 'n > 1'\n"
        "    emit: {message: x}\n"
        "\n"
        "  # about b\n"
        "  - name: b\n"
        "    cap: {max: 2, per: 1d}\n"
        "    emit:\n"
        "      channel: email\n"
        "      message: y   # the end of b\n"
        "  # after b\n";
    char va[17], vb[17], want[17];
    tl_config *c = load_str_ok(base);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    snprintf(va, sizeof va, "%s", rule(c, "a")->version);
    snprintf(vb, sizeof vb, "%s", rule(c, "b")->version);
    CU_ASSERT(is_version(va));
    CU_ASSERT(is_version(vb));
    CU_ASSERT_STRING_NOT_EQUAL(va, vb);
    /* Exactly FNV-1a 64 of the rule's text: from its first key to the end
     * of its last value. */
    version_text(want, "name: a\n    if: 'n > 1'\n    emit: {message: x}");
    CU_ASSERT_STRING_EQUAL(va, want);
    version_text(want, "name: b\n    cap: {max: 2, per: 1d}\n    emit:\n"
                       "      channel: email\n      message: y");
    CU_ASSERT_STRING_EQUAL(vb, want);
    tl_config_free(c);

    /* The same text loads to the same versions, in a file too. */
    c = load_str_ok(base);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(rule(c, "a")->version, va);
    CU_ASSERT_STRING_EQUAL(rule(c, "b")->version, vb);
    tl_config_free(c);

    static const struct {
        const char *what, *text;
        int a_same, b_same;
    } edits[] = {
        {"b's message",
         "features: [{name: n, kind: count}]\ntriggers:\n"
         "  - name: a\n    if: 'n > 1'\n    emit: {message: x}\n"
         "  - name: b\n    cap: {max: 2, per: 1d}\n    emit:\n"
         "      channel: email\n      message: z\n",
         1, 0},
        {"b's cap",
         "features: [{name: n, kind: count}]\ntriggers:\n"
         "  - name: a\n    if: 'n > 1'\n    emit: {message: x}\n"
         "  - name: b\n    cap: {max: 3, per: 1d}\n    emit:\n"
         "      channel: email\n      message: y\n",
         1, 0},
        {"a's condition",
         "features: [{name: n, kind: count}]\ntriggers:\n"
         "  - name: a\n    if: 'n > 2'\n    emit: {message: x}\n"
         "  - name: b\n    cap: {max: 2, per: 1d}\n    emit:\n"
         "      channel: email\n      message: y\n",
         0, 1},
        {"a new key in a",
         "features: [{name: n, kind: count}]\ntriggers:\n"
         "  - name: a\n    if: 'n > 1'\n    emit: {message: x}\n"
         "    priority: 0\n"
         "  - name: b\n    cap: {max: 2, per: 1d}\n    emit:\n"
         "      channel: email\n      message: y\n",
         0, 1},
        /* Comments and blank lines between and after rules, other
         * sections, another feature, the rules' order: nothing. */
        {"comments, sections, order",
         "# a comment\nlog: {level: debug}\n"
         "triggers:\n"
         "  # first b now\n"
         "  - name: b\n    cap: {max: 2, per: 1d}\n    emit:\n"
         "      channel: email\n      message: y\n\n\n"
         "  # then a\n"
         "  - name: a\n    if: 'n > 1'\n    emit: {message: x}   # x!\n"
         "features: [{name: m, kind: count}, {name: n, kind: count}]\n",
         1, 1},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        c = load_str_ok(edits[i].text);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        const tl_rule *ra = rule(c, "a"), *rb = rule(c, "b");
        CU_ASSERT_PTR_NOT_NULL_FATAL(ra);
        CU_ASSERT_PTR_NOT_NULL_FATAL(rb);
        int a_same = !strcmp(ra->version, va);
        int b_same = !strcmp(rb->version, vb);
        CU_ASSERT_EQUAL(a_same, edits[i].a_same);
        CU_ASSERT_EQUAL(b_same, edits[i].b_same);
        if (a_same != edits[i].a_same || b_same != edits[i].b_same)
            fprintf(stderr, "\n  edit '%s': a %s, b %s\n", edits[i].what,
                    a_same ? "same" : "changed", b_same ? "same" : "changed");
        tl_config_free(c);
    }

    /* Flow style: the mapping from '{' to '}'. */
    c = load_str_ok("triggers: [{name: a, emit: {message: x}},\n"
                    "           {name: b, emit: {message: y}} ]\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    version_text(want, "{name: a, emit: {message: x}}");
    CU_ASSERT_STRING_EQUAL(rule(c, "a")->version, want);
    version_text(want, "{name: b, emit: {message: y}}");
    CU_ASSERT_STRING_EQUAL(rule(c, "b")->version, want);
    tl_config_free(c);

    /* A block scalar last: its text without the line breaks after it. */
    c = load_str_ok("triggers:\n  - name: a\n    emit:\n      message: |\n"
                    "        hello\n\n\n  - name: b\n    emit: {message: y}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    version_text(want, "name: a\n    emit:\n      message: |\n        hello");
    CU_ASSERT_STRING_EQUAL(rule(c, "a")->version, want);
    tl_config_free(c);

    /* An alias of a value written in another rule: that value is part of
     * this rule too, so editing it changes both versions. */
    static const char *const aliased[2] = {
        "triggers:\n"
        "  - name: a\n    when: &w 'amount > 1'\n    emit: {message: x}\n"
        "  - name: b\n    when: *w\n    emit: {message: y}\n"
        "  - name: c\n    emit: {message: z}\n",
        "triggers:\n"
        "  - name: a\n    when: &w 'amount > 2'\n    emit: {message: x}\n"
        "  - name: b\n    when: *w\n    emit: {message: y}\n"
        "  - name: c\n    emit: {message: z}\n",
    };
    tl_config *c1 = load_str_ok(aliased[0]), *c2 = load_str_ok(aliased[1]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c2);
    CU_ASSERT_STRING_NOT_EQUAL(rule(c1, "a")->version, rule(c2, "a")->version);
    CU_ASSERT_STRING_NOT_EQUAL(rule(c1, "b")->version, rule(c2, "b")->version);
    CU_ASSERT_STRING_EQUAL(rule(c1, "c")->version, rule(c2, "c")->version);
    /* ... and b's own text is hashed first. */
    CU_ASSERT_STRING_NOT_EQUAL(rule(c1, "b")->version,
                               rule(c1, "a")->version);
    tl_config_free(c1);
    tl_config_free(c2);

    /* The example: every rule has its own version. */
    c = load_ok("config/tailord.yaml");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    for (size_t i = 0; i < c->nrules; i++) {
        CU_ASSERT(is_version(c->rules[i].version));
        for (size_t j = 0; j < i; j++)
            CU_ASSERT_STRING_NOT_EQUAL(c->rules[i].version,
                                       c->rules[j].version);
    }
    tl_config_free(c);
}

#define CHANNELS "web, app, store, call_center, email, chat, other"
#define HHMM "expected a time of day HH:MM from 00:00 to 23:59, got "
#define SHARE                                                                  \
    "triggers[0].holdout: expected a share: a percentage from 0% to 100% "   \
    "(e.g. 10%) or a number from 0 to 1, got "

static void test_err_cap(void)
{
    EXPECT_FILE("invalid_cap_channel.yaml",
                "3:10: triggers[0].cap: cap needs a channel (or "
                "emit.channel)");
    EXPECT_FILE("invalid_cap_key.yaml",
                "5:7: unknown key 'period' in triggers[0].cap (expected one "
                "of: max, per, channel)");
    EXPECT_FILE("invalid_cap_max.yaml",
                "3:17: triggers[0].cap.max: expected an integer from 1 to "
                "1000, got '1001'");
    EXPECT_STR("triggers: [{name: t, cap: {max: 3, per: 7d}, "
               "emit: {message: x}}]\n",
               "1:27: triggers[0].cap: cap needs a channel (or emit.channel)");
    /* Wrong type, missing keys. */
    EXPECT_STR("triggers: [{name: t, cap: 3, emit: {message: x}}]\n",
               "1:27: triggers[0].cap: expected a mapping with max, per and "
               "optional channel, got '3'");
    EXPECT_STR("triggers: [{name: t, cap: , emit: {message: x}}]\n",
               "1:27: triggers[0].cap: expected a mapping with max, per and "
               "optional channel, got nothing");
    EXPECT_STR("triggers: [{name: t, cap: {per: 7d}, "
               "emit: {channel: email, message: x}}]\n",
               "1:27: triggers[0].cap: missing required key 'max' (the most "
               "triggers per period, e.g. max: 3)");
    EXPECT_STR("triggers: [{name: t, cap: {max: 3}, "
               "emit: {channel: email, message: x}}]\n",
               "1:27: triggers[0].cap: missing required key 'per' (the "
               "period, e.g. per: 7d)");
    EXPECT_STR("triggers: [{name: t, cap: {max: 3, max: 4, per: 7d}, "
               "emit: {channel: email, message: x}}]\n",
               "1:36: duplicate key 'max' in triggers[0].cap (first at 1:28)");
    /* max: 1 to 1000. */
    static const char *const maxes[][2] = {
        {"0", "'0'"},     {"1001", "'1001'"}, {"-1", "'-1'"},
        {"2.5", "'2.5'"}, {"three", "'three'"}, {"[3]", "a list"},
        {"''", "''"},     {"~", "null"},
    };
    for (size_t i = 0; i < sizeof maxes / sizeof maxes[0]; i++) {
        char text[160], want[200];
        snprintf(text, sizeof text,
                 "triggers: [{name: t, cap: {max: %s, per: 7d, channel: "
                 "email}, emit: {message: x}}]\n",
                 maxes[i][0]);
        snprintf(want, sizeof want,
                 "t.yaml:1:33: triggers[0].cap.max: expected an integer from "
                 "1 to 1000, got %s",
                 maxes[i][1]);
        check_error("t.yaml", text, want, __LINE__);
    }
    /* per: a duration above 0. */
    EXPECT_STR("triggers: [{name: t, cap: {max: 3, per: 0, channel: email}, "
               "emit: {message: x}}]\n",
               "1:41: triggers[0].cap.per: expected a duration above 0, got "
               "'0'");
    EXPECT_STR("triggers: [{name: t, cap: {max: 3, per: 0ms, channel: email}, "
               "emit: {message: x}}]\n",
               "1:41: triggers[0].cap.per: expected a duration above 0, got "
               "'0'");
    EXPECT_STR("triggers: [{name: t, cap: {max: 3, per: 7days, channel: "
               "email}, emit: {message: x}}]\n",
               "1:41: triggers[0].cap.per: bad duration '7days' (expected a "
               "number and a unit: ms, s, m, h, d, w; e.g. 30d, 12h, 500ms)");
    EXPECT_STR("triggers: [{name: t, cap: {max: 3, per: [7d], channel: "
               "email}, emit: {message: x}}]\n",
               "1:41: triggers[0].cap.per: bad duration a list (expected a "
               "number and a unit: ms, s, m, h, d, w; e.g. 30d, 12h, 500ms)");
    /* channel: one of the channels. */
    EXPECT_STR("triggers: [{name: t, cap: {max: 3, per: 7d, channel: sms}, "
               "emit: {message: x}}]\n",
               "1:54: triggers[0].cap.channel: unknown channel 'sms' "
               "(expected one of: " CHANNELS ")");
    EXPECT_STR("triggers: [{name: t, cap: {max: 3, per: 7d, channel: }, "
               "emit: {message: x}}]\n",
               "1:54: triggers[0].cap.channel: expected one of: " CHANNELS
               ", got nothing");
    /* A bad emit.channel is reported as such, not as a missing cap
     * channel. */
    EXPECT_STR("triggers: [{name: t, cap: {max: 3, per: 7d}, "
               "emit: {channel: sms, message: x}}]\n",
               "1:62: triggers[0].emit.channel: unknown channel 'sms' "
               "(expected one of: " CHANNELS ")");
}

static void test_err_quiet_hours(void)
{
    EXPECT_FILE("invalid_quiet_time.yaml",
                "5:11: triggers[0].quiet_hours.to: " HHMM "'24:00'");
    EXPECT_FILE("invalid_quiet_key.yaml",
                "3:48: unknown key 'zone' in triggers[0].quiet_hours (expected "
                "one of: from, to, tz)");
    EXPECT_FILE("invalid_quiet_tz_expr.yaml",
                "6:21: triggers[0].quiet_hours.tz: unknown name 'atrs[\"tz\"]'");
    /* Wrong type, missing keys. */
    EXPECT_STR("triggers: [{name: t, quiet_hours: \"22:00-08:00\", "
               "emit: {message: x}}]\n",
               "1:35: triggers[0].quiet_hours: expected a mapping with from, "
               "to and optional tz, got '22:00-08:00'");
    EXPECT_STR("triggers: [{name: t, quiet_hours: [\"22:00\", \"08:00\"], "
               "emit: {message: x}}]\n",
               "1:35: triggers[0].quiet_hours: expected a mapping with from, "
               "to and optional tz, got a list");
    EXPECT_STR("triggers: [{name: t, quiet_hours: {to: \"08:00\"}, "
               "emit: {message: x}}]\n",
               "1:35: triggers[0].quiet_hours: missing required key 'from' "
               "(the start of the quiet time, e.g. from: \"22:00\")");
    EXPECT_STR("triggers: [{name: t, quiet_hours: {from: \"22:00\"}, "
               "emit: {message: x}}]\n",
               "1:35: triggers[0].quiet_hours: missing required key 'to' "
               "(the end of the quiet time, e.g. to: \"08:00\")");
    /* Bad "HH:MM". */
    static const char *const bad[][2] = {
        {"'24:00'", "'24:00'"},     {"'22:60'", "'22:60'"},
        {"'7:00'", "'7:00'"},       {"'07:0'", "'07:0'"},
        {"'2200'", "'2200'"},       {"'22:00:00'", "'22:00:00'"},
        {"'22.00'", "'22.00'"},     {"'ab:cd'", "'ab:cd'"},
        {"'-1:00'", "'-1:00'"},     {"' 7:00'", "' 7:00'"},
        {"'22h'", "'22h'"},         {"1320", "'1320'"},
        {"[22, 0]", "a list"},      {"{h: 22}", "a mapping"},
        {"''", "''"},               {"~", "null"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[160], want[200];
        snprintf(text, sizeof text,
                 "triggers: [{name: t, quiet_hours: {from: %s, to: '08:00'}, "
                 "emit: {message: x}}]\n",
                 bad[i][0]);
        snprintf(want, sizeof want,
                 "t.yaml:1:42: triggers[0].quiet_hours.from: " HHMM "%s",
                 bad[i][1]);
        check_error("t.yaml", text, want, __LINE__);
    }
    EXPECT_STR("triggers: [{name: t, quiet_hours: {from: , to: '08:00'}, "
               "emit: {message: x}}]\n",
               "1:42: triggers[0].quiet_hours.from: " HHMM "nothing");
    /* An empty quiet time. */
    EXPECT_STR("triggers: [{name: t, quiet_hours: {from: \"08:00\", to: "
               "\"08:00\"}, emit: {message: x}}]\n",
               "1:55: triggers[0].quiet_hours.to: the same time as 'from' "
               "(the quiet time would be empty)");
    /* tz: wrong type, empty. */
    EXPECT_STR("triggers: [{name: t, quiet_hours: {from: \"22:00\", to: "
               "\"08:00\", tz: [UTC]}, emit: {message: x}}]\n",
               "1:68: triggers[0].quiet_hours.tz: expected a time zone name "
               "or a string expression, got a list");
    EXPECT_STR("triggers: [{name: t, quiet_hours: {from: \"22:00\", to: "
               "\"08:00\", tz: ''}, emit: {message: x}}]\n",
               "1:68: triggers[0].quiet_hours.tz: expected a time zone name "
               "or a string expression, got ''");
    EXPECT_STR("triggers: [{name: t, quiet_hours: {from: \"22:00\", to: "
               "\"08:00\", tz: }, emit: {message: x}}]\n",
               "1:68: triggers[0].quiet_hours.tz: expected a time zone name "
               "or a string expression, got nothing");
    /* tz expressions: errors at their column inside the string. */
    EXPECT_STR("triggers: [{name: t, quiet_hours: {from: \"22:00\", to: "
               "\"08:00\", tz: 'lower(zone)'}, emit: {message: x}}]\n",
               "1:75: triggers[0].quiet_hours.tz: unknown name 'zone'");
    EXPECT_STR("triggers: [{name: t, quiet_hours: {from: \"22:00\", to: "
               "\"08:00\", tz: \"coalesce(attrs[\\\"tz\\\"], zon)\"}, "
               "emit: {message: x}}]\n",
               "1:93: triggers[0].quiet_hours.tz: unknown name 'zon'");
    EXPECT_STR("triggers: [{name: t, quiet_hours: {from: \"22:00\", to: "
               "\"08:00\", tz: 'amount * 2'}, emit: {message: x}}]\n",
               "1:69: triggers[0].quiet_hours.tz: expression must be string, "
               "got number");
    EXPECT_STR("triggers: [{name: t, quiet_hours: {from: \"22:00\", to: "
               "\"08:00\", tz: 'attrs[\"tz\"] =='}, emit: {message: x}}]\n",
               "1:83: triggers[0].quiet_hours.tz: expected a value but found "
               "end of expression");
    EXPECT_STR("features: [{name: visits, kind: count}]\n"
               "triggers:\n"
               "  - name: t\n"
               "    quiet_hours:\n"
               "      from: '22:00'\n"
               "      to: '08:00'\n"
               "      tz: (visits)\n"
               "    emit: {message: x}\n",
               "7:11: triggers[0].quiet_hours.tz: expression must be string, "
               "got number");
    /* An unknown zone: tl_rule_finish's message, at the zone's name. */
    EXPECT_FILE("invalid_quiet_tz_unknown.yaml",
                "6:11: triggers[0] (quiet): quiet_hours.tz: unknown time zone "
                "'Europe/Madird'");
    EXPECT_STR("triggers: [{name: q, quiet_hours: {from: \"22:00\", to: "
               "\"08:00\", tz: Nowhere}, emit: {message: x}}]\n",
               "1:68: triggers[0] (q): quiet_hours.tz: unknown time zone "
               "'Nowhere'");
    /* A path is not a zone; with a '.' it is not even a name, but an
     * expression. */
    EXPECT_STR("triggers: [{name: q, quiet_hours: {from: \"22:00\", to: "
               "\"08:00\", tz: /etc/localtime}, emit: {message: x}}]\n",
               "1:68: triggers[0] (q): quiet_hours.tz: unknown time zone "
               "'/etc/localtime'");
    EXPECT_STR("triggers: [{name: q, quiet_hours: {from: \"22:00\", to: "
               "\"08:00\", tz: ../zoneinfo/UTC}, emit: {message: x}}]\n",
               "1:68: triggers[0].quiet_hours.tz: unexpected character '.'");
}

static void test_err_priority_group_holdout(void)
{
    EXPECT_FILE("invalid_priority.yaml",
                "3:15: triggers[0].priority: expected an integer from -1000 to "
                "1000, got 'high'");
    EXPECT_FILE("invalid_group.yaml",
                "3:12: triggers[0].group: bad group name 'Greetings' (expected "
                "lowercase letters, digits and '_', not starting with a "
                "digit)");
    EXPECT_FILE("invalid_holdout.yaml", "3:14: " SHARE "'10 percent'");

    static const char *const prios[][2] = {
        {"1001", "'1001'"}, {"-1001", "'-1001'"}, {"1.5", "'1.5'"},
        {"[1]", "a list"},  {"''", "''"},         {"~", "null"},
        {"+5", "'+5'"},
    };
    for (size_t i = 0; i < sizeof prios / sizeof prios[0]; i++) {
        char text[160], want[200];
        snprintf(text, sizeof text,
                 "triggers: [{name: t, priority: %s, emit: {message: x}}]\n",
                 prios[i][0]);
        snprintf(want, sizeof want,
                 "t.yaml:1:32: triggers[0].priority: expected an integer from "
                 "-1000 to 1000, got %s",
                 prios[i][1]);
        check_error("t.yaml", text, want, __LINE__);
    }

    static const char *const groups[] = {"1st", "a-b", "Greeting", "'a b'",
                                         "é"};
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        char text[160], want[200], shown[32];
        snprintf(text, sizeof text,
                 "triggers: [{name: t, group: %s, emit: {message: x}}]\n",
                 groups[i]);
        snprintf(shown, sizeof shown, "%s", groups[i]);
        if (shown[0] == '\'') {
            memmove(shown, shown + 1, strlen(shown));
            shown[strlen(shown) - 1] = '\0';
        }
        snprintf(want, sizeof want,
                 "t.yaml:1:29: triggers[0].group: bad group name '%s' "
                 "(expected lowercase letters, digits and '_', not starting "
                 "with a digit)",
                 shown);
        check_error("t.yaml", text, want, __LINE__);
    }
    EXPECT_STR("triggers: [{name: t, group: '', emit: {message: x}}]\n",
               "1:29: triggers[0].group: expected a non-empty string, got ''");
    EXPECT_STR("triggers: [{name: t, group: [a], emit: {message: x}}]\n",
               "1:29: triggers[0].group: expected a non-empty string, got a "
               "list");
    EXPECT_STR("triggers: [{name: t, group: , emit: {message: x}}]\n",
               "1:29: triggers[0].group: expected a non-empty string, got "
               "nothing");
    EXPECT_STR("triggers: [{name: t, group: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, emit: {message: x}}]\n",
               "1:29: triggers[0].group: name is 65 characters long (at most "
               "64)");

    static const char *const shares[][2] = {
        {"150%", "'150%'"},   {"100.5%", "'100.5%'"}, {"-10%", "'-10%'"},
        {"1.5", "'1.5'"},     {"2", "'2'"},           {"-0.1", "'-0.1'"},
        {"ten", "'ten'"},     {"'%'", "'%'"},         {".", "'.'"},
        {"'.%'", "'.%'"},     {"'10 %'", "'10 %'"},   {"1e-1", "'1e-1'"},
        {"0x1", "'0x1'"},     {"inf", "'inf'"},       {"nan", "'nan'"},
        {"'1..0'", "'1..0'"}, {"'10%%'", "'10%%'"},   {"'+10%'", "'+10%'"},
        {"[10%]", "a list"},  {"{a: 1}", "a mapping"}, {"''", "''"},
        {"~", "null"},
    };
    for (size_t i = 0; i < sizeof shares / sizeof shares[0]; i++) {
        char text[160], want[240];
        snprintf(text, sizeof text,
                 "triggers: [{name: t, holdout: %s, emit: {message: x}}]\n",
                 shares[i][0]);
        snprintf(want, sizeof want, "t.yaml:1:31: %s%s", SHARE, shares[i][1]);
        check_error("t.yaml", text, want, __LINE__);
    }
    EXPECT_STR("triggers: [{name: t, holdout: , emit: {message: x}}]\n",
               "1:31: " SHARE "nothing");
}

static void test_err_attrs(void)
{
    EXPECT_FILE("invalid_attrs_template.yaml",
                "9:31: triggers[0].emit.attrs.again: unknown name 'lastitem'; "
                "did you mean 'last_item'?");
    EXPECT_FILE("invalid_attrs_type.yaml",
                "5:14: triggers[0].emit.attrs: expected a mapping of attribute "
                "names to templates, got a list");
    EXPECT_STR("triggers: [{name: t, emit: {message: x, attrs: hi}}]\n",
               "1:48: triggers[0].emit.attrs: expected a mapping of attribute "
               "names to templates, got 'hi'");
    EXPECT_STR("triggers: [{name: t, emit: {message: x, attrs: {a: [x]}}}]\n",
               "1:52: triggers[0].emit.attrs.a: expected a template, got a "
               "list");
    EXPECT_STR("triggers: [{name: t, emit: {message: x, attrs: {a: ~}}}]\n",
               "1:52: triggers[0].emit.attrs.a: expected a template, got "
               "null");
    EXPECT_STR("triggers: [{name: t, emit: {message: x, attrs: {a: x, a: y}}}]"
               "\n",
               "1:55: duplicate key 'a' in triggers[0].emit.attrs (first at "
               "1:49)");
    EXPECT_STR("triggers: [{name: t, emit: {message: x, attrs: {[k]: x}}}]\n",
               "1:49: triggers[0].emit.attrs: key: expected a non-empty "
               "string, got a list");
    EXPECT_STR("triggers: [{name: t, emit: {message: x, attrs: {'': x}}}]\n",
               "1:49: triggers[0].emit.attrs: key: expected a non-empty "
               "string, got ''");
    /* Template errors at their column inside the value. */
    EXPECT_STR("triggers: [{name: t, emit: {message: x, attrs: {a: 'x {{item "
               "+ }}'}}}]\n",
               "1:64: triggers[0].emit.attrs.a: expected a value but found "
               "end of expression");
    EXPECT_STR("triggers: [{name: t, emit: {message: x, attrs: {a: 'x {{item'"
               "}}}]\n",
               "1:55: triggers[0].emit.attrs.a: '{{' without a closing '}}'");
    EXPECT_STR("triggers:\n"
               "  - name: t\n"
               "    emit:\n"
               "      message: x\n"
               "      attrs:\n"
               "        ok: '{{item}}'\n"
               "        bad: >\n"
               "          one {{item}}\n"
               "          two {{ visitz }}\n",
               "9:18: triggers[0].emit.attrs.bad: unknown name 'visitz'");
    /* Issue 20: an unknown feature indexed by a number is named, with the
     * feature meant; a name far from any is not guessed at. */
    EXPECT_STR("features:\n"
               "  - {name: top_viewed, kind: top_k, field: item, k: 3}\n"
               "triggers:\n"
               "  - name: t\n"
               "    emit: {message: 'you liked {{top_vewed[0]}}'}\n",
               "5:34: triggers[0].emit.message: unknown name 'top_vewed'; did "
               "you mean 'top_viewed'?");
    EXPECT_STR("features:\n"
               "  - {name: top_viewed, kind: top_k, field: item, k: 3}\n"
               "triggers:\n"
               "  - name: t\n"
               "    if: 'len(favourites) > 0'\n"
               "    emit: {message: x}\n",
               "5:14: triggers[0].if: unknown name 'favourites'");
    /* A feature in `when`, indexed too. */
    EXPECT_STR("features:\n"
               "  - {name: top_viewed, kind: top_k, field: item, k: 3}\n"
               "triggers:\n"
               "  - name: t\n"
               "    when: 'item == top_viewed[0]'\n"
               "    emit: {message: x}\n",
               "5:20: triggers[0].when: 'top_viewed' is a feature: features "
               "cannot be read in `when`; move it to `if`");
    /* The message is checked before the attrs. */
    EXPECT_STR("triggers: [{name: t, emit: {message: '{{x}}', attrs: "
               "{a: '{{y}}'}}}]\n",
               "1:41: triggers[0].emit.message: unknown name 'x'");
}

/* Every fixture: valid_* load, invalid_* fail with a positioned message.
 * Under valgrind this is the leak check of every error path. */
static void test_all_fixtures(void)
{
    DIR *d = opendir(FIXTURES);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    struct dirent *e;
    int nvalid = 0, ninvalid = 0;
    clear_env();
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".yaml")) continue;
        char path[512], err[TL_ERRSZ] = "", prefix[600];
        snprintf(path, sizeof path, FIXTURES "%s", e->d_name);
        tl_config *c = tl_config_load(path, err, sizeof err);
        if (!strncmp(e->d_name, "valid_", 6)) {
            nvalid++;
            CU_ASSERT_PTR_NOT_NULL(c);
            if (!c) fprintf(stderr, "\n  %s: %s\n", path, err);
        } else if (!strncmp(e->d_name, "invalid_", 8)) {
            ninvalid++;
            CU_ASSERT_PTR_NULL(c);
            snprintf(prefix, sizeof prefix, "%s:", path);
            CU_ASSERT_EQUAL(strncmp(err, prefix, strlen(prefix)), 0);
        }
        tl_config_free(c);
    }
    closedir(d);
    CU_ASSERT(nvalid >= 3);
    CU_ASSERT(ninvalid >= 50);
}

static void test_http_section(void)
{
    tl_config *c = load_str_ok("log: {level: info}\n");
    if (c) {
        /* Absent section: no endpoint (several instances share hosts). */
        CU_ASSERT_PTR_NULL(c->http_listen);
        CU_ASSERT_PTR_NULL(c->http_token);
        CU_ASSERT_EQUAL(strlen(c->version), 16);
    }
    tl_config *c2 = load_str_ok("log: {level: debug}\n");
    if (c && c2) CU_ASSERT_STRING_NOT_EQUAL(c->version, c2->version);
    tl_config_free(c);
    tl_config_free(c2);
    c = load_str_ok("http: {listen: \"127.0.0.1:9464\", token: abc}\n");
    if (c) {
        CU_ASSERT_STRING_EQUAL(c->http_listen, "127.0.0.1:9464");
        CU_ASSERT_STRING_EQUAL(c->http_token, "abc");
    }
    tl_config_free(c);
    c = load_str_ok("http: {listen: \"localhost:1\"}\n");
    if (c) CU_ASSERT_STRING_EQUAL(c->http_listen, "localhost:1");
    tl_config_free(c);
    c = load_str_ok("http: {listen: \"\", token: \"\"}\n");
    if (c) {
        CU_ASSERT_PTR_NULL(c->http_listen);
        CU_ASSERT_PTR_NULL(c->http_token);
    }
    tl_config_free(c);
    c = load_str_ok("http: {listen: off}\n");
    if (c) CU_ASSERT_PTR_NULL(c->http_listen);
    tl_config_free(c);

    const char *want = "http.listen: expected HOST:PORT with HOST an IPv4 "
                       "address or localhost and PORT 1..65535 (or \"\" / off "
                       "for no endpoint), got ";
    static const char *const bad[][2] = {
        {"http:\n  listen: \"9464\"\n", "'9464'"},
        {"http:\n  listen: \"127.0.0.1:0\"\n", "'127.0.0.1:0'"},
        {"http:\n  listen: \"127.0.0.1:65536\"\n", "'127.0.0.1:65536'"},
        {"http:\n  listen: \"example.com:80\"\n", "'example.com:80'"},
        {"http:\n  listen: \"1.2.3:80\"\n", "'1.2.3:80'"},
        {"http:\n  listen: \"1.2.3.4444:80\"\n", "'1.2.3.4444:80'"},
        {"http:\n  listen: \"127.0.0.1:+80\"\n", "'127.0.0.1:+80'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char msg[TL_ERRSZ];
        snprintf(msg, sizeof msg, "t.yaml:2:11: %s%s", want, bad[i][1]);
        check_error("t.yaml", bad[i][0], msg, __LINE__);
    }
    EXPECT_STR("http:\n  listen: [a]\n",
               "2:11: http.listen: expected a string, got a list");
    EXPECT_STR("http:\n  token: {a: b}\n",
               "2:10: http.token: expected a string, got a mapping");
    EXPECT_STR("http:\n  lisen: x\n",
               "2:3: unknown key 'lisen' in http (expected one of: listen, "
               "token)");
}

/* ---- issue 7: secrets, log format, audit topic, reload --------------------- */

static void test_env_substitution(void)
{
    clear_env();
    setenv("TL_T_PASS", "p@ss", 1);
    setenv("TL_T_TOKEN", "tok", 1);
    setenv("TL_T_EMPTY", "", 1);
    tl_config *c = load_str_ok(
        "redis: { url: 'redis://app:${TL_T_PASS}@h:6380/1' }\n"
        "kafka:\n"
        "  group: g${TL_T_EMPTY}\n"
        "  properties: { sasl.password: \"${TL_T_TOKEN}\", client.id: 'a$${b}$c$' }\n"
        "  audit: audit.${TL_T_TOKEN}\n"
        "log: { level: warn, format: json }\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->redis_url, "redis://app:p@ss@h:6380/1");
    CU_ASSERT_STRING_EQUAL(c->group, "g");
    CU_ASSERT_STRING_EQUAL(c->properties[0].val, "tok");
    CU_ASSERT_STRING_EQUAL(c->properties[1].val, "a${b}$c$");
    CU_ASSERT_STRING_EQUAL(c->audit, "audit.tok");
    CU_ASSERT_EQUAL(c->log_format, TL_LOG_JSON);
    CU_ASSERT_EQUAL(c->log_level, TL_LOG_WARN);
    /* Secrets stay out of the summary. */
    char *s = summary(c);
    CU_ASSERT_PTR_NULL(strstr(s, "p@ss"));
    CU_ASSERT_PTR_NULL(strstr(s, "= tok"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "property       sasl.password = ***\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "property       client.id = a${b}$c$\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "audit          audit.tok\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "format         json\n"));
    free(s);
    tl_config_free(c);
    /* Private keys, OAUTHBEARER settings, the SASL user, and any property
     * whose value came from the environment, whatever its key. */
    setenv("TL_T_PASS", "envsecret", 1);
    c = load_str_ok(
        "kafka:\n"
        "  properties:\n"
        "    ssl.key.pem: '-----BEGIN PRIVATE KEY-----MIIkeydata'\n"
        "    sasl.oauthbearer.config: 'principal=svc clientSecret=s3cr'\n"
        "    sasl.username: svc-user\n"
        "    ssl.certificate.pem: 'x${TL_T_PASS}y'\n"
        "    client.id: '$${TL_T_PASS}'\n"
        "    security.protocol: SASL_SSL\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    s = summary(c);
    static const char *const hidden[] = {"MIIkeydata", "s3cr", "svc-user",
                                         "envsecret"};
    for (size_t i = 0; i < sizeof hidden / sizeof *hidden; i++)
        CU_ASSERT_PTR_NULL(strstr(s, hidden[i]));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "property       ssl.key.pem = ***\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(s, "property       sasl.oauthbearer.config = ***\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "property       sasl.username = ***\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(s, "property       ssl.certificate.pem = ***\n"));
    /* $${ is no reference: nothing from the environment. */
    CU_ASSERT_PTR_NOT_NULL(
        strstr(s, "property       client.id = ${TL_T_PASS}\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(s, "property       security.protocol = SASL_SSL\n"));
    free(s);
    tl_config_free(c);
    /* Keys are not expanded. */
    c = load_str_ok("kafka: { properties: { '${TL_T_TOKEN}': x } }\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->properties[0].key, "${TL_T_TOKEN}");
    tl_config_free(c);
    c = load_str_ok("kafka: { group: x }\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->audit, "tailor.audit");
    CU_ASSERT_EQUAL(c->log_format, TL_LOG_TEXT);
    tl_config_free(c);

    CU_ASSERT(tl_config_is_secret_key("sasl.password"));
    CU_ASSERT(tl_config_is_secret_key("ssl.key.PASSWORD"));
    CU_ASSERT(tl_config_is_secret_key("sasl.oauthbearer.client.secret"));
    CU_ASSERT(tl_config_is_secret_key("sasl.jaas.config"));
    /* Every property librdkafka 2.0.2 itself redacts (_RK_SENSITIVE). */
    static const char *const sensitive[] = {
        "ssl.key.location", "ssl.key.password", "ssl.key.pem", "ssl.ca.pem",
        "ssl.keystore.password", "sasl.username", "sasl.password",
        "sasl.oauthbearer.config"};
    for (size_t i = 0; i < sizeof sensitive / sizeof *sensitive; i++)
        CU_ASSERT(tl_config_is_secret_key(sensitive[i]));
    CU_ASSERT(tl_config_is_secret_key("sasl.oauthbearer.extensions"));
    CU_ASSERT(!tl_config_is_secret_key("ssl.ca.location"));
    CU_ASSERT(!tl_config_is_secret_key("security.protocol"));
    unsetenv("TL_T_PASS");
    unsetenv("TL_T_TOKEN");
    unsetenv("TL_T_EMPTY");
}

static void test_err_env(void)
{
    clear_env();
    unsetenv("TL_T_UNSET");
    EXPECT_STR("kafka:\n  group: 'ab${TL_T_UNSET}'\n",
               "2:13: environment variable TL_T_UNSET is not set (referenced "
               "as ${TL_T_UNSET}; set it, e.g. in the EnvironmentFile, or "
               "write $${ for a literal ${)");
    EXPECT_STR("redis: { url: 'redis://${1X}@h' }\n",
               "1:24: expected ${NAME} (NAME of letters, digits and _, not "
               "starting with a digit) for an environment variable; write $${ "
               "for a literal ${");
    EXPECT_STR("kafka: { group: \"a${OPEN\" }\n",
               "1:19: expected ${NAME} (NAME of letters, digits and _, not "
               "starting with a digit) for an environment variable; write $${ "
               "for a literal ${");
    setenv("TL_T_URL", "http://u:hunter2@h", 1);
    EXPECT_STR("redis: { url: '${TL_T_URL}' }\n",
               "1:15: redis.url: expected "
               "redis://[[user]:password@]host[:port][/db], "
               "unix://[[user]:password@]/path/to/redis.sock or "
               "redis-cluster://[[user]:password@]host:port[,host:port...], "
               "got a value with credentials (not shown)");
    unsetenv("TL_T_URL");
    EXPECT_STR("log: { format: xml }\n",
               "1:16: log.format: expected one of text, json, got 'xml'");
}

static tl_config *reload_cfg(const char *features)
{
    char text[2048];
    snprintf(text, sizeof text,
             "kafka: { group: g }\nfeatures:\n%s"
             "triggers:\n  - { name: r, emit: { message: hi } }\n",
             features);
    return load_str_ok(text);
}

static void test_reloadable(void)
{
    clear_env();
    char err[TL_ERRSZ];
    tl_config *cur = reload_cfg("  - { name: n, kind: count }\n"
                                "  - { name: s, kind: sum, field: amount }\n");
    tl_config *same = reload_cfg("  - { name: s, kind: sum, field: amount }\n"
                                 "  - { name: n, kind: count }\n"
                                 "  - { name: m, kind: max, field: amount }\n");
    tl_config *rekind = reload_cfg("  - { name: n, kind: sum, field: amount }\n"
                                   "  - { name: s, kind: sum, field: amount }\n");
    tl_config *gone = reload_cfg("  - { name: s, kind: sum, field: amount }\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cur);
    CU_ASSERT_PTR_NOT_NULL_FATAL(same);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rekind);
    CU_ASSERT_PTR_NOT_NULL_FATAL(gone);
    CU_ASSERT_EQUAL(tl_config_reloadable(cur, same, 0, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(tl_config_reloadable(cur, rekind, 0, err, sizeof err),
                    TL_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err, "t.yaml: refused: feature n (count -> sum); "
                           "stored state would be misread or left behind "
                           "(rename the feature instead, or reload with "
                           "force: tailord --force)");
    CU_ASSERT_EQUAL(tl_config_reloadable(cur, gone, 0, err, sizeof err),
                    TL_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "feature n (removed);"));
    tl_log_level lv = tl_log_current;
    tl_log_set_level(TL_LOG_ERROR); /* the forced reload's warning */
    CU_ASSERT_EQUAL(tl_config_reloadable(cur, rekind, 1, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(tl_config_reloadable(cur, gone, 1, err, sizeof err), TL_OK);
    tl_log_set_level(lv);
    tl_config_free(same);
    /* Connection settings need a restart, force or not. */
    static const char *const changed[][2] = {
        {"kafka: { group: h }\n", "kafka.group"},
        {"kafka: { group: g, brokers: 'b:1' }\n", "kafka.brokers"},
        {"kafka: { group: g, input: [a, b] }\n", "kafka.input"},
        {"kafka: { group: g, properties: { client.id: x } }\n", "kafka.properties"},
        {"kafka: { group: g }\nredis: { url: 'redis://h:1/0' }\n", "redis.url"},
        {"kafka: { group: g }\nredis: { prefix: 'p:' }\n", "redis.prefix"},
        {"kafka: { group: g }\nredis: { timeout: 3s }\n", "redis.timeout"},
        {"kafka: { group: g }\nhttp: { listen: '127.0.0.1:9' }\n", "http.listen"},
    };
    for (size_t i = 0; i < sizeof changed / sizeof *changed; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "%sfeatures:\n  - { name: n, kind: count }\n"
                 "  - { name: s, kind: sum, field: amount }\n"
                 "triggers:\n  - { name: r, emit: { message: hi } }\n",
                 changed[i][0]);
        same = load_str_ok(text);
        CU_ASSERT_PTR_NOT_NULL_FATAL(same);
        CU_ASSERT_EQUAL(tl_config_reloadable(cur, same, 1, err, sizeof err),
                        TL_ERR_CONFIG);
        char want[256];
        snprintf(want, sizeof want, "t.yaml: %s changed, which needs a restart",
                 changed[i][1]);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
        tl_config_free(same);
    }
    tl_config_free(cur);
    tl_config_free(rekind);
    tl_config_free(gone);
}

/* An option that shapes a feature's state is refused like a kind change
 * unless the state converts exactly (issue 20, item 4). */
static void test_reload_reshape(void)
{
    clear_env();
    char err[TL_ERRSZ];
    static const char *const cases[][3] = {
        /* from, to, the refusal ("" when accepted) */
        {"{ name: v, kind: window_count, window: 7d }",
         "{ name: v, kind: window_count, window: 14d }",
         "feature v: window 1w -> 2w (resolution 336m -> 672m) resets "
         "every customer's v; reload with force"},
        {"{ name: v, kind: window_count, window: 7d, resolution: 1d }",
         "{ name: v, kind: window_count, window: 7d, resolution: 12h }",
         "feature v: resolution 1d -> 12h resets every customer's v"},
        {"{ name: v, kind: window_count, window: 7d, resolution: 1d }",
         "{ name: v, kind: window_count, window: 14d, resolution: 1d }",
         "feature v: window 1w -> 2w leaves every customer's v without the "
         "events older than the old window"},
        {"{ name: v, kind: window_sum, field: amount, window: 14d, "
         "resolution: 1d }",
         "{ name: v, kind: window_sum, field: amount, window: 7d, "
         "resolution: 1d }", ""},
        {"{ name: d, kind: decayed_count, half_life: 7d }",
         "{ name: d, kind: decayed_count, half_life: 1d }",
         "feature d: half_life 1w -> 1d leaves every customer's d decayed "
         "with the old half_life"},
        {"{ name: t, kind: top_k, field: item, k: 3 }",
         "{ name: t, kind: top_k, field: item, k: 5 }",
         "feature t: k 3 -> 5 (capacity 10 -> 15) leaves every customer's t "
         "counted with the old capacity"},
        {"{ name: t, kind: top_k, field: item, k: 5, capacity: 20 }",
         "{ name: t, kind: top_k, field: item, k: 3, capacity: 10 }",
         "feature t: k 5 -> 3 (capacity 20 -> 10) resets every customer's t "
         "that tracks more values than the new capacity"},
        {"{ name: t, kind: top_k, field: item, k: 5, capacity: 20 }",
         "{ name: t, kind: top_k, field: item, k: 3, capacity: 20 }", ""},
        {"{ name: t, kind: top_k, field: item, k: 3, max_length: 32 }",
         "{ name: t, kind: top_k, field: item, k: 3, max_length: 16 }",
         "feature t: max_length 32 -> 16 resets every customer's t holding"},
        {"{ name: l, kind: last_n, field: item, n: 5 }",
         "{ name: l, kind: last_n, field: item, n: 10 }",
         "feature l: n 5 -> 10 leaves every customer's l with the old n"},
        {"{ name: l, kind: last_n, field: item, n: 10 }",
         "{ name: l, kind: last_n, field: item, n: 5 }", ""},
        {"{ name: x, kind: distinct, field: item, precision: 10 }",
         "{ name: x, kind: distinct, field: item, precision: 12 }",
         "feature x: precision 10 -> 12 resets every customer's x that has "
         "become a sketch"},
        {"{ name: x, kind: distinct, field: item, exact_up_to: 100 }",
         "{ name: x, kind: distinct, field: item, exact_up_to: 50 }",
         "feature x: exact_up_to 100 -> 50 resets every customer's x with "
         "more values"},
        {"{ name: x, kind: distinct, field: item, exact_up_to: 50 }",
         "{ name: x, kind: distinct, field: item, exact_up_to: 100 }",
         "feature x: exact_up_to 50 -> 100 leaves every customer's x that "
         "has become a sketch an estimate"},
        /* Not the state's shape: a ttl, a last's max_length (cut on load as
         * on update). */
        {"{ name: c, kind: count }", "{ name: c, kind: count, ttl: 1d }", ""},
        {"{ name: s, kind: last, field: item, max_length: 32 }",
         "{ name: s, kind: last, field: item, max_length: 16 }", ""},
    };
    tl_log_level lv = tl_log_current;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char a[256], b[256];
        snprintf(a, sizeof a, "  - %s\n", cases[i][0]);
        snprintf(b, sizeof b, "  - %s\n", cases[i][1]);
        tl_config *cur = reload_cfg(a), *next = reload_cfg(b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(cur);
        CU_ASSERT_PTR_NOT_NULL_FATAL(next);
        int rc = tl_config_reloadable(cur, next, 0, err, sizeof err);
        if (!cases[i][2][0]) {
            CU_ASSERT_EQUAL(rc, TL_OK);
        } else {
            CU_ASSERT_EQUAL(rc, TL_ERR_CONFIG);
            if (rc == TL_OK) err[0] = '\0';
            char want[512];
            snprintf(want, sizeof want, "t.yaml: refused: %s", cases[i][2]);
            if (strncmp(err, want, strlen(want)))
                fprintf(stderr, "case %zu:\n want %s\n got  %s\n", i, want,
                        err);
            CU_ASSERT(strncmp(err, want, strlen(want)) == 0);
            CU_ASSERT_PTR_NOT_NULL(strstr(err, "tailord --force"));
            tl_log_set_level(TL_LOG_ERROR); /* the forced reload's warning */
            CU_ASSERT_EQUAL(tl_config_reloadable(cur, next, 1, err, sizeof err),
                            TL_OK);
            tl_log_set_level(lv);
        }
        tl_config_free(cur);
        tl_config_free(next);
    }
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("config_valid", NULL, NULL);
    CU_add_test(s, "example config/tailord.yaml", test_example);
    CU_add_test(s, "defaults", test_defaults);
    CU_add_test(s, "flow style, every key", test_flow_style);
    CU_add_test(s, "environment overrides", test_env_overrides);
    CU_add_test(s, "redis.cluster", test_redis_cluster);
    CU_add_test(s, "durations", test_parse_duration);
    CU_add_test(s, "feature options of issue 3", test_feature_options);
    CU_add_test(s, "options each kind takes", test_kind_options);
    CU_add_test(s, "events.max_lateness", test_max_lateness);
    CU_add_test(s, "events.on_offset_reset", test_on_offset_reset);
    CU_add_test(s, "events.min_time and events.max_future", test_event_times);
    CU_add_test(s, "key ttl", test_key_ttl);
    CU_add_test(s, "summary and password masking", test_summary);
    CU_add_test(s, "rule options of issue 4", test_rule_options);
    CU_add_test(s, "rule set layout", test_ruleset_layout);
    CU_add_test(s, "rule_version", test_rule_version);
    CU_add_test(s, "${ENV} substitution, secrets, log.format, kafka.audit",
                test_env_substitution);
    CU_add_test(s, "what a reload may change", test_reloadable);
    CU_add_test(s, "a reload refuses reshaping a feature's state",
                test_reload_reshape);
    s = CU_add_suite("config_errors", NULL, NULL);
    CU_add_test(s, "YAML syntax, empty, not a mapping", test_err_yaml);
    CU_add_test(s, "unknown keys", test_err_unknown_key);
    CU_add_test(s, "duplicate keys", test_err_duplicate_key);
    CU_add_test(s, "wrong types", test_err_wrong_type);
    CU_add_test(s, "integers", test_err_integer);
    CU_add_test(s, "durations", test_err_duration);
    CU_add_test(s, "names", test_err_names);
    CU_add_test(s, "missing required keys", test_err_missing);
    CU_add_test(s, "kind, channel, mode, field", test_err_kind_channel_mode);
    CU_add_test(s, "feature options", test_err_feature_options);
    CU_add_test(s, "expression positions", test_err_expr_position);
    CU_add_test(s, "type errors in conditions", test_err_if_type);
    CU_add_test(s, "templates", test_err_template);
    CU_add_test(s, "${ENV} references, log.format", test_err_env);
    CU_add_test(s, "cap", test_err_cap);
    CU_add_test(s, "quiet_hours", test_err_quiet_hours);
    CU_add_test(s, "priority, group, holdout", test_err_priority_group_holdout);
    CU_add_test(s, "emit.attrs", test_err_attrs);
    CU_add_test(s, "every fixture", test_all_fixtures);
    CU_add_test(s, "fuzz regressions", test_err_fuzz_regressions);
    CU_add_test(s, "http section", test_http_section);
    return tl_test_run();
}
