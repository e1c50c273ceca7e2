/* test_metrics.c — metrics_render: the Prometheus text page for a given set
 * of counters (every family, in order, byte for byte), which samples are
 * left out (zero request counts, no spool depth, no credits header yet),
 * how requests are bucketed and counted, and label-value escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "compiler.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const endpoints[] = {"records", "bulk"};

/* A struct metrics with a fixed identity, so that the page is known. */
static struct metrics *fixed(void)
{
	struct metrics *m = metrics_new();
	metrics_set_identity(m, "wh-1", "host-a");
	m->pid = 4242;
	m->start_time = 1700000000.0;
	metrics_set_endpoints(m, endpoints, 2);
	return m;
}

/* The samples of the family name (lines starting with it, HELP/TYPE
 * excluded) as one string. */
static char *samples(const char *page, const char *name)
{
	size_t nlen = strlen(name), len = 0;
	char *out = calloc(strlen(page) + 1, 1);

	assert_non_null(out);
	for (const char *p = page; *p;) {
		const char *end = strchr(p, '\n');
		size_t l = end ? (size_t)(end - p) + 1 : strlen(p);
		if (!strncmp(p, name, nlen) && (p[nlen] == '{' || p[nlen] == ' ')) {
			memcpy(out + len, p, l);
			len += l;
		}
		p += l;
	}
	return out;
}

static void test_full_page(void **state)
{
	(void)state;
	struct metrics *m = fixed();

	metrics_request(m, ROUTE_NOTIFY, 200, 0.0);
	metrics_request(m, ROUTE_NOTIFY, 200, 0.25);
	metrics_request(m, ROUTE_NOTIFY, 503, 0.5);
	metrics_request(m, ROUTE_HEALTHZ, 200, 8.0);
	atomic_store(&m->inbox_applied, 7);
	atomic_store(&m->spooled, 3);
	atomic_store(&m->batched, 12);
	metrics_spend(m, 0, 2, -1);
	metrics_spend(m, 1, 5, 9000);

	char *page = metrics_render(m, 6);
	const char *want =
		"# HELP zcrm_webhook_info The webhook process: its identity (the webhook label"
		" every series carries), host, pid and version.\n"
		"# TYPE zcrm_webhook_info gauge\n"
		"zcrm_webhook_info{webhook=\"wh-1\",host=\"host-a\",pid=\"4242\",version=\"" ZCRM_VERSION
		"\"} 1\n"
		"# HELP zcrm_webhook_start_time_seconds When the process started (Unix time).\n"
		"# TYPE zcrm_webhook_start_time_seconds gauge\n"
		"zcrm_webhook_start_time_seconds{webhook=\"wh-1\"} 1700000000\n"
		"# HELP zcrm_webhook_requests_total Requests answered, by route and HTTP status.\n"
		"# TYPE zcrm_webhook_requests_total counter\n"
		"zcrm_webhook_requests_total{webhook=\"wh-1\",route=\"notify\",status=\"200\"} 2\n"
		"zcrm_webhook_requests_total{webhook=\"wh-1\",route=\"notify\",status=\"503\"} 1\n"
		"zcrm_webhook_requests_total{webhook=\"wh-1\",route=\"healthz\",status=\"200\"} 1\n"
		"# HELP zcrm_webhook_inbox_applied_total Notifications recorded in the inbox and"
		" applied.\n"
		"# TYPE zcrm_webhook_inbox_applied_total counter\n"
		"zcrm_webhook_inbox_applied_total{webhook=\"wh-1\"} 7\n"
		"# HELP zcrm_webhook_inbox_pending_total Notifications recorded whose module table"
		" does not exist yet.\n"
		"# TYPE zcrm_webhook_inbox_pending_total counter\n"
		"zcrm_webhook_inbox_pending_total{webhook=\"wh-1\"} 0\n"
		"# HELP zcrm_webhook_inbox_duplicates_total Redelivered notifications ignored.\n"
		"# TYPE zcrm_webhook_inbox_duplicates_total counter\n"
		"zcrm_webhook_inbox_duplicates_total{webhook=\"wh-1\"} 0\n"
		"# HELP zcrm_webhook_spooled_total Notifications written to the spool (database"
		" down).\n"
		"# TYPE zcrm_webhook_spooled_total counter\n"
		"zcrm_webhook_spooled_total{webhook=\"wh-1\"} 3\n"
		"# HELP zcrm_webhook_spool_replayed_total Spooled notifications moved into the"
		" inbox.\n"
		"# TYPE zcrm_webhook_spool_replayed_total counter\n"
		"zcrm_webhook_spool_replayed_total{webhook=\"wh-1\"} 0\n"
		"# HELP zcrm_webhook_db_errors_total Database errors seen by request handlers.\n"
		"# TYPE zcrm_webhook_db_errors_total counter\n"
		"zcrm_webhook_db_errors_total{webhook=\"wh-1\"} 0\n"
		"# HELP zcrm_webhook_fetched_records_total Records fetched from Zoho after"
		" notifications.\n"
		"# TYPE zcrm_webhook_fetched_records_total counter\n"
		"zcrm_webhook_fetched_records_total{webhook=\"wh-1\"} 0\n"
		"# HELP zcrm_webhook_fetch_errors_total Failed record fetches (ids stay dirty).\n"
		"# TYPE zcrm_webhook_fetch_errors_total counter\n"
		"zcrm_webhook_fetch_errors_total{webhook=\"wh-1\"} 0\n"
		"# HELP zcrm_webhook_connections_accepted_total FastCGI connections accepted"
		" (nginx reuses them with keepalive).\n"
		"# TYPE zcrm_webhook_connections_accepted_total counter\n"
		"zcrm_webhook_connections_accepted_total{webhook=\"wh-1\"} 0\n"
		"# HELP zcrm_webhook_batches_total Statements that recorded the notifications of"
		" several requests at once.\n"
		"# TYPE zcrm_webhook_batches_total counter\n"
		"zcrm_webhook_batches_total{webhook=\"wh-1\"} 0\n"
		"# HELP zcrm_webhook_batched_total Notifications recorded in those statements.\n"
		"# TYPE zcrm_webhook_batched_total counter\n"
		"zcrm_webhook_batched_total{webhook=\"wh-1\"} 12\n"
		"# HELP zcrm_zoho_credits_spent_total Zoho API credits this process's calls cost,"
		" by endpoint.\n"
		"# TYPE zcrm_zoho_credits_spent_total counter\n"
		"zcrm_zoho_credits_spent_total{webhook=\"wh-1\",endpoint=\"records\"} 2\n"
		"zcrm_zoho_credits_spent_total{webhook=\"wh-1\",endpoint=\"bulk\"} 5\n"
		"# HELP zcrm_zoho_credits_remaining The org's credits left, as Zoho's last answer"
		" said (sent once half the day's are used).\n"
		"# TYPE zcrm_zoho_credits_remaining gauge\n"
		"zcrm_zoho_credits_remaining{webhook=\"wh-1\"} 9000\n"
		"# HELP zcrm_webhook_spool_depth Notifications waiting in the spool.\n"
		"# TYPE zcrm_webhook_spool_depth gauge\n"
		"zcrm_webhook_spool_depth{webhook=\"wh-1\"} 6\n"
		"# HELP zcrm_webhook_request_duration_seconds Time from request to reply.\n"
		"# TYPE zcrm_webhook_request_duration_seconds histogram\n"
		"zcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\",le=\"0.0005\"} 1\n"
		"zcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\",le=\"0.001\"} 1\n"
		"zcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\",le=\"0.002\"} 1\n"
		"zcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\",le=\"0.005\"} 1\n"
		"zcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\",le=\"0.01\"} 1\n"
		"zcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\",le=\"0.02\"} 1\n"
		"zcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\",le=\"0.05\"} 1\n"
		"zcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\",le=\"0.1\"} 1\n"
		"zcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\",le=\"0.25\"} 2\n"
		"zcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\",le=\"0.5\"} 3\n"
		"zcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\",le=\"1\"} 3\n"
		"zcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\",le=\"5\"} 3\n"
		"zcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\",le=\"+Inf\"} 4\n"
		"zcrm_webhook_request_duration_seconds_sum{webhook=\"wh-1\"} 8.750000\n"
		"zcrm_webhook_request_duration_seconds_count{webhook=\"wh-1\"} 4\n";
	assert_string_equal(page, want);
	free(page);
	metrics_free(m);
}

/* A fresh process: no request sample at all, no remaining-credits gauge
 * (Zoho has not said), no spool gauge when the caller has no depth; the
 * histogram and the plain counters are there at zero. */
static void test_fresh_page_omits_what_is_unknown(void **state)
{
	(void)state;
	struct metrics *m = fixed();
	char *page = metrics_render(m, -1);

	char *req = samples(page, "zcrm_webhook_requests_total");
	assert_string_equal(req, "");
	free(req);
	assert_non_null(strstr(page, "# TYPE zcrm_webhook_requests_total counter\n"));
	assert_null(strstr(page, "zcrm_zoho_credits_remaining"));
	assert_null(strstr(page, "zcrm_webhook_spool_depth"));
	char *spent = samples(page, "zcrm_zoho_credits_spent_total");
	assert_string_equal(spent,
			    "zcrm_zoho_credits_spent_total{webhook=\"wh-1\",endpoint=\"records\"} 0\n"
			    "zcrm_zoho_credits_spent_total{webhook=\"wh-1\",endpoint=\"bulk\"} 0\n");
	free(spent);
	assert_non_null(strstr(page, "\nzcrm_webhook_request_duration_seconds_bucket{webhook=\"wh-1\","
				     "le=\"+Inf\"} 0\n"));
	assert_non_null(strstr(page, "\nzcrm_webhook_request_duration_seconds_sum{webhook=\"wh-1\"}"
				     " 0.000000\n"));
	free(page);

	/* A depth of 0 is a depth: the gauge is there. */
	page = metrics_render(m, 0);
	assert_non_null(strstr(page, "\nzcrm_webhook_spool_depth{webhook=\"wh-1\"} 0\n"));
	free(page);
	metrics_free(m);
}

/* A status the table does not list counts as 500, a route out of range as
 * "other"; a request on a bucket's bound falls in that bucket. */
static void test_request_counting(void **state)
{
	(void)state;
	struct metrics *m = fixed();

	metrics_request(m, ROUTE_METRICS, 418, 0.0005);
	metrics_request(m, (enum metrics_route)99, 404, 0.001);
	metrics_request(m, ROUTE_BULK_CALLBACK, 413, 5.0);
	metrics_request(m, ROUTE_BULK_CALLBACK, 413, 5.0);
	char *page = metrics_render(m, -1);
	char *req = samples(page, "zcrm_webhook_requests_total");
	assert_string_equal(
		req,
		"zcrm_webhook_requests_total{webhook=\"wh-1\",route=\"bulk-callback\",status=\"413\"} 2\n"
		"zcrm_webhook_requests_total{webhook=\"wh-1\",route=\"metrics\",status=\"500\"} 1\n"
		"zcrm_webhook_requests_total{webhook=\"wh-1\",route=\"other\",status=\"404\"} 1\n");
	free(req);
	char *h = samples(page, "zcrm_webhook_request_duration_seconds_bucket");
	assert_non_null(strstr(h, "le=\"0.0005\"} 1\n"));
	assert_non_null(strstr(h, "le=\"0.001\"} 2\n"));
	assert_non_null(strstr(h, "le=\"1\"} 2\n"));
	assert_non_null(strstr(h, "le=\"5\"} 4\n"));
	assert_non_null(strstr(h, "le=\"+Inf\"} 4\n"));
	free(h);
	free(page);
	assert_string_equal(metrics_route_name((enum metrics_route)99), "other");
	metrics_free(m);
}

/* Credits of an endpoint the process does not know are not counted; the
 * remaining count is the last answer's, -1 hiding it again. */
static void test_credits(void **state)
{
	(void)state;
	struct metrics *m = fixed();

	metrics_spend(m, 1, 3, 120);
	metrics_spend(m, 2, 50, 110); /* no such endpoint */
	metrics_spend(m, 0, 0, 100);  /* a free call */
	metrics_spend(m, 1, 1, 90);
	char *page = metrics_render(m, -1);
	char *spent = samples(page, "zcrm_zoho_credits_spent_total");
	assert_string_equal(spent,
			    "zcrm_zoho_credits_spent_total{webhook=\"wh-1\",endpoint=\"records\"} 0\n"
			    "zcrm_zoho_credits_spent_total{webhook=\"wh-1\",endpoint=\"bulk\"} 4\n");
	free(spent);
	char *left = samples(page, "zcrm_zoho_credits_remaining");
	assert_string_equal(left, "zcrm_zoho_credits_remaining{webhook=\"wh-1\"} 90\n");
	free(left);
	free(page);
	metrics_spend(m, 0, 1, -1);
	page = metrics_render(m, -1);
	assert_null(strstr(page, "zcrm_zoho_credits_remaining"));
	free(page);
	metrics_free(m);
}

/* Identity values are label values: backslash, quote and newline escaped,
 * and a value cut to fit never ends in half an escape. */
static void test_label_values(void **state)
{
	(void)state;
	char out[16];

	metrics_label_value(out, sizeof(out), "a\\b\"c\nd");
	assert_string_equal(out, "a\\\\b\\\"c\\nd");
	metrics_label_value(out, 4, "a\"b");
	assert_string_equal(out, "a\\\"");
	metrics_label_value(out, 3, "a\"b");
	assert_string_equal(out, "a");
	metrics_label_value(out, sizeof(out), "");
	assert_string_equal(out, "");

	struct metrics *m = metrics_new();
	metrics_set_identity(m, "wh \"one\"", "h\\1\n");
	char *page = metrics_render(m, -1);
	assert_non_null(strstr(page, "zcrm_webhook_info{webhook=\"wh \\\"one\\\"\",host=\"h\\\\1\\n\","));
	assert_non_null(strstr(page, "\nzcrm_webhook_batched_total{webhook=\"wh \\\"one\\\"\"} 0\n"));
	free(page);
	metrics_free(m);
}

/* Many endpoints and a long identity: the page grows as needed. */
static void test_large_page(void **state)
{
	(void)state;
	static const char *const names[METRICS_MAX_ENDPOINTS + 4] = {
		"e00", "e01", "e02", "e03", "e04", "e05", "e06", "e07", "e08", "e09",
		"e10", "e11", "e12", "e13", "e14", "e15", "e16", "e17", "e18", "e19"};
	char id[METRICS_LABEL_MAX];
	struct metrics *m = metrics_new();

	memset(id, 'w', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	metrics_set_identity(m, id, "h");
	metrics_set_endpoints(m, names, ARRAY_LEN(names));
	assert_int_equal(m->nendpoints, METRICS_MAX_ENDPOINTS);
	for (int r = 0; r < ROUTE__COUNT; r++)
		for (int s = 0; s < MS__COUNT; s++)
			metrics_request(m, (enum metrics_route)r,
					(int[]){200, 400, 403, 404, 405, 413, 415, 500, 503}[s], 0.01);
	char *page = metrics_render(m, 1);
	assert_true(strlen(page) > 8192);
	char *req = samples(page, "zcrm_webhook_requests_total");
	size_t lines = 0;
	for (const char *p = req; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	assert_int_equal(lines, ROUTE__COUNT * MS__COUNT);
	free(req);
	char *spent = samples(page, "zcrm_zoho_credits_spent_total");
	assert_non_null(strstr(spent, "endpoint=\"e15\"} 0\n"));
	assert_null(strstr(spent, "e16"));
	free(spent);
	assert_int_equal(page[strlen(page) - 1], '\n');
	free(page);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_page),
		cmocka_unit_test(test_fresh_page_omits_what_is_unknown),
		cmocka_unit_test(test_request_counting),
		cmocka_unit_test(test_credits),
		cmocka_unit_test(test_label_values),
		cmocka_unit_test(test_large_page),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
