/*
 * alloc_count — counts malloc/calloc/realloc calls made while
 * tl_alloc_counting is set, to prove that a hot path allocates nothing.
 *
 * glibc no longer has __malloc_hook, and byte totals (mallinfo2) do not move
 * when an allocation is freed again, so calls are counted instead.  Under
 * AddressSanitizer or ThreadSanitizer their allocator hooks do that; elsewhere the test
 * program defines malloc/calloc/realloc/free itself (this object), which the
 * dynamic linker prefers over libc's, and forwards to glibc's real entry
 * points.  Valgrind replaces malloc in the executable too, so there the count
 * never moves: tl_test_under_valgrind says when that is the case.
 */
#ifndef TL_ALLOC_COUNT_H
#define TL_ALLOC_COUNT_H

extern int tl_alloc_counting;
extern unsigned long tl_alloc_calls;

/* Call once before counting (installs the ASan hooks where needed). */
void tl_alloc_counter_install(void);
int tl_test_under_valgrind(void);

#endif
