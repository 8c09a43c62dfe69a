/* arena.h - a bump allocator for memory that dies all at once.
 *
 * For the objects of one request or one parsed document: allocation is a
 * pointer bump, and there is no free of single objects; arena_rewind or
 * arena_free releases everything. Chunks are `chunk` bytes; an allocation
 * over a quarter of that gets a chunk of its own (behind the one being
 * filled, which keeps bumping); `max` caps the bytes an arena may hold.
 * Under AddressSanitizer the bytes not handed out are poisoned, so reads
 * past an allocation or after a rewind are reported as with malloc.
 *
 * The arena owns its chunks. Not thread-safe: one arena, one thread.
 */
#ifndef CRUDDUR_ARENA_H
#define CRUDDUR_ARENA_H

#include <stdbool.h>
#include <stddef.h>

typedef struct arena_chunk arena_chunk;

typedef struct arena {
  arena_chunk *head; /* the chunk being filled; older ones follow */
  size_t bytes;      /* sum of chunk sizes */
  size_t chunk;      /* standard chunk size */
  size_t max;        /* most bytes of chunks allowed */
} arena;

/* An empty arena of `chunk`-byte chunks holding up to `max` bytes. */
#define ARENA_INIT(chunk, max) {NULL, 0, (chunk), (max)}

/* n bytes aligned for any type, or NULL when the cap is reached or memory
 * runs out. n == 0 is given a minimal valid block. */
void *arena_alloc(arena *a, size_t n);

/* 1 when p points into one of the arena's chunks. */
bool arena_owns(const arena *a, const void *p);

/* Releases every allocation; keeps the first standard-size chunk for the
 * next use and frees the others. */
void arena_rewind(arena *a);

/* Frees every chunk; the arena is empty again (same max). */
void arena_free(arena *a);

#endif
