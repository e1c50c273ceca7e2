/* load_page — test/bench tool: merge one bulk page (a ZIP as Zoho sends it,
 * or a plain CSV) into a module table in one transaction, as initial_sync
 * does after downloading, and print what happened as JSON.
 *
 *   load_page --config FILE --module Leads (--zip F | --csv F) [--rule bulk|fetch]
 *             [--one-connection | --chunk-bytes N] [--staged] [--stage-all]
 *             [--tie-before EPOCH]
 *
 * --one-connection stages the whole page in one TEMP table on the merging
 * connection instead of chunks on a second one (bulkload.h: parallel);
 * --chunk-bytes sets the chunk size (tests cut small pages into many);
 * --staged stages and merges a page even into an empty table (bulkload.h:
 * direct, which initial_sync uses); --stage-all stages every row, without
 * the prefilter (bulkload.h: stage_all); --tie-before gives the export
 * job's creation time (epoch seconds) as initial_sync does (merge.h: the
 * bulk rule's ties), 0 by default.
 */
#include "bulkload.h"
#include "cfg.h"
#include "db.h"
#include "log.h"
#include "schema.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"module", required_argument, NULL, 'm'},
		{"zip", required_argument, NULL, 'z'},	  {"csv", required_argument, NULL, 'f'},
		{"rule", required_argument, NULL, 'r'},	  {"one-connection", no_argument, NULL, '1'},
		{"chunk-bytes", required_argument, NULL, 'k'},	  {"staged", no_argument, NULL, 's'},
		{"stage-all", no_argument, NULL, 'a'},	  {"tie-before", required_argument, NULL, 't'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL, *module = "Leads", *zip = NULL, *csv = NULL;
	enum merge_rule rule = MERGE_BULK;
	bool parallel = true, direct = true, stage_all = false;
	size_t chunk_bytes = 0;
	int64_t tie_before = 0;
	struct cfg *cfg = NULL;
	struct db *db = NULL;
	struct module_schema *schema = NULL;
	struct bulkload_stats st;
	char err[1024] = "";
	int c, status = EX_SOFTWARE;
	enum rc rc;

	while ((c = getopt_long(argc, argv, "c:m:z:f:r:", opts, NULL)) != -1) {
		switch (c) {
		case '1':
			parallel = false;
			break;
		case 's':
			direct = false;
			break;
		case 'a':
			stage_all = true;
			break;
		case 't':
			tie_before = strtoll(optarg, NULL, 10);
			break;
		case 'k':
			chunk_bytes = strtoul(optarg, NULL, 10);
			break;
		case 'c':
			config = optarg;
			break;
		case 'm':
			module = optarg;
			break;
		case 'z':
			zip = optarg;
			break;
		case 'f':
			csv = optarg;
			break;
		case 'r':
			rule = !strcmp(optarg, "fetch") ? MERGE_FETCH : MERGE_BULK;
			break;
		default:
			return EX_USAGE;
		}
	}
	log_init("load_page", LOG_LVL_INFO);
	if (!zip == !csv) {
		fprintf(stderr, "load_page: give exactly one of --zip and --csv\n");
		return EX_USAGE;
	}
	if (cfg_load(config, &cfg, err) != RC_OK) {
		log_error("configuration error", "err=%s", log_q(err));
		return EX_CONFIG;
	}
	if (db_connect(cfg->conninfo, cfg->schema, &db) != RC_OK) {
		log_error("cannot connect", "err=%s", log_q(db_error(db)));
		status = EX_TEMPFAIL;
		goto out;
	}
	rc = schema_load(db, module, &schema);
	if (rc) {
		log_error("module table not ready", "module=%s", log_q(module));
		status = rc_exit_code(rc);
		goto out;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct bulkload_opts bo = {.rule = rule,
				   .tie_before = tie_before,
				   .source = "bulk",
				   .parallel = parallel,
				   .chunk_bytes = chunk_bytes,
				   .direct = direct,
				   .stage_all = stage_all};
	rc = db_begin(db);
	if (!rc) {
		if (zip) {
			struct zipstream_limits lim = {(uint64_t)cfg->max_unzipped,
						       (uint64_t)cfg->max_ratio, 1u << 20};
			rc = bulkload_zip(db, schema, zip, &lim, &bo, &st, err, sizeof(err));
		} else {
			rc = bulkload_csv(db, schema, csv, &bo, &st, err, sizeof(err));
		}
	}
	if (!rc)
		rc = db_commit(db);
	else
		db_rollback(db);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc) {
		log_error("page not loaded", "file=%s err=%s", log_q(zip ? zip : csv), log_q(err));
		status = rc_exit_code(rc);
		goto out;
	}
	printf("{\"staged\":%ld,\"applied\":%ld,\"skipped\":%ld,\"bytes_zip\":%llu,"
	       "\"bytes_csv\":%llu,\"direct\":%s,\"seconds\":%.3f}\n",
	       st.rows_staged, st.rows_applied, st.rows_skipped, (unsigned long long)st.bytes_zip,
	       (unsigned long long)st.bytes_csv, st.direct ? "true" : "false",
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	status = EX_OK;
out:
	module_schema_free(schema);
	db_close(db);
	cfg_free(cfg);
	return status;
}
