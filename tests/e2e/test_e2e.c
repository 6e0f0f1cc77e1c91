/*
 * End to end: a real redis-server and a Kafka broker (librdkafka's mock
 * cluster, in this process) on loopback, the real tailord and tailorctl
 * binaries, and the real data slice.  The expected vectors and trigger ids
 * are recomputed here straight from the JSON lines, without lib/'s feature
 * or rule code, so that the daemon is checked against an independent reading
 * of the documented semantics.
 */
#include <CUnit/Basic.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "../support/kafka_util.h"
#include "../support/redis_server.h"
#include "../support/testutil.h"
#include "event.h"
#include "kafka.h"
#include "schemas.h"
#include "trigger.h"

#define SLICE "tests/data/complete_journey_slice.jsonl.gz"
#define IN_TOPIC "interactions"
#define OUT_TOPIC "triggers"
#define DLQ_TOPIC "interactions.dlq"
#define DAY_MS 86400000LL

static tl_redis_server *redis;
static tl_kafka_mock *mock;
static const char *brokers;
static char *tmp;
static char cfg_path[512], replay_cfg_path[512];

/* ---- the test's configuration and its independent semantics ------------- */

static const char *config_text =
    "kafka:\n"
    "  group: %s\n"
    "  input: [" IN_TOPIC "]\n"
    "  output: " OUT_TOPIC "\n"
    "  dead_letter: " DLQ_TOPIC "\n"
    "  batch_size: 500\n"
    "  batch_timeout: 20ms\n"
    "redis:\n"
    "  prefix: \"e2e:\"\n"
    "  ttl: 30d\n"
    "log:\n"
    "  level: info\n"
    "features:\n"
    "  - { name: purchases, kind: count, where: 'type == \"purchase\"' }\n"
    "  - { name: spend, kind: sum, field: amount, where: 'type == \"purchase\"' }\n"
    "  - { name: last_item, kind: last, field: item, where: 'type == \"purchase\"' }\n"
    "  - { name: last_seen_any, kind: last_seen }\n"
    "  - { name: purchases_7d, kind: window_count, window: 7d, resolution: 1d,"
    " where: 'type == \"purchase\"' }\n"
    "  - { name: coupons, kind: count, where: 'type == \"coupon_redemption\"' }\n"
    "  - { name: min_amount, kind: min, field: amount }\n"
    "  - { name: max_amount, kind: max, field: amount }\n"
    "  - { name: avg_amount, kind: avg, field: amount }\n"
    "  - { name: first_seen_any, kind: first_seen }\n"
    "  - { name: spend_7d, kind: window_sum, field: amount, window: 7d, resolution: 1d }\n"
    "  - { name: heat, kind: decayed_count, half_life: 7d }\n"
    "  - { name: heat_spend, kind: decayed_sum, field: amount, half_life: 7d }\n"
    "  - { name: usual_dept, kind: top_k, field: 'attrs[\"department\"]', k: 3, capacity: 64 }\n"
    "  - { name: stores, kind: distinct, field: store }\n"
    "  - { name: recent_items, kind: last_n, field: item, n: 3 }\n"
    "  - { name: last_coupon, kind: last_seen, where: 'type == \"coupon_redemption\"' }\n"
    "  - { name: since_coupon, kind: since, of: last_coupon }\n"
    "  - { name: recent_spend, kind: sum, field: amount, ttl: 14d }\n"
    "triggers:\n"
    "  - name: r_every\n"
    "    when: 'type == \"purchase\" and amount >= 10'\n"
    "    emit: { message: '{{item}} {{spend}}' }\n"
    "  - name: r_cool\n"
    "    when: 'type == \"purchase\"'\n"
    "    if: 'purchases_7d >= 5'\n"
    "    cooldown: 2d\n"
    "    emit: { channel: app, message: '{{purchases_7d}} this week' }\n"
    "  - name: r_once\n"
    "    when: 'type == \"coupon_redemption\"'\n"
    "    if: 'coupons >= 2'\n"
    "    mode: once\n"
    "    emit: { channel: email, message: 'coupons {{coupons}}' }\n"
    "  - name: r_edge\n"
    "    if: 'spend >= 100'\n"
    "    mode: edge\n"
    "    emit: { message: 'spend passed 100 at {{last_item}}, mostly {{usual_dept[0]}}' }\n";

typedef struct ev {
    char *event_id, *customer_id, *type, *item, *store, *dept;
    int64_t ts;
    double amount;
    int has_amount;
    int32_t partition;
    int64_t offset;
} ev;

typedef struct cust {
    char *id;
    double purchases, spend, coupons;
    char *last_item;
    int64_t last_seen, last_purchase_ts;
    int has_spend_event;
    /* rule state */
    int cool_fired, once_fired, edge_prev;
    int64_t cool_last;
    /* purchase days, for the 7-day window */
    int64_t *days;
    size_t ndays;
    /* every event in file order, for the kinds of issue 3 */
    const ev **evs;
    size_t nevs;
} cust;

static ev *events;
static size_t nevents;
static cust *custs;
static size_t ncusts;
static char **want_ids;
static size_t nwant;
static char *sample_message, *sample_message_id;

/* Readable numbers as documented: whole numbers plainly, others with 15
 * significant digits. */
static void fmt_num(char *buf, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        sprintf(buf, "%.0f", v);
    else
        sprintf(buf, "%.15g", v);
}

static void make_id(char out[17], int32_t part, int64_t off, const char *rule)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s%c%" PRId32 "%c%" PRId64 "%c%s",
                     IN_TOPIC, 0, part, 0, off, 0, rule);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < n; i++) {
        h ^= (unsigned char)buf[i];
        h *= 0x100000001b3ULL;
    }
    sprintf(out, "%016" PRIx64, h);
}

static cust *find_cust(const char *id)
{
    for (size_t i = 0; i < ncusts; i++)
        if (strcmp(custs[i].id, id) == 0) return &custs[i];
    custs = realloc(custs, (ncusts + 1) * sizeof *custs);
    cust *c = &custs[ncusts++];
    memset(c, 0, sizeof *c);
    c->id = strdup(id);
    return c;
}

static void want(const ev *e, const char *rule)
{
    want_ids = realloc(want_ids, (nwant + 1) * sizeof *want_ids);
    want_ids[nwant] = malloc(17);
    make_id(want_ids[nwant], e->partition, e->offset, rule);
    nwant++;
}

static double window_7d(const cust *c, int64_t now)
{
    int64_t d = now / DAY_MS; /* all timestamps here are after 1970 */
    double n = 0;
    for (size_t i = 0; i < c->ndays; i++)
        if (c->days[i] > d - 7 && c->days[i] <= d) n++;
    return n;
}

/* Applies one event in file order and records the triggers it must cause. */
static void recompute(const ev *e)
{
    cust *c = find_cust(e->customer_id);
    int purchase = strcmp(e->type, "purchase") == 0;
    int coupon = strcmp(e->type, "coupon_redemption") == 0;
    if (purchase) {
        c->purchases++;
        if (e->has_amount) {
            c->spend += e->amount;
            c->has_spend_event = 1;
        }
        if (e->item) {
            free(c->last_item);
            c->last_item = strdup(e->item);
        }
        c->days = realloc(c->days, (c->ndays + 1) * sizeof *c->days);
        c->days[c->ndays++] = e->ts / DAY_MS;
        c->last_purchase_ts = e->ts;
    }
    if (coupon) c->coupons++;
    c->last_seen = e->ts;
    c->evs = realloc(c->evs, (c->nevs + 1) * sizeof *c->evs);
    c->evs[c->nevs++] = e;

    if (purchase && e->has_amount && e->amount >= 10) {
        want(e, "r_every");
        if (!sample_message) {
            char num[40];
            fmt_num(num, c->spend);
            size_t n = strlen(e->item) + strlen(num) + 2;
            sample_message = malloc(n);
            snprintf(sample_message, n, "%s %s", e->item, num);
            sample_message_id = malloc(17);
            make_id(sample_message_id, e->partition, e->offset, "r_every");
        }
    }
    if (purchase && window_7d(c, e->ts) >= 5 &&
        !(c->cool_fired && e->ts - c->cool_last < 2 * DAY_MS)) {
        want(e, "r_cool");
        c->cool_fired = 1;
        c->cool_last = e->ts;
    }
    if (coupon && c->coupons >= 2 && !c->once_fired) {
        want(e, "r_once");
        c->once_fired = 1;
    }
    int cond = c->spend >= 100;
    if (cond && !c->edge_prev) want(e, "r_edge");
    c->edge_prev = cond;
}

/* ---- Kafka helpers --------------------------------------------------------- */

static size_t consume_all(const char *topic, tl_test_msg_fn fn, void *ud)
{
    return tl_test_consume_all(brokers, topic, fn, ud);
}

static void produce_raw(const char *key, const void *val, size_t len)
{
    CU_ASSERT(tl_test_produce(brokers, IN_TOPIC, key, val, len) == 0);
}

static pid_t start_tailord(const char *config, const char *log)
{
    return tl_test_start_tailord(config, log);
}

static int wait_drained(const char *group, int timeout_ms)
{
    return tl_test_wait_drained(brokers, group, IN_TOPIC, timeout_ms);
}

static int run_tool(char *const argv[]) { return tl_test_run_tool(argv); }

/* ---- Redis snapshot -------------------------------------------------------- */

typedef struct snapshot {
    char **keys, **dumps;
    size_t n;
} snapshot;

static redisContext *redis_connect(void)
{
    redisContext *c = redisConnect("127.0.0.1", redis->port);
    CU_ASSERT_FATAL(c && !c->err);
    return c;
}

static char *hash_text(redisContext *c, const char *key)
{
    char *t = tl_test_hash_text(c, key);
    CU_ASSERT_FATAL(t != NULL);
    return t;
}

static void take_snapshot(snapshot *s)
{
    redisContext *c = redis_connect();
    memset(s, 0, sizeof *s);
    s->keys = calloc(ncusts, sizeof *s->keys);
    s->dumps = calloc(ncusts, sizeof *s->dumps);
    for (size_t i = 0; i < ncusts; i++) {
        char key[128];
        snprintf(key, sizeof key, "e2e:cx:{%s}", custs[i].id);
        s->keys[i] = strdup(key);
        s->dumps[i] = hash_text(c, key);
    }
    s->n = ncusts;
    redisFree(c);
}

static void free_snapshot(snapshot *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->keys[i]), free(s->dumps[i]);
    free(s->keys);
    free(s->dumps);
}

/* ---- suite setup ----------------------------------------------------------- */

static char *dup_or_null(json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static int load_slice(void)
{
    gzFile gz = gzopen(SLICE, "rb");
    if (!gz) return -1;
    static char line[1 << 16];
    while (gzgets(gz, line, sizeof line)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o) {
            fprintf(stderr, "%s: %s\n", SLICE, je.text);
            gzclose(gz);
            return -1;
        }
        events = realloc(events, (nevents + 1) * sizeof *events);
        ev *e = &events[nevents++];
        memset(e, 0, sizeof *e);
        e->event_id = dup_or_null(json_object_get(o, "event_id"));
        e->customer_id = dup_or_null(json_object_get(o, "customer_id"));
        e->type = dup_or_null(json_object_get(o, "type"));
        e->item = dup_or_null(json_object_get(o, "item"));
        e->store = dup_or_null(json_object_get(o, "store"));
        e->dept = dup_or_null(json_object_get(json_object_get(o, "attrs"), "department"));
        e->ts = json_integer_value(json_object_get(o, "ts"));
        json_t *a = json_object_get(o, "amount");
        e->has_amount = json_is_number(a);
        e->amount = e->has_amount ? json_number_value(a) : 0;
        e->partition = -1;
        json_decref(o);
    }
    gzclose(gz);
    return 0;
}

static tl_test_world world;

static int suite_init(void)
{
    if (tl_test_world_start(&world, 4, IN_TOPIC, OUT_TOPIC, DLQ_TOPIC))
        return 1;
    tmp = world.tmp;
    redis = world.redis;
    mock = world.mock;
    brokers = world.brokers;
    const char *groups[2] = {"tailord-e2e", "tailord-e2e-replay"};
    char *paths[2] = {cfg_path, replay_cfg_path};
    for (int i = 0; i < 2; i++) {
        snprintf(paths[i], 512, "%s/tailord-%d.yaml", tmp, i);
        FILE *f = fopen(paths[i], "w");
        if (!f) return 1;
        fprintf(f, config_text, groups[i]);
        fclose(f);
    }
    return load_slice() ? 1 : 0;
}

static int suite_clean(void)
{
    tl_test_world_stop(&world);
    for (size_t i = 0; i < nevents; i++) {
        free(events[i].event_id), free(events[i].customer_id);
        free(events[i].type), free(events[i].item);
        free(events[i].store), free(events[i].dept);
    }
    free(events);
    for (size_t i = 0; i < ncusts; i++) {
        free(custs[i].id), free(custs[i].last_item), free(custs[i].days);
        free(custs[i].evs);
    }
    free(custs);
    for (size_t i = 0; i < nwant; i++) free(want_ids[i]);
    free(want_ids);
    free(sample_message);
    free(sample_message_id);
    return 0;
}

/* ---- the tests ------------------------------------------------------------- */

static const unsigned char garbage[] = "\x07\xff\xfe not an avro event";
static tl_event_encoder *enc;

static void test_check_broken_config(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/broken.yaml", tmp);
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("kafka:\n  group: g\nfeatures:\n"
          "  - { name: n, kind: count, where: 'type == \"a\" and visitz > 1' }\n",
          f);
    fclose(f);
    char errpath[600];
    snprintf(errpath, sizeof errpath, "%s/check.err", tmp);
    char *argv[] = {strdup(tl_test_bin("tailord")), "--check", "-c", path, NULL};
    pid_t pid = tl_test_spawn(argv, "/dev/null", errpath);
    free(argv[0]);
    CU_ASSERT_EQUAL(tl_test_wait(pid, 10000), 1);
    char buf[1024] = "";
    FILE *e = fopen(errpath, "r");
    CU_ASSERT_FATAL(e != NULL);
    size_t n = fread(buf, 1, sizeof buf - 1, e);
    buf[n] = 0;
    fclose(e);
    /* 'visitz' starts at column 53 of line 4. */
    char want_prefix[700];
    snprintf(want_prefix, sizeof want_prefix, "%s:4:53: ", path);
    CU_ASSERT_NSTRING_EQUAL(buf, want_prefix, strlen(want_prefix));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "visitz"));

    /* And the shipped configurations pass. */
    const char *good[] = {"config/tailord.yaml", "config/demo.yaml"};
    for (int i = 0; i < 2; i++) {
        char *a[] = {strdup(tl_test_bin("tailord")), "--check", "-c",
                     (char *)good[i], NULL};
        pid = tl_test_spawn(a, "/dev/null", NULL);
        free(a[0]);
        CU_ASSERT_EQUAL(tl_test_wait(pid, 10000), 0);
    }
}

static void test_produce_and_process(void)
{
    char err[512];
    /* Poison first: a garbage message and an event without a customer. */
    produce_raw("garbage", garbage, sizeof garbage - 1);
    enc = tl_event_encoder_new(tl_schema_interaction_event, err, sizeof err);
    CU_ASSERT_FATAL(enc != NULL);
    tl_event bad = {.event_id = "no-customer", .customer_id = "",
                    .ts = 1500000000000, .channel = TL_CH_WEB, .type = "visit"};
    const void *buf;
    size_t len;
    CU_ASSERT_FATAL(tl_event_encode(enc, &bad, &buf, &len, err, sizeof err) == 0);
    produce_raw("", buf, len);

    char *argv[] = {strdup(tl_test_bin("tailorctl")), "produce", "-b",
                    (char *)brokers, "-t", IN_TOPIC, SLICE, NULL};
    CU_ASSERT_EQUAL_FATAL(run_tool(argv), 0);
    free(argv[0]);

    /* A late event: two days before its customer's newest, beyond the
     * default max_lateness of 1h. */
    const ev *lastev = &events[nevents - 1];
    tl_event late = {.event_id = "late-1", .customer_id = lastev->customer_id,
                     .customer_id_len = strlen(lastev->customer_id),
                     .ts = lastev->ts - 2 * DAY_MS, .channel = TL_CH_STORE,
                     .type = "purchase", .item = "late-item", .amount = 1000,
                     .has_amount = 1};
    CU_ASSERT_FATAL(tl_event_encode(enc, &late, &buf, &len, err, sizeof err) == 0);
    produce_raw(lastev->customer_id, buf, len);

    char log[600];
    snprintf(log, sizeof log, "%s/tailord-1.log", tmp);
    pid_t pid = start_tailord(cfg_path, log);
    CU_ASSERT_FATAL(pid > 0);
    int ok = wait_drained("tailord-e2e", 180000);
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(tl_test_stop(pid, SIGTERM, 30000), 0);
    if (!ok) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "tail -n 30 %s >&2", log);
        if (system(cmd)) {}
    }
}

typedef struct ev_index {
    tl_event_decoder *dec;
    tl_arena arena;
    size_t decoded;
} ev_index;

static int by_event_id(const void *a, const void *b)
{
    return strcmp(((const ev *)a)->event_id, ((const ev *)b)->event_id);
}

static void index_input(void *ud, const rd_kafka_message_t *m)
{
    ev_index *x = ud;
    tl_event e;
    char err[256];
    tl_arena_reset(&x->arena);
    if (tl_event_decode(x->dec, m->payload, m->len, &x->arena, &e, err,
                        sizeof err))
        return;
    ev key = {.event_id = (char *)e.event_id};
    ev *hit = bsearch(&key, events, nevents, sizeof *events, by_event_id);
    if (hit) {
        hit->partition = m->partition;
        hit->offset = m->offset;
        x->decoded++;
    }
}

static void test_expected_from_json(void)
{
    /* Where did each event land?  Read the input topic back. */
    char err[256];
    ev_index x = {.dec = tl_event_decoder_new(TL_FMT_AVRO,
                                              tl_schema_interaction_event, NULL,
                                              err, sizeof err)};
    CU_ASSERT_FATAL(x.dec != NULL);
    tl_arena_init(&x.arena, 1 << 16);
    /* bsearch needs event-id order; file order is kept in a copy. */
    ev *file_order = malloc(nevents * sizeof *events);
    memcpy(file_order, events, nevents * sizeof *events);
    qsort(events, nevents, sizeof *events, by_event_id);
    consume_all(IN_TOPIC, index_input, &x);
    CU_ASSERT_EQUAL(x.decoded, nevents);
    /* copy partition/offset back into file order */
    for (size_t i = 0; i < nevents; i++) {
        ev key = {.event_id = file_order[i].event_id};
        ev *hit = bsearch(&key, events, nevents, sizeof *events, by_event_id);
        file_order[i].partition = hit->partition;
        file_order[i].offset = hit->offset;
    }
    memcpy(events, file_order, nevents * sizeof *events);
    free(file_order);
    tl_arena_free(&x.arena);
    tl_event_decoder_free(x.dec);
    for (size_t i = 0; i < nevents; i++) recompute(&events[i]);
    CU_ASSERT(ncusts > 500);
    CU_ASSERT(nwant > 100);
}

/* The kinds of issue 3, recomputed from one customer's events in file order
 * (which is event-time order here), as of the customer's newest event. */
typedef struct expect {
    const char *field;
    char want[256];
    int present;
    int approx; /* decayed: compare as numbers within 1e-9 relative */
} expect;

static int cmp_dept(const void *a, const void *b)
{
    const struct { const char *v; int n; } *x = a, *y = b;
    if (x->n != y->n) return y->n - x->n;
    return strcmp(x->v, y->v);
}

static size_t expectations(const cust *u, expect *f)
{
    size_t n = 0;
    int64_t now = u->last_seen; /* newest event */
#define EXPECT(name, present_, ...)                                            \
    do {                                                                       \
        f[n].field = name;                                                     \
        f[n].present = (present_);                                             \
        f[n].approx = 0;                                                       \
        snprintf(f[n].want, sizeof f[n].want, __VA_ARGS__);                    \
        n++;                                                                   \
    } while (0)
    char num[64];
    fmt_num(num, u->purchases);
    EXPECT("purchases", 1, "%s", num); /* a count of nothing: 0 */
    fmt_num(num, u->spend);
    EXPECT("spend", 1, "%s", num);
    EXPECT("last_item", u->last_item != NULL, "%s", u->last_item ? u->last_item : "");
    EXPECT("last_seen_any", 1, "%" PRId64, u->last_seen);
    fmt_num(num, window_7d(u, now));
    EXPECT("purchases_7d", 1, "%s", num);
    fmt_num(num, u->coupons);
    EXPECT("coupons", 1, "%s", num);

    double lo = 0, hi = 0, sum = 0, cnt = 0, w7 = 0, heat = 0, heat_spend = 0;
    double recent = 0;
    int64_t recent_upd = 0, first = INT64_MAX, last_coupon = -1;
    int have_recent = 0;
    struct { const char *v; int n; } depts[64];
    int ndept = 0;
    const char *stores[64];
    int nstores = 0;
    const char *items3[3] = {0};
    int nitems = 0;
    for (size_t i = 0; i < u->nevs; i++) {
        const ev *e = u->evs[i];
        if (e->ts < first) first = e->ts;
        heat += exp2(-(double)(now - e->ts) / (7.0 * DAY_MS));
        if (strcmp(e->type, "coupon_redemption") == 0) last_coupon = e->ts;
        if (e->has_amount) {
            if (!cnt || e->amount < lo) lo = e->amount;
            if (!cnt || e->amount > hi) hi = e->amount;
            sum += e->amount;
            cnt++;
            if (e->ts / DAY_MS > now / DAY_MS - 7) w7 += e->amount;
            heat_spend += e->amount * exp2(-(double)(now - e->ts) / (7.0 * DAY_MS));
            /* ttl 14d: a gap longer than that starts the sum over */
            if (have_recent && e->ts - recent_upd > 14 * DAY_MS) recent = 0;
            recent += e->amount;
            recent_upd = e->ts;
            have_recent = 1;
        }
        if (e->dept) {
            int k = 0;
            while (k < ndept && strcmp(depts[k].v, e->dept)) k++;
            if (k == ndept) depts[ndept].v = e->dept, depts[ndept++].n = 0;
            depts[k].n++;
        }
        if (e->store) {
            int k = 0;
            while (k < nstores && strcmp(stores[k], e->store)) k++;
            if (k == nstores) stores[nstores++] = e->store;
        }
        if (e->item) {
            /* most recent first; equal times: the later line first */
            items3[2] = items3[1];
            items3[1] = items3[0];
            items3[0] = e->item;
            if (nitems < 3) nitems++;
        }
    }
    fmt_num(num, lo);
    EXPECT("min_amount", cnt > 0, "%s", num);
    fmt_num(num, hi);
    EXPECT("max_amount", cnt > 0, "%s", num);
    fmt_num(num, cnt ? sum / cnt : 0);
    EXPECT("avg_amount", cnt > 0, "%s", num);
    EXPECT("first_seen_any", 1, "%" PRId64, first);
    fmt_num(num, w7);
    EXPECT("spend_7d", 1, "%s", num);
    EXPECT("heat", 1, "%.17g", heat);
    f[n - 1].approx = 1;
    EXPECT("heat_spend", 1, "%.17g", heat_spend);
    f[n - 1].approx = 1;
    qsort(depts, (size_t)ndept, sizeof depts[0], cmp_dept);
    /* Lists are JSON arrays (the data's values need no escaping). */
    char list[256] = "[";
    for (int k = 0; k < ndept && k < 3; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"",
                 k ? "," : "", depts[k].v);
    strcat(list, "]");
    EXPECT("usual_dept", ndept > 0, "%s", list);
    EXPECT("stores", 1, "%d", nstores);
    strcpy(list, "[");
    for (int k = 0; k < nitems; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"",
                 k ? "," : "", items3[k]);
    strcat(list, "]");
    EXPECT("recent_items", nitems > 0, "%s", list);
    EXPECT("last_coupon", last_coupon >= 0, "%" PRId64, last_coupon);
    fmt_num(num, (double)(now - last_coupon) / 1000.0);
    EXPECT("since_coupon", last_coupon >= 0, "%s", num);
    fmt_num(num, recent);
    /* never set: 0; expired by its ttl: none */
    EXPECT("recent_spend", !have_recent || now - recent_upd <= 14 * DAY_MS,
           "%s", num);
#undef EXPECT
    return n;
}

static void test_vectors_equal_recomputation(void)
{
    redisContext *c = redis_connect();
    size_t checked = 0, mismatches = 0, absent_checked = 0;
    for (size_t i = 0; i < ncusts; i++) {
        const cust *u = &custs[i];
        char key[128];
        snprintf(key, sizeof key, "e2e:cx:{%s}", u->id);
        expect f[40];
        size_t n = expectations(u, f);
        for (size_t k = 0; k < n; k++) {
            char *got = tl_test_hget(c, key, f[k].field);
            int same;
            if (!f[k].present) {
                same = !got;
                absent_checked++;
            } else if (f[k].approx) {
                double w = strtod(f[k].want, NULL), g = got ? strtod(got, NULL) : NAN;
                same = got && fabs(g - w) <= 1e-9 * fabs(w);
            } else {
                same = got && strcmp(got, f[k].want) == 0;
            }
            if (!same && mismatches++ < 10)
                fprintf(stderr, "customer %s %s: want %s, got %s\n", u->id,
                        f[k].field, f[k].present ? f[k].want : "(absent)",
                        got ? got : "(absent)");
            free(got);
            checked++;
        }
        /* The key has the configured TTL (30d). */
        redisReply *r = redisCommand(c, "PTTL %s", key);
        CU_ASSERT(r && r->type == REDIS_REPLY_INTEGER && r->integer > 29 * DAY_MS &&
                  r->integer <= 30 * DAY_MS);
        freeReplyObject(r);
    }
    CU_ASSERT_EQUAL(mismatches, 0);
    CU_ASSERT_EQUAL(checked, ncusts * 19);
    CU_ASSERT(absent_checked > 0);
    redisFree(c);
}

/* tailorctl show -c decodes the exact state: as of the newest event it says
 * what the readable fields say; 15 days later the ttl has struck. */
static json_t *show_json(const char *id, const char *at)
{
    char out[600];
    snprintf(out, sizeof out, "%s/show.json", tmp);
    char *argv[] = {strdup(tl_test_bin("tailorctl")), "show", "-c", cfg_path,
                    "--json", (char *)id, at ? "--at" : NULL, (char *)at, NULL};
    pid_t pid = tl_test_spawn(argv, out, NULL);
    free(argv[0]);
    if (tl_test_wait(pid, 30000) != 0) return NULL;
    json_error_t je;
    return json_load_file(out, 0, &je);
}

/* A typed JSON value against the readable text Redis holds: a string is
 * that text, a number its value, an array the text itself. */
static int json_matches(json_t *v, const char *want, int approx)
{
    if (json_is_string(v)) return strcmp(json_string_value(v), want) == 0;
    if (json_is_number(v)) {
        double w = strtod(want, NULL), g = json_number_value(v);
        return approx ? fabs(g - w) <= 1e-9 * fabs(w) : g == w;
    }
    if (!json_is_array(v)) return 0;
    char *s = json_dumps(v, JSON_COMPACT);
    int same = s && strcmp(s, want) == 0;
    free(s);
    return same;
}

static void test_show_reads_exact_state(void)
{
    size_t shown = 0;
    for (size_t i = 0; i < ncusts; i += 97) {
        const cust *u = &custs[i];
        json_t *j = show_json(u->id, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        json_t *feat = json_object_get(j, "features");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "as_of")), u->last_seen);
        expect f[40];
        size_t n = expectations(u, f);
        for (size_t k = 0; k < n; k++) {
            json_t *v = json_object_get(feat, f[k].field);
            int same = f[k].present ? json_matches(v, f[k].want, f[k].approx)
                                    : json_is_null(v);
            if (!same)
                fprintf(stderr, "show %s %s: want %s\n", u->id, f[k].field, f[k].want);
            CU_ASSERT(same);
        }
        json_decref(j);
        char later[32];
        snprintf(later, sizeof later, "%lld", (long long)(u->last_seen + 15 * DAY_MS));
        j = show_json(u->id, later);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        feat = json_object_get(j, "features");
        CU_ASSERT(json_is_null(json_object_get(feat, "recent_spend")));
        CU_ASSERT(json_matches(json_object_get(feat, "purchases_7d"), "0", 0));
        json_decref(j);
        shown++;
    }
    CU_ASSERT(shown >= 5);
}

typedef struct trig_seen {
    tl_trigger_codec *codec;
    tl_arena arena;
    char **ids;
    size_t n;
    int sample_ok;
    size_t bad;
} trig_seen;

static void collect_trigger(void *ud, const rd_kafka_message_t *m)
{
    trig_seen *t = ud;
    tl_trigger tr;
    char err[256];
    tl_arena_reset(&t->arena);
    if (tl_trigger_decode(t->codec, m->payload, m->len, &t->arena, &tr, err,
                          sizeof err)) {
        t->bad++;
        return;
    }
    /* Keyed by customer so a consumer sees one customer's triggers in order. */
    if (m->key_len != strlen(tr.customer_id) ||
        memcmp(m->key, tr.customer_id, m->key_len) != 0)
        t->bad++;
    t->ids = realloc(t->ids, (t->n + 1) * sizeof *t->ids);
    t->ids[t->n++] = strdup(tr.id);
    if (sample_message_id && strcmp(tr.id, sample_message_id) == 0)
        t->sample_ok = strcmp(tr.message, sample_message) == 0 &&
                       strcmp(tr.rule, "r_every") == 0 &&
                       tr.channel == TL_CH_STORE;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Distinct sorted ids (duplicates are allowed on the topic, by contract). */
static size_t uniq(char **ids, size_t n)
{
    qsort(ids, n, sizeof *ids, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && strcmp(ids[k - 1], ids[i]) == 0) {
            free(ids[i]);
            continue;
        }
        ids[k++] = ids[i];
    }
    return k;
}

static size_t triggers_on_topic;

static void test_trigger_ids_equal_expected(void)
{
    char err[256];
    trig_seen t = {.codec = tl_trigger_codec_new(NULL, err, sizeof err)};
    CU_ASSERT_FATAL(t.codec != NULL);
    tl_arena_init(&t.arena, 1 << 16);
    triggers_on_topic = consume_all(OUT_TOPIC, collect_trigger, &t);
    CU_ASSERT_EQUAL(t.bad, 0);
    CU_ASSERT(t.sample_ok);
    size_t got = uniq(t.ids, t.n);
    size_t wn = uniq(want_ids, nwant);
    nwant = wn;
    size_t missing = 0, extra = 0, i = 0, j = 0;
    while (i < wn || j < got) {
        int c = i >= wn ? 1 : j >= got ? -1 : strcmp(want_ids[i], t.ids[j]);
        if (c == 0) i++, j++;
        else if (c < 0) missing++, i++;
        else extra++, j++;
    }
    if (missing || extra)
        fprintf(stderr, "triggers: %zu expected, %zu distinct on the topic, "
                        "%zu missing, %zu extra\n", wn, got, missing, extra);
    CU_ASSERT_EQUAL(missing, 0);
    CU_ASSERT_EQUAL(extra, 0);
    for (size_t k = 0; k < got; k++) free(t.ids[k]);
    free(t.ids);
    tl_arena_free(&t.arena);
    tl_trigger_codec_free(t.codec);
}

typedef struct dlq_seen {
    int garbage, missing, late, other;
} dlq_seen;

static void collect_dlq(void *ud, const rd_kafka_message_t *m)
{
    dlq_seen *d = ud;
    size_t rl = 0;
    const char *reason = tl_test_header(m, "tailor.reason", &rl);
    if (reason && rl == 6 && memcmp(reason, "decode", 6) == 0 &&
        m->len == sizeof garbage - 1 && memcmp(m->payload, garbage, m->len) == 0)
        d->garbage++;
    else if (reason && rl == 16 && memcmp(reason, "missing_customer", 16) == 0)
        d->missing++;
    else if (reason && rl == 4 && memcmp(reason, "late", 4) == 0)
        d->late++;
    else
        d->other++;
}

static void test_dead_letters(void)
{
    dlq_seen d = {0};
    consume_all(DLQ_TOPIC, collect_dlq, &d);
    CU_ASSERT_EQUAL(d.garbage, 1);
    CU_ASSERT_EQUAL(d.missing, 1);
    CU_ASSERT_EQUAL(d.late, 1);
    CU_ASSERT_EQUAL(d.other, 0);
}

static void count_only(void *ud, const rd_kafka_message_t *m)
{
    (void)m;
    (*(size_t *)ud)++;
}

static void test_replay_changes_nothing(void)
{
    snapshot before, after;
    take_snapshot(&before);
    char log[600];
    snprintf(log, sizeof log, "%s/tailord-2.log", tmp);
    pid_t pid = start_tailord(replay_cfg_path, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(wait_drained("tailord-e2e-replay", 180000));
    CU_ASSERT_EQUAL(tl_test_stop(pid, SIGTERM, 30000), 0);
    take_snapshot(&after);
    size_t diff = 0;
    for (size_t i = 0; i < before.n; i++)
        if (strcmp(before.dumps[i], after.dumps[i]) != 0) diff++;
    CU_ASSERT_EQUAL(diff, 0);
    size_t n = 0;
    consume_all(OUT_TOPIC, count_only, &n);
    CU_ASSERT_EQUAL(n, triggers_on_topic);
    free_snapshot(&before);
    free_snapshot(&after);
}

static void test_embedded_broker(void)
{
    /* tailord --embedded brings its own Kafka and says where it is. */
    char out[600], log[600];
    snprintf(out, sizeof out, "%s/embedded.out", tmp);
    snprintf(log, sizeof log, "%s/embedded.log", tmp);
    char *argv[] = {strdup(tl_test_bin("tailord")), "--embedded", "-c",
                    cfg_path, NULL};
    unsetenv("TAILOR_KAFKA_BROKERS");
    pid_t pid = tl_test_spawn(argv, out, log);
    free(argv[0]);
    CU_ASSERT_FATAL(pid > 0);
    char addr[256] = "";
    for (int i = 0; i < 100 && !addr[0]; i++) {
        FILE *f = fopen(out, "r");
        char line[300];
        if (f && fgets(line, sizeof line, f) &&
            strncmp(line, "embedded kafka: ", 16) == 0) {
            snprintf(addr, sizeof addr, "%.200s", line + 16);
            addr[strcspn(addr, "\n")] = 0;
        }
        if (f) fclose(f);
        if (!addr[0]) usleep(100000);
    }
    CU_ASSERT_FATAL(addr[0] != 0);
    /* A new customer, so the shared Redis shows whether it was processed. */
    char path[600];
    snprintf(path, sizeof path, "%s/one.jsonl", tmp);
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("{\"event_id\":\"emb-1\",\"customer_id\":\"embedded-1\",\"ts\":1500000000000,"
          "\"channel\":\"app\",\"type\":\"purchase\",\"item\":\"tea\",\"quantity\":1,"
          "\"amount\":3.5,\"store\":null,\"attrs\":{}}\n", f);
    fclose(f);
    char *pargv[] = {strdup(tl_test_bin("tailorctl")), "produce", "-b", addr, "-t",
                     IN_TOPIC, path, NULL};
    CU_ASSERT_EQUAL(run_tool(pargv), 0);
    free(pargv[0]);
    redisContext *c = redis_connect();
    char *v = NULL;
    for (int i = 0; i < 300 && !v; i++) {
        v = tl_test_hget(c, "e2e:cx:{embedded-1}", "spend");
        if (!v) usleep(100000);
    }
    CU_ASSERT_PTR_NOT_NULL(v);
    if (v) CU_ASSERT_STRING_EQUAL(v, "3.5");
    free(v);
    redisFree(c);
    CU_ASSERT_EQUAL(tl_test_stop(pid, SIGTERM, 30000), 0);
    setenv("TAILOR_KAFKA_BROKERS", brokers, 1);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("e2e", suite_init, suite_clean);
    CU_add_test(s, "tailord --check points at a broken expression", test_check_broken_config);
    CU_add_test(s, "produce the slice and poison, tailord drains it", test_produce_and_process);
    CU_add_test(s, "recompute expectations from the JSON lines", test_expected_from_json);
    CU_add_test(s, "every vector equals the recomputation", test_vectors_equal_recomputation);
    CU_add_test(s, "tailorctl show -c reads the exact state", test_show_reads_exact_state);
    CU_add_test(s, "trigger ids equal the expected set", test_trigger_ids_equal_expected);
    CU_add_test(s, "poison goes to the dead-letter topic", test_dead_letters);
    CU_add_test(s, "a replay from offset 0 changes nothing", test_replay_changes_nothing);
    CU_add_test(s, "tailord --embedded serves its own Kafka", test_embedded_broker);
    int rc = tl_test_run();
    tl_event_encoder_free(enc);
    return rc;
}
