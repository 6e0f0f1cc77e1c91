/*
 * tailord on a Redis Cluster whose slots move mid-run: the real data slice
 * (replayed ROUNDS times, customer ids suffixed per round) goes through
 * tailord twice, once on a single redis-server (the clean pass) and once on
 * a private three-master Redis Cluster configured with `redis.cluster`,
 * while `redis-cli --cluster reshard` moves thousands of slots (and so keys
 * being read and written) from master to master.  Afterwards the cluster
 * holds exactly the clean pass's keys (gathered with SCAN on every master),
 * every vector equals the clean one field for field, the triggers equal
 * the clean pass's set with no duplicate, and `tailorctl show` reads a
 * customer through the cluster as it reads it from the single server.
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
#include "../support/slice.h"
#include "../support/testutil.h"
#include "common.h"
#include "kafka.h"

#define IN_TOPIC "interactions"
#define PARTS 8
#define ROUNDS 4
#define NODES 3

static tl_test_world world;
static tl_redis_cluster *cl;
static char cfg_clean[512], cfg_cluster[512];
static size_t nproduced;
static int reshards; /* slot moves that finished while tailord ran */

static const char *config_fmt =
    "kafka:\n"
    "  group: %s\n"
    "  input: [" IN_TOPIC "]\n"
    "  output: %s\n"
    "  dead_letter: dlq\n"
    "  batch_size: %d\n"
    "  batch_timeout: 20ms\n"
    "redis:\n"
    "  prefix: '%s'\n"
    "%s"
    "log:\n"
    "  level: warn\n"
    "features:\n"
    "  - name: buys\n"
    "    kind: count\n"
    "    where: 'type == \"purchase\"'\n"
    "  - name: total\n"
    "    kind: sum\n"
    "    field: amount\n"
    "  - name: seen_7d\n"
    "    kind: window_count\n"
    "    window: 7d\n"
    "  - name: depts\n"
    "    kind: top_k\n"
    "    field: 'attrs[\"department\"]'\n"
    "    k: 2\n"
    "  - name: last_items\n"
    "    kind: last_n\n"
    "    field: item\n"
    "    n: 2\n"
    "triggers:\n"
    "  - name: regular\n"
    "    if: 'seen_7d >= 6'\n"
    "    cooldown: 2d\n"
    "    emit: { message: '{{seen_7d}}' }\n"
    "  - name: spender\n"
    "    if: 'total >= 250'\n"
    "    mode: edge\n"
    "    emit: { message: '{{total}}' }\n";

static int write_config(const char *path, const char *group, const char *out,
                        int batch_size, const char *prefix, const char *extra)
{
    return tl_test_write_filef(path, config_fmt, group, out, batch_size, prefix, extra);
}

static int suite_init(void)
{
    char err[1024];
    if (tl_test_world_start(&world, PARTS, IN_TOPIC, "triggers_clean", "dlq"))
        return 1;
    if (tl_test_world_topic(&world, "triggers_cluster", 4)) return 1;
    cl = tl_redis_cluster_start(NODES, err, sizeof err);
    if (!cl) {
        fprintf(stderr, "cluster: %s\n", err);
        return 1;
    }
    /* The block list form of redis.cluster, as an operator writes it. */
    char seeds[512];
    int o = snprintf(seeds, sizeof seeds, "  cluster:\n");
    for (size_t i = 0; i < NODES; i++)
        o += snprintf(seeds + o, sizeof seeds - (size_t)o,
                      "    - 127.0.0.1:%d\n", cl->node[i]->port);
    snprintf(cfg_clean, sizeof cfg_clean, "%s/clean.yaml", world.tmp);
    snprintf(cfg_cluster, sizeof cfg_cluster, "%s/cluster.yaml", world.tmp);
    /* Small batches in the cluster pass, each flushed (flush_interval 0):
     * on a real broker a pass of 1,000-event batches ends before one
     * reshard does, and with the default interval the writes would be
     * fewer during the moves.  The state must not depend on either. */
    o += snprintf(seeds + o, sizeof seeds - (size_t)o, "  flush_interval: 0\n");
    if (write_config(cfg_clean, "clean", "triggers_clean", 1000, "clean:", "") ||
        write_config(cfg_cluster, "cluster", "triggers_cluster", 100, "cl:",
                     seeds))
        return 1;
    return 0;
}

static int suite_clean(void)
{
    tl_redis_cluster_stop(cl);
    tl_test_world_stop(&world);
    return 0;
}

static void test_produce(void)
{
    nproduced = tl_test_produce_slice(world.brokers, IN_TOPIC, 0, ROUNDS);
    CU_ASSERT(nproduced >= 70000);
    printf("produced %zu events\n", nproduced);
}

static void test_clean_pass(void)
{
    char log[600];
    snprintf(log, sizeof log, "%s/clean.log", world.tmp);
    int64_t t0 = tl_now_mono_ms();
    pid_t pid = tl_test_start_tailord(cfg_clean, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(tl_test_wait_drained(world.brokers, "clean", IN_TOPIC, 600000));
    CU_ASSERT_EQUAL(tl_test_stop(pid, SIGTERM, 60000), 0);
    printf("clean pass (single redis-server): %lld ms\n",
           (long long)(tl_now_mono_ms() - t0));
}

/* redis-cli --cluster reshard: `slots` slots from node `from` to node `to`,
 * keys and all (MIGRATE), as an operator moves them. */
static int reshard(size_t from, size_t to, int slots)
{
    char *fid = tl_redis_cluster_node_id(cl, from),
         *tid = tl_redis_cluster_node_id(cl, to);
    char addr[32], n[16];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", cl->node[0]->port);
    snprintf(n, sizeof n, "%d", slots);
    const char *cli = getenv("TAILOR_REDIS_CLI");
    char *argv[] = {(char *)(cli && *cli ? cli : "redis-cli"), "--cluster",
                    "reshard", addr, "--cluster-from", fid, "--cluster-to",
                    tid, "--cluster-slots", n, "--cluster-yes", NULL};
    char log[600];
    snprintf(log, sizeof log, "%s/reshard.log", world.tmp);
    pid_t pid = fid && tid ? tl_test_spawn(argv, log, log) : -1;
    int rc = pid > 0 ? tl_test_wait(pid, 120000) : -1;
    if (rc == -1 && pid > 0) tl_test_stop(pid, SIGKILL, 5000);
    free(fid);
    free(tid);
    return rc;
}

/* Slots keep moving while tailord loads and flushes: each reshard starts
 * once the pass has committed more, and they go on until it is drained. */
static void test_cluster_pass(void)
{
    char log[600], err[256];
    snprintf(log, sizeof log, "%s/cluster.log", world.tmp);
    /* The world points TAILOR_REDIS_URL at the single server; this pass
     * takes its Redis from the configuration's redis.cluster. */
    unsetenv("TAILOR_REDIS_URL");
    int64_t t0 = tl_now_mono_ms();
    pid_t pid = tl_test_start_tailord(cfg_cluster, log);
    setenv("TAILOR_REDIS_URL", world.redis->url, 1);
    CU_ASSERT_FATAL(pid > 0);

    /* Small moves, so that several finish within the pass on a fast
     * machine and at least one on a slow one (moves of 500-900 slots took
     * a second or two each, and the tailord of the fast defaults drained
     * the pass within the first one). */
    static const struct { size_t from, to; int slots; } moves[] = {
        {0, 1, 150}, {1, 2, 200}, {2, 0, 150}, {0, 2, 100}, {1, 0, 200},
        {2, 1, 150}, {0, 1, 100}, {1, 2, 150}};
    for (size_t m = 0; m < sizeof moves / sizeof *moves; m++) {
        int64_t before = tl_test_committed(world.brokers, "cluster", IN_TOPIC);
        if (before >= (int64_t)nproduced) break;
        int64_t until = tl_now_mono_ms() + 30000;
        while (tl_now_mono_ms() < until &&
               tl_test_committed(world.brokers, "cluster", IN_TOPIC) <= before)
            usleep(20000);
        CU_ASSERT_EQUAL(reshard(moves[m].from, moves[m].to, moves[m].slots), 0);
        int64_t after = tl_test_committed(world.brokers, "cluster", IN_TOPIC);
        printf("reshard %zu->%zu of %d slots: committed %lld -> %lld of %zu\n",
               moves[m].from, moves[m].to, moves[m].slots, (long long)before,
               (long long)after, nproduced);
        if (after < (int64_t)nproduced) reshards++;
    }
    CU_ASSERT(tl_test_wait_drained(world.brokers, "cluster", IN_TOPIC, 600000));
    CU_ASSERT_EQUAL(tl_test_stop(pid, SIGTERM, 60000), 0);
    printf("cluster pass: %lld ms, %d reshards finished mid-run\n",
           (long long)(tl_now_mono_ms() - t0), reshards);
    /* At least one whole reshard happened while events were flowing. */
    CU_ASSERT(reshards >= 1);
    CU_ASSERT_EQUAL(tl_redis_cluster_wait_ok(cl, 30000, err, sizeof err), 0);
}

/* Every key of the clean pass, and no other, is in the cluster (gathered
 * with SCAN on every master), with the same hash field for field. */
static void test_vectors_equal(void)
{
    redisContext *c = redisConnect("127.0.0.1", world.redis->port);
    CU_ASSERT_FATAL(c && !c->err);
    size_t nclean = 0, ncl = 0;
    char **clean = tl_test_scan_keys(c, "clean:*", &nclean);
    char **ck = tl_redis_cluster_keys(cl, "cl:*", &ncl);
    printf("keys: %zu in the clean pass, %zu in the cluster\n", nclean, ncl);
    CU_ASSERT(nclean > 1000);
    /* Same count, and every clean key has its non-empty counterpart: the
     * same set. */
    CU_ASSERT_EQUAL(nclean, ncl);
    size_t differ = 0, missing = 0, per_node[NODES] = {0};
    for (size_t i = 0; i < nclean; i++) {
        char key[256];
        snprintf(key, sizeof key, "cl:%s", clean[i] + strlen("clean:"));
        char *x = tl_test_hash_text(c, clean[i]);
        char *y = tl_redis_cluster_hash_text(cl, key);
        int owner = tl_redis_cluster_owner(cl, key);
        if (owner >= 0) per_node[owner]++;
        if (!y || !*y) missing++;
        else if (!x || strcmp(x, y)) {
            if (differ++ < 3)
                fprintf(stderr, "%s differs:\n--- clean\n%s--- cluster\n%s",
                        key, x ? x : "(error)\n", y);
        }
        free(x);
        free(y);
    }
    printf("cluster keys per master: %zu %zu %zu\n", per_node[0], per_node[1],
           per_node[2]);
    for (size_t j = 0; j < NODES; j++) CU_ASSERT(per_node[j] > 0);
    CU_ASSERT_EQUAL(missing, 0);
    CU_ASSERT_EQUAL(differ, 0);
    tl_test_free_keys(clean, nclean);
    tl_test_free_keys(ck, ncl);
    redisFree(c);
}

static void test_trigger_ids_equal(void)
{
    size_t raw = 0;
    tl_test_compare_trigger_ids(world.brokers, "triggers_clean",
                                "triggers_cluster", &raw);
    CU_ASSERT(raw > 0);
}

/* Runs tailorctl with argv[1..]; its stdout (malloc'd) or NULL. */
static char *ctl_output(char *const argv[], const char *name)
{
    char out[600], errp[600];
    snprintf(out, sizeof out, "%s/%s.out", world.tmp, name);
    snprintf(errp, sizeof errp, "%s/%s.err", world.tmp, name);
    pid_t pid = tl_test_spawn(argv, out, errp);
    if (pid <= 0 || tl_test_wait(pid, 30000) != 0) return NULL;
    FILE *f = fopen(out, "r");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* tailorctl show: through the cluster (its config), the same customer as
 * from the single server. */
static void test_tailorctl_show(void)
{
    size_t n = 0;
    char **ids = NULL;
    n = tl_test_slice_customers(&ids);
    CU_ASSERT_FATAL(n > 0);
    char id[96];
    snprintf(id, sizeof id, "%s-r1", ids[n / 2]);
    tl_test_free_ids(ids, n);
    char bin[4096];
    snprintf(bin, sizeof bin, "%s", tl_test_bin("tailorctl"));
    unsetenv("TAILOR_REDIS_URL");
    char *a1[] = {bin, "show", "-c", cfg_cluster, "--all", id, NULL};
    char *via_cluster = ctl_output(a1, "show_cluster");
    char *a2[] = {bin, "show", "-c", cfg_clean, "-r", world.redis->url,
                  "--all", id, NULL};
    char *via_single = ctl_output(a2, "show_single");
    setenv("TAILOR_REDIS_URL", world.redis->url, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(via_cluster);
    CU_ASSERT_PTR_NOT_NULL_FATAL(via_single);
    CU_ASSERT(strstr(via_cluster, "buys") != NULL);
    /* The first line names the key, whose prefix differs. */
    const char *c1 = strchr(via_cluster, '\n'), *s1 = strchr(via_single, '\n');
    CU_ASSERT_FATAL(c1 && s1);
    if (strcmp(c1, s1))
        fprintf(stderr, "cluster:\n%s\nsingle:\n%s\n", via_cluster, via_single);
    CU_ASSERT_STRING_EQUAL(c1, s1);
    free(via_cluster);
    free(via_single);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("redis cluster end to end", suite_init,
                               suite_clean);
    CU_add_test(s, "produce the slice 4 times", test_produce);
    CU_add_test(s, "a clean pass on a single redis-server", test_clean_pass);
    CU_add_test(s, "a pass on a 3-master cluster, slots resharded mid-run",
                test_cluster_pass);
    CU_add_test(s, "same keys, every vector equals the clean pass",
                test_vectors_equal);
    CU_add_test(s, "trigger ids equal the clean pass's, none twice",
                test_trigger_ids_equal);
    CU_add_test(s, "tailorctl show reads through the cluster",
                test_tailorctl_show);
    return tl_test_run();
}
