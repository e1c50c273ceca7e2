/* merge.c — staging and the freshness-rule merge (see merge.h). */
#include "merge.h"
#include "buf.h"
#include "log.h"
#include "subform.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct merge_stage {
	struct db *db;      /* the caller's transaction: merges run here */
	struct db *copy_db; /* where COPY goes: db, or a chunk's stager */
	const struct module_schema *schema;
	char *table;        /* the staging table, quoted (qualified for chunks) */
	bool chunk;         /* an UNLOGGED table committed by copy_db */
	char **headers;
	size_t nheaders;
	bool copying;
	bool read;          /* the merging side has read it (holds its lock) */
	/* the merge in flight (merge_apply_start … merge_apply_finish) */
	bool in_flight;
	enum merge_form form;
	enum merge_form pinned; /* merge_stage_pin_form; MERGE_FORM_AUTO: none */
	enum merge_rule rule;
	int64_t tie_before;
	char *source;
	long cells_nulled;  /* bad cells stored as NULL by the retry (scrub) */
};

/* Which staged header feeds the column c, or -1. The id header may be "Id". */
static int header_of(const char *const *headers, size_t n, const struct zcolumn *c)
{
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(headers[i], c->api_name))
			return (int)i;
		if (!strcmp(c->column, "id") && !strcasecmp(headers[i], "id"))
			return (int)i;
	}
	return -1;
}

/* ---- the statement of each form, from named fragments ---- */

/* The SQL a merge statement is assembled from, for one stage and rule. */
struct merge_parts {
	char *qtable;         /* the module table, quoted */
	const char *stage;    /* the staging table (quoted) */
	const char *source;   /* the source column's value */
	enum merge_rule rule;
	int64_t tie_before;
	struct buf cols;      /* the columns written: "id", "val", … */
	struct buf sel;       /* the staged row typed: cast AS column, … */
	struct buf upd;       /* ON CONFLICT's SET: column = excluded.column, … */
	struct buf mupd;      /* MERGE's SET: column = n.column, … */
	struct buf mval;      /* MERGE's VALUES: n.column, … */
	struct buf set;       /* the back-fill's SET (no modified_time) */
	/* the values (not id) of the staged row n, the stored row cur or t,
	 * and the proposed row excluded, compared on a tie */
	struct buf vn, vcur, vex, vt;
	char *qid, *qmt;      /* the staged id and Modified_Time headers, quoted */
};

static void parts_init(struct merge_parts *p, struct db *db, const struct module_schema *schema,
		       const char *stage, const char *const *headers, size_t nheaders,
		       enum merge_rule rule, int64_t tie_before, const char *source)
{
	*p = (struct merge_parts){.qtable = db_quote_ident(db, schema->table), .stage = stage,
				  .source = source, .rule = rule, .tie_before = tie_before};
	for (size_t i = 0; i < schema->ncols; i++) {
		const struct zcolumn *c = &schema->cols[i];
		int h = header_of(headers, nheaders, c);
		if (h < 0)
			continue;
		bool is_id = !strcmp(c->column, "id"), is_mt = !strcmp(c->column, "modified_time");
		char *qc = db_quote_ident(db, c->column), *qh = db_quote_ident(db, headers[h]);
		if (is_id && !p->qid)
			p->qid = xstrdup(qh);
		if (is_mt && !p->qmt)
			p->qmt = xstrdup(qh);
		buf_printf(&p->cols, "%s%s", p->cols.len ? ", " : "", qc);
		if (p->sel.len)
			buf_adds(&p->sel, ", ");
		char *ref = xasprintf("s.%s", qh);
		char *cast = schema_cast_expr(is_id ? FIELD_INT : c->kind, ref);
		buf_printf(&p->sel, "%s AS %s", cast, qc);
		free(cast);
		free(ref);
		buf_printf(&p->mval, "n.%s, ", qc);
		if (!is_id) {
			const char *sep = p->vn.len ? ", " : "";
			buf_printf(&p->upd, "%s = excluded.%s, ", qc, qc);
			buf_printf(&p->mupd, "%s = n.%s, ", qc, qc);
			buf_printf(&p->vn, "%sn.%s", sep, qc);
			buf_printf(&p->vcur, "%scur.%s", sep, qc);
			buf_printf(&p->vex, "%sexcluded.%s", sep, qc);
			buf_printf(&p->vt, "%st.%s", sep, qc);
			if (!is_mt)
				buf_printf(&p->set, "%s%s = n.%s", p->set.len ? ", " : "", qc, qc);
		}
		free(qc);
		free(qh);
	}
	/* merge_stage_begin refuses a header without them. */
	if (!p->qid)
		p->qid = xstrdup("id");
	if (!p->qmt)
		p->qmt = xstrdup("\"Modified_Time\"");
}

static void parts_free(struct merge_parts *p)
{
	struct buf *bufs[] = {&p->cols, &p->sel, &p->upd, &p->mupd, &p->mval, &p->set,
			      &p->vn,   &p->vcur, &p->vex, &p->vt};
	for (size_t i = 0; i < sizeof(bufs) / sizeof(*bufs); i++)
		buf_free(bufs[i]);
	free(p->qtable);
	free(p->qid);
	free(p->qmt);
}

/* NEWER: is row r (values vr) newer than the stored row c (values vc) by
 * the rule? vr NULL: on the key alone, before the values are typed - a
 * superset of the full test.
 *   fetch: r.modified_time >= c.modified_time
 *   bulk:  r.modified_time >  c.modified_time, or an equal one when c was
 *          read before the export job was created and (with the values)
 *          differs: an unchanged re-export writes nothing. */
static void newer(struct buf *b, const struct merge_parts *p, const char *r, const char *c,
		  const char *vr, const char *vc)
{
	if (p->rule == MERGE_FETCH) {
		buf_printf(b, "%s.modified_time >= %s.modified_time", r, c);
		return;
	}
	if (p->tie_before <= 0) {
		buf_printf(b, "%s.modified_time > %s.modified_time", r, c);
		return;
	}
	buf_printf(b, "(%s.modified_time > %s.modified_time OR (%s.modified_time = %s.modified_time"
		      " AND %s.synced_at < to_timestamp(%lld)",
		   r, c, r, c, c, (long long)p->tie_before);
	if (vr)
		buf_printf(b, " AND ROW(%s) IS DISTINCT FROM ROW(%s)", vr, vc);
	buf_adds(b, "))");
}

/* APPLIES: row r replaces the stored row c - newer by the rule and newer
 * than c's tombstone, if any; or RESTORE: c's tombstone is older than the
 * moment the source read the row (tie_before: the export job's creation,
 * or when a fetch asked), so it belongs to a record Zoho has restored
 * since - the row was live when it was read, whatever its Modified_Time (a
 * restore may keep it, or fall in the second of the delete). */
static void applies(struct buf *b, const struct merge_parts *p, const char *r, const char *c,
		    const char *vr, const char *vc)
{
	buf_printf(b, "((%s.modified_time IS NULL OR ", c);
	newer(b, p, r, c, vr, vc);
	buf_printf(b, ")\n  AND (%s.deleted_at IS NULL OR %s.modified_time > %s.deleted_at))", c, r,
		   c);
	if (p->tie_before > 0)
		buf_printf(b,
			   " OR (%s.deleted_at IS NOT NULL AND %s.deleted_at < to_timestamp(%lld)"
			   " AND (%s.modified_time IS NULL OR %s.modified_time >= %s.modified_time))",
			   c, c, (long long)p->tie_before, c, r, c);
}

/* ON CONFLICT's update and its guard, for the rows other writers inserted
 * or changed since our snapshot: the same rule on the proposed row. */
static void on_conflict(struct buf *b, const struct merge_parts *p)
{
	buf_printf(b,
		   "ON CONFLICT (id) DO UPDATE SET %sdeleted_at = NULL,\n"
		   "  synced_at = excluded.synced_at, source = excluded.source\n"
		   "WHERE ",
		   buf_str(&p->upd));
	applies(b, p, "excluded", "t", buf_str(&p->vex), buf_str(&p->vt));
}

/* MERGE (bulk pages, PostgreSQL 15+): like the upsert, but new rows are
 * plain inserts: `ON CONFLICT` makes each a speculative insertion (an extra
 * WAL record and index probe), 1.48 s against 0.96 s for 200,000 typed
 * rows (docs/benchmarks.md). MERGE fails where ON CONFLICT would resolve -
 * an id repeated in the page (21000) or inserted by another writer since
 * our snapshot (23505) - and merge_apply_finish then falls back. A matched
 * row changed meanwhile is re-checked by MERGE's WHEN on its newest
 * version, as ON CONFLICT's WHERE is. */
static char *merge_form_sql(const struct merge_parts *p)
{
	struct buf b = {0};

	buf_printf(&b,
		   "MERGE INTO %s AS t\n"
		   "USING (SELECT * FROM (SELECT %s FROM %s s) n0\n"
		   "  WHERE n0.id IS NOT NULL AND n0.modified_time IS NOT NULL) n\n"
		   "ON t.id = n.id\n"
		   "WHEN MATCHED AND (",
		   p->qtable, buf_str(&p->sel), p->stage);
	applies(&b, p, "n", "t", buf_str(&p->vn), buf_str(&p->vt));
	buf_printf(&b,
		   ") THEN\n"
		   "  UPDATE SET %sdeleted_at = NULL, synced_at = now(), source = '%s'\n"
		   "WHEN NOT MATCHED THEN\n"
		   "  INSERT (%s, synced_at, source) VALUES (%snow(), '%s')",
		   buf_str(&p->mupd), p->source, buf_str(&p->cols), buf_str(&p->mval), p->source);
	return buf_steal(&b);
}

/* INSERT … ON CONFLICT, for pages without repeated ids (every real one; ON
 * CONFLICT refuses a repeated id, SQLSTATE 21000, and merge_apply then
 * runs the dedup form). The rows that are not newer are dropped by a join
 * before ON CONFLICT, so an unchanged page writes no WAL. The staged rows'
 * casts are a pulled-up subquery: the join and its filter need only id
 * and Modified_Time, so the other columns are cast only for the rows that
 * pass (an unchanged page costs a hash join on two columns), and nothing
 * is sorted. */
static char *upsert_form_sql(const struct merge_parts *p)
{
	struct buf b = {0};

	buf_printf(&b,
		   "INSERT INTO %s AS t (%s, synced_at, source)\n"
		   "SELECT n.*, now(), '%s' FROM (\n"
		   "  SELECT %s FROM %s s) n\n"
		   "LEFT JOIN %s cur ON cur.id = n.id\n"
		   "WHERE n.id IS NOT NULL AND n.modified_time IS NOT NULL AND (cur.id IS NULL OR (\n  ",
		   p->qtable, buf_str(&p->cols), p->source, buf_str(&p->sel), p->stage, p->qtable);
	applies(&b, p, "n", "cur", buf_str(&p->vn), buf_str(&p->vcur));
	buf_adds(&b, "))\n");
	on_conflict(&b, p);
	return buf_steal(&b);
}

/* Repeated ids: keep the newest row of each. Narrow first: only (id,
 * Modified_Time, ctid) of each staged row is cast, deduplicated and
 * checked against the stored row on the key alone; only the rows that
 * pass are fetched back by ctid and cast in full, so no wide row is
 * sorted. The full guard is checked again on the typed row (the tie rule
 * compares values) and in ON CONFLICT (concurrent writers). */
static char *dedup_form_sql(const struct merge_parts *p)
{
	struct buf b = {0};

	buf_printf(&b,
		   "INSERT INTO %s AS t (%s, synced_at, source)\n"
		   "SELECT n.*, now(), '%s' FROM (\n"
		   "  SELECT %s FROM (\n"
		   "    SELECT DISTINCT ON (k.id) k.id, k.tid FROM (\n"
		   "      SELECT NULLIF(s.%s, '')::bigint AS id,\n"
		   "             NULLIF(s.%s, '')::timestamptz AS modified_time, s.ctid AS tid\n"
		   "      FROM %s s) k\n"
		   "    LEFT JOIN %s cur ON cur.id = k.id\n"
		   "    WHERE k.id IS NOT NULL AND k.modified_time IS NOT NULL AND (cur.id IS NULL OR (\n"
		   "      ",
		   p->qtable, buf_str(&p->cols), p->source, buf_str(&p->sel), p->qid, p->qmt,
		   p->stage, p->qtable);
	applies(&b, p, "k", "cur", NULL, NULL);
	buf_printf(&b,
		   "))\n"
		   "    ORDER BY k.id, k.modified_time DESC) w\n"
		   "  JOIN %s s ON s.ctid = w.tid) n\n"
		   "LEFT JOIN %s cur ON cur.id = n.id\n"
		   "WHERE cur.id IS NULL OR (\n  ",
		   p->stage, p->qtable);
	applies(&b, p, "n", "cur", buf_str(&p->vn), buf_str(&p->vcur));
	buf_adds(&b, ")\n");
	on_conflict(&b, p);
	return buf_steal(&b);
}

/* The prefilter's lookup (merge.h): the rule on the key alone (applies()
 * without the values, a superset of the full test), so a row it returns
 * is one no merge with this rule and tie_before would write. The lateral
 * subquery keeps the plan a probe of the primary key per row: a join
 * would scan the whole table for a few thousand ids. */
char *merge_refused_sql(struct db *db, const struct module_schema *schema, enum merge_rule rule,
			int64_t tie_before)
{
	struct merge_parts p = {.rule = rule, .tie_before = tie_before};
	const struct zcolumn *mt = schema_column(schema, "Modified_Time");
	struct buf b = {0};

	/* Cast as the merge casts the staged cell (parts_init). */
	char *qtable = db_quote_ident(db, schema->table);
	char *cast = schema_cast_expr(mt ? mt->kind : FIELD_DATETIME, "u.mt");
	buf_printf(&b,
		   "SELECT k.i FROM (SELECT u.id, %s AS modified_time, u.i\n"
		   "  FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY u(id, mt, i)) k\n"
		   "CROSS JOIN LATERAL (SELECT c.modified_time, c.deleted_at, c.synced_at\n"
		   "  FROM %s c WHERE c.id = k.id OFFSET 0) cur\n"
		   "WHERE NOT (",
		   cast, qtable);
	applies(&b, &p, "k", "cur", NULL, NULL);
	buf_adds(&b, ")");
	free(cast);
	free(qtable);
	return buf_steal(&b);
}

/* MERGE_BACKFILL: the new columns' values on the rows holding exactly the
 * exported Modified_Time. Every id the source carried, with its
 * Modified_Time, goes to the session's zcrm_backfill_seen (schemasync.c
 * creates it): rows it did not carry, or carried older, are fetched by id
 * afterwards, so that no row keeps a NULL Zoho has a value for. */
static char *backfill_sql(const struct merge_parts *p)
{
	return xasprintf(
		"WITH seen AS (INSERT INTO zcrm_backfill_seen AS b (id, modified_time)\n"
		"  SELECT id, modified_time FROM (SELECT %s FROM %s s) k WHERE id IS NOT NULL\n"
		"  ON CONFLICT (id) DO UPDATE SET modified_time = excluded.modified_time)\n"
		"UPDATE %s AS t SET %s\n"
		"FROM (SELECT %s FROM %s s) n\n"
		"WHERE t.id = n.id AND t.modified_time = n.modified_time\n"
		"  AND ROW(%s) IS DISTINCT FROM ROW(%s)",
		buf_str(&p->sel), p->stage, p->qtable, p->set.len ? buf_str(&p->set) : "id = t.id",
		buf_str(&p->sel), p->stage, buf_str(&p->vt), buf_str(&p->vn));
}

static char *build_sql(struct db *db, const struct module_schema *schema, const char *stage,
		       const char *const *headers, size_t nheaders, enum merge_rule rule,
		       int64_t tie_before, const char *source, enum merge_form form)
{
	struct merge_parts p;
	char *sql;

	parts_init(&p, db, schema, stage, headers, nheaders, rule, tie_before, source);
	if (rule == MERGE_BACKFILL)
		sql = backfill_sql(&p);
	else if (form == MERGE_FORM_MERGE)
		sql = merge_form_sql(&p);
	else if (form == MERGE_FORM_UPSERT)
		sql = upsert_form_sql(&p);
	else
		sql = dedup_form_sql(&p);
	parts_free(&p);
	return sql;
}

static enum rc check_headers(const char *const *headers, size_t nheaders, char *err,
			     size_t errlen)
{
	bool have_id = false, have_mt = false;

	for (size_t i = 0; i < nheaders; i++) {
		if (!strcasecmp(headers[i], "id"))
			have_id = true;
		if (!strcmp(headers[i], "Modified_Time"))
			have_mt = true;
	}
	if (have_id && have_mt)
		return RC_OK;
	snprintf(err, errlen, "CSV header lacks %s",
		 !have_id ? "the id column" : "the Modified_Time column");
	return RC_BADINPUT;
}

/* "CREATE <kind> <table> (<header> text, …)<suffix>" */
static char *stage_ddl(struct db *db, const char *kind, const char *table,
		       const char *const *headers, size_t nheaders, const char *suffix)
{
	struct buf ddl = {0};

	buf_printf(&ddl, "CREATE %s %s (", kind, table);
	for (size_t i = 0; i < nheaders; i++) {
		char *q = db_quote_ident(db, headers[i]);
		buf_printf(&ddl, "%s%s text", i ? ", " : "", q);
		free(q);
	}
	buf_printf(&ddl, ")%s", suffix);
	return buf_steal(&ddl);
}

/* Everything but the table: COPY into it. Nothing here may use db, which
 * may be running the previous chunk's merge. */
static enum rc stage_open(struct db *db, struct db *copy_db, const struct module_schema *schema,
			  const char *table, bool chunk, const char *const *headers,
			  size_t nheaders, struct merge_stage **out, char *err, size_t errlen)
{
	char *copy = xasprintf("COPY %s FROM STDIN (FORMAT csv, HEADER false)", table);
	enum rc rc = db_copy_begin(copy_db, copy);
	if (rc) {
		snprintf(err, errlen, "staging: %s", db_error(copy_db));
		goto out;
	}
	struct merge_stage *st = xcalloc(1, sizeof(*st));
	st->db = db;
	st->copy_db = copy_db;
	st->schema = schema;
	st->table = xstrdup(table);
	st->chunk = chunk;
	st->copying = true;
	st->nheaders = nheaders;
	st->headers = xcalloc(nheaders, sizeof(char *));
	for (size_t i = 0; i < nheaders; i++)
		st->headers[i] = xstrdup(headers[i]);
	*out = st;
out:
	free(copy);
	return rc;
}

enum rc merge_stage_begin(struct db *db, const struct module_schema *schema,
			  const char *const *headers, size_t nheaders, struct merge_stage **out,
			  char *err, size_t errlen)
{
	enum rc rc;

	*out = NULL;
	rc = check_headers(headers, nheaders, err, errlen);
	if (rc)
		return rc;
	char *ddl = stage_ddl(db, "TEMP TABLE", "zcrm_stage", headers, nheaders, " ON COMMIT DROP");
	rc = db_exec(db, ddl, 0, NULL, NULL);
	free(ddl);
	if (rc) {
		snprintf(err, errlen, "staging: %s", db_error(db));
		return rc;
	}
	return stage_open(db, db, schema, "zcrm_stage", false, headers, nheaders, out, err,
			  errlen);
}

/* <schema>_stage.c<stager's backend pid>_<seq>, quoted. */
static char *chunk_table(struct db *stager, int seq)
{
	char *nsp = xasprintf("%s_stage", db_schema(stager));
	char *name = xasprintf("c%d_%d", db_backend_pid(stager), seq);
	char *qn = db_quote_ident(stager, nsp), *qt = db_quote_ident(stager, name);
	char *table = xasprintf("%s.%s", qn, qt);

	free(nsp);
	free(name);
	free(qn);
	free(qt);
	return table;
}

enum rc merge_stage_begin_chunk(struct db *db, struct db *stager,
				const struct module_schema *schema, const char *const *headers,
				size_t nheaders, int seq, struct merge_stage **out, char *err,
				size_t errlen)
{
	enum rc rc;

	*out = NULL;
	rc = check_headers(headers, nheaders, err, errlen);
	if (rc)
		return rc;
	char *table = chunk_table(stager, seq);
	/* UNLOGGED: scratch that a crash may lose; the page is exported again. */
	char *ddl = stage_ddl(stager, "UNLOGGED TABLE", table, headers, nheaders, "");
	rc = db_exec(stager, ddl, 0, NULL, NULL);
	free(ddl);
	if (rc)
		snprintf(err, errlen, "staging: %s", db_error(stager));
	else
		rc = stage_open(db, stager, schema, table, true, headers, nheaders, out, err,
				errlen);
	free(table);
	return rc;
}

enum rc merge_stage_sweep(struct db *stager)
{
	struct db_res *res = NULL;
	char *nsp = xasprintf("%s_stage", db_schema(stager));
	/* A chunk of a live connection may be merging in its transaction; a
	 * dead one's (a failed page, kill -9) is ours to drop. A merger still
	 * committing holds its chunks' locks a moment: wait briefly, else
	 * leave them for the next sweep. */
	enum rc rc = db_exec(stager, "SET lock_timeout = '2s'", 0, NULL, NULL);
	if (!rc)
		rc = db_exec(stager,
			     "SELECT format('%I.%I', n.nspname, c.relname)"
			     " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
			     " WHERE n.nspname = $1 AND c.relkind = 'r'"
			     "  AND c.relname ~ '^c[0-9]{1,9}_[0-9]+$'"
			     "  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a"
			     "   WHERE a.pid = substring(c.relname from '^c([0-9]+)_')::int)",
			     1, (const char *[]){nsp}, &res);
	for (int i = 0; !rc && i < db_res_rows(res); i++) {
		char *drop = xasprintf("DROP TABLE IF EXISTS %s", db_res_get(res, i, 0));
		if (db_exec(stager, drop, 0, NULL, NULL) != RC_OK)
			log_info("staging table left for the next sweep", "table=%s err=%s",
				 log_q(db_res_get(res, i, 0)), log_q(db_error(stager)));
		else
			log_debug("dropped a staging table left behind", "table=%s",
				  log_q(db_res_get(res, i, 0)));
		free(drop);
	}
	db_res_free(res);
	free(nsp);
	return rc;
}

enum rc merge_stage_put(struct merge_stage *st, const void *buf, size_t len)
{
	return db_copy_put(st->copy_db, buf, len);
}

enum rc merge_stage_end(struct merge_stage *st, const char *errmsg, long *rows)
{
	if (!st->copying)
		return RC_INTERNAL;
	st->copying = false;
	return db_copy_end(st->copy_db, errmsg, rows);
}

struct db *merge_stage_copy_db(const struct merge_stage *st)
{
	return st->copy_db;
}

static char *form_sql(struct merge_stage *st)
{
	return build_sql(st->db, st->schema, st->table, (const char *const *)st->headers,
			 st->nheaders, st->rule, st->tie_before, st->source, st->form);
}

/* Inside the caller's transaction: a chunk's table goes with it. On a
 * rollback it stays, for merge_stage_sweep. */
static enum rc drop_chunk(struct merge_stage *st)
{
	if (!st->chunk)
		return RC_OK;
	char *drop = xasprintf("DROP TABLE %s", st->table);
	enum rc rc = db_exec(st->db, drop, 0, NULL, NULL);
	free(drop);
	st->chunk = false;
	return rc;
}

enum rc merge_apply_start(struct merge_stage *st, enum merge_rule rule, int64_t tie_before,
			  const char *source, char *err, size_t errlen)
{
	enum rc rc;

	rc = schema_cast_prepare(st->db, st->schema);
	if (rc)
		goto fail;
	/* Inside the caller's transaction: a savepoint lets a failed form be
	 * replaced by the next. */
	rc = db_exec(st->db, "SAVEPOINT zcrm_merge", 0, NULL, NULL);
	if (rc)
		goto fail;
	st->read = true;
	/* For this transaction only, and never made worse:
	 * - a whole page joins the stored rows by a hash join on (id,
	 *   modified_time, deleted_at, synced_at); with the default 4 MB it
	 *   spills to disk for a 200k-row table and the merge of an unchanged
	 *   page takes twice as long;
	 * - a chunk is a small part of the stored rows, and hashing all of them
	 *   again for each chunk cost 2.5x probing the primary key per chunk
	 *   row (123 vs 49 ms for 14,000 rows against 200,000); the planner
	 *   probes when it takes the table's pages as cached, which they are
	 *   from one chunk to the next. */
	rc = db_exec(st->db,
		     "SELECT set_config('work_mem', '64MB', true) WHERE"
		     "  pg_size_bytes(current_setting('work_mem')) < pg_size_bytes('64MB')"
		     " UNION ALL SELECT set_config('random_page_cost', '1.1', true) WHERE $1"
		     "  AND current_setting('random_page_cost')::float8 > 1.1",
		     1, (const char *[]){st->chunk ? "true" : "false"}, NULL);
	if (rc)
		goto fail;
	st->rule = rule;
	st->tie_before = tie_before;
	free(st->source);
	st->source = xstrdup(source);
	/* MERGE for bulk pages only: a fetch merges a few rows that webhook
	 * threads race to insert, where ON CONFLICT is the form that fits. */
	if (st->pinned != MERGE_FORM_AUTO)
		st->form = st->pinned;
	else if (rule == MERGE_BULK && db_server_version(st->db) >= 150000)
		st->form = MERGE_FORM_MERGE;
	else
		st->form = MERGE_FORM_UPSERT;
	char *sql = form_sql(st);
	rc = db_send(st->db, sql, 0, NULL);
	free(sql);
	if (!rc) {
		st->in_flight = true;
		return RC_OK;
	}
fail:
	snprintf(err, errlen, "merge: %s", db_error(st->db));
	return rc;
}

/* The type a staged column is cast to by the merge, if that cast can
 * fail: text, multi-select and JSON never do (schema_cast_expr). */
static const char *fallible_type(const struct zcolumn *c)
{
	if (!strcmp(c->column, "id"))
		return "bigint";
	switch (c->kind) {
	case FIELD_INT:
	case FIELD_LOOKUP:
	case FIELD_NUMERIC:
	case FIELD_BOOL:
	case FIELD_DATE:
	case FIELD_DATETIME:
	case FIELD_IDS:
		return schema_kind_pg_type(c->kind);
	default:
		return NULL;
	}
}

static bool data_exception(struct db *db)
{
	return !strncmp(db_sqlstate(db), "22", 2);
}

/* Does every staged cell of header qh cast to type? One cheap pass of the
 * plain cast, under a savepoint of its own. */
static enum rc probe_column(struct merge_stage *st, const char *qh, const char *type,
			    bool *bad)
{
	char *sql = xasprintf("SELECT count(NULLIF(s.%s, '')::%s) FROM %s s", qh, type, st->table);
	enum rc rc = db_exec(st->db, "SAVEPOINT zcrm_probe", 0, NULL, NULL);

	*bad = false;
	if (!rc) {
		rc = db_exec(st->db, sql, 0, NULL, NULL);
		if (rc && data_exception(st->db)) {
			*bad = true;
			rc = db_exec(st->db, "ROLLBACK TO SAVEPOINT zcrm_probe", 0, NULL, NULL);
		} else if (!rc) {
			rc = db_exec(st->db, "RELEASE SAVEPOINT zcrm_probe", 0, NULL, NULL);
		}
	}
	free(sql);
	return rc;
}

/* The cells of header h (column c, cast to type) that do not cast: into
 * cell_errors (one row per record and field, kept up to date), and NULL in
 * the staging table; *nulled counts them. The id column is scrubbed first,
 * so the record ids read here cast. */
static enum rc scrub_column(struct merge_stage *st, const char *header, const struct zcolumn *c,
			    const char *type, const char *qid, long *nulled)
{
	struct db_res *res = NULL;
	char *qh = db_quote_ident(st->db, header);
	char *rid = !strcmp(c->column, "id") ? xstrdup("NULL::bigint") :
					       xasprintf("NULLIF(s.%s, '')::bigint", qid);
	char *sql = xasprintf(
		"WITH bad AS (SELECT d.value, d.error FROM (SELECT v.value,"
		"   cast_error(v.value, $3::regtype) AS error"
		"   FROM (SELECT DISTINCT s.%s AS value FROM %s s WHERE s.%s <> '') v) d"
		"  WHERE d.error IS NOT NULL),"
		" rec AS (INSERT INTO cell_errors AS e (module, id, field, value, error, source)"
		"  SELECT DISTINCT ON (r.id) $1, r.id, $2, r.value, r.error, $4"
		"  FROM (SELECT %s AS id, b.value, b.error FROM %s s JOIN bad b ON s.%s = b.value) r"
		"  ORDER BY r.id"
		"  ON CONFLICT (module, id, field) DO UPDATE SET value = excluded.value,"
		"   error = excluded.error, source = excluded.source, seen_at = now()"
		"  RETURNING e.id, e.value, e.error),"
		" upd AS (UPDATE %s s SET %s = NULL FROM bad b WHERE s.%s = b.value RETURNING 1)"
		" SELECT (SELECT count(*) FROM upd), x.id::text, x.value, x.error"
		" FROM (SELECT 1) one LEFT JOIN (SELECT * FROM rec ORDER BY id NULLS LAST LIMIT 1) x"
		"  ON true",
		qh, st->table, qh, rid, st->table, qh, st->table, qh, qh);
	enum rc rc = db_exec(st->db, sql, 4,
			     (const char *[]){st->schema->module, c->api_name, type, st->source},
			     &res);

	*nulled = 0;
	if (!rc && db_res_rows(res) == 1) {
		*nulled = strtol(db_res_get(res, 0, 0), NULL, 10);
		const char *id = db_res_get(res, 0, 1);
		if (*nulled > 0)
			log_warn("cells that do not cast to their column's type stored as NULL",
				 "field=%s column=%s type=%s cells=%ld id=%s value=%s err=%s",
				 log_q(c->api_name), log_q(c->column), type, *nulled,
				 id ? id : "none", log_q(db_res_get(res, 0, 2)),
				 log_q(db_res_get(res, 0, 3)));
	}
	db_res_free(res);
	free(sql);
	free(rid);
	free(qh);
	return rc;
}

/* After a cast failed (SQLSTATE class 22) and the merge was rolled back to
 * its savepoint: find the staged columns whose cells do not all cast, and
 * scrub them (above). *nulled 0: no cell found to blame. The statement
 * that failed is not touched: the fast path keeps its one plain cast. */
static enum rc scrub_cells(struct merge_stage *st, long *nulled)
{
	const struct module_schema *sc = st->schema;
	char *qid = NULL;
	enum rc rc = RC_OK;

	*nulled = 0;
	for (size_t i = 0; i < st->nheaders && !qid; i++)
		if (!strcasecmp(st->headers[i], "id"))
			qid = db_quote_ident(st->db, st->headers[i]);
	if (!qid)
		return RC_INTERNAL; /* check_headers refused it */
	/* Two passes: the id column first, then the others. */
	for (int pass = 0; pass < 2 && !rc; pass++) {
		for (size_t i = 0; i < sc->ncols && !rc; i++) {
			const struct zcolumn *c = &sc->cols[i];
			const char *type = fallible_type(c);
			int h = header_of((const char *const *)st->headers, st->nheaders, c);
			bool is_id = !strcmp(c->column, "id"), bad = false;
			long n = 0;
			if (!type || h < 0 || is_id != (pass == 0))
				continue;
			char *qh = db_quote_ident(st->db, st->headers[h]);
			rc = probe_column(st, qh, type, &bad);
			free(qh);
			if (!rc && bad)
				rc = scrub_column(st, st->headers[h], c, type, qid, &n);
			*nulled += n;
		}
	}
	free(qid);
	return rc;
}

/* How many times a merge is retried after scrubbing bad cells: once is
 * enough unless a scrub missed one (then the error stands). */
#define SCRUBS_MAX 2

enum rc merge_apply_finish(struct merge_stage *st, long *applied, char *err, size_t errlen)
{
	struct db_res *res = NULL;
	char *cast_err = NULL;
	int scrubs = 0;
	enum rc rc;

	*applied = 0;
	if (!st->in_flight)
		return RC_INTERNAL;
	st->in_flight = false;
	rc = db_wait(st->db, &res);
	while (rc) {
		/* 21000: the page holds an id twice ("cannot affect row a second
		 * time"); 23505, MERGE only: another writer inserted an id since
		 * our snapshot. ON CONFLICT resolves the second, its dedup form
		 * the first. */
		bool repeated = !strcmp(db_sqlstate(st->db), "21000");
		bool raced = st->form == MERGE_FORM_MERGE && !strcmp(db_sqlstate(st->db), "23505");
		/* Class 22 (a value that does not cast: "lots" in a bigint
		 * column): the bad cells become NULL and are recorded, then the
		 * same statement runs again. */
		bool cast = data_exception(st->db) && scrubs < SCRUBS_MAX;
		if (!cast && (st->form == MERGE_FORM_DEDUP || (!repeated && !raced)))
			break;
		if (cast) {
			free(cast_err);
			cast_err = xstrdup(db_error(st->db));
		} else {
			log_info(repeated ? "page holds repeated ids; merging the newest of each" :
					    "rows inserted meanwhile; merging with ON CONFLICT",
				 "");
		}
		rc = db_exec(st->db, "ROLLBACK TO SAVEPOINT zcrm_merge", 0, NULL, NULL);
		if (rc)
			break;
		if (cast) {
			long n = 0;
			scrubs++;
			rc = scrub_cells(st, &n);
			if (rc)
				break;
			if (n == 0) {
				/* Nothing to blame: the error stands. */
				snprintf(err, errlen, "merge: %s", cast_err);
				rc = RC_DB;
				goto out;
			}
			st->cells_nulled += n;
		} else {
			st->form = repeated ? MERGE_FORM_DEDUP : MERGE_FORM_UPSERT;
		}
		char *sql = form_sql(st);
		db_res_free(res);
		res = NULL;
		rc = db_exec(st->db, sql, 0, NULL, &res);
		free(sql);
	}
	if (!rc)
		*applied = db_res_affected(res);
	if (!rc)
		rc = db_exec(st->db, "RELEASE SAVEPOINT zcrm_merge", 0, NULL, NULL);
	if (!rc)
		rc = drop_chunk(st);
	if (rc)
		snprintf(err, errlen, "merge: %s", db_error(st->db));
out:
	db_res_free(res);
	free(cast_err);
	return rc;
}

void merge_stage_pin_form(struct merge_stage *st, enum merge_form form)
{
	st->pinned = form;
}

long merge_stage_cells_nulled(const struct merge_stage *st)
{
	return st->cells_nulled;
}

bool merge_apply_ready(struct merge_stage *st)
{
	return !st->in_flight || db_ready(st->db);
}

enum rc merge_apply(struct merge_stage *st, enum merge_rule rule, int64_t tie_before,
		    const char *source, long *applied, char *err, size_t errlen)
{
	enum rc rc = merge_apply_start(st, rule, tie_before, source, err, errlen);

	*applied = 0;
	if (rc)
		return rc;
	return merge_apply_finish(st, applied, err, errlen);
}

enum rc merge_collect_ids(struct merge_stage *st, long *added, char *err, size_t errlen)
{
	struct db_res *res = NULL;
	char *sql = NULL;
	enum rc rc;

	st->read = true;
	rc = db_exec(st->db,
			     "CREATE TEMP TABLE IF NOT EXISTS zcrm_reconcile"
			     " (id bigint PRIMARY KEY, modified_time timestamptz)",
			     0, NULL, NULL);
	*added = 0;
	if (rc)
		goto out;
	char *qid = NULL;
	for (size_t i = 0; i < st->nheaders && !qid; i++)
		if (!strcasecmp(st->headers[i], "id"))
			qid = db_quote_ident(st->db, st->headers[i]);
	sql = xasprintf("INSERT INTO zcrm_reconcile (id, modified_time)"
			" SELECT NULLIF(s.%s, '')::bigint, NULLIF(s.\"Modified_Time\", '')::timestamptz"
			" FROM %s s WHERE NULLIF(s.%s, '') IS NOT NULL"
			" ON CONFLICT (id) DO UPDATE SET modified_time = excluded.modified_time",
			qid ? qid : "id", st->table, qid ? qid : "id");
	free(qid);
	rc = db_exec(st->db, sql, 0, NULL, &res);
	if (!rc)
		*added = db_res_affected(res);
	db_res_free(res);
	free(sql);
	sql = NULL;
	if (!rc && st->nheaders > 2) {
		/* More than id and Modified_Time: a formula refresh asked for
		 * them (formula.h). Their cells, by API name, to zcrm_formula. */
		char *qidlit = NULL;
		for (size_t i = 0; i < st->nheaders && !qidlit; i++)
			if (!strcasecmp(st->headers[i], "id"))
				qidlit = xstrdup(st->headers[i]);
		qid = db_quote_ident(st->db, qidlit ? qidlit : "id");
		sql = xasprintf("INSERT INTO zcrm_formula (id, vals)"
				" SELECT NULLIF(s.%s, '')::bigint, to_jsonb(s) - $1::text - 'Modified_Time'"
				" FROM %s s WHERE NULLIF(s.%s, '') IS NOT NULL"
				" ON CONFLICT (id) DO UPDATE SET vals = excluded.vals",
				qid, st->table, qid);
		free(qid);
		rc = db_exec(st->db,
			     "CREATE TEMP TABLE IF NOT EXISTS zcrm_formula"
			     " (id bigint PRIMARY KEY, vals jsonb NOT NULL)",
			     0, NULL, NULL);
		if (!rc)
			rc = db_exec(st->db, sql, 1, (const char *[]){qidlit ? qidlit : "id"}, NULL);
		free(qidlit);
	}
	if (!rc)
		rc = drop_chunk(st);
out:
	if (rc)
		snprintf(err, errlen, "reconcile ids: %s", db_error(st->db));
	free(sql);
	return rc;
}

enum rc merge_defer(struct merge_stage *st, int64_t tie_before, const char *why, long *deferred,
		    char *err, size_t errlen)
{
	struct db_res *res = NULL;
	char *qtable = db_quote_ident(st->db, st->schema->table);
	char *qid = NULL, *sql = NULL;
	char tb[24];
	enum rc rc;

	*deferred = 0;
	st->read = true;
	for (size_t i = 0; i < st->nheaders && !qid; i++)
		if (!strcasecmp(st->headers[i], "id"))
			qid = db_quote_ident(st->db, st->headers[i]);
	snprintf(tb, sizeof(tb), "%lld", (long long)tie_before);
	/* The rows the bulk rule could apply: not held, or held older (or a
	 * tie the rule re-checks); never over a newer tombstone. */
	sql = xasprintf(
		"INSERT INTO dirty AS d (module, id, server_time, attempts, next_try, last_error)"
		" SELECT DISTINCT ON (n.id) $1, n.id, n.modified_time, 0, now(), $2"
		" FROM (SELECT NULLIF(s.%s, '')::bigint AS id,"
		"  NULLIF(s.\"Modified_Time\", '')::timestamptz AS modified_time FROM %s s) n"
		" LEFT JOIN %s t ON t.id = n.id"
		" WHERE n.id IS NOT NULL AND n.modified_time IS NOT NULL AND (t.id IS NULL"
		"  OR ((t.modified_time IS NULL OR t.modified_time < n.modified_time"
		"    OR (t.modified_time = n.modified_time AND t.synced_at < to_timestamp($3::bigint)))"
		"   AND (t.deleted_at IS NULL OR t.deleted_at < n.modified_time"
		"    OR t.deleted_at < to_timestamp($3::bigint))))"
		" ORDER BY n.id, n.modified_time DESC"
		" ON CONFLICT (module, id) DO UPDATE SET"
		"  server_time = greatest(d.server_time, excluded.server_time),"
		"  next_try = least(d.next_try, now()), last_error = excluded.last_error",
		qid ? qid : "id", st->table, qtable);
	rc = db_exec(st->db, sql, 3, (const char *[]){st->schema->module, why, tb}, &res);
	if (!rc)
		*deferred = db_res_affected(res);
	db_res_free(res);
	if (!rc)
		rc = drop_chunk(st);
	if (rc)
		snprintf(err, errlen, "deferring rows to a fetch: %s", db_error(st->db));
	free(sql);
	free(qid);
	free(qtable);
	return rc;
}

void merge_stage_free(struct merge_stage *st)
{
	if (!st)
		return;
	if (st->copying) {
		long rows;
		if (db_copy_end(st->copy_db, "aborted", &rows) != RC_OK)
			log_debug("staging copy aborted", "");
	}
	if (st->in_flight) {
		/* The caller rolls back next; the statement must be over first. */
		struct db_res *res = NULL;
		if (db_wait(st->db, &res) == RC_OK)
			db_res_free(res);
	}
	/* A chunk the merging side never read holds no lock there: drop it
	 * now. One it read stays locked until that transaction ends. */
	if (st->chunk && !st->read) {
		char *drop = xasprintf("DROP TABLE IF EXISTS %s", st->table);
		if (db_exec(st->copy_db, drop, 0, NULL, NULL) != RC_OK)
			log_debug("staging table left for the sweep", "");
		free(drop);
	}
	for (size_t i = 0; i < st->nheaders; i++)
		free(st->headers[i]);
	free(st->headers);
	free(st->table);
	free(st->source);
	free(st);
}

/* Columns a preview may never set: identity and the freshness clock. */
static bool preview_skips(const char *column)
{
	return !strcmp(column, "id") || !strcmp(column, "modified_time") ||
	       !strcmp(column, "created_time");
}

enum rc merge_preview(struct db *db, const struct module_schema *schema, int64_t id,
		      struct json_object *values, const char *when)
{
	char idtext[24];
	size_t n = 0, cap = (size_t)json_object_object_length(values) + 3;
	const char **params = xcalloc(cap, sizeof(*params));
	char **cells = xcalloc(cap, sizeof(*cells));
	char *qtable = db_quote_ident(db, schema->table), *sql = NULL;
	struct buf sets = {0};
	enum rc rc = RC_OK;

	snprintf(idtext, sizeof(idtext), "%" PRId64, id);
	params[n++] = idtext;
	params[n++] = when;
	params[n++] = schema->module;
	json_object_object_foreach(values, key, v)
	{
		const struct zcolumn *c = schema_column(schema, key);
		if (!c || preview_skips(c->column))
			continue;
		char ref[16];
		snprintf(ref, sizeof(ref), "$%zu", n + 1);
		char *qc = db_quote_ident(db, c->column);
		/* A value that does not cast is a preview's NULL; the fetch that
		 * follows records it in cell_errors. */
		char *cast = schema_safe_cast_expr(c->kind, ref);
		buf_printf(&sets, "%s%s = %s", sets.len ? ", " : "", qc, cast);
		free(qc);
		free(cast);
		cells[n] = schema_json_cell(v, c->kind);
		params[n] = cells[n];
		n++;
	}
	if (!sets.len)
		goto out;
	/* PREVIEW: the row is live and not newer than the notification, and
	 * no newer notification of the id waits to be fetched (fetch_queue,
	 * dirty): a reordered older one cannot overwrite a newer one. */
	sql = xasprintf("UPDATE %s SET %s, synced_at = now(), source = 'notify'"
			" WHERE id = $1::bigint AND deleted_at IS NULL"
			" AND (modified_time IS NULL OR modified_time <= to_timestamp($2::numeric))"
			" AND NOT EXISTS (SELECT 1 FROM fetch_queue q WHERE q.module = $3"
			"  AND q.server_time > to_timestamp($2::numeric) AND $1::bigint = ANY(q.ids))"
			" AND NOT EXISTS (SELECT 1 FROM dirty d WHERE d.module = $3 AND d.id = $1::bigint"
			"  AND d.server_time > to_timestamp($2::numeric))",
			qtable, buf_str(&sets));
	rc = db_exec(db, sql, (int)n, params, NULL);
out:
	for (size_t i = 0; i < cap; i++)
		free(cells[i]);
	free(cells);
	free(params);
	buf_free(&sets);
	free(sql);
	free(qtable);
	return rc;
}

enum rc merge_tombstones(struct db *db, const char *module, const int64_t *ids,
			 const int64_t *deleted_ms, size_t n, const char *source, long *applied)
{
	struct buf a = {0}, t = {0};
	struct db_res *res = NULL;
	char *table = schema_table_name(module);
	char *qtable = db_quote_ident(db, table);
	char *sql = NULL, *name = NULL;
	enum rc rc;

	*applied = 0;
	buf_printf(&a, "{");
	buf_printf(&t, "{");
	for (size_t i = 0; i < n; i++) {
		buf_printf(&a, "%s%" PRId64, i ? "," : "", ids[i]);
		buf_printf(&t, "%s%" PRId64 ".%03d", i ? "," : "", deleted_ms[i] / 1000,
		       (int)(deleted_ms[i] % 1000));
	}
	buf_printf(&a, "}");
	buf_printf(&t, "}");
	sql = xasprintf(
		"INSERT INTO %s AS t (id, deleted_at, synced_at, source)"
		" SELECT DISTINCT ON (id) id, to_timestamp(ms), now(), $3"
		" FROM unnest($1::bigint[], $2::numeric[]) AS d(id, ms) ORDER BY id, ms DESC"
		" ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at,"
		"  synced_at = now(), source = excluded.source"
		" WHERE (t.modified_time IS NULL OR t.modified_time <= excluded.deleted_at)"
		"  AND (t.deleted_at IS NULL OR t.deleted_at < excluded.deleted_at)",
		qtable);
	name = xasprintf("tomb_%s", table);
	rc = db_prepared(db, name, sql, 3, (const char *[]){buf_str(&a), buf_str(&t), source}, &res);
	if (rc)
		goto out;
	*applied = db_res_affected(res);
	/* A deleted parent takes its line items with it. */
	rc = subform_drop_lines(db, module, buf_str(&a));
	if (rc)
		goto out;
	/* Fetching a record deleted after it was marked is pointless. */
	rc = db_prepared(db, "tomb_undirty",
			 "DELETE FROM dirty d USING unnest($2::bigint[], $3::numeric[]) AS x(id, ms)"
			 " WHERE d.module = $1 AND d.id = x.id"
			 " AND (d.server_time IS NULL OR d.server_time <= to_timestamp(x.ms))",
			 3, (const char *[]){module, buf_str(&a), buf_str(&t)}, NULL);
out:
	db_res_free(res);
	free(sql);
	free(name);
	free(table);
	free(qtable);
	buf_free(&a);
	buf_free(&t);
	return rc;
}
