/* usr_valid_test.c - every field rule of users.proto, case by case. */
#include <stdio.h>
#include <string.h>

#include "usr_err.h"
#include "usr_pg.h"
#include "usr_valid.h"

typedef uv_result (*uv_fn)(const char *);

typedef struct {
  const char *name;
  uv_fn fn;
  const char *in;
  uv_result want;
} uv_case;

static char long_handle[40], max_handle[40], name100[512], name101[512], name_bytes[512],
    email254[300], email255[300], sub128[200], sub129[200], pool55[80], pool56[80];

static void fill(void) {
  memset(max_handle, 'a', 32);
  memset(long_handle, 'a', 33);
  /* 100 code points of 2 bytes each (é), and one more */
  for (int i = 0; i < 100; i++)
    memcpy(name100 + 2 * i, "\xc3\xa9", 2);
  memcpy(name101, name100, 200);
  memcpy(name101 + 200, "x", 1);
  memset(name_bytes, 'x', 401); /* over the byte bound before decoding */
  memset(email254, 'a', 254);
  email254[100] = '@';
  memset(email255, 'a', 255);
  email255[100] = '@';
  memset(sub128, 'f', 128);
  memset(sub129, 'f', 129);
  memcpy(pool55, "us-east-1_", 10);
  memset(pool55 + 10, 'A', 45);
  memcpy(pool56, "us-east-1_", 10);
  memset(pool56 + 10, 'A', 46);
}

static const uv_case cases[] = {
    /* handle: 1..32 of [A-Za-z0-9_] */
    {"handle ok", uv_handle, "andrewbrown", UV_OK},
    {"handle mixed case and digits", uv_handle, "Bayko_42", UV_OK},
    {"handle one char", uv_handle, "a", UV_OK},
    {"handle 32", uv_handle, max_handle, UV_OK},
    {"handle 33", uv_handle, long_handle, UV_TOO_LONG},
    {"handle empty", uv_handle, "", UV_EMPTY},
    {"handle NULL", uv_handle, NULL, UV_EMPTY},
    {"handle dash", uv_handle, "andrew-brown", UV_BAD_CHAR},
    {"handle space", uv_handle, "andrew brown", UV_BAD_CHAR},
    {"handle at", uv_handle, "@andrew", UV_BAD_CHAR},
    {"handle quote", uv_handle, "a\"b", UV_BAD_CHAR},
    {"handle non-ascii", uv_handle, "andr\xc3\xa9", UV_BAD_CHAR},
    /* uuid: canonical lower case */
    {"uuid ok", uv_uuid, "0f8fad5b-d9cb-469f-a165-70867728950e", UV_OK},
    {"uuid upper", uv_uuid, "0F8FAD5B-D9CB-469F-A165-70867728950E", UV_BAD_FORMAT},
    {"uuid short", uv_uuid, "0f8fad5b-d9cb-469f-a165-70867728950", UV_BAD_FORMAT},
    {"uuid no dashes", uv_uuid, "0f8fad5bd9cb469fa16570867728950e", UV_BAD_FORMAT},
    {"uuid braces", uv_uuid, "{0f8fad5b-d9cb-469f-a165-70867728950e}", UV_BAD_FORMAT},
    {"uuid not hex", uv_uuid, "0f8fad5b-d9cb-469f-a165-70867728950g", UV_BAD_FORMAT},
    {"uuid empty", uv_uuid, "", UV_EMPTY},
    /* display name: 1..100 code points, valid UTF-8, not blank */
    {"name ok", uv_display_name, "Andrew Brown", UV_OK},
    {"name unicode 100", uv_display_name, name100, UV_OK},
    {"name unicode 101", uv_display_name, name101, UV_TOO_LONG},
    {"name 401 bytes", uv_display_name, name_bytes, UV_TOO_LONG},
    {"name empty", uv_display_name, "", UV_EMPTY},
    {"name spaces", uv_display_name, "   \t ", UV_BLANK},
    {"name nbsp only", uv_display_name, "\xc2\xa0", UV_BLANK},
    {"name ideographic space", uv_display_name, "\xe3\x80\x80", UV_BLANK},
    {"name bad utf8", uv_display_name, "Andr\xe9", UV_BAD_UTF8},
    {"name overlong", uv_display_name, "\xc0\xaf", UV_BAD_UTF8},
    {"name surrogate", uv_display_name, "\xed\xa0\x80", UV_BAD_UTF8},
    {"name emoji", uv_display_name, "Londo \xf0\x9f\x9a\x80", UV_OK},
    /* email: 3..254 bytes, one @ with text both sides, no space/control */
    {"email ok", uv_email, "andrew@exampro.co", UV_OK},
    {"email minimal", uv_email, "a@b", UV_OK},
    {"email 254", uv_email, email254, UV_OK},
    {"email 255", uv_email, email255, UV_TOO_LONG},
    {"email 2 bytes", uv_email, "a@", UV_TOO_SHORT},
    {"email empty", uv_email, "", UV_EMPTY},
    {"email no at", uv_email, "andrew.exampro.co", UV_BAD_FORMAT},
    {"email two at", uv_email, "a@b@c", UV_BAD_FORMAT},
    {"email at start", uv_email, "@exampro.co", UV_BAD_FORMAT},
    {"email at end", uv_email, "andrew@", UV_BAD_FORMAT},
    {"email space", uv_email, "andrew @exampro.co", UV_BAD_CHAR},
    {"email tab", uv_email, "andrew\t@exampro.co", UV_BAD_CHAR},
    {"email DEL", uv_email, "andrew\x7f@exampro.co", UV_BAD_CHAR},
    {"email C1 control", uv_email, "andrew\xc2\x85@exampro.co", UV_BAD_CHAR},
    {"email nbsp", uv_email, "andrew\xc2\xa0@exampro.co", UV_BAD_CHAR},
    {"email unicode ok", uv_email, "j\xc3\xb6rg@example.de", UV_OK},
    {"email bad utf8", uv_email, "j\xf6rg@example.de", UV_BAD_UTF8},
    /* cognito_user_id: 1..128 of [A-Za-z0-9_-] */
    {"sub uuid", uv_cognito_user_id, "0f8fad5b-d9cb-469f-a165-70867728950e", UV_OK},
    {"sub 128", uv_cognito_user_id, sub128, UV_OK},
    {"sub 129", uv_cognito_user_id, sub129, UV_TOO_LONG},
    {"sub empty", uv_cognito_user_id, "", UV_EMPTY},
    {"sub colon", uv_cognito_user_id, "a:b", UV_BAD_CHAR},
    {"sub quote", uv_cognito_user_id, "a\"b", UV_BAD_CHAR},
    {"sub space", uv_cognito_user_id, "a b", UV_BAD_CHAR},
    /* user pool id: REGION_ID, at most 55 */
    {"pool ok", uv_pool_id, "us-east-1_AbC123xyz", UV_OK},
    {"pool local", uv_pool_id, "local_2ZqH0Xq1", UV_OK},
    {"pool 55", uv_pool_id, pool55, UV_OK},
    {"pool 56", uv_pool_id, pool56, UV_TOO_LONG},
    {"pool no underscore", uv_pool_id, "useast1", UV_BAD_FORMAT},
    {"pool trailing underscore", uv_pool_id, "us-east-1_", UV_BAD_FORMAT},
    {"pool leading underscore", uv_pool_id, "_abc", UV_BAD_FORMAT},
    {"pool slash", uv_pool_id, "us/east_1", UV_BAD_CHAR},
    {"pool empty", uv_pool_id, "", UV_EMPTY},
};

typedef struct {
  const char *state;
  usr_err want;
  grpc_status_code status;
} sqlstate_case;

/* SQLSTATE -> domain error -> gRPC status: the client's mistakes never INTERNAL. */
static const sqlstate_case states[] = {
    {"", USR_E_UNAVAILABLE, GRPC_STATUS_UNAVAILABLE},
    {"08006", USR_E_UNAVAILABLE, GRPC_STATUS_UNAVAILABLE},
    {"57P01", USR_E_UNAVAILABLE, GRPC_STATUS_UNAVAILABLE},
    {"57P03", USR_E_UNAVAILABLE, GRPC_STATUS_UNAVAILABLE},
    {"57014", USR_E_UNAVAILABLE, GRPC_STATUS_UNAVAILABLE},
    {"53300", USR_E_UNAVAILABLE, GRPC_STATUS_UNAVAILABLE},
    {"40001", USR_E_ABORTED, GRPC_STATUS_ABORTED},
    {"23505", USR_E_EXISTS, GRPC_STATUS_ALREADY_EXISTS},
    {"23514", USR_E_INVALID, GRPC_STATUS_INVALID_ARGUMENT},
    {"22P02", USR_E_INVALID, GRPC_STATUS_INVALID_ARGUMENT},
    {"42P01", USR_E_SCHEMA, GRPC_STATUS_FAILED_PRECONDITION},
    {"42601", USR_E_INTERNAL, GRPC_STATUS_INTERNAL},
};

int main(void) {
  fill();
  int failed = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uv_result got = cases[i].fn(cases[i].in);
    if (got != cases[i].want) {
      printf("FAIL %s: got %s, want %s\n", cases[i].name, uv_strerror(got),
             uv_strerror(cases[i].want));
      failed++;
    }
  }
  for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
    usr_err e = upg_sqlstate_err(states[i].state);
    if (e != states[i].want || usr_err_status(e) != states[i].status) {
      printf("FAIL sqlstate %s: got %s\n", states[i].state, usr_strerror(e));
      failed++;
    }
  }
  /* Every domain error maps somewhere sensible; only the two server-side
   * ones may be INTERNAL. */
  for (int e = USR_OK; e <= USR_E_INTERNAL; e++) {
    grpc_status_code st = usr_err_status((usr_err)e);
    if (st == GRPC_STATUS_INTERNAL && e != USR_E_INTERNAL) {
      printf("FAIL %s maps to INTERNAL\n", usr_strerror((usr_err)e));
      failed++;
    }
  }
  if (usr_err_status(USR_E_INVALID) != GRPC_STATUS_INVALID_ARGUMENT ||
      usr_err_status(USR_E_NOT_FOUND) != GRPC_STATUS_NOT_FOUND ||
      usr_err_status(USR_E_EXISTS) != GRPC_STATUS_ALREADY_EXISTS ||
      usr_err_status(USR_E_NO_POOL) != GRPC_STATUS_FAILED_PRECONDITION) {
    printf("FAIL usr_err_status table\n");
    failed++;
  }
  printf("%zu validation cases, %zu sqlstate cases, %d failed\n", sizeof cases / sizeof cases[0],
         sizeof states / sizeof states[0], failed);
  return failed != 0;
}
