/* incremental.h — the safety net run by cron every few minutes: replay the
 * spool, apply waiting notifications, fetch ids still dirty, list what
 * changed since `watermark − overlap` (and since the start of any open
 * coverage gap) with Get Records (id and Modified_Time, If-Modified-Since:
 * 304 when nothing did), fetch by id what is newer than our copy — or
 * export it with Bulk Read when that costs fewer credits ([sync]
 * bulk_threshold) —, tombstone what the deleted-records API lists, and only
 * then move the watermark and close the gaps covered. */
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
	long list_pages;       /* change listing calls (1 when nothing changed) */
	long listed;           /* records the listing found */
	long marked;           /* of those, newer than our copy: fetched by id */
	int64_t date;          /* Date of the listing's first answer (Zoho's clock) */
	int64_t from;          /* the window caught up: Modified_Time >= from */
	int64_t watermark;     /* the new watermark */
};

/* Credits the REST path of a catch-up costs: listing pages plus the Get
 * Records calls fetching nids ids of nfields fields (pure; unit-tested). */
long incremental_rest_cost(long pages, size_t nids, size_t nfields);

/* One module; ctx->data holds the job lock already. */
enum rc incremental_module(struct bulk_ctx *ctx, const char *module,
			   struct incremental_result *res, char *err, size_t errlen) ZCRM_MUSTCHECK;

/* Tombstone everything the deleted-records API lists since `since`
 * (epoch seconds), page by page, each page in one transaction. */
enum rc incremental_deletes(struct bulk_ctx *ctx, const char *module, int64_t since,
			    long *seen, long *tombstoned, char *err, size_t errlen) ZCRM_MUSTCHECK;

#endif
