/* test_zoho.c — the pure parts of the Zoho client: request bodies (watch,
 * bulk criteria), job states, Zoho error texts, and the token endpoint's
 * answers (success, HTTP 200 refusals, throttling, the expires_in_sec quirk). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "incremental.h"
#include "json.h"
#include "oauth.h"
#include "zoho.h"

#include <stdlib.h>
#include <string.h>

static struct json_object *parse(const char *s)
{
	struct json_object *o = NULL;
	char err[JSON_ERR_LEN];

	if (json_parse(s, strlen(s), &o, err) != RC_OK)
		fail_msg("parse: %s", err);
	return o;
}

static void test_watch_body(void **state)
{
	char *body = zoho_watch_body("Leads", 1000000068001ULL, "https://h/zoho/notify?k=a\"b",
				     "tok-123", 1740825000);
	struct json_object *o = parse(body), *w, *events;

	assert_non_null(strstr(body, "\"channel_id\":\"1000000068001\""));
	assert_non_null(strstr(body, "\"channel_expiry\":\"2025-03-01T10:30:00+00:00\""));
	assert_non_null(strstr(body, "\"return_affected_field_values\":true"));
	assert_non_null(strstr(body, "\"notify_on_related_action\":false"));
	assert_non_null(strstr(body, "\"token\":\"tok-123\""));
	w = json_object_array_get_idx(json_object_object_get(o, "watch"), 0);
	events = json_object_object_get(w, "events");
	assert_int_equal(json_object_array_length(events), 3);
	assert_string_equal(json_object_get_string(json_object_array_get_idx(events, 0)),
			    "Leads.create");
	assert_string_equal(json_object_get_string(json_object_array_get_idx(events, 1)),
			    "Leads.edit");
	assert_string_equal(json_object_get_string(json_object_array_get_idx(events, 2)),
			    "Leads.delete");
	assert_string_equal(json_object_get_string(json_object_object_get(w, "notify_url")),
			    "https://h/zoho/notify?k=a\"b");
	json_object_put(o);
	free(body);

	/* No token configured: no token key at all. */
	body = zoho_watch_body("Deals", 7, "https://h/n", "", 0);
	assert_null(strstr(body, "\"token\""));
	free(body);
}

static void test_bulk_body(void **state)
{
	const char *fields[] = {"Last_Name", "Modified_Time"};
	struct zoho_bulk_query q = {.module = "Leads", .fields = fields, .nfields = 2,
				    .from = 1740787200, .to = 1740808800, .page = 3,
				    .callback_url = "https://h/zoho/bulk-callback?k=1"};
	char *body = zoho_bulk_body(&q);
	struct json_object *o = parse(body), *query, *crit, *group;

	query = json_object_object_get(o, "query");
	assert_string_equal(
		json_object_get_string(json_object_object_get(json_object_object_get(query, "module"),
							      "api_name")),
		"Leads");
	assert_int_equal(json_object_get_int(json_object_object_get(query, "page")), 3);
	crit = json_object_object_get(query, "criteria");
	assert_string_equal(json_object_get_string(json_object_object_get(crit, "group_operator")),
			    "and");
	group = json_object_object_get(crit, "group");
	assert_int_equal(json_object_array_length(group), 2);
	assert_non_null(strstr(body, "{\"field\":{\"api_name\":\"Modified_Time\"},\"comparator\":"
				     "\"greater_equal\",\"value\":\"2025-03-01T00:00:00+00:00\"}"));
	assert_non_null(strstr(body, "\"comparator\":\"less_than\",\"value\":\"2025-03-01T06:00:00+00:00\""));
	assert_non_null(strstr(body, "\"callback\":{\"url\":\"https://h/zoho/bulk-callback?k=1\","
				     "\"method\":\"post\"}"));
	assert_non_null(strstr(body, "\"fields\":[\"Last_Name\",\"Modified_Time\"]"));
	json_object_put(o);
	free(body);

	/* All fields, no window, page 0 means 1, no callback. */
	struct zoho_bulk_query all = {.module = "Leads"};
	body = zoho_bulk_body(&all);
	assert_string_equal(body, "{\"query\":{\"module\":{\"api_name\":\"Leads\"},\"page\":1}}");
	free(body);

	/* Only a lower bound: a single condition. */
	struct zoho_bulk_query from = {.module = "Leads", .from = 1740787200};
	body = zoho_bulk_body(&from);
	assert_non_null(strstr(body, "\"criteria\":{\"field\":{\"api_name\":\"Modified_Time\"},"
				     "\"comparator\":\"greater_equal\""));
	free(body);

	/* page_token carries the whole query. */
	struct zoho_bulk_query tok = {.module = "Leads", .page_token = "abc", .page = 2};
	body = zoho_bulk_body(&tok);
	assert_string_equal(body, "{\"query\":{\"page_token\":\"abc\"}}");
	free(body);
}

static void test_bulk_states(void **state)
{
	assert_int_equal(zoho_bulk_state_parse("COMPLETED"), ZOHO_BULK_COMPLETED);
	assert_int_equal(zoho_bulk_state_parse("FAILURE"), ZOHO_BULK_FAILED);
	assert_int_equal(zoho_bulk_state_parse("ADDED"), ZOHO_BULK_RUNNING);
	assert_int_equal(zoho_bulk_state_parse("QUEUED"), ZOHO_BULK_RUNNING);
	assert_int_equal(zoho_bulk_state_parse("IN PROGRESS"), ZOHO_BULK_RUNNING);
	assert_int_equal(zoho_bulk_state_parse("SOMETHING_NEW"), ZOHO_BULK_RUNNING);
	assert_int_equal(zoho_bulk_state_parse(NULL), ZOHO_BULK_RUNNING);
}

static void test_error_text(void **state)
{
	char out[256];
	const char *top = "{\"code\":\"INVALID_MODULE\",\"details\":{},\"message\":\"the module name "
			  "given seems to be invalid\",\"status\":\"error\"}";
	const char *wrapped = "{\"data\":[{\"code\":\"INVALID_DATA\",\"details\":{\"api_name\":"
			      "\"Email\"},\"message\":\"invalid data\",\"status\":\"error\"}]}";
	const char *watch = "{\"watch\":[{\"code\":\"NOT_SUBSCRIBED\",\"message\":\"m\\nx\"}]}";

	assert_true(zoho_error_text(top, strlen(top), out, sizeof(out)));
	assert_string_equal(out, "INVALID_MODULE: the module name given seems to be invalid");
	assert_true(zoho_error_text(wrapped, strlen(wrapped), out, sizeof(out)));
	assert_string_equal(out, "INVALID_DATA: invalid data (details {\"api_name\":\"Email\"})");
	assert_true(zoho_error_text(watch, strlen(watch), out, sizeof(out)));
	assert_string_equal(out, "NOT_SUBSCRIBED: m?x");
	assert_false(zoho_error_text("<html>", 6, out, sizeof(out)));
	assert_false(zoho_error_text("{\"data\":[]}", 11, out, sizeof(out)));
	assert_false(zoho_error_text(NULL, 0, out, sizeof(out)));
}

static enum rc grant(long status, const char *body, struct oauth_grant *g, char *err)
{
	return oauth_parse_grant(status, body, strlen(body), false, g, err);
}

static void test_grant_success(void **state)
{
	struct oauth_grant g;
	char err[OAUTH_ERR_LEN];

	assert_int_equal(grant(200, "{\"access_token\":\"1000.abc.def\",\"api_domain\":"
				    "\"https://www.zohoapis.eu/\",\"token_type\":\"Bearer\","
				    "\"expires_in\":3600}",
			       &g, err),
			 RC_OK);
	assert_string_equal(g.access_token, "1000.abc.def");
	assert_string_equal(g.api_domain, "https://www.zohoapis.eu");
	assert_int_equal(g.expires_in, 3600);
	oauth_grant_free(&g);

	/* Legacy: expires_in in milliseconds when expires_in_sec is present. */
	assert_int_equal(grant(200, "{\"access_token\":\"t123456\",\"expires_in\":3600000,"
				    "\"expires_in_sec\":3600}",
			       &g, err),
			 RC_OK);
	assert_int_equal(g.expires_in, 3600);
	assert_null(g.api_domain);
	oauth_grant_free(&g);

	/* No expires_in: an hour. */
	assert_int_equal(grant(200, "{\"access_token\":\"t123456\"}", &g, err), RC_OK);
	assert_int_equal(g.expires_in, 3600);
	oauth_grant_free(&g);
}

static void test_grant_failures(void **state)
{
	struct oauth_grant g;
	char err[OAUTH_ERR_LEN];

	/* HTTP 200 with an error: a refusal. */
	assert_int_equal(grant(200, "{\"error\":\"invalid_code\"}", &g, err), RC_AUTH);
	assert_non_null(strstr(err, "invalid_code"));
	assert_null(g.access_token);
	assert_int_equal(grant(400, "{\"error\":\"invalid_client\"}", &g, err), RC_AUTH);
	assert_non_null(strstr(err, "HTTP 400"));
	assert_non_null(strstr(err, "invalid_client"));
	/* The throttle. */
	assert_int_equal(grant(400, "{\"error_description\":\"You have made too many requests "
				    "continuously. Please try again after some time.\","
				    "\"error\":\"Access Denied\",\"status\":\"failure\"}",
			       &g, err),
			 RC_RATELIMIT);
	assert_non_null(strstr(err, "throttled"));
	/* Garbage. */
	assert_int_equal(grant(200, "<html>", &g, err), RC_BADINPUT);
	assert_non_null(strstr(err, "no usable JSON"));
	assert_int_equal(grant(200, "{\"access_token\":\"abc", &g, err), RC_BADINPUT);
	assert_null(strstr(err, "abc"));
	assert_int_equal(grant(200, "[]", &g, err), RC_BADINPUT);
	/* A token that would break the header line. */
	assert_int_equal(grant(200, "{\"access_token\":\"a\\r\\nX-Evil: 1\"}", &g, err),
			 RC_BADINPUT);
	assert_null(strstr(err, "Evil"));
	/* An api_domain we will not send the token to. */
	assert_int_equal(grant(200, "{\"access_token\":\"t123456\",\"api_domain\":\"http://x\"}",
			       &g, err),
			 RC_BADINPUT);
	assert_int_equal(oauth_parse_grant(200, "{\"access_token\":\"t123456\",\"api_domain\":"
						"\"http://127.0.0.1:9\"}",
					   strlen("{\"access_token\":\"t123456\",\"api_domain\":"
						  "\"http://127.0.0.1:9\"}"),
					   true, &g, err),
			 RC_OK);
	oauth_grant_free(&g);
	assert_int_equal(grant(200, "{\"access_token\":\"t123456\",\"api_domain\":\"ftp://x\"}",
			       &g, err),
			 RC_BADINPUT);
}

/* Every call the client makes, priced as Zoho prices it (zoho-api.md
 * §8.1) under the simulator's route names. */
static void test_call_endpoint(void **state)
{
	static const struct {
		const char *method, *path, *name;
		int credits;
	} cases[] = {
		{"POST", "/crm/bulk/v6/read", "bulk_create", 50},
		{NULL, "/crm/bulk/v6/read/4150868000004716016", "bulk_status", 1},
		{NULL, "https://www.zohoapis.com/crm/bulk/v6/read/4150868000004716016/result",
		 "bulk_result", 1},
		{NULL, "http://127.0.0.1:8080/crm/bulk/v6/read/41/result?x=1", "bulk_result", 1},
		{NULL, "/crm/v6/Leads?ids=1,2&fields=Email&converted=both", "records", 1},
		{NULL, "/crm/v6/Leads?fields=id,Modified_Time&sort_by=Modified_Time", "records", 1},
		{NULL, "/crm/v6/Leads?cvid=5&fields=id", "records", 3},
		{NULL, "/crm/v6/Leads/5725767000003000064", "record_by_id", 1},
		{NULL, "/crm/v6/Leads/deleted?type=all&page=1&per_page=200", "deleted", 1},
		{NULL, "/crm/v6/settings/fields?module=Leads", "fields", 1},
		{NULL, "/crm/v6/Leads/actions/count", "count", 1},
		{"POST", "/crm/v6/actions/watch", "watch", 1},
		{"PUT", "/crm/v6/actions/watch", "watch", 1},
		{NULL, "/crm/v6/actions/watch?channel_ids=1000000068001", "watch", 1},
		{"DELETE", "/crm/v6/actions/watch?channel_ids=1", "watch", 1},
		{NULL, "/crm/v6/users?type=AllUsers&page=1&per_page=200", "users", 1},
		{NULL, "/crm/v6/Invoices/5725768400000007919/actions/fetch_full_data?fields=Notes",
		 "fetch_full_data", 1},
		{NULL, "/crm/v6/Invoiced_Items?fields=Quantity&page=1", "records", 1},
		{NULL, "/crm/bulk/v6/write", "other", 1},
		{NULL, "/somewhere/else", "other", 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int credits = -1;
		enum zoho_endpoint ep = zoho_call_endpoint(cases[i].method, cases[i].path, &credits);
		if (strcmp(zoho_endpoint_name(ep), cases[i].name) || credits != cases[i].credits)
			fail_msg("%s %s: %s %d, expected %s %d", cases[i].method ? cases[i].method : "GET",
				 cases[i].path, zoho_endpoint_name(ep), credits, cases[i].name,
				 cases[i].credits);
	}
}

/* Get Records calls per fetch: ≤ 100 ids a call, one call per chunk of at
 * most 50 fields (49 + Modified_Time beyond 50); the catch-up's REST cost
 * adds the listing pages. */
static void test_fetch_calls(void **state)
{
	(void)state;
	assert_int_equal(zoho_fetch_calls(0, 40), 0);
	assert_int_equal(zoho_fetch_calls(1, 40), 1);
	assert_int_equal(zoho_fetch_calls(100, 40), 1);
	assert_int_equal(zoho_fetch_calls(101, 40), 2);
	assert_int_equal(zoho_fetch_calls(1000, 40), 10);
	assert_int_equal(zoho_fetch_calls(1000, 50), 10);
	assert_int_equal(zoho_fetch_calls(1000, 51), 20);
	assert_int_equal(zoho_fetch_calls(1000, 98), 20);
	assert_int_equal(zoho_fetch_calls(1000, 99), 30);
	assert_int_equal(zoho_fetch_calls(2000, 119), 60);
	/* the outage of issue 15: 6 listing pages + 10 calls */
	assert_int_equal(incremental_rest_cost(6, 1000, 40), 16);
	assert_int_equal(incremental_rest_cost(1, 0, 40), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_call_endpoint),
		cmocka_unit_test(test_watch_body),    cmocka_unit_test(test_bulk_body),
		cmocka_unit_test(test_bulk_states),   cmocka_unit_test(test_error_text),
		cmocka_unit_test(test_grant_success), cmocka_unit_test(test_grant_failures),
		cmocka_unit_test(test_fetch_calls),
	};
	return cmocka_run_group_tests_name("zoho", tests, NULL, NULL);
}
