/* test_prefilter.c — prefilter_scan: where each CSV record ends and what
 * its id and Modified_Time cells hold, by COPY's csv rules, and which
 * chunks it leaves whole for COPY to judge. (What the lookup refuses is
 * pinned by test_merge_rule against a real PostgreSQL.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "prefilter.h"

#include <stdlib.h>
#include <string.h>

struct scan {
	struct prefilter_record *recs;
	size_t cap, n;
	bool ok;
};

/* Columns: id, Modified_Time, Val (ncols 3) unless said otherwise. */
static struct scan scan3(const char *csv)
{
	struct scan s = {0};

	s.ok = prefilter_scan(csv, strlen(csv), 3, 0, 1, &s.recs, &s.cap, &s.n);
	return s;
}

static void assert_mt(const char *csv, const struct prefilter_record *r, const char *want)
{
	assert_int_equal(r->mt_len, strlen(want));
	assert_memory_equal(csv + r->mt_off, want, r->mt_len);
}

static void test_plain_records(void **state)
{
	const char *csv = "1,2025-01-01T00:00:00+00:00,a\n22,2025-01-02T00:00:00+00:00,b\n";
	struct scan s = scan3(csv);

	assert_true(s.ok);
	assert_int_equal(s.n, 2);
	assert_true(s.recs[0].has_id);
	assert_int_equal(s.recs[0].id, 1);
	assert_int_equal(s.recs[0].start, 0);
	assert_int_equal(s.recs[0].end, s.recs[1].start);
	assert_int_equal(s.recs[1].id, 22);
	assert_int_equal(s.recs[1].end, strlen(csv));
	assert_mt(csv, &s.recs[1], "2025-01-02T00:00:00+00:00");
	free(s.recs);
}

static void test_quotes_commas_and_newlines_inside_cells(void **state)
{
	const char *csv = "\"5725767100000007919\",\"2025-01-01T00:00:00+00:00\",\"a, \"\"b\"\"\nc\"\n"
			  "7,2025-01-01T00:00:00+00:00,x\"y,z\"\n";
	struct scan s = scan3(csv);

	assert_true(s.ok);
	assert_int_equal(s.n, 2);
	assert_true(s.recs[0].has_id);
	assert_int_equal(s.recs[0].id, 5725767100000007919LL);
	assert_mt(csv, &s.recs[0], "2025-01-01T00:00:00+00:00");
	/* A quote opening inside a cell quotes the comma after it (COPY's
	 * reading): still three cells. */
	assert_int_equal(s.recs[1].id, 7);
	free(s.recs);
}

static void test_crlf_and_a_last_record_without_newline(void **state)
{
	const char *csv = "1,2025-01-01T00:00:00+00:00,a\r\n2,2025-01-01T00:00:00+00:00,b";
	struct scan s = scan3(csv);

	assert_true(s.ok);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.recs[0].end, s.recs[1].start);
	assert_int_equal(s.recs[1].end, strlen(csv));
	assert_int_equal(s.recs[1].id, 2);
	free(s.recs);
}

static void test_cells_it_cannot_read_are_not_asked(void **state)
{
	const char *csv = "-1,2025-01-01T00:00:00+00:00,a\n"   /* sign */
			  "x1,2025-01-01T00:00:00+00:00,a\n"   /* not a number */
			  "99999999999999999999,2025,a\n"       /* over int64 */
			  ",2025-01-01T00:00:00+00:00,a\n"     /* empty id */
			  "5,,a\n"                             /* empty time */
			  "6,\"2025\"\"x\",a\n";              /* a quote inside */
	struct scan s = scan3(csv);

	assert_true(s.ok);
	assert_int_equal(s.n, 6);
	for (size_t i = 0; i < 4; i++)
		assert_false(s.recs[i].has_id);
	assert_true(s.recs[4].has_id);
	assert_int_equal(s.recs[4].mt_len, 0);
	assert_int_equal(s.recs[5].mt_len, 0);
	free(s.recs);
}

/* Malformed chunks go to COPY whole, to be refused with its message. */
static void test_malformed_chunks_are_left_whole(void **state)
{
	const char *bad[] = {
		"1,2025-01-01T00:00:00+00:00\n",             /* a cell short */
		"1,2025-01-01T00:00:00+00:00,a,b\n",         /* a cell over */
		"1,2025-01-01T00:00:00+00:00,\"open\n",      /* quote left open */
		"1,2025-01-01T00:00:00+00:00,a\rb\n",        /* a bare CR */
		"\n",                                       /* an empty line */
		"1,2025,a\n2,2025,b\r\n",                    /* LF, then CRLF */
		"\\.\n",                                     /* COPY's end marker */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct scan s = scan3(bad[i]);
		if (s.ok)
			fail_msg("scanned as whole records: %s", bad[i]);
		free(s.recs);
	}
}

static void test_columns_anywhere_and_an_empty_chunk(void **state)
{
	const char *csv = "a,b,2025-01-01T00:00:00+00:00,c,42\n";
	struct scan s = {0};

	assert_true(prefilter_scan(csv, strlen(csv), 5, 4, 2, &s.recs, &s.cap, &s.n));
	assert_int_equal(s.n, 1);
	assert_int_equal(s.recs[0].id, 42);
	assert_mt(csv, &s.recs[0], "2025-01-01T00:00:00+00:00");
	assert_true(prefilter_scan("", 0, 5, 4, 2, &s.recs, &s.cap, &s.n));
	assert_int_equal(s.n, 0);
	free(s.recs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_records),
		cmocka_unit_test(test_quotes_commas_and_newlines_inside_cells),
		cmocka_unit_test(test_crlf_and_a_last_record_without_newline),
		cmocka_unit_test(test_cells_it_cannot_read_are_not_asked),
		cmocka_unit_test(test_malformed_chunks_are_left_whole),
		cmocka_unit_test(test_columns_anywhere_and_an_empty_chunk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
