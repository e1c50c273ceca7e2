/* test_fetch.c — the rich text rule of the fetch path: a value of 500
 * characters or more (UTF-8 code points, as Zoho counts them) may be a
 * cut, so the record's rich text is asked for in full. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fetch.h"

#include <stdlib.h>
#include <string.h>

static char *repeat(const char *unit, size_t n)
{
	size_t len = strlen(unit);
	char *s = malloc(len * n + 1);

	assert_non_null(s);
	for (size_t i = 0; i < n; i++)
		memcpy(s + i * len, unit, len);
	s[len * n] = '\0';
	return s;
}

static void test_ascii(void **state)
{
	char *s499 = repeat("a", 499), *s500 = repeat("a", 500), *s501 = repeat("a", 501);

	assert_false(fetch_rich_truncated(NULL));
	assert_false(fetch_rich_truncated(""));
	assert_false(fetch_rich_truncated(s499));
	assert_true(fetch_rich_truncated(s500));
	assert_true(fetch_rich_truncated(s501));
	free(s499);
	free(s500);
	free(s501);
}

static void test_counts_characters_not_bytes(void **state)
{
	/* "é" is 2 bytes, "絵" 3, "🎉" 4: 499 of them are more than 500 bytes
	 * but fewer than 500 characters, not a cut */
	const char *units[] = {"\xc3\xa9", "\xe7\xb5\xb5", "\xf0\x9f\x8e\x89"};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		char *short_ = repeat(units[i], 499), *cut = repeat(units[i], 500);
		assert_false(fetch_rich_truncated(short_));
		assert_true(fetch_rich_truncated(cut));
		free(short_);
		free(cut);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ascii),
		cmocka_unit_test(test_counts_characters_not_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
