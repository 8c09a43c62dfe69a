/* users_bench - load client for users-svc: GetUser by handle.
 *
 *   users_bench -a 127.0.0.1:50051 -c THREADS -n CALLS [-T MAX_SECONDS]
 *               [-p USERS_SVC_PID] [-h HANDLE]
 *
 * Each thread has its own channel and makes unary calls back to back until
 * CALLS calls were made in all (or MAX_SECONDS passed). Prints key=value
 * lines: calls, errors, seconds, calls_per_s, p50_us, p99_us, p999_us and,
 * with -p, the server's VmRSS after 10,000 and after 200,000 calls. Not a
 * test: tests/bench/users.sh runs it beside pgbench.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cruddur/rpc_client.h"
#include "cruddur/ts.h"
#include "cruddur/users/v1/users.pb-c.h"

#define HIST_US 100000 /* 1 us buckets up to 100 ms; beyond goes to the last */
#define WARMUP 2000

static const char *g_addr = "127.0.0.1:50051";
static const char *g_handle = "andrewbrown";
static long g_calls = 200000;
static int g_threads = 4;
static int g_seconds = 120;
static int g_pid = 0;
static atomic_long g_next;
static atomic_long g_errors;
static atomic_long g_done;
static long g_rss_10k = -1, g_rss_200k = -1;
static int64_t g_stop_us;

typedef struct {
  uint32_t *hist;
  long calls;
} worker;

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

static int one_call(rpc_channel *ch) {
  Cruddur__Users__V1__GetUserRequest req = CRUDDUR__USERS__V1__GET_USER_REQUEST__INIT;
  req.key_case = CRUDDUR__USERS__V1__GET_USER_REQUEST__KEY_HANDLE;
  req.handle = (char *)g_handle;
  ProtobufCMessage *resp = NULL;
  grpc_status_code st = rpc_unary(ch, &cruddur__users__v1__users_service__descriptor, "GetUser",
                                  &req.base, &resp, 2000, NULL, NULL);
  if (resp != NULL) protobuf_c_message_free_unpacked(resp, NULL);
  return st == GRPC_STATUS_OK ? 0 : -1;
}

static void *run(void *arg) {
  worker *w = arg;
  rpc_channel *ch = rpc_channel_open(g_addr);
  for (;;) {
    long i = atomic_fetch_add(&g_next, 1);
    if (i >= g_calls || ts_mono_us() >= g_stop_us) break;
    int64_t t0 = ts_mono_us();
    if (one_call(ch) != 0) atomic_fetch_add(&g_errors, 1);
    int64_t us = ts_mono_us() - t0;
    w->hist[us < HIST_US ? us : HIST_US - 1]++;
    w->calls++;
    long done = atomic_fetch_add(&g_done, 1) + 1;
    if (g_pid > 0 && done == 10000) g_rss_10k = rss_kb(g_pid);
    if (g_pid > 0 && done == 200000) g_rss_200k = rss_kb(g_pid);
  }
  rpc_channel_close(ch);
  return NULL;
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
      g_threads = atoi(optarg);
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
      fprintf(stderr, "usage: users_bench -a ADDR -c THREADS -n CALLS [-T SECONDS] [-p PID] "
                      "[-h HANDLE]\n");
      return 2;
    }
  }
  if (g_threads < 1 || g_threads > 256 || g_calls < 1) return 2;

  /* Warm up: connections, prepared statements, caches. */
  rpc_channel *ch = rpc_channel_open(g_addr);
  for (int i = 0; i < WARMUP; i++) {
    if (one_call(ch) != 0 && i == 0) {
      fprintf(stderr, "users_bench: GetUser(%s) on %s fails\n", g_handle, g_addr);
      rpc_channel_close(ch);
      return 1;
    }
  }
  rpc_channel_close(ch);
  long rss_start = g_pid > 0 ? rss_kb(g_pid) : -1;

  worker *w = calloc((size_t)g_threads, sizeof *w);
  pthread_t *t = calloc((size_t)g_threads, sizeof *t);
  int64_t t0 = ts_mono_us();
  g_stop_us = t0 + (int64_t)g_seconds * 1000000;
  for (int i = 0; i < g_threads; i++) {
    w[i].hist = calloc(HIST_US, sizeof *w[i].hist);
    pthread_create(&t[i], NULL, run, &w[i]);
  }
  for (int i = 0; i < g_threads; i++)
    pthread_join(t[i], NULL);
  double secs = (double)(ts_mono_us() - t0) / 1e6;

  uint64_t *hist = calloc(HIST_US, sizeof *hist);
  uint64_t total = 0;
  for (int i = 0; i < g_threads; i++) {
    for (long k = 0; k < HIST_US; k++)
      hist[k] += w[i].hist[k];
    total += (uint64_t)w[i].calls;
    free(w[i].hist);
  }
  printf("threads=%d\n", g_threads);
  printf("calls=%llu\n", (unsigned long long)total);
  printf("errors=%ld\n", atomic_load(&g_errors));
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
  free(w);
  free(t);
  return 0;
}
