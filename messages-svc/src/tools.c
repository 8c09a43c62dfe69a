/* tools.c - schema-load, list-tables, drop, seed, scan, get-conversation,
 * list-conversations. They use the same store functions as the service, so
 * what they write follows the same model. */
#include "tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cruddur/rpc_client.h"
#include "cruddur/ts.h"
#include "cruddur/uuid.h"
#include "keys.h"
#include "seed_data.h"
#include "store.h"

#include "cruddur/users/v1/users.pb-c.h"

#define TOOL_CALL_MS 10000
#define TOOL_PAGE 100

static int64_t tool_deadline(void) {
  return ts_mono_us() + (int64_t)TOOL_CALL_MS * 1000;
}

/* One DynamoDB call with the tools' timeout; consumes body. */
static aws_code ddb_call(tools_ctx *t, const char *op, cJSON *body, cJSON **out, aws_error *err) {
  memset(err, 0, sizeof *err);
  if (body == NULL) {
    err->code = AWS_E_NOMEM;
    return AWS_E_NOMEM;
  }
  cJSON *resp = NULL;
  aws_code rc = aws_call(t->ddb, op, body, TOOL_CALL_MS, &resp, err);
  cJSON_Delete(body);
  err->code = rc;
  if (rc == AWS_OK) {
    if (out)
      *out = resp;
    else
      cJSON_Delete(resp);
  }
  return rc;
}

static void report(const char *what, const aws_error *err) {
  if (err->code == AWS_E_CLIENT)
    fprintf(stderr, "%s failed: %s%s%s\n", what, err->name, err->message[0] ? ": " : "",
            err->message);
  else
    fprintf(stderr, "%s failed: %s\n", what, aws_strerror(err->code));
}

static cJSON *table_body(tools_ctx *t) {
  cJSON *b = cJSON_CreateObject();
  if (b) cJSON_AddStringToObject(b, "TableName", t->table);
  return b;
}

static void print_json(cJSON *doc) {
  char *s = doc ? cJSON_Print(doc) : NULL;
  if (s) {
    puts(s);
    free(s);
  }
}

void tools_preview(const char *s, int max, char *out, size_t cap) {
  size_t i = 0, o = 0;
  int cps = 0;
  while (s[i] && cps < max) {
    size_t len = 1;
    while (s[i + len] && ((unsigned char)s[i + len] & 0xC0) == 0x80)
      len++;
    if (o + len + 4 > cap) break;
    for (size_t k = 0; k < len; k++) {
      /* Keep the transcript on one line. */
      char c = s[i + k];
      out[o++] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
    }
    i += len;
    cps++;
  }
  if (s[i] && o + 4 <= cap) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
}

/* Appends one {"uuid","handle","display_name","message","created_at"} row,
 * the shape of the HTTP API, for --json output. */
static void add_row(cJSON *arr, const char *uuid, const store_party *who, const char *text,
                    int64_t us) {
  char wire[TS_WIRE_LEN + 1];
  ts_format_wire(us, wire);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "uuid", uuid);
  cJSON_AddStringToObject(o, "handle", who->handle);
  cJSON_AddStringToObject(o, "display_name", who->display_name);
  cJSON_AddStringToObject(o, "message", text);
  cJSON_AddStringToObject(o, "created_at", wire);
  cJSON_AddItemToArray(arr, o);
}

static void local_time(int64_t us, char *out, size_t cap) {
  time_t secs = (time_t)(us / 1000000);
  struct tm tm;
  localtime_r(&secs, &tm);
  strftime(out, cap, "%Y-%m-%d %I:%M %p", &tm);
}

int tools_endpoint_is_local(const char *url) {
  if (url == NULL) return 0;
  const char *p = strstr(url, "://");
  p = p ? p + 3 : url;
  static const char *const hosts[] = {"127.0.0.1", "localhost", "[::1]"};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
    size_t n = strlen(hosts[i]);
    if (strncmp(p, hosts[i], n) == 0 && (p[n] == '\0' || p[n] == ':' || p[n] == '/')) return 1;
  }
  return 0;
}

/* ---- schema-load ---------------------------------------------------------- */

static void add_attr_def(cJSON *arr, const char *name) {
  cJSON *d = cJSON_CreateObject();
  cJSON_AddStringToObject(d, "AttributeName", name);
  cJSON_AddStringToObject(d, "AttributeType", "S");
  cJSON_AddItemToArray(arr, d);
}

static cJSON *key_schema(const char *hash, const char *range) {
  cJSON *ks = cJSON_CreateArray();
  cJSON *h = cJSON_CreateObject();
  cJSON_AddStringToObject(h, "AttributeName", hash);
  cJSON_AddStringToObject(h, "KeyType", "HASH");
  cJSON_AddItemToArray(ks, h);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "AttributeName", range);
  cJSON_AddStringToObject(r, "KeyType", "RANGE");
  cJSON_AddItemToArray(ks, r);
  return ks;
}

static cJSON *throughput(long rcu, long wcu) {
  cJSON *p = cJSON_CreateObject();
  cJSON_AddNumberToObject(p, "ReadCapacityUnits", (double)rcu);
  cJSON_AddNumberToObject(p, "WriteCapacityUnits", (double)wcu);
  return p;
}

static cJSON *create_table_body(tools_ctx *t, int provisioned, long rcu, long wcu) {
  cJSON *b = table_body(t);
  if (b == NULL) return NULL;
  cJSON *defs = cJSON_AddArrayToObject(b, "AttributeDefinitions");
  add_attr_def(defs, "pk");
  add_attr_def(defs, "sk");
  add_attr_def(defs, "last_sk");
  add_attr_def(defs, "message_group_uuid");
  cJSON_AddItemToObject(b, "KeySchema", key_schema("pk", "sk"));

  cJSON *lsis = cJSON_AddArrayToObject(b, "LocalSecondaryIndexes");
  cJSON *lsi = cJSON_CreateObject();
  cJSON_AddStringToObject(lsi, "IndexName", STORE_LSI);
  cJSON_AddItemToObject(lsi, "KeySchema", key_schema("pk", "last_sk"));
  cJSON_AddStringToObject(cJSON_AddObjectToObject(lsi, "Projection"), "ProjectionType", "ALL");
  cJSON_AddItemToArray(lsis, lsi);

  cJSON *gsis = cJSON_AddArrayToObject(b, "GlobalSecondaryIndexes");
  cJSON *gsi = cJSON_CreateObject();
  cJSON_AddStringToObject(gsi, "IndexName", STORE_GSI);
  cJSON_AddItemToObject(gsi, "KeySchema", key_schema("message_group_uuid", "sk"));
  cJSON_AddStringToObject(cJSON_AddObjectToObject(gsi, "Projection"), "ProjectionType", "ALL");
  if (provisioned) cJSON_AddItemToObject(gsi, "ProvisionedThroughput", throughput(rcu, wcu));
  cJSON_AddItemToArray(gsis, gsi);

  if (provisioned) {
    cJSON_AddStringToObject(b, "BillingMode", "PROVISIONED");
    cJSON_AddItemToObject(b, "ProvisionedThroughput", throughput(rcu, wcu));
  } else {
    cJSON_AddStringToObject(b, "BillingMode", "PAY_PER_REQUEST");
  }
  return b;
}

/* Waits until the table is ACTIVE (real DynamoDB takes seconds). Returns
 * the DescribeTable answer's "Table" owner document, or NULL. */
static cJSON *describe_active(tools_ctx *t, int wait_s, aws_error *err) {
  for (int i = 0; i <= wait_s * 2; i++) {
    cJSON *out = NULL;
    if (ddb_call(t, "DescribeTable", table_body(t), &out, err) != AWS_OK) return NULL;
    const cJSON *tb = cJSON_GetObjectItemCaseSensitive(out, "Table");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(tb, "TableStatus");
    if (cJSON_IsString(st) && strcmp(st->valuestring, "ACTIVE") == 0) return out;
    cJSON_Delete(out);
    usleep(500 * 1000);
  }
  memset(err, 0, sizeof *err);
  err->code = AWS_E_TIMEOUT;
  return NULL;
}

static int has_index(const cJSON *table, const char *list, const char *name) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(table, list);
  const cJSON *ix;
  cJSON_ArrayForEach(ix, arr) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(ix, "IndexName");
    if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) return 1;
  }
  return 0;
}

int tools_schema_load(tools_ctx *t, int provisioned, long rcu, long wcu) {
  aws_error err;
  int created = 1;
  if (ddb_call(t, "CreateTable", create_table_body(t, provisioned, rcu, wcu), NULL, &err) !=
      AWS_OK) {
    if (err.code == AWS_E_CLIENT && strcmp(err.name, "ResourceInUseException") == 0) {
      created = 0;
    } else {
      report("CreateTable", &err);
      return 1;
    }
  }
  cJSON *desc = describe_active(t, 120, &err);
  if (desc == NULL) {
    report("DescribeTable", &err);
    return 1;
  }
  const cJSON *tb = cJSON_GetObjectItemCaseSensitive(desc, "Table");
  int lsi = has_index(tb, "LocalSecondaryIndexes", STORE_LSI);
  int gsi = has_index(tb, "GlobalSecondaryIndexes", STORE_GSI);
  cJSON_Delete(desc);
  if (!lsi || !gsi) {
    /* A local index can only be created with the table: an older table must be rebuilt. */
    fprintf(stderr,
            "table %s exists but lacks %s%s%s: it was created by another schema; drop it and "
            "run schema-load again\n",
            t->table, lsi ? "" : STORE_LSI, (!lsi && !gsi) ? " and " : "", gsi ? "" : STORE_GSI);
    return 1;
  }

  /* Request items carry expires_at; DynamoDB deletes them after a day. */
  const char *ttl = "enabled";
  cJSON *b = table_body(t);
  cJSON *spec = cJSON_AddObjectToObject(b, "TimeToLiveSpecification");
  cJSON_AddBoolToObject(spec, "Enabled", 1);
  cJSON_AddStringToObject(spec, "AttributeName", "expires_at");
  if (ddb_call(t, "UpdateTimeToLive", b, NULL, &err) != AWS_OK) {
    if (err.code == AWS_E_CLIENT && strcmp(err.name, "UnknownOperationException") == 0)
      ttl = "unsupported";
    else if (err.code == AWS_E_CLIENT && strcmp(err.name, "ValidationException") == 0)
      ttl = "enabled"; /* "TimeToLive is already enabled" */
    else
      ttl = "failed";
  }
  if (t->json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "table", t->table);
    cJSON_AddBoolToObject(o, "created", created);
    cJSON_AddStringToObject(o, "billing", provisioned ? "PROVISIONED" : "PAY_PER_REQUEST");
    cJSON_AddStringToObject(o, "ttl", ttl);
    print_json(o);
    cJSON_Delete(o);
  } else {
    printf("%s table %s (%s, indexes %s and %s)\n",
           created ? "created" : "already exists:", t->table,
           provisioned ? "provisioned" : "pay-per-request", STORE_LSI, STORE_GSI);
    if (strcmp(ttl, "enabled") == 0)
      printf("time to live on expires_at: enabled\n");
    else if (strcmp(ttl, "unsupported") == 0)
      printf("time to live: not supported by this endpoint (dynalite); request items are kept\n");
    else
      printf("time to live: could not enable (%s)\n", err.name);
  }
  return 0;
}

/* ---- list-tables, drop ---------------------------------------------------- */

int tools_list_tables(tools_ctx *t) {
  cJSON *names = cJSON_CreateArray();
  char start[256] = "";
  aws_error err;
  for (int pages = 0; pages < 1000; pages++) {
    cJSON *b = cJSON_CreateObject();
    if (start[0]) cJSON_AddStringToObject(b, "ExclusiveStartTableName", start);
    cJSON *out = NULL;
    if (ddb_call(t, "ListTables", b, &out, &err) != AWS_OK) {
      report("ListTables", &err);
      cJSON_Delete(names);
      return 1;
    }
    const cJSON *n;
    cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(out, "TableNames")) {
      if (cJSON_IsString(n)) cJSON_AddItemToArray(names, cJSON_CreateString(n->valuestring));
    }
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(out, "LastEvaluatedTableName");
    start[0] = '\0';
    if (cJSON_IsString(last)) snprintf(start, sizeof start, "%s", last->valuestring);
    cJSON_Delete(out);
    if (!start[0]) break;
  }
  if (t->json) {
    print_json(names);
  } else {
    const cJSON *n;
    if (cJSON_GetArraySize(names) == 0) printf("(no tables)\n");
    cJSON_ArrayForEach(n, names) printf("%s\n", n->valuestring);
  }
  cJSON_Delete(names);
  return 0;
}

int tools_drop(tools_ctx *t, const char *table, int yes) {
  const char *ep = aws_client_endpoint(t->ddb);
  if (!tools_endpoint_is_local(ep) && !yes) {
    fprintf(stderr, "refusing to drop %s on %s (not a local endpoint) without --yes\n", table,
            ep ? ep : "(default endpoint)");
    return 2;
  }
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "TableName", table);
  aws_error err;
  if (!t->json) printf("deleting table: %s\n", table);
  if (ddb_call(t, "DeleteTable", b, NULL, &err) != AWS_OK) {
    if (err.code == AWS_E_CLIENT && strcmp(err.name, "ResourceNotFoundException") == 0)
      fprintf(stderr, "no such table: %s\n", table);
    else
      report("DeleteTable", &err);
    return 1;
  }
  if (t->json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "deleted", table);
    print_json(o);
    cJSON_Delete(o);
  }
  return 0;
}

/* ---- users-svc ------------------------------------------------------------ */

/* Looks up handles in users-svc. Returns 0 with parties[i] filled for each
 * handle (in order), or 1 after printing why. */
static int users_by_handle(tools_ctx *t, const char *const *handles, size_t n,
                           store_party *parties) {
  rpc_channel *ch = rpc_channel_open(t->users_addr);
  if (ch == NULL) {
    fprintf(stderr, "cannot open a channel to users-svc at %s\n", t->users_addr);
    return 1;
  }
  Cruddur__Users__V1__BatchGetUsersRequest req = CRUDDUR__USERS__V1__BATCH_GET_USERS_REQUEST__INIT;
  req.n_handles = n;
  req.handles = (char **)handles;
  ProtobufCMessage *resp_ = NULL;
  rpc_status st;
  grpc_status_code code = rpc_unary(ch, &cruddur__users__v1__users_service__descriptor,
                                    "BatchGetUsers", &req.base, &resp_, 10000, NULL, &st);
  rpc_channel_close(ch);
  if (code != GRPC_STATUS_OK) {
    fprintf(stderr, "users-svc at %s: BatchGetUsers failed: %s\n", t->users_addr, st.message);
    return 1;
  }
  Cruddur__Users__V1__BatchGetUsersResponse *resp = (void *)resp_;
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    int found = 0;
    for (size_t k = 0; k < resp->n_users; k++) {
      Cruddur__Users__V1__User *u = resp->users[k];
      if (strcasecmp(u->handle, handles[i]) == 0 && uuid_valid(u->uuid)) {
        memset(&parties[i], 0, sizeof parties[i]);
        snprintf(parties[i].uuid, sizeof parties[i].uuid, "%s", u->uuid);
        snprintf(parties[i].handle, sizeof parties[i].handle, "%s", u->handle);
        snprintf(parties[i].display_name, sizeof parties[i].display_name, "%s", u->display_name);
        found = 1;
      }
    }
    if (!found) {
      fprintf(stderr, "users-svc does not know @%s (run users-svc seed first)\n", handles[i]);
      rc = 1;
    }
  }
  protobuf_c_message_free_unpacked(resp_, NULL);
  return rc;
}

/* ---- seed ----------------------------------------------------------------- */

/* The seed's base time, recorded on first run so that a second run computes
 * the same keys (and so changes nothing). */
static int seed_base(tools_ctx *t, int64_t *base_us) {
  int64_t now = ts_now_us();
  int64_t base = (now / 60000000 - 2 * 24 * 60) * 60000000; /* two days ago, whole minute */
  char n[32];
  snprintf(n, sizeof n, "%lld", (long long)base);
  cJSON *b = table_body(t);
  cJSON *item = cJSON_AddObjectToObject(b, "Item");
  store_add_s(item, "pk", "SEED#v1");
  store_add_s(item, "sk", "SEED");
  store_add_s(item, "base_us", n);
  cJSON_AddStringToObject(b, "ConditionExpression", "attribute_not_exists(pk)");
  aws_error err;
  if (ddb_call(t, "PutItem", b, NULL, &err) == AWS_OK) {
    *base_us = base;
    return 0;
  }
  if (!store_is_condfail(&err)) {
    report("PutItem seed marker", &err);
    return 1;
  }
  b = table_body(t);
  cJSON *k = cJSON_AddObjectToObject(b, "Key");
  store_add_s(k, "pk", "SEED#v1");
  store_add_s(k, "sk", "SEED");
  cJSON_AddBoolToObject(b, "ConsistentRead", 1);
  cJSON *out = NULL;
  if (ddb_call(t, "GetItem", b, &out, &err) != AWS_OK) {
    report("GetItem seed marker", &err);
    return 1;
  }
  const char *v = store_attr_s(cJSON_GetObjectItemCaseSensitive(out, "Item"), "base_us");
  int rc = 1;
  if (v) {
    *base_us = strtoll(v, NULL, 10);
    rc = 0;
  } else {
    fprintf(stderr, "seed marker item is malformed\n");
  }
  cJSON_Delete(out);
  return rc;
}

typedef struct seed_result {
  char group[37];
  int created;
  int messages;
  int added;
} seed_result;

static int seed_conversation(tools_ctx *t, const char *ns, const store_party *a,
                             const store_party *b, const seed_line *lines, size_t n,
                             int64_t start_us, int64_t step_us, seed_result *res) {
  store s = {t->ddb, t->table};
  char candidate[37];
  char key[64];
  snprintf(key, sizeof key, "%s/group", ns);
  keys_stable_uuid(key, 0, candidate);
  aws_error err;
  memset(res, 0, sizeof *res);
  /* If the two already talk (say, through the app), the seed joins that group. */
  if (store_pair_claim(&s, a->uuid, b->uuid, candidate, tool_deadline(), res->group, &res->created,
                       &err) != STORE_OK) {
    report("claim pair", &err);
    return 1;
  }
  snprintf(key, sizeof key, "%s/message", ns);
  for (size_t i = 0; i < n; i++) {
    store_msg m;
    memset(&m, 0, sizeof m);
    memcpy(m.group, res->group, sizeof m.group);
    keys_stable_uuid(key, (unsigned)i, m.message_uuid);
    m.created_us = start_us + (int64_t)i * step_us;
    m.sender = lines[i].speaker == 0 ? *a : *b;
    snprintf(m.text, sizeof m.text, "%s", lines[i].text);
    if (keys_msg_sk(m.created_us, m.message_uuid, m.sk) != 0) return 1;
    const store_party *other = lines[i].speaker == 0 ? b : a;
    int rc = store_message_put(&s, &m, tool_deadline(), &err);
    if (rc == STORE_ERR) {
      report("PutItem message", &err);
      return 1;
    }
    if (rc == STORE_OK) res->added++;
    res->messages++;
    /* Monotonic: on a second run (or after newer real messages) nothing moves. */
    if (store_group_touch(&s, m.sender.uuid, other, &m, tool_deadline(), &err) == STORE_ERR ||
        store_group_touch(&s, other->uuid, &m.sender, &m, tool_deadline(), &err) == STORE_ERR) {
      report("PutItem group row", &err);
      return 1;
    }
  }
  return 0;
}

int tools_seed(tools_ctx *t) {
  static const char *const handles[] = {"andrewbrown", "bayko", "londo"};
  store_party p[3];
  if (users_by_handle(t, handles, 3, p) != 0) return 1;
  int64_t base;
  if (seed_base(t, &base) != 0) return 1;
  seed_result ab, bl;
  const int64_t minute = 60000000;
  if (seed_conversation(t, "cruddur-seed/v1/andrewbrown-bayko", &p[0], &p[1], seed_ab,
                        sizeof seed_ab / sizeof seed_ab[0], base, 3 * minute, &ab) != 0)
    return 1;
  if (seed_conversation(t, "cruddur-seed/v1/bayko-londo", &p[1], &p[2], seed_bl,
                        sizeof seed_bl / sizeof seed_bl[0], base + 24 * 60 * minute, 5 * minute,
                        &bl) != 0)
    return 1;
  if (t->json) {
    cJSON *o = cJSON_CreateArray();
    const seed_result *r[2] = {&ab, &bl};
    const char *names[2][2] = {{"andrewbrown", "bayko"}, {"bayko", "londo"}};
    for (int i = 0; i < 2; i++) {
      cJSON *c = cJSON_CreateObject();
      cJSON *who = cJSON_AddArrayToObject(c, "participants");
      cJSON_AddItemToArray(who, cJSON_CreateString(names[i][0]));
      cJSON_AddItemToArray(who, cJSON_CreateString(names[i][1]));
      cJSON_AddStringToObject(c, "message_group_uuid", r[i]->group);
      cJSON_AddBoolToObject(c, "group_created", r[i]->created);
      cJSON_AddNumberToObject(c, "messages", r[i]->messages);
      cJSON_AddNumberToObject(c, "added", r[i]->added);
      cJSON_AddItemToArray(o, c);
    }
    print_json(o);
    cJSON_Delete(o);
  } else {
    printf("andrewbrown <-> bayko: group %s, %d messages (%d new)\n", ab.group, ab.messages,
           ab.added);
    printf("bayko <-> londo: group %s, %d messages (%d new)\n", bl.group, bl.messages, bl.added);
  }
  return 0;
}

/* ---- scan ----------------------------------------------------------------- */

/* {"a":{"S":"x"}} -> {"a":"x"} (N stays text, BOOL becomes a boolean). */
static cJSON *plain_item(const cJSON *item) {
  cJSON *o = cJSON_CreateObject();
  const cJSON *a;
  cJSON_ArrayForEach(a, item) {
    const cJSON *v = a->child;
    if (v == NULL) continue;
    if (cJSON_IsString(v))
      cJSON_AddStringToObject(o, a->string, v->valuestring);
    else if (cJSON_IsBool(v))
      cJSON_AddBoolToObject(o, a->string, cJSON_IsTrue(v));
    else
      cJSON_AddItemToObject(o, a->string, cJSON_Duplicate(v, 1));
  }
  return o;
}

int tools_scan(tools_ctx *t) {
  cJSON *all = t->json ? cJSON_CreateArray() : NULL;
  cJSON *start = NULL;
  long count = 0;
  aws_error err;
  for (;;) {
    cJSON *b = table_body(t);
    if (start) cJSON_AddItemToObject(b, "ExclusiveStartKey", start);
    start = NULL;
    cJSON *out = NULL;
    if (ddb_call(t, "Scan", b, &out, &err) != AWS_OK) {
      report("Scan", &err);
      cJSON_Delete(all);
      return 1;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(out, "Items")) {
      count++;
      cJSON *p = plain_item(item);
      if (all) {
        cJSON_AddItemToArray(all, p);
        continue;
      }
      /* One line per item: keys first, then the rest, text shortened. */
      printf("%s | %s", store_attr_s(item, "pk") ? store_attr_s(item, "pk") : "?",
             store_attr_s(item, "sk") ? store_attr_s(item, "sk") : "?");
      const cJSON *a;
      cJSON_ArrayForEach(a, p) {
        if (strcmp(a->string, "pk") == 0 || strcmp(a->string, "sk") == 0) continue;
        char v[200];
        if (cJSON_IsString(a))
          tools_preview(a->valuestring, 40, v, sizeof v);
        else
          snprintf(v, sizeof v, "%s", cJSON_IsTrue(a) ? "true" : "false");
        printf(" | %s=%s", a->string, v);
      }
      printf("\n");
      cJSON_Delete(p);
    }
    const cJSON *lek = cJSON_GetObjectItemCaseSensitive(out, "LastEvaluatedKey");
    if (lek) start = cJSON_Duplicate(lek, 1);
    cJSON_Delete(out);
    if (start == NULL) break;
  }
  if (all) {
    print_json(all);
    cJSON_Delete(all);
  } else {
    printf("%ld items\n", count);
  }
  return 0;
}

/* ---- get-conversation ----------------------------------------------------- */

int tools_get_conversation(tools_ctx *t, const char *group) {
  if (!uuid_valid(group)) {
    fprintf(stderr, "GROUP_UUID must be a canonical lower-case uuid\n");
    return 2;
  }
  store s = {t->ddb, t->table};
  cJSON *doc = NULL, *arr = NULL;
  if (t->json) {
    doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "message_group_uuid", group);
    arr = cJSON_AddArrayToObject(doc, "messages");
  }
  char start[KEYS_MSG_SK_LEN + 1] = "";
  long count = 0;
  aws_error err;
  for (;;) {
    cJSON *out = NULL;
    if (store_messages_query(&s, group, TOOL_PAGE, start, 1, tool_deadline(), &out, &err) !=
        STORE_OK) {
      report("Query", &err);
      cJSON_Delete(doc);
      return 1;
    }
    const cJSON *item;
    store_msg m;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(out, "Items")) {
      if (store_msg_from_item(item, &m) != 0) continue;
      count++;
      if (arr) {
        add_row(arr, m.message_uuid, &m.sender, m.text, m.created_us);
      } else {
        char when[64], text[200];
        local_time(m.created_us, when, sizeof when);
        tools_preview(m.text, 40, text, sizeof text);
        printf("%-12s  %-22s  %s\n", m.sender.handle, when, text);
      }
    }
    const cJSON *lek = cJSON_GetObjectItemCaseSensitive(out, "LastEvaluatedKey");
    const char *next = lek ? store_attr_s(lek, "sk") : NULL;
    start[0] = '\0';
    if (next) snprintf(start, sizeof start, "%s", next);
    cJSON_Delete(out);
    if (!start[0]) break;
  }
  if (doc) {
    print_json(doc);
    cJSON_Delete(doc);
  } else if (count == 0) {
    printf("(no messages in group %s)\n", group);
  }
  return 0;
}

/* ---- list-conversations --------------------------------------------------- */

int tools_list_conversations(tools_ctx *t, const char *handle) {
  const char *hs[1] = {handle};
  store_party me;
  if (users_by_handle(t, hs, 1, &me) != 0) return 1;
  store s = {t->ddb, t->table};
  cJSON *doc = NULL, *arr = NULL;
  if (t->json) {
    doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "user_uuid", me.uuid);
    cJSON_AddStringToObject(doc, "handle", me.handle);
    arr = cJSON_AddArrayToObject(doc, "conversations");
  } else {
    printf("my-uuid: %s\n", me.uuid);
  }
  char sk[64] = "", last_sk[KEYS_MSG_SK_LEN + 1] = "";
  aws_error err;
  for (;;) {
    cJSON *out = NULL;
    if (store_groups_query(&s, me.uuid, TOOL_PAGE, sk[0] ? sk : NULL, last_sk, tool_deadline(),
                           &out, &err) != STORE_OK) {
      report("Query", &err);
      cJSON_Delete(doc);
      return 1;
    }
    const cJSON *item;
    store_group g;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(out, "Items")) {
      if (store_group_from_item(item, &g) != 0) continue;
      if (arr) {
        add_row(arr, g.group, &g.other, g.text, g.last_us);
      } else {
        char when[64], text[200];
        local_time(g.last_us, when, sizeof when);
        tools_preview(g.text, 40, text, sizeof text);
        printf("%-12s  %-22s  %s  %s\n", g.other.handle, when, g.group, text);
      }
    }
    const cJSON *lek = cJSON_GetObjectItemCaseSensitive(out, "LastEvaluatedKey");
    sk[0] = last_sk[0] = '\0';
    if (lek && store_attr_s(lek, "sk") && store_attr_s(lek, "last_sk")) {
      snprintf(sk, sizeof sk, "%s", store_attr_s(lek, "sk"));
      snprintf(last_sk, sizeof last_sk, "%s", store_attr_s(lek, "last_sk"));
    }
    cJSON_Delete(out);
    if (!sk[0]) break;
  }
  if (doc) {
    print_json(doc);
    cJSON_Delete(doc);
  }
  return 0;
}
