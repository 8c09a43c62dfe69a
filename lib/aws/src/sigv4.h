/* sigv4.h - AWS Signature Version 4 (header signing), with the derived
 * signing key cached per (credentials, date, region, service).
 *
 * Internal to lib/aws (aws.c signs with it; its tests and a fuzz harness
 * call the steps one by one). Why we sign ourselves instead of using
 * libcurl's CURLOPT_AWS_SIGV4: see lib/aws/README.md.
 *
 * Thread-safety: the functions keep no state of their own; a sigv4_key
 * belongs to one thread at a time (aws.c keeps one per thread and client). */
#ifndef CRUDDUR_AWS_SIGV4_H
#define CRUDDUR_AWS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cruddur/dbuf.h"
#include "cruddur/sha256.h"

#define SIGV4_MAX_HEADERS 32
#define SIGV4_SCOPE_PART_MAX 64 /* region and service, each */

typedef struct sigv4_header {
  const char *name;  /* a token (RFC 9110), any case */
  const char *value; /* no CR, LF or other control byte except tab */
} sigv4_header;

typedef struct sigv4_request {
  const char *method;        /* "POST" */
  const char *path;          /* unencoded, starts with '/' */
  const char *query;         /* after '?', percent-encoded as sent; NULL: none */
  bool normalize_path;       /* drop empty, "." and ".." segments (not for S3) */
  const sigv4_header *headers; /* every header to sign, host and x-amz-date included */
  size_t nheaders;           /* at most SIGV4_MAX_HEADERS */
  const char *payload_hash;  /* lowercase hex SHA-256 of the body (sigv4_sha256_hex) */
} sigv4_request;

/* hex (65 bytes with the NUL) of SHA-256(data[0..len)). 0 ok, -1 when
 * OpenSSL fails (no memory). */
int sigv4_sha256_hex(const void *data, size_t len, char hex[65]);

/* Appends the canonical request of r to canon, and writes the signed-headers
 * list ("content-type;host;...") to signed_hdrs. Returns 0, or -1 when the
 * request cannot be signed (too many headers, a header name that is not a
 * token, a value with CR/LF, a path not starting with '/', no memory or past
 * the buffer's cap); canon may then hold a partial request. */
int sigv4_canonical_request(const sigv4_request *r, dbuf *canon, char *signed_hdrs,
                            size_t signed_cap);

/* The derived signing key kSigning = HMAC chain over (secret, date, region,
 * service, "aws4_request"), kept for one credentials set and one UTC day.
 * Zero-initialise; release with sigv4_key_wipe (which clears the key
 * material with OPENSSL_cleanse). Not locked: one thread at a time. */
typedef struct sigv4_key {
  uint64_t creds_id; /* 0: empty; else the awsi_creds id it belongs to */
  char date[9];      /* "YYYYMMDD" */
  char region[SIGV4_SCOPE_PART_MAX], service[SIGV4_SCOPE_PART_MAX];
  unsigned char k[32];
  sha256_hmac mac;      /* k's HMAC states (owned), so a signature skips the pads */
  uint64_t derivations; /* how many times the key was derived (tests) */
} sigv4_key;

/* Makes *key the key for (creds_id, date8, region, service), deriving it
 * from secret only when one of them changed (a new UTC day or rotated
 * credentials: creds_id differs). Returns 0, or -1 for a region or service
 * longer than SIGV4_SCOPE_PART_MAX - 1, a date8 that is not 8 digits or an
 * OpenSSL failure (the cache is then empty). */
int sigv4_key_get(sigv4_key *key, uint64_t creds_id, const char *secret, const char *date8,
                  const char *region, const char *service);

/* Wipes the key material; *key is empty again. */
void sigv4_key_wipe(sigv4_key *key);

/* Appends the string to sign for a canonical request to sts. amz_date is
 * "YYYYMMDDTHHMMSSZ" (the X-Amz-Date value). 0 ok, -1 no memory or past cap. */
int sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
                         const char *canon, size_t canon_len, dbuf *sts);

/* hex(HMAC-SHA256(key->k, sts)) into sig (65 bytes). 0 ok, -1 OpenSSL failed. */
int sigv4_signature(const sigv4_key *key, const char *sts, size_t sts_len, char sig[65]);

/* Signs r: writes the Authorization header value
 * "AWS4-HMAC-SHA256 Credential=<access_key>/<date>/<region>/<service>/aws4_request,
 *  SignedHeaders=..., Signature=..." to auth. key must come from
 * sigv4_key_get for the date of amz_date. scratch is emptied and reused
 * (keep one per thread). 0 ok; -1 as sigv4_canonical_request, or auth_cap
 * too small. */
int sigv4_authorization(const sigv4_request *r, const sigv4_key *key, const char *access_key,
                        const char *amz_date, dbuf *scratch, char *auth, size_t auth_cap);

/* X-Amz-Date for Unix time t: "YYYYMMDDTHHMMSSZ" (17 bytes with the NUL). */
void sigv4_amz_date(int64_t t, char out[17]);

#endif
