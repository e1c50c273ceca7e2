/* test_schema.c — the pure parts of schema.c: data type → column kind and
 * PostgreSQL type, the type-change table (which conversions happen in
 * place, issue 16), the one cast map (kind → SQL, plain and safe), the
 * text of a Records-API JSON value per kind; and, against a real
 * PostgreSQL (ZCRM_TEST_CONNINFO), what those casts give for each kind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "db.h"
#include "json.h"
#include "schema.h"
#include "testdb.h"

#include <json-c/json.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_SCHEMA "zcrm_unit_schema"

static const char *const kind_names[] = {
	[FIELD_TEXT] = "text",	   [FIELD_INT] = "int",	       [FIELD_NUMERIC] = "numeric",
	[FIELD_BOOL] = "bool",	   [FIELD_DATE] = "date",      [FIELD_DATETIME] = "datetime",
	[FIELD_MULTI] = "multi",   [FIELD_LOOKUP] = "lookup",  [FIELD_IDS] = "ids",
	[FIELD_JSON] = "json",
};

static void test_kinds(void **state)
{
	(void)state;
	static const struct {
		const char *data_type, *json_type;
		enum field_kind kind;
	} cases[] = {
		{"text", "string", FIELD_TEXT},
		{"email", "string", FIELD_TEXT},
		{"phone", "string", FIELD_TEXT},
		{"website", "string", FIELD_TEXT},
		{"picklist", "string", FIELD_TEXT},
		{"textarea", "string", FIELD_TEXT},
		{"autonumber", "string", FIELD_TEXT},
		{"profileimage", "string", FIELD_TEXT},
		{"integer", "integer", FIELD_INT},
		{"bigint", "string", FIELD_INT},
		{"double", "double", FIELD_NUMERIC},
		{"currency", "double", FIELD_NUMERIC},
		{"percent", "double", FIELD_NUMERIC},
		{"decimal", "double", FIELD_NUMERIC},
		{"boolean", "boolean", FIELD_BOOL},
		{"date", "string", FIELD_DATE},
		{"datetime", "string", FIELD_DATETIME},
		{"multiselectpicklist", "jsonarray", FIELD_MULTI},
		{"lookup", "jsonobject", FIELD_LOOKUP},
		{"ownerlookup", "jsonobject", FIELD_LOOKUP},
		{"userlookup", "jsonobject", FIELD_LOOKUP},
		{"layout", "jsonobject", FIELD_LOOKUP},
		{"multiselectlookup", "jsonarray", FIELD_IDS},
		{"multiuserlookup", "jsonarray", FIELD_IDS},
		/* the json_type does not matter for these */
		{"integer", NULL, FIELD_INT},
		{"lookup", "string", FIELD_LOOKUP},
		{"email", "jsonarray", FIELD_TEXT},
		/* Tag: text, but a JSON array of {name, …}: names, as multi-select */
		{"text", "jsonarray", FIELD_MULTI},
		/* formula and rollup: the result's type (return_type or json_type) */
		{"formula", "double", FIELD_NUMERIC},
		{"formula", "currency", FIELD_NUMERIC},
		{"formula", "percent", FIELD_NUMERIC},
		{"formula", "decimal", FIELD_NUMERIC},
		{"formula", "integer", FIELD_INT},
		{"formula", "boolean", FIELD_BOOL},
		{"formula", "string", FIELD_TEXT},
		{"formula", "text", FIELD_TEXT},
		{"formula", "date", FIELD_DATE},
		{"formula", "datetime", FIELD_DATETIME},
		{"rollup_summary", "double", FIELD_NUMERIC},
		{"rollup_summary", "currency", FIELD_NUMERIC},
		{"rollup_summary", "integer", FIELD_INT},
		{"formula", "jsonobject", FIELD_JSON},
		{"formula", NULL, FIELD_JSON},
		{"rollup_summary", NULL, FIELD_JSON},
		/* kept as jsonb on purpose (Bulk Read exports none of them) */
		{"fileupload", "jsonarray", FIELD_JSON},
		{"imageupload", "jsonarray", FIELD_JSON},
		{"subform", "jsonarray", FIELD_JSON},
		{"multi_module_lookup", "jsonobject", FIELD_JSON},
		{"event_reminder", "string", FIELD_JSON},
		/* a data type we do not know: jsonb (schema.c warns) */
		{"weird_widget", "string", FIELD_JSON},
		{"Text", "string", FIELD_JSON},
		{"", "string", FIELD_JSON},
		{NULL, "string", FIELD_JSON},
		{NULL, NULL, FIELD_JSON},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		enum field_kind got = schema_field_kind(cases[i].data_type, cases[i].json_type);
		if (got != cases[i].kind)
			fail_msg("%s/%s: got %s, want %s",
				 cases[i].data_type ? cases[i].data_type : "NULL",
				 cases[i].json_type ? cases[i].json_type : "NULL", kind_names[got],
				 kind_names[cases[i].kind]);
	}
}

/* The column type of each kind, and back from it (schema_load). */
static void test_pg_types(void **state)
{
	(void)state;
	static const struct {
		enum field_kind kind;
		const char *pg_type, *data_type;
	} cases[] = {
		{FIELD_TEXT, "text", "text"},	       {FIELD_INT, "bigint", "integer"},
		{FIELD_NUMERIC, "numeric", "double"},  {FIELD_BOOL, "boolean", "boolean"},
		{FIELD_DATE, "date", "date"},	       {FIELD_DATETIME, "timestamptz", "datetime"},
		{FIELD_MULTI, "text[]", "multiselectpicklist"},
		{FIELD_LOOKUP, "bigint", "lookup"},    {FIELD_IDS, "bigint[]", "multiselectlookup"},
		{FIELD_JSON, "jsonb", "fileupload"},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		assert_string_equal(schema_kind_pg_type(cases[i].kind), cases[i].pg_type);
		assert_int_equal(schema_pg_type_kind(cases[i].pg_type, cases[i].data_type),
				 cases[i].kind);
	}
	/* bigint is a lookup only for a lookup's data type */
	assert_int_equal(schema_pg_type_kind("bigint", "ownerlookup"), FIELD_LOOKUP);
	assert_int_equal(schema_pg_type_kind("bigint", "formula"), FIELD_INT);
	/* a column type we never create reads as text */
	assert_int_equal(schema_pg_type_kind("xml", "text"), FIELD_TEXT);
}

static void test_type_change(void **state)
{
	(void)state;
	static const struct {
		const char *from, *to;
		enum schema_retype how;
	} cases[] = {
		/* integer ↔ bigint, picklist → text …: one PostgreSQL type */
		{"bigint", "bigint", SCHEMA_RETYPE_SAME},
		{"text", "text", SCHEMA_RETYPE_SAME},
		{"jsonb", "jsonb", SCHEMA_RETYPE_SAME},
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
		{"bigint", "jsonb", SCHEMA_RETYPE_INPLACE},
		{"numeric", "jsonb", SCHEMA_RETYPE_INPLACE},
		{"boolean", "jsonb", SCHEMA_RETYPE_INPLACE},
		/* lossy, or values that may not convert: a new column beside */
		{"numeric", "bigint", SCHEMA_RETYPE_BESIDE},
		{"text", "numeric", SCHEMA_RETYPE_BESIDE},
		{"text", "bigint", SCHEMA_RETYPE_BESIDE},
		{"text", "text[]", SCHEMA_RETYPE_BESIDE},
		{"text[]", "text", SCHEMA_RETYPE_BESIDE},
		{"text", "boolean", SCHEMA_RETYPE_BESIDE},
		{"timestamptz", "date", SCHEMA_RETYPE_BESIDE},
		{"jsonb", "text", SCHEMA_RETYPE_BESIDE},
		{"date", "jsonb", SCHEMA_RETYPE_BESIDE},
		{"timestamptz", "jsonb", SCHEMA_RETYPE_BESIDE},
		{"bigint[]", "jsonb", SCHEMA_RETYPE_BESIDE},
		{"text[]", "bigint[]", SCHEMA_RETYPE_BESIDE},
		{"bigint", "boolean", SCHEMA_RETYPE_BESIDE},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		enum schema_retype got = schema_type_change(cases[i].from, cases[i].to);
		if (got != cases[i].how)
			fail_msg("%s -> %s: got %d, want %d", cases[i].from, cases[i].to, (int)got,
				 (int)cases[i].how);
	}
}

/* ---- the cast map: its SQL text ---- */

static const struct {
	enum field_kind kind;
	const char *cast, *safe;
} cast_cases[] = {
	{FIELD_TEXT, "NULLIF(s.\"Last_Name\", '')", "NULLIF(s.\"Last_Name\", '')"},
	{FIELD_INT, "NULLIF(s.\"Last_Name\", '')::bigint",
	 "try_cast(NULLIF(s.\"Last_Name\", ''), NULL::bigint)"},
	{FIELD_NUMERIC, "NULLIF(s.\"Last_Name\", '')::numeric",
	 "try_cast(NULLIF(s.\"Last_Name\", ''), NULL::numeric)"},
	{FIELD_BOOL, "NULLIF(s.\"Last_Name\", '')::boolean",
	 "try_cast(NULLIF(s.\"Last_Name\", ''), NULL::boolean)"},
	{FIELD_DATE, "NULLIF(s.\"Last_Name\", '')::date",
	 "try_cast(NULLIF(s.\"Last_Name\", ''), NULL::date)"},
	{FIELD_DATETIME, "NULLIF(s.\"Last_Name\", '')::timestamptz",
	 "try_cast(NULLIF(s.\"Last_Name\", ''), NULL::timestamptz)"},
	{FIELD_MULTI, "string_to_array(NULLIF(s.\"Last_Name\", ''), ';')",
	 "string_to_array(NULLIF(s.\"Last_Name\", ''), ';')"},
	{FIELD_LOOKUP, "NULLIF(s.\"Last_Name\", '')::bigint",
	 "try_cast(NULLIF(s.\"Last_Name\", ''), NULL::bigint)"},
	{FIELD_IDS, "NULLIF(s.\"Last_Name\", '')::bigint[]",
	 "try_cast(NULLIF(s.\"Last_Name\", ''), NULL::bigint[])"},
	{FIELD_JSON, "pg_temp.zcrm_to_jsonb_(NULLIF(s.\"Last_Name\", ''))",
	 "coalesce(try_cast(NULLIF(s.\"Last_Name\", ''), NULL::jsonb),"
	 " to_jsonb(NULLIF(s.\"Last_Name\", '')))"},
};

static void test_cast_sql(void **state)
{
	(void)state;
	bool seen[FIELD_JSON + 1] = {false};

	for (size_t i = 0; i < ARRAY_LEN(cast_cases); i++) {
		char *cast = schema_cast_expr(cast_cases[i].kind, "s.\"Last_Name\"");
		char *safe = schema_safe_cast_expr(cast_cases[i].kind, "s.\"Last_Name\"");
		if (strcmp(cast, cast_cases[i].cast))
			fail_msg("%s: cast %s, want %s", kind_names[cast_cases[i].kind], cast,
				 cast_cases[i].cast);
		if (strcmp(safe, cast_cases[i].safe))
			fail_msg("%s: safe cast %s, want %s", kind_names[cast_cases[i].kind], safe,
				 cast_cases[i].safe);
		seen[cast_cases[i].kind] = true;
		free(cast);
		free(safe);
	}
	for (int k = 0; k <= FIELD_JSON; k++)
		if (!seen[k])
			fail_msg("kind %s has no case", kind_names[k]);
	/* expr is used as given: a parameter */
	char *cast = schema_cast_expr(FIELD_INT, "$3");
	assert_string_equal(cast, "NULLIF($3, '')::bigint");
	free(cast);
}

/* ---- the text of a Records-API JSON value ---- */

static void test_json_cell(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		enum field_kind kind;
		const char *cell; /* NULL: no cell (SQL NULL) */
	} cases[] = {
		/* JSON null: no cell, whatever the kind */
		{"null", FIELD_TEXT, NULL},
		{"null", FIELD_INT, NULL},
		{"null", FIELD_BOOL, NULL},
		{"null", FIELD_MULTI, NULL},
		{"null", FIELD_LOOKUP, NULL},
		{"null", FIELD_IDS, NULL},
		{"null", FIELD_JSON, NULL},
		/* strings as they are; "" is no cell (CSV writes an empty one) */
		{"\"Smith\"", FIELD_TEXT, "Smith"},
		{"\"\"", FIELD_TEXT, NULL},
		{"\"a \\\"quoted\\\" é/b\"", FIELD_TEXT, "a \"quoted\" é/b"},
		{"\"2024-01-02\"", FIELD_DATE, "2024-01-02"},
		{"\"2024-01-02T03:04:05+05:30\"", FIELD_DATETIME, "2024-01-02T03:04:05+05:30"},
		{"\"5725767000000411001\"", FIELD_INT, "5725767000000411001"},
		{"\"12.50\"", FIELD_NUMERIC, "12.50"},
		{"\"true\"", FIELD_BOOL, "true"},
		/* numbers keep the text Zoho sent */
		{"42", FIELD_INT, "42"},
		{"5725767000000411001", FIELD_INT, "5725767000000411001"},
		{"12.50", FIELD_NUMERIC, "12.50"},
		{"0.1", FIELD_NUMERIC, "0.1"},
		{"1e3", FIELD_NUMERIC, "1e3"},
		{"-7", FIELD_NUMERIC, "-7"},
		{"42", FIELD_TEXT, "42"},
		/* booleans */
		{"true", FIELD_BOOL, "true"},
		{"false", FIELD_BOOL, "false"},
		{"true", FIELD_TEXT, "true"},
		/* lookups {name, id}: the id */
		{"{\"name\": \"Acme\", \"id\": \"5725767000000411001\"}", FIELD_LOOKUP,
		 "5725767000000411001"},
		{"{\"name\": \"Acme\", \"id\": 17}", FIELD_LOOKUP, "17"},
		{"{\"name\": \"Acme\"}", FIELD_LOOKUP, NULL},
		{"{\"name\": \"Acme\", \"id\": null}", FIELD_LOOKUP, NULL},
		{"\"5725767000000411001\"", FIELD_LOOKUP, "5725767000000411001"},
		{"17", FIELD_LOOKUP, "17"},
		/* multi-select: a;b; tags ({name, id}): their names; [] no cell */
		{"[\"a\", \"b c\"]", FIELD_MULTI, "a;b c"},
		{"[\"only\"]", FIELD_MULTI, "only"},
		{"[]", FIELD_MULTI, NULL},
		{"[{\"name\": \"hot\", \"id\": \"1\"}, {\"name\": \"new\"}]", FIELD_MULTI, "hot;new"},
		{"[1, \"x\", true]", FIELD_MULTI, "1;x;true"},
		{"[null, \"x\"]", FIELD_MULTI, "x"},
		{"[[\"nested\"], {\"id\": 3}]", FIELD_MULTI, "[\"nested\"];{\"id\":3}"},
		{"\"a;b\"", FIELD_MULTI, "a;b"},
		/* multiselectlookup / multiuserlookup: the linked ids */
		{"[{\"Contacts\": {\"name\": \"A\", \"id\": \"5\"}, \"id\": \"9\"},"
		 " {\"Contacts\": {\"name\": \"B\", \"id\": \"6\"}, \"id\": \"10\"}]",
		 FIELD_IDS, "{5,6}"},
		{"[\"7\", 8]", FIELD_IDS, "{7,8}"},
		{"[{\"id\": \"9\"}]", FIELD_IDS, NULL},
		{"[\"0\", \"-1\", \"x\"]", FIELD_IDS, NULL},
		{"[]", FIELD_IDS, NULL},
		/* JSON: the value as JSON text, whatever its shape */
		{"{\"a\": [1, {\"b\": null}], \"c\": \"d\"}", FIELD_JSON,
		 "{\"a\":[1,{\"b\":null}],\"c\":\"d\"}"},
		{"[{\"file_Name\": \"x.pdf\", \"id\": \"1\"}]", FIELD_JSON,
		 "[{\"file_Name\":\"x.pdf\",\"id\":\"1\"}]"},
		{"[]", FIELD_JSON, "[]"},
		{"\"abc\"", FIELD_JSON, "\"abc\""},
		{"\"\"", FIELD_JSON, "\"\""},
		{"\"a/b\"", FIELD_JSON, "\"a\\/b\""},
		{"12.50", FIELD_JSON, "12.50"},
		{"false", FIELD_JSON, "false"},
		/* a shape the kind does not expect: its JSON text */
		{"{\"id\": \"1\"}", FIELD_TEXT, "{\"id\":\"1\"}"},
		{"[\"a\"]", FIELD_TEXT, "[\"a\"]"},
		{"\"x\"", FIELD_IDS, "x"},
	};
	char err[JSON_ERR_LEN];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct json_object *v = NULL;
		if (json_parse(cases[i].json, strlen(cases[i].json), &v, err) != RC_OK)
			fail_msg("%s: %s", cases[i].json, err);
		char *cell = schema_json_cell(v, cases[i].kind);
		bool same = cell && cases[i].cell ? !strcmp(cell, cases[i].cell) :
						    cell == cases[i].cell;
		if (!same)
			fail_msg("%s as %s: got %s, want %s", cases[i].json,
				 kind_names[cases[i].kind], cell ? cell : "NULL",
				 cases[i].cell ? cases[i].cell : "NULL");
		free(cell);
		json_object_put(v);
	}
	/* no value at all (the key is absent) */
	assert_null(schema_json_cell(NULL, FIELD_TEXT));
}

/* ---- against PostgreSQL: what the casts give ---- */

static int db_setup(void **state)
{
	*state = testdb_open(TEST_SCHEMA, true);
	return *state ? 0 : -1;
}

#define FAILS "<fails>" /* the plain cast raises a data exception (class 22) */

/* The cast of text (or NULL) as SQL text: FAILS if it raised class 22. */
static char *cast_value(struct db *db, enum field_kind kind, bool safe, const char *in)
{
	char *expr = safe ? schema_safe_cast_expr(kind, "$1::text") :
			    schema_cast_expr(kind, "$1::text");
	char *sql = xasprintf("SELECT (%s)::text", expr);
	char *v = NULL;

	if (db_query_value(db, sql, 1, (const char *[]){in}, &v) != RC_OK) {
		if (strncmp(db_sqlstate(db), "22", 2))
			fail_msg("%s: %s", sql, db_error(db));
		v = xstrdup(FAILS);
	}
	free(sql);
	free(expr);
	return v;
}

static void test_cast_values(void **state)
{
	struct db *db = *state;
	static const struct {
		enum field_kind kind;
		const char *in;
		const char *cast, *safe; /* NULL: SQL NULL */
	} cases[] = {
		{FIELD_TEXT, "Smith", "Smith", "Smith"},
		{FIELD_TEXT, "", NULL, NULL},
		{FIELD_TEXT, NULL, NULL, NULL},
		{FIELD_INT, "5725767000000411001", "5725767000000411001", "5725767000000411001"},
		{FIELD_INT, "", NULL, NULL},
		{FIELD_INT, "12.5", FAILS, NULL},
		{FIELD_INT, "x", FAILS, NULL},
		{FIELD_LOOKUP, "17", "17", "17"},
		{FIELD_LOOKUP, "Acme", FAILS, NULL},
		{FIELD_NUMERIC, "12.50", "12.50", "12.50"},
		{FIELD_NUMERIC, "1e3", "1000", "1000"},
		{FIELD_NUMERIC, "", NULL, NULL},
		{FIELD_NUMERIC, "call me", FAILS, NULL},
		{FIELD_BOOL, "true", "true", "true"},
		{FIELD_BOOL, "false", "false", "false"},
		{FIELD_BOOL, "maybe", FAILS, NULL},
		{FIELD_DATE, "2024-01-02", "2024-01-02", "2024-01-02"},
		{FIELD_DATE, "2024-02-30", FAILS, NULL},
		{FIELD_DATETIME, "2024-01-02T03:04:05+05:30", "2024-01-01 21:34:05+00",
		 "2024-01-01 21:34:05+00"},
		{FIELD_DATETIME, "soon", FAILS, NULL},
		{FIELD_MULTI, "a;b c", "{a,\"b c\"}", "{a,\"b c\"}"},
		{FIELD_MULTI, "only", "{only}", "{only}"},
		{FIELD_MULTI, "", NULL, NULL},
		{FIELD_IDS, "{5,6}", "{5,6}", "{5,6}"},
		{FIELD_IDS, "{x}", FAILS, NULL},
		/* JSON text stays JSON; other text becomes a JSON string; never
		 * fails, and the safe cast gives the same */
		{FIELD_JSON, "{\"a\":[1,{\"b\":null}]}", "{\"a\": [1, {\"b\": null}]}",
		 "{\"a\": [1, {\"b\": null}]}"},
		{FIELD_JSON, "[]", "[]", "[]"},
		{FIELD_JSON, "\"abc\"", "\"abc\"", "\"abc\""},
		{FIELD_JSON, "12.50", "12.50", "12.50"},
		{FIELD_JSON, "null", "null", "null"},
		{FIELD_JSON, "abc", "\"abc\"", "\"abc\""},
		{FIELD_JSON, "{bad", "\"{bad\"", "\"{bad\""},
		{FIELD_JSON, "", NULL, NULL},
		{FIELD_JSON, NULL, NULL, NULL},
	};
	struct zcolumn col = {.kind = FIELD_JSON};
	struct module_schema s = {.ncols = 1, .cols = &col};

	assert_int_equal(db_exec(db, "SET TimeZone = 'UTC'", 0, NULL, NULL), RC_OK);
	assert_int_equal(schema_cast_prepare(db, &s), RC_OK);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		for (int safe = 0; safe < 2; safe++) {
			const char *want = safe ? cases[i].safe : cases[i].cast;
			char *got = cast_value(db, cases[i].kind, safe, cases[i].in);
			bool same = got && want ? !strcmp(got, want) : got == want;
			if (!same)
				fail_msg("%s%s of %s: got %s, want %s", safe ? "safe " : "",
					 kind_names[cases[i].kind], cases[i].in ? cases[i].in : "NULL",
					 got ? got : "NULL", want ? want : "NULL");
			free(got);
		}
	}
}

/* schema_cast_prepare creates nothing for a table without JSON columns. */
static void test_cast_prepare_only_for_json(void **state)
{
	struct db *db = *state;
	struct zcolumn cols[] = {{.kind = FIELD_TEXT}, {.kind = FIELD_IDS}};
	struct module_schema s = {.ncols = 2, .cols = cols};
	char *v = NULL;

	assert_int_equal(db_exec(db, "DROP FUNCTION IF EXISTS pg_temp.zcrm_to_jsonb_(text)", 0,
				 NULL, NULL),
			 RC_OK);
	assert_int_equal(schema_cast_prepare(db, &s), RC_OK);
	assert_int_equal(db_query_value(db,
					"SELECT to_regprocedure('pg_temp.zcrm_to_jsonb_(text)')"
					" IS NULL",
					0, NULL, &v),
			 RC_OK);
	assert_string_equal(v, "t");
	free(v);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_kinds),	   cmocka_unit_test(test_pg_types),
		cmocka_unit_test(test_type_change), cmocka_unit_test(test_cast_sql),
		cmocka_unit_test(test_json_cell),
	};
	const struct CMUnitTest with_db[] = {
		cmocka_unit_test(test_cast_values),
		cmocka_unit_test(test_cast_prepare_only_for_json),
	};
	int failed = cmocka_run_group_tests_name("schema", pure, NULL, NULL);
	failed += cmocka_run_group_tests_name("schema_db", with_db, db_setup, testdb_teardown);
	return failed;
}
