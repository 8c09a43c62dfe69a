/* rpc_client.h - unary, server-streaming and bidirectional gRPC calls from
 * C, one channel per upstream.
 *
 * A channel is thread-safe and meant to live for the process. Each unary
 * call uses its own completion queue (pluck), so any thread may call at any
 * time. Streams of a channel share one completion queue and one thread.
 */
#ifndef CRUDDUR_RPC_CLIENT_H
#define CRUDDUR_RPC_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#include "cruddur/arena.h"

typedef struct rpc_channel rpc_channel;

/* The outcome of a call. `message` is the server's status message (or a local
 * reason such as "deadline exceeded"), truncated to fit. */
typedef struct rpc_status {
  grpc_status_code code;
  char message[256];
} rpc_status;

/* Opens an insecure channel to `target` ("127.0.0.1:50051", "dns:///svc:50051",
 * "ipv4:127.0.0.1:1,127.0.0.1:2"). Calls are spread round-robin over every
 * address the target resolves to (a headless Service: one per ready pod);
 * the name is resolved again when a connection ends (servers made by
 * rpc_server_start end each connection after max_conn_age_ms).
 * Returns NULL only on out-of-memory or an empty target. Free with
 * rpc_channel_close. Connection happens lazily.
 * Reconnection: while the upstream is unreachable, calls fail fast with
 * UNAVAILABLE (they do not wait for a connection); the channel retries after
 * 100 ms, backing off to at most 1 s between attempts, so an upstream that
 * comes back is used again within about a second. Keepalive pings every 20 s
 * (also when idle; servers made by rpc_server_start allow that rate) drop a
 * connection whose peer stopped answering for 20 s (rpc_internal.h says why
 * not less). */
rpc_channel *rpc_channel_open(const char *target);

/* rpc_channel_open, plus a retry policy for the methods in `retry_paths`
 * (NULL-terminated "/package.Service/Method" paths, at most
 * RPC_RETRY_PATHS_MAX; NULL or empty: none): calls that are safe to repeat,
 * such as reads. Such a call that ends UNAVAILABLE or CANCELLED (what gRPC
 * core answers a call that reached a server whose shutdown had begun, before
 * any handler) is tried again, up to
 * RPC_RETRY_ATTEMPTS attempts in all, 50 ms then 100 ms apart (jittered),
 * within its deadline, unless a handler produced the status: servers made
 * by rpc_server_start mark every status a handler returned "do not retry"
 * (grpc-retry-pushback-ms: -1). What is retried is thus a call that found no
 * ready connection (an upstream restarting), that a draining server refused
 * before any handler ran, or whose connection died under it. The last may
 * have reached a handler: that is why only methods safe to repeat belong in
 * the list. Retries are throttled (gRPC's retryThrottling): once about half
 * of recent calls fail, calls fail fast again, so an upstream that is down
 * costs no extra load. Every method, listed or not, keeps gRPC's transparent
 * retry of a call the server provably never saw (a stream refused by a
 * GOAWAY'd connection), which is safe for any call.
 * On such a channel, a call of any method that finds no ready connection
 * (its upstream restarting, or a replacement not yet connected to) waits for
 * one within its deadline (gRPC's wait_for_ready): a call not yet sent can
 * wait safely. A call that still found none (DEADLINE_EXCEEDED or
 * UNAVAILABLE) makes the next calls fail fast, without waiting, for 5 s: an
 * upstream that is down costs one deadline per 5 s, then answers at once. */
#define RPC_RETRY_PATHS_MAX 32
#define RPC_RETRY_ATTEMPTS 3
rpc_channel *rpc_channel_open_retry(const char *target, const char *const *retry_paths);

/* rpc_channel_open for long-lived server streams (rpc_stream_start): gRPC's
 * retry machinery is off (GRPC_ARG_ENABLE_RETRIES=0), which keeps per call
 * a retry state and a second call attempt: about 8 KiB of each idle
 * stream's memory on gRPC 1.51 (gateway README, "Memory of idle streams").
 * A stream cannot be retried by gRPC anyway once a message has arrived;
 * its owner resumes it (e.g. WatchEvents' resume token). A separate
 * connection from channels opened otherwise (the channel arguments
 * differ). */
rpc_channel *rpc_channel_open_streams(const char *target);

/* Closes and frees the channel. NULL is a no-op. */
void rpc_channel_close(rpc_channel *ch);

/* Calls `method` (its name as in the .proto, e.g. "GetUser") of `svc` with
 * `req`, waiting at most timeout_ms. `request_id` (may be NULL or "") is sent
 * as x-request-id metadata.
 * On GRPC_STATUS_OK, *resp is the decoded response, owned by the caller: free
 * with protobuf_c_message_free_unpacked(*resp, NULL). On any other status
 * *resp is left NULL. `st` (may be NULL) receives code and message. Returns
 * the status code. An unknown method name is GRPC_STATUS_UNIMPLEMENTED.
 * timeout_ms <= 0 answers DEADLINE_EXCEEDED without sending anything, so a
 * handler can pass rpc_call_remaining_ms() straight through. A malformed
 * request_id is not sent (the call still goes). */
grpc_status_code rpc_unary(rpc_channel *ch,
                           const ProtobufCServiceDescriptor *svc,
                           const char *method,
                           const ProtobufCMessage *req,
                           ProtobufCMessage **resp,
                           int64_t timeout_ms,
                           const char *request_id,
                           rpc_status *st);

/* rpc_unary, with the response unpacked through `alloc` (NULL: malloc).
 * Free *resp with protobuf_c_message_free_unpacked(*resp, alloc), or, for
 * an arena allocator (rpc_arena_allocator), by releasing the arena. */
grpc_status_code rpc_unary_alloc(rpc_channel *ch,
                                 const ProtobufCServiceDescriptor *svc,
                                 const char *method,
                                 const ProtobufCMessage *req,
                                 ProtobufCMessage **resp,
                                 int64_t timeout_ms,
                                 const char *request_id,
                                 ProtobufCAllocator *alloc,
                                 rpc_status *st);

/* Fills `out` with a protobuf-c allocator that draws from `a` and never
 * frees single blocks: a response unpacked with it is released by
 * arena_rewind / arena_free, not message by message. `a` must outlive
 * every message unpacked with it. */
void rpc_arena_allocator(arena *a, ProtobufCAllocator *out);

/* ---- streams: server streaming, bidirectional, client streaming ------- */

typedef struct rpc_stream rpc_stream;

/* One message of the stream. `msg` is valid only during the call. Return 0
 * to keep reading, -1 to cancel the stream (on_end follows with CANCELLED). */
typedef int (*rpc_stream_msg_fn)(void *user, const ProtobufCMessage *msg);

/* The stream ended: the server's status, the deadline, a cancel, or a lost
 * connection. Called exactly once, after the last on_msg. */
typedef void (*rpc_stream_end_fn)(void *user, const rpc_status *st);

/* Starts a server-streaming call of `method` on `svc` with `req`.
 * timeout_ms <= 0 means no deadline. Callbacks run on one thread owned by
 * the channel (all streams of a channel share it, driven by one completion
 * queue): they must not block. Returns NULL (st filled, no callback will
 * ever run) when the call cannot start, e.g. the method is not a
 * server-streaming method of svc. Otherwise the caller holds one reference,
 * released by rpc_stream_release. `user` must stay valid until on_end has
 * returned.
 * The channel's stream thread starts with its first stream; close the
 * channel only after every stream's on_end has returned and every stream
 * was released. A message the client cannot decode ends the stream with
 * INTERNAL. */
rpc_stream *rpc_stream_start(rpc_channel *ch,
                             const ProtobufCServiceDescriptor *svc,
                             const char *method,
                             const ProtobufCMessage *req,
                             int64_t timeout_ms,
                             const char *request_id,
                             rpc_stream_msg_fn on_msg,
                             rpc_stream_end_fn on_end,
                             void *user,
                             rpc_status *st);

/* Asks the stream to end (on_end follows, with CANCELLED unless it already
 * ended otherwise). Thread-safe; any number of times while the caller holds
 * its reference. */
void rpc_stream_cancel(rpc_stream *s);

/* Starts a call of a method whose requests are a stream (bidirectional or
 * client streaming): as rpc_stream_start, with no first request; send with
 * rpc_stream_send. Returns NULL (st filled, no callback will run) when the
 * call cannot start, e.g. `method` is not such a method of svc. */
rpc_stream *rpc_stream_open(rpc_channel *ch,
                            const ProtobufCServiceDescriptor *svc,
                            const char *method,
                            int64_t timeout_ms,
                            const char *request_id,
                            rpc_stream_msg_fn on_msg,
                            rpc_stream_end_fn on_end,
                            void *user,
                            rpc_status *st);

/* At most this many messages wait to be written on one stream. */
#define RPC_STREAM_SEND_MAX 65536

/* Encodes msg now and queues it; messages go out in order, one write in
 * flight at a time. Thread-safe (also from inside on_msg), never blocks.
 * Returns 0, or -1 (nothing queued) when the stream is over or ending, the
 * client already half-closed, or RPC_STREAM_SEND_MAX messages wait.
 * msg must be of the method's input type (the server ends the call with
 * INVALID_ARGUMENT otherwise); the caller keeps it. A stream from
 * rpc_stream_start has half-closed already: always -1. Queued messages are
 * counted, not their bytes: the owner bounds their size. Those still
 * queued when the call ends are dropped. -1 also on out-of-memory. */
int rpc_stream_send(rpc_stream *s, const ProtobufCMessage *msg);

/* Half-closes: the server reads NULL after the queued messages.
 * Thread-safe; later calls do nothing. */
void rpc_stream_close_send(rpc_stream *s);

/* Messages queued by rpc_stream_send and not yet being written (for
 * metrics and tests). */
size_t rpc_stream_send_queued(rpc_stream *s);

/* Drops the caller's reference (cancelling the stream if it still runs).
 * Exactly once; s must not be used afterwards. Callbacks may still run
 * until on_end has returned. */
void rpc_stream_release(rpc_stream *s);

/* grpc.health.v1.Health/Check for `service` ("" for the server as a whole).
 * Returns 1 when SERVING, 0 otherwise (including errors and timeouts). */
int rpc_health_check(rpc_channel *ch, const char *service, int64_t timeout_ms);

#endif
