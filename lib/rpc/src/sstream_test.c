/* sstream_test.c - server streaming end to end in one process: a server on
 * 127.0.0.1:0 serving MessagesService/WatchEvents with TEST handlers (the
 * user_uuid says what the handler does), called through rpc_stream_*.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cruddur/check.h"
#include "cruddur/log.h"
#include "cruddur/messages/v1/messages.pb-c.h"
#include "cruddur/rpc.h"
#include "cruddur/rpc_client.h"
#include "cruddur/ts.h"
#include "grpc/health/v1/health.pb-c.h"

static const ProtobufCServiceDescriptor *const MSGS =
    &cruddur__messages__v1__messages_service__descriptor;

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}
static int64_t now_ms(void) { return ts_mono_us() / 1000; }

/* ---- server side: held streams ------------------------------------------ */

/* Streams a "hold" handler kept, pushed to by the test's thread. */
#define HELD_MAX 3000
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static rpc_sstream *g_held[HELD_MAX];
static int g_n_held;
static atomic_int g_done_calls;
static atomic_int g_done_code = -1;
static atomic_int g_full_seen;
static atomic_int g_handler_started;

static void held_done(void *user, rpc_sstream *s, grpc_status_code code) {
  (void)user;
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < g_n_held; i++) {
    if (g_held[i] == s) {
      g_held[i] = g_held[--g_n_held];
      break;
    }
  }
  pthread_mutex_unlock(&g_mu);
  atomic_store(&g_done_code, (int)code);
  atomic_fetch_add(&g_done_calls, 1);
  rpc_sstream_release(s);
}

static int send_event(rpc_sstream *s, int i) {
  char tok[32];
  snprintf(tok, sizeof tok, "%d", i);
  Cruddur__Messages__V1__WatchEvent ev = CRUDDUR__MESSAGES__V1__WATCH_EVENT__INIT;
  Cruddur__Messages__V1__WatchReady ready = CRUDDUR__MESSAGES__V1__WATCH_READY__INIT;
  ev.resume_token = tok;
  ev.event_case = CRUDDUR__MESSAGES__V1__WATCH_EVENT__EVENT_READY;
  ev.ready = &ready;
  return rpc_sstream_send(s, &ev.base);
}

/* user_uuid: "count:N" sends N events and ends OK; "sleep:MS" holds a worker
 * that long and refuses; "hold" keeps the stream
 * in g_held; "fail" refuses with INVALID_ARGUMENT; "burst:N" sends N at once
 * without waiting, counting FULL answers, then ends OK. */
static grpc_status_code h_watch(rpc_call *call, const ProtobufCMessage *req_,
                                rpc_sstream *s) {
  const Cruddur__Messages__V1__WatchEventsRequest *req = (const void *)req_;
  atomic_fetch_add(&g_handler_started, 1);
  const char *u = req->user_uuid;
  if (strncmp(u, "count:", 6) == 0) {
    int n = atoi(u + 6);
    for (int i = 0; i < n; i++) {
      while (send_event(s, i) == RPC_SSTREAM_FULL) sleep_ms(1); /* test only */
    }
    return GRPC_STATUS_OK; /* no reference kept: ends OK after the queue */
  }
  if (strncmp(u, "burst:", 6) == 0) {
    int n = atoi(u + 6);
    for (int i = 0; i < n; i++)
      if (send_event(s, i) == RPC_SSTREAM_FULL) atomic_fetch_add(&g_full_seen, 1);
    return GRPC_STATUS_OK;
  }
  if (strncmp(u, "sleep:", 6) == 0) { /* occupies a worker, then refuses */
    sleep_ms(atoi(u + 6));
    return rpc_call_fail(call, GRPC_STATUS_ABORTED, "test: slept");
  }
  if (strcmp(u, "hold") == 0) {
    pthread_mutex_lock(&g_mu);
    if (g_n_held == HELD_MAX) {
      pthread_mutex_unlock(&g_mu);
      return rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "test holds too many");
    }
    g_held[g_n_held++] = rpc_sstream_ref(s);
    pthread_mutex_unlock(&g_mu);
    rpc_sstream_on_done(s, held_done, NULL);
    send_event(s, 0);
    return GRPC_STATUS_OK;
  }
  return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "test: refused");
}

static grpc_status_code h_unary(rpc_call *call, const ProtobufCMessage *req,
                                ProtobufCMessage *resp) {
  (void)req;
  (void)resp;
  return rpc_call_fail(call, GRPC_STATUS_UNIMPLEMENTED, "test");
}

static atomic_int g_healthy = 1;
static int health_fn(void *user) {
  (void)user;
  return atomic_load(&g_healthy);
}

/* Streamed requests (WatchMany) are bidi_test's; here they are refused. */
static grpc_status_code h_stream_refused(rpc_call *call, const ProtobufCMessage *req,
                                         rpc_sstream *s) {
  (void)req;
  (void)s;
  return rpc_call_fail(call, GRPC_STATUS_UNIMPLEMENTED, "test");
}

static rpc_handler_fn g_handlers[8];
static rpc_stream_handler_fn g_stream_handlers[8];
static rpc_service g_svc;

static rpc_server *start_server(int max_streams, int queue_max, int drain_ms) {
  for (unsigned i = 0; i < MSGS->n_methods; i++) {
    const char *name = MSGS->methods[i].name;
    int watch = strcmp(name, "WatchEvents") == 0;
    int streams = watch || strcmp(name, "WatchMany") == 0;
    g_handlers[i] = streams ? NULL : h_unary;
    g_stream_handlers[i] = watch ? h_watch : streams ? h_stream_refused : NULL;
  }
  g_svc.desc = MSGS;
  g_svc.handlers = g_handlers;
  g_svc.stream_handlers = g_stream_handlers;
  rpc_server_config cfg = {0};
  cfg.listen = "127.0.0.1:0";
  cfg.services = &g_svc;
  cfg.n_services = 1;
  cfg.workers = 2;
  cfg.drain_ms = drain_ms;
  cfg.max_streams = max_streams;
  cfg.stream_queue_max = queue_max;
  cfg.health = health_fn;
  rpc_server *srv = NULL;
  if (rpc_server_start(&cfg, &srv) != 0) return NULL;
  return srv;
}

static rpc_channel *open_to(rpc_server *srv) {
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", rpc_server_port(srv));
  return rpc_channel_open(target);
}

/* ---- client side: a collector ------------------------------------------- */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int n;         /* events received */
  int in_order;  /* every token was the previous + 1 (from 0) */
  int stop_at;   /* > 0: return -1 after this many */
  int ended;
  rpc_status st;
  int last_health; /* Health/Watch: the last status */
  int64_t ended_ms;
} collector;

static void col_init(collector *c) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  c->in_order = 1;
  c->last_health = -1;
}

static void col_destroy(collector *c) {
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
}

static int on_event(void *user, const ProtobufCMessage *msg) {
  collector *c = user;
  const Cruddur__Messages__V1__WatchEvent *ev = (const void *)msg;
  pthread_mutex_lock(&c->mu);
  if (atoi(ev->resume_token) != c->n) c->in_order = 0;
  c->n++;
  int stop = c->stop_at > 0 && c->n >= c->stop_at;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  return stop ? -1 : 0;
}

static int on_health(void *user, const ProtobufCMessage *msg) {
  collector *c = user;
  const Grpc__Health__V1__HealthCheckResponse *r = (const void *)msg;
  pthread_mutex_lock(&c->mu);
  c->n++;
  c->last_health = (int)r->status;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  return 0;
}

static void on_end(void *user, const rpc_status *st) {
  collector *c = user;
  pthread_mutex_lock(&c->mu);
  c->ended++;
  c->st = *st;
  c->ended_ms = now_ms();
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

/* Waits until pred(c) or max_ms; returns pred's value. */
static int col_wait(collector *c, int (*pred)(collector *), int64_t max_ms) {
  int64_t end = now_ms() + max_ms;
  pthread_mutex_lock(&c->mu);
  while (!pred(c) && now_ms() < end) {
    pthread_mutex_unlock(&c->mu);
    sleep_ms(2);
    pthread_mutex_lock(&c->mu);
  }
  int r = pred(c);
  pthread_mutex_unlock(&c->mu);
  return r;
}
static int is_ended(collector *c) { return c->ended > 0; }
static int has_one(collector *c) { return c->n >= 1; }
static int is_not_serving(collector *c) {
  return c->last_health == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static rpc_stream *watch(rpc_channel *ch, const char *what, int64_t timeout_ms,
                         collector *c, rpc_status *st) {
  Cruddur__Messages__V1__WatchEventsRequest req =
      CRUDDUR__MESSAGES__V1__WATCH_EVENTS_REQUEST__INIT;
  req.user_uuid = (char *)what;
  return rpc_stream_start(ch, MSGS, "WatchEvents", &req.base, timeout_ms, "t-1", on_event,
                          on_end, c, st);
}

static int threads_now(void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  if (d == NULL) return -1;
  for (struct dirent *e; (e = readdir(d)) != NULL;) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static void wait_held(int n, int64_t max_ms) {
  int64_t end = now_ms() + max_ms;
  for (;;) {
    pthread_mutex_lock(&g_mu);
    int k = g_n_held;
    pthread_mutex_unlock(&g_mu);
    if (k >= n || now_ms() >= end) return;
    sleep_ms(5);
  }
}

/* ---- cases -------------------------------------------------------------- */

/* Wrong calls fail at start and never call back. */
static void test_start_errors(rpc_channel *ch) {
  rpc_status st;
  Cruddur__Messages__V1__ListMessagesRequest lm = CRUDDUR__MESSAGES__V1__LIST_MESSAGES_REQUEST__INIT;
  CHECK(rpc_stream_start(ch, MSGS, "ListMessages", &lm.base, 1000, NULL, on_event, on_end,
                         NULL, &st) == NULL);
  CHECK(st.code == GRPC_STATUS_INVALID_ARGUMENT);
  CHECK(rpc_stream_start(ch, MSGS, "Nope", &lm.base, 1000, NULL, on_event, on_end, NULL,
                         &st) == NULL);
  CHECK(st.code == GRPC_STATUS_UNIMPLEMENTED);
  CHECK(rpc_stream_start(ch, MSGS, "WatchEvents", &lm.base, 1000, NULL, on_event, on_end,
                         NULL, &st) == NULL);
  CHECK(st.code == GRPC_STATUS_INVALID_ARGUMENT);
}

/* 500 events arrive all, in order, then OK; a refusal ends with its code. */
static void test_order(rpc_channel *ch) {
  collector c;
  col_init(&c);
  rpc_status st;
  rpc_stream *s = watch(ch, "count:500", 10000, &c, &st);
  CHECK(s != NULL);
  CHECK(col_wait(&c, is_ended, 10000));
  CHECK(c.n == 500);
  CHECK(c.in_order);
  CHECK(c.st.code == GRPC_STATUS_OK);
  CHECK(c.ended == 1);
  rpc_stream_release(s);
  col_destroy(&c);

  col_init(&c);
  s = watch(ch, "fail", 5000, &c, &st);
  CHECK(col_wait(&c, is_ended, 5000));
  CHECK(c.st.code == GRPC_STATUS_INVALID_ARGUMENT);
  CHECK(strcmp(c.st.message, "test: refused") == 0);
  CHECK(c.n == 0);
  rpc_stream_release(s);
  col_destroy(&c);
}

/* A burst larger than the queue: sends beyond it answer FULL at once (the
 * handler never blocks), and what was queued arrives in order. */
static void test_backpressure(rpc_channel *ch) {
  collector c;
  col_init(&c);
  atomic_store(&g_full_seen, 0);
  rpc_status st;
  rpc_stream *s = watch(ch, "burst:50", 10000, &c, &st);
  CHECK(col_wait(&c, is_ended, 10000));
  int full = atomic_load(&g_full_seen);
  CHECK(full > 0);           /* queue of 4 (+1 in flight) < 50 */
  CHECK(c.n == 50 - full);   /* nothing queued was lost */
  CHECK(c.n >= 4);
  CHECK(c.st.code == GRPC_STATUS_OK);
  /* Tokens are 0..k then a jump is possible only after FULL; the first
   * ones are consecutive. */
  rpc_stream_release(s);
  col_destroy(&c);
}

/* The client cancels (on_msg returns -1): the server's done callback sees
 * CANCELLED promptly, the client's on_end CANCELLED. */
static void test_client_cancel(rpc_channel *ch) {
  collector c;
  col_init(&c);
  c.stop_at = 1;
  atomic_store(&g_done_calls, 0);
  rpc_status st;
  rpc_stream *s = watch(ch, "hold", 0, &c, &st);
  CHECK(col_wait(&c, is_ended, 5000));
  CHECK(c.st.code == GRPC_STATUS_CANCELLED);
  int64_t t0 = now_ms();
  while (atomic_load(&g_done_calls) < 1 && now_ms() - t0 < 2000) sleep_ms(2);
  CHECK(atomic_load(&g_done_calls) == 1);
  CHECK(atomic_load(&g_done_code) == GRPC_STATUS_CANCELLED);
  rpc_stream_release(s);
  col_destroy(&c);

  /* rpc_stream_cancel from the test's thread. */
  col_init(&c);
  atomic_store(&g_done_calls, 0);
  s = watch(ch, "hold", 0, &c, &st);
  CHECK(col_wait(&c, has_one, 5000));
  rpc_stream_cancel(s);
  CHECK(col_wait(&c, is_ended, 5000));
  CHECK(c.st.code == GRPC_STATUS_CANCELLED);
  t0 = now_ms();
  while (atomic_load(&g_done_calls) < 1 && now_ms() - t0 < 2000) sleep_ms(2);
  CHECK(atomic_load(&g_done_code) == GRPC_STATUS_CANCELLED);
  rpc_stream_release(s);
  col_destroy(&c);
}

/* A stream the client cancelled before a worker ran its handler: the close
 * watch completes at once, racing the worker into the handler. The done
 * callback must still come (it was lost when the close won that race), or
 * the handler's reference leaks and the drain waits for it for ever. */
static void test_cancel_before_handler(rpc_channel *ch) {
  enum { K = 150 };
  collector busy[2], c[K];
  rpc_stream *bs[2], *s[K];
  rpc_status st;
  atomic_store(&g_done_calls, 0);
  int started0 = atomic_load(&g_handler_started);
  for (int i = 0; i < 2; i++) { /* both workers asleep: the holds queue */
    col_init(&busy[i]);
    bs[i] = watch(ch, "sleep:400", 0, &busy[i], &st);
  }
  sleep_ms(50);
  for (int i = 0; i < K; i++) {
    col_init(&c[i]);
    s[i] = watch(ch, "hold", 0, &c[i], &st);
    CHECK(s[i] != NULL);
  }
  sleep_ms(100); /* accepted by the server, waiting for a worker */
  for (int i = 0; i < K; i++) rpc_stream_cancel(s[i]);
  for (int i = 0; i < 2; i++) CHECK(col_wait(&busy[i], is_ended, 5000));
  for (int i = 0; i < K; i++) CHECK(col_wait(&c[i], is_ended, 5000));
  /* Every hold handler that ran took a reference: each gets its done. */
  int64_t t0 = now_ms();
  int ran = 0;
  while (now_ms() - t0 < 5000) {
    ran = atomic_load(&g_handler_started) - started0 - 2;
    if (atomic_load(&g_done_calls) >= ran) break;
    sleep_ms(10);
  }
  fprintf(stderr, "sstream_test: %d of %d cancelled streams reached the handler\n", ran, K);
  CHECK(atomic_load(&g_done_calls) == ran);
  for (int i = 0; i < 2; i++) {
    rpc_stream_release(bs[i]);
    col_destroy(&busy[i]);
  }
  for (int i = 0; i < K; i++) {
    rpc_stream_release(s[i]);
    col_destroy(&c[i]);
  }
}

/* The deadline ends a held stream on both sides. */
static void test_deadline(rpc_channel *ch) {
  collector c;
  col_init(&c);
  atomic_store(&g_done_calls, 0);
  rpc_status st;
  int64_t t0 = now_ms();
  rpc_stream *s = watch(ch, "hold", 300, &c, &st);
  CHECK(col_wait(&c, is_ended, 5000));
  CHECK(c.st.code == GRPC_STATUS_DEADLINE_EXCEEDED);
  CHECK(c.ended_ms - t0 >= 250 && c.ended_ms - t0 < 2000);
  while (atomic_load(&g_done_calls) < 1 && now_ms() - t0 < 3000) sleep_ms(2);
  CHECK(atomic_load(&g_done_code) == GRPC_STATUS_DEADLINE_EXCEEDED);
  rpc_stream_release(s);
  col_destroy(&c);
}

/* Pushing from another thread to a held stream, then ending it. */
static void test_push(rpc_channel *ch) {
  collector c;
  col_init(&c);
  rpc_status st;
  rpc_stream *s = watch(ch, "hold", 0, &c, &st);
  CHECK(col_wait(&c, has_one, 5000));
  pthread_mutex_lock(&g_mu);
  CHECK(g_n_held == 1);
  rpc_sstream *h = g_n_held == 1 ? rpc_sstream_ref(g_held[0]) : NULL;
  pthread_mutex_unlock(&g_mu);
  if (h != NULL) {
    CHECK(send_event(h, 1) == RPC_SSTREAM_OK);
    CHECK(send_event(h, 2) == RPC_SSTREAM_OK);
    rpc_sstream_end(h, GRPC_STATUS_ABORTED, "test end");
    CHECK(send_event(h, 3) == RPC_SSTREAM_CLOSED);
    rpc_sstream_release(h);
  }
  CHECK(col_wait(&c, is_ended, 5000));
  CHECK(c.n == 3);
  CHECK(c.in_order);
  CHECK(c.st.code == GRPC_STATUS_ABORTED);
  CHECK(strcmp(c.st.message, "test end") == 0);
  rpc_stream_release(s);
  col_destroy(&c);
}

/* Health/Watch: SERVING at once, NOT_SERVING pushed when the dependency goes. */
static void test_health_watch(rpc_channel *ch) {
  collector c;
  col_init(&c);
  atomic_store(&g_healthy, 1);
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)"";
  rpc_status st;
  rpc_stream *s = rpc_stream_start(ch, &grpc__health__v1__health__descriptor, "Watch",
                                   &req.base, 0, NULL, on_health, on_end, &c, &st);
  CHECK(s != NULL);
  CHECK(col_wait(&c, has_one, 5000));
  CHECK(c.last_health == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
  atomic_store(&g_healthy, 0);
  CHECK(col_wait(&c, is_not_serving, 5000));
  CHECK(c.n == 2);
  atomic_store(&g_healthy, 1);
  rpc_stream_release(s);
  CHECK(col_wait(&c, is_ended, 5000));
  CHECK(c.st.code == GRPC_STATUS_CANCELLED);
  col_destroy(&c);

  /* An unknown name stays open with SERVICE_UNKNOWN. */
  col_init(&c);
  req.service = (char *)"no.such.Service";
  s = rpc_stream_start(ch, &grpc__health__v1__health__descriptor, "Watch", &req.base, 0,
                       NULL, on_health, on_end, &c, &st);
  CHECK(col_wait(&c, has_one, 5000));
  CHECK(c.last_health ==
        GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN);
  CHECK(c.ended == 0);
  rpc_stream_release(s);
  CHECK(col_wait(&c, is_ended, 5000));
  col_destroy(&c);
}

/* The cap answers RESOURCE_EXHAUSTED beyond it; draining ends every open
 * stream with UNAVAILABLE and a reconnect message, quickly. */
static void test_cap_and_drain(void) {
  rpc_server *srv = start_server(2, 4, 3000);
  CHECK(srv != NULL);
  if (srv == NULL) return;
  rpc_channel *ch = open_to(srv);
  collector c[3];
  rpc_stream *s[3];
  rpc_status st;
  for (int i = 0; i < 3; i++) col_init(&c[i]);
  for (int i = 0; i < 2; i++) {
    s[i] = watch(ch, "hold", 0, &c[i], &st);
    CHECK(col_wait(&c[i], has_one, 5000));
  }
  CHECK(rpc_server_open_streams(srv) == 2);
  s[2] = watch(ch, "hold", 0, &c[2], &st);
  CHECK(col_wait(&c[2], is_ended, 5000));
  CHECK(c[2].st.code == GRPC_STATUS_RESOURCE_EXHAUSTED);

  int64_t t0 = now_ms();
  rpc_server_shutdown(srv);
  rpc_server_wait(srv);
  CHECK(now_ms() - t0 < 2500); /* well inside the 3 s budget */
  for (int i = 0; i < 2; i++) {
    CHECK(col_wait(&c[i], is_ended, 5000));
    CHECK(c[i].st.code == GRPC_STATUS_UNAVAILABLE);
    CHECK(strstr(c[i].st.message, "reconnect") != NULL);
  }
  CHECK(rpc_server_open_streams(srv) == 0);
  for (int i = 0; i < 3; i++) {
    rpc_stream_release(s[i]);
    col_destroy(&c[i]);
  }
  rpc_server_destroy(srv);
  rpc_channel_close(ch);
}

/* Many idle streams cost no thread on either side. */
static void test_many_idle(void) {
  enum { N = 2000 };
  rpc_server *srv = start_server(N + 10, 4, 3000);
  CHECK(srv != NULL);
  if (srv == NULL) return;
  rpc_channel *ch = open_to(srv);
  collector *c = calloc(N, sizeof *c);
  rpc_stream **s = calloc(N, sizeof *s);
  rpc_status st;
  /* One stream first so the channel's stream thread exists. */
  col_init(&c[0]);
  s[0] = watch(ch, "hold", 0, &c[0], &st);
  CHECK(col_wait(&c[0], has_one, 5000));
  sleep_ms(200);
  int before = threads_now();
  for (int i = 1; i < N; i++) {
    col_init(&c[i]);
    s[i] = watch(ch, "hold", 0, &c[i], &st);
  }
  wait_held(N, 30000);
  pthread_mutex_lock(&g_mu);
  int held = g_n_held;
  pthread_mutex_unlock(&g_mu);
  CHECK(held == N);
  int after = threads_now();
  fprintf(stderr, "sstream_test: %d idle streams: threads %d -> %d\n", N, before, after);
  CHECK(after - before <= 4);
  rpc_server_shutdown(srv);
  rpc_server_wait(srv);
  for (int i = 0; i < N; i++) {
    CHECK(col_wait(&c[i], is_ended, 10000));
    CHECK(c[i].st.code == GRPC_STATUS_UNAVAILABLE);
    rpc_stream_release(s[i]);
    col_destroy(&c[i]);
  }
  free(c);
  free(s);
  rpc_server_destroy(srv);
  rpc_channel_close(ch);
}

int main(void) {
  log_init("sstream_test");
  rpc_server *srv = start_server(0, 4, 2000);
  CHECK(srv != NULL);
  if (srv == NULL) return 1;
  rpc_channel *ch = open_to(srv);
  test_start_errors(ch);
  test_order(ch);
  test_backpressure(ch);
  test_client_cancel(ch);
  test_cancel_before_handler(ch);
  test_deadline(ch);
  test_push(ch);
  test_health_watch(ch);
  rpc_server_shutdown(srv);
  rpc_server_wait(srv);
  rpc_server_destroy(srv);
  rpc_channel_close(ch);

  test_cap_and_drain();
  test_many_idle();
  if (failures != 0) {
    fprintf(stderr, "sstream_test: %d failure(s)\n", failures);
    return 1;
  }
  fprintf(stderr, "sstream_test: all passed\n");
  return 0;
}
