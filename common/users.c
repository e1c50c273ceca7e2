/* users.c — zcrm.users kept current by one Get Users call per refresh
 * (see users.h). */
#include "users.h"

#include "log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upsert the answer's users (one statement over the JSON array) and move
 * the walk: the next page when Zoho has more, else a new walk from the
 * newest Modified_Time met less a second. */
static const char *const SQL_UPSERT =
	"WITH u AS (SELECT (x->>'id')::bigint AS id, x->>'full_name' AS name, x->>'email' AS email,"
	"  x->'role'->>'name' AS role, x->'profile'->>'name' AS profile, x->>'status' AS status,"
	"  (x->>'Modified_Time')::timestamptz AS modified_time"
	"  FROM json_array_elements($1::json) x)"
	" INSERT INTO users (id, name, email, role, profile, status, modified_time, synced_at)"
	" SELECT id, name, email, role, profile, status, modified_time, now() FROM u"
	" ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email,"
	"  role = EXCLUDED.role, profile = EXCLUDED.profile, status = EXCLUDED.status,"
	"  modified_time = EXCLUDED.modified_time, synced_at = EXCLUDED.synced_at"
	" RETURNING modified_time";

static const char *const SQL_STATE =
	"UPDATE users_state s SET checked_at = now(), last_error = $1::text,"
	"  newest = CASE WHEN $1::text IS NOT NULL THEN s.newest"
	"   WHEN $2::text = 't' THEN greatest(s.newest, $3::timestamptz) END,"
	"  next_page = CASE WHEN $1::text IS NOT NULL THEN s.next_page"
	"   WHEN $2::text = 't' THEN s.next_page + 1 ELSE 1 END,"
	"  since = CASE WHEN $1::text IS NOT NULL OR $2::text = 't' THEN s.since"
	"   ELSE coalesce(greatest(s.newest, $3::timestamptz) - interval '1 second', s.since) END";

/* The walk's If-Modified-Since (epoch seconds, 0: none) and page, and
 * whether a call is due: the interval has passed, or a walk is under way
 * (its next page is read at the next run, not an interval later). */
static enum rc load_state(struct db *db, long interval_s, int64_t *since, int *page, bool *due)
{
	struct db_res *res = NULL;
	char iv[32];
	enum rc rc;

	snprintf(iv, sizeof(iv), "%ld", interval_s);
	*since = 0;
	*page = 1;
	*due = true;
	rc = db_exec(db,
		     "SELECT coalesce(floor(extract(epoch FROM since))::bigint, 0), next_page,"
		     " checked_at IS NULL OR next_page > 1"
		     "  OR checked_at <= now() - make_interval(secs => $1::int)"
		     " FROM users_state",
		     1, (const char *[]){iv}, &res);
	if (rc)
		return rc;
	if (db_res_rows(res) == 1) {
		*since = strtoll(db_res_get(res, 0, 0), NULL, 10);
		*page = atoi(db_res_get(res, 0, 1));
		*due = !strcmp(db_res_get(res, 0, 2), "t");
	}
	db_res_free(res);
	return RC_OK;
}

static enum rc save(struct db *db, struct json_object *users, bool more, const char *error,
		    char *err, size_t errlen)
{
	struct db_res *res = NULL;
	enum rc rc = db_begin(db);
	char *newest = NULL;

	if (rc)
		goto fail;
	if (users && json_object_array_length(users)) {
		rc = db_prepared(db, "users_upsert", SQL_UPSERT, 1,
				 (const char *[]){json_object_to_json_string_ext(users,
										JSON_C_TO_STRING_PLAIN)},
				 &res);
		if (rc)
			goto fail;
		db_res_free(res);
		res = NULL;
		rc = db_query_value(db,
				    "SELECT max((x->>'Modified_Time')::timestamptz)"
				    " FROM json_array_elements($1::json) x",
				    1,
				    (const char *[]){json_object_to_json_string_ext(
					    users, JSON_C_TO_STRING_PLAIN)},
				    &newest);
		if (rc)
			goto fail;
	}
	rc = db_prepared(db, "users_state", SQL_STATE, 3,
			 (const char *[]){error, more ? "t" : "f", newest}, NULL);
	if (rc)
		goto fail;
	rc = db_commit(db);
	if (rc)
		goto fail;
	free(newest);
	return RC_OK;
fail:
	snprintf(err, errlen, "zcrm.users: %s", db_error(db));
	db_rollback(db);
	db_res_free(res);
	free(newest);
	return rc;
}

enum rc users_refresh(struct db *db, struct zoho *z, long interval_s, bool force,
		      struct users_result *res, char *err, size_t errlen)
{
	struct json_object *users = NULL;
	int64_t since = 0;
	int page = 1;
	bool due = false, got = false;
	enum rc rc;

	memset(res, 0, sizeof(*res));
	err[0] = '\0';
	if (interval_s <= 0 && !force)
		return RC_OK;
	rc = db_try_lock(db, "users", NULL, &got);
	if (rc || !got) {
		if (rc)
			snprintf(err, errlen, "users lock: %s", db_error(db));
		return rc;
	}
	rc = load_state(db, interval_s, &since, &page, &due);
	if (rc) {
		snprintf(err, errlen, "users_state: %s", db_error(db));
		goto out;
	}
	if (!due && !force)
		goto out;
	res->called = true;
	rc = zoho_users(z, since, page, &users, &res->more);
	if (rc) {
		snprintf(err, errlen, "%s", zoho_error(z));
		/* the attempt counts for the interval: a missing scope costs a
		 * warning an interval, not one a run */
		if (save(db, NULL, false, err, err + strlen(err), errlen - strlen(err)) != RC_OK)
			log_debug("cannot record the users call", "err=%s", log_q(db_error(db)));
		goto out;
	}
	res->received = (long)json_object_array_length(users);
	rc = save(db, users, res->more, NULL, err, errlen);
out:
	json_object_put(users);
	if (db_unlock(db, "users", NULL) != RC_OK)
		log_debug("cannot release the users lock", "err=%s", log_q(db_error(db)));
	return rc;
}

void users_refresh_logged(struct db *db, struct zoho *z, long interval_s)
{
	struct users_result res;
	char err[1024];
	enum rc rc = users_refresh(db, z, interval_s, false, &res, err, sizeof(err));

	if (rc)
		log_warn("zcrm.users not refreshed; the sync goes on", "err=%s hint=%s", log_q(err),
			 log_q(strstr(err, "OAUTH_SCOPE_MISMATCH")
				       ? "the refresh token lacks ZohoCRM.users.READ"
					 " (docs/operations.md step 4)"
				       : "retried after [sync] users_interval"));
	else if (res.called)
		log_info("zcrm.users refreshed", "received=%ld more=%s", res.received,
			 res.more ? "true" : "false");
}
