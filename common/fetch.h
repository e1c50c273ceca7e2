/* fetch.h — notified ids → full records from the REST API → merge (fetch rule).
 *
 * Ids wait in two places: `fetch_queue`, a row per insert/update
 * notification with its ids (what the webhook writes), and `dirty`, a row
 * per id an earlier fetch could not settle (attempts, backoff). Both are
 * leased, not locked: a claim moves a lease forward and commits, so nothing
 * waits on a slow Zoho call, and several threads or hosts never fetch the
 * same ids at once (SKIP LOCKED); a crash lets the lease lapse. After the
 * merge an id is settled if Zoho returned it or it is tombstoned since; a
 * dirty row then goes unless a newer notification marked it meanwhile. An
 * id not settled stays in (or enters) `dirty` with exponential backoff,
 * until a delete notification or the deleted-records pass of
 * incremental_sync settles it. Converted Leads are fetched with
 * converted=both and kept as ordinary rows (Converted__s = true). */
#ifndef ZCRM_FETCH_H
#define ZCRM_FETCH_H

#include "cfg.h"
#include "compiler.h"
#include "db.h"
#include "rc.h"
#include "schema.h"
#include "zoho.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fetch_stats {
	long claimed;   /* distinct ids taken from fetch_queue or dirty */
	long returned;  /* records Zoho returned */
	long applied;   /* rows inserted or updated */
	long missing;   /* ids Zoho did not return (kept dirty) */
	bool schema_stale; /* Zoho refused a field we asked for (renamed or
			    * removed since our metadata): read it again
			    * (schemasync.h) and retry */
};

/* Up to max_batches claims of module: queued notifications adding up to
 * about 100 ids (more when one notification has more), else at most 100 due
 * dirty ids. RC_NOTFOUND
 * when the module table does not exist yet. */
enum rc fetch_dirty(struct db *data, struct zoho *zoho, const char *module, size_t max_batches,
		    struct fetch_stats *st, char *err, size_t errlen) ZCRM_MUSTCHECK;

struct fetch_opts {
	size_t max_batches;  /* claims (Get Records calls of up to 100 ids) at most */
	long delay_ms;       /* queued notifications wait this long for company */
	bool retries;        /* also take due ids of `dirty` */
};

/* fetch_dirty with options: queued ids are claimed only once the oldest
 * waiting notification was received delay_ms ago or a full call's worth
 * (100 ids) waits, so that notifications arriving close together share a
 * call. fetch_dirty is {max_batches, 0, true}. */
enum rc fetch_dirty_opts(struct db *data, struct zoho *zoho, const char *module,
			 const struct fetch_opts *o, struct fetch_stats *st, char *err,
			 size_t errlen) ZCRM_MUSTCHECK;

/* Get Records truncates rich text fields to 500 characters (zoho-api.md
 * §4.2): a value of that many characters (UTF-8 code points) or more may be
 * cut, and the record's rich text is then asked for in full (Get Rich Text
 * Fields, 1 credit) before the merge. */
#define FETCH_RICH_LIMIT 500
bool fetch_rich_truncated(const char *text);

/* Fetch these ids (any number) and merge them with the fetch rule, without
 * touching fetch_queue or dirty (reconcile). */
enum rc fetch_ids(struct db *data, struct zoho *zoho, const struct module_schema *schema,
		  const int64_t *ids, size_t n, struct fetch_stats *st, char *err,
		  size_t errlen) ZCRM_MUSTCHECK;

/* Back-fill (schemasync.h): fetch these ids with the fields of schema (a
 * part of the module's: id, Modified_Time and the columns to fill) and set
 * those columns where the row holds the fetched Modified_Time
 * (MERGE_BACKFILL). */
enum rc fetch_backfill_ids(struct db *data, struct zoho *zoho, const struct module_schema *schema,
			   const int64_t *ids, size_t n, struct fetch_stats *st, char *err,
			   size_t errlen) ZCRM_MUSTCHECK;

/* After a bulk export: first the fields Bulk Read does not export
 * (multiselectlookup, multiuserlookup, fileupload, imageupload) of the
 * live rows a bulk export wrote last (source 'bulk'), fetched by id with
 * every field - by single-record GETs when the module has a
 * multiselectlookup or multiuserlookup field (1 credit a record), else by
 * Get Records (100 ids a call). Then the line items (subform.h) of the
 * live parents whose lines are stale - no
 * line set, or one read before the parent's modified_time (a parent a bulk
 * export wrote) - by the cheaper path: the listing of every line of the
 * subforms (ceil(lines / 200) calls, our copy's count; a call per subform
 * when we hold none) or a single-record GET per stale parent, which merges
 * the parent too by the fetch rule. A module without subforms does
 * nothing. initial_sync after its export, incremental_sync and reconcile
 * call it. */
struct fetch_after_bulk_stats {
	long stale;         /* parents whose lines were stale */
	bool listing;       /* the path taken */
	long by_id_cost;    /* credits of each path, as priced */
	long listing_cost;
	long calls;         /* calls made */
	long lines;         /* lines read by the listing */
	long parents;       /* line sets (listing) or records (by id) written */
	long filled;        /* records fetched for their unexported fields */
	long fill_credits;  /* credits that fill cost */
};

enum rc fetch_after_bulk(struct db *data, struct zoho *zoho, const char *module,
			  struct fetch_after_bulk_stats *ls, char *err, size_t errlen) ZCRM_MUSTCHECK;

#endif
