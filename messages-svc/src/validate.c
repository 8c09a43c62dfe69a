/* validate.c - field rules from messages.proto, checked before any I/O. */
#include "validate.h"

#include <string.h>

#include "cruddur/utf8.h"
#include "cruddur/uuid.h"

int val_handle(const char *s) {
  if (s == NULL) return 0;
  size_t n = strlen(s);
  if (n < 1 || n > VAL_HANDLE_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

static int val_prose(const char *s, long max_cp) {
  if (s == NULL) return 0;
  size_t n = strlen(s);
  /* 4 bytes per code point at most: longer cannot be valid, skip counting. */
  if (n == 0 || n > (size_t)max_cp * 4) return 0;
  long cp = utf8_count(s, n);
  if (cp < 1 || cp > max_cp) return 0;
  return !utf8_is_blank(s, n);
}

int val_display_name(const char *s) {
  return val_prose(s, VAL_DISPLAY_MAX);
}

int val_text(const char *s) {
  return val_prose(s, VAL_TEXT_MAX);
}

int val_request_id(const char *s) {
  if (s == NULL) return 1;
  size_t n = strlen(s);
  if (n > VAL_REQUEST_ID_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

int val_page_size(int32_t n) {
  if (n == 0) return VAL_PAGE_DEFAULT;
  if (n < 1 || n > VAL_PAGE_MAX) return -1;
  return n;
}

static grpc_status_code bad(const char **why, const char *msg) {
  *why = msg;
  return GRPC_STATUS_INVALID_ARGUMENT;
}

grpc_status_code val_participant(const Cruddur__Messages__V1__Participant *p, const char *role,
                                 const char **why) {
  int sender = strcmp(role, "sender") == 0;
  if (p == NULL) return bad(why, sender ? "sender is required" : "recipient is required");
  if (!uuid_valid(p->uuid))
    return bad(why, sender ? "sender.uuid must be a canonical lower-case uuid"
                           : "recipient.uuid must be a canonical lower-case uuid");
  if (!val_handle(p->handle))
    return bad(why, sender ? "sender.handle must be 1 to 32 of [A-Za-z0-9_]"
                           : "recipient.handle must be 1 to 32 of [A-Za-z0-9_]");
  if (!val_display_name(p->display_name))
    return bad(why, sender
                        ? "sender.display_name must be 1 to 100 characters of UTF-8, not blank"
                        : "recipient.display_name must be 1 to 100 characters of UTF-8, not blank");
  return GRPC_STATUS_OK;
}

static grpc_status_code val_common_text(const char *text, const char *request_id,
                                        const char **why) {
  if (!val_text(text))
    return bad(why, "text must be 1 to 1024 characters of valid UTF-8 and not only white space");
  if (!val_request_id(request_id))
    return bad(why, "request_id must be empty or 1 to 128 of [A-Za-z0-9._-]");
  return GRPC_STATUS_OK;
}

grpc_status_code val_list_groups(const Cruddur__Messages__V1__ListMessageGroupsRequest *r,
                                 const char **why) {
  if (!uuid_valid(r->user_uuid)) return bad(why, "user_uuid must be a canonical lower-case uuid");
  if (val_page_size(r->page_size) < 0) return bad(why, "page_size must be 0 to 100");
  return GRPC_STATUS_OK;
}

grpc_status_code val_list_messages(const Cruddur__Messages__V1__ListMessagesRequest *r,
                                   const char **why) {
  if (!uuid_valid(r->message_group_uuid))
    return bad(why, "message_group_uuid must be a canonical lower-case uuid");
  if (!uuid_valid(r->user_uuid)) return bad(why, "user_uuid must be a canonical lower-case uuid");
  if (val_page_size(r->page_size) < 0) return bad(why, "page_size must be 0 to 100");
  return GRPC_STATUS_OK;
}

grpc_status_code val_create_message(const Cruddur__Messages__V1__CreateMessageRequest *r,
                                    const char **why) {
  if (!uuid_valid(r->message_group_uuid))
    return bad(why, "message_group_uuid must be a canonical lower-case uuid");
  grpc_status_code c = val_participant(r->sender, "sender", why);
  if (c != GRPC_STATUS_OK) return c;
  return val_common_text(r->text, r->request_id, why);
}

grpc_status_code val_create_group(const Cruddur__Messages__V1__CreateMessageGroupRequest *r,
                                  const char **why) {
  grpc_status_code c = val_participant(r->sender, "sender", why);
  if (c != GRPC_STATUS_OK) return c;
  c = val_participant(r->recipient, "recipient", why);
  if (c != GRPC_STATUS_OK) return c;
  if (strcmp(r->sender->uuid, r->recipient->uuid) == 0)
    return bad(why, "sender and recipient must be different users");
  return val_common_text(r->text, r->request_id, why);
}
