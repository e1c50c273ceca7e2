/* test_json.c — typed getters: ids as strings past 2^53, absent vs null vs
 * wrong type, strict parsing with clear errors for truncated text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "json.h"

#include <string.h>

static struct json_object *parse(const char *s)
{
	struct json_object *o = NULL;
	char err[JSON_ERR_LEN];

	if (json_parse(s, strlen(s), &o, err) != RC_OK)
		fail_msg("parse '%s': %s", s, err);
	return o;
}

static void test_parse_errors(void **state)
{
	struct json_object *o = (void *)1;
	char err[JSON_ERR_LEN];

	assert_int_equal(json_parse("", 0, &o, err), RC_BADINPUT);
	assert_null(o);
	assert_non_null(strstr(err, "empty"));

	const char *trunc = "{\"data\":[{\"id\":\"1\"";
	assert_int_equal(json_parse(trunc, strlen(trunc), &o, err), RC_BADINPUT);
	assert_non_null(strstr(err, "truncated"));

	const char *html = "<html>502 Bad Gateway</html>";
	assert_int_equal(json_parse(html, strlen(html), &o, err), RC_BADINPUT);
	assert_non_null(strstr(err, "invalid JSON at byte 0"));

	const char *trail = "{\"a\":1} x";
	assert_int_equal(json_parse(trail, strlen(trail), &o, err), RC_BADINPUT);
	assert_non_null(strstr(err, "byte 8"));

	const char nul[] = "{\"a\":\"b\0c\"}";
	assert_int_equal(json_parse(nul, sizeof(nul) - 1, &o, err), RC_BADINPUT);

	const char *comma = "{\"a\":1,}";
	assert_int_equal(json_parse(comma, strlen(comma), &o, err), RC_BADINPUT);

	/* Whitespace after the value is fine; a bare number is a value. */
	o = parse("{\"a\":1}\r\n ");
	json_object_put(o);
	o = parse("42");
	assert_int_equal(json_object_get_int64(o), 42);
	json_object_put(o);
}

static void test_int64(void **state)
{
	struct json_object *o = parse("{\"id\":\"5725767000003000064\",\"big\":\"9223372036854775807\","
				      "\"over\":\"9223372036854775808\",\"neg\":\"-12\",\"n\":127,"
				      "\"nbig\":9007199254740993,\"dbl\":1.5,\"str\":\"12a\","
				      "\"empty\":\"\",\"plus\":\"+1\",\"space\":\" 1\",\"nul\":null,"
				      "\"uover\":18446744073709551615}");
	char err[JSON_ERR_LEN];
	int64_t v;

	assert_int_equal(json_get_int64(o, "id", JSON_REQUIRED, &v, err), RC_OK);
	assert_int_equal(v, 5725767000003000064LL);
	assert_int_equal(json_get_int64(o, "big", JSON_REQUIRED, &v, err), RC_OK);
	assert_int_equal(v, INT64_MAX);
	assert_int_equal(json_get_int64(o, "neg", JSON_REQUIRED, &v, err), RC_OK);
	assert_int_equal(v, -12);
	assert_int_equal(json_get_int64(o, "n", JSON_REQUIRED, &v, err), RC_OK);
	assert_int_equal(v, 127);
	/* Above 2^53: exact, not through a double. */
	assert_int_equal(json_get_int64(o, "nbig", JSON_REQUIRED, &v, err), RC_OK);
	assert_int_equal(v, 9007199254740993LL);

	assert_int_equal(json_get_int64(o, "over", JSON_REQUIRED, &v, err), RC_BADINPUT);
	assert_non_null(strstr(err, "'over'"));
	assert_int_equal(json_get_int64(o, "uover", JSON_REQUIRED, &v, err), RC_BADINPUT);
	assert_int_equal(json_get_int64(o, "dbl", JSON_REQUIRED, &v, err), RC_BADINPUT);
	assert_non_null(strstr(err, "got number"));
	assert_int_equal(json_get_int64(o, "str", JSON_REQUIRED, &v, err), RC_BADINPUT);
	assert_int_equal(json_get_int64(o, "empty", JSON_REQUIRED, &v, err), RC_BADINPUT);
	assert_int_equal(json_get_int64(o, "plus", JSON_REQUIRED, &v, err), RC_BADINPUT);
	assert_int_equal(json_get_int64(o, "space", JSON_REQUIRED, &v, err), RC_BADINPUT);

	/* Absent and null are the same: fine if optional, an error if not. */
	v = 5;
	assert_int_equal(json_get_int64(o, "nul", JSON_OPTIONAL, &v, err), RC_OK);
	assert_int_equal(v, 0);
	assert_int_equal(json_get_int64(o, "missing", JSON_OPTIONAL, &v, err), RC_OK);
	assert_int_equal(json_get_int64(o, "missing", JSON_REQUIRED, &v, err), RC_BADINPUT);
	assert_string_equal(err, "missing key 'missing'");
	assert_int_equal(json_get_int64(o, "nul", JSON_REQUIRED, &v, err), RC_BADINPUT);
	json_object_put(o);

	assert_true(json_str_to_int64("0", &v));
	assert_false(json_str_to_int64("-", &v));
	assert_false(json_str_to_int64(NULL, &v));
	assert_false(json_str_to_int64("1 ", &v));
}

static void test_types(void **state)
{
	struct json_object *o = parse("{\"s\":\"x\",\"b\":true,\"f\":false,\"o\":{\"k\":1},"
				      "\"a\":[1,2],\"n\":null,\"i\":3}");
	struct json_object *sub;
	const char *s;
	bool b;
	char err[JSON_ERR_LEN];

	assert_int_equal(json_get_str(o, "s", JSON_REQUIRED, &s, err), RC_OK);
	assert_string_equal(s, "x");
	assert_int_equal(json_get_str(o, "i", JSON_REQUIRED, &s, err), RC_BADINPUT);
	assert_string_equal(err, "key 'i': expected a string, got integer");
	assert_null(s);
	assert_int_equal(json_get_str(o, "n", JSON_OPTIONAL, &s, err), RC_OK);
	assert_null(s);

	assert_int_equal(json_get_bool(o, "b", JSON_REQUIRED, &b, err), RC_OK);
	assert_true(b);
	assert_int_equal(json_get_bool(o, "f", JSON_REQUIRED, &b, err), RC_OK);
	assert_false(b);
	assert_int_equal(json_get_bool(o, "s", JSON_REQUIRED, &b, err), RC_BADINPUT);
	assert_int_equal(json_get_bool(o, "zz", JSON_OPTIONAL, &b, err), RC_OK);

	assert_int_equal(json_get_obj(o, "o", JSON_REQUIRED, &sub, err), RC_OK);
	assert_non_null(sub);
	assert_int_equal(json_get_obj(o, "a", JSON_REQUIRED, &sub, err), RC_BADINPUT);
	assert_string_equal(err, "key 'a': expected an object, got array");
	assert_int_equal(json_get_arr(o, "a", JSON_REQUIRED, &sub, err), RC_OK);
	assert_int_equal(json_object_array_length(sub), 2);
	assert_int_equal(json_get_arr(o, "o", JSON_OPTIONAL, &sub, err), RC_BADINPUT);
	assert_null(sub);

	/* A getter on something that is not an object. */
	assert_int_equal(json_get_arr(o, "a", JSON_REQUIRED, &sub, err), RC_OK);
	assert_int_equal(json_get_str(sub, "k", JSON_OPTIONAL, &s, err), RC_BADINPUT);
	assert_non_null(strstr(err, "got array"));
	assert_int_equal(json_get_str(NULL, "k", JSON_OPTIONAL, &s, err), RC_BADINPUT);

	assert_int_equal(json_as_obj(o, "root", err), RC_OK);
	assert_int_equal(json_as_obj(NULL, "root", err), RC_BADINPUT);
	assert_string_equal(json_type_str(NULL), "null");
	assert_string_equal(json_compact(sub), "[1,2]");
	json_object_put(o);
}

static void test_strings_survive(void **state)
{
	/* Unicode escapes and URLs come back as written (no "\/"). */
	struct json_object *o = parse("{\"u\":\"caf\\u00e9 \\/crm\",\"url\":\"/crm/bulk/v6/read/1/result\"}");
	const char *s;
	char err[JSON_ERR_LEN];

	assert_int_equal(json_get_str(o, "u", JSON_REQUIRED, &s, err), RC_OK);
	assert_string_equal(s, "caf\xc3\xa9 /crm");
	assert_non_null(strstr(json_compact(o), "\"/crm/bulk/v6/read/1/result\""));
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_int64),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_strings_survive),
	};
	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
