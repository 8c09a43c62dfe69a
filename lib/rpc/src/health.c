/* health.c - grpc.health.v1.Health on the server's own method table.
 *
 * Check runs on a worker like any unary handler (cfg->health may block
 * briefly). Names answered: "" (the server as a whole) and the full name of
 * every service given in rpc_server_config, both through cfg->health (the
 * dependency: readiness); RPC_HEALTH_LIVENESS, SERVING whenever a worker
 * runs the check at all (the process: liveness, which a database outage
 * must not fail); anything else is NOT_FOUND, as the health protocol asks. Watch (server streaming) is not implemented: it
 * answers UNIMPLEMENTED with a message saying to poll Check, which is what
 * Kubernetes probes and grpcurl use anyway.
 */
#include "rpc_internal.h"

#include <string.h>

#include "grpc/health/v1/health.pb-c.h"

static grpc_status_code health_check(rpc_call *call, const ProtobufCMessage *req_,
                                     ProtobufCMessage *resp_) {
  const Grpc__Health__V1__HealthCheckRequest *req =
      (const Grpc__Health__V1__HealthCheckRequest *)req_;
  Grpc__Health__V1__HealthCheckResponse *resp =
      (Grpc__Health__V1__HealthCheckResponse *)resp_;
  const rpc_server_config *cfg = &call->srv->cfg;
  const char *name = req->service != NULL ? req->service : "";
  if (strcmp(name, RPC_HEALTH_LIVENESS) == 0) {
    resp->status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    return GRPC_STATUS_OK;
  }

  int known = name[0] == '\0';
  for (size_t i = 0; !known && i < cfg->n_services; i++)
    known = strcmp(cfg->services[i].desc->name, name) == 0;
  if (!known)
    return rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "unknown service \"%.200s\"", name);

  int up = cfg->health == NULL || cfg->health(cfg->user) != 0;
  resp->status = up ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                    : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
  return GRPC_STATUS_OK;
}

static grpc_status_code health_watch(rpc_call *call, const ProtobufCMessage *req,
                                     ProtobufCMessage *resp) {
  (void)req;
  (void)resp;
  return rpc_call_fail(call, GRPC_STATUS_UNIMPLEMENTED,
                       "grpc.health.v1.Health/Watch is not supported; poll Check");
}

rpc_handler_fn rpc__health_handler(const char *method_name) {
  if (strcmp(method_name, "Check") == 0) return health_check;
  return health_watch; /* Watch, or any method a newer health.proto adds */
}
