/* auth_check.c - test helper for tests/integration/test_auth.py: verifies
 * one access token read from stdin (never from argv: tokens stay out of
 * process listings) with gateway_auth, fetching the real JWKS.
 *
 * Usage: auth_check ISSUER CLIENT_ID < token
 * Prints "ok <sub>" (exit 0) or "rejected <code>" (exit 1); verifies twice
 * so the second answer comes from the cache (printed as "cache_hits N"). */
#include <stdio.h>
#include <string.h>

#include "auth.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: auth_check ISSUER CLIENT_ID < token\n");
    return 2;
  }
  static char tok[16384];
  size_t n = fread(tok, 1, sizeof tok - 1, stdin);
  while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' ')) n--;
  tok[n] = '\0';
  auth_config cfg = {.issuer = argv[1], .client_id = argv[2], .leeway_s = 30};
  auth *a = NULL;
  if (auth_new(&cfg, &a) != 0) return 2;
  char sub[129];
  auth_code rc = auth_verify_token(a, tok, n, sub);
  if (rc == AUTH_OK) rc = auth_verify_token(a, tok, n, sub);
  auth_stats st;
  auth_get_stats(a, &st);
  if (rc == AUTH_OK) printf("ok %s\n", sub);
  else printf("rejected %s\n", auth_strerror(rc));
  printf("cache_hits %llu jwks_fetches %llu\n", (unsigned long long)st.cache_hits,
         (unsigned long long)st.jwks_fetches);
  auth_free(a);
  return rc == AUTH_OK ? 0 : 1;
}
