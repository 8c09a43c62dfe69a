/* fuzz_cognito_users.c - Cognito ListUsers answers as users-svc reads them
 * (usr_cognito.c ucog_parse_page / ucog_list_all) and the sorting of the
 * users into sync categories that follows (usr_sync.c usr_sync_classify).
 *
 * Input: one or more ListUsers answers separated by the byte 0x1e; they are
 * served in order as the pages of one pool (a missing page is an upstream
 * error). Invariants: a page adds exactly its Users entries; every page
 * cap and token-loop check holds; each user ends up in exactly one sync
 * category; candidates are sorted, lower-cased valid handles with valid
 * subs. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "usr_cognito.h"
#include "usr_sync.h"
#include "usr_valid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PAGES 8

typedef struct pages {
  const char *p[MAX_PAGES + 2];
  size_t n[MAX_PAGES + 2];
  size_t count, next;
  int fetches;
} pages;

static usr_err fetch(void *user, const cJSON *req, cJSON **resp) {
  pages *pg = user;
  pg->fetches++;
  const cJSON *pool = cJSON_GetObjectItemCaseSensitive(req, "UserPoolId");
  if (!cJSON_IsString(pool) || strcmp(pool->valuestring, "us-east-1_Fuzz0") != 0) abort();
  const cJSON *tok = cJSON_GetObjectItemCaseSensitive(req, "PaginationToken");
  if ((pg->next == 0) != (tok == NULL)) abort(); /* a token on every page but the first */
  if (pg->next >= pg->count) return USR_E_UPSTREAM;
  size_t i = pg->next++;
  cJSON *r = cJSON_ParseWithLength(pg->p[i], pg->n[i]);
  if (r == NULL) return USR_E_UPSTREAM;
  *resp = r;
  return USR_OK;
}

static void check_page(const char *s, size_t n) {
  cJSON *r = cJSON_ParseWithLength(s, n);
  ucog_list l;
  memset(&l, 0, sizeof l);
  char *next = (char *)"untouched";
  ucog_code c = ucog_parse_page(r, &l, &next);
  if (c == UCOG_OK) {
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(r, "Users");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(r, "PaginationToken");
    if (l.n != (size_t)cJSON_GetArraySize(users) || l.pages != 1) abort();
    if (cJSON_IsString(tok) && tok->valuestring[0] != '\0') {
      if (next == NULL || strcmp(next, tok->valuestring) != 0) abort();
      free(next);
    } else if (next != NULL) {
      abort();
    }
    for (size_t i = 0; i < l.n; i++) {
      const ucog_user *u = &l.v[i];
      if (u->sub && strlen(u->sub) > n) abort();
    }
  } else if (l.n != 0 || strcmp(next, "untouched") != 0) {
    abort(); /* nothing appended, token untouched */
  }
  ucog_list_free(&l);
  cJSON_Delete(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 100000) return 0;
  pages pg;
  memset(&pg, 0, sizeof pg);
  const char *s = (const char *)data, *end = s + size;
  while (pg.count < MAX_PAGES + 1) {
    const char *sep = memchr(s, 0x1e, (size_t)(end - s));
    pg.p[pg.count] = s;
    pg.n[pg.count] = sep ? (size_t)(sep - s) : (size_t)(end - s);
    pg.count++;
    if (sep == NULL) break;
    s = sep + 1;
  }
  check_page(pg.p[0], pg.n[0]);

  ucog_list l;
  memset(&l, 0, sizeof l);
  usr_err e = ucog_list_all("us-east-1_Fuzz0", fetch, &pg, MAX_PAGES, &l);
  if (pg.fetches > MAX_PAGES) abort(); /* the page cap holds */
  if (e == USR_OK) {
    if (l.pages < 1 || l.pages != pg.fetches) abort();
    usr_sync_report rep;
    memset(&rep, 0, sizeof rep);
    usr_sync_cand *c = NULL;
    size_t n = 0;
    if (usr_sync_classify(&l, &rep, &c, &n) == USR_OK) {
      if ((size_t)rep.scanned != l.n) abort();
      if ((size_t)rep.incomplete + (size_t)rep.unmatched + n != l.n) abort();
      if ((size_t)rep.conflicts > n || rep.n_names > USR_SYNC_MAX_NAMES ||
          rep.n_conflict_names > USR_SYNC_MAX_NAMES)
        abort();
      for (size_t i = 0; i < n; i++) {
        /* Every candidate has a usable sub; only a well-formed claim has a
         * handle, lower-cased; the array is sorted by handle. */
        if (uv_cognito_user_id(c[i].sub) != UV_OK) abort();
        if ((c[i].claim == USR_CLAIM_OK) != (c[i].handle[0] != '\0')) abort();
        if (c[i].claim == USR_CLAIM_OK && uv_handle(c[i].handle) != UV_OK) abort();
        for (const char *h = c[i].handle; *h; h++)
          if (isupper((unsigned char)*h)) abort();
        if (i > 0 && strcmp(c[i - 1].handle, c[i].handle) > 0) abort();
      }
      /* No row linked (as for an empty table): of the users claiming one
       * handle, at most one is left to link; the others are conflicts. */
      usr_sync_claims(c, n, &rep);
      for (size_t i = 0, open = 0; i < n; i++) {
        if (i == 0 || strcmp(c[i - 1].handle, c[i].handle) != 0) open = 0;
        open += c[i].claim == USR_CLAIM_OK && !c[i].conflict;
        if (open > 1) abort(); /* one handle claimed twice is never linked */
      }
      if ((size_t)rep.conflicts > n) abort();
    }
    free(c);
    usr_sync_report_free(&rep);
  }
  ucog_list_free(&l);
  return 0;
}
