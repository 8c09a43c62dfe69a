/* server.c - unary gRPC services on the gRPC C core.
 *
 * Threads: one poller drains the server's single NEXT completion queue and
 * never blocks on application work: it accepts calls, re-arms requests,
 * answers unknown methods, drives reflection streams and frees finished
 * calls. Unary handlers run on a fixed pool of workers fed by a bounded
 * queue; a worker starts the call's final batch itself (grpc_call_start_batch
 * is thread-safe), and the poller frees the call when that batch completes.
 *
 * Shutdown (rpc_server_wait): grpc_server_shutdown_and_notify, wait for the
 * in-flight calls up to drain_ms, grpc_server_cancel_all_calls if some are
 * left, wait for the shutdown tag, stop the workers, shut the queue down and
 * let the poller drain it; rpc_server_destroy then destroys server and queue.
 */
#define _GNU_SOURCE /* pipe2 */
#include "rpc_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "cruddur/log.h"
#include "cruddur/ts.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"

/* Requests kept armed per registered method: enough that a burst of calls
 * does not wait for the poller to re-arm between them. */
#define RPC_ARMED_PER_METHOD 8
/* Generic (unknown method) requests kept armed. */
#define RPC_ARMED_GENERIC 2
#define RPC_DEFAULT_QUEUE 1024
#define RPC_DEFAULT_DRAIN_MS 10000
#define RPC_DEFAULT_MAX_RECV (1 << 20)
#define RPC_DEFAULT_MAX_CONN_AGE_MS (5 * 60 * 1000)
#define RPC_MAX_WORKERS 256
#define RPC_DEFAULT_MAX_STREAMS 16384
#define RPC_DEFAULT_STREAM_QUEUE 64
/* Longest method path copied into logs for unknown methods. */
#define RPC_LOG_METHOD_MAX 200
/* Status messages are cut here (they travel in an HTTP/2 trailer). */
#define RPC_STATUS_MSG_MAX 512

/* ======================================================================
 * Arena
 * ==================================================================== */

#define RPC_ARENA_CHUNK 4096
/* A call's memory is bounded by the request size cap and what handlers
 * build; this cap turns a runaway handler into a clear abort, not OOM. */
#define RPC_ARENA_CAP ((size_t)256 << 20)

/* The call's memory (lib/core arena), aborting on out-of-memory or the cap
 * as gRPC core itself does, so handlers never see NULL. */
static void *call_alloc(rpc_call *c, size_t n) {
  void *p = arena_alloc(&c->arena, n);
  if (p == NULL) {
    fprintf(stderr, "rpc: call arena: out of memory or over the cap (%zu bytes)\n",
            RPC_ARENA_CAP);
    abort();
  }
  return p;
}

/* protobuf-c allocator over the call's arena: requests are decoded into it
 * and vanish with the call. */
static void *arena_pc_alloc(void *data, size_t n) {
  return call_alloc(data, n);
}
static void arena_pc_free(void *data, void *p) {
  (void)data;
  (void)p; /* freed with the arena */
}

void *rpc_call_alloc(rpc_call *call, size_t n) {
  return memset(call_alloc(call, n), 0, n);
}

char *rpc_call_strndup(rpc_call *call, const char *s, size_t n) {
  char *d = call_alloc(call, n + 1);
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *rpc_call_strdup(rpc_call *call, const char *s) {
  if (s == NULL) return NULL;
  return rpc_call_strndup(call, s, strlen(s));
}

ProtobufCMessage *rpc_call_new_message(rpc_call *call,
                                       const ProtobufCMessageDescriptor *desc) {
  ProtobufCMessage *m = call_alloc(call, desc->sizeof_message);
  desc->message_init(m);
  return m;
}

/* ======================================================================
 * Call accessors
 * ==================================================================== */

grpc_status_code rpc_call_fail(rpc_call *call, grpc_status_code code,
                               const char *fmt, ...) {
  char *buf = call_alloc(call, RPC_STATUS_MSG_MAX);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, RPC_STATUS_MSG_MAX, fmt, ap);
  va_end(ap);
  call->status_msg = buf;
  return code;
}

const char *rpc_call_request_id(const rpc_call *call) {
  return call->request_id;
}

static int deadline_is_infinite(gpr_timespec d) {
  return d.tv_sec == INT64_MAX || d.clock_type == GPR_TIMESPAN;
}

int64_t rpc_call_remaining_ms(const rpc_call *call) {
  if (atomic_load(&call->srv->cancelled_all)) return 0;
  if (deadline_is_infinite(call->deadline)) return INT64_MAX / 2;
  gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
  gpr_timespec dl = gpr_convert_clock_type(call->deadline, GPR_CLOCK_MONOTONIC);
  if (gpr_time_cmp(dl, now) <= 0) return 0;
  return gpr_time_to_millis(gpr_time_sub(dl, now));
}

int rpc__call_expired(const rpc_call *call) {
  if (deadline_is_infinite(call->deadline)) return 0;
  gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
  gpr_timespec dl = gpr_convert_clock_type(call->deadline, GPR_CLOCK_MONOTONIC);
  return gpr_time_cmp(dl, now) <= 0;
}

void *rpc_call_user(const rpc_call *call) { return call->srv->cfg.user; }

const char *rpc_status_name(grpc_status_code code) {
  static const char *const names[] = {
      "OK",        "CANCELLED",          "UNKNOWN",
      "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS",   "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED",      "OUT_OF_RANGE",
      "UNIMPLEMENTED",    "INTERNAL",          "UNAVAILABLE",
      "DATA_LOSS",        "UNAUTHENTICATED"};
  if ((int)code < 0 || (size_t)code >= sizeof names / sizeof names[0])
    return "UNKNOWN";
  return names[code];
}

/* x-request-id: 1 to 128 of [A-Za-z0-9._-]; anything else counts as absent
 * (it is echoed and logged, so it must be harmless). */
int rpc__request_id_valid(const unsigned char *p, size_t n) {
  if (n < 1 || n > RPC_REQUEST_ID_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = p[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
      return 0;
  }
  return 1;
}

static void read_request_id(rpc_call *c) {
  c->request_id[0] = '\0';
  for (size_t i = 0; i < c->recv_md.count; i++) {
    const grpc_metadata *m = &c->recv_md.metadata[i];
    if (grpc_slice_str_cmp(m->key, "x-request-id") != 0) continue;
    size_t n = GRPC_SLICE_LENGTH(m->value);
    if (rpc__request_id_valid(GRPC_SLICE_START_PTR(m->value), n)) {
      memcpy(c->request_id, GRPC_SLICE_START_PTR(m->value), n);
      c->request_id[n] = '\0';
    }
    return; /* the first one counts */
  }
}

/* ======================================================================
 * Call lifecycle
 * ==================================================================== */

void rpc__call_prepare_md(rpc_call *c) {
  if (c->n_send_md > 0 || c->request_id[0] == '\0') return;
  c->send_md[0].key = grpc_slice_from_static_string("x-request-id");
  c->send_md[0].value = grpc_slice_from_copied_string(c->request_id);
  c->n_send_md = 1;
}

void rpc__call_free(rpc_call *c) {
  if (c == NULL) return;
  if (c->call != NULL) grpc_call_unref(c->call);
  grpc_metadata_array_destroy(&c->recv_md);
  if (c->method == NULL) grpc_call_details_destroy(&c->details);
  if (c->recv_buf != NULL) grpc_byte_buffer_destroy(c->recv_buf);
  if (c->send_buf != NULL) grpc_byte_buffer_destroy(c->send_buf);
  for (size_t i = 0; i < c->n_send_md; i++) {
    grpc_slice_unref(c->send_md[i].key);
    grpc_slice_unref(c->send_md[i].value);
  }
  if (c->has_status_slice) grpc_slice_unref(c->status_slice);
  free(c->log_method);
  arena_free(&c->arena);
  free(c);
}

void rpc__call_log(rpc_call *c) {
  grpc_status_code st = c->status;
  if (c->cancelled && st == GRPC_STATUS_OK)
    st = rpc__call_expired(c) ? GRPC_STATUS_DEADLINE_EXCEEDED : GRPC_STATUS_CANCELLED;
  const char *method = c->method != NULL ? c->method->path
                       : c->log_method != NULL ? c->log_method
                                               : "?";
  log_request("rpc", method, rpc_status_name(st), ts_mono_us() - c->start_us,
              c->request_id[0] != '\0' ? c->request_id : NULL);
}

void rpc__call_finish(rpc_call *c, grpc_status_code code, const char *msg) {
  grpc_op ops[4];
  size_t n = 0;
  memset(ops, 0, sizeof ops);
  c->status = code;
  rpc__call_prepare_md(c);

  ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].data.send_initial_metadata.count = c->n_send_md;
  ops[n].data.send_initial_metadata.metadata = c->send_md;
  n++;
  if (code == GRPC_STATUS_OK && c->send_buf != NULL) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = c->send_buf;
    n++;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  if (code != GRPC_STATUS_OK && c->handler_ran) {
    /* The handler ran, so the call may have had effects: a client retry
     * policy must not repeat it (a negative push-back means "do not retry",
     * gRFC A6). Failures before any handler (shutting down, queue full, a
     * passed deadline) carry none and may be retried elsewhere. */
    c->trail_md[0].key = grpc_slice_from_static_string("grpc-retry-pushback-ms");
    c->trail_md[0].value = grpc_slice_from_static_string("-1");
    ops[n].data.send_status_from_server.trailing_metadata_count = 1;
    ops[n].data.send_status_from_server.trailing_metadata = c->trail_md;
  }
  if (msg != NULL && msg[0] != '\0' && !c->has_status_slice) {
    size_t len = strnlen(msg, RPC_STATUS_MSG_MAX);
    c->status_slice = grpc_slice_from_copied_buffer(msg, len);
    c->has_status_slice = 1;
  }
  if (c->has_status_slice)
    ops[n].data.send_status_from_server.status_details = &c->status_slice;
  n++;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
  n++;

  c->tag.kind = RPC_TAG_FINISH;
  grpc_call_error err = grpc_call_start_batch(c->call, ops, n, &c->tag, NULL);
  if (err != GRPC_CALL_OK) {
    /* No completion will come: this is the last owner. */
    log_error("rpc: start_batch failed (%d) for %s", (int)err,
              c->method != NULL ? c->method->path : "generic call");
    c->cancelled = 1;
    rpc__call_log(c);
    rpc__call_free(c);
  }
}

/* ======================================================================
 * Arming requests
 * ==================================================================== */

static rpc_call *call_new(rpc_server *srv, const rpc_method *m) {
  rpc_call *c = calloc(1, sizeof *c);
  if (c != NULL) c->arena = (arena)ARENA_INIT(RPC_ARENA_CHUNK, RPC_ARENA_CAP);
  if (c == NULL) return NULL;
  c->srv = srv;
  c->method = m;
  grpc_metadata_array_init(&c->recv_md);
  if (m == NULL) grpc_call_details_init(&c->details);
  return c;
}

/* 1 when gRPC reads the method's (single) request with the call: not for
 * streamed requests, which sstream.c and reflection.c read themselves. */
static int method_reads_request(const rpc_method *m) {
  return m->kind == RPC_METHOD_UNARY || m->kind == RPC_METHOD_SSTREAM;
}

/* Arms one request for method m (NULL: the generic request). Returns 0, also
 * when the server is shutting down (nothing armed then), or -1. */
static int arm(rpc_server *srv, const rpc_method *m) {
  rpc_call *c = call_new(srv, m);
  if (c == NULL) {
    log_error("rpc: out of memory arming a request");
    return -1;
  }
  grpc_call_error err;
  /* Holding mu orders arming against rpc_server_wait's shutdown call, so no
   * request is armed after the server started shutting down. */
  pthread_mutex_lock(&srv->mu);
  if (srv->shutting_down) {
    pthread_mutex_unlock(&srv->mu);
    rpc__call_free(c);
    return 0;
  }
  if (m == NULL) {
    c->tag.kind = RPC_TAG_GENERIC;
    err = grpc_server_request_call(srv->server, &c->call, &c->details,
                                   &c->recv_md, srv->cq, srv->cq, &c->tag);
  } else {
    c->tag.kind = RPC_TAG_REQUEST;
    err = grpc_server_request_registered_call(
        srv->server, m->handle, &c->call, &c->deadline, &c->recv_md,
        method_reads_request(m) ? &c->recv_buf : NULL, srv->cq, srv->cq,
        &c->tag);
  }
  pthread_mutex_unlock(&srv->mu);
  if (err != GRPC_CALL_OK) {
    log_error("rpc: cannot arm a request for %s (%d)",
              m != NULL ? m->path : "unknown methods", (int)err);
    rpc__call_free(c);
    return -1;
  }
  return 0;
}

/* ======================================================================
 * Workers
 * ==================================================================== */

ProtobufCMessage *rpc__call_unpack(rpc_call *c, const ProtobufCMessageDescriptor *desc,
                                   grpc_byte_buffer *buf) {
  rpc__bytes in;
  if (rpc__bytes_open(&in, buf) != 0) return NULL; /* compressed badly */
  ProtobufCAllocator alloc = {arena_pc_alloc, arena_pc_free, c};
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, &alloc, in.len, in.data);
  rpc__bytes_close(&in);
  return m != NULL && !rpc__pb_has_field0(m) ? m : NULL;
}

ProtobufCMessage *rpc__call_decode(rpc_call *c) {
  const ProtobufCMethodDescriptor *md = c->method->desc;
  ProtobufCMessage *req = rpc__call_unpack(c, md->input, c->recv_buf);
  if (req == NULL) {
    char msg[256];
    snprintf(msg, sizeof msg, "request is not a valid %s", md->input->name);
    rpc__call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, msg);
  }
  return req;
}

static void run_unary(rpc_call *c) {
  rpc_server *srv = c->srv;
  const ProtobufCMethodDescriptor *md = c->method->desc;

  if (rpc__call_expired(c)) {
    rpc__call_finish(c, GRPC_STATUS_DEADLINE_EXCEEDED,
                     "deadline passed before the call was handled");
    return;
  }
  if (atomic_load(&srv->cancelled_all)) {
    rpc__call_finish(c, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
    return;
  }

  ProtobufCMessage *req = rpc__call_decode(c);
  if (req == NULL) return;

  ProtobufCMessage *resp = rpc_call_new_message(c, md->output);
  c->status_msg = NULL;
  grpc_status_code code = c->method->handler(c, req, resp);
  c->handler_ran = 1;
  if ((int)code < 0 || (int)code > GRPC_STATUS_UNAUTHENTICATED)
    code = GRPC_STATUS_UNKNOWN;
  if (code != GRPC_STATUS_OK) {
    rpc__call_finish(c, code,
                     c->status_msg != NULL ? c->status_msg : rpc_status_name(code));
    return;
  }
  c->send_buf = rpc__pack(resp);
  rpc__call_finish(c, GRPC_STATUS_OK, NULL);
}

static void *worker_main(void *arg) {
  rpc_server *srv = arg;
  pthread_mutex_lock(&srv->mu);
  for (;;) {
    while (srv->q_len == 0 && !srv->workers_stop)
      pthread_cond_wait(&srv->work_cv, &srv->mu);
    if (srv->q_len == 0) break; /* stop requested and nothing left */
    rpc_work w = srv->queue[srv->q_head];
    srv->q_head = (srv->q_head + 1) % srv->q_cap;
    srv->q_len--;
    srv->busy++;
    pthread_mutex_unlock(&srv->mu);
    if (w.call == NULL)
      w.fn(w.arg);
    else if (w.call->method->kind == RPC_METHOD_UNARY)
      run_unary(w.call);
    else
      rpc__sstream_run(w.call);
    pthread_mutex_lock(&srv->mu);
    srv->busy--;
  }
  pthread_mutex_unlock(&srv->mu);
  return NULL;
}

/* ======================================================================
 * Poller
 * ==================================================================== */

static void on_request(rpc_server *srv, rpc_call *c, int ok) {
  if (!ok) { /* the server is shutting down: no call was accepted */
    rpc__call_free(c);
    return;
  }
  (void)arm(srv, c->method); /* replace the request this call used up */
  c->start_us = ts_mono_us();
  read_request_id(c);

  if (c->method->kind == RPC_METHOD_REFLECTION) {
    rpc__reflection_begin(c);
    return;
  }
  if (rpc__call_expired(c)) {
    rpc__call_finish(c, GRPC_STATUS_DEADLINE_EXCEEDED,
                     "deadline passed before the call was handled");
    return;
  }
  /* Streamed requests are read later, one at a time (sstream.c). */
  if (c->recv_buf == NULL && c->method->kind != RPC_METHOD_BIDI) {
    rpc__call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "request message missing");
    return;
  }
  if (rpc__work_push(srv, (rpc_work){.call = c}) != 0)
    rpc__call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
                     "server busy: too many calls queued, retry later");
}

int rpc__work_push(rpc_server *srv, rpc_work w) {
  pthread_mutex_lock(&srv->mu);
  /* A call is still taken while shutting down (it was accepted before; the
   * worker answers it), a function is not: its stream is being ended. */
  if (srv->q_len == srv->q_cap || (w.call == NULL && srv->shutting_down)) {
    pthread_mutex_unlock(&srv->mu);
    return -1;
  }
  srv->queue[(srv->q_head + srv->q_len) % srv->q_cap] = w;
  srv->q_len++;
  pthread_mutex_unlock(&srv->mu);
  /* After the unlock: a worker woken while we still held the mutex went
   * straight back to sleep on it, two more futex calls per request. Safe:
   * workers re-check q_len under the mutex, and srv is still alive here:
   * the poller is joined before srv is freed, and a stream's submitter
   * (rpc_sstream_submit) holds the stream, which the drain waits for. */
  pthread_cond_signal(&srv->work_cv);
  return 0;
}

static void on_generic(rpc_server *srv, rpc_call *c, int ok) {
  if (!ok) {
    rpc__call_free(c);
    return;
  }
  (void)arm(srv, NULL);
  c->start_us = ts_mono_us();
  c->deadline = c->details.deadline;
  read_request_id(c);

  /* Keep the path for the log, cut and with odd bytes masked. */
  size_t n = GRPC_SLICE_LENGTH(c->details.method);
  if (n > RPC_LOG_METHOD_MAX) n = RPC_LOG_METHOD_MAX;
  c->log_method = malloc(n + 1);
  if (c->log_method != NULL) {
    const unsigned char *p = GRPC_SLICE_START_PTR(c->details.method);
    for (size_t i = 0; i < n; i++)
      c->log_method[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    c->log_method[n] = '\0';
  }
  char msg[RPC_LOG_METHOD_MAX + 64];
  snprintf(msg, sizeof msg, "method %s is not implemented by this server",
           c->log_method != NULL ? c->log_method : "?");
  rpc__call_finish(c, GRPC_STATUS_UNIMPLEMENTED, msg);
}

static void *poller_main(void *arg) {
  rpc_server *srv = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(
        srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    rpc_tag *t = ev.tag;
    rpc_call *c = (rpc_call *)t; /* the tag is the first member of its call */
    switch (t->kind) {
    case RPC_TAG_SHUTDOWN:
      pthread_mutex_lock(&srv->mu);
      srv->shutdown_done = 1;
      pthread_cond_broadcast(&srv->state_cv);
      pthread_mutex_unlock(&srv->mu);
      break;
    case RPC_TAG_REQUEST:
      on_request(srv, c, ev.success);
      break;
    case RPC_TAG_GENERIC:
      on_generic(srv, c, ev.success);
      break;
    case RPC_TAG_FINISH:
      if (!ev.success) c->cancelled = 1;
      rpc__call_log(c);
      rpc__call_free(c);
      break;
    case RPC_TAG_STREAM:
      rpc__reflection_step(c, ev.success);
      break;
    case RPC_TAG_SS_CLOSE:
    case RPC_TAG_SS_WRITE:
    case RPC_TAG_SS_STATUS:
    case RPC_TAG_SS_RECV:
      rpc__sstream_event(t, ev.success);
      break;
    }
  }
  return NULL;
}

/* ======================================================================
 * Signals
 * ==================================================================== */

/* The write end of the pipe of the server that owns SIGTERM/SIGINT. A
 * handler (not sigwait) is used so the signal is caught whichever thread it
 * lands on, including threads the application made before the server. */
static volatile sig_atomic_t g_wake_fd = -1;
static pthread_mutex_t g_sig_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction g_old_term, g_old_int;

static void on_signal(int sig) {
  int saved = errno;
  int fd = g_wake_fd;
  if (fd >= 0) {
    char b = sig == SIGTERM ? 't' : 'i';
    ssize_t w = write(fd, &b, 1);
    (void)w; /* a full pipe already holds a wake-up */
  }
  errno = saved;
}

static void signals_install(rpc_server *srv) {
  /* A caller that blocks SIGTERM takes the stop signals itself (sigwait,
   * lib/core sig.h) and calls rpc_server_shutdown: no handler then, which
   * could only run on a thread that forgot to block them. */
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, NULL, &cur);
  if (sigismember(&cur, SIGTERM)) return;
  pthread_mutex_lock(&g_sig_mu);
  if (g_wake_fd < 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    g_wake_fd = srv->wake_pipe[1];
    sigaction(SIGTERM, &sa, &g_old_term);
    sigaction(SIGINT, &sa, &g_old_int);
    srv->owns_signals = 1;
  }
  pthread_mutex_unlock(&g_sig_mu);
}

static void signals_restore(rpc_server *srv) {
  if (!srv->owns_signals) return;
  pthread_mutex_lock(&g_sig_mu);
  sigaction(SIGTERM, &g_old_term, NULL);
  sigaction(SIGINT, &g_old_int, NULL);
  g_wake_fd = -1;
  srv->owns_signals = 0;
  pthread_mutex_unlock(&g_sig_mu);
}

/* ======================================================================
 * Process-wide settings of gRPC core: its log lines, abseil's mutexes
 * ==================================================================== */

/* gRPC core logs (bind errors, assertions) become JSON lines like ours, so
 * stderr stays one JSON object per line. Levels map: ERROR, INFO, DEBUG. */
static void grpc_log_json(gpr_log_func_args *a) {
  const char *file = a->file != NULL ? strrchr(a->file, '/') : NULL;
  file = file != NULL ? file + 1 : (a->file != NULL ? a->file : "?");
  log_level lv = a->severity == GPR_LOG_SEVERITY_ERROR  ? LOG_ERROR
                 : a->severity == GPR_LOG_SEVERITY_INFO ? LOG_INFO
                                                        : LOG_DEBUG;
  log_msg(lv, "grpc %s:%d: %s", file, a->line, a->message != NULL ? a->message : "");
}

static pthread_once_t g_setup_once = PTHREAD_ONCE_INIT;
static void grpc_setup_once(void) {
  gpr_set_log_function(grpc_log_json);
  rpc__absl_deadlock_detection_off();
}

void rpc__grpc_setup(void) { pthread_once(&g_setup_once, grpc_setup_once); }

/* ======================================================================
 * Start, wait, destroy
 * ==================================================================== */

static int add_method(rpc_server *srv, const ProtobufCServiceDescriptor *sd,
                      unsigned i, rpc_method_kind kind, rpc_handler_fn fn,
                      rpc_stream_handler_fn sfn) {
  rpc_method *m = &srv->methods[srv->n_methods];
  size_t len = strlen(sd->name) + strlen(sd->methods[i].name) + 3;
  m->path = malloc(len);
  if (m->path == NULL) return -1;
  snprintf(m->path, len, "/%s/%s", sd->name, sd->methods[i].name);
  m->kind = kind;
  m->desc = &sd->methods[i];
  m->handler = fn;
  m->stream_handler = sfn;
  srv->n_methods++;
  return 0;
}

/* A unary method needs a unary handler, a streaming method of any shape
 * (as the embedded descriptor set says) a stream handler; anything else is
 * a programming error caught at start rather than a broken call later.
 * Sets *kind for the method. */
static int method_handler_fits(const rpc_service *svc, unsigned i,
                               rpc_stream_handler_fn sfn, rpc_method_kind *kind) {
  const char *sname = svc->desc->name, *mname = svc->desc->methods[i].name;
  rpc_method_shape shape = rpc__method_shape(sname, mname);
  if (sfn != NULL) {
    if (shape != RPC_SHAPE_SERVER_STREAM && !RPC_SHAPE_STREAMS_REQUESTS(shape)) {
      fprintf(stderr, "rpc: /%s/%s has a stream handler but does not stream\n", sname,
              mname);
      return 0;
    }
    *kind = shape == RPC_SHAPE_SERVER_STREAM ? RPC_METHOD_SSTREAM : RPC_METHOD_BIDI;
    return 1;
  }
  if (svc->handlers[i] == NULL) {
    fprintf(stderr, "rpc: no handler for /%s/%s\n", sname, mname);
    return 0;
  }
  if (shape != RPC_SHAPE_UNARY && shape != RPC_SHAPE_UNKNOWN) {
    fprintf(stderr, "rpc: /%s/%s streams but has a unary handler\n", sname, mname);
    return 0;
  }
  *kind = RPC_METHOD_UNARY;
  return 1;
}

static int build_methods(rpc_server *srv) {
  const rpc_server_config *cfg = &srv->cfg;
  size_t total = 0;
  for (size_t s = 0; s < cfg->n_services; s++) total += cfg->services[s].desc->n_methods;
  total += grpc__health__v1__health__descriptor.n_methods + 2;
  srv->methods = calloc(total, sizeof *srv->methods);
  if (srv->methods == NULL) return -1;

  for (size_t s = 0; s < cfg->n_services; s++) {
    const rpc_service *svc = &cfg->services[s];
    for (unsigned i = 0; i < svc->desc->n_methods; i++) {
      rpc_stream_handler_fn sfn =
          svc->stream_handlers != NULL ? svc->stream_handlers[i] : NULL;
      rpc_method_kind kind;
      if (!method_handler_fits(svc, i, sfn, &kind)) return -1;
      if (add_method(srv, svc->desc, i, kind, svc->handlers[i], sfn) != 0) return -1;
    }
  }
  const ProtobufCServiceDescriptor *h = &grpc__health__v1__health__descriptor;
  for (unsigned i = 0; i < h->n_methods; i++) {
    int watch = strcmp(h->methods[i].name, "Watch") == 0;
    if (add_method(srv, h, i, watch ? RPC_METHOD_SSTREAM : RPC_METHOD_UNARY,
                   watch ? NULL : rpc__health_handler(h->methods[i].name),
                   watch ? rpc__health_watch : NULL) != 0)
      return -1;
  }
  if (add_method(srv, &grpc__reflection__v1__server_reflection__descriptor, 0,
                 RPC_METHOD_REFLECTION, NULL, NULL) != 0 ||
      add_method(srv, &grpc__reflection__v1alpha__server_reflection__descriptor, 0,
                 RPC_METHOD_REFLECTION, NULL, NULL) != 0)
    return -1;
  return 0;
}

static int build_reflection(rpc_server *srv) {
  size_t n = srv->cfg.n_services + 3;
  const char **names = calloc(n, sizeof *names);
  if (names == NULL) return -1;
  size_t k = 0;
  for (size_t s = 0; s < srv->cfg.n_services; s++)
    names[k++] = srv->cfg.services[s].desc->name;
  names[k++] = grpc__health__v1__health__descriptor.name;
  names[k++] = grpc__reflection__v1__server_reflection__descriptor.name;
  names[k++] = grpc__reflection__v1alpha__server_reflection__descriptor.name;
  int rc = rpc__reflection_new(names, k, &srv->refl);
  free(names);
  return rc;
}

static int config_valid(const rpc_server_config *cfg) {
  if (cfg == NULL || cfg->listen == NULL || cfg->listen[0] == '\0') {
    fprintf(stderr, "rpc: no listen address configured\n");
    return 0;
  }
  if (cfg->n_services > 0 && cfg->services == NULL) {
    fprintf(stderr, "rpc: services missing\n");
    return 0;
  }
  for (size_t s = 0; s < cfg->n_services; s++) {
    if (cfg->services[s].desc == NULL || cfg->services[s].handlers == NULL) {
      fprintf(stderr, "rpc: service %zu has no descriptor or handlers\n", s);
      return 0;
    }
  }
  return 1;
}

/* Frees what rpc_server_start built, in reverse. Threads must be stopped. */
static void server_free(rpc_server *srv) {
  if (srv->server != NULL) grpc_server_destroy(srv->server);
  if (srv->cq != NULL) {
    if (!srv->cq_shut) {
      /* Never drained by a poller: nothing was armed, so this is quick. */
      grpc_completion_queue_shutdown(srv->cq);
      while (grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                        NULL).type != GRPC_QUEUE_SHUTDOWN) {
      }
    }
    grpc_completion_queue_destroy(srv->cq);
  }
  if (srv->grpc_inited) grpc_shutdown();
  for (size_t i = 0; i < srv->n_methods; i++) free(srv->methods[i].path);
  free(srv->methods);
  rpc__reflection_free(srv->refl);
  free(srv->queue);
  free(srv->workers);
  if (srv->wake_pipe[0] >= 0) close(srv->wake_pipe[0]);
  if (srv->wake_pipe[1] >= 0) close(srv->wake_pipe[1]);
  pthread_mutex_destroy(&srv->mu);
  pthread_cond_destroy(&srv->work_cv);
  pthread_cond_destroy(&srv->state_cv);
  free(srv);
}

/* Stops threads started so far during a failed start (server not started). */
static void stop_threads(rpc_server *srv, int n_workers) {
  pthread_mutex_lock(&srv->mu);
  srv->workers_stop = 1;
  pthread_cond_broadcast(&srv->work_cv);
  pthread_mutex_unlock(&srv->mu);
  for (int i = 0; i < n_workers; i++) pthread_join(srv->workers[i], NULL);
  if (srv->poller_started) {
    grpc_completion_queue_shutdown(srv->cq);
    srv->cq_shut = 1;
    pthread_join(srv->poller, NULL);
    srv->poller_started = 0;
  }
}

int rpc_server_start(const rpc_server_config *cfg, rpc_server **out) {
  if (!config_valid(cfg) || out == NULL) return -1;
  rpc_server *srv = calloc(1, sizeof *srv);
  if (srv == NULL) {
    fprintf(stderr, "rpc: out of memory\n");
    return -1;
  }
  srv->cfg = *cfg;
  srv->wake_pipe[0] = srv->wake_pipe[1] = -1;
  if (srv->cfg.workers <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    srv->cfg.workers = n > 0 ? (int)n : 2;
  }
  if (srv->cfg.workers > RPC_MAX_WORKERS) srv->cfg.workers = RPC_MAX_WORKERS;
  if (srv->cfg.queue_max <= 0) srv->cfg.queue_max = RPC_DEFAULT_QUEUE;
  if (srv->cfg.drain_ms <= 0) srv->cfg.drain_ms = RPC_DEFAULT_DRAIN_MS;
  if (srv->cfg.max_recv_bytes <= 0) srv->cfg.max_recv_bytes = RPC_DEFAULT_MAX_RECV;
  if (srv->cfg.max_conn_age_ms <= 0) srv->cfg.max_conn_age_ms = RPC_DEFAULT_MAX_CONN_AGE_MS;
  if (srv->cfg.max_streams <= 0) srv->cfg.max_streams = RPC_DEFAULT_MAX_STREAMS;
  if (srv->cfg.stream_queue_max <= 0) srv->cfg.stream_queue_max = RPC_DEFAULT_STREAM_QUEUE;
  atomic_init(&srv->cancelled_all, 0);
  srv->shutdown_tag.kind = RPC_TAG_SHUTDOWN;

  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&srv->mu, NULL);
  pthread_cond_init(&srv->work_cv, NULL);
  pthread_cond_init(&srv->state_cv, &ca);
  pthread_condattr_destroy(&ca);

  if (pipe2(srv->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    fprintf(stderr, "rpc: pipe: %s\n", strerror(errno));
    server_free(srv);
    return -1;
  }
  srv->q_cap = (size_t)srv->cfg.queue_max;
  srv->queue = calloc(srv->q_cap, sizeof *srv->queue);
  srv->workers = calloc((size_t)srv->cfg.workers, sizeof *srv->workers);
  if (srv->queue == NULL || srv->workers == NULL || build_methods(srv) != 0) {
    fprintf(stderr, "rpc: cannot set up the method table\n");
    server_free(srv);
    return -1;
  }
  if (build_reflection(srv) != 0) {
    server_free(srv);
    return -1;
  }

  /* Threads made from here on (ours and gRPC's) inherit a mask with
   * SIGTERM/SIGINT blocked, so the signal lands on an application thread
   * and our handler only writes to the pipe. */
  sigset_t block, saved;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, &saved);

  rpc__grpc_setup();
  grpc_init();
  srv->grpc_inited = 1;
  /* Keepalive pings from our clients (rpc_channel_open: every 20 s, also
   * without calls) are allowed; by default a server accepts a ping without
   * data only every 5 min and answers the third early one with GOAWAY. */
  const struct {
    const char *key;
    int value;
  } opts[] = {
      {GRPC_ARG_ALLOW_REUSEPORT, 0},
      /* Three per-call costs that buy nothing here (instructions of each
       * users-svc GetUser, tests/bench/callgrind, lib/rpc/README.md):
       * channelz's call counters, read by nobody (we serve no channelz
       * service; 3,200); the compression filter, while we never compress
       * a response (compressed requests are still read; 600); and the
       * deadline filter's per-call timer, which only cancels a call whose
       * client deadline passed (4,100): every gRPC client cancels such a
       * call itself (RST_STREAM, which we see as a cancel), handlers bound
       * their work by rpc_call_remaining_ms, and a call whose deadline
       * passed before it ran gets DEADLINE_EXCEEDED from run_unary. */
      {GRPC_ARG_ENABLE_CHANNELZ, 0},
      {GRPC_ARG_ENABLE_PER_MESSAGE_COMPRESSION, 0},
      {GRPC_ARG_ENABLE_DEADLINE_CHECKS, 0},
      {GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, srv->cfg.max_recv_bytes},
      {GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1},
      {GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, RPC_PING_MIN_INTERVAL_MS},
      {GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2},
      /* A client keeps its connections for as long as they work, so new
       * replicas behind a headless Service would get no calls: aged
       * connections end with a GOAWAY (calls not yet sent move to another
       * connection), and the client re-resolves the name. */
      {GRPC_ARG_MAX_CONNECTION_AGE_MS, srv->cfg.max_conn_age_ms},
      {GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, srv->cfg.drain_ms},
  };
  enum { N_OPTS = sizeof opts / sizeof opts[0] };
  grpc_arg args[N_OPTS];
  for (size_t i = 0; i < N_OPTS; i++) {
    args[i].type = GRPC_ARG_INTEGER;
    args[i].key = (char *)opts[i].key;
    args[i].value.integer = opts[i].value;
  }
  grpc_channel_args chargs = {N_OPTS, args};
  srv->server = grpc_server_create(&chargs, NULL);
  srv->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(srv->server, srv->cq, NULL);

  int ok = 1;
  for (size_t i = 0; i < srv->n_methods && ok; i++) {
    rpc_method *m = &srv->methods[i];
    m->handle = grpc_server_register_method(
        srv->server, m->path, NULL,
        method_reads_request(m) ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER
                                : GRPC_SRM_PAYLOAD_NONE,
        0);
    if (m->handle == NULL) {
      fprintf(stderr, "rpc: cannot register %s (registered twice?)\n", m->path);
      ok = 0;
    }
  }

  int started_workers = 0;
  if (ok) {
    if (pthread_create(&srv->poller, NULL, poller_main, srv) != 0) {
      fprintf(stderr, "rpc: cannot start the poller thread\n");
      ok = 0;
    } else {
      srv->poller_started = 1;
    }
  }
  for (; ok && started_workers < srv->cfg.workers; started_workers++) {
    if (pthread_create(&srv->workers[started_workers], NULL, worker_main, srv) != 0) {
      fprintf(stderr, "rpc: cannot start worker thread %d\n", started_workers);
      ok = 0;
      break;
    }
  }
  /* Bind last: a server with a listener must be started before it can be
   * destroyed, and nothing after this point can fail. */
  if (ok) {
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    srv->port = grpc_server_add_http2_port(srv->server, srv->cfg.listen, creds);
    grpc_server_credentials_release(creds);
    if (srv->port == 0) {
      fprintf(stderr,
              "rpc: cannot listen on %s: address already in use or not a valid "
              "host:port\n",
              srv->cfg.listen);
      ok = 0;
    }
  }
  if (!ok) {
    stop_threads(srv, started_workers);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    server_free(srv);
    return -1;
  }
  srv->n_workers = started_workers;

  grpc_server_start(srv->server);
  pthread_sigmask(SIG_SETMASK, &saved, NULL);

  int armed = 0;
  for (size_t i = 0; i < srv->n_methods; i++)
    for (int k = 0; k < RPC_ARMED_PER_METHOD; k++)
      armed += arm(srv, &srv->methods[i]) == 0;
  for (int k = 0; k < RPC_ARMED_GENERIC; k++) armed += arm(srv, NULL) == 0;
  if (armed == 0) log_warn("rpc: no request could be armed");

  signals_install(srv);
  *out = srv;
  return 0;
}

int rpc_server_port(const rpc_server *srv) { return srv != NULL ? srv->port : 0; }

int rpc_server_open_streams(rpc_server *srv) {
  pthread_mutex_lock(&srv->mu);
  int n = srv->n_streams;
  pthread_mutex_unlock(&srv->mu);
  return n;
}

void rpc_server_shutdown(rpc_server *srv) {
  if (srv == NULL) return;
  char b = 'x';
  ssize_t w = write(srv->wake_pipe[1], &b, 1);
  (void)w; /* a full pipe already holds a wake-up */
}

/* Stops accepting, waits for in-flight calls within drain_ms, cancels the
 * rest, stops workers and the poller. Idempotent. */
static void server_drain(rpc_server *srv) {
  if (srv->drained) return;
  pthread_mutex_lock(&srv->mu);
  srv->shutting_down = 1;
  grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
  pthread_mutex_unlock(&srv->mu);
  /* Streams never end by themselves: end them now (UNAVAILABLE, reconnect),
   * so the shutdown tag can come within the budget. */
  rpc__sstreams_end_all(srv);

  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += srv->cfg.drain_ms / 1000;
  until.tv_nsec += (long)(srv->cfg.drain_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&srv->mu);
  while (!srv->shutdown_done) {
    if (pthread_cond_timedwait(&srv->state_cv, &srv->mu, &until) == ETIMEDOUT) break;
  }
  if (!srv->shutdown_done) {
    pthread_mutex_unlock(&srv->mu);
    log_warn("rpc: drain budget of %d ms used up; cancelling the calls left",
             srv->cfg.drain_ms);
    atomic_store(&srv->cancelled_all, 1);
    grpc_server_cancel_all_calls(srv->server);
    pthread_mutex_lock(&srv->mu);
    /* Handlers still running finish (rpc_call_remaining_ms now says 0);
     * their batches fail fast on the cancelled calls. A handler that never
     * returns holds its call, and the server cannot be torn down under it:
     * say so every few seconds instead of hanging silently. */
    while (!srv->shutdown_done) {
      struct timespec next;
      clock_gettime(CLOCK_MONOTONIC, &next);
      next.tv_sec += 5;
      if (pthread_cond_timedwait(&srv->state_cv, &srv->mu, &next) == ETIMEDOUT &&
          !srv->shutdown_done)
        log_warn("rpc: shutdown still waiting for %d handler(s) to return", srv->busy);
    }
  }
  /* Stream objects outlive their calls while holders keep references; they
   * hold grpc_call objects, so the server waits for their release. */
  rpc__sstreams_wait_freed(srv);
  srv->workers_stop = 1;
  pthread_cond_broadcast(&srv->work_cv);
  pthread_mutex_unlock(&srv->mu);
  for (int i = 0; i < srv->n_workers; i++) pthread_join(srv->workers[i], NULL);
  srv->n_workers = 0;
  rpc__health_watch_stop(srv);
  /* Every remaining event (final batches of the last calls) is consumed by
   * the poller before it sees GRPC_QUEUE_SHUTDOWN. */
  grpc_server_destroy(srv->server);
  srv->server = NULL;
  grpc_completion_queue_shutdown(srv->cq);
  srv->cq_shut = 1;
  pthread_join(srv->poller, NULL);
  srv->poller_started = 0;
  srv->drained = 1;
}

void rpc_server_wait(rpc_server *srv) {
  if (srv == NULL || srv->drained) return;
  struct pollfd p = {.fd = srv->wake_pipe[0], .events = POLLIN};
  for (;;) {
    int r = poll(&p, 1, -1);
    if (r > 0) break;
    if (r < 0 && errno != EINTR) {
      log_error("rpc: poll on the wake-up pipe failed: %s", strerror(errno));
      break;
    }
  }
  char why = '?';
  if (read(srv->wake_pipe[0], &why, 1) != 1) why = '?';
  log_info("rpc: %s, draining calls (up to %d ms)",
           why == 't' ? "SIGTERM received"
           : why == 'i' ? "SIGINT received"
                        : "shutdown requested",
           srv->cfg.drain_ms);
  server_drain(srv);
}

void rpc_server_destroy(rpc_server *srv) {
  if (srv == NULL) return;
  server_drain(srv); /* no-op after rpc_server_wait */
  signals_restore(srv);
  server_free(srv);
}
