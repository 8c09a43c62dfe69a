/* server.c - the gateway's HTTP/1.1 server (see server.h).
 *
 * An acceptor thread admits connections (GATEWAY_MAX_CONNECTIONS and the
 * per-address cap: over either the socket is closed at accept, no answer)
 * and hands each to its own thread (GATEWAY_WORKERS=0) or to a fixed pool.
 * In pool mode a connection with nothing to read is parked in the
 * acceptor's epoll set (idle keep-alive, or not yet sent anything) and
 * queued for a pool thread when bytes arrive, so N threads serve any number
 * of connections, one request at a time each.
 * The connection thread reads requests into one buffer (the head stays in
 * place while its request is handled: the header views point into it),
 * lets h1.c parse them, runs http.c's pipeline and writes the answer:
 *
 *   deadlines  idle: nothing received for GATEWAY_CONN_TIMEOUT_S -> closed
 *              silently; whole request (head + body) not in within
 *              GATEWAY_REQUEST_TIMEOUT_S of its first byte
 *              -> 408 ["request_timeout"], closed;
 *   refusals   h1.c's verdict (400/414/431/505) as our JSON error, closed;
 *   bodies     read only after the head passed the pipeline (auth, 415,
 *              413 for an announced length); "Expect: 100-continue" gets
 *              its 100 then; over GW_BODY_MAX while streaming -> 413, closed;
 *   keep-alive next request on the same connection unless the client,
 *              an early answer (body unread) or the drain says close;
 *              pipelined requests are answered in order, one at a time.
 * Every close after an answer that left request bytes unread is a lingering
 * close (shut down our side, read and drop for a while), so the client gets
 * the answer instead of a reset.
 */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cruddur/log.h"
#include "cruddur/ts.h"
#include "gateway.h"
#include "h1.h"

/* The connection's buffer: a whole head, plus room to read a body chunk
 * behind it. */
#define SRV_READ_CHUNK (16 * 1024)
#define SRV_BUF (GW_H1_HEAD_MAX + SRV_READ_CHUNK)
/* Lingering close: read and drop for at most this long / this much. */
#define SRV_LINGER_US 1000000
#define SRV_LINGER_BYTES (256 * 1024)

struct gw_http {
  gw_http *prev, *next; /* srv->conns, under srv->mu */
  gw_http *pprev, *pnext; /* srv->parked while parked, under srv->mu */
  int parked;             /* pool mode: idle, watched by the acceptor's epoll set */
  int in_ep;              /* registered in srv->ep (EPOLLONESHOT: re-armed with MOD) */
  int64_t idle_since;     /* when it was parked */
  gw_srv *srv;
  int fd;
  struct sockaddr_storage peer;
  char *buf; /* SRV_BUF bytes, owned */
  size_t len;
  gw_h1 h1;
  const char *path;
  const char *query;
  size_t query_len;
  /* the response */
  int has_resp;
  int status;
  char out[GW_HTTP_HEAD_OUT_MAX]; /* status line and headers, without the last ones */
  size_t out_len;
  const char *body;
  size_t body_len;
  char *owned;
  gw_http_adopt_fn adopt; /* set by gw_http_stream: the answer is a stream's head */
  void *adopt_arg;
};

struct gw_srv {
  gw_srv_config cfg;
  struct gw_app *app;
  int lfd;
  int drain[2]; /* pipe: readable once the drain started */
  pthread_t acceptor;
  pthread_mutex_t mu; /* guards everything below and each gw_http's links and fd */
  pthread_cond_t cv;
  gw_http *conns;
  long n_conns;
  gw_http **queue; /* pool mode: ready to be served (ring of max_conn) */
  gw_http *parked; /* pool mode: idle keep-alive connections, in ep */
  int ep;          /* pool mode: epoll set of the parked connections, or -1 */
  size_t q_head, q_len;
  pthread_t *pool;
  long n_pool;
  atomic_int stopping; /* the drain started (pool threads also wait on cv for it) */
};

/* ---- the current request ------------------------------------------------ */

const char *gw_http_method(const gw_http *c) {
  return c->h1.method;
}

const char *gw_http_path(const gw_http *c) {
  return c->path;
}

const char *gw_http_header(const gw_http *c, const char *name, size_t *len) {
  return gw_h1_header(&c->h1, name, len);
}

const char *gw_http_header_last(const gw_http *c, const char *name, size_t *len) {
  return gw_h1_header_last(&c->h1, name, len);
}

const struct sockaddr_storage *gw_http_peer(const gw_http *c) {
  return &c->peer;
}

int gw_http_arg(const gw_http *c, const char *name, const char **val, size_t *len) {
  if (c->query == NULL) return 0;
  size_t nl = strlen(name);
  const char *p = c->query, *end = c->query + c->query_len;
  while (p != NULL && p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *pe = amp != NULL ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(pe - p));
    /* A bare name without '=' counts as absent, as it always has here. */
    if (eq != NULL && (size_t)(eq - p) == nl && memcmp(p, name, nl) == 0) {
      *val = eq + 1;
      *len = (size_t)(pe - eq - 1);
      return 1;
    }
    p = pe + 1;
  }
  return 0;
}

/* Appends the strings of parts (NULL-terminated) at out + *used, in one
 * piece or not at all; 0 or -1 when they do not fit with a NUL. Written
 * with memcpy: snprintf was 2% of the gateway's instructions per list. */
static int out_put(char *out, size_t cap, size_t *used, const char *const *parts) {
  size_t at = *used;
  for (; *parts; parts++) {
    size_t n = strlen(*parts);
    if (n >= cap - at) return -1;
    memcpy(out + at, *parts, n);
    at += n;
  }
  out[at] = '\0';
  *used = at;
  return 0;
}

int gw_http_respond(gw_http *c, int status, const gw_hdr *hdrs, size_t n, const char *body,
                    size_t len, char *owned) {
  if (c->has_resp || status < 200 || status > 599) goto fail;
  const char *reason = http_status_str((enum http_status)status);
  char code[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                  (char)('0' + status % 10), '\0'};
  size_t used = 0;
  if (out_put(c->out, sizeof c->out, &used,
              (const char *const[]){"HTTP/1.1 ", code, " ", reason, "\r\n", NULL}) != 0)
    goto fail;
  for (size_t i = 0; i < n; i++) {
    /* Our values are checked tokens and constants; a line break would split
     * the answer, so refuse rather than send it. */
    if (strpbrk(hdrs[i].value, "\r\n") != NULL || strpbrk(hdrs[i].name, "\r\n: ") != NULL)
      goto fail;
    if (out_put(c->out, sizeof c->out, &used,
                (const char *const[]){hdrs[i].name, ": ", hdrs[i].value, "\r\n", NULL}) != 0)
      goto fail;
  }
  c->out_len = used;
  c->status = status;
  c->body = body;
  c->body_len = len;
  c->owned = owned;
  c->has_resp = 1;
  return 1;
fail:
  free(owned);
  return 0;
}

int gw_http_stream(gw_http *c, gw_http_adopt_fn adopt, void *arg) {
  if (!c->has_resp) return 0;
  c->adopt = adopt;
  c->adopt_arg = arg;
  return 1;
}

/* ---- reading ------------------------------------------------------------- */

enum { RD_EOF = 0, RD_ERR = -1, RD_IDLE = -2, RD_DEADLINE = -3, RD_DRAIN = -4 };

/* Reads what is there into c->buf[c->len, limit). `idle_wait`: no byte of
 * this request yet, so the drain closes the connection. Returns the bytes
 * read (> 0) or an RD_* code. */
static long srv_read(gw_http *c, size_t limit, int64_t deadline, int64_t *last_rx, int idle_wait) {
  gw_srv *s = c->srv;
  for (;;) {
    int64_t now = ts_mono_us();
    int64_t idle_end = *last_rx + s->cfg.idle_us;
    int64_t until = idle_end < deadline ? idle_end : deadline;
    if (now >= until) return idle_end <= deadline ? RD_IDLE : RD_DEADLINE;
    struct pollfd p[2] = {{c->fd, POLLIN, 0}, {s->drain[0], POLLIN, 0}};
    int rc = poll(p, idle_wait ? 2 : 1, (int)((until - now + 999) / 1000));
    if (rc < 0 && errno != EINTR) return RD_ERR;
    if (rc <= 0) continue;
    if (p[0].revents != 0) {
      ssize_t n = recv(c->fd, c->buf + c->len, limit - c->len, 0);
      if (n > 0) {
        c->len += (size_t)n;
        *last_rx = ts_mono_us();
        return (long)n;
      }
      if (n == 0) return RD_EOF;
      if (errno == EINTR || errno == EAGAIN) continue;
      return RD_ERR;
    }
    if (idle_wait && p[1].revents != 0) return RD_DRAIN;
  }
}

/* ---- writing ------------------------------------------------------------- */

/* "Date: ..." for this second (RFC 9110 6.6.1), cached per thread. */
static const char *srv_date(void) {
  static _Thread_local time_t last;
  static _Thread_local char line[48];
  time_t now = time(NULL);
  if (now != last) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(line, sizeof line, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    last = now;
  }
  return line;
}

static int srv_write_all(int fd, struct iovec *iov, int n) {
  while (n > 0) {
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1; /* includes the send timeout (SO_SNDTIMEO = idle timeout) */
    }
    size_t left = (size_t)w;
    while (n > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + left;
      iov->iov_len -= left;
    }
  }
  return 0;
}

/* Sends the response set for the request. Returns 1 when all of it went. */
static int srv_send(gw_http *c, int close_after) {
  char tail[96];
  int streamed = c->adopt != NULL; /* ends with the connection: no length */
  int with_len = !streamed && c->status != 204 && c->status != 304;
  size_t k = 0;
  if (close_after)
    k += (size_t)snprintf(tail + k, sizeof tail - k, "Connection: close\r\n");
  else if (c->h1.minor == 0)
    k += (size_t)snprintf(tail + k, sizeof tail - k, "Connection: keep-alive\r\n");
  if (with_len)
    k += (size_t)snprintf(tail + k, sizeof tail - k, "Content-Length: %zu\r\n", c->body_len);
  k += (size_t)snprintf(tail + k, sizeof tail - k, "\r\n");
  const char *date = srv_date();
  struct iovec iov[4] = {{c->out, c->out_len},
                         {(void *)date, strlen(date)},
                         {tail, k},
                         {(void *)c->body, c->body_len}};
  int n = 3;
  if ((with_len || streamed) && c->body_len > 0 && strcmp(c->h1.method, "HEAD") != 0) n = 4;
  int ok = srv_write_all(c->fd, iov, n) == 0;
  free(c->owned);
  c->owned = NULL;
  return ok;
}

/* Shuts our side and reads what the client still sends for a while, so an
 * answer given before the request was read reaches it (a close with unread
 * bytes would reset the connection and could destroy the answer). */
static void srv_linger(gw_http *c) {
  shutdown(c->fd, SHUT_WR);
  int64_t end = ts_mono_us() + SRV_LINGER_US;
  size_t total = 0;
  char tmp[4096];
  while (total < SRV_LINGER_BYTES) {
    int64_t now = ts_mono_us();
    if (now >= end) break;
    struct pollfd p = {c->fd, POLLIN, 0};
    if (poll(&p, 1, (int)((end - now) / 1000) + 1) <= 0) break;
    ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
    if (n <= 0) break;
    total += (size_t)n;
  }
}

/* ---- one connection ------------------------------------------------------ */

/* The head is parsed: terminate the views in place (every byte written is a
 * separator the parser has already passed: the space after the target, the
 * '?' before the query, the CR/LF or blank after a value). */
static void srv_views(gw_http *c) {
  gw_h1 *h = &c->h1;
  char *t = (char *)h->target;
  size_t tl = h->target_len;
  if (t == NULL) {
    c->path = "";
    c->query = NULL;
    c->query_len = 0;
  } else {
    t[tl] = '\0';
    char *q = memchr(t, '?', tl);
    c->path = t;
    c->query = NULL;
    c->query_len = 0;
    if (q != NULL) {
      *q = '\0';
      c->query = q + 1;
      c->query_len = tl - (size_t)(q + 1 - t);
    }
  }
  for (size_t i = 0; i < h->n_fields; i++) {
    gw_h1_field *f = &h->fields[i];
    if (f->value_len == 0)
      f->value = "";
    else
      ((char *)f->value)[f->value_len] = '\0';
  }
}

/* Answers a request that never got to the pipeline (refused head, 408)
 * and closes. `r` may exist already (a body being read). */
static void srv_refuse(gw_http *c, gw_req *r, int status, const char *code) {
  if (r == NULL) r = gw_req_new(c->srv->app, c, 0);
  if (r == NULL) return;
  int sent = 0;
  if (gw_reply_error(r, c, status, code) == GW_YES) sent = srv_send(c, 1);
  gw_req_done(r, sent);
  if (sent) srv_linger(c);
}

/* What srv_serve leaves to its caller. */
enum { SRV_DONE = 0, SRV_PARK };

/* Sends a stream's head and hands the socket to its adopter (gw_http_stream).
 * The fd leaves c under mu, so gw_srv_stop no longer shuts it down. */
static void srv_hand_over(gw_http *c, gw_req *r) {
  int sent = srv_send(c, 1);
  gw_req_done(r, sent);
  pthread_mutex_lock(&c->srv->mu);
  int fd = c->fd;
  c->fd = -1;
  pthread_mutex_unlock(&c->srv->mu);
  if (!sent) close(fd);
  c->adopt(c->adopt_arg, sent ? fd : -1);
}

/* Serves requests on c until it is to be closed (SRV_DONE) or, in pool
 * mode, until it is idle between requests with nothing buffered (SRV_PARK):
 * a pool thread never waits on an idle keep-alive client. */
static int srv_serve(gw_http *c) {
  gw_srv *s = c->srv;
  size_t off = 0; /* where the current request starts in c->buf */
  for (int fresh = 1;; fresh = 0) {
    if (off > 0) {
      memmove(c->buf, c->buf + off, c->len - off);
      c->len -= off;
      off = 0;
    }
    if (s->n_pool > 0 && !fresh && c->len == 0) return SRV_PARK;
    int64_t t0 = ts_mono_us();
    /* The request deadline starts with its first byte: the wait before it
     * is bounded by the idle timeout alone, which must outlast the idle
     * timeout of a load balancer in front (README). */
    int64_t deadline = c->len > 0 ? t0 + s->cfg.request_us : INT64_MAX;
    int64_t last_rx = t0;
    gw_h1_begin(&c->h1);
    c->has_resp = 0;
    c->adopt = NULL;
    c->path = NULL;
    c->query = NULL;
    c->query_len = 0;

    /* The head. */
    size_t head_len = 0;
    gw_h1_status st = GW_H1_OK;
    for (;;) {
      if (c->len > 0) {
        st = gw_h1_feed_head(&c->h1, c->buf, c->len, &head_len);
        if (st != GW_H1_OK || c->h1.head_done) break;
      }
      long rr = srv_read(c, GW_H1_HEAD_MAX, deadline, &last_rx, c->len == 0);
      if (rr > 0 && deadline == INT64_MAX) deadline = last_rx + s->cfg.request_us;
      if (rr == RD_DEADLINE) {
        srv_refuse(c, NULL, 408, GW_E_REQUEST_TIMEOUT);
        return SRV_DONE;
      }
      if (rr <= 0) return SRV_DONE; /* closed, idle, drain: no answer */
    }
    if (st != GW_H1_OK) {
      int status;
      const char *code;
      gw_h1_verdict(st, &status, &code);
      srv_refuse(c, NULL, status, code);
      return SRV_DONE;
    }
    srv_views(c);
    gw_req *r = gw_req_new(s->app, c, 1);
    if (r == NULL) return SRV_DONE;
    off = head_len;
    int unread = c->h1.has_body; /* body bytes the answer leaves unread */
    if (gw_req_head(r, c)) {
      if (c->h1.has_body) {
        if (c->h1.expect_continue && c->len == off) {
          static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
          if (send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof cont - 1)) {
            gw_req_done(r, 0);
            return SRV_DONE;
          }
        }
        for (;;) {
          if (c->len > off) {
            size_t used = 0;
            st = gw_h1_feed_body(&c->h1, c->buf + off, c->len - off, &used, gw_req_body_data, r);
            off += used;
            if (st != GW_H1_OK) {
              int status;
              const char *code;
              gw_h1_verdict(st, &status, &code);
              srv_refuse(c, r, status, code);
              return SRV_DONE;
            }
            if (c->h1.msg_done) {
              unread = 0;
              break;
            }
            if (gw_req_body_over(r)) break; /* 413 now, the rest unread */
            /* All consumed (copied into r): read the next piece behind
             * the head, which stays where the views point. */
            c->len = off = head_len;
          }
          long rr = srv_read(c, SRV_BUF, deadline, &last_rx, 0);
          if (rr == RD_DEADLINE) {
            srv_refuse(c, r, 408, GW_E_REQUEST_TIMEOUT);
            return SRV_DONE;
          }
          if (rr <= 0) {
            gw_req_done(r, 0);
            return SRV_DONE;
          }
        }
      } else {
        unread = 0;
      }
      gw_req_body_end(r, c);
    }
    if (!c->has_resp) { /* nothing could be answered: close */
      gw_req_done(r, 0);
      return SRV_DONE;
    }
    if (c->adopt != NULL) {
      srv_hand_over(c, r);
      return SRV_DONE;
    }
    int close_after = unread || !c->h1.keep_alive || atomic_load(&s->stopping);
    int sent = srv_send(c, close_after);
    gw_req_done(r, sent);
    if (!sent) return SRV_DONE;
    if (close_after) {
      if (unread) srv_linger(c);
      return SRV_DONE;
    }
  }
}

/* ---- connections: admit, serve, close ----------------------------------- */

static int srv_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family) return 0;
  if (a->ss_family == AF_INET)
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
  if (a->ss_family == AF_INET6)
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
  return 0;
}

static void srv_close(gw_http *c) {
  gw_srv *s = c->srv;
  pthread_mutex_lock(&s->mu);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next != NULL) c->next->prev = c->prev;
  if (c->fd >= 0) close(c->fd); /* under mu: gw_srv_stop may shutdown() it meanwhile; -1: handed over */
  s->n_conns--;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  free(c->owned);
  free(c->buf);
  free(c);
}

static void *srv_conn_main(void *arg) {
  gw_http *c = arg;
  srv_serve(c);
  srv_close(c);
  return NULL;
}

/* Pool mode: hands an idle connection to the acceptor's epoll set; it is
 * queued again when the client sends (or closes), or closed when idle for
 * GATEWAY_CONN_TIMEOUT_S or at the drain. */
static int srv_park_locked(gw_srv *s, gw_http *c) {
  if (atomic_load(&s->stopping)) return -1;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.ptr = c};
  if (epoll_ctl(s->ep, c->in_ep ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) != 0) return -1;
  c->in_ep = 1;
  c->parked = 1;
  c->idle_since = ts_mono_us();
  c->pprev = NULL;
  c->pnext = s->parked;
  if (s->parked != NULL) s->parked->pprev = c;
  s->parked = c;
  return 0;
}

static void srv_park(gw_http *c) {
  gw_srv *s = c->srv;
  pthread_mutex_lock(&s->mu);
  int rc = srv_park_locked(s, c);
  pthread_mutex_unlock(&s->mu);
  if (rc != 0) srv_close(c);
}

/* Takes c off the parked list (under mu). */
static void srv_unpark(gw_srv *s, gw_http *c) {
  if (c->pprev != NULL)
    c->pprev->pnext = c->pnext;
  else
    s->parked = c->pnext;
  if (c->pnext != NULL) c->pnext->pprev = c->pprev;
  c->pprev = c->pnext = NULL;
  c->parked = 0;
}

/* Queues c for a pool thread (under mu). */
static void srv_enqueue(gw_srv *s, gw_http *c) {
  s->queue[(s->q_head + s->q_len) % (size_t)s->cfg.max_conn] = c;
  s->q_len++;
  pthread_cond_signal(&s->cv);
}

/* The acceptor's side of parking: queue the connections that woke up, and
 * close those idle too long (all of them when `all`, at the drain). */
static void srv_parked_events(gw_srv *s) {
  struct epoll_event ev[64];
  int n = epoll_wait(s->ep, ev, 64, 0);
  pthread_mutex_lock(&s->mu);
  for (int i = 0; i < n; i++) {
    gw_http *c = ev[i].data.ptr;
    if (!c->parked) continue;
    srv_unpark(s, c);
    srv_enqueue(s, c);
  }
  pthread_mutex_unlock(&s->mu);
}

static void srv_parked_expire(gw_srv *s, int all) {
  int64_t now = ts_mono_us();
  gw_http *done = NULL;
  pthread_mutex_lock(&s->mu);
  for (gw_http *c = s->parked, *next; c != NULL; c = next) {
    next = c->pnext;
    if (!all && now - c->idle_since < s->cfg.idle_us) continue;
    srv_unpark(s, c);
    c->pnext = done;
    done = c;
  }
  pthread_mutex_unlock(&s->mu);
  while (done != NULL) {
    gw_http *next = done->pnext;
    srv_close(done); /* close() also takes it out of the epoll set */
    done = next;
  }
}

static void *srv_pool_main(void *arg) {
  gw_srv *s = arg;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    while (s->q_len == 0 && !atomic_load(&s->stopping))
      pthread_cond_wait(&s->cv, &s->mu);
    if (s->q_len == 0) {
      pthread_mutex_unlock(&s->mu);
      return NULL;
    }
    gw_http *c = s->queue[s->q_head];
    s->q_head = (s->q_head + 1) % (size_t)s->cfg.max_conn;
    s->q_len--;
    pthread_mutex_unlock(&s->mu);
    if (srv_serve(c) == SRV_PARK)
      srv_park(c);
    else
      srv_close(c);
  }
}

/* Takes an accepted socket: checks the caps, then serves it. */
static void srv_admit(gw_srv *s, int fd, const struct sockaddr_storage *peer) {
  gw_http *c = calloc(1, sizeof *c);
  char *buf = malloc(SRV_BUF);
  if (c == NULL || buf == NULL) {
    free(c);
    free(buf);
    close(fd);
    return;
  }
  c->srv = s;
  c->fd = fd;
  c->buf = buf;
  c->peer = *peer;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {(time_t)(s->cfg.idle_us / 1000000), (suseconds_t)(s->cfg.idle_us % 1000000)};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  /* A trusted proxy (a load balancer) carries everybody's connections. */
  gw_addr pa;
  int capped = s->cfg.per_ip > 0 && !(gw_addr_from_sockaddr(peer, &pa) == 0 &&
                                      gw_cidrs_has(s->cfg.per_ip_exempt, &pa));
  pthread_mutex_lock(&s->mu);
  long same = 0;
  if (capped)
    for (gw_http *k = s->conns; k != NULL; k = k->next)
      same += srv_same_addr(&k->peer, peer);
  if (s->n_conns >= s->cfg.max_conn || (capped && same >= s->cfg.per_ip)) {
    pthread_mutex_unlock(&s->mu);
    log_debug("connection refused at accept: %s", s->n_conns >= s->cfg.max_conn
                                                      ? "GATEWAY_MAX_CONNECTIONS"
                                                      : "GATEWAY_MAX_CONNECTIONS_PER_IP");
    close(fd);
    free(buf);
    free(c);
    return;
  }
  c->next = s->conns;
  if (s->conns != NULL) s->conns->prev = c;
  s->conns = c;
  s->n_conns++;
  if (s->n_pool > 0) {
    /* Parked until its first bytes arrive: a client that connects and
     * says nothing holds no pool thread. */
    int rc = srv_park_locked(s, c);
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) srv_close(c);
    return;
  }
  pthread_mutex_unlock(&s->mu);
  pthread_attr_t at;
  pthread_t t;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&at, s->cfg.thread_stack);
  int rc = pthread_create(&t, &at, srv_conn_main, c);
  pthread_attr_destroy(&at);
  if (rc != 0) {
    log_warn("cannot start a connection thread: %s", strerror(rc));
    srv_close(c);
  }
}

static void *srv_accept_main(void *arg) {
  gw_srv *s = arg;
  int64_t next_expiry = ts_mono_us() + 1000000;
  for (;;) {
    struct pollfd p[3] = {{s->lfd, POLLIN, 0}, {s->drain[0], POLLIN, 0}, {s->ep, POLLIN, 0}};
    int np = s->ep >= 0 ? 3 : 2;
    /* Pool mode wakes every second to close parked connections gone idle. */
    int rc = poll(p, (nfds_t)np, np == 3 ? 1000 : -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents != 0) break;
    if (np == 3) {
      if (p[2].revents != 0) srv_parked_events(s);
      if (ts_mono_us() >= next_expiry) {
        srv_parked_expire(s, 0);
        next_expiry = ts_mono_us() + 1000000;
      }
    }
    if (p[0].revents == 0) continue;
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    int fd = accept4(s->lfd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
    if (fd < 0) {
      /* Out of descriptors or memory: back off instead of spinning. */
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) usleep(10000);
      continue;
    }
    srv_admit(s, fd, &peer);
  }
  if (s->ep >= 0) srv_parked_expire(s, 1); /* the drain closes idle connections */
  return NULL;
}

/* ---- start and drain ----------------------------------------------------- */

/* Stops the pool threads and frees what gw_srv_start made after the drain
 * pipe (the listening socket and s itself stay): the end of a failed start
 * and of gw_srv_stop. */
static void srv_release(gw_srv *s) {
  pthread_mutex_lock(&s->mu);
  atomic_store(&s->stopping, 1);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  for (long i = 0; i < s->n_pool; i++)
    pthread_join(s->pool[i], NULL);
  free(s->queue);
  free(s->pool);
  if (s->ep >= 0) close(s->ep);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  close(s->drain[0]);
  close(s->drain[1]);
}

int gw_srv_start(const gw_srv_config *cfg, struct gw_app *app, gw_srv **out) {
  gw_srv *s = calloc(1, sizeof *s);
  if (s == NULL) return -1;
  s->cfg = *cfg;
  s->app = app;
  s->lfd = socket(cfg->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (s->lfd < 0) goto fail_free;
  setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(s->lfd, (const struct sockaddr *)&cfg->addr, cfg->addr_len) != 0 ||
      listen(s->lfd, 511) != 0)
    goto fail_sock;
  if (pipe2(s->drain, O_CLOEXEC) != 0) goto fail_sock;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->ep = -1;
  if (cfg->workers > 0) {
    if ((s->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) goto fail_release;
    s->queue = calloc((size_t)cfg->max_conn, sizeof *s->queue);
    s->pool = calloc((size_t)cfg->workers, sizeof *s->pool);
    if (s->queue == NULL || s->pool == NULL) goto fail_release;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, cfg->thread_stack);
    for (; s->n_pool < cfg->workers; s->n_pool++)
      if (pthread_create(&s->pool[s->n_pool], &at, srv_pool_main, s) != 0) break;
    pthread_attr_destroy(&at);
    if (s->n_pool < cfg->workers) goto fail_release;
  }
  if (pthread_create(&s->acceptor, NULL, srv_accept_main, s) != 0) goto fail_release;
  *out = s;
  return 0;
fail_release : {
  int e = errno;
  srv_release(s);
  errno = e;
}
fail_sock : {
  int e = errno;
  close(s->lfd);
  errno = e;
}
fail_free:
  free(s);
  return -1;
}

void gw_srv_quiesce(gw_srv *s) {
  pthread_mutex_lock(&s->mu);
  atomic_store(&s->stopping, 1); /* answers from now on close their connection */
  pthread_mutex_unlock(&s->mu);
  /* Wakes the acceptor and every idle connection for good: nobody reads it. */
  ssize_t w = write(s->drain[1], "x", 1);
  (void)w;
  pthread_join(s->acceptor, NULL);
  close(s->lfd);
  s->lfd = -1;
}

/* Waits until no connection is open or `until_us` passed. Returns the number open. */
static long srv_wait_closed(gw_srv *s, int64_t until_us) {
  pthread_mutex_lock(&s->mu);
  while (s->n_conns > 0 && ts_mono_us() < until_us) {
    pthread_mutex_unlock(&s->mu);
    usleep(10000);
    pthread_mutex_lock(&s->mu);
  }
  long n = s->n_conns;
  pthread_mutex_unlock(&s->mu);
  return n;
}

int gw_srv_stop(gw_srv *s, int64_t until_us, int64_t grace_us) {
  long left = srv_wait_closed(s, until_us);
  if (left > 0) {
    log_warn("drain: %ld connection(s) still open, shutting them down", left);
    pthread_mutex_lock(&s->mu);
    for (gw_http *c = s->conns; c != NULL; c = c->next)
      shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->mu);
    left = srv_wait_closed(s, ts_mono_us() + grace_us);
  }
  if (left > 0) return -1;
  srv_release(s);
  free(s);
  return 0;
}
