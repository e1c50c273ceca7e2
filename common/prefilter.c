/* prefilter.c — drop a bulk page's refused rows before staging (see prefilter.h). */
#include "prefilter.h"
#include "buf.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bytes that end or open something outside quotes. */
static const bool special[256] = {[','] = true, ['"'] = true, ['\n'] = true, ['\r'] = true};

/* A plain integer id cell: digits, or digits in quotes (no sign: Zoho
 * ids are positive; anything else is left to the merge). */
static bool parse_id(const char *cell, size_t len, int64_t *out)
{
	if (len >= 2 && cell[0] == '"' && cell[len - 1] == '"') {
		cell++;
		len -= 2;
	}
	if (len == 0 || len > 19)
		return false;
	int64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		int d = cell[i] - '0';
		if (d < 0 || d > 9 || v > (INT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* The Modified_Time cell's text, if it has no quote inside (one pair of
 * quotes around it is stripped) and no NUL byte (a text[] literal cannot
 * hold one). */
static void set_mt(struct prefilter_record *r, const char *bytes, size_t off, size_t len,
		   bool quoted)
{
	if (quoted) {
		if (len < 2 || bytes[off] != '"' || bytes[off + len - 1] != '"' ||
		    memchr(bytes + off + 1, '"', len - 2))
			return;
		off++;
		len -= 2;
	}
	if (memchr(bytes + off, '\0', len))
		return;
	r->mt_off = off;
	r->mt_len = len;
}

bool prefilter_scan(const char *bytes, size_t len, size_t ncols, size_t id_col, size_t mt_col,
		    struct prefilter_record **recs, size_t *cap, size_t *nrecs)
{
	const unsigned char *b = (const unsigned char *)bytes;
	size_t i = 0;
	int eol = 0; /* the chunk's line end: 0 not seen yet, '\n' or '\r' (CRLF) */

	*nrecs = 0;
	while (i < len) {
		struct prefilter_record r = {.start = i};
		size_t field = 0, cell = i;
		bool quoted = false, in_quotes = false, ended = false;

		while (!ended) {
			if (in_quotes) {
				const unsigned char *q = memchr(b + i, '"', len - i);
				if (!q)
					return false; /* a quote left open */
				i = (size_t)(q - b) + 1;
				if (i < len && b[i] == '"')
					i++; /* "" inside quotes */
				else
					in_quotes = false;
				continue;
			}
			while (i < len && !special[b[i]])
				i++;
			/* The page's last record may lack its newline. */
			unsigned char c = i < len ? b[i] : '\n';
			if (c == '"') {
				quoted = in_quotes = true;
				i++;
				continue;
			}
			if (c == '\r' && (i + 1 >= len || b[i + 1] != '\n'))
				return false; /* COPY reads a bare CR as a line end */
			if (field == id_col)
				r.has_id = parse_id(bytes + cell, i - cell, &r.id);
			else if (field == mt_col)
				set_mt(&r, bytes, cell, i - cell, quoted);
			field++;
			ended = c != ',';
			/* COPY holds a file to the line end of its first line. */
			if (ended && i < len) {
				if (eol && eol != c)
					return false;
				eol = c;
			}
			i += c == '\r' ? 2 : 1;
			cell = i;
			quoted = false;
		}
		if (field != ncols)
			return false;
		r.end = i < len ? i : len;
		if (*nrecs == *cap) {
			*cap = *cap ? *cap * 2 : 1024;
			*recs = xrealloc(*recs, *cap * sizeof(**recs));
		}
		(*recs)[(*nrecs)++] = r;
	}
	return true;
}

/* A chunk of whole records, filled, then scanned and looked up. */
struct chunk {
	struct buf bytes;
	long first_record;
	struct prefilter_record *recs;
	size_t cap, nrecs;
	size_t *asked;    /* position in the lookup (0-based) -> record */
	size_t nasked, asked_cap;
	char *ids, *mts;  /* the lookup's parameters, until sent */
	bool pending;     /* cut, not emitted yet */
	bool in_flight;   /* its lookup sent, not collected */
	bool whole;       /* not scanned (malformed): staged whole */
};

struct prefilter {
	struct db *db;
	char *sql;
	size_t ncols, id_col, mt_col;
	struct chunk chunk[2];
	int filling;
	long dropped;
	bool unhelpful;   /* a lookup refused too few rows to pay for itself */
	size_t (*runs)[2];
	size_t runs_cap;
	bool *refused;
	size_t refused_cap;
};

enum rc prefilter_new(struct db *lookup, const struct module_schema *schema,
		      const char *const *headers, size_t nheaders, enum merge_rule rule,
		      int64_t tie_before, struct prefilter **out, char *err, size_t errlen)
{
	size_t id_col = nheaders, mt_col = nheaders;

	*out = NULL;
	if (rule != MERGE_BULK)
		return RC_OK;
	for (size_t i = 0; i < nheaders; i++) {
		if (id_col == nheaders && !strcasecmp(headers[i], "id"))
			id_col = i;
		else if (mt_col == nheaders && !strcmp(headers[i], "Modified_Time"))
			mt_col = i;
	}
	if (id_col == nheaders || mt_col == nheaders)
		return RC_OK;
	/* The lookup's plan costs more than jit_above_cost; compiling it
	 * would take longer than running it. */
	if (db_exec(lookup, "SET jit = off", 0, NULL, NULL) != RC_OK) {
		snprintf(err, errlen, "stager: %s", db_error(lookup));
		return RC_DB;
	}
	struct prefilter *pf = xcalloc(1, sizeof(*pf));
	pf->db = lookup;
	pf->sql = merge_refused_sql(lookup, schema, rule, tie_before);
	pf->ncols = nheaders;
	pf->id_col = id_col;
	pf->mt_col = mt_col;
	*out = pf;
	return RC_OK;
}

void prefilter_put(struct prefilter *pf, const char *bytes, size_t len)
{
	buf_add(&pf->chunk[pf->filling].bytes, bytes, len);
}

/* Scan the chunk and write its lookup's parameters, if it has rows to
 * ask about (c->ids NULL if not). */
static void lookup_prepare(struct prefilter *pf, struct chunk *c)
{
	size_t n = 0, room;
	int64_t *ids;
	const char **mts;
	size_t *lens;

	c->pending = true;
	if (!prefilter_scan(c->bytes.s ? c->bytes.s : "", c->bytes.len, pf->ncols, pf->id_col,
			    pf->mt_col, &c->recs, &c->cap, &c->nrecs)) {
		c->whole = true;
		return;
	}
	room = c->nrecs ? c->nrecs : 1;
	if (c->nrecs > c->asked_cap) {
		c->asked_cap = c->nrecs;
		c->asked = xrealloc(c->asked, c->asked_cap * sizeof(*c->asked));
	}
	ids = xmalloc(room * sizeof(*ids));
	mts = xmalloc(room * sizeof(*mts));
	lens = xmalloc(room * sizeof(*lens));
	for (size_t i = 0; i < c->nrecs; i++) {
		const struct prefilter_record *r = &c->recs[i];
		if (!r->has_id || r->mt_len == 0)
			continue;
		c->asked[n] = i;
		ids[n] = r->id;
		mts[n] = c->bytes.s + r->mt_off;
		lens[n] = r->mt_len;
		n++;
	}
	c->nasked = n;
	if (n > 0) {
		c->ids = db_int64_array(ids, n);
		c->mts = db_text_array(mts, lens, n);
	}
	free(ids);
	free(mts);
	free(lens);
}

static enum rc lookup_send(struct prefilter *pf, struct chunk *c, char *err, size_t errlen)
{
	enum rc rc = RC_OK;

	if (c->ids) {
		rc = db_send(pf->db, pf->sql, 2, (const char *[]){c->ids, c->mts});
		if (rc)
			snprintf(err, errlen, "stager: %s", db_error(pf->db));
		else
			c->in_flight = true;
	}
	free(c->ids);
	free(c->mts);
	c->ids = c->mts = NULL;
	return rc;
}

/* Collect the lookup: which records it refused (pf->refused). A lookup
 * that fails (a Modified_Time that does not cast) refuses nothing: the
 * merge meets the same cell and deals with it as it always has. */
static void lookup_collect(struct prefilter *pf, struct chunk *c)
{
	struct db_res *res = NULL;

	if (c->nrecs > pf->refused_cap) {
		pf->refused_cap = c->nrecs;
		pf->refused = xrealloc(pf->refused, pf->refused_cap * sizeof(*pf->refused));
	}
	if (c->nrecs)
		memset(pf->refused, 0, c->nrecs * sizeof(*pf->refused));
	if (!c->in_flight)
		return;
	c->in_flight = false;
	if (db_wait(pf->db, &res) != RC_OK) {
		log_info("prefilter lookup failed; the chunk is staged whole", "first_record=%ld err=%s",
			 c->first_record, log_q(db_error(pf->db)));
		return;
	}
	for (int row = 0; row < db_res_rows(res); row++) {
		long pos = strtol(db_res_get(res, row, 0), NULL, 10);
		if (pos >= 1 && (size_t)pos <= c->nasked)
			pf->refused[c->asked[pos - 1]] = true;
	}
	db_res_free(res);
}

/* Hand the chunk's kept records to emit, then empty it. */
static enum rc emit_chunk(struct prefilter *pf, struct chunk *c, prefilter_emit_fn emit, void *ctx,
			  char *err, size_t errlen)
{
	struct prefilter_kept k = {.bytes = c->bytes.s ? c->bytes.s : "",
				   .len = c->bytes.len,
				   .first_record = c->first_record};
	size_t nruns = 0;
	enum rc rc;

	lookup_collect(pf, c);
	if (pf->runs_cap < (c->whole ? 1 : c->nrecs)) {
		pf->runs_cap = c->whole ? 1 : c->nrecs;
		pf->runs = xrealloc(pf->runs, pf->runs_cap * sizeof(*pf->runs));
	}
	if (c->whole) {
		pf->runs[nruns][0] = 0;
		pf->runs[nruns++][1] = c->bytes.len;
	}
	for (size_t i = 0; !c->whole && i < c->nrecs; i++) {
		if (pf->refused[i]) {
			k.dropped++;
			continue;
		}
		if (nruns && pf->runs[nruns - 1][1] == c->recs[i].start)
			pf->runs[nruns - 1][1] = c->recs[i].end;
		else {
			pf->runs[nruns][0] = c->recs[i].start;
			pf->runs[nruns++][1] = c->recs[i].end;
		}
	}
	k.runs = (const size_t(*)[2])pf->runs;
	k.nruns = nruns;
	pf->dropped += k.dropped;
	if (!c->whole && (size_t)k.dropped * PREFILTER_WORTH < c->nrecs)
		pf->unhelpful = true;
	rc = emit(ctx, &k, err, errlen);
	buf_reset(&c->bytes);
	c->nrecs = c->nasked = 0;
	c->pending = c->whole = false;
	return rc;
}

enum rc prefilter_cut(struct prefilter *pf, long first_record, prefilter_emit_fn emit, void *ctx,
		      char *err, size_t errlen)
{
	struct chunk *c = &pf->chunk[pf->filling], *prev = &pf->chunk[!pf->filling];
	enum rc rc;

	/* Scanned while the lookup before it still runs. */
	c->first_record = first_record;
	lookup_prepare(pf, c);
	if (prev->pending) {
		rc = emit_chunk(pf, prev, emit, ctx, err, errlen);
		if (rc)
			return rc;
	}
	pf->filling = !pf->filling;
	return lookup_send(pf, c, err, errlen);
}

enum rc prefilter_drain(struct prefilter *pf, prefilter_emit_fn emit, void *ctx, char *err,
			size_t errlen)
{
	struct chunk *prev = &pf->chunk[!pf->filling];

	return prev->pending ? emit_chunk(pf, prev, emit, ctx, err, errlen) : RC_OK;
}

long prefilter_dropped(const struct prefilter *pf)
{
	return pf ? pf->dropped : 0;
}

bool prefilter_unhelpful(const struct prefilter *pf)
{
	return pf && pf->unhelpful;
}

void prefilter_free(struct prefilter *pf)
{
	if (!pf)
		return;
	for (int i = 0; i < 2; i++) {
		struct chunk *c = &pf->chunk[i];
		if (c->in_flight) {
			struct db_res *res = NULL;
			if (db_wait(pf->db, &res) == RC_OK)
				db_res_free(res);
		}
		buf_free(&c->bytes);
		free(c->recs);
		free(c->asked);
		free(c->ids);
		free(c->mts);
	}
	free(pf->runs);
	free(pf->refused);
	free(pf->sql);
	free(pf);
}
