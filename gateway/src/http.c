/* http.c - the per-request pipeline and responses (server.c reads the
 * requests and calls in here).
 *
 * Order of checks for a request (each may answer and stop):
 *   the head itself (h1.c, answered by server.c: 400 bad_request for
 *   malformed or ambiguous framing, 414, 431, 505) ->
 *   route (404 / 405 + Allow) -> CORS preflight (OPTIONS, 204; also for
 *   an unknown /api/ path, so that the browser sees its 404) ->
 *   bearer token (401 / 503) -> caller's user (403) ->
 *   for a body: Content-Type (415), Content-Length (413) -> body, capped
 *   while streaming (413) -> the route's handler.
 * Authentication comes before the body is read or parsed (the original
 * parsed first and answered unauthenticated callers with 400/500).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cruddur/log.h"
#include "cruddur/ts.h"
#include "cruddur/uuid.h"
#include "errmap.h"
#include "gateway.h"

static const char JSON[] = "application/json";

/* ---- responses ----------------------------------------------------------- */

gw_result gw_reply(gw_req *r, gw_http *c, int status, char *body, const char *content_type,
                   const gw_hdr *extra, size_t n_extra) {
  gw_hdr h[8 + 4];
  size_t n = 0;
  if (n_extra > 4) {
    free(body);
    return GW_NO;
  }
  if (content_type != NULL) h[n++] = (gw_hdr){"Content-Type", content_type};
  h[n++] = (gw_hdr){"X-Request-Id", r->rid};
  h[n++] = (gw_hdr){"Vary", "Origin"};
  h[n++] = (gw_hdr){"Cache-Control", "no-store"};
  h[n++] = (gw_hdr){"X-Content-Type-Options", "nosniff"};
  if (r->cors_ok) {
    h[n++] = (gw_hdr){"Access-Control-Allow-Origin", r->origin};
    h[n++] = (gw_hdr){"Access-Control-Expose-Headers", GW_CORS_EXPOSE_HEADERS};
  }
  for (size_t i = 0; i < n_extra; i++)
    h[n++] = extra[i];
  if (!gw_http_respond(c, status, h, n, body, body != NULL ? strlen(body) : 0, body)) return GW_NO;
  r->status = status;
  r->phase = GW_PHASE_ANSWERED;
  return GW_YES;
}

gw_result gw_reply_errors(gw_req *r, gw_http *c, int status, const char *const *codes, size_t n,
                          int retry_after) {
  char ra[16];
  gw_hdr h[1] = {{NULL, NULL}};
  size_t nh = 0;
  if (retry_after > 0) {
    snprintf(ra, sizeof ra, "%d", retry_after);
    h[nh++] = (gw_hdr){"Retry-After", ra};
  }
  char *body = gw_error_body(codes, n);
  if (body == NULL) return GW_NO;
  return gw_reply(r, c, status, body, JSON, h, nh);
}

gw_result gw_reply_error(gw_req *r, gw_http *c, int status, const char *code) {
  return gw_reply_errors(r, c, status, &code, 1, status == 503 ? 1 : 0);
}

gw_result gw_reply_grpc(gw_req *r, gw_http *c, grpc_status_code code, const char *not_found_code,
                        const char *invalid_code) {
  gw_status s;
  gw_status_from_grpc(code, not_found_code, invalid_code, &s);
  return gw_reply_errors(r, c, s.http, &s.code, 1, s.retry_after);
}

/* 401: `{}` as the original, with the RFC 6750 challenge (error="invalid_token"
 * only when a Bearer token was sent; a missing header or another scheme such
 * as Basic gets the bare challenge). */
static gw_result reply_401(gw_req *r, gw_http *c, int token_given) {
  gw_hdr h = {"WWW-Authenticate", token_given ? "Bearer error=\"invalid_token\"" : "Bearer"};
  char *body = strdup("{}");
  if (body == NULL) return GW_NO;
  return gw_reply(r, c, 401, body, JSON, &h, 1);
}

/* ---- upstream calls ------------------------------------------------------ */

/* Metrics and the log line of an upstream call that took since t0. */
static void call_done(gw_req *r, gw_upstream_method m, const ProtobufCServiceDescriptor *svc,
                      const char *method, int64_t t0, grpc_status_code code,
                      const rpc_status *st) {
  gw_metrics_upstream(m, (int)code, ts_mono_us() - t0);
  if (code != GRPC_STATUS_OK && code != GRPC_STATUS_NOT_FOUND &&
      code != GRPC_STATUS_INVALID_ARGUMENT)
    log_warn("upstream %s.%s failed: code %d (%s) request_id %s", svc->short_name, method,
             (int)code, st->message, r->rid);
}

grpc_status_code gw_call(gw_req *r, gw_upstream_method m, rpc_channel *ch,
                         const ProtobufCServiceDescriptor *svc, const char *method,
                         const ProtobufCMessage *req, ProtobufCMessage **resp) {
  rpc_status st;
  int64_t t0 = ts_mono_us();
  ProtobufCAllocator alloc;
  rpc_arena_allocator(&r->mem, &alloc);
  grpc_status_code code =
      rpc_unary_alloc(ch, svc, method, req, resp, r->app->rpc_timeout_ms, r->rid, &alloc, &st);
  call_done(r, m, svc, method, t0, code, &st);
  return code;
}

grpc_status_code gw_call_decode(gw_req *r, gw_upstream_method m, rpc_channel *ch,
                                const ProtobufCServiceDescriptor *svc, const char *method,
                                const ProtobufCMessage *req, rpc_decode_fn decode, void *user) {
  rpc_status st;
  int64_t t0 = ts_mono_us();
  grpc_status_code code = rpc_unary_decode(ch, svc, method, req, r->app->rpc_timeout_ms, r->rid,
                                           decode, user, &st);
  call_done(r, m, svc, method, t0, code, &st);
  return code;
}

/* ---- the caller --------------------------------------------------------- */

int gw_resolve_caller(gw_req *r, gw_http *c, const char *sub, gw_result *result) {
  gw_app *app = r->app;
  int64_t now = ts_mono_us();
  if (gw_ucache_get(app->ucache, sub, now, &r->caller)) {
    gw_metrics_user_cache(1);
    return 0;
  }
  gw_metrics_user_cache(0);
  Cruddur__Users__V1__GetUserRequest req = CRUDDUR__USERS__V1__GET_USER_REQUEST__INIT;
  req.key_case = CRUDDUR__USERS__V1__GET_USER_REQUEST__KEY_COGNITO_USER_ID;
  req.cognito_user_id = (char *)sub;
  ProtobufCMessage *out = NULL;
  grpc_status_code code =
      gw_call(r, GW_UP_GET_USER, app->users, &cruddur__users__v1__users_service__descriptor,
              "GetUser", &req.base, &out);
  if (code == GRPC_STATUS_NOT_FOUND || code == GRPC_STATUS_INVALID_ARGUMENT) {
    /* A valid token whose sub has no users row (or one users-svc cannot
     * hold): the person exists in Cognito but not here. */
    *result = gw_reply_error(r, c, 403, GW_E_NOT_PROVISIONED);
    return -1;
  }
  if (code != GRPC_STATUS_OK) {
    *result = gw_reply_grpc(r, c, code, GW_E_NOT_PROVISIONED, NULL);
    return -1;
  }
  gw_user usr;
  if (gw_user_from_pb(((Cruddur__Users__V1__GetUserResponse *)out)->user, &usr) != 0) {
    *result = gw_reply_error(r, c, 502, GW_E_UPSTREAM);
    return -1;
  }
  gw_ucache_put(app->ucache, sub, &usr, now);
  r->caller = usr;
  return 0;
}

/* ---- abuse limits --------------------------------------------------------- */

/* The client's address: the peer, or behind a trusted proxy what it says in
 * X-Forwarded-For (the last such header: the one a proxy appends to). */
static void client_key(gw_req *r, gw_http *c, uint8_t key[16]) {
  gw_addr peer, client;
  memset(&peer, 0, sizeof peer);
  gw_addr_from_sockaddr(gw_http_peer(c), &peer);
  size_t n = 0;
  const char *xff = gw_http_header_last(c, "X-Forwarded-For", &n);
  gw_client_addr(&peer, &r->app->trusted_proxies, xff, n, &client);
  gw_addr_rate_key(&client, key);
}

int gw_rate_check(gw_req *r, gw_http *c, gw_limit l, gw_result *result) {
  gw_rl *rl = r->app->limits[l];
  if (rl == NULL) return 0;
  uint8_t key[16];
  if (l == GW_LIMIT_SHORT)
    client_key(r, c, key);
  else
    gw_rl_key_uuid(r->caller.uuid, key);
  int retry_after = 0;
  if (gw_rl_take(rl, key, ts_mono_us(), &retry_after)) return 0;
  gw_metrics_rate_limited(l);
  const char *code = GW_E_RATE_LIMITED;
  *result = gw_reply_errors(r, c, 429, &code, 1, retry_after);
  return -1;
}

/* ---- the pipeline -------------------------------------------------------- */

static int content_type_json(const char *ct) {
  static const char want[] = "application/json";
  if (ct == NULL) return 0;
  while (*ct == ' ')
    ct++;
  size_t n = sizeof want - 1;
  if (strncasecmp(ct, want, n) != 0) return 0;
  ct += n;
  while (*ct == ' ')
    ct++;
  return *ct == '\0' || *ct == ';';
}

/* allow: the route's methods, or NULL for a path that is not ours (no Allow). */
static gw_result preflight(gw_req *r, gw_http *c, const char *allow) {
  gw_hdr h[4];
  size_t n = 0;
  if (allow != NULL) h[n++] = (gw_hdr){"Allow", allow};
  if (r->cors_ok) {
    h[n++] = (gw_hdr){"Access-Control-Allow-Methods", GW_CORS_ALLOW_METHODS};
    h[n++] = (gw_hdr){"Access-Control-Allow-Headers", GW_CORS_ALLOW_HEADERS};
    h[n++] = (gw_hdr){"Access-Control-Max-Age", GW_CORS_MAX_AGE};
  }
  return gw_reply(r, c, 204, NULL, NULL, h, n);
}

/* A browser's preflight from an allowed origin for a path under /api/ that
 * is not ours (the original frontend's /api/activities/... feeds). Answered
 * 204 so that the browser goes on to the request itself and the page sees
 * that route's 404 and JSON body, not a CORS failure. */
static int unknown_api_preflight(const gw_req *r, gw_http *c, const char *url, const char *method) {
  return r->cors_ok && strcmp(method, "OPTIONS") == 0 && strncmp(url, "/api/", 5) == 0 &&
         gw_http_header(c, "Access-Control-Request-Method", NULL) != NULL;
}

/* Not an API path: the web client's files (when GATEWAY_STATIC_DIR is set)
 * for GET and HEAD. Returns 1 when it answered (*res set), 0 to go on. */
static int serve_static(gw_req *r, gw_http *c, const char *url, const char *method,
                        gw_result *res) {
#ifdef GW_HAVE_STATIC
  if (r->app->site == NULL || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)) return 0;
  char path[1024];
  long n = gw_pct_decode(url, strlen(url), path, sizeof path);
  /* A decoded NUL would cut the name short in C strings: no file has one. */
  if (n < 0 || memchr(path, '\0', (size_t)n) != NULL) return 0;
  static_site_answer a;
  if (!static_site_respond(r->app->site, path, gw_http_header(c, "If-None-Match", NULL), &a))
    return 0;
  r->route = GW_R_STATIC;
  gw_hdr h[7];
  size_t nh = 0;
  h[nh++] = (gw_hdr){"X-Request-Id", r->rid};
  h[nh++] = (gw_hdr){"ETag", a.etag};
  h[nh++] = (gw_hdr){"Cache-Control", "no-cache"};
  h[nh++] = (gw_hdr){"X-Content-Type-Options", "nosniff"};
  h[nh++] = (gw_hdr){"Referrer-Policy", "no-referrer"};
  if (a.content_type != NULL) h[nh++] = (gw_hdr){"Content-Type", a.content_type};
  if (a.csp != NULL) h[nh++] = (gw_hdr){"Content-Security-Policy", a.csp};
  /* The body lives as long as the site, which outlives every connection. */
  *res = gw_http_respond(c, (int)a.status, h, nh, a.body, a.len, NULL) ? GW_YES : GW_NO;
  if (*res == GW_YES) {
    r->status = (int)a.status;
    r->phase = GW_PHASE_ANSWERED;
  }
  return 1;
#else
  (void)r, (void)c, (void)url, (void)method, (void)res;
  return 0;
#endif
}

/* The request id and the CORS verdict, read once on the first call. */
static void req_ids(gw_req *r, gw_http *c) {
  const char *rid = gw_http_header(c, "X-Request-Id", NULL);
  if (gw_token_valid(rid)) {
    strcpy(r->rid, rid);
  } else if (uuid_new(r->rid) != 0) {
    strcpy(r->rid, "no-request-id");
  }
  const char *origin = gw_http_header(c, "Origin", NULL);
  if (gw_cors_allowed(&r->app->cors, origin) && strlen(origin) <= GW_CORS_ORIGIN_MAX) {
    strcpy(r->origin, origin);
    r->cors_ok = 1;
  }
}

/* The first call for a request: headers are in, no body yet. Either answers
 * (phase ANSWERED), runs a body-less handler, or asks for the body. */
static gw_result on_headers(gw_req *r, gw_http *c, const char *url, const char *method) {
  r->match_code = gw_route_match(method, url, &r->match);
  if (r->match_code == GW_MATCH_NOT_FOUND) {
    gw_result res;
    if (serve_static(r, c, url, method, &res)) return res;
    if (unknown_api_preflight(r, c, url, method)) return preflight(r, c, NULL);
    return gw_reply_error(r, c, 404, GW_E_NOT_FOUND);
  }
  r->route = r->match.route->id;
  if (r->match_code == GW_MATCH_OPTIONS) return preflight(r, c, r->match.allow);
  if (r->match_code == GW_MATCH_METHOD) {
    gw_hdr h = {"Allow", r->match.allow};
    const char *code = GW_E_METHOD;
    char *body = gw_error_body(&code, 1);
    if (body == NULL) return GW_NO;
    return gw_reply(r, c, 405, body, JSON, &h, 1);
  }

  if (r->match.route->auth) {
#ifdef GW_HAVE_AUTH
    const char *authz = gw_http_header(c, "Authorization", NULL);
    char sub[129];
    auth_code ac = auth_verify_header(r->app->auth, authz, sub);
    if (ac == AUTH_E_JWKS_UNAVAILABLE) return gw_reply_error(r, c, 503, GW_E_AUTH_UNAVAILABLE);
    if (ac == AUTH_E_NOMEM) return gw_reply_error(r, c, 503, GW_E_INTERNAL);
    if (ac != AUTH_OK) {
      log_debug("auth rejected: %s request_id %s", auth_strerror(ac), r->rid);
      return reply_401(r, c, ac != AUTH_E_MISSING);
    }
    gw_result res;
    if (gw_resolve_caller(r, c, sub, &res) != 0) return res;
#else
    (void)reply_401;
    return gw_reply_error(r, c, 503, GW_E_AUTH_UNAVAILABLE);
#endif
  }

  if (strcmp(r->match.route->method, "POST") != 0) return gw_handlers[r->route](r, c);

  const char *ct = gw_http_header(c, "Content-Type", NULL);
  if (!content_type_json(ct)) return gw_reply_error(r, c, 415, GW_E_MEDIA_TYPE);
  const char *cl = gw_http_header(c, "Content-Length", NULL);
  if (cl != NULL) {
    char *end = NULL;
    unsigned long long n = strtoull(cl, &end, 10);
    if (end == cl || n > GW_BODY_MAX) return gw_reply_error(r, c, 413, GW_E_TOO_LARGE);
  }
  r->body = malloc(GW_BODY_MAX + 1);
  if (r->body == NULL) return GW_NO;
  r->phase = GW_PHASE_BODY;
  return GW_YES;
}

gw_req *gw_req_new(gw_app *app, gw_http *c, int head_ok) {
  gw_req *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->mem = (arena)ARENA_INIT(GW_ARENA_CHUNK, GW_ARENA_MAX);
  r->app = app;
  r->t0_us = ts_mono_us();
  r->route = GW_R_NONE;
  atomic_fetch_add(&app->in_flight, 1);
  if (head_ok) {
    req_ids(r, c);
  } else if (uuid_new(r->rid) != 0) {
    strcpy(r->rid, "no-request-id");
  }
  return r;
}

int gw_req_head(gw_req *r, gw_http *c) {
  if (on_headers(r, c, gw_http_path(c), gw_http_method(c)) == GW_NO) return 0;
  return r->phase == GW_PHASE_BODY;
}

void gw_req_body_data(void *ctx, const char *data, size_t n) {
  gw_req *r = ctx;
  if (r->discarded > 0 || r->body_len + n > GW_BODY_MAX) {
    r->discarded += n; /* over the cap while streaming (chunked or a lying length) */
    return;
  }
  memcpy(r->body + r->body_len, data, n);
  r->body_len += n;
}

int gw_req_body_over(const gw_req *r) {
  return r->discarded > 0;
}

gw_result gw_req_body_end(gw_req *r, gw_http *c) {
  if (r->discarded > 0) return gw_reply_error(r, c, 413, GW_E_TOO_LARGE);
  r->body[r->body_len] = '\0';
  return gw_handlers[r->route](r, c);
}

void gw_req_done(gw_req *r, int sent) {
  int64_t dt = ts_mono_us() - r->t0_us;
  char st[16];
  if (r->status != 0 && sent)
    snprintf(st, sizeof st, "%d", r->status);
  else
    snprintf(st, sizeof st, "%s", r->status != 0 ? "aborted" : "closed");
  gw_metrics_request(r->route, r->status, dt);
  const char *label = r->route < GW_R_COUNT     ? gw_route_table()[r->route].label
                      : r->route == GW_R_STATIC ? "static"
                                                : "unmatched";
  log_request("http", label, st, dt, r->rid);
  atomic_fetch_sub(&r->app->in_flight, 1);
  free(r->body);
  arena_free(&r->mem);
  free(r);
}
