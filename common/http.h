/* http.h — HTTP client for Zoho; http.c is the only includer of curl/curl.h.
 *
 * A struct http is one libcurl easy handle, owned by one thread and reused
 * for every request so that connections stay alive. The retry policy lives
 * here and nowhere else: 429, 5xx and transport errors are retried with
 * exponential backoff and full jitter (honouring Retry-After), within
 * cfg->max_retries and cfg->retry_budget; other answers are returned to the
 * caller. Waits and transfers end early when the caller's stop flag is set.
 * TLS peer and host verification are always on. */
#ifndef ZCRM_HTTP_H
#define ZCRM_HTTP_H

#include "cfg.h"
#include "compiler.h"
#include "rc.h"

#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_ERR_LEN 512
/* The most of a request's URL an error message shows. */
#define HTTP_ERR_URL_MAX 160

struct http;

/* Knobs that are not configuration: the stop flag and the backoff scale
 * (tests shrink it). Zeroes mean the defaults. */
struct http_opts {
	atomic_int *stop;       /* set by a signal handler or another thread;
				 * NULL: never */
	long backoff_base_ms;        /* first retry waits up to this; default 1000 */
	long backoff_cap_ms;         /* no single wait longer; default 60000 */
};

struct http_req {
	const char *method;         /* GET (NULL), POST, PUT, PATCH, DELETE */
	const char *url;
	const char *const *headers; /* NULL-terminated "Name: value" list, or NULL */
	const char *body;           /* NULL: none */
	size_t body_len;
	const char *what;           /* label for log lines and errors ("bulk status") */
	/* Stream a 2xx body into this file (created 0600, truncated on every
	 * attempt, removed if the call fails); NULL: keep the body in memory.
	 * Downloads use a low-speed limit instead of a total timeout. */
	const char *dest_path;
	int64_t max_bytes;          /* body cap; 0: cfg->max_response */
	long min_429_wait_ms;       /* floor of a 429 wait without Retry-After */
};

struct http_resp {
	long status;            /* last HTTP status, 0 if none arrived */
	char *body;             /* NUL-terminated; for downloads only a non-2xx body */
	size_t len;
	int64_t bytes;          /* body bytes of the last answer (file bytes for downloads) */
	long retry_after;       /* seconds from Retry-After, -1 if absent */
	long credits_remaining; /* X-API-CREDITS-REMAINING, -1 if absent */
	int64_t date;           /* the Date header (the server's clock), epoch seconds; 0 if absent */
	char content_type[128];
	int attempts;
};

/* process setup: main calls these once, before and after any thread */
enum rc http_global_init(void) ZCRM_MUSTCHECK;
void http_global_cleanup(void);

/* lifecycle: cfg is borrowed and must outlive h; opts is copied (may be NULL) */
enum rc http_new(const struct cfg *cfg, const struct http_opts *opts,
		 struct http **out) ZCRM_MUSTCHECK;
void http_free(struct http *h);

/* requests */
/* Send req, retrying as described above. RC_OK when a final answer arrived,
 * whatever its status (the caller judges 4xx); RC_RATELIMIT when 429s
 * outlast the retries or the budget, RC_HTTP for 5xx or transport errors
 * that do, RC_TOOBIG over the cap, RC_IO for the destination file,
 * RC_INTERRUPTED when stopped. resp is filled on every path (the last
 * answer, if any) and released with http_resp_free(). */
enum rc http_do(struct http *h, const struct http_req *req,
		struct http_resp *resp) ZCRM_MUSTCHECK;
void http_resp_free(struct http_resp *resp);
/* The reason of the last failure of h ("" if none); never holds secrets. */
const char *http_error(const struct http *h);

/* waiting */
/* Sleep ms milliseconds, looking at the stop flag every 100 ms:
 * RC_INTERRUPTED if it was set. */
enum rc http_sleep(struct http *h, long ms) ZCRM_MUSTCHECK;
bool http_stopped(const struct http *h);

/* pure helpers (unit-tested) */
/* Whether an HTTP status is retried: 429 and 5xx. */
bool http_status_retryable(long status);
/* Milliseconds to wait before retry number retry (0 = first retry).
 * retry_after_s >= 0 is used as given; otherwise full jitter: rnd modulo
 * (min(cap, base * 2^retry) + 1), then raised to floor_ms. */
long http_backoff_ms(int retry, long base_ms, long cap_ms, long retry_after_s, long floor_ms,
		     uint64_t rnd);
/* Parse a Retry-After value in seconds ("120"); -1 if not a number. */
long http_parse_retry_after(const char *value);
/* "reason; url URL" into dst (cap bytes): the reason whole (only a reason
 * longer than dst itself is cut, ending in "..."), then as much of the URL
 * as fits in HTTP_ERR_URL_MAX and the room left (scheme, host, path, the
 * start of the query, "..."); no URL if there is no room for one. */
void http_format_error(char *dst, size_t cap, const char *reason, const char *url);
/* Percent-encode everything but RFC 3986 unreserved characters; caller frees. */
char *http_escape(const char *s);

#endif
