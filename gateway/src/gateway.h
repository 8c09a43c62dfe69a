/* gateway.h - what the gateway's HTTP glue and its route handlers share.
 *
 * One gw_app per process (read-only after start, except atomics and the
 * caches, which lock themselves). One gw_req per HTTP request: it owns every
 * allocation made for that request and is freed in exactly one place,
 * gw_req_done(), when server.c has sent its answer (or given up).
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "cors.h"
#include "cruddur/arena.h"
#include "cruddur/rpc_client.h"
#include "metrics.h"
#include "netaddr.h"
#include "ratelimit.h"
#include "route.h"
#include "server.h"
#include "sse.h"
#include "pbjson.h"
#include "ucache.h"
#include "wire.h"

#ifdef GW_HAVE_AUTH
#include "auth.h"
#else
typedef struct auth auth;
#endif
#ifdef GW_HAVE_STATIC
#include "static_files.h"
#else
typedef struct static_site static_site;
#endif

/* Codes of answers the pipeline gives before any route is involved (the
 * request's framing itself is refused). */
#define GW_E_BAD_REQUEST "bad_request"
#define GW_E_REQUEST_TIMEOUT "request_timeout"
/* 429 from the abuse limits (README "Abuse limits"), with Retry-After. */
#define GW_E_RATE_LIMITED "rate_limited"
/* (h1.c's verdicts add uri_too_long 414, request_header_fields_too_large
 * 431 and http_version_not_supported 505.) */

/* What a handler or a pipeline step returns: GW_YES when a response is set,
 * GW_NO when none could be (the connection is then closed unanswered). */
typedef enum { GW_NO = 0, GW_YES = 1 } gw_result;

typedef struct gw_app {
  rpc_channel *users;    /* owned */
  rpc_channel *messages; /* owned */
  auth *auth;            /* owned; NULL when built without the auth module */
  static_site *site;     /* owned; the web client (GATEWAY_STATIC_DIR), or NULL */
  gw_ucache *ucache;     /* owned; Cognito sub -> user */
  gw_ucache *hcache;     /* owned; lower-case handle -> user (the public card) */
  gw_sse *sse;           /* owned; GET /api/events streams (sse.c) */
  gw_cors cors;
  gw_rl *limits[GW_LIMIT_COUNT]; /* owned; NULL: that limit is off */
  gw_cidrs trusted_proxies;      /* X-Forwarded-For is believed from these (GATEWAY_TRUSTED_PROXIES) */
  int64_t rpc_timeout_ms;
  int64_t health_timeout_ms;
  const unsigned char *openapi; /* static, embedded at build time */
  size_t openapi_len;
  atomic_long in_flight; /* requests whose head is in and whose answer is not sent */
} gw_app;

/* Most bytes of unpacked upstream responses one request may hold: a page
 * of GW_LIMIT_MAX messages at their longest is about 0.7 MiB. */
#define GW_ARENA_MAX (4 << 20)
/* Chunk size: a page of 20 messages fits in one. */
#define GW_ARENA_CHUNK (16 * 1024)

typedef enum { GW_PHASE_HEADERS = 0, GW_PHASE_BODY, GW_PHASE_ANSWERED } gw_phase;

typedef struct gw_req {
  gw_app *app; /* reference */
  gw_match match;
  gw_match_code match_code;
  gw_route_id route; /* GW_R_NONE when unmatched */
  gw_phase phase;
  int64_t t0_us;
  int status;  /* HTTP status queued; 0 until then */
  int cors_ok; /* the Origin is allowed */
  char origin[GW_CORS_ORIGIN_MAX + 1];
  char rid[GW_RID_MAX + 1];
  gw_user caller; /* set for authenticated routes */
  char *body;     /* owned; up to GW_BODY_MAX bytes + NUL */
  arena mem;      /* owned; upstream responses (gw_call), freed with the request */
  size_t body_len;
  size_t discarded; /* body bytes dropped past the cap */
} gw_req;

/* Queues `body` (malloc'd, owned by the response from here on; NULL means
 * an empty body) with `status` plus the common headers (X-Request-Id,
 * Vary: Origin, CORS, Cache-Control) and `extra`. Returns GW_YES/GW_NO. */
gw_result gw_reply(gw_req *r, gw_http *c, int status, char *body, const char *content_type,
                   const gw_hdr *extra, size_t n_extra);

/* Queues a JSON error array of `n` static codes; `retry_after` > 0 adds
 * Retry-After. */
gw_result gw_reply_errors(gw_req *r, gw_http *c, int status, const char *const *codes, size_t n,
                          int retry_after);

/* One code. */
gw_result gw_reply_error(gw_req *r, gw_http *c, int status, const char *code);

/* Queues the answer for a non-OK upstream status via the one mapping. */
gw_result gw_reply_grpc(gw_req *r, gw_http *c, grpc_status_code code, const char *not_found_code,
                        const char *invalid_code);

/* A unary upstream call with the configured deadline, the request id as
 * x-request-id, and metrics. Same contract as rpc_unary, except that *resp
 * is unpacked into r->mem: it lives until the request is done and is never
 * freed on its own (one arena instead of an allocation per field). */
grpc_status_code gw_call(gw_req *r, gw_upstream_method m, rpc_channel *ch,
                         const ProtobufCServiceDescriptor *svc, const char *method,
                         const ProtobufCMessage *req, ProtobufCMessage **resp);

/* gw_call with the response's bytes handed to decode(user, ...) instead of
 * unpacked (rpc_unary_decode: nonzero from decode makes the call INTERNAL). */
grpc_status_code gw_call_decode(gw_req *r, gw_upstream_method m, rpc_channel *ch,
                                const ProtobufCServiceDescriptor *svc, const char *method,
                                const ProtobufCMessage *req, rpc_decode_fn decode, void *user);

/* Route handlers, indexed by gw_route_id (handlers.c). Each queues exactly
 * one response. Authenticated routes run after r->caller is set. */
typedef gw_result (*gw_handler)(gw_req *r, gw_http *c);
extern const gw_handler gw_handlers[GW_R_COUNT];

/* Resolves the caller's Cognito sub to a user (cache, then GetUser).
 * Returns 0 and fills r->caller, or queues the error response (403, 503,
 * 504, ...) and returns -1 with *result set. */
int gw_resolve_caller(gw_req *r, gw_http *c, const char *sub, gw_result *result);

/* Takes a token of limit `l` for this request: per user (r->caller) for
 * sends and starts, per client address for the public card. Returns 0 when
 * allowed or the limit is off; else queues 429 ["rate_limited"] with
 * Retry-After, counts it, and returns -1 with *result set. */
int gw_rate_check(gw_req *r, gw_http *c, gw_limit l, gw_result *result);

/* ---- the pipeline, called by server.c for each request ----------------- */

/* A request whose head is in (head_ok) or was refused (!head_ok: only its
 * answer and log line follow). Counts it in app->in_flight. Returns NULL on
 * out-of-memory (the connection is then closed). Freed by gw_req_done. */
gw_req *gw_req_new(gw_app *app, gw_http *c, int head_ok);

/* Judges the head: route, CORS, token, caller, Content-Type, announced
 * length. Returns 1 when the body is wanted (feed it to gw_req_body_data,
 * then call gw_req_body_end), else 0: a response is set (or none could be,
 * c has none: close). */
int gw_req_head(gw_req *r, gw_http *c);

/* gw_h1_body_fn for the body: keeps up to GW_BODY_MAX bytes. */
void gw_req_body_data(void *r, const char *data, size_t len);

/* 1 once the body went over GW_BODY_MAX (the caller answers 413 at once). */
int gw_req_body_over(const gw_req *r);

/* The whole body is in: runs the route's handler (or 413). */
gw_result gw_req_body_end(gw_req *r, gw_http *c);

/* The request is over (`sent`: its answer was written completely): metrics,
 * the log line, in_flight, and frees r. */
void gw_req_done(gw_req *r, int sent);

#endif
