/*
 * redis_server — a private, throwaway redis-server for tests.
 *
 * Each server runs from its own temporary directory (--dir, the unix socket
 * and redis.log live there), persists nothing (--save "" --appendonly no),
 * listens on 127.0.0.1 only, and is stopped by its pid, never by name.
 * The binary is $TAILOR_REDIS_SERVER, default `redis-server` on PATH; it is
 * started through `setpriv --pdeathsig KILL` when available, so that even a
 * test program that crashes leaves no server running (its directory stays).
 *
 * Ownership: tl_redis_server_start returns a malloc'd server that the caller
 * releases with tl_redis_server_stop (which also stops the process and
 * removes the directory).  Register the stop in a suite cleanup so that a
 * failed assertion does not leave a server behind.
 */
#ifndef TL_REDIS_SERVER_H
#define TL_REDIS_SERVER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct tl_redis_server_opts {
    int port;             /* TCP port; 0: a free one (retried if taken) */
    int unix_socket;      /* nonzero: a unix socket only (--port 0) */
    const char *password; /* --requirepass; NULL: none */
    int start_timeout_ms; /* bound on waiting for PING; 0: 10000 */
    int aof_always;       /* nonzero: --appendonly yes --appendfsync always,
                           * so a SIGKILL loses no acknowledged write */
    int cluster;          /* nonzero: cluster-enabled, its bus on a second
                           * free port, nodes.conf in the directory */
} tl_redis_server_opts;

typedef struct tl_redis_server {
    pid_t pid;            /* -1 while killed (see tl_redis_server_kill) */
    int port;             /* 0 with a unix socket */
    char *unix_path;      /* socket path; NULL for TCP */
    char *dir;            /* private temporary directory */
    char *password;       /* NULL: none */
    char url[1024];       /* for tl_store_new; carries the password,
                             percent-encoded */
    int start_timeout_ms;
    int aof_always;
    int cluster;
    int bus_port;         /* cluster bus (cluster-port); 0 without cluster */
} tl_redis_server;

/* Starts a server (opts may be NULL for the defaults) and waits until it
 * answers PING.  Returns NULL with a message (including the tail of the
 * server's log) in err on failure, having stopped what it started. */
tl_redis_server *tl_redis_server_start(const tl_redis_server_opts *opts,
                                       char *err, size_t errsz);

/* Stops the process (SIGTERM, SIGKILL after 5 s), removes the directory and
 * frees srv.  NULL is a no-op. */
void tl_redis_server_stop(tl_redis_server *srv);

/* Fault injection: SIGKILLs the process but keeps srv, its port or socket
 * path and its directory, for tl_redis_server_restart. */
void tl_redis_server_kill(tl_redis_server *srv);

/* Starts the process again with the same port or socket (after a kill) and
 * waits for PING.  Returns 0, or -1 with a message in err. */
int tl_redis_server_restart(tl_redis_server *srv, char *err, size_t errsz);

/* A hash as sorted "field=value\n" lines (malloc'd; caller frees), so that
 * two vectors compare as strings; NULL when the command fails.  `c` is a
 * hiredis redisContext. */
struct redisContext;
char *tl_test_hash_text(struct redisContext *c, const char *key);
/* HGET key field (malloc'd; caller frees); NULL when absent or failed. */
char *tl_test_hget(struct redisContext *c, const char *key, const char *field);

/*
 * A Redis Cluster of n masters (no replicas): n cluster-enabled servers as
 * above, joined with `redis-cli --cluster create ... --cluster-replicas 0
 * --cluster-yes` (redis-cli is $TAILOR_REDIS_CLI, default on PATH), then
 * waited for until every node says cluster_state:ok and knows all n
 * masters.  url is redis-cluster://127.0.0.1:p1,... for tl_store_new.
 */
typedef struct tl_redis_cluster {
    tl_redis_server **node;
    size_t n;
    char url[1024];
} tl_redis_cluster;

tl_redis_cluster *tl_redis_cluster_start(size_t n, char *err, size_t errsz);
/* Stops every node (by pid) and frees cl; NULL is a no-op. */
void tl_redis_cluster_stop(tl_redis_cluster *cl);
/* Waits up to timeout_ms until every running node reports cluster_state:ok
 * and agrees on the owner of every slot; 0, or -1 with err. */
int tl_redis_cluster_wait_ok(tl_redis_cluster *cl, int timeout_ms, char *err,
                             size_t errsz);
/* A connection to node i (a hiredis redisContext; caller redisFree()s). */
struct redisContext *tl_redis_cluster_connect(const tl_redis_cluster *cl,
                                              size_t i);
/* Node i's id (CLUSTER MYID; malloc'd, caller frees); NULL on failure. */
char *tl_redis_cluster_node_id(const tl_redis_cluster *cl, size_t i);
/* The index of the node that serves key's slot, by asking the nodes
 * (CLUSTER KEYSLOT, CLUSTER SLOTS on node 0); -1 on failure. */
int tl_redis_cluster_owner(const tl_redis_cluster *cl, const char *key);
/* tl_test_hash_text on the node that serves key. */
char *tl_redis_cluster_hash_text(const tl_redis_cluster *cl, const char *key);
/* Every key matching pattern on every master (SCAN each), sorted; *n keys,
 * a malloc'd array of malloc'd strings (free with tl_test_free_keys). */
char **tl_redis_cluster_keys(const tl_redis_cluster *cl, const char *pattern,
                             size_t *n);
/* The same on one server's connection. */
char **tl_test_scan_keys(struct redisContext *c, const char *pattern,
                         size_t *n);
void tl_test_free_keys(char **keys, size_t n);

#endif
