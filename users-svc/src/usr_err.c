/* usr_err.c - domain error -> gRPC status, in one table. */
#include "usr_err.h"

grpc_status_code usr_err_status(usr_err e) {
  switch (e) {
  case USR_OK:
    return GRPC_STATUS_OK;
  case USR_E_INVALID:
    return GRPC_STATUS_INVALID_ARGUMENT;
  case USR_E_NOT_FOUND:
    return GRPC_STATUS_NOT_FOUND;
  case USR_E_EXISTS:
    return GRPC_STATUS_ALREADY_EXISTS;
  case USR_E_UNAVAILABLE:
    return GRPC_STATUS_UNAVAILABLE;
  case USR_E_DEADLINE:
    return GRPC_STATUS_DEADLINE_EXCEEDED;
  case USR_E_ABORTED:
    return GRPC_STATUS_ABORTED;
  /* Both are the operator's to fix, not worth a retry: FAILED_PRECONDITION. */
  case USR_E_NO_POOL:
    return GRPC_STATUS_FAILED_PRECONDITION;
  case USR_E_SCHEMA:
    return GRPC_STATUS_FAILED_PRECONDITION;
  case USR_E_UPSTREAM:
    return GRPC_STATUS_FAILED_PRECONDITION;
  case USR_E_INTERNAL:
    return GRPC_STATUS_INTERNAL;
  }
  return GRPC_STATUS_INTERNAL;
}

const char *usr_strerror(usr_err e) {
  switch (e) {
  case USR_OK:
    return "ok";
  case USR_E_INVALID:
    return "invalid argument";
  case USR_E_NOT_FOUND:
    return "not found";
  case USR_E_EXISTS:
    return "already exists";
  case USR_E_UNAVAILABLE:
    return "unavailable";
  case USR_E_DEADLINE:
    return "deadline exceeded";
  case USR_E_ABORTED:
    return "aborted by a concurrent change";
  case USR_E_NO_POOL:
    return "no Cognito user pool configured";
  case USR_E_SCHEMA:
    return "database not migrated (run users-svc migrate)";
  case USR_E_UPSTREAM:
    return "Cognito refused the request";
  case USR_E_INTERNAL:
    return "internal error";
  }
  return "unknown error";
}
