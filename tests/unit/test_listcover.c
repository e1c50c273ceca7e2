/* test_listcover.c — listcover.h: which page boundaries of a listing may
 * have lost rows to a change made while it was read, and when later passes
 * have shown the listing complete. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "listcover.h"

#define MARGIN 2

/* A page of ids lo..hi stepping by step, read from t to t + 0.5. */
static void page(struct listcover *lc, double t, int64_t lo, int64_t hi, int64_t step)
{
	int64_t ids[64];
	size_t n = 0;

	for (int64_t id = lo; id <= hi && n < 64; id += step)
		ids[n++] = id;
	listcover_page(lc, t, t + 0.5, ids, n);
}

static void test_one_page_is_complete(void **state)
{
	(void)state;
	struct listcover lc = {0};
	int64_t change = 1000;

	page(&lc, 1000, 10, 50, 10);
	assert_int_equal(listcover_boundaries(&lc), 0);
	/* A change while the only page was read cannot have shifted it. */
	assert_true(listcover_end_pass(&lc, &change, 1, false, MARGIN));
	listcover_free(&lc);
}

static void test_quiet_boundary_is_complete(void **state)
{
	(void)state;
	struct listcover lc = {0};
	int64_t long_before = 900, long_after = 1100;

	page(&lc, 1000, 10, 50, 10);
	page(&lc, 1001, 60, 90, 10);
	assert_int_equal(listcover_boundaries(&lc), 1);
	assert_true(listcover_end_pass(&lc, NULL, 0, false, MARGIN));
	listcover_free(&lc);

	page(&lc, 1000, 10, 50, 10);
	page(&lc, 1001, 60, 90, 10);
	int64_t both[] = {long_before, long_after};
	assert_true(listcover_end_pass(&lc, both, 2, false, MARGIN));
	listcover_free(&lc);
}

static void test_change_between_reads_leaves_the_gap_open(void **state)
{
	(void)state;
	struct listcover lc = {0};
	/* Stamped 997, it happened before 998 on Zoho's clock: within the 2 s
	 * margin of the first read (1000), not of the second (1001). */
	int64_t change = 997;

	page(&lc, 1000, 10, 50, 10);
	page(&lc, 1001, 60, 90, 10);
	page(&lc, 1010, 100, 130, 10);
	assert_false(listcover_end_pass(&lc, &change, 1, false, MARGIN));
	assert_int_equal(lc.nopen, 1);
	assert_int_equal(lc.open[0].lo, 50);
	assert_int_equal(lc.open[0].hi, 60);
	listcover_free(&lc);
}

static void test_adjacent_ids_have_no_gap(void **state)
{
	(void)state;
	struct listcover lc = {0};

	page(&lc, 1000, 1, 5, 1);
	page(&lc, 1001, 6, 9, 1);
	assert_int_equal(listcover_boundaries(&lc), 0);
	assert_true(listcover_end_pass(&lc, NULL, 0, true, MARGIN));
	listcover_free(&lc);
}

static void test_rows_read_twice_have_no_gap(void **state)
{
	(void)state;
	struct listcover lc = {0};

	/* A row added before the offset shifts the next page right: 50 again. */
	page(&lc, 1000, 10, 50, 10);
	page(&lc, 1001, 50, 90, 10);
	assert_int_equal(listcover_boundaries(&lc), 0);
	listcover_free(&lc);
}

static void test_empty_page_opens_to_the_end(void **state)
{
	(void)state;
	struct listcover lc = {0};

	page(&lc, 1000, 10, 50, 10);
	listcover_page(&lc, 1001, 1001.5, NULL, 0);
	assert_false(listcover_end_pass(&lc, NULL, 0, true, MARGIN));
	assert_int_equal(lc.nopen, 1);
	assert_int_equal(lc.open[0].lo, 50);
	assert_int_equal(lc.open[0].hi, INT64_MAX);
	/* The next pass must read to the end to cover it. */
	page(&lc, 2000, 10, 50, 10);
	assert_false(listcover_past_open(&lc));
	page(&lc, 2001, 60, 70, 10);
	assert_false(listcover_past_open(&lc));
	listcover_page(&lc, 2002, 2002.5, NULL, 0);
	assert_true(listcover_past_open(&lc));
	assert_true(listcover_end_pass(&lc, NULL, 0, false, MARGIN));
	listcover_free(&lc);
}

static void test_second_pass_covers_and_may_stop(void **state)
{
	(void)state;
	struct listcover lc = {0};

	page(&lc, 1000, 10, 50, 10);
	page(&lc, 1001, 60, 90, 10);
	page(&lc, 1002, 100, 130, 10);
	assert_false(listcover_end_pass(&lc, NULL, 0, true, MARGIN));
	assert_int_equal(lc.nopen, 2); /* (50,60) and (90,100) */
	assert_false(listcover_past_open(&lc));
	/* Quiet this time; pages fall elsewhere (a row went meanwhile). */
	page(&lc, 2000, 20, 60, 10);
	assert_false(listcover_past_open(&lc));
	page(&lc, 2001, 70, 110, 10);
	assert_true(listcover_past_open(&lc));
	assert_true(listcover_end_pass(&lc, NULL, 0, false, MARGIN));
	assert_int_equal(lc.nopen, 0);
	listcover_free(&lc);
}

static void test_second_pass_suspect_where_the_first_was(void **state)
{
	(void)state;
	struct listcover lc = {0};
	int64_t again = 1997;

	page(&lc, 1000, 10, 50, 10);
	page(&lc, 1001, 60, 90, 10);
	page(&lc, 1002, 100, 130, 10);
	assert_false(listcover_end_pass(&lc, NULL, 0, true, MARGIN));
	/* Pass two: its boundary (40,55) overlaps (50,60) and a change
	 * stamped 1997 may have fallen between its reads (2000 less the
	 * margin); its boundary (95,100) lies inside the other open gap but
	 * was quiet (its reads began at 2001). */
	page(&lc, 2000, 10, 40, 10);
	page(&lc, 2001, 55, 95, 5);
	page(&lc, 2010, 100, 130, 10);
	assert_false(listcover_end_pass(&lc, &again, 1, false, MARGIN));
	assert_int_equal(lc.nopen, 1);
	assert_int_equal(lc.open[0].lo, 50);
	assert_int_equal(lc.open[0].hi, 55);
	/* A third, quiet pass closes it. */
	page(&lc, 3000, 10, 130, 5);
	assert_true(listcover_past_open(&lc));
	assert_true(listcover_end_pass(&lc, &again, 1, false, MARGIN));
	listcover_free(&lc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_page_is_complete),
		cmocka_unit_test(test_quiet_boundary_is_complete),
		cmocka_unit_test(test_change_between_reads_leaves_the_gap_open),
		cmocka_unit_test(test_adjacent_ids_have_no_gap),
		cmocka_unit_test(test_rows_read_twice_have_no_gap),
		cmocka_unit_test(test_empty_page_opens_to_the_end),
		cmocka_unit_test(test_second_pass_covers_and_may_stop),
		cmocka_unit_test(test_second_pass_suspect_where_the_first_was),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
