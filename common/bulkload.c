/* bulkload.c — stream a bulk CSV into the module table (see bulkload.h). */
#include "bulkload.h"
#include "csvhead.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

/* A source of inflated CSV bytes: a ZIP entry or a plain file. */
struct source {
	struct zipstream *zip;
	int fd;
};

static enum rc source_read(struct source *s, char *buf, size_t cap, size_t *n, char *err,
			   size_t errlen)
{
	if (s->zip)
		return zipstream_read(s->zip, buf, cap, n, err, errlen);
	for (;;) {
		ssize_t r = read(s->fd, buf, cap);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			return RC_IO;
		}
		*n = (size_t)r;
		return RC_OK;
	}
}

/* Follows RFC 4180 quoting over the data rows just enough to know where
 * each record ends, so that no record over BULKLOAD_MAX_ROW reaches COPY.
 * A doubled quote toggles twice, so it needs no special case. */
struct rowguard {
	bool in_quotes;
	uint64_t row_bytes; /* of the current record so far */
	long row;           /* data records completed */
};

static enum rc rowguard_feed(struct rowguard *g, const char *buf, size_t len, char *err,
			     size_t errlen)
{
	const char *p = buf, *end = buf + len;
	const char *q = memchr(p, '"', len), *nl = memchr(p, '\n', len);

	while (p < end) {
		const char *next = q && (!nl || q < nl) ? q : nl;
		if (!next) {
			g->row_bytes += (uint64_t)(end - p);
			break;
		}
		g->row_bytes += (uint64_t)(next - p) + 1;
		if (*next == '"') {
			g->in_quotes = !g->in_quotes;
			q = memchr(next + 1, '"', (size_t)(end - next - 1));
		} else {
			if (!g->in_quotes) {
				g->row_bytes = 0;
				g->row++;
			}
			nl = memchr(next + 1, '\n', (size_t)(end - next - 1));
		}
		if (g->row_bytes > BULKLOAD_MAX_ROW)
			break;
		p = next + 1;
	}
	if (g->row_bytes > BULKLOAD_MAX_ROW) {
		snprintf(err, errlen,
			 "CSV record %ld is longer than %u MiB (the bulk row limit); page refused",
			 g->row + 1, BULKLOAD_MAX_ROW >> 20);
		return RC_TOOBIG;
	}
	return RC_OK;
}

/* Reconcile's sink: (id, Modified_Time) of every staged row. */
static enum rc stage_ids(struct db *db, long *added)
{
	struct db_res *res = NULL;
	enum rc rc = db_exec(db,
			     "CREATE TEMP TABLE IF NOT EXISTS zcrm_reconcile"
			     " (id bigint PRIMARY KEY, modified_time timestamptz)",
			     0, NULL, NULL);
	if (rc)
		return rc;
	rc = db_exec(db,
		     "INSERT INTO zcrm_reconcile (id, modified_time)"
		     " SELECT NULLIF(s.id, '')::bigint, NULLIF(s.\"Modified_Time\", '')::timestamptz"
		     " FROM zcrm_stage s WHERE NULLIF(s.id, '') IS NOT NULL"
		     " ON CONFLICT (id) DO UPDATE SET modified_time = excluded.modified_time",
		     0, NULL, &res);
	*added = rc ? 0 : db_res_affected(res);
	db_res_free(res);
	return rc;
}

static enum rc load(struct db *db, const struct module_schema *schema, struct source *src,
		    const struct bulkload_opts *opts, struct bulkload_stats *stats, char *err,
		    size_t errlen)
{
	struct csvhead *head = csvhead_new(0);
	struct rowguard guard = {false, 0, 0};
	struct merge_stage *stage = NULL;
	char *buf = xmalloc(CHUNK);
	const char **names = NULL;
	bool done = false;
	enum rc rc;

	for (;;) {
		size_t n = 0, consumed = 0;
		rc = source_read(src, buf, CHUNK, &n, err, errlen);
		if (rc)
			goto out;
		if (n == 0)
			break;
		stats->bytes_csv += n;
		if (!done) {
			rc = csvhead_feed(head, buf, n, &consumed, &done, err, errlen);
			if (rc)
				goto out;
			if (!done)
				continue;
		}
		if (!stage) {
			rc = csvhead_check(head, err, errlen);
			if (rc)
				goto out;
			size_t nc = csvhead_ncols(head);
			names = xcalloc(nc, sizeof(*names));
			for (size_t i = 0; i < nc; i++)
				names[i] = csvhead_col(head, i);
			rc = merge_stage_begin(db, schema, names, nc, &stage, err, errlen);
			if (rc)
				goto out;
		}
		if (n > consumed) {
			rc = rowguard_feed(&guard, buf + consumed, n - consumed, err, errlen);
			if (rc)
				goto out;
			rc = merge_stage_put(stage, buf + consumed, n - consumed);
			if (rc) {
				snprintf(err, errlen, "COPY: %s", db_error(db));
				goto out;
			}
		}
	}
	if (!stage) {
		/* The file ended inside or right after the header. */
		rc = csvhead_end(head, err, errlen);
		if (rc)
			goto out;
		rc = csvhead_check(head, err, errlen);
		if (rc)
			goto out;
		size_t nc = csvhead_ncols(head);
		names = xcalloc(nc, sizeof(*names));
		for (size_t i = 0; i < nc; i++)
			names[i] = csvhead_col(head, i);
		rc = merge_stage_begin(db, schema, names, nc, &stage, err, errlen);
		if (rc)
			goto out;
	}
	rc = merge_stage_end(stage, NULL, &stats->rows_staged);
	if (rc) {
		/* PostgreSQL names the line and column of a malformed row. */
		snprintf(err, errlen, "CSV rejected: %s", db_error(db));
		goto out;
	}
	if (opts->ids_only) {
		rc = stage_ids(db, &stats->rows_applied);
		if (rc)
			snprintf(err, errlen, "reconcile ids: %s", db_error(db));
	} else {
		rc = merge_apply(stage, opts->rule, opts->tie_before, opts->source,
				 &stats->rows_applied, err, errlen);
	}
out:
	if (stage && rc) {
		long ignored;
		if (merge_stage_end(stage, err[0] ? err : "aborted", &ignored) != RC_OK)
			log_debug("staging aborted", "");
	}
	merge_stage_free(stage);
	csvhead_free(head);
	free(names);
	free(buf);
	return rc;
}

enum rc bulkload_zip(struct db *db, const struct module_schema *schema, const char *zip_path,
		     const struct zipstream_limits *lim, const struct bulkload_opts *opts,
		     struct bulkload_stats *stats, char *err, size_t errlen)
{
	struct source src = {NULL, -1};
	enum rc rc;

	memset(stats, 0, sizeof(*stats));
	err[0] = '\0';
	rc = zipstream_open(zip_path, lim, &src.zip, err, errlen);
	if (rc)
		return rc;
	stats->bytes_zip = zipstream_compressed_size(src.zip);
	rc = load(db, schema, &src, opts, stats, err, errlen);
	zipstream_close(src.zip);
	return rc;
}

enum rc bulkload_csv(struct db *db, const struct module_schema *schema, const char *csv_path,
		     const struct bulkload_opts *opts, struct bulkload_stats *stats, char *err,
		     size_t errlen)
{
	struct source src = {NULL, -1};
	enum rc rc;

	memset(stats, 0, sizeof(*stats));
	err[0] = '\0';
	src.fd = open(csv_path, O_RDONLY | O_CLOEXEC);
	if (src.fd < 0) {
		snprintf(err, errlen, "%s: %s", csv_path, strerror(errno));
		return RC_IO;
	}
	rc = load(db, schema, &src, opts, stats, err, errlen);
	close(src.fd);
	return rc;
}
