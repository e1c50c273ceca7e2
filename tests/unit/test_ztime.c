/* test_ztime.c — Zoho date-times: offsets, Z, rejects, formatting, and a
 * round trip across the whole calendar range we care about. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ztime.h"

#include <string.h>
#include <time.h>

static int64_t parse_ok(const char *s)
{
	int64_t t = -1;

	assert_int_equal(ztime_parse(s, &t), RC_OK);
	return t;
}

static void test_parse_offsets(void **state)
{
	/* 2025-03-01T10:30:00Z = 1740825000 */
	assert_int_equal(parse_ok("2025-03-01T10:30:00+00:00"), 1740825000);
	assert_int_equal(parse_ok("2025-03-01T10:30:00Z"), 1740825000);
	assert_int_equal(parse_ok("2025-03-01T10:30:00z"), 1740825000);
	assert_int_equal(parse_ok("2025-03-01T16:00:00+05:30"), 1740825000);
	assert_int_equal(parse_ok("2025-02-28T23:30:00-11:00"), 1740825000);
	assert_int_equal(parse_ok("2025-03-01T10:30:00+0000"), 1740825000);
	assert_int_equal(parse_ok("2025-03-01T10:30:00.123+00:00"), 1740825000);
	/* The samples of zoho-api.md. */
	assert_int_equal(parse_ok("2021-07-25T02:13:17-07:00"), 1627204397);
	assert_int_equal(parse_ok("1970-01-01T00:00:00+00:00"), 0);
	assert_int_equal(parse_ok("1969-12-31T23:59:59Z"), -1);
}

static void test_parse_calendar(void **state)
{
	assert_int_equal(parse_ok("2024-02-29T00:00:00Z"), 1709164800);
	assert_int_equal(parse_ok("2000-02-29T12:00:00Z"), 951825600);
	assert_int_equal(parse_ok("2038-01-19T03:14:08Z"), 2147483648LL);
	assert_int_equal(parse_ok("2106-02-07T06:28:16Z"), 4294967296LL);
	assert_int_equal(parse_ok("2024-12-31T23:59:59+00:00"), 1735689599);
}

static void test_parse_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"2025-03-01",
		"2025-03-01T10:30:00",        /* no offset: the zone would be a guess */
		"2025-03-01 10:30",
		"2025-13-01T10:30:00Z",
		"2025-00-01T10:30:00Z",
		"2025-02-29T10:30:00Z",       /* not a leap year */
		"1900-02-29T10:30:00Z",
		"2025-04-31T10:30:00Z",
		"2025-03-01T24:00:00Z",
		"2025-03-01T10:60:00Z",
		"2025-03-01T10:30:61Z",
		"2025-03-01T10:30:00+24:00",
		"2025-03-01T10:30:00+05:60",
		"2025-03-01T10:30:00+5:30",
		"2025-03-01T10:30:00+05:30x",
		"2025-03-01T10:30:00Zjunk",
		"2025-3-01T10:30:00Z",
		"20250301T103000Z",
		"2025-03-01T10:30:00.Z",
		" 2025-03-01T10:30:00Z",
		"abcd-ef-ghTij:kl:mnZ",
	};
	int64_t t;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ztime_parse(bad[i], &t) != RC_BADINPUT)
			fail_msg("accepted '%s'", bad[i]);
	}
	assert_int_equal(ztime_parse(NULL, &t), RC_BADINPUT);
}

static void test_format(void **state)
{
	char buf[ZTIME_LEN];

	ztime_format(1740825000, buf);
	assert_string_equal(buf, "2025-03-01T10:30:00+00:00");
	assert_int_equal(strlen(buf), ZTIME_LEN - 1);
	ztime_format(0, buf);
	assert_string_equal(buf, "1970-01-01T00:00:00+00:00");
	ztime_format(-1, buf);
	assert_string_equal(buf, "1969-12-31T23:59:59+00:00");
	ztime_format(1709164800, buf);
	assert_string_equal(buf, "2024-02-29T00:00:00+00:00");
	/* Out of the format's range: clamped, never overflowing the buffer. */
	ztime_format(INT64_MAX / 2, buf);
	assert_string_equal(buf, "9999-12-31T23:59:59+00:00");
	ztime_format(INT64_MIN / 2, buf);
	assert_string_equal(buf, "0000-01-01T00:00:00+00:00");
}

static void test_round_trip(void **state)
{
	char buf[ZTIME_LEN];
	struct tm tm;

	/* Every ~13 hours and a bit from 1950 to 2150, checked against gmtime. */
	for (int64_t t = -631152000; t < 5680281600LL; t += 46811) {
		time_t tt = (time_t)t;
		int64_t back;
		char ref[64];
		ztime_format(t, buf);
		assert_non_null(gmtime_r(&tt, &tm));
		strftime(ref, sizeof(ref), "%Y-%m-%dT%H:%M:%S+00:00", &tm);
		assert_string_equal(buf, ref);
		assert_int_equal(ztime_parse(buf, &back), RC_OK);
		assert_int_equal(back, t);
	}
}

static void test_ms_and_civil(void **state)
{
	assert_int_equal(ztime_from_ms(1718117126473LL), 1718117126);
	assert_int_equal(ztime_from_ms(0), 0);
	assert_int_equal(ztime_from_ms(999), 0);
	assert_int_equal(ztime_from_ms(-1), -1);
	assert_int_equal(ztime_from_ms(-1000), -1);
	assert_int_equal(ztime_from_ms(-1001), -2);
	assert_int_equal(ztime_from_civil(1970, 1, 1, 0, 0, 0), 0);
	assert_int_equal(ztime_from_civil(2025, 3, 1, 10, 30, 0), 1740825000);
	assert_true(ztime_now() > 1700000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_offsets), cmocka_unit_test(test_parse_calendar),
		cmocka_unit_test(test_parse_rejects), cmocka_unit_test(test_format),
		cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_ms_and_civil),
	};
	return cmocka_run_group_tests_name("ztime", tests, NULL, NULL);
}
