/* usr_sync.h - SyncCognitoUsers: link Cognito identities to users, by sub.
 *
 * Reads the whole user pool first (every page; nothing is written if any
 * page fails), sorts the Cognito users into categories, then applies every
 * change in ONE transaction with the affected rows locked.
 *
 * Identity rules (SECURITY.md, "Identity linking"). A Cognito user's `sub`
 * is the identity; `preferred_username` is an attribute the user edits and
 * Cognito does not keep unique, so it is treated as attacker-controlled:
 *   - a Cognito user whose sub is already linked to a row is matched by sub,
 *     whatever its preferred_username says now;
 *   - the sync only ever fills an EMPTY link (a row created without a sub:
 *     seed, import) from preferred_username, and only when exactly one
 *     unlinked Cognito user claims that handle;
 *   - a row linked to a sub is never moved to another sub by the sync, even
 *     when that sub no longer exists in Cognito: changing a link is an
 *     operator action (users-svc link / unlink, usr_link.h).
 *
 * Categories (each Cognito user is in exactly one, so
 * scanned = matched + unmatched + incomplete + conflicts):
 *   incomplete  no sub or a sub of a bad shape; or, for a user not linked
 *               yet, no preferred_username
 *   unmatched   not linked, and preferred_username is no user's handle
 *   conflict    not linked, and it cannot be linked safely: its
 *               preferred_username is also claimed by another unlinked
 *               Cognito user (case-insensitively), the row with that handle
 *               is linked to another sub, or its sub appears twice
 *   matched     linked by sub (already, or now: updated counts the new links)
 */
#ifndef USERS_USR_SYNC_H
#define USERS_USR_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "cruddur/aws.h"
#include "usr_cognito.h"
#include "usr_err.h"
#include "usr_pg.h"

#define USR_SYNC_MAX_NAMES 100

typedef struct usr_sync_report {
  int scanned, matched, updated, unmatched, incomplete, conflicts, pages;
  /* Cognito usernames of unmatched and incomplete users, at most 100; owned. */
  char *names[USR_SYNC_MAX_NAMES];
  size_t n_names;
  /* Cognito usernames of conflicting users, at most 100; owned. */
  char *conflict_names[USR_SYNC_MAX_NAMES];
  size_t n_conflict_names;
} usr_sync_report;

/* What preferred_username offers as a handle. */
typedef enum { USR_CLAIM_OK = 0, USR_CLAIM_NONE, USR_CLAIM_BAD_SHAPE } usr_claim;

/* One Cognito user with a well-formed sub: the database must look at it. */
typedef struct usr_sync_cand {
  char handle[33]; /* preferred_username, lower-cased; "" unless claim is OK */
  usr_claim claim;
  const char *sub;      /* reference into the ucog_list */
  const char *username; /* reference into the ucog_list */
  int conflict;
  /* filled while applying */
  int linked; /* its sub is linked to a row already */
  int row;    /* index of the unlinked-candidate lookup row with its handle, -1 none */
} usr_sync_cand;

/* Counts and names (in rep) the users of `list` without a usable sub
 * (incomplete) and those sharing a sub (conflicts); the others are the
 * candidates for the database, returned sorted by handle in a malloc'd
 * array (*out, caller frees; may be NULL when *n_out is 0). rep must be
 * zeroed. USR_E_INTERNAL on out-of-memory. */
usr_err usr_sync_classify(const ucog_list *list, usr_sync_report *rep, usr_sync_cand **out,
                          size_t *n_out);

/* The whole sync: ListUsers of pool_id through `cognito`, then the
 * transaction on `pool`. rep must be zeroed; free it with
 * usr_sync_report_free whatever the result. */
usr_err usr_sync_run(upg_pool *pool, aws_client *cognito, const char *pool_id, int64_t deadline_us,
                     usr_sync_report *rep);

/* Once the linked candidates are marked: counts the linked ones as matched,
 * names unlinked ones without a usable handle (incomplete, unmatched) and
 * marks as conflicts the unlinked ones that claim the same handle. c is
 * sorted by handle (usr_sync_classify). Pure: unit-tested. */
void usr_sync_claims(usr_sync_cand *c, size_t n, usr_sync_report *rep);

/* Applies an already-read list (the part after ListUsers). */
usr_err usr_sync_apply(upg_pool *pool, const ucog_list *list, int64_t deadline_us,
                       usr_sync_report *rep);

void usr_sync_report_free(usr_sync_report *rep);

#endif
