/* formula.h — formula and rollup summary fields, refreshed on a schedule.
 *
 * Zoho recomputes a formula (or rollup summary) field without moving the
 * record's Modified_Time and without a notification, so neither the webhook
 * nor a Modified_Time sweep ever brings its new value. Every [sync]
 * formula_refresh seconds (sync_state.formula_refreshed_at, so "due"
 * survives restarts), reconcile asks for those fields in the Bulk Read job
 * it makes anyway for its id list (no extra credit); merge_collect_ids keeps
 * their cells in the session table zcrm_formula (id, vals jsonb), and
 * formula_merge writes them:
 *
 *   - only into live rows holding the very version Zoho exported
 *     (modified_time equal to the export's),
 *   - only rows whose formula values differ (unchanged rows are filtered out
 *     before the UPDATE: no WAL for them),
 *   - never over a row written after the export job was created (synced_at
 *     >= the job's creation time: a fetch read it later, formulas included),
 *   - without touching modified_time, source or synced_at (the other values
 *     were not read).
 *
 * Owns: which columns are formulas, when a refresh is due, that merge. */
#ifndef ZCRM_FORMULA_H
#define ZCRM_FORMULA_H

#include "compiler.h"
#include "db.h"
#include "rc.h"
#include "schema.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct formula_report {
	long fields;     /* formula and rollup fields of the module (0: none) */
	bool due;        /* refreshed by this run */
	long exported;   /* rows of the export carrying them */
	long refreshed;  /* rows whose formula values were updated */
	long kept;       /* rows that differed but were written after the job began */
};

/* A Zoho data_type whose value changes without Modified_Time. */
bool formula_is_type(const char *data_type);
/* The API names of the module's listed formula columns, in column order:
 * *names (caller frees the array, not the strings: they are the schema's). */
size_t formula_fields(const struct module_schema *s, const char ***names);
/* Whether a refresh is due at now (epoch s) after the last one at last (0:
 * never) with interval seconds between them (0: never due). A run up to
 * interval/24 early counts: a nightly cron that starts a few seconds
 * earlier than yesterday's must not skip a night. */
bool formula_due(int64_t now, int64_t last, long interval);

/* The database's now and the module's last refresh (0: never), epoch s. */
enum rc formula_last(struct db *db, const char *module, int64_t *now,
		     int64_t *last) ZCRM_MUSTCHECK;
/* The session table zcrm_formula dropped: before an export that fills it. */
enum rc formula_reset(struct db *db) ZCRM_MUSTCHECK;
/* Merge zcrm_formula (and zcrm_reconcile's modified_time) into the module
 * table as above; job_created: the export's first job's creation time (epoch
 * s). dry_run: count only. Then (not on a dry run) formula_refreshed_at =
 * now(). Fills rep->exported, refreshed, kept. */
enum rc formula_merge(struct db *db, const struct module_schema *s, int64_t job_created,
		      bool dry_run, struct formula_report *rep, char *err,
		      size_t errlen) ZCRM_MUSTCHECK;

#endif
