/* metrics.h — webhook counters and a latency histogram, Prometheus text.
 *
 * One struct metrics is allocated by main and shared by the worker threads;
 * every counter is a C11 atomic, so recording never takes a lock. The
 * identity is set once by main before the threads start, then only read:
 * every series carries webhook="<identity>", so that several webhooks
 * behind one upstream (whose /metrics answers alternate) stay apart. */
#ifndef ZCRM_METRICS_H
#define ZCRM_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

enum metrics_route {
	ROUTE_NOTIFY,
	ROUTE_BULK_CALLBACK,
	ROUTE_HEALTHZ,
	ROUTE_METRICS,
	ROUTE_OTHER,
	ROUTE__COUNT
};

enum metrics_status { MS_200, MS_400, MS_403, MS_404, MS_405, MS_413, MS_415, MS_500, MS_503, MS__COUNT };

#define METRICS_NBUCKETS 12
#define METRICS_LABEL_MAX 512
#define METRICS_MAX_ENDPOINTS 16

struct metrics {
	atomic_ulong requests[ROUTE__COUNT][MS__COUNT];
	atomic_ulong inbox_applied;
	atomic_ulong inbox_pending;
	atomic_ulong inbox_duplicates;
	atomic_ulong spooled;
	atomic_ulong spool_replayed;
	atomic_ulong db_errors;
	atomic_ulong fetched_records;
	atomic_ulong fetch_errors;
	atomic_ulong connections_accepted;
	atomic_ulong batches;       /* inbox_record_batch calls that succeeded */
	atomic_ulong batched;       /* the notifications they recorded */
	atomic_ulong latency_bucket[METRICS_NBUCKETS + 1]; /* last: +Inf */
	atomic_ulong latency_sum_us;
	/* Zoho API credits spent, by endpoint (names set before the threads
	 * start), and the last X-API-CREDITS-REMAINING (-1: none yet) */
	atomic_ulong credits[METRICS_MAX_ENDPOINTS];
	atomic_long credits_remaining;
	const char *endpoint_names[METRICS_MAX_ENDPOINTS];
	size_t nendpoints;
	/* identity: label values, escaped; written before the threads start */
	char webhook[METRICS_LABEL_MAX];
	char host[METRICS_LABEL_MAX];
	long pid;
	double start_time;
};

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
void metrics_request(struct metrics *m, enum metrics_route route, int status, double seconds);
const char *metrics_route_name(enum metrics_route route);
/* The webhook's identity: instance (the webhook label), its host name;
 * call before any thread reads m. */
void metrics_set_identity(struct metrics *m, const char *instance, const char *host);
/* Name the endpoints credits are counted by (static strings, at most
 * METRICS_MAX_ENDPOINTS); call before any thread reads m. */
void metrics_set_endpoints(struct metrics *m, const char *const *names, size_t n);
/* A Zoho call of endpoint i cost credits; remaining: the answer's
 * X-API-CREDITS-REMAINING, -1 when it had none (more than half left). */
void metrics_spend(struct metrics *m, size_t i, int credits, long remaining);
/* Render the Prometheus text exposition into a fresh heap string.
 * spool_depth < 0 omits the gauge. */
char *metrics_render(struct metrics *m, long spool_depth);

#endif
