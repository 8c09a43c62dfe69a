/* ddbpage.h - the items of a DynamoDB answer read in one pass, without a
 * cJSON tree.
 *
 * A Query answer is {"Items":[{"name":{"S":"value"},...},...],"Count":..}.
 * The list handlers only need each item's string attributes, so this reader
 * walks the text once, checks it is JSON, and keeps, per item, each
 * attribute's name and its "S" string: a flat list in one arena instead of
 * a node per value (README: "Reading DynamoDB pages").
 *
 * It answers what cJSON would for the same text (fuzz_ddb_items checks it
 * differentially): the first "Items" member counts, the first attribute of
 * a name and the first "S" member of a value win, strings are decoded as
 * cJSON does (a \u0000 ends the C string). It is stricter than cJSON where
 * cJSON is lenient about JSON itself (trailing bytes, raw control bytes in
 * strings, numbers like 01 or 1., whitespace other than the four JSON
 * ones, nesting deeper than DDBP_DEPTH_MAX): such text is refused whole.
 */
#ifndef MESSAGES_DDBPAGE_H
#define MESSAGES_DDBPAGE_H

#include <stddef.h>
#include <string.h>

#include "cruddur/arena.h"

/* Deeper nesting is refused: DynamoDB nests maps and lists 32 levels at
 * most, two JSON levels each, under three of the answer's own. */
#define DDBP_DEPTH_MAX 128

enum { DDBP_OK = 0, DDBP_ESYNTAX = -1, DDBP_ENOMEM = -2 };

typedef struct ddbp_attr {
  const char *name; /* decoded, NUL-terminated */
  size_t name_len;  /* strlen(name) */
  const char *s;    /* the value's first "S" member when that is a string, else NULL */
  const struct ddbp_attr *next;
} ddbp_attr;

typedef struct ddbp_item {
  const ddbp_attr *attrs; /* in document order; NULL when the element is not an object */
  const struct ddbp_item *next;
} ddbp_item;

typedef struct ddbp_page {
  const ddbp_item *items; /* the elements of "Items", in order; NULL when absent or empty */
  size_t n;               /* how many */
  arena mem;              /* owns the items, attributes and strings */
} ddbp_page;

/* Reads len bytes of text (a JSON object, nothing after it but
 * whitespace). "Items", when present, must be an array. Returns DDBP_OK and
 * fills *out (free with ddbp_page_free), or DDBP_ESYNTAX / DDBP_ENOMEM with
 * nothing allocated and *out untouched. */
int ddbp_parse(const char *text, size_t len, ddbp_page *out);

/* The "S" string of the item's first attribute called name (n bytes, no
 * NUL among them), or NULL. */
const char *ddbp_attr_sn(const ddbp_item *it, const char *name, size_t n);

/* ddbp_attr_sn for a C string (its length folds away for a literal). */
static inline const char *ddbp_attr_s(const ddbp_item *it, const char *name) {
  return ddbp_attr_sn(it, name, strlen(name));
}

/* Frees what ddbp_parse allocated; the page is empty again. NULL-safe. */
void ddbp_page_free(ddbp_page *p);

#endif
