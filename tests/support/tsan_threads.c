/*
 * tsan_threads — the C11 threads of glibc (thrd_*, mtx_*, cnd_*,
 * call_once) on top of the pthread calls, only in the ThreadSanitizer
 * flavour (make tsan), linked into the test programs and into tailord.
 *
 * Why: librdkafka creates its threads with thrd_create and locks with
 * mtx_lock/cnd_wait.  glibc implements those by calling its internal
 * pthread entry points, which GCC 12's ThreadSanitizer runtime does not
 * intercept: a thread it never saw started crashes in its allocator on the
 * first malloc, and locks it never saw make every hand-over between a
 * librdkafka thread and ours (a log callback, a delivery report) look like
 * a race.  Defined in the executable, these functions take precedence over
 * glibc's for librdkafka too, and the pthread calls they make are the
 * intercepted ones.  glibc's C11 types wrap the pthread ones (same size and
 * layout), and its error mapping is kept.
 */
#if defined(__SANITIZE_THREAD__)

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

static int thrd_err(int e)
{
    return e == 0           ? thrd_success
           : e == ENOMEM    ? thrd_nomem
           : e == ETIMEDOUT ? thrd_timedout
           : e == EBUSY     ? thrd_busy
                            : thrd_error;
}

typedef struct start {
    thrd_start_t fn;
    void *arg;
} start;

static void *trampoline(void *p)
{
    start s = *(start *)p;
    free(p);
    return (void *)(intptr_t)s.fn(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    start *s = malloc(sizeof *s);
    if (!s) return thrd_nomem;
    s->fn = fn;
    s->arg = arg;
    int e = pthread_create((pthread_t *)thr, NULL, trampoline, s);
    if (e) free(s);
    return thrd_err(e);
}

int thrd_join(thrd_t thr, int *res)
{
    void *r;
    int e = pthread_join((pthread_t)thr, &r);
    if (!e && res) *res = (int)(intptr_t)r;
    return thrd_err(e);
}

int thrd_detach(thrd_t thr) { return thrd_err(pthread_detach((pthread_t)thr)); }

int mtx_init(mtx_t *m, int type)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, type & mtx_recursive
                                      ? PTHREAD_MUTEX_RECURSIVE
                                      : PTHREAD_MUTEX_NORMAL);
    int e = pthread_mutex_init((pthread_mutex_t *)m, &a);
    pthread_mutexattr_destroy(&a);
    return thrd_err(e);
}

int mtx_lock(mtx_t *m) { return thrd_err(pthread_mutex_lock((pthread_mutex_t *)m)); }

int mtx_trylock(mtx_t *m)
{
    return thrd_err(pthread_mutex_trylock((pthread_mutex_t *)m));
}

int mtx_timedlock(mtx_t *restrict m, const struct timespec *restrict ts)
{
    return thrd_err(pthread_mutex_timedlock((pthread_mutex_t *)m, ts));
}

int mtx_unlock(mtx_t *m)
{
    return thrd_err(pthread_mutex_unlock((pthread_mutex_t *)m));
}

void mtx_destroy(mtx_t *m) { pthread_mutex_destroy((pthread_mutex_t *)m); }

int cnd_init(cnd_t *c) { return thrd_err(pthread_cond_init((pthread_cond_t *)c, NULL)); }

int cnd_signal(cnd_t *c) { return thrd_err(pthread_cond_signal((pthread_cond_t *)c)); }

int cnd_broadcast(cnd_t *c)
{
    return thrd_err(pthread_cond_broadcast((pthread_cond_t *)c));
}

int cnd_wait(cnd_t *c, mtx_t *m)
{
    return thrd_err(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}

int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m,
                  const struct timespec *restrict ts)
{
    return thrd_err(pthread_cond_timedwait((pthread_cond_t *)c,
                                           (pthread_mutex_t *)m, ts));
}

void cnd_destroy(cnd_t *c) { pthread_cond_destroy((pthread_cond_t *)c); }

void call_once(once_flag *flag, void (*fn)(void))
{
    pthread_once((pthread_once_t *)(void *)flag, fn);
}

#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int tl_tsan_threads_unused;
#endif
