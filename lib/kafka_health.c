#include "kafka_health.h"

#include <string.h>

void tl_kafka_health_init(tl_kafka_health *h)
{
    memset(h, 0, sizeof *h);
    tl_gauge_set(&h->assigned, -1);
    tl_gauge_set(&h->brokers_up, -1);
    pthread_mutex_init(&h->lock, NULL);
}

static void free_lag(tl_lag *l, size_t n)
{
    for (size_t i = 0; i < n; i++) free(l[i].topic);
    free(l);
}

void tl_kafka_health_destroy(tl_kafka_health *h)
{
    free_lag(h->lag, h->nlag);
    h->lag = NULL;
    h->nlag = 0;
    pthread_mutex_destroy(&h->lock);
}

void tl_kafka_health_lag(tl_kafka_health *h,
                         void (*fn)(void *ud, const tl_lag *l), void *ud)
{
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->nlag; i++) fn(ud, &h->lag[i]);
    pthread_mutex_unlock(&h->lock);
}

void tl_kafka_health_set_lag(tl_kafka_health *h, tl_lag *lag, size_t n)
{
    pthread_mutex_lock(&h->lock);
    tl_lag *old = h->lag;
    size_t nold = h->nlag;
    h->lag = lag;
    h->nlag = n;
    pthread_mutex_unlock(&h->lock);
    free_lag(old, nold);
}
