/* watch_many.c - WatchMany: many watches on one bidirectional call
 * (README "Live events", "WatchMany").
 *
 * A call (wmany) holds a table of its watches by the client's id. Each
 * watch is a wstream of watch.c, positioned, polled and delivered exactly as
 * a WatchEvents stream (same ready/resume/resync rules, polls shared with
 * every other watch of its user); only its sink differs: its events go out
 * on the call as WatchManyEvent{id, event}, its end as WatchManyEvent{id,
 * end} where a WatchEvents stream would end with a status.
 *
 * Threads. The client's controls arrive on the rpc poller thread
 * (many_recv), which must not block: a close, an open from now and the
 * checks of any open (uuid, token signature, caps) run there; the DynamoDB
 * reads of a resume run on a worker (rpc_sstream_submit), up to
 * WATCH_MANY_RESUMES of one call at once, so its opens run in parallel and
 * a slow one delays no other. hub->mu guards every field of wmany, as it
 * guards the watches.
 *
 * Ownership. A wmany is freed when refs drops to 0: one for the call
 * (dropped by many_done, which frees every attached watch and releases the
 * stream) and one per resume submitted to a worker. A watch is in its
 * call's table from its `open` until the client's close, the server's end,
 * or the call's end. An opening watch (ws->u NULL) belongs to its job: while
 * the job waits in m's list, to the call (many_done frees both); once
 * submitted, to the worker, which frees it when it finds it dead (closed
 * meanwhile) or the call over. An attached one is freed by whoever takes it
 * out of the table (many_close, many_done) or, when the server ended it, by
 * watch.c's reap.
 *
 * Queue. The call's queue holds up to WATCH_MANY_QUEUE events and each watch
 * at most WATCH_SHARE of them, as a WatchEvents stream's own queue, so one
 * busy watch cannot fill the call and hold back the others. Counting a
 * watch's queued events exactly would need a callback per written message;
 * instead m->sent numbers the call's messages, m->sent - rpc_sstream_queued
 * of them are written, and a watch whose last message (last_seq) is written
 * has none queued, else at most min(burst, last_seq - written): an upper
 * bound, so a watch never exceeds its share. The last slot of a share is
 * kept for the watch's `end`.
 */
#include "watch_internal.h"

#include <stdlib.h>
#include <string.h>

#define WATCH_SHARE 64             /* events queued per watch, as a WatchEvents stream */
#define WATCH_MANY_QUEUE 65536     /* events queued per call (the client's send bound) */
#define WATCH_MANY_RESERVE 64      /* of those, kept for `end`s */
#define WATCH_MANY_RESUME_MS 5000  /* a resume's DynamoDB budget, as WatchEvents' */
#define WATCH_MANY_RESUMES 8       /* resumes of one call on workers at once */
#define WATCH_MANY_BUCKETS0 16

typedef Cruddur__Messages__V1__WatchControl WatchControl;
typedef Cruddur__Messages__V1__WatchManyEvent WatchManyEvent;

typedef struct wmany {
  watch_hub *h;    /* reference */
  rpc_sstream *s;  /* reference, released by many_done */
  wstream **tab;   /* owned: nb buckets (a power of 2) chained by id_next */
  size_t nb, n;    /* buckets; watches in the table (open or opening) */
  uint64_t sent;   /* messages queued on the call so far */
  struct many_job *wait_head, *wait_tail; /* owned: resumes waiting for a worker */
  int resuming;    /* resumes submitted to workers and not finished */
  int refs;        /* the call's + one per resume submitted to a worker */
  int over;        /* the call is ending or over: nothing more is sent or opened */
  int half_closed; /* the client sends no more: end the call once no watch is left */
} wmany;

/* One open with a resume token: waiting in m's list, then on a worker. */
typedef struct many_job {
  wmany *m;    /* once submitted, holds one of m->refs */
  wstream *ws; /* the job's until attached (see Ownership) */
  struct many_job *next;
  char user[37];
  watch_pos p;
} many_job;

/* ======================================================================
 * The table of ids
 * ==================================================================== */

static size_t tab_slot(size_t nb, uint64_t id) {
  return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 32) & (nb - 1);
}

static wstream *tab_find(const wmany *m, uint64_t id) {
  for (wstream *ws = m->tab[tab_slot(m->nb, id)]; ws != NULL; ws = ws->id_next)
    if (ws->id == id) return ws;
  return NULL;
}

/* Adds ws (its id not in the table), doubling the buckets past one watch
 * a bucket. Returns 0, or -1 on out-of-memory (nothing changed). */
static int tab_add(wmany *m, wstream *ws) {
  if (m->n >= m->nb) {
    size_t nb = m->nb * 2;
    wstream **t = calloc(nb, sizeof *t);
    if (t == NULL) return -1;
    for (size_t i = 0; i < m->nb; i++) {
      while (m->tab[i] != NULL) {
        wstream *w = m->tab[i];
        m->tab[i] = w->id_next;
        size_t k = tab_slot(nb, w->id);
        w->id_next = t[k];
        t[k] = w;
      }
    }
    free(m->tab);
    m->tab = t;
    m->nb = nb;
  }
  size_t k = tab_slot(m->nb, ws->id);
  ws->id_next = m->tab[k];
  m->tab[k] = ws;
  m->n++;
  return 0;
}

/* Takes ws itself (not another watch with its id) out. 1 when it was in. */
static int tab_del(wmany *m, wstream *ws) {
  for (wstream **pp = &m->tab[tab_slot(m->nb, ws->id)]; *pp != NULL; pp = &(*pp)->id_next) {
    if (*pp == ws) {
      *pp = ws->id_next;
      ws->id_next = NULL;
      m->n--;
      return 1;
    }
  }
  return 0;
}

/* ======================================================================
 * Sending (hub->mu held)
 * ==================================================================== */

/* Ends the whole call (first end wins); its watches are freed by many_done. */
static void many_fail(wmany *m, grpc_status_code code, const char *msg) {
  if (m->over) return;
  m->over = 1;
  rpc_sstream_end(m->s, code, msg);
}

/* A half-closed call whose last watch is gone is over. */
static void many_settle(wmany *m) {
  if (m->half_closed && m->n == 0) many_fail(m, GRPC_STATUS_OK, NULL);
}

static void send_end(wmany *m, uint64_t id, grpc_status_code code, const char *msg) {
  if (m->over) return;
  Cruddur__Messages__V1__WatchEnd e = CRUDDUR__MESSAGES__V1__WATCH_END__INIT;
  e.code = (int32_t)code;
  e.message = (char *)(msg != NULL ? msg : "");
  WatchManyEvent me = CRUDDUR__MESSAGES__V1__WATCH_MANY_EVENT__INIT;
  me.id = id;
  me.body_case = CRUDDUR__MESSAGES__V1__WATCH_MANY_EVENT__BODY_END;
  me.end = &e;
  int rc = rpc_sstream_send(m->s, &me.base);
  if (rc == RPC_SSTREAM_OK)
    m->sent++;
  else if (rc == RPC_SSTREAM_FULL) /* the client reads nothing: all its watches resume */
    many_fail(m, GRPC_STATUS_RESOURCE_EXHAUSTED,
              "call too slow to keep up; open the watches again with their last resume_token");
}

/* An upper bound of ws's events still queued on the call (see Queue). */
static uint32_t queued_of(wmany *m, wstream *ws) {
  if (ws->burst == 0) return 0;
  uint64_t queued = rpc_sstream_queued(m->s);
  uint64_t written = m->sent > queued ? m->sent - queued : 0;
  if (written >= ws->last_seq) {
    ws->burst = 0;
    return 0;
  }
  uint64_t after = ws->last_seq - written;
  return after < ws->burst ? (uint32_t)after : ws->burst;
}

int watch__many_send(wstream *ws, const Cruddur__Messages__V1__WatchEvent *ev) {
  wmany *m = ws->m;
  if (m->over) return RPC_SSTREAM_CLOSED;
  if (queued_of(m, ws) + 1 >= WATCH_SHARE) return RPC_SSTREAM_FULL;
  WatchManyEvent me = CRUDDUR__MESSAGES__V1__WATCH_MANY_EVENT__INIT;
  me.id = ws->id;
  me.body_case = CRUDDUR__MESSAGES__V1__WATCH_MANY_EVENT__BODY_EVENT;
  me.event = (Cruddur__Messages__V1__WatchEvent *)ev;
  int rc = rpc_sstream_send(m->s, &me.base);
  if (rc == RPC_SSTREAM_OK) {
    ws->last_seq = ++m->sent;
    ws->burst++;
  }
  return rc;
}

size_t watch__many_room(wstream *ws) {
  wmany *m = ws->m;
  if (m->over) return 0;
  uint32_t q = queued_of(m, ws);
  size_t share = q + 1 < WATCH_SHARE ? WATCH_SHARE - 1 - q : 0;
  size_t room = rpc_sstream_room(m->s);
  room = room > WATCH_MANY_RESERVE ? room - WATCH_MANY_RESERVE : 0;
  return room < share ? room : share;
}

void watch__many_end(wstream *ws, grpc_status_code code, const char *msg) {
  send_end(ws->m, ws->id, code, msg);
  watch__many_forget(ws);
}

void watch__many_forget(wstream *ws) {
  if (tab_del(ws->m, ws)) many_settle(ws->m);
}

/* ======================================================================
 * Controls (rpc poller thread, except many_resume)
 * ==================================================================== */

/* Attaches a placed ws to its user, or ends it. hub->mu held. */
static void many_attach_locked(wmany *m, wstream *ws, const char *user, int resuming,
                               const char *resync) {
  const char *why = NULL;
  ws->s = m->s;
  if (watch__attach_locked(m->h, user, ws, resuming, resync, &why) == GRPC_STATUS_OK) return;
  tab_del(m, ws);
  send_end(m, ws->id, GRPC_STATUS_RESOURCE_EXHAUSTED, why);
  watch__free(ws);
  many_settle(m);
}

static void many_free(wmany *m) {
  free(m->tab);
  free(m);
}

/* Drops one of m->refs. hub->mu held; returns 1 when m must be freed
 * (after the lock is released). */
static int many_unref_locked(wmany *m) { return --m->refs == 0; }

static void many_resume(void *arg);

/* Hands waiting resumes to workers, up to WATCH_MANY_RESUMES at once, so
 * a gateway reopening thousands of watches after a drain neither fills the
 * server's work queue (unary calls would be refused) nor waits behind one
 * slow resume. hub->mu held (rpc_sstream_submit takes the stream's lock,
 * then the server's; neither is ever held while taking hub->mu). */
static void many_pump(wmany *m) {
  while (!m->over && m->wait_head != NULL && m->resuming < WATCH_MANY_RESUMES) {
    many_job *j = m->wait_head;
    m->wait_head = j->next;
    if (m->wait_head == NULL) m->wait_tail = NULL;
    if (j->ws->dead) { /* closed while waiting */
      watch__free(j->ws);
      free(j);
      continue;
    }
    if (rpc_sstream_submit(m->s, many_resume, j) != 0) {
      /* The server's work queue is full (or it drains): the client opens
       * it again (a drain ends the call itself). */
      tab_del(m, j->ws);
      send_end(m, j->ws->id, GRPC_STATUS_UNAVAILABLE, "server busy; open the watch again");
      watch__free(j->ws);
      free(j);
      many_settle(m);
      continue;
    }
    m->resuming++;
    m->refs++;
  }
}

/* Frees the resumes that never reached a worker. hub->mu held. */
static void many_drop_waiting(wmany *m) {
  while (m->wait_head != NULL) {
    many_job *j = m->wait_head;
    m->wait_head = j->next;
    tab_del(m, j->ws);
    watch__free(j->ws);
    free(j);
  }
  m->wait_tail = NULL;
}

/* The resume of one open (worker): reads, then attaches unless the client
 * closed it or the call ended meanwhile. */
static void many_resume(void *arg) {
  many_job *j = arg;
  wmany *m = j->m;
  watch_hub *h = m->h;
  wstream *ws = j->ws;
  const char *resync = NULL, *why = NULL;
  grpc_status_code code =
      watch__place(h, j->user, &j->p, WATCH_MANY_RESUME_MS, ws, &resync, &why);
  pthread_mutex_lock(&h->mu);
  if (ws->dead || m->over) { /* closed (no longer in the table), or the call ends */
    tab_del(m, ws);
    watch__free(ws);
  } else if (code != GRPC_STATUS_OK) {
    tab_del(m, ws);
    send_end(m, ws->id, code, why);
    watch__free(ws);
    many_settle(m);
  } else {
    many_attach_locked(m, ws, j->user, 1, resync);
  }
  m->resuming--;
  many_pump(m);
  int last = many_unref_locked(m);
  pthread_mutex_unlock(&h->mu);
  if (last) many_free(m);
  free(j);
}

static void many_open(wmany *m, uint64_t id,
                      const Cruddur__Messages__V1__WatchEventsRequest *req) {
  watch_hub *h = m->h;
  watch_pos p;
  int resuming = 0;
  const char *why = NULL, *resync = NULL;
  grpc_status_code code = watch__check(h, req, &p, &resuming, &why);
  wstream *ws = NULL;
  many_job *j = NULL;
  if (code == GRPC_STATUS_OK) {
    ws = watch__new(h);
    j = resuming ? calloc(1, sizeof *j) : NULL;
    if (ws == NULL || (resuming && j == NULL)) {
      code = GRPC_STATUS_RESOURCE_EXHAUSTED;
      why = "out of memory";
    } else if (!resuming) {
      code = watch__place(h, req->user_uuid, NULL, 0, ws, &resync, &why); /* no I/O */
    }
  }
  pthread_mutex_lock(&h->mu);
  if (m->over) {
    /* ending: nothing more is sent */
  } else if (id == 0) {
    many_fail(m, GRPC_STATUS_INVALID_ARGUMENT, "watch id must be nonzero");
  } else if (tab_find(m, id) != NULL) {
    many_fail(m, GRPC_STATUS_INVALID_ARGUMENT, "watch id is already open on this call");
  } else if (code != GRPC_STATUS_OK) {
    send_end(m, id, code, why);
  } else {
    ws->m = m;
    ws->id = id;
    if (tab_add(m, ws) != 0) {
      send_end(m, id, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    } else if (!resuming) {
      many_attach_locked(m, ws, req->user_uuid, 0, NULL);
      ws = NULL; /* attached, or freed */
    } else {
      j->m = m;
      j->ws = ws;
      memcpy(j->user, req->user_uuid, sizeof j->user);
      j->p = p;
      if (m->wait_tail != NULL)
        m->wait_tail->next = j;
      else
        m->wait_head = j;
      m->wait_tail = j;
      ws = NULL;
      j = NULL; /* the call's, until a worker takes it */
      many_pump(m);
    }
  }
  pthread_mutex_unlock(&h->mu);
  watch__free(ws);
  free(j);
}

/* The client's close: nothing more is sent for id (an id the server ended
 * already, or never saw, is no error: the end and the close crossed). */
static void many_close(wmany *m, uint64_t id) {
  wstream *ws = tab_find(m, id);
  if (ws == NULL) return;
  tab_del(m, ws);
  if (ws->u != NULL) {
    watch__unlink_locked(m->h, ws);
    watch__free(ws);
  } else {
    ws->dead = 1; /* its resume job frees it */
  }
  many_settle(m);
}

static void many_recv(void *user, rpc_sstream *s, const ProtobufCMessage *msg) {
  wmany *m = user;
  const WatchControl *c = (const WatchControl *)msg;
  if (c != NULL && c->op_case == CRUDDUR__MESSAGES__V1__WATCH_CONTROL__OP_OPEN) {
    many_open(m, c->id, c->open);
    return;
  }
  pthread_mutex_lock(&m->h->mu);
  if (c == NULL) {
    m->half_closed = 1;
    many_settle(m);
  } else if (m->over) {
    /* ending: nothing more to do */
  } else if (c->id == 0) {
    many_fail(m, GRPC_STATUS_INVALID_ARGUMENT, "watch id must be nonzero");
  } else if (c->op_case == CRUDDUR__MESSAGES__V1__WATCH_CONTROL__OP_CLOSE) {
    many_close(m, c->id);
  } else {
    many_fail(m, GRPC_STATUS_INVALID_ARGUMENT, "a WatchControl needs open or close");
  }
  pthread_mutex_unlock(&m->h->mu);
}

/* The call is over (client gone or cancelled, drain, our end): every
 * watch on it ends with it. */
static void many_done(void *user, rpc_sstream *s, grpc_status_code code) {
  wmany *m = user;
  watch_hub *h = m->h;
  (void)code;
  pthread_mutex_lock(&h->mu);
  m->over = 1;
  many_drop_waiting(m);
  for (size_t i = 0; i < m->nb; i++) {
    wstream *ws = m->tab[i];
    m->tab[i] = NULL;
    while (ws != NULL) {
      wstream *next = ws->id_next;
      ws->id_next = NULL;
      if (ws->u != NULL) {
        watch__unlink_locked(h, ws);
        watch__free(ws);
      } else {
        ws->dead = 1; /* its resume, on a worker, frees it */
      }
      ws = next;
    }
  }
  m->n = 0;
  int last = many_unref_locked(m);
  pthread_mutex_unlock(&h->mu);
  rpc_sstream_release(s);
  if (last) many_free(m);
}

grpc_status_code watch_many_start(watch_hub *h, rpc_call *call, rpc_sstream *s) {
  wmany *m = calloc(1, sizeof *m);
  wstream **tab = calloc(WATCH_MANY_BUCKETS0, sizeof *tab);
  if (m == NULL || tab == NULL) {
    free(m);
    free(tab);
    return rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  m->h = h;
  m->tab = tab;
  m->nb = WATCH_MANY_BUCKETS0;
  m->refs = 1;
  m->s = rpc_sstream_ref(s);
  rpc_sstream_set_queue_max(s, WATCH_MANY_QUEUE);
  rpc_sstream_on_done(s, many_done, m);
  rpc_sstream_on_recv(s, many_recv, m); /* read once this returns */
  return GRPC_STATUS_OK;
}
