/* watch_token.h - the position of a WatchEvents stream and its resume token
 * (README "Live events").
 *
 * A token is a page token (token.c: HMAC-SHA256, bound to the user and the
 * partition GRP#user) of kind TOKEN_WATCH whose position holds `cur` and
 * "low~hash~count".
 */
#ifndef MSGS_WATCH_TOKEN_H
#define MSGS_WATCH_TOKEN_H

#include <stdint.h>

#include "keys.h"
#include "token.h"

/* Delivered keys remembered per stream inside the late window; a token
 * never claims more. */
#define WATCH_SEEN_MAX 512

typedef struct watch_pos {
  char cur[KEYS_MSG_SK_LEN + 1]; /* newest sk delivered, or the start time (ts27) */
  char low[28];                  /* ts27: the window's lower bound; low <= cur */
  uint64_t hash;                 /* sum of watch_sk_hash of the sks delivered above low */
  unsigned count;                /* how many (<= WATCH_SEEN_MAX) */
} watch_pos;

/* Token <-> position for `user`. encode: 0, or -1 when a field does not
 * fit. decode: 0 and *p set, or -1 (*p untouched) when the token is
 * malformed, forged, another kind, or another user's. */
int watch_token_encode(const token_key *k, const char *user, const watch_pos *p,
                       char out[TOKEN_MAX + 1]);
int watch_token_decode(const token_key *k, const char *user, const char *tok, watch_pos *p);

/* FNV-1a 64 of a sort key: summed (mod 2^64) over a set of keys. */
uint64_t watch_sk_hash(const char *sk);

/* The time of a position (an sk, or a bare ts27). 0 or -1. */
int watch_pos_time(const char *s, int64_t *us);

#endif
