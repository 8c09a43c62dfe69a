/* watch_internal.h - what watch.c (the hub, polls, positions) shares with
 * watch_many.c (WatchMany's calls). Not for other modules.
 *
 * A watch is a wstream whatever carries it: a WatchEvents call (ws->m NULL,
 * ws->s its own stream) or one id on a WatchMany call (ws->m the call; its
 * events go out wrapped in WatchManyEvent). hub->mu guards every field
 * below, the users, the streams and the WatchMany calls' tables.
 */
#ifndef MSGS_WATCH_INTERNAL_H
#define MSGS_WATCH_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "watch.h"

typedef char watch_sk[KEYS_MSG_SK_LEN + 1];

struct wmany;

/* A group row a poll read, with its last_sk then. */
typedef struct wrow {
  char group[37];
  watch_sk last_sk;
} wrow;

typedef struct wstream {
  struct watch_hub *h; /* reference */
  /* Where events go; NULL until the watch is attached to its user. For
   * WatchEvents a reference released in ws_done; for WatchMany the call's
   * stream (the wmany holds the reference, and frees its watches first). */
  rpc_sstream *s;
  struct wmany *m;         /* WatchMany: the call carrying it; NULL for WatchEvents */
  struct wuser *u;         /* NULL until attached */
  struct wstream *next;    /* u->streams */
  struct wstream *id_next; /* WatchMany: m's table bucket */
  uint64_t id;             /* WatchMany: the client's id */
  uint64_t last_seq;       /* WatchMany: m->sent just after its last message */
  uint32_t burst;          /* WatchMany: its messages since it last had none queued */
  int dead;                /* ended; waiting to be unlinked and freed */
  char start[28];
  watch_sk cur;
  watch_sk *seen; /* owned: delivered sks above low, unordered */
  uint32_t n_seen, cap_seen;
  int overflow;    /* seen dropped an entry: tokens cannot be verified */
  int64_t held_us; /* monotonic: since when its queue had no room (0: it had) */
  /* The rows its resume read (owned): its user's poller learns them at
   * attach (rows_missing), then they are freed. */
  wrow *rows;
  uint32_t n_rows, cap_rows;
} wstream;

typedef struct wuser {
  char uuid[37];
  wstream *streams;
  int n_streams;
  int64_t due_us;   /* monotonic: next poll */
  int64_t moved_us; /* monotonic: last time something was delivered */
  int polling;      /* the poller works on it without the lock */
  /* The rows the last poll read (owned; at most WATCH_ROWS_LIMIT). Only the
   * thread polling this user (polling set) touches them, without the lock. */
  wrow *rows;
  uint32_t n_rows, cap_rows;
  struct wuser *next, *prev; /* hub->users */
  struct wuser *hnext;       /* hub->ub: its bucket's chain */
} wuser;

struct watch_hub {
  store *st;
  const token_key *key;
  watch_limits lim;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  wuser *users;  /* every watched user, for the pollers' rounds */
  wuser **ub;    /* owned: users by uuid hash, ub_mask + 1 chains, so a post
                    finds its users in O(1) however many are watched */
  size_t ub_mask;
  int n_users, n_streams; /* n_streams counts watches of both kinds */
  pthread_t th[WATCH_POLLERS_MAX];
  int n_th;
  int stop;
};

/* ---- watch.c ---- */

/* Validates req (uuid, resume token) and the caps as they stand. Returns
 * GRPC_STATUS_OK with *p and *resuming set, or the code WatchEvents would
 * fail with and *why (static text). Takes hub->mu briefly. */
grpc_status_code watch__check(watch_hub *h, const Cruddur__Messages__V1__WatchEventsRequest *req,
                              watch_pos *p, int *resuming, const char **why);

/* A new unattached watch (zeroed), or NULL. Free with watch__free. */
wstream *watch__new(watch_hub *h);
void watch__free(wstream *ws);

/* Positions ws: after the token p (resuming: blocks on DynamoDB for up to
 * budget_ms; *resync set when it cannot, the watch then starts from now),
 * or from now (p NULL: no I/O). Returns GRPC_STATUS_OK, or a code and *why. */
grpc_status_code watch__place(watch_hub *h, const char *user, const watch_pos *p,
                              int64_t budget_ms, wstream *ws, const char **resync,
                              const char **why);

/* Links a placed ws (ws->s set) to its user within the caps, sends `ready`
 * (and `resync`) and schedules its first poll. hub->mu held. Returns
 * GRPC_STATUS_OK, or RESOURCE_EXHAUSTED and *why (ws untouched, the
 * caller's). A WatchMany watch that died on its first event is freed here. */
grpc_status_code watch__attach_locked(watch_hub *h, const char *user, wstream *ws, int resuming,
                                      const char *resync, const char **why);

/* Unhooks an attached ws from its user (freeing the user when it was the
 * last and no poll holds it). hub->mu held; ws is the caller's after. */
void watch__unlink_locked(watch_hub *h, wstream *ws);

/* ---- watch_many.c (hub->mu held for all) ---- */

/* rpc_sstream_send/_room for a watch on a WatchMany call: its events
 * wrapped with its id, within its share of the call's queue. */
int watch__many_send(wstream *ws, const Cruddur__Messages__V1__WatchEvent *ev);
size_t watch__many_room(wstream *ws);

/* The server ends ws: sends its `end` and takes it out of its call's table
 * (the caller marks it dead; watch.c unlinks and frees it). */
void watch__many_end(wstream *ws, grpc_status_code code, const char *msg);

/* Takes a dead ws out of its call's table, if still there. */
void watch__many_forget(wstream *ws);

#endif
