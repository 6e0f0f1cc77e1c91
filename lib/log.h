/*
 * log — leveled logging to stderr.  The level is checked before any
 * formatting, so disabled levels cost one comparison (hot paths may keep
 * debug lines).  Text lines look like
 *   2026-11-22T15:04:05.123Z info  [pipeline] assigned 4 partitions
 * and JSON lines (log.format: json), one object per line, like
 *   {"ts":"2026-11-22T15:04:05.123Z","level":"info","module":"pipeline",
 *    "msg":"assigned 4 partitions"}
 * with the message escaped as a JSON string (control characters as \uXXXX,
 * invalid UTF-8 bytes as U+FFFD), so a log shipper can parse every line.
 * In text lines control characters (C0 and DEL) are escaped too, as \n,
 * \r, \t or \xNN: a logged value (a customer id) holding a newline cannot
 * forge a line of its own.
 *
 * Thread-safe: the level and the format are atomics (a reload changes them
 * while librdkafka's, the HTTP and the flusher threads log; relaxed order,
 * a line logged just after a change may still use the old setting), and
 * writes are single fwrite calls, so concurrent writers do not interleave
 * within a line.
 *
 * Policy: customer ids are logged at debug only (they identify people);
 * secrets (passwords, tokens) are never logged at any level.
 */
#ifndef TL_LOG_H
#define TL_LOG_H

#include <stdatomic.h>
#include <stddef.h>

#include "common.h"

typedef enum tl_log_level {
    TL_LOG_ERROR = 0,
    TL_LOG_WARN,
    TL_LOG_INFO,
    TL_LOG_DEBUG
} tl_log_level;

typedef enum tl_log_format { TL_LOG_TEXT = 0, TL_LOG_JSON } tl_log_format;

extern _Atomic(tl_log_level) tl_log_current;

void tl_log_set_level(tl_log_level l);
/* "error", "warn", "info", "debug" */
const char *tl_log_level_name(tl_log_level l);
int tl_log_level_parse(const char *s, tl_log_level *out);

void tl_log_set_format(tl_log_format f);
/* "text", "json"; 0 or -1 */
int tl_log_format_parse(const char *s, tl_log_format *out);
const char *tl_log_format_name(tl_log_format f);

/* One log line (no trailing newline needed) into buf, NUL-terminated and
 * truncated to size; returns the length it needed (like snprintf).  `when`
 * is the ISO 8601 time.  What tl_log_write prints; exposed for tests. */
size_t tl_log_format_line(char *buf, size_t size, tl_log_format f,
                          const char *when, tl_log_level l,
                          const char *module, const char *msg);

void tl_log_write(tl_log_level l, const char *module, const char *fmt, ...)
    TL_PRINTF(3, 4);

#define TL_LOG(level, module, ...)                                             \
    do {                                                                       \
        if ((level) <= atomic_load_explicit(&tl_log_current,                \
                                            memory_order_relaxed))             \
            tl_log_write(level, module, __VA_ARGS__);                          \
    } while (0)
#define tl_error(mod, ...) TL_LOG(TL_LOG_ERROR, mod, __VA_ARGS__)
#define tl_warn(mod, ...) TL_LOG(TL_LOG_WARN, mod, __VA_ARGS__)
#define tl_info(mod, ...) TL_LOG(TL_LOG_INFO, mod, __VA_ARGS__)
#define tl_debug(mod, ...) TL_LOG(TL_LOG_DEBUG, mod, __VA_ARGS__)

#endif
