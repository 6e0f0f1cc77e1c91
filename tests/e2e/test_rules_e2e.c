/*
 * The seed scenarios of the rules, through the real daemon: "the usual" at
 * store entry, welcome back after 30 days away, entering a high-value
 * segment, a call-center prompt after two failed web checkouts, plus a
 * frequency cap, quiet hours, a priority group and a holdout.  Each scenario
 * is a short, hand-written story of events; the test asserts the exact
 * triggers (rule, customer, cause, message, explanation, holdout flag) on the
 * output topic and the suppression counts tailord reports.
 */
#include <CUnit/Basic.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/kafka_util.h"
#include "../support/redis_server.h"
#include "../support/testutil.h"
#include "common.h"
#include "kafka.h"
#include "trigger.h"

#define IN_TOPIC "interactions"
#define OUT_TOPIC "triggers"
#define DLQ_TOPIC "interactions.dlq"
#define H 3600000LL
#define D (24 * H)
#define T0 1709251200000LL /* 2024-03-01T00:00:00Z */

static tl_redis_server *redis;
static tl_kafka_mock *mock;
static const char *brokers;
static char *tmp;
static char cfg_path[512], log_path[512];

static const char *config_text =
    "kafka: { group: rules-e2e, input: [" IN_TOPIC "], output: " OUT_TOPIC
    ", dead_letter: " DLQ_TOPIC ", batch_timeout: 20ms }\n"
    "redis: { prefix: 'rules:' }\n"
    "features:\n"
    "  - { name: usual_order, kind: top_k, field: item, k: 3, where: 'type == \"purchase\"' }\n"
    "  - { name: visits_30d, kind: window_count, window: 30d, where: 'type == \"visit\"' }\n"
    "  - { name: visit_times, kind: last_n, field: ts, n: 2, where: 'type == \"visit\"' }\n"
    "  - { name: spend_90d, kind: window_sum, field: amount, window: 90d, where: 'type == \"purchase\"' }\n"
    "  - { name: failed_checkouts_1d, kind: window_count, window: 1d, resolution: 1h,\n"
    "      where: 'type == \"checkout_failed\" and channel == \"web\"' }\n"
    "triggers:\n"
    "  - name: greet_with_usual\n"
    "    when: 'type == \"visit\" and channel == \"store\"'\n"
    "    if: 'len(usual_order) >= 1 and visits_30d >= 2'\n"
    "    cooldown: 12h\n"
    "    emit: { channel: store, message: 'Welcome back! The usual {{usual_order[0]}}?',\n"
    "            attrs: { offer: '{{usual_order[0]}}' } }\n"
    "  - name: welcome_back\n"
    "    when: 'type == \"visit\"'\n"
    "    if: 'days_since(visit_times[1]) >= 30'\n"
    "    emit: { channel: email, message: 'We missed you!' }\n"
    "  - name: gold_segment\n"
    "    if: 'spend_90d >= 500'\n"
    "    mode: edge\n"
    "    emit: { channel: email, message: 'Welcome to Gold: {{spend_90d}} in 90 days' }\n"
    "  - name: agent_prompt\n"
    "    when: 'type == \"call\" and channel == \"call_center\"'\n"
    "    if: 'failed_checkouts_1d >= 2'\n"
    "    emit: { channel: call_center,\n"
    "            message: '{{failed_checkouts_1d}} failed web checkouts today: offer help with the payment' }\n"
    "  - name: promo_hi\n"
    "    when: 'type == \"view\"'\n"
    "    group: promo\n"
    "    priority: 10\n"
    "    emit: { message: 'promo hi' }\n"
    "  - name: promo_lo\n"
    "    when: 'type == \"view\"'\n"
    "    group: promo\n"
    "    priority: 1\n"
    "    emit: { message: 'promo lo' }\n"
    "  - name: nudge\n"
    "    when: 'type == \"add_to_cart\"'\n"
    "    cap: { max: 2, per: 1d }\n"
    "    emit: { channel: email, message: 'Still thinking about {{item}}?' }\n"
    "  - name: app_hello\n"
    "    when: 'type == \"visit\" and channel == \"app\"'\n"
    "    quiet_hours: { from: '22:00', to: '08:00', tz: Europe/Madrid }\n"
    "    emit: { message: 'Hello from the app' }\n"
    "  - name: welcome_signup\n"
    "    when: 'type == \"signup\"'\n"
    "    holdout: 50%\n"
    "    emit: { channel: email, message: 'Welcome {{customer_id}}' }\n";

/* ---- the stories --------------------------------------------------------- */

typedef struct story_ev {
    const char *id, *customer, *channel, *type, *item;
    int64_t ts;
    double amount; /* < 0: none */
} story_ev;

static const story_ev story[] = {
    /* the usual: three big macs and fries bought, then store visits */
    {"g1", "greet", "app", "purchase", "big_mac", T0 + 1 * H, 5},
    {"g2", "greet", "app", "purchase", "big_mac", T0 + 2 * H, 5},
    {"g3", "greet", "app", "purchase", "fries", T0 + 3 * H, 2},
    {"g4", "greet", "web", "purchase", "big_mac", T0 + D, 5},
    {"g5", "greet", "store", "visit", NULL, T0 + 2 * D, -1},     /* 1 visit */
    {"g6", "greet", "store", "visit", NULL, T0 + 3 * D, -1},     /* fires */
    {"g7", "greet", "store", "visit", NULL, T0 + 3 * D + H, -1}, /* cooldown */
    {"g8", "greet", "store", "visit", NULL, T0 + 4 * D, -1},     /* fires */
    /* welcome back: two web visits 40 days apart */
    {"a1", "away", "web", "visit", NULL, T0, -1},
    {"a2", "away", "web", "visit", NULL, T0 + 40 * D, -1},
    /* high value: crosses 500, stays, falls out of the window, crosses again */
    {"v1", "gold", "web", "purchase", "tv", T0, 200},
    {"v2", "gold", "web", "purchase", "sofa", T0 + D, 250},
    {"v3", "gold", "web", "purchase", "lamp", T0 + 2 * D, 100}, /* 550: fires */
    {"v4", "gold", "web", "purchase", "bulb", T0 + 3 * D, 10},  /* still in */
    {"v5", "gold", "web", "purchase", "bulb", T0 + 100 * D, 5}, /* 5: out */
    {"v6", "gold", "web", "purchase", "bed", T0 + 101 * D, 600}, /* fires */
    /* the call center: two failed web checkouts, then a call */
    {"c1", "caller", "web", "checkout_failed", NULL, T0 + 10 * 60000, -1},
    {"c2", "caller", "web", "checkout_failed", NULL, T0 + 20 * 60000, -1},
    {"c3", "caller", "call_center", "call", NULL, T0 + 30 * 60000, -1},
    /* a priority group */
    {"p1", "viewer", "web", "view", "shoes", T0, -1},
    /* a cap of 2 per day on email */
    {"n1", "carter", "web", "add_to_cart", "shoes", T0, -1},
    {"n2", "carter", "web", "add_to_cart", "shoes", T0 + H, -1},
    {"n3", "carter", "web", "add_to_cart", "shoes", T0 + 2 * H, -1}, /* capped */
    {"n4", "carter", "web", "add_to_cart", "boots", T0 + D + H + 1, -1},
    /* quiet hours in Madrid (UTC+1 in March): 23:30 local, then 09:30 */
    {"q1", "night", "app", "visit", NULL, T0 + 22 * H + 30 * 60000, -1},
    {"q2", "night", "app", "visit", NULL, T0 + D + 8 * H + 30 * 60000, -1},
};
#define NSTORY (sizeof story / sizeof story[0])
#define NSIGNUP 20

typedef struct want {
    char rule[32], customer[32], cause[32], message[128], explain[256];
    int holdout;
    int seen;
} want;

static want wants[64];
static size_t nwants;

static void expect(const char *rule, const char *customer, const char *cause,
                   const char *message, const char *explain, int holdout)
{
    want *w = &wants[nwants++];
    snprintf(w->rule, sizeof w->rule, "%s", rule);
    snprintf(w->customer, sizeof w->customer, "%s", customer);
    snprintf(w->cause, sizeof w->cause, "%s", cause);
    snprintf(w->message, sizeof w->message, "%s", message);
    snprintf(w->explain, sizeof w->explain, "%s", explain);
    w->holdout = holdout;
}

/* The documented holdout rule, computed here independently. */
static int in_holdout(const char *customer, const char *rule, double share)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = customer;; p++) {
        h ^= (unsigned char)*p;
        h *= 0x100000001b3ULL;
        if (!*p) break;
    }
    for (const char *p = rule; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 0x100000001b3ULL;
    }
    return (double)h / 18446744073709551616.0 < share;
}

static void expectations(void)
{
    expect("greet_with_usual", "greet", "g6", "Welcome back! The usual big_mac?",
           "{\"usual_order\":\"[\\\"big_mac\\\",\\\"fries\\\"]\",\"visits_30d\":\"2\"}", 0);
    expect("greet_with_usual", "greet", "g8", "Welcome back! The usual big_mac?",
           "{\"usual_order\":\"[\\\"big_mac\\\",\\\"fries\\\"]\",\"visits_30d\":\"4\"}", 0);
    char ex[256];
    snprintf(ex, sizeof ex, "{\"visit_times\":\"[%lld,%lld]\",\"ts\":\"%lld\"}",
             (long long)(T0 + 40 * D), (long long)T0, (long long)(T0 + 40 * D));
    expect("welcome_back", "away", "a2", "We missed you!", ex, 0);
    expect("gold_segment", "gold", "v3", "Welcome to Gold: 550 in 90 days",
           "{\"spend_90d\":\"550\"}", 0);
    expect("gold_segment", "gold", "v6", "Welcome to Gold: 605 in 90 days",
           "{\"spend_90d\":\"605\"}", 0);
    expect("agent_prompt", "caller", "c3",
           "2 failed web checkouts today: offer help with the payment",
           "{\"failed_checkouts_1d\":\"2\"}", 0);
    expect("promo_hi", "viewer", "p1", "promo hi", "{}", 0);
    expect("nudge", "carter", "n1", "Still thinking about shoes?", "{}", 0);
    expect("nudge", "carter", "n2", "Still thinking about shoes?", "{}", 0);
    expect("nudge", "carter", "n4", "Still thinking about boots?", "{}", 0);
    expect("app_hello", "night", "q2", "Hello from the app", "{}", 0);
    for (int i = 0; i < NSIGNUP; i++) {
        char c[16], id[16], msg[64];
        snprintf(c, sizeof c, "h%d", i);
        snprintf(id, sizeof id, "s%d", i);
        snprintf(msg, sizeof msg, "Welcome %s", c);
        expect("welcome_signup", c, id, msg, "{}", in_holdout(c, "welcome_signup", 0.5));
    }
}

static int write_story(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (size_t i = 0; i < NSTORY; i++) {
        const story_ev *e = &story[i];
        fprintf(f,
                "{\"event_id\":\"%s\",\"customer_id\":\"%s\",\"ts\":%lld,"
                "\"channel\":\"%s\",\"type\":\"%s\",",
                e->id, e->customer, (long long)e->ts, e->channel, e->type);
        if (e->item) fprintf(f, "\"item\":\"%s\",", e->item);
        if (e->amount >= 0) fprintf(f, "\"amount\":%g,", e->amount);
        fprintf(f, "\"attrs\":{}}\n");
    }
    for (int i = 0; i < NSIGNUP; i++)
        fprintf(f,
                "{\"event_id\":\"s%d\",\"customer_id\":\"h%d\",\"ts\":%lld,"
                "\"channel\":\"web\",\"type\":\"signup\",\"attrs\":{}}\n",
                i, i, (long long)T0);
    return fclose(f);
}

/* ---- setup ------------------------------------------------------------------ */

static tl_test_world world;

static int suite_init(void)
{
    if (tl_test_world_start(&world, 2, IN_TOPIC, OUT_TOPIC, DLQ_TOPIC))
        return 1;
    tmp = world.tmp;
    redis = world.redis;
    mock = world.mock;
    brokers = world.brokers;
    snprintf(cfg_path, sizeof cfg_path, "%s/rules.yaml", tmp);
    snprintf(log_path, sizeof log_path, "%s/tailord.log", tmp);
    FILE *f = fopen(cfg_path, "w");
    if (!f) return 1;
    fputs(config_text, f);
    fclose(f);
    expectations();
    return 0;
}

static int suite_clean(void)
{
    tl_test_world_stop(&world);
    return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_run_the_stories(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/story.jsonl", tmp);
    CU_ASSERT_FATAL(write_story(path) == 0);
    char *argv[] = {strdup(tl_test_bin("tailorctl")), "produce", "-b",
                    (char *)brokers, "-t", IN_TOPIC, path, NULL};
    CU_ASSERT_EQUAL_FATAL(tl_test_run_tool(argv), 0);
    free(argv[0]);
    pid_t pid = tl_test_start_tailord(cfg_path, log_path);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(tl_test_wait_drained(brokers, "rules-e2e", IN_TOPIC, 120000));
    CU_ASSERT_EQUAL(tl_test_stop(pid, SIGTERM, 30000), 0);
}

typedef struct seen {
    tl_trigger_codec *codec;
    tl_arena arena;
    int unexpected, duplicates, bad_version;
    char versions[16][2][32];
    int nversions;
} seen;

static char *explain_json(const tl_trigger *t)
{
    json_t *o = json_object();
    for (size_t i = 0; i < t->nexplain; i++)
        json_object_set_new(o, t->explain[i].key, json_string(t->explain[i].val));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static void on_trigger(void *ud, const rd_kafka_message_t *m)
{
    seen *s = ud;
    tl_trigger t;
    char err[256];
    tl_arena_reset(&s->arena);
    if (tl_trigger_decode(s->codec, m->payload, m->len, &s->arena, &t, err,
                          sizeof err)) {
        s->unexpected++;
        return;
    }
    /* rule_version header: 16 hex digits, the same for every trigger of a
     * rule. */
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t vl = 0;
    if (rd_kafka_message_headers(m, &h) ||
        rd_kafka_header_get_last(h, "rule_version", &v, &vl) || vl != 16) {
        s->bad_version++;
    } else {
        int k = 0;
        while (k < s->nversions && strcmp(s->versions[k][0], t.rule)) k++;
        if (k == s->nversions) {
            snprintf(s->versions[k][0], 32, "%s", t.rule);
            snprintf(s->versions[k][1], 32, "%.*s", (int)vl, (const char *)v);
            s->nversions++;
        } else if (strncmp(s->versions[k][1], v, vl)) {
            s->bad_version++;
        }
    }
    char *ex = explain_json(&t);
    size_t i = 0;
    for (; i < nwants; i++) {
        want *w = &wants[i];
        if (strcmp(w->rule, t.rule) || strcmp(w->cause, t.cause_event_id)) continue;
        if (w->seen++) s->duplicates++;
        int ok = strcmp(w->customer, t.customer_id) == 0 &&
                 strcmp(w->message, t.message) == 0 &&
                 strcmp(w->explain, ex) == 0 && w->holdout == t.holdout;
        if (!ok) {
            fprintf(stderr, "trigger %s/%s: got customer %s message '%s' explain %s "
                            "holdout %d; want '%s' %s %d\n",
                    t.rule, t.cause_event_id, t.customer_id, t.message, ex,
                    t.holdout, w->message, w->explain, w->holdout);
            s->unexpected++;
        }
        if (strcmp(t.rule, "greet_with_usual") == 0 &&
            !(t.nattrs == 1 && strcmp(t.attrs[0].key, "offer") == 0 &&
              strcmp(t.attrs[0].val, "big_mac") == 0))
            s->unexpected++;
        break;
    }
    if (i == nwants) {
        fprintf(stderr, "unexpected trigger %s for %s (cause %s): '%s'\n", t.rule,
                t.customer_id, t.cause_event_id, t.message);
        s->unexpected++;
    }
    free(ex);
}

static void test_exact_triggers(void)
{
    char err[256];
    seen s = {.codec = tl_trigger_codec_new(NULL, err, sizeof err)};
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.codec);
    tl_arena_init(&s.arena, 1 << 14);
    tl_test_consume_all(brokers, OUT_TOPIC, on_trigger, &s);
    size_t missing = 0, holdouts = 0;
    for (size_t i = 0; i < nwants; i++) {
        if (!wants[i].seen) {
            fprintf(stderr, "missing trigger %s for %s (cause %s)\n", wants[i].rule,
                    wants[i].customer, wants[i].cause);
            missing++;
        }
        holdouts += wants[i].holdout;
    }
    CU_ASSERT_EQUAL(missing, 0);
    CU_ASSERT_EQUAL(s.unexpected, 0);
    CU_ASSERT_EQUAL(s.duplicates, 0);
    CU_ASSERT_EQUAL(s.bad_version, 0);
    /* The holdout split is not degenerate on these 20 customers. */
    CU_ASSERT(holdouts > 0 && holdouts < NSIGNUP);
    tl_arena_free(&s.arena);
    tl_trigger_codec_free(s.codec);
}

static void test_suppressions_counted(void)
{
    /* tailord's last line gives the suppressions by reason. */
    FILE *f = fopen(log_path, "r");
    CU_ASSERT_FATAL(f != NULL);
    char line[2048], last[2048] = "";
    while (fgets(line, sizeof line, f))
        if (strstr(line, "suppressed:")) snprintf(last, sizeof last, "%s", line);
    fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(last, "cooldown 1,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(last, "quiet_hours 1,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(last, "cap 1,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(last, "group 1"));
    if (!strstr(last, "cooldown 1,")) fprintf(stderr, "log: %s\n", last);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("rules e2e", suite_init, suite_clean);
    CU_add_test(s, "the stories through tailord", test_run_the_stories);
    CU_add_test(s, "exactly the expected triggers", test_exact_triggers);
    CU_add_test(s, "suppressions counted by reason", test_suppressions_counted);
    return tl_test_run();
}
