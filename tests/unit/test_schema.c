/* test_schema.c — the pure parts of schema.c: data type → column kind, and
 * the type-change table (which conversions happen in place, issue 16). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "schema.h"

static void test_kinds(void **state)
{
	assert_int_equal(schema_field_kind("text", "string"), FIELD_TEXT);
	assert_int_equal(schema_field_kind("integer", "integer"), FIELD_INT);
	assert_int_equal(schema_field_kind("double", "double"), FIELD_NUMERIC);
	assert_int_equal(schema_field_kind("multiselectpicklist", "jsonarray"), FIELD_MULTI);
	assert_int_equal(schema_field_kind("text", "jsonarray"), FIELD_MULTI);
	assert_int_equal(schema_field_kind("ownerlookup", "jsonobject"), FIELD_LOOKUP);
	assert_int_equal(schema_field_kind("formula", "double"), FIELD_NUMERIC);
	/* a data type we do not know: jsonb (schema.c warns) */
	assert_int_equal(schema_field_kind("weird_widget", "string"), FIELD_JSON);
	assert_int_equal(schema_field_kind(NULL, NULL), FIELD_JSON);
}

static void test_type_change(void **state)
{
	static const struct {
		const char *from, *to;
		enum schema_retype how;
	} cases[] = {
		/* integer ↔ bigint, picklist → text …: one PostgreSQL type */
		{"bigint", "bigint", SCHEMA_RETYPE_SAME},
		{"text", "text", SCHEMA_RETYPE_SAME},
		/* every old value has one exact image in the new type */
		{"bigint", "numeric", SCHEMA_RETYPE_INPLACE},
		{"bigint", "text", SCHEMA_RETYPE_INPLACE},
		{"numeric", "text", SCHEMA_RETYPE_INPLACE},
		{"boolean", "text", SCHEMA_RETYPE_INPLACE},
		{"date", "text", SCHEMA_RETYPE_INPLACE},
		{"timestamptz", "text", SCHEMA_RETYPE_INPLACE},
		{"date", "timestamptz", SCHEMA_RETYPE_INPLACE},
		{"text", "jsonb", SCHEMA_RETYPE_INPLACE},
		{"text[]", "jsonb", SCHEMA_RETYPE_INPLACE},
		/* lossy, or values that may not convert: a new column beside */
		{"numeric", "bigint", SCHEMA_RETYPE_BESIDE},
		{"text", "numeric", SCHEMA_RETYPE_BESIDE},
		{"text", "bigint", SCHEMA_RETYPE_BESIDE},
		{"text", "text[]", SCHEMA_RETYPE_BESIDE},
		{"text[]", "text", SCHEMA_RETYPE_BESIDE},
		{"text", "boolean", SCHEMA_RETYPE_BESIDE},
		{"timestamptz", "date", SCHEMA_RETYPE_BESIDE},
		{"jsonb", "text", SCHEMA_RETYPE_BESIDE},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum schema_retype got = schema_type_change(cases[i].from, cases[i].to);
		if (got != cases[i].how)
			fail_msg("%s -> %s: got %d, want %d", cases[i].from, cases[i].to, (int)got,
				 (int)cases[i].how);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_type_change),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
