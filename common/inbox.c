/* inbox.c — record notifications and apply them (see inbox.h). */
#include "inbox.h"
#include "log.h"
#include "schema.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A PostgreSQL array literal of the ids: {1,2,3}. Caller frees. */
static char *ids_literal(const int64_t *ids, size_t n)
{
	size_t cap = n * 21 + 3, len = 0;
	char *s = xmalloc(cap);

	s[len++] = '{';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s%" PRId64, i ? "," : "", ids[i]);
	s[len++] = '}';
	s[len] = '\0';
	return s;
}

/* server_time (ms) as a timestamptz literal PostgreSQL parses exactly. */
static void ms_literal(int64_t ms, char *buf, size_t cap)
{
	snprintf(buf, cap, "%" PRId64 ".%03d", ms / 1000, (int)(ms % 1000));
}

static enum rc table_exists(struct db *db, const char *module, bool *exists)
{
	struct db_res *res = NULL;
	enum rc rc;

	*exists = false;
	rc = db_prepared(db, "inbox_table_ready",
			 "SELECT table_ready FROM sync_state WHERE module = $1", 1,
			 (const char *[]){module}, &res);
	if (rc)
		return rc;
	const char *v = db_res_get(res, 0, 0);
	*exists = v && v[0] == 't';
	db_res_free(res);
	return RC_OK;
}

/* Apply one notification's effect. Runs inside the caller's transaction. */
static enum rc apply(struct db *db, const struct notification *n, const char *inbox_id)
{
	char *table = schema_table_name(n->module);
	char *qtable = db_quote_ident(db, table);
	char *ids = ids_literal(n->ids, n->nids);
	char when[32];
	char *sql = NULL, *name = NULL;
	enum rc rc;

	ms_literal(n->server_time_ms, when, sizeof(when));
	if (n->op == NOTIF_DELETE) {
		/* Tombstone by the freshness rule: a delete older than what we hold
		 * changes nothing; an unknown id gets a tombstone row so that a
		 * stale export row cannot bring it back later. */
		sql = xasprintf(
			"INSERT INTO %s AS t (id, deleted_at, synced_at, source)"
			" SELECT DISTINCT unnest($1::bigint[]), to_timestamp($2::numeric), now(), 'notify'"
			" ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at,"
			"  synced_at = now(), source = 'notify'"
			" WHERE (t.modified_time IS NULL OR t.modified_time <= excluded.deleted_at)"
			"  AND (t.deleted_at IS NULL OR t.deleted_at < excluded.deleted_at)",
			qtable);
		name = xasprintf("tomb_%s", table);
		rc = db_prepared(db, name, sql, 2, (const char *[]){ids, when}, NULL);
		if (rc)
			goto out;
		/* Fetching a record deleted after it was marked is pointless. */
		rc = db_prepared(db, "inbox_undirty",
				 "DELETE FROM dirty WHERE module = $1 AND id = ANY($2::bigint[])"
				 " AND (server_time IS NULL OR server_time <= to_timestamp($3::numeric))",
				 3, (const char *[]){n->module, ids, when}, NULL);
		if (rc)
			goto out;
	} else {
		rc = db_prepared(db, "inbox_dirty",
				 "INSERT INTO dirty (module, id, server_time)"
				 " SELECT $1, unnest($2::bigint[]), to_timestamp($3::numeric)"
				 " ON CONFLICT (module, id) DO UPDATE"
				 " SET server_time = greatest(dirty.server_time, excluded.server_time),"
				 "  next_try = least(dirty.next_try, now())",
				 3, (const char *[]){n->module, ids, when}, NULL);
		if (rc)
			goto out;
	}
	rc = db_prepared(db, "inbox_done", "UPDATE inbox SET processed_at = now() WHERE id = $1",
			 1, (const char *[]){inbox_id}, NULL);
out:
	free(sql);
	free(name);
	free(table);
	free(qtable);
	free(ids);
	return rc;
}

enum rc inbox_record(struct db *db, const struct notification *n, const char *raw, size_t len,
		     const char *via, enum inbox_outcome *outcome)
{
	struct db_res *res = NULL;
	char channel[24], when[32];
	char *ids = ids_literal(n->ids, n->nids);
	char *body = xstrndup(raw, len);
	bool ready = false;
	enum rc rc;

	snprintf(channel, sizeof(channel), "%" PRIu64, n->channel_id);
	ms_literal(n->server_time_ms, when, sizeof(when));
	rc = db_begin(db);
	if (rc)
		goto out;
	const char *p[7] = {channel, n->module, notif_op_str(n->op), ids, when, body, via};
	rc = db_prepared(db, "inbox_insert",
			 "INSERT INTO inbox (channel_id, module, operation, ids, server_time, raw, via)"
			 " VALUES ($1, $2, $3, $4::bigint[], to_timestamp($5::numeric), $6, $7)"
			 " ON CONFLICT ((md5(raw))) DO NOTHING RETURNING id",
			 7, p, &res);
	if (rc)
		goto fail;
	if (db_res_rows(res) == 0) {
		*outcome = INBOX_DUPLICATE;
		rc = db_commit(db);
		goto out;
	}
	rc = table_exists(db, n->module, &ready);
	if (rc)
		goto fail;
	if (!ready) {
		*outcome = INBOX_PENDING;
		rc = db_commit(db);
		goto out;
	}
	rc = apply(db, n, db_res_get(res, 0, 0));
	if (rc)
		goto fail;
	rc = db_commit(db);
	if (rc)
		goto fail;
	*outcome = INBOX_APPLIED;
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
