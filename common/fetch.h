/* fetch.h — dirty ids → full records from the REST API → merge (fetch rule).
 *
 * Ids are leased, not locked: a claim moves next_try forward and commits,
 * so webhook threads marking the same ids never wait on a slow Zoho call,
 * and several threads or hosts never fetch the same ids at once (SKIP
 * LOCKED). After the merge an id leaves `dirty` only if no newer
 * notification marked it meanwhile; an id Zoho did not return stays, with
 * exponential backoff, until a delete notification or the deleted-records
 * pass of incremental_sync settles it. Converted Leads are fetched with
 * converted=both and kept as ordinary rows (Converted__s = true). */
#ifndef ZCRM_FETCH_H
#define ZCRM_FETCH_H

#include "cfg.h"
#include "compiler.h"
#include "db.h"
#include "rc.h"
#include "schema.h"
#include "zoho.h"

#include <stddef.h>
#include <stdint.h>

struct fetch_stats {
	long claimed;   /* ids taken from dirty */
	long returned;  /* records Zoho returned */
	long applied;   /* rows inserted or updated */
	long missing;   /* ids Zoho did not return (kept dirty) */
};

/* Up to max_batches batches of at most 100 due ids of module. RC_NOTFOUND
 * when the module table does not exist yet. */
enum rc fetch_dirty(struct db *data, struct zoho *zoho, const char *module, size_t max_batches,
		    struct fetch_stats *st, char *err, size_t errlen) ZCRM_MUSTCHECK;

/* Fetch these ids (any number) and merge them with the fetch rule, without
 * touching `dirty` (reconcile). */
enum rc fetch_ids(struct db *data, struct zoho *zoho, const struct module_schema *schema,
		  const int64_t *ids, size_t n, struct fetch_stats *st, char *err,
		  size_t errlen) ZCRM_MUSTCHECK;

#endif
