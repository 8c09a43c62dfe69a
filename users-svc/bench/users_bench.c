/* users_bench - load client for users-svc: GetUser by handle.
 *
 *   users_bench -a 127.0.0.1:50051 -c IN_FLIGHT -n CALLS [-T MAX_SECONDS]
 *               [-p USERS_SVC_PID] [-h HANDLE]
 *
 * One thread keeps CONCURRENCY (-c) unary calls in flight on one channel
 * and one completion queue: each finished call starts the next one, until
 * CALLS calls were made in all (or MAX_SECONDS passed). So the client costs
 * a completion per call, not a blocked thread per connection, and is not
 * what limits the rate. Prints key=value lines: calls, errors, seconds,
 * calls_per_s, p50_us, p99_us, p999_us and, with -p, the server's VmRSS
 * after 10,000 and after 200,000 calls. Not a test: tests/bench/users.sh
 * runs it beside pgbench.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "cruddur/ts.h"
#include "cruddur/users/v1/users.pb-c.h"

#define HIST_US 100000 /* 1 us buckets up to 100 ms; beyond goes to the last */
#define WARMUP 2000

static const char *g_addr = "127.0.0.1:50051";
static const char *g_handle = "andrewbrown";
static long g_calls = 200000;
static int g_conc = 4;
static int g_seconds = 120;
static int g_pid = 0;
static long g_rss_10k = -1, g_rss_200k = -1;

static long rss_kb(int pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

/* One call in flight; its address is the completion tag. Everything in it
 * belongs to the call until its batch completes (slot_end). */
typedef struct slot {
  grpc_call *call;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array md, trailers;
  grpc_status_code status;
  grpc_slice details;
  int64_t t0;
} slot;

typedef struct bench {
  grpc_channel *ch;
  grpc_completion_queue *cq;
  grpc_slice path, req; /* "/cruddur.users.v1.UsersService/GetUser", the packed request */
} bench;

/* Starts one GetUser call in s: the whole unary exchange in one batch. */
static int slot_start(bench *b, slot *s) {
  memset(s, 0, sizeof *s);
  grpc_metadata_array_init(&s->md);
  grpc_metadata_array_init(&s->trailers);
  s->send = grpc_raw_byte_buffer_create(&b->req, 1);
  gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(2000, GPR_TIMESPAN));
  s->call = grpc_channel_create_call(b->ch, NULL, GRPC_PROPAGATE_DEFAULTS, b->cq, b->path, NULL,
                                     dl, NULL);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = s->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &s->recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &s->trailers;
  ops[5].data.recv_status_on_client.status = &s->status;
  ops[5].data.recv_status_on_client.status_details = &s->details;
  s->t0 = ts_mono_us();
  return grpc_call_start_batch(s->call, ops, 6, s, NULL) == GRPC_CALL_OK ? 0 : -1;
}

/* Releases a completed call; 0 when it answered OK with a message. */
static int slot_end(slot *s, int batch_ok) {
  int ok = batch_ok && s->status == GRPC_STATUS_OK && s->recv != NULL;
  grpc_byte_buffer_destroy(s->send);
  if (s->recv) grpc_byte_buffer_destroy(s->recv);
  grpc_metadata_array_destroy(&s->md);
  grpc_metadata_array_destroy(&s->trailers);
  grpc_slice_unref(s->details);
  grpc_call_unref(s->call);
  return ok ? 0 : -1;
}

typedef struct tally {
  uint64_t *hist; /* NULL: not recorded (warm-up) */
  long calls, errors;
} tally;

/* Makes n calls, conc in flight at a time, until stop_us; counts into t. */
static void run(bench *b, long n, int conc, int64_t stop_us, tally *t) {
  slot *slots = calloc((size_t)conc, sizeof *slots);
  long started = 0, done = 0;
  for (int i = 0; i < conc && started < n; i++, started++)
    if (slot_start(b, &slots[i]) != 0) abort(); /* only misuse of the API fails here */
  while (done < started) {
    grpc_event ev = grpc_completion_queue_next(b->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type != GRPC_OP_COMPLETE) abort();
    slot *s = ev.tag;
    int64_t us = ts_mono_us() - s->t0;
    if (slot_end(s, ev.success) != 0) t->errors++;
    done++;
    t->calls++;
    if (t->hist) {
      t->hist[us < HIST_US ? us : HIST_US - 1]++;
      if (g_pid > 0 && t->calls == 10000) g_rss_10k = rss_kb(g_pid);
      if (g_pid > 0 && t->calls == 200000) g_rss_200k = rss_kb(g_pid);
    }
    if (started < n && ts_mono_us() < stop_us) {
      if (slot_start(b, s) != 0) abort();
      started++;
    }
  }
  free(slots);
}

static int bench_open(bench *b) {
  Cruddur__Users__V1__GetUserRequest req = CRUDDUR__USERS__V1__GET_USER_REQUEST__INIT;
  req.key_case = CRUDDUR__USERS__V1__GET_USER_REQUEST__KEY_HANDLE;
  req.handle = (char *)g_handle;
  b->req = grpc_slice_malloc(protobuf_c_message_get_packed_size(&req.base));
  protobuf_c_message_pack(&req.base, GRPC_SLICE_START_PTR(b->req));
  char path[128];
  snprintf(path, sizeof path, "/%s/GetUser", cruddur__users__v1__users_service__descriptor.name);
  b->path = grpc_slice_from_copied_string(path);
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  b->ch = grpc_channel_create(g_addr, creds, NULL);
  grpc_channel_credentials_release(creds);
  b->cq = grpc_completion_queue_create_for_next(NULL);
  return b->ch && b->cq ? 0 : -1;
}

static void bench_close(bench *b) {
  grpc_channel_destroy(b->ch);
  grpc_completion_queue_shutdown(b->cq);
  while (grpc_completion_queue_next(b->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(b->cq);
  grpc_slice_unref(b->req);
  grpc_slice_unref(b->path);
}

static long percentile(const uint64_t *hist, uint64_t total, double p) {
  uint64_t want = (uint64_t)(p * (double)total), seen = 0;
  for (long i = 0; i < HIST_US; i++) {
    seen += hist[i];
    if (seen > want) return i;
  }
  return HIST_US;
}

int main(int argc, char **argv) {
  int opt;
  while ((opt = getopt(argc, argv, "a:c:n:T:p:h:")) != -1) {
    switch (opt) {
    case 'a':
      g_addr = optarg;
      break;
    case 'c':
      g_conc = atoi(optarg);
      break;
    case 'n':
      g_calls = atol(optarg);
      break;
    case 'T':
      g_seconds = atoi(optarg);
      break;
    case 'p':
      g_pid = atoi(optarg);
      break;
    case 'h':
      g_handle = optarg;
      break;
    default:
      fprintf(stderr, "usage: users_bench -a ADDR -c IN_FLIGHT -n CALLS [-T SECONDS] [-p PID] "
                      "[-h HANDLE]\n");
      return 2;
    }
  }
  if (g_conc < 1 || g_conc > 4096 || g_calls < 1) return 2;

  grpc_init();
  bench b;
  if (bench_open(&b) != 0) {
    fprintf(stderr, "users_bench: cannot open a channel to %s\n", g_addr);
    return 1;
  }
  /* Warm up: connection, prepared statements, caches. */
  tally warm = {NULL, 0, 0};
  run(&b, WARMUP, 1, ts_mono_us() + 60 * 1000000LL, &warm);
  if (warm.errors == warm.calls) {
    fprintf(stderr, "users_bench: GetUser(%s) on %s fails\n", g_handle, g_addr);
    bench_close(&b);
    grpc_shutdown();
    return 1;
  }
  long rss_start = g_pid > 0 ? rss_kb(g_pid) : -1;

  uint64_t *hist = calloc(HIST_US, sizeof *hist);
  tally t = {hist, 0, 0};
  int64_t t0 = ts_mono_us();
  run(&b, g_calls, g_conc, t0 + (int64_t)g_seconds * 1000000, &t);
  double secs = (double)(ts_mono_us() - t0) / 1e6;
  bench_close(&b);
  grpc_shutdown();
  uint64_t total = (uint64_t)t.calls;
  printf("in_flight=%d\n", g_conc);
  printf("calls=%llu\n", (unsigned long long)total);
  printf("errors=%ld\n", t.errors);
  printf("seconds=%.2f\n", secs);
  printf("calls_per_s=%.0f\n", (double)total / secs);
  printf("p50_us=%ld\n", percentile(hist, total, 0.50));
  printf("p99_us=%ld\n", percentile(hist, total, 0.99));
  printf("p999_us=%ld\n", percentile(hist, total, 0.999));
  if (g_pid > 0) {
    printf("rss_start_kb=%ld\n", rss_start);
    printf("rss_10k_kb=%ld\n", g_rss_10k);
    printf("rss_200k_kb=%ld\n", g_rss_200k);
    if (g_rss_10k > 0 && g_rss_200k > 0)
      printf("rss_growth_pct=%.1f\n", 100.0 * (double)(g_rss_200k - g_rss_10k) / (double)g_rss_10k);
  }
  free(hist);
  return 0;
}
