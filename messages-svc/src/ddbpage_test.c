/* ddbpage_test.c - the one-pass page reader: accepted shapes, exact
 * strings, and the texts it must refuse. */
#include <stdio.h>
#include <string.h>

#include "ddbpage.h"

#include "cruddur/check.h"

typedef struct accept_case {
  const char *name, *text;
  size_t n;            /* items */
  const char *attr;    /* looked up in the first item */
  const char *want;    /* its "S" value, or NULL */
} accept_case;

static const accept_case ACCEPT[] = {
    {"empty object", "{}", 0, NULL, NULL},
    {"no items", " {\"Count\":0,\"Items\":[]}\n", 0, NULL, NULL},
    {"one item", "{\"Items\":[{\"sk\":{\"S\":\"a\"}}],\"Count\":1}", 1, "sk", "a"},
    {"other members skipped",
     "{\"ConsumedCapacity\":{\"T\":[1,-2.5e+3,true,false,null,\"x\"]},"
     "\"Items\":[{\"n\":{\"N\":\"1\"},\"sk\":{\"S\":\"b\"}}]}",
     1, "sk", "b"},
    {"not a string", "{\"Items\":[{\"sk\":{\"N\":\"1\"}}]}", 1, "sk", NULL},
    {"S not first", "{\"Items\":[{\"sk\":{\"N\":\"1\",\"S\":\"c\"}}]}", 1, "sk", "c"},
    {"first S wins", "{\"Items\":[{\"sk\":{\"S\":\"d\",\"S\":\"e\"}}]}", 1, "sk", "d"},
    {"first non-string S wins", "{\"Items\":[{\"sk\":{\"S\":1,\"S\":\"e\"}}]}", 1, "sk", NULL},
    {"first attribute wins", "{\"Items\":[{\"sk\":{\"S\":\"f\"},\"sk\":{\"S\":\"g\"}}]}", 1,
     "sk", "f"},
    {"first Items wins", "{\"Items\":[{\"sk\":{\"S\":\"h\"}}],\"Items\":7}", 1, "sk", "h"},
    {"element not an object", "{\"Items\":[3,{\"sk\":{\"S\":\"i\"}}]}", 2, "sk", NULL},
    {"missing attribute", "{\"Items\":[{\"pk\":{\"S\":\"j\"}}]}", 1, "sk", NULL},
    {"escapes", "{\"Items\":[{\"s\\u006b\":{\"S\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}}]}", 1, "sk",
     "\"\\/\b\f\n\r\t"},
    {"utf-16 to utf-8", "{\"Items\":[{\"sk\":{\"S\":\"\\u00e9\\u20ac\\ud83d\\ude00\"}}]}", 1,
     "sk", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
    {"NUL ends the string", "{\"Items\":[{\"sk\":{\"S\":\"k\\u0000l\"}}]}", 1, "sk", "k"},
};

static const char *const REFUSE[] = {
    "",
    "[]",
    "\"Items\"",
    "{",
    "{\"Items\":{}}",
    "{\"Items\":[{\"sk\":{\"S\":\"a\"}}]} x",
    "{\"Items\":[{\"sk\":{\"S\":\"a\"}},]}",
    "{\"Items\":[{\"sk\":{\"S\":\"a\"},}]}",
    "{\"a\":01}",
    "{\"a\":1.}",
    "{\"a\":-}",
    "{\"a\":1e}",
    "{\"a\":tru}",
    "{\"a\":\"\x01\"}",
    "{\"a\":\"\\x\"}",
    "{\"a\":\"\\ud800\"}",
    "{\"a\":\"\\udc00\"}",
    "{\"a\":\"\\ud800\\u0041\"}",
    "{\"a\":\"\\u12\"}",
    "{\"a\":\"abc}",
    "{\"a\" 1}",
    "{\"a\":1234567890123456789012345678901234567890123456789012345678901234}",
};

static void test_accept(void) {
  for (size_t i = 0; i < sizeof ACCEPT / sizeof ACCEPT[0]; i++) {
    const accept_case *c = &ACCEPT[i];
    ddbp_page pg;
    int rc = ddbp_parse(c->text, strlen(c->text), &pg);
    if (rc != DDBP_OK) fprintf(stderr, "case %s: %d\n", c->name, rc);
    CHECK(rc == DDBP_OK);
    CHECK(pg.n == c->n);
    size_t n = 0;
    for (const ddbp_item *it = pg.items; it; it = it->next) n++;
    CHECK(n == c->n);
    if (c->attr) {
      const char *got = ddbp_attr_s(pg.items, c->attr);
      CHECK((got == NULL) == (c->want == NULL));
      if (got) CHECK(strcmp(got, c->want) == 0);
    }
    ddbp_page_free(&pg);
  }
}

static void test_refuse(void) {
  for (size_t i = 0; i < sizeof REFUSE / sizeof REFUSE[0]; i++) {
    ddbp_page pg;
    memset(&pg, 0x5a, sizeof pg);
    int rc = ddbp_parse(REFUSE[i], strlen(REFUSE[i]), &pg);
    if (rc != DDBP_ESYNTAX) fprintf(stderr, "case %zu (%s): %d\n", i, REFUSE[i], rc);
    CHECK(rc == DDBP_ESYNTAX);
    CHECK(pg.n == (size_t)0x5a5a5a5a5a5a5a5aULL); /* untouched */
  }
}

/* Nesting: DDBP_DEPTH_MAX levels pass, one more is refused. */
static void test_depth(void) {
  char buf[2 * DDBP_DEPTH_MAX + 16];
  for (int extra = 0; extra <= 1; extra++) {
    int levels = DDBP_DEPTH_MAX - 1 + extra; /* arrays under the root object */
    size_t n = 0;
    n += (size_t)sprintf(buf + n, "{\"a\":");
    for (int i = 0; i < levels; i++) buf[n++] = '[';
    for (int i = 0; i < levels; i++) buf[n++] = ']';
    buf[n++] = '}';
    ddbp_page pg;
    int rc = ddbp_parse(buf, n, &pg);
    CHECK(rc == (extra ? DDBP_ESYNTAX : DDBP_OK));
    if (rc == DDBP_OK) ddbp_page_free(&pg);
  }
}

int main(void) {
  test_accept();
  test_refuse();
  test_depth();
  puts("ddbpage_test: ok");
  return 0;
}
