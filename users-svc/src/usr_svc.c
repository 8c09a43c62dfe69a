/* usr_svc.c - RPC handlers: validate, call usr_db / usr_sync, map errors.
 *
 * Every failure leaves through usr__fail(), which uses usr_err_status(): the
 * single mapping from domain errors to gRPC codes.
 */
#include "usr_svc.h"

#include <string.h>

#include "cruddur/log.h"
#include "cruddur/ts.h"
#include "cruddur/users/v1/users.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "usr_db.h"
#include "usr_sync.h"
#include "usr_valid.h"

/* Upper bounds on one call's work even when the caller set no deadline. */
#define USR_CALL_MAX_MS 10000
#define USR_SYNC_MAX_MS 120000
#define USR_HEALTH_TTL_US 1000000
#define USR_HEALTH_TIMEOUT_US 500000

static int64_t usr__deadline(rpc_call *call, int64_t cap_ms) {
  int64_t ms = rpc_call_remaining_ms(call);
  if (ms > cap_ms) ms = cap_ms;
  return ts_mono_us() + ms * 1000;
}

static grpc_status_code usr__fail(rpc_call *call, usr_err e, const char *what) {
  return rpc_call_fail(call, usr_err_status(e), "%s: %s", what, usr_strerror(e));
}

static grpc_status_code usr__invalid(rpc_call *call, const char *field, uv_result r) {
  return rpc_call_fail(call, usr_err_status(USR_E_INVALID), "%s is %s", field, uv_strerror(r));
}

static Cruddur__Users__V1__User *usr__user_msg(rpc_call *call, const usr_user *u) {
  Cruddur__Users__V1__User *m =
      (Cruddur__Users__V1__User *)rpc_call_new_message(call, &cruddur__users__v1__user__descriptor);
  m->uuid = rpc_call_strdup(call, u->uuid);
  m->handle = rpc_call_strdup(call, u->handle);
  m->display_name = rpc_call_strdup(call, u->display_name);
  m->cognito_user_id = rpc_call_strdup(call, u->cognito_user_id);
  Google__Protobuf__Timestamp *ts = (Google__Protobuf__Timestamp *)rpc_call_new_message(
      call, &google__protobuf__timestamp__descriptor);
  int64_t secs = u->created_us / 1000000, rem = u->created_us % 1000000;
  if (rem < 0) { /* Timestamp nanos are never negative */
    secs -= 1;
    rem += 1000000;
  }
  ts->seconds = secs;
  ts->nanos = (int32_t)(rem * 1000);
  m->created_at = ts;
  return m;
}

/* ---- GetUser ------------------------------------------------------------ */

static grpc_status_code usr_get_user(rpc_call *call, const ProtobufCMessage *req_,
                                     ProtobufCMessage *resp_) {
  const Cruddur__Users__V1__GetUserRequest *req = (const Cruddur__Users__V1__GetUserRequest *)req_;
  Cruddur__Users__V1__GetUserResponse *resp = (Cruddur__Users__V1__GetUserResponse *)resp_;
  usr_ctx *ctx = rpc_call_user(call);
  udb_key kind;
  const char *key;
  uv_result v;
  switch (req->key_case) {
  case CRUDDUR__USERS__V1__GET_USER_REQUEST__KEY_UUID:
    kind = UDB_KEY_UUID;
    key = req->uuid;
    if ((v = uv_uuid(key)) != UV_OK) return usr__invalid(call, "uuid", v);
    break;
  case CRUDDUR__USERS__V1__GET_USER_REQUEST__KEY_HANDLE:
    kind = UDB_KEY_HANDLE;
    key = req->handle;
    if ((v = uv_handle(key)) != UV_OK) return usr__invalid(call, "handle", v);
    break;
  case CRUDDUR__USERS__V1__GET_USER_REQUEST__KEY_COGNITO_USER_ID:
    kind = UDB_KEY_SUB;
    key = req->cognito_user_id;
    if ((v = uv_cognito_user_id(key)) != UV_OK) return usr__invalid(call, "cognito_user_id", v);
    break;
  default:
    return rpc_call_fail(call, usr_err_status(USR_E_INVALID),
                         "set exactly one of uuid, handle, cognito_user_id");
  }
  usr_user u;
  usr_err e = udb_get(ctx->pool, kind, key, usr__deadline(call, USR_CALL_MAX_MS), &u);
  if (e != USR_OK) return usr__fail(call, e, "user");
  resp->user = usr__user_msg(call, &u);
  return GRPC_STATUS_OK;
}

/* ---- BatchGetUsers ------------------------------------------------------ */

static int usr__same_handle(const char *a, const char *b) {
  for (; *a != '\0' && *b != '\0'; a++, b++) {
    char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
    char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
    if (x != y) return 0;
  }
  return *a == *b;
}

static void usr__add_missing(rpc_call *call, Cruddur__Users__V1__BatchGetUsersResponse *resp,
                             const char *key) {
  for (size_t i = 0; i < resp->n_missing; i++)
    if (strcmp(resp->missing[i], key) == 0) return; /* sent twice, listed once */
  resp->missing[resp->n_missing++] = rpc_call_strdup(call, key);
}

static grpc_status_code usr_batch_get_users(rpc_call *call, const ProtobufCMessage *req_,
                                            ProtobufCMessage *resp_) {
  const Cruddur__Users__V1__BatchGetUsersRequest *req =
      (const Cruddur__Users__V1__BatchGetUsersRequest *)req_;
  Cruddur__Users__V1__BatchGetUsersResponse *resp =
      (Cruddur__Users__V1__BatchGetUsersResponse *)resp_;
  usr_ctx *ctx = rpc_call_user(call);
  size_t nu = req->n_uuids, nh = req->n_handles;
  if (nu + nh > USR_BATCH_MAX)
    return rpc_call_fail(call, usr_err_status(USR_E_INVALID),
                         "%zu keys requested; at most %d in all", nu + nh, USR_BATCH_MAX);
  uv_result v;
  for (size_t i = 0; i < nu; i++)
    if ((v = uv_uuid(req->uuids[i])) != UV_OK)
      return rpc_call_fail(call, usr_err_status(USR_E_INVALID), "uuids[%zu] is %s", i,
                           uv_strerror(v));
  for (size_t i = 0; i < nh; i++)
    if ((v = uv_handle(req->handles[i])) != UV_OK)
      return rpc_call_fail(call, usr_err_status(USR_E_INVALID), "handles[%zu] is %s", i,
                           uv_strerror(v));
  if (nu + nh == 0) return GRPC_STATUS_OK; /* nothing asked, nothing found */

  usr_user *found = rpc_call_alloc(call, (nu + nh) * sizeof *found);
  size_t n = 0;
  usr_err e = udb_batch_get(ctx->pool, (const char *const *)req->uuids, nu,
                            (const char *const *)req->handles, nh,
                            usr__deadline(call, USR_CALL_MAX_MS), found, nu + nh, &n);
  if (e != USR_OK) return usr__fail(call, e, "users");
  resp->users = rpc_call_alloc(call, (n + 1) * sizeof *resp->users);
  for (size_t i = 0; i < n; i++)
    resp->users[resp->n_users++] = usr__user_msg(call, &found[i]);
  resp->missing = rpc_call_alloc(call, (nu + nh) * sizeof *resp->missing);
  for (size_t i = 0; i < nu; i++) {
    size_t k = 0;
    while (k < n && strcmp(found[k].uuid, req->uuids[i]) != 0)
      k++;
    if (k == n) usr__add_missing(call, resp, req->uuids[i]);
  }
  for (size_t i = 0; i < nh; i++) {
    size_t k = 0;
    while (k < n && !usr__same_handle(found[k].handle, req->handles[i]))
      k++;
    if (k == n) usr__add_missing(call, resp, req->handles[i]);
  }
  return GRPC_STATUS_OK;
}

/* ---- CreateUser --------------------------------------------------------- */

static grpc_status_code usr_create_user(rpc_call *call, const ProtobufCMessage *req_,
                                        ProtobufCMessage *resp_) {
  const Cruddur__Users__V1__CreateUserRequest *req =
      (const Cruddur__Users__V1__CreateUserRequest *)req_;
  Cruddur__Users__V1__CreateUserResponse *resp = (Cruddur__Users__V1__CreateUserResponse *)resp_;
  usr_ctx *ctx = rpc_call_user(call);
  uv_result v;
  if ((v = uv_display_name(req->display_name)) != UV_OK)
    return usr__invalid(call, "display_name", v);
  if ((v = uv_handle(req->handle)) != UV_OK) return usr__invalid(call, "handle", v);
  if ((v = uv_email(req->email)) != UV_OK) return usr__invalid(call, "email", v);
  if ((v = uv_cognito_user_id(req->cognito_user_id)) != UV_OK)
    return usr__invalid(call, "cognito_user_id", v);
  usr_user u;
  int created = 0;
  usr_err e = udb_create(ctx->pool, req->display_name, req->handle, req->email,
                         req->cognito_user_id, usr__deadline(call, USR_CALL_MAX_MS), &u, &created);
  if (e == USR_E_EXISTS)
    return rpc_call_fail(call, usr_err_status(e), "handle \"%s\" belongs to another user",
                         req->handle);
  if (e != USR_OK) return usr__fail(call, e, "create user");
  resp->user = usr__user_msg(call, &u);
  resp->created = created != 0;
  return GRPC_STATUS_OK;
}

/* ---- SyncCognitoUsers --------------------------------------------------- */

static grpc_status_code usr_sync_cognito_users(rpc_call *call, const ProtobufCMessage *req_,
                                               ProtobufCMessage *resp_) {
  const Cruddur__Users__V1__SyncCognitoUsersRequest *req =
      (const Cruddur__Users__V1__SyncCognitoUsersRequest *)req_;
  Cruddur__Users__V1__SyncCognitoUsersResponse *resp =
      (Cruddur__Users__V1__SyncCognitoUsersResponse *)resp_;
  usr_ctx *ctx = rpc_call_user(call);
  const char *pool_id = ctx->pool_id;
  if (req->user_pool_id != NULL && req->user_pool_id[0] != '\0') {
    uv_result v = uv_pool_id(req->user_pool_id);
    if (v != UV_OK) return usr__invalid(call, "user_pool_id", v);
    pool_id = req->user_pool_id;
  }
  if (ctx->cognito == NULL || pool_id == NULL || pool_id[0] == '\0')
    return usr__fail(call, USR_E_NO_POOL, "sync");
  usr_sync_report rep;
  memset(&rep, 0, sizeof rep);
  usr_err e =
      usr_sync_run(ctx->pool, ctx->cognito, pool_id, usr__deadline(call, USR_SYNC_MAX_MS), &rep);
  if (e != USR_OK) {
    usr_sync_report_free(&rep);
    return usr__fail(call, e, "sync");
  }
  resp->scanned = rep.scanned;
  resp->matched = rep.matched;
  resp->updated = rep.updated;
  resp->unmatched = rep.unmatched;
  resp->incomplete = rep.incomplete;
  resp->pages = rep.pages;
  resp->unmatched_usernames = rpc_call_alloc(call, (rep.n_names + 1) * sizeof(char *));
  for (size_t i = 0; i < rep.n_names; i++)
    resp->unmatched_usernames[resp->n_unmatched_usernames++] = rpc_call_strdup(call, rep.names[i]);
  resp->conflicts = rep.conflicts;
  resp->conflict_usernames = rpc_call_alloc(call, (rep.n_conflict_names + 1) * sizeof(char *));
  for (size_t i = 0; i < rep.n_conflict_names; i++)
    resp->conflict_usernames[resp->n_conflict_usernames++] =
        rpc_call_strdup(call, rep.conflict_names[i]);
  usr_sync_report_free(&rep);
  return GRPC_STATUS_OK;
}

/* ---- table and health --------------------------------------------------- */

static const struct {
  const char *name;
  rpc_handler_fn fn;
} usr_methods[] = {
    {"GetUser", usr_get_user},
    {"BatchGetUsers", usr_batch_get_users},
    {"CreateUser", usr_create_user},
    {"SyncCognitoUsers", usr_sync_cognito_users},
};

static rpc_handler_fn usr_handlers[8];

int usr_svc_service(rpc_service *svc) {
  const ProtobufCServiceDescriptor *d = &cruddur__users__v1__users_service__descriptor;
  if (d->n_methods > sizeof usr_handlers / sizeof usr_handlers[0]) return -1;
  for (unsigned i = 0; i < d->n_methods; i++) {
    usr_handlers[i] = NULL;
    for (size_t k = 0; k < sizeof usr_methods / sizeof usr_methods[0]; k++)
      if (strcmp(d->methods[i].name, usr_methods[k].name) == 0) usr_handlers[i] = usr_methods[k].fn;
    if (usr_handlers[i] == NULL) {
      log_error("no handler for UsersService/%s", d->methods[i].name);
      return -1;
    }
  }
  svc->desc = d;
  svc->handlers = usr_handlers;
  return 0;
}

int usr_svc_health(void *user) {
  usr_ctx *ctx = user;
  /* One prober at a time; the others read the cached answer (the lock is
   * held at most USR_HEALTH_TIMEOUT_US). */
  pthread_mutex_lock(&ctx->health_mu);
  int64_t now = ts_mono_us();
  if (ctx->health_at_us == 0 || now - ctx->health_at_us >= USR_HEALTH_TTL_US) {
    int ok = udb_ping(ctx->pool, now + USR_HEALTH_TIMEOUT_US);
    if (ok != ctx->health_ok || ctx->health_at_us == 0)
      log_info("postgres %s", ok ? "reachable: SERVING" : "unreachable: NOT_SERVING");
    ctx->health_ok = ok;
    ctx->health_at_us = ts_mono_us();
  }
  int ok = ctx->health_ok;
  pthread_mutex_unlock(&ctx->health_mu);
  return ok;
}
