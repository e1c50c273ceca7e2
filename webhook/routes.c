/* routes.c — the webhook's routes: which of POST /notify, POST
 * /bulk-callback, GET /healthz and GET /metrics a request is for, the three
 * small ones here (the notification path is notify.c's), and the requests
 * a worker took at once answered together. Logic lives in common/
 * (notification, inbox, spool, metrics); replies are reply.c's. */
#include "inbox.h"
#include "log.h"
#include "notification.h"
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

/* Zoho's bulk job callback: stored as a hint for the waiting batch program,
 * which still polls the job status as the source of truth. */
static void handle_bulk_callback(struct worker *w, FCGX_Request *req, struct reply *r)
{
	char *body = NULL;
	size_t len = 0;
	json_object *root = NULL, *data, *item, *v;
	const char *job = NULL, *state = NULL;

	if (!request_method_is(req, "POST")) {
		reply_bad_method(r, "POST", "use POST");
		return;
	}
	enum rc rc = request_body(req, WEBHOOK_MAX_CALLBACK, &body, &len);
	if (rc) {
		reply_error(r, rc, rc == RC_TOOBIG ? "too_large" : "bad_request",
			    rc == RC_TOOBIG ? "body too large" : "truncated body");
		goto out;
	}
	if (notification_utf8_invalid_at(body, len) < len || memchr(body, '\0', len)) {
		/* PostgreSQL would refuse it as text: a client error, not a 503. */
		reply_error(r, RC_BADINPUT, "bad_request", "body is not valid UTF-8 text");
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
		reply_error(r, RC_BADINPUT, "bad_request", "expected {\"data\":[{\"id\":…,\"state\":…}]}");
		goto out;
	}
	job = json_object_get_string(v);
	int64_t idnum;
	if (notification_parse_id(job, &idnum)) {
		reply_error(r, RC_BADINPUT, "bad_request", "data[0].id: expected a digit string");
		goto out;
	}
	if (json_object_object_get_ex(item, "state", &v) && json_object_is_type(v, json_type_string))
		state = json_object_get_string(v);
	if (!webhook_db(w)) {
		reply_error(r, RC_DB, "unavailable", "database unreachable");
		goto out;
	}
	const char *p[3] = {job, state, body};
	if (db_prepared(w->db, "bulk_callback",
			"INSERT INTO bulk_callbacks (job_id, state, raw) VALUES ($1, $2, $3)"
			" ON CONFLICT (job_id) DO UPDATE SET state = excluded.state,"
			" raw = excluded.raw, received_at = now()",
			3, p, NULL) != RC_OK) {
		log_warn("bulk callback not stored", "err=%s", log_q(db_error(w->db)));
		reply_error(r, RC_DB, "unavailable", "database error");
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

	if (!request_method_is(req, "GET") && !request_method_is(req, "HEAD")) {
		reply_bad_method(r, "GET, HEAD", "use GET");
		return;
	}
	if (!webhook_db(w) || db_schema_version(w->db, &version) != RC_OK) {
		reply_error(r, RC_DB, "unavailable", "database unreachable");
		return;
	}
	if (version == 0) {
		/* Reachable but never migrated: every notification is spooled. */
		reply_error(r, RC_DB, "unavailable", "schema not migrated yet: run any batch program");
		return;
	}
	reply_ok(r, "application/json",
		 xasprintf("{\"status\":\"ok\",\"schema_version\":%d,\"version\":\"%s\"}",
			   version, ZCRM_VERSION));
}

static void handle_metrics(struct worker *w, FCGX_Request *req, struct reply *r)
{
	if (!request_method_is(req, "GET")) {
		reply_bad_method(r, "GET", "use GET");
		return;
	}
	reply_ok(r, "text/plain; version=0.0.4",
		 metrics_render(w->app->metrics, spool_count(w->app->cfg->spool_dir)));
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

/* Start a slot for req and route it: answered, or (a notification that
 * can be recorded with others) left waiting for the batch. */
static void route_request(struct worker *w, struct slot *s, FCGX_Request *req)
{
	memset(s, 0, sizeof(*s));
	s->req = req;
	reply_init(&s->r);
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	set_request_id(w, s->request_id, sizeof(s->request_id),
		       FCGX_GetParam("REQUEST_ID", s->req->envp));
	log_set_context("req", s->request_id);
	s->route = route_of(s->req);
	switch (s->route) {
	case ROUTE_NOTIFY:
		s->n = notify_check(w, s->req, &s->r, &s->body, &s->len);
		if (s->n && !inbox_batchable(s->n))
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
		reply_error(&s->r, RC_NOTFOUND, "not_found", "no such route");
		break;
	}
}

/* Write the slot's reply, count it, and free the slot. */
static void answer(struct worker *w, struct slot *s)
{
	struct timespec t1;

	log_set_context("req", s->request_id);
	if (s->r.status != 200 && s->route != ROUTE_OTHER)
		log_info("request refused", "route=%s status=%d", metrics_route_name(s->route),
			 s->r.status);
	reply_send(s->req, &s->r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	metrics_request(w->app->metrics, s->route, s->r.status,
			(double)(t1.tv_sec - s->t0.tv_sec) +
				(double)(t1.tv_nsec - s->t0.tv_nsec) / 1e9);
	notification_free(s->n);
	free(s->body);
	reply_free(&s->r);
}

void webhook_handle(struct worker *w, FCGX_Request *const *reqs, size_t n)
{
	struct slot slots[WEBHOOK_BATCH_MAX];
	struct notify_pending batch[WEBHOOK_BATCH_MAX];
	size_t nbatch = 0;

	if (n > WEBHOOK_BATCH_MAX)
		n = WEBHOOK_BATCH_MAX;
	for (size_t i = 0; i < n; i++) {
		struct slot *s = &slots[i];
		route_request(w, s, reqs[i]);
		if (s->n && inbox_batchable(s->n))
			batch[nbatch++] = (struct notify_pending){s->n, s->body, s->len, &s->r,
								  s->request_id};
	}
	if (nbatch == 1) {
		log_set_context("req", batch[0].request_id);
		notify_store(w, batch[0].n, batch[0].body, batch[0].len, batch[0].r);
	} else if (nbatch > 1) {
		notify_store_batch(w, batch, nbatch);
	}
	for (size_t i = 0; i < n; i++)
		answer(w, &slots[i]);
	log_set_context(NULL, NULL);
}
