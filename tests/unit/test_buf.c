/* test_buf.c — buf.h: growth, formatting, CSV cells, ownership. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"

#include <stdlib.h>
#include <string.h>

static void test_empty(void **state)
{
	(void)state;
	struct buf b = {0};
	assert_string_equal(buf_str(&b), "");
	assert_int_equal(b.len, 0);
	char *s = buf_steal(&b);
	assert_string_equal(s, "");
	free(s);
	buf_free(&b);
}

static void test_grows_and_formats(void **state)
{
	(void)state;
	struct buf b = {0};
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%s%d", i ? "," : "{", i);
	buf_addc(&b, '}');
	assert_int_equal(b.len, strlen(b.s));
	assert_memory_equal(b.s, "{0,1,2,", 7);
	assert_string_equal(b.s + b.len - 5, ",999}");
	/* one long format, bigger than the room left */
	char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_reset(&b);
	buf_printf(&b, "<%s>", big);
	assert_int_equal(b.len, sizeof(big) + 1);
	assert_int_equal(b.s[b.len], '\0');
	assert_int_equal(b.s[b.len - 1], '>');
	buf_adds(&b, "!");
	buf_add(&b, "ab\0c", 4);
	assert_int_equal(b.len, sizeof(big) + 6);
	char *s = buf_steal(&b);
	assert_null(b.s);
	assert_int_equal(b.len, 0);
	free(s);
	buf_free(&b);
}

static void test_csv_cells(void **state)
{
	(void)state;
	struct buf b = {0};
	const char *cells[] = {"plain", "", NULL, "a,b", "say \"hi\"", "two\nlines", "cr\r"};
	for (size_t i = 0; i < sizeof(cells) / sizeof(*cells); i++) {
		if (i)
			buf_addc(&b, ',');
		buf_csv_cell(&b, cells[i], cells[i] ? strlen(cells[i]) : 0);
	}
	assert_string_equal(buf_str(&b),
			    "plain,\"\",,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\r\"");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_grows_and_formats),
		cmocka_unit_test(test_csv_cells),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
