/*
 * The pipeline in process: tl_pipeline_run on threads of this program,
 * against the world's broker (the mock cluster, or the real one) and a real
 * redis-server, over two rounds of the real data slice.  A clean single
 * pass is the reference; every disturbed pass must end with the same
 * vectors, field for field, and the same set of trigger ids:
 *   - start and stop: a pipeline stopped mid-stream and started again,
 *     with Produce requests failing (mock);
 *   - cooperative rebalancing: a second and a third member join while the
 *     first works, then members leave, partitions moving each time;
 *   - Redis down while a flush is in flight, a member joining and leaving
 *     meanwhile (the revocation is recorded while the batch waits for
 *     Redis; the batch is abandoned, and the partitions that stay are taken
 *     again), then Redis back;
 *   - offset commits failing (mock): sent again until they go through,
 *     while the input is quiet and when stopping.
 */
#include <CUnit/Basic.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/kafka_util.h"
#include "../support/redis_server.h"
#include "../support/slice.h"
#include "../support/testutil.h"
#include "common.h"
#include "config.h"
#include "kafka.h"
#include "pipeline.h"
#include <librdkafka/rdkafka_mock.h>

#define IN_TOPIC "interactions"
#define PARTS 8
#define ROUNDS 2
#define DRAIN_MS 180000

static tl_test_world world;
static tl_redis_server *own_redis; /* the outage pass's, killed mid-run */
static char **customers;
static size_t ncustomers;

static const char *config_fmt =
    "kafka: { group: %s, input: [" IN_TOPIC "], output: %s, dead_letter: dlq,\n"
    "         batch_size: 500, batch_timeout: 20ms,\n"
    "         properties: { session.timeout.ms: '6000', heartbeat.interval.ms: '300' } }\n"
    "redis: { url: '%s', prefix: '%s' }\n"
    "log: { level: warn }\n"
    "features:\n"
    "  - { name: purchases, kind: count, where: 'type == \"purchase\"' }\n"
    "  - { name: spend, kind: sum, field: amount }\n"
    "  - { name: week, kind: window_count, window: 7d }\n"
    "  - { name: recent, kind: last_n, field: item, n: 3 }\n"
    "triggers:\n"
    "  - { name: busy_week, if: 'week >= 8', cooldown: 3d, emit: { message: '{{week}}' } }\n"
    "  - { name: big_spender, if: 'spend >= 300', mode: edge, emit: { message: '{{spend}}' } }\n"
    "  - { name: coupon, when: 'type == \"coupon_redemption\"', emit: { message: 'c' } }\n"
    "  - { name: regular, if: 'purchases >= 5', cooldown: 1d, emit: { message: '{{recent}}' } }\n";

/* One member: a pipeline on a thread of its own. */
typedef struct member {
    tl_pipeline *p;
    tl_config *cfg;
    pthread_t thread;
    volatile sig_atomic_t stop;
    atomic_int done;  /* tl_pipeline_run returned */
    int rc;
    char err[TL_ERRSZ];
} member;

/* The member's own stop flag: set by SIGUSR1 on its own thread, as the
 * daemon's flag is set by its signal handler (a plain write from the test's
 * thread would be a data race on a volatile sig_atomic_t). */
static _Thread_local volatile sig_atomic_t *member_flag;

static void on_member_signal(int sig)
{
    (void)sig;
    if (member_flag) *member_flag = 1;
}

static void *member_main(void *ud)
{
    member *m = ud;
    member_flag = &m->stop;
    m->rc = tl_pipeline_run(m->p, &m->stop, m->err, sizeof m->err);
    atomic_store(&m->done, 1);
    return NULL;
}

static tl_config *load_config(const char *group, const char *out,
                              const char *url, const char *prefix)
{
    char path[600], err[TL_ERRSZ];
    snprintf(path, sizeof path, "%s/%s.yaml", world.tmp, group);
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    fprintf(f, config_fmt, group, out, url, prefix);
    fclose(f);
    unsetenv("TAILOR_REDIS_URL"); /* the file says which Redis */
    tl_config *cfg = tl_config_load(path, err, sizeof err);
    if (!cfg) printf("\n  %s\n", err);
    return cfg;
}

static member *member_start(const char *group, const char *out,
                            const char *url, const char *prefix)
{
    member *m = tl_xcalloc(1, sizeof *m);
    m->cfg = load_config(group, out, url, prefix);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->cfg);
    char err[TL_ERRSZ];
    m->p = tl_pipeline_new(m->cfg, world.brokers, err, sizeof err);
    if (!m->p) printf("\n  %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->p);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&m->thread, NULL, member_main, m), 0);
    return m;
}

/* Stops m (finish the batch, commit), checks it stopped cleanly, frees;
 * the partitions go to the other members. */
static void member_stop(member *m)
{
    pthread_kill(m->thread, SIGUSR1);
    pthread_join(m->thread, NULL);
    if (m->rc) printf("\n  pipeline stopped with: %s\n", m->err);
    CU_ASSERT_EQUAL(m->rc, TL_OK);
    tl_pipeline_free(m->p);
    tl_config_free(m->cfg);
    free(m);
}

/* Until `group` committed more than it had, bounded. */
static void wait_progress(const char *group, int64_t timeout_ms)
{
    tl_test_wait_progress(world.brokers, group, IN_TOPIC, timeout_ms);
}

static int suite_init(void)
{
    struct sigaction sa = {.sa_handler = on_member_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    if (tl_test_world_start(&world, PARTS, IN_TOPIC, "t_clean", "dlq"))
        return 1;
    const char *outs[] = {"t_stop", "t_multi", "t_outage"};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++)
        if (tl_test_world_topic(&world, outs[i], 2)) return 1;
    char err[512];
    tl_redis_server_opts o = {.aof_always = 1};
    if (!(own_redis = tl_redis_server_start(&o, err, sizeof err))) {
        printf("%s\n", err);
        return 1;
    }
    ncustomers = tl_test_slice_customers(&customers);
    return ncustomers ? 0 : 1;
}

static int suite_clean(void)
{
    tl_test_free_ids(customers, ncustomers);
    tl_redis_server_stop(own_redis);
    tl_test_world_stop(&world);
    return 0;
}

static void test_produce(void)
{
    size_t n = tl_test_produce_slice(world.brokers, IN_TOPIC, 0, ROUNDS);
    printf("produced %zu events ", n);
    CU_ASSERT_FATAL(n > 30000);
}

static void test_clean_pass(void)
{
    member *m = member_start("clean", "t_clean", world.redis->url, "clean:");
    CU_ASSERT(tl_test_wait_drained(world.brokers, "clean", IN_TOPIC, DRAIN_MS));
    const tl_stats *s = tl_pipeline_stats(m->p);
    CU_ASSERT(s->applied > 30000);
    CU_ASSERT_EQUAL(s->fenced, 0);
    member_stop(m);
}

/* The pass's vectors (in redis at url) and triggers equal the clean one. */
static void compare_with_clean(const tl_redis_server *srv, const char *prefix,
                               const char *topic)
{
    redisContext *a = redisConnect("127.0.0.1", world.redis->port);
    redisContext *b = redisConnect("127.0.0.1", srv->port);
    CU_ASSERT_FATAL(a && !a->err && b && !b->err);
    size_t empty = 0;
    size_t diff = tl_test_compare_passes(a, "clean:", b, prefix, customers,
                                         ncustomers, 0, ROUNDS, &empty);
    CU_ASSERT_EQUAL(diff, 0);
    CU_ASSERT(empty < ncustomers);
    redisFree(a);
    redisFree(b);
    tl_test_compare_trigger_ids(world.brokers, "t_clean", topic, NULL);
}

/* Until m holds partitions (its share of a rebalance), bounded. */
static void wait_assigned(member *m)
{
    const tl_stats *s = tl_pipeline_stats(m->p);
    int64_t until = tl_now_mono_ms() + 60000;
    while (tl_now_mono_ms() < until && tl_gauge_get(&s->kafka.assigned) <= 0)
        usleep(20000);
    CU_ASSERT(tl_gauge_get(&s->kafka.assigned) > 0);
}

/* Produce requests failing on the mock: connections dropped, which
 * librdkafka 2.0.2's mock survives without losing acknowledged messages
 * (other injected Produce errors make it lose some: see
 * tests/integration/test_sink_errors.c). */
static void produce_errors(void)
{
    if (!world.mock) return;
    rd_kafka_mock_push_request_errors(tl_kafka_mock_cluster(world.mock), 0, 2,
                                      RD_KAFKA_RESP_ERR__TRANSPORT,
                                      RD_KAFKA_RESP_ERR__TRANSPORT);
}

static void test_start_stop(void)
{
    for (int i = 0; i < 3; i++) {
        produce_errors();
        member *m = member_start("stop", "t_stop", world.redis->url, "stop:");
        wait_progress("stop", 30000);
        member_stop(m);
    }
    member *m = member_start("stop", "t_stop", world.redis->url, "stop:");
    CU_ASSERT(tl_test_wait_drained(world.brokers, "stop", IN_TOPIC, DRAIN_MS));
    member_stop(m);
    compare_with_clean(world.redis, "stop:", "t_stop");
}

static void test_rebalance(void)
{
    member *a = member_start("multi", "t_multi", world.redis->url, "multi:");
    wait_progress("multi", 30000);
    member *b = member_start("multi", "t_multi", world.redis->url, "multi:");
    wait_assigned(b);
    wait_progress("multi", 30000);
    member *c = member_start("multi", "t_multi", world.redis->url, "multi:");
    wait_assigned(c);
    wait_progress("multi", 30000);
    const tl_stats *sa = tl_pipeline_stats(a->p);
    uint64_t moves = tl_counter_get(&sa->kafka.rebalances);
    member_stop(a);
    wait_progress("multi", 30000);
    member_stop(b);
    CU_ASSERT(tl_test_wait_drained(world.brokers, "multi", IN_TOPIC, DRAIN_MS));
    member_stop(c);
    printf("first member saw %llu rebalance callbacks ", (unsigned long long)moves);
    CU_ASSERT(moves >= 2); /* its assignment, and partitions given up */
    compare_with_clean(world.redis, "multi:", "t_multi");
}

/* A plain consumer joins `group` (cooperative-sticky, like tailord's),
 * polls for ms, and leaves without committing: partitions move to it and
 * back. */
static void raw_member_visit(const char *group, int ms)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *props[][2] = {
        {"bootstrap.servers", world.brokers},
        {"group.id", group},
        {"enable.auto.commit", "false"},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"session.timeout.ms", "6000"},
        {"heartbeat.interval.ms", "300"},
    };
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
        CU_ASSERT_EQUAL_FATAL(rd_kafka_conf_set(conf, props[i][0], props[i][1],
                                                err, sizeof err), 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, IN_TOPIC, RD_KAFKA_PARTITION_UA);
    CU_ASSERT_EQUAL(rd_kafka_subscribe(rk, t), 0);
    rd_kafka_topic_partition_list_destroy(t);
    /* Until ms have passed and it holds partitions (bounded): librdkafka
     * 2.0.2 aborts when a cooperative-sticky consumer is destroyed between
     * its first JoinGroup and SyncGroup answers, as this one was when the
     * rebalance outlasted the visit (rd_kafka_sticky_assignor_state_destroy:
     * Assertion `assignor_state' failed; librdkafka issue #4312, fixed in
     * 2.3.0). */
    int64_t now = tl_now_mono_ms(), until = now + ms, bound = now + 60000;
    int assigned = 0;
    while ((now = tl_now_mono_ms()) < until || (!assigned && now < bound)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m) rd_kafka_message_destroy(m);
        rd_kafka_topic_partition_list_t *a = NULL;
        if (!assigned && !rd_kafka_assignment(rk, &a) && a) {
            assigned = a->cnt > 0;
            rd_kafka_topic_partition_list_destroy(a);
        }
    }
    CU_ASSERT(assigned);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static void test_redis_down_revocation(void)
{
    member *a = member_start("outage", "t_outage", own_redis->url, "outage:");
    wait_progress("outage", 30000);
    const tl_stats *s = tl_pipeline_stats(a->p);
    tl_redis_server_kill(own_redis); /* the flush in flight fails */
    for (int i = 0; i < 100 && !tl_gauge_get(&s->redis_down); i++)
        usleep(100000);
    CU_ASSERT_EQUAL(tl_gauge_get(&s->redis_down), 1);
    /* A member joins and leaves while a's batch waits for Redis: a's
     * revocation is recorded inside that wait, which ends it, and the batch
     * is abandoned; the partitions that stay are taken again. */
    uint64_t moves = tl_counter_get(&s->kafka.rebalances);
    raw_member_visit("outage", 8000);
    CU_ASSERT(tl_counter_get(&s->kafka.rebalances) > moves);
    CU_ASSERT(tl_counter_get(&s->abandoned) >= 1);
    char err[512];
    CU_ASSERT_EQUAL_FATAL(tl_redis_server_restart(own_redis, err, sizeof err), 0);
    CU_ASSERT(tl_test_wait_drained(world.brokers, "outage", IN_TOPIC, DRAIN_MS));
    member_stop(a);
    compare_with_clean(own_redis, "outage:", "t_outage");
}

/* The mock answers the next `n` OffsetCommit requests (ApiKey 8) with
 * REQUEST_TIMED_OUT: librdkafka 2.0.2 retries a commit twice itself
 * (rd_kafka_handle_OffsetCommit, RD_KAFKA_REQUEST_DEFAULT_RETRIES), so
 * three make one commit fail for the application. */
static void commit_errors(int n)
{
    rd_kafka_mock_cluster_t *mc = tl_kafka_mock_cluster(world.mock);
    for (int i = 0; i < n; i++)
        rd_kafka_mock_push_request_errors(mc, 8, 1,
                                          RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
}

/* One message the pipeline dead-letters (it is not JSON): handled, so its
 * offset is committed, and no vector or trigger changes; then the commit
 * fails and is counted, bounded. */
static void failing_commit(const tl_stats *s)
{
    uint64_t errs = tl_counter_get(&s->kafka.commit_errors);
    commit_errors(3);
    CU_ASSERT_EQUAL_FATAL(tl_test_produce(world.brokers, IN_TOPIC, "", "x", 1), 0);
    int64_t until = tl_now_mono_ms() + 30000;
    while (tl_now_mono_ms() < until &&
           tl_counter_get(&s->kafka.commit_errors) == errs)
        usleep(20000);
    CU_ASSERT(tl_counter_get(&s->kafka.commit_errors) > errs);
}

/* A commit that fails is sent again: the input goes quiet right after, so
 * nothing else would ever move the group's committed offsets to the end
 * (an asynchronous commit that is not sent again leaves them behind for
 * good).  Then again right before stopping: the stop waits for the
 * commits and sends the failed one again. */
static void test_commit_resent(void)
{
    if (!world.mock) {
        tl_test_skip("failing offset commits", "needs the mock's injected errors");
        return;
    }
    member *m = member_start("stop", "t_stop", world.redis->url, "stop:");
    const tl_stats *s = tl_pipeline_stats(m->p);
    wait_assigned(m);
    failing_commit(s);
    CU_ASSERT(tl_test_wait_drained(world.brokers, "stop", IN_TOPIC, 20000));
    failing_commit(s);
    member_stop(m);
    CU_ASSERT(tl_test_wait_drained(world.brokers, "stop", IN_TOPIC, 1000));
}

/* A fatal error of the idempotent producer (the mock answers a Produce
 * request with OUT_OF_ORDER_SEQUENCE_NUMBER for the head-of-line batch,
 * which librdkafka 2.0.2 makes fatal: rdkafka_request.c,
 * rd_kafka_handle_idempotent_Produce_error) ends tailord with its message
 * and exit 2, not a hang or a log line.  tailord, not a pipeline in this
 * process: after that error, librdkafka 2.0.2 can hang destroying the
 * consumer, which tailord bounds (exit within 30 s anyway).  Last: the
 * mock is not the same afterwards. */
static void test_fatal_error(void)
{
    if (!world.mock) {
        tl_test_skip("a fatal producer error", "needs the mock's injected errors");
        return;
    }
    tl_config *cfg = load_config("fatal", "t_stop", world.redis->url, "fatal:");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    char path[600], log[600];
    snprintf(path, sizeof path, "%s/fatal.yaml", world.tmp);
    snprintf(log, sizeof log, "%s/fatal.log", world.tmp);
    tl_config_free(cfg);
    pid_t pid = tl_test_start_tailord(path, log);
    CU_ASSERT_FATAL(pid > 0);
    wait_progress("fatal", 30000);
    rd_kafka_mock_push_request_errors(tl_kafka_mock_cluster(world.mock), 0, 1,
                                      RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    int rc = tl_test_wait(pid, 90000);
    if (rc < 0) tl_test_stop(pid, SIGKILL, 5000);
    printf("tailord exited %d ", rc);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT(tl_test_log_count(log, "kafka producer fatal error") >= 1);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("pipeline in process", suite_init, suite_clean);
    CU_add_test(s, "produce two rounds of the slice", test_produce);
    CU_add_test(s, "a clean pass", test_clean_pass);
    CU_add_test(s, "stopped and started mid-stream", test_start_stop);
    CU_add_test(s, "members join and leave (cooperative)", test_rebalance);
    CU_add_test(s, "redis down, a member comes and goes, redis back",
                test_redis_down_revocation);
    CU_add_test(s, "failed offset commits are sent again", test_commit_resent);
    CU_add_test(s, "a fatal producer error stops the run", test_fatal_error);
    return tl_test_run();
}
