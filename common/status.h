/* status.h — what an operator asks first: per module watermark and lag,
 * channel expiry, dirty ids, pending notifications, spool depth, open
 * coverage gaps, table rows and the last runs; as a table or JSON. */
#ifndef ZCRM_STATUS_H
#define ZCRM_STATUS_H

#include "cfg.h"
#include "compiler.h"
#include "db.h"
#include "rc.h"

#include <stdio.h>

/* Write the status of modules (n of them) to out. json: one JSON object.
 * db NULL: PostgreSQL could not be used (db_err says why); what can be known
 * without it is written all the same (the config, the spool), and RC_OK
 * returned: the caller's exit code says the database failed. A run row
 * still 'running' whose session no longer holds a lock shows as
 * 'abandoned'; a channel past its stored expiry as 'expired'. */
enum rc status_report(struct db *db, const char *db_err, const struct cfg *cfg,
		      const char *const *modules, size_t n, bool json, FILE *out) ZCRM_MUSTCHECK;

#endif
