/*
 * store_reply — Redis error replies: which say "this server cannot serve us
 * now" (an outage: retried, every customer waits) and which are one key's
 * own error, what to add to their message, and their cause for people
 * (/readyz).  Pure: no I/O.  Declared in store_int.h (tl_store_reply_cause
 * in store.h).
 */
#include "store_int.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

/* Error replies that say "this server cannot serve us right now" rather
 * than "this key is wrong": retrying later (on a fresh connection, which
 * follows a failover behind a DNS name) is the remedy, and every customer
 * waits.  Anything else (WRONGTYPE, say) is the key's own error. NOPERM
 * too waits: an ACL that denies our keys or commands is the operator's to
 * fix, not a reason to dead-letter every event meanwhile. */
int tl_store_reply_transient(const redisReply *r)
{
    static const char *const prefixes[] = {
        "LOADING", "READONLY", "MASTERDOWN", "BUSY", "OOM", "MISCONF",
        "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN", "NOAUTH", "NOPERM",
        "MOVED", "ASK", NULL};
    for (const char *const *p = prefixes; *p; p++) {
        size_t n = strlen(*p);
        if (r->len >= n && strncmp(r->str, *p, n) == 0 &&
            (r->len == n || r->str[n] == ' '))
            return 1;
    }
    return 0;
}

/* Recognized by the code of the error reply (an upper-case word after
 * ": "); a message without one was an I/O failure. */
void tl_store_reply_cause(const char *msg, char *out, size_t outsz)
{
    static const struct {
        const char *code, *say;
    } known[] = {
        {"OOM", "redis out of memory"},
        {"LOADING", "redis loading its data"},
        {"BUSY", "redis busy running a script"},
        {"NOAUTH", "redis refused the credentials"},
        {"WRONGPASS", "redis refused the credentials"},
        {"NOPERM", "redis refused the credentials"},
        {"MASTERDOWN", "redis master down"},
        {"CLUSTERDOWN", "redis cluster down"},
        {"READONLY", "redis read-only"},
        {"MISCONF", "redis cannot persist (MISCONF)"},
        {"NOREPLICAS", "redis has too few replicas"},
    };
    for (const char *p = msg; (p = strstr(p, ": ")); p += 2) {
        const char *w = p + 2;
        size_t n = 0;
        while (w[n] >= 'A' && w[n] <= 'Z') n++;
        if (n < 2 || n > 16 || (w[n] != ' ' && w[n] != '\0')) continue;
        for (size_t i = 0; i < sizeof known / sizeof *known; i++)
            if (strlen(known[i].code) == n && !strncmp(w, known[i].code, n)) {
                snprintf(out, outsz, "%s", known[i].say);
                return;
            }
        snprintf(out, outsz, "redis refused: %.*s", (int)n, w);
        return;
    }
    snprintf(out, outsz, "redis unreachable");
}

/* What to add to the message of an error reply: a redirect reaches
 * load or flush only from a cluster node behind a single-server URL, which
 * would fail every key of another node's slots (so it is treated as "not
 * now" and retried, not as a refused write). */
const char *tl_store_reply_hint(const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR &&
        (!strncmp(r->str, "MOVED ", 6) || !strncmp(r->str, "ASK ", 4)))
        return " (a Redis Cluster node: use a redis-cluster:// URL or "
               "redis.cluster)";
    return "";
}

/* Whether r is an error reply starting with the word `code`. */
int tl_store_reply_is(const redisReply *r, const char *code)
{
    size_t n = strlen(code);
    return r->type == REDIS_REPLY_ERROR && r->len >= n &&
           strncmp(r->str, code, n) == 0 && (r->len == n || r->str[n] == ' ');
}
