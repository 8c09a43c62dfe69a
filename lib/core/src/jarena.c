/* jarena.c - per-thread bump arena behind cJSON's hooks (see jarena.h). */
#include "cruddur/jarena.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* Under AddressSanitizer, arena bytes not handed out are poisoned, so a use
 * after cJSON_Delete is still reported as it would be with malloc. */
#if defined(__SANITIZE_ADDRESS__)
#define JARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JARENA_ASAN 1
#endif
#endif
#ifdef JARENA_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

typedef struct chunk {
  struct chunk *next;
  size_t size, used; /* bytes of data[] */
  max_align_t data[];
} chunk;

typedef struct arena {
  chunk *head;  /* the chunk being filled; older ones follow */
  size_t bytes; /* sum of chunk sizes */
  size_t live;  /* arena allocations not yet freed */
  bool open;    /* inside jarena_parse: allocations come from here */
} arena;

static _Thread_local arena *tls;
static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Thread exit: the arena and its chunks go. */
static void arena_destroy(void *p) {
  arena *a = p;
  chunk *c = a->head;
  while (c) {
    chunk *next = c->next;
    UNPOISON(c->data, c->size);
    free(c);
    c = next;
  }
  free(a);
}

static int in_chunk(const chunk *c, const void *p) {
  uintptr_t u = (uintptr_t)p, lo = (uintptr_t)c->data;
  return u >= lo && u < lo + c->size;
}

/* Keeps the first (oldest) chunk if it is the standard size, frees the rest. */
static void rewind_arena(arena *a) {
  chunk *keep = NULL, *c = a->head;
  while (c) {
    chunk *next = c->next;
    if (next == NULL && c->size == JARENA_CHUNK) {
      keep = c;
    } else {
      UNPOISON(c->data, c->size);
      free(c);
    }
    c = next;
  }
  if (keep) {
    keep->used = 0;
    POISON(keep->data, keep->size);
  }
  a->head = keep;
  a->bytes = keep ? keep->size : 0;
}

static void *bump(arena *a, size_t want) {
  size_t n = (want + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  chunk *c = a->head;
  if (c == NULL || c->size - c->used < n) {
    size_t size = n > JARENA_CHUNK ? n : JARENA_CHUNK;
    if (a->bytes + size > JARENA_MAX) return NULL;
    c = malloc(sizeof *c + size);
    if (c == NULL) return NULL;
    c->size = size;
    c->used = 0;
    c->next = a->head;
    a->head = c;
    a->bytes += size;
    POISON(c->data, size);
  }
  void *p = (char *)c->data + c->used;
  UNPOISON(p, want);
  c->used += n;
  a->live++;
  return p;
}

static void *hook_malloc(size_t n) {
  arena *a = tls;
  if (a != NULL && a->open) {
    void *p = bump(a, n);
    if (p != NULL) return p;
  }
  return malloc(n);
}

static void hook_free(void *p) {
  arena *a = tls;
  if (p == NULL) return;
  if (a != NULL) {
    for (chunk *c = a->head; c; c = c->next) {
      if (!in_chunk(c, p)) continue;
      if (--a->live == 0) rewind_arena(a);
      return;
    }
  }
  free(p);
}

static void install(void) {
  if (pthread_key_create(&key, arena_destroy) != 0) abort();
  cJSON_Hooks h = {hook_malloc, hook_free};
  cJSON_InitHooks(&h);
}

/* This thread's arena, made on first use; NULL when out of memory. */
static arena *thread_arena(void) {
  if (tls == NULL) {
    arena *a = calloc(1, sizeof *a);
    if (a == NULL || pthread_setspecific(key, a) != 0) {
      free(a);
      return NULL;
    }
    tls = a;
  }
  return tls;
}

cJSON *jarena_parse(const char *text, size_t len) {
  pthread_once(&once, install);
  arena *a = thread_arena();
  if (a == NULL) return cJSON_ParseWithLength(text, len);
  a->open = true;
  cJSON *j = cJSON_ParseWithLength(text, len);
  a->open = false;
  /* A refused document may leave nothing live: rewind now. */
  if (a->live == 0 && a->head != NULL) rewind_arena(a);
  return j;
}

void jarena_stats(size_t *bytes, size_t *live) {
  arena *a = tls;
  *bytes = a ? a->bytes : 0;
  *live = a ? a->live : 0;
}
