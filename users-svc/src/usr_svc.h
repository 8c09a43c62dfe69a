/* usr_svc.h - the cruddur.users.v1.UsersService handlers and health. */
#ifndef USERS_USR_SVC_H
#define USERS_USR_SVC_H

#include <pthread.h>
#include <stdint.h>

#include "cruddur/aws.h"
#include "cruddur/rpc.h"
#include "usr_pg.h"

/* Shared by every handler (rpc_server_config.user). */
typedef struct usr_ctx {
  upg_pool *pool;      /* reference */
  aws_client *cognito; /* reference; NULL when Cognito is not configured */
  const char *pool_id; /* AWS_COGNITO_USER_POOL_ID or NULL */
  pthread_mutex_t health_mu;
  int64_t health_at_us; /* when health_ok was measured (ts_mono_us), 0 never */
  int health_ok;
} usr_ctx;

/* Fills *svc with the descriptor and a handler table in descriptor order.
 * Returns 0, or -1 when the descriptor has a method we do not implement. */
int usr_svc_service(rpc_service *svc);

/* rpc_health_fn: 1 when PostgreSQL answered SELECT 1 within 500 ms; the
 * answer is cached for one second so probes never queue behind queries. */
int usr_svc_health(void *ctx);

#endif
