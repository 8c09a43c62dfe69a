/* core_test.c - table-driven tests for uuid, ts, utf8, cfg, sha256 and the log lines. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cruddur/cfg.h"
#include "cruddur/arena.h"
#include "cruddur/dbuf.h"
#include "cruddur/jarena.h"
#include "cruddur/jw.h"
#include "cruddur/log.h"
#include "cruddur/sha256.h"
#include "cruddur/ts.h"
#include "cruddur/utf8.h"
#include "cruddur/uuid.h"

#include "cruddur/check.h"

static void test_uuid(void) {
  static const struct { const char *name, *s; int valid; } cases[] = {
      {"canonical", "5ae290ed-55d1-47a0-bc6d-fe2bc2700399", 1},
      {"upper case", "5AE290ED-55D1-47A0-BC6D-FE2BC2700399", 0},
      {"short", "5ae290ed-55d1-47a0-bc6d-fe2bc270039", 0},
      {"long", "5ae290ed-55d1-47a0-bc6d-fe2bc27003990", 0},
      {"no dashes", "5ae290ed55d147a0bc6dfe2bc2700399xxxx", 0},
      {"braces", "{ae290ed-55d1-47a0-bc6d-fe2bc270039}", 0},
      {"empty", "", 0},
      {"non-hex", "5ae290ed-55d1-47a0-bc6d-fe2bc270039g", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    CHECK(uuid_valid(cases[i].s) == cases[i].valid, "uuid_valid(%s)", cases[i].name);
  CHECK(!uuid_valid(NULL), "uuid_valid(NULL)");

  char a[UUID_STR_LEN + 1], b[UUID_STR_LEN + 1];
  CHECK(uuid_new(a) == 0 && uuid_new(b) == 0, "uuid_new");
  CHECK(uuid_valid(a) && uuid_valid(b), "generated uuid valid: %s", a);
  CHECK(strcmp(a, b) != 0, "two uuids differ");
  CHECK(a[14] == '4', "version nibble 4: %s", a);
  CHECK(strchr("89ab", a[19]) != NULL, "variant nibble: %s", a);
}

static void test_ts(void) {
  static const struct { const char *name; long long us; const char *stored, *wire; } cases[] = {
      {"epoch", 0, "1970-01-01T00:00:00.000000Z", "1970-01-01T00:00:00.000000+00:00"},
      {"zero micros kept", 1679352731000000LL, "2023-03-20T22:52:11.000000Z",
       "2023-03-20T22:52:11.000000+00:00"},
      {"micros", 1679352731123456LL, "2023-03-20T22:52:11.123456Z",
       "2023-03-20T22:52:11.123456+00:00"},
      {"leap day", 951782400000001LL, "2000-02-29T00:00:00.000001Z",
       "2000-02-29T00:00:00.000001+00:00"},
      {"before epoch", -1, "1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999+00:00"},
      {"year end", 1735689599999999LL, "2024-12-31T23:59:59.999999Z",
       "2024-12-31T23:59:59.999999+00:00"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char s[TS_STORED_LEN + 1], w[TS_WIRE_LEN + 1];
    int64_t back = 0;
    CHECK(ts_format_stored(cases[i].us, s) == 0 && strcmp(s, cases[i].stored) == 0,
          "stored %s: %s", cases[i].name, s);
    CHECK(ts_format_wire(cases[i].us, w) == 0 && strcmp(w, cases[i].wire) == 0,
          "wire %s: %s", cases[i].name, w);
    CHECK(strlen(s) == TS_STORED_LEN && strlen(w) == TS_WIRE_LEN, "width %s", cases[i].name);
    CHECK(ts_parse_stored(cases[i].stored, &back) == 0 && back == cases[i].us,
          "parse %s: %lld", cases[i].name, (long long)back);
  }
  static const char *bad[] = {
      "2023-03-20T22:52:11.123456",       "2023-03-20T22:52:11.123456+00:00",
      "2023-02-29T00:00:00.000000Z",      "2023-13-01T00:00:00.000000Z",
      "2023-03-20 22:52:11.123456Z",      "2023-03-20T24:00:00.000000Z",
      "2023-03-20T22:52:11.12345aZ",      "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t v = 42;
    CHECK(ts_parse_stored(bad[i], &v) == -1 && v == 42, "reject \"%s\"", bad[i]);
  }
  char s[TS_STORED_LEN + 1] = "untouched";
  CHECK(ts_format_stored(INT64_C(253402300800) * 1000000, s) == -1 &&
            strcmp(s, "untouched") == 0, "year 10000 rejected");
  /* Text order is time order across digits rolling over. */
  char a[TS_STORED_LEN + 1], b[TS_STORED_LEN + 1];
  ts_format_stored(999999, a);
  ts_format_stored(1000000, b);
  CHECK(strcmp(a, b) < 0, "sorts as text");
  CHECK(ts_now_us() > INT64_C(1700000000000000), "clock sane");
}

static void test_utf8(void) {
  static const struct { const char *name; const char *s; size_t len; long count; int blank; } cases[] = {
      {"ascii", "hello", 5, 5, 0},
      {"empty", "", 0, 0, 1},
      {"spaces", " \t\r\n", 4, 4, 1},
      {"nbsp + ideographic", "\xc2\xa0\xe3\x80\x80", 5, 2, 1},
      {"zero width nbsp", "\xef\xbb\xbf", 3, 1, 1},
      {"emoji", "\xf0\x9f\x98\x80", 4, 1, 0},
      {"accented", "caf\xc3\xa9", 5, 4, 0},
      {"overlong slash", "\xc0\xaf", 2, -1, 0},
      {"surrogate", "\xed\xa0\x80", 3, -1, 0},
      {"above max", "\xf4\x90\x80\x80", 4, -1, 0},
      {"truncated", "\xe2\x82", 2, -1, 0},
      {"lone continuation", "\x80", 1, -1, 0},
      {"NUL inside", "a\0b", 3, -1, 0},
      {"0xff", "\xff", 1, -1, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CHECK(utf8_count(cases[i].s, cases[i].len) == cases[i].count, "count %s", cases[i].name);
    if (cases[i].count >= 0)
      CHECK(utf8_is_blank(cases[i].s, cases[i].len) == cases[i].blank, "blank %s", cases[i].name);
  }
}

static void test_cfg(void) {
  setenv("CORE_TEST_STR", "value", 1);
  setenv("CORE_TEST_EMPTY", "", 1);
  setenv("CORE_TEST_INT", "42", 1);
  CHECK(strcmp(cfg_str("CORE_TEST_STR", "d"), "value") == 0, "cfg_str set");
  CHECK(strcmp(cfg_str("CORE_TEST_EMPTY", "d"), "d") == 0, "cfg_str empty -> default");
  CHECK(strcmp(cfg_str("CORE_TEST_UNSET", "d"), "d") == 0, "cfg_str unset -> default");
  CHECK(cfg_int("CORE_TEST_INT", 1, 0, 100) == 42, "cfg_int");
  CHECK(cfg_int("CORE_TEST_UNSET", 7, 0, 100) == 7, "cfg_int default");
  const char *names[] = {"CORE_TEST_UNSET", "CORE_TEST_EMPTY", "CORE_TEST_STR", NULL};
  CHECK(strcmp(cfg_first(names, "d"), "value") == 0, "cfg_first");
}

static void test_dbuf(void) {
  dbuf b = DBUF_INIT(10);
  CHECK(dbuf_append(&b, "hello", 5) == 0 && b.len == 5 && strcmp(b.buf, "hello") == 0, "append");
  CHECK(dbuf_append(&b, "world", 5) == 0 && b.len == 10 && strcmp(b.buf, "helloworld") == 0,
        "fills to max exactly");
  CHECK(b.cap == 11, "never allocates past max + NUL: %zu", b.cap);
  CHECK(dbuf_append(&b, "!", 1) == -1 && b.toobig && b.len == 10 &&
            strcmp(b.buf, "helloworld") == 0, "refused past max, content unchanged");
  CHECK(dbuf_curl_write("x", 1, 1, &b) == 0, "curl callback refuses past max");
  dbuf_reset(&b);
  CHECK(b.len == 0 && !b.toobig && b.buf[0] == '\0' && b.cap == 11, "reset keeps memory");
  CHECK(dbuf_curl_write("abc", 1, 3, &b) == 3 && strcmp(b.buf, "abc") == 0, "curl callback");
  dbuf_free(&b);
  CHECK(b.buf == NULL && b.cap == 0 && b.max == 10, "free");
  dbuf e = DBUF_INIT(0);
  CHECK(dbuf_append(&e, "", 0) == 0 && e.len == 0 && e.buf != NULL, "empty append on max 0");
  CHECK(dbuf_append(&e, "a", 1) == -1 && e.toobig, "max 0 refuses a byte");
  dbuf_free(&e);
}

/* jw_str must give exactly what cJSON prints for the same string. */
static void test_jw(void) {
  static const char *const cases[] = {
      "", "plain", "quote \" inside", "back\\slash", "\b\f\n\r\t", "\x01\x1f ctl",
      "caf\xc3\xa9 \xf0\x9f\x98\x80", "</script>", "\x7f del", "a\"\\\n\x02z",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    dbuf b = DBUF_INIT(1024);
    jw w = {&b, false};
    jw_str(&w, cases[i]);
    cJSON *s = cJSON_CreateString(cases[i]);
    char *want = cJSON_PrintUnformatted(s);
    CHECK(!w.failed && want && strcmp(b.buf, want) == 0, "jw_str case %zu: %s vs %s", i, b.buf,
          want ? want : "(null)");
    cJSON_free(want);
    cJSON_Delete(s);
    dbuf_free(&b);
  }
  /* Long strings take the word-at-a-time scan (jscan.h): every special
   * byte at every offset of a 40-byte run, among plain and high bytes. */
  static const char special[] = {'"', '\\', '\n', 0x01, 0x1f, 0x7f, (char)0xe9};
  for (size_t k = 0; k < sizeof special; k++) {
    for (int at = 0; at < 40; at++) {
      char in[41];
      for (int i = 0; i < 40; i++) in[i] = i % 7 == 3 ? (char)0xc3 : 'a';
      in[at] = special[k];
      in[40] = '\0';
      dbuf lb = DBUF_INIT(1024);
      jw lw = {&lb, false};
      jw_str(&lw, in);
      cJSON *s = cJSON_CreateString(in);
      char *want = cJSON_PrintUnformatted(s);
      CHECK(!lw.failed && want && strcmp(lb.buf, want) == 0, "jw_str byte %zu at %d", k, at);
      cJSON_free(want);
      cJSON_Delete(s);
      dbuf_free(&lb);
    }
  }
  dbuf b = DBUF_INIT(8);
  jw w = {&b, false};
  jw_str(&w, NULL);
  jw_lit(&w, ",");
  CHECK(!w.failed && strcmp(b.buf, "\"\",") == 0, "NULL is the empty string");
  jw_str(&w, "toolong");
  CHECK(w.failed && b.toobig, "cap refuses");
  size_t len = b.len;
  jw_lit(&w, "x");
  CHECK(b.len == len, "sticky: nothing appended after a failure");
  dbuf_free(&b);
}

static void test_arena(void) {
  enum { CH = 4096 };
  arena a = ARENA_INIT(CH, 4 * CH);
  char *p = arena_alloc(&a, 1), *q = arena_alloc(&a, 100);
  CHECK(p && q && q - p == (ptrdiff_t)sizeof(max_align_t), "bump, aligned: %td", q - p);
  CHECK(((uintptr_t)q % sizeof(max_align_t)) == 0 && arena_owns(&a, q) && arena_owns(&a, p + 1),
        "owned and aligned");
  int on_stack = 0;
  CHECK(!arena_owns(&a, &on_stack), "not owned");
  CHECK(arena_alloc(&a, 0) != NULL && a.bytes == CH, "zero size");
  /* Over a quarter chunk: a chunk of its own, and the head keeps bumping. */
  char *big = arena_alloc(&a, 2 * CH);
  char *after = arena_alloc(&a, 16);
  CHECK(big && a.bytes == 3 * CH && after && arena_owns(&a, big) && after > q && after - q < CH,
        "dedicated chunk");
  CHECK(arena_alloc(&a, 2 * CH) == NULL && a.bytes == 3 * CH, "cap refuses a chunk");
  CHECK(arena_alloc(&a, SIZE_MAX) == NULL, "overflowing size");
  for (int i = 0; i < 40; i++) arena_alloc(&a, 200); /* fills the head, adds a chunk */
  CHECK(a.bytes == 4 * CH, "second standard chunk: %zu", a.bytes);
  arena_rewind(&a);
  CHECK(a.bytes == CH && !arena_owns(&a, big), "rewind keeps the first chunk only");
  char *r = arena_alloc(&a, 8);
  CHECK(r == p, "rewound arena starts over");
  arena_free(&a);
  CHECK(a.head == NULL && a.bytes == 0 && a.max == 4 * CH, "free");
}

static void test_jarena(void) {
  static const char doc[] = "{\"Items\":[{\"pk\":{\"S\":\"MSG#1\"},\"n\":{\"N\":\"42\"}},"
                            "{\"pk\":{\"S\":\"MSG#2\"}}],\"Count\":2}";
  size_t bytes, live;
  cJSON *a = jarena_parse(doc, sizeof doc - 1);
  jarena_stats(&bytes, &live);
  CHECK(a != NULL && bytes == JARENA_CHUNK && live > 10, "parsed into the arena: %zu live", live);
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(a, "Items");
  const cJSON *pk = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(items, 1), "pk");
  CHECK(cJSON_GetArraySize(items) == 2 &&
            strcmp(cJSON_GetObjectItemCaseSensitive(pk, "S")->valuestring, "MSG#2") == 0,
        "tree content");
  size_t one = live;
  cJSON *b = jarena_parse(doc, sizeof doc - 1);
  jarena_stats(&bytes, &live);
  CHECK(b != NULL && live == 2 * one, "two trees alive: %zu", live);
  /* A node made outside the parse is malloc'd and freed as usual. */
  CHECK(cJSON_AddStringToObject(a, "extra", "x") != NULL, "add to a parsed tree");
  jarena_stats(&bytes, &live);
  CHECK(live == 2 * one, "added node is not in the arena");
  cJSON_Delete(a);
  jarena_stats(&bytes, &live);
  CHECK(live == one, "first tree freed: %zu", live);
  cJSON_Delete(b);
  jarena_stats(&bytes, &live);
  CHECK(live == 0 && bytes == JARENA_CHUNK, "rewound, one chunk kept: %zu", bytes);
  CHECK(jarena_parse("{\"a\":", 6) == NULL, "malformed text");
  jarena_stats(&bytes, &live);
  CHECK(live == 0, "a refused document leaves nothing live");
  /* A document bigger than a chunk takes more chunks; they go on rewind. */
  enum { N = 4000 };
  dbuf big = DBUF_INIT(1 << 20);
  dbuf_append(&big, "[", 1);
  for (int i = 0; i < N; i++) dbuf_append(&big, i ? ",\"abcdefgh\"" : "\"abcdefgh\"", i ? 11 : 10);
  dbuf_append(&big, "]", 1);
  cJSON *c = jarena_parse(big.buf, big.len);
  jarena_stats(&bytes, &live);
  CHECK(c && cJSON_GetArraySize(c) == N && bytes > JARENA_CHUNK, "big document: %zu bytes", bytes);
  cJSON_Delete(c);
  jarena_stats(&bytes, &live);
  CHECK(live == 0 && bytes == JARENA_CHUNK, "big document rewound to one chunk: %zu", bytes);
  dbuf_free(&big);

  /* jarena_open: a tree built to be printed and deleted lives in the arena,
   * its printed text too (freed with cJSON_free); close with nothing live
   * rewinds. */
  jarena_open();
  cJSON *body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "TableName", "t");
  jarena_stats(&bytes, &live);
  CHECK(body && live >= 3, "built in the arena: %zu live", live);
  char *text = cJSON_PrintUnformatted(body);
  CHECK(text && strcmp(text, "{\"TableName\":\"t\"}") == 0, "printed");
  cJSON *parsed = jarena_parse("{}", 2);
  cJSON_free(text);
  jarena_close();
  jarena_stats(&bytes, &live);
  CHECK(parsed && live >= 4, "parse inside open keeps it open: %zu live", live);
  cJSON *after = cJSON_CreateObject(); /* closed: plain malloc */
  size_t before = live;
  jarena_stats(&bytes, &live);
  CHECK(after && live == before, "closed: nothing more in the arena");
  cJSON_Delete(after);
  cJSON_Delete(body);
  cJSON_Delete(parsed);
  jarena_stats(&bytes, &live);
  CHECK(live == 0, "all freed: %zu live", live);
}

/* Runs fn with stderr sent to a pipe; the bytes written land in out. */
static size_t capture_stderr(void (*fn)(void), char *out, size_t cap) {
  int fds[2];
  if (pipe(fds) != 0) return 0;
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  dup2(fds[1], STDERR_FILENO);
  close(fds[1]);
  fn();
  dup2(saved, STDERR_FILENO);
  close(saved);
  ssize_t n = read(fds[0], out, cap - 1);
  close(fds[0]);
  out[n > 0 ? n : 0] = '\0';
  return n > 0 ? (size_t)n : 0;
}

static void log_escapes(void) {
  log_request("rpc", "/a\"b\\c", "OK\n\x01", -1234567, "id\tx");
}

/* 1 when the line in out has a time stamp that reads back as now. */
static int stamp_is_now(const char *out) {
  const char *ts = strstr(out, "{\"ts\":\"");
  char stamp[TS_STORED_LEN + 1] = "";
  int64_t at = 0;
  if (ts != NULL) snprintf(stamp, sizeof stamp, "%s", ts + 7);
  return ts_parse_stored(stamp, &at) == 0 && llabs(at - ts_now_us()) < 5000000;
}

static char g_long[3000];
static void log_long(void) { log_request("rpc", g_long, "OK", 0, NULL); }

static void test_log(void) {
  char out[4096];
  log_init("core-test");
  capture_stderr(log_escapes, out, sizeof out);
  CHECK(strstr(out, "\"svc\":\"core-test\"") != NULL, "component: %s", out);
  /* The stamp (its second kept per thread) reads back as now, twice. */
  CHECK(stamp_is_now(out), "first line's stamp: %s", out);
  capture_stderr(log_escapes, out, sizeof out);
  CHECK(stamp_is_now(out), "second line's stamp: %s", out);
  CHECK(strstr(out, ",\"kind\":\"rpc\",\"method\":\"/a\\\"b\\\\c\",\"status\":\"OK\\u000a\\u0001\","
                    "\"duration_us\":-1234567,\"request_id\":\"id\\u0009x\"}\n") != NULL,
        "escaped request line: %s", out);
  /* A field longer than the line is cut; the line still ends "}\n" and
   * no byte past the line's buffer is written. */
  memset(g_long, 'm', sizeof g_long - 1);
  g_long[100] = '"';
  size_t n = capture_stderr(log_long, out, sizeof out);
  CHECK(n > 1000 && n <= 2048, "cut line length %zu", n);
  CHECK(n >= 2 && out[n - 2] == '}' && out[n - 1] == '\n', "cut line ends the object");
  CHECK(strstr(out, "mmm\\\"mmm") != NULL, "escape inside a long run");
  CHECK(strchr(out, '\n') == out + n - 1, "one line");
}

static void hex32(const unsigned char b[32], char out[65]) {
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* RFC 4231's HMAC-SHA256 vectors (1, 2, 4: short keys; 6, 7: a 131-byte
 * key, hashed first) and FIPS 180-2's "abc", each through the shared keyed
 * state and the one-off call. */
static void test_sha256(void) {
  unsigned char k20[20], k25[25], d50[50], k131[131];
  memset(k20, 0x0b, sizeof k20);
  for (int i = 0; i < 25; i++) k25[i] = (unsigned char)(i + 1);
  memset(d50, 0xcd, sizeof d50);
  memset(k131, 0xaa, sizeof k131);
  static const char m7[] =
      "This is a test using a larger than block-size key and a larger than block-size data. "
      "The key needs to be hashed before being used by the HMAC algorithm.";
  static const char m6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
  const struct {
    const char *name;
    const void *key, *msg;
    size_t klen, mlen;
    const char *want;
  } cases[] = {
      {"rfc4231 1", k20, "Hi There", sizeof k20, 8,
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"rfc4231 2", "Jefe", "what do ya want for nothing?", 4, 28,
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {"rfc4231 4", k25, d50, sizeof k25, sizeof d50,
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {"rfc4231 6", k131, m6, sizeof k131, sizeof m6 - 1,
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {"rfc4231 7", k131, m7, sizeof k131, sizeof m7 - 1,
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
  unsigned char mac[32];
  char hex[65];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sha256_hmac h = {0};
    CHECK(sha256_hmac_init(&h, cases[i].key, cases[i].klen) == 0);
    for (int twice = 0; twice < 2; twice++) { /* a keyed state signs again */
      memset(mac, 0, sizeof mac);
      CHECK(sha256_hmac_sign(&h, cases[i].msg, cases[i].mlen, mac) == 0);
      hex32(mac, hex);
      if (strcmp(hex, cases[i].want) != 0) {
        fprintf(stderr, "%s: got %s\n", cases[i].name, hex);
        failures++;
      }
    }
    sha256_hmac_free(&h);
    CHECK(sha256_hmac_sign(&h, "x", 1, mac) == -1); /* freed: empty */
    CHECK(sha256_hmac_once(cases[i].key, cases[i].klen, cases[i].msg, cases[i].mlen, mac) == 0);
    hex32(mac, hex);
    CHECK(strcmp(hex, cases[i].want) == 0);
  }
  CHECK(sha256("abc", 3, mac) == 0);
  hex32(mac, hex);
  CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
}

int main(void) {
  test_uuid();
  test_ts();
  test_utf8();
  test_cfg();
  test_dbuf();
  test_jw();
  test_arena();
  test_jarena();
  test_log();
  test_sha256();
  if (failures) {
    fprintf(stderr, "core_test: %d failure(s)\n", failures);
    return 1;
  }
  puts("core_test: all passed");
  return 0;
}
