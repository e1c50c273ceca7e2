/* formula.c — formula and rollup fields refreshed on a schedule (see
 * formula.h). */
#include "formula.h"
#include "buf.h"
#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool formula_is_type(const char *data_type)
{
	return data_type &&
	       (!strcmp(data_type, "formula") || !strcmp(data_type, "rollup_summary"));
}

size_t formula_fields(const struct module_schema *s, const char ***names)
{
	size_t n = 0;

	*names = xcalloc(s->ncols ? s->ncols : 1, sizeof(**names));
	for (size_t i = 0; i < s->ncols; i++)
		if (s->cols[i].listed && formula_is_type(s->cols[i].data_type))
			(*names)[n++] = s->cols[i].api_name;
	return n;
}

bool formula_due(int64_t now, int64_t last, long interval)
{
	if (interval <= 0)
		return false;
	if (last <= 0)
		return true;
	return now - last >= (int64_t)interval - (int64_t)interval / 24;
}

enum rc formula_last(struct db *db, const char *module, int64_t *now, int64_t *last)
{
	struct db_res *res = NULL;
	enum rc rc = db_prepared(db, "formula_last",
				 "SELECT floor(extract(epoch FROM now()))::bigint,"
				 " floor(extract(epoch FROM (SELECT formula_refreshed_at FROM sync_state"
				 "  WHERE module = $1)))::bigint",
				 1, (const char *[]){module}, &res);

	*now = 0;
	*last = 0;
	if (rc)
		return rc;
	if (db_res_rows(res) == 1) {
		*now = strtoll(db_res_get(res, 0, 0), NULL, 10);
		if (!db_res_isnull(res, 0, 1))
			*last = strtoll(db_res_get(res, 0, 1), NULL, 10);
	}
	db_res_free(res);
	return RC_OK;
}

enum rc formula_reset(struct db *db)
{
	return db_script(db, "DROP TABLE IF EXISTS pg_temp.zcrm_formula;"
			     " CREATE TEMP TABLE zcrm_formula (id bigint PRIMARY KEY, vals jsonb NOT NULL)");
}

/* The merge statement (see formula.h); params $1..$n are the API names.
 * Counts: rows exported, rows that differ, rows written (or, dry, that
 * would be). */
static char *merge_sql(struct db *db, const struct module_schema *s, const char *const *names,
		       size_t n, int64_t job_created, bool dry_run, bool safe)
{
	char *table = db_quote_ident(db, s->table);
	struct buf nsel = {0}, diff = {0}, set = {0};
	char *sql;

	for (size_t i = 0; i < n; i++) {
		const struct zcolumn *c = schema_column(s, names[i]);
		char *qc = db_quote_ident(db, c->column);
		char *src = xasprintf("(z.vals ->> $%zu::text)", i + 1);
		char *cast = safe ? schema_safe_cast_expr(c->kind, src) : schema_cast_expr(c->kind, src);

		buf_printf(&nsel, ", (z.vals ? $%zu::text) AS h%zu, %s AS v%zu", i + 1, i, cast, i);
		buf_printf(&diff, "%s(n.h%zu AND t.%s IS DISTINCT FROM n.v%zu)", i ? " OR " : "", i,
			   qc, i);
		buf_printf(&set, "%s%s = CASE WHEN d.h%zu THEN d.v%zu ELSE t.%s END", i ? ", " : "",
			   qc, i, i, qc);
		free(cast);
		free(src);
		free(qc);
	}
	char *guard = xasprintf("t.id = d.id AND t.deleted_at IS NULL AND t.modified_time ="
				" d.modified_time AND coalesce(t.synced_at, '-infinity') <"
				" to_timestamp(%" PRId64 ")",
				job_created);
	char *write = dry_run ? xasprintf("SELECT 1 FROM d JOIN %s t ON %s", table, guard)
			      : xasprintf("UPDATE %s t SET %s FROM d WHERE %s RETURNING 1", table,
					  buf_str(&set), guard);
	sql = xasprintf("WITH n AS (SELECT z.id, r.modified_time%s FROM zcrm_formula z"
			"  JOIN zcrm_reconcile r ON r.id = z.id),"
			" d AS (SELECT n.* FROM n JOIN %s t ON t.id = n.id WHERE t.deleted_at IS NULL"
			"  AND t.modified_time = n.modified_time AND (%s)),"
			" w AS (%s)"
			" SELECT (SELECT count(*) FROM zcrm_formula), (SELECT count(*) FROM d),"
			" (SELECT count(*) FROM w)",
			buf_str(&nsel), table, buf_str(&diff), write);
	free(write);
	free(guard);
	buf_free(&set);
	buf_free(&diff);
	buf_free(&nsel);
	free(table);
	return sql;
}

enum rc formula_merge(struct db *db, const struct module_schema *s, int64_t job_created,
		      bool dry_run, struct formula_report *rep, char *err, size_t errlen)
{
	const char **names = NULL;
	struct db_res *res = NULL;
	char *sql = NULL;
	size_t n = formula_fields(s, &names);
	enum rc rc = RC_OK;

	rep->exported = rep->refreshed = rep->kept = 0;
	if (n == 0)
		goto out;
	rc = schema_cast_prepare(db, s);
	if (rc)
		goto dberr;
	for (int safe = 0; safe < 2; safe++) {
		free(sql);
		sql = merge_sql(db, s, names, n, job_created, dry_run, safe);
		rc = db_exec(db, sql, (int)n, names, &res);
		/* A value that does not cast (class 22) costs that cell: again
		 * with casts that give NULL instead (merge.h does the same). */
		const char *state = db_sqlstate(db);
		if (!rc || !state || strncmp(state, "22", 2))
			break;
		log_warn("a formula value does not cast to its column's type; stored as NULL", "err=%s",
			 log_q(db_error(db)));
	}
	if (rc)
		goto dberr;
	if (db_res_rows(res) == 1) {
		long differ = atol(db_res_get(res, 0, 1));
		rep->exported = atol(db_res_get(res, 0, 0));
		rep->refreshed = atol(db_res_get(res, 0, 2));
		rep->kept = differ - rep->refreshed;
	}
	if (!dry_run) {
		rc = db_prepared(db, "formula_done",
				 "UPDATE sync_state SET formula_refreshed_at = now() WHERE module = $1",
				 1, (const char *[]){s->module}, NULL);
		if (rc)
			goto dberr;
	}
	goto out;
dberr:
	snprintf(err, errlen, "formula refresh: %s", db_error(db));
out:
	db_res_free(res);
	free(sql);
	free(names);
	return rc;
}
