/* cfg.h — the configuration: one INI file plus ZCRM_<SECTION>_<KEY> overrides.
 *
 * Every key is described once in the table in cfg.c (type, default, limits,
 * secret or not); docs/config.md and etc/zcrm-sync.conf.example list the
 * same keys and a test keeps the three in step. Errors name the file, the
 * line and the key. Unknown sections and keys are errors. */
#ifndef ZCRM_CFG_H
#define ZCRM_CFG_H

#include "compiler.h"
#include "rc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFG_MAX_MODULES 32
#define CFG_ERR_LEN 512

struct cfg {
	/* [zoho] */
	char *accounts_url;
	char *api_domain;
	char *client_id;
	char *client_secret;
	char *refresh_token;
	char *ca_file;
	long connect_timeout;  /* seconds */
	long request_timeout;  /* seconds, one HTTP exchange */
	long max_retries;
	long retry_budget;     /* seconds, all retries of one call */
	long max_response;     /* bytes, JSON answers */
	long max_concurrency;  /* calls in flight from processes sharing spool_dir; 0: no cap */
	long credit_floor;     /* below this many credits left, bulk work waits */
	/* [database] */
	char *conninfo;
	char *schema;
	char *read_role;       /* granted SELECT on module tables only; "" = none */
	bool notify_changes;   /* NOTIFY "<schema>.<table>" with the ids written */
	bool history;          /* <table>_history: every version of a row */
	/* [sync] */
	char *modules;         /* as written: "Leads, Contacts" */
	long overlap;          /* seconds */
	char *spool_dir;
	char *work_dir;
	long bulk_wait;        /* seconds to wait for one bulk job */
	long max_unzipped;     /* bytes, one bulk page inflated */
	long max_ratio;        /* inflated/compressed */
	long bulk_threshold;   /* credits: a catch-up dearer by REST uses Bulk Read */
	long bulk_jobs_ahead;  /* bulk jobs in flight beyond the page being exported */
	long schema_check;     /* seconds between reads of the fields metadata */
	long formula_refresh;  /* seconds between formula refreshes by reconcile; 0: off */
	long users_interval;   /* seconds between refreshes of zcrm.users; 0 = never */
	/* [notify] */
	char *notify_url;
	char *callback_url;
	char *channel_id;      /* base channel id, digits; module i uses base+i */
	char *token;
	long renew_margin;     /* seconds */
	long channel_lifetime; /* seconds, at most 86400 */
	long check_interval;   /* seconds: renew_channel asks Zoho at least this often */
	/* [webhook] */
	long threads;
	long max_body;         /* bytes */
	long max_ids;          /* ids in one notification */
	bool fetch;            /* fetch dirty records after replying */
	long fetch_delay;      /* ms a queued id waits for others to share its call */
	char *instance;        /* the webhook label of /metrics; empty: host:socket */
	char *socket_group;    /* group of a --listen unix: socket; "" = ours */

	/* derived */
	size_t nmodules;
	char *module_list[CFG_MAX_MODULES];
	uint64_t channel_base;
	char *path;            /* the file that was read, or NULL */
};

/* Defaults, then the file at path (NULL: $ZCRM_CONFIG, then the system
 * path if it exists), then the environment. On error returns RC_CONFIG and
 * writes a one-line reason naming file, line and key into err. The caller
 * frees *out with cfg_free(). */
enum rc cfg_load(const char *path, struct cfg **out, char err[CFG_ERR_LEN]) ZCRM_MUSTCHECK;
/* The same from a string (tests, fuzzing); name is used in messages. */
enum rc cfg_load_string(const char *text, const char *name, bool use_env,
			struct cfg **out, char err[CFG_ERR_LEN]) ZCRM_MUSTCHECK;
void cfg_free(struct cfg *cfg);

/* Register every secret value with the logger. */
void cfg_register_secrets(const struct cfg *cfg);
/* Index of module (case-sensitive API name) or -1. */
int cfg_module_index(const struct cfg *cfg, const char *module);
/* Channel id of module index i. */
uint64_t cfg_channel_id(const struct cfg *cfg, size_t i);
/* Seconds of channel life asked of Zoho: [notify] channel_lifetime less
 * CFG_CHANNEL_SKEW_S (a request past Zoho's maximum silently gets one hour,
 * so a clock ahead of Zoho's must not cross it), unless that would leave
 * less than the skew itself. renew_margin must be below it. */
#define CFG_CHANNEL_SKEW_S 300
long cfg_channel_asked(const struct cfg *cfg);
/* Print every key with its value (secrets masked) in INI form. */
void cfg_dump(const struct cfg *cfg, void *file);
/* Print the key table as a commented sample config (docs and tests). */
void cfg_print_sample(void *file);

#define CFG_DEFAULT_PATH "/etc/zcrm-sync/zcrm-sync.conf"

#endif
