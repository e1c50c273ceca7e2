/* credits.h — what zcrm-sync spends of the org's Zoho API credits, and the
 * guard that defers bulk work when Zoho says few are left.
 *
 * zoho.c prices every call (zoho_call_endpoint) and records it here, on the
 * Zoho client's own connection: zoho_credits (per minute, program and
 * endpoint) and zoho_credit_state (the last X-API-CREDITS-REMAINING, or NULL
 * when the last answer had none: more than half left). */
#ifndef ZCRM_CREDITS_H
#define ZCRM_CREDITS_H

#include "cfg.h"
#include "compiler.h"
#include "db.h"
#include "rc.h"

#include <stdint.h>

/* Add one call of endpoint costing credits; remaining is the answer's
 * X-API-CREDITS-REMAINING (-1: the answer had none). */
enum rc credits_record(struct db *db, const char *program, const char *endpoint, int credits,
		       long remaining) ZCRM_MUSTCHECK;

/* The last X-API-CREDITS-REMAINING seen by any program within the last
 * 24 hours, -1 when none (more than half the day's credits left, or no
 * answer had it yet). */
enum rc credits_remaining(struct db *db, long *remaining) ZCRM_MUSTCHECK;

/* RC_OK when bulk work may go ahead: the remaining credits, as the latest
 * of the database's figure and live (this run's last answer, -1: none) say,
 * are not below [zoho] credit_floor. RC_RATELIMIT otherwise, with a warning
 * naming what is deferred. */
enum rc credits_guard(struct db *db, const struct cfg *cfg, long live,
		      const char *what) ZCRM_MUSTCHECK;

/* The last 24 hours: rows (endpoint, credits, calls), most credits first;
 * and Zoho's last figure with when it was seen ("" / -1 when none). */
enum rc credits_day(struct db *db, struct db_res **by_endpoint) ZCRM_MUSTCHECK;
enum rc credits_last_seen(struct db *db, long *remaining, char *seen_at,
			  size_t cap) ZCRM_MUSTCHECK;

/* Forget minutes older than two days. */
enum rc credits_prune(struct db *db) ZCRM_MUSTCHECK;

#endif
