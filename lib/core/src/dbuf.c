/* dbuf.c - capped growable buffer. */
#include "cruddur/dbuf.h"

#include <stdlib.h>
#include <string.h>

#define DBUF_FIRST 4096

char *dbuf_reserve(dbuf *b, size_t n) {
  if (n > b->max - b->len) {
    b->toobig = true;
    return NULL;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : DBUF_FIRST;
    while (cap < b->len + n + 1) cap *= 2;
    if (cap > b->max + 1) cap = b->max + 1; /* never more than can be used */
    char *nb = realloc(b->buf, cap);
    if (nb == NULL) return NULL;
    b->buf = nb;
    b->cap = cap;
  }
  return b->buf + b->len;
}

void dbuf_commit(dbuf *b, size_t n) {
  b->len += n;
  b->buf[b->len] = '\0';
}

int dbuf_append(dbuf *b, const void *data, size_t n) {
  char *at = dbuf_reserve(b, n);
  if (at == NULL) return -1;
  memcpy(at, data, n);
  dbuf_commit(b, n);
  return 0;
}

void dbuf_reset(dbuf *b) {
  b->len = 0;
  b->toobig = false;
  if (b->buf) b->buf[0] = '\0';
}

void dbuf_free(dbuf *b) {
  free(b->buf);
  b->buf = NULL;
  b->len = b->cap = 0;
  b->toobig = false;
}

size_t dbuf_curl_write(char *data, size_t size, size_t nmemb, void *ud) {
  size_t n = size * nmemb;
  return dbuf_append(ud, data, n) == 0 ? n : 0;
}
