/* status.c — operator status report (see status.h). */
#include "status.h"
#include "buf.h"
#include "credits.h"
#include "metrics.h"
#include "schema.h"
#include "spool.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_object *jstr_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *jint_or_null(const char *s)
{
	return s ? json_object_new_int64(strtoll(s, NULL, 10)) : NULL;
}

/* The newest cells stored as NULL because they did not cast (merge.h),
 * as "cell_errors_recent": [{id, field, value, error, seen}]. */
#define CELL_ERRORS_SHOWN 5

static enum rc cell_errors_recent(struct db *db, const char *module, json_object *o)
{
	struct db_res *res = NULL;
	char lim[16];
	enum rc rc;

	snprintf(lim, sizeof(lim), "%d", CELL_ERRORS_SHOWN);
	rc = db_prepared(db, "status_cells",
			 "SELECT id::text, field, value, error,"
			 " to_char(seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
			 " FROM cell_errors WHERE module = $1 ORDER BY seen_at DESC, id, field"
			 " LIMIT $2::int",
			 2, (const char *[]){module, lim}, &res);
	if (rc)
		goto out;
	json_object *arr = json_object_new_array();
	for (int i = 0; i < db_res_rows(res); i++) {
		json_object *c = json_object_new_object();
		json_object_object_add(c, "id", jint_or_null(db_res_get(res, i, 0)));
		json_object_object_add(c, "field", jstr_or_null(db_res_get(res, i, 1)));
		json_object_object_add(c, "value", jstr_or_null(db_res_get(res, i, 2)));
		json_object_object_add(c, "error", jstr_or_null(db_res_get(res, i, 3)));
		json_object_object_add(c, "seen", jstr_or_null(db_res_get(res, i, 4)));
		json_object_array_add(arr, c);
	}
	json_object_object_add(o, "cell_errors_recent", arr);
out:
	db_res_free(res);
	return rc;
}

/* What the runs' liveness is judged against: the server's clock before
 * the locks were read, and the sessions holding an advisory lock in this
 * database then. A run row still 'running' that started before t0 took its
 * job lock before t0 and keeps it until after its row is closed; so if its
 * session held no lock when they were read, its process is gone. Reading
 * the locks before the rows (a statement apart) keeps a run that finishes
 * meanwhile from looking dead. */
struct liveness {
	char *t0;      /* timestamptz text */
	char *holders; /* int[] text: backend pids */
};

static enum rc read_liveness(struct db *db, struct liveness *lv)
{
	enum rc rc;

	lv->t0 = lv->holders = NULL;
	rc = db_query_value(db, "SELECT clock_timestamp()::text", 0, NULL, &lv->t0);
	if (rc)
		return rc;
	return db_query_value(db,
			      "SELECT coalesce(array_agg(DISTINCT pid), '{}')::text FROM pg_locks"
			      " WHERE locktype = 'advisory' AND granted AND pid IS NOT NULL"
			      " AND database = (SELECT oid FROM pg_database"
			      "                 WHERE datname = current_database())",
			      0, NULL, &lv->holders);
}

/* One module's facts as a JSON object. */
static enum rc module_status(struct db *db, const struct liveness *lv, const char *module,
			     json_object **out)
{
	struct db_res *res = NULL;
	json_object *o = json_object_new_object();
	enum rc rc;

	*out = NULL;
	rc = db_prepared(db, "status_state",
			 "SELECT to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
			 " extract(epoch FROM now() - watermark)::bigint,"
			 " channel_id::text, to_char(channel_expiry AT TIME ZONE 'UTC',"
			 "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
			 " extract(epoch FROM channel_expiry - now())::bigint,"
			 /* what renew_channel last saw; past its expiry it is over,
			  * whatever renew_channel has not yet seen */
			 " CASE WHEN channel_status = 'active' AND channel_expiry <= now()"
			 "  THEN 'expired' ELSE channel_status END,"
			 " bulk_kind, bulk_page, last_error, table_ready,"
			 " (SELECT count(*) FROM to_fetch d WHERE d.module = s.module),"
			 " (SELECT count(*) FROM dirty d WHERE d.module = s.module AND d.attempts > 0),"
			 " (SELECT count(*) FROM inbox i WHERE i.module = s.module AND processed_at IS NULL),"
			 " (SELECT count(*) FROM coverage_gaps g WHERE g.module = s.module AND closed_at IS NULL),"
			 " (SELECT to_char(min(gap_from) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
			 "  FROM coverage_gaps g WHERE g.module = s.module AND closed_at IS NULL),"
			 " (SELECT count(*) FROM cell_errors e WHERE e.module = s.module),"
			 " export_missing, export_extra, export_deferred,"
			 " to_char(export_checked AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
			 " FROM sync_state s WHERE module = $1",
			 1, (const char *[]){module}, &res);
	if (rc)
		goto out;
	json_object_object_add(o, "module", json_object_new_string(module));
	if (db_res_rows(res) == 0) {
		json_object_object_add(o, "initialised", json_object_new_boolean(0));
		goto done;
	}
	json_object_object_add(o, "initialised", json_object_new_boolean(1));
	json_object_object_add(o, "watermark", jstr_or_null(db_res_get(res, 0, 0)));
	json_object_object_add(o, "lag_seconds", jint_or_null(db_res_get(res, 0, 1)));
	json_object_object_add(o, "channel_id", jstr_or_null(db_res_get(res, 0, 2)));
	json_object_object_add(o, "channel_expiry", jstr_or_null(db_res_get(res, 0, 3)));
	json_object_object_add(o, "channel_seconds_left", jint_or_null(db_res_get(res, 0, 4)));
	json_object_object_add(o, "channel_status", jstr_or_null(db_res_get(res, 0, 5)));
	json_object_object_add(o, "export_in_progress", jstr_or_null(db_res_get(res, 0, 6)));
	json_object_object_add(o, "export_page", jint_or_null(db_res_get(res, 0, 7)));
	json_object_object_add(o, "last_error", jstr_or_null(db_res_get(res, 0, 8)));
	json_object_object_add(o, "dirty", jint_or_null(db_res_get(res, 0, 10)));
	json_object_object_add(o, "dirty_retrying", jint_or_null(db_res_get(res, 0, 11)));
	json_object_object_add(o, "inbox_pending", jint_or_null(db_res_get(res, 0, 12)));
	json_object_object_add(o, "open_gaps", jint_or_null(db_res_get(res, 0, 13)));
	json_object_object_add(o, "oldest_gap_from", jstr_or_null(db_res_get(res, 0, 14)));
	json_object_object_add(o, "cell_errors", jint_or_null(db_res_get(res, 0, 15)));
	json_object_object_add(o, "export_missing_columns", jstr_or_null(db_res_get(res, 0, 16)));
	json_object_object_add(o, "export_extra_columns", jstr_or_null(db_res_get(res, 0, 17)));
	json_object_object_add(o, "export_rows_fetched_instead",
			       jint_or_null(db_res_get(res, 0, 18)));
	json_object_object_add(o, "export_columns_checked", jstr_or_null(db_res_get(res, 0, 19)));
	const char *tr = db_res_get(res, 0, 9);
	bool ready = tr && tr[0] == 't'; /* read before res is freed */
	db_res_free(res);
	res = NULL;
	if (ready) {
		char *table = schema_table_name(module);
		char *q = db_quote_ident(db, table);
		char *sql = xasprintf("SELECT count(*) FILTER (WHERE deleted_at IS NULL),"
				      " count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM %s", q);
		rc = db_exec(db, sql, 0, NULL, &res);
		free(sql);
		free(q);
		free(table);
		if (rc)
			goto out;
		json_object_object_add(o, "rows_live", jint_or_null(db_res_get(res, 0, 0)));
		json_object_object_add(o, "rows_tombstoned", jint_or_null(db_res_get(res, 0, 1)));
		db_res_free(res);
		res = NULL;
	}
	rc = db_prepared(db, "status_runs",
			 "SELECT DISTINCT ON (kind) kind,"
			 " CASE WHEN outcome = 'running' AND backend_pid IS NOT NULL"
			 "  AND started_at < $2::timestamptz AND backend_pid <> ALL($3::int[])"
			 "  THEN 'abandoned' ELSE outcome END,"
			 " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
			 " to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
			 " rows_seen, rows_applied, rows_deleted, message"
			 " FROM runs WHERE module = $1 ORDER BY kind, started_at DESC",
			 3, (const char *[]){module, lv->t0, lv->holders}, &res);
	if (rc)
		goto out;
	json_object *runs = json_object_new_object();
	for (int i = 0; i < db_res_rows(res); i++) {
		json_object *r = json_object_new_object();
		json_object_object_add(r, "outcome", jstr_or_null(db_res_get(res, i, 1)));
		json_object_object_add(r, "started", jstr_or_null(db_res_get(res, i, 2)));
		json_object_object_add(r, "finished", jstr_or_null(db_res_get(res, i, 3)));
		json_object_object_add(r, "rows_seen", jint_or_null(db_res_get(res, i, 4)));
		json_object_object_add(r, "rows_applied", jint_or_null(db_res_get(res, i, 5)));
		json_object_object_add(r, "rows_deleted", jint_or_null(db_res_get(res, i, 6)));
		json_object_object_add(r, "message", jstr_or_null(db_res_get(res, i, 7)));
		json_object_object_add(runs, db_res_get(res, i, 0), r);
	}
	json_object_object_add(o, "last_runs", runs);
	db_res_free(res);
	res = NULL;
	rc = cell_errors_recent(db, module, o);
	if (rc)
		goto out;
done:
	*out = o;
	o = NULL;
out:
	db_res_free(res);
	json_object_put(o);
	return rc;
}

static const char *s_of(json_object *o, const char *key, const char *dflt)
{
	json_object *v;
	if (json_object_object_get_ex(o, key, &v) && v)
		return json_object_get_string(v);
	return dflt;
}

static void human_secs(long long s, char *buf, size_t cap)
{
	const char *sign = s < 0 ? "-" : "";
	if (s < 0)
		s = -s;
	if (s < 120)
		snprintf(buf, cap, "%s%llds", sign, s);
	else if (s < 7200)
		snprintf(buf, cap, "%s%lldm", sign, s / 60);
	else
		snprintf(buf, cap, "%s%lldh%02lldm", sign, s / 3600, (s % 3600) / 60);
}

/* Cells stored as NULL, and what the last export lacked or had extra. */
static void print_data_problems(json_object *m, FILE *out)
{
	json_object *v, *recent;
	long long cells = 0;

	if (json_object_object_get_ex(m, "cell_errors", &v) && v)
		cells = json_object_get_int64(v);
	if (cells > 0) {
		fprintf(out, "  cells stored as NULL (they do not cast; zcrm.cell_errors): %lld\n",
			cells);
		if (json_object_object_get_ex(m, "cell_errors_recent", &recent)) {
			for (size_t i = 0; i < json_object_array_length(recent); i++) {
				json_object *c = json_object_array_get_idx(recent, i);
				fprintf(out, "    id=%s field=%s value=\"%s\": %s\n", s_of(c, "id", "?"),
					s_of(c, "field", "?"), s_of(c, "value", ""),
					s_of(c, "error", ""));
			}
		}
	}
	const char *missing = s_of(m, "export_missing_columns", NULL);
	const char *extra = s_of(m, "export_extra_columns", NULL);
	if (missing)
		fprintf(out,
			"  last export lacked known columns: %s (%s of its rows fetched by id "
			"instead)\n",
			missing, s_of(m, "export_rows_fetched_instead", "0"));
	if (extra)
		fprintf(out, "  last export had columns the fields metadata does not know: %s\n",
			extra);
}

/* What this deployment spent of the org's API credits in the last 24 h,
 * and what Zoho last said is left. */
static enum rc credits_status(struct db *db, json_object **out)
{
	struct db_res *res = NULL;
	long remaining = -1, total = 0;
	char seen[40];
	enum rc rc = credits_day(db, &res);

	*out = NULL;
	if (!rc)
		rc = credits_last_seen(db, &remaining, seen, sizeof(seen));
	if (rc)
		goto out;
	json_object *o = json_object_new_object(), *by = json_object_new_object();
	for (int i = 0; i < db_res_rows(res); i++) {
		long c = atol(db_res_get(res, i, 1));
		total += c;
		json_object_object_add(by, db_res_get(res, i, 0), json_object_new_int64(c));
	}
	json_object_object_add(o, "spent_24h", json_object_new_int64(total));
	json_object_object_add(o, "by_endpoint", by);
	json_object_object_add(o, "remaining",
			       remaining >= 0 ? json_object_new_int64(remaining) : NULL);
	json_object_object_add(o, "seen_at", seen[0] ? json_object_new_string(seen) : NULL);
	*out = o;
out:
	db_res_free(res);
	return rc;
}

static void print_credits(json_object *c, FILE *out)
{
	json_object *by, *v;
	fprintf(out, "credits: %s spent in the last 24 h", s_of(c, "spent_24h", "0"));
	if (json_object_object_get_ex(c, "by_endpoint", &by) && json_object_object_length(by)) {
		const char *sep = " (";
		json_object_object_foreach(by, ep, n)
		{
			fprintf(out, "%s%s %s", sep, ep, json_object_get_string(n));
			sep = ", ";
		}
		fputc(')', out);
	}
	if (json_object_object_get_ex(c, "remaining", &v) && v)
		fprintf(out, "; Zoho said %s left at %s\n", json_object_get_string(v),
			s_of(c, "seen_at", "?"));
	else
		fprintf(out, "; more than half of the org's day left (Zoho sent no"
			     " X-API-CREDITS-REMAINING)\n");
}

/* zcrm.users: how many, how many active, the last refresh and its error. */
static enum rc users_status(struct db *db, json_object **out)
{
	struct db_res *res = NULL;
	enum rc rc = db_exec(db,
			     "SELECT (SELECT count(*) FROM users),"
			     " (SELECT count(*) FROM users WHERE status = 'active'),"
			     " to_char(checked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
			     " last_error FROM users_state",
			     0, NULL, &res);

	*out = NULL;
	if (rc)
		return rc;
	json_object *o = json_object_new_object();
	bool row = db_res_rows(res) == 1;
	json_object_object_add(o, "count", json_object_new_int64(row ? atol(db_res_get(res, 0, 0)) : 0));
	json_object_object_add(o, "active", json_object_new_int64(row ? atol(db_res_get(res, 0, 1)) : 0));
	json_object_object_add(o, "checked_at", row && !db_res_isnull(res, 0, 2)
							? json_object_new_string(db_res_get(res, 0, 2))
							: NULL);
	json_object_object_add(o, "last_error", row && !db_res_isnull(res, 0, 3)
							? json_object_new_string(db_res_get(res, 0, 3))
							: NULL);
	db_res_free(res);
	*out = o;
	return RC_OK;
}

static void print_users(json_object *u, FILE *out)
{
	fprintf(out, "users: %s (%s active), last asked %s", s_of(u, "count", "0"),
		s_of(u, "active", "0"), s_of(u, "checked_at", "never"));
	json_object *e;
	if (json_object_object_get_ex(u, "last_error", &e) && e)
		fprintf(out, "; last error: %s", json_object_get_string(e));
	fputc('\n', out);
}

static void print_table(json_object *mods, long spool, FILE *out)
{
	fprintf(out, "%-12s %-21s %-8s %-10s %-9s %6s %6s %5s %9s %9s\n", "MODULE", "WATERMARK",
		"LAG", "CHANNEL", "EXPIRES", "DIRTY", "INBOX", "GAPS", "LIVE", "DELETED");
	for (size_t i = 0; i < json_object_array_length(mods); i++) {
		json_object *m = json_object_array_get_idx(mods, i), *v;
		char lag[32] = "-", left[32] = "-";
		if (json_object_object_get_ex(m, "lag_seconds", &v) && v)
			human_secs(json_object_get_int64(v), lag, sizeof(lag));
		if (json_object_object_get_ex(m, "channel_seconds_left", &v) && v)
			human_secs(json_object_get_int64(v), left, sizeof(left));
		fprintf(out, "%-12s %-21s %-8s %-10s %-9s %6s %6s %5s %9s %9s\n",
			s_of(m, "module", "?"), s_of(m, "watermark", "never"), lag,
			s_of(m, "channel_status", "none"), left, s_of(m, "dirty", "0"),
			s_of(m, "inbox_pending", "0"), s_of(m, "open_gaps", "0"),
			s_of(m, "rows_live", "-"), s_of(m, "rows_tombstoned", "-"));
	}
	fprintf(out, "\nspool: %ld file(s) waiting\n", spool);
	for (size_t i = 0; i < json_object_array_length(mods); i++) {
		json_object *m = json_object_array_get_idx(mods, i), *runs;
		if (!json_object_object_get_ex(m, "last_runs", &runs))
			continue;
		fprintf(out, "\n%s last runs:\n", s_of(m, "module", "?"));
		json_object_object_foreach(runs, kind, r)
		{
			fprintf(out, "  %-12s %-11s %-21s seen=%s applied=%s deleted=%s%s%s\n", kind,
				s_of(r, "outcome", "?"),
				s_of(r, "finished", !strcmp(s_of(r, "outcome", ""), "running") ? "(running)"
											       : "-"),
				s_of(r, "rows_seen", "0"), s_of(r, "rows_applied", "0"),
				s_of(r, "rows_deleted", "0"), s_of(r, "message", NULL) ? "  " : "",
				s_of(r, "message", ""));
		}
		const char *err = s_of(m, "last_error", NULL);
		if (err)
			fprintf(out, "  last error: %s\n", err);
		print_data_problems(m, out);
	}
}

/* Without PostgreSQL: what is known all the same. */
static void print_offline(const struct cfg *cfg, const char *db_err, long spool, FILE *out)
{
	fprintf(out, "config: %s (schema %s; modules %s)\n", cfg->path ? cfg->path : "(none)",
		cfg->schema, cfg->modules);
	fprintf(out, "database: UNAVAILABLE: %s\n", db_err);
	fprintf(out, "  the modules' state is in PostgreSQL: unknown until it answers\n");
	if (spool < 0)
		fprintf(out, "\nspool: cannot read %s\n", cfg->spool_dir);
	else
		fprintf(out, "\nspool: %ld file(s) waiting in %s\n", spool, cfg->spool_dir);
}

enum rc status_report(struct db *db, const char *db_err, const struct cfg *cfg,
		      const char *const *modules, size_t n, bool json, FILE *out)
{
	json_object *root = json_object_new_object();
	json_object *mods = NULL, *credits = NULL, *users = NULL;
	struct liveness lv = {NULL, NULL};
	long spool = spool_count(cfg->spool_dir);
	enum rc rc = RC_OK;

	json_object *dbo = json_object_new_object();
	json_object_object_add(dbo, "ok", json_object_new_boolean(db != NULL));
	if (!db)
		json_object_object_add(dbo, "error", json_object_new_string(db_err ? db_err : ""));
	json_object_object_add(root, "database", dbo);
	json_object_object_add(root, "config", jstr_or_null(cfg->path));
	json_object_object_add(root, "spool_dir", json_object_new_string(cfg->spool_dir));
	if (db) {
		mods = json_object_new_array();
		rc = read_liveness(db, &lv);
		if (rc)
			goto out;
		for (size_t i = 0; i < n; i++) {
			json_object *m = NULL;
			rc = module_status(db, &lv, modules[i], &m);
			if (rc)
				goto out;
			json_object_array_add(mods, m);
		}
	} else {
		json_object *names = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(names, json_object_new_string(modules[i]));
		json_object_object_add(root, "configured_modules", names);
	}
	if (db) {
		rc = credits_status(db, &credits);
		if (!rc)
			rc = users_status(db, &users);
		if (rc)
			goto out;
	}
	if (json) {
		/* null when unknown (no database) */
		json_object_object_add(root, "modules", json_object_get(mods));
		json_object_object_add(root, "spool_files",
				       spool < 0 ? NULL : json_object_new_int64(spool));
		/* null when unknown (no database) */
		json_object_object_add(root, "credits", json_object_get(credits));
		/* zcrm.users (null when unknown) */
		json_object_object_add(root, "users", json_object_get(users));
		fprintf(out, "%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
								       JSON_C_TO_STRING_NOSLASHESCAPE));
	} else if (db) {
		print_table(mods, spool < 0 ? 0 : spool, out);
		fputc('\n', out);
		print_credits(credits, out);
		print_users(users, out);
	} else {
		print_offline(cfg, db_err ? db_err : "", spool, out);
	}
out:
	json_object_put(credits);
	json_object_put(users);
	free(lv.t0);
	free(lv.holders);
	json_object_put(mods);
	json_object_put(root);
	return rc;
}

/* Appends one gauge family: HELP and TYPE, then one sample per row of res
 * whose value is in column col (rows: module in column 0, and, when
 * label2 is set, that label's value in column 1). */
static void put_gauge(struct buf *b, const char *name, const char *help, const char *labels,
		      struct db_res *res, const char *label2, int col)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	for (int i = 0; i < db_res_rows(res); i++) {
		char mod[256], l2[256];
		metrics_label_value(mod, sizeof(mod), db_res_get(res, i, 0));
		if (label2) {
			metrics_label_value(l2, sizeof(l2), db_res_get(res, i, 1));
			buf_printf(b, "%s{%smodule=\"%s\",%s=\"%s\"} %s\n", name, labels, mod, label2,
				   l2, db_res_get(res, i, col));
		} else {
			buf_printf(b, "%s{%smodule=\"%s\"} %s\n", name, labels, mod,
				   db_res_get(res, i, col));
		}
	}
}

enum rc status_metrics(struct db *db, const char *labels, char **out)
{
	/* Per module, from sync_state and the queues. Timestamps are Unix
	 * seconds, 0 when there is none yet (alerts compare with time()). */
	static const struct {
		const char *name, *help;
	} gauges[] = {
		{"zcrm_cell_errors",
		 "Cells stored as NULL because their value did not cast to the column's type"
		 " (zcrm.cell_errors)."},
		{"zcrm_export_missing_columns",
		 "Known columns the last merged Bulk Read page lacked (its rows were fetched by id)."},
		{"zcrm_export_extra_columns",
		 "Columns of the last merged Bulk Read page the fields metadata does not know."},
		{"zcrm_watermark_timestamp_seconds",
		 "Zoho time up to which every change is known to be in the table (0: none yet);"
		 " time() minus it is the sync lag."},
		{"zcrm_channel_expiry_timestamp_seconds",
		 "When the notification channel expires, as Zoho granted it (0: no channel)."},
		{"zcrm_channel_active",
		 "1 when the notification channel is active, 0 when it is expired, missing or"
		 " disabled."},
		{"zcrm_dirty_ids", "Record ids waiting to be fetched from Zoho."},
		{"zcrm_dirty_failing_ids",
		 "Record ids waiting to be fetched whose fetch has failed at least once."},
		{"zcrm_inbox_unprocessed", "Notifications recorded but not yet applied."},
		{"zcrm_coverage_gaps_open",
		 "Time ranges in which notifications may have been missed, not yet repaired."},
	};
	struct db_res *res = NULL;
	struct buf b = {0};
	enum rc rc;

	*out = NULL;
	rc = db_prepared(db, "status_metrics",
			 "SELECT s.module, (SELECT count(*) FROM cell_errors e WHERE e.module = s.module),"
			 " coalesce(cardinality(string_to_array(s.export_missing, ',')), 0),"
			 " coalesce(cardinality(string_to_array(s.export_extra, ',')), 0),"
			 " coalesce(floor(extract(epoch FROM s.watermark))::bigint, 0),"
			 " coalesce(floor(extract(epoch FROM s.channel_expiry))::bigint, 0),"
			 " (s.channel_status = 'active')::int,"
			 " (SELECT count(*) FROM dirty d WHERE d.module = s.module),"
			 " (SELECT count(*) FROM dirty d WHERE d.module = s.module AND d.attempts > 0),"
			 " (SELECT count(*) FROM inbox i WHERE i.module = s.module"
			 "   AND i.processed_at IS NULL),"
			 " (SELECT count(*) FROM coverage_gaps g WHERE g.module = s.module"
			 "   AND g.closed_at IS NULL)"
			 " FROM sync_state s ORDER BY s.module",
			 0, NULL, &res);
	if (rc)
		goto out;
	for (size_t g = 0; g < ARRAY_LEN(gauges); g++)
		put_gauge(&b, gauges[g].name, gauges[g].help, labels, res, NULL, (int)g + 1);
	db_res_free(res);
	res = NULL;
	/* The last run that ended well, per module and program: a cron job
	 * that stopped running shows as a timestamp that no longer moves. */
	rc = db_prepared(db, "status_metrics_runs",
			 "SELECT module, kind, floor(extract(epoch FROM max(finished_at)))::bigint"
			 " FROM runs WHERE outcome = 'ok' AND module IS NOT NULL"
			 " GROUP BY module, kind ORDER BY module, kind",
			 0, NULL, &res);
	if (rc)
		goto out;
	put_gauge(&b, "zcrm_last_success_timestamp_seconds",
		  "When the last run of a batch program for the module ended well (Unix time).",
		  labels, res, "program", 2);
	*out = buf_steal(&b);
out:
	buf_free(&b);
	db_res_free(res);
	return rc;
}
