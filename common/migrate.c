/* migrate.c — apply the embedded migrations in order, once each.
 *
 * Each migration runs in its own transaction together with its row in
 * schema_migrations, under a transaction-level advisory lock so that two
 * programs starting at once do not race; a re-run is a no-op. */
#include "db.h"
#include "log.h"
#include "migrations.h"

#include <stdio.h>
#include <stdlib.h>

static enum rc bootstrap(struct db *db)
{
	char *schema = db_quote_ident(db, db_schema(db));
	/* <schema>_stage holds the bulk loader's scratch tables (merge.h). */
	char *stage_name = xasprintf("%s_stage", db_schema(db));
	char *stage = db_quote_ident(db, stage_name);
	char *sql = xasprintf("CREATE SCHEMA IF NOT EXISTS %s;"
			      "CREATE SCHEMA IF NOT EXISTS %s;"
			      "CREATE TABLE IF NOT EXISTS %s.schema_migrations ("
			      " version integer PRIMARY KEY,"
			      " name text NOT NULL,"
			      " applied_at timestamptz NOT NULL DEFAULT now())",
			      schema, stage, schema);
	enum rc rc = db_script(db, sql);
	free(sql);
	free(stage);
	free(stage_name);
	free(schema);
	return rc;
}

enum rc db_schema_version(struct db *db, int *version)
{
	char *v = NULL;
	enum rc rc;

	*version = 0;
	/* Two steps: a query naming a missing table fails at parse time. */
	rc = db_query_value(db, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL, &v);
	if (rc || !v || v[0] != 't')
		goto out;
	free(v);
	v = NULL;
	rc = db_query_value(db, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL,
			    &v);
	if (!rc && v)
		*version = atoi(v);
out:
	free(v);
	return rc;
}

enum rc db_migrate(struct db *db, int *applied)
{
	enum rc rc;

	*applied = 0;
	rc = bootstrap(db);
	if (rc) {
		/* Two programs bootstrapping at once can race on CREATE; once more. */
		rc = bootstrap(db);
		if (rc) {
			log_error("cannot create schema", "err=%s", log_q(db_error(db)));
			return rc;
		}
	}
	for (size_t i = 0; i < zcrm_nmigrations; i++) {
		const struct migration *m = &zcrm_migrations[i];
		char ver[16];
		const char *params[2] = {ver, m->name};
		char *done = NULL;

		snprintf(ver, sizeof(ver), "%d", m->version);
		rc = db_begin(db);
		if (rc)
			goto fail;
		rc = db_exec(db, "SELECT pg_advisory_xact_lock(hashtext('zcrm-sync:migrate'))", 0, NULL,
			     NULL);
		if (rc)
			goto fail;
		rc = db_query_value(db, "SELECT 1 FROM schema_migrations WHERE version = $1::int", 1,
				    params, &done);
		if (rc)
			goto fail;
		if (done) {
			free(done);
			rc = db_commit(db);
			if (rc)
				goto fail;
			continue;
		}
		rc = db_script(db, m->sql);
		if (rc) {
			log_error("migration failed", "migration=%s err=%s", m->name,
				  log_q(db_error(db)));
			goto fail;
		}
		rc = db_exec(db, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)",
			     2, params, NULL);
		if (rc)
			goto fail;
		rc = db_commit(db);
		if (rc)
			goto fail;
		log_info("migration applied", "migration=%s", m->name);
		(*applied)++;
	}
	return RC_OK;
fail:
	db_rollback(db);
	return rc;
}
