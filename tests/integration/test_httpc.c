/*
 * Integration tests for lib/httpc over real loopback sockets: a listener in
 * a thread of this program records each request and answers with a canned
 * response (or with nothing, for the timeout).  Also `tailorctl reload
 * --url` against it: the request tailord's endpoint will receive.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/testutil.h"
#include "httpc.h"

typedef struct server {
    int fd, port;
    const char *response; /* NULL: accept, read, never answer */
    char request[4096];
    pthread_t thread;
} server;

static void *serve(void *ud)
{
    server *s = ud;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0) return NULL;
    size_t n = 0;
    while (n < sizeof s->request - 1) {
        ssize_t got = recv(c, s->request + n, sizeof s->request - 1 - n, 0);
        if (got <= 0) break;
        n += (size_t)got;
        s->request[n] = '\0';
        if (strstr(s->request, "\r\n\r\n")) break;
    }
    if (s->response) {
        send(c, s->response, strlen(s->response), MSG_NOSIGNAL);
    } else {
        char b[16];
        while (recv(c, b, sizeof b, 0) > 0) {}
    }
    close(c);
    return NULL;
}

static void start(server *s, const char *response)
{
    memset(s, 0, sizeof *s);
    s->response = response;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CU_ASSERT_FATAL(bind(s->fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                    listen(s->fd, 1) == 0 &&
                    getsockname(s->fd, (struct sockaddr *)&a, &len) == 0);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->thread, NULL, serve, s);
}

static void finish(server *s)
{
    pthread_join(s->thread, NULL);
    close(s->fd);
}

static void test_post_token(void)
{
    server s;
    start(&s, "HTTP/1.1 202 Accepted\r\nContent-Type: text/plain\r\n"
              "Content-Length: 17\r\n\r\nreload requested\n");
    char url[128], err[TL_ERRSZ] = "";
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/reload?force=1", s.port);
    int status = 0;
    char *body = NULL;
    CU_ASSERT_EQUAL(tl_http_request("POST", url, "s3cret", 5000, &status, &body,
                                    err, sizeof err),
                    TL_OK);
    finish(&s);
    CU_ASSERT_EQUAL(status, 202);
    CU_ASSERT_STRING_EQUAL(body ? body : "", "reload requested\n");
    free(body);
    CU_ASSERT(strncmp(s.request, "POST /v1/reload?force=1 HTTP/1.1\r\n", 34) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(s.request, "\r\nAuthorization: Bearer s3cret\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s.request, "\r\nContent-Length: 0\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s.request, "\r\nConnection: close\r\n"));
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%d\r\n", s.port);
    CU_ASSERT_PTR_NOT_NULL(strstr(s.request, host));

    /* No token: no Authorization header; a 401 is a status, not an error. */
    start(&s, "HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n"
              "6\r\nbearer\r\n7\r\n token\n\r\n0\r\n\r\n");
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
    CU_ASSERT_EQUAL(tl_http_request("GET", url, NULL, 5000, &status, &body, err,
                                    sizeof err),
                    TL_OK);
    finish(&s);
    CU_ASSERT_EQUAL(status, 401);
    CU_ASSERT_STRING_EQUAL(body ? body : "", "bearer token\n");
    free(body);
    CU_ASSERT(strncmp(s.request, "GET / HTTP/1.1\r\n", 16) == 0);
    CU_ASSERT_PTR_NULL(strstr(s.request, "Authorization"));
}

static void test_errors(void)
{
    char err[TL_ERRSZ] = "", url[128];
    int status = 0;
    char *body = NULL;
    CU_ASSERT_EQUAL(tl_http_request("POST", "https://127.0.0.1/", NULL, 1000,
                                    &status, &body, err, sizeof err),
                    TL_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "https is not supported"));
    CU_ASSERT_EQUAL(tl_http_request("POST", "http://127.0.0.1:99999/", NULL,
                                    1000, &status, &body, err, sizeof err),
                    TL_ERR_CONFIG);
    CU_ASSERT_EQUAL(tl_http_request("POST", "http://127.0.0.1/a b", NULL, 1000,
                                    &status, &body, err, sizeof err),
                    TL_ERR_CONFIG);
    CU_ASSERT_EQUAL(tl_http_request("POST", "http://127.0.0.1/", "a\r\nX: y",
                                    1000, &status, &body, err, sizeof err),
                    TL_ERR_CONFIG);
    /* Refused: a port nobody listens on. */
    int port = tl_test_free_port();
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/reload", port);
    CU_ASSERT_EQUAL(tl_http_request("POST", url, "s3cret", 1000, &status, &body,
                                    err, sizeof err),
                    TL_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot connect"));
    CU_ASSERT_PTR_NULL(strstr(err, "s3cret"));
    CU_ASSERT_PTR_NULL(body);
    /* A server that never answers: bounded by the timeout. */
    server s;
    start(&s, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    int64_t t0 = tl_now_mono_ms();
    CU_ASSERT_EQUAL(tl_http_request("POST", url, NULL, 300, &status, &body, err,
                                    sizeof err),
                    TL_ERR_IO);
    int64_t took = tl_now_mono_ms() - t0;
    CU_ASSERT(took >= 250 && took < 3000);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no response within 300 ms"));
    shutdown(s.fd, SHUT_RDWR);
    finish(&s);
    /* Not HTTP. */
    start(&s, "hello\r\n\r\n");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    CU_ASSERT_EQUAL(tl_http_request("POST", url, NULL, 2000, &status, &body,
                                    err, sizeof err),
                    TL_ERR_IO);
    finish(&s);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not an HTTP response"));
}

/* tailorctl reload --url: the request, and the exit code from the status. */
static void test_tailorctl_reload(void)
{
    server s;
    start(&s, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    setenv("TAILOR_HTTP_TOKEN", "from-env", 1);
    char *argv[] = {(char *)tl_test_bin("tailorctl"), "reload", "--url", url,
                    "--force", NULL};
    pid_t pid = tl_test_spawn(argv, "/dev/null", NULL);
    CU_ASSERT_EQUAL(tl_test_wait(pid, 20000), 0);
    finish(&s);
    CU_ASSERT(strncmp(s.request, "POST /v1/reload?force=1 HTTP/1.1\r\n", 34) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(s.request, "\r\nAuthorization: Bearer from-env\r\n"));

    start(&s, "HTTP/1.1 409 Conflict\r\nContent-Length: 8\r\n\r\nrefused\n");
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
    char *argv2[] = {(char *)tl_test_bin("tailorctl"), "reload", "--url", url,
                     "--token", "t", NULL};
    pid = tl_test_spawn(argv2, "/dev/null", "/dev/null");
    CU_ASSERT_EQUAL(tl_test_wait(pid, 20000), 1);
    finish(&s);
    CU_ASSERT(strncmp(s.request, "POST /v1/reload HTTP/1.1\r\n", 26) == 0);
    unsetenv("TAILOR_HTTP_TOKEN");

    /* --force cannot ride on a signal. */
    char *argv3[] = {(char *)tl_test_bin("tailorctl"), "reload", "--pid",
                     "12345", "--force", NULL};
    pid = tl_test_spawn(argv3, "/dev/null", "/dev/null");
    CU_ASSERT_EQUAL(tl_test_wait(pid, 20000), 1);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("httpc", NULL, NULL);
    CU_add_test(s, "POST with a bearer token, statuses, chunked bodies",
                test_post_token);
    CU_add_test(s, "bad URLs, refused, timeout, not HTTP", test_errors);
    CU_add_test(s, "tailorctl reload --url", test_tailorctl_reload);
    return tl_test_run();
}
