/* cors.h - which browser origins may read the gateway's answers.
 *
 * The same rule on every route (the original's @cross_origin() on POST let
 * any origin through): an Origin is allowed only when it equals, ignoring
 * case and a trailing '/', one entry of FRONTEND_URL or BACKEND_URL
 * (comma-separated lists). Others get no Access-Control-Allow-Origin.
 */
#ifndef GW_CORS_H
#define GW_CORS_H

#include <stddef.h>

#define GW_CORS_MAX_ORIGINS 16
#define GW_CORS_ORIGIN_MAX 255

#define GW_CORS_ALLOW_METHODS "GET, POST, OPTIONS"
#define GW_CORS_ALLOW_HEADERS "Authorization, Content-Type, Idempotency-Key, X-Request-Id"
#define GW_CORS_EXPOSE_HEADERS "Link, X-Request-Id, Retry-After"
#define GW_CORS_MAX_AGE "600"

typedef struct gw_cors {
  size_t n;
  char origins[GW_CORS_MAX_ORIGINS][GW_CORS_ORIGIN_MAX + 1];
} gw_cors;

/* Fills *out from the two comma-separated lists (either may be NULL or "").
 * Blank entries are skipped, spaces trimmed, a trailing '/' dropped. Returns
 * 0, or -1 when an entry is longer than 255 bytes, is not an http(s) origin
 * (scheme://host[:port], no path), or there are more than 16 (*out then
 * undefined). */
int gw_cors_init(gw_cors *out, const char *frontend, const char *backend);

/* 1 when `origin` (the request's Origin header; may be NULL) is allowed. */
int gw_cors_allowed(const gw_cors *c, const char *origin);

#endif
