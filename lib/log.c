#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

tl_log_level tl_log_current = TL_LOG_INFO;

static const char *const names[] = {"error", "warn", "info", "debug"};

void tl_log_set_level(tl_log_level l) { tl_log_current = l; }

const char *tl_log_level_name(tl_log_level l)
{
    return (unsigned)l < 4 ? names[l] : "?";
}

int tl_log_level_parse(const char *s, tl_log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (tl_log_level)i;
            return 0;
        }
    return -1;
}

void tl_log_write(tl_log_level l, const char *module, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per line so concurrent writers (librdkafka's log thread)
     * do not interleave within a line. */
    fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", when, ts.tv_nsec / 1000000,
            tl_log_level_name(l), module, msg);
}
