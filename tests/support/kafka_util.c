#include "kafka_util.h"

#include <CUnit/Basic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "kafka.h"
#include "redis_server.h"
#include "testutil.h"

const char *tl_test_real_kafka(void)
{
    const char *d = getenv("TAILOR_TEST_KAFKA");
    return d && *d ? d : NULL;
}

const char *tl_test_kafka_state(const char *key, char *buf, size_t size)
{
    const char *dir = tl_test_real_kafka();
    if (!dir) return NULL;
    char path[1024], line[512];
    snprintf(path, sizeof path, "%s/state", dir);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t klen = strlen(key);
    const char *found = NULL;
    while (!found && fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == '=') {
            line[strcspn(line, "\n")] = '\0';
            snprintf(buf, size, "%s", line + klen + 1);
            found = buf;
        }
    fclose(f);
    return found;
}

void tl_test_skip(const char *what, const char *why)
{
    printf("\n  SKIPPED on the %s: %s (%s)\n",
           tl_test_real_kafka() ? "real broker" : "mock cluster", what, why);
}

static rd_kafka_t *admin(const char *brokers)
{
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, e, sizeof e);
    return rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
}

/* Waits for one admin result on q (bounded); the event, or NULL. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (ev && rd_kafka_event_error(ev)) {
        fprintf(stderr, "kafka admin: %s\n", rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

/* Topics on the broker other than Kafka's own (names starting "__"). */
static int user_topics(rd_kafka_t *rk, char ***names)
{
    const struct rd_kafka_metadata *md;
    *names = NULL;
    if (rd_kafka_metadata(rk, 1, NULL, &md, 10000)) return -1;
    int n = 0;
    *names = calloc((size_t)md->topic_cnt + 1, sizeof **names);
    for (int i = 0; i < md->topic_cnt; i++)
        if (strncmp(md->topics[i].topic, "__", 2))
            (*names)[n++] = strdup(md->topics[i].topic);
    rd_kafka_metadata_destroy(md);
    return n;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Deletes the n topics `names` and waits (30 s at most) until no user
 * topic of theirs is left in the metadata; 0 or -1. */
static int delete_topics(rd_kafka_t *rk, rd_kafka_queue_t *q, char **names,
                         int n)
{
    int rc = 0;
    if (n > 0) {
        rd_kafka_DeleteTopic_t **dt = calloc((size_t)n, sizeof *dt);
        for (int i = 0; i < n; i++) dt[i] = rd_kafka_DeleteTopic_new(names[i]);
        rd_kafka_DeleteTopics(rk, dt, (size_t)n, NULL, q);
        rd_kafka_event_t *ev = admin_wait(q);
        if (!ev) rc = -1;
        else rd_kafka_event_destroy(ev);
        rd_kafka_DeleteTopic_destroy_array(dt, (size_t)n);
        free(dt);
    }
    int64_t deadline = tl_now_mono_ms() + 30000;
    char **left;
    int m;
    while (!rc && (m = user_topics(rk, &left)) != 0) {
        int still = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) still += !strcmp(left[i], names[j]);
        free_names(left, m > 0 ? m : 0);
        if (!still) return 0;
        if (tl_now_mono_ms() > deadline) {
            fprintf(stderr, "kafka: %d topic(s) still there 30 s after deletion\n", still);
            return -1;
        }
        usleep(200000);
    }
    if (!rc) free_names(left, 0);
    return rc;
}

/* Deletes every consumer group and user topic, waiting until the topics
 * are gone from the metadata. */
static int wipe_broker(const char *brokers)
{
    rd_kafka_t *rk = admin(brokers);
    if (!rk) return -1;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    int rc = 0;
    const struct rd_kafka_group_list *gl;
    if (!rd_kafka_list_groups(rk, NULL, &gl, 10000)) {
        if (gl->group_cnt > 0) {
            rd_kafka_DeleteGroup_t **dg =
                calloc((size_t)gl->group_cnt, sizeof *dg);
            for (int i = 0; i < gl->group_cnt; i++)
                dg[i] = rd_kafka_DeleteGroup_new(gl->groups[i].group);
            rd_kafka_DeleteGroups(rk, dg, (size_t)gl->group_cnt, NULL, q);
            rd_kafka_event_t *ev = admin_wait(q);
            if (ev) rd_kafka_event_destroy(ev);
            rd_kafka_DeleteGroup_destroy_array(dg, (size_t)gl->group_cnt);
            free(dg);
        }
        rd_kafka_group_list_destroy(gl);
    }
    char **names;
    int n = user_topics(rk, &names);
    rc = delete_topics(rk, q, names, n);
    free_names(names, n > 0 ? n : 0);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

/* Creates topic on a real broker, retrying while a deletion of the same
 * name is still under way, then waits until every partition has a leader. */
static int real_topic(const char *brokers, const char *topic, int partitions)
{
    char e[512];
    rd_kafka_t *rk = admin(brokers);
    if (!rk) return -1;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    int rc = -1;
    int64_t deadline = tl_now_mono_ms() + 30000;
    while (rc && tl_now_mono_ms() < deadline) {
        rd_kafka_NewTopic_t *nt =
            rd_kafka_NewTopic_new(topic, partitions, 1, e, sizeof e);
        rd_kafka_NewTopic_set_config(nt, "max.message.bytes", "16777216");
        rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
        rd_kafka_NewTopic_destroy(nt);
        rd_kafka_event_t *ev = admin_wait(q);
        if (!ev) break;
        size_t cnt;
        const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(
            rd_kafka_event_CreateTopics_result(ev), &cnt);
        rd_kafka_resp_err_t te = cnt ? rd_kafka_topic_result_error(res[0]) : 0;
        if (!te) rc = 0;
        else {
            snprintf(e, sizeof e, "%s", rd_kafka_topic_result_error_string(res[0]));
            usleep(300000);
        }
        rd_kafka_event_destroy(ev);
    }
    while (!rc) { /* leaders elected: metadata names one for each partition */
        const struct rd_kafka_metadata *md;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        int ok = 0;
        if (!rd_kafka_metadata(rk, 0, rkt, &md, 5000)) {
            ok = md->topic_cnt == 1 && !md->topics[0].err &&
                 md->topics[0].partition_cnt == partitions;
            for (int p = 0; ok && p < md->topics[0].partition_cnt; p++)
                if (md->topics[0].partitions[p].leader < 0) ok = 0;
            rd_kafka_metadata_destroy(md);
        }
        rd_kafka_topic_destroy(rkt);
        if (ok) break;
        if (tl_now_mono_ms() > deadline) {
            snprintf(e, sizeof e, "no leader for every partition within 30 s");
            rc = -1;
        }
        usleep(100000);
    }
    if (rc) fprintf(stderr, "kafka: cannot create topic %s: %s\n", topic, e);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

int tl_test_world_topic(tl_test_world *w, const char *topic, int partitions)
{
    if (!w->mock) return real_topic(w->brokers, topic, partitions);
    char err[512];
    if (tl_kafka_mock_topic(w->mock, topic, partitions, err, sizeof err)) {
        fprintf(stderr, "test world: %s\n", err);
        return -1;
    }
    return 0;
}

int tl_test_kafka_crash_restart(int down_ms)
{
    char pid[32];
    const char *dir = tl_test_real_kafka();
    if (!dir || !tl_test_kafka_state("pid", pid, sizeof pid)) return -1;
    pid_t p = (pid_t)atol(pid);
    if (p <= 1 || kill(p, SIGKILL)) return -1;
    /* Not our child (kafka-up.sh started it): wait until it is gone. */
    for (int i = 0; i < 200 && kill(p, 0) == 0; i++) usleep(50000);
    usleep((useconds_t)down_ms * 1000);
    char *argv[] = {(char *)"bash", strdup(tl_test_src("tests/kafka/kafka-up.sh")),
                    (char *)dir, NULL};
    int rc = tl_test_run_tool(argv);
    free(argv[1]);
    return rc == 0 ? 0 : -1;
}

int tl_test_world_start(tl_test_world *w, int partitions, const char *in,
                        const char *out, const char *dlq)
{
    char err[1024] = "";
    memset(w, 0, sizeof *w);
    w->tmp = tl_test_tmpdir();
    w->redis = tl_redis_server_start(NULL, err, sizeof err);
    if (!w->redis) goto fail;
    if (tl_test_real_kafka()) {
        if (!tl_test_kafka_state("bootstrap", w->real_brokers,
                                 sizeof w->real_brokers)) {
            snprintf(err, sizeof err, "no bootstrap in %s/state (TAILOR_TEST_KAFKA)",
                     tl_test_real_kafka());
            goto fail;
        }
        w->brokers = w->real_brokers;
        printf("\n  (real Apache Kafka at %s)\n", w->brokers);
        if (wipe_broker(w->brokers)) {
            snprintf(err, sizeof err, "cannot empty the broker at %s", w->brokers);
            goto fail;
        }
    } else {
        w->mock = tl_kafka_mock_new(NULL, 1, partitions, err, sizeof err);
        if (!w->mock) goto fail;
        w->brokers = tl_kafka_mock_bootstraps(w->mock);
    }
    if (tl_test_world_topic(w, in, partitions) ||
        tl_test_world_topic(w, out, partitions) ||
        tl_test_world_topic(w, dlq, 1))
        goto fail;
    setenv("TAILOR_KAFKA_BROKERS", w->brokers, 1);
    setenv("TAILOR_REDIS_URL", w->redis->url, 1);
    return 0;
fail:
    if (err[0]) fprintf(stderr, "test world: %s\n", err);
    return -1;
}

int tl_test_world_renew(tl_test_world *w, int partitions, const char *in,
                        const char *out, const char *dlq)
{
    char err[1024] = "";
    if (w->mock) {
        tl_kafka_mock_free(w->mock);
        w->mock = tl_kafka_mock_new(NULL, 1, partitions, err, sizeof err);
        if (!w->mock) {
            fprintf(stderr, "test world: %s\n", err);
            return -1;
        }
        w->brokers = tl_kafka_mock_bootstraps(w->mock);
        setenv("TAILOR_KAFKA_BROKERS", w->brokers, 1);
        return tl_test_world_topic(w, in, partitions) ||
                       tl_test_world_topic(w, out, partitions) ||
                       tl_test_world_topic(w, dlq, 1)
                   ? -1
                   : 0;
    }
    rd_kafka_t *rk = admin(w->brokers);
    if (!rk) return -1;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    char *names[] = {(char *)in};
    int rc = delete_topics(rk, q, names, 1);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc ? rc : tl_test_world_topic(w, in, partitions);
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

const char *tl_test_header(const rd_kafka_message_t *m, const char *name,
                           size_t *len)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    if (rd_kafka_message_headers(m, &h) ||
        rd_kafka_header_get_last(h, name, &v, len))
        return NULL;
    return v;
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

void tl_test_wait_progress(const char *brokers, const char *group,
                           const char *topic, int64_t timeout_ms)
{
    int64_t before = tl_test_committed(brokers, group, topic);
    int64_t until = tl_now_mono_ms() + timeout_ms;
    while (tl_now_mono_ms() < until &&
           tl_test_committed(brokers, group, topic) <= before)
        usleep(20000);
}
