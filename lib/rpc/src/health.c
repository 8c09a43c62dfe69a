/* health.c - grpc.health.v1.Health on the server's own method table.
 *
 * Check runs on a worker like any unary handler (cfg->health may block
 * briefly). Names answered: "" (the server as a whole) and the full name of
 * every service given in rpc_server_config, both through cfg->health (the
 * dependency: readiness); RPC_HEALTH_LIVENESS, SERVING whenever a worker
 * runs the check at all (the process: liveness, which a database outage
 * must not fail); anything else is NOT_FOUND, as the health protocol asks.
 *
 * Watch is a server stream: it sends the status at once, then each change.
 * One thread per server (started with the first Watch of a dependency
 * name) asks cfg->health every RPC_HEALTH_WATCH_MS and pushes the new
 * status to the streams whose last status differs; idle streams hold no
 * thread. Per the protocol an unknown name is not an error for Watch: it
 * gets SERVICE_UNKNOWN and stays open. Watchers are bounded by the server's
 * stream cap; a watcher too slow to take its updates is ended with
 * RESOURCE_EXHAUSTED.
 */
#include "rpc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cruddur/log.h"

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

static grpc_status_code health_unknown(rpc_call *call, const ProtobufCMessage *req,
                                       ProtobufCMessage *resp) {
  (void)req;
  (void)resp;
  return rpc_call_fail(call, GRPC_STATUS_UNIMPLEMENTED,
                       "this grpc.health.v1.Health method is not supported");
}

rpc_handler_fn rpc__health_handler(const char *method_name) {
  if (strcmp(method_name, "Check") == 0) return health_check;
  return health_unknown; /* any unary method a newer health.proto adds */
}

/* ======================================================================
 * Watch
 * ==================================================================== */

#define RPC_HEALTH_WATCH_MS 1000

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus hw_status;

typedef struct hw_entry {
  rpc_sstream *s; /* a reference, released when the stream is done */
  hw_status last; /* what this watcher was last sent */
  int fixed;      /* liveness or unknown name: never changes */
} hw_entry;

struct rpc_health_watch {
  rpc_server *srv; /* reference */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  hw_entry *v; /* owned array */
  size_t n, cap;
  pthread_t th;
  int started, stop;
};

static hw_status dependency_status(const rpc_server_config *cfg) {
  int up = cfg->health == NULL || cfg->health(cfg->user) != 0;
  return up ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
            : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static int send_status(rpc_sstream *s, hw_status st) {
  Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  r.status = st;
  int rc = rpc_sstream_send(s, &r.base);
  if (rc == RPC_SSTREAM_FULL)
    rpc_sstream_end(s, GRPC_STATUS_RESOURCE_EXHAUSTED, "health watcher too slow");
  return rc;
}

static void *hw_main(void *arg) {
  struct rpc_health_watch *hw = arg;
  pthread_mutex_lock(&hw->mu);
  while (!hw->stop) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += RPC_HEALTH_WATCH_MS / 1000;
    until.tv_nsec += (long)(RPC_HEALTH_WATCH_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    while (!hw->stop && pthread_cond_timedwait(&hw->cv, &hw->mu, &until) != ETIMEDOUT) {
    }
    if (hw->stop) break;
    int any = 0;
    for (size_t i = 0; i < hw->n && !any; i++) any = !hw->v[i].fixed;
    if (!any) continue;
    pthread_mutex_unlock(&hw->mu); /* cfg->health may block briefly */
    hw_status st = dependency_status(&hw->srv->cfg);
    pthread_mutex_lock(&hw->mu);
    for (size_t i = 0; i < hw->n; i++) {
      hw_entry *e = &hw->v[i];
      if (e->fixed || e->last == st) continue;
      if (send_status(e->s, st) == RPC_SSTREAM_OK) e->last = st;
    }
  }
  pthread_mutex_unlock(&hw->mu);
  return NULL;
}

static void hw_done(void *user, rpc_sstream *s, grpc_status_code code) {
  struct rpc_health_watch *hw = user;
  (void)code;
  pthread_mutex_lock(&hw->mu);
  for (size_t i = 0; i < hw->n; i++) {
    if (hw->v[i].s == s) {
      hw->v[i] = hw->v[--hw->n];
      break;
    }
  }
  pthread_mutex_unlock(&hw->mu);
  rpc_sstream_release(s);
}

/* The server's watch state, made on first use. */
static struct rpc_health_watch *hw_get(rpc_server *srv) {
  pthread_mutex_lock(&srv->mu);
  if (srv->hw == NULL) {
    struct rpc_health_watch *hw = calloc(1, sizeof *hw);
    if (hw != NULL) {
      hw->srv = srv;
      pthread_condattr_t ca;
      pthread_condattr_init(&ca);
      pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
      pthread_mutex_init(&hw->mu, NULL);
      pthread_cond_init(&hw->cv, &ca);
      pthread_condattr_destroy(&ca);
      srv->hw = hw;
    }
  }
  struct rpc_health_watch *hw = srv->hw;
  pthread_mutex_unlock(&srv->mu);
  return hw;
}

grpc_status_code rpc__health_watch(rpc_call *call, const ProtobufCMessage *req_,
                                   rpc_sstream *s) {
  const Grpc__Health__V1__HealthCheckRequest *req =
      (const Grpc__Health__V1__HealthCheckRequest *)req_;
  rpc_server *srv = call->srv;
  const rpc_server_config *cfg = &srv->cfg;
  const char *name = req->service != NULL ? req->service : "";
  hw_entry e = {s, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING, 1};
  int known = name[0] == '\0';
  for (size_t i = 0; !known && i < cfg->n_services; i++)
    known = strcmp(cfg->services[i].desc->name, name) == 0;
  if (strcmp(name, RPC_HEALTH_LIVENESS) == 0)
    e.last = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  else if (!known)
    e.last = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
  else {
    e.last = dependency_status(cfg);
    e.fixed = 0;
  }

  struct rpc_health_watch *hw = hw_get(srv);
  if (hw == NULL) return rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  pthread_mutex_lock(&hw->mu);
  if (hw->n == hw->cap) {
    size_t cap = hw->cap ? hw->cap * 2 : 16;
    hw_entry *v = realloc(hw->v, cap * sizeof *v);
    if (v == NULL) {
      pthread_mutex_unlock(&hw->mu);
      return rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    hw->v = v;
    hw->cap = cap;
  }
  if (!e.fixed && !hw->started && !hw->stop) {
    if (pthread_create(&hw->th, NULL, hw_main, hw) != 0) {
      pthread_mutex_unlock(&hw->mu);
      return rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "cannot start the watch thread");
    }
    hw->started = 1;
  }
  /* Sent under hw->mu so the watch thread cannot send a newer status first. */
  (void)send_status(s, e.last);
  e.s = rpc_sstream_ref(s);
  hw->v[hw->n++] = e;
  pthread_mutex_unlock(&hw->mu);
  rpc_sstream_on_done(s, hw_done, hw);
  return GRPC_STATUS_OK;
}

void rpc__health_watch_stop(rpc_server *srv) {
  struct rpc_health_watch *hw = srv->hw;
  if (hw == NULL) return;
  pthread_mutex_lock(&hw->mu);
  hw->stop = 1;
  pthread_cond_broadcast(&hw->cv);
  int started = hw->started;
  pthread_mutex_unlock(&hw->mu);
  if (started) pthread_join(hw->th, NULL);
  /* The streams are over and released (the drain waited for that). */
  free(hw->v);
  pthread_mutex_destroy(&hw->mu);
  pthread_cond_destroy(&hw->cv);
  free(hw);
  srv->hw = NULL;
}
