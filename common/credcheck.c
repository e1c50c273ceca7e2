/* credcheck.c — --check-credentials (see credcheck.h). */
#include "credcheck.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "zoho.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum rc credcheck_run(const struct cfg *cfg, const char *module, FILE *out)
{
	struct cfg quick = *cfg; /* shallow: borrowed strings, cfg outlives it */
	struct zoho_opts opts;
	struct db *db = NULL;
	struct zoho *z = NULL;
	char *api_domain = NULL;
	int64_t count = 0;
	int applied = 0;
	bool curl = false;
	enum rc rc;

	/* A check answers now: no retries, no backoff. */
	quick.max_retries = 0;
	if (!module)
		module = cfg->nmodules ? cfg->module_list[0] : "Leads";
	rc = db_connect(cfg->conninfo, cfg->schema, &db);
	if (rc) {
		fprintf(out, "credentials not checked: cannot connect to PostgreSQL, which holds "
			     "the shared token: %s\n", db_error(db));
		goto out;
	}
	rc = db_migrate(db, &applied);
	if (rc) {
		fprintf(out, "credentials not checked: the schema could not be migrated: %s\n",
			db_error(db));
		goto out;
	}
	rc = http_global_init();
	if (rc) {
		fprintf(out, "credentials not checked: cannot initialise libcurl\n");
		goto out;
	}
	curl = true;
	memset(&opts, 0, sizeof(opts));
	rc = zoho_new(&quick, db, &opts, &z);
	if (rc) {
		fprintf(out, "credentials not checked: [zoho] client_id, client_secret and "
			     "refresh_token must all be set\n");
		goto out;
	}
	rc = zoho_check_credentials(z, module, &count, &api_domain);
	switch (rc) {
	case RC_OK:
		fprintf(out, "credentials ok: %s granted a token; %s answered: %s has %" PRId64
			     " records\n", cfg->accounts_url, api_domain, module, count);
		break;
	case RC_AUTH:
		fprintf(out, "credentials refused: %s\n", zoho_error(z));
		break;
	case RC_HTTP:
		fprintf(out, "Zoho unreachable: %s\n", zoho_error(z));
		break;
	case RC_RATELIMIT:
		fprintf(out, "Zoho throttling: %s\n", zoho_error(z));
		break;
	default:
		fprintf(out, "credentials check failed (%s): %s\n", rc_str(rc), zoho_error(z));
		break;
	}
	if (rc)
		log_error("credentials check failed", "err=%s", log_q(zoho_error(z)));
out:
	free(api_domain);
	zoho_free(z);
	if (curl)
		http_global_cleanup();
	db_close(db);
	return rc;
}
