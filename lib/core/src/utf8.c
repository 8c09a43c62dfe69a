/* utf8.c - strict UTF-8 validation (RFC 3629) and a white-space test. */
#include "cruddur/utf8.h"

#include <stdint.h>

/* Decodes one code point at s[0..len); returns its length or -1. */
static int decode(const unsigned char *s, size_t len, uint32_t *cp) {
  unsigned char c = s[0];
  int n;
  uint32_t v, min;
  if (c < 0x80) {
    *cp = c;
    return c == 0 ? -1 : 1; /* NUL is not text */
  }
  if ((c & 0xe0) == 0xc0) { n = 2; v = c & 0x1f; min = 0x80; }
  else if ((c & 0xf0) == 0xe0) { n = 3; v = c & 0x0f; min = 0x800; }
  else if ((c & 0xf8) == 0xf0) { n = 4; v = c & 0x07; min = 0x10000; }
  else return -1;
  if ((size_t)n > len) return -1;
  for (int i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80) return -1;
    v = (v << 6) | (s[i] & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return -1;
  *cp = v;
  return n;
}

long utf8_count(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  long count = 0;
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    int n = decode(p + i, len - i, &cp);
    if (n < 0) return -1;
    i += (size_t)n;
    count++;
  }
  return count;
}

static int is_space(uint32_t cp) {
  switch (cp) {
  case 0x20: case 0x09: case 0x0a: case 0x0b: case 0x0c: case 0x0d:
  case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029: case 0x202f:
  case 0x205f: case 0x3000: case 0xfeff:
    return 1;
  default:
    return cp >= 0x2000 && cp <= 0x200a;
  }
}

int utf8_is_blank(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    int n = decode(p + i, len - i, &cp);
    if (n < 0) return 0; /* invalid text is not blank; validate separately */
    if (!is_space(cp)) return 0;
    i += (size_t)n;
  }
  return 1;
}
