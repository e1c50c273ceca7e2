/* renew.h — each module's notification channel at Zoho: enabling it
 * (initial_sync) and keeping it alive (renew_channel): asking Zoho only
 * when it is due, renewing it within [notify] renew_margin of its expiry,
 * re-enabling one found expired or missing and recording the coverage gap
 * since it lapsed (which incremental_sync closes). The caller holds the
 * module's lock. */
#ifndef ZCRM_RENEW_H
#define ZCRM_RENEW_H

#include "cfg.h"
#include "compiler.h"
#include "db.h"
#include "rc.h"
#include "zoho.h"

#include <stdbool.h>
#include <stdio.h>

/* Enable the module's channel (the one [notify] configures) and record it
 * active with the expiry Zoho granted; RC_CONFIG, logged, without
 * [notify] url. */
enum rc renew_enable(const struct cfg *cfg, struct db *data, struct zoho *zoho,
		     const char *module) ZCRM_MUSTCHECK;
/* Check the module's channel when it is due (sync_channel_due; always with
 * force) and renew or re-enable it as needed; one line of what it did to
 * out. A module never synced is only reported (RC_OK). */
enum rc renew_check(const struct cfg *cfg, struct db *data, struct zoho *zoho,
		    const char *module, bool force, FILE *out) ZCRM_MUSTCHECK;

#endif
