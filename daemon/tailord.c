/*
 * tailord — wiring only: options, signals, config, the embedded broker, and
 * the pipeline from lib/.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "kafka.h"
#include "log.h"
#include "pipeline.h"

#define TAILOR_VERSION "0.1.0"
/* Bound on reaching Kafka at start (tl_kafka_check). */
#define KAFKA_CHECK_TIMEOUT_MS 10000

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    /* First signal: finish the batch, flush, commit and stop (within
     * daemon.shutdown_timeout); second: exit at once.  Nothing is lost by
     * that: the uncommitted events are consumed again at the next start. */
    if (stop_requested) _exit(2);
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tailord [-c FILE] [--check] [--embedded [--partitions N]]\n"
            "\n"
            "  -c, --config FILE   configuration (default config/tailord.yaml)\n"
            "      --check         validate the configuration, print a summary, exit\n"
            "      --embedded      start an in-process Kafka (librdkafka mock cluster)\n"
            "                      and use it; prints 'embedded kafka: HOST:PORT'\n"
            "      --partitions N  partitions per topic of the embedded Kafka (default 4)\n"
            "  -v, --version       print the version\n"
            "  -h, --help          this help\n"
            "\n"
            "Environment: TAILOR_KAFKA_BROKERS and TAILOR_REDIS_URL override the file.\n"
            "Signals: SIGTERM/SIGINT finish the current batch, commit and exit;\n"
            "a second one exits at once (uncommitted events are re-read at start).\n");
}

int main(int argc, char **argv)
{
    const char *path = "config/tailord.yaml";
    int check = 0, embedded = 0, partitions = 4;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'C'},
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

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    tl_kafka_mock *mock = NULL;
    tl_pipeline *p = NULL;
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
    if (tl_kafka_check(cfg, brokers ? brokers : cfg->brokers,
                       KAFKA_CHECK_TIMEOUT_MS, err, sizeof err))
        goto fail;
    p = tl_pipeline_new(cfg, brokers, err, sizeof err);
    if (!p) goto fail;
    tl_info("tailord", "started: %zu features, %zu rules, group %s",
            cfg->nfeatures, cfg->nrules, cfg->group);
    rc = tl_pipeline_run(p, &stop_requested, err, sizeof err);
    /* Refused credentials are a configuration error, like a bad file. */
    rc = rc == TL_ERR_AUTH || rc == TL_ERR_CONFIG ? 1 : rc ? 2 : 0;
    if (rc) tl_error("tailord", "%s", err);

    const tl_stats *s = tl_pipeline_stats(p);
    uint64_t dead = 0;
    for (int i = 1; i < TL_REJECT__COUNT; i++) dead += s->dead_letters[i];
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
    tl_pipeline_free(p);
    tl_kafka_mock_free(mock);
    tl_config_free(cfg);
    return 1;
}
