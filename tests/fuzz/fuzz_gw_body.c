/* fuzz_gw_body.c - POST /api/messages bodies (wire.c gw_body_parse).
 *
 * Checks the classification against what the result claims: an accepted
 * body carries a valid message and a valid target, a 422 lists only known
 * codes (at most GW_BODY_CODES_MAX, no duplicates), and NUL bytes never get
 * past the parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cruddur/utf8.h"
#include "cruddur/uuid.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const known[] = {GW_E_MESSAGE_BLANK, GW_E_MESSAGE_TOO_LONG, GW_E_MESSAGE_UTF8,
                                    GW_E_GROUP_BLANK,   GW_E_GROUP_INVALID,    GW_E_HANDLE_BLANK,
                                    GW_E_HANDLE_INVALID};

static int is_known(const char *code) {
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcmp(code, known[i]) == 0) return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > GW_BODY_MAX) return 0; /* the gateway answers 413 before parsing */
  /* An exact-size heap copy, so ASan sees any read past the body's end. */
  char *body = malloc(size ? size : 1);
  if (body == NULL) return 0;
  if (size) memcpy(body, data, size);

  gw_create c;
  memset(&c, 0x5A, sizeof c);
  const char *codes[GW_BODY_CODES_MAX];
  size_t nc = 999;
  gw_body_code rc = gw_body_parse(body, size, &c, codes, &nc);
  switch (rc) {
  case GW_BODY_OK: {
    if (memchr(data, 0, size) != NULL) abort();
    size_t n = strlen(c.message);
    long cp = utf8_count(c.message, n);
    if (n == 0 || cp < 1 || cp > GW_MESSAGE_MAX_CP || utf8_is_blank(c.message, n)) abort();
    if (c.mode == GW_CREATE_IN_GROUP) {
      if (!uuid_valid(c.group_uuid)) abort(); /* lower-cased, canonical */
    } else if (c.mode == GW_CREATE_BY_HANDLE) {
      if (!gw_handle_valid(c.handle)) abort();
    } else {
      abort();
    }
    gw_create_clear(&c);
    break;
  }
  case GW_BODY_UNPROCESSABLE:
    if (nc < 1 || nc > GW_BODY_CODES_MAX) abort();
    for (size_t i = 0; i < nc; i++) {
      if (!is_known(codes[i])) abort();
      for (size_t j = 0; j < i; j++)
        if (codes[i] == codes[j]) abort();
    }
    break;
  case GW_BODY_INVALID_JSON:
  case GW_BODY_NOT_OBJECT:
  case GW_BODY_FIELD_TYPE:
  case GW_BODY_NOMEM:
    if (nc != 999) abort(); /* codes are only written for a 422 */
    break;
  default:
    abort();
  }
  free(body);
  return 0;
}
