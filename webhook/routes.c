/* routes.c — the webhook's routes: POST /notify, POST /bulk-callback,
 * GET /healthz, GET /metrics. Logic lives in common/ (notification, inbox,
 * spool, metrics); this file maps requests and results to HTTP. */
#include "ctcmp.h"
#include "fetch.h"
#include "inbox.h"
#include "log.h"
#include "notification.h"
#include "schemasync.h"
#include "spool.h"
#include "status.h"
#include "webhook.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bytes of a bulk callback body: Zoho's is the job-details envelope, about
 * 1 KiB. The route is unauthenticated, so keep what a caller can store small. */
#define WEBHOOK_MAX_CALLBACK (64 * 1024)
/* Seconds a notification's server_time may be ahead of our clock. */
#define WEBHOOK_MAX_CLOCK_SKEW 86400

struct reply {
	int status;
	const char *content_type;
	char *body;      /* heap, may be NULL */
	const char *allow;
};

static const char *status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

/* A JSON error body {"error": code, "message": text}. */
static void reply_error(struct reply *r, int status, const char *code, const char *message)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(code));
	json_object_object_add(o, "message", json_object_new_string(message));
	free(r->body);
	r->status = status;
	r->content_type = "application/json";
	r->body = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static void reply_ok_json(struct reply *r, const char *json)
{
	free(r->body);
	r->status = 200;
	r->content_type = "application/json";
	r->body = xstrdup(json);
}

static void send_reply(FCGX_Request *req, const struct reply *r)
{
	FCGX_FPrintF(req->out, "Status: %d %s\r\n", r->status, status_text(r->status));
	if (r->allow)
		FCGX_FPrintF(req->out, "Allow: %s\r\n", r->allow);
	FCGX_FPrintF(req->out, "Content-Type: %s\r\nCache-Control: no-store\r\n\r\n",
		     r->content_type ? r->content_type : "text/plain");
	if (r->body)
		FCGX_PutStr(r->body, (int)strlen(r->body), req->out);
}

/* The route is the last path segment, so nginx may mount us anywhere. */
static enum metrics_route route_of(FCGX_Request *req)
{
	const char *uri = FCGX_GetParam("DOCUMENT_URI", req->envp);
	if (!uri)
		uri = FCGX_GetParam("SCRIPT_NAME", req->envp);
	if (!uri)
		uri = FCGX_GetParam("REQUEST_URI", req->envp);
	if (!uri)
		return ROUTE_OTHER;
	size_t n = strcspn(uri, "?");
	while (n > 1 && uri[n - 1] == '/')
		n--;
	const char *slash = NULL;
	for (size_t i = 0; i < n; i++) {
		if (uri[i] == '/')
			slash = uri + i;
	}
	if (!slash)
		return ROUTE_OTHER;
	size_t len = n - (size_t)(slash + 1 - uri);
	const char *seg = slash + 1;
#define IS(s) (len == strlen(s) && !memcmp(seg, s, len))
	if (IS("notify"))
		return ROUTE_NOTIFY;
	if (IS("bulk-callback"))
		return ROUTE_BULK_CALLBACK;
	if (IS("healthz"))
		return ROUTE_HEALTHZ;
	if (IS("metrics"))
		return ROUTE_METRICS;
#undef IS
	return ROUTE_OTHER;
}

static bool method_is(FCGX_Request *req, const char *m)
{
	const char *method = FCGX_GetParam("REQUEST_METHOD", req->envp);
	return method && !strcmp(method, m);
}

/* Read the whole body, at most max bytes. Returns 0, or 413 when larger,
 * or 400 when the stream ends before CONTENT_LENGTH. */
static int read_body(FCGX_Request *req, size_t max, char **body, size_t *len)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", req->envp);
	size_t want = 0, cap, got = 0;
	char *buf;

	*body = NULL;
	*len = 0;
	if (cl && *cl) {
		char *end;
		unsigned long long v = strtoull(cl, &end, 10);
		if (*end || v > max)
			return 413;
		want = (size_t)v;
	}
	cap = (want ? want : 4096) + 1;
	buf = xmalloc(cap);
	for (;;) {
		if (got + 1 >= cap) {
			if (cap > max + 1) {
				free(buf);
				return 413;
			}
			cap = cap * 2 > max + 2 ? max + 2 : cap * 2;
			buf = xrealloc(buf, cap);
		}
		int n = FCGX_GetStr(buf + got, (int)(cap - 1 - got), req->in);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got > max) {
			free(buf);
			return 413;
		}
	}
	if (want && got < want) {
		free(buf);
		return 400;
	}
	buf[got] = '\0';
	*body = buf;
	*len = got;
	return 0;
}

bool webhook_db(struct worker *w)
{
	const struct cfg *cfg = w->app->cfg;

	if (!w->db) {
		if (db_connect(cfg->conninfo, cfg->schema, &w->db) == RC_OK)
			return true;
		log_warn("database unreachable", "err=%s", log_q(db_error(w->db)));
		return false;
	}
	if (db_ensure(w->db) != RC_OK) {
		log_warn("database unreachable", "err=%s", log_q(db_error(w->db)));
		return false;
	}
	return true;
}

/* A notification's checks before the database. NULL with r set when it is
 * refused; else the notification, and its body in *body (caller frees). */
static struct notification *notify_check(struct worker *w, FCGX_Request *req, struct reply *r,
					 char **body, size_t *len)
{
	const struct cfg *cfg = w->app->cfg;
	struct notification *n = NULL;
	char err[256];
	enum rc rc;

	*body = NULL;
	*len = 0;
	if (!method_is(req, "POST")) {
		r->allow = "POST";
		reply_error(r, 405, "method_not_allowed", "use POST");
		return NULL;
	}
	int st = read_body(req, (size_t)cfg->max_body, body, len);
	if (st == 413) {
		reply_error(r, 413, "too_large", "body larger than [webhook] max_body");
		goto refused;
	}
	if (st) {
		reply_error(r, 400, "bad_request", "body shorter than Content-Length");
		goto refused;
	}
	rc = notification_parse(*body, *len, (size_t)cfg->max_ids, &n, err, sizeof(err));
	if (rc == RC_TOOBIG) {
		reply_error(r, 413, "too_many_ids", err);
		goto refused;
	}
	if (rc) {
		reply_error(r, 400, "bad_request", err);
		goto refused;
	}
	/* Constant time (common/ctcmp.c): no timing hint of a partial match. */
	if (!ct_str_equal(n->token, cfg->token)) {
		log_warn("notification refused: wrong token", "channel=%llu",
			 (unsigned long long)n->channel_id);
		reply_error(r, 403, "forbidden", "token does not match");
		goto refused;
	}
	int mi = cfg_module_index(cfg, n->module);
	if (mi < 0) {
		reply_error(r, 403, "forbidden", "module is not configured");
		goto refused;
	}
	if (n->channel_id != cfg_channel_id(cfg, (size_t)mi)) {
		log_warn("notification refused: unknown channel", "module=%s channel=%llu",
			 log_q(n->module), (unsigned long long)n->channel_id);
		reply_error(r, 403, "forbidden", "channel_id is not one of ours for this module");
		goto refused;
	}
	/* Zoho stamps server_time when it sends. One far in the future would
	 * make a delete's tombstone outlive every later edit of the record. */
	if (n->server_time_ms / 1000 > (int64_t)time(NULL) + WEBHOOK_MAX_CLOCK_SKEW) {
		log_warn("notification refused: server_time in the future", "server_time=%lld",
			 (long long)n->server_time_ms);
		reply_error(r, 400, "bad_request", "server_time is more than a day in the future");
		goto refused;
	}
	/* From here on the body is stored (inbox, spool): without the token,
	 * which would let its readers forge notifications. */
	size_t clen = 0;
	char *clean = notification_strip_token(*body, *len, &clen);
	free(*body);
	*body = clean;
	*len = clen;
	return n;
refused:
	notification_free(n);
	free(*body);
	*body = NULL;
	return NULL;
}

/* The answer to a recorded notification; queues the fetch of its records. */
static void notify_answer(struct worker *w, const struct notification *n,
			  enum inbox_outcome outcome, struct reply *r)
{
	struct metrics *m = w->app->metrics;

	switch (outcome) {
	case INBOX_APPLIED:
		atomic_fetch_add(&m->inbox_applied, 1);
		if (n->op != NOTIF_DELETE && w->app->cfg->fetch) {
			int mi = cfg_module_index(w->app->cfg, n->module);
			if (mi >= 0)
				w->fetch_wanted[mi] = true;
		}
		reply_ok_json(r, "{\"status\":\"applied\"}");
		break;
	case INBOX_PENDING:
		atomic_fetch_add(&m->inbox_pending, 1);
		reply_ok_json(r, "{\"status\":\"pending\"}");
		break;
	case INBOX_DUPLICATE:
		atomic_fetch_add(&m->inbox_duplicates, 1);
		reply_ok_json(r, "{\"status\":\"duplicate\"}");
		break;
	}
	log_debug("notification recorded", "module=%s op=%s ids=%zu outcome=%d", log_q(n->module),
		  notif_op_str(n->op), n->nids, (int)outcome);
}

/* Record one notification on its own: into the inbox; else, with
 * PostgreSQL down, into the spool (answered 200: Zoho must not drop it,
 * it is replayed when the database is back); else, when PostgreSQL
 * refuses it, into the spool's failed/ for an operator (a 500). */
static void notify_store(struct worker *w, const struct notification *n, const char *body,
			 size_t len, struct reply *r)
{
	const struct cfg *cfg = w->app->cfg;
	struct metrics *m = w->app->metrics;
	enum inbox_outcome outcome = INBOX_APPLIED;
	enum rc rc;

	rc = webhook_db(w) ? inbox_record(w->db, n, body, len, "webhook", &outcome) : RC_DB;
	if (rc == RC_DB && w->db && !db_alive(w->db) && webhook_db(w)) {
		/* The server restarted under an idle connection: one more try. */
		rc = inbox_record(w->db, n, body, len, "webhook", &outcome);
	}
	if (rc && w->db && !db_transient(w->db)) {
		/* Not an outage: retrying cannot help, so the body is kept aside
		 * for an operator and Zoho is told it failed. */
		atomic_fetch_add(&m->db_errors, 1);
		log_error("notification cannot be applied; kept in the spool's failed/", "err=%s",
			  log_q(db_error(w->db)));
		if (spool_write_failed(cfg->spool_dir, body, len) != RC_OK)
			log_error("and it could not be kept", "");
		reply_error(r, 500, "internal", "the notification could not be stored");
		return;
	}
	if (rc) {
		atomic_fetch_add(&m->db_errors, 1);
		if (w->db)
			log_warn("database unavailable; spooling", "err=%s", log_q(db_error(w->db)));
		if (spool_write(cfg->spool_dir, body, len) != RC_OK) {
			reply_error(r, 503, "unavailable", "database down and spool not writable");
			return;
		}
		atomic_fetch_add(&m->spooled, 1);
		log_info("notification spooled", "module=%s op=%s ids=%zu", log_q(n->module),
			 notif_op_str(n->op), n->nids);
		reply_ok_json(r, "{\"status\":\"spooled\"}");
		return;
	}
	notify_answer(w, n, outcome, r);
}

/* Zoho's bulk job callback: stored as a hint for the waiting batch program,
 * which still polls the job status as the source of truth. */
static void handle_bulk_callback(struct worker *w, FCGX_Request *req, struct reply *r)
{
	char *body = NULL;
	size_t len = 0;
	json_object *root = NULL, *data, *item, *v;
	const char *job = NULL, *state = NULL;

	if (!method_is(req, "POST")) {
		r->allow = "POST";
		reply_error(r, 405, "method_not_allowed", "use POST");
		return;
	}
	int st = read_body(req, WEBHOOK_MAX_CALLBACK, &body, &len);
	if (st) {
		reply_error(r, st, st == 413 ? "too_large" : "bad_request",
			    st == 413 ? "body too large" : "truncated body");
		goto out;
	}
	if (notification_utf8_invalid_at(body, len) < len || memchr(body, '\0', len)) {
		/* PostgreSQL would refuse it as text: a client error, not a 503. */
		reply_error(r, 400, "bad_request", "body is not valid UTF-8 text");
		goto out;
	}
	json_tokener *tok = json_tokener_new_ex(NOTIF_MAX_DEPTH);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, body, (int)len);
	json_tokener_free(tok);
	if (!root || !json_object_object_get_ex(root, "data", &data) ||
	    !json_object_is_type(data, json_type_array) || json_object_array_length(data) < 1 ||
	    !(item = json_object_array_get_idx(data, 0)) ||
	    !json_object_object_get_ex(item, "id", &v) || !json_object_is_type(v, json_type_string)) {
		reply_error(r, 400, "bad_request", "expected {\"data\":[{\"id\":…,\"state\":…}]}");
		goto out;
	}
	job = json_object_get_string(v);
	int64_t idnum;
	if (notification_parse_id(job, &idnum)) {
		reply_error(r, 400, "bad_request", "data[0].id: expected a digit string");
		goto out;
	}
	if (json_object_object_get_ex(item, "state", &v) && json_object_is_type(v, json_type_string))
		state = json_object_get_string(v);
	if (!webhook_db(w)) {
		reply_error(r, 503, "unavailable", "database unreachable");
		goto out;
	}
	const char *p[3] = {job, state, body};
	if (db_prepared(w->db, "bulk_callback",
			"INSERT INTO bulk_callbacks (job_id, state, raw) VALUES ($1, $2, $3)"
			" ON CONFLICT (job_id) DO UPDATE SET state = excluded.state,"
			" raw = excluded.raw, received_at = now()",
			3, p, NULL) != RC_OK) {
		log_warn("bulk callback not stored", "err=%s", log_q(db_error(w->db)));
		reply_error(r, 503, "unavailable", "database error");
		goto out;
	}
	log_info("bulk callback", "job=%s state=%s", log_q(job), log_q(state ? state : ""));
	reply_ok_json(r, "{\"status\":\"ok\"}");
out:
	json_object_put(root);
	free(body);
}

static void handle_healthz(struct worker *w, FCGX_Request *req, struct reply *r)
{
	int version = 0;

	if (!method_is(req, "GET") && !method_is(req, "HEAD")) {
		r->allow = "GET, HEAD";
		reply_error(r, 405, "method_not_allowed", "use GET");
		return;
	}
	if (!webhook_db(w) || db_schema_version(w->db, &version) != RC_OK) {
		reply_error(r, 503, "unavailable", "database unreachable");
		return;
	}
	if (version == 0) {
		/* Reachable but never migrated: every notification is spooled. */
		reply_error(r, 503, "unavailable", "schema not migrated yet: run any batch program");
		return;
	}
	free(r->body);
	r->status = 200;
	r->content_type = "application/json";
	r->body = xasprintf("{\"status\":\"ok\",\"schema_version\":%d,\"version\":\"%s\"}",
			    version, ZCRM_VERSION);
}

static void handle_metrics(struct worker *w, FCGX_Request *req, struct reply *r)
{
	if (!method_is(req, "GET")) {
		r->allow = "GET";
		reply_error(r, 405, "method_not_allowed", "use GET");
		return;
	}
	free(r->body);
	r->status = 200;
	r->content_type = "text/plain; version=0.0.4";
	r->body = metrics_render(w->app->metrics, spool_count(w->app->cfg->spool_dir));
	/* The data problems PostgreSQL holds (bad cells, columns an export
	 * lacked), shared by every host; absent while it cannot be read. */
	char *data = NULL;
	char *labels = xasprintf("webhook=\"%s\",", w->app->metrics->webhook);
	if (webhook_db(w) && status_metrics(w->db, labels, &data) == RC_OK) {
		char *both = xasprintf("%s%s", r->body, data);
		free(r->body);
		r->body = both;
	} else {
		log_debug("data metrics left out", "err=%s", log_q(w->db ? db_error(w->db) : ""));
	}
	free(data);
	free(labels);
}

/* The log's req: nginx's $request_id when the snippet passes it
 * (fastcgi_param REQUEST_ID: 32 hex digits), so a webhook line and nginx's
 * line of the same request can be matched; else <thread>-<count>. */
static void set_request_id(struct worker *w, char *id, size_t cap, const char *from_nginx)
{
	size_t n = from_nginx ? strspn(from_nginx, "0123456789abcdef") : 0;

	w->nrequests++;
	if (n > 0 && n < cap && from_nginx[n] == '\0')
		memcpy(id, from_nginx, n + 1);
	else
		snprintf(id, cap, "%d-%lu", w->index, w->nrequests);
}

/* One request of those a worker took together (webhook_handle). */
struct slot {
	FCGX_Request *req;
	enum metrics_route route;
	struct timespec t0;
	char request_id[40];
	struct reply r;
	struct notification *n;  /* a notification waiting for the batch */
	char *body;
	size_t len;
};

/* Record the waiting notifications of slots (idx: which) in one go
 * (inbox_record_batch); on any failure one by one, which spools them while
 * PostgreSQL is down and sets aside only the one it refuses. */
static void store_batch(struct worker *w, struct slot *slots, const size_t *idx, size_t n)
{
	struct inbox_item items[WEBHOOK_BATCH_MAX];
	enum rc rc;

	for (size_t k = 0; k < n; k++) {
		const struct slot *s = &slots[idx[k]];
		items[k] = (struct inbox_item){s->n, s->body, s->len, INBOX_DUPLICATE};
	}
	log_set_context(NULL, NULL);
	rc = webhook_db(w) ? inbox_record_batch(w->db, items, n, "webhook") : RC_DB;
	if (rc == RC_DB && w->db && !db_alive(w->db) && webhook_db(w)) {
		/* The server restarted under an idle connection: one more try. */
		rc = inbox_record_batch(w->db, items, n, "webhook");
	}
	if (rc)
		log_info("notifications not recorded together; one by one", "count=%zu err=%s", n,
			 log_q(w->db ? db_error(w->db) : "no connection"));
	else {
		atomic_fetch_add(&w->app->metrics->batches, 1);
		atomic_fetch_add(&w->app->metrics->batched, (unsigned long)n);
	}
	for (size_t k = 0; k < n; k++) {
		struct slot *s = &slots[idx[k]];
		log_set_context("req", s->request_id);
		if (rc)
			notify_store(w, s->n, s->body, s->len, &s->r);
		else
			notify_answer(w, s->n, items[k].outcome, &s->r);
	}
}

void webhook_handle(struct worker *w, FCGX_Request *const *reqs, size_t n)
{
	struct slot slots[WEBHOOK_BATCH_MAX];
	size_t batch[WEBHOOK_BATCH_MAX], nbatch = 0;

	for (size_t i = 0; i < n && i < WEBHOOK_BATCH_MAX; i++) {
		struct slot *s = &slots[i];
		memset(s, 0, sizeof(*s));
		s->req = reqs[i];
		s->r = (struct reply){500, "text/plain", NULL, NULL};
		clock_gettime(CLOCK_MONOTONIC, &s->t0);
		set_request_id(w, s->request_id, sizeof(s->request_id),
			       FCGX_GetParam("REQUEST_ID", s->req->envp));
		log_set_context("req", s->request_id);
		s->route = route_of(s->req);
		switch (s->route) {
		case ROUTE_NOTIFY:
			s->n = notify_check(w, s->req, &s->r, &s->body, &s->len);
			if (s->n && inbox_batchable(s->n))
				batch[nbatch++] = i;
			else if (s->n)
				notify_store(w, s->n, s->body, s->len, &s->r);
			break;
		case ROUTE_BULK_CALLBACK:
			handle_bulk_callback(w, s->req, &s->r);
			break;
		case ROUTE_HEALTHZ:
			handle_healthz(w, s->req, &s->r);
			break;
		case ROUTE_METRICS:
			handle_metrics(w, s->req, &s->r);
			break;
		default:
			reply_error(&s->r, 404, "not_found", "no such route");
			break;
		}
	}
	if (nbatch == 1) {
		struct slot *s = &slots[batch[0]];
		log_set_context("req", s->request_id);
		notify_store(w, s->n, s->body, s->len, &s->r);
	} else if (nbatch > 1) {
		store_batch(w, slots, batch, nbatch);
	}
	for (size_t i = 0; i < n && i < WEBHOOK_BATCH_MAX; i++) {
		struct slot *s = &slots[i];
		struct timespec t1;
		log_set_context("req", s->request_id);
		if (s->r.status != 200 && s->route != ROUTE_OTHER)
			log_info("request refused", "route=%s status=%d",
				 metrics_route_name(s->route), s->r.status);
		send_reply(s->req, &s->r);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		metrics_request(w->app->metrics, s->route, s->r.status,
				(double)(t1.tv_sec - s->t0.tv_sec) +
					(double)(t1.tv_nsec - s->t0.tv_nsec) / 1e9);
		notification_free(s->n);
		free(s->body);
		free(s->r.body);
	}
	log_set_context(NULL, NULL);
}

static void count_spend(void *arg, enum zoho_endpoint ep, int credits, long remaining)
{
	metrics_spend(arg, (size_t)ep, credits, remaining);
}

static bool ensure_zoho(struct worker *w)
{
	const struct cfg *cfg = w->app->cfg;
	struct zoho_opts zo;

	if (w->zoho)
		return db_ensure(w->tokdb) == RC_OK;
	if (!w->tokdb && db_connect(cfg->conninfo, cfg->schema, &w->tokdb) != RC_OK) {
		log_warn("database unreachable", "err=%s", log_q(db_error(w->tokdb)));
		db_close(w->tokdb);
		w->tokdb = NULL;
		return false;
	}
	memset(&zo, 0, sizeof(zo));
	zo.http.stop = &w->app->stop;
	zo.on_spend = count_spend;
	zo.spend_arg = w->app->metrics;
	if (zoho_new(cfg, w->tokdb, &zo, &w->zoho) != RC_OK) {
		log_warn("cannot set up the Zoho client", "");
		return false;
	}
	return true;
}

static void fetch_module(struct worker *w, const char *module, bool retries)
{
	struct fetch_opts o = {10, w->app->cfg->fetch_delay, retries};
	struct fetch_stats st;
	char err[1024];

	if (!webhook_db(w) || !ensure_zoho(w))
		return;
	log_set_module(module);
	enum rc rc = fetch_dirty_opts(w->db, w->zoho, module, &o, &st, err, sizeof(err));
	if (rc && st.schema_stale) {
		/* Zoho refused a field we asked for (renamed or removed there):
		 * read its fields (at most once a minute per module, across
		 * every process), then fetch again. No Bulk Read from here: a
		 * big back-fill waits for incremental_sync. */
		struct bulk_ctx bc = {.cfg = w->app->cfg, .data = w->db, .zoho = w->zoho,
				      .stop = &w->app->stop};
		bool read = false;
		if (schema_refresh(&bc, module, SCHEMA_SOON, false, NULL, &read) == RC_OK && read) {
			struct fetch_opts again = {o.max_batches, 0, true};
			atomic_fetch_add(&w->app->metrics->fetched_records, (unsigned long)st.returned);
			rc = fetch_dirty_opts(w->db, w->zoho, module, &again, &st, err, sizeof(err));
		}
	}
	if (st.returned)
		atomic_fetch_add(&w->app->metrics->fetched_records, (unsigned long)st.returned);
	if (rc && rc != RC_NOTFOUND) {
		atomic_fetch_add(&w->app->metrics->fetch_errors, 1);
		log_warn("fetch failed; ids stay dirty", "err=%s", log_q(err));
	} else if (st.claimed) {
		log_debug("fetched", "claimed=%ld returned=%ld applied=%ld missing=%ld", st.claimed,
			  st.returned, st.applied, st.missing);
	}
	log_set_module(NULL);
}

void webhook_after_reply(struct worker *w)
{
	const struct cfg *cfg = w->app->cfg;

	for (size_t i = 0; i < cfg->nmodules; i++) {
		if (!w->fetch_wanted[i])
			continue;
		w->fetch_wanted[i] = false;
		/* Fetches now only if the queue is due ([webhook] fetch_delay) or
		 * holds a full call; else the housekeeper's next tick does. */
		fetch_module(w, cfg->module_list[i], false);
	}
}

void webhook_fetch_due(struct worker *w, bool retries)
{
	const struct cfg *cfg = w->app->cfg;
	if (!cfg->fetch)
		return;
	for (size_t i = 0; i < cfg->nmodules && !w->app->stop; i++)
		fetch_module(w, cfg->module_list[i], retries);
}

void webhook_worker_close(struct worker *w)
{
	zoho_free(w->zoho);
	w->zoho = NULL;
	db_close(w->tokdb);
	w->tokdb = NULL;
	db_close(w->db);
	w->db = NULL;
}

long webhook_replay_spool(struct worker *w)
{
	long replayed = 0;

	if (spool_count(w->app->cfg->spool_dir) <= 0)
		return 0;
	if (!webhook_db(w))
		return -1;
	enum rc rc = inbox_replay_spool(w->db, w->app->cfg->spool_dir, &replayed);
	if (replayed)
		atomic_fetch_add(&w->app->metrics->spool_replayed, (unsigned long)replayed);
	return rc ? -1 : replayed;
}
