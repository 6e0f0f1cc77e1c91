/*
 * log — leveled logging to stderr.  The level is checked before any
 * formatting, so disabled levels cost one comparison (hot paths may keep
 * debug lines).  Text lines look like
 *   2026-11-22T15:04:05.123Z info  [pipeline] assigned 4 partitions
 * Not thread-safe for level changes; writes are single fprintf calls.
 */
#ifndef TL_LOG_H
#define TL_LOG_H

#include "common.h"

typedef enum tl_log_level {
    TL_LOG_ERROR = 0,
    TL_LOG_WARN,
    TL_LOG_INFO,
    TL_LOG_DEBUG
} tl_log_level;

extern tl_log_level tl_log_current;

void tl_log_set_level(tl_log_level l);
/* "error", "warn", "info", "debug" */
const char *tl_log_level_name(tl_log_level l);
int tl_log_level_parse(const char *s, tl_log_level *out);

void tl_log_write(tl_log_level l, const char *module, const char *fmt, ...)
    TL_PRINTF(3, 4);

#define TL_LOG(level, module, ...)                                             \
    do {                                                                       \
        if ((level) <= tl_log_current) tl_log_write(level, module, __VA_ARGS__); \
    } while (0)
#define tl_error(mod, ...) TL_LOG(TL_LOG_ERROR, mod, __VA_ARGS__)
#define tl_warn(mod, ...) TL_LOG(TL_LOG_WARN, mod, __VA_ARGS__)
#define tl_info(mod, ...) TL_LOG(TL_LOG_INFO, mod, __VA_ARGS__)
#define tl_debug(mod, ...) TL_LOG(TL_LOG_DEBUG, mod, __VA_ARGS__)

#endif
