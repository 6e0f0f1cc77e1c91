/*
 * config — tailord.yaml (libyaml) to an immutable tl_config.
 *
 * Every error is one line "FILE:LINE:COL: message" (1-based line and column,
 * from libyaml's marks; for expressions and templates the column points
 * inside the quoted string at the offending character) naming what was
 * expected.  Unknown keys, wrong types, bad durations, duplicate names are
 * errors.
 *
 * Every scalar value (not keys) may hold ${NAME} references to environment
 * variables (NAME: [A-Za-z_][A-Za-z0-9_]*), replaced before the value is
 * read; an unset variable is an error at its position (set but empty is
 * the empty string).  "$${" stands for a literal "${"; any other '$' is
 * itself.  Meant for secrets kept out of the file (systemd EnvironmentFile).  The environment variables TAILOR_KAFKA_BROKERS and
 * TAILOR_REDIS_URL, when set and non-empty, win over the file.
 *
 * Ownership: tl_config_load returns a config owned by the caller, freed with
 * tl_config_free; everything inside belongs to it.  Nothing modifies it after
 * load (it is shared read-only by the pipeline).
 */
#ifndef TL_CONFIG_H
#define TL_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "event.h"
#include "feature.h"
#include "log.h"
#include "rule.h"

typedef struct tl_kv {
    char *key, *val;
    int from_env; /* val had a ${NAME} reference: masked in the summary */
} tl_kv;

/* What to do with an event at or below a stored watermark that cannot
 * belong to the partition's log as it is now (its offsets went backwards:
 * the topic was recreated, the broker started over without its data, as
 * `tailord --embedded` does, or the watermark was written under another
 * cluster).  reapply: the watermark is stale, the event is applied; skip:
 * the event counts as a duplicate (the behaviour before detection). */
typedef enum tl_offset_reset {
    TL_RESET_REAPPLY = 0,
    TL_RESET_SKIP
} tl_offset_reset;

typedef struct tl_config {
    char *path; /* as given to tl_config_load */

    /* kafka: */
    char *brokers;          /* default "localhost:9092" */
    int brokers_given;      /* kafka.brokers is in the file or
                             * TAILOR_KAFKA_BROKERS (not the default): tools
                             * that must not guess (tailorctl forget) ask */
    char *group;            /* default "tailord" */
    char **inputs;          /* default ["interactions"] */
    size_t ninputs;
    char *output;           /* default "triggers" */
    char *dead_letter;      /* default "interactions.dlq" */
    char *audit;            /* default "tailor.audit": `tailorctl forget`
                             * records erasures there */
    tl_kv *properties;      /* passed verbatim to librdkafka, in file order */
    size_t nproperties;
    int batch_size;         /* max events per batch, default 1000 */
    int64_t batch_timeout_ms; /* max wait to fill a batch, default 100 */

    /* redis: */
    char *redis_url;        /* default "redis://127.0.0.1:6379/0" */
    char *redis_prefix;     /* default "tailor:" */
    int64_t redis_ttl_ms;   /* default 400d; 0: keys never expire */
    int64_t key_ttl_ms;     /* what each customer key gets: the longest of
                             * redis_ttl_ms and every feature's ttl_ms; 0
                             * (never expire) when redis_ttl_ms is 0 */
    int64_t redis_timeout_ms; /* default 2000 */
    /* A customer is written at most once per this interval, however many
     * batches changed it (0: after every batch).  Default 100. */
    int64_t redis_flush_interval_ms;
    int redis_allow_eviction; /* run on a Redis whose maxmemory-policy may
                               * evict our keys (default 0: refuse) */

    /* events: */
    tl_event_format format; /* default avro */
    char *schema_json;      /* reader schema text: events.schema, or built-in */
    char *writer_schema_json; /* events.writer_schema text, or NULL (= reader) */
    int64_t max_lateness_ms;  /* events.max_lateness, default 1h: an event
                               * older than the customer's newest event by
                               * more than this is late (dead-lettered) */
    int64_t min_time_ms;      /* events.min_time, default 2000-01-01: an
                               * event before is a bad_timestamp */
    int64_t max_future_ms;    /* events.max_future, default 1d: an event
                               * further ahead of the clock is too */
    tl_offset_reset on_offset_reset; /* events.on_offset_reset, default
                                      * reapply (pipeline.c) */

    /* state: */
    size_t cache_size;      /* max customers cached in memory, default 100000 */

    /* daemon: */
    int64_t shutdown_timeout_ms; /* default 10s: how long SIGTERM may take to
                                  * finish, flush and commit the batch */

    /* log: */
    tl_log_level log_level; /* default info */
    tl_log_format log_format; /* default text */

    /* http: */
    char *http_listen;      /* "HOST:PORT" (HOST an IPv4 address or
                             * localhost); NULL: no HTTP endpoint (the
                             * default when the section is absent, and
                             * listen: "" or off) */
    char *http_token;       /* bearer token for /v1/...; NULL: none */

    char version[17];       /* config_version: 16 hex digits of FNV-1a 64 of
                             * the file's text */

    tl_feature *features;
    size_t nfeatures;
    tl_rule *rules;
    size_t nrules;
    tl_ruleset ruleset;     /* the rules laid out after the features, with
                             * the cap ledgers (tl_ruleset_init) */
    size_t block_size;      /* bytes of one customer's state block */

    /* Private to lib/config*.c (config_int.h): source text of expressions
     * and templates, for tl_config_print_summary (compiled expressions keep
     * no text). */
    struct tl_config_text *text;
} tl_config;

/* Loads and validates path (relative schema paths are relative to the
 * config file's directory).  NULL with "FILE:LINE:COL: message" in err. */
tl_config *tl_config_load(const char *path, char *err, size_t errsz);

/* Same from memory; `name` stands for the file name in messages and relative
 * paths are relative to the current directory.  For tests and embedding. */
tl_config *tl_config_load_string(const char *text, size_t len,
                                 const char *name, char *err, size_t errsz);

void tl_config_free(tl_config *c);

/* Human summary for `tailord --check` (brokers, topics, redis, features with
 * kinds, rules); the Redis URL's password is masked. */
void tl_config_print_summary(const tl_config *c, FILE *out);

/*
 * Whether `next` may replace the running config `cur` without a restart.
 * Connection settings cannot change while connected: kafka.brokers, group,
 * input, properties, redis.url, prefix, timeout (TL_ERR_CONFIG naming the
 * first one that differs: "needs a restart").  Removing a feature, or
 * changing its kind, leaves state in Redis that the new config would
 * misread or never clean: refused unless force is set (then each such
 * feature's stored state is read by the new kind where it parses and starts
 * over where it does not).  So is changing an option that shapes a kept
 * feature's state (window, resolution, half_life, capacity, n, exact_up_to,
 * precision, a list's max_length), naming the feature, the option, old ->
 * new and what is lost; except where the stored state converts exactly (a
 * window shortened at the same resolution, a smaller last_n n, top_k's k at
 * the same capacity).  TL_OK otherwise.
 */
int tl_config_reloadable(const tl_config *cur, const tl_config *next,
                         int force, char *err, size_t errsz);

/* Whether a kafka.properties key (or any key) names a secret: one of the
 * properties librdkafka itself redacts (ssl.key.location, ssl.key.password,
 * ssl.key.pem, ssl.ca.pem, ssl.keystore.password, sasl.username,
 * sasl.password, sasl.oauthbearer.config), sasl.oauthbearer.extensions, or
 * one containing "password", "secret", "token" or "sasl.jaas"
 * (case-insensitive).  Such values are masked in the summary and never
 * logged. */
int tl_config_is_secret_key(const char *key);

/* "30d", "12h", "5m", "10s", "500ms", "2w", "0": a non-negative integer and
 * one unit (ms s m h d w; no unit only for 0).  0 and *ms on success. */
int tl_parse_duration(const char *s, int64_t *ms);

#endif
