/* fuzz_jwt.c - Cognito access-token verification (auth.c) with a fixed JWKS.
 *
 * Byte 0 picks the mode; the rest is
 *   0: an Authorization header value (auth_verify_header),
 *   1: a bare token (auth_verify_token, not NUL-terminated),
 *   2: "HEADER-JSON\nCLAIMS-JSON": the harness signs it with the test key
 *      (RS256), so the claim checks behind the signature are reachable.
 * Invariant: AUTH_OK only for a token that meets every documented rule
 * (re-checked here from the token's own text), and a repeat of an accepted
 * token answers the same (the verified-token cache). Never a crash. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ISSUER "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Fuzz0"
#define CLIENT "fuzzclient0123456789"
#define KID "fuzz-kid-1"

/* A throwaway 1024-bit test key (small so signing stays fast). It signs
 * nothing but fuzz inputs. */
static const char test_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAMy2gVeXwVV3la0S\n"
    "xBlUjKcA2iyyVmXuy5Cg+VuKnOPSnhLvz2YDYiIx/PJ+2X08Vy52VEcOOe7jEWiG\n"
    "SxH1ARu3fqe7uBwLgg9ILayu3FSJrTR/QdGSN7/Efj9xdlJBZsMgVJfS7n11NZki\n"
    "ucazsOnX6ObFCgZOV1Ui57rzaY8BAgMBAAECgYEAubfZH95NR3x2Dc44mcJa2Cet\n"
    "x18DgvZhN5TSpHncW9N4FTX6slHfdaZkFJuANF3Juh0f2FbPuCnIYUt0T5Y2qY3n\n"
    "U7qH172wpQnq4licJqyHrkVYyJo54l9DYRFwDsvh7uEAW08wSMXsYrvgOsr0q7FI\n"
    "cv73uQRg5h1u0sNHtQECQQD3ohSMg+XWL8KcS2yCkfpr8SO2chOj2HUi7Ay+K+IZ\n"
    "uyqWKePAeqfH3umcPwbJTqcE8gcO+DpeheFXPvFze8EjAkEA06EvAisKGBNSNMVm\n"
    "vLFqnNib44LMl476m+WxXuTkL3Otvt825gldBZDuLkkwKQIhCq337dNHIZV4w01e\n"
    "FtMbiwJBAN/RLMV8CWY3sKvXN/IjwrWBNAgYv0udvvGbbEEOJMOg+XLT1bgIpFDw\n"
    "VzETfizA3BCKOHr9PLRmSS+0AkOgnQUCQEsKDicQp8WdpDp9/E3QAuOWkr/7MxxS\n"
    "YF5C9b+WHasNs3/Imii7DTbaCvpyjRcdYCXvRcgYcFJiM63ckw440L0CQDZ6Qa55\n"
    "tTi8Y0e7mAuoacNPt2LSZyIWbKmXVe+FPtQ5XZFBk08UqNMl94tyrYr/QKAkFGwE\n"
    "rwvCzSjbOfklGxQ=\n"
    "-----END PRIVATE KEY-----\n";

static const char test_jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"" KID "\",\"use\":\"sig\",\"alg\":\"RS256\",\"e\":\"AQAB\","
    "\"n\":\"zLaBV5fBVXeVrRLEGVSMpwDaLLJWZe7LkKD5W4qc49KeEu_PZgNiIjH88n7ZfTxXLnZURw457uMRaIZLEfUBG7d-"
    "p7u4HAuCD0gtrK7cVImtNH9B0ZI3v8R-P3F2UkFmwyBUl9LufXU1mSK5xrOw6dfo5sUKBk5XVSLnuvNpjwE\"}]}";

static auth *g_auth;
static EVP_PKEY *g_key;

static void teardown(void) {
  auth_free(g_auth);
  EVP_PKEY_free(g_key);
}

static void setup(void) {
  auth_config cfg = {.issuer = ISSUER, .client_id = CLIENT, .leeway_s = 60, .cache_max = 64};
  if (auth_new(&cfg, &g_auth) != 0 || auth_set_jwks(g_auth, test_jwks) != 0) abort();
  BIO *b = BIO_new_mem_buf(test_key_pem, -1);
  g_key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (g_key == NULL) abort();
  atexit(teardown);
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64url_enc(const unsigned char *in, size_t n, char *out) {
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64chars[v >> 18 & 63];
    out[o++] = b64chars[v >> 12 & 63];
    out[o++] = b64chars[v >> 6 & 63];
    out[o++] = b64chars[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = b64chars[v >> 18 & 63];
    out[o++] = b64chars[v >> 12 & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = b64chars[v >> 18 & 63];
    out[o++] = b64chars[v >> 12 & 63];
    out[o++] = b64chars[v >> 6 & 63];
  }
  out[o] = '\0';
  return o;
}

/* Decodes unpadded base64url; NULL when not base64url. Caller frees. */
static char *b64url_dec(const char *s, size_t n, size_t *len) {
  char *out = malloc(n + 1);
  if (out == NULL) return NULL;
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    const char *p = memchr(b64chars, s[i], 64);
    if (p == NULL || s[i] == '\0') {
      free(out);
      return NULL;
    }
    acc = acc << 6 | (uint32_t)(p - b64chars);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)(acc >> bits & 0xff);
    }
  }
  out[o] = '\0';
  *len = o;
  return out;
}

static int str_is(const cJSON *o, const char *name, const char *want) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
}

/* The documented acceptance rule, restated. Returns 1 when `tok` may be accepted with `sub`. */
static int may_accept(const char *tok, size_t len, const char *sub) {
  if (len == 0 || len > 8192) return 0;
  const char *d1 = memchr(tok, '.', len);
  const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
  if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) != NULL) return 0;
  if (d2 + 1 == tok + len) return 0; /* a signature is required */
  size_t hl, pl;
  char *h = b64url_dec(tok, (size_t)(d1 - tok), &hl);
  char *p = b64url_dec(d1 + 1, (size_t)(d2 - d1 - 1), &pl);
  cJSON *hj = h ? cJSON_ParseWithLength(h, hl) : NULL;
  cJSON *pj = p ? cJSON_ParseWithLength(p, pl) : NULL;
  int ok = cJSON_IsObject(hj) && cJSON_IsObject(pj) && str_is(hj, "alg", "RS256") &&
           str_is(hj, "kid", KID) && !cJSON_GetObjectItemCaseSensitive(hj, "crit") &&
           str_is(pj, "iss", ISSUER) && str_is(pj, "token_use", "access") &&
           str_is(pj, "client_id", CLIENT) && str_is(pj, "sub", sub);
  if (ok) {
    double now = (double)time(NULL);
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(pj, "exp");
    const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(pj, "nbf");
    const cJSON *iat = cJSON_GetObjectItemCaseSensitive(pj, "iat");
    ok = cJSON_IsNumber(exp) && isfinite(exp->valuedouble) && exp->valuedouble > now - 60 - 5;
    if (nbf) ok = ok && cJSON_IsNumber(nbf) && nbf->valuedouble <= now + 60 + 5;
    if (iat) ok = ok && cJSON_IsNumber(iat) && iat->valuedouble <= now + 60 + 5;
  }
  cJSON_Delete(hj);
  cJSON_Delete(pj);
  free(h);
  free(p);
  return ok;
}

static int sub_ok(const char *s) {
  size_t n = strnlen(s, 130);
  if (n < 1 || n > 128) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

/* Builds b64(header).b64(claims).sig(RS256) from "HEADER\nCLAIMS". Caller frees. */
static char *sign_token(const uint8_t *in, size_t n, size_t *out_len) {
  const uint8_t *nl = memchr(in, '\n', n);
  if (nl == NULL) return NULL;
  size_t hn = (size_t)(nl - in), pn = n - hn - 1;
  char *tok = malloc((hn + pn) * 4 / 3 + 512);
  if (tok == NULL) return NULL;
  size_t o = b64url_enc(in, hn, tok);
  tok[o++] = '.';
  o += b64url_enc(nl + 1, pn, tok + o);
  unsigned char sig[256];
  size_t sl = sizeof sig;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, g_key) == 1 &&
           EVP_DigestSign(md, sig, &sl, (const unsigned char *)tok, o) == 1;
  EVP_MD_CTX_free(md);
  if (!ok) abort();
  tok[o++] = '.';
  o += b64url_enc(sig, sl, tok + o);
  *out_len = o;
  return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (g_auth == NULL) setup();
  if (size < 1 || size > 10000) return 0;
  int mode = data[0] % 3;
  const uint8_t *in = data + 1;
  size_t n = size - 1;
  char sub[129] = "untouched";
  auth_code rc;
  char *tok = NULL;
  size_t tlen = 0;
  if (mode == 2) {
    tok = sign_token(in, n, &tlen);
    if (tok == NULL) return 0;
    rc = auth_verify_token(g_auth, tok, tlen, sub);
  } else {
    /* exact-size copies so ASan sees any over-read */
    tok = malloc(n + 1);
    if (tok == NULL) return 0;
    memcpy(tok, in, n);
    tlen = n;
    if (mode == 0) {
      tok[n] = '\0';
      rc = auth_verify_header(g_auth, tok, sub);
    } else {
      rc = auth_verify_token(g_auth, tok, tlen, sub);
    }
  }
  if (rc > AUTH_E_NOMEM || auth_strerror(rc) == NULL) abort();
  if (rc == AUTH_E_JWKS_UNAVAILABLE) abort(); /* a fixed JWKS is always there */
  if (rc != AUTH_OK) {
    if (strcmp(sub, "untouched") != 0) abort(); /* sub_out untouched on failure */
  } else {
    if (!sub_ok(sub)) abort();
    const char *t = tok;
    size_t l = tlen;
    if (mode == 0) {
      if (strlen(tok) < 8 || strncasecmp(tok, "Bearer ", 7) != 0) abort();
      t = tok + 7;
      l = strlen(t);
    }
    if (!may_accept(t, l, sub)) abort();
    char again[129];
    if (auth_verify_token(g_auth, t, l, again) != AUTH_OK || strcmp(again, sub) != 0) abort();
  }
  free(tok);
  return 0;
}
