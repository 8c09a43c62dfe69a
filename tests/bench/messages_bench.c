/* messages_bench.c - load client for messages-svc, beside the raw dynalite
 * ceiling for the same DynamoDB requests (not a test; see messages.sh).
 *
 *   messages_bench PHASE --addr HOST:PORT --ddb URL [--table T] [--threads N]
 *                  [--calls N] [--pid PID]
 *   PHASE: list        ListMessages (page 20) on a 30-message group, then
 *                      the same Query sent straight to dynalite
 *          create      CreateMessage without request_id, then raw PutItem
 *          create-rid  CreateMessage with a fresh request_id per call
 *          mem         the service's memory after --calls calls of a mix: in
 *                      every 25 calls one ListMessages, one CreateMessage and
 *                      one ListMessageGroups (real DynamoDB work), and 22
 *                      ListMessages refused before any I/O (a page token that
 *                      is not one), so that half a million calls fit in the
 *                      time dynalite allows
 * Prints one "result" line per measured phase (calls/s, p50, p99 in ms) and
 * the service's RSS at 10k calls and at the end when --pid is given; mem
 * also prints a "mem" line with VmRSS and VmHWM idle (before any call of
 * the phase) and at the end.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cruddur/messages/v1/messages.pb-c.h"
#include "cruddur/rpc_client.h"
#include "cruddur/ts.h"
#include "cruddur/uuid.h"

typedef Cruddur__Messages__V1__Participant Participant;

static const char *g_addr = "127.0.0.1:50052";
static const char *g_ddb = "http://127.0.0.1:8000";
static const char *g_table = "cruddur-messages";
static int g_threads = 16;
static long g_calls = 10000;
static long g_pid = 0;

static rpc_channel *g_ch;
static char g_group[37];
static Participant g_a, g_b;
static char g_a_uuid[37], g_b_uuid[37];

/* ---- measurement -------------------------------------------------------- */

typedef struct run {
  const char *name;
  long calls;
  atomic_long next;
  long limit; /* this chunk ends before call number `limit` */
  atomic_long errors;
  int64_t *lat_us; /* calls entries */
  int64_t busy_us; /* wall time spent in chunks */
  long svc_ticks;  /* service CPU (user + system) spent in chunks */
  long rss_at_10k_kb;
  int (*one)(long i, void *thread_state);
  void *(*thread_init)(void);
  void (*thread_done)(void *);
} run;

/* One "Key:   N kB" figure of the service's /proc status (-1 without --pid). */
static long status_kb(const char *key) {
  if (g_pid <= 0) return -1;
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%ld/status", g_pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  size_t n = strlen(key);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, n) == 0 && line[n] == ':') kb = strtol(line + n + 1, NULL, 10);
  fclose(f);
  return kb;
}

static long rss_kb(void) { return status_kb("VmRSS"); }

/* The service's user + system CPU time in clock ticks (-1 without --pid). */
static long cpu_ticks(void) {
  if (g_pid <= 0) return -1;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", g_pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p) return -1;
  long utime = 0, stime = 0;
  /* Fields after ")": state(3) ... utime(14) stime(15). */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) != 2)
    return -1;
  return utime + stime;
}

static void *worker(void *arg) {
  run *r = arg;
  void *st = r->thread_init ? r->thread_init() : NULL;
  for (;;) {
    long i = atomic_fetch_add(&r->next, 1);
    if (i >= r->limit) break;
    int64_t t0 = ts_mono_us();
    if (r->one(i, st) != 0) atomic_fetch_add(&r->errors, 1);
    r->lat_us[i] = ts_mono_us() - t0;
    if (i == 10000 - 1) r->rss_at_10k_kb = rss_kb();
  }
  if (r->thread_done) r->thread_done(st);
  return NULL;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void run_init(run *r) {
  r->lat_us = calloc((size_t)r->calls, sizeof *r->lat_us);
  atomic_store(&r->next, 0);
  atomic_store(&r->errors, 0);
  r->limit = 0;
  r->busy_us = 0;
  r->svc_ticks = 0;
  r->rss_at_10k_kb = -1;
}

/* Runs calls up to number `upto` with g_threads threads. */
static void run_chunk(run *r, long upto) {
  if (upto > r->calls) upto = r->calls;
  atomic_store(&r->next, r->limit);
  r->limit = upto;
  pthread_t *th = calloc((size_t)g_threads, sizeof *th);
  long c0 = cpu_ticks();
  int64_t t0 = ts_mono_us();
  for (int i = 0; i < g_threads; i++)
    pthread_create(&th[i], NULL, worker, r);
  for (int i = 0; i < g_threads; i++)
    pthread_join(th[i], NULL);
  r->busy_us += ts_mono_us() - t0;
  r->svc_ticks += cpu_ticks() - c0;
  free(th);
}

/* Prints the result line and returns calls/s. */
static double report(run *r) {
  qsort(r->lat_us, (size_t)r->calls, sizeof *r->lat_us, cmp64);
  double p50 = (double)r->lat_us[r->calls / 2] / 1000.0;
  double p99 = (double)r->lat_us[(r->calls * 99) / 100] / 1000.0;
  double rate = (double)r->calls / ((double)r->busy_us / 1e6);
  printf("result %-24s calls=%ld threads=%d errors=%ld rate=%.0f/s p50=%.2fms p99=%.2fms", r->name,
         r->calls, g_threads, (long)atomic_load(&r->errors), rate, p50, p99);
  if (g_pid > 0 && strncmp(r->name, "grpc", 4) == 0)
    printf(" rss_10k=%ldkB rss_end=%ldkB svc_cpu=%.0fus/call", r->rss_at_10k_kb, rss_kb(),
           (double)r->svc_ticks * 1e6 / (double)sysconf(_SC_CLK_TCK) / (double)r->calls);
  printf("\n");
  fflush(stdout);
  free(r->lat_us);
  return rate;
}

static double measure(run *r) {
  run_init(r);
  run_chunk(r, r->calls);
  return report(r);
}

/* Measures a and b in alternating slices (10 rounds), so that load from
 * other processes on a small machine falls on both alike. */
static void measure_pair(run *a, run *b, const char *label) {
  run_init(a);
  run_init(b);
  const int rounds = 10;
  for (int k = 1; k <= rounds; k++) {
    run_chunk(a, a->calls * k / rounds);
    run_chunk(b, b->calls * k / rounds);
  }
  double ra = report(a), rb = report(b);
  printf("ratio %s = %.2f\n", label, ra / rb);
}

/* ---- gRPC calls --------------------------------------------------------- */

/* One MessagesService call with a 10 s deadline. */
static grpc_status_code msg_call(const char *method, const ProtobufCMessage *req,
                                 ProtobufCMessage **resp) {
  return rpc_unary(g_ch, &cruddur__messages__v1__messages_service__descriptor, method, req, resp,
                   10000, NULL, NULL);
}

/* ListMessages of the bench group as user a, newest 20, from `token`. */
static grpc_status_code list_call(char *token, ProtobufCMessage **resp) {
  Cruddur__Messages__V1__ListMessagesRequest req =
      CRUDDUR__MESSAGES__V1__LIST_MESSAGES_REQUEST__INIT;
  req.message_group_uuid = g_group;
  req.user_uuid = g_a_uuid;
  req.page_size = 20;
  req.page_token = token;
  return msg_call("ListMessages", &req.base, resp);
}

static int grpc_list(long i, void *st) {
  (void)i;
  (void)st;
  ProtobufCMessage *resp = NULL;
  if (list_call("", &resp) != GRPC_STATUS_OK) return -1;
  int ok = ((Cruddur__Messages__V1__ListMessagesResponse *)resp)->n_messages == 20;
  protobuf_c_message_free_unpacked(resp, NULL);
  return ok ? 0 : -1;
}

static int g_with_rid;
static char g_rid_prefix[16];

static int grpc_create(long i, void *st) {
  (void)st;
  char rid[64] = "";
  if (g_with_rid) snprintf(rid, sizeof rid, "bench-%s-%ld", g_rid_prefix, i);
  Cruddur__Messages__V1__CreateMessageRequest req =
      CRUDDUR__MESSAGES__V1__CREATE_MESSAGE_REQUEST__INIT;
  req.message_group_uuid = g_group;
  req.sender = (i % 2) ? &g_a : &g_b;
  req.text = "benchmark message: a short line of text like a real chat";
  req.request_id = rid;
  ProtobufCMessage *resp = NULL;
  grpc_status_code c = msg_call("CreateMessage", &req.base, &resp);
  if (c != GRPC_STATUS_OK) return -1;
  protobuf_c_message_free_unpacked(resp, NULL);
  return 0;
}

static atomic_long g_groups_empty; /* OK answers without the group */

static int grpc_groups(long i, void *st) {
  (void)i;
  (void)st;
  Cruddur__Messages__V1__ListMessageGroupsRequest req =
      CRUDDUR__MESSAGES__V1__LIST_MESSAGE_GROUPS_REQUEST__INIT;
  req.user_uuid = g_a_uuid;
  req.page_size = 20;
  ProtobufCMessage *resp = NULL;
  grpc_status_code c = msg_call("ListMessageGroups", &req.base, &resp);
  if (c != GRPC_STATUS_OK) return -1;
  /* Counted apart, not as an error: under dynalite a post that moves the row
   * (its last_sk, the local index's key) can hide it from a concurrent
   * consistent Query on that index, so an OK answer may be empty. */
  if (((Cruddur__Messages__V1__ListMessageGroupsResponse *)resp)->n_groups == 0)
    atomic_fetch_add(&g_groups_empty, 1);
  protobuf_c_message_free_unpacked(resp, NULL);
  return 0;
}

/* A ListMessages the service must refuse before any I/O: counted as an
 * error unless the answer is exactly INVALID_ARGUMENT. */
static int grpc_refused(long i, void *st) {
  (void)i;
  (void)st;
  ProtobufCMessage *resp = NULL;
  grpc_status_code c = list_call("bm90LWEtdG9rZW4.bm90LWEtbWFj", &resp);
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  return c == GRPC_STATUS_INVALID_ARGUMENT ? 0 : -1;
}

/* Failures of the mem mix by kind: list, create, groups, refused. */
static atomic_long g_mix_errors[4];

static int grpc_mix(long i, void *st) {
  int k = i % 25 < 3 ? (int)(i % 25) : 3;
  int rc = k == 0 ? grpc_list(i, st) : k == 1 ? grpc_create(i, st) : k == 2 ? grpc_groups(i, st)
                                                                             : grpc_refused(i, st);
  if (rc != 0) atomic_fetch_add(&g_mix_errors[k], 1);
  return rc;
}

/* ---- raw DynamoDB calls ------------------------------------------------- */

typedef struct raw_state {
  CURL *e;
  struct curl_slist *hdr_query, *hdr_put;
  char *buf;
  size_t len, cap;
} raw_state;

static size_t sink(char *p, size_t sz, size_t n, void *u) {
  raw_state *s = u;
  size_t k = sz * n;
  if (s->len + k + 1 > s->cap) {
    size_t nc = (s->len + k + 1) * 2;
    if (nc > (1 << 22)) return 0; /* cap */
    s->buf = realloc(s->buf, nc);
    s->cap = nc;
  }
  memcpy(s->buf + s->len, p, k);
  s->len += k;
  s->buf[s->len] = '\0';
  return k;
}

static void *raw_init(void) {
  raw_state *s = calloc(1, sizeof *s);
  s->e = curl_easy_init();
  s->hdr_query = curl_slist_append(NULL, "Content-Type: application/x-amz-json-1.0");
  s->hdr_query = curl_slist_append(s->hdr_query, "X-Amz-Target: DynamoDB_20120810.Query");
  s->hdr_put = curl_slist_append(NULL, "Content-Type: application/x-amz-json-1.0");
  s->hdr_put = curl_slist_append(s->hdr_put, "X-Amz-Target: DynamoDB_20120810.PutItem");
  curl_easy_setopt(s->e, CURLOPT_URL, g_ddb);
  curl_easy_setopt(s->e, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:dynamodb");
  curl_easy_setopt(s->e, CURLOPT_USERPWD, "local:local");
  curl_easy_setopt(s->e, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(s->e, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(s->e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(s->e, CURLOPT_TIMEOUT_MS, 10000L);
  return s;
}

static void raw_done(void *p) {
  raw_state *s = p;
  curl_easy_cleanup(s->e);
  curl_slist_free_all(s->hdr_query);
  curl_slist_free_all(s->hdr_put);
  free(s->buf);
  free(s);
}

static int raw_post(raw_state *s, struct curl_slist *h, const char *body) {
  s->len = 0;
  curl_easy_setopt(s->e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(s->e, CURLOPT_POSTFIELDS, body);
  if (curl_easy_perform(s->e) != CURLE_OK) return -1;
  long code = 0;
  curl_easy_getinfo(s->e, CURLINFO_RESPONSE_CODE, &code);
  return code == 200 ? 0 : -1;
}

/* The service's own Query for a page of 20 (it asks for 21 to know whether
 * another page exists, and reads consistently). */
static int raw_query(long i, void *st) {
  (void)i;
  char body[512];
  snprintf(body, sizeof body,
           "{\"TableName\":\"%s\",\"KeyConditionExpression\":\"pk = :pk\","
           "\"ExpressionAttributeValues\":{\":pk\":{\"S\":\"MSG#%s\"}},"
           "\"ScanIndexForward\":false,\"ConsistentRead\":true,\"Limit\":21}",
           g_table, g_group);
  return raw_post(st, ((raw_state *)st)->hdr_query, body);
}

static int raw_put(long i, void *st) {
  (void)i;
  char id[37], ts[TS_STORED_LEN + 1], body[1024];
  uuid_new(id);
  int64_t now = ts_now_us();
  ts_format_stored(now, ts);
  snprintf(body, sizeof body,
           "{\"TableName\":\"%s\",\"ConditionExpression\":\"attribute_not_exists(pk)\","
           "\"Item\":{\"pk\":{\"S\":\"MSG#%s\"},\"sk\":{\"S\":\"%s#%s\"},"
           "\"message_uuid\":{\"S\":\"%s\"},\"message\":{\"S\":\"benchmark message: a short line "
           "of text like a real chat\"},\"user_uuid\":{\"S\":\"%s\"},\"user_handle\":{\"S\":"
           "\"bench_a\"},\"user_display_name\":{\"S\":\"Bench A\"},\"created_at\":{\"S\":\"%s\"}}}",
           g_table, g_group, ts, id, id, g_a_uuid, ts);
  return raw_post(st, ((raw_state *)st)->hdr_put, body);
}

/* ---- setup -------------------------------------------------------------- */

static int setup_group(int messages) {
  uuid_new(g_a_uuid);
  uuid_new(g_b_uuid);
  Participant a = CRUDDUR__MESSAGES__V1__PARTICIPANT__INIT, b = a;
  a.uuid = g_a_uuid;
  a.handle = "bench_a";
  a.display_name = "Bench A";
  b.uuid = g_b_uuid;
  b.handle = "bench_b";
  b.display_name = "Bench B";
  g_a = a;
  g_b = b;
  Cruddur__Messages__V1__CreateMessageGroupRequest req =
      CRUDDUR__MESSAGES__V1__CREATE_MESSAGE_GROUP_REQUEST__INIT;
  req.sender = &g_a;
  req.recipient = &g_b;
  req.text = "let us measure";
  req.request_id = "";
  ProtobufCMessage *resp = NULL;
  rpc_status st;
  if (rpc_unary(g_ch, &cruddur__messages__v1__messages_service__descriptor, "CreateMessageGroup",
                &req.base, &resp, 10000, NULL, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "CreateMessageGroup failed: %s\n", st.message);
    return -1;
  }
  snprintf(g_group, sizeof g_group, "%s",
           ((Cruddur__Messages__V1__CreateMessageGroupResponse *)resp)->message_group_uuid);
  protobuf_c_message_free_unpacked(resp, NULL);
  for (int i = 1; i < messages; i++)
    if (grpc_create(i, NULL) != 0) return -1;
  /* DynamoDB requests the setup costs by design: the group start is a pair
   * put, a message put and two row updates; each post 3 (4 with a request id). */
  printf("setup group=%s messages=%d setup_ddb=%d\n", g_group, messages,
         4 + (messages - 1) * (g_with_rid ? 4 : 3));
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: messages_bench list|create|create-rid|mem --addr A --ddb URL [--table T] "
                    "[--threads N] [--calls N] [--pid PID]\n");
    return 2;
  }
  const char *phase = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--addr"))
      g_addr = argv[i + 1];
    else if (!strcmp(argv[i], "--ddb"))
      g_ddb = argv[i + 1];
    else if (!strcmp(argv[i], "--table"))
      g_table = argv[i + 1];
    else if (!strcmp(argv[i], "--threads"))
      g_threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--calls"))
      g_calls = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--pid"))
      g_pid = atol(argv[i + 1]);
    else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (g_threads < 1 || g_threads > 256 || g_calls < 100 || g_calls > 10000000) return 2;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  g_ch = rpc_channel_open(g_addr);
  int rc = 0;
  if (strcmp(phase, "list") == 0) {
    if (setup_group(30) != 0) return 1;
    run warm = {.name = "warmup", .calls = 200, .one = grpc_list};
    measure(&warm);
    run rg = {.name = "grpc ListMessages", .calls = g_calls, .one = grpc_list};
    long raw_calls = g_calls > 50000 ? 50000 : g_calls;
    run rr = {.name = "raw Query",
              .calls = raw_calls,
              .one = raw_query,
              .thread_init = raw_init,
              .thread_done = raw_done};
    measure_pair(&rg, &rr, "ListMessages/raw Query");
  } else if (strcmp(phase, "create") == 0 || strcmp(phase, "create-rid") == 0) {
    g_with_rid = strcmp(phase, "create-rid") == 0;
    char u[37];
    uuid_new(u);
    memcpy(g_rid_prefix, u, 8);
    if (setup_group(2) != 0) return 1;
    run rg = {.name = g_with_rid ? "grpc CreateMessage+rid" : "grpc CreateMessage",
              .calls = g_calls,
              .one = grpc_create};
    if (!g_with_rid) {
      run rr = {.name = "raw PutItem",
                .calls = g_calls > 50000 ? 50000 : g_calls,
                .one = raw_put,
                .thread_init = raw_init,
                .thread_done = raw_done};
      measure_pair(&rg, &rr, "CreateMessage/raw PutItem");
    } else {
      measure(&rg);
    }
  } else if (strcmp(phase, "mem") == 0) {
    long idle_rss = rss_kb(), idle_hwm = status_kb("VmHWM");
    if (setup_group(30) != 0) return 1;
    run rm = {.name = "grpc mix (mem)", .calls = g_calls, .one = grpc_mix};
    measure(&rm);
    /* Every 25 calls: 1 Query + 3 (post) + 1 Query (groups) DynamoDB requests. */
    printf("mem calls=%ld real=%ld idle_rss=%ldkB idle_hwm=%ldkB end_rss=%ldkB end_hwm=%ldkB "
           "errors_list=%ld errors_create=%ld errors_groups=%ld errors_refused=%ld groups_empty=%ld\n",
           g_calls, 3 * (g_calls / 25) + (g_calls % 25 < 3 ? g_calls % 25 : 3), idle_rss, idle_hwm,
           rss_kb(), status_kb("VmHWM"), atomic_load(&g_mix_errors[0]), atomic_load(&g_mix_errors[1]),
           atomic_load(&g_mix_errors[2]), atomic_load(&g_mix_errors[3]),
           atomic_load(&g_groups_empty));
  } else {
    fprintf(stderr, "unknown phase %s\n", phase);
    rc = 2;
  }
  rpc_channel_close(g_ch);
  curl_global_cleanup();
  return rc;
}
