/* auth.c - Cognito access-token verification (see auth.h for the rules).
 *
 * Locks: `jwks_mu` guards the current key set pointer and the fetch clocks;
 * `fetch_mu` lets one thread at a time fetch; `cache_lock` (rwlock) guards
 * the verified-token cache. Key sets are immutable and reference counted so a
 * refetch can replace one while other threads still verify with it.
 * Order: fetch_mu before jwks_mu before cache_lock, never the other way.
 */
#define _GNU_SOURCE
#include "auth.h"
#include "cruddur/dbuf.h"

#include <cjose/cjose.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define AUTH_TOKEN_MAX 8192
#define AUTH_KID_MAX 256
#define AUTH_SUB_MAX 128
#define AUTH_JWKS_CAP ((size_t)256 << 10)
#define AUTH_JWKS_MAX_KEYS 64
#define AUTH_JWKS_TIMEOUT_MS 3000L
#define AUTH_JWKS_CONNECT_MS 2000L
#define AUTH_NOKEYS_RETRY_MS 1000 /* with no keys at all, refetch at most this often */
#define AUTH_SWEEP_EVERY_S 1      /* full expiry sweep of a full cache at most this often */
/* Most bytes of token text the verified-token cache holds (it keeps each
 * token whole, see "verified-token cache"): about 7,000 Cognito access
 * tokens of ~1.1 KiB; past it the oldest entries make room. */
#define AUTH_CACHE_TOKEN_BYTES ((size_t)8 << 20)

/* ---- key sets ------------------------------------------------------------ */

typedef struct keyset {
  int refs;       /* __atomic */
  uint64_t epoch; /* auth.epoch when installed (see keys_install) */
  size_t n;
  char *kid[AUTH_JWKS_MAX_KEYS];
  cjose_jwk_t *jwk[AUTH_JWKS_MAX_KEYS];
} keyset;

static void keyset_release(keyset *ks) {
  if (!ks || __atomic_sub_fetch(&ks->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  for (size_t i = 0; i < ks->n; i++) {
    free(ks->kid[i]);
    cjose_jwk_release(ks->jwk[i]);
  }
  free(ks);
}

static cjose_jwk_t *keyset_find(const keyset *ks, const char *kid) {
  for (size_t i = 0; ks && i < ks->n; i++)
    if (strcmp(ks->kid[i], kid) == 0) return ks->jwk[i];
  return NULL;
}

static const char *json_str(const cJSON *obj, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* 1 when s is non-empty unpadded base64url of a length that can decode.
 * libcjose asserts (aborts the process) on some malformed input, such as a
 * '=' inside the text, so nothing unchecked may reach it. */
static int b64url_ok(const char *s) {
  size_t n = 0;
  if (s == NULL) return 0;
  for (; s[n] != '\0'; n++) {
    char c = s[n];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_'))
      return 0;
  }
  return n > 0 && n % 4 != 1 && n <= 4096;
}

/* A JWK object holding only the public RSA members, after checking them:
 * the caller frees it with free(). NULL when a member is missing or bad. */
static char *rsa_public_jwk(const cJSON *k, const char *kid) {
  const char *n = json_str(k, "n"), *e = json_str(k, "e");
  if (!b64url_ok(n) || !b64url_ok(e)) return NULL;
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) return NULL;
  cJSON_AddStringToObject(o, "kty", "RSA");
  cJSON_AddStringToObject(o, "kid", kid);
  cJSON_AddStringToObject(o, "n", n);
  cJSON_AddStringToObject(o, "e", e);
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return text;
}

/* Parses {"keys":[...]}, importing each usable RSA signing key on its own
 * (cjose_jwk_import takes one JWK object). NULL when none is usable. */
static keyset *keyset_parse(const char *json, size_t len) {
  cJSON *root = cJSON_ParseWithLength(json, len);
  const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
  keyset *ks = cJSON_IsArray(keys) ? calloc(1, sizeof *ks) : NULL;
  if (!ks) {
    cJSON_Delete(root);
    return NULL;
  }
  ks->refs = 1;
  const cJSON *k;
  cJSON_ArrayForEach(k, keys) {
    if (ks->n == AUTH_JWKS_MAX_KEYS) break;
    const char *kid = json_str(k, "kid"), *kty = json_str(k, "kty");
    const char *use = json_str(k, "use"), *alg = json_str(k, "alg");
    if (!kid || !kid[0] || strlen(kid) > AUTH_KID_MAX || !kty || strcmp(kty, "RSA") != 0 ||
        (use && strcmp(use, "sig") != 0) || (alg && strcmp(alg, "RS256") != 0) ||
        keyset_find(ks, kid))
      continue;
    char *one = rsa_public_jwk(k, kid);
    cjose_err err;
    cjose_jwk_t *jwk = one ? cjose_jwk_import(one, strlen(one), &err) : NULL;
    free(one);
    if (!jwk) continue;
    if (cjose_jwk_get_kty(jwk, &err) != CJOSE_JWK_KTY_RSA || !(ks->kid[ks->n] = strdup(kid))) {
      cjose_jwk_release(jwk);
      continue;
    }
    ks->jwk[ks->n++] = jwk;
  }
  cJSON_Delete(root);
  if (ks->n == 0) {
    keyset_release(ks);
    return NULL;
  }
  return ks;
}

/* ---- verified-token cache ------------------------------------------------- */

/* Each entry keeps the whole token it was verified for, and a hit needs the
 * presented token to equal it byte for byte: no two tokens can share an
 * entry, whatever their hashes, so a forged token can never be answered
 * with another token's verdict. The hash only picks the bucket. It is
 * SipHash-2-4 (OpenSSL's) under a random key drawn at start: tokens that
 * reach the cache are signed by the pool, and even someone who could pick
 * them could not aim them at one bucket without the key. (A SHA-256 of
 * the ~1 KiB token was a ninth of a cached request's instructions; the
 * keyed hash is a fifth of that, and the comparison a few hundred more.) */

typedef struct centry {
  uint64_t h;
  char *tok; /* owned: the token's bytes (tok_len, no NUL) */
  size_t tok_len;
  int64_t exp;
  int32_t next;         /* bucket chain, or free list */
  int32_t older, newer; /* insertion order, for evicting the oldest */
  char sub[AUTH_SUB_MAX + 1];
} centry;

typedef struct tcache {
  centry *e;
  int32_t *bucket;
  uint32_t mask;
  int32_t cap, count, free_head, oldest, newest;
  int32_t fresh; /* e[fresh..cap) never used yet: free without a list, so
                    an idle gateway has not touched the array's pages */
  size_t bytes; /* token bytes held, at most AUTH_CACHE_TOKEN_BYTES */
  int64_t last_sweep_s;
  EVP_MAC_CTX *mac; /* owned; SipHash keyed at init, copied for each hash */
} tcache;

static void tcache_free_lists(tcache *c) {
  for (uint32_t i = 0; i <= c->mask; i++) c->bucket[i] = -1;
  c->free_head = -1;
  c->fresh = 0;
  c->oldest = c->newest = -1;
  c->count = 0;
  c->bytes = 0;
}

/* A SipHash-2-4 context under a fresh random key, or NULL. */
static EVP_MAC_CTX *tcache_mac_new(void) {
  unsigned char key[16];
  size_t out = 8;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &out), OSSL_PARAM_END};
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
  EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
  EVP_MAC_free(mac); /* the context holds its own reference */
  if (ctx == NULL || RAND_bytes(key, sizeof key) != 1 ||
      EVP_MAC_init(ctx, key, sizeof key, params) != 1) {
    EVP_MAC_CTX_free(ctx);
    ctx = NULL;
  }
  OPENSSL_cleanse(key, sizeof key);
  return ctx;
}

static int tcache_init(tcache *c, int cap) {
  uint32_t nb = 16;
  while (nb < (uint32_t)cap) nb <<= 1;
  c->e = calloc((size_t)cap, sizeof *c->e);
  c->bucket = malloc(nb * sizeof *c->bucket);
  c->mac = tcache_mac_new();
  if (!c->e || !c->bucket || !c->mac) {
    free(c->e);
    free(c->bucket);
    EVP_MAC_CTX_free(c->mac);
    return -1;
  }
  c->mask = nb - 1;
  c->cap = cap;
  tcache_free_lists(c);
  return 0;
}

/* Forgets every entry (the arrays stay). */
static void tcache_clear(tcache *c) {
  for (int32_t i = c->oldest; i >= 0; i = c->e[i].newer) {
    free(c->e[i].tok);
    c->e[i].tok = NULL;
  }
  tcache_free_lists(c);
}

static void tcache_destroy(tcache *c) {
  tcache_clear(c);
  free(c->e);
  free(c->bucket);
  EVP_MAC_CTX_free(c->mac);
}

/* The token's keyed hash. The shared context is only read (copied), so
 * any number of threads may hash at once. Returns 0, or -1 out of memory. */
static int tcache_hash(const tcache *c, const char *tok, size_t len, uint64_t *h) {
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(c->mac);
  unsigned char out[8];
  size_t n = 0;
  int ok = ctx != NULL && EVP_MAC_update(ctx, (const unsigned char *)tok, len) == 1 &&
           EVP_MAC_final(ctx, out, &n, sizeof out) == 1 && n == sizeof out;
  EVP_MAC_CTX_free(ctx);
  if (!ok) return -1;
  memcpy(h, out, sizeof *h);
  return 0;
}

static uint32_t tcache_slot(const tcache *c, uint64_t h) {
  return (uint32_t)h & c->mask;
}

static int32_t tcache_find(const tcache *c, uint64_t h, const char *tok, size_t len) {
  for (int32_t i = c->bucket[tcache_slot(c, h)]; i >= 0; i = c->e[i].next) {
    const centry *e = &c->e[i];
    if (e->h == h && e->tok_len == len && memcmp(e->tok, tok, len) == 0) return i;
  }
  return -1;
}

static void tcache_remove(tcache *c, int32_t i) {
  centry *e = &c->e[i];
  int32_t *pp = &c->bucket[tcache_slot(c, e->h)];
  while (*pp != i) pp = &c->e[*pp].next;
  *pp = e->next;
  if (e->older >= 0) c->e[e->older].newer = e->newer;
  else c->oldest = e->newer;
  if (e->newer >= 0) c->e[e->newer].older = e->older;
  else c->newest = e->older;
  c->bytes -= e->tok_len;
  free(e->tok);
  e->tok = NULL;
  e->next = c->free_head;
  c->free_head = i;
  c->count--;
}

static void tcache_insert(tcache *c, uint64_t h, const char *tok, size_t len, const char *sub,
                          int64_t exp, int64_t now, int leeway) {
  if (tcache_find(c, h, tok, len) >= 0) return; /* another thread was first */
  char *copy = malloc(len);
  if (copy == NULL) return; /* verified, just not remembered */
  memcpy(copy, tok, len);
  if (c->count == c->cap && now - c->last_sweep_s >= AUTH_SWEEP_EVERY_S) {
    c->last_sweep_s = now;
    for (int32_t i = c->oldest; i >= 0;) {
      int32_t nx = c->e[i].newer;
      if (c->e[i].exp <= now - leeway) tcache_remove(c, i);
      i = nx;
    }
  }
  while (c->count > 0 && (c->count == c->cap || c->bytes + len > AUTH_CACHE_TOKEN_BYTES))
    tcache_remove(c, c->oldest);
  /* count < cap here: a freed entry, or else one never used. */
  int32_t i = c->free_head >= 0 ? c->free_head : c->fresh++;
  centry *e = &c->e[i];
  if (i == c->free_head) c->free_head = e->next;
  e->h = h;
  e->tok = copy;
  e->tok_len = len;
  c->bytes += len;
  e->exp = exp;
  snprintf(e->sub, sizeof e->sub, "%s", sub);
  uint32_t s = tcache_slot(c, h);
  e->next = c->bucket[s];
  c->bucket[s] = i;
  e->older = c->newest;
  e->newer = -1;
  if (c->newest >= 0) c->e[c->newest].newer = i;
  else c->oldest = i;
  c->newest = i;
  c->count++;
}

/* ---- the verifier ----------------------------------------------------------- */

struct auth {
  char *issuer, *client_id, *jwks_url;
  int leeway_s, min_refresh_s, refresh_s;
  pthread_mutex_t jwks_mu, fetch_mu;
  keyset *keys;
  bool fixed;           /* auth_set_jwks: never fetch */
  bool attempted;       /* a fetch was tried at least once */
  int64_t last_fetch_ms; /* the last attempt */
  int64_t keys_at_ms;    /* when `keys` was fetched */
  /* Bumped when an installed set drops a kid that the previous one had:
   * tokens verified under an older epoch are no longer cached. */
  atomic_uint_fast64_t epoch;
  pthread_rwlock_t cache_lock;
  tcache cache;
  atomic_uint_fast64_t hits, misses, fetches, fetch_failures, rejected;
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int auth_new(const auth_config *cfg, auth **out) {
  if (!cfg || !out || !cfg->issuer || !cfg->issuer[0] || !cfg->client_id ||
      !cfg->client_id[0] || cfg->leeway_s < 0 || cfg->leeway_s > AUTH_LEEWAY_MAX_S)
    return -1;
  pthread_once(&curl_once, curl_init_once);
  auth *a = calloc(1, sizeof *a);
  if (!a) return -1;
  a->issuer = strdup(cfg->issuer);
  a->client_id = strdup(cfg->client_id);
  if (cfg->jwks_url && cfg->jwks_url[0]) {
    a->jwks_url = strdup(cfg->jwks_url);
  } else if (asprintf(&a->jwks_url, "%s/.well-known/jwks.json", cfg->issuer) < 0) {
    a->jwks_url = NULL;
  }
  a->leeway_s = cfg->leeway_s;
  a->min_refresh_s =
      cfg->jwks_min_refresh_s > 0 ? cfg->jwks_min_refresh_s : AUTH_JWKS_MIN_REFRESH_S;
  a->refresh_s = cfg->jwks_refresh_s > 0 ? cfg->jwks_refresh_s : AUTH_JWKS_REFRESH_S;
  int cap = cfg->cache_max > 0 ? cfg->cache_max : 10000;
  if (cap > (1 << 24)) cap = 1 << 24;
  if (!a->issuer || !a->client_id || !a->jwks_url || tcache_init(&a->cache, cap) != 0) {
    free(a->issuer);
    free(a->client_id);
    free(a->jwks_url);
    free(a);
    return -1;
  }
  pthread_mutex_init(&a->jwks_mu, NULL);
  pthread_mutex_init(&a->fetch_mu, NULL);
  pthread_rwlock_init(&a->cache_lock, NULL);
  *out = a;
  return 0;
}

void auth_free(auth *a) {
  if (!a) return;
  keyset_release(a->keys);
  pthread_mutex_destroy(&a->jwks_mu);
  pthread_mutex_destroy(&a->fetch_mu);
  pthread_rwlock_destroy(&a->cache_lock);
  tcache_destroy(&a->cache);
  free(a->issuer);
  free(a->client_id);
  free(a->jwks_url);
  free(a);
}

const char *auth_strerror(auth_code c) {
  switch (c) {
  case AUTH_OK: return "ok";
  case AUTH_E_MISSING: return "missing";
  case AUTH_E_MALFORMED: return "malformed";
  case AUTH_E_ALG: return "bad_alg";
  case AUTH_E_KID: return "unknown_kid";
  case AUTH_E_SIGNATURE: return "bad_signature";
  case AUTH_E_EXPIRED: return "expired";
  case AUTH_E_NOT_YET_VALID: return "not_yet_valid";
  case AUTH_E_ISSUER: return "bad_issuer";
  case AUTH_E_TOKEN_USE: return "bad_token_use";
  case AUTH_E_CLIENT: return "bad_client";
  case AUTH_E_JWKS_UNAVAILABLE: return "jwks_unavailable";
  case AUTH_E_NOMEM: return "nomem";
  }
  return "unknown";
}

void auth_get_stats(auth *a, auth_stats *out) {
  auth_stats s = {0};
  s.cache_hits = atomic_load(&a->hits);
  s.cache_misses = atomic_load(&a->misses);
  s.jwks_fetches = atomic_load(&a->fetches);
  s.jwks_failures = atomic_load(&a->fetch_failures);
  s.rejected = atomic_load(&a->rejected);
  pthread_rwlock_rdlock(&a->cache_lock);
  s.cache_entries = (size_t)a->cache.count;
  pthread_rwlock_unlock(&a->cache_lock);
  pthread_mutex_lock(&a->jwks_mu);
  s.jwks_keys = a->keys ? a->keys->n : 0;
  pthread_mutex_unlock(&a->jwks_mu);
  *out = s;
}

/* 1 when `old` holds a kid that `ks` does not. */
static bool keyset_drops(const keyset *old, const keyset *ks) {
  for (size_t i = 0; old && i < old->n; i++)
    if (!keyset_find(ks, old->kid[i])) return true;
  return false;
}

/* Installs ks (taking its reference) and releases the previous set. When
 * a kid went away, the cache is emptied after the epoch moved on: a token
 * verified with the old set either sees the new epoch and is not cached,
 * or was cached before the clear. */
static void keys_install(auth *a, keyset *ks, bool fixed) {
  pthread_mutex_lock(&a->jwks_mu);
  keyset *old = a->keys;
  bool dropped = keyset_drops(old, ks);
  if (dropped) atomic_fetch_add(&a->epoch, 1);
  ks->epoch = atomic_load(&a->epoch);
  a->keys = ks;
  a->keys_at_ms = mono_ms();
  if (fixed) a->fixed = true;
  pthread_mutex_unlock(&a->jwks_mu);
  if (dropped) {
    pthread_rwlock_wrlock(&a->cache_lock);
    tcache_clear(&a->cache);
    pthread_rwlock_unlock(&a->cache_lock);
  }
  keyset_release(old);
}

int auth_set_jwks(auth *a, const char *jwks_json) {
  keyset *ks = jwks_json ? keyset_parse(jwks_json, strlen(jwks_json)) : NULL;
  if (!ks) return -1;
  keys_install(a, ks, true);
  return 0;
}

/* ---- JWKS fetch --------------------------------------------------------------- */


static keyset *jwks_fetch(const char *url) {
  CURL *e = curl_easy_init();
  if (!e) return NULL;
  dbuf b = DBUF_INIT(AUTH_JWKS_CAP);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, AUTH_JWKS_TIMEOUT_MS);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, AUTH_JWKS_CONNECT_MS);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)AUTH_JWKS_CAP);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, dbuf_curl_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
  long status = 0;
  keyset *ks = NULL;
  if (curl_easy_perform(e) == CURLE_OK &&
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200 &&
      b.buf)
    ks = keyset_parse(b.buf, b.len);
  curl_easy_cleanup(e);
  dbuf_free(&b);
  return ks;
}

/* One fetch, counted; installs the set when it came. Caller holds fetch_mu. */
static void keys_fetch(auth *a) {
  atomic_fetch_add(&a->fetches, 1);
  keyset *fresh = jwks_fetch(a->jwks_url);
  if (fresh) keys_install(a, fresh, false);
  else atomic_fetch_add(&a->fetch_failures, 1);
}

/* 1 when the fetched set is refresh_s old and no attempt was made for a
 * while (a failing JWKS is retried every min_refresh_s). Under jwks_mu. */
static bool keys_stale_locked(const auth *a, int64_t now) {
  int min = a->min_refresh_s < a->refresh_s ? a->min_refresh_s : a->refresh_s;
  return !a->fixed && a->keys != NULL && now - a->keys_at_ms >= (int64_t)a->refresh_s * 1000 &&
         now - a->last_fetch_ms >= (int64_t)min * 1000;
}

/* Refetches a stale set. Only one thread fetches; the others do not wait
 * for it and go on with the set they have. */
static void keys_refresh_if_stale(auth *a) {
  int64_t now = mono_ms();
  pthread_mutex_lock(&a->jwks_mu);
  bool stale = keys_stale_locked(a, now);
  pthread_mutex_unlock(&a->jwks_mu);
  if (!stale || pthread_mutex_trylock(&a->fetch_mu) != 0) return;
  pthread_mutex_lock(&a->jwks_mu);
  stale = keys_stale_locked(a, now); /* another thread may just have fetched */
  if (stale) a->last_fetch_ms = now;
  pthread_mutex_unlock(&a->jwks_mu);
  if (stale) keys_fetch(a);
  pthread_mutex_unlock(&a->fetch_mu);
}

/* Finds the key for kid, fetching the JWKS when allowed. On AUTH_OK *ks_out
 * holds a reference to the set that owns *jwk_out. */
static auth_code key_for(auth *a, const char *kid, keyset **ks_out, cjose_jwk_t **jwk_out) {
  for (int pass = 0;; pass++) {
    pthread_mutex_lock(&a->jwks_mu);
    keyset *ks = a->keys;
    if (ks) __atomic_add_fetch(&ks->refs, 1, __ATOMIC_RELAXED);
    bool fixed = a->fixed;
    pthread_mutex_unlock(&a->jwks_mu);
    cjose_jwk_t *jwk = keyset_find(ks, kid);
    if (jwk) {
      *ks_out = ks;
      *jwk_out = jwk;
      return AUTH_OK;
    }
    bool have_keys = ks != NULL;
    keyset_release(ks);
    if (fixed || pass == 1) return have_keys ? AUTH_E_KID : AUTH_E_JWKS_UNAVAILABLE;

    /* One fetcher at a time; the others wait and then find its result. */
    pthread_mutex_lock(&a->fetch_mu);
    pthread_mutex_lock(&a->jwks_mu);
    bool known = keyset_find(a->keys, kid) != NULL;
    int64_t now = mono_ms();
    int64_t gap = a->keys ? (int64_t)a->min_refresh_s * 1000 : AUTH_NOKEYS_RETRY_MS;
    bool allowed = !known && !a->fixed && (!a->attempted || now - a->last_fetch_ms >= gap);
    if (allowed) {
      a->attempted = true;
      a->last_fetch_ms = now;
    }
    pthread_mutex_unlock(&a->jwks_mu);
    if (allowed) keys_fetch(a);
    pthread_mutex_unlock(&a->fetch_mu);
  }
}

/* ---- token checks ----------------------------------------------------------------- */

static int b64url_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

/* Decodes unpadded base64url into a new NUL-terminated buffer (caller
 * frees). NULL on bad input or out of memory. */
static char *b64url_decode(const char *s, size_t n, size_t *out_len) {
  if (n % 4 == 1) return NULL;
  char *out = malloc(n * 3 / 4 + 3);
  if (!out) return NULL;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64url_val((unsigned char)s[i]);
    if (v < 0) {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xFF);
    }
  }
  out[o] = '\0';
  *out_len = o;
  return out;
}

static bool valid_sub(const char *s) {
  size_t n = 0;
  for (; s[n]; n++) {
    char c = s[n];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-'))
      return false;
  }
  return n >= 1 && n <= AUTH_SUB_MAX;
}

/* A NumericDate claim: absent (ok, *present false), or a finite number. */
static bool num_claim(const cJSON *claims, const char *name, bool *present, double *v) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(claims, name);
  *present = j != NULL;
  if (!j) return true;
  if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) return false;
  *v = j->valuedouble;
  return true;
}

static auth_code check_claims(const auth *a, const char *json, size_t len, char *sub,
                              int64_t *exp_out) {
  cJSON *c = cJSON_ParseWithLength(json, len);
  auth_code rc = AUTH_OK;
  double exp = 0, nbf = 0, iat = 0;
  bool has_exp, has_nbf, has_iat;
  int64_t now = (int64_t)time(NULL);
  const char *iss, *use, *cid, *s;
  if (!cJSON_IsObject(c)) rc = AUTH_E_MALFORMED;
  else if (!(iss = json_str(c, "iss")) || strcmp(iss, a->issuer) != 0) rc = AUTH_E_ISSUER;
  else if (!(use = json_str(c, "token_use")) || strcmp(use, "access") != 0) rc = AUTH_E_TOKEN_USE;
  else if (!(cid = json_str(c, "client_id")) || strcmp(cid, a->client_id) != 0) rc = AUTH_E_CLIENT;
  else if (!num_claim(c, "exp", &has_exp, &exp) || !has_exp ||
           !num_claim(c, "nbf", &has_nbf, &nbf) || !num_claim(c, "iat", &has_iat, &iat))
    rc = AUTH_E_MALFORMED;
  else if (exp <= (double)(now - a->leeway_s)) rc = AUTH_E_EXPIRED;
  else if ((has_nbf && nbf > (double)(now + a->leeway_s)) ||
           (has_iat && iat > (double)(now + a->leeway_s)))
    rc = AUTH_E_NOT_YET_VALID;
  else if (!(s = json_str(c, "sub")) || !valid_sub(s)) rc = AUTH_E_MALFORMED;
  else {
    snprintf(sub, AUTH_SUB_MAX + 1, "%s", s);
    *exp_out = exp > 9e15 ? (int64_t)9e15 : (int64_t)exp;
  }
  cJSON_Delete(c);
  return rc;
}

/* Header checks before any key is touched: alg exactly RS256, no crit, kid. */
static auth_code check_header(const char *h, size_t n, char kid[AUTH_KID_MAX + 1]) {
  size_t len = 0;
  char *json = b64url_decode(h, n, &len);
  if (!json) return AUTH_E_MALFORMED;
  cJSON *j = cJSON_ParseWithLength(json, len);
  free(json);
  auth_code rc = AUTH_OK;
  const char *alg, *k;
  if (!cJSON_IsObject(j)) rc = AUTH_E_MALFORMED;
  else if (!(alg = json_str(j, "alg")) || strcmp(alg, "RS256") != 0) rc = AUTH_E_ALG;
  else if (cJSON_GetObjectItemCaseSensitive(j, "crit")) rc = AUTH_E_MALFORMED;
  else if (!(k = json_str(j, "kid")) || !k[0] || strlen(k) > AUTH_KID_MAX) rc = AUTH_E_KID;
  else snprintf(kid, AUTH_KID_MAX + 1, "%s", k);
  cJSON_Delete(j);
  return rc;
}

/* Three non-empty base64url parts (the signature may be empty: refused
 * later, after the header's own checks); dots[] gets the two dots. */
static int token_shape(const char *tok, size_t len, size_t dots[2]) {
  size_t nd = 0;
  for (size_t i = 0; i < len; i++) {
    if (tok[i] == '.') {
      if (nd == 2) return -1;
      dots[nd++] = i;
    } else if (b64url_val((unsigned char)tok[i]) < 0) {
      return -1;
    }
  }
  return nd == 2 && dots[0] != 0 && dots[1] != dots[0] + 1 ? 0 : -1;
}

static auth_code verify(auth *a, const char *tok, size_t len, char sub_out[129]) {
  if (!tok || len == 0 || len > AUTH_TOKEN_MAX) return AUTH_E_MALFORMED;

  keys_refresh_if_stale(a); /* before the cache: it may drop entries */
  uint64_t h;
  if (tcache_hash(&a->cache, tok, len, &h) != 0) return AUTH_E_NOMEM;
  int64_t now = (int64_t)time(NULL);
  pthread_rwlock_rdlock(&a->cache_lock);
  int32_t i = tcache_find(&a->cache, h, tok, len);
  auth_code hit = AUTH_E_MALFORMED;
  if (i >= 0) {
    const centry *e = &a->cache.e[i];
    hit = e->exp > now - a->leeway_s ? AUTH_OK : AUTH_E_EXPIRED;
    if (hit == AUTH_OK) memcpy(sub_out, e->sub, strlen(e->sub) + 1);
  }
  pthread_rwlock_unlock(&a->cache_lock);
  if (i >= 0) {
    atomic_fetch_add(&a->hits, 1);
    return hit;
  }
  /* Only now the shape: a hit is byte for byte a token that passed every
   * check when it was stored. */
  size_t dots[2];
  if (token_shape(tok, len, dots) != 0) return AUTH_E_MALFORMED;
  atomic_fetch_add(&a->misses, 1);

  char kid[AUTH_KID_MAX + 1];
  auth_code rc = check_header(tok, dots[0], kid);
  if (rc != AUTH_OK) return rc;
  if (dots[1] + 1 == len) return AUTH_E_MALFORMED; /* no signature */

  keyset *ks = NULL;
  cjose_jwk_t *jwk = NULL;
  rc = key_for(a, kid, &ks, &jwk);
  if (rc != AUTH_OK) return rc;
  cjose_err err;
  cjose_jws_t *jws = cjose_jws_import(tok, len, &err);
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  if (!jws) rc = AUTH_E_MALFORMED;
  else if (!cjose_jws_verify(jws, jwk, &err)) rc = AUTH_E_SIGNATURE;
  else if (!cjose_jws_get_plaintext(jws, &plain, &plain_len, &err)) rc = AUTH_E_MALFORMED;
  uint64_t epoch = ks->epoch;
  keyset_release(ks);
  char sub[AUTH_SUB_MAX + 1];
  int64_t exp = 0;
  if (rc == AUTH_OK) rc = check_claims(a, (const char *)plain, plain_len, sub, &exp);
  cjose_jws_release(jws); /* owns plain */
  if (rc != AUTH_OK) return rc;

  pthread_rwlock_wrlock(&a->cache_lock);
  if (atomic_load(&a->epoch) == epoch) /* else its key may be gone: verify it again next time */
    tcache_insert(&a->cache, h, tok, len, sub, exp, now, a->leeway_s);
  pthread_rwlock_unlock(&a->cache_lock);
  memcpy(sub_out, sub, strlen(sub) + 1);
  return AUTH_OK;
}

auth_code auth_verify_token(auth *a, const char *token, size_t len, char sub_out[129]) {
  auth_code rc = verify(a, token, len, sub_out);
  if (rc != AUTH_OK) atomic_fetch_add(&a->rejected, 1);
  return rc;
}

auth_code auth_verify_header(auth *a, const char *authorization, char sub_out[129]) {
  auth_code rc;
  const char *v = authorization;
  if (!v || !v[0] || strncasecmp(v, "Bearer", 6) != 0 || (v[6] != '\0' && v[6] != ' ')) {
    rc = AUTH_E_MISSING; /* absent, or some other scheme */
  } else if (v[6] == '\0' || v[7] == '\0' || v[7] == ' ' || strpbrk(v + 7, " \t\r\n")) {
    rc = AUTH_E_MALFORMED; /* "Bearer", "Bearer ", extra spaces or parts */
  } else {
    return auth_verify_token(a, v + 7, strlen(v + 7), sub_out);
  }
  atomic_fetch_add(&a->rejected, 1);
  return rc;
}
