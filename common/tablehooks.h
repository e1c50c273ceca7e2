/* tablehooks.h — what the legacy application may ask of the module tables
 * besides their rows, both off by default:
 *
 *  - [database] notify_changes: after every statement that writes a module
 *    table, NOTIFY "<schema>.<table>" with the ids written (comma-separated,
 *    at most 400 a notification), delivered at commit; the application
 *    LISTENs instead of polling.
 *  - [database] history: every version a row had, kept in
 *    "<table>_history" (id, valid_from, valid_to, source, version jsonb)
 *    when an update or a delete replaces it; "<table>_versions" shows those
 *    and the current rows together.
 *
 * Owns those triggers, the per-table history function, the history tables
 * and views. Turning a key off drops the triggers and keeps what history
 * was recorded. */
#ifndef ZCRM_TABLEHOOKS_H
#define ZCRM_TABLEHOOKS_H

#include "compiler.h"
#include "db.h"
#include "rc.h"

#include <stdbool.h>

/* Make the triggers of every module table (sync_state.table_ready) match
 * the two keys; changes only what differs, under an advisory lock, and logs
 * what it changed. */
enum rc table_hooks_apply(struct db *db, bool notify_changes, bool history) ZCRM_MUSTCHECK;

#endif
