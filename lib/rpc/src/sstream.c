/* sstream.c - server-streaming calls on the server's completion queue, and
 * calls whose requests are a stream too (bidirectional, client streaming).
 *
 * A stream is one accepted call plus a bounded queue of encoded messages.
 * Four kinds of batch may be outstanding at once, each with its own tag
 * embedded in the stream: the close watch (SEND_INITIAL_METADATA +
 * RECV_CLOSE_ON_SERVER, started with the stream, completes when the call is
 * over: status sent, client cancelled or gone, deadline, cancel_all), one
 * write (SEND_MESSAGE; the next starts when it completes, so at most one is
 * in flight), the status (SEND_STATUS_FROM_SERVER, once the queue is
 * empty after an end was asked for) and, for streamed requests, one read
 * (RECV_MESSAGE; the next starts when the receive callback of the previous
 * message has returned, so a slow owner slows the client down through
 * HTTP/2 flow control instead of buffering here).
 *
 * Reference counting (s->refs, under s->mu): one per outstanding batch and
 * one per holder (the handler while it runs, each rpc_sstream_ref). The
 * object, its grpc_call and its rpc_call are freed when refs reaches 0, by
 * whichever thread dropped the last one. s->holders counts the holders
 * alone: when it reaches 0 on an open stream, nobody can end it any more,
 * so it ends with OK.
 *
 * Locks: srv->mu (the stream list and count) is taken before s->mu, never
 * the other way round. Callbacks run with no lock held.
 */
#include "rpc_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>

#include "cruddur/log.h"

#define SS_STATUS_MSG_MAX 512
#define SS_DRAIN_MSG "server is shutting down; reconnect"

#define SS_ERR_MSG_MAX 256

typedef struct ss_tag {
  rpc_tag tag;           /* first member: the completion's tag */
  struct rpc_sstream *s; /* reference back to the owner */
} ss_tag;

struct rpc_sstream {
  ss_tag t_close, t_write, t_status, t_recv;
  rpc_server *srv;  /* reference */
  rpc_call *c;      /* owned: freed with the stream */
  pthread_mutex_t mu;
  int refs, holders;
  grpc_byte_buffer **q; /* owned ring of q_cap encoded messages */
  size_t q_cap, q_head, q_len;
  size_t q_max;         /* the bound: the ring grows up to it when full */
  grpc_byte_buffer *inflight; /* owned: the message being written */
  int writing;        /* a write batch is outstanding */
  int ending;         /* an end was decided: nothing more is queued */
  int status_started; /* the status batch was started */
  int closed;         /* the close watch completed: the call is over */
  int dead;           /* the call was cancelled: nothing more can be sent */
  int handler_running;
  int done_called;
  grpc_status_code end_code;
  grpc_status_code final_code; /* what the done callback is told */
  grpc_slice status_slice;     /* owned when has_status_slice */
  int has_status_slice;
  rpc_sstream_done_fn done;
  void *done_user;
  /* Streamed requests: the receive callback and the read (c->recv_buf is
   * the buffer of the read in flight). */
  rpc_sstream_recv_fn recv;
  void *recv_user;
  int recv_over; /* the callback had its NULL (or cannot get one): no more reads */
  struct rpc_sstream *prev, *next; /* srv->streams, under srv->mu */
};

/* ======================================================================
 * Batches (s->mu held)
 * ==================================================================== */

static void start_write_locked(rpc_sstream *s) {
  s->inflight = s->q[s->q_head];
  s->q_head = (s->q_head + 1) % s->q_cap;
  s->q_len--;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = s->inflight;
  s->writing = 1;
  s->refs++;
  if (grpc_call_start_batch(s->c->call, &op, 1, &s->t_write.tag, NULL) != GRPC_CALL_OK) {
    /* Only when the call is already finished on our side. */
    s->writing = 0;
    s->refs--;
    s->dead = 1;
  }
}

static void start_recv_locked(rpc_sstream *s) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &s->c->recv_buf;
  s->refs++;
  if (grpc_call_start_batch(s->c->call, &op, 1, &s->t_recv.tag, NULL) != GRPC_CALL_OK) {
    /* Only when the call is already over: the close watch tells the rest. */
    s->refs--;
    s->recv_over = 1;
  }
}

static void start_status_locked(rpc_sstream *s) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  op.data.send_status_from_server.status = s->end_code;
  if (s->has_status_slice) op.data.send_status_from_server.status_details = &s->status_slice;
  s->status_started = 1;
  s->refs++;
  if (grpc_call_start_batch(s->c->call, &op, 1, &s->t_status.tag, NULL) != GRPC_CALL_OK) {
    s->refs--;
    s->dead = 1;
  }
}

static void drop_queue_locked(rpc_sstream *s) {
  while (s->q_len > 0) {
    grpc_byte_buffer_destroy(s->q[s->q_head]);
    s->q_head = (s->q_head + 1) % s->q_cap;
    s->q_len--;
  }
}

static void end_locked(rpc_sstream *s, grpc_status_code code, const char *msg) {
  if (s->ending) return;
  s->ending = 1;
  s->end_code = code;
  if (msg != NULL && msg[0] != '\0') {
    s->status_slice = grpc_slice_from_copied_buffer(msg, strnlen(msg, SS_STATUS_MSG_MAX));
    s->has_status_slice = 1;
  }
  if (!s->dead && !s->writing && s->q_len == 0) start_status_locked(s);
}

/* ======================================================================
 * Freeing
 * ==================================================================== */

static void sstream_free(rpc_sstream *s) {
  rpc_server *srv = s->srv;
  rpc_call *c = s->c;
  /* Out of the list first: rpc__sstreams_end_all locks the streams it
   * finds there (holding srv->mu), so none may be torn down while listed. */
  pthread_mutex_lock(&srv->mu);
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    srv->streams = s->next;
  if (s->next != NULL) s->next->prev = s->prev;
  pthread_mutex_unlock(&srv->mu);

  c->status = s->final_code;
  c->cancelled = 0; /* final_code already says how it ended */
  rpc__call_log(c);
  drop_queue_locked(s);
  if (s->inflight != NULL) grpc_byte_buffer_destroy(s->inflight);
  if (s->has_status_slice) grpc_slice_unref(s->status_slice);
  free(s->q);
  pthread_mutex_destroy(&s->mu);
  rpc__call_free(c);

  free(s);
  /* Counted until everything is released: the drain waits for this. */
  pthread_mutex_lock(&srv->mu);
  srv->n_streams--;
  pthread_cond_broadcast(&srv->state_cv);
  pthread_mutex_unlock(&srv->mu);
}

/* Drops one reference; frees on the last. Called with s->mu held; returns
 * with it released. */
static void unref_unlock(rpc_sstream *s) {
  int last = --s->refs == 0;
  pthread_mutex_unlock(&s->mu);
  if (last) sstream_free(s);
}

/* Runs the done callback if it is due: the call is over and the handler has
 * returned. Called with s->mu held; returns with it held. */
static void maybe_done_locked(rpc_sstream *s) {
  if (!s->closed || s->handler_running || s->done_called) return;
  s->done_called = 1;
  if (s->done == NULL) return;
  /* A reference keeps s alive through the callback, which may release. */
  s->refs++;
  pthread_mutex_unlock(&s->mu);
  s->done(s->done_user, s, s->final_code);
  pthread_mutex_lock(&s->mu);
  s->refs--; /* never the last: the caller holds one too */
}

/* ======================================================================
 * Public API
 * ==================================================================== */

void rpc_sstream_on_done(rpc_sstream *s, rpc_sstream_done_fn fn, void *user) {
  pthread_mutex_lock(&s->mu);
  s->done = fn;
  s->done_user = user;
  pthread_mutex_unlock(&s->mu);
}

void rpc_sstream_on_recv(rpc_sstream *s, rpc_sstream_recv_fn fn, void *user) {
  if (s->c->method->kind != RPC_METHOD_BIDI) {
    log_error("rpc: rpc_sstream_on_recv on %s, whose requests are not a stream",
              s->c->method->path);
    return;
  }
  pthread_mutex_lock(&s->mu);
  s->recv = fn;
  s->recv_user = user;
  pthread_mutex_unlock(&s->mu);
}

int rpc_sstream_submit(rpc_sstream *s, void (*fn)(void *arg), void *arg) {
  if (fn == NULL) return -1;
  pthread_mutex_lock(&s->mu);
  int over = s->ending || s->closed;
  pthread_mutex_unlock(&s->mu);
  /* srv->mu is taken after s->mu is released (lock order). */
  if (over) return -1;
  return rpc__work_push(s->srv, (rpc_work){.fn = fn, .arg = arg});
}

void rpc_sstream_set_queue_max(rpc_sstream *s, size_t max) {
  if (max > SIZE_MAX / sizeof *s->q) return;
  pthread_mutex_lock(&s->mu);
  if (max > s->q_max) s->q_max = max; /* the ring grows when it fills up */
  pthread_mutex_unlock(&s->mu);
}

int rpc__ring_grow(grpc_byte_buffer ***q, size_t *cap, size_t *head, size_t len,
                   size_t max) {
  if (*cap >= max) return -1;
  size_t n = *cap < 8 ? 16 : *cap * 2;
  if (n > max) n = max;
  grpc_byte_buffer **bigger = malloc(n * sizeof *bigger);
  if (bigger == NULL) return -1;
  /* Unroll the ring so it starts at 0 in the larger array. */
  for (size_t i = 0; i < len; i++) bigger[i] = (*q)[(*head + i) % *cap];
  free(*q);
  *q = bigger;
  *cap = n;
  *head = 0;
  return 0;
}

int rpc_sstream_send(rpc_sstream *s, const ProtobufCMessage *msg) {
  grpc_byte_buffer *buf = rpc__pack(msg);

  pthread_mutex_lock(&s->mu);
  int rc = RPC_SSTREAM_OK;
  if (s->ending || s->dead) {
    rc = RPC_SSTREAM_CLOSED;
  } else if (s->q_len == s->q_cap &&
             rpc__ring_grow(&s->q, &s->q_cap, &s->q_head, s->q_len, s->q_max) != 0) {
    rc = RPC_SSTREAM_FULL;
  } else {
    s->q[(s->q_head + s->q_len) % s->q_cap] = buf;
    s->q_len++;
    buf = NULL;
    if (!s->writing) start_write_locked(s);
  }
  pthread_mutex_unlock(&s->mu);
  if (buf != NULL) grpc_byte_buffer_destroy(buf);
  return rc;
}

void rpc_sstream_end(rpc_sstream *s, grpc_status_code code, const char *msg) {
  pthread_mutex_lock(&s->mu);
  end_locked(s, code, msg);
  pthread_mutex_unlock(&s->mu);
}

size_t rpc_sstream_queued(rpc_sstream *s) {
  pthread_mutex_lock(&s->mu);
  size_t n = s->q_len + (s->writing ? 1 : 0);
  pthread_mutex_unlock(&s->mu);
  return n;
}

size_t rpc_sstream_room(rpc_sstream *s) {
  pthread_mutex_lock(&s->mu);
  size_t n = s->ending || s->dead ? 0 : s->q_max - s->q_len;
  pthread_mutex_unlock(&s->mu);
  return n;
}

rpc_sstream *rpc_sstream_ref(rpc_sstream *s) {
  pthread_mutex_lock(&s->mu);
  s->refs++;
  s->holders++;
  pthread_mutex_unlock(&s->mu);
  return s;
}

void rpc_sstream_release(rpc_sstream *s) {
  pthread_mutex_lock(&s->mu);
  if (--s->holders == 0) end_locked(s, GRPC_STATUS_OK, NULL);
  unref_unlock(s);
}

/* ======================================================================
 * Start (worker)
 * ==================================================================== */

/* Links a new stream into the server's list, or refuses it (draining, cap).
 * Returns 0, or the code the call must end with (message in *why). */
static grpc_status_code admit(rpc_server *srv, rpc_sstream *s, const char **why) {
  grpc_status_code code = GRPC_STATUS_OK;
  pthread_mutex_lock(&srv->mu);
  if (srv->shutting_down) {
    code = GRPC_STATUS_UNAVAILABLE;
    *why = SS_DRAIN_MSG;
  } else if (srv->n_streams >= srv->cfg.max_streams) {
    code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    *why = "too many open streams on this server; retry later or elsewhere";
  } else {
    s->next = srv->streams;
    if (s->next != NULL) s->next->prev = s;
    srv->streams = s;
    srv->n_streams++;
  }
  pthread_mutex_unlock(&srv->mu);
  return code;
}

static rpc_sstream *sstream_new(rpc_call *c) {
  rpc_sstream *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->q_cap = s->q_max = (size_t)c->srv->cfg.stream_queue_max;
  s->q = calloc(s->q_cap, sizeof *s->q);
  if (s->q == NULL) {
    free(s);
    return NULL;
  }
  s->srv = c->srv;
  s->c = c;
  pthread_mutex_init(&s->mu, NULL);
  s->t_close = (ss_tag){{RPC_TAG_SS_CLOSE}, s};
  s->t_write = (ss_tag){{RPC_TAG_SS_WRITE}, s};
  s->t_status = (ss_tag){{RPC_TAG_SS_STATUS}, s};
  s->t_recv = (ss_tag){{RPC_TAG_SS_RECV}, s};
  s->refs = 1; /* the handler's */
  s->holders = 1;
  s->final_code = GRPC_STATUS_OK;
  return s;
}

/* Initial metadata goes out at once (clients see the stream is up) with
 * the close watch, which tells us promptly when the call is over. */
static int start_close_watch(rpc_sstream *s) {
  rpc_call *c = s->c;
  rpc__call_prepare_md(c);
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = c->n_send_md;
  ops[0].data.send_initial_metadata.metadata = c->send_md;
  ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[1].data.recv_close_on_server.cancelled = &c->cancelled;
  s->refs++;
  if (grpc_call_start_batch(c->call, ops, 2, &s->t_close.tag, NULL) != GRPC_CALL_OK) {
    s->refs--;
    return -1;
  }
  return 0;
}

void rpc__sstream_run(rpc_call *c) {
  rpc_server *srv = c->srv;
  if (rpc__call_expired(c)) {
    rpc__call_finish(c, GRPC_STATUS_DEADLINE_EXCEEDED,
                     "deadline passed before the call was handled");
    return;
  }
  ProtobufCMessage *req = NULL; /* streamed requests: read after the handler */
  if (c->method->kind != RPC_METHOD_BIDI && (req = rpc__call_decode(c)) == NULL) return;
  rpc_sstream *s = sstream_new(c);
  if (s == NULL) {
    rpc__call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  const char *why = NULL;
  grpc_status_code refused = admit(srv, s, &why);
  if (refused != GRPC_STATUS_OK) {
    pthread_mutex_destroy(&s->mu);
    free(s->q);
    free(s);
    rpc__call_finish(c, refused, why);
    return;
  }
  /* Set before the close watch starts: on a call the client already
   * cancelled, the watch completes at once on the poller, which must then
   * leave the done callback to the end of the handler (maybe_done_locked),
   * not run it before the handler could set one. No lock: the poller cannot
   * see s before start_close_watch. */
  s->handler_running = 1;
  if (start_close_watch(s) != 0) {
    log_error("rpc: cannot start stream %s", c->method->path);
    s->handler_running = 0;
    s->final_code = GRPC_STATUS_INTERNAL;
    s->dead = 1; /* nothing can be sent on it */
    rpc_sstream_release(s); /* frees: no batch outstanding */
    return;
  }

  c->status_msg = NULL;
  grpc_status_code code = c->method->stream_handler(c, req, s);
  if ((int)code < 0 || (int)code > GRPC_STATUS_UNAUTHENTICATED) code = GRPC_STATUS_UNKNOWN;

  pthread_mutex_lock(&s->mu);
  s->handler_running = 0;
  if (code != GRPC_STATUS_OK)
    end_locked(s, code, c->status_msg != NULL ? c->status_msg : rpc_status_name(code));
  /* The request and anything the handler allocated from the call are dead
   * now; give the memory back so an idle stream stays small. */
  c->status_msg = NULL;
  arena_free(&c->arena);
  if (c->recv_buf != NULL) {
    grpc_byte_buffer_destroy(c->recv_buf);
    c->recv_buf = NULL;
  }
  grpc_metadata_array_destroy(&c->recv_md); /* request_id was copied out */
  grpc_metadata_array_init(&c->recv_md);
  /* Also when the stream is ending already: the read then brings the NULL
   * (or the done callback comes first). */
  if (code == GRPC_STATUS_OK && s->recv != NULL && !s->closed) start_recv_locked(s);
  maybe_done_locked(s);
  if (--s->holders == 0) end_locked(s, GRPC_STATUS_OK, NULL);
  unref_unlock(s);
}

/* ======================================================================
 * Completions (poller)
 * ==================================================================== */

/* How a call that is over without our status ended, as the client saw it. */
static grpc_status_code died_code(const rpc_sstream *s) {
  if (rpc__call_expired(s->c)) return GRPC_STATUS_DEADLINE_EXCEEDED;
  if (atomic_load(&s->srv->cancelled_all)) return GRPC_STATUS_UNAVAILABLE;
  return GRPC_STATUS_CANCELLED;
}

/* A read completed: hands the message (or the NULL that ends the reading)
 * to the receive callback and starts the next read. The read's reference
 * keeps s alive through the callback. Called with s->mu held; returns with
 * it held. */
static void on_recv_locked(rpc_sstream *s, int ok) {
  rpc_call *c = s->c;
  grpc_byte_buffer *buf = c->recv_buf;
  c->recv_buf = NULL;
  const ProtobufCMessage *msg = NULL;
  /* Once an end was decided the owner gets NULL at once, not what the
   * client kept sending. */
  if (ok && buf != NULL && !s->ending && !s->closed) {
    msg = rpc__call_unpack(c, c->method->desc->input, buf);
    if (msg == NULL) {
      char why[SS_ERR_MSG_MAX];
      snprintf(why, sizeof why, "request is not a valid %s", c->method->desc->input->name);
      end_locked(s, GRPC_STATUS_INVALID_ARGUMENT, why);
    }
  }
  if (buf != NULL) grpc_byte_buffer_destroy(buf);
  if (s->done_called || s->recv_over) { /* done already ran: nothing more */
    s->recv_over = 1;
    arena_free(&c->arena);
    return;
  }
  if (msg == NULL) s->recv_over = 1;
  pthread_mutex_unlock(&s->mu);
  s->recv(s->recv_user, s, msg);
  pthread_mutex_lock(&s->mu);
  arena_free(&c->arena); /* the message was valid only during the callback */
  /* Read on until the NULL, also once ending: the read completes when the
   * call is over (its message, if any, is dropped for the NULL), so the
   * owner hears the end in order with its messages. */
  if (!s->recv_over && !s->closed) start_recv_locked(s);
}

void rpc__sstream_event(rpc_tag *t, int ok) {
  rpc_sstream *s = ((ss_tag *)t)->s;
  pthread_mutex_lock(&s->mu);
  switch (t->kind) {
  case RPC_TAG_SS_WRITE:
    s->writing = 0;
    grpc_byte_buffer_destroy(s->inflight);
    s->inflight = NULL;
    if (!ok) s->dead = 1;
    if (s->dead)
      drop_queue_locked(s);
    else if (s->q_len > 0)
      start_write_locked(s);
    else if (s->ending && !s->status_started)
      start_status_locked(s);
    break;
  case RPC_TAG_SS_STATUS:
    break;
  case RPC_TAG_SS_RECV:
    on_recv_locked(s, ok);
    break;
  case RPC_TAG_SS_CLOSE:
    s->closed = 1;
    if (s->c->cancelled || !s->status_started) {
      s->dead = 1;
      drop_queue_locked(s);
      s->final_code = died_code(s);
      s->ending = 1; /* nothing can be sent any more */
    } else {
      s->final_code = s->end_code;
    }
    maybe_done_locked(s);
    break;
  default:
    break;
  }
  unref_unlock(s);
}

/* ======================================================================
 * Drain
 * ==================================================================== */

void rpc__sstreams_end_all(rpc_server *srv) {
  pthread_mutex_lock(&srv->mu);
  int n = 0;
  for (rpc_sstream *s = srv->streams; s != NULL; s = s->next) {
    pthread_mutex_lock(&s->mu);
    n += !s->ending;
    end_locked(s, GRPC_STATUS_UNAVAILABLE, SS_DRAIN_MSG);
    pthread_mutex_unlock(&s->mu);
  }
  pthread_mutex_unlock(&srv->mu);
  if (n > 0) log_info("rpc: ended %d open stream(s) with UNAVAILABLE", n);
}

void rpc__sstreams_wait_freed(rpc_server *srv) {
  while (srv->n_streams > 0) {
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    next.tv_sec += 5;
    if (pthread_cond_timedwait(&srv->state_cv, &srv->mu, &next) == ETIMEDOUT &&
        srv->n_streams > 0)
      log_warn("rpc: shutdown still waiting for %d stream(s) to be released",
               srv->n_streams);
  }
}
