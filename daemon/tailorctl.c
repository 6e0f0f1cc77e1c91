/*
 * tailorctl — the operator's tool: check a configuration, produce events
 * from JSON lines, tail triggers, show a customer's vector, erase a
 * customer, reload tailord, show a consumer group's lag.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "common.h"
#include "config.h"
#include "event.h"
#include "feature.h"
#include "httpc.h"
#include "kafka.h"
#include "schemas.h"
#include "vec.h"
#include "store.h"
#include "http.h"
#include "metrics.h"
#include "trigger.h"
#include "view.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

/* One help text per command: `tailorctl CMD --help` prints it, `tailorctl
 * --help` all of them. */
typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} command;

static const command *current; /* for usage() inside a command */
static const command commands[];
static const size_t ncommands;

static void usage(FILE *out)
{
    if (current) {
        fprintf(out, "usage: tailorctl %s", current->help);
        return;
    }
    fputs("usage: tailorctl COMMAND [options]   (tailorctl COMMAND --help)\n\n", out);
    for (size_t i = 0; i < ncommands; i++)
        fprintf(out, "  %s", commands[i].help);
    fputs("\nBROKERS defaults to $TAILOR_KAFKA_BROKERS, REDIS_URL to "
          "$TAILOR_REDIS_URL.\n", out);
}

static const char help_check[] =
    "check CONFIG\n"
    "      Load and validate a configuration as tailord would (${VAR}\n"
    "      references resolved), print its summary (secrets masked); exit 1\n"
    "      with FILE:LINE:COL: message when it is invalid.\n";
static const char help_produce[] =
    "produce -b BROKERS -t TOPIC [--format avro|json] [--rate N] [--skip-bad]\n"
    "       FILE.jsonl[.gz]...\n"
    "      Encode JSON-lines events as Avro (or send the lines as they are\n"
    "      with --format json) keyed by customer_id, in file order; --rate:\n"
    "      at most N events per second.  On a terminal, a progress line.\n"
    "      A bad line stops it, or with --skip-bad is reported (FILE:LINE:\n"
    "      why) and skipped, with the count of skipped lines at the end.\n";
static const char help_tail[] =
    "tail -b BROKERS -t TOPIC [-n N] [--timeout SEC]\n"
    "      Print triggers from the beginning of TOPIC as JSON lines; stop\n"
    "      after N, or after SEC seconds without a new one.\n";
static const char help_show[] =
    "show [-c CONFIG] [-r REDIS_URL] [--prefix P] [--json] [--all]\n"
    "       [--at MS | --now] CUSTOMER_ID\n"
    "      Print a customer's vector: the readable fields; with -c, every\n"
    "      feature computed from its exact state as of the customer's newest\n"
    "      event (or --at epoch ms, or --now), ttl applied (--all: internal\n"
    "      fields too).  Times show as epoch ms and ISO 8601 UTC.  Without\n"
    "      -c the key prefix is --prefix, default tailor:.\n";
static const char help_forget[] =
    "forget [-c CONFIG] [-r REDIS_URL] [--prefix P] [-b BROKERS]\n"
    "       [--audit-topic T] [--reason TEXT] [--operator NAME] CUSTOMER_ID\n"
    "      Erase a customer: delete its Redis key, then publish an audit\n"
    "      record (JSON) to kafka.audit (default tailor.audit).  Brokers: -b,\n"
    "      $TAILOR_KAFKA_BROKERS or kafka.brokers of CONFIG (no default).  A running\n"
    "      tailord does not write the erased vector back (its watermark\n"
    "      compare-and-set refuses the write); see tailorctl(1).\n";
static const char help_reload[] =
    "reload (--pid PID | --pid-file FILE | --url URL [--token T]) [--force]\n"
    "      Ask tailord to read its configuration again: SIGHUP to PID, and/or\n"
    "      POST URL/v1/reload with the bearer token (default\n"
    "      $TAILOR_HTTP_TOKEN).  --force (URL only) lets the reload remove\n"
    "      features, change their kind or options that shape their state.\n"
    "      The outcome is in tailord's log.\n";
static const char help_stats[] =
    "stats [--url URL | -c CONFIG]\n"
    "      Read tailord's /metrics (URL default $TAILOR_HTTP_URL, else\n"
    "      http://<http.listen of CONFIG>, else http://127.0.0.1:9464) and\n"
    "      print a summary: events, dead letters, triggers, lag, latency,\n"
    "      cache, readiness inputs.\n";
static const char help_lag[] =
    "lag -b BROKERS -g GROUP -t TOPIC\n"
    "      Print committed offset, end offset and lag per partition; the\n"
    "      last line is 'lag TOTAL'.\n";

static const char *env_or(const char *v, const char *env)
{
    if (v) return v;
    const char *e = getenv(env);
    return e && *e ? e : NULL;
}

/* Epoch milliseconds as ISO 8601 UTC to the second, "2017-09-23T23:25:59Z". */
static const char *iso_utc(int64_t ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000 - (ms % 1000 < 0));
    struct tm tm;
    if (!gmtime_r(&secs, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 32, "?");
    return out;
}

static rd_kafka_t *kafka_new(rd_kafka_type_t type, const char *brokers,
                             const char *group)
{
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, e, sizeof e) ||
        (group && rd_kafka_conf_set(conf, "group.id", group, e, sizeof e)) ||
        (type == RD_KAFKA_PRODUCER &&
         rd_kafka_conf_set(conf, "enable.idempotence", "true", e, sizeof e)) ||
        (type == RD_KAFKA_CONSUMER &&
         rd_kafka_conf_set(conf, "enable.auto.commit", "false", e, sizeof e))) {
        fprintf(stderr, "tailorctl: kafka: %s\n", e);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, e, sizeof e);
    if (!rk) {
        fprintf(stderr, "tailorctl: kafka: %s\n", e);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static int delivery_failures;
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *ud)
{
    (void)rk;
    (void)ud;
    if (m->err && delivery_failures++ == 0)
        fprintf(stderr, "tailorctl: delivery failed: %s\n",
                rd_kafka_err2str(m->err));
}

static int cmd_produce(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL, *format = "avro";
    double rate = 0;
    int skip_bad = 0;
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},
        {"rate", required_argument, NULL, 'R'},
        {"skip-bad", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "b:t:f:h", opts, NULL)) != -1) {
        if (o == 'b') brokers = optarg;
        else if (o == 't') topic = optarg;
        else if (o == 'f') format = optarg;
        else if (o == 'S') skip_bad = 1;
        else if (o == 'R') {
            char *end;
            rate = strtod(optarg, &end);
            if (*end || !(rate > 0) || rate > 1e9) {
                fprintf(stderr, "tailorctl produce: --rate takes events per "
                                "second (> 0)\n");
                return 1;
            }
        } else if (o == 'h') return usage(stdout), 0;
        else return usage(stderr), 1;
    }
    brokers = env_or(brokers, "TAILOR_KAFKA_BROKERS");
    int json = strcmp(format, "json") == 0;
    if (!brokers || !topic || optind >= argc ||
        (!json && strcmp(format, "avro") != 0)) {
        fprintf(stderr, "tailorctl produce: needs -b BROKERS, -t TOPIC, "
                        "--format avro|json and at least one FILE\n");
        return 1;
    }
    char err[TL_ERRSZ];
    tl_event_encoder *enc = NULL;
    if (!json && !(enc = tl_event_encoder_new(tl_schema_interaction_event, err,
                                              sizeof err))) {
        fprintf(stderr, "tailorctl: %s\n", err);
        return 1;
    }
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, e, sizeof e);
    rd_kafka_conf_set(conf, "enable.idempotence", "true", e, sizeof e);
    rd_kafka_conf_set(conf, "linger.ms", "20", e, sizeof e);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!rk) {
        fprintf(stderr, "tailorctl: kafka: %s\n", e);
        tl_event_encoder_free(enc);
        return 1;
    }
    tl_arena arena;
    tl_arena_init(&arena, 1 << 16);
    size_t cap = 1 << 16;
    char *line = tl_xmalloc(cap);
    uint64_t count = 0, skipped = 0;
    int rc = 0;
    int64_t t0 = tl_now_mono_ms(), shown_ms = t0;
    int progress = isatty(STDERR_FILENO);
    for (int fi = optind; fi < argc && !rc && !stop; fi++) {
        gzFile gz = gzopen(argv[fi], "rb");
        if (!gz) {
            fprintf(stderr, "tailorctl: cannot open %s\n", argv[fi]);
            rc = 1;
            break;
        }
        unsigned long lineno = 0;
        for (;;) {
            /* Read a whole line however long it is. */
            size_t len = 0;
            int got = 0;
            while (gzgets(gz, line + len, (int)(cap - len))) {
                got = 1;
                len += strlen(line + len);
                if (len && line[len - 1] == '\n') break;
                if (len + 1 >= cap) line = tl_xrealloc(line, cap *= 2);
            }
            if (!got || stop) break;
            lineno++;
            while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = '\0';
            if (!len) continue;
            tl_arena_reset(&arena);
            tl_event ev;
            const void *val = line;
            size_t vlen = len;
            if (tl_event_from_json(line, len, &arena, &ev, err, sizeof err) ||
                (enc && tl_event_encode(enc, &ev, &val, &vlen, err, sizeof err))) {
                fprintf(stderr, "%s:%lu: %s%s\n", argv[fi], lineno,
                        skip_bad ? "skipped: " : "", err);
                if (skip_bad) {
                    skipped++;
                    continue;
                }
                rc = 1;
                break;
            }
            for (;;) {
                rd_kafka_resp_err_t pe = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_KEY((void *)ev.customer_id, ev.customer_id_len),
                    RD_KAFKA_V_VALUE((void *)val, vlen),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
                if (pe == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                    rd_kafka_poll(rk, 50);
                    continue;
                }
                if (pe) {
                    fprintf(stderr, "tailorctl: produce: %s\n",
                            rd_kafka_err2str(pe));
                    rc = 1;
                }
                break;
            }
            if (rc) break;
            count++;
            rd_kafka_poll(rk, 0);
            int64_t now = tl_now_mono_ms();
            if (rate > 0) {
                /* Ahead of schedule: wait, serving delivery reports. */
                int64_t due = t0 + (int64_t)((double)count * 1000.0 / rate);
                while (now < due && !stop) {
                    rd_kafka_poll(rk, (int)(due - now < 100 ? due - now : 100));
                    now = tl_now_mono_ms();
                }
            }
            if (progress && now - shown_ms >= 250) {
                shown_ms = now;
                fprintf(stderr, "\r%s: %" PRIu64 " events, %.0f/s, %d in flight ",
                        argv[fi], count,
                        now > t0 ? (double)count * 1000.0 / (double)(now - t0) : 0.0,
                        rd_kafka_outq_len(rk));
            }
        }
        gzclose(gz);
    }
    if (progress && count) fputc('\n', stderr);
    while (rd_kafka_outq_len(rk) > 0 && rd_kafka_flush(rk, 1000)) {
        if (stop) break;
    }
    if (rd_kafka_outq_len(rk) > 0 || delivery_failures) {
        fprintf(stderr, "tailorctl: %d messages not delivered\n",
                rd_kafka_outq_len(rk) + delivery_failures);
        rc = 1;
    }
    double secs = (double)(tl_now_mono_ms() - t0) / 1000.0;
    printf("produced %" PRIu64 " events to %s in %.1f s\n", count, topic, secs);
    if (skip_bad)
        fprintf(stderr, "tailorctl produce: skipped %" PRIu64 " bad line%s\n",
                skipped, skipped == 1 ? "" : "s");
    rd_kafka_destroy(rk);
    free(line);
    tl_arena_free(&arena);
    tl_event_encoder_free(enc);
    return rc;
}

/* Assigns every partition of topic from the beginning. */
static int assign_all(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int tries = 0; tries < 50; tries++) {
        e = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
        if (!e && md->topic_cnt == 1 && !md->topics[0].err &&
            md->topics[0].partition_cnt > 0)
            break;
        if (!e) {
            rd_kafka_metadata_destroy(md);
            md = NULL;
            e = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
        }
        rd_kafka_poll(rk, 100);
    }
    rd_kafka_topic_destroy(rkt);
    if (e || !md) {
        fprintf(stderr, "tailorctl: topic %s: %s\n", topic, rd_kafka_err2str(e));
        return -1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(
        md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(l, topic, md->topics[0].partitions[i].id)
            ->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) fprintf(stderr, "tailorctl: assign: %s\n", rd_kafka_err2str(e));
    return e ? -1 : 0;
}

static int cmd_tail(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL;
    long max = -1;
    double timeout = -1;
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "b:t:n:h", opts, NULL)) != -1) {
        if (o == 'h') return usage(stdout), 0;
        if (o == 'b') brokers = optarg;
        else if (o == 't') topic = optarg;
        else if (o == 'n') max = atol(optarg);
        else if (o == 'T') timeout = atof(optarg);
        else return usage(stderr), 1;
    }
    brokers = env_or(brokers, "TAILOR_KAFKA_BROKERS");
    if (!brokers || !topic || optind != argc) {
        fprintf(stderr, "tailorctl tail: needs -b BROKERS and -t TOPIC\n");
        return 1;
    }
    char err[TL_ERRSZ];
    tl_trigger_codec *codec = tl_trigger_codec_new(NULL, err, sizeof err);
    if (!codec) {
        fprintf(stderr, "tailorctl: %s\n", err);
        return 1;
    }
    rd_kafka_t *rk = kafka_new(RD_KAFKA_CONSUMER, brokers, "tailorctl-tail");
    if (!rk || assign_all(rk, topic)) {
        if (rk) rd_kafka_destroy(rk);
        tl_trigger_codec_free(codec);
        return 1;
    }
    tl_arena arena;
    tl_arena_init(&arena, 1 << 16);
    long n = 0;
    int rc = 0;
    int64_t last = tl_now_mono_ms();
    while (!stop && (max < 0 || n < max)) {
        if (timeout >= 0 && tl_now_mono_ms() - last > (int64_t)(timeout * 1000))
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "tailorctl: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        tl_arena_reset(&arena);
        tl_trigger t;
        if (tl_trigger_decode(codec, m->payload, m->len, &arena, &t, err,
                              sizeof err)) {
            fprintf(stderr, "tailorctl: [%" PRId32 "] @%" PRId64 ": %s\n",
                    m->partition, m->offset, err);
        } else {
            char *js = tl_trigger_to_json(&t);
            printf("%s\n", js);
            fflush(stdout);
            free(js);
            n++;
        }
        last = tl_now_mono_ms();
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    tl_arena_free(&arena);
    tl_trigger_codec_free(codec);
    return rc;
}

/* A field of `show` that holds epoch milliseconds: the newest event's _ts,
 * and (with a configuration to tell) first_seen and last_seen features. */
static int is_time_field(const tl_config *cfg, const char *name)
{
    if (strcmp(name, "_ts") == 0) return 1;
    for (size_t i = 0; cfg && i < cfg->nfeatures; i++)
        if (strcmp(cfg->features[i].name, name) == 0)
            return cfg->features[i].kind == TL_FK_FIRST_SEEN ||
                   cfg->features[i].kind == TL_FK_LAST_SEEN;
    return 0;
}

/* The customer's Redis key (tl_vec_key, the daemon's own), malloc'ed. */
static char *customer_key(const char *prefix, const char *id, size_t *klen)
{
    tl_arena arena;
    tl_arena_init(&arena, 1024);
    size_t n;
    char *key = tl_xstrdup(tl_vec_key(&arena, prefix, id, strlen(id), &n));
    tl_arena_free(&arena);
    if (klen) *klen = n;
    return key;
}

static int cmd_show(int argc, char **argv)
{
    const char *url = NULL, *prefix = NULL, *config = NULL;
    int json = 0, all = 0;
    tl_view_when when = TL_VIEW_AT_NEWEST;
    int64_t at = 0;
    static const struct option opts[] = {
        {"redis", required_argument, NULL, 'r'},
        {"prefix", required_argument, NULL, 'p'},
        {"config", required_argument, NULL, 'c'},
        {"at", required_argument, NULL, 'A'},
        {"now", no_argument, NULL, 'N'},
        {"json", no_argument, NULL, 'j'},
        {"all", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "r:p:c:h", opts, NULL)) != -1) {
        if (o == 'h') return usage(stdout), 0;
        if (o == 'r') url = optarg;
        else if (o == 'p') prefix = optarg;
        else if (o == 'c') config = optarg;
        else if (o == 'A') {
            if (tl_parse_i64(optarg, strlen(optarg), &at)) {
                fprintf(stderr, "tailorctl show: --at takes epoch milliseconds\n");
                return 1;
            }
            if (when != TL_VIEW_AT_NOW) when = TL_VIEW_AT_MS;
        } else if (o == 'N') when = TL_VIEW_AT_NOW;
        else if (o == 'j') json = 1;
        else if (o == 'a') all = 1;
        else return usage(stderr), 1;
    }
    char err[TL_ERRSZ];
    tl_config *cfg = NULL;
    if (config && !(cfg = tl_config_load(config, err, sizeof err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    url = env_or(url, "TAILOR_REDIS_URL");
    if (!url && cfg) url = cfg->redis_url;
    int prefix_given = prefix != NULL;
    if (!prefix) prefix = cfg ? cfg->redis_prefix : "tailor:";
    if (!url || optind + 1 != argc) {
        fprintf(stderr, "tailorctl show: needs -r REDIS_URL (or -c CONFIG) "
                        "and one CUSTOMER_ID\n");
        tl_config_free(cfg);
        return 1;
    }
    const char *id = argv[optind];
    tl_store *st = tl_store_new(url, 5000, err, sizeof err);
    if (!st) {
        fprintf(stderr, "tailorctl: %s\n", err);
        tl_config_free(cfg);
        return 1;
    }
    char *key = customer_key(prefix, id, NULL);
    tl_view_fields raw = {NULL, 0}, shown = {NULL, 0};
    int64_t as_of = 0;
    int rc = tl_view_load(st, prefix, id, strlen(id), &raw, err, sizeof err);
    if (rc) {
        fprintf(stderr, "tailorctl: %s\n", err);
    } else if (!raw.n) {
        /* Without -c nothing says what redis.prefix the deployment uses. */
        fprintf(stderr, "tailorctl: no vector for customer %s (key %s)%s\n",
                id, key,
                cfg || prefix_given ? ""
                                    : "; another redis.prefix? give --prefix P "
                                      "or -c CONFIG");
        rc = 1;
    } else if (cfg && tl_view_compute(cfg, id, &raw, when, at, &shown, &as_of,
                                      err, sizeof err)) {
        fprintf(stderr, "tailorctl: customer %s: %s\n", id, err);
        rc = 1;
    } else {
        tl_view_sort(&raw);
        for (size_t i = 0; i < raw.n; i++)
            if ((!cfg && raw.f[i].name[0] != '_') || all)
                tl_view_add(&shown, raw.f[i].name, strlen(raw.f[i].name),
                            raw.f[i].val, strlen(raw.f[i].val));
        if (json) {
            char *js = tl_view_json(id, &shown, cfg != NULL, as_of);
            printf("%s\n", js);
            free(js);
        } else {
            size_t w = cfg ? strlen("(as of)") : 0;
            for (size_t i = 0; i < shown.n; i++)
                if (strlen(shown.f[i].name) > w) w = strlen(shown.f[i].name);
            char iso[32];
            printf("customer %s (%s)\n", id, key);
            if (cfg)
                printf("  %-*s  %lld (%s)\n", (int)w, "(as of)",
                       (long long)as_of, iso_utc(as_of, iso));
            for (size_t i = 0; i < shown.n; i++) {
                const char *v = shown.f[i].val;
                int64_t ms;
                printf("  %-*s  %s", (int)w, shown.f[i].name, v ? v : "(missing)");
                if (v && is_time_field(cfg, shown.f[i].name) &&
                    !tl_parse_i64(v, strlen(v), &ms))
                    printf(" (%s)", iso_utc(ms, iso));
                putchar('\n');
            }
        }
    }
    tl_view_fields_free(&raw);
    tl_view_fields_free(&shown);
    free(key);
    tl_store_free(st);
    tl_config_free(cfg);
    return rc ? 1 : 0;
}

static int cmd_lag(int argc, char **argv)
{
    const char *brokers = NULL, *group = NULL, *topic = NULL;
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "b:g:t:h", opts, NULL)) != -1) {
        if (o == 'h') return usage(stdout), 0;
        if (o == 'b') brokers = optarg;
        else if (o == 'g') group = optarg;
        else if (o == 't') topic = optarg;
        else return usage(stderr), 1;
    }
    brokers = env_or(brokers, "TAILOR_KAFKA_BROKERS");
    if (!brokers || !group || !topic) {
        fprintf(stderr, "tailorctl lag: needs -b BROKERS -g GROUP -t TOPIC\n");
        return 1;
    }
    rd_kafka_t *rk = kafka_new(RD_KAFKA_CONSUMER, brokers, group);
    if (!rk) return 1;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (e || md->topics[0].err) {
        fprintf(stderr, "tailorctl: topic %s: %s\n", topic,
                rd_kafka_err2str(e ? e : md->topics[0].err));
        if (md) rd_kafka_metadata_destroy(md);
        rd_kafka_destroy(rk);
        return 1;
    }
    int np = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < np; i++)
        rd_kafka_topic_partition_list_add(l, topic, md->topics[0].partitions[i].id);
    rd_kafka_metadata_destroy(md);
    int rc = 0;
    e = rd_kafka_committed(rk, l, 10000);
    if (e) {
        fprintf(stderr, "tailorctl: committed offsets: %s\n", rd_kafka_err2str(e));
        rc = 1;
    }
    int64_t total = 0;
    for (int i = 0; !rc && i < l->cnt; i++) {
        int64_t lo, hi;
        e = rd_kafka_query_watermark_offsets(rk, topic, l->elems[i].partition,
                                             &lo, &hi, 10000);
        if (e) {
            fprintf(stderr, "tailorctl: watermarks: %s\n", rd_kafka_err2str(e));
            rc = 1;
            break;
        }
        int64_t c = l->elems[i].offset < 0 ? lo : l->elems[i].offset;
        printf("%s [%" PRId32 "] committed %" PRId64 " end %" PRId64
               " lag %" PRId64 "\n",
               topic, l->elems[i].partition, l->elems[i].offset, hi, hi - c);
        total += hi - c;
    }
    if (!rc) printf("lag %" PRId64 "\n", total);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- stats --------------------------------------------------------------- */

typedef struct sample {
    char *name, *labels; /* labels: "k=v,k=v" in exposition order */
    double v;
} sample;
typedef struct samples {
    sample *s;
    size_t n;
} samples;

static void keep_sample(void *ud, const char *name, const char *const *labels,
                        size_t nlabels, double v)
{
    samples *ss = ud;
    tl_buf lb = {0};
    for (size_t i = 0; i < nlabels; i++)
        tl_buf_printf(&lb, "%s%s=%s", i ? "," : "", labels[2 * i],
                      labels[2 * i + 1]);
    ss->s = tl_xrealloc(ss->s, (ss->n + 1) * sizeof *ss->s);
    ss->s[ss->n++] = (sample){tl_xstrdup(name), lb.s ? lb.s : tl_xstrdup(""), v};
}

/* Value of name with exactly these labels; 0 when absent. */
static double metric(const samples *ss, const char *name, const char *labels)
{
    for (size_t i = 0; i < ss->n; i++)
        if (!strcmp(ss->s[i].name, name) && !strcmp(ss->s[i].labels, labels))
            return ss->s[i].v;
    return 0;
}

/* The le bound under which fraction q of a histogram's observations fall
 * (an upper estimate, as buckets allow). */
static const char *quantile(const samples *ss, const char *name,
                            const char *extra, double q, char *out,
                            size_t outsz)
{
    char bucket[128], cname[128];
    snprintf(bucket, sizeof bucket, "%s_bucket", name);
    snprintf(cname, sizeof cname, "%s_count", name);
    double total = metric(ss, cname, extra);
    snprintf(out, outsz, "-");
    if (total <= 0) return out;
    size_t plen = strlen(extra);
    for (size_t i = 0; i < ss->n; i++) {
        const sample *x = &ss->s[i];
        if (strcmp(x->name, bucket) || strncmp(x->labels, extra, plen)) continue;
        const char *le = strstr(x->labels, "le=");
        if (!le || le != x->labels + plen + (plen ? 1 : 0)) continue;
        if (x->v >= q * total) {
            le += 3;
            if (!strcmp(le, "+Inf")) snprintf(out, outsz, "> 10 s");
            else snprintf(out, outsz, "<= %g ms", strtod(le, NULL) * 1000);
            return out;
        }
    }
    return out;
}

static void print_latency(const samples *ss, const char *what,
                          const char *name, const char *labels)
{
    char sum[128], cnt[128], p50[32], p99[32];
    snprintf(sum, sizeof sum, "%s_sum", name);
    snprintf(cnt, sizeof cnt, "%s_count", name);
    double n = metric(ss, cnt, labels);
    printf("  %-16s %.0f, mean %.2f ms, p50 %s, p99 %s\n", what, n,
           n > 0 ? metric(ss, sum, labels) * 1000 / n : 0.0,
           quantile(ss, name, labels, 0.5, p50, sizeof p50),
           quantile(ss, name, labels, 0.99, p99, sizeof p99));
}

static int cmd_stats(int argc, char **argv)
{
    const char *url = NULL, *config = NULL;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "u:c:h", opts, NULL)) != -1) {
        if (o == 'u') url = optarg;
        else if (o == 'c') config = optarg;
        else if (o == 'h') return usage(stdout), 0;
        else return usage(stderr), 1;
    }
    if (optind != argc) return usage(stderr), 1;
    char err[TL_ERRSZ], buf[300];
    url = env_or(url, "TAILOR_HTTP_URL");
    if (!url && config) {
        tl_config *cfg = tl_config_load(config, err, sizeof err);
        if (!cfg) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        if (!cfg->http_listen) {
            fprintf(stderr, "tailorctl stats: %s has no http.listen\n", config);
            tl_config_free(cfg);
            return 1;
        }
        snprintf(buf, sizeof buf, "http://%s", cfg->http_listen);
        tl_config_free(cfg);
        url = buf;
    }
    if (!url) url = "http://127.0.0.1:9464";
    char full[512];
    snprintf(full, sizeof full, "%s%s", url,
             strstr(url + (strncmp(url, "http://", 7) ? 0 : 7), "/") ? ""
                                                                    : "/metrics");
    char *body = NULL;
    int status = 0;
    if (tl_http_request("GET", full, NULL, 5000, &status, &body, err,
                        sizeof err)) {
        fprintf(stderr, "tailorctl stats: %s\n", err);
        free(body);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "tailorctl stats: %s: HTTP %d\n", full, status);
        free(body);
        return 1;
    }
    samples ss = {NULL, 0};
    int rc = tl_prom_parse(body ? body : "", body ? strlen(body) : 0, keep_sample, &ss,
                           err, sizeof err);
    if (rc) {
        fprintf(stderr, "tailorctl stats: %s: %s\n", full, err);
    } else {
        for (size_t i = 0; i < ss.n; i++)
            if (!strcmp(ss.s[i].name, "tailor_config_info"))
                printf("config        %s\n", ss.s[i].labels);
        printf("events        %.0f consumed: %.0f applied, %.0f duplicate, "
               "%.0f dead letters\n",
               metric(&ss, "tailor_events_consumed_total", ""),
               metric(&ss, "tailor_events_total", "result=applied"),
               metric(&ss, "tailor_events_total", "result=duplicate"),
               metric(&ss, "tailor_events_total", "result=dead_letter"));
        for (size_t i = 0; i < ss.n; i++)
            if (!strcmp(ss.s[i].name, "tailor_dead_letters_total") && ss.s[i].v > 0)
                printf("  dead letter   %s: %.0f\n", ss.s[i].labels + 7, ss.s[i].v);
        printf("triggers\n");
        for (size_t i = 0; i < ss.n; i++)
            if (!strcmp(ss.s[i].name, "tailor_triggers_total"))
                printf("  %s: %.0f\n", ss.s[i].labels, ss.s[i].v);
        for (size_t i = 0; i < ss.n; i++)
            if (!strcmp(ss.s[i].name, "tailor_triggers_suppressed_total") &&
                ss.s[i].v > 0)
                printf("  suppressed %s: %.0f\n", ss.s[i].labels + 7, ss.s[i].v);
        double lag = 0;
        int parts = 0;
        for (size_t i = 0; i < ss.n; i++)
            if (!strcmp(ss.s[i].name, "tailor_consumer_lag")) {
                lag += ss.s[i].v;
                parts++;
            }
        printf("kafka         %.0f partitions assigned, %d with known lag, "
               "lag %.0f, %.0f rebalances, %.0f brokers up\n",
               metric(&ss, "tailor_assigned_partitions", ""), parts, lag,
               metric(&ss, "tailor_rebalances_total", ""),
               metric(&ss, "tailor_kafka_brokers_up", ""));
        printf("redis         %s%s\n",
               metric(&ss, "tailor_redis_up", "") > 0 ? "up" : "DOWN",
               metric(&ss, "tailor_paused", "") > 0 ? ", input paused" : "");
        printf("cache         %.0f customers, hit ratio %.3f\n",
               metric(&ss, "tailor_cache_customers", ""),
               metric(&ss, "tailor_cache_hit_ratio", ""));
        printf("latency\n");
        print_latency(&ss, "batches", "tailor_batch_duration_seconds", "");
        print_latency(&ss, "redis loads", "tailor_redis_duration_seconds",
                      "op=load");
        print_latency(&ss, "redis flushes", "tailor_redis_duration_seconds",
                      "op=flush");
    }
    for (size_t i = 0; i < ss.n; i++) free(ss.s[i].name), free(ss.s[i].labels);
    free(ss.s);
    free(body);
    return rc ? 1 : 0;
}

static int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'h') return usage(stdout), 0;
        return usage(stderr), 1;
    }
    if (optind + 1 != argc) return usage(stderr), 1;
    char err[TL_ERRSZ];
    tl_config *cfg = tl_config_load(argv[optind], err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    tl_config_print_summary(cfg, stdout);
    printf("%s: OK\n", argv[optind]);
    tl_config_free(cfg);
    return 0;
}

/* Who erased: $SUDO_USER (the person behind sudo), else the login name. */
static const char *operator_name(void)
{
    const char *u = getenv("SUDO_USER");
    if (u && *u) return u;
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_name) return pw->pw_name;
    u = getenv("USER");
    return u && *u ? u : "unknown";
}

static int cmd_forget(int argc, char **argv)
{
    const char *url = NULL, *prefix = NULL, *config = NULL, *brokers = NULL,
               *topic = NULL, *reason = NULL, *op = NULL;
    /* Env overrides inside tl_config_load apply to -c files too; options
     * are applied below. */
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"redis", required_argument, NULL, 'r'},
        {"prefix", required_argument, NULL, 'p'},
        {"brokers", required_argument, NULL, 'b'},
        {"audit-topic", required_argument, NULL, 'a'},
        {"reason", required_argument, NULL, 'R'},
        {"operator", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "c:r:p:b:h", opts, NULL)) != -1) {
        if (o == 'c') config = optarg;
        else if (o == 'r') url = optarg;
        else if (o == 'p') prefix = optarg;
        else if (o == 'b') brokers = optarg;
        else if (o == 'a') topic = optarg;
        else if (o == 'R') reason = optarg;
        else if (o == 'o') op = optarg;
        else if (o == 'h') return usage(stdout), 0;
        else return usage(stderr), 1;
    }
    char err[TL_ERRSZ];
    tl_config *cfg = NULL;
    /* Without -c, the defaults (Kafka properties come only from a file). */
    cfg = config ? tl_config_load(config, err, sizeof err)
                 : tl_config_load_string("{}", 2, "(defaults)", err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* Options win over the file; a file wins over the built-in defaults. */
    url = env_or(url, "TAILOR_REDIS_URL");
    if (!url && config) url = cfg->redis_url;
    brokers = env_or(brokers, "TAILOR_KAFKA_BROKERS");
    /* Not the built-in localhost:9092: the audit record must reach the
     * deployment's Kafka, and an absent one would be waited for. */
    if (!brokers && cfg->brokers_given) brokers = cfg->brokers;
    if (!prefix) prefix = cfg->redis_prefix;
    if (!topic) topic = cfg->audit;
    if (!brokers) {
        fprintf(stderr, "tailorctl forget: no Kafka brokers for the audit "
                        "record: give -b BROKERS, kafka.brokers in the -c "
                        "file, or $TAILOR_KAFKA_BROKERS (nothing erased)\n");
        tl_config_free(cfg);
        return 1;
    }
    if (!url || !brokers || optind + 1 != argc || !*argv[optind]) {
        fprintf(stderr, "tailorctl forget: needs -r REDIS_URL and -b BROKERS "
                        "(or -c CONFIG) and one CUSTOMER_ID\n");
        tl_config_free(cfg);
        return 1;
    }
    const char *id = argv[optind];
    if (!op) op = operator_name();
    int rc = 1, existed = 0;
    tl_store *st = NULL;
    rd_kafka_t *rk = NULL;
    char *key = NULL, *js = NULL;
    json_t *rec = NULL;
    /* The producer first: a broker that cannot be reached is found before
     * anything is erased. */
    char e[512];
    tl_kafka_opts ko = tl_kafka_opts_of(cfg, brokers);
    rd_kafka_conf_t *conf = tl_kafka_conf(&ko, err, sizeof err);
    if (!conf) {
        fprintf(stderr, "tailorctl: %s\n", err);
        goto done;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, e, sizeof e) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", e, sizeof e)) {
        fprintf(stderr, "tailorctl: kafka: %s\n", e);
        rd_kafka_conf_destroy(conf);
        goto done;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e))) {
        fprintf(stderr, "tailorctl: kafka: %s\n", e);
        rd_kafka_conf_destroy(conf);
        goto done;
    }
    if (tl_kafka_check(&ko, 10000, err, sizeof err)) {
        fprintf(stderr, "tailorctl: %s (nothing erased)\n", err);
        goto done;
    }
    if (!(st = tl_store_new(url, 5000, err, sizeof err))) {
        fprintf(stderr, "tailorctl: %s (nothing erased)\n", err);
        goto done;
    }
    size_t klen;
    key = customer_key(prefix, id, &klen);
    if (tl_store_delete(st, key, klen, &existed, err, sizeof err)) {
        fprintf(stderr, "tailorctl: %s (nothing erased)\n", err);
        goto done;
    }
    int64_t now = tl_now_wall_ms();
    char when[32], host[256] = "";
    iso_utc(now, when);
    gethostname(host, sizeof host - 1);
    rec = json_object();
    json_object_set_new(rec, "action", json_string("forget"));
    json_object_set_new(rec, "customer_id", json_string(id));
    json_object_set_new(rec, "key", json_string(key));
    json_object_set_new(rec, "existed", json_boolean(existed));
    json_object_set_new(rec, "time", json_string(when));
    json_object_set_new(rec, "time_ms", json_integer(now));
    json_object_set_new(rec, "operator", json_string(op));
    json_object_set_new(rec, "host", json_string(host));
    json_object_set_new(rec, "reason", reason ? json_string(reason) : json_null());
    js = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    rd_kafka_resp_err_t pe = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((void *)id, strlen(id)),
        RD_KAFKA_V_VALUE(js, strlen(js)),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (!pe) rd_kafka_flush(rk, 15000);
    if (pe || rd_kafka_outq_len(rk) > 0 || delivery_failures) {
        fprintf(stderr, "tailorctl: customer %s %s, but the audit record was "
                "not delivered to %s (%s): run forget again to record it\n",
                id, existed ? "erased" : "had no vector",
                topic, pe ? rd_kafka_err2str(pe) : "delivery failed");
        goto done;
    }
    printf("%s: %s; audit record on %s\n", id,
           existed ? "erased" : "no vector (nothing to erase)", topic);
    rc = 0;
done:
    free(js);
    json_decref(rec);
    free(key);
    if (rk) rd_kafka_destroy(rk);
    tl_store_free(st);
    tl_config_free(cfg);
    return rc;
}

static int cmd_reload(int argc, char **argv)
{
    const char *pidfile = NULL, *url = NULL, *token = NULL;
    long pid = 0;
    int force = 0;
    static const struct option opts[] = {
        {"pid", required_argument, NULL, 'p'},
        {"pid-file", required_argument, NULL, 'P'},
        {"url", required_argument, NULL, 'u'},
        {"token", required_argument, NULL, 't'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "p:u:t:fh", opts, NULL)) != -1) {
        char *end;
        if (o == 'p') {
            pid = strtol(optarg, &end, 10);
            if (*end || pid <= 1) {
                fprintf(stderr, "tailorctl reload: --pid takes a process id\n");
                return 1;
            }
        } else if (o == 'P') pidfile = optarg;
        else if (o == 'u') url = optarg;
        else if (o == 't') token = optarg;
        else if (o == 'f') force = 1;
        else if (o == 'h') return usage(stdout), 0;
        else return usage(stderr), 1;
    }
    if (optind != argc || (!pid && !pidfile && !url)) return usage(stderr), 1;
    if (force && !url) {
        fprintf(stderr, "tailorctl reload: --force needs --url (a signal "
                        "carries no options; or start tailord with --force)\n");
        return 1;
    }
    if (pidfile) {
        FILE *f = fopen(pidfile, "r");
        if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
            fprintf(stderr, "tailorctl reload: %s: no process id in it%s%s\n",
                    pidfile, f ? "" : ": ", f ? "" : strerror(errno));
            if (f) fclose(f);
            return 1;
        }
        fclose(f);
    }
    if (pid) {
        if (kill((pid_t)pid, SIGHUP)) {
            fprintf(stderr, "tailorctl reload: pid %ld: %s\n", pid,
                    strerror(errno));
            return 1;
        }
        printf("SIGHUP sent to %ld; the outcome is in tailord's log\n", pid);
    }
    if (url) {
        if (!token) token = env_or(NULL, "TAILOR_HTTP_TOKEN");
        char full[2048], err[TL_ERRSZ];
        size_t ul = strlen(url);
        while (ul && url[ul - 1] == '/') ul--;
        snprintf(full, sizeof full, "%.*s/v1/reload%s", (int)ul, url,
                 force ? "?force=1" : "");
        int status = 0;
        char *body = NULL;
        if (tl_http_request("POST", full, token, 10000, &status, &body, err,
                            sizeof err)) {
            fprintf(stderr, "tailorctl reload: %s\n", err);
            return 1;
        }
        size_t bl = strlen(body);
        while (bl && (body[bl - 1] == '\n' || body[bl - 1] == '\r')) body[--bl] = 0;
        if (status < 200 || status > 299) {
            fprintf(stderr, "tailorctl reload: %s: HTTP %d%s%s\n", full, status,
                    bl ? ": " : "", body);
            free(body);
            return 1;
        }
        printf("%s: HTTP %d%s%s\n", full, status, bl ? ": " : "", body);
        free(body);
    }
    return 0;
}

static const command commands[] = {
    {"check", cmd_check, help_check},
    {"produce", cmd_produce, help_produce},
    {"tail", cmd_tail, help_tail},
    {"show", cmd_show, help_show},
    {"forget", cmd_forget, help_forget},
    {"reload", cmd_reload, help_reload},
    {"lag", cmd_lag, help_lag},
    {"stats", cmd_stats, help_stats},
};
static const size_t ncommands = sizeof commands / sizeof commands[0];

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        if (argc == 3)
            for (size_t i = 0; i < ncommands; i++)
                if (strcmp(argv[2], commands[i].name) == 0) current = &commands[i];
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    const char *cmd = argv[1];
    argc--;
    argv++;
    for (size_t i = 0; i < ncommands; i++)
        if (strcmp(cmd, commands[i].name) == 0) {
            current = &commands[i];
            return commands[i].run(argc, argv);
        }
    fprintf(stderr, "tailorctl: unknown command '%s'\n", cmd);
    usage(stderr);
    return 1;
}
