/* inbox.c — record notifications and apply them (see inbox.h). */
#include "inbox.h"
#include "log.h"
#include "merge.h"
#include "schema.h"
#include "spool.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* server_time (ms) as a timestamptz literal PostgreSQL parses exactly. */
static void ms_literal(int64_t ms, char *buf, size_t cap)
{
	snprintf(buf, cap, "%" PRId64 ".%03d", ms / 1000, (int)(ms % 1000));
}

/* Columns affected_values may never set: identity and the freshness clock. */
static bool system_column(const char *column)
{
	return !strcmp(column, "id") || !strcmp(column, "modified_time") ||
	       !strcmp(column, "created_time");
}

/* Apply one affected_values entry to its existing live row, at once, so
 * the change is visible before the record is fetched. The fetch that the
 * notification queued stays the source of truth: modified_time is left
 * alone, and only the newest notification of the id applies (none newer
 * waits in fetch_queue or dirty), so a reordered older one cannot overwrite
 * a newer one. A newer one already fetched left a newer modified_time. */
static enum rc apply_values(struct db *db, const struct module_schema *schema,
			    const char *qtable, int64_t id, struct json_object *values,
			    const char *when)
{
	char idtext[24];
	const char **params = NULL;
	char **cells = NULL;
	char *sets = xstrdup(""), *sql = NULL;
	size_t n = 0, cap = (size_t)json_object_object_length(values) + 3;
	enum rc rc = RC_OK;

	params = xcalloc(cap, sizeof(*params));
	cells = xcalloc(cap, sizeof(*cells));
	snprintf(idtext, sizeof(idtext), "%" PRId64, id);
	params[n++] = idtext;
	params[n++] = when;
	params[n++] = schema->module;
	json_object_object_foreach(values, key, v)
	{
		const struct zcolumn *c = schema_column(schema, key);
		if (!c || system_column(c->column))
			continue;
		char ref[16];
		snprintf(ref, sizeof(ref), "$%zu", n + 1);
		char *qc = db_quote_ident(db, c->column);
		char *cast = schema_cast_expr(c->kind, ref);
		char *more = xasprintf("%s%s%s = %s", sets, *sets ? ", " : "", qc, cast);
		free(sets);
		sets = more;
		free(qc);
		free(cast);
		cells[n] = schema_json_cell(v, c->kind);
		params[n] = cells[n];
		n++;
	}
	if (!*sets)
		goto out;
	sql = xasprintf("UPDATE %s SET %s, synced_at = now(), source = 'notify'"
			" WHERE id = $1::bigint AND deleted_at IS NULL"
			" AND (modified_time IS NULL OR modified_time <= to_timestamp($2::numeric))"
			" AND NOT EXISTS (SELECT 1 FROM fetch_queue q WHERE q.module = $3"
			"  AND q.server_time > to_timestamp($2::numeric) AND $1::bigint = ANY(q.ids))"
			" AND NOT EXISTS (SELECT 1 FROM dirty d WHERE d.module = $3 AND d.id = $1::bigint"
			"  AND d.server_time > to_timestamp($2::numeric))",
			qtable, sets);
	rc = db_exec(db, sql, (int)n, params, NULL);
out:
	for (size_t i = 0; i < cap; i++)
		free(cells[i]);
	free(cells);
	free(params);
	free(sets);
	free(sql);
	return rc;
}

static enum rc apply_affected(struct db *db, const struct notification *n, const char *when)
{
	struct json_object *arr = n->affected_values;
	struct module_schema *schema = NULL;
	char *qtable = NULL;
	enum rc rc;

	if (!arr || n->op == NOTIF_DELETE || json_object_array_length(arr) == 0)
		return RC_OK;
	rc = schema_load(db, n->module, &schema);
	if (rc)
		return rc == RC_NOTFOUND ? RC_OK : rc;
	qtable = db_quote_ident(db, schema->table);
	for (size_t i = 0; i < json_object_array_length(arr) && !rc; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i), *rid, *values;
		int64_t id;
		bool listed = false;
		if (!json_object_is_type(e, json_type_object) ||
		    !json_object_object_get_ex(e, "record_id", &rid) ||
		    !json_object_object_get_ex(e, "values", &values) ||
		    !json_object_is_type(values, json_type_object) ||
		    notification_parse_id(json_object_get_string(rid), &id))
			continue;
		for (size_t k = 0; k < n->nids && !listed; k++)
			listed = n->ids[k] == id;
		if (listed)
			rc = apply_values(db, schema, qtable, id, values, when);
	}
	free(qtable);
	module_schema_free(schema);
	return rc;
}

/* A delete's tombstones, each stamped with the notification's server_time. */
static enum rc apply_tombstones(struct db *db, const struct notification *n)
{
	int64_t *times = xmalloc(n->nids * sizeof(*times));
	long applied = 0;

	for (size_t i = 0; i < n->nids; i++)
		times[i] = n->server_time_ms;
	enum rc rc = merge_tombstones(db, n->module, n->ids, times, n->nids, "notify", &applied);
	free(times);
	return rc;
}

/* Apply one pending notification's effect and mark it processed. Runs
 * inside the caller's transaction (inbox_apply_pending). */
static enum rc apply(struct db *db, const struct notification *n, const char *inbox_id)
{
	char *ids = db_int64_array(n->ids, n->nids);
	char when[32];
	enum rc rc;

	ms_literal(n->server_time_ms, when, sizeof(when));
	if (n->op == NOTIF_DELETE) {
		rc = apply_tombstones(db, n);
		if (rc)
			goto out;
	} else {
		rc = db_prepared(db, "inbox_queue",
				 "INSERT INTO fetch_queue (inbox_id, module, ids, server_time)"
				 " VALUES ($1::bigint, $2, $3::bigint[], to_timestamp($4::numeric))"
				 " ON CONFLICT (inbox_id) DO NOTHING",
				 4, (const char *[]){inbox_id, n->module, ids, when}, NULL);
		if (rc)
			goto out;
		rc = apply_affected(db, n, when);
		if (rc)
			goto out;
	}
	rc = db_prepared(db, "inbox_done", "UPDATE inbox SET processed_at = now() WHERE id = $1",
			 1, (const char *[]){inbox_id}, NULL);
out:
	free(ids);
	return rc;
}

/* Record a notification and, when the module table is ready, queue its ids
 * for a fetch (one fetch_queue row, not a dirty row per id: that upsert was
 * half of PostgreSQL's time per notification, sql/002_fetch_queue.sql):
 * one statement, so one round trip, and no BEGIN/COMMIT for an insert
 * or update without affected_values (a statement is atomic on its own).
 * This replaced six round trips (BEGIN; insert; table_ready lookup; dirty
 * upsert; UPDATE inbox SET processed_at; COMMIT) — bench/bench_webhook.py,
 * docs/benchmarks.md "Webhook". An applied row is written processed
 * (processed_at = now(), the transaction's time, as that UPDATE set it):
 * the UPDATE could not be HOT (inbox_pending's predicate names
 * processed_at), so it wrote a second copy of the row and new entries in the
 * primary key and md5(raw) indexes. No row back: a duplicate (md5(raw) seen
 * before). applied false: pending, the module table is not there yet
 * (inbox_apply_pending applies it later). */
static const char RECORD_SQL[] =
	"WITH ready AS ("
	"  SELECT coalesce((SELECT table_ready FROM sync_state WHERE module = $2::text),"
	"   false) AS ok),"
	" ins AS ("
	"  INSERT INTO inbox"
	"   (channel_id, module, operation, ids, server_time, raw, via, processed_at)"
	"  SELECT $1::bigint, $2::text, $3::text, $4::bigint[], to_timestamp($5::numeric),"
	"   $6::text, $7::text, CASE WHEN ready.ok THEN now() END FROM ready"
	"  ON CONFLICT ((md5(raw))) DO NOTHING"
	"  RETURNING id, processed_at IS NOT NULL AS applied),"
	" queued AS ("
	"  INSERT INTO fetch_queue (inbox_id, module, ids, server_time)"
	"  SELECT ins.id, $2::text, $4::bigint[], to_timestamp($5::numeric)"
	"  FROM ins WHERE ins.applied AND $3::text <> 'delete')"
	" SELECT id, applied FROM ins";

enum rc inbox_record(struct db *db, const struct notification *n, const char *raw, size_t len,
		     const char *via, enum inbox_outcome *outcome)
{
	struct db_res *res = NULL;
	char channel[24], when[32];
	char *ids = db_int64_array(n->ids, n->nids);
	char *body = xstrndup(raw, len);
	/* Tombstones and affected_values take more statements after the
	 * record: one transaction around them all. */
	bool more = n->op == NOTIF_DELETE ||
		    (n->affected_values && json_object_array_length(n->affected_values) > 0);
	enum rc rc = RC_OK;

	snprintf(channel, sizeof(channel), "%" PRIu64, n->channel_id);
	ms_literal(n->server_time_ms, when, sizeof(when));
	if (more) {
		rc = db_begin(db);
		if (rc)
			goto out;
	}
	const char *p[7] = {channel, n->module, notif_op_str(n->op), ids, when, body, via};
	rc = db_prepared(db, "inbox_record", RECORD_SQL, 7, p, &res);
	if (rc)
		goto fail;
	if (db_res_rows(res) == 0) {
		*outcome = INBOX_DUPLICATE;
	} else if (!db_res_get(res, 0, 1) || db_res_get(res, 0, 1)[0] != 't') {
		*outcome = INBOX_PENDING;
	} else {
		*outcome = INBOX_APPLIED;
		if (n->op == NOTIF_DELETE)
			rc = apply_tombstones(db, n);
		else if (more)
			rc = apply_affected(db, n, when);
		if (rc)
			goto fail;
	}
	if (more) {
		rc = db_commit(db);
		if (rc)
			goto fail;
	}
	goto out;
fail:
	db_rollback(db);
out:
	db_res_free(res);
	free(ids);
	free(body);
	return rc;
}

enum rc inbox_apply_pending(struct db *db, const char *module, long *applied)
{
	struct db_res *res = NULL;
	enum rc rc;

	*applied = 0;
	for (;;) {
		/* One notification per transaction, claimed so that two appliers
		 * (webhook threads, batch programs) never apply the same one. */
		rc = db_begin(db);
		if (rc)
			return rc;
		rc = db_prepared(db, "inbox_claim",
				 "SELECT id, raw FROM inbox WHERE module = $1 AND processed_at IS NULL"
				 " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
				 1, (const char *[]){module}, &res);
		if (rc)
			goto fail;
		if (db_res_rows(res) == 0) {
			db_res_free(res);
			return db_commit(db);
		}
		const char *id = db_res_get(res, 0, 0);
		const char *raw = db_res_get(res, 0, 1);
		struct notification *n = NULL;
		char err[256];
		if (notification_parse(raw, strlen(raw), SIZE_MAX, &n, err, sizeof(err)) != RC_OK) {
			/* Validated before it was stored; keep it, but out of the way. */
			rc = db_prepared(db, "inbox_bad",
					 "UPDATE inbox SET processed_at = now(), error = $2 WHERE id = $1",
					 2, (const char *[]){id, err}, NULL);
		} else {
			rc = apply(db, n, id);
			notification_free(n);
		}
		db_res_free(res);
		res = NULL;
		if (rc)
			goto fail;
		rc = db_commit(db);
		if (rc)
			goto fail;
		(*applied)++;
	}
fail:
	db_res_free(res);
	db_rollback(db);
	return rc;
}

struct replay_ctx {
	struct db *db;
	const char *dir;
	long replayed;
};

static enum rc replay_one(void *vctx, const char *body, size_t len, const char *name)
{
	struct replay_ctx *ctx = vctx;
	struct notification *n = NULL;
	enum inbox_outcome outcome;
	char err[256];
	enum rc rc;

	if (notification_parse(body, len, SIZE_MAX, &n, err, sizeof(err)) != RC_OK) {
		/* It was validated before it was spooled: the file is damaged. */
		log_error("dropping unreadable spool file", "file=%s err=%s", log_q(name),
			  log_q(err));
		return RC_OK;
	}
	rc = inbox_record(ctx->db, n, body, len, "spool", &outcome);
	notification_free(n);
	if (rc && !db_transient(ctx->db)) {
		/* It would fail the same way forever and hold up the rest. */
		log_error("spooled notification cannot be applied; kept in failed/", "file=%s err=%s",
			  log_q(name), log_q(db_error(ctx->db)));
		return spool_write_failed(ctx->dir, body, len);
	}
	if (rc)
		return rc;
	ctx->replayed++;
	return RC_OK;
}

enum rc inbox_replay_spool(struct db *db, const char *dir, long *replayed)
{
	struct replay_ctx ctx = {db, dir, 0};
	size_t done = 0;
	enum rc rc = spool_replay(dir, 0, replay_one, &ctx, &done);

	*replayed = ctx.replayed;
	if (ctx.replayed)
		log_info("spool replayed into the inbox", "count=%ld", ctx.replayed);
	if (rc)
		log_warn("spool replay stopped", "err=%s replayed=%ld", log_q(db_error(db)),
			 ctx.replayed);
	return rc;
}
