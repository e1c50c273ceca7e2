/* syncstate.c — sync_state, runs and coverage_gaps (see syncstate.h). */
#include "syncstate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void epoch_text(int64_t t, char *buf, size_t cap)
{
	snprintf(buf, cap, "%" PRId64, t);
}

static int64_t to_i64(const char *s)
{
	return s ? strtoll(s, NULL, 10) : 0;
}

enum rc sync_get(struct db *db, const char *module, struct sync_row *row)
{
	struct db_res *res = NULL;
	enum rc rc;

	memset(row, 0, sizeof(*row));
	rc = db_prepared(db, "sync_ensure",
			 "INSERT INTO sync_state (module) VALUES ($1) ON CONFLICT DO NOTHING", 1,
			 (const char *[]){module}, NULL);
	if (rc)
		return rc;
	rc = db_prepared(db, "sync_get",
			 "SELECT floor(extract(epoch FROM watermark))::bigint, channel_id,"
			 " floor(extract(epoch FROM channel_expiry))::bigint, channel_status,"
			 " coalesce(bulk_kind, ''), bulk_job_id, coalesce(bulk_page, 0),"
			 " floor(extract(epoch FROM bulk_started))::bigint,"
			 " floor(extract(epoch FROM bulk_from))::bigint, floor(extract(epoch FROM bulk_to))::bigint,"
			 " table_ready, floor(extract(epoch FROM channel_checked))::bigint"
			 " FROM sync_state WHERE module = $1",
			 1, (const char *[]){module}, &res);
	if (rc)
		return rc;
	if (db_res_rows(res) == 1) {
		row->watermark = to_i64(db_res_get(res, 0, 0));
		row->channel_id = (uint64_t)to_i64(db_res_get(res, 0, 1));
		row->channel_expiry = to_i64(db_res_get(res, 0, 2));
		snprintf(row->channel_status, sizeof(row->channel_status), "%s",
			 db_res_get(res, 0, 3));
		snprintf(row->bulk_kind, sizeof(row->bulk_kind), "%s", db_res_get(res, 0, 4));
		row->bulk_job_id = to_i64(db_res_get(res, 0, 5));
		row->bulk_page = (int)to_i64(db_res_get(res, 0, 6));
		row->bulk_started = to_i64(db_res_get(res, 0, 7));
		row->bulk_from = to_i64(db_res_get(res, 0, 8));
		row->bulk_to = to_i64(db_res_get(res, 0, 9));
		const char *tr = db_res_get(res, 0, 10);
		row->table_ready = tr && tr[0] == 't';
		row->channel_checked = to_i64(db_res_get(res, 0, 11));
	}
	db_res_free(res);
	return RC_OK;
}

/* 0 → SQL NULL, else the number as text. */
static const char *num_or_null(int64_t v, char *buf, size_t cap)
{
	if (!v)
		return NULL;
	snprintf(buf, cap, "%" PRId64, v);
	return buf;
}

enum rc sync_set_bulk(struct db *db, const char *module, const char *kind, int page,
		      int64_t job_id, int64_t started, int64_t from, int64_t to)
{
	char p[16], j[24], s[24], f[24], t[24];
	snprintf(p, sizeof(p), "%d", page);
	const char *params[7] = {module,
				 kind,
				 p,
				 job_id ? (snprintf(j, sizeof(j), "%" PRId64, job_id), j) : NULL,
				 num_or_null(started, s, sizeof(s)),
				 num_or_null(from, f, sizeof(f)),
				 num_or_null(to, t, sizeof(t))};
	return db_prepared(db, "sync_set_bulk",
			   "UPDATE sync_state SET bulk_kind = $2, bulk_page = $3::int,"
			   " bulk_job_id = $4, bulk_state = 'running',"
			   " bulk_started = to_timestamp($5::bigint),"
			   " bulk_from = to_timestamp($6::bigint), bulk_to = to_timestamp($7::bigint),"
			   " updated_at = now() WHERE module = $1",
			   7, params, NULL);
}

enum rc sync_set_export_columns(struct db *db, const char *module, const char *missing,
				const char *extra, long deferred)
{
	char d[24];
	bool lacks = missing && *missing;

	snprintf(d, sizeof(d), "%ld", deferred);
	const char *params[4] = {module, lacks ? missing : NULL, extra && *extra ? extra : NULL,
				 lacks ? d : NULL};
	return db_prepared(db, "sync_set_export_columns",
			   "UPDATE sync_state SET export_missing = $2, export_extra = $3,"
			   " export_deferred = $4::bigint, export_checked = now(), updated_at = now()"
			   " WHERE module = $1",
			   4, params, NULL);
}

enum rc sync_clear_bulk(struct db *db, const char *module)
{
	return db_prepared(db, "sync_clear_bulk",
			   "UPDATE sync_state SET bulk_kind = NULL, bulk_page = NULL,"
			   " bulk_job_id = NULL, bulk_state = NULL, bulk_started = NULL,"
			   " bulk_from = NULL, bulk_to = NULL, bulk_ahead = NULL, last_error = NULL,"
			   " updated_at = now()"
			   " WHERE module = $1",
			   1, (const char *[]){module}, NULL);
}

enum rc sync_set_watermark(struct db *db, const char *module, int64_t when)
{
	char w[24];
	epoch_text(when, w, sizeof(w));
	return db_prepared(db, "sync_set_watermark",
			   "UPDATE sync_state SET watermark = greatest(watermark,"
			   " to_timestamp($2::bigint)), updated_at = now() WHERE module = $1",
			   2, (const char *[]){module, w}, NULL);
}

enum rc sync_set_channel(struct db *db, const char *module, uint64_t channel_id,
			 int64_t expiry, const char *status)
{
	char c[24], e[24];
	snprintf(c, sizeof(c), "%" PRIu64, channel_id);
	const char *params[4] = {module, c, num_or_null(expiry, e, sizeof(e)), status};
	return db_prepared(db, "sync_set_channel",
			   "INSERT INTO sync_state (module, channel_id, channel_expiry, channel_status,"
			   " channel_checked) VALUES ($1, $2::bigint, to_timestamp($3::bigint), $4,"
			   " CASE WHEN $4 = 'active' THEN now() END)"
			   " ON CONFLICT (module) DO UPDATE SET channel_id = excluded.channel_id,"
			   " channel_expiry = excluded.channel_expiry,"
			   " channel_status = excluded.channel_status,"
			   " channel_checked = CASE WHEN excluded.channel_status = 'active'"
			   "  THEN now() ELSE sync_state.channel_checked END, updated_at = now()",
			   4, params, NULL);
}

enum rc sync_set_error(struct db *db, const char *module, const char *error)
{
	return db_prepared(db, "sync_set_error",
			   "UPDATE sync_state SET last_error = $2, updated_at = now() WHERE module = $1",
			   2, (const char *[]){module, error}, NULL);
}

enum rc run_start(struct db *db, const char *kind, const char *module, int64_t *run_id)
{
	char host[256] = "", pid[16];
	char *v = NULL;
	enum rc rc;

	if (gethostname(host, sizeof(host) - 1))
		host[0] = '\0';
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	/* The caller holds the job lock: a run still "running" was killed. */
	rc = db_exec(db,
		     "UPDATE runs SET outcome = 'abandoned', finished_at = now(),"
		     " message = coalesce(message, 'process ended without finishing (killed?)')"
		     " WHERE kind = $1 AND module IS NOT DISTINCT FROM $2 AND outcome = 'running'",
		     2, (const char *[]){kind, module}, NULL);
	if (rc)
		return rc;
	rc = db_query_value(db,
			    "INSERT INTO runs (kind, module, host, pid, backend_pid)"
			    " VALUES ($1, $2, $3, $4::int, pg_backend_pid()) RETURNING id",
			    4, (const char *[]){kind, module, host, pid}, &v);
	*run_id = rc ? 0 : to_i64(v);
	free(v);
	if (!rc && module)
		rc = db_exec(db,
			     "UPDATE sync_state SET last_run_id = $2::bigint WHERE module = $1", 2,
			     (const char *[]){module, (snprintf(pid, sizeof(pid), "%" PRId64, *run_id), pid)},
			     NULL);
	return rc;
}

static void counts_text(const struct run_counts *c, char b[4][24])
{
	snprintf(b[0], 24, "%d", c ? c->pages : 0);
	snprintf(b[1], 24, "%ld", c ? c->rows_seen : 0);
	snprintf(b[2], 24, "%ld", c ? c->rows_applied : 0);
	snprintf(b[3], 24, "%ld", c ? c->rows_deleted : 0);
}

enum rc run_progress(struct db *db, int64_t run_id, const struct run_counts *c)
{
	char id[24], b[4][24];
	snprintf(id, sizeof(id), "%" PRId64, run_id);
	counts_text(c, b);
	return db_prepared(db, "run_progress",
			   "UPDATE runs SET pages = $2::int, rows_seen = $3::bigint,"
			   " rows_applied = $4::bigint, rows_deleted = $5::bigint WHERE id = $1::bigint",
			   5, (const char *[]){id, b[0], b[1], b[2], b[3]}, NULL);
}

enum rc run_finish(struct db *db, int64_t run_id, const char *outcome, const struct run_counts *c,
		   const char *message, const char *details)
{
	char id[24], b[4][24];
	snprintf(id, sizeof(id), "%" PRId64, run_id);
	counts_text(c, b);
	return db_prepared(db, "run_finish",
			   "UPDATE runs SET finished_at = now(), outcome = $2, pages = $3::int,"
			   " rows_seen = $4::bigint, rows_applied = $5::bigint,"
			   " rows_deleted = $6::bigint, message = $7, details = $8::jsonb"
			   " WHERE id = $1::bigint",
			   8, (const char *[]){id, outcome, b[0], b[1], b[2], b[3], message, details},
			   NULL);
}

enum rc gap_open(struct db *db, const char *module, int64_t from, int64_t to, const char *reason)
{
	char f[24], t[24];
	epoch_text(from, f, sizeof(f));
	const char *params[4] = {module, f, num_or_null(to, t, sizeof(t)), reason};
	return db_prepared(db, "gap_open",
			   "INSERT INTO coverage_gaps (module, gap_from, gap_to, reason)"
			   " VALUES ($1, to_timestamp($2::bigint), to_timestamp($3::bigint), $4)",
			   4, params, NULL);
}

enum rc gap_earliest(struct db *db, const char *module, int64_t *from)
{
	char *v = NULL;
	enum rc rc = db_query_value(db,
				    "SELECT floor(extract(epoch FROM min(gap_from)))::bigint FROM coverage_gaps"
				    " WHERE module = $1 AND closed_at IS NULL",
				    1, (const char *[]){module}, &v);
	*from = rc ? 0 : to_i64(v);
	free(v);
	return rc;
}

enum rc gap_close_covered(struct db *db, const char *module, int64_t covered_from,
			  int64_t covered_to, int64_t run_id, long *closed)
{
	char f[24], t[24], r[24];
	struct db_res *res = NULL;
	epoch_text(covered_from, f, sizeof(f));
	epoch_text(covered_to, t, sizeof(t));
	snprintf(r, sizeof(r), "%" PRId64, run_id);
	enum rc rc = db_prepared(db, "gap_close",
				 "UPDATE coverage_gaps SET closed_at = now(), closed_by = $4::bigint"
				 " WHERE module = $1 AND closed_at IS NULL"
				 " AND gap_from >= to_timestamp($2::bigint)"
				 " AND coalesce(gap_to, opened_at) <= to_timestamp($3::bigint)",
				 4, (const char *[]){module, f, t, r}, &res);
	*closed = rc ? 0 : db_res_affected(res);
	db_res_free(res);
	return rc;
}

const char *sync_channel_due(const struct sync_row *row, uint64_t channel_id, int64_t now,
			     long renew_margin, long check_interval)
{
	if (row->channel_id != channel_id)
		return "no channel recorded for this id";
	if (strcmp(row->channel_status, "active") != 0)
		return "channel not active";
	if (!row->channel_expiry)
		return "expiry unknown";
	if (row->channel_expiry - now < renew_margin)
		return "expires within renew_margin";
	if (!row->channel_checked || now - row->channel_checked >= check_interval)
		return "liveness not confirmed within check_interval";
	return NULL;
}
