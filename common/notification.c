/* notification.c — Zoho notification body parser (see notification.h). */
#include "notification.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum rc fail(char *err, size_t errlen, enum rc rc, const char *fmt, ...)
	ZCRM_PRINTF(4, 5);
static enum rc fail(char *err, size_t errlen, enum rc rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

const char *notif_op_str(enum notif_op op)
{
	switch (op) {
	case NOTIF_INSERT:
		return "insert";
	case NOTIF_UPDATE:
		return "update";
	case NOTIF_DELETE:
		return "delete";
	}
	return "?";
}

int notification_parse_id(const char *s, int64_t *out)
{
	size_t n = strlen(s);
	uint64_t v = 0;

	if (n == 0 || n > 19)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > (uint64_t)INT64_MAX || v == 0)
		return -1;
	*out = (int64_t)v;
	return 0;
}

/* The value of a JSON string, or NULL when it holds a NUL ("\u0000"):
 * the C string would end early and "Leads\u0000x" would pass for "Leads". */
static const char *json_cstr(json_object *v)
{
	const char *s = json_object_get_string(v);
	if (!s || strlen(s) != (size_t)json_object_get_string_len(v))
		return NULL;
	return s;
}

/* An id-like value: a digit string (what Zoho sends) or a JSON integer. */
static int json_id(json_object *v, int64_t *out)
{
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_cstr(v);
		return s ? notification_parse_id(s, out) : -1;
	}
	if (json_object_is_type(v, json_type_int)) {
		errno = 0;
		int64_t i = json_object_get_int64(v);
		if (errno || i <= 0)
			return -1;
		/* json-c clamps integers past INT64_MAX to it: refuse, rather
		 * than mark a record that was never named. */
		if (i == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX)
			return -1;
		*out = i;
		return 0;
	}
	return -1;
}

static int parse_op(const char *s, enum notif_op *op)
{
	static const struct {
		const char *name;
		enum notif_op op;
	} ops[] = {
		{"insert", NOTIF_INSERT}, {"create", NOTIF_INSERT}, {"update", NOTIF_UPDATE},
		{"edit", NOTIF_UPDATE},	  {"delete", NOTIF_DELETE},
	};
	for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
		if (strcmp(s, ops[i].name) == 0) {
			*op = ops[i].op;
			return 0;
		}
	}
	return -1;
}

/* json-c's JSON_TOKENER_VALIDATE_UTF8 lets overlong forms, surrogates and
 * code points above U+10FFFF through; PostgreSQL then refuses the raw body,
 * and that must not look like "database down" (spool) to the webhook. */
size_t notification_utf8_invalid_at(const char *body, size_t len)
{
	const unsigned char *s = (const unsigned char *)body;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned lo = 0x80, hi = 0xBF;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			if (c == 0xE0)
				lo = 0xA0;      /* overlong */
			else if (c == 0xED)
				hi = 0x9F;      /* surrogates */
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			if (c == 0xF0)
				lo = 0x90;      /* overlong */
			else if (c == 0xF4)
				hi = 0x8F;      /* above U+10FFFF */
		} else {
			return i;
		}
		if (len - i <= n)
			return i;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (size_t k = 2; k <= n; k++) {
			if (s[i + k] < 0x80 || s[i + k] > 0xBF)
				return i;
		}
		i += n + 1;
	}
	return len;
}

static json_object *parse_json(const char *body, size_t len, char *err, size_t errlen)
{
	json_tokener *tok = json_tokener_new_ex(NOTIF_MAX_DEPTH);
	json_object *root = NULL;

	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	if (len > (size_t)INT32_MAX) {
		snprintf(err, errlen, "body too large");
		goto out;
	}
	root = json_tokener_parse_ex(tok, body, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	if (!root || jerr != json_tokener_success) {
		if (jerr == json_tokener_continue)
			snprintf(err, errlen, "body is not valid JSON: unexpected end of input");
		else
			snprintf(err, errlen, "body is not valid JSON: %s",
				 json_tokener_error_desc(jerr));
		json_object_put(root);
		root = NULL;
		goto out;
	}
	/* Anything but whitespace after the value is an error. */
	for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
		char c = body[i];
		if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			snprintf(err, errlen, "body is not valid JSON: trailing data at offset %zu", i);
			json_object_put(root);
			root = NULL;
			goto out;
		}
	}
out:
	json_tokener_free(tok);
	return root;
}

enum rc notification_parse(const char *body, size_t len, size_t max_ids,
			   struct notification **out, char *err, size_t errlen)
{
	struct notification *n = NULL;
	json_object *root = NULL, *v;
	enum rc rc = RC_BADINPUT;

	*out = NULL;
	if (len == 0)
		return fail(err, errlen, RC_BADINPUT, "empty body");
	if (memchr(body, '\0', len))
		return fail(err, errlen, RC_BADINPUT, "body contains a NUL byte");
	size_t bad = notification_utf8_invalid_at(body, len);
	if (bad < len)
		return fail(err, errlen, RC_BADINPUT, "body is not valid UTF-8 at offset %zu", bad);
	root = parse_json(body, len, err, errlen);
	if (!root)
		return RC_BADINPUT;
	if (!json_object_is_type(root, json_type_object)) {
		rc = fail(err, errlen, RC_BADINPUT, "body is not a JSON object");
		goto out;
	}
	n = xcalloc(1, sizeof(*n));
	n->root = root;

	/* module */
	if (!json_object_object_get_ex(root, "module", &v)) {
		rc = fail(err, errlen, RC_BADINPUT, "missing key: module");
		goto out;
	}
	if (!json_object_is_type(v, json_type_string)) {
		rc = fail(err, errlen, RC_BADINPUT, "module: expected a string");
		goto out;
	}
	const char *mod = json_cstr(v);
	size_t mlen = mod ? strlen(mod) : 0;
	if (mlen == 0 || mlen >= sizeof(n->module)) {
		rc = fail(err, errlen, RC_BADINPUT, "module: empty, too long or holding a NUL");
		goto out;
	}
	memcpy(n->module, mod, mlen + 1);

	/* operation */
	if (!json_object_object_get_ex(root, "operation", &v)) {
		rc = fail(err, errlen, RC_BADINPUT, "missing key: operation");
		goto out;
	}
	if (!json_object_is_type(v, json_type_string) ||
	    !json_cstr(v) || parse_op(json_cstr(v), &n->op)) {
		rc = fail(err, errlen, RC_BADINPUT,
			  "operation: expected \"insert\", \"update\" or \"delete\"");
		goto out;
	}

	/* channel_id: a digit string (documented) or an integer */
	if (!json_object_object_get_ex(root, "channel_id", &v)) {
		rc = fail(err, errlen, RC_BADINPUT, "missing key: channel_id");
		goto out;
	}
	int64_t cid;
	if (json_id(v, &cid)) {
		rc = fail(err, errlen, RC_BADINPUT, "channel_id: expected a digit string");
		goto out;
	}
	n->channel_id = (uint64_t)cid;

	/* server_time: epoch milliseconds */
	if (!json_object_object_get_ex(root, "server_time", &v)) {
		rc = fail(err, errlen, RC_BADINPUT, "missing key: server_time");
		goto out;
	}
	int64_t st;
	if (json_id(v, &st) || st < 946684800000LL || st > 32503680000000LL) {
		rc = fail(err, errlen, RC_BADINPUT,
			  "server_time: expected epoch milliseconds (2000..3000)");
		goto out;
	}
	n->server_time_ms = st;

	/* ids */
	if (!json_object_object_get_ex(root, "ids", &v)) {
		rc = fail(err, errlen, RC_BADINPUT, "missing key: ids");
		goto out;
	}
	if (!json_object_is_type(v, json_type_array)) {
		rc = fail(err, errlen, RC_BADINPUT, "ids: expected an array of id strings");
		goto out;
	}
	size_t nids = json_object_array_length(v);
	if (nids == 0) {
		rc = fail(err, errlen, RC_BADINPUT, "ids: empty");
		goto out;
	}
	if (nids > max_ids) {
		rc = fail(err, errlen, RC_TOOBIG, "ids: %zu ids, at most %zu accepted", nids,
			  max_ids);
		goto out;
	}
	n->ids = xmalloc(nids * sizeof(*n->ids));
	for (size_t i = 0; i < nids; i++) {
		if (json_id(json_object_array_get_idx(v, i), &n->ids[i])) {
			rc = fail(err, errlen, RC_BADINPUT,
				  "ids[%zu]: expected a string of 1 to 19 digits", i);
			goto out;
		}
	}
	n->nids = nids;

	/* token: string, null, or absent */
	if (json_object_object_get_ex(root, "token", &v) && v) {
		if (!json_object_is_type(v, json_type_string) || !json_cstr(v)) {
			rc = fail(err, errlen, RC_BADINPUT, "token: expected a string or null");
			goto out;
		}
		n->token = xstrdup(json_cstr(v));
	}

	/* affected_values: optional array of {record_id, values} */
	if (json_object_object_get_ex(root, "affected_values", &v) && v) {
		if (!json_object_is_type(v, json_type_array)) {
			rc = fail(err, errlen, RC_BADINPUT, "affected_values: expected an array");
			goto out;
		}
		n->affected_values = v;
	}
	*out = n;
	return RC_OK;
out:
	if (n)
		notification_free(n);
	else
		json_object_put(root);
	return rc;
}

void notification_free(struct notification *n)
{
	if (!n)
		return;
	json_object_put(n->root);
	free(n->ids);
	free(n->token);
	free(n);
}

/* JSON scanning over a body the parser accepted: each returns the offset
 * just past what it skipped (len when the text ends early). */
static size_t skip_ws(const char *s, size_t i, size_t len)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	return i;
}

static size_t skip_string(const char *s, size_t i, size_t len)
{
	for (i++; i < len; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return len;
}

static size_t skip_value(const char *s, size_t i, size_t len)
{
	if (i < len && s[i] == '"')
		return skip_string(s, i, len);
	if (i < len && (s[i] == '{' || s[i] == '[')) {
		int depth = 0;
		while (i < len) {
			if (s[i] == '"') {
				i = skip_string(s, i, len);
				continue;
			}
			if (s[i] == '{' || s[i] == '[')
				depth++;
			else if (s[i] == '}' || s[i] == ']')
				depth--;
			i++;
			if (depth == 0)
				return i;
		}
		return len;
	}
	while (i < len && !strchr(",}] \t\r\n", s[i]))
		i++;
	return i;
}

/* Is the JSON string literal s[a..b) the key "token" (escapes decoded)? */
static bool key_is_token(const char *s, size_t a, size_t b)
{
	if (!memchr(s + a, '\\', b - a))
		return b - a == 7 && !memcmp(s + a, "\"token\"", 7);
	char *lit = xstrndup(s + a, b - a);
	json_object *o = json_tokener_parse(lit);
	bool is = o && json_object_is_type(o, json_type_string) &&
		  json_object_get_string_len(o) == 5 && !memcmp(json_object_get_string(o), "token", 5);
	json_object_put(o);
	free(lit);
	return is;
}

char *notification_strip_token(const char *body, size_t len, size_t *outlen)
{
	char *out = NULL, *drop = NULL;
	size_t o = 0, i = skip_ws(body, 0, len), prev_end = 0;
	bool found = false, have_prev = false;

	if (i >= len || body[i] != '{')
		goto keep;
	/* Mark what goes: a token member with the comma after it, or, for the
	 * last member, the comma before it; every other byte stays. */
	drop = xcalloc(len ? len : 1, 1);
	i = skip_ws(body, i + 1, len);
	while (i < len && body[i] == '"') {
		size_t kstart = i, kend = skip_string(body, i, len);
		i = skip_ws(body, kend, len);
		if (i >= len || body[i] != ':')
			goto keep;
		size_t vend = skip_value(body, skip_ws(body, i + 1, len), len);
		bool token = key_is_token(body, kstart, kend);
		i = skip_ws(body, vend, len);
		bool comma = i < len && body[i] == ',';
		if (comma)
			i = skip_ws(body, i + 1, len);
		if (token) {
			size_t a = comma ? kstart : have_prev ? prev_end : kstart;
			size_t b = comma ? i : vend;
			memset(drop + a, 1, b - a);
			found = true;
		}
		prev_end = vend;
		have_prev = true;
	}
	if (!found || i >= len || body[i] != '}')
		goto keep;
	out = xmalloc(len + 1);
	for (size_t k = 0; k < len; k++) {
		if (!drop[k])
			out[o++] = body[k];
	}
	out[o] = '\0';
	free(drop);
	*outlen = o;
	return out;
keep:
	free(drop);
	*outlen = len;
	return xstrndup(body, len);
}
