/* usr_cognito.c - see usr_cognito.h. */
#include "usr_cognito.h"

#include <stdlib.h>
#include <string.h>

static char *ucog__dup(const cJSON *s) {
  if (!cJSON_IsString(s) || s->valuestring == NULL) return NULL;
  return strdup(s->valuestring);
}

static void ucog__user_free(ucog_user *u) {
  free(u->username);
  free(u->sub);
  free(u->preferred_username);
}

/* Fills u from one element of Users. Returns -1 only on out-of-memory. */
static int ucog__parse_user(const cJSON *item, ucog_user *u) {
  memset(u, 0, sizeof *u);
  if (!cJSON_IsObject(item)) return 0;
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "Username");
  if (cJSON_IsString(name) && (u->username = ucog__dup(name)) == NULL) return -1;
  const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(item, "Attributes");
  const cJSON *list = cJSON_IsArray(attrs) ? attrs : NULL;
  const cJSON *a;
  cJSON_ArrayForEach(a, list) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(a, "Name");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "Value");
    if (!cJSON_IsString(n) || !cJSON_IsString(v)) continue;
    char **slot = NULL;
    if (strcmp(n->valuestring, "sub") == 0)
      slot = &u->sub;
    else if (strcmp(n->valuestring, "preferred_username") == 0)
      slot = &u->preferred_username;
    if (slot == NULL || *slot != NULL) continue; /* first occurrence wins */
    if ((*slot = ucog__dup(v)) == NULL) {
      ucog__user_free(u);
      return -1;
    }
  }
  return 0;
}

ucog_code ucog_parse_page(const cJSON *resp, ucog_list *list, char **next_token) {
  const cJSON *users = cJSON_GetObjectItemCaseSensitive(resp, "Users");
  if (!cJSON_IsObject(resp) || !cJSON_IsArray(users)) return UCOG_E_SHAPE;
  const cJSON *tok = cJSON_GetObjectItemCaseSensitive(resp, "PaginationToken");
  if (tok != NULL && !cJSON_IsString(tok) && !cJSON_IsNull(tok)) return UCOG_E_SHAPE;
  if (cJSON_IsString(tok) && strlen(tok->valuestring) > UCOG_MAX_TOKEN) return UCOG_E_SHAPE;
  size_t count = (size_t)cJSON_GetArraySize(users);
  if (list->n + count > UCOG_MAX_USERS) return UCOG_E_TOO_MANY;
  if (list->n + count > list->cap) {
    size_t cap = list->cap == 0 ? 64 : list->cap;
    while (cap < list->n + count)
      cap *= 2;
    ucog_user *v = realloc(list->v, cap * sizeof *v);
    if (v == NULL) return UCOG_E_NOMEM;
    list->v = v;
    list->cap = cap;
  }
  char *next = NULL;
  if (cJSON_IsString(tok) && tok->valuestring[0] != '\0' &&
      (next = strdup(tok->valuestring)) == NULL)
    return UCOG_E_NOMEM;
  size_t start = list->n;
  const cJSON *item;
  cJSON_ArrayForEach(item, users) {
    if (ucog__parse_user(item, &list->v[list->n]) != 0) {
      while (list->n > start)
        ucog__user_free(&list->v[--list->n]);
      free(next);
      return UCOG_E_NOMEM;
    }
    list->n++;
  }
  list->pages++;
  *next_token = next;
  return UCOG_OK;
}

usr_err ucog_list_all(const char *pool_id, ucog_fetch_fn fetch, void *user, int max_pages,
                      ucog_list *out) {
  char *token = NULL;
  usr_err err = USR_OK;
  for (;;) {
    if (out->pages >= max_pages) {
      err = USR_E_UPSTREAM; /* a token loop, or a pool far beyond our cap */
      break;
    }
    cJSON *req = cJSON_CreateObject();
    if (req == NULL || cJSON_AddStringToObject(req, "UserPoolId", pool_id) == NULL ||
        cJSON_AddNumberToObject(req, "Limit", UCOG_PAGE_LIMIT) == NULL ||
        (token != NULL && cJSON_AddStringToObject(req, "PaginationToken", token) == NULL)) {
      cJSON_Delete(req);
      err = USR_E_INTERNAL;
      break;
    }
    cJSON *resp = NULL;
    err = fetch(user, req, &resp);
    cJSON_Delete(req);
    if (err != USR_OK) break;
    char *next = NULL;
    ucog_code pc = ucog_parse_page(resp, out, &next);
    cJSON_Delete(resp);
    if (pc != UCOG_OK) {
      err = pc == UCOG_E_NOMEM ? USR_E_INTERNAL : USR_E_UPSTREAM;
      break;
    }
    if (next == NULL) break; /* last page */
    if (token != NULL && strcmp(next, token) == 0) {
      free(next);
      err = USR_E_UPSTREAM; /* the same token again would loop forever */
      break;
    }
    free(token);
    token = next;
  }
  free(token);
  return err;
}

usr_err ucog_aws_err(aws_code code, const char *name) {
  switch (code) {
  case AWS_OK:
    return USR_OK;
  case AWS_E_UNREACHABLE:
  case AWS_E_THROTTLED:
    return USR_E_UNAVAILABLE;
  case AWS_E_TIMEOUT:
    return USR_E_DEADLINE;
  case AWS_E_PROTOCOL:
    return USR_E_UPSTREAM;
  case AWS_E_NOMEM:
    return USR_E_INTERNAL;
  case AWS_E_CLIENT:
    break;
  }
  if (name == NULL) return USR_E_UPSTREAM;
  if (strcmp(name, "ResourceNotFoundException") == 0) return USR_E_NOT_FOUND; /* no such pool */
  if (strcmp(name, "InvalidParameterException") == 0) return USR_E_INVALID;
  if (strcmp(name, "TooManyRequestsException") == 0 || strcmp(name, "InternalErrorException") == 0)
    return USR_E_UNAVAILABLE;
  /* NotAuthorizedException, AccessDeniedException, UnrecognizedClientException,
   * expired tokens...: our credentials or IAM policy, an operator's fix. */
  return USR_E_UPSTREAM;
}

void ucog_list_free(ucog_list *list) {
  for (size_t i = 0; i < list->n; i++)
    ucog__user_free(&list->v[i]);
  free(list->v);
  list->v = NULL;
  list->n = list->cap = 0;
}
