#include "source_commit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "log.h"

/* Between two re-sends of failed commits when no batch brings a commit. */
#define RETRY_MS 200
/* Kinds of error logged per streak of failures; further kinds are only
 * counted. */
#define MAX_LOGGED 8
/* How often tl_commits_wait looks again while nothing is answered. */
#define WAIT_SLICE_MS 50

/* One assigned partition's commits. */
typedef struct commit_part {
    char *topic;
    int32_t partition;
    int64_t want;   /* the newest offset handed over (-1: none yet) */
    /* The offset of the last successful answer, in order of arrival, which
     * is what the broker holds: an older request retried inside librdkafka
     * can land after a newer one, and then want is sent again (-1: not
     * known). */
    int64_t held;
    uint64_t seq;   /* the newest request that carried want */
    uint64_t since; /* requests before this one were for an earlier owning */
    rd_kafka_resp_err_t err; /* __IN_PROGRESS until seq is answered */
    int fresh;      /* want raised by the batch being sent */
} commit_part;

struct tl_commits {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q; /* the answers, as events (owned) */
    commit_part *parts;
    size_t n, cap;
    uint64_t seq;        /* requests sent so far: the next one's opaque */
    int64_t retry_at;    /* monotonic ms: the next re-send by serve */
    rd_kafka_resp_err_t logged[MAX_LOGGED]; /* kinds said in this streak */
    int nlogged;
    tl_kafka_health *health;
};

tl_commits *tl_commits_new(rd_kafka_t *rk, tl_kafka_health *health)
{
    tl_commits *c = tl_xcalloc(1, sizeof *c);
    c->rk = rk;
    c->q = rd_kafka_queue_new(rk);
    c->health = health;
    return c;
}

void tl_commits_free(tl_commits *c)
{
    if (!c) return;
    rd_kafka_queue_destroy(c->q);
    for (size_t i = 0; i < c->n; i++) free(c->parts[i].topic);
    free(c->parts);
    free(c);
}

static commit_part *find(tl_commits *c, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->parts[i].partition == partition &&
            strcmp(c->parts[i].topic, topic) == 0)
            return &c->parts[i];
    return NULL;
}

static commit_part *get(tl_commits *c, const char *topic, int32_t partition)
{
    commit_part *p = find(c, topic, partition);
    if (p) return p;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->parts = tl_xrealloc(c->parts, c->cap * sizeof *c->parts);
    }
    p = &c->parts[c->n++];
    *p = (commit_part){.topic = tl_xstrdup(topic), .partition = partition,
                       .want = -1, .held = -1, .since = c->seq + 1};
    return p;
}

static void drop(tl_commits *c, commit_part *p)
{
    free(p->topic);
    *p = c->parts[--c->n];
}

static int unsettled(const commit_part *p)
{
    return p->err == RD_KAFKA_RESP_ERR__IN_PROGRESS || p->held != p->want;
}

/* Answered, and the broker does not hold want: to be sent again. */
static int to_resend(const commit_part *p)
{
    return p->err != RD_KAFKA_RESP_ERR__IN_PROGRESS && p->held != p->want;
}

/* Errors after which nothing can be committed by this handle again.
 * Every other failure is sent again while the partition stays assigned,
 * ILLEGAL_GENERATION and UNKNOWN_MEMBER_ID included: in a cooperative
 * rebalance a member keeps the partitions it is not asked to revoke, and
 * its last commit, refused while the group moved to a new generation, is
 * owed (dropping it left a quiet partition's committed offset behind for
 * good).  It is safe: the broker takes a commit only from the current
 * generation's member, and a partition leaves the assignment — and this
 * table, tl_commits_forget — before another member can own it. */
static int gone(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR__FATAL || e == RD_KAFKA_RESP_ERR__DESTROY;
}

/* A failed request: counted, and logged once per kind of error until
 * commits go through again (a coordinator away fails every batch's). */
static void failed(tl_commits *c, rd_kafka_resp_err_t kind, int nparts)
{
    tl_counter_add(&c->health->commit_errors, 1);
    c->retry_at = tl_now_mono_ms() + RETRY_MS;
    for (int i = 0; i < c->nlogged; i++)
        if (c->logged[i] == kind) return;
    if (c->nlogged == MAX_LOGGED) return;
    c->logged[c->nlogged++] = kind;
    tl_warn("source", "offset commit of %d partition(s) failed: %s; %s "
            "(said once per kind of error until commits go through again; "
            "see tailor_commit_errors_total)", nparts, rd_kafka_err2str(kind),
            gone(kind) ? "the consumer is closing or failed, so they are not "
                         "sent again: their next owner reads from the last "
                         "committed offset"
                       : "sent again while the partitions stay assigned");
}

/* Sends the fresh partitions and, with resend, those whose last commit
 * failed that are still assigned. */
static void send_commit(tl_commits *c, int resend)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new((int)c->n + 1), *a = NULL;
    if (resend && rd_kafka_assignment(c->rk, &a)) a = NULL;
    uint64_t seq = c->seq + 1;
    for (size_t i = 0; i < c->n; i++) {
        commit_part *p = &c->parts[i];
        int go = p->fresh ||
                 (a && to_resend(p) &&
                  rd_kafka_topic_partition_list_find(a, p->topic, p->partition));
        p->fresh = 0;
        if (!go) continue;
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset =
            p->want;
        p->seq = seq;
        p->err = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    }
    if (a) rd_kafka_topic_partition_list_destroy(a);
    if (l->cnt) {
        c->seq = seq;
        rd_kafka_resp_err_t e = rd_kafka_commit_queue(c->rk, l, c->q, NULL,
                                                      (void *)(uintptr_t)seq);
        for (int i = 0; e && i < l->cnt; i++)
            find(c, l->elems[i].topic, l->elems[i].partition)->err = e;
        if (e) failed(c, e, l->cnt);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* One partition's answer to request seq (pe: its error). */
static void answer(tl_commits *c, uint64_t seq,
                   const rd_kafka_topic_partition_t *e, rd_kafka_resp_err_t pe)
{
    commit_part *p = find(c, e->topic, e->partition);
    if (!p || seq < p->since) return; /* revoked since */
    if (!pe) p->held = e->offset;
    if (seq != p->seq) return; /* superseded: a newer request carries want */
    p->err = pe;
    /* Nothing valid to commit (never sent that way): nothing owed. */
    if (pe == RD_KAFKA_RESP_ERR__NO_OFFSET) p->held = p->want, p->err = 0;
    if (gone(pe)) drop(c, p);
}

/* An answer (an OFFSET_COMMIT event): per partition, its own error, or the
 * request's when it has none (librdkafka 2.0.2 copies a request-level
 * error to every partition; a partial failure reports all as failed). */
static void take(tl_commits *c, rd_kafka_event_t *ev)
{
    uint64_t seq = (uintptr_t)rd_kafka_event_opaque(ev);
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev), kind = err;
    const rd_kafka_topic_partition_list_t *l =
        rd_kafka_event_topic_partition_list(ev);
    int nfailed = l ? 0 : err != 0;
    for (int i = 0; l && i < l->cnt; i++) {
        rd_kafka_resp_err_t pe = l->elems[i].err ? l->elems[i].err : err;
        if (pe && pe != RD_KAFKA_RESP_ERR__NO_OFFSET) nfailed++, kind = pe;
        answer(c, seq, &l->elems[i], pe);
    }
    if (nfailed) {
        failed(c, kind, nfailed);
        return;
    }
    for (size_t i = 0; i < c->n; i++)
        if (unsettled(&c->parts[i])) return;
    if (c->nlogged) tl_info("source", "offset commits go through again");
    c->nlogged = 0;
}

/* Takes the answers, waiting at most timeout_ms for the first. */
static void take_answers(tl_commits *c, int timeout_ms)
{
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(c->q, timeout_ms))) {
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT)
            take(c, ev);
        rd_kafka_event_destroy(ev);
        timeout_ms = 0;
    }
}

void tl_commits_send(tl_commits *c, const tl_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const rd_kafka_message_t *m = b->msgs[i];
        commit_part *p = get(c, rd_kafka_topic_name(m->rkt), m->partition);
        if (m->offset + 1 > p->want) {
            p->want = m->offset + 1;
            p->fresh = 1;
        }
    }
    send_commit(c, 1);
}

void tl_commits_serve(tl_commits *c)
{
    take_answers(c, 0);
    if (tl_now_mono_ms() < c->retry_at) return;
    for (size_t i = 0; i < c->n; i++)
        if (to_resend(&c->parts[i])) {
            send_commit(c, 1);
            return;
        }
}

int tl_commits_wait(tl_commits *c, int timeout_ms)
{
    int64_t deadline = tl_now_mono_ms() + timeout_ms;
    for (;;) {
        tl_commits_serve(c);
        size_t open = 0;
        for (size_t i = 0; i < c->n; i++) open += unsettled(&c->parts[i]) != 0;
        if (!open) return TL_OK;
        int64_t left = deadline - tl_now_mono_ms();
        if (left <= 0) {
            tl_warn("source", "the offsets of %zu partition(s) were not "
                    "committed within %d ms; their last events are read "
                    "again by their next owner (the watermarks skip them)",
                    open, timeout_ms);
            return TL_ERR_IO;
        }
        take_answers(c, left < WAIT_SLICE_MS ? (int)left : WAIT_SLICE_MS);
    }
}

void tl_commits_forget(tl_commits *c,
                       const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        commit_part *p = find(c, parts->elems[i].topic, parts->elems[i].partition);
        if (p) drop(c, p);
    }
}
