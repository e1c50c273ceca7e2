/* webhook.h — the FastCGI program's shared types: the app (read-only after
 * start-up, plus atomic metrics) and one worker per thread. */
#ifndef ZCRM_WEBHOOK_H
#define ZCRM_WEBHOOK_H

#include "cfg.h"
#include "db.h"
#include "metrics.h"
#include "zoho.h"

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
	volatile sig_atomic_t stop;
	struct conns *conns;    /* the connections from nginx (conn.c) */
};

struct worker {
	struct app *app;
	struct db *db;          /* this thread's connection, NULL until first use */
	int index;
	struct db *tokdb;       /* the Zoho client's connection (OAuth token) */
	struct zoho *zoho;      /* NULL until the first fetch */
	char request_id[40]; /* the log's req (set_request_id in routes.c) */
	unsigned long nrequests;
	char fetch_module[64];  /* set by /notify: fetch after replying */
};

/* conn.c: accepting, and handing connections with a request waiting to
 * the workers; see there. */
struct conn;
struct conns *conns_new(struct app *app, int listen_fd);
/* Wait for a connection with a request (or EOF) waiting and take it; NULL
 * once the app is stopping and no open connection has a request waiting. */
struct conn *conns_next(struct conns *cs);
int conn_fd(const struct conn *c);
/* After the request: a connection nginx keeps (still open) is watched
 * again, or closed when stopping; otherwise it is forgotten. */
void conns_release(struct conns *cs, struct conn *c, bool kept);
/* After setting app->stop: wake the worker waiting for connections. */
void conns_wake(struct conns *cs);
void conns_free(struct conns *cs);

/* routes.c */
/* Answer one request; returns after the reply is complete but before
 * FCGX_Finish_r so the caller controls when the client is released. */
void webhook_handle(struct worker *w, FCGX_Request *req);
/* Work done after the client has its answer (record fetching). */
void webhook_after_reply(struct worker *w);
/* Ensure w->db is connected; false (and logged) when PostgreSQL is down. */
bool webhook_db(struct worker *w);
/* Fetch due dirty ids of every module (housekeeping). */
void webhook_fetch_due(struct worker *w);
/* Release the worker's connections and client. */
void webhook_worker_close(struct worker *w);
/* One pass of spool replay: the number replayed, or -1 if PostgreSQL is
 * unreachable or the replay stopped on an error. */
long webhook_replay_spool(struct worker *w);

#endif
