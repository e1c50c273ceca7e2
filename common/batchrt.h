/* batchrt.h — what every cron-run batch program does before and after its
 * job: options common to all (--config, --module, -v, -q, --help,
 * --version), configuration, signals (SIGTERM/SIGINT set a stop flag that
 * every wait checks), two PostgreSQL connections (data + token), pending
 * migrations, the Zoho client, per-(job, module) advisory locks, and the
 * mapping of results to sysexits codes. */
#ifndef ZCRM_BATCHRT_H
#define ZCRM_BATCHRT_H

#include "bulk.h"
#include "cfg.h"
#include "compiler.h"
#include "db.h"
#include "rc.h"
#include "zoho.h"

#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

struct batch_opt {
	const char *name;       /* long option without "--" */
	int has_arg;            /* 0 or 1 */
	const char *arg_name;   /* for --help */
	const char *help;
	const char **str_value; /* set when has_arg */
	bool *flag;             /* set when !has_arg */
};

struct batch_prog {
	const char *name;       /* "initial_sync" */
	const char *summary;    /* one line */
	const char *description;/* paragraph(s) for --help */
	const struct batch_opt *opts; /* extra options, NULL-terminated by name */
	bool needs_zoho;
	/* Runs Bulk Read exports: besides its own lock it takes the module's
	 * export lock, shared with the other exporting programs, because they
	 * share the export checkpoint in sync_state. */
	bool exports;
	/* Goes on without PostgreSQL (status: what it can know without it):
	 * when the connection or the migrations fail, data is NULL and
	 * db_rc/db_err say why, instead of batch_start returning. */
	bool db_optional;
};

struct batch_env {
	const struct batch_prog *prog;
	struct cfg *cfg;
	struct db *data;        /* locks, merges, bookkeeping */
	struct db *tokdb;       /* the Zoho client's connection */
	struct zoho *zoho;      /* NULL unless prog->needs_zoho */
	const char *module;     /* --module, or NULL for all configured */
	bool json;              /* --json, where the program offers it */
	bool tty;               /* stderr is a terminal */
	atomic_int stop;
	enum rc db_rc;          /* db_optional: why data is NULL */
	char db_err[512];
};

/* Parse options and set everything up. Returns -1 to go on, or an exit
 * code to return at once (--help, --version, errors). */
int batch_start(struct batch_env *env, const struct batch_prog *prog, int argc, char **argv);
void batch_end(struct batch_env *env);
/* The modules to work on: --module, or every configured one. */
size_t batch_modules(const struct batch_env *env, const char **mods, size_t cap);
/* Take the (job, module) advisory lock on env->data; RC_LOCKED, logged
 * with a clear message, when another copy holds it. An exporting program
 * then waits (up to [sync] bulk_wait) for the module's export lock while
 * another exporting program holds it. */
enum rc batch_lock(struct batch_env *env, const char *module) ZCRM_MUSTCHECK;
void batch_unlock(struct batch_env *env, const char *module);
/* The export context of a run of this program. */
struct bulk_ctx batch_bulk_ctx(struct batch_env *env, int64_t run_id);
/* The exit code for a run's overall result. */
int batch_exit(enum rc rc);

/* Run fn for every module (--module, or all configured), until SIGTERM;
 * then batch_end(). Returns the exit code of the first failure. */
typedef enum rc (*batch_module_fn)(struct batch_env *env, const char *module);
int batch_run_modules(struct batch_env *env, batch_module_fn fn);

/* Close a run's row in `runs`: the outcome follows from rc (ok, failed,
 * interrupted; "dry-run" when dry_run and rc is RC_OK), err (filled with
 * rc's name when empty) becomes the message and the module's last_error. */
struct run_counts;
void batch_finish_run(struct batch_env *env, const char *module, int64_t run_id, enum rc rc,
		      const struct run_counts *counts, char *err, size_t errlen,
		      const char *details, bool dry_run);

#endif
