/* cors.c - the origin allow-list. */
#include "cors.h"

#include <string.h>
#include <strings.h>

static int add_list(gw_cors *c, const char *list) {
  const char *p = list;
  if (p == NULL) return 0;
  while (*p != '\0') {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    const char *s = p;
    while (n > 0 && (*s == ' ' || *s == '\t'))
      s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
      n--;
    if (n > 0 && s[n - 1] == '/') n--;
    if (n > 0) {
      if (n > GW_CORS_ORIGIN_MAX || c->n >= GW_CORS_MAX_ORIGINS) return -1;
      size_t skip;
      if (n > 7 && strncasecmp(s, "http://", 7) == 0)
        skip = 7;
      else if (n > 8 && strncasecmp(s, "https://", 8) == 0)
        skip = 8;
      else
        return -1;
      for (size_t i = skip; i < n; i++)
        if (s[i] == '/' || s[i] == ' ' || (unsigned char)s[i] < 0x21) return -1;
      memcpy(c->origins[c->n], s, n);
      c->origins[c->n][n] = '\0';
      c->n++;
    }
    if (e == NULL) break;
    p = e + 1;
  }
  return 0;
}

int gw_cors_init(gw_cors *out, const char *frontend, const char *backend) {
  out->n = 0;
  if (add_list(out, frontend) != 0 || add_list(out, backend) != 0) return -1;
  return 0;
}

int gw_cors_allowed(const gw_cors *c, const char *origin) {
  if (origin == NULL || origin[0] == '\0') return 0;
  size_t n = strlen(origin);
  if (n > 0 && origin[n - 1] == '/') n--;
  for (size_t i = 0; i < c->n; i++) {
    if (strlen(c->origins[i]) == n && strncasecmp(c->origins[i], origin, n) == 0) return 1;
  }
  return 0;
}
