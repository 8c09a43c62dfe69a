/* usr_valid.h - the field formats of cruddur.users.v1 (see users.proto).
 *
 * Pure functions over NUL-terminated strings; NULL is treated as "". The
 * database enforces the same rules with CHECK constraints (migrations), so a
 * row that slips past one layer is stopped by the other.
 */
#ifndef USERS_USR_VALID_H
#define USERS_USR_VALID_H

#define USR_HANDLE_MAX 32
#define USR_NAME_MAX_CP 100          /* code points */
#define USR_NAME_MAX_BYTES (100 * 4) /* worst case UTF-8 */
#define USR_EMAIL_MIN 3
#define USR_EMAIL_MAX 254
#define USR_SUB_MAX 128
#define USR_POOL_ID_MAX 55
#define USR_BATCH_MAX 100 /* BatchGetUsers: keys in all */

typedef enum {
  UV_OK = 0,
  UV_EMPTY,     /* missing or "" */
  UV_TOO_LONG,  /* over the length limit */
  UV_TOO_SHORT, /* under the length limit (e-mail) */
  UV_BAD_CHAR,  /* a character outside the allowed set */
  UV_BAD_UTF8,  /* not valid UTF-8 */
  UV_BLANK,     /* only white space */
  UV_BAD_FORMAT /* the right characters in the wrong shape */
} uv_result;

/* 1 to 32 of [A-Za-z0-9_]. */
uv_result uv_handle(const char *s);
/* Canonical lower-case 8-4-4-4-12 hex. */
uv_result uv_uuid(const char *s);
/* 1 to 100 code points of valid UTF-8, not blank. */
uv_result uv_display_name(const char *s);
/* 3 to 254 bytes of valid UTF-8, exactly one '@' with something on both
 * sides, no spaces or control characters. */
uv_result uv_email(const char *s);
/* Cognito sub: 1 to 128 of [A-Za-z0-9_-]. */
uv_result uv_cognito_user_id(const char *s);
/* Cognito user pool id: up to 55 of [A-Za-z0-9_-] shaped REGION_ID
 * (AWS: [\w-]+_[0-9a-zA-Z]+). */
uv_result uv_pool_id(const char *s);

/* "empty", "too long", ...: static, never NULL. */
const char *uv_strerror(uv_result r);

#endif
