#include "alloc_count.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

int tl_alloc_counting;
unsigned long tl_alloc_calls;

/* The sanitizers' runtimes replace malloc themselves (ThreadSanitizer's
 * would call an instrumented malloc of ours before it is initialised), so
 * under either their allocator hooks count. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void *, size_t),
    void (*free_hook)(const volatile void *));

static void count_malloc(const volatile void *ptr, size_t size)
{
    (void)ptr;
    (void)size;
    if (tl_alloc_counting) tl_alloc_calls++;
}

static void count_free(const volatile void *ptr) { (void)ptr; }

void tl_alloc_counter_install(void)
{
    __sanitizer_install_malloc_and_free_hooks(count_malloc, count_free);
}
#else
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

void *malloc(size_t n)
{
    if (tl_alloc_counting) tl_alloc_calls++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    if (tl_alloc_counting) tl_alloc_calls++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (tl_alloc_counting) tl_alloc_calls++;
    return __libc_realloc(p, n);
}

void free(void *p) { __libc_free(p); }

void tl_alloc_counter_install(void) {}
#endif

/* Valgrind replaces malloc in the executable too, so the counter above never
 * runs there; it is recognised by its preloaded libraries. */
int tl_test_under_valgrind(void)
{
    const char *pre = getenv("LD_PRELOAD");
    return pre && strstr(pre, "vgpreload") != NULL;
}
