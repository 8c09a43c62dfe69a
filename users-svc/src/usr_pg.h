/* usr_pg.h - a bounded pool of libpq connections with prepared statements.
 *
 * `size` connections at most, opened lazily. Each connection runs
 * `SET statement_timeout` once and prepares a statement the first time it is
 * used (PQprepare once per connection). Queries run asynchronously with a
 * deadline, so a caller never waits past its RPC deadline.
 *
 * Failure handling: a connection that breaks (PostgreSQL restarted, socket
 * closed, deadline passed mid-query) is closed when released; the next
 * lease reconnects. Failed connects open a back-off window (100 ms doubling
 * to 1 s) during which callers get USR_E_UNAVAILABLE at once instead of
 * hammering a dead server. Idempotent statements (retry = 1) that fail on a
 * connection reused from the pool are retried once on a fresh connection,
 * so a restart that happened while the pool was idle costs nobody an error.
 *
 * Thread-safe: a leased connection belongs to one thread until released.
 */
#ifndef USERS_USR_PG_H
#define USERS_USR_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "usr_err.h"

#define UPG_MAX_STMTS 32
#define UPG_MAX_SIZE 64

typedef struct upg_pool upg_pool;
typedef struct upg_conn upg_conn;

typedef struct upg_stmt {
  const char *name; /* server-side statement name */
  const char *sql;  /* with $1.. placeholders */
} upg_stmt;

typedef struct upg_config {
  const char *url;          /* libpq URL or conninfo; copied */
  int size;                 /* 1..UPG_MAX_SIZE */
  int statement_timeout_ms; /* server-side, per statement; > 0 */
  int connect_timeout_s;    /* >= 2 (libpq's minimum) */
  const upg_stmt *stmts;    /* static table, indexed by upg_exec's stmt */
  size_t n_stmts;           /* <= UPG_MAX_STMTS */
} upg_config;

/* Creates a pool; connects nothing yet. Returns 0 and sets *out (free with
 * upg_pool_free), or -1 on a bad config or out-of-memory (nothing allocated). */
int upg_pool_new(const upg_config *cfg, upg_pool **out);

/* Closes every connection and frees the pool. No lease may be outstanding.
 * NULL is a no-op. */
void upg_pool_free(upg_pool *p);

/* Leases a connection, waiting for a free one until `deadline_us`
 * (ts_mono_us clock), and connects it when needed. USR_E_UNAVAILABLE when
 * the pool stays busy until the deadline or PostgreSQL cannot be reached.
 * On success *out must be given back with upg_release. */
usr_err upg_acquire(upg_pool *p, int64_t deadline_us, upg_conn **out);

/* Gives a lease back. A broken connection, or one left inside a transaction,
 * is closed (the next lease reconnects). */
void upg_release(upg_conn *c);

/* Runs prepared statement `stmt` (index into cfg->stmts) with text params.
 * `retry`: the statement is idempotent and runs outside a transaction, so a
 * failure of a reused connection may be retried once on a new one.
 * On USR_OK, *out holds the result (PGRES_TUPLES_OK or COMMAND_OK); the
 * caller PQclear()s it. On error *out is untouched; `sqlstate` (6 bytes, may
 * be NULL) receives the server's SQLSTATE or "" when there is none. */
usr_err upg_exec(upg_conn *c, int stmt, int nparams, const char *const *params, int retry,
                 int64_t deadline_us, PGresult **out, char *sqlstate);

/* Runs a parameterless command that returns no rows we need (BEGIN, COMMIT,
 * SAVEPOINT). Same error rules as upg_exec; never retried. */
usr_err upg_command(upg_conn *c, const char *sql, int64_t deadline_us, char *sqlstate);

/* The domain error for a SQLSTATE (exposed for the unit test). */
usr_err upg_sqlstate_err(const char *sqlstate);

#endif
