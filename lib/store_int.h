/*
 * store_int — what the parts of the store share and no other module may
 * use: the connection and store structures, the few functions that
 * store.c (the I/O engine) and store_cluster.c (Redis Cluster routing)
 * call in each other, and the flush script (store_script.c).  The public
 * interface is store.h.
 *
 * Ownership: as in store.h; a tl_store owns its nodes, each node its
 * redisContext and host.
 */
#ifndef TL_STORE_INT_H
#define TL_STORE_INT_H

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "redis_url.h"
#include "store.h"

#define NSLOTS 16384
#define NO_NODE UINT16_MAX

/* Per-item routing flags (cluster and NOSCRIPT rounds). */
#define ITEM_PENDING 1
#define ITEM_ASKING 2 /* send ASKING first: the slot is being imported */

/* One connection: the single server, or one master of a cluster. */
typedef struct tl_store_node {
    char *host;           /* cluster: from CLUSTER SLOTS or a redirect;
                             single: NULL (the URL says where) */
    int port;
    char where[300];      /* "redis 127.0.0.1:6379": prefix of messages */
    redisContext *c;      /* NULL after an I/O error, until reconnected */
    int reload;           /* SCRIPT LOAD at the start of the next round */
    int loaded;           /* this round began with SCRIPT LOAD */
    int broken;           /* this round: a "not now" error reply; dropped
                             once every reply of the round was read */
    size_t sent;          /* commands appended this round */
    char run_id[41];      /* the server's INFO run_id at the last connect
                             ("" before the first, or if INFO did not say) */
} tl_store_node;

struct tl_store {
    tl_redis_url url;
    char where[300];      /* the single server, or "redis cluster h:p,..." */
    int timeout_ms;       /* <= 0: none */
    tl_store_node **nodes; /* single: one; cluster: every master seen
                              (seeds first); pointers, so adding one
                              moves none */
    size_t nnodes;
    uint16_t *slots;      /* cluster: node index of each slot; NULL single */
    int map_stale;        /* cluster: refresh the slot map before routing */
    char sha[41];         /* of tl_store_script, from SCRIPT LOAD */
    uint64_t round_trips, commands;
    _Atomic uint64_t restarts; /* reconnects that found a new run_id */
    int hide_keys;        /* tl_store_hide_keys */

    /* Reused across calls and grown to the high-water mark, so that a
     * steady-state batch allocates only inside hiredis. */
    const char **argv;    /* one command at a time: hiredis copies it */
    size_t *argvlen;
    size_t argcap;
    char *nums;           /* decimal text of ttl, nwm, expected, next */
    size_t numcap;
    char *resp;           /* one command in the protocol's own form */
    size_t respcap;
    redisReply **replies; /* load: held until every reply has arrived */
    uint16_t *route;      /* node index of each item of the batch */
    uint16_t *kslot;      /* cluster: hash slot of each item's key */
    unsigned char *flags; /* ITEM_* */
    size_t itemcap;
};

/* store.c: the I/O engine. */

/* Connects node k and runs the handshake (AUTH, SELECT, SCRIPT LOAD):
 * TL_OK, TL_ERR_AUTH (credentials or database refused) or TL_ERR_IO. */
int tl_store_connect(tl_store *s, tl_store_node *k, char *err, size_t errsz);
/* Appends one command to k's output buffer; -1 when the context failed. */
int tl_store_append(tl_store *s, tl_store_node *k, int argc,
                    const char **argv, const size_t *argvlen);
/* The context of k died: says why in err, drops it, returns TL_ERR_IO. */
int tl_store_io_fail(tl_store *s, tl_store_node *k, const char *op,
                     char *err, size_t errsz);
/* k->where for a TCP node: "redis host:port" ("[host]" for IPv6). */
void tl_store_node_where(tl_store_node *k, const char *host, int port);
/* store_reply.c: error replies. */

/* Whether r is an error reply starting with the word `code`. */
int tl_store_reply_is(const redisReply *r, const char *code);
/* Whether error reply r refuses the whole server (LOADING, OOM, READONLY,
 * ...: an outage, retried), not one key (WRONGTYPE). */
int tl_store_reply_transient(const redisReply *r);
/* What to add to the message of error reply r ("" or a hint). */
const char *tl_store_reply_hint(const redisReply *r);

/* SIGPIPE blocked around a call that writes to Redis, and one it caused
 * swallowed (store.c: hiredis reports the EPIPE, which we act on). */
typedef struct tl_store_guard {
    sigset_t old;
    int was_pending;
} tl_store_guard;
void tl_store_guard_begin(tl_store_guard *g);
void tl_store_guard_end(tl_store_guard *g);

/* One command on node k (connected first if need be), its reply in *out
 * (the caller frees it): TL_OK, or TL_ERR_IO / TL_ERR_AUTH with err. */
int tl_store_command_node(tl_store *s, tl_store_node *k, int argc,
                          const char **argv, const size_t *lens,
                          redisReply **out, char *err, size_t errsz);

/* store_info.c: a node's INFO reply read at connect: its run_id kept, and
 * a different one than the last connect's counted as a restart. */
void tl_store_take_run_id(tl_store *s, tl_store_node *k, const redisReply *r);
/* Adds what an INFO text says (policy, maxmemory, evicted_keys) to f. */
void tl_store_facts_add(tl_store_facts *f, const char *info);

/* store_script.c: the flush's compare-and-set script and its length. */
extern const char tl_store_script[];
extern const size_t tl_store_script_len;

/* store_cluster.c: slot map and redirects (a redis-cluster:// URL only). */

/* Sets up s for the cluster of s->url: an empty (stale) slot map and a
 * node for each seed. */
void tl_store_cluster_init(tl_store *s);
/* Reads the slot map from the first node that answers. */
int tl_store_cluster_refresh(tl_store *s, char *err, size_t errsz);
/* Points the pending items 0..n-1 that are not being asked elsewhere at
 * the master of their slot (op names the call in messages). */
int tl_store_cluster_route(tl_store *s, size_t n, const char *op, int round,
                           char *err, size_t errsz);
/* Whether reply r to item i, from node k, redirects it (MOVED, ASK) or
 * says TRYAGAIN (then *tryagain is set): the item then stays pending for
 * the next round, and the caller frees r. */
int tl_store_cluster_redirected(tl_store *s, const tl_store_node *k,
                                size_t i, const redisReply *r, int *tryagain);

#endif
