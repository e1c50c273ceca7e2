/* schemasync.h — notice Zoho's schema changes and follow them: read the
 * fields metadata (1 credit) when it is due, evolve the module table
 * (schema.h owns the policy), and back-fill the columns that lack Zoho's
 * values for the records held, by the cheaper path: Get Records by id for
 * a few (REST, at most [sync] bulk_threshold credits), a Bulk Read of id,
 * Modified_Time and those fields for many. A back-fill sets a column only
 * on rows holding exactly the exported Modified_Time (a newer row gets its
 * value from its own fetch) and never touches modified_time; until it has
 * succeeded the fields stay due (fields.backfill_due), so a failure or a
 * kill is retried by the next refresh. */
#ifndef ZCRM_SCHEMASYNC_H
#define ZCRM_SCHEMASYNC_H

#include "bulk.h"
#include "compiler.h"
#include "rc.h"
#include "schema.h"

#include <stdbool.h>

enum schema_when {
	SCHEMA_ALWAYS,  /* read the metadata now (initial_sync, reconcile) */
	SCHEMA_EVERY,   /* if not read for [sync] schema_check seconds */
	SCHEMA_SOON,    /* if not read for a minute: a fetch or an export met a
			 * field we do not know or Zoho no longer has */
};

/* Once per module and `when`'s interval across every process (a claim on
 * sync_state.fields_checked). allow_bulk false (the webhook): back-fills
 * that need a Bulk Read stay due for incremental_sync. rep (may be NULL)
 * says what changed; *read (may be NULL) whether Zoho was asked. A
 * back-fill that fails is logged and stays due: not an error. */
enum rc schema_refresh(struct bulk_ctx *ctx, const char *module, enum schema_when when,
		       bool allow_bulk, struct schema_report *rep, bool *read) ZCRM_MUSTCHECK;

/* Forget due back-fills of module older than `before` (epoch seconds):
 * a full export that started after them carried every field. */
enum rc schema_backfill_done(struct db *db, const char *module, int64_t before) ZCRM_MUSTCHECK;

#endif
