/*
 * store — Redis I/O on hiredis: connection from a URL, a pipelined batch load
 * of customer hashes, and a pipelined batch flush where every key is written by
 * a Lua compare-and-set on its offset watermarks (one key per script call).
 *
 * URLs: redis://, unix:// and redis-cluster:// (redis_url.h has the forms).
 *
 * Redis Cluster: the hosts are seeds; the store reads the slot map (CLUSTER
 * SLOTS) from the first that answers, hashes each key to its slot (CRC16 of
 * the {hash tag}), sends each command of a batch to its slot's master (one
 * pipeline per master, written to all before any reply is read), follows
 * MOVED (patching the map, re-read on the next call) and ASK (ASKING, then
 * the command on the importing node) for at most 5 rounds per call, and
 * loads the script on a node that answers NOSCRIPT.  Every node gets the
 * same credentials; a cluster has only database 0.
 *
 * Failure model: any I/O error closes the connection and returns TL_ERR_IO
 * with a message; the next call reconnects (one attempt).  So does an error
 * reply that refuses the whole server for now (LOADING, OOM, READONLY,
 * MASTERDOWN, CLUSTERDOWN, MISCONF, NOREPLICAS, BUSY, NOAUTH, NOPERM); any
 * other error reply (WRONGTYPE) is its key's own: reported for that key
 * (the load's key-error callback, the write's result), the others served.  Retrying with
 * backoff is the caller's policy (the pipeline's).  Both load and flush are
 * idempotent, so retrying a whole batch is always safe.
 *
 * Ownership: tl_store owns its redisContext; argv arrays are reused across
 * calls, so steady-state flushes allocate only inside hiredis.  Field and
 * value pointers passed in are borrowed for the duration of the call.
 */
#ifndef TL_STORE_H
#define TL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef struct tl_store tl_store;

/* Connects (with timeout_ms for connect and for each command; <= 0: none),
 * AUTHs, SELECTs and loads the flush script (a cluster: connects to a seed
 * and reads the slot map; masters are connected on first use).  Returns
 * NULL with err on failure.  SIGPIPE from a vanished server is blocked and swallowed inside
 * each call, so the program need not ignore it. */
tl_store *tl_store_new(const char *url, int timeout_ms, char *err,
                       size_t errsz);

/* The same without connecting: only the URL is checked (NULL with err when
 * it is malformed).  The first call (tl_store_ping, say) connects; it returns
 * TL_ERR_AUTH when the server refuses the credentials or database (or, for
 * a redis-cluster:// URL, is not in cluster mode), TL_ERR_IO when it cannot
 * be reached. */
tl_store *tl_store_new_lazy(const char *url, int timeout_ms, char *err,
                            size_t errsz);
void tl_store_free(tl_store *s);

/* From now on, messages show a key's hash tag (the customer id) as
 * "{...}": for tailord, whose log carries customer ids at debug only. */
void tl_store_hide_keys(tl_store *s);

/* The cause of a failure this module reported in msg, for people and
 * unauthenticated callers (/readyz): what went wrong, never where (the
 * address, a URL's password) nor the server's own text: "redis
 * unreachable" (refused, timed out, closed), "redis out of memory", "redis
 * loading its data", "redis refused the credentials", ..., or "redis
 * refused: CODE" for an error code not known here. */
void tl_store_reply_cause(const char *msg, char *out, size_t outsz);

/* PING; TL_OK when the server answers (a cluster: when its slot map can be
 * read and every master serving a slot answers). */
int tl_store_ping(tl_store *s, char *err, size_t errsz);

/* DEL of one key (`tailorctl forget`); *existed (may be NULL) says whether
 * there was one.  TL_OK, or TL_ERR_IO (AUTH failures: TL_ERR_AUTH). */
int tl_store_delete(tl_store *s, const char *key, size_t keylen, int *existed,
                    char *err, size_t errsz);

/* Called once per field of each loaded key; idx is the key's index. */
typedef void (*tl_store_field_cb)(void *ud, size_t idx, const char *field,
                                  size_t flen, const char *val, size_t vlen);
/* Called instead, once, for a key whose reply was an error of that key
 * alone: an error reply such as WRONGTYPE (the key is not a hash), or a
 * reply that is not a hash's; msg says which key and what. */
typedef void (*tl_store_key_error_cb)(void *ud, size_t idx, const char *msg);

/* HGETALL of n keys in one pipeline (one round trip). A missing key yields no
 * callbacks.  Callbacks run only once every reply has arrived, so a failed
 * load (TL_ERR_IO: a lost connection, or an error reply meaning "not now"
 * such as LOADING, OOM, MASTERDOWN, CLUSTERDOWN, NOPERM) has made no
 * callback at all.  A key's own error goes to kerr, and the others load;
 * without kerr (NULL) it fails the whole call (TL_ERR, no callback). */
int tl_store_load(tl_store *s, const char *const *keys, const size_t *keylens,
                  size_t n, tl_store_field_cb cb, tl_store_key_error_cb kerr,
                  void *ud, char *err, size_t errsz);

/* One watermark check: the stored value of hash field `field` (absent counts
 * as -1) must equal `expected` (this writer's last flush) or `next` (this very
 * write, already applied by an earlier attempt); then it is set to `next`. */
typedef struct tl_store_wm {
    const char *field;
    size_t flen;
    int64_t expected, next;
} tl_store_wm;

typedef struct tl_store_write {
    const char *key;
    size_t keylen;
    const tl_store_wm *wm;
    size_t nwm;
    const char *const *fields; /* nfields names and values, HSET together */
    const size_t *flens;
    const char *const *vals;
    const size_t *vlens;
    size_t nfields;
    const char *const *dels;   /* ndels field names to HDEL first */
    const size_t *dlens;
    size_t ndels;
    int64_t ttl_ms;            /* PEXPIRE after the write; 0: no expiry */
    int result;                /* out: TL_OK, TL_ERR_FENCED (a watermark
                                  ahead), TL_ERR_GONE (refused because the
                                  key does not exist); TL_ERR when the
                                  server rejected it (e.g. WRONGTYPE), or
                                  TL_ERR_IO when its reply never came */
} tl_store_write;

/*
 * Executes n conditional writes in one pipeline.  Returns TL_OK when every
 * reply arrived (each w[i].result says whether that key was written or fenced
 * off), TL_ERR_IO when the connection failed (then nothing can be assumed about
 * which writes applied: retry all; the watermark check makes that safe).
 * An error reply to one write (e.g. WRONGTYPE: the key is not a hash) sets
 * that write's result to TL_ERR and returns TL_ERR after all replies were
 * read; error replies meaning "no writes now" (LOADING, READONLY, OOM, BUSY,
 * ...) drop the connection and return TL_ERR_IO.  A NOSCRIPT reply reloads
 * the script and retries those writes once (a second round trip).
 */
int tl_store_flush(tl_store *s, tl_store_write *w, size_t n, char *err,
                   size_t errsz);

/* The Redis Cluster hash slot (0..16383) of a key: CRC16 of its hash tag
 * (the bytes between the first '{' and the next '}', when not empty), else
 * of the whole key. */
unsigned tl_store_cluster_key_slot(const char *key, size_t len);

/* Times a reconnect found a server with another run_id than the last
 * connect's: the server restarted (and, without persistence, lost its
 * data).  A restart always breaks the connections, so it is counted
 * before any command reaches the new server.  Any thread may read it. */
uint64_t tl_store_restarts(const tl_store *s);

/* What the server says about losing keys (INFO memory and stats; a
 * cluster: the masters connected, evicted_keys summed, the first evicting
 * policy). */
typedef struct tl_store_facts {
    char policy[32];       /* maxmemory_policy ("" when INFO did not say) */
    int64_t maxmemory;     /* bytes, 0: no limit */
    int64_t evicted_keys;  /* since the server started */
} tl_store_facts;
int tl_store_facts_get(tl_store *s, tl_store_facts *out, char *err,
                       size_t errsz);

/* Whether `policy` may evict our keys: allkeys-* always, volatile-* when
 * keys have a TTL (ttl: nonzero); noeviction never. */
int tl_store_policy_evicts(const char *policy, int ttl);

/* Round trips (one per node per pipelined round) and commands sent so far (for metrics and the benchmark),
 * including the handshake (AUTH, SELECT, SCRIPT LOAD) of each (re)connect. */
uint64_t tl_store_round_trips(const tl_store *s);
uint64_t tl_store_commands(const tl_store *s);

#endif
