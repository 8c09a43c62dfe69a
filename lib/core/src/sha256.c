/* sha256.c - SHA-256 and HMAC-SHA256 with the digest fetched once. */
#include "cruddur/sha256.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define BLOCK 64 /* SHA-256's block: the HMAC key is padded to it */

/* Fetched once, alive as long as the process (reachable from the static,
 * so LeakSanitizer does not count it): EVP_sha256() in each init would
 * look the digest up by name, with locks, every time. */
static EVP_MD *g_md;
static pthread_once_t g_md_once = PTHREAD_ONCE_INIT;
static void md_fetch(void) {
  g_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *md(void) {
  pthread_once(&g_md_once, md_fetch);
  return g_md;
}

int sha256(const void *data, size_t len, unsigned char out[32]) {
  const EVP_MD *m = md();
  return m != NULL && EVP_Digest(data, len, out, NULL, m, NULL) == 1 ? 0 : -1;
}

/* A new state that has hashed the block key ^ pad. NULL on failure. */
static EVP_MD_CTX *pad_state(const unsigned char k0[BLOCK], unsigned char pad) {
  unsigned char b[BLOCK];
  for (size_t i = 0; i < BLOCK; i++)
    b[i] = k0[i] ^ pad;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  int ok =
      c != NULL && EVP_DigestInit_ex2(c, md(), NULL) == 1 && EVP_DigestUpdate(c, b, BLOCK) == 1;
  OPENSSL_cleanse(b, sizeof b);
  if (!ok) {
    EVP_MD_CTX_free(c);
    return NULL;
  }
  return c;
}

int sha256_hmac_init(sha256_hmac *h, const void *key, size_t len) {
  unsigned char k0[BLOCK] = {0};
  h->inner = h->outer = NULL;
  if (md() == NULL) return -1;
  if (len > BLOCK) {
    if (sha256(key, len, k0) != 0) return -1;
  } else if (len > 0) {
    memcpy(k0, key, len);
  }
  h->inner = pad_state(k0, 0x36);
  h->outer = pad_state(k0, 0x5c);
  OPENSSL_cleanse(k0, sizeof k0);
  if (h->inner == NULL || h->outer == NULL) {
    sha256_hmac_free(h);
    return -1;
  }
  return 0;
}

void sha256_hmac_free(sha256_hmac *h) {
  EVP_MD_CTX_free(h->inner);
  EVP_MD_CTX_free(h->outer);
  h->inner = h->outer = NULL;
}

int sha256_hmac_sign(const sha256_hmac *h, const void *msg, size_t len, unsigned char out[32]) {
  if (h->inner == NULL || h->outer == NULL) return -1;
  unsigned char in[32];
  /* Copying reads h only, so threads may sign with one key at once. */
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  int ok = c != NULL && EVP_MD_CTX_copy_ex(c, h->inner) == 1 &&
           EVP_DigestUpdate(c, msg, len) == 1 && EVP_DigestFinal_ex(c, in, NULL) == 1 &&
           EVP_MD_CTX_copy_ex(c, h->outer) == 1 && EVP_DigestUpdate(c, in, sizeof in) == 1 &&
           EVP_DigestFinal_ex(c, out, NULL) == 1;
  EVP_MD_CTX_free(c);
  OPENSSL_cleanse(in, sizeof in);
  return ok ? 0 : -1;
}

int sha256_hmac_once(const void *key, size_t klen, const void *msg, size_t len,
                     unsigned char out[32]) {
  sha256_hmac h = {0};
  int rc = sha256_hmac_init(&h, key, klen);
  if (rc == 0) rc = sha256_hmac_sign(&h, msg, len, out);
  sha256_hmac_free(&h);
  return rc;
}
