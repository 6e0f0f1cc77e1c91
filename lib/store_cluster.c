/*
 * store_cluster — Redis Cluster routing for the store: the hash slot of a
 * key, the slot map (CLUSTER SLOTS) and the redirects (MOVED, ASK,
 * TRYAGAIN) that correct it.  The I/O itself (connections, pipelines,
 * rounds) is store.c's; see store.h for the behaviour and store_int.h for
 * what the two share.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/* The index of the cluster node host:port, added when it is new. */
static uint16_t node_index(tl_store *s, const char *host, size_t hostlen,
                           int port)
{
    for (size_t i = 0; i < s->nnodes; i++)
        if (s->nodes[i]->port == port && strlen(s->nodes[i]->host) == hostlen &&
            memcmp(s->nodes[i]->host, host, hostlen) == 0)
            return (uint16_t)i;
    /* Far more than any real cluster (Redis advises at most 1000 nodes);
     * reaching it means a corrupt map, which the caller reports. */
    if (s->nnodes >= NO_NODE - 1) return NO_NODE;
    tl_store_node *k = tl_xcalloc(1, sizeof *k);
    k->host = tl_xstrndup(host, hostlen);
    k->port = port;
    tl_store_node_where(k, k->host, port);
    s->nodes = tl_xrealloc(s->nodes, (s->nnodes + 1) * sizeof *s->nodes);
    s->nodes[s->nnodes] = k;
    return (uint16_t)s->nnodes++;
}

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), as Redis Cluster
 * hashes keys (cluster spec, "Keys distribution model"). */
static uint16_t crc16(const char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((unsigned char)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (uint16_t)(crc << 1 ^ 0x1021)
                               : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned tl_store_cluster_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t after = len - (size_t)(open + 1 - key);
        const char *close = memchr(open + 1, '}', after);
        if (close && close > open + 1) {
            key = open + 1;
            len = (size_t)(close - open - 1);
        }
    }
    return crc16(key, len) & (NSLOTS - 1);
}

/* The seeds of the URL become the first nodes, so the slot map is first
 * read from them; the map starts stale, so the first call reads it. */
void tl_store_cluster_init(tl_store *s)
{
    s->slots = tl_xmalloc(NSLOTS * sizeof *s->slots);
    s->map_stale = 1;
    int o = snprintf(s->where, sizeof s->where, "redis cluster ");
    for (size_t i = 0; i < s->url.nseeds; i++) {
        const char *h = s->url.seed_hosts[i];
        node_index(s, h, strlen(h), s->url.seed_ports[i]);
        if (o < (int)sizeof s->where)
            o += snprintf(s->where + o, sizeof s->where - (size_t)o,
                          strchr(h, ':') ? "%s[%s]:%d" : "%s%s:%d",
                          i ? "," : "", h, s->url.seed_ports[i]);
    }
}

/* Fills s->slots from a CLUSTER SLOTS reply: [[first, last, [host, port,
 * id, ...], replicas...], ...].  An empty host means "the node you asked"
 * (a node that does not know its own address). */
static int take_slots(tl_store *s, const tl_store_node *asked,
                      const redisReply *r, char *err, size_t errsz)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return tl_errf(err, errsz, TL_ERR_IO,
                       "%s: CLUSTER SLOTS: unexpected reply type %d",
                       asked->where, r->type);
    for (size_t i = 0; i < NSLOTS; i++) s->slots[i] = NO_NODE;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        const redisReply *m = e->type == REDIS_REPLY_ARRAY && e->elements >= 3
                                  ? e->element[2]
                                  : NULL;
        if (!m || e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
            m->element[0]->type != REDIS_REPLY_STRING ||
            m->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[0]->integer < 0 ||
            e->element[1]->integer >= NSLOTS ||
            e->element[0]->integer > e->element[1]->integer ||
            m->element[1]->integer <= 0 || m->element[1]->integer > 65535)
            return tl_errf(err, errsz, TL_ERR_IO,
                           "%s: CLUSTER SLOTS: malformed entry %zu",
                           asked->where, i);
        const char *host = m->element[0]->str;
        size_t hostlen = m->element[0]->len;
        if (hostlen == 0 || (hostlen == 1 && *host == '?'))
            host = asked->host, hostlen = strlen(asked->host);
        uint16_t idx = node_index(s, host, hostlen, (int)m->element[1]->integer);
        if (idx == NO_NODE)
            return tl_errf(err, errsz, TL_ERR_IO,
                           "%s: CLUSTER SLOTS names too many nodes",
                           asked->where);
        for (long long k = e->element[0]->integer; k <= e->element[1]->integer;
             k++)
            s->slots[k] = idx;
    }
    return TL_OK;
}

/*
 * Reads the slot map from the first node that answers, trying the nodes in
 * order (the seeds of the URL come first, then every master seen since).
 * A refused handshake (credentials) is TL_ERR_AUTH at once: every node has
 * the same ones.  So is a server that is not in cluster mode, since
 * waiting cannot fix the URL.
 */
int tl_store_cluster_refresh(tl_store *s, char *err, size_t errsz)
{
    int rc = TL_ERR_IO;
    for (size_t i = 0; i < s->nnodes; i++) {
        tl_store_node *k = s->nodes[i];
        if (!k->c && (rc = tl_store_connect(s, k, err, errsz)) != TL_OK) {
            if (rc == TL_ERR_AUTH) return rc;
            continue;
        }
        const char *argv[] = {"CLUSTER", "SLOTS"};
        const size_t lens[] = {7, 5};
        redisReply *r = NULL;
        s->round_trips++;
        if (tl_store_append(s, k, 2, argv, lens) != 0 ||
            redisGetReply(k->c, (void **)&r) != REDIS_OK || !r) {
            k->sent = 0;
            rc = tl_store_io_fail(s, k, "CLUSTER SLOTS", err, errsz);
            continue;
        }
        k->sent = 0;
        if (r->type == REDIS_REPLY_ERROR) {
            int off = strstr(r->str, "cluster support disabled") != NULL;
            rc = tl_errf(err, errsz, off ? TL_ERR_AUTH : TL_ERR_IO,
                         "%s: CLUSTER SLOTS: %s%s", k->where, r->str,
                         off ? " (a single server: use redis:// instead of "
                               "redis-cluster://)"
                             : "");
            freeReplyObject(r);
            if (off) return rc;
            continue;
        }
        rc = take_slots(s, k, r, err, errsz);
        freeReplyObject(r);
        if (rc == TL_OK) {
            s->map_stale = 0;
            return TL_OK;
        }
    }
    return rc;
}

/* Parses "MOVED <slot> <host>:<port>" or "ASK ..." into the slot and the
 * target's node index (NO_NODE when malformed).  An empty host means the
 * node that answered. */
static uint16_t redirect_target(tl_store *s, const tl_store_node *from,
                                const redisReply *r, unsigned *slot)
{
    const char *p = strchr(r->str, ' ');
    if (!p) return NO_NODE;
    char *end;
    unsigned long sl = strtoul(p + 1, &end, 10);
    if (end == p + 1 || *end != ' ' || sl >= NSLOTS) return NO_NODE;
    const char *addr = end + 1, *colon = strrchr(addr, ':');
    if (!colon) return NO_NODE;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535) return NO_NODE;
    *slot = (unsigned)sl;
    if (colon == addr) return node_index(s, from->host, strlen(from->host),
                                         (int)port);
    return node_index(s, addr, (size_t)(colon - addr), (int)port);
}

/* Points every pending item that is not being asked elsewhere at the
 * master of its slot; TL_ERR_IO when a slot has none (the map is then
 * refreshed at the start of the next call). */
int tl_store_cluster_route(tl_store *s, size_t n, const char *op, int round,
                           char *err, size_t errsz)
{
    /* Within a call, MOVED patches the map slot by slot: a node asked for
     * the whole map right after a migration may not know of it yet.  The
     * next call starts from a fresh map. */
    if (s->map_stale && round == 0) {
        int rc = tl_store_cluster_refresh(s, err, errsz);
        if (rc != TL_OK) return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(s->flags[i] & ITEM_PENDING) || (s->flags[i] & ITEM_ASKING))
            continue;
        s->route[i] = s->slots[s->kslot[i]];
        if (s->route[i] == NO_NODE) {
            s->map_stale = 1;
            return tl_errf(err, errsz, TL_ERR_IO,
                           "%s: %s: no master serves slot %u (cluster not "
                           "ready, or a master is down; will retry)",
                           s->where, op, (unsigned)s->kslot[i]);
        }
    }
    return TL_OK;
}

/* MOVED: the slot has moved for good, so patch the map (and re-read it on
 * the next call); ASK: only this key is being migrated, so send it to the
 * target with ASKING first.  A redirect that cannot be parsed is left to
 * the caller as an error reply. */
int tl_store_cluster_redirected(tl_store *s, const tl_store_node *k,
                                size_t i, const redisReply *r, int *tryagain)
{
    unsigned slot;
    uint16_t to;
    if ((tl_store_reply_is(r, "MOVED") || tl_store_reply_is(r, "ASK")) &&
        (to = redirect_target(s, k, r, &slot)) != NO_NODE) {
        if (r->str[0] == 'M') {
            s->slots[slot] = to;
            s->map_stale = 1;
        } else {
            s->route[i] = to;
            s->flags[i] |= ITEM_ASKING;
        }
        return 1;
    }
    if (tl_store_reply_is(r, "TRYAGAIN")) {
        *tryagain = 1;
        return 1;
    }
    return 0;
}
