/*
 * kafka — what the source and the sink share: building an rd_kafka_conf_t
 * from the config (brokers, pass-through properties, logging into tailor's
 * log), and the embedded broker (librdkafka's mock cluster) for
 * `tailord --embedded`, demos and tests.
 *
 * Ownership: tl_kafka_conf returns a conf the caller passes to rd_kafka_new
 * (which takes it on success) or destroys.  tl_kafka_mock owns its cluster
 * and the handle behind it; free with tl_kafka_mock_free.
 */
#ifndef TL_KAFKA_H
#define TL_KAFKA_H

#include <librdkafka/rdkafka.h>

#include "config.h"

/* What a Kafka client is made of: where the brokers are, and the
 * properties passed verbatim (security included).  Borrowed. */
typedef struct tl_kafka_opts {
    const char *brokers;
    const tl_kv *properties;
    size_t nproperties;
} tl_kafka_opts;

/* The options of cfg's kafka section, brokers replaced when not NULL. */
tl_kafka_opts tl_kafka_opts_of(const tl_config *cfg, const char *brokers);

rd_kafka_conf_t *tl_kafka_conf(const tl_kafka_opts *o, char *err,
                               size_t errsz);

/* Sets key to val in conf unless kafka.properties chose key: tailord's
 * own defaults, which a user's property overrides.  0, or -1 with
 * librdkafka's message in err. */
int tl_kafka_conf_default(const tl_kafka_opts *o, rd_kafka_conf_t *conf,
                          const char *key, const char *val, char *err,
                          size_t errsz);

/*
 * Start-up check: whether a client with these properties (security
 * included) gets an answer to a metadata request from `brokers` within
 * timeout_ms.  librdkafka itself retries an unreachable or unresolvable
 * broker forever, which at start would turn a typo into a silent hang.
 * TL_OK, or TL_ERR_IO with "cannot reach Kafka at BROKERS within N s:
 * REASON", REASON being librdkafka's first error (e.g. "Failed to resolve
 * 'kafka.example:9092': Name or service not known"); TL_ERR_CONFIG when a
 * property is invalid.
 */
int tl_kafka_check(const tl_kafka_opts *o, int timeout_ms, char *err,
                   size_t errsz);

typedef struct tl_kafka_mock tl_kafka_mock;

/* Starts an in-process mock cluster of nbrokers on loopback and creates the
 * config's input topics (partitions each), output and dead-letter topics. */
tl_kafka_mock *tl_kafka_mock_new(const tl_config *cfg, int nbrokers,
                                 int partitions, char *err, size_t errsz);
/* "127.0.0.1:PORT,..." — valid until tl_kafka_mock_free. */
const char *tl_kafka_mock_bootstraps(const tl_kafka_mock *m);
/* When brokers are the bootstraps of a mock cluster this process hosts:
 * when it was created (wall-clock ms), which with the pid makes its cluster
 * id this run's own (pipeline_reset); else 0. */
int64_t tl_kafka_mock_born(const char *brokers);
/* Creates one more topic on the mock cluster. */
int tl_kafka_mock_topic(tl_kafka_mock *m, const char *topic, int partitions,
                        char *err, size_t errsz);
/* The underlying cluster, for fault injection in tests (rdkafka_mock.h). */
struct rd_kafka_mock_cluster_s *tl_kafka_mock_cluster(tl_kafka_mock *m);
void tl_kafka_mock_free(tl_kafka_mock *m);

#endif
