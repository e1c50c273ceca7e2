/* schema.h — module tables built from Zoho's fields metadata.
 *
 * One table per module (`leads` for Leads), one typed column per Zoho field
 * (the API name in lower case), the system columns id, modified_time,
 * created_time, deleted_at, synced_at, source, and a `<table>_live` view
 * without tombstones. Columns are added when Zoho gains a field and never
 * dropped. The mapping data_type → PostgreSQL type lives here only, and so
 * does the schema-change policy (docs/architecture.md, "Schema changes"):
 * fields are tracked by Zoho's field id; a removed field keeps its column
 * (fields.removed_at); a renamed one keeps its column under its new API
 * name; a type change converts the column in place when every old value
 * has an exact image in the new type (schema_type_change), else a new
 * column <column>__<type> takes the values and the old row is marked
 * superseded. Reading Zoho's metadata and back-filling values is
 * schemasync.h's job. */
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
	const char *textarea_type; /* textarea.type (rich_text…), may be NULL */
};

/* A column of a module table (output). */
struct zcolumn {
	char *api_name;
	char *column;
	char *data_type;
	enum field_kind kind;
	const char *pg_type;    /* static string */
	bool listed;            /* in the latest fields metadata (a field Zoho
				 * removed keeps its column, unlisted: not asked
				 * for, not expected, not written) */
	bool rich_text;         /* a rich text textarea: Get Records truncates
				 * it to 500 characters (fetch.c) */
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

/* What schema_ensure_module changed. */
struct schema_report {
	bool created;           /* the table was created now */
	int added, removed, renamed, retyped_inplace, retyped_beside, reappeared;
	char **backfill;        /* API names whose column needs Zoho's values for
				 * the records held: added (to a table that
				 * existed), retyped, listed again */
	size_t nbackfill;
};
void schema_report_free(struct schema_report *r);

/* Create or evolve the module table, its _live view, the fields rows and
 * the sync_state row (fields_checked = now), in one transaction under a
 * short lock_timeout, retried a few times: ALTER TABLE must not queue
 * behind a long merge and stall the webhook's writers behind it. rep may
 * be NULL. The caller then applies the notifications that waited for the
 * table (inbox_apply_pending). */
enum rc schema_ensure_module(struct db *db, const char *module, const struct zfield *fields,
			     size_t nfields, struct schema_report *rep) ZCRM_MUSTCHECK;

/* How a column of type old_pg follows its field to new_pg (PostgreSQL
 * type names as schema_kind_pg_type gives them): INPLACE when every old
 * value has one exact image in the new type (bigint → numeric, anything
 * scalar → text or jsonb, date → timestamptz), converted by ALTER COLUMN
 * … TYPE … USING col::new (to_jsonb(col) for jsonb); else BESIDE. Text →
 * text[] is BESIDE: a text holding ';' has no one reading as a list. */
enum schema_retype { SCHEMA_RETYPE_SAME, SCHEMA_RETYPE_INPLACE, SCHEMA_RETYPE_BESIDE };
enum schema_retype schema_type_change(const char *old_pg, const char *new_pg);
/* Read the column map recorded by schema_ensure_module; RC_NOTFOUND if the
 * module has no table yet. Caller frees with module_schema_free(). */
/* Let role (the legacy application's, [database] read_role) read the module
 * tables and their _live (and, with [database] history, _history and
 * _versions) views, and zcrm.users, and the line-item tables of their
 * subforms (subform.h), and nothing else of the schema: grants
 * USAGE on the schema and SELECT on every module table
 * (sync_state.table_ready), view and users where it lacks it, and revokes
 * whatever was granted to role on any
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
/* The one map from a kind to SQL: casting the text expression expr (a
 * column or $n; a CSV cell, or schema_json_cell's text) to the kind's type,
 * empty text being NULL. Text, multi-select and JSON never fail: JSON text
 * stays JSON, any other text becomes a JSON string. The JSON cast calls a
 * session function: run schema_cast_prepare first in the session (or
 * transaction) that runs the SQL. Caller frees. */
char *schema_cast_expr(enum field_kind kind, const char *expr);
/* The same, but a value that does not cast gives NULL instead of an error
 * (slower: for a few values, never for a page); needs no
 * schema_cast_prepare. Caller frees. */
char *schema_safe_cast_expr(enum field_kind kind, const char *expr);
/* Create the session function schema_cast_expr's JSON cast calls, if a
 * column of s is JSON (CREATE OR REPLACE, each call). */
enum rc schema_cast_prepare(struct db *db, const struct module_schema *s) ZCRM_MUSTCHECK;

#endif
