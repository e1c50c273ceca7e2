/* tablehooks.c — change notifications and row history on the module
 * tables (see tablehooks.h).
 *
 * The history keeps each version as jsonb rather than in typed columns:
 * measured on 200,000 updated rows of 14 columns (docs/architecture.md,
 * "For the application"), jsonb costs about 2 s more than typed columns and
 * 1.8× the space, but a field Zoho adds, renames or retypes while it runs
 * needs nothing of it, where a typed copy would have to follow every ALTER
 * of the module table before the next write or make that write fail. */
#include "tablehooks.h"
#include "log.h"
#include "schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One statement with every identifier quoted by the caller. */
static enum rc run(struct db *db, char *sql)
{
	enum rc rc = db_exec(db, sql, 0, NULL, NULL);
	free(sql);
	return rc;
}

/* Drop the two triggers named a and b of the table, if there. */
static enum rc drop_triggers(struct db *db, const char *qtable, const char *a, const char *b)
{
	enum rc rc = run(db, xasprintf("DROP TRIGGER IF EXISTS %s ON %s", a, qtable));
	if (!rc)
		rc = run(db, xasprintf("DROP TRIGGER IF EXISTS %s ON %s", b, qtable));
	return rc;
}

static enum rc set_notify(struct db *db, const char *qschema, const char *qtable, bool on)
{
	enum rc rc;

	if (!on)
		return drop_triggers(db, qtable, "zcrm_notify_insert", "zcrm_notify_update");
	/* A trigger with a transition table takes one event: two of them. */
	rc = run(db, xasprintf("CREATE TRIGGER zcrm_notify_insert AFTER INSERT ON %s"
			       " REFERENCING NEW TABLE AS written FOR EACH STATEMENT"
			       " EXECUTE FUNCTION %s.notify_written_ids()",
			       qtable, qschema));
	if (!rc)
		rc = run(db, xasprintf("CREATE TRIGGER zcrm_notify_update AFTER UPDATE ON %s"
				       " REFERENCING NEW TABLE AS written FOR EACH STATEMENT"
				       " EXECUTE FUNCTION %s.notify_written_ids()",
				       qtable, qschema));
	return rc;
}

static enum rc set_history(struct db *db, const char *qschema, const char *table,
			   const char *qtable, bool on)
{
	char *hist = xasprintf("%s_history", table), *fn = xasprintf("%s_history_record", table);
	char *ver = xasprintf("%s_versions", table), *idx = xasprintf("%s_history_id", table);
	char *qhist = db_quote_ident(db, hist), *qfn = db_quote_ident(db, fn);
	char *qver = db_quote_ident(db, ver), *qidx = db_quote_ident(db, idx);
	enum rc rc;

	if (!on) {
		rc = drop_triggers(db, qtable, "zcrm_history_update", "zcrm_history_delete");
		goto out;
	}
	rc = run(db, xasprintf("CREATE TABLE IF NOT EXISTS %s ("
			       " id bigint NOT NULL,"
			       " valid_from timestamptz," /* when we wrote that version */
			       " valid_to timestamptz NOT NULL," /* when it was replaced */
			       " source text,"
			       " version jsonb NOT NULL)",
			       qhist));
	if (!rc)
		rc = run(db, xasprintf("CREATE INDEX IF NOT EXISTS %s ON %s (id, valid_to)", qidx,
				       qhist));
	if (!rc)
		rc = run(db, xasprintf("CREATE OR REPLACE FUNCTION %s.%s() RETURNS trigger"
				       " LANGUAGE plpgsql AS $zcrm$ BEGIN"
				       " INSERT INTO %s.%s VALUES (OLD.id, OLD.synced_at, now(),"
				       " OLD.source, to_jsonb(OLD)); RETURN NULL; END $zcrm$",
				       qschema, qfn, qschema, qhist));
	if (!rc)
		rc = run(db, xasprintf("CREATE TRIGGER zcrm_history_update AFTER UPDATE ON %s"
				       " FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW)"
				       " EXECUTE FUNCTION %s.%s()",
				       qtable, qschema, qfn));
	if (!rc)
		rc = run(db, xasprintf("CREATE TRIGGER zcrm_history_delete AFTER DELETE ON %s"
				       " FOR EACH ROW EXECUTE FUNCTION %s.%s()",
				       qtable, qschema, qfn));
	if (!rc)
		rc = run(db, xasprintf("CREATE OR REPLACE VIEW %s AS"
				       " SELECT id, valid_from, valid_to, source, version FROM %s"
				       " UNION ALL SELECT id, synced_at, NULL::timestamptz, source,"
				       " to_jsonb(t) FROM %s t",
				       qver, qhist, qtable));
out:
	free(hist);
	free(fn);
	free(ver);
	free(idx);
	free(qhist);
	free(qfn);
	free(qver);
	free(qidx);
	return rc;
}

enum rc table_hooks_apply(struct db *db, bool notify_changes, bool history)
{
	struct db_res *res = NULL;
	const char *schema = db_schema(db);
	char *qschema = db_quote_ident(db, schema);
	enum rc rc;

	/* Per module table: which of our triggers it has now. */
	rc = db_prepared(db, "table_hooks_state",
			 "SELECT s.module, c.oid IS NOT NULL,"
			 " EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid"
			 "  AND g.tgname = 'zcrm_notify_insert'),"
			 " EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid"
			 "  AND g.tgname = 'zcrm_history_update')"
			 " FROM sync_state s"
			 " LEFT JOIN pg_namespace n ON n.nspname = $1"
			 " LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = lower(s.module)"
			 "  AND c.relkind IN ('r', 'p')"
			 " WHERE s.table_ready ORDER BY s.module",
			 1, (const char *[]){schema}, &res);
	if (rc)
		goto out;
	for (int i = 0; i < db_res_rows(res); i++) {
		const char *module = db_res_get(res, i, 0);
		bool exists = db_res_get(res, i, 1)[0] == 't';
		bool has_notify = db_res_get(res, i, 2)[0] == 't';
		bool has_history = db_res_get(res, i, 3)[0] == 't';
		if (!exists || (has_notify == notify_changes && has_history == history))
			continue;
		char *table = schema_table_name(module), *qtable = db_quote_ident(db, table);
		rc = db_begin(db);
		/* Serialises with other programs applying the same change, and
		 * with schema changes of the module (schema.c takes it too). */
		if (!rc)
			rc = db_exec(db,
				     "SELECT pg_advisory_xact_lock(hashtext('zcrm-sync:schema'),"
				     " hashtext($1))",
				     1, (const char *[]){module}, NULL);
		if (!rc && has_notify != notify_changes) {
			/* Another program may have done it since we looked. */
			rc = set_notify(db, qschema, qtable, false);
			if (!rc && notify_changes)
				rc = set_notify(db, qschema, qtable, true);
		}
		if (!rc && has_history != history) {
			rc = set_history(db, qschema, table, qtable, false);
			if (!rc && history)
				rc = set_history(db, qschema, table, qtable, true);
		}
		if (!rc)
			rc = db_commit(db);
		if (rc) {
			log_error("cannot set the triggers of a module table", "module=%s err=%s",
				  log_q(module), log_q(db_error(db)));
			db_rollback(db);
		} else {
			log_info("module table triggers set", "module=%s notify_changes=%s history=%s",
				 log_q(module), notify_changes ? "on" : "off", history ? "on" : "off");
		}
		free(table);
		free(qtable);
		if (rc)
			goto out;
	}
out:
	db_res_free(res);
	free(qschema);
	return rc;
}
