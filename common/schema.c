/* schema.c — module tables from fields metadata (see schema.h). */
#include "schema.h"
#include "buf.h"
#include "log.h"

#include <json-c/json.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
	const char *data_type;
	enum field_kind kind;
} kind_table[] = {
	{"text", FIELD_TEXT},		{"email", FIELD_TEXT},
	{"phone", FIELD_TEXT},		{"website", FIELD_TEXT},
	{"picklist", FIELD_TEXT},	{"textarea", FIELD_TEXT},
	{"autonumber", FIELD_TEXT},	{"profileimage", FIELD_TEXT},
	{"integer", FIELD_INT},		{"bigint", FIELD_INT},
	{"double", FIELD_NUMERIC},	{"currency", FIELD_NUMERIC},
	{"percent", FIELD_NUMERIC},	{"decimal", FIELD_NUMERIC},
	{"boolean", FIELD_BOOL},	{"date", FIELD_DATE},
	{"datetime", FIELD_DATETIME},	{"multiselectpicklist", FIELD_MULTI},
	{"lookup", FIELD_LOOKUP},	{"ownerlookup", FIELD_LOOKUP},
	{"userlookup", FIELD_LOOKUP},	{"layout", FIELD_LOOKUP},
	{"multiselectlookup", FIELD_IDS}, {"multiuserlookup", FIELD_IDS},
};

/* Our own columns; a Zoho field whose name folds to one gets a suffix. */
static const char *const reserved_columns[] = {"deleted_at", "synced_at", "source"};

enum field_kind schema_field_kind(const char *data_type, const char *json_type)
{
	if (!data_type)
		return FIELD_JSON;
	if (!strcmp(data_type, "formula") || !strcmp(data_type, "rollup_summary")) {
		/* Their real type is the result's: formula.return_type (double,
		 * currency, text, boolean, date, datetime …) when the caller has
		 * it, else the JSON type. */
		static const struct {
			const char *type;
			enum field_kind kind;
		} results[] = {
			{"double", FIELD_NUMERIC}, {"currency", FIELD_NUMERIC},
			{"percent", FIELD_NUMERIC}, {"decimal", FIELD_NUMERIC},
			{"integer", FIELD_INT},	    {"boolean", FIELD_BOOL},
			{"string", FIELD_TEXT},	    {"text", FIELD_TEXT},
			{"date", FIELD_DATE},	    {"datetime", FIELD_DATETIME},
		};
		for (size_t i = 0; json_type && i < ARRAY_LEN(results); i++)
			if (!strcmp(results[i].type, json_type))
				return results[i].kind;
		return FIELD_JSON;
	}
	/* Tag: data_type text but a JSON array of {name,…}; stored as names. */
	if (!strcmp(data_type, "text") && json_type && !strcmp(json_type, "jsonarray"))
		return FIELD_MULTI;
	for (size_t i = 0; i < ARRAY_LEN(kind_table); i++) {
		if (!strcmp(kind_table[i].data_type, data_type))
			return kind_table[i].kind;
	}
	return FIELD_JSON;
}

const char *schema_kind_pg_type(enum field_kind kind)
{
	switch (kind) {
	case FIELD_TEXT:
		return "text";
	case FIELD_INT:
		return "bigint";
	case FIELD_NUMERIC:
		return "numeric";
	case FIELD_BOOL:
		return "boolean";
	case FIELD_DATE:
		return "date";
	case FIELD_DATETIME:
		return "timestamptz";
	case FIELD_MULTI:
		return "text[]";
	case FIELD_LOOKUP:
		return "bigint";
	case FIELD_IDS:
		return "bigint[]";
	case FIELD_JSON:
		return "jsonb";
	}
	return "text";
}

static enum field_kind kind_from_pg_type(const char *pg_type, const char *data_type)
{
	if (!strcmp(pg_type, "bigint"))
		return schema_field_kind(data_type, NULL) == FIELD_LOOKUP ? FIELD_LOOKUP : FIELD_INT;
	if (!strcmp(pg_type, "numeric"))
		return FIELD_NUMERIC;
	if (!strcmp(pg_type, "boolean"))
		return FIELD_BOOL;
	if (!strcmp(pg_type, "date"))
		return FIELD_DATE;
	if (!strcmp(pg_type, "timestamptz"))
		return FIELD_DATETIME;
	if (!strcmp(pg_type, "text[]"))
		return FIELD_MULTI;
	if (!strcmp(pg_type, "bigint[]"))
		return FIELD_IDS;
	if (!strcmp(pg_type, "jsonb"))
		return FIELD_JSON;
	return FIELD_TEXT;
}

char *schema_table_name(const char *module)
{
	char *t = xstrdup(module);
	for (char *p = t; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return t;
}

/* The system columns that are Zoho fields too: fixed types, always there. */
static const char *system_column(const char *api_name)
{
	if (!strcasecmp(api_name, "id"))
		return "id";
	if (!strcmp(api_name, "Modified_Time"))
		return "modified_time";
	if (!strcmp(api_name, "Created_Time"))
		return "created_time";
	return NULL;
}

static char *column_for(const char *api_name)
{
	/* "$se_module" → se_module */
	char *col = schema_table_name(api_name[0] == '$' && api_name[1] ? api_name + 1 : api_name);
	for (size_t i = 0; i < ARRAY_LEN(reserved_columns); i++) {
		if (!strcmp(col, reserved_columns[i])) {
			char *c2 = xasprintf("%s_zoho", col);
			free(col);
			return c2;
		}
	}
	if (strlen(col) > 63)
		col[63] = '\0';
	return col;
}

enum field_kind schema_pg_type_kind(const char *pg_type, const char *data_type)
{
	return kind_from_pg_type(pg_type, data_type);
}

char *schema_column_name(const char *api_name)
{
	return column_for(api_name);
}

static bool name_ok(const char *s)
{
	if (!*s || strlen(s) > 100)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < ' ' || c == 0x7f)
			return false;
	}
	return true;
}

/* PostgreSQL's limit of columns per table (MaxHeapAttributeNumber). */
#define PG_MAX_COLUMNS 1600

/* Columns the module table would have: ours (id, modified_time,
 * created_time and reserved_columns) and one per other usable field. */
static size_t columns_needed(const struct zfield *fields, size_t nfields)
{
	size_t n = 3 + ARRAY_LEN(reserved_columns);

	for (size_t i = 0; i < nfields; i++) {
		if (fields[i].api_name && name_ok(fields[i].api_name) &&
		    !system_column(fields[i].api_name))
			n++;
	}
	return n;
}

/* ---- type changes ---- */

enum schema_retype schema_type_change(const char *old_pg, const char *new_pg)
{
	/* Every value of the old type has one exact image in the new. */
	static const struct {
		const char *from, *to;
	} inplace[] = {
		{"bigint", "numeric"},	    {"bigint", "text"},	 {"numeric", "text"},
		{"boolean", "text"},	    {"date", "text"},	 {"timestamptz", "text"},
		{"date", "timestamptz"},    {"text[]", "jsonb"}, {"bigint", "jsonb"},
		{"numeric", "jsonb"},	    {"boolean", "jsonb"}, {"text", "jsonb"},
	};

	if (!strcmp(old_pg, new_pg))
		return SCHEMA_RETYPE_SAME;
	for (size_t i = 0; i < ARRAY_LEN(inplace); i++)
		if (!strcmp(inplace[i].from, old_pg) && !strcmp(inplace[i].to, new_pg))
			return SCHEMA_RETYPE_INPLACE;
	return SCHEMA_RETYPE_BESIDE;
}

/* Data types Zoho documents whose values we keep as jsonb on purpose
 * (Bulk Read does not export them): no warning for these. */
static bool json_type_known(const char *data_type)
{
	static const char *const known[] = {"fileupload", "imageupload", "multiselectlookup",
					    "subform", "multi_module_lookup", "formula",
					    "rollup_summary", "multiuserlookup", "event_reminder",
					    "consent_lookup", "RRULE", "ALARM", "lookup_multi"};
	if (!data_type)
		return false;
	for (size_t i = 0; i < ARRAY_LEN(known); i++)
		if (!strcmp(known[i], data_type))
			return true;
	return false;
}

void schema_report_free(struct schema_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nbackfill; i++)
		free(r->backfill[i]);
	free(r->backfill);
	memset(r, 0, sizeof(*r));
}

/* A current row of `fields` (superseded_at IS NULL). */
struct field_row {
	char *api_name, *column, *data_type, *json_type, *pg_type, *field_id;
	char *old_name;     /* renamed: its API name before this run */
	bool removed, matched, system;
};

static void field_rows_free(struct field_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].api_name);
		free(rows[i].column);
		free(rows[i].data_type);
		free(rows[i].json_type);
		free(rows[i].pg_type);
		free(rows[i].field_id);
		free(rows[i].old_name);
	}
	free(rows);
}

static enum rc field_rows_load(struct db *db, const char *module, struct field_row **out,
			       size_t *n)
{
	struct db_res *res = NULL;
	enum rc rc = db_exec(db,
			     "SELECT api_name, column_name, data_type, json_type, pg_type, field_id,"
			     " removed_at IS NOT NULL FROM fields"
			     " WHERE module = $1 AND superseded_at IS NULL ORDER BY first_seen, api_name",
			     1, (const char *[]){module}, &res);
	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	size_t rows = (size_t)db_res_rows(res);
	struct field_row *r = xcalloc(rows ? rows : 1, sizeof(*r));
	for (size_t i = 0; i < rows; i++) {
		const char *jt = db_res_get(res, (int)i, 3), *fid = db_res_get(res, (int)i, 5);
		r[i].api_name = xstrdup(db_res_get(res, (int)i, 0));
		r[i].column = xstrdup(db_res_get(res, (int)i, 1));
		r[i].data_type = xstrdup(db_res_get(res, (int)i, 2));
		r[i].json_type = jt ? xstrdup(jt) : NULL;
		r[i].pg_type = xstrdup(db_res_get(res, (int)i, 4));
		r[i].field_id = fid ? xstrdup(fid) : NULL;
		r[i].removed = db_res_get(res, (int)i, 6)[0] == 't';
		r[i].system = system_column(r[i].api_name) != NULL;
	}
	db_res_free(res);
	*out = r;
	*n = rows;
	return RC_OK;
}

/* The row of field f by Zoho's field id (pass 0), else (pass 1: a row
 * recorded without one, before migration 007, or a field deleted and made
 * again under its old name) by API name; rows already taken are skipped. */
static struct field_row *field_row_find(struct field_row *rows, size_t n, const struct zfield *f,
					int pass)
{
	for (size_t i = 0; i < n; i++) {
		if (rows[i].matched)
			continue;
		if (pass == 0 && f->field_id && *f->field_id && rows[i].field_id &&
		    !strcmp(rows[i].field_id, f->field_id))
			return &rows[i];
		if (pass == 1 && !strcmp(rows[i].api_name, f->api_name))
			return &rows[i];
	}
	return NULL;
}

/* A column name no row of the module uses yet: want, else want_2, … */
static enum rc free_column(struct db *db, const char *module, char **col)
{
	char *taken = NULL;
	enum rc rc = RC_OK;

	for (int n = 2; n < 100; n++) {
		free(taken);
		taken = NULL;
		rc = db_query_value(db, "SELECT 1 FROM fields WHERE module = $1 AND column_name = $2",
				    2, (const char *[]){module, *col}, &taken);
		if (rc || !taken)
			break;
		char *c2 = xasprintf("%.58s_%d", *col, n);
		free(*col);
		*col = c2;
	}
	free(taken);
	return rc;
}

static void report_backfill(struct schema_report *rep, const char *api_name)
{
	if (!rep)
		return;
	rep->backfill = xrealloc(rep->backfill, (rep->nbackfill + 1) * sizeof(*rep->backfill));
	rep->backfill[rep->nbackfill++] = xstrdup(api_name);
}

static enum rc exec_ddl(struct db *db, const char *fmt_sql)
{
	return db_exec(db, fmt_sql, 0, NULL, NULL);
}

/* The table's columns, as {name,…} text for `= ANY`. */
static enum rc table_has_column(struct db *db, const char *table, const char *column, bool *has)
{
	char *v = NULL;
	enum rc rc = db_query_value(db,
				    "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass("
				    "quote_ident(current_schema()) || '.' || quote_ident($1))"
				    " AND attname = $2 AND NOT attisdropped AND attnum > 0",
				    2, (const char *[]){table, column}, &v);
	*has = v != NULL;
	free(v);
	return rc;
}

static enum rc add_column(struct db *db, const char *qtable, const char *table, const char *col,
			  const char *pg_type)
{
	bool has = false;
	enum rc rc = table_has_column(db, table, col, &has);
	if (rc || has)
		return rc;
	/* Without a default: a catalog change only, no table rewrite. */
	char *qcol = db_quote_ident(db, col);
	char *sql = xasprintf("ALTER TABLE %s ADD COLUMN %s %s", qtable, qcol, pg_type);
	rc = exec_ddl(db, sql);
	free(sql);
	free(qcol);
	return rc;
}

/* One Zoho field against its row (NULL: a field new to us). */
static enum rc evolve_field(struct db *db, const char *module, const char *table,
			    const char *qtable, const struct zfield *f, struct field_row *row,
			    bool created, bool *view_dropped, struct schema_report *rep)
{
	enum field_kind kind = schema_field_kind(f->data_type, f->json_type);
	const char *sys = system_column(f->api_name);
	const char *pg_type = sys ? (!strcmp(sys, "id") ? "bigint" : "timestamptz")
				  : schema_kind_pg_type(kind);
	const char *dt = f->data_type ? f->data_type : "";
	bool warn_json = kind == FIELD_JSON && !sys && !json_type_known(f->data_type);
	char *col = NULL;
	enum rc rc = RC_OK;

	if (!row) {
		col = sys ? xstrdup(sys) : column_for(f->api_name);
		if (!sys) {
			rc = free_column(db, module, &col);
			if (!rc)
				rc = add_column(db, qtable, table, col, pg_type);
			if (rc)
				goto out;
			if (rep)
				rep->added++;
			if (!created) {
				log_info("field added in Zoho: new column", "field=%s column=%s type=%s",
					 log_q(f->api_name), log_q(col), pg_type);
				report_backfill(rep, f->api_name);
			}
		}
		if (warn_json)
			log_warn("field of a data type we do not know: kept as jsonb",
				 "module=%s field=%s data_type=%s column=%s", log_q(module),
				 log_q(f->api_name), log_q(dt), log_q(col));
		rc = db_exec(db,
			     "INSERT INTO fields (module, api_name, column_name, data_type, json_type,"
			     " pg_type, field_id, textarea_type) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
			     8, (const char *[]){module, f->api_name, col, dt, f->json_type, pg_type,
						 f->field_id, f->textarea_type},
			     NULL);
		goto out;
	}
	if (strcmp(row->api_name, f->api_name)) {
		/* row->api_name is a stand-in (park_renames), old_name the name */
		const char *old = row->old_name ? row->old_name : row->api_name;
		log_info("field renamed", "old=%s new=%s column=%s", log_q(old), log_q(f->api_name),
			 log_q(row->column));
		rc = db_exec(db,
			     "UPDATE fields SET api_name = $3, previous_api_names ="
			     " coalesce(previous_api_names, '{}') || $4::text"
			     " WHERE module = $1 AND api_name = $2 AND superseded_at IS NULL",
			     4, (const char *[]){module, row->api_name, f->api_name, old}, NULL);
		if (rc)
			goto out;
		if (rep)
			rep->renamed++;
		free(row->api_name);
		row->api_name = xstrdup(f->api_name);
	}
	if (row->removed) {
		log_info("field listed by Zoho again", "field=%s column=%s", log_q(f->api_name),
			 log_q(row->column));
		if (rep)
			rep->reappeared++;
		/* Its values missed every change meanwhile. */
		if (!sys)
			report_backfill(rep, f->api_name);
	}
	/* A row whose column went missing (a table made again by hand). */
	if (!sys && !strcmp(row->pg_type, pg_type)) {
		rc = add_column(db, qtable, table, row->column, pg_type);
		if (rc)
			goto out;
	}
	if (!sys && strcmp(row->pg_type, pg_type)) {
		enum schema_retype how = schema_type_change(row->pg_type, pg_type);
		char *qcol = db_quote_ident(db, row->column);
		if (how == SCHEMA_RETYPE_INPLACE) {
			char *expr = NULL, *sql = NULL;
			bool dropped_now = false;
			rc = exec_ddl(db, "SAVEPOINT zcrm_retype");
			/* The _live view depends on the column: recreated at the end. */
			if (!rc && !*view_dropped) {
				char *live = xasprintf("%s_live", table), *ql = db_quote_ident(db, live);
				char *drop = xasprintf("DROP VIEW IF EXISTS %s", ql);
				rc = exec_ddl(db, drop);
				free(drop);
				free(ql);
				free(live);
				dropped_now = !rc;
			}
			if (!rc) {
				expr = !strcmp(pg_type, "jsonb") ? xasprintf("to_jsonb(%s)", qcol)
								 : xasprintf("%s::%s", qcol, pg_type);
				sql = xasprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s", qtable,
						qcol, pg_type, expr);
				rc = exec_ddl(db, sql);
			}
			/* 0A000: a view or rule of the application's own uses the
			 * column; 2BP01: one uses the _live view. Leave them alone:
			 * a new column goes beside. */
			if (rc && (!strcmp(db_sqlstate(db), "0A000") ||
				   !strcmp(db_sqlstate(db), "2BP01"))) {
				log_warn("column used by another view or rule: not converted in place",
					 "field=%s column=%s err=%s", log_q(f->api_name),
					 log_q(row->column), log_q(db_error(db)));
				rc = exec_ddl(db, "ROLLBACK TO SAVEPOINT zcrm_retype");
				how = SCHEMA_RETYPE_BESIDE;
				dropped_now = false;
			}
			if (dropped_now)
				*view_dropped = true;
			free(expr);
			free(sql);
			if (!rc && how == SCHEMA_RETYPE_INPLACE)
				rc = db_exec(db,
					     "UPDATE fields SET pg_type = $3 WHERE module = $1"
					     " AND api_name = $2 AND superseded_at IS NULL",
					     3, (const char *[]){module, f->api_name, pg_type}, NULL);
			if (!rc && how == SCHEMA_RETYPE_INPLACE) {
				log_info("field changed type in Zoho: column converted in place",
					 "field=%s column=%s from=%s to=%s data_type=%s",
					 log_q(f->api_name), log_q(row->column), row->pg_type, pg_type,
					 log_q(dt));
				if (rep)
					rep->retyped_inplace++;
				report_backfill(rep, f->api_name);
			}
		}
		if (!rc && how == SCHEMA_RETYPE_BESIDE) {
			/* <column>__<type>: the old column keeps its values, frozen. */
			char *tname = xstrdup(pg_type);
			for (char *p = tname; *p; p++)
				if (!isalnum((unsigned char)*p))
					*p = '_';
			col = xasprintf("%.40s__%s", row->column, tname);
			free(tname);
			rc = free_column(db, module, &col);
			if (!rc)
				rc = add_column(db, qtable, table, col, pg_type);
			if (!rc)
				rc = db_exec(db,
					     "UPDATE fields SET superseded_at = now() WHERE module = $1"
					     " AND api_name = $2 AND superseded_at IS NULL",
					     2, (const char *[]){module, f->api_name}, NULL);
			if (!rc)
				rc = db_exec(db,
					     "INSERT INTO fields (module, api_name, column_name, data_type,"
					     " json_type, pg_type, field_id, previous_api_names,"
					     " textarea_type)"
					     " SELECT $1, $2, $3, $4, $5, $6, $7, previous_api_names, $9"
					     " FROM fields WHERE module = $1 AND column_name = $8",
					     9, (const char *[]){module, f->api_name, col, dt, f->json_type,
								 pg_type, f->field_id, row->column,
								 f->textarea_type},
					     NULL);
			if (!rc) {
				log_warn("field changed type in Zoho: its values go to a new column;"
					 " the old column keeps the values it had",
					 "module=%s field=%s old_column=%s old_type=%s new_column=%s"
					 " new_type=%s data_type=%s",
					 log_q(module), log_q(f->api_name), log_q(row->column),
					 row->pg_type, log_q(col), pg_type, log_q(dt));
				if (rep)
					rep->retyped_beside++;
				report_backfill(rep, f->api_name);
			}
		}
		free(qcol);
		if (rc)
			goto out;
		if (warn_json)
			log_warn("field of a data type we do not know: kept as jsonb",
				 "module=%s field=%s data_type=%s", log_q(module), log_q(f->api_name),
				 log_q(dt));
	}
	rc = db_exec(db,
		     "UPDATE fields SET data_type = $3, json_type = $4, field_id = coalesce($5, field_id),"
		     " textarea_type = $6, removed_at = NULL, last_seen = now()"
		     " WHERE module = $1 AND api_name = $2 AND superseded_at IS NULL",
		     6, (const char *[]){module, f->api_name, dt, f->json_type, f->field_id,
					 f->textarea_type},
		     NULL);
out:
	free(col);
	return rc;
}

/* Give a row a stand-in API name no field has ('~' and its column: API
 * names have no '~'), keeping the real one in old_name. */
static enum rc park(struct db *db, const char *module, struct field_row *r)
{
	char *tmp = xasprintf("~%s", r->column);
	enum rc rc = db_exec(db,
			     "UPDATE fields SET api_name = $3 WHERE module = $1 AND api_name = $2"
			     " AND superseded_at IS NULL",
			     3, (const char *[]){module, r->api_name, tmp}, NULL);
	if (rc) {
		free(tmp);
		return rc;
	}
	if (!r->old_name)
		r->old_name = r->api_name;
	else
		free(r->api_name);
	r->api_name = tmp;
	return RC_OK;
}

/* Before any rename: the rows of renamed fields, and the rows no field
 * matched whose name a field now has (a field taking the name of one
 * removed), are parked, so that two fields swapping names, or a rename
 * onto a removed field's name, never meet the unique API name. A parked
 * unmatched row keeps its stand-in name with the removal mark. */
static enum rc park_renames(struct db *db, const char *module, const struct zfield *fields,
			    size_t nfields, struct field_row **match, struct field_row *rows,
			    size_t nrows)
{
	enum rc rc = RC_OK;

	for (size_t i = 0; i < nfields && !rc; i++)
		if (match[i] && strcmp(match[i]->api_name, fields[i].api_name))
			rc = park(db, module, match[i]);
	for (size_t r = 0; r < nrows && !rc; r++) {
		if (rows[r].matched)
			continue;
		for (size_t i = 0; i < nfields && !rc; i++)
			if (fields[i].api_name && !strcmp(rows[r].api_name, fields[i].api_name))
				rc = park(db, module, &rows[r]);
	}
	return rc;
}

/* One attempt of schema_ensure_module, in one transaction. */
static enum rc ensure_once(struct db *db, const char *module, const struct zfield *fields,
			   size_t nfields, struct schema_report *rep)
{
	char *table = schema_table_name(module);
	char *qtable = db_quote_ident(db, table);
	char *live = xasprintf("%s_live", table);
	char *qlive = db_quote_ident(db, live);
	char *sql = NULL, *exists = NULL;
	struct field_row *rows = NULL, **match = NULL;
	size_t nrows = 0;
	bool created, view_dropped = false;
	enum rc rc;

	rc = db_begin(db);
	if (rc)
		goto out;
	/* A short wait for the table's lock, retried by the caller: ALTER
	 * TABLE queued behind a long merge would stall every writer behind it. */
	rc = db_exec(db, "SET LOCAL lock_timeout = '2s'", 0, NULL, NULL);
	if (!rc)
		rc = db_exec(db,
			     "SELECT pg_advisory_xact_lock(hashtext('zcrm-sync:schema'), hashtext($1))",
			     1, (const char *[]){module}, NULL);
	if (!rc)
		rc = db_query_value(db,
				    "SELECT 1 WHERE to_regclass(quote_ident(current_schema()) || '.'"
				    " || quote_ident($1)) IS NOT NULL",
				    1, (const char *[]){table}, &exists);
	if (rc)
		goto fail;
	created = exists == NULL;
	if (rep)
		rep->created = created;
	if (created) {
		sql = xasprintf("CREATE TABLE %s ("
				" id bigint PRIMARY KEY,"
				" modified_time timestamptz,"
				" created_time timestamptz,"
				" deleted_at timestamptz,"
				" synced_at timestamptz NOT NULL DEFAULT now(),"
				" source text NOT NULL DEFAULT 'bulk'"
				"  CHECK (source IN ('bulk', 'fetch', 'notify')))",
				qtable);
		rc = exec_ddl(db, sql);
		free(sql);
		sql = NULL;
		if (rc)
			goto fail;
	}
	rc = field_rows_load(db, module, &rows, &nrows);
	if (rc)
		goto fail;
	/* Each field to its row: by field id first, then by name. */
	match = xcalloc(nfields ? nfields : 1, sizeof(*match));
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < nfields; i++) {
			const struct zfield *f = &fields[i];
			if (match[i] || !f->api_name || !name_ok(f->api_name))
				continue;
			match[i] = field_row_find(rows, nrows, f, pass);
			if (match[i])
				match[i]->matched = true;
		}
	}
	rc = park_renames(db, module, fields, nfields, match, rows, nrows);
	if (rc)
		goto fail;
	for (size_t i = 0; i < nfields; i++) {
		const struct zfield *f = &fields[i];
		if (!f->api_name || !name_ok(f->api_name)) {
			log_warn("skipping field with an unusable API name", "module=%s",
				 log_q(module));
			continue;
		}
		rc = evolve_field(db, module, table, qtable, f, match[i], created, &view_dropped, rep);
		if (rc)
			goto fail;
	}
	/* Fields Zoho no longer lists: the column and its values stay. */
	for (size_t i = 0; i < nrows; i++) {
		if (rows[i].matched || rows[i].removed || rows[i].system)
			continue;
		log_info("field removed in Zoho: column kept, no longer expected in exports",
			 "field=%s column=%s",
			 log_q(rows[i].old_name ? rows[i].old_name : rows[i].api_name),
			 log_q(rows[i].column));
		rc = db_exec(db,
			     "UPDATE fields SET removed_at = now() WHERE module = $1 AND api_name = $2"
			     " AND superseded_at IS NULL",
			     2, (const char *[]){module, rows[i].api_name}, NULL);
		if (rc)
			goto fail;
		if (rep)
			rep->removed++;
	}
	/* id/Modified_Time/Created_Time are always mapped, even if Zoho's list
	 * omitted them, so both paths can rely on them. */
	rc = db_exec(db,
		     "INSERT INTO fields (module, api_name, column_name, data_type, pg_type) SELECT"
		     " $1, v.a, v.c, v.d, v.p FROM (VALUES ('id', 'id', 'bigint', 'bigint'),"
		     " ('Modified_Time', 'modified_time', 'datetime', 'timestamptz'),"
		     " ('Created_Time', 'created_time', 'datetime', 'timestamptz')) v(a, c, d, p)"
		     " WHERE NOT EXISTS (SELECT 1 FROM fields f WHERE f.module = $1 AND f.api_name = v.a)",
		     1, (const char *[]){module}, NULL);
	if (rc)
		goto fail;
	sql = xasprintf("CREATE OR REPLACE VIEW %s AS SELECT * FROM %s WHERE deleted_at IS NULL",
			qlive, qtable);
	rc = exec_ddl(db, sql);
	free(sql);
	sql = NULL;
	if (rc)
		goto fail;
	for (size_t i = 0; i < rep->nbackfill && !rc; i++)
		rc = db_exec(db,
			     "UPDATE fields SET backfill_due = now() WHERE module = $1 AND api_name = $2"
			     " AND superseded_at IS NULL",
			     2, (const char *[]){module, rep->backfill[i]}, NULL);
	if (rc)
		goto fail;
	rc = db_exec(db,
		     "INSERT INTO sync_state (module, table_ready, fields_checked) VALUES ($1, true, now())"
		     " ON CONFLICT (module) DO UPDATE SET table_ready = true, fields_checked = now(),"
		     " updated_at = now()",
		     1, (const char *[]){module}, NULL);
	if (rc)
		goto fail;
	rc = db_commit(db);
	if (rc)
		goto fail;
	goto out;
fail:
	/* 54011: columns kept for fields Zoho no longer lists count too. */
	if (!strcmp(db_sqlstate(db), "54011"))
		rc = RC_TOOBIG;
	else if (!strcmp(db_sqlstate(db), "55P03"))
		rc = RC_LOCKED;
	db_rollback(db);
out:
	field_rows_free(rows, nrows);
	free(match);
	free(exists);
	free(sql);
	free(table);
	free(qtable);
	free(live);
	free(qlive);
	return rc;
}

static enum rc ensure_module(struct db *db, const char *module, const struct zfield *fields,
			     size_t nfields, struct schema_report *rep)
{
	size_t ncols = columns_needed(fields, nfields);
	struct schema_report local;
	enum rc rc;

	if (!rep)
		rep = &local;
	memset(rep, 0, sizeof(*rep));
	/* Over the limit, every run would fail the same way: say so, once. */
	if (ncols > PG_MAX_COLUMNS) {
		log_error("the module has more fields than a PostgreSQL table can have columns",
			  "module=%s fields=%zu columns=%zu max_columns=%d", log_q(module), nfields,
			  ncols, PG_MAX_COLUMNS);
		return RC_TOOBIG;
	}
	for (int attempt = 1;; attempt++) {
		schema_report_free(rep);
		rc = ensure_once(db, module, fields, nfields, rep);
		if (rc != RC_LOCKED || attempt >= 5)
			break;
		/* Writers held the table past lock_timeout: they go first. */
		log_info("module table busy; trying the schema change again", "attempt=%d",
			 attempt);
		struct timespec ts = {0, 500 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (rc) {
		/* RC_LOCKED means "another copy of the job" to the programs. */
		if (rc == RC_LOCKED)
			rc = RC_DB;
		log_error("cannot create or evolve the module table", "module=%s fields=%zu err=%s",
			  log_q(module), nfields, log_q(db_error(db)));
		if (rep == &local)
			schema_report_free(rep);
		return rc;
	}
	if (rep->added || rep->removed || rep->renamed || rep->retyped_inplace ||
	    rep->retyped_beside || rep->reappeared || rep->created)
		log_info("module table ready", "module=%s fields=%zu created=%d added=%d removed=%d"
			 " renamed=%d retyped_in_place=%d retyped_beside=%d",
			 log_q(module), nfields, (int)rep->created, rep->added, rep->removed,
			 rep->renamed, rep->retyped_inplace, rep->retyped_beside);
	if (rep == &local)
		schema_report_free(rep);
	return RC_OK;
}

/* Zoho names the module of a record's What_Id (Tasks, Calls, Events) in
 * a key "$se_module" beside it, in Get Records and (as a column) in Bulk
 * Read: kept as a text column se_module, a field of its own. */
static bool has_field(const struct zfield *fields, size_t n, const char *api_name)
{
	for (size_t i = 0; i < n; i++) {
		if (fields[i].api_name && !strcmp(fields[i].api_name, api_name))
			return true;
	}
	return false;
}

enum rc schema_ensure_module(struct db *db, const char *module, const struct zfield *fields,
			     size_t nfields, struct schema_report *rep)
{
	if (!has_field(fields, nfields, "What_Id") || has_field(fields, nfields, "$se_module"))
		return ensure_module(db, module, fields, nfields, rep);
	struct zfield *ext = xcalloc(nfields + 1, sizeof(*ext));
	memcpy(ext, fields, nfields * sizeof(*ext));
	ext[nfields] = (struct zfield){.api_name = "$se_module", .data_type = "text",
				       .json_type = "string"};
	enum rc rc = ensure_module(db, module, ext, nfields + 1, rep);
	free(ext);
	return rc;
}

enum rc schema_load(struct db *db, const char *module, struct module_schema **out)
{
	struct db_res *res = NULL;
	struct module_schema *s = NULL;
	const char *p[1] = {module};
	enum rc rc;

	*out = NULL;
	rc = db_prepared(db, "schema_load",
			 "SELECT f.api_name, f.column_name, f.data_type, f.pg_type,"
			 " f.removed_at IS NULL,"
			 " coalesce(f.textarea_type = 'rich_text', false)"
			 " FROM fields f JOIN sync_state s ON s.module = f.module AND s.table_ready"
			 " WHERE f.module = $1 AND f.superseded_at IS NULL"
			 " ORDER BY f.first_seen, f.api_name",
			 1, p, &res);
	if (rc)
		return rc;
	int rows = db_res_rows(res);
	if (rows == 0) {
		db_res_free(res);
		return RC_NOTFOUND;
	}
	s = xcalloc(1, sizeof(*s));
	s->module = xstrdup(module);
	s->table = schema_table_name(module);
	s->cols = xcalloc((size_t)rows, sizeof(*s->cols));
	for (int i = 0; i < rows; i++) {
		struct zcolumn *c = &s->cols[s->ncols++];
		c->api_name = xstrdup(db_res_get(res, i, 0));
		c->column = xstrdup(db_res_get(res, i, 1));
		c->data_type = xstrdup(db_res_get(res, i, 2));
		c->kind = kind_from_pg_type(db_res_get(res, i, 3), c->data_type);
		c->pg_type = schema_kind_pg_type(c->kind);
		c->listed = db_res_get(res, i, 4)[0] == 't';
		c->rich_text = db_res_get(res, i, 5)[0] == 't';
	}
	db_res_free(res);
	*out = s;
	return RC_OK;
}

void module_schema_free(struct module_schema *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ncols; i++) {
		free(s->cols[i].api_name);
		free(s->cols[i].column);
		free(s->cols[i].data_type);
	}
	free(s->cols);
	free(s->module);
	free(s->table);
	free(s);
}

const struct zcolumn *schema_column(const struct module_schema *s, const char *api_name)
{
	for (size_t i = 0; i < s->ncols; i++) {
		if (!strcmp(s->cols[i].api_name, api_name))
			return &s->cols[i];
	}
	return NULL;
}

static char *join_strings(struct json_object *arr, bool names)
{
	size_t n = json_object_array_length(arr);
	struct buf b = {0};

	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i), *nm;
		const char *v = NULL;
		if (names && json_object_is_type(e, json_type_object) &&
		    json_object_object_get_ex(e, "name", &nm))
			v = json_object_get_string(nm);
		else if (json_object_is_type(e, json_type_string))
			v = json_object_get_string(e);
		else if (e)
			v = json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN);
		if (!v)
			continue;
		if (buf_len(&b))
			buf_addc(&b, ';');
		buf_adds(&b, v);
	}
	return buf_steal(&b);
}

/* The ids a multiselectlookup/multiuserlookup value links to, as a
 * bigint[] literal {1,2}: of each item, the id of its first member that is
 * an object with an id (the linked record or user; the item's own "id" is
 * the link's), else a bare id; NULL if none. */
static char *linked_ids(struct json_object *arr)
{
	size_t n = json_object_array_length(arr), k = 0;
	int64_t *ids = xcalloc(n ? n : 1, sizeof(*ids));
	char *out = NULL;

	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i), *id = NULL;
		const char *s = NULL;
		if (json_object_is_type(e, json_type_object)) {
			json_object_object_foreach(e, key, val)
			{
				(void)key;
				if (!id && json_object_is_type(val, json_type_object) &&
				    json_object_object_get_ex(val, "id", &id) && id)
					break;
				id = NULL;
			}
			if (id)
				s = json_object_get_string(id);
		} else if (e) {
			s = json_object_get_string(e);
		}
		char *end;
		long long v = s ? strtoll(s, &end, 10) : 0;
		if (s && *s && !*end && v > 0)
			ids[k++] = v;
	}
	if (k)
		out = db_int64_array(ids, k);
	free(ids);
	return out;
}

char *schema_json_cell(struct json_object *v, enum field_kind kind)
{
	struct json_object *id;

	if (!v || json_object_is_type(v, json_type_null))
		return NULL;
	switch (kind) {
	case FIELD_MULTI:
		if (json_object_is_type(v, json_type_array)) {
			if (json_object_array_length(v) == 0)
				return NULL; /* CSV writes an empty cell */
			return join_strings(v, true);
		}
		break;
	case FIELD_LOOKUP:
		if (json_object_is_type(v, json_type_object)) {
			if (json_object_object_get_ex(v, "id", &id) && id &&
			    !json_object_is_type(id, json_type_null))
				return xstrdup(json_object_get_string(id));
			return NULL;
		}
		break;
	case FIELD_IDS:
		if (json_object_is_type(v, json_type_array))
			return linked_ids(v);
		break;
	case FIELD_BOOL:
		if (json_object_is_type(v, json_type_boolean))
			return xstrdup(json_object_get_boolean(v) ? "true" : "false");
		break;
	case FIELD_JSON:
		return xstrdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	default:
		break;
	}
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		return *s ? xstrdup(s) : NULL;
	}
	/* Numbers keep the text Zoho sent (json-c remembers it). */
	return xstrdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
}


/* The cast of JSON text: a value that parses as JSON stays JSON, anything
 * else becomes a JSON string (a Bulk Read cell of a field we keep as jsonb
 * is plain text; schema_json_cell's JSON always parses). */
#define JSON_CAST_FN "pg_temp.zcrm_to_jsonb_"

enum rc schema_cast_prepare(struct db *db, const struct module_schema *s)
{
	for (size_t i = 0; i < s->ncols; i++) {
		if (s->cols[i].kind != FIELD_JSON)
			continue;
		return db_exec(db,
			       "CREATE OR REPLACE FUNCTION " JSON_CAST_FN "(v text) RETURNS jsonb"
			       " LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN v::jsonb;"
			       " EXCEPTION WHEN others THEN RETURN to_jsonb(v); END $$",
			       0, NULL, NULL);
	}
	return RC_OK;
}

char *schema_cast_expr(enum field_kind kind, const char *expr)
{
	switch (kind) {
	case FIELD_TEXT:
		return xasprintf("NULLIF(%s, '')", expr);
	case FIELD_MULTI:
		return xasprintf("string_to_array(NULLIF(%s, ''), ';')", expr);
	case FIELD_JSON:
		return xasprintf(JSON_CAST_FN "(NULLIF(%s, ''))", expr);
	default:
		return xasprintf("NULLIF(%s, '')::%s", expr, schema_kind_pg_type(kind));
	}
}

char *schema_safe_cast_expr(enum field_kind kind, const char *expr)
{
	switch (kind) {
	case FIELD_TEXT:
	case FIELD_MULTI:
		return schema_cast_expr(kind, expr);
	case FIELD_JSON:
		/* The same value as JSON_CAST_FN's, without the session
		 * function (the webhook's preview, inbox.c, has none). */
		return xasprintf("coalesce(try_cast(NULLIF(%s, ''), NULL::jsonb),"
				 " to_jsonb(NULLIF(%s, '')))",
				 expr, expr);
	default:
		/* try_cast: sql/005_cells.sql */
		return xasprintf("try_cast(NULLIF(%s, ''), NULL::%s)", expr, schema_kind_pg_type(kind));
	}
}

/* GRANT SELECT on, or REVOKE ALL from, one relation of the schema. */
static enum rc grant_one(struct db *db, bool grant, const char *rel, const char *qrole)
{
	char *qrel = db_quote_ident(db, rel);
	char *sql = grant ? xasprintf("GRANT SELECT ON TABLE %s TO %s", qrel, qrole)
			  : xasprintf("REVOKE ALL ON TABLE %s FROM %s", qrel, qrole);
	enum rc rc = db_exec(db, sql, 0, NULL, NULL);

	free(sql);
	free(qrel);
	return rc;
}

enum rc schema_grant_read(struct db *db, const char *role)
{
	struct db_res *res = NULL;
	char *exists = NULL, *qrole = NULL, *qschema = NULL, *sql = NULL;
	const char *schema = db_schema(db);
	enum rc rc = RC_OK;
	int granted = 0, revoked = 0;

	if (!role || !*role)
		return RC_OK;
	rc = db_query_value(db, "SELECT 1 FROM pg_roles WHERE rolname = $1", 1,
			    (const char *[]){role}, &exists);
	if (rc)
		goto out;
	if (!exists) {
		log_warn("[database] read_role does not exist: nothing granted to it",
			 "role=%s hint=%s", log_q(role),
			 log_q("CREATE ROLE it (docs/operations.md step 3), or empty the key"));
		goto out;
	}
	qrole = db_quote_ident(db, role);
	qschema = db_quote_ident(db, schema);
	rc = db_begin(db);
	if (rc)
		goto out;
	rc = db_exec(db, "SELECT pg_advisory_xact_lock(hashtext('zcrm-sync:grants'))", 0, NULL,
		     NULL);
	if (rc)
		goto fail;
	/* One row per table or view: is it a module's (table or _live view),
	 * may role read it (directly or through PUBLIC or a group), and does
	 * its ACL name role itself (what REVOKE can take back). */
	rc = db_exec(db,
		     "WITH mod AS (SELECT lower(module) || x AS t FROM sync_state,"
		     "  unnest(ARRAY['', '_live', '_history', '_versions']) x WHERE table_ready"
		     "  UNION ALL SELECT 'users'"
		     "  UNION ALL SELECT table_name FROM subforms)" /* line items: subform.h */
		     " SELECT c.relname, c.relname IN (SELECT t FROM mod),"
		     "  has_table_privilege(r.oid, c.oid, 'SELECT'),"
		     "  EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = r.oid)"
		     " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,"
		     "  pg_roles r"
		     " WHERE n.nspname = $1 AND r.rolname = $2"
		     "  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
		     " ORDER BY c.relname",
		     2, (const char *[]){schema, role}, &res);
	if (rc)
		goto fail;
	for (int i = 0; i < db_res_rows(res); i++) {
		const char *rel = db_res_get(res, i, 0);
		bool module = !strcmp(db_res_get(res, i, 1), "t");
		bool can_read = !strcmp(db_res_get(res, i, 2), "t");
		bool named = !strcmp(db_res_get(res, i, 3), "t");
		if (module && !can_read) {
			rc = grant_one(db, true, rel, qrole);
			granted++;
		} else if (!module && named) {
			rc = grant_one(db, false, rel, qrole);
			revoked++;
		}
		if (rc)
			goto fail;
	}
	db_res_free(res);
	res = NULL;
	free(exists);
	exists = NULL;
	rc = db_query_value(db, "SELECT 1 WHERE NOT has_schema_privilege($1, $2, 'USAGE')", 2,
			    (const char *[]){role, schema}, &exists);
	if (rc)
		goto fail;
	if (exists) {
		sql = xasprintf("GRANT USAGE ON SCHEMA %s TO %s", qschema, qrole);
		rc = db_exec(db, sql, 0, NULL, NULL);
		if (rc)
			goto fail;
	}
	/* Still readable after the revokes: through PUBLIC or a group role,
	 * which are not ours to change. */
	rc = db_exec(db,
		     "SELECT string_agg(c.relname, ',' ORDER BY c.relname)"
		     " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
		     " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
		     "  AND has_table_privilege($2, c.oid, 'SELECT')"
		     "  AND c.relname NOT IN (SELECT lower(module) || x FROM sync_state,"
		     "   unnest(ARRAY['', '_live', '_history', '_versions']) x WHERE table_ready"
		     "   UNION ALL SELECT 'users'"
		     "   UNION ALL SELECT table_name FROM subforms)",
		     2, (const char *[]){schema, role}, &res);
	if (rc)
		goto fail;
	rc = db_commit(db);
	if (rc)
		goto fail;
	if (!db_res_isnull(res, 0, 0))
		log_error("[database] read_role can still read system tables (granted to PUBLIC or"
			  " to a role it belongs to)",
			  "role=%s tables=%s hint=%s", log_q(role), log_q(db_res_get(res, 0, 0)),
			  log_q("REVOKE those grants: the tables hold the access token and"
				" notifications"));
	if (granted || revoked)
		log_info("read_role privileges set", "role=%s granted=%d revoked=%d",
			 log_q(role), granted, revoked);
	goto out;
fail:
	log_error("cannot set the privileges of [database] read_role", "role=%s err=%s",
		  log_q(role), log_q(db_error(db)));
	db_rollback(db);
out:
	db_res_free(res);
	free(exists);
	free(qrole);
	free(qschema);
	free(sql);
	return rc;
}
