/* subform.c — line items as child tables (see subform.h). */
#include "subform.h"
#include "buf.h"
#include "listcover.h"
#include "log.h"
#include "merge.h"
#include "ztime.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Our columns of a child table; a subform field folding to one is suffixed. */
static const char *const child_columns[] = {"id", "parent_id", "synced_at"};

/* Reads are stamped with our clock less this (Zoho's may be behind). */
#define SUBFORM_SKEW_MARGIN 2

char *subform_table_name(const char *parent_table, const char *subform)
{
	char *lower = schema_table_name(subform);
	char *t = xasprintf("%s__%s", parent_table, lower);

	free(lower);
	if (strlen(t) > 63)
		t[63] = '\0';
	return t;
}

bool subform_is_field(const char *data_type)
{
	return data_type && !strcmp(data_type, "subform");
}

bool subform_by_id_only(const char *data_type)
{
	return data_type &&
	       (!strcmp(data_type, "multiselectlookup") || !strcmp(data_type, "multiuserlookup"));
}

bool subform_unexported_column(const struct zcolumn *c)
{
	return c->kind == FIELD_IDS ||
	       (c->data_type && (!strcmp(c->data_type, "fileupload") ||
				 !strcmp(c->data_type, "imageupload")));
}

long subform_listing_calls(long lines)
{
	if (lines <= ZOHO_LIST_PAGE)
		return 1;
	/* and the page of edits and the page of deletions that tell whether a
	 * line was skipped between two pages (listcover.h) */
	return (lines + ZOHO_LIST_PAGE - 1) / ZOHO_LIST_PAGE + 2;
}

bool subform_listing_cheaper(size_t nids, long ids_calls, long listing_calls)
{
	return ids_calls + listing_calls < (long)nids;
}

/* ---- schema ---- */

static bool api_name_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 100)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			return false;
	return true;
}

/* The line's own fields that are not typed columns: its id and parent. */
static bool system_field(const char *api_name)
{
	return !strcasecmp(api_name, "id") || !strcmp(api_name, "Parent_Id");
}

static enum rc exec_sql(struct db *db, char *sql)
{
	enum rc rc = db_exec(db, sql, 0, NULL, NULL);
	free(sql);
	return rc;
}

/* One typed column: its name (kept from the first time), ADD COLUMN, and
 * its subform_fields row. */
static enum rc ensure_column(struct db *db, const char *table, const char *qtable,
			     const struct zoho_field *f)
{
	const char *jt = f->return_type ? f->return_type : f->json_type;
	enum field_kind kind = schema_field_kind(f->data_type, jt);
	const char *pg_type = schema_kind_pg_type(kind);
	char *col = NULL, *existing = NULL, *taken = NULL;
	enum rc rc;

	rc = db_query_value(db,
			    "SELECT column_name FROM subform_fields WHERE table_name = $1"
			    " AND api_name = $2",
			    2, (const char *[]){table, f->api_name}, &existing);
	if (rc)
		return rc;
	if (existing) {
		col = existing;
	} else {
		col = schema_column_name(f->api_name);
		for (size_t i = 0; i < ARRAY_LEN(child_columns); i++) {
			if (!strcmp(col, child_columns[i])) {
				char *c2 = xasprintf("%s_zoho", col);
				free(col);
				col = c2;
			}
		}
		/* Two API names folding to one column: suffix the newcomer. */
		for (int n = 2; n < 100; n++) {
			free(taken);
			taken = NULL;
			rc = db_query_value(db,
					    "SELECT 1 FROM subform_fields WHERE table_name = $1"
					    " AND column_name = $2",
					    2, (const char *[]){table, col}, &taken);
			if (rc || !taken)
				break;
			char *c2 = xasprintf("%.58s_%d", col, n);
			free(col);
			col = c2;
		}
		free(taken);
		if (rc)
			goto out;
	}
	char *qcol = db_quote_ident(db, col);
	rc = exec_sql(db, xasprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", qtable, qcol,
				    pg_type));
	free(qcol);
	if (rc)
		goto out;
	rc = db_exec(db,
		     "INSERT INTO subform_fields (table_name, api_name, column_name, data_type,"
		     " pg_type) VALUES ($1, $2, $3, $4, $5)"
		     " ON CONFLICT (table_name, api_name) DO UPDATE SET data_type = excluded.data_type,"
		     " last_seen = now()",
		     5, (const char *[]){table, f->api_name, col, f->data_type, pg_type}, NULL);
out:
	free(col);
	return rc;
}

/* The child table of one subform, in one transaction. */
static enum rc ensure_one(struct db *db, const char *module, const char *field,
			  const char *subform_module, const struct zoho_field *sf, size_t nsf)
{
	char *parent = schema_table_name(module);
	char *want = subform_table_name(parent, field);
	char *table = NULL, *qtable = NULL, *idx = NULL, *qidx = NULL;
	enum rc rc = db_begin(db);

	if (rc)
		goto out;
	rc = db_exec(db, "SELECT pg_advisory_xact_lock(hashtext('zcrm-sync:schema'), hashtext($1))",
		     1, (const char *[]){module}, NULL);
	if (rc)
		goto fail;
	/* A known subform keeps the table it was given first. */
	rc = db_exec(db,
		     "INSERT INTO subforms (module, field, subform_module, table_name)"
		     " VALUES ($1, $2, $3, $4) ON CONFLICT (module, field) DO UPDATE"
		     " SET subform_module = excluded.subform_module, last_seen = now()",
		     4, (const char *[]){module, field, subform_module, want}, NULL);
	if (!rc)
		rc = db_query_value(db,
				    "SELECT table_name FROM subforms WHERE module = $1 AND field = $2",
				    2, (const char *[]){module, field}, &table);
	if (rc || !table)
		goto fail;
	qtable = db_quote_ident(db, table);
	idx = xasprintf("%.50s_parent_idx", table);
	qidx = db_quote_ident(db, idx);
	rc = exec_sql(db, xasprintf("CREATE TABLE IF NOT EXISTS %s (id bigint PRIMARY KEY,"
				    " parent_id bigint NOT NULL,"
				    " synced_at timestamptz NOT NULL DEFAULT now())",
				    qtable));
	if (!rc)
		rc = exec_sql(db, xasprintf("CREATE INDEX IF NOT EXISTS %s ON %s (parent_id)", qidx,
					    qtable));
	for (size_t i = 0; !rc && i < nsf; i++) {
		if (!api_name_ok(sf[i].api_name) || system_field(sf[i].api_name) ||
		    subform_is_field(sf[i].data_type))
			continue;
		rc = ensure_column(db, table, qtable, &sf[i]);
	}
	if (rc)
		goto fail;
	rc = db_commit(db);
	if (rc)
		goto fail;
	log_info("line-item table ready", "subform=%s table=%s fields=%zu", log_q(field),
		 log_q(table), nsf);
	goto out;
fail:
	log_error("cannot create the line-item table", "subform=%s err=%s", log_q(field),
		  log_q(db_error(db)));
	db_rollback(db);
	rc = rc ? rc : RC_DB;
out:
	free(parent);
	free(want);
	free(table);
	free(qtable);
	free(idx);
	free(qidx);
	return rc;
}

enum rc subform_ensure(struct db *db, struct zoho *zoho, const char *module,
		       const struct zoho_field *fields, size_t nfields, int *count)
{
	enum rc rc = RC_OK;

	*count = 0;
	for (size_t i = 0; i < nfields && !rc; i++) {
		struct zoho_field *sf = NULL;
		size_t nsf = 0;
		if (!subform_is_field(fields[i].data_type) || !api_name_ok(fields[i].api_name))
			continue;
		/* The subform's module is named as its field (Invoiced_Items). */
		const char *sub = fields[i].api_name;
		rc = zoho_fields(zoho, sub, &sf, &nsf);
		if (rc) {
			log_error("cannot read the subform's fields metadata", "subform=%s err=%s",
				  log_q(sub), log_q(zoho_error(zoho)));
			break;
		}
		rc = ensure_one(db, module, fields[i].api_name, sub, sf, nsf);
		zoho_fields_free(sf, nsf);
		if (!rc)
			(*count)++;
	}
	return rc;
}

enum rc subform_load_set(struct db *db, const char *module, struct subform_set **out)
{
	struct db_res *res = NULL;
	struct subform_set *set = xcalloc(1, sizeof(*set));
	enum rc rc;

	*out = NULL;
	set->module = xstrdup(module);
	set->parent_table = schema_table_name(module);
	rc = db_prepared(db, "subform_load",
			 "SELECT s.field, s.subform_module, s.table_name, f.api_name, f.column_name,"
			 " f.data_type, f.pg_type"
			 " FROM subforms s LEFT JOIN subform_fields f USING (table_name)"
			 " WHERE s.module = $1 ORDER BY s.field, f.first_seen, f.api_name",
			 1, (const char *[]){module}, &res);
	if (rc) {
		subform_set_free(set);
		return rc;
	}
	int rows = db_res_rows(res);
	set->sf = xcalloc(rows ? (size_t)rows : 1, sizeof(*set->sf));
	for (int i = 0; i < rows; i++) {
		const char *field = db_res_get(res, i, 0);
		struct subform *sf = set->n ? &set->sf[set->n - 1] : NULL;
		if (!sf || strcmp(sf->field, field)) {
			sf = &set->sf[set->n++];
			sf->field = xstrdup(field);
			sf->module = xstrdup(db_res_get(res, i, 1));
			sf->cols = xcalloc(1, sizeof(*sf->cols));
			sf->cols->module = xstrdup(sf->module);
			sf->cols->table = xstrdup(db_res_get(res, i, 2));
			sf->cols->cols = xcalloc((size_t)rows, sizeof(*sf->cols->cols));
		}
		if (db_res_isnull(res, i, 3))
			continue;
		struct zcolumn *c = &sf->cols->cols[sf->cols->ncols++];
		c->api_name = xstrdup(db_res_get(res, i, 3));
		c->column = xstrdup(db_res_get(res, i, 4));
		c->data_type = xstrdup(db_res_get(res, i, 5));
		c->kind = schema_pg_type_kind(db_res_get(res, i, 6), c->data_type);
		c->pg_type = schema_kind_pg_type(c->kind);
		c->listed = true;
	}
	db_res_free(res);
	*out = set;
	return RC_OK;
}

void subform_set_free(struct subform_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		free(set->sf[i].field);
		free(set->sf[i].module);
		module_schema_free(set->sf[i].cols);
	}
	free(set->sf);
	free(set->module);
	free(set->parent_table);
	free(set);
}

/* ---- staging ---- */

/* The temporary table zcrm_lines (id, parent_id, c1 … cn as text), empty;
 * dropped at commit when in_txn. */
static enum rc stage_create(struct db *db, const struct subform *sf, bool in_txn)
{
	struct buf cols = {0};
	enum rc rc;

	for (size_t i = 0; i < sf->cols->ncols; i++)
		buf_printf(&cols, ", c%zu text", i + 1);
	rc = db_exec(db, "DROP TABLE IF EXISTS pg_temp.zcrm_lines", 0, NULL, NULL);
	if (!rc)
		rc = exec_sql(db, xasprintf("CREATE TEMP TABLE zcrm_lines (id bigint NOT NULL,"
					    " parent_id bigint NOT NULL%s)%s",
					    buf_str(&cols), in_txn ? " ON COMMIT DROP" : ""));
	buf_free(&cols);
	return rc;
}

/* One line (a JSON object) as a CSV row of zcrm_lines appended to out;
 * false (nothing appended) if it has no usable id. */
static bool line_csv(const struct subform *sf, struct json_object *line, int64_t parent,
		     struct buf *out)
{
	struct json_object *v;

	if (!json_object_is_type(line, json_type_object) ||
	    !json_object_object_get_ex(line, "id", &v) || !v)
		return false;
	const char *ids = json_object_get_string(v);
	char *end;
	long long id = strtoll(ids ? ids : "", &end, 10);
	if (!ids || !*ids || *end || id <= 0)
		return false;
	buf_printf(out, "%lld,%" PRId64, id, parent);
	for (size_t i = 0; i < sf->cols->ncols; i++) {
		const struct zcolumn *c = &sf->cols->cols[i];
		char *cell = NULL;
		if (json_object_object_get_ex(line, c->api_name, &v))
			cell = schema_json_cell(v, c->kind);
		buf_addc(out, ',');
		buf_csv_cell(out, cell, cell ? strlen(cell) : 0);
		free(cell);
	}
	buf_addc(out, '\n');
	return true;
}

/* ---- the write of line sets ---- */

/* Write the sets of the parents selected by parents_sql (rows of
 * (parent_id bigint, ts numeric epoch seconds), $2/$3 its parameters if
 * not both NULL) from
 * zcrm_lines, by the rule of subform.h, in the caller's transaction. */
static enum rc apply_sets(struct db *db, const struct subform_set *set, const struct subform *sf,
			  const char *parents_sql, const char *p2, const char *p3,
			  bool provisional, struct subform_stats *st)
{
	const char *table = sf->cols->table;
	char *qparent = db_quote_ident(db, set->parent_table);
	char *qtable = db_quote_ident(db, table);
	char *sql = NULL;
	struct buf cols = {0}, vals = {0}, safe = {0}, upd = {0}, cmp_old = {0}, cmp_new = {0};
	struct db_res *res = NULL;
	enum rc rc;

	/* for the casts below */
	rc = schema_cast_prepare(db, sf->cols);
	if (rc)
		goto out;
	rc = db_exec(db, "DROP TABLE IF EXISTS pg_temp.zcrm_lines_ok", 0, NULL, NULL);
	if (!rc)
		rc = db_exec(db, "CREATE TEMP TABLE zcrm_lines_ok (parent_id bigint PRIMARY KEY)"
				 " ON COMMIT DROP", 0, NULL, NULL);
	if (rc)
		goto out;
	/* The guard: one upsert whose row lock orders concurrent writers. */
	sql = xasprintf(
		"WITH ok AS (INSERT INTO line_sets AS s (table_name, parent_id, read_at)"
		"  SELECT DISTINCT ON (t.id) $1, t.id, to_timestamp(p.ts)"
		"  FROM (%s) AS p(parent_id, ts) JOIN %s t ON t.id = p.parent_id"
		"  WHERE t.deleted_at IS NULL"
		"   AND (t.modified_time IS NULL OR t.modified_time <= to_timestamp(p.ts))"
		"  ORDER BY t.id, p.ts DESC"
		"  ON CONFLICT (table_name, parent_id) DO UPDATE SET read_at = excluded.read_at,"
		"   synced_at = now() WHERE s.read_at <= excluded.read_at"
		"  RETURNING s.parent_id)"
		" INSERT INTO zcrm_lines_ok SELECT parent_id FROM ok",
		parents_sql, qparent);
	rc = db_exec(db, sql, p2 || p3 ? 3 : 1, (const char *[]){table, p2, p3}, &res);
	if (rc)
		goto out;
	st->parents += db_res_affected(res);
	db_res_free(res);
	res = NULL;
	free(sql);
	/* Lines of those parents that are not in their new set (a provisional
	 * set may lack lines Zoho has: it deletes none, and stays stale). */
	if (provisional)
		sql = xasprintf("UPDATE line_sets SET read_at = '-infinity' WHERE table_name = $1"
				" AND parent_id IN (SELECT parent_id FROM zcrm_lines_ok)");
	else
		sql = xasprintf("DELETE FROM %s c USING zcrm_lines_ok k WHERE c.parent_id = k.parent_id"
			" AND NOT EXISTS (SELECT 1 FROM zcrm_lines g WHERE g.id = c.id"
			"  AND g.parent_id = c.parent_id)",
			qtable);
	rc = db_exec(db, sql, provisional ? 1 : 0, (const char *[]){table}, &res);
	if (rc)
		goto out;
	if (!provisional)
		st->removed += db_res_affected(res);
	db_res_free(res);
	res = NULL;
	free(sql);
	sql = NULL;
	for (size_t i = 0; i < sf->cols->ncols; i++) {
		const struct zcolumn *c = &sf->cols->cols[i];
		char *qc = db_quote_ident(db, c->column), *g = xasprintf("g.c%zu", i + 1);
		char *cast = schema_cast_expr(c->kind, g), *scast = schema_safe_cast_expr(c->kind, g);
		buf_printf(&cols, ", %s", qc);
		buf_printf(&vals, ", %s", cast);
		buf_printf(&safe, ", %s", scast);
		buf_printf(&upd, ", %s = excluded.%s", qc, qc);
		buf_printf(&cmp_old, ", c.%s", qc);
		buf_printf(&cmp_new, ", excluded.%s", qc);
		free(qc);
		free(g);
		free(cast);
		free(scast);
	}
	for (int pass = 0; pass < 2; pass++) {
		sql = xasprintf(
			"INSERT INTO %s AS c (id, parent_id%s, synced_at)"
			" SELECT DISTINCT ON (g.id) g.id, g.parent_id%s, now()"
			" FROM zcrm_lines g JOIN zcrm_lines_ok k ON k.parent_id = g.parent_id"
			" ORDER BY g.id"
			" ON CONFLICT (id) DO UPDATE SET parent_id = excluded.parent_id%s,"
			"  synced_at = now()"
			" WHERE (c.parent_id%s) IS DISTINCT FROM (excluded.parent_id%s)",
			qtable, buf_str(&cols), buf_str(pass ? &safe : &vals), buf_str(&upd),
			buf_str(&cmp_old), buf_str(&cmp_new));
		rc = db_exec(db, "SAVEPOINT zcrm_lines", 0, NULL, NULL);
		if (!rc)
			rc = db_exec(db, sql, 0, NULL, &res);
		free(sql);
		sql = NULL;
		if (!rc || pass || strncmp(db_sqlstate(db), "22", 2))
			break;
		/* A value that does not cast costs its cell, not the set. */
		log_warn("a line-item value does not cast to its column; stored as NULL",
			 "table=%s err=%s", log_q(table), log_q(db_error(db)));
		rc = db_exec(db, "ROLLBACK TO SAVEPOINT zcrm_lines", 0, NULL, NULL);
		if (rc)
			break;
	}
	if (!rc) {
		st->written += db_res_affected(res);
		rc = db_exec(db, "RELEASE SAVEPOINT zcrm_lines", 0, NULL, NULL);
	}
out:
	db_res_free(res);
	free(sql);
	buf_free(&cols);
	buf_free(&vals);
	buf_free(&safe);
	buf_free(&upd);
	buf_free(&cmp_old);
	buf_free(&cmp_new);
	free(qparent);
	free(qtable);
	return rc;
}

/* Records (single-record GET answers) that carry sf's field. */
static enum rc write_one(struct db *db, const struct subform_set *set, const struct subform *sf,
			 struct json_object *records, int64_t asked, struct subform_stats *st)
{
	size_t n = json_object_array_length(records), np = 0;
	int64_t *parents = xcalloc(n ? n : 1, sizeof(*parents));
	struct buf ts = {0}, row = {0};
	char *ids = NULL;
	enum rc rc = RC_OK;
	bool copying = false;

	buf_addc(&ts, '{');
	for (size_t r = 0; r < n; r++) {
		struct json_object *rec = json_object_array_get_idx(records, r), *lines, *v;
		int64_t mt = 0;
		if (!json_object_object_get_ex(rec, sf->field, &lines) ||
		    !json_object_object_get_ex(rec, "id", &v) || !v)
			continue;
		if (lines && !json_object_is_type(lines, json_type_array)) {
			log_warn("a subform value is not an array; the record's lines are not written",
				 "subform=%s", log_q(sf->field));
			continue;
		}
		const char *idt = json_object_get_string(v);
		int64_t pid = idt ? strtoll(idt, NULL, 10) : 0;
		if (pid <= 0)
			continue;
		if (json_object_object_get_ex(rec, "Modified_Time", &v) && v &&
		    ztime_parse(json_object_get_string(v), &mt) != RC_OK)
			mt = 0;
		if (!copying) {
			rc = stage_create(db, sf, true);
			if (!rc)
				rc = db_copy_begin(db, "COPY zcrm_lines FROM STDIN (FORMAT csv)");
			if (rc)
				goto out;
			copying = true;
		}
		parents[np++] = pid;
		buf_printf(&ts, "%s%" PRId64, np > 1 ? "," : "", mt > asked ? mt : asked);
		size_t nl = lines ? json_object_array_length(lines) : 0;
		for (size_t l = 0; l < nl; l++) {
			buf_reset(&row);
			if (!line_csv(sf, json_object_array_get_idx(lines, l), pid, &row))
				continue;
			st->staged++;
			rc = db_copy_put(db, row.s, row.len);
			if (rc)
				goto out;
		}
	}
	if (!copying)
		goto out;
	copying = false;
	rc = db_copy_end(db, NULL, NULL);
	if (rc)
		goto out;
	buf_addc(&ts, '}');
	ids = db_int64_array(parents, np);
	rc = apply_sets(db, set, sf, "SELECT * FROM unnest($2::bigint[], $3::numeric[])", ids,
			buf_str(&ts), false, st);
out:
	if (copying && db_copy_end(db, "aborted", NULL) != RC_OK)
		rc = rc ? rc : RC_DB;
	free(parents);
	buf_free(&ts);
	buf_free(&row);
	free(ids);
	return rc;
}

enum rc subform_write_records(struct db *db, const struct subform_set *set,
			      struct json_object *records, int64_t asked, struct subform_stats *st)
{
	enum rc rc = RC_OK;

	for (size_t i = 0; i < set->n && !rc; i++)
		rc = write_one(db, set, &set->sf[i], records, asked, st);
	return rc;
}

enum rc subform_drop_lines(struct db *db, const char *module, const char *ids_array)
{
	struct db_res *res = NULL;
	char *parent = schema_table_name(module), *qparent = db_quote_ident(db, parent);
	enum rc rc;

	rc = db_prepared(db, "subform_tables", "SELECT table_name FROM subforms WHERE module = $1",
			 1, (const char *[]){module}, &res);
	for (int i = 0; !rc && i < db_res_rows(res); i++) {
		const char *table = db_res_get(res, i, 0);
		char *qtable = db_quote_ident(db, table);
		char *sql = xasprintf(
			"WITH gone AS (SELECT id FROM %s WHERE id = ANY($1::bigint[])"
			"  AND deleted_at IS NOT NULL),"
			" sets AS (DELETE FROM line_sets l USING gone g WHERE l.table_name = $2"
			"  AND l.parent_id = g.id)"
			" DELETE FROM %s c USING gone g WHERE c.parent_id = g.id",
			qparent, qtable);
		rc = db_exec(db, sql, 2, (const char *[]){ids_array, table}, NULL);
		free(sql);
		free(qtable);
	}
	db_res_free(res);
	free(parent);
	free(qparent);
	return rc;
}

/* ---- the listing ---- */

/* Passes over a listing before its sets are applied provisionally. */
#define SUBFORM_LIST_PASSES 3

static double wall_clock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Zoho's times of the changes to module's records after since (epoch
 * seconds): edits by Modified_Time, deletions by deleted_time, a page of
 * each (2 credits). *all when either had more than a page. */
static enum rc parent_changes(struct zoho *zoho, const char *module, int64_t since,
			      int64_t **times, size_t *n, bool *all)
{
	struct zoho_listed *edited = NULL;
	struct zoho_deleted *deleted = NULL;
	size_t ne = 0, nd = 0;
	bool more_e = false, more_d = false;
	int64_t date;
	enum rc rc;

	*times = NULL;
	*n = 0;
	*all = false;
	rc = zoho_list_modified(zoho, module, since, &edited, &ne, &more_e, &date);
	if (!rc)
		rc = zoho_deleted_since(zoho, module, since, 1, &deleted, &nd, &more_d);
	if (!rc) {
		*times = xcalloc(ne + nd + 1, sizeof(**times));
		for (size_t i = 0; i < ne; i++)
			(*times)[(*n)++] = edited[i].modified;
		for (size_t i = 0; i < nd; i++)
			(*times)[(*n)++] = deleted[i].deleted_time;
		*all = more_e || more_d;
	}
	free(edited);
	free(deleted);
	return rc;
}

/* One page of sf's listing COPYed into zcrm_lines; *ids (grown as needed)
 * gets the ids of its rows, *n how many. */
static enum rc copy_page(struct db *db, const struct subform *sf, struct json_object *rows,
			 int64_t **ids, size_t *idcap, size_t *n, struct subform_stats *st,
			 struct buf *line)
{
	size_t nrows = json_object_array_length(rows);
	enum rc rc;

	*n = 0;
	if (nrows > *idcap) {
		*idcap = nrows;
		*ids = xrealloc(*ids, nrows * sizeof(**ids));
	}
	rc = db_copy_begin(db, "COPY zcrm_lines FROM STDIN (FORMAT csv)");
	for (size_t r = 0; !rc && r < nrows; r++) {
		struct json_object *row = json_object_array_get_idx(rows, r), *p, *pid, *id;
		if (json_object_object_get_ex(row, "id", &id) && id)
			(*ids)[(*n)++] = strtoll(json_object_get_string(id), NULL, 10);
		if (!json_object_object_get_ex(row, "Parent_Id", &p) || !p ||
		    !json_object_object_get_ex(p, "id", &pid) || !pid)
			continue;
		int64_t parent = strtoll(json_object_get_string(pid), NULL, 10);
		buf_reset(line);
		if (parent <= 0 || !line_csv(sf, row, parent, line))
			continue;
		st->staged++;
		rc = db_copy_put(db, line->s, line->len);
	}
	if (rc) {
		if (db_copy_end(db, "aborted", NULL) != RC_OK)
			log_debug("COPY abort failed", "err=%s", log_q(db_error(db)));
		return rc;
	}
	return db_copy_end(db, NULL, NULL);
}

/* sf's listing COPYed into zcrm_lines (no transaction), in ascending id
 * order, read again (listcover.h) while a parent of module changed during
 * a pass in a way that may have shifted a line out of every page. After
 * SUBFORM_LIST_PASSES passes *complete is false: the lines read are all
 * that can be trusted. */
static enum rc list_pages(struct db *db, struct zoho *zoho, const char *module,
			  const struct subform *sf, struct subform_stats *st, bool *complete,
			  char *err, size_t errlen)
{
	size_t nf = 0, idcap = 0;
	const char **fields = xcalloc(sf->cols->ncols + 1, sizeof(*fields));
	char *token = NULL;
	int64_t *ids = NULL, *changes = NULL;
	struct buf line = {0};
	struct listcover lc = {0};
	enum rc rc = RC_OK;

	*complete = false;
	fields[nf++] = "Parent_Id";
	for (size_t i = 0; i < sf->cols->ncols && nf < ZOHO_MAX_FIELDS; i++)
		fields[nf++] = sf->cols->cols[i].api_name;
	if (sf->cols->ncols + 1 > ZOHO_MAX_FIELDS)
		log_warn("the subform has more fields than a listing call returns; the rest stay"
			 " NULL until the parent is fetched by id",
			 "subform=%s fields=%zu max=%d", log_q(sf->field), sf->cols->ncols,
			 ZOHO_MAX_FIELDS - 1);
	for (int pass = 1; !rc && !*complete && pass <= SUBFORM_LIST_PASSES; pass++) {
		/* If-Modified-Since is "after": the second before the pass less the skew. */
		int64_t since = (int64_t)time(NULL) - SUBFORM_SKEW_MARGIN - 1;
		bool more = true, all = false;
		size_t nchanges = 0;
		for (int page = 1; more; page++) {
			struct json_object *rows = NULL;
			char *next = NULL;
			size_t n = 0;
			double t0 = wall_clock();
			rc = zoho_list_subform(zoho, sf->module, fields, nf, page, token, &rows,
					       &more, &next);
			if (rc) {
				snprintf(err, errlen, "%s", zoho_error(zoho));
				break;
			}
			double t1 = wall_clock();
			st->calls++;
			free(token);
			token = next;
			rc = copy_page(db, sf, rows, &ids, &idcap, &n, st, &line);
			json_object_put(rows);
			if (rc) {
				snprintf(err, errlen, "COPY of lines: %s", db_error(db));
				break;
			}
			listcover_page(&lc, t0, t1, ids, n);
			if (n == 0 || listcover_past_open(&lc))
				break;
		}
		free(token);
		token = NULL;
		if (rc)
			break;
		/* A single page, or pages of adjacent ids, cannot have lost a row. */
		if (listcover_boundaries(&lc) > 0) {
			free(changes);
			rc = parent_changes(zoho, module, since, &changes, &nchanges, &all);
			if (rc) {
				snprintf(err, errlen, "%s", zoho_error(zoho));
				break;
			}
			st->calls += 2;
		}
		*complete = listcover_end_pass(&lc, changes, nchanges, all, SUBFORM_SKEW_MARGIN);
		if (!*complete)
			log_info("records changed while their line items were listed; reading the"
				 " listing again where a line may have been skipped",
				 "subform=%s pass=%d open=%zu", log_q(sf->field), pass, lc.nopen);
	}
	if (!rc && !*complete)
		log_warn("the line items kept changing while they were listed; their sets are kept"
			 " stale, to be read again by the next run",
			 "subform=%s passes=%d", log_q(sf->field), SUBFORM_LIST_PASSES);
	listcover_free(&lc);
	free(changes);
	free(ids);
	free(token);
	buf_free(&line);
	free(fields);
	return rc;
}

enum rc subform_listing_load(struct db *db, struct zoho *zoho, const struct subform_set *set,
			     const int64_t *parents, size_t nparents, struct subform_stats *st,
			     char *err, size_t errlen)
{
	char *qparent = db_quote_ident(db, set->parent_table);
	char *ids = parents ? db_int64_array(parents, nparents) : NULL;
	/* The parents, as stored when the listing starts: whatever version of
	 * a parent we hold was read before, so the listing's lines are at
	 * least as new - their read time is the later of that version's
	 * Modified_Time and the listing's start. */
	char *snap = xasprintf("CREATE TEMP TABLE zcrm_lines_parents AS"
			       " SELECT id AS parent_id, greatest($2::numeric,"
			       "  coalesce(extract(epoch FROM modified_time), 0)) AS ts"
			       " FROM %s WHERE deleted_at IS NULL"
			       "  AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[]))",
			       qparent);
	enum rc rc = RC_OK;

	for (size_t i = 0; i < set->n && !rc; i++) {
		const struct subform *sf = &set->sf[i];
		char stamp[24];
		snprintf(stamp, sizeof(stamp), "%lld",
			 (long long)time(NULL) - SUBFORM_SKEW_MARGIN);
		rc = db_exec(db, "DROP TABLE IF EXISTS pg_temp.zcrm_lines_parents", 0, NULL, NULL);
		if (!rc)
			rc = db_exec(db, snap, 2, (const char *[]){ids, stamp}, NULL);
		if (!rc)
			rc = stage_create(db, sf, false);
		if (rc) {
			snprintf(err, errlen, "%s", db_error(db));
			break;
		}
		bool complete = false;
		rc = list_pages(db, zoho, set->module, sf, st, &complete, err, errlen);
		if (!rc)
			rc = db_begin(db);
		if (!rc)
			rc = apply_sets(db, set, sf, "SELECT parent_id, ts FROM zcrm_lines_parents",
					NULL, NULL, !complete, st);
		if (!rc)
			rc = db_commit(db);
		if (rc) {
			if (!err[0])
				snprintf(err, errlen, "%s", db_error(db));
			db_rollback(db);
		}
		if (db_exec(db, "DROP TABLE IF EXISTS pg_temp.zcrm_lines, pg_temp.zcrm_lines_parents",
			    0, NULL, NULL) != RC_OK)
			log_debug("cannot drop the lines staging tables", "err=%s",
				  log_q(db_error(db)));
	}
	free(snap);
	free(ids);
	free(qparent);
	return rc;
}

enum rc subform_count_lines(struct db *db, const struct subform_set *set, long *lines,
			    long *listing_calls)
{
	enum rc rc = RC_OK;

	*lines = 0;
	*listing_calls = 0;
	for (size_t i = 0; i < set->n && !rc; i++) {
		char *qtable = db_quote_ident(db, set->sf[i].cols->table), *v = NULL;
		/* The planner's estimate once the table is large (an exact count
		 * would read it all on every fetch batch), else the count. */
		char *sql = xasprintf("SELECT CASE WHEN c.reltuples > 10000 THEN c.reltuples::bigint"
				      " ELSE (SELECT count(*) FROM %s) END FROM pg_class c"
				      " WHERE c.oid = to_regclass($1)",
				      qtable);
		rc = db_query_value(db, sql, 1, (const char *[]){qtable}, &v);
		long n = v ? atol(v) : 0;
		*lines += n;
		*listing_calls += subform_listing_calls(n);
		free(v);
		free(sql);
		free(qtable);
	}
	return rc;
}

enum rc subform_stale_parents(struct db *db, const struct subform_set *set, int64_t **ids,
			      size_t *n)
{
	struct db_res *res = NULL;
	const char **tables = xcalloc(set->n ? set->n : 1, sizeof(*tables));
	char *qparent = db_quote_ident(db, set->parent_table), *arr = NULL, *sql = NULL;
	enum rc rc;

	*ids = NULL;
	*n = 0;
	for (size_t i = 0; i < set->n; i++)
		tables[i] = set->sf[i].cols->table;
	arr = db_text_array(tables, NULL, set->n);
	sql = xasprintf("SELECT t.id FROM %s t WHERE t.deleted_at IS NULL AND EXISTS ("
			" SELECT 1 FROM unnest($1::text[]) AS s(tn) LEFT JOIN line_sets l"
			"  ON l.table_name = s.tn AND l.parent_id = t.id"
			" WHERE l.parent_id IS NULL OR l.read_at < t.modified_time) ORDER BY t.id",
			qparent);
	rc = db_exec(db, sql, 1, (const char *[]){arr}, &res);
	if (!rc) {
		size_t rows = (size_t)db_res_rows(res);
		*ids = xcalloc(rows ? rows : 1, sizeof(**ids));
		for (size_t i = 0; i < rows; i++)
			(*ids)[i] = strtoll(db_res_get(res, (int)i, 0), NULL, 10);
		*n = rows;
	}
	db_res_free(res);
	free(sql);
	free(arr);
	free(qparent);
	free(tables);
	return rc;
}
