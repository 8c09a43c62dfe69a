/* netaddr.c - see netaddr.h. Address text is parsed by inet_pton. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static void addr_v4(const void *in4, gw_addr *out) {
  memset(out->b, 0, 10);
  out->b[10] = out->b[11] = 0xff;
  memcpy(out->b + 12, in4, 4);
}

static int addr_is_v4(const gw_addr *a) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return memcmp(a->b, prefix, 12) == 0;
}

int gw_addr_from_sockaddr(const struct sockaddr_storage *ss, gw_addr *out) {
  if (ss->ss_family == AF_INET) {
    addr_v4(&((const struct sockaddr_in *)ss)->sin_addr, out);
    return 0;
  }
  if (ss->ss_family == AF_INET6) {
    memcpy(out->b, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    return 0;
  }
  return -1;
}

int gw_addr_parse(const char *s, size_t len, gw_addr *out) {
  char tmp[INET6_ADDRSTRLEN];
  if (len == 0 || len >= sizeof tmp) return -1;
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  uint8_t b[16];
  if (inet_pton(AF_INET, tmp, b) == 1) {
    addr_v4(b, out);
    return 0;
  }
  if (inet_pton(AF_INET6, tmp, b) == 1) {
    memcpy(out->b, b, 16);
    return 0;
  }
  return -1;
}

/* 1 when a and b agree on their first `bits` bits. */
static int prefix_eq(const gw_addr *a, const gw_addr *b, unsigned bits) {
  unsigned whole = bits / 8, rest = bits % 8;
  if (memcmp(a->b, b->b, whole) != 0) return 0;
  if (rest == 0) return 1;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (a->b[whole] & mask) == (b->b[whole] & mask);
}

static int is_blank(char c) {
  return c == ' ' || c == '\t';
}

/* Trims blanks off [*s, *e). */
static void trim(const char **s, const char **e) {
  while (*s < *e && is_blank(**s))
    (*s)++;
  while (*e > *s && is_blank((*e)[-1]))
    (*e)--;
}

/* One "addr" or "addr/bits" item. */
static int cidr_parse(const char *s, const char *e, gw_addr *net, unsigned *bits) {
  const char *slash = memchr(s, '/', (size_t)(e - s));
  if (gw_addr_parse(s, (size_t)((slash ? slash : e) - s), net) != 0) return -1;
  unsigned base = addr_is_v4(net) ? 96 : 0, width = 128 - base;
  unsigned n = width;
  if (slash != NULL) {
    const char *d = slash + 1;
    if (d == e || e - d > 3) return -1;
    n = 0;
    for (; d < e; d++) {
      if (*d < '0' || *d > '9') return -1;
      n = n * 10 + (unsigned)(*d - '0');
    }
    if (n > width) return -1;
  }
  *bits = base + n;
  /* Host bits set ("10.1.2.3/8") are more likely a typo than a wish. */
  gw_addr masked;
  memset(&masked, 0, sizeof masked);
  memcpy(masked.b, net->b, *bits / 8);
  if (*bits % 8) masked.b[*bits / 8] = (uint8_t)(net->b[*bits / 8] & (0xff << (8 - *bits % 8)));
  return memcmp(masked.b, net->b, 16) == 0 ? 0 : -1;
}

int gw_cidrs_parse(const char *list, gw_cidrs *out) {
  out->n = 0;
  if (list == NULL) return 0;
  const char *p = list, *end = list + strlen(list);
  while (p <= end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *s = p, *e = comma ? comma : end;
    trim(&s, &e);
    if (s == e) {
      if (comma == NULL && out->n == 0 && p == list) return 0; /* an empty list */
      goto bad;
    }
    if (out->n == GW_CIDRS_MAX || cidr_parse(s, e, &out->e[out->n].net, &out->e[out->n].bits) != 0)
      goto bad;
    out->n++;
    if (comma == NULL) break;
    p = comma + 1;
  }
  return 0;
bad:
  out->n = 0;
  return -1;
}

int gw_cidrs_has(const gw_cidrs *c, const gw_addr *a) {
  for (size_t i = 0; c != NULL && i < c->n; i++)
    if (prefix_eq(&c->e[i].net, a, c->e[i].bits)) return 1;
  return 0;
}

void gw_client_addr(const gw_addr *peer, const gw_cidrs *trusted, const char *xff, size_t len,
                    gw_addr *out) {
  gw_addr cur = *peer;
  const char *end = xff != NULL ? xff + len : NULL;
  while (end != NULL && gw_cidrs_has(trusted, &cur)) {
    const char *start = end;
    while (start > xff && start[-1] != ',')
      start--;
    const char *s = start, *e = end;
    trim(&s, &e);
    gw_addr a;
    if (gw_addr_parse(s, (size_t)(e - s), &a) != 0) break;
    cur = a;
    end = start > xff ? start - 1 : NULL; /* before the comma, or done */
  }
  *out = cur;
}

void gw_addr_rate_key(const gw_addr *a, uint8_t key[16]) {
  memcpy(key, a->b, 16);
  if (!addr_is_v4(a)) memset(key + 8, 0, 8);
}
