/*
 * slice — the real data slice (tests/data/complete_journey_slice.jsonl.gz)
 * as the end-to-end suites that compare a disturbed pass with a clean one
 * use it: produced several times with customer ids suffixed per round, the
 * list of its customers, and the comparison of two trigger topics by their
 * distinct (id, rule, customer, ts) records, with CUnit assertions.
 */
#ifndef TL_SLICE_H
#define TL_SLICE_H

#include <stddef.h>

#define TL_SLICE_PATH "tests/data/complete_journey_slice.jsonl.gz"

/* Produces the slice `rounds` times to topic, encoded as Avro and keyed by
 * customer, customer ids suffixed "-r<round>"; returns how many. */
size_t tl_test_produce_slice(const char *brokers, const char *topic,
                             int rounds);

/* The slice's distinct customer ids (malloc'd array of malloc'd strings);
 * free with tl_test_free_customers. */
char **tl_test_slice_customers(size_t *n);
void tl_test_free_customers(char **ids, size_t n);

/* Asserts that `topic` holds the same set of distinct triggers as
 * `clean_topic` (more than 1000 of them).  With raw non-NULL, also that
 * topic holds no duplicate, and *raw gets its message count. */
void tl_test_compare_trigger_ids(const char *brokers, const char *clean_topic,
                                 const char *topic, size_t *raw);

#endif
