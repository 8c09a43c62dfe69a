/* keys_test.c - key encoding: exact strings and round trips. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"

#include "cruddur/check.h"

static const char *A = "11111111-1111-4111-8111-111111111111";
static const char *B = "22222222-2222-4222-8222-222222222222";

static void test_pk(void) {
  char k[KEYS_PK_MAX + 1];
  keys_pk("MSG#", A, k);
  CHECK(strcmp(k, "MSG#11111111-1111-4111-8111-111111111111") == 0);
  keys_pk("GRP#", B, k);
  CHECK(strcmp(k, "GRP#22222222-2222-4222-8222-222222222222") == 0);
  char p1[KEYS_PK_MAX + 1], p2[KEYS_PK_MAX + 1];
  keys_pair_pk(A, B, p1);
  keys_pair_pk(B, A, p2);
  CHECK(strcmp(p1, p2) == 0);
  CHECK(strcmp(p1, "PAIR#11111111-1111-4111-8111-111111111111#"
                   "22222222-2222-4222-8222-222222222222") == 0);
  CHECK(strlen(p1) == 78);
}

static void test_msg_sk(void) {
  char sk[KEYS_MSG_SK_LEN + 1];
  /* 2023-03-20T22:52:11.000000Z: zero microseconds keep their digits. */
  CHECK(keys_msg_sk(1679352731000000LL, A, sk) == 0);
  CHECK(strcmp(sk, "2023-03-20T22:52:11.000000Z#11111111-1111-4111-8111-111111111111") == 0);
  CHECK(strlen(sk) == KEYS_MSG_SK_LEN);
  int64_t us = 0;
  char u[37];
  CHECK(keys_msg_sk_parse(sk, &us, u) == 0);
  CHECK(us == 1679352731000000LL);
  CHECK(strcmp(u, A) == 0);
  /* Same microsecond, different uuids: distinct keys. */
  char sk2[KEYS_MSG_SK_LEN + 1];
  CHECK(keys_msg_sk(1679352731000000LL, B, sk2) == 0);
  CHECK(strcmp(sk, sk2) < 0);
  /* Later time sorts later regardless of uuid. */
  CHECK(keys_msg_sk(1679352731000001LL, A, sk2) == 0);
  CHECK(strcmp(sk, sk2) < 0);

  CHECK(keys_msg_sk(1, "not-a-uuid", sk) == -1);
  static const char *bad[] = {
      "",
      "2023-03-20T22:52:11.000000Z",
      "2023-03-20T22:52:11.000000Z-11111111-1111-4111-8111-111111111111",
      "2023-03-20T22:52:11.000000Z#11111111-1111-4111-8111-11111111111X",
      "2023-13-20T22:52:11.000000Z#11111111-1111-4111-8111-111111111111",
      "2023-03-20T22:52:11.000000+#11111111-1111-4111-8111-111111111111",
      "2023-03-20T22:52:11.000000Z#11111111-1111-4111-8111-1111111111111",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    us = 42;
    CHECK(keys_msg_sk_parse(bad[i], &us, NULL) == -1);
    CHECK(us == 42);
  }
}

static void test_stable_uuid(void) {
  char a[37], b[37], c[37];
  keys_stable_uuid("ns", 1, a);
  keys_stable_uuid("ns", 1, b);
  keys_stable_uuid("ns", 2, c);
  CHECK(strcmp(a, b) == 0);
  CHECK(strcmp(a, c) != 0);
  CHECK(strlen(a) == 36 && a[8] == '-' && a[14] == '8');
}

int main(void) {
  test_pk();
  test_msg_sk();
  test_stable_uuid();
  if (failures) return 1;
  printf("keys_test: ok\n");
  return 0;
}
