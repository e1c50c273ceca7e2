/* testdb.h — the database of a unit test that needs one (header only):
 * scripts/run-unit.sh starts a throwaway cluster and sets
 * ZCRM_TEST_CONNINFO; each test binary works in a schema of its own. */
#ifndef ZCRM_TESTDB_H
#define ZCRM_TESTDB_H

#include "db.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static inline enum rc testdb_drop(struct db *db)
{
	char *q = db_quote_ident(db, db_schema(db));
	char *sql = xasprintf("DROP SCHEMA IF EXISTS %s CASCADE", q);
	enum rc rc = db_exec(db, sql, 0, NULL, NULL);

	free(sql);
	free(q);
	return rc;
}

/* A connection to ZCRM_TEST_CONNINFO in schema, dropped first and, with
 * migrate, made again by the migrations; NULL, having said why, if not. */
static inline struct db *testdb_open(const char *schema, bool migrate)
{
	const char *conninfo = getenv("ZCRM_TEST_CONNINFO");
	struct db *db = NULL;
	int applied = 0;

	if (!conninfo) {
		fprintf(stderr, "ZCRM_TEST_CONNINFO is not set (run via scripts/run-unit.sh)\n");
		return NULL;
	}
	if (db_connect(conninfo, schema, &db) != RC_OK || testdb_drop(db) != RC_OK ||
	    (migrate && db_migrate(db, &applied) != RC_OK)) {
		fprintf(stderr, "setup: %s\n", db ? db_error(db) : "no connection");
		db_close(db);
		return NULL;
	}
	return db;
}

/* A cmocka group teardown for a state set to testdb_open's connection:
 * drops the schema, closes. */
static inline int testdb_teardown(void **state)
{
	struct db *db = *state;

	if (db && testdb_drop(db) != RC_OK)
		fprintf(stderr, "cleanup failed: %s\n", db_error(db));
	db_close(db);
	return 0;
}

#endif
