/* webhook.h — the FastCGI program's shared types: the app (read-only after
 * start-up, plus atomic metrics) and one worker per thread. */
#ifndef ZCRM_WEBHOOK_H
#define ZCRM_WEBHOOK_H

#include "cfg.h"
#include "db.h"
#include "metrics.h"
#include "rc.h"
#include "zoho.h"

#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#define NO_FCGI_DEFINES
#include <fcgiapp.h>

struct conns;

struct app {
	const struct cfg *cfg;
	struct metrics *metrics;
	int listen_fd;
	/* Set by the main thread once a signal asks to stop; read by
	 * every thread (atomic: threads, not a signal handler). */
	atomic_int stop;
	struct conns *conns;    /* the connections from nginx (conn.c) */
};

struct worker {
	struct app *app;
	struct db *db;          /* this thread's connection, NULL until first use */
	int index;
	struct db *tokdb;       /* the Zoho client's connection (OAuth token) */
	struct zoho *zoho;      /* NULL until the first fetch */
	unsigned long nrequests;  /* the log's req without nginx's (routes.c) */
	bool *fetch_wanted;       /* per configured module: fetch after replying */
};

/* Requests a worker takes at once at most: under load the notifications
 * waiting on that many connections go to PostgreSQL in one statement
 * (inbox_record_batch). 16 = the 64 connections of the benchmark over the
 * default 4 threads; docs/benchmarks.md has the measurements. */
#define WEBHOOK_BATCH_MAX 16

/* conn.c: accepting, and handing connections with a request waiting to
 * the workers; see there. */
struct conn;
struct conns *conns_new(struct app *app, int listen_fd);
/* Wait for connections with a request (or EOF) waiting and take those
 * there are, at most max, into out; 0 once the app is stopping and no open
 * connection has a request waiting. */
size_t conns_next(struct conns *cs, struct conn **out, size_t max);
int conn_fd(const struct conn *c);
/* After the request: a connection nginx keeps (still open) is watched
 * again, or closed when stopping; otherwise it is forgotten. */
void conns_release(struct conns *cs, struct conn *c, bool kept);
/* After setting app->stop: wake the worker waiting for connections. */
void conns_wake(struct conns *cs);
void conns_free(struct conns *cs);

/* reply.c: HTTP in and out, and the one rc -> status map. */
struct reply {
	int status;
	const char *content_type;
	char *body;      /* heap, may be NULL */
	const char *allow;
};
/* The HTTP status of a result: RC_OK 200, RC_BADINPUT 400, RC_AUTH 403,
 * RC_NOTFOUND 404, RC_TOOBIG 413, RC_DB 503 (PostgreSQL unreachable),
 * anything else 500 (docs/errors.md). */
int reply_status(enum rc rc);
/* A 500 with no body, until a route sets it. */
void reply_init(struct reply *r);
/* The status of rc and a JSON body {"error": code, "message": message}. */
void reply_error(struct reply *r, enum rc rc, const char *code, const char *message);
/* 405 with Allow: allow (a static string). */
void reply_bad_method(struct reply *r, const char *allow, const char *message);
/* 200 with body (heap; the reply takes it) of content_type (static). */
void reply_ok(struct reply *r, const char *content_type, char *body);
/* 200 with a copy of json. */
void reply_ok_json(struct reply *r, const char *json);
void reply_send(FCGX_Request *req, const struct reply *r);
void reply_free(struct reply *r);
bool request_method_is(FCGX_Request *req, const char *m);
/* Read the whole body, at most max bytes, into *body (heap, NUL-ended;
 * caller frees). RC_TOOBIG when larger, RC_BADINPUT when the stream ends
 * before CONTENT_LENGTH; *body NULL then. */
enum rc request_body(FCGX_Request *req, size_t max, char **body, size_t *len);

/* routes.c: the routes. */
/* Answer the n (at most WEBHOOK_BATCH_MAX) requests a worker took at once,
 * their notifications recorded together; returns after the replies are
 * written but before FCGX_Finish_r, so the caller controls when the
 * clients are released. */
void webhook_handle(struct worker *w, FCGX_Request *const *reqs, size_t n);

/* notify.c: POST /notify. */
struct notification;
/* A notification's checks before the database. NULL with r set when it is
 * refused; else the notification (caller frees), and its body without the
 * token in *body (caller frees). */
struct notification *notify_check(struct worker *w, FCGX_Request *req, struct reply *r,
				  char **body, size_t *len);
/* Record one notification on its own: into the inbox; else, with
 * PostgreSQL down, into the spool (answered 200: Zoho must not drop it,
 * it is replayed when the database is back); else, when PostgreSQL
 * refuses it, into the spool's failed/ for an operator (a 500). */
void notify_store(struct worker *w, const struct notification *n, const char *body, size_t len,
		  struct reply *r);
/* A checked notification waiting to be recorded with others; borrowed. */
struct notify_pending {
	const struct notification *n;
	const char *body;
	size_t len;
	struct reply *r;          /* its answer goes here */
	const char *request_id;   /* the log's req while answering it */
};
/* Record n (at most WEBHOOK_BATCH_MAX) notifications in one go
 * (inbox_record_batch); on any failure one by one (notify_store), which
 * spools them while PostgreSQL is down and sets aside only the one it
 * refuses. */
void notify_store_batch(struct worker *w, const struct notify_pending *p, size_t n);

/* worker.c: a worker's connections and the work outside requests. */
/* Work done after the client has its answer (record fetching). */
void webhook_after_reply(struct worker *w);
/* Ensure w->db is connected; false (and logged) when PostgreSQL is down. */
bool webhook_db(struct worker *w);
/* Housekeeping: fetch the queued ids that are due ([webhook] fetch_delay)
 * and, with retries, the due ids of `dirty`, of every module. */
void webhook_fetch_due(struct worker *w, bool retries);
/* Release the worker's connections and client. */
void webhook_worker_close(struct worker *w);
/* One pass of spool replay: the number replayed, or -1 if PostgreSQL is
 * unreachable or the replay stopped on an error. */
long webhook_replay_spool(struct worker *w);

#endif
