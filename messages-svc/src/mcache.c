/* mcache.c - set-associative LRU cache of (group, user) -> other participant. */
#include "mcache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 8

typedef struct slot {
  uint64_t stamp;      /* last use; 0 = empty */
  char key[74];        /* group '|' user, NUL-terminated */
  mcache_other *other; /* owned */
} slot;

struct mcache {
  pthread_mutex_t mu;
  size_t nsets;
  size_t count;
  uint64_t clock;
  slot *slots; /* nsets * WAYS */
};

mcache *mcache_new(size_t capacity) {
  size_t nsets = (capacity + WAYS - 1) / WAYS;
  if (nsets == 0) nsets = 1;
  mcache *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->slots = calloc(nsets * WAYS, sizeof *c->slots);
  if (c->slots == NULL) {
    free(c);
    return NULL;
  }
  c->nsets = nsets;
  pthread_mutex_init(&c->mu, NULL);
  return c;
}

void mcache_free(mcache *c) {
  if (c == NULL) return;
  for (size_t i = 0; i < c->nsets * WAYS; i++)
    free(c->slots[i].other);
  free(c->slots);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* FNV-1a: keys are our own validated uuids, not attacker-chosen in a way
 * that matters (a crafted collision only evicts, never returns wrong data). */
static size_t set_of(const mcache *c, const char *key) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = key; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ull;
  /* FNV's low bits mix poorly; finish with the splitmix64 finaliser. */
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return (size_t)(h % c->nsets);
}

static int make_key(const char *group, const char *user, char key[74]) {
  size_t g = strlen(group), u = strlen(user);
  if (g > 36 || u > 36) return -1;
  memcpy(key, group, g);
  key[g] = '|';
  memcpy(key + g + 1, user, u + 1);
  return 0;
}

int mcache_get(mcache *c, const char *group, const char *user, mcache_other *out) {
  char key[74];
  if (make_key(group, user, key) != 0) return 0;
  int hit = 0;
  pthread_mutex_lock(&c->mu);
  slot *set = &c->slots[set_of(c, key) * WAYS];
  for (int i = 0; i < WAYS; i++) {
    if (set[i].stamp != 0 && strcmp(set[i].key, key) == 0) {
      set[i].stamp = ++c->clock;
      *out = *set[i].other;
      hit = 1;
      break;
    }
  }
  pthread_mutex_unlock(&c->mu);
  return hit;
}

void mcache_put(mcache *c, const char *group, const char *user, const mcache_other *other) {
  char key[74];
  if (make_key(group, user, key) != 0) return;
  mcache_other *copy = malloc(sizeof *copy);
  if (copy == NULL) return;
  *copy = *other;
  mcache_other *old = NULL;
  pthread_mutex_lock(&c->mu);
  slot *set = &c->slots[set_of(c, key) * WAYS];
  slot *victim = NULL;
  for (int i = 0; i < WAYS; i++) {
    if (set[i].stamp != 0 && strcmp(set[i].key, key) == 0) {
      victim = &set[i];
      break;
    }
  }
  if (victim == NULL) {
    for (int i = 0; i < WAYS; i++) {
      if (victim == NULL || set[i].stamp < victim->stamp) victim = &set[i];
    }
    if (victim->stamp == 0) c->count++;
  }
  old = victim->other;
  victim->other = copy;
  memcpy(victim->key, key, sizeof key);
  victim->stamp = ++c->clock;
  pthread_mutex_unlock(&c->mu);
  free(old);
}

size_t mcache_size(mcache *c) {
  pthread_mutex_lock(&c->mu);
  size_t n = c->count;
  pthread_mutex_unlock(&c->mu);
  return n;
}

size_t mcache_capacity(const mcache *c) {
  return c->nsets * WAYS;
}
