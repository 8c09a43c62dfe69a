/* jw.h - compact JSON text written straight into a dbuf.
 *
 * For answers built from known fields (message lists, user cards), where a
 * cJSON tree would cost an allocation per node and per string only to be
 * printed and freed at once. The text is byte for byte what
 * cJSON_PrintUnformatted gives for the same values: '"' '\\' and the control
 * characters below 0x20 are escaped (\b \f \n \r \t, else \u00xx), other
 * bytes, UTF-8 included, are copied.
 *
 * Errors are sticky: a failed append (the dbuf's cap, or no memory) sets
 * `failed` and every later call does nothing, so a writer checks once at
 * the end. The dbuf stays owned by the caller.
 */
#ifndef CRUDDUR_JW_H
#define CRUDDUR_JW_H

#include <stdbool.h>
#include <stddef.h>

#include "cruddur/dbuf.h"

typedef struct jw {
  dbuf *out;   /* reference */
  bool failed; /* an append was refused */
} jw;

/* Appends n bytes as they are (punctuation, keys known to need no escape). */
void jw_raw(jw *w, const char *s, size_t n);

/* Appends a NUL-terminated literal as it is. */
void jw_lit(jw *w, const char *s);

/* Appends s (NULL counts as "") as a quoted, escaped JSON string. */
void jw_str(jw *w, const char *s);

/* Writes s[0, n) escaped as jw_str escapes it, without the quotes, to dst,
 * which has room for JW_ESCAPED_MAX(n) bytes. Returns the bytes written.
 * For writers that reserve a bound once (dbuf_reserve) instead of
 * appending run by run. */
#define JW_ESCAPED_MAX(n) ((n) * 6)
size_t jw_escape(char *dst, const char *s, size_t n);

#endif
