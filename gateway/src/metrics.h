/* metrics.h - Prometheus counters and histograms, lock-free (relaxed atomics).
 *
 * One process-wide set; every function is thread-safe.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "route.h"

typedef enum {
  GW_UP_GET_USER = 0,
  GW_UP_LIST_GROUPS,
  GW_UP_LIST_MESSAGES,
  GW_UP_CREATE_MESSAGE,
  GW_UP_CREATE_GROUP,
  GW_UP_HEALTH,
  GW_UP_COUNT
} gw_upstream_method;

/* Counts one HTTP request: route (GW_R_NONE for unmatched, GW_R_STATIC for
 * the web client's files), status, duration. */
void gw_metrics_request(gw_route_id route, int status, int64_t duration_us);

/* Counts one upstream RPC with its gRPC status code (0..16) and duration. */
void gw_metrics_upstream(gw_upstream_method m, int grpc_code, int64_t duration_us);

/* The sub -> user cache. */
void gw_metrics_user_cache(int hit);

/* The handle -> user cache. */
void gw_metrics_handle_cache(int hit);

/* The abuse limits (README "Abuse limits"): per user, per client address. */
typedef enum {
  GW_LIMIT_SENDS = 0, /* POST /api/messages into a group, per user */
  GW_LIMIT_STARTS,    /* POST /api/messages with a handle, per user */
  GW_LIMIT_SHORT,     /* GET /api/users/@{handle}/short, per client address */
  GW_LIMIT_COUNT
} gw_limit;

/* Counts one request refused with 429 by limit `l`. */
void gw_metrics_rate_limited(gw_limit l);

/* Extra gauges/counters rendered after ours (token cache and JWKS figures). */
typedef struct gw_metrics_extra {
  uint64_t token_cache_hits, token_cache_misses, jwks_fetches, jwks_failures, auth_rejected;
  uint64_t token_cache_entries, user_cache_entries, handle_cache_entries, in_flight;
  uint64_t limit_entries[GW_LIMIT_COUNT], limit_evictions[GW_LIMIT_COUNT];
  uint64_t sse_streams; /* open event streams (sse.c) */
  uint64_t sse_watches, sse_call_open, sse_calls_opened; /* their watches, the WatchMany call (wmux.c) */
} gw_metrics_extra;

/* Renders the Prometheus text format (version 0.0.4). Returns a malloc'd
 * string (caller frees) or NULL on out-of-memory. */
char *gw_metrics_render(const gw_metrics_extra *extra);

#endif
