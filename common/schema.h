/* schema.h — module tables built from Zoho's fields metadata.
 *
 * One table per module (`leads` for Leads), one typed column per Zoho field
 * (the API name in lower case), the system columns id, modified_time,
 * created_time, deleted_at, synced_at, source, and a `<table>_live` view
 * without tombstones. Columns are added when Zoho gains a field and never
 * dropped. The mapping data_type → PostgreSQL type lives here only. */
#ifndef ZCRM_SCHEMA_H
#define ZCRM_SCHEMA_H

#include "compiler.h"
#include "db.h"
#include "rc.h"

#include <stdbool.h>
#include <stddef.h>

/* How a value is written as text for the typed cast (CSV and JSON alike). */
enum field_kind {
	FIELD_TEXT,        /* text */
	FIELD_INT,         /* bigint */
	FIELD_NUMERIC,     /* numeric */
	FIELD_BOOL,        /* boolean */
	FIELD_DATE,        /* date */
	FIELD_DATETIME,    /* timestamptz */
	FIELD_MULTI,       /* text[]: CSV "a;b", JSON array of strings */
	FIELD_LOOKUP,      /* bigint: CSV id, JSON {"id": …} */
	FIELD_IDS,         /* bigint[]: multiselectlookup, multiuserlookup - the
			    * ids of the records (users) linked, JSON
			    * [{"<module>": {"id": …}, "id": <link id>}, …]; not
			    * in Bulk Read exports (subform.h) */
	FIELD_JSON,        /* jsonb: anything else */
};

/* A field as Zoho describes it (input). */
struct zfield {
	const char *api_name;
	const char *data_type;
	const char *json_type;  /* may be NULL */
	const char *field_id;   /* may be NULL */
};

/* A column of a module table (output). */
struct zcolumn {
	char *api_name;
	char *column;
	char *data_type;
	enum field_kind kind;
	const char *pg_type;    /* static string */
	bool listed;            /* in the latest fields metadata (a field Zoho
				 * dropped keeps its column, unlisted) */
};

struct module_schema {
	char *module;
	char *table;            /* unquoted table name, lower case */
	size_t ncols;
	struct zcolumn *cols;   /* every Zoho field, system ones included */
};

enum field_kind schema_field_kind(const char *data_type, const char *json_type);
const char *schema_kind_pg_type(enum field_kind kind);
/* Table name of a module: its API name in lower case; caller frees. */
char *schema_table_name(const char *module);
/* Column name of a field: its API name in lower case, suffixed "_zoho" if
 * it is one of our own columns, cut to 63 bytes; caller frees. */
char *schema_column_name(const char *api_name);
/* The kind of a column recorded with this pg_type (as schema_load reads it). */
enum field_kind schema_pg_type_kind(const char *pg_type, const char *data_type);

/* Create or evolve the module table, its _live view, the fields rows and
 * the sync_state row, in one transaction. The caller then applies the
 * notifications that waited for the table (inbox_apply_pending). */
enum rc schema_ensure_module(struct db *db, const char *module, const struct zfield *fields,
			     size_t nfields) ZCRM_MUSTCHECK;
/* Read the column map recorded by schema_ensure_module; RC_NOTFOUND if the
 * module has no table yet. Caller frees with module_schema_free(). */
/* Let role (the legacy application's, [database] read_role) read the module
 * tables and their _live views, and the line-item tables of their subforms
 * (subform.h), and nothing else of the schema: grants USAGE
 * on the schema and SELECT on every module table (sync_state.table_ready)
 * and view that lacks it, and revokes whatever was granted to role on any
 * other relation of the schema (oauth_token, inbox …: secrets). Only
 * changes what is wrong, under an advisory lock (concurrent GRANTs on one
 * object fail). A NULL or empty role, or one that does not exist (logged),
 * does nothing. */
enum rc schema_grant_read(struct db *db, const char *role) ZCRM_MUSTCHECK;

enum rc schema_load(struct db *db, const char *module, struct module_schema **out) ZCRM_MUSTCHECK;
void module_schema_free(struct module_schema *s);
/* The column of an API name (case-sensitive), or NULL. */
const struct zcolumn *schema_column(const struct module_schema *s, const char *api_name);

/* The text form of a Records-API JSON value for a column of this kind, the
 * same text a bulk CSV holds for it (lookup → its id, multi-select → a;b,
 * boolean → true/false, numbers as Zoho wrote them); NULL for JSON null or
 * an empty array. Caller frees. */
struct json_object;
char *schema_json_cell(struct json_object *v, enum field_kind kind);
/* SQL casting the text expression expr (a column or $n) to the kind's
 * type, empty text being NULL. Caller frees. */
char *schema_cast_expr(enum field_kind kind, const char *expr);
/* The same, but a value that does not cast gives NULL instead of an error
 * (slower: for a few values, never for a page). Caller frees. */
char *schema_safe_cast_expr(enum field_kind kind, const char *expr);

#endif
