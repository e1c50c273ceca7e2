/* schema.c — module tables from fields metadata (see schema.h). */
#include "schema.h"
#include "log.h"

#include <json-c/json.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		/* Their real type is the JSON type of the result. */
		if (json_type && !strcmp(json_type, "double"))
			return FIELD_NUMERIC;
		if (json_type && !strcmp(json_type, "integer"))
			return FIELD_INT;
		if (json_type && !strcmp(json_type, "boolean"))
			return FIELD_BOOL;
		if (json_type && !strcmp(json_type, "string"))
			return FIELD_TEXT;
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
	char *col = schema_table_name(api_name);
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

enum rc schema_ensure_module(struct db *db, const char *module, const struct zfield *fields,
			     size_t nfields)
{
	char *table = schema_table_name(module);
	char *qtable = db_quote_ident(db, table);
	char *live = xasprintf("%s_live", table);
	char *qlive = db_quote_ident(db, live);
	char *sql = NULL;
	enum rc rc;
	int added = 0;
	size_t ncols = columns_needed(fields, nfields);

	/* Over the limit, every run would fail the same way: say so, once. */
	if (ncols > PG_MAX_COLUMNS) {
		log_error("the module has more fields than a PostgreSQL table can have columns",
			  "module=%s fields=%zu columns=%zu max_columns=%d", log_q(module), nfields,
			  ncols, PG_MAX_COLUMNS);
		rc = RC_TOOBIG;
		goto out;
	}
	rc = db_begin(db);
	if (rc)
		goto out;
	{
		const char *p[1] = {module};
		rc = db_exec(db, "SELECT pg_advisory_xact_lock(hashtext('zcrm-sync:schema'), hashtext($1))",
			     1, p, NULL);
		if (rc)
			goto fail;
	}
	sql = xasprintf("CREATE TABLE IF NOT EXISTS %s ("
			" id bigint PRIMARY KEY,"
			" modified_time timestamptz,"
			" created_time timestamptz,"
			" deleted_at timestamptz,"
			" synced_at timestamptz NOT NULL DEFAULT now(),"
			" source text NOT NULL DEFAULT 'bulk'"
			"  CHECK (source IN ('bulk', 'fetch', 'notify')))",
			qtable);
	rc = db_exec(db, sql, 0, NULL, NULL);
	free(sql);
	sql = NULL;
	if (rc)
		goto fail;

	for (size_t i = 0; i < nfields; i++) {
		const struct zfield *f = &fields[i];
		if (!f->api_name || !name_ok(f->api_name)) {
			log_warn("skipping field with an unusable API name", "module=%s",
				 log_q(module));
			continue;
		}
		enum field_kind kind = schema_field_kind(f->data_type, f->json_type);
		const char *sys = system_column(f->api_name);
		char *col = sys ? xstrdup(sys) : column_for(f->api_name);
		const char *pg_type = sys ? (!strcmp(sys, "id") ? "bigint" : "timestamptz")
					  : schema_kind_pg_type(kind);
		char *existing = NULL;
		const char *p[7] = {module, f->api_name, col, f->data_type ? f->data_type : "",
				    f->json_type, pg_type, f->field_id};

		/* A known field keeps the column it was given first. */
		rc = db_query_value(db,
				    "SELECT column_name FROM fields WHERE module = $1 AND api_name = $2",
				    2, p, &existing);
		if (rc) {
			free(col);
			goto fail;
		}
		if (existing) {
			free(col);
			col = existing;
			p[2] = col;
		} else if (!sys) {
			/* Two API names folding to one column: suffix the newcomer. */
			char *taken = NULL;
			for (int n = 2; n < 100; n++) {
				free(taken);
				taken = NULL;
				const char *pp[2] = {module, col};
				rc = db_query_value(db,
						    "SELECT 1 FROM fields WHERE module = $1 AND column_name = $2",
						    2, pp, &taken);
				if (rc || !taken)
					break;
				char *c2 = xasprintf("%.58s_%d", col, n);
				free(col);
				col = c2;
				p[2] = col;
			}
			free(taken);
			if (rc) {
				free(col);
				goto fail;
			}
		}
		if (!sys) {
			char *qcol = db_quote_ident(db, col);
			sql = xasprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", qtable, qcol,
					pg_type);
			free(qcol);
			rc = db_exec(db, sql, 0, NULL, NULL);
			free(sql);
			sql = NULL;
			if (rc) {
				free(col);
				goto fail;
			}
			if (!existing)
				added++;
		}
		rc = db_exec(db,
			     "INSERT INTO fields (module, api_name, column_name, data_type, json_type,"
			     " pg_type, field_id) VALUES ($1, $2, $3, $4, $5, $6, $7)"
			     " ON CONFLICT (module, api_name) DO UPDATE SET data_type = excluded.data_type,"
			     " json_type = excluded.json_type, field_id = excluded.field_id,"
			     " last_seen = now()",
			     7, p, NULL);
		free(col);
		if (rc)
			goto fail;
	}
	/* id/Modified_Time/Created_Time are always mapped, even if Zoho's list
	 * omitted them, so both paths can rely on them. */
	rc = db_exec(db,
		     "INSERT INTO fields (module, api_name, column_name, data_type, pg_type) VALUES"
		     " ($1, 'id', 'id', 'bigint', 'bigint'),"
		     " ($1, 'Modified_Time', 'modified_time', 'datetime', 'timestamptz'),"
		     " ($1, 'Created_Time', 'created_time', 'datetime', 'timestamptz')"
		     " ON CONFLICT (module, api_name) DO NOTHING",
		     1, (const char *[]){module}, NULL);
	if (rc)
		goto fail;
	sql = xasprintf("CREATE OR REPLACE VIEW %s AS SELECT * FROM %s WHERE deleted_at IS NULL",
			qlive, qtable);
	rc = db_exec(db, sql, 0, NULL, NULL);
	free(sql);
	sql = NULL;
	if (rc)
		goto fail;
	rc = db_exec(db,
		     "INSERT INTO sync_state (module, table_ready) VALUES ($1, true)"
		     " ON CONFLICT (module) DO UPDATE SET table_ready = true, updated_at = now()",
		     1, (const char *[]){module}, NULL);
	if (rc)
		goto fail;
	rc = db_commit(db);
	if (rc)
		goto fail;
	log_info("module table ready", "module=%s table=%s fields=%zu columns_added=%d",
		 log_q(module), log_q(table), nfields, added);
	goto out;
fail:
	/* 54011: columns kept for fields Zoho no longer lists count too. */
	if (!strcmp(db_sqlstate(db), "54011"))
		rc = RC_TOOBIG;
	log_error("cannot create module table", "module=%s fields=%zu err=%s", log_q(module),
		  nfields, log_q(db_error(db)));
	db_rollback(db);
out:
	free(sql);
	free(table);
	free(qtable);
	free(live);
	free(qlive);
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
			 " f.last_seen >= max(f.last_seen) OVER ()"
			 " FROM fields f JOIN sync_state s ON s.module = f.module AND s.table_ready"
			 " WHERE f.module = $1 ORDER BY f.first_seen, f.api_name",
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
	size_t n = json_object_array_length(arr), len = 0, cap = 64;
	char *s = xmalloc(cap);

	s[0] = '\0';
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
		size_t vl = strlen(v);
		if (len + vl + 2 > cap) {
			cap = (len + vl + 2) * 2;
			s = xrealloc(s, cap);
		}
		if (len)
			s[len++] = ';';
		memcpy(s + len, v, vl + 1);
		len += vl;
	}
	return s;
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


char *schema_cast_expr(enum field_kind kind, const char *expr)
{
	switch (kind) {
	case FIELD_TEXT:
		return xasprintf("NULLIF(%s, '')", expr);
	case FIELD_MULTI:
		return xasprintf("string_to_array(NULLIF(%s, ''), ';')", expr);
	case FIELD_JSON:
		return xasprintf("NULLIF(%s, '')::jsonb", expr);
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
		     "WITH mod AS (SELECT lower(module) AS t FROM sync_state WHERE table_ready"
		     "  UNION ALL SELECT lower(module) || '_live' FROM sync_state WHERE table_ready"
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
		     "  AND c.relname NOT IN (SELECT lower(module) FROM sync_state WHERE table_ready"
		     "   UNION ALL SELECT lower(module) || '_live' FROM sync_state WHERE table_ready"
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
