/* gateway.h - what the gateway's HTTP glue and its route handlers share.
 *
 * One gw_app per process (read-only after start, except atomics and the
 * caches, which lock themselves). One gw_req per HTTP request: it owns every
 * allocation made for that request and is freed in exactly one place,
 * gw_req_done(), when libmicrohttpd reports the request finished.
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>
#include <protobuf-c/protobuf-c.h>

#include "cors.h"
#include "cruddur/arena.h"
#include "cruddur/rpc_client.h"
#include "metrics.h"
#include "route.h"
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

/* One accepted connection, tracked so the request deadline (main.c's
 * reaper) can close a client that sends its request too slowly:
 * libmicrohttpd's own timeout only measures idleness. Allocated in the
 * MHD_CONNECTION_NOTIFY_STARTED callback, freed in ..._CLOSED (both in
 * main.c); the access handler and gw_req_done only flip its atomics. */
typedef struct gw_conn {
  struct gw_conn *prev, *next; /* app->conns list, under app->conns_mu */
  int fd;
  atomic_llong start_us; /* monotonic: accept, or the end of the previous request */
  atomic_int busy;       /* 1 once the request is fully received or answered */
  int reaped;            /* the reaper closed it (under conns_mu) */
} gw_conn;

typedef struct gw_app {
  rpc_channel *users;    /* owned */
  rpc_channel *messages; /* owned */
  auth *auth;            /* owned; NULL when built without the auth module */
  static_site *site;     /* owned; the web client (GATEWAY_STATIC_DIR), or NULL */
  gw_ucache *ucache;     /* owned; Cognito sub -> user */
  gw_ucache *hcache;     /* owned; lower-case handle -> user (the public card) */
  gw_cors cors;
  int64_t rpc_timeout_ms;
  int64_t health_timeout_ms;
  const unsigned char *openapi; /* static, embedded at build time */
  size_t openapi_len;
  atomic_long in_flight;
  pthread_mutex_t conns_mu; /* guards conns and each gw_conn's links/fd/reaped */
  gw_conn *conns;           /* open connections (see gw_conn) */
  int64_t request_timeout_us; /* whole request (head + body) deadline */
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

/* An extra response header. */
typedef struct gw_hdr {
  const char *name, *value;
} gw_hdr;

/* Queues `body` (malloc'd, owned by the response from here on; NULL means
 * an empty body) with `status` plus the common headers (X-Request-Id,
 * Vary: Origin, CORS, Cache-Control) and `extra`. Returns MHD_YES/MHD_NO. */
enum MHD_Result gw_reply(gw_req *r, struct MHD_Connection *c, int status, char *body,
                         const char *content_type, const gw_hdr *extra, size_t n_extra);

/* Queues a JSON error array of `n` static codes; `retry_after` > 0 adds
 * Retry-After. */
enum MHD_Result gw_reply_errors(gw_req *r, struct MHD_Connection *c, int status,
                                const char *const *codes, size_t n, int retry_after);

/* One code. */
enum MHD_Result gw_reply_error(gw_req *r, struct MHD_Connection *c, int status, const char *code);

/* Queues the answer for a non-OK upstream status via the one mapping. */
enum MHD_Result gw_reply_grpc(gw_req *r, struct MHD_Connection *c, grpc_status_code code,
                              const char *not_found_code, const char *invalid_code);

/* A unary upstream call with the configured deadline, the request id as
 * x-request-id, and metrics. Same contract as rpc_unary, except that *resp
 * is unpacked into r->mem: it lives until the request is done and is never
 * freed on its own (one arena instead of an allocation per field). */
grpc_status_code gw_call(gw_req *r, gw_upstream_method m, rpc_channel *ch,
                         const ProtobufCServiceDescriptor *svc, const char *method,
                         const ProtobufCMessage *req, ProtobufCMessage **resp);

/* Route handlers, indexed by gw_route_id (handlers.c). Each queues exactly
 * one response. Authenticated routes run after r->caller is set. */
typedef enum MHD_Result (*gw_handler)(gw_req *r, struct MHD_Connection *c);
extern const gw_handler gw_handlers[GW_R_COUNT];

/* Resolves the caller's Cognito sub to a user (cache, then GetUser).
 * Returns 0 and fills r->caller, or queues the error response (403, 503,
 * 504, ...) and returns -1 with *result set. */
int gw_resolve_caller(gw_req *r, struct MHD_Connection *c, const char *sub,
                      enum MHD_Result *result);

/* Marks the request on `c` fully received or answered: from here on the
 * request deadline no longer applies to it (http.c). */
void gw_conn_busy(struct MHD_Connection *c);

/* The libmicrohttpd access handler and completion callback (http.c). */
enum MHD_Result gw_on_request(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls);
void gw_req_done(void *cls, struct MHD_Connection *c, void **con_cls,
                 enum MHD_RequestTerminationCode toe);

#endif
