/* zoho.h — typed Zoho CRM v6 calls: notification channels, bulk read,
 * records by id, deleted records, fields metadata, record counts.
 *
 * A struct zoho belongs to one thread and bundles an HTTP handle, the
 * shared OAuth token (through db) and the configuration. Every call gets a
 * token, sends "Authorization: Zoho-oauthtoken …" to the token's
 * api_domain, and after a 401 INVALID_TOKEN invalidates the token and tries
 * once more. Failures return an rc with the reason in zoho_error(), which
 * names the call, the HTTP status and Zoho's code and message:
 *   RC_AUTH (401/403), RC_NOTFOUND (404), RC_ZOHO (other 4xx, or an error
 *   item in a 2xx answer), RC_BADINPUT (an answer we cannot read),
 *   RC_RATELIMIT / RC_HTTP / RC_INTERRUPTED from the HTTP layer.
 * Record ids, job ids and channel ids are 64-bit integers. */
#ifndef ZCRM_ZOHO_H
#define ZCRM_ZOHO_H

#include "cfg.h"
#include "compiler.h"
#include "db.h"
#include "http.h"
#include "rc.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZOHO_ERR_LEN 1024
#define ZOHO_MAX_IDS 100    /* ids in one Get Records call */
#define ZOHO_MAX_FIELDS 50  /* fields in one Get Records call */

struct zoho;

/* The API's endpoints as Zoho prices them (shared/zoho-api.md §8.1); the
 * names are the simulator's route names. */
enum zoho_endpoint {
	ZOHO_EP_BULK_CREATE,  /* 50 credits */
	ZOHO_EP_BULK_STATUS,
	ZOHO_EP_BULK_RESULT,
	ZOHO_EP_RECORDS,      /* a page, or by ids; 3 with cvid */
	ZOHO_EP_RECORD_BY_ID,
	ZOHO_EP_DELETED,
	ZOHO_EP_FIELDS,
	ZOHO_EP_COUNT,
	ZOHO_EP_WATCH,
	ZOHO_EP_USERS,        /* Get Users */
	ZOHO_EP_FULL_DATA,    /* Get Rich Text Fields ({id}/actions/fetch_full_data) */
	ZOHO_EP_OTHER,
	ZOHO_EP__COUNT
};

struct zoho_opts {
	struct http_opts http;  /* stop flag, backoff scale */
	long download_429_ms;   /* wait after a download 429 without Retry-After; 0: 60000 */
	/* called after every call Zoho charged (any thread: must be safe) */
	void (*on_spend)(void *arg, enum zoho_endpoint ep, int credits, long remaining);
	void *spend_arg;
};

/* Which endpoint a request is, and what Zoho charges for it. path is the
 * part after the API domain (or a whole URL under it). */
enum zoho_endpoint zoho_call_endpoint(const char *method, const char *path, int *credits);
const char *zoho_endpoint_name(enum zoho_endpoint ep);
/* Credits this client's calls cost so far, by endpoint (all: ZOHO_EP__COUNT). */
long zoho_credits_spent(const struct zoho *z, enum zoho_endpoint ep);

/* lifecycle: cfg and db are borrowed (db is this thread's connection, and
 * no transaction may be open on it while a call runs: the token refresh
 * commits). On failure *out is NULL and a log line says why (RC_CONFIG:
 * client_id, client_secret or refresh_token missing). */
enum rc zoho_new(const struct cfg *cfg, struct db *db, const struct zoho_opts *opts,
		 struct zoho **out) ZCRM_MUSTCHECK;
void zoho_free(struct zoho *z);
const char *zoho_error(const struct zoho *z);
/* X-API-CREDITS-REMAINING of the last answer that had it, else -1. */
long zoho_credits_remaining(const struct zoho *z);
/* The HTTP handle (for interruptible waits: http_sleep). */
struct http *zoho_http(struct zoho *z);
/* The current access token (token verb of the test tool); caller frees. */
enum rc zoho_token(struct zoho *z, char **token, char **api_domain) ZCRM_MUSTCHECK;

/* Prove the credentials: refresh the shared token now (oauth_refresh: the
 * refresh token, client id and secret), then one cheap call with it, the
 * record count of module (1 credit). *api_domain (caller frees) is the
 * token's. Fails as the calls do; zoho_error() says which step. */
enum rc zoho_check_credentials(struct zoho *z, const char *module, int64_t *count,
			       char **api_domain) ZCRM_MUSTCHECK;

/* ---- notification channel (actions/watch) ---- */

struct zoho_channel {
	bool found;
	uint64_t channel_id;
	int64_t expiry;       /* epoch seconds, 0 if Zoho gave none */
	char **events;        /* "Leads.create"… */
	size_t nevents;
	char *notify_url;
	char *resource_name;  /* module, when given */
};

/* Subscribe module's create/edit/delete events on channel_id, to
 * cfg->notify_url with cfg->token, asking for an expiry of now +
 * cfg->channel_lifetime less 5 minutes (Zoho silently grants one hour to a
 * request past its maximum, so a clock ahead of Zoho's must not cross it);
 * *expiry is what Zoho granted (epoch seconds), read back from the answer
 * (or from a GET when the answer lacks it). */
enum rc zoho_watch_enable(struct zoho *z, const char *module, uint64_t channel_id,
			  int64_t *expiry) ZCRM_MUSTCHECK;
/* The same definition by PUT (renewal). */
enum rc zoho_watch_update(struct zoho *z, const char *module, uint64_t channel_id,
			  int64_t *expiry) ZCRM_MUSTCHECK;
/* Details of channel_id; ch->found false when Zoho does not know it. */
enum rc zoho_watch_get(struct zoho *z, uint64_t channel_id,
		       struct zoho_channel *ch) ZCRM_MUSTCHECK;
enum rc zoho_watch_disable(struct zoho *z, uint64_t channel_id) ZCRM_MUSTCHECK;
void zoho_channel_free(struct zoho_channel *ch);

/* ---- bulk read ---- */

struct zoho_bulk_query {
	const char *module;
	const char *const *fields; /* NULL/0: all fields */
	size_t nfields;
	int64_t from, to;          /* Modified_Time in [from, to); 0: unbounded */
	int page;                  /* 1-based; 0 means 1 */
	const char *page_token;    /* v7+ next_page_token, or NULL */
	const char *callback_url;  /* NULL/"": no callback */
};

enum zoho_bulk_state { ZOHO_BULK_RUNNING = 0, ZOHO_BULK_COMPLETED, ZOHO_BULK_FAILED };

struct zoho_bulk_status {
	enum zoho_bulk_state state;
	char *state_text;       /* as Zoho wrote it ("IN PROGRESS") */
	int64_t created_time;   /* epoch seconds, 0 if absent */
	/* result, once COMPLETED */
	int page;               /* 0 if absent */
	int64_t per_page;       /* records a page holds (200,000), 0 if absent */
	int64_t count;
	bool more_records;
	char *download_url;     /* as given (relative) */
	char *next_page_token;  /* NULL unless given */
	char *error;            /* FAILURE: "CODE: message", else NULL */
};

/* Create a job; *job_id and *created_time (Zoho's clock, epoch seconds). */
enum rc zoho_bulk_create(struct zoho *z, const struct zoho_bulk_query *q, int64_t *job_id,
			 int64_t *created_time) ZCRM_MUSTCHECK;
enum rc zoho_bulk_status(struct zoho *z, int64_t job_id,
			 struct zoho_bulk_status *st) ZCRM_MUSTCHECK;
void zoho_bulk_status_free(struct zoho_bulk_status *st);
/* Stream the job's ZIP to dest_path (created 0600; removed on failure);
 * *bytes is its size. The download limit (10/min) answers 429: waited for
 * (Retry-After, else at least a minute) within the retry budget. The size
 * is capped at cfg->max_unzipped plus 1 MiB. */
enum rc zoho_bulk_download(struct zoho *z, const char *download_url, const char *dest_path,
			   int64_t *bytes) ZCRM_MUSTCHECK;

/* ---- records ---- */

/* Records of ids (at most 100) with fields (at most 50; NULL/0: Zoho's
 * default), converted=both. *records is a new JSON array the caller puts;
 * ids Zoho does not return are simply absent (204: empty array). */
enum rc zoho_get_records(struct zoho *z, const char *module, const int64_t *ids, size_t nids,
			 const char *const *fields, size_t nfields,
			 struct json_object **records) ZCRM_MUSTCHECK;
/* The same for any number of fields: several calls of at most 50 fields
 * joined by id. A record that changed between the calls (Modified_Time
 * differs) is fetched again; one that cannot be read consistently, or that
 * a call did not return, is left out. */
enum rc zoho_get_records_all_fields(struct zoho *z, const char *module, const int64_t *ids,
				    size_t nids, const char *const *fields, size_t nfields,
				    struct json_object **records) ZCRM_MUSTCHECK;

/* One record by id (GET /crm/v6/{module}/{id}, 1 credit) with every field,
 * subforms and multiselectlookup included (only this call returns them).
 * *record is NULL when Zoho does not have it (204, 404, INVALID_DATA). */
enum rc zoho_get_record(struct zoho *z, const char *module, int64_t id,
			struct json_object **record) ZCRM_MUSTCHECK;
/* One page (200 rows) of every row of a subform, whatever its parent:
 * GET /crm/v6/{subform}?fields=…&sort_order=asc&per_page=200&page=N (1
 * credit; ascending ids, as listcover.h needs), or with page_token once
 * Zoho gave one (beyond 2,000 rows). Each row carries
 * Parent_Id {"name","id"}. *rows is a new JSON array (204: empty);
 * *next_token (caller frees) is info.next_page_token or NULL. */
enum rc zoho_list_subform(struct zoho *z, const char *subform, const char *const *fields,
			  size_t nfields, int page, const char *page_token,
			  struct json_object **rows, bool *more_records,
			  char **next_token) ZCRM_MUSTCHECK;

/* One record of a change listing: its id and Modified_Time. */
struct zoho_listed {
	int64_t id;
	int64_t modified; /* epoch seconds */
};

#define ZOHO_LIST_PAGE 200 /* records in one listing page (Zoho's maximum) */

/* One page of the records of module modified after since (epoch seconds,
 * sent as If-Modified-Since), oldest first: Get Records with
 * fields=id,Modified_Time, sort_by=Modified_Time, sort_order=asc,
 * per_page=200, converted=both. 304 or 204 (nothing changed) give none.
 * *date is the answer's Date header (Zoho's clock, epoch seconds; 0 if
 * absent). The caller frees *items. */
enum rc zoho_list_modified(struct zoho *z, const char *module, int64_t since,
			   struct zoho_listed **items, size_t *n, bool *more_records,
			   int64_t *date) ZCRM_MUSTCHECK;

struct zoho_deleted {
	int64_t id;
	int64_t deleted_time; /* epoch seconds */
	char type[16];        /* recycle | permanent */
};

/* One page (1-based) of deleted records, deleted after since (epoch
 * seconds; 0: all). The caller frees *items; 204 gives none. */
enum rc zoho_deleted_since(struct zoho *z, const char *module, int64_t since, int page,
			   struct zoho_deleted **items, size_t *n,
			   bool *more_records) ZCRM_MUSTCHECK;

struct zoho_field {
	char *api_name;
	char *data_type;
	char *json_type;    /* NULL if absent (older API versions) */
	int64_t id;
	char *return_type;  /* formula fields: formula.return_type, else NULL */
	char *textarea_type;/* textarea fields: textarea.type (small, large,
			     * rich_text), else NULL */
};

/* Fields metadata of module (204: none). Free with zoho_fields_free. */
enum rc zoho_fields(struct zoho *z, const char *module, struct zoho_field **fields,
		    size_t *n) ZCRM_MUSTCHECK;
void zoho_fields_free(struct zoho_field *fields, size_t n);

/* The rich text fields of one record in full: GET
 * /crm/v6/{module}/{id}/actions/fetch_full_data?fields=… (Zoho's "Get
 * Rich Text Fields"; Get Records truncates them to 500 characters).
 * *record is the answer's record object ({"id", field: text…}; NULL on
 * 204); the caller puts it. */
enum rc zoho_rich_text(struct zoho *z, const char *module, int64_t id,
		       const char *const *fields, size_t nfields,
		       struct json_object **record) ZCRM_MUSTCHECK;

/* One page (1-based, 200 users) of GET /crm/v6/users?type=AllUsers, with
 * If-Modified-Since: since when since > 0. *users is the answer's "users"
 * array (an empty one on 304 or 204); the caller puts it. */
enum rc zoho_users(struct zoho *z, int64_t since, int page, struct json_object **users,
		   bool *more_records) ZCRM_MUSTCHECK;

/* GET /crm/v6/{module}/actions/count. */
enum rc zoho_record_count(struct zoho *z, const char *module, int64_t *count) ZCRM_MUSTCHECK;

/* ---- pure helpers (unit-tested) ---- */

/* Get Records calls that fetch n ids with nfields fields (id not counted)
 * through zoho_get_records_all_fields, when no record moves meanwhile:
 * ceil(n / 100) calls per chunk of at most 50 fields (49 plus
 * Modified_Time once there are more than 50). */
long zoho_fetch_calls(size_t n, size_t nfields);

/* The body of an enable/update request. Caller frees. */
char *zoho_watch_body(const char *module, uint64_t channel_id, const char *notify_url,
		      const char *token, int64_t expiry);
/* The body of a bulk read create request. Caller frees. */
char *zoho_bulk_body(const struct zoho_bulk_query *q);
/* Map Zoho's job state text. */
enum zoho_bulk_state zoho_bulk_state_parse(const char *s);
/* Zoho's error (top-level, or the first item of "data"/"watch") as
 * "CODE: message (details)" into out; false if the body holds none. */
bool zoho_error_text(const char *body, size_t len, char *out, size_t cap);

#endif
