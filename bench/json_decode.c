/*
 * json_decode — decoding alone, JSON against Avro (`make bench-json`,
 * docs/benchmarks.md "JSON decoding").  The Online Retail events
 * ($BENCH_DATA/online_retail_uci.jsonl.gz), each line as the JSON message a
 * producer writes, and the same events encoded to Avro by the project's
 * encoder (as `tailorctl produce` and the bench do), are decoded by the
 * daemon's decoders (tl_event_decode) in batches of 1,000 into one arena
 * reset per batch, as the pipeline's decode stage does.  Prints ns/event
 * (the best of BENCH_ROUNDS rounds, 5) and, when run under
 * bench/alloc_preload.so with $BENCH_ALLOC_FILE, allocations/event.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "event.h"

#define BATCH 1000

typedef struct msg {
    void *b;
    size_t n;
} msg;

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "json_decode: %s\n", what);
    exit(1);
}

/* The preload's counters (bench/alloc_preload.c): [0] the main thread. */
static _Atomic uint64_t *alloc_calls(void)
{
    const char *path = getenv("BENCH_ALLOC_FILE");
    int fd = path ? open(path, O_RDWR) : -1;
    if (fd < 0) return NULL;
    void *m = mmap(NULL, 2 * sizeof(uint64_t), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    return m == MAP_FAILED ? NULL : m;
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Lines of the file, newline dropped (malloc'd copies). */
static msg *load_lines(const char *path, size_t *n)
{
    gzFile f = gzopen(path, "rb");
    if (!f) die("cannot open the data (set BENCH_DATA)");
    static char line[1 << 16];
    size_t cap = 1 << 16;
    msg *m = tl_xmalloc(cap * sizeof *m);
    *n = 0;
    while (gzgets(f, line, sizeof line)) {
        size_t len = strcspn(line, "\r\n");
        if (!len) continue;
        if (*n == cap) m = tl_xrealloc(m, (cap *= 2) * sizeof *m);
        m[*n].b = tl_xstrndup(line, len);
        m[(*n)++].n = len;
    }
    gzclose(f);
    return m;
}

/* The same events in Avro. */
static msg *to_avro(const msg *j, size_t n)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_arena_init(&a, 0);
    tl_event_encoder *enc = tl_event_encoder_new(NULL, err, sizeof err);
    msg *m = tl_xmalloc(n * sizeof *m);
    for (size_t i = 0; i < n; i++) {
        tl_event ev;
        const void *out;
        tl_arena_reset(&a);
        if (tl_event_from_json(j[i].b, j[i].n, &a, &ev, err, sizeof err) ||
            tl_event_encode(enc, &ev, &out, &m[i].n, err, sizeof err))
            die(err);
        m[i].b = tl_xmalloc(m[i].n);
        memcpy(m[i].b, out, m[i].n);
    }
    tl_event_encoder_free(enc);
    tl_arena_free(&a);
    return m;
}

/* One round over all messages: ns/event; *allocs gets the calls made. */
static double round_ns(tl_event_decoder *d, const msg *m, size_t n,
                       tl_arena *a, _Atomic uint64_t *cnt, uint64_t *allocs)
{
    char err[TL_ERRSZ];
    uint64_t c0 = cnt ? atomic_load(&cnt[0]) : 0;
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        tl_event ev;
        if (i % BATCH == 0) tl_arena_reset(a);
        if (tl_event_decode(d, m[i].b, m[i].n, a, &ev, err, sizeof err))
            die(err);
    }
    double t = now_ns() - t0;
    *allocs = cnt ? atomic_load(&cnt[0]) - c0 : 0;
    return t / (double)n;
}

static void measure(const char *name, tl_event_format fmt, const msg *m,
                    size_t n, int rounds, _Atomic uint64_t *cnt)
{
    char err[TL_ERRSZ];
    tl_arena a;
    tl_arena_init(&a, 0);
    tl_event_decoder *d = tl_event_decoder_new(fmt, NULL, NULL, err, sizeof err);
    if (!d) die(err);
    uint64_t allocs, best_allocs = 0;
    double best = round_ns(d, m, n, &a, cnt, &allocs); /* warm-up */
    for (int r = 0; r < rounds; r++) {
        double ns = round_ns(d, m, n, &a, cnt, &allocs);
        if (r == 0 || ns < best) best = ns;
        best_allocs = allocs;
    }
    double bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += (double)m[i].n;
    printf("%-5s %9zu events  %6.0f bytes/event  %7.0f ns/event  ", name, n,
           bytes / (double)n, best);
    if (cnt)
        printf("%.3f allocations/event\n", (double)best_allocs / (double)n);
    else
        printf("(allocations: run under alloc_preload.so)\n");
    tl_event_decoder_free(d);
    tl_arena_free(&a);
}

int main(void)
{
    const char *dir = getenv("BENCH_DATA");
    const char *r = getenv("BENCH_ROUNDS");
    char path[4096];
    snprintf(path, sizeof path, "%s/online_retail_uci.jsonl.gz",
             dir && *dir ? dir : "../shared/data");
    int rounds = r && atoi(r) > 0 ? atoi(r) : 5;
    size_t n;
    msg *json = load_lines(path, &n);
    msg *avro = to_avro(json, n);
    _Atomic uint64_t *cnt = alloc_calls();
    measure("json", TL_FMT_JSON, json, n, rounds, cnt);
    measure("avro", TL_FMT_AVRO, avro, n, rounds, cnt);
    for (size_t i = 0; i < n; i++) {
        free(json[i].b);
        free(avro[i].b);
    }
    free(json);
    free(avro);
    return 0;
}
