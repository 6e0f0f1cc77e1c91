#include "expr_util.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "event.h"

tl_expr *tl_test_event_expr(const char *src, tl_type want)
{
    tl_expr_scope sc = {tl_event_resolve, NULL};
    size_t off = 0;
    char err[256];
    tl_expr *e = tl_expr_compile(src, strlen(src), &sc, want, &off, err,
                                 sizeof err);
    if (!e) fprintf(stderr, "compile %s: %s\n", src, err);
    /* CUnit aborts on an assertion outside a test (a suite's init). */
    if (CU_get_current_test()) CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    return e;
}
