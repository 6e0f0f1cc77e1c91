/*
 * Operating tailord, through the real binaries: the systemd notify protocol
 * on a datagram socket this test opens (READY=1 after the first assignment,
 * WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM) with JSON log
 * lines; SIGHUP reloads (a good config applied between batches with its new
 * rule_version, a bad one and an incompatible one refused while the old
 * rules keep firing, --force); and `tailorctl forget` end to end (key gone,
 * audit record on the audit topic, a running tailord does not write the
 * vector back); a key of another type or a malformed stored watermark
 * holds up its own customer only (dead letters of reason `store`), and
 * /readyz names a Redis outage's cause.
 */
#include <CUnit/Basic.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../support/kafka_util.h"
#include "../support/redis_server.h"
#include "../support/testutil.h"
#include "common.h"
#include "httpc.h"
#include "kafka.h"
#include "trigger.h"

#define IN_TOPIC "interactions"
#define OUT_TOPIC "triggers"
#define DLQ_TOPIC "interactions.dlq"
#define AUDIT_TOPIC "ops.audit"
#define BOUND_MS 30000

static tl_test_world world;
/* tailord processes of the running test, stopped by pid in suite_clean when
 * a fatal assertion left one behind. */
static pid_t running[4];

static pid_t track(pid_t pid)
{
    for (size_t i = 0; pid > 0 && i < 4; i++)
        if (!running[i]) {
            running[i] = pid;
            break;
        }
    return pid;
}

/* SIGTERM and its exit code (see tl_test_stop). */
static int stop(pid_t pid)
{
    for (size_t i = 0; i < 4; i++)
        if (running[i] == pid) running[i] = 0;
    return tl_test_stop(pid, SIGTERM, 30000);
}

static int suite_init(void)
{
    if (tl_test_world_start(&world, 2, IN_TOPIC, OUT_TOPIC, DLQ_TOPIC))
        return 1;
    if (tl_test_world_topic(&world, AUDIT_TOPIC, 1)) return 1;
    return 0;
}

static int suite_clean(void)
{
    for (size_t i = 0; i < 4; i++)
        if (running[i]) tl_test_stop(running[i], SIGKILL, 5000);
    tl_test_world_stop(&world);
    return 0;
}

static int produce_event(const char *id, const char *customer, const char *type,
                         int64_t ts, double amount)
{
    char js[512];
    snprintf(js, sizeof js,
             "{\"event_id\":\"%s\",\"customer_id\":\"%s\",\"ts\":%lld,"
             "\"channel\":\"web\",\"type\":\"%s\",\"amount\":%.2f}",
             id, customer, (long long)ts, type, amount);
    return tl_test_produce(world.brokers, IN_TOPIC, customer, js, strlen(js));
}

/* ---- systemd notify ------------------------------------------------------ */

typedef struct notified {
    int ready, stopping, watchdogs, statuses, reloading;
    int64_t ready_ms, last_ping_ms, max_gap_ms;
} notified;

/* Reads datagrams for up to ms (or until done says so). */
static void receive(int fd, notified *n, int ms, int (*done)(const notified *))
{
    int64_t end = tl_now_mono_ms() + ms;
    while (!done(n) && tl_now_mono_ms() < end) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0) continue;
        char buf[1024];
        ssize_t len = recv(fd, buf, sizeof buf - 1, 0);
        if (len <= 0) continue;
        buf[len] = '\0';
        int64_t now = tl_now_mono_ms();
        /* One datagram may carry several assignments, one per line. */
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
            if (!strcmp(line, "READY=1") && !n->ready++) n->ready_ms = now;
            if (!strcmp(line, "STOPPING=1")) n->stopping++;
            if (!strcmp(line, "RELOADING=1")) n->reloading++;
            if (!strncmp(line, "STATUS=", 7)) n->statuses++;
            if (!strcmp(line, "WATCHDOG=1")) {
                if (n->last_ping_ms && now - n->last_ping_ms > n->max_gap_ms)
                    n->max_gap_ms = now - n->last_ping_ms;
                n->last_ping_ms = now;
                n->watchdogs++;
            }
        }
    }
}

static int ready_and_pinged(const notified *n) { return n->ready && n->watchdogs >= 4; }
static int stopped(const notified *n) { return n->stopping > 0; }
static int reloaded(const notified *n) { return n->ready >= 2; }

static void test_notify(void)
{
    char sock_path[512], cfg[512], log[512], cmd[2048];
    snprintf(sock_path, sizeof sock_path, "%s/notify.sock", world.tmp);
    snprintf(cfg, sizeof cfg, "%s/notify.yaml", world.tmp);
    snprintf(log, sizeof log, "%s/notify.log", world.tmp);
    CU_ASSERT_FATAL(tl_test_write_file(cfg,
        "kafka: { group: ops-notify, input: [" IN_TOPIC "], output: " OUT_TOPIC
        ", dead_letter: " DLQ_TOPIC ", batch_timeout: 20ms }\n"
        "redis: { prefix: 'notify:' }\n"
        "events: { format: json }\n"
        "log: { format: json }\n"
        "features:\n  - { name: n, kind: count }\n") == 0);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    CU_ASSERT_FATAL(strlen(sock_path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    /* WATCHDOG_PID must be tailord's own pid: the shell's, kept by exec. */
    snprintf(cmd, sizeof cmd,
             "NOTIFY_SOCKET='%s' WATCHDOG_USEC=2000000 WATCHDOG_PID=$$ exec '%s' -c '%s'",
             sock_path, tl_test_bin("tailord"), cfg);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t pid = track(tl_test_spawn(argv, NULL, log));
    CU_ASSERT_FATAL(pid > 0);
    notified n = {0};
    int64_t t0 = tl_now_mono_ms();
    receive(fd, &n, BOUND_MS, ready_and_pinged);
    CU_ASSERT_EQUAL(n.ready, 1);
    CU_ASSERT(n.watchdogs >= 4);
    /* Pinged at half of the 2 s interval; a gap near 2 s would get it
     * killed by systemd. */
    CU_ASSERT(n.max_gap_ms > 500 && n.max_gap_ms < 1800);
    CU_ASSERT(n.statuses >= 2);
    /* Ready only once the group gave it partitions. */
    CU_ASSERT(tl_test_log_count(log, "assigned") >= 1);
    fprintf(stderr, "\n  ready after %lld ms, %d pings, max gap %lld ms\n",
            (long long)(n.ready_ms - t0), n.watchdogs, (long long)n.max_gap_ms);
    /* A reload (the same file): RELOADING=1, then READY=1 again. */
    kill(pid, SIGHUP);
    receive(fd, &n, BOUND_MS, reloaded);
    CU_ASSERT_EQUAL(n.reloading, 1);
    CU_ASSERT_EQUAL(n.ready, 2);
    kill(pid, SIGTERM);
    receive(fd, &n, BOUND_MS, stopped);
    CU_ASSERT_EQUAL(n.stopping, 1);
    CU_ASSERT_EQUAL(tl_test_wait(pid, BOUND_MS), 0);
    stop(pid); /* already gone: only untracks it */
    close(fd);
    unlink(sock_path);

    /* log.format json: every line an object with ts, level, module, msg. */
    char *text = tl_test_read_all(log);
    int lines = 0, objects = 0, started = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        lines++;
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        if (o && json_is_string(json_object_get(o, "ts")) &&
            json_is_string(json_object_get(o, "level")) &&
            json_is_string(json_object_get(o, "module")) &&
            json_is_string(json_object_get(o, "msg")))
            objects++;
        else
            fprintf(stderr, "\n  not a JSON log line: %s\n", line);
        if (o && strstr(json_string_value(json_object_get(o, "msg")), "started:"))
            started++;
        json_decref(o);
    }
    CU_ASSERT(lines >= 3);
    CU_ASSERT_EQUAL(objects, lines);
    CU_ASSERT_EQUAL(started, 1);
    free(text);

    /* Without NOTIFY_SOCKET nothing is sent and nothing fails. */
}

/* ---- reload -------------------------------------------------------------- */

typedef struct seen_trigger {
    char rule[32], message[64], version[20], customer[32];
} seen_trigger;

typedef struct trig_list {
    tl_trigger_codec *codec;
    seen_trigger t[64];
    size_t n;
} trig_list;

static void on_trigger(void *ud, const rd_kafka_message_t *m)
{
    trig_list *l = ud;
    if (l->n == 64) return;
    tl_arena arena;
    tl_arena_init(&arena, 4096);
    tl_trigger t;
    char err[TL_ERRSZ];
    if (tl_trigger_decode(l->codec, m->payload, m->len, &arena, &t, err,
                          sizeof err) == TL_OK) {
        seen_trigger *s = &l->t[l->n++];
        memset(s, 0, sizeof *s);
        snprintf(s->rule, sizeof s->rule, "%s", t.rule);
        snprintf(s->message, sizeof s->message, "%s", t.message);
        snprintf(s->customer, sizeof s->customer, "%s", t.customer_id);
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t vl;
        if (!rd_kafka_message_headers(m, &h) &&
            !rd_kafka_header_get_last(h, "rule_version", &v, &vl))
            snprintf(s->version, sizeof s->version, "%.*s", (int)vl,
                     (const char *)v);
    }
    tl_arena_free(&arena);
}

/* Reads the output topic until it holds `want` triggers (bounded). */
static void wait_triggers(trig_list *l, size_t want)
{
    for (int64_t end = tl_now_mono_ms() + BOUND_MS; tl_now_mono_ms() < end;) {
        l->n = 0;
        tl_test_consume_all(world.brokers, OUT_TOPIC, on_trigger, l);
        if (l->n >= want) return;
        usleep(50000);
    }
    fprintf(stderr, "\n  %zu triggers, %zu expected\n", l->n, want);
}

/* The trigger of rule `rule` caused by customer c's visit number k (the
 * message holds k). */
static const seen_trigger *find(const trig_list *l, const char *rule,
                                const char *message)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->t[i].rule, rule) && !strcmp(l->t[i].message, message))
            return &l->t[i];
    return NULL;
}

#define RELOAD_HEAD_G(group)                                                   \
    "kafka: { group: " group ", input: [" IN_TOPIC "], output: " OUT_TOPIC     \
    ", dead_letter: " DLQ_TOPIC ", batch_timeout: 20ms }\n"                    \
    "redis: { prefix: 'reload:' }\n"                                           \
    "events: { format: json }\n"
#define RELOAD_HEAD RELOAD_HEAD_G("ops-reload")

static const char *cfg_v1 =
    RELOAD_HEAD
    "features:\n"
    "  - { name: visits, kind: count, where: 'type == \"visit\"' }\n"
    "triggers:\n"
    "  - name: hello\n"
    "    when: 'type == \"visit\"'\n"
    "    emit: { channel: web, message: 'v1 {{visits}}' }\n";

#define V2_BODY \
    "features:\n" \
    "  - { name: visits, kind: count, where: 'type == \"visit\"' }\n" \
    "  - { name: spent, kind: sum, field: amount }\n" \
    "triggers:\n" \
    "  - name: hello\n" \
    "    when: 'type == \"visit\"'\n" \
    "    emit: { channel: web, message: 'v2 {{visits}}' }\n" \
    "  - name: bye\n" \
    "    when: 'type == \"visit\"'\n" \
    "    if: 'spent > 0'\n" \
    "    emit: { channel: web, message: 'bye {{visits}}' }\n"
static const char *cfg_v2 = RELOAD_HEAD V2_BODY;
/* A new group for the second tailord: the mock cluster may keep the first
 * one's member until its session times out. */
static const char *cfg_v2_force = RELOAD_HEAD_G("ops-reload-force") V2_BODY;

/* Line 6, column 26: the unknown kind. */
static const char *cfg_bad =
    RELOAD_HEAD
    "features:\n"
    "  - { name: visits, kind: count, where: 'type == \"visit\"' }\n"
    "  - { name: spent, kind: summ, field: amount }\n"
    "triggers:\n"
    "  - name: hello\n"
    "    emit: { channel: web, message: 'bad' }\n";

#define REKIND_BODY \
    "features:\n" \
    "  - { name: visits, kind: sum, field: amount, where: 'type == \"visit\"' }\n" \
    "  - { name: spent, kind: sum, field: amount }\n" \
    "triggers:\n" \
    "  - name: hello\n" \
    "    when: 'type == \"visit\"'\n" \
    "    emit: { channel: web, message: 'v3 {{visits}}' }\n"
static const char *cfg_rekind = RELOAD_HEAD REKIND_BODY;
static const char *cfg_rekind_force = RELOAD_HEAD_G("ops-reload-force") REKIND_BODY;

static const char *cfg_regroup =
    "kafka: { group: ops-other, input: [" IN_TOPIC "], output: " OUT_TOPIC
    ", dead_letter: " DLQ_TOPIC ", batch_timeout: 20ms }\n"
    "redis: { prefix: 'reload:' }\n"
    "events: { format: json }\n"
    "features:\n"
    "  - { name: visits, kind: count, where: 'type == \"visit\"' }\n"
    "triggers:\n"
    "  - name: hello\n"
    "    emit: { channel: web, message: 'other group' }\n";

#define T0 1709251200000LL

static void test_reload(void)
{
    char cfg[512], log[512], log2[512];
    snprintf(cfg, sizeof cfg, "%s/reload.yaml", world.tmp);
    snprintf(log, sizeof log, "%s/reload.log", world.tmp);
    snprintf(log2, sizeof log2, "%s/reload-force.log", world.tmp);
    char err[TL_ERRSZ];
    trig_list l = {.codec = tl_trigger_codec_new(NULL, err, sizeof err)};
    CU_ASSERT_PTR_NOT_NULL_FATAL(l.codec);
    CU_ASSERT_FATAL(tl_test_write_file(cfg, cfg_v1) == 0);
    pid_t pid = track(tl_test_start_tailord(cfg, log));
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_FATAL(tl_test_wait_log(log, "assigned", 0, BOUND_MS));

    CU_ASSERT(produce_event("e1", "rita", "visit", T0, 0) == 0);
    wait_triggers(&l, 1);
    const seen_trigger *t1 = find(&l, "hello", "v1 1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t1);
    char v1[20];
    snprintf(v1, sizeof v1, "%s", t1->version);
    CU_ASSERT_EQUAL(strlen(v1), 16);

    /* A good config: applied between batches; state carried over (visits
     * counts on from Redis), the edited rule has a new version, the new
     * rule fires. */
    CU_ASSERT_FATAL(tl_test_write_file(cfg, cfg_v2) == 0);
    char pidtext[24];
    snprintf(pidtext, sizeof pidtext, "%d", (int)pid);
    char *hup[] = {(char *)tl_test_bin("tailorctl"), "reload", "--pid", pidtext,
                   NULL};
    CU_ASSERT_EQUAL(tl_test_run_tool(hup), 0);
    CU_ASSERT_FATAL(tl_test_wait_log(log, "applied:", 0, BOUND_MS));
    CU_ASSERT(produce_event("e2", "rita", "visit", T0 + 1000, 5) == 0);
    wait_triggers(&l, 3);
    const seen_trigger *t2 = find(&l, "hello", "v2 2");
    const seen_trigger *b2 = find(&l, "bye", "bye 2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b2);
    CU_ASSERT_EQUAL(strlen(t2->version), 16);
    CU_ASSERT_STRING_NOT_EQUAL(t2->version, v1);
    char v2[20];
    snprintf(v2, sizeof v2, "%s", t2->version);

    /* A config that does not load: refused with FILE:LINE:COL, the running
     * rules keep firing. */
    CU_ASSERT_FATAL(tl_test_write_file(cfg, cfg_bad) == 0);
    int refused = tl_test_log_count(log, "reload refused");
    char pidfile[600];
    snprintf(pidfile, sizeof pidfile, "%s/tailord.pid", world.tmp);
    CU_ASSERT_FATAL(tl_test_write_file(pidfile, pidtext) == 0);
    char *hup2[] = {(char *)tl_test_bin("tailorctl"), "reload", "--pid-file",
                    pidfile, NULL};
    CU_ASSERT_EQUAL(tl_test_run_tool(hup2), 0);
    CU_ASSERT_FATAL(tl_test_wait_log(log, "reload refused", refused, BOUND_MS));
    char want[600];
    snprintf(want, sizeof want, "%s:6:26: features[1].kind: unknown kind 'summ'", cfg);
    CU_ASSERT(tl_test_log_count(log, want) == 1);
    if (tl_test_log_count(log, want) != 1) fprintf(stderr, "\n  want in log: %s\n", want);
    CU_ASSERT(produce_event("e3", "rita", "visit", T0 + 2000, 1) == 0);
    wait_triggers(&l, 5);
    CU_ASSERT_PTR_NOT_NULL(find(&l, "hello", "v2 3"));
    CU_ASSERT_PTR_NOT_NULL(find(&l, "bye", "bye 3"));

    /* A kind change without --force: refused, old rules keep firing. */
    CU_ASSERT_FATAL(tl_test_write_file(cfg, cfg_rekind) == 0);
    refused = tl_test_log_count(log, "reload refused");
    kill(pid, SIGHUP);
    CU_ASSERT_FATAL(tl_test_wait_log(log, "reload refused", refused, BOUND_MS));
    CU_ASSERT(tl_test_log_count(log, "refused: feature visits (count -> sum)") == 1);
    /* Connection settings: a restart, not a reload. */
    CU_ASSERT_FATAL(tl_test_write_file(cfg, cfg_regroup) == 0);
    refused = tl_test_log_count(log, "reload refused");
    kill(pid, SIGHUP);
    CU_ASSERT_FATAL(tl_test_wait_log(log, "reload refused", refused, BOUND_MS));
    CU_ASSERT(tl_test_log_count(log, "kafka.group changed, which needs a restart") == 1);
    CU_ASSERT(produce_event("e4", "rita", "visit", T0 + 3000, 1) == 0);
    wait_triggers(&l, 7);
    const seen_trigger *t4 = find(&l, "hello", "v2 4");
    CU_ASSERT_PTR_NOT_NULL(t4);
    if (t4) CU_ASSERT_STRING_EQUAL(t4->version, v2);
    CU_ASSERT_PTR_NOT_NULL(find(&l, "bye", "bye 4"));
    CU_ASSERT_EQUAL(stop(pid), 0);
    /* Nothing reached the dead-letter topic: every event was applied. */
    CU_ASSERT_EQUAL(tl_test_log_count(log, "dead letters by reason: decode 0"), 1);

    /* tailord --force: the kind change is applied. */
    CU_ASSERT_FATAL(tl_test_write_file(cfg, cfg_v2_force) == 0);
    char *argv[] = {(char *)tl_test_bin("tailord"), "--force", "-c", cfg, NULL};
    pid = track(tl_test_spawn(argv, NULL, log2));
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_FATAL(tl_test_wait_log(log2, "assigned", 0, BOUND_MS));
    CU_ASSERT_FATAL(tl_test_write_file(cfg, cfg_rekind_force) == 0);
    kill(pid, SIGHUP);
    CU_ASSERT_FATAL(tl_test_wait_log(log2, "applied:", 0, BOUND_MS));
    CU_ASSERT(tl_test_log_count(log2, "reload with force: feature visits (count -> sum)") == 1);
    CU_ASSERT(produce_event("e5", "rita", "visit", T0 + 4000, 2.5) == 0);
    wait_triggers(&l, 8);
    int v3 = 0;
    for (size_t i = 0; i < l.n; i++) v3 += !strncmp(l.t[i].message, "v3 ", 3);
    CU_ASSERT_EQUAL(v3, 1);
    CU_ASSERT_EQUAL(stop(pid), 0);
    tl_trigger_codec_free(l.codec);
}

/* ---- forget -------------------------------------------------------------- */

typedef struct audit_list {
    json_t *rec[8];
    size_t n;
} audit_list;

static void on_audit(void *ud, const rd_kafka_message_t *m)
{
    audit_list *a = ud;
    json_error_t e;
    if (a->n < 8) a->rec[a->n++] = json_loadb(m->payload, m->len, 0, &e);
}

static long long exists(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "EXISTS %s", key);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static void test_forget(void)
{
    char cfg[512], log[512];
    snprintf(cfg, sizeof cfg, "%s/forget.yaml", world.tmp);
    snprintf(log, sizeof log, "%s/forget.log", world.tmp);
    CU_ASSERT_FATAL(tl_test_write_file(cfg,
        "kafka: { group: ops-forget, input: [" IN_TOPIC "], output: " OUT_TOPIC
        ", dead_letter: " DLQ_TOPIC ", batch_timeout: 20ms, audit: " AUDIT_TOPIC " }\n"
        "redis: { prefix: 'forget:' }\n"
        "events: { format: json }\n"
        "features:\n  - { name: n, kind: count }\n") == 0);
    redisContext *rc = redisConnect("127.0.0.1", world.redis->port);
    CU_ASSERT_FATAL(rc && !rc->err);
    pid_t pid = track(tl_test_start_tailord(cfg, log));
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(produce_event("f1", "fiona", "view", T0, 0) == 0);
    CU_ASSERT(produce_event("f2", "fiona", "view", T0 + 1, 0) == 0);
    CU_ASSERT(produce_event("k1", "kept", "view", T0, 0) == 0);
    CU_ASSERT_FATAL(tl_test_wait_drained(world.brokers, "ops-forget", IN_TOPIC,
                                         BOUND_MS));
    char *v = tl_test_hget(rc, "forget:cx:{fiona}", "n");
    CU_ASSERT(v && !strcmp(v, "2"));
    free(v);

    char *argv[] = {(char *)tl_test_bin("tailorctl"), "forget", "-c", cfg,
                    "--reason", "erasure request 42", "--operator", "alice",
                    "fiona", NULL};
    CU_ASSERT_EQUAL(tl_test_run_tool(argv), 0);
    CU_ASSERT_EQUAL(exists(rc, "forget:cx:{fiona}"), 0);
    CU_ASSERT_EQUAL(exists(rc, "forget:cx:{kept}"), 1);
    char *argv2[] = {(char *)tl_test_bin("tailorctl"), "forget", "-c", cfg,
                     "nobody", NULL};
    CU_ASSERT_EQUAL(tl_test_run_tool(argv2), 0);

    audit_list a = {{0}, 0};
    CU_ASSERT_EQUAL(tl_test_consume_all(world.brokers, AUDIT_TOPIC, on_audit, &a), 2);
    CU_ASSERT_EQUAL_FATAL(a.n, 2);
    json_t *r = a.rec[0];
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "action")), "forget");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "customer_id")), "fiona");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "key")), "forget:cx:{fiona}");
    CU_ASSERT(json_is_true(json_object_get(r, "existed")));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "operator")), "alice");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "reason")), "erasure request 42");
    int64_t ms = json_integer_value(json_object_get(r, "time_ms"));
    CU_ASSERT(ms > tl_now_wall_ms() - 120000 && ms <= tl_now_wall_ms());
    CU_ASSERT_EQUAL(strlen(json_string_value(json_object_get(r, "time"))), 20);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a.rec[1]);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(a.rec[1], "customer_id")), "nobody");
    CU_ASSERT(json_is_false(json_object_get(a.rec[1], "existed")));
    CU_ASSERT(json_is_null(json_object_get(a.rec[1], "reason")));
    for (size_t i = 0; i < a.n; i++) json_decref(a.rec[i]);

    /* The running tailord still caches fiona's vector: its next write is
     * refused by the watermark compare-and-set (the key has none any more),
     * so the erased counts are not written back... */
    int fenced = tl_test_log_count(log, "write of a customer vector refused");
    CU_ASSERT(produce_event("f3", "fiona", "view", T0 + 2, 0) == 0);
    CU_ASSERT_FATAL(tl_test_wait_log(log, "write of a customer vector refused", fenced, BOUND_MS));
    CU_ASSERT_FATAL(tl_test_wait_drained(world.brokers, "ops-forget", IN_TOPIC,
                                         BOUND_MS));
    CU_ASSERT_EQUAL(exists(rc, "forget:cx:{fiona}"), 0);
    /* ...and the customer starts over from nothing. */
    CU_ASSERT(produce_event("f4", "fiona", "view", T0 + 3, 0) == 0);
    CU_ASSERT_FATAL(tl_test_wait_drained(world.brokers, "ops-forget", IN_TOPIC,
                                         BOUND_MS));
    v = tl_test_hget(rc, "forget:cx:{fiona}", "n");
    CU_ASSERT(v && !strcmp(v, "1"));
    free(v);
    CU_ASSERT_EQUAL(stop(pid), 0);
    /* The customer id is not in the log above debug. */
    CU_ASSERT_EQUAL(tl_test_log_count(log, "fiona"), 0);

    /* Nothing to erase with, nothing erased: an unreachable broker is found
     * before the key is deleted. */
    freeReplyObject(redisCommand(rc, "HSET forget:cx:{kept} n 1"));
    char bad[600];
    snprintf(bad, sizeof bad, "%s/forget-bad.yaml", world.tmp);
    CU_ASSERT_FATAL(tl_test_write_file(bad,
        "kafka: { brokers: '127.0.0.1:1', group: x }\n"
        "redis: { prefix: 'forget:' }\n") == 0);
    char *argv3[] = {"/usr/bin/env", "-u", "TAILOR_KAFKA_BROKERS",
                     (char *)tl_test_bin("tailorctl"), "forget", "-c", bad,
                     "kept", NULL};
    CU_ASSERT_EQUAL(tl_test_run_tool(argv3), 1);
    CU_ASSERT_EQUAL(exists(rc, "forget:cx:{kept}"), 1);
    redisFree(rc);
}

/* ---- a customer's key that is not a vector --------------------------------- */

typedef struct store_dl {
    int n[4];          /* by customer: wt1, wm1, ok1, other */
    int wrongtype, malformed;
} store_dl;

static void on_store_dl(void *ud, const rd_kafka_message_t *m)
{
    store_dl *d = ud;
    size_t rl = 0, el = 0;
    const char *r = tl_test_header(m, "tailor.reason", &rl);
    const char *e = tl_test_header(m, "tailor.error", &el);
    if (!r || rl != 5 || memcmp(r, "store", 5) || !e) return;
    static const char *const ids[] = {"wt1", "wm1", "ok1"};
    int k = 3;
    for (int i = 0; i < 3; i++)
        if (m->key_len == 3 && !memcmp(m->key, ids[i], 3)) k = i;
    d->n[k]++;
    char text[512];
    snprintf(text, sizeof text, "%.*s", (int)el, e);
    if (strstr(text, ": WRONGTYPE Operation against a key holding the wrong "
                     "kind of value")) d->wrongtype++;
    if (strstr(text, "malformed watermark field '_o:" IN_TOPIC ":")) d->malformed++;
}

/* GET url: the status (0 when the request failed) and the body (malloc'd). */
static int http_get(const char *url, char **body)
{
    char err[TL_ERRSZ];
    int status = 0;
    *body = NULL;
    if (tl_http_request("GET", url, NULL, 5000, &status, body, err, sizeof err))
        status = 0;
    if (!*body) *body = strdup("");
    return status;
}

/* Polls url until its body holds want (bounded); whether it did. */
static int wait_body(const char *url, const char *want)
{
    for (int64_t end = tl_now_mono_ms() + BOUND_MS; tl_now_mono_ms() < end;) {
        char *b;
        http_get(url, &b);
        int ok = strstr(b, want) != NULL;
        if (!ok && tl_now_mono_ms() + 100 >= end)
            fprintf(stderr, "\n  %s: %s (want %s)\n", url, b, want);
        free(b);
        if (ok) return 1;
        usleep(100000);
    }
    return 0;
}

static int count_triggers_of(const trig_list *l, const char *customer)
{
    int n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += !strcmp(l->t[i].rule, "seen") && !strcmp(l->t[i].customer, customer);
    return n;
}

/* A string at one customer's key (and a garbled watermark at another's):
 * those customers' events are dead-lettered (reason store, the Redis error
 * as detail) and committed; everyone else is processed; nothing waits for
 * an outage, /readyz stays ready.  A write refused for a cached customer
 * drops only that customer.  A real outage (OOM) names its cause. */
static void test_wrong_type_key(void)
{
    char cfg[512], log[512], base[64];
    snprintf(cfg, sizeof cfg, "%s/wrongtype.yaml", world.tmp);
    snprintf(log, sizeof log, "%s/wrongtype.log", world.tmp);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", tl_test_free_port());
    CU_ASSERT_FATAL(tl_test_write_filef(cfg,
        "kafka: { group: ops-wrongtype, input: [" IN_TOPIC "], output: " OUT_TOPIC
        ", dead_letter: " DLQ_TOPIC ", batch_timeout: 20ms }\n"
        "redis: { prefix: 'wt:' }\n"
        "events: { format: json }\n"
        "http: { listen: '%s' }\n"
        "features:\n  - { name: n, kind: count }\n"
        "triggers:\n  - { name: seen, emit: { channel: web, message: 'n {{n}}' } }\n",
        base + 7) == 0);
    redisContext *rc = redisConnect("127.0.0.1", world.redis->port);
    CU_ASSERT_FATAL(rc && !rc->err);
    freeReplyObject(redisCommand(rc, "SET wt:cx:{wt1} x"));
    freeReplyObject(redisCommand(rc, "HSET wt:cx:{wm1} n 7 _o:" IN_TOPIC
                                 ":0 garbled _o:" IN_TOPIC ":1 garbled"));
    pid_t pid = track(tl_test_start_tailord(cfg, log));
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(produce_event("w1", "wt1", "view", T0, 0) == 0);
    CU_ASSERT(produce_event("o1", "ok1", "view", T0, 0) == 0);
    CU_ASSERT(produce_event("w2", "wt1", "view", T0 + 1, 0) == 0);
    CU_ASSERT(produce_event("m1", "wm1", "view", T0, 0) == 0);
    CU_ASSERT(produce_event("o2", "ok2", "view", T0, 0) == 0);
    /* Before: the WRONGTYPE reply held every partition, forever. */
    CU_ASSERT_FATAL(tl_test_wait_drained(world.brokers, "ops-wrongtype",
                                         IN_TOPIC, BOUND_MS));
    char *v = tl_test_hget(rc, "wt:cx:{ok1}", "n");
    CU_ASSERT(v && !strcmp(v, "1"));
    free(v);
    v = tl_test_hget(rc, "wt:cx:{ok2}", "n");
    CU_ASSERT(v && !strcmp(v, "1"));
    free(v);
    /* The bad keys are left as they were, for an operator to look at. */
    redisReply *r = redisCommand(rc, "GET wt:cx:{wt1}");
    CU_ASSERT(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "x"));
    freeReplyObject(r);
    v = tl_test_hget(rc, "wt:cx:{wm1}", "n");
    CU_ASSERT(v && !strcmp(v, "7"));
    free(v);
    char err[TL_ERRSZ];
    trig_list l = {.codec = tl_trigger_codec_new(NULL, err, sizeof err)};
    CU_ASSERT_PTR_NOT_NULL_FATAL(l.codec);
    l.n = 0;
    tl_test_consume_all(world.brokers, OUT_TOPIC, on_trigger, &l);
    CU_ASSERT_EQUAL(count_triggers_of(&l, "ok1"), 1);
    CU_ASSERT_EQUAL(count_triggers_of(&l, "ok2"), 1);
    CU_ASSERT_EQUAL(count_triggers_of(&l, "wt1"), 0);
    CU_ASSERT_EQUAL(count_triggers_of(&l, "wm1"), 0);
    store_dl d = {{0}, 0, 0};
    tl_test_consume_all(world.brokers, DLQ_TOPIC, on_store_dl, &d);
    CU_ASSERT_EQUAL(d.n[0], 2);
    CU_ASSERT_EQUAL(d.n[1], 1);
    CU_ASSERT_EQUAL(d.n[2] + d.n[3], 0);
    CU_ASSERT_EQUAL(d.wrongtype, 2);
    CU_ASSERT_EQUAL(d.malformed, 1);
    char url[128];
    snprintf(url, sizeof url, "%s/metrics", base);
    CU_ASSERT(wait_body(url, "tailor_dead_letters_total{reason=\"store\"} 3\n"));
    snprintf(url, sizeof url, "%s/readyz", base);
    CU_ASSERT(wait_body(url, "ready\n"));

    /* ok1 is cached; its key turns into a string: its write is refused
     * (counted, logged), the batch is committed, and its next event finds
     * the string in Redis, so it goes to the dead-letter topic. */
    freeReplyObject(redisCommand(rc, "SET wt:cx:{ok1} x"));
    CU_ASSERT(produce_event("o3", "ok1", "view", T0 + 1, 0) == 0);
    CU_ASSERT_FATAL(tl_test_wait_drained(world.brokers, "ops-wrongtype",
                                         IN_TOPIC, BOUND_MS));
    CU_ASSERT(produce_event("o4", "ok1", "view", T0 + 2, 0) == 0);
    CU_ASSERT(produce_event("o5", "ok2", "view", T0 + 2, 0) == 0);
    CU_ASSERT_FATAL(tl_test_wait_drained(world.brokers, "ops-wrongtype",
                                         IN_TOPIC, BOUND_MS));
    CU_ASSERT_EQUAL(tl_test_log_count(log, "redis refused the vector of a customer"), 1);
    memset(&d, 0, sizeof d);
    tl_test_consume_all(world.brokers, DLQ_TOPIC, on_store_dl, &d);
    CU_ASSERT_EQUAL(d.n[2], 1);
    v = tl_test_hget(rc, "wt:cx:{ok2}", "n");
    CU_ASSERT(v && !strcmp(v, "2"));
    free(v);
    CU_ASSERT_EQUAL(tl_test_log_count(log, "retrying until redis is back"), 0);

    /* A server-wide refusal is an outage, waited out, and /readyz says
     * which. */
    freeReplyObject(redisCommand(rc, "CONFIG SET maxmemory 1"));
    CU_ASSERT(produce_event("o6", "ok2", "view", T0 + 3, 0) == 0);
    CU_ASSERT(wait_body(url, "not ready: redis out of memory\n"));
    freeReplyObject(redisCommand(rc, "CONFIG SET maxmemory 0"));
    CU_ASSERT_FATAL(tl_test_wait_drained(world.brokers, "ops-wrongtype",
                                         IN_TOPIC, BOUND_MS));
    CU_ASSERT(wait_body(url, "ready\n"));
    v = tl_test_hget(rc, "wt:cx:{ok2}", "n");
    CU_ASSERT(v && !strcmp(v, "3"));
    free(v);
    CU_ASSERT_EQUAL(stop(pid), 0);
    /* Customer ids stay out of the log above debug. */
    CU_ASSERT_EQUAL(tl_test_log_count(log, "wt1"), 0);
    tl_trigger_codec_free(l.codec);
    redisFree(rc);
}

/* ---- data lost by Redis --------------------------------------------------- */

static long long hget_ll(redisContext *c, const char *key, const char *field)
{
    char *v = tl_test_hget(c, key, field);
    long long n = v && *v ? atoll(v) : -1;
    free(v);
    return n;
}

/* Redis restarted empty while a customer with 60 purchases was cached:
 * before, the next write was taken for fencing ("another instance advanced
 * it"), the vector dropped, and the customer came back with 1.  Now the
 * restart is seen (a new run_id), the cached vector written back, and the
 * loss counted. */
static void test_redis_lost_data(void)
{
    char cfg[512], log[512], base[64], url[128];
    snprintf(cfg, sizeof cfg, "%s/lost.yaml", world.tmp);
    snprintf(log, sizeof log, "%s/lost.log", world.tmp);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", tl_test_free_port());
    CU_ASSERT_FATAL(tl_test_write_filef(cfg,
        "kafka: { group: ops-lost, input: [" IN_TOPIC "], output: " OUT_TOPIC
        ", dead_letter: " DLQ_TOPIC ", batch_timeout: 20ms }\n"
        "redis: { prefix: 'lost:' }\n"
        "events: { format: json }\n"
        "http: { listen: '%s' }\n"
        "features:\n  - { name: n, kind: count }\n", base + 7) == 0);
    pid_t pid = track(tl_test_start_tailord(cfg, log));
    CU_ASSERT_FATAL(pid > 0);
    for (int i = 0; i < 60; i++) {
        char id[32];
        snprintf(id, sizeof id, "l%d", i);
        CU_ASSERT(produce_event(id, "sixty", "purchase", T0 + i, 1) == 0);
    }
    CU_ASSERT_FATAL(tl_test_wait_drained(world.brokers, "ops-lost", IN_TOPIC,
                                         BOUND_MS));
    redisContext *rc = redisConnect("127.0.0.1", world.redis->port);
    CU_ASSERT_FATAL(rc && !rc->err);
    CU_ASSERT_EQUAL(hget_ll(rc, "lost:cx:{sixty}", "n"), 60);
    redisFree(rc);

    /* Restarted without its data (no persistence in the tests). */
    char err[TL_ERRSZ];
    tl_redis_server_kill(world.redis);
    CU_ASSERT_EQUAL_FATAL(tl_redis_server_restart(world.redis, err, sizeof err), 0);
    CU_ASSERT(produce_event("l60", "sixty", "purchase", T0 + 60, 1) == 0);
    CU_ASSERT_FATAL(tl_test_wait_drained(world.brokers, "ops-lost", IN_TOPIC,
                                         BOUND_MS));
    CU_ASSERT(produce_event("l61", "sixty", "purchase", T0 + 61, 1) == 0);
    CU_ASSERT_FATAL(tl_test_wait_drained(world.brokers, "ops-lost", IN_TOPIC,
                                         BOUND_MS));
    rc = redisConnect("127.0.0.1", world.redis->port);
    CU_ASSERT_FATAL(rc && !rc->err);
    CU_ASSERT_EQUAL(hget_ll(rc, "lost:cx:{sixty}", "n"), 62);
    redisFree(rc);
    snprintf(url, sizeof url, "%s/metrics", base);
    CU_ASSERT(wait_body(url, "tailor_redis_lost_vectors_total 1\n"));
    CU_ASSERT(wait_body(url, "tailor_redis_restarts_total 1\n"));
    CU_ASSERT(wait_body(url, "tailor_vector_write_errors_total{reason=\"fenced\"} 0\n"));
    /* Said in readiness too, which stays 200: tailord works on. */
    snprintf(url, sizeof url, "%s/readyz", base);
    CU_ASSERT(wait_body(url, "ready\nredis lost data since start: 1 restarts "
                             "without their data, 0 keys evicted, 1 cached "
                             "vectors written back"));
    CU_ASSERT_EQUAL(tl_test_log_count(log, "another instance advanced it"), 0);
    CU_ASSERT_EQUAL(tl_test_log_count(log, "redis lost the stored vectors of 1 customers"), 1);
    CU_ASSERT_EQUAL(stop(pid), 0);
}

/* An evicting Redis is refused at start, with what to do; accepted when
 * redis.allow_eviction says so. */
static void test_redis_evicting_refused(void)
{
    char cfg[512], log[512];
    snprintf(cfg, sizeof cfg, "%s/evict.yaml", world.tmp);
    snprintf(log, sizeof log, "%s/evict.log", world.tmp);
    const char *head =
        "kafka: { group: ops-evict, input: [" IN_TOPIC "], output: " OUT_TOPIC
        ", dead_letter: " DLQ_TOPIC ", batch_timeout: 20ms }\n"
        "events: { format: json }\n"
        "features:\n  - { name: n, kind: count }\n";
    CU_ASSERT_FATAL(tl_test_write_filef(cfg, "%sredis: { prefix: 'ev:' }\n",
                                        head) == 0);
    redisContext *rc = redisConnect("127.0.0.1", world.redis->port);
    CU_ASSERT_FATAL(rc && !rc->err);
    freeReplyObject(redisCommand(rc, "CONFIG SET maxmemory-policy allkeys-lru"));
    pid_t pid = tl_test_start_tailord(cfg, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL(tl_test_wait(pid, BOUND_MS), 1);
    CU_ASSERT_EQUAL(tl_test_log_count(log, "redis's maxmemory-policy is "
                                      "allkeys-lru, which may evict "
                                      "customers' vectors"), 1);
    CU_ASSERT_EQUAL(tl_test_log_count(log, "redis.allow_eviction: true"), 1);

    CU_ASSERT_FATAL(tl_test_write_filef(cfg, "%sredis: { prefix: 'ev:', "
                                        "allow_eviction: true }\n", head) == 0);
    pid = track(tl_test_start_tailord(cfg, log));
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(tl_test_wait_log(log, "it may evict customers' vectors "
                               "(redis.allow_eviction is true", 0, BOUND_MS));
    CU_ASSERT(produce_event("e1", "evicted", "view", T0, 0) == 0);
    CU_ASSERT_FATAL(tl_test_wait_drained(world.brokers, "ops-evict", IN_TOPIC,
                                         BOUND_MS));
    CU_ASSERT_EQUAL(hget_ll(rc, "ev:cx:{evicted}", "n"), 1);
    CU_ASSERT_EQUAL(stop(pid), 0);
    freeReplyObject(redisCommand(rc, "CONFIG SET maxmemory-policy noeviction"));
    redisFree(rc);
}

/* produce --rate: 20 events at 40/s take half a second, not less. */
static void test_produce_rate(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/rate.jsonl", world.tmp);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < 20; i++)
        fprintf(f, "{\"event_id\":\"r%d\",\"customer_id\":\"rate\",\"ts\":%lld,"
                   "\"channel\":\"web\",\"type\":\"view\"}\n",
                i, (long long)(T0 + i));
    fclose(f);
    char *argv[] = {(char *)tl_test_bin("tailorctl"), "produce", "-b",
                    (char *)world.brokers, "-t", IN_TOPIC, "--format", "json",
                    "--rate", "40", path, NULL};
    int64_t t0 = tl_now_mono_ms();
    CU_ASSERT_EQUAL(tl_test_run_tool(argv), 0);
    int64_t took = tl_now_mono_ms() - t0;
    CU_ASSERT(took >= 450 && took < 20000);
    char *bad[] = {(char *)tl_test_bin("tailorctl"), "produce", "-b",
                   (char *)world.brokers, "-t", IN_TOPIC, "--rate", "0", path,
                   NULL};
    CU_ASSERT_EQUAL(tl_test_run_tool(bad), 1);

    /* On a terminal (script(1) gives it one), a progress line; not in a
     * pipe (the runs above wrote none to the test's stderr). */
    char cmd[2048], typescript[600];
    snprintf(cmd, sizeof cmd, "'%s' produce -b '%s' -t %s --format json --rate 40 '%s'",
             tl_test_bin("tailorctl"), world.brokers, IN_TOPIC, path);
    snprintf(typescript, sizeof typescript, "%s/typescript", world.tmp);
    char *pty[] = {"script", "-qec", cmd, typescript, NULL};
    CU_ASSERT_EQUAL(tl_test_run_tool(pty), 0);
    char *out = tl_test_read_all(typescript);
    char want[700];
    snprintf(want, sizeof want, "\r%s: ", path);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, " events, "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "produced 20 events"));
    free(out);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("ops", suite_init, suite_clean);
    CU_add_test(s, "systemd notify: READY, WATCHDOG, STOPPING; JSON log lines",
                test_notify);
    CU_add_test(s, "SIGHUP: applied, refused, --force", test_reload);
    CU_add_test(s, "tailorctl forget", test_forget);
    CU_add_test(s, "a key of another type holds up its customer only",
                test_wrong_type_key);
    CU_add_test(s, "tailorctl produce --rate", test_produce_rate);
    CU_add_test(s, "an evicting redis: refused, or allowed",
                test_redis_evicting_refused);
    CU_add_test(s, "redis restarted empty: vectors written back",
                test_redis_lost_data);
    return tl_test_run();
}
