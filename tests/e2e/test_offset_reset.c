/*
 * Offsets going backwards (issue 20): a partition's log that starts over
 * at 0 below the watermarks stored in the vectors.  Before, every event
 * was counted as a duplicate, nothing applied, nothing logged.  Now the
 * stale watermarks are found (beyond the partition's end, or written under
 * another cluster), said once per partition, counted in
 * tailor_offset_resets_total, and handled by events.on_offset_reset.
 *
 * Two ways for a log to start over, each under both policies:
 * - the input topic recreated on the suite's broker, the mock or the real
 *   one (TAILOR_TEST_KAFKA; the mock cannot delete a topic, so there a new
 *   mock cluster stands in for it);
 * - `tailord --embedded` twice against one Redis (the user's case: each
 *   start brings a new empty Kafka, here with as many events as the first
 *   run, so only the cluster id tells).
 */
#include <CUnit/Basic.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/kafka_util.h"
#include "../support/redis_server.h"
#include "../support/testutil.h"
#include "common.h"
#include "httpc.h"

#define IN_TOPIC "interactions"
#define OUT_TOPIC "triggers"
#define DLQ_TOPIC "interactions.dlq"
#define BOUND_MS 60000
#define T0 1709251200000LL
#define CUSTOMERS 5
#define RESET_LINE "went backwards"

static tl_test_world world;
static pid_t running;

static int suite_init(void)
{
    return tl_test_world_start(&world, 1, IN_TOPIC, OUT_TOPIC, DLQ_TOPIC) ? 1 : 0;
}

static int suite_clean(void)
{
    if (running) tl_test_stop(running, SIGKILL, 5000);
    tl_test_world_stop(&world);
    return 0;
}

/* Events first..first+n-1, to customers c0..c4 in turn (one partition:
 * event i is at offset i of a log that started with event 0). */
static void produce(const char *brokers, int first, int n)
{
    for (int i = first; i < first + n; i++) {
        char js[256], cust[16];
        snprintf(cust, sizeof cust, "c%d", i % CUSTOMERS);
        snprintf(js, sizeof js,
                 "{\"event_id\":\"e%d\",\"customer_id\":\"%s\",\"ts\":%lld,"
                 "\"channel\":\"web\",\"type\":\"visit\"}",
                 i, cust, T0 + i);
        CU_ASSERT_EQUAL(tl_test_produce(brokers, IN_TOPIC, cust, js,
                                        strlen(js)), 0);
    }
}

/* A config of its own (prefix, so each case has its own customers). */
static void write_cfg(const char *path, const char *group, const char *prefix,
                      const char *policy, int port)
{
    CU_ASSERT_FATAL(tl_test_write_filef(path,
        "kafka: { group: %s, input: [" IN_TOPIC "], output: " OUT_TOPIC
        ", dead_letter: " DLQ_TOPIC ", batch_timeout: 20ms }\n"
        "redis: { prefix: '%s:' }\n"
        "events: { format: json, on_offset_reset: %s }\n"
        "http: { listen: '127.0.0.1:%d' }\n"
        "features:\n  - { name: n, kind: count }\n",
        group, prefix, policy, port) == 0);
}

/* Every customer's count n under prefix equals want. */
static void expect_counts(const char *prefix, long long want)
{
    redisContext *c = redisConnect("127.0.0.1", world.redis->port);
    CU_ASSERT_FATAL(c && !c->err);
    for (int k = 0; k < CUSTOMERS; k++) {
        char key[64];
        snprintf(key, sizeof key, "%s:cx:{c%d}", prefix, k);
        char *v = tl_test_hget(c, key, "n");
        long long n = v ? atoll(v) : -1;
        if (n != want)
            fprintf(stderr, "\n  %s: n = %lld, want %lld\n", key, n, want);
        CU_ASSERT_EQUAL(n, want);
        free(v);
    }
    redisFree(c);
}

/* /metrics of the tailord on port holds want. */
static int metrics_hold(int port, const char *want)
{
    char url[64], err[TL_ERRSZ];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    int status = 0;
    char *body = NULL;
    int ok = !tl_http_request("GET", url, NULL, 5000, &status, &body, err,
                              sizeof err) &&
             status == 200 && body && strstr(body, want);
    if (!ok) fprintf(stderr, "\n  %s lacks %s:\n%s\n", url, want, body ? body : err);
    free(body);
    return ok;
}

/* What the second run must show: the counts, the resets in /metrics (one
 * per customer: each had a watermark beyond the new log), the one line. */
static void expect_reset(const char *prefix, const char *policy, int port,
                         const char *log, long long want)
{
    expect_counts(prefix, want);
    char m[160];
    snprintf(m, sizeof m, "tailor_offset_resets_total{topic=\"" IN_TOPIC
             "\",partition=\"0\"} %d\n", CUSTOMERS);
    CU_ASSERT(metrics_hold(port, m));
    CU_ASSERT_EQUAL(tl_test_log_count(log, RESET_LINE), 1);
    char said[64];
    snprintf(said, sizeof said, "events.on_offset_reset is %s", policy);
    CU_ASSERT_EQUAL(tl_test_log_count(log, said), 1);
}

/* 20 events (watermarks 15..19), the topic recreated, 10 events (end
 * offset 10): every watermark lies beyond the new log.  The cluster id is
 * the same on a real broker; a new mock cluster may or may not have one of
 * its own: either way the watermarks are found stale. */
static void recreated(const char *policy, long long want)
{
    char cfg[512], log1[512], log2[512], prefix[32], g1[48], g2[48];
    int port = tl_test_free_port();
    snprintf(prefix, sizeof prefix, "re-%s", policy);
    snprintf(g1, sizeof g1, "reset-%s-1", policy);
    snprintf(g2, sizeof g2, "reset-%s-2", policy);
    snprintf(cfg, sizeof cfg, "%s/%s.yaml", world.tmp, prefix);
    snprintf(log1, sizeof log1, "%s/%s-1.log", world.tmp, prefix);
    snprintf(log2, sizeof log2, "%s/%s-2.log", world.tmp, prefix);
    CU_ASSERT_FATAL(tl_test_world_renew(&world, 1, IN_TOPIC, OUT_TOPIC,
                                        DLQ_TOPIC) == 0);
    produce(world.brokers, 0, 20);
    write_cfg(cfg, g1, prefix, policy, port);
    CU_ASSERT_FATAL(tl_test_tailord_pass(world.brokers, cfg, log1, g1,
                                         IN_TOPIC, BOUND_MS) == 0);
    expect_counts(prefix, 4);
    CU_ASSERT_EQUAL(tl_test_log_count(log1, RESET_LINE), 0);

    CU_ASSERT_FATAL(tl_test_world_renew(&world, 1, IN_TOPIC, OUT_TOPIC,
                                        DLQ_TOPIC) == 0);
    produce(world.brokers, 0, 10);
    /* A new group: the old one's offsets went with the topic. */
    write_cfg(cfg, g2, prefix, policy, port);
    running = tl_test_start_tailord(cfg, log2);
    CU_ASSERT_FATAL(running > 0);
    CU_ASSERT_FATAL(tl_test_wait_drained(world.brokers, g2, IN_TOPIC, BOUND_MS));
    expect_reset(prefix, policy, port, log2, want);
    CU_ASSERT_EQUAL(tl_test_stop(running, SIGTERM, 30000), 0);
    running = 0;
}

static void test_recreated_reapply(void) { recreated("reapply", 6); }
static void test_recreated_skip(void) { recreated("skip", 4); }

/* Starts `tailord --embedded --partitions 1 -c cfg`; its broker's address
 * in addr ("" when it did not say within 10 s). */
static pid_t start_embedded(const char *cfg, const char *log, char *addr,
                            size_t size)
{
    char out[600];
    snprintf(out, sizeof out, "%s.out", log);
    char *argv[] = {strdup(tl_test_bin("tailord")), "--embedded",
                    "--partitions", "1", "-c", (char *)cfg, NULL};
    pid_t pid = tl_test_spawn(argv, out, log);
    free(argv[0]);
    addr[0] = 0;
    for (int i = 0; pid > 0 && i < 100 && !addr[0]; i++) {
        FILE *f = fopen(out, "r");
        char line[300];
        if (f && fgets(line, sizeof line, f) &&
            strncmp(line, "embedded kafka: ", 16) == 0) {
            snprintf(addr, size, "%.200s", line + 16);
            addr[strcspn(addr, "\n")] = 0;
        }
        if (f) fclose(f);
        if (!addr[0]) usleep(100000);
    }
    return pid;
}

/* The same 20 events through two embedded runs: the second run's log ends
 * where the first one's did, so no watermark lies beyond it; what tells is
 * the cluster id each embedded Kafka has of its own. */
static void embedded_twice(const char *policy, long long want)
{
    char cfg[512], log[512], prefix[32], addr[256];
    int port = tl_test_free_port();
    snprintf(prefix, sizeof prefix, "emb-%s", policy);
    snprintf(cfg, sizeof cfg, "%s/%s.yaml", world.tmp, prefix);
    write_cfg(cfg, "reset-embedded", prefix, policy, port);
    unsetenv("TAILOR_KAFKA_BROKERS");
    for (int run = 1; run <= 2; run++) {
        snprintf(log, sizeof log, "%s/%s-%d.log", world.tmp, prefix, run);
        running = start_embedded(cfg, log, addr, sizeof addr);
        CU_ASSERT_FATAL(running > 0 && addr[0]);
        produce(addr, 0, 20);
        CU_ASSERT_FATAL(tl_test_wait_drained(addr, "reset-embedded", IN_TOPIC,
                                             BOUND_MS));
        if (run == 1) {
            expect_counts(prefix, 4);
            CU_ASSERT_EQUAL(tl_test_log_count(log, RESET_LINE), 0);
        } else {
            expect_reset(prefix, policy, port, log, want);
        }
        CU_ASSERT_EQUAL(tl_test_stop(running, SIGTERM, 30000), 0);
        running = 0;
    }
    setenv("TAILOR_KAFKA_BROKERS", world.brokers, 1);
}

static void test_embedded_reapply(void) { embedded_twice("reapply", 8); }
static void test_embedded_skip(void) { embedded_twice("skip", 4); }

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("offset_reset", suite_init, suite_clean);
    CU_add_test(s, "topic recreated, reapply: events applied",
                test_recreated_reapply);
    CU_add_test(s, "topic recreated, skip: said and counted",
                test_recreated_skip);
    CU_add_test(s, "tailord --embedded twice, reapply", test_embedded_reapply);
    CU_add_test(s, "tailord --embedded twice, skip", test_embedded_skip);
    return tl_test_run();
}
