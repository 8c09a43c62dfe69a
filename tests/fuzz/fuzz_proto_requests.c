/* fuzz_proto_requests.c - protobuf decoding of every request the services
 * accept (protobuf-c, what the handlers get from the wire), then the
 * validation messages-svc runs on its requests (validate.c) and the users
 * field checks (usr_valid.c) on the users requests.
 *
 * Input: byte 0 picks the message type, the rest is the serialized request.
 * Invariants: a decoded message re-encodes to bytes that decode and
 * re-encode to the very same bytes (no state lost or invented), a request
 * the validator accepts meets its documented rules, and every allocation is
 * freed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cruddur/messages/v1/messages.pb-c.h"
#include "cruddur/users/v1/users.pb-c.h"
#include "cruddur/utf8.h"
#include "cruddur/uuid.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "usr_valid.h"
#include "validate.h"
#include "rpc_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const types[] = {
    &cruddur__messages__v1__list_message_groups_request__descriptor,
    &cruddur__messages__v1__list_messages_request__descriptor,
    &cruddur__messages__v1__create_message_request__descriptor,
    &cruddur__messages__v1__create_message_group_request__descriptor,
    &cruddur__users__v1__get_user_request__descriptor,
    &cruddur__users__v1__batch_get_users_request__descriptor,
    &cruddur__users__v1__create_user_request__descriptor,
    &cruddur__users__v1__sync_cognito_users_request__descriptor,
    &grpc__health__v1__health_check_request__descriptor,
    &grpc__reflection__v1__server_reflection_request__descriptor,
    &grpc__reflection__v1alpha__server_reflection_request__descriptor,
};
#define NTYPES (sizeof types / sizeof types[0])

static int text_ok(const char *s) {
  size_t n = strlen(s);
  long cp = utf8_count(s, n);
  return cp >= 1 && cp <= VAL_TEXT_MAX && !utf8_is_blank(s, n);
}

static int participant_ok(const Cruddur__Messages__V1__Participant *p) {
  return p && uuid_valid(p->uuid) && val_handle(p->handle) && val_display_name(p->display_name) &&
         uv_handle(p->handle) == UV_OK && uv_display_name(p->display_name) == UV_OK;
}

/* The validators' verdicts, re-checked against the documented rules. */
static void check_messages(size_t t, const ProtobufCMessage *m) {
  const char *why = NULL;
  grpc_status_code c;
  switch (t) {
  case 0: {
    const Cruddur__Messages__V1__ListMessageGroupsRequest *r = (const void *)m;
    c = val_list_groups(r, &why);
    if (c == GRPC_STATUS_OK && (!uuid_valid(r->user_uuid) || r->page_size < 0 || r->page_size > 100))
      abort();
    break;
  }
  case 1: {
    const Cruddur__Messages__V1__ListMessagesRequest *r = (const void *)m;
    c = val_list_messages(r, &why);
    if (c == GRPC_STATUS_OK && (!uuid_valid(r->user_uuid) || !uuid_valid(r->message_group_uuid) ||
                                r->page_size < 0 || r->page_size > 100))
      abort();
    break;
  }
  case 2: {
    const Cruddur__Messages__V1__CreateMessageRequest *r = (const void *)m;
    c = val_create_message(r, &why);
    if (c == GRPC_STATUS_OK &&
        (!uuid_valid(r->message_group_uuid) || !participant_ok(r->sender) || !text_ok(r->text) ||
         !val_request_id(r->request_id)))
      abort();
    break;
  }
  case 3: {
    const Cruddur__Messages__V1__CreateMessageGroupRequest *r = (const void *)m;
    c = val_create_group(r, &why);
    if (c == GRPC_STATUS_OK &&
        (!participant_ok(r->sender) || !participant_ok(r->recipient) ||
         strcmp(r->sender->uuid, r->recipient->uuid) == 0 || !text_ok(r->text)))
      abort();
    break;
  }
  default:
    return;
  }
  if (c == GRPC_STATUS_OK) {
    if (why != NULL) abort();
  } else if (c != GRPC_STATUS_INVALID_ARGUMENT || why == NULL || strlen(why) == 0) {
    abort();
  }
}

static void check_users(size_t t, const ProtobufCMessage *m) {
  switch (t) {
  case 4: {
    const Cruddur__Users__V1__GetUserRequest *r = (const void *)m;
    if (r->key_case == CRUDDUR__USERS__V1__GET_USER_REQUEST__KEY_UUID) (void)uv_uuid(r->uuid);
    if (r->key_case == CRUDDUR__USERS__V1__GET_USER_REQUEST__KEY_HANDLE) (void)uv_handle(r->handle);
    if (r->key_case == CRUDDUR__USERS__V1__GET_USER_REQUEST__KEY_COGNITO_USER_ID)
      (void)uv_cognito_user_id(r->cognito_user_id);
    break;
  }
  case 5: {
    const Cruddur__Users__V1__BatchGetUsersRequest *r = (const void *)m;
    for (size_t i = 0; i < r->n_uuids; i++)
      if (uv_uuid(r->uuids[i]) == UV_OK && !uuid_valid(r->uuids[i])) abort();
    for (size_t i = 0; i < r->n_handles; i++)
      if (uv_handle(r->handles[i]) == UV_OK && !val_handle(r->handles[i])) abort();
    break;
  }
  case 6: {
    const Cruddur__Users__V1__CreateUserRequest *r = (const void *)m;
    if (uv_display_name(r->display_name) == UV_OK && !val_display_name(r->display_name)) abort();
    uv_result e = uv_email(r->email);
    if (e == UV_OK && (strlen(r->email) < USR_EMAIL_MIN || strlen(r->email) > USR_EMAIL_MAX ||
                       strchr(r->email, '@') == NULL))
      abort();
    (void)uv_cognito_user_id(r->cognito_user_id);
    break;
  }
  case 7: {
    const Cruddur__Users__V1__SyncCognitoUsersRequest *r = (const void *)m;
    if (uv_pool_id(r->user_pool_id) == UV_OK && strlen(r->user_pool_id) > USR_POOL_ID_MAX) abort();
    break;
  }
  default:
    break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 65536) return 0;
  size_t t = data[0] % NTYPES;
  const ProtobufCMessageDescriptor *d = types[t];
  ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
  if (m == NULL) return 0;
  if (m->descriptor != d || !protobuf_c_message_check(m)) abort();
  /* protobuf-c keeps a field numbered 0 but cannot encode it again; the
   * server refuses such requests (lib/rpc pbcheck.c, F2). */
  if (rpc__pb_has_field0(m)) {
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
  }

  size_t n1 = protobuf_c_message_get_packed_size(m);
  uint8_t *b1 = malloc(n1 ? n1 : 1);
  if (b1 == NULL || protobuf_c_message_pack(m, b1) != n1) abort();
  ProtobufCMessage *m2 = protobuf_c_message_unpack(d, NULL, n1, b1);
  if (m2 == NULL) abort(); /* what we encode must decode */
  size_t n2 = protobuf_c_message_get_packed_size(m2);
  uint8_t *b2 = malloc(n2 ? n2 : 1);
  if (b2 == NULL || protobuf_c_message_pack(m2, b2) != n2) abort();
  if (n1 != n2 || memcmp(b1, b2, n1) != 0) abort();

  check_messages(t, m);
  check_users(t, m);

  free(b1);
  free(b2);
  protobuf_c_message_free_unpacked(m2, NULL);
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}
