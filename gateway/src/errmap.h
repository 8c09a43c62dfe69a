/* errmap.h - the gateway's one gRPC-status-to-HTTP mapping and error bodies.
 *
 * Every error body except 401's is a JSON array of code strings (the shape of
 * the original's 422 answers); 401 is `{}` with WWW-Authenticate: Bearer.
 */
#ifndef GW_ERRMAP_H
#define GW_ERRMAP_H

#include <stddef.h>
#include <grpc/status.h>

/* Codes that are not tied to one call. */
#define GW_E_NOT_FOUND "not_found"
#define GW_E_METHOD "method_not_allowed"
#define GW_E_INVALID_JSON "invalid_json"
#define GW_E_NOT_OBJECT "body_not_object"
#define GW_E_FIELD_TYPE "field_type_invalid"
#define GW_E_TOO_LARGE "payload_too_large"
#define GW_E_MEDIA_TYPE "unsupported_media_type"
#define GW_E_NOT_PROVISIONED "user_not_provisioned"
#define GW_E_AUTH_UNAVAILABLE "auth_unavailable"
#define GW_E_UNAVAILABLE "upstream_unavailable"
#define GW_E_BUSY "upstream_busy"
#define GW_E_TIMEOUT "upstream_timeout"
#define GW_E_UPSTREAM "upstream_error"
#define GW_E_CONFLICT "conflict"
#define GW_E_INTERNAL "internal_error"

/* An HTTP answer for an upstream status. `code` is static. */
typedef struct gw_status {
  int http;         /* 200, 404, 422, 503, ... */
  const char *code; /* error code for the body; NULL for 200 */
  int retry_after;  /* seconds for a Retry-After header; 0 = none */
} gw_status;

/* Maps an upstream gRPC status to the HTTP answer. NOT_FOUND and
 * PERMISSION_DENIED both answer 404 with `not_found_code` (so a group you are
 * not in looks like one that does not exist); INVALID_ARGUMENT and
 * OUT_OF_RANGE answer 422 with `invalid_code`. NULL codes fall back to
 * "not_found" / "invalid_argument". Never fails; never 500. */
void gw_status_from_grpc(grpc_status_code c, const char *not_found_code, const char *invalid_code,
                         gw_status *out);

/* Builds `["a","b",...]` from n static code strings (plain identifiers, no
 * escaping needed). Returns a malloc'd string the caller frees, or NULL on
 * out-of-memory. */
char *gw_error_body(const char *const *codes, size_t n);

#endif
