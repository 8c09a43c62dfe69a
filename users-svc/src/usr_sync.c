/* usr_sync.c - see usr_sync.h. */
#include "usr_sync.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cruddur/log.h"
#include "cruddur/ts.h"
#include "usr_db.h"
#include "usr_valid.h"

static void usr_sync__name(char **names, size_t *n, const char *username) {
  if (*n >= USR_SYNC_MAX_NAMES) return;
  char *s = strdup(username != NULL ? username : "");
  if (s != NULL) names[(*n)++] = s;
}

void usr_sync_report_free(usr_sync_report *rep) {
  for (size_t i = 0; i < rep->n_names; i++)
    free(rep->names[i]);
  for (size_t i = 0; i < rep->n_conflict_names; i++)
    free(rep->conflict_names[i]);
  rep->n_names = rep->n_conflict_names = 0;
}

static int usr_sync__by_handle(const void *a, const void *b) {
  return strcmp(((const usr_sync_cand *)a)->handle, ((const usr_sync_cand *)b)->handle);
}

static int usr_sync__by_sub(const void *a, const void *b) {
  return strcmp((*(usr_sync_cand *const *)a)->sub, (*(usr_sync_cand *const *)b)->sub);
}

/* Marks c a conflict, counts and names it, and says why in the log (at
 * most USR_SYNC_MAX_NAMES lines a run: the report names no more either). */
static void usr_sync__conflict(usr_sync_report *rep, usr_sync_cand *c, const char *why) {
  if (c->conflict) return;
  c->conflict = 1;
  rep->conflicts++;
  if (rep->n_conflict_names < USR_SYNC_MAX_NAMES)
    log_warn("cognito sync: conflict: Cognito user %s (sub %s) %s; nothing changed", c->username,
             c->sub, why);
  usr_sync__name(rep->conflict_names, &rep->n_conflict_names, c->username);
}

usr_err usr_sync_classify(const ucog_list *list, usr_sync_report *rep, usr_sync_cand **out,
                          size_t *n_out) {
  usr_sync_cand *c = list->n > 0 ? calloc(list->n, sizeof *c) : NULL;
  usr_sync_cand **by_sub = list->n > 0 ? calloc(list->n, sizeof *by_sub) : NULL;
  if (list->n > 0 && (c == NULL || by_sub == NULL)) {
    free(c);
    free(by_sub);
    return USR_E_INTERNAL;
  }
  size_t n = 0;
  rep->scanned += (int)list->n;
  for (size_t i = 0; i < list->n; i++) {
    const ucog_user *u = &list->v[i];
    if (u->sub == NULL || uv_cognito_user_id(u->sub) != UV_OK) {
      rep->incomplete++;
      usr_sync__name(rep->names, &rep->n_names, u->username);
      continue;
    }
    usr_sync_cand *k = &c[n++];
    const char *pref = u->preferred_username;
    if (pref == NULL || pref[0] == '\0') {
      k->claim = USR_CLAIM_NONE;
    } else if (uv_handle(pref) != UV_OK) {
      k->claim = USR_CLAIM_BAD_SHAPE; /* no handle can have that shape */
    } else {
      for (size_t j = 0; pref[j] != '\0'; j++)
        k->handle[j] = (char)tolower((unsigned char)pref[j]);
    }
    k->sub = u->sub;
    k->username = u->username != NULL ? u->username : "";
    k->row = -1;
  }
  if (n > 1) {
    qsort(c, n, sizeof *c, usr_sync__by_handle);
    for (size_t i = 0; i < n; i++)
      by_sub[i] = &c[i];
    qsort(by_sub, n, sizeof *by_sub, usr_sync__by_sub);
    for (size_t i = 1; i < n; i++) {
      if (strcmp(by_sub[i]->sub, by_sub[i - 1]->sub) == 0) {
        usr_sync__conflict(rep, by_sub[i - 1], "shares its sub with another Cognito user");
        usr_sync__conflict(rep, by_sub[i], "shares its sub with another Cognito user");
      }
    }
  }
  free(by_sub);
  *out = c;
  *n_out = n;
  return USR_OK;
}

/* Still to be decided after the by-sub lookup: not a conflict, not linked. */
static int usr_sync__open(const usr_sync_cand *k) {
  return !k->conflict && !k->linked;
}

void usr_sync_claims(usr_sync_cand *c, size_t n, usr_sync_report *rep) {
  for (size_t i = 0; i < n; i++) {
    usr_sync_cand *k = &c[i];
    if (k->conflict) continue;
    if (k->linked) {
      rep->matched++;
    } else if (k->claim != USR_CLAIM_OK) {
      if (k->claim == USR_CLAIM_NONE)
        rep->incomplete++;
      else
        rep->unmatched++;
      usr_sync__name(rep->names, &rep->n_names, k->username);
    }
  }
  /* c is sorted by handle: equal claims are neighbours. Only unlinked users
   * compete for a row; a linked user's preferred_username claims nothing. */
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && strcmp(c[j].handle, c[i].handle) == 0)
      j++;
    size_t open = 0;
    for (size_t k = i; k < j; k++)
      open += usr_sync__open(&c[k]) && c[k].claim == USR_CLAIM_OK;
    if (open > 1)
      for (size_t k = i; k < j; k++)
        if (usr_sync__open(&c[k]) && c[k].claim == USR_CLAIM_OK)
          usr_sync__conflict(rep, &c[k], "claims a handle other Cognito users also claim");
    i = j;
  }
}

/* The candidates whose sub (or handle) the database must look up, as an
 * array literal: subs of all non-conflicts, handles of the open claims. */
static char *usr_sync__literal(usr_sync_cand *c, size_t n, int subs) {
  const char **v = malloc((n + 1) * sizeof *v);
  if (v == NULL) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (subs && !c[i].conflict) v[k++] = c[i].sub;
    if (!subs && usr_sync__open(&c[i]) && c[i].claim == USR_CLAIM_OK) v[k++] = c[i].handle;
  }
  char *s = udb_array_literal(v, k, 0);
  free(v);
  return s;
}

/* The open candidate claiming `handle` (at most one after usr_sync_claims). */
static usr_sync_cand *usr_sync__open_claim(usr_sync_cand *c, size_t n, const char *handle) {
  usr_sync_cand key;
  snprintf(key.handle, sizeof key.handle, "%s", handle);
  usr_sync_cand *hit = bsearch(&key, c, n, sizeof *c, usr_sync__by_handle);
  if (hit == NULL) return NULL;
  while (hit > c && strcmp(hit[-1].handle, handle) == 0)
    hit--;
  for (; hit < c + n && strcmp(hit->handle, handle) == 0; hit++)
    if (usr_sync__open(hit)) return hit;
  return NULL;
}

static int usr_sync__cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct usr_sync_tx {
  upg_conn *conn;
  int64_t deadline_us;
  PGresult *linked; /* UDB_SYNC_BY_SUB: cognito_user_id */
  PGresult *rows;   /* UDB_SYNC_BY_HANDLE: uuid, lower(handle), sub or '' */
} usr_sync_tx;

static usr_err usr_sync__exec1(usr_sync_tx *tx, int stmt, int n, const char *const *params,
                               PGresult **out) {
  char state[6];
  usr_err e = upg_exec(tx->conn, stmt, n, params, 0, tx->deadline_us, out, state);
  /* Inside the transaction a unique violation means a concurrent writer
   * (CreateUser) took a sub we were about to store: the caller may retry. */
  if (e == USR_E_EXISTS || e == USR_E_INVALID) e = USR_E_ABORTED;
  return e;
}

/* Marks the candidates whose sub some row holds already. */
static usr_err usr_sync__mark_linked(usr_sync_tx *tx, usr_sync_cand *c, size_t n) {
  char *lit = usr_sync__literal(c, n, 1);
  if (lit == NULL) return USR_E_INTERNAL;
  const char *p[1] = {lit};
  usr_err e = usr_sync__exec1(tx, UDB_SYNC_BY_SUB, 1, p, &tx->linked);
  free(lit);
  if (e != USR_OK) return e;
  int rows = PQntuples(tx->linked);
  const char **held = malloc(((size_t)rows + 1) * sizeof *held);
  if (held == NULL) return USR_E_INTERNAL;
  for (int i = 0; i < rows; i++)
    held[i] = PQgetvalue(tx->linked, i, 0);
  qsort(held, (size_t)rows, sizeof *held, usr_sync__cmp_str);
  for (size_t i = 0; i < n; i++)
    if (!c[i].conflict)
      c[i].linked = bsearch(&c[i].sub, held, (size_t)rows, sizeof *held, usr_sync__cmp_str) != NULL;
  free(held);
  return USR_OK;
}

/* Steps 2..5 of the transaction; see usr_sync_apply. */
static usr_err usr_sync__tx(usr_sync_tx *tx, usr_sync_cand *c, size_t n, usr_sync_report *rep) {
  usr_err e = usr_sync__mark_linked(tx, c, n);
  if (e != USR_OK) return e;
  usr_sync_claims(c, n, rep);

  char *lit = usr_sync__literal(c, n, 0);
  if (lit == NULL) return USR_E_INTERNAL;
  const char *p1[1] = {lit};
  e = usr_sync__exec1(tx, UDB_SYNC_BY_HANDLE, 1, p1, &tx->rows);
  free(lit);
  if (e != USR_OK) return e;
  for (int i = 0; i < PQntuples(tx->rows); i++) {
    usr_sync_cand *k = usr_sync__open_claim(c, n, PQgetvalue(tx->rows, i, 1));
    if (k != NULL) k->row = i;
  }

  const char **uuids = malloc((n + 1) * sizeof *uuids);
  const char **subs = malloc((n + 1) * sizeof *subs);
  if (uuids == NULL || subs == NULL) {
    free(uuids);
    free(subs);
    return USR_E_INTERNAL;
  }
  size_t changes = 0;
  for (size_t i = 0; i < n; i++) {
    usr_sync_cand *k = &c[i];
    if (!usr_sync__open(k) || k->claim != USR_CLAIM_OK) continue;
    if (k->row < 0) {
      rep->unmatched++;
      usr_sync__name(rep->names, &rep->n_names, k->username);
    } else if (PQgetvalue(tx->rows, k->row, 2)[0] != '\0') {
      /* Linked to another sub (ours is linked nowhere): that identity keeps it. */
      usr_sync__conflict(rep, k, "claims a handle linked to another identity");
    } else {
      rep->matched++;
      uuids[changes] = PQgetvalue(tx->rows, k->row, 0);
      subs[changes] = k->sub;
      changes++;
    }
  }
  e = USR_OK;
  if (changes > 0) {
    char *lu = udb_array_literal(uuids, changes, 0);
    char *ls = udb_array_literal(subs, changes, 0);
    PGresult *r = NULL;
    const char *ps[2] = {lu, ls};
    e = lu == NULL || ls == NULL ? USR_E_INTERNAL : usr_sync__exec1(tx, UDB_SYNC_LINK, 2, ps, &r);
    /* The rows are locked and were unlinked, so every one must take its
     * sub; anything else means our picture of the table is wrong. */
    if (e == USR_OK && strtoull(PQcmdTuples(r), NULL, 10) != changes) e = USR_E_ABORTED;
    PQclear(r);
    free(lu);
    free(ls);
  }
  free(uuids);
  free(subs);
  if (e == USR_OK) rep->updated = (int)changes;
  return e;
}

usr_err usr_sync_apply(upg_pool *pool, const ucog_list *list, int64_t deadline_us,
                       usr_sync_report *rep) {
  usr_sync_cand *c = NULL;
  size_t n = 0;
  rep->pages = list->pages;
  usr_err e = usr_sync_classify(list, rep, &c, &n);
  if (e != USR_OK) return e;
  usr_sync_report snapshot = *rep; /* counts before the database step */
  usr_sync_tx tx = {.deadline_us = deadline_us};
  e = upg_acquire(pool, deadline_us, &tx.conn);
  if (e == USR_OK) {
    /* A reused connection may be dead since a restart: the ping retries on a
     * new one, so the transaction starts on a live connection. */
    PGresult *r = NULL;
    e = upg_exec(tx.conn, UDB_PING, 0, NULL, 1, deadline_us, &r, NULL);
    PQclear(r);
    if (e == USR_OK) e = upg_command(tx.conn, "BEGIN", deadline_us, NULL);
    if (e == USR_OK) e = upg_command(tx.conn, UDB_SYNC_STATEMENT_TIMEOUT, deadline_us, NULL);
    if (e == USR_OK) e = usr_sync__tx(&tx, c, n, rep);
    if (e == USR_OK)
      e = upg_command(tx.conn, "COMMIT", deadline_us, NULL);
    else
      upg_command(tx.conn, "ROLLBACK", deadline_us, NULL); /* best effort */
    upg_release(tx.conn); /* closes it if the transaction is still open */
  }
  PQclear(tx.rows);
  PQclear(tx.linked);
  free(c);
  if (e != USR_OK) {
    /* Nothing was written: keep the counts honest about that. Names the
     * database step added are dropped with them. */
    for (size_t i = snapshot.n_names; i < rep->n_names; i++)
      free(rep->names[i]);
    for (size_t i = snapshot.n_conflict_names; i < rep->n_conflict_names; i++)
      free(rep->conflict_names[i]);
    *rep = snapshot;
  }
  return e;
}

typedef struct usr_sync_fetch {
  aws_client *cognito;
  int64_t deadline_us;
} usr_sync_fetch;

static usr_err usr_sync__fetch(void *user, const cJSON *req, cJSON **resp) {
  usr_sync_fetch *f = user;
  int64_t left_ms = (f->deadline_us - ts_mono_us()) / 1000;
  if (left_ms <= 0) return USR_E_DEADLINE;
  aws_error err;
  memset(&err, 0, sizeof err);
  aws_code code = aws_call(f->cognito, "ListUsers", req, left_ms, resp, &err);
  if (code != AWS_OK)
    log_warn("cognito ListUsers failed: %s %s (HTTP %d)", aws_strerror(code), err.name,
             err.http_status);
  return ucog_aws_err(code, err.name);
}

usr_err usr_sync_run(upg_pool *pool, aws_client *cognito, const char *pool_id, int64_t deadline_us,
                     usr_sync_report *rep) {
  if (cognito == NULL || pool_id == NULL || pool_id[0] == '\0') return USR_E_NO_POOL;
  ucog_list list;
  memset(&list, 0, sizeof list);
  usr_sync_fetch f = {.cognito = cognito, .deadline_us = deadline_us};
  usr_err e = ucog_list_all(pool_id, usr_sync__fetch, &f, UCOG_MAX_PAGES, &list);
  if (e == USR_OK)
    e = usr_sync_apply(pool, &list, deadline_us, rep);
  else
    rep->pages = list.pages;
  ucog_list_free(&list);
  if (e == USR_OK)
    log_info("cognito sync: scanned %d matched %d updated %d unmatched %d incomplete %d "
             "conflicts %d pages %d",
             rep->scanned, rep->matched, rep->updated, rep->unmatched, rep->incomplete,
             rep->conflicts, rep->pages);
  return e;
}
