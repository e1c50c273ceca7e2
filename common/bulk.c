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

/* Zoho's page: 200,000 records (zoho-api.md §3.7). A completed job's
 * result.per_page, when given, is believed instead. */
#define BULK_PER_PAGE 200000
#define AHEAD_MAX 8

/* Jobs asked for ahead of the page being exported ([sync] bulk_jobs_ahead):
 * for pages page[0], page[0]+1, ... in order. Persisted in
 * sync_state.bulk_ahead as flat (page, job) pairs, so a killed run's
 * successor reuses them. */
struct ahead {
	int n;
	int page[AHEAD_MAX];
	int64_t job[AHEAD_MAX];
};

/* The pairs of a beyond the page `after` as a bigint[] literal, or NULL. */
static char *ahead_literal(const struct ahead *a, int after)
{
	int64_t v[2 * AHEAD_MAX];
	size_t n = 0;

	for (int i = 0; i < a->n; i++)
		if (a->page[i] > after) {
			v[n++] = a->page[i];
			v[n++] = a->job[i];
		}
	return n ? db_int64_array(v, n) : NULL;
}

/* Store the jobs ahead of page `after` (none: NULL). Runs in the caller's
 * transaction if one is open. */
static enum rc ahead_save(struct db *db, const char *module, const struct ahead *a, int after)
{
	char *lit = ahead_literal(a, after);
	enum rc rc = db_prepared(db, "bulk_ahead_set",
				 "UPDATE sync_state SET bulk_ahead = $2::bigint[] WHERE module = $1", 2,
				 (const char *[]){module, lit}, NULL);
	free(lit);
	return rc;
}

/* The jobs a killed run had asked for beyond `page` (consecutive from
 * page + 1). Unreadable: none - they are only a saving. */
static void ahead_load(struct db *db, const char *module, int page, struct ahead *a)
{
	char *v = NULL;

	a->n = 0;
	if (db_query_value(db, "SELECT bulk_ahead::text FROM sync_state WHERE module = $1", 1,
			   (const char *[]){module}, &v) != RC_OK || !v)
		goto out;
	const char *p = v[0] == '{' ? v + 1 : v;
	while (*p && *p != '}' && a->n < AHEAD_MAX) {
		char *end;
		long long pg = strtoll(p, &end, 10);
		if (*end != ',')
			break;
		long long job = strtoll(end + 1, &end, 10);
		if (pg == page + 1 + a->n && job > 0) {
			a->page[a->n] = (int)pg;
			a->job[a->n++] = job;
		}
		if (*end != ',')
			break;
		p = end + 1;
	}
	if (a->n)
		log_info("reusing the jobs asked for ahead by a killed run", "pages=%d-%d",
			 a->page[0], a->page[a->n - 1]);
out:
	free(v);
}

/* The job asked for ahead for page, or 0; taken out of a. */
static int64_t ahead_take(struct ahead *a, int page)
{
	if (a->n == 0 || a->page[0] != page)
		return 0;
	int64_t job = a->job[0];
	a->n--;
	memmove(a->page, a->page + 1, (size_t)a->n * sizeof(a->page[0]));
	memmove(a->job, a->job + 1, (size_t)a->n * sizeof(a->job[0]));
	return job;
}

static enum rc create_job(struct bulk_ctx *ctx, const char *module, int64_t from, int64_t to,
			  int page, int64_t *job, int64_t *created)
{
	struct zoho_bulk_query q = {
		.module = module,
		.from = from,
		.to = to,
		.page = page,
		.fields = ctx->fields,
		.nfields = ctx->nfields,
		.callback_url = ctx->cfg->callback_url,
	};
	*created = 0;
	return zoho_bulk_create(ctx->zoho, &q, job, created);
}

/* The first page's job of a module exported after this one (initial_sync),
 * so that its minutes at Zoho pass while this module's pages are waited
 * for, downloaded and merged. It is checkpointed in that module's
 * sync_state as an initial export at page 1 with its job - what a run
 * killed right after creating the job leaves - so that module's export
 * takes it up. Only under that module's export lock, and never over an
 * export of it in progress or left to resume. True when that module's
 * first page is now at work at Zoho: asked for here, or earlier (by the
 * module before, or a run that stopped) - either way one of the jobs the
 * budget counts. */
static bool ask_ahead_for(struct bulk_ctx *ctx, const char *module, const char *next)
{
	long spent0 = zoho_credits_spent(ctx->zoho, ZOHO_EP__COUNT);
	struct zoho_bulk_query q = {.module = next, .page = 1, .callback_url = ctx->cfg->callback_url};
	struct sync_row row;
	int64_t job = 0, created = 0;
	bool got = false, at_work = false;

	if (db_try_lock(ctx->data, "export", next, &got) != RC_OK || !got)
		return false;
	/* What follows is that module's: its log lines say so. */
	log_set_module(next);
	if (sync_get(ctx->data, next, &row) != RC_OK)
		goto out;
	if (row.bulk_page > 0) {
		at_work = !strcmp(row.bulk_kind, "initial") && row.bulk_page == 1 && row.bulk_job_id &&
			  !row.bulk_from && !row.bulk_to;
		goto out;
	}
	if (ctx->before_next && ctx->before_next(ctx, next) != RC_OK) {
		log_warn("the first page is asked for in its turn, not ahead", "during=%s",
			 log_q(module));
		goto spent;
	}
	if (zoho_bulk_create(ctx->zoho, &q, &job, &created) != RC_OK) {
		log_warn("cannot ask for the first page ahead; it is asked for in its turn",
			 "during=%s err=%s", log_q(module), log_q(zoho_error(ctx->zoho)));
		goto spent;
	}
	at_work = true;
	if (sync_set_bulk(ctx->data, next, "initial", 1, job, created ? created : (int64_t)time(NULL),
			  0, 0) != RC_OK)
		log_warn("cannot record the job asked for ahead", "during=%s err=%s",
			 log_q(module), log_q(db_error(ctx->data)));
	else
		log_info("first page asked for ahead", "during=%s job=%" PRId64, log_q(module), job);
spent:
	ctx->credits_ahead += zoho_credits_spent(ctx->zoho, ZOHO_EP__COUNT) - spent0;
out:
	if (db_unlock(ctx->data, "export", next) != RC_OK)
		log_debug("unlock failed (the session ends anyway)", "");
	log_set_module(module);
	return at_work;
}

/* Ask Zoho for the jobs of the pages after `page` that are known to exist
 * (up to last_known), at most [sync] bulk_jobs_ahead of them. A page is
 * known once the page before it said more_records, or - for an export of
 * the whole module - from the record count. A job that cannot be created
 * now is not an error: its page creates it when its turn comes. Room left
 * goes to the first pages of the modules exported after this one, in
 * their order (initial_sync: bulk_ctx.next_modules). */
static void top_up(struct bulk_ctx *ctx, const char *module, int64_t from, int64_t to, int page,
		   int last_known, struct ahead *a)
{
	long want = ctx->cfg->bulk_jobs_ahead < AHEAD_MAX ? ctx->cfg->bulk_jobs_ahead : AHEAD_MAX;
	bool added = false;

	/* The next modules' jobs, once at work, are some of them. */
	want -= ctx->next_at_work;
	while (a->n < want && page + 1 + a->n <= last_known) {
		int next = page + 1 + a->n;
		int64_t job = 0, created = 0;
		if (ctx->stop && *ctx->stop)
			break;
		if (create_job(ctx, module, from, to, next, &job, &created) != RC_OK) {
			log_warn("cannot ask for a page ahead; it is asked for in its turn",
				 "page=%d err=%s", next, log_q(zoho_error(ctx->zoho)));
			break;
		}
		a->page[a->n] = next;
		a->job[a->n++] = job;
		added = true;
		log_debug("job asked for ahead", "page=%d job=%" PRId64, next, job);
	}
	if (added && ahead_save(ctx->data, module, a, page) != RC_OK)
		log_warn("cannot record the jobs asked for ahead", "err=%s",
			 log_q(db_error(ctx->data)));
	/* This module's own pages first: only once the record count has told
	 * them all and each has its job does room go to the next modules
	 * (their jobs cannot give it back to a page found later). */
	if (last_known <= 0 || page + a->n < last_known)
		return;
	while (ctx->next_tried < ctx->n_next && a->n < want && !(ctx->stop && *ctx->stop)) {
		if (ask_ahead_for(ctx, module, ctx->next_modules[ctx->next_tried++])) {
			ctx->next_at_work++;
			want--;
		}
	}
}

/* How many pages the count says a whole-module export has (0: unknown). */
static int pages_by_count(int64_t count, int64_t per_page)
{
	if (count < 0 || per_page <= 0)
		return 0;
	int64_t n = (count + per_page - 1) / per_page;
	return n < 1 ? 1 : n > 100000 ? 100000 : (int)n;
}

/* Merge the downloaded page and move the checkpoint, in one transaction:
 * to page + 1 with its job asked for ahead (next_job, 0: none), and the
 * jobs beyond it. */
static enum rc merge_page(struct bulk_ctx *ctx, const char *module,
			  const struct module_schema *schema, const char *kind, const char *zip,
			  int page, bool more, int64_t expected, int64_t started, int64_t from,
			  int64_t to, enum merge_rule rule, const struct ahead *a,
			  bool direct_always, struct bulkload_stats *ls, char *err, size_t errlen)
{
	struct zipstream_limits lim = {(uint64_t)ctx->cfg->max_unzipped,
				       (uint64_t)ctx->cfg->max_ratio, 1u << 20};
	enum rc rc;

	rc = db_begin(ctx->data);
	if (rc)
		goto dberr;
	struct bulkload_opts bo = {.rule = rule,
				   .tie_before = started,
				   .source = "bulk",
				   .ids_only = ctx->ids_only,
				   .parallel = true,
				   .direct = true,
				   .direct_always = direct_always};
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
	if (more) {
		int64_t next_job = a->n && a->page[0] == page + 1 ? a->job[0] : 0;
		rc = sync_set_bulk(ctx->data, module, kind, page + 1, next_job, started, from, to);
		if (!rc)
			rc = ahead_save(ctx->data, module, a, page + 1);
	} else {
		rc = db_prepared(ctx->data, "bulk_done",
				 "UPDATE sync_state SET bulk_state = 'done', bulk_job_id = NULL,"
				 " bulk_ahead = NULL, updated_at = now() WHERE module = $1",
				 1, (const char *[]){module}, NULL);
	}
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
	struct ahead ahead = {0};
	char zip[4096] = "";
	double t0 = now_s();
	int page = 1;
	int64_t job = 0, started = 0, count = -1, per_page = BULK_PER_PAGE;
	int zip_fd = -1;
	bool went_direct = false;
	int mismatched = 0; /* the page whose job said another page */
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
		ahead_load(ctx->data, module, page, &ahead);
	} else {
		rc = sync_set_bulk(ctx->data, module, kind, 1, 0, 0, from, to);
		if (!rc)
			rc = ahead_save(ctx->data, module, &ahead, 0);
		if (rc)
			goto dberr;
	}
	/* The pages of an export of the whole module are known from its
	 * record count: their jobs can run at Zoho side by side. A windowed
	 * export knows a page only once the one before says more_records. */
	if (ctx->record_count > 0)
		count = ctx->record_count;
	else if (ctx->cfg->bulk_jobs_ahead > 0 && from == 0 && to == 0 &&
		 zoho_record_count(ctx->zoho, module, &count) != RC_OK) {
		log_info("no record count; pages are asked for one ahead as they are known", "err=%s",
			 log_q(zoho_error(ctx->zoho)));
		count = -1;
	}

	for (;;) {
		if (ctx->stop && *ctx->stop) {
			rc = RC_INTERRUPTED;
			snprintf(err, errlen, "interrupted");
			goto out;
		}
		if (!job)
			job = ahead_take(&ahead, page);
		if (!job) {
			int64_t created = 0;
			rc = create_job(ctx, module, from, to, page, &job, &created);
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
		top_up(ctx, module, from, to, page, pages_by_count(count, per_page), &ahead);
		rc = wait_job(ctx, module, page, job, &st, res, t0, err, errlen);
		if (rc == RC_NOTFOUND) {
			/* Zoho forgot the job (results expire after a day): again. */
			log_warn("bulk job gone; creating a new one", "job=%" PRId64, job);
			job = 0;
			continue;
		}
		if (rc)
			goto out;
		if (st.state == ZOHO_BULK_COMPLETED && st.page > 0 && st.page != page) {
			/* Not the job of this page (a checkpoint from elsewhere):
			 * again, once - a new job that says so too is Zoho's error. */
			if (mismatched == page) {
				snprintf(err, errlen, "bulk job %" PRId64 " for page %d says page %d",
					 job, page, st.page);
				rc = RC_ZOHO;
				goto out;
			}
			mismatched = page;
			log_warn("bulk job is of another page; creating a new one",
				 "job=%" PRId64 " page=%d its_page=%d", job, page, st.page);
			zoho_bulk_status_free(&st);
			memset(&st, 0, sizeof(st));
			job = 0;
			continue;
		}
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
		/* The next page, now known to exist, runs at Zoho while this one
		 * is downloaded and merged. */
		if (st.per_page > 0)
			per_page = st.per_page;
		int last_known = pages_by_count(count, per_page);
		if (st.more_records && last_known < page + 1)
			last_known = page + 1;
		top_up(ctx, module, from, to, page, last_known, &ahead);
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
		double t_dl = now_s();
		progress_line(ctx, module, page, "downloading", res, t0);
		rc = zoho_bulk_download(ctx->zoho, st.download_url, zip, &bytes);
		if (rc) {
			snprintf(err, errlen, "%s", zoho_error(ctx->zoho));
			goto out;
		}
		progress_line(ctx, module, page, "loading", res, t0);
		struct bulkload_stats ls;
		bool more = st.more_records;
		double t_merge = now_s();
		rc = merge_page(ctx, module, schema, kind, zip, page, more, st.count, started, from,
				to, rule, &ahead, went_direct, &ls, err, errlen);
		unlink(zip);
		zip[0] = '\0';
		if (rc)
			goto out;
		/* A first load: the next page's ids are new too, unless pages
		 * shifted or a notification came (then COPY refuses the page). */
		went_direct = ls.direct;
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
				 " more=%d download_ms=%.0f merge_ms=%.0f direct=%d ahead=%d skipped=%ld",
				 kind, page, ls.rows_staged, ls.rows_applied, bytes, (int)more,
				 (t_merge - t_dl) * 1e3, (now_s() - t_merge) * 1e3, (int)ls.direct,
				 ahead.n, ls.rows_skipped);
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
		job = ahead_take(&ahead, page);
	}
	/* Jobs asked for beyond the last page (the count was higher than
	 * what the pages held): never downloaded, left to expire at Zoho. */
	if (ahead.n)
		log_info("jobs asked for ahead were not needed", "count=%d first_page=%d", ahead.n,
			 ahead.page[0]);
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
