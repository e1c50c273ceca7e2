/* syncstate.h — sync_state, runs and coverage_gaps: the bookkeeping every
 * batch program shares. Plain parameterised statements; no Zoho calls. */
#ifndef ZCRM_SYNCSTATE_H
#define ZCRM_SYNCSTATE_H

#include "compiler.h"
#include "db.h"
#include "rc.h"

#include <stdbool.h>
#include <stdint.h>

struct sync_row {
	int64_t watermark;       /* epoch seconds, 0 if none */
	uint64_t channel_id;
	int64_t channel_expiry;  /* epoch seconds, 0 if none */
	int64_t channel_checked; /* last time Zoho confirmed it live */
	char channel_status[16];
	char bulk_kind[16];      /* "" when no export is in progress */
	int64_t bulk_job_id;     /* 0 when the page's job is not created yet */
	int bulk_page;
	int64_t bulk_started;    /* Zoho's creation time of the first job */
	int64_t bulk_from, bulk_to;
	bool table_ready;
};

/* The module's row (created if missing). */
enum rc sync_get(struct db *db, const char *module, struct sync_row *row) ZCRM_MUSTCHECK;
/* Record the export in progress: kind, page, job (0: none yet), started. */
enum rc sync_set_bulk(struct db *db, const char *module, const char *kind, int page,
		      int64_t job_id, int64_t started, int64_t from, int64_t to) ZCRM_MUSTCHECK;
/* Forget the export in progress. */
enum rc sync_clear_bulk(struct db *db, const char *module) ZCRM_MUSTCHECK;
/* Move the watermark forward (never back). */
enum rc sync_set_watermark(struct db *db, const char *module, int64_t when) ZCRM_MUSTCHECK;
enum rc sync_set_channel(struct db *db, const char *module, uint64_t channel_id,
			 int64_t expiry, const char *status) ZCRM_MUSTCHECK;
/* Why renew_channel must ask Zoho about the channel now, or NULL when it
 * need not (pure): no channel recorded or another id, not active, no
 * expiry, expiring within renew_margin, or last confirmed live
 * check_interval seconds ago or longer (0: always). */
const char *sync_channel_due(const struct sync_row *row, uint64_t channel_id, int64_t now,
			     long renew_margin, long check_interval);
enum rc sync_set_error(struct db *db, const char *module, const char *error) ZCRM_MUSTCHECK;

/* runs: start one, on the connection that holds the job lock (the row
 * records that session, pg_backend_pid(), for status to tell a live run
 * from a dead one); a run of the same kind and module still marked running
 * was killed: it is marked abandoned */
enum rc run_start(struct db *db, const char *kind, const char *module, int64_t *run_id) ZCRM_MUSTCHECK;
struct run_counts {
	int pages;
	long rows_seen, rows_applied, rows_deleted;
};
enum rc run_progress(struct db *db, int64_t run_id, const struct run_counts *c) ZCRM_MUSTCHECK;
/* outcome: ok | failed | interrupted | dry-run; details: JSON text or NULL */
enum rc run_finish(struct db *db, int64_t run_id, const char *outcome, const struct run_counts *c,
		   const char *message, const char *details) ZCRM_MUSTCHECK;

/* coverage gaps */
enum rc gap_open(struct db *db, const char *module, int64_t from, int64_t to,
		 const char *reason) ZCRM_MUSTCHECK;
/* The earliest start of an open gap, 0 if none. */
enum rc gap_earliest(struct db *db, const char *module, int64_t *from) ZCRM_MUSTCHECK;
/* Close every open gap of module that starts at or after covered_from. */
enum rc gap_close_covered(struct db *db, const char *module, int64_t covered_from,
			  int64_t covered_to, int64_t run_id, long *closed) ZCRM_MUSTCHECK;

/* An ISO 8601 UTC text of epoch seconds, for SQL parameters. */
void epoch_text(int64_t t, char *buf, size_t cap);

#endif
