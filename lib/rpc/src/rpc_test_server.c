/* rpc_test_server.c - UsersService with canned test handlers, for
 * tests/integration/test_rpc.py. It exercises the runtime, not users-svc.
 * It also serves the test-only cruddur.rpctest.v1.EchoService (streamed
 * requests): Chat echoes every request as it comes and ends OK after the
 * client half-closes; Sum answers the sum of the n's once the client
 * half-closed; Count streams n replies; Get echoes one.
 *
 * Usage: rpc_test_server [LISTEN]   (default 127.0.0.1:0)
 * Prints "PORT <n>" on stdout once serving. RPC_TEST_HEALTH=down makes
 * health answer NOT_SERVING. Exits 0 after a graceful drain on SIGTERM.
 *
 * GetUser by handle: "andrewbrown" -> a user; "slow" -> the same user after
 * 1.5 s; "echo_rid" -> display_name is the caller's x-request-id; anything
 * else NOT_FOUND. No key: INVALID_ARGUMENT.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cruddur/log.h"
#include "cruddur/rpc.h"
#include "cruddur/rpctest/v1/echo.pb-c.h"
#include "cruddur/users/v1/users.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "rpc_internal.h" /* rpc__descriptor_set_extend */

/* From cruddur_rpctest_proto (xxd -i). */
extern unsigned char rpctest_descriptor_set[];
extern unsigned int rpctest_descriptor_set_len;

static Cruddur__Users__V1__User *make_user(rpc_call *call, const char *handle) {
  Cruddur__Users__V1__User *u = (Cruddur__Users__V1__User *)rpc_call_new_message(
      call, &cruddur__users__v1__user__descriptor);
  u->uuid = "1b2c3d4e-0000-4000-8000-000000000001";
  u->handle = rpc_call_strdup(call, handle);
  u->display_name = "Andrew Brown";
  Google__Protobuf__Timestamp *ts = (Google__Protobuf__Timestamp *)rpc_call_new_message(
      call, &google__protobuf__timestamp__descriptor);
  ts->seconds = 1700000000;
  ts->nanos = 123456000;
  u->created_at = ts;
  return u;
}

static grpc_status_code get_user(rpc_call *call, const ProtobufCMessage *req_,
                                 ProtobufCMessage *resp_) {
  const Cruddur__Users__V1__GetUserRequest *req =
      (const Cruddur__Users__V1__GetUserRequest *)req_;
  Cruddur__Users__V1__GetUserResponse *resp = (Cruddur__Users__V1__GetUserResponse *)resp_;
  if (req->key_case != CRUDDUR__USERS__V1__GET_USER_REQUEST__KEY_HANDLE)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "set handle");
  const char *h = req->handle;
  if (strcmp(h, "slow") == 0) {
    struct timespec d = {1, 500000000L};
    nanosleep(&d, NULL);
    resp->user = make_user(call, h);
    return GRPC_STATUS_OK;
  }
  if (strcmp(h, "andrewbrown") == 0) {
    resp->user = make_user(call, h);
    return GRPC_STATUS_OK;
  }
  if (strcmp(h, "echo_rid") == 0) {
    resp->user = make_user(call, h);
    resp->user->display_name = rpc_call_strdup(call, rpc_call_request_id(call));
    return GRPC_STATUS_OK;
  }
  return rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "no user with handle %.32s", h);
}

static grpc_status_code batch_get(rpc_call *call, const ProtobufCMessage *req_,
                                  ProtobufCMessage *resp_) {
  const Cruddur__Users__V1__BatchGetUsersRequest *req =
      (const Cruddur__Users__V1__BatchGetUsersRequest *)req_;
  Cruddur__Users__V1__BatchGetUsersResponse *resp =
      (Cruddur__Users__V1__BatchGetUsersResponse *)resp_;
  resp->users = rpc_call_alloc(call, (req->n_handles + 1) * sizeof *resp->users);
  resp->missing = rpc_call_alloc(call, (req->n_handles + 1) * sizeof *resp->missing);
  for (size_t i = 0; i < req->n_handles; i++) {
    if (strcmp(req->handles[i], "andrewbrown") == 0)
      resp->users[resp->n_users++] = make_user(call, req->handles[i]);
    else
      resp->missing[resp->n_missing++] = rpc_call_strdup(call, req->handles[i]);
  }
  return GRPC_STATUS_OK;
}

static grpc_status_code not_here(rpc_call *call, const ProtobufCMessage *req,
                                 ProtobufCMessage *resp) {
  (void)req;
  (void)resp;
  return rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "not in the test server");
}

/* ---- EchoService ---- */

static void echo_send(rpc_sstream *s, int64_t n, const char *text) {
  Cruddur__Rpctest__V1__EchoReply r = CRUDDUR__RPCTEST__V1__ECHO_REPLY__INIT;
  r.n = n;
  r.text = (char *)text;
  if (rpc_sstream_send(s, &r.base) == RPC_SSTREAM_FULL)
    rpc_sstream_end(s, GRPC_STATUS_RESOURCE_EXHAUSTED, "reply queue full");
}

static void release_on_done(void *user, rpc_sstream *s, grpc_status_code code) {
  (void)code;
  free(user);
  rpc_sstream_release(s);
}

static void chat_recv(void *user, rpc_sstream *s, const ProtobufCMessage *msg) {
  (void)user;
  const Cruddur__Rpctest__V1__EchoRequest *req = (const void *)msg;
  if (req == NULL)
    rpc_sstream_end(s, GRPC_STATUS_OK, NULL);
  else
    echo_send(s, req->n, req->text);
}

static grpc_status_code chat(rpc_call *call, const ProtobufCMessage *req, rpc_sstream *s) {
  (void)call;
  (void)req;
  rpc_sstream_set_queue_max(s, 1024);
  rpc_sstream_on_done(s, release_on_done, NULL);
  rpc_sstream_on_recv(s, chat_recv, NULL);
  rpc_sstream_ref(s);
  return GRPC_STATUS_OK;
}

static void sum_recv(void *user, rpc_sstream *s, const ProtobufCMessage *msg) {
  int64_t *sum = user;
  if (msg != NULL) {
    *sum += ((const Cruddur__Rpctest__V1__EchoRequest *)msg)->n;
    return;
  }
  echo_send(s, *sum, "sum");
  rpc_sstream_end(s, GRPC_STATUS_OK, NULL);
}

static grpc_status_code sum(rpc_call *call, const ProtobufCMessage *req, rpc_sstream *s) {
  (void)req;
  int64_t *total = calloc(1, sizeof *total);
  if (total == NULL) return rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "no memory");
  rpc_sstream_on_done(s, release_on_done, total);
  rpc_sstream_on_recv(s, sum_recv, total);
  rpc_sstream_ref(s);
  return GRPC_STATUS_OK;
}

static grpc_status_code count(rpc_call *call, const ProtobufCMessage *req_, rpc_sstream *s) {
  const Cruddur__Rpctest__V1__EchoRequest *req = (const void *)req_;
  if (req->n < 0 || req->n > 1000)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "n must be 0 to 1000");
  rpc_sstream_set_queue_max(s, 1000);
  for (int64_t i = 0; i < req->n; i++) echo_send(s, i, req->text);
  return GRPC_STATUS_OK;
}

static grpc_status_code get(rpc_call *call, const ProtobufCMessage *req_,
                            ProtobufCMessage *resp_) {
  const Cruddur__Rpctest__V1__EchoRequest *req = (const void *)req_;
  Cruddur__Rpctest__V1__EchoReply *resp = (Cruddur__Rpctest__V1__EchoReply *)resp_;
  resp->n = req->n;
  resp->text = rpc_call_strdup(call, req->text);
  return GRPC_STATUS_OK;
}

static int health(void *user) {
  (void)user;
  const char *h = getenv("RPC_TEST_HEALTH");
  return h == NULL || strcmp(h, "down") != 0;
}

int main(int argc, char **argv) {
  log_init("rpc_test_server");
  const ProtobufCServiceDescriptor *d = &cruddur__users__v1__users_service__descriptor;
  rpc_handler_fn handlers[8] = {0};
  for (unsigned i = 0; i < d->n_methods && i < 8; i++) {
    const char *n = d->methods[i].name;
    handlers[i] = strcmp(n, "GetUser") == 0         ? get_user
                  : strcmp(n, "BatchGetUsers") == 0 ? batch_get
                                                    : not_here;
  }
  const ProtobufCServiceDescriptor *e = &cruddur__rpctest__v1__echo_service__descriptor;
  rpc_handler_fn echo_handlers[4] = {0};
  rpc_stream_handler_fn echo_streams[4] = {0};
  for (unsigned i = 0; i < e->n_methods && i < 4; i++) {
    const char *n = e->methods[i].name;
    echo_handlers[i] = strcmp(n, "Get") == 0 ? get : NULL;
    echo_streams[i] = strcmp(n, "Chat") == 0    ? chat
                      : strcmp(n, "Sum") == 0   ? sum
                      : strcmp(n, "Count") == 0 ? count
                                                : NULL;
  }
  if (rpc__descriptor_set_extend(rpctest_descriptor_set, rpctest_descriptor_set_len) != 0)
    return 1;
  rpc_service svcs[2] = {{d, handlers, NULL}, {e, echo_handlers, echo_streams}};
  rpc_server_config cfg = {0};
  cfg.listen = argc > 1 ? argv[1] : "127.0.0.1:0";
  cfg.services = svcs;
  cfg.n_services = 2;
  cfg.workers = 2;
  cfg.drain_ms = 5000;
  cfg.health = health;
  rpc_server *srv = NULL;
  if (rpc_server_start(&cfg, &srv) != 0) return 1;
  printf("PORT %d\n", rpc_server_port(srv));
  fflush(stdout);
  rpc_server_wait(srv);
  rpc_server_destroy(srv);
  return 0;
}
