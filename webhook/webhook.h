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

struct app {
	const struct cfg *cfg;
	struct metrics *metrics;
	int listen_fd;
	volatile sig_atomic_t stop;
	pthread_mutex_t accept_lock;
};

struct worker {
	struct app *app;
	struct db *db;          /* this thread's connection, NULL until first use */
	int index;
	struct db *tokdb;       /* the Zoho client's connection (OAuth token) */
	struct zoho *zoho;      /* NULL until the first fetch */
	char request_id[32];
	unsigned long nrequests;
	char fetch_module[64];  /* set by /notify: fetch after replying */
};

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
