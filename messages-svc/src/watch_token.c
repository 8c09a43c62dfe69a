/* watch_token.c - WatchEvents resume tokens and positions (no I/O, so the
 * unit test and the fuzz harness link it alone). */
#include "watch_token.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cruddur/ts.h"
#include "keys.h"

uint64_t watch_sk_hash(const char *sk) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */
  for (const unsigned char *p = (const unsigned char *)sk; *p; p++) {
    h ^= *p;
    h *= 1099511628211ULL;
  }
  return h;
}

/* The time part of a position (sk or bare ts27). */
int watch_pos_time(const char *s, int64_t *us) {
  char t[28];
  if (strlen(s) < 27) return -1;
  memcpy(t, s, 27);
  t[27] = '\0';
  return ts_parse_stored(t, us);
}

int watch_token_encode(const token_key *k, const char *user, const watch_pos *p,
                       char out[TOKEN_MAX + 1]) {
  token_pos tp;
  memset(&tp, 0, sizeof tp);
  snprintf(tp.sk, sizeof tp.sk, "%s", p->cur);
  snprintf(tp.last_sk, sizeof tp.last_sk, "%s~%016" PRIx64 "~%u", p->low, p->hash, p->count);
  char pk[KEYS_PK_MAX + 1];
  keys_pk("GRP#", user, pk);
  return token_encode(k, TOKEN_WATCH, user, pk, &tp, out);
}

int watch_token_decode(const token_key *k, const char *user, const char *tok, watch_pos *p) {
  char pk[KEYS_PK_MAX + 1];
  keys_pk("GRP#", user, pk);
  token_pos tp;
  if (token_decode(k, tok, TOKEN_WATCH, user, pk, &tp) != 0) return -1;
  /* Our own payload (the MAC matched); checked anyway. */
  watch_pos w;
  memset(&w, 0, sizeof w);
  int64_t t;
  const char *a = tp.last_sk, *b = strchr(a, '~');
  if (b == NULL || b - a != 27) return -1;
  memcpy(w.low, a, 27);
  if (ts_parse_stored(w.low, &t) != 0) return -1;
  char *end = NULL;
  errno = 0;
  w.hash = strtoull(b + 1, &end, 16);
  if (errno != 0 || end != b + 17 || *end != '~') return -1;
  unsigned long n = strtoul(end + 1, &end, 10);
  if (*end != '\0' || n > WATCH_SEEN_MAX) return -1;
  w.count = (unsigned)n;
  if (strlen(tp.sk) > KEYS_MSG_SK_LEN || watch_pos_time(tp.sk, &t) != 0) return -1;
  memcpy(w.cur, tp.sk, strlen(tp.sk) + 1);
  if (strcmp(w.cur, w.low) < 0) return -1;
  *p = w;
  return 0;
}

