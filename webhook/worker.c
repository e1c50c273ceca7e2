/* worker.c — what a worker thread holds besides the request in hand: its
 * PostgreSQL connection (reconnected on demand), its Zoho client, and the
 * work done outside a request: fetching the records notifications named
 * (common/fetch.c), after the reply or on the housekeeper's tick, and
 * replaying the spool (common/inbox.c). */
#include "fetch.h"
#include "inbox.h"
#include "log.h"
#include "schemasync.h"
#include "spool.h"
#include "webhook.h"

#include <string.h>

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
	/* A connection opened before the server went away still looks open:
	 * ask it, rather than take a file out of the spool only to put it
	 * back (operators and the spool_depth gauge would see it vanish). */
	if (db_exec(w->db, "SELECT 1", 0, NULL, NULL) != RC_OK) {
		log_warn("database unreachable", "err=%s", log_q(db_error(w->db)));
		return -1;
	}
	enum rc rc = inbox_replay_spool(w->db, w->app->cfg->spool_dir, &replayed);
	if (replayed)
		atomic_fetch_add(&w->app->metrics->spool_replayed, (unsigned long)replayed);
	return rc ? -1 : replayed;
}
