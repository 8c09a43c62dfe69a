/* route.c - the route table (the wire contract's paths) and path matching. */
#include "route.h"

#include <string.h>

/* Indexed by gw_route_id. Two routes may share a path with different
 * methods; a path that exists with another method answers 405. */
static const gw_route routes[GW_R_COUNT] = {
    {GW_R_GROUPS, "GET", "/api/message_groups", "/api/message_groups", 1},
    {GW_R_MESSAGES_LIST, "GET", "/api/messages/{message_group_uuid}",
     "/api/messages/{message_group_uuid}", 1},
    {GW_R_MESSAGES_CREATE, "POST", "/api/messages", "/api/messages", 1},
    {GW_R_USER_SHORT, "GET", "/api/users/@{handle}/short", "/api/users/@{handle}/short", 0},
    {GW_R_HEALTHZ, "GET", "/healthz", "/healthz", 0},
    {GW_R_READYZ, "GET", "/readyz", "/readyz", 0},
    {GW_R_METRICS, "GET", "/metrics", "/metrics", 0},
    {GW_R_OPENAPI, "GET", "/openapi.json", "/openapi.json", 0},
    {GW_R_EVENTS, "GET", "/api/events", "/api/events", 1},
};

const gw_route *gw_route_table(void) {
  return routes;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long gw_pct_decode(const char *src, size_t len, char *dst, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = src[i];
    if (c == '%') {
      if (i + 2 >= len) return -1; /* fewer than two characters after '%' */
      int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0' || o + 1 >= cap) return -1;
    dst[o++] = c;
  }
  if (o >= cap) return -1;
  dst[o] = '\0';
  return (long)o;
}

/* Matches one route pattern against the raw path; on success writes the
 * decoded parameter into param (GW_PARAM_MAX + 1 bytes). Returns 1 or 0. */
static int pattern_match(const char *pattern, const char *path, char *param) {
  const char *p = pattern, *s = path;
  param[0] = '\0';
  if (*p != '/' || *s != '/') return 0;
  while (*p != '\0') {
    /* both at a '/' here */
    if (*s != '/') return 0;
    p++;
    s++;
    const char *pe = strchr(p, '/');
    size_t plen = pe ? (size_t)(pe - p) : strlen(p);
    const char *se = strchr(s, '/');
    size_t slen = se ? (size_t)(se - s) : strlen(s);
    if (slen == 0) return 0; /* empty segment or trailing slash */
    int at = plen >= 3 && p[0] == '@' && p[1] == '{';
    if (p[0] == '{' || at) {
      char tmp[GW_PARAM_MAX + 2];
      long n = gw_pct_decode(s, slen, tmp, sizeof tmp);
      if (n <= 0 || n > GW_PARAM_MAX + (at ? 1 : 0)) return 0;
      for (long i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tmp[i];
        if (c < 0x20 || c == 0x7f || c == '/') return 0;
      }
      if (at) {
        if (tmp[0] != '@') return 0;
        memcpy(param, tmp + 1, (size_t)n); /* includes the NUL */
      } else {
        memcpy(param, tmp, (size_t)n + 1);
      }
    } else {
      /* Literal segments compare decoded, so "/api/%6Dessages" still names
       * the same resource, but an encoded '/' never matches. */
      char tmp[64];
      long n = gw_pct_decode(s, slen, tmp, sizeof tmp);
      if (n < 0 || (size_t)n != plen || memcmp(tmp, p, plen) != 0) return 0;
    }
    p += plen;
    s += slen;
  }
  return *s == '\0';
}

/* HEAD is GET without the body (RFC 9110 9.3.2): every GET route takes it,
 * and server.c leaves the body out. Methods are case-sensitive. */
static int method_matches(const char *method, const char *route_method) {
  return strcmp(method, route_method) == 0 ||
         (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

gw_match_code gw_route_match(const char *method, const char *path, gw_match *out) {
  const gw_route *hit = NULL, *path_hit = NULL;
  char param[GW_PARAM_MAX + 1], hit_param[GW_PARAM_MAX + 1] = "";
  char allow[64] = "";
  if (method == NULL || path == NULL) return GW_MATCH_NOT_FOUND;
  for (int i = 0; i < GW_R_COUNT; i++) {
    if (!pattern_match(routes[i].pattern, path, param)) continue;
    if (path_hit == NULL) {
      path_hit = &routes[i];
      memcpy(hit_param, param, sizeof param);
    }
    if (strstr(allow, routes[i].method) == NULL) {
      if (allow[0] != '\0') strcat(allow, ", ");
      strcat(allow, routes[i].method);
      if (strcmp(routes[i].method, "GET") == 0) strcat(allow, ", HEAD");
    }
    if (hit == NULL && method_matches(method, routes[i].method)) {
      hit = &routes[i];
      memcpy(hit_param, param, sizeof param);
    }
  }
  if (path_hit == NULL) return GW_MATCH_NOT_FOUND;
  strcat(allow, ", OPTIONS");
  out->route = hit ? hit : path_hit;
  memcpy(out->param, hit_param, sizeof hit_param);
  memcpy(out->allow, allow, sizeof allow);
  if (hit != NULL) return GW_MATCH_OK;
  if (strcmp(method, "OPTIONS") == 0) return GW_MATCH_OPTIONS;
  return GW_MATCH_METHOD;
}
