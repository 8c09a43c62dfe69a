/* tools_test.c - the tools' pure helpers: transcript preview, local endpoint. */
#include <stdio.h>
#include <string.h>

#include "tools.h"

int main(void) {
  int failures = 0;
  struct {
    const char *in;
    int max;
    const char *want;
  } pv[] = {
      {"short", 40, "short"},
      {"exactly ten", 11, "exactly ten"},
      {"exactly ten!", 11, "exactly ten..."},
      {"line\nbreak\ttab", 40, "line break tab"},
      {"\xC3\xA9\xC3\xA9\xC3\xA9", 2, "\xC3\xA9\xC3\xA9..."}, /* code points, not bytes */
      {"\xF0\x9F\x98\x80x", 1, "\xF0\x9F\x98\x80..."},
      {"", 40, ""},
  };
  for (size_t i = 0; i < sizeof pv / sizeof pv[0]; i++) {
    char out[200];
    tools_preview(pv[i].in, pv[i].max, out, sizeof out);
    if (strcmp(out, pv[i].want) != 0) {
      fprintf(stderr, "preview %zu: got '%s' want '%s'\n", i, out, pv[i].want);
      failures++;
    }
  }
  /* A small buffer never overflows and stays on a character boundary. */
  char small[8];
  tools_preview("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 40, small, sizeof small);
  if (strlen(small) >= sizeof small || strcmp(small, "\xC3\xA9\xC3\xA9...") != 0) failures++;

  struct {
    const char *url;
    int want;
  } ep[] = {
      {"http://127.0.0.1:8000", 1},
      {"http://localhost:8000/", 1},
      {"http://[::1]:8000", 1},
      {"http://localhost", 1},
      {"https://dynamodb.us-east-1.amazonaws.com", 0},
      {"http://127.0.0.1.evil.example:8000", 0},
      {"http://localhost.example.com", 0},
      {NULL, 0},
  };
  for (size_t i = 0; i < sizeof ep / sizeof ep[0]; i++) {
    if (tools_endpoint_is_local(ep[i].url) != ep[i].want) {
      fprintf(stderr, "endpoint %s: want %d\n", ep[i].url ? ep[i].url : "(null)", ep[i].want);
      failures++;
    }
  }
  if (failures) return 1;
  printf("tools_test: ok\n");
  return 0;
}
