/*
 * bench — `make bench`: tailord against its same-run ceilings.
 *
 *   1. Starts a private redis-server and a broker on loopback (librdkafka's
 *      mock cluster, hosted in this process; or $BENCH_BOOTSTRAP, a real
 *      broker, where it creates fresh topics).
 *   2. Replays the real datasets of ../shared/data (both files merged in
 *      time order) in rounds until at least $BENCH_EVENTS (1,000,000) events:
 *      round r suffixes every customer and event id with "~r" and shifts
 *      every ts by r times the data's span, so each round keeps the real
 *      customer and item distribution.  Encoded to Avro by the project's
 *      encoder, keyed by customer, into bench.events.
 *   3. Kafka ceiling: a plain consumer reads bench.events, no decoding.
 *   4. tailord (bench/bench.yaml) consumes the backlog under an allocation
 *      counter (bench/alloc_preload.so); CPU, peak RSS, Redis commands.
 *   5. Redis ceiling: the same number of vector writes, of a real vector's
 *      fields and values, as pipelined HSETs in batches of tailord's size.
 *   6. In process: allocations of the hot path (decode, features, rules,
 *      trigger encoding) per event, and heap bytes per cached customer.
 *   7. Latency: a fresh tailord; one more round produced at a paced
 *      $BENCH_RATE (20,000) events/s for $BENCH_PACED_SECONDS (15) into
 *      bench.paced; each trigger's arrival at a consumer minus its cause
 *      event's produce time.
 *
 * Everything it starts is stopped by pid; it prints one table.
 */
#include <dirent.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "common.h"
#include "config.h"
#include "event.h"
#include "feature.h"
#include "kafka.h"
#include "rule.h"
#include "cache.h"
#include "trigger.h"

#include "../tests/support/alloc_count.h"
#include "../tests/support/redis_server.h"
#include "../tests/support/testutil.h"

#define T_EVENTS "bench.events"
#define T_PACED "bench.paced"
#define T_TRIGGERS "bench.triggers"
#define T_DLQ "bench.dlq"
/* The run with the shipped defaults (bench/defaults.yaml) writes here. */
#define T_TRIGGERS_DEFAULTS "bench.triggers.defaults"
#define GROUP_DEFAULTS "tailord-bench-defaults"
#define GROUP "tailord-bench"
/* The paced run's own group: joining the backlog run's group again made
 * the mock cluster rebalance it in the middle of the paced run. */
#define GROUP_PACED "tailord-bench-paced"
/* What one partition of the mock cluster may hold: it keeps 5 MiB and drops
 * the oldest message sets beyond, so the bench plans 3 MiB of records per
 * partition and checks afterwards that nothing was dropped. */
#define PART_BYTES (3u << 20)

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static struct {
    tl_redis_server *redis;
    tl_kafka_mock *mock;
    char *tmp;
    pid_t tailord;
} world;

static void cleanup(void)
{
    if (world.tailord > 0) tl_test_stop(world.tailord, SIGKILL, 5000);
    world.tailord = 0;
    tl_kafka_mock_free(world.mock);
    world.mock = NULL;
    tl_redis_server_stop(world.redis);
    world.redis = NULL;
    if (world.tmp) tl_test_rmdir(world.tmp);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    cleanup();
    exit(1);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "== ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* tailord's configuration: $BENCH_CONFIG, default bench/bench.yaml (its
 * topics and group must stay those of bench/bench.yaml). */
static const char *bench_config(void)
{
    const char *c = getenv("BENCH_CONFIG");
    return c && *c ? c : "bench/bench.yaml";
}

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

/* ------------------------------------------------------------------------
 * The dataset: both files, merged in time order
 */

typedef struct rec {
    tl_event ev;
    uint32_t seq; /* load order: ties in ts keep the files' order */
} rec;

typedef struct dataset {
    rec *r;
    size_t n, cap;
    tl_arena arena;
    int64_t tmin, tmax;
} dataset;

static void load_file(dataset *d, const char *path)
{
    gzFile f = gzopen(path, "rb");
    if (!f) die("cannot open %s: %s", path, strerror(errno));
    gzbuffer(f, 1 << 20);
    size_t lsz = 1 << 20;
    char *line = tl_xmalloc(lsz);
    while (gzgets(f, line, (int)lsz)) {
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        if (!len) continue;
        if (d->n == d->cap) {
            d->cap = d->cap ? d->cap * 2 : 1 << 16;
            d->r = tl_xrealloc(d->r, d->cap * sizeof *d->r);
        }
        char err[TL_ERRSZ];
        rec *r = &d->r[d->n];
        if (tl_event_from_json(line, len, &d->arena, &r->ev, err, sizeof err) !=
            TL_REJECT_NONE)
            die("%s: line %zu: %s", path, d->n + 1, err);
        r->seq = (uint32_t)d->n++;
    }
    gzclose(f);
    free(line);
}

static int rec_cmp(const void *a, const void *b)
{
    const rec *x = a, *y = b;
    if (x->ev.ts != y->ev.ts) return x->ev.ts < y->ev.ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void load_data(dataset *d, const char *dir)
{
    static const char *const files[] = {"online_retail_uci.jsonl.gz",
                                        "complete_journey_sample.jsonl.gz"};
    memset(d, 0, sizeof *d);
    tl_arena_init(&d->arena, 16 << 20);
    for (size_t i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        load_file(d, path);
    }
    qsort(d->r, d->n, sizeof *d->r, rec_cmp);
    d->tmin = d->r[0].ev.ts;
    d->tmax = d->r[d->n - 1].ev.ts;
}

/* Round r of event i: ids suffixed "~r" (round 0 keeps the real ones), ts
 * shifted by r spans (plus a day, so rounds never overlap). */
typedef struct roundbuf {
    char cid[TL_EVENT_MAX_CUSTOMER_ID + 16];
    char eid[512];
} roundbuf;

static void round_event(const dataset *d, size_t i, int round, tl_event *ev,
                        roundbuf *b)
{
    *ev = d->r[i].ev;
    if (round == 0) return;
    int n = snprintf(b->cid, sizeof b->cid, "%s~%d", ev->customer_id, round);
    ev->customer_id = b->cid;
    ev->customer_id_len = (size_t)n;
    snprintf(b->eid, sizeof b->eid, "%s~%d", ev->event_id, round);
    ev->event_id = b->eid;
    ev->ts += (int64_t)round * (d->tmax - d->tmin + 86400000);
}

/* event_id -> index, to find a trigger's cause among the paced events. */
typedef struct idmap {
    uint32_t *slot; /* index + 1; 0: empty */
    size_t mask;
} idmap;

static void idmap_build(idmap *m, const dataset *d)
{
    size_t cap = 1;
    while (cap < d->n * 2) cap <<= 1;
    m->slot = tl_xcalloc(cap, sizeof *m->slot);
    m->mask = cap - 1;
    for (size_t i = 0; i < d->n; i++) {
        const char *id = d->r[i].ev.event_id;
        size_t h = (size_t)tl_fnv1a(TL_FNV_OFFSET, id, strlen(id)) & m->mask;
        while (m->slot[h]) h = (h + 1) & m->mask;
        m->slot[h] = (uint32_t)i + 1;
    }
}

static long idmap_find(const idmap *m, const dataset *d, const char *id,
                       size_t len)
{
    size_t h = (size_t)tl_fnv1a(TL_FNV_OFFSET, id, len) & m->mask;
    for (; m->slot[h]; h = (h + 1) & m->mask) {
        const char *c = d->r[m->slot[h] - 1].ev.event_id;
        if (strlen(c) == len && memcmp(c, id, len) == 0)
            return (long)m->slot[h] - 1;
    }
    return -1;
}

/* ------------------------------------------------------------------------
 * Kafka
 */

static atomic_ulong delivery_errors;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *ud)
{
    (void)rk, (void)ud;
    if (m->err) atomic_fetch_add(&delivery_errors, 1);
}

static void conf_set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char e[512];
    if (rd_kafka_conf_set(c, k, v, e, sizeof e) != RD_KAFKA_CONF_OK)
        die("librdkafka %s=%s: %s", k, v, e);
}

static rd_kafka_t *kafka_new(rd_kafka_type_t type, const char *brokers,
                             const char *group, const char *linger)
{
    char e[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    conf_set(c, "bootstrap.servers", brokers);
    if (type == RD_KAFKA_PRODUCER) {
        conf_set(c, "linger.ms", linger);
        conf_set(c, "queue.buffering.max.messages", "1000000");
        conf_set(c, "queue.buffering.max.kbytes", "1048576");
        rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    } else {
        conf_set(c, "group.id", group);
        conf_set(c, "enable.auto.commit", "false");
        conf_set(c, "enable.partition.eof", "false");
        /* As bench.yaml says: the mock cluster holds an empty fetch for the
         * whole wait (1 ms rather than 5 took 5-7 ms off the trigger
         * latency's p50 and p99: a real broker answers when data comes). */
        conf_set(c, "fetch.wait.max.ms", "1");
        /* As tailord sets it (lib/source.c): at librdkafka 2.0.2's default
         * every fetch pauses for 0.4-0.6 s whenever 100,000 messages are
         * queued, which made the Kafka ceiling read a third of what the
         * broker serves on 1,000,000 events (and the whole on 350,000,
         * which never reach the pause twice). */
        conf_set(c, "queued.min.messages", "1000000");
    }
    rd_kafka_t *rk = rd_kafka_new(type, c, e, sizeof e);
    if (!rk) die("librdkafka: %s", e);
    return rk;
}

static void create_topic(const char *brokers, const char *topic, int parts)
{
    char err[TL_ERRSZ];
    if (world.mock) {
        if (tl_kafka_mock_topic(world.mock, topic, parts, err, sizeof err))
            die("%s", err);
        return;
    }
    /* A real broker: fresh topics, or the offsets below would not start at
     * zero and the data-loss check would be meaningless. */
    rd_kafka_t *rk = kafka_new(RD_KAFKA_PRODUCER, brokers, NULL, "5");
    char e[512];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, parts, 1, e, sizeof e);
    if (!nt) die("topic %s: %s", topic, e);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    const rd_kafka_CreateTopics_result_t *res =
        ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    size_t n = 0;
    const rd_kafka_topic_result_t **tr =
        res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
    if (!tr || n != 1 || rd_kafka_topic_result_error(tr[0]))
        die("cannot create topic %s on %s: %s (the bench needs a broker "
            "without its topics)",
            topic, brokers,
            tr && n ? rd_kafka_topic_result_error_string(tr[0]) : "no answer");
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
}

static void produce(rd_kafka_t *rk, const char *topic, tl_event_encoder *enc,
                    const tl_event *ev, int64_t ts_ms)
{
    const void *buf;
    size_t len;
    char err[TL_ERRSZ];
    if (tl_event_encode(enc, ev, &buf, &len, err, sizeof err))
        die("encode: %s", err);
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_KEY((void *)ev->customer_id, ev->customer_id_len),
            RD_KAFKA_V_VALUE((void *)buf, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_END);
        if (!e) return;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            die("produce to %s: %s", topic, rd_kafka_err2str(e));
        rd_kafka_poll(rk, 10);
    }
}

/* Sum of the partitions' end offsets; *lost: whether any partition's log no
 * longer starts at 0 (the mock cluster dropped data). */
static int64_t topic_end(rd_kafka_t *rk, const char *topic, int np, int *lost,
                         int64_t *hi_out)
{
    int64_t total = 0;
    *lost = 0;
    for (int p = 0; p < np; p++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000))
            die("watermarks of %s [%d] unavailable", topic, p);
        if (lo != 0) *lost = 1;
        if (hi_out) hi_out[p] = hi;
        total += hi;
    }
    return total;
}

static int64_t committed(rd_kafka_t *rk, const char *topic, int np)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++) rd_kafka_topic_partition_list_add(l, topic, p);
    int64_t total = 0;
    if (rd_kafka_committed(rk, l, 10000)) total = -1;
    for (int p = 0; total >= 0 && p < np; p++)
        if (l->elems[p].offset > 0) total += l->elems[p].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return total;
}

static void assign_all(rd_kafka_t *rk, const char *topic, int np,
                       const int64_t *from)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset =
            from ? from[p] : RD_KAFKA_OFFSET_BEGINNING;
    if (rd_kafka_assign(rk, l)) die("assign %s failed", topic);
    rd_kafka_topic_partition_list_destroy(l);
}

/* The Kafka ceiling: a plain consumer reading the whole topic, no decoding.
 * Seconds from its first message to its n-th. */
static double kafka_ceiling(const char *brokers, int np, int64_t n)
{
    rd_kafka_t *rk = kafka_new(RD_KAFKA_CONSUMER, brokers, "bench-ceiling", NULL);
    assign_all(rk, T_EVENTS, np, NULL);
    int64_t got = 0, first = 0, last = 0, deadline = tl_now_mono_ms() + 300000;
    uint64_t bytes = 0;
    while (got < n && tl_now_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err) {
            if (!got) first = now_us();
            got++;
            bytes += m->len;
            last = now_us();
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    if (got < n) die("kafka ceiling: read %" PRId64 " of %" PRId64, got, n);
    (void)bytes;
    return (double)(last - first) / 1e6;
}

/* ------------------------------------------------------------------------
 * tailord and its process figures
 */

typedef struct proc_figs {
    double cpu_s;   /* utime + stime */
    long hwm_kb;    /* VmHWM */
} proc_figs;

/* utime + stime in seconds from a /proc/.../stat file; 0 if unreadable. */
static double stat_cpu_s(const char *path)
{
    char buf[4096];
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = 0;
    fclose(fp);
    /* Fields after the command name, which may contain spaces. */
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                     &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of this process's threads named like librdkafka's mock
 * cluster ("rdk:mock"): the broker's share of the machine. */
static double mock_cpu_s(void)
{
    double sum = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *fp = fopen(path, "r");
        if (!fp) continue;
        if (!fgets(comm, sizeof comm, fp)) comm[0] = 0;
        fclose(fp);
        if (strncmp(comm, "rdk:mock", 8)) continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        sum += stat_cpu_s(path);
    }
    closedir(d);
    return sum;
}

static proc_figs proc_read(pid_t pid)
{
    proc_figs f = {0, 0};
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f.cpu_s = stat_cpu_s(path);
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *fp = fopen(path, "r");
    if (fp) {
        while (fgets(buf, sizeof buf, fp))
            if (sscanf(buf, "VmHWM: %ld kB", &f.hwm_kb) == 1) break;
        fclose(fp);
    }
    return f;
}

static pid_t start_tailord(const char *config, const char *log,
                           const char *alloc_file)
{
    char *argv[] = {(char *)tl_test_bin("tailord"), "-c", (char *)config, NULL};
    char so[4096];
    if (alloc_file) {
        const char *dir = getenv("BENCH_LIB_DIR");
        snprintf(so, sizeof so, "%s/alloc_preload.so", dir ? dir : "build/bench");
        if (access(so, R_OK)) die("%s: %s", so, strerror(errno));
        setenv("LD_PRELOAD", so, 1);
        setenv("BENCH_ALLOC_FILE", alloc_file, 1);
    }
    pid_t pid = tl_test_spawn(argv, NULL, log);
    unsetenv("LD_PRELOAD");
    unsetenv("BENCH_ALLOC_FILE");
    if (pid < 0) die("cannot start tailord");
    world.tailord = pid;
    return pid;
}

/* What tailord's stop lines say. */
typedef struct tailord_figs {
    uint64_t events, triggers;
    double secs, rate;
    uint64_t round_trips, commands, writes, batches;
} tailord_figs;

static tailord_figs stop_tailord(pid_t pid, const char *log)
{
    tailord_figs f;
    memset(&f, 0, sizeof f);
    int st = tl_test_stop(pid, SIGTERM, 60000);
    world.tailord = 0;
    if (st != 0) die("tailord exited with status %d; see %s", st, log);
    FILE *fp = fopen(log, "r");
    if (!fp) die("%s: %s", log, strerror(errno));
    char line[4096];
    while (fgets(line, sizeof line, fp)) {
        char *p;
        if ((p = strstr(line, "stopping: ")))
            sscanf(p, "stopping: %" SCNu64 " events", &f.events);
        if ((p = strstr(line, " dead letters, ")))
            sscanf(p, " dead letters, %lf s from first poll to last commit "
                      "(%lf events/s)", &f.secs, &f.rate);
        if ((p = strstr(line, "triggers: ")))
            sscanf(p, "triggers: %" SCNu64, &f.triggers);
        if ((p = strstr(line, "redis: ")))
            sscanf(p, "redis: %" SCNu64 " round trips, %" SCNu64
                      " commands, %" SCNu64 " vector writes in %" SCNu64,
                   &f.round_trips, &f.commands, &f.writes, &f.batches);
    }
    fclose(fp);
    if (!f.events || !f.batches) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "tail -n 20 '%s' >&2", log);
        if (system(cmd)) {}
        die("no figures in %s", log);
    }
    return f;
}

/* The backlog again, read by a tailord on the shipped defaults
 * ($BENCH_DEFAULTS_CONFIG, default bench/defaults.yaml: its own group, key
 * prefix and output topic, so every event is new to it), while the
 * machine is as quiet as for the tuned run.  Its figures, and its CPU
 * seconds in *cpu_s. */
static tailord_figs defaults_run(const char *brokers, int np, int64_t total,
                                 const char *log, double *cpu_s)
{
    const char *cfg = getenv("BENCH_DEFAULTS_CONFIG");
    if (!cfg) cfg = "bench/defaults.yaml";
    pid_t pid = start_tailord(cfg, log, NULL);
    rd_kafka_t *q = kafka_new(RD_KAFKA_CONSUMER, brokers, GROUP_DEFAULTS, NULL);
    int64_t deadline = tl_now_mono_ms() + 600000;
    while (committed(q, T_EVENTS, np) < total) {
        if (tl_now_mono_ms() > deadline)
            die("tailord on the shipped defaults did not finish in time");
        if (tl_test_wait(pid, 0) != -1) die("tailord died; see %s", log);
        usleep(250000);
    }
    rd_kafka_destroy(q);
    *cpu_s = proc_read(pid).cpu_s;
    return stop_tailord(pid, log);
}

/* ------------------------------------------------------------------------
 * Redis
 */

static redisContext *redis_connect(void)
{
    redisContext *c = redisConnect("127.0.0.1", world.redis->port);
    if (!c || c->err) die("cannot connect to redis");
    return c;
}

/* A number from INFO: field "name:" in section. */
static double redis_info_num(redisContext *c, const char *section,
                             const char *name)
{
    redisReply *r = redisCommand(c, "INFO %s", section);
    if (!r || r->type != REDIS_REPLY_STRING) die("INFO %s failed", section);
    double v = 0;
    char key[128];
    snprintf(key, sizeof key, "\n%s:", name);
    const char *p = strstr(r->str, key);
    if (p) v = strtod(p + strlen(key), NULL);
    freeReplyObject(r);
    return v;
}

static uint64_t redis_info(redisContext *c, const char *section,
                           const char *name)
{
    return (uint64_t)redis_info_num(c, section, name);
}

/* Redis's own CPU seconds (INFO cpu: the main thread and its helpers). */
static double redis_cpu_s(redisContext *c)
{
    return redis_info_num(c, "cpu", "used_cpu_user") +
           redis_info_num(c, "cpu", "used_cpu_sys");
}

/* Calls of every command, summed from INFO commandstats (commands inside Lua
 * scripts included, unlike total_commands_processed). */
static uint64_t redis_calls(redisContext *c, char *detail, size_t dsz)
{
    redisReply *r = redisCommand(c, "INFO commandstats");
    if (!r || r->type != REDIS_REPLY_STRING) die("INFO commandstats failed");
    uint64_t total = 0;
    size_t dl = 0;
    if (detail) detail[0] = 0;
    for (const char *p = strstr(r->str, "cmdstat_"); p;
         p = strstr(p + 1, "cmdstat_")) {
        const char *colon = strchr(p, ':');
        const char *calls = strstr(p, "calls=");
        if (!colon || !calls) break;
        uint64_t n = strtoull(calls + 6, NULL, 10);
        total += n;
        if (detail && dl + 64 < dsz)
            dl += (size_t)snprintf(detail + dl, dsz - dl, "%s%.*s=%" PRIu64,
                                   dl ? " " : "", (int)(colon - p - 8), p + 8,
                                   n);
    }
    freeReplyObject(r);
    return total;
}

/* The Redis ceiling: `n` writes of the hash stored under `model` (fields and
 * values as tailord wrote them), as HSETs to `keys` distinct keys, in
 * pipelines of `per_batch`.  Seconds. */
static double redis_ceiling(const char *model, uint64_t n, uint64_t keys,
                            size_t per_batch, size_t *width)
{
    redisContext *c = redis_connect();
    redisReply *h = redisCommand(c, "HGETALL %s", model);
    if (!h || h->type != REDIS_REPLY_ARRAY || h->elements < 2)
        die("redis ceiling: no vector under %s", model);
    size_t argc = 2 + h->elements;
    const char **argv = tl_xcalloc(argc, sizeof *argv);
    size_t *lens = tl_xcalloc(argc, sizeof *lens);
    char key[64];
    argv[0] = "HSET";
    lens[0] = 4;
    argv[1] = key;
    for (size_t i = 0; i < h->elements; i++) {
        argv[2 + i] = h->element[i]->str;
        lens[2 + i] = h->element[i]->len;
    }
    *width = h->elements / 2;
    int64_t t0 = now_us();
    for (uint64_t done = 0; done < n;) {
        size_t b = 0;
        for (; b < per_batch && done + b < n; b++) {
            lens[1] = (size_t)snprintf(key, sizeof key, "bench:ceiling:%" PRIu64,
                                       (done + b) % keys);
            redisAppendCommandArgv(c, (int)argc, argv, lens);
        }
        for (size_t i = 0; i < b; i++) {
            redisReply *r;
            if (redisGetReply(c, (void **)&r) != REDIS_OK || !r ||
                r->type == REDIS_REPLY_ERROR)
                die("redis ceiling: HSET failed");
            freeReplyObject(r);
        }
        done += b;
    }
    double secs = (double)(now_us() - t0) / 1e6;
    freeReplyObject(h);
    free(argv);
    free(lens);
    redisFree(c);
    return secs;
}

/* ------------------------------------------------------------------------
 * In process: the hot path's allocations, bytes per cached customer
 */

static tl_config *load_config(const char *path)
{
    char err[TL_ERRSZ];
    tl_config *cfg = tl_config_load(path, err, sizeof err);
    if (!cfg) die("%s", err);
    return cfg;
}

static tl_layout layout_of(const tl_config *cfg)
{
    return (tl_layout){cfg->features, cfg->nfeatures, cfg->rules, cfg->nrules,
                       cfg->block_size, &cfg->ruleset};
}

typedef struct hot_figs {
    double first_pass; /* allocations per event, customers new */
    double steady;     /* allocations per event, customers cached */
    double ns;         /* CPU ns per event, steady pass */
    size_t events;
    uint64_t firings;
} hot_figs;

/* Decode -> cache -> features -> rules -> trigger encoding, as the pipeline
 * does it per event, and the Redis text of the changed vectors every 5,000
 * events (the batch's flush, without the I/O), over `n` encoded events,
 * twice: the first pass meets every customer for the first time, the
 * second is the steady state, timed in CPU time. */
static hot_figs hot_path(const dataset *d, size_t n)
{
    hot_figs hf;
    memset(&hf, 0, sizeof hf);
    char err[TL_ERRSZ];
    tl_config *cfg = load_config(bench_config());
    tl_layout l = layout_of(cfg);
    tl_event_encoder *enc = tl_event_encoder_new(NULL, err, sizeof err);
    tl_event_decoder *dec = tl_event_decoder_new(cfg->format, cfg->schema_json,
                                                 cfg->writer_schema_json, err,
                                                 sizeof err);
    tl_trigger_codec *tc = tl_trigger_codec_new(NULL, err, sizeof err);
    if (!enc || !dec || !tc) die("hot path: %s", err);
    if (n > d->n) n = d->n;
    void **msg = tl_xcalloc(n, sizeof *msg);
    size_t *len = tl_xcalloc(n, sizeof *len);
    for (size_t i = 0; i < n; i++) {
        const void *b;
        if (tl_event_encode(enc, &d->r[i].ev, &b, &len[i], err, sizeof err))
            die("hot path: %s", err);
        msg[i] = tl_xmalloc(len[i]);
        memcpy(msg[i], b, len[i]);
    }
    tl_cache *cache = tl_cache_new(&l, n + 1);
    tl_arena arena;
    tl_arena_init(&arena, 1 << 20);
    tl_firing *fire = tl_xcalloc(cfg->nrules + 1, sizeof *fire);
    tl_suppress *why = tl_xcalloc(cfg->nrules + 1, sizeof *why);
    tl_vec **dirty = tl_xcalloc(5000, sizeof *dirty);
    size_t ndirty = 0, maxf = tl_vec_max_fields(&l), maxd = tl_vec_max_dels(&l) + 1;
    tl_alloc_counter_install();
    for (int pass = 0; pass < 2; pass++) {
        struct timespec c0, c1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
        tl_alloc_calls = 0;
        tl_alloc_counting = 1;
        for (size_t i = 0; i <= n; i++) {
            if (i % 5000 == 0 || i == n) {
                for (size_t k = 0; k < ndirty; k++) {
                    const char **f = tl_arena_alloc(&arena, maxf * sizeof *f);
                    const char **vals = tl_arena_alloc(&arena, maxf * sizeof *vals);
                    size_t *fl = tl_arena_alloc(&arena, maxf * sizeof *fl);
                    size_t *vl = tl_arena_alloc(&arena, maxf * sizeof *vl);
                    const char **dels = tl_arena_alloc(&arena, maxd * sizeof *dels);
                    size_t *dl = tl_arena_alloc(&arena, maxd * sizeof *dl), nd;
                    tl_vec_encode(dirty[k], &l, &arena, f, fl, vals, vl, dels,
                                  dl, &nd);
                    dirty[k]->dirty = 0;
                    dirty[k]->changed = 0;
                }
                ndirty = 0;
                tl_arena_reset(&arena);
                if (i == n) break;
            }
            tl_event ev;
            if (tl_event_decode(dec, msg[i], len[i], &arena, &ev, err,
                                sizeof err) != TL_REJECT_NONE)
                die("hot path: event %zu: %s", i, err);
            tl_vec *v = tl_cache_get(cache, ev.customer_id, ev.customer_id_len);
            if (!v) v = tl_cache_put(cache, ev.customer_id, ev.customer_id_len);
            /* Keyed by customer, as on the topic: one partition each. */
            int32_t part = (int32_t)(tl_fnv1a(TL_FNV_OFFSET, ev.customer_id,
                                              ev.customer_id_len) % 64);
            tl_wm *wm = tl_vec_wm(v, T_EVENTS, part);
            wm->applied = (int64_t)i;
            if (!v->dirty) {
                v->dirty = 1;
                dirty[ndirty++] = v;
            }
            tl_vec_apply(v, &l, &ev);
            tl_eval_ctx ctx = {&ev, l.features, v->block};
            size_t nf = tl_ruleset_eval(&cfg->ruleset, v->block, &ev,
                                        tl_eval_fetch, &ctx, fire, why);
            for (size_t k = 0; k < nf; k++) {
                tl_trigger t;
                memset(&t, 0, sizeof t);
                tl_trigger_make_id(t.id, T_EVENTS, 0, (int64_t)i,
                                   fire[k].rule->name);
                t.rule = fire[k].rule->name;
                t.customer_id = ev.customer_id;
                t.ts = ev.ts;
                t.cause_event_id = ev.event_id;
                t.channel = fire[k].channel;
                size_t ml = tl_template_render(&fire[k].rule->message,
                                               tl_eval_fetch, &ctx, NULL, 0);
                char *m = tl_arena_alloc(&arena, ml + 1);
                tl_template_render(&fire[k].rule->message, tl_eval_fetch, &ctx,
                                   m, ml + 1);
                t.message = m;
                const void *out;
                size_t outlen;
                if (tl_trigger_encode(tc, &t, &out, &outlen, err, sizeof err))
                    die("hot path: %s", err);
                if (pass) hf.firings++;
            }
        }
        tl_alloc_counting = 0;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
        hf.ns = ((double)(c1.tv_sec - c0.tv_sec) * 1e9 +
                 (double)(c1.tv_nsec - c0.tv_nsec)) / (double)n;
        double per = (double)tl_alloc_calls / (double)n;
        if (pass == 0) hf.first_pass = per;
        else hf.steady = per;
    }
    hf.events = n;
    free(dirty);
    free(fire);
    free(why);
    tl_arena_free(&arena);
    tl_cache_free(cache);
    for (size_t i = 0; i < n; i++) free(msg[i]);
    free(msg);
    free(len);
    tl_trigger_codec_free(tc);
    tl_event_decoder_free(dec);
    tl_event_encoder_free(enc);
    tl_config_free(cfg);
    return hf;
}

/* Heap bytes (glibc's own accounting, chunk headers included) per customer
 * in the cache, each with one watermark, ids as long as the replay's. */
static double bytes_per_customer(const char *path, size_t k, size_t *block)
{
    tl_config *cfg = load_config(path);
    tl_layout l = layout_of(cfg);
    *block = cfg->block_size;
    struct mallinfo2 a = mallinfo2();
    tl_cache *c = tl_cache_new(&l, k + 1);
    for (size_t i = 0; i < k; i++) {
        char id[32];
        int n = snprintf(id, sizeof id, "%zu~%zu", 10000 + i % 90000, i / 90000);
        tl_vec *v = tl_cache_put(c, id, (size_t)n);
        tl_vec_wm(v, T_EVENTS, (int32_t)(i % 64));
    }
    struct mallinfo2 b = mallinfo2();
    double per = ((double)(b.uordblks + b.hblkhd) -
                  (double)(a.uordblks + a.hblkhd)) / (double)k;
    tl_cache_free(c);
    tl_config_free(cfg);
    return per;
}

/* ------------------------------------------------------------------------
 * Latency
 */

typedef struct lat_ctx {
    const char *brokers;
    const dataset *d;
    const idmap *ids;
    const int64_t *sent_us; /* by dataset index; 0: not (yet) sent */
    int np;
    const int64_t *from;
    atomic_int stop;
    int64_t *samples;
    int64_t *inside; /* the part up to tailord's produce: the trigger's
                      * Kafka timestamp (CreateTime, ms) - send time */
    size_t n, cap;
    uint64_t triggers, unmatched;
} lat_ctx;

static void *lat_consumer(void *ud)
{
    lat_ctx *x = ud;
    char err[TL_ERRSZ];
    tl_trigger_codec *tc = tl_trigger_codec_new(NULL, err, sizeof err);
    if (!tc) die("%s", err);
    tl_arena arena;
    tl_arena_init(&arena, 1 << 16);
    rd_kafka_t *rk = kafka_new(RD_KAFKA_CONSUMER, x->brokers, "bench-latency",
                               NULL);
    assign_all(rk, T_TRIGGERS, x->np, x->from);
    while (!atomic_load(&x->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (!m) continue;
        int64_t arrived = now_us();
        if (!m->err) {
            tl_trigger t;
            tl_arena_reset(&arena);
            x->triggers++;
            if (tl_trigger_decode(tc, m->payload, m->len, &arena, &t, err,
                                  sizeof err))
                die("trigger: %s", err);
            /* cause_event_id is "<real event id>~<round>". */
            const char *tilde = strrchr(t.cause_event_id, '~');
            long i = tilde ? idmap_find(x->ids, x->d, t.cause_event_id,
                                        (size_t)(tilde - t.cause_event_id))
                           : -1;
            if (i >= 0 && x->sent_us[i]) {
                if (x->n == x->cap) {
                    x->cap = x->cap ? x->cap * 2 : 65536;
                    x->samples = tl_xrealloc(x->samples,
                                             x->cap * sizeof *x->samples);
                    x->inside = tl_xrealloc(x->inside,
                                            x->cap * sizeof *x->inside);
                }
                rd_kafka_timestamp_type_t tt;
                int64_t made_ms = rd_kafka_message_timestamp(m, &tt);
                x->inside[x->n] = made_ms * 1000 - x->sent_us[i];
                x->samples[x->n++] = arrived - x->sent_us[i];
            } else {
                x->unmatched++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    tl_arena_free(&arena);
    tl_trigger_codec_free(tc);
    return NULL;
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const int64_t *s, size_t n, double q)
{
    if (!n) return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)s[i] / 1000.0;
}

/* ------------------------------------------------------------------------
 * main
 */

static uint64_t alloc_read(const uint64_t *mapped, int i)
{
    return __atomic_load_n(&mapped[i], __ATOMIC_RELAXED);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    long want = env_long("BENCH_EVENTS", 1000000);
    long rate = env_long("BENCH_RATE", 20000);
    long paced_secs = env_long("BENCH_PACED_SECONDS", 15);
    const char *data_dir = getenv("BENCH_DATA");
    if (!data_dir) data_dir = "../shared/data";
    const char *ext = getenv("BENCH_BOOTSTRAP");
    char err[TL_ERRSZ];

    say("loading %s", data_dir);
    dataset d;
    load_data(&d, data_dir);
    int rounds = (int)((want + (long)d.n - 1) / (long)d.n);
    if (rounds < 1) rounds = 1;
    int64_t total = (int64_t)rounds * (int64_t)d.n;
    size_t ncust = 0;
    {
        /* Distinct customers of one round. */
        idmap m;
        size_t cap = 1;
        while (cap < d.n * 2) cap <<= 1;
        m.slot = tl_xcalloc(cap, sizeof *m.slot);
        m.mask = cap - 1;
        for (size_t i = 0; i < d.n; i++) {
            const tl_event *e = &d.r[i].ev;
            size_t h = (size_t)tl_fnv1a(TL_FNV_OFFSET, e->customer_id,
                                        e->customer_id_len) & m.mask;
            for (; m.slot[h]; h = (h + 1) & m.mask)
                if (strcmp(d.r[m.slot[h] - 1].ev.customer_id, e->customer_id) == 0)
                    break;
            if (!m.slot[h]) {
                m.slot[h] = (uint32_t)i + 1;
                ncust++;
            }
        }
        free(m.slot);
    }
    say("%zu real events, %zu customers; %d rounds: %" PRId64 " events",
        d.n, ncust, rounds, total);

    if (env_long("BENCH_HOTPATH_ONLY", 0)) {
        /* For comparing builds: the in-process figures alone. */
        hot_figs h = hot_path(&d, 200000);
        printf("hot path: %.0f ns CPU per event, %.2f allocations per event "
               "(steady), %.2f (new customers), %zu events\n",
               h.ns, h.steady, h.first_pass, h.events);
        return 0;
    }
    world.tmp = tl_test_tmpdir();
    tl_redis_server_opts ro = {0};
    world.redis = tl_redis_server_start(&ro, err, sizeof err);
    if (!world.redis) die("%s", err);
    const char *brokers = ext;
    if (!brokers) {
        world.mock = tl_kafka_mock_new(NULL, 1, 1, err, sizeof err);
        if (!world.mock) die("%s", err);
        brokers = tl_kafka_mock_bootstraps(world.mock);
    }
    setenv("TAILOR_KAFKA_BROKERS", brokers, 1);
    setenv("TAILOR_REDIS_URL", world.redis->url, 1);

    /* Partitions: enough that no partition of the mock exceeds PART_BYTES
     * (records plus keys plus ~70 bytes of framing each). */
    tl_event_encoder *enc = tl_event_encoder_new(NULL, err, sizeof err);
    if (!enc) die("%s", err);
    uint64_t round_bytes = 0;
    for (size_t i = 0; i < d.n; i++) {
        const void *b;
        size_t len;
        if (tl_event_encode(enc, &d.r[i].ev, &b, &len, err, sizeof err))
            die("%s", err);
        round_bytes += len + d.r[i].ev.customer_id_len + 70;
    }
    long paced_n = rate * paced_secs;
    if (paced_n > (long)d.n - 1) paced_n = (long)d.n - 1;
    int np = (int)((round_bytes * (uint64_t)rounds + PART_BYTES - 1) / PART_BYTES);
    /* The paced topic is read as it is written, so the mock cluster's
     * retention only has to hold the unread tail.  Two partitions, because
     * the mock cluster finds a fetch's offset by walking the partition's
     * message sets from the oldest (perf: 87 % of its thread's samples in
     * that one loop), and 20,000 events/s with linger.ms 1 make sets of a
     * few messages: with 8 partitions the walk grew until, 13 s into the
     * run, the broker thread alone took a third of a core and the trigger
     * p99 went from 20 ms to 100-300 ms; with 2, sets are 4 times larger
     * and it stays at 20 ms.  A real broker indexes offsets; with
     * BENCH_BOOTSTRAP, set BENCH_PACED_PARTITIONS as the topic would be. */
    int np_paced = (int)env_long("BENCH_PACED_PARTITIONS", 2);
    if (np < 8) np = 8;
    create_topic(brokers, T_EVENTS, np);
    create_topic(brokers, T_PACED, np_paced);
    create_topic(brokers, T_TRIGGERS, 32);
    create_topic(brokers, T_DLQ, 1);
    create_topic(brokers, T_TRIGGERS_DEFAULTS, 32);

    say("producing %" PRId64 " events (%.0f MB of Avro) to %s, %d partitions",
        total, (double)round_bytes * rounds / 1e6, T_EVENTS, np);
    rd_kafka_t *prod = kafka_new(RD_KAFKA_PRODUCER, brokers, NULL, "20");
    int64_t t0 = tl_now_mono_ms();
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < d.n; i++) {
            tl_event ev;
            roundbuf rb;
            round_event(&d, i, r, &ev, &rb);
            produce(prod, T_EVENTS, enc, &ev, tl_now_wall_ms());
            rd_kafka_poll(prod, 0);
        }
    if (rd_kafka_flush(prod, 120000) || atomic_load(&delivery_errors))
        die("producing failed (%lu delivery errors)",
            atomic_load(&delivery_errors));
    int lost;
    int64_t end = topic_end(prod, T_EVENTS, np, &lost, NULL);
    if (lost || end != total)
        die("%s holds %" PRId64 " of %" PRId64 " events%s", T_EVENTS, end,
            total, lost ? " (the broker dropped the oldest: more partitions "
                          "needed)" : "");
    say("produced in %.1f s; every event is on the broker",
        (double)(tl_now_mono_ms() - t0) / 1000.0);

    say("kafka ceiling: a plain consumer reads %s", T_EVENTS);
    double kc_secs = kafka_ceiling(brokers, np, total);
    double kc_rate = (double)total / kc_secs;
    say("kafka ceiling: %.0f events/s", kc_rate);

    /* tailord on the backlog. */
    redisContext *rc = redis_connect();
    uint64_t cmd0 = redis_info(rc, "stats", "total_commands_processed");
    uint64_t reads0 = redis_info(rc, "stats", "total_reads_processed");
    uint64_t calls0 = redis_calls(rc, NULL, 0);
    double rcpu0 = redis_cpu_s(rc), mcpu0 = mock_cpu_s();
    char alloc_file[4096], log1[4096], log2[4096];
    snprintf(alloc_file, sizeof alloc_file, "%s/allocs", world.tmp);
    /* The logs outlive the run, next to the driver. */
    const char *outdir = getenv("BENCH_LIB_DIR");
    if (!outdir) outdir = "build/bench";
    snprintf(log1, sizeof log1, "%s/tailord-backlog.log", outdir);
    snprintf(log2, sizeof log2, "%s/tailord-paced.log", outdir);
    say("tailord consumes the backlog (log: %s)", log1);
    pid_t pid = start_tailord(bench_config(), log1, alloc_file);
    rd_kafka_t *q = kafka_new(RD_KAFKA_CONSUMER, brokers, GROUP, NULL);
    uint64_t *ac = NULL;
    uint64_t a_lo[2] = {0, 0}, a_hi[2] = {0, 0};
    int64_t c_lo = -1, c_hi = -1, done = 0;
    int64_t deadline = tl_now_mono_ms() + 600000;
    while (done < total) {
        if (tl_now_mono_ms() > deadline) die("tailord did not finish in time");
        if (tl_test_wait(pid, 0) != -1) die("tailord died; see %s", log1);
        usleep(250000);
        if (!ac) {
            FILE *fp = fopen(alloc_file, "r");
            if (fp) {
                void *m = mmap(NULL, 16, PROT_READ, MAP_SHARED, fileno(fp), 0);
                if (m != MAP_FAILED) ac = m;
                fclose(fp);
            }
        }
        done = committed(q, T_EVENTS, np);
        /* Steady state: from a fifth of the backlog to four fifths. */
        if (ac && c_lo < 0 && done >= total / 5) {
            c_lo = done;
            a_lo[0] = alloc_read(ac, 0);
            a_lo[1] = alloc_read(ac, 1);
        }
        if (ac && c_hi < 0 && done >= total * 4 / 5) {
            c_hi = done;
            a_hi[0] = alloc_read(ac, 0);
            a_hi[1] = alloc_read(ac, 1);
        }
    }
    proc_figs pf = proc_read(pid);
    double rcpu = redis_cpu_s(rc) - rcpu0, mcpu = mock_cpu_s() - mcpu0;
    tailord_figs tf = stop_tailord(pid, log1);
    uint64_t cmd1 = redis_info(rc, "stats", "total_commands_processed");
    uint64_t reads1 = redis_info(rc, "stats", "total_reads_processed");
    char calls_detail[2048];
    uint64_t calls1 = redis_calls(rc, calls_detail, sizeof calls_detail);
    redisFree(rc);
    if (c_hi <= c_lo) die("no steady-state window for the allocation count");
    double alloc_main = (double)(a_hi[0] - a_lo[0]) / (double)(c_hi - c_lo);
    double alloc_other = (double)(a_hi[1] - a_lo[1]) / (double)(c_hi - c_lo);
    say("tailord: %.0f events/s", tf.rate);

    say("redis ceiling: %" PRIu64 " vector writes as pipelined HSETs",
        tf.writes);
    char model[512];
    {
        tl_arena a;
        tl_arena_init(&a, 4096);
        size_t kl;
        /* The busiest customer of the data (Online Retail's first), round 0. */
        const char *k = tl_vec_key(&a, "bench:", d.r[0].ev.customer_id,
                                     d.r[0].ev.customer_id_len, &kl);
        snprintf(model, sizeof model, "%s", k);
        tl_arena_free(&a);
    }
    size_t width = 0;
    size_t per_batch = (size_t)(tf.writes / tf.batches);
    if (per_batch < 1) per_batch = 1;
    double rc_secs = redis_ceiling(model, tf.writes, ncust * (size_t)rounds,
                                   per_batch, &width);
    double rc_rate = (double)total / rc_secs;

    say("hot path and memory, in process");
    hot_figs hf = hot_path(&d, 200000);
    size_t blk_bench, blk_scalar;
    double bpc_bench = bytes_per_customer(bench_config(), 100000, &blk_bench);
    double bpc_scalar =
        bytes_per_customer("bench/scalar10.yaml", 100000, &blk_scalar);

    /* Latency at a paced rate: a fresh tailord, one more round. */
    say("latency: tailord at a paced %ld events/s for %ld s (log: %s)", rate,
        paced_secs, log2);
    idmap ids;
    idmap_build(&ids, &d);
    int64_t *sent = tl_xcalloc(d.n, sizeof *sent);
    int64_t *from = tl_xcalloc(32, sizeof *from);
    topic_end(prod, T_TRIGGERS, 32, &lost, from);
    /* The same configuration reading only the paced topic, in a group of
     * its own. */
    char paced_cfg[4096];
    snprintf(paced_cfg, sizeof paced_cfg, "%s/paced.yaml", world.tmp);
    {
        size_t clen;
        char *text = tl_read_file(bench_config(), &clen, err, sizeof err);
        const char *in = "input: [" T_EVENTS ", " T_PACED "]";
        const char *grp = "group: " GROUP "\n";
        char *at = text ? strstr(text, in) : NULL;
        char *gat = text ? strstr(text, grp) : NULL;
        if (!at || !gat || gat > at)
            die("%s: no lines '%s' and '%s' (in this order) to make the paced "
                "run's configuration from", bench_config(), grp, in);
        FILE *fp = fopen(paced_cfg, "w");
        if (!fp) die("%s: %s", paced_cfg, strerror(errno));
        fprintf(fp, "%.*sgroup: " GROUP_PACED "\n%.*sinput: [" T_PACED "]%s",
                (int)(gat - text), text,
                (int)(at - (gat + strlen(grp))), gat + strlen(grp),
                at + strlen(in));
        fclose(fp);
        free(text);
    }
    pid = start_tailord(paced_cfg, log2, NULL);
    rd_kafka_t *q2 = kafka_new(RD_KAFKA_CONSUMER, brokers, GROUP_PACED, NULL);
    lat_ctx lx;
    memset(&lx, 0, sizeof lx);
    lx.brokers = brokers;
    lx.d = &d;
    lx.ids = &ids;
    lx.sent_us = sent;
    lx.np = 32;
    lx.from = from;
    pthread_t th;
    pthread_create(&th, NULL, lat_consumer, &lx);
    rd_kafka_t *pp = kafka_new(RD_KAFKA_PRODUCER, brokers, NULL, "1");
    int pr = rounds;
    {
        /* A first event, to wait until tailord owns its partitions. */
        tl_event ev;
        roundbuf rb;
        round_event(&d, 0, pr, &ev, &rb);
        produce(pp, T_PACED, enc, &ev, tl_now_wall_ms());
        rd_kafka_flush(pp, 10000);
        int64_t wait_end = tl_now_mono_ms() + 60000;
        while (committed(q2, T_PACED, np_paced) < 1) {
            if (tl_now_mono_ms() > wait_end) die("tailord did not start");
            usleep(100000);
        }
    }
    /* The first second is a warm-up, not measured: the first trigger waits
     * for the producer's id and the output topic's metadata, once per
     * start of tailord. */
    long warm = rate;
    if (warm > paced_n / 4) warm = paced_n / 4;
    int64_t start = now_us(), measured_from = 0;
    for (long i = 1; i <= paced_n; i++) {
        int64_t due = start + (int64_t)((double)(i - 1) * 1e6 / (double)rate);
        int64_t now = now_us();
        if (due > now) {
            struct timespec ts = {0, (long)(due - now) * 1000};
            nanosleep(&ts, NULL);
        }
        tl_event ev;
        roundbuf rb;
        round_event(&d, (size_t)i, pr, &ev, &rb);
        int64_t t = now_us();
        if (i == warm + 1) measured_from = t;
        if (i > warm) __atomic_store_n(&sent[i], t, __ATOMIC_RELAXED);
        produce(pp, T_PACED, enc, &ev, t / 1000);
        rd_kafka_poll(pp, 0);
    }
    double offered =
        (double)(paced_n - warm) / ((double)(now_us() - measured_from) / 1e6);
    (void)start;
    rd_kafka_flush(pp, 30000);
    int64_t wait_end = tl_now_mono_ms() + 120000;
    while (committed(q2, T_PACED, np_paced) < paced_n + 1 &&
           tl_now_mono_ms() < wait_end)
        usleep(100000);
    usleep(2000000); /* the last triggers on their way */
    atomic_store(&lx.stop, 1);
    pthread_join(th, NULL);
    tailord_figs tf2 = stop_tailord(pid, log2);
    qsort(lx.samples, lx.n, sizeof *lx.samples, i64_cmp);
    qsort(lx.inside, lx.n, sizeof *lx.inside, i64_cmp);

    char log3[4096];
    snprintf(log3, sizeof log3, "%s/tailord-defaults.log", outdir);
    say("tailord on the shipped defaults consumes the backlog (log: %s)", log3);
    double dcpu;
    tailord_figs tf3 = defaults_run(brokers, np, total, log3, &dcpu);

    /* The table. */
    double cpu_per_m = pf.cpu_s / (double)tf.events * 1e6;
    double rt = (double)tf.round_trips / (double)tf.events;
    printf("\n");
    tl_config *bcfg = load_config(bench_config());
    printf("tailord benchmark: %" PRId64 " events (%d rounds of %zu real "
           "events, %zu customers each), %zu features, %zu rules\n",
           total, rounds, d.n, ncust, bcfg->nfeatures, bcfg->nrules);
    tl_config_free(bcfg);
    printf("broker: %s%s; redis %s\n", ext ? "external " : "librdkafka mock cluster ",
           brokers, world.redis->url);
    printf("%-48s %14s %10s\n", "figure", "value", "target");
    printf("%-48s %14.0f\n", "end-to-end events/s (first poll to last commit)",
           tf.rate);
    printf("%-48s %14.0f\n", "Kafka ceiling events/s (plain consumer)", kc_rate);
    printf("%-48s %14.2f %10s\n", "  tailord / Kafka ceiling", tf.rate / kc_rate,
           ">= 0.5");
    printf("%-48s %14.0f\n", "end-to-end events/s, shipped defaults", tf3.rate);
    printf("%-48s %14.2f %10s\n", "  shipped defaults / Kafka ceiling",
           tf3.rate / kc_rate, ">= 0.4");
    printf("%-48s %14.2f\n", "  CPU seconds per million events (defaults)",
           dcpu / (double)tf3.events * 1e6);
    printf("%-48s %14.0f\n", "Redis ceiling events/s (same writes as HSET)",
           rc_rate);
    printf("%-48s %14.2f\n", "  tailord / Redis ceiling", tf.rate / rc_rate);
    printf("%-48s %14.2f\n", "CPU seconds per million events (tailord)",
           cpu_per_m);
    /* The machine's budget: what tailord, Redis and the broker together
     * spend per event, times the target's rate, in cores (an external
     * broker has no thread here: mock_cpu_s counts 0). */
    double rcpu_m = rcpu / (double)tf.events * 1e6;
    double mcpu_m = mcpu / (double)tf.events * 1e6;
    printf("%-48s %14.2f\n", "  Redis, same run (INFO cpu)", rcpu_m);
    if (ext)
        printf("%-48s %14s\n", "  broker, same run (mock cluster thread)", "-");
    else
        printf("%-48s %14.2f\n", "  broker, same run (mock cluster thread)",
               mcpu_m);
    printf("%-48s %14.2f %10s\n",
           "  cores all three need at 0.5 x Kafka ceiling",
           (cpu_per_m + rcpu_m + mcpu_m) / 1e6 * 0.5 * kc_rate,
           "(have 2)");
    printf("%-48s %14.4f %10s\n", "Redis round trips per event (tailord's count)",
           rt, "<= 0.05");
    printf("%-48s %14.4f\n", "Redis commands per event (tailord's count)",
           (double)tf.commands / (double)tf.events);
    printf("%-48s %14.4f\n", "Redis commands per event (server, in scripts too)",
           (double)(calls1 - calls0) / (double)tf.events);
    printf("%-48s %14.4f\n", "Redis commands per event (total_commands_processed)",
           (double)(cmd1 - cmd0) / (double)tf.events);
    printf("%-48s %14.4f\n", "Redis socket reads per event (server)",
           (double)(reads1 - reads0) / (double)tf.events);
    printf("%-48s %14.1f\n", "vector writes per batch", (double)tf.writes / (double)tf.batches);
    printf("%-48s %14.1f\n", "events per batch", (double)tf.events / (double)tf.batches);
    printf("%-48s %14zu\n", "fields per vector (Redis ceiling width)", width);
    printf("%-48s %14.1f\n", "peak RSS MB (VmHWM)", (double)pf.hwm_kb / 1024.0);
    printf("%-48s %14.0f\n", "heap bytes per cached customer (bench.yaml)",
           bpc_bench);
    printf("%-48s %14.0f %10s\n", "heap bytes per cached customer (10 scalars)",
           bpc_scalar, "<= 512");
    printf("%-48s %14.2f\n", "allocations per event, tailord main thread",
           alloc_main);
    printf("%-48s %14.2f\n", "allocations per event, librdkafka threads",
           alloc_other);
    printf("%-48s %14.2f %10s\n", "allocations per event, hot path (steady)",
           hf.steady, "0");
    printf("%-48s %14.2f\n", "allocations per event, hot path (new customers)",
           hf.first_pass);
    printf("%-48s %14.0f\n", "hot path CPU ns per event (in process)", hf.ns);
    printf("%-48s %14.0f\n", "paced offered load events/s", offered);
    printf("%-48s %14zu\n", "latency samples (triggers, after 1 s warm-up)",
           lx.n);
    printf("%-48s %14.1f\n", "trigger latency p50 ms", pct(lx.samples, lx.n, 0.5));
    printf("%-48s %14.1f %10s\n", "trigger latency p99 ms",
           pct(lx.samples, lx.n, 0.99), "<= 20");
    printf("%-48s %14.1f\n", "trigger latency p99.9 ms",
           pct(lx.samples, lx.n, 0.999));
    printf("%-48s %14.1f\n", "trigger latency max ms",
           lx.n ? (double)lx.samples[lx.n - 1] / 1000.0 : 0.0);
    /* Where the time goes: up to tailord's produce of the trigger (its
     * Kafka timestamp, 1 ms resolution), and the rest (the trigger's trip
     * through the broker to a consumer). */
    printf("%-48s %8.1f / %5.1f\n", "  of which event -> trigger produced p50/p99",
           pct(lx.inside, lx.n, 0.5), pct(lx.inside, lx.n, 0.99));
    printf("\nbacklog run: %" PRIu64 " triggers, %.1f s, %" PRIu64
           " batches; block %zu bytes (bench.yaml), %zu (10 scalars)\n",
           tf.triggers, tf.secs, tf.batches, blk_bench, blk_scalar);
    printf("paced run: %" PRIu64 " events, %" PRIu64 " triggers, %" PRIu64
           " unmatched\n", tf2.events, tf2.triggers, lx.unmatched);
    printf("shipped defaults run: %" PRIu64 " triggers, %.1f s, %" PRIu64
           " batches (%.0f events each)\n", tf3.triggers, tf3.secs,
           tf3.batches, (double)tf3.events / (double)tf3.batches);
    if (tf3.triggers != tf.triggers)
        printf("  (the tuned run produced %" PRIu64 " triggers: they differ)\n",
               tf.triggers);
    printf("redis commands in the backlog run: %s\n", calls_detail);
    (void)calls_detail;

    free(sent);
    free(from);
    free(ids.slot);
    free(lx.samples);
    free(lx.inside);
    rd_kafka_destroy(q);
    rd_kafka_destroy(q2);
    rd_kafka_flush(prod, 1000);
    rd_kafka_destroy(prod);
    rd_kafka_destroy(pp);
    tl_event_encoder_free(enc);
    free(d.r);
    tl_arena_free(&d.arena);
    cleanup();
    free(world.tmp);
    return 0;
}
