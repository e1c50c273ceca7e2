/* test_notification.c — the notification parser: the documented bodies,
 * every required key missing in turn, wrong types, and huge id lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "notification.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const documented_insert =
	"{\"server_time\":1718117126473,\"query_params\":{},\"module\":\"Leads\","
	"\"resource_uri\":\"https://www.zohoapis.com/crm/v2/Leads\","
	"\"ids\":[\"5725767000003000064\"],\"affected_fields\":[],\"operation\":\"insert\","
	"\"channel_id\":\"1000000068001\",\"token\":\"TOKEN_FOR_VERIFICATION_OF_1000000068001\"}";

static const char *const documented_update =
	"{\"server_time\":1750102639787,\"affected_values\":[{\"record_id\":\"6756839000000575405\","
	"\"values\":{\"Company\":\"Rangoni Of Test\",\"Phone\":\"555-555-1111\"}}],"
	"\"query_params\":{},\"module\":\"Leads\",\"resource_uri\":\"https://www.zohoapis.com/crm/v2/Leads\","
	"\"ids\":[\"6756839000000575405\"],\"affected_fields\":[{\"6756839000000575405\":[\"Company\",\"Phone\"]}],"
	"\"operation\":\"update\",\"channel_id\":\"1105420521999070702\","
	"\"token\":\"c3504777-db15-4332-8286-478a1b5006bc\"}";

static enum rc parse(const char *body, struct notification **n, char *err)
{
	return notification_parse(body, strlen(body), 10000, n, err, 256);
}

static void test_documented_insert(void **state)
{
	struct notification *n = NULL;
	char err[256];

	assert_int_equal(parse(documented_insert, &n, err), RC_OK);
	assert_string_equal(n->module, "Leads");
	assert_int_equal(n->op, NOTIF_INSERT);
	assert_true(n->channel_id == 1000000068001ULL);
	assert_true(n->server_time_ms == 1718117126473LL);
	assert_int_equal(n->nids, 1);
	assert_true(n->ids[0] == 5725767000003000064LL);
	assert_string_equal(n->token, "TOKEN_FOR_VERIFICATION_OF_1000000068001");
	assert_null(n->affected_values);
	notification_free(n);
}

static void test_documented_update(void **state)
{
	struct notification *n = NULL;
	char err[256];

	assert_int_equal(parse(documented_update, &n, err), RC_OK);
	assert_int_equal(n->op, NOTIF_UPDATE);
	assert_non_null(n->affected_values);
	assert_true(n->ids[0] == 6756839000000575405LL);
	notification_free(n);
}

static void test_null_token_and_verbs(void **state)
{
	struct notification *n = NULL;
	char err[256];
	const char *body = "{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[\"1\",\"2\"],"
			   "\"operation\":\"edit\",\"channel_id\":1000000068001,\"token\":null}";

	assert_int_equal(parse(body, &n, err), RC_OK);
	assert_null(n->token);
	assert_int_equal(n->op, NOTIF_UPDATE);
	assert_int_equal(n->nids, 2);
	notification_free(n);
}

/* Remove one key from the documented body and expect its name in err. */
static void test_each_required_key_missing(void **state)
{
	static const char *const keys[] = {"server_time", "module", "ids", "operation",
					   "channel_id"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char body[1024], pat[64];
		struct notification *n = NULL;
		char err[256] = "";
		snprintf(body, sizeof(body), "%s", documented_insert);
		snprintf(pat, sizeof(pat), "\"%s\":", keys[i]);
		char *p = strstr(body, pat);
		assert_non_null(p);
		/* rename the key so it is absent but the JSON stays valid */
		p[1] = 'X';
		assert_int_equal(parse(body, &n, err), RC_BADINPUT);
		assert_null(n);
		if (!strstr(err, keys[i]))
			fail_msg("missing %s: message '%s' does not name it", keys[i], err);
	}
}

static void test_wrong_types(void **state)
{
	static const struct {
		const char *body;
		const char *key;
	} cases[] = {
		{"{\"server_time\":\"soon\",\"module\":\"Leads\",\"ids\":[\"1\"],\"operation\":\"insert\",\"channel_id\":\"1\"}", "server_time"},
		{"{\"server_time\":1.5e12,\"module\":\"Leads\",\"ids\":[\"1\"],\"operation\":\"insert\",\"channel_id\":\"1\"}", "server_time"},
		{"{\"server_time\":1718117126473,\"module\":7,\"ids\":[\"1\"],\"operation\":\"insert\",\"channel_id\":\"1\"}", "module"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":\"1\",\"operation\":\"insert\",\"channel_id\":\"1\"}", "ids"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[],\"operation\":\"insert\",\"channel_id\":\"1\"}", "ids"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[\"12a\"],\"operation\":\"insert\",\"channel_id\":\"1\"}", "ids[0]"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[\"1\",\"99999999999999999999\"],\"operation\":\"insert\",\"channel_id\":\"1\"}", "ids[1]"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[\"9223372036854775808\"],\"operation\":\"insert\",\"channel_id\":\"1\"}", "ids[0]"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[1.5],\"operation\":\"insert\",\"channel_id\":\"1\"}", "ids[0]"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[\"1\"],\"operation\":\"upsert\",\"channel_id\":\"1\"}", "operation"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[\"1\"],\"operation\":\"insert\",\"channel_id\":\"x\"}", "channel_id"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[\"1\"],\"operation\":\"insert\",\"channel_id\":\"1\",\"token\":5}", "token"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[\"1\"],\"operation\":\"insert\",\"channel_id\":\"1\",\"affected_values\":{}}", "affected_values"},
		{"{\"server_time\":1718117126473,\"module\":\"\",\"ids\":[\"1\"],\"operation\":\"insert\",\"channel_id\":\"1\"}", "module"},
		{"[1,2,3]", "object"},
		{"{\"server_time\":1718117126473", "JSON"},
		{"{} trailing", "JSON"},
		{"", "empty"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct notification *n = NULL;
		char err[256] = "";
		enum rc rc = parse(cases[i].body, &n, err);
		if (rc != RC_BADINPUT)
			fail_msg("case %zu: expected RC_BADINPUT, got %d", i, rc);
		if (!strstr(err, cases[i].key))
			fail_msg("case %zu: message '%s' lacks '%s'", i, err, cases[i].key);
	}
}

static void test_invalid_utf8_and_nul(void **state)
{
	struct notification *n = NULL;
	char err[256];
	const char bad_utf8[] = "{\"server_time\":1718117126473,\"module\":\"Le\xff\xfe\",\"ids\":[\"1\"],"
				"\"operation\":\"insert\",\"channel_id\":\"1\"}";
	const char with_nul[] = "{\"module\":\"a\0b\"}";

	assert_int_equal(parse(bad_utf8, &n, err), RC_BADINPUT);
	assert_int_equal(notification_parse(with_nul, sizeof(with_nul) - 1, 10, &n, err, sizeof(err)),
			 RC_BADINPUT);
}

/* "\u0000" decodes to a NUL inside a JSON string; the C string would end
 * there and "Leads\u0000x" pass for "Leads" (tests/fuzz, issue #8). */
static void test_escaped_nul_in_strings(void **state)
{
	static const struct {
		const char *body;
		const char *key;
	} cases[] = {
		{"{\"server_time\":1718117126473,\"module\":\"Leads\\u0000x\",\"ids\":[\"1\"],"
		 "\"operation\":\"insert\",\"channel_id\":\"1\"}", "module"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[\"1\"],"
		 "\"operation\":\"insert\\u0000\",\"channel_id\":\"1\"}", "operation"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[\"1\\u00002\"],"
		 "\"operation\":\"insert\",\"channel_id\":\"1\"}", "ids[0]"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[\"1\"],"
		 "\"operation\":\"insert\",\"channel_id\":\"1\\u0000\"}", "channel_id"},
		{"{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[\"1\"],"
		 "\"operation\":\"insert\",\"channel_id\":\"1\",\"token\":\"tok\\u0000en\"}", "token"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct notification *n = NULL;
		char err[256] = "";
		if (parse(cases[i].body, &n, err) != RC_BADINPUT)
			fail_msg("case %zu (%s): accepted", i, cases[i].key);
		assert_null(n);
		if (!strstr(err, cases[i].key))
			fail_msg("case %zu: message '%s' lacks '%s'", i, err, cases[i].key);
	}
}

/* JSON integers past INT64_MAX are clamped to it by json-c: refused, not
 * taken as the id 9223372036854775807 (issue #8). */
static void test_integer_ids_past_bigint(void **state)
{
	static const char *const ids[] = {"9223372036854775808", "18446744073709551615",
					  "99999999999999999999999", "0", "-1", "1.0"};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char body[512];
		struct notification *n = NULL;
		char err[256] = "";
		snprintf(body, sizeof(body),
			 "{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[%s],"
			 "\"operation\":\"insert\",\"channel_id\":\"1\"}", ids[i]);
		if (parse(body, &n, err) != RC_BADINPUT)
			fail_msg("id %s: accepted", ids[i]);
		assert_non_null(strstr(err, "ids[0]"));
	}
	struct notification *n = NULL;
	char err[256];
	assert_int_equal(parse("{\"server_time\":1718117126473,\"module\":\"Leads\","
			       "\"ids\":[9223372036854775807],\"operation\":\"insert\","
			       "\"channel_id\":9223372036854775808}", &n, err), RC_BADINPUT);
	assert_non_null(strstr(err, "channel_id"));
	assert_int_equal(parse("{\"server_time\":1718117126473,\"module\":\"Leads\","
			       "\"ids\":[9223372036854775806],\"operation\":\"insert\","
			       "\"channel_id\":1}", &n, err), RC_OK);
	assert_true(n->ids[0] == INT64_MAX - 1);
	notification_free(n);
}

static void test_deep_nesting(void **state)
{
	size_t depth = 5000;
	char *body = malloc(depth * 2 + 64);
	size_t len = 0;
	struct notification *n = NULL;
	char err[256];

	len += (size_t)sprintf(body, "{\"x\":");
	for (size_t i = 0; i < depth; i++)
		body[len++] = '[';
	for (size_t i = 0; i < depth; i++)
		body[len++] = ']';
	body[len++] = '}';
	assert_int_equal(notification_parse(body, len, 10, &n, err, sizeof(err)), RC_BADINPUT);
	assert_non_null(strstr(err, "JSON"));
	free(body);
}

static char *ids_body(size_t nids)
{
	struct buf b = {0};

	buf_adds(&b, "{\"server_time\":1718117126473,\"module\":\"Leads\",\"ids\":[");
	for (size_t i = 0; i < nids; i++)
		buf_printf(&b, "%s\"%llu\"", i ? "," : "", 5725767000000000000ULL + i);
	buf_adds(&b, "],\"operation\":\"update\",\"channel_id\":\"1\"}");
	return buf_steal(&b);
}

static void test_huge_id_lists(void **state)
{
	struct notification *n = NULL;
	char err[256];
	char *b = ids_body(10000);

	assert_int_equal(notification_parse(b, strlen(b), 10000, &n, err, sizeof(err)), RC_OK);
	assert_int_equal(n->nids, 10000);
	assert_true(n->ids[9999] == 5725767000000009999LL);
	notification_free(n);
	assert_int_equal(notification_parse(b, strlen(b), 9999, &n, err, sizeof(err)), RC_TOOBIG);
	assert_non_null(strstr(err, "10000"));
	free(b);
}

static void test_parse_id(void **state)
{
	int64_t v;
	assert_int_equal(notification_parse_id("9223372036854775807", &v), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(notification_parse_id("9223372036854775808", &v), -1);
	assert_int_equal(notification_parse_id("0", &v), -1);
	assert_int_equal(notification_parse_id("", &v), -1);
	assert_int_equal(notification_parse_id("-1", &v), -1);
	assert_int_equal(notification_parse_id(" 1", &v), -1);
}

static void check_strip(const char *in, const char *want)
{
	size_t n = 0;
	char *out = notification_strip_token(in, strlen(in), &n);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
	free(out);
}

static void test_strip_token(void **state)
{
	/* Removed wherever it is among the members, escaped or not, with one
	 * comma, every other byte kept as it was; nested
	 * "token" keys and string values mentioning it are not touched. */
	check_strip("{\"a\":1,\"token\":\"s3cr\\\"et\",\"b\":[2,{\"token\":\"x\"}]}",
		    "{\"a\":1,\"b\":[2,{\"token\":\"x\"}]}");
	check_strip("{ \"token\" : \"s\" , \"ids\": [\"1\"] }", "{ \"ids\": [\"1\"] }");
	check_strip("{\"a\": 1, \"token\": \"s\"}", "{\"a\": 1}");
	check_strip("{\"a\": 1, \"token\": \"s\", \"b\": 2}", "{\"a\": 1, \"b\": 2}");
	check_strip("{\"ids\":[\"1\"],\"token\":null}", "{\"ids\":[\"1\"]}");
	check_strip("{\"tok\\u0065n\":\"s\",\"x\":\"token\"}", "{\"x\":\"token\"}");
	check_strip("{\"token\":\"a\",\"token\":\"b\"}", "{}");
	check_strip("{\"token\":\"a\"}\n", "{}\n");
	/* Without a token: byte for byte. */
	check_strip("{ \"a\" : 1 ,\n \"tokens\":\"t\" }", "{ \"a\" : 1 ,\n \"tokens\":\"t\" }");
	check_strip("{}", "{}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_documented_insert),
		cmocka_unit_test(test_documented_update),
		cmocka_unit_test(test_null_token_and_verbs),
		cmocka_unit_test(test_each_required_key_missing),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_invalid_utf8_and_nul),
		cmocka_unit_test(test_escaped_nul_in_strings),
		cmocka_unit_test(test_integer_ids_past_bigint),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_huge_id_lists),
		cmocka_unit_test(test_parse_id),
		cmocka_unit_test(test_strip_token),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
