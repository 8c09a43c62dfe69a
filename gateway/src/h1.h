/* h1.h - one HTTP/1.x request read from a byte stream, on http-parser.
 *
 * http-parser (nodejs, Debian's libhttp-parser 2.9.4, strict: lenient mode
 * off) does the byte-level work: the request line, header tokens and values
 * (NUL and other control bytes refused), Content-Length digits, overflow and
 * duplicates, Content-Length with Transfer-Encoding, chunk sizes. This module
 * adds what the library leaves to its user: the caps on the head, the
 * framing rules we enforce on top (RFC 9112: Host, one Transfer-Encoding that
 * is "chunked"), the versions we speak, methods outside http-parser's list,
 * and the one verdict (status + error code) for each refusal. No sockets, no
 * allocation: the caller owns the bytes and feeds them (unit-tested and
 * fuzzed on its own).
 *
 * Use, per request: gw_h1_begin(); gw_h1_feed_head() with the growing head
 * (same base pointer every call: the header views point into it) until
 * h->head_done; then, when the request has a body, gw_h1_feed_body() with the
 * bytes that follow until h->msg_done. Any status other than GW_H1_OK ends
 * the request: answer gw_h1_verdict() and close the connection.
 */
#ifndef GW_H1_H
#define GW_H1_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#define GW_H1_HEAD_MAX (64 * 1024) /* request line + headers + blank line -> 431 / 414 */
#define GW_H1_HEADERS_MAX 256      /* header lines -> 431 */
#define GW_H1_METHOD_MAX 32        /* method token -> 400 */

typedef enum {
  GW_H1_OK = 0,
  GW_H1_BAD_REQUEST,    /* 400 bad_request: malformed, ambiguous framing, no Host in 1.1 */
  GW_H1_URI_TOO_LONG,   /* 414 uri_too_long: the request line alone is over GW_H1_HEAD_MAX */
  GW_H1_HEAD_TOO_LARGE, /* 431 request_header_fields_too_large */
  GW_H1_VERSION,        /* 505 http_version_not_supported: not HTTP/1.0 or 1.1 */
  GW_H1_EXPECTATION,    /* 417 expectation_failed: an Expect other than 100-continue */
} gw_h1_status;

/* A header line, as views into the head (never NUL-terminated by us; a NUL
 * cannot occur: http-parser refuses it). Trailing blanks are not part of the
 * value. */
typedef struct gw_h1_field {
  const char *name, *value;
  size_t name_len, value_len;
} gw_h1_field;

/* Called with each piece of the decoded body (chunk framing removed). */
typedef void (*gw_h1_body_fn)(void *ctx, const char *data, size_t len);

typedef struct gw_h1 {
  http_parser p; /* private */
  /* ---- read-only once head_done ---- */
  char method[GW_H1_METHOD_MAX + 1]; /* as sent, e.g. "GET", "FOO" */
  const char *target;                /* the raw request target (view) */
  size_t target_len;
  unsigned major, minor;
  size_t n_fields; /* fields[0, n_fields) are the header lines */
  int head_done, msg_done;
  int keep_alive; /* the client allows another request on this connection */
  int has_body;   /* Content-Length > 0 or chunked */
  int chunked;
  uint64_t content_length; /* when !chunked */
  int expect_continue;     /* "Expect: 100-continue" on HTTP/1.1 */
  /* ---- private ---- */
  const char *base; /* the head's first byte (gw_h1_feed_head's buf) */
  size_t fed;       /* bytes of the head given to the parser */
  int last;         /* 0 none, 1 field name, 2 value: the last callback */
  int dropping;     /* the current header line is over GW_H1_HEADERS_MAX */
  int dropped;      /* some line was: 431 at the head's end */
  gw_h1_status err; /* set by a callback */
  gw_h1_body_fn body_fn;
  void *body_ctx;
  /* Last: gw_h1_begin does not clear it (8 KiB; only n_fields counts). */
  gw_h1_field fields[GW_H1_HEADERS_MAX];
} gw_h1;

/* Starts a request. Never fails. */
void gw_h1_begin(gw_h1 *h);

/* Parses the head in buf[0, len): the bytes of this request received so far
 * (buf stays the same between calls, len grows). On GW_H1_OK either
 * h->head_done is 0 (send more bytes) or it is 1 and *used is the head's
 * length (what follows is body or the next request). Any other status is
 * final for the request (and the connection). len over GW_H1_HEAD_MAX
 * without the head's end answers GW_H1_HEAD_TOO_LARGE (GW_H1_URI_TOO_LONG
 * while still in the request line). */
gw_h1_status gw_h1_feed_head(gw_h1 *h, const char *buf, size_t len, size_t *used);

/* Parses body bytes data[0, len) after the head, passing the decoded body to
 * fn(ctx, ...). Sets *used to the bytes consumed: after the message end the
 * rest (a pipelined request) is left alone, and h->msg_done is 1. A status
 * other than GW_H1_OK (a malformed chunk) is final. */
gw_h1_status gw_h1_feed_body(gw_h1 *h, const char *data, size_t len, size_t *used, gw_h1_body_fn fn,
                             void *ctx);

/* The first header called `name` (case-insensitive), or NULL; *len (when not
 * NULL) gets the value's length. */
const char *gw_h1_header(const gw_h1 *h, const char *name, size_t *len);

/* The same for the last header called `name` (where a proxy appends). */
const char *gw_h1_header_last(const gw_h1 *h, const char *name, size_t *len);

/* The HTTP status and the JSON error code for a refusal (st != GW_H1_OK). */
void gw_h1_verdict(gw_h1_status st, int *http_status, const char **code);

#endif
