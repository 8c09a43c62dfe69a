/* fuzz_resume_token.c - WatchEvents resume tokens (messages-svc
 * watch_token.c): a client hands them back, and they must never let a
 * stream start at another user's position or at a position we did not make.
 *
 * Byte 0: bit 0 which user the server expects, bit 1 the mode:
 *   0: the rest is a token from the client: watch_token_decode. A token
 *      accepted must be exactly what watch_token_encode makes for the
 *      decoded position, with low <= cur and count within the cap.
 *   1: the rest is "cur\nlow\nhash\ncount", a position: encode (when it
 *      encodes), then decode gives it back or refuses it; never for the
 *      other user, and never with any one character changed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watch_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "fuzz-resume-token-secret-0123456789abcdef"

static const char *const users[] = {"0b8f5a52-3c2e-4a4e-9a3e-1f1f1f1f1f1f",
                                    "7d1c5e2a-9b44-4f0e-8c55-2e2e2e2e2e2e"};
static token_key g_key;
static int g_ready;

static void check_decoded(const char *tok, const char *user, const watch_pos *p) {
  if (strcmp(p->low, p->cur) > 0 || p->count > WATCH_SEEN_MAX) abort();
  char again[TOKEN_MAX + 1];
  if (watch_token_encode(&g_key, user, p, again) != 0 || strcmp(again, tok) != 0) abort();
}

static void from_position(const char *in, const char *user, const char *other) {
  watch_pos p;
  memset(&p, 0, sizeof p);
  char hash[32] = "", count[16] = "";
  const char *f[4] = {in, NULL, NULL, NULL};
  for (int i = 1; i < 4; i++) {
    f[i] = f[i - 1] != NULL ? strchr(f[i - 1], '\n') : NULL;
    if (f[i] != NULL) f[i]++;
  }
  if (f[3] == NULL) return;
  size_t lc = (size_t)(f[1] - f[0] - 1), ll = (size_t)(f[2] - f[1] - 1);
  size_t lh = (size_t)(f[3] - f[2] - 1);
  if (lc >= sizeof p.cur || ll >= sizeof p.low || lh >= sizeof hash || strlen(f[3]) >= sizeof count)
    return;
  memcpy(p.cur, f[0], lc);
  memcpy(p.low, f[1], ll);
  memcpy(hash, f[2], lh);
  strcpy(count, f[3]);
  p.hash = strtoull(hash, NULL, 16);
  p.count = (unsigned)strtoul(count, NULL, 10);
  char tok[TOKEN_MAX + 1];
  if (watch_token_encode(&g_key, user, &p, tok) != 0) return;
  watch_pos got;
  if (watch_token_decode(&g_key, user, tok, &got) == 0) {
    if (strcmp(got.cur, p.cur) != 0 || strcmp(got.low, p.low) != 0 || got.hash != p.hash ||
        got.count != p.count)
      abort();
    check_decoded(tok, user, &got);
  }
  if (watch_token_decode(&g_key, other, tok, &got) == 0) abort();
  size_t n = strlen(tok);
  for (size_t i = 0; i < n; i++) {
    char c = tok[i];
    tok[i] = c == 'A' ? 'B' : 'A';
    if (watch_token_decode(&g_key, user, tok, &got) == 0) abort();
    tok[i] = c;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_ready) {
    if (token_key_init(&g_key, SECRET) != 0) abort();
    g_ready = 1;
  }
  if (size < 1 || size > 2 * TOKEN_MAX) return 0;
  int ui = data[0] & 1;
  const char *user = users[ui], *other = users[!ui];
  char *in = malloc(size);
  if (in == NULL) return 0;
  memcpy(in, data + 1, size - 1);
  in[size - 1] = '\0';
  if ((data[0] & 2) == 0) {
    watch_pos p, before;
    memset(&p, 0x41, sizeof p);
    before = p;
    if (watch_token_decode(&g_key, user, in, &p) == 0)
      check_decoded(in, user, &p);
    else if (memcmp(&p, &before, sizeof p) != 0)
      abort(); /* *p untouched on failure */
  } else {
    from_position(in, user, other);
  }
  free(in);
  return 0;
}
