/*
 * store_info — what a Redis server says of itself: whether it answers
 * (PING, every master of a cluster), and in INFO, the one question tailord
 * asks it: can it lose our keys?  A restart (a new run_id), an evicting
 * maxmemory policy, evicted_keys growing.
 */
#include "store_int.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The value of `field` in INFO text ("field:value\r\n"), copied into out
 * (at most outsz - 1 bytes); 0 when the text has no such field. */
static int info_value(const char *info, const char *field, char *out,
                      size_t outsz)
{
    size_t flen = strlen(field);
    for (const char *p = info; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (strncmp(p, field, flen) != 0 || p[flen] != ':') continue;
        const char *v = p + flen + 1;
        size_t n = strcspn(v, "\r\n");
        if (n >= outsz) n = outsz - 1;
        memcpy(out, v, n);
        out[n] = '\0';
        return 1;
    }
    return 0;
}

static int64_t info_i64(const char *info, const char *field)
{
    char v[32];
    int64_t n = 0;
    if (!info_value(info, field, v, sizeof v) ||
        tl_parse_i64(v, strlen(v), &n) != TL_OK)
        return 0;
    return n;
}

void tl_store_take_run_id(tl_store *s, tl_store_node *k, const redisReply *r)
{
    char id[41];
    if (r->type != REDIS_REPLY_STRING ||
        !info_value(r->str, "run_id", id, sizeof id))
        return;
    if (k->run_id[0] && strcmp(k->run_id, id) != 0)
        atomic_fetch_add_explicit(&s->restarts, 1, memory_order_relaxed);
    memcpy(k->run_id, id, sizeof id);
}

void tl_store_facts_add(tl_store_facts *f, const char *info)
{
    char policy[sizeof f->policy];
    if (info_value(info, "maxmemory_policy", policy, sizeof policy) &&
        (!f->policy[0] || tl_store_policy_evicts(policy, 1)))
        memcpy(f->policy, policy, sizeof policy);
    int64_t max = info_i64(info, "maxmemory");
    if (max > f->maxmemory) f->maxmemory = max;
    f->evicted_keys += info_i64(info, "evicted_keys");
}

int tl_store_policy_evicts(const char *policy, int ttl)
{
    if (strncmp(policy, "allkeys-", 8) == 0) return 1;
    return ttl && strncmp(policy, "volatile-", 9) == 0;
}

static int ping_node(tl_store *s, tl_store_node *k, char *err, size_t errsz)
{
    const char *argv[] = {"PING"};
    const size_t lens[] = {4};
    redisReply *r = NULL;
    int rc = tl_store_command_node(s, k, 1, argv, lens, &r, err, errsz);
    if (rc != TL_OK) return rc;
    if (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0)
        rc = TL_OK;
    else if (r->type == REDIS_REPLY_ERROR)
        rc = tl_errf(err, errsz, TL_ERR_IO, "%s: PING: %s", k->where, r->str);
    else
        rc = tl_errf(err, errsz, TL_ERR_IO, "%s: PING: unexpected reply type %d",
                     k->where, r->type);
    freeReplyObject(r);
    return rc;
}

/* INFO memory and stats of every connected node (a single server:
 * connected first), into out. */
int tl_store_facts_get(tl_store *s, tl_store_facts *out, char *err,
                       size_t errsz)
{
    memset(out, 0, sizeof *out);
    tl_store_guard g;
    tl_store_guard_begin(&g);
    int rc = TL_OK;
    for (size_t j = 0; j < s->nnodes && rc == TL_OK; j++) {
        tl_store_node *k = s->nodes[j];
        if (s->slots && !k->c) continue;
        const char *argv[] = {"INFO", "all"};
        const size_t lens[] = {4, 3};
        redisReply *r = NULL;
        rc = tl_store_command_node(s, k, 2, argv, lens, &r, err, errsz);
        if (rc != TL_OK) break;
        if (r->type == REDIS_REPLY_STRING)
            tl_store_facts_add(out, r->str);
        else
            rc = tl_errf(err, errsz, TL_ERR_IO, "%s: INFO: %s", k->where,
                         r->type == REDIS_REPLY_ERROR ? r->str
                                                      : "unexpected reply");
        freeReplyObject(r);
    }
    tl_store_guard_end(&g);
    return rc;
}

/* A cluster answers when its slot map can be read and every master that
 * serves a slot answers PING. */
int tl_store_ping(tl_store *s, char *err, size_t errsz)
{
    tl_store_guard g;
    tl_store_guard_begin(&g);
    int rc = TL_OK;
    if (!s->slots) {
        rc = ping_node(s, s->nodes[0], err, errsz);
        goto out;
    }
    if ((rc = tl_store_cluster_refresh(s, err, errsz)) != TL_OK) goto out;
    unsigned char *used = tl_xcalloc(s->nnodes, 1);
    for (size_t i = 0; i < NSLOTS; i++)
        if (s->slots[i] != NO_NODE) used[s->slots[i]] = 1;
    for (size_t j = 0; j < s->nnodes && rc == TL_OK; j++)
        if (used[j]) rc = ping_node(s, s->nodes[j], err, errsz);
    free(used);
out:
    tl_store_guard_end(&g);
    return rc;
}