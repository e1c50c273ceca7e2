/* test_ctcmp.c — the constant-time comparison the webhook uses for the
 * notification token: equal, every kind of unequal, NULL, and that the
 * time taken does not depend on where a guess goes wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ctcmp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void test_equal_and_unequal(void **state)
{
	static const char token[] = "test-token-0123456789";
	static const struct {
		const char *given;
		bool equal;
	} cases[] = {
		{"test-token-0123456789", true},
		{"test-token-012345678", false},   /* a prefix */
		{"test-token-01234567890", false}, /* longer */
		{"Test-token-0123456789", false},  /* first byte */
		{"test-token-0123456788", false},  /* last byte */
		{"", false},
		{"test-token-0123456789\n", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (ct_str_equal(cases[i].given, token) != cases[i].equal)
			fail_msg("case %zu '%s': expected %s", i, cases[i].given,
				 cases[i].equal ? "equal" : "unequal");
	}
	assert_false(ct_str_equal(NULL, token));
	assert_false(ct_str_equal(NULL, ""));
	assert_true(ct_str_equal("", ""));
	assert_false(ct_str_equal("x", ""));
	/* Bytes above 0x7f compare as bytes. */
	assert_true(ct_str_equal("\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9"));
	assert_false(ct_str_equal("\xc3\xa9t\xc3\xa8", "\xc3\xa9t\xc3\xa9"));
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Many comparisons of guess with expected, in seconds. */
static double run_time(const char *guess, const char *expected)
{
	volatile int sink = 0;
	double t0 = now();

	for (int i = 0; i < 5000; i++)
		sink += ct_str_equal(guess, expected);
	(void)sink;
	return now() - t0;
}

/* A guess wrong in its first byte and one wrong only in its last take the
 * same time. With an early exit the second would take hundreds of times
 * longer; the bound is generous because the test machine may be busy (the
 * rounds alternate and the best of each is kept, to cancel out load). */
static void test_time_independent_of_mismatch_position(void **state)
{
	size_t n = 4096;
	char *expected = malloc(n + 1), *first = malloc(n + 1), *last = malloc(n + 1);
	double t_first = 1e9, t_last = 1e9;

	memset(expected, 'a', n);
	expected[n] = '\0';
	memcpy(first, expected, n + 1);
	memcpy(last, expected, n + 1);
	first[0] = 'b';
	last[n - 1] = 'b';
	for (int round = 0; round < 40; round++) {
		double a = run_time(first, expected);
		double b = run_time(last, expected);
		t_first = a < t_first ? a : t_first;
		t_last = b < t_last ? b : t_last;
	}
	double ratio = t_first > t_last ? t_first / t_last : t_last / t_first;
	printf("# first-byte mismatch %.3f ms, last-byte mismatch %.3f ms, ratio %.2f\n",
	       t_first * 1e3, t_last * 1e3, ratio);
	assert_true(ratio < 10.0);
	free(expected);
	free(first);
	free(last);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_equal_and_unequal),
		cmocka_unit_test(test_time_independent_of_mismatch_position),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
