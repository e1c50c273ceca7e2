/* test_merge_rule.c — the freshness rule (merge.h) pinned against a real
 * PostgreSQL (ZCRM_TEST_CONNINFO): each case of
 * tests/unit/data/merge_rule.txt (a stored row, the staged rows, the row
 * expected after, how many rows the statement wrote) runs through the real
 * staging and merge path once per form of the merge statement (MERGE,
 * INSERT … ON CONFLICT, its dedup variant), pinned by
 * merge_stage_pin_form. A change to the rule's SQL that changes an outcome
 * fails here with the case's name and form.
 *
 * Each bulk case runs once more through the prefilter (prefilter.h):
 * only the staged rows it keeps are merged, and the outcome must be the
 * same - a row it drops is one the rule refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "db.h"
#include "merge.h"
#include "prefilter.h"
#include "schema.h"
#include "testdb.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TEST_SCHEMA "zcrm_unit_merge_rule"
#define CASES "tests/unit/data/merge_rule.txt"
#define BASE 1700000000LL /* the cases' times are seconds after this */
#define NCOLS 8

struct fixture {
	struct db *db;
	struct module_schema *schema;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const struct zfield fields[] = {
		{.api_name = "id", .data_type = "bigint", .json_type = "string"},
		{.api_name = "Modified_Time", .data_type = "datetime", .json_type = "string"},
		{.api_name = "Val", .data_type = "text", .json_type = "string"},
	};

	if (!f)
		return -1;
	*state = f;
	f->db = testdb_open(TEST_SCHEMA, true);
	if (!f->db)
		return -1;
	if (schema_ensure_module(f->db, "Things", fields, 3, NULL) ||
	    schema_load(f->db, "Things", &f->schema)) {
		fprintf(stderr, "setup: %s\n", db_error(f->db));
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->db)
		db_rollback(f->db); /* after a failed case */
	if (f->db && testdb_drop(f->db))
		fprintf(stderr, "cleanup failed: %s\n", db_error(f->db));
	module_schema_free(f->schema);
	db_close(f->db);
	free(f);
	return 0;
}

/* ---- the cases file ---- */

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* "-" → NULL, else BASE + the seconds, as SQL text for to_timestamp. */
static void time_sql(struct buf *b, const char *t)
{
	if (!strcmp(t, "-"))
		buf_adds(b, "NULL");
	else
		buf_printf(b, "to_timestamp(%lld)", BASE + atoll(t));
}

/* One comma-separated field of a cell, copied into out. */
static void part(const char *cell, int i, char *out, size_t cap)
{
	const char *p = cell;
	for (int k = 0; k < i && p; k++) {
		p = strchr(p, ',');
		if (p)
			p++;
	}
	if (!p) {
		fail_msg("cell '%s' has no part %d", cell, i);
		return;
	}
	size_t n = strcspn(p, ",");
	snprintf(out, cap, "%.*s", (int)n, p);
}

static void put_stored(struct db *db, const char *stored)
{
	char mt[32], del[32], syn[32], val[64];
	struct buf sql = {0};

	if (db_exec(db, "TRUNCATE things", 0, NULL, NULL))
		fail_msg("truncate: %s", db_error(db));
	if (!strcmp(stored, "none"))
		return;
	part(stored, 0, mt, sizeof(mt));
	part(stored, 1, del, sizeof(del));
	part(stored, 2, syn, sizeof(syn));
	part(stored, 3, val, sizeof(val));
	buf_adds(&sql, "INSERT INTO things (id, modified_time, deleted_at, synced_at, source, val)"
		       " VALUES (1, ");
	time_sql(&sql, mt);
	buf_adds(&sql, ", ");
	time_sql(&sql, del);
	buf_adds(&sql, ", ");
	time_sql(&sql, syn);
	buf_adds(&sql, ", 'bulk', ");
	if (!strcmp(val, "-"))
		buf_adds(&sql, "NULL)");
	else
		buf_printf(&sql, "'%s')", val);
	if (db_exec(db, buf_str(&sql), 0, NULL, NULL))
		fail_msg("%s: %s", buf_str(&sql), db_error(db));
	buf_free(&sql);
}

/* The staged rows "mt:val;mt:val" as the CSV a Bulk Read page holds. */
static void staged_csv(const char *staged, struct buf *csv)
{
	char *copy = strdup(staged), *save = NULL;

	assert_non_null(copy);
	for (char *row = strtok_r(copy, ";", &save); row; row = strtok_r(NULL, ";", &save)) {
		char *colon = strchr(row, ':'), stamp[40];
		struct tm tm;
		assert_non_null(colon);
		*colon = '\0';
		time_t t = (time_t)(BASE + atoll(trim(row)));
		gmtime_r(&t, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S+00:00", &tm);
		buf_printf(csv, "1,%s,%s\n", stamp, trim(colon + 1));
	}
	free(copy);
}

/* The stored row now as "mt,deleted,val" in the cases' notation. */
static char *stored_now(struct db *db)
{
	char *v = NULL;
	char sql[512];

	snprintf(sql, sizeof(sql),
		 "SELECT coalesce((extract(epoch FROM modified_time) - %lld)::bigint::text, '-')"
		 " || ',' || coalesce((extract(epoch FROM deleted_at) - %lld)::bigint::text, '-')"
		 " || ',' || coalesce(val, '-') FROM things WHERE id = 1",
		 BASE, BASE);
	if (db_query_value(db, sql, 0, NULL, &v) != RC_OK)
		fail_msg("%s: %s", sql, db_error(db));
	return v ? v : strdup("none");
}

static void run_case(struct fixture *f, const char *name, char **col, enum merge_form form,
		     const char *form_name)
{
	static const char *const headers[] = {"id", "Modified_Time", "Val"};
	struct merge_stage *st = NULL;
	struct buf csv = {0};
	char err[512] = "";
	long rows = 0, wrote = -1;
	enum merge_rule rule = !strcmp(col[1], "fetch") ? MERGE_FETCH : MERGE_BULK;
	int64_t tie = strcmp(col[2], "-") ? BASE + atoll(col[2]) : 0;

	put_stored(f->db, col[3]);
	staged_csv(col[4], &csv);
	if (db_begin(f->db) ||
	    merge_stage_begin(f->db, f->schema, headers, 3, &st, err, sizeof(err)) ||
	    merge_stage_put(st, csv.s, csv.len) || merge_stage_end(st, NULL, &rows))
		fail_msg("%s [%s]: staging: %s %s", name, form_name, err, db_error(f->db));
	merge_stage_pin_form(st, form);
	if (merge_apply(st, rule, tie, col[1], &wrote, err, sizeof(err)))
		fail_msg("%s [%s]: %s", name, form_name, err);
	merge_stage_free(st);
	if (db_commit(f->db))
		fail_msg("%s [%s]: commit: %s", name, form_name, db_error(f->db));
	char *now = stored_now(f->db);
	if (strcmp(now, col[5]) || wrote != atol(col[6]))
		fail_msg("%s [%s]: got %s, wrote %ld; expected %s, wrote %s", name, form_name, now,
			 wrote, col[5], col[6]);
	free(now);
	buf_free(&csv);
}

/* prefilter_emit_fn: the kept runs, appended to the buf ctx. */
static enum rc keep_runs(void *ctx, const struct prefilter_kept *k, char *err, size_t errlen)
{
	struct buf *kept = ctx;

	for (size_t i = 0; i < k->nruns; i++)
		buf_add(kept, k->bytes + k->runs[i][0], k->runs[i][1] - k->runs[i][0]);
	return RC_OK;
}

/* The case with only the rows the prefilter keeps; *dropped counts the
 * others. */
static void run_prefiltered(struct fixture *f, const char *name, char **col, long *dropped)
{
	static const char *const headers[] = {"id", "Modified_Time", "Val"};
	struct merge_stage *st = NULL;
	struct prefilter *pf = NULL;
	struct buf csv = {0}, kept = {0};
	char err[512] = "";
	long rows = 0, wrote = -1;
	int64_t tie = strcmp(col[2], "-") ? BASE + atoll(col[2]) : 0;

	put_stored(f->db, col[3]);
	staged_csv(col[4], &csv);
	if (prefilter_new(f->db, f->schema, headers, 3, MERGE_BULK, tie, &pf, err, sizeof(err)))
		fail_msg("%s [prefiltered]: %s", name, err);
	assert_non_null(pf);
	prefilter_put(pf, csv.s, csv.len);
	if (prefilter_cut(pf, 1, keep_runs, &kept, err, sizeof(err)) ||
	    prefilter_drain(pf, keep_runs, &kept, err, sizeof(err)))
		fail_msg("%s [prefiltered]: %s", name, err);
	*dropped += prefilter_dropped(pf);
	prefilter_free(pf);
	if (db_begin(f->db) ||
	    merge_stage_begin(f->db, f->schema, headers, 3, &st, err, sizeof(err)) ||
	    (kept.len && merge_stage_put(st, kept.s, kept.len)) ||
	    merge_stage_end(st, NULL, &rows) ||
	    merge_apply(st, MERGE_BULK, tie, "bulk", &wrote, err, sizeof(err)))
		fail_msg("%s [prefiltered]: %s %s", name, err, db_error(f->db));
	merge_stage_free(st);
	if (db_commit(f->db))
		fail_msg("%s [prefiltered]: commit: %s", name, db_error(f->db));
	char *now = stored_now(f->db);
	if (strcmp(now, col[5]) || wrote != atol(col[6]))
		fail_msg("%s [prefiltered]: got %s, wrote %ld; expected %s, wrote %s", name, now,
			 wrote, col[5], col[6]);
	free(now);
	buf_free(&csv);
	buf_free(&kept);
}

static void test_every_case_every_form(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *name;
		enum merge_form form;
	} forms[] = {{"merge", MERGE_FORM_MERGE}, {"upsert", MERGE_FORM_UPSERT},
		     {"dedup", MERGE_FORM_DEDUP}};
	FILE *in = fopen(CASES, "r");
	char line[512];
	int cases = 0, runs = 0;
	long dropped = 0;

	if (!in)
		fail_msg("cannot open %s (run from the repository's top directory)", CASES);
	while (fgets(line, sizeof(line), in)) {
		char *col[NCOLS], *save = NULL, *p = trim(line);
		int n = 0;
		if (!*p || *p == '#')
			continue;
		for (char *c = strtok_r(p, "|", &save); c && n < NCOLS; c = strtok_r(NULL, "|", &save))
			col[n++] = trim(c);
		if (n != NCOLS)
			fail_msg("%s: a case needs %d columns: %s", CASES, NCOLS, p);
		cases++;
		for (size_t i = 0; i < sizeof(forms) / sizeof(*forms); i++) {
			if (strcmp(col[7], "all") && !strstr(col[7], forms[i].name))
				continue;
			run_case(f, col[0], col, forms[i].form, forms[i].name);
			runs++;
		}
		if (!strcmp(col[1], "bulk")) {
			run_prefiltered(f, col[0], col, &dropped);
			runs++;
		}
	}
	fclose(in);
	assert_true(cases >= 20);
	/* Not vacuous: the refused cases' rows are dropped. */
	assert_true(dropped >= 5);
	print_message("%d cases, %d runs, %ld rows dropped by the prefilter\n", cases, runs,
		      dropped);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_case_every_form),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
