/* test_syncstate.c — the pure part of syncstate.c: when renew_channel must
 * ask Zoho about a channel (sync_channel_due). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "syncstate.h"

#include <string.h>

#define NOW 1800000000
#define CH 1000000068001ULL

static struct sync_row live(void)
{
	struct sync_row r;
	memset(&r, 0, sizeof(r));
	r.channel_id = CH;
	r.channel_expiry = NOW + 80000;
	r.channel_checked = NOW - 600;
	strcpy(r.channel_status, "active");
	return r;
}

static void test_channel_due(void **state)
{
	struct sync_row r = live();
	(void)state;
	/* confirmed 10 min ago, 22 h left: not due */
	assert_null(sync_channel_due(&r, CH, NOW, 43200, 3600));
	/* check_interval 0: every run */
	assert_non_null(sync_channel_due(&r, CH, NOW, 43200, 0));
	/* confirmed exactly check_interval ago: due */
	r.channel_checked = NOW - 3600;
	assert_non_null(sync_channel_due(&r, CH, NOW, 43200, 3600));
	r.channel_checked = NOW - 3599;
	assert_null(sync_channel_due(&r, CH, NOW, 43200, 3600));
	/* never confirmed */
	r.channel_checked = 0;
	assert_non_null(sync_channel_due(&r, CH, NOW, 43200, 3600));
	/* within the renew margin */
	r = live();
	r.channel_expiry = NOW + 43199;
	assert_string_equal(sync_channel_due(&r, CH, NOW, 43200, 3600),
			    "expires within renew_margin");
	/* expiry unknown, not active, another channel id */
	r = live();
	r.channel_expiry = 0;
	assert_non_null(sync_channel_due(&r, CH, NOW, 43200, 3600));
	r = live();
	strcpy(r.channel_status, "expired");
	assert_non_null(sync_channel_due(&r, CH, NOW, 43200, 3600));
	r = live();
	assert_non_null(sync_channel_due(&r, CH + 1, NOW, 43200, 3600));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_channel_due),
	};
	return cmocka_run_group_tests_name("syncstate", tests, NULL, NULL);
}
