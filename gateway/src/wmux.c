/* wmux.c - many watches on one WatchMany call (see wmux.h).
 *
 * Threads. Watches are started by the HTTP connection threads (the SSE
 * handshakes), cancelled and released by the SSE loop or a connection
 * thread, and fed by the channel's one stream thread (the call's on_msg and
 * on_end). Everything shared is under m->mu; no callback of the user runs
 * under it, so on_msg/on_end may take the user's own locks and the user may
 * call in here under them (sse.c releases under its hub's mutex).
 *
 * A watch's life, and who may touch it when:
 *
 *   OPEN    in m->table under its id, on call `call`. Events are routed to
 *           it by the stream thread, which marks it `busy` while its on_msg
 *           runs (mu not held), so a cancel arriving then only sets
 *           `cancel_req` and leaves the ending to the stream thread.
 *   ENDING  out of the table: exactly one thread claimed it (under mu) and
 *           now sends `close` if the client ended it and runs on_end with
 *           mu not held: the stream thread (the server's `end`, the call's
 *           end, on_msg's -1, a cancel during on_msg) or the canceller.
 *           Nothing else touches it, so on_end is once and after the last
 *           on_msg.
 *   DONE    on_end returned. Freed when the caller has released it too
 *           (`refs`: the caller's and the watch's life until DONE).
 *
 * A call (wmux_call) is freed, its rpc_stream released, when its on_end ran,
 * no watch that may still send on it is left (each OPEN or ENDING watch
 * holds a reference) and its opener is done with it. m->cur points at the
 * call that new watches join until that call ends.
 */
#define _GNU_SOURCE
#include "wmux.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cruddur/log.h"
#include "cruddur/ts.h"
#include "cruddur/messages/v1/messages.pb-c.h"

typedef enum { W_OPEN = 0, W_ENDING, W_DONE } wmux_state;

typedef struct wmux_call {
  wmux *m;           /* reference */
  rpc_stream *rpc;   /* owned reference; set by the opener before any watch joins */
  int refs;          /* (mu) its life until on_end, its opener, its watches */
  int ended;         /* (mu) its on_end ran */
  int64_t opened_us; /* for the backoff: did it end young? */
} wmux_call;

struct wmux_watch {
  wmux *m;                  /* reference */
  wmux_call *call;          /* one reference of it until DONE */
  uint64_t id;              /* the call's name for it: nonzero, never reused */
  struct wmux_watch *hnext; /* (mu) m->table's chain while OPEN; a list while ENDING */
  rpc_stream_msg_fn on_msg;
  rpc_stream_end_fn on_end;
  void *user;
  int refs;                 /* (mu) the caller's, and its life until DONE */
  unsigned char state;      /* (mu) wmux_state */
  unsigned char busy;       /* (mu) its on_msg runs now (stream thread) */
  unsigned char cancel_req; /* (mu) cancelled while busy */
};

struct wmux {
  rpc_channel *ch; /* reference */
  long max;        /* watches allocated at most */
  pthread_mutex_t mu;
  pthread_mutex_t open_mu; /* one opener at a time: held across rpc_stream_open */
  pthread_cond_t cv;       /* wmux_free waits here for calls == 0 */
  wmux_call *cur;          /* (mu) the call new watches join; NULL: open one */
  long calls;              /* (mu) wmux_call objects allocated */
  long watches;            /* (mu) watches allocated (not yet freed) */
  long live;               /* (mu) watches not yet DONE */
  uint64_t next_id;        /* (mu) */
  uint64_t opened;         /* (mu) calls opened since wmux_new */
  int64_t retry_at_us;     /* (mu) no new call before this (backoff) */
  int64_t backoff_ms;      /* (mu) the last backoff; 0 after a call that lived */
  int stopping;            /* (mu) */
  size_t mask;             /* table size - 1 (a power of two) */
  wmux_watch **table;      /* (mu) OPEN watches by id */
};

static const ProtobufCServiceDescriptor *const wmux_svc =
    &cruddur__messages__v1__messages_service__descriptor;

static void wmux_status(rpc_status *st, grpc_status_code code, const char *msg) {
  if (st == NULL) return;
  st->code = code;
  snprintf(st->message, sizeof st->message, "%s", msg);
}

/* ---- the id table (under mu) --------------------------------------------- */

static wmux_watch **wmux_slot(wmux *m, uint64_t id) {
  wmux_watch **pp = &m->table[id & m->mask]; /* ids are sequential: no hashing needed */
  while (*pp != NULL && (*pp)->id != id)
    pp = &(*pp)->hnext;
  return pp;
}

static void wmux_unlink_locked(wmux *m, wmux_watch *w) {
  wmux_watch **pp = wmux_slot(m, w->id);
  if (*pp == w) *pp = w->hnext;
  w->hnext = NULL;
}

/* ---- references ------------------------------------------------------------- */

/* Drops one reference of c (under mu); returns c when it must be freed
 * (by wmux_call_free, outside mu). */
static wmux_call *wmux_call_unref_locked(wmux_call *c) {
  return --c->refs == 0 ? c : NULL;
}

/* Outside mu: releases the call's stream, then counts it gone (wmux_free
 * may free m as soon as calls reaches 0, so m is not touched after). */
static void wmux_call_free(wmux_call *c) {
  if (c == NULL) return;
  wmux *m = c->m;
  rpc_stream_release(c->rpc); /* NULL-safe: an open that failed */
  free(c);
  pthread_mutex_lock(&m->mu);
  m->calls--;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
}

/* Drops one reference of w (under mu); returns w when it must be freed. */
static wmux_watch *wmux_watch_unref_locked(wmux_watch *w) {
  if (--w->refs > 0) return NULL;
  w->m->watches--;
  return w;
}

/* ---- ending a watch (the thread that moved it to ENDING, mu not held) ---- */

/* Sends `close` for w on its call. A close that cannot be queued (the call
 * is ending, or RPC_STREAM_SEND_MAX messages wait: the server stopped
 * reading) would leave the server's watch running: the call is cancelled,
 * which ends every watch on both sides (their owners resume them). */
static void wmux_send_close(wmux_watch *w) {
  Cruddur__Messages__V1__WatchClose cl = CRUDDUR__MESSAGES__V1__WATCH_CLOSE__INIT;
  Cruddur__Messages__V1__WatchControl ctl = CRUDDUR__MESSAGES__V1__WATCH_CONTROL__INIT;
  ctl.id = w->id;
  ctl.op_case = CRUDDUR__MESSAGES__V1__WATCH_CONTROL__OP_CLOSE;
  ctl.close = &cl;
  if (rpc_stream_send(w->call->rpc, &ctl.base) != 0) rpc_stream_cancel(w->call->rpc);
}

/* Runs on_end, then marks w DONE and drops the references its life held. */
static void wmux_finish(wmux_watch *w, const rpc_status *st) {
  w->on_end(w->user, st);
  wmux *m = w->m;
  pthread_mutex_lock(&m->mu);
  w->state = W_DONE;
  m->live--;
  wmux_call *c = wmux_call_unref_locked(w->call);
  wmux_watch *dead = wmux_watch_unref_locked(w);
  pthread_mutex_unlock(&m->mu);
  free(dead);
  wmux_call_free(c);
}

/* Claims OPEN w for the client's end (called under mu, returns with it
 * released): `close` to the server, then on_end CANCELLED. */
static void wmux_cancel_unlock(wmux *m, wmux_watch *w) {
  wmux_unlink_locked(m, w);
  w->state = W_ENDING;
  pthread_mutex_unlock(&m->mu);
  wmux_send_close(w);
  rpc_status st;
  wmux_status(&st, GRPC_STATUS_CANCELLED, "watch cancelled");
  wmux_finish(w, &st);
}

/* ---- the call's callbacks (the channel's stream thread) ------------------- */

static int wmux_on_msg(void *arg, const ProtobufCMessage *msg) {
  wmux_call *c = arg;
  wmux *m = c->m;
  const Cruddur__Messages__V1__WatchManyEvent *e = (const void *)msg;
  pthread_mutex_lock(&m->mu);
  wmux_watch *w = e->id != 0 ? *wmux_slot(m, e->id) : NULL;
  /* An id we no longer know: events in flight for a watch we closed. */
  if (w == NULL || w->call != c || w->state != W_OPEN) {
    pthread_mutex_unlock(&m->mu);
    return 0;
  }
  if (e->body_case == CRUDDUR__MESSAGES__V1__WATCH_MANY_EVENT__BODY_END) {
    wmux_unlink_locked(m, w);
    w->state = W_ENDING;
    pthread_mutex_unlock(&m->mu);
    /* As a WatchEvents call's status; OK would mean "over" without a
     * reason, which to the owner is its upstream going away. */
    int code = e->end != NULL ? e->end->code : GRPC_STATUS_UNKNOWN;
    rpc_status st;
    if (code == GRPC_STATUS_OK)
      wmux_status(&st, GRPC_STATUS_UNAVAILABLE, "watch ended");
    else
      wmux_status(&st, (grpc_status_code)code,
                  e->end != NULL && e->end->message != NULL ? e->end->message : "");
    wmux_finish(w, &st);
    return 0;
  }
  if (e->body_case != CRUDDUR__MESSAGES__V1__WATCH_MANY_EVENT__BODY_EVENT || e->event == NULL) {
    pthread_mutex_unlock(&m->mu); /* a body this gateway does not know (a newer server) */
    return 0;
  }
  w->busy = 1;
  pthread_mutex_unlock(&m->mu);
  int keep = w->on_msg(w->user, &e->event->base) == 0;
  pthread_mutex_lock(&m->mu);
  w->busy = 0;
  if (keep && !w->cancel_req) {
    pthread_mutex_unlock(&m->mu);
    return 0;
  }
  wmux_cancel_unlock(m, w);
  return 0;
}

/* The backoff after a call ended or could not start (under mu): a call
 * that lived a while leaves none, so a replica's drain is followed by new
 * watches at once. */
static void wmux_backoff_locked(wmux *m, int64_t opened_us) {
  int64_t now = ts_mono_us();
  if (now - opened_us >= (int64_t)WMUX_YOUNG_MS * 1000) {
    m->backoff_ms = 0;
    m->retry_at_us = 0;
    return;
  }
  m->backoff_ms = m->backoff_ms == 0 ? WMUX_BACKOFF_MIN_MS : m->backoff_ms * 2;
  if (m->backoff_ms > WMUX_BACKOFF_MAX_MS) m->backoff_ms = WMUX_BACKOFF_MAX_MS;
  m->retry_at_us = now + m->backoff_ms * 1000;
}

/* The call ended: every watch still on it ends with it. */
static void wmux_on_end(void *arg, const rpc_status *st) {
  wmux_call *c = arg;
  wmux *m = c->m;
  wmux_watch *ending = NULL;
  pthread_mutex_lock(&m->mu);
  c->ended = 1;
  if (m->cur == c) m->cur = NULL;
  wmux_backoff_locked(m, c->opened_us);
  for (size_t b = 0; b <= m->mask; b++) {
    for (wmux_watch **pp = &m->table[b]; *pp != NULL;) {
      wmux_watch *w = *pp;
      if (w->call != c) {
        pp = &w->hnext;
        continue;
      }
      *pp = w->hnext; /* busy is never set here: only this thread sets it */
      w->state = W_ENDING;
      w->hnext = ending;
      ending = w;
    }
  }
  pthread_mutex_unlock(&m->mu);
  /* OK: the half-closed call at wmux_free; UNAVAILABLE: a replica draining
   * or the connection lost; CANCELLED: ours. Anything else is news. */
  if (st->code != GRPC_STATUS_OK && st->code != GRPC_STATUS_UNAVAILABLE &&
      st->code != GRPC_STATUS_CANCELLED)
    log_warn("events: the WatchMany call ended: code %d (%s)", (int)st->code, st->message);
  /* To a watch, the call's end is its upstream going away, even when the
   * server ended the call OK: its owner resumes it. */
  rpc_status wst = *st;
  if (wst.code == GRPC_STATUS_OK)
    wmux_status(&wst, GRPC_STATUS_UNAVAILABLE, "WatchMany call ended");
  while (ending != NULL) {
    wmux_watch *w = ending;
    ending = w->hnext;
    w->hnext = NULL;
    wmux_finish(w, &wst);
  }
  pthread_mutex_lock(&m->mu);
  wmux_call *dead = wmux_call_unref_locked(c); /* its life */
  pthread_mutex_unlock(&m->mu);
  wmux_call_free(dead);
}

/* ---- starting ---------------------------------------------------------------- */

int wmux_new(rpc_channel *ch, long max_watches, wmux **out) {
  wmux *m = calloc(1, sizeof *m);
  if (m == NULL) return -1;
  size_t n = 64; /* about four watches a chain at the cap, at most 512 KiB */
  while (n < 65536 && (long)n * 4 < max_watches)
    n *= 2;
  m->table = calloc(n, sizeof *m->table);
  if (m->table == NULL) {
    free(m);
    return -1;
  }
  m->mask = n - 1;
  m->ch = ch;
  m->max = max_watches;
  pthread_mutex_init(&m->mu, NULL);
  pthread_mutex_init(&m->open_mu, NULL);
  pthread_cond_init(&m->cv, NULL);
  *out = m;
  return 0;
}

/* The call new watches join: m->cur, or a new one (under open_mu, not mu).
 * Returns it with one reference for the caller, or NULL with *st filled. */
static wmux_call *wmux_call_get(wmux *m, rpc_status *st) {
  pthread_mutex_lock(&m->mu);
  wmux_call *c = m->cur;
  if (c != NULL) {
    c->refs++;
    pthread_mutex_unlock(&m->mu);
    return c;
  }
  if (ts_mono_us() < m->retry_at_us) {
    pthread_mutex_unlock(&m->mu);
    wmux_status(st, GRPC_STATUS_UNAVAILABLE, "event upstream reconnecting");
    return NULL;
  }
  c = calloc(1, sizeof *c);
  if (c == NULL) {
    pthread_mutex_unlock(&m->mu);
    wmux_status(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  c->m = m;
  c->refs = 2; /* its life until on_end, and ours */
  c->opened_us = ts_mono_us();
  m->calls++;
  pthread_mutex_unlock(&m->mu);
  /* Outside mu: the stream thread may end the call (wmux_on_end, which
   * takes mu) before this returns; c->rpc is then set below, after. */
  rpc_stream *rpc =
      rpc_stream_open(m->ch, wmux_svc, "WatchMany", 0, NULL, wmux_on_msg, wmux_on_end, c, st);
  pthread_mutex_lock(&m->mu);
  if (rpc == NULL) { /* no callback will run: both references are ours */
    wmux_backoff_locked(m, c->opened_us);
    m->calls--;
    pthread_mutex_unlock(&m->mu);
    free(c);
    log_warn("events: cannot open the WatchMany call: code %d (%s)", st != NULL ? (int)st->code : 0,
             st != NULL ? st->message : "");
    return NULL;
  }
  c->rpc = rpc;
  m->opened++;
  if (!c->ended) m->cur = c;
  pthread_mutex_unlock(&m->mu);
  return c;
}

/* Queues `open` for w. On failure the call is cancelled (see
 * wmux_send_close) and w ends with it, or now if the call still had it. */
static void wmux_send_open(wmux_watch *w, const char *user_uuid, const char *resume_token) {
  Cruddur__Messages__V1__WatchEventsRequest req = CRUDDUR__MESSAGES__V1__WATCH_EVENTS_REQUEST__INIT;
  req.user_uuid = (char *)user_uuid;
  req.resume_token = (char *)(resume_token != NULL ? resume_token : "");
  Cruddur__Messages__V1__WatchControl ctl = CRUDDUR__MESSAGES__V1__WATCH_CONTROL__INIT;
  ctl.id = w->id;
  ctl.op_case = CRUDDUR__MESSAGES__V1__WATCH_CONTROL__OP_OPEN;
  ctl.open = &req;
  if (rpc_stream_send(w->call->rpc, &ctl.base) == 0) return;
  rpc_stream_cancel(w->call->rpc);
  wmux *m = w->m;
  pthread_mutex_lock(&m->mu);
  int mine = w->state == W_OPEN; /* else the call's end claimed it */
  if (mine) {
    wmux_unlink_locked(m, w);
    w->state = W_ENDING;
  }
  pthread_mutex_unlock(&m->mu);
  if (mine) {
    rpc_status st;
    wmux_status(&st, GRPC_STATUS_UNAVAILABLE, "cannot queue the watch on the WatchMany call");
    wmux_finish(w, &st);
  }
}

wmux_watch *wmux_watch_start(wmux *m, const char *user_uuid, const char *resume_token,
                             rpc_stream_msg_fn on_msg, rpc_stream_end_fn on_end, void *user,
                             rpc_status *st) {
  wmux_watch *w = calloc(1, sizeof *w);
  if (w == NULL) {
    wmux_status(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  pthread_mutex_lock(&m->mu);
  int refuse = m->stopping ? 1 : m->watches >= m->max ? 2 : 0;
  if (!refuse) m->watches++; /* our place under the cap, taken now */
  pthread_mutex_unlock(&m->mu);
  if (refuse) {
    free(w);
    if (refuse == 1)
      wmux_status(st, GRPC_STATUS_UNAVAILABLE, "shutting down");
    else
      wmux_status(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many watches");
    return NULL;
  }
  pthread_mutex_lock(&m->open_mu);
  wmux_call *c = wmux_call_get(m, st);
  pthread_mutex_unlock(&m->open_mu);
  pthread_mutex_lock(&m->mu);
  if (c != NULL && c->ended) { /* ended while we opened or joined it */
    wmux_status(st, GRPC_STATUS_UNAVAILABLE, "WatchMany call ended");
    wmux_call *dead = wmux_call_unref_locked(c);
    pthread_mutex_unlock(&m->mu);
    wmux_call_free(dead);
    pthread_mutex_lock(&m->mu);
    c = NULL;
  }
  if (c == NULL) {
    m->watches--;
    pthread_mutex_unlock(&m->mu);
    free(w);
    return NULL;
  }
  /* The reference wmux_call_get gave us becomes the watch's. */
  w->m = m;
  w->call = c;
  w->id = ++m->next_id;
  w->on_msg = on_msg;
  w->on_end = on_end;
  w->user = user;
  w->refs = 2;
  w->state = W_OPEN;
  wmux_watch **pp = wmux_slot(m, w->id);
  *pp = w;
  m->live++;
  pthread_mutex_unlock(&m->mu);
  /* Events for w can come only after the server read this `open`, and a
   * `close` only from a caller holding w (after we return): the two go out
   * in order although sent outside mu. */
  wmux_send_open(w, user_uuid, resume_token);
  if (st != NULL) wmux_status(st, GRPC_STATUS_OK, "");
  return w;
}

/* ---- cancel, release, figures, stop ----------------------------------------- */

void wmux_watch_cancel(wmux_watch *w) {
  wmux *m = w->m;
  pthread_mutex_lock(&m->mu);
  if (w->state != W_OPEN) {
    pthread_mutex_unlock(&m->mu);
    return;
  }
  if (w->busy) { /* its on_msg runs: the stream thread ends it on return */
    w->cancel_req = 1;
    pthread_mutex_unlock(&m->mu);
    return;
  }
  wmux_cancel_unlock(m, w);
}

void wmux_watch_release(wmux_watch *w) {
  if (w == NULL) return;
  wmux_watch_cancel(w);
  wmux *m = w->m;
  pthread_mutex_lock(&m->mu);
  wmux_watch *dead = wmux_watch_unref_locked(w);
  pthread_mutex_unlock(&m->mu);
  free(dead);
}

long wmux_watch_count(wmux *m) {
  pthread_mutex_lock(&m->mu);
  long n = m->live;
  pthread_mutex_unlock(&m->mu);
  return n;
}

uint64_t wmux_calls_opened(wmux *m) {
  pthread_mutex_lock(&m->mu);
  uint64_t n = m->opened;
  pthread_mutex_unlock(&m->mu);
  return n;
}

int wmux_call_open(wmux *m) {
  pthread_mutex_lock(&m->mu);
  int open = m->cur != NULL;
  pthread_mutex_unlock(&m->mu);
  return open;
}

/* One wait on m->cv of at most 10 ms (mu held): callers loop on their
 * condition and deadline. */
static void wmux_nap_locked(wmux *m) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  t.tv_nsec += 10 * 1000000;
  if (t.tv_nsec >= 1000000000) t.tv_sec++, t.tv_nsec -= 1000000000;
  pthread_cond_timedwait(&m->cv, &m->mu, &t);
}

int wmux_free(wmux *m, int64_t until_us) {
  pthread_mutex_lock(&m->mu);
  m->stopping = 1;
  wmux_call *c = m->cur;
  if (c != NULL) c->refs++;
  pthread_mutex_unlock(&m->mu);
  if (c != NULL) {
    /* Half-close first: messages-svc ends a half-closed call once its last
     * watch is closed (every stream's watch was, before this), so the call
     * ends OK on both sides rather than as a cancel each side logs.
     * Cancelled if it has not ended within WMUX_CLOSE_WAIT_MS. */
    rpc_stream_close_send(c->rpc);
    int64_t soft = ts_mono_us() + (int64_t)WMUX_CLOSE_WAIT_MS * 1000;
    pthread_mutex_lock(&m->mu);
    while (!c->ended && ts_mono_us() < soft && ts_mono_us() < until_us)
      wmux_nap_locked(m);
    pthread_mutex_unlock(&m->mu);
    rpc_stream_cancel(c->rpc); /* nothing once it ended */
    pthread_mutex_lock(&m->mu);
    wmux_call *dead = wmux_call_unref_locked(c);
    pthread_mutex_unlock(&m->mu);
    wmux_call_free(dead);
  }
  pthread_mutex_lock(&m->mu);
  while (m->calls > 0 && ts_mono_us() < until_us)
    wmux_nap_locked(m);
  long left = m->calls;
  pthread_mutex_unlock(&m->mu);
  if (left > 0) {
    log_warn("drain: the WatchMany call did not end in time");
    return -1;
  }
  pthread_cond_destroy(&m->cv);
  pthread_mutex_destroy(&m->open_mu);
  pthread_mutex_destroy(&m->mu);
  free(m->table);
  free(m);
  return 0;
}
