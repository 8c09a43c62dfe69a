/* h1_test.c - request heads and bodies through gw_h1, whole and byte by byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h1.h"

static int failures;
#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      failures++;                                                                                  \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                         \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
    }                                                                                              \
  } while (0)

typedef struct {
  char body[256];
  size_t len;
} sink;

static void collect(void *ctx, const char *d, size_t n) {
  sink *s = ctx;
  if (s->len + n < sizeof s->body) memcpy(s->body + s->len, d, n);
  s->len += n;
}

typedef struct {
  gw_h1_status st;
  int done;
  size_t head_len;
  size_t body_used;
  sink body;
} result;

/* Runs `req` (n bytes) through a gw_h1, `step` bytes at a time (0 = all at
 * once), the body from what follows the head. */
static void run(const char *req, size_t n, size_t step, gw_h1 *h, result *out) {
  memset(out, 0, sizeof *out);
  gw_h1_begin(h);
  size_t avail = step == 0 ? n : (step < n ? step : n);
  for (;;) {
    size_t used = 0;
    out->st = gw_h1_feed_head(h, req, avail, &used);
    if (out->st != GW_H1_OK) return;
    if (h->head_done) {
      out->head_len = used;
      break;
    }
    if (avail == n) return; /* head incomplete */
    avail = step == 0 ? n : (avail + step < n ? avail + step : n);
  }
  if (!h->has_body) {
    out->done = 1;
    return;
  }
  size_t off = out->head_len;
  while (off <= n) {
    size_t k = step == 0 ? n - off : (step < n - off ? step : n - off);
    size_t used = 0;
    out->st = gw_h1_feed_body(h, req + off, k, &used, collect, &out->body);
    if (out->st != GW_H1_OK) return;
    off += used;
    if (h->msg_done) break;
    if (k == 0) return;
  }
  out->done = h->msg_done;
  out->body_used = off - out->head_len;
}

#define R(s) s, sizeof s - 1

static const struct {
  const char *name;
  const char *req;
  size_t len;
  gw_h1_status st;
  int done; /* the whole request was read */
  const char *method, *target, *body;
  size_t consumed; /* head + body bytes; the rest is the next request */
} cases[] = {
    {"get", R("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), GW_H1_OK, 1, "GET", "/healthz", "", 34},
    {"http10 no host", R("GET /a?b=1 HTTP/1.0\r\n\r\n"), GW_H1_OK, 1, "GET", "/a?b=1", "", 23},
    {"bare lf", R("GET / HTTP/1.1\nHost: x\n\n"), GW_H1_OK, 1, "GET", "/", "", 24},
    {"leading crlf", R("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), GW_H1_OK, 1, "GET", "/", "", 29},
    {"extension method", R("FOO /api/messages HTTP/1.1\r\nHost: x\r\n\r\n"), GW_H1_OK, 1, "FOO",
     "/api/messages", "", 39},
    {"connect", R("CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n"), GW_H1_OK, 1, "CONNECT", "/x", "", 32},
    {"lower-case method", R("get / HTTP/1.1\r\nHost: x\r\n\r\n"), GW_H1_OK, 1, "get", "/", "", 27},
    {"content-length body + pipelined",
     R("POST /m HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n"), GW_H1_OK,
     1, "POST", "/m", "hello", 53},
    {"chunked",
     R("POST /m HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
       "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nNEXT"),
     GW_H1_OK, 1, "POST", "/m", "abcde", 77},
    {"http/2.0", R("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), GW_H1_VERSION, 0, NULL, NULL, NULL, 0},
    {"http/9.9", R("GET / HTTP/9.9\r\nHost: x\r\n\r\n"), GW_H1_VERSION, 0, NULL, NULL, NULL, 0},
    {"http/1.2", R("GET / HTTP/1.2\r\nHost: x\r\n\r\n"), GW_H1_VERSION, 0, NULL, NULL, NULL, 0},
    {"expect other than 100-continue", R("GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n"),
     GW_H1_EXPECTATION, 0, NULL, NULL, NULL, 0},
    {"a second expect", R("POST /m HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nExpect: "
                          "x\r\nContent-Length: 1\r\n\r\nz"),
     GW_H1_EXPECTATION, 0, NULL, NULL, NULL, 0},
    {"expect on 1.0", R("GET / HTTP/1.0\r\nExpect: foo\r\n\r\n"), GW_H1_EXPECTATION, 0, NULL,
     NULL, NULL, 0},
    {"100-continue on 1.0 is ignored", R("GET /a HTTP/1.0\r\nExpect: 100-Continue\r\n\r\n"),
     GW_H1_OK, 1, "GET", "/a", "", 41},
    {"1.1 without host", R("GET / HTTP/1.1\r\n\r\n"), GW_H1_BAD_REQUEST, 0, NULL, NULL, NULL, 0},
    {"two hosts", R("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), GW_H1_BAD_REQUEST, 0, NULL,
     NULL, NULL, 0},
    {"no colon", R("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"), GW_H1_BAD_REQUEST, 0, NULL,
     NULL, NULL, 0},
    {"space in name", R("GET / HTTP/1.1\r\nHost: x\r\nX Y: 1\r\n\r\n"), GW_H1_BAD_REQUEST, 0, NULL,
     NULL, NULL, 0},
    {"nul in value", R("GET / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\0x\r\n\r\n"),
     GW_H1_BAD_REQUEST, 0, NULL, NULL, NULL, 0},
    {"ctl in value", R("GET / HTTP/1.1\r\nHost: x\r\nX: a\x01\r\n\r\n"), GW_H1_BAD_REQUEST, 0, NULL,
     NULL, NULL, 0},
    {"obs-fold", R("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"), GW_H1_BAD_REQUEST, 0, NULL,
     NULL, NULL, 0},
    {"nul in target", R("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n"), GW_H1_BAD_REQUEST, 0, NULL, NULL,
     NULL, 0},
    {"cl negative", R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
     GW_H1_BAD_REQUEST, 0, NULL, NULL, NULL, 0},
    {"cl hex", R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x21\r\n\r\n"), GW_H1_BAD_REQUEST,
     0, NULL, NULL, NULL, 0},
    {"cl overflow", R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"),
     GW_H1_BAD_REQUEST, 0, NULL, NULL, NULL, 0},
    {"two cl", R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
     GW_H1_BAD_REQUEST, 0, NULL, NULL, NULL, 0},
    {"cl + te",
     R("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
     GW_H1_BAD_REQUEST, 0, NULL, NULL, NULL, 0},
    {"te identity", R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n"),
     GW_H1_BAD_REQUEST, 0, NULL, NULL, NULL, 0},
    {"te gzip, chunked",
     R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), GW_H1_BAD_REQUEST,
     0, NULL, NULL, NULL, 0},
    {"two te",
     R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
       "chunked\r\n\r\n"),
     GW_H1_BAD_REQUEST, 0, NULL, NULL, NULL, 0},
    {"chunk size garbage",
     R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
     GW_H1_BAD_REQUEST, 0, NULL, NULL, NULL, 0},
    {"chunk size overflow",
     R("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
       "chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n"),
     GW_H1_BAD_REQUEST, 0, NULL, NULL, NULL, 0},
    {"garbage line", R("HELLO\r\nHost: x\r\n\r\n"), GW_H1_BAD_REQUEST, 0, NULL, NULL, NULL, 0},
    {"tls hello", R("\x16\x03\x01\x00\xa5\x01\x00\x00\r\n\r\n"), GW_H1_BAD_REQUEST, 0, NULL, NULL,
     NULL, 0},
    {"method too long", R("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGH / HTTP/1.1\r\n\r\n"),
     GW_H1_BAD_REQUEST, 0, NULL, NULL, NULL, 0},
    {"incomplete", R("GET /healthz HTTP/1.1\r\nHost: x\r\n"), GW_H1_OK, 0, NULL, NULL, NULL, 0},
};

static void test_cases(void) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    for (size_t step = 0; step < 3; step++) { /* all at once, byte by byte, two at a time */
      gw_h1 h;
      result r;
      run(cases[i].req, cases[i].len, step, &h, &r);
      CHECK(r.st == cases[i].st, "%s/%zu: status %d want %d", cases[i].name, step, r.st,
            cases[i].st);
      CHECK(r.done == cases[i].done, "%s/%zu: done %d", cases[i].name, step, r.done);
      if (!cases[i].done || r.st != GW_H1_OK) continue;
      CHECK(strcmp(h.method, cases[i].method) == 0, "%s/%zu: method %s", cases[i].name, step,
            h.method);
      CHECK(h.target_len == strlen(cases[i].target) &&
                memcmp(h.target, cases[i].target, h.target_len) == 0,
            "%s/%zu: target %.*s", cases[i].name, step, (int)h.target_len, h.target);
      CHECK(r.body.len == strlen(cases[i].body) &&
                memcmp(r.body.body, cases[i].body, r.body.len) == 0,
            "%s/%zu: body %.*s", cases[i].name, step, (int)r.body.len, r.body.body);
      CHECK(r.head_len + r.body_used == cases[i].consumed, "%s/%zu: consumed %zu want %zu",
            cases[i].name, step, r.head_len + r.body_used, cases[i].consumed);
    }
  }
}

static void test_headers(void) {
  static const char req[] = "GET /x HTTP/1.1\r\nHost: h\r\nX-Trail: v  \r\nX-Empty:\r\n"
                            "Expect: 100-continue\r\nConnection: close\r\n\r\n";
  gw_h1 h;
  result r;
  run(req, sizeof req - 1, 0, &h, &r);
  CHECK(r.st == GW_H1_OK && r.done, "headers: parsed");
  size_t n = 99;
  const char *v = gw_h1_header(&h, "x-trail", &n);
  CHECK(v && n == 1 && v[0] == 'v', "trailing blanks trimmed: %zu", n);
  v = gw_h1_header(&h, "X-Empty", &n);
  CHECK(v && n == 0, "empty value");
  CHECK(gw_h1_header(&h, "Missing", &n) == NULL, "missing");
  CHECK(h.expect_continue == 1, "expect");
  CHECK(h.keep_alive == 0, "connection: close");
  static const char ka[] = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  run(ka, sizeof ka - 1, 0, &h, &r);
  CHECK(r.st == GW_H1_OK && h.keep_alive == 1 && h.expect_continue == 0, "1.0 keep-alive");
  run("GET / HTTP/1.0\r\n\r\n", 18, 0, &h, &r);
  CHECK(r.st == GW_H1_OK && h.keep_alive == 0, "1.0 closes");
  run("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n", 54, 0, &h, &r);
  CHECK(r.st == GW_H1_OK && h.head_done && h.has_body && h.content_length == 1048576 && !h.chunked,
        "announced length %llu", (unsigned long long)h.content_length);
}

static void test_limits(void) {
  size_t n = GW_H1_HEAD_MAX + 100;
  char *big = malloc(n);
  gw_h1 h;
  size_t used;
  /* An over-long target: 414. */
  memcpy(big, "GET /", 5);
  memset(big + 5, 'u', n - 5);
  gw_h1_begin(&h);
  CHECK(gw_h1_feed_head(&h, big, GW_H1_HEAD_MAX, &used) == GW_H1_URI_TOO_LONG, "414");
  /* An over-long header: 431. */
  static const char line[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
  memcpy(big, line, sizeof line - 1);
  memset(big + sizeof line - 1, 'p', n - (sizeof line - 1));
  gw_h1_begin(&h);
  CHECK(gw_h1_feed_head(&h, big, GW_H1_HEAD_MAX, &used) == GW_H1_HEAD_TOO_LARGE, "431");
  /* Too many header lines: 431. */
  size_t k = (size_t)snprintf(big, n, "GET / HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < GW_H1_HEADERS_MAX; i++)
    k += (size_t)snprintf(big + k, n - k, "X-%d: 1\r\n", i);
  k += (size_t)snprintf(big + k, n - k, "\r\n");
  gw_h1_begin(&h);
  CHECK(gw_h1_feed_head(&h, big, k, &used) == GW_H1_HEAD_TOO_LARGE, "too many lines");
  /* ... but a syntax error after them is a 400, at once or byte by byte. */
  k -= 2;
  k += (size_t)snprintf(big + k, n - k, "NoColon\r\n\r\n");
  for (size_t step = 1; step <= k; step = step == 1 ? k : k + 1) {
    gw_h1_status st = GW_H1_OK;
    gw_h1_begin(&h);
    for (size_t avail = step; st == GW_H1_OK && !h.head_done; avail += step) {
      st = gw_h1_feed_head(&h, big, avail < k ? avail : k, &used);
      if (avail >= k) break;
    }
    CHECK(st == GW_H1_BAD_REQUEST, "too many lines, then a bad one (step %zu): %d", step, st);
  }
  /* A complete head behind more than GW_H1_HEAD_MAX bytes is still too large. */
  memcpy(big, line, sizeof line - 1);
  memset(big + sizeof line - 1, 'p', n - (sizeof line - 1));
  memcpy(big + n - 4, "\r\n\r\n", 4);
  gw_h1_begin(&h);
  CHECK(gw_h1_feed_head(&h, big, n, &used) == GW_H1_HEAD_TOO_LARGE, "head over the cap");
  /* A method that never ends: 414 once the head is full (no line yet). */
  memset(big, 'A', n);
  gw_h1_begin(&h);
  CHECK(gw_h1_feed_head(&h, big, 20, &used) == GW_H1_OK && !h.head_done, "method so far");
  free(big);

  static const struct {
    gw_h1_status st;
    int http;
    const char *code;
  } v[] = {{GW_H1_BAD_REQUEST, 400, "bad_request"},
           {GW_H1_URI_TOO_LONG, 414, "uri_too_long"},
           {GW_H1_HEAD_TOO_LARGE, 431, "request_header_fields_too_large"},
           {GW_H1_VERSION, 505, "http_version_not_supported"},
           {GW_H1_EXPECTATION, 417, "expectation_failed"}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    int s = 0;
    const char *c = NULL;
    gw_h1_verdict(v[i].st, &s, &c);
    CHECK(s == v[i].http && strcmp(c, v[i].code) == 0, "verdict %d: %d %s", v[i].st, s, c);
  }
}

int main(void) {
  test_cases();
  test_headers();
  test_limits();
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("h1_test: all checks passed\n");
  return 0;
}
