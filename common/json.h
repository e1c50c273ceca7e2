/* json.h — typed getters over json-c, with error texts that name the key.
 *
 * Parsed roots are owned by the caller (json_object_put); every pointer a
 * getter hands out is borrowed from its parent and lives as long as the
 * root. Ids are 64-bit and arrive as JSON strings: json_get_int64() reads
 * them from a string or an integer, never through a double. A key whose
 * value is JSON null counts as absent. */
#ifndef ZCRM_JSON_H
#define ZCRM_JSON_H

#include "compiler.h"
#include "rc.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_ERR_LEN 256

/* Whether an absent (or null) key is an error. */
enum json_need { JSON_OPTIONAL = 0, JSON_REQUIRED = 1 };

/* parsing */
/* Parse exactly one JSON value from text[0..len) (trailing whitespace only).
 * RC_BADINPUT with the parser's reason and offset in err. */
enum rc json_parse(const char *text, size_t len, struct json_object **out,
		   char err[JSON_ERR_LEN]) ZCRM_MUSTCHECK;

/* getters: on an absent optional key the out value is NULL/0/false and
 * RC_OK is returned; a present key of the wrong type is RC_BADINPUT. */
enum rc json_get_obj(struct json_object *o, const char *key, enum json_need need,
		     struct json_object **out, char err[JSON_ERR_LEN]) ZCRM_MUSTCHECK;
enum rc json_get_arr(struct json_object *o, const char *key, enum json_need need,
		     struct json_object **out, char err[JSON_ERR_LEN]) ZCRM_MUSTCHECK;
enum rc json_get_str(struct json_object *o, const char *key, enum json_need need,
		     const char **out, char err[JSON_ERR_LEN]) ZCRM_MUSTCHECK;
/* A string of decimal digits (optional '-') or a JSON integer; doubles and
 * values outside int64 are refused. */
enum rc json_get_int64(struct json_object *o, const char *key, enum json_need need,
		       int64_t *out, char err[JSON_ERR_LEN]) ZCRM_MUSTCHECK;
enum rc json_get_bool(struct json_object *o, const char *key, enum json_need need, bool *out,
		      char err[JSON_ERR_LEN]) ZCRM_MUSTCHECK;

/* values (array elements and the like); what names the value in errors */
enum rc json_as_int64(struct json_object *v, const char *what, int64_t *out,
		      char err[JSON_ERR_LEN]) ZCRM_MUSTCHECK;
enum rc json_as_obj(struct json_object *v, const char *what, char err[JSON_ERR_LEN]) ZCRM_MUSTCHECK;

/* Parse a decimal int64 from a string (no sign other than '-', no spaces). */
bool json_str_to_int64(const char *s, int64_t *out);
/* Name of the JSON type of v ("null" for NULL). */
const char *json_type_str(const struct json_object *v);
/* Compact serialisation; borrowed from v (valid until v changes or dies). */
const char *json_compact(struct json_object *v);

#endif
