/* status — print per-module sync status (table, or --json). */
#include "batchrt.h"
#include "log.h"
#include "status.h"

#include <stdio.h>

static const struct batch_opt opts[] = {
	{"json", 0, NULL, "print one JSON object instead of a table"},
	{NULL, 0, NULL, NULL},
};

static enum rc report(struct batch_env *env)
{
	const char *mods[CFG_MAX_MODULES];
	size_t n = batch_modules(env, mods, CFG_MAX_MODULES);
	enum rc rc = status_report(env->data, env->db_err, env->cfg, mods, n,
				   batch_flag(env, "json"), stdout);

	if (rc)
		log_error("cannot read the status", "err=%s", log_q(db_error(env->data)));
	else if (!env->data)
		rc = env->db_rc; /* printed what it could; the exit says the rest */
	return rc;
}

static const struct batch_prog prog = {
	.name = "status",
	.summary = "Show the sync status of each module",
	.description =
		"Prints per module: watermark and lag, notification channel status and time\n"
		"to expiry, ids waiting to be fetched, notifications waiting for a table, open\n"
		"coverage gaps, live and tombstoned rows, the spool depth of this host, and the\n"
		"last run of each batch program with its outcome (a killed run: abandoned).\n"
		"Talks to PostgreSQL only (applying pending migrations first, like every\n"
		"program), never to Zoho. With PostgreSQL down it prints what it knows\n"
		"without it (config, spool count, the error) and exits 75.",
	.opts = opts,
	.needs_zoho = false,
	.db_optional = true,
	.run_all = report,
};

int main(int argc, char **argv)
{
	return batch_main(&prog, argc, argv);
}
