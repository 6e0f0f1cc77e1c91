/*
 * tailord — wiring only: options, signals, config, the embedded broker, and
 * the pipeline from lib/.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "config.h"
#include "http.h"
#include "kafka.h"
#include "log.h"
#include "pipeline.h"

#define TAILOR_VERSION "0.1.0"
/* Bound on reaching Kafka at start (tl_kafka_check). */
#define KAFKA_CHECK_TIMEOUT_MS 10000

static volatile sig_atomic_t stop_requested;
/* Atomic, not sig_atomic_t: set from a signal handler and meant to be set
 * from another thread too (an HTTP reload endpoint calls request_reload). */
static atomic_int reload_requested, reload_force;

/* Async-signal-safe and thread-safe: the loop's boundary hook does the
 * work. */
static void request_reload(int force)
{
    if (force) atomic_store(&reload_force, 1);
    atomic_store(&reload_requested, 1);
}

static void on_hup(int sig)
{
    (void)sig;
    request_reload(0);
}

/* systemd notify protocol (sd_notify is a no-op without NOTIFY_SOCKET). */
typedef struct daemon_state {
    tl_pipeline *p;
    const char *path; /* config file, read again on reload */
    int force;        /* --force: reloads may remove or re-kind features */
    int ready, stopping;
    uint64_t watchdog_usec;
    int64_t last_ping_ms;
} daemon_state;

/* Before READY=1 (not yet assigned), a reload must not announce readiness:
 * RELOADING=1 ... READY=1 only once ready. */
static void reload(daemon_state *d)
{
    char err[TL_ERRSZ];
    const char *ready = d->ready ? "READY=1\n" : "";
    sd_notifyf(0, "%sSTATUS=reloading the configuration",
               d->ready ? "RELOADING=1\n" : "");
    tl_info("tailord", "SIGHUP: reading %s", d->path);
    int force = d->force || atomic_exchange(&reload_force, 0);
    tl_config *next = tl_config_load(d->path, err, sizeof err);
    if (!next || tl_pipeline_reload(d->p, next, force, err, sizeof err)) {
        tl_config_free(next);
        tl_error("tailord", "reload refused, the running configuration "
                 "stays: %s", err);
        sd_notifyf(0, "%sSTATUS=reload refused; running the previous "
                   "configuration", ready);
        return;
    }
    /* Logging follows at once; features and rules at the batch boundary. */
    tl_log_set_level(next->log_level);
    tl_log_set_format(next->log_format);
    tl_info("tailord", "reload accepted: %zu features, %zu rules; applied "
            "between two batches", next->nfeatures, next->nrules);
    sd_notifyf(0, "%sSTATUS=configuration reloaded", ready);
}

static void tick(void *ud)
{
    daemon_state *d = ud;
    if (!d->ready && tl_pipeline_assigned(d->p) > 0) {
        d->ready = 1;
        sd_notifyf(0, "READY=1\nSTATUS=processing: %d partition(s) assigned",
                   tl_pipeline_assigned(d->p));
    }
    if (stop_requested && !d->stopping) {
        d->stopping = 1;
        sd_notify(0, "STOPPING=1\nSTATUS=stopping: finishing the batch");
    }
    if (d->watchdog_usec) {
        int64_t now = tl_now_mono_ms();
        if (now - d->last_ping_ms >= (int64_t)(d->watchdog_usec / 2000)) {
            sd_notify(0, "WATCHDOG=1");
            d->last_ping_ms = now;
        }
    }
}

/* Between batches (tl_pipeline_set_boundary): a requested reload. */
static void boundary(void *ud)
{
    if (!stop_requested && atomic_exchange(&reload_requested, 0)) reload(ud);
}

/* Bounds the teardown after the loop returned: librdkafka 2.0.2 can hang
 * destroying a cooperative consumer that closes while an assignment is
 * being processed (fixed upstream in 2.4.0), and a daemon that does not
 * exit is worse than one that skips the rest of its teardown: everything
 * that matters was committed, or will be read again. */
#define TEARDOWN_TIMEOUT_S 30
static volatile sig_atomic_t teardown_rc;

static void on_teardown_timeout(int sig)
{
    (void)sig;
    static const char msg[] = "tailord: teardown took over 30 s (a librdkafka "
                              "hang); exiting without finishing it\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(teardown_rc ? teardown_rc : 2);
}

static void on_signal(int sig)
{
    (void)sig;
    /* First signal: finish the batch, flush, commit and stop (within
     * daemon.shutdown_timeout); second: exit at once.  Nothing is lost by
     * that: the uncommitted events are consumed again at the next start. */
    if (stop_requested) _exit(2);
    stop_requested = 1;
}

/* ---- HTTP endpoint wiring (lib/http) ------------------------------------ */

static void http_metrics(void *ud, tl_buf *b) { tl_pipeline_metrics(ud, b); }
static int http_ready(void *ud, char *why, size_t whysz)
{
    return tl_pipeline_ready(ud, why, whysz);
}
/* POST /v1/reload sets the same flag as SIGHUP; the boundary hook does the
 * work. */
static void http_reload(void *ud, int force)
{
    (void)ud;
    request_reload(force);
}

static void http_config(void *ud, const tl_config *cfg)
{
    tl_http_set_config(ud, cfg);
}

static tl_http *start_http(const tl_config *cfg, tl_pipeline *p, char *err,
                           size_t errsz)
{
    tl_http_opts o = {cfg, http_metrics, http_ready, http_reload, p};
    tl_http *h = tl_http_start(&o, err, errsz);
    /* The endpoint reads features, prefix and token from the running
     * config: follow reloads. */
    if (h) tl_pipeline_set_config_hook(p, http_config, h);
    return h;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tailord [-c FILE] [--check] [--force] [--embedded [--partitions N]]\n"
            "\n"
            "  -c, --config FILE   configuration (default config/tailord.yaml)\n"
            "      --check         validate the configuration, print a summary, exit\n"
            "      --force         let a reload (SIGHUP) remove features, change\n"
            "                      their kind or options that shape their state\n"
            "      --embedded      start an in-process Kafka (librdkafka mock cluster)\n"
            "                      and use it; prints 'embedded kafka: HOST:PORT'\n"
            "      --partitions N  partitions per topic of the embedded Kafka (default 4)\n"
            "  -v, --version       print the version\n"
            "  -h, --help          this help\n"
            "\n"
            "Environment: TAILOR_KAFKA_BROKERS and TAILOR_REDIS_URL override the file.\n"
            "Signals: SIGTERM/SIGINT finish the current batch, commit and exit;\n"
            "a second one exits at once (uncommitted events are re-read at start).\n"
            "SIGHUP reads the configuration again and applies it between two\n"
            "batches, or refuses it (logged) and keeps the running one.\n"
            "Under systemd (NOTIFY_SOCKET): READY=1 after the first partition\n"
            "assignment, WATCHDOG=1 at half of WatchdogSec, STOPPING=1.\n");
}

int main(int argc, char **argv)
{
    const char *path = "config/tailord.yaml";
    int check = 0, embedded = 0, partitions = 4, force = 0;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'C'},
        {"force", no_argument, NULL, 'F'},
        {"embedded", no_argument, NULL, 'E'},
        {"partitions", required_argument, NULL, 'P'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': path = optarg; break;
        case 'C': check = 1; break;
        case 'F': force = 1; break;
        case 'E': embedded = 1; break;
        case 'P':
            partitions = atoi(optarg);
            if (partitions < 1 || partitions > 1000) {
                fprintf(stderr, "tailord: --partitions must be 1..1000\n");
                return 1;
            }
            break;
        case 'v': printf("tailord %s\n", TAILOR_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 1;
    }

    char err[TL_ERRSZ];
    tl_config *cfg = tl_config_load(path, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (check) {
        tl_config_print_summary(cfg, stdout);
        printf("%s: OK\n", path);
        tl_config_free(cfg);
        return 0;
    }
    tl_log_set_level(cfg->log_level);
    tl_log_set_format(cfg->log_format);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    tl_kafka_mock *mock = NULL;
    tl_pipeline *p = NULL;
    tl_http *http = NULL;
    const char *brokers = NULL;
    if (embedded) {
        mock = tl_kafka_mock_new(cfg, 1, partitions, err, sizeof err);
        if (!mock) goto fail;
        brokers = tl_kafka_mock_bootstraps(mock);
        printf("embedded kafka: %s\n", brokers);
        fflush(stdout);
    }
    /* librdkafka would retry an unreachable broker forever: say so and
     * exit 1 instead. */
    tl_kafka_opts ko = tl_kafka_opts_of(cfg, brokers);
    if (tl_kafka_check(&ko, KAFKA_CHECK_TIMEOUT_MS, err, sizeof err))
        goto fail;
    p = tl_pipeline_new(cfg, brokers, err, sizeof err);
    if (!p) goto fail;
    if (cfg->http_listen && !(http = start_http(cfg, p, err, sizeof err)))
        goto fail;
    tl_info("tailord", "started: %zu features, %zu rules, group %s",
            cfg->nfeatures, cfg->nrules, cfg->group);
    daemon_state d = {.p = p, .path = path, .force = force};
    /* 0 when no watchdog is asked for (or it is meant for another pid). */
    if (sd_watchdog_enabled(0, &d.watchdog_usec) <= 0) d.watchdog_usec = 0;
    sd_notify(0, "STATUS=joining the consumer group");
    tl_pipeline_set_tick(p, tick, &d);
    tl_pipeline_set_boundary(p, boundary, &d);
    rc = tl_pipeline_run(p, &stop_requested, err, sizeof err);
    if (!d.stopping) sd_notify(0, "STOPPING=1");
    /* Refused credentials are a configuration error, like a bad file. */
    rc = rc == TL_ERR_AUTH || rc == TL_ERR_CONFIG ? 1 : rc ? 2 : 0;
    if (rc) tl_error("tailord", "%s", err);
    teardown_rc = rc;
    signal(SIGALRM, on_teardown_timeout);
    alarm(TEARDOWN_TIMEOUT_S);

    const tl_stats *s = tl_pipeline_stats(p);
    uint64_t dead = tl_pipeline_dead_letters(s);
    double secs = s->last_commit_ms > s->first_event_ms
                      ? (double)(s->last_commit_ms - s->first_event_ms) / 1000.0
                      : 0;
    tl_info("tailord",
            "stopping: %" PRIu64 " events (%" PRIu64 " applied, %" PRIu64
            " already applied), %" PRIu64 " triggers, %" PRIu64
            " dead letters, %.1f s from first poll to last commit (%.0f "
            "events/s)",
            s->events, s->applied, s->duplicates, s->triggers, dead, secs,
            secs > 0 ? (double)s->events / secs : 0.0);
    char by_reason[256] = "";
    for (int i = 1; i < TL_REJECT__COUNT; i++) {
        size_t n = strlen(by_reason);
        snprintf(by_reason + n, sizeof by_reason - n, "%s%s %" PRIu64,
                 i > 1 ? ", " : "", tl_reject_name((tl_reject)i),
                 s->dead_letters[i]);
    }
    tl_info("tailord", "dead letters by reason: %s", by_reason);
    tl_http_stop(http);
    tl_info("tailord",
            "redis: %" PRIu64 " round trips, %" PRIu64 " commands, %" PRIu64
            " vector writes in %" PRIu64 " batches",
            s->redis_round_trips, s->redis_commands, s->flushed, s->batches);
    tl_info("tailord",
            "triggers: %" PRIu64 " produced (%" PRIu64 " holdout); suppressed: "
            "cooldown %" PRIu64 ", quiet_hours %" PRIu64 ", cap %" PRIu64
            ", group %" PRIu64,
            s->triggers, s->holdouts, s->suppressed[TL_SUP_COOLDOWN],
            s->suppressed[TL_SUP_QUIET_HOURS], s->suppressed[TL_SUP_CAP],
            s->suppressed[TL_SUP_GROUP]);
    tl_pipeline_free(p);
    tl_kafka_mock_free(mock);
    tl_config_free(cfg);
    return rc;
fail:
    tl_error("tailord", "%s", err);
    tl_http_stop(http);
    tl_pipeline_free(p);
    tl_kafka_mock_free(mock);
    tl_config_free(cfg);
    return 1;
}
