/* batchrt.c — the shared frame of the batch programs (see batchrt.h). */
#include "batchrt.h"
#include "credcheck.h"
#include "credits.h"
#include "http.h"
#include "log.h"
#include "schema.h"
#include "tablehooks.h"
#include "syncstate.h"

#include <stdatomic.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

/* The one signal-to-flag pointer: set before handlers are installed. */
static atomic_int *stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	if (stop_flag)
		*stop_flag = 1;
}

static void usage(const struct batch_prog *p, FILE *f)
{
	fprintf(f, "Usage: %s [OPTION]...\n%s (zcrm-sync %s).\n\n%s\n\nOptions:\n",
		program_invocation_short_name, p->summary, ZCRM_VERSION, p->description);
	fprintf(f, "  -c, --config PATH    configuration file (default $ZCRM_CONFIG, then\n"
		   "                       " CFG_DEFAULT_PATH ")\n"
		   "  -m, --module NAME    work on this module only (default: every module\n"
		   "                       in [sync] modules)\n"
		   "      --check-credentials  refresh the shared Zoho token and make one\n"
		   "                       cheap call with it (--module's, or the first\n"
		   "                       module's record count); print ok or why not\n");
	for (const struct batch_opt *o = p->opts; o && o->name; o++) {
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->has_arg ? " " : "",
			 o->has_arg ? o->arg_name : "");
		fprintf(f, "      %-17s%s\n", left, o->help);
	}
	fprintf(f, "  -v, --verbose        debug logging\n"
		   "  -q, --quiet          warnings and errors only\n"
		   "  -h, --help           this text\n"
		   "  -V, --version        print the version\n"
		   "\nLogs are logfmt lines on stderr. Exit status (sysexits.h): 0 done,\n"
		   "64 usage, 65 bad data, 69 Zoho refused or module not initialised,\n"
		   "70 internal error, 71 system error, 74 local file error, 75 temporary\n"
		   "failure (database or network down, rate limited, interrupted, or another\n"
		   "copy running), 77 authentication (Zoho or PostgreSQL), 78 configuration.\n");
}

/* Parse the options into env, config (--config) and level. Returns -1 to
 * go on, or an exit code to return at once (--help, --version, usage). */
static int parse_options(struct batch_env *env, int argc, char **argv, const char **config,
			 enum log_level *level, bool *check_creds)
{
	const struct batch_prog *prog = env->prog;
	struct option longopts[8 + BATCH_MAX_OPTS];
	size_t n = 0;
	int c;

	longopts[n++] = (struct option){"config", required_argument, NULL, 'c'};
	longopts[n++] = (struct option){"module", required_argument, NULL, 'm'};
	longopts[n++] = (struct option){"verbose", no_argument, NULL, 'v'};
	longopts[n++] = (struct option){"quiet", no_argument, NULL, 'q'};
	longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	longopts[n++] = (struct option){"version", no_argument, NULL, 'V'};
	longopts[n++] = (struct option){"check-credentials", no_argument, NULL, 'K'};
	size_t first_extra = n;
	for (const struct batch_opt *o = prog->opts;
	     o && o->name && n - first_extra < BATCH_MAX_OPTS; o++) {
		int index = (int)(n - first_extra);
		longopts[n] = (struct option){o->name, o->has_arg ? required_argument : no_argument,
					      NULL, 1000 + index};
		n++;
	}
	longopts[n] = (struct option){NULL, 0, NULL, 0};

	while ((c = getopt_long(argc, argv, "c:m:vqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			*config = optarg;
			break;
		case 'm':
			env->module = optarg;
			break;
		case 'v':
			*level = LOG_LVL_DEBUG;
			break;
		case 'q':
			*level = LOG_LVL_WARN;
			break;
		case 'h':
			usage(prog, stdout);
			return EX_OK;
		case 'V':
			printf("%s %s\n", program_invocation_short_name, ZCRM_VERSION);
			return EX_OK;
		case 'K':
			*check_creds = true;
			break;
		default:
			if (c >= 1000) {
				env->opt_given[c - 1000] = true;
				env->opt_arg[c - 1000] = prog->opts[c - 1000].has_arg ? optarg : NULL;
				break;
			}
			fprintf(stderr, "Try '%s --help'.\n", program_invocation_short_name);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		/* The name it was run by (zcrm-status once installed), not the
		 * job's name in logs and locks. */
		fprintf(stderr, "%s: unexpected argument '%s'\nTry '%s --help'.\n",
			program_invocation_short_name, argv[optind], program_invocation_short_name);
		return EX_USAGE;
	}
	return -1;
}

/* The Zoho client on its own connection (env->tokdb). Returns -1, or the
 * exit code when it cannot be set up. */
static int start_zoho(struct batch_env *env)
{
	struct zoho_opts zo;
	enum rc rc;

	memset(&zo, 0, sizeof(zo));
	zo.http.stop = &env->stop;
	if (http_global_init() != RC_OK) {
		log_error("cannot initialise libcurl", "");
		return EX_OSERR;
	}
	rc = db_connect(env->cfg->conninfo, env->cfg->schema, &env->tokdb);
	if (rc != RC_OK) {
		log_error("cannot connect to PostgreSQL", "err=%s", log_q(db_error(env->tokdb)));
		return batch_exit(rc);
	}
	rc = zoho_new(env->cfg, env->tokdb, &zo, &env->zoho);
	if (rc) {
		log_error("cannot set up the Zoho client", "err=%s", log_q(rc_str(rc)));
		return batch_exit(rc);
	}
	return -1;
}

/* Connect, migrate, then the Zoho client. Returns -1 to go on, or an exit
 * code. */
static int start_connections(struct batch_env *env)
{
	const struct batch_prog *prog = env->prog;

	/* Down or unreachable: 75, try again; refused (password, pg_hba.conf) or
	 * a conninfo libpq cannot parse: 77 / 78, retrying cannot help. */
	enum rc crc = db_connect(env->cfg->conninfo, env->cfg->schema, &env->data);
	if (crc != RC_OK) {
		log_error("cannot connect to PostgreSQL", "err=%s", log_q(db_error(env->data)));
		if (!prog->db_optional)
			return batch_exit(crc);
		goto without_db;
	}
	int applied = 0;
	crc = db_migrate(env->data, &applied);
	if (crc != RC_OK) {
		if (!prog->db_optional)
			return EX_TEMPFAIL;
		crc = RC_DB; /* a migration that failed is temporary, as above */
		goto without_db;
	}
	/* The optional triggers first, so that a history table they create
	 * is granted too; a failure is logged and does not stop the sync. */
	if (table_hooks_apply(env->data, env->cfg->notify_changes, env->cfg->history) != RC_OK)
		log_warn("module table triggers not set this run", "");
	/* [database] read_role reads the module tables and nothing else; a
	 * failure is logged and does not stop the sync. */
	if (schema_grant_read(env->data, env->cfg->read_role) != RC_OK)
		log_warn("read_role privileges not checked this run", "");
	return prog->needs_zoho ? start_zoho(env) : -1;

without_db:
	env->db_rc = crc;
	snprintf(env->db_err, sizeof(env->db_err), "%s", db_error(env->data));
	db_close(env->data);
	env->data = NULL;
	return -1;
}

/* Parse options and set everything up. Returns -1 to go on, or an exit
 * code to return at once (--help, --version, errors); batch_end either way. */
static int batch_start(struct batch_env *env, const struct batch_prog *prog, int argc,
		       char **argv)
{
	const char *config = NULL;
	enum log_level level = LOG_LVL_INFO;
	char err[CFG_ERR_LEN];
	bool check_creds = false;

	memset(env, 0, sizeof(*env));
	env->prog = prog;
	int code = parse_options(env, argc, argv, &config, &level, &check_creds);
	if (code >= 0)
		return code;
	log_init(prog->name, level);
	env->tty = isatty(STDERR_FILENO) && level != LOG_LVL_DEBUG;
	if (cfg_load(config, &env->cfg, err) != RC_OK) {
		log_error("configuration error", "err=%s", log_q(err));
		return EX_CONFIG;
	}
	cfg_register_secrets(env->cfg);
	if (env->module && cfg_module_index(env->cfg, env->module) < 0) {
		log_error("module is not configured", "module=%s modules=%s", log_q(env->module),
			  log_q(env->cfg->modules));
		return EX_USAGE;
	}
	if (check_creds)
		return batch_exit(credcheck_run(env->cfg, env->module, stdout));

	stop_flag = &env->stop;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: blocking calls return EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return start_connections(env);
}

static void batch_end(struct batch_env *env)
{
	zoho_free(env->zoho);
	env->zoho = NULL;
	if (env->prog && env->prog->needs_zoho)
		http_global_cleanup();
	db_close(env->tokdb);
	db_close(env->data);
	env->tokdb = env->data = NULL;
	log_clear_secrets();
	cfg_free(env->cfg);
	env->cfg = NULL;
	stop_flag = NULL;
}

size_t batch_modules(const struct batch_env *env, const char **mods, size_t cap)
{
	if (env->module) {
		mods[0] = env->module;
		return 1;
	}
	size_t n = 0;
	for (size_t i = 0; i < env->cfg->nmodules && n < cap; i++)
		mods[n++] = env->cfg->module_list[i];
	return n;
}

/* Take the (job, module) advisory lock on env->data; RC_LOCKED, logged
 * with a clear message, when another copy holds it. An exporting program
 * then waits (up to [sync] bulk_wait) for the module's export lock while
 * another exporting program holds it. */
static enum rc batch_lock(struct batch_env *env, const char *module)
{
	bool got = false;
	enum rc rc = db_try_lock(env->data, env->prog->name, module, &got);
	if (rc) {
		log_error("cannot take the job lock", "err=%s", log_q(db_error(env->data)));
		return rc;
	}
	if (!got) {
		/* Harmless (docs/errors.md): the next run goes ahead. */
		log_warn("already running: another copy holds the lock for this job and module",
			  "job=%s module=%s", env->prog->name, log_q(module));
		return RC_LOCKED;
	}
	if (!env->prog->exports)
		return RC_OK;
	/* Another exporting program (initial, incremental, reconcile) on this
	 * module: wait for it rather than skip, so a nightly reconcile does not
	 * lose to the five-minute incremental sync. */
	for (long waited = 0;; waited++) {
		rc = db_try_lock(env->data, "export", module, &got);
		if (rc || got)
			break;
		if (waited == 0)
			log_info("another export of this module is running; waiting", "");
		if (env->stop || waited >= env->cfg->bulk_wait) {
			log_warn("another export of this module is still running", "waited_s=%ld",
				  waited);
			rc = env->stop ? RC_INTERRUPTED : RC_LOCKED;
			break;
		}
		sleep(1);
	}
	if (rc || !got) {
		if (db_unlock(env->data, env->prog->name, module) != RC_OK)
			log_debug("unlock failed (the session ends anyway)", "");
		return rc ? rc : RC_LOCKED;
	}
	return RC_OK;
}

static void batch_unlock(struct batch_env *env, const char *module)
{
	if (env->prog->exports && db_unlock(env->data, "export", module) != RC_OK)
		log_debug("unlock failed (the session ends anyway)", "");
	if (db_unlock(env->data, env->prog->name, module) != RC_OK)
		log_debug("unlock failed (the session ends anyway)", "");
}

struct bulk_ctx batch_bulk_ctx(struct batch_env *env, int64_t run_id)
{
	struct bulk_ctx ctx = {
		.cfg = env->cfg,
		.data = env->data,
		.zoho = env->zoho,
		.stop = &env->stop,
		.progress = env->tty,
		.run_id = run_id,
	};
	return ctx;
}

int batch_exit(enum rc rc)
{
	return rc_exit_code(rc);
}

/* Close a run's row in `runs`: the outcome follows from rc (ok, failed,
 * interrupted; "dry-run" when run->dry_run and rc is RC_OK), run->err
 * (filled with rc's name when empty) becomes the message and the module's
 * last_error. Nothing without a row. */
static void batch_finish_run(struct batch_env *env, const char *module, enum rc rc,
			     struct batch_run *run)
{
	const char *outcome = rc == RC_OK ? (run->dry_run ? "dry-run" : "ok")
			    : rc == RC_INTERRUPTED ? "interrupted" : "failed";

	if (!run->id)
		return;
	if (rc && !run->err[0])
		snprintf(run->err, sizeof(run->err), "%s", rc_str(rc));
	if (rc && module && sync_set_error(env->data, module, run->err))
		log_warn("cannot record the error", "err=%s", log_q(db_error(env->data)));
	if (run_finish(env->data, run->id, outcome, &run->counts, rc ? run->err : NULL,
		       run->details))
		log_warn("cannot record the run", "err=%s", log_q(db_error(env->data)));
	if (credits_prune(env->data))
		log_warn("cannot prune the credit counts", "err=%s", log_q(db_error(env->data)));
}

/* One module: its lock, its run row, the program's work, the row closed. */
static enum rc run_module(struct batch_env *env, const char *module)
{
	const struct batch_prog *prog = env->prog;
	struct batch_run run;
	enum rc rc;

	memset(&run, 0, sizeof(run));
	log_set_module(module);
	rc = batch_lock(env, module);
	if (rc)
		goto out_nolock;
	if (prog->run_kind)
		rc = run_start(env->data, prog->run_kind, module, &run.id);
	if (!rc)
		rc = prog->module_fn(env, module, &run);
	batch_finish_run(env, module, rc, &run);
	batch_unlock(env, module);
out_nolock:
	free(run.details);
	log_set_module(NULL);
	return rc;
}

/* Every module (--module, or all configured), until SIGTERM: the first
 * failure's result. */
static enum rc run_modules(struct batch_env *env)
{
	const char *mods[CFG_MAX_MODULES];
	enum rc worst = RC_OK;
	size_t n = batch_modules(env, mods, CFG_MAX_MODULES);

	for (size_t i = 0; i < n && !env->stop; i++) {
		enum rc rc = run_module(env, mods[i]);
		if (rc && !worst)
			worst = rc;
	}
	if (env->stop && !worst)
		worst = RC_INTERRUPTED;
	return worst;
}

int batch_main(const struct batch_prog *prog, int argc, char **argv)
{
	struct batch_env env;
	enum rc rc;
	int code = batch_start(&env, prog, argc, argv);

	if (code >= 0) {
		batch_end(&env);
		return code;
	}
	if (prog->run_all) {
		rc = prog->run_all(&env);
	} else {
		if (prog->before)
			prog->before(&env);
		rc = run_modules(&env);
	}
	batch_end(&env);
	return batch_exit(rc);
}

/* The index of the program's option `name` in prog->opts, or -1. */
static int opt_index(const struct batch_env *env, const char *name)
{
	const struct batch_opt *o = env->prog->opts;

	for (int i = 0; o && o[i].name && i < BATCH_MAX_OPTS; i++) {
		if (!strcmp(o[i].name, name))
			return i;
	}
	return -1;
}

bool batch_flag(const struct batch_env *env, const char *name)
{
	int i = opt_index(env, name);
	return i >= 0 && env->opt_given[i];
}

const char *batch_arg(const struct batch_env *env, const char *name)
{
	int i = opt_index(env, name);
	return i >= 0 ? env->opt_arg[i] : NULL;
}
