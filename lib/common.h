/*
 * common — error codes, the error-message convention, a bump arena, hashing
 * and number formatting shared by every module.
 *
 * Error convention (after rd_kafka_new): functions return TL_OK (0) or a
 * negative tl_err, and fill a caller-supplied `char *err, size_t errsz` with
 * one line saying what failed, where, and what to do.  `err` may be NULL.
 */
#ifndef TL_COMMON_H
#define TL_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum tl_err {
    TL_OK = 0,
    TL_ERR = -1,        /* generic failure, see the message */
    TL_ERR_CONFIG = -2, /* configuration is invalid */
    TL_ERR_DECODE = -3, /* input bytes cannot be decoded */
    TL_ERR_IO = -4,     /* a server (Redis, Kafka) or file failed */
    TL_ERR_NOMEM = -5,  /* allocation failed */
    TL_ERR_FENCED = -6, /* compare-and-set lost: another writer owns the key */
    TL_ERR_AUTH = -7,   /* a server refused our credentials or database */
    TL_ERR_GONE = -8,   /* compare-and-set lost: the key is gone altogether */
};

#define TL_ERRSZ 512

#if defined(__GNUC__)
#define TL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define TL_UNUSED __attribute__((unused))
#else
#define TL_PRINTF(a, b)
#define TL_UNUSED
#endif

/* Formats into err (if err != NULL and errsz > 0). Always returns `code`, so
 * callers can write `return tl_errf(err, errsz, TL_ERR_IO, "...")`. */
int tl_errf(char *err, size_t errsz, int code, const char *fmt, ...)
    TL_PRINTF(4, 5);

/* Invariant violated: print file:line and abort.  Not for input errors. */
#define TL_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond)) tl_assert_fail(#cond, __FILE__, __LINE__);                \
    } while (0)
_Noreturn void tl_assert_fail(const char *what, const char *file, int line);

/* Allocation that aborts on failure: every allocation in tailor is small and
 * bounded, and a daemon that cannot get 1 KiB cannot make progress anyway. */
void *tl_xmalloc(size_t n);
void *tl_xcalloc(size_t n, size_t size);
void *tl_xrealloc(void *p, size_t n);
char *tl_xstrdup(const char *s);
char *tl_xstrndup(const char *s, size_t n);

/*
 * Bump arena: many small allocations freed together by tl_arena_reset().
 * Chunks are kept across resets, so once a batch of the largest size has been
 * seen, a steady-state batch allocates nothing.  Memory returned is 8-byte
 * aligned and owned by the arena.
 */
typedef struct tl_arena_chunk tl_arena_chunk;
typedef struct tl_arena {
    tl_arena_chunk *head;    /* chunk being filled */
    tl_arena_chunk *chunks;  /* all chunks, for reset and free */
    size_t chunk_size;
} tl_arena;

void tl_arena_init(tl_arena *a, size_t chunk_size);
void *tl_arena_alloc(tl_arena *a, size_t n);
char *tl_arena_strndup(tl_arena *a, const char *s, size_t n);
void tl_arena_reset(tl_arena *a);
void tl_arena_free(tl_arena *a);

/* 64-bit FNV-1a, chainable: pass the previous result as `h`
 * (start with TL_FNV_OFFSET). Used for trigger ids and hash tables. */
#define TL_FNV_OFFSET UINT64_C(0xcbf29ce484222325)
uint64_t tl_fnv1a(uint64_t h, const void *data, size_t len);

/* Shortest decimal text that parses back to exactly `v` ("15.3", "6", "-0.5",
 * "1e+300").  NaN and infinities print as "nan", "inf", "-inf".
 * Returns the length written (excluding NUL); buf must hold 32 bytes. */
#define TL_NUMBUF 32
int tl_fmt_double(char *buf, double v);

/* Exact text for internal state, fast: tl_fmt_double's text when it is a
 * short decimal or a whole number (counts, money), otherwise a C99 hex float
 * ("0x1.5555555555555p-2"), which strtod (tl_parse_double) reads back
 * exactly.  The 17-digit decimal of a decayed value or an average costs a
 * microsecond in printf, and a flush formats thousands of them.  buf holds
 * TL_NUMBUF. */
int tl_fmt_state_double(char *buf, double v);

/* Decimal text of v without printf; returns the length (excluding NUL).
 * buf holds 21 bytes. */
int tl_fmt_i64(char *buf, int64_t v);

/* Readable decimal text for people and campaign tools: at most 15
 * significant digits, so sums of money read "50.27", not the exact
 * "50.269999999999996" (exact text is for internal state, tl_fmt_double).
 * Whole numbers below 1e15 print without exponent.  buf holds TL_NUMBUF. */
int tl_fmt_number(char *buf, double v);

/* Source text quoted in a one-line message (an expression's token, a time
 * zone's name): cut at TL_SHOW_MAX bytes with "..." appended, control
 * characters (a line break, a NUL) as '?'.  Writes into buf and returns it. */
#define TL_SHOW_MAX 40
#define TL_SHOWSZ (TL_SHOW_MAX + 4)
const char *tl_fmt_show(const char *s, size_t n, char buf[TL_SHOWSZ]);

/* Parses a whole string as a double (strtod, C locale); 0 on success. */
int tl_parse_double(const char *s, size_t len, double *out);
/* Parses a whole string as a signed 64-bit decimal integer; 0 on success. */
int tl_parse_i64(const char *s, size_t len, int64_t *out);

/* Dates, proleptic Gregorian: days from 1970-01-01 to y-m-d (m 1..12), and
 * back; the number of days in month m of year y. */
int64_t tl_days_from_civil(int64_t y, int m, int d);
void tl_civil_from_days(int64_t z, int64_t *y, int *m, int *d);
int tl_month_days(int64_t y, int m);

/* Parses a whole string as an ISO 8601 (RFC 3339) time into epoch
 * milliseconds: YYYY-MM-DDTHH:MM:SS, optionally a fraction of the second
 * (.1 to .123456789; digits after the millisecond are dropped), then Z or
 * an offset +HH:MM / -HH:MM, which is mandatory (a time without one means
 * nothing without a zone).  T and Z may be lowercase.  Years 0000..9999;
 * the date must exist (2024-02-29 does, 2023-02-29 does not); no leap
 * second (:60).  0 on success, -1 otherwise. */
int tl_parse_time(const char *s, size_t len, int64_t *ms);
/* Epoch milliseconds as UTC text, "2025-03-11T13:33:22Z", with ".123"
 * before the Z when the milliseconds are not 0; buf holds TL_TIMEBUF.
 * Returns buf. */
#define TL_TIMEBUF 40
const char *tl_fmt_time(char *buf, int64_t ms);

/* Monotonic and wall clocks in milliseconds. */
int64_t tl_now_mono_ms(void);
int64_t tl_now_wall_ms(void);

/* A growable NUL-terminated string; owns its bytes (tl_buf_free).  Start
 * from {0}. */
typedef struct tl_buf {
    char *s;
    size_t len, cap;
} tl_buf;
void tl_buf_append(tl_buf *b, const char *s, size_t n);
void tl_buf_printf(tl_buf *b, const char *fmt, ...) TL_PRINTF(2, 3);
void tl_buf_free(tl_buf *b);

/* UTF-8 (RFC 3629, strict: no overlong forms, no surrogates, nothing above
 * U+10FFFF).  tl_utf8_seq: the length of the valid sequence at s (n > 0
 * bytes left), 0 when it is not one.  tl_utf8_valid: 1 when all of
 * s[0..n) is valid.  tl_utf8_put: writes code point cp (at most U+10FFFF)
 * into b (4 bytes), returns the length. */
size_t tl_utf8_seq(const unsigned char *s, size_t n);
int tl_utf8_valid(const unsigned char *s, size_t n);
size_t tl_utf8_put(char *b, unsigned long cp);

/* The value of a hexadecimal digit (either case), -1 for anything else. */
int tl_hexval(char c);

/* Sleeps ms milliseconds (nanosleep; an interrupted sleep returns early). */
void tl_sleep_ms(int ms);

/* Reads a whole file into a malloc'd, NUL-terminated buffer (the caller
 * frees it); *len (if not NULL) gets its length.  NULL with "cannot open
 * PATH: ..." or "cannot read PATH: ..." in err. */
char *tl_read_file(const char *path, size_t *len, char *err, size_t errsz);

#endif
