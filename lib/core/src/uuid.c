/* uuid.c - version 4 uuids from the kernel's random source. */
#include "cruddur/uuid.h"

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>

int uuid_new(char out[UUID_STR_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  uint8_t b[16];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = getrandom(b + got, sizeof b - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    got += (size_t)n;
  }
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
  char *p = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    *p++ = hex[b[i] >> 4];
    *p++ = hex[b[i] & 15];
  }
  *p = '\0';
  return 0;
}

int uuid_valid(const char *s) {
  if (s == NULL) return 0;
  for (int i = 0; i < UUID_STR_LEN; i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return 0;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return 0; /* also catches an early NUL */
    }
  }
  return s[UUID_STR_LEN] == '\0';
}
