/* check.h - the assertion of our C unit tests (include it in tests only).
 *
 * CHECK(cond) or CHECK(cond, "format", args...) counts a failure and prints
 * where and what, then the test goes on, so one run reports every failing
 * case of a table. A test's main returns failures ? 1 : 0. The optional
 * message must start with a string literal. */
#ifndef CRUDDUR_CHECK_H
#define CRUDDUR_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      failures++;                                                          \
      fprintf(stderr, "FAIL %s:%d: CHECK(%s)", __FILE__, __LINE__, #cond); \
      fprintf(stderr, " " __VA_ARGS__);                                    \
      fputc('\n', stderr);                                                 \
    }                                                                      \
  } while (0)

#endif
