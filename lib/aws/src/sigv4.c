/* sigv4.c - AWS Signature Version 4 header signing with a cached signing key.
 * The steps follow the AWS "Create a signed AWS API request" guide; the
 * official test suite (aws-sig-v4-test-suite) checks each step in
 * sigv4_test.c. */
#define _GNU_SOURCE
#include "sigv4.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- hex ------------------------------------------------------------------ */

static void to_hex(const unsigned char *b, size_t n, char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    hex[2 * i] = digits[b[i] >> 4];
    hex[2 * i + 1] = digits[b[i] & 15];
  }
  hex[2 * n] = '\0';
}

int sigv4_sha256_hex(const void *data, size_t len, char hex[65]) {
  unsigned char h[32];
  if (sha256(data, len, h) != 0) return -1;
  to_hex(h, sizeof h, hex);
  return 0;
}

/* ---- canonical request ----------------------------------------------------- */

static bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.' || c == '~';
}

static bool is_tchar(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Percent-encodes s[0..n) as SigV4 wants (unreserved bytes kept, %XX upper
 * case); '/' kept when keep_slash. */
static int put_encoded(dbuf *b, const char *s, size_t n, bool keep_slash) {
  static const char digits[] = "0123456789ABCDEF";
  size_t run = 0; /* bytes of s before i not yet appended */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_unreserved(c) || (keep_slash && c == '/')) continue;
    char esc[3] = {'%', digits[c >> 4], digits[c & 15]};
    if (dbuf_append(b, s + run, i - run) != 0 || dbuf_append(b, esc, 3) != 0) return -1;
    run = i + 1;
  }
  return dbuf_append(b, s + run, n - run);
}

/* The path with empty, "." and ".." segments removed (RFC 3986 5.2.4 on
 * segments); a trailing '/' stays. Writes into out (strlen(path) + 2). */
static size_t normalize_path(const char *path, char *out) {
  size_t o = 0;
  const char *p = path;
  while (*p) {
    while (*p == '/') p++;
    size_t n = strcspn(p, "/");
    if (n == 0 || (n == 1 && p[0] == '.')) {
      /* nothing */
    } else if (n == 2 && p[0] == '.' && p[1] == '.') {
      while (o > 0 && out[--o] != '/') {
      }
    } else {
      out[o++] = '/';
      memcpy(out + o, p, n);
      o += n;
    }
    p += n;
  }
  size_t len = strlen(path);
  if (o == 0 || (len > 0 && path[len - 1] == '/')) out[o++] = '/';
  out[o] = '\0';
  return o;
}

static int put_path(dbuf *b, const char *path, bool normalize) {
  size_t len = strlen(path);
  if (!normalize) return put_encoded(b, path, len, true);
  char small[256], *tmp = len + 2 <= sizeof small ? small : malloc(len + 2);
  if (!tmp) return -1;
  size_t n = normalize_path(path, tmp);
  int rc = put_encoded(b, tmp, n, true);
  if (tmp != small) free(tmp);
  return rc;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes %XX in s[0..n) to out (a '%' not followed by two hex digits stays
 * as is); returns the decoded length (<= n). */
static size_t percent_decode(const char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
        (lo = hexval(s[i + 2])) >= 0) {
      out[o++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      out[o++] = s[i];
    }
  }
  return o;
}

typedef struct qparam {
  size_t key, klen, val, vlen; /* offsets into the encoded text */
  const char *text;
} qparam;

static int qparam_cmp(const void *a, const void *b) {
  const qparam *x = a, *y = b;
  size_t n = x->klen < y->klen ? x->klen : y->klen;
  int c = memcmp(x->text + x->key, y->text + y->key, n);
  if (c || x->klen != y->klen) return c ? c : (x->klen < y->klen ? -1 : 1);
  n = x->vlen < y->vlen ? x->vlen : y->vlen;
  c = memcmp(x->text + x->val, y->text + y->val, n);
  if (c || x->vlen != y->vlen) return c ? c : (x->vlen < y->vlen ? -1 : 1);
  return 0;
}

/* The canonical query: each name and value decoded, then encoded the SigV4
 * way, sorted by name then value, joined with '&'. */
static int put_query(dbuf *b, const char *q) {
  if (!q || !*q) return 0;
  size_t qlen = strlen(q), max = 1;
  for (const char *p = q; *p; p++) max += *p == '&';
  qparam *ps = calloc(max, sizeof *ps);
  dbuf text = DBUF_INIT(b->max);
  char *dec = malloc(qlen + 1);
  int rc = ps && dec ? 0 : -1;
  size_t np = 0;
  for (const char *p = q; rc == 0 && *p;) {
    size_t n = strcspn(p, "&");
    if (n > 0) {
      const char *eq = memchr(p, '=', n);
      size_t kn = eq ? (size_t)(eq - p) : n;
      qparam *e = &ps[np++];
      e->key = text.len;
      e->klen = percent_decode(p, kn, dec);
      rc = put_encoded(&text, dec, e->klen, false);
      e->klen = text.len - e->key;
      e->val = text.len;
      e->vlen = eq ? percent_decode(eq + 1, n - kn - 1, dec) : 0;
      if (rc == 0) rc = put_encoded(&text, dec, e->vlen, false);
      e->vlen = text.len - e->val;
    }
    p += n + (p[n] == '&');
  }
  for (size_t i = 0; i < np; i++) ps[i].text = text.buf;
  if (rc == 0 && np > 1) qsort(ps, np, sizeof *ps, qparam_cmp);
  for (size_t i = 0; rc == 0 && i < np; i++) {
    if ((i && dbuf_append(b, "&", 1) != 0) ||
        dbuf_append(b, text.buf + ps[i].key, ps[i].klen) != 0 || dbuf_append(b, "=", 1) != 0 ||
        dbuf_append(b, text.buf + ps[i].val, ps[i].vlen) != 0)
      rc = -1;
  }
  free(ps);
  free(dec);
  dbuf_free(&text);
  return rc;
}

/* Compares header names case-insensitively (ASCII). */
static int name_cmp(const char *a, const char *b) {
  for (;; a++, b++) {
    unsigned char x = lower((unsigned char)*a), y = lower((unsigned char)*b);
    if (x != y || !x) return (int)x - (int)y;
  }
}

static bool header_ok(const sigv4_header *h) {
  if (!h->name || !h->name[0] || !h->value) return false;
  for (const char *p = h->name; *p; p++)
    if (!is_tchar((unsigned char)*p)) return false;
  for (const unsigned char *p = (const unsigned char *)h->value; *p; p++)
    if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return false;
  return true;
}

/* The value trimmed, runs of blanks inside folded to one space. */
static int put_trimmed(dbuf *b, const char *v) {
  while (*v == ' ' || *v == '\t') v++;
  while (*v) {
    size_t n = strcspn(v, " \t");
    if (dbuf_append(b, v, n) != 0) return -1;
    v += n;
    while (*v == ' ' || *v == '\t') v++;
    if (*v && dbuf_append(b, " ", 1) != 0) return -1;
  }
  return 0;
}

static int put_lower(dbuf *b, const char *s) {
  char buf[64];
  while (*s) {
    size_t n = 0;
    for (; *s && n < sizeof buf; s++) buf[n++] = (char)lower((unsigned char)*s);
    if (dbuf_append(b, buf, n) != 0) return -1;
  }
  return 0;
}

/* Canonical headers (name:value\n, values of a repeated name joined with ','
 * in their order) and the signed-headers list. */
static int put_headers(dbuf *b, const sigv4_header *h, size_t n, char *signed_hdrs,
                       size_t signed_cap) {
  size_t order[SIGV4_MAX_HEADERS];
  for (size_t i = 0; i < n; i++) {
    if (!header_ok(&h[i])) return -1;
    size_t j = i; /* insertion sort: stable, so repeated names keep their order */
    while (j > 0 && name_cmp(h[order[j - 1]].name, h[i].name) > 0) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = i;
  }
  size_t so = 0;
  for (size_t i = 0; i < n; i++) {
    const sigv4_header *x = &h[order[i]];
    bool repeat = i > 0 && name_cmp(h[order[i - 1]].name, x->name) == 0;
    if (repeat) {
      if (dbuf_append(b, ",", 1) != 0) return -1;
    } else {
      if (i > 0 && dbuf_append(b, "\n", 1) != 0) return -1;
      size_t nl = strlen(x->name);
      if (so + (so > 0) + nl + 1 > signed_cap) return -1;
      if (so > 0) signed_hdrs[so++] = ';';
      for (size_t k = 0; k < nl; k++) signed_hdrs[so++] = (char)lower((unsigned char)x->name[k]);
      if (put_lower(b, x->name) != 0 || dbuf_append(b, ":", 1) != 0) return -1;
    }
    if (put_trimmed(b, x->value) != 0) return -1;
  }
  if (signed_cap == 0) return -1;
  signed_hdrs[so] = '\0';
  return n > 0 ? dbuf_append(b, "\n", 1) : 0;
}

int sigv4_canonical_request(const sigv4_request *r, dbuf *canon, char *signed_hdrs,
                            size_t signed_cap) {
  if (!r->method || !r->path || r->path[0] != '/' || !r->payload_hash ||
      r->nheaders > SIGV4_MAX_HEADERS || (r->nheaders && !r->headers))
    return -1;
  if (dbuf_append(canon, r->method, strlen(r->method)) != 0 ||
      dbuf_append(canon, "\n", 1) != 0 || put_path(canon, r->path, r->normalize_path) != 0 ||
      dbuf_append(canon, "\n", 1) != 0 || put_query(canon, r->query) != 0 ||
      dbuf_append(canon, "\n", 1) != 0 ||
      put_headers(canon, r->headers, r->nheaders, signed_hdrs, signed_cap) != 0 ||
      dbuf_append(canon, "\n", 1) != 0 ||
      dbuf_append(canon, signed_hdrs, strlen(signed_hdrs)) != 0 ||
      dbuf_append(canon, "\n", 1) != 0 ||
      dbuf_append(canon, r->payload_hash, strlen(r->payload_hash)) != 0)
    return -1;
  return 0;
}

/* ---- signing key ----------------------------------------------------------- */

static bool date8_ok(const char *d) {
  for (int i = 0; i < 8; i++)
    if (d[i] < '0' || d[i] > '9') return false;
  return d[8] == '\0' || d[8] == 'T';
}

void sigv4_key_wipe(sigv4_key *key) {
  OPENSSL_cleanse(key->k, sizeof key->k);
  sha256_hmac_free(&key->mac);
  key->creds_id = 0;
  key->date[0] = key->region[0] = key->service[0] = '\0';
}

int sigv4_key_get(sigv4_key *key, uint64_t creds_id, const char *secret, const char *date8,
                  const char *region, const char *service) {
  if (!date8_ok(date8) || strlen(region) >= sizeof key->region ||
      strlen(service) >= sizeof key->service)
    return -1;
  if (key->creds_id == creds_id && creds_id != 0 && memcmp(key->date, date8, 8) == 0 &&
      strcmp(key->region, region) == 0 && strcmp(key->service, service) == 0)
    return 0;
  sigv4_key_wipe(key);
  size_t sl = strlen(secret);
  char *k0 = malloc(sl + 5);
  if (!k0) return -1;
  memcpy(k0, "AWS4", 4);
  memcpy(k0 + 4, secret, sl + 1);
  unsigned char a[32], b[32];
  int rc = sha256_hmac_once(k0, sl + 4, date8, 8, a);
  if (rc == 0) rc = sha256_hmac_once(a, 32, region, strlen(region), b);
  if (rc == 0) rc = sha256_hmac_once(b, 32, service, strlen(service), a);
  if (rc == 0) rc = sha256_hmac_once(a, 32, "aws4_request", 12, key->k);
  if (rc == 0) rc = sha256_hmac_init(&key->mac, key->k, sizeof key->k);
  OPENSSL_cleanse(k0, sl + 4);
  free(k0);
  OPENSSL_cleanse(a, sizeof a);
  OPENSSL_cleanse(b, sizeof b);
  if (rc != 0) {
    sigv4_key_wipe(key);
    return -1;
  }
  key->creds_id = creds_id;
  memcpy(key->date, date8, 8);
  key->date[8] = '\0';
  strcpy(key->region, region);
  strcpy(key->service, service);
  key->derivations++;
  return 0;
}

/* ---- string to sign, signature, header --------------------------------------- */

int sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
                         const char *canon, size_t canon_len, dbuf *sts) {
  char hash[65];
  if (sigv4_sha256_hex(canon, canon_len, hash) != 0) return -1;
  if (dbuf_append(sts, "AWS4-HMAC-SHA256\n", 17) != 0 ||
      dbuf_append(sts, amz_date, strlen(amz_date)) != 0 || dbuf_append(sts, "\n", 1) != 0 ||
      dbuf_append(sts, amz_date, 8) != 0 || dbuf_append(sts, "/", 1) != 0 ||
      dbuf_append(sts, region, strlen(region)) != 0 || dbuf_append(sts, "/", 1) != 0 ||
      dbuf_append(sts, service, strlen(service)) != 0 ||
      dbuf_append(sts, "/aws4_request\n", 14) != 0 || dbuf_append(sts, hash, 64) != 0)
    return -1;
  return 0;
}

int sigv4_signature(const sigv4_key *key, const char *sts, size_t sts_len, char sig[65]) {
  unsigned char mac[32];
  if (sha256_hmac_sign(&key->mac, sts, sts_len, mac) != 0) return -1;
  to_hex(mac, sizeof mac, sig);
  return 0;
}

/* Appends the NUL-terminated parts to out[*o..cap); -1 when they do not fit
 * with a final NUL. (snprintf costs more than the signing's own hashing.) */
static int put_parts(char *out, size_t cap, size_t *o, const char *const *parts, size_t n) {
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(parts[i]);
    if (l >= cap - *o) return -1;
    memcpy(out + *o, parts[i], l);
    *o += l;
  }
  out[*o] = '\0';
  return 0;
}

int sigv4_authorization(const sigv4_request *r, const sigv4_key *key, const char *access_key,
                        const char *amz_date, dbuf *scratch, char *auth, size_t auth_cap) {
  char signed_hdrs[1024], sig[65];
  if (strlen(amz_date) != 16 || memcmp(amz_date, key->date, 8) != 0) return -1;
  dbuf_reset(scratch);
  if (sigv4_canonical_request(r, scratch, signed_hdrs, sizeof signed_hdrs) != 0) return -1;
  /* The string to sign goes after the canonical request in the same buffer. */
  size_t canon_len = scratch->len;
  if (dbuf_append(scratch, "", 1) != 0 ||
      sigv4_string_to_sign(amz_date, key->region, key->service, scratch->buf, canon_len,
                           scratch) != 0 ||
      sigv4_signature(key, scratch->buf + canon_len + 1, scratch->len - canon_len - 1, sig) != 0)
    return -1;
  const char *parts[] = {"AWS4-HMAC-SHA256 Credential=", access_key, "/", key->date, "/",
                         key->region, "/", key->service, "/aws4_request, SignedHeaders=",
                         signed_hdrs, ", Signature=", sig};
  size_t o = 0;
  return auth_cap > 0 ? put_parts(auth, auth_cap, &o, parts, sizeof parts / sizeof parts[0]) : -1;
}

static void put_digits(char *out, int v, int n) {
  for (int i = n - 1; i >= 0; i--, v /= 10) out[i] = (char)('0' + v % 10);
}

void sigv4_amz_date(int64_t t, char out[17]) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  put_digits(out, tm.tm_year + 1900, 4);
  put_digits(out + 4, tm.tm_mon + 1, 2);
  put_digits(out + 6, tm.tm_mday, 2);
  out[8] = 'T';
  put_digits(out + 9, tm.tm_hour, 2);
  put_digits(out + 11, tm.tm_min, 2);
  put_digits(out + 13, tm.tm_sec, 2);
  out[15] = 'Z';
  out[16] = '\0';
}
