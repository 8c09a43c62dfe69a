/* fuzz_gw_route.c - the gateway's request line: path matching (route.c) and
 * the query values it reads (limit, cursor) plus the Link header built back
 * from a cursor (wire.c).
 *
 * Input: byte 0 picks the method, the rest is "path[?query]" as raw,
 * still-encoded text (what the gateway's server hands the router: the raw path). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const methods[] = {"GET", "POST", "OPTIONS", "PUT", "DELETE", "HEAD", "get"};

/* Percent-encodes every byte of s: the most encoded spelling of a segment. */
static void pct_encode_all(const char *s, char *out) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (; *s; s++) {
    out[o++] = '%';
    out[o++] = hex[(unsigned char)*s >> 4];
    out[o++] = hex[(unsigned char)*s & 15];
  }
  out[o] = '\0';
}

/* Re-matches the route's pattern with the parameter fully encoded: one
 * resource must keep one meaning however it is spelled. */
static void check_canonical(const char *method, const gw_match *m) {
  char enc[GW_PARAM_MAX * 3 + 1], path[GW_PARAM_MAX * 3 + 64];
  const char *pat = m->route->pattern;
  const char *brace = strchr(pat, '{');
  if (brace == NULL) {
    strcpy(path, pat);
  } else {
    int at = brace > pat && brace[-1] == '@';
    const char *close = strchr(brace, '}');
    pct_encode_all(m->param, enc);
    size_t pre = (size_t)(brace - pat) - (at ? 1 : 0);
    memcpy(path, pat, pre);
    path[pre] = '\0';
    if (at) strcat(path, "@");
    strcat(path, enc);
    strcat(path, close + 1);
  }
  gw_match again;
  gw_match_code c = gw_route_match(method, path, &again);
  if (c != GW_MATCH_OK || again.route != m->route || strcmp(again.param, m->param) != 0) abort();
}

static void check_query(char *q) {
  for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
    char *eq = strchr(kv, '=');
    const char *val = eq ? eq + 1 : "";
    if (eq) *eq = '\0';
    if (strcmp(kv, "limit") == 0) {
      int lim = -1;
      if (gw_limit_parse(val, &lim) == 0 && (lim < 1 || lim > GW_LIMIT_MAX)) abort();
    } else if (strcmp(kv, "cursor") == 0) {
      char cur[GW_CURSOR_MAX + 1];
      if (gw_cursor_parse(val, cur) != 0) continue;
      size_t n = strlen(cur);
      if (n == 0 || n > GW_CURSOR_MAX) abort();
      for (size_t i = 0; i < n; i++)
        if ((unsigned char)cur[i] <= 0x20 || (unsigned char)cur[i] >= 0x7f) abort();
      /* Link: <path?limit=N&cursor=ENC>; the client sends ENC back, which
       * must decode to the very same cursor. */
      char link[GW_CURSOR_MAX * 3 + 128];
      if (gw_link_next(link, sizeof link, "/api/message_groups", 20, cur) != 0) abort();
      char *c = strstr(link, "&cursor=");
      char *end = c ? strchr(c, '>') : NULL;
      if (end == NULL || strcmp(end, ">; rel=\"next\"") != 0) abort();
      *end = '\0';
      char back[GW_CURSOR_MAX + 1];
      if (gw_cursor_parse(c + 8, back) != 0 || strcmp(back, cur) != 0) abort();
      /* A buffer one byte short must fail cleanly, not overflow. */
      size_t full = strlen(link) + strlen(">; rel=\"next\"");
      if (gw_link_next(link, full, "/api/message_groups", 20, cur) != -1) abort();
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4096) return 0;
  const char *method = methods[data[0] % (sizeof methods / sizeof methods[0])];
  char *url = malloc(size);
  if (url == NULL) return 0;
  memcpy(url, data + 1, size - 1);
  url[size - 1] = '\0'; /* the path is a C string (http-parser refuses a raw NUL) */
  char *q = strchr(url, '?');
  if (q) *q++ = '\0';

  gw_match m;
  memset(&m, 0xAA, sizeof m);
  gw_match_code c = gw_route_match(method, url, &m);
  switch (c) {
  case GW_MATCH_NOT_FOUND:
    break;
  case GW_MATCH_OK:
  case GW_MATCH_OPTIONS:
  case GW_MATCH_METHOD: {
    const gw_route *t = gw_route_table();
    if (m.route < t || m.route >= t + GW_R_COUNT) abort();
    size_t pn = strnlen(m.param, sizeof m.param);
    if (pn > GW_PARAM_MAX || strnlen(m.allow, sizeof m.allow) >= sizeof m.allow) abort();
    for (size_t i = 0; i < pn; i++)
      if ((unsigned char)m.param[i] < 0x20 || m.param[i] == 0x7f || m.param[i] == '/') abort();
    /* "{name}" never matches an empty segment; "@{name}" may match a lone
     * "@" with param "" (the handler answers 404 for an invalid handle). */
    if (strstr(m.route->pattern, "/{") != NULL && pn == 0) abort();
    if (strchr(m.route->pattern, '{') == NULL && pn != 0) abort();
    if (strstr(m.allow, "OPTIONS") == NULL) abort();
    /* No dot segments, empty segments or trailing slash ever match. */
    if (strstr(url, "//") || strstr(url, "/./") || strstr(url, "/../") ||
        url[strlen(url) - 1] == '/')
      abort();
    if (c == GW_MATCH_OK) {
      /* HEAD matches every GET route (RFC 9110 9.3.2). */
      int head_get = strcmp(method, "HEAD") == 0 && strcmp(m.route->method, "GET") == 0;
      if (strcmp(method, m.route->method) != 0 && !head_get) abort();
      check_canonical(method, &m);
      if (m.route->id == GW_R_MESSAGES_LIST) {
        char u[37];
        if (gw_uuid_normalise(m.param, u) && strlen(u) != 36) abort();
      }
    } else if (c == GW_MATCH_OPTIONS && strcmp(method, "OPTIONS") != 0) {
      abort();
    }
    break;
  }
  default:
    abort();
  }
  if (q) check_query(q);
  free(url);
  return 0;
}
