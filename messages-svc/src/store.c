/* store.c - DynamoDB requests behind patterns A to E. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cruddur/jarena.h"
#include "cruddur/ts.h"
#include "cruddur/uuid.h"

/* ---- small JSON helpers --------------------------------------------------- */

int64_t store_budget_ms(int64_t deadline) {
  int64_t left = deadline - ts_mono_us();
  return left <= 0 ? 0 : (left + 999) / 1000;
}

int store_is_condfail(const aws_error *err) {
  return err->code == AWS_E_CLIENT && strcmp(err->name, "ConditionalCheckFailedException") == 0;
}

const char *store_attr_s(const cJSON *item, const char *name) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(item, name);
  const cJSON *s = a ? cJSON_GetObjectItemCaseSensitive(a, "S") : NULL;
  return cJSON_IsString(s) ? s->valuestring : NULL;
}

int store_add_s(cJSON *obj, const char *name, const char *value) {
  cJSON *a = cJSON_CreateObject();
  if (a == NULL) return -1;
  if (cJSON_AddStringToObject(a, "S", value) == NULL || !cJSON_AddItemToObject(obj, name, a)) {
    cJSON_Delete(a);
    return -1;
  }
  return 0;
}

static int add_n(cJSON *obj, const char *name, long long v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", v);
  cJSON *a = cJSON_CreateObject();
  if (a == NULL) return -1;
  if (cJSON_AddStringToObject(a, "N", buf) == NULL || !cJSON_AddItemToObject(obj, name, a)) {
    cJSON_Delete(a);
    return -1;
  }
  return 0;
}

static int add_bool(cJSON *obj, const char *name, int v) {
  cJSON *a = cJSON_CreateObject();
  if (a == NULL) return -1;
  if (cJSON_AddBoolToObject(a, "BOOL", v) == NULL || !cJSON_AddItemToObject(obj, name, a)) {
    cJSON_Delete(a);
    return -1;
  }
  return 0;
}

/* A request body; its nodes come from the thread's arena (jarena.h) until
 * run_read, which consumes every body, closes it. */
static cJSON *body_new(store *s) {
  jarena_open();
  cJSON *b = cJSON_CreateObject();
  if (b && cJSON_AddStringToObject(b, "TableName", s->table) == NULL) {
    cJSON_Delete(b);
    return NULL;
  }
  return b;
}

static cJSON *add_obj(cJSON *parent, const char *name) {
  return cJSON_AddObjectToObject(parent, name);
}

static void set_nomem(aws_error *err) {
  memset(err, 0, sizeof *err);
  err->code = AWS_E_NOMEM;
}

/* Runs one call with the time left; consumes `body`. The answer goes to
 * `read` when it is set, else to *out (or nowhere when out is NULL). */
static int run_read(store *s, const char *op, cJSON *body, int bad_build, int64_t deadline,
                    aws_reader read, void *ud, cJSON **out, aws_error *err) {
  jarena_close();
  if (body == NULL || bad_build) {
    cJSON_Delete(body);
    set_nomem(err);
    return STORE_ERR;
  }
  int64_t ms = store_budget_ms(deadline);
  if (ms <= 0) {
    cJSON_Delete(body);
    memset(err, 0, sizeof *err);
    err->code = AWS_E_TIMEOUT;
    return STORE_ERR;
  }
  cJSON *resp = NULL;
  memset(err, 0, sizeof *err);
  aws_code rc = read ? aws_call_read(s->ddb, op, body, ms, read, ud, err)
                     : aws_call(s->ddb, op, body, ms, &resp, err);
  cJSON_Delete(body);
  if (rc != AWS_OK) {
    err->code = rc;
    return STORE_ERR;
  }
  if (out)
    *out = resp;
  else
    cJSON_Delete(resp);
  return STORE_OK;
}

static int run(store *s, const char *op, cJSON *body, int bad_build, int64_t deadline, cJSON **out,
               aws_error *err) {
  return run_read(s, op, body, bad_build, deadline, NULL, NULL, out, err);
}

static int copy_str(char *dst, size_t cap, const char *src) {
  if (src == NULL) return -1;
  size_t n = strlen(src);
  if (n >= cap) return -1;
  memcpy(dst, src, n + 1);
  return 0;
}

/* A participant is stored as PREFIX_uuid, PREFIX_handle and
 * PREFIX_display_name, PREFIX being "user" or "other". */
static int put_party(cJSON *item, const char *prefix, const store_party *p) {
  char k[32];
  int bad = 0;
  snprintf(k, sizeof k, "%s_uuid", prefix);
  bad |= store_add_s(item, k, p->uuid);
  snprintf(k, sizeof k, "%s_handle", prefix);
  bad |= store_add_s(item, k, p->handle);
  snprintf(k, sizeof k, "%s_display_name", prefix);
  bad |= store_add_s(item, k, p->display_name);
  return bad ? -1 : 0;
}

/* Reads put_party's attributes; -1 when one is missing or does not fit. */
static int get_party(const cJSON *item, const char *prefix, store_party *p) {
  char k[32];
  snprintf(k, sizeof k, "%s_uuid", prefix);
  if (copy_str(p->uuid, sizeof p->uuid, store_attr_s(item, k)) != 0) return -1;
  snprintf(k, sizeof k, "%s_handle", prefix);
  if (copy_str(p->handle, sizeof p->handle, store_attr_s(item, k)) != 0) return -1;
  snprintf(k, sizeof k, "%s_display_name", prefix);
  return copy_str(p->display_name, sizeof p->display_name, store_attr_s(item, k));
}

/* ---- messages ------------------------------------------------------------- */

int store_msg_prepare(store_msg *m, const char *group, const store_party *sender,
                      const char *text) {
  store_msg t;
  memset(&t, 0, sizeof t);
  if (copy_str(t.group, sizeof t.group, group) != 0 || copy_str(t.text, sizeof t.text, text) != 0 ||
      uuid_new(t.message_uuid) != 0)
    return -1;
  t.sender = *sender;
  t.created_us = ts_now_us();
  if (keys_msg_sk(t.created_us, t.message_uuid, t.sk) != 0) return -1;
  *m = t;
  return 0;
}

static int msg_attrs(cJSON *item, const store_msg *m) {
  char pk[KEYS_PK_MAX + 1], ts[TS_STORED_LEN + 1];
  keys_pk("MSG#", m->group, pk);
  if (ts_format_stored(m->created_us, ts) != 0) return -1;
  int bad = 0;
  bad |= store_add_s(item, "pk", pk);
  bad |= store_add_s(item, "sk", m->sk);
  bad |= store_add_s(item, "message_uuid", m->message_uuid);
  bad |= store_add_s(item, "message", m->text);
  bad |= put_party(item, "user", &m->sender);
  bad |= store_add_s(item, "created_at", ts);
  return bad ? -1 : 0;
}

int store_message_put(store *s, const store_msg *m, int64_t deadline, aws_error *err) {
  cJSON *b = body_new(s);
  int bad = b == NULL;
  if (b) {
    cJSON *item = add_obj(b, "Item");
    bad |= item == NULL || msg_attrs(item, m) != 0;
    bad |= cJSON_AddStringToObject(b, "ConditionExpression", "attribute_not_exists(pk)") == NULL;
  }
  int rc = run(s, "PutItem", b, bad, deadline, NULL, err);
  if (rc == STORE_ERR && store_is_condfail(err)) return STORE_NO;
  return rc;
}

int store_msg_from_item(const cJSON *item, store_msg *out) {
  store_msg t;
  memset(&t, 0, sizeof t);
  const char *pk = store_attr_s(item, "pk");
  const char *sk = store_attr_s(item, "sk");
  if (pk == NULL || strncmp(pk, "MSG#", 4) != 0 || !uuid_valid(pk + 4)) return -1;
  memcpy(t.group, pk + 4, 37);
  if (copy_str(t.sk, sizeof t.sk, sk) != 0 || keys_msg_sk_parse(sk, &t.created_us, NULL) != 0)
    return -1;
  if (copy_str(t.message_uuid, sizeof t.message_uuid, store_attr_s(item, "message_uuid")) ||
      copy_str(t.text, sizeof t.text, store_attr_s(item, "message")) ||
      get_party(item, "user", &t.sender))
    return -1;
  *out = t;
  return 0;
}

/* A message item's string attribute by name (n bytes), from either item form. */
typedef const char *(*attr_get)(const void *item, const char *name, size_t n);

static const char *tree_attr(const void *item, const char *name, size_t n) {
  (void)n;
  return store_attr_s(item, name);
}

static const char *page_attr(const void *item, const char *name, size_t n) {
  return ddbp_attr_sn(item, name, n);
}

/* store_msg_view_of over either item form. */
static int msg_view(const void *item, attr_get get, store_msg_view *v) {
#define GET(lit) get(item, lit, sizeof lit - 1)
  store_msg_view t;
  t.sk = GET("sk");
  t.message_uuid = GET("message_uuid");
  t.text = GET("message");
  t.user_uuid = GET("user_uuid");
  t.user_handle = GET("user_handle");
  t.user_display_name = GET("user_display_name");
#undef GET
  if (!t.message_uuid || !t.text || !t.user_uuid || !t.user_handle || !t.user_display_name ||
      keys_msg_sk_parse(t.sk, &t.created_us, NULL) != 0)
    return -1;
  *v = t;
  return 0;
}

int store_msg_view_of(const cJSON *item, store_msg_view *v) {
  return msg_view(item, tree_attr, v);
}

int store_msg_view_of_page(const ddbp_item *item, store_msg_view *v) {
  return msg_view(item, page_attr, v);
}

/* The Query body of store_messages_query; NULL when out of memory. */
static cJSON *messages_query_body(store *s, const char *group, int limit, const char *start_sk,
                                  int forward) {
  char pk[KEYS_PK_MAX + 1];
  keys_pk("MSG#", group, pk);
  cJSON *b = body_new(s);
  int bad = b == NULL;
  if (b) {
    bad |= cJSON_AddStringToObject(b, "KeyConditionExpression", "pk = :pk") == NULL;
    cJSON *v = add_obj(b, "ExpressionAttributeValues");
    bad |= v == NULL || store_add_s(v, ":pk", pk) != 0;
    bad |= cJSON_AddBoolToObject(b, "ScanIndexForward", forward) == NULL;
    bad |= cJSON_AddBoolToObject(b, "ConsistentRead", 1) == NULL;
    bad |= cJSON_AddNumberToObject(b, "Limit", limit) == NULL;
    if (start_sk && start_sk[0]) {
      cJSON *k = add_obj(b, "ExclusiveStartKey");
      bad |= k == NULL || store_add_s(k, "pk", pk) != 0 || store_add_s(k, "sk", start_sk) != 0;
    }
  }
  if (bad) {
    cJSON_Delete(b);
    return NULL;
  }
  return b;
}

int store_messages_query(store *s, const char *group, int limit, const char *start_sk, int forward,
                         int64_t deadline, cJSON **resp, aws_error *err) {
  cJSON *b = messages_query_body(s, group, limit, start_sk, forward);
  return run(s, "Query", b, 0, deadline, resp, err);
}

static aws_code read_page(void *ud, const char *text, size_t len) {
  int rc = ddbp_parse(text, len, ud);
  return rc == DDBP_OK ? AWS_OK : rc == DDBP_ENOMEM ? AWS_E_NOMEM : AWS_E_PROTOCOL;
}

int store_messages_page(store *s, const char *group, int limit, const char *start_sk,
                        int forward, int64_t deadline, ddbp_page *page, aws_error *err) {
  cJSON *b = messages_query_body(s, group, limit, start_sk, forward);
  return run_read(s, "Query", b, 0, deadline, read_page, page, NULL, err);
}

/* ---- group rows ----------------------------------------------------------- */

int store_group_from_item(const cJSON *item, store_group *out) {
  store_group t;
  memset(&t, 0, sizeof t);
  const char *sk = store_attr_s(item, "sk");
  if (!uuid_valid(sk)) return -1;
  memcpy(t.group, sk, 37);
  if (get_party(item, "user", &t.other) != 0) return -1;
  const char *last = store_attr_s(item, "last_sk");
  if (last) {
    if (copy_str(t.last_sk, sizeof t.last_sk, last) != 0 ||
        keys_msg_sk_parse(last, &t.last_us, NULL) != 0)
      return -1;
    if (copy_str(t.text, sizeof t.text, store_attr_s(item, "message")) != 0) return -1;
  }
  *out = t;
  return 0;
}

int store_group_row_get(store *s, const char *owner, const char *group, int64_t deadline,
                        store_group *row, aws_error *err) {
  char pk[KEYS_PK_MAX + 1];
  keys_pk("GRP#", owner, pk);
  cJSON *b = body_new(s);
  int bad = b == NULL;
  if (b) {
    cJSON *k = add_obj(b, "Key");
    bad |= k == NULL || store_add_s(k, "pk", pk) != 0 || store_add_s(k, "sk", group) != 0;
    bad |= cJSON_AddBoolToObject(b, "ConsistentRead", 1) == NULL;
  }
  cJSON *resp = NULL;
  int rc = run(s, "GetItem", b, bad, deadline, &resp, err);
  if (rc != STORE_OK) return rc;
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(resp, "Item");
  store_group g;
  if (item == NULL || store_group_from_item(item, &g) != 0) {
    /* A malformed row is treated like a missing one: it cannot prove membership. */
    cJSON_Delete(resp);
    return STORE_NO;
  }
  cJSON_Delete(resp);
  *row = g;
  return STORE_OK;
}

/* The row's attributes as a PutItem Item (the whole row). */
static int group_row_item(cJSON *b, const char *pk, const store_party *other, const store_msg *m,
                          const char *ts) {
  /* The whole row, so a row lost to a crash is recreated whole: a PutItem
   * (cheaper to evaluate than the same SET as an UpdateExpression). */
  cJSON *item = add_obj(b, "Item");
  if (item == NULL) return -1;
  int bad = 0;
  bad |= store_add_s(item, "pk", pk);
  bad |= store_add_s(item, "sk", m->group);
  bad |= store_add_s(item, "message_group_uuid", m->group);
  bad |= put_party(item, "user", other);
  bad |= store_add_s(item, "message", m->text);
  bad |= store_add_s(item, "last_sk", m->sk);
  bad |= store_add_s(item, "last_message_at", ts);
  bad |= store_add_s(item, "name_sk", m->sk);
  return bad;
}

/* The same row as an UpdateItem that writes the other participant's fields
 * only where the row has none (if_not_exists): for a caller whose copy of
 * `other` may be stale, so it cannot overwrite the name the other
 * participant's own last message wrote. A missing row is still created whole. */
static int group_row_update(cJSON *b, const char *pk, const store_party *other, const store_msg *m,
                            const char *ts) {
  cJSON *k = add_obj(b, "Key");
  int bad = k == NULL || store_add_s(k, "pk", pk) != 0 || store_add_s(k, "sk", m->group) != 0;
  bad |= cJSON_AddStringToObject(
             b, "UpdateExpression",
             "SET message_group_uuid = :g, #msg = :m, last_sk = :s, last_message_at = :t, "
             "user_uuid = if_not_exists(user_uuid, :ou), "
             "user_handle = if_not_exists(user_handle, :oh), "
             "user_display_name = if_not_exists(user_display_name, :on), "
             "name_sk = if_not_exists(name_sk, :z)") == NULL;
  cJSON *n = add_obj(b, "ExpressionAttributeNames");
  bad |= n == NULL || cJSON_AddStringToObject(n, "#msg", "message") == NULL;
  cJSON *v = add_obj(b, "ExpressionAttributeValues");
  if (v == NULL) return -1;
  bad |= store_add_s(v, ":g", m->group);
  bad |= store_add_s(v, ":m", m->text);
  bad |= store_add_s(v, ":t", ts);
  bad |= store_add_s(v, ":ou", other->uuid);
  bad |= store_add_s(v, ":oh", other->handle);
  bad |= store_add_s(v, ":on", other->display_name);
  /* Older than any message: a name from a stale copy yields to any fresh one. */
  bad |= store_add_s(v, ":z", "0");
  return bad;
}

/* A newer message is shown on owner's row, so the whole-row put was refused;
 * the other participant's name in `other` (fresh, from m's request) still
 * replaces the row's copy unless a later message brought it (name_sk, the
 * sort key of the message that wrote the name). Only an existing row of that
 * participant is touched. */
static int group_name_refresh(store *s, const char *pk, const store_party *other,
                              const store_msg *m, int64_t deadline, aws_error *err) {
  cJSON *b = body_new(s);
  int bad = b == NULL;
  if (b) {
    cJSON *k = add_obj(b, "Key");
    bad |= k == NULL || store_add_s(k, "pk", pk) != 0 || store_add_s(k, "sk", m->group) != 0;
    bad |= cJSON_AddStringToObject(b, "UpdateExpression",
                                   "SET user_handle = :oh, user_display_name = :on, "
                                   "name_sk = :s") == NULL;
    bad |= cJSON_AddStringToObject(
               b, "ConditionExpression",
               "user_uuid = :ou AND (attribute_not_exists(name_sk) OR name_sk < :s)") == NULL;
    cJSON *v = add_obj(b, "ExpressionAttributeValues");
    bad |= v == NULL;
    if (v) {
      bad |= store_add_s(v, ":ou", other->uuid);
      bad |= store_add_s(v, ":oh", other->handle);
      bad |= store_add_s(v, ":on", other->display_name);
      bad |= store_add_s(v, ":s", m->sk);
    }
  }
  int rc = run(s, "UpdateItem", b, bad, deadline, NULL, err);
  if (rc == STORE_ERR && store_is_condfail(err)) return STORE_OK; /* a newer name is there */
  return rc;
}

/* store_group_touch, or with keep_other its UpdateItem form (above). */
static int group_touch(store *s, const char *owner, const store_party *other, const store_msg *m,
                       int keep_other, int64_t deadline, aws_error *err) {
  char pk[KEYS_PK_MAX + 1], ts[TS_STORED_LEN + 1];
  keys_pk("GRP#", owner, pk);
  if (ts_format_stored(m->created_us, ts) != 0) {
    set_nomem(err);
    return STORE_ERR;
  }
  cJSON *b = body_new(s);
  int bad = b == NULL;
  if (b) {
    bad |= (keep_other ? group_row_update(b, pk, other, m, ts)
                       : group_row_item(b, pk, other, m, ts)) != 0;
    bad |= cJSON_AddStringToObject(b, "ConditionExpression",
                                   "attribute_not_exists(last_sk) OR last_sk < :s") == NULL;
    cJSON *v = cJSON_GetObjectItemCaseSensitive(b, "ExpressionAttributeValues");
    if (v == NULL) v = add_obj(b, "ExpressionAttributeValues");
    bad |= v == NULL || store_add_s(v, ":s", m->sk) != 0;
  }
  int rc = run(s, keep_other ? "UpdateItem" : "PutItem", b, bad, deadline, NULL, err);
  if (rc == STORE_ERR && store_is_condfail(err)) {
    rc = STORE_NO;
    if (!keep_other && group_name_refresh(s, pk, other, m, deadline, err) == STORE_ERR)
      rc = STORE_ERR;
  }
  return rc;
}

int store_group_touch(store *s, const char *owner, const store_party *other, const store_msg *m,
                      int64_t deadline, aws_error *err) {
  return group_touch(s, owner, other, m, 0, deadline, err);
}

int store_post(store *s, const store_msg *m, const store_party *other, int other_fresh,
               int64_t deadline, aws_error *err) {
  /* Message first: a crash after it leaves a stored message whose preview
   * catches up with the next post; a crash before it stores nothing. */
  if (store_message_put(s, m, deadline, err) == STORE_ERR) return STORE_ERR;
  /* The sender's own row describes `other`: overwrite those fields only with
   * a fresh copy. The other's row always gets the sender as the request
   * names them now, so each participant's current name reaches the other's
   * row with their next message and is never taken back. */
  if (group_touch(s, m->sender.uuid, other, m, !other_fresh, deadline, err) == STORE_ERR)
    return STORE_ERR;
  if (store_group_touch(s, other->uuid, &m->sender, m, deadline, err) == STORE_ERR)
    return STORE_ERR;
  return STORE_OK;
}

int store_groups_query(store *s, const char *owner, int limit, const char *start_sk,
                       const char *start_last_sk, int64_t deadline, cJSON **resp, aws_error *err) {
  char pk[KEYS_PK_MAX + 1];
  keys_pk("GRP#", owner, pk);
  cJSON *b = body_new(s);
  int bad = b == NULL;
  if (b) {
    bad |= cJSON_AddStringToObject(b, "IndexName", STORE_LSI) == NULL;
    bad |= cJSON_AddStringToObject(b, "KeyConditionExpression", "pk = :pk") == NULL;
    cJSON *v = add_obj(b, "ExpressionAttributeValues");
    bad |= v == NULL || store_add_s(v, ":pk", pk) != 0;
    bad |= cJSON_AddBoolToObject(b, "ScanIndexForward", 0) == NULL;
    bad |= cJSON_AddBoolToObject(b, "ConsistentRead", 1) == NULL;
    bad |= cJSON_AddNumberToObject(b, "Limit", limit) == NULL;
    if (start_sk && start_sk[0]) {
      cJSON *k = add_obj(b, "ExclusiveStartKey");
      bad |= k == NULL || store_add_s(k, "pk", pk) != 0 || store_add_s(k, "sk", start_sk) != 0 ||
             store_add_s(k, "last_sk", start_last_sk ? start_last_sk : "") != 0;
    }
  }
  return run(s, "Query", b, bad, deadline, resp, err);
}

/* ---- watch reads ----------------------------------------------------------- */

/* Query `pk = :pk AND <range_key> > :after`, oldest first, consistent. */
static int query_after(store *s, const char *index, const char *pk, const char *range_key,
                       const char *after, int limit, int64_t deadline, cJSON **resp,
                       aws_error *err) {
  char cond[64];
  snprintf(cond, sizeof cond, "pk = :pk AND %s > :after", range_key);
  cJSON *b = body_new(s);
  int bad = b == NULL;
  if (b) {
    if (index != NULL) bad |= cJSON_AddStringToObject(b, "IndexName", index) == NULL;
    bad |= cJSON_AddStringToObject(b, "KeyConditionExpression", cond) == NULL;
    cJSON *v = add_obj(b, "ExpressionAttributeValues");
    bad |= v == NULL || store_add_s(v, ":pk", pk) != 0 || store_add_s(v, ":after", after) != 0;
    bad |= cJSON_AddBoolToObject(b, "ScanIndexForward", 1) == NULL;
    bad |= cJSON_AddBoolToObject(b, "ConsistentRead", 1) == NULL;
    bad |= cJSON_AddNumberToObject(b, "Limit", limit) == NULL;
  }
  return run(s, "Query", b, bad, deadline, resp, err);
}

int store_groups_moved(store *s, const char *owner, const char *after, int limit,
                       int64_t deadline, cJSON **resp, aws_error *err) {
  char pk[KEYS_PK_MAX + 1];
  keys_pk("GRP#", owner, pk);
  return query_after(s, STORE_LSI, pk, "last_sk", after, limit, deadline, resp, err);
}

int store_groups_moved_table(store *s, const char *owner, const char *after, const char *start_sk,
                             int limit, int64_t deadline, cJSON **resp, aws_error *err) {
  char pk[KEYS_PK_MAX + 1];
  keys_pk("GRP#", owner, pk);
  cJSON *b = body_new(s);
  int bad = b == NULL;
  if (b) {
    bad |= cJSON_AddStringToObject(b, "KeyConditionExpression", "pk = :pk") == NULL;
    bad |= cJSON_AddStringToObject(b, "FilterExpression", "last_sk > :after") == NULL;
    cJSON *v = add_obj(b, "ExpressionAttributeValues");
    bad |= v == NULL || store_add_s(v, ":pk", pk) != 0 || store_add_s(v, ":after", after) != 0;
    bad |= cJSON_AddBoolToObject(b, "ConsistentRead", 1) == NULL;
    bad |= cJSON_AddNumberToObject(b, "Limit", limit) == NULL;
    if (start_sk != NULL && start_sk[0] != '\0') {
      cJSON *k = add_obj(b, "ExclusiveStartKey");
      bad |= k == NULL || store_add_s(k, "pk", pk) != 0 || store_add_s(k, "sk", start_sk) != 0;
    }
  }
  return run(s, "Query", b, bad, deadline, resp, err);
}

int store_messages_after(store *s, const char *group, const char *after, int limit,
                         int64_t deadline, cJSON **resp, aws_error *err) {
  char pk[KEYS_PK_MAX + 1];
  keys_pk("MSG#", group, pk);
  return query_after(s, NULL, pk, "sk", after, limit, deadline, resp, err);
}

/* ---- pair and request items ----------------------------------------------- */

static int get_item(store *s, const char *pk, const char *sk, int64_t deadline, cJSON **resp,
                    aws_error *err) {
  cJSON *b = body_new(s);
  int bad = b == NULL;
  if (b) {
    cJSON *k = add_obj(b, "Key");
    bad |= k == NULL || store_add_s(k, "pk", pk) != 0 || store_add_s(k, "sk", sk) != 0;
    bad |= cJSON_AddBoolToObject(b, "ConsistentRead", 1) == NULL;
  }
  return run(s, "GetItem", b, bad, deadline, resp, err);
}

static int internal(aws_error *err, const char *why) {
  memset(err, 0, sizeof *err);
  err->code = AWS_E_CLIENT;
  snprintf(err->name, sizeof err->name, "MessagesInconsistentItem");
  snprintf(err->message, sizeof err->message, "%s", why);
  return STORE_ERR;
}

int store_pair_claim(store *s, const char *a, const char *b_uuid, const char *candidate,
                     int64_t deadline, char winner[37], int *created, aws_error *err) {
  char pk[KEYS_PK_MAX + 1];
  keys_pair_pk(a, b_uuid, pk);
  cJSON *b = body_new(s);
  int bad = b == NULL;
  if (b) {
    cJSON *item = add_obj(b, "Item");
    bad |= item == NULL || store_add_s(item, "pk", pk) != 0 || store_add_s(item, "sk", "PAIR") ||
           store_add_s(item, "group_uuid", candidate) != 0;
    bad |= cJSON_AddStringToObject(b, "ConditionExpression", "attribute_not_exists(pk)") == NULL;
  }
  int rc = run(s, "PutItem", b, bad, deadline, NULL, err);
  if (rc == STORE_OK) {
    memcpy(winner, candidate, 37);
    *created = 1;
    return STORE_OK;
  }
  if (!store_is_condfail(err)) return rc;
  /* Someone claimed the pair first: theirs is the conversation. The read is
   * consistent, so it sees the winner's completed write. */
  cJSON *resp = NULL;
  if (get_item(s, pk, "PAIR", deadline, &resp, err) != STORE_OK) return STORE_ERR;
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(resp, "Item");
  const char *g = item ? store_attr_s(item, "group_uuid") : NULL;
  if (!uuid_valid(g)) {
    cJSON_Delete(resp);
    return internal(err, "pair item without a group uuid");
  }
  memcpy(winner, g, 37);
  *created = 0;
  cJSON_Delete(resp);
  return STORE_OK;
}

static int req_from_item(const cJSON *item, store_req *out) {
  store_req t;
  memset(&t, 0, sizeof t);
  const char *kind = store_attr_s(item, "kind");
  if (kind == NULL || (strcmp(kind, "m") != 0 && strcmp(kind, "g") != 0)) return -1;
  t.kind = kind[0];
  const char *g = store_attr_s(item, "group_uuid");
  const char *sk = store_attr_s(item, "msg_sk");
  if (!uuid_valid(g) || copy_str(t.msg.sk, sizeof t.msg.sk, sk) != 0 ||
      keys_msg_sk_parse(sk, &t.msg.created_us, t.msg.message_uuid) != 0)
    return -1;
  memcpy(t.msg.group, g, 37);
  if (copy_str(t.msg.text, sizeof t.msg.text, store_attr_s(item, "message")) ||
      get_party(item, "user", &t.msg.sender) != 0)
    return -1;
  if (t.kind == 'g') {
    if (get_party(item, "other", &t.other) != 0) return -1;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(item, "created");
    const cJSON *cb = c ? cJSON_GetObjectItemCaseSensitive(c, "BOOL") : NULL;
    t.created = cJSON_IsTrue(cb);
  }
  *out = t;
  return 0;
}

/* 1 when a REQ item's window is over at `now_s` (expires_at <= now). An
 * item without a readable expires_at never expires: it was written by us. */
static int req_expired(const cJSON *item, long long now_s) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(item, "expires_at");
  const cJSON *n = a ? cJSON_GetObjectItemCaseSensitive(a, "N") : NULL;
  if (!cJSON_IsString(n)) return 0;
  char *end;
  long long v = strtoll(n->valuestring, &end, 10);
  return *end == '\0' && v <= now_s;
}

/* One conditional PutItem of the REQ item: STORE_OK written, STORE_NO a live
 * record holds the key (ConditionalCheckFailed), STORE_ERR otherwise. */
static int req_put(store *s, const char *pk, const char *request_id, const store_req *mine,
                   long long now_s, long window_s, int64_t deadline, aws_error *err) {
  char ts[TS_STORED_LEN + 1];
  if (ts_format_stored(mine->msg.created_us, ts) != 0) {
    set_nomem(err);
    return STORE_ERR;
  }
  char kind[2] = {mine->kind, '\0'};
  cJSON *b = body_new(s);
  int bad = b == NULL;
  if (b) {
    cJSON *item = add_obj(b, "Item");
    bad |= item == NULL;
    if (item) {
      bad |= store_add_s(item, "pk", pk);
      bad |= store_add_s(item, "sk", request_id);
      bad |= store_add_s(item, "kind", kind);
      /* Not named message_group_uuid: that would put this item in the sparse GSI. */
      bad |= store_add_s(item, "group_uuid", mine->msg.group);
      bad |= store_add_s(item, "msg_sk", mine->msg.sk);
      bad |= store_add_s(item, "message_uuid", mine->msg.message_uuid);
      bad |= store_add_s(item, "message", mine->msg.text);
      bad |= put_party(item, "user", &mine->msg.sender);
      bad |= store_add_s(item, "created_at", ts);
      if (mine->kind == 'g') {
        bad |= put_party(item, "other", &mine->other);
        bad |= add_bool(item, "created", mine->created);
      }
      bad |= add_n(item, "expires_at", now_s + window_s);
    }
    bad |= cJSON_AddStringToObject(b, "ConditionExpression",
                                   "attribute_not_exists(pk) OR expires_at <= :now") == NULL;
    cJSON *v = add_obj(b, "ExpressionAttributeValues");
    bad |= v == NULL || add_n(v, ":now", now_s) != 0;
  }
  int rc = run(s, "PutItem", b, bad, deadline, NULL, err);
  if (rc == STORE_ERR && store_is_condfail(err)) return STORE_NO;
  return rc;
}

/* Attempts of put-then-read. Another round is needed only when the record
 * that refused our put is gone or expired by the time we read it (its
 * window ended in between, or TTL deleted it): rare, so 3 is plenty. */
#define STORE_REQ_ROUNDS 3

int store_request_claim(store *s, const char *request_id, const store_req *mine, long window_s,
                        int64_t deadline, store_req *recorded, aws_error *err) {
  char pk[KEYS_PK_MAX + 1];
  keys_pk("REQ#", mine->msg.sender.uuid, pk);
  for (int round = 0; round < STORE_REQ_ROUNDS; round++) {
    long long now_s = (long long)(ts_now_us() / 1000000);
    int rc = req_put(s, pk, request_id, mine, now_s, window_s, deadline, err);
    if (rc != STORE_NO) return rc;
    cJSON *resp = NULL;
    if (get_item(s, pk, request_id, deadline, &resp, err) != STORE_OK) return STORE_ERR;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(resp, "Item");
    if (item == NULL || req_expired(item, (long long)(ts_now_us() / 1000000))) {
      cJSON_Delete(resp);
      continue; /* absent now: claim again */
    }
    store_req r;
    if (req_from_item(item, &r) != 0) {
      cJSON_Delete(resp);
      return internal(err, "request item unreadable");
    }
    cJSON_Delete(resp);
    *recorded = r;
    return STORE_NO;
  }
  return internal(err, "request item keeps expiring under us");
}

int store_describe(store *s, int64_t deadline, aws_error *err) {
  cJSON *b = body_new(s);
  return run(s, "DescribeTable", b, 0, deadline, NULL, err);
}
