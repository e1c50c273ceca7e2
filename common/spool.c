/* spool.c — crash-safe spool directory (see spool.h). */
#include "spool.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SPOOL_SUFFIX ".json"
#define SPOOL_MAX_FILE (64L * 1024 * 1024)

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
	/* Unique per process and thread; the counter orders a thread's files. */
	static _Thread_local unsigned long seq;
	struct timespec ts;
	char tmp[4096], final[4096];
	int fd = -1, dfd = -1;
	enum rc rc = RC_IO;

	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned long n = seq++;
	snprintf(final, sizeof(final), "%s/%010lld.%09ld-%d-%ld-%lu" SPOOL_SUFFIX, dir,
		 (long long)ts.tv_sec, ts.tv_nsec, (int)getpid(), (long)syscall(SYS_gettid), n);
	snprintf(tmp, sizeof(tmp), "%s/.tmp-%d-%ld-%lu", dir, (int)getpid(),
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

long spool_count(const char *dir)
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

enum rc spool_replay(const char *dir, size_t max, spool_fn fn, void *ctx, size_t *done)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	enum rc rc = RC_OK;

	*done = 0;
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
	for (size_t i = 0; i < n && (!max || *done < max); i++) {
		char path[4096];
		char *body = NULL;
		size_t len = 0;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (read_file(path, &body, &len) != RC_OK) {
			/* Another replayer took it first, or it is unreadable. */
			continue;
		}
		rc = fn(ctx, body, len, names[i]);
		free(body);
		if (rc)
			break;
		if (unlink(path) && errno != ENOENT) {
			log_error("cannot remove replayed spool file", "file=%s err=%s", log_q(path),
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
