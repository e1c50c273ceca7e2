/* status — print per-module sync status (table, or --json). */
#include "batchrt.h"
#include "log.h"
#include "status.h"

#include <stdio.h>

static bool want_json;

static const struct batch_opt opts[] = {
	{"json", 0, NULL, "print one JSON object instead of a table", NULL, &want_json},
	{NULL, 0, NULL, NULL, NULL, NULL},
};

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
};

int main(int argc, char **argv)
{
	struct batch_env env;
	const char *mods[CFG_MAX_MODULES];
	int code = batch_start(&env, &prog, argc, argv);

	if (code >= 0) {
		batch_end(&env);
		return code;
	}
	size_t n = batch_modules(&env, mods, CFG_MAX_MODULES);
	enum rc rc = status_report(env.data, env.db_err, env.cfg, mods, n, want_json, stdout);
	if (rc)
		log_error("cannot read the status", "err=%s", log_q(db_error(env.data)));
	else if (!env.data)
		rc = env.db_rc; /* printed what it could; the exit says the rest */
	batch_end(&env);
	return batch_exit(rc);
}
