/* token.c - page tokens: HMAC-SHA256 over a small text payload. */
#include "token.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define TOKEN_VERSION "v1"
#define PAYLOAD_MAX 320

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Unpadded base64url; returns the length written (cap is checked by callers). */
static size_t b64_encode(const unsigned char *in, size_t n, char *out) {
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64url[v >> 18 & 63];
    out[o++] = b64url[v >> 12 & 63];
    out[o++] = b64url[v >> 6 & 63];
    out[o++] = b64url[v & 63];
  }
  if (n - i == 1) {
    unsigned v = (unsigned)in[i] << 16;
    out[o++] = b64url[v >> 18 & 63];
    out[o++] = b64url[v >> 12 & 63];
  } else if (n - i == 2) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
    out[o++] = b64url[v >> 18 & 63];
    out[o++] = b64url[v >> 12 & 63];
    out[o++] = b64url[v >> 6 & 63];
  }
  out[o] = '\0';
  return o;
}

static int b64_val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

/* Decodes n characters; returns the byte count or -1 (bad character, bad
 * length, non-canonical trailing bits, or more than cap bytes). */
static long b64_decode(const char *in, size_t n, unsigned char *out, size_t cap) {
  if (n % 4 == 1) return -1;
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_val(in[i]);
    if (v < 0) return -1;
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o >= cap) return -1;
      out[o++] = (unsigned char)(acc >> bits & 0xff);
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return -1; /* one encoding per payload */
  return (long)o;
}

int token_key_init(token_key *k, const char *secret) {
  if (secret == NULL || secret[0] == '\0') {
    unsigned char b[32];
    int rc = RAND_bytes(b, sizeof b) == 1 ? sha256_hmac_init(&k->mac, b, sizeof b) : -1;
    OPENSSL_cleanse(b, sizeof b);
    return rc == 0 ? 1 : -1;
  }
  size_t n = strlen(secret);
  if (n < TOKEN_SECRET_MIN) return -1;
  return sha256_hmac_init(&k->mac, secret, n);
}

void token_key_free(token_key *k) {
  sha256_hmac_free(&k->mac);
}

static int field_ok(const char *s) {
  return s != NULL && strlen(s) <= TOKEN_FIELD_MAX && strchr(s, '|') == NULL;
}

int token_encode(const token_key *k, token_kind kind, const char *caller, const char *pk,
                 const token_pos *pos, char out[TOKEN_MAX + 1]) {
  if (!field_ok(caller) || !field_ok(pk) || !field_ok(pos->sk) || !field_ok(pos->last_sk))
    return -1;
  char payload[PAYLOAD_MAX];
  int n = snprintf(payload, sizeof payload, "%s|%c|%s|%s|%s|%s", TOKEN_VERSION, (char)kind, caller,
                   pk, pos->sk, pos->last_sk);
  if (n < 0 || (size_t)n >= sizeof payload) return -1;
  unsigned char mac[32];
  if (sha256_hmac_sign(&k->mac, payload, (size_t)n, mac) != 0) return -1;
  char buf[TOKEN_MAX + 1];
  /* 320 bytes of payload -> 427 chars, + '.' + 43: fits TOKEN_MAX. */
  size_t o = b64_encode((const unsigned char *)payload, (size_t)n, buf);
  buf[o++] = '.';
  o += b64_encode(mac, sizeof mac, buf + o);
  if (o > TOKEN_MAX) return -1;
  memcpy(out, buf, o + 1);
  return 0;
}

int token_decode(const token_key *k, const char *token, token_kind kind, const char *caller,
                 const char *pk, token_pos *pos) {
  if (token == NULL) return -1;
  size_t len = strnlen(token, TOKEN_MAX + 1);
  if (len == 0 || len > TOKEN_MAX) return -1;
  const char *dot = memchr(token, '.', len);
  if (dot == NULL) return -1;
  unsigned char payload[PAYLOAD_MAX + 1];
  long pn = b64_decode(token, (size_t)(dot - token), payload, PAYLOAD_MAX);
  if (pn <= 0) return -1;
  unsigned char mac_in[64];
  long mn = b64_decode(dot + 1, len - (size_t)(dot + 1 - token), mac_in, sizeof mac_in);
  unsigned char mac[32];
  if (sha256_hmac_sign(&k->mac, payload, (size_t)pn, mac) != 0) return -1;
  if (mn != (long)sizeof mac || CRYPTO_memcmp(mac, mac_in, sizeof mac) != 0) return -1;
  payload[pn] = '\0';
  if (memchr(payload, '\0', (size_t)pn) != NULL) return -1;

  /* Only our own payloads get here; still parse defensively. */
  char *fields[6];
  char *p = (char *)payload;
  for (int i = 0; i < 6; i++) {
    fields[i] = p;
    char *bar = strchr(p, '|');
    if (i < 5) {
      if (bar == NULL) return -1;
      *bar = '\0';
      p = bar + 1;
    } else if (bar != NULL) {
      return -1;
    }
  }
  if (strcmp(fields[0], TOKEN_VERSION) != 0) return -1;
  if (fields[1][0] != (char)kind || fields[1][1] != '\0') return -1;
  if (strcmp(fields[2], caller) != 0 || strcmp(fields[3], pk) != 0) return -1;
  if (strlen(fields[4]) == 0 || strlen(fields[4]) > TOKEN_FIELD_MAX ||
      strlen(fields[5]) > TOKEN_FIELD_MAX)
    return -1;
  token_pos t;
  strcpy(t.sk, fields[4]);
  strcpy(t.last_sk, fields[5]);
  *pos = t;
  return 0;
}
