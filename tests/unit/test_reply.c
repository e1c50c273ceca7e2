/* test_reply.c — webhook/reply.c: the one map from enum rc to an HTTP
 * status (every value of enum rc, as docs/errors.md documents them), and
 * the replies built on it: an error's status and JSON body, 405 with its
 * Allow header, 200 with a body the reply owns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../webhook/webhook.h"

#include <stdlib.h>
#include <string.h>

static void test_status_of_every_rc(void **state)
{
	static const struct {
		enum rc rc;
		int status;
	} cases[] = {
		{RC_OK, 200},           {RC_NOMEM, 500},     {RC_CONFIG, 500},
		{RC_USAGE, 500},        {RC_IO, 500},        {RC_DB, 503},
		{RC_HTTP, 500},         {RC_ZOHO, 500},      {RC_AUTH, 403},
		{RC_RATELIMIT, 500},    {RC_BADINPUT, 400},  {RC_TOOBIG, 413},
		{RC_NOTFOUND, 404},     {RC_LOCKED, 500},    {RC_TIMEOUT, 500},
		{RC_INTERRUPTED, 500},  {RC_INTERNAL, 500},
	};
	(void)state;
	assert_int_equal(sizeof(cases) / sizeof(cases[0]), RC__COUNT);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (reply_status(cases[i].rc) != cases[i].status)
			fail_msg("%s: %d, expected %d", rc_str(cases[i].rc),
				 reply_status(cases[i].rc), cases[i].status);
	}
}

static void test_replies(void **state)
{
	struct reply r;

	(void)state;
	reply_init(&r);
	assert_int_equal(r.status, 500);
	assert_null(r.body);

	reply_error(&r, RC_TOOBIG, "too_large", "body \"big\"");
	assert_int_equal(r.status, 413);
	assert_string_equal(r.content_type, "application/json");
	assert_string_equal(r.body, "{\"error\":\"too_large\",\"message\":\"body \\\"big\\\"\"}");
	assert_null(r.allow);

	/* a later reply replaces the body (no leak under ASan) */
	reply_bad_method(&r, "GET, HEAD", "use GET");
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "GET, HEAD");
	assert_string_equal(r.body, "{\"error\":\"method_not_allowed\",\"message\":\"use GET\"}");

	reply_ok(&r, "text/plain; version=0.0.4", strdup("x 1\n"));
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "text/plain; version=0.0.4");
	assert_string_equal(r.body, "x 1\n");

	reply_ok_json(&r, "{\"status\":\"applied\"}");
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"status\":\"applied\"}");
	reply_free(&r);
	assert_null(r.body);
	reply_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_of_every_rc),
		cmocka_unit_test(test_replies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
