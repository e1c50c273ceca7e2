/* credcheck.h — --check-credentials: do the Zoho credentials work?
 *
 * Refreshes the shared access token now, through the same path every
 * process uses (oauth.c: the oauth_token row, under its lock; the new token
 * is stored for everyone), then makes one cheap Zoho call with it (the
 * record count of a module, 1 credit). No retries: a check answers at once. */
#ifndef ZCRM_CREDCHECK_H
#define ZCRM_CREDCHECK_H

#include "cfg.h"
#include "compiler.h"
#include "rc.h"

#include <stdio.h>

/* Check cfg's credentials against module (NULL: the first configured) and
 * print one line saying so to out: "credentials ok: …", or what failed.
 * RC_OK; RC_AUTH (Zoho refused the refresh token, client id or secret, or
 * the token), RC_HTTP / RC_RATELIMIT (Zoho unreachable or throttling),
 * RC_CONFIG (credentials not set), RC_DB (PostgreSQL, which holds the
 * shared token, unreachable), …: exit with rc_exit_code(). */
enum rc credcheck_run(const struct cfg *cfg, const char *module, FILE *out) ZCRM_MUSTCHECK;

#endif
