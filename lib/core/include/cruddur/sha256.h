/* sha256.h - SHA-256 and HMAC-SHA256 (RFC 2104) on OpenSSL's digest.
 *
 * Why not OpenSSL's one-call HMAC(): in OpenSSL 3 it fetches the MAC and
 * the digest by name, with locks, on every call (callgrind: 24k
 * instructions for a 150-byte message, where hashing it costs about 7k).
 * Here the digest is fetched once per process, and a keyed state
 * (sha256_hmac) hashes the key's two pad blocks once, so each MAC only
 * copies two SHA-256 states and hashes the message: page tokens and the
 * SigV4 signature, one of each per DynamoDB read, use one.
 */
#ifndef CRUDDUR_SHA256_H
#define CRUDDUR_SHA256_H

#include <stddef.h>

struct evp_md_ctx_st; /* OpenSSL's EVP_MD_CTX */

/* A key's SHA-256 states after its inner and outer pad blocks. Owns both;
 * zero-initialise, release with sha256_hmac_free, which wipes them (OpenSSL
 * cleanses a digest state it frees). Read-only after sha256_hmac_init:
 * threads may share one. */
typedef struct sha256_hmac {
  struct evp_md_ctx_st *inner; /* owned: after the block (key ^ 0x36...) */
  struct evp_md_ctx_st *outer; /* owned: after the block (key ^ 0x5c...) */
} sha256_hmac;

/* out = SHA-256(data). 0 ok, -1 OpenSSL failed (no memory). */
int sha256(const void *data, size_t len, unsigned char out[32]);

/* Keys *h with key[0..len) (a key longer than a block is hashed first, as
 * RFC 2104 says). *h must be empty (zeroed or freed). 0 ok; -1 no memory or
 * OpenSSL failed (*h empty). */
int sha256_hmac_init(sha256_hmac *h, const void *key, size_t len);

/* Frees and wipes the states; *h is empty again. Safe on an empty state. */
void sha256_hmac_free(sha256_hmac *h);

/* out = HMAC-SHA256(key of h, msg). 0 ok, -1 no memory or h is empty. */
int sha256_hmac_sign(const sha256_hmac *h, const void *msg, size_t len, unsigned char out[32]);

/* The same for a key used once (the SigV4 key derivation chain). */
int sha256_hmac_once(const void *key, size_t klen, const void *msg, size_t len,
                     unsigned char out[32]);

#endif
