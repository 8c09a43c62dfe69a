/* handlers.c - one small handler per route; the composition of the
 * upstream calls lives here, the HTTP plumbing in http.c. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cruddur/ts.h"
#include "errmap.h"
#include "gateway.h"

#ifdef GW_HAVE_AUTH
#include "auth.h"
#endif

static const char JSON[] = "application/json";

static gw_result reply_json(gw_req *r, gw_http *c, char *body, const char *link) {
  gw_hdr h = {"Link", link};
  if (body == NULL) return gw_reply_error(r, c, 503, GW_E_INTERNAL);
  return gw_reply(r, c, 200, body, JSON, &h, link != NULL ? 1 : 0);
}

/* Copies the raw query argument `name` into out (cap bytes with the NUL):
 * 1 when present, 0 when absent, -1 when longer than fits (invalid). */
static int query_arg(gw_http *c, const char *name, char *out, size_t cap) {
  const char *v;
  size_t n;
  if (!gw_http_arg(c, name, &v, &n)) return 0;
  if (n >= cap) return -1;
  memcpy(out, v, n);
  out[n] = '\0';
  return 1;
}

/* Reads limit and cursor; on failure queues the 422 (both codes when both
 * are wrong) and returns -1. */
static int page_args(gw_req *r, gw_http *c, int *limit, char *cursor, gw_result *res) {
  const char *codes[2];
  size_t n = 0;
  char raw[GW_CURSOR_MAX * 3 + 1]; /* a fully percent-encoded cursor */
  int got = query_arg(c, "limit", raw, sizeof raw);
  if (got < 0 || gw_limit_parse(got ? raw : NULL, limit) != 0) codes[n++] = GW_E_LIMIT;
  got = query_arg(c, "cursor", raw, sizeof raw);
  if (got < 0 || gw_cursor_parse(got ? raw : NULL, cursor) != 0) codes[n++] = GW_E_CURSOR;
  if (n == 0) return 0;
  *res = gw_reply_errors(r, c, 422, codes, n, 0);
  return -1;
}

/* A page of a list route, read by page_decode from the upstream's answer. */
typedef struct page_read {
  gw_pbj_list list;
  const char *path; /* the route's path, for the Link */
  int limit;
  char *json; /* the answer (malloc'd) once read; NULL when it could not be written */
  int has_link;
  char link[GW_CURSOR_MAX * 3 + 128];
} page_read;

/* rpc_decode_fn: the page's JSON and its Link, straight from the bytes. */
static int page_decode(void *user, const uint8_t *data, size_t len) {
  page_read *pg = user;
  const char *next;
  size_t n;
  gw_pbj_code rc = gw_pbj_page(pg->list, data, len, &pg->json, &next, &n);
  if (rc == GW_PBJ_MALFORMED) return -1;
  if (rc != GW_PBJ_OK) return 0; /* pg->json stays NULL: a 503 */
  /* A token that long could not fit in the Link however it is encoded. */
  char tok[sizeof pg->link];
  if (n > 0 && n < sizeof tok) {
    memcpy(tok, next, n);
    tok[n] = '\0';
    pg->has_link = gw_link_next(pg->link, sizeof pg->link, pg->path, pg->limit, tok) == 0;
  }
  return 0;
}

/* GET /api/message_groups */
static gw_result h_groups(gw_req *r, gw_http *c) {
  int limit;
  char cursor[GW_CURSOR_MAX + 1];
  gw_result res;
  if (page_args(r, c, &limit, cursor, &res) != 0) return res;
  Cruddur__Messages__V1__ListMessageGroupsRequest req =
      CRUDDUR__MESSAGES__V1__LIST_MESSAGE_GROUPS_REQUEST__INIT;
  req.user_uuid = r->caller.uuid;
  req.page_size = limit;
  req.page_token = cursor;
  page_read pg = {.list = GW_PBJ_GROUPS, .path = "/api/message_groups", .limit = limit};
  grpc_status_code code = gw_call_decode(r, GW_UP_LIST_GROUPS, r->app->messages,
                                         &cruddur__messages__v1__messages_service__descriptor,
                                         "ListMessageGroups", &req.base, page_decode, &pg);
  if (code != GRPC_STATUS_OK)
    return gw_reply_grpc(r, c, code, GW_E_NOT_FOUND, cursor[0] ? GW_E_CURSOR : NULL);
  return reply_json(r, c, pg.json, pg.has_link ? pg.link : NULL);
}

/* GET /api/messages/{message_group_uuid} */
static gw_result h_messages_list(gw_req *r, gw_http *c) {
  static const char prefix[] = "/api/messages/";
  char group[37];
  int limit;
  char cursor[GW_CURSOR_MAX + 1];
  gw_result res;
  /* A malformed id cannot name a group: the same 404 as an unknown one. */
  if (!gw_uuid_normalise(r->match.param, group))
    return gw_reply_error(r, c, 404, GW_E_GROUP_NOT_FOUND);
  if (page_args(r, c, &limit, cursor, &res) != 0) return res;
  Cruddur__Messages__V1__ListMessagesRequest req =
      CRUDDUR__MESSAGES__V1__LIST_MESSAGES_REQUEST__INIT;
  req.message_group_uuid = group;
  req.user_uuid = r->caller.uuid;
  req.page_size = limit;
  req.page_token = cursor;
  char path[sizeof prefix + sizeof group];
  memcpy(path, prefix, sizeof prefix - 1);
  memcpy(path + sizeof prefix - 1, group, sizeof group);
  page_read pg = {.list = GW_PBJ_MESSAGES, .path = path, .limit = limit};
  grpc_status_code code = gw_call_decode(r, GW_UP_LIST_MESSAGES, r->app->messages,
                                         &cruddur__messages__v1__messages_service__descriptor,
                                         "ListMessages", &req.base, page_decode, &pg);
  if (code != GRPC_STATUS_OK)
    return gw_reply_grpc(r, c, code, GW_E_GROUP_NOT_FOUND, cursor[0] ? GW_E_CURSOR : NULL);
  return reply_json(r, c, pg.json, pg.has_link ? pg.link : NULL);
}

static Cruddur__Messages__V1__Participant participant(gw_user *u) {
  Cruddur__Messages__V1__Participant p = CRUDDUR__MESSAGES__V1__PARTICIPANT__INIT;
  p.uuid = u->uuid;
  p.handle = u->handle;
  p.display_name = u->display_name;
  return p;
}

/* Looks a user up by handle: the handle cache (GATEWAY_HANDLE_CACHE_TTL_S,
 * found users only), else UsersService.GetUser(handle). Returns 0 and fills
 * *out, or queues the error (404 `user_not_found`, 422 `invalid_code`, 503,
 * ...) and returns -1 with *res set. */
static int user_by_handle(gw_req *r, gw_http *c, const char *handle, const char *invalid_code,
                          gw_user *out, gw_result *res) {
  char key[GW_HANDLE_MAX + 1];
  size_t n = strlen(handle);
  if (n > GW_HANDLE_MAX) n = GW_HANDLE_MAX;
  for (size_t i = 0; i < n; i++)
    key[i] = (char)tolower((unsigned char)handle[i]);
  key[n] = '\0';
  int64_t now = ts_mono_us();
  if (gw_ucache_get(r->app->hcache, key, now, out)) {
    gw_metrics_handle_cache(1);
    return 0;
  }
  gw_metrics_handle_cache(0);
  Cruddur__Users__V1__GetUserRequest req = CRUDDUR__USERS__V1__GET_USER_REQUEST__INIT;
  req.key_case = CRUDDUR__USERS__V1__GET_USER_REQUEST__KEY_HANDLE;
  req.handle = (char *)handle;
  ProtobufCMessage *o = NULL;
  grpc_status_code code =
      gw_call(r, GW_UP_GET_USER, r->app->users, &cruddur__users__v1__users_service__descriptor,
              "GetUser", &req.base, &o);
  if (code != GRPC_STATUS_OK) {
    *res = gw_reply_grpc(r, c, code, GW_E_USER_NOT_FOUND, invalid_code);
    return -1;
  }
  gw_user got;
  if (gw_user_from_pb(((Cruddur__Users__V1__GetUserResponse *)o)->user, &got) != 0) {
    *res = gw_reply_error(r, c, 502, GW_E_UPSTREAM);
    return -1;
  }
  gw_ucache_put(r->app->hcache, key, &got, now);
  *out = got;
  return 0;
}

/* POST /api/messages: {"message","message_group_uuid"} or {"message","handle"}. */
static gw_result h_messages_create(gw_req *r, gw_http *c) {
  const char *codes[GW_BODY_CODES_MAX + 1];
  size_t n = 0;
  gw_create in;
  memset(&in, 0, sizeof in);
  gw_body_code bc = gw_body_parse(r->body, r->body_len, &in, codes, &n);
  switch (bc) {
  case GW_BODY_INVALID_JSON:
    return gw_reply_error(r, c, 400, GW_E_INVALID_JSON);
  case GW_BODY_NOT_OBJECT:
    return gw_reply_error(r, c, 400, GW_E_NOT_OBJECT);
  case GW_BODY_FIELD_TYPE:
    return gw_reply_error(r, c, 400, GW_E_FIELD_TYPE);
  case GW_BODY_NOMEM:
    return gw_reply_error(r, c, 503, GW_E_INTERNAL);
  case GW_BODY_OK:
  case GW_BODY_UNPROCESSABLE:
    break;
  }
  const char *idem = gw_http_header(c, "Idempotency-Key", NULL);
  if (idem != NULL && !gw_token_valid(idem)) codes[n++] = GW_E_IDEMPOTENCY;
  if (bc == GW_BODY_OK && in.mode == GW_CREATE_BY_HANDLE &&
      strcasecmp(in.handle, r->caller.handle) == 0)
    codes[n++] = GW_E_SELF;
  if (n > 0) {
    gw_create_clear(&in);
    return gw_reply_errors(r, c, 422, codes, n, 0);
  }
  /* Valid requests only spend tokens; a retry with its Idempotency-Key does. */
  gw_result limited;
  if (gw_rate_check(r, c, in.mode == GW_CREATE_IN_GROUP ? GW_LIMIT_SENDS : GW_LIMIT_STARTS,
                    &limited) != 0) {
    gw_create_clear(&in);
    return limited;
  }

  Cruddur__Messages__V1__Participant me = participant(&r->caller);
  ProtobufCMessage *out = NULL;
  const Cruddur__Messages__V1__Message *msg = NULL;
  const char *group_uuid = NULL;
  grpc_status_code code;
  const char *not_found;
  if (in.mode == GW_CREATE_IN_GROUP) {
    Cruddur__Messages__V1__CreateMessageRequest req =
        CRUDDUR__MESSAGES__V1__CREATE_MESSAGE_REQUEST__INIT;
    req.message_group_uuid = in.group_uuid;
    req.sender = &me;
    req.text = in.message;
    req.request_id = (char *)(idem ? idem : "");
    not_found = GW_E_GROUP_NOT_FOUND;
    code = gw_call(r, GW_UP_CREATE_MESSAGE, r->app->messages,
                   &cruddur__messages__v1__messages_service__descriptor, "CreateMessage", &req.base,
                   &out);
    if (code == GRPC_STATUS_OK)
      msg = ((Cruddur__Messages__V1__CreateMessageResponse *)out)->message;
  } else {
    gw_user other;
    gw_result res;
    if (user_by_handle(r, c, in.handle, GW_E_HANDLE_INVALID, &other, &res) != 0) {
      gw_create_clear(&in);
      return res;
    }
    if (strcmp(other.uuid, r->caller.uuid) == 0) {
      gw_create_clear(&in);
      return gw_reply_error(r, c, 422, GW_E_SELF);
    }
    Cruddur__Messages__V1__Participant them = participant(&other);
    Cruddur__Messages__V1__CreateMessageGroupRequest req =
        CRUDDUR__MESSAGES__V1__CREATE_MESSAGE_GROUP_REQUEST__INIT;
    req.sender = &me;
    req.recipient = &them;
    req.text = in.message;
    req.request_id = (char *)(idem ? idem : "");
    not_found = GW_E_USER_NOT_FOUND;
    code = gw_call(r, GW_UP_CREATE_GROUP, r->app->messages,
                   &cruddur__messages__v1__messages_service__descriptor, "CreateMessageGroup",
                   &req.base, &out);
    if (code == GRPC_STATUS_OK) {
      Cruddur__Messages__V1__CreateMessageGroupResponse *gr = (void *)out;
      msg = gr->message;
      group_uuid = gr->message_group_uuid;
    }
  }
  gw_create_clear(&in);
  if (code != GRPC_STATUS_OK) return gw_reply_grpc(r, c, code, not_found, "invalid_argument");
  if (msg == NULL) {
    return gw_reply_error(r, c, 502, GW_E_UPSTREAM);
  }
  /* The group's uuid is on the message; CreateMessageGroup also returns it
   * beside, which wins if the message lacks it. */
  Cruddur__Messages__V1__Message copy = *msg;
  if ((copy.message_group_uuid == NULL || copy.message_group_uuid[0] == '\0') && group_uuid)
    copy.message_group_uuid = (char *)group_uuid;
  char *body = gw_json_created(&copy);
  return reply_json(r, c, body, NULL);
}

/* GET /api/users/@{handle}/short (public, as the original). */
static gw_result h_user_short(gw_req *r, gw_http *c) {
  gw_user u;
  gw_result res;
  /* Every lookup counts, misses above all: they are what enumeration is. */
  if (gw_rate_check(r, c, GW_LIMIT_SHORT, &res) != 0) return res;
  /* A malformed handle cannot name anybody: the same 404 as an unknown one. */
  if (!gw_handle_valid(r->match.param)) return gw_reply_error(r, c, 404, GW_E_USER_NOT_FOUND);
  if (user_by_handle(r, c, r->match.param, GW_E_HANDLE_INVALID, &u, &res) != 0) return res;
  Cruddur__Users__V1__User pu = CRUDDUR__USERS__V1__USER__INIT;
  pu.uuid = u.uuid;
  pu.handle = u.handle;
  pu.display_name = u.display_name;
  return reply_json(r, c, gw_json_user_short(&pu), NULL);
}

static gw_result h_healthz(gw_req *r, gw_http *c) {
  return reply_json(r, c, strdup("{\"status\":\"ok\"}"), NULL);
}

/* Ready when both upstreams answer SERVING to grpc.health.v1 Check. */
static gw_result h_readyz(gw_req *r, gw_http *c) {
  const char *codes[2];
  size_t n = 0;
  rpc_channel *chans[2] = {r->app->users, r->app->messages};
  const char *names[2] = {"users_unavailable", "messages_unavailable"};
  for (int i = 0; i < 2; i++) {
    int64_t t0 = ts_mono_us();
    int ok = rpc_health_check(chans[i], "", r->app->health_timeout_ms);
    gw_metrics_upstream(GW_UP_HEALTH, ok ? 0 : GRPC_STATUS_UNAVAILABLE, ts_mono_us() - t0);
    if (!ok) codes[n++] = names[i];
  }
  if (n > 0) return gw_reply_errors(r, c, 503, codes, n, 1);
  return reply_json(r, c, strdup("{\"users\":\"SERVING\",\"messages\":\"SERVING\"}"), NULL);
}

static gw_result h_metrics(gw_req *r, gw_http *c) {
  gw_metrics_extra x;
  memset(&x, 0, sizeof x);
#ifdef GW_HAVE_AUTH
  if (r->app->auth != NULL) {
    auth_stats st;
    auth_get_stats(r->app->auth, &st);
    x.token_cache_hits = st.cache_hits;
    x.token_cache_misses = st.cache_misses;
    x.jwks_fetches = st.jwks_fetches;
    x.jwks_failures = st.jwks_failures;
    x.auth_rejected = st.rejected;
    x.token_cache_entries = st.cache_entries;
  }
#endif
  x.user_cache_entries = gw_ucache_size(r->app->ucache, ts_mono_us());
  x.handle_cache_entries = gw_ucache_size(r->app->hcache, ts_mono_us());
  x.in_flight = (uint64_t)atomic_load(&r->app->in_flight);
  for (int l = 0; l < GW_LIMIT_COUNT; l++) {
    if (r->app->limits[l] == NULL) continue;
    x.limit_entries[l] = gw_rl_size(r->app->limits[l]);
    x.limit_evictions[l] = gw_rl_evictions(r->app->limits[l]);
  }
  x.sse_streams = (uint64_t)gw_sse_open_count(r->app->sse);
  long watches;
  int call_open;
  gw_sse_upstream(r->app->sse, &watches, &call_open, &x.sse_calls_opened);
  x.sse_watches = (uint64_t)watches;
  x.sse_call_open = (uint64_t)call_open;
  char *body = gw_metrics_render(&x);
  if (body == NULL) return gw_reply_error(r, c, 503, GW_E_INTERNAL);
  return gw_reply(r, c, 200, body, "text/plain; version=0.0.4; charset=utf-8", NULL, 0);
}

static gw_result h_openapi(gw_req *r, gw_http *c) {
  char *body = malloc(r->app->openapi_len + 1);
  if (body == NULL) return gw_reply_error(r, c, 503, GW_E_INTERNAL);
  memcpy(body, r->app->openapi, r->app->openapi_len);
  body[r->app->openapi_len] = '\0';
  return gw_reply(r, c, 200, body, JSON, NULL, 0);
}

/* GET /api/events: server-sent events (sse.c). */
static gw_result h_events(gw_req *r, gw_http *c) {
  return gw_sse_open(r->app->sse, r, c) ? GW_YES : GW_NO;
}

const gw_handler gw_handlers[GW_R_COUNT] = {
    [GW_R_GROUPS] = h_groups,
    [GW_R_MESSAGES_LIST] = h_messages_list,
    [GW_R_MESSAGES_CREATE] = h_messages_create,
    [GW_R_USER_SHORT] = h_user_short,
    [GW_R_HEALTHZ] = h_healthz,
    [GW_R_READYZ] = h_readyz,
    [GW_R_METRICS] = h_metrics,
    [GW_R_OPENAPI] = h_openapi,
    [GW_R_EVENTS] = h_events,
};
