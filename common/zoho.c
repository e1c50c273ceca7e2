/* zoho.c — typed Zoho CRM v6 calls (see zoho.h; paths and shapes follow
 * zoho-api.md). */
#include "zoho.h"
#include "buf.h"
#include "credits.h"
#include "json.h"
#include "log.h"
#include "oauth.h"
#include "ztime.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ZOHO_DOWNLOAD_429_MS 60000L
/* Fields per Get Records call when joining: 49 plus Modified_Time. */
#define ZOHO_JOIN_CHUNK (ZOHO_MAX_FIELDS - 1)
#define ZOHO_JOIN_ROUNDS 3

struct zoho {
	const struct cfg *cfg;
	struct db *db;
	struct http *http;
	struct oauth *oauth;
	struct zoho_opts opts;
	long credits;
	long spent[ZOHO_EP__COUNT];
	char err[ZOHO_ERR_LEN];
};

static void set_err(struct zoho *z, const char *fmt, ...) ZCRM_PRINTF(2, 3);

static void set_err(struct zoho *z, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(z->err, sizeof(z->err), fmt, ap);
	va_end(ap);
}

/* ---- lifecycle ---- */

enum rc zoho_new(const struct cfg *cfg, struct db *db, const struct zoho_opts *opts,
		 struct zoho **out)
{
	struct zoho *z = xcalloc(1, sizeof(*z));
	enum rc rc;

	*out = NULL;
	z->cfg = cfg;
	z->db = db;
	z->credits = -1;
	if (opts)
		z->opts = *opts;
	if (z->opts.download_429_ms <= 0)
		z->opts.download_429_ms = ZOHO_DOWNLOAD_429_MS;
	rc = http_new(cfg, &z->opts.http, &z->http);
	if (rc)
		goto fail;
	rc = oauth_new(cfg, z->http, &z->oauth);
	if (rc)
		goto fail;
	*out = z;
	return RC_OK;
fail:
	zoho_free(z);
	return rc;
}

void zoho_free(struct zoho *z)
{
	if (!z)
		return;
	oauth_free(z->oauth);
	http_free(z->http);
	free(z);
}

const char *zoho_error(const struct zoho *z)
{
	return z ? z->err : "no zoho handle";
}

long zoho_credits_remaining(const struct zoho *z)
{
	return z->credits;
}

struct http *zoho_http(struct zoho *z)
{
	return z->http;
}

enum rc zoho_token(struct zoho *z, char **token, char **api_domain)
{
	enum rc rc = oauth_get(z->oauth, z->db, token, api_domain);

	if (rc)
		set_err(z, "%s", oauth_error(z->oauth));
	return rc;
}

/* ---- what a call costs ---- */

static const char *const endpoint_names[ZOHO_EP__COUNT] = {
	"bulk_create", "bulk_status", "bulk_result", "records", "record_by_id", "deleted",
	"fields",      "count",       "watch",       "users",   "fetch_full_data", "other",
};

const char *zoho_endpoint_name(enum zoho_endpoint ep)
{
	return (unsigned)ep < ZOHO_EP__COUNT ? endpoint_names[ep] : "other";
}

enum zoho_endpoint zoho_call_endpoint(const char *method, const char *path, int *credits)
{
	const char *p = path, *q;
	bool post = method && !strcmp(method, "POST");

	*credits = 1;
	/* A whole URL (bulk downloads): its path. */
	if ((q = strstr(p, "://")) != NULL)
		p = strchr(q + 3, '/') ? strchr(q + 3, '/') : "";
	size_t len = strcspn(p, "?");
	if (!strncmp(p, "/crm/bulk/", 10)) {
		const char *read = strstr(p, "/read");
		if (!read || read - p > (ptrdiff_t)len)
			return ZOHO_EP_OTHER;
		const char *rest = read + 5;
		if (rest - p == (ptrdiff_t)len || *rest == '?') {
			if (post)
				*credits = 50;
			return post ? ZOHO_EP_BULK_CREATE : ZOHO_EP_OTHER;
		}
		return strstr(rest, "/result") && strstr(rest, "/result") - p < (ptrdiff_t)len
			       ? ZOHO_EP_BULK_RESULT
			       : ZOHO_EP_BULK_STATUS;
	}
	if (strncmp(p, "/crm/v", 6))
		return ZOHO_EP_OTHER;
	/* /crm/vN/<a>[/<b>[/<c>]] */
	const char *a = strchr(p + 6, '/');
	if (!a || a - p >= (ptrdiff_t)len)
		return ZOHO_EP_OTHER;
	a++;
	char seg[3][64] = {"", "", ""};
	for (int i = 0; i < 3 && a - p < (ptrdiff_t)len; i++) {
		size_t n = strcspn(a, "/?");
		snprintf(seg[i], sizeof(seg[i]), "%.*s", (int)(n < 63 ? n : 63), a);
		a += n;
		if (*a != '/')
			break;
		a++;
	}
	if (!strcmp(seg[0], "actions") && !strcmp(seg[1], "watch"))
		return ZOHO_EP_WATCH;
	if (!strcmp(seg[0], "settings") && !strcmp(seg[1], "fields"))
		return ZOHO_EP_FIELDS;
	if (!strcmp(seg[1], "deleted"))
		return ZOHO_EP_DELETED;
	if (!strcmp(seg[1], "actions") && !strcmp(seg[2], "count"))
		return ZOHO_EP_COUNT;
	if (!strcmp(seg[0], "users") && !seg[1][0])
		return ZOHO_EP_USERS;
	if (seg[1][0] && strspn(seg[1], "0123456789") == strlen(seg[1]) &&
	    !strcmp(seg[2], "actions") && strstr(a, "fetch_full_data") == a)
		return ZOHO_EP_FULL_DATA;
	if (seg[1][0] && strspn(seg[1], "0123456789") == strlen(seg[1]))
		return ZOHO_EP_RECORD_BY_ID;
	if (seg[0][0] && !seg[1][0]) {
		const char *query = path + (p - path) + len;
		if (strstr(query, "cvid=") == query + 1 || strstr(query, "&cvid="))
			*credits = 3;
		return ZOHO_EP_RECORDS;
	}
	return ZOHO_EP_OTHER;
}

long zoho_credits_spent(const struct zoho *z, enum zoho_endpoint ep)
{
	long sum = 0;
	if ((unsigned)ep < ZOHO_EP__COUNT)
		return z->spent[ep];
	for (size_t i = 0; i < ZOHO_EP__COUNT; i++)
		sum += z->spent[i];
	return sum;
}

enum rc zoho_check_credentials(struct zoho *z, const char *module, int64_t *count,
			       char **api_domain)
{
	char *token = NULL;
	enum rc rc;

	*count = 0;
	*api_domain = NULL;
	rc = oauth_refresh(z->oauth, z->db, &token, api_domain);
	if (rc) {
		set_err(z, "%s", oauth_error(z->oauth));
		goto out;
	}
	rc = zoho_record_count(z, module, count);
out:
	free(token);
	return rc;
}

/* ---- small helpers ---- */

/* Module API names go into paths: letters, digits and '_' only. */
static bool module_ok(struct zoho *z, const char *what, const char *module)
{
	size_t n = module ? strlen(module) : 0;

	if (n == 0 || n > 100)
		goto bad;
	if (!((module[0] >= 'A' && module[0] <= 'Z') || (module[0] >= 'a' && module[0] <= 'z')))
		goto bad;
	for (size_t i = 0; i < n; i++) {
		char c = module[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			goto bad;
	}
	return true;
bad:
	set_err(z, "%s: '%.60s' is not a module API name", what, module ? module : "");
	return false;
}

/* Copy text for an error message: control characters become '?'. */
static void clean_into(char *dst, size_t cap, const char *s, size_t len)
{
	size_t j = 0;

	for (size_t i = 0; s && i < len && j + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[j++] = c < ' ' || c == 0x7f ? '?' : (char)c;
	}
	dst[j] = '\0';
}

static const char *item_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v) || !v || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static void format_error(struct json_object *item, char *out, size_t cap)
{
	const char *code = item_str(item, "code");
	const char *msg = item_str(item, "message");
	struct json_object *details = NULL;
	char c1[96], c2[256], c3[256] = "";

	clean_into(c1, sizeof(c1), code ? code : "?", code ? strlen(code) : 1);
	clean_into(c2, sizeof(c2), msg ? msg : "", msg ? strlen(msg) : 0);
	if (json_object_object_get_ex(item, "details", &details) && details &&
	    json_object_is_type(details, json_type_object) && json_object_object_length(details) > 0) {
		const char *d = json_compact(details);
		clean_into(c3, sizeof(c3), d, strlen(d));
	}
	snprintf(out, cap, "%s%s%s%s%s%s", c1, msg ? ": " : "", c2, c3[0] ? " (details " : "", c3,
		 c3[0] ? ")" : "");
}

/* The item that carries Zoho's error: the root, or the first of data/watch. */
static struct json_object *error_item(struct json_object *root)
{
	static const char *const wrappers[] = {"data", "watch", "fields"};
	struct json_object *arr;

	if (!root || !json_object_is_type(root, json_type_object))
		return NULL;
	if (item_str(root, "code"))
		return root;
	for (size_t i = 0; i < ARRAY_LEN(wrappers); i++) {
		if (json_object_object_get_ex(root, wrappers[i], &arr) && arr &&
		    json_object_is_type(arr, json_type_array) && json_object_array_length(arr) > 0) {
			struct json_object *it = json_object_array_get_idx(arr, 0);
			if (item_str(it, "code"))
				return it;
		}
	}
	return NULL;
}

bool zoho_error_text(const char *body, size_t len, char *out, size_t cap)
{
	struct json_object *root = NULL;
	char jerr[JSON_ERR_LEN];
	bool found = false;

	out[0] = '\0';
	if (!body || !len || json_parse(body, len, &root, jerr) != RC_OK)
		return false;
	struct json_object *it = error_item(root);
	if (it) {
		format_error(it, out, cap);
		found = true;
	}
	json_object_put(root);
	return found;
}

static bool is_code(const char *body, size_t len, const char *code)
{
	struct json_object *root = NULL;
	char jerr[JSON_ERR_LEN];
	bool yes = false;

	if (!body || !len || json_parse(body, len, &root, jerr) != RC_OK)
		return false;
	const char *c = item_str(error_item(root), "code");
	yes = c && strcmp(c, code) == 0;
	json_object_put(root);
	return yes;
}

/* ---- the authenticated call ---- */

struct call {
	const char *what;        /* "bulk status" */
	const char *method;      /* NULL: GET */
	const char *path;        /* "/crm/v6/…" or an absolute URL under api_domain */
	const char *body;        /* JSON, or NULL */
	const char *header;      /* one extra header line, or NULL */
	const char *dest_path;   /* download */
	int64_t max_bytes;
	long min_429_wait_ms;
};

/* Count a call Zoho answered. Zoho charges a call it served, whatever it
 * answered; not one refused for the token (401), the rate (429) or a
 * failure of its own (5xx). */
static void charge(struct zoho *z, const struct call *c, const struct http_resp *resp)
{
	if (!resp->status || resp->status == 401 || resp->status == 429 || resp->status >= 500)
		return;
	int credits = 1;
	enum zoho_endpoint ep = zoho_call_endpoint(c->method, c->path, &credits);
	z->spent[ep] += credits;
	if (z->opts.on_spend)
		z->opts.on_spend(z->opts.spend_arg, ep, credits, resp->credits_remaining);
	if (z->db && credits_record(z->db, program_invocation_short_name, endpoint_names[ep],
				    credits, resp->credits_remaining))
		log_debug("cannot record the credits a call cost", "err=%s",
			  log_q(db_error(z->db)));
}

/* Send c with a token; on 401 INVALID_TOKEN invalidate and try once more.
 * RC_OK only for a 2xx answer (resp holds it); otherwise z->err says why. */
static enum rc zoho_send(struct zoho *z, const struct call *c, struct http_resp *resp)
{
	char *token = NULL, *domain = NULL, *url = NULL, *auth = NULL;
	enum rc rc = RC_INTERNAL;
	char detail[600];

	memset(resp, 0, sizeof(*resp));
	for (int round = 0; round < 2; round++) {
		rc = oauth_get(z->oauth, z->db, &token, &domain);
		if (rc) {
			set_err(z, "%s: no access token: %s", c->what, oauth_error(z->oauth));
			goto out;
		}
		if (strncmp(c->path, "https://", 8) == 0 || strncmp(c->path, "http://", 7) == 0) {
			size_t dn = strlen(domain);
			if (strncmp(c->path, domain, dn) != 0 || c->path[dn] != '/') {
				set_err(z, "%s: refusing URL %.200s outside the API domain %s",
					c->what, c->path, domain);
				rc = RC_BADINPUT;
				goto out;
			}
			url = xstrdup(c->path);
		} else {
			url = xasprintf("%s%s", domain, c->path);
		}
		auth = xasprintf("Authorization: Zoho-oauthtoken %s", token);
		const char *headers[5];
		size_t nh = 0;
		headers[nh++] = auth;
		headers[nh++] = c->dest_path ? "Accept: */*" : "Accept: application/json";
		if (c->body)
			headers[nh++] = "Content-Type: application/json";
		if (c->header)
			headers[nh++] = c->header;
		headers[nh] = NULL;
		struct http_req req = {
			.method = c->method,
			.url = url,
			.headers = headers,
			.body = c->body,
			.body_len = c->body ? strlen(c->body) : 0,
			.what = c->what,
			.dest_path = c->dest_path,
			.max_bytes = c->max_bytes,
			.min_429_wait_ms = c->min_429_wait_ms,
		};
		http_resp_free(resp);
		rc = http_do(z->http, &req, resp);
		explicit_bzero(auth, strlen(auth));
		free(auth);
		auth = NULL;
		free(url);
		url = NULL;
		if (resp->credits_remaining >= 0)
			z->credits = resp->credits_remaining;
		charge(z, c, resp);
		if (rc) {
			detail[0] = '\0';
			if (resp->status && resp->len &&
			    zoho_error_text(resp->body, resp->len, detail, sizeof(detail)))
				set_err(z, "%s: %s [%s]", c->what, http_error(z->http), detail);
			else
				set_err(z, "%s", http_error(z->http));
			goto out;
		}
		if (resp->status == 401 && round == 0 &&
		    (is_code(resp->body, resp->len, "INVALID_TOKEN") || !resp->len)) {
			log_info("access token rejected; refreshing once", "what=%s", log_q(c->what));
			rc = oauth_invalidate(z->oauth, z->db, token);
			if (rc) {
				set_err(z, "%s: %s", c->what, oauth_error(z->oauth));
				goto out;
			}
			free(token);
			free(domain);
			token = domain = NULL;
			continue;
		}
		break;
	}
	if ((resp->status >= 200 && resp->status <= 299) ||
	    (resp->status == 304 && c->header &&
	     strncasecmp(c->header, "If-Modified-Since:", 18) == 0)) {
		rc = RC_OK; /* 304: nothing modified since (zoho-api.md §4.1) */
		goto out;
	}
	if (!zoho_error_text(resp->body, resp->len, detail, sizeof(detail))) {
		char snippet[201];
		clean_into(snippet, sizeof(snippet), resp->body, resp->len < 200 ? resp->len : 200);
		snprintf(detail, sizeof(detail), "%s%s", resp->len ? "body: " : "empty body",
			 snippet);
	}
	if (resp->status == 401 && is_code(resp->body, resp->len, "OAUTH_SCOPE_MISMATCH"))
		set_err(z, "%s: HTTP %ld %s (the refresh token lacks the scope this call needs:"
			" docs/operations.md step 4)", c->what, resp->status, detail);
	else
		set_err(z, "%s: HTTP %ld %s", c->what, resp->status, detail);
	if (resp->status == 401 || resp->status == 403)
		rc = RC_AUTH;
	else if (resp->status == 404)
		rc = RC_NOTFOUND;
	else
		rc = RC_ZOHO;
out:
	if (token)
		explicit_bzero(token, strlen(token));
	free(token);
	free(domain);
	free(url);
	free(auth);
	return rc;
}

/* Parse a 2xx answer's body as a JSON object; *root is the caller's. */
static enum rc parse_answer(struct zoho *z, const char *what, const struct http_resp *resp,
			    struct json_object **root)
{
	char jerr[JSON_ERR_LEN];
	enum rc rc = json_parse(resp->body, resp->len, root, jerr);

	if (rc) {
		set_err(z, "%s: HTTP %ld answer is not usable JSON (%s%s%s): %s", what,
			resp->status, resp->content_type[0] ? "Content-Type " : "no Content-Type",
			resp->content_type, "", jerr);
		return rc == RC_TOOBIG ? rc : RC_BADINPUT;
	}
	if (!json_object_is_type(*root, json_type_object)) {
		set_err(z, "%s: expected a JSON object, got %s", what, json_type_str(*root));
		json_object_put(*root);
		*root = NULL;
		return RC_BADINPUT;
	}
	return RC_OK;
}

/* An answer that did not have the expected shape. */
static enum rc shape_err(struct zoho *z, const char *what, const char *jerr)
{
	set_err(z, "%s: unexpected answer: %s", what, jerr);
	return RC_BADINPUT;
}

/* Send c and parse its JSON answer; *root stays NULL (RC_OK) for a 204 or
 * an empty body: Zoho's "nothing". */
static enum rc send_json(struct zoho *z, const struct call *c, struct http_resp *resp,
			 struct json_object **root)
{
	enum rc rc = zoho_send(z, c, resp);

	*root = NULL;
	if (rc || resp->status == 204 || resp->len == 0)
		return rc;
	return parse_answer(z, c->what, resp, root);
}

/* Every item of data is an object with an id (noun names it in errors). */
static enum rc check_items(struct zoho *z, const char *what, struct json_object *data,
			   const char *noun)
{
	char jerr[JSON_ERR_LEN];

	for (size_t i = 0; i < json_object_array_length(data); i++) {
		struct json_object *r = json_object_array_get_idx(data, i);
		int64_t id;
		if (json_as_obj(r, noun, jerr) || json_get_int64(r, "id", JSON_REQUIRED, &id, jerr))
			return shape_err(z, what, jerr);
	}
	return RC_OK;
}

/* The first item of the array root[key] as an object. */
static enum rc first_item(struct zoho *z, const char *what, struct json_object *root,
			  const char *key, struct json_object **item)
{
	struct json_object *arr;
	char jerr[JSON_ERR_LEN];

	*item = NULL;
	if (json_get_arr(root, key, JSON_REQUIRED, &arr, jerr))
		return shape_err(z, what, jerr);
	if (json_object_array_length(arr) < 1) {
		set_err(z, "%s: unexpected answer: '%s' is empty", what, key);
		return RC_BADINPUT;
	}
	*item = json_object_array_get_idx(arr, 0);
	if (json_as_obj(*item, key, jerr))
		return shape_err(z, what, jerr);
	return RC_OK;
}

/* An item-level result: success unless Zoho said otherwise. */
static enum rc item_ok(struct zoho *z, const char *what, struct json_object *item,
		       const char *want_code)
{
	const char *code = item_str(item, "code");
	const char *status = item_str(item, "status");
	char detail[512];

	if (want_code ? (code && strcmp(code, want_code) == 0)
		      : (status && strcasecmp(status, "success") == 0))
		return RC_OK;
	format_error(item, detail, sizeof(detail));
	set_err(z, "%s: Zoho answered %s", what, detail);
	if (code && (!strcmp(code, "NOT_SUBSCRIBED") || !strcmp(code, "RESOURCE_NOT_FOUND")))
		return RC_NOTFOUND;
	return RC_ZOHO;
}

/* ---- notification channel ---- */

char *zoho_watch_body(const char *module, uint64_t channel_id, const char *notify_url,
		      const char *token, int64_t expiry)
{
	struct json_object *root = json_object_new_object();
	struct json_object *arr = json_object_new_array();
	struct json_object *ch = json_object_new_object();
	struct json_object *events = json_object_new_array();
	static const char *const ops[] = {"create", "edit", "delete"};
	char buf[64], when[ZTIME_LEN];

	snprintf(buf, sizeof(buf), "%" PRIu64, channel_id);
	json_object_object_add(ch, "channel_id", json_object_new_string(buf));
	for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
		char *ev = xasprintf("%s.%s", module, ops[i]);
		json_object_array_add(events, json_object_new_string(ev));
		free(ev);
	}
	json_object_object_add(ch, "events", events);
	ztime_format(expiry, when);
	json_object_object_add(ch, "channel_expiry", json_object_new_string(when));
	json_object_object_add(ch, "notify_url", json_object_new_string(notify_url));
	if (token && *token)
		json_object_object_add(ch, "token", json_object_new_string(token));
	json_object_object_add(ch, "return_affected_field_values", json_object_new_boolean(1));
	json_object_object_add(ch, "notify_on_related_action", json_object_new_boolean(0));
	json_object_array_add(arr, ch);
	json_object_object_add(root, "watch", arr);
	char *s = xstrdup(json_compact(root));
	json_object_put(root);
	return s;
}

/* The channel id of a watch item, from a string or a number. */
static bool item_channel(struct json_object *it, uint64_t *id)
{
	struct json_object *v;
	int64_t i;
	char jerr[JSON_ERR_LEN];

	if (!json_object_object_get_ex(it, "channel_id", &v) || !v)
		return false;
	if (json_as_int64(v, "channel_id", &i, jerr) || i < 0)
		return false;
	*id = (uint64_t)i;
	return true;
}

/* Earliest channel_expiry among details.events[] (of channel_id). */
static bool granted_expiry(struct json_object *item, uint64_t channel_id, int64_t *expiry)
{
	struct json_object *details, *events;
	char jerr[JSON_ERR_LEN];
	bool found = false;

	if (json_get_obj(item, "details", JSON_OPTIONAL, &details, jerr) || !details)
		return false;
	if (json_get_arr(details, "events", JSON_OPTIONAL, &events, jerr) || !events)
		return false;
	for (size_t i = 0; i < json_object_array_length(events); i++) {
		struct json_object *ev = json_object_array_get_idx(events, i);
		const char *s = item_str(ev, "channel_expiry");
		uint64_t id;
		int64_t t;
		if (!s || ztime_parse(s, &t) != RC_OK)
			continue;
		if (item_channel(ev, &id) && id != channel_id)
			continue;
		if (!found || t < *expiry)
			*expiry = t;
		found = true;
	}
	return found;
}

static enum rc watch_set(struct zoho *z, const char *method, const char *what,
			 const char *module, uint64_t channel_id, int64_t *expiry)
{
	struct http_resp resp = {0};
	struct json_object *root = NULL, *item;
	char *body = NULL;
	enum rc rc;

	*expiry = 0;
	if (!module_ok(z, what, module))
		return RC_USAGE;
	if (!z->cfg->notify_url[0]) {
		set_err(z, "%s: [notify] url is not set", what);
		return RC_CONFIG;
	}
	/* A request past Zoho's maximum silently gets one hour: leave room
	 * for our clock running ahead of Zoho's. */
	long life = cfg_channel_asked(z->cfg);
	int64_t want = ztime_now() + life;
	body = zoho_watch_body(module, channel_id, z->cfg->notify_url, z->cfg->token, want);
	struct call c = {.what = what, .method = method, .path = "/crm/v6/actions/watch",
			 .body = body};
	rc = zoho_send(z, &c, &resp);
	if (rc)
		goto out;
	rc = parse_answer(z, what, &resp, &root);
	if (rc)
		goto out;
	rc = first_item(z, what, root, "watch", &item);
	if (rc)
		goto out;
	rc = item_ok(z, what, item, "SUCCESS");
	if (rc)
		goto out;
	if (!granted_expiry(item, channel_id, expiry)) {
		/* Not in the answer: ask for the channel's details. */
		struct zoho_channel ch = {0};
		rc = zoho_watch_get(z, channel_id, &ch);
		if (rc == RC_OK && (!ch.found || !ch.expiry)) {
			set_err(z, "%s: channel %" PRIu64 " has no expiry after subscribing", what,
				channel_id);
			rc = RC_ZOHO;
		}
		*expiry = ch.expiry;
		zoho_channel_free(&ch);
		if (rc)
			goto out;
	}
	if (*expiry < want - 600)
		log_warn("Zoho granted a shorter channel than asked for", "channel=%" PRIu64
			 " asked_s=%ld granted_s=%lld", channel_id, life,
			 (long long)(*expiry - ztime_now()));
out:
	json_object_put(root);
	http_resp_free(&resp);
	if (body) {
		/* The body holds the channel token. */
		explicit_bzero(body, strlen(body));
		free(body);
	}
	return rc;
}

enum rc zoho_watch_enable(struct zoho *z, const char *module, uint64_t channel_id,
			  int64_t *expiry)
{
	return watch_set(z, "POST", "watch enable", module, channel_id, expiry);
}

enum rc zoho_watch_update(struct zoho *z, const char *module, uint64_t channel_id,
			  int64_t *expiry)
{
	return watch_set(z, "PUT", "watch update", module, channel_id, expiry);
}

void zoho_channel_free(struct zoho_channel *ch)
{
	if (!ch)
		return;
	for (size_t i = 0; i < ch->nevents; i++)
		free(ch->events[i]);
	free(ch->events);
	free(ch->notify_url);
	free(ch->resource_name);
	memset(ch, 0, sizeof(*ch));
}

enum rc zoho_watch_get(struct zoho *z, uint64_t channel_id, struct zoho_channel *ch)
{
	const char *what = "watch get";
	struct http_resp resp = {0};
	struct json_object *root = NULL, *arr, *events;
	char path[96], jerr[JSON_ERR_LEN];
	enum rc rc;

	memset(ch, 0, sizeof(*ch));
	ch->channel_id = channel_id;
	snprintf(path, sizeof(path), "/crm/v6/actions/watch?channel_id=%" PRIu64, channel_id);
	struct call c = {.what = what, .path = path};
	rc = zoho_send(z, &c, &resp);
	if (rc == RC_NOTFOUND ||
	    (rc == RC_ZOHO && (is_code(resp.body, resp.len, "NOT_SUBSCRIBED") ||
			       is_code(resp.body, resp.len, "RESOURCE_NOT_FOUND")))) {
		rc = RC_OK; /* Zoho does not know the channel */
		goto out;
	}
	if (rc || resp.status == 204)
		goto out;
	rc = parse_answer(z, what, &resp, &root);
	if (rc)
		goto out;
	if (json_get_arr(root, "watch", JSON_OPTIONAL, &arr, jerr)) {
		rc = shape_err(z, what, jerr);
		goto out;
	}
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		struct json_object *it = json_object_array_get_idx(arr, i);
		uint64_t id;
		if (!item_channel(it, &id) || id != channel_id)
			continue;
		const char *exp = item_str(it, "channel_expiry");
		if (exp && ztime_parse(exp, &ch->expiry) != RC_OK) {
			set_err(z, "%s: bad channel_expiry '%.40s'", what, exp);
			rc = RC_BADINPUT;
			goto out;
		}
		const char *url = item_str(it, "notify_url");
		const char *res = item_str(it, "resource_name");
		ch->notify_url = url ? xstrdup(url) : NULL;
		ch->resource_name = res ? xstrdup(res) : NULL;
		if (json_get_arr(it, "events", JSON_OPTIONAL, &events, jerr) == RC_OK && events) {
			size_t n = json_object_array_length(events);
			ch->events = xcalloc(n ? n : 1, sizeof(*ch->events));
			for (size_t j = 0; j < n; j++) {
				struct json_object *e = json_object_array_get_idx(events, j);
				if (e && json_object_is_type(e, json_type_string))
					ch->events[ch->nevents++] = xstrdup(json_object_get_string(e));
			}
		}
		ch->found = true;
		break;
	}
out:
	json_object_put(root);
	http_resp_free(&resp);
	return rc;
}

enum rc zoho_watch_disable(struct zoho *z, uint64_t channel_id)
{
	const char *what = "watch disable";
	struct http_resp resp = {0};
	struct json_object *root = NULL, *item;
	char path[96];
	enum rc rc;

	snprintf(path, sizeof(path), "/crm/v6/actions/watch?channel_ids=%" PRIu64, channel_id);
	struct call c = {.what = what, .method = "DELETE", .path = path};
	rc = zoho_send(z, &c, &resp);
	if (rc == RC_ZOHO && is_code(resp.body, resp.len, "NOT_SUBSCRIBED"))
		rc = RC_NOTFOUND;
	if (rc || resp.status == 204)
		goto out;
	rc = parse_answer(z, what, &resp, &root);
	if (rc)
		goto out;
	rc = first_item(z, what, root, "watch", &item);
	if (rc)
		goto out;
	rc = item_ok(z, what, item, "SUCCESS");
out:
	json_object_put(root);
	http_resp_free(&resp);
	return rc;
}

/* ---- bulk read ---- */

static struct json_object *condition(const char *comparator, int64_t t)
{
	struct json_object *c = json_object_new_object();
	struct json_object *f = json_object_new_object();
	char when[ZTIME_LEN];

	json_object_object_add(f, "api_name", json_object_new_string("Modified_Time"));
	json_object_object_add(c, "field", f);
	json_object_object_add(c, "comparator", json_object_new_string(comparator));
	ztime_format(t, when);
	json_object_object_add(c, "value", json_object_new_string(when));
	return c;
}

char *zoho_bulk_body(const struct zoho_bulk_query *q)
{
	struct json_object *root = json_object_new_object();
	struct json_object *query = json_object_new_object();

	if (q->callback_url && q->callback_url[0]) {
		struct json_object *cb = json_object_new_object();
		json_object_object_add(cb, "url", json_object_new_string(q->callback_url));
		json_object_object_add(cb, "method", json_object_new_string("post"));
		json_object_object_add(root, "callback", cb);
	}
	if (q->page_token && q->page_token[0]) {
		/* v7+: the token carries the whole query. */
		json_object_object_add(query, "page_token", json_object_new_string(q->page_token));
	} else {
		struct json_object *mod = json_object_new_object();
		json_object_object_add(mod, "api_name", json_object_new_string(q->module));
		json_object_object_add(query, "module", mod);
		if (q->fields && q->nfields) {
			struct json_object *f = json_object_new_array();
			for (size_t i = 0; i < q->nfields; i++)
				json_object_array_add(f, json_object_new_string(q->fields[i]));
			json_object_object_add(query, "fields", f);
		}
		if (q->from && q->to) {
			struct json_object *crit = json_object_new_object();
			struct json_object *group = json_object_new_array();
			json_object_object_add(crit, "group_operator", json_object_new_string("and"));
			json_object_array_add(group, condition("greater_equal", q->from));
			json_object_array_add(group, condition("less_than", q->to));
			json_object_object_add(crit, "group", group);
			json_object_object_add(query, "criteria", crit);
		} else if (q->from) {
			json_object_object_add(query, "criteria", condition("greater_equal", q->from));
		} else if (q->to) {
			json_object_object_add(query, "criteria", condition("less_than", q->to));
		}
		json_object_object_add(query, "page", json_object_new_int(q->page > 0 ? q->page : 1));
	}
	json_object_object_add(root, "query", query);
	char *s = xstrdup(json_compact(root));
	json_object_put(root);
	return s;
}

enum zoho_bulk_state zoho_bulk_state_parse(const char *s)
{
	if (s && strcasecmp(s, "COMPLETED") == 0)
		return ZOHO_BULK_COMPLETED;
	if (s && strcasecmp(s, "FAILURE") == 0)
		return ZOHO_BULK_FAILED;
	/* ADDED, QUEUED, IN PROGRESS and anything new: still running. */
	return ZOHO_BULK_RUNNING;
}

enum rc zoho_bulk_create(struct zoho *z, const struct zoho_bulk_query *q, int64_t *job_id,
			 int64_t *created_time)
{
	const char *what = "bulk create";
	struct http_resp resp = {0};
	struct json_object *root = NULL, *item, *details;
	char *body = NULL, jerr[JSON_ERR_LEN];
	const char *ct;
	enum rc rc;

	*job_id = 0;
	*created_time = 0;
	if (!(q->page_token && q->page_token[0]) && !module_ok(z, what, q->module))
		return RC_USAGE;
	body = zoho_bulk_body(q);
	struct call c = {.what = what, .method = "POST", .path = "/crm/bulk/v6/read", .body = body};
	rc = zoho_send(z, &c, &resp);
	if (rc)
		goto out;
	rc = parse_answer(z, what, &resp, &root);
	if (rc)
		goto out;
	rc = first_item(z, what, root, "data", &item);
	if (rc)
		goto out;
	rc = item_ok(z, what, item, NULL);
	if (rc)
		goto out;
	if (json_get_obj(item, "details", JSON_REQUIRED, &details, jerr) ||
	    json_get_int64(details, "id", JSON_REQUIRED, job_id, jerr) ||
	    json_get_str(details, "created_time", JSON_OPTIONAL, &ct, jerr)) {
		rc = shape_err(z, what, jerr);
		goto out;
	}
	if (ct && ztime_parse(ct, created_time) != RC_OK) {
		set_err(z, "%s: bad created_time '%.40s'", what, ct);
		rc = RC_BADINPUT;
		goto out;
	}
	if (!ct) {
		/* Should not happen; our clock is the next best thing. */
		log_warn("bulk job without created_time; using the local clock",
			 "job=%" PRId64, *job_id);
		*created_time = ztime_now();
	}
	log_info("bulk job created", "job=%" PRId64 " page=%d module=%s", *job_id,
		 q->page > 0 ? q->page : 1, log_q(q->module ? q->module : ""));
out:
	json_object_put(root);
	http_resp_free(&resp);
	free(body);
	return rc;
}

void zoho_bulk_status_free(struct zoho_bulk_status *st)
{
	if (!st)
		return;
	free(st->state_text);
	free(st->download_url);
	free(st->next_page_token);
	free(st->error);
	memset(st, 0, sizeof(*st));
}

enum rc zoho_bulk_status(struct zoho *z, int64_t job_id, struct zoho_bulk_status *st)
{
	const char *what = "bulk status";
	struct http_resp resp = {0};
	struct json_object *root = NULL, *item, *result;
	const char *state, *ct, *url, *tok;
	char path[96], jerr[JSON_ERR_LEN];
	int64_t page = 0;
	enum rc rc;

	memset(st, 0, sizeof(*st));
	snprintf(path, sizeof(path), "/crm/bulk/v6/read/%" PRId64, job_id);
	struct call c = {.what = what, .path = path};
	rc = zoho_send(z, &c, &resp);
	if (rc)
		goto out;
	rc = parse_answer(z, what, &resp, &root);
	if (rc)
		goto out;
	rc = first_item(z, what, root, "data", &item);
	if (rc)
		goto out;
	if (json_get_str(item, "state", JSON_REQUIRED, &state, jerr) ||
	    json_get_str(item, "created_time", JSON_OPTIONAL, &ct, jerr) ||
	    json_get_obj(item, "result", JSON_OPTIONAL, &result, jerr)) {
		rc = shape_err(z, what, jerr);
		goto out;
	}
	st->state = zoho_bulk_state_parse(state);
	st->state_text = xstrdup(state);
	if (ct && ztime_parse(ct, &st->created_time) != RC_OK)
		st->created_time = 0;
	if (st->state == ZOHO_BULK_FAILED) {
		struct json_object *em = NULL;
		char detail[512] = "no error_message";
		if (result && json_object_object_get_ex(result, "error_message", &em) && em &&
		    json_object_is_type(em, json_type_object))
			format_error(em, detail, sizeof(detail));
		st->error = xstrdup(detail);
		goto out;
	}
	if (st->state != ZOHO_BULK_COMPLETED)
		goto out;
	if (!result) {
		rc = shape_err(z, what, "COMPLETED job without 'result'");
		goto out;
	}
	if (json_get_int64(result, "page", JSON_OPTIONAL, &page, jerr) ||
	    json_get_int64(result, "per_page", JSON_OPTIONAL, &st->per_page, jerr) ||
	    json_get_int64(result, "count", JSON_OPTIONAL, &st->count, jerr) ||
	    json_get_bool(result, "more_records", JSON_OPTIONAL, &st->more_records, jerr) ||
	    json_get_str(result, "download_url", JSON_REQUIRED, &url, jerr) ||
	    json_get_str(result, "next_page_token", JSON_OPTIONAL, &tok, jerr)) {
		rc = shape_err(z, what, jerr);
		goto out;
	}
	st->page = page > 0 && page < 1000000 ? (int)page : 0;
	st->download_url = xstrdup(url);
	st->next_page_token = tok ? xstrdup(tok) : NULL;
out:
	if (rc)
		zoho_bulk_status_free(st);
	json_object_put(root);
	http_resp_free(&resp);
	return rc;
}

enum rc zoho_bulk_download(struct zoho *z, const char *download_url, const char *dest_path,
			   int64_t *bytes)
{
	const char *what = "bulk download";
	struct http_resp resp = {0};
	enum rc rc;

	*bytes = 0;
	if (!download_url || !(download_url[0] == '/' || strncmp(download_url, "http", 4) == 0)) {
		set_err(z, "%s: unusable download_url '%.100s'", what,
			download_url ? download_url : "");
		return RC_BADINPUT;
	}
	struct call c = {
		.what = what,
		.path = download_url,
		.dest_path = dest_path,
		.max_bytes = (int64_t)z->cfg->max_unzipped + 1024 * 1024,
		.min_429_wait_ms = z->opts.download_429_ms,
	};
	rc = zoho_send(z, &c, &resp);
	if (rc == RC_OK)
		*bytes = resp.bytes;
	http_resp_free(&resp);
	return rc;
}

/* ---- records ---- */

long zoho_fetch_calls(size_t n, size_t nfields)
{
	size_t chunks = nfields <= ZOHO_MAX_FIELDS ? 1
						   : (nfields + ZOHO_JOIN_CHUNK - 1) / ZOHO_JOIN_CHUNK;
	return (long)(((n + ZOHO_MAX_IDS - 1) / ZOHO_MAX_IDS) * chunks);
}

/* "a,b,c" of ids; caller frees. */
static char *join_ids(const int64_t *ids, size_t n)
{
	struct buf b = {0};

	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s%" PRId64, i ? "," : "", ids[i]);
	return buf_steal(&b);
}

/* "a,b,c" of escaped field names; caller frees. */
static char *join_fields(const char *const *fields, size_t n)
{
	struct buf b = {0};

	for (size_t i = 0; i < n; i++) {
		char *esc = http_escape(fields[i]);
		buf_printf(&b, "%s%s", i ? "%2C" : "", esc);
		free(esc);
	}
	return buf_steal(&b);
}

enum rc zoho_get_records(struct zoho *z, const char *module, const int64_t *ids, size_t nids,
			 const char *const *fields, size_t nfields, struct json_object **records)
{
	const char *what = "get records";
	struct http_resp resp = {0};
	struct json_object *root = NULL, *data;
	char *idlist = NULL, *fieldlist = NULL, *path = NULL, jerr[JSON_ERR_LEN];
	enum rc rc;

	*records = NULL;
	if (!module_ok(z, what, module))
		return RC_USAGE;
	if (nids == 0) {
		*records = json_object_new_array();
		return RC_OK;
	}
	if (nids > ZOHO_MAX_IDS || nfields > ZOHO_MAX_FIELDS) {
		set_err(z, "%s: %zu ids and %zu fields asked; at most %d and %d per call", what,
			nids, nfields, ZOHO_MAX_IDS, ZOHO_MAX_FIELDS);
		return RC_INTERNAL;
	}
	idlist = join_ids(ids, nids);
	if (nfields) {
		fieldlist = join_fields(fields, nfields);
		path = xasprintf("/crm/v6/%s?ids=%s&fields=%s&converted=both", module, idlist,
				 fieldlist);
	} else {
		path = xasprintf("/crm/v6/%s?ids=%s&converted=both", module, idlist);
	}
	struct call c = {.what = what, .path = path};
	rc = send_json(z, &c, &resp, &root);
	if (rc)
		goto out;
	if (!root) {
		*records = json_object_new_array();
		goto out;
	}
	/* "Nothing" is a 204; a 200 without "data" is an answer we do not
	 * understand, not an empty one. */
	if (json_get_arr(root, "data", JSON_REQUIRED, &data, jerr)) {
		rc = shape_err(z, what, jerr);
		goto out;
	}
	rc = check_items(z, what, data, "record");
	if (rc)
		goto out;
	*records = json_object_get(data);
out:
	json_object_put(root);
	http_resp_free(&resp);
	free(idlist);
	free(fieldlist);
	free(path);
	return rc;
}

enum rc zoho_get_record(struct zoho *z, const char *module, int64_t id,
			struct json_object **record)
{
	const char *what = "get record";
	struct http_resp resp = {0};
	struct json_object *root = NULL, *item = NULL;
	char *path = NULL, jerr[JSON_ERR_LEN];
	int64_t got;
	enum rc rc;

	*record = NULL;
	if (!module_ok(z, what, module))
		return RC_USAGE;
	path = xasprintf("/crm/v6/%s/%" PRId64 "?converted=both", module, id);
	struct call c = {.what = what, .path = path};
	rc = send_json(z, &c, &resp, &root);
	/* Not there: 204, 404, or INVALID_DATA ("the id given seems to be
	 * invalid") - the caller settles the id as any id not returned. */
	if (rc == RC_NOTFOUND || (rc == RC_ZOHO && strstr(z->err, "INVALID_DATA"))) {
		rc = RC_OK;
		goto out;
	}
	if (rc || !root)
		goto out;
	rc = first_item(z, what, root, "data", &item);
	if (rc)
		goto out;
	if (json_get_int64(item, "id", JSON_REQUIRED, &got, jerr)) {
		rc = shape_err(z, what, jerr);
		goto out;
	}
	if (got != id) {
		set_err(z, "%s: asked for %" PRId64 ", Zoho answered %" PRId64, what, id, got);
		rc = RC_BADINPUT;
		goto out;
	}
	*record = json_object_get(item);
out:
	json_object_put(root);
	http_resp_free(&resp);
	free(path);
	return rc;
}

enum rc zoho_list_subform(struct zoho *z, const char *subform, const char *const *fields,
			  size_t nfields, int page, const char *page_token,
			  struct json_object **rows, bool *more_records, char **next_token)
{
	const char *what = "list subform rows";
	struct http_resp resp = {0};
	struct json_object *root = NULL, *data = NULL, *info = NULL;
	char *fieldlist = NULL, *path = NULL, jerr[JSON_ERR_LEN];
	const char *tok = NULL;
	enum rc rc;

	*rows = NULL;
	*more_records = false;
	*next_token = NULL;
	if (!module_ok(z, what, subform))
		return RC_USAGE;
	if (nfields == 0 || nfields > ZOHO_MAX_FIELDS) {
		set_err(z, "%s: %zu fields asked; 1 to %d per call", what, nfields,
			ZOHO_MAX_FIELDS);
		return RC_INTERNAL;
	}
	fieldlist = join_fields(fields, nfields);
	if (page_token && *page_token)
		path = xasprintf("/crm/v6/%s?fields=%s&sort_order=asc&per_page=%d&page_token=%s",
				 subform, fieldlist, ZOHO_LIST_PAGE, page_token);
	else
		path = xasprintf("/crm/v6/%s?fields=%s&sort_order=asc&per_page=%d&page=%d",
				 subform, fieldlist, ZOHO_LIST_PAGE, page > 0 ? page : 1);
	struct call c = {.what = what, .path = path};
	rc = send_json(z, &c, &resp, &root);
	if (rc)
		goto out;
	if (!root) {
		*rows = json_object_new_array();
		goto out;
	}
	if (json_get_arr(root, "data", JSON_REQUIRED, &data, jerr) ||
	    json_get_obj(root, "info", JSON_OPTIONAL, &info, jerr) ||
	    (info && json_get_bool(info, "more_records", JSON_OPTIONAL, more_records, jerr)) ||
	    (info && json_get_str(info, "next_page_token", JSON_OPTIONAL, &tok, jerr))) {
		rc = shape_err(z, what, jerr);
		goto out;
	}
	rc = check_items(z, what, data, "row");
	if (rc)
		goto out;
	/* It goes into the next URL as it is: URL-safe characters only. */
	if (tok && *tok && strlen(tok) < 1024 &&
	    strspn(tok, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.~") ==
		    strlen(tok))
		*next_token = xstrdup(tok);
	*rows = json_object_get(data);
out:
	json_object_put(root);
	http_resp_free(&resp);
	free(fieldlist);
	free(path);
	return rc;
}

static bool str_eq_null(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* One join round over ids: fetch every chunk of fields, merge by id. Records
 * that came back consistently go to out; those whose Modified_Time moved
 * between chunks are listed in retry (*nretry). */
static enum rc join_round(struct zoho *z, const char *module, const int64_t *ids, size_t nids,
			  const char *const *fields, size_t nfields, struct json_object *out,
			  int64_t *retry, size_t *nretry)
{
	size_t nchunks = (nfields + ZOHO_JOIN_CHUNK - 1) / ZOHO_JOIN_CHUNK;
	struct json_object *merged[ZOHO_MAX_IDS] = {0};
	char *mtime[ZOHO_MAX_IDS] = {0};
	unsigned seen[ZOHO_MAX_IDS] = {0};
	bool moved[ZOHO_MAX_IDS] = {0};
	const char *chunk[ZOHO_MAX_FIELDS];
	char jerr[JSON_ERR_LEN];
	enum rc rc = RC_OK;

	*nretry = 0;
	for (size_t k = 0; k < nchunks; k++) {
		struct json_object *recs = NULL;
		size_t n = 0;
		bool has_mt = false;
		for (size_t f = k * ZOHO_JOIN_CHUNK; f < nfields && n < ZOHO_JOIN_CHUNK; f++) {
			chunk[n++] = fields[f];
			has_mt = has_mt || strcmp(fields[f], "Modified_Time") == 0;
		}
		if (!has_mt)
			chunk[n++] = "Modified_Time";
		rc = zoho_get_records(z, module, ids, nids, chunk, n, &recs);
		if (rc)
			goto out;
		for (size_t i = 0; i < json_object_array_length(recs); i++) {
			struct json_object *r = json_object_array_get_idx(recs, i), *mt = NULL;
			int64_t id;
			size_t slot;
			if (json_get_int64(r, "id", JSON_REQUIRED, &id, jerr))
				continue; /* checked by zoho_get_records */
			for (slot = 0; slot < nids && ids[slot] != id; slot++)
				;
			if (slot == nids || seen[slot] != k)
				continue; /* not asked, or missing from an earlier chunk */
			seen[slot]++;
			json_object_object_get_ex(r, "Modified_Time", &mt);
			const char *m = mt ? json_object_get_string(mt) : NULL;
			if (k == 0) {
				merged[slot] = json_object_get(r);
				mtime[slot] = m ? xstrdup(m) : NULL;
				continue;
			}
			if (!str_eq_null(mtime[slot], m))
				moved[slot] = true;
			json_object_object_foreach(r, key, val)
			{
				json_object_object_add(merged[slot], key, json_object_get(val));
			}
		}
		json_object_put(recs);
	}
	for (size_t i = 0; i < nids; i++) {
		if (!merged[i] || seen[i] != nchunks)
			continue;
		if (moved[i]) {
			retry[(*nretry)++] = ids[i];
			continue;
		}
		json_object_array_add(out, json_object_get(merged[i]));
	}
out:
	for (size_t i = 0; i < nids; i++) {
		json_object_put(merged[i]);
		free(mtime[i]);
	}
	return rc;
}

enum rc zoho_get_records_all_fields(struct zoho *z, const char *module, const int64_t *ids,
				    size_t nids, const char *const *fields, size_t nfields,
				    struct json_object **records)
{
	int64_t pending[ZOHO_MAX_IDS], retry[ZOHO_MAX_IDS];
	size_t npending = nids, nretry = 0;
	struct json_object *out = NULL;
	enum rc rc = RC_OK;

	*records = NULL;
	if (nfields <= ZOHO_MAX_FIELDS)
		return zoho_get_records(z, module, ids, nids, fields, nfields, records);
	if (!module_ok(z, "get records", module))
		return RC_USAGE;
	if (nids > ZOHO_MAX_IDS) {
		set_err(z, "get records: %zu ids asked; at most %d per call", nids, ZOHO_MAX_IDS);
		return RC_INTERNAL;
	}
	memcpy(pending, ids, nids * sizeof(*ids));
	out = json_object_new_array();
	for (int round = 0; round < ZOHO_JOIN_ROUNDS && npending; round++) {
		rc = join_round(z, module, pending, npending, fields, nfields, out, retry, &nretry);
		if (rc)
			goto out;
		memcpy(pending, retry, nretry * sizeof(*retry));
		npending = nretry;
	}
	if (npending)
		log_warn("records kept changing while being read; left out", "count=%zu first=%" PRId64,
			 npending, pending[0]);
	*records = out;
	out = NULL;
out:
	json_object_put(out);
	return rc;
}

enum rc zoho_list_modified(struct zoho *z, const char *module, int64_t since,
			   struct zoho_listed **items, size_t *n, bool *more_records, int64_t *date)
{
	const char *what = "list changes";
	struct http_resp resp = {0};
	struct json_object *root = NULL, *data, *info;
	struct zoho_listed *list = NULL;
	char *path = NULL, header[80], when[ZTIME_LEN], jerr[JSON_ERR_LEN];
	size_t count = 0;
	enum rc rc;

	*items = NULL;
	*n = 0;
	*more_records = false;
	*date = 0;
	if (!module_ok(z, what, module))
		return RC_USAGE;
	path = xasprintf("/crm/v6/%s?fields=id%%2CModified_Time&sort_by=Modified_Time"
			 "&sort_order=asc&per_page=%d&converted=both", module, ZOHO_LIST_PAGE);
	ztime_format(since, when);
	snprintf(header, sizeof(header), "If-Modified-Since: %s", when);
	struct call c = {.what = what, .path = path, .header = header};
	rc = zoho_send(z, &c, &resp);
	if (rc)
		goto out;
	*date = resp.date;
	if (resp.status == 204 || resp.status == 304 || resp.len == 0)
		goto out;
	rc = parse_answer(z, what, &resp, &root);
	if (rc)
		goto out;
	if (json_get_arr(root, "data", JSON_REQUIRED, &data, jerr) ||
	    json_get_obj(root, "info", JSON_OPTIONAL, &info, jerr) ||
	    (info && json_get_bool(info, "more_records", JSON_OPTIONAL, more_records, jerr))) {
		rc = shape_err(z, what, jerr);
		goto out;
	}
	size_t len = json_object_array_length(data);
	list = xcalloc(len ? len : 1, sizeof(*list));
	for (size_t i = 0; i < len; i++) {
		struct json_object *r = json_object_array_get_idx(data, i);
		const char *mt;
		if (json_as_obj(r, "record", jerr) ||
		    json_get_int64(r, "id", JSON_REQUIRED, &list[count].id, jerr) ||
		    json_get_str(r, "Modified_Time", JSON_REQUIRED, &mt, jerr)) {
			rc = shape_err(z, what, jerr);
			goto out;
		}
		if (ztime_parse(mt, &list[count].modified) != RC_OK) {
			set_err(z, "%s: bad Modified_Time '%.40s'", what, mt);
			rc = RC_BADINPUT;
			goto out;
		}
		count++;
	}
	*items = list;
	*n = count;
	list = NULL;
out:
	free(list);
	free(path);
	json_object_put(root);
	http_resp_free(&resp);
	return rc;
}

enum rc zoho_deleted_since(struct zoho *z, const char *module, int64_t since, int page,
			   struct zoho_deleted **items, size_t *n, bool *more_records)
{
	const char *what = "deleted records";
	struct http_resp resp = {0};
	struct json_object *root = NULL, *data, *info;
	struct zoho_deleted *list = NULL;
	char *path = NULL, header[80], when[ZTIME_LEN], jerr[JSON_ERR_LEN];
	size_t count = 0;
	enum rc rc;

	*items = NULL;
	*n = 0;
	*more_records = false;
	if (!module_ok(z, what, module))
		return RC_USAGE;
	path = xasprintf("/crm/v6/%s/deleted?type=all&page=%d&per_page=200", module,
			 page > 0 ? page : 1);
	ztime_format(since, when);
	snprintf(header, sizeof(header), "If-Modified-Since: %s", when);
	struct call c = {.what = what, .path = path, .header = since > 0 ? header : NULL};
	rc = zoho_send(z, &c, &resp);
	if (rc || resp.status == 204 || resp.status == 304 || resp.len == 0)
		goto out;
	rc = parse_answer(z, what, &resp, &root);
	if (rc)
		goto out;
	/* As for records: a 200 without "data" would silently hide deletions. */
	if (json_get_arr(root, "data", JSON_REQUIRED, &data, jerr) ||
	    json_get_obj(root, "info", JSON_OPTIONAL, &info, jerr) ||
	    (info && json_get_bool(info, "more_records", JSON_OPTIONAL, more_records, jerr))) {
		rc = shape_err(z, what, jerr);
		goto out;
	}
	size_t len = data ? json_object_array_length(data) : 0;
	list = xcalloc(len ? len : 1, sizeof(*list));
	for (size_t i = 0; i < len; i++) {
		struct json_object *e = json_object_array_get_idx(data, i);
		const char *dt, *type;
		if (json_as_obj(e, "deleted entry", jerr) ||
		    json_get_int64(e, "id", JSON_REQUIRED, &list[count].id, jerr) ||
		    json_get_str(e, "deleted_time", JSON_REQUIRED, &dt, jerr) ||
		    json_get_str(e, "type", JSON_OPTIONAL, &type, jerr)) {
			rc = shape_err(z, what, jerr);
			goto out;
		}
		if (ztime_parse(dt, &list[count].deleted_time) != RC_OK) {
			set_err(z, "%s: bad deleted_time '%.40s'", what, dt);
			rc = RC_BADINPUT;
			goto out;
		}
		snprintf(list[count].type, sizeof(list[count].type), "%s", type ? type : "");
		count++;
	}
	*items = list;
	*n = count;
	list = NULL;
out:
	free(list);
	free(path);
	json_object_put(root);
	http_resp_free(&resp);
	return rc;
}

/* GET path (with header, may be NULL) and the answer's array `key`: *arr
 * NULL (RC_OK) when Zoho answered 204, 304 or nothing; *root holds it (the
 * caller puts *root and frees resp). */
static enum rc get_array(struct zoho *z, const char *what, const char *path, const char *header,
			 const char *key, bool required, struct http_resp *resp,
			 struct json_object **root, struct json_object **arr)
{
	char jerr[JSON_ERR_LEN];
	struct call c = {.what = what, .path = path, .header = header};
	enum rc rc = zoho_send(z, &c, resp);

	*arr = NULL;
	if (rc || resp->status == 204 || resp->status == 304 || resp->len == 0)
		return rc;
	rc = parse_answer(z, what, resp, root);
	if (rc)
		return rc;
	if (json_get_arr(*root, key, required ? JSON_REQUIRED : JSON_OPTIONAL, arr, jerr))
		return shape_err(z, what, jerr);
	return RC_OK;
}

void zoho_fields_free(struct zoho_field *fields, size_t n)
{
	for (size_t i = 0; fields && i < n; i++) {
		free(fields[i].api_name);
		free(fields[i].data_type);
		free(fields[i].json_type);
		free(fields[i].return_type);
		free(fields[i].textarea_type);
	}
	free(fields);
}

enum rc zoho_fields(struct zoho *z, const char *module, struct zoho_field **fields, size_t *n)
{
	const char *what = "fields metadata";
	struct http_resp resp = {0};
	struct json_object *root = NULL, *arr;
	struct zoho_field *list = NULL;
	char *path = NULL, jerr[JSON_ERR_LEN];
	size_t count = 0;
	enum rc rc;

	*fields = NULL;
	*n = 0;
	if (!module_ok(z, what, module))
		return RC_USAGE;
	path = xasprintf("/crm/v6/settings/fields?module=%s", module);
	rc = get_array(z, what, path, NULL, "fields", false, &resp, &root, &arr);
	if (rc)
		goto out;
	size_t len = arr ? json_object_array_length(arr) : 0;
	list = xcalloc(len ? len : 1, sizeof(*list));
	for (size_t i = 0; i < len; i++) {
		struct json_object *f = json_object_array_get_idx(arr, i), *formula, *ta;
		const char *api, *dt, *jt, *ret = NULL, *tt = NULL;
		int64_t id;
		if (json_as_obj(f, "field", jerr) ||
		    json_get_str(f, "api_name", JSON_REQUIRED, &api, jerr) ||
		    json_get_str(f, "data_type", JSON_OPTIONAL, &dt, jerr) ||
		    json_get_str(f, "json_type", JSON_OPTIONAL, &jt, jerr) ||
		    json_get_int64(f, "id", JSON_OPTIONAL, &id, jerr) ||
		    json_get_obj(f, "formula", JSON_OPTIONAL, &formula, jerr) ||
		    (formula && json_get_str(formula, "return_type", JSON_OPTIONAL, &ret, jerr)) ||
		    json_get_obj(f, "textarea", JSON_OPTIONAL, &ta, jerr) ||
		    (ta && json_get_str(ta, "type", JSON_OPTIONAL, &tt, jerr))) {
			rc = shape_err(z, what, jerr);
			goto out;
		}
		list[count].api_name = xstrdup(api);
		list[count].data_type = xstrdup(dt ? dt : "text");
		list[count].json_type = jt ? xstrdup(jt) : NULL;
		list[count].id = id;
		list[count].return_type = ret ? xstrdup(ret) : NULL;
		list[count].textarea_type = tt ? xstrdup(tt) : NULL;
		count++;
	}
	*fields = list;
	*n = count;
	list = NULL;
out:
	zoho_fields_free(list, count);
	free(path);
	json_object_put(root);
	http_resp_free(&resp);
	return rc;
}

enum rc zoho_rich_text(struct zoho *z, const char *module, int64_t id,
		       const char *const *fields, size_t nfields, struct json_object **record)
{
	const char *what = "rich text";
	struct http_resp resp = {0};
	struct json_object *root = NULL, *data;
	char *path = NULL, *list = NULL, jerr[JSON_ERR_LEN];
	enum rc rc;

	*record = NULL;
	if (!module_ok(z, what, module))
		return RC_USAGE;
	list = join_fields(fields, nfields);
	path = xasprintf("/crm/v6/%s/%" PRId64 "/actions/fetch_full_data%s%s", module, id,
			 nfields ? "?fields=" : "", nfields ? list : "");
	rc = get_array(z, what, path, NULL, "data", true, &resp, &root, &data);
	if (rc || !data)
		goto out;
	struct json_object *r = json_object_array_length(data) ? json_object_array_get_idx(data, 0)
								: NULL;
	if (r && json_as_obj(r, "record", jerr)) {
		rc = shape_err(z, what, jerr);
		goto out;
	}
	*record = r ? json_object_get(r) : NULL;
out:
	free(list);
	free(path);
	json_object_put(root);
	http_resp_free(&resp);
	return rc;
}

enum rc zoho_users(struct zoho *z, int64_t since, int page, struct json_object **users,
		   bool *more_records)
{
	const char *what = "users";
	struct http_resp resp = {0};
	struct json_object *root = NULL, *arr, *info;
	char *path = NULL, header[80], when[ZTIME_LEN], jerr[JSON_ERR_LEN];
	enum rc rc;

	*users = NULL;
	*more_records = false;
	path = xasprintf("/crm/v6/users?type=AllUsers&page=%d&per_page=200", page > 0 ? page : 1);
	ztime_format(since, when);
	snprintf(header, sizeof(header), "If-Modified-Since: %s", when);
	rc = get_array(z, what, path, since > 0 ? header : NULL, "users", true, &resp, &root, &arr);
	if (rc)
		goto out;
	if (!arr) {
		*users = json_object_new_array();
		goto out;
	}
	if (json_get_obj(root, "info", JSON_OPTIONAL, &info, jerr) ||
	    (info && json_get_bool(info, "more_records", JSON_OPTIONAL, more_records, jerr))) {
		rc = shape_err(z, what, jerr);
		goto out;
	}
	*users = json_object_get(arr);
out:
	free(path);
	json_object_put(root);
	http_resp_free(&resp);
	return rc;
}

enum rc zoho_record_count(struct zoho *z, const char *module, int64_t *count)
{
	const char *what = "record count";
	struct http_resp resp = {0};
	struct json_object *root = NULL;
	char *path = NULL, jerr[JSON_ERR_LEN];
	enum rc rc;

	*count = 0;
	if (!module_ok(z, what, module))
		return RC_USAGE;
	path = xasprintf("/crm/v6/%s/actions/count", module);
	struct call c = {.what = what, .path = path};
	rc = zoho_send(z, &c, &resp);
	if (rc || resp.status == 204 || resp.len == 0)
		goto out;
	rc = parse_answer(z, what, &resp, &root);
	if (rc)
		goto out;
	if (json_get_int64(root, "count", JSON_REQUIRED, count, jerr))
		rc = shape_err(z, what, jerr);
out:
	free(path);
	json_object_put(root);
	http_resp_free(&resp);
	return rc;
}
