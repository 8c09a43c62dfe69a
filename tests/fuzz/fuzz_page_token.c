/* fuzz_page_token.c - page tokens (messages-svc token.c), the cursor a
 * client hands back and that must not let it page into someone else's data.
 *
 * Byte 0: bit 0 kind (messages / groups), bits 1-2 which caller and
 * partition the server expects, bit 3 the mode:
 *   0: the rest is a token from the client: token_decode. A token accepted
 *      must be exactly what token_encode makes for the decoded position (one
 *      spelling per position, so no token is malleable).
 *   1: the rest is "sk\nlast_sk", a position: encode, then decode must give
 *      it back, and the token must be refused for the other kind, another
 *      caller, another partition, and with any one character changed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "fuzz-page-token-secret-0123456789abcdef"

static const char *const callers[] = {"0b8f5a52-3c2e-4a4e-9a3e-1f1f1f1f1f1f",
                                      "7d1c5e2a-9b44-4f0e-8c55-2e2e2e2e2e2e"};
static const char *const pks[] = {"MSG#5ae290ed-55d1-47a0-bc6d-fe2bc2700399",
                                  "GRP#0b8f5a52-3c2e-4a4e-9a3e-1f1f1f1f1f1f"};

static token_key g_key;
static int g_ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_ready) {
    if (token_key_init(&g_key, SECRET) != 0) abort();
    g_ready = 1;
  }
  if (size < 1 || size > 2 * TOKEN_MAX) return 0;
  token_kind kind = (data[0] & 1) ? TOKEN_GROUPS : TOKEN_MESSAGES;
  token_kind other_kind = kind == TOKEN_GROUPS ? TOKEN_MESSAGES : TOKEN_GROUPS;
  int ci = (data[0] >> 1) & 1, pi = (data[0] >> 2) & 1;
  const char *caller = callers[ci], *pk = pks[pi];
  char *in = malloc(size);
  if (in == NULL) return 0;
  memcpy(in, data + 1, size - 1);
  in[size - 1] = '\0';

  if ((data[0] & 8) == 0) {
    token_pos pos;
    memset(&pos, 0x41, sizeof pos);
    token_pos before = pos;
    if (token_decode(&g_key, in, kind, caller, pk, &pos) == 0) {
      size_t sl = strnlen(pos.sk, sizeof pos.sk);
      if (sl == 0 || sl > TOKEN_FIELD_MAX || strnlen(pos.last_sk, sizeof pos.last_sk) > TOKEN_FIELD_MAX)
        abort();
      char again[TOKEN_MAX + 1];
      if (token_encode(&g_key, kind, caller, pk, &pos, again) != 0 || strcmp(again, in) != 0) abort();
    } else if (memcmp(&pos, &before, sizeof pos) != 0) {
      abort(); /* *pos untouched on failure */
    }
  } else {
    token_pos pos;
    memset(&pos, 0, sizeof pos);
    char *nl = strchr(in, '\n');
    if (nl) *nl = '\0';
    if (strlen(in) > TOKEN_FIELD_MAX || (nl && strlen(nl + 1) > TOKEN_FIELD_MAX)) {
      free(in);
      return 0;
    }
    strcpy(pos.sk, in);
    strcpy(pos.last_sk, nl ? nl + 1 : "");
    char tok[TOKEN_MAX + 1];
    int enc = token_encode(&g_key, kind, caller, pk, &pos, tok);
    int refusable = strchr(pos.sk, '|') || strchr(pos.last_sk, '|');
    if (enc != 0 && !refusable) abort(); /* every legal position has a token */
    if (enc == 0) {
      if (refusable) abort(); /* '|' would forge a field boundary */
      token_pos back;
      int dec = token_decode(&g_key, tok, kind, caller, pk, &back);
      if (pos.sk[0] == '\0') {
        if (dec == 0) abort(); /* an empty position is not a page */
      } else if (dec != 0 || strcmp(back.sk, pos.sk) != 0 || strcmp(back.last_sk, pos.last_sk) != 0) {
        abort();
      }
      if (token_decode(&g_key, tok, other_kind, caller, pk, &back) == 0 ||
          token_decode(&g_key, tok, kind, callers[!ci], pk, &back) == 0 ||
          token_decode(&g_key, tok, kind, caller, pks[!pi], &back) == 0)
        abort(); /* a token never transplants to another list or caller */
      /* Tamper a few telling places: the ends of both parts (their unused
       * trailing bits included) and the middle. Every byte would cost too
       * many HMACs per run. */
      size_t n = strlen(tok), dot = (size_t)(strchr(tok, '.') - tok);
      size_t at[5] = {0, n - 1, dot - 1, dot + 1, n / 2};
      for (size_t j = 0; j < 5; j++) {
        size_t i = at[j];
        char saved = tok[i];
        tok[i] = saved == 'A' ? 'B' : 'A';
        if (token_decode(&g_key, tok, kind, caller, pk, &back) == 0) abort();
        tok[i] = saved;
      }
    }
  }
  free(in);
  return 0;
}
