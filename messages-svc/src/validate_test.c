/* validate_test.c - request validation table with exact status codes. */
#include <stdio.h>
#include <string.h>

#include "validate.h"

static int failures;

#define U1 "11111111-1111-4111-8111-111111111111"
#define U2 "22222222-2222-4222-8222-222222222222"

typedef Cruddur__Messages__V1__Participant Participant;

static Participant party(char *uuid, char *handle, char *name) {
  Participant p = CRUDDUR__MESSAGES__V1__PARTICIPANT__INIT;
  p.uuid = uuid;
  p.handle = handle;
  p.display_name = name;
  return p;
}

static void expect(const char *name, grpc_status_code got, grpc_status_code want) {
  if (got != want) {
    fprintf(stderr, "case '%s': got %d want %d\n", name, (int)got, (int)want);
    failures++;
  }
}

int main(void) {
  static char text1024[1025], text1025[1026], emoji1024[4 * 1024 + 1], emoji1025[4 * 1025 + 1];
  memset(text1024, 'x', 1024);
  memset(text1025, 'x', 1025);
  for (int i = 0; i < 1024; i++)
    memcpy(emoji1024 + 4 * i, "\xF0\x9F\x98\x80", 4);
  for (int i = 0; i < 1025; i++)
    memcpy(emoji1025 + 4 * i, "\xF0\x9F\x98\x80", 4);
  static char rid128[129], rid129[130];
  memset(rid128, 'r', 128);
  memset(rid129, 'r', 129);

  const grpc_status_code OK = GRPC_STATUS_OK, BAD = GRPC_STATUS_INVALID_ARGUMENT;
  Participant alice = party(U1, "alice", "Alice A");
  Participant bob = party(U2, "bob_2", "Bob");

  struct {
    const char *name;
    Participant *sender;
    const char *group, *text, *rid;
    grpc_status_code want;
  } cm[] = {
      {"ok", &alice, U2, "hello", "", OK},
      {"ok with request id", &alice, U2, "hello", "a.b_c-1", OK},
      {"1024 chars", &alice, U2, text1024, "", OK},
      {"1025 chars", &alice, U2, text1025, "", BAD},
      {"1024 emoji (4096 bytes)", &alice, U2, emoji1024, "", OK},
      {"1025 emoji", &alice, U2, emoji1025, "", BAD},
      {"empty text", &alice, U2, "", "", BAD},
      {"only spaces", &alice, U2, "   \t\n", "", BAD},
      {"only nbsp/ideographic", &alice, U2, "\xC2\xA0\xE3\x80\x80", "", BAD},
      {"invalid utf8", &alice, U2, "bad \xC3\x28", "", BAD},
      {"overlong utf8", &alice, U2, "\xC0\xAF", "", BAD},
      {"surrogate", &alice, U2, "\xED\xA0\x80", "", BAD},
      {"upper-case group", &alice, "11111111-1111-4111-8111-11111111111A", "x", "", BAD},
      {"short group", &alice, "1111", "x", "", BAD},
      {"empty group", &alice, "", "x", "", BAD},
      {"no sender", NULL, U2, "x", "", BAD},
      {"request id 128", &alice, U2, "x", rid128, OK},
      {"request id 129", &alice, U2, "x", rid129, BAD},
      {"request id space", &alice, U2, "x", "a b", BAD},
      {"request id slash", &alice, U2, "x", "a/b", BAD},
  };
  for (size_t i = 0; i < sizeof cm / sizeof cm[0]; i++) {
    Cruddur__Messages__V1__CreateMessageRequest r =
        CRUDDUR__MESSAGES__V1__CREATE_MESSAGE_REQUEST__INIT;
    r.message_group_uuid = (char *)cm[i].group;
    r.sender = cm[i].sender;
    r.text = (char *)cm[i].text;
    r.request_id = (char *)cm[i].rid;
    const char *why = NULL;
    expect(cm[i].name, val_create_message(&r, &why), cm[i].want);
    if (cm[i].want != OK && why == NULL) failures++;
  }

  Participant bad_uuid = party("x", "alice", "Alice");
  Participant bad_handle = party(U1, "al ice", "Alice");
  Participant long_handle = party(U1, "a23456789012345678901234567890123", "Alice");
  Participant h32 = party(U1, "a2345678901234567890123456789012", "Alice");
  Participant blank_name = party(U1, "alice", " ");
  Participant empty_name = party(U1, "alice", "");
  Participant same = party(U1, "alice2", "Alice again");
  struct {
    const char *name;
    Participant *s, *r;
    grpc_status_code want;
  } cg[] = {
      {"ok", &alice, &bob, OK},
      {"handle of 32", &h32, &bob, OK},
      {"no recipient", &alice, NULL, BAD},
      {"bad sender uuid", &bad_uuid, &bob, BAD},
      {"bad sender handle", &bad_handle, &bob, BAD},
      {"handle of 33", &long_handle, &bob, BAD},
      {"blank name", &alice, &blank_name, BAD},
      {"empty name", &alice, &empty_name, BAD},
      {"sender == recipient", &alice, &same, BAD},
  };
  for (size_t i = 0; i < sizeof cg / sizeof cg[0]; i++) {
    Cruddur__Messages__V1__CreateMessageGroupRequest r =
        CRUDDUR__MESSAGES__V1__CREATE_MESSAGE_GROUP_REQUEST__INIT;
    r.sender = cg[i].s;
    r.recipient = cg[i].r;
    r.text = "hi";
    r.request_id = "";
    const char *why = NULL;
    expect(cg[i].name, val_create_group(&r, &why), cg[i].want);
  }

  struct {
    const char *name;
    const char *group, *user;
    int32_t size;
    grpc_status_code want;
  } lm[] = {
      {"ok default size", U1, U2, 0, OK}, {"size 1", U1, U2, 1, OK},
      {"size 100", U1, U2, 100, OK},      {"size 101", U1, U2, 101, BAD},
      {"size -1", U1, U2, -1, BAD},       {"bad user", U1, "nope", 0, BAD},
      {"bad group", "nope", U2, 0, BAD},
  };
  for (size_t i = 0; i < sizeof lm / sizeof lm[0]; i++) {
    Cruddur__Messages__V1__ListMessagesRequest r =
        CRUDDUR__MESSAGES__V1__LIST_MESSAGES_REQUEST__INIT;
    r.message_group_uuid = (char *)lm[i].group;
    r.user_uuid = (char *)lm[i].user;
    r.page_size = lm[i].size;
    const char *why;
    expect(lm[i].name, val_list_messages(&r, &why), lm[i].want);
    Cruddur__Messages__V1__ListMessageGroupsRequest g =
        CRUDDUR__MESSAGES__V1__LIST_MESSAGE_GROUPS_REQUEST__INIT;
    g.user_uuid = (char *)lm[i].user;
    g.page_size = lm[i].size;
    if (strcmp(lm[i].name, "bad group") != 0)
      expect(lm[i].name, val_list_groups(&g, &why), lm[i].want);
  }
  if (val_page_size(0) != 20 || val_page_size(7) != 7 || val_page_size(100) != 100 ||
      val_page_size(101) != -1)
    failures++;

  if (failures) return 1;
  printf("validate_test: ok\n");
  return 0;
}
