/* usr_cognito_test.c - ListUsers parsing, pagination, error mapping and the
 * sync classification, as pure functions over canned JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usr_cognito.h"
#include "usr_sync.h"

static int failed;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                  \
      printf(__VA_ARGS__);                                                                         \
      printf("\n");                                                                                \
      failed++;                                                                                    \
    }                                                                                              \
  } while (0)

static int streq(const char *a, const char *b) {
  if (a == NULL || b == NULL) return a == b;
  return strcmp(a, b) == 0;
}

/* ---- one page ------------------------------------------------------------ */

typedef struct {
  const char *name;
  const char *json;
  ucog_code want;
  size_t users;
  const char *token; /* NULL: last page */
  /* first user's fields */
  const char *username, *sub, *pref;
} page_case;

static const page_case pages[] = {
    {"two users and a token",
     "{\"Users\":[{\"Username\":\"andrewbrown\",\"Attributes\":["
     "{\"Name\":\"sub\",\"Value\":\"s-1\"},{\"Name\":\"email\",\"Value\":\"a@b.c\"},"
     "{\"Name\":\"preferred_username\",\"Value\":\"andrewbrown\"}],\"Enabled\":true},"
     "{\"Username\":\"bayko\",\"Attributes\":[]}],\"PaginationToken\":\"tok-2\"}",
     UCOG_OK, 2, "tok-2", "andrewbrown", "s-1", "andrewbrown"},
    {"last page without token", "{\"Users\":[{\"Username\":\"x\"}]}", UCOG_OK, 1, NULL, "x", NULL,
     NULL},
    {"empty token is the last page", "{\"Users\":[],\"PaginationToken\":\"\"}", UCOG_OK, 0, NULL,
     NULL, NULL, NULL},
    {"null token is the last page", "{\"Users\":[],\"PaginationToken\":null}", UCOG_OK, 0, NULL,
     NULL, NULL, NULL},
    {"missing attributes", "{\"Users\":[{\"Username\":\"nobody\"}]}", UCOG_OK, 1, NULL, "nobody",
     NULL, NULL},
    {"attributes not an array", "{\"Users\":[{\"Username\":\"u\",\"Attributes\":{}}]}", UCOG_OK, 1,
     NULL, "u", NULL, NULL},
    {"attribute without value",
     "{\"Users\":[{\"Username\":\"u\",\"Attributes\":[{\"Name\":\"sub\"},"
     "{\"Name\":\"preferred_username\",\"Value\":7}]}]}",
     UCOG_OK, 1, NULL, "u", NULL, NULL},
    {"first of a repeated attribute wins",
     "{\"Users\":[{\"Username\":\"u\",\"Attributes\":[{\"Name\":\"sub\",\"Value\":\"a\"},"
     "{\"Name\":\"sub\",\"Value\":\"b\"}]}]}",
     UCOG_OK, 1, NULL, "u", "a", NULL},
    {"user not an object", "{\"Users\":[42]}", UCOG_OK, 1, NULL, NULL, NULL, NULL},
    {"no Users", "{\"PaginationToken\":\"t\"}", UCOG_E_SHAPE, 0, NULL, NULL, NULL, NULL},
    {"Users not an array", "{\"Users\":{}}", UCOG_E_SHAPE, 0, NULL, NULL, NULL, NULL},
    {"token not a string", "{\"Users\":[],\"PaginationToken\":5}", UCOG_E_SHAPE, 0, NULL, NULL,
     NULL, NULL},
    {"error body",
     "{\"__type\":\"ResourceNotFoundException\",\"message\":\"User pool x does not exist.\"}",
     UCOG_E_SHAPE, 0, NULL, NULL, NULL, NULL},
    {"not an object", "[]", UCOG_E_SHAPE, 0, NULL, NULL, NULL, NULL},
};

static void test_pages(void) {
  for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
    const page_case *c = &pages[i];
    cJSON *j = cJSON_Parse(c->json);
    CHECK(j != NULL, "%s: test JSON does not parse", c->name);
    ucog_list list;
    memset(&list, 0, sizeof list);
    char *tok = (char *)"untouched";
    ucog_code got = ucog_parse_page(j, &list, &tok);
    CHECK(got == c->want, "%s: code %d, want %d", c->name, got, c->want);
    if (got == UCOG_OK) {
      CHECK(list.n == c->users, "%s: %zu users, want %zu", c->name, list.n, c->users);
      CHECK(streq(tok, c->token), "%s: token %s", c->name, tok ? tok : "(null)");
      CHECK(list.pages == 1, "%s: pages %d", c->name, list.pages);
      if (list.n > 0) {
        CHECK(streq(list.v[0].username, c->username), "%s: username", c->name);
        CHECK(streq(list.v[0].sub, c->sub), "%s: sub %s", c->name, list.v[0].sub);
        CHECK(streq(list.v[0].preferred_username, c->pref), "%s: preferred_username", c->name);
      }
      free(tok);
    } else {
      CHECK(list.n == 0 && strcmp(tok, "untouched") == 0, "%s: touched on error", c->name);
    }
    ucog_list_free(&list);
    cJSON_Delete(j);
  }
}

/* ---- following tokens ----------------------------------------------------- */

typedef struct {
  const char *const *answers; /* one JSON per call; NULL entry = fetch error */
  int calls;
  char seen_tokens[8][32]; /* PaginationToken of each request ("" none) */
  int limit_ok;
} fake;

static usr_err fake_fetch(void *user, const cJSON *req, cJSON **resp) {
  fake *f = user;
  const cJSON *tok = cJSON_GetObjectItemCaseSensitive(req, "PaginationToken");
  const cJSON *pool = cJSON_GetObjectItemCaseSensitive(req, "UserPoolId");
  const cJSON *limit = cJSON_GetObjectItemCaseSensitive(req, "Limit");
  if (f->calls < 8)
    snprintf(f->seen_tokens[f->calls], 32, "%s", cJSON_IsString(tok) ? tok->valuestring : "");
  f->limit_ok = cJSON_IsNumber(limit) && limit->valueint == 60 && cJSON_IsString(pool) &&
                strcmp(pool->valuestring, "local_pool1") == 0;
  const char *a = f->answers[f->calls++];
  if (a == NULL) return USR_E_UNAVAILABLE;
  *resp = cJSON_Parse(a);
  return *resp != NULL ? USR_OK : USR_E_INTERNAL;
}

#define U(name, sub, pref)                                                                         \
  "{\"Username\":\"" name "\",\"Attributes\":[{\"Name\":\"sub\",\"Value\":\"" sub "\"},"           \
  "{\"Name\":\"preferred_username\",\"Value\":\"" pref "\"}]}"

static void test_paging(void) {
  /* Three pages, tokens followed in order, all users collected. */
  const char *three[] = {
      "{\"Users\":[" U("a", "s1", "a") "," U("b", "s2", "b") "],\"PaginationToken\":\"p2\"}",
      "{\"Users\":[" U("c", "s3", "c") "],\"PaginationToken\":\"p3\"}",
      "{\"Users\":[" U("d", "s4", "d") "]}", NULL};
  fake f = {.answers = three};
  ucog_list l;
  memset(&l, 0, sizeof l);
  usr_err e = ucog_list_all("local_pool1", fake_fetch, &f, 10, &l);
  CHECK(e == USR_OK, "three pages: %d", e);
  CHECK(l.n == 4 && l.pages == 3 && f.calls == 3, "three pages: n %zu pages %d calls %d", l.n,
        l.pages, f.calls);
  CHECK(strcmp(f.seen_tokens[0], "") == 0 && strcmp(f.seen_tokens[1], "p2") == 0 &&
            strcmp(f.seen_tokens[2], "p3") == 0,
        "tokens sent: [%s] [%s] [%s]", f.seen_tokens[0], f.seen_tokens[1], f.seen_tokens[2]);
  CHECK(f.limit_ok, "request carries UserPoolId and Limit 60");
  CHECK(streq(l.v[3].username, "d"), "order kept");
  ucog_list_free(&l);

  /* The same token twice: a loop, refused (nothing partial is applied). */
  const char *loop[] = {"{\"Users\":[],\"PaginationToken\":\"same\"}",
                        "{\"Users\":[],\"PaginationToken\":\"same\"}",
                        "{\"Users\":[],\"PaginationToken\":\"same\"}", NULL};
  fake g = {.answers = loop};
  memset(&l, 0, sizeof l);
  e = ucog_list_all("local_pool1", fake_fetch, &g, 10, &l);
  CHECK(e == USR_E_UPSTREAM && g.calls == 2, "token loop: err %d calls %d", e, g.calls);
  ucog_list_free(&l);

  /* Ever-new tokens: stopped by the page cap. */
  const char *endless[] = {"{\"Users\":[],\"PaginationToken\":\"t1\"}",
                           "{\"Users\":[],\"PaginationToken\":\"t2\"}",
                           "{\"Users\":[],\"PaginationToken\":\"t3\"}",
                           "{\"Users\":[],\"PaginationToken\":\"t4\"}", NULL};
  fake h = {.answers = endless};
  memset(&l, 0, sizeof l);
  e = ucog_list_all("local_pool1", fake_fetch, &h, 3, &l);
  CHECK(e == USR_E_UPSTREAM && h.calls == 3, "page cap: err %d calls %d", e, h.calls);
  ucog_list_free(&l);

  /* A failing second page fails the whole listing with the fetch's error. */
  const char *broken[] = {"{\"Users\":[" U("a", "s1", "a") "],\"PaginationToken\":\"p2\"}", NULL};
  fake k = {.answers = broken};
  memset(&l, 0, sizeof l);
  e = ucog_list_all("local_pool1", fake_fetch, &k, 10, &l);
  CHECK(e == USR_E_UNAVAILABLE && k.calls == 2, "fetch error: %d", e);
  ucog_list_free(&l);

  /* An answer of the wrong shape mid-way is an upstream error. */
  const char *shape[] = {"{\"Users\":[],\"PaginationToken\":\"p2\"}", "{\"Nope\":1}", NULL};
  fake m = {.answers = shape};
  memset(&l, 0, sizeof l);
  e = ucog_list_all("local_pool1", fake_fetch, &m, 10, &l);
  CHECK(e == USR_E_UPSTREAM, "bad shape: %d", e);
  ucog_list_free(&l);
}

/* ---- error answers ------------------------------------------------------- */

static void test_errors(void) {
  static const struct {
    aws_code code;
    const char *name;
    usr_err want;
  } c[] = {
      {AWS_OK, "", USR_OK},
      {AWS_E_UNREACHABLE, "", USR_E_UNAVAILABLE},
      {AWS_E_THROTTLED, "TooManyRequestsException", USR_E_UNAVAILABLE},
      {AWS_E_TIMEOUT, "", USR_E_DEADLINE},
      {AWS_E_PROTOCOL, "", USR_E_UPSTREAM},
      {AWS_E_CLIENT, "ResourceNotFoundException", USR_E_NOT_FOUND},
      {AWS_E_CLIENT, "InvalidParameterException", USR_E_INVALID},
      {AWS_E_CLIENT, "NotAuthorizedException", USR_E_UPSTREAM},
      {AWS_E_CLIENT, "AccessDeniedException", USR_E_UPSTREAM},
      {AWS_E_CLIENT, "TooManyRequestsException", USR_E_UNAVAILABLE},
      {AWS_E_CLIENT, NULL, USR_E_UPSTREAM},
  };
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    usr_err got = ucog_aws_err(c[i].code, c[i].name);
    CHECK(got == c[i].want, "aws error %d %s: got %d want %d", c[i].code,
          c[i].name ? c[i].name : "(null)", got, c[i].want);
  }
}

/* ---- sync classification ------------------------------------------------- */

static void test_classify(void) {
  const char *json =
      "{\"Users\":[" U("andrew", "s-1", "andrewbrown") "," U("bay", "s-2", "Bayko") ","
      /* the same handle, other case, other sub: both are conflicts */
      U("bay2", "s-3", "bayko") ","
      /* the same sub twice: both conflicts */
      U("dup1", "s-9", "dupone") "," U(
          "dup2", "s-9", "duptwo") ","
                                   /* incomplete: no preferred_username / no sub / bad sub */
                                   "{\"Username\":\"nopref\",\"Attributes\":[{\"Name\":\"sub\","
                                   "\"Value\":\"s-4\"}]},"
                                   "{\"Username\":\"nosub\",\"Attributes\":[{\"Name\":\"preferred_"
                                   "username\",\"Value\":\"x\"}]}," U("badsub", "s 5", "badsub") ","
      /* a preferred_username no handle can have */
      U("weird", "s-6", "not a handle") "]}";
  cJSON *j = cJSON_Parse(json);
  ucog_list l;
  memset(&l, 0, sizeof l);
  char *tok = NULL;
  CHECK(ucog_parse_page(j, &l, &tok) == UCOG_OK && l.n == 9, "classify input parses");
  cJSON_Delete(j);
  usr_sync_report rep;
  memset(&rep, 0, sizeof rep);
  usr_sync_cand *c = NULL;
  size_t n = 0;
  CHECK(usr_sync_classify(&l, &rep, &c, &n) == USR_OK, "classify");
  CHECK(rep.scanned == 9, "scanned %d", rep.scanned);
  CHECK(rep.incomplete == 2, "incomplete %d", rep.incomplete); /* nosub, badsub */
  CHECK(rep.unmatched == 0, "unmatched %d", rep.unmatched);
  CHECK(rep.conflicts == 2, "conflicts %d", rep.conflicts); /* dup1, dup2 */
  CHECK(n == 7, "candidates %zu", n);
  CHECK(rep.n_names == 2 && streq(rep.names[0], "nosub") && streq(rep.names[1], "badsub"),
        "names %zu", rep.n_names);
  CHECK(rep.n_conflict_names == 2, "conflict names %zu", rep.n_conflict_names);
  for (size_t i = 1; i < n; i++)
    CHECK(strcmp(c[i - 1].handle, c[i].handle) <= 0, "sorted by handle");
  /* handles are lower-cased for the case-insensitive match */
  int lower_ok = 0;
  for (size_t i = 0; i < n; i++)
    lower_ok |= streq(c[i].handle, "bayko") && streq(c[i].sub, "s-2");
  CHECK(lower_ok, "Bayko lower-cased");

  /* Nobody linked yet: two unlinked users claiming "bayko" are both
   * conflicts; no preferred_username is incomplete, a bad shape unmatched. */
  usr_sync_report r1 = rep;
  r1.n_names = r1.n_conflict_names = 0;
  usr_sync_claims(c, n, &r1);
  CHECK(r1.conflicts == 4 && r1.incomplete == 3 && r1.unmatched == 1 && r1.matched == 0,
        "claims: conflicts %d incomplete %d unmatched %d", r1.conflicts, r1.incomplete,
        r1.unmatched);
  CHECK(r1.n_conflict_names == 2 && r1.n_names == 2, "claims names %zu %zu", r1.n_conflict_names,
        r1.n_names);
  int open = 0;
  for (size_t i = 0; i < n; i++)
    if (!c[i].conflict && c[i].claim == USR_CLAIM_OK) {
      open++;
      CHECK(streq(c[i].handle, "andrewbrown") && streq(c[i].sub, "s-1"), "open %s", c[i].handle);
    }
  CHECK(open == 1, "one open claim left, got %d", open);
  usr_sync_report_free(&r1);

  /* bay's sub is linked already: bay is matched by sub and its
   * preferred_username claims nothing, so bay2's claim is not a conflict
   * (the database decides whether the row is free). */
  for (size_t i = 0; i < n; i++) {
    if (!streq(c[i].sub, "s-9")) c[i].conflict = 0;
    c[i].linked = streq(c[i].sub, "s-2");
  }
  usr_sync_report r2;
  memset(&r2, 0, sizeof r2);
  usr_sync_claims(c, n, &r2);
  CHECK(r2.matched == 1 && r2.conflicts == 0, "linked: matched %d conflicts %d", r2.matched,
        r2.conflicts);
  for (size_t i = 0; i < n; i++)
    if (streq(c[i].sub, "s-3")) CHECK(!c[i].conflict && !c[i].linked, "bay2 stays open");
  usr_sync_report_free(&r2);
  free(c);
  usr_sync_report_free(&rep);
  ucog_list_free(&l);
}

int main(void) {
  test_pages();
  test_paging();
  test_errors();
  test_classify();
  printf("%s (%d failures)\n", failed ? "FAILED" : "ok", failed);
  return failed != 0;
}
