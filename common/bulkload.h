/* bulkload.h — one bulk-read page: ZIP file → inflate → COPY → merge.
 *
 * Streams the single CSV entry of a downloaded bulk ZIP through zlib into
 * COPY of text staging tables, the header line parsed by csvhead and the
 * rows by PostgreSQL's own CSV parser, then merges with the given rule
 * (merge.h) - with opts->parallel chunk by chunk, the next chunk staged on
 * a second connection while this one merges, and the rows the rule would
 * refuse on their key dropped before staging (prefilter.h). Memory stays bounded whatever
 * the page size. The module table changes only in the caller's
 * transaction, so a failure leaves it untouched. */
#ifndef ZCRM_BULKLOAD_H
#define ZCRM_BULKLOAD_H

#include "compiler.h"
#include "db.h"
#include "merge.h"
#include "rc.h"
#include "schema.h"
#include "zipstream.h"

#include <stdint.h>

/* Longest CSV record (one row, quotes and embedded line breaks included)
 * a page may hold. PostgreSQL's COPY keeps a whole row in memory and gives
 * up only at 1 GB; a Zoho record is far smaller (text fields hold at most
 * 32,000 characters), so a longer row is refused before COPY buffers it. */
#define BULKLOAD_MAX_ROW (64u << 20)

/* With opts->parallel, the page goes through in chunks of about this much
 * CSV: the stager COPYs chunk k+1 while the caller's connection merges
 * chunk k. Smaller chunks overlap more of the page (the first COPY and the
 * last merge run alone) but pay a table, a COPY and a merge statement
 * each; measured in docs/benchmarks.md. */
#define BULKLOAD_CHUNK (8u << 20)

/* Room for the column names a page lacked or had in excess, comma-
 * separated (cut with "..." beyond it). */
#define BULKLOAD_COLUMNS_MAX 512

struct bulkload_stats {
	long rows_staged;       /* the page's rows, rows_skipped included */
	long rows_applied;
	long rows_skipped;      /* refused before staging (prefilter.h) */
	uint64_t bytes_zip;
	uint64_t bytes_csv;
	long cells_nulled;      /* cells that did not cast, stored as NULL (merge.h) */
	/* Against the module's columns (not with ids_only): known columns the
	 * CSV lacks - then no row of the page is merged: the ids the bulk rule
	 * could apply go to dirty (rows_deferred), to be fetched by id - and
	 * CSV columns the fields metadata does not know (ignored). "" if none. */
	char missing[BULKLOAD_COLUMNS_MAX];
	char extra[BULKLOAD_COLUMNS_MAX];
	long rows_deferred;
	bool direct;            /* COPYed straight into the empty table (opts->direct) */
};

/* How the staged rows are used. */
struct bulkload_opts {
	enum merge_rule rule;
	int64_t tie_before;     /* as merge_apply */
	const char *source;     /* "bulk" */
	/* Reconcile: instead of merging, add (id, Modified_Time) of every row to
	 * the session's temporary table zcrm_reconcile (created if missing). */
	bool ids_only;
	/* Stage in chunks on a second connection while db merges (merge.h):
	 * two backends at work. Without it, one TEMP table on db. */
	bool parallel;
	/* CSV bytes per chunk when parallel; 0: BULKLOAD_CHUNK (tests make
	 * it small to cut a page into many). */
	size_t chunk_bytes;
	/* A first load: when the module table is empty, COPY the page
	 * straight into it (typed, FORCE_NULL) instead of staging and
	 * merging - nothing stored means the bulk rule applies every row.
	 * A page COPY refuses (a cell that does not cast, an id twice, a row
	 * a notification wrote meanwhile) is rolled back to a savepoint and
	 * staged and merged as usual. Only with MERGE_BULK, not ids_only. */
	bool direct;
	/* With direct: COPY straight in even into a table holding rows - the
	 * caller expects none of the page's ids among them (the earlier pages
	 * of a first load went in so). A collision costs the COPY's time. */
	bool direct_always;
	/* Stage every row: no prefilter (prefilter.h; with parallel, a bulk
	 * page's rows the rule refuses on their key are dropped before COPY).
	 * For comparisons. */
	bool stage_all;
};

enum rc bulkload_zip(struct db *db, const struct module_schema *schema, const char *zip_path,
		     const struct zipstream_limits *lim, const struct bulkload_opts *opts,
		     struct bulkload_stats *stats, char *err, size_t errlen) ZCRM_MUSTCHECK;

/* The same from an already-inflated CSV file (tests, benchmarks). */
enum rc bulkload_csv(struct db *db, const struct module_schema *schema, const char *csv_path,
		     const struct bulkload_opts *opts, struct bulkload_stats *stats, char *err,
		     size_t errlen) ZCRM_MUSTCHECK;

#endif
