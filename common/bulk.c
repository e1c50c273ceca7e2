/* bulk.c — paged Bulk Read export with checkpoints (see bulk.h). */
#include "bulk.h"
#include "bulkload.h"
#include "credits.h"
#include "fetch.h"
#include "log.h"
#include "syncstate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Is name one of our downloads of module: zcrm-<module>-<job>-XXXXXX? */
static bool is_download_of(const char *name, const char *module)
{
	size_t ml = strlen(module);
	if (strncmp(name, "zcrm-", 5) || strncmp(name + 5, module, ml) || name[5 + ml] != '-')
		return false;
	const char *p = name + 5 + ml + 1;
	if (!isdigit((unsigned char)*p))
		return false;
	while (isdigit((unsigned char)*p))
		p++;
	return *p == '-' && strlen(p + 1) == 6;
}

/* A process killed while it held a page leaves its ZIP behind (tens of MB
 * a page). Each download is flock()ed while in use, so a file we can lock
 * is nobody's: a run of another deployment sharing work_dir keeps its own. */
static void remove_stale_downloads(const char *work_dir, const char *module)
{
	DIR *d = opendir(work_dir);
	struct dirent *e;
	long removed = 0;

	if (!d)
		return; /* the download itself reports a missing work_dir */
	while ((e = readdir(d))) {
		if (!is_download_of(e->d_name, module))
			continue;
		int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			if (unlinkat(dirfd(d), e->d_name, 0) == 0)
				removed++;
			else
				log_warn("cannot remove a stale download", "file=%s err=%s",
					 log_q(e->d_name), log_q(strerror(errno)));
		}
		close(fd);
	}
	closedir(d);
	if (removed)
		log_info("removed downloads left by a killed run", "count=%ld work_dir=%s", removed,
			 log_q(work_dir));
}

/* Did the webhook receive Zoho's callback for job? A hint to poll now. */
static bool callback_seen(struct db *db, int64_t job)
{
	char id[24], *v = NULL;
	snprintf(id, sizeof(id), "%" PRId64, job);
	if (db_query_value(db, "SELECT 1 FROM bulk_callbacks WHERE job_id = $1", 1,
			   (const char *[]){id}, &v) != RC_OK)
		return false;
	bool seen = v != NULL;
	free(v);
	return seen;
}

static void progress_line(const struct bulk_ctx *ctx, const char *module, int page,
			  const char *what, const struct bulk_result *res, double t0)
{
	if (!ctx->progress)
		return;
	double dt = now_s() - t0;
	fprintf(stderr, "\r\033[K%s page %d: %s — %ld records, %.1f MB, %.0f records/s", module,
		page, what, res->rows_seen, (double)res->bytes / 1e6,
		dt > 0 ? (double)res->rows_seen / dt : 0.0);
	fflush(stderr);
}

/* Poll the job until it completes or fails, backing off from 1 s to 30 s;
 * a callback for the job cuts the wait short. */
static enum rc wait_job(struct bulk_ctx *ctx, const char *module, int page, int64_t job,
			struct zoho_bulk_status *st, const struct bulk_result *res, double t0,
			char *err, size_t errlen)
{
	double deadline = now_s() + (double)ctx->cfg->bulk_wait;
	long wait_ms = 1000, cap = ctx->poll_cap_ms ? ctx->poll_cap_ms : 30000;
	enum rc rc;

	for (;;) {
		memset(st, 0, sizeof(*st));
		rc = zoho_bulk_status(ctx->zoho, job, st);
		if (rc) {
			snprintf(err, errlen, "%s", zoho_error(ctx->zoho));
			return rc;
		}
		if (st->state != ZOHO_BULK_RUNNING)
			return RC_OK;
		progress_line(ctx, module, page, st->state_text ? st->state_text : "waiting", res,
			      t0);
		zoho_bulk_status_free(st);
		if (now_s() > deadline) {
			snprintf(err, errlen,
				 "bulk job %" PRId64 " not complete after %ld s ([sync] bulk_wait)", job,
				 ctx->cfg->bulk_wait);
			return RC_TIMEOUT;
		}
		/* Sleep in 200 ms steps so SIGTERM and callbacks are noticed. */
		for (long slept = 0; slept < wait_ms; slept += 200) {
			if (ctx->stop && *ctx->stop)
				return RC_INTERRUPTED;
			if (slept % 1000 == 0 && slept && callback_seen(ctx->data, job))
				break;
			struct timespec ts = {0, 200 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		wait_ms = wait_ms * 2 > cap ? cap : wait_ms * 2;
	}
}

/* The rows of pages that lacked a known column wait in dirty: fetch them
 * now, with every field. A failure leaves them there (with backoff) for
 * the webhook or the next run, and is only a warning. */
static void fetch_deferred(struct bulk_ctx *ctx, const char *module, long deferred)
{
	struct fetch_stats fs;
	char err[512];

	log_info("fetching the rows the export could not give whole", "rows=%ld", deferred);
	if (fetch_dirty(ctx->data, ctx->zoho, module, SIZE_MAX, &fs, err, sizeof(err)) != RC_OK)
		log_warn("fetch of the rows the export could not give whole failed; they stay dirty",
			 "err=%s", log_q(err));
	else
		log_info("fetched the rows the export could not give whole",
			 "claimed=%ld returned=%ld missing=%ld", fs.claimed, fs.returned, fs.missing);
}

/* Merge the downloaded page and move the checkpoint, in one transaction. */
static enum rc merge_page(struct bulk_ctx *ctx, const char *module,
			  const struct module_schema *schema, const char *kind, const char *zip,
			  int page, bool more, int64_t expected, int64_t started, int64_t from,
			  int64_t to, enum merge_rule rule, struct bulkload_stats *ls, char *err,
			  size_t errlen)
{
	struct zipstream_limits lim = {(uint64_t)ctx->cfg->max_unzipped,
				       (uint64_t)ctx->cfg->max_ratio, 1u << 20};
	enum rc rc;

	rc = db_begin(ctx->data);
	if (rc)
		goto dberr;
	struct bulkload_opts bo = {rule, started, "bulk", ctx->ids_only, true, 0};
	rc = bulkload_zip(ctx->data, schema, zip, &lim, &bo, ls, err, errlen);
	if (rc) {
		/* Name the page: "not a zip file" alone does not say which. */
		char *why = xstrdup(err);
		snprintf(err, errlen, "page %d: %s", page, why);
		free(why);
		goto fail;
	}
	/* A line holding only "\." ends COPY early without an error: the row
	 * count is the only witness. */
	if (expected >= 0 && ls->rows_staged != expected) {
		snprintf(err, errlen, "page %d: the CSV held %ld rows but Zoho reported %" PRId64,
			 page, ls->rows_staged, expected);
		rc = RC_BADINPUT;
		goto fail;
	}
	if (!ctx->ids_only) {
		if (ls->missing[0])
			log_warn("export lacks known columns; its rows are fetched by id instead",
				 "page=%d columns=%s rows=%ld hint=%s", page, log_q(ls->missing),
				 ls->rows_deferred,
				 log_q("a field hidden from the API user by field-level permission, "
				       "or renamed: check the user's profile (a rename is followed at "
				       "the fields metadata's next read)"));
		if (ls->extra[0])
			log_info("export has columns the fields metadata does not know",
				 "page=%d columns=%s hint=%s", page, log_q(ls->extra),
				 log_q("a field added or renamed in Zoho: its column and values "
				       "follow the fields metadata's next read"));
		rc = sync_set_export_columns(ctx->data, module, ls->missing, ls->extra,
					     ls->rows_deferred);
		if (rc)
			goto dberr;
	}
	if (more)
		rc = sync_set_bulk(ctx->data, module, kind, page + 1, 0, started, from, to);
	else
		rc = db_prepared(ctx->data, "bulk_done",
				 "UPDATE sync_state SET bulk_state = 'done', bulk_job_id = NULL,"
				 " updated_at = now() WHERE module = $1",
				 1, (const char *[]){module}, NULL);
	if (rc)
		goto dberr;
	rc = db_commit(ctx->data);
	if (rc)
		goto dberr;
	return RC_OK;
dberr:
	snprintf(err, errlen, "%s", db_error(ctx->data));
fail:
	db_rollback(ctx->data);
	return rc;
}

enum rc bulk_export(struct bulk_ctx *ctx, const char *module, const struct module_schema *schema,
		    const char *kind, int64_t from, int64_t to, enum merge_rule rule,
		    struct bulk_result *res, char *err, size_t errlen)
{
	struct sync_row row;
	struct zoho_bulk_status st;
	char zip[4096] = "";
	double t0 = now_s();
	int page = 1;
	int64_t job = 0, started = 0;
	int zip_fd = -1;
	enum rc rc;

	memset(res, 0, sizeof(*res));
	memset(&st, 0, sizeof(st));
	/* A bulk job costs 50 credits, a reconcile one per 200,000 records:
	 * when Zoho says the org is running out, sweeps wait and the credits
	 * left go to fetching notified records. A first load runs by hand. */
	if (strcmp(kind, "initial")) {
		rc = credits_guard(ctx->data, ctx->cfg, zoho_credits_remaining(ctx->zoho), kind);
		if (rc) {
			snprintf(err, errlen,
				 "%s export deferred: Zoho API credits below [zoho] credit_floor", kind);
			return rc;
		}
	}
	remove_stale_downloads(ctx->cfg->work_dir, module);
	rc = sync_get(ctx->data, module, &row);
	if (rc)
		goto dberr;
	/* Reconcile collects ids in a session table: it always starts afresh. */
	if (!ctx->ids_only && !strcmp(row.bulk_kind, kind) && row.bulk_page > 0 &&
	    row.bulk_from == from && row.bulk_to == to) {
		/* An export of the same kind and window was interrupted: resume. */
		page = row.bulk_page;
		job = row.bulk_job_id;
		started = row.bulk_started;
		log_info("resuming export", "kind=%s page=%d job=%" PRId64, kind, page, job);
	} else {
		rc = sync_set_bulk(ctx->data, module, kind, 1, 0, 0, from, to);
		if (rc)
			goto dberr;
	}

	for (;;) {
		if (ctx->stop && *ctx->stop) {
			rc = RC_INTERRUPTED;
			snprintf(err, errlen, "interrupted");
			goto out;
		}
		if (!job) {
			struct zoho_bulk_query q = {
				.module = module,
				.from = from,
				.to = to,
				.page = page,
				.fields = ctx->fields,
				.nfields = ctx->nfields,
				.callback_url = ctx->cfg->callback_url,
			};
			int64_t created = 0;
			rc = zoho_bulk_create(ctx->zoho, &q, &job, &created);
			if (rc) {
				snprintf(err, errlen, "%s", zoho_error(ctx->zoho));
				goto out;
			}
			if (!started)
				started = created ? created : (int64_t)time(NULL);
			rc = sync_set_bulk(ctx->data, module, kind, page, job, started, from, to);
			if (rc)
				goto dberr;
			log_debug("export checkpoint", "kind=%s page=%d job=%" PRId64, kind, page, job);
		}
		rc = wait_job(ctx, module, page, job, &st, res, t0, err, errlen);
		if (rc == RC_NOTFOUND) {
			/* Zoho forgot the job (results expire after a day): again. */
			log_warn("bulk job gone; creating a new one", "job=%" PRId64, job);
			job = 0;
			continue;
		}
		if (rc)
			goto out;
		if (st.state == ZOHO_BULK_FAILED) {
			snprintf(err, errlen, "bulk job %" PRId64 " failed: %s", job,
				 st.error ? st.error : "no reason given");
			/* Forget the job so that a re-run creates a fresh one. */
			if (sync_set_bulk(ctx->data, module, kind, page, 0, started, from, to))
				log_warn("cannot reset the failed job", "err=%s",
					 log_q(db_error(ctx->data)));
			rc = RC_ZOHO;
			goto out;
		}
		if (!st.download_url) {
			snprintf(err, errlen, "bulk job %" PRId64 " completed without download_url",
				 job);
			rc = RC_BADINPUT;
			goto out;
		}
		snprintf(zip, sizeof(zip), "%s/zcrm-%s-%" PRId64 "-XXXXXX", ctx->cfg->work_dir,
			 module, job);
		zip_fd = mkostemp(zip, O_CLOEXEC);
		if (zip_fd < 0) {
			snprintf(err, errlen, "cannot create a file in [sync] work_dir %s: %s",
				 ctx->cfg->work_dir, strerror(errno));
			zip[0] = '\0';
			rc = RC_IO;
			goto out;
		}
		/* Held until the file is gone: remove_stale_downloads skips it. */
		if (flock(zip_fd, LOCK_EX) != 0)
			log_warn("cannot lock the download", "file=%s err=%s", log_q(zip),
				 log_q(strerror(errno)));
		int64_t bytes = 0;
		progress_line(ctx, module, page, "downloading", res, t0);
		rc = zoho_bulk_download(ctx->zoho, st.download_url, zip, &bytes);
		if (rc) {
			snprintf(err, errlen, "%s", zoho_error(ctx->zoho));
			goto out;
		}
		progress_line(ctx, module, page, "loading", res, t0);
		struct bulkload_stats ls;
		bool more = st.more_records;
		rc = merge_page(ctx, module, schema, kind, zip, page, more, st.count, started, from,
				to, rule, &ls, err, errlen);
		unlink(zip);
		zip[0] = '\0';
		if (rc)
			goto out;
		if (!res->pages)
			res->first_page = page;
		res->pages++;
		res->last_page = page;
		res->rows_seen += ls.rows_staged;
		res->rows_applied += ls.rows_applied;
		res->cells_nulled += ls.cells_nulled;
		res->rows_deferred += ls.rows_deferred;
		if (ls.extra[0] || ls.missing[0])
			res->unknown_columns = true;
		res->bytes += (uint64_t)bytes;
		res->started = started;
		progress_line(ctx, module, page, "merged", res, t0);
		if (!ctx->progress)
			log_info("page merged", "kind=%s page=%d rows=%ld applied=%ld bytes=%" PRId64
				 " more=%d",
				 kind, page, ls.rows_staged, ls.rows_applied, bytes, (int)more);
		if (ctx->run_id) {
			struct run_counts c = {res->pages, res->rows_seen, res->rows_applied, 0};
			if (run_progress(ctx->data, ctx->run_id, &c))
				log_warn("cannot record progress", "err=%s", log_q(db_error(ctx->data)));
		}
		zoho_bulk_status_free(&st);
		memset(&st, 0, sizeof(st));
		if (!more)
			break;
		page++;
		job = 0;
	}
	if (ctx->progress)
		fputc('\n', stderr);
	res->started = started;
	rc = RC_OK;
	if (res->rows_deferred > 0)
		fetch_deferred(ctx, module, res->rows_deferred);
	goto out;
dberr:
	snprintf(err, errlen, "%s", db_error(ctx->data));
out:
	if (rc && ctx->progress)
		fputc('\n', stderr);
	if (zip[0])
		unlink(zip);
	if (zip_fd >= 0)
		close(zip_fd);
	zoho_bulk_status_free(&st);
	return rc;
}
