/* initial_sync — the first load of each module, as Zoho recommends: enable
 * the notification channel first, then export everything with Bulk Read,
 * keeping the newer copy of every record. Run by hand; safe to re-run, and
 * a run that was killed resumes at the page it was on. */
#include "batchrt.h"
#include "bulk.h"
#include "fetch.h"
#include "inbox.h"
#include "log.h"
#include "reconcile.h"
#include "renew.h"
#include "schema.h"
#include "schemasync.h"
#include "syncstate.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const struct batch_opt opts[] = {
	{"no-channel", 0, NULL, "do not enable the notification channel (not recommended)"},
	{NULL, 0, NULL, NULL},
};

/* Fields metadata → module table (schemasync.h), then the notifications
 * that waited for it. */
static enum rc ensure_table(struct batch_env *env, const char *module, int64_t run_id)
{
	struct bulk_ctx ctx = batch_bulk_ctx(env, run_id);
	/* No back-fill: the export that follows carries every field. */
	enum rc rc = schema_refresh(&ctx, module, SCHEMA_ALWAYS, false, NULL, NULL);

	if (rc)
		return rc;
	long applied = 0;
	rc = inbox_apply_pending(env->data, module, &applied);
	if (!rc && applied)
		log_info("applied notifications that waited for the table", "count=%ld", applied);
	return rc;
}

/* What the export and the steps after it did: stdout and the log. */
static void report(const char *module, const struct bulk_result *res,
		   const struct fetch_after_bulk_stats *ls, long spent, long spent_ahead)
{
	char wm[32];
	time_t t = (time_t)res->started;
	strftime(wm, sizeof(wm), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	if (res->first_page > 1) {
		char merged[32];
		if (res->pages > 1)
			snprintf(merged, sizeof(merged), "pages %d-%d", res->first_page,
				 res->last_page);
		else
			snprintf(merged, sizeof(merged), "page %d", res->first_page);
		printf("%s: %d page(s) exported; this run merged %d (%s), %ld records, %ld applied,"
		       " %.1f MB; watermark %s\n  resumed: pages 1-%d merged by an earlier run\n",
		       module, res->last_page, res->pages, merged, res->rows_seen,
		       res->rows_applied, (double)res->bytes / 1e6, wm, res->first_page - 1);
	} else {
		printf("%s: %ld records in %d page(s), %ld applied, %.1f MB; watermark %s\n",
		       module, res->rows_seen, res->pages, res->rows_applied,
		       (double)res->bytes / 1e6, wm);
	}
	if (ls->filled)
		printf("  fields Bulk Read does not export: %ld records by REST, %ld credits\n",
		       ls->filled, ls->fill_credits);
	if (ls->stale)
		printf("  line items: %ld lines of %ld records by %s, %ld call(s)\n", ls->lines,
		       ls->stale, ls->listing ? "the subform listing" : "single-record GETs",
		       ls->calls);
	if (spent_ahead)
		printf("  credits spent: %ld (%ld of them on the next modules' first pages,"
		       " asked for ahead)\n", spent, spent_ahead);
	else
		printf("  credits spent: %ld\n", spent);
	log_info("initial sync done", "pages=%d export_pages=%d first_page=%d rows=%ld applied=%ld"
		 " watermark=%s lines=%ld credits=%ld", res->pages, res->last_page,
		 res->first_page, res->rows_seen, res->rows_applied, wm, ls->lines, spent);
}

/* The modules this run exports after module, in order (bulk.h:
 * next_modules): *n of them, pointing into mods. */
static const char *const *modules_after(const struct batch_env *env, const char *module,
					const char **mods, size_t *n)
{
	size_t all = batch_modules(env, mods, CFG_MAX_MODULES);

	for (size_t i = 0; i < all; i++)
		if (!strcmp(mods[i], module)) {
			*n = all - i - 1;
			return mods + i + 1;
		}
	*n = 0;
	return NULL;
}

/* bulk_ctx.before_next: the next module's channel, enabled before its
 * first page's job is asked for ahead, as sync_module does before its own. */
static enum rc enable_next(struct bulk_ctx *ctx, const char *module)
{
	struct batch_env *env = ctx->before_next_arg;

	return renew_enable(env->cfg, env->data, env->zoho, module);
}

static enum rc sync_module(struct batch_env *env, const char *module, struct batch_run *run)
{
	struct module_schema *schema = NULL;
	struct bulk_result res;
	long spent0 = zoho_credits_spent(env->zoho, ZOHO_EP__COUNT);
	enum rc rc;

	rc = ensure_table(env, module, run->id);
	if (rc)
		goto out;
	if (!batch_flag(env, "no-channel")) {
		rc = renew_enable(env->cfg, env->data, env->zoho, module);
		if (rc)
			goto out;
	}
	rc = schema_load(env->data, module, &schema);
	if (rc)
		goto out;
	struct bulk_ctx ctx = batch_bulk_ctx(env, run->id);
	const char *mods[CFG_MAX_MODULES];
	ctx.next_modules = modules_after(env, module, mods, &ctx.n_next);
	if (!batch_flag(env, "no-channel")) {
		ctx.before_next = enable_next;
		ctx.before_next_arg = env;
	}
	rc = bulk_export(&ctx, module, schema, "initial", 0, 0, MERGE_BULK, &res, run->err,
			 sizeof(run->err));
	run->counts = (struct run_counts){res.pages, res.rows_seen, res.rows_applied, 0};
	if (rc) {
		log_error("export failed", "err=%s", log_q(run->err));
		goto out;
	}
	rc = sync_set_watermark(env->data, module, res.started);
	if (!rc)
		rc = sync_clear_bulk(env->data, module);
	/* Every field was in the export: nothing is left to back-fill. */
	if (!rc)
		rc = schema_backfill_done(env->data, module, res.started);
	if (rc)
		goto out;
	/* The check follows the export, not this run: a resumed run may merge
	 * only the last page of an export whose earlier pages shifted. */
	if (res.last_page > 1)
		reconcile_page_boundaries(&ctx, module);
	/* Bulk Read cannot export subforms and some field types: those now
	 * (fetch.h). A killed run redoes this step; a failure fails the run,
	 * whose re-run (or incremental_sync, or reconcile) repeats it. */
	struct fetch_after_bulk_stats ls;
	char lerr[512] = "";
	if (fetch_after_bulk(env->data, env->zoho, module, &ls, lerr, sizeof(lerr)) != RC_OK) {
		log_error("cannot load the line items or unexported fields", "err=%s", log_q(lerr));
		rc = RC_ZOHO;
		snprintf(run->err, sizeof(run->err), "line items: %s", lerr);
		goto out;
	}
	report(module, &res, &ls, zoho_credits_spent(env->zoho, ZOHO_EP__COUNT) - spent0,
	       ctx.credits_ahead);
	run->details = xasprintf("{\"export_pages\": %d, \"first_page\": %d}", res.last_page,
				 res.first_page);
out:
	module_schema_free(schema);
	return rc;
}

static const struct batch_prog prog = {
	.name = "initial_sync",
	.summary = "First full load of Zoho CRM modules into PostgreSQL",
	.description =
		"For each module: applies pending migrations, creates or evolves the module\n"
		"table from Zoho's fields metadata, enables the notification channel (so\n"
		"changes made during the export reach the webhook), exports every record with\n"
		"the Bulk Read API page by page, merges each page by the freshness rule, and\n"
		"sets the watermark to the creation time of the first export job. Then what\n"
		"Bulk Read cannot export: line items (subforms, as child tables) by the\n"
		"subform listing, and multiselectlookup, multiuserlookup, fileupload and\n"
		"imageupload fields by fetching the records by id. Progress is checkpointed\n"
		"after every page: a killed run resumes where it stopped.",
	.opts = opts,
	.needs_zoho = true,
	.exports = true,
	.run_kind = "initial",
	.module_fn = sync_module,
};

int main(int argc, char **argv)
{
	return batch_main(&prog, argc, argv);
}
