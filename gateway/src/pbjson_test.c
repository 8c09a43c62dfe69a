/* pbjson_test.c - list pages read straight from protobuf bytes: for each
 * case, the answer must be what protobuf-c's unpacking printed by
 * gw_json_messages / gw_json_groups gives (the contract), and accepted or
 * refused as the case says. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pbjson.h"
#include "pbjson_ref.h"

#include "cruddur/check.h"

/* Checks one input against the reference; returns the reader's code. */
static gw_pbj_code same_as_reference(const char *name, gw_pbj_list list, const uint8_t *d,
                                     size_t n) {
  char *want = NULL, *want_next = NULL, *json = NULL;
  const char *next = NULL;
  size_t next_len = 0;
  int ref = gw_pbj_reference(list, d, n, &want, &want_next);
  gw_pbj_code rc = gw_pbj_page(list, d, n, &json, &next, &next_len);
  CHECK((ref == 0) == (rc == GW_PBJ_OK), "%s: protobuf-c %d, reader %d", name, ref, (int)rc);
  if (ref == 0 && rc == GW_PBJ_OK) {
    CHECK(want && strcmp(json, want) == 0, "%s:\n  got  %s\n  want %s", name, json, want);
    CHECK(strlen(want_next) == next_len && memcmp(next, want_next, next_len) == 0,
          "%s: next token %.*s, want %s", name, (int)next_len, next, want_next);
  }
  free(want);
  free(want_next);
  free(json);
  return rc;
}

/* A page packed by protobuf-c: the shape messages-svc sends. */
static void test_packed(void) {
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = 1679352731;
  ts.nanos = 123456000;
  Google__Protobuf__Timestamp old = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  old.seconds = -62135596800; /* year 1 */
  Cruddur__Messages__V1__Participant p = CRUDDUR__MESSAGES__V1__PARTICIPANT__INIT;
  p.uuid = "11111111-1111-4111-8111-111111111111";
  p.handle = "bayko";
  p.display_name = "Andrew \"B\" Bayko \xc3\xa9 \x01\t\\";
  Cruddur__Messages__V1__Message m1 = CRUDDUR__MESSAGES__V1__MESSAGE__INIT, m2 = m1, m3 = m1;
  m1.message_uuid = "22222222-2222-4222-8222-222222222222";
  m1.message_group_uuid = "5ae290ed-55d1-47a0-bc6d-fe2bc2700399";
  m1.sender = &p;
  m1.text = "hello\nthere \"you\" \xf0\x9f\x98\x80";
  m1.created_at = &ts;
  m2.message_uuid = "33333333-3333-4333-8333-333333333333";
  m2.text = "no sender, no time";
  m3 = m1;
  m3.created_at = &old;
  Cruddur__Messages__V1__Message *ms[] = {&m1, &m2, &m3};
  Cruddur__Messages__V1__ListMessagesResponse lr =
      CRUDDUR__MESSAGES__V1__LIST_MESSAGES_RESPONSE__INIT;
  lr.n_messages = 3;
  lr.messages = ms;
  lr.next_page_token = "tok+/=en";
  uint8_t buf[4096];
  size_t n = cruddur__messages__v1__list_messages_response__pack(&lr, buf);
  CHECK(same_as_reference("messages page", GW_PBJ_MESSAGES, buf, n) == GW_PBJ_OK);

  Cruddur__Messages__V1__MessageGroup g = CRUDDUR__MESSAGES__V1__MESSAGE_GROUP__INIT;
  g.message_group_uuid = m1.message_group_uuid;
  g.other = &p;
  g.last_message = m1.text;
  g.last_message_at = &ts;
  Cruddur__Messages__V1__MessageGroup *gs[] = {&g, &g};
  Cruddur__Messages__V1__ListMessageGroupsResponse gr =
      CRUDDUR__MESSAGES__V1__LIST_MESSAGE_GROUPS_RESPONSE__INIT;
  gr.n_groups = 2;
  gr.groups = gs;
  n = cruddur__messages__v1__list_message_groups_response__pack(&gr, buf);
  CHECK(same_as_reference("groups page", GW_PBJ_GROUPS, buf, n) == GW_PBJ_OK);

  /* The answer itself, spelled out once (wire_test has the rest). */
  char *json = NULL;
  const char *next;
  size_t next_len;
  lr.n_messages = 1;
  lr.next_page_token = "";
  n = cruddur__messages__v1__list_messages_response__pack(&lr, buf);
  CHECK(gw_pbj_page(GW_PBJ_MESSAGES, buf, n, &json, &next, &next_len) == GW_PBJ_OK);
  const char *want = "[{\"uuid\":\"22222222-2222-4222-8222-222222222222\",\"display_name\":"
                     "\"Andrew \\\"B\\\" Bayko \xc3\xa9 \\u0001\\t\\\\\",\"handle\":\"bayko\","
                     "\"message\":\"hello\\nthere \\\"you\\\" \xf0\x9f\x98\x80\","
                     "\"created_at\":\"2023-03-20T22:52:11.123456+00:00\"}]";
  CHECK(json && strcmp(json, want) == 0, "one message: %s", json);
  CHECK(next_len == 0);
  free(json);
}

/* Hand-made bytes: what a conforming encoder does not send but protobuf-c
 * reads (or refuses) all the same. */
typedef struct bcase {
  const char *name;
  gw_pbj_list list;
  const char *bytes;
  size_t len;
  gw_pbj_code rc;
} bcase;

#define B(s) s, sizeof(s) - 1
/* Message {message_uuid "u"; sender {handle "h"}; text "t"; created_at {seconds 1}} */
#define MSG "\x0a\x0f\x0a\x01u\x1a\x03\x12\x01h\x22\x01t\x2a\x02\x08\x01"
static const bcase bytes_cases[] = {
    {"empty page", GW_PBJ_MESSAGES, B(""), GW_PBJ_OK},
    {"one item", GW_PBJ_MESSAGES, B(MSG), GW_PBJ_OK},
    {"token only", GW_PBJ_MESSAGES, B("\x12\x03" "abc"), GW_PBJ_OK},
    {"token twice: the later", GW_PBJ_MESSAGES, B("\x12\x01" "a" MSG "\x12\x01" "b"), GW_PBJ_OK},
    {"unknown fields of each wire type", GW_PBJ_MESSAGES,
     B("\x18\x96\x01\x21" "12345678\x2a\x02xy\x35" "1234" MSG), GW_PBJ_OK},
    {"unknown field in an item", GW_PBJ_MESSAGES,
     B("\x0a\x0c\x0a\x01u\x40\x01\x4a\x02zz\x22\x01t"), GW_PBJ_OK},
    {"participant twice merges", GW_PBJ_MESSAGES,
     B("\x0a\x10\x1a\x06\x12\x01h\x1a\x01" "d\x1a\x06\x1a\x01" "e\x0a\x01x"), GW_PBJ_OK},
    {"timestamp twice: the later whole", GW_PBJ_MESSAGES,
     B("\x0a\x0a\x2a\x04\x08\x01\x10\x02\x2a\x02\x10\x05"), GW_PBJ_OK},
    {"NUL ends a string", GW_PBJ_MESSAGES, B("\x0a\x05\x22\x03" "a\0b" "\x12\x02" "c\0"),
     GW_PBJ_OK},
    {"negative nanos", GW_PBJ_MESSAGES,
     B("\x0a\x0f\x2a\x0d\x08\x01\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), GW_PBJ_OK},
    {"huge seconds", GW_PBJ_MESSAGES,
     B("\x0a\x0c\x2a\x0a\x08\xff\xff\xff\xff\xff\xff\xff\xff\x7f"), GW_PBJ_OK},
    {"two-byte key of field 0 is unknown", GW_PBJ_MESSAGES, B("\x80\x00\x01"), GW_PBJ_OK},
    {"groups: field numbers of MessageGroup", GW_PBJ_GROUPS,
     B("\x0a\x0f\x0a\x01u\x12\x03\x12\x01h\x1a\x01t\x22\x02\x08\x01"), GW_PBJ_OK},
    {"key of field 0", GW_PBJ_MESSAGES, B("\x00\x01"), GW_PBJ_MALFORMED},
    {"key cut short", GW_PBJ_MESSAGES, B("\x8a"), GW_PBJ_MALFORMED},
    {"item length past the end", GW_PBJ_MESSAGES, B("\x0a\x05\x0a\x01u"), GW_PBJ_MALFORMED},
    {"items as a varint", GW_PBJ_MESSAGES, B("\x08\x01"), GW_PBJ_MALFORMED},
    {"string as a varint", GW_PBJ_MESSAGES, B("\x0a\x02\x08\x01"), GW_PBJ_MALFORMED},
    {"seconds as a string", GW_PBJ_MESSAGES, B("\x0a\x05\x2a\x03\x0a\x01x"), GW_PBJ_MALFORMED},
    {"varint of 11 bytes", GW_PBJ_MESSAGES,
     B("\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), GW_PBJ_MALFORMED},
    {"a group", GW_PBJ_MESSAGES, B("\x1b\x1c"), GW_PBJ_MALFORMED},
    {"wire type 6", GW_PBJ_MESSAGES, B("\x1e"), GW_PBJ_MALFORMED},
    {"fixed64 cut short", GW_PBJ_MESSAGES, B("\x19" "1234"), GW_PBJ_MALFORMED},
    {"bad participant inside", GW_PBJ_MESSAGES, B("\x0a\x04\x1a\x02\x12\x05"),
     GW_PBJ_MALFORMED},
    {"length prefix of 6 bytes", GW_PBJ_MESSAGES, B("\x2a\x80\x80\x80\x80\x80\x00"),
     GW_PBJ_MALFORMED},
    {"groups: who with the messages' number is a string", GW_PBJ_GROUPS,
     B("\x0a\x03\x1a\x01x"), GW_PBJ_OK},
};

static void test_bytes(void) {
  for (size_t i = 0; i < sizeof bytes_cases / sizeof bytes_cases[0]; i++) {
    const bcase *c = &bytes_cases[i];
    /* An exact-size copy, so ASan sees a read past the end. */
    uint8_t *d = malloc(c->len ? c->len : 1);
    if (c->len) memcpy(d, c->bytes, c->len);
    gw_pbj_code rc = same_as_reference(c->name, c->list, d, c->len);
    CHECK(rc == c->rc, "%s: code %d, want %d", c->name, (int)rc, (int)c->rc);
    free(d);
  }
}

int main(void) {
  test_packed();
  test_bytes();
  return failures ? 1 : 0;
}
