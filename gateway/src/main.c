/* main.c - gateway: the frontend's HTTP API on top of users-svc and
 * messages-svc. Configuration from the environment (README), then serve
 * until SIGTERM/SIGINT, then drain: stop accepting, let in-flight requests
 * finish (up to GATEWAY_DRAIN_MS), stop, exit 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cruddur/cfg.h"
#include "cruddur/log.h"
#include "cruddur/ts.h"
#include "gateway.h"

/* The committed gateway/openapi.json, embedded by the build (xxd -i). */
extern unsigned char gateway_openapi_json[];
extern unsigned int gateway_openapi_json_len;

/* The body never gets past this: headers and the read buffer share it. */
#define GW_CONN_MEMORY (64 * 1024)
/* Stack of each connection thread in thread-per-connection mode: handlers
 * keep small frames, and only touched pages cost memory. */
#define GW_THREAD_STACK (1024 * 1024)

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t n = strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  log_msg(LOG_WARN, "microhttpd: %s", line);
}

/* ---- the request deadline ------------------------------------------------
 * libmicrohttpd's connection timeout only measures idleness, so a client
 * that sends one byte a second keeps its connection (and its 64 KiB) for
 * ever. Each connection is tracked from accept (or from the end of its
 * previous request) until its request is fully received or answered; a
 * reaper thread closes the ones past GATEWAY_REQUEST_TIMEOUT_S. It cannot
 * ask libmicrohttpd to close a connection (0.9.75 has no such call), so it
 * writes a 408 itself (nothing else is being written on a connection that
 * is still receiving) and shuts the socket down; libmicrohttpd then sees
 * the end of the stream and closes the connection as usual. The fd stays
 * valid while we hold conns_mu: libmicrohttpd reports CLOSED (which takes
 * the lock to unlink) before it closes the socket. */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  gw_app *app = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    gw_conn *k = calloc(1, sizeof *k);
    if (k == NULL) return; /* no deadline for this one; idle timeout still applies */
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    k->fd = ci != NULL ? ci->connect_fd : -1;
    atomic_init(&k->start_us, (long long)ts_mono_us());
    atomic_init(&k->busy, 0);
    pthread_mutex_lock(&app->conns_mu);
    k->next = app->conns;
    if (app->conns != NULL) app->conns->prev = k;
    app->conns = k;
    pthread_mutex_unlock(&app->conns_mu);
    *socket_context = k;
    return;
  }
  gw_conn *k = *socket_context;
  if (k == NULL) return;
  pthread_mutex_lock(&app->conns_mu);
  if (k->prev != NULL)
    k->prev->next = k->next;
  else
    app->conns = k->next;
  if (k->next != NULL) k->next->prev = k->prev;
  pthread_mutex_unlock(&app->conns_mu);
  free(k);
  *socket_context = NULL;
}

static const char TIMEOUT_408[] = "HTTP/1.1 408 Request Timeout\r\n"
                                  "Content-Type: application/json\r\n"
                                  "Content-Length: 19\r\n"
                                  "Connection: close\r\n"
                                  "Cache-Control: no-store\r\n"
                                  "\r\n"
                                  "[\"request_timeout\"]";

static atomic_int reaper_stop;

static void *reaper(void *arg) {
  gw_app *app = arg;
  while (!atomic_load(&reaper_stop)) {
    usleep(250000);
    int64_t now = ts_mono_us();
    int n = 0;
    pthread_mutex_lock(&app->conns_mu);
    for (gw_conn *k = app->conns; k != NULL; k = k->next) {
      if (k->reaped || k->fd < 0 || atomic_load(&k->busy) ||
          now - (int64_t)atomic_load(&k->start_us) <= app->request_timeout_us)
        continue;
      k->reaped = 1;
      /* Best effort, never blocks: the client may not be reading. */
      ssize_t w = send(k->fd, TIMEOUT_408, sizeof TIMEOUT_408 - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      (void)w;
      shutdown(k->fd, SHUT_RDWR);
      n++;
    }
    pthread_mutex_unlock(&app->conns_mu);
    if (n > 0)
      log_info("closed %d connection(s) that did not send their request within %lld s (408)", n,
               (long long)(app->request_timeout_us / 1000000));
  }
  return NULL;
}

/* Keeps the path exactly as sent: route.c decodes segment by segment, and
 * query values are decoded where they are read. */
static size_t keep_raw(void *cls, struct MHD_Connection *c, char *s) {
  return strlen(s);
}

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

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "serve") != 0) {
    fprintf(stderr, "usage: gateway [serve]\n");
    return 2;
  }
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
  /* Handlers block on their upstream RPCs. In a thread pool a connection
   * waits behind whatever its thread is blocked on, even while other threads
   * idle (a request could reach a draining upstream after it had gone), so by
   * default every connection gets its own thread (bounded by
   * GATEWAY_MAX_CONNECTIONS). GATEWAY_WORKERS=N picks a pool of N epoll
   * threads instead. */
  long workers = cfg_int("GATEWAY_WORKERS", 0, 0, 256);
  (void)ncpu;
  long rpc_timeout = cfg_int("GATEWAY_RPC_TIMEOUT_MS", 2000, 50, 60000);
  long max_conn = cfg_int("GATEWAY_MAX_CONNECTIONS", 1024, 1, 100000);
  long conn_timeout = cfg_int("GATEWAY_CONN_TIMEOUT_S", 15, 1, 3600);
  /* The whole request (head and body) from accept or from the end of the
   * previous request: an idle keep-alive wait (up to conn_timeout) plus as
   * long again to send the request. */
  long req_timeout = cfg_int("GATEWAY_REQUEST_TIMEOUT_S", 2 * conn_timeout, 1, 7200);
  /* 0 = no per-address limit. Everything behind one proxy shares an address. */
  long per_ip = cfg_int("GATEWAY_MAX_CONNECTIONS_PER_IP", 256, 0, 100000);
  long drain_ms = cfg_int("GATEWAY_DRAIN_MS", 10000, 0, 600000);
  long ucache_ttl = cfg_int("GATEWAY_USER_CACHE_TTL_S", 30, 0, 3600);
  long hcache_ttl = cfg_int("GATEWAY_HANDLE_CACHE_TTL_S", 5, 0, 3600);
  long leeway = cfg_int("GATEWAY_TOKEN_LEEWAY_S", 30, 0, 300);

  struct sockaddr_storage ss;
  int v6 = 0;
  if (parse_listen(listen, &ss, &v6) != 0) {
    fprintf(stderr, "GATEWAY_LISTEN is malformed: want host:port, got \"%s\"\n", listen);
    return 2;
  }
  static gw_app app;
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
  pthread_mutex_init(&app.conns_mu, NULL);
  app.request_timeout_us = (int64_t)req_timeout * 1000000;
  app.ucache = gw_ucache_new(4096, (int64_t)ucache_ttl * 1000000);
  app.hcache = gw_ucache_new(4096, (int64_t)hcache_ttl * 1000000);
  app.users = rpc_channel_open(users_addr);
  app.messages = rpc_channel_open(messages_addr);
  if (app.ucache == NULL || app.hcache == NULL || app.users == NULL || app.messages == NULL) {
    fprintf(stderr, "gateway: out of memory at start\n");
    return 1;
  }
#ifdef GW_HAVE_AUTH
  char jwks_url[600];
  snprintf(jwks_url, sizeof jwks_url, "%s/.well-known/jwks.json", issuer);
  auth_config acfg = {issuer, client_id, jwks_url, (int)leeway, 10000, 30};
  if (auth_new(&acfg, &app.auth) != 0) {
    fprintf(stderr, "gateway: cannot set up token verification\n");
    return 1;
  }
#else
  (void)client_id;
  (void)leeway;
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

  /* Signals go to sigwait below, never to a worker thread: block them
   * before any thread starts. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC;
  struct MHD_OptionItem threading[2] = {{MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}};
  if (workers > 0) {
    flags |= MHD_USE_EPOLL;
    threading[0] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)workers, NULL};
  } else {
    flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    threading[0] = (struct MHD_OptionItem){MHD_OPTION_THREAD_STACK_SIZE, GW_THREAD_STACK, NULL};
  }
  if (v6) flags |= MHD_USE_IPv6;
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, 0, NULL, NULL, gw_on_request, &app, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
      MHD_OPTION_ARRAY, threading, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)max_conn, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)per_ip,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)conn_timeout, MHD_OPTION_NOTIFY_CONNECTION,
      on_connection, &app,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)GW_CONN_MEMORY, MHD_OPTION_NOTIFY_COMPLETED,
      gw_req_done, &app, MHD_OPTION_UNESCAPE_CALLBACK, keep_raw, NULL, MHD_OPTION_EXTERNAL_LOGGER,
      mhd_log, NULL, MHD_OPTION_END);
  if (d == NULL) {
    fprintf(stderr, "gateway: cannot listen on %s (GATEWAY_LISTEN): %s\n", listen, strerror(errno));
    return 1;
  }
  log_info("gateway listening on %s (workers %ld (0: a thread per connection), users %s, messages %s, rpc deadline %ld ms)",
           listen, workers, users_addr, messages_addr, rpc_timeout);
  pthread_t reaper_thread;
  atomic_init(&reaper_stop, 0);
  if (pthread_create(&reaper_thread, NULL, reaper, &app) != 0) {
    fprintf(stderr, "gateway: cannot start the request deadline thread\n");
    MHD_stop_daemon(d);
    return 1;
  }

  int sig = 0;
  sigwait(&sigs, &sig);
  log_info("signal %d: draining", sig);
  MHD_socket lsock = MHD_quiesce_daemon(d);
  if (lsock != MHD_INVALID_SOCKET) close(lsock);
  int64_t until = ts_mono_us() + drain_ms * 1000;
  while (atomic_load(&app.in_flight) > 0 && ts_mono_us() < until)
    usleep(10000);
  long left = atomic_load(&app.in_flight);
  atomic_store(&reaper_stop, 1);
  pthread_join(reaper_thread, NULL);
  MHD_stop_daemon(d);
  pthread_mutex_destroy(&app.conns_mu);
  if (left > 0) log_warn("stopped with %ld requests unfinished after %ld ms", left, drain_ms);
#ifdef GW_HAVE_AUTH
  auth_free(app.auth);
#endif
#ifdef GW_HAVE_STATIC
  static_site_free(app.site);
#endif
  rpc_channel_close(app.users);
  rpc_channel_close(app.messages);
  gw_ucache_free(app.ucache);
  gw_ucache_free(app.hcache);
  log_info("gateway stopped");
  return 0;
}
