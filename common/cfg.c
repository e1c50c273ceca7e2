/* cfg.c — table-driven INI configuration (see cfg.h). */
#include "cfg.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum cfg_type { CFG_STR, CFG_INT, CFG_BOOL };

#define CFG_SECRET 0x1
#define CFG_REQUIRED_NONEMPTY 0x2

struct cfg_key {
	const char *section;
	const char *key;
	enum cfg_type type;
	size_t offset;
	const char *def;
	long min, max;
	unsigned flags;
	/* Extra check for a value; returns a static reason or NULL. */
	const char *(*validate)(const char *value);
	const char *help;
};

static const char *valid_url(const char *v);
static const char *valid_opt_url(const char *v);
static const char *valid_abs_path(const char *v);
static const char *valid_modules(const char *v);
static const char *valid_digits(const char *v);
static const char *valid_schema(const char *v);
static const char *valid_token(const char *v);

#define O(f) offsetof(struct cfg, f)
#define KB 1024L
#define MB (1024L * 1024L)

static const struct cfg_key cfg_keys[] = {
	{"zoho", "accounts_url", CFG_STR, O(accounts_url), "https://accounts.zoho.com", 0, 0, 0,
	 valid_url, "Zoho accounts server of the org's data centre (OAuth token endpoint)"},
	{"zoho", "api_domain", CFG_STR, O(api_domain), "https://www.zohoapis.com", 0, 0, 0,
	 valid_url, "Zoho API domain; the api_domain returned with a token takes precedence"},
	{"zoho", "client_id", CFG_STR, O(client_id), "", 0, 0, 0, NULL,
	 "OAuth client id (Self Client)"},
	{"zoho", "client_secret", CFG_STR, O(client_secret), "", 0, 0, CFG_SECRET, NULL,
	 "OAuth client secret (secret)"},
	{"zoho", "refresh_token", CFG_STR, O(refresh_token), "", 0, 0, CFG_SECRET, NULL,
	 "OAuth refresh token (secret)"},
	{"zoho", "ca_file", CFG_STR, O(ca_file), "", 0, 0, 0, NULL,
	 "CA bundle for TLS verification (empty: system default; verification cannot be disabled)"},
	{"zoho", "connect_timeout", CFG_INT, O(connect_timeout), "10", 1, 300, 0, NULL,
	 "seconds to establish a connection"},
	{"zoho", "request_timeout", CFG_INT, O(request_timeout), "120", 1, 86400, 0, NULL,
	 "seconds for one HTTP exchange (downloads: per 64 KiB of progress)"},
	{"zoho", "max_retries", CFG_INT, O(max_retries), "6", 0, 50, 0, NULL,
	 "retries of one call on 429/5xx/connection errors"},
	{"zoho", "retry_budget", CFG_INT, O(retry_budget), "900", 1, 86400, 0, NULL,
	 "seconds all retries of one call may take together"},
	{"zoho", "max_response", CFG_INT, O(max_response), "67108864", 1024, LONG_MAX, 0, NULL,
	 "bytes: largest JSON answer accepted"},
	{"zoho", "max_concurrency", CFG_INT, O(max_concurrency), "5", 0, 100, 0, NULL,
	 "most Zoho calls in flight at once from the processes sharing [sync] spool_dir"
	 " (the org allows 10 on Standard, for all its integrations); 0: no cap"},
	{"zoho", "credit_floor", CFG_INT, O(credit_floor), "5000", 0, LONG_MAX, 0, NULL,
	 "when Zoho says fewer API credits than this remain (X-API-CREDITS-REMAINING),"
	 " reconcile and bulk exports of incremental_sync wait; fetches go on; 0: never"},

	{"database", "conninfo", CFG_STR, O(conninfo), "", 0, 0, 0, NULL,
	 "libpq connection string (keep passwords in PGPASSFILE)"},
	{"database", "schema", CFG_STR, O(schema), "zcrm", 0, 0, 0, valid_schema,
	 "schema holding every zcrm-sync table"},
	{"database", "read_role", CFG_STR, O(read_role), "", 0, 0, 0, NULL,
	 "role that may read the module tables and their _live views, and nothing else (empty: grant nothing)"},
	{"database", "notify_changes", CFG_BOOL, O(notify_changes), "false", 0, 0, 0, NULL,
	 "after each write to a module table, NOTIFY \"<schema>.<table>\" with the ids written (at commit)"},
	{"database", "history", CFG_BOOL, O(history), "false", 0, 0, 0, NULL,
	 "keep every version a module row had, with its validity interval, in <table>_history"},

	{"sync", "modules", CFG_STR, O(modules), "Leads", 0, 0, 0, valid_modules,
	 "comma-separated Zoho module API names to mirror"},
	{"sync", "overlap", CFG_INT, O(overlap), "300", 0, 86400, 0, NULL,
	 "seconds subtracted from the watermark by incremental sync"},
	{"sync", "spool_dir", CFG_STR, O(spool_dir), "/var/spool/zcrm-sync", 0, 0, 0,
	 valid_abs_path, "where the webhook spools notifications while PostgreSQL is down (absolute)"},
	{"sync", "work_dir", CFG_STR, O(work_dir), "/var/tmp", 0, 0, 0, valid_abs_path,
	 "where bulk ZIP files are downloaded (absolute)"},
	{"sync", "bulk_wait", CFG_INT, O(bulk_wait), "3600", 1, 7 * 86400, 0, NULL,
	 "seconds to wait for one bulk read job to complete"},
	{"sync", "max_unzipped", CFG_INT, O(max_unzipped), "4294967296", MB, LONG_MAX, 0, NULL,
	 "bytes: largest inflated bulk CSV accepted (zip bomb guard)"},
	{"sync", "max_ratio", CFG_INT, O(max_ratio), "200", 2, 100000, 0, NULL,
	 "largest inflated/compressed ratio accepted (zip bomb guard)"},
	{"sync", "bulk_threshold", CFG_INT, O(bulk_threshold), "50", 0, 1000000, 0, NULL,
	 "credits: incremental sync uses a Bulk Read job when fetching the changes by REST would cost more"},
	{"sync", "bulk_jobs_ahead", CFG_INT, O(bulk_jobs_ahead), "1", 0, 8, 0, NULL,
	 "bulk read jobs asked for ahead of the page being exported (0 = one page at a time)"},
	{"sync", "schema_check", CFG_INT, O(schema_check), "3600", 0, 86400, 0, NULL,
	 "seconds: incremental sync reads Zoho's fields metadata at most this often (1 credit)"},
	{"sync", "formula_refresh", CFG_INT, O(formula_refresh), "86400", 0, 366 * 86400, 0, NULL,
	 "seconds: reconcile re-reads formula and rollup fields (which change without Modified_Time)"
	 " when their last refresh is this old; 0: never"},
	{"sync", "users_interval", CFG_INT, O(users_interval), "3600", 0, 7 * 86400, 0, NULL,
	 "seconds: incremental sync refreshes zcrm.users at most this often (one call; 0: never)"},

	{"notify", "url", CFG_STR, O(notify_url), "", 0, 0, 0, valid_opt_url,
	 "public URL Zoho posts notifications to (nginx → /notify)"},
	{"notify", "callback_url", CFG_STR, O(callback_url), "", 0, 0, 0, valid_opt_url,
	 "public URL for bulk job callbacks (empty: url with /notify replaced by /bulk-callback)"},
	{"notify", "channel_id", CFG_STR, O(channel_id), "1000000068001", 0, 0, 0, valid_digits,
	 "base channel id; the i-th module uses channel_id + i"},
	{"notify", "token", CFG_STR, O(token), "", 0, 0, CFG_SECRET, valid_token,
	 "shared token Zoho echoes in every notification (secret, at most 49 characters)"},
	{"notify", "renew_margin", CFG_INT, O(renew_margin), "43200", 60, 86400, 0, NULL,
	 "seconds before expiry at which renew_channel renews (less than the lifetime asked for)"},
	{"notify", "channel_lifetime", CFG_INT, O(channel_lifetime), "86400", 600, 86400, 0, NULL,
	 "seconds of channel life asked for (Zoho v6: at most one day)"},
	{"notify", "check_interval", CFG_INT, O(check_interval), "3600", 0, 86400, 0, NULL,
	 "seconds: renew_channel asks Zoho whether a channel far from expiry is still live at most this often (0: every run)"},

	{"webhook", "threads", CFG_INT, O(threads), "4", 1, 256, 0, NULL,
	 "worker threads, each with one PostgreSQL connection"},
	{"webhook", "max_body", CFG_INT, O(max_body), "1048576", KB, 64 * MB, 0, NULL,
	 "bytes: largest notification body accepted (keep nginx's client_max_body_size equal)"},
	{"webhook", "max_ids", CFG_INT, O(max_ids), "10000", 1, 1000000, 0, NULL,
	 "most record ids accepted in one notification"},
	{"webhook", "fetch", CFG_BOOL, O(fetch), "true", 0, 0, 0, NULL,
	 "fetch full records of notified ids after replying"},
	{"webhook", "fetch_delay", CFG_INT, O(fetch_delay), "1500", 0, 60000, 0, NULL,
	 "milliseconds a notified id waits so that ids notified close together share one"
	 " Get Records call (1 credit for up to 100 ids); 0: fetch at once"},
	{"webhook", "instance", CFG_STR, O(instance), "", 0, 0, 0, NULL,
	 "this webhook's name in /metrics (the webhook label); empty: host:listening socket"},
	{"webhook", "socket_group", CFG_STR, O(socket_group), "", 0, 0, 0, NULL,
	 "group of the --listen unix: socket, mode 0660 (nginx's, e.g. www-data; never the config's group); empty: the process's group"},
};

#undef O

static const char *valid_url(const char *v)
{
	size_t skip;

	if (strncmp(v, "https://", 8) == 0)
		skip = 8;
	else if (strncmp(v, "http://", 7) == 0)
		skip = 7;
	else
		return "must start with https:// (or http:// for a local simulator)";
	if (strcspn(v + skip, "/?#") == 0)
		return "has no host after the scheme";
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p <= ' ' || (unsigned char)*p == 0x7f)
			return "holds a space or a control character";
	}
	return NULL;
}

/* The same for a URL that may be left empty ([notify] url: only the
 * programs that enable channels need it, and they say so). */
static const char *valid_opt_url(const char *v)
{
	return *v ? valid_url(v) : NULL;
}

/* Directories the webhook and the cron jobs share: a relative path would
 * name a different place for each (their working directories differ). */
static const char *valid_abs_path(const char *v)
{
	if (v[0] != '/')
		return "must be an absolute path (starting with /)";
	return NULL;
}

/* Module API names: letters, digits, underscores; nothing to quote. */
static const char *valid_module_name(const char *s, size_t len)
{
	if (len == 0)
		return "empty module name";
	if (len > 60)
		return "module name too long";
	if (!isalpha((unsigned char)s[0]))
		return "module names start with a letter";
	for (size_t i = 0; i < len; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return "module names hold only letters, digits and '_'";
	}
	return NULL;
}

static const char *valid_modules(const char *v)
{
	const char *p = v;
	int n = 0;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		const char *why = valid_module_name(start, (size_t)(end - start));
		if (why)
			return why;
		if (++n > CFG_MAX_MODULES)
			return "too many modules";
		if (!*p)
			break;
		p++;
	}
	return NULL;
}

static const char *valid_digits(const char *v)
{
	if (!*v || strlen(v) > 19)
		return "must be 1 to 19 digits";
	for (; *v; v++) {
		if (!isdigit((unsigned char)*v))
			return "must be digits only";
	}
	return NULL;
}

/* The schema is quoted wherever it is used (PQescapeIdentifier), so Zcrm
 * would be a schema of its own that plain SQL (zcrm.leads) cannot name:
 * lower case only. At most 57 bytes, so that <schema>_stage still fits
 * PostgreSQL's 63. */
static const char *valid_schema(const char *v)
{
	if (!*v)
		return "empty schema name";
	if (strlen(v) > 57)
		return "schema name longer than 57 characters (<schema>_stage must fit 63)";
	if (!(*v >= 'a' && *v <= 'z'))
		return "schema names start with a lower-case letter";
	for (; *v; v++) {
		if (!(*v >= 'a' && *v <= 'z') && !(*v >= '0' && *v <= '9') && *v != '_')
			return "schema names hold only lower-case letters, digits and '_' "
			       "(the name is used quoted, exactly as written)";
	}
	return NULL;
}

static const char *valid_token(const char *v)
{
	if (strlen(v) > 49)
		return "Zoho accepts at most 49 characters";
	return NULL;
}

static void set_err(char err[CFG_ERR_LEN], const char *fmt, ...) ZCRM_PRINTF(2, 3);
static void set_err(char err[CFG_ERR_LEN], const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, CFG_ERR_LEN, fmt, ap);
	va_end(ap);
}

static bool section_known(const char *section)
{
	for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
		if (strcmp(cfg_keys[i].section, section) == 0)
			return true;
	}
	return false;
}

/* Store value into cfg for key k; where names the place for messages. */
static enum rc set_value(struct cfg *cfg, const struct cfg_key *k, const char *value,
			 const char *where, char err[CFG_ERR_LEN])
{
	char *base = (char *)cfg;
	const char *why;

	switch (k->type) {
	case CFG_STR: {
		char **slot = (char **)(base + k->offset);
		/* An empty value would bypass the validator of a key whose
		 * default is not empty ("modules =" meant no modules at all). */
		if (k->validate && !*value && k->def[0]) {
			set_err(err, "%s: [%s] %s: must not be empty (remove the line for the default '%s')",
				where, k->section, k->key, k->def);
			return RC_CONFIG;
		}
		if (k->validate && (why = k->validate(value))) {
			set_err(err, "%s: [%s] %s: %s", where, k->section, k->key, why);
			return RC_CONFIG;
		}
		free(*slot);
		*slot = xstrdup(value);
		return RC_OK;
	}
	case CFG_INT: {
		char *end;
		errno = 0;
		long v = strtol(value, &end, 10);
		if (errno || end == value || *end) {
			set_err(err, "%s: [%s] %s: '%s' is not a whole number", where, k->section,
				k->key, value);
			return RC_CONFIG;
		}
		if (v < k->min || v > k->max) {
			set_err(err, "%s: [%s] %s: %ld is outside %ld..%ld", where, k->section, k->key,
				v, k->min, k->max);
			return RC_CONFIG;
		}
		*(long *)(base + k->offset) = v;
		return RC_OK;
	}
	case CFG_BOOL: {
		bool *slot = (bool *)(base + k->offset);
		if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcmp(value, "1") ||
		    !strcasecmp(value, "on")) {
			*slot = true;
		} else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") ||
			   !strcmp(value, "0") || !strcasecmp(value, "off")) {
			*slot = false;
		} else {
			set_err(err, "%s: [%s] %s: '%s' is not a boolean (true/false)", where,
				k->section, k->key, value);
			return RC_CONFIG;
		}
		return RC_OK;
	}
	}
	return RC_INTERNAL;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		e--;
	*e = '\0';
	return s;
}

/* Where each key's value came from: 0 its default, > 0 that line of the
 * file, -1 the environment. Messages about a key name this place. */
struct origins {
	int line[ARRAY_LEN(cfg_keys)];
};

static void env_name(const struct cfg_key *k, char *buf, size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, "ZCRM_%s_%s", k->section, k->key);
	for (size_t j = 0; j < n && j < cap; j++)
		buf[j] = (char)toupper((unsigned char)buf[j]);
}

static void where_of(const struct origins *o, size_t i, const char *name, char *buf,
		     size_t cap)
{
	char env[128];

	if (o->line[i] > 0) {
		snprintf(buf, cap, "%s:%d", name, o->line[i]);
	} else if (o->line[i] < 0) {
		env_name(&cfg_keys[i], env, sizeof(env));
		snprintf(buf, cap, "environment %s", env);
	} else {
		snprintf(buf, cap, "%s", name);
	}
}

static size_t key_index(const char *section, const char *key)
{
	for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
		if (strcmp(cfg_keys[i].section, section) == 0 && strcmp(cfg_keys[i].key, key) == 0)
			return i;
	}
	return ARRAY_LEN(cfg_keys);
}

static enum rc parse_text(struct cfg *cfg, const char *text, const char *name,
			  struct origins *orig, char err[CFG_ERR_LEN])
{
	char section[64] = "";
	char *copy = xstrdup(text);
	char *raw = NULL;
	int lineno = 0;
	enum rc rc = RC_OK;
	char where[512];
	const char *p = copy;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		free(raw);
		raw = xstrndup(p, len);
		lineno++;
		p = nl ? nl + 1 : NULL;
		char *line = trim(raw);
		snprintf(where, sizeof(where), "%s:%d", name, lineno);
		if (!*line || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			char *close = strchr(line, ']');
			if (!close || close[1]) {
				set_err(err, "%s: malformed section header '%s'", where, line);
				rc = RC_CONFIG;
				goto out;
			}
			*close = '\0';
			char *sec = trim(line + 1);
			if (!section_known(sec)) {
				set_err(err, "%s: unknown section [%s]", where, sec);
				rc = RC_CONFIG;
				goto out;
			}
			snprintf(section, sizeof(section), "%s", sec);
			continue;
		}
		char *eq = strchr(line, '=');
		if (!eq) {
			set_err(err, "%s: expected 'key = value', got '%s'", where, line);
			rc = RC_CONFIG;
			goto out;
		}
		*eq = '\0';
		char *key = trim(line);
		char *value = trim(eq + 1);
		if (!section[0]) {
			set_err(err, "%s: key '%s' outside any section", where, key);
			rc = RC_CONFIG;
			goto out;
		}
		size_t ki = key_index(section, key);
		if (ki == ARRAY_LEN(cfg_keys)) {
			set_err(err, "%s: unknown key '%s' in [%s]", where, key, section);
			rc = RC_CONFIG;
			goto out;
		}
		const struct cfg_key *k = &cfg_keys[ki];
		/* The same key twice in one section (or in two [section] blocks of
		 * the same name): which one was meant is anyone's guess. The same
		 * key name in different sections is two keys. */
		if (orig->line[ki] > 0) {
			set_err(err, "%s: [%s] %s: set twice (first on line %d): keep one", where,
				k->section, k->key, orig->line[ki]);
			rc = RC_CONFIG;
			goto out;
		}
		/* "quoted values" keep their leading/trailing spaces; a quote
		 * that is opened and never closed is a mistake, not a value. */
		size_t vlen = strlen(value);
		if (vlen >= 1 && value[0] == '"') {
			if (vlen < 2 || value[vlen - 1] != '"') {
				set_err(err, "%s: [%s] %s: unterminated quote (a quoted value ends with \")",
					where, k->section, k->key);
				rc = RC_CONFIG;
				goto out;
			}
			value[vlen - 1] = '\0';
			value++;
		}
		rc = set_value(cfg, k, value, where, err);
		if (rc)
			goto out;
		orig->line[ki] = lineno;
	}
out:
	free(raw);
	free(copy);
	return rc;
}

static enum rc apply_env(struct cfg *cfg, struct origins *orig, char err[CFG_ERR_LEN])
{
	for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];
		char name[128];
		env_name(k, name, sizeof(name));
		const char *v = getenv(name);
		if (!v)
			continue;
		char where[160];
		snprintf(where, sizeof(where), "environment %s", name);
		enum rc rc = set_value(cfg, k, v, where, err);
		if (rc)
			return rc;
		orig->line[i] = -1;
	}
	return RC_OK;
}

static void split_modules(struct cfg *cfg)
{
	const char *p = cfg->modules;

	cfg->nmodules = 0;
	while (*p && cfg->nmodules < CFG_MAX_MODULES) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end > start)
			cfg->module_list[cfg->nmodules++] = xstrndup(start, (size_t)(end - start));
	}
}

long cfg_channel_asked(const struct cfg *cfg)
{
	long life = cfg->channel_lifetime;
	return life > 2 * CFG_CHANNEL_SKEW_S ? life - CFG_CHANNEL_SKEW_S : life;
}

static enum rc finish(struct cfg *cfg, const char *name, const struct origins *orig,
		      char err[CFG_ERR_LEN])
{
	char where[512];

	split_modules(cfg);
	for (size_t i = 0; i < cfg->nmodules; i++) {
		for (size_t j = 0; j < i; j++) {
			if (!strcasecmp(cfg->module_list[i], cfg->module_list[j])) {
				set_err(err, "%s: [sync] modules: '%s' is listed twice", name,
					cfg->module_list[i]);
				return RC_CONFIG;
			}
		}
	}
	/* A margin as long as the life asked for renews the channel at every
	 * renew_channel run: a mistake, not a policy. */
	if (cfg->renew_margin >= cfg_channel_asked(cfg)) {
		size_t mi = key_index("notify", "renew_margin");
		size_t li = key_index("notify", "channel_lifetime");
		where_of(orig, orig->line[mi] ? mi : li, name, where, sizeof(where));
		set_err(err,
			"%s: [notify] renew_margin: %ld is not less than the %ld s of channel life "
			"asked for ([notify] channel_lifetime %ld, less %d s for clock skew): every "
			"renew_channel run would renew",
			where, cfg->renew_margin, cfg_channel_asked(cfg), cfg->channel_lifetime,
			CFG_CHANNEL_SKEW_S);
		return RC_CONFIG;
	}
	cfg->channel_base = strtoull(cfg->channel_id, NULL, 10);
	if (cfg->channel_base + cfg->nmodules < cfg->channel_base) {
		set_err(err, "%s: [notify] channel_id: too large", name);
		return RC_CONFIG;
	}
	if (!cfg->callback_url[0] && cfg->notify_url[0]) {
		const char *q = strstr(cfg->notify_url, "/notify");
		free(cfg->callback_url);
		if (q) {
			cfg->callback_url = xasprintf("%.*s/bulk-callback%s",
						      (int)(q - cfg->notify_url), cfg->notify_url,
						      q + strlen("/notify"));
		} else {
			cfg->callback_url = xstrdup("");
		}
	}
	return RC_OK;
}

static struct cfg *cfg_new_defaults(void)
{
	struct cfg *cfg = xcalloc(1, sizeof(*cfg));
	char err[CFG_ERR_LEN];

	for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
		/* Defaults are valid by construction; a failure here is a bug. */
		if (set_value(cfg, &cfg_keys[i], cfg_keys[i].def, "default", err) != RC_OK) {
			fprintf(stderr, "bug: bad default: %s\n", err);
			abort();
		}
	}
	return cfg;
}

static enum rc load_text(const char *text, const char *name, bool use_env,
			struct origins *orig, struct cfg **out, char err[CFG_ERR_LEN])
{
	struct cfg *cfg = cfg_new_defaults();
	enum rc rc;

	err[0] = '\0';
	memset(orig, 0, sizeof(*orig));
	rc = parse_text(cfg, text, name, orig, err);
	if (rc)
		goto fail;
	if (use_env) {
		rc = apply_env(cfg, orig, err);
		if (rc)
			goto fail;
	}
	rc = finish(cfg, name, orig, err);
	if (rc)
		goto fail;
	*out = cfg;
	return RC_OK;
fail:
	cfg_free(cfg);
	*out = NULL;
	return rc;
}

enum rc cfg_load_string(const char *text, const char *name, bool use_env, struct cfg **out,
			char err[CFG_ERR_LEN])
{
	struct origins orig;
	return load_text(text, name, use_env, &orig, out, err);
}

/* Whether url is plain http:// to a host other than this machine (the
 * simulator runs on 127.0.0.1; anything else would carry the client secret
 * and the access token unencrypted). */
static bool cleartext_remote(const char *url)
{
	if (strncmp(url, "http://", 7) != 0)
		return false;
	const char *h = url + 7;
	size_t n = strcspn(h, ":/?#");
	if ((n == 9 && !strncasecmp(h, "localhost", 9)) || !strncmp(h, "127.", 4) ||
	    !strncmp(h, "[::1]", 5))
		return false;
	return n > 0 || h[0] == '[';
}

/* The first secret key the file itself sets to a non-empty value, or
 * ARRAY_LEN(cfg_keys). Secrets from the environment do not count: they are
 * not in the file. */
static size_t file_secret(const struct cfg *cfg, const struct origins *orig)
{
	for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
		if (!(cfg_keys[i].flags & CFG_SECRET) || orig->line[i] <= 0)
			continue;
		const char *v = *(char *const *)((const char *)cfg + cfg_keys[i].offset);
		if (v && v[0])
			return i;
	}
	return ARRAY_LEN(cfg_keys);
}

/* The rule (docs/config.md, docs/security.md): a config file writable by
 * others is refused, whatever it holds (whoever can write it can send the
 * secrets, or the data, elsewhere); one readable by others is refused when
 * it holds a secret itself. Group bits are the operator's choice (0640
 * root:zcrm-sync is the documented layout). */
static enum rc check_mode(const struct cfg *cfg, const struct origins *orig, const char *path,
			  mode_t mode, char err[CFG_ERR_LEN])
{
	static const char fix[] = "chmod 0640 (owner root, group zcrm-sync) or chmod 0600";
	size_t si = file_secret(cfg, orig);

	if (mode & S_IWOTH) {
		set_err(err, "%s: writable by every user (mode %04o): anyone could redirect the "
			"sync and its secrets; %s", path, (unsigned)(mode & 07777), fix);
		return RC_CONFIG;
	}
	if ((mode & S_IROTH) && si < ARRAY_LEN(cfg_keys)) {
		set_err(err, "%s:%d: [%s] %s: a secret in a file every user can read (mode %04o); %s",
			path, orig->line[si], cfg_keys[si].section, cfg_keys[si].key,
			(unsigned)(mode & 07777), fix);
		return RC_CONFIG;
	}
	return RC_OK;
}

enum rc cfg_load(const char *path, struct cfg **out, char err[CFG_ERR_LEN])
{
	char *text = NULL;
	FILE *f = NULL;
	enum rc rc = RC_CONFIG;
	bool explicit = true;
	struct stat st;
	struct origins orig;

	*out = NULL;
	err[0] = '\0';
	if (!path) {
		path = getenv("ZCRM_CONFIG");
		if (!path || !*path) {
			path = CFG_DEFAULT_PATH;
			explicit = false;
		}
	}
	f = fopen(path, "r");
	if (!f) {
		if (!explicit && errno == ENOENT) {
			/* No file at the default place: environment only. */
			rc = cfg_load_string("", "environment", true, out, err);
			return rc;
		}
		set_err(err, "%s: cannot open: %s", path, strerror(errno));
		return RC_CONFIG;
	}
	if (fstat(fileno(f), &st) != 0) {
		set_err(err, "%s: cannot stat: %s", path, strerror(errno));
		goto out;
	}
	if (st.st_size > 1024 * 1024) {
		set_err(err, "%s: larger than 1 MiB; not a config file?", path);
		goto out;
	}
	size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, len = 0;
	text = xmalloc(cap);
	for (;;) {
		size_t n = fread(text + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
		if (len + 1 == cap)
			text = xrealloc(text, cap *= 2);
	}
	if (ferror(f)) {
		set_err(err, "%s: read error", path);
		goto out;
	}
	text[len] = '\0';
	if (memchr(text, '\0', len)) {
		set_err(err, "%s: contains a NUL byte; not a config file?", path);
		goto out;
	}
	rc = load_text(text, path, true, &orig, out, err);
	if (rc == RC_OK) {
		rc = check_mode(*out, &orig, path, st.st_mode, err);
		if (rc) {
			cfg_free(*out);
			*out = NULL;
			goto out;
		}
		(*out)->path = xstrdup(path);
		const char *urls[][2] = {{"accounts_url", (*out)->accounts_url},
					 {"api_domain", (*out)->api_domain}};
		for (size_t i = 0; i < ARRAY_LEN(urls); i++) {
			if (cleartext_remote(urls[i][1]))
				log_warn("Zoho URL without TLS: secrets would cross the network in clear",
					 "file=%s key=%s url=%s", log_q(path), urls[i][0],
					 log_q(urls[i][1]));
		}
	}
out:
	free(text);
	if (f)
		fclose(f);
	return rc;
}

void cfg_free(struct cfg *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
		if (cfg_keys[i].type == CFG_STR)
			free(*(char **)((char *)cfg + cfg_keys[i].offset));
	}
	for (size_t i = 0; i < cfg->nmodules; i++)
		free(cfg->module_list[i]);
	free(cfg->path);
	free(cfg);
}

void cfg_register_secrets(const struct cfg *cfg)
{
	for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
		if (cfg_keys[i].flags & CFG_SECRET)
			log_add_secret(*(char **)((char *)cfg + cfg_keys[i].offset));
	}
}

int cfg_module_index(const struct cfg *cfg, const char *module)
{
	for (size_t i = 0; i < cfg->nmodules; i++) {
		if (strcmp(cfg->module_list[i], module) == 0)
			return (int)i;
	}
	return -1;
}

uint64_t cfg_channel_id(const struct cfg *cfg, size_t i)
{
	return cfg->channel_base + i;
}

void cfg_dump(const struct cfg *cfg, void *file)
{
	FILE *f = file;
	const char *section = "";

	for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];
		const char *base = (const char *)cfg;
		if (strcmp(section, k->section) != 0) {
			fprintf(f, "%s[%s]\n", i ? "\n" : "", k->section);
			section = k->section;
		}
		switch (k->type) {
		case CFG_STR: {
			const char *v = *(char *const *)(base + k->offset);
			if ((k->flags & CFG_SECRET) && v[0])
				v = "********";
			fprintf(f, "%s = %s\n", k->key, v);
			break;
		}
		case CFG_INT:
			fprintf(f, "%s = %ld\n", k->key, *(const long *)(base + k->offset));
			break;
		case CFG_BOOL:
			fprintf(f, "%s = %s\n", k->key,
				*(const bool *)(base + k->offset) ? "true" : "false");
			break;
		}
	}
}

void cfg_print_sample(void *file)
{
	FILE *f = file;
	const char *section = "";

	fprintf(f, "# zcrm-sync configuration. Every key is shown with its default.\n"
		   "# Any key can be overridden by the environment: ZCRM_<SECTION>_<KEY>.\n");
	for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];
		if (strcmp(section, k->section) != 0) {
			fprintf(f, "\n[%s]\n", k->section);
			section = k->section;
		}
		fprintf(f, "# %s\n#%s = %s\n", k->help, k->key, k->def);
	}
}
