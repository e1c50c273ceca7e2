/* http.c — libcurl wrapper with the one retry policy (see http.h). */
#include "http.h"
#include "buf.h"
#include "log.h"
#include "slots.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define HTTP_DEFAULT_BASE_MS 1000L
#define HTTP_DEFAULT_CAP_MS 60000L
#define HTTP_SLEEP_SLICE_MS 100L
/* Error bodies of downloads are kept in memory, up to this much. */
#define HTTP_ERROR_BODY_MAX (64 * 1024)
/* Downloads: abort when less than this many bytes arrive in request_timeout s. */
#define HTTP_LOW_SPEED_BYTES 65536L

struct http {
	CURL *curl;
	const struct cfg *cfg;
	struct http_opts opts;
	uint64_t rng;
	char errbuf[CURL_ERROR_SIZE];
	char err[HTTP_ERR_LEN];    /* reason, then the shortened URL */
	char reason[HTTP_ERR_LEN];
	const char *err_url;       /* the request's URL, during http_do */
	bool slots_warned;         /* "cannot cap calls in flight" said once */
};

/* State of one transfer, shared by the libcurl callbacks. */
struct xfer {
	struct http *h;
	struct http_resp *resp;
	int fd;               /* destination of a 2xx download, or -1 */
	int64_t cap;          /* bytes */
	bool toobig;
	bool io_error;
	int io_errno;
	struct buf body;      /* an answer kept in memory, resp->body after the transfer */
	bool body_seen;       /* on_body wrote to body (an empty answer may call it) */
};

void http_format_error(char *dst, size_t cap, const char *reason, const char *url)
{
	static const char sep[] = "; url ", cut[] = "...";
	size_t n = strlen(reason);

	if (!cap)
		return;
	if (n >= cap) {
		/* Only a reason longer than the whole buffer loses its end. */
		n = cap > sizeof(cut) ? cap - sizeof(cut) : 0;
		snprintf(dst, cap, "%.*s%s", (int)n, reason, cap > sizeof(cut) ? cut : "");
		return;
	}
	memcpy(dst, reason, n + 1);
	if (!url || !*url)
		return;
	if (n + 1 + sizeof(sep) - 1 + 24 > cap)
		return; /* no room for a useful URL: the reason is what counts */
	size_t room = cap - n - 1 - (sizeof(sep) - 1);
	if (room > HTTP_ERR_URL_MAX)
		room = HTTP_ERR_URL_MAX;
	size_t ulen = strlen(url);
	if (ulen <= room) {
		snprintf(dst + n, cap - n, "%s%s", sep, url);
		return;
	}
	/* Scheme, host, path and the start of the query; never half a %XX. */
	size_t keep = room - (sizeof(cut) - 1);
	for (size_t i = keep >= 2 ? keep - 2 : 0; i < keep; i++) {
		if (url[i] == '%') {
			keep = i;
			break;
		}
	}
	snprintf(dst + n, cap - n, "%s%.*s%s", sep, (int)keep, url, cut);
}

static void set_err_va(struct http *h, const char *url, const char *fmt, va_list ap)
	ZCRM_PRINTF(3, 0);

static void set_err_va(struct http *h, const char *url, const char *fmt, va_list ap)
{
	vsnprintf(h->reason, sizeof(h->reason), fmt, ap);
	h->err_url = url;
	http_format_error(h->err, sizeof(h->err), h->reason, h->err_url);
}

static void set_err(struct http *h, const char *fmt, ...) ZCRM_PRINTF(2, 3);

static void set_err(struct http *h, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_err_va(h, NULL, fmt, ap);
	va_end(ap);
}

/* The reason, with the URL it concerns after it (shortened, so that the
 * reason is never what gets cut). */
static void set_err_url(struct http *h, const char *url, const char *fmt, ...)
	ZCRM_PRINTF(3, 4);

static void set_err_url(struct http *h, const char *url, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_err_va(h, url, fmt, ap);
	va_end(ap);
}

/* More of the reason (how the retries ended), still before the URL. */
static void add_err(struct http *h, const char *fmt, ...) ZCRM_PRINTF(2, 3);

static void add_err(struct http *h, const char *fmt, ...)
{
	size_t n = strlen(h->reason);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->reason + n, sizeof(h->reason) - n, fmt, ap);
	va_end(ap);
	http_format_error(h->err, sizeof(h->err), h->reason, h->err_url);
}

static void clear_err(struct http *h)
{
	h->err[0] = h->reason[0] = '\0';
	h->err_url = NULL;
}

/* ---- process setup ---- */

enum rc http_global_init(void)
{
	CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (c != CURLE_OK) {
		log_error("curl_global_init failed", "error=%s", log_q(curl_easy_strerror(c)));
		return RC_HTTP;
	}
	return RC_OK;
}

void http_global_cleanup(void)
{
	curl_global_cleanup();
}

/* ---- lifecycle ---- */

static uint64_t rng_next(struct http *h)
{
	/* xorshift64*: plenty for jitter, and per handle so no locking. */
	uint64_t x = h->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	h->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

enum rc http_new(const struct cfg *cfg, const struct http_opts *opts, struct http **out)
{
	struct http *h = xcalloc(1, sizeof(*h));
	struct timespec ts;

	*out = NULL;
	h->cfg = cfg;
	if (opts)
		h->opts = *opts;
	if (h->opts.backoff_base_ms <= 0)
		h->opts.backoff_base_ms = HTTP_DEFAULT_BASE_MS;
	if (h->opts.backoff_cap_ms <= 0)
		h->opts.backoff_cap_ms = HTTP_DEFAULT_CAP_MS;
	clock_gettime(CLOCK_REALTIME, &ts);
	h->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^
		 (uint64_t)(uintptr_t)h;
	if (!h->rng)
		h->rng = 0x9E3779B97F4A7C15ULL;
	h->curl = curl_easy_init();
	if (!h->curl) {
		log_error("curl_easy_init failed", "");
		free(h);
		return RC_HTTP;
	}
	*out = h;
	return RC_OK;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	curl_easy_cleanup(h->curl);
	free(h);
}

const char *http_error(const struct http *h)
{
	return h ? h->err : "no HTTP handle";
}

void http_resp_free(struct http_resp *resp)
{
	if (!resp)
		return;
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

/* ---- waiting ---- */

bool http_stopped(const struct http *h)
{
	return h && h->opts.stop && *h->opts.stop;
}

enum rc http_sleep(struct http *h, long ms)
{
	while (ms > 0) {
		if (http_stopped(h))
			return RC_INTERRUPTED;
		long slice = ms < HTTP_SLEEP_SLICE_MS ? ms : HTTP_SLEEP_SLICE_MS;
		struct timespec ts = {slice / 1000, (slice % 1000) * 1000000L};
		/* EINTR (a signal) just ends the slice early; the flag decides. */
		nanosleep(&ts, NULL);
		ms -= slice;
	}
	return http_stopped(h) ? RC_INTERRUPTED : RC_OK;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- pure helpers ---- */

bool http_status_retryable(long status)
{
	return status == 429 || (status >= 500 && status <= 599);
}

long http_backoff_ms(int retry, long base_ms, long cap_ms, long retry_after_s, long floor_ms,
		     uint64_t rnd)
{
	if (retry_after_s >= 0) {
		/* The server said when; believe it (bounded to stay in range). */
		if (retry_after_s > 86400L * 7)
			retry_after_s = 86400L * 7;
		return retry_after_s * 1000;
	}
	if (base_ms <= 0)
		base_ms = 1;
	if (cap_ms < base_ms)
		cap_ms = base_ms;
	long ceiling = base_ms;
	for (int i = 0; i < retry && ceiling < cap_ms; i++)
		ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;
	if (ceiling > cap_ms)
		ceiling = cap_ms;
	long wait = (long)(rnd % ((uint64_t)ceiling + 1));
	if (wait < floor_ms)
		wait = floor_ms;
	return wait;
}

long http_parse_retry_after(const char *value)
{
	long v = 0;
	const char *p = value;

	if (!p)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		if (v > 100000000L)
			return -1;
		v = v * 10 + (*p - '0');
		p++;
	}
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return *p ? -1 : v;
}

char *http_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = xmalloc(3 * n + 1);
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			out[j++] = (char)c;
		} else {
			out[j++] = '%';
			out[j++] = hex[c >> 4];
			out[j++] = hex[c & 15];
		}
	}
	out[j] = '\0';
	return out;
}

/* ---- libcurl callbacks ---- */

static bool header_is(const char *line, size_t len, const char *name, const char **value,
		      size_t *vlen)
{
	size_t n = strlen(name);

	if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
		return false;
	const char *v = line + n + 1;
	const char *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	*value = v;
	*vlen = (size_t)(end - v);
	return true;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *userdata)
{
	struct xfer *x = userdata;
	size_t len = size * nitems;
	const char *v;
	size_t vlen;
	char tmp[128];

	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* A new answer (after a 100 Continue, say): forget the old one. */
		const char *sp = memchr(line, ' ', len);
		x->resp->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		x->resp->retry_after = -1;
		x->resp->credits_remaining = -1;
		x->resp->date = 0;
		x->resp->content_type[0] = '\0';
		return len;
	}
	if (header_is(line, len, "Retry-After", &v, &vlen)) {
		snprintf(tmp, sizeof(tmp), "%.*s", (int)(vlen < 100 ? vlen : 100), v);
		long s = http_parse_retry_after(tmp);
		if (s < 0) {
			/* An HTTP date instead of seconds. */
			time_t when = curl_getdate(tmp, NULL);
			if (when > 0) {
				time_t now = time(NULL);
				s = when > now ? (long)(when - now) : 0;
			}
		}
		x->resp->retry_after = s;
	} else if (header_is(line, len, "Content-Type", &v, &vlen)) {
		snprintf(x->resp->content_type, sizeof(x->resp->content_type), "%.*s",
			 (int)(vlen < 127 ? vlen : 127), v);
	} else if (header_is(line, len, "X-API-CREDITS-REMAINING", &v, &vlen)) {
		snprintf(tmp, sizeof(tmp), "%.*s", (int)(vlen < 100 ? vlen : 100), v);
		x->resp->credits_remaining = http_parse_retry_after(tmp);
	} else if (header_is(line, len, "Date", &v, &vlen)) {
		snprintf(tmp, sizeof(tmp), "%.*s", (int)(vlen < 100 ? vlen : 100), v);
		time_t when = curl_getdate(tmp, NULL);
		x->resp->date = when > 0 ? (int64_t)when : 0;
	}
	return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	struct http_resp *r = x->resp;
	size_t len = size * nmemb;
	bool to_file = x->fd >= 0 && r->status >= 200 && r->status <= 299;
	int64_t cap = to_file || x->fd < 0 ? x->cap : HTTP_ERROR_BODY_MAX;

	if (r->bytes + (int64_t)len > cap) {
		x->toobig = true;
		return 0;
	}
	r->bytes += (int64_t)len;
	if (to_file) {
		size_t done = 0;
		while (done < len) {
			ssize_t w = write(x->fd, data + done, len - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				x->io_error = true;
				x->io_errno = w < 0 ? errno : EIO;
				return 0;
			}
			done += (size_t)w;
		}
		return len;
	}
	buf_add(&x->body, data, len);
	x->body_seen = true;
	return len;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct xfer *x = userdata;

	return http_stopped(x->h) ? 1 : 0;
}

/* ---- one attempt ---- */

/* Transport errors that another attempt cannot fix. */
static bool curl_code_final(CURLcode c)
{
	switch (c) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_NOT_BUILT_IN:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_FILESIZE_EXCEEDED:
	case CURLE_ABORTED_BY_CALLBACK:
	case CURLE_WRITE_ERROR:
		return true;
	default:
		return false;
	}
}

#define SETOPT(opt, val)                                                 \
	do {                                                             \
		if (curl_easy_setopt(h->curl, (opt), (val)) != CURLE_OK) \
			goto setopt_failed;                              \
	} while (0)

/* Configure the handle for req; *hdrs receives the header list to free. */
static enum rc prepare(struct http *h, const struct http_req *req, struct xfer *x,
		       struct curl_slist **hdrs)
{
	const struct cfg *cfg = h->cfg;
	const char *method = req->method ? req->method : "GET";
	struct curl_slist *list = NULL, *tmp;

	curl_easy_reset(h->curl);
	h->errbuf[0] = '\0';
	SETOPT(CURLOPT_URL, req->url);
	SETOPT(CURLOPT_ERRORBUFFER, h->errbuf);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	if (cfg->ca_file && cfg->ca_file[0])
		SETOPT(CURLOPT_CAINFO, cfg->ca_file);
	SETOPT(CURLOPT_CONNECTTIMEOUT, cfg->connect_timeout);
	if (req->dest_path) {
		/* Big downloads: no total timeout, but give up when stalled. */
		long t = cfg->request_timeout > 0 ? cfg->request_timeout : 120;
		long limit = HTTP_LOW_SPEED_BYTES / t;
		SETOPT(CURLOPT_LOW_SPEED_LIMIT, limit > 0 ? limit : 1L);
		SETOPT(CURLOPT_LOW_SPEED_TIME, t);
	} else {
		SETOPT(CURLOPT_TIMEOUT, cfg->request_timeout);
	}
	SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->cap);
	SETOPT(CURLOPT_ACCEPT_ENCODING, "");
	SETOPT(CURLOPT_USERAGENT, "zcrm-sync/" ZCRM_VERSION);
	SETOPT(CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(CURLOPT_HEADERDATA, x);
	SETOPT(CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(CURLOPT_WRITEDATA, x);
	SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
	SETOPT(CURLOPT_XFERINFODATA, x);
	SETOPT(CURLOPT_NOPROGRESS, 0L);

	if (strcmp(method, "GET") == 0) {
		SETOPT(CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "POST") == 0) {
		SETOPT(CURLOPT_POST, 1L);
	} else {
		SETOPT(CURLOPT_CUSTOMREQUEST, method);
	}
	if (req->body) {
		SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		SETOPT(CURLOPT_POSTFIELDS, req->body);
	} else if (strcmp(method, "POST") == 0) {
		SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
		SETOPT(CURLOPT_POSTFIELDS, "");
	}

	for (const char *const *p = req->headers; p && *p; p++) {
		tmp = curl_slist_append(list, *p);
		if (!tmp)
			goto nomem;
		list = tmp;
	}
	/* No "Expect: 100-continue" round trip for our small bodies. */
	tmp = curl_slist_append(list, "Expect:");
	if (!tmp)
		goto nomem;
	list = tmp;
	SETOPT(CURLOPT_HTTPHEADER, list);
	*hdrs = list;
	return RC_OK;

setopt_failed:
	curl_slist_free_all(list);
	set_err(h, "%s: cannot configure libcurl: %s", req->what ? req->what : method,
		h->errbuf[0] ? h->errbuf : "setopt failed");
	return RC_INTERNAL;
nomem:
	curl_slist_free_all(list);
	set_err(h, "%s: out of memory building headers", req->what ? req->what : method);
	return RC_NOMEM;
}

#undef SETOPT

/* One of [zoho] max_concurrency slots, shared by every process of this
 * spool_dir (slots.h); -1 and a warning, once, when they cannot be used. */
static int take_slot(struct http *h, bool *stopped)
{
	if (h->cfg->max_concurrency <= 0 || !h->cfg->spool_dir || !h->cfg->spool_dir[0])
		return -1;
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/.zoho-slots", h->cfg->spool_dir);
	int fd = slot_take(dir, h->cfg->max_concurrency, h->opts.stop, stopped);
	if (fd < 0 && !*stopped && !h->slots_warned) {
		h->slots_warned = true;
		log_warn("cannot cap Zoho calls in flight; going on without [zoho] max_concurrency",
			 "dir=%s err=%s", log_q(dir), log_q(strerror(errno)));
	}
	return fd;
}

/* Outcome of one attempt, before the retry decision. */
enum attempt { ATT_DONE, ATT_RETRY, ATT_FAIL };

static enum attempt attempt_once(struct http *h, const struct http_req *req,
				 struct http_resp *resp, enum rc *rc)
{
	struct curl_slist *hdrs = NULL;
	struct xfer x = {.h = h, .resp = resp, .fd = -1};
	const char *what = req->what ? req->what : (req->method ? req->method : "GET");
	enum attempt out = ATT_FAIL;
	CURLcode c;

	x.cap = req->max_bytes > 0 ? req->max_bytes : h->cfg->max_response;
	http_resp_free(resp);
	resp->status = 0;
	resp->bytes = 0;
	resp->retry_after = -1;
	resp->credits_remaining = -1;
	resp->content_type[0] = '\0';
	resp->attempts++;

	if (req->dest_path) {
		x.fd = open(req->dest_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (x.fd < 0) {
			set_err(h, "%s: cannot create %s: %s", what, req->dest_path,
				strerror(errno));
			*rc = RC_IO;
			goto out;
		}
	}
	*rc = prepare(h, req, &x, &hdrs);
	if (*rc)
		goto out;
	bool stopped = false;
	int slot = take_slot(h, &stopped);
	if (stopped) {
		set_err(h, "%s: interrupted", what);
		*rc = RC_INTERRUPTED;
		goto out;
	}
	int64_t t0 = mono_ms();
	c = curl_easy_perform(h->curl);
	int64_t took = mono_ms() - t0;
	slot_give(slot);
	if (x.body_seen) {
		resp->len = buf_len(&x.body);
		resp->body = buf_steal(&x.body);
	}
	if (x.fd >= 0) {
		int fd = x.fd;
		x.fd = -1;
		if (close(fd) != 0 && c == CURLE_OK) {
			set_err(h, "%s: writing %s: %s", what, req->dest_path, strerror(errno));
			*rc = RC_IO;
			goto out;
		}
	}
	if (c == CURLE_OK) {
		long code = 0;
		if (curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK)
			resp->status = code;
	}
	log_debug("http exchange", "what=%s method=%s url=%s status=%ld bytes=%lld ms=%lld curl=%d",
		  log_q(what), req->method ? req->method : "GET", log_q(req->url), resp->status,
		  (long long)resp->bytes, (long long)took, (int)c);

	if (c != CURLE_OK) {
		if (c == CURLE_ABORTED_BY_CALLBACK && http_stopped(h)) {
			set_err(h, "%s: interrupted", what);
			*rc = RC_INTERRUPTED;
		} else if (x.toobig || c == CURLE_FILESIZE_EXCEEDED) {
			set_err_url(h, req->url, "%s: answer larger than the limit of %lld bytes",
				    what, (long long)x.cap);
			*rc = RC_TOOBIG;
		} else if (x.io_error) {
			set_err(h, "%s: writing %s: %s", what, req->dest_path,
				strerror(x.io_errno));
			*rc = RC_IO;
		} else {
			set_err_url(h, req->url, "%s: %s", what,
				    h->errbuf[0] ? h->errbuf : curl_easy_strerror(c));
			*rc = RC_HTTP;
			if (!curl_code_final(c))
				out = ATT_RETRY;
		}
		goto out;
	}
	if (http_status_retryable(resp->status)) {
		set_err_url(h, req->url, "%s: HTTP %ld%s%.200s", what, resp->status,
			    resp->len ? ": " : "", resp->body ? resp->body : "");
		*rc = resp->status == 429 ? RC_RATELIMIT : RC_HTTP;
		out = ATT_RETRY;
		goto out;
	}
	clear_err(h);
	*rc = RC_OK;
	out = ATT_DONE;
out:
	buf_free(&x.body);
	if (x.fd >= 0)
		close(x.fd);
	curl_slist_free_all(hdrs);
	/* Drop the handle's pointer into this stack frame's header list. */
	if (curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL) != CURLE_OK)
		log_debug("cannot clear curl header list", "");
	return out;
}

/* ---- the retry loop ---- */

enum rc http_do(struct http *h, const struct http_req *req, struct http_resp *resp)
{
	const char *what = req->what ? req->what : (req->method ? req->method : "GET");
	int64_t start = mono_ms();
	int64_t budget = (int64_t)h->cfg->retry_budget * 1000;
	enum rc rc = RC_INTERNAL;

	memset(resp, 0, sizeof(*resp));
	resp->retry_after = -1;
	resp->credits_remaining = -1;
	clear_err(h);
	for (int retry = 0;; retry++) {
		if (http_stopped(h)) {
			set_err(h, "%s: interrupted", what);
			rc = RC_INTERRUPTED;
			break;
		}
		enum attempt a = attempt_once(h, req, resp, &rc);
		if (a != ATT_RETRY)
			break;
		if (retry >= h->cfg->max_retries) {
			add_err(h, " (gave up after %d attempts)", resp->attempts);
			break;
		}
		long floor = resp->status == 429 ? req->min_429_wait_ms : 0;
		long wait = http_backoff_ms(retry, h->opts.backoff_base_ms, h->opts.backoff_cap_ms,
					    resp->retry_after, floor, rng_next(h));
		int64_t left = budget - (mono_ms() - start);
		if (wait > left) {
			if (resp->retry_after >= 0 || floor > 0 || left <= 0) {
				add_err(h,
					" (gave up after %d attempts: waiting %ld ms more would "
					"exceed the retry budget of %ld s)",
					resp->attempts, wait, h->cfg->retry_budget);
				break;
			}
			wait = (long)left;
		}
		log_warn("retrying HTTP request", "what=%s status=%ld attempt=%d wait_ms=%ld error=%s",
			 log_q(what), resp->status, resp->attempts, wait, log_q(h->err));
		enum rc src = http_sleep(h, wait);
		if (src) {
			set_err(h, "%s: interrupted while waiting to retry", what);
			rc = src;
			break;
		}
	}
	if (req->dest_path && (rc != RC_OK || resp->status < 200 || resp->status > 299)) {
		if (unlink(req->dest_path) != 0 && errno != ENOENT)
			log_warn("cannot remove partial download", "path=%s error=%s",
				 log_q(req->dest_path), log_q(strerror(errno)));
	}
	return rc;
}
