/* server.h - the gateway's HTTP/1.1 server: sockets, connection threads,
 * limits, deadlines, keep-alive and drain (server.c); request parsing is
 * h1.c (http-parser), the per-request pipeline http.c.
 *
 * One thread serves one connection at a time, reading and answering its
 * requests in order (pipelined ones too). gw_http is that connection as the
 * pipeline and the handlers see it: the current request's head (read-only,
 * looked up with explicit lengths) and the one response they set.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "netaddr.h"

typedef struct gw_http gw_http;
typedef struct gw_srv gw_srv;
struct gw_app;

/* An extra response header. */
typedef struct gw_hdr {
  const char *name, *value;
} gw_hdr;

typedef struct gw_srv_config {
  struct sockaddr_storage addr; /* where to listen */
  socklen_t addr_len;
  long workers;        /* 0: a thread per connection; N: a pool of N threads, idle connections parked */
  long max_conn;       /* open connections (queued ones included); more are closed at accept */
  long per_ip;         /* open connections from one address; 0 = no limit */
  const gw_cidrs *per_ip_exempt; /* addresses the per_ip cap skips (trusted proxies), or NULL */
  int64_t idle_us;     /* nothing received (or sendable) for this long: closed, no answer */
  int64_t request_us;  /* whole request (head + body) from its first byte -> 408 */
  size_t thread_stack; /* bytes per connection thread */
} gw_srv_config;

/* Binds, listens and starts accepting; requests go to http.c's pipeline
 * with `app`. Returns 0 and sets *out, or -1 with errno set (nothing is
 * left allocated or running). */
int gw_srv_start(const gw_srv_config *cfg, struct gw_app *app, gw_srv **out);

/* Drain, part one: closes the listening socket (new connections are
 * refused from return on) and closes idle keep-alive connections; requests
 * being received or handled go on and their connections close after the
 * answer. */
void gw_srv_quiesce(gw_srv *s);

/* Drain, part two: waits until every connection has closed or `until_us`
 * (ts_mono_us clock) has passed, then shuts down the sockets of those left
 * and waits up to `grace_us` more for their threads. Frees the server and
 * returns 0 when no connection thread is left; otherwise returns -1 and
 * leaks it on purpose (the threads still use it and `app`). */
int gw_srv_stop(gw_srv *s, int64_t until_us, int64_t grace_us);

/* ---- the current request (valid from its head until its answer) -------- */

/* The method token as sent ("GET", "FOO"). */
const char *gw_http_method(const gw_http *c);

/* The raw path (the request target before any '?'), NUL-terminated. */
const char *gw_http_path(const gw_http *c);

/* The first header called `name` (case-insensitive) or NULL. The value
 * (trailing blanks removed) is NUL-terminated and holds no NUL (such a
 * request was refused with 400), so *len (when not NULL) == strlen. */
const char *gw_http_header(const gw_http *c, const char *name, size_t *len);

/* The same for the last header called `name`. */
const char *gw_http_header_last(const gw_http *c, const char *name, size_t *len);

/* The connection's peer address (a proxy's, behind one). */
const struct sockaddr_storage *gw_http_peer(const gw_http *c);

/* The first query argument `name=...` (exact bytes): returns 1 and sets
 * *val and *len to its raw value (still percent-encoded, not
 * NUL-terminated); 0 when absent (a bare `name` without '=' counts as
 * absent). */
int gw_http_arg(const gw_http *c, const char *name, const char **val, size_t *len);

/* Sets the request's one response: `status`, the headers, and the body
 * body[0, len) (none for HEAD requests, Content-Length as for GET).
 * `owned` (from malloc, may be NULL) is freed after sending, or now on
 * failure; `body` may point into it or to memory that outlives the
 * connection. Returns 1, or 0 when the head does not fit (GW_HTTP_HEAD_OUT_MAX)
 * or a response was already set: the connection is then closed unanswered. */
#define GW_HTTP_HEAD_OUT_MAX (8 * 1024)
int gw_http_respond(gw_http *c, int status, const gw_hdr *hdrs, size_t n, const char *body,
                    size_t len, char *owned);

/* ---- streamed answers (server-sent events) ------------------------------ */

/* Takes over the socket of a streamed answer: fd >= 0 is now the callee's
 * to close; fd == -1 means the answer could not be sent (nothing to close). */
typedef void (*gw_http_adopt_fn)(void *arg, int fd);

/* Turns the response just set with gw_http_respond into the head of a
 * stream: it goes out without Content-Length and with Connection: close
 * (the body set is the stream's first bytes), then the connection's socket
 * is handed to adopt(arg, fd) and the connection ends here without closing
 * it (it no longer counts against GATEWAY_MAX_CONNECTIONS). Returns 1 when
 * a response is set: adopt is then called exactly once, on this thread,
 * after the handler returned; 0 (no response set) when it will not be. */
int gw_http_stream(gw_http *c, gw_http_adopt_fn adopt, void *arg);

#endif
