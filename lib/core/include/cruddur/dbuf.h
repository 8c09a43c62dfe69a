/* dbuf.h - a growable byte buffer with a hard cap, always NUL-terminated,
 * for bodies read off the network (curl answers, JWKS documents).
 *
 * The buffer owns `buf`; free it with dbuf_free (NULL-safe on an empty
 * buffer). Fields are read-only to callers except through these functions.
 */
#ifndef CRUDDUR_DBUF_H
#define CRUDDUR_DBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct dbuf {
  char *buf;   /* NULL until the first append; then NUL-terminated */
  size_t len;  /* bytes held, without the NUL */
  size_t cap;  /* bytes allocated */
  size_t max;  /* most bytes it may hold */
  bool toobig; /* an append was refused for going past max */
} dbuf;

/* An empty buffer that holds at most `max` bytes. */
#define DBUF_INIT(max) {NULL, 0, 0, (max), false}

/* Appends n bytes. Returns 0, or -1 when the result would pass max (toobig
 * is then set) or memory runs out; on -1 the content is unchanged. */
int dbuf_append(dbuf *b, const void *data, size_t n);

/* Makes room for up to n more bytes and returns where they go (buf + len),
 * or NULL when len + n would pass max (toobig is then set) or memory runs
 * out. For writers that know a bound but not the exact size: write at most
 * n bytes there, then dbuf_commit what was written. The bound counts
 * against max, so max must allow for the bound, not only the result. */
char *dbuf_reserve(dbuf *b, size_t n);

/* Adds n bytes written after dbuf_reserve (at most what it reserved) and
 * keeps the NUL after them. */
void dbuf_commit(dbuf *b, size_t n);

/* Empties the buffer (len 0, toobig cleared) and keeps its memory. */
void dbuf_reset(dbuf *b);

/* Frees the memory; the buffer is empty again, with the same max. */
void dbuf_free(dbuf *b);

/* A CURLOPT_WRITEFUNCTION whose CURLOPT_WRITEDATA is a dbuf: a refused
 * append returns 0, which makes curl stop with CURLE_WRITE_ERROR. */
size_t dbuf_curl_write(char *data, size_t size, size_t nmemb, void *ud);

#endif
