/* oauth.h — the shared Zoho access token (refresh-token grant).
 *
 * One token per OAuth client for the whole deployment, kept in the table
 * oauth_token and refreshed under its row lock, so that many processes and
 * threads mint one token between them (Zoho allows about ten per ten
 * minutes). A struct oauth belongs to one thread; it keeps an in-memory
 * copy of the token and goes to PostgreSQL only near expiry or after an
 * invalidation. Tokens are registered with the logger as secrets. */
#ifndef ZCRM_OAUTH_H
#define ZCRM_OAUTH_H

#include "cfg.h"
#include "compiler.h"
#include "db.h"
#include "http.h"
#include "rc.h"

#include <stdbool.h>
#include <stddef.h>

#define OAUTH_ERR_LEN 512
/* A token with less than this left is refreshed (shorter for tokens whose
 * whole life is short: a quarter of it). */
#define OAUTH_MARGIN_S 300

struct oauth;

/* What the token endpoint granted. */
struct oauth_grant {
	char *access_token;
	char *api_domain; /* NULL if the answer had none */
	long expires_in;  /* seconds */
};

/* lifecycle: cfg and http are borrowed and must outlive o; RC_CONFIG (and a
 * log line, *out NULL) when the client credentials are not configured */
enum rc oauth_new(const struct cfg *cfg, struct http *http, struct oauth **out) ZCRM_MUSTCHECK;
void oauth_free(struct oauth *o);

/* A token with more than the margin left and the API domain to use with it,
 * both fresh heap strings the caller frees. Refreshes when needed (BEGIN …
 * SELECT … FOR UPDATE … COMMIT on db: call it outside any transaction).
 * RC_AUTH when Zoho refuses the grant, RC_RATELIMIT when it throttles the
 * token endpoint, RC_DB, RC_HTTP…; the reason is in oauth_error(). */
enum rc oauth_get(struct oauth *o, struct db *db, char **token,
		  char **api_domain) ZCRM_MUSTCHECK;
/* The same, but always refreshing (under the row lock, storing the new
 * token for every process, as oauth_get does): proves the refresh token,
 * client id and secret work. Costs one of Zoho's ~10 tokens per 10
 * minutes; for --check-credentials, not for routine calls. A refusal
 * leaves the stored token as it was. */
enum rc oauth_refresh(struct oauth *o, struct db *db, char **token,
		      char **api_domain) ZCRM_MUSTCHECK;
/* Zoho rejected token (401 INVALID_TOKEN): mark it expired, in memory and
 * in the table if it is still the stored one, so the next get refreshes. */
enum rc oauth_invalidate(struct oauth *o, struct db *db, const char *token) ZCRM_MUSTCHECK;
const char *oauth_error(const struct oauth *o);

/* Interpret a token endpoint answer (pure; unit-tested). On success g holds
 * heap strings (oauth_grant_free). err never contains the token. */
enum rc oauth_parse_grant(long status, const char *body, size_t len, bool allow_http,
			  struct oauth_grant *g, char err[OAUTH_ERR_LEN]) ZCRM_MUSTCHECK;
void oauth_grant_free(struct oauth_grant *g);

#endif
