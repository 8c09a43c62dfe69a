/* token.h - opaque, tamper-proof page tokens.
 *
 * A token is base64url(payload) "." base64url(HMAC-SHA256(key, payload)).
 * The payload binds the list kind, the caller, the partition key and the
 * position (the last returned item's keys), so a token is only accepted for
 * the same list and the same caller: a forged or transplanted token is
 * rejected before any query runs.
 */
#ifndef MSGS_TOKEN_H
#define MSGS_TOKEN_H

#include <stddef.h>

#include "cruddur/sha256.h"

#define TOKEN_MAX 512       /* longest token we produce or accept */
#define TOKEN_FIELD_MAX 80  /* longest key value in a position */
#define TOKEN_SECRET_MIN 32 /* shortest PAGE_TOKEN_SECRET accepted, in bytes */

typedef enum { TOKEN_MESSAGES = 'm', TOKEN_GROUPS = 'g', TOKEN_WATCH = 'w' } token_kind;

/* The MAC key, as HMAC states (so a token costs no key set-up). Owned;
 * zero-initialise, release with token_key_free. Read-only once set: the
 * workers share one. */
typedef struct token_key {
  sha256_hmac mac;
} token_key;

/* The position a page ends at: the sort key of the last returned item, and
 * for the group list also its index key (last_sk); "" when not used. */
typedef struct token_pos {
  char sk[TOKEN_FIELD_MAX + 1];
  char last_sk[TOKEN_FIELD_MAX + 1];
} token_pos;

/* Sets the empty key *k from `secret` (>= TOKEN_SECRET_MIN bytes; over 64 are
 * hashed, as HMAC does), or from 32 random bytes when secret is NULL or
 * empty. Returns 0; 1 when a random key was made; -1 when secret is shorter
 * than TOKEN_SECRET_MIN, or randomness or memory failed (*k stays empty). */
int token_key_init(token_key *k, const char *secret);

/* Frees and wipes the key; *k is empty again. */
void token_key_free(token_key *k);

/* Encodes a token into out (TOKEN_MAX + 1 bytes). Returns 0, or -1 when a
 * field is too long or holds '|' (out untouched). */
int token_encode(const token_key *k, token_kind kind, const char *caller, const char *pk,
                 const token_pos *pos, char out[TOKEN_MAX + 1]);

/* Checks and decodes `token` for this kind, caller and partition. Returns 0
 * and sets *pos, or -1 for anything else: malformed, bad MAC, another list,
 * another caller or partition (*pos untouched). */
int token_decode(const token_key *k, const char *token, token_kind kind, const char *caller,
                 const char *pk, token_pos *pos);

#endif
