/* zoho_call — test and debug CLI for the Zoho client (common/zoho.c).
 *
 *   zoho_call --config FILE [-v] VERB [ARGS]
 *
 * Verbs (results as JSON on stdout, errors as log lines on stderr, exit
 * code from rc_exit_code()):
 *   token                   mint or reuse the shared token (fingerprint only)
 *   token-twice             two gets in one process: the second from memory
 *   fields MODULE           fields metadata
 *   count MODULE            record count
 *   records MODULE ID,ID…   records by id (all fields, or --fields a,b)
 *   deleted MODULE [SINCE]  deleted records (SINCE: ISO 8601 or epoch seconds)
 *   watch-enable MODULE     subscribe the module's channel ([notify] config)
 *   watch-update MODULE     renew it (PUT)
 *   watch-get MODULE        the channel's details
 *   watch-disable MODULE    unsubscribe
 *   bulk MODULE [PAGE]      create a bulk job, poll it, download the ZIP
 *
 * Options: --fields a,b (records, bulk), --from/--to ISO (bulk window),
 * --out PATH (bulk ZIP), --poll-ms N (bulk polling, default 1000),
 * --page N (deleted), --job ID (bulk: poll and download an existing job
 * instead of creating one). Test knobs from the environment (this tool only):
 * ZCRM_HTTP_BACKOFF_MS, ZCRM_HTTP_BACKOFF_CAP_MS, ZCRM_DOWNLOAD_429_MS.
 * Tokens are never printed: "token_fp" is a 64-bit FNV-1a of the token. */
#include "cfg.h"
#include "db.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "rc.h"
#include "zoho.h"
#include "ztime.h"

#include <stdatomic.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

static atomic_int stop_flag;

static void on_signal(int sig)
{
	stop_flag = 1;
}

struct args {
	const char *fields;
	const char *from;
	const char *to;
	const char *out;
	const char *job;
	long poll_ms;
	int page;
};

static long env_long(const char *name, long def)
{
	const char *v = getenv(name);
	char *end;

	if (!v || !*v)
		return def;
	errno = 0;
	long n = strtol(v, &end, 10);
	return errno || *end || n < 0 ? def : n;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static void print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static struct json_object *jstr_id(int64_t id)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, id);
	return json_object_new_string(buf);
}

static struct json_object *jtime(int64_t t)
{
	char buf[ZTIME_LEN];

	ztime_format(t, buf);
	return json_object_new_string(buf);
}

/* Split "a,b,c" into a NULL-terminated heap array of heap strings. */
static char **split(const char *s, size_t *n)
{
	size_t cap = 8;
	char **out = xcalloc(cap, sizeof(*out));
	const char *p = s;

	*n = 0;
	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len) {
			if (*n + 2 > cap)
				out = xrealloc(out, (cap *= 2) * sizeof(*out));
			out[(*n)++] = xstrndup(p, len);
		}
		p = comma ? comma + 1 : NULL;
	}
	out[*n] = NULL;
	return out;
}

static void free_split(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static enum rc parse_when(const char *s, int64_t *t)
{
	if (json_str_to_int64(s, t))
		return RC_OK;
	return ztime_parse(s, t);
}

/* The channel id of module: the configured base plus its index. */
static enum rc module_channel(const struct cfg *cfg, const char *module, uint64_t *id)
{
	int i = cfg_module_index(cfg, module);

	if (i < 0) {
		log_error("module is not in [sync] modules", "module=%s", log_q(module));
		return RC_USAGE;
	}
	*id = cfg_channel_id(cfg, (size_t)i);
	return RC_OK;
}

static enum rc verb_token(struct zoho *z, bool twice)
{
	char *t1 = NULL, *d1 = NULL, *t2 = NULL, *d2 = NULL;
	char fp[32];
	enum rc rc = zoho_token(z, &t1, &d1);

	if (rc)
		goto out;
	struct json_object *o = json_object_new_object();
	snprintf(fp, sizeof(fp), "%016" PRIx64, fnv1a(t1));
	json_object_object_add(o, "token_fp", json_object_new_string(fp));
	json_object_object_add(o, "token_len", json_object_new_int((int)strlen(t1)));
	json_object_object_add(o, "api_domain", json_object_new_string(d1));
	if (twice) {
		rc = zoho_token(z, &t2, &d2);
		if (rc) {
			json_object_put(o);
			goto out;
		}
		json_object_object_add(o, "same", json_object_new_boolean(strcmp(t1, t2) == 0));
	}
	print_json(o);
out:
	free(t1);
	free(d1);
	free(t2);
	free(d2);
	return rc;
}

static enum rc verb_fields(struct zoho *z, const char *module)
{
	struct zoho_field *f = NULL;
	size_t n = 0;
	enum rc rc = zoho_fields(z, module, &f, &n);

	if (rc)
		return rc;
	struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "api_name", json_object_new_string(f[i].api_name));
		json_object_object_add(e, "data_type", json_object_new_string(f[i].data_type));
		json_object_object_add(e, "json_type",
				       f[i].json_type ? json_object_new_string(f[i].json_type) : NULL);
		json_object_object_add(e, "id", jstr_id(f[i].id));
		json_object_object_add(e, "return_type", f[i].return_type
								 ? json_object_new_string(f[i].return_type)
								 : NULL);
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "count", json_object_new_int64((int64_t)n));
	json_object_object_add(o, "fields", arr);
	print_json(o);
	zoho_fields_free(f, n);
	return RC_OK;
}

static enum rc verb_count(struct zoho *z, const char *module)
{
	int64_t count;
	enum rc rc = zoho_record_count(z, module, &count);

	if (rc)
		return rc;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "count", json_object_new_int64(count));
	print_json(o);
	return RC_OK;
}

static enum rc verb_records(struct zoho *z, const char *module, const char *idlist,
			    const struct args *a)
{
	size_t nids = 0, nfields = 0;
	char **idv = split(idlist, &nids), **fv = NULL;
	int64_t *ids = xcalloc(nids ? nids : 1, sizeof(*ids));
	struct zoho_field *meta = NULL;
	size_t nmeta = 0;
	struct json_object *recs = NULL;
	enum rc rc = RC_OK;

	for (size_t i = 0; i < nids; i++) {
		if (!json_str_to_int64(idv[i], &ids[i])) {
			log_error("not a record id", "id=%s", log_q(idv[i]));
			rc = RC_USAGE;
			goto out;
		}
	}
	if (nids > ZOHO_MAX_IDS) {
		log_error("too many ids", "max=%d", ZOHO_MAX_IDS);
		rc = RC_USAGE;
		goto out;
	}
	if (a->fields) {
		fv = split(a->fields, &nfields);
	} else {
		/* All fields, from the metadata. */
		rc = zoho_fields(z, module, &meta, &nmeta);
		if (rc)
			goto out;
		fv = xcalloc(nmeta + 1, sizeof(*fv));
		for (size_t i = 0; i < nmeta; i++)
			fv[nfields++] = xstrdup(meta[i].api_name);
	}
	rc = zoho_get_records_all_fields(z, module, ids, nids, (const char *const *)fv, nfields,
					 &recs);
	if (rc)
		goto out;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "count", json_object_new_int64((int64_t)json_object_array_length(recs)));
	json_object_object_add(o, "fields_asked", json_object_new_int64((int64_t)nfields));
	json_object_object_add(o, "data", recs);
	recs = NULL;
	print_json(o);
out:
	json_object_put(recs);
	zoho_fields_free(meta, nmeta);
	free_split(fv, nfields);
	free_split(idv, nids);
	free(ids);
	return rc;
}

static enum rc verb_deleted(struct zoho *z, const char *module, const char *since_s,
			    const struct args *a)
{
	struct zoho_deleted *items = NULL;
	size_t n = 0;
	bool more = false;
	int64_t since = 0;
	enum rc rc;

	if (since_s && parse_when(since_s, &since) != RC_OK) {
		log_error("SINCE must be ISO 8601 with an offset or epoch seconds", "since=%s",
			  log_q(since_s));
		return RC_USAGE;
	}
	rc = zoho_deleted_since(z, module, since, a->page, &items, &n, &more);
	if (rc)
		return rc;
	struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "id", jstr_id(items[i].id));
		json_object_object_add(e, "deleted_time", jtime(items[i].deleted_time));
		json_object_object_add(e, "type", json_object_new_string(items[i].type));
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "count", json_object_new_int64((int64_t)n));
	json_object_object_add(o, "more_records", json_object_new_boolean(more));
	json_object_object_add(o, "data", arr);
	print_json(o);
	free(items);
	return RC_OK;
}

static enum rc verb_watch(struct zoho *z, const struct cfg *cfg, const char *verb,
			  const char *module)
{
	uint64_t id;
	int64_t expiry = 0;
	char buf[32];
	enum rc rc = module_channel(cfg, module, &id);

	if (rc)
		return rc;
	snprintf(buf, sizeof(buf), "%" PRIu64, id);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "channel_id", json_object_new_string(buf));
	if (!strcmp(verb, "watch-enable") || !strcmp(verb, "watch-update")) {
		rc = !strcmp(verb, "watch-enable") ? zoho_watch_enable(z, module, id, &expiry)
						   : zoho_watch_update(z, module, id, &expiry);
		if (rc)
			goto fail;
		json_object_object_add(o, "expiry", jtime(expiry));
		json_object_object_add(o, "expiry_epoch", json_object_new_int64(expiry));
	} else if (!strcmp(verb, "watch-get")) {
		struct zoho_channel ch;
		rc = zoho_watch_get(z, id, &ch);
		if (rc)
			goto fail;
		json_object_object_add(o, "found", json_object_new_boolean(ch.found));
		if (ch.found) {
			struct json_object *ev = json_object_new_array();
			for (size_t i = 0; i < ch.nevents; i++)
				json_object_array_add(ev, json_object_new_string(ch.events[i]));
			json_object_object_add(o, "events", ev);
			json_object_object_add(o, "expiry", ch.expiry ? jtime(ch.expiry) : NULL);
			json_object_object_add(o, "expiry_epoch", json_object_new_int64(ch.expiry));
			json_object_object_add(o, "notify_url", ch.notify_url
									? json_object_new_string(ch.notify_url)
									: NULL);
			json_object_object_add(o, "module", ch.resource_name
								    ? json_object_new_string(ch.resource_name)
								    : NULL);
		}
		zoho_channel_free(&ch);
	} else {
		rc = zoho_watch_disable(z, id);
		if (rc)
			goto fail;
		json_object_object_add(o, "disabled", json_object_new_boolean(1));
	}
	print_json(o);
	return RC_OK;
fail:
	json_object_put(o);
	return rc;
}

static enum rc verb_bulk(struct zoho *z, const struct cfg *cfg, const char *module,
			 const char *page_s, const struct args *a)
{
	struct zoho_bulk_query q = {.module = module, .page = 1};
	struct zoho_bulk_status st = {0};
	size_t nfields = 0;
	char **fv = NULL, *path = NULL;
	int64_t job = 0, created = 0, size = 0, page = 1;
	int polls = 0;
	enum rc rc;

	if (page_s && (!json_str_to_int64(page_s, &page) || page < 1 || page > 100000)) {
		log_error("PAGE must be a positive number", "page=%s", log_q(page_s));
		return RC_USAGE;
	}
	q.page = (int)page;
	if (a->fields) {
		fv = split(a->fields, &nfields);
		q.fields = (const char *const *)fv;
		q.nfields = nfields;
	}
	if ((a->from && parse_when(a->from, &q.from) != RC_OK) ||
	    (a->to && parse_when(a->to, &q.to) != RC_OK)) {
		log_error("--from/--to must be ISO 8601 with an offset or epoch seconds", "");
		rc = RC_USAGE;
		goto out;
	}
	if (a->job) {
		if (!json_str_to_int64(a->job, &job) || job <= 0) {
			log_error("--job must be a job id", "job=%s", log_q(a->job));
			rc = RC_USAGE;
			goto out;
		}
	} else {
		rc = zoho_bulk_create(z, &q, &job, &created);
		if (rc)
			goto out;
	}
	int64_t deadline = ztime_now() + cfg->bulk_wait;
	for (;;) {
		zoho_bulk_status_free(&st);
		rc = zoho_bulk_status(z, job, &st);
		polls++;
		if (rc)
			goto out;
		if (st.state != ZOHO_BULK_RUNNING)
			break;
		if (ztime_now() >= deadline) {
			log_error("bulk job did not finish in time", "job=%" PRId64 " wait_s=%ld", job,
				  cfg->bulk_wait);
			rc = RC_TIMEOUT;
			goto out;
		}
		rc = http_sleep(zoho_http(z), a->poll_ms);
		if (rc)
			goto out;
	}
	if (!created)
		created = st.created_time;
	if (st.state == ZOHO_BULK_FAILED) {
		log_error("bulk job failed", "job=%" PRId64 " error=%s", job,
			  log_q(st.error ? st.error : ""));
		rc = RC_ZOHO;
		goto out;
	}
	path = a->out ? xstrdup(a->out) : xasprintf("%s/zcrm-%" PRId64 ".zip", cfg->work_dir, job);
	rc = zoho_bulk_download(z, st.download_url, path, &size);
	if (rc)
		goto out;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "job_id", jstr_id(job));
	json_object_object_add(o, "created_time", jtime(created));
	json_object_object_add(o, "state", json_object_new_string(st.state_text));
	json_object_object_add(o, "polls", json_object_new_int(polls));
	json_object_object_add(o, "page", json_object_new_int(st.page));
	json_object_object_add(o, "count", json_object_new_int64(st.count));
	json_object_object_add(o, "more_records", json_object_new_boolean(st.more_records));
	json_object_object_add(o, "download_url", json_object_new_string(st.download_url));
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "size", json_object_new_int64(size));
	print_json(o);
out:
	zoho_bulk_status_free(&st);
	free_split(fv, nfields);
	free(path);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: zoho_call --config FILE [-v] VERB [ARGS]\n"
		   "verbs: token | token-twice | fields M | count M | records M ID,ID… |\n"
		   "       deleted M [SINCE] | watch-enable M | watch-update M | watch-get M |\n"
		   "       watch-disable M | bulk M [PAGE]\n"
		   "options: --fields a,b --from T --to T --out PATH --poll-ms N --page N --job ID\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"fields", required_argument, NULL, 'f'},
		{"from", required_argument, NULL, 'F'},   {"to", required_argument, NULL, 'T'},
		{"out", required_argument, NULL, 'o'},    {"poll-ms", required_argument, NULL, 'p'},
		{"page", required_argument, NULL, 'P'},   {"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},         {"job", required_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	struct args a = {.poll_ms = 1000, .page = 1};
	const char *config = NULL;
	enum log_level level = LOG_LVL_INFO;
	struct cfg *cfg = NULL;
	struct db *db = NULL;
	struct zoho *z = NULL;
	struct zoho_opts zo = {0};
	struct sigaction sa;
	char err[CFG_ERR_LEN];
	bool http_up = false;
	int c, applied = 0;
	enum rc rc = RC_USAGE;

	while ((c = getopt_long(argc, argv, "c:f:F:T:o:p:P:j:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'f':
			a.fields = optarg;
			break;
		case 'F':
			a.from = optarg;
			break;
		case 'T':
			a.to = optarg;
			break;
		case 'o':
			a.out = optarg;
			break;
		case 'p':
			a.poll_ms = strtol(optarg, NULL, 10);
			break;
		case 'P':
			a.page = atoi(optarg);
			break;
		case 'j':
			a.job = optarg;
			break;
		case 'v':
			level = LOG_LVL_DEBUG;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *verb = argv[optind];
	const char *arg1 = optind + 1 < argc ? argv[optind + 1] : NULL;
	const char *arg2 = optind + 2 < argc ? argv[optind + 2] : NULL;

	log_init("zoho_call", level);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a signal should cut short whatever waits. */
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
		log_error("sigaction failed", "error=%s", log_q(strerror(errno)));
		return EX_OSERR;
	}
	signal(SIGPIPE, SIG_IGN);

	rc = cfg_load(config, &cfg, err);
	if (rc) {
		log_error("configuration error", "error=%s", log_q(err));
		goto out;
	}
	cfg_register_secrets(cfg);
	bool needs_module = strcmp(verb, "token") != 0 && strcmp(verb, "token-twice") != 0;
	if (needs_module && !arg1) {
		usage(stderr);
		rc = RC_USAGE;
		goto out;
	}
	rc = http_global_init();
	if (rc)
		goto out;
	http_up = true;
	rc = db_connect(cfg->conninfo, cfg->schema, &db);
	if (rc) {
		log_error("cannot connect to PostgreSQL", "error=%s", log_q(db_error(db)));
		goto out;
	}
	rc = db_migrate(db, &applied);
	if (rc) {
		log_error("migration failed", "error=%s", log_q(db_error(db)));
		goto out;
	}
	zo.http.stop = &stop_flag;
	zo.http.backoff_base_ms = env_long("ZCRM_HTTP_BACKOFF_MS", 0);
	zo.http.backoff_cap_ms = env_long("ZCRM_HTTP_BACKOFF_CAP_MS", 0);
	zo.download_429_ms = env_long("ZCRM_DOWNLOAD_429_MS", 0);
	rc = zoho_new(cfg, db, &zo, &z);
	if (rc) {
		log_error("cannot set up the Zoho client", "rc=%s", log_q(rc_str(rc)));
		goto out;
	}
	if (!strcmp(verb, "token") || !strcmp(verb, "token-twice")) {
		rc = verb_token(z, !strcmp(verb, "token-twice"));
	} else if (!strcmp(verb, "fields")) {
		rc = verb_fields(z, arg1);
	} else if (!strcmp(verb, "count")) {
		rc = verb_count(z, arg1);
	} else if (!strcmp(verb, "records")) {
		if (!arg2) {
			usage(stderr);
			rc = RC_USAGE;
			goto out;
		}
		rc = verb_records(z, arg1, arg2, &a);
	} else if (!strcmp(verb, "deleted")) {
		rc = verb_deleted(z, arg1, arg2, &a);
	} else if (!strncmp(verb, "watch-", 6) &&
		   (!strcmp(verb + 6, "enable") || !strcmp(verb + 6, "update") ||
		    !strcmp(verb + 6, "get") || !strcmp(verb + 6, "disable"))) {
		rc = verb_watch(z, cfg, verb, arg1);
	} else if (!strcmp(verb, "bulk")) {
		rc = verb_bulk(z, cfg, arg1, arg2, &a);
	} else {
		log_error("unknown verb", "verb=%s", log_q(verb));
		usage(stderr);
		rc = RC_USAGE;
		goto out;
	}
	if (rc) {
		log_error("zoho call failed", "verb=%s rc=%s error=%s", log_q(verb), log_q(rc_str(rc)),
			  log_q(zoho_error(z)));
	}
out:
	if (fflush(stdout) != 0 && !rc)
		rc = RC_IO;
	zoho_free(z);
	db_close(db);
	cfg_free(cfg);
	if (http_up)
		http_global_cleanup();
	log_clear_secrets();
	return rc_exit_code(rc);
}
