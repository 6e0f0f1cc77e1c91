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
#include "httpc.h"
#include "kafka.h"
#include "schemas.h"
#include "state.h"
#include "store.h"
#include "trigger.h"

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
    "produce -b BROKERS -t TOPIC [--format avro|json] [--rate N] FILE.jsonl[.gz]...\n"
    "      Encode JSON-lines events as Avro (or send the lines as they are\n"
    "      with --format json) keyed by customer_id, in file order; --rate:\n"
    "      at most N events per second.  On a terminal, a progress line.\n";
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
    "      fields too).\n";
static const char help_forget[] =
    "forget [-c CONFIG] [-r REDIS_URL] [--prefix P] [-b BROKERS]\n"
    "       [--audit-topic T] [--reason TEXT] [--operator NAME] CUSTOMER_ID\n"
    "      Erase a customer: delete its Redis key, then publish an audit\n"
    "      record (JSON) to kafka.audit (default tailor.audit).  A running\n"
    "      tailord does not write the erased vector back (its watermark\n"
    "      compare-and-set refuses the write); see tailorctl(1).\n";
static const char help_reload[] =
    "reload (--pid PID | --pid-file FILE | --url URL [--token T]) [--force]\n"
    "      Ask tailord to read its configuration again: SIGHUP to PID, and/or\n"
    "      POST URL/v1/reload with the bearer token (default\n"
    "      $TAILOR_HTTP_TOKEN).  --force (URL only) lets the reload remove\n"
    "      features or change their kind.  The outcome is in tailord's log.\n";
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
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},
        {"rate", required_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "b:t:f:h", opts, NULL)) != -1) {
        if (o == 'b') brokers = optarg;
        else if (o == 't') topic = optarg;
        else if (o == 'f') format = optarg;
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
    uint64_t count = 0;
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
            if (tl_event_from_json(line, len, &arena, &ev, err, sizeof err)) {
                fprintf(stderr, "%s:%lu: %s\n", argv[fi], lineno, err);
                rc = 1;
                break;
            }
            const void *val = line;
            size_t vlen = len;
            if (enc && tl_event_encode(enc, &ev, &val, &vlen, err, sizeof err)) {
                fprintf(stderr, "%s:%lu: %s\n", argv[fi], lineno, err);
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

typedef struct field {
    char *name, *val;
} field;
typedef struct fields {
    field *f;
    size_t n;
} fields;

static void collect(void *ud, size_t idx, const char *f, size_t flen,
                    const char *v, size_t vlen)
{
    (void)idx;
    fields *fs = ud;
    fs->f = tl_xrealloc(fs->f, (fs->n + 1) * sizeof *fs->f);
    fs->f[fs->n].name = tl_xstrndup(f, flen);
    fs->f[fs->n].val = tl_xstrndup(v, vlen);
    fs->n++;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const field *)a)->name, ((const field *)b)->name);
}

static void add_field(fields *fs, const char *name, const char *val)
{
    collect(fs, 0, name, strlen(name), val, strlen(val));
}

/*
 * With a config, the vector is decoded from its exact internal state and
 * every feature read at `at`: ttl, windows and decay then mean what they mean
 * in rules, even where Redis still holds an older readable value.
 */
static int computed_fields(const tl_config *cfg, const char *id,
                           const fields *raw, int at_set, int64_t at,
                           int use_now, fields *out, char *err, size_t errsz)
{
    tl_layout layout = {cfg->features, cfg->nfeatures, cfg->rules,
                        cfg->nrules, cfg->block_size, &cfg->ruleset};
    tl_cache *cache = tl_cache_new(&layout, 1);
    tl_vec *v = tl_cache_put(cache, id, strlen(id));
    int rc = TL_OK;
    for (size_t i = 0; i < raw->n && rc == TL_OK; i++)
        rc = tl_vec_load_field(v, &layout, raw->f[i].name,
                               strlen(raw->f[i].name), raw->f[i].val,
                               strlen(raw->f[i].val), err, errsz);
    int64_t now = use_now ? tl_now_wall_ms() : at_set ? at : v->newest;
    if (rc == TL_OK && !use_now && !at_set && !v->has_newest)
        rc = tl_errf(err, errsz, TL_ERR_DECODE,
                     "the vector has no _ts field (written by an older "
                     "tailord?): give --at MS or --now");
    char t[32];
    snprintf(t, sizeof t, "%lld", (long long)now);
    if (rc == TL_OK) add_field(out, "(as of)", t);
    for (size_t i = 0; rc == TL_OK && i < cfg->nfeatures; i++) {
        const tl_feature *f = &cfg->features[i];
        /* What a rule would read: counts of nothing are 0, others null. */
        tl_value val;
        tl_feature_read(f, v->block, now, &val);
        if (val.type == TL_T_NULL) {
            add_field(out, f->name, "(missing)");
            continue;
        }
        size_t n = tl_value_format(&val, NULL, 0);
        char *buf = tl_xmalloc(n + 1);
        tl_value_format(&val, buf, n + 1);
        add_field(out, f->name, buf);
        free(buf);
    }
    tl_cache_free(cache);
    return rc;
}

static int cmd_show(int argc, char **argv)
{
    const char *url = NULL, *prefix = NULL, *config = NULL;
    int json = 0, all = 0, use_now = 0, at_set = 0;
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
            at_set = 1;
        } else if (o == 'N') use_now = 1;
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
    size_t klen = strlen(prefix) + strlen(id) + 6;
    char *key = tl_xmalloc(klen);
    klen = (size_t)snprintf(key, klen, "%scx:{%s}", prefix, id);
    fields raw = {NULL, 0}, shown = {NULL, 0};
    const char *keys[1] = {key};
    int rc = tl_store_load(st, keys, &klen, 1, collect, &raw, err, sizeof err);
    if (rc) {
        fprintf(stderr, "tailorctl: %s\n", err);
    } else if (!raw.n) {
        fprintf(stderr, "tailorctl: no vector for customer %s (key %s)\n", id,
                key);
        rc = 1;
    } else if (cfg && computed_fields(cfg, id, &raw, at_set, at, use_now,
                                      &shown, err, sizeof err)) {
        fprintf(stderr, "tailorctl: customer %s: %s\n", id, err);
        rc = 1;
    } else {
        qsort(raw.f, raw.n, sizeof *raw.f, by_name);
        for (size_t i = 0; i < raw.n; i++)
            if ((!cfg && raw.f[i].name[0] != '_') || all)
                add_field(&shown, raw.f[i].name, raw.f[i].val);
        if (json) {
            json_t *obj = json_object(), *feat = json_object();
            json_object_set_new(obj, "customer_id", json_string(id));
            for (size_t i = 0; i < shown.n; i++) {
                if (strcmp(shown.f[i].name, "(as of)") == 0) {
                    json_object_set_new(obj, "as_of",
                                        json_integer(strtoll(shown.f[i].val, NULL, 10)));
                    continue;
                }
                json_object_set_new(feat, shown.f[i].name,
                                    strcmp(shown.f[i].val, "(missing)") == 0
                                        ? json_null()
                                        : json_string(shown.f[i].val));
            }
            json_object_set_new(obj, "features", feat);
            char *js = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
            printf("%s\n", js);
            free(js);
            json_decref(obj);
        } else {
            size_t w = 0;
            for (size_t i = 0; i < shown.n; i++)
                if (strlen(shown.f[i].name) > w) w = strlen(shown.f[i].name);
            printf("customer %s (%s)\n", id, key);
            for (size_t i = 0; i < shown.n; i++)
                printf("  %-*s  %s\n", (int)w, shown.f[i].name, shown.f[i].val);
        }
    }
    for (size_t i = 0; i < raw.n; i++) free(raw.f[i].name), free(raw.f[i].val);
    for (size_t i = 0; i < shown.n; i++) free(shown.f[i].name), free(shown.f[i].val);
    free(raw.f);
    free(shown.f);
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
    if (!brokers && config) brokers = cfg->brokers;
    if (!prefix) prefix = cfg->redis_prefix;
    if (!topic) topic = cfg->audit;
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
    rd_kafka_conf_t *conf = tl_kafka_conf(cfg, brokers, err, sizeof err);
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
    if (tl_kafka_check(cfg, brokers, 10000, err, sizeof err)) {
        fprintf(stderr, "tailorctl: %s (nothing erased)\n", err);
        goto done;
    }
    if (!(st = tl_store_new(url, 5000, err, sizeof err))) {
        fprintf(stderr, "tailorctl: %s (nothing erased)\n", err);
        goto done;
    }
    tl_arena arena;
    tl_arena_init(&arena, 1024);
    size_t klen;
    key = tl_xstrdup(tl_state_key(&arena, prefix, id, strlen(id), &klen));
    tl_arena_free(&arena);
    if (tl_store_delete(st, key, klen, &existed, err, sizeof err)) {
        fprintf(stderr, "tailorctl: %s (nothing erased)\n", err);
        goto done;
    }
    int64_t now = tl_now_wall_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char when[40], host[256] = "";
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
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
