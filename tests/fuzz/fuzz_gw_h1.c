/* fuzz_gw_h1.c - the gateway's request reading (h1.c on http-parser): the
 * bytes a client sends on a connection.
 *
 * Input: byte 0 picks the feeding step (1..16 bytes at a time, or all at
 * once), the rest is the stream. The request is read as server.c reads it
 * (growing head, then the body behind it), once whole and once in steps.
 * Invariants: both readings give the same verdict, head length, method,
 * target, header count and body bytes; an accepted head has a 1..32 byte
 * token method, version 1.0 or 1.1, token field names, values without NUL,
 * CR or LF and without trailing blanks, exactly one Host on HTTP/1.1, never
 * Content-Length beside Transfer-Encoding; the head never exceeds
 * GW_H1_HEAD_MAX; a refusal maps to 400, 414, 417, 431 or 505. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
  uint8_t body[4096];
  size_t len;
} sink;

static void collect(void *ctx, const char *d, size_t n) {
  sink *s = ctx;
  if (s->len + n <= sizeof s->body) memcpy(s->body + s->len, d, n);
  s->len += n;
}

typedef struct {
  gw_h1_status st;
  int head_done, msg_done;
  size_t head_len, consumed;
  sink body;
} run_out;

static int tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_head(const gw_h1 *h) {
  size_t ml = strlen(h->method);
  if (ml < 1 || ml > GW_H1_METHOD_MAX) abort();
  for (size_t i = 0; i < ml; i++)
    if (!tchar((unsigned char)h->method[i])) abort();
  if (h->major != 1 || h->minor > 1) abort();
  unsigned host = 0, cl = 0, te = 0;
  for (size_t i = 0; i < h->n_fields; i++) {
    const gw_h1_field *f = &h->fields[i];
    if (f->name_len == 0) abort();
    for (size_t k = 0; k < f->name_len; k++)
      if (!tchar((unsigned char)f->name[k])) abort();
    for (size_t k = 0; k < f->value_len; k++)
      if (f->value[k] == '\0' || f->value[k] == '\r' || f->value[k] == '\n') abort();
    if (f->value_len > 0 &&
        (f->value[f->value_len - 1] == ' ' || f->value[f->value_len - 1] == '\t'))
      abort();
    if (f->name_len == 4 && strncasecmp(f->name, "host", 4) == 0) host++;
    if (f->name_len == 14 && strncasecmp(f->name, "content-length", 14) == 0) cl++;
    if (f->name_len == 17 && strncasecmp(f->name, "transfer-encoding", 17) == 0) te++;
  }
  if (h->minor == 1 && host != 1) abort();
  if (host > 1 || cl > 1 || te > 1 || (cl && te)) abort();
  if (h->chunked != (te == 1)) abort();
  if (h->has_body != (h->chunked || h->content_length > 0)) abort();
}

static void run(const char *buf, size_t n, size_t step, gw_h1 *h, run_out *o) {
  memset(o, 0, sizeof *o);
  gw_h1_begin(h);
  size_t avail = step == 0 || step > n ? n : step;
  for (;;) {
    size_t used = 0;
    o->st = gw_h1_feed_head(h, buf, avail, &used);
    if (o->st != GW_H1_OK) return;
    if (h->head_done) {
      if (used > avail || used > GW_H1_HEAD_MAX) abort();
      o->head_len = used;
      break;
    }
    if (avail == n) return;
    avail = step == 0 || avail + step > n ? n : avail + step;
  }
  o->head_done = 1;
  check_head(h);
  size_t off = o->head_len;
  if (!h->has_body) {
    o->consumed = off;
    return;
  }
  while (off < n) {
    size_t k = step == 0 || step > n - off ? n - off : step;
    size_t used = 0;
    o->st = gw_h1_feed_body(h, buf + off, k, &used, collect, &o->body);
    if (o->st != GW_H1_OK) return;
    if (used > k) abort();
    off += used;
    if (h->msg_done) break;
    if (used < k) abort(); /* only the message end stops short */
  }
  o->msg_done = h->msg_done;
  o->consumed = off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > GW_H1_HEAD_MAX + 4096) return 0;
  size_t step = data[0] % 17; /* 0 = at once */
  const char *buf = (const char *)data + 1;
  size_t n = size - 1;
  static gw_h1 a, b;
  run_out ra, rb;
  run(buf, n, 0, &a, &ra);
  run(buf, n, step == 0 ? 1 : step, &b, &rb);
  if (ra.st != rb.st || ra.head_done != rb.head_done) abort();
  if (ra.st != GW_H1_OK) {
    int status = 0;
    const char *code = NULL;
    gw_h1_verdict(ra.st, &status, &code);
    if (code == NULL || (status != 400 && status != 414 && status != 417 && status != 431 &&
                             status != 505)) abort();
    return 0;
  }
  if (!ra.head_done) return 0;
  if (ra.head_len != rb.head_len || strcmp(a.method, b.method) != 0 ||
      a.target_len != b.target_len || a.n_fields != b.n_fields)
    abort();
  if (a.target_len > 0 && memcmp(a.target, b.target, a.target_len) != 0) abort();
  if (ra.msg_done != rb.msg_done) abort();
  if (ra.msg_done && (ra.consumed != rb.consumed || ra.body.len != rb.body.len ||
                      (ra.body.len <= sizeof ra.body.body &&
                       memcmp(ra.body.body, rb.body.body, ra.body.len) != 0)))
    abort();
  return 0;
}
