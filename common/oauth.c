/* oauth.c — refresh-token grant and the shared token row (see oauth.h). */
#include "oauth.h"
#include "json.h"
#include "log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Longest wait for another process's refresh (row lock), seconds. */
#define OAUTH_LOCK_WAIT_MAX_S 300L

struct oauth {
	const struct cfg *cfg;
	struct http *http;
	/* The per-thread copy: usable until the monotonic time below. */
	char *token;
	char *api_domain;
	int64_t usable_until_ms;
	char err[OAUTH_ERR_LEN];
};

static void set_err(struct oauth *o, const char *fmt, ...) ZCRM_PRINTF(2, 3);

static void set_err(struct oauth *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->err, sizeof(o->err), fmt, ap);
	va_end(ap);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void forget_memory(struct oauth *o)
{
	free(o->token);
	free(o->api_domain);
	o->token = NULL;
	o->api_domain = NULL;
	o->usable_until_ms = 0;
}

enum rc oauth_new(const struct cfg *cfg, struct http *http, struct oauth **out)
{
	struct oauth *o;

	*out = NULL;
	if (!cfg->client_id[0] || !cfg->client_secret[0] || !cfg->refresh_token[0]) {
		log_error("cannot use the Zoho API",
			  "reason=%s", log_q("[zoho] client_id, client_secret and refresh_token must "
					     "all be set"));
		return RC_CONFIG;
	}
	o = xcalloc(1, sizeof(*o));
	o->cfg = cfg;
	o->http = http;
	*out = o;
	return RC_OK;
}

void oauth_free(struct oauth *o)
{
	if (!o)
		return;
	forget_memory(o);
	free(o);
}

const char *oauth_error(const struct oauth *o)
{
	return o ? o->err : "no oauth handle";
}

void oauth_grant_free(struct oauth_grant *g)
{
	if (!g)
		return;
	free(g->access_token);
	free(g->api_domain);
	g->access_token = NULL;
	g->api_domain = NULL;
}

/* ---- parsing the token endpoint's answer ---- */

/* Printable ASCII without spaces: safe in a header line. */
static bool header_safe(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return false;
	}
	return true;
}

static bool domain_ok(const char *d, bool allow_http)
{
	if (!header_safe(d))
		return false;
	if (strncmp(d, "https://", 8) == 0)
		return d[8] != '\0';
	return allow_http && strncmp(d, "http://", 7) == 0 && d[7] != '\0';
}

/* Copy s for an error text, keeping only harmless characters. */
static void clean_copy(char *dst, size_t cap, const char *s)
{
	size_t j = 0;

	for (; s && *s && j + 1 < cap; s++)
		dst[j++] = ((unsigned char)*s < ' ' || (unsigned char)*s >= 0x7f) ? '?' : *s;
	dst[j] = '\0';
}

enum rc oauth_parse_grant(long status, const char *body, size_t len, bool allow_http,
			  struct oauth_grant *g, char err[OAUTH_ERR_LEN])
{
	struct json_object *root = NULL;
	char jerr[JSON_ERR_LEN];
	const char *tok = NULL, *domain = NULL, *error = NULL, *desc = NULL;
	char e1[128], e2[200];
	enum rc rc;
	int64_t exp_in = 0;
	bool has_sec;

	memset(g, 0, sizeof(*g));
	rc = json_parse(body, len, &root, jerr);
	if (rc) {
		snprintf(err, OAUTH_ERR_LEN, "token endpoint answered HTTP %ld with no usable JSON: %s",
			 status, jerr);
		rc = status >= 200 && status <= 299 ? RC_BADINPUT : RC_AUTH;
		goto out;
	}
	if (!json_object_is_type(root, json_type_object)) {
		snprintf(err, OAUTH_ERR_LEN, "token endpoint answered HTTP %ld with a JSON %s",
			 status, json_type_str(root));
		rc = RC_BADINPUT;
		goto out;
	}
	/* Only strings are looked at: a wrong type reads as absent. */
	if (json_get_str(root, "access_token", JSON_OPTIONAL, &tok, jerr))
		tok = NULL;
	if (json_get_str(root, "error", JSON_OPTIONAL, &error, jerr))
		error = NULL;
	if (json_get_str(root, "error_description", JSON_OPTIONAL, &desc, jerr))
		desc = NULL;
	clean_copy(e1, sizeof(e1), error ? error : "");
	clean_copy(e2, sizeof(e2), desc ? desc : "");
	if (desc && strcasestr(desc, "too many requests")) {
		/* Zoho's throttle of the token endpoint (HTTP 400, "Access Denied"). */
		snprintf(err, OAUTH_ERR_LEN,
			 "token endpoint throttled us (HTTP %ld): %s: %s — wait before refreshing again",
			 status, e1, e2);
		rc = RC_RATELIMIT;
		goto out;
	}
	if (!tok || !*tok || status < 200 || status > 299) {
		/* Refusals often come with HTTP 200: the token's absence decides. */
		snprintf(err, OAUTH_ERR_LEN, "token refresh refused (HTTP %ld): %s%s%s", status,
			 error ? e1 : "no access_token in the answer", desc ? ": " : "", e2);
		rc = status == 429 ? RC_RATELIMIT : RC_AUTH;
		goto out;
	}
	if (!header_safe(tok)) {
		snprintf(err, OAUTH_ERR_LEN, "token endpoint returned a malformed access_token");
		rc = RC_BADINPUT;
		goto out;
	}
	if (json_get_str(root, "api_domain", JSON_OPTIONAL, &domain, jerr)) {
		snprintf(err, OAUTH_ERR_LEN, "token endpoint answer: %s", jerr);
		rc = RC_BADINPUT;
		goto out;
	}
	if (domain && !domain_ok(domain, allow_http)) {
		clean_copy(e2, sizeof(e2), domain);
		snprintf(err, OAUTH_ERR_LEN, "token endpoint returned an unusable api_domain '%s'",
			 e2);
		rc = RC_BADINPUT;
		goto out;
	}
	rc = json_get_int64(root, "expires_in", JSON_OPTIONAL, &exp_in, jerr);
	if (rc) {
		snprintf(err, OAUTH_ERR_LEN, "token endpoint answer: %s", jerr);
		goto out;
	}
	has_sec = json_object_object_get_ex(root, "expires_in_sec", NULL);
	if (exp_in <= 0)
		exp_in = 3600;
	else if (has_sec)
		exp_in /= 1000; /* legacy answers: expires_in in milliseconds */
	if (exp_in < 1)
		exp_in = 1;
	if (exp_in > 86400)
		exp_in = 86400;
	g->access_token = xstrdup(tok);
	if (domain) {
		size_t n = strlen(domain);
		while (n > 0 && domain[n - 1] == '/')
			n--;
		g->api_domain = xstrndup(domain, n);
	}
	g->expires_in = (long)exp_in;
	rc = RC_OK;
out:
	json_object_put(root);
	return rc;
}

/* ---- the refresh itself ---- */

static enum rc refresh(struct oauth *o, struct oauth_grant *g)
{
	const struct cfg *cfg = o->cfg;
	char *id = http_escape(cfg->client_id);
	char *secret = http_escape(cfg->client_secret);
	char *rt = http_escape(cfg->refresh_token);
	char *body = xasprintf("grant_type=refresh_token&client_id=%s&client_secret=%s&refresh_token=%s",
			       id, secret, rt);
	size_t n = strlen(cfg->accounts_url);
	while (n > 0 && cfg->accounts_url[n - 1] == '/')
		n--;
	char *url = xasprintf("%.*s/oauth/v2/token", (int)n, cfg->accounts_url);
	static const char *const headers[] = {
		"Content-Type: application/x-www-form-urlencoded", "Accept: application/json", NULL};
	struct http_req req = {
		.method = "POST",
		.url = url,
		.headers = headers,
		.body = body,
		.body_len = strlen(body),
		.what = "oauth token refresh",
		.max_bytes = 64 * 1024,
	};
	struct http_resp resp;
	enum rc rc;

	rc = http_do(o->http, &req, &resp);
	if (rc) {
		if (rc == RC_RATELIMIT || rc == RC_HTTP || rc == RC_TOOBIG || rc == RC_INTERRUPTED)
			set_err(o, "%s", http_error(o->http));
		else
			set_err(o, "oauth token refresh: %s", http_error(o->http));
		goto out;
	}
	rc = oauth_parse_grant(resp.status, resp.body, resp.len,
			       strncmp(cfg->accounts_url, "http://", 7) == 0, g, o->err);
	if (rc)
		goto out;
	log_add_secret(g->access_token);
	log_info("minted a Zoho access token", "expires_in=%ld api_domain=%s", g->expires_in,
		 log_q(g->api_domain ? g->api_domain : cfg->api_domain));
out:
	http_resp_free(&resp);
	/* The form body holds the client secret and the refresh token. */
	explicit_bzero(body, strlen(body));
	explicit_bzero(secret, strlen(secret));
	explicit_bzero(rt, strlen(rt));
	free(body);
	free(secret);
	free(rt);
	free(id);
	free(url);
	return rc;
}

/* ---- the table ---- */

static const char SQL_READ[] =
	"SELECT access_token, api_domain,"
	" floor(extract(epoch FROM expires_at - clock_timestamp()))::bigint,"
	" floor(extract(epoch FROM expires_at - refreshed_at))::bigint"
	" FROM oauth_token WHERE client_id = $1";
static const char SQL_LOCK[] =
	"SELECT access_token, api_domain,"
	" floor(extract(epoch FROM expires_at - clock_timestamp()))::bigint,"
	" floor(extract(epoch FROM expires_at - refreshed_at))::bigint"
	" FROM oauth_token WHERE client_id = $1 FOR UPDATE";

/* Seconds a token with left seconds (of lifetime) may still be handed out. */
static int64_t usable_for(int64_t left, int64_t lifetime)
{
	int64_t margin = OAUTH_MARGIN_S;

	if (lifetime > 0 && lifetime / 4 < margin)
		margin = lifetime / 4;
	return left - margin;
}

/* Take the row of res if its token is usable; true if taken. */
static bool take_row(struct oauth *o, struct db_res *res)
{
	const char *tok, *dom, *left_s, *life_s;
	int64_t left, life = 0;

	if (db_res_rows(res) != 1)
		return false;
	tok = db_res_get(res, 0, 0);
	dom = db_res_get(res, 0, 1);
	left_s = db_res_get(res, 0, 2);
	life_s = db_res_get(res, 0, 3);
	if (!tok || !*tok || !left_s || !json_str_to_int64(left_s, &left))
		return false;
	if (life_s && !json_str_to_int64(life_s, &life))
		life = 0;
	int64_t usable = usable_for(left, life);
	if (usable <= 0)
		return false;
	forget_memory(o);
	o->token = xstrdup(tok);
	o->api_domain = xstrdup(dom && *dom ? dom : o->cfg->api_domain);
	o->usable_until_ms = mono_ms() + usable * 1000;
	log_add_secret(o->token);
	return true;
}

static void hand_out(struct oauth *o, char **token, char **api_domain)
{
	size_t n = strlen(o->api_domain);

	while (n > 0 && o->api_domain[n - 1] == '/')
		n--;
	*token = xstrdup(o->token);
	*api_domain = xstrndup(o->api_domain, n);
}

/* oauth_get, or with force a refresh whatever the stored token's age (the
 * refresh token is what is being checked). */
static enum rc get_token(struct oauth *o, struct db *db, bool force, char **token,
			 char **api_domain)
{
	const char *params[5];
	struct db_res *res = NULL;
	struct oauth_grant g = {0};
	bool in_tx = false;
	enum rc rc;
	char lock_wait[32], life[32];

	*token = NULL;
	*api_domain = NULL;
	o->err[0] = '\0';
	if (!force && o->token && mono_ms() < o->usable_until_ms) {
		hand_out(o, token, api_domain);
		return RC_OK;
	}
	forget_memory(o);
	params[0] = o->cfg->client_id;
	rc = db_prepared(db, "oauth_read", SQL_READ, 1, params, &res);
	if (rc) {
		set_err(o, "reading the shared token: %s", db_error(db));
		goto out;
	}
	if (!force && take_row(o, res)) {
		hand_out(o, token, api_domain);
		goto out;
	}
	db_res_free(res);
	res = NULL;

	/* Refresh under the row lock; whoever waited re-checks first. */
	rc = db_begin(db);
	if (rc) {
		set_err(o, "refreshing the shared token: %s", db_error(db));
		goto out;
	}
	in_tx = true;
	long wait = o->cfg->retry_budget + o->cfg->request_timeout + o->cfg->connect_timeout;
	snprintf(lock_wait, sizeof(lock_wait), "%lds",
		 wait < OAUTH_LOCK_WAIT_MAX_S ? wait : OAUTH_LOCK_WAIT_MAX_S);
	const char *lw[1] = {lock_wait};
	rc = db_exec(db, "SELECT set_config('lock_timeout', $1, true)", 1, lw, NULL);
	if (rc == RC_OK)
		rc = db_prepared(db, "oauth_insert",
				 "INSERT INTO oauth_token (client_id) VALUES ($1)"
				 " ON CONFLICT (client_id) DO NOTHING",
				 1, params, NULL);
	if (rc == RC_OK)
		rc = db_prepared(db, "oauth_lock", SQL_LOCK, 1, params, &res);
	if (rc) {
		set_err(o, "locking the shared token: %s", db_error(db));
		goto out;
	}
	if (!force && take_row(o, res)) {
		/* Someone refreshed while we waited for the lock. */
		rc = db_commit(db);
		in_tx = false;
		if (rc) {
			set_err(o, "refreshing the shared token: %s", db_error(db));
			goto out;
		}
		hand_out(o, token, api_domain);
		goto out;
	}
	db_res_free(res);
	res = NULL;

	int64_t t0 = mono_ms();
	rc = refresh(o, &g);
	if (rc)
		goto out;
	/* Count the exchange's duration against the lifetime. */
	long granted = g.expires_in - (long)((mono_ms() - t0 + 999) / 1000);
	if (granted < 1)
		granted = 1;
	snprintf(life, sizeof(life), "%ld", granted);
	params[1] = g.access_token;
	params[2] = g.api_domain ? g.api_domain : o->cfg->api_domain;
	params[3] = life;
	rc = db_prepared(db, "oauth_store",
			 "UPDATE oauth_token SET access_token = $2, api_domain = $3,"
			 " expires_at = clock_timestamp() + make_interval(secs => $4::bigint),"
			 " refreshed_at = clock_timestamp(), refreshes = refreshes + 1"
			 " WHERE client_id = $1",
			 4, params, NULL);
	if (rc == RC_OK)
		rc = db_commit(db);
	in_tx = false;
	if (rc) {
		set_err(o, "storing the new token: %s", db_error(db));
		goto out;
	}
	forget_memory(o);
	o->token = xstrdup(g.access_token);
	o->api_domain = xstrdup(params[2]);
	int64_t usable = usable_for(granted, granted);
	o->usable_until_ms = mono_ms() + (usable > 0 ? usable : 0) * 1000;
	hand_out(o, token, api_domain);
out:
	if (in_tx)
		db_rollback(db);
	db_res_free(res);
	oauth_grant_free(&g);
	return rc;
}

enum rc oauth_get(struct oauth *o, struct db *db, char **token, char **api_domain)
{
	return get_token(o, db, false, token, api_domain);
}

enum rc oauth_refresh(struct oauth *o, struct db *db, char **token, char **api_domain)
{
	return get_token(o, db, true, token, api_domain);
}

enum rc oauth_invalidate(struct oauth *o, struct db *db, const char *token)
{
	const char *params[2] = {o->cfg->client_id, token};
	struct db_res *res = NULL;
	enum rc rc;

	if (!o->token || !token || strcmp(o->token, token) == 0)
		forget_memory(o);
	if (!token)
		return RC_OK;
	rc = db_prepared(db, "oauth_invalidate",
			 "UPDATE oauth_token SET expires_at = clock_timestamp() - interval '1 second'"
			 " WHERE client_id = $1 AND access_token = $2",
			 2, params, &res);
	if (rc) {
		set_err(o, "invalidating the shared token: %s", db_error(db));
		return rc;
	}
	log_info("Zoho rejected the access token; marked it expired", "stored=%s",
		 db_res_affected(res) > 0 ? "yes" : "no (already replaced)");
	db_res_free(res);
	return RC_OK;
}
