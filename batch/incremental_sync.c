/* incremental_sync — cron, every few minutes: catch up whatever the
 * notifications missed, then move the watermark. */
#include "batchrt.h"
#include "inbox.h"
#include "incremental.h"
#include "log.h"
#include "syncstate.h"
#include "users.h"

#include <stdio.h>
#include <time.h>

static enum rc run_module(struct batch_env *env, const char *module, struct batch_run *run)
{
	struct incremental_result res;
	struct bulk_ctx ctx = batch_bulk_ctx(env, run->id);
	enum rc rc = incremental_module(&ctx, module, &res, run->err, sizeof(run->err));

	/* rows seen: what the export read, or (REST path) what the listing did */
	run->counts = (struct run_counts){res.bulk.pages,
					  res.bulk.pages ? res.bulk.rows_seen : res.listed,
					  res.bulk.rows_applied + res.fetched, res.tombstoned};
	if (rc) {
		log_error("incremental sync failed", "err=%s", log_q(run->err));
		return rc;
	}
	char wm[32];
	time_t t = (time_t)res.watermark;
	strftime(wm, sizeof(wm), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	printf("%s: %ld changes listed in %ld page(s), %ld newer than ours; %ld changed records "
	       "exported, %ld applied, %ld fetched, %ld deletes seen (%ld tombstoned), %ld gap(s) "
	       "closed; watermark %s\n",
	       module, res.listed, res.list_pages, res.marked, res.bulk.rows_seen,
	       res.bulk.rows_applied, res.fetched, res.deleted_seen, res.tombstoned,
	       res.gaps_closed, wm);
	log_info("incremental sync done",
		 "listed=%ld list_pages=%ld newer=%ld exported=%ld applied=%ld fetched=%ld"
		 " deletes=%ld tombstoned=%ld gaps_closed=%ld watermark=%s",
		 res.listed, res.list_pages, res.marked, res.bulk.rows_seen, res.bulk.rows_applied,
		 res.fetched, res.deleted_seen, res.tombstoned, res.gaps_closed, wm);
	return RC_OK;
}

/* Once, before the modules. */
static void before_modules(struct batch_env *env)
{
	long replayed = 0;

	/* The spool of this host, whatever the webhook did or did not replay;
	 * on failure the modules still run (the spool waits for next time). */
	if (inbox_replay_spool(env->data, env->cfg->spool_dir, &replayed) != RC_OK)
		log_warn("spool not fully replayed; it stays for the next run", "");
	/* zcrm.users, when [sync] users_interval has passed (one call). */
	users_refresh_logged(env->data, env->zoho, env->cfg->users_interval);
}

static const struct batch_prog prog = {
	.name = "incremental_sync",
	.summary = "Catch up changes and deletes the notifications missed",
	.description =
		"Replays notifications spooled while PostgreSQL was down, applies those that\n"
		"waited for a module table, follows Zoho's schema changes (reads the fields\n"
		"metadata every [sync] schema_check seconds, or at once when an export or a\n"
		"notification names a field we do not know; new columns are back-filled),\n"
		"fetches ids still marked dirty, exports every record modified since\n"
		"(watermark - [sync] overlap) - or since the start of an open coverage gap -\n"
		"with the Bulk Read API, merges it by the freshness rule, tombstones what the\n"
		"deleted-records API lists, and only then moves the watermark and closes the\n"
		"gaps it covered. Also refreshes zcrm.users (Zoho's users) at most once per\n"
		"[sync] users_interval. Meant for cron every few minutes;\n"
		"a second copy started while one runs exits at once (status 75).",
	.opts = NULL,
	.needs_zoho = true,
	.exports = true,
	.run_kind = "incremental",
	.before = before_modules,
	.module_fn = run_module,
};

int main(int argc, char **argv)
{
	return batch_main(&prog, argc, argv);
}
