/* inbox.h — the durable log of notifications and what they do to the tables.
 *
 * inbox_record() stores a validated notification in `inbox` (once: a
 * byte-identical redelivery is recognised) and, when the module table
 * exists, applies it in the same transaction: deletes become tombstones by
 * the freshness rule, inserts/updates queue their ids for a fetch. A
 * notification whose module table does not exist yet stays pending until
 * inbox_apply_pending() runs after the table is created. */
#ifndef ZCRM_INBOX_H
#define ZCRM_INBOX_H

#include "compiler.h"
#include "db.h"
#include "notification.h"
#include "rc.h"

#include <stdbool.h>
#include <stddef.h>

enum inbox_outcome {
	INBOX_APPLIED,    /* recorded and applied */
	INBOX_PENDING,    /* recorded; module table not there yet */
	INBOX_DUPLICATE,  /* seen before; nothing changed */
};

/* raw/len is the body exactly as received; via is "webhook" or "spool". */
enum rc inbox_record(struct db *db, const struct notification *n, const char *raw, size_t len,
		     const char *via, enum inbox_outcome *outcome) ZCRM_MUSTCHECK;
/* One notification of a batch (inbox_record_batch). */
struct inbox_item {
	const struct notification *n;
	const char *raw;              /* the body exactly as received */
	size_t len;
	enum inbox_outcome outcome;   /* set by inbox_record_batch */
};

/* Whether n may go in a batch: not with affected_values, whose updates
 * take a statement per record (inbox_record alone). */
bool inbox_batchable(const struct notification *n);
/* Record items as inbox_record would one by one, in one statement (and one
 * transaction with the deletes' tombstones, when there are deletes): under
 * load the webhook gathers the notifications waiting on several
 * connections, and one statement for many costs PostgreSQL a fraction of
 * one each (docs/benchmarks.md). All or nothing: on failure nothing is
 * recorded, so the caller can record them one by one to find the one at
 * fault. Every item must be inbox_batchable. */
enum rc inbox_record_batch(struct db *db, struct inbox_item *items, size_t n,
			   const char *via) ZCRM_MUSTCHECK;
/* Apply every pending notification of module, oldest first. */
enum rc inbox_apply_pending(struct db *db, const char *module, long *applied) ZCRM_MUSTCHECK;

/* Move every spooled body in dir into the inbox (via "spool"), oldest
 * first, deleting each file once committed. *replayed counts them. */
enum rc inbox_replay_spool(struct db *db, const char *dir, long *replayed) ZCRM_MUSTCHECK;

#endif
