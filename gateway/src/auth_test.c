/* auth_test.c - every acceptance and rejection rule of auth.c, with tokens
 * signed here by RSA keys generated at test time, plus the JWKS fetch and
 * refetch limits against a tiny in-process HTTP server. */
#define _GNU_SOURCE
/* gcc 12 at -O2 (the Release build) reports the tamper case's pointers into
 * a token as dangling: it follows the token freed at the end of the loop's
 * previous round into this one. They are not; the warning is off here. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"

#include "cruddur/check.h"
#define CHECK_CODE(got, want)                                                          \
  do {                                                                                 \
    auth_code g_ = (got), w_ = (want);                                                 \
    if (g_ != w_) {                                                                    \
      fprintf(stderr, "%s:%d: got %s, want %s\n", __FILE__, __LINE__,                  \
              auth_strerror(g_), auth_strerror(w_));                                   \
      failures++;                                                                      \
    }                                                                                  \
  } while (0)

#define ISSUER "http://127.0.0.1:9229/local_test"
#define CLIENT "client123"
#define SUB "0b5e2a8c-1f2d-4c3b-9a8e-7d6c5b4a3f21"

/* ==== signing helpers ======================================================= */

static char *b64url(const unsigned char *p, size_t n) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char *out = malloc(n * 4 / 3 + 4);
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    out[o++] = tbl[v >> 18];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = tbl[(v >> 6) & 63];
    out[o++] = tbl[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)p[i] << 16;
    out[o++] = tbl[v >> 18];
    out[o++] = tbl[(v >> 12) & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
    out[o++] = tbl[v >> 18];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = tbl[(v >> 6) & 63];
  }
  out[o] = '\0';
  return out;
}

static char *b64url_str(const char *s) { return b64url((const unsigned char *)s, strlen(s)); }

static char *bn_b64(EVP_PKEY *k, const char *param) {
  BIGNUM *bn = NULL;
  EVP_PKEY_get_bn_param(k, param, &bn);
  unsigned char buf[1024];
  int n = BN_bn2bin(bn, buf);
  BN_free(bn);
  return b64url(buf, (size_t)n);
}

/* One JWK object for key k with the given kid. Caller frees. */
static char *jwk_json(EVP_PKEY *k, const char *kid) {
  char *n = bn_b64(k, OSSL_PKEY_PARAM_RSA_N), *e = bn_b64(k, OSSL_PKEY_PARAM_RSA_E);
  char *out = NULL;
  if (asprintf(&out, "{\"alg\":\"RS256\",\"e\":\"%s\",\"kid\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\",\"use\":\"sig\"}",
               e, kid, n) < 0)
    out = NULL;
  free(n);
  free(e);
  return out;
}

typedef enum { SIGN_RS256, SIGN_RS512, SIGN_HS256_PUB, SIGN_NONE } sign_kind;

/* header.payload.signature; caller frees. `hmac_key` for SIGN_HS256_PUB. */
static char *make_token(EVP_PKEY *k, sign_kind kind, const char *header, const char *payload) {
  char *h = b64url_str(header), *p = b64url_str(payload), *input = NULL, *sig = NULL,
       *tok = NULL;
  if (asprintf(&input, "%s.%s", h, p) < 0) abort();
  unsigned char s[1024];
  size_t slen = sizeof s;
  if (kind == SIGN_RS256 || kind == SIGN_RS512) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestSignInit(ctx, NULL, kind == SIGN_RS256 ? EVP_sha256() : EVP_sha512(), NULL, k);
    EVP_DigestSign(ctx, s, &slen, (const unsigned char *)input, strlen(input));
    EVP_MD_CTX_free(ctx);
    sig = b64url(s, slen);
  } else if (kind == SIGN_HS256_PUB) {
    /* The classic confusion attack: HMAC keyed with the public key PEM. */
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, k);
    char *pem;
    long pl = BIO_get_mem_data(bio, &pem);
    unsigned int ml = 0;
    HMAC(EVP_sha256(), pem, (int)pl, (const unsigned char *)input, strlen(input), s, &ml);
    BIO_free(bio);
    sig = b64url(s, ml);
  } else {
    sig = strdup("");
  }
  if (asprintf(&tok, "%s.%s", input, sig) < 0) abort();
  free(h);
  free(p);
  free(input);
  free(sig);
  return tok;
}

static char *claims(const char *iss, const char *use, const char *client, const char *sub,
                    long exp_off, const char *extra) {
  char *out = NULL;
  long now = (long)time(NULL);
  char subpart[300] = "";
  if (sub) snprintf(subpart, sizeof subpart, "\"sub\":\"%s\",", sub);
  if (asprintf(&out,
               "{%s\"iss\":\"%s\",\"client_id\":\"%s\",\"origin_jti\":\"x\",\"event_id\":\"e\","
               "\"token_use\":\"%s\",\"scope\":\"aws.cognito.signin.user.admin\","
               "\"auth_time\":%ld,\"exp\":%ld,\"iat\":%ld,\"jti\":\"j\",\"username\":\"u\"%s}",
               subpart, iss, client, use, now - 10, now + exp_off, now - 10,
               extra ? extra : "") < 0)
    abort();
  return out;
}

/* ==== fixtures ============================================================== */

static EVP_PKEY *key1, *key2;
static char *jwks1; /* {"keys":[key1 as "kid1"]} */

static auth *new_auth(int cache_max) {
  auth_config cfg = {.issuer = ISSUER, .client_id = CLIENT, .leeway_s = 60, .cache_max = cache_max};
  auth *a = NULL;
  CHECK(auth_new(&cfg, &a) == 0);
  CHECK(auth_set_jwks(a, jwks1) == 0);
  return a;
}

/* ==== table of token cases ================================================== */

typedef struct tcase {
  const char *name;
  const char *header; /* NULL: RS256 kid1 */
  int key;            /* 1 or 2 */
  sign_kind sign;
  const char *iss, *use, *client, *sub;
  long exp_off;
  const char *extra; /* more claims, starting with ',' */
  int tamper;        /* replace the payload after signing */
  auth_code want;
} tcase;

static const char *H_OK = "{\"kid\":\"kid1\",\"alg\":\"RS256\"}";

static void test_token_cases(void) {
  static char long_sub[200];
  memset(long_sub, 'a', 129);
  long_sub[129] = '\0';
  const tcase cases[] = {
      {"valid", NULL, 1, SIGN_RS256, ISSUER, "access", CLIENT, SUB, 3600, NULL, 0, AUTH_OK},
      {"alg none", "{\"kid\":\"kid1\",\"alg\":\"none\"}", 1, SIGN_NONE, ISSUER, "access", CLIENT,
       SUB, 3600, NULL, 0, AUTH_E_ALG},
      {"alg none, signed", "{\"kid\":\"kid1\",\"alg\":\"none\"}", 1, SIGN_RS256, ISSUER, "access",
       CLIENT, SUB, 3600, NULL, 0, AUTH_E_ALG},
      {"HS256 with public key as secret", "{\"kid\":\"kid1\",\"alg\":\"HS256\"}", 1,
       SIGN_HS256_PUB, ISSUER, "access", CLIENT, SUB, 3600, NULL, 0, AUTH_E_ALG},
      {"RS512", "{\"kid\":\"kid1\",\"alg\":\"RS512\"}", 1, SIGN_RS512, ISSUER, "access", CLIENT,
       SUB, 3600, NULL, 0, AUTH_E_ALG},
      {"alg lower case", "{\"kid\":\"kid1\",\"alg\":\"rs256\"}", 1, SIGN_RS256, ISSUER, "access",
       CLIENT, SUB, 3600, NULL, 0, AUTH_E_ALG},
      {"no alg", "{\"kid\":\"kid1\"}", 1, SIGN_RS256, ISSUER, "access", CLIENT, SUB, 3600, NULL,
       0, AUTH_E_ALG},
      {"crit header", "{\"kid\":\"kid1\",\"alg\":\"RS256\",\"crit\":[\"x\"],\"x\":1}", 1,
       SIGN_RS256, ISSUER, "access", CLIENT, SUB, 3600, NULL, 0, AUTH_E_MALFORMED},
      {"header not JSON", "not json", 1, SIGN_RS256, ISSUER, "access", CLIENT, SUB, 3600, NULL, 0,
       AUTH_E_MALFORMED},
      {"no kid", "{\"alg\":\"RS256\"}", 1, SIGN_RS256, ISSUER, "access", CLIENT, SUB, 3600, NULL,
       0, AUTH_E_KID},
      {"unknown kid", "{\"kid\":\"other\",\"alg\":\"RS256\"}", 1, SIGN_RS256, ISSUER, "access",
       CLIENT, SUB, 3600, NULL, 0, AUTH_E_KID},
      {"tampered payload", NULL, 1, SIGN_RS256, ISSUER, "access", CLIENT, SUB, 3600, NULL, 1,
       AUTH_E_SIGNATURE},
      {"other key, same kid", NULL, 2, SIGN_RS256, ISSUER, "access", CLIENT, SUB, 3600, NULL, 0,
       AUTH_E_SIGNATURE},
      {"expired", NULL, 1, SIGN_RS256, ISSUER, "access", CLIENT, SUB, -61, NULL, 0,
       AUTH_E_EXPIRED},
      {"expired within leeway", NULL, 1, SIGN_RS256, ISSUER, "access", CLIENT, SUB, -30, NULL, 0,
       AUTH_OK},
      {"nbf in future", NULL, 1, SIGN_RS256, ISSUER, "access", CLIENT, SUB, 3600, ",\"nbf\":9999999999",
       0, AUTH_E_NOT_YET_VALID},
      {"nbf within leeway", NULL, 1, SIGN_RS256, ISSUER, "access", CLIENT, SUB, 3600, NULL, 0,
       AUTH_OK},
      {"wrong iss", NULL, 1, SIGN_RS256, "http://127.0.0.1:9229/local_other", "access", CLIENT,
       SUB, 3600, NULL, 0, AUTH_E_ISSUER},
      {"iss with trailing slash", NULL, 1, SIGN_RS256, ISSUER "/", "access", CLIENT, SUB, 3600,
       NULL, 0, AUTH_E_ISSUER},
      {"id token", NULL, 1, SIGN_RS256, ISSUER, "id", CLIENT, SUB, 3600, NULL, 0,
       AUTH_E_TOKEN_USE},
      {"wrong client", NULL, 1, SIGN_RS256, ISSUER, "access", "client999", SUB, 3600, NULL, 0,
       AUTH_E_CLIENT},
      {"missing sub", NULL, 1, SIGN_RS256, ISSUER, "access", CLIENT, NULL, 3600, NULL, 0,
       AUTH_E_MALFORMED},
      {"sub with bad chars", NULL, 1, SIGN_RS256, ISSUER, "access", CLIENT, "a b", 3600, NULL, 0,
       AUTH_E_MALFORMED},
      {"sub too long", NULL, 1, SIGN_RS256, ISSUER, "access", CLIENT, long_sub, 3600, NULL, 0,
       AUTH_E_MALFORMED},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const tcase *tc = &cases[i];
    auth *a = new_auth(100);
    char *pl = claims(tc->iss, tc->use, tc->client, tc->sub, tc->exp_off, tc->extra);
    if (strcmp(tc->name, "nbf within leeway") == 0) {
      free(pl);
      char extra[64];
      snprintf(extra, sizeof extra, ",\"nbf\":%ld", (long)time(NULL) + 30);
      pl = claims(tc->iss, tc->use, tc->client, tc->sub, tc->exp_off, extra);
    }
    char *tok = make_token(tc->key == 1 ? key1 : key2, tc->sign, tc->header ? tc->header : H_OK,
                           pl);
    if (tc->tamper) {
      /* Same header and signature, a payload naming someone else. */
      char *other = claims(tc->iss, tc->use, tc->client, "attacker", tc->exp_off, NULL);
      char *op = b64url_str(other);
      char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
      char *t2 = NULL;
      if (asprintf(&t2, "%.*s.%s%s", (int)(d1 - tok), tok, op, d2) < 0) abort();
      free(tok);
      free(other);
      free(op);
      tok = t2;
    }
    char sub[129] = "untouched";
    auth_code got = auth_verify_token(a, tok, strlen(tok), sub);
    if (got != tc->want) {
      fprintf(stderr, "case '%s': got %s, want %s\n", tc->name, auth_strerror(got),
              auth_strerror(tc->want));
      failures++;
    }
    if (tc->want == AUTH_OK) {
      CHECK(strcmp(sub, tc->sub) == 0);
    } else {
      CHECK(strcmp(sub, "untouched") == 0);
    }
    /* Via the header too: same answer. */
    char *hdr = NULL;
    if (asprintf(&hdr, "Bearer %s", tok) < 0) abort();
    CHECK_CODE(auth_verify_header(a, hdr, sub), tc->want);
    free(hdr);
    free(tok);
    free(pl);
    auth_free(a);
  }
}

/* ==== header shapes ========================================================== */

static void test_header_shapes(void) {
  auth *a = new_auth(100);
  char *pl = claims(ISSUER, "access", CLIENT, SUB, 3600, NULL);
  char *tok = make_token(key1, SIGN_RS256, H_OK, pl);
  char sub[129];
  char buf[9000];
  struct {
    const char *pre, *post;
    auth_code want;
  } cases[] = {
      {"Bearer ", "", AUTH_OK},          {"bearer ", "", AUTH_OK},
      {"BEARER ", "", AUTH_OK},          {"Bearer  ", "", AUTH_E_MALFORMED},
      {"Bearer ", " x", AUTH_E_MALFORMED}, {"Bearer ", " ", AUTH_E_MALFORMED},
      {"Basic ", "", AUTH_E_MISSING},    {"Bearer", "", AUTH_E_MISSING},
      {"Bearer\t", "", AUTH_E_MISSING},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(buf, sizeof buf, "%s%s%s", cases[i].pre, tok, cases[i].post);
    auth_code got = auth_verify_header(a, buf, sub);
    if (got != cases[i].want) {
      fprintf(stderr, "header case %zu '%s..%s': got %s\n", i, cases[i].pre, cases[i].post,
              auth_strerror(got));
      failures++;
    }
  }
  CHECK_CODE(auth_verify_header(a, NULL, sub), AUTH_E_MISSING);
  CHECK_CODE(auth_verify_header(a, "", sub), AUTH_E_MISSING);
  CHECK_CODE(auth_verify_header(a, "Basic x", sub), AUTH_E_MISSING);
  CHECK_CODE(auth_verify_header(a, "Bearer", sub), AUTH_E_MALFORMED);
  CHECK_CODE(auth_verify_header(a, "Bearer ", sub), AUTH_E_MALFORMED);
  /* Structure: three non-empty base64url parts, at most 8 KiB. */
  CHECK_CODE(auth_verify_header(a, "Bearer a.b", sub), AUTH_E_MALFORMED);
  CHECK_CODE(auth_verify_header(a, "Bearer a.b.c.d", sub), AUTH_E_MALFORMED);
  CHECK_CODE(auth_verify_header(a, "Bearer .b.c", sub), AUTH_E_MALFORMED);
  CHECK_CODE(auth_verify_header(a, "Bearer a..c", sub), AUTH_E_MALFORMED);
  CHECK_CODE(auth_verify_header(a, "Bearer a+b.c.d", sub), AUTH_E_MALFORMED);
  CHECK_CODE(auth_verify_header(a, "Bearer a=.b.c", sub), AUTH_E_MALFORMED);
  CHECK_CODE(auth_verify_token(a, "", 0, sub), AUTH_E_MALFORMED);
  /* RS256 header but no signature part. */
  char *nosig = strdup(tok);
  *(strrchr(nosig, '.') + 1) = '\0';
  CHECK_CODE(auth_verify_token(a, nosig, strlen(nosig), sub), AUTH_E_MALFORMED);
  free(nosig);
  /* Oversized: a valid-looking token past 8 KiB. */
  char pad[8200];
  memset(pad, 'a', sizeof pad - 1);
  pad[sizeof pad - 1] = '\0';
  char *big = claims(ISSUER, "access", CLIENT, SUB, 3600, NULL);
  char *bigpl = NULL;
  if (asprintf(&bigpl, "%.*s,\"pad\":\"%s\"}", (int)strlen(big) - 1, big, pad) < 0) abort();
  char *bigtok = make_token(key1, SIGN_RS256, H_OK, bigpl);
  CHECK(strlen(bigtok) > 8192);
  CHECK_CODE(auth_verify_token(a, bigtok, strlen(bigtok), sub), AUTH_E_MALFORMED);
  /* Not NUL-terminated: only len bytes are read. */
  char *copy = malloc(strlen(tok) + 5);
  memcpy(copy, tok, strlen(tok));
  memcpy(copy + strlen(tok), "XXXX", 4);
  CHECK_CODE(auth_verify_token(a, copy, strlen(tok), sub), AUTH_OK);
  free(copy);
  free(big);
  free(bigpl);
  free(bigtok);
  free(tok);
  free(pl);
  auth_free(a);
  CHECK(strcmp(auth_strerror(AUTH_E_EXPIRED), "expired") == 0);
}

/* ==== cache ================================================================== */

static void test_cache(void) {
  auth *a = new_auth(4);
  char sub[129];
  auth_stats st;
  char *pl = claims(ISSUER, "access", CLIENT, SUB, 3600, NULL);
  char *tok = make_token(key1, SIGN_RS256, H_OK, pl);
  CHECK_CODE(auth_verify_token(a, tok, strlen(tok), sub), AUTH_OK);
  auth_get_stats(a, &st);
  CHECK(st.cache_hits == 0 && st.cache_misses == 1 && st.cache_entries == 1);
  CHECK_CODE(auth_verify_token(a, tok, strlen(tok), sub), AUTH_OK);
  CHECK(strcmp(sub, SUB) == 0);
  auth_get_stats(a, &st);
  CHECK(st.cache_hits == 1 && st.cache_misses == 1);
  /* A hit is the same token byte for byte: one changed in its signature or
   * cut short is verified afresh (and refused), never answered from the
   * cached one's entry. */
  size_t n = strlen(tok);
  char *alt = strdup(tok);
  alt[n - 10] = alt[n - 10] == 'A' ? 'B' : 'A';
  CHECK_CODE(auth_verify_token(a, alt, n, sub), AUTH_E_SIGNATURE);
  CHECK(auth_verify_token(a, tok, n - 1, sub) != AUTH_OK);
  auth_get_stats(a, &st);
  CHECK(st.cache_hits == 1 && st.cache_misses == 3 && st.cache_entries == 1);
  free(alt);
  /* Bounded: ten distinct tokens leave four entries, the first evicted. */
  for (int i = 0; i < 10; i++) {
    char s[32], *p, *t;
    snprintf(s, sizeof s, "user-%d", i);
    p = claims(ISSUER, "access", CLIENT, s, 3600 + i, NULL);
    t = make_token(key1, SIGN_RS256, H_OK, p);
    CHECK_CODE(auth_verify_token(a, t, strlen(t), sub), AUTH_OK);
    CHECK(strcmp(sub, s) == 0);
    free(p);
    free(t);
  }
  auth_get_stats(a, &st);
  CHECK(st.cache_entries == 4);
  uint64_t misses = st.cache_misses;
  CHECK_CODE(auth_verify_token(a, tok, strlen(tok), sub), AUTH_OK);
  auth_get_stats(a, &st);
  CHECK(st.cache_misses == misses + 1); /* evicted, verified again */
  CHECK(st.rejected == 2); /* the two variants above */
  /* A cached token that expires is refused on a hit: a token valid for 1 s
   * beyond the leeway... emulate with a leeway of 1 s and exp now+1. */
  auth_config cfg = {.issuer = ISSUER, .client_id = CLIENT, .leeway_s = 1, .cache_max = 8};
  auth *b = NULL;
  CHECK(auth_new(&cfg, &b) == 0);
  CHECK(auth_set_jwks(b, jwks1) == 0);
  char *p2 = claims(ISSUER, "access", CLIENT, SUB, 1, NULL);
  char *t2 = make_token(key1, SIGN_RS256, H_OK, p2);
  CHECK_CODE(auth_verify_token(b, t2, strlen(t2), sub), AUTH_OK);
  sleep(3);
  CHECK_CODE(auth_verify_token(b, t2, strlen(t2), sub), AUTH_E_EXPIRED);
  auth_get_stats(b, &st);
  CHECK(st.cache_hits == 1 && st.rejected == 1);
  /* Expired entries are swept before the oldest live one is evicted: after
   * eight more, the first of them is still cached. */
  char *fill[8];
  for (int i = 0; i < 8; i++) {
    char s[32], *p;
    snprintf(s, sizeof s, "fill-%d", i);
    p = claims(ISSUER, "access", CLIENT, s, 3600, NULL);
    fill[i] = make_token(key1, SIGN_RS256, H_OK, p);
    CHECK_CODE(auth_verify_token(b, fill[i], strlen(fill[i]), sub), AUTH_OK);
    free(p);
  }
  auth_get_stats(b, &st);
  CHECK(st.cache_entries == 8);
  uint64_t hits = st.cache_hits;
  CHECK_CODE(auth_verify_token(b, fill[0], strlen(fill[0]), sub), AUTH_OK);
  CHECK(strcmp(sub, "fill-0") == 0);
  auth_get_stats(b, &st);
  CHECK(st.cache_hits == hits + 1);
  for (int i = 0; i < 8; i++) free(fill[i]);
  free(p2);
  free(t2);
  auth_free(b);
  free(pl);
  free(tok);
  auth_free(a);

  /* Bad configurations and JWKS documents. */
  auth *c = NULL;
  auth_config none = {.issuer = ISSUER};
  CHECK(auth_new(&none, &c) == -1 && c == NULL);
  c = new_auth(2);
  CHECK(auth_set_jwks(c, "{\"keys\":[]}") == -1);
  CHECK(auth_set_jwks(c, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"x\",\"k\":\"AAAA\"}]}") == -1);
  CHECK(auth_set_jwks(c, "nope") == -1);
  auth_get_stats(c, &st);
  CHECK(st.jwks_keys == 1); /* the previous set stays */
  auth_free(c);
}

/* ==== clock leeway ============================================================ */

/* Zero means zero (it once silently became 60 s); out of range is refused. */
static void test_leeway(void) {
  char sub[129], extra[64];
  auth_config cfg = {.issuer = ISSUER, .client_id = CLIENT, .leeway_s = 0};
  auth *a = NULL;
  CHECK(auth_new(&cfg, &a) == 0);
  CHECK(auth_set_jwks(a, jwks1) == 0);
  char *p1 = claims(ISSUER, "access", CLIENT, SUB, -5, NULL);
  char *t1 = make_token(key1, SIGN_RS256, H_OK, p1);
  CHECK_CODE(auth_verify_token(a, t1, strlen(t1), sub), AUTH_E_EXPIRED);
  snprintf(extra, sizeof extra, ",\"nbf\":%ld", (long)time(NULL) + 5);
  char *p2 = claims(ISSUER, "access", CLIENT, SUB, 3600, extra);
  char *t2 = make_token(key1, SIGN_RS256, H_OK, p2);
  CHECK_CODE(auth_verify_token(a, t2, strlen(t2), sub), AUTH_E_NOT_YET_VALID);
  char *p3 = claims(ISSUER, "access", CLIENT, SUB, 30, NULL);
  char *t3 = make_token(key1, SIGN_RS256, H_OK, p3);
  CHECK_CODE(auth_verify_token(a, t3, strlen(t3), sub), AUTH_OK);
  auth_free(a);
  /* The same token within a 10 s leeway. */
  cfg.leeway_s = 10;
  CHECK(auth_new(&cfg, &a) == 0);
  CHECK(auth_set_jwks(a, jwks1) == 0);
  CHECK_CODE(auth_verify_token(a, t1, strlen(t1), sub), AUTH_OK);
  auth_free(a);
  const int bad[] = {-1, AUTH_LEEWAY_MAX_S + 1};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cfg.leeway_s = bad[i];
    a = NULL;
    CHECK(auth_new(&cfg, &a) == -1 && a == NULL);
  }
  free(p1);
  free(t1);
  free(p2);
  free(t2);
  free(p3);
  free(t3);
}

/* ==== JWKS fetching ============================================================ */

typedef struct jserver {
  int lfd, port;
  pthread_t th;
  atomic_bool stop;
  pthread_mutex_t mu;
  char *body;
  int requests;
  char path[256];
} jserver;

static void *jserver_main(void *arg) {
  jserver *s = arg;
  while (!atomic_load(&s->stop)) {
    struct pollfd p = {.fd = s->lfd, .events = POLLIN};
    if (poll(&p, 1, 20) <= 0) continue;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0) continue;
    char req[4096];
    size_t len = 0;
    while (len < sizeof req - 1 && !memmem(req, len, "\r\n\r\n", 4)) {
      ssize_t r = recv(fd, req + len, sizeof req - 1 - len, 0);
      if (r <= 0) break;
      len += (size_t)r;
    }
    req[len] = '\0';
    pthread_mutex_lock(&s->mu);
    s->requests++;
    sscanf(req, "GET %255s", s->path);
    char *resp = NULL;
    if (asprintf(&resp, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 strlen(s->body), s->body) < 0)
      resp = NULL;
    pthread_mutex_unlock(&s->mu);
    if (resp) send(fd, resp, strlen(resp), MSG_NOSIGNAL);
    free(resp);
    close(fd);
  }
  return NULL;
}

static void jserver_start(jserver *s, const char *body) {
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  s->body = strdup(body);
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  bind(s->lfd, (struct sockaddr *)&a, sizeof a);
  listen(s->lfd, 16);
  getsockname(s->lfd, (struct sockaddr *)&a, &al);
  s->port = ntohs(a.sin_port);
  pthread_create(&s->th, NULL, jserver_main, s);
}

static void jserver_set(jserver *s, const char *body) {
  pthread_mutex_lock(&s->mu);
  free(s->body);
  s->body = strdup(body);
  pthread_mutex_unlock(&s->mu);
}

static void jserver_stop(jserver *s) {
  atomic_store(&s->stop, true);
  pthread_join(s->th, NULL);
  close(s->lfd);
  free(s->body);
  pthread_mutex_destroy(&s->mu);
}

static void test_jwks_fetch(void) {
  jserver s;
  jserver_start(&s, jwks1);
  char issuer[128];
  snprintf(issuer, sizeof issuer, "http://127.0.0.1:%d/local_pool", s.port);
  auth_config cfg = {.issuer = issuer, .client_id = CLIENT, .jwks_min_refresh_s = 1};
  auth *a = NULL;
  CHECK(auth_new(&cfg, &a) == 0);
  auth_stats st;
  auth_get_stats(a, &st);
  CHECK(st.jwks_fetches == 0 && st.jwks_keys == 0); /* nothing fetched at creation */
  char sub[129];
  char *pl = claims(issuer, "access", CLIENT, SUB, 3600, NULL);
  char *t1 = make_token(key1, SIGN_RS256, H_OK, pl);
  char *t2 = make_token(key2, SIGN_RS256, "{\"kid\":\"kid2\",\"alg\":\"RS256\"}", pl);
  char *t3 = make_token(key2, SIGN_RS256, "{\"kid\":\"kid3\",\"alg\":\"RS256\"}", pl);
  CHECK_CODE(auth_verify_token(a, t1, strlen(t1), sub), AUTH_OK);
  CHECK(strcmp(s.path, "/local_pool/.well-known/jwks.json") == 0);
  auth_get_stats(a, &st);
  CHECK(st.jwks_fetches == 1 && st.jwks_failures == 0 && st.jwks_keys == 1);
  /* kid2 is unknown and the set was fetched just now: no refetch. */
  CHECK_CODE(auth_verify_token(a, t2, strlen(t2), sub), AUTH_E_KID);
  auth_get_stats(a, &st);
  CHECK(st.jwks_fetches == 1);
  /* The pool rotates keys; after the interval, kid2 triggers one refetch. */
  char *k1 = jwk_json(key1, "kid1"), *k2 = jwk_json(key2, "kid2"), *both = NULL;
  if (asprintf(&both, "{\"keys\":[%s,%s]}", k1, k2) < 0) abort();
  jserver_set(&s, both);
  usleep(1100 * 1000);
  CHECK_CODE(auth_verify_token(a, t2, strlen(t2), sub), AUTH_OK);
  auth_get_stats(a, &st);
  CHECK(st.jwks_fetches == 2 && st.jwks_keys == 2);
  /* kid3: unknown again within the interval, no fetch. */
  CHECK_CODE(auth_verify_token(a, t3, strlen(t3), sub), AUTH_E_KID);
  CHECK_CODE(auth_verify_token(a, t3, strlen(t3), sub), AUTH_E_KID);
  auth_get_stats(a, &st);
  CHECK(st.jwks_fetches == 2);
  pthread_mutex_lock(&s.mu);
  CHECK(s.requests == 2);
  pthread_mutex_unlock(&s.mu);
  auth_free(a);
  jserver_stop(&s);

  /* Nothing listening: 503-class answer, and not a fetch per request. */
  snprintf(issuer, sizeof issuer, "http://127.0.0.1:%d/local_pool", s.port);
  CHECK(auth_new(&cfg, &a) == 0);
  CHECK_CODE(auth_verify_token(a, t1, strlen(t1), sub), AUTH_E_JWKS_UNAVAILABLE);
  CHECK_CODE(auth_verify_token(a, t1, strlen(t1), sub), AUTH_E_JWKS_UNAVAILABLE);
  auth_get_stats(a, &st);
  CHECK(st.jwks_fetches == 1 && st.jwks_failures == 1 && st.rejected == 2);
  auth_free(a);
  free(k1);
  free(k2);
  free(both);
  free(pl);
  free(t1);
  free(t2);
  free(t3);
}

/* A key removed from the served JWKS stops being trusted within the refresh
 * interval, cached tokens signed with it included; one that stays is not
 * affected, and an unreachable JWKS keeps the last keys. */
static void test_jwks_key_removed(void) {
  char *k1 = jwk_json(key1, "kid1"), *k2 = jwk_json(key2, "kid2"), *both = NULL, *only2 = NULL;
  if (asprintf(&both, "{\"keys\":[%s,%s]}", k1, k2) < 0) abort();
  if (asprintf(&only2, "{\"keys\":[%s]}", k2) < 0) abort();
  jserver s;
  jserver_start(&s, both);
  char issuer[128];
  snprintf(issuer, sizeof issuer, "http://127.0.0.1:%d/local_pool", s.port);
  auth_config cfg = {.issuer = issuer, .client_id = CLIENT, .leeway_s = 60,
                     .jwks_min_refresh_s = 1, .jwks_refresh_s = 1};
  auth *a = NULL;
  CHECK(auth_new(&cfg, &a) == 0);
  char sub[129];
  char *pl = claims(issuer, "access", CLIENT, SUB, 3600, NULL);
  char *t1 = make_token(key1, SIGN_RS256, H_OK, pl);
  char *t2 = make_token(key2, SIGN_RS256, "{\"kid\":\"kid2\",\"alg\":\"RS256\"}", pl);
  CHECK_CODE(auth_verify_token(a, t1, strlen(t1), sub), AUTH_OK);
  CHECK_CODE(auth_verify_token(a, t1, strlen(t1), sub), AUTH_OK); /* cached */
  CHECK_CODE(auth_verify_token(a, t2, strlen(t2), sub), AUTH_OK);
  auth_stats st;
  auth_get_stats(a, &st);
  CHECK(st.jwks_fetches == 1 && st.cache_hits == 1 && st.cache_entries == 2);
  /* kid1 is retired; before the interval the set is not refetched. */
  jserver_set(&s, only2);
  CHECK_CODE(auth_verify_token(a, t1, strlen(t1), sub), AUTH_OK);
  usleep(1100 * 1000);
  CHECK_CODE(auth_verify_token(a, t1, strlen(t1), sub), AUTH_E_KID);
  CHECK_CODE(auth_verify_token(a, t2, strlen(t2), sub), AUTH_OK);
  auth_get_stats(a, &st);
  CHECK(st.jwks_fetches == 2 && st.jwks_keys == 1);
  /* The JWKS goes away: kid2 stays trusted, the fetch is retried once per
   * interval, not per request. */
  jserver_stop(&s);
  usleep(1100 * 1000);
  for (int i = 0; i < 3; i++) CHECK_CODE(auth_verify_token(a, t2, strlen(t2), sub), AUTH_OK);
  auth_get_stats(a, &st);
  CHECK(st.jwks_fetches == 3 && st.jwks_failures == 1 && st.jwks_keys == 1);
  auth_free(a);
  free(pl);
  free(t1);
  free(t2);
  free(k1);
  free(k2);
  free(both);
  free(only2);
}

/* ==== threads ================================================================== */

typedef struct warg {
  auth *a;
  char *tok[4];
  int ok;
} warg;

static void *worker(void *p) {
  warg *w = p;
  char sub[129];
  for (int i = 0; i < 200; i++)
    if (auth_verify_token(w->a, w->tok[i % 4], strlen(w->tok[i % 4]), sub) == AUTH_OK) w->ok++;
  return NULL;
}

static void test_threads(void) {
  auth *a = new_auth(2); /* small: constant eviction while verifying */
  warg w[4];
  char *toks[4];
  for (int i = 0; i < 4; i++) {
    char s[16];
    snprintf(s, sizeof s, "t%d", i);
    char *p = claims(ISSUER, "access", CLIENT, s, 3600, NULL);
    toks[i] = make_token(key1, SIGN_RS256, H_OK, p);
    free(p);
  }
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    w[i].a = a;
    w[i].ok = 0;
    memcpy(w[i].tok, toks, sizeof toks);
    pthread_create(&th[i], NULL, worker, &w[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    CHECK(w[i].ok == 200);
  }
  auth_stats st;
  auth_get_stats(a, &st);
  CHECK(st.cache_hits + st.cache_misses == 800 && st.cache_entries == 2);
  for (int i = 0; i < 4; i++) free(toks[i]);
  auth_free(a);
}

int main(void) {
  key1 = EVP_RSA_gen(2048);
  key2 = EVP_RSA_gen(2048);
  char *k = jwk_json(key1, "kid1");
  if (asprintf(&jwks1, "{\"keys\":[%s]}", k) < 0) abort();
  free(k);
  test_token_cases();
  test_header_shapes();
  test_cache();
  test_leeway();
  test_jwks_fetch();
  test_jwks_key_removed();
  test_threads();
  free(jwks1);
  EVP_PKEY_free(key1);
  EVP_PKEY_free(key2);
  if (failures) {
    fprintf(stderr, "auth_test: %d failure(s)\n", failures);
    return 1;
  }
  printf("auth_test: ok\n");
  return 0;
}
