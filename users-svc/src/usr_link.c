/* usr_link.c - see usr_link.h. */
#include "usr_link.h"

#include <stdio.h>
#include <string.h>

/* The steps inside the transaction. */
static usr_err usr_link__tx(upg_conn *c, const char *handle, const char *sub, int64_t deadline_us,
                            usr_link_change *out) {
  PGresult *r = NULL;
  const char *p1[1] = {handle};
  usr_err e = upg_exec(c, UDB_LINK_ROW, 1, p1, 0, deadline_us, &r, NULL);
  if (e == USR_OK && PQntuples(r) != 1) e = USR_E_NOT_FOUND;
  if (e != USR_OK) {
    PQclear(r);
    return e;
  }
  char uuid[37];
  snprintf(uuid, sizeof uuid, "%s", PQgetvalue(r, 0, 0));
  snprintf(out->handle, sizeof out->handle, "%s", PQgetvalue(r, 0, 1));
  snprintf(out->old_sub, sizeof out->old_sub, "%s", PQgetvalue(r, 0, 2));
  snprintf(out->new_sub, sizeof out->new_sub, "%s", sub);
  PQclear(r);
  if (strcmp(out->old_sub, sub) == 0) return USR_OK; /* already so */
  if (sub[0] != '\0') {
    const char *p2[1] = {sub};
    r = NULL;
    e = upg_exec(c, UDB_LINK_HOLDER, 1, p2, 0, deadline_us, &r, NULL);
    if (e == USR_OK && PQntuples(r) > 0) {
      snprintf(out->holder, sizeof out->holder, "%s", PQgetvalue(r, 0, 0));
      e = USR_E_EXISTS;
    }
    PQclear(r);
    if (e != USR_OK) return e;
  }
  const char *p3[2] = {uuid, sub};
  r = NULL;
  e = upg_exec(c, UDB_LINK_SET, 2, p3, 0, deadline_us, &r, NULL);
  PQclear(r);
  return e;
}

usr_err usr_link_set(upg_pool *pool, const char *handle, const char *sub, int64_t deadline_us,
                     usr_link_change *out) {
  usr_link_change t;
  memset(&t, 0, sizeof t);
  upg_conn *c;
  usr_err e = upg_acquire(pool, deadline_us, &c);
  if (e != USR_OK) return e;
  e = upg_command(c, "BEGIN", deadline_us, NULL);
  if (e == USR_OK) e = usr_link__tx(c, handle, sub, deadline_us, &t);
  if (e == USR_OK)
    e = upg_command(c, "COMMIT", deadline_us, NULL);
  else
    upg_command(c, "ROLLBACK", deadline_us, NULL); /* best effort */
  upg_release(c);                                  /* closes it if the transaction is still open */
  if (e == USR_OK || e == USR_E_EXISTS) *out = t;
  return e;
}
