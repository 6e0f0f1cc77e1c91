/*
 * store_info — what a Redis server says of itself in INFO, read for the
 * one question tailord asks it: can it lose our keys?  A restart (a new
 * run_id), an evicting maxmemory policy, evicted_keys growing.
 */
#include "store_int.h"

#include <stdatomic.h>
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
