/* notification.h — parse and validate one Zoho notification callback body.
 *
 * Leaf module (json-c only). The body is the JSON Zoho POSTs to notify_url
 * (zoho-api.md §2.5). Validation is strict about what we rely on (module,
 * operation, ids, server_time, channel_id) and tolerant of the rest. */
#ifndef ZCRM_NOTIFICATION_H
#define ZCRM_NOTIFICATION_H

#include "compiler.h"
#include "rc.h"

#include <stddef.h>
#include <stdint.h>

enum notif_op { NOTIF_INSERT, NOTIF_UPDATE, NOTIF_DELETE };

/* Deepest JSON nesting accepted; Zoho's bodies are 4 levels deep. */
#define NOTIF_MAX_DEPTH 16

struct notification {
	char module[64];
	enum notif_op op;
	uint64_t channel_id;
	int64_t server_time_ms;  /* epoch milliseconds */
	size_t nids;
	int64_t *ids;            /* record ids, in the order sent */
	char *token;             /* NULL when Zoho sent null or nothing */
	void *root;              /* json_object *, owned */
	void *affected_values;   /* json_object * array, borrowed from root, or NULL */
};

/* Parses body (len bytes, need not be NUL-terminated). On failure returns
 * RC_BADINPUT (or RC_TOOBIG for more than max_ids ids) with a reason naming
 * the key in err. The caller frees *out with notification_free(). */
enum rc notification_parse(const char *body, size_t len, size_t max_ids,
			   struct notification **out, char *err, size_t errlen) ZCRM_MUSTCHECK;
void notification_free(struct notification *n);

/* The body without its top-level "token" member(s) — what is stored (inbox
 * raw, spool files): the channel token is a secret, and whoever reads a
 * stored body must not be able to forge notifications with it. body must be
 * a JSON object that notification_parse accepted. Everything else is kept
 * byte for byte when there is no token, so the same body always gives the
 * same result (the inbox deduplicates on md5(raw)). Returns a new
 * NUL-terminated string (caller frees) and its length in *outlen. */
char *notification_strip_token(const char *body, size_t len, size_t *outlen);

const char *notif_op_str(enum notif_op op);
/* Digits only, 1..19 of them, fitting a PostgreSQL bigint. */
int notification_parse_id(const char *s, int64_t *out);
/* Offset of the first byte of s that is not well-formed UTF-8 (RFC 3629:
 * no overlong forms, surrogates or code points above U+10FFFF), or len
 * when all of it is: what PostgreSQL's UTF8 text accepts. */
size_t notification_utf8_invalid_at(const char *s, size_t len);

#endif
