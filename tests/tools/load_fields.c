/* load_fields — test tool: migrate, then create/evolve a module table from a
 * Zoho fields-metadata JSON file ({"fields":[…]}), as the sync programs do
 * with what Zoho returns.
 *
 *   load_fields --config FILE --module Leads --fields tests/data/fields/leads.json
 *   load_fields --config FILE --migrate-only
 */
#include "cfg.h"
#include "db.h"
#include "inbox.h"
#include "log.h"
#include "schema.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

static const char *str_of(json_object *o, const char *key)
{
	json_object *v;
	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"module", required_argument, NULL, 'm'},
		{"fields", required_argument, NULL, 'f'},
		{"migrate-only", no_argument, NULL, 'M'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL, *module = NULL, *fields_path = NULL;
	bool migrate_only = false;
	struct cfg *cfg = NULL;
	struct db *db = NULL;
	json_object *root = NULL;
	struct zfield *zf = NULL;
	char err[CFG_ERR_LEN];
	int c, status = EX_SOFTWARE, applied = 0;

	while ((c = getopt_long(argc, argv, "c:m:f:M", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'm':
			module = optarg;
			break;
		case 'f':
			fields_path = optarg;
			break;
		case 'M':
			migrate_only = true;
			break;
		default:
			return EX_USAGE;
		}
	}
	log_init("load_fields", LOG_LVL_INFO);
	if (cfg_load(config, &cfg, err) != RC_OK) {
		log_error("configuration error", "err=%s", log_q(err));
		return EX_CONFIG;
	}
	if (db_connect(cfg->conninfo, cfg->schema, &db) != RC_OK) {
		log_error("cannot connect", "err=%s", log_q(db_error(db)));
		status = EX_TEMPFAIL;
		goto out;
	}
	if (db_migrate(db, &applied) != RC_OK) {
		status = EX_TEMPFAIL;
		goto out;
	}
	printf("migrations applied: %d\n", applied);
	if (migrate_only) {
		status = EX_OK;
		goto out;
	}
	if (!module || !fields_path) {
		fprintf(stderr, "load_fields: --module and --fields are required\n");
		status = EX_USAGE;
		goto out;
	}
	root = json_object_from_file(fields_path);
	json_object *arr;
	if (!root || !json_object_object_get_ex(root, "fields", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		fprintf(stderr, "load_fields: %s: expected {\"fields\":[…]}\n", fields_path);
		status = EX_DATAERR;
		goto out;
	}
	size_t n = json_object_array_length(arr);
	zf = xcalloc(n ? n : 1, sizeof(*zf));
	for (size_t i = 0; i < n; i++) {
		json_object *f = json_object_array_get_idx(arr, i);
		zf[i].api_name = str_of(f, "api_name");
		zf[i].data_type = str_of(f, "data_type");
		zf[i].json_type = str_of(f, "json_type");
		zf[i].field_id = str_of(f, "id");
	}
	long pending = 0;
	if (schema_ensure_module(db, module, zf, n, NULL) != RC_OK ||
	    inbox_apply_pending(db, module, &pending) != RC_OK) {
		status = EX_TEMPFAIL;
		goto out;
	}
	if (pending)
		log_info("applied notifications that waited for the table", "count=%ld", pending);
	status = EX_OK;
out:
	free(zf);
	json_object_put(root);
	db_close(db);
	cfg_free(cfg);
	return status;
}
