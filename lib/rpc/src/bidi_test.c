/* bidi_test.c - calls whose requests are a stream, end to end in one
 * process: a server on 127.0.0.1:0 serving the test-only
 * cruddur.rpctest.v1.EchoService (testproto/), called through
 * rpc_stream_open / rpc_stream_send / rpc_stream_close_send.
 *
 * Chat's handler does what the call's x-request-id says: "echo" answers
 * every message with the same n and ends OK at the half-close; "end5"
 * echoes 0 to 4 and ends ABORTED at 5; "stall" never reads; "submit" answers each message from a worker
 * (rpc_sstream_submit); "qmax" raises its queue bound and sends 100 at
 * once; "refuse" refuses the call. Sum adds the n's up.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cruddur/check.h"
#include "cruddur/log.h"
#include "cruddur/rpc.h"
#include "cruddur/rpc_client.h"
#include "cruddur/rpctest/v1/echo.pb-c.h"
#include "cruddur/ts.h"
#include "rpc_internal.h" /* rpc__descriptor_set_extend */

/* From cruddur_rpctest_proto (xxd -i). */
extern unsigned char rpctest_descriptor_set[];
extern unsigned int rpctest_descriptor_set_len;

static const ProtobufCServiceDescriptor *const ECHO =
    &cruddur__rpctest__v1__echo_service__descriptor;

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}
static int64_t now_ms(void) { return ts_mono_us() / 1000; }

/* Waits until *v >= want or max_ms; returns 1 when it got there. */
static int wait_atomic(atomic_int *v, int want, int64_t max_ms) {
  int64_t end = now_ms() + max_ms;
  while (atomic_load(v) < want && now_ms() < end) sleep_ms(2);
  return atomic_load(v) >= want;
}

/* ---- server side -------------------------------------------------------- */

/* What the server saw, reset by each case. */
static struct {
  atomic_int n_recv;     /* messages given to a receive callback */
  atomic_int in_order;   /* each n was the previous + 1, from 0 */
  atomic_int got_null;   /* NULLs given to a receive callback */
  atomic_int null_after; /* n_recv when the NULL came */
  atomic_int full;       /* rpc_sstream_send said FULL */
  atomic_int done_calls, done_code;
  atomic_int jobs_ran, jobs_on_recv_thread;
  atomic_int submit_when_over; /* rpc_sstream_submit's answer in the done callback */
  pthread_mutex_t mu;
  pthread_t recv_thread; /* where receive callbacks ran */
  int recv_thread_set;
  int recv_threads; /* distinct threads seen (must stay 1) */
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void g_reset(void) {
  atomic_store(&g.n_recv, 0);
  atomic_store(&g.in_order, 1);
  atomic_store(&g.got_null, 0);
  atomic_store(&g.null_after, -1);
  atomic_store(&g.full, 0);
  atomic_store(&g.done_calls, 0);
  atomic_store(&g.done_code, -1);
  atomic_store(&g.jobs_ran, 0);
  atomic_store(&g.jobs_on_recv_thread, 0);
  atomic_store(&g.submit_when_over, 99);
  pthread_mutex_lock(&g.mu);
  g.recv_thread_set = 0;
  g.recv_threads = 0;
  pthread_mutex_unlock(&g.mu);
}

static void note_recv_thread(void) {
  pthread_mutex_lock(&g.mu);
  if (!g.recv_thread_set || !pthread_equal(g.recv_thread, pthread_self())) {
    g.recv_thread = pthread_self();
    g.recv_thread_set = 1;
    g.recv_threads++;
  }
  pthread_mutex_unlock(&g.mu);
}

static void reply(rpc_sstream *s, int64_t n) {
  Cruddur__Rpctest__V1__EchoReply r = CRUDDUR__RPCTEST__V1__ECHO_REPLY__INIT;
  r.n = n;
  r.text = (char *)"reply";
  if (rpc_sstream_send(s, &r.base) == RPC_SSTREAM_FULL) atomic_fetch_add(&g.full, 1);
}

/* Counts a message (or the NULL) into g; returns its n, -1 for NULL. */
static int64_t note_recv(const ProtobufCMessage *msg) {
  note_recv_thread();
  if (msg == NULL) {
    atomic_store(&g.null_after, atomic_load(&g.n_recv));
    atomic_fetch_add(&g.got_null, 1);
    return -1;
  }
  int64_t n = ((const Cruddur__Rpctest__V1__EchoRequest *)msg)->n;
  if (n != atomic_fetch_add(&g.n_recv, 1)) atomic_store(&g.in_order, 0);
  return n;
}

static void job_noop(void *arg) { (void)arg; }

static void on_done(void *user, rpc_sstream *s, grpc_status_code code) {
  if (user != NULL) /* "submit": too late for more work */
    atomic_store(&g.submit_when_over, rpc_sstream_submit(s, job_noop, NULL));
  atomic_store(&g.done_code, (int)code);
  atomic_fetch_add(&g.done_calls, 1);
  rpc_sstream_release(s);
}

static void echo_recv(void *user, rpc_sstream *s, const ProtobufCMessage *msg) {
  int64_t n = note_recv(msg);
  if (n < 0)
    rpc_sstream_end(s, GRPC_STATUS_OK, NULL); /* ignored when already ending */
  else if (user != NULL && n == 5)
    rpc_sstream_end(s, GRPC_STATUS_ABORTED, "test end");
  else
    reply(s, n);
}

typedef struct {
  rpc_sstream *s; /* a reference */
  int64_t n;
} job;

static void job_run(void *arg) {
  job *j = arg;
  pthread_mutex_lock(&g.mu);
  int on_recv_thread = g.recv_thread_set && pthread_equal(g.recv_thread, pthread_self());
  pthread_mutex_unlock(&g.mu);
  atomic_fetch_add(&g.jobs_on_recv_thread, on_recv_thread);
  sleep_ms(1); /* blocking is what workers are for */
  reply(j->s, j->n);
  atomic_fetch_add(&g.jobs_ran, 1);
  rpc_sstream_release(j->s);
  free(j);
}

static void submit_recv(void *user, rpc_sstream *s, const ProtobufCMessage *msg) {
  (void)user;
  int64_t n = note_recv(msg);
  if (n < 0) {
    rpc_sstream_end(s, GRPC_STATUS_OK, NULL);
    return;
  }
  job *j = malloc(sizeof *j);
  CHECK(j != NULL);
  j->s = rpc_sstream_ref(s);
  j->n = n;
  if (rpc_sstream_submit(s, job_run, j) != 0) {
    rpc_sstream_release(j->s);
    free(j);
  }
}

static grpc_status_code h_chat(rpc_call *call, const ProtobufCMessage *req, rpc_sstream *s) {
  CHECK(req == NULL);
  const char *what = rpc_call_request_id(call);
  if (strcmp(what, "qmax") == 0) {
    /* Three first, so the ring has wrapped state to carry over. */
    for (int i = 0; i < 3; i++) reply(s, i);
    rpc_sstream_set_queue_max(s, 100);
    rpc_sstream_set_queue_max(s, 10); /* never lowers */
    for (int i = 3; i < 100; i++) reply(s, i);
    return GRPC_STATUS_OK; /* no reference kept: ends OK after the queue */
  }
  if (strcmp(what, "refuse") == 0)
    return rpc_call_fail(call, GRPC_STATUS_PERMISSION_DENIED, "test: refused");
  int submit = strcmp(what, "submit") == 0;
  rpc_sstream_set_queue_max(s, 8192);
  rpc_sstream_on_done(s, on_done, submit ? (void *)1 : NULL);
  if (strcmp(what, "stall") != 0)
    rpc_sstream_on_recv(s, submit ? submit_recv : echo_recv,
                        strcmp(what, "end5") == 0 ? (void *)1 : NULL);
  rpc_sstream_ref(s);
  return GRPC_STATUS_OK;
}

static void sum_recv(void *user, rpc_sstream *s, const ProtobufCMessage *msg) {
  int64_t *total = user;
  int64_t n = note_recv(msg);
  if (n >= 0) {
    *total += n;
    return;
  }
  reply(s, *total);
  rpc_sstream_end(s, GRPC_STATUS_OK, NULL);
}

static void sum_done(void *user, rpc_sstream *s, grpc_status_code code) {
  free(user);
  on_done(NULL, s, code);
}

static grpc_status_code h_sum(rpc_call *call, const ProtobufCMessage *req, rpc_sstream *s) {
  (void)call;
  CHECK(req == NULL);
  int64_t *total = calloc(1, sizeof *total);
  CHECK(total != NULL);
  rpc_sstream_on_done(s, sum_done, total);
  rpc_sstream_on_recv(s, sum_recv, total);
  rpc_sstream_ref(s);
  return GRPC_STATUS_OK;
}

static grpc_status_code h_count(rpc_call *call, const ProtobufCMessage *req, rpc_sstream *s) {
  (void)call;
  reply(s, ((const Cruddur__Rpctest__V1__EchoRequest *)req)->n);
  return GRPC_STATUS_OK;
}

static grpc_status_code h_get(rpc_call *call, const ProtobufCMessage *req,
                              ProtobufCMessage *resp) {
  (void)call;
  ((Cruddur__Rpctest__V1__EchoReply *)resp)->n =
      ((const Cruddur__Rpctest__V1__EchoRequest *)req)->n;
  return GRPC_STATUS_OK;
}

static rpc_handler_fn g_handlers[4];
static rpc_stream_handler_fn g_streams[4];
static rpc_service g_svc = {&cruddur__rpctest__v1__echo_service__descriptor, g_handlers,
                            g_streams};

static void set_handlers(void) {
  for (unsigned i = 0; i < ECHO->n_methods; i++) {
    const char *n = ECHO->methods[i].name;
    g_handlers[i] = strcmp(n, "Get") == 0 ? h_get : NULL;
    g_streams[i] = strcmp(n, "Chat") == 0    ? h_chat
                   : strcmp(n, "Sum") == 0   ? h_sum
                   : strcmp(n, "Count") == 0 ? h_count
                                             : NULL;
  }
}

static rpc_server *start_server(int max_streams, int drain_ms) {
  set_handlers();
  rpc_server_config cfg = {0};
  cfg.listen = "127.0.0.1:0";
  cfg.services = &g_svc;
  cfg.n_services = 1;
  cfg.workers = 2;
  cfg.drain_ms = drain_ms;
  cfg.max_streams = max_streams;
  cfg.stream_queue_max = 4; /* small: raising it must be what makes room */
  rpc_server *srv = NULL;
  if (rpc_server_start(&cfg, &srv) != 0) return NULL;
  return srv;
}

static rpc_channel *open_to(rpc_server *srv) {
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", rpc_server_port(srv));
  return rpc_channel_open_streams(target);
}

/* ---- client side: a collector ------------------------------------------- */

typedef struct {
  atomic_int n;        /* replies */
  atomic_int in_order; /* each reply's n was the previous + 1, from 0 */
  atomic_int ended;    /* on_end calls */
  atomic_int msg_after_end;
  int64_t last_n;
  int64_t sum;         /* of every reply's n */
  rpc_status st;       /* written by on_end before `ended` */
  rpc_stream *s;       /* for ping-pong from on_msg */
  int ping_to;         /* > 0: on_msg sends the next request until this many */
  atomic_int pong_send_failed;
} collector;

static void col_init(collector *c) {
  memset(c, 0, sizeof *c);
  atomic_store(&c->in_order, 1);
}

static int send_n(rpc_stream *s, int64_t n) {
  Cruddur__Rpctest__V1__EchoRequest req = CRUDDUR__RPCTEST__V1__ECHO_REQUEST__INIT;
  req.n = n;
  req.text = (char *)"request";
  return rpc_stream_send(s, &req.base);
}

static int on_msg(void *user, const ProtobufCMessage *msg) {
  collector *c = user;
  const Cruddur__Rpctest__V1__EchoReply *r = (const void *)msg;
  if (atomic_load(&c->ended)) atomic_fetch_add(&c->msg_after_end, 1);
  if (r->n != atomic_load(&c->n)) atomic_store(&c->in_order, 0);
  c->sum += r->n;
  c->last_n = r->n;
  int n = atomic_fetch_add(&c->n, 1) + 1;
  if (c->ping_to > 0) { /* rpc_stream_send from inside on_msg */
    if (n < c->ping_to) {
      if (send_n(c->s, n) != 0) atomic_fetch_add(&c->pong_send_failed, 1);
    } else {
      rpc_stream_close_send(c->s);
    }
  }
  return 0;
}

static void on_end(void *user, const rpc_status *st) {
  collector *c = user;
  c->st = *st;
  atomic_fetch_add(&c->ended, 1);
}

static rpc_stream *chat(rpc_channel *ch, const char *what, collector *c) {
  rpc_status st;
  rpc_stream *s = rpc_stream_open(ch, ECHO, "Chat", 20000, what, on_msg, on_end, c, &st);
  CHECK(s != NULL);
  c->s = s;
  return s;
}

/* ---- cases -------------------------------------------------------------- */

/* Shapes are checked at both ends before anything is sent. */
static void test_shapes(rpc_channel *ch) {
  CHECK(rpc__method_shape(ECHO->name, "Chat") == RPC_SHAPE_BIDI);
  CHECK(rpc__method_shape(ECHO->name, "Sum") == RPC_SHAPE_CLIENT_STREAM);
  CHECK(rpc__method_shape(ECHO->name, "Count") == RPC_SHAPE_SERVER_STREAM);
  CHECK(rpc__method_shape(ECHO->name, "Get") == RPC_SHAPE_UNARY);
  rpc_status st;
  collector c;
  col_init(&c);
  CHECK(rpc_stream_open(ch, ECHO, "Count", 1000, NULL, on_msg, on_end, &c, &st) == NULL);
  CHECK(st.code == GRPC_STATUS_INVALID_ARGUMENT);
  CHECK(rpc_stream_open(ch, ECHO, "Get", 1000, NULL, on_msg, on_end, &c, &st) == NULL);
  CHECK(st.code == GRPC_STATUS_INVALID_ARGUMENT);
  CHECK(rpc_stream_open(ch, ECHO, "Nope", 1000, NULL, on_msg, on_end, &c, &st) == NULL);
  CHECK(st.code == GRPC_STATUS_UNIMPLEMENTED);
  Cruddur__Rpctest__V1__EchoRequest req = CRUDDUR__RPCTEST__V1__ECHO_REQUEST__INIT;
  CHECK(rpc_stream_start(ch, ECHO, "Chat", &req.base, 1000, NULL, on_msg, on_end, &c, &st) ==
        NULL);
  CHECK(st.code == GRPC_STATUS_INVALID_ARGUMENT);
  ProtobufCMessage *resp = NULL;
  CHECK(rpc_unary(ch, ECHO, "Chat", &req.base, &resp, 1000, NULL, &st) ==
        GRPC_STATUS_INVALID_ARGUMENT);
  CHECK(atomic_load(&c.ended) == 0);

  /* A server-streaming call has half-closed with its request: no send. */
  req.n = 7;
  rpc_stream *s = rpc_stream_start(ch, ECHO, "Count", &req.base, 5000, NULL, on_msg, on_end,
                                   &c, &st);
  CHECK(s != NULL);
  CHECK(send_n(s, 1) == -1);
  CHECK(wait_atomic(&c.ended, 1, 5000));
  CHECK(c.st.code == GRPC_STATUS_OK && atomic_load(&c.n) == 1 && c.last_n == 7);
  rpc_stream_release(s);

  /* The server refuses a unary handler on a streaming method and a stream
   * handler on a unary one. */
  set_handlers();
  rpc_handler_fn h[4];
  rpc_stream_handler_fn sh[4];
  for (int wrong = 0; wrong < 2; wrong++) {
    memcpy(h, g_handlers, sizeof h);
    memcpy(sh, g_streams, sizeof sh);
    for (unsigned i = 0; i < ECHO->n_methods; i++) {
      if (wrong == 0 && strcmp(ECHO->methods[i].name, "Chat") == 0) {
        h[i] = h_get;
        sh[i] = NULL;
      }
      if (wrong == 1 && strcmp(ECHO->methods[i].name, "Get") == 0) sh[i] = h_chat;
    }
    rpc_service svc = {ECHO, h, sh};
    rpc_server_config cfg = {0};
    cfg.listen = "127.0.0.1:0";
    cfg.services = &svc;
    cfg.n_services = 1;
    rpc_server *srv = NULL;
    CHECK(rpc_server_start(&cfg, &srv) == -1);
    CHECK(srv == NULL);
  }
}

/* Many messages both ways, in order; the server reads NULL at the
 * half-close, after the last message, and ends OK. */
static void test_echo_order(rpc_channel *ch) {
  enum { N = 3000 };
  g_reset();
  collector c;
  col_init(&c);
  rpc_stream *s = chat(ch, "echo", &c);
  int sent = 0;
  for (int i = 0; i < N; i++) sent += send_n(s, i) == 0;
  CHECK(sent == N);
  CHECK(wait_atomic(&c.n, N / 2, 10000)); /* replies while the client still sends */
  CHECK(atomic_load(&g.got_null) == 0);
  rpc_stream_close_send(s);
  CHECK(send_n(s, N) == -1); /* half-closed */
  rpc_stream_close_send(s);  /* twice is harmless */
  CHECK(wait_atomic(&c.ended, 1, 15000));
  CHECK(atomic_load(&c.n) == N);
  CHECK(atomic_load(&c.in_order));
  CHECK(c.st.code == GRPC_STATUS_OK);
  CHECK(atomic_load(&g.n_recv) == N);
  CHECK(atomic_load(&g.in_order));
  CHECK(atomic_load(&g.got_null) == 1);
  CHECK(atomic_load(&g.null_after) == N);
  CHECK(atomic_load(&g.full) == 0); /* the raised bound (4 -> 8192) made room */
  CHECK(wait_atomic(&g.done_calls, 1, 5000));
  CHECK(atomic_load(&g.done_code) == GRPC_STATUS_OK);
  pthread_mutex_lock(&g.mu);
  CHECK(g.recv_threads == 1); /* every receive callback on the poller */
  pthread_mutex_unlock(&g.mu);
  sleep_ms(50);
  CHECK(atomic_load(&c.ended) == 1);
  CHECK(atomic_load(&c.msg_after_end) == 0);
  rpc_stream_release(s);
}

/* rpc_stream_send and _close_send from inside on_msg: one message in
 * flight at a time, each sent when the previous reply came. */
static void test_ping_pong(rpc_channel *ch) {
  g_reset();
  collector c;
  col_init(&c);
  c.ping_to = 200;
  rpc_stream *s = chat(ch, "echo", &c);
  CHECK(send_n(s, 0) == 0);
  CHECK(wait_atomic(&c.ended, 1, 15000));
  CHECK(atomic_load(&c.n) == 200);
  CHECK(atomic_load(&c.in_order));
  CHECK(atomic_load(&c.pong_send_failed) == 0);
  CHECK(c.st.code == GRPC_STATUS_OK);
  CHECK(atomic_load(&g.null_after) == 200);
  rpc_stream_release(s);
}

/* Client streaming: one reply after the half-close. */
static void test_client_streaming(rpc_channel *ch) {
  g_reset();
  collector c;
  col_init(&c);
  rpc_status st;
  rpc_stream *s = rpc_stream_open(ch, ECHO, "Sum", 10000, NULL, on_msg, on_end, &c, &st);
  CHECK(s != NULL);
  for (int i = 1; i <= 100; i++) CHECK(send_n(s, i) == 0);
  rpc_stream_close_send(s);
  CHECK(wait_atomic(&c.ended, 1, 10000));
  CHECK(c.st.code == GRPC_STATUS_OK);
  CHECK(atomic_load(&c.n) == 1 && c.last_n == 5050);
  rpc_stream_release(s);

  /* An empty stream is a stream too. */
  col_init(&c);
  s = rpc_stream_open(ch, ECHO, "Sum", 10000, NULL, on_msg, on_end, &c, &st);
  rpc_stream_close_send(s);
  CHECK(wait_atomic(&c.ended, 1, 10000));
  CHECK(c.st.code == GRPC_STATUS_OK && atomic_load(&c.n) == 1 && c.last_n == 0);
  rpc_stream_release(s);
}

/* A cancel mid-stream, with messages still queued to send: on_end
 * CANCELLED once, the server's done callback CANCELLED; everything freed
 * (LeakSanitizer checks at exit). Release alone cancels too. */
static void test_cancel_mid_stream(rpc_channel *ch) {
  g_reset();
  collector c;
  col_init(&c);
  rpc_stream *s = chat(ch, "echo", &c);
  for (int i = 0; i < 10; i++) CHECK(send_n(s, i) == 0);
  CHECK(wait_atomic(&c.n, 5, 5000));
  for (int i = 10; i < 5000; i++) send_n(s, i);
  rpc_stream_cancel(s);
  CHECK(send_n(s, 1) == -1); /* ending */
  CHECK(wait_atomic(&c.ended, 1, 5000));
  CHECK(c.st.code == GRPC_STATUS_CANCELLED);
  CHECK(wait_atomic(&g.done_calls, 1, 5000));
  CHECK(atomic_load(&g.done_code) == GRPC_STATUS_CANCELLED);
  rpc_stream_cancel(s); /* again: harmless */
  sleep_ms(50);
  CHECK(atomic_load(&c.ended) == 1);
  rpc_stream_release(s);

  g_reset();
  col_init(&c);
  s = chat(ch, "echo", &c);
  CHECK(send_n(s, 0) == 0);
  CHECK(wait_atomic(&c.n, 1, 5000));
  for (int i = 1; i < 2000; i++) send_n(s, i);
  rpc_stream_release(s); /* callbacks may still run until on_end */
  CHECK(wait_atomic(&c.ended, 1, 5000));
  CHECK(c.st.code == GRPC_STATUS_CANCELLED);
  CHECK(wait_atomic(&g.done_calls, 1, 5000));
}

/* A server that does not read: the client's queue fills up to
 * RPC_STREAM_SEND_MAX, then rpc_stream_send says -1 and queues nothing. */
static void test_send_max(rpc_channel *ch) {
  g_reset();
  collector c;
  col_init(&c);
  rpc_stream *s = chat(ch, "stall", &c);
  char text[101];
  memset(text, 'x', 100);
  text[100] = '\0';
  Cruddur__Rpctest__V1__EchoRequest req = CRUDDUR__RPCTEST__V1__ECHO_REQUEST__INIT;
  req.text = text;
  int accepted = 0, refused = 0;
  size_t queued_at_refusal = 0;
  /* Small messages, so the queue fills quickly; gRPC lets a few MiB out
   * before flow control stops the writes (its windows grow with BDP
   * probes even when the server application reads nothing). */
  for (int i = 0; i < 20 * RPC_STREAM_SEND_MAX && refused == 0; i++) {
    req.n = i;
    if (rpc_stream_send(s, &req.base) == 0) {
      accepted++;
    } else {
      refused++;
      queued_at_refusal = rpc_stream_send_queued(s);
    }
  }
  fprintf(stderr, "bidi_test: %d accepted before the first -1\n", accepted);
  CHECK(refused == 1);
  /* The count is read just after the -1: a write or two may have taken a
   * message out meanwhile (gRPC keeps letting some out), never put one in. */
  CHECK(queued_at_refusal <= RPC_STREAM_SEND_MAX &&
        queued_at_refusal > RPC_STREAM_SEND_MAX - 64, "%zu", queued_at_refusal);
  CHECK(accepted >= RPC_STREAM_SEND_MAX);
  CHECK(rpc_stream_send_queued(s) <= RPC_STREAM_SEND_MAX);
  CHECK(atomic_load(&g.n_recv) == 0);
  CHECK(atomic_load(&c.ended) == 0);
  rpc_stream_release(s); /* drops the 64 Ki queued messages */
  CHECK(wait_atomic(&c.ended, 1, 5000));
  CHECK(wait_atomic(&g.done_calls, 1, 5000));
}

/* The owner ends the call from its receive callback: no message is handed
 * to it after that, although the client sent more. */
static void test_end_from_recv(rpc_channel *ch) {
  g_reset();
  collector c;
  col_init(&c);
  rpc_stream *s = chat(ch, "end5", &c);
  for (int i = 0; i < 20; i++) send_n(s, i);
  CHECK(wait_atomic(&c.ended, 1, 5000));
  CHECK(c.st.code == GRPC_STATUS_ABORTED);
  CHECK(atomic_load(&c.n) == 5);
  CHECK(wait_atomic(&g.done_calls, 1, 5000));
  sleep_ms(50);
  CHECK(atomic_load(&g.n_recv) == 6);
  CHECK(atomic_load(&g.got_null) <= 1);
  rpc_stream_release(s);
}

/* A message that is not an EchoRequest ends the call INVALID_ARGUMENT; the
 * server's receive callback gets NULL after the good one. */
static void test_undecodable(rpc_channel *ch) {
  g_reset();
  collector c;
  col_init(&c);
  rpc_stream *s = chat(ch, "echo", &c);
  CHECK(send_n(s, 0) == 0);
  Cruddur__Rpctest__V1__NotEchoRequest bad = CRUDDUR__RPCTEST__V1__NOT_ECHO_REQUEST__INIT;
  bad.n = (char *)"not a number";
  CHECK(rpc_stream_send(s, &bad.base) == 0); /* the client does not check types */
  send_n(s, 2); /* may be refused: the call may be over already */
  CHECK(wait_atomic(&c.ended, 1, 5000));
  CHECK(c.st.code == GRPC_STATUS_INVALID_ARGUMENT);
  CHECK(strstr(c.st.message, "cruddur.rpctest.v1.EchoRequest") != NULL);
  CHECK(atomic_load(&c.n) == 1);
  CHECK(atomic_load(&g.n_recv) == 1);
  CHECK(wait_atomic(&g.done_calls, 1, 5000));
  CHECK(atomic_load(&g.got_null) == 1);
  CHECK(atomic_load(&g.done_code) == GRPC_STATUS_INVALID_ARGUMENT);
  rpc_stream_release(s);
}

/* rpc_sstream_submit runs its function on a worker, not on the thread of
 * the receive callbacks; once the stream is over it says -1. */
static void test_submit(rpc_channel *ch) {
  enum { N = 50 };
  g_reset();
  collector c;
  col_init(&c);
  rpc_stream *s = chat(ch, "submit", &c);
  for (int i = 0; i < N; i++) CHECK(send_n(s, i) == 0);
  CHECK(wait_atomic(&c.n, N, 10000));
  CHECK(atomic_load(&g.jobs_ran) == N);
  CHECK(atomic_load(&g.jobs_on_recv_thread) == 0);
  CHECK(c.sum == (int64_t)N * (N - 1) / 2); /* each n once, in any order */
  rpc_stream_close_send(s);
  CHECK(wait_atomic(&c.ended, 1, 5000));
  CHECK(c.st.code == GRPC_STATUS_OK);
  CHECK(wait_atomic(&g.done_calls, 1, 5000));
  CHECK(atomic_load(&g.submit_when_over) == -1);
  rpc_stream_release(s);
}

/* rpc_sstream_set_queue_max keeps what is queued, in order, and makes room
 * beyond stream_queue_max (4 here: without it most of the 100 say FULL). */
static void test_queue_max(rpc_channel *ch) {
  g_reset();
  collector c;
  col_init(&c);
  rpc_stream *s = chat(ch, "qmax", &c);
  CHECK(wait_atomic(&c.ended, 1, 5000));
  CHECK(c.st.code == GRPC_STATUS_OK);
  CHECK(atomic_load(&g.full) == 0);
  CHECK(atomic_load(&c.n) == 100);
  CHECK(atomic_load(&c.in_order));
  rpc_stream_release(s);

  /* A refusal from the handler ends the call with its code. */
  col_init(&c);
  s = chat(ch, "refuse", &c);
  CHECK(wait_atomic(&c.ended, 1, 5000));
  CHECK(c.st.code == GRPC_STATUS_PERMISSION_DENIED);
  CHECK(strcmp(c.st.message, "test: refused") == 0);
  rpc_stream_release(s);
}

/* The stream cap counts these calls; the drain ends them UNAVAILABLE, and
 * work can no longer be submitted. */
static void test_cap_and_drain(void) {
  rpc_server *srv = start_server(2, 3000);
  CHECK(srv != NULL);
  if (srv == NULL) return;
  rpc_channel *ch = open_to(srv);
  g_reset();
  collector c[3];
  rpc_stream *s[3];
  for (int i = 0; i < 3; i++) col_init(&c[i]);
  for (int i = 0; i < 2; i++) {
    s[i] = chat(ch, i == 0 ? "echo" : "submit", &c[i]);
    CHECK(send_n(s[i], 0) == 0);
    CHECK(wait_atomic(&c[i].n, 1, 5000));
  }
  CHECK(rpc_server_open_streams(srv) == 2);
  s[2] = chat(ch, "echo", &c[2]);
  CHECK(wait_atomic(&c[2].ended, 1, 5000));
  CHECK(c[2].st.code == GRPC_STATUS_RESOURCE_EXHAUSTED);

  int64_t t0 = now_ms();
  rpc_server_shutdown(srv);
  rpc_server_wait(srv);
  CHECK(now_ms() - t0 < 2500); /* well inside the 3 s budget */
  for (int i = 0; i < 2; i++) {
    CHECK(wait_atomic(&c[i].ended, 1, 5000));
    CHECK(c[i].st.code == GRPC_STATUS_UNAVAILABLE);
    CHECK(strstr(c[i].st.message, "reconnect") != NULL);
    CHECK(send_n(s[i], 1) == -1);
  }
  CHECK(atomic_load(&g.done_calls) == 2);
  CHECK(atomic_load(&g.submit_when_over) == -1);
  CHECK(rpc_server_open_streams(srv) == 0);
  for (int i = 0; i < 3; i++) rpc_stream_release(s[i]);
  rpc_server_destroy(srv);
  rpc_channel_close(ch);
}

int main(void) {
  log_init("bidi_test");
  CHECK(rpc__descriptor_set_extend(rpctest_descriptor_set, rpctest_descriptor_set_len) == 0);
  rpc_server *srv = start_server(0, 2000);
  CHECK(srv != NULL);
  if (srv == NULL) return 1;
  CHECK(rpc__descriptor_set_extend(rpctest_descriptor_set, rpctest_descriptor_set_len) == -1);
  rpc_channel *ch = open_to(srv);
  test_shapes(ch);
  test_echo_order(ch);
  test_ping_pong(ch);
  test_client_streaming(ch);
  test_cancel_mid_stream(ch);
  test_send_max(ch);
  test_undecodable(ch);
  test_end_from_recv(ch);
  test_submit(ch);
  test_queue_max(ch);
  rpc_server_shutdown(srv);
  rpc_server_wait(srv);
  rpc_server_destroy(srv);
  rpc_channel_close(ch);

  test_cap_and_drain();
  if (failures != 0) {
    fprintf(stderr, "bidi_test: %d failure(s)\n", failures);
    return 1;
  }
  fprintf(stderr, "bidi_test: all passed\n");
  return 0;
}
