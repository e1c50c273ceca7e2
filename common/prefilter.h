/* prefilter.h — a bulk page's rows the freshness rule would refuse, dropped
 * before they are staged.
 *
 * A re-exported page is mostly rows we already hold: staging them (COPY
 * of every cell as text) and merging them (a cast and a probe each) costs
 * more than the ceiling of COPYing the page at all. So the loader hands
 * each chunk of whole CSV records here first. Its records are scanned for
 * their id and Modified_Time cells, and one query (merge_refused_sql: the
 * merge's own rule on the key alone, one primary-key probe per row) names
 * those the rule refuses whatever their values: older than the stored row,
 * or not newer than its tombstone, or a tie the bulk rule does not compare.
 * Only the other records go on to COPY; the merge judges them in full as
 * before. A record the prefilter cannot read (a malformed row, a quoted
 * id, a Modified_Time the lookup cannot cast) is kept, and a chunk holding
 * a malformed row is kept whole, so that COPY rejects it with its usual
 * message.
 *
 * The lookup runs on the stager (its own connection, outside the page's
 * transaction) and is sent without waiting: the loader inflates and scans
 * the next chunk while PostgreSQL probes this one's ids. Its snapshot may
 * be older than the merge's, which is safe because stored rows only move
 * forward: a later writer applies only newer rows, so a row refused then
 * is refused at the merge too. (The one exception is a tombstone older
 * than the export job arriving between the lookup and the merge, which the
 * merge would take for a restore; a delete notification late by the whole
 * export, and a record restored since - reconcile then finds it.) */
#ifndef ZCRM_PREFILTER_H
#define ZCRM_PREFILTER_H

#include "compiler.h"
#include "db.h"
#include "merge.h"
#include "rc.h"
#include "schema.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One record of a scanned chunk: bytes [start, end) of the chunk, newline
 * included; its id (has_id: a plain integer cell) and its Modified_Time
 * cell (mt_len 0: empty, quoted with quotes inside, or missing). */
struct prefilter_record {
	size_t start, end;
	int64_t id;
	bool has_id;
	size_t mt_off, mt_len;
};

/* Scan len bytes of whole CSV records (COPY's csv rules: quotes may open
 * anywhere in a cell, "" inside quotes is a quote, newlines inside quotes
 * are data) with ncols cells each; id_col and mt_col are the cells wanted.
 * Fills *recs (grown as needed; *cap its room) and *nrecs. False if some
 * record is malformed: another number of cells, a quote left open, a
 * carriage return not before a newline, LF and CRLF line ends mixed, or
 * bytes after the last newline that are not a whole record - COPY is to
 * see such a chunk whole. */
bool prefilter_scan(const char *bytes, size_t len, size_t ncols, size_t id_col, size_t mt_col,
		    struct prefilter_record **recs, size_t *cap, size_t *nrecs);

/* Records of a chunk, handed back once its lookup is in: runs of those to
 * stage (bytes [start, end) of the chunk each). */
struct prefilter_kept {
	const char *bytes;    /* the chunk */
	size_t len;
	long first_record;    /* the page's record number of its first row */
	long dropped;         /* records refused: in no run */
	const size_t (*runs)[2];
	size_t nruns;
};

/* What the loader does with a chunk's kept records (stage and queue
 * them); an error ends the page. */
typedef enum rc (*prefilter_emit_fn)(void *ctx, const struct prefilter_kept *k, char *err,
				     size_t errlen);

struct prefilter;

/* A prefilter for one page, or *out NULL when it cannot help: a rule other
 * than MERGE_BULK, or a header without id or Modified_Time. lookup is the
 * stager: nothing else may run on it between prefilter_cut and the emit
 * of that chunk. */
enum rc prefilter_new(struct db *lookup, const struct module_schema *schema,
		      const char *const *headers, size_t nheaders, enum merge_rule rule,
		      int64_t tie_before, struct prefilter **out, char *err,
		      size_t errlen) ZCRM_MUSTCHECK;
/* Bytes of the chunk being filled (whole records by the time it is cut). */
void prefilter_put(struct prefilter *pf, const char *bytes, size_t len);
/* The chunk being filled is complete: emit the chunk before it once its
 * lookup is in, then send this one's and return without waiting for it. */
enum rc prefilter_cut(struct prefilter *pf, long first_record, prefilter_emit_fn emit, void *ctx,
		      char *err, size_t errlen) ZCRM_MUSTCHECK;
/* The page's end: emit the chunk whose lookup is in flight, if any. */
enum rc prefilter_drain(struct prefilter *pf, prefilter_emit_fn emit, void *ctx, char *err,
			size_t errlen) ZCRM_MUSTCHECK;
/* Rows dropped so far. */
long prefilter_dropped(const struct prefilter *pf);
/* A lookup costs about a third of what staging and merging its rows
 * would (docs/benchmarks.md), so it pays when it refuses at least one row
 * in PREFILTER_WORTH. True once a chunk's lookup refused fewer: a page of
 * rows the rule must compare by value (ties with a stored copy older than
 * the job) or of new ones. The loader then stages the rest of the page
 * without it. */
#define PREFILTER_WORTH 4
bool prefilter_unhelpful(const struct prefilter *pf);
/* Waits for a lookup still in flight (so the connection is free again). */
void prefilter_free(struct prefilter *pf);

#endif
