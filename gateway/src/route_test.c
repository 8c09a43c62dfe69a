/* route_test.c - the route table: path -> route + parameter, table-driven. */
#include <stdio.h>
#include <string.h>

#include "route.h"

#include "cruddur/check.h"

typedef struct rcase {
  const char *method, *path;
  gw_match_code code;
  gw_route_id route; /* when not NOT_FOUND */
  const char *param;
  const char *allow;
} rcase;

static const rcase cases[] = {
    {"GET", "/api/message_groups", GW_MATCH_OK, GW_R_GROUPS, "", "GET, HEAD, OPTIONS"},
    {"POST", "/api/message_groups", GW_MATCH_METHOD, GW_R_GROUPS, "", "GET, HEAD, OPTIONS"},
    {"GET", "/api/message_groups/", GW_MATCH_NOT_FOUND, 0, NULL, NULL}, /* trailing slash */
    {"GET", "/api//message_groups", GW_MATCH_NOT_FOUND, 0, NULL, NULL}, /* empty segment */
    {"GET", "/API/message_groups", GW_MATCH_NOT_FOUND, 0, NULL, NULL},  /* case matters */
    {"GET", "/api/messages/5ae290ed-55d1-47a0-bc6d-fe2bc2700399", GW_MATCH_OK, GW_R_MESSAGES_LIST,
     "5ae290ed-55d1-47a0-bc6d-fe2bc2700399", "GET, HEAD, OPTIONS"},
    {"GET", "/api/messages/not-a-uuid", GW_MATCH_OK, GW_R_MESSAGES_LIST, "not-a-uuid", NULL},
    {"GET", "/api/messages/a%2Fb", GW_MATCH_NOT_FOUND, 0, NULL, NULL}, /* encoded slash */
    {"GET", "/api/messages/a%00b", GW_MATCH_NOT_FOUND, 0, NULL, NULL}, /* encoded NUL */
    {"GET", "/api/messages/a%zzb", GW_MATCH_NOT_FOUND, 0, NULL, NULL}, /* bad escape */
    {"GET", "/api/messages/ab%4", GW_MATCH_NOT_FOUND, 0, NULL, NULL},  /* cut escape */
    {"GET", "/api/messages/x/y", GW_MATCH_NOT_FOUND, 0, NULL, NULL},
    {"POST", "/api/messages/5ae290ed-55d1-47a0-bc6d-fe2bc2700399", GW_MATCH_METHOD,
     GW_R_MESSAGES_LIST, "5ae290ed-55d1-47a0-bc6d-fe2bc2700399", "GET, HEAD, OPTIONS"},
    {"POST", "/api/messages", GW_MATCH_OK, GW_R_MESSAGES_CREATE, "", "POST, OPTIONS"},
    {"GET", "/api/messages", GW_MATCH_METHOD, GW_R_MESSAGES_CREATE, "", "POST, OPTIONS"},
    {"OPTIONS", "/api/messages", GW_MATCH_OPTIONS, GW_R_MESSAGES_CREATE, "", "POST, OPTIONS"},
    {"DELETE", "/api/messages", GW_MATCH_METHOD, GW_R_MESSAGES_CREATE, "", "POST, OPTIONS"},
    {"GET", "/api/users/@andrewbrown/short", GW_MATCH_OK, GW_R_USER_SHORT, "andrewbrown", NULL},
    {"GET", "/api/users/%40andrewbrown/short", GW_MATCH_OK, GW_R_USER_SHORT, "andrewbrown", NULL},
    {"GET", "/api/users/@bay%6Bo/short", GW_MATCH_OK, GW_R_USER_SHORT, "bayko", NULL},
    {"GET", "/api/users/andrewbrown/short", GW_MATCH_NOT_FOUND, 0, NULL, NULL}, /* no '@' */
    {"GET", "/api/users/@/short", GW_MATCH_OK, GW_R_USER_SHORT, "", NULL},      /* handler: 404 */
    {"GET", "/api/users/@@x/short", GW_MATCH_OK, GW_R_USER_SHORT, "@x", NULL},
    {"GET", "/api/users/@andrewbrown/short/", GW_MATCH_NOT_FOUND, 0, NULL, NULL},
    {"GET", "/api/users/@andrewbrown", GW_MATCH_NOT_FOUND, 0, NULL, NULL},
    {"GET", "/api/%75sers/@x/short", GW_MATCH_OK, GW_R_USER_SHORT, "x", NULL}, /* literal decoded */
    {"GET", "/healthz", GW_MATCH_OK, GW_R_HEALTHZ, "", NULL},
    /* HEAD is GET without the body: every GET route takes it. */
    {"HEAD", "/healthz", GW_MATCH_OK, GW_R_HEALTHZ, "", "GET, HEAD, OPTIONS"},
    {"HEAD", "/api/message_groups", GW_MATCH_OK, GW_R_GROUPS, "", "GET, HEAD, OPTIONS"},
    {"HEAD", "/api/users/@bayko/short", GW_MATCH_OK, GW_R_USER_SHORT, "bayko", NULL},
    {"HEAD", "/api/messages", GW_MATCH_METHOD, GW_R_MESSAGES_CREATE, "", "POST, OPTIONS"},
    {"head", "/healthz", GW_MATCH_METHOD, GW_R_HEALTHZ, "", "GET, HEAD, OPTIONS"},
    {"GET", "/readyz", GW_MATCH_OK, GW_R_READYZ, "", NULL},
    {"GET", "/metrics", GW_MATCH_OK, GW_R_METRICS, "", NULL},
    {"GET", "/openapi.json", GW_MATCH_OK, GW_R_OPENAPI, "", NULL},
    {"GET", "/api/events", GW_MATCH_OK, GW_R_EVENTS, "", "GET, HEAD, OPTIONS"},
    {"POST", "/api/events", GW_MATCH_METHOD, GW_R_EVENTS, "", "GET, HEAD, OPTIONS"},
    {"OPTIONS", "/api/events", GW_MATCH_OPTIONS, GW_R_EVENTS, "", "GET, HEAD, OPTIONS"},
    {"GET", "/api/events/", GW_MATCH_NOT_FOUND, 0, NULL, NULL},
    {"GET", "/", GW_MATCH_NOT_FOUND, 0, NULL, NULL},
    {"GET", "", GW_MATCH_NOT_FOUND, 0, NULL, NULL},
    {"GET", "api/message_groups", GW_MATCH_NOT_FOUND, 0, NULL, NULL},
    {"GET", "/api/../api/message_groups", GW_MATCH_NOT_FOUND, 0, NULL, NULL},
};

int main(void) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const rcase *t = &cases[i];
    gw_match m;
    memset(&m, 0, sizeof m);
    gw_match_code got = gw_route_match(t->method, t->path, &m);
    CHECK(got == t->code, "%s %s: code %d, want %d", t->method, t->path, got, t->code);
    if (got != t->code || got == GW_MATCH_NOT_FOUND) continue;
    CHECK(m.route->id == t->route, "%s %s: route %d, want %d", t->method, t->path, m.route->id,
          t->route);
    CHECK(strcmp(m.param, t->param) == 0, "%s %s: param '%s', want '%s'", t->method, t->path,
          m.param, t->param);
    if (t->allow)
      CHECK(strcmp(m.allow, t->allow) == 0, "%s %s: allow '%s'", t->method, t->path, m.allow);
  }
  /* A parameter longer than GW_PARAM_MAX does not match (no truncation). */
  char longp[300] = "/api/messages/";
  memset(longp + strlen(longp), 'a', 200);
  gw_match m;
  CHECK(gw_route_match("GET", longp, &m) == GW_MATCH_NOT_FOUND, "long parameter");
  /* The table is indexed by id. */
  for (int i = 0; i < GW_R_COUNT; i++)
    CHECK((int)gw_route_table()[i].id == i, "table order %d", i);
  char out[8];
  CHECK(gw_pct_decode("a%41+", 5, out, sizeof out) == 3 && strcmp(out, "aA+") == 0, "decode");
  CHECK(gw_pct_decode("abcdefgh", 8, out, sizeof out) == -1, "decode overflow");
  if (failures)
    fprintf(stderr, "%d failure(s)\n", failures);
  else
    printf("route_test: all passed\n");
  return failures ? 1 : 0;
}
