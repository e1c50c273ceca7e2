/* fetch.c — fetch dirty records and merge them (see fetch.h). */
#include "fetch.h"
#include "log.h"
#include "merge.h"

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

static enum rc merge_records(struct db *data, const struct module_schema *schema,
			     struct json_object *records, int64_t asked, long *applied, char *err,
			     size_t errlen)
{
	const char **headers = xcalloc(schema->ncols, sizeof(*headers));
	struct merge_stage *stage = NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	long rows = 0;
	enum rc rc;

	for (size_t i = 0; i < schema->ncols; i++)
		headers[i] = schema->cols[i].api_name;
	rc = merge_stage_begin(data, schema, headers, schema->ncols, &stage, err, errlen);
	if (rc)
		goto out;
	size_t n = json_object_array_length(records);
	for (size_t r = 0; r < n; r++) {
		struct json_object *rec = json_object_array_get_idx(records, r);
		len = 0;
		for (size_t i = 0; i < schema->ncols; i++) {
			struct json_object *v = NULL;
			char *cell = NULL;
			if (json_object_object_get_ex(rec, schema->cols[i].api_name, &v))
				cell = schema_json_cell(v, schema->cols[i].kind);
			if (i)
				csv_append_char(&buf, &len, &cap, ',');
			csv_append_cell(&buf, &len, &cap, cell, cell ? strlen(cell) : 0);
			free(cell);
		}
		csv_append_char(&buf, &len, &cap, '\n');
		rc = merge_stage_put(stage, buf, len);
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
	rc = merge_apply(stage, MERGE_FETCH, asked, "fetch", applied, err, errlen);
out:
	merge_stage_free(stage);
	free(buf);
	free(headers);
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
		if (strcmp(schema->cols[i].column, "id") != 0)
			fields[nf++] = schema->cols[i].api_name;
	}
	rc = zoho_get_records_all_fields(zoho, schema->module, ids, n, fields, nf, records);
	if (rc)
		snprintf(err, errlen, "%s", zoho_error(zoho));
	free(fields);
	return rc;
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

enum rc fetch_ids(struct db *data, struct zoho *zoho, const struct module_schema *schema,
		  const int64_t *ids, size_t n, struct fetch_stats *st, char *err, size_t errlen)
{
	enum rc rc = RC_OK;

	for (size_t off = 0; off < n; off += FETCH_BATCH) {
		size_t k = n - off < FETCH_BATCH ? n - off : FETCH_BATCH;
		struct json_object *records = NULL;
		long applied = 0;
		int64_t asked = (int64_t)time(NULL) - FETCH_SKEW_MARGIN;
		rc = get_records(zoho, schema, ids + off, k, &records, err, errlen);
		if (rc)
			return rc;
		st->returned += (long)json_object_array_length(records);
		rc = db_begin(data);
		if (!rc)
			rc = merge_records(data, schema, records, asked, &applied, err, errlen);
		if (!rc)
			rc = db_commit(data);
		if (rc) {
			if (!err[0])
				snprintf(err, errlen, "%s", db_error(data));
			db_rollback(data);
		}
		json_object_put(records);
		if (rc)
			return rc;
		st->applied += applied;
	}
	return rc;
}

enum rc fetch_dirty(struct db *data, struct zoho *zoho, const char *module, size_t max_batches,
		    struct fetch_stats *st, char *err, size_t errlen)
{
	struct module_schema *schema = NULL;
	struct db_res *res = NULL;
	struct json_object *records = NULL;
	int64_t *ids = NULL;
	char **times = NULL;
	size_t n = 0;
	enum rc rc;

	memset(st, 0, sizeof(*st));
	err[0] = '\0';
	rc = schema_load(data, module, &schema);
	if (rc)
		return rc;
	for (size_t batch = 0; batch < max_batches; batch++) {
		char lim[16];
		snprintf(lim, sizeof(lim), "%d", FETCH_BATCH);
		/* Lease due ids for a minute; a crash just lets the lease lapse. */
		rc = db_prepared(data, "fetch_claim",
				 "UPDATE dirty d SET next_try = now() + interval '60 seconds',"
				 " attempts = d.attempts + 1"
				 " FROM (SELECT module, id FROM dirty WHERE module = $1"
				 "  AND next_try <= now() ORDER BY next_try, id LIMIT $2::int"
				 "  FOR UPDATE SKIP LOCKED) c"
				 " WHERE d.module = c.module AND d.id = c.id"
				 " RETURNING d.id, d.server_time::text, d.attempts",
				 2, (const char *[]){module, lim}, &res);
		if (rc) {
			snprintf(err, errlen, "%s", db_error(data));
			goto out;
		}
		n = (size_t)db_res_rows(res);
		if (n == 0)
			break;
		ids = xcalloc(n, sizeof(*ids));
		times = xcalloc(n, sizeof(*times));
		for (size_t i = 0; i < n; i++) {
			ids[i] = strtoll(db_res_get(res, (int)i, 0), NULL, 10);
			const char *t = db_res_get(res, (int)i, 1);
			times[i] = t ? xstrdup(t) : NULL;
		}
		db_res_free(res);
		res = NULL;
		st->claimed += (long)n;

		int64_t asked = (int64_t)time(NULL) - FETCH_SKEW_MARGIN;
		rc = get_records(zoho, schema, ids, n, &records, err, errlen);
		if (rc) {
			/* The lease expires and the ids come due again: none lost. */
			char *arr = db_int64_array(ids, n);
			if (db_prepared(data, "fetch_failed",
					"UPDATE dirty SET last_error = $3,"
					" next_try = now() + least(interval '1 hour',"
					"  interval '5 seconds' * power(2, least(attempts, 10)))"
					" WHERE module = $1 AND id = ANY($2::bigint[])",
					3, (const char *[]){module, arr, err}, NULL))
				log_warn("cannot record fetch failure", "err=%s", log_q(db_error(data)));
			free(arr);
			goto out;
		}
		st->returned += (long)json_object_array_length(records);
		long applied = 0;
		rc = db_begin(data);
		if (!rc)
			rc = merge_records(data, schema, records, asked, &applied, err, errlen);
		if (rc)
			goto txfail;
		st->applied += applied;
		for (size_t i = 0; i < n; i++) {
			char id[24];
			snprintf(id, sizeof(id), "%" PRId64, ids[i]);
			if (returned(records, ids[i])) {
				/* Done, unless a newer notification re-marked it meanwhile. */
				rc = db_prepared(data, "fetch_done",
						 "DELETE FROM dirty WHERE module = $1 AND id = $2::bigint"
						 " AND server_time IS NOT DISTINCT FROM $3::timestamptz",
						 3, (const char *[]){module, id, times[i]}, NULL);
			} else {
				st->missing++;
				rc = db_prepared(data, "fetch_missing",
						 "UPDATE dirty SET last_error = 'not returned by Zoho',"
						 " next_try = now() + least(interval '1 hour',"
						 "  interval '5 seconds' * power(2, least(attempts, 10)))"
						 " WHERE module = $1 AND id = $2::bigint",
						 2, (const char *[]){module, id}, NULL);
			}
			if (rc)
				goto txfail;
		}
		rc = db_commit(data);
		if (rc)
			goto txfail;
		json_object_put(records);
		records = NULL;
		for (size_t i = 0; i < n; i++)
			free(times[i]);
		free(times);
		free(ids);
		times = NULL;
		ids = NULL;
		if (n < FETCH_BATCH)
			break;
	}
	goto out;
txfail:
	if (!err[0])
		snprintf(err, errlen, "%s", db_error(data));
	db_rollback(data);
out:
	db_res_free(res);
	json_object_put(records);
	if (times) {
		for (size_t i = 0; i < n; i++)
			free(times[i]);
	}
	free(times);
	free(ids);
	module_schema_free(schema);
	return rc;
}
