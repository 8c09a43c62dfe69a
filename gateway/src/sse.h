/* sse.h - GET /api/events: live events as server-sent events (sse.c).
 *
 * Each SSE stream is one watch (wmux.c) on the process's one messages-svc
 * WatchMany call. The request's own connection thread does the handshake:
 * it checks the caps, starts the watch and waits for its first event (or
 * its error, which it answers as JSON like any route). Then the socket leaves the HTTP
 * server (gw_http_stream) for the hub's one event-loop thread, which holds
 * every stream: non-blocking writes, a bounded output buffer per stream, a
 * keep-alive comment, the token's expiry, and the drain. No thread per
 * stream.
 *
 * Events cross from the channel's thread (the watch callbacks, which must
 * not block) to the loop through a per-stream queue under the hub's mutex and
 * an eventfd; see sse.c for who owns what when.
 */
#ifndef GW_SSE_H
#define GW_SSE_H

#include <stdint.h>

#include "cruddur/rpc_client.h"

struct gw_req;
struct gw_http;

/* Error codes of GET /api/events (JSON bodies as every other route). */
#define GW_E_LAST_EVENT_ID "last_event_id_invalid" /* 400 */
#define GW_E_STREAMS_USER "too_many_streams"       /* 429: GATEWAY_SSE_MAX_PER_USER */
#define GW_E_STREAMS_FULL "streams_unavailable"    /* 503: GATEWAY_SSE_MAX_STREAMS, upstream cap */
#define GW_E_SHUTTING_DOWN "shutting_down"         /* 503: the gateway drains */

/* Longest Last-Event-ID (resume token) accepted: printable ASCII, no blank. */
#define GW_SSE_ID_MAX 512
/* Events queued for one stream between the channel thread and the loop;
 * past it the stream is dropped (the client resumes with Last-Event-ID). */
#define GW_SSE_QUEUE_MAX 256
/* Bytes waiting to be written to one client; past it the client is too
 * slow and is dropped (it resumes with Last-Event-ID). */
#define GW_SSE_OUT_MAX (256 * 1024)
/* Bytes a client may send on a stream (it has nothing to say) before it is
 * dropped. */
#define GW_SSE_RX_MAX 4096
/* Retry-After (seconds) of the 429 and 503 cap answers. */
#define GW_SSE_RETRY_AFTER_S 5

typedef struct gw_sse gw_sse;

typedef struct gw_sse_config {
  rpc_channel *messages;  /* reference: the WatchMany call goes here; outlives the hub */
  long max_streams;       /* open streams in this process (503 above) */
  long max_per_user;      /* open streams of one user (429 above) */
  int64_t keepalive_us;   /* a comment line after this long without a write */
  int64_t handshake_ms;   /* the first event must come within this (else 504) */
} gw_sse_config;

/* Starts the hub and its loop thread. Returns 0 and sets *out, or -1
 * (nothing left allocated or running). */
int gw_sse_start(const gw_sse_config *cfg, gw_sse **out);

/* The handler of GET /api/events (the caller is authenticated: r->caller).
 * Answers an error as JSON, or the stream's head and first event, after
 * which the socket belongs to the hub. May block up to handshake_ms. */
int gw_sse_open(gw_sse *h, struct gw_req *r, struct gw_http *c);

/* Drain: from now on new streams answer 503 `shutting_down`, and every
 * open stream is ended (its socket closed, its watch cancelled), so clients
 * reconnect to another replica. Returns at once. */
void gw_sse_quiesce(gw_sse *h);

/* Waits (until `until_us`, ts_mono_us clock) for every stream's watch to
 * end, ends the WatchMany call, then stops the loop and frees the hub:
 * returns 0. Returns -1 and leaves the hub allocated when watches or the
 * call are still running (their callbacks still point into it). No
 * gw_sse_open may be running or start. */
int gw_sse_stop(gw_sse *h, int64_t until_us);

/* Streams open now (for /metrics). */
long gw_sse_open_count(gw_sse *h);

/* For /metrics: watches not yet ended, whether the WatchMany call is open,
 * and how many WatchMany calls were opened since the start. */
void gw_sse_upstream(gw_sse *h, long *watches, int *call_open, uint64_t *calls_opened);

#endif
