/* incremental.c — catch up whatever the notifications missed (see
 * incremental.h). Every step is idempotent: a run killed anywhere leaves
 * the watermark where it was, and the next run covers the same ground. */
#include "incremental.h"
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

enum rc incremental_module(struct bulk_ctx *ctx, const char *module,
			   struct incremental_result *res, char *err, size_t errlen)
{
	struct module_schema *schema = NULL;
	struct sync_row row;
	struct fetch_stats fs;
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
	/* Ids still dirty (fetch failures, webhook down after recording). */
	rc = fetch_dirty(ctx->data, ctx->zoho, module, SIZE_MAX, &fs, err, errlen);
	res->fetched = fs.returned;
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
	/* Modified_Time >= from, no upper bound: the job's creation time (Zoho's
	 * clock) becomes the new watermark, and everything modified before it
	 * is in the export. */
	rc = bulk_export(ctx, module, schema, "incremental", res->from, 0, MERGE_BULK, &res->bulk,
			 err, errlen);
	if (rc)
		goto out;
	rc = incremental_deletes(ctx, module, res->from, &res->deleted_seen, &res->tombstoned, err,
				 errlen);
	if (rc)
		goto out;
	res->watermark = res->bulk.started;
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
	module_schema_free(schema);
	return rc;
}
