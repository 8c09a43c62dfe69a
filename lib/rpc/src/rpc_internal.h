/* rpc_internal.h - what server.c, health.c and reflection.c share.
 *
 * Not installed: callers use cruddur/rpc.h. Names with the rpc__ prefix are
 * internal to lib/rpc.
 */
#ifndef CRUDDUR_RPC_INTERNAL_H
#define CRUDDUR_RPC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>

#include "cruddur/arena.h"
#include "cruddur/rpc.h"

/* Largest x-request-id we accept (longer ones are treated as absent). */
#define RPC_REQUEST_ID_MAX 128

/* Keepalive, shared so the two ends agree: rpc_channel_open pings every
 * RPC_KEEPALIVE_TIME_MS (also without calls) and drops a peer that does not
 * answer within RPC_KEEPALIVE_TIMEOUT_MS; rpc_server_start accepts pings
 * without calls as often as every RPC_PING_MIN_INTERVAL_MS (half the client's
 * period, so timer jitter never counts as a strike that would get the client
 * a GOAWAY "too_many_pings").
 * The timeout must stay well above 5 s: a client connection without calls
 * is read only by gRPC core's backup poller, every 5 s
 * (GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS), so the ack of an idle
 * ping can sit unread for up to 5 s. With a 5 s timeout (and a 20 s period,
 * a multiple of 5 s, so every ping starts at the same phase of the poller)
 * the watchdog raced that read on every ping: it either closed a healthy
 * connection ("Keepalive watchdog fired") or fired just after the ack and
 * logged "keepalive_ping_end state error: 0 (expect: 1)" at error level.
 * A dead peer is still noticed within 40 s of its last word. */
#define RPC_KEEPALIVE_TIME_MS 20000
#define RPC_KEEPALIVE_TIMEOUT_MS 20000
#define RPC_PING_MIN_INTERVAL_MS 10000

/* What a completion-queue event is about. Every tag handed to gRPC is one of
 * these, embedded in the object it belongs to, so the poller can find the
 * owner without a lookup table. */
typedef enum {
  RPC_TAG_REQUEST,  /* an armed registered request accepted a call (or failed) */
  RPC_TAG_GENERIC,  /* the armed generic request accepted a call (or failed) */
  RPC_TAG_FINISH,   /* the final batch of a unary or generic call completed */
  RPC_TAG_STREAM,   /* one batch of a reflection stream completed */
  RPC_TAG_SHUTDOWN, /* grpc_server_shutdown_and_notify finished */
  RPC_TAG_SS_CLOSE, /* a server stream's RECV_CLOSE_ON_SERVER completed */
  RPC_TAG_SS_WRITE, /* a server stream's write completed */
  RPC_TAG_SS_STATUS,/* a server stream's status was sent */
  RPC_TAG_SS_RECV,  /* a server stream's RECV_MESSAGE completed (streamed
                       requests) */
} rpc_tag_kind;

typedef struct rpc_tag {
  rpc_tag_kind kind;
} rpc_tag;

typedef enum {
  RPC_METHOD_UNARY,        /* request read by the server, handler on a worker */
  RPC_METHOD_REFLECTION,   /* bidirectional stream driven by the poller */
  RPC_METHOD_SSTREAM,      /* server streaming: request read by the server,
                              handler on a worker, then sstream.c */
  RPC_METHOD_BIDI,         /* streamed requests (bidirectional or client
                              streaming): nothing read at accept, handler on
                              a worker with req == NULL, then sstream.c reads
                              the messages one at a time */
} rpc_method_kind;

/* A method's shape as the .proto declares it (rpc__method_shape). */
typedef enum {
  RPC_SHAPE_UNKNOWN,       /* not in the embedded descriptor set */
  RPC_SHAPE_UNARY,
  RPC_SHAPE_SERVER_STREAM, /* one request, a stream of responses */
  RPC_SHAPE_CLIENT_STREAM, /* a stream of requests, one response */
  RPC_SHAPE_BIDI,          /* streams both ways */
} rpc_method_shape;

/* 1 for the shapes whose requests are a stream. */
#define RPC_SHAPE_STREAMS_REQUESTS(shape) \
  ((shape) == RPC_SHAPE_CLIENT_STREAM || (shape) == RPC_SHAPE_BIDI)

/* One registered method. */
typedef struct rpc_method {
  char *path;                            /* owned: "/pkg.Svc/Method" */
  void *handle;                          /* from grpc_server_register_method */
  rpc_method_kind kind;
  const ProtobufCMethodDescriptor *desc; /* reference, static */
  rpc_handler_fn handler;                /* unary only */
  rpc_stream_handler_fn stream_handler;  /* RPC_METHOD_SSTREAM and _BIDI */
} rpc_method;

/* Reflection stream states. */
typedef enum {
  RPC_STREAM_RECV,   /* waiting for the next request (or half-close) */
  RPC_STREAM_SEND,   /* sending one response */
  RPC_STREAM_STATUS, /* final status sent, waiting for the close */
} rpc_stream_state;

/* One call, from the moment a request is armed until its final batch
 * completes. It owns everything for the call; at most one batch is
 * outstanding at a time, so one embedded tag is enough. */
struct rpc_call {
  rpc_tag tag;                 /* first member: the tag is the call */
  rpc_server *srv;             /* reference */
  const rpc_method *method;    /* reference; NULL for the generic slot */
  grpc_call *call;             /* owned once accepted; grpc_call_unref */
  gpr_timespec deadline;
  grpc_metadata_array recv_md; /* owned; grpc_metadata_array_destroy */
  grpc_call_details details;   /* generic slot only; grpc_call_details_destroy */
  grpc_byte_buffer *recv_buf;  /* owned; grpc_byte_buffer_destroy */
  grpc_byte_buffer *send_buf;  /* owned; grpc_byte_buffer_destroy */
  grpc_metadata send_md[1];    /* x-request-id echo (value slice owned) */
  size_t n_send_md;
  int handler_ran;             /* the status comes from a handler: no retry */
  grpc_metadata trail_md[1];   /* the "do not retry" trailer (static slices) */
  grpc_slice status_slice;     /* owned when has_status_slice */
  int has_status_slice;
  grpc_status_code status;
  const char *status_msg;      /* arena or static */
  int cancelled;               /* from GRPC_OP_RECV_CLOSE_ON_SERVER */
  int64_t start_us;            /* monotonic, when the call was accepted */
  char request_id[RPC_REQUEST_ID_MAX + 1];
  char *log_method;            /* generic slot: owned copy of the path */
  rpc_stream_state stream_state;
  int stream_v1alpha;          /* reflection: which version (for logs only) */
  arena arena; /* the call's memory: request, response, strings */
};

struct rpc_reflection;
struct rpc_health_watch;

/* One item of the workers' queue: a call to handle, or (call == NULL) a
 * function from rpc_sstream_submit. */
typedef struct rpc_work {
  rpc_call *call;        /* owned by the queue until a worker takes it */
  void (*fn)(void *arg); /* when call == NULL */
  void *arg;             /* the submitter's */
} rpc_work;

struct rpc_server {
  rpc_server_config cfg;       /* copy; pointers inside are references */
  grpc_server *server;         /* owned */
  grpc_completion_queue *cq;   /* owned; NEXT queue drained by the poller */
  int port;
  rpc_method *methods;         /* owned array of n_methods */
  size_t n_methods;
  struct rpc_reflection *refl; /* owned */

  pthread_t poller;
  int poller_started;
  pthread_t *workers;          /* owned array of n_workers */
  int n_workers;

  /* Work queue (bounded ring) and lifecycle flags, guarded by mu. */
  pthread_mutex_t mu;
  pthread_cond_t work_cv;      /* workers wait for work or stop */
  pthread_cond_t state_cv;     /* rpc_server_wait waits for shutdown_done */
  rpc_work *queue;
  size_t q_cap, q_head, q_len;
  int workers_stop;
  int busy;                    /* handlers running now */
  int shutting_down;           /* no re-arming once set */
  int shutdown_done;           /* the shutdown tag completed */
  atomic_int cancelled_all;    /* drain budget exhausted */

  rpc_tag shutdown_tag;
  int wake_pipe[2];            /* signals and rpc_server_shutdown write here */
  int drained;
  int cq_shut;                 /* grpc_completion_queue_shutdown called */
  int grpc_inited;             /* grpc_init called (grpc_shutdown owed) */
  int owns_signals;            /* our handler points at wake_pipe */

  /* Server streams (sstream.c), guarded by mu: every stream from its
   * handler's start until freed, so the drain can end them all. */
  struct rpc_sstream *streams; /* doubly linked list head; references */
  int n_streams;
  struct rpc_health_watch *hw; /* owned; Health/Watch streams (health.c) */
};

/* ---- calls (server.c) ---- */

/* Starts the final batch of a unary or generic call: initial metadata (with
 * the x-request-id echo), the response when code is OK and send_buf is set,
 * the status with `msg` (copied), and the close. Any thread. On a
 * start_batch error the call is freed here. */
void rpc__call_finish(rpc_call *c, grpc_status_code code, const char *msg);

/* Frees everything the call owns (gRPC objects with their own functions)
 * and the call itself. Only when no batch is outstanding. */
void rpc__call_free(rpc_call *c);

/* 1 when p[0..n) is a usable x-request-id: 1 to 128 of [A-Za-z0-9._-]. */
int rpc__request_id_valid(const unsigned char *p, size_t n);

/* Writes one log line for the call. */
void rpc__call_log(rpc_call *c);

/* 1 when the call's deadline has passed. */
int rpc__call_expired(const rpc_call *c);

/* Fills c->send_md with the x-request-id echo when there is one. */
void rpc__call_prepare_md(rpc_call *c);

/* Once per process, before grpc_init: routes gRPC core's log lines through
 * log_msg (JSON) and turns abseil's mutex deadlock detector off
 * (absl_mutex.cc says why). Idempotent. */
void rpc__grpc_setup(void);

/* absl_mutex.cc (C++): absl::SetMutexDeadlockDetectionMode(kIgnore). */
void rpc__absl_deadlock_detection_off(void);

/* Decodes c->recv_buf as the method's input into the call's arena. Returns
 * the message, or NULL after finishing the call with INVALID_ARGUMENT (the
 * call is then owned by its final batch). */
ProtobufCMessage *rpc__call_decode(rpc_call *c);

/* Decodes `buf` as a `desc` message into the call's arena. Returns it, or
 * NULL when the bytes cannot be read or are not a valid `desc` (including a
 * field numbered 0, see rpc__pb_has_field0). The call is untouched. */
ProtobufCMessage *rpc__call_unpack(rpc_call *c, const ProtobufCMessageDescriptor *desc,
                                   grpc_byte_buffer *buf);

/* Queues w for a worker. Returns 0, or -1 (nothing queued) when the queue
 * holds queue_max items or, for a function (w.call == NULL), when the
 * server is shutting down. Takes srv->mu. */
int rpc__work_push(rpc_server *srv, rpc_work w);

/* ---- server streams (sstream.c) ---- */

/* Runs a server-streaming call (or one with streamed requests) on a
 * worker: decodes the request (none for streamed requests), starts the
 * stream and its handler, then the reading of the client's messages when
 * the handler set a receive callback. Takes ownership of c. */
void rpc__sstream_run(rpc_call *c);

/* One completion of a stream batch (poller). */
void rpc__sstream_event(rpc_tag *t, int ok);

/* Ends every open stream with UNAVAILABLE (drain). Takes srv->mu. */
void rpc__sstreams_end_all(rpc_server *srv);

/* Grows a ring of *cap buffers (len of them from *head) when it is full:
 * doubles it (to 16 at least), at most to `max`, unrolled to start at 0.
 * Returns 0, or -1 (ring unchanged) at `max` or on out-of-memory. */
int rpc__ring_grow(grpc_byte_buffer ***q, size_t *cap, size_t *head, size_t len,
                   size_t max);

/* Waits until every stream object is freed (holders released them), logging
 * every few seconds while some are left. Called with srv->mu held. */
void rpc__sstreams_wait_freed(rpc_server *srv);

/* ---- health (health.c) ---- */

/* The handler for a grpc.health.v1.Health method name, or NULL. */
rpc_handler_fn rpc__health_handler(const char *method_name);

/* Health/Watch as a streaming handler. */
grpc_status_code rpc__health_watch(rpc_call *call, const ProtobufCMessage *req,
                                   rpc_sstream *s);

/* Stops the watch thread (after the streams ended) and frees srv->hw. */
void rpc__health_watch_stop(rpc_server *srv);

/* The shape of /service/method from the embedded descriptor set.
 * `service` is the full name ("grpc.health.v1.Health"). Thread-safe. */
rpc_method_shape rpc__method_shape(const char *service, const char *method);

/* Adds the files of a serialized FileDescriptorSet (without files the
 * embedded set already holds) to what rpc__method_shape knows and
 * reflection serves, for test-only services that must not ship in the
 * product's set. Only before the first server or stream starts; not
 * thread-safe. `set` is a reference that must outlive the process's use
 * of lib/rpc. Returns 0, or -1 on out-of-memory or when called too late. */
int rpc__descriptor_set_extend(const unsigned char *set, size_t len);

/* ---- reflection (reflection.c) ---- */

/* Parses the embedded descriptor set and indexes its symbols. Returns 0 and
 * sets *out, or -1 with a line on stderr. `names` (n entries, references)
 * are the services to list. Free with rpc__reflection_free. */
int rpc__reflection_new(const char *const *names, size_t n,
                        struct rpc_reflection **out);
void rpc__reflection_free(struct rpc_reflection *r);

/* Starts a newly accepted reflection stream (poller thread). */
void rpc__reflection_begin(rpc_call *c);
/* Advances a stream after one of its batches completed (poller thread). */
void rpc__reflection_step(rpc_call *c, int ok);

/* m encoded into a new byte buffer for a SEND_MESSAGE (the caller
 * destroys it, or the batch's owner does). Aborts on out-of-memory, as
 * gRPC's own allocation does. */
grpc_byte_buffer *rpc__pack(const ProtobufCMessage *m);

/* The bytes of a received message (pbcheck.c): in place when they lie in
 * one slice (of the buffer, or of the reader's decompressed copy), else
 * joined into one new slice, which readall would make every time. */
typedef struct rpc__bytes {
  grpc_byte_buffer_reader reader;
  grpc_slice joined; /* the bytes when they came in several slices */
  const uint8_t *data;
  size_t len;
} rpc__bytes;

/* Returns 0 with b->data / b->len valid until rpc__bytes_close (buf must
 * live as long), or -1 when buf cannot be read (compressed badly; nothing
 * to close). */
int rpc__bytes_open(rpc__bytes *b, grpc_byte_buffer *buf);
void rpc__bytes_close(rpc__bytes *b);

/* 1 when m, or a message inside it, holds an unknown field numbered 0,
 * which protobuf-c decodes but cannot encode again (pbcheck.c): such a
 * request is refused as malformed. */
int rpc__pb_has_field0(const ProtobufCMessage *m);

/* Answers one serialized ServerReflectionRequest (v1 and v1alpha share the
 * wire format). Returns 0 and sets *out to a new byte buffer (caller
 * destroys), or -1 when the request cannot be decoded (or holds a field
 * numbered 0). For tests too. */
int rpc__reflection_answer(const struct rpc_reflection *r, const uint8_t *req,
                           size_t len, grpc_byte_buffer **out);

#endif
