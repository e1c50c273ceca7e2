/* spool.c — crash-safe spool directory (see spool.h). */
#include "spool.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SPOOL_SUFFIX ".json"
#define SPOOL_MAX_FILE (64L * 1024 * 1024)
#define SPOOL_CLAIMED "claimed"

/* A path from fmt; false (and logged) if it does not fit. */
static bool pathf(char out[4096], const char *fmt, ...) ZCRM_PRINTF(2, 3);
static bool pathf(char out[4096], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(out, 4096, fmt, ap);
	va_end(ap);
	if (n >= 0 && n < 4096)
		return true;
	log_error("spool path too long", "path=%s", log_q(out));
	return false;
}

void spool_host_name(char out[SPOOL_HOST_MAX])
{
	char h[256];
	size_t i;

	if (gethostname(h, sizeof(h)))
		h[0] = '\0';
	h[sizeof(h) - 1] = '\0';
	for (i = 0; h[i] && i < SPOOL_HOST_MAX - 1; i++) {
		char c = h[i];
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		out[i] = plain ? c : '_';
	}
	out[i] = '\0';
	if (!i)
		snprintf(out, SPOOL_HOST_MAX, "localhost");
}

enum rc spool_init(const char *dir)
{
	char failed[4096];

	snprintf(failed, sizeof(failed), "%s/failed", dir);
	if ((mkdir(dir, 0700) == 0 || errno == EEXIST) &&
	    (mkdir(failed, 0700) == 0 || errno == EEXIST))
		return RC_OK;
	log_error("cannot create spool directory", "dir=%s err=%s", log_q(dir),
		  log_q(strerror(errno)));
	return RC_IO;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

enum rc spool_write(const char *dir, const char *body, size_t len)
{
	/* Unique per host, process and thread (hosts may share the directory);
	 * the counter orders a thread's files. */
	static _Thread_local unsigned long seq;
	struct timespec ts;
	char tmp[4096], final[4096], host[SPOOL_HOST_MAX];
	int fd = -1, dfd = -1;
	enum rc rc = RC_IO;

	clock_gettime(CLOCK_REALTIME, &ts);
	spool_host_name(host);
	unsigned long n = seq++;
	snprintf(final, sizeof(final), "%s/%010lld.%09ld-%s-%d-%ld-%lu" SPOOL_SUFFIX, dir,
		 (long long)ts.tv_sec, ts.tv_nsec, host, (int)getpid(), (long)syscall(SYS_gettid),
		 n);
	snprintf(tmp, sizeof(tmp), "%s/.tmp-%s-%d-%ld-%lu", dir, host, (int)getpid(),
		 (long)syscall(SYS_gettid), n);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	if (write_all(fd, body, len) || fsync(fd))
		goto fail;
	if (close(fd)) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, final))
		goto fail;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd))
		goto fail;
	rc = RC_OK;
	goto out;
fail:
	log_error("cannot write spool file", "dir=%s err=%s", log_q(dir), log_q(strerror(errno)));
	unlink(tmp);
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

static int is_spool_name(const char *name)
{
	size_t n = strlen(name);
	size_t s = strlen(SPOOL_SUFFIX);
	return name[0] != '.' && n > s && strcmp(name + n - s, SPOOL_SUFFIX) == 0;
}

static long count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (is_spool_name(e->d_name))
			n++;
	}
	closedir(d);
	return n;
}

long spool_count(const char *dir)
{
	char claimed[4096];
	long n = count_files(dir);

	if (n < 0)
		return -1;
	/* Claimed files wait too: for the inbox, or for a dead claimer's
	 * claim to be recovered. */
	snprintf(claimed, sizeof(claimed), "%s/" SPOOL_CLAIMED, dir);
	long c = count_files(claimed);
	return c > 0 ? n + c : n;
}

/* Split "<host>+<pid>+<name>"; false if it is not a claim's name. */
static bool parse_claim(const char *e, char host[SPOOL_HOST_MAX], long *pid, const char **name)
{
	const char *p = strchr(e, '+');
	char *end;

	if (!p || p == e || (size_t)(p - e) >= SPOOL_HOST_MAX || p[1] < '0' || p[1] > '9')
		return false;
	memcpy(host, e, (size_t)(p - e));
	host[p - e] = '\0';
	errno = 0;
	*pid = strtol(p + 1, &end, 10);
	if (errno || *end != '+' || *pid <= 0)
		return false;
	*name = end + 1;
	return is_spool_name(*name);
}

enum rc spool_recover_claims(const char *dir, long max_age, size_t *recovered)
{
	char cdir[4096], me[SPOOL_HOST_MAX];
	time_t now = time(NULL);
	struct dirent *e;
	enum rc rc = RC_OK;
	DIR *d;

	*recovered = 0;
	snprintf(cdir, sizeof(cdir), "%s/" SPOOL_CLAIMED, dir);
	d = opendir(cdir);
	if (!d) {
		if (errno == ENOENT)
			return RC_OK;
		log_error("cannot read the spool's claims", "dir=%s err=%s", log_q(cdir),
			  log_q(strerror(errno)));
		return RC_IO;
	}
	spool_host_name(me);
	while ((e = readdir(d)) != NULL) {
		char host[SPOOL_HOST_MAX] = "", from[4096], to[4096];
		const char *name = e->d_name;
		long pid = 0;
		struct stat st;

		if (!is_spool_name(e->d_name))
			continue;
		if (!pathf(from, "%s/%s", cdir, e->d_name))
			continue;
		if (stat(from, &st))
			continue; /* finished by its claimer meanwhile */
		if (!parse_claim(e->d_name, host, &pid, &name)) {
			/* Not named by a claimer (put there by hand): by age only. */
			host[0] = '\0';
			name = e->d_name;
		}
		/* rename(2) sets ctime: the age of the claim, not of the file. */
		bool gone = now - st.st_ctime >= max_age;
		if (!gone && strcmp(host, me) == 0) {
			/* This process replays one pass at a time: a claim of its
			 * own here is one it could not put back. */
			gone = pid == (long)getpid() || (kill((pid_t)pid, 0) && errno == ESRCH);
		}
		if (!gone)
			continue;
		if (!pathf(to, "%s/%s", dir, name))
			continue;
		if (rename(from, to)) {
			if (errno == ENOENT)
				continue; /* its claimer or another replayer was first */
			log_error("cannot put a claimed spool file back", "file=%s err=%s", log_q(from),
				  log_q(strerror(errno)));
			rc = RC_IO;
			continue;
		}
		log_warn("spool file put back: its claimer is gone", "file=%s host=%s pid=%ld",
			 log_q(name), log_q(host), pid);
		(*recovered)++;
	}
	closedir(d);
	return rc;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum rc read_file(const char *path, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t got = 0;

	*out = NULL;
	if (fd < 0)
		return RC_IO;
	if (fstat(fd, &st) || st.st_size > SPOOL_MAX_FILE) {
		close(fd);
		return RC_IO;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return RC_OK;
}

/* Back into the queue under its own name (fn failed: try again later). */
static void unclaim(const char *claim, const char *path)
{
	if (rename(claim, path))
		log_error("cannot put a claimed spool file back", "file=%s err=%s", log_q(claim),
			  log_q(strerror(errno)));
}

enum rc spool_replay(const char *dir, size_t max, spool_fn fn, void *ctx, size_t *done)
{
	char cdir[4096], me[SPOOL_HOST_MAX];
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0, recovered = 0;
	enum rc rc;
	DIR *d;

	*done = 0;
	rc = spool_recover_claims(dir, SPOOL_CLAIM_MAX_AGE, &recovered);
	if (rc)
		return rc;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? RC_OK : RC_IO;
	while ((e = readdir(d)) != NULL) {
		if (!is_spool_name(e->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = xstrdup(e->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	snprintf(cdir, sizeof(cdir), "%s/" SPOOL_CLAIMED, dir);
	if (n && mkdir(cdir, 0700) && errno != EEXIST) {
		log_error("cannot create the spool's claims directory", "dir=%s err=%s", log_q(cdir),
			  log_q(strerror(errno)));
		rc = RC_IO;
		n = 0;
	}
	spool_host_name(me);
	for (size_t i = 0; i < n && (!max || *done < max); i++) {
		char path[4096], claim[4096];
		char *body = NULL;
		size_t len = 0;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (!pathf(claim, "%s/%s+%d+%s", cdir, me, (int)getpid(), names[i]))
			continue;
		if (rename(path, claim)) {
			if (errno == ENOENT)
				continue; /* another replayer claimed it first */
			log_error("cannot claim spool file", "file=%s err=%s", log_q(path),
				  log_q(strerror(errno)));
			rc = RC_IO;
			break;
		}
		if (read_file(claim, &body, &len) != RC_OK) {
			/* Every pass would fail on it again: out of the way. */
			log_error("cannot read spool file; moved to failed/", "file=%s err=%s",
				  log_q(names[i]), log_q(strerror(errno)));
			if (pathf(path, "%s/failed/%s", dir, names[i]))
				unclaim(claim, path);
			continue;
		}
		rc = fn(ctx, body, len, names[i]);
		free(body);
		if (rc) {
			unclaim(claim, path);
			break;
		}
		/* ENOENT: held so long that another replayer took the claim back
		 * (SPOOL_CLAIM_MAX_AGE); its replay is a harmless duplicate. */
		if (unlink(claim) && errno != ENOENT) {
			log_error("cannot remove replayed spool file", "file=%s err=%s", log_q(claim),
				  log_q(strerror(errno)));
			rc = RC_IO;
			break;
		}
		(*done)++;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

enum rc spool_write_failed(const char *dir, const char *body, size_t len)
{
	char failed[4096];

	snprintf(failed, sizeof(failed), "%s/failed", dir);
	if (mkdir(failed, 0700) && errno != EEXIST) {
		log_error("cannot create the failed-spool directory", "dir=%s err=%s", log_q(failed),
			  log_q(strerror(errno)));
		return RC_IO;
	}
	return spool_write(failed, body, len);
}
