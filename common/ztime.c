/* ztime.c — ISO 8601 <-> epoch seconds without the C library's time zones
 * (see ztime.h). */
#include "ztime.h"

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

int64_t ztime_from_civil(int64_t year, int month, int day, int hour, int min, int sec)
{
	return days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec;
}

/* Exactly n decimal digits at *p; advances *p. */
static bool digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool expect(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

enum rc ztime_parse(const char *s, int64_t *epoch)
{
	const char *p = s;
	int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;

	*epoch = 0;
	if (!s)
		return RC_BADINPUT;
	if (!digits(&p, 4, &y) || !expect(&p, '-') || !digits(&p, 2, &mo) || !expect(&p, '-') ||
	    !digits(&p, 2, &d))
		return RC_BADINPUT;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return RC_BADINPUT;
	p++;
	if (!digits(&p, 2, &h) || !expect(&p, ':') || !digits(&p, 2, &mi) || !expect(&p, ':') ||
	    !digits(&p, 2, &se))
		return RC_BADINPUT;
	if (*p == '.') {
		/* Milliseconds (or finer): dropped, as Zoho has second precision. */
		p++;
		if (*p < '0' || *p > '9')
			return RC_BADINPUT;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		p++;
		if (!digits(&p, 2, &oh))
			return RC_BADINPUT;
		if (*p == ':')
			p++;
		if (!digits(&p, 2, &om))
			return RC_BADINPUT;
	} else {
		/* No offset: the time zone would be a guess. */
		return RC_BADINPUT;
	}
	if (*p)
		return RC_BADINPUT;
	if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 || se > 60 ||
	    oh > 23 || om > 59)
		return RC_BADINPUT;
	*epoch = ztime_from_civil(y, mo, d, h, mi, se) - sign * (oh * 3600 + om * 60);
	return RC_OK;
}

void ztime_format(int64_t epoch, char out[ZTIME_LEN])
{
	int64_t days = epoch / 86400, rem = epoch % 86400, y;
	int m, d;

	if (rem < 0) {
		rem += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	if (y < 0 || y > 9999) {
		/* Outside what the format can say; clamp rather than overflow. */
		snprintf(out, ZTIME_LEN, "%s", y < 0 ? "0000-01-01T00:00:00+00:00"
						     : "9999-12-31T23:59:59+00:00");
		return;
	}
	snprintf(out, ZTIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02d+00:00", (int)y, m, d,
		 (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
}

int64_t ztime_from_ms(int64_t ms)
{
	return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

int64_t ztime_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}
