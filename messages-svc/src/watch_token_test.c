/* watch_token_test.c - resume tokens: round trip, binding to the user and
 * the kind, every one-character tamper, and the position's own checks. */
#include <stdio.h>
#include <string.h>

#include "token.h"
#include "watch_token.h"

#include "cruddur/check.h"

static const char *U1 = "11111111-1111-4111-8111-111111111111";
static const char *U2 = "22222222-2222-4222-8222-222222222222";
static const char *SK = "2024-01-02T03:04:05.678901Z#55555555-5555-4555-8555-555555555555";
static const char *LOW = "2024-01-02T03:03:50.678901Z";

int main(void) {
  token_key k = {0}, k2 = {0};
  CHECK(token_key_init(&k, "0123456789abcdef0123456789abcdef") == 0);
  CHECK(token_key_init(&k2, "another-secret-that-is-long-enough!!") == 0);

  watch_pos p, got;
  memset(&p, 0, sizeof p);
  strcpy(p.cur, SK);
  strcpy(p.low, LOW);
  p.hash = 0xfedcba9876543210ULL;
  p.count = 7;
  char tok[TOKEN_MAX + 1];
  CHECK(watch_token_encode(&k, U1, &p, tok) == 0);
  CHECK(strlen(tok) <= TOKEN_MAX);
  memset(&got, 0, sizeof got);
  CHECK(watch_token_decode(&k, U1, tok, &got) == 0);
  CHECK(strcmp(got.cur, SK) == 0 && strcmp(got.low, LOW) == 0);
  CHECK(got.hash == p.hash && got.count == 7);

  /* A start position: cur is a bare time. */
  watch_pos s = {"", "", 0, 0};
  strcpy(s.cur, LOW);
  strcpy(s.low, LOW);
  char stok[TOKEN_MAX + 1];
  CHECK(watch_token_encode(&k, U1, &s, stok) == 0);
  CHECK(watch_token_decode(&k, U1, stok, &got) == 0 && strcmp(got.cur, LOW) == 0);

  /* Bound to the user, the key and the kind. */
  watch_pos before = got;
  CHECK(watch_token_decode(&k, U2, tok, &got) == -1);
  CHECK(watch_token_decode(&k2, U1, tok, &got) == -1);
  CHECK(memcmp(&got, &before, sizeof got) == 0); /* untouched on failure */
  token_pos tp;
  char pk[KEYS_PK_MAX + 1];
  keys_pk("GRP#", U1, pk);
  CHECK(token_decode(&k, tok, TOKEN_GROUPS, U1, pk, &tp) == -1);
  /* A page token of the group list is not a resume token. */
  memset(&tp, 0, sizeof tp);
  strcpy(tp.sk, SK);
  char ptok[TOKEN_MAX + 1];
  CHECK(token_encode(&k, TOKEN_GROUPS, U1, pk, &tp, ptok) == 0);
  CHECK(watch_token_decode(&k, U1, ptok, &got) == -1);

  /* Every single-character change is refused. */
  size_t n = strlen(tok);
  for (size_t i = 0; i < n; i++) {
    char t[TOKEN_MAX + 1];
    memcpy(t, tok, n + 1);
    t[i] = t[i] == 'A' ? 'B' : 'A';
    CHECK(watch_token_decode(&k, U1, t, &got) == -1, "position %zu", i);
  }
  CHECK(watch_token_decode(&k, U1, "", &got) == -1);
  CHECK(watch_token_decode(&k, U1, "x.y", &got) == -1);

  /* Positions the encoder refuses or the decoder rejects even when signed:
   * low after cur, a count over the cap, a cur that is not a time. */
  watch_pos bad = p;
  strcpy(bad.low, "2024-01-02T03:04:06.000000Z");
  CHECK(watch_token_encode(&k, U1, &bad, tok) == 0);
  CHECK(watch_token_decode(&k, U1, tok, &got) == -1);
  bad = p;
  bad.count = WATCH_SEEN_MAX + 1;
  CHECK(watch_token_encode(&k, U1, &bad, tok) == 0);
  CHECK(watch_token_decode(&k, U1, tok, &got) == -1);
  bad = p;
  strcpy(bad.cur, "not-a-time");
  CHECK(watch_token_encode(&k, U1, &bad, tok) == 0);
  CHECK(watch_token_decode(&k, U1, tok, &got) == -1);

  /* The hash is order-free when summed. */
  uint64_t a = watch_sk_hash("a"), b = watch_sk_hash("b");
  CHECK(a != b && a + b == b + a);
  int64_t us;
  CHECK(watch_pos_time(SK, &us) == 0 && watch_pos_time("2024", &us) == -1);

  token_key_free(&k);
  token_key_free(&k2);
  if (failures) return 1;
  printf("watch_token_test: ok\n");
  return 0;
}
