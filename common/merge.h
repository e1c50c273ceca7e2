/* merge.h — the freshness rule's SQL: every merge of records, every
 * tombstone, and the preview of a notification's affected_values. (The one
 * other writer of module rows: formula.c's refresh of formula and rollup
 * columns only, which never moves modified_time.)
 *
 * Both sources of records (bulk CSV pages and records fetched by id) are
 * written as CSV text into a temporary all-text staging table whose columns
 * are named by Zoho API names, then merged into the typed module table by
 * ONE statement: the text is cast by each field's kind (schema.h), rows
 * that are not newer are dropped by a join BEFORE `ON CONFLICT` (so an
 * unchanged re-load writes no WAL), and the same guard sits in the
 * `ON CONFLICT … WHERE` for concurrent writers.
 *
 *   bulk rule:  applies if modified_time >  stored modified_time, or on a
 *               tie when the stored copy was read before the export job
 *               was created (tie_before): the export read the row later,
 *               so its copy is at least as new — without this, two edits
 *               in one second whose notification was lost never converge;
 *               a tie re-applies only a row whose values differ, so an
 *               unchanged re-export writes nothing
 *   fetch rule: applies if modified_time >= stored modified_time
 *   both:       never over a tombstone with deleted_at >= modified_time;
 *               a newer row clears the tombstone (restore).
 *
 * The caller owns the transaction: BEGIN, stage, apply, checkpoint, COMMIT;
 * the staging table is dropped at commit. */
#ifndef ZCRM_MERGE_H
#define ZCRM_MERGE_H

#include "compiler.h"
#include "db.h"
#include "rc.h"
#include "schema.h"

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

/* backfill: the values of columns Zoho just added or retyped, for rows
 * that hold exactly the exported Modified_Time (a newer row gets them from
 * its own fetch); sets only the staged non-system columns, never
 * modified_time, synced_at or source. It also records every id it was
 * given, with its Modified_Time, in the session's temporary table
 * zcrm_backfill_seen, which the caller creates (schemasync.c). */
enum merge_rule { MERGE_BULK, MERGE_FETCH, MERGE_BACKFILL };

struct merge_stage;

/* The merge statement's forms, tried in this order: MERGE (plain inserts,
 * PostgreSQL 15+, bulk rule), then INSERT … ON CONFLICT, then its dedup
 * variant. A later form runs only when the earlier one met a repeated id
 * or a row inserted meanwhile by another writer (see merge_apply_finish). */
enum merge_form { MERGE_FORM_AUTO, MERGE_FORM_MERGE, MERGE_FORM_UPSERT, MERGE_FORM_DEDUP };

/* Create the staging table with one text column per header (API names, in
 * CSV order) and start COPY (FORMAT csv, no header: the caller consumed it).
 * Headers must include id (any case) and Modified_Time. */
enum rc merge_stage_begin(struct db *db, const struct module_schema *schema,
			  const char *const *headers, size_t nheaders, struct merge_stage **out,
			  char *err, size_t errlen) ZCRM_MUSTCHECK;
/* Raw CSV bytes for COPY. */
enum rc merge_stage_put(struct merge_stage *st, const void *buf, size_t len) ZCRM_MUSTCHECK;
/* End COPY (errmsg non-NULL aborts it); rows staged in *rows. */
enum rc merge_stage_end(struct merge_stage *st, const char *errmsg, long *rows) ZCRM_MUSTCHECK;
/* Merge the staged rows; applied counts rows inserted or updated. Sets a
 * savepoint in the caller's transaction: a page holding an id twice is
 * merged again keeping the newest row of each. */
enum rc merge_apply(struct merge_stage *st, enum merge_rule rule, int64_t tie_before,
		    const char *source, long *applied, char *err, size_t errlen) ZCRM_MUSTCHECK;
/* merge_apply in two halves: start returns once the statement is sent, so
 * the caller can stage the next chunk meanwhile; finish waits for it (and
 * runs a fallback form if needed). Nothing else may use the merging
 * connection in between; merge_stage_free waits for a merge in flight. */
enum rc merge_apply_start(struct merge_stage *st, enum merge_rule rule, int64_t tie_before,
			  const char *source, char *err, size_t errlen) ZCRM_MUSTCHECK;
enum rc merge_apply_finish(struct merge_stage *st, long *applied, char *err,
			   size_t errlen) ZCRM_MUSTCHECK;
/* A value that does not cast to its column's type (SQLSTATE class 22:
 * "lots" in a bigint column) costs that cell, not the page: the merge is
 * rolled back to its savepoint, the staged cells that do not cast are
 * recorded in cell_errors (module, id, field, value, error), logged, and
 * set to NULL, and the same statement runs again. A row whose id or
 * Modified_Time does not cast is skipped, as one without them. The
 * statement of a merge without a bad cell is unchanged. */
long merge_stage_cells_nulled(const struct merge_stage *st);
/* The form merge_apply starts with, instead of its choice (the fallbacks
 * above still apply): tests/unit/test_merge_rule.c pins each form to the
 * same table of cases. */
void merge_stage_pin_form(struct merge_stage *st, enum merge_form form);
/* True once merge_apply_finish would not wait for the server. */
bool merge_apply_ready(struct merge_stage *st);
/* Reconcile's use of the staged rows instead of a merge: (id,
 * Modified_Time) of each into the session's temporary table zcrm_reconcile
 * (created if missing); when the page has other columns (a formula
 * refresh, formula.h), (id, the other cells as a jsonb object by API name)
 * into zcrm_formula (created if missing). */
enum rc merge_collect_ids(struct merge_stage *st, long *added, char *err,
			  size_t errlen) ZCRM_MUSTCHECK;

/* Instead of a merge, for a bulk page that lacks a known column: the ids
 * of the staged rows the bulk rule could apply (tie_before as
 * merge_apply) go to dirty (server_time = their Modified_Time, last_error
 * why), to be fetched by id with every field. Nothing is merged, so no row
 * takes a Modified_Time whose values it does not hold. */
enum rc merge_defer(struct merge_stage *st, int64_t tie_before, const char *why, long *deferred,
		    char *err, size_t errlen) ZCRM_MUSTCHECK;

/* The lookup behind the prefilter (prefilter.h): given $1, ids
 * (bigint[]), and $2, their Modified_Time cells as staged (text[]), it
 * returns the 1-based positions (column i) of the rows the rule refuses
 * on the key alone against the stored rows: rows no merge_apply with this
 * rule and tie_before would write, whatever their other values. A row
 * whose id is not stored, or whose stored row cannot decide it without
 * the values (a tie the bulk rule compares), is not returned. The stored
 * rows only move forward (a later writer applies only newer rows), so a
 * row refused by an earlier snapshot stays refused. */
char *merge_refused_sql(struct db *db, const struct module_schema *schema, enum merge_rule rule,
			int64_t tie_before);

/* Chunks: a page staged piece by piece on a second connection (stager,
 * autocommit) into UNLOGGED tables <schema>_stage.c<pid>_<seq>, each merged
 * by db in the caller's transaction while the stager fills the next - two
 * backends at work instead of one, and the module table still changes in
 * one transaction. A merged chunk's table is dropped in that transaction;
 * tables left by a failed page or a killed process are dropped by
 * merge_stage_sweep once their stager's connection is gone. */
enum rc merge_stage_begin_chunk(struct db *db, struct db *stager,
				const struct module_schema *schema, const char *const *headers,
				size_t nheaders, int seq, struct merge_stage **out, char *err,
				size_t errlen) ZCRM_MUSTCHECK;
enum rc merge_stage_sweep(struct db *stager) ZCRM_MUSTCHECK;
/* The connection COPY goes to (for its error messages). */
struct db *merge_stage_copy_db(const struct merge_stage *st);
void merge_stage_free(struct merge_stage *st);

/* Tombstone ids, each deleted at deleted_ms[i] (epoch ms), by the rule:
 * a delete older than the stored modified_time changes nothing, an
 * unknown id gets a tombstone row (so a stale export row cannot bring it
 * back), an earlier tombstone moves forward. Dirty marks older than the
 * delete go too. Inside the caller's transaction; *applied counts rows. */
enum rc merge_tombstones(struct db *db, const char *module, const int64_t *ids,
			 const int64_t *deleted_ms, size_t n, const char *source,
			 long *applied) ZCRM_MUSTCHECK;

/* The preview (inbox.c): the values a notification's affected_values
 * carries for record id (a JSON object by API name), set at once on its
 * live row so the change shows before the record is fetched; the fetch the
 * notification queued stays the source of truth. Applies only if the row
 * is not newer than the notification (when: its server time, epoch
 * seconds as text) and no newer notification of the id waits to be
 * fetched, so a reordered older one cannot overwrite a newer one; never
 * sets id, modified_time or created_time. A value that does not cast is
 * stored NULL. Unknown fields are skipped. */
enum rc merge_preview(struct db *db, const struct module_schema *schema, int64_t id,
		      struct json_object *values, const char *when) ZCRM_MUSTCHECK;

#endif
