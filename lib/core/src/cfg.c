/* cfg.c - environment configuration; fatal errors are one line and exit 2. */
#include "cruddur/cfg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

const char *cfg_str(const char *name, const char *def) {
  const char *v = getenv(name);
  return (v != NULL && v[0] != '\0') ? v : def;
}

const char *cfg_require(const char *name, const char *why) {
  const char *v = cfg_str(name, NULL);
  if (v == NULL) {
    fprintf(stderr, "%s is required: %s\n", name, why);
    exit(2);
  }
  return v;
}

long cfg_int(const char *name, long def, long min, long max) {
  const char *v = cfg_str(name, NULL);
  char *end = NULL;
  long n;
  if (v == NULL) return def;
  errno = 0;
  n = strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || n < min || n > max) {
    fprintf(stderr, "%s must be a whole number from %ld to %ld (got \"%s\")\n",
            name, min, max, v);
    exit(2);
  }
  return n;
}

const char *cfg_first(const char *const *names, const char *def) {
  for (; *names != NULL; names++) {
    const char *v = cfg_str(*names, NULL);
    if (v != NULL) return v;
  }
  return def;
}
