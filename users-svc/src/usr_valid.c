/* usr_valid.c - field checks; see usr_valid.h. */
#include "usr_valid.h"

#include <string.h>

#include "cruddur/utf8.h"
#include "cruddur/uuid.h"

static int uv__word_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

uv_result uv_handle(const char *s) {
  if (s == NULL || s[0] == '\0') return UV_EMPTY;
  size_t n = 0;
  for (; s[n] != '\0'; n++) {
    if (n >= USR_HANDLE_MAX) return UV_TOO_LONG;
    if (!uv__word_char((unsigned char)s[n])) return UV_BAD_CHAR;
  }
  return UV_OK;
}

uv_result uv_uuid(const char *s) {
  if (s == NULL || s[0] == '\0') return UV_EMPTY;
  return uuid_valid(s) ? UV_OK : UV_BAD_FORMAT;
}

uv_result uv_display_name(const char *s) {
  if (s == NULL || s[0] == '\0') return UV_EMPTY;
  size_t len = strlen(s);
  /* Bound the scan first: a megabyte of text need not be decoded to be refused. */
  if (len > USR_NAME_MAX_BYTES) return UV_TOO_LONG;
  long cp = utf8_count(s, len);
  if (cp < 0) return UV_BAD_UTF8;
  if (cp > USR_NAME_MAX_CP) return UV_TOO_LONG;
  if (utf8_is_blank(s, len)) return UV_BLANK;
  return UV_OK;
}

uv_result uv_email(const char *s) {
  if (s == NULL || s[0] == '\0') return UV_EMPTY;
  size_t len = strlen(s);
  if (len > USR_EMAIL_MAX) return UV_TOO_LONG;
  if (len < USR_EMAIL_MIN) return UV_TOO_SHORT;
  if (utf8_count(s, len) < 0) return UV_BAD_UTF8;
  size_t ats = 0, at = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c == 0x7f) return UV_BAD_CHAR; /* space and C0 controls, DEL */
    if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] <= 0xa0)
      return UV_BAD_CHAR; /* C1 controls U+0080..U+009F; also U+00A0 no-break space */
    if (c == '@') {
      ats++;
      at = i;
    }
  }
  if (ats != 1 || at == 0 || at == len - 1) return UV_BAD_FORMAT;
  return UV_OK;
}

uv_result uv_cognito_user_id(const char *s) {
  if (s == NULL || s[0] == '\0') return UV_EMPTY;
  size_t n = 0;
  for (; s[n] != '\0'; n++) {
    if (n >= USR_SUB_MAX) return UV_TOO_LONG;
    if (!uv__word_char((unsigned char)s[n]) && s[n] != '-') return UV_BAD_CHAR;
  }
  return UV_OK;
}

uv_result uv_pool_id(const char *s) {
  if (s == NULL || s[0] == '\0') return UV_EMPTY;
  size_t n = 0, last_us = 0;
  int seen_us = 0;
  for (; s[n] != '\0'; n++) {
    if (n >= USR_POOL_ID_MAX) return UV_TOO_LONG;
    unsigned char c = (unsigned char)s[n];
    if (!uv__word_char(c) && c != '-') return UV_BAD_CHAR;
    if (c == '_') {
      seen_us = 1;
      last_us = n;
    }
  }
  /* The part after the last '_' must be non-empty ([0-9a-zA-Z]+), the part
   * before it too ([\w-]+). */
  if (!seen_us || last_us == 0 || last_us == n - 1) return UV_BAD_FORMAT;
  return UV_OK;
}

const char *uv_strerror(uv_result r) {
  switch (r) {
  case UV_OK:
    return "ok";
  case UV_EMPTY:
    return "empty";
  case UV_TOO_LONG:
    return "too long";
  case UV_TOO_SHORT:
    return "too short";
  case UV_BAD_CHAR:
    return "contains a character that is not allowed";
  case UV_BAD_UTF8:
    return "not valid UTF-8";
  case UV_BLANK:
    return "blank";
  case UV_BAD_FORMAT:
    return "malformed";
  }
  return "invalid";
}
