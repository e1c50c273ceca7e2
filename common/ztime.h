/* ztime.h — Zoho's date-times (ISO 8601 with an offset) <-> epoch seconds.
 *
 * A leaf: libc only. Zoho writes "YYYY-MM-DDThh:mm:ss±hh:mm" in the API
 * user's time zone (sometimes "Z"); we keep UTC epoch seconds everywhere and
 * write "+00:00" without milliseconds, which Zoho's criteria accept.
 * Notification server_time is epoch milliseconds. */
#ifndef ZCRM_ZTIME_H
#define ZCRM_ZTIME_H

#include "compiler.h"
#include "rc.h"

#include <stdint.h>

/* "2025-03-01T10:30:00+00:00" plus the NUL. */
#define ZTIME_LEN 26

/* Parse "YYYY-MM-DDThh:mm:ss" followed by "Z" or "±hh:mm" (also "±hhmm");
 * fractional seconds are accepted and dropped. Returns RC_BADINPUT for
 * anything else (no offset, out-of-range fields, trailing text). */
enum rc ztime_parse(const char *s, int64_t *epoch) ZCRM_MUSTCHECK;
/* Write epoch as "YYYY-MM-DDThh:mm:ss+00:00" into out. */
void ztime_format(int64_t epoch, char out[ZTIME_LEN]);
/* Epoch seconds of a date in the proleptic Gregorian calendar, UTC. */
int64_t ztime_from_civil(int64_t year, int month, int day, int hour, int min, int sec);
/* Epoch milliseconds (server_time) to seconds, rounding down. */
int64_t ztime_from_ms(int64_t ms);
/* Wall-clock now, epoch seconds. */
int64_t ztime_now(void);

#endif
