/*
 * config — tailord.yaml (libyaml) to an immutable tl_config: tl_config_load
 * and tl_config_free, the top-level mapping and its small sections (kafka,
 * redis, events, state, daemon, log, http), and durations.
 *
 * The loader parses the whole file into a libyaml document (node tree with
 * marks), expands ${NAME} references (config_env.c), then walks it section
 * by section; features and triggers have their own files, reading the
 * document goes through config_yaml.c.  What the files share is in
 * config_int.h.
 */
#include "config.h"
#include "config_int.h"
#include "redis_url.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "common.h"
#include "schemas.h"

#define TIMEOUT_MAX INT64_C(3600000) /* 1h */

/* ---- durations ----------------------------------------------------------- */

int tl_config_duration_parse(const char *s, size_t len, int64_t *ms)
{
    size_t i = 0;
    int64_t v = 0;
    int over = 0;
    if (!len || s[0] < '0' || s[0] > '9') return -1;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10) over = 1;
        else v = v * 10 + d;
    }
    const char *u = s + i;
    size_t ulen = len - i;
    int64_t mult;
    if (!ulen) {
        if (over || v) return -1;
        *ms = 0;
        return 0;
    }
    if (ulen == 2 && !memcmp(u, "ms", 2)) mult = 1;
    else if (ulen == 1 && *u == 's') mult = 1000;
    else if (ulen == 1 && *u == 'm') mult = 60 * 1000;
    else if (ulen == 1 && *u == 'h') mult = 3600 * 1000;
    else if (ulen == 1 && *u == 'd') mult = INT64_C(86400000);
    else if (ulen == 1 && *u == 'w') mult = INT64_C(604800000);
    else return -1;
    if (over || v > INT64_MAX / mult) return -2;
    *ms = v * mult;
    return 0;
}

int tl_parse_duration(const char *s, int64_t *ms)
{
    int64_t v;
    if (!s || tl_config_duration_parse(s, strlen(s), &v) != 0) return -1;
    *ms = v;
    return 0;
}

const char *tl_config_duration_fmt(int64_t ms, char *buf, size_t size)
{
    static const struct {
        const char *u;
        int64_t m;
    } units[] = {{"w", INT64_C(604800000)}, {"d", INT64_C(86400000)},
                 {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    if (ms == 0) {
        snprintf(buf, size, "0");
        return buf;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms % units[i].m == 0) {
            snprintf(buf, size, "%lld%s", (long long)(ms / units[i].m),
                     units[i].u);
            break;
        }
    return buf;
}

/* ---- sections ------------------------------------------------------------ */

/* kafka.input: one topic or a list of distinct ones. */
static int load_inputs(loader *L, yaml_node_t *in)
{
    tl_config *c = L->c;
    char got[96];
    int rc;
    if (in->type == YAML_SCALAR_NODE) {
        char *t = NULL;
        if ((rc = tl_config_yaml_str(L, in, "kafka.input", 0, &t))) return rc;
        free(c->inputs[0]);
        c->inputs[0] = t;
    } else if (in->type == YAML_SEQUENCE_NODE && seq_len(in) > 0) {
        size_t cnt = seq_len(in);
        for (size_t i = 0; i < c->ninputs; i++) free(c->inputs[i]);
        free(c->inputs);
        c->inputs = tl_xcalloc(cnt, sizeof *c->inputs);
        c->ninputs = 0;
        for (size_t i = 0; i < cnt; i++) {
            yaml_node_t *it = seq_item(L, in, i);
            char path[64];
            snprintf(path, sizeof path, "kafka.input[%zu]", i);
            if ((rc = tl_config_yaml_str(L, it, path, 0, &c->inputs[i])))
                return rc;
            c->ninputs++;
            for (size_t j = 0; j < i; j++)
                if (!strcmp(c->inputs[j], c->inputs[i]))
                    return fail_node(L, it, "%s: topic '%s' is listed twice",
                                     path, c->inputs[i]);
        }
    } else {
        return fail_node(L, in,
                         "kafka.input: expected a topic name or a "
                         "non-empty list of topic names, got %s",
                         in->type == YAML_SEQUENCE_NODE
                             ? "an empty list"
                             : tl_config_yaml_describe(in, got, sizeof got));
    }
    return TL_OK;
}

/* kafka.properties: librdkafka's, as strings, in file order. */
static int load_properties(loader *L, yaml_node_t *pm)
{
    tl_config *c = L->c;
    int rc;
    if ((rc = tl_config_yaml_want_map(
             L, pm, "kafka.properties",
             "a mapping of librdkafka properties to values")))
        return rc;
    size_t cnt =
        (size_t)(pm->data.mapping.pairs.top - pm->data.mapping.pairs.start);
    c->properties = tl_xcalloc(cnt ? cnt : 1, sizeof *c->properties);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *pr = &pm->data.mapping.pairs.start[i];
        yaml_node_t *k = yaml_document_get_node(&L->doc, pr->key);
        yaml_node_t *val = yaml_document_get_node(&L->doc, pr->value);
        tl_kv *kv = &c->properties[i];
        if ((rc = tl_config_yaml_str(L, k, "kafka.properties: key", 0,
                                     &kv->key)))
            return rc;
        c->nproperties++;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(c->properties[j].key, kv->key)) {
                yaml_node_t *first = yaml_document_get_node(
                    &L->doc, pm->data.mapping.pairs.start[j].key);
                return fail_node(L, k,
                                 "duplicate key '%s' in kafka.properties "
                                 "(first at %zu:%zu)",
                                 kv->key, first->start_mark.line + 1,
                                 first->start_mark.column + 1);
            }
        char path[160];
        snprintf(path, sizeof path, "kafka.properties.%s", kv->key);
        if ((rc = tl_config_yaml_str(L, val, path, 1, &kv->val))) return rc;
        kv->from_env = tl_config_env_expanded(L, val);
    }
    return TL_OK;
}

static int load_kafka(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"brokers", "group", "input",
                                       "output", "dead_letter", "properties",
                                       "batch_size", "batch_timeout", "audit"};
    yaml_node_t *v[9];
    tl_config *c = L->c;
    int rc;
    if ((rc = tl_config_yaml_want_map(L, n, "kafka", "a mapping")) ||
        (rc = tl_config_yaml_map(L, n, "kafka", keys, 9, v)))
        return rc;
    if (v[8] && (rc = tl_config_yaml_str(L, v[8], "kafka.audit", 0, &c->audit)))
        return rc;
    c->brokers_given = v[0] != NULL;
    if ((v[0] && (rc = tl_config_yaml_str(L, v[0], "kafka.brokers", 0,
                                          &c->brokers))) ||
        (v[1] &&
         (rc = tl_config_yaml_str(L, v[1], "kafka.group", 0, &c->group))))
        return rc;
    if (v[2] && (rc = load_inputs(L, v[2]))) return rc;
    if ((v[3] && (rc = tl_config_yaml_str(L, v[3], "kafka.output", 0,
                                          &c->output))) ||
        (v[4] && (rc = tl_config_yaml_str(L, v[4], "kafka.dead_letter", 0,
                                          &c->dead_letter))))
        return rc;
    if (v[5] && !is_null(v[5]) && (rc = load_properties(L, v[5]))) return rc;
    int64_t x;
    if (v[6]) {
        if ((rc = tl_config_yaml_int(L, v[6], "kafka.batch_size", 1, 100000,
                                     &x)))
            return rc;
        c->batch_size = (int)x;
    }
    if (v[7] && (rc = tl_config_yaml_duration(L, v[7], "kafka.batch_timeout",
                                              1, TIMEOUT_MAX,
                                              &c->batch_timeout_ms)))
        return rc;
    return TL_OK;
}

/* redis.cluster: seed nodes as host[:port] strings, turned into the
 * redis-cluster:// URL that the store takes (each checked by the store's
 * own URL parser, so both forms accept the same hosts). */
static int load_redis_cluster(loader *L, yaml_node_t *n)
{
    char got[96];
    if (n->type != YAML_SEQUENCE_NODE || seq_len(n) == 0)
        return fail_node(L, n,
                         "redis.cluster: expected a non-empty list of "
                         "host:port seed nodes, got %s",
                         n->type == YAML_SEQUENCE_NODE
                             ? "an empty list"
                             : tl_config_yaml_describe(n, got, sizeof got));
    size_t cap = 32, len = 0;
    char *url = tl_xmalloc(cap);
    len = (size_t)snprintf(url, cap, "redis-cluster://");
    for (size_t i = 0; i < seq_len(n); i++) {
        yaml_node_t *it = seq_item(L, n, i);
        char path[64], *hp = NULL, one[300], err[TL_ERRSZ];
        snprintf(path, sizeof path, "redis.cluster[%zu]", i);
        int rc = tl_config_yaml_str(L, it, path, 0, &hp);
        if (rc) {
            free(url);
            return rc;
        }
        tl_redis_url u;
        snprintf(one, sizeof one, "redis-cluster://%s", hp);
        if (strpbrk(hp, ",@/?") ||
            tl_redis_url_parse(one, &u, err, sizeof err) != TL_OK) {
            if (strpbrk(hp, ",@/?"))
                snprintf(err, sizeof err, "one host[:port] per item");
            rc = fail_node(L, it, "%s: \"%s\": %s", path, hp, err);
            free(hp);
            free(url);
            return rc;
        }
        tl_redis_url_clear(&u);
        size_t need = len + strlen(hp) + 2;
        if (need > cap) url = tl_xrealloc(url, cap = need * 2);
        len += (size_t)snprintf(url + len, cap - len, "%s%s", i ? "," : "",
                                hp);
        free(hp);
    }
    free(L->c->redis_url);
    L->c->redis_url = url;
    return TL_OK;
}

/* true or false, nothing else. */
static int read_bool(loader *L, yaml_node_t *n, const char *at,
                     const char *key, int *out)
{
    const char *t = n->type == YAML_SCALAR_NODE
                        ? (const char *)n->data.scalar.value : "";
    if (strcmp(t, "true") == 0 || strcmp(t, "false") == 0) {
        *out = t[0] == 't';
        return TL_OK;
    }
    return tl_config_yaml_choice(L, n, at, key, "true, false");
}

static int load_redis(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"url", "prefix", "ttl", "timeout",
                                       "cluster", "allow_eviction",
                                       "flush_interval"};
    yaml_node_t *v[7];
    tl_config *c = L->c;
    int rc;
    if ((rc = tl_config_yaml_want_map(L, n, "redis", "a mapping")) ||
        (rc = tl_config_yaml_map(L, n, "redis", keys, 7, v)))
        return rc;
    if (v[0] && v[4])
        return fail_node(L, v[4],
                         "redis.cluster: give either redis.url or "
                         "redis.cluster, not both (a cluster URL is "
                         "redis-cluster://[[user]:password@]host:port,...)");
    if (v[0]) {
        if ((rc = tl_config_yaml_str(L, v[0], "redis.url", 0, &c->redis_url)))
            return rc;
        if (strncmp(c->redis_url, "redis://", 8) &&
            strncmp(c->redis_url, "unix://", 7) &&
            strncmp(c->redis_url, "redis-cluster://", 16)) {
            char got[96];
            return fail_node(
                L, v[0],
                "redis.url: expected "
                "redis://[[user]:password@]host[:port][/db], "
                "unix://[[user]:password@]/path/to/redis.sock "
                "or redis-cluster://[[user]:password@]host:port"
                "[,host:port...], got %s",
                /* a password must not reach the log */
                strchr(c->redis_url, '@')
                    ? "a value with credentials (not shown)"
                    : tl_config_yaml_describe(v[0], got, sizeof got));
        }
    }
    if (v[4] && (rc = load_redis_cluster(L, v[4]))) return rc;
    if (v[1] && (rc = tl_config_yaml_str(L, v[1], "redis.prefix", 1,
                                         &c->redis_prefix)))
        return rc;
    if (v[2] && (rc = tl_config_yaml_duration(L, v[2], "redis.ttl", 0, 0,
                                              &c->redis_ttl_ms)))
        return rc;
    if (v[3] && (rc = tl_config_yaml_duration(L, v[3], "redis.timeout", 1,
                                              TIMEOUT_MAX,
                                              &c->redis_timeout_ms)))
        return rc;
    if (v[5] && (rc = read_bool(L, v[5], "redis", "allow_eviction",
                                &c->redis_allow_eviction)))
        return rc;
    if (v[6] && (rc = tl_config_yaml_duration(L, v[6], "redis.flush_interval",
                                              0, TIMEOUT_MAX,
                                              &c->redis_flush_interval_ms)))
        return rc;
    return TL_OK;
}

static int read_schema(loader *L, yaml_node_t *n, const char *path, char **out)
{
    char *file = NULL, msg[TL_ERRSZ];
    int rc = tl_config_yaml_str(L, n, path, 0, &file);
    if (rc) return rc;
    size_t dlen = file[0] == '/' ? 0 : strlen(L->dir), flen = strlen(file);
    char *full = tl_xmalloc(dlen + flen + 1);
    memcpy(full, L->dir, dlen);
    memcpy(full + dlen, file, flen + 1);
    size_t len;
    char *text = tl_read_file(full, &len, msg, sizeof msg);
    if (!text)
        rc = fail_node(L, n, "%s: %s", path, msg); /* msg names the file */
    free(file);
    free(full);
    if (rc) return rc;
    free(*out);
    *out = text;
    return TL_OK;
}

/* events.min_time: an ISO 8601 time within what events may ever be. */
static int load_min_time(loader *L, yaml_node_t *n, int64_t *out)
{
    char got[96];
    int64_t t;
    if (n->type != YAML_SCALAR_NODE ||
        tl_parse_time(scalar(n), scalar_len(n), &t))
        return fail_node(L, n,
                         "events.min_time: expected an ISO 8601 time like "
                         "2000-01-01T00:00:00Z, got %s",
                         tl_config_yaml_describe(n, got, sizeof got));
    if (t < TL_EVENT_MIN_TS || t >= TL_EVENT_MAX_TS)
        return fail_node(L, n,
                         "events.min_time: expected a time from "
                         "1970-01-01T00:00:00Z to before 2200-01-01T00:00:00Z, "
                         "got %s",
                         tl_config_yaml_describe(n, got, sizeof got));
    *out = t;
    return TL_OK;
}

/* One of two words, nothing else ("PATH: expected A or B, got ..."):
 * *second says which. */
static int read_either(loader *L, yaml_node_t *n, const char *path,
                       const char *a, const char *b, int *second)
{
    char got[96];
    const char *s = n->type == YAML_SCALAR_NODE ? scalar(n) : "";
    *second = !strcmp(s, b);
    if (*second || !strcmp(s, a)) return TL_OK;
    return fail_node(L, n, "%s: expected %s or %s, got %s", path, a, b,
                     tl_config_yaml_describe(n, got, sizeof got));
}

static int load_events(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"format",       "schema",
                                       "writer_schema", "max_lateness",
                                       "min_time",     "max_future",
                                       "on_offset_reset"};
    yaml_node_t *v[7];
    tl_config *c = L->c;
    int rc;
    if ((rc = tl_config_yaml_want_map(L, n, "events", "a mapping")) ||
        (rc = tl_config_yaml_map(L, n, "events", keys, 7, v)))
        return rc;
    int second;
    if (v[0]) {
        if ((rc = read_either(L, v[0], "events.format", "avro", "json",
                              &second)))
            return rc;
        c->format = second ? TL_FMT_JSON : TL_FMT_AVRO;
    }
    if (v[1] && (rc = read_schema(L, v[1], "events.schema", &c->schema_json)))
        return rc;
    if (v[2] && (rc = read_schema(L, v[2], "events.writer_schema",
                                  &c->writer_schema_json)))
        return rc;
    if (v[3] && (rc = tl_config_yaml_duration(L, v[3], "events.max_lateness",
                                              0, 0, &c->max_lateness_ms)))
        return rc;
    if (v[4] && (rc = load_min_time(L, v[4], &c->min_time_ms))) return rc;
    /* Bounded so that the clock plus it stays far from overflow. */
    if (v[5] && (rc = tl_config_yaml_duration(L, v[5], "events.max_future",
                                              0, TL_EVENT_MAX_TS,
                                              &c->max_future_ms)))
        return rc;
    if (v[6]) {
        if ((rc = read_either(L, v[6], "events.on_offset_reset", "reapply",
                              "skip", &second)))
            return rc;
        c->on_offset_reset = second ? TL_RESET_SKIP : TL_RESET_REAPPLY;
    }
    return TL_OK;
}

static int load_state(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"cache_size"};
    yaml_node_t *v[1];
    int64_t x;
    int rc;
    if ((rc = tl_config_yaml_want_map(L, n, "state", "a mapping")) ||
        (rc = tl_config_yaml_map(L, n, "state", keys, 1, v)))
        return rc;
    if (v[0]) {
        if ((rc = tl_config_yaml_int(L, v[0], "state.cache_size", 1,
                                     INT64_MAX, &x)))
            return rc;
        L->c->cache_size = (size_t)x;
    }
    return TL_OK;
}

static int load_daemon(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"shutdown_timeout"};
    yaml_node_t *v[1];
    int rc;
    if ((rc = tl_config_yaml_want_map(L, n, "daemon", "a mapping")) ||
        (rc = tl_config_yaml_map(L, n, "daemon", keys, 1, v)))
        return rc;
    if (v[0] &&
        (rc = tl_config_yaml_duration(L, v[0], "daemon.shutdown_timeout", 1, 0,
                                      &L->c->shutdown_timeout_ms)))
        return rc;
    return TL_OK;
}

/* "HOST:PORT" with HOST an IPv4 address or localhost: the endpoint is for
 * loopback and private networks, never a name resolved at start. */
static int check_listen(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return -1;
    size_t hl = (size_t)(colon - s);
    if (!(hl == 9 && !memcmp(s, "localhost", 9))) {
        int dots = 0, digits = 0;
        for (const char *c = s; c < colon; c++) {
            if (*c == '.') {
                if (!digits) return -1;
                dots++;
                digits = 0;
            } else if (*c >= '0' && *c <= '9' && digits < 3) {
                digits++;
            } else {
                return -1;
            }
        }
        if (dots != 3 || !digits) return -1;
    }
    int64_t port;
    if (tl_parse_i64(colon + 1, strlen(colon + 1), &port) || port < 1 ||
        port > 65535 || colon[1] == '+' || colon[1] == '-')
        return -1;
    return 0;
}

static int load_http(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"listen", "token"};
    yaml_node_t *v[2];
    tl_config *c = L->c;
    int rc;
    if ((rc = tl_config_yaml_want_map(L, n, "http", "a mapping")) ||
        (rc = tl_config_yaml_map(L, n, "http", keys, 2, v)))
        return rc;
    if (v[0]) {
        if ((rc = tl_config_yaml_str(L, v[0], "http.listen", 1,
                                     &c->http_listen)))
            return rc;
        if (!*c->http_listen || !strcmp(c->http_listen, "off")) {
            free(c->http_listen);
            c->http_listen = NULL;
        } else if (check_listen(c->http_listen)) {
            char got[96];
            return fail_node(L, v[0],
                             "http.listen: expected HOST:PORT with HOST an "
                             "IPv4 address or localhost and PORT 1..65535 "
                             "(or \"\" / off for no endpoint), got %s",
                             tl_config_yaml_describe(v[0], got, sizeof got));
        }
    }
    if (v[1]) {
        if ((rc = tl_config_yaml_str(L, v[1], "http.token", 1,
                                     &c->http_token)))
            return rc;
        if (!*c->http_token) {
            free(c->http_token);
            c->http_token = NULL;
        }
    }
    return TL_OK;
}

static int load_log(loader *L, yaml_node_t *n)
{
    static const char *const keys[] = {"level", "format"};
    yaml_node_t *v[2];
    char got[96];
    int rc;
    if ((rc = tl_config_yaml_want_map(L, n, "log", "a mapping")) ||
        (rc = tl_config_yaml_map(L, n, "log", keys, 2, v)))
        return rc;
    if (v[1] && (v[1]->type != YAML_SCALAR_NODE ||
                 tl_log_format_parse(scalar(v[1]), &L->c->log_format) != 0))
        return fail_node(L, v[1],
                         "log.format: expected one of text, json, got %s",
                         tl_config_yaml_describe(v[1], got, sizeof got));
    if (v[0] && (v[0]->type != YAML_SCALAR_NODE ||
                 tl_log_level_parse(scalar(v[0]), &L->c->log_level) != 0))
        return fail_node(L, v[0],
                         "log.level: expected one of error, warn, info, debug, "
                         "got %s",
                         tl_config_yaml_describe(v[0], got, sizeof got));
    return TL_OK;
}

static int load_root(loader *L, yaml_node_t *root)
{
    static const char *const keys[] = {"kafka", "redis", "events", "state",
                                       "daemon", "log", "http", "features",
                                       "triggers"};
    static int (*const loaders[])(loader *, yaml_node_t *) = {
        load_kafka, load_redis, load_events, load_state,
        load_daemon, load_log, load_http, tl_config_features_load,
        tl_config_triggers_load};
    enum { NSECTIONS = sizeof keys / sizeof keys[0] };
    yaml_node_t *v[NSECTIONS];
    char got[96], msg[TL_ERRSZ];
    if (root->type != YAML_MAPPING_NODE)
        return fail_node(L, root,
                         "expected a mapping of sections (kafka, redis, "
                         "events, state, daemon, log, http, features, "
                         "triggers) at the top level, got %s",
                         tl_config_yaml_describe(root, got, sizeof got));
    int rc = tl_config_yaml_map(L, root, NULL, keys, NSECTIONS, v);
    /* Fixed order: triggers need every feature, wherever they are written. */
    for (size_t i = 0; !rc && i < NSECTIONS; i++)
        if (v[i] && !is_null(v[i])) rc = loaders[i](L, v[i]);
    if (rc) return rc;
    tl_config *c = L->c;
    /* Each customer key lives as long as its longest-lived value. */
    c->key_ttl_ms = c->redis_ttl_ms;
    for (size_t i = 0; c->key_ttl_ms && i < c->nfeatures; i++)
        if (c->features[i].ttl_ms > c->key_ttl_ms)
            c->key_ttl_ms = c->features[i].ttl_ms;
    /* The block: features, then the rules' slices and the cap ledgers. */
    size_t end = tl_features_layout(c->features, c->nfeatures, 0);
    if (tl_ruleset_init(&c->ruleset, c->rules, c->nrules, end, msg,
                        sizeof msg) != TL_OK)
        return fail_node(L, L->triggers ? L->triggers : root, "triggers: %s",
                         msg);
    c->block_size = c->ruleset.end;
    return TL_OK;
}

/* ---- load -------------------------------------------------------------- */

static int syntax_error(loader *L, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return tl_errf(L->err, L->errsz, TL_ERR_NOMEM, "%s: out of memory",
                       L->name);
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark. */
        size_t line, col;
        tl_config_yaml_offset_pos(L, p->problem_offset, &line, &col);
        return tl_config_yaml_fail_at(L, line, col, "YAML error: %s",
                                      p->problem ? p->problem : "cannot read");
    }
    if (p->context)
        return fail_mark(L, p->problem_mark,
                         "YAML syntax error: %s (%s at %zu:%zu)",
                         p->problem ? p->problem : "invalid YAML", p->context,
                         p->context_mark.line + 1, p->context_mark.column + 1);
    return fail_mark(L, p->problem_mark, "YAML syntax error: %s",
                     p->problem ? p->problem : "invalid YAML");
}

static tl_config *new_config(const char *path)
{
    tl_config *c = tl_xcalloc(1, sizeof *c);
    c->path = tl_xstrdup(path);
    c->brokers = tl_xstrdup("localhost:9092");
    c->group = tl_xstrdup("tailord");
    c->inputs = tl_xcalloc(1, sizeof *c->inputs);
    c->inputs[0] = tl_xstrdup("interactions");
    c->ninputs = 1;
    c->output = tl_xstrdup("triggers");
    c->dead_letter = tl_xstrdup("interactions.dlq");
    c->audit = tl_xstrdup("tailor.audit");
    /* The fast ones (issue 14): a backlog fills 5000 at once, and at a
     * steady rate a batch closes within 5 ms, which bounds the latency it
     * adds (docs/benchmarks.md, "Fast defaults"). */
    c->batch_size = 5000;
    c->batch_timeout_ms = 5;
    c->redis_url = tl_xstrdup("redis://127.0.0.1:6379/0");
    c->redis_prefix = tl_xstrdup("tailor:");
    c->redis_ttl_ms = INT64_C(400) * 86400000;
    c->redis_timeout_ms = 2000;
    c->redis_flush_interval_ms = 100;
    c->format = TL_FMT_AVRO;
    c->schema_json = tl_xstrdup(tl_schema_interaction_event);
    c->max_lateness_ms = 3600000;
    c->min_time_ms = INT64_C(946684800000); /* 2000-01-01T00:00:00Z */
    c->max_future_ms = 86400000;
    c->cache_size = 100000;
    c->shutdown_timeout_ms = 10000;
    c->log_level = TL_LOG_INFO;
    c->text = tl_xcalloc(1, sizeof *c->text);
    return c;
}

static void env_override(char **field, const char *var)
{
    const char *v = getenv(var);
    if (v && *v) {
        free(*field);
        *field = tl_xstrdup(v);
    }
}

static tl_config *load(const char *text, size_t len, const char *name,
                       const char *dir, const char *path, char *err,
                       size_t errsz)
{
    loader L = {.name = name, .src = text, .srclen = len, .dir = dir,
                .err = err, .errsz = errsz};
    yaml_parser_t parser;
    int rc = TL_ERR_CONFIG, have_doc = 0;
    L.c = new_config(path);
    snprintf(L.c->version, sizeof L.c->version, "%016llx",
             (unsigned long long)tl_fnv1a(TL_FNV_OFFSET, text, len));
    if (!yaml_parser_initialize(&parser)) {
        rc = tl_errf(err, errsz, TL_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &L.doc)) {
        rc = syntax_error(&L, &parser);
        yaml_parser_delete(&parser);
        goto done;
    }
    have_doc = 1;
    tl_config_yaml_index_lines(&L);
    yaml_node_t *root = yaml_document_get_root_node(&L.doc);
    if (!root) {
        rc = tl_config_yaml_fail_at(
            &L, 1, 1,
            "empty configuration (expected a mapping of sections: kafka, "
            "redis, events, state, daemon, log, http, features, triggers)");
        yaml_parser_delete(&parser);
        goto done;
    }
    /* Anything after the first document is a mistake, not something to
     * ignore silently. */
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        rc = syntax_error(&L, &parser);
        yaml_parser_delete(&parser);
        goto done;
    }
    yaml_node_t *xroot = yaml_document_get_root_node(&extra);
    if (xroot)
        rc = fail_node(&L, xroot,
                       "a second YAML document (expected the configuration "
                       "to be one document)");
    yaml_document_delete(&extra);
    yaml_parser_delete(&parser);
    if (xroot) goto done;

    rc = tl_config_env_expand(&L);
    if (rc == TL_OK) rc = load_root(&L, root);
    if (rc == TL_OK) {
        const char *b = getenv("TAILOR_KAFKA_BROKERS");
        if (b && *b) L.c->brokers_given = 1;
        env_override(&L.c->brokers, "TAILOR_KAFKA_BROKERS");
        env_override(&L.c->redis_url, "TAILOR_REDIS_URL");
    }
done:
    if (have_doc) yaml_document_delete(&L.doc);
    free(L.fname);
    free(L.fnode);
    free(L.fof);
    free(L.rname);
    free(L.lines);
    free(L.expanded);
    if (rc != TL_OK) {
        tl_config_free(L.c);
        return NULL;
    }
    return L.c;
}

/*
 * The configuration file, read by tl_read_file.  Its message is reshaped to
 * name the file first, "PATH: cannot open configuration: REASON" (people
 * and tests/e2e/test_bad_env.c read that), where tl_read_file says "cannot
 * open PATH: REASON" or "cannot read PATH: REASON" (common.h).
 * fuzz/fuzz_config.c wraps tl_read_file to serve schema files from memory;
 * it loads with tl_config_load_string, so no configuration file is read
 * through the wrapper.
 */
static char *read_config_file(const char *path, size_t *len, char *err,
                              size_t errsz)
{
    size_t plen = strlen(path), msz = plen + TL_ERRSZ;
    char *msg = tl_xcalloc(msz, 1);
    char *text = tl_read_file(path, len, msg, msz);
    if (!text) {
        /* REASON follows "cannot open PATH: ", 12 + plen + 2 bytes; the
         * whole message stands for it were it ever in another shape. */
        int rd = !strncmp(msg, "cannot read ", 12);
        const char *why = msg;
        if ((rd || !strncmp(msg, "cannot open ", 12)) &&
            !strncmp(msg + 12, path, plen) &&
            !strncmp(msg + 12 + plen, ": ", 2))
            why = msg + 12 + plen + 2;
        tl_errf(err, errsz, TL_ERR_IO, "%s: cannot %s configuration: %s",
                path, rd ? "read" : "open", why);
    }
    free(msg);
    return text;
}

tl_config *tl_config_load(const char *path, char *err, size_t errsz)
{
    size_t len;
    char *text = read_config_file(path, &len, err, errsz);
    if (!text) return NULL;
    const char *slash = strrchr(path, '/');
    char *dir = tl_xstrndup(path, slash ? (size_t)(slash - path) + 1 : 0);
    tl_config *c = load(text, len, path, dir, path, err, errsz);
    free(dir);
    free(text);
    return c;
}

tl_config *tl_config_load_string(const char *text, size_t len, const char *name,
                                 char *err, size_t errsz)
{
    if (!name) name = "<string>";
    return load(text, len, name, "", name, err, errsz);
}

void tl_config_free(tl_config *c)
{
    if (!c) return;
    free(c->path);
    free(c->brokers);
    free(c->group);
    for (size_t i = 0; i < c->ninputs; i++) free(c->inputs[i]);
    free(c->inputs);
    free(c->output);
    free(c->dead_letter);
    free(c->audit);
    for (size_t i = 0; i < c->nproperties; i++) {
        free(c->properties[i].key);
        free(c->properties[i].val);
    }
    free(c->properties);
    free(c->redis_url);
    free(c->redis_prefix);
    free(c->http_listen);
    free(c->http_token);
    free(c->schema_json);
    free(c->writer_schema_json);
    for (size_t i = 0; i < c->nfeatures; i++) tl_feature_clear(&c->features[i]);
    free(c->features);
    tl_ruleset_clear(&c->ruleset);
    for (size_t i = 0; i < c->nrules; i++) tl_rule_clear(&c->rules[i]);
    free(c->rules);
    if (c->text) {
        for (size_t i = 0; c->text->features && i < c->nfeatures; i++) {
            free(c->text->features[i].where);
            free(c->text->features[i].field);
        }
        for (size_t i = 0; c->text->rules && i < c->nrules; i++) {
            free(c->text->rules[i].when);
            free(c->text->rules[i].cond);
            free(c->text->rules[i].message);
            free(c->text->rules[i].tz);
            for (size_t j = 0; j < c->text->rules[i].nattrs; j++)
                free(c->text->rules[i].attrs[j]);
            free(c->text->rules[i].attrs);
        }
        free(c->text->features);
        free(c->text->rules);
        free(c->text);
    }
    free(c);
}

/* ---- secrets ------------------------------------------------------------ */

/* Which keys hold secrets is the configuration's rule (config.h); the
 * summary (config_print.c) is one of its users. */
int tl_config_is_secret_key(const char *key)
{
    /* librdkafka 2.0.2's _RK_SENSITIVE properties (it redacts them in its
     * own dumps), and the extensions, which may carry credentials. */
    static const char *const names[] = {
        "ssl.key.location", "ssl.key.password", "ssl.key.pem", "ssl.ca.pem",
        "ssl.keystore.password", "sasl.username", "sasl.password",
        "sasl.oauthbearer.config", "sasl.oauthbearer.extensions"};
    static const char *const words[] = {"password", "secret", "token",
                                        "sasl.jaas"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcasecmp(key, names[i])) return 1;
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strcasestr(key, words[i])) return 1;
    return 0;
}
