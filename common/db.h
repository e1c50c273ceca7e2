/* db.h — PostgreSQL access; db.c is the only includer of libpq-fe.h.
 *
 * A struct db is one connection, owned by one thread. Every statement is
 * parameterised (text parameters); db_prepared() caches named prepared
 * statements per connection and re-prepares after a reconnect. The search
 * path is set to the configured schema, so SQL names tables unqualified. */
#ifndef ZCRM_DB_H
#define ZCRM_DB_H

#include "compiler.h"
#include "rc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct db_res;

/* connection */
enum rc db_connect(const char *conninfo, const char *schema, struct db **out) ZCRM_MUSTCHECK;
void db_close(struct db *db);
/* A second connection to the same database and schema (another backend,
 * for work that runs beside this connection's transaction). */
enum rc db_connect_like(const struct db *db, struct db **out) ZCRM_MUSTCHECK;
/* PostgreSQL's server_version_num (150004), 0 without a connection. */
int db_server_version(const struct db *db);
/* The backend's process id (names per-connection objects), 0 if none. */
int db_backend_pid(const struct db *db);
/* True if the connection is usable; false after a connection loss. */
bool db_alive(struct db *db);
/* Reconnect if the connection was lost (cheap when alive). */
enum rc db_ensure(struct db *db) ZCRM_MUSTCHECK;
/* The last error message of this connection ("" if none). */
const char *db_error(const struct db *db);
/* Whether the last failure may pass by itself: the connection is gone or
 * the server answered with a connection, shutdown, resource, lock or
 * serialization error. Anything else (a constraint, a bad value) will fail
 * the same way again. */
bool db_transient(const struct db *db);
/* SQLSTATE of the last failed statement ("" if none or no answer). */
const char *db_sqlstate(const struct db *db);
const char *db_schema(const struct db *db);

/* statements: params may be NULL entries (SQL NULL). res may be NULL when
 * the caller wants no rows. */
enum rc db_exec(struct db *db, const char *sql, int nparams, const char *const *params,
		struct db_res **res) ZCRM_MUSTCHECK;
/* Named prepared statement: prepared on first use on this connection. */
enum rc db_prepared(struct db *db, const char *name, const char *sql, int nparams,
		    const char *const *params, struct db_res **res) ZCRM_MUSTCHECK;
/* A multi-statement script without parameters (migrations). */
enum rc db_script(struct db *db, const char *sql) ZCRM_MUSTCHECK;
/* One statement in two halves: db_send returns once it is sent, so the
 * caller can work elsewhere (another connection, its own CPU) while the
 * server runs it; db_wait collects the outcome. Nothing else may run on
 * this connection in between. params as db_exec. */
enum rc db_send(struct db *db, const char *sql, int nparams,
		const char *const *params) ZCRM_MUSTCHECK;
enum rc db_wait(struct db *db, struct db_res **res) ZCRM_MUSTCHECK;
/* After db_send: true once db_wait would not block (the answer is in, or
 * the connection failed). Never blocks. */
bool db_ready(struct db *db);

enum rc db_begin(struct db *db) ZCRM_MUSTCHECK;
enum rc db_commit(struct db *db) ZCRM_MUSTCHECK;
/* Best effort; safe when no transaction is open. */
void db_rollback(struct db *db);

/* results */
int db_res_rows(const struct db_res *res);
int db_res_cols(const struct db_res *res);
/* NULL for SQL NULL. Valid until db_res_free. */
const char *db_res_get(const struct db_res *res, int row, int col);
bool db_res_isnull(const struct db_res *res, int row, int col);
/* Affected rows of INSERT/UPDATE/DELETE/COPY. */
long db_res_affected(const struct db_res *res);
const char *db_res_colname(const struct db_res *res, int col);
void db_res_free(struct db_res *res);

/* COPY … FROM STDIN */
enum rc db_copy_begin(struct db *db, const char *sql) ZCRM_MUSTCHECK;
enum rc db_copy_put(struct db *db, const void *buf, size_t len) ZCRM_MUSTCHECK;
/* Ends the COPY; errmsg NULL for success, else aborts it with that text. */
enum rc db_copy_end(struct db *db, const char *errmsg, long *rows) ZCRM_MUSTCHECK;

/* identifiers and literals */
/* A bigint[] parameter literal of the ids: {1,2,3}. Caller frees. */
char *db_int64_array(const int64_t *ids, size_t n);
/* A text[] parameter literal: {"a","b\"c"}, every element quoted (so
 * NULL, braces and commas are plain text). lens may be NULL (strlen);
 * an element must not contain a NUL byte. Caller frees. */
char *db_text_array(const char *const *items, const size_t *lens, size_t n);
/* A quoted identifier (PQescapeIdentifier); caller frees. */
char *db_quote_ident(struct db *db, const char *name);

/* advisory locks (session level), keyed by two strings hashed to int4s */
enum rc db_try_lock(struct db *db, const char *job, const char *module, bool *got) ZCRM_MUSTCHECK;
enum rc db_unlock(struct db *db, const char *job, const char *module) ZCRM_MUSTCHECK;

/* One-value helpers: first column of the first row, or NULL/false. */
enum rc db_query_value(struct db *db, const char *sql, int nparams, const char *const *params,
		       char **value) ZCRM_MUSTCHECK;

/* migrations (migrate.c): apply every embedded sql/NNN_*.sql not yet in
 * schema_migrations, each in its own transaction; applied counts them. */
enum rc db_migrate(struct db *db, int *applied) ZCRM_MUSTCHECK;
/* Highest applied migration version, 0 if none. */
enum rc db_schema_version(struct db *db, int *version) ZCRM_MUSTCHECK;

#endif
