/* http.c - libmicrohttpd glue: the per-request pipeline and responses.
 *
 * Order of checks for a request (each may answer and stop):
 *   framing (400 bad_request: HTTP/1.1 without exactly one Host, more than
 *   one Content-Length, Content-Length with Transfer-Encoding, a
 *   Transfer-Encoding other than one "chunked") ->
 *   route (404 / 405 + Allow) -> CORS preflight (OPTIONS, 204) ->
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

/* Bytes of an oversized streamed body we read and drop so the client can
 * get its 413; past this the connection is closed instead. */
#define GW_DISCARD_MAX (256 * 1024)

static const char JSON[] = "application/json";

/* ---- the connection's request deadline ----------------------------------- */

/* Our record of `c` (main.c's NOTIFY_CONNECTION callback), or NULL when it
 * could not be allocated (that connection then has no request deadline). */
static gw_conn *conn_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci != NULL ? ci->socket_context : NULL;
}

void gw_conn_busy(struct MHD_Connection *c) {
  gw_conn *k = conn_of(c);
  if (k != NULL) atomic_store(&k->busy, 1);
}

/* ---- responses ----------------------------------------------------------- */

enum MHD_Result gw_reply(gw_req *r, struct MHD_Connection *c, int status, char *body,
                         const char *content_type, const gw_hdr *extra, size_t n_extra) {
  struct MHD_Response *resp;
  if (body != NULL)
    resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
  else
    resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (resp == NULL) {
    free(body);
    return MHD_NO;
  }
  if (content_type != NULL) MHD_add_response_header(resp, "Content-Type", content_type);
  MHD_add_response_header(resp, "X-Request-Id", r->rid);
  MHD_add_response_header(resp, "Vary", "Origin");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  if (r->cors_ok) {
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin);
    MHD_add_response_header(resp, "Access-Control-Expose-Headers", GW_CORS_EXPOSE_HEADERS);
  }
  for (size_t i = 0; i < n_extra; i++)
    MHD_add_response_header(resp, extra[i].name, extra[i].value);
  enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
  MHD_destroy_response(resp);
  if (ret == MHD_YES) {
    gw_conn_busy(c);
    r->status = status;
    r->phase = GW_PHASE_ANSWERED;
  }
  return ret;
}

enum MHD_Result gw_reply_errors(gw_req *r, struct MHD_Connection *c, int status,
                                const char *const *codes, size_t n, int retry_after) {
  char ra[16];
  gw_hdr h[1] = {{NULL, NULL}};
  size_t nh = 0;
  if (retry_after > 0) {
    snprintf(ra, sizeof ra, "%d", retry_after);
    h[nh++] = (gw_hdr){"Retry-After", ra};
  }
  char *body = gw_error_body(codes, n);
  if (body == NULL) return MHD_NO;
  return gw_reply(r, c, status, body, JSON, h, nh);
}

enum MHD_Result gw_reply_error(gw_req *r, struct MHD_Connection *c, int status, const char *code) {
  return gw_reply_errors(r, c, status, &code, 1, status == 503 ? 1 : 0);
}

enum MHD_Result gw_reply_grpc(gw_req *r, struct MHD_Connection *c, grpc_status_code code,
                              const char *not_found_code, const char *invalid_code) {
  gw_status s;
  gw_status_from_grpc(code, not_found_code, invalid_code, &s);
  return gw_reply_errors(r, c, s.http, &s.code, 1, s.retry_after);
}

/* 401: `{}` as the original, with the RFC 6750 challenge (error="invalid_token"
 * only when a Bearer token was sent; a missing header or another scheme such
 * as Basic gets the bare challenge). */
static enum MHD_Result reply_401(gw_req *r, struct MHD_Connection *c, int token_given) {
  gw_hdr h = {"WWW-Authenticate", token_given ? "Bearer error=\"invalid_token\"" : "Bearer"};
  char *body = strdup("{}");
  if (body == NULL) return MHD_NO;
  return gw_reply(r, c, 401, body, JSON, &h, 1);
}

/* ---- upstream calls ------------------------------------------------------ */

grpc_status_code gw_call(gw_req *r, gw_upstream_method m, rpc_channel *ch,
                         const ProtobufCServiceDescriptor *svc, const char *method,
                         const ProtobufCMessage *req, ProtobufCMessage **resp) {
  rpc_status st;
  int64_t t0 = ts_mono_us();
  ProtobufCAllocator alloc;
  rpc_arena_allocator(&r->mem, &alloc);
  grpc_status_code code =
      rpc_unary_alloc(ch, svc, method, req, resp, r->app->rpc_timeout_ms, r->rid, &alloc, &st);
  int64_t dt = ts_mono_us() - t0;
  gw_metrics_upstream(m, (int)code, dt);
  if (code != GRPC_STATUS_OK && code != GRPC_STATUS_NOT_FOUND &&
      code != GRPC_STATUS_INVALID_ARGUMENT)
    log_warn("upstream %s.%s failed: code %d (%s) request_id %s", svc->short_name, method,
             (int)code, st.message, r->rid);
  return code;
}

/* ---- the caller --------------------------------------------------------- */

int gw_resolve_caller(gw_req *r, struct MHD_Connection *c, const char *sub,
                      enum MHD_Result *result) {
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
  Cruddur__Users__V1__GetUserResponse *gr = (Cruddur__Users__V1__GetUserResponse *)out;
  const Cruddur__Users__V1__User *u = gr->user;
  gw_user usr;
  memset(&usr, 0, sizeof usr);
  if (u == NULL || !gw_uuid_normalise(u->uuid, usr.uuid) || u->handle == NULL ||
      strlen(u->handle) >= sizeof usr.handle || u->display_name == NULL ||
      strlen(u->display_name) >= sizeof usr.display_name) {
    *result = gw_reply_error(r, c, 502, GW_E_UPSTREAM);
    return -1;
  }
  strcpy(usr.handle, u->handle);
  strcpy(usr.display_name, u->display_name);
  gw_ucache_put(app->ucache, sub, &usr, now);
  r->caller = usr;
  return 0;
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

static enum MHD_Result preflight(gw_req *r, struct MHD_Connection *c) {
  gw_hdr h[4];
  size_t n = 0;
  h[n++] = (gw_hdr){"Allow", r->match.allow};
  if (r->cors_ok) {
    h[n++] = (gw_hdr){"Access-Control-Allow-Methods", GW_CORS_ALLOW_METHODS};
    h[n++] = (gw_hdr){"Access-Control-Allow-Headers", GW_CORS_ALLOW_HEADERS};
    h[n++] = (gw_hdr){"Access-Control-Max-Age", GW_CORS_MAX_AGE};
  }
  return gw_reply(r, c, 204, NULL, NULL, h, n);
}

/* Not an API path: the web client's files (when GATEWAY_STATIC_DIR is set)
 * for GET and HEAD. Returns 1 when it answered (*res set), 0 to go on. */
static int serve_static(gw_req *r, struct MHD_Connection *c, const char *url, const char *method,
                        enum MHD_Result *res) {
#ifdef GW_HAVE_STATIC
  if (r->app->site == NULL || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)) return 0;
  char path[1024];
  if (gw_pct_decode(url, strlen(url), path, sizeof path) < 0) return 0;
  struct MHD_Response *resp = NULL;
  unsigned status = 0;
  const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
  int rc = static_site_respond(r->app->site, path, inm, &resp, &status);
  if (rc == 0) return 0;
  r->route = GW_R_STATIC;
  if (rc < 0) {
    *res = gw_reply_error(r, c, 503, GW_E_INTERNAL);
    return 1;
  }
  MHD_add_response_header(resp, "X-Request-Id", r->rid);
  *res = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  if (*res == MHD_YES) {
    gw_conn_busy(c);
    r->status = (int)status;
    r->phase = GW_PHASE_ANSWERED;
  }
  return 1;
#else
  (void)r, (void)c, (void)url, (void)method, (void)res;
  return 0;
#endif
}

/* The request id and the CORS verdict, read once on the first call. */
static void req_ids(gw_req *r, struct MHD_Connection *c) {
  const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
  if (gw_token_valid(rid)) {
    strcpy(r->rid, rid);
  } else if (uuid_new(r->rid) != 0) {
    strcpy(r->rid, "no-request-id");
  }
  const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
  if (gw_cors_allowed(&r->app->cors, origin) && strlen(origin) <= GW_CORS_ORIGIN_MAX) {
    strcpy(r->origin, origin);
    r->cors_ok = 1;
  }
}

/* Header counts for the framing check. */
typedef struct framing {
  unsigned host, clen, te;
  int te_chunked; /* the (only) Transfer-Encoding is "chunked" */
} framing;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
  framing *f = cls;
  (void)kind;
  if (strcasecmp(key, "Host") == 0) {
    f->host++;
  } else if (strcasecmp(key, "Content-Length") == 0) {
    f->clen++;
  } else if (strcasecmp(key, "Transfer-Encoding") == 0) {
    f->te++;
    f->te_chunked = value != NULL && strcasecmp(value, "chunked") == 0;
  }
  return MHD_YES;
}

/* 1 when the request's framing is unambiguous (RFC 9112 3.2, 6.1, 6.3):
 * an HTTP/1.1 request has exactly one Host; at most one Content-Length;
 * Transfer-Encoding, if any, is one "chunked" and comes without
 * Content-Length. Two lengths are how requests are smuggled past a proxy
 * that reads the other one; libmicrohttpd 0.9.75 silently uses the first.
 * (A Content-Length that is not a number never gets here: libmicrohttpd
 * answers it itself; README.) */
static int framing_ok(struct MHD_Connection *c, const char *version) {
  framing f = {0, 0, 0, 0};
  MHD_get_connection_values(c, MHD_HEADER_KIND, count_header, &f);
  if (f.host > 1 || (f.host == 0 && version != NULL && strcmp(version, "HTTP/1.1") == 0))
    return 0;
  if (f.clen > 1) return 0;
  if (f.te > 0 && (f.te > 1 || !f.te_chunked || f.clen > 0)) return 0;
  return 1;
}

/* The first call for a request: headers are in, no body yet. Either answers
 * (phase ANSWERED), runs a body-less handler, or asks for the body. */
static enum MHD_Result on_headers(gw_req *r, struct MHD_Connection *c, const char *url,
                                  const char *method) {
  r->match_code = gw_route_match(method, url, &r->match);
  if (r->match_code == GW_MATCH_NOT_FOUND) {
    enum MHD_Result res;
    if (serve_static(r, c, url, method, &res)) return res;
    return gw_reply_error(r, c, 404, GW_E_NOT_FOUND);
  }
  r->route = r->match.route->id;
  if (r->match_code == GW_MATCH_OPTIONS) return preflight(r, c);
  if (r->match_code == GW_MATCH_METHOD) {
    gw_hdr h = {"Allow", r->match.allow};
    const char *code = GW_E_METHOD;
    char *body = gw_error_body(&code, 1);
    if (body == NULL) return MHD_NO;
    return gw_reply(r, c, 405, body, JSON, &h, 1);
  }

  if (r->match.route->auth) {
#ifdef GW_HAVE_AUTH
    const char *authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    char sub[129];
    auth_code ac = auth_verify_header(r->app->auth, authz, sub);
    if (ac == AUTH_E_JWKS_UNAVAILABLE) return gw_reply_error(r, c, 503, GW_E_AUTH_UNAVAILABLE);
    if (ac == AUTH_E_NOMEM) return gw_reply_error(r, c, 503, GW_E_INTERNAL);
    if (ac != AUTH_OK) {
      log_debug("auth rejected: %s request_id %s", auth_strerror(ac), r->rid);
      return reply_401(r, c, ac != AUTH_E_MISSING);
    }
    enum MHD_Result res;
    if (gw_resolve_caller(r, c, sub, &res) != 0) return res;
#else
    (void)reply_401;
    return gw_reply_error(r, c, 503, GW_E_AUTH_UNAVAILABLE);
#endif
  }

  if (strcmp(r->match.route->method, "POST") != 0) return gw_handlers[r->route](r, c);

  const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
  if (!content_type_json(ct)) return gw_reply_error(r, c, 415, GW_E_MEDIA_TYPE);
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
  if (cl != NULL) {
    char *end = NULL;
    unsigned long long n = strtoull(cl, &end, 10);
    if (end == cl || n > GW_BODY_MAX) return gw_reply_error(r, c, 413, GW_E_TOO_LARGE);
  }
  r->body = malloc(GW_BODY_MAX + 1);
  if (r->body == NULL) return MHD_NO;
  r->phase = GW_PHASE_BODY;
  return MHD_YES;
}

/* A body follows the headers (Content-Length > 0 or chunked). */
static int has_body(struct MHD_Connection *c) {
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
  if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding") != NULL) return 1;
  return cl != NULL && strspn(cl, "0 ") != strlen(cl);
}

enum MHD_Result gw_on_request(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
  gw_req *r = *con_cls;
  if (r == NULL) {
    r = calloc(1, sizeof *r);
    if (r != NULL) r->mem = (arena)ARENA_INIT(GW_ARENA_CHUNK, GW_ARENA_MAX);
    if (r == NULL) return MHD_NO;
    r->app = cls;
    r->t0_us = ts_mono_us();
    r->route = GW_R_NONE;
    atomic_fetch_add(&r->app->in_flight, 1);
    *con_cls = r;
    req_ids(r, c);
    /* Refused framing: answered now, so libmicrohttpd closes the connection
     * instead of guessing where the next request starts. */
    if (!framing_ok(c, version)) return gw_reply_error(r, c, 400, GW_E_BAD_REQUEST);
    /* libmicrohttpd closes the connection when a response is queued on this
     * first call, so only a request that carries a body is judged now (an
     * early 401/413/415 then spares reading it); the rest wait one call and
     * keep their connection alive. */
    if (!has_body(c)) {
      gw_conn_busy(c); /* the whole request is in */
      return MHD_YES;
    }
    return on_headers(r, c, url, method);
  }
  if (r->phase == GW_PHASE_HEADERS) {
    enum MHD_Result res = on_headers(r, c, url, method);
    if (r->phase != GW_PHASE_BODY) return res;
    /* a POST that announced no body: judge the empty body now */
  } else if (r->phase != GW_PHASE_BODY) {
    *upload_data_size = 0; /* answered already: drop anything else */
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    size_t n = *upload_data_size;
    if (r->discarded > 0 || r->body_len + n > GW_BODY_MAX) {
      /* Over the cap while streaming (no or a lying Content-Length): keep
       * reading a little so the 413 can be sent, then give up. */
      r->discarded += n;
      if (r->discarded > GW_DISCARD_MAX) return MHD_NO;
    } else {
      memcpy(r->body + r->body_len, upload_data, n);
      r->body_len += n;
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  /* The body is complete. */
  gw_conn_busy(c);
  if (r->discarded > 0) return gw_reply_error(r, c, 413, GW_E_TOO_LARGE);
  r->body[r->body_len] = '\0';
  return gw_handlers[r->route](r, c);
}

void gw_req_done(void *cls, struct MHD_Connection *c, void **con_cls,
                 enum MHD_RequestTerminationCode toe) {
  /* A kept-alive connection's next request gets a full deadline again. */
  gw_conn *k = conn_of(c);
  if (k != NULL) {
    atomic_store(&k->start_us, (long long)ts_mono_us());
    atomic_store(&k->busy, 0);
  }
  gw_req *r = *con_cls;
  if (r == NULL) return;
  int64_t dt = ts_mono_us() - r->t0_us;
  char st[16];
  if (r->status != 0 && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
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
  *con_cls = NULL;
}
