/* incremental.c — catch up whatever the notifications missed (see
 * incremental.h). Every step is idempotent: a run killed anywhere leaves
 * the watermark where it was, and the next run covers the same ground. */
#include "incremental.h"
#include "schemasync.h"
#include "fetch.h"
#include "inbox.h"
#include "log.h"
#include "merge.h"
#include "schema.h"
#include "syncstate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum rc incremental_deletes(struct bulk_ctx *ctx, const char *module, int64_t since,
			    long *seen, long *tombstoned, char *err, size_t errlen)
{
	bool more = true;
	enum rc rc = RC_OK;

	*seen = *tombstoned = 0;
	for (int page = 1; more; page++) {
		struct zoho_deleted *items = NULL;
		size_t n = 0;
		long applied = 0;

		if (ctx->stop && *ctx->stop)
			return RC_INTERRUPTED;
		rc = zoho_deleted_since(ctx->zoho, module, since, page, &items, &n, &more);
		if (rc) {
			snprintf(err, errlen, "%s", zoho_error(ctx->zoho));
			return rc;
		}
		if (n) {
			int64_t *ids = xmalloc(n * sizeof(*ids));
			int64_t *ms = xmalloc(n * sizeof(*ms));
			for (size_t i = 0; i < n; i++) {
				ids[i] = items[i].id;
				ms[i] = items[i].deleted_time * 1000;
			}
			rc = db_begin(ctx->data);
			if (!rc)
				rc = merge_tombstones(ctx->data, module, ids, ms, n, "fetch", &applied);
			if (!rc)
				rc = db_commit(ctx->data);
			if (rc) {
				snprintf(err, errlen, "%s", db_error(ctx->data));
				db_rollback(ctx->data);
			}
			free(ids);
			free(ms);
		}
		free(items);
		if (rc)
			return rc;
		*seen += (long)n;
		*tombstoned += applied;
	}
	return RC_OK;
}

/* The ids a change listing found, in listing order (an id may appear twice
 * when it changed while being listed). */
struct listing {
	int64_t *ids;
	int64_t *modified;
	size_t n, cap;
};

static void listing_free(struct listing *l)
{
	free(l->ids);
	free(l->modified);
	memset(l, 0, sizeof(*l));
}

static void listing_add(struct listing *l, int64_t id, int64_t modified)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->ids = xrealloc(l->ids, l->cap * sizeof(*l->ids));
		l->modified = xrealloc(l->modified, l->cap * sizeof(*l->modified));
	}
	l->ids[l->n] = id;
	l->modified[l->n] = modified;
	l->n++;
}

long incremental_rest_cost(long pages, size_t nids, size_t nfields)
{
	return pages + zoho_fetch_calls(nids, nfields);
}

/* The listed ids whose Modified_Time is newer than our copy's (or than its
 * tombstone), of those from index off on: *newer counts them, and with mark they are put in dirty (one
 * statement), each with its listed Modified_Time as server_time (what
 * asked for it), for fetch_dirty — or for the webhook's housekeeping, which
 * may take them first. */
static enum rc newer_ids(struct db *data, const struct module_schema *schema,
			 const struct listing *l, size_t off, bool mark, long *newer)
{
	char *qtable = db_quote_ident(data, schema->table);
	char *ids = db_int64_array(l->ids + off, l->n - off);
	char *mts = db_int64_array(l->modified + off, l->n - off);
	char *v = NULL;
	char *sql = xasprintf(
		"WITH l AS (SELECT DISTINCT ON (id) id, to_timestamp(mt) AS t"
		"  FROM unnest($2::bigint[], $3::bigint[]) AS l(id, mt) ORDER BY id, mt DESC),"
		" n AS (SELECT l.id, l.t FROM l LEFT JOIN %s r ON r.id = l.id"
		"  WHERE r.id IS NULL OR r.modified_time IS NULL OR r.modified_time < l.t"
		"   OR r.deleted_at < l.t),"
		" ins AS (INSERT INTO dirty AS d (module, id, server_time)"
		"  SELECT $1, n.id, n.t FROM n WHERE $4::bool ORDER BY n.id"
		"  ON CONFLICT (module, id) DO UPDATE"
		"  SET server_time = greatest(d.server_time, excluded.server_time) RETURNING 1)"
		" SELECT (SELECT count(*) FROM n) + 0 * (SELECT count(*) FROM ins)",
		qtable);
	enum rc rc = db_query_value(data, sql, 4,
				    (const char *[]){schema->module, ids, mts, mark ? "t" : "f"},
				    &v);

	*newer = (!rc && v) ? atol(v) : 0;
	free(v);
	free(sql);
	free(mts);
	free(ids);
	free(qtable);
	return rc;
}

/* List what changed after from, oldest first, page by page: each page asks
 * again with If-Modified-Since moved to the last Modified_Time read less
 * one second (records tied on that second are read again and dropped), so
 * rows that move under the listing cannot make it skip any. Stops once
 * every record modified up to the first answer's Date (*date, Zoho's clock)
 * is listed. *bulk is set (with the reason in *why) when the listing cannot
 * go on or the REST path would cost more than [sync] bulk_threshold. */
static enum rc list_changes(struct bulk_ctx *ctx, const struct module_schema *schema,
			    int64_t from, size_t nfields, struct incremental_result *res,
			    struct listing *l, bool *bulk, const char **why, char *err,
			    size_t errlen)
{
	const char *module = schema->module;
	struct zoho_listed *prev = NULL;
	size_t nprev = 0;
	long newer = 0; /* of the ids listed so far, newer than our copy (about) */
	int64_t cursor = from - 1; /* If-Modified-Since is "after": >= from, as the bulk criteria */
	enum rc rc = RC_OK;

	*bulk = false;
	*why = NULL;
	for (;;) {
		struct zoho_listed *items = NULL;
		size_t n = 0;
		bool more = false;
		int64_t date = 0;

		if (ctx->stop && *ctx->stop) {
			rc = RC_INTERRUPTED;
			goto out;
		}
		rc = zoho_list_modified(ctx->zoho, module, cursor, &items, &n, &more, &date);
		if (rc) {
			snprintf(err, errlen, "%s", zoho_error(ctx->zoho));
			goto out;
		}
		if (res->list_pages++ == 0) {
			res->date = date;
			if (!date) {
				free(items);
				*bulk = true;
				*why = "Zoho's answer had no Date header";
				goto out;
			}
		}
		size_t added = l->n;
		for (size_t i = 0; i < n; i++) {
			bool again = false;
			/* the second the last page ended on is read again */
			for (size_t j = nprev; j-- > 0 && prev[j].modified == items[i].modified;)
				again = again || prev[j].id == items[i].id;
			if (!again)
				listing_add(l, items[i].id, items[i].modified);
		}
		free(prev);
		prev = items;
		nprev = n;
		if (!more || n < ZOHO_LIST_PAGE || items[n - 1].modified > res->date)
			break;
		if (items[0].modified == items[n - 1].modified || items[n - 1].modified - 1 <= cursor) {
			*bulk = true;
			*why = "a whole page of changes shares one second";
			goto out;
		}
		cursor = items[n - 1].modified - 1;
		/* Project the REST path's cost from the ids newer than ours (a
		 * busy module's listing is mostly what the webhook fetched). */
		long page_newer = 0;
		rc = newer_ids(ctx->data, schema, l, added, false, &page_newer);
		if (rc) {
			snprintf(err, errlen, "%s", db_error(ctx->data));
			goto out;
		}
		newer += page_newer;
		if (incremental_rest_cost(res->list_pages + 1, (size_t)newer, nfields) >
		    ctx->cfg->bulk_threshold) {
			*bulk = true;
			*why = "more changes than bulk_threshold credits fetch by REST";
			goto out;
		}
	}
out:
	free(prev);
	return rc;
}

enum rc incremental_module(struct bulk_ctx *ctx, const char *module,
			   struct incremental_result *res, char *err, size_t errlen)
{
	struct module_schema *schema = NULL;
	struct sync_row row;
	struct fetch_stats fs;
	struct listing listing = {0};
	int64_t gap_from = 0;
	enum rc rc;

	memset(res, 0, sizeof(*res));
	rc = sync_get(ctx->data, module, &row);
	if (rc)
		goto dberr;
	if (!row.watermark || !row.table_ready) {
		snprintf(err, errlen, "no watermark yet: run initial_sync for this module first");
		return RC_NOTFOUND;
	}
	rc = inbox_apply_pending(ctx->data, module, &res->inbox_applied);
	if (rc)
		goto dberr;
	/* Zoho's fields, when [sync] schema_check says it is time (1 credit),
	 * and the back-fills still due. A failure leaves the schema as it was. */
	if (schema_refresh(ctx, module, SCHEMA_EVERY, true, NULL, NULL) != RC_OK)
		log_warn("fields metadata not refreshed", "");
	/* Ids still dirty (fetch failures, webhook down after recording). */
	rc = fetch_dirty(ctx->data, ctx->zoho, module, SIZE_MAX, &fs, err, errlen);
	if (rc && fs.schema_stale) {
		/* Zoho no longer has a field we asked for: read its fields and
		 * try again. */
		if (schema_refresh(ctx, module, SCHEMA_SOON, true, NULL, NULL) == RC_OK) {
			res->fetched += fs.returned;
			err[0] = '\0';
			rc = fetch_dirty(ctx->data, ctx->zoho, module, SIZE_MAX, &fs, err, errlen);
		}
	}
	res->fetched += fs.returned;
	if (rc) {
		log_warn("fetch of dirty ids failed; the export below covers them", "err=%s",
			 log_q(err));
		err[0] = '\0';
	}
	rc = schema_load(ctx->data, module, &schema);
	if (rc)
		goto dberr;
	rc = gap_earliest(ctx->data, module, &gap_from);
	if (rc)
		goto dberr;
	res->from = row.watermark - ctx->cfg->overlap;
	if (gap_from && gap_from - ctx->cfg->overlap < res->from)
		res->from = gap_from - ctx->cfg->overlap;
	/* First ask cheaply what changed after from (304: nothing, 1 credit). */
	size_t nfields = schema->ncols ? schema->ncols - 1 : 0; /* id is not asked for */
	bool bulk = false;
	const char *why = NULL;
	rc = list_changes(ctx, schema, res->from, nfields, res, &listing, &bulk, &why, err, errlen);
	if (rc)
		goto out;
	if (!bulk && listing.n) {
		rc = newer_ids(ctx->data, schema, &listing, 0, false, &res->marked);
		if (rc)
			goto dberr;
		if (incremental_rest_cost(res->list_pages, (size_t)res->marked, nfields) >
		    ctx->cfg->bulk_threshold) {
			bulk = true;
			why = "more changes than bulk_threshold credits fetch by REST";
		} else if (res->marked) {
			rc = newer_ids(ctx->data, schema, &listing, 0, true, &res->marked);
			if (rc)
				goto dberr;
		}
	}
	res->listed = (long)listing.n;
	if (bulk) {
		/* Modified_Time >= from, no upper bound: the job's creation time
		 * (Zoho's clock) becomes the new watermark, and everything
		 * modified before it is in the export. */
		log_info("catching up with Bulk Read", "listed=%zu reason=%s", listing.n,
			 log_q(why));
		rc = bulk_export(ctx, module, schema, "incremental", res->from, 0, MERGE_BULK,
				 &res->bulk, err, errlen);
		if (rc)
			goto out;
		/* A column we do not know, or one we expect missing: a field
		 * Zoho gained, renamed or removed. The values of a new one for
		 * the rows just merged come with the back-fill; rows deferred
		 * to a fetch that asked for a field Zoho no longer has are
		 * fetched again. */
		if (res->bulk.unknown_columns) {
			if (schema_refresh(ctx, module, SCHEMA_SOON, true, NULL, NULL) != RC_OK)
				log_warn("fields metadata not refreshed", "");
			else if (res->bulk.rows_deferred &&
				 fetch_dirty(ctx->data, ctx->zoho, module, SIZE_MAX, &fs, err,
					     errlen) != RC_OK) {
				log_warn("deferred rows stay dirty", "err=%s", log_q(err));
				err[0] = '\0';
			}
		}
		res->watermark = res->bulk.started;
	} else {
		/* Everything modified up to the first answer's Date is listed:
		 * fetch what is newer than our copy (≤ 100 ids a call, fetch rule).
		 * An id Zoho does not return stays in dirty with backoff. */
		if (res->marked) {
			rc = fetch_dirty(ctx->data, ctx->zoho, module, SIZE_MAX, &fs, err, errlen);
			res->fetched += fs.returned;
			if (rc)
				goto out;
		}
		res->watermark = res->date;
	}
	rc = incremental_deletes(ctx, module, res->from, &res->deleted_seen, &res->tombstoned, err,
				 errlen);
	if (rc)
		goto out;
	/* Parents the export above wrote have stale line items (fetch.h). A
	 * failure is a warning: they stay stale until the next run. */
	struct fetch_after_bulk_stats ls;
	if (fetch_after_bulk(ctx->data, ctx->zoho, module, &ls, err, errlen) != RC_OK) {
		log_warn("cannot refresh stale line items; the next run retries", "err=%s",
			 log_q(err));
		err[0] = '\0';
	}
	rc = db_begin(ctx->data);
	if (!rc)
		rc = sync_set_watermark(ctx->data, module, res->watermark);
	if (!rc)
		rc = sync_clear_bulk(ctx->data, module);
	if (!rc)
		rc = gap_close_covered(ctx->data, module, res->from, res->watermark, ctx->run_id,
				       &res->gaps_closed);
	if (!rc)
		rc = db_commit(ctx->data);
	if (rc)
		goto dberr;
	goto out;
dberr:
	snprintf(err, errlen, "%s", db_error(ctx->data));
	db_rollback(ctx->data);
out:
	listing_free(&listing);
	module_schema_free(schema);
	return rc;
}
