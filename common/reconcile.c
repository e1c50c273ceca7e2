/* reconcile.c — compare Zoho's ids with ours and repair (see reconcile.h). */
#include "reconcile.h"
#include "fetch.h"
#include "incremental.h"
#include "log.h"
#include "schema.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ids of a query's first column. Caller frees. */
static enum rc id_list(struct db *db, const char *sql, int64_t **ids, size_t *n)
{
	struct db_res *res = NULL;
	enum rc rc = db_exec(db, sql, 0, NULL, &res);

	*ids = NULL;
	*n = 0;
	if (rc)
		return rc;
	*n = (size_t)db_res_rows(res);
	*ids = xcalloc(*n ? *n : 1, sizeof(**ids));
	for (size_t i = 0; i < *n; i++)
		(*ids)[i] = strtoll(db_res_get(res, (int)i, 0), NULL, 10);
	db_res_free(res);
	return RC_OK;
}

static long count_of(struct db *db, const char *sql)
{
	char *v = NULL;
	long n = -1;
	if (db_query_value(db, sql, 0, NULL, &v) == RC_OK && v)
		n = atol(v);
	free(v);
	return n;
}

/* Start (epoch seconds) of the module's last reconcile that ended ok; 0 if
 * none. */
static enum rc last_good_run(struct db *db, const char *module, int64_t *when)
{
	char *v = NULL;
	enum rc rc = db_query_value(db,
				    "SELECT floor(extract(epoch FROM max(started_at)))::bigint FROM runs"
				    " WHERE kind = 'reconcile' AND module = $1 AND outcome = 'ok'",
				    1, (const char *[]){module}, &v);

	*when = (!rc && v) ? strtoll(v, NULL, 10) : 0;
	free(v);
	return rc;
}

char *reconcile_json(const struct reconcile_report *r)
{
	const struct formula_report *f = &r->formulas;
	char formulas[256] = "";

	/* Only for a module that has formula or rollup fields. */
	if (f->fields > 0)
		snprintf(formulas, sizeof(formulas),
			 ",\"formulas\":{\"fields\":%ld,\"due\":%s,\"exported\":%ld,"
			 "\"refreshed\":%ld,\"kept\":%ld}",
			 f->fields, f->due ? "true" : "false", f->exported, f->refreshed, f->kept);
	return xasprintf("{\"zoho_count\":%" PRId64 ",\"exported\":%ld,\"ours_live\":%ld,"
			 "\"missing\":%ld,\"older\":%ld,\"gone\":%ld,\"fetched\":%ld,"
			 "\"tombstoned\":%ld,\"unexplained\":%ld,\"lines_stale\":%ld%s}",
			 r->zoho_count, r->exported, r->ours_live, r->missing, r->older, r->gone,
			 r->fetched, r->tombstoned, r->unexplained, r->lines_stale, formulas);
}

/* The fields reconcile's export asks for: Modified_Time, and the formula
 * fields when their refresh is due (rep->formulas). Caller frees. */
static enum rc export_fields(struct bulk_ctx *ctx, const struct module_schema *schema,
			     struct reconcile_report *rep, const char ***fields, size_t *n)
{
	const char **names = NULL;
	int64_t now = 0, last = 0;
	size_t nf = formula_fields(schema, &names);
	enum rc rc = RC_OK;

	rep->formulas.fields = (long)nf;
	if (nf > 0 && ctx->cfg->formula_refresh > 0) {
		rc = formula_last(ctx->data, schema->module, &now, &last);
		if (!rc)
			rc = formula_reset(ctx->data);
		rep->formulas.due = !rc && formula_due(now, last, ctx->cfg->formula_refresh);
	}
	*n = 1 + (rep->formulas.due ? nf : 0);
	*fields = xcalloc(*n, sizeof(**fields));
	(*fields)[0] = "Modified_Time";
	for (size_t i = 1; i < *n; i++)
		(*fields)[i] = names[i - 1];
	if (nf > 0)
		log_info(rep->formulas.due ? "formula refresh due: the export carries them"
					   : "formula refresh not due",
			 "fields=%zu last=%" PRId64 " interval=%ld", nf, last,
			 ctx->cfg->formula_refresh);
	free(names);
	return rc;
}

enum rc reconcile_module(struct bulk_ctx *ctx, const char *module, bool dry_run,
			 struct reconcile_report *rep, char *err, size_t errlen)
{
	const char **fields = NULL;
	size_t nfields = 0;
	struct module_schema *schema = NULL;
	struct bulk_result br;
	char *table = NULL, *sql = NULL;
	int64_t *ids = NULL;
	size_t n = 0;
	enum rc rc;

	memset(rep, 0, sizeof(*rep));
	rep->zoho_count = -1;
	rc = schema_load(ctx->data, module, &schema);
	if (rc) {
		snprintf(err, errlen, "no module table: run initial_sync first");
		return rc;
	}
	if (zoho_record_count(ctx->zoho, module, &rep->zoho_count) != RC_OK) {
		log_warn("record count unavailable", "err=%s", log_q(zoho_error(ctx->zoho)));
		rep->zoho_count = -1;
	}
	table = db_quote_ident(ctx->data, schema->table);
	rc = db_exec(ctx->data, "DROP TABLE IF EXISTS pg_temp.zcrm_reconcile", 0, NULL, NULL);
	if (!rc)
		rc = export_fields(ctx, schema, rep, &fields, &nfields);
	if (rc)
		goto dberr;
	ctx->fields = fields;
	ctx->nfields = nfields;
	ctx->ids_only = true;
	ctx->record_count = rep->zoho_count; /* the export plans its pages by it */
	rc = bulk_export(ctx, module, schema, "reconcile", 0, 0, MERGE_BULK, &br, err, errlen);
	ctx->fields = NULL;
	ctx->nfields = 0;
	ctx->ids_only = false;
	ctx->record_count = 0;
	if (!rc) {
		/* The export checkpoint has no use once the ids are collected. */
		rc = db_prepared(ctx->data, "reconcile_clear",
				 "UPDATE sync_state SET bulk_kind = NULL, bulk_page = NULL,"
				 " bulk_job_id = NULL, bulk_state = NULL WHERE module = $1"
				 " AND bulk_kind = 'reconcile'",
				 1, (const char *[]){module}, NULL);
	}
	if (rc)
		goto out;
	rep->exported = br.rows_seen;
	char started[24];
	snprintf(started, sizeof(started), "%" PRId64, br.started);
	/* Formula values first: a repair below fetches whole records, and the
	 * refresh never writes over a row fetched after the job began. */
	if (rep->formulas.due) {
		rc = formula_merge(ctx->data, schema, br.started, dry_run, &rep->formulas, err, errlen);
		if (rc)
			goto out;
		log_info("formula fields refreshed", "exported=%ld refreshed=%ld kept=%ld%s",
			 rep->formulas.exported, rep->formulas.refreshed, rep->formulas.kept,
			 dry_run ? " (dry run)" : "");
	}

	sql = xasprintf("SELECT count(*) FROM %s WHERE deleted_at IS NULL", table);
	rep->ours_live = count_of(ctx->data, sql);
	free(sql);
	/* missing: in Zoho's export, absent here or tombstoned before its time */
	/* missing: exported, but absent here, or a tombstone older than the
	 * export (exported live after the delete: restored in Zoho) */
	sql = xasprintf("SELECT count(*) FROM zcrm_reconcile z LEFT JOIN %s t ON t.id = z.id"
			" WHERE t.id IS NULL OR (t.deleted_at IS NOT NULL AND (t.deleted_at <"
			" z.modified_time OR t.deleted_at < to_timestamp(%s)))"
			" OR (t.deleted_at IS NULL AND t.modified_time IS NULL)",
			table, started);
	rep->missing = count_of(ctx->data, sql);
	free(sql);
	sql = xasprintf("SELECT count(*) FROM zcrm_reconcile z JOIN %s t ON t.id = z.id"
			" WHERE t.deleted_at IS NULL AND t.modified_time < z.modified_time",
			table);
	rep->older = count_of(ctx->data, sql);
	free(sql);
	/* gone: live here, not exported, and not changed after the export began */
	sql = xasprintf("SELECT count(*) FROM %s t WHERE t.deleted_at IS NULL"
			" AND NOT EXISTS (SELECT 1 FROM zcrm_reconcile z WHERE z.id = t.id)"
			" AND coalesce(t.modified_time, '-infinity') < to_timestamp(%s)",
			table, started);
	rep->gone = count_of(ctx->data, sql);
	free(sql);
	sql = NULL;
	if (dry_run)
		goto out;

	/* repair 1: fetch missing and older records (fetch rule) */
	sql = xasprintf("SELECT z.id FROM zcrm_reconcile z LEFT JOIN %s t ON t.id = z.id"
			" WHERE t.id IS NULL OR t.modified_time IS NULL"
			" OR (t.deleted_at IS NOT NULL AND (t.deleted_at < z.modified_time"
			"  OR t.deleted_at < to_timestamp(%s)))"
			" OR (t.deleted_at IS NULL AND t.modified_time < z.modified_time) ORDER BY z.id",
			table, started);
	rc = id_list(ctx->data, sql, &ids, &n);
	free(sql);
	sql = NULL;
	if (rc)
		goto dberr;
	if (n) {
		struct fetch_stats fs;
		memset(&fs, 0, sizeof(fs));
		rc = fetch_ids(ctx->data, ctx->zoho, schema, ids, n, &fs, err, errlen);
		rep->fetched += fs.applied;
		if (rc)
			goto out;
	}
	free(ids);
	ids = NULL;

	/* repair 2: what Zoho lists as deleted since the last good reconcile
	 * (less the overlap; all of it when there was none) becomes a
	 * tombstone: what it listed before was tombstoned then. */
	long seen = 0;
	int64_t since = 0;
	rc = last_good_run(ctx->data, module, &since);
	if (rc)
		goto dberr;
	if (since)
		since = since - ctx->cfg->overlap > 0 ? since - ctx->cfg->overlap : 0;
	log_info("reading deleted records", "since=%" PRId64, since);
	rc = incremental_deletes(ctx, module, since, &seen, &rep->tombstoned, err, errlen);
	if (rc)
		goto out;

	/* repair 3: still live here, not exported: ask Zoho for them by id */
	sql = xasprintf("SELECT t.id FROM %s t WHERE t.deleted_at IS NULL"
			" AND NOT EXISTS (SELECT 1 FROM zcrm_reconcile z WHERE z.id = t.id)"
			" AND coalesce(t.modified_time, '-infinity') < to_timestamp(%s) ORDER BY t.id",
			table, started);
	rc = id_list(ctx->data, sql, &ids, &n);
	free(sql);
	sql = NULL;
	if (rc)
		goto dberr;
	if (n) {
		struct fetch_stats fs;
		memset(&fs, 0, sizeof(fs));
		rc = fetch_ids(ctx->data, ctx->zoho, schema, ids, n, &fs, err, errlen);
		if (rc)
			goto out;
		rep->fetched += fs.applied;
		rep->unexplained = (long)n - fs.returned;
		if (rep->unexplained > 0 && since > 0) {
			/* Deleted before the last good run yet live here: read the
			 * whole deleted list once more, and count what is left. */
			long more = 0;
			rc = incremental_deletes(ctx, module, 0, &seen, &more, err, errlen);
			if (rc)
				goto out;
			rep->tombstoned += more;
			sql = xasprintf("SELECT count(*) FROM %s t WHERE t.deleted_at IS NULL"
					" AND NOT EXISTS (SELECT 1 FROM zcrm_reconcile z WHERE z.id = t.id)"
					" AND coalesce(t.modified_time, '-infinity') < to_timestamp(%s)",
					table, started);
			long left = count_of(ctx->data, sql);
			free(sql);
			sql = NULL;
			if (left < 0) {
				rc = RC_DB;
				goto dberr;
			}
			rep->unexplained = left < rep->unexplained ? left : rep->unexplained;
		}
		if (rep->unexplained > 0)
			log_warn("rows live here that Zoho neither exports, returns nor lists as deleted",
				 "count=%ld", rep->unexplained);
	}
	/* repair 4: line items of parents written without them (fetch.h). */
	struct fetch_after_bulk_stats ls;
	rc = fetch_after_bulk(ctx->data, ctx->zoho, module, &ls, err, errlen);
	if (rc)
		goto out;
	rep->lines_stale = ls.stale;
	goto out;
dberr:
	snprintf(err, errlen, "%s", db_error(ctx->data));
out:
	free(fields);
	free(ids);
	free(sql);
	free(table);
	module_schema_free(schema);
	return rc;
}

/* Bulk Read pages are offsets into the live record set: a record deleted
 * during a multi-page export shifts the later pages, and the record that
 * crosses a page boundary is in neither - and no notification will ever
 * name it. One id-only pass (reconcile) finds and fetches such records.
 * A failure here is only a warning: the nightly reconcile repeats it. */
void reconcile_page_boundaries(const struct bulk_ctx *ctx, const char *module)
{
	struct reconcile_report rep;
	struct bulk_ctx check = *ctx;
	char err[1024] = "";

	check.run_id = 0; /* the run's counts are the export's */
	/* Cheap first: a record lost between pages leaves us short of Zoho. */
	int64_t zoho_count = -1;
	char *ours = NULL, *table = schema_table_name(module);
	char *qt = db_quote_ident(ctx->data, table);
	char *sql = xasprintf("SELECT count(*) FROM %s WHERE deleted_at IS NULL", qt);
	enum rc crc = zoho_record_count(ctx->zoho, module, &zoho_count);
	if (!crc)
		crc = db_query_value(ctx->data, sql, 0, NULL, &ours);
	long ours_live = ours ? atol(ours) : -1;
	free(ours);
	free(sql);
	free(qt);
	free(table);
	if (!crc && zoho_count <= ours_live)
		return;
	log_info("checking for records that crossed a page boundary during the export",
		 "zoho_count=%lld ours=%ld", (long long)zoho_count, ours_live);
	if (reconcile_module(&check, module, false, &rep, err, sizeof(err)) != RC_OK) {
		log_warn("page-boundary check failed; the nightly reconcile will repeat it", "err=%s",
			 log_q(err));
		return;
	}
	if (rep.fetched || rep.tombstoned)
		log_info("page-boundary check repaired records", "fetched=%ld tombstoned=%ld",
			 rep.fetched, rep.tombstoned);
}
