/* test_formula.c — formula and rollup fields: which columns are formulas,
 * when their refresh is due (the nightly slack), and the column type of a
 * formula by its return type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "formula.h"
#include "schema.h"

#include <stdlib.h>

static void test_is_type(void **state)
{
	(void)state;
	assert_true(formula_is_type("formula"));
	assert_true(formula_is_type("rollup_summary"));
	assert_false(formula_is_type("text"));
	assert_false(formula_is_type("Formula"));
	assert_false(formula_is_type(""));
	assert_false(formula_is_type(NULL));
}

static void test_due(void **state)
{
	const int64_t t = 1765000000;

	(void)state;
	/* Off, whatever happened before. */
	assert_false(formula_due(t, 0, 0));
	assert_false(formula_due(t, t - 10 * 86400, 0));
	/* Never refreshed: due at once. */
	assert_true(formula_due(t, 0, 86400));
	/* A nightly run: not again the same night, due the next one even if
	 * cron starts it up to an hour (1/24) earlier than the last. */
	assert_false(formula_due(t + 60, t, 86400));
	assert_false(formula_due(t + 86400 - 3601, t, 86400));
	assert_true(formula_due(t + 86400 - 3600, t, 86400));
	assert_true(formula_due(t + 86400 - 5, t, 86400));
	assert_true(formula_due(t + 86400, t, 86400));
	assert_true(formula_due(t + 3 * 86400, t, 86400));
	/* Short intervals: the slack scales with them. */
	assert_false(formula_due(t + 10, t, 24));
	assert_true(formula_due(t + 23, t, 24));
	assert_true(formula_due(t + 1, t, 1));
	/* A clock that went back: not due. */
	assert_false(formula_due(t - 100, t, 86400));
}

static void test_fields(void **state)
{
	struct zcolumn cols[] = {
		{.api_name = "id", .column = "id", .data_type = "bigint", .listed = true},
		{.api_name = "Age_Days", .column = "age_days", .data_type = "formula",
		 .listed = true},
		{.api_name = "Name", .column = "name", .data_type = "text", .listed = true},
		{.api_name = "Old_Formula", .column = "old_formula", .data_type = "formula",
		 .listed = false},
		{.api_name = "Rollup_Total", .column = "rollup_total",
		 .data_type = "rollup_summary", .listed = true},
	};
	struct module_schema s = {.module = "Leads", .table = "leads", .ncols = 5, .cols = cols};
	const char **names = NULL;

	(void)state;
	size_t n = formula_fields(&s, &names);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "Age_Days");
	assert_string_equal(names[1], "Rollup_Total");
	free(names);
	s.ncols = 0;
	assert_int_equal(formula_fields(&s, &names), 0);
	free(names);
}

static void test_kind_by_return_type(void **state)
{
	(void)state;
	assert_int_equal(schema_field_kind("formula", "double"), FIELD_NUMERIC);
	assert_int_equal(schema_field_kind("formula", "currency"), FIELD_NUMERIC);
	assert_int_equal(schema_field_kind("formula", "text"), FIELD_TEXT);
	assert_int_equal(schema_field_kind("formula", "string"), FIELD_TEXT);
	assert_int_equal(schema_field_kind("formula", "boolean"), FIELD_BOOL);
	assert_int_equal(schema_field_kind("formula", "date"), FIELD_DATE);
	assert_int_equal(schema_field_kind("formula", "datetime"), FIELD_DATETIME);
	assert_int_equal(schema_field_kind("rollup_summary", "double"), FIELD_NUMERIC);
	assert_int_equal(schema_field_kind("formula", "jsonobject"), FIELD_JSON);
	assert_int_equal(schema_field_kind("formula", NULL), FIELD_JSON);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_type),
		cmocka_unit_test(test_due),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_kind_by_return_type),
	};
	return cmocka_run_group_tests_name("formula", tests, NULL, NULL);
}
