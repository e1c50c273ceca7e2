/* json.c — typed getters over json-c (see json.h). */
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_err(char err[JSON_ERR_LEN], const char *fmt, ...) ZCRM_PRINTF(2, 3);

static void set_err(char err[JSON_ERR_LEN], const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err, JSON_ERR_LEN, fmt, ap);
	va_end(ap);
}

enum rc json_parse(const char *text, size_t len, struct json_object **out,
		   char err[JSON_ERR_LEN])
{
	struct json_tokener *tok = NULL;
	struct json_object *root = NULL;
	enum rc rc = RC_BADINPUT;

	*out = NULL;
	if (!text || len == 0) {
		set_err(err, "empty body where JSON was expected");
		return RC_BADINPUT;
	}
	if (len > INT32_MAX) {
		set_err(err, "JSON text of %zu bytes is too large to parse", len);
		return RC_TOOBIG;
	}
	if (memchr(text, '\0', len)) {
		set_err(err, "NUL byte in JSON text");
		return RC_BADINPUT;
	}
	tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
	if (!tok) {
		set_err(err, "cannot allocate a JSON parser");
		return RC_NOMEM;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue) {
		/* A bare number needs a terminator; an unfinished object stays
		 * unfinished. */
		root = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		if (jerr != json_tokener_success) {
			set_err(err, "JSON text ends early (truncated after %zu bytes)", len);
			goto out;
		}
		*out = root;
		root = NULL;
		rc = RC_OK;
		goto out;
	}
	if (jerr != json_tokener_success) {
		set_err(err, "invalid JSON at byte %zu: %s", json_tokener_get_parse_end(tok),
			json_tokener_error_desc(jerr));
		goto out;
	}
	size_t end = json_tokener_get_parse_end(tok);
	while (end < len && strchr(" \t\r\n", text[end]))
		end++;
	if (end != len) {
		set_err(err, "trailing data after JSON value at byte %zu", end);
		goto out;
	}
	*out = root;
	root = NULL;
	rc = RC_OK;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

const char *json_type_str(const struct json_object *v)
{
	if (!v)
		return "null";
	switch (json_object_get_type(v)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "boolean";
	case json_type_double:
		return "number";
	case json_type_int:
		return "integer";
	case json_type_object:
		return "object";
	case json_type_array:
		return "array";
	case json_type_string:
		return "string";
	}
	return "unknown";
}

/* The value at key, NULL when absent or null; error if required. */
static enum rc lookup(struct json_object *o, const char *key, enum json_need need,
		      struct json_object **v, char err[JSON_ERR_LEN])
{
	*v = NULL;
	if (!o || !json_object_is_type(o, json_type_object)) {
		set_err(err, "expected an object holding '%s', got %s", key, json_type_str(o));
		return RC_BADINPUT;
	}
	if (!json_object_object_get_ex(o, key, v) || !*v) {
		*v = NULL;
		if (need == JSON_REQUIRED) {
			set_err(err, "missing key '%s'", key);
			return RC_BADINPUT;
		}
	}
	return RC_OK;
}

static enum rc wrong_type(const char *key, const char *want, struct json_object *v,
			  char err[JSON_ERR_LEN])
{
	set_err(err, "key '%s': expected %s, got %s", key, want, json_type_str(v));
	return RC_BADINPUT;
}

enum rc json_get_obj(struct json_object *o, const char *key, enum json_need need,
		     struct json_object **out, char err[JSON_ERR_LEN])
{
	struct json_object *v;
	enum rc rc = lookup(o, key, need, &v, err);

	*out = NULL;
	if (rc || !v)
		return rc;
	if (!json_object_is_type(v, json_type_object))
		return wrong_type(key, "an object", v, err);
	*out = v;
	return RC_OK;
}

enum rc json_get_arr(struct json_object *o, const char *key, enum json_need need,
		     struct json_object **out, char err[JSON_ERR_LEN])
{
	struct json_object *v;
	enum rc rc = lookup(o, key, need, &v, err);

	*out = NULL;
	if (rc || !v)
		return rc;
	if (!json_object_is_type(v, json_type_array))
		return wrong_type(key, "an array", v, err);
	*out = v;
	return RC_OK;
}

enum rc json_get_str(struct json_object *o, const char *key, enum json_need need,
		     const char **out, char err[JSON_ERR_LEN])
{
	struct json_object *v;
	enum rc rc = lookup(o, key, need, &v, err);

	*out = NULL;
	if (rc || !v)
		return rc;
	if (!json_object_is_type(v, json_type_string))
		return wrong_type(key, "a string", v, err);
	*out = json_object_get_string(v);
	return RC_OK;
}

bool json_str_to_int64(const char *s, int64_t *out)
{
	char *end;

	*out = 0;
	if (!s || !((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')))
		return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = (int64_t)v;
	return true;
}

enum rc json_as_int64(struct json_object *v, const char *what, int64_t *out,
		      char err[JSON_ERR_LEN])
{
	*out = 0;
	if (v && json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		if (!json_str_to_int64(s, out)) {
			set_err(err, "%s: '%.40s' is not a 64-bit integer", what, s);
			return RC_BADINPUT;
		}
		return RC_OK;
	}
	if (v && json_object_is_type(v, json_type_int)) {
		int64_t i = json_object_get_int64(v);
		/* json-c keeps values above INT64_MAX as uint64 and clamps here. */
		if (i == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX) {
			set_err(err, "%s: integer outside the 64-bit range", what);
			return RC_BADINPUT;
		}
		*out = i;
		return RC_OK;
	}
	set_err(err, "%s: expected an integer or a string of digits, got %s", what,
		json_type_str(v));
	return RC_BADINPUT;
}

enum rc json_get_int64(struct json_object *o, const char *key, enum json_need need,
		       int64_t *out, char err[JSON_ERR_LEN])
{
	struct json_object *v;
	char what[96];
	enum rc rc = lookup(o, key, need, &v, err);

	*out = 0;
	if (rc || !v)
		return rc;
	snprintf(what, sizeof(what), "key '%.80s'", key);
	return json_as_int64(v, what, out, err);
}

enum rc json_get_bool(struct json_object *o, const char *key, enum json_need need, bool *out,
		      char err[JSON_ERR_LEN])
{
	struct json_object *v;
	enum rc rc = lookup(o, key, need, &v, err);

	*out = false;
	if (rc || !v)
		return rc;
	if (!json_object_is_type(v, json_type_boolean))
		return wrong_type(key, "a boolean", v, err);
	*out = json_object_get_boolean(v);
	return RC_OK;
}

enum rc json_as_obj(struct json_object *v, const char *what, char err[JSON_ERR_LEN])
{
	if (v && json_object_is_type(v, json_type_object))
		return RC_OK;
	set_err(err, "%s: expected an object, got %s", what, json_type_str(v));
	return RC_BADINPUT;
}

const char *json_compact(struct json_object *v)
{
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
}
