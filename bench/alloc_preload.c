/*
 * alloc_preload — an LD_PRELOAD library for `make bench` that counts the
 * malloc, calloc, realloc and posix_memalign/aligned_alloc calls of the
 * process it is loaded into, split by thread: the main thread (tailord's
 * pipeline: decoding, features, rules, Redis, and the librdkafka calls it
 * makes) and every other thread (librdkafka's broker and main threads).
 *
 * The counters live in a file the bench names in $BENCH_ALLOC_FILE, mapped
 * shared, so that the bench reads them while tailord runs and takes the
 * difference over the steady part of the run (allocations per event), not
 * start-up.  Counting costs two relaxed atomic adds per allocation.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

/* Layout shared with bench.c: [0] main thread, [1] other threads. */
typedef struct counters {
    _Atomic uint64_t calls[2];
} counters;

static counters fallback;
static counters *cnt = &fallback;
/* initial-exec: the general TLS model may call malloc itself. */
static __thread int thread_kind __attribute__((tls_model("initial-exec"))) = -1;

__attribute__((constructor)) static void init(void)
{
    const char *path = getenv("BENCH_ALLOC_FILE");
    if (!path) return;
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0) return;
    if (ftruncate(fd, sizeof(counters)) == 0) {
        void *m = mmap(NULL, sizeof(counters), PROT_READ | PROT_WRITE,
                       MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) cnt = m;
    }
    close(fd);
}

static void count(void)
{
    if (thread_kind < 0)
        /* Not cached in the constructor: libraries allocate before it. */
        thread_kind = syscall(SYS_gettid) == getpid() ? 0 : 1;
    atomic_fetch_add_explicit(&cnt->calls[thread_kind], 1,
                              memory_order_relaxed);
}

void *malloc(size_t n)
{
    count();
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    count();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    count();
    return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    count();
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    count();
    void *p = __libc_memalign(align, n);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void free(void *p) { __libc_free(p); }
