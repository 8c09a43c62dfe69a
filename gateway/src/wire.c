/* wire.c - request checks, the POST body and the response JSON shapes. */
#include "wire.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cruddur/jw.h"
#include "cruddur/ts.h"
#include "cruddur/utf8.h"
#include "route.h"

int gw_token_valid(const char *s) {
  size_t n = 0;
  if (s == NULL) return 0;
  for (; s[n] != '\0'; n++) {
    unsigned char c = (unsigned char)s[n];
    if (n >= GW_RID_MAX) return 0;
    if (!(isalnum(c) || c == '.' || c == '_' || c == '-') || c > 0x7f) return 0;
  }
  return n >= 1;
}

int gw_handle_valid(const char *s) {
  size_t n = 0;
  if (s == NULL) return 0;
  for (; s[n] != '\0'; n++) {
    unsigned char c = (unsigned char)s[n];
    if (n >= GW_HANDLE_MAX || c > 0x7f || !(isalnum(c) || c == '_')) return 0;
  }
  return n >= 1;
}

int gw_uuid_normalise(const char *s, char out[37]) {
  char tmp[37];
  if (s == NULL || strlen(s) != 36) return 0;
  for (int i = 0; i < 36; i++) {
    unsigned char c = (unsigned char)s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return 0;
    } else if (c > 0x7f || !isxdigit(c)) {
      return 0;
    }
    tmp[i] = (char)tolower(c);
  }
  tmp[36] = '\0';
  memcpy(out, tmp, sizeof tmp);
  return 1;
}

int gw_limit_parse(const char *raw, int *out) {
  if (raw == NULL) {
    *out = GW_LIMIT_DEFAULT;
    return 0;
  }
  int v = 0;
  size_t n = strlen(raw);
  if (n == 0 || n > 3) return -1;
  for (size_t i = 0; i < n; i++) {
    if (raw[i] < '0' || raw[i] > '9') return -1;
    v = v * 10 + (raw[i] - '0');
  }
  if (v < 1 || v > GW_LIMIT_MAX) return -1;
  *out = v;
  return 0;
}

int gw_cursor_parse(const char *raw, char out[GW_CURSOR_MAX + 1]) {
  char tmp[GW_CURSOR_MAX + 1];
  if (raw == NULL) {
    out[0] = '\0';
    return 0;
  }
  long n = gw_pct_decode(raw, strlen(raw), tmp, sizeof tmp);
  if (n <= 0) return -1;
  for (long i = 0; i < n; i++) {
    unsigned char c = (unsigned char)tmp[i];
    if (c <= 0x20 || c >= 0x7f) return -1;
  }
  memcpy(out, tmp, (size_t)n + 1);
  return 0;
}

int gw_link_next(char *dst, size_t cap, const char *path, int limit, const char *cursor) {
  static const char hex[] = "0123456789ABCDEF";
  int n = snprintf(dst, cap, "<%s?limit=%d&cursor=", path, limit);
  if (n < 0 || (size_t)n >= cap) return -1;
  size_t o = (size_t)n;
  for (const unsigned char *c = (const unsigned char *)cursor; *c != '\0'; c++) {
    if (o + 4 >= cap) return -1;
    if (isalnum(*c) && *c < 0x80) {
      dst[o++] = (char)*c;
    } else if (*c == '-' || *c == '.' || *c == '_' || *c == '~') {
      dst[o++] = (char)*c;
    } else {
      dst[o++] = '%';
      dst[o++] = hex[*c >> 4];
      dst[o++] = hex[*c & 15];
    }
  }
  static const char tail[] = ">; rel=\"next\"";
  if (o + sizeof tail > cap) return -1;
  memcpy(dst + o, tail, sizeof tail);
  return 0;
}

/* ---- POST body ------------------------------------------------------------ */

void gw_create_clear(gw_create *c) {
  if (c == NULL) return;
  free(c->message);
  c->message = NULL;
}

/* A field is "given" when present and not JSON null. A given field that is
 * not a string is a shape error (400), not a validation error. */
static int field(const cJSON *obj, const char *name, const cJSON **out, int *bad_type) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
  *out = NULL;
  if (f == NULL || cJSON_IsNull(f)) return 0;
  if (!cJSON_IsString(f) || f->valuestring == NULL) {
    *bad_type = 1;
    return 0;
  }
  *out = f;
  return 1;
}

/* 1 when the JSON text holds a \u0000 escape: cJSON would decode it into a
 * NUL and silently cut the string there, so such a body is refused. */
static int has_nul_escape(const char *s, size_t len) {
  for (size_t i = 0; i + 6 <= len; i++) {
    if (s[i] != '\\' || s[i + 1] != 'u' || memcmp(s + i + 2, "0000", 4) != 0) continue;
    size_t bs = 0; /* backslashes ending at i: odd means s[i] starts an escape */
    while (bs <= i && s[i - bs] == '\\')
      bs++;
    if (bs % 2 == 1) return 1;
  }
  return 0;
}

gw_body_code gw_body_parse(const char *body, size_t len, gw_create *out,
                           const char *codes[GW_BODY_CODES_MAX], size_t *ncodes) {
  const char *end = NULL;
  size_t nc = 0;
  int bad_type = 0;
  if (body == NULL || len == 0) return GW_BODY_INVALID_JSON;
  /* cJSON stops at the first NUL: a NUL byte inside the body is malformed. */
  if (memchr(body, '\0', len) != NULL || has_nul_escape(body, len)) return GW_BODY_INVALID_JSON;
  cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
  if (root == NULL) return GW_BODY_INVALID_JSON;
  while (end != NULL && end < body + len && isspace((unsigned char)*end))
    end++;
  if (end != body + len) {
    cJSON_Delete(root);
    return GW_BODY_INVALID_JSON;
  }
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return GW_BODY_NOT_OBJECT;
  }
  const cJSON *msg, *grp, *hdl;
  int has_msg = field(root, "message", &msg, &bad_type);
  int has_grp = field(root, "message_group_uuid", &grp, &bad_type);
  int has_hdl = field(root, "handle", &hdl, &bad_type);
  if (bad_type) {
    cJSON_Delete(root);
    return GW_BODY_FIELD_TYPE;
  }
  gw_create c;
  memset(&c, 0, sizeof c);
  /* message: every rule is checked so the client sees all problems at once. */
  const char *text = has_msg ? msg->valuestring : "";
  size_t tlen = strlen(text);
  long cp = utf8_count(text, tlen);
  if (tlen == 0) {
    codes[nc++] = GW_E_MESSAGE_BLANK;
  } else if (cp < 0) {
    codes[nc++] = GW_E_MESSAGE_UTF8;
  } else {
    if (utf8_is_blank(text, tlen)) codes[nc++] = GW_E_MESSAGE_BLANK;
    if (cp > GW_MESSAGE_MAX_CP) codes[nc++] = GW_E_MESSAGE_TOO_LONG;
  }
  if (has_grp) {
    c.mode = GW_CREATE_IN_GROUP;
    if (grp->valuestring[0] == '\0') {
      codes[nc++] = GW_E_GROUP_BLANK;
    } else if (!gw_uuid_normalise(grp->valuestring, c.group_uuid)) {
      codes[nc++] = GW_E_GROUP_INVALID;
    }
  } else {
    c.mode = GW_CREATE_BY_HANDLE;
    if (!has_hdl || hdl->valuestring[0] == '\0') {
      codes[nc++] = GW_E_HANDLE_BLANK;
    } else if (!gw_handle_valid(hdl->valuestring)) {
      codes[nc++] = GW_E_HANDLE_INVALID;
    } else {
      strcpy(c.handle, hdl->valuestring);
    }
  }
  if (nc > 0) {
    cJSON_Delete(root);
    *ncodes = nc;
    return GW_BODY_UNPROCESSABLE;
  }
  c.message = strdup(text);
  cJSON_Delete(root);
  if (c.message == NULL) return GW_BODY_NOMEM;
  *out = c;
  return GW_BODY_OK;
}

int gw_user_from_pb(const Cruddur__Users__V1__User *u, gw_user *out) {
  gw_user got;
  memset(&got, 0, sizeof got);
  if (u == NULL || !gw_uuid_normalise(u->uuid, got.uuid) || u->handle == NULL ||
      strlen(u->handle) >= sizeof got.handle || u->display_name == NULL ||
      strlen(u->display_name) >= sizeof got.display_name)
    return -1;
  strcpy(got.handle, u->handle);
  strcpy(got.display_name, u->display_name);
  *out = got;
  return 0;
}

/* ---- response JSON ------------------------------------------------------- */

void gw_wire_time_at(int64_t seconds, int32_t nanos, char out[33]) {
  /* Far outside what ts_format_wire takes (years 1 to 9999) either way;
   * checked first so that the product below cannot overflow. */
  const int64_t far = INT64_C(1000000000000);
  int64_t us = seconds > -far && seconds < far ? seconds * 1000000 + nanos / 1000 : 0;
  if (ts_format_wire(us, out) != 0) ts_format_wire(0, out);
}

void gw_wire_time(const Google__Protobuf__Timestamp *t, char out[33]) {
  if (t == NULL)
    gw_wire_time_at(0, 0, out);
  else
    gw_wire_time_at(t->seconds, t->nanos, out);
}

/* Copies a literal of known size (the compiler inlines the copy). */
#define PUT_LIT(d, lit) (memcpy((d), (lit), sizeof(lit) - 1), (d) + sizeof(lit) - 1)

/* "s" escaped; room for JW_ESCAPED_MAX(n) + 2. */
static char *put_str(char *d, const char *s, size_t n) {
  *d++ = '"';
  d += jw_escape(d, s, n);
  *d++ = '"';
  return d;
}

void gw_json_item(jw *w, const gw_item *it) {
  size_t bound = JW_ESCAPED_MAX(it->uuid_len + it->display_name_len + it->handle_len +
                                it->text_len) +
                 128;
  if (w->failed) return;
  char *d0 = dbuf_reserve(w->out, bound);
  if (d0 == NULL) {
    w->failed = true;
    return;
  }
  char ts[33];
  gw_wire_time_at(it->seconds, it->nanos, ts);
  char *d = PUT_LIT(d0, "{\"uuid\":");
  d = put_str(d, it->uuid, it->uuid_len);
  d = PUT_LIT(d, ",\"display_name\":");
  d = put_str(d, it->display_name, it->display_name_len);
  d = PUT_LIT(d, ",\"handle\":");
  d = put_str(d, it->handle, it->handle_len);
  d = PUT_LIT(d, ",\"message\":");
  d = put_str(d, it->text, it->text_len);
  d = PUT_LIT(d, ",\"created_at\":\"");
  memcpy(d, ts, 32); /* digits and punctuation: nothing to escape */
  d += 32;
  d = PUT_LIT(d, "\"}");
  dbuf_commit(w->out, (size_t)(d - d0));
}

/* A NUL-terminated string as a view (NULL counts as ""). */
static void view(const char *s, const char **p, size_t *n) {
  *p = s != NULL ? s : "";
  *n = strlen(*p);
}

/* Writes one list item from its protobuf-c form. */
static void put_item(jw *w, const char *uuid, const Cruddur__Messages__V1__Participant *who,
                     const char *text, const Google__Protobuf__Timestamp *at) {
  gw_item it;
  view(uuid, &it.uuid, &it.uuid_len);
  view(who ? who->display_name : NULL, &it.display_name, &it.display_name_len);
  view(who ? who->handle : NULL, &it.handle, &it.handle_len);
  view(text, &it.text, &it.text_len);
  it.seconds = at ? at->seconds : 0;
  it.nanos = at ? at->nanos : 0;
  gw_json_item(w, &it);
}

/* Hands the text over (malloc'd, the caller's), or frees it on failure. */
static char *finish(jw *w) {
  if (w->failed || w->out->buf == NULL) {
    dbuf_free(w->out);
    return NULL;
  }
  return w->out->buf;
}

char *gw_json_groups(const Cruddur__Messages__V1__ListMessageGroupsResponse *r) {
  dbuf b = DBUF_INIT(GW_JSON_MAX);
  jw w = {&b, false};
  jw_lit(&w, "[");
  for (size_t i = 0; i < r->n_groups; i++) {
    const Cruddur__Messages__V1__MessageGroup *g = r->groups[i];
    if (i > 0) jw_lit(&w, ",");
    put_item(&w, g->message_group_uuid, g->other, g->last_message, g->last_message_at);
  }
  jw_lit(&w, "]");
  return finish(&w);
}

char *gw_json_group(const Cruddur__Messages__V1__MessageGroup *g) {
  dbuf b = DBUF_INIT(GW_JSON_MAX);
  jw w = {&b, false};
  put_item(&w, g->message_group_uuid, g->other, g->last_message, g->last_message_at);
  return finish(&w);
}

char *gw_json_messages(const Cruddur__Messages__V1__ListMessagesResponse *r) {
  dbuf b = DBUF_INIT(GW_JSON_MAX);
  jw w = {&b, false};
  jw_lit(&w, "[");
  for (size_t i = 0; i < r->n_messages; i++) {
    const Cruddur__Messages__V1__Message *m = r->messages[i];
    if (i > 0) jw_lit(&w, ",");
    put_item(&w, m->message_uuid, m->sender, m->text, m->created_at);
  }
  jw_lit(&w, "]");
  return finish(&w);
}

char *gw_json_created(const Cruddur__Messages__V1__Message *m) {
  char ts[33];
  dbuf b = DBUF_INIT(GW_JSON_MAX);
  jw w = {&b, false};
  const Cruddur__Messages__V1__Participant *s = m->sender;
  gw_wire_time(m->created_at, ts);
  jw_lit(&w, "{\"message_group_uuid\":");
  jw_str(&w, m->message_group_uuid);
  jw_lit(&w, ",\"uuid\":");
  jw_str(&w, m->message_uuid);
  jw_lit(&w, ",\"display_name\":");
  jw_str(&w, s ? s->display_name : NULL);
  jw_lit(&w, ",\"handle\":");
  jw_str(&w, s ? s->handle : NULL);
  jw_lit(&w, ",\"message\":");
  jw_str(&w, m->text);
  jw_lit(&w, ",\"created_at\":");
  jw_str(&w, ts);
  jw_lit(&w, "}");
  return finish(&w);
}

char *gw_json_user_short(const Cruddur__Users__V1__User *u) {
  dbuf b = DBUF_INIT(GW_JSON_MAX);
  jw w = {&b, false};
  jw_lit(&w, "{\"uuid\":");
  jw_str(&w, u->uuid);
  jw_lit(&w, ",\"handle\":");
  jw_str(&w, u->handle);
  jw_lit(&w, ",\"display_name\":");
  jw_str(&w, u->display_name);
  jw_lit(&w, "}");
  return finish(&w);
}
