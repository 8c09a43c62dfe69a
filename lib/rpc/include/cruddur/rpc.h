/* rpc.h - unary, server-streaming and bidirectional gRPC services on the
 * gRPC C core, driven by protobuf-c.
 *
 * A service is its protoc-c ProtobufCServiceDescriptor plus a table of
 * handlers indexed like descriptor->methods. The runtime registers every
 * method, decodes requests, runs handlers on a fixed pool of worker threads,
 * encodes responses, keeps a generic call armed so unknown methods answer
 * UNIMPLEMENTED at once, serves grpc.health.v1.Health and server reflection
 * (v1 and v1alpha) from the embedded descriptor set, logs one JSON line per
 * RPC, and drains in-flight calls on SIGTERM/SIGINT. Streaming methods
 * (server streaming, bidirectional, client streaming) have stream handlers
 * (rpc_sstream, below); grpc.health.v1 Health/Watch is one.
 *
 * Threads: one thread drains the completion queue and never blocks; handlers
 * run on the worker pool and may block (database, HTTP). An open stream
 * holds no thread between its messages.
 */
#ifndef CRUDDUR_RPC_H
#define CRUDDUR_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

/* A unary handler. `req` is the decoded request (never NULL; an empty request
 * is a message with default fields). `resp` is a zero-initialised response
 * message of the method's output type, already passed through its init
 * function; fill it in. Everything hung off `resp` (strings, repeated arrays,
 * sub-messages) must come from rpc_call_alloc()/rpc_call_strdup() or be static:
 * the call owns it and frees it after the response is sent.
 * Return GRPC_STATUS_OK, or an error code after rpc_call_fail() (whose return
 * value is that code). On error `resp` is not sent. */
typedef grpc_status_code (*rpc_handler_fn)(rpc_call *call,
                                           const ProtobufCMessage *req,
                                           ProtobufCMessage *resp);

typedef struct rpc_sstream rpc_sstream;

/* A stream handler (see "server streaming" below). Runs on a worker like
 * a unary handler; `req` lives only until it returns, and is NULL for a
 * method whose requests are a stream (nothing is read before the handler:
 * it calls rpc_sstream_on_recv to read them). It either
 * refuses the call (return an error code after rpc_call_fail: the stream
 * ends with it at once) or returns GRPC_STATUS_OK with the stream open. To
 * keep pushing after returning it takes a reference (rpc_sstream_ref) and
 * sets a done callback (rpc_sstream_on_done) before it returns; it must not
 * wait for events itself, so an idle stream holds no thread. */
typedef grpc_status_code (*rpc_stream_handler_fn)(rpc_call *call,
                                                  const ProtobufCMessage *req,
                                                  rpc_sstream *s);

typedef struct rpc_service {
  const ProtobufCServiceDescriptor *desc; /* reference, static */
  const rpc_handler_fn *handlers;         /* desc->n_methods entries, by index;
                                             NULL for a streaming method */
  const rpc_stream_handler_fn *stream_handlers; /* desc->n_methods entries or
                                             NULL (no streaming method); set
                                             for every streaming method:
                                             server, client or both ways */
} rpc_service;

/* Health: return 1 when the service's own dependency is reachable, else 0.
 * Called from a worker thread; may block briefly (it should cache). */
typedef int (*rpc_health_fn)(void *user);

/* The health name for liveness probes: SERVING whenever the server can run
 * a handler, whatever cfg->health says of the dependency (health.c). */
#define RPC_HEALTH_LIVENESS "liveness"

typedef struct rpc_server_config {
  const char *listen;          /* "127.0.0.1:50051"; required */
  const rpc_service *services; /* array of n_services; reference, must outlive the server */
  size_t n_services;
  int workers;                 /* handler threads; <= 0 means the number of cores */
  int queue_max;               /* pending calls before RESOURCE_EXHAUSTED; <= 0 means 1024 */
  int drain_ms;                /* graceful shutdown budget; <= 0 means 10000 */
  int max_recv_bytes;          /* request size cap; <= 0 means 1 MiB */
  int max_conn_age_ms;         /* connections closed (GOAWAY, then drain_ms for the calls
                                  in flight) after this long, +-10%, so clients re-resolve
                                  DNS and spread over new replicas; <= 0 means 5 min */
  int max_streams;             /* open streams per process (every streaming
                                  shape: one bidirectional call is one, whatever
                                  it carries); beyond it a new stream gets
                                  RESOURCE_EXHAUSTED; <= 0 means 16384 */
  int stream_queue_max;        /* messages queued per stream before
                                  rpc_sstream_send says RPC_SSTREAM_FULL
                                  (rpc_sstream_set_queue_max raises it for one
                                  stream); <= 0 means 64 */
  rpc_health_fn health;        /* NULL means always SERVING */
  void *user;                  /* passed to health and available to handlers */
} rpc_server_config;

/* Creates the server, binds `listen` (SO_REUSEPORT off, so a busy port fails)
 * and starts the poller and workers. On success *out is set and the caller
 * owns the server (rpc_server_destroy). On failure returns -1, writes one line
 * naming the reason to stderr, and allocates nothing. Clients may send
 * keepalive pings without calls as often as every 10 s (rpc_client channels
 * ping every 20 s); pinging faster gets them a GOAWAY. */
int rpc_server_start(const rpc_server_config *cfg, rpc_server **out);

/* The port actually bound (useful with "127.0.0.1:0"). */
int rpc_server_port(const rpc_server *srv);

/* Blocks until SIGTERM or SIGINT (or rpc_server_shutdown from another thread),
 * then stops accepting, lets in-flight calls finish within drain_ms, cancels
 * what is left, waits for running handlers to return, and returns. The signal
 * handling is installed by rpc_server_start (so a signal during start-up is
 * not lost); SIGTERM and SIGINT are blocked in the server's threads, so a
 * child process started from a handler inherits that mask. A caller that
 * has blocked SIGTERM itself before rpc_server_start (lib/core sig.h: the
 * way to make a second signal harmless) gets no handler: it takes the
 * signals with sigwait and calls rpc_server_shutdown. Call once. */
void rpc_server_wait(rpc_server *srv);

/* Asks rpc_server_wait to return (same drain as a signal). Thread-safe. */
void rpc_server_shutdown(rpc_server *srv);

/* Frees everything. The server must have been drained by rpc_server_wait.
 * NULL is a no-op. */
void rpc_server_destroy(rpc_server *srv);

/* ---- inside a handler ------------------------------------------------- */

/* Zeroed memory owned by the call, freed after the response is sent.
 * Aborts the process on out-of-memory (as gRPC core itself does). */
void *rpc_call_alloc(rpc_call *call, size_t n);
/* Copy of s (NULL gives NULL) owned by the call. */
char *rpc_call_strdup(rpc_call *call, const char *s);
/* Copy of the first n bytes of s plus a NUL, owned by the call. */
char *rpc_call_strndup(rpc_call *call, const char *s, size_t n);

/* A sub-message of type `desc`, initialised, owned by the call. */
ProtobufCMessage *rpc_call_new_message(rpc_call *call,
                                       const ProtobufCMessageDescriptor *desc);

/* Records the status message sent with an error status and returns `code`.
 * The text must not contain secrets or message text; it is logged. */
grpc_status_code rpc_call_fail(rpc_call *call, grpc_status_code code,
                               const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The caller's x-request-id metadata ("" when absent or malformed). */
const char *rpc_call_request_id(const rpc_call *call);

/* Milliseconds until the call's deadline (INT64_MAX/2 when none, 0 when
 * passed). Use it to bound upstream calls. */
int64_t rpc_call_remaining_ms(const rpc_call *call);

/* cfg->user of the server. */
void *rpc_call_user(const rpc_call *call);

/* ---- server streaming -------------------------------------------------- *
 *
 * A stream is started by its handler on a worker and then lives on the
 * poller: messages are pushed from any thread with rpc_sstream_send, which
 * never blocks; they wait in a bounded per-stream queue and go out one
 * write at a time (the next write starts when the previous one completed).
 * Nothing runs per stream while it is idle: 10,000 open streams cost memory
 * (a few KiB each in gRPC core), not threads.
 *
 * Ownership: the stream is reference counted and shared between threads.
 * The handler's `s` is a reference valid until the handler returns. Whoever
 * keeps the stream after that holds a reference from rpc_sstream_ref and
 * drops it exactly once with rpc_sstream_release; the runtime holds its own
 * while gRPC has work outstanding. When the last holder releases a stream
 * that is still open, it ends with OK (after the queued messages).
 *
 * End: rpc_sstream_end by the owner (the queued messages go first), the
 * client cancelling or going away, the deadline, or the server draining
 * (every open stream ends with UNAVAILABLE "server is shutting down;
 * reconnect", within drain_ms). The done callback then runs exactly once.
 */

/* Runs once when the stream is over, whatever ended it, with the final
 * code (the one sent, or CANCELLED / DEADLINE_EXCEEDED / UNAVAILABLE when
 * the call died). On the poller thread (or the worker, when the stream
 * ended while its handler ran): it must not block. Holders should drop
 * their reference here (rpc_sstream_release is allowed inside it). */
typedef void (*rpc_sstream_done_fn)(void *user, rpc_sstream *s, grpc_status_code code);

/* Sets the done callback. Only inside the handler (before it returns), so
 * the callback never runs before the stream's owner is ready for it. */
void rpc_sstream_on_done(rpc_sstream *s, rpc_sstream_done_fn fn, void *user);

/* rpc_sstream_send results. */
enum {
  RPC_SSTREAM_OK = 0,     /* queued (or being written) */
  RPC_SSTREAM_FULL = -1,  /* the queue is full: the client reads too slowly;
                             nothing was queued (the owner usually ends the
                             stream, e.g. RESOURCE_EXHAUSTED) */
  RPC_SSTREAM_CLOSED = -2 /* the stream is ending or over; nothing queued */
};

/* Encodes `msg` (of the method's output type) now and queues it. Any
 * thread, never blocks on the network. The caller keeps ownership of msg. */
int rpc_sstream_send(rpc_sstream *s, const ProtobufCMessage *msg);

/* Ends the stream with `code` and `msg` (copied; no secrets, it is logged)
 * after the queued messages. Any thread; the first end wins, later calls
 * do nothing. */
void rpc_sstream_end(rpc_sstream *s, grpc_status_code code, const char *msg);

/* Messages queued and not yet written (for metrics and tests). */
size_t rpc_sstream_queued(rpc_sstream *s);

/* How many more messages rpc_sstream_send would queue now (0 once the
 * stream is ending), so a producer with more to say can hold it back and
 * try again later instead of overflowing a slow client's queue. */
size_t rpc_sstream_room(rpc_sstream *s);

/* Takes a reference; returns s. Any thread, while holding one already. */
rpc_sstream *rpc_sstream_ref(rpc_sstream *s);

/* Drops a reference taken with rpc_sstream_ref; s must not be used after.
 * Any thread, including inside the done callback. */
void rpc_sstream_release(rpc_sstream *s);

/* Open streams of the server now (for tests and logs). */
int rpc_server_open_streams(rpc_server *srv);

/* ---- streamed requests (bidirectional and client streaming) ------------ *
 *
 * A method whose requests are a stream has a stream handler exactly like a
 * server-streaming one, called with req == NULL. Writing, ending,
 * references, the done callback, the stream cap (max_streams) and the
 * drain are those of server streams. The client's messages are read one at
 * a time, only after the handler returned OK with a receive callback set:
 * the next is read when the callback of the previous one has returned, so
 * a client that sends faster than the owner consumes is held back by
 * HTTP/2 flow control, and nothing piles up here. A message that is not a
 * valid message of the method's input type ends the call with
 * INVALID_ARGUMENT (the callback then gets NULL). A client-streaming
 * method sends its one response with rpc_sstream_send and ends OK; the
 * runtime does not count its responses.
 */

/* One message of the client, valid only during the call; NULL once the
 * client half-closed (no more will come) or the call is over. Runs on the
 * server's poller thread, one call at a time per stream, in order: it must
 * not block (blocking work goes to rpc_sstream_submit). The next message is
 * read only after it returns. Not called after the done callback.
 * NULL comes at most once, as the last call; when the call dies (cancel,
 * deadline, drain) the done callback may come first, and then no NULL:
 * clean up in the done callback. Once an end was asked for
 * (rpc_sstream_end, drain) no message comes any more: the next call, if
 * any, is the NULL. It may send, end, submit, take and drop references. */
typedef void (*rpc_sstream_recv_fn)(void *user, rpc_sstream *s, const ProtobufCMessage *msg);

/* Starts reading the client's messages into fn. Only from the stream
 * handler of a method with streamed requests, before it returns OK.
 * Without it the client's messages are never read. */
void rpc_sstream_on_recv(rpc_sstream *s, rpc_sstream_recv_fn fn, void *user);

/* Runs fn(arg) on one of the server's workers (after the calls already
 * waiting for one). Returns 0, or -1 when the server is draining or the
 * stream is over: fn will not run and arg stays the caller's.
 * Also -1 when queue_max items already wait for a worker (the server is
 * overloaded; a new call would get RESOURCE_EXHAUSTED then too), once an
 * end was asked for (rpc_sstream_end: the stream is as good as over), and
 * for fn == NULL.
 * Any thread. A function queued before the drain still runs, also after
 * the stream ended: it must not assume the stream is open (a reference the
 * owner holds keeps s valid). */
int rpc_sstream_submit(rpc_sstream *s, void (*fn)(void *arg), void *arg);

/* Raises this stream's queue bound (rpc_sstream_send's RPC_SSTREAM_FULL)
 * from the server's stream_queue_max to `max`, for a stream that carries
 * many watchers' messages. Any thread; never lowers it. Nothing is
 * allocated now: the ring (8 bytes a slot) doubles when it fills up, to
 * `max` at most; a send that finds no memory to grow it says FULL. */
void rpc_sstream_set_queue_max(rpc_sstream *s, size_t max);

/* ---- status helpers ---------------------------------------------------- */

/* "OK", "INVALID_ARGUMENT", ... for logs; never NULL. */
const char *rpc_status_name(grpc_status_code code);

#endif
