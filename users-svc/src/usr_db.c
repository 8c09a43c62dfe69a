/* usr_db.c - see usr_db.h. */
#include "usr_db.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UDB_COLS                                                                                   \
  "uuid::text, handle, display_name, coalesce(cognito_user_id, ''),"                               \
  " (extract(epoch FROM created_at) * 1000000)::int8"

const upg_stmt udb_stmts[UDB_N_STMTS] = {
    [UDB_PING] = {"ping", "SELECT 1"},
    [UDB_GET_UUID] = {"get_uuid", "SELECT " UDB_COLS " FROM users WHERE uuid = $1::uuid"},
    /* lower(handle) is what the unique index covers, so this is an index scan. */
    [UDB_GET_HANDLE] = {"get_handle",
                        "SELECT " UDB_COLS " FROM users WHERE lower(handle) = lower($1)"},
    [UDB_GET_SUB] = {"get_sub", "SELECT " UDB_COLS " FROM users WHERE cognito_user_id = $1"},
    [UDB_BATCH] = {"batch", "SELECT " UDB_COLS " FROM users"
                            " WHERE uuid = ANY($1::uuid[]) OR lower(handle) = ANY($2::text[])"},
    /* No conflict target: a clash on the handle index or on the sub both end
     * as "no row", and the caller tells them apart. Race-free: the unique
     * indexes decide, not a prior SELECT. */
    [UDB_CREATE] = {"create",
                    "INSERT INTO users (display_name, handle, email, cognito_user_id)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING " UDB_COLS},
    [UDB_SEED] = {"seed", "INSERT INTO users (display_name, handle, email) VALUES ($1, $2, $3)"
                          " ON CONFLICT (lower(handle)) DO NOTHING"},
    /* Rows are locked so that the picture the sync decides on holds until
     * it commits. */
    [UDB_SYNC_BY_SUB] = {"sync_by_sub", "SELECT cognito_user_id FROM users"
                                        " WHERE cognito_user_id = ANY($1::text[]) FOR UPDATE"},
    [UDB_SYNC_BY_HANDLE] = {"sync_by_handle",
                            "SELECT uuid::text, lower(handle), coalesce(cognito_user_id, '')"
                            " FROM users WHERE lower(handle) = ANY($1::text[]) FOR UPDATE"},
    /* Fills empty links only: the sync never moves a linked row. */
    [UDB_SYNC_LINK] = {"sync_link", "UPDATE users AS u SET cognito_user_id = v.sub"
                                    " FROM unnest($1::uuid[], $2::text[]) AS v(uuid, sub)"
                                    " WHERE u.uuid = v.uuid AND u.cognito_user_id IS NULL"},
    /* users-svc link / unlink (usr_link.c), inside one transaction. */
    [UDB_LINK_ROW] = {"link_row", "SELECT uuid::text, handle, coalesce(cognito_user_id, '')"
                                  " FROM users WHERE lower(handle) = lower($1) FOR UPDATE"},
    [UDB_LINK_HOLDER] = {"link_holder",
                         "SELECT handle FROM users WHERE cognito_user_id = $1 FOR UPDATE"},
    [UDB_LINK_SET] = {"link_set", "UPDATE users SET cognito_user_id = nullif($2, '')"
                                  " WHERE uuid = $1::uuid"},
};

int udb_pool_new(const char *url, int size, upg_pool **out) {
  upg_config cfg = {.url = url,
                    .size = size,
                    .statement_timeout_ms = UDB_STATEMENT_TIMEOUT_MS,
                    .connect_timeout_s = 2,
                    .stmts = udb_stmts,
                    .n_stmts = UDB_N_STMTS};
  return upg_pool_new(&cfg, out);
}

/* Column col of row i into dst (cap bytes), cut as snprintf would cut it
 * (the table's CHECKs keep stored values within our buffers). A copy of
 * the length libpq already knows: snprintf's format machinery was 2,300
 * instructions of each GetUser. */
static void udb__col(const PGresult *r, int i, int col, char *dst, size_t cap) {
  size_t n = (size_t)PQgetlength(r, i, col);
  if (n >= cap) n = cap - 1;
  memcpy(dst, PQgetvalue(r, i, col), n);
  dst[n] = '\0';
}

/* An int8 column's text ("-" and digits, from PostgreSQL, so well formed):
 * glibc's strtoll, locale-aware, was 400 instructions of each GetUser. */
static int64_t udb__int8(const char *p) {
  int neg = *p == '-';
  uint64_t v = 0;
  for (p += neg; *p >= '0' && *p <= '9'; p++) v = v * 10 + (uint64_t)(*p - '0');
  return neg ? (int64_t)(0 - v) : (int64_t)v;
}

void udb_row_user(const PGresult *r, int i, usr_user *out) {
  memset(out, 0, sizeof *out);
  udb__col(r, i, 0, out->uuid, sizeof out->uuid);
  udb__col(r, i, 1, out->handle, sizeof out->handle);
  udb__col(r, i, 2, out->display_name, sizeof out->display_name);
  udb__col(r, i, 3, out->cognito_user_id, sizeof out->cognito_user_id);
  out->created_us = udb__int8(PQgetvalue(r, i, 4));
}

int udb_ping(upg_pool *p, int64_t deadline_us) {
  upg_conn *c;
  if (upg_acquire(p, deadline_us, &c) != USR_OK) return 0;
  PGresult *r = NULL;
  usr_err e = upg_exec(c, UDB_PING, 0, NULL, 1, deadline_us, &r, NULL);
  upg_release(c);
  PQclear(r);
  return e == USR_OK;
}

/* One-key lookup on a leased connection: USR_OK with *found = 0 or 1 (and
 * *out filled when 1). */
static usr_err udb__lookup(upg_conn *c, int stmt, const char *key, int64_t deadline_us,
                           usr_user *out, int *found) {
  PGresult *r = NULL;
  const char *params[1] = {key};
  usr_err e = upg_exec(c, stmt, 1, params, 1, deadline_us, &r, NULL);
  if (e != USR_OK) return e;
  *found = PQntuples(r) > 0;
  if (*found) udb_row_user(r, 0, out);
  PQclear(r);
  return USR_OK;
}

usr_err udb_get(upg_pool *p, udb_key kind, const char *key, int64_t deadline_us, usr_user *out) {
  int stmt = kind == UDB_KEY_UUID     ? UDB_GET_UUID
             : kind == UDB_KEY_HANDLE ? UDB_GET_HANDLE
                                      : UDB_GET_SUB;
  upg_conn *c;
  usr_err e = upg_acquire(p, deadline_us, &c);
  if (e != USR_OK) return e;
  int found = 0;
  e = udb__lookup(c, stmt, key, deadline_us, out, &found);
  upg_release(c);
  if (e == USR_OK && !found) e = USR_E_NOT_FOUND;
  return e;
}

char *udb_array_literal(const char *const *v, size_t n, int lower) {
  size_t len = 3;
  for (size_t i = 0; i < n; i++) {
    len += strlen(v[i]) + 3;
    if (len > (64u << 20)) return NULL;
  }
  char *s = malloc(len);
  if (s == NULL) return NULL;
  size_t k = 0;
  s[k++] = '{';
  for (size_t i = 0; i < n; i++) {
    if (i > 0) s[k++] = ',';
    /* Quoted, so that a value like NULL stays a string. */
    s[k++] = '"';
    for (const char *q = v[i]; *q != '\0'; q++)
      s[k++] = lower ? (char)tolower((unsigned char)*q) : *q;
    s[k++] = '"';
  }
  s[k++] = '}';
  s[k] = '\0';
  return s;
}

usr_err udb_batch_get(upg_pool *p, const char *const *uuids, size_t nu, const char *const *handles,
                      size_t nh, int64_t deadline_us, usr_user *out, size_t cap, size_t *n_out) {
  char *a_uuids = udb_array_literal(uuids, nu, 0);
  char *a_handles = udb_array_literal(handles, nh, 1);
  usr_err e = USR_E_INTERNAL;
  upg_conn *c = NULL;
  PGresult *r = NULL;
  if (a_uuids == NULL || a_handles == NULL) goto done;
  if ((e = upg_acquire(p, deadline_us, &c)) != USR_OK) goto done;
  const char *params[2] = {a_uuids, a_handles};
  e = upg_exec(c, UDB_BATCH, 2, params, 1, deadline_us, &r, NULL);
  upg_release(c);
  if (e != USR_OK) goto done;
  int rows = PQntuples(r);
  if ((size_t)rows > cap) {
    e = USR_E_INTERNAL; /* cannot happen: each key matches at most one row */
    goto done;
  }
  for (int i = 0; i < rows; i++)
    udb_row_user(r, i, &out[i]);
  *n_out = (size_t)rows;
done:
  PQclear(r);
  free(a_uuids);
  free(a_handles);
  return e;
}

usr_err udb_create(upg_pool *p, const char *display_name, const char *handle, const char *email,
                   const char *sub, int64_t deadline_us, usr_user *out, int *created) {
  upg_conn *c;
  usr_err e = upg_acquire(p, deadline_us, &c);
  if (e != USR_OK) return e;
  const char *ins[4] = {display_name, handle, email, sub};
  /* Two rounds: a row that blocked our insert can be deleted before we look
   * it up; the second insert then succeeds or finds the new holder. */
  for (int round = 0; round < 2; round++) {
    PGresult *r = NULL;
    e = upg_exec(c, UDB_CREATE, 4, ins, 1, deadline_us, &r, NULL);
    if (e != USR_OK) break;
    *created = PQntuples(r) == 1;
    if (*created) udb_row_user(r, 0, out);
    PQclear(r);
    if (*created) break;
    int found = 0;
    /* The same Cognito user again: idempotent, the existing row. */
    e = udb__lookup(c, UDB_GET_SUB, sub, deadline_us, out, &found);
    if (e != USR_OK || found) break;
    usr_user other;
    e = udb__lookup(c, UDB_GET_HANDLE, handle, deadline_us, &other, &found);
    if (e != USR_OK) break;
    e = found ? USR_E_EXISTS : USR_E_ABORTED;
    if (found) break;
  }
  upg_release(c);
  return e;
}

usr_err udb_seed(upg_pool *p, int64_t deadline_us, int *inserted) {
  static const char *const rows[][3] = {
      {"Andrew Brown", "andrewbrown", "andrew@exampro.co"},
      {"Andrew Bayko", "bayko", "bayko@exampro.co"},
      {"Londo Mollari", "londo", "lmollari@centari.com"},
  };
  upg_conn *c;
  usr_err e = upg_acquire(p, deadline_us, &c);
  if (e != USR_OK) return e;
  int n = 0;
  for (size_t i = 0; i < sizeof rows / sizeof rows[0] && e == USR_OK; i++) {
    PGresult *r = NULL;
    e = upg_exec(c, UDB_SEED, 3, rows[i], 1, deadline_us, &r, NULL);
    if (e == USR_OK) n += atoi(PQcmdTuples(r));
    PQclear(r);
  }
  upg_release(c);
  if (e == USR_OK) *inserted = n;
  return e;
}
