/* test_spool.c — the spool directory: bodies come back byte for byte in the
 * order they were written, at most max per pass; what is not a spool file
 * (temporaries, failed/, other names) is neither counted nor replayed; two
 * processes replaying one directory each replay a file exactly once
 * (claims), a failed replay puts the file back, and claims left by a
 * process that is gone are recovered (dead pid on this host; age for
 * another host) while a live claimer's are kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NFILES 400

struct tmpdir {
	char path[256];
};

static void make_dir(struct tmpdir *t)
{
	snprintf(t->path, sizeof(t->path), "/tmp/zcrm-test-spool-XXXXXX");
	assert_non_null(mkdtemp(t->path));
	assert_int_equal(spool_init(t->path), RC_OK);
}

static void rm_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (!d) {
		unlink(path);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		char sub[1024];
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		rm_tree(sub);
	}
	closedir(d);
	rmdir(path);
}

static long files_in(const char *dir, const char *sub)
{
	char path[512];
	DIR *d;
	struct dirent *e;
	long n = 0;

	snprintf(path, sizeof(path), "%s%s%s", dir, sub ? "/" : "", sub ? sub : "");
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.' && strstr(e->d_name, ".json") != NULL;
	closedir(d);
	return n;
}

/* What a replayer does with a file: write its name to out (one per line),
 * taking about as long as an inbox transaction would. */
struct sink {
	FILE *out;
	enum rc answer;
};

static enum rc to_sink(void *vctx, const char *body, size_t len, const char *name)
{
	struct sink *s = vctx;
	struct timespec pause = {0, 200 * 1000};

	nanosleep(&pause, NULL);
	if (s->answer == RC_OK)
		fprintf(s->out, "%s\n", name);
	return s->answer;
}

/* A child replaying dir once the parent closes the pipe; the names it
 * replayed and its count ("done N") go to out_path. */
static pid_t replayer(const char *dir, const char *out_path, int go_fd, int go_wr)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid)
		return pid;
	char c;
	close(go_wr);
	struct sink s = {fopen(out_path, "w"), RC_OK};
	size_t done = 0;
	if (!s.out || read(go_fd, &c, 1) < 0)
		_exit(2);
	enum rc rc = spool_replay(dir, 0, to_sink, &s, &done);
	fprintf(s.out, "done %zu\n", done);
	_exit(fclose(s.out) || rc ? 1 : 0);
}

static size_t read_names(const char *path, char ***names, size_t *done)
{
	FILE *f = fopen(path, "r");
	char line[512];
	size_t n = 0;

	assert_non_null(f);
	*names = NULL;
	*done = (size_t)-1;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "done %zu", done) == 1)
			continue;
		*names = realloc(*names, (n + 1) * sizeof(**names));
		(*names)[n++] = strdup(line);
	}
	fclose(f);
	return n;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_two_replayers_each_file_once(void **state)
{
	struct tmpdir t;
	char out[2][512];
	int go[2];
	pid_t pids[2];

	make_dir(&t);
	for (int i = 0; i < NFILES; i++) {
		char body[64];
		int len = snprintf(body, sizeof(body), "{\"n\":%d}", i);
		assert_int_equal(spool_write(t.path, body, (size_t)len), RC_OK);
	}
	assert_int_equal(spool_count(t.path), NFILES);
	assert_int_equal(pipe(go), 0);
	for (int i = 0; i < 2; i++) {
		snprintf(out[i], sizeof(out[i]), "%s.out%d", t.path, i);
		pids[i] = replayer(t.path, out[i], go[0], go[1]);
	}
	/* Both start together: without claims they go through the same
	 * sorted list side by side and replay most files twice. */
	close(go[0]);
	close(go[1]);
	for (int i = 0; i < 2; i++) {
		int status = 0;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	char **names[2];
	size_t n[2], done[2];
	for (int i = 0; i < 2; i++) {
		n[i] = read_names(out[i], &names[i], &done[i]);
		assert_int_equal(done[i], n[i]);
	}
	assert_int_equal(n[0] + n[1], NFILES);
	char **all = malloc(NFILES * sizeof(*all));
	memcpy(all, names[0], n[0] * sizeof(*all));
	memcpy(all + n[0], names[1], n[1] * sizeof(*all));
	qsort(all, NFILES, sizeof(*all), cmp_str);
	for (size_t i = 1; i < NFILES; i++)
		assert_true(strcmp(all[i - 1], all[i]) < 0);
	/* Nothing left behind, claimed or not. */
	assert_int_equal(spool_count(t.path), 0);
	assert_int_equal(files_in(t.path, "claimed"), 0);
	for (int i = 0; i < 2; i++) {
		for (size_t j = 0; j < n[i]; j++)
			free(names[i][j]);
		free(names[i]);
		unlink(out[i]);
	}
	free(all);
	rm_tree(t.path);
}

static void test_failed_replay_puts_file_back(void **state)
{
	struct tmpdir t;
	struct sink s = {fopen("/dev/null", "w"), RC_DB};
	size_t done = 9;

	make_dir(&t);
	assert_non_null(s.out);
	assert_int_equal(spool_write(t.path, "{}", 2), RC_OK);
	assert_int_equal(spool_write(t.path, "{}", 2), RC_OK);
	assert_int_equal(spool_replay(t.path, 0, to_sink, &s, &done), RC_DB);
	assert_int_equal(done, 0);
	assert_int_equal(files_in(t.path, NULL), 2);
	assert_int_equal(files_in(t.path, "claimed"), 0);
	s.answer = RC_OK;
	assert_int_equal(spool_replay(t.path, 1, to_sink, &s, &done), RC_OK);
	assert_int_equal(done, 1);
	assert_int_equal(spool_count(t.path), 1);
	fclose(s.out);
	rm_tree(t.path);
}

static void put_claim(const char *dir, const char *host, long pid, const char *name)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/claimed", dir);
	assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
	snprintf(path, sizeof(path), "%s/claimed/%s+%ld+%s", dir, host, pid, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{}", f);
	fclose(f);
}

static bool exists(const char *dir, const char *name)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static void test_recover_claims(void **state)
{
	struct tmpdir t;
	char me[SPOOL_HOST_MAX];
	size_t recovered = 9;
	int status;

	make_dir(&t);
	spool_host_name(me);
	/* A pid that surely is not alive: a child that has been reaped. */
	pid_t dead = fork();
	assert_true(dead >= 0);
	if (dead == 0)
		_exit(0);
	assert_int_equal(waitpid(dead, &status, 0), dead);

	put_claim(t.path, me, (long)dead, "0000000001.000000000-a.json");
	put_claim(t.path, me, (long)getppid(), "0000000002.000000000-b.json");
	put_claim(t.path, "elsewhere.example", (long)getpid(), "0000000003.000000000-c.json");
	put_claim(t.path, me, (long)getpid(), "0000000004.000000000-d.json");
	/* Claimed files are still waiting. */
	assert_int_equal(spool_count(t.path), 4);

	assert_int_equal(spool_recover_claims(t.path, SPOOL_CLAIM_MAX_AGE, &recovered), RC_OK);
	/* The dead process's and this process's own leftover come back; the
	 * live parent's and the other host's (too young) stay. */
	assert_int_equal(recovered, 2);
	assert_true(exists(t.path, "0000000001.000000000-a.json"));
	assert_true(exists(t.path, "0000000004.000000000-d.json"));
	assert_false(exists(t.path, "0000000002.000000000-b.json"));
	assert_false(exists(t.path, "0000000003.000000000-c.json"));
	assert_int_equal(files_in(t.path, "claimed"), 2);
	assert_int_equal(spool_count(t.path), 4);

	/* Past the age limit any claim is abandoned, whoever holds it. */
	assert_int_equal(spool_recover_claims(t.path, 0, &recovered), RC_OK);
	assert_int_equal(recovered, 2);
	assert_true(exists(t.path, "0000000002.000000000-b.json"));
	assert_true(exists(t.path, "0000000003.000000000-c.json"));
	assert_int_equal(files_in(t.path, "claimed"), 0);
	assert_int_equal(files_in(t.path, NULL), 4);
	rm_tree(t.path);
}

/* What a replayer saw: the bodies and names, in order. */
struct seen {
	size_t n;
	char *body[64];
	size_t len[64];
	char *name[64];
};

static enum rc record(void *vctx, const char *body, size_t len, const char *name)
{
	struct seen *s = vctx;

	assert_true(s->n < 64);
	s->body[s->n] = malloc(len + 1);
	assert_non_null(s->body[s->n]);
	memcpy(s->body[s->n], body, len + 1); /* with the NUL after it */
	s->len[s->n] = len;
	s->name[s->n] = strdup(name);
	s->n++;
	return RC_OK;
}

static void seen_free(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->body[i]);
		free(s->name[i]);
	}
	s->n = 0;
}

static void test_bodies_come_back_in_order(void **state)
{
	struct tmpdir t;
	struct seen s = {0};
	size_t done = 9;
	char body[64];
	/* bytes a JSON body may hold, a NUL included: passed through as is */
	static const char odd[] = "{\"a\":\"x\ny\"}\0tail\xc3\xa9";

	make_dir(&t);
	for (int i = 0; i < 20; i++) {
		int len = snprintf(body, sizeof(body), "{\"n\":%d}", i);
		assert_int_equal(spool_write(t.path, body, (size_t)len), RC_OK);
	}
	assert_int_equal(spool_write(t.path, odd, sizeof(odd) - 1), RC_OK);
	assert_int_equal(spool_write(t.path, "", 0), RC_OK);
	assert_int_equal(spool_count(t.path), 22);
	assert_int_equal(spool_replay(t.path, 0, record, &s, &done), RC_OK);
	assert_int_equal(done, 22);
	assert_int_equal(s.n, 22);
	for (int i = 0; i < 20; i++) {
		int len = snprintf(body, sizeof(body), "{\"n\":%d}", i);
		assert_int_equal(s.len[i], (size_t)len);
		assert_string_equal(s.body[i], body);
	}
	assert_int_equal(s.len[20], sizeof(odd) - 1);
	assert_memory_equal(s.body[20], odd, sizeof(odd) - 1);
	assert_int_equal(s.len[21], 0);
	assert_string_equal(s.body[21], "");
	/* the names handed over are the queue's (no claim prefix), sorted */
	for (size_t i = 0; i < s.n; i++) {
		assert_null(strchr(s.name[i], '/'));
		assert_null(strchr(s.name[i], '+'));
		assert_non_null(strstr(s.name[i], ".json"));
		if (i)
			assert_true(strcmp(s.name[i - 1], s.name[i]) < 0);
	}
	assert_int_equal(spool_count(t.path), 0);
	assert_int_equal(files_in(t.path, "claimed"), 0);
	seen_free(&s);
	rm_tree(t.path);
}

static void test_replay_at_most_max(void **state)
{
	struct tmpdir t;
	struct seen s = {0};
	size_t done = 0;

	make_dir(&t);
	for (int i = 0; i < 5; i++) {
		char body[16];
		int len = snprintf(body, sizeof(body), "%d", i);
		assert_int_equal(spool_write(t.path, body, (size_t)len), RC_OK);
	}
	assert_int_equal(spool_replay(t.path, 2, record, &s, &done), RC_OK);
	assert_int_equal(done, 2);
	assert_int_equal(spool_count(t.path), 3);
	assert_int_equal(spool_replay(t.path, 2, record, &s, &done), RC_OK);
	assert_int_equal(done, 2);
	assert_int_equal(spool_replay(t.path, 2, record, &s, &done), RC_OK);
	assert_int_equal(done, 1);
	assert_int_equal(spool_replay(t.path, 2, record, &s, &done), RC_OK);
	assert_int_equal(done, 0);
	/* the passes together: each file once, oldest first */
	assert_int_equal(s.n, 5);
	for (size_t i = 0; i < 5; i++) {
		char want[16];
		snprintf(want, sizeof(want), "%zu", i);
		assert_string_equal(s.body[i], want);
	}
	seen_free(&s);
	rm_tree(t.path);
}

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Only *.json files not starting with a dot are spool files: a temporary
 * of a write in progress, a stray file, and failed/ are left alone. */
static void test_only_spool_files_count(void **state)
{
	struct tmpdir t;
	struct seen s = {0};
	size_t done = 9;

	make_dir(&t);
	put_file(t.path, ".tmp-host-1-2-3", "{}");
	put_file(t.path, ".hidden.json", "{}");
	put_file(t.path, "notes.txt", "{}");
	put_file(t.path, "x.json.bak", "{}");
	put_file(t.path, ".json", "{}");
	assert_int_equal(spool_write_failed(t.path, "{\"bad\":1}", 9), RC_OK);
	assert_int_equal(files_in(t.path, "failed"), 1);
	assert_int_equal(spool_count(t.path), 0);
	assert_int_equal(spool_replay(t.path, 0, record, &s, &done), RC_OK);
	assert_int_equal(done, 0);
	assert_int_equal(s.n, 0);
	assert_true(exists(t.path, ".tmp-host-1-2-3"));
	assert_true(exists(t.path, "notes.txt"));
	assert_int_equal(files_in(t.path, "failed"), 1);
	/* a file named by hand that ends in .json is one */
	put_file(t.path, "0000000000.000000001-by-hand.json", "{\"hand\":1}");
	assert_int_equal(spool_count(t.path), 1);
	assert_int_equal(spool_replay(t.path, 0, record, &s, &done), RC_OK);
	assert_int_equal(done, 1);
	assert_string_equal(s.body[0], "{\"hand\":1}");
	assert_string_equal(s.name[0], "0000000000.000000001-by-hand.json");
	seen_free(&s);
	rm_tree(t.path);
}

/* No directory: nothing spooled (-1 for the count, which cannot tell),
 * nothing to replay, and a write fails without leaving anything. */
static void test_missing_directory(void **state)
{
	struct seen s = {0};
	size_t done = 9;
	char path[256];

	snprintf(path, sizeof(path), "/tmp/zcrm-test-spool-none-%d", (int)getpid());
	rm_tree(path);
	assert_int_equal(spool_count(path), -1);
	assert_int_equal(spool_replay(path, 0, record, &s, &done), RC_OK);
	assert_int_equal(done, 0);
	assert_int_equal(spool_write(path, "{}", 2), RC_IO);
	assert_int_equal(access(path, F_OK), -1);
	/* spool_init makes it, with failed/, private */
	struct stat st;
	assert_int_equal(spool_init(path), RC_OK);
	assert_int_equal(spool_init(path), RC_OK); /* twice is fine */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(files_in(path, "failed"), 0);
	assert_int_equal(spool_count(path), 0);
	rm_tree(path);
}

static void test_host_name(void **state)
{
	char me[SPOOL_HOST_MAX];

	spool_host_name(me);
	assert_true(me[0] != '\0');
	assert_int_equal(strcspn(me, "+/\" \\"), strlen(me));
}

int main(void)
{
	log_init("test_spool", LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bodies_come_back_in_order),
		cmocka_unit_test(test_replay_at_most_max),
		cmocka_unit_test(test_only_spool_files_count),
		cmocka_unit_test(test_missing_directory),
		cmocka_unit_test(test_two_replayers_each_file_once),
		cmocka_unit_test(test_failed_replay_puts_file_back),
		cmocka_unit_test(test_recover_claims),
		cmocka_unit_test(test_host_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
