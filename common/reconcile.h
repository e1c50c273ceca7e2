/* reconcile.h — nightly drift check: Zoho's ids and Modified_Time (one
 * Bulk Read of those two columns) against the module table.
 *
 *   missing: in Zoho, not here (or only as an older tombstone) → fetched
 *   older:   here with an older Modified_Time → fetched
 *   gone:    live here, not in Zoho's export (and older than the export) →
 *            tombstoned when the deleted-records API lists them; the rest
 *            are fetched by id and, if Zoho still does not return them,
 *            reported as unexplained (never deleted on a guess)
 * When the module has formula or rollup fields and their refresh is due
 * ([sync] formula_refresh), the same export carries them and they are
 * merged (formula.h): no extra Bulk Read job.
 * Counts go to runs.details as JSON; --dry-run reports without repairing. */
#ifndef ZCRM_RECONCILE_H
#define ZCRM_RECONCILE_H

#include "bulk.h"
#include "compiler.h"
#include "formula.h"
#include "rc.h"

#include <stdbool.h>

struct reconcile_report {
	int64_t zoho_count;    /* Zoho's record count API (-1 if unavailable) */
	long exported;         /* ids in the export */
	long ours_live;        /* live rows here before repairs */
	long missing;
	long older;
	long gone;
	long fetched;          /* records fetched and merged */
	long tombstoned;
	long unexplained;      /* gone, not in the deleted list, not fetchable */
	struct formula_report formulas;
	long lines_stale;      /* parents whose line items were refreshed */
};

enum rc reconcile_module(struct bulk_ctx *ctx, const char *module, bool dry_run,
			 struct reconcile_report *rep, char *err, size_t errlen) ZCRM_MUSTCHECK;
/* The report as a JSON object; caller frees. */
char *reconcile_json(const struct reconcile_report *rep);
/* After a multi-page export (initial_sync): when Zoho counts more live
 * records than the table holds, one reconcile pass (ctx's run_id not
 * counted) fetches those that crossed a page boundary while the export
 * ran. Failures are logged as warnings: the nightly reconcile repeats it. */
void reconcile_page_boundaries(const struct bulk_ctx *ctx, const char *module);

#endif
