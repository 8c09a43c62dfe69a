/* ddbpage.c - one-pass reader of a DynamoDB answer's items (ddbpage.h). */
#include "ddbpage.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "cruddur/jscan.h"

/* Chunk of the page arena: the items and attributes of a 20-message page. */
#define DDBP_CHUNK ((size_t)8 << 10)

typedef struct rd {
  const char *p, *end;
  arena *mem;
  /* Decoded strings, back to back: a string decodes to fewer bytes than
   * its quoted spelling, so len + 1 bytes hold every string of the text. */
  char *pool;
  size_t used;
  ddbp_attr *spare; /* attributes allocated ahead, nspare of them */
  size_t nspare;
  int depth;
} rd;

/* Attributes come from the arena a block at a time. */
#define DDBP_ATTR_BLOCK 32

static void ws_skip(rd *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
    r->p++;
}

/* Whitespace; the test for none (DynamoDB sends none) stays inline. */
static inline void ws(rd *r) {
  if (r->p < r->end && (unsigned char)*r->p > ' ') return;
  ws_skip(r);
}

static inline bool eat(rd *r, char c) {
  ws(r);
  if (r->p < r->end && *r->p == c) {
    r->p++;
    return true;
  }
  return false;
}

static int hex4(const char *s, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

/* Decodes the escape at s (after the backslash) into d (NULL: check only);
 * returns the bytes read from s or -1. \uXXXX as cJSON does: a surrogate
 * pair makes one code point, a lone surrogate is an error. */
static int unescape(const char *s, const char *e, char *d, size_t *dn) {
  static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
  const char *hit = s < e && *s != 'u' && *s ? strchr(from, *s) : NULL;
  if (hit) {
    if (d) d[(*dn)++] = to[hit - from];
    return 1;
  }
  uint32_t cp, lo;
  if (s >= e || *s != 'u' || e - s < 5 || hex4(s + 1, &cp) != 0) return -1;
  int used = 5;
  if (cp >= 0xDC00 && cp <= 0xDFFF) return -1;
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    if (e - s < 11 || s[5] != '\\' || s[6] != 'u' || hex4(s + 7, &lo) != 0 || lo < 0xDC00 ||
        lo > 0xDFFF)
      return -1;
    cp = 0x10000 + (((cp & 0x3FF) << 10) | (lo & 0x3FF));
    used = 11;
  }
  if (d == NULL) return used;
  unsigned char *o = (unsigned char *)d + *dn;
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    *dn += 1;
  } else if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    *dn += 2;
  } else if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    *dn += 3;
  } else {
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    *dn += 4;
  }
  return used;
}

/* A string at r->p; with out, decoded into the pool (*out points at it,
 * *outlen is its strlen). Returns 0 or -1. */
static int str_n(rd *r, const char **out, size_t *outlen) {
  ws(r);
  if (r->p >= r->end || *r->p != '"') return -1;
  const char *s = r->p + 1, *q = s, *end = r->end;
  bool esc = false;
  for (;;) {
    /* Strings are most of a page: skip plain runs a word at a time. */
    q = jscan_plain(q, (size_t)(end - q));
    if (q >= end || *q != '\\') break;
    if (end - q < 2) return -1;
    esc = true;
    q += 2;
  }
  if (q >= end || *q != '"') return -1; /* unterminated, or a raw control byte */
  r->p = q + 1;
  char *d = out ? r->pool + r->used : NULL;
  size_t dn = 0;
  if (!esc) {
    if (d) memcpy(d, s, (size_t)(q - s));
    dn = (size_t)(q - s);
  } else {
    for (const char *c = s; c < q;) {
      if (*c != '\\') {
        if (d) d[dn] = *c;
        dn++, c++;
        continue;
      }
      int k = unescape(c + 1, q, d, &dn);
      if (k < 0) return -1;
      c += 1 + k;
    }
  }
  if (d) {
    d[dn] = '\0';
    r->used += dn + 1;
    *out = d;
    if (outlen) *outlen = esc ? strlen(d) : dn; /* a decoded \u0000 ends it, as in cJSON */
  }
  return 0;
}

static int str(rd *r, const char **out) { return str_n(r, out, NULL); }

/* A key and its colon; the key is decoded into the pool. */
static int key(rd *r, const char **k) {
  return str(r, k) == 0 && eat(r, ':') ? 0 : -1;
}

/* Gives a decoded string's pool bytes back (it was the last one). */
static void unkeep(rd *r, const char *s) { r->used = (size_t)(s - r->pool); }

static bool digits(rd *r) {
  const char *b = r->p;
  while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
  return r->p > b;
}

/* A JSON number, strictly; at most 63 bytes, as cJSON 1.7.15 reads them. */
static int number(rd *r) {
  const char *b = r->p;
  if (r->p < r->end && *r->p == '-') r->p++;
  if (r->p < r->end && *r->p == '0') r->p++;
  else if (!digits(r)) return -1;
  if (r->p < r->end && *r->p == '.' && (r->p++, !digits(r))) return -1;
  if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
    r->p++;
    if (r->p < r->end && (*r->p == '+' || *r->p == '-')) r->p++;
    if (!digits(r)) return -1;
  }
  return r->p - b <= 63 ? 0 : -1;
}

static int literal(rd *r, const char *w, size_t n) {
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0) return -1;
  r->p += n;
  return 0;
}

static int value(rd *r);

/* The members of an object or the elements of an array, after the opening
 * bracket, skipped. */
static int container(rd *r, char close, bool obj) {
  if (++r->depth > DDBP_DEPTH_MAX) return -1;
  if (eat(r, close)) {
    r->depth--;
    return 0;
  }
  do {
    if ((obj && (str(r, NULL) != 0 || !eat(r, ':'))) || value(r) != 0) return -1;
  } while (eat(r, ','));
  r->depth--;
  return eat(r, close) ? 0 : -1;
}

/* Any JSON value, skipped. */
static int value(rd *r) {
  ws(r);
  if (r->p >= r->end) return -1;
  switch (*r->p) {
  case '"': return str(r, NULL);
  case '{': r->p++; return container(r, '}', true);
  case '[': r->p++; return container(r, ']', false);
  case 't': return literal(r, "true", 4);
  case 'f': return literal(r, "false", 5);
  case 'n': return literal(r, "null", 4);
  default: return number(r);
  }
}

static inline bool peek(rd *r, char c) {
  ws(r);
  return r->p < r->end && *r->p == c;
}

/* An attribute's value {"S":"..",..}: *s is its first "S" member when that
 * is a string. Anything else is skipped and leaves *s NULL. */
static int attr_value(rd *r, const char **s) {
  *s = NULL;
  if (!peek(r, '{')) return value(r);
  r->p++;
  if (++r->depth > DDBP_DEPTH_MAX) return -1;
  if (eat(r, '}')) return r->depth--, 0;
  bool seen = false;
  do {
    bool first_s;
    ws(r);
    if (r->end - r->p >= 4 && memcmp(r->p, "\"S\":", 4) == 0) {
      r->p += 4; /* the usual spelling, read without decoding */
      first_s = !seen;
    } else {
      const char *k;
      if (key(r, &k) != 0) return -1;
      first_s = !seen && strcmp(k, "S") == 0;
      unkeep(r, k);
    }
    if (first_s) {
      seen = true;
      if (peek(r, '"')) {
        if (str(r, s) != 0) return -1;
        continue;
      }
    }
    if (value(r) != 0) return -1;
  } while (eat(r, ','));
  r->depth--;
  return eat(r, '}') ? 0 : -1;
}

/* One element of "Items": an object's attributes as a list. */
static int item(rd *r, ddbp_item *it) {
  it->attrs = NULL;
  it->next = NULL;
  if (!peek(r, '{')) return value(r);
  r->p++;
  if (++r->depth > DDBP_DEPTH_MAX) return -1;
  if (eat(r, '}')) return r->depth--, 0;
  const ddbp_attr **tail = &it->attrs;
  do {
    if (r->nspare == 0) {
      r->spare = arena_alloc(r->mem, DDBP_ATTR_BLOCK * sizeof *r->spare);
      if (r->spare == NULL) return DDBP_ENOMEM;
      r->nspare = DDBP_ATTR_BLOCK;
    }
    ddbp_attr *a = r->spare++;
    r->nspare--;
    a->next = NULL;
    if (str_n(r, &a->name, &a->name_len) != 0 || !eat(r, ':') || attr_value(r, &a->s) != 0)
      return -1;
    *tail = a;
    tail = &a->next;
  } while (eat(r, ','));
  r->depth--;
  return eat(r, '}') ? 0 : -1;
}

static int items(rd *r, ddbp_page *pg) {
  if (!peek(r, '[')) return -1;
  r->p++;
  if (++r->depth > DDBP_DEPTH_MAX) return -1;
  if (eat(r, ']')) return r->depth--, 0;
  const ddbp_item **tail = &pg->items;
  do {
    ddbp_item *it = arena_alloc(r->mem, sizeof *it);
    if (it == NULL) return DDBP_ENOMEM;
    int rc = item(r, it);
    if (rc != 0) return rc;
    *tail = it;
    tail = &it->next;
    pg->n++;
  } while (eat(r, ','));
  r->depth--;
  return eat(r, ']') ? 0 : -1;
}

static int page(rd *r, ddbp_page *pg) {
  if (!eat(r, '{')) return -1;
  r->depth = 1;
  if (eat(r, '}')) return 0;
  bool seen = false;
  do {
    const char *k;
    if (key(r, &k) != 0) return -1;
    bool first = !seen && strcmp(k, "Items") == 0;
    unkeep(r, k);
    int rc = first ? items(r, pg) : value(r);
    if (rc != 0) return rc;
    seen |= first;
  } while (eat(r, ','));
  return eat(r, '}') ? 0 : -1;
}

int ddbp_parse(const char *text, size_t len, ddbp_page *out) {
  ddbp_page pg = {NULL, 0, ARENA_INIT(DDBP_CHUNK, ((size_t)64 << 20))};
  rd r = {text, text + len, &pg.mem, NULL, 0, NULL, 0, 0};
  r.pool = arena_alloc(&pg.mem, len + 1);
  if (r.pool == NULL) return DDBP_ENOMEM;
  int rc = page(&r, &pg);
  ws(&r);
  if (rc == 0 && r.p != r.end) rc = DDBP_ESYNTAX;
  if (rc != 0) {
    arena_free(&pg.mem);
    return rc == DDBP_ENOMEM ? DDBP_ENOMEM : DDBP_ESYNTAX;
  }
  *out = pg;
  return DDBP_OK;
}

const char *ddbp_attr_sn(const ddbp_item *it, const char *name, size_t n) {
  for (const ddbp_attr *a = it->attrs; a; a = a->next)
    if (a->name_len == n && memcmp(a->name, name, n) == 0) return a->s;
  return NULL;
}

void ddbp_page_free(ddbp_page *p) {
  if (p == NULL) return;
  arena_free(&p->mem);
  p->items = NULL;
  p->n = 0;
}
