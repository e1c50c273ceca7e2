/* fetch.c — fetch dirty records and merge them (see fetch.h). */
#include "fetch.h"
#include "buf.h"
#include "log.h"
#include "merge.h"
#include "subform.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FETCH_BATCH ZOHO_MAX_IDS

/* Stage the records as CSV rows over the schema's columns and merge. */
/* Records read from Zoho at or after `asked` (epoch seconds, our clock
 * less a skew margin) were live then: a tombstone older than that is a
 * record restored in Zoho, whatever its Modified_Time says. */
#define FETCH_SKEW_MARGIN 2

/* A field Zoho removed keeps its column and values: not asked for, not
 * staged, so not written (schema.h). */
static bool wanted(const struct zcolumn *c)
{
	return c->listed;
}

static enum rc merge_records(struct db *data, const struct module_schema *schema,
			     struct json_object *records, int64_t asked, enum merge_rule rule,
			     long *applied, char *err, size_t errlen)
{
	const char **headers = xcalloc(schema->ncols, sizeof(*headers));
	struct merge_stage *stage = NULL;
	struct buf row = {0};
	size_t nh = 0;
	long rows = 0;
	enum rc rc;

	for (size_t i = 0; i < schema->ncols; i++)
		if (wanted(&schema->cols[i]))
			headers[nh++] = schema->cols[i].api_name;
	rc = merge_stage_begin(data, schema, headers, nh, &stage, err, errlen);
	if (rc)
		goto out;
	size_t n = json_object_array_length(records);
	for (size_t r = 0; r < n; r++) {
		struct json_object *rec = json_object_array_get_idx(records, r);
		buf_reset(&row);
		for (size_t i = 0, k = 0; i < schema->ncols; i++) {
			struct json_object *v = NULL;
			char *cell = NULL;
			if (!wanted(&schema->cols[i]))
				continue;
			if (json_object_object_get_ex(rec, schema->cols[i].api_name, &v))
				cell = schema_json_cell(v, schema->cols[i].kind);
			if (k++)
				buf_addc(&row, ',');
			buf_csv_cell(&row, cell, cell ? strlen(cell) : 0);
			free(cell);
		}
		buf_addc(&row, '\n');
		rc = merge_stage_put(stage, buf_str(&row), buf_len(&row));
		if (rc) {
			snprintf(err, errlen, "COPY: %s", db_error(data));
			goto out;
		}
	}
	rc = merge_stage_end(stage, NULL, &rows);
	if (rc) {
		snprintf(err, errlen, "staging fetched records: %s", db_error(data));
		goto out;
	}
	rc = merge_apply(stage, rule, asked, "fetch", applied, err, errlen);
out:
	merge_stage_free(stage);
	buf_free(&row);
	free(headers);
	return rc;
}

/* Characters (UTF-8 code points) of s. */
static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

bool fetch_rich_truncated(const char *text)
{
	return text && utf8_chars(text) >= FETCH_RICH_LIMIT;
}

/* Get Records truncates rich text to 500 characters: a record with a rich
 * text value that long gets its rich text fields in full from Get Rich Text
 * Fields (1 credit each), so that a fetch never writes a truncation over
 * the full text a bulk load (or an earlier fetch) wrote. */
static enum rc full_rich_text(struct zoho *zoho, const struct module_schema *schema,
			      struct json_object *records, char *err, size_t errlen)
{
	const char **rich = xcalloc(schema->ncols ? schema->ncols : 1, sizeof(*rich));
	size_t nrich = 0;
	enum rc rc = RC_OK;

	for (size_t i = 0; i < schema->ncols; i++) {
		if (schema->cols[i].rich_text)
			rich[nrich++] = schema->cols[i].api_name;
	}
	size_t n = nrich ? json_object_array_length(records) : 0;
	for (size_t r = 0; r < n && !rc; r++) {
		struct json_object *rec = json_object_array_get_idx(records, r), *v, *full = NULL;
		bool cut = false;
		for (size_t k = 0; k < nrich && !cut; k++)
			cut = json_object_object_get_ex(rec, rich[k], &v) &&
			      json_object_is_type(v, json_type_string) &&
			      fetch_rich_truncated(json_object_get_string(v));
		if (!cut || !json_object_object_get_ex(rec, "id", &v))
			continue;
		int64_t id = strtoll(json_object_get_string(v), NULL, 10);
		rc = zoho_rich_text(zoho, schema->module, id, rich, nrich, &full);
		if (rc) {
			snprintf(err, errlen, "%s", zoho_error(zoho));
			break;
		}
		for (size_t k = 0; full && k < nrich; k++) {
			if (json_object_object_get_ex(full, rich[k], &v))
				json_object_object_add(rec, rich[k], json_object_get(v));
		}
		json_object_put(full);
	}
	free(rich);
	return rc;
}

/* Fetch ids from Zoho with every field of the schema. */
static enum rc get_records(struct zoho *zoho, const struct module_schema *schema,
			   const int64_t *ids, size_t n, struct json_object **records, char *err,
			   size_t errlen)
{
	const char **fields = xcalloc(schema->ncols, sizeof(*fields));
	size_t nf = 0;
	enum rc rc;

	for (size_t i = 0; i < schema->ncols; i++) {
		if (strcmp(schema->cols[i].column, "id") != 0 && wanted(&schema->cols[i]))
			fields[nf++] = schema->cols[i].api_name;
	}
	rc = zoho_get_records_all_fields(zoho, schema->module, ids, n, fields, nf, records);
	if (rc)
		snprintf(err, errlen, "%s", zoho_error(zoho));
	else if ((rc = full_rich_text(zoho, schema, *records, err, errlen)) != RC_OK) {
		json_object_put(*records);
		*records = NULL;
	}
	free(fields);
	return rc;
}

/* Did Zoho refuse a field we asked for (renamed or removed since our
 * metadata)? Then the caller reads the metadata again (schemasync.h). */
static void note_refused_field(enum rc rc, const char *err, struct fetch_stats *st)
{
	if (rc == RC_ZOHO && strstr(err, "INVALID_DATA") && strstr(err, "api_name"))
		st->schema_stale = true;
}

/* Fetch ids one by one with the single-record GET, the only call that
 * returns subforms. What Zoho returned is in *records even when a later
 * call failed (rc). */
static enum rc get_records_by_id(struct zoho *zoho, const struct module_schema *schema,
				 const int64_t *ids, size_t n, struct json_object **records,
				 char *err, size_t errlen)
{
	*records = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *rec = NULL;
		enum rc rc = zoho_get_record(zoho, schema->module, ids[i], &rec);
		if (rc) {
			snprintf(err, errlen, "%s", zoho_error(zoho));
			return rc;
		}
		if (rec)
			json_object_array_add(*records, rec);
	}
	return RC_OK;
}

/* Has the module a field only the single-record GET returns (subform.h)? */
static bool needs_single_get(const struct module_schema *schema)
{
	for (size_t i = 0; i < schema->ncols; i++)
		if (schema->cols[i].listed && schema->cols[i].kind == FIELD_IDS)
			return true;
	return false;
}

/* Has the module a field Bulk Read does not export (besides subforms)? */
static bool has_unexported(const struct module_schema *schema)
{
	for (size_t i = 0; i < schema->ncols; i++)
		if (schema->cols[i].listed && subform_unexported_column(&schema->cols[i]))
			return true;
	return false;
}

/* Fetch one batch of ids. A module with a multiselectlookup or
 * multiuserlookup field takes n single-record GETs (Get Records by ids
 * leaves those fields out, and the merge would store NULL). One with
 * subforms takes the cheaper of n
 * single-record GETs (records with their lines) and Get Records of the ids
 * plus the listing of every line of its subforms (*listing: the caller
 * loads the lines after the merge); shared/zoho-api.md §4.3. */
static enum rc get_batch(struct db *data, struct zoho *zoho, const struct module_schema *schema,
			 const struct subform_set *set, const int64_t *ids, size_t n,
			 struct json_object **records, bool *listing, char *err, size_t errlen)
{
	long lines = 0, lcalls = 0;

	*listing = false;
	*records = NULL;
	bool single = needs_single_get(schema);
	if ((!set || set->n == 0) && !single)
		return get_records(zoho, schema, ids, n, records, err, errlen);
	if (!single && subform_count_lines(data, set, &lines, &lcalls) == RC_OK &&
	    subform_listing_cheaper(n, zoho_fetch_calls(n, schema->ncols - 1), lcalls)) {
		*listing = true;
		return get_records(zoho, schema, ids, n, records, err, errlen);
	}
	return get_records_by_id(zoho, schema, ids, n, records, err, errlen);
}

/* After a batch merged by Get Records: its lines by the listing. A failure
 * leaves them stale (fetch_after_bulk repairs them) and is a warning. */
static void load_listed_lines(struct db *data, struct zoho *zoho, const struct subform_set *set,
			      const int64_t *ids, size_t n)
{
	struct subform_stats ss = {0};
	char err[512] = "";

	if (subform_listing_load(data, zoho, set, ids, n, &ss, err, sizeof(err)) != RC_OK)
		log_warn("cannot load the line items of fetched records; they stay stale",
			 "err=%s", log_q(err));
}

static bool returned(struct json_object *records, int64_t id)
{
	size_t n = json_object_array_length(records);
	for (size_t i = 0; i < n; i++) {
		struct json_object *v;
		if (json_object_object_get_ex(json_object_array_get_idx(records, i), "id", &v) &&
		    strtoll(json_object_get_string(v), NULL, 10) == id)
			return true;
	}
	return false;
}

static enum rc settle(struct db *data, const struct module_schema *schema, const int64_t *ids,
		      char *const *times, const bool *returned, size_t n, const char *why);

/* One transaction: merge the records and, for claimed ids (ids not NULL),
 * settle them (below). */
static enum rc merge_txn(struct db *data, const struct module_schema *schema,
			 const struct subform_set *set, struct json_object *records, int64_t asked,
			 enum merge_rule rule,
			 const int64_t *ids, char *const *times, const bool *got, size_t n,
			 long *applied, char *err, size_t errlen)
{
	struct subform_stats ss = {0};
	enum rc rc = db_begin(data);
	if (!rc)
		rc = merge_records(data, schema, records, asked, rule, applied, err, errlen);
	/* The lines, in the parent's transaction (subform.h). */
	if (!rc && set && set->n)
		rc = subform_write_records(data, set, records, asked, &ss);
	if (!rc && ids)
		rc = settle(data, schema, ids, times, got, n, "not returned by Zoho");
	if (!rc)
		rc = db_commit(data);
	if (rc) {
		if (!err[0])
			snprintf(err, errlen, "%s", db_error(data));
		db_rollback(data);
	}
	return rc;
}

static enum rc fetch_ids_rule(struct db *data, struct zoho *zoho,
			      const struct module_schema *schema, const int64_t *ids, size_t n,
			      enum merge_rule rule, struct fetch_stats *st, char *err,
			      size_t errlen)
{
	struct subform_set *set = NULL;
	enum rc rc = subform_load_set(data, schema->module, &set);

	if (rc) {
		snprintf(err, errlen, "%s", db_error(data));
		return rc;
	}
	for (size_t off = 0; off < n; off += FETCH_BATCH) {
		size_t k = n - off < FETCH_BATCH ? n - off : FETCH_BATCH;
		struct json_object *records = NULL;
		long applied = 0;
		bool listing = false;
		int64_t asked = (int64_t)time(NULL) - FETCH_SKEW_MARGIN;
		rc = get_batch(data, zoho, schema, set, ids + off, k, &records, &listing, err,
			       errlen);
		note_refused_field(rc, err, st);
		if (rc) {
			json_object_put(records);
			break;
		}
		st->returned += (long)json_object_array_length(records);
		rc = merge_txn(data, schema, set, records, asked, rule, NULL, NULL, NULL, 0, &applied,
			       err, errlen);
		json_object_put(records);
		if (rc)
			break;
		if (listing)
			load_listed_lines(data, zoho, set, ids + off, k);
		st->applied += applied;
	}
	subform_set_free(set);
	return rc;
}

enum rc fetch_ids(struct db *data, struct zoho *zoho, const struct module_schema *schema,
		  const int64_t *ids, size_t n, struct fetch_stats *st, char *err, size_t errlen)
{
	return fetch_ids_rule(data, zoho, schema, ids, n, MERGE_FETCH, st, err, errlen);
}

enum rc fetch_backfill_ids(struct db *data, struct zoho *zoho, const struct module_schema *schema,
			   const int64_t *ids, size_t n, struct fetch_stats *st, char *err,
			   size_t errlen)
{
	return fetch_ids_rule(data, zoho, schema, ids, n, MERGE_BACKFILL, st, err, errlen);
}

/* Ids claimed for one fetch, distinct, each with the newest server_time
 * that asked for it (timestamptz text; NULL for a dirty row without one). */
struct claim {
	int64_t *ids;
	char **times;
	size_t n;
	int64_t *gone_ids; /* tombstoned since they were notified: not fetched */
	char **gone_times;
	size_t ngone;
	char *queued; /* fetch_queue rows leased ({inbox ids}), or NULL */
};

static void claim_free(struct claim *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->times[i]);
	for (size_t i = 0; i < c->ngone; i++)
		free(c->gone_times[i]);
	free(c->times);
	free(c->ids);
	free(c->gone_times);
	free(c->gone_ids);
	free(c->queued);
	memset(c, 0, sizeof(*c));
}

/* Rows of (id, time[, …, gone]): ids whose column `gone_col` is true (a
 * tombstone since the notification) go to c->gone_*, not to be fetched. */
static void claim_take(struct claim *c, struct db_res *res, int gone_col)
{
	size_t rows = (size_t)db_res_rows(res);
	if (rows == 0)
		return;
	c->ids = xcalloc(rows, sizeof(*c->ids));
	c->times = xcalloc(rows, sizeof(*c->times));
	c->gone_ids = xcalloc(rows, sizeof(*c->gone_ids));
	c->gone_times = xcalloc(rows, sizeof(*c->gone_times));
	for (size_t i = 0; i < rows; i++) {
		const char *t = db_res_get(res, (int)i, 1), *g;
		bool gone = gone_col >= 0 && (g = db_res_get(res, (int)i, gone_col)) && g[0] == 't';
		size_t k = gone ? c->ngone++ : c->n++;
		(gone ? c->gone_ids : c->ids)[k] = strtoll(db_res_get(res, (int)i, 0), NULL, 10);
		(gone ? c->gone_times : c->times)[k] = t ? xstrdup(t) : NULL;
	}
}

/* Lease the oldest queued notifications of module, as many as add up to at
 * most FETCH_BATCH ids (at least one), for a minute per FETCH_BATCH ids. */
/* Lease queued notifications adding up to about FETCH_BATCH ids - once the
 * queue is due: its oldest notification was received delay_ms ago, or it
 * holds a full call's worth of ids. Waiting lets the ids of notifications
 * that arrive close together share one Get Records call (1 credit). */
static enum rc claim_queued(struct db *data, const struct module_schema *schema, long delay_ms,
			    struct claim *c)
{
	struct db_res *res = NULL;
	char *qtable = db_quote_ident(data, schema->table);
	char *name = xasprintf("fetch_claim_queued_%s", schema->table);
	char lim[16], delay[24];
	enum rc rc;

	snprintf(lim, sizeof(lim), "%d", FETCH_BATCH);
	snprintf(delay, sizeof(delay), "%ld", delay_ms);
	char *sql = xasprintf(
		"WITH due AS ("
		"  SELECT coalesce(min(coalesce(i.received_at, '-infinity'))"
		"   <= now() - $3::int * interval '1 millisecond', false)"
		"   OR coalesce(sum(cardinality(q.ids)), 0) >= $2::int AS ok"
		"  FROM fetch_queue q LEFT JOIN inbox i ON i.id = q.inbox_id"
		"  WHERE q.module = $1 AND (q.lease_until IS NULL OR q.lease_until <= now())),"
		" cand AS ("
		"  SELECT inbox_id, sum(cardinality(ids)) OVER (ORDER BY inbox_id) AS upto"
		"  FROM (SELECT inbox_id, ids FROM fetch_queue WHERE module = $1"
		"   AND (lease_until IS NULL OR lease_until <= now()) AND (SELECT ok FROM due)"
		"   ORDER BY inbox_id LIMIT $2::int FOR UPDATE SKIP LOCKED) f),"
		" claimed AS ("
		"  UPDATE fetch_queue q SET lease_until = now()"
		"   + interval '60 seconds' * ceil(cardinality(q.ids) / $2::numeric)"
		"  FROM cand WHERE q.inbox_id = cand.inbox_id"
		"   AND (cand.upto <= $2::int OR cand.upto = (SELECT min(upto) FROM cand))"
		"  RETURNING q.inbox_id, q.ids, q.server_time)"
		" SELECT w.id, w.t::text, (SELECT array_agg(inbox_id)::text FROM claimed),"
		"  EXISTS (SELECT 1 FROM %s r WHERE r.id = w.id AND r.deleted_at >= w.t)"
		" FROM (SELECT x.id, max(c.server_time) AS t"
		"  FROM claimed c, unnest(c.ids) AS x(id) GROUP BY x.id) w ORDER BY w.id",
		qtable);
	rc = db_prepared(data, name, sql, 3, (const char *[]){schema->module, lim, delay}, &res);
	if (!rc) {
		claim_take(c, res, 3);
		if (db_res_rows(res))
			c->queued = xstrdup(db_res_get(res, 0, 2));
	}
	db_res_free(res);
	free(sql);
	free(name);
	free(qtable);
	return rc;
}

/* Lease due ids of `dirty` (those an earlier fetch could not settle). */
static enum rc claim_dirty(struct db *data, const char *module, struct claim *c)
{
	struct db_res *res = NULL;
	char lim[16];
	enum rc rc;

	snprintf(lim, sizeof(lim), "%d", FETCH_BATCH);
	rc = db_prepared(data, "fetch_claim",
			 "UPDATE dirty d SET next_try = now() + interval '60 seconds',"
			 " attempts = d.attempts + 1"
			 " FROM (SELECT module, id FROM dirty WHERE module = $1"
			 "  AND next_try <= now() ORDER BY next_try, id LIMIT $2::int"
			 "  FOR UPDATE SKIP LOCKED) c"
			 " WHERE d.module = c.module AND d.id = c.id"
			 " RETURNING d.id, d.server_time::text",
			 2, (const char *[]){module, lim}, &res);
	if (rc)
		return rc;
	claim_take(c, res, -1);
	db_res_free(res);
	return RC_OK;
}

/* {"t1",NULL,…}: a timestamptz[] parameter (timestamptz text has no quote
 * or backslash to escape). */
static char *times_array(char *const *times, size_t n)
{
	struct buf b = {0};

	buf_addc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_addc(&b, ',');
		if (times[i])
			buf_printf(&b, "\"%s\"", times[i]);
		else
			buf_adds(&b, "NULL");
	}
	buf_addc(&b, '}');
	return buf_steal(&b);
}

/* {t,f,…}: a bool[] parameter. */
static char *bool_array(const bool *v, size_t n)
{
	struct buf b = {0};

	buf_addc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_addc(&b, ',');
		buf_addc(&b, v[i] ? 't' : 'f');
	}
	buf_addc(&b, '}');
	return buf_steal(&b);
}

/* After a fetch of ids[0..n): an id is settled when its record was returned
 * (returned[i]) or it is tombstoned at or after the time that asked for it;
 * its dirty row goes, unless a newer notification marked it meanwhile. The
 * rest stay in (or enter) dirty with exponential backoff and `why`. */
static enum rc settle(struct db *data, const struct module_schema *schema, const int64_t *ids,
		      char *const *times, const bool *returned, size_t n, const char *why)
{
	char *qtable = db_quote_ident(data, schema->table);
	char *name = xasprintf("fetch_settle_%s", schema->table);
	char *sql = xasprintf(
		"WITH x AS (SELECT * FROM unnest($2::bigint[], $3::timestamptz[], $4::bool[])"
		"  AS x(id, t, ok)),"
		" settled AS (SELECT x.id, x.t FROM x WHERE x.ok OR EXISTS (SELECT 1 FROM %s r"
		"  WHERE r.id = x.id AND r.deleted_at >= x.t)),"
		" done AS (DELETE FROM dirty d USING settled s WHERE d.module = $1 AND d.id = s.id"
		"  AND (d.server_time IS NULL OR s.t IS NULL OR d.server_time <= s.t))"
		" INSERT INTO dirty AS d (module, id, server_time, attempts, next_try, last_error)"
		" SELECT DISTINCT ON (x.id) $1, x.id, x.t, 1, now() + interval '10 seconds', $5 FROM x"
		" WHERE x.id NOT IN (SELECT id FROM settled) ORDER BY x.id, x.t DESC NULLS LAST"
		" ON CONFLICT (module, id) DO UPDATE SET last_error = excluded.last_error,"
		"  server_time = greatest(d.server_time, excluded.server_time),"
		"  next_try = now() + least(interval '1 hour',"
		"   interval '5 seconds' * power(2, least(d.attempts, 10)))",
		qtable);
	char *arr = db_int64_array(ids, n);
	char *tarr = times_array(times, n);
	char *oks = bool_array(returned, n);
	enum rc rc = db_prepared(data, name, sql, 5,
				 (const char *[]){schema->module, arr, tarr, oks, why}, NULL);
	free(oks);
	free(tarr);
	free(arr);
	free(sql);
	free(name);
	free(qtable);
	return rc;
}

/* Fetch the claimed ids FETCH_BATCH at a time, merge what Zoho returns and
 * settle every id. A failed call leaves its ids, and the rest of the claim,
 * in dirty with backoff, and ends the claim with that error. */
static enum rc fetch_claim(struct db *data, struct zoho *zoho, const struct module_schema *schema,
			   const struct subform_set *set, const struct claim *c,
			   struct fetch_stats *st, char *err, size_t errlen)
{
	bool *got = xcalloc(c->n ? c->n : 1, sizeof(*got));
	struct json_object *records = NULL;
	enum rc rc = RC_OK;

	if (c->ngone) {
		bool *yes = xcalloc(c->ngone, sizeof(*yes));
		for (size_t i = 0; i < c->ngone; i++)
			yes[i] = true;
		rc = settle(data, schema, c->gone_ids, c->gone_times, yes, c->ngone, "");
		free(yes);
		if (rc) {
			snprintf(err, errlen, "%s", db_error(data));
			goto out;
		}
	}

	for (size_t off = 0; off < c->n; off += FETCH_BATCH) {
		size_t k = c->n - off < FETCH_BATCH ? c->n - off : FETCH_BATCH;
		int64_t asked = (int64_t)time(NULL) - FETCH_SKEW_MARGIN;
		long applied = 0;
		bool listing = false;

		rc = get_batch(data, zoho, schema, set, c->ids + off, k, &records, &listing, err,
			       errlen);
		note_refused_field(rc, err, st);
		if (rc && (!records || json_object_array_length(records) == 0)) {
			/* Nothing is lost: the ids wait in dirty for their next try
			 * (or, if even that fails, in the queue for the lease to
			 * lapse). */
			if (settle(data, schema, c->ids + off, c->times + off, got + off, c->n - off,
				   err)) {
				log_warn("cannot record fetch failure", "err=%s",
					 log_q(db_error(data)));
				goto out;
			}
			break;
		}
		/* Single-record GETs that failed part way: merge what came, the
		 * rest of the claim waits in dirty with the error. */
		enum rc call_rc = rc;
		char why_text[512];
		snprintf(why_text, sizeof(why_text), "%s", call_rc ? err : "");
		st->returned += (long)json_object_array_length(records);
		for (size_t i = off; i < off + k; i++) {
			got[i] = returned(records, c->ids[i]);
			if (!got[i] && !call_rc)
				st->missing++;
		}
		err[0] = '\0';
		rc = merge_txn(data, schema, set, records, asked, MERGE_FETCH, c->ids + off,
			       c->times + off, got + off, k, &applied, err, errlen);
		if (rc)
			goto out;
		st->applied += applied;
		if (call_rc) {
			/* Every id of the claim is merged or in dirty: the queued
			 * notifications go (below), as after any failed call. */
			snprintf(err, errlen, "%s", why_text);
			if (k < c->n - off &&
			    settle(data, schema, c->ids + off + k, c->times + off + k, got + off + k,
				   c->n - off - k, why_text))
				log_warn("cannot record fetch failure", "err=%s",
					 log_q(db_error(data)));
			rc = call_rc;
			break;
		}
		if (listing)
			load_listed_lines(data, zoho, set, c->ids + off, k);
		json_object_put(records);
		records = NULL;
	}
	/* Every id of the queued notifications is merged or in dirty now. */
	if (c->queued &&
	    db_prepared(data, "fetch_dequeue",
			"DELETE FROM fetch_queue WHERE inbox_id = ANY($1::bigint[])", 1,
			(const char *[]){c->queued}, NULL)) {
		if (!rc)
			snprintf(err, errlen, "%s", db_error(data));
		rc = rc ? rc : RC_DB;
	}
out:
	json_object_put(records);
	free(got);
	return rc;
}

enum rc fetch_dirty(struct db *data, struct zoho *zoho, const char *module, size_t max_batches,
		    struct fetch_stats *st, char *err, size_t errlen)
{
	struct fetch_opts o = {max_batches, 0, true};
	return fetch_dirty_opts(data, zoho, module, &o, st, err, errlen);
}

enum rc fetch_dirty_opts(struct db *data, struct zoho *zoho, const char *module,
			 const struct fetch_opts *o, struct fetch_stats *st, char *err,
			 size_t errlen)
{
	struct module_schema *schema = NULL;
	struct subform_set *set = NULL;
	struct claim c = {0};
	enum rc rc;

	memset(st, 0, sizeof(*st));
	err[0] = '\0';
	rc = schema_load(data, module, &schema);
	if (rc)
		return rc;
	rc = subform_load_set(data, module, &set);
	if (rc) {
		snprintf(err, errlen, "%s", db_error(data));
		module_schema_free(schema);
		return rc;
	}
	/* Queued notifications first (the newest changes), then due retries. */
	for (size_t batch = 0; batch < o->max_batches; batch++) {
		rc = claim_queued(data, schema, o->delay_ms, &c);
		if (!rc && !c.queued && o->retries)
			rc = claim_dirty(data, module, &c);
		if (rc) {
			snprintf(err, errlen, "%s", db_error(data));
			break;
		}
		if (c.n == 0 && !c.queued)
			break;
		st->claimed += (long)c.n;
		rc = fetch_claim(data, zoho, schema, set, &c, st, err, errlen);
		claim_free(&c);
		if (rc)
			break;
	}
	claim_free(&c);
	subform_set_free(set);
	module_schema_free(schema);
	return rc;
}

/* Live rows a bulk export wrote last (source 'bulk'): their fields Bulk
 * Read does not export are missing or older. Fetched by id (fetch_ids
 * chooses the call). */
static enum rc fetch_bulk_written(struct db *data, struct zoho *zoho,
				  const struct module_schema *schema, struct fetch_after_bulk_stats *ls,
				  char *err, size_t errlen)
{
	struct db_res *res = NULL;
	struct fetch_stats fs = {0};
	char *qtable = db_quote_ident(data, schema->table);
	char *sql = xasprintf("SELECT id FROM %s WHERE deleted_at IS NULL AND source = 'bulk'"
			      " ORDER BY id", qtable);
	int64_t *ids = NULL;
	enum rc rc = db_exec(data, sql, 0, NULL, &res);

	if (rc) {
		snprintf(err, errlen, "%s", db_error(data));
		goto out;
	}
	size_t n = (size_t)db_res_rows(res);
	ids = xcalloc(n ? n : 1, sizeof(*ids));
	for (size_t i = 0; i < n; i++)
		ids[i] = strtoll(db_res_get(res, (int)i, 0), NULL, 10);
	if (n) {
		long before = zoho_credits_spent(zoho, ZOHO_EP__COUNT);
		rc = fetch_ids(data, zoho, schema, ids, n, &fs, err, errlen);
		ls->filled = fs.applied;
		ls->fill_credits = zoho_credits_spent(zoho, ZOHO_EP__COUNT) - before;
		log_info("fields Bulk Read does not export filled by REST", "records=%zu"
			 " applied=%ld credits=%ld", n, fs.applied, ls->fill_credits);
	}
out:
	db_res_free(res);
	free(ids);
	free(sql);
	free(qtable);
	return rc;
}

enum rc fetch_after_bulk(struct db *data, struct zoho *zoho, const char *module,
			  struct fetch_after_bulk_stats *ls, char *err, size_t errlen)
{
	struct module_schema *schema = NULL;
	struct subform_set *set = NULL;
	struct subform_stats ss = {0};
	struct fetch_stats fs = {0};
	int64_t *ids = NULL;
	size_t n = 0;
	long lines = 0, lcalls = 0;
	enum rc rc;

	memset(ls, 0, sizeof(*ls));
	err[0] = '\0';
	rc = schema_load(data, module, &schema);
	if (!rc)
		rc = subform_load_set(data, module, &set);
	if (rc) {
		snprintf(err, errlen, "%s", db_error(data));
		goto out;
	}
	/* First the fields Bulk Read does not export: a module that needs the
	 * single-record GET gets its lines with them. */
	if (has_unexported(schema)) {
		rc = fetch_bulk_written(data, zoho, schema, ls, err, errlen);
		if (rc)
			goto out;
	}
	if (set->n)
		rc = subform_stale_parents(data, set, &ids, &n);
	if (!rc && n)
		rc = subform_count_lines(data, set, &lines, &lcalls);
	if (rc) {
		snprintf(err, errlen, "%s", db_error(data));
		goto out;
	}
	if (n == 0)
		goto out;
	ls->stale = (long)n;
	ls->by_id_cost = (long)n;
	ls->listing_cost = lcalls;
	/* The listing reads every line of the subforms, whatever the parent;
	 * by id, one GET per stale parent. A first load has no lines yet, so
	 * its listing is priced at a call per subform: the cheapest. */
	if (subform_listing_cheaper(n, 0, lcalls)) {
		ls->listing = true;
		rc = subform_listing_load(data, zoho, set, NULL, 0, &ss, err, errlen);
	} else {
		rc = fetch_ids(data, zoho, schema, ids, n, &fs, err, errlen);
	}
	ls->calls = ls->listing ? ss.calls : (long)n;
	ls->lines = ss.staged;
	ls->parents = ls->listing ? ss.parents : fs.applied;
	log_info("line items refreshed", "stale=%ld path=%s calls=%ld lines=%ld",
		 ls->stale, ls->listing ? "listing" : "by_id", ls->calls, ls->lines);
out:
	free(ids);
	subform_set_free(set);
	module_schema_free(schema);
	return rc;
}
