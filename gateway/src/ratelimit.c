/* ratelimit.c - see ratelimit.h. Hand-written: the buckets are a few lines,
 * and the part that matters (a fixed table that cannot be grown by callers)
 * is what a general cache library would leave to us anyway. */
#define _GNU_SOURCE
#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define RL_SHARDS 16
#define RL_PROBE 8

typedef struct rl_slot {
  uint8_t key[16];
  double tokens;
  int64_t t_us; /* last refill; 0 = empty slot */
} rl_slot;

typedef struct rl_shard {
  pthread_mutex_t mu;
  rl_slot *slot; /* mask + 1 slots, owned */
  size_t used;
} rl_shard;

struct gw_rl {
  double burst, per_us; /* tokens, tokens per microsecond */
  uint64_t seed[2];
  size_t mask;
  atomic_uint_fast64_t evictions;
  rl_shard shard[RL_SHARDS];
};

int gw_rl_new(long burst, long per_min, size_t cap, gw_rl **out) {
  if (burst < 1 || per_min < 1 || out == NULL) return -1;
  /* Slots for twice the keys: at most half full, a probe window is almost
   * never all live buckets (at three quarters full, 4% of new keys evicted
   * one, measured). */
  size_t per = RL_PROBE;
  while (per * RL_SHARDS < 2 * cap && per < ((size_t)1 << 24))
    per <<= 1;
  gw_rl *rl = calloc(1, sizeof *rl);
  if (rl == NULL) return -1;
  rl->burst = (double)burst;
  rl->per_us = (double)per_min / 60e6;
  rl->mask = per - 1;
  if (getrandom(rl->seed, sizeof rl->seed, 0) != (ssize_t)sizeof rl->seed) {
    rl->seed[0] = (uint64_t)(uintptr_t)rl; /* still differs per process start */
    rl->seed[1] = ~rl->seed[0];
  }
  for (int i = 0; i < RL_SHARDS; i++) {
    rl->shard[i].slot = calloc(per, sizeof(rl_slot));
    if (rl->shard[i].slot == NULL) {
      gw_rl_free(rl);
      return -1;
    }
    pthread_mutex_init(&rl->shard[i].mu, NULL);
  }
  *out = rl;
  return 0;
}

void gw_rl_free(gw_rl *rl) {
  if (rl == NULL) return;
  for (int i = 0; i < RL_SHARDS; i++) {
    if (rl->shard[i].slot == NULL) continue;
    free(rl->shard[i].slot);
    pthread_mutex_destroy(&rl->shard[i].mu);
  }
  free(rl);
}

static uint64_t mix64(uint64_t x) { /* splitmix64's finalizer */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static uint64_t rl_hash(const gw_rl *rl, const uint8_t key[16]) {
  uint64_t a, b;
  memcpy(&a, key, 8);
  memcpy(&b, key + 8, 8);
  return mix64(mix64(a ^ rl->seed[0]) ^ b ^ rl->seed[1]);
}

/* The bucket refilled up to now. */
static double rl_level(const gw_rl *rl, const rl_slot *s, int64_t now_us) {
  double t = s->tokens + (double)(now_us - s->t_us) * rl->per_us;
  return t < rl->burst ? t : rl->burst;
}

/* The slot of key in its probe window, or the one to give it (empty, then
 * full, then least recently used). *fresh: the slot must be (re)set. */
static rl_slot *rl_find(gw_rl *rl, rl_shard *sh, size_t start, const uint8_t key[16],
                        int64_t now_us, int *fresh) {
  rl_slot *full = NULL, *lru = NULL;
  for (size_t i = 0; i < RL_PROBE; i++) {
    rl_slot *s = &sh->slot[(start + i) & rl->mask];
    if (s->t_us == 0) { /* slots are never emptied: the key is not further on */
      *fresh = 1;
      sh->used++;
      return s;
    }
    if (memcmp(s->key, key, 16) == 0) {
      *fresh = 0;
      return s;
    }
    if (full == NULL && rl_level(rl, s, now_us) >= rl->burst) full = s;
    if (lru == NULL || s->t_us < lru->t_us) lru = s;
  }
  *fresh = 1;
  if (full != NULL) return full;
  atomic_fetch_add(&rl->evictions, 1);
  return lru;
}

int gw_rl_take(gw_rl *rl, const uint8_t key[16], int64_t now_us, int *retry_after_s) {
  if (now_us <= 0) now_us = 1; /* 0 marks an empty slot */
  uint64_t h = rl_hash(rl, key);
  rl_shard *sh = &rl->shard[h % RL_SHARDS];
  pthread_mutex_lock(&sh->mu);
  int fresh;
  rl_slot *s = rl_find(rl, sh, (size_t)(h / RL_SHARDS), key, now_us, &fresh);
  if (fresh) {
    memcpy(s->key, key, 16);
    s->tokens = rl->burst;
  } else {
    s->tokens = rl_level(rl, s, now_us);
  }
  s->t_us = now_us;
  int ok = s->tokens >= 1.0;
  if (ok) s->tokens -= 1.0;
  double wait_us = ok ? 0 : (1.0 - s->tokens) / rl->per_us;
  pthread_mutex_unlock(&sh->mu);
  if (!ok) {
    double sec = ceil(wait_us / 1e6);
    *retry_after_s = sec < 1 ? 1 : sec > 86400 ? 86400 : (int)sec;
  }
  return ok;
}

size_t gw_rl_size(gw_rl *rl) {
  size_t n = 0;
  for (int i = 0; i < RL_SHARDS; i++) {
    pthread_mutex_lock(&rl->shard[i].mu);
    n += rl->shard[i].used;
    pthread_mutex_unlock(&rl->shard[i].mu);
  }
  return n;
}

uint64_t gw_rl_evictions(gw_rl *rl) {
  return atomic_load(&rl->evictions);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void gw_rl_key_uuid(const char *uuid, uint8_t key[16]) {
  size_t n = 0;
  const char *p = uuid;
  for (; *p != '\0' && n < 32; p++) {
    if (*p == '-') continue;
    int v = hexval(*p);
    if (v < 0) break;
    if (n % 2 == 0)
      key[n / 2] = (uint8_t)(v << 4);
    else
      key[n / 2] |= (uint8_t)v;
    n++;
  }
  if (n == 32 && *p == '\0') return;
  /* Not a uuid: fold the string (FNV-1a over two lanes). */
  uint64_t a = 0xcbf29ce484222325ULL, b = 0x84222325cbf29ce4ULL;
  for (p = uuid; *p != '\0'; p++) {
    a = (a ^ (uint8_t)*p) * 0x100000001b3ULL;
    b = (b ^ (uint8_t)*p) * 0x100000001b3ULL + 1;
  }
  memcpy(key, &a, 8);
  memcpy(key + 8, &b, 8);
}
