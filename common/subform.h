/* subform.h — line items: every subform of a module (Invoiced_Items of
 * Invoices, Quoted_Items of Quotes, custom subforms) as a child table.
 *
 * Owns the child tables `<parent table>__<subform in lower case>`
 * (invoices__invoiced_items), their registry (tables subforms and
 * subform_fields, sql/010_line_items.sql), line_sets, and every write to
 * them. A child table has id bigint PRIMARY KEY (the line's Zoho id),
 * parent_id bigint NOT NULL (indexed), one typed column per field of the
 * subform's own fields metadata (schema.h's mapping, never another one)
 * and synced_at.
 *
 * The lines of one parent are written as a set: the lines of the parent
 * that are not in the new set are deleted, the others upserted. A set
 * carries the Zoho time it was read at (a single-record GET: the later of
 * the record's Modified_Time and the time we asked; a listing: when it
 * started) and applies only if that is at least the stored read_at
 * (line_sets) - the fetch rule, applied to the set - and the parent is
 * live and not newer than the read. The check is one upsert of line_sets
 * whose row lock orders concurrent writers. A tombstoned parent loses its
 * lines in the tombstone's transaction (subform_drop_lines). Lines are
 * stale while their parent's modified_time is newer than read_at (a parent
 * written by a bulk export, which never carries subforms): see
 * fetch_after_bulk (fetch.h). */
#ifndef ZCRM_SUBFORM_H
#define ZCRM_SUBFORM_H

#include "compiler.h"
#include "db.h"
#include "rc.h"
#include "schema.h"
#include "zoho.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct subform {
	char *field;                /* the parent's subform field: Invoiced_Items */
	char *module;               /* the subform's module: fields metadata, listing */
	struct module_schema *cols; /* table: the child table; cols: its typed
				     * columns (not id, not Parent_Id) */
};

/* The subforms of one module (n = 0: none). */
struct subform_set {
	char *module;
	char *parent_table;
	size_t n;
	struct subform *sf;
};

struct subform_stats {
	long calls;     /* listing calls made */
	long staged;    /* lines read from Zoho */
	long parents;   /* line sets written */
	long written;   /* lines inserted or changed */
	long removed;   /* lines deleted (not in their parent's new set) */
};

/* ---- pure helpers (unit-tested) ---- */

/* "<parent_table>__<subform in lower case>", cut to 63 bytes; caller frees. */
char *subform_table_name(const char *parent_table, const char *subform);
/* True for the data_type of a subform field. */
bool subform_is_field(const char *data_type);
/* True for the data types only the single-record GET returns (besides
 * subforms): multiselectlookup, multiuserlookup. */
bool subform_by_id_only(const char *data_type);
/* Is c a column Bulk Read cannot fill (multiselectlookup, multiuserlookup:
 * the ids kind; fileupload, imageupload)? */
bool subform_unexported_column(const struct zcolumn *c);
/* Listing calls for lines rows: ceil(lines / 200), at least 1; past one
 * page, 2 more for the changes made while it ran (listcover.h). */
long subform_listing_calls(long lines);
/* The cheaper way to fetch nids parents with their lines: by id (nids
 * single-record GETs, 1 credit each) or by Get Records of the ids
 * (ids_calls) plus the listing of every line of the subforms
 * (listing_calls). True: the listing. A tie goes to by id (fresher, and
 * one transaction per record set). */
bool subform_listing_cheaper(size_t nids, long ids_calls, long listing_calls);

/* ---- schema ---- */

/* For every subform field of module (fields: its metadata), read the
 * subform's own fields metadata and create or evolve the child table and
 * its registry rows, one transaction each. *created counts the subforms. */
enum rc subform_ensure(struct db *db, struct zoho *zoho, const char *module,
		       const struct zoho_field *fields, size_t nfields, int *count) ZCRM_MUSTCHECK;
/* The subforms recorded for module (an empty set if none). */
enum rc subform_load_set(struct db *db, const char *module,
			 struct subform_set **out) ZCRM_MUSTCHECK;
void subform_set_free(struct subform_set *set);

/* ---- writes (inside the caller's transaction) ---- */

/* The lines of every record of records (single-record GET answers) that
 * carries its subform field (null or [] is an empty set), read at asked
 * (epoch seconds, our clock less a margin), written by the rule above. */
enum rc subform_write_records(struct db *db, const struct subform_set *set,
			      struct json_object *records, int64_t asked,
			      struct subform_stats *st) ZCRM_MUSTCHECK;
/* Delete the lines (and line_sets rows) of the ids of module that are
 * tombstoned now. */
enum rc subform_drop_lines(struct db *db, const char *module, const char *ids_array) ZCRM_MUSTCHECK;

/* ---- the listing (first load, reconcile, large batches) ---- */

/* Every line of each subform by the listing (200 a call), each page
 * COPYed into a temporary table, then one transaction writing the sets of
 * the live parents (only those of parents[0..n) when parents is not NULL).
 * A run killed meanwhile has written nothing and is simply redone. No
 * transaction may be open on db. */
enum rc subform_listing_load(struct db *db, struct zoho *zoho, const struct subform_set *set,
			     const int64_t *parents, size_t nparents, struct subform_stats *st,
			     char *err, size_t errlen) ZCRM_MUSTCHECK;

/* Lines stored in the child tables of set (sum over subforms; the
 * planner's estimate past 10,000), and the listing calls that would read
 * them all again. */
enum rc subform_count_lines(struct db *db, const struct subform_set *set, long *lines,
			    long *listing_calls) ZCRM_MUSTCHECK;
/* Live parents whose lines are stale (no line set, or read before the
 * parent's modified_time) in any subform; caller frees *ids. */
enum rc subform_stale_parents(struct db *db, const struct subform_set *set, int64_t **ids,
			      size_t *n) ZCRM_MUSTCHECK;

#endif
