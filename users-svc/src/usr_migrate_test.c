/* usr_migrate_test.c - migration names and ordering, and the embedded set. */
#include <stdio.h>
#include <string.h>

#include "usr_migrate.h"

typedef struct {
  const char *name;
  const char *files[4];
  int ok;
  int order[4]; /* expected versions in order when ok */
} mig_case;

static const mig_case cases[] = {
    {"sorted", {"0001_users.sql", "0002_index.sql", NULL}, 1, {1, 2}},
    {"out of order", {"0010_c.sql", "0002_b.sql", "0001_a.sql", NULL}, 1, {1, 2, 10}},
    {"numeric not text order", {"10000_big.sql", "9999_small.sql", NULL}, 1, {9999, 10000}},
    {"duplicate version", {"0001_a.sql", "0001_b.sql", NULL}, 0, {0}},
    {"duplicate with leading zeros", {"0002_a.sql", "00002_b.sql", NULL}, 0, {0}},
    {"three digits", {"001_a.sql", NULL}, 0, {0}},
    {"version zero", {"0000_a.sql", NULL}, 0, {0}},
    {"no name", {"0001_.sql", NULL}, 0, {0}},
    {"no underscore", {"0001users.sql", NULL}, 0, {0}},
    {"upper case name", {"0001_Users.sql", NULL}, 0, {0}},
    {"wrong suffix", {"0001_users.sql.bak", NULL}, 0, {0}},
    {"dash in name", {"0001_a-b.sql", NULL}, 0, {0}},
};

int main(void) {
  int failed = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const mig_case *c = &cases[i];
    usr_mig_file files[4];
    size_t n = 0;
    for (; n < 4 && c->files[n] != NULL; n++)
      files[n] = (usr_mig_file){c->files[n], "", 0};
    usr_mig plan[4];
    char err[256] = "";
    int rc = usr_mig_plan(files, n, plan, err, sizeof err);
    if ((rc == 0) != c->ok) {
      printf("FAIL %s: rc %d (%s)\n", c->name, rc, err);
      failed++;
      continue;
    }
    if (rc != 0 && err[0] == '\0') {
      printf("FAIL %s: no reason given\n", c->name);
      failed++;
    }
    for (size_t k = 0; rc == 0 && k < n; k++) {
      if (plan[k].version != c->order[k]) {
        printf("FAIL %s: position %zu has version %d, want %d\n", c->name, k, plan[k].version,
               c->order[k]);
        failed++;
      }
    }
  }
  /* The set compiled into the binary must itself be a valid plan starting at 1. */
  usr_mig plan[64];
  char err[256] = "";
  if (usr_mig_embedded_count == 0 || usr_mig_embedded_count > 64 ||
      usr_mig_plan(usr_mig_embedded, usr_mig_embedded_count, plan, err, sizeof err) != 0 ||
      plan[0].version != 1 || strstr(plan[0].file->sql, "CREATE TABLE users") == NULL ||
      strlen(plan[0].file->sql) != plan[0].file->len) {
    printf("FAIL embedded migrations: %s\n", err);
    failed++;
  }
  printf("%zu migration cases, %d failed\n", sizeof cases / sizeof cases[0], failed);
  return failed != 0;
}
