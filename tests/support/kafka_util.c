#include "kafka_util.h"

#include <CUnit/Basic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "kafka.h"
#include "redis_server.h"
#include "testutil.h"

int tl_test_world_start(tl_test_world *w, int partitions, const char *in,
                        const char *out, const char *dlq)
{
    char err[1024];
    memset(w, 0, sizeof *w);
    w->tmp = tl_test_tmpdir();
    w->redis = tl_redis_server_start(NULL, err, sizeof err);
    if (!w->redis) goto fail;
    w->mock = tl_kafka_mock_new(NULL, 1, partitions, err, sizeof err);
    if (!w->mock || tl_kafka_mock_topic(w->mock, in, partitions, err, sizeof err) ||
        tl_kafka_mock_topic(w->mock, out, partitions, err, sizeof err) ||
        tl_kafka_mock_topic(w->mock, dlq, 1, err, sizeof err))
        goto fail;
    w->brokers = tl_kafka_mock_bootstraps(w->mock);
    setenv("TAILOR_KAFKA_BROKERS", w->brokers, 1);
    setenv("TAILOR_REDIS_URL", w->redis->url, 1);
    return 0;
fail:
    fprintf(stderr, "test world: %s\n", err);
    return -1;
}

void tl_test_world_stop(tl_test_world *w)
{
    tl_kafka_mock_free(w->mock);
    tl_redis_server_stop(w->redis);
    tl_test_rmdir(w->tmp);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}

static rd_kafka_t *consumer(const char *brokers, const char *group)
{
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, e, sizeof e);
    rd_kafka_conf_set(conf, "group.id", group, e, sizeof e);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", e, sizeof e);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", e, sizeof e);
    return rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
}

static int partitions_of(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    int n = -1;
    if (!rd_kafka_metadata(rk, 0, rkt, &md, 10000)) {
        n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return n;
}

size_t tl_test_consume_all(const char *brokers, const char *topic,
                           tl_test_msg_fn fn, void *ud)
{
    rd_kafka_t *rk = consumer(brokers, "test-reader");
    int np = partitions_of(rk, topic);
    CU_ASSERT_FATAL(np > 0);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    int64_t *hi = calloc((size_t)np, sizeof *hi);
    int64_t *next = calloc((size_t)np, sizeof *next);
    int remaining = 0;
    for (int p = 0; p < np; p++) {
        int64_t lo;
        rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi[p], 10000);
        next[p] = lo;
        if (hi[p] > lo) {
            rd_kafka_topic_partition_list_add(l, topic, p)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
            remaining++;
        }
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    size_t n = 0;
    int64_t deadline = tl_now_mono_ms() + 60000;
    /* Done per partition when its end offset is reached, whatever number of
     * end-of-partition events arrive (a failed fetch can repeat them). */
    while (remaining > 0 && tl_now_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        if (!m->err && m->partition >= 0 && m->partition < np &&
            m->offset >= next[m->partition]) {
            fn(ud, m);
            n++;
            int32_t p = m->partition;
            int was = next[p] < hi[p];
            next[p] = m->offset + 1;
            if (was && next[p] >= hi[p]) remaining--;
        }
        rd_kafka_message_destroy(m);
    }
    CU_ASSERT(remaining == 0);
    free(hi);
    free(next);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

static int drained(const char *brokers, const char *group, const char *topic)
{
    rd_kafka_t *rk = consumer(brokers, group);
    int np = partitions_of(rk, topic), ok = np > 0;
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(np > 0 ? np : 1);
    for (int p = 0; p < np; p++) rd_kafka_topic_partition_list_add(l, topic, p);
    if (ok && rd_kafka_committed(rk, l, 10000)) ok = 0;
    for (int p = 0; ok && p < np; p++) {
        int64_t lo, hi;
        rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
        if (hi > lo && l->elems[p].offset != hi) ok = 0;
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return ok;
}

int64_t tl_test_committed(const char *brokers, const char *group,
                          const char *topic)
{
    rd_kafka_t *rk = consumer(brokers, group);
    int np = partitions_of(rk, topic);
    int64_t total = np > 0 ? 0 : -1;
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(np > 0 ? np : 1);
    for (int p = 0; p < np; p++) rd_kafka_topic_partition_list_add(l, topic, p);
    if (np > 0 && rd_kafka_committed(rk, l, 10000)) total = -1;
    for (int p = 0; total >= 0 && p < np; p++)
        if (l->elems[p].offset > 0) total += l->elems[p].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return total;
}

int tl_test_wait_drained(const char *brokers, const char *group,
                         const char *topic, int timeout_ms)
{
    int64_t deadline = tl_now_mono_ms() + timeout_ms;
    while (tl_now_mono_ms() < deadline) {
        if (drained(brokers, group, topic)) return 1;
        usleep(300000);
    }
    return 0;
}

int tl_test_produce(const char *brokers, const char *topic, const char *key,
                    const void *val, size_t len)
{
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!rk) return -1;
    int rc = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                               RD_KAFKA_V_KEY((void *)key, strlen(key)),
                               RD_KAFKA_V_VALUE((void *)val, len),
                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                               RD_KAFKA_V_END) != 0;
    if (rd_kafka_flush(rk, 10000)) rc = -1;
    rd_kafka_destroy(rk);
    return rc;
}

pid_t tl_test_start_tailord(const char *config, const char *log_path)
{
    char *argv[] = {strdup(tl_test_bin("tailord")), "-c", (char *)config, NULL};
    pid_t pid = tl_test_spawn(argv, NULL, log_path);
    free(argv[0]);
    return pid;
}

int tl_test_tailord_pass(const char *brokers, const char *config,
                         const char *log_path, const char *group,
                         const char *topic, int timeout_ms)
{
    pid_t pid = tl_test_start_tailord(config, log_path);
    CU_ASSERT_FATAL(pid > 0);
    int drained = tl_test_wait_drained(brokers, group, topic, timeout_ms);
    CU_ASSERT(drained);
    int st = tl_test_stop(pid, SIGTERM, 60000);
    CU_ASSERT_EQUAL(st, 0);
    return drained && st == 0 ? 0 : -1;
}

int tl_test_run_tool(char *const argv[])
{
    pid_t pid = tl_test_spawn(argv, NULL, NULL);
    return pid > 0 ? tl_test_wait(pid, 120000) : -1;
}
