/* token_test.c - page tokens: round trip, binding, tampering. */
#include <stdio.h>
#include <string.h>

#include "token.h"

#include "cruddur/check.h"

static const char *U1 = "11111111-1111-4111-8111-111111111111";
static const char *U2 = "22222222-2222-4222-8222-222222222222";
static const char *PK1 = "MSG#33333333-3333-4333-8333-333333333333";
static const char *PK2 = "MSG#44444444-4444-4444-8444-444444444444";
static const char *SK = "2024-01-02T03:04:05.678901Z#55555555-5555-4555-8555-555555555555";

/* Tokens made by the previous implementation (OpenSSL's HMAC()), for the
 * two keys below and the position SK of U1 in PK1: tokens handed out before
 * an upgrade must stay valid after it. */
static const char *LONG_SECRET =
    "a-secret-longer-than-one-sha256-block-of-64-bytes-so-it-is-hashed-first!";
static const char *OLD_PAYLOAD =
    "djF8bXwxMTExMTExMS0xMTExLTQxMTEtODExMS0xMTExMTExMTExMTF8TVNHIzMzMzMzMzMzLTMzMzMtNDMzMy04MzMz"
    "LTMzMzMzMzMzMzMzM3wyMDI0LTAxLTAyVDAzOjA0OjA1LjY3ODkwMVojNTU1NTU1NTUtNTU1NS00NTU1LTg1NTUtNTU1"
    "NTU1NTU1NTU1fA";
static const char *OLD_MAC = "58n4wE9VxhsJEDUZ3NB1vFEeT3IO_ihYsM260TNm4Sw";
static const char *OLD_MAC_LONG = "6Jq3Ox5U8AOTJxVvFple2vdOPLzcpTPdrJFYwfdx_CM";

static void check_old_token(const token_key *key, const char *mac) {
  char old[TOKEN_MAX + 1], tok[TOKEN_MAX + 1];
  snprintf(old, sizeof old, "%s.%s", OLD_PAYLOAD, mac);
  token_pos pos, got;
  memset(&pos, 0, sizeof pos);
  strcpy(pos.sk, SK);
  CHECK(token_encode(key, TOKEN_MESSAGES, U1, PK1, &pos, tok) == 0);
  CHECK(strcmp(tok, old) == 0);
  memset(&got, 0, sizeof got);
  CHECK(token_decode(key, old, TOKEN_MESSAGES, U1, PK1, &got) == 0);
  CHECK(strcmp(got.sk, SK) == 0);
}

int main(void) {
  token_key k = {0}, k2 = {0}, kr = {0}, kl = {0};
  CHECK(token_key_init(&k, "0123456789abcdef0123456789abcdef") == 0);
  CHECK(token_key_init(&k2, "short") == -1);
  CHECK(token_key_init(&k2, "another-secret-that-is-long-enough!!") == 0);
  CHECK(token_key_init(&kr, NULL) == 1);
  CHECK(token_key_init(&kl, LONG_SECRET) == 0);

  check_old_token(&k, OLD_MAC);
  check_old_token(&kl, OLD_MAC_LONG);

  token_pos pos, got;
  memset(&pos, 0, sizeof pos);
  strcpy(pos.sk, SK);
  char tok[TOKEN_MAX + 1];
  CHECK(token_encode(&k, TOKEN_MESSAGES, U1, PK1, &pos, tok) == 0);
  CHECK(strlen(tok) <= TOKEN_MAX);
  CHECK(strchr(tok, '|') == NULL && strchr(tok, '=') == NULL);
  memset(&got, 0, sizeof got);
  CHECK(token_decode(&k, tok, TOKEN_MESSAGES, U1, PK1, &got) == 0);
  CHECK(strcmp(got.sk, SK) == 0 && got.last_sk[0] == '\0');

  /* Group tokens carry both keys. */
  token_pos gp;
  memset(&gp, 0, sizeof gp);
  strcpy(gp.sk, U2);
  strcpy(gp.last_sk, SK);
  char gtok[TOKEN_MAX + 1];
  CHECK(token_encode(&k, TOKEN_GROUPS, U1, "GRP#11111111-1111-4111-8111-111111111111", &gp, gtok) ==
        0);
  CHECK(token_decode(&k, gtok, TOKEN_GROUPS, U1, "GRP#11111111-1111-4111-8111-111111111111",
                     &got) == 0);
  CHECK(strcmp(got.sk, U2) == 0 && strcmp(got.last_sk, SK) == 0);

  /* Rejections: each leaves *pos untouched. */
  struct {
    const char *name;
    const token_key *key;
    const char *token;
    token_kind kind;
    const char *caller, *pk;
  } bad[] = {
      {"other caller", &k, tok, TOKEN_MESSAGES, U2, PK1},
      {"other partition", &k, tok, TOKEN_MESSAGES, U1, PK2},
      {"other list", &k, tok, TOKEN_GROUPS, U1, PK1},
      {"other key", &k2, tok, TOKEN_MESSAGES, U1, PK1},
      {"random key", &kr, tok, TOKEN_MESSAGES, U1, PK1},
      {"empty", &k, "", TOKEN_MESSAGES, U1, PK1},
      {"no dot", &k, "abcdef", TOKEN_MESSAGES, U1, PK1},
      {"garbage", &k, "!!!.???", TOKEN_MESSAGES, U1, PK1},
      {"mac only", &k, ".AAAA", TOKEN_MESSAGES, U1, PK1},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    strcpy(got.sk, "untouched");
    int rc = token_decode(bad[i].key, bad[i].token, bad[i].kind, bad[i].caller, bad[i].pk, &got);
    if (rc != -1 || strcmp(got.sk, "untouched") != 0) {
      fprintf(stderr, "case '%s' accepted\n", bad[i].name);
      failures++;
    }
  }
  /* Flipping any single character of the token must be rejected. */
  size_t n = strlen(tok);
  for (size_t i = 0; i < n; i++) {
    char t2[TOKEN_MAX + 1];
    strcpy(t2, tok);
    t2[i] = t2[i] == 'A' ? 'B' : 'A';
    if (strcmp(t2, tok) == 0) continue;
    if (token_decode(&k, t2, TOKEN_MESSAGES, U1, PK1, &got) != -1) {
      fprintf(stderr, "tampered at %zu accepted\n", i);
      failures++;
    }
  }
  /* Truncated and too long. */
  char t3[TOKEN_MAX + 1];
  strcpy(t3, tok);
  t3[n - 1] = '\0';
  CHECK(token_decode(&k, t3, TOKEN_MESSAGES, U1, PK1, &got) == -1);
  char longtok[TOKEN_MAX + 10];
  memset(longtok, 'A', sizeof longtok - 1);
  longtok[sizeof longtok - 1] = '\0';
  CHECK(token_decode(&k, longtok, TOKEN_MESSAGES, U1, PK1, &got) == -1);
  /* Fields with the separator cannot be encoded. */
  token_pos evil;
  memset(&evil, 0, sizeof evil);
  strcpy(evil.sk, "a|b");
  CHECK(token_encode(&k, TOKEN_MESSAGES, U1, PK1, &evil, t3) == -1);

  token_key_free(&k);
  token_key_free(&k2);
  token_key_free(&kr);
  token_key_free(&kl);
  token_key_free(&kl); /* freeing twice is harmless */
  if (failures) return 1;
  printf("token_test: ok\n");
  return 0;
}
