/* auth.h - Cognito access-token verification for the gateway.
 *
 * A token is accepted only when: it is at most 8 KiB and three base64url
 * parts; its header's alg is exactly RS256 (checked before any key is used:
 * none, HS*, RS512... are refused) with a kid found in the pool's JWKS; the
 * RS256 signature verifies (cjose); and its claims hold: iss == issuer,
 * token_use == "access", client_id == the app client, exp > now - leeway,
 * nbf and iat (when present) <= now + leeway, sub 1-128 of [A-Za-z0-9_-].
 *
 * The JWKS is fetched with libcurl (short timeout, bounded size) on first use
 * and cached; a kid it does not know triggers at most one refetch per
 * jwks_min_refresh_s. The set is also refetched once it is jwks_refresh_s
 * old, by the first verification that finds it so (that one request waits
 * for the fetch; the others go on with the current set). A fetched set that
 * no longer holds a kid empties the verified-token cache, so a key removed
 * from the JWKS is trusted for at most jwks_refresh_s plus one fetch (3 s)
 * after its removal, as long as the JWKS answers; while it does not, the
 * last set stays in use and the fetch is retried every jwks_min_refresh_s.
 * Verified tokens are cached whole until they expire (at most cache_max
 * entries and 8 MiB of token text; expired then oldest entries are
 * evicted), found by a keyed hash and compared byte for byte, so a repeat
 * request costs a hash and a comparison, not an RSA verification, and no
 * other token can ever match a cached one. Tokens are never logged.
 */
#ifndef CRUDDUR_GATEWAY_AUTH_H
#define CRUDDUR_GATEWAY_AUTH_H

#include <stddef.h>
#include <stdint.h>

typedef struct auth auth;

/* The largest clock leeway auth_new accepts, in seconds. */
#define AUTH_LEEWAY_MAX_S 300
/* Defaults of the two JWKS intervals (a field <= 0 picks them). */
#define AUTH_JWKS_REFRESH_S 300
#define AUTH_JWKS_MIN_REFRESH_S 30

typedef enum {
  AUTH_OK = 0,
  AUTH_E_MISSING,          /* no header, or not the Bearer scheme */
  AUTH_E_MALFORMED,        /* not a well-formed JWT (or "Bearer" without one) */
  AUTH_E_ALG,              /* alg other than RS256 */
  AUTH_E_KID,              /* kid missing or not in the JWKS */
  AUTH_E_SIGNATURE,        /* signature does not verify */
  AUTH_E_EXPIRED,          /* exp <= now - leeway */
  AUTH_E_NOT_YET_VALID,    /* nbf or iat > now + leeway */
  AUTH_E_ISSUER,           /* iss differs */
  AUTH_E_TOKEN_USE,        /* token_use is not "access" (e.g. an ID token) */
  AUTH_E_CLIENT,           /* client_id differs */
  AUTH_E_JWKS_UNAVAILABLE, /* no keys could be fetched yet (a 503, not a 401) */
  AUTH_E_NOMEM
} auth_code;

typedef struct auth_config {
  const char *issuer;     /* required, e.g. http://127.0.0.1:9229/local_abc */
  const char *client_id;  /* required */
  const char *jwks_url;   /* NULL: issuer + "/.well-known/jwks.json" */
  int leeway_s;           /* clock leeway, 0 to AUTH_LEEWAY_MAX_S, used as given */
  int cache_max;          /* verified-token cache entries; <= 0: 10000 */
  int jwks_min_refresh_s; /* unknown kid (or a failed fetch) refetches at most once per
                             this; <= 0: AUTH_JWKS_MIN_REFRESH_S */
  int jwks_refresh_s;     /* the set is refetched once this old; <= 0: AUTH_JWKS_REFRESH_S */
} auth_config;

typedef struct auth_stats {
  uint64_t cache_hits, cache_misses, jwks_fetches, jwks_failures, rejected;
  size_t cache_entries;
  size_t jwks_keys; /* keys currently known */
} auth_stats;

/* Creates a verifier; strings are copied. Returns 0 and sets *out, or -1
 * (missing issuer/client_id, leeway out of range, out of memory; nothing
 * allocated). Does not
 * fetch the JWKS yet. Free with auth_free. */
int auth_new(const auth_config *cfg, auth **out);

/* Frees everything. NULL is a no-op. No call may be in progress. */
void auth_free(auth *a);

/* Verifies the Authorization header value ("Bearer <token>", scheme
 * case-insensitive, exactly one space, then one token with no spaces).
 * NULL, empty or another scheme ("Basic x") is AUTH_E_MISSING; "Bearer",
 * "Bearer " or extra spaces/parts are AUTH_E_MALFORMED. On AUTH_OK writes
 * the `sub` claim (<= 128 bytes + NUL) to sub_out; otherwise sub_out is
 * untouched. Thread-safe. */
auth_code auth_verify_header(auth *a, const char *authorization, char sub_out[129]);

/* The same for a bare token of `len` bytes (need not be NUL-terminated). */
auth_code auth_verify_token(auth *a, const char *token, size_t len, char sub_out[129]);

/* For tests and fixed key sets: use this JWKS ({"keys":[...]}) from now on
 * and never fetch. Returns 0, or -1 when it is not a JWKS with at least one
 * usable RSA key (the previous keys stay). */
int auth_set_jwks(auth *a, const char *jwks_json);

/* Counters since auth_new. */
void auth_get_stats(auth *a, auth_stats *out);

/* A short stable name per code ("ok", "expired", ...), for logs and metrics. */
const char *auth_strerror(auth_code c);

#endif
