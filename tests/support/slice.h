/*
 * slice — the real events of tests/data/complete_journey_slice.jsonl.gz as
 * load for end-to-end suites: replayed in rounds with the customer ids
 * suffixed "-r<round>" (so that each round is a fresh set of customers),
 * encoded as Avro and produced keyed by customer, in file order.
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

#endif
