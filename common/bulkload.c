/* bulkload.c — stream a bulk CSV into the module table (see bulkload.h). */
#include "bulkload.h"
#include "buf.h"
#include "csvhead.h"
#include "log.h"
#include "prefilter.h"

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
	const char *zip_path; /* to read it again (source_rewind) */
	const struct zipstream_limits *lim;
};

/* Back to the first byte: the direct load gave the page up. */
static enum rc source_rewind(struct source *s, char *err, size_t errlen)
{
	if (s->zip) {
		zipstream_close(s->zip);
		s->zip = NULL;
		return zipstream_open(s->zip_path, s->lim, &s->zip, err, errlen);
	}
	if (lseek(s->fd, 0, SEEK_SET) < 0) {
		snprintf(err, errlen, "lseek: %s", strerror(errno));
		return RC_IO;
	}
	return RC_OK;
}

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
 * each record ends, so that no record over BULKLOAD_MAX_ROW reaches COPY
 * and a page can be cut into chunks between records. A doubled quote
 * toggles twice, so it needs no special case. */
struct rowguard {
	bool in_quotes;
	uint64_t row_bytes; /* of the current record so far */
	long row;           /* data records completed */
};

/* Consumes buf (*used = len), or with stop_at_row_end only up to the end
 * of the first record that completes in it (*used < len possible). */
static enum rc rowguard_feed(struct rowguard *g, const char *buf, size_t len, bool stop_at_row_end,
			     size_t *used, char *err, size_t errlen)
{
	const char *p = buf, *end = buf + len;
	const char *q = memchr(p, '"', len), *nl = memchr(p, '\n', len);

	while (p < end) {
		const char *next = q && (!nl || q < nl) ? q : nl;
		if (!next) {
			g->row_bytes += (uint64_t)(end - p);
			p = end;
			break;
		}
		g->row_bytes += (uint64_t)(next - p) + 1;
		p = next + 1;
		if (*next == '"') {
			g->in_quotes = !g->in_quotes;
			q = memchr(p, '"', (size_t)(end - p));
		} else {
			if (!g->in_quotes) {
				g->row_bytes = 0;
				g->row++;
				if (stop_at_row_end)
					break;
			}
			nl = memchr(p, '\n', (size_t)(end - p));
		}
		if (g->row_bytes > BULKLOAD_MAX_ROW)
			break;
	}
	*used = (size_t)(p - buf);
	if (g->row_bytes > BULKLOAD_MAX_ROW) {
		snprintf(err, errlen,
			 "CSV record %ld is longer than %u MiB (the bulk row limit); page refused",
			 g->row + 1, BULKLOAD_MAX_ROW >> 20);
		return RC_TOOBIG;
	}
	return RC_OK;
}

/* Chunks staged and waiting for the merging connection. With the stager
 * ahead by at most this many, the staging tables hold at most
 * (STAGED_MAX + 2) chunks' worth of rows whatever the page size. */
#define STAGED_MAX 2

struct loader {
	struct db *db;     /* the caller's transaction */
	struct db *stager; /* NULL: one TEMP staging table on db */
	const struct module_schema *schema;
	const struct bulkload_opts *opts;
	struct bulkload_stats *stats;
	const char **names;
	size_t ncols;
	struct merge_stage *filling;             /* COPY in progress */
	struct merge_stage *staged[STAGED_MAX];  /* complete, in page order */
	size_t nstaged;
	struct merge_stage *merging;             /* its merge in flight on db */
	struct prefilter *pf;         /* NULL: every row goes to COPY */
	int seq;
	uint64_t chunk_max;           /* CSV bytes per chunk */
	uint64_t chunk_bytes;
	long chunk_first;             /* record number of the chunk's first row */
};

/* The staging table of the next chunk, its COPY started. */
static enum rc stage_open(struct loader *L, long first_record, char *err, size_t errlen)
{
	L->chunk_first = first_record;
	if (!L->stager)
		return merge_stage_begin(L->db, L->schema, L->names, L->ncols, &L->filling, err,
					 errlen);
	return merge_stage_begin_chunk(L->db, L->stager, L->schema, L->names, L->ncols, L->seq++,
				       &L->filling, err, errlen);
}

static enum rc stage_put(struct loader *L, const char *buf, size_t n, char *err, size_t errlen)
{
	if (merge_stage_put(L->filling, buf, n) == RC_OK)
		return RC_OK;
	snprintf(err, errlen, "COPY: %s", db_error(merge_stage_copy_db(L->filling)));
	return RC_DB;
}

/* A chunk: its rows go to COPY as they come, or with the prefilter to
 * its buffer first (stage_kept then stages what it keeps). */
static enum rc chunk_open(struct loader *L, long first_record, char *err, size_t errlen)
{
	L->chunk_bytes = 0;
	L->chunk_first = first_record;
	return L->pf ? RC_OK : stage_open(L, first_record, err, errlen);
}

static enum rc chunk_put(struct loader *L, const char *buf, size_t n, char *err, size_t errlen)
{
	L->chunk_bytes += n;
	if (!L->pf)
		return stage_put(L, buf, n, err, errlen);
	prefilter_put(L->pf, buf, n);
	return RC_OK;
}

/* Move the merging side on: collect a finished merge (waiting for it only
 * if wait), then start the next staged chunk's. The stager never waits
 * for the merger unless STAGED_MAX chunks are already waiting. */
static enum rc advance(struct loader *L, bool wait, char *err, size_t errlen)
{
	enum rc rc;

	if (L->merging) {
		long applied = 0;
		if (!wait && !merge_apply_ready(L->merging))
			return RC_OK;
		rc = merge_apply_finish(L->merging, &applied, err, errlen);
		L->stats->cells_nulled += merge_stage_cells_nulled(L->merging);
		merge_stage_free(L->merging);
		L->merging = NULL;
		L->stats->rows_applied += applied;
		if (rc)
			return rc;
	}
	if (L->nstaged == 0)
		return RC_OK;
	struct merge_stage *st = L->staged[0];
	memmove(L->staged, L->staged + 1, --L->nstaged * sizeof(L->staged[0]));
	if (L->opts->ids_only) {
		long added = 0;
		rc = merge_collect_ids(st, &added, err, errlen);
		L->stats->rows_applied += added;
		merge_stage_free(st);
		return rc;
	}
	if (L->stats->missing[0]) {
		long deferred = 0;
		char *why = xasprintf("bulk export lacked column(s) %s", L->stats->missing);
		rc = merge_defer(st, L->opts->tie_before, why, &deferred, err, errlen);
		L->stats->rows_deferred += deferred;
		free(why);
		merge_stage_free(st);
		return rc;
	}
	L->merging = st;
	return merge_apply_start(st, L->opts->rule, L->opts->tie_before, L->opts->source, err,
				 errlen);
}

/* End the filling stage's COPY; its rows counted in *rows. */
static enum rc stage_end(struct loader *L, long *rows, char *err, size_t errlen)
{
	enum rc rc = merge_stage_end(L->filling, NULL, rows);

	if (rc) {
		/* PostgreSQL names the line and column of a malformed row. */
		const char *why = db_error(merge_stage_copy_db(L->filling));
		if (L->chunk_first > 1)
			snprintf(err, errlen, "CSV rejected: %s (lines counted from record %ld)", why,
				 L->chunk_first);
		else
			snprintf(err, errlen, "CSV rejected: %s", why);
	}
	return rc;
}

/* Queue the filled stage for merging. */
static enum rc stage_queue(struct loader *L, char *err, size_t errlen)
{
	while (L->nstaged == STAGED_MAX) {
		enum rc rc = advance(L, true, err, errlen);
		if (rc)
			return rc;
	}
	L->staged[L->nstaged++] = L->filling;
	L->filling = NULL;
	return advance(L, false, err, errlen);
}

/* prefilter_emit_fn: stage the chunk's kept runs. COPY refusing them
 * stages the chunk whole instead, so that its error names the same line
 * as it would have without the prefilter. */
static enum rc stage_kept(void *ctx, const struct prefilter_kept *k, char *err, size_t errlen)
{
	struct loader *L = ctx;
	long rows = 0;
	enum rc rc = RC_OK;

	L->stats->rows_skipped += k->dropped;
	if (k->nruns == 0) {
		L->stats->rows_staged += k->dropped;
		return advance(L, false, err, errlen);
	}
	rc = stage_open(L, k->first_record, err, errlen);
	for (size_t i = 0; !rc && i < k->nruns; i++)
		rc = stage_put(L, k->bytes + k->runs[i][0], k->runs[i][1] - k->runs[i][0], err,
			       errlen);
	if (!rc)
		rc = stage_end(L, &rows, err, errlen);
	if (rc == RC_DB && k->dropped > 0) {
		log_info("COPY refused a prefiltered chunk; staging it whole", "first_record=%ld",
			 k->first_record);
		merge_stage_free(L->filling);
		L->filling = NULL;
		L->stats->rows_skipped -= k->dropped;
		rc = stage_open(L, k->first_record, err, errlen);
		if (!rc)
			rc = stage_put(L, k->bytes, k->len, err, errlen);
		if (!rc)
			rc = stage_end(L, &rows, err, errlen);
		if (rc)
			return rc;
		L->stats->rows_staged += rows;
		return stage_queue(L, err, errlen);
	}
	if (rc)
		return rc;
	L->stats->rows_staged += rows + k->dropped;
	return stage_queue(L, err, errlen);
}

/* End the chunk: its COPY, queued for merging; or with the prefilter,
 * its lookup sent (and the chunk before it staged). */
static enum rc chunk_close(struct loader *L, char *err, size_t errlen)
{
	long rows = 0;
	enum rc rc;

	if (L->pf) {
		rc = prefilter_cut(L->pf, L->chunk_first, stage_kept, L, err, errlen);
		if (rc || !prefilter_unhelpful(L->pf))
			return rc;
		log_info("few rows refused; staging the rest of the page without the prefilter",
			 "skipped=%ld", L->stats->rows_skipped);
		rc = prefilter_drain(L->pf, stage_kept, L, err, errlen);
		prefilter_free(L->pf);
		L->pf = NULL;
		return rc;
	}
	rc = stage_end(L, &rows, err, errlen);
	if (rc)
		return rc;
	L->stats->rows_staged += rows;
	return stage_queue(L, err, errlen);
}

/* Append name to the comma-separated list buf (cut with "..."). */
static void list_add(char *buf, const char *name)
{
	size_t len = strlen(buf), cap = BULKLOAD_COLUMNS_MAX;

	if (len >= 3 && !strcmp(buf + len - 3, "..."))
		return;
	int n = snprintf(buf + len, cap - len, "%s%s", len ? "," : "", name);
	if (n < 0 || (size_t)n >= cap - len)
		snprintf(buf + (len < cap - 4 ? len : cap - 4), 4, "...");
}

/* Which of the module's columns the CSV lacks, and which CSV columns the
 * module does not know (stats->missing, stats->extra). Expected: the fields
 * of the latest fields metadata (a field Zoho deleted keeps its column but
 * is not expected), except those of types Bulk Read does not export
 * (fileupload, imageupload: the JSON kind; multiselectlookup,
 * multiuserlookup: the ids kind, schema.h; subforms are child tables) and
 * Created_Time, which never changes once a record exists, so lacking it
 * cannot leave a stale value. */
static void check_columns(struct loader *L)
{
	const struct module_schema *sc = L->schema;

	for (size_t i = 0; i < sc->ncols; i++) {
		const struct zcolumn *c = &sc->cols[i];
		bool found = false;
		if (!c->listed || c->kind == FIELD_JSON || c->kind == FIELD_IDS ||
		    !strcmp(c->column, "created_time"))
			continue;
		for (size_t h = 0; h < L->ncols && !found; h++)
			found = !strcmp(L->names[h], c->api_name) ||
				(!strcmp(c->column, "id") && !strcasecmp(L->names[h], "id"));
		if (!found)
			list_add(L->stats->missing, c->api_name);
	}
	for (size_t h = 0; h < L->ncols; h++)
		if (strcasecmp(L->names[h], "id") != 0 && !schema_column(sc, L->names[h]))
			list_add(L->stats->extra, L->names[h]);
}

/* Header parsed: the column names, and the first chunk. */
static enum rc header_done(struct loader *L, struct csvhead *head, char *err, size_t errlen)
{
	enum rc rc = csvhead_check(head, err, errlen);

	if (rc)
		return rc;
	L->ncols = csvhead_ncols(head);
	L->names = xcalloc(L->ncols, sizeof(*L->names));
	for (size_t i = 0; i < L->ncols; i++)
		L->names[i] = csvhead_col(head, i);
	/* Reconcile asks for id and Modified_Time only. */
	if (!L->opts->ids_only)
		check_columns(L);
	/* Reconcile wants every id, and a page lacking a column defers the
	 * rows the rule could apply by its own test. */
	if (L->stager && !L->opts->ids_only && !L->opts->stage_all && !L->stats->missing[0]) {
		rc = prefilter_new(L->stager, L->schema, L->names, L->ncols, L->opts->rule,
				   L->opts->tie_before, &L->pf, err, errlen);
		if (rc)
			return rc;
	}
	return chunk_open(L, 1, err, errlen);
}

/* Up to len bytes at *p (with stop_at_row_end, only to the end of the
 * first record that completes) through the guard into the filling chunk;
 * *p and *n move past them. */
static enum rc guard_put(struct loader *L, struct rowguard *guard, const char **p, size_t *n,
			 size_t len, bool stop_at_row_end, char *err, size_t errlen)
{
	size_t used = 0;
	enum rc rc = rowguard_feed(guard, *p, len, stop_at_row_end, &used, err, errlen);

	if (!rc)
		rc = chunk_put(L, *p, used, err, errlen);
	*p += used;
	*n -= used;
	return rc;
}

/* Data bytes: into the filling chunk, cut after the record that crosses
 * chunk_max. */
static enum rc feed_rows(struct loader *L, struct rowguard *guard, const char *p, size_t n,
			 char *err, size_t errlen)
{
	while (n > 0) {
		bool cut = L->stager && L->chunk_bytes + n >= L->chunk_max;
		enum rc rc;

		/* Up to the threshold as usual, then to the record's end. */
		if (cut && L->chunk_bytes < L->chunk_max) {
			rc = guard_put(L, guard, &p, &n, (size_t)(L->chunk_max - L->chunk_bytes),
				       false, err, errlen);
			if (rc)
				return rc;
		}
		rc = guard_put(L, guard, &p, &n, n, cut, err, errlen);
		if (rc)
			return rc;
		if (cut && n > 0) {
			rc = chunk_close(L, err, errlen);
			if (!rc)
				rc = chunk_open(L, guard->row + 1, err, errlen);
			if (rc)
				return rc;
		}
	}
	/* Between two reads: start the next merge as soon as one ends. */
	return advance(L, false, err, errlen);
}

static enum rc load(struct loader *L, struct source *src, char *err, size_t errlen)
{
	struct csvhead *head = csvhead_new(0);
	struct rowguard guard = {false, 0, 0};
	char *buf = xmalloc(CHUNK);
	bool done = false;
	enum rc rc;

	for (;;) {
		size_t n = 0, consumed = 0;
		rc = source_read(src, buf, CHUNK, &n, err, errlen);
		if (rc)
			goto out;
		if (n == 0)
			break;
		L->stats->bytes_csv += n;
		if (!done) {
			rc = csvhead_feed(head, buf, n, &consumed, &done, err, errlen);
			if (rc)
				goto out;
			if (!done)
				continue;
			rc = header_done(L, head, err, errlen);
			if (rc)
				goto out;
		}
		rc = feed_rows(L, &guard, buf + consumed, n - consumed, err, errlen);
		if (rc)
			goto out;
	}
	if (!L->names) {
		/* The file ended inside or right after the header. */
		rc = csvhead_end(head, err, errlen);
		if (!rc)
			rc = header_done(L, head, err, errlen);
		if (rc)
			goto out;
	}
	rc = chunk_close(L, err, errlen);
	if (!rc && L->pf)
		rc = prefilter_drain(L->pf, stage_kept, L, err, errlen);
	while (!rc && (L->merging || L->nstaged))
		rc = advance(L, true, err, errlen);
out:
	/* On failure: abort a COPY, wait for a merge still in flight (the
	 * caller rolls back next), drop the chunks never merged. */
	prefilter_free(L->pf);
	L->pf = NULL;
	merge_stage_free(L->filling);
	merge_stage_free(L->merging);
	for (size_t i = 0; i < L->nstaged; i++)
		merge_stage_free(L->staged[i]);
	csvhead_free(head);
	free(L->names);
	free(buf);
	return rc;
}

/* ---- a first load: COPY straight into the empty module table ---- */

/* CSV cells of the page, rewritten where COPY into the typed table needs
 * another spelling: a multi-select cell "a;b" (merge.c casts it with
 * string_to_array(…, ';')) becomes the array literal {"a","b"}. Other
 * cells pass byte for byte. */
enum cell_state { CELL_START, CELL_PLAIN, CELL_QUOTED, CELL_QUOTE_SEEN };

struct direct {
	struct db *db;
	const bool *multi;   /* per CSV column */
	size_t ncols;
	size_t field;
	enum cell_state state;
	struct buf cell;     /* a multi-select cell, unquoted */
	struct buf out;      /* CSV for COPY, sent in pieces */
	bool failed;         /* a COPY put failed: the rest is not sent */
};

static void out_char(struct direct *D, char c)
{
	buf_addc(&D->out, c);
}

static void direct_flush(struct direct *D)
{
	if (buf_len(&D->out) && !D->failed &&
	    db_copy_put(D->db, buf_str(&D->out), buf_len(&D->out)) != RC_OK)
		D->failed = true;
	buf_reset(&D->out);
}

/* The multi-select cell just read, as a CSV-quoted array literal (an
 * empty one: NULL). A trailing CR of a CRLF line end goes after it. */
static void end_multi(struct direct *D)
{
	const char *cell = buf_str(&D->cell);
	size_t len = buf_len(&D->cell);
	bool cr = len && cell[len - 1] == '\r' && D->state == CELL_PLAIN;

	if (cr)
		len--;
	if (len) {
		out_char(D, '"');
		out_char(D, '{');
		out_char(D, '"');
		out_char(D, '"');
		for (size_t i = 0; i < len; i++) {
			char c = cell[i];
			if (c == ';') {
				out_char(D, '"');
				out_char(D, '"');
				out_char(D, ',');
				out_char(D, '"');
				out_char(D, '"');
				continue;
			}
			if (c == '\\' || c == '"')
				out_char(D, '\\');
			out_char(D, c);
			if (c == '"')
				out_char(D, '"');
		}
		out_char(D, '"');
		out_char(D, '"');
		out_char(D, '}');
		out_char(D, '"');
	}
	if (cr)
		out_char(D, '\r');
	buf_reset(&D->cell);
}

/* Bytes of a cell that pass unchanged from i on: the end of a run without
 * a quote (in quotes), or without a quote, comma or line end (outside). */
static size_t plain_run(const char *buf, size_t i, size_t n, bool quoted)
{
	if (quoted) {
		const char *q = memchr(buf + i, '"', n - i);
		return q ? (size_t)(q - buf) : n;
	}
	while (i < n && buf[i] != ',' && buf[i] != '\n' && buf[i] != '"')
		i++;
	return i;
}

static void direct_feed(struct direct *D, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = buf[i];
		bool multi = D->field < D->ncols && D->multi[D->field];

		if (!multi && (D->state == CELL_QUOTED || D->state == CELL_PLAIN)) {
			size_t end = plain_run(buf, i, n, D->state == CELL_QUOTED);
			if (end > i) {
				buf_add(&D->out, buf + i, end - i);
				i = end - 1;
				continue;
			}
		}

		if (D->state == CELL_QUOTE_SEEN) {
			if (c == '"') { /* a doubled quote: one quote of the value */
				D->state = CELL_QUOTED;
				if (multi)
					buf_addc(&D->cell, c);
				else
					out_char(D, c);
				continue;
			}
			D->state = CELL_PLAIN; /* the value ended, or goes on unquoted */
		}
		if (D->state == CELL_QUOTED) {
			if (c == '"')
				D->state = CELL_QUOTE_SEEN;
			else if (multi)
				buf_addc(&D->cell, c);
			if (!multi)
				out_char(D, c);
			continue;
		}
		if (c == ',' || c == '\n') {
			if (multi)
				end_multi(D);
			out_char(D, c);
			D->field = c == ',' ? D->field + 1 : 0;
			D->state = CELL_START;
			if (buf_len(&D->out) >= (256u << 10))
				direct_flush(D);
			continue;
		}
		if (D->state == CELL_START && c == '"') {
			D->state = CELL_QUOTED;
			if (!multi)
				out_char(D, c);
			continue;
		}
		D->state = CELL_PLAIN;
		if (multi)
			buf_addc(&D->cell, c);
		else
			out_char(D, c);
	}
}

/* Can the page go straight in? Its columns must all be the module's
 * (none lacking, none unknown, no JSON kind, none twice). multi: which
 * CSV columns are multi-select. The COPY column list into *cols. */
static bool direct_columns(struct db *db, const struct module_schema *schema, struct loader *L,
			   bool *multi, char **cols)
{
	struct buf list = {0};
	bool ok = true, id = false, mt = false;

	check_columns(L);
	if (L->stats->missing[0] || L->stats->extra[0])
		return false;
	for (size_t h = 0; h < L->ncols && ok; h++) {
		const struct zcolumn *c = !strcasecmp(L->names[h], "id") ? NULL
								       : schema_column(schema, L->names[h]);
		const char *col = c ? c->column : "id";
		for (size_t k = 0; k < h && ok; k++)
			ok = strcmp(L->names[k], L->names[h]) != 0 &&
			     (strcasecmp(L->names[k], "id") || strcasecmp(L->names[h], "id"));
		if (c && c->kind == FIELD_JSON)
			ok = false;
		if (!strcmp(col, "id"))
			id = true;
		if (!strcmp(col, "modified_time"))
			mt = true;
		multi[h] = c && c->kind == FIELD_MULTI;
		char *q = db_quote_ident(db, col);
		buf_printf(&list, "%s%s", h ? ", " : "", q);
		free(q);
	}
	if (!ok || !id || !mt) {
		buf_free(&list);
		return false;
	}
	*cols = buf_steal(&list);
	return true;
}

/* The page COPYed into the module table under a savepoint: what the
 * merge would do as long as no stored row has an id of the page, which
 * the primary key checks (a collision, or a row a notification inserts
 * meanwhile, makes COPY refuse the page). So it is tried when the table is
 * empty, or with always when the caller expects no collision. *done
 * false: not loaded this way (rows stored, the columns do not fit, or
 * COPY refused the page: rolled back) - stage it from the first byte. An
 * error reading the page fails the page (*done true). */
static enum rc load_direct(struct db *db, const struct module_schema *schema, struct source *src,
			   bool always, struct bulkload_stats *stats, bool *done, char *err,
			   size_t errlen)
{
	struct csvhead *head = csvhead_new(0);
	struct rowguard guard = {false, 0, 0};
	struct loader L = {0};
	struct direct D = {0};
	char *buf = xmalloc(CHUNK), *v = NULL, *cols = NULL, *sql = NULL;
	char *qt = db_quote_ident(db, schema->table);
	bool *multi = NULL, copying = false, header = false, savepoint = false;
	long rows = 0;
	enum rc rc;

	*done = false;
	sql = xasprintf("SELECT NOT EXISTS (SELECT 1 FROM %s)", qt);
	rc = db_query_value(db, sql, 0, NULL, &v);
	free(sql);
	sql = NULL;
	if (rc)
		goto give_up;
	/* Rows stored: the merge, unless the caller expects none of the
	 * page's ids among them (a collision makes COPY refuse the page). */
	if (!always && (!v || strcmp(v, "t")))
		goto give_up;
	for (;;) {
		size_t n = 0, consumed = 0;
		rc = source_read(src, buf, CHUNK, &n, err, errlen);
		if (rc)
			goto fail;
		stats->bytes_csv += n;
		if (!header) {
			if (n == 0)
				goto give_up; /* no row: the staged path says what is wrong */
			rc = csvhead_feed(head, buf, n, &consumed, &header, err, errlen);
			if (rc)
				goto give_up;
			if (!header)
				continue;
			if (csvhead_check(head, err, errlen) != RC_OK)
				goto give_up;
			L.schema = schema;
			L.stats = stats;
			L.ncols = csvhead_ncols(head);
			L.names = xcalloc(L.ncols, sizeof(*L.names));
			for (size_t i = 0; i < L.ncols; i++)
				L.names[i] = csvhead_col(head, i);
			multi = xcalloc(L.ncols, sizeof(*multi));
			if (!direct_columns(db, schema, &L, multi, &cols))
				goto give_up;
			sql = xasprintf("COPY %s (%s) FROM STDIN (FORMAT csv, FORCE_NULL (%s))", qt,
					cols, cols);
			if (db_exec(db, "SAVEPOINT zcrm_direct", 0, NULL, NULL) != RC_OK)
				goto give_up;
			savepoint = true;
			if (db_copy_begin(db, sql) != RC_OK)
				goto refused;
			copying = true;
			D.db = db;
			D.multi = multi;
			D.ncols = L.ncols;
		}
		if (n == 0)
			break;
		size_t used = 0;
		rc = rowguard_feed(&guard, buf + consumed, n - consumed, false, &used, err, errlen);
		if (rc)
			goto fail;
		direct_feed(&D, buf + consumed, n - consumed);
		if (D.failed)
			goto refused;
	}
	if (D.state != CELL_START && D.field < D.ncols && D.multi[D.field])
		end_multi(&D); /* the last record had no line end */
	direct_flush(&D);
	copying = false;
	if (D.failed || db_copy_end(db, NULL, &rows) != RC_OK)
		goto refused;
	/* The merge skips a row without Modified_Time: so does this. */
	struct db_res *res = NULL;
	free(sql);
	/* Only rows of this page: a tombstone a notification wrote for an id
	 * we did not hold (modified_time NULL too) stays. */
	sql = xasprintf("DELETE FROM %s WHERE modified_time IS NULL AND deleted_at IS NULL", qt);
	rc = db_exec(db, sql, 0, NULL, &res);
	long dropped = rc ? 0 : db_res_affected(res);
	db_res_free(res);
	if (rc || db_exec(db, "RELEASE SAVEPOINT zcrm_direct", 0, NULL, NULL) != RC_OK) {
		snprintf(err, errlen, "%s", db_error(db));
		rc = RC_DB;
		goto fail;
	}
	stats->rows_staged = rows;
	stats->rows_applied = rows - dropped;
	stats->direct = true;
	*done = true;
	rc = RC_OK;
	goto out;
refused:
	log_info("the page does not COPY straight into the empty table; staging it",
		 "err=%s", log_q(db_error(db)));
	if (copying && db_copy_end(db, "given up", NULL) == RC_OK)
		log_warn("an aborted COPY reported success", "");
	copying = false;
give_up:
	if (savepoint && db_exec(db, "ROLLBACK TO SAVEPOINT zcrm_direct", 0, NULL, NULL) != RC_OK) {
		snprintf(err, errlen, "%s", db_error(db));
		rc = RC_DB;
		*done = true;
		goto out;
	}
	err[0] = '\0';
	rc = RC_OK;
	goto out;
fail:
	*done = true;
	if (copying && db_copy_end(db, "page failed", NULL) == RC_OK)
		log_warn("an aborted COPY reported success", "");
out:
	buf_free(&D.out);
	buf_free(&D.cell);
	free(L.names);
	free(multi);
	free(cols);
	free(sql);
	free(v);
	free(qt);
	free(buf);
	csvhead_free(head);
	return rc;
}

/* The stager, when asked for: a second connection, or none (one table on
 * db) if it cannot be had - slower, not wrong. */
static struct db *open_stager(struct db *db, const struct bulkload_opts *opts)
{
	struct db *stager = NULL;

	if (!opts->parallel)
		return NULL;
	if (db_connect_like(db, &stager) != RC_OK) {
		log_info("no second database connection; loading the page on one", "err=%s",
			 log_q(db_error(stager)));
		db_close(stager);
		return NULL;
	}
	if (merge_stage_sweep(stager) != RC_OK)
		log_info("could not sweep old staging tables", "err=%s", log_q(db_error(stager)));
	return stager;
}

static enum rc load_with(struct db *db, const struct module_schema *schema, struct source *src,
			 const struct bulkload_opts *opts, struct bulkload_stats *stats, char *err,
			 size_t errlen)
{
	struct loader L = {0};
	enum rc rc;

	if (opts->direct && opts->rule == MERGE_BULK && !opts->ids_only) {
		bool done = false;
		uint64_t zipped = stats->bytes_zip;
		rc = load_direct(db, schema, src, opts->direct_always, stats, &done, err, errlen);
		if (done)
			return rc;
		memset(stats, 0, sizeof(*stats));
		stats->bytes_zip = zipped;
		rc = source_rewind(src, err, errlen);
		if (rc)
			return rc;
	}
	L.db = db;
	L.stager = open_stager(db, opts);
	L.schema = schema;
	L.opts = opts;
	L.stats = stats;
	L.chunk_max = opts->chunk_bytes ? opts->chunk_bytes : BULKLOAD_CHUNK;
	rc = load(&L, src, err, errlen);
	db_close(L.stager);
	return rc;
}

enum rc bulkload_zip(struct db *db, const struct module_schema *schema, const char *zip_path,
		     const struct zipstream_limits *lim, const struct bulkload_opts *opts,
		     struct bulkload_stats *stats, char *err, size_t errlen)
{
	struct source src = {NULL, -1, zip_path, lim};
	enum rc rc;

	memset(stats, 0, sizeof(*stats));
	err[0] = '\0';
	rc = zipstream_open(zip_path, lim, &src.zip, err, errlen);
	if (rc)
		return rc;
	stats->bytes_zip = zipstream_compressed_size(src.zip);
	rc = load_with(db, schema, &src, opts, stats, err, errlen);
	zipstream_close(src.zip);
	return rc;
}

enum rc bulkload_csv(struct db *db, const struct module_schema *schema, const char *csv_path,
		     const struct bulkload_opts *opts, struct bulkload_stats *stats, char *err,
		     size_t errlen)
{
	struct source src = {NULL, -1, NULL, NULL};
	enum rc rc;

	memset(stats, 0, sizeof(*stats));
	err[0] = '\0';
	src.fd = open(csv_path, O_RDONLY | O_CLOEXEC);
	if (src.fd < 0) {
		snprintf(err, errlen, "%s: %s", csv_path, strerror(errno));
		return RC_IO;
	}
	rc = load_with(db, schema, &src, opts, stats, err, errlen);
	close(src.fd);
	return rc;
}
