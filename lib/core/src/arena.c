/* arena.c - bump allocator (see arena.h). */
#include "cruddur/arena.h"

#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif
#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct arena_chunk {
  arena_chunk *next;
  size_t size, used; /* bytes of data[] */
  max_align_t data[];
};

static arena_chunk *chunk_new(arena *a, size_t size) {
  if (size > a->max || a->bytes > a->max - size) return NULL;
  arena_chunk *c = malloc(sizeof *c + size);
  if (c == NULL) return NULL;
  c->size = size;
  c->used = 0;
  a->bytes += size;
  POISON(c->data, size);
  return c;
}

void *arena_alloc(arena *a, size_t want) {
  const size_t al = sizeof(max_align_t);
  if (want > SIZE_MAX - al) return NULL;
  size_t n = want ? (want + al - 1) / al * al : al;
  arena_chunk *c = a->head;
  if (c == NULL || c->size - c->used < n) {
    if (n > a->chunk / 4) {
      /* Its own chunk, behind the head, so the head keeps bumping. */
      if ((c = chunk_new(a, n)) == NULL) return NULL;
      if (a->head) {
        c->next = a->head->next;
        a->head->next = c;
      } else {
        c->next = NULL;
        a->head = c;
      }
    } else {
      if ((c = chunk_new(a, a->chunk)) == NULL) return NULL;
      c->next = a->head;
      a->head = c;
    }
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  UNPOISON(p, want);
  return p;
}

bool arena_owns(const arena *a, const void *p) {
  uintptr_t u = (uintptr_t)p;
  for (const arena_chunk *c = a->head; c; c = c->next) {
    uintptr_t lo = (uintptr_t)c->data;
    if (u >= lo && u < lo + c->size) return true;
  }
  return false;
}

static void chunk_free(arena_chunk *c) {
  UNPOISON(c->data, c->size);
  free(c);
}

void arena_rewind(arena *a) {
  /* Keep the oldest standard chunk (the last one in the list). */
  arena_chunk *keep = NULL;
  for (arena_chunk *c = a->head; c; c = c->next)
    if (c->size == a->chunk) keep = c;
  arena_chunk *c = a->head;
  while (c) {
    arena_chunk *next = c->next;
    if (c != keep) chunk_free(c);
    c = next;
  }
  if (keep) {
    keep->used = 0;
    keep->next = NULL;
    POISON(keep->data, keep->size);
  }
  a->head = keep;
  a->bytes = keep ? keep->size : 0;
}

void arena_free(arena *a) {
  arena_chunk *c = a->head;
  while (c) {
    arena_chunk *next = c->next;
    chunk_free(c);
    c = next;
  }
  a->head = NULL;
  a->bytes = 0;
}
