/*
 * Bad configuration and bad environment, through the real tailord binary:
 * an unreadable or missing configuration file, wrong types, unknown names in
 * rules, a Kafka broker that does not resolve or refuses connections, a
 * malformed Redis URL, a wrong Redis password — each must end tailord with
 * exit code 1 and a message on stderr naming the problem, within a bound,
 * never a crash or a hang.  And Redis unreachable at start, which is not
 * fatal: tailord logs it once, stays up, and processes events once a
 * redis-server appears on that port.
 */
#include <CUnit/Basic.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/kafka_util.h"
#include "../support/redis_server.h"
#include "../support/testutil.h"
#include "common.h"
#include "event.h"

#define IN_TOPIC "interactions"
#define OUT_TOPIC "triggers"
#define DLQ_TOPIC "interactions.dlq"
/* Configuration errors are immediate; the Kafka check gives up after 10 s. */
#define CONFIG_BOUND_MS 5000
#define KAFKA_BOUND_MS 15000
#define REDIS_BOUND_MS 15000

static tl_test_world world;
static char good_cfg[512];

static const char *good_config =
    "kafka: { group: badenv, input: [" IN_TOPIC "], output: " OUT_TOPIC
    ", dead_letter: " DLQ_TOPIC ", batch_timeout: 20ms }\n"
    "redis: { prefix: 'badenv:' }\n"
    "features:\n"
    "  - { name: n, kind: count }\n";

static int suite_init(void)
{
    if (tl_test_world_start(&world, 1, IN_TOPIC, OUT_TOPIC, DLQ_TOPIC))
        return 1;
    snprintf(good_cfg, sizeof good_cfg, "%s/good.yaml", world.tmp);
    return tl_test_write_file(good_cfg, good_config) ? 1 : 0;
}

static int suite_clean(void)
{
    tl_test_world_stop(&world);
    return 0;
}

/* ---- running tailord to its end ------------------------------------------ */

typedef struct outcome {
    int code;       /* exit code; -1: still running at the bound (killed);
                     * -2: killed by a signal (a crash) */
    int64_t ms;     /* how long it ran */
    char err[8192]; /* its stderr */
} outcome;

static void read_text(const char *path, char *buf, size_t bufsz)
{
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(buf, 1, bufsz - 1, f);
    buf[n] = 0;
    fclose(f);
}

static void run_tailord(const char *config, int bound_ms, outcome *o)
{
    char errpath[600];
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", world.tmp);
    char *argv[] = {strdup(tl_test_bin("tailord")), "-c", (char *)config, NULL};
    int64_t t0 = tl_now_mono_ms();
    pid_t pid = tl_test_spawn(argv, "/dev/null", errpath);
    free(argv[0]);
    CU_ASSERT_FATAL(pid > 0);
    o->code = tl_test_wait(pid, bound_ms);
    o->ms = tl_now_mono_ms() - t0;
    if (o->code == -1) { /* a hang: stop it, and say so */
        tl_test_stop(pid, SIGKILL, 5000);
        fprintf(stderr, "tailord -c %s still running after %d ms\n", config,
                bound_ms);
    }
    read_text(errpath, o->err, sizeof o->err);
}

/* Exit 1 within the bound, with every `want` on stderr. */
static void expect_exit1(const char *what, const char *config, int bound_ms,
                         const char *const *want)
{
    outcome o;
    run_tailord(config, bound_ms, &o);
    int ok = o.code == 1;
    for (size_t i = 0; want[i]; i++) ok = ok && strstr(o.err, want[i]);
    if (!ok) {
        fprintf(stderr, "\n%s: exit %d after %lld ms, stderr:\n%s\nwanted:",
                what, o.code, (long long)o.ms, o.err);
        for (size_t i = 0; want[i]; i++) fprintf(stderr, " \"%s\"", want[i]);
        fprintf(stderr, "\n");
    }
    CU_ASSERT_EQUAL(o.code, 1);
    CU_ASSERT(ok);
}

/* ---- configuration --------------------------------------------------------- */

static void test_config_file_unreadable(void)
{
    char path[600];
    /* Missing. */
    snprintf(path, sizeof path, "%s/missing.yaml", world.tmp);
    const char *want_missing[] = {path, "cannot open configuration",
                                  "No such file or directory", NULL};
    expect_exit1("missing file", path, CONFIG_BOUND_MS, want_missing);
    /* A directory: opens, but cannot be read. */
    const char *want_dir[] = {world.tmp, "cannot read configuration",
                              "Is a directory", NULL};
    expect_exit1("a directory", world.tmp, CONFIG_BOUND_MS, want_dir);
    /* No read permission.  The suites run as root (make check on a fresh
     * machine), and root reads a chmod 000 file all the same: the missing
     * file and the directory above are the unreadable cases there. */
    if (geteuid() != 0) {
        snprintf(path, sizeof path, "%s/noperm.yaml", world.tmp);
        CU_ASSERT_FATAL(tl_test_write_file(path, good_config) == 0);
        CU_ASSERT_FATAL(chmod(path, 0) == 0);
        const char *want_perm[] = {path, "cannot open configuration",
                                   "Permission denied", NULL};
        expect_exit1("chmod 000", path, CONFIG_BOUND_MS, want_perm);
    }
}

typedef struct bad_config {
    const char *what, *text;
    const char *where; /* ":LINE:COL: " after the file name */
    const char *want[3];
} bad_config;

static const bad_config wrong_types[] = {
    {"a word for a number", "kafka: { batch_size: lots }\n", ":1:22: ",
     {"kafka.batch_size", "expected an integer", NULL}},
    {"a mapping for a list", "features: { name: x }\n", ":1:11: ",
     {"features", "expected a list of features, got a mapping", NULL}},
    {"a list for a mapping", "kafka: [1, 2]\n", ":1:8: ",
     {"kafka", "expected a mapping, got a list", NULL}},
    {"a bad duration", "redis: { ttl: 5 parsecs }\n", ":1:15: ",
     {"redis.ttl", "bad duration '5 parsecs'", NULL}},
    {"a string for a number",
     "features:\n  - { name: s, kind: sum, field: type }\n", ":2:34: ",
     {"features[0].field", "kind sum needs a number field", NULL}},
    {"an unknown key", "kafka: { brokerz: 'x:1' }\n", ":1:10: ",
     {"unknown key 'brokerz' in kafka", NULL, NULL}},
};

static const bad_config unknown_names[] = {
    {"an unknown feature in if",
     "features:\n  - { name: n, kind: count }\n"
     "triggers:\n  - { name: r, if: 'visitz > 1', emit: { message: hi } }\n",
     ":4:21: ", {"triggers[0].if", "unknown name 'visitz'", NULL}},
    {"an unknown feature in a template",
     "features:\n  - { name: n, kind: count }\n"
     "triggers:\n  - { name: r, emit: { message: 'hi {{nope}}' } }\n",
     ":4:39: ", {"triggers[0].emit.message", "unknown name 'nope'", NULL}},
    {"an unknown feature in a function",
     "features:\n  - { name: n, kind: count }\n"
     "triggers:\n  - { name: r, if: 'len(usual) > 0 and n > 1',"
     " emit: { message: hi } }\n",
     ":4:25: ", {"triggers[0].if", "unknown name 'usual'", NULL}},
    {"since of an unknown feature",
     "features:\n  - { name: s, kind: since, of: nosuch }\n", ":2:33: ",
     {"features[0]", "unknown feature 'nosuch'", NULL}},
};

static void check_bad_configs(const bad_config *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char path[600], where[700];
        snprintf(path, sizeof path, "%s/bad-%zu.yaml", world.tmp, i);
        CU_ASSERT_FATAL(tl_test_write_file(path, cases[i].text) == 0);
        snprintf(where, sizeof where, "%s%s", path, cases[i].where);
        const char *want[5] = {where};
        size_t k = 1;
        for (size_t j = 0; j < 3 && cases[i].want[j]; j++)
            want[k++] = cases[i].want[j];
        want[k] = NULL;
        expect_exit1(cases[i].what, path, CONFIG_BOUND_MS, want);
    }
}

static void test_config_wrong_types(void)
{
    check_bad_configs(wrong_types, sizeof wrong_types / sizeof wrong_types[0]);
}

static void test_config_unknown_names(void)
{
    check_bad_configs(unknown_names,
                      sizeof unknown_names / sizeof unknown_names[0]);
}

/* ---- Kafka ------------------------------------------------------------------ */

static void with_brokers(const char *what, const char *brokers,
                         const char *reason)
{
    setenv("TAILOR_KAFKA_BROKERS", brokers, 1);
    char head[300];
    snprintf(head, sizeof head, "cannot reach Kafka at %s within 10 s", brokers);
    const char *want[] = {head, reason, NULL};
    expect_exit1(what, good_cfg, KAFKA_BOUND_MS, want);
    setenv("TAILOR_KAFKA_BROKERS", world.brokers, 1);
}

static void test_kafka_does_not_resolve(void)
{
    /* .invalid never resolves (RFC 2606). */
    with_brokers("broker does not resolve", "no-such-broker.invalid:9092",
                 "Failed to resolve 'no-such-broker.invalid:9092'");
}

static void test_kafka_refuses(void)
{
    char brokers[64];
    snprintf(brokers, sizeof brokers, "127.0.0.1:%d", tl_test_free_port());
    with_brokers("broker refuses connections", brokers, "Connection refused");
}

/* ---- SASL/SCRAM (real broker) ----------------------------------------------- */

/* A configuration whose kafka.properties authenticate with SCRAM-SHA-256 as
 * the broker's user, with `password`; in path.  0, or -1 on the mock (no
 * SASL listener) having said why. */
static int sasl_config(const char *path, const char *password, char *brokers,
                       size_t size)
{
    char user[128], text[2048];
    if (!tl_test_kafka_state("sasl_bootstrap", brokers, size) ||
        !tl_test_kafka_state("sasl_user", user, sizeof user)) {
        tl_test_skip("SASL/SCRAM", world.mock ? "the mock cluster has no SASL listener"
                                              : "the broker has no SASL listener");
        return -1;
    }
    snprintf(text, sizeof text,
             "kafka: { group: badenv-sasl, input: [" IN_TOPIC "], output: " OUT_TOPIC
             ", dead_letter: " DLQ_TOPIC ", batch_timeout: 20ms,\n"
             "  properties: { security.protocol: SASL_PLAINTEXT, sasl.mechanism: "
             "SCRAM-SHA-256,\n    sasl.username: '%s', sasl.password: '%s' } }\n"
             "redis: { prefix: 'badenv-sasl:' }\n"
             "features:\n"
             "  - { name: n, kind: count }\n",
             user, password);
    return tl_test_write_file(path, text);
}

static void test_sasl_right_credentials(void)
{
    char cfg[600], log[600], brokers[256], password[128];
    snprintf(cfg, sizeof cfg, "%s/sasl.yaml", world.tmp);
    if (!tl_test_kafka_state("sasl_password", password, sizeof password) ||
        sasl_config(cfg, password, brokers, sizeof brokers))
        return;
    snprintf(log, sizeof log, "%s/sasl.log", world.tmp);
    setenv("TAILOR_KAFKA_BROKERS", brokers, 1);
    pid_t pid = tl_test_start_tailord(cfg, log);
    setenv("TAILOR_KAFKA_BROKERS", world.brokers, 1);
    CU_ASSERT_FATAL(pid > 0);
    /* Through the SASL listener: consumed (a dead letter, produced) and
     * committed, which the plain listener then shows. */
    CU_ASSERT_EQUAL(tl_test_produce(world.brokers, IN_TOPIC, "c1", "not avro", 8), 0);
    CU_ASSERT(tl_test_wait_drained(world.brokers, "badenv-sasl", IN_TOPIC, 30000));
    CU_ASSERT_EQUAL(tl_test_stop(pid, SIGTERM, 15000), 0);
}

static void test_sasl_wrong_password(void)
{
    char cfg[600], brokers[256], head[300];
    snprintf(cfg, sizeof cfg, "%s/sasl-wrong.yaml", world.tmp);
    if (sasl_config(cfg, "not-the-password", brokers, sizeof brokers)) return;
    snprintf(head, sizeof head, "cannot reach Kafka at %s within 10 s", brokers);
    const char *want[] = {head, "SASL authentication error",
                          "invalid credentials with SASL mechanism SCRAM-SHA-256", NULL};
    setenv("TAILOR_KAFKA_BROKERS", brokers, 1);
    outcome o;
    run_tailord(cfg, KAFKA_BOUND_MS, &o);
    setenv("TAILOR_KAFKA_BROKERS", world.brokers, 1);
    int ok = o.code == 1;
    for (size_t i = 0; want[i]; i++) ok = ok && strstr(o.err, want[i]);
    if (!ok) fprintf(stderr, "\nwrong SASL password: exit %d, stderr:\n%s\n", o.code, o.err);
    CU_ASSERT_EQUAL(o.code, 1);
    CU_ASSERT(ok);
    CU_ASSERT_PTR_NULL(strstr(o.err, "not-the-password"));
}

/* ---- Redis ------------------------------------------------------------------ */

static void with_redis_url(const char *what, const char *url,
                           const char *const *want)
{
    setenv("TAILOR_REDIS_URL", url, 1);
    expect_exit1(what, good_cfg, REDIS_BOUND_MS, want);
    setenv("TAILOR_REDIS_URL", world.redis->url, 1);
}

static void test_redis_url_malformed(void)
{
    const char *want[] = {"redis URL", "expected redis://", NULL};
    with_redis_url("a URL that is not Redis's", "http://127.0.0.1:6379", want);
}

static void test_redis_wrong_password(void)
{
    char err[1024];
    tl_redis_server_opts opts = {.password = "right-password"};
    tl_redis_server *srv = tl_redis_server_start(&opts, err, sizeof err);
    if (!srv) fprintf(stderr, "%s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    char url[256];
    /* Wrong: refused with the server's reason, the password never shown. */
    snprintf(url, sizeof url, "redis://:wrong-password@127.0.0.1:%d",
             srv->port);
    const char *want_wrong[] = {"AUTH failed", "WRONGPASS", NULL};
    setenv("TAILOR_REDIS_URL", url, 1);
    outcome o;
    run_tailord(good_cfg, REDIS_BOUND_MS, &o);
    CU_ASSERT_EQUAL(o.code, 1);
    for (size_t i = 0; want_wrong[i]; i++)
        CU_ASSERT_PTR_NOT_NULL(strstr(o.err, want_wrong[i]));
    CU_ASSERT_PTR_NULL(strstr(o.err, "wrong-password"));
    if (o.code != 1 || !strstr(o.err, "AUTH failed"))
        fprintf(stderr, "\nwrong password: exit %d, stderr:\n%s\n", o.code,
                o.err);
    /* None, where one is required. */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", srv->port);
    const char *want_none[] = {"requires a password", NULL};
    with_redis_url("no password", url, want_none);
    setenv("TAILOR_REDIS_URL", world.redis->url, 1);
    tl_redis_server_stop(srv);
}

static int count_lines(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static int produce_event(const char *customer)
{
    char err[TL_ERRSZ];
    tl_event_encoder *enc = tl_event_encoder_new(NULL, err, sizeof err);
    if (!enc) return -1;
    tl_event ev = {.event_id = "e-1", .customer_id = customer,
                   .customer_id_len = strlen(customer), .ts = 1500000000000,
                   .channel = TL_CH_WEB, .type = "visit"};
    const void *buf;
    size_t len;
    int rc = tl_event_encode(enc, &ev, &buf, &len, err, sizeof err) ||
             tl_test_produce(world.brokers, IN_TOPIC, customer, buf, len);
    tl_event_encoder_free(enc);
    return rc ? -1 : 0;
}

static void test_redis_unreachable_at_start(void)
{
    /* Nothing listens on the port yet: tailord says so once, waits, and
     * gets on with the work when a server appears there. */
    int port = tl_test_free_port();
    char url[128], portstr[32], log[600];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    snprintf(portstr, sizeof portstr, "127.0.0.1:%d", port);
    snprintf(log, sizeof log, "%s/unreachable.log", world.tmp);
    setenv("TAILOR_REDIS_URL", url, 1);
    pid_t pid = tl_test_start_tailord(good_cfg, log);
    setenv("TAILOR_REDIS_URL", world.redis->url, 1);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL_FATAL(produce_event("waited-for"), 0);

    /* Up, and one clear line about it, not one per attempt. */
    char text[16384];
    int waited = tl_test_wait(pid, 3000);
    CU_ASSERT_EQUAL(waited, -1); /* still running */
    read_text(log, text, sizeof text);
    CU_ASSERT_EQUAL(count_lines(text, "connection refused"), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, portstr));
    if (waited != -1 || count_lines(text, "connection refused") != 1)
        fprintf(stderr, "\nredis unreachable: exit %d, log:\n%s\n", waited,
                text);
    if (waited != -1) return;

    /* Redis appears on that port: the event gets processed. */
    char err[1024];
    tl_redis_server_opts opts = {.port = port};
    tl_redis_server *srv = tl_redis_server_start(&opts, err, sizeof err);
    if (!srv) fprintf(stderr, "%s\n", err);
    CU_ASSERT_PTR_NOT_NULL(srv);
    char *n = NULL;
    for (int64_t end = tl_now_mono_ms() + 30000;
         srv && !n && tl_now_mono_ms() < end;) {
        redisContext *c = redisConnect("127.0.0.1", port);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "HGET badenv:cx:{waited-for} n");
            if (r && r->type == REDIS_REPLY_STRING) n = strdup(r->str);
            freeReplyObject(r);
        }
        if (c) redisFree(c);
        if (!n) usleep(200000);
    }
    CU_ASSERT_PTR_NOT_NULL(n);
    if (n) CU_ASSERT_STRING_EQUAL(n, "1");
    free(n);
    CU_ASSERT_EQUAL(tl_test_stop(pid, SIGTERM, 15000), 0);
    read_text(log, text, sizeof text);
    CU_ASSERT_EQUAL(count_lines(text, "connection refused"), 1);
    tl_redis_server_stop(srv);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("bad configuration and environment", suite_init,
                               suite_clean);
    CU_add_test(s, "configuration file missing or unreadable: exit 1",
                test_config_file_unreadable);
    CU_add_test(s, "wrong types: exit 1 at FILE:LINE:COL",
                test_config_wrong_types);
    CU_add_test(s, "unknown features in rules: exit 1 at FILE:LINE:COL",
                test_config_unknown_names);
    CU_add_test(s, "a broker that does not resolve: exit 1 within 15 s",
                test_kafka_does_not_resolve);
    CU_add_test(s, "a broker that refuses: exit 1 within 15 s",
                test_kafka_refuses);
    CU_add_test(s, "SASL/SCRAM, right credentials: consumes and commits",
                test_sasl_right_credentials);
    CU_add_test(s, "SASL/SCRAM, wrong password: exit 1, password not shown",
                test_sasl_wrong_password);
    CU_add_test(s, "a malformed Redis URL: exit 1", test_redis_url_malformed);
    CU_add_test(s, "a wrong Redis password: exit 1, password not shown",
                test_redis_wrong_password);
    CU_add_test(s, "Redis unreachable at start: logged once, waited for",
                test_redis_unreachable_at_start);
    return tl_test_run();
}
