/* batchrt.h — what every cron-run batch program does before and after its
 * job, so that a program is a table of its options plus the function that
 * does its work (batch_main): options common to all (--config, --module,
 * -v, -q, --help, --version), configuration, signals (SIGTERM/SIGINT set a stop flag that
 * every wait checks), two PostgreSQL connections (data + token), pending
 * migrations, the Zoho client, per-(job, module) advisory locks, the row of
 * each module's run in zcrm.runs, and the mapping of results to sysexits
 * codes. */
#ifndef ZCRM_BATCHRT_H
#define ZCRM_BATCHRT_H

#include "bulk.h"
#include "cfg.h"
#include "compiler.h"
#include "db.h"
#include "rc.h"
#include "syncstate.h"
#include "zoho.h"

#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

/* Options of one program besides the common ones, at most BATCH_MAX_OPTS;
 * what a run was given is read with batch_flag() / batch_arg(). */
#define BATCH_MAX_OPTS 8

struct batch_opt {
	const char *name;       /* long option without "--" */
	int has_arg;            /* 0 or 1 */
	const char *arg_name;   /* for --help */
	const char *help;
};

struct batch_env;

/* One module's row in zcrm.runs, filled by the program's module function
 * and closed by batch_main (batch_finish_run). */
struct batch_run {
	int64_t id;             /* 0 when the program keeps no runs */
	struct run_counts counts;
	char err[1024];         /* the message; rc_str(rc) when left empty */
	char *details;          /* JSON for runs.details or NULL; batch_main frees it */
	bool dry_run;           /* an RC_OK run closes as "dry-run" */
};

/* The work on one module, run by batch_main under the module's lock with
 * the log's module set, the run row (if any) already started. */
typedef enum rc (*batch_module_fn)(struct batch_env *env, const char *module,
				   struct batch_run *run);

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
	 * db_rc/db_err say why, instead of the program stopping. */
	bool db_optional;
	/* The job's name in zcrm.runs ("initial"): a row per module and run;
	 * NULL for none. */
	const char *run_kind;
	/* The work: run_all once for the whole run, or else before (if any)
	 * once and then module_fn for every module until SIGTERM. */
	enum rc (*run_all)(struct batch_env *env);
	void (*before)(struct batch_env *env);
	batch_module_fn module_fn;
};

struct batch_env {
	const struct batch_prog *prog;
	struct cfg *cfg;
	struct db *data;        /* locks, merges, bookkeeping */
	struct db *tokdb;       /* the Zoho client's connection */
	struct zoho *zoho;      /* NULL unless prog->needs_zoho */
	const char *module;     /* --module, or NULL for all configured */
	bool tty;               /* stderr is a terminal */
	atomic_int stop;
	enum rc db_rc;          /* db_optional: why data is NULL */
	char db_err[512];
	bool opt_given[BATCH_MAX_OPTS];       /* prog->opts[i] was given */
	const char *opt_arg[BATCH_MAX_OPTS];  /* and its argument */
};

/* The whole program: options, set-up, the work (prog->run_all, or
 * prog->module_fn per module), clean-up; returns the exit code. */
int batch_main(const struct batch_prog *prog, int argc, char **argv);
/* Whether the program's option `name` (one of prog->opts) was given, and
 * its argument (NULL when not given). */
bool batch_flag(const struct batch_env *env, const char *name);
const char *batch_arg(const struct batch_env *env, const char *name);

/* The modules to work on: --module, or every configured one. */
size_t batch_modules(const struct batch_env *env, const char **mods, size_t cap);
/* The export context of a run of this program. */
struct bulk_ctx batch_bulk_ctx(struct batch_env *env, int64_t run_id);
/* The exit code for a run's overall result. */
int batch_exit(enum rc rc);

#endif
