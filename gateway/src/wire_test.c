/* wire_test.c - request checks, the POST body rules and the JSON shapes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#include "cruddur/check.h"

/* ---- request id / idempotency key -------------------------------------- */
typedef struct scase {
  const char *in;
  int ok;
} scase;
static const scase tokens[] = {
    {"abc", 1},  {"A.b_c-9", 1}, {"5ae290ed-55d1-47a0-bc6d-fe2bc2700399", 1},
    {"", 0},     {NULL, 0},      {"a b", 0},
    {"a/b", 0},  {"a\"b", 0},    {"\xc3\xa9", 0},
    {"a\nb", 0},
};

/* ---- limit ---------------------------------------------------------------- */
typedef struct lcase {
  const char *in;
  int rc, val;
} lcase;
static const lcase limits[] = {
    {NULL, 0, 20},  {"1", 0, 1},     {"100", 0, 100}, {"020", 0, 20},
    {"0", -1, 0},   {"101", -1, 0},  {"", -1, 0},     {"-1", -1, 0},
    {"1e2", -1, 0}, {"1000", -1, 0}, {" 5", -1, 0},   {"99999999999", -1, 0},
};

/* ---- body ------------------------------------------------------------------ */
typedef struct bcase {
  const char *name, *body;
  gw_body_code rc;
  const char *codes; /* comma-joined for UNPROCESSABLE */
  gw_create_mode mode;
  const char *target; /* group uuid or handle on OK */
} bcase;

static char long_msg[1200 * 3 + 64];
static char max_msg[1100 * 3 + 64];

static const bcase bodies[] = {
    {"group",
     "{\"message\":\"hi\",\"message_group_uuid\":\"5ae290ed-55d1-47a0-bc6d-fe2bc2700399\"}",
     GW_BODY_OK, NULL, GW_CREATE_IN_GROUP, "5ae290ed-55d1-47a0-bc6d-fe2bc2700399"},
    {"group upper",
     "{\"message\":\"hi\",\"message_group_uuid\":\"5AE290ED-55D1-47A0-BC6D-FE2BC2700399\"}",
     GW_BODY_OK, NULL, GW_CREATE_IN_GROUP, "5ae290ed-55d1-47a0-bc6d-fe2bc2700399"},
    {"handle", "{\"message\":\"hi\",\"handle\":\"bayko\"}", GW_BODY_OK, NULL, GW_CREATE_BY_HANDLE,
     "bayko"},
    {"null group means handle",
     "{\"message\":\"hi\",\"message_group_uuid\":null,\"handle\":\"bayko\"}", GW_BODY_OK, NULL,
     GW_CREATE_BY_HANDLE, "bayko"},
    {"empty object", "{}", GW_BODY_UNPROCESSABLE, "message_blank,user_reciever_handle_blank", 0,
     NULL},
    {"blank group", "{\"message_group_uuid\":\"\"}", GW_BODY_UNPROCESSABLE,
     "message_blank,message_group_uuid_blank", 0, NULL},
    {"whitespace", "{\"message\":\" \\t\\n\\u3000\",\"handle\":\"\"}", GW_BODY_UNPROCESSABLE,
     "message_blank,user_reciever_handle_blank", 0, NULL},
    {"bad uuid", "{\"message\":\"x\",\"message_group_uuid\":\"nope\"}", GW_BODY_UNPROCESSABLE,
     "message_group_uuid_invalid", 0, NULL},
    {"bad handle", "{\"message\":\"x\",\"handle\":\"a b\"}", GW_BODY_UNPROCESSABLE,
     "handle_invalid", 0, NULL},
    {"at handle", "{\"message\":\"x\",\"handle\":\"@bayko\"}", GW_BODY_UNPROCESSABLE,
     "handle_invalid", 0, NULL},
    {"bad utf8", "{\"message\":\"\xff\xfe\",\"handle\":\"bayko\"}", GW_BODY_UNPROCESSABLE,
     "message_invalid_utf8", 0, NULL},
    {"too long", long_msg, GW_BODY_UNPROCESSABLE,
     "message_exceed_max_chars,message_group_uuid_invalid", 0, NULL},
    {"1024 code points ok", max_msg, GW_BODY_OK, NULL, GW_CREATE_BY_HANDLE, "bayko"},
    {"number message", "{\"message\":5,\"handle\":\"bayko\"}", GW_BODY_FIELD_TYPE, NULL, 0, NULL},
    {"array handle", "{\"message\":\"x\",\"handle\":[]}", GW_BODY_FIELD_TYPE, NULL, 0, NULL},
    {"bool group", "{\"message\":\"x\",\"message_group_uuid\":true}", GW_BODY_FIELD_TYPE, NULL, 0,
     NULL},
    {"array body", "[1,2]", GW_BODY_NOT_OBJECT, NULL, 0, NULL},
    {"string body", "\"x\"", GW_BODY_NOT_OBJECT, NULL, 0, NULL},
    {"not json", "{message:", GW_BODY_INVALID_JSON, NULL, 0, NULL},
    {"trailing garbage", "{} x", GW_BODY_INVALID_JSON, NULL, 0, NULL},
    {"two objects", "{}{}", GW_BODY_INVALID_JSON, NULL, 0, NULL},
    {"empty", "", GW_BODY_INVALID_JSON, NULL, 0, NULL},
    {"nul escape", "{\"message\":\"a\\u0000b\",\"handle\":\"bayko\"}", GW_BODY_INVALID_JSON, NULL,
     0, NULL},
    {"escaped backslash then u0000 is text", "{\"message\":\"a\\\\u0000b\",\"handle\":\"bayko\"}",
     GW_BODY_OK, NULL, GW_CREATE_BY_HANDLE, "bayko"},
    {"trailing space ok", "{\"message\":\"hi\",\"handle\":\"bayko\"} \n", GW_BODY_OK, NULL,
     GW_CREATE_BY_HANDLE, "bayko"},
};

static void join(const char **codes, size_t n, char *out, size_t cap) {
  out[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (i) strncat(out, ",", cap - strlen(out) - 1);
    strncat(out, codes[i], cap - strlen(out) - 1);
  }
}

static void test_json(void) {
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = 1679352731; /* 2023-03-20T22:52:11Z */
  ts.nanos = 123456000;
  Cruddur__Messages__V1__Participant p = CRUDDUR__MESSAGES__V1__PARTICIPANT__INIT;
  p.uuid = "11111111-1111-4111-8111-111111111111";
  p.handle = "bayko";
  p.display_name = "Andrew \"B\" Bayko \xc3\xa9";
  Cruddur__Messages__V1__MessageGroup g = CRUDDUR__MESSAGES__V1__MESSAGE_GROUP__INIT;
  g.message_group_uuid = "5ae290ed-55d1-47a0-bc6d-fe2bc2700399";
  g.other = &p;
  g.last_message = "hello\nthere";
  g.last_message_at = &ts;
  Cruddur__Messages__V1__MessageGroup *gs[] = {&g};
  Cruddur__Messages__V1__ListMessageGroupsResponse lr =
      CRUDDUR__MESSAGES__V1__LIST_MESSAGE_GROUPS_RESPONSE__INIT;
  lr.n_groups = 1;
  lr.groups = gs;
  char *s = gw_json_groups(&lr);
  const char *want = "[{\"uuid\":\"5ae290ed-55d1-47a0-bc6d-fe2bc2700399\",\"display_name\":"
                     "\"Andrew \\\"B\\\" Bayko \xc3\xa9\","
                     "\"handle\":\"bayko\",\"message\":\"hello\\nthere\",\"created_at\":\"2023-03-"
                     "20T22:52:11.123456+00:00\"}]";
  CHECK(s && strcmp(s, want) == 0, "groups json: %s", s);
  free(s);

  Cruddur__Messages__V1__Message m = CRUDDUR__MESSAGES__V1__MESSAGE__INIT;
  m.message_uuid = "22222222-2222-4222-8222-222222222222";
  m.message_group_uuid = g.message_group_uuid;
  m.sender = &p;
  m.text = "hi";
  m.created_at = NULL; /* missing time: the epoch, still 32 characters */
  Cruddur__Messages__V1__Message *ms[] = {&m};
  Cruddur__Messages__V1__ListMessagesResponse mr =
      CRUDDUR__MESSAGES__V1__LIST_MESSAGES_RESPONSE__INIT;
  mr.n_messages = 1;
  mr.messages = ms;
  s = gw_json_messages(&mr);
  CHECK(s && strstr(s, "\"uuid\":\"22222222-2222-4222-8222-222222222222\"") &&
            strstr(s, "\"created_at\":\"1970-01-01T00:00:00.000000+00:00\""),
        "messages json: %s", s);
  free(s);
  m.created_at = &ts;
  s = gw_json_created(&m);
  want = "{\"message_group_uuid\":\"5ae290ed-55d1-47a0-bc6d-fe2bc2700399\",\"uuid\":\"22222222-"
         "2222-4222-8222-222222222222\","
         "\"display_name\":\"Andrew \\\"B\\\" Bayko "
         "\xc3\xa9\",\"handle\":\"bayko\",\"message\":\"hi\","
         "\"created_at\":\"2023-03-20T22:52:11.123456+00:00\"}";
  CHECK(s && strcmp(s, want) == 0, "created json: %s", s);
  free(s);
  Cruddur__Users__V1__User u = CRUDDUR__USERS__V1__USER__INIT;
  u.uuid = p.uuid;
  u.handle = "andrewbrown";
  u.display_name = "Andrew Brown";
  s = gw_json_user_short(&u);
  CHECK(s && strcmp(s,
                    "{\"uuid\":\"11111111-1111-4111-8111-111111111111\",\"handle\":\"andrewbrown\","
                    "\"display_name\":\"Andrew Brown\"}") == 0,
        "short json: %s", s);
  free(s);
  Cruddur__Messages__V1__ListMessageGroupsResponse empty =
      CRUDDUR__MESSAGES__V1__LIST_MESSAGE_GROUPS_RESPONSE__INIT;
  s = gw_json_groups(&empty);
  CHECK(s && strcmp(s, "[]") == 0, "empty list: %s", s);
  free(s);
}

static void test_user_from_pb(void) {
  char long_handle[40];
  memset(long_handle, 'a', sizeof long_handle - 1);
  long_handle[sizeof long_handle - 1] = '\0';
  const struct { const char *name, *uuid, *handle, *display; int ok; } cases[] = {
      {"ok, uuid lower-cased", "5AE290ED-55D1-47A0-BC6D-FE2BC2700399", "bayko", "Andrew Bayko", 1},
      {"not a uuid", "nope", "bayko", "Andrew Bayko", 0},
      {"no handle", "5ae290ed-55d1-47a0-bc6d-fe2bc2700399", NULL, "Andrew Bayko", 0},
      {"no display name", "5ae290ed-55d1-47a0-bc6d-fe2bc2700399", "bayko", NULL, 0},
      {"handle too long", "5ae290ed-55d1-47a0-bc6d-fe2bc2700399", long_handle, "x", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    Cruddur__Users__V1__User u = CRUDDUR__USERS__V1__USER__INIT;
    u.uuid = (char *)cases[i].uuid;
    u.handle = (char *)cases[i].handle;
    u.display_name = (char *)cases[i].display;
    gw_user out;
    strcpy(out.handle, "untouched");
    int rc = gw_user_from_pb(&u, &out);
    if (cases[i].ok)
      CHECK(rc == 0 && strcmp(out.uuid, "5ae290ed-55d1-47a0-bc6d-fe2bc2700399") == 0 &&
                strcmp(out.handle, "bayko") == 0 && strcmp(out.display_name, "Andrew Bayko") == 0,
            "%s", cases[i].name);
    else
      CHECK(rc == -1 && strcmp(out.handle, "untouched") == 0, "%s", cases[i].name);
  }
  gw_user out;
  CHECK(gw_user_from_pb(NULL, &out) == -1, "NULL user");
}

int main(void) {
  for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++)
    CHECK(gw_token_valid(tokens[i].in) == tokens[i].ok, "token %zu", i);
  char t128[130];
  memset(t128, 'a', 128);
  t128[128] = '\0';
  CHECK(gw_token_valid(t128) == 1, "128 chars");
  t128[128] = 'a';
  t128[129] = '\0';
  CHECK(gw_token_valid(t128) == 0, "129 chars");

  CHECK(gw_handle_valid("andrew_brown9") == 1, "handle ok");
  CHECK(gw_handle_valid("") == 0 && gw_handle_valid("a-b") == 0 && gw_handle_valid("@a") == 0,
        "handle bad");
  CHECK(gw_handle_valid("abcdefghijabcdefghijabcdefghij12") == 1, "32");
  CHECK(gw_handle_valid("abcdefghijabcdefghijabcdefghij123") == 0, "33");

  char u[37] = "untouched";
  CHECK(gw_uuid_normalise("5AE290ED-55d1-47a0-bc6d-fe2bc2700399", u) == 1 &&
            strcmp(u, "5ae290ed-55d1-47a0-bc6d-fe2bc2700399") == 0,
        "uuid lower");
  strcpy(u, "untouched");
  CHECK(gw_uuid_normalise("5ae290ed55d147a0bc6dfe2bc2700399", u) == 0 &&
            strcmp(u, "untouched") == 0,
        "no dashes");
  CHECK(gw_uuid_normalise("5ae290ed-55d1-47a0-bc6d-fe2bc270039g", u) == 0, "non-hex");

  for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
    int v = -7;
    int rc = gw_limit_parse(limits[i].in, &v);
    CHECK(rc == limits[i].rc, "limit '%s' rc %d", limits[i].in ? limits[i].in : "(null)", rc);
    if (rc == 0) CHECK(v == limits[i].val, "limit '%s' = %d", limits[i].in, v);
  }

  char cur[GW_CURSOR_MAX + 1];
  CHECK(gw_cursor_parse(NULL, cur) == 0 && cur[0] == '\0', "no cursor");
  CHECK(gw_cursor_parse("abc.DEF_-", cur) == 0 && strcmp(cur, "abc.DEF_-") == 0, "plain cursor");
  CHECK(gw_cursor_parse("a%2Bb%3D", cur) == 0 && strcmp(cur, "a+b=") == 0, "encoded cursor");
  CHECK(gw_cursor_parse("", cur) == -1, "empty cursor");
  CHECK(gw_cursor_parse("a%20b", cur) == -1, "space in cursor");
  CHECK(gw_cursor_parse("a%zz", cur) == -1, "bad escape");
  char bigc[600];
  memset(bigc, 'x', 599);
  bigc[599] = '\0';
  CHECK(gw_cursor_parse(bigc, cur) == -1, "too long");

  char link[256];
  CHECK(gw_link_next(link, sizeof link, "/api/message_groups", 20, "ab+/=.c~") == 0 &&
            strcmp(link, "</api/message_groups?limit=20&cursor=ab%2B%2F%3D.c~>; rel=\"next\"") == 0,
        "link: %s", link);
  CHECK(gw_link_next(link, 20, "/api/message_groups", 20, "abc") == -1, "link too small");
  /* Round trip: what gw_link_next writes, gw_cursor_parse reads back. */
  const char *tok = "eyJ4IjoxfQ.c2ln+/=";
  CHECK(gw_link_next(link, sizeof link, "/p", 5, tok) == 0, "link rt");
  char *q = strstr(link, "cursor=") + 7;
  *strchr(q, '>') = '\0';
  CHECK(gw_cursor_parse(q, cur) == 0 && strcmp(cur, tok) == 0, "round trip %s", cur);

  /* bodies */
  strcpy(long_msg, "{\"message\":\"");
  for (int i = 0; i < 1025; i++)
    strcat(long_msg, "\xc3\xa9"); /* 1025 code points, 2050 bytes */
  strcat(long_msg, "\",\"message_group_uuid\":\"x\"}");
  strcpy(max_msg, "{\"message\":\"");
  for (int i = 0; i < 1024; i++)
    strcat(max_msg, "\xe2\x82\xac"); /* 1024 code points, 3072 bytes */
  strcat(max_msg, "\",\"handle\":\"bayko\"}");
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    const bcase *b = &bodies[i];
    gw_create c;
    memset(&c, 0, sizeof c);
    const char *codes[GW_BODY_CODES_MAX];
    size_t n = 0;
    gw_body_code rc = gw_body_parse(b->body, strlen(b->body), &c, codes, &n);
    CHECK(rc == b->rc, "%s: rc %d want %d", b->name, rc, b->rc);
    if (rc == GW_BODY_UNPROCESSABLE && b->codes) {
      char got[256];
      join(codes, n, got, sizeof got);
      CHECK(strcmp(got, b->codes) == 0, "%s: codes %s want %s", b->name, got, b->codes);
    }
    if (rc == GW_BODY_OK) {
      CHECK(c.mode == b->mode, "%s: mode", b->name);
      const char *target = c.mode == GW_CREATE_IN_GROUP ? c.group_uuid : c.handle;
      CHECK(strcmp(target, b->target) == 0, "%s: target %s", b->name, target);
      CHECK(c.message != NULL, "%s: message", b->name);
      gw_create_clear(&c);
    }
  }
  /* A NUL byte inside the body is malformed, not truncated. */
  gw_create c;
  const char *codes[GW_BODY_CODES_MAX];
  size_t n = 0;
  CHECK(gw_body_parse("{}\0{}", 5, &c, codes, &n) == GW_BODY_INVALID_JSON, "NUL in body");
  test_json();
  test_user_from_pb();
  if (failures)
    fprintf(stderr, "%d failure(s)\n", failures);
  else
    printf("wire_test: all passed\n");
  return failures ? 1 : 0;
}
