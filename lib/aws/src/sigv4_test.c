/* sigv4_test.c - the SigV4 signer (sigv4.c) against the official AWS SigV4
 * test suite, read at run time from ../shared/data/aws-sigv4-test-suite
 * beside the source tree (or $CRUDDUR_SIGV4_SUITE), plus the signing-key
 * cache and the refusals. The differential test against libcurl's own
 * signer is in aws_test.c (it needs the fake HTTP server). */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cruddur/check.h"
#include "sigv4.h"

#define CAP ((size_t)1 << 20)

/* ==== helpers ============================================================= */

/* The whole file, NUL-terminated; NULL when missing. Caller frees. */
static char *slurp(const char *dir, const char *name) {
  char path[4500];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  dbuf b = DBUF_INIT(CAP);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) dbuf_append(&b, chunk, n);
  fclose(f);
  if (!b.buf) dbuf_append(&b, "", 0);
  return b.buf ? b.buf : strdup("");
}

/* "2015-08-30T12:36:00Z" -> "20150830T123600Z" */
static void amz_from_iso(const char *iso, char out[17]) {
  size_t o = 0;
  for (const char *p = iso; *p && o < 16; p++)
    if (*p != '-' && *p != ':') out[o++] = *p;
  out[o] = '\0';
}

/* One request of the suite's request.txt, parsed in place. */
typedef struct parsed {
  char *method, *path, *query, *body;
  sigv4_header h[SIGV4_MAX_HEADERS];
  size_t nh;
  char *owned[SIGV4_MAX_HEADERS]; /* unfolded values */
} parsed;

/* "GET /a b/?x=y HTTP/1.1" then "Name:value" lines (a line starting with
 * blanks continues the previous value), a blank line, the body. */
static int parse_request(char *text, parsed *p) {
  memset(p, 0, sizeof *p);
  char *eol = strchr(text, '\n');
  if (!eol) eol = text + strlen(text);
  char *line_end = eol;
  char *sp = memchr(text, ' ', (size_t)(line_end - text));
  char *ver = memmem(text, (size_t)(line_end - text), " HTTP/", 6);
  if (!sp || !ver || ver < sp) return -1;
  *sp = '\0';
  *ver = '\0';
  p->method = text;
  p->path = sp + 1;
  char *q = strchr(p->path, '?');
  if (q) {
    *q = '\0';
    p->query = q + 1;
  }
  char *s = *eol ? eol + 1 : eol;
  while (*s && *s != '\n') {
    char *e = strchr(s, '\n');
    if (e) *e = '\0';
    if ((*s == ' ' || *s == '\t') && p->nh > 0) {
      sigv4_header *last = &p->h[p->nh - 1];
      char *joined = NULL;
      if (asprintf(&joined, "%s %s", last->value, s) < 0) return -1;
      free(p->owned[p->nh - 1]);
      p->owned[p->nh - 1] = joined;
      last->value = joined;
    } else {
      char *colon = strchr(s, ':');
      if (!colon || p->nh == SIGV4_MAX_HEADERS) return -1;
      *colon = '\0';
      p->h[p->nh].name = s;
      p->h[p->nh].value = colon + 1;
      p->nh++;
    }
    if (!e) return 0;
    s = e + 1;
  }
  p->body = *s == '\n' ? s + 1 : s;
  return 0;
}

static void parsed_free(parsed *p) {
  for (size_t i = 0; i < SIGV4_MAX_HEADERS; i++) free(p->owned[i]);
}

static const char *json_str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The Authorization value in a signed request, copied to out. */
static void auth_line(const char *signed_req, char *out, size_t cap) {
  out[0] = '\0';
  const char *a = strstr(signed_req, "\nAuthorization:");
  if (!a) return;
  a += strlen("\nAuthorization:");
  size_t n = strcspn(a, "\r\n");
  if (n >= cap) n = cap - 1;
  memcpy(out, a, n);
  out[n] = '\0';
}

/* ==== the official suite ==================================================== */

/* Signs one case's request with header signing; 1 when every step matches. */
static int run_case(const char *dir, const char *name) {
  char *ctx_txt = slurp(dir, "context.json"), *req = slurp(dir, "request.txt");
  char *want_canon = slurp(dir, "header-canonical-request.txt");
  char *want_sts = slurp(dir, "header-string-to-sign.txt");
  char *want_sig = slurp(dir, "header-signature.txt");
  char *want_signed = slurp(dir, "header-signed-request.txt");
  cJSON *ctx = ctx_txt ? cJSON_Parse(ctx_txt) : NULL;
  int ok = 0;
  parsed p;
  memset(&p, 0, sizeof p);
  if (!ctx || !req || !want_canon || !want_sts || !want_sig || !want_signed ||
      parse_request(req, &p) != 0) {
    CHECK(0, "%s: unreadable case", name);
    goto out;
  }
  const cJSON *cr = cJSON_GetObjectItemCaseSensitive(ctx, "credentials");
  const char *akid = json_str(cr, "access_key_id"), *secret = json_str(cr, "secret_access_key");
  const char *token = json_str(cr, "token");
  const char *region = json_str(ctx, "region"), *service = json_str(ctx, "service");
  char amz[17];
  amz_from_iso(json_str(ctx, "timestamp"), amz);
  bool normalize = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ctx, "normalize"));
  bool sign_body = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ctx, "sign_body"));
  bool omit_token = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ctx, "omit_session_token"));

  /* What a signer adds before signing: the date, the token unless the case
   * adds it after signing, the body hash header when asked to sign it. */
  char body_hash[65];
  CHECK(sigv4_sha256_hex(p.body ? p.body : "", p.body ? strlen(p.body) : 0, body_hash) == 0);
  p.h[p.nh++] = (sigv4_header){"X-Amz-Date", amz};
  if (token && !omit_token) p.h[p.nh++] = (sigv4_header){"X-Amz-Security-Token", token};
  if (sign_body) p.h[p.nh++] = (sigv4_header){"X-Amz-Content-Sha256", body_hash};
  sigv4_request r = {.method = p.method, .path = p.path, .query = p.query,
                     .normalize_path = normalize, .headers = p.h, .nheaders = p.nh,
                     .payload_hash = body_hash};

  dbuf canon = DBUF_INIT(CAP), sts = DBUF_INIT(CAP), scratch = DBUF_INIT(CAP);
  char signed_hdrs[1024], sig[65], auth[2048], want_auth[2048];
  sigv4_key key = {0};
  int rc = sigv4_canonical_request(&r, &canon, signed_hdrs, sizeof signed_hdrs);
  CHECK(rc == 0, "%s: canonical request refused", name);
  bool canon_ok = rc == 0 && strcmp(canon.buf, want_canon) == 0;
  CHECK(canon_ok, "%s: canonical request\n--- got\n%s\n--- want\n%s", name,
        canon.buf ? canon.buf : "", want_canon);
  CHECK(sigv4_string_to_sign(amz, region, service, canon.buf ? canon.buf : "", canon.len,
                             &sts) == 0);
  bool sts_ok = sts.buf && strcmp(sts.buf, want_sts) == 0;
  CHECK(sts_ok, "%s: string to sign\n--- got\n%s\n--- want\n%s", name, sts.buf, want_sts);
  CHECK(sigv4_key_get(&key, 1, secret, amz, region, service) == 0);
  CHECK(sigv4_signature(&key, sts.buf ? sts.buf : "", sts.len, sig) == 0);
  bool sig_ok = strcmp(sig, want_sig) == 0;
  CHECK(sig_ok, "%s: signature %s, want %s", name, sig, want_sig);
  rc = sigv4_authorization(&r, &key, akid, amz, &scratch, auth, sizeof auth);
  auth_line(want_signed, want_auth, sizeof want_auth);
  bool auth_ok = rc == 0 && strcmp(auth, want_auth) == 0;
  CHECK(auth_ok, "%s: Authorization\n  got  %s\n  want %s", name, auth, want_auth);
  ok = canon_ok && sts_ok && sig_ok && auth_ok;
  sigv4_key_wipe(&key);
  dbuf_free(&canon);
  dbuf_free(&sts);
  dbuf_free(&scratch);
out:
  parsed_free(&p);
  cJSON_Delete(ctx);
  free(ctx_txt);
  free(req);
  free(want_canon);
  free(want_sts);
  free(want_sig);
  free(want_signed);
  return ok;
}

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_suite(void) {
  const char *dir = getenv("CRUDDUR_SIGV4_SUITE");
  char def[4096];
  if (!dir || !dir[0]) {
    const char *src = getenv("CRUDDUR_SOURCE_DIR");
    snprintf(def, sizeof def, "%s/../shared/data/aws-sigv4-test-suite",
             src && src[0] ? src : CRUDDUR_SOURCE_DIR_DEFAULT);
    dir = def;
  }
  DIR *d = opendir(dir);
  if (!d) {
    printf("sigv4_test: SKIP the AWS SigV4 test suite: %s is absent "
           "(set CRUDDUR_SIGV4_SUITE to its folder)\n", dir);
    return;
  }
  char *names[256];
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 256) {
    char sub[4400], ctx[4420];
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    snprintf(ctx, sizeof ctx, "%s/context.json", sub);
    struct stat st;
    if (e->d_name[0] != '.' && stat(ctx, &st) == 0) names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof names[0], name_cmp);
  size_t pass = 0;
  for (size_t i = 0; i < n; i++) {
    char sub[4400];
    snprintf(sub, sizeof sub, "%s/%s", dir, names[i]);
    pass += (size_t)run_case(sub, names[i]);
    free(names[i]);
  }
  /* 38 cases in the published suite; all of them are header-signing cases
   * a JSON-protocol client can meet, so all must pass. */
  CHECK(n >= 38, "only %zu cases in %s", n, dir);
  printf("sigv4_test: AWS SigV4 suite: %zu of %zu cases pass (%s)\n", pass, n, dir);
}

/* ==== the signing-key cache ============================================== */

static void test_key_cache(void) {
  sigv4_key k = {0};
  CHECK(sigv4_key_get(&k, 7, "secret", "20261205", "us-east-1", "dynamodb") == 0);
  unsigned char first[32];
  memcpy(first, k.k, 32);
  CHECK(k.derivations == 1);
  /* Same credentials, day, region, service: no new derivation. */
  CHECK(sigv4_key_get(&k, 7, "secret", "20261205T235959Z", "us-east-1", "dynamodb") == 0);
  CHECK(k.derivations == 1 && memcmp(k.k, first, 32) == 0);
  /* UTC midnight: a new day, a new key. */
  CHECK(sigv4_key_get(&k, 7, "secret", "20261206T000000Z", "us-east-1", "dynamodb") == 0);
  CHECK(k.derivations == 2 && memcmp(k.k, first, 32) != 0 && strcmp(k.date, "20261206") == 0);
  /* Rotated credentials (a new id), even with the same secret text. */
  CHECK(sigv4_key_get(&k, 8, "secret", "20261206", "us-east-1", "dynamodb") == 0);
  CHECK(k.derivations == 3);
  CHECK(sigv4_key_get(&k, 8, "secret2", "20261206", "us-east-1", "dynamodb") == 0);
  CHECK(k.derivations == 3, "the id, not the text, names a credentials set");
  /* Another region or service. */
  CHECK(sigv4_key_get(&k, 8, "secret", "20261206", "eu-west-1", "dynamodb") == 0);
  CHECK(sigv4_key_get(&k, 8, "secret", "20261206", "eu-west-1", "cognito-idp") == 0);
  CHECK(k.derivations == 5);
  /* Back to the first inputs: the first key again. */
  CHECK(sigv4_key_get(&k, 7, "secret", "20261205", "us-east-1", "dynamodb") == 0);
  CHECK(memcmp(k.k, first, 32) == 0);
  /* Wiped: no key material left, and the next get derives again. */
  sigv4_key_wipe(&k);
  static const unsigned char zero[32];
  CHECK(memcmp(k.k, zero, 32) == 0 && k.creds_id == 0);
  CHECK(sigv4_key_get(&k, 7, "secret", "20261205", "us-east-1", "dynamodb") == 0);
  CHECK(k.derivations == 7);
  /* Refused inputs leave no key behind. */
  char longname[80];
  memset(longname, 'r', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  CHECK(sigv4_key_get(&k, 7, "secret", "2026120x", "us-east-1", "dynamodb") == -1);
  CHECK(sigv4_key_get(&k, 7, "secret", "20261205", longname, "dynamodb") == -1);
  /* Credentials id 0 is "empty": never served from the cache. */
  sigv4_key_wipe(&k);
  CHECK(sigv4_key_get(&k, 0, "secret", "20261205", "us-east-1", "dynamodb") == 0);
  CHECK(sigv4_key_get(&k, 0, "secret", "20261205", "us-east-1", "dynamodb") == 0);
  CHECK(k.derivations == 9);
  sigv4_key_wipe(&k);
}

/* ==== refusals ============================================================= */

static void test_refusals(void) {
  char hash[65], signed_hdrs[256];
  CHECK(sigv4_sha256_hex("", 0, hash) == 0);
  CHECK(strcmp(hash, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
  struct {
    const char *what, *path, *name, *value;
  } cases[] = {
      {"CR in a value (header injection)", "/", "X-Amz-Target", "a\r\nEvil: 1"},
      {"LF in a value", "/", "X-Amz-Target", "a\nb"},
      {"NUL-free control byte", "/", "X-Amz-Target", "a\x01"},
      {"space in a name", "/", "X Amz", "v"},
      {"colon in a name", "/", "X:Amz", "v"},
      {"empty name", "/", "", "v"},
      {"relative path", "a/b", "Host", "h"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sigv4_header h[] = {{"Host", "h"}, {cases[i].name, cases[i].value}};
    sigv4_request r = {.method = "POST", .path = cases[i].path, .headers = h, .nheaders = 2,
                       .payload_hash = hash};
    dbuf b = DBUF_INIT(CAP);
    CHECK(sigv4_canonical_request(&r, &b, signed_hdrs, sizeof signed_hdrs) == -1, "%s",
          cases[i].what);
    dbuf_free(&b);
  }
  /* Too many headers, and a signed-headers list that does not fit. */
  sigv4_header many[SIGV4_MAX_HEADERS + 1];
  for (size_t i = 0; i <= SIGV4_MAX_HEADERS; i++) many[i] = (sigv4_header){"X-A", "v"};
  sigv4_request r = {.method = "POST", .path = "/", .headers = many,
                     .nheaders = SIGV4_MAX_HEADERS + 1, .payload_hash = hash};
  dbuf b = DBUF_INIT(CAP);
  CHECK(sigv4_canonical_request(&r, &b, signed_hdrs, sizeof signed_hdrs) == -1);
  dbuf_reset(&b);
  r.nheaders = 2;
  many[1].name = "X-Bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
  CHECK(sigv4_canonical_request(&r, &b, signed_hdrs, 16) == -1);
  /* A canonical request past the buffer's cap. */
  dbuf small = DBUF_INIT(8);
  CHECK(sigv4_canonical_request(&r, &small, signed_hdrs, sizeof signed_hdrs) == -1);
  dbuf_free(&small);
  dbuf_free(&b);
  /* The date of the key and the request must agree. */
  sigv4_key k = {0};
  char auth[512];
  dbuf scratch = DBUF_INIT(CAP);
  CHECK(sigv4_key_get(&k, 1, "s", "20261205", "us-east-1", "dynamodb") == 0);
  r.nheaders = 1;
  CHECK(sigv4_authorization(&r, &k, "AK", "20261206T000000Z", &scratch, auth, sizeof auth) == -1);
  CHECK(sigv4_authorization(&r, &k, "AK", "20261205T235959Z", &scratch, auth, sizeof auth) == 0);
  CHECK(sigv4_authorization(&r, &k, "AK", "20261205T235959Z", &scratch, auth, 40) == -1);
  sigv4_key_wipe(&k);
  dbuf_free(&scratch);
}

static void test_amz_date(void) {
  char d[17];
  sigv4_amz_date(0, d);
  CHECK(strcmp(d, "19700101T000000Z") == 0);
  sigv4_amz_date(1440938160, d); /* the suite's 2015-08-30T12:36:00Z */
  CHECK(strcmp(d, "20150830T123600Z") == 0);
  sigv4_amz_date(1796515199, d);
  CHECK(strcmp(d, "20261205T235959Z") == 0, "%s", d);
}

int main(void) {
  test_suite();
  test_key_cache();
  test_refusals();
  test_amz_date();
  if (!failures) printf("sigv4_test: ok\n");
  return failures ? 1 : 0;
}
