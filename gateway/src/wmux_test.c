/* wmux_test.c - wmux against a scripted WatchMany server in this process
 * (lib/rpc on 127.0.0.1:0): the shapes the gateway relies on that the
 * integration test (tests/integration/test_events.py, real messages-svc)
 * cannot force: a watch the server ends, events for a closed id, a cancel,
 * on_msg's -1, the call's end, the backoff after a young call, the cap,
 * the half-close at wmux_free.
 *
 * The server answers each `open` with one event (token "ready-<id>"), or,
 * for user "end-me", with an `end` RESOURCE_EXHAUSTED; it records opens,
 * closes and calls, ends the call when the client half-closes, and the
 * test makes it send events or end the call.
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
#include "cruddur/messages/v1/messages.pb-c.h"
#include "cruddur/rpc.h"
#include "cruddur/ts.h"
#include "wmux.h"

typedef Cruddur__Messages__V1__WatchManyEvent ManyEvent;
typedef Cruddur__Messages__V1__WatchControl Control;

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* Waits until *v >= want (2 s at most); 1 when it got there. */
static int wait_for(atomic_int *v, int want) {
  int64_t end = ts_mono_us() + 2000000;
  while (atomic_load(v) < want && ts_mono_us() < end)
    sleep_ms(2);
  return atomic_load(v) >= want;
}

/* ---- the scripted server ------------------------------------------------- */

static struct {
  pthread_mutex_t mu;
  rpc_sstream *call; /* (mu) the open WatchMany call, a reference */
  atomic_int calls, calls_done, opens, closes, half_closes;
  uint64_t last_open_id, last_close_id; /* (mu) */
  int ids_bad;                          /* (mu) a zero or repeated id was opened */
  uint64_t seen[64];                    /* (mu) ids opened so far */
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void srv_send_event(rpc_sstream *s, uint64_t id, const char *token) {
  Cruddur__Messages__V1__WatchReady rd = CRUDDUR__MESSAGES__V1__WATCH_READY__INIT;
  Cruddur__Messages__V1__WatchEvent ev = CRUDDUR__MESSAGES__V1__WATCH_EVENT__INIT;
  ev.resume_token = (char *)token;
  ev.event_case = CRUDDUR__MESSAGES__V1__WATCH_EVENT__EVENT_READY;
  ev.ready = &rd;
  ManyEvent me = CRUDDUR__MESSAGES__V1__WATCH_MANY_EVENT__INIT;
  me.id = id;
  me.body_case = CRUDDUR__MESSAGES__V1__WATCH_MANY_EVENT__BODY_EVENT;
  me.event = &ev;
  rpc_sstream_send(s, &me.base);
}

static void srv_recv(void *user, rpc_sstream *s, const ProtobufCMessage *msg) {
  (void)user;
  if (msg == NULL) { /* half-closed: over, as messages-svc once no watch is left */
    atomic_fetch_add(&srv.half_closes, 1);
    rpc_sstream_end(s, GRPC_STATUS_OK, NULL);
    return;
  }
  const Control *c = (const Control *)msg;
  if (c->op_case == CRUDDUR__MESSAGES__V1__WATCH_CONTROL__OP_CLOSE) {
    pthread_mutex_lock(&srv.mu);
    srv.last_close_id = c->id;
    pthread_mutex_unlock(&srv.mu);
    atomic_fetch_add(&srv.closes, 1);
    return;
  }
  if (c->op_case != CRUDDUR__MESSAGES__V1__WATCH_CONTROL__OP_OPEN) return;
  pthread_mutex_lock(&srv.mu);
  int n = atomic_load(&srv.opens);
  for (int i = 0; i < n && i < 64; i++)
    if (srv.seen[i] == c->id) srv.ids_bad = 1;
  if (c->id == 0) srv.ids_bad = 1;
  if (n < 64) srv.seen[n] = c->id;
  srv.last_open_id = c->id;
  pthread_mutex_unlock(&srv.mu);
  if (strcmp(c->open->user_uuid, "end-me") == 0) {
    Cruddur__Messages__V1__WatchEnd end = CRUDDUR__MESSAGES__V1__WATCH_END__INIT;
    end.code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    end.message = (char *)"cap";
    ManyEvent me = CRUDDUR__MESSAGES__V1__WATCH_MANY_EVENT__INIT;
    me.id = c->id;
    me.body_case = CRUDDUR__MESSAGES__V1__WATCH_MANY_EVENT__BODY_END;
    me.end = &end;
    rpc_sstream_send(s, &me.base);
  } else {
    char tok[40];
    snprintf(tok, sizeof tok, "ready-%llu", (unsigned long long)c->id);
    srv_send_event(s, c->id, tok);
  }
  atomic_fetch_add(&srv.opens, 1);
}

static void srv_done(void *user, rpc_sstream *s, grpc_status_code code) {
  (void)user;
  (void)code;
  pthread_mutex_lock(&srv.mu);
  if (srv.call == s) srv.call = NULL;
  pthread_mutex_unlock(&srv.mu);
  atomic_fetch_add(&srv.calls_done, 1);
  rpc_sstream_release(s);
}

static grpc_status_code srv_watch_many(rpc_call *call, const ProtobufCMessage *req,
                                       rpc_sstream *s) {
  (void)call;
  (void)req;
  pthread_mutex_lock(&srv.mu);
  srv.call = rpc_sstream_ref(s);
  pthread_mutex_unlock(&srv.mu);
  rpc_sstream_on_done(s, srv_done, NULL);
  rpc_sstream_on_recv(s, srv_recv, NULL);
  atomic_fetch_add(&srv.calls, 1);
  return GRPC_STATUS_OK;
}

static grpc_status_code srv_unary(rpc_call *call, const ProtobufCMessage *req,
                                  ProtobufCMessage *resp) {
  (void)req;
  (void)resp;
  return rpc_call_fail(call, GRPC_STATUS_UNIMPLEMENTED, "not in this test");
}

static grpc_status_code srv_stream(rpc_call *call, const ProtobufCMessage *req, rpc_sstream *s) {
  (void)req;
  (void)s;
  return rpc_call_fail(call, GRPC_STATUS_UNIMPLEMENTED, "not in this test");
}

/* Sends an event to watch `id` on the open call, or ends the call. */
static void srv_event(uint64_t id) {
  pthread_mutex_lock(&srv.mu);
  rpc_sstream *s = srv.call != NULL ? rpc_sstream_ref(srv.call) : NULL;
  pthread_mutex_unlock(&srv.mu);
  if (s == NULL) return;
  srv_send_event(s, id, "later");
  rpc_sstream_release(s);
}

static void srv_end_call(void) {
  pthread_mutex_lock(&srv.mu);
  rpc_sstream *s = srv.call != NULL ? rpc_sstream_ref(srv.call) : NULL;
  pthread_mutex_unlock(&srv.mu);
  if (s == NULL) return;
  rpc_sstream_end(s, GRPC_STATUS_UNAVAILABLE, "server is shutting down; reconnect");
  rpc_sstream_release(s);
}

static uint64_t srv_last(uint64_t *field) {
  pthread_mutex_lock(&srv.mu);
  uint64_t v = *field;
  pthread_mutex_unlock(&srv.mu);
  return v;
}

/* ---- the client side: what each watch saw --------------------------------- */

typedef struct {
  atomic_int msgs, ends, msg_after_end;
  int stop_on_msg; /* on_msg answers -1 */
  rpc_status end;  /* written before `ends` */
  char token[40];  /* the last event's */
} seen;

static int on_msg(void *user, const ProtobufCMessage *msg) {
  seen *w = user;
  if (atomic_load(&w->ends) > 0) atomic_fetch_add(&w->msg_after_end, 1);
  snprintf(w->token, sizeof w->token, "%s",
           ((const Cruddur__Messages__V1__WatchEvent *)msg)->resume_token);
  atomic_fetch_add(&w->msgs, 1);
  return w->stop_on_msg ? -1 : 0;
}

static void on_end(void *user, const rpc_status *st) {
  seen *w = user;
  w->end = *st;
  atomic_fetch_add(&w->ends, 1);
}

static wmux_watch *start(wmux *m, const char *user, seen *w) {
  memset(w, 0, sizeof *w);
  rpc_status st;
  return wmux_watch_start(m, user, "", on_msg, on_end, w, &st);
}

/* ---- cases ------------------------------------------------------------------ */

/* Watches of three users share one call; each gets its own events only; a
 * cancel closes only its id; an event for a closed id is dropped. */
static void test_share_route_cancel(wmux *m) {
  seen a, b, c;
  wmux_watch *wa = start(m, "user-a", &a), *wb = start(m, "user-b", &b),
             *wc = start(m, "user-c", &c);
  CHECK(wa != NULL && wb != NULL && wc != NULL);
  CHECK(wait_for(&a.msgs, 1) && wait_for(&b.msgs, 1) && wait_for(&c.msgs, 1));
  CHECK(atomic_load(&srv.calls) == 1, "one call for three watches, got %d",
        atomic_load(&srv.calls));
  CHECK(wmux_calls_opened(m) == 1 && wmux_call_open(m) == 1 && wmux_watch_count(m) == 3);
  CHECK(strncmp(b.token, "ready-", 6) == 0);
  uint64_t id_b = strtoull(b.token + 6, NULL, 10);
  uint64_t id_a = strtoull(a.token + 6, NULL, 10);
  srv_event(id_b);
  CHECK(wait_for(&b.msgs, 2));
  sleep_ms(50);
  CHECK(atomic_load(&a.msgs) == 1 && atomic_load(&c.msgs) == 1, "routed to the wrong watch");

  wmux_watch_cancel(wa); /* on_end runs here (nothing of a's is in on_msg) */
  CHECK(atomic_load(&a.ends) == 1 && a.end.code == GRPC_STATUS_CANCELLED);
  CHECK(wait_for(&srv.closes, 1));
  CHECK(srv_last(&srv.last_close_id) == id_a, "close for the wrong id");
  wmux_watch_cancel(wa); /* again: nothing */
  srv_event(id_a);       /* in flight after the close: dropped */
  srv_event(id_b);
  CHECK(wait_for(&b.msgs, 3));
  CHECK(atomic_load(&a.msgs) == 1 && atomic_load(&a.ends) == 1 &&
        atomic_load(&a.msg_after_end) == 0);
  CHECK(wmux_watch_count(m) == 2);
  wmux_watch_release(wa);
  wmux_watch_release(wb); /* still running: cancelled, on_end inline */
  CHECK(atomic_load(&b.ends) == 1 && b.end.code == GRPC_STATUS_CANCELLED);
  CHECK(wait_for(&srv.closes, 2));
  wmux_watch_release(wc);
  CHECK(wmux_watch_count(m) == 0);
  CHECK(srv.ids_bad == 0, "a zero or reused watch id");
}

/* The server ends one watch: its status reaches on_end, the call stays. */
static void test_server_ends_a_watch(wmux *m) {
  seen e, k;
  wmux_watch *we = start(m, "end-me", &e), *wk = start(m, "user-k", &k);
  CHECK(wait_for(&e.ends, 1) && wait_for(&k.msgs, 1));
  CHECK(e.end.code == GRPC_STATUS_RESOURCE_EXHAUSTED && strcmp(e.end.message, "cap") == 0,
        "got %d %s", (int)e.end.code, e.end.message);
  CHECK(atomic_load(&e.msgs) == 0 && atomic_load(&k.ends) == 0);
  int closes = atomic_load(&srv.closes);
  wmux_watch_release(we); /* ended by the server: no close */
  sleep_ms(50);
  CHECK(atomic_load(&srv.closes) == closes, "a close after the server's end");
  wmux_watch_release(wk);
}

/* on_msg's -1 ends the watch (CANCELLED) and closes it upstream. */
static void test_on_msg_stops(wmux *m) {
  seen s;
  memset(&s, 0, sizeof s);
  s.stop_on_msg = 1;
  rpc_status st;
  int closes = atomic_load(&srv.closes);
  wmux_watch *w = wmux_watch_start(m, "user-s", "", on_msg, on_end, &s, &st);
  CHECK(w != NULL);
  CHECK(wait_for(&s.ends, 1) && s.end.code == GRPC_STATUS_CANCELLED);
  CHECK(atomic_load(&s.msgs) == 1);
  CHECK(wait_for(&srv.closes, closes + 1));
  wmux_watch_release(w);
}

/* The call ends: every watch on it ends with its status. A call that lived
 * past WMUX_YOUNG_MS is replaced at once; a young one starts the backoff. */
static void test_call_end_and_backoff(wmux *m) {
  seen x, y;
  wmux_watch *wx = start(m, "user-x", &x), *wy = start(m, "user-y", &y);
  CHECK(wait_for(&x.msgs, 1) && wait_for(&y.msgs, 1));
  uint64_t opened = wmux_calls_opened(m);
  sleep_ms(WMUX_YOUNG_MS + 100); /* the call has lived (since the first case, at least) */
  srv_end_call();
  CHECK(wait_for(&x.ends, 1) && wait_for(&y.ends, 1));
  CHECK(x.end.code == GRPC_STATUS_UNAVAILABLE && y.end.code == GRPC_STATUS_UNAVAILABLE, "got %d %d",
        (int)x.end.code, (int)y.end.code);
  CHECK(wmux_call_open(m) == 0 && wmux_watch_count(m) == 0);
  wmux_watch_release(wx);
  wmux_watch_release(wy);

  seen z;
  wmux_watch *wz = start(m, "user-z", &z); /* no backoff after a call that lived */
  CHECK(wz != NULL && wait_for(&z.msgs, 1));
  CHECK(wmux_calls_opened(m) == opened + 1);
  srv_end_call(); /* young: the backoff starts */
  CHECK(wait_for(&z.ends, 1));
  wmux_watch_release(wz);
  seen q;
  rpc_status st;
  memset(&q, 0, sizeof q);
  CHECK(wmux_watch_start(m, "user-q", "", on_msg, on_end, &q, &st) == NULL);
  CHECK(st.code == GRPC_STATUS_UNAVAILABLE, "got %d", (int)st.code);
  CHECK(wmux_calls_opened(m) == opened + 1, "a call opened during the backoff");
  sleep_ms(WMUX_BACKOFF_MIN_MS + 100);
  wmux_watch *wq = start(m, "user-q", &q);
  CHECK(wq != NULL && wait_for(&q.msgs, 1));
  CHECK(wmux_calls_opened(m) == opened + 2);
  wmux_watch_release(wq);
}

/* More than max_watches at once: RESOURCE_EXHAUSTED, until one is released. */
static void test_cap(rpc_channel *ch) {
  wmux *m = NULL;
  CHECK(wmux_new(ch, 2, &m) == 0);
  seen a, b, c;
  wmux_watch *wa = start(m, "cap-a", &a), *wb = start(m, "cap-b", &b);
  rpc_status st;
  memset(&c, 0, sizeof c);
  CHECK(wa != NULL && wb != NULL);
  /* Answered: both watches hold their places before the cap is tried. */
  CHECK(wait_for(&a.msgs, 1) && wait_for(&b.msgs, 1));
  CHECK(wmux_watch_start(m, "cap-c", "", on_msg, on_end, &c, &st) == NULL &&
        st.code == GRPC_STATUS_RESOURCE_EXHAUSTED);
  wmux_watch_release(wa);
  wmux_watch *wc = start(m, "cap-c", &c);
  CHECK(wc != NULL && wait_for(&c.msgs, 1));
  wmux_watch_release(wb);
  wmux_watch_release(wc);
  int64_t t0 = ts_mono_us();
  CHECK(wmux_free(m, ts_mono_us() + 2000000) == 0);
  CHECK(ts_mono_us() - t0 < (int64_t)WMUX_CLOSE_WAIT_MS * 1000,
        "ended by the cancel, not the half-close");
  CHECK(atomic_load(&srv.half_closes) >= 1);
  CHECK(wait_for(&srv.calls_done, atomic_load(&srv.calls)), "the call did not end at wmux_free");
}

int main(void) {
  log_init("wmux_test");
  static rpc_handler_fn handlers[16];
  static rpc_stream_handler_fn streams[16];
  const ProtobufCServiceDescriptor *d = &cruddur__messages__v1__messages_service__descriptor;
  CHECK(d->n_methods <= 16);
  for (unsigned i = 0; i < d->n_methods && i < 16; i++) {
    if (strcmp(d->methods[i].name, "WatchMany") == 0)
      streams[i] = srv_watch_many;
    else if (strcmp(d->methods[i].name, "WatchEvents") == 0)
      streams[i] = srv_stream;
    else
      handlers[i] = srv_unary;
  }
  rpc_service svc = {d, handlers, streams};
  rpc_server_config cfg = {0};
  cfg.listen = "127.0.0.1:0";
  cfg.services = &svc;
  cfg.n_services = 1;
  cfg.workers = 2;
  cfg.drain_ms = 2000;
  rpc_server *server = NULL;
  CHECK(rpc_server_start(&cfg, &server) == 0);
  if (server == NULL) return 1;
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", rpc_server_port(server));
  rpc_channel *ch = rpc_channel_open_streams(target);
  wmux *m = NULL;
  CHECK(wmux_new(ch, 100, &m) == 0);

  test_share_route_cancel(m);
  test_server_ends_a_watch(m);
  test_on_msg_stops(m);
  test_call_end_and_backoff(m);
  CHECK(wmux_free(m, ts_mono_us() + 2000000) == 0);
  test_cap(ch);

  rpc_server_shutdown(server);
  rpc_server_wait(server);
  rpc_server_destroy(server);
  rpc_channel_close(ch);
  if (failures != 0) {
    fprintf(stderr, "wmux_test: %d failure(s)\n", failures);
    return 1;
  }
  fprintf(stderr, "wmux_test: all passed\n");
  return 0;
}
