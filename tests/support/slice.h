/*
 * slice — the real events of tests/data/complete_journey_slice.jsonl.gz as
 * load for end-to-end suites: replayed in rounds with the customer ids
 * suffixed "-r<round>" (so that each round is a fresh set of customers),
 * encoded as Avro and produced keyed by customer, in file order; and the
 * comparisons of a disturbed pass with a clean one, in Redis and on the
 * trigger topic.
 */
#ifndef TL_TEST_SLICE_H
#define TL_TEST_SLICE_H

#include <stddef.h>

#define TL_TEST_SLICE "tests/data/complete_journey_slice.jsonl.gz"

/* Produces rounds first_round .. first_round+rounds-1 to topic, waiting
 * for delivery; the number of events produced (0 on a setup failure). */
size_t tl_test_produce_slice(const char *brokers, const char *topic,
                             int first_round, int rounds);

/* The slice's distinct customer ids, in order of first appearance
 * (malloc'd array of malloc'd strings; free with tl_test_free_ids). */
size_t tl_test_slice_customers(char ***ids);
void tl_test_free_ids(char **ids, size_t n);

/* Compares, for rounds first_round.. and every id, the hash
 * <pa>cx:{ID-rN} in Redis a with <pb>cx:{ID-rN} in Redis b (both hiredis
 * redisContexts), printing the first differences; returns how many differ,
 * *empty gets how many were empty in a (a pass that wrote nothing). */
struct redisContext;
size_t tl_test_compare_passes(struct redisContext *a, const char *pa,
                              struct redisContext *b, const char *pb,
                              char **ids, size_t n, int first_round,
                              int rounds, size_t *empty);

/* Asserts that `topic` holds the same set of distinct triggers, as
 * (id, rule, customer, ts), as `clean_topic` (more than 1000 of them).  With
 * raw non-NULL, also that topic holds no duplicate, and *raw gets its
 * message count. */
void tl_test_compare_trigger_ids(const char *brokers, const char *clean_topic,
                                 const char *topic, size_t *raw);

#endif
