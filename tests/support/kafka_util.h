/*
 * kafka_util — what the end-to-end suites do with a broker: read a whole
 * topic, wait until a consumer group has committed everything, produce a raw
 * message, start tailord and run tools.  The broker address is passed in
 * (usually a mock cluster the test hosts with tl_kafka_mock_new).
 */
#ifndef TL_KAFKA_UTIL_H
#define TL_KAFKA_UTIL_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tl_redis_server;
struct tl_kafka_mock;

/* A private world for an end-to-end suite: a temporary directory, a
 * redis-server and a broker with the input and output topics (`partitions`
 * each) and a one-partition dead-letter topic; TAILOR_KAFKA_BROKERS and
 * TAILOR_REDIS_URL point at them.  The broker is a mock cluster the world
 * hosts, or, when TAILOR_TEST_KAFKA names the directory of a broker that
 * tests/kafka/kafka-up.sh started, that real Apache Kafka: the world then
 * deletes every topic and consumer group left on it (earlier suites,
 * earlier runs) before creating its own, so suites and reruns sharing one
 * broker start from the same empty state as with a fresh mock.  Start
 * returns 0, or -1 having printed why; stop releases everything (by pid). */
typedef struct tl_test_world {
    char *tmp;
    struct tl_redis_server *redis;
    struct tl_kafka_mock *mock; /* NULL with a real broker */
    const char *brokers;
    char real_brokers[256];
} tl_test_world;
int tl_test_world_start(tl_test_world *w, int partitions, const char *in,
                        const char *out, const char *dlq);
void tl_test_world_stop(tl_test_world *w);

/* The real broker's directory ($TAILOR_TEST_KAFKA), or NULL on the mock. */
const char *tl_test_real_kafka(void);

/* A value from the real broker's state file (bootstrap, sasl_bootstrap,
 * sasl_user, sasl_password, pid) in buf; NULL when absent. */
const char *tl_test_kafka_state(const char *key, char *buf, size_t size);

/* Creates topic with `partitions` on the world's broker, mock or real
 * (waiting until it has leaders); 0, or -1 having printed why. */
int tl_test_world_topic(tl_test_world *w, const char *topic, int partitions);

/* The input topic's log starts over at offset 0: on a real broker `in` is
 * deleted and created again (same cluster); the mock cannot delete a
 * topic, so the world gets a new mock cluster with the three topics (and
 * new TAILOR_KAFKA_BROKERS).  0, or -1 having printed why. */
int tl_test_world_renew(tl_test_world *w, int partitions, const char *in,
                        const char *out, const char *dlq);

/* Real broker only: SIGKILLs the Kafka JVM (by the pid in its state file)
 * and starts it again on the same ports and data with kafka-up.sh, after
 * down_ms; 0 once it serves again. */
int tl_test_kafka_crash_restart(int down_ms);

/* Prints, once per program, why a test is skipped in this mode. */
void tl_test_skip(const char *what, const char *why);

typedef void (*tl_test_msg_fn)(void *ud, const rd_kafka_message_t *m);

/* Calls fn for every message of topic up to the end offsets at the time of
 * the call (bounded: 60 s); returns how many. */
size_t tl_test_consume_all(const char *brokers, const char *topic,
                           tl_test_msg_fn fn, void *ud);

/* The value of m's last header called name (not NUL-terminated; *len
 * bytes), NULL when it has none. */
const char *tl_test_header(const rd_kafka_message_t *m, const char *name,
                           size_t *len);

/* 1 once `group` has committed the end offset of every partition of topic,
 * waiting up to timeout_ms. */
int tl_test_wait_drained(const char *brokers, const char *group,
                         const char *topic, int timeout_ms);

/* Sum over the partitions of topic of the offsets `group` committed (0 for
 * a partition without one); -1 when it cannot be read. */
int64_t tl_test_committed(const char *brokers, const char *group,
                          const char *topic);

/* Waits until `group` has committed more of topic than it had when called,
 * up to timeout_ms. */
void tl_test_wait_progress(const char *brokers, const char *group,
                           const char *topic, int64_t timeout_ms);

/* Produces one message (key may be ""), waiting for delivery; 0 on success. */
int tl_test_produce(const char *brokers, const char *topic, const char *key,
                    const void *val, size_t len);

/* Starts `tailord -c config` with stderr to log_path; the pid. */
pid_t tl_test_start_tailord(const char *config, const char *log_path);

/* One whole pass: starts tailord with config, waits (up to timeout_ms)
 * until `group` has committed all of topic, stops it with SIGTERM.  0 when
 * it drained and exited 0 (assertions say which step failed). */
int tl_test_tailord_pass(const char *brokers, const char *config,
                         const char *log_path, const char *group,
                         const char *topic, int timeout_ms);

/* Runs a command to completion (bounded: 120 s); its exit code. */
int tl_test_run_tool(char *const argv[]);

#endif
