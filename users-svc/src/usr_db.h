/* usr_db.h - the users table: every query users-svc runs, parameterised
 * and prepared through the connection pool (usr_pg.h).
 *
 * Callers validate keys first (usr_valid.h); the database re-checks with
 * constraints. Deadlines are absolute, on the ts_mono_us clock.
 */
#ifndef USERS_USR_DB_H
#define USERS_USR_DB_H

#include <stddef.h>
#include <stdint.h>

#include "usr_err.h"
#include "usr_pg.h"
#include "usr_valid.h"

/* Prepared statements, indexes into udb_stmts. */
enum {
  UDB_PING = 0,
  UDB_GET_UUID,
  UDB_GET_HANDLE,
  UDB_GET_SUB,
  UDB_BATCH,
  UDB_CREATE,
  UDB_SEED,
  UDB_SYNC_BY_SUB,
  UDB_SYNC_BY_HANDLE,
  UDB_SYNC_LINK,
  UDB_LINK_ROW,
  UDB_LINK_HOLDER,
  UDB_LINK_SET,
  UDB_N_STMTS
};
extern const upg_stmt udb_stmts[UDB_N_STMTS];

/* Server-side statement timeout set on every connection (documented in
 * README): a lookup by an indexed key takes well under a millisecond, so
 * anything near 2 s means PostgreSQL is in trouble and the caller is better
 * off with UNAVAILABLE. SyncCognitoUsers raises it for its own transaction. */
#define UDB_STATEMENT_TIMEOUT_MS 2000
#define UDB_SYNC_STATEMENT_TIMEOUT "SET LOCAL statement_timeout = 30000"

/* A user row as other services see it (no e-mail). */
typedef struct usr_user {
  char uuid[37];
  char handle[USR_HANDLE_MAX + 1];
  char display_name[USR_NAME_MAX_BYTES + 1];
  char cognito_user_id[USR_SUB_MAX + 1]; /* "" when not linked */
  int64_t created_us;                    /* microseconds since the epoch, UTC */
} usr_user;

typedef enum { UDB_KEY_UUID, UDB_KEY_HANDLE, UDB_KEY_SUB } udb_key;

/* Creates the pool for `url` with the statements above. Returns 0 or -1. */
int udb_pool_new(const char *url, int size, upg_pool **out);

/* 1 when PostgreSQL answers SELECT 1 before the deadline, else 0. */
int udb_ping(upg_pool *p, int64_t deadline_us);

/* One user by a (valid) key. USR_E_NOT_FOUND when absent. */
usr_err udb_get(upg_pool *p, udb_key kind, const char *key, int64_t deadline_us, usr_user *out);

/* Users whose uuid is in uuids or whose handle is in handles
 * (case-insensitively); each at most once. out has room for `cap` users
 * (cap >= nu + nh suffices). *n_out is set on success. */
usr_err udb_batch_get(upg_pool *p, const char *const *uuids, size_t nu, const char *const *handles,
                      size_t nh, int64_t deadline_us, usr_user *out, size_t cap, size_t *n_out);

/* Inserts a user (fields valid), or finds the one already holding `sub`.
 * *created = 1 when this call inserted. USR_E_EXISTS when the handle
 * (case-insensitively) belongs to a user with another (or no) sub. */
usr_err udb_create(upg_pool *p, const char *display_name, const char *handle, const char *email,
                   const char *sub, int64_t deadline_us, usr_user *out, int *created);

/* The dev users (andrewbrown, bayko, londo), inserted unless their handle
 * exists. *inserted counts new rows. */
usr_err udb_seed(upg_pool *p, int64_t deadline_us, int *inserted);

/* Builds a PostgreSQL array literal {"a","b"} of n strings (which must not
 * contain '"' or '\\': callers pass validated keys), lower-casing ASCII when
 * `lower`. Returns a malloc'd string (caller frees) or NULL on out-of-memory
 * or if the result would exceed 64 MiB. */
char *udb_array_literal(const char *const *v, size_t n, int lower);

/* Copies row `i` of a result with the user columns into *out. */
void udb_row_user(const PGresult *r, int i, usr_user *out);

#endif
