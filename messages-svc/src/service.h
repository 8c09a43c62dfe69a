/* service.h - MessagesService handlers and the server's shared state. */
#ifndef MSGS_SERVICE_H
#define MSGS_SERVICE_H

#include <pthread.h>
#include <stdint.h>

#include "cruddur/rpc.h"
#include "mcache.h"
#include "store.h"
#include "token.h"
#include "watch.h"

#define SVC_CALL_CAP_MS 10000 /* longest we spend on one RPC without a deadline */

typedef struct msgs_svc {
  store st;      /* ddb and table are references owned by main */
  mcache *cache; /* owned */
  token_key key;
  long req_window_s; /* idempotency window (IDEMPOTENCY_WINDOW_S) */
  watch_hub *watch; /* owned by main (watch_hub_free after the server drained) */
  pthread_mutex_t health_mu;
  int64_t health_checked_us; /* monotonic */
  int health_ok;
} msgs_svc;

/* Sets up the state; the key must be initialised by the caller. Returns 0,
 * or -1 on out-of-memory (nothing to free but the caller's key). */
int msgs_svc_init(msgs_svc *svc, aws_client *ddb, const char *table, size_t cache_entries);
/* Frees the state, the key included. */
void msgs_svc_destroy(msgs_svc *svc);

/* The rpc_service for cruddur.messages.v1.MessagesService (static storage). */
const rpc_service *msgs_service(void);

/* Health callback: 1 when DescribeTable answers for the table (cached ~1 s). */
int msgs_health(void *user);

#endif
