/* core_fuzz.c - libFuzzer harness for the text checks every request meets:
 * UTF-8 validation and the stored time format. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cruddur/ts.h"
#include "cruddur/utf8.h"
#include "cruddur/uuid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  long n = utf8_count(s, size);
  if (n >= 0) {
    if ((size_t)n > size) abort(); /* a code point is at least one byte */
    (void)utf8_is_blank(s, size);
  }
  char *z = malloc(size + 1);
  if (z == NULL) return 0;
  memcpy(z, data, size);
  z[size] = '\0';
  int64_t us;
  if (ts_parse_stored(z, &us) == 0) {
    /* What parses must format back to the same text: one form per instant. */
    char back[TS_STORED_LEN + 1];
    if (ts_format_stored(us, back) != 0 || strcmp(back, z) != 0) abort();
  }
  if (uuid_valid(z) && strlen(z) != UUID_STR_LEN) abort();
  free(z);
  return 0;
}
