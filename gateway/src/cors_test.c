/* cors_test.c - origin allow-list decisions. */
#include <stdio.h>
#include <string.h>

#include "cors.h"

#include "cruddur/check.h"

typedef struct ccase {
  const char *frontend, *backend, *origin;
  int allowed;
} ccase;

static const ccase cases[] = {
    {"http://localhost:3000", "", "http://localhost:3000", 1},
    {"http://localhost:3000", "", "http://localhost:3000/", 1},
    {"http://localhost:3000/", "", "http://localhost:3000", 1},
    {"http://localhost:3000", "", "HTTP://LOCALHOST:3000", 1},
    {"http://localhost:3000", "", "http://localhost:3001", 0},
    {"http://localhost:3000", "", "https://localhost:3000", 0},
    {"http://localhost:3000", "", "http://localhost:3000.evil.test", 0},
    {"http://localhost:3000", "", "http://evil.test", 0},
    {"http://localhost:3000", "", "null", 0},
    {"http://localhost:3000", "", "", 0},
    {"http://localhost:3000", "", NULL, 0},
    {"http://a.test, https://b.test", "http://c.test:4567", "https://b.test", 1},
    {"http://a.test, https://b.test", "http://c.test:4567", "http://c.test:4567", 1},
    {"http://a.test,,", NULL, "http://a.test", 1},
    {"", "", "http://localhost:3000", 0},
};

int main(void) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    gw_cors c;
    CHECK(gw_cors_init(&c, cases[i].frontend, cases[i].backend) == 0, "init case %zu", i);
    CHECK(gw_cors_allowed(&c, cases[i].origin) == cases[i].allowed, "case %zu origin %s", i,
          cases[i].origin ? cases[i].origin : "(null)");
  }
  gw_cors c;
  CHECK(gw_cors_init(&c, "localhost:3000", "") == -1, "no scheme");
  CHECK(gw_cors_init(&c, "http://a.test/path", "") == -1, "path");
  CHECK(gw_cors_init(&c, "*", "") == -1, "wildcard is not an origin");
  char many[1024] = "";
  for (int i = 0; i < 17; i++)
    snprintf(many + strlen(many), sizeof many - strlen(many), "http://h%d.test,", i);
  CHECK(gw_cors_init(&c, many, "") == -1, "more than 16");
  if (failures)
    fprintf(stderr, "%d failure(s)\n", failures);
  else
    printf("cors_test: all passed\n");
  return failures ? 1 : 0;
}
