#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

_Atomic(tl_log_level) tl_log_current = TL_LOG_INFO;
static _Atomic(tl_log_format) log_format = TL_LOG_TEXT;

static const char *const names[] = {"error", "warn", "info", "debug"};
static const char *const formats[] = {"text", "json"};

void tl_log_set_level(tl_log_level l)
{
    atomic_store_explicit(&tl_log_current, l, memory_order_relaxed);
}

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

void tl_log_set_format(tl_log_format f)
{
    atomic_store_explicit(&log_format, f, memory_order_relaxed);
}

const char *tl_log_format_name(tl_log_format f)
{
    return (unsigned)f < 2 ? formats[f] : "?";
}

int tl_log_format_parse(const char *s, tl_log_format *out)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(s, formats[i]) == 0) {
            *out = (tl_log_format)i;
            return 0;
        }
    return -1;
}

typedef struct out {
    char *buf;
    size_t size, len;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->len < o->size) {
        size_t room = o->size - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void puts_(out *o, const char *s) { put(o, s, strlen(s)); }

/* s as the body of a JSON string: what a JSON parser must accept whatever
 * the message holds (a topic name, a broker's error text). */
static void put_json_str(out *o, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned char ch = p[i];
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            put(o, esc, 2);
            i++;
        } else if (ch == '\n') {
            puts_(o, "\\n"), i++;
        } else if (ch == '\t') {
            puts_(o, "\\t"), i++;
        } else if (ch < 0x20 || ch == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            puts_(o, esc);
            i++;
        } else {
            size_t k = tl_utf8_seq(p + i, n - i);
            if (k) {
                put(o, s + i, k);
                i += k;
            } else {
                puts_(o, "\\ufffd");
                i++;
            }
        }
    }
}

/* s with its control characters escaped, so that a text line stays one
 * line whatever a logged value holds (a customer id is the sender's). */
static void put_text_str(out *o, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, plain = 0; /* plain: where the unescaped run began */
    for (; p[i]; i++) {
        if (p[i] >= 0x20 && p[i] != 0x7f) continue;
        put(o, s + plain, i - plain);
        plain = i + 1;
        char esc[8];
        if (p[i] == '\n')
            puts_(o, "\\n");
        else if (p[i] == '\r')
            puts_(o, "\\r");
        else if (p[i] == '\t')
            puts_(o, "\\t");
        else {
            snprintf(esc, sizeof esc, "\\x%02x", p[i]);
            puts_(o, esc);
        }
    }
    put(o, s + plain, i - plain);
}

size_t tl_log_format_line(char *buf, size_t size, tl_log_format f,
                          const char *when, tl_log_level l,
                          const char *module, const char *msg)
{
    out o = {buf, size ? size - 1 : 0, 0};
    if (f == TL_LOG_JSON) {
        puts_(&o, "{\"ts\":\"");
        puts_(&o, when);
        puts_(&o, "\",\"level\":\"");
        puts_(&o, tl_log_level_name(l));
        puts_(&o, "\",\"module\":\"");
        put_json_str(&o, module);
        puts_(&o, "\",\"msg\":\"");
        put_json_str(&o, msg);
        puts_(&o, "\"}");
    } else {
        char head[96];
        snprintf(head, sizeof head, "%s %-5s [", when, tl_log_level_name(l));
        puts_(&o, head);
        put_text_str(&o, module);
        puts_(&o, "] ");
        put_text_str(&o, msg);
    }
    if (size) buf[o.len < size - 1 ? o.len : size - 1] = '\0';
    return o.len;
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
    char when[64], sec[32];
    strftime(sec, sizeof sec, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when, sizeof when, "%s.%03dZ", sec, (int)(ts.tv_nsec / 1000000));
    /* Escaping can make a JSON line up to six times the message (a text
     * line four); a line cut short would not parse, so the buffer holds the
     * worst case. */
    char line[6 * sizeof msg + 256];
    tl_log_format f = atomic_load_explicit(&log_format, memory_order_relaxed);
    size_t n = tl_log_format_line(line, sizeof line - 1, f, when, l, module,
                                  msg);
    if (n > sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    /* One write per line so concurrent writers do not interleave. */
    fwrite(line, 1, n, stderr);
    fflush(stderr);
}
