/* watch.c - WatchEvents on Queries (README "Live events"): the hub, the
 * polls, positions and tokens of every watch. A watch (wstream) is carried
 * by its own WatchEvents call or by an id on a WatchMany call
 * (watch_many.c); only ws_send, ws_room and ws_fail tell them apart.
 *
 * Position of a stream. A message's sk is "ts27#uuid", so sks order by time
 * across conversations. A stream never delivers a message with sk <= start
 * (ts27 of when it began from "now"), delivers each message once, and
 * remembers the sks it delivered inside the late window: a message may
 * become visible a little after a newer one (two senders at once, a slow
 * write, clock skew between replicas), up to WATCH_WINDOW_US behind the
 * newest. The window's lower bound is low = max(start, ts27(cur - window)).
 * A message with sk > low not yet delivered is delivered when seen; at or
 * below low it is taken as delivered.
 *
 * Token = signed (user, cur, low, hash and count of the sks delivered above
 * low). A new stream resumes by re-reading the messages in (low, cur]: when
 * their hash and count match, it knows exactly what was delivered and goes
 * on with no gap and no repeat; when they differ (a late message landed in
 * the window meanwhile, or the window held more than WATCH_SEEN_MAX), or
 * the token is older than WATCH_MAX_AGE_US, it sends `resync`.
 *
 * Sharing. Streams of one user on this replica share one wuser: one Query
 * of the rows moved since the lowest `low` of its streams, then, per moved
 * row, one Query of its messages above that bound. Each stream filters what
 * is new to it. A row the previous poll (or a resume) read above low and
 * the LSI no longer shows is moving on dynalite (its entry deleted, not yet
 * put again): that poll reads the rows from the table instead
 * (rows_missing). Results go out through rpc_sstream_send (never blocks);
 * what a stream's queue has no room for waits for a poll 50 ms later
 * (deliver). A queue that stays full for 10 s ends the stream with
 * RESOURCE_EXHAUSTED; it resumes.
 *
 * Threads: a few poller threads (WATCH_POLLERS) do every DynamoDB read of
 * live streams, each taking a batch of due users (a user is polled by one
 * at a time: wuser.polling); handlers do the resume check on their worker. hub->mu guards users and
 * streams; it is held while sending (rpc_sstream_send takes only the
 * stream's own lock) and never during I/O.
 */
#define _GNU_SOURCE
#include "watch.h"
#include "watch_internal.h"
#include "watch_token.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cruddur/log.h"
#include "cruddur/ts.h"
#include "cruddur/uuid.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "keys.h"

#define WATCH_WINDOW_US (15 * 1000000LL)        /* late window (write cap 10 s + skew) */
#define WATCH_MAX_AGE_US (10 * 60 * 1000000LL)  /* older tokens get resync */
#define WATCH_BUSY_MS 1000                      /* poll interval while things move */
#define WATCH_IDLE_MS 5000                      /* after a minute of quiet */
#define WATCH_ROWS_LIMIT 100                    /* rows per Query */
#define WATCH_TABLE_PAGE 1000                   /* rows examined per Query of the table */
#define WATCH_MSGS_LIMIT 200                    /* messages per Query page */
#define WATCH_ROW_READ_MAX 1024                 /* messages read per conversation per read */
#define WATCH_READ_MAX 20000                    /* messages read per read, all conversations */
#define WATCH_BATCH 64                          /* users polled per poller round */
#define WATCH_IO_BUDGET_US (5 * 1000000LL)      /* one poll's DynamoDB budget */
#define WATCH_RESUME_TRIES 10                   /* reads of a token's window */
#define WATCH_RESUME_PAUSE_US 200000            /* between them: ~2 s in all */
#define WATCH_LATE_MAX 8                        /* late messages a resume recognises */
#define WATCH_HOLD_US 50000                     /* a stream's queue was full: poll again */
#define WATCH_HOLD_MAX_US (10 * 1000000LL)      /* full that long: the client is stuck */

typedef Cruddur__Messages__V1__WatchEvent WatchEvent;
typedef char sk_t[KEYS_MSG_SK_LEN + 1];

/* ======================================================================
 * Positions and tokens
 * ==================================================================== */

/* low = max(start, ts27(time(cur) - window)). */
static void ws_low(const wstream *ws, char out[28]) {
  int64_t t = 0;
  char w[28];
  if (watch_pos_time(ws->cur, &t) == 0 && ts_format_stored(t - WATCH_WINDOW_US, w) == 0 &&
      strcmp(w, ws->start) > 0)
    memcpy(out, w, 28);
  else
    memcpy(out, ws->start, 28);
}

static void ws_pos(const wstream *ws, watch_pos *p) {
  memset(p, 0, sizeof *p);
  memcpy(p->cur, ws->cur, sizeof p->cur);
  ws_low(ws, p->low);
  for (size_t i = 0; i < ws->n_seen; i++) p->hash += watch_sk_hash(ws->seen[i]);
  /* An overflowed window cannot be checked: a count no real window has. */
  p->count = ws->overflow ? WATCH_SEEN_MAX : (unsigned)ws->n_seen;
  if (ws->overflow) p->hash ^= 1;
}

static int ws_seen(const wstream *ws, const char *sk) {
  for (size_t i = 0; i < ws->n_seen; i++)
    if (strcmp(ws->seen[i], sk) == 0) return 1;
  return 0;
}

/* Drops remembered sks at or below low (they are delivered by definition). */
static void ws_prune(wstream *ws) {
  char low[28];
  ws_low(ws, low);
  size_t j = 0;
  for (size_t i = 0; i < ws->n_seen; i++)
    if (strcmp(ws->seen[i], low) > 0) memcpy(ws->seen[j++], ws->seen[i], sizeof(sk_t));
  ws->n_seen = j;
}

static void send_resync(watch_hub *h, wstream *ws, const char *why);

static void ws_remember(wstream *ws, const char *sk) {
  if (strcmp(sk, ws->cur) > 0) snprintf(ws->cur, sizeof ws->cur, "%s", sk);
  ws_prune(ws);
  if (ws->n_seen == WATCH_SEEN_MAX && ws->s != NULL) {
    /* More messages in the late window than a stream remembers: forgetting
     * one would deliver it again. Restart the window from now instead, with
     * a resync (messages older than now that were late are the reload's). */
    if (ts_format_stored(ts_now_us(), ws->start) == 0) ws_prune(ws);
    send_resync(ws->h, ws, "too many messages at once");
  }
  if (ws->n_seen == ws->cap_seen) {
    size_t cap = ws->cap_seen ? ws->cap_seen * 2 : 8;
    if (cap > WATCH_SEEN_MAX) cap = WATCH_SEEN_MAX;
    sk_t *n = cap > ws->cap_seen ? realloc(ws->seen, cap * sizeof *n) : NULL;
    if (n == NULL) {
      ws->overflow = 1; /* the token will ask for a resync; the stream goes on */
      return;
    }
    ws->seen = n;
    ws->cap_seen = cap;
  }
  snprintf(ws->seen[ws->n_seen++], sizeof(sk_t), "%s", sk);
}

/* ======================================================================
 * Events
 * ==================================================================== */

/* The server ends ws: the status of its WatchEvents call, or the `end` of
 * its WatchMany id. */
static void ws_fail(wstream *ws, grpc_status_code code, const char *msg) {
  ws->dead = 1;
  if (ws->m != NULL)
    watch__many_end(ws, code, msg);
  else
    rpc_sstream_end(ws->s, code, msg);
}

/* How many more events ws may queue now. */
static size_t ws_room(wstream *ws) {
  return ws->m != NULL ? watch__many_room(ws) : rpc_sstream_room(ws->s);
}

/* Sends ev with this stream's current token. A full queue ends the stream:
 * the client reads too slowly and resumes from its last token. */
static void ws_send(watch_hub *h, wstream *ws, WatchEvent *ev) {
  if (ws->dead) return;
  watch_pos p;
  ws_pos(ws, &p);
  char tok[TOKEN_MAX + 1];
  if (watch_token_encode(h->key, ws->u->uuid, &p, tok) != 0) {
    ws_fail(ws, GRPC_STATUS_INTERNAL, "could not build a resume token");
    return;
  }
  ev->resume_token = tok;
  int rc = ws->m != NULL ? watch__many_send(ws, ev) : rpc_sstream_send(ws->s, &ev->base);
  ev->resume_token = NULL;
  if (rc == RPC_SSTREAM_FULL)
    ws_fail(ws, GRPC_STATUS_RESOURCE_EXHAUSTED,
            "stream too slow to keep up; resume with the last resume_token");
  else if (rc == RPC_SSTREAM_CLOSED)
    ws->dead = 1;
}

static void send_ready(watch_hub *h, wstream *ws) {
  WatchEvent ev = CRUDDUR__MESSAGES__V1__WATCH_EVENT__INIT;
  Cruddur__Messages__V1__WatchReady r = CRUDDUR__MESSAGES__V1__WATCH_READY__INIT;
  ev.event_case = CRUDDUR__MESSAGES__V1__WATCH_EVENT__EVENT_READY;
  ev.ready = &r;
  ws_send(h, ws, &ev);
}

static void send_resync(watch_hub *h, wstream *ws, const char *why) {
  WatchEvent ev = CRUDDUR__MESSAGES__V1__WATCH_EVENT__INIT;
  Cruddur__Messages__V1__WatchResync r = CRUDDUR__MESSAGES__V1__WATCH_RESYNC__INIT;
  r.reason = (char *)why;
  ev.event_case = CRUDDUR__MESSAGES__V1__WATCH_EVENT__EVENT_RESYNC;
  ev.resync = &r;
  ws_send(h, ws, &ev);
}

void watch_pb_time(Google__Protobuf__Timestamp *t, int64_t us) {
  int64_t s = us / 1000000, r = us % 1000000;
  if (r < 0) {
    r += 1000000;
    s -= 1;
  }
  t->seconds = s;
  t->nanos = (int32_t)(r * 1000);
}

/* ======================================================================
 * Reads
 * ==================================================================== */

/* One moved row and its messages above the bound, as read. */
typedef struct moved {
  store_group row;
  cJSON *msgs; /* owned Query answer */
} moved;

typedef struct poll_result {
  moved *v; /* owned */
  size_t n;
  int truncated; /* more rows or messages than one read gave: poll again soon */
  sk_t upto;     /* "" or the lowest last sk of a conversation cut at the read cap */
} poll_result;

static void result_free(poll_result *r) {
  for (size_t i = 0; i < r->n; i++) cJSON_Delete(r->v[i].msgs);
  free(r->v);
  memset(r, 0, sizeof *r);
}

/* Pages beyond WATCH_ROW_READ_MAX must show a stream something new: a
 * conversation cut there has more messages in the window than any stream
 * remembers, so every poll moves on (see read_moved). */
_Static_assert(WATCH_ROW_READ_MAX > WATCH_SEEN_MAX + WATCH_LATE_MAX, "a cut page must move on");

/* Copies a message's sk (as read: of any length) into out; -1 when it is
 * longer than any sk we write. */
static int sk_set(sk_t out, const char *sk) {
  size_t n = strlen(sk);
  if (n >= sizeof(sk_t)) return -1;
  memcpy(out, sk, n + 1);
  return 0;
}

/* The sk of a Query item, copied to out; -1 when missing or malformed. */
static int item_sk(const cJSON *item, sk_t out) {
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(item, "sk"),
                                                    "S");
  return cJSON_IsString(s) ? sk_set(out, s->valuestring) : -1;
}

/* Messages of `group` with sk > after, oldest first, Query page after page
 * (each page continues after the previous one's last sk) into one answer:
 * *msgs (caller owns) whose "Items" hold them all. Stops after the page
 * that passes `stop` (NULL: never), or once `max` messages are read, then
 * *cut = 1 and `last` is the newest sk read: the conversation may hold
 * more above it. Returns STORE_OK or STORE_ERR (*msgs NULL). */
static int read_msgs(store *st, const char *group, const char *after, const char *stop, int max,
                     int64_t deadline, cJSON **msgs, int *cut, sk_t last, aws_error *err) {
  sk_t from;
  *msgs = NULL;
  *cut = 0;
  if (sk_set(from, after) != 0) { /* callers pass a position: never */
    memset(err, 0, sizeof *err);
    err->code = AWS_E_CLIENT;
    return STORE_ERR;
  }
  for (int n = 0;;) {
    cJSON *page = NULL;
    if (store_messages_after(st, group, from, WATCH_MSGS_LIMIT, deadline, &page, err) != STORE_OK) {
      cJSON_Delete(*msgs);
      *msgs = NULL;
      return STORE_ERR;
    }
    cJSON *items = cJSON_GetObjectItemCaseSensitive(page, "Items");
    int more = cJSON_GetObjectItemCaseSensitive(page, "LastEvaluatedKey") != NULL;
    int got = cJSON_GetArraySize(items);
    /* The page's last sk: where the next page starts (none: stop here). */
    int next = got > 0 && item_sk(cJSON_GetArrayItem(items, got - 1), from) == 0;
    if (*msgs == NULL) {
      *msgs = page;
      cJSON_DeleteItemFromObjectCaseSensitive(page, "LastEvaluatedKey");
    } else { /* move the page's items to the end of the first answer's */
      cJSON *all = cJSON_GetObjectItemCaseSensitive(*msgs, "Items"), *it;
      while ((it = cJSON_DetachItemFromArray(items, 0)) != NULL) cJSON_AddItemToArray(all, it);
      cJSON_Delete(page);
    }
    n += got;
    if (!more || !next || (stop != NULL && strcmp(from, stop) > 0)) return STORE_OK;
    if (n >= max) {
      *cut = 1;
      memcpy(last, from, sizeof from);
      return STORE_OK;
    }
  }
}

/* Rows of `user` moved above `low` read from the table, not the LSI: every
 * row of the user, page after page, keeping those above low, into one
 * answer (*rows, caller owns) shaped as the LSI's, with a LastEvaluatedKey
 * when more than WATCH_ROWS_LIMIT moved. On the table a row is one item,
 * never missing while it moves, as its LSI entry is for a moment on
 * dynalite (which deletes the old entry, then puts the new one). It costs a
 * read of all the user's rows, so only a read that the LSI answered short
 * uses it (resume_once, poll_user). */
static int rows_from_table(store *st, const char *user, const char *low, int64_t deadline,
                           cJSON **rows, aws_error *err) {
  char start[64] = "";
  *rows = NULL;
  for (;;) {
    cJSON *page = NULL;
    if (store_groups_moved_table(st, user, low, start, WATCH_TABLE_PAGE, deadline, &page, err) !=
        STORE_OK) {
      cJSON_Delete(*rows);
      *rows = NULL;
      return STORE_ERR;
    }
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(page, "LastEvaluatedKey"),
                                         "sk"),
        "S");
    int more = cJSON_IsString(next) && strlen(next->valuestring) < sizeof start;
    if (more) memcpy(start, next->valuestring, strlen(next->valuestring) + 1);
    if (*rows == NULL) {
      *rows = page;
      cJSON_DeleteItemFromObjectCaseSensitive(page, "LastEvaluatedKey");
    } else { /* move the page's rows to the end of the first answer's */
      cJSON *all = cJSON_GetObjectItemCaseSensitive(*rows, "Items"), *it;
      while ((it = cJSON_DetachItemFromArray(cJSON_GetObjectItemCaseSensitive(page, "Items"), 0)) !=
             NULL)
        cJSON_AddItemToArray(all, it);
      cJSON_Delete(page);
    }
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(*rows, "Items")) > WATCH_ROWS_LIMIT) {
      cJSON_AddTrueToObject(*rows, "LastEvaluatedKey"); /* more than a resume checks */
      return STORE_OK;
    }
    if (!more) return STORE_OK;
  }
}

/* Rows of `user` moved above `low` (one LSI Query page, or with `table`
 * rows_from_table: more than WATCH_ROWS_LIMIT rows set out->truncated), and
 * for each its messages above `low`, paged (read_msgs; `stop` as there). A
 * conversation cut at the read cap sets out->upto to the lowest such last
 * sk: merge() leaves anything above it to the next poll, so a stream's
 * position never passes a message that was not read. Returns STORE_OK or
 * STORE_ERR. */
static int read_moved(store *st, const char *user, const char *low, const char *stop, int table,
                      int64_t deadline, poll_result *out, aws_error *err) {
  memset(out, 0, sizeof *out);
  cJSON *rows = NULL;
  if ((table ? rows_from_table(st, user, low, deadline, &rows, err)
             : store_groups_moved(st, user, low, WATCH_ROWS_LIMIT, deadline, &rows, err)) !=
      STORE_OK)
    return STORE_ERR;
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(rows, "Items");
  out->truncated = cJSON_GetObjectItemCaseSensitive(rows, "LastEvaluatedKey") != NULL;
  int n = cJSON_GetArraySize(items);
  out->v = calloc(n > 0 ? (size_t)n : 1, sizeof *out->v);
  if (out->v == NULL) {
    cJSON_Delete(rows);
    memset(err, 0, sizeof *err);
    err->code = AWS_E_CLIENT;
    return STORE_ERR;
  }
  const cJSON *item;
  int rc = STORE_OK, total = 0;
  cJSON_ArrayForEach(item, items) {
    moved *m = &out->v[out->n];
    if (store_group_from_item(item, &m->row) != 0 || m->row.last_sk[0] == '\0') continue;
    int max = WATCH_READ_MAX - total < WATCH_ROW_READ_MAX ? WATCH_READ_MAX - total
                                                          : WATCH_ROW_READ_MAX;
    int cut = 0;
    sk_t last;
    if (read_msgs(st, m->row.group, low, stop, max > 0 ? max : 1, deadline, &m->msgs, &cut, last,
                  err) != STORE_OK) {
      rc = STORE_ERR;
      break;
    }
    total += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m->msgs, "Items"));
    if (cut) {
      out->truncated = 1;
      if (out->upto[0] == '\0' || strcmp(last, out->upto) < 0) memcpy(out->upto, last, sizeof last);
    }
    out->n++;
  }
  cJSON_Delete(rows);
  if (rc != STORE_OK) result_free(out);
  return rc;
}

/* One message of a poll, in the poll's merged order. */
typedef struct cand {
  store_msg_view v;
  const moved *m;  /* its row */
  int last_of_row; /* no later candidate of the same row */
} cand;

static int cand_cmp(const void *a, const void *b) {
  return strcmp(((const cand *)a)->v.sk, ((const cand *)b)->v.sk);
}

/* Every message of r in sk order across conversations, so a stream's
 * position only moves past a message once it is delivered (per row order
 * would let one conversation's newer messages overtake another's older
 * ones). Returns a malloc'd array (caller frees) or NULL; *n its length. */
static cand *merge(const poll_result *r, size_t *n) {
  size_t total = 0;
  for (size_t i = 0; i < r->n; i++)
    total += (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r->v[i].msgs, "Items"));
  *n = 0;
  cand *c = calloc(total > 0 ? total : 1, sizeof *c);
  if (c == NULL) return NULL;
  for (size_t i = 0; i < r->n; i++) {
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(r->v[i].msgs, "Items")) {
      if (store_msg_view_of(item, &c[*n].v) != 0) continue;
      c[*n].m = &r->v[i];
      (*n)++;
    }
  }
  qsort(c, *n, sizeof *c, cand_cmp);
  while (*n > 0 && r->upto[0] != '\0' && strcmp(c[*n - 1].v.sk, r->upto) > 0) (*n)--;
  for (size_t i = *n; i-- > 0;) {
    c[i].last_of_row = 1;
    for (size_t j = i + 1; j < *n; j++) {
      if (c[j].m == c[i].m) {
        c[i].last_of_row = 0;
        break;
      }
    }
  }
  return c;
}

static void send_message(watch_hub *h, wstream *ws, const cand *c) {
  Cruddur__Messages__V1__Participant p = CRUDDUR__MESSAGES__V1__PARTICIPANT__INIT;
  p.uuid = (char *)c->v.user_uuid;
  p.handle = (char *)c->v.user_handle;
  p.display_name = (char *)c->v.user_display_name;
  Google__Protobuf__Timestamp t;
  google__protobuf__timestamp__init(&t);
  watch_pb_time(&t, c->v.created_us);
  Cruddur__Messages__V1__Message msg = CRUDDUR__MESSAGES__V1__MESSAGE__INIT;
  msg.message_uuid = (char *)c->v.message_uuid;
  msg.message_group_uuid = (char *)c->m->row.group;
  msg.sender = &p;
  msg.text = (char *)c->v.text;
  msg.created_at = &t;
  WatchEvent ev = CRUDDUR__MESSAGES__V1__WATCH_EVENT__INIT;
  ev.event_case = CRUDDUR__MESSAGES__V1__WATCH_EVENT__EVENT_MESSAGE;
  ev.message = &msg;
  ws_send(h, ws, &ev);
}

/* The list item as the user now sees it: the other participant from the
 * row, the latest text and time from `top`, the newest message of the row
 * this stream has been sent. */
static void send_group(watch_hub *h, wstream *ws, const moved *m, const store_msg_view *top) {
  Cruddur__Messages__V1__Participant o = CRUDDUR__MESSAGES__V1__PARTICIPANT__INIT;
  o.uuid = (char *)m->row.other.uuid;
  o.handle = (char *)m->row.other.handle;
  o.display_name = (char *)m->row.other.display_name;
  Google__Protobuf__Timestamp t;
  google__protobuf__timestamp__init(&t);
  watch_pb_time(&t, top->created_us);
  Cruddur__Messages__V1__MessageGroup g = CRUDDUR__MESSAGES__V1__MESSAGE_GROUP__INIT;
  g.message_group_uuid = (char *)m->row.group;
  g.other = &o;
  g.last_message = (char *)top->text;
  g.last_message_at = &t;
  WatchEvent ev = CRUDDUR__MESSAGES__V1__WATCH_EVENT__INIT;
  ev.event_case = CRUDDUR__MESSAGES__V1__WATCH_EVENT__EVENT_MESSAGE_GROUP;
  ev.message_group = &g;
  ws_send(h, ws, &ev);
}

/* Delivers what is new to ws among the merged messages c of r: each
 * message not yet delivered, and after a conversation's last message in
 * this poll, the conversation as a list item showing its newest message
 * (never a late older one). top (r->n entries, scratch) is per row. When
 * the stream's queue has no room for a message and its list item, it stops
 * there and sets *held: the rest stays above the stream's position, for a
 * poll shortly after (a burst is paced to the client, not ended). hub->mu
 * held. Returns 1 when it sent any. */
static int deliver(watch_hub *h, wstream *ws, const poll_result *r, const cand *c, size_t n,
                   const store_msg_view **top, int *held) {
  int any = 0;
  for (size_t i = 0; i < r->n; i++) top[i] = NULL;
  for (size_t i = 0; i < n && !ws->dead; i++) {
    size_t row = (size_t)(c[i].m - r->v);
    char low[28];
    ws_low(ws, low);
    if (strcmp(c[i].v.sk, low) > 0 && !ws_seen(ws, c[i].v.sk)) {
      if (ws_room(ws) < 2) {
        int64_t now = ts_mono_us();
        if (ws->held_us == 0) ws->held_us = now;
        if (now - ws->held_us > WATCH_HOLD_MAX_US) /* resuming is better than waiting */
          ws_fail(ws, GRPC_STATUS_RESOURCE_EXHAUSTED,
                  "stream too slow to keep up; resume with the last resume_token");
        *held = 1;
        break;
      }
      ws->held_us = 0;
      ws_remember(ws, c[i].v.sk);
      send_message(h, ws, &c[i]);
      top[row] = &c[i].v;
      any = 1;
    }
    if (c[i].last_of_row && top[row] != NULL && !ws->dead) {
      /* c[i] is the row's newest message here; when this stream has it
       * (now or before), it is what the list shows, not a late older one. */
      const store_msg_view *latest = ws_seen(ws, c[i].v.sk) ? &c[i].v : top[row];
      send_group(h, ws, c[i].m, latest);
    }
  }
  return any;
}

/* ======================================================================
 * Users and the poller
 * ==================================================================== */

/* FNV-1a: uuids are assigned by users-svc (random), not chosen by callers,
 * so an unkeyed hash cannot be steered into one chain. */
static size_t user_bucket(const watch_hub *h, const char *uuid) {
  uint64_t x = 14695981039346656037ULL;
  for (; *uuid; uuid++) x = (x ^ (unsigned char)*uuid) * 1099511628211ULL;
  return (size_t)(x ^ (x >> 32)) & h->ub_mask;
}

static wuser *user_find(watch_hub *h, const char *uuid) {
  for (wuser *u = h->ub[user_bucket(h, uuid)]; u != NULL; u = u->hnext)
    if (strcmp(u->uuid, uuid) == 0) return u;
  return NULL;
}

static void user_link(watch_hub *h, wuser *u) {
  u->prev = NULL;
  u->next = h->users;
  if (h->users != NULL) h->users->prev = u;
  h->users = u;
  wuser **b = &h->ub[user_bucket(h, u->uuid)];
  u->hnext = *b;
  *b = u;
  h->n_users++;
}

static void user_unlink_free(watch_hub *h, wuser *u) {
  if (u->prev != NULL) u->prev->next = u->next;
  else h->users = u->next;
  if (u->next != NULL) u->next->prev = u->prev;
  for (wuser **pp = &h->ub[user_bucket(h, u->uuid)]; *pp != NULL; pp = &(*pp)->hnext) {
    if (*pp == u) {
      *pp = u->hnext;
      break;
    }
  }
  h->n_users--;
  free(u->rows);
  free(u);
}

/* Takes ws out of its user's list and the counts. hub->mu held. */
static void ws_unhook(watch_hub *h, wstream *ws) {
  wuser *u = ws->u;
  for (wstream **pp = &u->streams; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == ws) {
      *pp = ws->next;
      break;
    }
  }
  u->n_streams--;
  h->n_streams--;
}

void watch__unlink_locked(watch_hub *h, wstream *ws) {
  wuser *u = ws->u;
  ws_unhook(h, ws);
  if (u->n_streams == 0 && !u->polling) user_unlink_free(h, u);
}

/* Frees u's WatchMany watches that ended while events were sent (a
 * WatchEvents stream waits for its done callback instead). hub->mu held;
 * u itself stays, even when empty: the caller frees it. */
static void reap_locked(watch_hub *h, wuser *u) {
  wstream *ws = u->streams;
  while (ws != NULL) {
    wstream *next = ws->next;
    if (ws->m != NULL && ws->dead) {
      ws_unhook(h, ws);
      watch__many_forget(ws);
      watch__free(ws);
    }
    ws = next;
  }
}

/* Poll interval: 1 s while something moved in the last 10 s, then growing
 * to 5 s after a minute of quiet (README cost model). */
static int64_t interval_us(const wuser *u, int64_t now) {
  int64_t quiet = now - u->moved_us;
  int ms = quiet < 10000000 ? WATCH_BUSY_MS : quiet < 30000000 ? 2000
                                            : quiet < 60000000 ? 3000
                                                               : WATCH_IDLE_MS;
  return (int64_t)ms * 1000;
}

/* The lowest window bound of u's live streams ("" when none). */
static void user_low(const wuser *u, char out[28]) {
  out[0] = '\0';
  for (const wstream *ws = u->streams; ws != NULL; ws = ws->next) {
    if (ws->dead) continue;
    char l[28];
    ws_low(ws, l);
    if (out[0] == '\0' || strcmp(l, out) < 0) memcpy(out, l, 28);
  }
}

/* Whether r (read through the LSI) lacks a row the previous poll of u read
 * above low. A row's last_sk only grows, so such a row is still above low:
 * the index did not show it (dynalite deletes an entry before it puts the
 * moved one). Delivering this poll would move the streams past that
 * conversation's new messages, all of them late then, more than a resume
 * can recognise. A cut answer (more than one Query page) is not checked. */
static int rows_missing(const wuser *u, const poll_result *r, const char *low) {
  if (r->truncated) return 0;
  for (uint32_t i = 0; i < u->n_rows; i++) {
    if (strcmp(u->rows[i].last_sk, low) <= 0) continue;
    size_t j = 0;
    while (j < r->n && strcmp(r->v[j].row.group, u->rows[i].group) != 0) j++;
    if (j == r->n) return 1;
  }
  return 0;
}

/* Adds row (group, last_sk) to *v (n entries, room for *cap; at most
 * WATCH_ROWS_LIMIT, as many as one LSI read shows), or raises its last_sk
 * when there. Full or out of memory: it is not added (rows_missing then
 * cannot check it; nothing else depends on it). */
static void rows_add(wrow **v, uint32_t *n, uint32_t *cap, const char *group, const char *last_sk) {
  for (uint32_t i = 0; i < *n; i++) {
    if (strcmp((*v)[i].group, group) == 0) {
      if (strcmp(last_sk, (*v)[i].last_sk) > 0)
        snprintf((*v)[i].last_sk, sizeof(watch_sk), "%s", last_sk);
      return;
    }
  }
  if (*n == WATCH_ROWS_LIMIT) return;
  if (*n == *cap) {
    uint32_t c = *cap ? *cap * 2 : 4;
    wrow *g = realloc(*v, c * sizeof *g);
    if (g == NULL) return;
    *v = g;
    *cap = c;
  }
  snprintf((*v)[*n].group, sizeof (*v)->group, "%s", group);
  snprintf((*v)[*n].last_sk, sizeof(watch_sk), "%s", last_sk);
  (*n)++;
}

/* Keeps r's rows in u for the next poll's rows_missing. */
static void rows_keep(wuser *u, const poll_result *r) {
  u->n_rows = 0;
  for (size_t i = 0; i < r->n; i++)
    rows_add(&u->rows, &u->n_rows, &u->cap_rows, r->v[i].row.group, r->v[i].row.last_sk);
}

static void poll_user(watch_hub *h, wuser *u, const char *low) {
  poll_result r;
  aws_error err;
  int64_t deadline = ts_mono_us() + WATCH_IO_BUDGET_US;
  int rc = read_moved(h->st, u->uuid, low, NULL, 0, deadline, &r, &err);
  if (rc == STORE_OK && rows_missing(u, &r, low)) { /* the table holds each row as one item */
    result_free(&r);
    rc = read_moved(h->st, u->uuid, low, NULL, 1, deadline, &r, &err);
    /* More rows than one read holds: deliver none of them (some would pass
     * the others' messages) and read again at once. */
    if (rc == STORE_OK && r.truncated) {
      result_free(&r);
      r.truncated = 1;
    }
  }
  if (rc == STORE_OK && (r.n > 0 || !r.truncated)) rows_keep(u, &r);
  pthread_mutex_lock(&h->mu);
  int64_t now = ts_mono_us();
  if (rc != STORE_OK) {
    log_warn("watch: dynamodb read failed: %s %s (http %d); retrying", aws_strerror(err.code),
             err.name, err.http_status);
    u->due_us = now + (int64_t)WATCH_BUSY_MS * 1000;
  } else {
    int any = 0, held = 0;
    size_t n = 0;
    cand *c = merge(&r, &n);
    const store_msg_view **top = calloc(r.n > 0 ? r.n : 1, sizeof *top);
    if (c == NULL || top == NULL) r.truncated = 1; /* out of memory: try again soon */
    for (wstream *ws = u->streams; ws != NULL && c != NULL && top != NULL; ws = ws->next)
      any |= deliver(h, ws, &r, c, n, top, &held);
    reap_locked(h, u);
    free(top);
    free(c);
    if (any) u->moved_us = now;
    /* More than one Query's worth: go on at once. */
    u->due_us = r.truncated ? now : held ? now + WATCH_HOLD_US : now + interval_us(u, now);
  }
  u->polling = 0;
  if (u->n_streams == 0) user_unlink_free(h, u);
  pthread_mutex_unlock(&h->mu);
  if (rc == STORE_OK) result_free(&r);
}

static void *poller_main(void *arg) {
  watch_hub *h = arg;
  pthread_mutex_lock(&h->mu);
  while (!h->stop) {
    int64_t now = ts_mono_us(), next = now + 1000000;
    wuser *due[WATCH_BATCH];
    char lows[WATCH_BATCH][28];
    int n = 0;
    for (wuser *u = h->users; u != NULL; u = u->next) {
      if (u->polling) continue;
      if (u->due_us <= now && n < WATCH_BATCH) {
        user_low(u, lows[n]);
        if (lows[n][0] == '\0') continue; /* every stream ending */
        u->polling = 1;
        due[n++] = u;
      } else if (u->due_us < next) {
        next = u->due_us;
      }
    }
    if (n == 0) {
      struct timespec until;
      int64_t wait_us = next - now;
      if (wait_us < 1000) wait_us = 1000;
      clock_gettime(CLOCK_MONOTONIC, &until);
      until.tv_sec += wait_us / 1000000;
      until.tv_nsec += (long)(wait_us % 1000000) * 1000;
      if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&h->cv, &h->mu, &until);
      continue;
    }
    /* More due than one batch: wake another poller for the rest. */
    if (n == WATCH_BATCH) pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < n; i++) poll_user(h, due[i], lows[i]);
    pthread_mutex_lock(&h->mu);
  }
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

/* ======================================================================
 * Streams
 * ==================================================================== */

wstream *watch__new(watch_hub *h) {
  wstream *ws = calloc(1, sizeof *ws);
  if (ws != NULL) ws->h = h;
  return ws;
}

void watch__free(wstream *ws) {
  if (ws == NULL) return;
  free(ws->rows);
  free(ws->seen);
  free(ws);
}

/* The stream is over (rpc poller thread): unhook it and drop our reference. */
static void ws_done(void *user, rpc_sstream *s, grpc_status_code code) {
  wstream *ws = user;
  watch_hub *h = ws->h;
  (void)code;
  pthread_mutex_lock(&h->mu);
  watch__unlink_locked(h, ws);
  pthread_mutex_unlock(&h->mu);
  rpc_sstream_release(s);
  watch__free(ws);
}

/* Why a new stream is refused by the caps, or NULL. hub->mu held. */
static const char *over_cap(const watch_hub *h, const wuser *u) {
  if (h->n_streams >= h->lim.max_streams) return "too many watch streams on this replica";
  if (u == NULL && h->n_users >= h->lim.max_users) return "too many watched users on this replica";
  if (u != NULL && u->n_streams >= h->lim.max_streams_per_user)
    return "too many watch streams for this user";
  return NULL;
}

/* Late messages a token's stream had not delivered: at most WATCH_LATE_MAX,
 * looked for among the WATCH_LATE_SCAN newest of the window (a message is
 * late because it was in flight while newer ones landed, so it sits near
 * the token's end). */
#define WATCH_LATE_SCAN 24

static int sk_cmp(const void *a, const void *b) { return strcmp(a, b); }

/* Chooses k of hs[from..n) summing to want; fills pick. At most
 * C(24, 8) = 735,471 sums: a few milliseconds, once per resume. */
static int pick_late(const uint64_t *hs, size_t from, size_t n, int k, uint64_t want,
                     size_t *pick) {
  if (k == 0) return want == 0;
  for (size_t i = from; i + (size_t)k <= n; i++) {
    pick[0] = i;
    if (pick_late(hs, i + 1, n, k - 1, want - hs[i], pick + 1)) return 1;
  }
  return 0;
}

/* Which of the n sks in v (visible now in the token's window, sorted here)
 * the token's stream had delivered: all of them, or all but a few late
 * ones, identified by the hash sum (a false match needs a 64-bit
 * collision among at most ~10^6 candidate sums). Returns 0 with the late
 * indexes (ascending) in late[0..*n_late), or -1 when nothing matches. */
static int match_window(sk_t *v, size_t n, const watch_pos *p, size_t late[WATCH_LATE_MAX],
                        size_t *n_late) {
  qsort(v, n, sizeof *v, sk_cmp);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += watch_sk_hash(v[i]);
  *n_late = 0;
  if (n < p->count || n - p->count > WATCH_LATE_MAX) return -1;
  int k = (int)(n - p->count);
  size_t from = n > WATCH_LATE_SCAN ? n - WATCH_LATE_SCAN : 0;
  uint64_t hs[WATCH_LATE_SCAN];
  for (size_t i = from; i < n; i++) hs[i - from] = watch_sk_hash(v[i]);
  if (!pick_late(hs, 0, n - from, k, sum - p->hash, late)) return -1;
  for (int i = 0; i < k; i++) late[i] += from;
  *n_late = (size_t)k;
  return 0;
}

/* The sks of the token's window (low, cur] as stored now, into v (room
 * for WATCH_SEEN_MAX + WATCH_LATE_MAX), rows from the LSI or the table
 * (read_moved). Returns 1 with *n, 0 when the window holds more than a
 * token can be checked against, or -1 when DynamoDB failed (*err). */
static int window_read(watch_hub *h, const char *user, const watch_pos *p, int table,
                       int64_t deadline, wstream *ws, sk_t *v, size_t *n, aws_error *err) {
  poll_result r;
  /* The window (low, cur] only: a conversation's paging stops past cur. */
  if (read_moved(h->st, user, p->low, p->cur, table, deadline, &r, err) != STORE_OK) return -1;
  int ok = !r.truncated;
  *n = 0;
  for (size_t i = 0; i < r.n; i++) /* for its user's next poll (watch__attach_locked) */
    rows_add(&ws->rows, &ws->n_rows, &ws->cap_rows, r.v[i].row.group, r.v[i].row.last_sk);
  for (size_t i = 0; i < r.n && ok; i++) {
    const cJSON *item;
    store_msg_view mv;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(r.v[i].msgs, "Items")) {
      if (store_msg_view_of(item, &mv) != 0 || strcmp(mv.sk, p->cur) > 0) continue;
      if (*n == WATCH_SEEN_MAX + WATCH_LATE_MAX) {
        ok = 0;
        break;
      }
      snprintf(v[(*n)++], sizeof(sk_t), "%s", mv.sk);
    }
  }
  result_free(&r);
  return ok;
}

/* Re-reads the window of a token. Returns 0 with ws positioned right after
 * the token's event, 1 when it does not match (yet), 2 when it can never be
 * honoured (*why says why for both), or -1
 * when DynamoDB failed (*err). A message that landed in the window after
 * the token's event (up to WATCH_LATE_MAX of them) is recognised by the
 * hash and delivered by the first poll. */
static int resume_once(watch_hub *h, const char *user, const watch_pos *p, int64_t deadline,
                       wstream *ws, const char **why, aws_error *err) {
  int64_t t, now = ts_now_us();
  if (watch_pos_time(p->cur, &t) != 0 || t < now - WATCH_MAX_AGE_US) {
    *why = "token too old";
    return 2;
  }
  if (p->count >= WATCH_SEEN_MAX) {
    *why = "too many events in the token's window";
    return 2;
  }
  sk_t *v = malloc((WATCH_SEEN_MAX + WATCH_LATE_MAX) * sizeof *v);
  size_t n = 0;
  int ok = v == NULL ? 0 : window_read(h, user, p, 0, deadline, ws, v, &n, err);
  /* Messages are never deleted and a row's last_sk only grows, so fewer
   * than the token counted means a row the LSI did not show: on dynalite an
   * index entry is deleted before its new one is put, for as long as a
   * loaded machine takes. The table holds each row as one item. */
  if (ok == 1 && n < p->count) ok = window_read(h, user, p, 1, deadline, ws, v, &n, err);
  if (ok < 0) {
    free(v);
    return -1;
  }
  size_t late[WATCH_LATE_MAX], n_late = 0;
  ok = ok && match_window(v, n, p, late, &n_late) == 0;
  if (ok) {
    memcpy(ws->start, p->low, sizeof ws->start);
    memcpy(ws->cur, p->cur, sizeof ws->cur);
    for (size_t i = 0, j = 0; i < n; i++) {
      if (j < n_late && late[j] == i) { /* late: the first poll delivers it */
        j++;
        continue;
      }
      ws_remember(ws, v[i]);
    }
  } else {
    *why = "the position cannot be verified (messages arrived late or too many at once)";
  }
  free(v);
  return ok ? 0 : 1;
}

/* A mismatch may be a write in flight (a message stored, its row not yet
 * moved): look again shortly before giving up with a resync. (A row the
 * LSI did not show is read from the table at once: resume_once.) */
static int resume(watch_hub *h, const char *user, const watch_pos *p, int64_t deadline,
                  wstream *ws, const char **why, aws_error *err) {
  int rc = 1;
  for (int attempt = 0; attempt < WATCH_RESUME_TRIES && rc == 1; attempt++) {
    if (attempt > 0) {
      if (ts_mono_us() + WATCH_RESUME_PAUSE_US >= deadline) break;
      struct timespec pause = {0, WATCH_RESUME_PAUSE_US * 1000L};
      nanosleep(&pause, NULL);
    }
    rc = resume_once(h, user, p, deadline, ws, why, err);
  }
  if (rc == 0) *why = NULL; /* an earlier attempt's reason no longer holds */
  return rc > 0 ? 1 : rc;
}

grpc_status_code watch__check(watch_hub *h, const Cruddur__Messages__V1__WatchEventsRequest *req,
                              watch_pos *p, int *resuming, const char **why) {
  const char *user = req->user_uuid != NULL ? req->user_uuid : "";
  if (!uuid_valid(user)) {
    *why = "user_uuid is not a valid uuid";
    return GRPC_STATUS_INVALID_ARGUMENT;
  }
  *resuming = req->resume_token != NULL && req->resume_token[0] != '\0';
  if (*resuming && watch_token_decode(h->key, user, req->resume_token, p) != 0) {
    *why = "resume_token is not valid for this service and user";
    return GRPC_STATUS_INVALID_ARGUMENT;
  }
  pthread_mutex_lock(&h->mu);
  *why = over_cap(h, user_find(h, user));
  pthread_mutex_unlock(&h->mu);
  return *why != NULL ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_OK;
}

grpc_status_code watch__place(watch_hub *h, const char *user, const watch_pos *p,
                              int64_t budget_ms, wstream *ws, const char **resync,
                              const char **why) {
  *resync = NULL;
  if (p != NULL) {
    aws_error err;
    int rc = resume(h, user, p, ts_mono_us() + budget_ms * 1000, ws, resync, &err);
    if (rc < 0) {
      log_warn("watch: dynamodb read failed while resuming: %s %s (http %d)",
               aws_strerror(err.code), err.name, err.http_status);
      *why = "storage unavailable; retry";
      return GRPC_STATUS_UNAVAILABLE;
    }
    if (rc > 0) { /* from now, after a resync event */
      ws->n_seen = 0;
      ws->overflow = 0;
      ws->cur[0] = '\0';
    }
  }
  if (p == NULL || *resync != NULL) {
    if (ts_format_stored(ts_now_us(), ws->start) != 0) {
      *why = "clock out of range";
      return GRPC_STATUS_INTERNAL;
    }
    memcpy(ws->cur, ws->start, sizeof ws->start);
  }
  return GRPC_STATUS_OK;
}

grpc_status_code watch__attach_locked(watch_hub *h, const char *user, wstream *ws, int resuming,
                                      const char *resync, const char **why) {
  wuser *u = user_find(h, user);
  *why = over_cap(h, u);
  if (*why == NULL && u == NULL) {
    u = calloc(1, sizeof *u);
    if (u == NULL) {
      *why = "out of memory";
    } else {
      memcpy(u->uuid, user, sizeof u->uuid);
      /* A user who just opened the app is about to talk: the busy interval
       * first, growing to the idle one after a minute of quiet. */
      u->moved_us = ts_mono_us();
      user_link(h, u);
    }
  }
  if (*why != NULL) return GRPC_STATUS_RESOURCE_EXHAUSTED;
  /* What its resume read guards the user's next poll too (rows_missing),
   * unless a poller holds the rows now. */
  for (uint32_t i = 0; i < ws->n_rows && !u->polling; i++)
    rows_add(&u->rows, &u->n_rows, &u->cap_rows, ws->rows[i].group, ws->rows[i].last_sk);
  free(ws->rows);
  ws->rows = NULL;
  ws->n_rows = ws->cap_rows = 0;
  ws->u = u;
  ws->next = u->streams;
  u->streams = ws;
  u->n_streams++;
  h->n_streams++;
  send_ready(h, ws);
  if (resync != NULL) send_resync(h, ws, resync);
  /* A resumed stream may have missed events: look now. A new one starts
   * from now; the next regular poll is soon enough. */
  int64_t now = ts_mono_us();
  if (resuming || u->due_us == 0 || u->due_us > now + interval_us(u, now))
    u->due_us = resuming ? 0 : now + interval_us(u, now);
  pthread_cond_signal(&h->cv);
  if (ws->m != NULL && ws->dead) { /* its call is ending, or its share was full */
    reap_locked(h, u);
    if (u->n_streams == 0 && !u->polling) user_unlink_free(h, u);
  }
  return GRPC_STATUS_OK;
}

grpc_status_code watch_start(watch_hub *h, rpc_call *call,
                             const Cruddur__Messages__V1__WatchEventsRequest *req,
                             rpc_sstream *s) {
  watch_pos p;
  int resuming = 0;
  const char *why = NULL, *resync = NULL;
  grpc_status_code code = watch__check(h, req, &p, &resuming, &why);
  if (code != GRPC_STATUS_OK) return rpc_call_fail(call, code, "%s", why);
  wstream *ws = watch__new(h);
  if (ws == NULL) return rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  int64_t ms = rpc_call_remaining_ms(call);
  code = watch__place(h, req->user_uuid, resuming ? &p : NULL, ms > 5000 ? 5000 : ms, ws, &resync,
                      &why);
  if (code == GRPC_STATUS_OK) {
    pthread_mutex_lock(&h->mu);
    ws->s = rpc_sstream_ref(s);
    code = watch__attach_locked(h, req->user_uuid, ws, resuming, resync, &why);
    /* Before the handler returns, so it cannot run first (rpc.h). */
    if (code == GRPC_STATUS_OK) rpc_sstream_on_done(s, ws_done, ws);
    pthread_mutex_unlock(&h->mu);
    if (code != GRPC_STATUS_OK) rpc_sstream_release(s);
  }
  if (code != GRPC_STATUS_OK) {
    watch__free(ws);
    return rpc_call_fail(call, code, "%s", why);
  }
  return GRPC_STATUS_OK;
}

void watch_notify(watch_hub *h, const char *user_uuid) {
  pthread_mutex_lock(&h->mu);
  wuser *u = user_find(h, user_uuid);
  if (u != NULL) {
    u->due_us = 0;
    pthread_cond_signal(&h->cv);
  }
  pthread_mutex_unlock(&h->mu);
}

int watch_hub_new(store *st, const token_key *key, const watch_limits *lim, watch_hub **out) {
  watch_hub *h = calloc(1, sizeof *h);
  if (h == NULL) return -1;
  h->st = st;
  h->key = key;
  h->lim = *lim;
  /* A chain per watched user at the cap (up to 65,536 chains, 512 KiB). */
  size_t nb = 64;
  while (nb < (size_t)lim->max_users && nb < 65536) nb *= 2;
  h->ub = calloc(nb, sizeof *h->ub);
  if (h->ub == NULL) {
    free(h);
    return -1;
  }
  h->ub_mask = nb - 1;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, &ca);
  pthread_condattr_destroy(&ca);
  int want = lim->pollers < 1 ? 1 : lim->pollers > WATCH_POLLERS_MAX ? WATCH_POLLERS_MAX
                                                                     : lim->pollers;
  for (; h->n_th < want; h->n_th++)
    if (pthread_create(&h->th[h->n_th], NULL, poller_main, h) != 0) break;
  if (h->n_th == 0) {
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->ub);
    free(h);
    return -1;
  }
  *out = h;
  return 0;
}

void watch_hub_free(watch_hub *h) {
  if (h == NULL) return;
  pthread_mutex_lock(&h->mu);
  h->stop = 1;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  for (int i = 0; i < h->n_th; i++) pthread_join(h->th[i], NULL);
  while (h->users != NULL) user_unlink_free(h, h->users); /* no streams left */
  free(h->ub);
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->cv);
  free(h);
}
