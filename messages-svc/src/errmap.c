/* errmap.c - DynamoDB error -> gRPC status. */
#include "errmap.h"

#include <string.h>

grpc_status_code errmap_aws(const aws_error *err, int deadline_passed, const char **why) {
  switch (err->code) {
  case AWS_OK:
    *why = "ok";
    return GRPC_STATUS_OK;
  case AWS_E_UNREACHABLE:
    *why = "DynamoDB is unreachable";
    return GRPC_STATUS_UNAVAILABLE;
  case AWS_E_TIMEOUT:
    if (deadline_passed) {
      *why = "deadline exceeded while waiting for DynamoDB";
      return GRPC_STATUS_DEADLINE_EXCEEDED;
    }
    *why = "DynamoDB did not answer in time";
    return GRPC_STATUS_UNAVAILABLE;
  case AWS_E_THROTTLED:
    *why = "DynamoDB is throttling; retry later";
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  case AWS_E_NOMEM:
    *why = "out of memory";
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  case AWS_E_PROTOCOL:
    *why = "DynamoDB sent an answer we could not read";
    return GRPC_STATUS_UNAVAILABLE;
  case AWS_E_CLIENT:
    break;
  }
  const char *n = err->name;
  if (strcmp(n, "ResourceNotFoundException") == 0) {
    *why = "the messages table does not exist (run messages-svc schema-load)";
    return GRPC_STATUS_UNAVAILABLE;
  }
  if (strcmp(n, "ProvisionedThroughputExceededException") == 0 ||
      strcmp(n, "ThrottlingException") == 0 || strcmp(n, "RequestLimitExceeded") == 0) {
    *why = "DynamoDB is throttling; retry later";
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  if (strcmp(n, "UnrecognizedClientException") == 0 || strcmp(n, "AccessDeniedException") == 0 ||
      strcmp(n, "InvalidSignatureException") == 0 || strcmp(n, "ExpiredTokenException") == 0 ||
      strcmp(n, "MissingAuthenticationTokenException") == 0) {
    *why = "DynamoDB refused our credentials";
    return GRPC_STATUS_UNAVAILABLE;
  }
  *why = "DynamoDB rejected the request";
  return GRPC_STATUS_INTERNAL;
}
