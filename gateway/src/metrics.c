/* metrics.c - request and upstream figures for /metrics. */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Statuses we count by name; anything else lands in "other". */
static const int statuses[] = {200, 204, 400, 401, 403, 404, 405, 408, 409, 413,
                               414, 415, 417, 422, 429, 431, 500, 502, 503, 504, 505};
#define N_STATUS (sizeof statuses / sizeof statuses[0])
/* Histogram upper bounds in microseconds (rendered in seconds). */
static const int64_t bounds_us[] = {250,   500,    1000,   2500,   5000,    10000,  25000,
                                    50000, 100000, 250000, 500000, 1000000, 2500000};
#define N_BUCKET (sizeof bounds_us / sizeof bounds_us[0])

typedef struct hist {
  _Atomic uint64_t b[N_BUCKET]; /* cumulative on render, per-bucket here */
  _Atomic uint64_t count;
  _Atomic uint64_t sum_us;
} hist;

static _Atomic uint64_t req_count[GW_R_STATIC + 1][N_STATUS + 1];
static hist req_hist[GW_R_STATIC + 1];
static _Atomic uint64_t up_count[GW_UP_COUNT][17];
static hist up_hist[GW_UP_COUNT];
static _Atomic uint64_t ucache[2];
static _Atomic uint64_t hcache[2];
static _Atomic uint64_t limited[GW_LIMIT_COUNT];
static const char *const limit_names[GW_LIMIT_COUNT] = {"sends", "starts", "user_short"};

static const char *const up_names[GW_UP_COUNT] = {
    "users.GetUser",          "messages.ListMessageGroups",  "messages.ListMessages",
    "messages.CreateMessage", "messages.CreateMessageGroup", "health.Check"};
static const char *const grpc_names[17] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

static void hist_add(hist *h, int64_t us) {
  if (us < 0) us = 0;
  for (size_t i = 0; i < N_BUCKET; i++) {
    if (us <= bounds_us[i]) {
      atomic_fetch_add_explicit(&h->b[i], 1, memory_order_relaxed);
      break;
    }
  }
  atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us, memory_order_relaxed);
}

void gw_metrics_request(gw_route_id route, int status, int64_t duration_us) {
  size_t s = N_STATUS;
  if ((int)route < 0 || route > GW_R_STATIC) route = GW_R_NONE;
  for (size_t i = 0; i < N_STATUS; i++)
    if (statuses[i] == status) s = i;
  atomic_fetch_add_explicit(&req_count[route][s], 1, memory_order_relaxed);
  hist_add(&req_hist[route], duration_us);
}

void gw_metrics_upstream(gw_upstream_method m, int grpc_code, int64_t duration_us) {
  if ((int)m < 0 || m >= GW_UP_COUNT) return;
  if (grpc_code < 0 || grpc_code > 16) grpc_code = 2; /* UNKNOWN */
  atomic_fetch_add_explicit(&up_count[m][grpc_code], 1, memory_order_relaxed);
  hist_add(&up_hist[m], duration_us);
}

void gw_metrics_user_cache(int hit) {
  atomic_fetch_add_explicit(&ucache[hit ? 1 : 0], 1, memory_order_relaxed);
}

void gw_metrics_rate_limited(gw_limit l) {
  if ((int)l >= 0 && l < GW_LIMIT_COUNT)
    atomic_fetch_add_explicit(&limited[l], 1, memory_order_relaxed);
}

void gw_metrics_handle_cache(int hit) {
  atomic_fetch_add_explicit(&hcache[hit ? 1 : 0], 1, memory_order_relaxed);
}

/* A bounded text buffer: output past the cap is an error, not a realloc storm. */
typedef struct buf {
  char *p;
  size_t len, cap;
  int failed;
} buf;
#define METRICS_MAX (1u << 20)

static void bprintf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(buf *b, const char *fmt, ...) {
  if (b->failed) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->failed = 1;
      return;
    }
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t ncap = b->cap * 2;
    if (ncap > METRICS_MAX) {
      b->failed = 1;
      return;
    }
    char *np = realloc(b->p, ncap);
    if (np == NULL) {
      b->failed = 1;
      return;
    }
    b->p = np;
    b->cap = ncap;
  }
}

static uint64_t ld(_Atomic uint64_t *v) {
  return atomic_load_explicit(v, memory_order_relaxed);
}

static void render_hist(buf *b, const char *name, const char *label, const char *value, hist *h) {
  uint64_t cum = 0;
  for (size_t i = 0; i < N_BUCKET; i++) {
    cum += ld(&h->b[i]);
    bprintf(b, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", name, label, value,
            (double)bounds_us[i] / 1e6, (unsigned long long)cum);
  }
  uint64_t count = ld(&h->count);
  bprintf(b, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", name, label, value,
          (unsigned long long)count);
  bprintf(b, "%s_sum{%s=\"%s\"} %.6f\n", name, label, value, (double)ld(&h->sum_us) / 1e6);
  bprintf(b, "%s_count{%s=\"%s\"} %llu\n", name, label, value, (unsigned long long)count);
}

/* The abuse limits: refusals always, table figures when the app gave them. */
static void render_limits(buf *b, const gw_metrics_extra *x) {
  bprintf(b, "# HELP gateway_rate_limited_total Requests refused with 429, by limit.\n"
             "# TYPE gateway_rate_limited_total counter\n");
  for (int l = 0; l < GW_LIMIT_COUNT; l++)
    bprintf(b, "gateway_rate_limited_total{limit=\"%s\"} %llu\n", limit_names[l],
            (unsigned long long)ld(&limited[l]));
  if (x == NULL) return;
  bprintf(b, "# HELP gateway_rate_limit_entries Keys held in each limit's table.\n"
             "# TYPE gateway_rate_limit_entries gauge\n");
  for (int l = 0; l < GW_LIMIT_COUNT; l++)
    bprintf(b, "gateway_rate_limit_entries{limit=\"%s\"} %llu\n", limit_names[l],
            (unsigned long long)x->limit_entries[l]);
  bprintf(b, "# HELP gateway_rate_limit_evictions_total Live buckets pushed out of a full "
             "table (raise its size when this grows).\n"
             "# TYPE gateway_rate_limit_evictions_total counter\n");
  for (int l = 0; l < GW_LIMIT_COUNT; l++)
    bprintf(b, "gateway_rate_limit_evictions_total{limit=\"%s\"} %llu\n", limit_names[l],
            (unsigned long long)x->limit_evictions[l]);
}

static const char *route_label(const gw_route *rt, int r) {
  if (r < GW_R_COUNT) return rt[r].label;
  return r == GW_R_STATIC ? "static" : "unmatched";
}

char *gw_metrics_render(const gw_metrics_extra *x) {
  buf b = {malloc(16384), 0, 16384, 0};
  if (b.p == NULL) return NULL;
  b.p[0] = '\0';
  const gw_route *rt = gw_route_table();
  bprintf(&b, "# HELP gateway_http_requests_total HTTP requests by route and status.\n"
              "# TYPE gateway_http_requests_total counter\n");
  for (int r = 0; r <= GW_R_STATIC; r++) {
    const char *label = route_label(rt, r);
    for (size_t s = 0; s <= N_STATUS; s++) {
      uint64_t v = ld(&req_count[r][s]);
      if (v == 0) continue;
      if (s < N_STATUS)
        bprintf(&b, "gateway_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", label,
                statuses[s], (unsigned long long)v);
      else
        bprintf(&b, "gateway_http_requests_total{route=\"%s\",status=\"other\"} %llu\n", label,
                (unsigned long long)v);
    }
  }
  bprintf(&b, "# HELP gateway_http_request_duration_seconds Time from request start to response.\n"
              "# TYPE gateway_http_request_duration_seconds histogram\n");
  for (int r = 0; r <= GW_R_STATIC; r++)
    render_hist(&b, "gateway_http_request_duration_seconds", "route", route_label(rt, r),
                &req_hist[r]);
  bprintf(&b, "# HELP gateway_upstream_requests_total Upstream gRPC calls by method and status.\n"
              "# TYPE gateway_upstream_requests_total counter\n");
  for (int m = 0; m < GW_UP_COUNT; m++)
    for (int c = 0; c < 17; c++) {
      uint64_t v = ld(&up_count[m][c]);
      if (v == 0 && c != 0) continue;
      bprintf(&b, "gateway_upstream_requests_total{method=\"%s\",code=\"%s\"} %llu\n", up_names[m],
              grpc_names[c], (unsigned long long)v);
    }
  bprintf(&b, "# HELP gateway_upstream_errors_total Upstream gRPC calls that did not end OK.\n"
              "# TYPE gateway_upstream_errors_total counter\n");
  for (int m = 0; m < GW_UP_COUNT; m++) {
    uint64_t e = 0;
    for (int c = 1; c < 17; c++)
      e += ld(&up_count[m][c]);
    bprintf(&b, "gateway_upstream_errors_total{method=\"%s\"} %llu\n", up_names[m],
            (unsigned long long)e);
  }
  bprintf(&b, "# HELP gateway_upstream_duration_seconds Upstream gRPC call latency.\n"
              "# TYPE gateway_upstream_duration_seconds histogram\n");
  for (int m = 0; m < GW_UP_COUNT; m++)
    render_hist(&b, "gateway_upstream_duration_seconds", "method", up_names[m], &up_hist[m]);
  bprintf(&b,
          "# HELP gateway_user_cache_requests_total sub->user cache lookups.\n"
          "# TYPE gateway_user_cache_requests_total counter\n"
          "gateway_user_cache_requests_total{result=\"hit\"} %llu\n"
          "gateway_user_cache_requests_total{result=\"miss\"} %llu\n"
          "# HELP gateway_handle_cache_requests_total handle->user cache lookups.\n"
          "# TYPE gateway_handle_cache_requests_total counter\n"
          "gateway_handle_cache_requests_total{result=\"hit\"} %llu\n"
          "gateway_handle_cache_requests_total{result=\"miss\"} %llu\n",
          (unsigned long long)ld(&ucache[1]), (unsigned long long)ld(&ucache[0]),
          (unsigned long long)ld(&hcache[1]), (unsigned long long)ld(&hcache[0]));
  if (x != NULL) {
    bprintf(&b,
            "# HELP gateway_user_cache_entries Users held in the sub->user cache.\n"
            "# TYPE gateway_user_cache_entries gauge\n"
            "gateway_user_cache_entries %llu\n"
            "# HELP gateway_handle_cache_entries Users held in the handle->user cache.\n"
            "# TYPE gateway_handle_cache_entries gauge\n"
            "gateway_handle_cache_entries %llu\n"
            "# HELP gateway_token_cache_requests_total Verified-token cache lookups.\n"
            "# TYPE gateway_token_cache_requests_total counter\n"
            "gateway_token_cache_requests_total{result=\"hit\"} %llu\n"
            "gateway_token_cache_requests_total{result=\"miss\"} %llu\n"
            "# HELP gateway_token_cache_entries Verified tokens held in the cache.\n"
            "# TYPE gateway_token_cache_entries gauge\n"
            "gateway_token_cache_entries %llu\n"
            "# HELP gateway_jwks_fetches_total JWKS downloads.\n"
            "# TYPE gateway_jwks_fetches_total counter\n"
            "gateway_jwks_fetches_total %llu\n"
            "# HELP gateway_jwks_failures_total JWKS downloads that failed.\n"
            "# TYPE gateway_jwks_failures_total counter\n"
            "gateway_jwks_failures_total %llu\n"
            "# HELP gateway_auth_rejected_total Tokens rejected.\n"
            "# TYPE gateway_auth_rejected_total counter\n"
            "gateway_auth_rejected_total %llu\n"
            "# HELP gateway_http_in_flight Requests being answered now.\n"
            "# TYPE gateway_http_in_flight gauge\n"
            "gateway_http_in_flight %llu\n",
            (unsigned long long)x->user_cache_entries, (unsigned long long)x->handle_cache_entries,
            (unsigned long long)x->token_cache_hits, (unsigned long long)x->token_cache_misses,
            (unsigned long long)x->token_cache_entries, (unsigned long long)x->jwks_fetches,
            (unsigned long long)x->jwks_failures, (unsigned long long)x->auth_rejected,
            (unsigned long long)x->in_flight);
    bprintf(&b,
            "# HELP gateway_sse_streams Open GET /api/events streams (handshakes included).\n"
            "# TYPE gateway_sse_streams gauge\n"
            "gateway_sse_streams %llu\n"
            "# HELP gateway_sse_watches Watches of event streams on the WatchMany call.\n"
            "# TYPE gateway_sse_watches gauge\n"
            "gateway_sse_watches %llu\n"
            "# HELP gateway_sse_upstream_calls Open messages-svc WatchMany calls (0 or 1).\n"
            "# TYPE gateway_sse_upstream_calls gauge\n"
            "gateway_sse_upstream_calls %llu\n"
            "# HELP gateway_sse_upstream_calls_total messages-svc WatchMany calls opened.\n"
            "# TYPE gateway_sse_upstream_calls_total counter\n"
            "gateway_sse_upstream_calls_total %llu\n",
            (unsigned long long)x->sse_streams, (unsigned long long)x->sse_watches,
            (unsigned long long)x->sse_call_open, (unsigned long long)x->sse_calls_opened);
  }
  render_limits(&b, x);
  if (b.failed) {
    free(b.p);
    return NULL;
  }
  return b.p;
}
