/* service.c - the RPCs of MessagesService: patterns A, B, C and E here,
 * WatchEvents and WatchMany handed to watch.c and watch_many.c. */
#include "service.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cruddur/log.h"
#include "cruddur/ts.h"
#include "cruddur/uuid.h"
#include "errmap.h"
#include "keys.h"
#include "validate.h"

#include "cruddur/messages/v1/messages.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

typedef Cruddur__Messages__V1__Participant Participant;
typedef Cruddur__Messages__V1__Message Message;
typedef Cruddur__Messages__V1__MessageGroup MessageGroup;

int msgs_svc_init(msgs_svc *svc, aws_client *ddb, const char *table, size_t cache_entries) {
  svc->st.ddb = ddb;
  svc->st.table = table;
  svc->cache = mcache_new(cache_entries);
  if (svc->cache == NULL) return -1;
  svc->req_window_s = STORE_REQ_TTL_S;
  pthread_mutex_init(&svc->health_mu, NULL);
  svc->health_checked_us = 0;
  svc->health_ok = 0;
  return 0;
}

void msgs_svc_destroy(msgs_svc *svc) {
  mcache_free(svc->cache);
  svc->cache = NULL;
  token_key_free(&svc->key);
  pthread_mutex_destroy(&svc->health_mu);
}

/* ---- helpers -------------------------------------------------------------- */

static int64_t call_deadline(rpc_call *call) {
  int64_t ms = rpc_call_remaining_ms(call);
  if (ms > SVC_CALL_CAP_MS) ms = SVC_CALL_CAP_MS;
  return ts_mono_us() + ms * 1000;
}

static grpc_status_code fail_aws(rpc_call *call, const char *what, const aws_error *err) {
  const char *why;
  grpc_status_code code = errmap_aws(err, rpc_call_remaining_ms(call) == 0, &why);
  /* The name and HTTP status help operators; neither carries user data. */
  log_warn("dynamodb %s failed: %s %s (http %d)", what, aws_strerror(err->code), err->name,
           err->http_status);
  return rpc_call_fail(call, code, "%s", why);
}

static Google__Protobuf__Timestamp *pb_time(rpc_call *call, int64_t us) {
  Google__Protobuf__Timestamp *t = (Google__Protobuf__Timestamp *)rpc_call_new_message(
      call, &google__protobuf__timestamp__descriptor);
  watch_pb_time(t, us);
  return t;
}

static Participant *pb_party(rpc_call *call, const store_party *p) {
  Participant *o =
      (Participant *)rpc_call_new_message(call, &cruddur__messages__v1__participant__descriptor);
  o->uuid = rpc_call_strdup(call, p->uuid);
  o->handle = rpc_call_strdup(call, p->handle);
  o->display_name = rpc_call_strdup(call, p->display_name);
  return o;
}

static Message *pb_message(rpc_call *call, const store_msg *m) {
  Message *o = (Message *)rpc_call_new_message(call, &cruddur__messages__v1__message__descriptor);
  o->message_uuid = rpc_call_strdup(call, m->message_uuid);
  o->message_group_uuid = rpc_call_strdup(call, m->group);
  o->sender = pb_party(call, &m->sender);
  o->text = rpc_call_strdup(call, m->text);
  o->created_at = pb_time(call, m->created_us);
  return o;
}

static void party_from_pb(store_party *p, const Participant *in) {
  memset(p, 0, sizeof *p);
  /* Lengths were validated (uuid 36, handle <= 32, name <= 400 bytes). */
  strncpy(p->uuid, in->uuid, sizeof p->uuid - 1);
  strncpy(p->handle, in->handle, sizeof p->handle - 1);
  strncpy(p->display_name, in->display_name, sizeof p->display_name - 1);
}

static void other_to_cache(mcache_other *o, const store_party *p) {
  memcpy(o->uuid, p->uuid, sizeof o->uuid);
  memcpy(o->handle, p->handle, sizeof o->handle);
  memcpy(o->display_name, p->display_name, sizeof o->display_name);
}

/* Membership: STATUS_OK and *other = the other participant when `user` is in
 * `group`; NOT_FOUND (same words as a missing group) otherwise. The cache
 * holds only positive answers, which never change; the other participant's
 * name in it may be old, so it is never written over a newer one. */
static grpc_status_code member(msgs_svc *svc, rpc_call *call, const char *group, const char *user,
                               int64_t deadline, store_party *other) {
  mcache_other c;
  if (mcache_get(svc->cache, group, user, &c)) {
    memcpy(other->uuid, c.uuid, sizeof other->uuid);
    memcpy(other->handle, c.handle, sizeof other->handle);
    memcpy(other->display_name, c.display_name, sizeof other->display_name);
    return GRPC_STATUS_OK;
  }
  store_group row;
  aws_error err;
  int rc = store_group_row_get(&svc->st, user, group, deadline, &row, &err);
  if (rc == STORE_ERR) return fail_aws(call, "GetItem group row", &err);
  if (rc == STORE_NO) return rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "message group not found");
  *other = row.other;
  other_to_cache(&c, &row.other);
  mcache_put(svc->cache, group, user, &c);
  return GRPC_STATUS_OK;
}

static grpc_status_code bad_token(rpc_call *call) {
  return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                       "page_token is not valid for this list and caller");
}

/* ---- Pattern B: ListMessageGroups ----------------------------------------- */

static grpc_status_code h_list_groups(rpc_call *call, const ProtobufCMessage *req_,
                                      ProtobufCMessage *resp_) {
  msgs_svc *svc = rpc_call_user(call);
  const Cruddur__Messages__V1__ListMessageGroupsRequest *req = (const void *)req_;
  Cruddur__Messages__V1__ListMessageGroupsResponse *resp = (void *)resp_;
  const char *why;
  if (val_list_groups(req, &why) != GRPC_STATUS_OK)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
  int n = val_page_size(req->page_size);
  char pk[KEYS_PK_MAX + 1];
  keys_pk("GRP#", req->user_uuid, pk);
  token_pos pos = {"", ""};
  if (req->page_token && req->page_token[0] &&
      token_decode(&svc->key, req->page_token, TOKEN_GROUPS, req->user_uuid, pk, &pos) != 0)
    return bad_token(call);

  int64_t deadline = call_deadline(call);
  cJSON *out = NULL;
  aws_error err;
  /* One extra row tells whether another page exists, so the last page never
   * comes with a token that leads to an empty page. */
  if (store_groups_query(&svc->st, req->user_uuid, n + 1, pos.sk[0] ? pos.sk : NULL, pos.last_sk,
                         deadline, &out, &err) != STORE_OK)
    return fail_aws(call, "Query groups", &err);
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(out, "Items");
  int total = cJSON_GetArraySize(items);
  int take = total > n ? n : total;
  resp->groups = rpc_call_alloc(call, sizeof *resp->groups * (size_t)(take > 0 ? take : 1));
  store_group g;
  const cJSON *item;
  int i = 0;
  char last_sk[KEYS_MSG_SK_LEN + 1] = "", last_group[37] = "";
  cJSON_ArrayForEach(item, items) {
    if (i++ >= take) break;
    if (store_group_from_item(item, &g) != 0 || g.last_sk[0] == '\0') {
      log_warn("skipping a malformed group row in %s", pk);
      continue;
    }
    MessageGroup *o = (MessageGroup *)rpc_call_new_message(
        call, &cruddur__messages__v1__message_group__descriptor);
    o->message_group_uuid = rpc_call_strdup(call, g.group);
    o->other = pb_party(call, &g.other);
    o->last_message = rpc_call_strdup(call, g.text);
    o->last_message_at = pb_time(call, g.last_us);
    resp->groups[resp->n_groups++] = o;
    memcpy(last_sk, g.last_sk, sizeof last_sk);
    memcpy(last_group, g.group, sizeof last_group);
  }
  cJSON_Delete(out);
  if (total > n && last_group[0]) {
    token_pos next;
    memset(&next, 0, sizeof next);
    memcpy(next.sk, last_group, sizeof last_group);
    memcpy(next.last_sk, last_sk, sizeof last_sk);
    char tok[TOKEN_MAX + 1];
    if (token_encode(&svc->key, TOKEN_GROUPS, req->user_uuid, pk, &next, tok) != 0)
      return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "could not build a page token");
    resp->next_page_token = rpc_call_strdup(call, tok);
  }
  return GRPC_STATUS_OK;
}

/* ---- Pattern A: ListMessages ---------------------------------------------- */

static grpc_status_code h_list_messages(rpc_call *call, const ProtobufCMessage *req_,
                                        ProtobufCMessage *resp_) {
  msgs_svc *svc = rpc_call_user(call);
  const Cruddur__Messages__V1__ListMessagesRequest *req = (const void *)req_;
  Cruddur__Messages__V1__ListMessagesResponse *resp = (void *)resp_;
  const char *why;
  if (val_list_messages(req, &why) != GRPC_STATUS_OK)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
  int n = val_page_size(req->page_size);
  char pk[KEYS_PK_MAX + 1];
  keys_pk("MSG#", req->message_group_uuid, pk);
  token_pos pos = {"", ""};
  if (req->page_token && req->page_token[0] &&
      token_decode(&svc->key, req->page_token, TOKEN_MESSAGES, req->user_uuid, pk, &pos) != 0)
    return bad_token(call);

  int64_t deadline = call_deadline(call);
  store_party other;
  grpc_status_code st =
      member(svc, call, req->message_group_uuid, req->user_uuid, deadline, &other);
  if (st != GRPC_STATUS_OK) return st;

  ddbp_page out;
  aws_error err;
  if (store_messages_page(&svc->st, req->message_group_uuid, n + 1, pos.sk, 0, deadline, &out,
                          &err) != STORE_OK)
    return fail_aws(call, "Query messages", &err);
  int total = out.n > INT_MAX ? INT_MAX : (int)out.n;
  int take = total > n ? n : total;
  Message **page = rpc_call_alloc(call, sizeof *page * (size_t)(take > 0 ? take : 1));
  size_t got = 0;
  char last_sk[KEYS_MSG_SK_LEN + 1] = "";
  int i = 0;
  store_msg_view v;
  char *group = rpc_call_strdup(call, req->message_group_uuid);
  for (const ddbp_item *item = out.items; item; item = item->next) {
    if (i++ >= take) break;
    if (store_msg_view_of_page(item, &v) != 0) {
      log_warn("skipping a malformed message item in %s", pk);
      continue;
    }
    /* Straight from the parsed answer into call memory: no intermediate copy. */
    Message *o = (Message *)rpc_call_new_message(call, &cruddur__messages__v1__message__descriptor);
    o->message_uuid = rpc_call_strdup(call, v.message_uuid);
    o->message_group_uuid = group;
    Participant *p =
        (Participant *)rpc_call_new_message(call, &cruddur__messages__v1__participant__descriptor);
    p->uuid = rpc_call_strdup(call, v.user_uuid);
    p->handle = rpc_call_strdup(call, v.user_handle);
    p->display_name = rpc_call_strdup(call, v.user_display_name);
    o->sender = p;
    o->text = rpc_call_strdup(call, v.text);
    o->created_at = pb_time(call, v.created_us);
    page[got++] = o;
    snprintf(last_sk, sizeof last_sk, "%s", v.sk);
  }
  ddbp_page_free(&out);
  /* The query ran newest first; the page is shown oldest first. */
  for (size_t a = 0, b = got; a + 1 < b; a++, b--) {
    Message *t = page[a];
    page[a] = page[b - 1];
    page[b - 1] = t;
  }
  resp->messages = page;
  resp->n_messages = got;
  if (total > n && last_sk[0]) {
    token_pos next;
    memset(&next, 0, sizeof next);
    memcpy(next.sk, last_sk, sizeof last_sk);
    char tok[TOKEN_MAX + 1];
    if (token_encode(&svc->key, TOKEN_MESSAGES, req->user_uuid, pk, &next, tok) != 0)
      return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "could not build a page token");
    resp->next_page_token = rpc_call_strdup(call, tok);
  }
  return GRPC_STATUS_OK;
}

/* ---- Pattern C + E: CreateMessage ----------------------------------------- */

/* Both participants' rows moved: their streams on this replica look now
 * (streams on other replicas find it with their next poll). */
static void notify_watchers(msgs_svc *svc, const store_party *a, const store_party *b) {
  if (svc->watch == NULL) return;
  watch_notify(svc->watch, a->uuid);
  watch_notify(svc->watch, b->uuid);
}

static grpc_status_code reused_request_id(rpc_call *call) {
  return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                       "request_id was already used for a different request");
}

static grpc_status_code h_create_message(rpc_call *call, const ProtobufCMessage *req_,
                                         ProtobufCMessage *resp_) {
  msgs_svc *svc = rpc_call_user(call);
  const Cruddur__Messages__V1__CreateMessageRequest *req = (const void *)req_;
  Cruddur__Messages__V1__CreateMessageResponse *resp = (void *)resp_;
  const char *why;
  if (val_create_message(req, &why) != GRPC_STATUS_OK)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
  int64_t deadline = call_deadline(call);
  store_party sender, other;
  party_from_pb(&sender, req->sender);
  grpc_status_code st = member(svc, call, req->message_group_uuid, sender.uuid, deadline, &other);
  if (st != GRPC_STATUS_OK) return st;

  store_msg m;
  if (store_msg_prepare(&m, req->message_group_uuid, &sender, req->text) != 0)
    return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "could not prepare the message");
  aws_error err;
  if (req->request_id && req->request_id[0]) {
    store_req mine, rec;
    memset(&mine, 0, sizeof mine);
    mine.kind = 'm';
    mine.msg = m;
    int rc = store_request_claim(&svc->st, req->request_id, &mine, svc->req_window_s, deadline,
                                 &rec, &err);
    if (rc == STORE_ERR) return fail_aws(call, "PutItem request", &err);
    if (rc == STORE_NO) {
      if (rec.kind != 'm' || strcmp(rec.msg.group, m.group) != 0) return reused_request_id(call);
      m = rec.msg; /* finish the earlier attempt; store_post is idempotent */
    }
  }
  /* `other` is as this replica first saw it: store_post must not write it
   * over the name the other participant's own messages keep current. */
  if (store_post(&svc->st, &m, &other, 0, deadline, &err) != STORE_OK)
    return fail_aws(call, "store message", &err);
  /* The other participant's cache entry now names the sender as they are. */
  mcache_other o;
  other_to_cache(&o, &m.sender);
  mcache_put(svc->cache, m.group, other.uuid, &o);
  notify_watchers(svc, &m.sender, &other);
  resp->message = pb_message(call, &m);
  return GRPC_STATUS_OK;
}

/* ---- CreateMessageGroup --------------------------------------------------- */

static grpc_status_code h_create_group(rpc_call *call, const ProtobufCMessage *req_,
                                       ProtobufCMessage *resp_) {
  msgs_svc *svc = rpc_call_user(call);
  const Cruddur__Messages__V1__CreateMessageGroupRequest *req = (const void *)req_;
  Cruddur__Messages__V1__CreateMessageGroupResponse *resp = (void *)resp_;
  const char *why;
  if (val_create_group(req, &why) != GRPC_STATUS_OK)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
  int64_t deadline = call_deadline(call);
  store_party sender, recipient;
  party_from_pb(&sender, req->sender);
  party_from_pb(&recipient, req->recipient);

  char candidate[37], group[37];
  store_msg m;
  aws_error err;
  int created = 0;
  if (uuid_new(candidate) != 0 || store_msg_prepare(&m, candidate, &sender, req->text) != 0)
    return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "could not prepare the message");
  /* The pair item decides which group the two share, even when both sides
   * start at once: exactly one conditional put wins. */
  if (store_pair_claim(&svc->st, sender.uuid, recipient.uuid, candidate, deadline, group, &created,
                       &err) != STORE_OK)
    return fail_aws(call, "claim pair", &err);
  memcpy(m.group, group, sizeof m.group);

  if (req->request_id && req->request_id[0]) {
    store_req mine, rec;
    memset(&mine, 0, sizeof mine);
    mine.kind = 'g';
    mine.msg = m;
    mine.other = recipient;
    mine.created = created;
    int rc = store_request_claim(&svc->st, req->request_id, &mine, svc->req_window_s, deadline,
                                 &rec, &err);
    if (rc == STORE_ERR) return fail_aws(call, "PutItem request", &err);
    if (rc == STORE_NO) {
      if (rec.kind != 'g' || strcmp(rec.other.uuid, recipient.uuid) != 0 ||
          strcmp(rec.msg.group, group) != 0)
        return reused_request_id(call);
      m = rec.msg;
      created = rec.created;
    }
  }
  /* Writes the message and creates or advances both group rows. */
  if (store_post(&svc->st, &m, &recipient, 1, deadline, &err) != STORE_OK)
    return fail_aws(call, "store message", &err);
  notify_watchers(svc, &m.sender, &recipient);
  mcache_other o;
  other_to_cache(&o, &recipient);
  mcache_put(svc->cache, group, sender.uuid, &o);
  other_to_cache(&o, &m.sender);
  mcache_put(svc->cache, group, recipient.uuid, &o);

  resp->message_group_uuid = rpc_call_strdup(call, group);
  resp->message = pb_message(call, &m);
  resp->created = created ? 1 : 0;
  return GRPC_STATUS_OK;
}

/* ---- table and health ----------------------------------------------------- */

/* ---- WatchEvents, WatchMany ---------------------------------------------- */

static grpc_status_code h_watch_events(rpc_call *call, const ProtobufCMessage *req,
                                       rpc_sstream *s) {
  msgs_svc *svc = rpc_call_user(call);
  return watch_start(svc->watch, call, (const void *)req, s);
}

static grpc_status_code h_watch_many(rpc_call *call, const ProtobufCMessage *req, rpc_sstream *s) {
  msgs_svc *svc = rpc_call_user(call);
  (void)req; /* NULL: the controls arrive on the stream */
  return watch_many_start(svc->watch, call, s);
}

#define MSGS_N_METHODS 6
static rpc_handler_fn handlers[MSGS_N_METHODS];
static rpc_stream_handler_fn stream_handlers[MSGS_N_METHODS];
static rpc_service service_def;

const rpc_service *msgs_service(void) {
  const ProtobufCServiceDescriptor *d = &cruddur__messages__v1__messages_service__descriptor;
  /* Indexed like d->methods; matched by name so a reordered .proto still works. */
  for (unsigned i = 0; i < d->n_methods && i < MSGS_N_METHODS; i++) {
    const char *n = d->methods[i].name;
    if (strcmp(n, "ListMessageGroups") == 0)
      handlers[i] = h_list_groups;
    else if (strcmp(n, "ListMessages") == 0)
      handlers[i] = h_list_messages;
    else if (strcmp(n, "CreateMessage") == 0)
      handlers[i] = h_create_message;
    else if (strcmp(n, "CreateMessageGroup") == 0)
      handlers[i] = h_create_group;
    else if (strcmp(n, "WatchEvents") == 0)
      stream_handlers[i] = h_watch_events;
    else if (strcmp(n, "WatchMany") == 0)
      stream_handlers[i] = h_watch_many;
  }
  service_def.desc = d;
  service_def.handlers = handlers;
  service_def.stream_handlers = stream_handlers;
  return &service_def;
}

int msgs_health(void *user) {
  msgs_svc *svc = user;
  int64_t now = ts_mono_us();
  pthread_mutex_lock(&svc->health_mu);
  if (svc->health_checked_us != 0 && now - svc->health_checked_us < 1000000) {
    int ok = svc->health_ok;
    pthread_mutex_unlock(&svc->health_mu);
    return ok;
  }
  pthread_mutex_unlock(&svc->health_mu);
  aws_error err;
  int ok = store_describe(&svc->st, ts_mono_us() + 1000 * 1000, &err) == STORE_OK;
  pthread_mutex_lock(&svc->health_mu);
  svc->health_ok = ok;
  svc->health_checked_us = ts_mono_us();
  pthread_mutex_unlock(&svc->health_mu);
  return ok;
}
