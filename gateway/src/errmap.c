/* errmap.c - gRPC status -> HTTP status, in one table. */
#include "errmap.h"

#include <stdlib.h>
#include <string.h>

/* Context-dependent codes are marked by these two sentinels. */
static const char CTX_NOT_FOUND[] = "<not_found>";
static const char CTX_INVALID[] = "<invalid>";

/* Indexed by grpc_status_code (0..16). Why each line:
 * - client-caused upstream answers keep their meaning (404/422);
 * - transient upstream trouble is 503 with Retry-After (RESOURCE_EXHAUSTED too:
 *   it is DynamoDB throttling us, not the client sending too much, so 429
 *   would blame the wrong party);
 * - a passed deadline is 504;
 * - anything that means a bug or misconfiguration upstream is 502. */
static const gw_status table[17] = {
    [GRPC_STATUS_OK] = {200, NULL, 0},
    [GRPC_STATUS_CANCELLED] = {503, GW_E_UNAVAILABLE, 1},
    [GRPC_STATUS_UNKNOWN] = {502, GW_E_UPSTREAM, 0},
    [GRPC_STATUS_INVALID_ARGUMENT] = {422, CTX_INVALID, 0},
    [GRPC_STATUS_DEADLINE_EXCEEDED] = {504, GW_E_TIMEOUT, 0},
    [GRPC_STATUS_NOT_FOUND] = {404, CTX_NOT_FOUND, 0},
    [GRPC_STATUS_ALREADY_EXISTS] = {409, GW_E_CONFLICT, 0},
    [GRPC_STATUS_PERMISSION_DENIED] = {404, CTX_NOT_FOUND, 0},
    [GRPC_STATUS_RESOURCE_EXHAUSTED] = {503, GW_E_BUSY, 1},
    [GRPC_STATUS_FAILED_PRECONDITION] = {502, GW_E_UPSTREAM, 0},
    [GRPC_STATUS_ABORTED] = {503, GW_E_UNAVAILABLE, 1},
    [GRPC_STATUS_OUT_OF_RANGE] = {422, CTX_INVALID, 0},
    [GRPC_STATUS_UNIMPLEMENTED] = {502, GW_E_UPSTREAM, 0},
    [GRPC_STATUS_INTERNAL] = {502, GW_E_UPSTREAM, 0},
    [GRPC_STATUS_UNAVAILABLE] = {503, GW_E_UNAVAILABLE, 1},
    [GRPC_STATUS_DATA_LOSS] = {502, GW_E_UPSTREAM, 0},
    [GRPC_STATUS_UNAUTHENTICATED] = {502, GW_E_UPSTREAM, 0},
};

void gw_status_from_grpc(grpc_status_code c, const char *not_found_code, const char *invalid_code,
                         gw_status *out) {
  gw_status s = {502, GW_E_UPSTREAM, 0};
  if ((int)c >= 0 && (int)c < (int)(sizeof table / sizeof table[0])) s = table[c];
  if (s.code == CTX_NOT_FOUND) s.code = not_found_code ? not_found_code : GW_E_NOT_FOUND;
  if (s.code == CTX_INVALID) s.code = invalid_code ? invalid_code : "invalid_argument";
  *out = s;
}

char *gw_error_body(const char *const *codes, size_t n) {
  size_t len = 3;
  for (size_t i = 0; i < n; i++)
    len += strlen(codes[i]) + 3;
  char *b = malloc(len);
  if (b == NULL) return NULL;
  size_t o = 0;
  b[o++] = '[';
  for (size_t i = 0; i < n; i++) {
    if (i > 0) b[o++] = ',';
    b[o++] = '"';
    size_t l = strlen(codes[i]);
    memcpy(b + o, codes[i], l);
    o += l;
    b[o++] = '"';
  }
  b[o++] = ']';
  b[o] = '\0';
  return b;
}
