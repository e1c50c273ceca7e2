/* users.h — zcrm.users: Zoho's users (id, name, email, role, profile,
 * status), so that Owner, Created_By and Modified_By resolve with a join.
 *
 * Refreshed by incremental_sync at most once per [sync] users_interval with
 * one Get Users call (1 credit): If-Modified-Since the newest Modified_Time
 * it has less a second (Zoho's clock has whole seconds: a user changed in
 * that second after the last call is not missed; an idle refresh reads the
 * newest second's users again, for the same credit a 304 costs); 200 users
 * a page, a walk of several pages spans several runs, one page a run
 * whatever the interval (users_state keeps the page and the walk's
 * If-Modified-Since).
 * Deactivated and deleted users stay, with their status. */
#ifndef ZCRM_USERS_H
#define ZCRM_USERS_H

#include "compiler.h"
#include "db.h"
#include "rc.h"
#include "zoho.h"

#include <stdbool.h>

struct users_result {
	bool called;    /* Zoho was asked (the interval had passed) */
	long received;  /* users in the answer (0 on 304) */
	bool more;      /* the walk goes on at the next refresh */
};

/* Refresh if due (interval_s seconds since the last call; 0: never;
 * force: now). Takes the advisory lock ("users"); another copy holding it
 * means nothing to do. The call's time is recorded whatever it answers. */
enum rc users_refresh(struct db *db, struct zoho *z, long interval_s, bool force,
		      struct users_result *res, char *err, size_t errlen) ZCRM_MUSTCHECK;

/* users_refresh for a batch program: logs the outcome; a failure (no
 * ZohoCRM.users.READ scope, Zoho down) is a warning, never the run's. */
void users_refresh_logged(struct db *db, struct zoho *z, long interval_s);

#endif
