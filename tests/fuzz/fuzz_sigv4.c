/* fuzz_sigv4.c - the SigV4 canonicalisation of lib/aws (sigv4.c,
 * sigv4_canonical_request): arbitrary paths, queries and headers.
 *
 * Input: byte 0 holds flags (bit 0: normalize the path); the rest is split
 * on '\n': line 1 the path, line 2 the query, the others "name:value"
 * headers (at most SIGV4_MAX_HEADERS; a NUL byte ends a field early).
 *
 * Checks: a request is refused exactly when the path does not start with '/'
 * or a header name is not a token or a value holds a control byte; else the
 * canonical request has the six parts in order, a path of unreserved bytes,
 * '/' and %XX (normalized: no empty, "." or ".." segment), query pairs
 * sorted and encoded, header names lower case, sorted, once each and equal to
 * the signed-headers list; and it does not change when the header names
 * change case or when the canonical path is fed back decoded. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HASH "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.' || c == '~';
}

static bool upper_hex(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

/* s[0..n) is unreserved bytes, %XX (upper case) and, when slash, '/'. */
static bool encoded_ok(const char *s, size_t n, bool slash) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%') {
      if (i + 2 >= n) return false;
      if (!upper_hex((unsigned char)s[i + 1]) || !upper_hex((unsigned char)s[i + 2])) return false;
      i += 2;
    } else if (!unreserved(c) && !(slash && c == '/')) {
      return false;
    }
  }
  return true;
}

static bool tchar(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool header_acceptable(const sigv4_header *h) {
  if (!h->name[0]) return false;
  for (const char *p = h->name; *p; p++)
    if (!tchar((unsigned char)*p)) return false;
  for (const unsigned char *p = (const unsigned char *)h->value; *p; p++)
    if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return false;
  return true;
}

/* The n-th '\n'-separated line of canon (start and length). */
static bool line_at(const char *canon, size_t len, int n, const char **s, size_t *l) {
  const char *p = canon, *end = canon + len;
  for (int i = 0; i < n; i++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return false;
    p = nl + 1;
  }
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  *s = p;
  *l = nl ? (size_t)(nl - p) : (size_t)(end - p);
  return true;
}

static void check_path(const char *s, size_t l, bool normalize) {
  if (l == 0 || s[0] != '/' || !encoded_ok(s, l, true)) abort();
  if (!normalize || l == 1) return;
  /* segments between slashes: none empty (but a trailing '/'), "." or ".." */
  for (size_t i = 1, start = 1; i <= l; i++) {
    if (i == l || s[i] == '/') {
      size_t n = i - start;
      if (n == 0 && i != l) abort();
      if ((n == 1 && s[start] == '.') || (n == 2 && s[start] == '.' && s[start + 1] == '.'))
        abort();
      start = i + 1;
    }
  }
}

static void check_query(const char *s, size_t l) {
  const char *prev = NULL;
  size_t prev_len = 0;
  for (size_t i = 0, start = 0; i <= l && l > 0; i++) {
    if (i < l && s[i] != '&') continue;
    const char *pair = s + start;
    size_t n = i - start;
    const char *eq = memchr(pair, '=', n);
    if (!eq || memchr(eq + 1, '=', n - (size_t)(eq - pair) - 1)) abort();
    size_t kn = (size_t)(eq - pair);
    if (!encoded_ok(pair, kn, false) || !encoded_ok(eq + 1, n - kn - 1, false)) abort();
    if (prev) { /* sorted by name, then value: compare as (name, value) */
      const char *peq = memchr(prev, '=', prev_len);
      size_t pk = (size_t)(peq - prev), m = pk < kn ? pk : kn;
      int c = memcmp(prev, pair, m);
      if (c > 0 || (c == 0 && pk > kn)) abort();
      if (c == 0 && pk == kn) {
        size_t pv = prev_len - pk - 1, v = n - kn - 1, mv = pv < v ? pv : v;
        int d = memcmp(peq + 1, eq + 1, mv);
        if (d > 0 || (d == 0 && pv > v)) abort();
      }
    }
    prev = pair;
    prev_len = n;
    start = i + 1;
  }
}

/* Canonical header lines 3.. up to the empty line; names against signed. */
static void check_headers(const char *canon, size_t len, const char *signed_hdrs) {
  const char *sh = signed_hdrs, *prev = NULL;
  size_t prev_len = 0;
  for (int i = 3;; i++) {
    const char *s;
    size_t l;
    if (!line_at(canon, len, i, &s, &l)) abort();
    if (l == 0) {
      if (*sh) abort(); /* a signed name without a canonical line */
      const char *sl;
      size_t sll;
      if (!line_at(canon, len, i + 1, &sl, &sll) || sll != strlen(signed_hdrs) ||
          memcmp(sl, signed_hdrs, sll) != 0)
        abort();
      return;
    }
    const char *colon = memchr(s, ':', l);
    if (!colon) abort();
    size_t nl = (size_t)(colon - s);
    for (size_t k = 0; k < nl; k++)
      if (s[k] >= 'A' && s[k] <= 'Z') abort();
    if (prev) { /* strictly increasing: each name once */
      size_t m = prev_len < nl ? prev_len : nl;
      int c = memcmp(prev, s, m);
      if (c > 0 || (c == 0 && prev_len >= nl)) abort();
    }
    size_t sn = strcspn(sh, ";");
    if (sn != nl || memcmp(sh, s, nl) != 0) abort();
    sh += sn + (sh[sn] == ';');
    /* value: no leading/trailing blank, no double space, no tab */
    const char *v = colon + 1;
    size_t vl = l - nl - 1;
    if (vl && (v[0] == ' ' || v[vl - 1] == ' ')) abort();
    if (memchr(v, '\t', vl) || memmem(v, vl, "  ", 2)) abort();
    prev = s;
    prev_len = nl;
  }
}

static int canon_of(const char *path, const char *query, bool normalize, sigv4_header *h,
                    size_t nh, dbuf *out, char *signed_hdrs, size_t cap) {
  sigv4_request r = {.method = "POST", .path = path, .query = query,
                     .normalize_path = normalize, .headers = h, .nheaders = nh,
                     .payload_hash = HASH};
  return sigv4_canonical_request(&r, out, signed_hdrs, cap);
}

static int hexv(char c) { return c <= '9' ? c - '0' : c - 'A' + 10; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 8192) return 0;
  bool normalize = data[0] & 1;
  char *text = malloc(size);
  if (!text) return 0;
  memcpy(text, data + 1, size - 1);
  text[size - 1] = '\0';
  char *fields[2 + SIGV4_MAX_HEADERS];
  size_t nf = 0;
  for (char *p = text; nf < sizeof fields / sizeof fields[0];) {
    fields[nf++] = p;
    char *nl = strchr(p, '\n');
    if (!nl) break;
    *nl = '\0';
    p = nl + 1;
  }
  const char *path = fields[0], *query = nf > 1 ? fields[1] : NULL;
  sigv4_header h[SIGV4_MAX_HEADERS], upper[SIGV4_MAX_HEADERS];
  char *names_up[SIGV4_MAX_HEADERS] = {0};
  size_t nh = 0;
  bool acceptable = path[0] == '/';
  for (size_t i = 2; i < nf; i++) {
    char *colon = strchr(fields[i], ':');
    h[nh].name = fields[i];
    h[nh].value = colon ? colon + 1 : "";
    if (colon) *colon = '\0';
    acceptable = acceptable && header_acceptable(&h[nh]);
    names_up[nh] = strdup(h[nh].name);
    for (char *c = names_up[nh]; c && *c; c++)
      if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 32);
    upper[nh] = (sigv4_header){names_up[nh] ? names_up[nh] : h[nh].name, h[nh].value};
    nh++;
  }
  dbuf canon = DBUF_INIT(1 << 20), again = DBUF_INIT(1 << 20);
  char signed_hdrs[8192], signed2[8192];
  int rc = canon_of(path, query, normalize, h, nh, &canon, signed_hdrs, sizeof signed_hdrs);
  if ((rc == 0) != acceptable) abort();
  if (rc == 0) {
    const char *s;
    size_t l;
    if (!line_at(canon.buf, canon.len, 0, &s, &l) || l != 4 || memcmp(s, "POST", 4) != 0)
      abort();
    if (!line_at(canon.buf, canon.len, 1, &s, &l)) abort();
    check_path(s, l, normalize);
    /* Fed back decoded, the canonical path stays the same. */
    char *dec = malloc(l + 1);
    size_t o = 0;
    for (size_t i = 0; i < l; i++) {
      if (s[i] == '%') {
        dec[o++] = (char)(hexv(s[i + 1]) << 4 | hexv(s[i + 2]));
        i += 2;
      } else {
        dec[o++] = s[i];
      }
    }
    dec[o] = '\0';
    if (!memchr(dec, '\0', o)) { /* a decoded NUL cannot be fed back as a C string */
      if (canon_of(dec, query, normalize, h, nh, &again, signed2, sizeof signed2) != 0) abort();
      const char *s2;
      size_t l2;
      if (!line_at(again.buf, again.len, 1, &s2, &l2) || l2 != l || memcmp(s, s2, l) != 0)
        abort();
    }
    free(dec);
    if (!line_at(canon.buf, canon.len, 2, &s, &l)) abort();
    check_query(s, l);
    check_headers(canon.buf, canon.len, signed_hdrs);
    /* Header names in another case: the same canonical request. */
    dbuf_reset(&again);
    if (canon_of(path, query, normalize, upper, nh, &again, signed2, sizeof signed2) != 0 ||
        again.len != canon.len || memcmp(again.buf, canon.buf, canon.len) != 0)
      abort();
  }
  for (size_t i = 0; i < nh; i++) free(names_up[i]);
  dbuf_free(&canon);
  dbuf_free(&again);
  free(text);
  return 0;
}
