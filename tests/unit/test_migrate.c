/* test_migrate.c — the migration runner against a real PostgreSQL
 * (ZCRM_TEST_CONNINFO, set by scripts/run-unit.sh): a first run applies
 * every migration, a re-run is a no-op, and the version is recorded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "db.h"
#include "log.h"
#include "migrations.h"
#include "testdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_SCHEMA "zcrm_unit_migrate"

static int setup(void **state)
{
	*state = testdb_open(TEST_SCHEMA, false);
	return *state ? 0 : -1;
}

static void test_first_run_applies_all(void **state)
{
	struct db *db = *state;
	int applied = -1, version = -1;

	assert_int_equal(db_schema_version(db, &version), RC_OK);
	assert_int_equal(version, 0);
	assert_int_equal(db_migrate(db, &applied), RC_OK);
	assert_int_equal(applied, (int)zcrm_nmigrations);
	assert_int_equal(db_schema_version(db, &version), RC_OK);
	assert_int_equal(version, zcrm_migrations[zcrm_nmigrations - 1].version);

	/* the system tables exist in the configured schema */
	char *v = NULL;
	assert_int_equal(db_query_value(db,
					"SELECT count(*) FROM information_schema.tables WHERE table_schema = $1"
					" AND table_name IN ('sync_state','inbox','dirty','coverage_gaps',"
					"'runs','oauth_token','fields')",
					1, (const char *[]){TEST_SCHEMA}, &v),
			 RC_OK);
	assert_string_equal(v, "7");
	free(v);
}

static void test_rerun_is_noop(void **state)
{
	struct db *db = *state;
	int applied = -1;
	char *before = NULL, *after = NULL;

	assert_int_equal(db_query_value(db, "SELECT string_agg(version || ':' || applied_at, ',')"
					    " FROM schema_migrations", 0, NULL, &before), RC_OK);
	assert_int_equal(db_migrate(db, &applied), RC_OK);
	assert_int_equal(applied, 0);
	assert_int_equal(db_migrate(db, &applied), RC_OK);
	assert_int_equal(applied, 0);
	assert_int_equal(db_query_value(db, "SELECT string_agg(version || ':' || applied_at, ',')"
					    " FROM schema_migrations", 0, NULL, &after), RC_OK);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

/* Embedded migrations are numbered strictly increasing. */
static void test_embedded_order(void **state)
{
	for (size_t i = 1; i < zcrm_nmigrations; i++)
		assert_true(zcrm_migrations[i].version > zcrm_migrations[i - 1].version);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_run_applies_all),
		cmocka_unit_test(test_rerun_is_noop),
		cmocka_unit_test(test_embedded_order),
	};
	log_init("test_migrate", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, setup, testdb_teardown);
}
