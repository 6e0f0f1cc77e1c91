/*
 * redis_url — parsing of redis://, unix:// and redis-cluster:// URLs.  See
 * redis_url.h for the forms accepted.
 *
 * The userinfo is located before anything else is checked, so that every
 * message (which names the URL) can show it with the password redacted.
 */
#include "redis_url.h"

#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#define FORM_TCP "redis://[[user]:password@]host[:port][/db]"
#define FORM_UNIX "unix://[[user]:password@]/path[?db=N]"
#define FORM_CLUSTER "redis-cluster://[[user]:password@]host[:port][,host[:port]...]"
#define FORM_ANY FORM_TCP " or " FORM_UNIX

/* Longest socket path the kernel accepts (sun_path minus the NUL). */
#define UNIX_PATH_MAX_LEN (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* What every step of one parse needs to report a failure. */
typedef struct url_ctx {
    char *shown;      /* the URL with the password as ***: messages show it */
    const char *form; /* the expected form, named in messages */
    char *err;
    size_t errsz;
} url_ctx;

/* "redis URL "<shown>": <what>; expected <form>".  Returns TL_ERR_CONFIG. */
static int url_fail(const url_ctx *c, const char *fmt, ...) TL_PRINTF(2, 3);
static int url_fail(const url_ctx *c, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return tl_errf(c->err, c->errsz, TL_ERR_CONFIG,
                   "redis URL \"%s\": %s; expected %s", c->shown, what,
                   c->form);
}

/* Percent-decodes s[0..len) into a malloc'd string; NULL when an escape is
 * malformed or decodes to NUL (which could not be passed on as a C string). */
static char *pct_decode(const char *s, size_t len)
{
    char *out = tl_xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        if (i + 2 >= len) {
            free(out);
            return NULL;
        }
        int h = tl_hexval(s[i + 1]), l = tl_hexval(s[i + 2]);
        if (h < 0 || l < 0 || (h == 0 && l == 0)) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(h << 4 | l);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* Parses a non-negative decimal integer s[0..len) no larger than max.  Not
 * tl_parse_i64: that one (strtoll) would also take a sign or blanks. */
static int parse_uint(const char *s, size_t len, long max, long *out)
{
    if (len == 0 || len > 10) return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max) return -1;
    *out = v;
    return 0;
}

/* Builds the URL as shown in messages: userinfo [ui, at) becomes "user:***"
 * (or "***" when it has no colon). */
static char *redact(const char *url, const char *ui, const char *at)
{
    if (!ui) return tl_xstrdup(url);
    const char *colon = memchr(ui, ':', (size_t)(at - ui));
    size_t keep = colon ? (size_t)(colon - url) + 1 : (size_t)(ui - url);
    size_t rest = strlen(at);
    char *s = tl_xmalloc(keep + 3 + rest + 1);
    memcpy(s, url, keep);
    memcpy(s + keep, "***", 3);
    memcpy(s + keep + 3, at, rest + 1);
    return s;
}

void tl_redis_url_clear(tl_redis_url *u)
{
    if (!u) return;
    free(u->host);
    free(u->unix_path);
    free(u->user);
    free(u->password);
    for (size_t i = 0; i < u->nseeds; i++) free(u->seed_hosts[i]);
    free(u->seed_hosts);
    free(u->seed_ports);
    memset(u, 0, sizeof *u);
}

/* The database number `text` (after "/" or "?db=") into out->db. */
static int parse_db(const url_ctx *c, const char *text, tl_redis_url *out)
{
    long db;
    if (parse_uint(text, strlen(text), INT_MAX, &db) != 0)
        return url_fail(c, "database \"%s\" is not a non-negative integer",
                        text);
    out->db = (int)db;
    return TL_OK;
}

/* host[:port] or [IPv6][:port] in [h, hend) into a malloc'd *host and
 * *port (6379 when absent). */
static int parse_hostport(const url_ctx *c, const char *h, const char *hend,
                          char **host, int *port)
{
    const char *hp_end, *pstart = NULL;
    if (*h == '[') { /* [IPv6]:port */
        const char *rb = memchr(h, ']', (size_t)(hend - h));
        if (!rb) return url_fail(c, "IPv6 host lacks its ']'");
        *host = tl_xstrndup(h + 1, (size_t)(rb - h - 1));
        hp_end = rb + 1;
        if (hp_end < hend && *hp_end != ':')
            return url_fail(c, "unexpected \"%.*s\" after the IPv6 host",
                            (int)(hend - hp_end), hp_end);
        if (hp_end < hend) pstart = hp_end + 1;
    } else {
        const char *colon = memchr(h, ':', (size_t)(hend - h));
        hp_end = colon ? colon : hend;
        *host = tl_xstrndup(h, (size_t)(hp_end - h));
        if (colon) pstart = colon + 1;
    }
    if (!**host) return url_fail(c, "host is missing");
    *port = 6379;
    if (pstart) {
        long v;
        if (parse_uint(pstart, (size_t)(hend - pstart), 65535, &v) != 0 ||
            v == 0)
            return url_fail(c, "port \"%.*s\" is not a number in 1..65535",
                            (int)(hend - pstart), pstart);
        *port = (int)v;
    }
    return TL_OK;
}

/* The scheme url[0..sep) must be one this build speaks. */
static int check_scheme(const url_ctx *c, const char *url, const char *sep)
{
    if (!sep) return url_fail(c, "missing scheme");
    size_t slen = (size_t)(sep - url);
    if ((slen == 4 && strncasecmp(url, "unix", 4) == 0) ||
        (slen == 13 && strncasecmp(url, "redis-cluster", 13) == 0) ||
        (slen == 5 && strncasecmp(url, "redis", 5) == 0))
        return TL_OK;
    if (slen == 6 && strncasecmp(url, "rediss", 6) == 0)
        return url_fail(c, "TLS (rediss://) is not supported by this build");
    return url_fail(c, "scheme \"%.*s\" is not supported", (int)slen, url);
}

/* [user]:password in [ui, at), percent-decoded, into out. */
static int parse_userinfo(const url_ctx *c, const char *ui, const char *at,
                          tl_redis_url *out)
{
    const char *colon = memchr(ui, ':', (size_t)(at - ui));
    if (!colon) return url_fail(c, "credentials must be [user]:password");
    if (colon > ui) {
        out->user = pct_decode(ui, (size_t)(colon - ui));
        if (!out->user)
            return url_fail(c, "user has an invalid percent-escape (use "
                               "%%XX, not %%00)");
    }
    out->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
    if (!out->password)
        return url_fail(c, "password has an invalid percent-escape (use "
                           "%%XX, not %%00)");
    /* "redis://:@host" means no AUTH; "user:@" is AUTH user "" (an ACL
     * user with nopass). */
    if (!*out->password && !out->user) {
        free(out->password);
        out->password = NULL;
    }
    return TL_OK;
}

/* /path/to/redis.sock[?db=N] */
static int parse_unix(const url_ctx *c, const char *rest, tl_redis_url *out)
{
    if (*rest != '/') return url_fail(c, "socket path must be absolute");
    const char *q = strchr(rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen(rest);
    if (plen < 2) return url_fail(c, "socket path is missing");
    if (plen > UNIX_PATH_MAX_LEN)
        return url_fail(c, "socket path is longer than %zu bytes",
                        (size_t)UNIX_PATH_MAX_LEN);
    out->unix_path = tl_xstrndup(rest, plen);
    if (!q) return TL_OK;
    if (strncmp(q + 1, "db=", 3) != 0)
        return url_fail(c, "query \"%s\" is not supported (only db=N)", q + 1);
    return parse_db(c, q + 4, out);
}

/* The seeds host[:port][,host[:port]...] in [rest, hend); `db` is what
 * follows the '/', if any (only database 0 exists in a cluster). */
static int parse_seeds(const url_ctx *c, const char *rest, const char *hend,
                       const char *db, tl_redis_url *out)
{
    if (db && *db && strcmp(db, "0") != 0)
        return url_fail(c,
                        "database \"%s\": Redis Cluster has only database 0",
                        db);
    for (const char *h = rest;;) {
        const char *comma = memchr(h, ',', (size_t)(hend - h));
        const char *e = comma ? comma : hend;
        size_t cap = out->nseeds + 1;
        out->seed_hosts =
            tl_xrealloc(out->seed_hosts, cap * sizeof *out->seed_hosts);
        out->seed_ports =
            tl_xrealloc(out->seed_ports, cap * sizeof *out->seed_ports);
        size_t k = out->nseeds++;
        out->seed_hosts[k] = NULL;
        int rc = parse_hostport(c, h, e, &out->seed_hosts[k],
                                &out->seed_ports[k]);
        if (rc != TL_OK) return rc;
        if (!comma) break;
        h = comma + 1;
    }
    out->host = tl_xstrdup(out->seed_hosts[0]);
    out->port = out->seed_ports[0];
    return TL_OK;
}

/* host[:port][/db], or a cluster's seeds, after the scheme and userinfo. */
static int parse_tcp(const url_ctx *c, const char *rest, tl_redis_url *out)
{
    const char *query = strchr(rest, '?');
    if (query) return url_fail(c, "query \"%s\" is not supported", query + 1);
    const char *slash = strchr(rest, '/');
    const char *hend = slash ? slash : rest + strlen(rest);
    if (out->cluster)
        return parse_seeds(c, rest, hend, slash ? slash + 1 : NULL, out);
    int rc = parse_hostport(c, rest, hend, &out->host, &out->port);
    if (rc == TL_OK && slash && slash[1]) rc = parse_db(c, slash + 1, out);
    return rc;
}

int tl_redis_url_parse(const char *url, tl_redis_url *out, char *err,
                       size_t errsz)
{
    memset(out, 0, sizeof *out);
    if (!url || !*url)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "redis URL is empty; expected %s", FORM_ANY);

    const char *sep = strstr(url, "://");
    const char *rest = sep ? sep + 3 : url;
    int is_unix = sep && (size_t)(sep - url) == 4 &&
                  strncasecmp(url, "unix", 4) == 0;
    int is_cluster = sep && (size_t)(sep - url) == 13 &&
                     strncasecmp(url, "redis-cluster", 13) == 0;

    /* Find the userinfo first, so that no message can show a password.  A
     * TCP URL's host, port and db cannot hold '@', so its userinfo ends at
     * the last one (an unescaped '/' or '@' in a password still works); a
     * socket path may hold anything, so there it ends at the first "@/". */
    const char *ui = NULL, *at = NULL;
    if (is_unix) {
        if (*rest != '/' && (at = strstr(rest, "@/")) != NULL) ui = rest;
    } else if ((at = strrchr(rest, '@')) != NULL) {
        ui = rest;
    }
    url_ctx c = {redact(url, ui, at), FORM_ANY, err, errsz};

    int rc = check_scheme(&c, url, sep);
    c.form = is_unix ? FORM_UNIX : is_cluster ? FORM_CLUSTER : FORM_TCP;
    out->cluster = is_cluster;
    if (rc == TL_OK && ui) {
        rc = parse_userinfo(&c, ui, at, out);
        rest = at + 1;
    }
    if (rc == TL_OK)
        rc = is_unix ? parse_unix(&c, rest, out) : parse_tcp(&c, rest, out);
    free(c.shown);
    if (rc != TL_OK) tl_redis_url_clear(out);
    return rc;
}
