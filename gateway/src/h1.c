/* h1.c - see h1.h. http-parser does the parsing; here: caps, framing rules,
 * versions, extension methods, verdicts. */
#include "h1.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

/* ---- callbacks ----------------------------------------------------------- */

/* RFC 9110 5.6.2 token characters (methods, field names). */
static int h1_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static gw_h1 *h1_of(http_parser *p) {
  return p->data;
}

/* A callback's refusal: remembered, then surfaces as an HPE_CB_* error. */
static int h1_fail(gw_h1 *h, gw_h1_status st) {
  if (h->err == GW_H1_OK) h->err = st;
  return -1;
}

/* Views only grow at their end: every piece of one element follows the
 * previous one in the caller's buffer (the head never moves). */
static int h1_on_url(http_parser *p, const char *at, size_t len) {
  gw_h1 *h = h1_of(p);
  if (h->target == NULL) h->target = at;
  h->target_len = (size_t)(at + len - h->target);
  return 0;
}

static int h1_on_field(http_parser *p, const char *at, size_t len) {
  gw_h1 *h = h1_of(p);
  if (h->last != 1) {
    h->last = 1;
    /* Too many lines: dropped and refused at the head's end, so a syntax
     * error further on answers 400 however the bytes were split. */
    h->dropping = h->n_fields == GW_H1_HEADERS_MAX;
    if (h->dropping) {
      h->dropped = 1;
      return 0;
    }
    gw_h1_field *f = &h->fields[h->n_fields++];
    f->name = at;
    f->value = "";
    f->value_len = 0;
  }
  if (h->dropping) return 0;
  gw_h1_field *f = &h->fields[h->n_fields - 1];
  f->name_len = (size_t)(at + len - f->name);
  return 0;
}

static int h1_on_value(http_parser *p, const char *at, size_t len) {
  gw_h1 *h = h1_of(p);
  if (h->dropping) {
    h->last = 2;
    return 0;
  }
  gw_h1_field *f = &h->fields[h->n_fields - 1];
  if (h->last != 2) {
    f->value = at;
    f->value_len = len;
    h->last = 2;
    return 0;
  }
  /* A second piece that does not follow the first is a folded line
   * (obs-fold): RFC 9112 5.2 lets a server refuse it, and we do rather than
   * guess how a proxy in front joined it. */
  if (at != f->value + f->value_len) return h1_fail(h, GW_H1_BAD_REQUEST);
  f->value_len += len;
  return 0;
}

static int h1_is(const gw_h1_field *f, const char *name) {
  size_t n = strlen(name);
  return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

static int h1_value_is(const gw_h1_field *f, const char *v) {
  size_t n = strlen(v);
  return f->value_len == n && strncasecmp(f->value, v, n) == 0;
}

/* The head is in: the rules http-parser leaves to us (RFC 9112 3.2, 6.1,
 * 6.3). Two lengths, or a length beside chunked, are how requests are
 * smuggled past a proxy that reads the other one. */
static int h1_on_headers_complete(http_parser *p) {
  gw_h1 *h = h1_of(p);
  h->major = p->http_major;
  h->minor = p->http_minor;
  if (h->dropped) return h1_fail(h, GW_H1_HEAD_TOO_LARGE);
  if (h->major != 1 || h->minor > 1) return h1_fail(h, GW_H1_VERSION);
  unsigned host = 0, clen = 0, te = 0;
  int te_chunked = 0, expect_unmet = 0;
  for (size_t i = 0; i < h->n_fields; i++) {
    gw_h1_field *f = &h->fields[i];
    while (f->value_len > 0 &&
           (f->value[f->value_len - 1] == ' ' || f->value[f->value_len - 1] == '\t'))
      f->value_len--;
    /* http-parser refuses NUL in values; checked again with the explicit
     * length so no later C-string use can cut a value short. */
    if (memchr(f->value, '\0', f->value_len) != NULL) return h1_fail(h, GW_H1_BAD_REQUEST);
    /* Built without HTTP_PARSER_STRICT, http-parser lets a space into a
     * field name ("X Bad: 1"); a name is a token (RFC 9110 5.1). */
    for (size_t k = 0; k < f->name_len; k++)
      if (!h1_tchar((unsigned char)f->name[k])) return h1_fail(h, GW_H1_BAD_REQUEST);
    if (h1_is(f, "Host")) {
      host++;
    } else if (h1_is(f, "Content-Length")) {
      clen++;
    } else if (h1_is(f, "Transfer-Encoding")) {
      te++;
      te_chunked = h1_value_is(f, "chunked");
    } else if (h1_is(f, "Expect")) {
      /* 100-continue is the only expectation there is (RFC 9110 10.1.1);
       * in an HTTP/1.0 request it is ignored, anything else is refused. */
      if (!h1_value_is(f, "100-continue"))
        expect_unmet = 1;
      else
        h->expect_continue = h->minor == 1;
    }
  }
  if (host > 1 || (host == 0 && h->minor == 1)) return h1_fail(h, GW_H1_BAD_REQUEST);
  if (clen > 1 || (te > 0 && (te > 1 || !te_chunked || clen > 0)))
    return h1_fail(h, GW_H1_BAD_REQUEST);
  if (expect_unmet) return h1_fail(h, GW_H1_EXPECTATION);
  h->chunked = te_chunked;
  h->content_length = clen > 0 ? p->content_length : 0;
  h->has_body = h->chunked || h->content_length > 0;
  h->keep_alive = http_should_keep_alive(p);
  h->head_done = 1;
  /* Stop here: the caller judges the head (auth, sizes) before any body
   * byte is read. */
  http_parser_pause(p, 1);
  return 0;
}

static int h1_on_body(http_parser *p, const char *at, size_t len) {
  gw_h1 *h = h1_of(p);
  if (h->body_fn != NULL) h->body_fn(h->body_ctx, at, len);
  return 0;
}

static int h1_on_message_complete(http_parser *p) {
  gw_h1 *h = h1_of(p);
  h->msg_done = 1;
  http_parser_pause(p, 1); /* whatever follows is the next request */
  return 0;
}

static const http_parser_settings h1_settings = {
    .on_url = h1_on_url,
    .on_header_field = h1_on_field,
    .on_header_value = h1_on_value,
    .on_headers_complete = h1_on_headers_complete,
    .on_body = h1_on_body,
    .on_message_complete = h1_on_message_complete,
};

/* ---- methods ------------------------------------------------------------- */

/* http-parser knows a fixed list of methods and refuses any other token;
 * RFC 9110 9.1 allows extension methods (our router answers them 405 with
 * Allow). CONNECT would make it expect an authority-form target and a
 * tunnel, which we never offer. Both are parsed as GET in their place. */
static int h1_parser_knows(const char *m, size_t n) {
  if (n == 7 && memcmp(m, "CONNECT", 7) == 0) return 0;
  for (int i = 0; i < 64; i++) {
    const char *s = http_method_str((enum http_method)i);
    if (strcmp(s, "<unknown>") == 0) break;
    if (strlen(s) == n && memcmp(s, m, n) == 0) return 1;
  }
  return 0;
}

/* ---- the API ------------------------------------------------------------- */

void gw_h1_begin(gw_h1 *h) {
  /* Everything but the header array: clearing its 8 KiB was 3% of a
   * request's instructions, and nothing reads past n_fields. */
  memset(h, 0, offsetof(gw_h1, fields));
  http_parser_init(&h->p, HTTP_REQUEST);
  h->p.data = h;
}

static gw_h1_status h1_errno_status(gw_h1 *h) {
  if (h->err != GW_H1_OK) return h->err;
  if (HTTP_PARSER_ERRNO(&h->p) == HPE_HEADER_OVERFLOW) return GW_H1_HEAD_TOO_LARGE;
  return GW_H1_BAD_REQUEST;
}

/* Feeds buf[h->fed, len) to the parser. */
static gw_h1_status h1_run(gw_h1 *h, const char *buf, size_t len) {
  size_t n = http_parser_execute(&h->p, &h1_settings, buf + h->fed, len - h->fed);
  h->fed += n;
  enum http_errno e = HTTP_PARSER_ERRNO(&h->p);
  if (e == HPE_PAUSED && h->head_done) return GW_H1_OK;
  if (e != HPE_OK) return h1_errno_status(h);
  return GW_H1_OK;
}

gw_h1_status gw_h1_feed_head(gw_h1 *h, const char *buf, size_t len, size_t *used) {
  if (h->head_done) {
    *used = h->fed + 1;
    return GW_H1_OK;
  }
  if (h->base == NULL) {
    /* First the method: wait for the whole token. Empty lines before the
     * request line are skipped (RFC 9112 2.2), as http-parser does. */
    size_t start = 0;
    while (start < len && (buf[start] == '\r' || buf[start] == '\n'))
      start++;
    size_t i = start;
    while (i < len && i - start <= GW_H1_METHOD_MAX && h1_tchar((unsigned char)buf[i]))
      i++;
    if (i == len && i - start <= GW_H1_METHOD_MAX) {
      if (len >= GW_H1_HEAD_MAX) return GW_H1_URI_TOO_LONG;
      return GW_H1_OK; /* need more */
    }
    size_t mlen = i - start;
    if (mlen == 0 || mlen > GW_H1_METHOD_MAX || buf[i] != ' ') return GW_H1_BAD_REQUEST;
    memcpy(h->method, buf + start, mlen);
    h->method[mlen] = '\0';
    h->base = buf;
    if (!h1_parser_knows(buf + start, mlen)) {
      h->fed = start;
      gw_h1_status st = h1_run(h, buf, start);
      if (st != GW_H1_OK) return st;
      size_t n = http_parser_execute(&h->p, &h1_settings, "GET", 3);
      if (n != 3 || HTTP_PARSER_ERRNO(&h->p) != HPE_OK) return GW_H1_BAD_REQUEST;
      h->fed = i;
    }
  }
  if (buf != h->base) return GW_H1_BAD_REQUEST; /* caller broke the contract */
  /* Never past the cap, whatever else is buffered behind. */
  gw_h1_status st = h1_run(h, buf, len < GW_H1_HEAD_MAX ? len : GW_H1_HEAD_MAX);
  if (st != GW_H1_OK) return st;
  if (h->head_done) {
    /* Paused on the head's final LF, not yet consumed (the parser takes it
     * again when resumed: gw_h1_feed_body). */
    *used = h->fed + 1;
    return GW_H1_OK;
  }
  if (len >= GW_H1_HEAD_MAX)
    return memchr(buf, '\n', len) == NULL ? GW_H1_URI_TOO_LONG : GW_H1_HEAD_TOO_LARGE;
  return GW_H1_OK;
}

gw_h1_status gw_h1_feed_body(gw_h1 *h, const char *data, size_t len, size_t *used, gw_h1_body_fn fn,
                             void *ctx) {
  *used = 0;
  if (!h->head_done || h->msg_done) return GW_H1_OK;
  h->body_fn = fn;
  h->body_ctx = ctx;
  if (HTTP_PARSER_ERRNO(&h->p) == HPE_PAUSED) {
    /* Resume after the head: the parser re-reads the LF it stopped on. */
    http_parser_pause(&h->p, 0);
    size_t n = http_parser_execute(&h->p, &h1_settings, "\n", 1);
    if (n != 1 || HTTP_PARSER_ERRNO(&h->p) != HPE_OK) return h1_errno_status(h);
  }
  if (len == 0) return GW_H1_OK;
  size_t n = http_parser_execute(&h->p, &h1_settings, data, len);
  enum http_errno e = HTTP_PARSER_ERRNO(&h->p);
  if (e == HPE_PAUSED && h->msg_done) {
    *used = n;
    return GW_H1_OK;
  }
  if (e != HPE_OK) return h1_errno_status(h);
  *used = n;
  return GW_H1_OK;
}

const char *gw_h1_header(const gw_h1 *h, const char *name, size_t *len) {
  for (size_t i = 0; i < h->n_fields; i++) {
    if (h1_is(&h->fields[i], name)) {
      if (len != NULL) *len = h->fields[i].value_len;
      return h->fields[i].value;
    }
  }
  return NULL;
}

const char *gw_h1_header_last(const gw_h1 *h, const char *name, size_t *len) {
  for (size_t i = h->n_fields; i-- > 0;) {
    if (h1_is(&h->fields[i], name)) {
      if (len != NULL) *len = h->fields[i].value_len;
      return h->fields[i].value;
    }
  }
  return NULL;
}

void gw_h1_verdict(gw_h1_status st, int *http_status, const char **code) {
  switch (st) {
  case GW_H1_URI_TOO_LONG:
    *http_status = 414;
    *code = "uri_too_long";
    return;
  case GW_H1_HEAD_TOO_LARGE:
    *http_status = 431;
    *code = "request_header_fields_too_large";
    return;
  case GW_H1_VERSION:
    *http_status = 505;
    *code = "http_version_not_supported";
    return;
  case GW_H1_EXPECTATION:
    *http_status = 417;
    *code = "expectation_failed";
    return;
  case GW_H1_OK:
  case GW_H1_BAD_REQUEST:
    break;
  }
  *http_status = 400;
  *code = "bad_request";
}
