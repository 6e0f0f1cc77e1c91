#include "httpc.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_RESPONSE (16u << 20)

typedef struct url_parts {
    char host[256], port[8], path[1024];
} url_parts;

static int parse_url(const char *url, url_parts *u, char *err, size_t errsz)
{
    if (strncmp(url, "http://", 7) != 0)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "%s: expected http://HOST[:PORT][/PATH] (https is not "
                       "supported: the endpoint listens on loopback)", url);
    const char *h = url + 7, *end = h + strcspn(h, "/?#");
    const char *colon = NULL;
    if (*h == '[') { /* [IPv6] */
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb) return tl_errf(err, errsz, TL_ERR_CONFIG, "%s: unclosed '['", url);
        if ((size_t)(rb - h - 1) >= sizeof u->host)
            return tl_errf(err, errsz, TL_ERR_CONFIG, "%s: host too long", url);
        memcpy(u->host, h + 1, (size_t)(rb - h - 1));
        u->host[rb - h - 1] = '\0';
        if (rb + 1 < end && rb[1] == ':') colon = rb + 1;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        size_t hl = (size_t)((colon ? colon : end) - h);
        if (hl >= sizeof u->host)
            return tl_errf(err, errsz, TL_ERR_CONFIG, "%s: host too long", url);
        memcpy(u->host, h, hl);
        u->host[hl] = '\0';
    }
    if (!u->host[0])
        return tl_errf(err, errsz, TL_ERR_CONFIG, "%s: no host", url);
    snprintf(u->port, sizeof u->port, "80");
    if (colon) {
        size_t pl = (size_t)(end - colon - 1);
        int ok = pl > 0 && pl < 6;
        for (size_t i = 0; ok && i < pl; i++)
            ok = colon[1 + i] >= '0' && colon[1 + i] <= '9';
        if (!ok || atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "%s: the port must be 1..65535", url);
        memcpy(u->port, colon + 1, pl);
        u->port[pl] = '\0';
    }
    const char *path = *end == '/' ? end : "/";
    if (strlen(path) >= sizeof u->path)
        return tl_errf(err, errsz, TL_ERR_CONFIG, "%s: path too long", url);
    snprintf(u->path, sizeof u->path, "%s", path);
    /* The request line and headers must stay what they are. */
    for (const char *p = u->path; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "%s: spaces or control characters in the path", url);
    return TL_OK;
}

static int wait_fd(int fd, short ev, int timeout_ms)
{
    struct pollfd pfd = {fd, ev, 0};
    int n;
    do n = poll(&pfd, 1, timeout_ms); while (n < 0 && errno == EINTR);
    return n > 0 ? 0 : -1;
}

static int connect_to(const url_parts *u, int timeout_ms, char *err,
                      size_t errsz)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(u->host, u->port, &hints, &res);
    if (gai)
        return tl_errf(err, errsz, TL_ERR_IO, "%s:%s: %s", u->host, u->port,
                       gai_strerror(gai)), -1;
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        e = errno;
        if (e == EINPROGRESS && wait_fd(fd, POLLOUT, timeout_ms) == 0) {
            socklen_t len = sizeof e;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len);
            if (!e) break;
        } else if (e == EINPROGRESS) {
            e = ETIMEDOUT;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        tl_errf(err, errsz, TL_ERR_IO, "%s:%s: cannot connect: %s", u->host,
                u->port, strerror(e));
    return fd;
}

static int send_all(int fd, const char *buf, size_t len, int timeout_ms)
{
    while (len) {
        if (wait_fd(fd, POLLOUT, timeout_ms)) return -1;
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Decodes a chunked body in place; its new length, or -1 if malformed. */
static long dechunk(char *b, size_t len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *endp;
        if (in >= len) return -1;
        unsigned long n = strtoul(b + in, &endp, 16);
        char *crlf = strstr(endp, "\r\n");
        if (endp == b + in || !crlf) return -1;
        in = (size_t)(crlf + 2 - b);
        if (n == 0) break;
        if (n > len - in) return -1;
        memmove(b + out, b + in, n);
        out += n;
        in += n;
        if (in + 2 > len || b[in] != '\r' || b[in + 1] != '\n') return -1;
        in += 2;
    }
    b[out] = '\0';
    return (long)out;
}

int tl_http_request(const char *method, const char *url, const char *token,
                    int timeout_ms, int *status, char **body, char *err,
                    size_t errsz)
{
    url_parts u;
    *body = NULL;
    int rc = parse_url(url, &u, err, errsz);
    if (rc) return rc;
    if (token && strpbrk(token, "\r\n"))
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "the token contains a line break");
    int fd = connect_to(&u, timeout_ms, err, errsz);
    if (fd < 0) return TL_ERR_IO;
    size_t reqcap = strlen(u.path) + strlen(u.host) + (token ? strlen(token) : 0) + 256;
    char *req = tl_xmalloc(reqcap);
    int rl = snprintf(req, reqcap,
                      "%s %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: tailorctl\r\n"
                      "Content-Length: 0\r\nConnection: close\r\n%s%s%s\r\n",
                      method, u.path, strchr(u.host, ':') ? "[" : "", u.host,
                      strchr(u.host, ':') ? "]" : "", u.port,
                      token ? "Authorization: Bearer " : "", token ? token : "",
                      token ? "\r\n" : "");
    int sent = send_all(fd, req, (size_t)rl, timeout_ms);
    free(req);
    if (sent) {
        close(fd);
        return tl_errf(err, errsz, TL_ERR_IO, "%s: sending the request: %s",
                       url, errno ? strerror(errno) : "timeout");
    }
    size_t cap = 4096, len = 0;
    char *buf = tl_xmalloc(cap);
    for (;;) {
        if (wait_fd(fd, POLLIN, timeout_ms)) {
            close(fd);
            free(buf);
            return tl_errf(err, errsz, TL_ERR_IO,
                           "%s: no response within %d ms", url, timeout_ms);
        }
        if (len + 1 >= cap) {
            if (cap >= MAX_RESPONSE) break;
            buf = tl_xrealloc(buf, cap *= 2);
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    int major, minor, code;
    char *hend = strstr(buf, "\r\n\r\n");
    if (!hend || sscanf(buf, "HTTP/%d.%d %d", &major, &minor, &code) != 3) {
        free(buf);
        return tl_errf(err, errsz, TL_ERR_IO, "%s: not an HTTP response", url);
    }
    *hend = '\0';
    char *b = hend + 4;
    size_t blen = len - (size_t)(b - buf);
    int chunked = strcasestr(buf, "\r\ntransfer-encoding: chunked") != NULL;
    if (chunked) {
        long n = dechunk(b, blen);
        if (n < 0) {
            free(buf);
            return tl_errf(err, errsz, TL_ERR_IO,
                           "%s: malformed chunked response", url);
        }
        blen = (size_t)n;
    }
    *body = tl_xstrndup(b, blen);
    *status = code;
    free(buf);
    return TL_OK;
}
