/* usr_migrate.c - see usr_migrate.h. */
#include "usr_migrate.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

/* Any constant works; all runs of `migrate` must agree on it. ("usrmigr") */
#define USR_MIG_LOCK_KEY "7599502735918962"

static int usr_mig__parse_name(const char *name, int *version) {
  size_t i = 0;
  long v = 0;
  while (name[i] >= '0' && name[i] <= '9') {
    v = v * 10 + (name[i] - '0');
    if (v > 999999) return -1;
    i++;
  }
  if (i < 4 || v <= 0 || name[i] != '_') return -1;
  size_t start = ++i;
  while ((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '_')
    i++;
  if (i == start || strcmp(name + i, ".sql") != 0) return -1;
  *version = (int)v;
  return 0;
}

static int usr_mig__cmp(const void *a, const void *b) {
  const usr_mig *x = a, *y = b;
  return (x->version > y->version) - (x->version < y->version);
}

int usr_mig_plan(const usr_mig_file *files, size_t n, usr_mig *out, char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    if (usr_mig__parse_name(files[i].file_name, &out[i].version) != 0) {
      snprintf(err, errlen, "migration file name \"%s\" is not NNNN_name.sql", files[i].file_name);
      return -1;
    }
    out[i].file = &files[i];
  }
  qsort(out, n, sizeof *out, usr_mig__cmp);
  for (size_t i = 1; i < n; i++) {
    if (out[i].version == out[i - 1].version) {
      snprintf(err, errlen, "migrations %s and %s share version %d", out[i - 1].file->file_name,
               out[i].file->file_name, out[i].version);
      return -1;
    }
  }
  return 0;
}

/* Runs a command that returns no rows; 0 or -1 with the server's message. */
static int usr_mig__exec(PGconn *c, const char *sql, int nparams, const char *const *params,
                         char *err, size_t errlen) {
  PGresult *r =
      nparams > 0 ? PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0) : PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok) snprintf(err, errlen, "%s", PQerrorMessage(c));
  PQclear(r);
  return ok ? 0 : -1;
}

/* The md5 of each applied version, from schema_migrations. */
typedef struct usr_mig_applied {
  int version;
  char md5[33];
} usr_mig_applied;

static int usr_mig__load_applied(PGconn *c, usr_mig_applied **out, size_t *n, char *err,
                                 size_t errlen) {
  PGresult *r = PQexec(c, "SELECT version, checksum FROM schema_migrations ORDER BY version");
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    snprintf(err, errlen, "reading schema_migrations: %s", PQerrorMessage(c));
    PQclear(r);
    return -1;
  }
  int rows = PQntuples(r);
  usr_mig_applied *a = calloc((size_t)rows + 1, sizeof *a);
  if (a == NULL) {
    PQclear(r);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (int i = 0; i < rows; i++) {
    a[i].version = atoi(PQgetvalue(r, i, 0));
    snprintf(a[i].md5, sizeof a[i].md5, "%s", PQgetvalue(r, i, 1));
  }
  PQclear(r);
  *out = a;
  *n = (size_t)rows;
  return 0;
}

static int usr_mig__md5(PGconn *c, const usr_mig_file *f, char out[33], char *err, size_t errlen) {
  const char *p[1] = {f->sql};
  PGresult *r = PQexecParams(c, "SELECT md5($1)", 1, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    snprintf(err, errlen, "md5: %s", PQerrorMessage(c));
    PQclear(r);
    return -1;
  }
  snprintf(out, 33, "%s", PQgetvalue(r, 0, 0));
  PQclear(r);
  return 0;
}

static int usr_mig__run(PGconn *c, const usr_mig *plan, size_t n, FILE *report, char *err,
                        size_t errlen) {
  if (usr_mig__exec(c,
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())",
                    0, NULL, err, errlen) != 0)
    return -1;
  usr_mig_applied *applied = NULL;
  size_t n_applied = 0;
  if (usr_mig__load_applied(c, &applied, &n_applied, err, errlen) != 0) return -1;
  int rc = 0, done = 0, skipped = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const usr_mig_file *f = plan[i].file;
    char md5[33];
    if (usr_mig__md5(c, f, md5, err, errlen) != 0) {
      rc = -1;
      break;
    }
    const usr_mig_applied *prev = NULL;
    for (size_t k = 0; k < n_applied; k++)
      if (applied[k].version == plan[i].version) prev = &applied[k];
    if (prev != NULL) {
      if (strcmp(prev->md5, md5) != 0) {
        snprintf(err, errlen,
                 "%s was changed after it was applied (md5 %s, applied %s): "
                 "add a new migration instead",
                 f->file_name, md5, prev->md5);
        rc = -1;
      } else {
        fprintf(report, "already applied: %s\n", f->file_name);
        skipped++;
      }
      continue;
    }
    char ver[16];
    snprintf(ver, sizeof ver, "%d", plan[i].version);
    const char *params[3] = {ver, f->file_name, f->sql};
    if (usr_mig__exec(c, "BEGIN", 0, NULL, err, errlen) != 0 ||
        usr_mig__exec(c, f->sql, 0, NULL, err, errlen) != 0 ||
        usr_mig__exec(c,
                      "INSERT INTO schema_migrations (version, name, checksum)"
                      " VALUES ($1::int, $2, md5($3))",
                      3, params, err, errlen) != 0 ||
        usr_mig__exec(c, "COMMIT", 0, NULL, err, errlen) != 0) {
      char why[512];
      snprintf(why, sizeof why, "%s", err);
      snprintf(err, errlen, "%s failed: %s", f->file_name, why);
      PQclear(PQexec(c, "ROLLBACK"));
      rc = -1;
      break;
    }
    fprintf(report, "applied: %s\n", f->file_name);
    done++;
  }
  for (size_t k = 0; rc == 0 && k < n_applied; k++) {
    int known = 0;
    for (size_t i = 0; i < n; i++)
      known |= plan[i].version == applied[k].version;
    if (!known)
      fprintf(report, "note: the database has migration %d, which this binary does not know\n",
              applied[k].version);
  }
  free(applied);
  if (rc == 0) fprintf(report, "migrations: %d applied, %d already applied\n", done, skipped);
  return rc;
}

int usr_mig_apply(const char *url, FILE *report, char *err, size_t errlen) {
  size_t n = usr_mig_embedded_count;
  usr_mig *plan = calloc(n, sizeof *plan);
  if (plan == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (usr_mig_plan(usr_mig_embedded, n, plan, err, errlen) != 0) {
    free(plan);
    return -1;
  }
  /* Our defaults first: the URL's own settings override them. */
  const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
  const char *vals[] = {"10", "users-svc-migrate", url, NULL};
  PGconn *c = PQconnectdbParams(keys, vals, 1);
  if (c == NULL || PQstatus(c) != CONNECTION_OK) {
    snprintf(err, errlen, "cannot connect to PostgreSQL: %s",
             c != NULL ? PQerrorMessage(c) : "out of memory");
    PQfinish(c);
    free(plan);
    return -1;
  }
  /* Serialises concurrent runs: the second waits, then finds everything
   * recorded. A session lock, released by unlock or by disconnecting. */
  int rc = usr_mig__exec(c, "SELECT pg_advisory_lock(" USR_MIG_LOCK_KEY ")", 0, NULL, err, errlen);
  if (rc == 0) {
    rc = usr_mig__run(c, plan, n, report, err, errlen);
    PQclear(PQexec(c, "SELECT pg_advisory_unlock(" USR_MIG_LOCK_KEY ")"));
  }
  PQfinish(c);
  free(plan);
  return rc;
}
