/* bulk.h — a whole Bulk Read export of one module: job per page → wait →
 * download → load and merge → checkpoint, until more_records is false.
 *
 * The page in progress and its job id are checkpointed in sync_state, and
 * a page is merged in the same transaction that moves the checkpoint on,
 * so a process killed at any moment resumes at the page it was on (reusing
 * the job if Zoho still has it) and never exports a finished page again.
 * Two connections: `data` holds the advisory lock and does the merging;
 * the Zoho client uses its own for the shared OAuth token. */
#ifndef ZCRM_BULK_H
#define ZCRM_BULK_H

#include "cfg.h"
#include "compiler.h"
#include "db.h"
#include "merge.h"
#include "rc.h"
#include "schema.h"
#include "zoho.h"

#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct bulk_ctx {
	const struct cfg *cfg;
	struct db *data;
	struct zoho *zoho;
	atomic_int *stop;
	bool progress;          /* a terminal: redraw a progress line */
	int64_t run_id;
	/* tests: wait at most this long between status polls (0: default) */
	long poll_cap_ms;
	/* fields to export (NULL: all); ids_only: reconcile (bulkload.h) */
	const char *const *fields;
	size_t nfields;
	bool ids_only;
	/* Zoho's record count of the module, if the caller has just asked
	 * (> 0); else a whole-module export asks for it when it plans jobs
	 * ahead ([sync] bulk_jobs_ahead). */
	int64_t record_count;
	/* initial_sync: the modules it exports after this one, in order.
	 * While the budget of [sync] bulk_jobs_ahead has room after this
	 * module's own pages, their first pages' jobs are asked for during
	 * this export, so that the modules' minutes at Zoho overlap;
	 * credits_ahead counts what that cost. */
	const char *const *next_modules;
	size_t n_next;
	/* Called for it under its export lock just before its job is asked
	 * for (initial_sync: enable its notification channel, so that no
	 * change after the job's snapshot waits for incremental_sync); an
	 * error leaves its first page to its turn. NULL: none. */
	enum rc (*before_next)(struct bulk_ctx *ctx, const char *module);
	void *before_next_arg;
	long credits_ahead;
	size_t next_tried;      /* internal: next_modules asked for so far */
	long next_at_work;      /* internal: of them, jobs at work (in the budget) */
};

struct bulk_result {
	int pages;              /* pages merged by this call */
	int first_page;         /* the first of them (> 1: a resumed export) */
	int last_page;          /* the export's last page: its page count once done */
	long rows_seen;
	long rows_applied;
	uint64_t bytes;
	int64_t started;        /* Zoho's creation time of the first job */
	long cells_nulled;      /* cells that did not cast, stored as NULL */
	long rows_deferred;     /* rows of pages lacking a known column: fetched by id */
	bool unknown_columns;   /* a page had a column the fields metadata does not
				 * know, or lacked one it expects (a field new,
				 * renamed or removed in Zoho) */
};

/* kind: "initial" | "incremental" | "reconcile". from/to bound
 * Modified_Time ([from, to), 0 = unbounded). fields NULL: all fields.
 * A page whose CSV lacks a known column is not merged: the ids of its rows
 * that could apply go to dirty and are fetched by id (fetch.h) once the
 * export is done; a fetch that fails leaves them in dirty for the next
 * fetcher and is not an error of the export. */
enum rc bulk_export(struct bulk_ctx *ctx, const char *module, const struct module_schema *schema,
		    const char *kind, int64_t from, int64_t to, enum merge_rule rule,
		    struct bulk_result *res, char *err, size_t errlen) ZCRM_MUSTCHECK;

#endif
