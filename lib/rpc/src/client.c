/* client.c - unary gRPC calls and streams on the C core.
 *
 * Each unary call makes its own PLUCK completion queue: the channel is shared by
 * every thread, the queue is not, so callers never wait on each other's
 * events. The deadline is enforced by gRPC core (the batch always completes
 * by then), so the pluck waits without a timeout of its own.
 */
#include "cruddur/rpc_client.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "cruddur/rpc.h"
#include "cruddur/ts.h"
#include "rpc_internal.h"
#include "grpc/health/v1/health.pb-c.h"

/* Path buffer: "/" + service + "/" + method. */
#define RPC_PATH_MAX 512
/* Responses larger than this are refused by the channel (RESOURCE_EXHAUSTED). */
#define RPC_CLIENT_MAX_RECV (16 << 20)
/* Reconnect backoff: first retry after 100 ms, growing (x1.6, jittered) to at
 * most 1 s between attempts. */
#define RPC_CLIENT_BACKOFF_INITIAL_MS 100
#define RPC_CLIENT_BACKOFF_MAX_MS 1000
/* The least time one connection attempt is given. */
#define RPC_CLIENT_CONNECT_TIMEOUT_MS 1000

/* After a call that waited for a connection (rpc_channel_open_retry) failed
 * without one, calls fail fast for this long. */
#define RPC_READY_QUIET_US (5 * 1000000LL)

struct rpc_channel {
  grpc_channel *ch; /* owned; grpc_channel_destroy */
  /* Streams (rpc_stream_start): one NEXT queue and the thread draining it,
   * made with the first stream, under mu. */
  pthread_mutex_t mu;
  grpc_completion_queue *scq; /* owned */
  pthread_t sth;
  int sth_started;
  int ready_wait;            /* rpc_channel_open_retry: wait for a connection */
  _Atomic int64_t quiet_until_us; /* monotonic: no waiting before this */
};

/* The channel's service config: round_robin, and the retry policy for
 * `paths` (rpc_channel_open_retry). Returns a malloc'ed string or NULL
 * (out of memory, a malformed path, or too many). */
static char *service_config(const char *const *paths) {
  static const char lb[] = "\"loadBalancingConfig\":[{\"round_robin\":{}}]";
  size_t n = 0, cap = sizeof lb + 512;
  for (; paths != NULL && paths[n] != NULL; n++) {
    if (n == RPC_RETRY_PATHS_MAX) return NULL;
    cap += strlen(paths[n]) + 32;
  }
  char *out = malloc(cap);
  if (out == NULL) return NULL;
  size_t len = (size_t)snprintf(out, cap, "{%s", lb);
  if (n > 0) {
    len += (size_t)snprintf(out + len, cap - len, ",\"methodConfig\":[{\"name\":[");
    for (size_t i = 0; i < n; i++) {
      /* "/pkg.Svc/Method" -> {"service":"pkg.Svc","method":"Method"} */
      const char *p = paths[i], *slash = p[0] == '/' ? strchr(p + 1, '/') : NULL;
      if (slash == NULL || slash == p + 1 || slash[1] == '\0' ||
          strpbrk(p, "\"\\") != NULL) {
        free(out);
        return NULL;
      }
      len += (size_t)snprintf(out + len, cap - len,
                              "%s{\"service\":\"%.*s\",\"method\":\"%s\"}", i ? "," : "",
                              (int)(slash - p - 1), p + 1, slash + 1);
    }
    /* CANCELLED too: gRPC core 1.51 cancels a call that reaches a server
     * after its shutdown began but before its GOAWAY reached the client,
     * without any handler seeing it (measured: replicas rolling under load).
     * maxAttempts counts the first try. Backoff 50 ms, then 100 ms (each
     * drawn at random below that): a read waits at most ~150 ms more for a
     * restarting upstream before it fails; the reconnect backoff (100 ms
     * at first) is of the same order. Throttling: each failure costs a
     * token of 10, each success gives 0.1 back, and retries stop below 5. */
    len += (size_t)snprintf(
        out + len, cap - len,
        "],\"retryPolicy\":{\"maxAttempts\":%d,\"initialBackoff\":\"0.05s\","
        "\"maxBackoff\":\"0.1s\",\"backoffMultiplier\":2,"
        "\"retryableStatusCodes\":[\"UNAVAILABLE\",\"CANCELLED\"]}}],"
        "\"retryThrottling\":{\"maxTokens\":10,\"tokenRatio\":0.1}",
        RPC_RETRY_ATTEMPTS);
  }
  snprintf(out + len, cap - len, "}");
  return out;
}

static rpc_channel *channel_open(const char *target, const char *const *retry_paths, int streams);

rpc_channel *rpc_channel_open(const char *target) { return channel_open(target, NULL, 0); }

rpc_channel *rpc_channel_open_retry(const char *target, const char *const *retry_paths) {
  return channel_open(target, retry_paths, 0);
}

rpc_channel *rpc_channel_open_streams(const char *target) { return channel_open(target, NULL, 1); }

static rpc_channel *channel_open(const char *target, const char *const *retry_paths, int streams) {
  if (target == NULL || target[0] == '\0') return NULL;
  char *config = service_config(retry_paths);
  if (config == NULL) return NULL;
  rpc_channel *c = calloc(1, sizeof *c);
  if (c == NULL) {
    free(config);
    return NULL;
  }
  pthread_mutex_init(&c->mu, NULL);
  c->ready_wait = retry_paths != NULL;
  rpc__grpc_setup();
  grpc_init(); /* reference counted; balanced in rpc_channel_close */
  /* Reconnect: gRPC's default backoff (1 s x1.6 up to 120 s) left callers
   * failing for seconds after an upstream came back; capped at 1 s, a
   * restarted upstream is used again within about a second. Calls keep
   * failing fast (UNAVAILABLE, no wait_for_ready) while it is down.
   * GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is, in gRPC core, the minimum time a
   * connection attempt may take (handshake included), not a backoff: it stays
   * at 1 s so a slow handshake on a loaded host is not cut off. A refused
   * connection fails at once regardless, and the next attempt follows the
   * backoff.
   * Keepalive: a ping every 20 s, also on idle connections (so a silently
   * dead peer is noticed before a call is sent to it), and no limit on pings
   * without data (the default of 2 would stop them on an idle connection).
   * rpc_server_start accepts this rate (RPC_PING_MIN_INTERVAL_MS there). */
  static const struct {
    const char *key;
    int value;
  } opts[] = {
      {GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, RPC_CLIENT_MAX_RECV},
      {GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, RPC_CLIENT_BACKOFF_INITIAL_MS},
      {GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, RPC_CLIENT_BACKOFF_MAX_MS},
      {GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, RPC_CLIENT_CONNECT_TIMEOUT_MS},
      {GRPC_ARG_KEEPALIVE_TIME_MS, RPC_KEEPALIVE_TIME_MS},
      {GRPC_ARG_KEEPALIVE_TIMEOUT_MS, RPC_KEEPALIVE_TIMEOUT_MS},
      {GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1},
      {GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0},
      /* Per-call costs that buy nothing here (lib/rpc/README.md): channelz
       * counters nobody reads, and the compression filter (we never
       * compress a request; answers are still decompressed). */
      {GRPC_ARG_ENABLE_CHANNELZ, 0},
      {GRPC_ARG_ENABLE_PER_MESSAGE_COMPRESSION, 0},
  };
  enum { N_OPTS = sizeof opts / sizeof opts[0] };
  grpc_arg all[N_OPTS + 2];
  size_t n = 0;
  for (; n < N_OPTS; n++) {
    all[n].type = GRPC_ARG_INTEGER;
    all[n].key = (char *)opts[n].key;
    all[n].value.integer = opts[n].value;
  }
  /* round_robin: one connection to every address the name resolves to
   * (a headless Service gives one per ready pod) and calls spread over
   * them; the default, pick_first, would send everything to one pod. */
  all[n].type = GRPC_ARG_STRING;
  all[n].key = (char *)GRPC_ARG_SERVICE_CONFIG;
  all[n++].value.string = config;
  if (streams) { /* rpc_channel_open_streams says why */
    all[n].type = GRPC_ARG_INTEGER;
    all[n].key = (char *)GRPC_ARG_ENABLE_RETRIES;
    all[n++].value.integer = 0;
  }
  grpc_channel_args args = {n, all};
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  c->ch = grpc_channel_create(target, creds, &args);
  grpc_channel_credentials_release(creds);
  free(config); /* copied by grpc_channel_create */
  if (c->ch == NULL) {
    grpc_shutdown();
    pthread_mutex_destroy(&c->mu);
    free(c);
    return NULL;
  }
  return c;
}

void rpc_channel_close(rpc_channel *ch) {
  if (ch == NULL) return;
  if (ch->sth_started) {
    /* Every stream is over (documented precondition): the queue has no
     * event left to deliver, so the thread sees the shutdown at once. */
    grpc_completion_queue_shutdown(ch->scq);
    pthread_join(ch->sth, NULL);
    grpc_completion_queue_destroy(ch->scq);
  }
  grpc_channel_destroy(ch->ch);
  pthread_mutex_destroy(&ch->mu);
  free(ch);
  grpc_shutdown();
}

static void set_status(rpc_status *st, grpc_status_code code, const char *msg,
                       size_t len) {
  if (st == NULL) return;
  st->code = code;
  if (len >= sizeof st->message) len = sizeof st->message - 1;
  memcpy(st->message, msg, len);
  st->message[len] = '\0';
}

static grpc_status_code fail_local(rpc_status *st, grpc_status_code code,
                                   const char *msg) {
  set_status(st, code, msg, strlen(msg));
  return code;
}

static void *arena_pb_alloc(void *data, size_t n) {
  return arena_alloc(data, n);
}

static void arena_pb_free(void *data, void *p) {
  (void)data;
  (void)p; /* released with the arena */
}

void rpc_arena_allocator(arena *a, ProtobufCAllocator *out) {
  out->alloc = arena_pb_alloc;
  out->free = arena_pb_free;
  out->allocator_data = a;
}

/* Whether a call on `ch` should wait for a ready connection instead of
 * failing at once (gRPC's wait_for_ready): on a channel from
 * rpc_channel_open_retry, unless a wait recently found the upstream down.
 * Waiting is safe for any method, since a call is sent once it has a
 * connection; it rides out a replica restarting or being replaced. When
 * every address failed lately, their reconnect backoff (up to 1 s) is reset
 * so a replacement that is already up is tried at once. */
static int want_ready(rpc_channel *ch) {
  if (!ch->ready_wait || ts_mono_us() < atomic_load(&ch->quiet_until_us)) return 0;
  if (grpc_channel_check_connectivity_state(ch->ch, 1) == GRPC_CHANNEL_TRANSIENT_FAILURE)
    grpc_channel_reset_connect_backoff(ch->ch);
  return 1;
}

/* After a waiting call failed for want of a connection, the next calls
 * fail fast for RPC_READY_QUIET_US: a down upstream costs one deadline per
 * period, not one per call. */
static void note_wait_result(rpc_channel *ch, grpc_status_code code) {
  if ((code == GRPC_STATUS_DEADLINE_EXCEEDED || code == GRPC_STATUS_UNAVAILABLE) &&
      grpc_channel_check_connectivity_state(ch->ch, 0) != GRPC_CHANNEL_READY)
    atomic_store(&ch->quiet_until_us, ts_mono_us() + RPC_READY_QUIET_US);
}

grpc_status_code rpc_unary(rpc_channel *ch, const ProtobufCServiceDescriptor *svc,
                           const char *method, const ProtobufCMessage *req,
                           ProtobufCMessage **resp, int64_t timeout_ms,
                           const char *request_id, rpc_status *st) {
  return rpc_unary_alloc(ch, svc, method, req, resp, timeout_ms, request_id, NULL, st);
}

/* The checks every unary call makes before anything is sent. Returns
 * GRPC_STATUS_OK and sets *md_out, or the status (st filled). */
static grpc_status_code unary_method(const ProtobufCServiceDescriptor *svc, const char *method,
                                     const ProtobufCMessage *req, int64_t timeout_ms,
                                     rpc_status *st, const ProtobufCMethodDescriptor **md_out) {
  const ProtobufCMethodDescriptor *md =
      protobuf_c_service_descriptor_get_method_by_name(svc, method);
  if (md == NULL)
    return fail_local(st, GRPC_STATUS_UNIMPLEMENTED, "unknown method name");
  if (req->descriptor != md->input)
    return fail_local(st, GRPC_STATUS_INVALID_ARGUMENT,
                      "request message has the wrong type for this method");
  /* A stream would be read as its first message, then wait for a status
   * that may never come. (A client-streaming method takes one request
   * as a stream of one.) */
  rpc_method_shape shape = rpc__method_shape(svc->name, md->name);
  if (shape == RPC_SHAPE_SERVER_STREAM)
    return fail_local(st, GRPC_STATUS_INVALID_ARGUMENT,
                      "a server-streaming method: call it with rpc_stream_start");
  if (shape == RPC_SHAPE_BIDI)
    return fail_local(st, GRPC_STATUS_INVALID_ARGUMENT,
                      "a bidirectional method: call it with rpc_stream_open");
  /* A spent budget (e.g. rpc_call_remaining_ms() == 0 upstream) fails here:
   * gRPC rounds deadlines up to the millisecond and might still deliver it. */
  if (timeout_ms <= 0)
    return fail_local(st, GRPC_STATUS_DEADLINE_EXCEEDED,
                      "deadline exceeded before the call was sent");
  *md_out = md;
  return GRPC_STATUS_OK;
}

/* rpc_unary_alloc's decoder: protobuf-c into *resp. */
typedef struct pb_unpack {
  const ProtobufCMessageDescriptor *desc;
  ProtobufCAllocator *alloc;
  ProtobufCMessage **resp;
} pb_unpack;

static int pb_unpack_fn(void *user, const uint8_t *data, size_t len) {
  pb_unpack *u = user;
  *u->resp = protobuf_c_message_unpack(u->desc, u->alloc, len, data);
  return *u->resp != NULL ? 0 : -1;
}

static grpc_status_code unary_call(rpc_channel *ch, const ProtobufCServiceDescriptor *svc,
                                   const ProtobufCMethodDescriptor *md,
                                   const ProtobufCMessage *req, int64_t timeout_ms,
                                   const char *request_id, rpc_decode_fn decode, void *user,
                                   rpc_status *st);

grpc_status_code rpc_unary_alloc(rpc_channel *ch, const ProtobufCServiceDescriptor *svc,
                                 const char *method, const ProtobufCMessage *req,
                                 ProtobufCMessage **resp, int64_t timeout_ms,
                                 const char *request_id, ProtobufCAllocator *alloc,
                                 rpc_status *st) {
  if (resp != NULL) *resp = NULL;
  if (ch == NULL || svc == NULL || method == NULL || req == NULL || resp == NULL)
    return fail_local(st, GRPC_STATUS_INVALID_ARGUMENT, "rpc_unary: missing argument");
  const ProtobufCMethodDescriptor *md = NULL;
  grpc_status_code code = unary_method(svc, method, req, timeout_ms, st, &md);
  if (code != GRPC_STATUS_OK) return code;
  pb_unpack u = {md->output, alloc, resp};
  return unary_call(ch, svc, md, req, timeout_ms, request_id, pb_unpack_fn, &u, st);
}

grpc_status_code rpc_unary_decode(rpc_channel *ch, const ProtobufCServiceDescriptor *svc,
                                  const char *method, const ProtobufCMessage *req,
                                  int64_t timeout_ms, const char *request_id,
                                  rpc_decode_fn decode, void *user, rpc_status *st) {
  if (ch == NULL || svc == NULL || method == NULL || req == NULL || decode == NULL)
    return fail_local(st, GRPC_STATUS_INVALID_ARGUMENT, "rpc_unary: missing argument");
  const ProtobufCMethodDescriptor *md = NULL;
  grpc_status_code code = unary_method(svc, method, req, timeout_ms, st, &md);
  if (code != GRPC_STATUS_OK) return code;
  return unary_call(ch, svc, md, req, timeout_ms, request_id, decode, user, st);
}

static grpc_status_code unary_call(rpc_channel *ch, const ProtobufCServiceDescriptor *svc,
                                   const ProtobufCMethodDescriptor *md,
                                   const ProtobufCMessage *req, int64_t timeout_ms,
                                   const char *request_id, rpc_decode_fn decode, void *user,
                                   rpc_status *st) {
  char path[RPC_PATH_MAX];
  int pn = snprintf(path, sizeof path, "/%s/%s", svc->name, md->name);
  if (pn < 0 || (size_t)pn >= sizeof path)
    return fail_local(st, GRPC_STATUS_INVALID_ARGUMENT, "method path too long");
  int wait_ready = want_ready(ch);

  grpc_byte_buffer *send_buf = rpc__pack(req);

  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_slice path_slice = grpc_slice_from_copied_string(path);
  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
  grpc_call *call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS,
                                             cq, path_slice, NULL, deadline, NULL);
  grpc_slice_unref(path_slice);

  grpc_metadata md_out[1];
  size_t n_md = 0;
  /* An id the server would drop anyway (or gRPC would refuse as metadata)
   * is not sent, rather than failing the call. */
  if (request_id != NULL &&
      rpc__request_id_valid((const unsigned char *)request_id, strlen(request_id))) {
    md_out[0].key = grpc_slice_from_static_string("x-request-id");
    md_out[0].value = grpc_slice_from_copied_string(request_id);
    n_md = 1;
  }
  grpc_metadata_array init_md, trail_md;
  grpc_metadata_array_init(&init_md);
  grpc_metadata_array_init(&trail_md);
  grpc_byte_buffer *recv_buf = NULL;
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  const char *error_string = NULL;

  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (wait_ready)
    ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY |
                   GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET;
  ops[0].data.send_initial_metadata.count = n_md;
  ops[0].data.send_initial_metadata.metadata = md_out;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send_buf;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv_buf;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
  ops[5].data.recv_status_on_client.status = &code;
  ops[5].data.recv_status_on_client.status_details = &details;
  ops[5].data.recv_status_on_client.error_string = &error_string;

  int tag = 0; /* any unique address: the queue is ours alone */
  grpc_call_error err = grpc_call_start_batch(call, ops, 6, &tag, NULL);
  if (err == GRPC_CALL_OK) {
    grpc_event ev = grpc_completion_queue_pluck(cq, &tag,
                                                gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
      code = GRPC_STATUS_INTERNAL;
      grpc_slice_unref(details);
      details = grpc_slice_from_static_string("call batch failed");
    }
  } else {
    code = GRPC_STATUS_INTERNAL;
    details = grpc_slice_from_static_string("cannot start the call");
  }

  if (code == GRPC_STATUS_OK) {
    rpc__bytes in;
    if (recv_buf == NULL || rpc__bytes_open(&in, recv_buf) != 0) {
      code = GRPC_STATUS_INTERNAL;
      grpc_slice_unref(details);
      details = grpc_slice_from_static_string("response message missing");
    } else {
      int bad = decode(user, in.data, in.len);
      rpc__bytes_close(&in);
      if (bad) {
        code = GRPC_STATUS_INTERNAL;
        grpc_slice_unref(details);
        details = grpc_slice_from_static_string("response cannot be decoded");
      }
    }
  }
  if (code == GRPC_STATUS_OK) {
    set_status(st, code, "", 0);
  } else if (GRPC_SLICE_LENGTH(details) > 0) {
    set_status(st, code, (const char *)GRPC_SLICE_START_PTR(details),
               GRPC_SLICE_LENGTH(details));
  } else {
    const char *name = rpc_status_name(code);
    set_status(st, code, name, strlen(name));
  }

  grpc_slice_unref(details);
  if (error_string != NULL) gpr_free((void *)error_string);
  if (recv_buf != NULL) grpc_byte_buffer_destroy(recv_buf);
  grpc_metadata_array_destroy(&init_md);
  grpc_metadata_array_destroy(&trail_md);
  for (size_t i = 0; i < n_md; i++) {
    grpc_slice_unref(md_out[i].key);
    grpc_slice_unref(md_out[i].value);
  }
  grpc_byte_buffer_destroy(send_buf);
  grpc_call_unref(call);
  if (wait_ready) note_wait_result(ch, code);
  /* The only event was plucked above, so the queue is already drained. */
  grpc_completion_queue_shutdown(cq);
  grpc_completion_queue_destroy(cq);
  return code;
}

int rpc_health_check(rpc_channel *ch, const char *service, int64_t timeout_ms) {
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)(service != NULL ? service : "");
  ProtobufCMessage *resp = NULL;
  grpc_status_code code = rpc_unary(ch, &grpc__health__v1__health__descriptor, "Check",
                                    &req.base, &resp, timeout_ms, NULL, NULL);
  if (code != GRPC_STATUS_OK) return 0;
  int up = ((Grpc__Health__V1__HealthCheckResponse *)resp)->status ==
           GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  protobuf_c_message_free_unpacked(resp, NULL);
  return up;
}

/* ======================================================================
 * Streams: server streaming (rpc_stream_start) and streamed requests
 * (rpc_stream_open)
 *
 * Up to three batches are outstanding per stream: the status
 * (RECV_STATUS_ON_CLIENT, started with the call), one receive (the first
 * also sends the initial metadata and, for rpc_stream_start, the request
 * and the half-close) and, for rpc_stream_open, one write (SEND_MESSAGE,
 * or SEND_CLOSE_FROM_CLIENT once the queue is empty after
 * rpc_stream_close_send). Messages to send wait in a ring that grows by
 * doubling up to RPC_STREAM_SEND_MAX; the next write starts when the
 * previous one completed (gRPC core allows one send in flight per call).
 * The state below `mu` is guarded by it (senders, the starter and the
 * stream thread all touch it); callbacks run without it, so on_msg may
 * call rpc_stream_send. Cancel and release may come from any thread
 * (grpc_call_cancel is thread-safe) and the reference count is atomic: one
 * reference for the caller, one per outstanding batch. on_end runs when
 * the status has arrived and no receive is outstanding, so it always
 * follows the last on_msg; a write still outstanding then holds its own
 * reference and calls nothing back.
 * ==================================================================== */

typedef enum { CS_RECV, CS_STATUS, CS_SEND } cs_kind;

typedef struct cs_tag {
  cs_kind kind;
  struct rpc_stream *s; /* reference back to the owner */
} cs_tag;

struct rpc_stream {
  cs_tag t_recv, t_status, t_send;
  atomic_int refs;
  grpc_call *call; /* owned; grpc_call_unref */
  const ProtobufCMessageDescriptor *out; /* reference, static */
  rpc_stream_msg_fn on_msg;
  rpc_stream_end_fn on_end;
  void *user;
  grpc_byte_buffer *send_buf; /* rpc_stream_start: owned until the first receive completes */
  grpc_metadata md_out[1];    /* x-request-id (value slice owned) */
  size_t n_md;
  grpc_metadata_array init_md, trail_md; /* owned */
  grpc_byte_buffer *recv_buf;            /* owned while set */
  grpc_status_code code;
  grpc_slice details; /* owned */
  const char *error_string; /* owned; gpr_free */
  pthread_mutex_t mu; /* guards everything below */
  int reading, status_done, ended;
  int cancelled;      /* a cancel was asked for (or on_msg said stop) */
  grpc_byte_buffer **sq; /* owned ring of sq_cap encoded messages to send */
  size_t sq_cap, sq_head, sq_len;
  grpc_byte_buffer *sending; /* owned: the message being written */
  int writing;        /* a write batch (message or half-close) is outstanding */
  int close_wanted;   /* half-close asked for: nothing more is queued */
  int close_started;  /* the half-close was sent (or started) */
  int send_failed;    /* a write failed: the call is dying, nothing more goes */
};

static void send_queue_drop_locked(rpc_stream *s) {
  while (s->sq_len > 0) {
    grpc_byte_buffer_destroy(s->sq[s->sq_head]);
    s->sq_head = (s->sq_head + 1) % s->sq_cap;
    s->sq_len--;
  }
}

static void stream_free(rpc_stream *s) {
  if (s->call != NULL) grpc_call_unref(s->call);
  if (s->send_buf != NULL) grpc_byte_buffer_destroy(s->send_buf);
  if (s->recv_buf != NULL) grpc_byte_buffer_destroy(s->recv_buf);
  send_queue_drop_locked(s); /* the last reference: no other thread */
  if (s->sending != NULL) grpc_byte_buffer_destroy(s->sending);
  free(s->sq);
  for (size_t i = 0; i < s->n_md; i++) {
    grpc_slice_unref(s->md_out[i].key);
    grpc_slice_unref(s->md_out[i].value);
  }
  grpc_metadata_array_destroy(&s->init_md);
  grpc_metadata_array_destroy(&s->trail_md);
  grpc_slice_unref(s->details);
  if (s->error_string != NULL) gpr_free((void *)s->error_string);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static void stream_unref(rpc_stream *s) {
  if (atomic_fetch_sub(&s->refs, 1) == 1) stream_free(s);
}

/* Cancels the call and marks the stream ending, so sends refuse at once. */
static void stream_cancel(rpc_stream *s, grpc_status_code code, const char *why) {
  pthread_mutex_lock(&s->mu);
  s->cancelled = 1;
  pthread_mutex_unlock(&s->mu);
  if (why == NULL)
    grpc_call_cancel(s->call, NULL);
  else
    grpc_call_cancel_with_status(s->call, code, why, NULL);
}

/* Starts one RECV_MESSAGE; the first one also sends the initial metadata
 * and, for rpc_stream_start, the request and the half-close. */
static int stream_recv(rpc_stream *s, int first) {
  grpc_op ops[5];
  size_t n = 0;
  memset(ops, 0, sizeof ops);
  if (first) {
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = s->n_md;
    ops[n].data.send_initial_metadata.metadata = s->md_out;
    n++;
    if (s->send_buf != NULL) {
      ops[n].op = GRPC_OP_SEND_MESSAGE;
      ops[n].data.send_message.send_message = s->send_buf;
      n++;
      ops[n].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
      n++;
    }
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
    n++;
  }
  ops[n].op = GRPC_OP_RECV_MESSAGE;
  ops[n].data.recv_message.recv_message = &s->recv_buf;
  n++;
  atomic_fetch_add(&s->refs, 1);
  pthread_mutex_lock(&s->mu);
  s->reading = 1;
  pthread_mutex_unlock(&s->mu);
  if (grpc_call_start_batch(s->call, ops, n, &s->t_recv, NULL) != GRPC_CALL_OK) {
    pthread_mutex_lock(&s->mu);
    s->reading = 0;
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_sub(&s->refs, 1); /* the caller still holds one */
    return -1;
  }
  return 0;
}

/* Starts the next write if there is one: the oldest queued message, else
 * the half-close once asked for. Called with s->mu held and no write
 * outstanding, by a thread that holds a reference. */
static void send_next_locked(rpc_stream *s) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  if (s->sq_len > 0) {
    s->sending = s->sq[s->sq_head];
    s->sq_head = (s->sq_head + 1) % s->sq_cap;
    s->sq_len--;
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = s->sending;
  } else if (s->close_wanted && !s->close_started) {
    s->close_started = 1;
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  } else {
    return;
  }
  s->writing = 1;
  atomic_fetch_add(&s->refs, 1);
  if (grpc_call_start_batch(s->call, &op, 1, &s->t_send, NULL) != GRPC_CALL_OK) {
    /* Only on a call already over: its status is on the way. */
    atomic_fetch_sub(&s->refs, 1); /* never the last: the caller holds one */
    s->writing = 0;
    s->send_failed = 1;
    send_queue_drop_locked(s);
  }
}

/* Room for one more message in the send ring, growing it (doubling, up to
 * RPC_STREAM_SEND_MAX) when full. 0 when there is none. s->mu held. */
static int send_room_locked(rpc_stream *s) {
  return s->sq_len < s->sq_cap ||
         rpc__ring_grow(&s->sq, &s->sq_cap, &s->sq_head, s->sq_len, RPC_STREAM_SEND_MAX) == 0;
}

static void stream_maybe_end(rpc_stream *s) {
  pthread_mutex_lock(&s->mu);
  int fire = s->status_done && !s->reading && !s->ended;
  if (fire) s->ended = 1;
  pthread_mutex_unlock(&s->mu);
  if (!fire) return;
  rpc_status st;
  if (s->code == GRPC_STATUS_OK) {
    set_status(&st, s->code, "", 0);
  } else if (GRPC_SLICE_LENGTH(s->details) > 0) {
    set_status(&st, s->code, (const char *)GRPC_SLICE_START_PTR(s->details),
               GRPC_SLICE_LENGTH(s->details));
  } else {
    const char *name = rpc_status_name(s->code);
    set_status(&st, s->code, name, strlen(name));
  }
  s->on_end(s->user, &st);
}

static void stream_on_recv(rpc_stream *s, int ok) {
  pthread_mutex_lock(&s->mu);
  s->reading = 0;
  pthread_mutex_unlock(&s->mu);
  if (s->send_buf != NULL) {
    grpc_byte_buffer_destroy(s->send_buf);
    s->send_buf = NULL;
  }
  grpc_byte_buffer *buf = s->recv_buf;
  s->recv_buf = NULL;
  if (!ok || buf == NULL) return; /* no more messages: the status follows */
  rpc__bytes in;
  ProtobufCMessage *msg = NULL;
  if (rpc__bytes_open(&in, buf) == 0) {
    msg = protobuf_c_message_unpack(s->out, NULL, in.len, in.data);
    rpc__bytes_close(&in);
  }
  grpc_byte_buffer_destroy(buf);
  if (msg == NULL) {
    stream_cancel(s, GRPC_STATUS_INTERNAL, "stream message cannot be decoded");
    return;
  }
  int keep = s->on_msg(s->user, msg) == 0;
  protobuf_c_message_free_unpacked(msg, NULL);
  if (!keep) {
    stream_cancel(s, GRPC_STATUS_CANCELLED, NULL);
    return;
  }
  if (stream_recv(s, 0) != 0)
    stream_cancel(s, GRPC_STATUS_INTERNAL, "cannot read the stream");
}

static void stream_on_send(rpc_stream *s, int ok) {
  pthread_mutex_lock(&s->mu);
  s->writing = 0;
  if (s->sending != NULL) {
    grpc_byte_buffer_destroy(s->sending);
    s->sending = NULL;
  }
  if (!ok || s->status_done) { /* the call is over: drop what waits */
    s->send_failed = 1;
    send_queue_drop_locked(s);
  } else {
    send_next_locked(s);
  }
  pthread_mutex_unlock(&s->mu);
}

static void *stream_thread_main(void *arg) {
  rpc_channel *ch = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(ch->scq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                               NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    cs_tag *t = ev.tag;
    rpc_stream *s = t->s;
    if (t->kind == CS_RECV) {
      stream_on_recv(s, ev.success);
    } else if (t->kind == CS_SEND) {
      stream_on_send(s, ev.success);
    } else {
      pthread_mutex_lock(&s->mu);
      s->status_done = 1;
      pthread_mutex_unlock(&s->mu);
      if (!ev.success) {
        s->code = GRPC_STATUS_INTERNAL;
        grpc_slice_unref(s->details);
        s->details = grpc_slice_from_static_string("stream status batch failed");
      }
    }
    stream_maybe_end(s);
    stream_unref(s);
  }
  return NULL;
}

/* The channel's stream queue and thread, made on first use. The thread is
 * started with SIGTERM/SIGINT blocked like every gRPC thread of a server
 * process: callbacks never run a signal handler. */
static grpc_completion_queue *stream_queue(rpc_channel *ch) {
  pthread_mutex_lock(&ch->mu);
  if (!ch->sth_started) {
    ch->scq = grpc_completion_queue_create_for_next(NULL);
    sigset_t block, saved;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &saved);
    if (pthread_create(&ch->sth, NULL, stream_thread_main, ch) == 0) {
      ch->sth_started = 1;
    } else {
      grpc_completion_queue_shutdown(ch->scq);
      grpc_completion_queue_destroy(ch->scq);
      ch->scq = NULL;
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
  }
  grpc_completion_queue *cq = ch->scq;
  pthread_mutex_unlock(&ch->mu);
  return cq;
}

/* rpc_stream_start (req set: a server-streaming method) and rpc_stream_open
 * (req NULL: a method whose requests are a stream). */
static rpc_stream *stream_begin(rpc_channel *ch, const ProtobufCServiceDescriptor *svc,
                                const char *method, const ProtobufCMessage *req,
                                int64_t timeout_ms, const char *request_id,
                                rpc_stream_msg_fn on_msg, rpc_stream_end_fn on_end,
                                void *user, rpc_status *st) {
  if (ch == NULL || svc == NULL || method == NULL || on_msg == NULL || on_end == NULL) {
    fail_local(st, GRPC_STATUS_INVALID_ARGUMENT, "rpc_stream: missing argument");
    return NULL;
  }
  const ProtobufCMethodDescriptor *md =
      protobuf_c_service_descriptor_get_method_by_name(svc, method);
  if (md == NULL) {
    fail_local(st, GRPC_STATUS_UNIMPLEMENTED, "unknown method name");
    return NULL;
  }
  rpc_method_shape shape = rpc__method_shape(svc->name, md->name);
  if (req != NULL && shape != RPC_SHAPE_SERVER_STREAM) {
    fail_local(st, GRPC_STATUS_INVALID_ARGUMENT, "not a server-streaming method");
    return NULL;
  }
  if (req == NULL && !RPC_SHAPE_STREAMS_REQUESTS(shape)) {
    fail_local(st, GRPC_STATUS_INVALID_ARGUMENT,
               "not a method whose requests are a stream (bidirectional or client streaming)");
    return NULL;
  }
  if (req != NULL && req->descriptor != md->input) {
    fail_local(st, GRPC_STATUS_INVALID_ARGUMENT,
               "request message has the wrong type for this method");
    return NULL;
  }
  char path[RPC_PATH_MAX];
  int pn = snprintf(path, sizeof path, "/%s/%s", svc->name, md->name);
  if (pn < 0 || (size_t)pn >= sizeof path) {
    fail_local(st, GRPC_STATUS_INVALID_ARGUMENT, "method path too long");
    return NULL;
  }
  grpc_completion_queue *cq = stream_queue(ch);
  rpc_stream *s = cq != NULL ? calloc(1, sizeof *s) : NULL;
  if (s == NULL) {
    fail_local(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "cannot start a stream (out of memory)");
    return NULL;
  }
  s->t_recv = (cs_tag){CS_RECV, s};
  s->t_status = (cs_tag){CS_STATUS, s};
  s->t_send = (cs_tag){CS_SEND, s};
  atomic_init(&s->refs, 1);
  pthread_mutex_init(&s->mu, NULL);
  s->out = md->output;
  s->on_msg = on_msg;
  s->on_end = on_end;
  s->user = user;
  s->details = grpc_empty_slice();
  grpc_metadata_array_init(&s->init_md);
  grpc_metadata_array_init(&s->trail_md);
  if (request_id != NULL &&
      rpc__request_id_valid((const unsigned char *)request_id, strlen(request_id))) {
    s->md_out[0].key = grpc_slice_from_static_string("x-request-id");
    s->md_out[0].value = grpc_slice_from_copied_string(request_id);
    s->n_md = 1;
  }
  if (req != NULL) {
    s->send_buf = rpc__pack(req);
    s->close_wanted = s->close_started = 1; /* with the request, in the first batch */
  }

  gpr_timespec deadline =
      timeout_ms > 0 ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                    gpr_time_from_millis(timeout_ms, GPR_TIMESPAN))
                     : gpr_inf_future(GPR_CLOCK_REALTIME);
  grpc_slice path_slice = grpc_slice_from_copied_string(path);
  s->call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, path_slice,
                                     NULL, deadline, NULL);
  grpc_slice_unref(path_slice);

  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  op.data.recv_status_on_client.trailing_metadata = &s->trail_md;
  op.data.recv_status_on_client.status = &s->code;
  op.data.recv_status_on_client.status_details = &s->details;
  op.data.recv_status_on_client.error_string = &s->error_string;
  atomic_fetch_add(&s->refs, 1);
  if (grpc_call_start_batch(s->call, &op, 1, &s->t_status, NULL) != GRPC_CALL_OK) {
    atomic_fetch_sub(&s->refs, 1);
    stream_free(s);
    fail_local(st, GRPC_STATUS_INTERNAL, "cannot start the call");
    return NULL;
  }
  /* From here the status batch owns the ending: if the first receive
   * cannot start, the cancel makes the status come. */
  if (stream_recv(s, 1) != 0) stream_cancel(s, GRPC_STATUS_INTERNAL, "cannot start the call");
  if (st != NULL) set_status(st, GRPC_STATUS_OK, "", 0);
  return s;
}

rpc_stream *rpc_stream_start(rpc_channel *ch, const ProtobufCServiceDescriptor *svc,
                             const char *method, const ProtobufCMessage *req,
                             int64_t timeout_ms, const char *request_id,
                             rpc_stream_msg_fn on_msg, rpc_stream_end_fn on_end,
                             void *user, rpc_status *st) {
  if (req == NULL) {
    fail_local(st, GRPC_STATUS_INVALID_ARGUMENT, "rpc_stream_start: missing argument");
    return NULL;
  }
  return stream_begin(ch, svc, method, req, timeout_ms, request_id, on_msg, on_end, user, st);
}

rpc_stream *rpc_stream_open(rpc_channel *ch, const ProtobufCServiceDescriptor *svc,
                            const char *method, int64_t timeout_ms, const char *request_id,
                            rpc_stream_msg_fn on_msg, rpc_stream_end_fn on_end, void *user,
                            rpc_status *st) {
  return stream_begin(ch, svc, method, NULL, timeout_ms, request_id, on_msg, on_end, user,
                      st);
}

int rpc_stream_send(rpc_stream *s, const ProtobufCMessage *msg) {
  if (s == NULL || msg == NULL) return -1;
  grpc_byte_buffer *buf = rpc__pack(msg);
  pthread_mutex_lock(&s->mu);
  int rc = -1;
  if (!s->cancelled && !s->status_done && !s->close_wanted && !s->send_failed &&
      send_room_locked(s)) {
    s->sq[(s->sq_head + s->sq_len) % s->sq_cap] = buf;
    s->sq_len++;
    buf = NULL;
    rc = 0;
    if (!s->writing) send_next_locked(s);
  }
  pthread_mutex_unlock(&s->mu);
  if (buf != NULL) grpc_byte_buffer_destroy(buf);
  return rc;
}

void rpc_stream_close_send(rpc_stream *s) {
  if (s == NULL) return;
  pthread_mutex_lock(&s->mu);
  if (!s->close_wanted) {
    s->close_wanted = 1;
    if (!s->writing && !s->send_failed && !s->status_done) send_next_locked(s);
  }
  pthread_mutex_unlock(&s->mu);
}

size_t rpc_stream_send_queued(rpc_stream *s) {
  pthread_mutex_lock(&s->mu);
  size_t n = s->sq_len;
  pthread_mutex_unlock(&s->mu);
  return n;
}

void rpc_stream_cancel(rpc_stream *s) {
  if (s != NULL) stream_cancel(s, GRPC_STATUS_CANCELLED, NULL);
}

void rpc_stream_release(rpc_stream *s) {
  if (s == NULL) return;
  stream_cancel(s, GRPC_STATUS_CANCELLED, NULL); /* no-op once the call is over */
  stream_unref(s);
}
