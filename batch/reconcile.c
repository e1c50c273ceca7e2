/* reconcile — cron, nightly: compare Zoho with the module tables and repair
 * drift (see common/reconcile.h); --dry-run only reports. */
#include "batchrt.h"
#include "log.h"
#include "reconcile.h"
#include "schemasync.h"
#include "syncstate.h"

#include <inttypes.h>
#include <stdio.h>

static const struct batch_opt opts[] = {
	{"dry-run", 0, NULL, "report drift without repairing anything"},
	{NULL, 0, NULL, NULL},
};

static enum rc run_module(struct batch_env *env, const char *module, struct batch_run *run)
{
	struct reconcile_report rep;
	bool dry_run = batch_flag(env, "dry-run");
	enum rc rc;

	run->dry_run = dry_run;
	struct bulk_ctx ctx = batch_bulk_ctx(env, run->id);
	rc = reconcile_module(&ctx, module, dry_run, &rep, run->err, sizeof(run->err));
	/* The nightly look at the fields metadata too (1 credit), once the
	 * reconcile went through (below [zoho] credit_floor it waits too); a
	 * failure leaves the schema as it was. */
	if (!rc && !dry_run &&
	    schema_refresh(&ctx, module, SCHEMA_ALWAYS, true, NULL, NULL) != RC_OK)
		log_warn("fields metadata not refreshed", "");
	run->details = reconcile_json(&rep);
	run->counts = (struct run_counts){0, rep.exported, rep.fetched, rep.tombstoned};
	if (rc) {
		log_error("reconcile failed", "err=%s", log_q(run->err));
		return rc;
	}
	printf("%s: zoho_count=%" PRId64 " exported=%ld ours_live=%ld missing=%ld older=%ld "
	       "gone=%ld%s fetched=%ld tombstoned=%ld unexplained=%ld",
	       module, rep.zoho_count, rep.exported, rep.ours_live, rep.missing, rep.older, rep.gone,
	       dry_run ? " (dry run: nothing repaired)" : "", rep.fetched, rep.tombstoned,
	       rep.unexplained);
	if (rep.formulas.fields > 0 && rep.formulas.due)
		printf(" formulas_refreshed=%ld formulas_kept=%ld", rep.formulas.refreshed,
		       rep.formulas.kept);
	else if (rep.formulas.fields > 0)
		printf(" formulas=not-due");
	putchar('\n');
	if (rep.lines_stale)
		printf("%s: line items of %ld records read again\n", module, rep.lines_stale);
	log_info("reconcile done", "details=%s", log_q(run->details));
	return RC_OK;
}

static const struct batch_prog prog = {
	.name = "reconcile",
	.summary = "Find and repair drift between Zoho CRM and PostgreSQL",
	.description =
		"For each module: compares Zoho's record count with ours, exports id and\n"
		"Modified_Time of every record with the Bulk Read API and diffs them against\n"
		"the table: ids missing or older here are fetched; ids live here but gone from\n"
		"Zoho are tombstoned when the deleted-records API lists them, else fetched by\n"
		"id, and reported as unexplained if Zoho still does not return them.\n"
		"Formula and rollup fields (which Zoho recomputes without moving\n"
		"Modified_Time) ride along in the same export every [sync] formula_refresh\n"
		"seconds and are updated where they differ, modified_time untouched. Line\n"
		"items (subforms) whose parent changed since they were read are read again.\n"
		"The report goes to stdout and to zcrm.runs (details). Then reads Zoho's fields\n"
		"metadata and follows its changes (not with --dry-run). Meant for cron, nightly.",
	.opts = opts,
	.needs_zoho = true,
	.exports = true,
	.run_kind = "reconcile",
	.module_fn = run_module,
};

int main(int argc, char **argv)
{
	return batch_main(&prog, argc, argv);
}
