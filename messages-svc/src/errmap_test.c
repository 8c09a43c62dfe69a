/* errmap_test.c - DynamoDB failures to gRPC statuses, case by case. */
#include <stdio.h>
#include <string.h>

#include "errmap.h"

int main(void) {
  int failures = 0;
  struct {
    aws_code code;
    const char *name;
    int deadline_passed;
    grpc_status_code want;
  } cases[] = {
      {AWS_E_UNREACHABLE, "", 0, GRPC_STATUS_UNAVAILABLE},
      {AWS_E_UNREACHABLE, "", 1, GRPC_STATUS_UNAVAILABLE},
      {AWS_E_TIMEOUT, "", 0, GRPC_STATUS_UNAVAILABLE},
      {AWS_E_TIMEOUT, "", 1, GRPC_STATUS_DEADLINE_EXCEEDED},
      {AWS_E_THROTTLED, "", 0, GRPC_STATUS_RESOURCE_EXHAUSTED},
      {AWS_E_NOMEM, "", 0, GRPC_STATUS_RESOURCE_EXHAUSTED},
      {AWS_E_PROTOCOL, "", 0, GRPC_STATUS_UNAVAILABLE},
      {AWS_E_CLIENT, "ResourceNotFoundException", 0, GRPC_STATUS_UNAVAILABLE},
      {AWS_E_CLIENT, "ProvisionedThroughputExceededException", 0, GRPC_STATUS_RESOURCE_EXHAUSTED},
      {AWS_E_CLIENT, "ThrottlingException", 0, GRPC_STATUS_RESOURCE_EXHAUSTED},
      {AWS_E_CLIENT, "UnrecognizedClientException", 0, GRPC_STATUS_UNAVAILABLE},
      {AWS_E_CLIENT, "AccessDeniedException", 0, GRPC_STATUS_UNAVAILABLE},
      {AWS_E_CLIENT, "ValidationException", 0, GRPC_STATUS_INTERNAL},
      {AWS_E_CLIENT, "ConditionalCheckFailedException", 0, GRPC_STATUS_INTERNAL},
      {AWS_E_CLIENT, "", 0, GRPC_STATUS_INTERNAL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    aws_error e;
    memset(&e, 0, sizeof e);
    e.code = cases[i].code;
    snprintf(e.name, sizeof e.name, "%s", cases[i].name);
    const char *why = NULL;
    grpc_status_code got = errmap_aws(&e, cases[i].deadline_passed, &why);
    if (got != cases[i].want || why == NULL || why[0] == '\0') {
      fprintf(stderr, "case %zu (%s/%s): got %d want %d\n", i, aws_strerror(cases[i].code),
              cases[i].name, (int)got, (int)cases[i].want);
      failures++;
    }
  }
  aws_error e;
  memset(&e, 0, sizeof e);
  e.code = AWS_E_CLIENT;
  snprintf(e.name, sizeof e.name, "ResourceNotFoundException");
  const char *why;
  errmap_aws(&e, 0, &why);
  if (strstr(why, "schema-load") == NULL) failures++;
  if (failures) return 1;
  printf("errmap_test: ok\n");
  return 0;
}
