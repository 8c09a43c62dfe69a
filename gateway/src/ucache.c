/* ucache.c - the sub -> user cache. */
#include "ucache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
  char sub[GW_SUB_MAX + 1]; /* "" = empty */
  int64_t expires_us;
  gw_user user;
} slot;

struct gw_ucache {
  pthread_mutex_t mu;
  size_t mask;
  int64_t ttl_us;
  slot *slots; /* mask + 1 entries */
};

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

gw_ucache *gw_ucache_new(size_t slots, int64_t ttl_us) {
  size_t n = 16;
  while (n < slots && n < ((size_t)1 << 24))
    n <<= 1;
  gw_ucache *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->slots = calloc(n, sizeof *c->slots);
  if (c->slots == NULL) {
    free(c);
    return NULL;
  }
  pthread_mutex_init(&c->mu, NULL);
  c->mask = n - 1;
  c->ttl_us = ttl_us;
  return c;
}

void gw_ucache_free(gw_ucache *c) {
  if (c == NULL) return;
  pthread_mutex_destroy(&c->mu);
  free(c->slots);
  free(c);
}

int gw_ucache_get(gw_ucache *c, const char *sub, int64_t now_us, gw_user *out) {
  int hit = 0;
  slot *s = &c->slots[hash(sub) & c->mask];
  pthread_mutex_lock(&c->mu);
  if (s->sub[0] != '\0' && strcmp(s->sub, sub) == 0 && now_us < s->expires_us) {
    *out = s->user;
    hit = 1;
  }
  pthread_mutex_unlock(&c->mu);
  return hit;
}

void gw_ucache_put(gw_ucache *c, const char *sub, const gw_user *u, int64_t now_us) {
  size_t n = strlen(sub);
  if (n == 0 || n > GW_SUB_MAX) return;
  slot *s = &c->slots[hash(sub) & c->mask];
  pthread_mutex_lock(&c->mu);
  memcpy(s->sub, sub, n + 1);
  s->expires_us = now_us + c->ttl_us;
  s->user = *u;
  pthread_mutex_unlock(&c->mu);
}

size_t gw_ucache_size(gw_ucache *c, int64_t now_us) {
  size_t n = 0;
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i <= c->mask; i++)
    if (c->slots[i].sub[0] != '\0' && now_us < c->slots[i].expires_us) n++;
  pthread_mutex_unlock(&c->mu);
  return n;
}
