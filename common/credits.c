/* credits.c — API credits spent, and the credit guard (see credits.h). */
#include "credits.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>

enum rc credits_record(struct db *db, const char *program, const char *endpoint, int credits,
		       long remaining)
{
	char c[16], r[24];

	snprintf(c, sizeof(c), "%d", credits);
	snprintf(r, sizeof(r), "%ld", remaining);
	/* One round trip: the spend, and Zoho's figure (NULL: no header). */
	return db_prepared(db, "credits_record",
			   "WITH spent AS ("
			   " INSERT INTO zoho_credits (minute, program, endpoint, calls, credits)"
			   " VALUES (date_trunc('minute', now()), $1, $2, 1, $3::bigint)"
			   " ON CONFLICT (minute, program, endpoint) DO UPDATE"
			   " SET calls = zoho_credits.calls + 1,"
			   "  credits = zoho_credits.credits + EXCLUDED.credits)"
			   " INSERT INTO zoho_credit_state (id, remaining, seen_at)"
			   " VALUES (true, nullif($4::bigint, -1), now())"
			   " ON CONFLICT (id) DO UPDATE SET remaining = EXCLUDED.remaining,"
			   "  seen_at = EXCLUDED.seen_at",
			   4, (const char *[]){program, endpoint, c, r}, NULL);
}

enum rc credits_remaining(struct db *db, long *remaining)
{
	char *v = NULL;
	enum rc rc = db_query_value(db,
				    "SELECT remaining FROM zoho_credit_state"
				    " WHERE seen_at > now() - interval '24 hours'",
				    0, NULL, &v);
	*remaining = (!rc && v) ? atol(v) : -1;
	free(v);
	return rc;
}

enum rc credits_guard(struct db *db, const struct cfg *cfg, long live, const char *what)
{
	long stored = -1;

	if (cfg->credit_floor <= 0)
		return RC_OK;
	/* The database may be behind this run, or this run may have made no
	 * call yet: the smaller known figure decides. */
	if (credits_remaining(db, &stored))
		log_warn("cannot read the credits Zoho said remain", "err=%s", log_q(db_error(db)));
	long left = live >= 0 && (stored < 0 || live < stored) ? live : stored;
	if (left < 0 || left >= cfg->credit_floor)
		return RC_OK;
	log_warn("Zoho API credits below [zoho] credit_floor: deferring until they recover",
		 "deferred=%s remaining=%ld credit_floor=%ld", log_q(what), left, cfg->credit_floor);
	return RC_RATELIMIT;
}

enum rc credits_day(struct db *db, struct db_res **by_endpoint)
{
	return db_exec(db,
		       "SELECT endpoint, sum(credits), sum(calls) FROM zoho_credits"
		       " WHERE minute > now() - interval '24 hours'"
		       " GROUP BY endpoint ORDER BY 2 DESC, 1",
		       0, NULL, by_endpoint);
}

enum rc credits_last_seen(struct db *db, long *remaining, char *seen_at, size_t cap)
{
	struct db_res *res = NULL;
	enum rc rc = db_exec(db,
			     "SELECT coalesce(remaining, -1),"
			     " to_char(seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
			     " FROM zoho_credit_state",
			     0, NULL, &res);
	*remaining = -1;
	if (cap)
		seen_at[0] = '\0';
	if (!rc && db_res_rows(res) == 1) {
		*remaining = atol(db_res_get(res, 0, 0));
		snprintf(seen_at, cap, "%s", db_res_get(res, 0, 1));
	}
	db_res_free(res);
	return rc;
}

enum rc credits_prune(struct db *db)
{
	return db_prepared(db, "credits_prune",
			   "DELETE FROM zoho_credits WHERE minute < now() - interval '48 hours'", 0,
			   NULL, NULL);
}
