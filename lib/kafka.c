#include "kafka.h"

#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug. */
    tl_log_level l = level <= 3 ? TL_LOG_ERROR
                     : level == 4 ? TL_LOG_WARN
                     : level <= 6 ? TL_LOG_INFO
                                  : TL_LOG_DEBUG;
    TL_LOG(l, "kafka", "%s: %s", fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *ud)
{
    (void)ud;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fe[512];
        rd_kafka_fatal_error(rk, fe, sizeof fe);
        tl_error("kafka", "fatal: %s", fe);
        return;
    }
    /* librdkafka recovers from the rest by itself (reconnects, retries);
     * all brokers down is worth a warning, the others are noise at info. */
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        tl_warn("kafka", "%s", reason);
    else
        tl_info("kafka", "%s: %s", rd_kafka_err2name(err), reason);
}

tl_kafka_opts tl_kafka_opts_of(const tl_config *cfg, const char *brokers)
{
    return (tl_kafka_opts){brokers ? brokers : cfg->brokers, cfg->properties,
                           cfg->nproperties};
}

rd_kafka_conf_t *tl_kafka_conf(const tl_kafka_opts *o, char *err,
                               size_t errsz)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[512];
    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, e, sizeof e))
        goto fail;
    if (rd_kafka_conf_set(conf, "client.id", "tailord", e, sizeof e))
        goto fail;
    for (size_t i = 0; i < o->nproperties; i++)
        if (rd_kafka_conf_set(conf, o->properties[i].key,
                              o->properties[i].val, e, sizeof e)) {
            tl_errf(err, errsz, TL_ERR_CONFIG,
                    "kafka.properties.%s: %s", o->properties[i].key, e);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    return conf;
fail:
    tl_errf(err, errsz, TL_ERR_CONFIG, "kafka: %s", e);
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int tl_kafka_conf_default(const tl_kafka_opts *o, rd_kafka_conf_t *conf,
                          const char *key, const char *val, char *err,
                          size_t errsz)
{
    for (size_t i = 0; i < o->nproperties; i++)
        if (!strcmp(o->properties[i].key, key)) return 0;
    return rd_kafka_conf_set(conf, key, val, err, errsz) ? -1 : 0;
}

/* What the check's handle reported; served by rd_kafka_poll on the calling
 * thread only. */
typedef struct check_state {
    char first[512]; /* first error other than "all brokers down" */
    char any[512];   /* the last error of any kind */
} check_state;

static void check_on_error(rd_kafka_t *rk, int err, const char *reason,
                           void *ud)
{
    (void)rk;
    check_state *st = ud;
    snprintf(st->any, sizeof st->any, "%s", reason);
    if (err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && !st->first[0])
        snprintf(st->first, sizeof st->first, "%s", reason);
}

/* The check sums up its outcome in one line: librdkafka's own per-attempt
 * lines only at debug. */
static void check_on_log(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf)
{
    (void)rk;
    (void)level;
    tl_debug("kafka", "check: %s: %s", fac, buf);
}

int tl_kafka_check(const tl_kafka_opts *o, int timeout_ms, char *err,
                   size_t errsz)
{
    const char *brokers = o->brokers;
    char e[512];
    check_state st = {"", ""};
    rd_kafka_conf_t *conf = tl_kafka_conf(o, err, errsz);
    if (!conf) return TL_ERR_CONFIG;
    rd_kafka_conf_set_error_cb(conf, check_on_error);
    rd_kafka_conf_set_log_cb(conf, check_on_log);
    rd_kafka_conf_set_opaque(conf, &st);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return tl_errf(err, errsz, TL_ERR_CONFIG, "kafka: %s", e);
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t re = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    int rc = TL_OK;
    if (re == RD_KAFKA_RESP_ERR_NO_ERROR) {
        tl_debug("kafka", "reached %s: %d broker(s)", brokers,
                 md->broker_cnt);
        rd_kafka_metadata_destroy(md);
    } else {
        rd_kafka_poll(rk, 0); /* serves the error callbacks */
        const char *why = st.first[0] ? st.first
                          : st.any[0] ? st.any
                                      : rd_kafka_err2str(re);
        rc = tl_errf(err, errsz, TL_ERR_IO,
                     "cannot reach Kafka at %s within %g s: %s (check "
                     "kafka.brokers or TAILOR_KAFKA_BROKERS)",
                     brokers, timeout_ms / 1000.0, why);
    }
    rd_kafka_destroy(rk);
    return rc;
}

struct tl_kafka_mock {
    rd_kafka_t *rk; /* owns the cluster; never used to produce */
    rd_kafka_mock_cluster_t *mc;
    int64_t born;   /* wall-clock ms at creation */
};

/* The mock clusters this process hosts, for tl_kafka_mock_born: a mock
 * names itself after its address ("mockCluster55d0c4a2f1"), which the next
 * process repeats wherever the heap does (no ASLR, sanitizers' allocators),
 * so its id alone does not tell one run's log from the next. */
#define MAX_LOCAL_MOCKS 16
static pthread_mutex_t mocks_lock = PTHREAD_MUTEX_INITIALIZER;
static tl_kafka_mock *local_mocks[MAX_LOCAL_MOCKS];

static void mock_register(tl_kafka_mock *m, int add)
{
    pthread_mutex_lock(&mocks_lock);
    for (size_t i = 0; i < MAX_LOCAL_MOCKS; i++)
        if (add ? !local_mocks[i] : local_mocks[i] == m) {
            local_mocks[i] = add ? m : NULL;
            break;
        }
    pthread_mutex_unlock(&mocks_lock);
}

int64_t tl_kafka_mock_born(const char *brokers)
{
    int64_t born = 0;
    pthread_mutex_lock(&mocks_lock);
    for (size_t i = 0; brokers && i < MAX_LOCAL_MOCKS && !born; i++)
        if (local_mocks[i] &&
            !strcmp(tl_kafka_mock_bootstraps(local_mocks[i]), brokers))
            born = local_mocks[i]->born;
    pthread_mutex_unlock(&mocks_lock);
    return born;
}

tl_kafka_mock *tl_kafka_mock_new(const tl_config *cfg, int nbrokers,
                                 int partitions, char *err, size_t errsz)
{
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, on_log);
    /* This handle only hosts the cluster; its "no bootstrap.servers"
     * warning would be noise. */
    rd_kafka_conf_set(conf, "log_level", "3", e, sizeof e);
    tl_kafka_mock *m = tl_xcalloc(1, sizeof *m);
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!m->rk) {
        rd_kafka_conf_destroy(conf);
        free(m);
        tl_errf(err, errsz, TL_ERR_IO, "embedded kafka: %s", e);
        return NULL;
    }
    m->mc = rd_kafka_mock_cluster_new(m->rk, nbrokers);
    if (!m->mc) {
        tl_errf(err, errsz, TL_ERR_IO,
                "embedded kafka: cannot start the mock cluster");
        goto fail;
    }
    m->born = tl_now_wall_ms();
    mock_register(m, 1);
    for (size_t i = 0; cfg && i < cfg->ninputs; i++)
        if (tl_kafka_mock_topic(m, cfg->inputs[i], partitions, err, errsz))
            goto fail;
    if (cfg && (tl_kafka_mock_topic(m, cfg->output, partitions, err, errsz) ||
                tl_kafka_mock_topic(m, cfg->dead_letter, 1, err, errsz)))
        goto fail;
    return m;
fail:
    tl_kafka_mock_free(m);
    return NULL;
}

const char *tl_kafka_mock_bootstraps(const tl_kafka_mock *m)
{
    return rd_kafka_mock_cluster_bootstraps(m->mc);
}

int tl_kafka_mock_topic(tl_kafka_mock *m, const char *topic, int partitions,
                        char *err, size_t errsz)
{
    rd_kafka_resp_err_t e =
        rd_kafka_mock_topic_create(m->mc, topic, partitions, 1);
    if (e)
        return tl_errf(err, errsz, TL_ERR_IO,
                       "embedded kafka: cannot create topic %s: %s", topic,
                       rd_kafka_err2str(e));
    return TL_OK;
}

struct rd_kafka_mock_cluster_s *tl_kafka_mock_cluster(tl_kafka_mock *m)
{
    return m->mc;
}

void tl_kafka_mock_free(tl_kafka_mock *m)
{
    if (!m) return;
    mock_register(m, 0);
    if (m->mc) rd_kafka_mock_cluster_destroy(m->mc);
    if (m->rk) rd_kafka_destroy(m->rk);
    free(m);
}
