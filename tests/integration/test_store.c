/*
 * Integration tests of lib/store against private, real redis-servers
 * (tests/support/redis_server): URL parsing, connecting over TCP and a unix
 * socket, AUTH, pipelined load, the conditional flush (watermark CAS,
 * fencing, idempotent retry, 64-bit exactness, NOSCRIPT recovery) and
 * faults (server killed and restarted, server hung, peer reset).
 *
 * Every server is owned by a suite and stopped (by pid) in the suite's
 * cleanup, so a failed assertion leaves no process behind.
 */
#include "../support/redis_server.h"
#include "../support/testutil.h"
#include "redis_url.h"
#include "store.h"

#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 3000

#define FORM_TCP "redis://[[user]:password@]host[:port][/db]"
#define FORM_UNIX "unix://[[user]:password@]/path[?db=N]"
#define FORM_ANY FORM_TCP " or " FORM_UNIX
#define HINT "is redis-server running? set redis.url or TAILOR_REDIS_URL"

/* ------------------------------------------------------------------------ */
/* Shared server, inspection connection, helpers                            */
/* ------------------------------------------------------------------------ */

static tl_redis_server *srv;   /* suites "load", "flush", "connect" */
static redisContext *admin;    /* inspects srv behind the store's back */
static tl_store *st;           /* the store under test, on srv */

static redisContext *admin_connect(const tl_redis_server *s)
{
    struct timeval tv = {3, 0};
    redisContext *c =
        s->unix_path ? redisConnectUnixWithTimeout(s->unix_path, tv)
                     : redisConnectWithTimeout("127.0.0.1", s->port, tv);
    if (!c || c->err) {
        fprintf(stderr, "admin connect: %s\n", c ? c->errstr : "oom");
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (s->password) {
        redisReply *r = redisCommand(c, "AUTH %s", s->password);
        if (r) freeReplyObject(r);
    }
    return c;
}

static int shared_init(void)
{
    char err[TL_ERRSZ];
    srv = tl_redis_server_start(NULL, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "redis_server_start: %s\n", err);
        return 1;
    }
    admin = admin_connect(srv);
    st = tl_store_new(srv->url, TIMEOUT_MS, err, sizeof err);
    if (!st) fprintf(stderr, "tl_store_new: %s\n", err);
    return admin && st ? 0 : 1;
}

static int shared_clean(void)
{
    tl_store_free(st);
    st = NULL;
    if (admin) redisFree(admin);
    admin = NULL;
    tl_redis_server_stop(srv);
    srv = NULL;
    return 0;
}

static redisReply *adm(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(admin, fmt, ap);
    va_end(ap);
    return r;
}

static long long adm_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(admin, fmt, ap);
    va_end(ap);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -999;
    if (r) freeReplyObject(r);
    return v;
}

/* HGET as a malloc'd string ("(nil)" when absent). */
static char *adm_hget(const char *key, const char *field)
{
    redisReply *r = adm("HGET %s %s", key, field);
    char *s = strdup(r && r->type == REDIS_REPLY_STRING ? r->str : "(nil)");
    if (r) freeReplyObject(r);
    return s;
}

#define ASSERT_HGET(key, field, want)                                          \
    do {                                                                       \
        char *got_ = adm_hget(key, field);                                     \
        CU_ASSERT_STRING_EQUAL(got_, want);                                    \
        free(got_);                                                            \
    } while (0)

static void adm_ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(admin, fmt, ap);
    va_end(ap);
    CU_ASSERT(r != NULL && r->type != REDIS_REPLY_ERROR);
    if (r) freeReplyObject(r);
}

/* A write whose arrays live beside it: init in place, never copy. */
typedef struct fixture {
    tl_store_write w;
    tl_store_wm wm[4];
    const char *fields[8], *vals[8];
    size_t flens[8], vlens[8];
} fixture;

static tl_store_write *fx(fixture *f, const char *key, int64_t ttl_ms)
{
    memset(f, 0, sizeof *f);
    f->w.key = key;
    f->w.keylen = strlen(key);
    f->w.wm = f->wm;
    f->w.fields = f->fields;
    f->w.flens = f->flens;
    f->w.vals = f->vals;
    f->w.vlens = f->vlens;
    f->w.ttl_ms = ttl_ms;
    f->w.result = 12345; /* must be overwritten */
    return &f->w;
}

static void fx_wm(fixture *f, const char *field, int64_t expected,
                  int64_t next)
{
    f->wm[f->w.nwm++] =
        (tl_store_wm){field, strlen(field), expected, next};
}

static void fx_set(fixture *f, const char *field, const char *val, size_t vlen)
{
    size_t i = f->w.nfields++;
    f->fields[i] = field;
    f->flens[i] = strlen(field);
    f->vals[i] = val;
    f->vlens[i] = vlen;
}
#define FX_SET(f, field, val) fx_set(f, field, val, strlen(val))

/* One write, flushed alone; returns its result (rc must be TL_OK). */
static int flush1(fixture *f)
{
    char err[TL_ERRSZ] = "";
    int rc = tl_store_flush(st, &f->w, 1, err, sizeof err);
    if (rc != TL_OK) fprintf(stderr, "flush: %s\n", err);
    CU_ASSERT_EQUAL(rc, TL_OK);
    return f->w.result;
}

/* ------------------------------------------------------------------------ */
/* URL parsing                                                              */
/* ------------------------------------------------------------------------ */

static void test_url_valid(void)
{
    static const struct {
        const char *url, *host;
        int port;
        const char *unix_path;
        int db;
        const char *user, *password;
    } cases[] = {
        {"redis://127.0.0.1", "127.0.0.1", 6379, NULL, 0, NULL, NULL},
        {"redis://localhost:6390/3", "localhost", 6390, NULL, 3, NULL, NULL},
        {"REDIS://h:1/0", "h", 1, NULL, 0, NULL, NULL},
        {"redis://h/", "h", 6379, NULL, 0, NULL, NULL},
        {"redis://h:65535/2147483647", "h", 65535, NULL, 2147483647, NULL,
         NULL},
        {"redis://:secret@h", "h", 6379, NULL, 0, NULL, "secret"},
        {"redis://alice:s%40cr%2Ft%25@h:7000/2", "h", 7000, NULL, 2, "alice",
         "s@cr/t%"},
        {"redis://alice:p@ss/w@h", "h", 6379, NULL, 0, "alice", "p@ss/w"},
        {"redis://%61lice:pw@h", "h", 6379, NULL, 0, "alice", "pw"},
        {"redis://:@h", "h", 6379, NULL, 0, NULL, NULL},
        {"redis://bob:@h", "h", 6379, NULL, 0, "bob", ""},
        {"redis://[::1]:6380/1", "::1", 6380, NULL, 1, NULL, NULL},
        {"redis://[::1]", "::1", 6379, NULL, 0, NULL, NULL},
        {"unix:///tmp/redis.sock", NULL, 0, "/tmp/redis.sock", 0, NULL, NULL},
        {"unix:///tmp/redis.sock?db=5", NULL, 0, "/tmp/redis.sock", 5, NULL,
         NULL},
        {"unix://:pw@/run/redis.sock", NULL, 0, "/run/redis.sock", 0, NULL,
         "pw"},
        {"UNIX://u:p%3Aw@/run/r@dis.sock?db=1", NULL, 0, "/run/r@dis.sock", 1,
         "u", "p:w"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tl_redis_url u;
        char err[TL_ERRSZ] = "";
        int rc = tl_redis_url_parse(cases[i].url, &u, err, sizeof err);
        if (rc != TL_OK) fprintf(stderr, "\n%s: %s\n", cases[i].url, err);
        CU_ASSERT_EQUAL_FATAL(rc, TL_OK);
#define SAME_STR(a, b)                                                         \
    CU_ASSERT((a) == NULL ? (b) == NULL : (b) != NULL && strcmp(a, b) == 0)
        SAME_STR(cases[i].host, u.host);
        SAME_STR(cases[i].unix_path, u.unix_path);
        SAME_STR(cases[i].user, u.user);
        SAME_STR(cases[i].password, u.password);
#undef SAME_STR
        if (cases[i].host) CU_ASSERT_EQUAL(u.port, cases[i].port);
        CU_ASSERT_EQUAL(u.db, cases[i].db);
        tl_redis_url_clear(&u);
        tl_redis_url_clear(&u); /* idempotent */
    }
}

static void test_url_invalid(void)
{
    static char longpath[200];
    memset(longpath, 0, sizeof longpath);
    strcpy(longpath, "unix:///");
    memset(longpath + 8, 'a', 110);
    static char longmsg[400];
    snprintf(longmsg, sizeof longmsg,
             "redis URL \"%s\": socket path is longer than 107 bytes; "
             "expected " FORM_UNIX,
             longpath);

    const struct {
        const char *url, *msg;
    } cases[] = {
        {NULL, "redis URL is empty; expected " FORM_ANY},
        {"", "redis URL is empty; expected " FORM_ANY},
        {"localhost:6379",
         "redis URL \"localhost:6379\": missing scheme; expected " FORM_ANY},
        {"http://h", "redis URL \"http://h\": scheme \"http\" is not "
                     "supported; expected " FORM_ANY},
        {"rediss://h", "redis URL \"rediss://h\": TLS (rediss://) is not "
                       "supported by this build; expected " FORM_ANY},
        {"redis://h:0", "redis URL \"redis://h:0\": port \"0\" is not a "
                        "number in 1..65535; expected " FORM_TCP},
        {"redis://h:65536", "redis URL \"redis://h:65536\": port \"65536\" is "
                            "not a number in 1..65535; expected " FORM_TCP},
        {"redis://h:abc/0", "redis URL \"redis://h:abc/0\": port \"abc\" is "
                            "not a number in 1..65535; expected " FORM_TCP},
        {"redis://h:", "redis URL \"redis://h:\": port \"\" is not a number "
                       "in 1..65535; expected " FORM_TCP},
        {"redis://:6379", "redis URL \"redis://:6379\": host is missing; "
                          "expected " FORM_TCP},
        {"redis://", "redis URL \"redis://\": host is missing; "
                     "expected " FORM_TCP},
        {"redis://h/x", "redis URL \"redis://h/x\": database \"x\" is not a "
                        "non-negative integer; expected " FORM_TCP},
        {"redis://h/1/2", "redis URL \"redis://h/1/2\": database \"1/2\" is "
                          "not a non-negative integer; expected " FORM_TCP},
        {"redis://h/-1", "redis URL \"redis://h/-1\": database \"-1\" is not "
                         "a non-negative integer; expected " FORM_TCP},
        {"redis://h/2147483648",
         "redis URL \"redis://h/2147483648\": database \"2147483648\" is not "
         "a non-negative integer; expected " FORM_TCP},
        /* The password never appears in a message. */
        {"redis://secret@h", "redis URL \"redis://***@h\": credentials must "
                             "be [user]:password; expected " FORM_TCP},
        {"redis://u:bad%zz@h",
         "redis URL \"redis://u:***@h\": password has an invalid "
         "percent-escape (use %XX, not %00); expected " FORM_TCP},
        {"redis://u:x%00y@h",
         "redis URL \"redis://u:***@h\": password has an invalid "
         "percent-escape (use %XX, not %00); expected " FORM_TCP},
        {"redis://u:trail%4@h",
         "redis URL \"redis://u:***@h\": password has an invalid "
         "percent-escape (use %XX, not %00); expected " FORM_TCP},
        {"redis://u%G1:pw@h",
         "redis URL \"redis://u%G1:***@h\": user has an invalid "
         "percent-escape (use %XX, not %00); expected " FORM_TCP},
        {"redis://u:topsecret@h:99999",
         "redis URL \"redis://u:***@h:99999\": port \"99999\" is not a number "
         "in 1..65535; expected " FORM_TCP},
        {"redis://h:1/0?timeout=1", "redis URL \"redis://h:1/0?timeout=1\": "
                                    "query \"timeout=1\" is not supported; "
                                    "expected " FORM_TCP},
        {"redis://[::1:6379", "redis URL \"redis://[::1:6379\": IPv6 host "
                              "lacks its ']'; expected " FORM_TCP},
        {"redis://[::1]x", "redis URL \"redis://[::1]x\": unexpected \"x\" "
                           "after the IPv6 host; expected " FORM_TCP},
        {"unix://relative.sock", "redis URL \"unix://relative.sock\": socket "
                                 "path must be absolute; expected " FORM_UNIX},
        {"unix://", "redis URL \"unix://\": socket path must be absolute; "
                    "expected " FORM_UNIX},
        {"unix:///", "redis URL \"unix:///\": socket path is missing; "
                     "expected " FORM_UNIX},
        {"unix:///s?foo=1", "redis URL \"unix:///s?foo=1\": query \"foo=1\" "
                            "is not supported (only db=N); expected " FORM_UNIX},
        {"unix:///s?db=x", "redis URL \"unix:///s?db=x\": database \"x\" is "
                           "not a non-negative integer; expected " FORM_UNIX},
        {"unix://pw@/s", "redis URL \"unix://***@/s\": credentials must be "
                         "[user]:password; expected " FORM_UNIX},
        {longpath, longmsg},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tl_redis_url u;
        char err[TL_ERRSZ] = "";
        int rc = tl_redis_url_parse(cases[i].url, &u, err, sizeof err);
        CU_ASSERT_EQUAL(rc, TL_ERR_CONFIG);
        if (strcmp(err, cases[i].msg) != 0)
            fprintf(stderr, "\n  url  %s\n  got  %s\n  want %s\n",
                    cases[i].url ? cases[i].url : "(null)", err,
                    cases[i].msg);
        CU_ASSERT_STRING_EQUAL(err, cases[i].msg);
        CU_ASSERT(u.host == NULL && u.unix_path == NULL && u.user == NULL &&
                  u.password == NULL);
        CU_ASSERT(strstr(err, "secret") == NULL);
    }
    /* err may be NULL. */
    tl_redis_url u;
    CU_ASSERT_EQUAL(tl_redis_url_parse("nope", &u, NULL, 0), TL_ERR_CONFIG);
}

/* ------------------------------------------------------------------------ */
/* Connecting                                                               */
/* ------------------------------------------------------------------------ */

static void test_connect_tcp(void)
{
    char err[TL_ERRSZ] = "";
    tl_store *s = tl_store_new(srv->url, TIMEOUT_MS, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    /* The handshake is one round trip: SCRIPT LOAD and INFO server (no
     * AUTH, db 0). */
    CU_ASSERT_EQUAL(tl_store_round_trips(s), 1);
    CU_ASSERT_EQUAL(tl_store_commands(s), 2);
    CU_ASSERT_EQUAL(tl_store_ping(s, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(s), 2);
    tl_store_free(s);
    tl_store_free(NULL);

    /* A name, resolved (hiredis 0.14 tries IPv4 first). */
    char url[64];
    snprintf(url, sizeof url, "redis://localhost:%d/0", srv->port);
    s = tl_store_new(url, TIMEOUT_MS, err, sizeof err);
    if (!s) fprintf(stderr, "%s\n", err);
    CU_ASSERT_PTR_NOT_NULL(s);
    tl_store_free(s);
}

/* DEL for `tailorctl forget`: says whether the key existed. */
static void test_delete(void)
{
    char err[TL_ERRSZ] = "";
    tl_store *s = tl_store_new(srv->url, TIMEOUT_MS, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    redisContext *c = redisConnect("127.0.0.1", srv->port);
    CU_ASSERT_FATAL(c && !c->err);
    freeReplyObject(redisCommand(c, "HSET t:del:{x} a 1"));
    int existed = -1;
    CU_ASSERT_EQUAL(tl_store_delete(s, "t:del:{x}", 9, &existed, err, sizeof err),
                    TL_OK);
    CU_ASSERT_EQUAL(existed, 1);
    redisReply *r = redisCommand(c, "EXISTS t:del:{x}");
    CU_ASSERT(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
    freeReplyObject(r);
    CU_ASSERT_EQUAL(tl_store_delete(s, "t:del:{x}", 9, &existed, err, sizeof err),
                    TL_OK);
    CU_ASSERT_EQUAL(existed, 0);
    redisFree(c);
    tl_store_free(s);
}

static void test_connect_select_db(void)
{
    char url[1100], err[TL_ERRSZ] = "";
    snprintf(url, sizeof url, "%s/1", srv->url);
    tl_store *s = tl_store_new(url, TIMEOUT_MS, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fixture f;
    fx(&f, "db1:cx:{1}", 0);
    FX_SET(&f, "n", "1");
    CU_ASSERT_EQUAL(tl_store_flush(s, &f.w, 1, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(f.w.result, TL_OK);
    CU_ASSERT_EQUAL(adm_int("EXISTS db1:cx:{1}"), 0);
    adm_ok("SELECT 1");
    ASSERT_HGET("db1:cx:{1}", "n", "1");
    adm_ok("SELECT 0");
    tl_store_free(s);

    snprintf(url, sizeof url, "%s/99", srv->url);
    CU_ASSERT_PTR_NULL(tl_store_new(url, TIMEOUT_MS, err, sizeof err));
    char want[TL_ERRSZ];
    snprintf(want, sizeof want,
             "redis 127.0.0.1:%d: SELECT 99 failed: ERR DB index is out of "
             "range (check the /db part of redis.url)",
             srv->port);
    CU_ASSERT_STRING_EQUAL(err, want);
}

static void test_connect_refused(void)
{
    int port = tl_test_free_port();
    char url[64], err[TL_ERRSZ] = "", want[TL_ERRSZ];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    CU_ASSERT_PTR_NULL(tl_store_new(url, TIMEOUT_MS, err, sizeof err));
    snprintf(want, sizeof want,
             "redis 127.0.0.1:%d: connection refused (" HINT ")", port);
    CU_ASSERT_STRING_EQUAL(err, want);

    CU_ASSERT_PTR_NULL(tl_store_new("unix:///nonexistent/redis.sock",
                                    TIMEOUT_MS, err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "redis unix:/nonexistent/redis.sock: no such "
                                "socket (" HINT ")");

    CU_ASSERT_PTR_NULL(tl_store_new("redis://h:0", TIMEOUT_MS, err,
                                    sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "port \"0\""));
}

/* A listener that accepts (the kernel does, from the backlog) but never
 * answers: the handshake must give up after the timeout. */
static void test_connect_timeout(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CU_ASSERT_FATAL(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                    listen(fd, 4) == 0 &&
                    getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    int port = ntohs(a.sin_port);
    char url[64], err[TL_ERRSZ] = "", want[TL_ERRSZ];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    int64_t t0 = tl_now_mono_ms();
    CU_ASSERT_PTR_NULL(tl_store_new(url, 300, err, sizeof err));
    int64_t took = tl_now_mono_ms() - t0;
    CU_ASSERT(took >= 250 && took < 2000);
    snprintf(want, sizeof want,
             "redis 127.0.0.1:%d: handshake: no reply within 300 ms (timeout)",
             port);
    CU_ASSERT_STRING_EQUAL(err, want);
    close(fd);
}

static void test_connect_unix(void)
{
    char err[TL_ERRSZ] = "";
    tl_redis_server_opts o = {.unix_socket = 1};
    tl_redis_server *us = tl_redis_server_start(&o, err, sizeof err);
    if (!us) fprintf(stderr, "%s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(us);
    CU_ASSERT_EQUAL(us->port, 0);
    CU_ASSERT(strncmp(us->url, "unix:///", 8) == 0);

    char url[1100];
    snprintf(url, sizeof url, "%s?db=2", us->url);
    tl_store *s = tl_store_new(url, TIMEOUT_MS, err, sizeof err);
    if (!s) fprintf(stderr, "%s\n", err);
    CU_ASSERT_PTR_NOT_NULL(s);
    if (s) {
        CU_ASSERT_EQUAL(tl_store_ping(s, err, sizeof err), TL_OK);
        fixture f;
        fx(&f, "u:cx:{1}", 0);
        fx_wm(&f, "_o:in:0", -1, 7);
        FX_SET(&f, "visits", "1");
        CU_ASSERT_EQUAL(tl_store_flush(s, &f.w, 1, err, sizeof err), TL_OK);
        CU_ASSERT_EQUAL(f.w.result, TL_OK);
        redisContext *c = admin_connect(us);
        CU_ASSERT_PTR_NOT_NULL(c);
        if (c) {
            redisReply *r = redisCommand(c, "SELECT 2");
            if (r) freeReplyObject(r);
            r = redisCommand(c, "HGET u:cx:{1} _o:in:0");
            CU_ASSERT(r && r->type == REDIS_REPLY_STRING &&
                      strcmp(r->str, "7") == 0);
            if (r) freeReplyObject(r);
            redisFree(c);
        }
        tl_store_free(s);
    }
    tl_redis_server_stop(us);
}

/* ------------------------------------------------------------------------ */
/* AUTH (own server with requirepass)                                       */
/* ------------------------------------------------------------------------ */

/* Needs escaping in a URL and quoting on redis-server's command line. */
#define PASSWORD "p@ss w:rd/%"
static tl_redis_server *asrv;

static int auth_init(void)
{
    char err[TL_ERRSZ];
    tl_redis_server_opts o = {.password = PASSWORD};
    asrv = tl_redis_server_start(&o, err, sizeof err);
    if (!asrv) fprintf(stderr, "redis_server_start: %s\n", err);
    return asrv ? 0 : 1;
}

static int auth_clean(void)
{
    tl_redis_server_stop(asrv);
    asrv = NULL;
    return 0;
}

static void test_auth_password(void)
{
    char err[TL_ERRSZ] = "", url[256], want[TL_ERRSZ];
    /* asrv->url carries the percent-encoded password. */
    tl_store *s = tl_store_new(asrv->url, TIMEOUT_MS, err, sizeof err);
    if (!s) fprintf(stderr, "%s\n", err);
    CU_ASSERT_PTR_NOT_NULL(s);
    if (s) CU_ASSERT_EQUAL(tl_store_ping(s, err, sizeof err), TL_OK);
    tl_store_free(s);

    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", asrv->port);
    CU_ASSERT_PTR_NULL(tl_store_new(url, TIMEOUT_MS, err, sizeof err));
    snprintf(want, sizeof want,
             "redis 127.0.0.1:%d: AUTH failed: WRONGPASS invalid "
             "username-password pair or user is disabled. (check the "
             "credentials in redis.url or TAILOR_REDIS_URL)",
             asrv->port);
    CU_ASSERT_STRING_EQUAL(err, want);

    snprintf(url, sizeof url, "redis://127.0.0.1:%d", asrv->port);
    CU_ASSERT_PTR_NULL(tl_store_new(url, TIMEOUT_MS, err, sizeof err));
    snprintf(want, sizeof want,
             "redis 127.0.0.1:%d: the server requires a password: NOAUTH "
             "Authentication required. (put it in redis.url as "
             "redis://[[user]:password@]host...)",
             asrv->port);
    CU_ASSERT_STRING_EQUAL(err, want);
}

static void test_auth_acl_user(void)
{
    redisContext *c = admin_connect(asrv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    redisReply *r =
        redisCommand(c, "ACL SETUSER alice on >alicepw ~* &* +@all");
    CU_ASSERT(r && r->type == REDIS_REPLY_STATUS);
    if (r) freeReplyObject(r);
    redisFree(c);

    char err[TL_ERRSZ] = "", url[256], want[TL_ERRSZ];
    snprintf(url, sizeof url, "redis://alice:alicepw@127.0.0.1:%d/0",
             asrv->port);
    tl_store *s = tl_store_new(url, TIMEOUT_MS, err, sizeof err);
    if (!s) fprintf(stderr, "%s\n", err);
    CU_ASSERT_PTR_NOT_NULL(s);
    tl_store_free(s);

    snprintf(url, sizeof url, "redis://alice:nope@127.0.0.1:%d", asrv->port);
    CU_ASSERT_PTR_NULL(tl_store_new(url, TIMEOUT_MS, err, sizeof err));
    snprintf(want, sizeof want,
             "redis 127.0.0.1:%d: AUTH failed: WRONGPASS invalid "
             "username-password pair or user is disabled. (check the "
             "credentials in redis.url or TAILOR_REDIS_URL)",
             asrv->port);
    CU_ASSERT_STRING_EQUAL(err, want);
}

static void on_field(void *ud, size_t idx, const char *field, size_t flen,
                     const char *val, size_t vlen)
{
    (void)idx, (void)field, (void)flen, (void)val, (void)vlen;
    (*(size_t *)ud)++;
}

static void on_key_error(void *ud, size_t idx, const char *msg)
{
    (void)idx, (void)msg;
    (*(size_t *)ud)++;
}

/* An ACL that denies our keys is the operator's to fix: an outage to wait
 * out (TL_ERR_IO), never one key's error, which would dead-letter every
 * customer's events meanwhile. */
static void test_auth_acl_denies_keys(void)
{
    redisContext *c = admin_connect(asrv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    redisReply *r =
        redisCommand(c, "ACL SETUSER bob on >bobpw ~other:* &* +@all");
    CU_ASSERT(r && r->type == REDIS_REPLY_STATUS);
    if (r) freeReplyObject(r);
    redisFree(c);
    char err[TL_ERRSZ] = "", url[256], cause[64];
    snprintf(url, sizeof url, "redis://bob:bobpw@127.0.0.1:%d", asrv->port);
    tl_store *s = tl_store_new(url, TIMEOUT_MS, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const char *key = "acl:cx:{1}";
    size_t klen = 10, n = 0;
    CU_ASSERT_EQUAL(tl_store_load(s, &key, &klen, 1, on_field, on_key_error,
                                  &n, err, sizeof err),
                    TL_ERR_IO);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "load of acl:cx:{1}: NOPERM "));
    tl_store_reply_cause(err, cause, sizeof cause);
    CU_ASSERT_STRING_EQUAL(cause, "redis refused the credentials");
    tl_store_free(s);
}

/* ------------------------------------------------------------------------ */
/* Load                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct got {
    size_t n;
    struct {
        size_t idx;
        char field[32], val[32];
        size_t vlen;
    } f[16];
} got;

static void collect(void *ud, size_t idx, const char *field, size_t flen,
                    const char *val, size_t vlen)
{
    got *g = ud;
    if (g->n >= 16 || flen >= 32 || vlen >= 32) {
        CU_FAIL("unexpected callback");
        return;
    }
    g->f[g->n].idx = idx;
    memcpy(g->f[g->n].field, field, flen);
    g->f[g->n].field[flen] = '\0';
    memcpy(g->f[g->n].val, val, vlen);
    g->f[g->n].val[vlen] = '\0';
    g->f[g->n].vlen = vlen;
    g->n++;
}

/* The value of field of key idx in g, or NULL. */
static const char *got_val(const got *g, size_t idx, const char *field,
                           size_t *vlen)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->f[i].idx == idx && strcmp(g->f[i].field, field) == 0) {
            if (vlen) *vlen = g->f[i].vlen;
            return g->f[i].val;
        }
    return NULL;
}

static void test_load_pipeline(void)
{
    adm_ok("HSET l:cx:{a} visits 4 usual big_mac");
    adm_ok("HSET l:cx:{b} bin %b", "x\0y", (size_t)3);
    const char *keys[] = {"l:cx:{a}", "l:cx:{missing}", "l:cx:{b}"};
    size_t lens[] = {8, 14, 8};
    got g = {0};
    char err[TL_ERRSZ] = "";
    uint64_t rt = tl_store_round_trips(st), cmds = tl_store_commands(st);
    CU_ASSERT_EQUAL(tl_store_load(st, keys, lens, 3, collect, NULL, &g, err,
                                  sizeof err),
                    TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(st) - rt, 1);
    CU_ASSERT_EQUAL(tl_store_commands(st) - cmds, 3);
    CU_ASSERT_EQUAL(g.n, 3);
    const char *v = got_val(&g, 0, "visits", NULL);
    CU_ASSERT(v && strcmp(v, "4") == 0);
    v = got_val(&g, 0, "usual", NULL);
    CU_ASSERT(v && strcmp(v, "big_mac") == 0);
    size_t vlen = 0;
    v = got_val(&g, 2, "bin", &vlen);
    CU_ASSERT(v && vlen == 3 && memcmp(v, "x\0y", 3) == 0);
    for (size_t i = 0; i < g.n; i++) CU_ASSERT(g.f[i].idx != 1);

    /* An empty batch is no round trip. */
    rt = tl_store_round_trips(st);
    CU_ASSERT_EQUAL(tl_store_load(st, keys, lens, 0, collect, NULL, &g, err,
                                  sizeof err),
                    TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(st), rt);
}

static void test_load_wrongtype(void)
{
    adm_ok("SET l:cx:{str} plain");
    const char *keys[] = {"l:cx:{a}", "l:cx:{str}", "l:cx:{a}"};
    size_t lens[] = {8, 10, 8};
    got g = {0};
    char err[TL_ERRSZ] = "";
    CU_ASSERT_EQUAL(tl_store_load(st, keys, lens, 3, collect, NULL, &g, err,
                                  sizeof err),
                    TL_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "load of l:cx:{str}: WRONGTYPE"));
    CU_ASSERT_EQUAL(g.n, 0); /* all or nothing */
    /* Every reply was read: the connection is still in step. */
    uint64_t rt = tl_store_round_trips(st);
    CU_ASSERT_EQUAL(tl_store_load(st, keys, lens, 1, collect, NULL, &g, err,
                                  sizeof err),
                    TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(st) - rt, 1);
    CU_ASSERT_EQUAL(g.n, 2);
    /* tailord's store keeps customer ids out of its messages. */
    char err2[TL_ERRSZ] = "";
    tl_store *hidden = tl_store_new(srv->url, TIMEOUT_MS, err2, sizeof err2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(hidden);
    tl_store_hide_keys(hidden);
    CU_ASSERT_EQUAL(tl_store_load(hidden, keys, lens, 3, collect, NULL, &g, err2,
                                  sizeof err2),
                    TL_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err2, "load of l:cx:{...}: WRONGTYPE"));
    CU_ASSERT_PTR_NULL(strstr(err2, "str"));
    tl_store_free(hidden);
}

typedef struct refused {
    size_t n, idx;
    char msg[TL_ERRSZ];
} refused;

static void on_refused(void *ud, size_t idx, const char *msg)
{
    refused *r = ud;
    r->n++;
    r->idx = idx;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
}

typedef struct both {
    got g;
    refused r;
} both;

static void collect_both(void *ud, size_t idx, const char *field, size_t flen,
                         const char *val, size_t vlen)
{
    collect(&((both *)ud)->g, idx, field, flen, val, vlen);
}

static void refused_both(void *ud, size_t idx, const char *msg)
{
    on_refused(&((both *)ud)->r, idx, msg);
}

/* With a key-error callback, a key of another type is that key's error
 * alone: the others load, and the call succeeds. */
static void test_load_wrongtype_per_key(void)
{
    adm_ok("SET l:cx:{str} plain");
    adm_ok("HSET l:cx:{a} visits 4 usual big_mac");
    const char *keys[] = {"l:cx:{a}", "l:cx:{str}", "l:cx:{missing}"};
    size_t lens[] = {8, 10, 14};
    both b = {{0}, {0}};
    char err[TL_ERRSZ] = "";
    CU_ASSERT_EQUAL(tl_store_load(st, keys, lens, 3, collect_both,
                                  refused_both, &b, err, sizeof err),
                    TL_OK);
    CU_ASSERT_EQUAL(b.g.n, 2);
    for (size_t i = 0; i < b.g.n; i++) CU_ASSERT_EQUAL(b.g.f[i].idx, 0);
    CU_ASSERT_EQUAL(b.r.n, 1);
    CU_ASSERT_EQUAL(b.r.idx, 1);
    char want[TL_ERRSZ];
    snprintf(want, sizeof want,
             "redis 127.0.0.1:%d: load of l:cx:{str}: WRONGTYPE Operation "
             "against a key holding the wrong kind of value", srv->port);
    CU_ASSERT_STRING_EQUAL(b.r.msg, want);
    /* Not the cause of an outage: only the key is wrong. */
    char cause[64];
    tl_store_reply_cause(want, cause, sizeof cause);
    CU_ASSERT_STRING_EQUAL(cause, "redis refused: WRONGTYPE");
}

/* ------------------------------------------------------------------------ */
/* Flush                                                                    */
/* ------------------------------------------------------------------------ */

static void test_flush_fields_and_ttl(void)
{
    fixture f;
    fx(&f, "f:cx:{1}", 60000);
    fx_wm(&f, "_o:in:0", -1, 41);
    FX_SET(&f, "visits_30d", "4");
    FX_SET(&f, "usual_order", "big_mac,fries,sparkling_water");
    fx_set(&f, "_bin", "a\0b", 3);
    uint64_t rt = tl_store_round_trips(st);
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(st) - rt, 1);
    ASSERT_HGET("f:cx:{1}", "visits_30d", "4");
    ASSERT_HGET("f:cx:{1}", "usual_order", "big_mac,fries,sparkling_water");
    ASSERT_HGET("f:cx:{1}", "_o:in:0", "41");
    CU_ASSERT_EQUAL(adm_int("HSTRLEN f:cx:{1} _bin"), 3);
    CU_ASSERT_EQUAL(adm_int("HLEN f:cx:{1}"), 4);
    long long pttl = adm_int("PTTL f:cx:{1}");
    CU_ASSERT(pttl > 0 && pttl <= 60000);

    /* ttl 0: no expiry at all. */
    fx(&f, "f:cx:{2}", 0);
    FX_SET(&f, "x", "1");
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    CU_ASSERT_EQUAL(adm_int("PTTL f:cx:{2}"), -1);

    /* An empty batch is no round trip. */
    char err[TL_ERRSZ];
    rt = tl_store_round_trips(st);
    CU_ASSERT_EQUAL(tl_store_flush(st, NULL, 0, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(st), rt);
}

/* Expired values leave Redis in the same script that writes the rest, and
 * a fenced write deletes nothing. */
static void test_flush_deletes(void)
{
    fixture f;
    fx(&f, "f:cx:{del}", 0);
    fx_wm(&f, "_o:in:0", -1, 1);
    FX_SET(&f, "a", "1");
    FX_SET(&f, "_f:a", "5;1");
    FX_SET(&f, "b", "2");
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    const char *dels[] = {"a", "_f:a", "never_there"};
    size_t dlens[] = {1, 4, 11};
    fx(&f, "f:cx:{del}", 0);
    fx_wm(&f, "_o:in:0", 5, 6); /* stale: fenced */
    f.w.dels = dels;
    f.w.dlens = dlens;
    f.w.ndels = 3;
    CU_ASSERT_EQUAL(flush1(&f), TL_ERR_FENCED);
    ASSERT_HGET("f:cx:{del}", "a", "1");
    fx(&f, "f:cx:{del}", 0);
    fx_wm(&f, "_o:in:0", 1, 2);
    f.w.dels = dels;
    f.w.dlens = dlens;
    f.w.ndels = 3;
    FX_SET(&f, "b", "3");
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    CU_ASSERT_EQUAL(adm_int("HEXISTS f:cx:{del} a"), 0);
    CU_ASSERT_EQUAL(adm_int("HEXISTS f:cx:{del} _f:a"), 0);
    ASSERT_HGET("f:cx:{del}", "b", "3");
    ASSERT_HGET("f:cx:{del}", "_o:in:0", "2");
}

static void test_flush_watermark_cas(void)
{
    const char *k = "f:cx:{cas}";
    fixture f;

    /* Fresh key: the absent watermark counts as -1. */
    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", -1, 10);
    FX_SET(&f, "visits", "1");
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    ASSERT_HGET(k, "_o:in:0", "10");

    /* A stale writer (expects 5, finds 10) is fenced and writes nothing,
     * not even the TTL. */
    fx(&f, k, 5000);
    fx_wm(&f, "_o:in:0", 5, 20);
    FX_SET(&f, "visits", "999");
    FX_SET(&f, "zombie", "yes");
    CU_ASSERT_EQUAL(flush1(&f), TL_ERR_FENCED);
    ASSERT_HGET(k, "_o:in:0", "10");
    ASSERT_HGET(k, "visits", "1");
    ASSERT_HGET(k, "zombie", "(nil)");
    CU_ASSERT_EQUAL(adm_int("PTTL %s", k), -1);

    /* A retry of the applied write (stored == next) succeeds: idempotent. */
    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", -1, 10);
    FX_SET(&f, "visits", "1");
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    ASSERT_HGET(k, "_o:in:0", "10");
    ASSERT_HGET(k, "visits", "1");

    /* The owner's next flush. */
    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", 10, 11);
    FX_SET(&f, "visits", "2");
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    ASSERT_HGET(k, "_o:in:0", "11");
    ASSERT_HGET(k, "visits", "2");

    /* A writer that starts over from -1 on an owned key is fenced. */
    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", -1, 5);
    FX_SET(&f, "visits", "1");
    CU_ASSERT_EQUAL(flush1(&f), TL_ERR_FENCED);
    ASSERT_HGET(k, "visits", "2");

    /* Two partitions: one stale watermark fences the whole write. */
    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", 11, 12);  /* fine */
    fx_wm(&f, "_o:in:1", 3, 4);    /* absent (-1): stale */
    FX_SET(&f, "visits", "3");
    CU_ASSERT_EQUAL(flush1(&f), TL_ERR_FENCED);
    ASSERT_HGET(k, "_o:in:0", "11");
    ASSERT_HGET(k, "_o:in:1", "(nil)");
    ASSERT_HGET(k, "visits", "2");

    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", 11, 12);
    fx_wm(&f, "_o:in:1", -1, 4);
    FX_SET(&f, "visits", "3");
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    ASSERT_HGET(k, "_o:in:0", "12");
    ASSERT_HGET(k, "_o:in:1", "4");

    /* The watermark wins over a pair that names the same field. */
    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", 12, 13);
    FX_SET(&f, "_o:in:0", "777");
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    ASSERT_HGET(k, "_o:in:0", "13");
}

/* Offsets above 2^53 differ as strings where Lua doubles would not. */
static void test_flush_watermark_64bit(void)
{
    const char *k = "f:cx:{big}";
    const int64_t p53 = INT64_C(9007199254740992); /* 2^53 */
    fixture f;
    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", -1, p53 + 1);
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    ASSERT_HGET(k, "_o:in:0", "9007199254740993");

    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", p53, p53 + 2); /* (double)p53 == (double)(p53+1) */
    CU_ASSERT_EQUAL(flush1(&f), TL_ERR_FENCED);
    ASSERT_HGET(k, "_o:in:0", "9007199254740993");

    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", p53 + 1, INT64_MAX);
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    ASSERT_HGET(k, "_o:in:0", "9223372036854775807");

    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", INT64_MAX - 1, INT64_MAX);
    CU_ASSERT_EQUAL(flush1(&f), TL_OK); /* stored == next */
}

static void test_flush_mixed_batch(void)
{
    adm_ok("HSET f:cx:{m2} _o:in:0 50");
    adm_ok("SET f:cx:{m4} not-a-hash");
    fixture f[4];
    tl_store_write w[4];
    fx(&f[0], "f:cx:{m1}", 0);
    fx_wm(&f[0], "_o:in:0", -1, 1);
    fx(&f[1], "f:cx:{m2}", 0);
    fx_wm(&f[1], "_o:in:0", 40, 41); /* stale */
    fx(&f[2], "f:cx:{m3}", 0);
    fx_wm(&f[2], "_o:in:0", -1, 1);
    fx(&f[3], "f:cx:{m4}", 0);        /* WRONGTYPE */
    fx_wm(&f[3], "_o:in:0", -1, 1);
    for (int i = 0; i < 4; i++) {
        FX_SET(&f[i], "v", "x");
        w[i] = f[i].w; /* the arrays stay in f[i] */
    }
    char err[TL_ERRSZ] = "";
    uint64_t rt = tl_store_round_trips(st);
    CU_ASSERT_EQUAL(tl_store_flush(st, w, 4, err, sizeof err), TL_ERR);
    CU_ASSERT_EQUAL(tl_store_round_trips(st) - rt, 1);
    CU_ASSERT_EQUAL(w[0].result, TL_OK);
    CU_ASSERT_EQUAL(w[1].result, TL_ERR_FENCED);
    CU_ASSERT_EQUAL(w[2].result, TL_OK);
    CU_ASSERT_EQUAL(w[3].result, TL_ERR);
    char want[TL_ERRSZ];
    snprintf(want, sizeof want,
             "redis 127.0.0.1:%d: flush of f:cx:{m4}: WRONGTYPE Operation "
             "against a key holding the wrong kind of value script: ",
             srv->port); /* then the SHA and the script line */
    CU_ASSERT_NSTRING_EQUAL(err, want, strlen(want));
    ASSERT_HGET("f:cx:{m2}", "_o:in:0", "50");
    ASSERT_HGET("f:cx:{m3}", "v", "x");
    /* Still connected and in step: no new handshake. */
    rt = tl_store_round_trips(st);
    uint64_t cmds = tl_store_commands(st);
    CU_ASSERT_EQUAL(tl_store_ping(st, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(st) - rt, 1);
    CU_ASSERT_EQUAL(tl_store_commands(st) - cmds, 1);
}

static void test_flush_noscript_recovers(void)
{
    adm_ok("SCRIPT FLUSH");
    fixture f;
    fx(&f, "f:cx:{ns}", 0);
    fx_wm(&f, "_o:in:0", -1, 3);
    FX_SET(&f, "v", "1");
    uint64_t rt = tl_store_round_trips(st);
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    /* EVALSHA -> NOSCRIPT, then SCRIPT LOAD + EVALSHA. */
    CU_ASSERT_EQUAL(tl_store_round_trips(st) - rt, 2);
    ASSERT_HGET("f:cx:{ns}", "_o:in:0", "3");

    fx(&f, "f:cx:{ns}", 0);
    fx_wm(&f, "_o:in:0", 3, 4);
    rt = tl_store_round_trips(st);
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(st) - rt, 1);
}

/* More fields than Lua's unpack() takes at once. */
static void test_flush_many_fields(void)
{
    enum { N = 5000 };
    char (*names)[16] = malloc(N * sizeof *names);
    const char **fields = malloc(N * sizeof *fields);
    const char **vals = malloc(N * sizeof *vals);
    size_t *flens = malloc(N * sizeof *flens);
    size_t *vlens = malloc(N * sizeof *vlens);
    for (int i = 0; i < N; i++) {
        flens[i] = (size_t)snprintf(names[i], sizeof names[i], "f%d", i);
        fields[i] = names[i];
        vals[i] = names[i];
        vlens[i] = flens[i];
    }
    tl_store_wm wm = {"_o:in:0", 7, -1, 1};
    tl_store_write w = {.key = "f:cx:{wide}", .keylen = 11, .wm = &wm,
                        .nwm = 1, .fields = fields, .flens = flens,
                        .vals = vals, .vlens = vlens, .nfields = N};
    char err[TL_ERRSZ] = "";
    int rc = tl_store_flush(st, &w, 1, err, sizeof err);
    if (rc != TL_OK) fprintf(stderr, "%s\n", err);
    CU_ASSERT_EQUAL(rc, TL_OK);
    CU_ASSERT_EQUAL(w.result, TL_OK);
    CU_ASSERT_EQUAL(adm_int("HLEN f:cx:{wide}"), N + 1);
    ASSERT_HGET("f:cx:{wide}", "f4999", "f4999");
    free(names);
    free(fields);
    free(vals);
    free(flens);
    free(vlens);
}

static void count_fields(void *ud, size_t idx, const char *field,
                         size_t flen, const char *val, size_t vlen)
{
    (void)idx, (void)field, (void)flen, (void)val, (void)vlen;
    (*(size_t *)ud)++;
}

static void test_flush_batch_1000(void)
{
    enum { N = 1000 };
    static char keys[N][32];
    static tl_store_wm wm[N];
    static tl_store_write w[N];
    static const char *fields[] = {"visits_30d", "last_channel"};
    static const size_t flens[] = {10, 12};
    static const char *vals[] = {"7", "store"};
    static const size_t vlens[] = {1, 5};
    for (int i = 0; i < N; i++) {
        size_t kl = (size_t)snprintf(keys[i], sizeof keys[i], "b:cx:{%d}", i);
        wm[i] = (tl_store_wm){"_o:in:3", 7, -1, 1000 + i};
        w[i] = (tl_store_write){.key = keys[i], .keylen = kl, .wm = &wm[i],
                                .nwm = 1, .fields = fields, .flens = flens,
                                .vals = vals, .vlens = vlens, .nfields = 2,
                                .ttl_ms = 3600000, .result = 99};
    }
    char err[TL_ERRSZ] = "";
    uint64_t rt = tl_store_round_trips(st), cmds = tl_store_commands(st);
    CU_ASSERT_EQUAL(tl_store_flush(st, w, N, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(st) - rt, 1);
    CU_ASSERT_EQUAL(tl_store_commands(st) - cmds, N);
    int ok = 0;
    for (int i = 0; i < N; i++) ok += w[i].result == TL_OK;
    CU_ASSERT_EQUAL(ok, N);
    ASSERT_HGET("b:cx:{0}", "_o:in:3", "1000");
    ASSERT_HGET("b:cx:{999}", "_o:in:3", "1999");
    ASSERT_HGET("b:cx:{500}", "last_channel", "store");

    /* The whole batch again (a retry after a lost reply): all applied. */
    rt = tl_store_round_trips(st);
    CU_ASSERT_EQUAL(tl_store_flush(st, w, N, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(st) - rt, 1);
    ok = 0;
    for (int i = 0; i < N; i++) ok += w[i].result == TL_OK;
    CU_ASSERT_EQUAL(ok, N);

    /* And a loaded batch of 1000 is one round trip too. */
    static const char *kp[N];
    static size_t kl[N];
    for (int i = 0; i < N; i++) kp[i] = keys[i], kl[i] = w[i].keylen;
    size_t count = 0;
    rt = tl_store_round_trips(st);
    CU_ASSERT_EQUAL(tl_store_load(st, kp, kl, N, count_fields, NULL, &count, err,
                                  sizeof err),
                    TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(st) - rt, 1);
    CU_ASSERT_EQUAL(count, 3 * N);
}

/* ------------------------------------------------------------------------ */
/* Faults (own server)                                                      */
/* ------------------------------------------------------------------------ */

static tl_redis_server *fsrv;

static int fault_init(void)
{
    char err[TL_ERRSZ];
    fsrv = tl_redis_server_start(NULL, err, sizeof err);
    if (!fsrv) fprintf(stderr, "redis_server_start: %s\n", err);
    return fsrv ? 0 : 1;
}

static int fault_clean(void)
{
    tl_redis_server_stop(fsrv);
    fsrv = NULL;
    return 0;
}

/* A write refused because its key does not exist at all (Redis lost it,
 * or it was erased) is TL_ERR_GONE, not TL_ERR_FENCED: the caller must
 * tell data lost by Redis from another instance's write.  A key that
 * exists with a watermark ahead stays fenced; a fresh key is written. */
static void test_flush_key_gone(void)
{
    const char *k = "g:cx:{gone}";
    fixture f;
    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", -1, 10);
    FX_SET(&f, "visits", "60");
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);

    adm_ok("DEL %s", k);
    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", 10, 11);
    FX_SET(&f, "visits", "61");
    CU_ASSERT_EQUAL(flush1(&f), TL_ERR_GONE);
    CU_ASSERT_EQUAL(adm_int("EXISTS %s", k), 0);

    /* Written back against the absent key: expected -1. */
    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", -1, 11);
    FX_SET(&f, "visits", "61");
    CU_ASSERT_EQUAL(flush1(&f), TL_OK);
    ASSERT_HGET(k, "visits", "61");

    /* Present, watermark ahead: fenced as before. */
    fx(&f, k, 0);
    fx_wm(&f, "_o:in:0", 10, 12);
    FX_SET(&f, "visits", "1");
    CU_ASSERT_EQUAL(flush1(&f), TL_ERR_FENCED);
    ASSERT_HGET(k, "visits", "61");
}

/* What the server says of losing keys: its policy and evictions. */
static void test_facts_policy(void)
{
    char err[TL_ERRSZ];
    tl_store_facts f;
    CU_ASSERT_EQUAL_FATAL(tl_store_facts_get(st, &f, err, sizeof err), TL_OK);
    CU_ASSERT_STRING_EQUAL(f.policy, "noeviction");
    CU_ASSERT_EQUAL(f.evicted_keys, 0);
    CU_ASSERT(!tl_store_policy_evicts(f.policy, 1));
    adm_ok("CONFIG SET maxmemory-policy allkeys-lru");
    CU_ASSERT_EQUAL_FATAL(tl_store_facts_get(st, &f, err, sizeof err), TL_OK);
    CU_ASSERT_STRING_EQUAL(f.policy, "allkeys-lru");
    adm_ok("CONFIG SET maxmemory-policy noeviction");
    CU_ASSERT(tl_store_policy_evicts("allkeys-lru", 0));
    CU_ASSERT(tl_store_policy_evicts("volatile-lru", 1));
    CU_ASSERT(!tl_store_policy_evicts("volatile-ttl", 0));
    CU_ASSERT(!tl_store_policy_evicts("noeviction", 1));
}

static void test_fault_kill_restart(void)
{
    char err[TL_ERRSZ] = "", want[TL_ERRSZ];
    tl_store *s = tl_store_new(fsrv->url, TIMEOUT_MS, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fixture f;
    fx(&f, "k:cx:{1}", 0);
    fx_wm(&f, "_o:in:0", -1, 1);
    FX_SET(&f, "v", "1");
    CU_ASSERT_EQUAL(tl_store_flush(s, &f.w, 1, err, sizeof err), TL_OK);

    tl_redis_server_kill(fsrv);

    /* The dead connection: I/O error, the context is dropped. */
    fx(&f, "k:cx:{1}", 0);
    fx_wm(&f, "_o:in:0", 1, 2);
    FX_SET(&f, "v", "2");
    CU_ASSERT_EQUAL(tl_store_flush(s, &f.w, 1, err, sizeof err), TL_ERR_IO);
    CU_ASSERT_EQUAL(f.w.result, TL_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "(will reconnect on the next call)"));

    /* Still down: the reconnect attempt is refused, once per call. */
    snprintf(want, sizeof want,
             "redis 127.0.0.1:%d: connection refused (" HINT ")", fsrv->port);
    CU_ASSERT_EQUAL(tl_store_flush(s, &f.w, 1, err, sizeof err), TL_ERR_IO);
    CU_ASSERT_STRING_EQUAL(err, want);
    char cause[64];
    tl_store_reply_cause(err, cause, sizeof cause);
    CU_ASSERT_STRING_EQUAL(cause, "redis unreachable");
    const char *key = "k:cx:{1}";
    size_t klen = 8;
    got g = {0};
    CU_ASSERT_EQUAL(tl_store_load(s, &key, &klen, 1, collect, NULL, &g, err,
                                  sizeof err),
                    TL_ERR_IO);
    CU_ASSERT_STRING_EQUAL(err, want);
    CU_ASSERT_EQUAL(tl_store_ping(s, err, sizeof err), TL_ERR_IO);

    /* Back on the same port (empty: nothing persists). */
    int rc = tl_redis_server_restart(fsrv, err, sizeof err);
    if (rc != 0) fprintf(stderr, "%s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    uint64_t rt = tl_store_round_trips(s);
    fx(&f, "k:cx:{1}", 0);
    fx_wm(&f, "_o:in:0", -1, 2);
    FX_SET(&f, "v", "2");
    CU_ASSERT_EQUAL(tl_store_flush(s, &f.w, 1, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(f.w.result, TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(s) - rt, 2); /* handshake + batch */
    /* A new run_id on reconnecting: the restart is counted. */
    CU_ASSERT_EQUAL(tl_store_restarts(s), 1);
    CU_ASSERT_EQUAL(tl_store_load(s, &key, &klen, 1, collect, NULL, &g, err,
                                  sizeof err),
                    TL_OK);
    CU_ASSERT_EQUAL(g.n, 2);
    tl_store_free(s);
}

/* A hung server (SIGSTOP): the call gives up after the timeout; once the
 * server runs again, retrying the same batch is safe. */
static void test_fault_hung_server(void)
{
    char err[TL_ERRSZ] = "", want[TL_ERRSZ];
    tl_store *s = tl_store_new(fsrv->url, 300, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fixture f;
    fx(&f, "h:cx:{1}", 0);
    fx_wm(&f, "_o:in:0", -1, 1);
    FX_SET(&f, "v", "1");

    CU_ASSERT_EQUAL(kill(fsrv->pid, SIGSTOP), 0);
    int64_t t0 = tl_now_mono_ms();
    int rc = tl_store_flush(s, &f.w, 1, err, sizeof err);
    int64_t took = tl_now_mono_ms() - t0;
    CU_ASSERT_EQUAL(kill(fsrv->pid, SIGCONT), 0);
    CU_ASSERT_EQUAL(rc, TL_ERR_IO);
    CU_ASSERT(took >= 250 && took < 2000);
    snprintf(want, sizeof want,
             "redis 127.0.0.1:%d: flush: no reply within 300 ms (timeout) "
             "(will reconnect on the next call)",
             fsrv->port);
    CU_ASSERT_STRING_EQUAL(err, want);

    /* The lost write may or may not have been applied: either way the
     * retry succeeds (stored == expected, or stored == next). */
    CU_ASSERT_EQUAL(tl_store_flush(s, &f.w, 1, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(f.w.result, TL_OK);
    tl_store_free(s);
}

/* A server turned replica (a failover behind the same address): the
 * READONLY reply means "not now", so the flush is TL_ERR_IO and the next
 * call reconnects; a wrong write would have been TL_ERR instead. */
static void test_fault_readonly_replica(void)
{
    char err[TL_ERRSZ] = "";
    tl_store *s = tl_store_new(fsrv->url, TIMEOUT_MS, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    redisContext *c = admin_connect(fsrv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    /* A master that does not exist: the server stays a read-only replica. */
    redisReply *r = redisCommand(c, "REPLICAOF 127.0.0.1 %d",
                                 tl_test_free_port());
    CU_ASSERT(r && r->type == REDIS_REPLY_STATUS);
    if (r) freeReplyObject(r);

    fixture f;
    fx(&f, "ro:cx:{1}", 0);
    fx_wm(&f, "_o:in:0", -1, 1);
    CU_ASSERT_EQUAL(tl_store_flush(s, &f.w, 1, err, sizeof err), TL_ERR_IO);
    CU_ASSERT_EQUAL(f.w.result, TL_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ": READONLY "));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "(will reconnect on the next call)"));
    char cause[64];
    tl_store_reply_cause(err, cause, sizeof cause);
    CU_ASSERT_STRING_EQUAL(cause, "redis read-only");

    r = redisCommand(c, "REPLICAOF NO ONE");
    if (r) freeReplyObject(r);
    redisFree(c);
    uint64_t rt = tl_store_round_trips(s);
    CU_ASSERT_EQUAL(tl_store_flush(s, &f.w, 1, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(f.w.result, TL_OK);
    CU_ASSERT_EQUAL(tl_store_round_trips(s) - rt, 2); /* reconnected */
    tl_store_free(s);
}

/* Out of memory (maxmemory reached, noeviction): the server refuses every
 * write, which is an outage to wait out, not the key's error; reads go on.
 * The cause says which. */
static void test_fault_oom(void)
{
    char err[TL_ERRSZ] = "", cause[64];
    tl_store *s = tl_store_new(fsrv->url, TIMEOUT_MS, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    redisContext *c = admin_connect(fsrv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    freeReplyObject(redisCommand(c, "CONFIG SET maxmemory 1"));
    fixture f;
    fx(&f, "oom:cx:{1}", 0);
    fx_wm(&f, "_o:in:0", -1, 1);
    FX_SET(&f, "v", "1");
    CU_ASSERT_EQUAL(tl_store_flush(s, &f.w, 1, err, sizeof err), TL_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ": OOM command not allowed"));
    tl_store_reply_cause(err, cause, sizeof cause);
    CU_ASSERT_STRING_EQUAL(cause, "redis out of memory");
    const char *key = "oom:cx:{1}";
    size_t klen = 10;
    both b = {{0}, {0}};
    CU_ASSERT_EQUAL(tl_store_load(s, &key, &klen, 1, collect_both,
                                  refused_both, &b, err, sizeof err),
                    TL_OK);
    CU_ASSERT_EQUAL(b.r.n, 0);
    freeReplyObject(redisCommand(c, "CONFIG SET maxmemory 0"));
    CU_ASSERT_EQUAL(tl_store_flush(s, &f.w, 1, err, sizeof err), TL_OK);
    CU_ASSERT_EQUAL(f.w.result, TL_OK);
    redisFree(c);
    tl_store_free(s);
}

/* A unix socket whose server died: the next write fails with EPIPE and
 * raises SIGPIPE (no TCP reset dance first), which must become TL_ERR_IO,
 * not the death of the process.  Then the server returns on the same path. */
static void test_fault_unix_sigpipe(void)
{
    char err[TL_ERRSZ] = "";
    tl_redis_server_opts o = {.unix_socket = 1};
    tl_redis_server *us = tl_redis_server_start(&o, err, sizeof err);
    if (!us) fprintf(stderr, "%s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(us);
    tl_store *s = tl_store_new(us->url, TIMEOUT_MS, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL(s);
    if (s) {
        tl_redis_server_kill(us);
        fixture f;
        fx(&f, "p:cx:{1}", 0);
        fx_wm(&f, "_o:in:0", -1, 1);
        CU_ASSERT_EQUAL(tl_store_flush(s, &f.w, 1, err, sizeof err),
                        TL_ERR_IO);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, ": flush: "));
        sigset_t pending;
        sigpending(&pending);
        CU_ASSERT_EQUAL(sigismember(&pending, SIGPIPE), 0);

        int rc = tl_redis_server_restart(us, err, sizeof err);
        if (rc != 0) fprintf(stderr, "%s\n", err);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(tl_store_flush(s, &f.w, 1, err, sizeof err), TL_OK);
        CU_ASSERT_EQUAL(f.w.result, TL_OK);
        tl_store_free(s);
    }
    tl_redis_server_stop(us);
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;

    CU_pSuite url = CU_add_suite("store_url", NULL, NULL);
    CU_add_test(url, "valid URLs", test_url_valid);
    CU_add_test(url, "invalid URLs: exact messages", test_url_invalid);

    CU_pSuite conn = CU_add_suite("store_connect", shared_init, shared_clean);
    CU_add_test(conn, "TCP", test_connect_tcp);
    CU_add_test(conn, "SELECT db", test_connect_select_db);
    CU_add_test(conn, "DEL", test_delete);
    CU_add_test(conn, "connection refused", test_connect_refused);
    CU_add_test(conn, "handshake timeout", test_connect_timeout);
    CU_add_test(conn, "unix socket", test_connect_unix);

    CU_pSuite auth = CU_add_suite("store_auth", auth_init, auth_clean);
    CU_add_test(auth, "AUTH password right/wrong/missing", test_auth_password);
    CU_add_test(auth, "AUTH ACL user", test_auth_acl_user);
    CU_add_test(auth, "an ACL denying our keys: an outage",
                test_auth_acl_denies_keys);

    CU_pSuite load = CU_add_suite("store_load", shared_init, shared_clean);
    CU_add_test(load, "pipelined HGETALL", test_load_pipeline);
    CU_add_test(load, "WRONGTYPE: all or nothing", test_load_wrongtype);
    CU_add_test(load, "WRONGTYPE: that key's error alone",
                test_load_wrongtype_per_key);

    CU_pSuite flush = CU_add_suite("store_flush", shared_init, shared_clean);
    CU_add_test(flush, "fields and TTL", test_flush_fields_and_ttl);
    CU_add_test(flush, "watermark CAS", test_flush_watermark_cas);
    CU_add_test(flush, "a key gone: not fenced", test_flush_key_gone);
    CU_add_test(flush, "INFO: eviction policy", test_facts_policy);
    CU_add_test(flush, "deletions", test_flush_deletes);
    CU_add_test(flush, "64-bit watermarks", test_flush_watermark_64bit);
    CU_add_test(flush, "mixed batch", test_flush_mixed_batch);
    CU_add_test(flush, "NOSCRIPT recovers", test_flush_noscript_recovers);
    CU_add_test(flush, "5000 fields", test_flush_many_fields);
    CU_add_test(flush, "batch of 1000", test_flush_batch_1000);

    CU_pSuite fault = CU_add_suite("store_faults", fault_init, fault_clean);
    CU_add_test(fault, "server killed, restarted", test_fault_kill_restart);
    CU_add_test(fault, "hung server times out", test_fault_hung_server);
    CU_add_test(fault, "READONLY replica", test_fault_readonly_replica);
    CU_add_test(fault, "OOM: an outage, named", test_fault_oom);
    CU_add_test(fault, "unix server killed: no SIGPIPE",
                test_fault_unix_sigpipe);

    return tl_test_run();
}
