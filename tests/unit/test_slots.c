/* test_slots.c — the host-wide cap on Zoho calls in flight: n slots can be
 * held at once, the next taker waits (and gives up when told to stop), a
 * slot given back is taken again, and a directory that cannot be made
 * means "no cap" rather than a failure. */
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "slots.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_cap_wait_and_give_back(void **state)
{
	char tmpl[] = "/tmp/zcrm-slots-XXXXXX";
	char dir[64];
	atomic_int stop = 1; /* a taker that would wait returns at once */
	bool stopped = false;

	assert_non_null(mkdtemp(tmpl));
	snprintf(dir, sizeof(dir), "%s/.zoho-slots", tmpl);
	int a = slot_take(dir, 2, &stop, &stopped);
	int b = slot_take(dir, 2, &stop, &stopped);
	assert_true(a >= 0 && b >= 0 && a != b);
	assert_false(stopped);
	/* Both held: a third taker waits, and leaves when stop is set. */
	assert_int_equal(slot_take(dir, 2, &stop, &stopped), -1);
	assert_true(stopped);
	slot_give(a);
	int c = slot_take(dir, 2, &stop, &stopped);
	assert_true(c >= 0);
	assert_false(stopped);
	struct stat st;
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	slot_give(b);
	slot_give(c);
	slot_give(-1); /* a no-op */
	char path[128];
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/slot-%d", dir, i);
		assert_int_equal(unlink(path), 0);
	}
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(rmdir(tmpl), 0);
}

static void test_no_cap(void **state)
{
	bool stopped = true;
	/* n = 0 (no cap) and an unusable directory: go ahead uncapped. */
	assert_int_equal(slot_take("/tmp", 0, NULL, &stopped), -1);
	assert_false(stopped);
	assert_int_equal(slot_take("/nonexistent/zcrm/slots", 3, NULL, &stopped), -1);
	assert_false(stopped);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cap_wait_and_give_back),
		cmocka_unit_test(test_no_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
