/*
 * expr_util — expressions as the unit suites of features and rules build
 * them: compiled against the event's fields.
 */
#ifndef TL_EXPR_UTIL_H
#define TL_EXPR_UTIL_H

#include "expr.h"

/* src compiled in the event scope (tl_event_resolve) to type want; a
 * compile error is printed and fails the running test (fatal), or outside
 * a test (a suite's init) returns NULL. */
tl_expr *tl_test_event_expr(const char *src, tl_type want);

#endif
