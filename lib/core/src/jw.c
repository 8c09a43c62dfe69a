/* jw.c - compact JSON writer (see jw.h). */
#include "cruddur/jw.h"

#include <string.h>

#include "cruddur/jscan.h"

void jw_raw(jw *w, const char *s, size_t n) {
  if (!w->failed && dbuf_append(w->out, s, n) != 0) w->failed = true;
}

void jw_lit(jw *w, const char *s) {
  jw_raw(w, s, strlen(s));
}

/* The escape for byte c, or NULL when c is copied as it is. */
static const char *escape(unsigned char c, char tmp[7]) {
  static const char hex[] = "0123456789abcdef";
  switch (c) {
  case '"': return "\\\"";
  case '\\': return "\\\\";
  case '\b': return "\\b";
  case '\f': return "\\f";
  case '\n': return "\\n";
  case '\r': return "\\r";
  case '\t': return "\\t";
  default: break;
  }
  if (c >= 0x20) return NULL;
  memcpy(tmp, "\\u00", 4);
  tmp[4] = hex[c >> 4];
  tmp[5] = hex[c & 15];
  tmp[6] = '\0';
  return tmp;
}

void jw_str(jw *w, const char *s) {
  jw_raw(w, "\"", 1);
  if (s != NULL) {
    /* Copy runs of plain bytes in one append each, found a word at a time. */
    const char *run = s, *end = s + strlen(s);
    char tmp[7];
    while ((s = jscan_plain(s, (size_t)(end - s))) < end) {
      const char *e = escape((unsigned char)*s++, tmp);
      if (e == NULL) continue;
      jw_raw(w, run, (size_t)(s - 1 - run));
      jw_lit(w, e);
      run = s;
    }
    jw_raw(w, run, (size_t)(end - run));
  }
  jw_raw(w, "\"", 1);
}

size_t jw_escape(char *dst, const char *s, size_t n) {
  const char *end = s + n;
  char *d = dst, tmp[7];
  for (;;) {
    const char *p = jscan_plain(s, (size_t)(end - s));
    memcpy(d, s, (size_t)(p - s));
    d += p - s;
    if (p == end) return (size_t)(d - dst);
    /* jscan stops exactly at the bytes escape() rewrites. */
    const char *e = escape((unsigned char)*p, tmp);
    size_t el = strlen(e);
    memcpy(d, e, el);
    d += el;
    s = p + 1;
  }
}
