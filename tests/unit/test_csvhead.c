/* test_csvhead.c — the CSV header parser: the same answer whatever the
 * read boundaries (every one- and two-cut split), BOM, CRLF/LF, RFC 4180
 * quoting, the checks on names, the size limit, end of input, and the
 * bytes after the header handed back untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "csvhead.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TEST_DATA
#define TEST_DATA "tests/data"
#endif

#define BOM "\xef\xbb\xbf"

struct hcase {
	const char *in;
	size_t len;         /* 0: strlen(in) */
	size_t hlen;        /* header bytes incl. BOM and terminator */
	const char *names[8];
	bool bom;
};

static const struct hcase cases[] = {
	{"id,Last_Name,Email\n1,\"a\",b\n", 0, 19,
	 {"id", "Last_Name", "Email"}, false},
	{BOM "id,Last_Name\r\n1,\"x\"\r\n", 0, 17, {"id", "Last_Name"}, true},
	{"\"a \"\"b\"\"\",\"c,d\",Id,\"\"\"\"\r\n" BOM "\"data\",\r\n", 0,
	 25, {"a \"b\"", "c,d", "Id", "\""}, false},
	{BOM "\"x\ny\",\"p\r\nq\",id\n\"", 0, 19, {"x\ny", "p\r\nq", "id"},
	 true},
	{"id\n", 0, 3, {"id"}, false},
	{"id,\"\"\r\n\r\n", 0, 7, {"id", ""}, false},
	{BOM BOM "id\n", 0, 9, {BOM "id"}, true},
	{"\xef\xbb" "id,x\n,", 0, 7, {"\xef\xbb" "id", "x"}, false},
	{"\xef" "\xef\xbb\xbf\n", 0, 5, {"\xef\xef\xbb\xbf"}, false},
	{"Zoë,東京,id,\"🚀\"\nrest", 0, 22, {"Zoë", "東京", "id", "🚀"},
	 false},
};

struct result {
	enum rc rc;
	bool done;
	size_t consumed;    /* header bytes, over all pieces */
	char rest[256];     /* bytes after the header, as handed back */
	size_t rest_len;
	char err[CSVHEAD_ERR_LEN];
};

/* Feed in[0..len) cut at cuts[0] < cuts[1] < ...; the csvhead is left in
 * *out for the caller to inspect and free. */
static void feed_cuts(const char *in, size_t len, const size_t *cuts,
		      size_t ncuts, size_t max, struct csvhead **out,
		      struct result *r)
{
	struct csvhead *h = csvhead_new(max);
	size_t start = 0;

	memset(r, 0, sizeof(*r));
	for (size_t k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : len;
		size_t used = 0;
		bool done = false;

		if (r->done) {
			memcpy(r->rest + r->rest_len, in + start, end - start);
			r->rest_len += end - start;
			start = end;
			continue;
		}
		r->rc = csvhead_feed(h, in + start, end - start, &used, &done,
				     r->err, sizeof(r->err));
		if (r->rc)
			break;
		assert_true(used <= end - start);
		if (!done)
			assert_int_equal(used, end - start);
		r->consumed += used;
		r->done = done;
		if (done) {
			memcpy(r->rest + r->rest_len, in + start + used,
			       end - start - used);
			r->rest_len += end - start - used;
		}
		start = end;
	}
	*out = h;
}

static void expect_case(const struct hcase *c, const struct result *r,
			const struct csvhead *h, const char *how)
{
	size_t len = c->len ? c->len : strlen(c->in);
	size_t n = 0;

	if (r->rc != RC_OK || !r->done)
		fail_msg("%s: rc %s done %d: %s", how, rc_str(r->rc), r->done,
			 r->err);
	assert_int_equal(r->consumed, c->hlen);
	assert_int_equal(r->rest_len, len - c->hlen);
	assert_memory_equal(r->rest, c->in + c->hlen, r->rest_len);
	while (n < ARRAY_LEN(c->names) && c->names[n])
		n++;
	assert_int_equal(csvhead_ncols(h), n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(csvhead_col(h, i), c->names[i]);
	assert_null(csvhead_col(h, n));
	assert_int_equal(csvhead_had_bom(h), c->bom);
	assert_true(csvhead_done(h));
}

static void test_one_piece(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct hcase *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		struct csvhead *h;
		struct result r;
		feed_cuts(c->in, len, NULL, 0, 0, &h, &r);
		expect_case(c, &r, h, "one piece");
		csvhead_free(h);
	}
}

static void test_byte_at_a_time(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct hcase *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		size_t cuts[256];
		struct csvhead *h;
		struct result r;
		for (size_t k = 0; k + 1 < len; k++)
			cuts[k] = k + 1;
		feed_cuts(c->in, len, cuts, len - 1, 0, &h, &r);
		expect_case(c, &r, h, "bytewise");
		csvhead_free(h);
	}
}

/* Every split into two and into three pieces (empty pieces included). */
static void test_every_split(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct hcase *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		for (size_t a = 0; a <= len; a++) {
			for (size_t b = a; b <= len; b++) {
				size_t cuts[2] = {a, b};
				char how[64];
				struct csvhead *h;
				struct result r;
				snprintf(how, sizeof(how),
					 "case %zu cuts %zu,%zu", i, a, b);
				feed_cuts(c->in, len, cuts, 2, 0, &h, &r);
				expect_case(c, &r, h, how);
				csvhead_free(h);
			}
		}
	}
}

/* After done, feeding consumes nothing and changes nothing. */
static void test_after_done(void **state)
{
	struct csvhead *h = csvhead_new(0);
	char err[CSVHEAD_ERR_LEN];
	size_t used;
	bool done;

	assert_int_equal(csvhead_feed(h, "id,a\n1,2\n", 9, &used, &done, err,
				      sizeof(err)), RC_OK);
	assert_true(done);
	assert_int_equal(used, 5);
	assert_int_equal(csvhead_feed(h, "x,y\n", 4, &used, &done, err,
				      sizeof(err)), RC_OK);
	assert_true(done);
	assert_int_equal(used, 0);
	assert_int_equal(csvhead_ncols(h), 2);
	assert_int_equal(csvhead_end(h, err, sizeof(err)), RC_OK);
	assert_int_equal(csvhead_check(h, err, sizeof(err)), RC_OK);
	csvhead_free(h);
	csvhead_free(NULL);
}

static struct csvhead *parse_ok(const char *in)
{
	struct csvhead *h = csvhead_new(0);
	char err[CSVHEAD_ERR_LEN] = "";
	size_t used;
	bool done;

	if (csvhead_feed(h, in, strlen(in), &used, &done, err, sizeof(err)))
		fail_msg("%s: %s", in, err);
	if (!done && csvhead_end(h, err, sizeof(err)))
		fail_msg("%s: %s", in, err);
	return h;
}

static void test_find(void **state)
{
	struct csvhead *h = parse_ok("Last_Name,Id,EMAIL\n");

	assert_int_equal(csvhead_find(h, "id"), 1);
	assert_int_equal(csvhead_find(h, "ID"), 1);
	assert_int_equal(csvhead_find(h, "email"), 2);
	assert_int_equal(csvhead_find(h, "last_name"), 0);
	assert_int_equal(csvhead_find(h, "Owner"), -1);
	assert_int_equal(csvhead_find(h, "i"), -1);
	assert_int_equal(csvhead_find(h, "idx"), -1);
	csvhead_free(h);
}

static void test_check(void **state)
{
	static const struct {
		const char *in;
		const char *msg; /* NULL: passes */
	} c[] = {
		{"id,Last_Name,Owner.last_name\n", NULL},
		{"Id\n", NULL},
		{"\"ID\",\"Zoë\",東京\n", NULL},
		{"Last_Name,Email\n", "no \"id\" column"},
		{"ID_x,identity\n", "no \"id\" column"},
		{"id,Name,NAME\n", "names \"NAME\" twice (columns 2 and 3"},
		{"id,a,b,c,d,e,f,g,A\n", "twice (columns 2 and 9"},
		{"Id,x,id\n", "twice"},
		{"id,,x\n", "column 2 (\"\") is empty"},
		{"id,x,\n", "column 3 (\"\") is empty"},
		{"\n", "column 1 (\"\") is empty"},
		{"id,\"a\tb\"\n", "contains a control character"},
		{"id,\"a\nb\"\n", "contains a control character"},
		{"id,\"a\x7f\"\n", "contains a control character"},
		{"id,\xff\n", "not valid UTF-8"},
		{"id,\xc0\xaf\n", "not valid UTF-8"},          /* overlong */
		{"id,\xed\xa0\x80\n", "not valid UTF-8"},      /* surrogate */
		{"id,\xf4\x90\x80\x80\n", "not valid UTF-8"},  /* > U+10FFFF */
		{"id,\xe6\x9d\n", "not valid UTF-8"},          /* cut short */
	};

	for (size_t i = 0; i < ARRAY_LEN(c); i++) {
		struct csvhead *h = parse_ok(c[i].in);
		char err[CSVHEAD_ERR_LEN] = "";
		enum rc rc = csvhead_check(h, err, sizeof(err));
		if (!c[i].msg && rc != RC_OK)
			fail_msg("case %zu: %s", i, err);
		if (c[i].msg && (rc != RC_BADINPUT || !strstr(err, c[i].msg)))
			fail_msg("case %zu: want \"%s\", got %s \"%s\"", i,
				 c[i].msg, rc_str(rc), err);
		csvhead_free(h);
	}
}

/* Many columns: the duplicate check stays fast (sorted, not n^2). */
static void test_many_columns(void **state)
{
	size_t n = 100000;
	char *in = xmalloc(n * 8 + 16);
	size_t o = 0;

	o += (size_t)sprintf(in + o, "id");
	for (size_t i = 1; i < n; i++)
		o += (size_t)sprintf(in + o, ",c%zu", i);
	in[o++] = '\n';
	in[o] = '\0';
	struct csvhead *h = parse_ok(in);
	char err[CSVHEAD_ERR_LEN] = "";
	assert_int_equal(csvhead_ncols(h), n);
	assert_int_equal(csvhead_check(h, err, sizeof(err)), RC_OK);
	assert_int_equal(csvhead_find(h, "C99999"), 99999);
	csvhead_free(h);
	free(in);
}

static void expect_feed(const char *in, size_t len, size_t max, enum rc want,
			const char *msg)
{
	/* The same verdict in one piece and byte by byte. */
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct csvhead *h = csvhead_new(max);
		char err[CSVHEAD_ERR_LEN] = "";
		enum rc rc = RC_OK;
		size_t used;
		bool done = false;
		for (size_t i = 0; i < len && !rc && !done;) {
			size_t k = bytewise ? 1 : len;
			rc = csvhead_feed(h, in + i, k, &used, &done, err,
					  sizeof(err));
			i += k;
		}
		if (!rc && !done)
			rc = csvhead_end(h, err, sizeof(err));
		if (rc != want || (msg && !strstr(err, msg)))
			fail_msg("%s: want %s \"%s\", got %s \"%s\"", in,
				 rc_str(want), msg ? msg : "", rc_str(rc), err);
		if (rc) {
			/* sticky */
			char err2[CSVHEAD_ERR_LEN] = "";
			assert_int_equal(csvhead_feed(h, "x\n", 2, &used,
						      &done, err2,
						      sizeof(err2)), rc);
			assert_false(done);
			assert_int_equal(used, 0);
			assert_string_equal(err, err2);
			assert_int_equal(csvhead_end(h, err2, sizeof(err2)),
					 rc);
			assert_false(csvhead_done(h));
		}
		csvhead_free(h);
	}
}

static void test_malformed(void **state)
{
	expect_feed("id,a\"b\n", 7, 0, RC_BADINPUT,
		    "quote inside an unquoted name at byte 5");
	expect_feed("id,\"ab\"c\n", 9, 0, RC_BADINPUT,
		    "text after a closing quote");
	expect_feed("id,\"ab\" \n", 9, 0, RC_BADINPUT,
		    "text after a closing quote");
	expect_feed("id\rx\n", 5, 0, RC_BADINPUT, "bare CR");
	expect_feed("id\r\r\n", 5, 0, RC_BADINPUT, "bare CR");
	expect_feed("id,a\0b\n", 7, 0, RC_BADINPUT, "NUL byte");
	expect_feed("id,\"a\0b\"\n", 9, 0, RC_BADINPUT, "NUL byte");
}

static void test_limit(void **state)
{
	/* "id,Last_Name\r\n" is 14 bytes, BOM included it is 17. */
	expect_feed("id,Last_Name\r\n1,x\n", 18, 14, RC_OK, NULL);
	expect_feed("id,Last_Name\r\n", 14, 13, RC_TOOBIG,
		    "longer than 13 bytes");
	expect_feed(BOM "id,Last_Name\r\n", 17, 17, RC_OK, NULL);
	expect_feed(BOM "id,Last_Name\r\n", 17, 16, RC_TOOBIG, NULL);
	/* A quoted newline does not end the header. */
	expect_feed("\"a\nb\nc\nd\n", 9, 8, RC_TOOBIG, NULL);

	/* The default limit is 1 MiB. */
	size_t n = CSVHEAD_DEFAULT_MAX + 1;
	char *big = xmalloc(n);
	memset(big, 'a', n);
	expect_feed(big, n, 0, RC_TOOBIG, "longer than 1048576 bytes");
	free(big);
}

static void test_end_of_input(void **state)
{
	struct csvhead *h;

	/* A CSV that is only a header without a line end. */
	h = parse_ok("id,Last_Name");
	assert_int_equal(csvhead_ncols(h), 2);
	assert_string_equal(csvhead_col(h, 1), "Last_Name");
	csvhead_free(h);
	h = parse_ok("id,\"a,b\"");
	assert_string_equal(csvhead_col(h, 1), "a,b");
	csvhead_free(h);
	h = parse_ok("id,");
	assert_int_equal(csvhead_ncols(h), 2);
	assert_string_equal(csvhead_col(h, 1), "");
	csvhead_free(h);
	h = parse_ok("id\r");
	assert_int_equal(csvhead_ncols(h), 1);
	csvhead_free(h);
	h = parse_ok(BOM "id");
	assert_string_equal(csvhead_col(h, 0), "id");
	assert_true(csvhead_had_bom(h));
	csvhead_free(h);
	h = parse_ok("\xef\xbb");
	assert_string_equal(csvhead_col(h, 0), "\xef\xbb");
	assert_false(csvhead_had_bom(h));
	csvhead_free(h);

	expect_feed("", 0, 0, RC_BADINPUT, "CSV is empty");
	expect_feed(BOM, 3, 0, RC_BADINPUT, "CSV is empty");
	expect_feed("id,\"abc", 7, 0, RC_BADINPUT, "inside a quoted name");
}

/* The committed fixture's header, then its data handed back intact. */
static void test_quoting_fixture(void **state)
{
	static const char *files[] = {"quoting.csv", "quoting_lf.csv"};

	for (size_t f = 0; f < ARRAY_LEN(files); f++) {
		char path[256], buf[8192], err[CSVHEAD_ERR_LEN] = "";
		snprintf(path, sizeof(path), TEST_DATA "/csv/%s", files[f]);
		FILE *fp = fopen(path, "rb");
		assert_non_null(fp);
		size_t len = fread(buf, 1, sizeof(buf), fp);
		fclose(fp);
		struct csvhead *h = csvhead_new(64);
		size_t used = 0;
		bool done = false;
		/* in 5-byte reads, as a stream would deliver it */
		size_t i = 0;
		while (!done) {
			size_t k = len - i < 5 ? len - i : 5;
			assert_true(k > 0);
			assert_int_equal(csvhead_feed(h, buf + i, k, &used,
						      &done, err, sizeof(err)),
					 RC_OK);
			i += used;
		}
		assert_int_equal(csvhead_check(h, err, sizeof(err)), RC_OK);
		assert_int_equal(csvhead_ncols(h), 6);
		assert_string_equal(csvhead_col(h, 2), "Description");
		assert_int_equal(csvhead_find(h, "id"), 0);
		assert_memory_equal(buf + i, "1001,Smith,", 11);
		assert_int_equal(i, f == 0 ? 43 : 42);
		csvhead_free(h);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_piece),
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_after_done),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_many_columns),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_end_of_input),
		cmocka_unit_test(test_quoting_fixture),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
