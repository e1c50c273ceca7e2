/* metrics.c — lock-free counters rendered as Prometheus text (see metrics.h). */
#include "buf.h"
#include "compiler.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const double bucket_bounds[METRICS_NBUCKETS] = {
	0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
};

static const int status_codes[MS__COUNT] = {200, 400, 403, 404, 405, 413, 415, 500, 503};

/* A label value as the text format wants it: \\, \" and \n escaped;
 * cut (never mid-escape) to fit. */
void metrics_label_value(char *dst, size_t cap, const char *src)
{
	size_t n = 0;
	for (const char *p = src; *p; p++) {
		const char *rep = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
		size_t len = rep ? 2 : 1;
		if (n + len >= cap)
			break;
		if (rep)
			memcpy(dst + n, rep, 2);
		else
			dst[n] = *p;
		n += len;
	}
	dst[n] = '\0';
}

struct metrics *metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof(*m));
	m->pid = (long)getpid();
	atomic_init(&m->credits_remaining, -1);
	m->start_time = (double)time(NULL);
	return m;
}

void metrics_set_endpoints(struct metrics *m, const char *const *names, size_t n)
{
	m->nendpoints = n < METRICS_MAX_ENDPOINTS ? n : METRICS_MAX_ENDPOINTS;
	for (size_t i = 0; i < m->nendpoints; i++)
		m->endpoint_names[i] = names[i];
}

void metrics_spend(struct metrics *m, size_t i, int credits, long remaining)
{
	if (i < m->nendpoints && credits > 0)
		atomic_fetch_add_explicit(&m->credits[i], (unsigned long)credits,
					  memory_order_relaxed);
	atomic_store_explicit(&m->credits_remaining, remaining, memory_order_relaxed);
}

void metrics_set_identity(struct metrics *m, const char *instance, const char *host)
{
	metrics_label_value(m->webhook, sizeof(m->webhook), instance);
	metrics_label_value(m->host, sizeof(m->host), host);
}

void metrics_free(struct metrics *m)
{
	free(m);
}

const char *metrics_route_name(enum metrics_route route)
{
	static const char *const names[ROUTE__COUNT] = {"notify", "bulk-callback", "healthz",
							"metrics", "other"};
	return (unsigned)route < ROUTE__COUNT ? names[route] : "other";
}

void metrics_request(struct metrics *m, enum metrics_route route, int status, double seconds)
{
	size_t s = MS_500;

	for (size_t i = 0; i < MS__COUNT; i++) {
		if (status_codes[i] == status) {
			s = i;
			break;
		}
	}
	if ((unsigned)route >= ROUTE__COUNT)
		route = ROUTE_OTHER;
	atomic_fetch_add_explicit(&m->requests[route][s], 1, memory_order_relaxed);
	size_t b = METRICS_NBUCKETS;
	for (size_t i = 0; i < METRICS_NBUCKETS; i++) {
		if (seconds <= bucket_bounds[i]) {
			b = i;
			break;
		}
	}
	atomic_fetch_add_explicit(&m->latency_bucket[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->latency_sum_us, (unsigned long)(seconds * 1e6),
				  memory_order_relaxed);
}

static unsigned long get(atomic_ulong *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

/* The plain counters: one series each, labelled only by the webhook. */
static const struct {
	const char *name, *help;
	size_t off;
} counters[] = {
	{"zcrm_webhook_inbox_applied_total", "Notifications recorded in the inbox and applied.",
	 offsetof(struct metrics, inbox_applied)},
	{"zcrm_webhook_inbox_pending_total",
	 "Notifications recorded whose module table does not exist yet.",
	 offsetof(struct metrics, inbox_pending)},
	{"zcrm_webhook_inbox_duplicates_total", "Redelivered notifications ignored.",
	 offsetof(struct metrics, inbox_duplicates)},
	{"zcrm_webhook_spooled_total", "Notifications written to the spool (database down).",
	 offsetof(struct metrics, spooled)},
	{"zcrm_webhook_spool_replayed_total", "Spooled notifications moved into the inbox.",
	 offsetof(struct metrics, spool_replayed)},
	{"zcrm_webhook_db_errors_total", "Database errors seen by request handlers.",
	 offsetof(struct metrics, db_errors)},
	{"zcrm_webhook_fetched_records_total", "Records fetched from Zoho after notifications.",
	 offsetof(struct metrics, fetched_records)},
	{"zcrm_webhook_fetch_errors_total", "Failed record fetches (ids stay dirty).",
	 offsetof(struct metrics, fetch_errors)},
	{"zcrm_webhook_connections_accepted_total",
	 "FastCGI connections accepted (nginx reuses them with keepalive).",
	 offsetof(struct metrics, connections_accepted)},
	{"zcrm_webhook_batches_total",
	 "Statements that recorded the notifications of several requests at once.",
	 offsetof(struct metrics, batches)},
	{"zcrm_webhook_batched_total", "Notifications recorded in those statements.",
	 offsetof(struct metrics, batched)},
};

static void render_requests(struct buf *o, struct metrics *m)
{
	const char *id = m->webhook;

	buf_printf(o, "# HELP zcrm_webhook_requests_total Requests answered, by route and"
		      " HTTP status.\n"
		      "# TYPE zcrm_webhook_requests_total counter\n");
	for (size_t r = 0; r < ROUTE__COUNT; r++) {
		for (size_t s = 0; s < MS__COUNT; s++) {
			unsigned long v = get(&m->requests[r][s]);
			if (v)
				buf_printf(o,
					   "zcrm_webhook_requests_total{webhook=\"%s\",route=\"%s\","
					   "status=\"%d\"} %lu\n",
					   id, metrics_route_name((enum metrics_route)r),
					   status_codes[s], v);
		}
	}
}

static void render_credits(struct buf *o, struct metrics *m)
{
	const char *id = m->webhook;

	buf_printf(o, "# HELP zcrm_zoho_credits_spent_total Zoho API credits this process's"
		      " calls cost, by endpoint.\n"
		      "# TYPE zcrm_zoho_credits_spent_total counter\n");
	for (size_t i = 0; i < m->nendpoints; i++)
		buf_printf(o, "zcrm_zoho_credits_spent_total{webhook=\"%s\",endpoint=\"%s\"} %lu\n",
			   id, m->endpoint_names[i], get(&m->credits[i]));
	long left = atomic_load_explicit(&m->credits_remaining, memory_order_relaxed);
	if (left >= 0)
		buf_printf(o, "# HELP zcrm_zoho_credits_remaining The org's credits left, as Zoho's"
			      " last answer said (sent once half the day's are used).\n"
			      "# TYPE zcrm_zoho_credits_remaining gauge\n"
			      "zcrm_zoho_credits_remaining{webhook=\"%s\"} %ld\n",
			   id, left);
}

static void render_latency(struct buf *o, struct metrics *m)
{
	const char *id = m->webhook;
	unsigned long cum = 0;

	buf_printf(o, "# HELP zcrm_webhook_request_duration_seconds Time from request to reply.\n"
		      "# TYPE zcrm_webhook_request_duration_seconds histogram\n");
	for (size_t i = 0; i < METRICS_NBUCKETS; i++) {
		cum += get(&m->latency_bucket[i]);
		buf_printf(o, "zcrm_webhook_request_duration_seconds_bucket{webhook=\"%s\","
			      "le=\"%g\"} %lu\n",
			   id, bucket_bounds[i], cum);
	}
	cum += get(&m->latency_bucket[METRICS_NBUCKETS]);
	buf_printf(o, "zcrm_webhook_request_duration_seconds_bucket{webhook=\"%s\",le=\"+Inf\"} %lu\n",
		   id, cum);
	buf_printf(o, "zcrm_webhook_request_duration_seconds_sum{webhook=\"%s\"} %.6f\n", id,
		   (double)get(&m->latency_sum_us) / 1e6);
	buf_printf(o, "zcrm_webhook_request_duration_seconds_count{webhook=\"%s\"} %lu\n", id, cum);
}

char *metrics_render(struct metrics *m, long spool_depth)
{
	struct buf o = {0};
	const char *id = m->webhook;

	buf_printf(&o, "# HELP zcrm_webhook_info The webhook process: its identity (the webhook"
		       " label every series carries), host, pid and version.\n"
		       "# TYPE zcrm_webhook_info gauge\n"
		       "zcrm_webhook_info{webhook=\"%s\",host=\"%s\",pid=\"%ld\",version=\"%s\"} 1\n",
		   id, m->host, m->pid, ZCRM_VERSION);
	buf_printf(&o, "# HELP zcrm_webhook_start_time_seconds When the process started"
		       " (Unix time).\n"
		       "# TYPE zcrm_webhook_start_time_seconds gauge\n"
		       "zcrm_webhook_start_time_seconds{webhook=\"%s\"} %.0f\n",
		   id, m->start_time);
	render_requests(&o, m);
	for (size_t i = 0; i < ARRAY_LEN(counters); i++) {
		atomic_ulong *v = (atomic_ulong *)((char *)m + counters[i].off);
		buf_printf(&o, "# HELP %s %s\n# TYPE %s counter\n%s{webhook=\"%s\"} %lu\n",
			   counters[i].name, counters[i].help, counters[i].name, counters[i].name,
			   id, get(v));
	}
	render_credits(&o, m);
	if (spool_depth >= 0)
		buf_printf(&o, "# HELP zcrm_webhook_spool_depth Notifications waiting in the spool.\n"
			       "# TYPE zcrm_webhook_spool_depth gauge\n"
			       "zcrm_webhook_spool_depth{webhook=\"%s\"} %ld\n",
			   id, spool_depth);
	render_latency(&o, m);
	return buf_steal(&o);
}
