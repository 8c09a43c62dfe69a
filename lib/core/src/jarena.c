/* jarena.c - per-thread arena behind cJSON's hooks (see jarena.h). */
#include "cruddur/jarena.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cruddur/arena.h"

typedef struct tarena {
  arena mem;
  size_t live; /* arena allocations not yet freed */
  bool open;   /* inside jarena_parse: allocations come from mem */
} tarena;

static _Thread_local tarena *tls;
static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Thread exit: the arena and its chunks go. */
static void tarena_destroy(void *p) {
  tarena *t = p;
  arena_free(&t->mem);
  free(t);
}

static void *hook_malloc(size_t n) {
  tarena *t = tls;
  if (t != NULL && t->open) {
    void *p = arena_alloc(&t->mem, n);
    if (p != NULL) {
      t->live++;
      return p;
    }
  }
  return malloc(n);
}

static void hook_free(void *p) {
  tarena *t = tls;
  if (p == NULL) return;
  if (t != NULL && arena_owns(&t->mem, p)) {
    if (--t->live == 0) arena_rewind(&t->mem);
    return;
  }
  free(p);
}

static void install(void) {
  if (pthread_key_create(&key, tarena_destroy) != 0) abort();
  cJSON_Hooks h = {hook_malloc, hook_free};
  cJSON_InitHooks(&h);
}

/* This thread's arena, made on first use; NULL when out of memory. */
static tarena *thread_arena(void) {
  if (tls == NULL) {
    tarena *t = calloc(1, sizeof *t);
    if (t == NULL) return NULL;
    t->mem = (arena)ARENA_INIT(JARENA_CHUNK, JARENA_MAX);
    if (pthread_setspecific(key, t) != 0) {
      free(t);
      return NULL;
    }
    tls = t;
  }
  return tls;
}

cJSON *jarena_parse(const char *text, size_t len) {
  pthread_once(&once, install);
  tarena *t = thread_arena();
  if (t == NULL) return cJSON_ParseWithLength(text, len);
  bool was_open = t->open; /* inside jarena_open: stays open */
  t->open = true;
  cJSON *j = cJSON_ParseWithLength(text, len);
  t->open = was_open;
  /* A refused document may leave nothing live: rewind now. */
  if (t->live == 0) arena_rewind(&t->mem);
  return j;
}

void jarena_open(void) {
  pthread_once(&once, install);
  tarena *t = thread_arena();
  if (t != NULL) t->open = true;
}

void jarena_close(void) {
  tarena *t = tls;
  if (t == NULL) return;
  t->open = false;
  if (t->live == 0) arena_rewind(&t->mem);
}

void jarena_stats(size_t *bytes, size_t *live) {
  tarena *t = tls;
  *bytes = t ? t->mem.bytes : 0;
  *live = t ? t->live : 0;
}
