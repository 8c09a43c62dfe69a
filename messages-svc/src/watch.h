/* watch.h - WatchEvents and WatchMany: live events of users, built on Queries.
 *
 * A hub per process holds the watched users; each watched user holds the
 * open streams of that user on this replica. A few poller threads re-read,
 * per watched user, the group rows that moved (one consistent LSI Query,
 * shared by all the user's streams) and fetches the new messages of those
 * groups; a post on this replica wakes the poller for both participants at
 * once. No thread per stream. The design, the position kept in resume
 * tokens and the cost model are in messages-svc/README.md ("Live events").
 */
#ifndef MSGS_WATCH_H
#define MSGS_WATCH_H

#include <stdint.h>

#include "cruddur/messages/v1/messages.pb-c.h"
#include "cruddur/rpc.h"
#include "store.h"
#include "token.h"
#include "watch_token.h"

typedef struct watch_hub watch_hub;

typedef struct watch_limits {
  int max_users;            /* watched users per replica */
  int max_streams;          /* open watches per replica (WatchEvents streams and
                               WatchMany watches alike) */
  int max_streams_per_user; /* per watched user */
  int pollers;              /* poller threads (1..WATCH_POLLERS_MAX) */
} watch_limits;

#define WATCH_POLLERS_MAX 32

/* Creates the hub and starts its pollers. `st` and `key` are references that
 * must outlive the hub. Returns 0 and sets *out, or -1 (nothing allocated). */
int watch_hub_new(store *st, const token_key *key, const watch_limits *lim, watch_hub **out);

/* Stops the pollers and frees the hub. Call after the rpc server drained
 * (every stream ended and released). NULL is a no-op. */
void watch_hub_free(watch_hub *h);

/* A post on this replica changed user's group rows: poll them now. */
void watch_notify(watch_hub *h, const char *user_uuid);

/* The WatchEvents handler body (worker thread): validates, resumes or
 * starts from now, sends `ready` (and `resync` when due), and hands the
 * stream to the hub. */
grpc_status_code watch_start(watch_hub *h, rpc_call *call,
                             const Cruddur__Messages__V1__WatchEventsRequest *req,
                             rpc_sstream *s);

/* The WatchMany handler body (worker thread; the call's messages are not
 * read yet): sets the call up to carry the client's watches, each a watch
 * as in watch_start (watch_many.c). Returns GRPC_STATUS_OK, or an error
 * after rpc_call_fail. */
grpc_status_code watch_many_start(watch_hub *h, rpc_call *call, rpc_sstream *s);

/* Sets t (initialised) to `us` microseconds since the epoch. */
void watch_pb_time(Google__Protobuf__Timestamp *t, int64_t us);

#endif
