/* schemasync.c — follow Zoho's schema changes (see schemasync.h). */
#include "schemasync.h"
#include "buf.h"
#include "fetch.h"
#include "log.h"
#include "subform.h"
#include "tablehooks.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Claim the read of module's metadata: true if it was last read at least
 * interval seconds ago (or never). One UPDATE: two processes never both
 * win the same interval. */
static enum rc claim_read(struct db *db, const char *module, long interval, bool *won)
{
	char iv[24], *v = NULL;
	snprintf(iv, sizeof(iv), "%ld", interval);
	enum rc rc = db_query_value(db,
				    "UPDATE sync_state SET fields_checked = now() WHERE module = $1"
				    " AND table_ready AND (fields_checked IS NULL OR fields_checked"
				    " <= now() - $2::bigint * interval '1 second') RETURNING 1",
				    2, (const char *[]){module, iv}, &v);
	*won = v != NULL;
	free(v);
	return rc;
}

/* Zoho's metadata → schema_ensure_module. */
static enum rc read_and_evolve(struct bulk_ctx *ctx, const char *module,
			       struct schema_report *rep)
{
	struct zoho_field *zf = NULL;
	struct zfield *f = NULL;
	char **ids = NULL;
	size_t n = 0;
	enum rc rc = zoho_fields(ctx->zoho, module, &zf, &n);

	if (rc) {
		log_error("cannot read fields metadata", "err=%s", log_q(zoho_error(ctx->zoho)));
		return rc;
	}
	if (n == 0) {
		log_error("Zoho returned no fields for the module", "");
		zoho_fields_free(zf, n);
		return RC_ZOHO;
	}
	f = xcalloc(n, sizeof(*f));
	ids = xcalloc(n, sizeof(*ids));
	size_t nf = 0;
	for (size_t i = 0; i < n; i++) {
		/* A subform is a child table, not a column (subform.h). */
		if (subform_is_field(zf[i].data_type))
			continue;
		f[nf].api_name = zf[i].api_name;
		/* Formula fields are typed by what they return. */
		f[nf].data_type = zf[i].data_type;
		f[nf].json_type = zf[i].return_type ? zf[i].return_type : zf[i].json_type;
		if (zf[i].id > 0)
			ids[nf] = xasprintf("%" PRId64, zf[i].id);
		f[nf].field_id = ids[nf];
		f[nf].textarea_type = zf[i].textarea_type;
		nf++;
	}
	rc = schema_ensure_module(ctx->data, module, f, nf, rep);
	/* The subforms' child tables, from their own metadata (1 credit each). */
	int nsub = 0;
	if (!rc)
		rc = subform_ensure(ctx->data, ctx->zoho, module, zf, n, &nsub);
	for (size_t i = 0; i < nf; i++)
		free(ids[i]);
	free(ids);
	free(f);
	zoho_fields_free(zf, n);
	return rc;
}

/* The module's schema narrowed to id, Modified_Time and the API names
 * names (shallow: free only ->cols). */
static void narrow(const struct module_schema *full, char *const *names, size_t n,
		   struct module_schema *out)
{
	*out = *full;
	out->cols = xcalloc(full->ncols, sizeof(*out->cols));
	out->ncols = 0;
	for (size_t i = 0; i < full->ncols; i++) {
		const struct zcolumn *c = &full->cols[i];
		bool keep = !strcmp(c->column, "id") || !strcmp(c->column, "modified_time");
		for (size_t k = 0; k < n && !keep; k++)
			keep = !strcmp(c->api_name, names[k]);
		if (keep)
			out->cols[out->ncols++] = *c;
	}
}

/* REST: the live ids we hold, fetched with the narrowed fields. */
static enum rc backfill_rest(struct bulk_ctx *ctx, const struct module_schema *sub,
			     long *applied, char *err, size_t errlen)
{
	struct db_res *res = NULL;
	struct fetch_stats fs;
	char *qt = db_quote_ident(ctx->data, sub->table);
	char *sql = xasprintf("SELECT id FROM %s WHERE deleted_at IS NULL ORDER BY id", qt);
	enum rc rc = db_exec(ctx->data, sql, 0, NULL, &res);
	int64_t *ids = NULL;
	size_t n = 0;

	memset(&fs, 0, sizeof(fs));
	if (rc) {
		snprintf(err, errlen, "%s", db_error(ctx->data));
		goto out;
	}
	n = (size_t)db_res_rows(res);
	ids = xcalloc(n ? n : 1, sizeof(*ids));
	for (size_t i = 0; i < n; i++)
		ids[i] = strtoll(db_res_get(res, (int)i, 0), NULL, 10);
	rc = fetch_backfill_ids(ctx->data, ctx->zoho, sub, ids, n, &fs, err, errlen);
	*applied = fs.applied;
out:
	free(ids);
	db_res_free(res);
	free(sql);
	free(qt);
	return rc;
}

/* Bulk Read of id, Modified_Time and the narrowed fields. *complete is
 * false when the export resumed one a killed run began: the pages merged
 * before are not in zcrm_backfill_seen. */
static enum rc backfill_bulk(struct bulk_ctx *ctx, const struct module_schema *sub,
			     long *applied, bool *complete, char *err, size_t errlen)
{
	struct bulk_ctx b = *ctx;
	struct bulk_result res;
	const char **fields = xcalloc(sub->ncols, sizeof(*fields));
	size_t nf = 0;

	for (size_t i = 0; i < sub->ncols; i++)
		if (strcmp(sub->cols[i].column, "id"))
			fields[nf++] = sub->cols[i].api_name;
	b.fields = fields;
	b.nfields = nf;
	b.ids_only = false;
	enum rc rc = bulk_export(&b, sub->module, sub, "backfill", 0, 0, MERGE_BACKFILL, &res, err,
				 errlen);
	*applied = res.rows_applied;
	*complete = res.first_page <= 1;
	free(fields);
	return rc;
}

/* The live rows the back-fill's source did not carry, or carried with
 * another Modified_Time than ours: a record that crossed a page boundary
 * while the export ran (a delete shifts the later pages), or one changed
 * since, that a fetch with the schema of before may have written. They
 * are fetched by id (dirty), with the new columns. */
static enum rc backfill_unseen(struct db *data, const struct module_schema *full, long *marked)
{
	char *qt = db_quote_ident(data, full->table), *v = NULL;
	char *sql = xasprintf(
		"WITH ins AS (INSERT INTO dirty AS d (module, id, server_time)"
		"  SELECT $1, t.id, t.modified_time FROM %s t"
		"  LEFT JOIN zcrm_backfill_seen b ON b.id = t.id"
		"  WHERE t.deleted_at IS NULL"
		"   AND (b.id IS NULL OR b.modified_time IS DISTINCT FROM t.modified_time)"
		"  ON CONFLICT (module, id) DO NOTHING RETURNING 1)"
		" SELECT count(*) FROM ins",
		qt);
	enum rc rc = db_query_value(data, sql, 1, (const char *[]){full->module}, &v);

	*marked = (!rc && v) ? atol(v) : 0;
	free(v);
	free(sql);
	free(qt);
	return rc;
}

/* Back-fill the due fields of module (see schemasync.h). */
static enum rc backfill_due(struct bulk_ctx *ctx, const char *module, bool allow_bulk)
{
	struct db_res *res = NULL;
	struct module_schema *full = NULL, sub;
	char **names = NULL, *count = NULL, *started = NULL, *list = NULL;
	char err[1024] = "";
	size_t n = 0;
	long applied = 0;
	enum rc rc;

	memset(&sub, 0, sizeof(sub));
	rc = db_exec(ctx->data,
		     "SELECT api_name, now()::text FROM fields WHERE module = $1"
		     " AND backfill_due IS NOT NULL AND superseded_at IS NULL AND removed_at IS NULL"
		     " ORDER BY api_name",
		     1, (const char *[]){module}, &res);
	if (rc || db_res_rows(res) == 0)
		goto out;
	n = (size_t)db_res_rows(res);
	names = xcalloc(n, sizeof(*names));
	struct buf joined = {0};
	for (size_t i = 0; i < n; i++) {
		names[i] = xstrdup(db_res_get(res, (int)i, 0));
		buf_printf(&joined, "%s%s", i ? "," : "", names[i]);
	}
	started = xstrdup(db_res_get(res, 0, 1));
	list = buf_steal(&joined);
	rc = schema_load(ctx->data, module, &full);
	if (rc)
		goto out;
	narrow(full, names, n, &sub);
	char *qt = db_quote_ident(ctx->data, full->table);
	char *sql = xasprintf("SELECT count(*) FROM %s WHERE deleted_at IS NULL", qt);
	rc = db_query_value(ctx->data, sql, 0, NULL, &count);
	free(sql);
	free(qt);
	if (rc)
		goto out;
	long rows = count ? atol(count) : 0;
	long rest = zoho_fetch_calls((size_t)rows, sub.ncols - 1);
	bool by_rest = rest <= ctx->cfg->bulk_threshold;
	/* Bulk Read cannot export some types (subform.h): those by REST (the
	 * ids kind by single-record GETs, a credit a record), in a batch run. */
	for (size_t i = 0; i < sub.ncols; i++) {
		if (!subform_unexported_column(&sub.cols[i]))
			continue;
		if (allow_bulk)
			by_rest = true;
		if (sub.cols[i].kind == FIELD_IDS)
			rest = rows;
	}
	if (!by_rest && !allow_bulk) {
		log_info("back-fill of new or retyped fields left for incremental_sync (Bulk Read)",
			 "fields=%s rows=%ld", log_q(list), rows);
		goto out;
	}
	log_info("back-filling fields", "fields=%s rows=%ld path=%s credits=%ld", log_q(list), rows,
		 by_rest ? "rest" : "bulk", by_rest ? rest : 50L);
	bool complete = true;
	long unseen = 0;
	rc = db_exec(ctx->data,
		     "CREATE TEMP TABLE IF NOT EXISTS zcrm_backfill_seen"
		     " (id bigint PRIMARY KEY, modified_time timestamptz)",
		     0, NULL, NULL);
	if (!rc)
		rc = db_exec(ctx->data, "TRUNCATE zcrm_backfill_seen", 0, NULL, NULL);
	if (rc) {
		snprintf(err, sizeof(err), "%s", db_error(ctx->data));
		goto out;
	}
	rc = by_rest ? backfill_rest(ctx, &sub, &applied, err, sizeof(err))
		     : backfill_bulk(ctx, &sub, &applied, &complete, err, sizeof(err));
	if (!rc && !complete) {
		/* Pages a killed run merged are not in zcrm_backfill_seen:
		 * the next refresh back-fills again, whole. */
		log_info("back-fill resumed after a kill: done again at the next refresh",
			 "fields=%s", log_q(list));
		goto out;
	}
	if (!rc)
		rc = backfill_unseen(ctx->data, full, &unseen);
	if (rc) {
		/* Not this run's failure: the fields stay due. */
		log_warn("back-fill failed; the fields stay due for the next refresh",
			 "fields=%s err=%s", log_q(list), log_q(err));
		rc = RC_OK;
		goto out;
	}
	for (size_t i = 0; i < n && !rc; i++)
		rc = db_exec(ctx->data,
			     "UPDATE fields SET backfill_due = NULL WHERE module = $1 AND api_name = $2"
			     " AND backfill_due <= $3::timestamptz",
			     3, (const char *[]){module, names[i], started}, NULL);
	if (!rc)
		log_info("back-filled fields", "fields=%s rows=%ld applied=%ld to_fetch=%ld",
			 log_q(list), rows, applied, unseen);
out:
	if (rc)
		log_warn("back-fill not done", "err=%s", log_q(db_error(ctx->data)));
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(sub.cols);
	module_schema_free(full);
	db_res_free(res);
	free(count);
	free(started);
	free(list);
	return rc;
}

enum rc schema_refresh(struct bulk_ctx *ctx, const char *module, enum schema_when when,
		       bool allow_bulk, struct schema_report *rep, bool *read)
{
	struct schema_report local;
	bool won = true;
	enum rc rc = RC_OK;

	if (!rep)
		rep = &local;
	memset(rep, 0, sizeof(*rep));
	if (read)
		*read = false;
	if (when != SCHEMA_ALWAYS) {
		long interval = when == SCHEMA_EVERY ? ctx->cfg->schema_check : 60;
		rc = claim_read(ctx->data, module, interval, &won);
		if (rc)
			goto out;
	}
	if (won) {
		rc = read_and_evolve(ctx, module, rep);
		if (read)
			*read = true;
		if (rc)
			goto out;
		/* A new table's triggers ([database] notify_changes, history),
		 * then a new table or view readable by [database] read_role. A
		 * failure is logged; the next program's start retries. */
		if (rep->created &&
		    table_hooks_apply(ctx->data, ctx->cfg->notify_changes, ctx->cfg->history) != RC_OK)
			log_warn("module table triggers not set yet", "");
		if (schema_grant_read(ctx->data, ctx->cfg->read_role) != RC_OK)
			log_warn("read_role cannot read the module table yet", "");
		/* Fetches that failed on a field Zoho renamed or removed can
		 * succeed now: due at once. */
		if ((rep->renamed || rep->removed) &&
		    db_exec(ctx->data,
			    "UPDATE dirty SET next_try = now() WHERE module = $1 AND next_try > now()",
			    1, (const char *[]){module}, NULL) != RC_OK)
			log_warn("cannot make the dirty ids due", "err=%s", log_q(db_error(ctx->data)));
	}
	if (!rep->created)
		rc = backfill_due(ctx, module, allow_bulk);
out:
	if (rep == &local)
		schema_report_free(rep);
	return rc;
}

enum rc schema_backfill_done(struct db *db, const char *module, int64_t before)
{
	char b[24];
	snprintf(b, sizeof(b), "%" PRId64, before);
	return db_exec(db,
		       "UPDATE fields SET backfill_due = NULL WHERE module = $1"
		       " AND backfill_due < to_timestamp($2::bigint)",
		       2, (const char *[]){module, b}, NULL);
}
