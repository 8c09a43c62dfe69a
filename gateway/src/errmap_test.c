/* errmap_test.c - the gRPC -> HTTP mapping table, case by case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmap.h"

#include "cruddur/check.h"

typedef struct ecase {
  grpc_status_code in;
  int http;
  const char *code;
  int retry_after;
} ecase;

static const ecase cases[] = {
    {GRPC_STATUS_OK, 200, NULL, 0},
    {GRPC_STATUS_CANCELLED, 503, "upstream_unavailable", 1},
    {GRPC_STATUS_UNKNOWN, 502, "upstream_error", 0},
    {GRPC_STATUS_INVALID_ARGUMENT, 422, "ctx_invalid", 0},
    {GRPC_STATUS_DEADLINE_EXCEEDED, 504, "upstream_timeout", 0},
    {GRPC_STATUS_NOT_FOUND, 404, "ctx_not_found", 0},
    {GRPC_STATUS_ALREADY_EXISTS, 409, "conflict", 0},
    {GRPC_STATUS_PERMISSION_DENIED, 404, "ctx_not_found", 0},
    {GRPC_STATUS_RESOURCE_EXHAUSTED, 503, "upstream_busy", 1},
    {GRPC_STATUS_FAILED_PRECONDITION, 502, "upstream_error", 0},
    {GRPC_STATUS_ABORTED, 503, "upstream_unavailable", 1},
    {GRPC_STATUS_OUT_OF_RANGE, 422, "ctx_invalid", 0},
    {GRPC_STATUS_UNIMPLEMENTED, 502, "upstream_error", 0},
    {GRPC_STATUS_INTERNAL, 502, "upstream_error", 0},
    {GRPC_STATUS_UNAVAILABLE, 503, "upstream_unavailable", 1},
    {GRPC_STATUS_DATA_LOSS, 502, "upstream_error", 0},
    {GRPC_STATUS_UNAUTHENTICATED, 502, "upstream_error", 0},
    {(grpc_status_code)99, 502, "upstream_error", 0},
    {(grpc_status_code)-1, 502, "upstream_error", 0},
};

int main(void) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    gw_status s;
    gw_status_from_grpc(cases[i].in, "ctx_not_found", "ctx_invalid", &s);
    CHECK(s.http == cases[i].http, "grpc %d: http %d want %d", cases[i].in, s.http, cases[i].http);
    CHECK((s.code == NULL && cases[i].code == NULL) ||
              (s.code && cases[i].code && strcmp(s.code, cases[i].code) == 0),
          "grpc %d: code %s", cases[i].in, s.code ? s.code : "(null)");
    CHECK(s.retry_after == cases[i].retry_after, "grpc %d: retry-after %d", cases[i].in,
          s.retry_after);
    CHECK(s.http != 500, "never 500");
  }
  gw_status s;
  gw_status_from_grpc(GRPC_STATUS_NOT_FOUND, NULL, NULL, &s);
  CHECK(strcmp(s.code, "not_found") == 0, "default not_found");
  gw_status_from_grpc(GRPC_STATUS_INVALID_ARGUMENT, NULL, NULL, &s);
  CHECK(strcmp(s.code, "invalid_argument") == 0, "default invalid");
  const char *codes[] = {"message_blank", "user_reciever_handle_blank"};
  char *b = gw_error_body(codes, 2);
  CHECK(b && strcmp(b, "[\"message_blank\",\"user_reciever_handle_blank\"]") == 0, "body %s", b);
  free(b);
  b = gw_error_body(codes, 0);
  CHECK(b && strcmp(b, "[]") == 0, "empty body");
  free(b);
  if (failures)
    fprintf(stderr, "%d failure(s)\n", failures);
  else
    printf("errmap_test: all passed\n");
  return failures ? 1 : 0;
}
