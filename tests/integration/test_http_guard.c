/*
 * The HTTP endpoint (lib/http) against misbehaving clients and a hung
 * Redis, over real loopback sockets: tl_http runs in this program (stub
 * pipeline callbacks) against a private redis-server.  Slow clients
 * trickling headers neither starve /healthz nor keep their connection
 * past the request deadline; a large POST without the token gets 401 (and
 * with it 413) before any body is read; /healthz answers in milliseconds
 * while /readyz and /v1/ callers wait on a stopped Redis; a customer id
 * with %00 or invalid UTF-8 is refused; /readyz names a cause, never the
 * address; warnings are rate-limited.  And what a campaign tool reads: a
 * vector written as tailord writes it holds 0 for a count of nothing and a
 * JSON array for a list; /v1/customers gives typed JSON, null for null.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/redis_server.h"
#include "../support/testutil.h"
#include "common.h"
#include "config.h"
#include "http.h"
#include "httpc.h"
#include "store.h"
#include "cache.h"

#define TOKEN "t0k-en"
#define SLOW_CLIENTS 70

static tl_redis_server *redis;
static tl_config *cfg;
static tl_http *http;
static int port;
static char base[64];
static atomic_int reloads;

static void stub_metrics(void *ud, tl_buf *b)
{
    (void)ud;
    tl_buf_printf(b, "# TYPE up gauge\nup 1\n");
}

static int stub_ready(void *ud, char *why, size_t whysz)
{
    (void)ud;
    (void)why;
    (void)whysz;
    return 1;
}

static void stub_reload(void *ud, int force)
{
    (void)ud;
    (void)force;
    atomic_fetch_add(&reloads, 1);
}

static int suite_init(void)
{
    char err[TL_ERRSZ] = "";
    redis = tl_redis_server_start(NULL, err, sizeof err);
    if (!redis) {
        fprintf(stderr, "redis: %s\n", err);
        return 1;
    }
    port = tl_test_free_port();
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    char text[2048];
    snprintf(text, sizeof text,
             "kafka: { brokers: '127.0.0.1:1', group: g, input: [in], "
             "output: out }\n"
             "redis: { url: '%s', prefix: 'g:' }\n"
             "http: { listen: '127.0.0.1:%d', token: '" TOKEN "' }\n"
             "features:\n  - { name: visits, kind: count }\n"
             "  - { name: purchases, kind: count, where: 'type == \"purchase\"' }\n"
             "  - { name: spend, kind: sum, field: amount }\n"
             "  - { name: top_spend, kind: max, field: amount }\n"
             "  - { name: last_item, kind: last, field: item }\n"
             "  - { name: items, kind: last_n, field: item, n: 3 }\n",
             redis->url, port);
    cfg = tl_config_load_string(text, strlen(text), "guard.yaml", err,
                                sizeof err);
    if (!cfg) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    tl_http_opts o = {cfg, stub_metrics, stub_ready, stub_reload, NULL};
    http = tl_http_start(&o, err, sizeof err);
    if (!http) fprintf(stderr, "http: %s\n", err);
    return http == NULL;
}

static int suite_clean(void)
{
    if (redis && redis->pid > 0) kill(redis->pid, SIGCONT);
    tl_http_stop(http);
    tl_config_free(cfg);
    tl_redis_server_stop(redis);
    return 0;
}

static int connect_local(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Reads what arrives on fd within timeout_ms (until EOF or the end of the
 * headers and a short body); NUL-terminated in buf. */
static size_t read_some(int fd, char *buf, size_t size, int timeout_ms)
{
    size_t n = 0;
    int64_t until = tl_now_mono_ms() + timeout_ms;
    buf[0] = '\0';
    while (n + 1 < size) {
        int left = (int)(until - tl_now_mono_ms());
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, left) <= 0) break;
        ssize_t got = recv(fd, buf + n, size - 1 - n, 0);
        if (got <= 0) break;
        n += (size_t)got;
        buf[n] = '\0';
    }
    return n;
}

/* Sends req on a new connection; the status of the answer within
 * timeout_ms (0: none), the response in resp. */
static int raw(const char *req, int timeout_ms, char *resp, size_t respsz)
{
    char local[1024];
    if (!resp) {
        resp = local;
        respsz = sizeof local;
    }
    resp[0] = '\0';
    int fd = connect_local();
    if (fd < 0) return 0;
    send(fd, req, strlen(req), MSG_NOSIGNAL);
    read_some(fd, resp, respsz, timeout_ms);
    close(fd);
    int status = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) status = 0;
    return status;
}

/* GET /healthz; its status, and its time in *ms. */
static int healthz(int64_t *ms)
{
    int64_t t0 = tl_now_mono_ms();
    int st = raw("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 2000, NULL, 0);
    *ms = tl_now_mono_ms() - t0;
    return st;
}

/* 1 when the server closed fd (EOF or reset); what it may have sent
 * before is read and dropped. */
static int closed(int fd)
{
    char b[512];
    for (;;) {
        ssize_t got = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (got == 0) return 1;
        if (got < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
    }
}

/* 70 clients that send a header line every 2 s: /healthz still answers at
 * once, and each slow client is cut at the request deadline (10 s) although
 * it is never idle for the idle timeout. */
static void test_slow_clients(void)
{
    int fd[SLOW_CLIENTS];
    int64_t gone[SLOW_CLIENTS];
    int64_t t0 = tl_now_mono_ms();
    for (int i = 0; i < SLOW_CLIENTS; i++) {
        fd[i] = connect_local();
        gone[i] = -1;
        CU_ASSERT_FATAL(fd[i] >= 0);
        const char *start = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
        send(fd[i], start, strlen(start), MSG_NOSIGNAL);
    }
    usleep(300000);
    int64_t ms;
    CU_ASSERT_EQUAL(healthz(&ms), 200);
    CU_ASSERT(ms < 1000);
    printf("/healthz with %d slow clients: %lld ms\n", SLOW_CLIENTS,
           (long long)ms);
    int open = SLOW_CLIENTS;
    for (int round = 0; open && tl_now_mono_ms() - t0 < 16000; round++) {
        for (int i = 0; i < SLOW_CLIENTS; i++) {
            if (gone[i] >= 0) continue;
            if (closed(fd[i])) {
                gone[i] = tl_now_mono_ms() - t0;
                open--;
            } else if (round % 8 == 0) {
                send(fd[i], "X-Slow: 1\r\n", 11, MSG_NOSIGNAL);
            }
        }
        usleep(250000);
    }
    int64_t first = -1, last = -1;
    for (int i = 0; i < SLOW_CLIENTS; i++) {
        if (gone[i] >= 0 && (first < 0 || gone[i] < first)) first = gone[i];
        if (gone[i] > last) last = gone[i];
        close(fd[i]);
    }
    printf("slow clients cut between %lld and %lld ms, %d still open\n",
           (long long)first, (long long)last, open);
    CU_ASSERT_EQUAL(open, 0);
    CU_ASSERT(first >= 9000); /* not before the deadline */
    CU_ASSERT_EQUAL(healthz(&ms), 200);
}

/* A POST announcing 1 GB: refused when the headers are in. */
static void test_large_post(void)
{
    char resp[1024];
    int64_t t0 = tl_now_mono_ms();
    int st = raw("POST /v1/reload HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 1000000000\r\n\r\nabc",
                 2000, resp, sizeof resp);
    CU_ASSERT_EQUAL(st, 401);
    CU_ASSERT(tl_now_mono_ms() - t0 < 1000);
    st = raw("POST /v1/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
             TOKEN "\r\nContent-Length: 1000000000\r\n\r\nabc",
             2000, resp, sizeof resp);
    CU_ASSERT_EQUAL(st, 413);
    st = raw("POST /v1/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
             TOKEN "\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
             2000, resp, sizeof resp);
    CU_ASSERT_EQUAL(st, 413);
    CU_ASSERT(tl_now_mono_ms() - t0 < 2000);
    CU_ASSERT_EQUAL(atomic_load(&reloads), 0);
    /* Without a body, or a small one: accepted. */
    st = raw("POST /v1/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
             TOKEN "\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
             2000, resp, sizeof resp);
    CU_ASSERT_EQUAL(st, 202);
    char url[128], err[TL_ERRSZ];
    snprintf(url, sizeof url, "%s/v1/reload", base);
    int status = 0;
    char *body = NULL;
    CU_ASSERT_EQUAL(tl_http_request("POST", url, TOKEN, 2000, &status, &body,
                                    err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(status, 202);
    free(body);
    CU_ASSERT_EQUAL(atomic_load(&reloads), 2);
}

static void test_customer_id_checked(void)
{
    const char *bad[] = {"/v1/customers/906%00junk", "/v1/customers/%00",
                         "/v1/customers/%FF", "/v1/customers/a%C3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char req[256];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n"
                 "Authorization: Bearer " TOKEN "\r\nConnection: close\r\n\r\n",
                 bad[i]);
        int st = raw(req, 2000, NULL, 0);
        if (st != 400) fprintf(stderr, "\n  %s: %d\n", bad[i], st);
        CU_ASSERT_EQUAL(st, 400);
    }
    /* Valid UTF-8, percent-encoded: looked up (and unknown). */
    CU_ASSERT_EQUAL(raw("GET /v1/customers/%C3%A9t%C3%A9 HTTP/1.1\r\nHost: x\r\n"
                        "Authorization: Bearer " TOKEN "\r\n"
                        "Connection: close\r\n\r\n", 2000, NULL, 0), 404);
}

/* Writes a customer's vector as the flusher does (tl_vec_encode, one
 * compare-and-set write). */
static void write_vector(const char *id, const tl_event *evs, size_t n)
{
    tl_layout l = {cfg->features, cfg->nfeatures, cfg->rules, cfg->nrules,
                   cfg->block_size, &cfg->ruleset};
    tl_cache *cache = tl_cache_new(&l, 1);
    tl_vec *v = tl_cache_put(cache, id, strlen(id));
    for (size_t i = 0; i < n; i++) tl_vec_apply(v, &l, &evs[i]);
    tl_vec_wm(v, "in", 0)->applied = (int64_t)n;
    tl_arena a;
    tl_arena_init(&a, 1024);
    size_t mf = tl_vec_max_fields(&l), md = tl_vec_max_dels(&l);
    const char **f = calloc(mf, sizeof *f), **val = calloc(mf, sizeof *val),
               **del = calloc(md, sizeof *del);
    size_t *fl = calloc(mf, sizeof *fl), *vl = calloc(mf, sizeof *vl),
           *dl = calloc(md, sizeof *dl), nd;
    tl_store_wm wm = {"_o:in:0", 7, -1, (int64_t)n};
    tl_store_write w = {.wm = &wm, .nwm = 1, .fields = f, .flens = fl,
                        .vals = val, .vlens = vl, .dels = del, .dlens = dl};
    w.key = tl_vec_key(&a, cfg->redis_prefix, id, strlen(id), &w.keylen);
    w.nfields = tl_vec_encode(v, &l, &a, f, fl, val, vl, del, dl, &nd);
    w.ndels = nd;
    char err[TL_ERRSZ];
    tl_store *st = tl_store_new(redis->url, 2000, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    CU_ASSERT_EQUAL(tl_store_flush(st, &w, 1, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(w.result, TL_OK);
    tl_store_free(st);
    free(f), free(val), free(del), free(fl), free(vl), free(dl);
    tl_arena_free(&a);
    tl_cache_free(cache);
}

/* A customer who visited twice and never purchased: Redis holds 0 for
 * purchases and spend (what rules read), the items as a JSON array that
 * keeps "Shoes, red" whole, nothing for top_spend (null); /v1/customers
 * gives numbers, arrays, strings and null as JSON types. */
static void test_customer_values(void)
{
    tl_event e[2];
    memset(e, 0, sizeof e);
    for (int i = 0; i < 2; i++) {
        e[i].event_id = "e";
        e[i].customer_id = "c1";
        e[i].customer_id_len = 2;
        e[i].ts = 1000 + i;
        e[i].type = "visit";
    }
    e[0].item = "Shoes, red";
    e[1].item = "Boots";
    write_vector("c1", e, 2);
    redisContext *c = redisConnect("127.0.0.1", redis->port);
    CU_ASSERT_FATAL(c && !c->err);
    const char *want[][2] = {{"visits", "2"},
                             {"purchases", "0"},
                             {"spend", "0"},
                             {"last_item", "Boots"},
                             {"items", "[\"Boots\",\"Shoes, red\"]"},
                             {"top_spend", NULL}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        redisReply *r = redisCommand(c, "HGET g:cx:{c1} %s", want[i][0]);
        CU_ASSERT_FATAL(r != NULL);
        if (want[i][1]) {
            CU_ASSERT_EQUAL(r->type, REDIS_REPLY_STRING);
            if (r->type == REDIS_REPLY_STRING) {
                CU_ASSERT_STRING_EQUAL(r->str, want[i][1]);
            } else {
                fprintf(stderr, "\n  %s: not in redis\n", want[i][0]);
            }
        } else {
            CU_ASSERT_EQUAL(r->type, REDIS_REPLY_NIL);
        }
        freeReplyObject(r);
    }
    redisFree(c);
    char url[128], err[TL_ERRSZ];
    snprintf(url, sizeof url, "%s/v1/customers/c1", base);
    int status = 0;
    char *body = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_http_request("GET", url, TOKEN, 2000, &status,
                                          &body, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(status, 200);
    CU_ASSERT_STRING_EQUAL(body,
        "{\"customer_id\":\"c1\",\"as_of\":1001,\"features\":{\"visits\":2,"
        "\"purchases\":0,\"spend\":0,\"top_spend\":null,"
        "\"last_item\":\"Boots\",\"items\":[\"Boots\",\"Shoes, red\"]}}");
    free(body);
}

typedef struct caller {
    const char *path;
    const char *token;
    atomic_int *stop;
    int calls;
    pthread_t t;
} caller;

static void *call_loop(void *ud)
{
    caller *c = ud;
    char url[160], err[TL_ERRSZ];
    snprintf(url, sizeof url, "%s%s", base, c->path);
    while (!atomic_load(c->stop)) {
        int status;
        char *body = NULL;
        tl_http_request("GET", url, c->token, 5000, &status, &body, err,
                        sizeof err);
        free(body);
        c->calls++;
    }
    return NULL;
}

/* Redis stopped; 4 callers on /readyz and 4 on /v1/customers keep waiting
 * on it: /healthz answers in under 100 ms all along. */
static void test_healthz_while_redis_hangs(void)
{
    CU_ASSERT_FATAL(kill(redis->pid, SIGSTOP) == 0);
    atomic_int stop = 0;
    caller c[8];
    for (int i = 0; i < 8; i++) {
        c[i] = (caller){i < 4 ? "/readyz" : "/v1/customers/someone",
                        i < 4 ? NULL : TOKEN, &stop, 0, 0};
        CU_ASSERT_FATAL(pthread_create(&c[i].t, NULL, call_loop, &c[i]) == 0);
    }
    usleep(200000);
    int64_t worst = 0;
    for (int i = 0; i < 20; i++) {
        int64_t ms;
        CU_ASSERT_EQUAL(healthz(&ms), 200);
        if (ms > worst) worst = ms;
        usleep(100000);
    }
    printf("/healthz while Redis hangs: worst %lld ms\n", (long long)worst);
    CU_ASSERT(worst < 100);
    char resp[1024];
    int64_t t0 = tl_now_mono_ms();
    int st = raw("GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 3000, resp, sizeof resp);
    CU_ASSERT_EQUAL(st, 503);
    CU_ASSERT(tl_now_mono_ms() - t0 < 1500);
    /* A cause, not where: no address, no port. */
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", redis->port);
    CU_ASSERT_PTR_NOT_NULL(strstr(resp, "\r\n\r\nnot ready: redis unreachable\n"));
    CU_ASSERT_PTR_NULL(strstr(resp, "127.0.0.1"));
    CU_ASSERT_PTR_NULL(strstr(resp, portstr));
    atomic_store(&stop, 1);
    for (int i = 0; i < 8; i++) pthread_join(c[i].t, NULL);
    CU_ASSERT_EQUAL(kill(redis->pid, SIGCONT), 0);
}

/* /readyz while Redis refuses: the error's class, not its text. */
static void test_readyz_cause(void)
{
    redisContext *r = redisConnect("127.0.0.1", redis->port);
    CU_ASSERT_FATAL(r && !r->err);
    freeReplyObject(redisCommand(r, "CONFIG SET requirepass s3cret"));
    /* The endpoint's connection was authenticated (none needed): cut it so
     * that it connects again and meets NOAUTH. */
    freeReplyObject(redisCommand(r, "CLIENT KILL TYPE normal SKIPME yes"));
    char resp[1024];
    int64_t until = tl_now_mono_ms() + 5000;
    while (tl_now_mono_ms() < until) {
        raw("GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            2000, resp, sizeof resp);
        if (strstr(resp, "refused")) break;
        usleep(100000);
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(resp, "\r\n\r\nnot ready: redis refused the credentials\n"));
    CU_ASSERT_PTR_NULL(strstr(resp, "NOAUTH"));
    freeReplyObject(redisCommand(r, "AUTH s3cret"));
    freeReplyObject(redisCommand(r, "CONFIG SET requirepass %s", ""));
    redisFree(r);
    until = tl_now_mono_ms() + 5000;
    int st = 0;
    while (tl_now_mono_ms() < until &&
           (st = raw("GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     2000, NULL, 0)) != 200)
        usleep(100000);
    CU_ASSERT_EQUAL(st, 200);
}

/* 20 requests with oversized headers: answered, but at most one warning
 * line (and the count of the rest later). */
static void test_warnings_rate_limited(void)
{
    /* The limiter's period may have started in an earlier test. */
    sleep(10);
    char path[] = "/tmp/tailor_http_guard_XXXXXX";
    int logfd = mkstemp(path);
    CU_ASSERT_FATAL(logfd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(logfd, 2);
    size_t big = 64 * 1024;
    char *req = malloc(big + 128);
    int n = snprintf(req, 128, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'a', big);
    strcpy(req + n + big, "\r\nConnection: close\r\n\r\n");
    int answered = 0;
    for (int i = 0; i < 20; i++) {
        int st = raw(req, 2000, NULL, 0);
        answered += st >= 400;
    }
    for (int i = 0; i < 20; i++)
        answered += raw("POST /v1/reload HTTP/1.1\r\nHost: x\r\n"
                        "Authorization: Bearer " TOKEN "\r\n"
                        "Content-Length: 99999\r\n\r\n", 2000, NULL, 0) == 413;
    free(req);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(logfd);
    char *log = tl_test_read_all(path);
    unlink(path);
    CU_ASSERT_FATAL(log != NULL);
    int lines = tl_test_count_in(log, "\n");
    printf("%d of 40 bad requests answered, %d log line(s):\n%s", answered,
           lines, log);
    CU_ASSERT(answered >= 20);
    CU_ASSERT(lines <= 1);
    free(log);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("http_guard", suite_init, suite_clean);
    CU_add_test(s, "large POST refused before its body", test_large_post);
    CU_add_test(s, "customer id: NUL and invalid UTF-8 refused",
                test_customer_id_checked);
    CU_add_test(s, "/v1/customers: typed JSON, Redis holds what rules read",
                test_customer_values);
    CU_add_test(s, "/healthz answers while Redis hangs",
                test_healthz_while_redis_hangs);
    CU_add_test(s, "/readyz names the cause, not the address",
                test_readyz_cause);
    CU_add_test(s, "slow clients: /healthz answers, deadline cuts them",
                test_slow_clients);
    CU_add_test(s, "warnings rate-limited", test_warnings_rate_limited);
    return tl_test_run();
}
