/* usr_migrate.h - versioned schema migrations, embedded in the binary.
 *
 * users-svc/migrations/NNNN_name.sql files are compiled in at build time
 * (cmake/embed_migrations.cmake writes usr_mig_embedded). `users-svc migrate`
 * applies the ones not yet recorded in schema_migrations, in version order,
 * each in its own transaction, under a PostgreSQL advisory lock so two
 * concurrent runs apply each migration once.
 */
#ifndef USERS_USR_MIGRATE_H
#define USERS_USR_MIGRATE_H

#include <stddef.h>
#include <stdio.h>

typedef struct usr_mig_file {
  const char *file_name; /* "0001_users.sql" */
  const char *sql;
  size_t len;
} usr_mig_file;

/* Generated: every file of users-svc/migrations, in directory order. */
extern const usr_mig_file usr_mig_embedded[];
extern const unsigned usr_mig_embedded_count;

typedef struct usr_mig {
  int version;              /* NNNN, > 0 */
  const usr_mig_file *file; /* reference into the input table */
} usr_mig;

/* Checks every name is NNNN_name.sql (4+ digits, version > 0, name of
 * [a-z0-9_]) and sorts by version into out[0..n). Returns 0, or -1 with a
 * reason in err (bad name, duplicate version); out is then unspecified.
 * Nothing is allocated. */
int usr_mig_plan(const usr_mig_file *files, size_t n, usr_mig *out, char *err, size_t errlen);

/* Applies the embedded migrations to the database at `url`, writing one line
 * per migration to `report`. Fails (returns -1, reason in err) when the
 * database is unreachable, a migration fails (its transaction is rolled back,
 * later ones are not tried) or an applied migration's text has changed since
 * (its md5 differs). Returns 0 when everything is applied. */
int usr_mig_apply(const char *url, FILE *report, char *err, size_t errlen);

#endif
