/* test_log.c — log.c: how log_q quotes a value (when, which escapes, the
 * cut, the ring of slots), what a line looks like (fields, order, level
 * filter, one module= however it is given), and which registered secrets
 * are redacted, how, and for how long. Lines are read back from stderr. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- stderr captured into a temporary file ---- */

struct capture {
	FILE *f;
	int saved;
};

static void capture_start(struct capture *c)
{
	fflush(stderr);
	c->f = tmpfile();
	assert_non_null(c->f);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(fileno(c->f), STDERR_FILENO) >= 0);
}

/* What was written since capture_start, as a heap string. */
static char *capture_end(struct capture *c)
{
	assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
	close(c->saved);
	/* log.c writes with write(2): the size is where the file ends */
	assert_int_equal(fseek(c->f, 0, SEEK_END), 0);
	long n = ftell(c->f);
	assert_true(n >= 0);
	rewind(c->f);
	char *s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, c->f), (size_t)n);
	s[n] = '\0';
	fclose(c->f);
	return s;
}

/* One log_info line with kv "k=<log_q(value)>", as written. */
static char *line_with(const char *msg, const char *value)
{
	struct capture c;

	capture_start(&c);
	log_info(msg, "k=%s", log_q(value));
	return capture_end(&c);
}

static int setup(void **state)
{
	(void)state;
	log_init("test_log", LOG_LVL_INFO);
	log_clear_secrets();
	log_set_module(NULL);
	log_set_context(NULL, NULL);
	return 0;
}

/* ---- log_q ---- */

static void test_q_plain_values_stay_bare(void **state)
{
	(void)state;
	assert_string_equal(log_q("Leads"), "Leads");
	assert_string_equal(log_q("5725767000000412001"), "5725767000000412001");
	assert_string_equal(log_q("a.b/c-d_e:f,g;h"), "a.b/c-d_e:f,g;h");
}

static void test_q_quotes_when_needed(void **state)
{
	(void)state;
	/* empty, NULL, and every character that would end or split a value */
	assert_string_equal(log_q(""), "\"\"");
	assert_string_equal(log_q(NULL), "\"\"");
	assert_string_equal(log_q("two words"), "\"two words\"");
	assert_string_equal(log_q("k=v"), "\"k=v\"");
	assert_string_equal(log_q("say \"hi\""), "\"say \\\"hi\\\"\"");
	assert_string_equal(log_q("C:\\dir"), "\"C:\\\\dir\"");
	assert_string_equal(log_q("a\nb\rc\td"), "\"a\\nb\\rc\\td\"");
	assert_string_equal(log_q("bell\a"), "\"bell\\x07\"");
	assert_string_equal(log_q("del\x7f"), "\"del\\x7f\"");
	/* UTF-8 is quoted but passes byte for byte */
	assert_string_equal(log_q("Zoë"), "\"Zoë\"");
}

static void test_q_cuts_long_values(void **state)
{
	(void)state;
	char big[4000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	/* no quoting needed: cut to the slot, no marker */
	const char *q = log_q(big);
	assert_int_equal(strlen(q), 1023);
	big[10] = ' ';
	q = log_q(big);
	size_t n = strlen(q);
	assert_true(n < 1024);
	assert_int_equal(q[0], '"');
	assert_memory_equal(q + n - 4, "...\"", 4);
	/* an escape is never cut in half */
	memset(big, '\n', sizeof(big) - 1);
	q = log_q(big);
	n = strlen(q);
	assert_memory_equal(q + n - 4, "...\"", 4);
	for (size_t i = 1; i < n - 4; i += 2)
		assert_memory_equal(q + i, "\\n", 2);
}

static void test_q_ring_of_eight(void **state)
{
	(void)state;
	const char *q[9];
	char v[9][16];

	for (int i = 0; i < 9; i++) {
		snprintf(v[i], sizeof(v[i]), "v %d", i);
		q[i] = log_q(v[i]);
	}
	/* the eight latest are all still valid */
	for (int i = 1; i < 9; i++) {
		char want[16];
		snprintf(want, sizeof(want), "\"v %d\"", i);
		assert_string_equal(q[i], want);
	}
	/* the ninth took the first one's slot */
	assert_ptr_equal(q[0], q[8]);
}

/* ---- the line ---- */

static void test_line_fields(void **state)
{
	(void)state;
	struct capture c;
	char pid[32];

	capture_start(&c);
	log_warn("page loaded", "page=%d rows=%ld", 3, 120L);
	char *s = capture_end(&c);
	assert_memory_equal(s, "ts=", 3);
	/* ts=YYYY-MM-DDTHH:MM:SS.mmmZ */
	assert_int_equal(s[13], 'T');
	assert_memory_equal(s + 26, "Z level=warn prog=test_log pid=", 31);
	snprintf(pid, sizeof(pid), "pid=%d msg=", (int)getpid());
	assert_non_null(strstr(s, pid));
	assert_non_null(strstr(s, " msg=\"page loaded\" page=3 rows=120\n"));
	assert_int_equal(strchr(s, '\n') - s + 1, (long)strlen(s)); /* one line */
	free(s);
}

static void test_level_filter(void **state)
{
	(void)state;
	struct capture c;

	log_init("test_log", LOG_LVL_WARN);
	capture_start(&c);
	log_info("not shown", "");
	log_debug("not shown", "");
	log_error("shown", "");
	char *s = capture_end(&c);
	assert_null(strstr(s, "not shown"));
	assert_non_null(strstr(s, "level=error"));
	assert_non_null(strstr(s, " msg=shown\n"));
	free(s);
	log_init("test_log", LOG_LVL_INFO);
}

static void test_one_module_per_line(void **state)
{
	(void)state;
	struct capture c;

	log_set_module("Leads");
	log_set_context("run", "r-17");
	capture_start(&c);
	log_info("a", "");
	log_info("b", "module=%s", "Deals");
	log_info("c", "run=%s x=1", "r-99");
	log_info("d", "note=%s", log_q("module=Quotes"));
	char *s = capture_end(&c);
	char want[256];
	/* a: the thread's module and context */
	snprintf(want, sizeof(want), " pid=%d module=Leads run=r-17 msg=a\n", (int)getpid());
	assert_non_null(strstr(s, want));
	/* b: the caller's module wins, the context stays */
	snprintf(want, sizeof(want), " pid=%d run=r-17 msg=b module=Deals\n", (int)getpid());
	assert_non_null(strstr(s, want));
	/* c: the caller's run wins */
	snprintf(want, sizeof(want), " pid=%d module=Leads msg=c run=r-99 x=1\n", (int)getpid());
	assert_non_null(strstr(s, want));
	/* d: a quoted value holding "module=" is not a module key */
	snprintf(want, sizeof(want), " pid=%d module=Leads run=r-17 msg=d note=\"module=Quotes\"\n",
		 (int)getpid());
	assert_non_null(strstr(s, want));
	free(s);
	log_set_module(NULL);
	log_set_context(NULL, NULL);
}

static void test_long_line_is_cut_whole(void **state)
{
	(void)state;
	struct capture c;
	char *big = malloc(20000);

	assert_non_null(big);
	memset(big, 'y', 19999);
	big[19999] = '\0';
	capture_start(&c);
	log_info("long", "v=%s", big);
	log_info("next", "");
	char *s = capture_end(&c);
	char *nl = strchr(s, '\n');
	assert_non_null(nl);
	assert_true(nl - s + 1 <= 8192);
	assert_memory_equal(nl + 1, "ts=", 3);
	assert_non_null(strstr(nl + 1, "msg=next\n"));
	free(s);
	free(big);
}

/* ---- redaction ---- */

static void test_secret_redacted_everywhere(void **state)
{
	(void)state;
	struct capture c;

	log_add_secret("1000.abcdef0123456789");
	capture_start(&c);
	log_error("token 1000.abcdef0123456789 refused", "auth=Zoho-oauthtoken_%s again=%s",
		  "1000.abcdef0123456789", "x1000.abcdef0123456789y");
	char *s = capture_end(&c);
	assert_null(strstr(s, "abcdef0123456789"));
	assert_non_null(strstr(s, "msg=\"token [redacted] refused\""));
	assert_non_null(strstr(s, " auth=Zoho-oauthtoken_[redacted] again=x[redacted]y\n"));
	free(s);
	log_clear_secrets();
}

static void test_secret_in_quoted_value(void **state)
{
	(void)state;
	log_add_secret("refresh-9f8e7d6c");
	char *s = line_with("x", "the token refresh-9f8e7d6c is bad");
	assert_null(strstr(s, "9f8e7d6c"));
	assert_non_null(strstr(s, " k=\"the token [redacted] is bad\"\n"));
	free(s);
	log_clear_secrets();
}

/* A secret shorter than the marker is starred out in place, so the line
 * never grows; one under 6 characters is not a secret (it would redact
 * ordinary words). */
static void test_short_secrets(void **state)
{
	(void)state;
	log_add_secret("abc12");
	log_add_secret("pw1234");
	char *s = line_with("x", "abc12 pw1234 pw12345");
	assert_non_null(strstr(s, " k=\"abc12 ****** ******5\"\n"));
	free(s);
	log_clear_secrets();
	log_add_secret(NULL);
	s = line_with("x", "nothing");
	assert_non_null(strstr(s, " k=nothing\n"));
	free(s);
}

static void test_clear_secrets(void **state)
{
	(void)state;
	log_add_secret("client-secret-42");
	char *s = line_with("x", "client-secret-42");
	assert_non_null(strstr(s, " k=[redacted]\n"));
	free(s);
	log_clear_secrets();
	s = line_with("x", "client-secret-42");
	assert_non_null(strstr(s, " k=client-secret-42\n"));
	free(s);
}

/* At most 32 secrets: the oldest goes first (access tokens rotate); a
 * secret registered again keeps its one place, and its age. */
static void test_oldest_secret_goes_first(void **state)
{
	(void)state;
	char tok[32];

	log_add_secret("first-token-000");
	for (int i = 1; i < 32; i++) {
		snprintf(tok, sizeof(tok), "token-%06d", i);
		log_add_secret(tok);
	}
	/* 32 distinct: all still redacted */
	char *s = line_with("x", "first-token-000 token-000001 token-000031");
	assert_non_null(strstr(s, " k=\"[redacted] [redacted] [redacted]\"\n"));
	free(s);
	log_add_secret("first-token-000"); /* known: no new place */
	log_add_secret("token-000032");    /* the 33rd: the first goes */
	s = line_with("x", "first-token-000 token-000001 token-000032");
	assert_non_null(strstr(s, " k=\"first-token-000 [redacted] [redacted]\"\n"));
	free(s);
	log_clear_secrets();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_q_plain_values_stay_bare, setup),
		cmocka_unit_test_setup(test_q_quotes_when_needed, setup),
		cmocka_unit_test_setup(test_q_cuts_long_values, setup),
		cmocka_unit_test_setup(test_q_ring_of_eight, setup),
		cmocka_unit_test_setup(test_line_fields, setup),
		cmocka_unit_test_setup(test_level_filter, setup),
		cmocka_unit_test_setup(test_one_module_per_line, setup),
		cmocka_unit_test_setup(test_long_line_is_cut_whole, setup),
		cmocka_unit_test_setup(test_secret_redacted_everywhere, setup),
		cmocka_unit_test_setup(test_secret_in_quoted_value, setup),
		cmocka_unit_test_setup(test_short_secrets, setup),
		cmocka_unit_test_setup(test_clear_secrets, setup),
		cmocka_unit_test_setup(test_oldest_secret_goes_first, setup),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_clear_secrets();
	return rc;
}
