/*
 * tailorctl — the operator's tool: produce events from JSON lines, tail
 * triggers, show a customer's vector, show a consumer group's lag.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "common.h"
#include "config.h"
#include "event.h"
#include "schemas.h"
#include "state.h"
#include "store.h"
#include "trigger.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void usage(FILE *out)
{
    fprintf(out,
        "usage: tailorctl COMMAND [options]\n"
        "\n"
        "  produce -b BROKERS -t TOPIC [--format avro|json] FILE.jsonl[.gz]...\n"
        "      Encode JSON-lines events as Avro (or send the lines as they are\n"
        "      with --format json) keyed by customer_id, in file order.\n"
        "  tail -b BROKERS -t TOPIC [-n N] [--timeout SEC]\n"
        "      Print triggers from the beginning of TOPIC as JSON lines; stop\n"
        "      after N, or after SEC seconds without a new one.\n"
        "  show [-c CONFIG] [-r REDIS_URL] [--prefix P] [--json] [--all]\n"
        "       [--at MS | --now] CUSTOMER_ID\n"
        "      Print a customer's vector: the readable fields; with -c, every\n"
        "      feature computed from its exact state as of the customer's newest\n"
        "      event (or --at epoch ms, or --now), ttl applied (--all: internal\n"
        "      fields too).\n"
        "  lag -b BROKERS -g GROUP -t TOPIC\n"
        "      Print committed offset, end offset and lag per partition; the\n"
        "      last line is 'lag TOTAL'.\n"
        "\n"
        "BROKERS defaults to $TAILOR_KAFKA_BROKERS, REDIS_URL to $TAILOR_REDIS_URL.\n");
}

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
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "b:t:f:", opts, NULL)) != -1) {
        if (o == 'b') brokers = optarg;
        else if (o == 't') topic = optarg;
        else if (o == 'f') format = optarg;
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
    int64_t t0 = tl_now_mono_ms();
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
        }
        gzclose(gz);
    }
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
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "b:t:n:", opts, NULL)) != -1) {
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
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "r:p:c:", opts, NULL)) != -1) {
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
    int o;
    while ((o = getopt(argc, argv, "b:g:t:")) != -1) {
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

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    const char *cmd = argv[1];
    argc--;
    argv++;
    if (strcmp(cmd, "produce") == 0) return cmd_produce(argc, argv);
    if (strcmp(cmd, "tail") == 0) return cmd_tail(argc, argv);
    if (strcmp(cmd, "show") == 0) return cmd_show(argc, argv);
    if (strcmp(cmd, "lag") == 0) return cmd_lag(argc, argv);
    fprintf(stderr, "tailorctl: unknown command '%s'\n", cmd);
    usage(stderr);
    return 1;
}
