/* usr_cognito.h - reading a Cognito user pool (ListUsers), as pure steps.
 *
 * ucog_parse_page() turns one ListUsers answer into users + the next
 * PaginationToken; ucog_list_all() follows the tokens through a fetch
 * callback (aws_call in production, a table of canned pages in the unit
 * test), with a page cap against a token loop.
 */
#ifndef USERS_USR_COGNITO_H
#define USERS_USR_COGNITO_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "cruddur/aws.h"
#include "usr_err.h"

#define UCOG_PAGE_LIMIT 60    /* Cognito's own maximum per page */
#define UCOG_MAX_PAGES 2000   /* 120,000 users; beyond it we assume a token loop */
#define UCOG_MAX_USERS 200000 /* memory cap for one sync */
#define UCOG_MAX_TOKEN 4096   /* bytes; longer tokens are a protocol error */

/* One Cognito user. Strings are owned by the list; NULL when absent. */
typedef struct ucog_user {
  char *username;           /* Username */
  char *sub;                /* attribute "sub" */
  char *preferred_username; /* attribute "preferred_username" */
} ucog_user;

typedef struct ucog_list {
  ucog_user *v;
  size_t n, cap;
  int pages; /* ListUsers answers read */
} ucog_list;

typedef enum {
  UCOG_OK = 0,
  UCOG_E_SHAPE,    /* not a ListUsers answer (no Users array, wrong types) */
  UCOG_E_TOO_MANY, /* more than UCOG_MAX_USERS users */
  UCOG_E_NOMEM
} ucog_code;

/* Appends the users of one ListUsers answer `resp` to `list` and sets
 * *next_token to a malloc'd copy of its PaginationToken (NULL when absent or
 * empty: the last page). A user entry that is not an object, or lacks
 * Username/Attributes, is kept with the missing fields NULL (it will be
 * reported as incomplete). Attributes other than sub and preferred_username
 * are ignored (never copied: e-mail stays out of memory and logs).
 * On error nothing is appended and *next_token is untouched. */
ucog_code ucog_parse_page(const cJSON *resp, ucog_list *list, char **next_token);

/* Fetches one page: `req` is the ListUsers request body. On USR_OK *resp is
 * the answer, owned by the caller. */
typedef usr_err (*ucog_fetch_fn)(void *user, const cJSON *req, cJSON **resp);

/* Reads every page of `pool_id` into `out` (which must be zeroed; the caller
 * frees it with ucog_list_free even on error). Stops at the first page
 * without a PaginationToken. A token equal to the previous one, more than
 * `max_pages` pages or UCOG_MAX_USERS users fail with USR_E_UPSTREAM: a
 * partial list must never be applied. Errors of `fetch` are returned as is;
 * a malformed answer is USR_E_UPSTREAM. */
usr_err ucog_list_all(const char *pool_id, ucog_fetch_fn fetch, void *user, int max_pages,
                      ucog_list *out);

/* The domain error for a failed aws_call of ListUsers. */
usr_err ucog_aws_err(aws_code code, const char *name);

/* Frees the users and their strings; the list itself is the caller's. */
void ucog_list_free(ucog_list *list);

#endif
