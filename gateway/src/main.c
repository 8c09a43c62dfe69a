/* main.c - gateway: the frontend's HTTP API on top of users-svc and
 * messages-svc. Configuration from the environment (README), then serve
 * until SIGTERM/SIGINT, then drain: stop accepting, let in-flight requests
 * finish (up to GATEWAY_DRAIN_MS), stop, exit 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cruddur/cfg.h"
#include "cruddur/log.h"
#include "cruddur/sig.h"
#include "cruddur/ts.h"
#include "gateway.h"

#ifndef GW_HAVE_AUTH /* the ranges stay those of the auth module */
#define AUTH_LEEWAY_MAX_S 300
#define AUTH_JWKS_REFRESH_S 300
#endif

/* The committed gateway/openapi.json, embedded by the build (xxd -i). */
extern unsigned char gateway_openapi_json[];
extern unsigned int gateway_openapi_json_len;

/* Stack of each connection thread: handlers keep small frames, and only
 * touched pages cost memory. */
#define GW_THREAD_STACK (1024 * 1024)

/* "host:port" (IPv4) or "[v6]:port". Returns 0, or -1 when malformed. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, int *v6) {
  char host[128];
  const char *colon;
  memset(ss, 0, sizeof *ss);
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (rb == NULL || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof host) return -1;
    memcpy(host, s + 1, (size_t)(rb - s - 1));
    host[rb - s - 1] = '\0';
    colon = rb + 1;
    *v6 = 1;
  } else {
    colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof host) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *v6 = 0;
  }
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535) return -1;
  if (*v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return -1;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &a->sin_addr) != 1) return -1;
  }
  return 0;
}

/* The abuse limits from GATEWAY_LIMIT_*: a burst of 0 turns one off.
 * Defaults per replica: generous for people, and for our own test suites'
 * default traffic. */
static int limits_open(gw_rl *out[GW_LIMIT_COUNT]) {
  static const struct {
    const char *burst_env, *rate_env;
    long burst, per_min;
  } def[GW_LIMIT_COUNT] = {
      [GW_LIMIT_SENDS] = {"GATEWAY_LIMIT_SENDS_BURST", "GATEWAY_LIMIT_SENDS_PER_MIN", 60, 60},
      [GW_LIMIT_STARTS] = {"GATEWAY_LIMIT_STARTS_BURST", "GATEWAY_LIMIT_STARTS_PER_MIN", 30, 10},
      [GW_LIMIT_SHORT] = {"GATEWAY_LIMIT_SHORT_BURST", "GATEWAY_LIMIT_SHORT_PER_MIN", 120, 60},
  };
  long table = cfg_int("GATEWAY_LIMIT_TABLE", 16384, 128, 1 << 22);
  for (int l = 0; l < GW_LIMIT_COUNT; l++) {
    long burst = cfg_int(def[l].burst_env, def[l].burst, 0, 1000000);
    long per_min = cfg_int(def[l].rate_env, def[l].per_min, 1, 1000000);
    out[l] = NULL;
    if (burst > 0 && gw_rl_new(burst, per_min, (size_t)table, &out[l]) != 0) return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "serve") != 0) {
    fprintf(stderr, "usage: gateway [serve]\n");
    return 2;
  }
  /* Before anything starts a thread (the gRPC channels below start gRPC's,
   * libcurl's resolver its own): a thread that does not block SIGTERM would
   * take a second one during the drain and die of it, with the process. The
   * first one ends sig_wait_stop below; later ones are logged and ignored. */
  sig_block_stop();
  log_init("gateway");
  const char *listen = cfg_str("GATEWAY_LISTEN", "127.0.0.1:4567");
  const char *users_addr = cfg_str("USERS_ADDR", "127.0.0.1:50051");
  const char *messages_addr = cfg_str("MESSAGES_ADDR", "127.0.0.1:50052");
  const char *pool =
      cfg_require("AWS_COGNITO_USER_POOL_ID", "the Cognito user pool whose tokens we accept");
  const char *client_id =
      cfg_require("AWS_COGNITO_USER_POOL_CLIENT_ID", "the app client whose tokens we accept");
  static const char *const region_names[] = {"AWS_REGION", "AWS_DEFAULT_REGION", NULL};
  const char *issuer = cfg_str("COGNITO_ISSUER", NULL);
  char issuer_buf[512];
  if (issuer == NULL) {
    const char *region = cfg_first(region_names, NULL);
    if (region == NULL) {
      fprintf(stderr,
              "AWS_REGION is required: it names the Cognito issuer (or set COGNITO_ISSUER)\n");
      return 2;
    }
    snprintf(issuer_buf, sizeof issuer_buf, "https://cognito-idp.%s.amazonaws.com/%s", region,
             pool);
    issuer = issuer_buf;
  }
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1) ncpu = 1;
  /* Handlers block on their upstream RPCs, so by default every connection
   * gets its own thread (bounded by GATEWAY_MAX_CONNECTIONS) and no request
   * waits behind another connection's call. GATEWAY_WORKERS=N picks a fixed
   * pool of N threads instead, each serving one connection at a time until
   * it closes (the others wait, admitted, in line). */
  long workers = cfg_int("GATEWAY_WORKERS", 0, 0, 256);
  (void)ncpu;
  long rpc_timeout = cfg_int("GATEWAY_RPC_TIMEOUT_MS", 2000, 50, 60000);
  long max_conn = cfg_int("GATEWAY_MAX_CONNECTIONS", 1024, 1, 100000);
  /* Idle keep-alive: longer than a load balancer's own idle timeout (ALB:
   * 60 s), or the balancer reuses a connection we are closing (a 502). */
  long conn_timeout = cfg_int("GATEWAY_CONN_TIMEOUT_S", 75, 1, 3600);
  /* The whole request (head and body) from its first byte. */
  long req_timeout =
      cfg_int("GATEWAY_REQUEST_TIMEOUT_S", conn_timeout < 15 ? 2 * conn_timeout : 30, 1, 7200);
  /* 0 = no per-address limit. Everything behind one proxy shares an address:
   * the trusted proxies below are exempt. */
  long per_ip = cfg_int("GATEWAY_MAX_CONNECTIONS_PER_IP", 256, 0, 100000);
  long drain_ms = cfg_int("GATEWAY_DRAIN_MS", 10000, 0, 600000);
  long ucache_ttl = cfg_int("GATEWAY_USER_CACHE_TTL_S", 30, 0, 3600);
  long hcache_ttl = cfg_int("GATEWAY_HANDLE_CACHE_TTL_S", 5, 0, 3600);
  long leeway = cfg_int("GATEWAY_TOKEN_LEEWAY_S", 30, 0, AUTH_LEEWAY_MAX_S);
  /* How long a key removed from the JWKS can stay trusted (plus one fetch). */
  long jwks_refresh = cfg_int("GATEWAY_JWKS_REFRESH_S", AUTH_JWKS_REFRESH_S, 1, 86400);
  long sse_max = cfg_int("GATEWAY_SSE_MAX_STREAMS", 10000, 1, 1000000);
  long sse_per_user = cfg_int("GATEWAY_SSE_MAX_STREAMS_PER_USER", 8, 1, 1000);
  long sse_keepalive = cfg_int("GATEWAY_SSE_KEEPALIVE_S", 15, 1, 3600);

  struct sockaddr_storage ss;
  int v6 = 0;
  if (parse_listen(listen, &ss, &v6) != 0) {
    fprintf(stderr, "GATEWAY_LISTEN is malformed: want host:port, got \"%s\"\n", listen);
    return 2;
  }
  static gw_app app;
  const char *proxies = cfg_str("GATEWAY_TRUSTED_PROXIES", "");
  if (gw_cidrs_parse(proxies, &app.trusted_proxies) != 0) {
    fprintf(stderr,
            "GATEWAY_TRUSTED_PROXIES is malformed: want comma-separated addresses or networks "
            "(10.0.0.0/8, 2001:db8::/32), at most %d (got \"%s\")\n",
            GW_CIDRS_MAX, proxies);
    return 2;
  }
  if (limits_open(app.limits) != 0) {
    fprintf(stderr, "gateway: out of memory at start\n");
    return 1;
  }
  if (gw_cors_init(&app.cors, cfg_str("FRONTEND_URL", ""), cfg_str("BACKEND_URL", "")) != 0) {
    fprintf(stderr,
            "FRONTEND_URL/BACKEND_URL are malformed: want comma-separated http(s)://host[:port] "
            "origins (at most %d)\n",
            GW_CORS_MAX_ORIGINS);
    return 2;
  }
  app.rpc_timeout_ms = rpc_timeout;
  app.health_timeout_ms = rpc_timeout < 1000 ? rpc_timeout : 1000;
  app.openapi = gateway_openapi_json;
  app.openapi_len = gateway_openapi_json_len;
  atomic_init(&app.in_flight, 0);
  app.ucache = gw_ucache_new(4096, (int64_t)ucache_ttl * 1000000);
  app.hcache = gw_ucache_new(4096, (int64_t)hcache_ttl * 1000000);
  /* Reads are safe to repeat, so a read that finds its upstream restarting
   * (one replica rolling) is retried (rpc_channel_open_retry). Writes are
   * not: CreateMessage without a request id may have been stored by a
   * handler whose answer was lost; they keep only gRPC's transparent retry
   * of calls the server provably never saw. */
  static const char *const users_reads[] = {"/cruddur.users.v1.UsersService/GetUser",
                                            "/cruddur.users.v1.UsersService/BatchGetUsers", NULL};
  static const char *const messages_reads[] = {
      "/cruddur.messages.v1.MessagesService/ListMessageGroups",
      "/cruddur.messages.v1.MessagesService/ListMessages", NULL};
  app.users = rpc_channel_open_retry(users_addr, users_reads);
  app.messages = rpc_channel_open_retry(messages_addr, messages_reads);
  /* GET /api/events streams: their own channel, without retry state per
   * call (rpc_channel_open_streams): they resume with their token. */
  rpc_channel *events = rpc_channel_open_streams(messages_addr);
  if (app.ucache == NULL || app.hcache == NULL || app.users == NULL || app.messages == NULL ||
      events == NULL) {
    fprintf(stderr, "gateway: out of memory at start\n");
    return 1;
  }
#ifdef GW_HAVE_AUTH
  char jwks_url[600];
  snprintf(jwks_url, sizeof jwks_url, "%s/.well-known/jwks.json", issuer);
  auth_config acfg = {.issuer = issuer,
                      .client_id = client_id,
                      .jwks_url = cfg_str("GATEWAY_JWKS_URL", jwks_url),
                      .leeway_s = (int)leeway,
                      .cache_max = 10000,
                      .jwks_min_refresh_s = AUTH_JWKS_MIN_REFRESH_S,
                      .jwks_refresh_s = (int)jwks_refresh};
  if (auth_new(&acfg, &app.auth) != 0) {
    fprintf(stderr, "gateway: cannot set up token verification\n");
    return 1;
  }
#else
  (void)client_id;
  (void)leeway;
  (void)jwks_refresh;
  log_warn("built without the auth module: authenticated routes answer 503");
#endif

#ifdef GW_HAVE_STATIC
  const char *static_dir = cfg_str("GATEWAY_STATIC_DIR", NULL);
  if (static_dir != NULL) {
    static const char *const cognito_names[] = {"COGNITO_ENDPOINT",
                                                "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", NULL};
    static_site_config scfg = {static_dir, cfg_first(cognito_names, NULL), client_id,
                               cfg_first(region_names, "us-east-1")};
    static_site_status sst = static_site_open(&scfg, &app.site);
    if (sst != STATIC_SITE_OK) {
      fprintf(stderr, "GATEWAY_STATIC_DIR is unusable: %s: %s\n", static_dir,
              static_site_strerror(sst));
      return 2;
    }
    log_info("serving the web client from %s (%zu files)", static_dir,
             static_site_file_count(app.site));
  }
#endif

  gw_sse_config ecfg = {events, sse_max, sse_per_user, (int64_t)sse_keepalive * 1000000,
                        rpc_timeout};
  if (gw_sse_start(&ecfg, &app.sse) != 0) {
    fprintf(stderr, "gateway: cannot start the event-stream loop\n");
    return 1;
  }

  gw_srv_config scfg = {.addr = ss,
                        .addr_len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
                        .workers = workers,
                        .max_conn = max_conn,
                        .per_ip = per_ip,
                        .per_ip_exempt = &app.trusted_proxies,
                        .idle_us = (int64_t)conn_timeout * 1000000,
                        .request_us = (int64_t)req_timeout * 1000000,
                        .thread_stack = GW_THREAD_STACK};
  gw_srv *srv = NULL;
  if (gw_srv_start(&scfg, &app, &srv) != 0) {
    fprintf(stderr, "gateway: cannot listen on %s (GATEWAY_LISTEN): %s\n", listen, strerror(errno));
    return 1;
  }
  log_info("gateway listening on %s (workers %ld (0: a thread per connection), users %s, messages "
           "%s, rpc deadline %ld ms)",
           listen, workers, users_addr, messages_addr, rpc_timeout);

  int sig = sig_wait_stop(); /* later ones are logged and ignored */
  log_info("signal %d: draining", sig);
  gw_srv_quiesce(srv);
  gw_sse_quiesce(app.sse); /* event streams end now: clients reconnect elsewhere */
  /* In-flight requests get GATEWAY_DRAIN_MS; then their sockets are shut
   * down, and their threads get one more upstream deadline to notice. */
  int64_t until = ts_mono_us() + drain_ms * 1000;
  if (gw_srv_stop(srv, until, (int64_t)rpc_timeout * 1000 + 1000000) != 0 ||
      gw_sse_stop(app.sse, ts_mono_us() + (int64_t)rpc_timeout * 1000 + 1000000) != 0) {
    /* Threads still hold the app: leave it all to the exit. */
    log_warn("stopped with connections unfinished after %ld ms", drain_ms);
    sig_watch_end();
    return 0;
  }
#ifdef GW_HAVE_AUTH
  auth_free(app.auth);
#endif
#ifdef GW_HAVE_STATIC
  static_site_free(app.site);
#endif
  rpc_channel_close(app.users);
  rpc_channel_close(app.messages);
  rpc_channel_close(events);
  gw_ucache_free(app.ucache);
  gw_ucache_free(app.hcache);
  for (int l = 0; l < GW_LIMIT_COUNT; l++)
    gw_rl_free(app.limits[l]);
  log_info("gateway stopped");
  sig_watch_end();
  return 0;
}
