/* test_batchrt.c — batch_main(), the frame every batch program runs in:
 * the exit codes of --version, usage errors and a bad config; a program's
 * own options reaching its work (batch_flag, batch_arg); and, against
 * PostgreSQL (ZCRM_TEST_CONNINFO, set by scripts/run-unit.sh), the
 * per-module frame: every module worked on in turn, each run's row in
 * zcrm.runs closed with its outcome, counts, message and details, the
 * module's last_error set, and the exit code of the first failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "batchrt.h"
#include "compiler.h"
#include "testdb.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#define TEST_SCHEMA "zcrm_unit_batchrt"

static const struct batch_opt opts[] = {
	{"force", 0, NULL, "a flag"},
	{"name", 1, "NAME", "an option with an argument"},
	{"dry-run", 0, NULL, "a flag not given"},
	{NULL, 0, NULL, NULL},
};

/* An empty config file, mode 0600, at path (cap bytes). */
static void empty_config(char *path, size_t cap)
{
	snprintf(path, cap, "/tmp/zcrm-unit-batchrt-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
}

static int run(const struct batch_prog *prog, int argc, const char **argv)
{
	optind = 0; /* getopt starts afresh for every call */
	return batch_main(prog, argc, (char **)argv);
}

static enum rc never(struct batch_env *env)
{
	fail_msg("the work ran");
	return RC_INTERNAL;
}

static void test_exit_codes_before_the_work(void **state)
{
	const struct batch_prog prog = {.name = "unit", .summary = "s", .description = "d",
					 .opts = opts, .db_optional = true, .run_all = never};
	char conf[64];

	(void)state;
	empty_config(conf, sizeof(conf));
	const char *version[] = {"unit", "--version"};
	assert_int_equal(run(&prog, 2, version), EX_OK);
	const char *stray[] = {"unit", "--config", conf, "stray"};
	assert_int_equal(run(&prog, 4, stray), EX_USAGE);
	const char *bogus[] = {"unit", "--config", conf, "--bogus"};
	assert_int_equal(run(&prog, 4, bogus), EX_USAGE);
	const char *noarg[] = {"unit", "--config", conf, "--name"};
	assert_int_equal(run(&prog, 4, noarg), EX_USAGE);
	const char *missing[] = {"unit", "--config", "/nonexistent/zcrm.conf"};
	assert_int_equal(run(&prog, 3, missing), EX_CONFIG);
	const char *module[] = {"unit", "--config", conf, "--module", "Nope"};
	assert_int_equal(run(&prog, 5, module), EX_USAGE);
	unlink(conf);
}

static enum rc check_options(struct batch_env *env)
{
	assert_true(batch_flag(env, "force"));
	assert_string_equal(batch_arg(env, "name"), "x y");
	assert_false(batch_flag(env, "dry-run"));
	assert_null(batch_arg(env, "dry-run"));
	assert_false(batch_flag(env, "no-such-option"));
	/* db_optional: PostgreSQL is not there, and the work runs all the same */
	assert_null(env->data);
	assert_int_not_equal(env->db_rc, RC_OK);
	return RC_OK;
}

static void test_options_reach_the_work(void **state)
{
	const struct batch_prog prog = {.name = "unit", .summary = "s", .description = "d",
					 .opts = opts, .db_optional = true,
					 .run_all = check_options};
	char conf[64];

	(void)state;
	empty_config(conf, sizeof(conf));
	setenv("ZCRM_DATABASE_CONNINFO", "host=/nonexistent/zcrm-unit dbname=none", 1);
	const char *argv[] = {"unit", "-q", "--config", conf, "--name", "x y", "--force"};
	assert_int_equal(run(&prog, 7, argv), EX_OK);
	unsetenv("ZCRM_DATABASE_CONNINFO");
	unlink(conf);
}

/* The modules the frame handed to module_work, in order. */
static char seen[256];

static enum rc module_work(struct batch_env *env, const char *module, struct batch_run *run)
{
	struct sync_row row;

	strcat(seen, module);
	strcat(seen, ";");
	assert_true(run->id > 0);
	/* the module's sync_state row, as every program's work reads it */
	assert_int_equal(sync_get(env->data, module, &row), RC_OK);
	if (!strcmp(module, "Contacts")) {
		run->counts = (struct run_counts){1, 2, 3, 4};
		snprintf(run->err, sizeof(run->err), "it broke");
		return RC_ZOHO;
	}
	if (!strcmp(module, "Deals"))
		return RC_HTTP; /* no message: rc_str() is recorded */
	run->details = xstrdup("{\"k\": 1}");
	run->dry_run = batch_flag(env, "dry-run");
	return RC_OK;
}

static char *query(struct db *db, const char *sql)
{
	char *v = NULL;
	assert_int_equal(db_query_value(db, sql, 0, NULL, &v), RC_OK);
	assert_non_null(v);
	return v;
}

static void test_module_frame(void **state)
{
	const struct batch_prog prog = {.name = "unit", .summary = "s", .description = "d",
					 .opts = opts, .run_kind = "unit",
					 .module_fn = module_work};
	struct db *db = testdb_open(TEST_SCHEMA, false);
	char conf[64];

	(void)state;
	assert_non_null(db); /* batch_main migrates the schema itself */
	empty_config(conf, sizeof(conf));
	setenv("ZCRM_DATABASE_CONNINFO", getenv("ZCRM_TEST_CONNINFO"), 1);
	setenv("ZCRM_DATABASE_SCHEMA", TEST_SCHEMA, 1);
	setenv("ZCRM_SYNC_MODULES", "Leads,Contacts,Deals", 1);
	const char *argv[] = {"unit", "-q", "--config", conf, "--dry-run"};
	/* every module, and the exit code of the first failure (RC_ZOHO) */
	assert_int_equal(run(&prog, 5, argv), rc_exit_code(RC_ZOHO));
	assert_string_equal(seen, "Leads;Contacts;Deals;");

	char *rows = query(db, "SELECT string_agg(concat_ws('|', module, kind, outcome, pages,"
			       " rows_seen, rows_applied, rows_deleted, message, details::text),"
			       " ';' ORDER BY id) FROM runs");
	assert_string_equal(rows, "Leads|unit|dry-run|0|0|0|0|{\"k\": 1};"
				  "Contacts|unit|failed|1|2|3|4|it broke;"
				  "Deals|unit|failed|0|0|0|0|HTTP transport error");
	free(rows);
	char *errs = query(db, "SELECT string_agg(module || '=' || last_error, ';' ORDER BY module)"
			       " FROM sync_state WHERE last_error IS NOT NULL");
	assert_string_equal(errs, "Contacts=it broke;Deals=HTTP transport error");
	free(errs);

	/* --module: that one only; a run that went through closes as ok */
	seen[0] = '\0';
	const char *one[] = {"unit", "-q", "--config", conf, "--module", "Leads"};
	assert_int_equal(run(&prog, 6, one), EX_OK);
	assert_string_equal(seen, "Leads;");
	char *last = query(db, "SELECT outcome FROM runs ORDER BY id DESC LIMIT 1");
	assert_string_equal(last, "ok");
	free(last);

	unsetenv("ZCRM_DATABASE_CONNINFO");
	unsetenv("ZCRM_DATABASE_SCHEMA");
	unsetenv("ZCRM_SYNC_MODULES");
	unlink(conf);
	void *st = db;
	testdb_teardown(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_codes_before_the_work),
		cmocka_unit_test(test_options_reach_the_work),
		cmocka_unit_test(test_module_frame),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
