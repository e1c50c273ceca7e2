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

/* A field affected_values names that we do not know (added or renamed in
 * Zoho): the fields metadata is read at the next chance (schemasync.h);
 * one write, the first time only. */
static enum rc note_unknown_fields(struct db *db, const struct module_schema *schema,
				   struct json_object *values)
{
	json_object_object_foreach(values, key, v)
	{
		(void)v;
		if (!schema_column(schema, key) && key[0] != '$' && strcasecmp(key, "id"))
			return db_prepared(db, "inbox_fields_stale",
					   "UPDATE sync_state SET fields_checked = NULL WHERE module = $1"
					   " AND fields_checked IS NOT NULL",
					   1, (const char *[]){schema->module}, NULL);
	}
	return RC_OK;
}

static enum rc apply_affected(struct db *db, const struct notification *n, const char *when)
{
	struct json_object *arr = n->affected_values;
	struct module_schema *schema = NULL;
	enum rc rc;

	if (!arr || n->op == NOTIF_DELETE || json_object_array_length(arr) == 0)
		return RC_OK;
	rc = schema_load(db, n->module, &schema);
	if (rc)
		return rc == RC_NOTFOUND ? RC_OK : rc;
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
		if (!listed)
			continue;
		rc = note_unknown_fields(db, schema, values);
		if (!rc)
			rc = merge_preview(db, schema, id, values, when);
	}
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

bool inbox_batchable(const struct notification *n)
{
	return !n->affected_values || json_object_array_length(n->affected_values) == 0;
}

/* RECORD_SQL for many: the notifications come as parallel arrays (ids as
 * bigint[] literals, one text each), each module's table_ready is joined
 * in, and the answer names each notification by its place in the arrays.
 * The inbox rows are numbered in that order, as one by one would. A
 * notification whose body is already in the inbox has no row in `ins`: a
 * duplicate. The caller sends no body twice, so a body names one input. */
static const char RECORD_BATCH_SQL[] =
	"WITH input AS ("
	"  SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],"
	"   $5::numeric[], $6::text[]) WITH ORDINALITY"
	"   AS u(channel_id, module, operation, ids, server_time, raw, k)),"
	" ins AS ("
	"  INSERT INTO inbox"
	"   (channel_id, module, operation, ids, server_time, raw, via, processed_at)"
	"  SELECT u.channel_id, u.module, u.operation, u.ids::bigint[],"
	"   to_timestamp(u.server_time), u.raw, $7::text,"
	"   CASE WHEN s.table_ready THEN now() END"
	"  FROM input u LEFT JOIN sync_state s ON s.module = u.module ORDER BY u.k"
	"  ON CONFLICT ((md5(raw))) DO NOTHING"
	"  RETURNING id, module, operation, ids, server_time, raw,"
	"   processed_at IS NOT NULL AS applied),"
	" queued AS ("
	"  INSERT INTO fetch_queue (inbox_id, module, ids, server_time)"
	"  SELECT id, module, ids, server_time FROM ins"
	"  WHERE applied AND operation <> 'delete')"
	" SELECT u.k, ins.applied FROM input u LEFT JOIN ins ON ins.raw = u.raw";

/* The tombstones of the applied deletes among items, one statement per
 * module (merge_tombstones takes each id's own time). */
static enum rc batch_tombstones(struct db *db, const struct inbox_item *items, size_t n)
{
	size_t cap = 0;
	enum rc rc = RC_OK;

	for (size_t i = 0; i < n; i++)
		cap += items[i].n->nids;
	int64_t *ids = xmalloc((cap ? cap : 1) * sizeof(*ids));
	int64_t *times = xmalloc((cap ? cap : 1) * sizeof(*times));
	bool *done = xcalloc(n ? n : 1, sizeof(*done));
	for (size_t i = 0; i < n && !rc; i++) {
		const struct notification *first = items[i].n;
		size_t m = 0;
		if (done[i] || first->op != NOTIF_DELETE || items[i].outcome != INBOX_APPLIED)
			continue;
		for (size_t j = i; j < n; j++) {
			const struct notification *o = items[j].n;
			if (o->op != NOTIF_DELETE || items[j].outcome != INBOX_APPLIED ||
			    strcmp(o->module, first->module))
				continue;
			done[j] = true;
			for (size_t k = 0; k < o->nids; k++, m++) {
				ids[m] = o->ids[k];
				times[m] = o->server_time_ms;
			}
		}
		long applied = 0;
		rc = merge_tombstones(db, first->module, ids, times, m, "notify", &applied);
	}
	free(done);
	free(times);
	free(ids);
	return rc;
}

enum rc inbox_record_batch(struct db *db, struct inbox_item *items, size_t n, const char *via)
{
	struct db_res *res = NULL;
	const char **modules = xcalloc(n ? n : 1, sizeof(*modules));
	const char **ops = xcalloc(n ? n : 1, sizeof(*ops));
	const char **raws = xcalloc(n ? n : 1, sizeof(*raws));
	size_t *lens = xcalloc(n ? n : 1, sizeof(*lens));
	char **idlits = xcalloc(n ? n : 1, sizeof(*idlits));
	size_t *sent = xcalloc(n ? n : 1, sizeof(*sent));  /* item of each input */
	int64_t *channels = xcalloc(n ? n : 1, sizeof(*channels));
	char (*whens)[32] = xcalloc(n ? n : 1, sizeof(*whens));
	const char **when_ptrs = xcalloc(n ? n : 1, sizeof(*when_ptrs));
	char *p_channels = NULL, *p_modules = NULL, *p_ops = NULL, *p_ids = NULL;
	char *p_raws = NULL, *p_times = NULL;
	size_t nsent = 0;
	bool deletes = false, in_txn = false;
	enum rc rc = RC_OK;

	for (size_t i = 0; i < n; i++) {
		const struct notification *nt = items[i].n;
		bool repeat = false;
		/* A body sent twice would name two inputs; the second is a
		 * duplicate as it would be one by one. */
		for (size_t j = 0; j < nsent && !repeat; j++)
			repeat = lens[j] == items[i].len && !memcmp(raws[j], items[i].raw, items[i].len);
		items[i].outcome = INBOX_DUPLICATE;
		if (repeat)
			continue;
		channels[nsent] = (int64_t)nt->channel_id;
		modules[nsent] = nt->module;
		ops[nsent] = notif_op_str(nt->op);
		raws[nsent] = items[i].raw;
		lens[nsent] = items[i].len;
		idlits[nsent] = db_int64_array(nt->ids, nt->nids);
		ms_literal(nt->server_time_ms, whens[nsent], sizeof(whens[nsent]));
		when_ptrs[nsent] = whens[nsent];
		deletes = deletes || nt->op == NOTIF_DELETE;
		sent[nsent++] = i;
	}
	if (nsent == 0)
		goto out;
	p_channels = db_int64_array(channels, nsent);
	p_modules = db_text_array(modules, NULL, nsent);
	p_ops = db_text_array(ops, NULL, nsent);
	p_ids = db_text_array((const char *const *)idlits, NULL, nsent);
	p_raws = db_text_array(raws, lens, nsent);
	p_times = db_text_array(when_ptrs, NULL, nsent);
	if (deletes) {
		rc = db_begin(db);
		if (rc)
			goto out;
		in_txn = true;
	}
	const char *p[7] = {p_channels, p_modules, p_ops, p_ids, p_times, p_raws, via};
	rc = db_prepared(db, "inbox_record_batch", RECORD_BATCH_SQL, 7, p, &res);
	if (rc)
		goto out;
	if (db_res_rows(res) != (int)nsent) {
		log_error("inbox batch: unexpected answer", "rows=%d sent=%zu", db_res_rows(res),
			  nsent);
		rc = RC_DB;
		goto out;
	}
	for (int r = 0; r < (int)nsent; r++) {
		long k = strtol(db_res_get(res, r, 0), NULL, 10);
		const char *applied = db_res_get(res, r, 1);
		if (k < 1 || k > (long)nsent) {
			rc = RC_DB;
			goto out;
		}
		items[sent[k - 1]].outcome = !applied ? INBOX_DUPLICATE
					     : applied[0] == 't' ? INBOX_APPLIED
								 : INBOX_PENDING;
	}
	if (deletes) {
		rc = batch_tombstones(db, items, n);
		if (rc)
			goto out;
		rc = db_commit(db);
		if (!rc)
			in_txn = false;
	}
out:
	if (in_txn)
		db_rollback(db);
	db_res_free(res);
	for (size_t i = 0; i < nsent; i++)
		free(idlits[i]);
	free(idlits);
	free(p_channels);
	free(p_modules);
	free(p_ops);
	free(p_ids);
	free(p_raws);
	free(p_times);
	free(when_ptrs);
	free(whens);
	free(channels);
	free(sent);
	free(lens);
	free(raws);
	free(ops);
	free(modules);
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
	char err[256], *clean = NULL;
	size_t clen = 0;
	enum rc rc = RC_OK;

	if (notification_parse(body, len, SIZE_MAX, &n, err, sizeof(err)) != RC_OK) {
		/* It was validated before it was spooled: the file is damaged. */
		log_error("dropping unreadable spool file", "file=%s err=%s", log_q(name),
			  log_q(err));
		goto out;
	}
	/* Spooled by a webhook that kept the channel token: never store it. */
	clean = notification_strip_token(body, len, &clen);
	rc = inbox_record(ctx->db, n, clean, clen, "spool", &outcome);
	if (rc && !db_transient(ctx->db)) {
		/* It would fail the same way forever and hold up the rest. */
		log_error("spooled notification cannot be applied; kept in failed/", "file=%s err=%s",
			  log_q(name), log_q(db_error(ctx->db)));
		rc = spool_write_failed(ctx->dir, clean, clen);
		goto out;
	}
	if (!rc)
		ctx->replayed++;
out:
	notification_free(n);
	free(clean);
	return rc;
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
