/* wire.h - the HTTP wire format: request checks, the POST body, JSON shapes.
 *
 * JSON keys are exactly what the original React frontend reads
 * (uuid, display_name, handle, message, created_at, message_group_uuid);
 * created_at is the 32-character "YYYY-MM-DDTHH:MM:SS.ffffff+00:00" form.
 */
#ifndef GW_WIRE_H
#define GW_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "cruddur/jw.h"
#include "cruddur/messages/v1/messages.pb-c.h"
#include "cruddur/users/v1/users.pb-c.h"
#include "ucache.h"

#define GW_BODY_MAX 16384      /* request body cap (413 above) */
#define GW_MESSAGE_MAX_CP 1024 /* message length in code points */
#define GW_LIMIT_DEFAULT 20
#define GW_LIMIT_MAX 100
#define GW_CURSOR_MAX 512 /* longest page token passed through */
#define GW_RID_MAX 128    /* X-Request-Id and Idempotency-Key */
#define GW_HANDLE_MAX 32

/* Validation codes (422). The first four are the original's, spelling included. */
#define GW_E_MESSAGE_BLANK "message_blank"
#define GW_E_MESSAGE_TOO_LONG "message_exceed_max_chars"
#define GW_E_MESSAGE_UTF8 "message_invalid_utf8"
#define GW_E_GROUP_BLANK "message_group_uuid_blank"
#define GW_E_GROUP_INVALID "message_group_uuid_invalid"
#define GW_E_HANDLE_BLANK "user_reciever_handle_blank"
#define GW_E_HANDLE_INVALID "handle_invalid"
#define GW_E_SELF "cannot_message_self"
#define GW_E_LIMIT "limit_invalid"
#define GW_E_CURSOR "cursor_invalid"
#define GW_E_IDEMPOTENCY "idempotency_key_invalid"
/* 404 codes */
#define GW_E_USER_NOT_FOUND "user_not_found"
#define GW_E_GROUP_NOT_FOUND "message_group_not_found"

/* 1 when s is 1..128 of [A-Za-z0-9._-] (X-Request-Id, Idempotency-Key). */
int gw_token_valid(const char *s);

/* 1 when s is 1..32 of [A-Za-z0-9_]. */
int gw_handle_valid(const char *s);

/* Copies s into out lower-cased and returns 1 when it is a uuid in
 * 8-4-4-4-12 hex (either case); 0 otherwise (out untouched). */
int gw_uuid_normalise(const char *s, char out[37]);

/* Parses the raw (encoded) `limit` query value. NULL means the default.
 * Returns 0 and sets *out (1..100), or -1 (limit_invalid). */
int gw_limit_parse(const char *raw, int *out);

/* Decodes the raw `cursor` query value into out (GW_CURSOR_MAX + 1 bytes).
 * NULL gives "". Returns 0, or -1 (cursor_invalid: bad escape, empty, too
 * long, or a byte outside printable ASCII). */
int gw_cursor_parse(const char *raw, char out[GW_CURSOR_MAX + 1]);

/* Writes `<path?limit=N&cursor=ENC>; rel="next"` (RFC 8288) with the cursor
 * percent-encoded (everything but unreserved characters). Returns 0, or -1
 * when it does not fit in cap. */
int gw_link_next(char *dst, size_t cap, const char *path, int limit, const char *cursor);

/* ---- POST /api/messages body -------------------------------------------- */

typedef enum { GW_CREATE_IN_GROUP = 0, GW_CREATE_BY_HANDLE } gw_create_mode;

typedef struct gw_create {
  gw_create_mode mode;
  char *message;                  /* owned; free with gw_create_clear */
  char group_uuid[37];            /* GW_CREATE_IN_GROUP: lower-cased */
  char handle[GW_HANDLE_MAX + 1]; /* GW_CREATE_BY_HANDLE */
} gw_create;

typedef enum {
  GW_BODY_OK = 0,
  GW_BODY_INVALID_JSON,  /* 400 invalid_json */
  GW_BODY_NOT_OBJECT,    /* 400 body_not_object */
  GW_BODY_FIELD_TYPE,    /* 400 field_type_invalid */
  GW_BODY_UNPROCESSABLE, /* 422 with every failing code in codes[] */
  GW_BODY_NOMEM
} gw_body_code;

#define GW_BODY_CODES_MAX 8

/* Parses and validates the body. A NUL byte or a \u0000 escape anywhere is
 * GW_BODY_INVALID_JSON (text cannot hold NUL; cJSON would cut the string). `message_group_uuid`
 * present and not null selects "post into group", otherwise "by handle" (as the original). On
 * GW_BODY_OK *out is filled (caller frees with gw_create_clear); on
 * GW_BODY_UNPROCESSABLE codes[0..*ncodes) holds every failing rule (static
 * strings) and nothing is allocated. */
gw_body_code gw_body_parse(const char *body, size_t len, gw_create *out,
                           const char *codes[GW_BODY_CODES_MAX], size_t *ncodes);

/* Frees what gw_body_parse allocated. */
void gw_create_clear(gw_create *c);

/* Copies a users-svc User into *out (uuid lower-cased). Returns 0, or -1
 * when u is NULL, its uuid is not one, or a field is missing or does not
 * fit (a malformed upstream answer); *out is untouched then. */
int gw_user_from_pb(const Cruddur__Users__V1__User *u, gw_user *out);

/* ---- response JSON (malloc'd strings, caller frees; NULL on OOM) --------- */

/* Display names are 1 to 100 code points (users-svc). */
#define GW_DISPLAY_NAME_MAX_CP 100

/* The most bytes one list item may take while written: gw_json_item
 * reserves every string at its longest escape (6 bytes a byte) for the
 * longest valid values (4 bytes a code point), plus keys and the time. */
#define GW_ITEM_JSON_MAX ((size_t)6 * (4 * (GW_MESSAGE_MAX_CP + GW_DISPLAY_NAME_MAX_CP) + \
                                       GW_HANDLE_MAX + 36) + 128)
/* The cap of an answer body: a page of GW_LIMIT_MAX such items. */
#define GW_JSON_MAX ((size_t)GW_LIMIT_MAX * GW_ITEM_JSON_MAX + 64)

/* One item of the list answers (a message, or a conversation as its latest
 * message): views that need not be NUL-terminated, and the time as a
 * google.protobuf.Timestamp's two fields. */
typedef struct gw_item {
  const char *uuid, *display_name, *handle, *text;
  size_t uuid_len, display_name_len, handle_len, text_len;
  int64_t seconds;
  int32_t nanos;
} gw_item;

/* Appends the item's JSON object
 * {"uuid","display_name","handle","message","created_at"} to w (jw.h:
 * errors are sticky in w->failed). */
void gw_json_item(jw *w, const gw_item *it);


char *gw_json_groups(const Cruddur__Messages__V1__ListMessageGroupsResponse *r);
/* One item of gw_json_groups (the server-sent `message_group` event). */
char *gw_json_group(const Cruddur__Messages__V1__MessageGroup *g);
char *gw_json_messages(const Cruddur__Messages__V1__ListMessagesResponse *r);
char *gw_json_created(const Cruddur__Messages__V1__Message *m);
char *gw_json_user_short(const Cruddur__Users__V1__User *u);

/* Timestamp -> wire form (33 bytes). A missing or out-of-range time gives
 * the epoch rather than an invalid string. */
void gw_wire_time(const Google__Protobuf__Timestamp *t, char out[33]);

/* The same from a Timestamp's fields (any values). */
void gw_wire_time_at(int64_t seconds, int32_t nanos, char out[33]);

#endif
