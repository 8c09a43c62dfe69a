/* ucache.h - Cognito sub -> user, cached briefly.
 *
 * Direct-mapped and fixed-size (bounded memory; a collision just replaces the
 * older entry). Entries live `ttl_us` so a renamed user shows up soon; a
 * missing user (403) is never cached, so a freshly provisioned user works at
 * once. Thread-safe.
 */
#ifndef GW_UCACHE_H
#define GW_UCACHE_H

#include <stddef.h>
#include <stdint.h>

#define GW_SUB_MAX 128

typedef struct gw_user {
  char uuid[37];
  char handle[33];
  char display_name[404]; /* 100 code points, at most 4 bytes each */
} gw_user;

typedef struct gw_ucache gw_ucache;

/* Creates a cache of `slots` entries (rounded up to a power of two, at least
 * 16). Returns NULL on out-of-memory. Free with gw_ucache_free. */
gw_ucache *gw_ucache_new(size_t slots, int64_t ttl_us);
void gw_ucache_free(gw_ucache *c);

/* Copies the cached user for sub into *out and returns 1; 0 on a miss or an
 * expired entry (*out untouched). */
int gw_ucache_get(gw_ucache *c, const char *sub, int64_t now_us, gw_user *out);

/* Stores (or replaces) the user for sub. Subs longer than 128 are ignored. */
void gw_ucache_put(gw_ucache *c, const char *sub, const gw_user *u, int64_t now_us);

/* Live entries (for /metrics). */
size_t gw_ucache_size(gw_ucache *c, int64_t now_us);

#endif
