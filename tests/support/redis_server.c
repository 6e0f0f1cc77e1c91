#include "redis_server.h"

#include "testutil.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_START_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS 5000
#define PORT_ATTEMPTS 5

/* start_once outcomes besides 0. */
#define START_FAILED -1
#define START_PORT_TAKEN -2 /* another process took the port: pick another */

static void errf(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errsz, const char *fmt, ...)
{
    if (!err || errsz == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The last bytes of the server's log, on one line, for failure messages. */
static void log_tail(const tl_redis_server *srv, const char *name, char *buf,
                     size_t bufsz)
{
    buf[0] = '\0';
    char *path = path_in(srv->dir, name);
    FILE *f = fopen(path, "r");
    free(path);
    if (!f) return;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        long want = (long)bufsz - 1;
        fseek(f, size > want ? size - want : 0, SEEK_SET);
    }
    size_t n = fread(buf, 1, bufsz - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\n' || buf[i] == '\r') buf[i] = '|';
}

/* PING answered (NOAUTH counts: the server is up, we just lack the
 * password).  SIGPIPE is blocked meanwhile, in case the server dies between
 * accepting and reading. */
static int answers_ping(const tl_redis_server *srv)
{
    sigset_t set, old, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old);

    struct timeval tv = {0, 200 * 1000};
    redisContext *c = srv->unix_path
                          ? redisConnectUnixWithTimeout(srv->unix_path, tv)
                          : redisConnectWithTimeout("127.0.0.1", srv->port, tv);
    int ok = 0;
    if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && ((r->type == REDIS_REPLY_STATUS &&
                    strcmp(r->str, "PONG") == 0) ||
                   (r->type == REDIS_REPLY_ERROR &&
                    strncmp(r->str, "NOAUTH", 6) == 0));
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);

    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        sigtimedwait(&set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ok;
}

/* Whether an executable `name` is on PATH. */
static int on_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path) return 0;
    for (const char *p = path; *p;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char buf[4096];
        if (n > 0 && n + 1 + strlen(name) < sizeof buf) {
            snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, name);
            if (access(buf, X_OK) == 0) return 1;
        }
        p += n + (end ? 1 : 0);
    }
    return 0;
}

/* Spawns redis-server with its whole configuration on the command line and
 * waits, bounded, until it answers PING.  When util-linux's setpriv is there
 * (always on Debian), it execs redis-server with PR_SET_PDEATHSIG=KILL: the
 * pid stays the same, and a test program that crashes before its cleanup
 * does not leave a server behind. */
static int start_once(tl_redis_server *srv, char *err, size_t errsz)
{
    const char *bin = getenv("TAILOR_REDIS_SERVER");
    char port[16];
    snprintf(port, sizeof port, "%d", srv->port);
    const char *argv[40];
    char bus[16];
    int k = 0;
    if (on_path("setpriv"))
        argv[k++] = "setpriv", argv[k++] = "--pdeathsig", argv[k++] = "KILL";
    const char *server = argv[k++] = bin && *bin ? bin : "redis-server";
    argv[k++] = "--port", argv[k++] = port;
    argv[k++] = "--bind", argv[k++] = "127.0.0.1";
    argv[k++] = "--save", argv[k++] = "";
    if (srv->aof_always)
        argv[k++] = "--appendonly", argv[k++] = "yes",
        argv[k++] = "--appendfsync", argv[k++] = "always";
    else
        argv[k++] = "--appendonly", argv[k++] = "no";
    argv[k++] = "--dir", argv[k++] = srv->dir;
    if (srv->unix_path) {
        argv[k++] = "--unixsocket", argv[k++] = srv->unix_path;
        argv[k++] = "--unixsocketperm", argv[k++] = "700";
    }
    if (srv->password) argv[k++] = "--requirepass", argv[k++] = srv->password;
    if (srv->cluster) {
        /* The default bus port (port + 10000) may be taken or past 65535;
         * the node announces the one given here. */
        snprintf(bus, sizeof bus, "%d", srv->bus_port);
        argv[k++] = "--cluster-enabled", argv[k++] = "yes";
        argv[k++] = "--cluster-port", argv[k++] = bus;
        argv[k++] = "--cluster-config-file", argv[k++] = "nodes.conf";
        argv[k++] = "--cluster-node-timeout", argv[k++] = "3000";
    }
    argv[k] = NULL;

    char *out = path_in(srv->dir, "redis.log");
    char *errp = path_in(srv->dir, "redis.err");
    srv->pid = tl_test_spawn((char *const *)argv, out, errp);
    free(out);
    free(errp);
    if (srv->pid < 0) {
        errf(err, errsz, "redis-server: fork failed: %s", strerror(errno));
        return START_FAILED;
    }

    long long deadline = now_ms() + srv->start_timeout_ms;
    for (;;) {
        int st = tl_test_wait(srv->pid, 0);
        if (st != -1) { /* exited (and reaped) before answering */
            char tail[400], etail[200];
            srv->pid = -1;
            log_tail(srv, "redis.log", tail, sizeof tail);
            log_tail(srv, "redis.err", etail, sizeof etail);
            errf(err, errsz, "%s exited (%d) before answering PING: %s %s",
                 server, st, tail, etail);
            return strstr(tail, "Address already in use") ? START_PORT_TAKEN
                                                          : START_FAILED;
        }
        if (answers_ping(srv)) return 0;
        if (now_ms() >= deadline) break;
        sleep_ms(10);
    }
    char tail[400];
    log_tail(srv, "redis.log", tail, sizeof tail);
    tl_test_stop(srv->pid, SIGKILL, STOP_TIMEOUT_MS);
    srv->pid = -1;
    errf(err, errsz, "%s did not answer PING within %d ms (killed): %s",
         server, srv->start_timeout_ms, tail);
    return START_FAILED;
}

/* Percent-encodes everything but RFC 3986 unreserved characters. */
static void url_escape(char *out, size_t outsz, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < outsz; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

tl_redis_server *tl_redis_server_start(const tl_redis_server_opts *opts,
                                       char *err, size_t errsz)
{
    tl_redis_server_opts dflt = {0};
    if (!opts) opts = &dflt;
    tl_redis_server *srv = calloc(1, sizeof *srv);
    if (!srv) abort();
    srv->pid = -1;
    srv->dir = tl_test_tmpdir();
    srv->start_timeout_ms =
        opts->start_timeout_ms > 0 ? opts->start_timeout_ms
                                   : DEFAULT_START_TIMEOUT_MS;
    if (opts->password && !(srv->password = strdup(opts->password))) abort();
    srv->aof_always = opts->aof_always;
    srv->cluster = opts->cluster;
    if (opts->unix_socket) srv->unix_path = path_in(srv->dir, "redis.sock");

    int rc = START_FAILED;
    int attempts = opts->unix_socket || opts->port ? 1 : PORT_ATTEMPTS;
    for (int a = 0; a < attempts; a++) {
        srv->port = opts->unix_socket ? 0
                    : opts->port      ? opts->port
                                      : tl_test_free_port();
        if (srv->cluster)
            do srv->bus_port = tl_test_free_port();
            while (srv->bus_port == srv->port);
        rc = start_once(srv, err, errsz);
        if (rc != START_PORT_TAKEN) break;
    }
    if (rc != 0) goto fail;

    char auth[256] = "";
    if (srv->password) {
        char esc[240];
        url_escape(esc, sizeof esc, srv->password);
        snprintf(auth, sizeof auth, ":%s@", esc);
    }
    if (srv->unix_path)
        snprintf(srv->url, sizeof srv->url, "unix://%s%s", auth,
                 srv->unix_path);
    else
        snprintf(srv->url, sizeof srv->url, "redis://%s127.0.0.1:%d", auth,
                 srv->port);
    return srv;

fail:
    tl_redis_server_stop(srv);
    return NULL;
}

void tl_redis_server_kill(tl_redis_server *srv)
{
    if (!srv || srv->pid <= 0) return;
    tl_test_stop(srv->pid, SIGKILL, STOP_TIMEOUT_MS);
    srv->pid = -1;
}

int tl_redis_server_restart(tl_redis_server *srv, char *err, size_t errsz)
{
    if (srv->pid > 0) {
        errf(err, errsz, "redis-server %d is still running", (int)srv->pid);
        return -1;
    }
    return start_once(srv, err, errsz) == 0 ? 0 : -1;
}

void tl_redis_server_stop(tl_redis_server *srv)
{
    if (!srv) return;
    if (srv->pid > 0) {
        /* A test may have left it SIGSTOPped; SIGTERM waits for SIGCONT. */
        kill(srv->pid, SIGCONT);
        tl_test_stop(srv->pid, SIGTERM, STOP_TIMEOUT_MS);
    }
    tl_test_rmdir(srv->dir);
    free(srv->dir);
    free(srv->unix_path);
    free(srv->password);
    free(srv);
}

static int by_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts n malloc'd strings and concatenates them (total: their lengths
 * plus one); frees them and the array. */
static char *join_sorted(char **lines, size_t n, size_t total)
{
    qsort(lines, n, sizeof *lines, by_line);
    char *out = calloc(1, total);
    for (size_t i = 0; i < n; i++) {
        strcat(out, lines[i]);
        free(lines[i]);
    }
    free(lines);
    return out;
}

char *tl_test_hget(redisContext *c, const char *key, const char *field)
{
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    char *v = r && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

char *tl_redis_cluster_node_id(const tl_redis_cluster *cl, size_t i)
{
    redisContext *c = tl_redis_cluster_connect(cl, i);
    redisReply *r = c && !c->err ? redisCommand(c, "CLUSTER MYID") : NULL;
    char *id = r && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    if (r) freeReplyObject(r);
    if (c) redisFree(c);
    return id;
}

char *tl_test_hash_text(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "HGETALL %s", key);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r) freeReplyObject(r);
        return NULL;
    }
    size_t n = r->elements / 2, total = 1;
    char **lines = calloc(n + 1, sizeof *lines);
    for (size_t i = 0; i < n; i++) {
        size_t len = r->element[2 * i]->len + r->element[2 * i + 1]->len + 3;
        lines[i] = malloc(len);
        snprintf(lines[i], len, "%s=%s\n", r->element[2 * i]->str,
                 r->element[2 * i + 1]->str);
        total += len;
    }
    freeReplyObject(r);
    return join_sorted(lines, n, total);
}

/* ------------------------------------------------------------------------ */
/* Redis Cluster                                                            */
/* ------------------------------------------------------------------------ */

#define CLUSTER_CREATE_TIMEOUT_MS 60000
#define CLUSTER_OK_TIMEOUT_MS 30000

redisContext *tl_redis_cluster_connect(const tl_redis_cluster *cl, size_t i)
{
    struct timeval tv = {5, 0};
    redisContext *c =
        redisConnectWithTimeout("127.0.0.1", cl->node[i]->port, tv);
    if (c && !c->err) redisSetTimeout(c, tv);
    return c;
}

/* "first-last:port;..." of a node's CLUSTER SLOTS, sorted by first slot,
 * so that two nodes' views compare as strings; NULL when unavailable. */
static char *slots_signature(redisContext *c)
{
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r) freeReplyObject(r);
        return NULL;
    }
    size_t n = r->elements;
    char **parts = calloc(n + 1, sizeof *parts);
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        redisReply *e = r->element[i];
        parts[i] = malloc(48);
        snprintf(parts[i], 48, "%05lld-%05lld:%lld;", e->element[0]->integer,
                 e->element[1]->integer, e->element[2]->element[1]->integer);
        total += strlen(parts[i]);
    }
    freeReplyObject(r);
    return join_sorted(parts, n, total);
}

static int covers_all(const char *sig)
{
    /* Ranges are sorted and disjoint: coverage is contiguity from 0. */
    long next = 0;
    for (const char *p = sig; *p;) {
        long a, b;
        if (sscanf(p, "%ld-%ld", &a, &b) != 2 || a != next) return 0;
        next = b + 1;
        p = strchr(p, ';');
        if (!p) return 0;
        p++;
    }
    return next == 16384;
}

int tl_redis_cluster_wait_ok(tl_redis_cluster *cl, int timeout_ms, char *err,
                             size_t errsz)
{
    long long deadline = now_ms() + timeout_ms;
    char why[300] = "";
    for (;;) {
        int ok = 1;
        char *first = NULL;
        for (size_t i = 0; i < cl->n && ok; i++) {
            if (cl->node[i]->pid <= 0) continue;
            redisContext *c = tl_redis_cluster_connect(cl, i);
            redisReply *r = c && !c->err ? redisCommand(c, "CLUSTER INFO")
                                         : NULL;
            if (!r || r->type != REDIS_REPLY_STRING ||
                !strstr(r->str, "cluster_state:ok")) {
                snprintf(why, sizeof why, "node %zu (port %d) not ok", i,
                         cl->node[i]->port);
                ok = 0;
            }
            if (r) freeReplyObject(r);
            char *sig = ok ? slots_signature(c) : NULL;
            if (ok && (!sig || !covers_all(sig) ||
                       (first && strcmp(first, sig)))) {
                snprintf(why, sizeof why,
                         "node %zu (port %d) has another slot map", i,
                         cl->node[i]->port);
                ok = 0;
            }
            if (!first) first = sig;
            else free(sig);
            if (c) redisFree(c);
        }
        free(first);
        if (ok) return 0;
        if (now_ms() >= deadline) break;
        sleep_ms(50);
    }
    errf(err, errsz, "cluster not ok within %d ms: %s", timeout_ms, why);
    return -1;
}

tl_redis_cluster *tl_redis_cluster_start(size_t n, char *err, size_t errsz)
{
    tl_redis_cluster *cl = calloc(1, sizeof *cl);
    if (!cl || !(cl->node = calloc(n, sizeof *cl->node))) abort();
    tl_redis_server_opts o = {.cluster = 1};
    for (; cl->n < n; cl->n++)
        if (!(cl->node[cl->n] = tl_redis_server_start(&o, err, errsz)))
            goto fail;

    const char *cli = getenv("TAILOR_REDIS_CLI");
    char **argv = calloc(n + 8, sizeof *argv);
    size_t k = 0;
    argv[k++] = (char *)(cli && *cli ? cli : "redis-cli");
    argv[k++] = "--cluster";
    argv[k++] = "create";
    int o2 = snprintf(cl->url, sizeof cl->url, "redis-cluster://");
    for (size_t i = 0; i < n; i++) {
        argv[k] = malloc(32);
        snprintf(argv[k++], 32, "127.0.0.1:%d", cl->node[i]->port);
        o2 += snprintf(cl->url + o2, sizeof cl->url - (size_t)o2, "%s127.0.0.1:%d",
                       i ? "," : "", cl->node[i]->port);
    }
    argv[k++] = "--cluster-replicas";
    argv[k++] = "0";
    argv[k++] = "--cluster-yes";
    argv[k] = NULL;
    char *log = path_in(cl->node[0]->dir, "create.log");
    pid_t pid = tl_test_spawn(argv, log, log);
    int st = pid > 0 ? tl_test_wait(pid, CLUSTER_CREATE_TIMEOUT_MS) : -3;
    if (st == -1) tl_test_stop(pid, SIGKILL, STOP_TIMEOUT_MS);
    for (size_t i = 3; i < 3 + n; i++) free(argv[i]);
    free(argv);
    free(log);
    if (st != 0) {
        char tail[400];
        log_tail(cl->node[0], "create.log", tail, sizeof tail);
        errf(err, errsz, "redis-cli --cluster create failed (%d): %s", st,
             tail);
        goto fail;
    }
    if (tl_redis_cluster_wait_ok(cl, CLUSTER_OK_TIMEOUT_MS, err, errsz))
        goto fail;
    return cl;

fail:
    tl_redis_cluster_stop(cl);
    return NULL;
}

void tl_redis_cluster_stop(tl_redis_cluster *cl)
{
    if (!cl) return;
    for (size_t i = 0; i < cl->n; i++) tl_redis_server_stop(cl->node[i]);
    free(cl->node);
    free(cl);
}

int tl_redis_cluster_owner(const tl_redis_cluster *cl, const char *key)
{
    redisContext *c = tl_redis_cluster_connect(cl, 0);
    if (!c || c->err) {
        if (c) redisFree(c);
        return -1;
    }
    int owner = -1;
    redisReply *r = redisCommand(c, "CLUSTER KEYSLOT %s", key);
    redisReply *m = redisCommand(c, "CLUSTER SLOTS");
    if (r && r->type == REDIS_REPLY_INTEGER && m &&
        m->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < m->elements; i++) {
            redisReply *e = m->element[i];
            if (r->integer < e->element[0]->integer ||
                r->integer > e->element[1]->integer)
                continue;
            for (size_t j = 0; j < cl->n; j++)
                if (cl->node[j]->port == e->element[2]->element[1]->integer)
                    owner = (int)j;
        }
    if (r) freeReplyObject(r);
    if (m) freeReplyObject(m);
    redisFree(c);
    return owner;
}

char *tl_redis_cluster_hash_text(const tl_redis_cluster *cl, const char *key)
{
    int owner = tl_redis_cluster_owner(cl, key);
    if (owner < 0) return NULL;
    redisContext *c = tl_redis_cluster_connect(cl, (size_t)owner);
    char *t = c && !c->err ? tl_test_hash_text(c, key) : NULL;
    if (c) redisFree(c);
    return t;
}

char **tl_test_scan_keys(redisContext *c, const char *pattern, size_t *n)
{
    char **keys = NULL;
    *n = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor,
                                     pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r) freeReplyObject(r);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *ks = r->element[1];
        keys = realloc(keys, (*n + ks->elements + 1) * sizeof *keys);
        for (size_t i = 0; i < ks->elements; i++)
            keys[(*n)++] = strdup(ks->element[i]->str);
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (keys) qsort(keys, *n, sizeof *keys, by_line);
    return keys;
}

char **tl_redis_cluster_keys(const tl_redis_cluster *cl, const char *pattern,
                             size_t *n)
{
    char **all = NULL;
    *n = 0;
    for (size_t i = 0; i < cl->n; i++) {
        redisContext *c = tl_redis_cluster_connect(cl, i);
        size_t m = 0;
        char **keys = c && !c->err ? tl_test_scan_keys(c, pattern, &m) : NULL;
        if (c) redisFree(c);
        all = realloc(all, (*n + m + 1) * sizeof *all);
        for (size_t j = 0; j < m; j++) all[(*n)++] = keys[j];
        free(keys);
    }
    qsort(all, *n, sizeof *all, by_line);
    return all;
}

void tl_test_free_keys(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++) free(keys[i]);
    free(keys);
}
