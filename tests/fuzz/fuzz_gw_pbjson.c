/* fuzz_gw_pbjson.c - list pages read straight from protobuf bytes
 * (gateway pbjson.c), differential against protobuf-c.
 *
 * Byte 0 picks the list (even: ListMessagesResponse, odd:
 * ListMessageGroupsResponse); the rest is the serialized response.
 * Invariant: the reader accepts exactly what protobuf-c 1.4.1 unpacks, and
 * then writes the same JSON as gw_json_messages / gw_json_groups for the
 * unpacked message and the same next-page token (up to its first NUL, as
 * the C string). Never a crash, a read past the bytes or a leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pbjson.h"
#include "pbjson_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  gw_pbj_list list = data[0] & 1 ? GW_PBJ_GROUPS : GW_PBJ_MESSAGES;
  size_t n = size - 1;
  /* An exact-size heap copy, so ASan sees any read past the end. */
  uint8_t *d = malloc(n ? n : 1);
  if (d == NULL) return 0;
  if (n) memcpy(d, data + 1, n);

  char *want = NULL, *want_next = NULL;
  int ref_ok = gw_pbj_reference(list, d, n, &want, &want_next) == 0;

  char *json = (char *)"untouched";
  const char *next = "untouched";
  size_t next_len = 12345;
  gw_pbj_code rc = gw_pbj_page(list, d, n, &json, &next, &next_len);
  if (rc == GW_PBJ_MALFORMED) {
    if (ref_ok) abort(); /* refused what protobuf-c reads */
    if (strcmp(json, "untouched") != 0 || strcmp(next, "untouched") != 0 || next_len != 12345)
      abort(); /* outputs set on failure */
  } else if (rc == GW_PBJ_OK) {
    if (!ref_ok) abort(); /* accepted what protobuf-c refuses */
    if (want == NULL || want_next == NULL || strcmp(json, want) != 0) abort();
    if (strlen(want_next) != next_len || memcmp(next, want_next, next_len) != 0) abort();
    free(json);
  } else if (rc != GW_PBJ_NOMEM) {
    abort();
  }
  free(want);
  free(want_next);
  free(d);
  return 0;
}
