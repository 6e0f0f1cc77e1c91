#include "testutil.h"

#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

int tl_test_run(void)
{
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned run = CU_get_number_of_tests_run();
    unsigned failed = CU_get_number_of_tests_failed();
    const char *counts = getenv("TAILOR_TEST_COUNTS");
    if (counts && *counts) {
        FILE *f = fopen(counts, "a");
        if (f) {
            fprintf(f, "%u %u\n", run - failed, failed);
            fclose(f);
        }
    }
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    return fails || failed ? 1 : 0;
}

char *tl_test_tmpdir(void)
{
    char tmpl[] = "/tmp/tailor-test-XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        abort();
    }
    return strdup(tmpl);
}

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

void tl_test_rmdir(const char *path)
{
    /* TAILOR_TEST_KEEP=1 keeps logs and data for a post-mortem. */
    const char *keep = getenv("TAILOR_TEST_KEEP");
    if (path && keep && *keep) {
        fprintf(stderr, "kept %s\n", path);
        return;
    }
    if (path) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int tl_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("free port");
        abort();
    }
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

const char *tl_test_bin(const char *name)
{
    static char buf[4096];
    const char *dir = getenv("TAILOR_BIN_DIR");
    snprintf(buf, sizeof buf, "%s/%s", dir && *dir ? dir : "daemon", name);
    return buf;
}

int tl_test_write_filef(const char *path, const char *fmt, ...)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    return fclose(f);
}

int tl_test_write_file(const char *path, const char *text)
{
    return tl_test_write_filef(path, "%s", text);
}

const char *tl_test_src(const char *rel)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s", rel);
    return buf;
}

pid_t tl_test_spawn(char *const argv[], const char *out_path,
                    const char *err_path)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (out_path) {
            int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) dup2(fd, 1), close(fd);
        }
        if (err_path) {
            int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) dup2(fd, 2), close(fd);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int tl_test_wait(pid_t pid, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -2;
        if (r < 0) return -2;
        if (waited >= timeout_ms) return -1;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
}

int tl_test_stop(pid_t pid, int sig, int timeout_ms)
{
    if (pid <= 0) return -1;
    kill(pid, sig);
    int rc = tl_test_wait(pid, timeout_ms);
    if (rc == -1) {
        kill(pid, SIGKILL);
        rc = tl_test_wait(pid, 5000);
    }
    return rc;
}

char *tl_test_read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return tl_xstrdup("");
    size_t cap = 4096, n = 0;
    char *buf = tl_xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 >= cap) buf = tl_xrealloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

int tl_test_count_in(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

int tl_test_log_count(const char *path, const char *needle)
{
    char *log = tl_test_read_all(path);
    int n = tl_test_count_in(log, needle);
    free(log);
    return n;
}

int tl_test_wait_log(const char *path, const char *needle, int seen,
                     int timeout_ms)
{
    for (int64_t end = tl_now_mono_ms() + timeout_ms; tl_now_mono_ms() < end;) {
        if (tl_test_log_count(path, needle) > seen) return 1;
        usleep(20000);
    }
    char *log = tl_test_read_all(path);
    size_t len = strlen(log);
    fprintf(stderr, "\n  %s: no new '%s' within %d ms; its end:\n%s\n", path,
            needle, timeout_ms, log + (len > 3000 ? len - 3000 : 0));
    free(log);
    return 0;
}
