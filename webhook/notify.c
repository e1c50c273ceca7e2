/* notify.c — POST /notify: a notification's checks before the database
 * (method, size, shape, token, module, channel, clock), then recording it
 * (common/inbox.c) alone or several at once, spooling it while PostgreSQL
 * is down (common/spool.c), and the answer each outcome gets. */
#include "ctcmp.h"
#include "inbox.h"
#include "log.h"
#include "notification.h"
#include "spool.h"
#include "webhook.h"

#include <stdlib.h>
#include <time.h>

/* Seconds a notification's server_time may be ahead of our clock. */
#define WEBHOOK_MAX_CLOCK_SKEW 86400

/* The checks of a parsed notification against the config and the clock:
 * RC_OK, or the refusal written into r. */
static enum rc notify_accept(const struct cfg *cfg, const struct notification *n,
			     struct reply *r)
{
	/* Constant time (common/ctcmp.c): no timing hint of a partial match. */
	if (!ct_str_equal(n->token, cfg->token)) {
		log_warn("notification refused: wrong token", "channel=%llu",
			 (unsigned long long)n->channel_id);
		reply_error(r, RC_AUTH, "forbidden", "token does not match");
		return RC_AUTH;
	}
	int mi = cfg_module_index(cfg, n->module);
	if (mi < 0) {
		reply_error(r, RC_AUTH, "forbidden", "module is not configured");
		return RC_AUTH;
	}
	if (n->channel_id != cfg_channel_id(cfg, (size_t)mi)) {
		log_warn("notification refused: unknown channel", "module=%s channel=%llu",
			 log_q(n->module), (unsigned long long)n->channel_id);
		reply_error(r, RC_AUTH, "forbidden", "channel_id is not one of ours for this module");
		return RC_AUTH;
	}
	/* Zoho stamps server_time when it sends. One far in the future would
	 * make a delete's tombstone outlive every later edit of the record. */
	if (n->server_time_ms / 1000 > (int64_t)time(NULL) + WEBHOOK_MAX_CLOCK_SKEW) {
		log_warn("notification refused: server_time in the future", "server_time=%lld",
			 (long long)n->server_time_ms);
		reply_error(r, RC_BADINPUT, "bad_request",
			    "server_time is more than a day in the future");
		return RC_BADINPUT;
	}
	return RC_OK;
}

struct notification *notify_check(struct worker *w, FCGX_Request *req, struct reply *r,
				  char **body, size_t *len)
{
	const struct cfg *cfg = w->app->cfg;
	struct notification *n = NULL;
	char err[256];
	enum rc rc;

	*body = NULL;
	*len = 0;
	if (!request_method_is(req, "POST")) {
		reply_bad_method(r, "POST", "use POST");
		return NULL;
	}
	rc = request_body(req, (size_t)cfg->max_body, body, len);
	if (rc == RC_TOOBIG) {
		reply_error(r, rc, "too_large", "body larger than [webhook] max_body");
		goto refused;
	}
	if (rc) {
		reply_error(r, RC_BADINPUT, "bad_request", "body shorter than Content-Length");
		goto refused;
	}
	rc = notification_parse(*body, *len, (size_t)cfg->max_ids, &n, err, sizeof(err));
	if (rc == RC_TOOBIG) {
		reply_error(r, rc, "too_many_ids", err);
		goto refused;
	}
	if (rc) {
		reply_error(r, RC_BADINPUT, "bad_request", err);
		goto refused;
	}
	if (notify_accept(cfg, n, r) != RC_OK)
		goto refused;
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

void notify_store(struct worker *w, const struct notification *n, const char *body, size_t len,
		  struct reply *r)
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
		reply_error(r, RC_INTERNAL, "internal", "the notification could not be stored");
		return;
	}
	if (rc) {
		atomic_fetch_add(&m->db_errors, 1);
		if (w->db)
			log_warn("database unavailable; spooling", "err=%s", log_q(db_error(w->db)));
		if (spool_write(cfg->spool_dir, body, len) != RC_OK) {
			reply_error(r, RC_DB, "unavailable", "database down and spool not writable");
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

void notify_store_batch(struct worker *w, const struct notify_pending *p, size_t n)
{
	struct inbox_item items[WEBHOOK_BATCH_MAX];
	enum rc rc;

	if (n > WEBHOOK_BATCH_MAX)
		n = WEBHOOK_BATCH_MAX;
	for (size_t k = 0; k < n; k++)
		items[k] = (struct inbox_item){p[k].n, p[k].body, p[k].len, INBOX_DUPLICATE};
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
		log_set_context("req", p[k].request_id);
		if (rc)
			notify_store(w, p[k].n, p[k].body, p[k].len, p[k].r);
		else
			notify_answer(w, p[k].n, items[k].outcome, p[k].r);
	}
}
