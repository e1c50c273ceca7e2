/* test_db_literals.c — the array parameter literals db.c builds for
 * PostgreSQL (bigint[] of ids, text[] of bodies): empty, one, many, and
 * text with the characters array syntax gives a meaning to. PostgreSQL's
 * own reading of them is covered by the webhook's integration tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "db.h"

#include <stdlib.h>

static void test_int64_array(void **state)
{
	(void)state;
	int64_t ids[] = {1, -2, INT64_MAX};
	char *s = db_int64_array(ids, 0);
	assert_string_equal(s, "{}");
	free(s);
	s = db_int64_array(ids, 3);
	assert_string_equal(s, "{1,-2,9223372036854775807}");
	free(s);
}

static void test_text_array_quotes_every_element(void **state)
{
	(void)state;
	const char *items[] = {"plain", "NULL", "", "{a,b}", "say \"hi\"", "back\\slash"};
	char *s = db_text_array(items, NULL, 0);
	assert_string_equal(s, "{}");
	free(s);
	s = db_text_array(items, NULL, 6);
	assert_string_equal(s, "{\"plain\",\"NULL\",\"\",\"{a,b}\",\"say \\\"hi\\\"\","
			       "\"back\\\\slash\"}");
	free(s);
}

static void test_text_array_takes_lengths(void **state)
{
	(void)state;
	/* Bodies are not NUL-terminated where they end: only len counts. */
	const char *items[] = {"{\"a\":1}xxx", "\"\"yyy"};
	size_t lens[] = {7, 2};
	char *s = db_text_array(items, lens, 2);
	assert_string_equal(s, "{\"{\\\"a\\\":1}\",\"\\\"\\\"\"}");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_int64_array),
		cmocka_unit_test(test_text_array_quotes_every_element),
		cmocka_unit_test(test_text_array_takes_lengths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
