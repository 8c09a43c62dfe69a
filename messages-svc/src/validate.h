/* validate.h - request validation for MessagesService.
 *
 * Each check returns GRPC_STATUS_OK, or GRPC_STATUS_INVALID_ARGUMENT with
 * *why set to a static sentence safe to send and log (it never quotes the
 * message text). Nothing is allocated.
 */
#ifndef MSGS_VALIDATE_H
#define MSGS_VALIDATE_H

#include <grpc/status.h>

#include "cruddur/messages/v1/messages.pb-c.h"

#define VAL_TEXT_MAX 1024   /* code points */
#define VAL_DISPLAY_MAX 100 /* code points */
#define VAL_HANDLE_MAX 32
#define VAL_REQUEST_ID_MAX 128
#define VAL_PAGE_DEFAULT 20
#define VAL_PAGE_MAX 100

/* 1 when valid: 1..32 of [A-Za-z0-9_]. */
int val_handle(const char *s);
/* 1 when valid: 1..100 code points of valid UTF-8, not blank. */
int val_display_name(const char *s);
/* 1 when valid: 1..1024 code points of valid UTF-8, not whitespace-only. */
int val_text(const char *s);
/* 1 when valid: "" or 1..128 of [A-Za-z0-9._-]. */
int val_request_id(const char *s);
/* Page size: 0 -> 20, 1..100 as is; else -1. */
int val_page_size(int32_t n);

grpc_status_code val_participant(const Cruddur__Messages__V1__Participant *p, const char *role,
                                 const char **why);
grpc_status_code val_list_groups(const Cruddur__Messages__V1__ListMessageGroupsRequest *r,
                                 const char **why);
grpc_status_code val_list_messages(const Cruddur__Messages__V1__ListMessagesRequest *r,
                                   const char **why);
grpc_status_code val_create_message(const Cruddur__Messages__V1__CreateMessageRequest *r,
                                    const char **why);
grpc_status_code val_create_group(const Cruddur__Messages__V1__CreateMessageGroupRequest *r,
                                  const char **why);

#endif
