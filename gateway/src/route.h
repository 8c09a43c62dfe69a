/* route.h - the gateway's route table and path matching.
 *
 * The wire contract's paths live in one table (route.c). Matching works on
 * the raw, still percent-encoded path: it is split on '/' first and each
 * segment is decoded afterwards, so an encoded "%2F" can never create a new
 * segment. Matching is exact: no trailing slash, no empty segment, no dot
 * segments; anything else is "not found".
 */
#ifndef GW_ROUTE_H
#define GW_ROUTE_H

#include <stddef.h>

typedef enum {
  GW_R_GROUPS = 0,      /* GET  /api/message_groups */
  GW_R_MESSAGES_LIST,   /* GET  /api/messages/{message_group_uuid} */
  GW_R_MESSAGES_CREATE, /* POST /api/messages */
  GW_R_USER_SHORT,      /* GET  /api/users/@{handle}/short */
  GW_R_HEALTHZ,         /* GET  /healthz */
  GW_R_READYZ,          /* GET  /readyz */
  GW_R_METRICS,         /* GET  /metrics */
  GW_R_OPENAPI,         /* GET  /openapi.json */
  GW_R_EVENTS,          /* GET  /api/events (server-sent events, sse.c) */
  GW_R_COUNT,
  GW_R_NONE = GW_R_COUNT, /* unmatched path (metrics label "unmatched") */
  GW_R_STATIC             /* a file of the web client (metrics label "static") */
} gw_route_id;

/* Longest decoded path parameter we keep; longer segments do not match. */
#define GW_PARAM_MAX 128

typedef struct gw_route {
  gw_route_id id;
  const char *method;  /* "GET" or "POST" */
  const char *pattern; /* "{name}" is a parameter segment, "@{name}" one that starts with '@' */
  const char *label;   /* metrics and log label: the pattern */
  int auth;            /* 1 when a Cognito access token is required */
} gw_route;

typedef enum {
  GW_MATCH_OK = 0,   /* method and path match: out->route is set */
  GW_MATCH_OPTIONS,  /* OPTIONS on a known path: out->route and out->allow are set */
  GW_MATCH_METHOD,   /* known path, other method (405): out->route and out->allow set */
  GW_MATCH_NOT_FOUND /* no such path (404) */
} gw_match_code;

typedef struct gw_match {
  const gw_route *route;        /* reference into the static table */
  char param[GW_PARAM_MAX + 1]; /* decoded parameter ("" when the route has none; no '@') */
  char allow[64];               /* "GET, HEAD, OPTIONS" for 405 and OPTIONS */
} gw_match;

/* The table, GW_R_COUNT entries indexed by gw_route_id. */
const gw_route *gw_route_table(void);

/* Matches `method` and the raw (encoded) `path` (without the query string);
 * HEAD matches the GET routes.
 * *out is written only for codes other than GW_MATCH_NOT_FOUND. */
gw_match_code gw_route_match(const char *method, const char *path, gw_match *out);

/* Percent-decodes src[0..len) into dst (cap bytes incl. NUL). '+' stays '+'.
 * Returns the decoded length, or -1 for a bad escape, a decoded NUL or a
 * result that does not fit (dst then holds garbage). */
long gw_pct_decode(const char *src, size_t len, char *dst, size_t cap);

#endif
