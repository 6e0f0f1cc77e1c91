/*
 * tz — time zones of the tz database without the C library's: hour() and
 * weekday() in expressions (expr) and quiet hours (rule) read local time
 * through this module.
 *
 * A zone is loaded once, from a TZif file (RFC 8536) under $TZDIR or else
 * /usr/share/zoneinfo (Debian package tzdata); "UTC" is built in.  The
 * file's 64-bit transition table is used, and its POSIX TZ footer rule for
 * times after the table (beyond 2037).  Converting a time is a binary
 * search in memory the zone owns: no file access, no localtime, no setenv
 * (localtime depends on the process-wide TZ).  Times outside +-8.64e15 ms
 * (about 273,000 years, the range of a JavaScript Date) have no local time.
 *
 * Ownership: tl_tz_load returns a zone owned by the caller, freed with
 * tl_tz_free; it is only read afterwards, so threads may share it.
 */
#ifndef TL_TZ_H
#define TL_TZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct tl_tz tl_tz;

/* Loads zone `name` (len bytes, not necessarily NUL-terminated; "UTC" is
 * built in) and returns it, or NULL with "unknown time zone 'X'" or "cannot
 * use time zone 'X': why" in err.  It reads a file: load once, not per
 * event. */
tl_tz *tl_tz_load(const char *name, size_t len, char *err, size_t errsz);

/* Sets *minute_of_day (0..1439) to the local time of ms (epoch ms) in z and
 * returns 0, or returns -1 for ms outside +-8.64e15; allocates nothing and
 * reads no file. */
int tl_tz_local_minutes(const tl_tz *z, int64_t ms, int *minute_of_day);

/* The same for a time as expressions hold it (a double, possibly
 * fractional, taken down to the second before it): *minute_of_day and, if
 * iso_weekday is not NULL, the local ISO weekday 1 = Monday .. 7 = Sunday.
 * -1 for NaN or ms outside +-8.64e15. */
int tl_tz_local_time(const tl_tz *z, double ms, int *minute_of_day,
                     int *iso_weekday);

void tl_tz_free(tl_tz *z);

#endif
