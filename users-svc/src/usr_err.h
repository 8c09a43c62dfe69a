/* usr_err.h - the domain errors of users-svc and their one mapping to gRPC.
 *
 * Every layer (validation, PostgreSQL, Cognito) reports a usr_err; only
 * usr_err_status() turns it into a gRPC status, so the rule "a client's
 * mistake is never INTERNAL" is checked in one place.
 */
#ifndef USERS_USR_ERR_H
#define USERS_USR_ERR_H

#include <grpc/status.h>

typedef enum {
  USR_OK = 0,
  USR_E_INVALID,     /* malformed request field: the caller's mistake */
  USR_E_NOT_FOUND,   /* no user (or no user pool) with that key */
  USR_E_EXISTS,      /* the handle belongs to another user */
  USR_E_UNAVAILABLE, /* PostgreSQL or Cognito unreachable, pool exhausted; retry */
  USR_E_DEADLINE,    /* the caller's deadline ran out */
  USR_E_ABORTED,     /* a concurrent change got in the way; retry */
  USR_E_NO_POOL,     /* no Cognito user pool configured */
  USR_E_SCHEMA,      /* the database is not migrated */
  USR_E_UPSTREAM,    /* Cognito refused us (credentials, permissions) */
  USR_E_INTERNAL     /* a bug or an answer we cannot use */
} usr_err;

/* The gRPC status for a domain error (USR_OK gives GRPC_STATUS_OK). */
grpc_status_code usr_err_status(usr_err e);

/* A short name for logs and CLI output ("unavailable"); static, never NULL. */
const char *usr_strerror(usr_err e);

#endif
