/* db.c — libpq wrapper (see db.h). */
#include "db.h"
#include "buf.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DB_MAX_PREPARED 64

struct db {
	PGconn *conn;
	char *conninfo;
	char *schema;
	char err[512];
	char sqlstate[6];     /* of the last failed statement, "" if none */
	/* Names of statements prepared on this connection (reset on reconnect). */
	char *prepared[DB_MAX_PREPARED];
	size_t nprepared;
	bool in_copy;
};

struct db_res {
	PGresult *res;
};

static void set_err(struct db *db, const char *what)
{
	const char *msg = db->conn ? PQerrorMessage(db->conn) : "no connection";
	snprintf(db->err, sizeof(db->err), "%s%s%s", what ? what : "", what ? ": " : "", msg);
	/* libpq messages end with a newline; logfmt lines must not. */
	size_t n = strlen(db->err);
	while (n && (db->err[n - 1] == '\n' || db->err[n - 1] == ' '))
		db->err[--n] = '\0';
}

static void forget_prepared(struct db *db)
{
	for (size_t i = 0; i < db->nprepared; i++)
		free(db->prepared[i]);
	db->nprepared = 0;
}

/* Server notices ("schema … does not exist, skipping") are not errors;
 * keep them out of stderr unless debugging. */
static void notice_to_log(void *arg, const char *message)
{
	(void)arg;
	log_debug("postgres notice", "text=%s", log_q(message));
}

/* Drop the LOCATION lines of verbose messages, and trailing blanks. */
static void tidy_err(char *err)
{
	char *loc;

	while ((loc = strstr(err, "\nLOCATION:")) != NULL) {
		char *end = strchr(loc + 1, '\n');
		if (!end) {
			*loc = '\0';
			break;
		}
		memmove(loc, end, strlen(end) + 1);
	}
	size_t n = strlen(err);
	while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
}

/* The server refused us: a wrong password (28P01), or no role, pg_hba.conf
 * rule or permission that lets us in (28000). A verbose message carries the
 * SQLSTATE after the severity ("FATAL:  28P01: password …") in any locale. */
static const char *refusal_sqlstate(const char *msg)
{
	static const char *const states[] = {"28P01", "28000"};
	char pat[16];

	for (size_t i = 0; i < ARRAY_LEN(states); i++) {
		snprintf(pat, sizeof(pat), ":  %s: ", states[i]);
		if (strstr(msg, pat))
			return states[i];
	}
	return NULL;
}

/* connect_timeout in seconds (0: wait forever), read as libpq reads it. */
static int connect_timeout_s(PGconn *conn)
{
	PQconninfoOption *opts = PQconninfo(conn);
	int t = 0;

	for (PQconninfoOption *o = opts; o && o->keyword; o++) {
		if (!strcmp(o->keyword, "connect_timeout") && o->val && *o->val)
			t = atoi(o->val);
	}
	PQconninfoFree(opts);
	return t <= 0 ? 0 : t < 2 ? 2 : t;
}

/* PQconnectdb by hand, for one thing it cannot do: turn on verbose errors
 * before the server answers, so that a refusal shows its SQLSTATE. Each
 * wait for the server is bounded by connect_timeout. false: timed out. */
static bool connect_verbose(PGconn *conn)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	int timeout_ms = connect_timeout_s(conn) * 1000;

	PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		struct pollfd pfd = {.fd = PQsocket(conn),
				     .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
		int n = poll(&pfd, 1, timeout_ms ? timeout_ms : -1);
		if (n < 0 && errno == EINTR)
			continue; /* as PQconnectdb: a signal is seen once connected */
		if (n == 0)
			return false;
		st = PQconnectPoll(conn);
	}
	return true;
}

static enum rc open_conn(struct db *db)
{
	PGresult *res = NULL;
	const char *params[1];
	char *perr = NULL;
	enum rc rc = RC_DB;

	if (db->conn)
		PQfinish(db->conn);
	db->conn = NULL;
	forget_prepared(db);
	db->in_copy = false;
	db->sqlstate[0] = '\0';
	/* A conninfo libpq cannot parse fails the same way on every run. */
	PQconninfoOption *opts = PQconninfoParse(db->conninfo, &perr);
	if (!opts) {
		snprintf(db->err, sizeof(db->err), "connect: [database] conninfo: %s",
			 perr ? perr : "out of memory");
		tidy_err(db->err);
		rc = perr ? RC_CONFIG : RC_NOMEM;
		PQfreemem(perr);
		goto out;
	}
	PQconninfoFree(opts);
	db->conn = PQconnectStart(db->conninfo);
	if (!db->conn) {
		rc = RC_NOMEM;
		set_err(db, "connect");
		goto out;
	}
	if (PQstatus(db->conn) != CONNECTION_BAD && !connect_verbose(db->conn)) {
		snprintf(db->err, sizeof(db->err), "connect: timeout expired");
		goto out;
	}
	if (PQstatus(db->conn) != CONNECTION_OK) {
		set_err(db, "connect");
		tidy_err(db->err);
		const char *state = refusal_sqlstate(db->err);
		if (state) {
			snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", state);
			rc = RC_AUTH;
		} else if (PQconnectionNeedsPassword(db->conn)) {
			rc = RC_AUTH; /* asked for one; .pgpass or conninfo has none */
		}
		goto out;
	}
	PQsetErrorVerbosity(db->conn, PQERRORS_DEFAULT);
	PQsetNoticeProcessor(db->conn, notice_to_log, NULL);
	/* Our schema first, so that every statement names tables unqualified. */
	char *q = PQescapeIdentifier(db->conn, db->schema, strlen(db->schema));
	if (!q) {
		set_err(db, "quote schema");
		goto out;
	}
	char *path = xasprintf("%s, public", q);
	PQfreemem(q);
	params[0] = path;
	res = PQexecParams(db->conn, "SELECT set_config('search_path', $1, false)", 1, NULL,
			   params, NULL, NULL, 0);
	free(path);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		set_err(db, "set search_path");
		goto out;
	}
	rc = RC_OK;
out:
	PQclear(res);
	return rc;
}

enum rc db_connect(const char *conninfo, const char *schema, struct db **out)
{
	struct db *db = xcalloc(1, sizeof(*db));
	enum rc rc;

	db->conninfo = xstrdup(conninfo ? conninfo : "");
	db->schema = xstrdup(schema && *schema ? schema : "zcrm");
	rc = open_conn(db);
	*out = db;
	return rc;
}

enum rc db_connect_like(const struct db *db, struct db **out)
{
	return db_connect(db->conninfo, db->schema, out);
}

int db_server_version(const struct db *db)
{
	return db && db->conn ? PQserverVersion(db->conn) : 0;
}

int db_backend_pid(const struct db *db)
{
	return db && db->conn ? PQbackendPID(db->conn) : 0;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	if (db->conn)
		PQfinish(db->conn);
	forget_prepared(db);
	free(db->conninfo);
	free(db->schema);
	free(db);
}

bool db_alive(struct db *db)
{
	return db && db->conn && PQstatus(db->conn) == CONNECTION_OK;
}

enum rc db_ensure(struct db *db)
{
	if (db_alive(db))
		return RC_OK;
	return open_conn(db);
}

const char *db_error(const struct db *db)
{
	return db ? db->err : "no connection";
}

bool db_transient(const struct db *db)
{
	/* 42P01/3F000: the schema is not migrated yet; it will be. */
	static const char *const transient[] = {"08",	 "53",	  "57P",   "40001",
						"40P01", "55P03", "42P01", "3F000"};

	if (!db || !db->conn || PQstatus(db->conn) != CONNECTION_OK || !db->sqlstate[0])
		return true;
	for (size_t i = 0; i < ARRAY_LEN(transient); i++) {
		if (!strncmp(db->sqlstate, transient[i], strlen(transient[i])))
			return true;
	}
	return false;
}

const char *db_sqlstate(const struct db *db)
{
	return db ? db->sqlstate : "";
}

const char *db_schema(const struct db *db)
{
	return db->schema;
}

/* Turn a result into an rc; on error remember the server's message. */
static enum rc check_result(struct db *db, PGresult *res, const char *what)
{
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_IN)
		return RC_OK;
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn);
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", state ? state : "");
	snprintf(db->err, sizeof(db->err), "%s: %s%s%s", what, state ? state : "",
		 state ? " " : "", msg && *msg ? msg : "no result");
	size_t n = strlen(db->err);
	while (n && (db->err[n - 1] == '\n' || db->err[n - 1] == ' '))
		db->err[--n] = '\0';
	return RC_DB;
}

static enum rc wrap(struct db *db, PGresult *res, const char *what, struct db_res **out)
{
	enum rc rc = check_result(db, res, what);

	if (rc || !out) {
		PQclear(res);
		if (out)
			*out = NULL;
		return rc;
	}
	*out = xmalloc(sizeof(**out));
	(*out)->res = res;
	return RC_OK;
}

enum rc db_exec(struct db *db, const char *sql, int nparams, const char *const *params,
		struct db_res **res)
{
	if (res)
		*res = NULL;
	if (!db->conn)
		return RC_DB;
	PGresult *r = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	return wrap(db, r, "exec", res);
}

enum rc db_prepared(struct db *db, const char *name, const char *sql, int nparams,
		    const char *const *params, struct db_res **res)
{
	bool known = false;

	if (res)
		*res = NULL;
	if (!db->conn)
		return RC_DB;
	for (size_t i = 0; i < db->nprepared; i++) {
		if (strcmp(db->prepared[i], name) == 0) {
			known = true;
			break;
		}
	}
	if (!known) {
		if (db->nprepared == DB_MAX_PREPARED) {
			/* Out of cache slots: run unprepared rather than fail. */
			return db_exec(db, sql, nparams, params, res);
		}
		PGresult *p = PQprepare(db->conn, name, sql, nparams, NULL);
		enum rc rc = check_result(db, p, name);
		PQclear(p);
		if (rc)
			return rc;
		db->prepared[db->nprepared++] = xstrdup(name);
	}
	PGresult *r = PQexecPrepared(db->conn, name, nparams, params, NULL, NULL, 0);
	return wrap(db, r, name, res);
}

enum rc db_script(struct db *db, const char *sql)
{
	if (!db->conn)
		return RC_DB;
	PGresult *r = PQexec(db->conn, sql);
	enum rc rc = check_result(db, r, "script");
	PQclear(r);
	return rc;
}

enum rc db_begin(struct db *db)
{
	return db_exec(db, "BEGIN", 0, NULL, NULL);
}

enum rc db_commit(struct db *db)
{
	return db_exec(db, "COMMIT", 0, NULL, NULL);
}

enum rc db_send(struct db *db, const char *sql, int nparams, const char *const *params)
{
	if (!db->conn)
		return RC_DB;
	db->sqlstate[0] = '\0';
	if (PQsendQueryParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0) != 1) {
		set_err(db, "send");
		return RC_DB;
	}
	return RC_OK;
}

enum rc db_wait(struct db *db, struct db_res **out)
{
	PGresult *r, *last = NULL;

	if (out)
		*out = NULL;
	if (!db->conn)
		return RC_DB;
	/* The last result is the statement's; an error ends it early. */
	while ((r = PQgetResult(db->conn)) != NULL) {
		if (last && PQresultStatus(last) == PGRES_FATAL_ERROR) {
			PQclear(r);
			continue;
		}
		PQclear(last);
		last = r;
	}
	if (!last) {
		set_err(db, "wait");
		return RC_DB;
	}
	return wrap(db, last, "exec", out);
}

bool db_ready(struct db *db)
{
	if (!db->conn || PQconsumeInput(db->conn) != 1)
		return true;
	return PQisBusy(db->conn) == 0;
}

void db_rollback(struct db *db)
{
	if (!db->conn || PQstatus(db->conn) != CONNECTION_OK)
		return;
	if (PQtransactionStatus(db->conn) == PQTRANS_IDLE)
		return;
	PGresult *r = PQexec(db->conn, "ROLLBACK");
	PQclear(r);
}

int db_res_rows(const struct db_res *res)
{
	return res ? PQntuples(res->res) : 0;
}

int db_res_cols(const struct db_res *res)
{
	return res ? PQnfields(res->res) : 0;
}

const char *db_res_get(const struct db_res *res, int row, int col)
{
	if (!res || row >= PQntuples(res->res) || col >= PQnfields(res->res))
		return NULL;
	if (PQgetisnull(res->res, row, col))
		return NULL;
	return PQgetvalue(res->res, row, col);
}

bool db_res_isnull(const struct db_res *res, int row, int col)
{
	return db_res_get(res, row, col) == NULL;
}

long db_res_affected(const struct db_res *res)
{
	const char *n = res ? PQcmdTuples(res->res) : "";
	return *n ? atol(n) : 0;
}

const char *db_res_colname(const struct db_res *res, int col)
{
	return res ? PQfname(res->res, col) : NULL;
}

void db_res_free(struct db_res *res)
{
	if (!res)
		return;
	PQclear(res->res);
	free(res);
}

enum rc db_copy_begin(struct db *db, const char *sql)
{
	if (!db->conn)
		return RC_DB;
	PGresult *r = PQexec(db->conn, sql);
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		enum rc rc = check_result(db, r, "copy");
		PQclear(r);
		return rc ? rc : RC_DB;
	}
	PQclear(r);
	db->in_copy = true;
	return RC_OK;
}

enum rc db_copy_put(struct db *db, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		int chunk = len > (1 << 30) ? (1 << 30) : (int)len;
		if (PQputCopyData(db->conn, p, chunk) != 1) {
			set_err(db, "copy data");
			return RC_DB;
		}
		p += chunk;
		len -= (size_t)chunk;
	}
	return RC_OK;
}

enum rc db_copy_end(struct db *db, const char *errmsg, long *rows)
{
	enum rc rc = RC_OK;
	PGresult *r;

	if (rows)
		*rows = 0;
	if (!db->in_copy)
		return RC_DB;
	db->in_copy = false;
	if (PQputCopyEnd(db->conn, errmsg) != 1) {
		set_err(db, "copy end");
		rc = RC_DB;
	}
	while ((r = PQgetResult(db->conn)) != NULL) {
		enum rc r_rc = check_result(db, r, "copy");
		if (r_rc && !rc)
			rc = r_rc;
		if (!r_rc && rows)
			*rows = atol(PQcmdTuples(r));
		PQclear(r);
	}
	return rc;
}

char *db_quote_ident(struct db *db, const char *name)
{
	char *q = db->conn ? PQescapeIdentifier(db->conn, name, strlen(name)) : NULL;
	char *copy;

	if (!q) {
		/* Without a connection quote by hand: double every '"'. */
		size_t n = strlen(name);
		copy = xmalloc(2 * n + 3);
		size_t j = 0;
		copy[j++] = '"';
		for (size_t i = 0; i < n; i++) {
			if (name[i] == '"')
				copy[j++] = '"';
			copy[j++] = name[i];
		}
		copy[j++] = '"';
		copy[j] = '\0';
		return copy;
	}
	copy = xstrdup(q);
	PQfreemem(q);
	return copy;
}

enum rc db_try_lock(struct db *db, const char *job, const char *module, bool *got)
{
	const char *params[2] = {job, module ? module : ""};
	struct db_res *res = NULL;
	enum rc rc;

	*got = false;
	rc = db_exec(db, "SELECT pg_try_advisory_lock(hashtext('zcrm-sync:' || $1), hashtext($2))",
		     2, params, &res);
	if (rc)
		return rc;
	const char *v = db_res_get(res, 0, 0);
	*got = v && v[0] == 't';
	db_res_free(res);
	return RC_OK;
}

enum rc db_unlock(struct db *db, const char *job, const char *module)
{
	const char *params[2] = {job, module ? module : ""};
	return db_exec(db, "SELECT pg_advisory_unlock(hashtext('zcrm-sync:' || $1), hashtext($2))",
		       2, params, NULL);
}

enum rc db_query_value(struct db *db, const char *sql, int nparams, const char *const *params,
		       char **value)
{
	struct db_res *res = NULL;
	enum rc rc;

	*value = NULL;
	rc = db_exec(db, sql, nparams, params, &res);
	if (rc)
		return rc;
	const char *v = db_res_get(res, 0, 0);
	if (v)
		*value = xstrdup(v);
	db_res_free(res);
	return RC_OK;
}

char *db_int64_array(const int64_t *ids, size_t n)
{
	struct buf b = {0};

	buf_addc(&b, '{');
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s%" PRId64, i ? "," : "", ids[i]);
	buf_addc(&b, '}');
	return buf_steal(&b);
}

char *db_text_array(const char *const *items, const size_t *lens, size_t n)
{
	struct buf b = {0};

	buf_addc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		size_t l = lens ? lens[i] : strlen(items[i]);
		if (i)
			buf_addc(&b, ',');
		buf_addc(&b, '"');
		for (size_t k = 0, run = 0; k < l; k = run) {
			while (run < l && items[i][run] != '"' && items[i][run] != '\\')
				run++;
			buf_add(&b, items[i] + k, run - k);
			if (run < l) {
				buf_addc(&b, '\\');
				buf_addc(&b, items[i][run++]);
			}
		}
		buf_addc(&b, '"');
	}
	buf_addc(&b, '}');
	return buf_steal(&b);
}
