/* fuzz_gw_headers.c - the request headers the gateway reads itself: Origin
 * against the CORS allow-list (cors.c), and X-Request-Id / Idempotency-Key,
 * handles and uuids (wire.c). Each function is compared with a plain
 * re-statement of its documented rule.
 *
 * Input: up to four '\n'-separated fields: Origin, FRONTEND_URL,
 * BACKEND_URL, a token (X-Request-Id / handle / uuid candidate). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cors.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int oracle_chars(const char *s, size_t max, const char *extra) {
  size_t n = strlen(s);
  if (n < 1 || n > max) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             (c != '\0' && strchr(extra, c) != NULL);
    if (!ok) return 0;
  }
  return 1;
}

static int oracle_uuid(const char *s) {
  if (strlen(s) != 36) return 0;
  for (int i = 0; i < 36; i++) {
    int dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return 0;
    if (!dash && !isxdigit((unsigned char)s[i])) return 0;
  }
  return 1;
}

/* The allowed origins of the fixed list below, as the spec states it. */
static int oracle_allowed(const char *origin) {
  static const char *const list[] = {"http://localhost:3000", "https://app.example.com"};
  size_t n = strlen(origin);
  if (n > 0 && origin[n - 1] == '/') n--;
  for (size_t i = 0; i < 2; i++)
    if (strlen(list[i]) == n && n > 0 && strncasecmp(list[i], origin, n) == 0) return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192) return 0;
  char *buf = malloc(size + 1);
  if (buf == NULL) return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  char *f[4] = {"", "", "", ""};
  char *p = buf;
  for (int i = 0; i < 4 && p; i++) {
    f[i] = p;
    p = strchr(p, '\n');
    if (p) *p++ = '\0';
  }

  static gw_cors fixed;
  static int fixed_ok = 0;
  if (!fixed_ok) {
    if (gw_cors_init(&fixed, " http://localhost:3000/ ,", "https://app.example.com") != 0 ||
        fixed.n != 2)
      abort();
    fixed_ok = 1;
  }
  if (gw_cors_allowed(&fixed, f[0]) != oracle_allowed(f[0])) abort();
  if (gw_cors_allowed(&fixed, NULL) != 0) abort();

  gw_cors *c = malloc(sizeof *c);
  if (c == NULL) {
    free(buf);
    return 0;
  }
  if (gw_cors_init(c, f[1], f[2]) == 0) {
    if (c->n > GW_CORS_MAX_ORIGINS) abort();
    for (size_t i = 0; i < c->n; i++) {
      const char *o = c->origins[i];
      size_t n = strnlen(o, GW_CORS_ORIGIN_MAX + 1);
      if (n == 0 || n > GW_CORS_ORIGIN_MAX) abort();
      size_t skip = strncasecmp(o, "http://", 7) == 0 ? 7 : strncasecmp(o, "https://", 8) == 0 ? 8 : 0;
      if (skip == 0 || n <= skip) abort();
      for (size_t j = skip; j < n; j++)
        if (o[j] == '/' || (unsigned char)o[j] <= 0x20) abort(); /* an origin has no path */
      if (!gw_cors_allowed(c, o)) abort();
    }
    /* Anything the list allows is one of its entries (modulo case and '/'). */
    if (gw_cors_allowed(c, f[0])) {
      size_t n = strlen(f[0]);
      if (n > 0 && f[0][n - 1] == '/') n--;
      int found = 0;
      for (size_t i = 0; i < c->n && !found; i++)
        found = strlen(c->origins[i]) == n && strncasecmp(c->origins[i], f[0], n) == 0;
      if (!found) abort();
    }
  }
  free(c);

  const char *t = f[3];
  if (gw_token_valid(t) != oracle_chars(t, GW_RID_MAX, "._-")) abort();
  if (gw_handle_valid(t) != oracle_chars(t, GW_HANDLE_MAX, "_")) abort();
  char u[37] = "untouched";
  int ok = gw_uuid_normalise(t, u);
  if (ok != oracle_uuid(t)) abort();
  if (ok) {
    if (strlen(u) != 36 || strcasecmp(u, t) != 0) abort();
    for (int i = 0; i < 36; i++)
      if (isupper((unsigned char)u[i])) abort();
  } else if (strcmp(u, "untouched") != 0) {
    abort();
  }
  free(buf);
  return 0;
}
