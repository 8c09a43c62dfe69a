/* mcache.h - bounded in-process cache of group membership.
 *
 * A group's two participants never change, so "(group, user) is a member and
 * the other participant has uuid X" stays true once seen: only positive
 * answers are cached. The other's handle and display name are as last seen
 * by this process (a rename elsewhere is not seen), so callers use them only
 * where an old name cannot overwrite a newer one (store_post's other_fresh).
 *
 * Set-associative (8 ways per set) with least-recently-used eviction inside
 * a set, so memory is bounded by the capacity and every operation is
 * O(ways). Thread-safe (one mutex).
 */
#ifndef MSGS_MCACHE_H
#define MSGS_MCACHE_H

#include <stddef.h>

typedef struct mcache mcache;

typedef struct mcache_other {
  char uuid[37];
  char handle[33];
  char display_name[401];
} mcache_other;

/* A cache of at most `capacity` entries (rounded up to a multiple of 8, at
 * least 8). Returns NULL on out-of-memory. Free with mcache_free. */
mcache *mcache_new(size_t capacity);
void mcache_free(mcache *c);

/* 1 and *out filled when (group, user) is cached; 0 otherwise. */
int mcache_get(mcache *c, const char *group, const char *user, mcache_other *out);

/* Records (group, user) -> other; replaces an equal key; may evict the least
 * recently used entry of the set. Out-of-memory just skips caching. */
void mcache_put(mcache *c, const char *group, const char *user, const mcache_other *other);

/* Entries held now; capacity as rounded. */
size_t mcache_size(mcache *c);
size_t mcache_capacity(const mcache *c);

#endif
