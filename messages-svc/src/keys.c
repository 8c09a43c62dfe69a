/* keys.c - key encoding for the single table. */
#include "keys.h"

#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "cruddur/ts.h"
#include "cruddur/uuid.h"

void keys_pk(const char *prefix, const char *uuid, char out[KEYS_PK_MAX + 1]) {
  snprintf(out, KEYS_PK_MAX + 1, "%s%s", prefix, uuid);
}

void keys_pair_pk(const char *a, const char *b, char out[KEYS_PK_MAX + 1]) {
  /* Ordered so that both sides of a conversation compute the same key. */
  if (strcmp(a, b) > 0) {
    const char *t = a;
    a = b;
    b = t;
  }
  snprintf(out, KEYS_PK_MAX + 1, "PAIR#%s#%s", a, b);
}

int keys_msg_sk(int64_t us, const char *msg_uuid, char out[KEYS_MSG_SK_LEN + 1]) {
  char ts[TS_STORED_LEN + 1];
  if (!uuid_valid(msg_uuid) || ts_format_stored(us, ts) != 0) return -1;
  memcpy(out, ts, TS_STORED_LEN);
  out[TS_STORED_LEN] = '#';
  memcpy(out + TS_STORED_LEN + 1, msg_uuid, UUID_STR_LEN + 1);
  return 0;
}

int keys_msg_sk_parse(const char *sk, int64_t *us, char uuid_out[37]) {
  if (sk == NULL || strlen(sk) != KEYS_MSG_SK_LEN || sk[TS_STORED_LEN] != '#') return -1;
  char ts[TS_STORED_LEN + 1];
  memcpy(ts, sk, TS_STORED_LEN);
  ts[TS_STORED_LEN] = '\0';
  int64_t t;
  if (ts_parse_stored(ts, &t) != 0 || !uuid_valid(sk + TS_STORED_LEN + 1)) return -1;
  if (us) *us = t;
  if (uuid_out) memcpy(uuid_out, sk + TS_STORED_LEN + 1, UUID_STR_LEN + 1);
  return 0;
}

void keys_stable_uuid(const char *ns, unsigned idx, char out[37]) {
  static const char hex[] = "0123456789abcdef";
  char in[256];
  int n = snprintf(in, sizeof in, "%s/%u", ns, idx);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof in) n = (int)sizeof in - 1;
  unsigned char h[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)in, (size_t)n, h);
  h[6] = (unsigned char)((h[6] & 0x0f) | 0x80); /* version 8: custom */
  h[8] = (unsigned char)((h[8] & 0x3f) | 0x80); /* RFC variant */
  char *p = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    *p++ = hex[h[i] >> 4];
    *p++ = hex[h[i] & 15];
  }
  *p = '\0';
}
