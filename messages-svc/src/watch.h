/* watch.h - WatchEvents: live events of a user, built on Queries.
 *
 * A hub per process holds the watched users; each watched user holds the
 * open streams of that user on this replica. One poller thread re-reads,
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

typedef struct watch_hub watch_hub;

typedef struct watch_limits {
  int max_users;            /* watched users per replica */
  int max_streams;          /* open WatchEvents streams per replica */
  int max_streams_per_user; /* per watched user */
} watch_limits;

/* Creates the hub and starts its poller. `st` and `key` are references that
 * must outlive the hub. Returns 0 and sets *out, or -1 (nothing allocated). */
int watch_hub_new(store *st, const token_key *key, const watch_limits *lim, watch_hub **out);

/* Stops the poller and frees the hub. Call after the rpc server drained
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

/* Sets t (initialised) to `us` microseconds since the epoch. */
void watch_pb_time(Google__Protobuf__Timestamp *t, int64_t us);

/* Resume token position: what a token says about a stream. Exposed for the
 * unit test and the fuzz harness. */
typedef struct watch_pos {
  char cur[KEYS_MSG_SK_LEN + 1]; /* highest sk delivered (or the start time) */
  char low[28];                  /* ts27: the window's lower bound */
  uint64_t hash;                 /* sum of hash(sk) of the sks delivered above low */
  unsigned count;                /* how many */
} watch_pos;

/* Token <-> position for `user`. encode: 0 or -1. decode: 0, or -1 when the
 * token is malformed, forged, or another user's. */
int watch_token_encode(const token_key *k, const char *user, const watch_pos *p,
                       char out[TOKEN_MAX + 1]);
int watch_token_decode(const token_key *k, const char *user, const char *tok, watch_pos *p);

#endif
