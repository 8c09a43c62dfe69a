/* fuzz_aws_parsers.c - the small parsers of lib/aws that read what AWS (or a
 * stand-in, or anything on the path to it) answers: values in STS /
 * credentials XML (awsi_xml_value), ISO 8601 expiry times
 * (awsi_parse_iso8601), and error names from "__type" / x-amzn-ErrorType
 * (awsi_error_name, awsi_is_throttle_name). They are internal to lib/aws
 * (aws_internal.h, exposed for its unit tests).
 *
 * Input: byte 0 picks the XML tag and the output size; the rest is the text. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const tags[] = {"AccessKeyId", "SecretAccessKey", "SessionToken",
                                   "Expiration",  "Code",            "Message",
                                   "a",           "Credentials"};

/* "YYYY-MM-DDTHH:MM:SS" with digits where digits belong. */
static int strict_prefix(const char *s) {
  static const char shape[] = "dddd-dd-ddTdd:dd:dd";
  for (size_t i = 0; i < 19; i++) {
    if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i]) return 0;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 65536) return 0;
  const char *tag = tags[data[0] & 7];
  size_t cap = (data[0] & 0x80) ? 8 : 2048;
  size_t n = size - 1;
  char *xml = malloc(n ? n : 1); /* not NUL-terminated: the parser gets a length */
  if (xml == NULL) return 0;
  memcpy(xml, data + 1, n);
  char *out = malloc(cap);
  if (out == NULL) {
    free(xml);
    return 0;
  }
  if (awsi_xml_value(xml, n, tag, out, cap) == 0) {
    size_t l = strnlen(out, cap);
    if (l >= cap) abort(); /* ("&lt;" legitimately decodes to "<") */
    /* trimmed (a NUL byte inside the value cuts the C string early, so the
     * end is only checked without one) */
    if (l > 0 && isspace((unsigned char)out[0])) abort();
    if (l > 0 && memchr(xml, 0, n) == NULL && isspace((unsigned char)out[l - 1])) abort();
  }

  char *s = malloc(n + 1);
  if (s == NULL) {
    free(xml);
    free(out);
    return 0;
  }
  memcpy(s, data + 1, n);
  s[n] = '\0';
  int64_t t = -12345;
  if (awsi_parse_iso8601(s, &t) == 0) {
    if (strlen(s) < 20 || t < 0) abort();
    /* Every accepted time must read back as written (finding F3, fixed:
     * the parser once let timegm() move malformed fields to other instants). */
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL) abort();
    char back[32];
    strftime(back, sizeof back, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!strict_prefix(s) || (memcmp(back, s, 10) != 0 || memcmp(back + 11, s + 11, 8) != 0))
      abort();
  } else if (t != -12345) {
    abort();
  }

  char name[64];
  awsi_error_name(s, name, (data[0] & 0x40) ? 4 : sizeof name);
  if (strchr(name, '#') || strchr(name, ':') || strlen(name) >= sizeof name) abort();
  if (awsi_is_throttle_name(s) && strlen(s) > 64) abort();
  free(xml);
  free(out);
  free(s);
  return 0;
}
