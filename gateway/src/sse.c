/* sse.c - GET /api/events (see sse.h).
 *
 * A stream's life, and who may touch it when:
 *
 *   HANDSHAKE  gw_sse_open (the connection thread) created it, reserved its
 *              place under the caps and started its watch (wmux.c: one
 *              watch on the process's one WatchMany call). The channel
 *              thread queues events on it (sse_on_msg) and marks it ended
 *              (sse_on_end); the handler waits on hub->cv for the first of
 *              either. The loop never sees it.
 *   LIVE       the handler answered 200 with the first event as the body
 *              and the server handed the socket over (sse_adopt): the loop
 *              owns the socket, the output buffer and the timers; the
 *              channel thread still queues events and marks the end.
 *   CLOSED     the client side is gone (closed by the client, too slow,
 *              expired token, upstream ended, drain) or never came (the
 *              handshake failed after the watch started). The watch is
 *              cancelled; the stream waits for sse_on_end (which
 *              wmux_watch_cancel may run inline, on the loop's thread:
 *              hence every cancel below is made with mu not held).
 *
 * A stream is freed, by the loop only, once it is CLOSED and its watch has
 * ended (on_end returned: nothing more can arrive) and it is not on the
 * ready list; a failed handshake whose watch already ended frees it itself.
 * `user` and the caps' counts are set before any other thread can see the
 * stream; `watch` before the loop can. Fields marked (mu) are read and written under hub->mu;
 * fields marked (loop) only by the loop thread after the hand-over.
 */
#define _GNU_SOURCE
#include "sse.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "cruddur/log.h"
#include "cruddur/ts.h"
#include "errmap.h"
#include "gateway.h"
#include "wmux.h"

#ifdef GW_HAVE_AUTH
#include <cjose/base64.h>
#include <cjose/util.h>
#endif

typedef enum { SSE_HANDSHAKE = 0, SSE_LIVE, SSE_CLOSED } sse_phase;

/* One formatted event ("id: ...\nevent: ...\ndata: ...\n\n"). */
typedef struct sse_item {
  struct sse_item *next;
  size_t len;
  char text[];
} sse_item;

/* The open streams of one user (the per-user cap). */
typedef struct sse_user {
  struct sse_user *next;
  long n;
  char uuid[37];
} sse_user;

#define SSE_USER_BUCKETS 1024

typedef struct sse_stream {
  gw_sse *hub;                    /* reference */
  wmux_watch *watch;              /* owned reference, released when freed */
  char user[37];                  /* the caller's uuid */
  struct sse_stream *prev, *next; /* hub->streams (mu) */
  struct sse_stream *rnext;       /* hub->ready (mu) */
  int in_ready;                   /* (mu) */
  sse_phase phase;                /* (mu) */
  int fd;                         /* (mu) set by sse_adopt; then the loop's */
  sse_item *q_head, *q_tail;      /* (mu) events not yet taken by the loop */
  size_t q_n;                     /* (mu) */
  int overflow;                   /* (mu) the queue overflowed: drop the client */
  int ended;                      /* (mu) sse_on_end ran */
  rpc_status end;                 /* (mu) its status, valid once ended */
  /* (loop) */
  struct sse_stream *lprev, *lnext; /* hub->live: registered in the epoll set */
  int registered, want_out;
  char *out; /* owned; NULL when empty */
  size_t out_off, out_len;
  size_t rx;
  int64_t last_write_us, expires_us;
} sse_stream;

struct gw_sse {
  gw_sse_config cfg;
  pthread_t loop;
  int ep, kick; /* epoll set, eventfd */
  pthread_mutex_t mu;
  pthread_cond_t cv;        /* handshakes wait here; gw_sse_stop waits for n == 0 */
  sse_stream *streams;      /* (mu) every stream, any phase */
  sse_stream *ready;        /* (mu) LIVE/CLOSED streams with news for the loop */
  long n;                   /* (mu) streams allocated */
  int stopping;             /* (mu) drain started */
  int exiting;              /* (mu) the loop ends */
  sse_user *users[SSE_USER_BUCKETS]; /* (mu) */
  sse_stream *live;         /* (loop) */
  wmux *mux;                /* owned: every stream's watch rides its one call */
};

/* ---- the per-user count (under mu) --------------------------------------- */

static sse_user **sse_user_slot(gw_sse *h, const char *uuid) {
  unsigned long k = 5381;
  for (const char *p = uuid; *p; p++)
    k = k * 33 + (unsigned char)*p;
  sse_user **pp = &h->users[k % SSE_USER_BUCKETS];
  while (*pp != NULL && strcmp((*pp)->uuid, uuid) != 0)
    pp = &(*pp)->next;
  return pp;
}

static long sse_user_count(gw_sse *h, const char *uuid) {
  sse_user *u = *sse_user_slot(h, uuid);
  return u != NULL ? u->n : 0;
}

static int sse_user_add(gw_sse *h, const char *uuid, long d) {
  sse_user **pp = sse_user_slot(h, uuid);
  if (*pp == NULL) {
    if (d < 0) return 0;
    sse_user *u = calloc(1, sizeof *u);
    if (u == NULL) return -1;
    strcpy(u->uuid, uuid);
    *pp = u;
  }
  (*pp)->n += d;
  if ((*pp)->n <= 0) {
    sse_user *u = *pp;
    *pp = u->next;
    free(u);
  }
  return 0;
}

/* ---- formatting (channel thread) ----------------------------------------- */

/* 1 when id is 1..GW_SSE_ID_MAX printable ASCII bytes without blanks: safe
 * on an `id:` line and in a Last-Event-ID header. */
static int sse_id_valid(const char *id) {
  size_t n = 0;
  if (id == NULL) return 0;
  for (; id[n] != '\0'; n++)
    if ((unsigned char)id[n] <= 0x20 || (unsigned char)id[n] >= 0x7f || n >= GW_SSE_ID_MAX) return 0;
  return n > 0;
}

static sse_item *sse_item_new(const char *id, const char *event, const char *data) {
  size_t cap = strlen(id) + strlen(event) + strlen(data) + 32;
  sse_item *it = malloc(sizeof *it + cap);
  if (it == NULL) return NULL;
  int k = snprintf(it->text, cap, "id: %s\nevent: %s\ndata: %s\n\n", id, event, data);
  it->len = (size_t)k;
  it->next = NULL;
  return it;
}

/* The event as SSE text. Returns NULL with *skip = 1 for an event kind this
 * gateway does not know (a newer server), or NULL with *skip = 0 when it
 * cannot be sent (out of memory, a malformed token). */
static sse_item *sse_format(const Cruddur__Messages__V1__WatchEvent *ev, int *skip) {
  *skip = 0;
  if (!sse_id_valid(ev->resume_token)) return NULL;
  char *json = NULL;
  const char *kind;
  switch (ev->event_case) {
  case CRUDDUR__MESSAGES__V1__WATCH_EVENT__EVENT_READY:
    kind = "ready";
    break;
  case CRUDDUR__MESSAGES__V1__WATCH_EVENT__EVENT_RESYNC:
    kind = "resync";
    break;
  case CRUDDUR__MESSAGES__V1__WATCH_EVENT__EVENT_MESSAGE:
    kind = "message";
    if ((json = gw_json_created(ev->message)) == NULL) return NULL;
    break;
  case CRUDDUR__MESSAGES__V1__WATCH_EVENT__EVENT_MESSAGE_GROUP:
    kind = "message_group";
    if ((json = gw_json_group(ev->message_group)) == NULL) return NULL;
    break;
  default:
    *skip = 1;
    return NULL;
  }
  sse_item *it = sse_item_new(ev->resume_token, kind, json != NULL ? json : "{}");
  free(json);
  return it;
}

/* ---- the rpc callbacks (channel thread: never block) ---------------------- */

/* Puts s on the ready list (under mu); 1 when the loop must be woken. */
static int sse_ready_locked(gw_sse *h, sse_stream *s) {
  if (s->in_ready || s->phase == SSE_HANDSHAKE) return 0;
  int was_empty = h->ready == NULL;
  s->in_ready = 1;
  s->rnext = h->ready;
  h->ready = s;
  return was_empty;
}

static void sse_kick(gw_sse *h) {
  uint64_t one = 1;
  ssize_t w = write(h->kick, &one, sizeof one);
  (void)w; /* a full counter still wakes the loop */
}

static int sse_on_msg(void *user, const ProtobufCMessage *msg) {
  sse_stream *s = user;
  gw_sse *h = s->hub;
  int skip;
  sse_item *it = sse_format((const Cruddur__Messages__V1__WatchEvent *)msg, &skip);
  if (it == NULL) {
    if (skip) return 0;
    log_warn("events: an upstream event cannot be sent (malformed resume token or no memory): "
             "stream dropped");
    return -1;
  }
  pthread_mutex_lock(&h->mu);
  if (s->q_n >= GW_SSE_QUEUE_MAX || s->phase == SSE_CLOSED) {
    s->overflow = s->phase != SSE_CLOSED;
    int wake = sse_ready_locked(h, s);
    pthread_mutex_unlock(&h->mu);
    free(it);
    if (wake) sse_kick(h);
    return -1; /* on_end follows: the loop drops the client, which resumes */
  }
  if (s->q_tail != NULL)
    s->q_tail->next = it;
  else
    s->q_head = it;
  s->q_tail = it;
  s->q_n++;
  int wake = sse_ready_locked(h, s);
  if (s->phase == SSE_HANDSHAKE) pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  if (wake) sse_kick(h);
  return 0;
}

/* Nothing of s is touched after the unlock: the loop may free it at once. */
static void sse_on_end(void *user, const rpc_status *st) {
  sse_stream *s = user;
  gw_sse *h = s->hub;
  pthread_mutex_lock(&h->mu);
  s->ended = 1;
  s->end = *st;
  int wake = sse_ready_locked(h, s);
  if (s->phase == SSE_HANDSHAKE) pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  if (wake) sse_kick(h);
}

/* ---- freeing -------------------------------------------------------------- */

static void sse_items_free(sse_item *it) {
  while (it != NULL) {
    sse_item *next = it->next;
    free(it);
    it = next;
  }
}

/* Unlinks and frees s (under mu; its watch has ended, it is off the ready
 * list and out of the loop's set). */
static void sse_free_locked(gw_sse *h, sse_stream *s) {
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    h->streams = s->next;
  if (s->next != NULL) s->next->prev = s->prev;
  sse_user_add(h, s->user, -1);
  h->n--;
  pthread_cond_broadcast(&h->cv);
  sse_items_free(s->q_head);
  wmux_watch_release(s->watch); /* ended: nothing runs inline */
  free(s->out);
  free(s);
}

/* ---- the loop's side ------------------------------------------------------- */

static void sse_epoll_set(gw_sse *h, sse_stream *s, int want_out) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0),
                           .data.ptr = s};
  epoll_ctl(h->ep, EPOLL_CTL_MOD, s->fd, &ev);
  s->want_out = want_out;
}

/* Ends the client side: closes the socket and cancels the watch (its on_end
 * puts s on the ready list, where it is freed). */
static void sse_close_client(gw_sse *h, sse_stream *s) {
  if (s->registered) {
    if (s->lprev != NULL)
      s->lprev->lnext = s->lnext;
    else
      h->live = s->lnext;
    if (s->lnext != NULL) s->lnext->lprev = s->lprev;
    s->registered = 0;
  }
  free(s->out);
  s->out = NULL;
  s->out_off = s->out_len = 0;
  pthread_mutex_lock(&h->mu);
  int fd = s->fd;
  s->fd = -1;
  s->phase = SSE_CLOSED;
  int ended = s->ended;
  if (ended && !s->in_ready) sse_free_locked(h, s); /* nothing else will come */
  pthread_mutex_unlock(&h->mu);
  if (fd >= 0) close(fd); /* also leaves the epoll set */
  /* Cancelled outside mu: on_end may run from inside wmux_watch_cancel. */
  if (!ended) wmux_watch_cancel(s->watch);
}

/* Writes what the buffer holds. Returns -1 when the client is gone. */
static int sse_flush(gw_sse *h, sse_stream *s) {
  while (s->out_off < s->out_len) {
    ssize_t w = send(s->fd, s->out + s->out_off, s->out_len - s->out_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      s->out_off += (size_t)w;
      s->last_write_us = ts_mono_us();
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!s->want_out) sse_epoll_set(h, s, 1);
      return 0;
    }
    return -1;
  }
  free(s->out); /* idle streams hold no buffer */
  s->out = NULL;
  s->out_off = s->out_len = 0;
  if (s->want_out) sse_epoll_set(h, s, 0);
  return 0;
}

/* Appends text to the client's buffer. Returns -1 when it would pass
 * GW_SSE_OUT_MAX (the client is too slow) or on out-of-memory. */
static int sse_append(sse_stream *s, const char *text, size_t len) {
  if (s->out_off > 0 && s->out_off == s->out_len) s->out_off = s->out_len = 0;
  if (s->out_len - s->out_off + len > GW_SSE_OUT_MAX) return -1;
  if (s->out_off > 0) { /* compact: keep the unsent bytes at the start */
    memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
    s->out_len -= s->out_off;
    s->out_off = 0;
  }
  char *p = realloc(s->out, s->out_len + len);
  if (p == NULL) return -1;
  memcpy(p + s->out_len, text, len);
  s->out = p;
  s->out_len += len;
  return 0;
}

/* A stream just handed over: non-blocking, into the epoll set. */
static int sse_register(gw_sse *h, sse_stream *s) {
  int fl = fcntl(s->fd, F_GETFL);
  if (fl < 0 || fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) != 0) return -1;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
  if (epoll_ctl(h->ep, EPOLL_CTL_ADD, s->fd, &ev) != 0) return -1;
  s->registered = 1;
  s->want_out = 0;
  s->last_write_us = ts_mono_us();
  s->lprev = NULL;
  s->lnext = h->live;
  if (h->live != NULL) h->live->lprev = s;
  h->live = s;
  return 0;
}

/* Takes one stream's news: new events, the watch's end, the hand-over. */
static void sse_take(gw_sse *h, sse_stream *s) {
  pthread_mutex_lock(&h->mu);
  sse_item *items = s->q_head;
  s->q_head = s->q_tail = NULL;
  s->q_n = 0;
  s->in_ready = 0;
  int ended = s->ended, overflow = s->overflow, stopping = h->stopping;
  rpc_status end = s->end;
  sse_phase phase = s->phase;
  if (phase == SSE_CLOSED && ended) sse_free_locked(h, s);
  pthread_mutex_unlock(&h->mu);
  if (phase == SSE_CLOSED) {
    sse_items_free(items); /* the client is gone: nothing to deliver */
    /* Only the loop frees streams, so s is still there: cancel (again) here
     * rather than from the thread that closed it, which could race the free. */
    if (!ended) wmux_watch_cancel(s->watch);
    return;
  }
  int drop = overflow || stopping || (!s->registered && sse_register(h, s) != 0);
  for (sse_item *it = items; it != NULL && !drop; it = it->next)
    if (sse_append(s, it->text, it->len) != 0) drop = 1; /* too slow: it resumes */
  sse_items_free(items);
  if (!drop) drop = sse_flush(h, s) != 0;
  if (ended && !drop && end.code != GRPC_STATUS_OK && end.code != GRPC_STATUS_CANCELLED &&
      end.code != GRPC_STATUS_UNAVAILABLE)
    log_warn("events: upstream stream ended: code %d (%s)", (int)end.code, end.message);
  /* An ended watch ends the client's stream too (after what could be
   * written): it reconnects with its Last-Event-ID. */
  if (drop || ended) sse_close_client(h, s);
}

/* A socket event: the client closed or sent something, or can take more. */
static void sse_io(gw_sse *h, sse_stream *s, uint32_t events) {
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    char tmp[512];
    for (;;) {
      ssize_t n = recv(s->fd, tmp, sizeof tmp, MSG_DONTWAIT);
      if (n > 0) {
        s->rx += (size_t)n;
        if (s->rx > GW_SSE_RX_MAX) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!(events & (EPOLLHUP | EPOLLERR))) goto out;
      }
      break; /* EOF, error, hang-up */
    }
    sse_close_client(h, s);
    return;
  }
out:
  if ((events & EPOLLOUT) && sse_flush(h, s) != 0) sse_close_client(h, s);
}

/* Once a second: keep-alive comments, expired tokens, the drain. */
static void sse_sweep(gw_sse *h, int64_t now, int stopping) {
  static const char ka[] = ": keep-alive\n\n";
  for (sse_stream *s = h->live, *next; s != NULL; s = next) {
    next = s->lnext;
    if (stopping || now >= s->expires_us) {
      sse_close_client(h, s);
      continue;
    }
    if (now - s->last_write_us >= h->cfg.keepalive_us && s->out_len == s->out_off) {
      if (sse_append(s, ka, sizeof ka - 1) != 0 || sse_flush(h, s) != 0) sse_close_client(h, s);
    }
  }
}

static void *sse_loop(void *arg) {
  gw_sse *h = arg;
  int64_t next_sweep = ts_mono_us() + 1000000;
  for (;;) {
    struct epoll_event ev[256];
    int n = epoll_wait(h->ep, ev, 256, 1000);
    for (int i = 0; i < n; i++) {
      if (ev[i].data.ptr == NULL) {
        uint64_t v;
        ssize_t r = read(h->kick, &v, sizeof v);
        (void)r;
        continue;
      }
      sse_io(h, ev[i].data.ptr, ev[i].events);
    }
    /* The ready list: one stream at a time, mu not held while writing. */
    for (;;) {
      pthread_mutex_lock(&h->mu);
      sse_stream *s = h->ready;
      if (s != NULL) h->ready = s->rnext;
      pthread_mutex_unlock(&h->mu);
      if (s == NULL) break;
      sse_take(h, s);
    }
    pthread_mutex_lock(&h->mu);
    int stopping = h->stopping, exiting = h->exiting;
    pthread_mutex_unlock(&h->mu);
    int64_t now = ts_mono_us();
    if (stopping || now >= next_sweep) {
      sse_sweep(h, now, stopping);
      next_sweep = now + 1000000;
    }
    if (exiting) return NULL;
  }
}

/* ---- the handshake (connection thread) ------------------------------------ */

/* The access token's exp on the ts_mono_us clock; the token was verified
 * (signature, claims) before the route ran, so its payload is trusted. */
static int64_t sse_token_expiry(const char *authz) {
  int64_t fallback = ts_mono_us() + (int64_t)3600 * 1000000;
#ifdef GW_HAVE_AUTH
  const char *tok = authz != NULL ? strchr(authz, ' ') : NULL;
  const char *d1 = tok != NULL ? strchr(tok + 1, '.') : NULL;
  const char *d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
  if (d2 == NULL) return fallback;
  uint8_t *raw = NULL;
  size_t n = 0;
  cjose_err err;
  if (!cjose_base64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &raw, &n, &err)) return fallback;
  cJSON *claims = cJSON_ParseWithLength((const char *)raw, n);
  cjose_get_dealloc()(raw);
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(claims, "exp");
  int64_t out = fallback;
  if (cJSON_IsNumber(exp)) {
    double left = exp->valuedouble - (double)time(NULL);
    if (left < 0) left = 0;
    if (left > 86400.0 * 366) left = 86400.0 * 366;
    out = ts_mono_us() + (int64_t)(left * 1e6);
  }
  cJSON_Delete(claims);
  return out;
#else
  (void)authz;
  return fallback;
#endif
}

/* The error answer for a watch that ended before its first event. */
static gw_result sse_reply_end(gw_req *r, gw_http *c, const rpc_status *st, int resumed) {
  if (st->code == GRPC_STATUS_INVALID_ARGUMENT)
    return resumed ? gw_reply_error(r, c, 400, GW_E_LAST_EVENT_ID)
                   : gw_reply_error(r, c, 502, GW_E_UPSTREAM);
  if (st->code == GRPC_STATUS_RESOURCE_EXHAUSTED) {
    const char *code = GW_E_STREAMS_FULL;
    return gw_reply_errors(r, c, 503, &code, 1, GW_SSE_RETRY_AFTER_S);
  }
  if (st->code != GRPC_STATUS_CANCELLED && st->code != GRPC_STATUS_UNAVAILABLE)
    log_warn("events: a watch failed at start: code %d (%s) request_id %s", (int)st->code,
             st->message, r->rid);
  return gw_reply_grpc(r, c, st->code, GW_E_NOT_FOUND, NULL);
}

/* Takes a place under the caps (under mu). Returns NULL (and the answer to
 * give in *status / *code) when there is none. */
static sse_stream *sse_reserve_locked(gw_sse *h, const char *user, int *status, const char **code) {
  if (h->stopping) {
    *status = 503, *code = GW_E_SHUTTING_DOWN;
    return NULL;
  }
  if (h->n >= h->cfg.max_streams) {
    *status = 503, *code = GW_E_STREAMS_FULL;
    return NULL;
  }
  if (sse_user_count(h, user) >= h->cfg.max_per_user) {
    *status = 429, *code = GW_E_STREAMS_USER;
    return NULL;
  }
  sse_stream *s = calloc(1, sizeof *s);
  if (s == NULL || sse_user_add(h, user, 1) != 0) {
    free(s);
    *status = 503, *code = GW_E_INTERNAL;
    return NULL;
  }
  s->hub = h;
  s->fd = -1;
  strcpy(s->user, user);
  s->next = h->streams;
  if (h->streams != NULL) h->streams->prev = s;
  h->streams = s;
  h->n++;
  return s;
}

/* The server wrote the head (fd >= 0) or could not (fd == -1). */
static void sse_adopt(void *arg, int fd) {
  sse_stream *s = arg;
  gw_sse *h = s->hub;
  pthread_mutex_lock(&h->mu);
  s->fd = fd;
  s->phase = fd >= 0 ? SSE_LIVE : SSE_CLOSED;
  int wake = sse_ready_locked(h, s); /* the loop registers it, or cancels and frees it */
  pthread_mutex_unlock(&h->mu);
  if (wake) sse_kick(h);
}

/* Gives up a stream whose watch was started but that gets no socket: freed
 * now when its watch already ended, else handed to the loop, which cancels
 * the watch and frees it after on_end. s must not be used afterwards. */
static void sse_abandon(gw_sse *h, sse_stream *s) {
  pthread_mutex_lock(&h->mu);
  s->phase = SSE_CLOSED;
  int wake = 0;
  if (s->ended)
    sse_free_locked(h, s);
  else
    wake = sse_ready_locked(h, s);
  pthread_mutex_unlock(&h->mu);
  if (wake) sse_kick(h);
}

int gw_sse_open(gw_sse *h, gw_req *r, gw_http *c) {
  if (strcmp(gw_http_method(c), "GET") != 0) /* HEAD: the head, no stream */
    return gw_reply(r, c, 200, NULL, "text/event-stream", NULL, 0);
  const char *last = gw_http_header(c, "Last-Event-ID", NULL);
  if (last != NULL && !sse_id_valid(last)) return gw_reply_error(r, c, 400, GW_E_LAST_EVENT_ID);

  int status;
  const char *code;
  pthread_mutex_lock(&h->mu);
  sse_stream *s = sse_reserve_locked(h, r->caller.uuid, &status, &code);
  pthread_mutex_unlock(&h->mu);
  if (s == NULL)
    return gw_reply_errors(r, c, status, &code, 1,
                           strcmp(code, GW_E_SHUTTING_DOWN) == 0 ? 1 : GW_SSE_RETRY_AFTER_S);
  s->expires_us = sse_token_expiry(gw_http_header(c, "Authorization", NULL));

  rpc_status st;
  /* The callbacks may run before this returns: they do not read s->watch,
   * and the loop sees s only after the hand-over. */
  s->watch = wmux_watch_start(h->mux, r->caller.uuid, last, sse_on_msg, sse_on_end, s, &st);
  if (s->watch == NULL) {
    pthread_mutex_lock(&h->mu);
    s->ended = 1; /* no callback will ever run */
    sse_free_locked(h, s);
    pthread_mutex_unlock(&h->mu);
    return sse_reply_end(r, c, &st, last != NULL);
  }

  /* Wait for the first event, or the watch's end, the deadline or the drain. */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  int64_t ns = until.tv_nsec + (h->cfg.handshake_ms % 1000) * 1000000;
  until.tv_sec += (time_t)(h->cfg.handshake_ms / 1000 + ns / 1000000000);
  until.tv_nsec = (long)(ns % 1000000000);
  int timed_out = 0;
  pthread_mutex_lock(&h->mu);
  while (s->q_head == NULL && !s->ended && !h->stopping && !timed_out)
    timed_out = pthread_cond_timedwait(&h->cv, &h->mu, &until) == ETIMEDOUT;
  sse_item *first = s->q_head;
  if (first != NULL) {
    s->q_head = first->next;
    if (s->q_head == NULL) s->q_tail = NULL;
    s->q_n--;
  }
  int stopping = h->stopping;
  int ended = s->ended;
  rpc_status end = s->end;
  pthread_mutex_unlock(&h->mu);

  if (first == NULL || stopping) {
    free(first);
    if (ended && !stopping) {
      pthread_mutex_lock(&h->mu);
      sse_free_locked(h, s);
      pthread_mutex_unlock(&h->mu);
      return sse_reply_end(r, c, &end, last != NULL);
    }
    sse_abandon(h, s);
    if (stopping) return gw_reply_errors(r, c, 503, (const char *[]){GW_E_SHUTTING_DOWN}, 1, 1);
    return gw_reply_error(r, c, 504, GW_E_TIMEOUT);
  }

  /* The first event is the body of the answer; the rest follows from the loop. */
  char *body = malloc(first->len + 1);
  if (body != NULL) {
    memcpy(body, first->text, first->len);
    body[first->len] = '\0';
  }
  free(first);
  gw_hdr extra = {"X-Accel-Buffering", "no"}; /* proxies: do not buffer the stream */
  if (body == NULL || gw_reply(r, c, 200, body, "text/event-stream", &extra, 1) != GW_YES ||
      !gw_http_stream(c, sse_adopt, s)) {
    sse_abandon(h, s);
    return GW_NO;
  }
  return GW_YES;
}

/* ---- start and drain ------------------------------------------------------- */

int gw_sse_start(const gw_sse_config *cfg, gw_sse **out) {
  gw_sse *h = calloc(1, sizeof *h);
  if (h == NULL) return -1;
  h->cfg = *cfg;
  /* The caps bound the watches: one per stream allocated (h->n <=
   * max_streams), released before its stream is freed. */
  if (wmux_new(cfg->messages, cfg->max_streams, &h->mux) != 0) {
    free(h);
    return -1;
  }
  h->ep = epoll_create1(EPOLL_CLOEXEC);
  h->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (h->ep < 0 || h->kick < 0 || epoll_ctl(h->ep, EPOLL_CTL_ADD, h->kick, &ev) != 0) goto fail;
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, NULL);
  /* A small stack: the loop keeps small frames. */
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setstacksize(&at, 256 * 1024);
  int rc = pthread_create(&h->loop, &at, sse_loop, h);
  pthread_attr_destroy(&at);
  if (rc != 0) {
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    goto fail;
  }
  *out = h;
  return 0;
fail:
  if (h->ep >= 0) close(h->ep);
  if (h->kick >= 0) close(h->kick);
  wmux_free(h->mux, 0); /* no call was opened */
  free(h);
  return -1;
}

void gw_sse_quiesce(gw_sse *h) {
  pthread_mutex_lock(&h->mu);
  h->stopping = 1;
  pthread_cond_broadcast(&h->cv); /* handshakes give up */
  pthread_mutex_unlock(&h->mu);
  sse_kick(h); /* the loop ends every stream */
}

int gw_sse_stop(gw_sse *h, int64_t until_us) {
  gw_sse_quiesce(h);
  pthread_mutex_lock(&h->mu);
  while (h->n > 0 && ts_mono_us() < until_us) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += 10 * 1000000;
    if (t.tv_nsec >= 1000000000) t.tv_sec++, t.tv_nsec -= 1000000000;
    pthread_cond_timedwait(&h->cv, &h->mu, &t);
  }
  long left = h->n;
  pthread_mutex_unlock(&h->mu);
  if (left > 0) {
    log_warn("drain: %ld event stream(s) still waiting for their watch to end", left);
    return -1;
  }
  /* Every watch is released: end the WatchMany call. */
  if (wmux_free(h->mux, until_us) != 0) return -1;
  pthread_mutex_lock(&h->mu);
  h->exiting = 1;
  pthread_mutex_unlock(&h->mu);
  sse_kick(h);
  pthread_join(h->loop, NULL);
  for (int i = 0; i < SSE_USER_BUCKETS; i++)
    while (h->users[i] != NULL) {
      sse_user *u = h->users[i];
      h->users[i] = u->next;
      free(u);
    }
  close(h->ep);
  close(h->kick);
  pthread_cond_destroy(&h->cv);
  pthread_mutex_destroy(&h->mu);
  free(h);
  return 0;
}

long gw_sse_open_count(gw_sse *h) {
  pthread_mutex_lock(&h->mu);
  long n = h->n;
  pthread_mutex_unlock(&h->mu);
  return n;
}

void gw_sse_upstream(gw_sse *h, long *watches, int *call_open, uint64_t *calls_opened) {
  *watches = wmux_watch_count(h->mux);
  *call_open = wmux_call_open(h->mux);
  *calls_opened = wmux_calls_opened(h->mux);
}
