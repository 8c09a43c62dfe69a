/* usr_link.h - the operator's way to change which Cognito identity a user
 * row belongs to (`users-svc link HANDLE SUB`, `users-svc unlink HANDLE`).
 *
 * The sync never moves a linked row (usr_sync.h); when an identity really
 * changed (an account deleted and signed up again, a sub linked by mistake)
 * an operator who has checked who is who says so here, by handle and sub.
 * The change is one transaction with the row locked, and the caller logs it.
 */
#ifndef USERS_USR_LINK_H
#define USERS_USR_LINK_H

#include <stdint.h>

#include "usr_db.h"
#include "usr_err.h"
#include "usr_pg.h"

typedef struct usr_link_change {
  char handle[USR_HANDLE_MAX + 1]; /* as stored */
  char old_sub[USR_SUB_MAX + 1];   /* "" when the row was not linked */
  char new_sub[USR_SUB_MAX + 1];   /* "" after unlink */
  char holder[USR_HANDLE_MAX + 1]; /* USR_E_EXISTS: the handle holding new_sub */
} usr_link_change;

/* Links the user with `handle` (case-insensitive, valid) to `sub` (valid), or
 * unlinks it when sub is "". *out is filled on USR_OK (old_sub == new_sub
 * means nothing changed) and, for USR_E_EXISTS, names the holder.
 * Errors: USR_E_NOT_FOUND no such handle; USR_E_EXISTS another user holds
 * sub (unlink that one first: a sub is never on two rows); PostgreSQL errors
 * as usr_pg.h. Nothing is written unless the result is USR_OK. */
usr_err usr_link_set(upg_pool *pool, const char *handle, const char *sub, int64_t deadline_us,
                     usr_link_change *out);

#endif
