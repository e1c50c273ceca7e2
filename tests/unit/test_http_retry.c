/* test_http_retry.c — the retry policy: the pure backoff computation, which
 * statuses are retried, Retry-After parsing, and http_do() against a tiny
 * scripted HTTP server on 127.0.0.1 (retries, give-up bound, Retry-After,
 * the retry budget, size caps, downloads, and the stop flag). */
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "cfg.h"
#include "http.h"
#include "log.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- pure helpers ---- */

static void test_backoff_full_jitter(void **state)
{
	/* Ceiling doubles from the base and stops at the cap. */
	static const long ceilings[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};

	for (int retry = 0; retry < 8; retry++) {
		long ceil = ceilings[retry];
		assert_int_equal(http_backoff_ms(retry, 1000, 60000, -1, 0, 0), 0);
		assert_int_equal(http_backoff_ms(retry, 1000, 60000, -1, 0, (uint64_t)ceil), ceil);
		assert_int_equal(http_backoff_ms(retry, 1000, 60000, -1, 0, (uint64_t)ceil + 1), 0);
		for (uint64_t r = 1; r < 2000000; r = r * 7 + 3) {
			long w = http_backoff_ms(retry, 1000, 60000, -1, 0, r * 0x9E3779B97F4A7C15ULL);
			assert_in_range(w, 0, ceil);
		}
	}
	/* Huge retry numbers must not overflow. */
	assert_in_range(http_backoff_ms(1000, 1000, 60000, -1, 0, UINT64_MAX), 0, 60000);
	assert_in_range(http_backoff_ms(62, 1, LONG_MAX, -1, 0, UINT64_MAX), 0, LONG_MAX);
	/* Degenerate settings still give a sane wait. */
	assert_in_range(http_backoff_ms(0, 0, 0, -1, 0, 12345), 0, 1);
}

static void test_backoff_retry_after_and_floor(void **state)
{
	/* Retry-After wins, whatever the jitter would say. */
	assert_int_equal(http_backoff_ms(0, 1000, 60000, 7, 0, 999), 7000);
	assert_int_equal(http_backoff_ms(5, 1000, 60000, 0, 0, 999), 0);
	assert_int_equal(http_backoff_ms(0, 1000, 60000, 120, 60000, 0), 120000);
	/* ... and is bounded to a week. */
	assert_int_equal(http_backoff_ms(0, 1000, 60000, 100000000L, 0, 0), 7L * 86400 * 1000);
	/* Without Retry-After the floor applies (bulk download: a minute). */
	assert_int_equal(http_backoff_ms(0, 1000, 60000, -1, 60000, 3), 60000);
	assert_int_equal(http_backoff_ms(0, 100000, 200000, -1, 60000, 70000), 70000);
}

static void test_retryable(void **state)
{
	assert_true(http_status_retryable(429));
	assert_true(http_status_retryable(500));
	assert_true(http_status_retryable(502));
	assert_true(http_status_retryable(503));
	assert_true(http_status_retryable(599));
	assert_false(http_status_retryable(200));
	assert_false(http_status_retryable(204));
	assert_false(http_status_retryable(400));
	assert_false(http_status_retryable(401));
	assert_false(http_status_retryable(403));
	assert_false(http_status_retryable(404));
	assert_false(http_status_retryable(413));
	assert_false(http_status_retryable(600));
	assert_false(http_status_retryable(0));
}

static void test_retry_after_parse(void **state)
{
	assert_int_equal(http_parse_retry_after("120"), 120);
	assert_int_equal(http_parse_retry_after(" 5 \r\n"), 5);
	assert_int_equal(http_parse_retry_after("0"), 0);
	assert_int_equal(http_parse_retry_after("-1"), -1);
	assert_int_equal(http_parse_retry_after("1.5"), -1);
	assert_int_equal(http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), -1);
	assert_int_equal(http_parse_retry_after(""), -1);
	assert_int_equal(http_parse_retry_after(NULL), -1);
	assert_int_equal(http_parse_retry_after("99999999999999999999"), -1);
}

static void test_escape(void **state)
{
	char *s = http_escape("a-Z_0.9~ +/&=%\xc3\xa9");

	assert_string_equal(s, "a-Z_0.9~%20%2B%2F%26%3D%25%C3%A9");
	free(s);
	s = http_escape("");
	assert_string_equal(s, "");
	free(s);
}

/* ---- a scripted HTTP server ---- */

#define MAX_SCRIPT 16

struct server {
	int listen_fd;
	int port;
	const char *script[MAX_SCRIPT]; /* raw answers, one per connection */
	int nscript;
	int served;
	pthread_t thread;
};

/* Read one request (headers plus Content-Length bytes). */
static void read_request(int fd)
{
	char buf[65536];
	size_t len = 0;
	long clen = 0;
	char *end = NULL;

	while (len < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return;
		len += (size_t)n;
		buf[len] = '\0';
		if (!end && (end = strstr(buf, "\r\n\r\n")) != NULL) {
			const char *cl = strcasestr(buf, "Content-Length:");
			if (cl && cl < end)
				clen = strtol(cl + 15, NULL, 10);
		}
		if (end && (long)(len - (size_t)(end + 4 - buf)) >= clen)
			return;
	}
}

static void *serve(void *arg)
{
	struct server *s = arg;

	for (;;) {
		int fd = accept(s->listen_fd, NULL, NULL);
		if (fd < 0)
			return NULL;
		read_request(fd);
		const char *answer = s->script[s->served < s->nscript ? s->served : s->nscript - 1];
		s->served++;
		size_t off = 0, n = strlen(answer);
		while (off < n) {
			ssize_t w = write(fd, answer + off, n - off);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		close(fd);
	}
}

static struct server *server_start(const char *const *script, int n)
{
	struct server *s = calloc(1, sizeof(*s));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);

	assert_non_null(s);
	for (int i = 0; i < n; i++)
		s->script[i] = script[i];
	s->nscript = n;
	s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->listen_fd >= 0);
	assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->listen_fd, 16), 0);
	assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&a, &alen), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
	return s;
}

static void server_stop(struct server *s)
{
	shutdown(s->listen_fd, SHUT_RDWR);
	close(s->listen_fd);
	pthread_join(s->thread, NULL);
	free(s);
}

#define R200 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n" \
	     "X-API-CREDITS-REMAINING: 4321\r\nConnection: close\r\n\r\n{\"ok\":true}"
#define R503 "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy!"
#define R500 "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 52\r\nConnection: close\r\n\r\n" \
	     "{\"code\":\"INTERNAL_ERROR\",\"message\":\"x\",\"details\":{}}"
#define R404 "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
#define R429_1 "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n" \
	       "Connection: close\r\n\r\n"
#define R429_600 "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 600\r\nContent-Length: 0\r\n" \
		 "Connection: close\r\n\r\n"
#define R429_20 "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 20\r\nContent-Length: 0\r\n" \
		"Connection: close\r\n\r\n"

struct fixture {
	struct cfg *cfg;
	struct http *http;
	atomic_int stop;
	char url[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[CFG_ERR_LEN];
	struct http_opts opts = {0};

	if (!f || cfg_load_string("", "test", false, &f->cfg, err) != RC_OK)
		return -1;
	f->cfg->max_retries = 2;
	f->cfg->retry_budget = 30;
	f->cfg->connect_timeout = 5;
	f->cfg->request_timeout = 10;
	f->cfg->max_response = 1024;
	opts.stop = &f->stop;
	opts.backoff_base_ms = 10;
	opts.backoff_cap_ms = 40;
	if (http_new(f->cfg, &opts, &f->http) != RC_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	http_free(f->http);
	cfg_free(f->cfg);
	free(f);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum rc get(struct fixture *f, struct server *s, const char *dest, struct http_resp *r)
{
	struct http_req req = {.url = f->url, .what = "test call", .dest_path = dest};

	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/x", s->port);
	return http_do(f->http, &req, r);
}

static void test_do_retries_then_succeeds(void **state)
{
	struct fixture *f = *state;
	const char *script[] = {R503, R500, R200};
	struct server *s = server_start(script, 3);
	struct http_resp r;

	assert_int_equal(get(f, s, NULL, &r), RC_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.attempts, 3);
	assert_string_equal(r.body, "{\"ok\":true}");
	assert_int_equal(r.len, 11);
	assert_int_equal(r.credits_remaining, 4321);
	assert_string_equal(r.content_type, "application/json");
	assert_int_equal(s->served, 3);
	http_resp_free(&r);
	server_stop(s);
}

static void test_do_gives_up_at_bound(void **state)
{
	struct fixture *f = *state;
	const char *script[] = {R500};
	struct server *s = server_start(script, 1);
	struct http_resp r;

	assert_int_equal(get(f, s, NULL, &r), RC_HTTP);
	assert_int_equal(r.status, 500);
	assert_int_equal(r.attempts, 3); /* 1 + max_retries */
	assert_int_equal(s->served, 3);
	assert_non_null(strstr(http_error(f->http), "HTTP 500"));
	assert_non_null(strstr(http_error(f->http), "gave up after 3 attempts"));
	assert_non_null(strstr(http_error(f->http), "INTERNAL_ERROR"));
	http_resp_free(&r);
	server_stop(s);
}

static void test_do_4xx_not_retried(void **state)
{
	struct fixture *f = *state;
	const char *script[] = {R404, R200};
	struct server *s = server_start(script, 2);
	struct http_resp r;

	assert_int_equal(get(f, s, NULL, &r), RC_OK);
	assert_int_equal(r.status, 404);
	assert_int_equal(r.attempts, 1);
	assert_int_equal(s->served, 1);
	http_resp_free(&r);
	server_stop(s);
}

static void test_do_retry_after_honoured(void **state)
{
	struct fixture *f = *state;
	const char *script[] = {R429_1, R200};
	struct server *s = server_start(script, 2);
	struct http_resp r;
	int64_t t0 = now_ms();

	assert_int_equal(get(f, s, NULL, &r), RC_OK);
	int64_t took = now_ms() - t0;
	assert_int_equal(r.status, 200);
	assert_int_equal(r.attempts, 2);
	/* The backoff scale is 10 ms; only Retry-After explains a second. */
	assert_true(took >= 950);
	assert_true(took < 5000);
	http_resp_free(&r);
	server_stop(s);
}

static void test_do_retry_after_beyond_budget(void **state)
{
	struct fixture *f = *state;
	const char *script[] = {R429_600, R200};
	struct server *s = server_start(script, 2);
	struct http_resp r;
	int64_t t0 = now_ms();

	assert_int_equal(get(f, s, NULL, &r), RC_RATELIMIT);
	assert_true(now_ms() - t0 < 2000);
	assert_int_equal(r.status, 429);
	assert_int_equal(r.retry_after, 600);
	assert_int_equal(s->served, 1);
	assert_non_null(strstr(http_error(f->http), "retry budget"));
	http_resp_free(&r);
	server_stop(s);
}

static void *set_stop_later(void *arg)
{
	struct fixture *f = arg;
	struct timespec ts = {0, 300 * 1000000L};

	nanosleep(&ts, NULL);
	f->stop = 1;
	return NULL;
}

static void test_do_stop_interrupts_wait(void **state)
{
	struct fixture *f = *state;
	const char *script[] = {R429_20, R200};
	struct server *s = server_start(script, 2);
	struct http_resp r;
	pthread_t t;
	int64_t t0 = now_ms();

	assert_int_equal(pthread_create(&t, NULL, set_stop_later, f), 0);
	assert_int_equal(get(f, s, NULL, &r), RC_INTERRUPTED);
	int64_t took = now_ms() - t0;
	pthread_join(t, NULL);
	/* Stopped within a slice (100 ms) of the flag, not after 20 s. */
	assert_true(took < 800);
	assert_int_equal(s->served, 1);
	/* And a handle whose flag is set does not start another request. */
	assert_int_equal(get(f, s, NULL, &r), RC_INTERRUPTED);
	assert_int_equal(s->served, 1);
	assert_int_equal(http_sleep(f->http, 10000), RC_INTERRUPTED);
	f->stop = 0;
	assert_int_equal(http_sleep(f->http, 20), RC_OK);
	http_resp_free(&r);
	server_stop(s);
}

static void test_do_body_cap(void **state)
{
	struct fixture *f = *state;
	static char big[4096];
	struct server *s;
	struct http_resp r;

	int n = snprintf(big, sizeof(big),
			 "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n");
	memset(big + n, 'x', 2000);
	big[n + 2000] = '\0';
	const char *script[] = {big};
	s = server_start(script, 1);
	assert_int_equal(get(f, s, NULL, &r), RC_TOOBIG);
	assert_int_equal(s->served, 1); /* not retried */
	assert_non_null(strstr(http_error(f->http), "larger than the limit of 1024"));
	http_resp_free(&r);
	server_stop(s);
}

static void test_do_download(void **state)
{
	struct fixture *f = *state;
	const char *script[] = {R503, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close"
				      "\r\n\r\n0123456789",
				R404};
	struct server *s = server_start(script, 3);
	struct http_resp r;
	char path[] = "/tmp/zcrm-http-test.XXXXXX";
	char buf[32];
	struct stat st;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(get(f, s, path, &r), RC_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.bytes, 10);
	assert_null(r.body);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	assert_int_equal(fread(buf, 1, sizeof(buf), fp), 10);
	fclose(fp);
	assert_memory_equal(buf, "0123456789", 10);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	http_resp_free(&r);

	/* An error answer is kept in memory and the file is removed. */
	assert_int_equal(get(f, s, path, &r), RC_OK);
	assert_int_equal(r.status, 404);
	assert_string_equal(r.body, "{}");
	assert_int_equal(stat(path, &st), -1);
	http_resp_free(&r);
	server_stop(s);
}

static void test_do_connection_refused(void **state)
{
	struct fixture *f = *state;
	struct http_resp r;
	struct http_req req = {.url = f->url, .what = "refused"};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	/* A port that was just free and has nobody listening. */
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
	assert_int_equal(http_do(f->http, &req, &r), RC_HTTP);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.attempts, 3);
	assert_non_null(strstr(http_error(f->http), "refused"));
	assert_non_null(strstr(http_error(f->http), "gave up after 3 attempts"));
	http_resp_free(&r);
}

/* A 49-field Records URL, as fetch.c builds them: ~900 characters. */
static char *long_url(int port)
{
	static const char *const names[] = {"Last_Name", "First_Name", "Email", "Phone",
					    "Company", "Lead_Status", "Probability"};
	struct buf u = {0};

	buf_printf(&u, "http://127.0.0.1:%d/crm/v6/Leads?ids=5725767000003000064"
		       "%%2C5725767000003000065&fields=", port);
	for (int i = 0; i < 49; i++)
		buf_printf(&u, "%s%s_%02d", i ? "%2C" : "", names[i % 7], i);
	return buf_steal(&u);
}

static void test_do_long_url_keeps_reason(void **state)
{
	struct fixture *f = *state;
	struct http_resp r;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	char *url = long_url(ntohs(a.sin_port));
	char start[64];
	struct http_req req = {.url = url, .what = "fetching records"};
	snprintf(start, sizeof(start), "http://127.0.0.1:%d/crm/v6/Leads?ids=", ntohs(a.sin_port));
	assert_true(strlen(url) > HTTP_ERR_LEN);

	assert_int_equal(http_do(f->http, &req, &r), RC_HTTP);
	const char *e = http_error(f->http);
	/* The reason first and whole, then how the retries ended, then where. */
	assert_true(strncmp(e, "fetching records: ", 18) == 0);
	const char *why = strstr(e, "Failed to connect to 127.0.0.1 port");
	const char *where = strstr(e, start);
	assert_non_null(why);
	assert_non_null(strstr(e, "(gave up after 3 attempts)"));
	assert_non_null(where);
	assert_true(why < where);
	assert_true(strlen(e) < HTTP_ERR_LEN - 1);
	assert_string_equal(e + strlen(e) - 3, "...");
	http_resp_free(&r);
	free(url);
}

static void test_format_error(void **state)
{
	char buf[HTTP_ERR_LEN];
	char small[40];
	char reason[700];
	(void)state;

	/* A short URL is shown whole. */
	http_format_error(buf, sizeof(buf), "x: HTTP 503", "http://h/p?a=1");
	assert_string_equal(buf, "x: HTTP 503; url http://h/p?a=1");
	/* No URL: the reason alone. */
	http_format_error(buf, sizeof(buf), "x: interrupted", NULL);
	assert_string_equal(buf, "x: interrupted");
	/* A long URL is cut to HTTP_ERR_URL_MAX, never inside a %XX. */
	char *url = long_url(8080);
	http_format_error(buf, sizeof(buf), "r", url);
	assert_int_equal(strncmp(buf, "r; url http://127.0.0.1:8080/crm/v6/Leads?ids=", 46), 0);
	size_t shown = strlen(buf) - strlen("r; url ");
	assert_true(shown <= HTTP_ERR_URL_MAX && shown >= HTTP_ERR_URL_MAX - 2);
	assert_string_equal(buf + strlen(buf) - 3, "...");
	assert_int_equal(strncmp(buf + 7, url, shown - 3), 0);
	const char *pct = strrchr(buf, '%');
	assert_true(pct && strlen(pct) >= 3 + 3); /* %2C then "..." */
	for (size_t cap = 60; cap < 80; cap++) {
		http_format_error(small, cap < sizeof(small) ? cap : sizeof(small), "r", url);
		const char *p = strrchr(small, '%');
		assert_true(!p || strlen(p) >= 6);
	}
	/* Too little room for a useful URL: none. */
	http_format_error(small, sizeof(small), "fetching records: connection reset", url);
	assert_string_equal(small, "fetching records: connection reset");
	/* Only a reason longer than the buffer is cut, visibly. */
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	http_format_error(buf, sizeof(buf), reason, url);
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	assert_string_equal(buf + strlen(buf) - 3, "...");
	assert_null(strstr(buf, "http"));
	free(url);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_full_jitter),
		cmocka_unit_test(test_format_error),
		cmocka_unit_test(test_backoff_retry_after_and_floor),
		cmocka_unit_test(test_retryable),
		cmocka_unit_test(test_retry_after_parse),
		cmocka_unit_test(test_escape),
		cmocka_unit_test_setup_teardown(test_do_retries_then_succeeds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_do_gives_up_at_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_do_4xx_not_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_do_retry_after_honoured, setup, teardown),
		cmocka_unit_test_setup_teardown(test_do_retry_after_beyond_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_do_stop_interrupts_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_do_body_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_do_download, setup, teardown),
		cmocka_unit_test_setup_teardown(test_do_connection_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_do_long_url_keeps_reason, setup, teardown),
	};
	int rc;

	log_init("test_http_retry", LOG_LVL_ERROR);
	if (http_global_init() != RC_OK)
		return 1;
	rc = cmocka_run_group_tests_name("http_retry", tests, NULL, NULL);
	http_global_cleanup();
	return rc;
}
