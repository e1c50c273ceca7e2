/* incremental.h — the safety net run by cron every few minutes: replay the
 * spool, apply waiting notifications, fetch ids still dirty, export what
 * changed since `watermark − overlap` (and since the start of any open
 * coverage gap) with Bulk Read, tombstone what the deleted-records API
 * lists, and only then move the watermark and close the gaps covered. */
#ifndef ZCRM_INCREMENTAL_H
#define ZCRM_INCREMENTAL_H

#include "bulk.h"
#include "compiler.h"
#include "rc.h"

struct incremental_result {
	long inbox_applied;
	long fetched;
	struct bulk_result bulk;
	long deleted_seen;
	long tombstoned;
	long gaps_closed;
	int64_t from;          /* the window exported: Modified_Time >= from */
	int64_t watermark;     /* the new watermark */
};

/* One module; ctx->data holds the job lock already. */
enum rc incremental_module(struct bulk_ctx *ctx, const char *module,
			   struct incremental_result *res, char *err, size_t errlen) ZCRM_MUSTCHECK;

/* Tombstone everything the deleted-records API lists since `since`
 * (epoch seconds), page by page, each page in one transaction. */
enum rc incremental_deletes(struct bulk_ctx *ctx, const char *module, int64_t since,
			    long *seen, long *tombstoned, char *err, size_t errlen) ZCRM_MUSTCHECK;

#endif
