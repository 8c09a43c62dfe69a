/* mcache_test.c - membership cache: hits, bounds, LRU eviction, threads. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "mcache.h"

#include "cruddur/check.h"

static void id(unsigned n, char out[37]) {
  snprintf(out, 37, "%08x-0000-4000-8000-%012x", n, n);
}

static mcache_other other(unsigned n) {
  mcache_other o;
  memset(&o, 0, sizeof o);
  id(n, o.uuid);
  snprintf(o.handle, sizeof o.handle, "user%u", n);
  snprintf(o.display_name, sizeof o.display_name, "User %u", n);
  return o;
}

static mcache *shared;
static void *worker(void *arg) {
  unsigned base = (unsigned)(size_t)arg * 100000;
  char g[37], u[37];
  for (unsigned i = 0; i < 20000; i++) {
    id(base + i, g);
    id(base + i + 1, u);
    mcache_other o = other(i), got;
    mcache_put(shared, g, u, &o);
    if (mcache_get(shared, g, u, &got) && strcmp(got.uuid, o.uuid) != 0) failures++;
  }
  return NULL;
}

int main(void) {
  char g[37], u[37];
  mcache *c = mcache_new(64);
  CHECK(c != NULL);
  CHECK(mcache_capacity(c) == 64);
  mcache_other got;
  id(1, g);
  id(2, u);
  CHECK(mcache_get(c, g, u, &got) == 0);
  mcache_other o = other(3);
  mcache_put(c, g, u, &o);
  CHECK(mcache_get(c, g, u, &got) == 1);
  CHECK(strcmp(got.uuid, o.uuid) == 0 && strcmp(got.handle, "user3") == 0);
  /* The key is (group, user): swapped is a miss. */
  CHECK(mcache_get(c, u, g, &got) == 0);
  /* Replacing a key keeps the size. */
  mcache_put(c, g, u, &o);
  CHECK(mcache_size(c) == 1);

  /* Bounded: 10x capacity inserts never exceed capacity. */
  for (unsigned i = 0; i < 640; i++) {
    char gi[37];
    id(1000 + i, gi);
    mcache_other oi = other(i);
    mcache_put(c, gi, u, &oi);
    /* Keep the first entry hot: LRU must not evict it. */
    CHECK(mcache_get(c, g, u, &got) == 1);
    CHECK(mcache_size(c) <= 64);
  }
  CHECK(mcache_size(c) <= 64);
  CHECK(mcache_get(c, g, u, &got) == 1);
  /* Most of the early cold entries are gone. */
  int early = 0;
  for (unsigned i = 0; i < 64; i++) {
    char gi[37];
    id(1000 + i, gi);
    early += mcache_get(c, gi, u, &got);
  }
  CHECK(early < 8);
  mcache_free(c);

  /* Concurrent use under the sanitizers. */
  shared = mcache_new(1024);
  pthread_t th[4];
  for (size_t i = 0; i < 4; i++)
    pthread_create(&th[i], NULL, worker, (void *)i);
  for (size_t i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  CHECK(mcache_size(shared) <= 1024);
  CHECK(mcache_size(shared) >= 512);
  mcache_free(shared);

  if (failures) return 1;
  printf("mcache_test: ok\n");
  return 0;
}
