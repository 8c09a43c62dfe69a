/* usr_sync.h - SyncCognitoUsers: link Cognito subs to users by handle.
 *
 * Reads the whole user pool first (every page; nothing is written if any
 * page fails), sorts the Cognito users into categories, then applies every
 * change in ONE transaction with the affected rows locked.
 *
 * Categories (each Cognito user is in exactly one, so
 * scanned = matched + unmatched + incomplete + conflicts):
 *   incomplete  no sub or no preferred_username (or a sub of a bad shape)
 *   unmatched   preferred_username is not the handle of any user
 *   conflict    cannot be linked unambiguously: two Cognito users claim the
 *               same handle (case-insensitively) or the same sub, or the sub
 *               is already linked to another user that keeps it
 *   matched     linked (updated counts those whose stored sub changed)
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

/* One Cognito user the database must look at. */
typedef struct usr_sync_cand {
  char handle[33];      /* preferred_username, lower-cased */
  const char *sub;      /* reference into the ucog_list */
  const char *username; /* reference into the ucog_list */
  int conflict;
  /* filled while applying */
  int row;                   /* index of the users row with this handle, -1 none */
  struct usr_sync_cand *dep; /* must be applied for this one to be */
} usr_sync_cand;

/* Sorts the users of `list` into incomplete / unmatched-by-shape / conflict
 * (counted and named in rep) and candidates for the database, returned
 * sorted by handle in a malloc'd array (*out, caller frees; may be NULL when
 * *n_out is 0). rep must be zeroed. USR_E_INTERNAL on out-of-memory. */
usr_err usr_sync_classify(const ucog_list *list, usr_sync_report *rep, usr_sync_cand **out,
                          size_t *n_out);

/* The whole sync: ListUsers of pool_id through `cognito`, then the
 * transaction on `pool`. rep must be zeroed; free it with
 * usr_sync_report_free whatever the result. */
usr_err usr_sync_run(upg_pool *pool, aws_client *cognito, const char *pool_id, int64_t deadline_us,
                     usr_sync_report *rep);

/* Applies an already-read list (the part after ListUsers). */
usr_err usr_sync_apply(upg_pool *pool, const ucog_list *list, int64_t deadline_us,
                       usr_sync_report *rep);

void usr_sync_report_free(usr_sync_report *rep);

#endif
