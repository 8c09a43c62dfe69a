/* fuzz_jwks.c - JWKS documents (auth.c keyset parsing via auth_set_jwks):
 * what the gateway reads from the pool's /.well-known/jwks.json.
 *
 * Invariants: a refused document leaves the previous keys in place; an
 * accepted one holds between 1 and 64 keys, never more keys than the
 * document's "keys" array has RSA entries with a kid; malformed key
 * members (e.g. '=' inside base64url, finding F1) are refused, never fatal. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fixed_jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"fuzz-kid-1\",\"use\":\"sig\",\"alg\":\"RS256\",\"e\":\"AQAB\","
    "\"n\":\"zLaBV5fBVXeVrRLEGVSMpwDaLLJWZe7LkKD5W4qc49KeEu_PZgNiIjH88n7ZfTxXLnZURw457uMRaIZLEfUBG7d-"
    "p7u4HAuCD0gtrK7cVImtNH9B0ZI3v8R-P3F2UkFmwyBUl9LufXU1mSK5xrOw6dfo5sUKBk5XVSLnuvNpjwE\"}]}";

static auth *g_auth;

static void teardown(void) {
  auth_free(g_auth);
}

/* Upper bound for the keys an accepted document can yield. */
static size_t candidate_keys(const char *json) {
  cJSON *root = cJSON_Parse(json);
  const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
  size_t n = 0;
  const cJSON *list = cJSON_IsArray(keys) ? keys : NULL;
  const cJSON *k;
  cJSON_ArrayForEach(k, list) {
    const cJSON *kty = cJSON_GetObjectItemCaseSensitive(k, "kty");
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(k, "kid");
    if (cJSON_IsString(kty) && strcmp(kty->valuestring, "RSA") == 0 && cJSON_IsString(kid) &&
        kid->valuestring[0] != '\0')
      n++;
  }
  cJSON_Delete(root);
  return n;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (g_auth == NULL) {
    auth_config cfg = {.issuer = "https://issuer.example", .client_id = "c", .cache_max = 1};
    if (auth_new(&cfg, &g_auth) != 0) abort();
    atexit(teardown);
  }
  if (size > 65536) return 0; /* the fetch caps the document far below this */
  if (auth_set_jwks(g_auth, fixed_jwks) != 0) abort();
  char *json = malloc(size + 1);
  if (json == NULL) return 0;
  memcpy(json, data, size);
  json[size] = '\0';
  auth_stats st;
  int rc = auth_set_jwks(g_auth, json);
  auth_get_stats(g_auth, &st);
  if (rc == 0) {
    size_t cand = candidate_keys(json);
    if (st.jwks_keys < 1 || st.jwks_keys > 64 || st.jwks_keys > cand) abort();
  } else if (rc == -1) {
    if (st.jwks_keys != 1) abort(); /* the fixed key set stays */
  } else {
    abort();
  }
  if (st.jwks_fetches != 0) abort(); /* a set JWKS is never fetched over */
  free(json);
  return 0;
}
