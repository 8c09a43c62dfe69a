/* Unit tests for static_files: loading rules, routing, headers, answers:
 * bodies, ETags and 304s. The wire (HEAD, 304 without a body) is server.c's,
 * covered by tests/integration and tests/e2e. */
#define _GNU_SOURCE
#include "static_files.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cruddur/check.h"

static const char INDEX_HTML[] = "<!doctype html><title>t</title><script type=module src=/app.js></script>";
static const char APP_JS[] = "export const x = 1;\n";
static const char CSP_LOCAL[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' http://127.0.0.1:9229; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'";

static void write_file(const char *dir, const char *rel, const char *text, size_t len) {
  char path[512];
  int n = snprintf(path, sizeof path, "%s/%s", dir, rel);
  if (n < 0 || (size_t)n >= sizeof path) {
    fprintf(stderr, "path too long: %s/%s\n", dir, rel);
    exit(2);
  }
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(text, 1, len, f) != len) {
    perror(path);
    exit(2);
  }
  fclose(f);
}

static void make_dir(const char *dir, const char *rel) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  if (mkdir(path, 0755) != 0) {
    perror(path);
    exit(2);
  }
}

static void make_link(const char *target, const char *dir, const char *rel) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  if (symlink(target, path) != 0) {
    perror(path);
    exit(2);
  }
}

/* A site with files that must be served and files that must never be. */
static void make_site(const char *root) {
  write_file(root, "index.html", INDEX_HTML, strlen(INDEX_HTML));
  write_file(root, "app.js", APP_JS, strlen(APP_JS));
  write_file(root, "style.css", "body{}", 6);
  write_file(root, "README.md", "# private", 9);                /* unknown extension */
  write_file(root, ".secret.js", "x", 1);                       /* dot file */
  write_file(root, "config.json", "{\"evil\":1}", 10);          /* the rendered one wins */
  write_file(root, "we ird.js", "x", 1);                        /* name needing escapes */
  make_dir(root, "img");
  write_file(root, "img/logo.svg", "<svg/>", 6);
  make_dir(root, "sub");
  make_dir(root, "sub/deeper");
  write_file(root, "sub/deeper/x.mjs", "1", 1);
  make_link("/etc/passwd", root, "passwd.txt");                 /* file symlink out of root */
  make_link("/etc", root, "etc");                               /* dir symlink out of root */
  make_link("app.js", root, "alias.js");                        /* even inside the root */
}

static static_site *open_site(const char *root, const char *endpoint) {
  static_site_config cfg = {.root_dir = root, .cognito_endpoint = endpoint,
                            .cognito_client_id = "abc123client", .region = "us-east-1"};
  static_site *s = NULL;
  static_site_status st = static_site_open(&cfg, &s);
  if (st != STATIC_SITE_OK) {
    fprintf(stderr, "static_site_open(%s): %s\n", root, static_site_strerror(st));
    exit(2);
  }
  return s;
}

/* ---- static_site_open's checks ------------------------------------------ */

static void test_open_errors(const char *good_root, const char *tmp) {
  char noindex[512], many[512], big[512];
  snprintf(noindex, sizeof noindex, "%s/noindex", tmp);
  snprintf(many, sizeof many, "%s/many", tmp);
  snprintf(big, sizeof big, "%s/big", tmp);
  mkdir(noindex, 0755);
  write_file(noindex, "app.js", "1", 1);
  mkdir(many, 0755);
  write_file(many, "index.html", "x", 1);
  for (int i = 0; i < STATIC_SITE_MAX_FILES + 1; i++) {
    char name[32];
    snprintf(name, sizeof name, "f%03d.js", i);
    write_file(many, name, "1", 1);
  }
  mkdir(big, 0755);
  write_file(big, "index.html", "x", 1);
  size_t n = STATIC_SITE_MAX_FILE_BYTES + 1;
  char *blob = calloc(1, n);
  write_file(big, "big.txt", blob, n);
  free(blob);

  static const struct {
    const char *name, *root, *endpoint, *client, *region;
    static_site_status want;
  } cases[] = {
      {"ok local", NULL, "http://127.0.0.1:9229", "abc123client", "us-east-1", STATIC_SITE_OK},
      {"ok aws default", NULL, NULL, "abc123client", "ca-central-1", STATIC_SITE_OK},
      {"ok ipv6 + path", NULL, "https://[::1]:8443/cognito/", "a_b+c", "us-east-1", STATIC_SITE_OK},
      {"empty root", "", NULL, "abc", "us-east-1", STATIC_SITE_EINVAL},
      {"missing root", "/nonexistent/cruddur-web", NULL, "abc", "us-east-1", STATIC_SITE_EIO},
      {"no index", "noindex", NULL, "abc", "us-east-1", STATIC_SITE_ENOINDEX},
      {"too many files", "many", NULL, "abc", "us-east-1", STATIC_SITE_ELIMIT},
      {"file too big", "big", NULL, "abc", "us-east-1", STATIC_SITE_ELIMIT},
      {"client id quote", NULL, NULL, "ab\"c", "us-east-1", STATIC_SITE_EINVAL},
      {"client id empty", NULL, NULL, "", "us-east-1", STATIC_SITE_EINVAL},
      {"client id NULL", NULL, NULL, NULL, "us-east-1", STATIC_SITE_EINVAL},
      {"region upper", NULL, NULL, "abc", "US-EAST-1", STATIC_SITE_EINVAL},
      {"region semicolon", NULL, NULL, "abc", "x;y", STATIC_SITE_EINVAL},
      {"endpoint scheme", NULL, "javascript:alert(1)", "abc", "us-east-1", STATIC_SITE_EINVAL},
      {"endpoint ftp", NULL, "ftp://host", "abc", "us-east-1", STATIC_SITE_EINVAL},
      {"endpoint space", NULL, "http://a b", "abc", "us-east-1", STATIC_SITE_EINVAL},
      {"endpoint csp inject", NULL, "http://a;script-src *", "abc", "us-east-1", STATIC_SITE_EINVAL},
      {"endpoint quote in path", NULL, "http://a/\"x", "abc", "us-east-1", STATIC_SITE_EINVAL},
      {"endpoint no host", NULL, "http://", "abc", "us-east-1", STATIC_SITE_EINVAL},
      {"endpoint port 0", NULL, "http://a:0", "abc", "us-east-1", STATIC_SITE_EINVAL},
      {"endpoint port big", NULL, "http://a:65536", "abc", "us-east-1", STATIC_SITE_EINVAL},
      {"endpoint userinfo", NULL, "http://u@a", "abc", "us-east-1", STATIC_SITE_EINVAL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char root[512];
    if (cases[i].root == NULL) snprintf(root, sizeof root, "%s", good_root);
    else if (cases[i].root[0] == '/' || cases[i].root[0] == '\0') snprintf(root, sizeof root, "%s", cases[i].root);
    else snprintf(root, sizeof root, "%s/%s", tmp, cases[i].root);
    static_site_config cfg = {.root_dir = root, .cognito_endpoint = cases[i].endpoint,
                              .cognito_client_id = cases[i].client, .region = cases[i].region};
    static_site *s = (static_site *)0x1; /* must stay untouched on error */
    static_site_status st = static_site_open(&cfg, &s);
    CHECK(st == cases[i].want, "%s: got %d (%s), want %d", cases[i].name, (int)st,
          static_site_strerror(st), (int)cases[i].want);
    if (st == STATIC_SITE_OK) static_site_free(s);
    else CHECK(s == (static_site *)0x1, "%s: *out written on error", cases[i].name);
  }
  CHECK(static_site_open(NULL, NULL) == STATIC_SITE_EINVAL, "NULL args");
}

/* ---- routing and headers (no daemon) ------------------------------------ */

static void test_routes(static_site *s) {
  /* index.html, app.js, style.css, config.json, img/logo.svg, sub/deeper/x.mjs */
  CHECK(static_site_file_count(s) == 6, "indexed %zu files", static_site_file_count(s));
  static const struct {
    const char *path;
    int want;                 /* 1 served, 0 not ours */
    const char *type;         /* Content-Type when served */
    int html;                 /* CSP expected */
  } cases[] = {
      {"/", 1, "text/html; charset=utf-8", 1},
      {"/index.html", 1, "text/html; charset=utf-8", 1},
      {"/signin", 1, "text/html; charset=utf-8", 1},
      {"/messages", 1, "text/html; charset=utf-8", 1},
      {"/messages/new/londo", 1, "text/html; charset=utf-8", 1},
      {"/messages/new/A_b_9", 1, "text/html; charset=utf-8", 1},
      {"/messages/new/abcdefghijabcdefghijabcdefghij12", 1, "text/html; charset=utf-8", 1},
      {"/messages/5ae290ed-55d1-47a0-bc6d-fe2bc2700399", 1, "text/html; charset=utf-8", 1},
      {"/messages/5AE290ED-55D1-47A0-BC6D-FE2BC2700399", 1, "text/html; charset=utf-8", 1},
      {"/app.js", 1, "text/javascript; charset=utf-8", 0},
      {"/style.css", 1, "text/css; charset=utf-8", 0},
      {"/img/logo.svg", 1, "image/svg+xml", 0},
      {"/sub/deeper/x.mjs", 1, "text/javascript; charset=utf-8", 0},
      {"/config.json", 1, "application/json", 0},
      {"/messages/new/", 0, NULL, 0},
      {"/messages/new/bad-handle", 0, NULL, 0},
      {"/messages/new/abcdefghijabcdefghijabcdefghij123", 0, NULL, 0},
      {"/messages/new/londo/x", 0, NULL, 0},
      {"/messages/not-a-uuid", 0, NULL, 0},
      {"/messages/5ae290ed-55d1-47a0-bc6d-fe2bc270039g", 0, NULL, 0},
      {"/messages/", 0, NULL, 0},
      {"/signin/", 0, NULL, 0},
      {"/api/message_groups", 0, NULL, 0},
      {"/README.md", 0, NULL, 0},
      {"/.secret.js", 0, NULL, 0},
      {"/we ird.js", 0, NULL, 0},
      {"/passwd.txt", 0, NULL, 0},
      {"/alias.js", 0, NULL, 0},
      {"/etc/passwd", 0, NULL, 0},
      {"/etc/hostname", 0, NULL, 0},
      {"/../etc/passwd", 0, NULL, 0},
      {"/img/../app.js", 0, NULL, 0},
      {"/./app.js", 0, NULL, 0},
      {"//app.js", 0, NULL, 0},
      {"/%2e%2e/app.js", 0, NULL, 0},
      {"/app.js%00.html", 0, NULL, 0},
      {"/app.js/", 0, NULL, 0},
      {"/APP.JS", 0, NULL, 0},
      {"app.js", 0, NULL, 0},
      {"", 0, NULL, 0},
      {"/img", 0, NULL, 0},
      {"/img/", 0, NULL, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    static_site_answer a = {7, NULL, 0, NULL, NULL, NULL};
    int got = static_site_respond(s, cases[i].path, NULL, &a);
    CHECK(got == cases[i].want, "%s: got %d want %d", cases[i].path, got, cases[i].want);
    if (got != 1) {
      CHECK(a.status == 7 && a.body == NULL, "%s: outputs touched", cases[i].path);
      continue;
    }
    CHECK(a.status == 200, "%s: status %u", cases[i].path, a.status);
    CHECK(a.body != NULL || a.len == 0, "%s: body", cases[i].path);
    const char *ct = a.content_type;
    CHECK(ct && strcmp(ct, cases[i].type) == 0, "%s: Content-Type %s", cases[i].path, ct ? ct : "(none)");
    const char *v = a.etag;
    CHECK(v && strlen(v) == 18 && v[0] == '"' && v[17] == '"', "%s: ETag %s", cases[i].path, v ? v : "(none)");
    v = a.csp;
    if (cases[i].html)
      CHECK(v && strcmp(v, CSP_LOCAL) == 0, "%s: CSP %s", cases[i].path, v ? v : "(none)");
    else
      CHECK(v == NULL, "%s: CSP on a non-HTML response", cases[i].path);
  }
  CHECK(static_site_respond(NULL, "/", NULL, NULL) == 0, "NULL site");
}

static void test_bodies(static_site *s) {
  static const struct {
    const char *path;
    const char *body;
  } cases[] = {
      {"/messages/new/londo", INDEX_HTML},
      {"/app.js", APP_JS},
      {"/config.json",
       "{\"cognitoEndpoint\":\"http://"
       "127.0.0.1:9229\",\"clientId\":\"abc123client\",\"region\":\"us-east-1\"}\n"},
      {"/index.html", INDEX_HTML},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    static_site_answer a;
    CHECK(static_site_respond(s, cases[i].path, NULL, &a) == 1, "%s", cases[i].path);
    CHECK(a.len == strlen(cases[i].body) && memcmp(a.body, cases[i].body, a.len) == 0,
          "%s: body %.*s", cases[i].path, (int)a.len, a.body);
  }
  /* Raw (still encoded) and decoded-with-NUL paths name nothing. */
  static const char *const none[] = {"/%2e%2e/%2e%2e/etc/passwd",
                                     "/img%2flogo.svg",
                                     "/messages/new/lon%64o",
                                     "/etc/passwd",
                                     "/passwd.txt",
                                     "/../../etc/passwd"};
  for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
    static_site_answer a;
    CHECK(static_site_respond(s, none[i], NULL, &a) == 0, "%s served", none[i]);
  }
}

static void test_etags(static_site *s) {
  static_site_answer a;
  CHECK(static_site_respond(s, "/app.js", NULL, &a) == 1, "app.js");
  char etag[64];
  snprintf(etag, sizeof etag, "%s", a.etag);
  char weak[80], list[160];
  snprintf(weak, sizeof weak, "W/%s", etag);
  snprintf(list, sizeof list, "\"0000000000000000\", %s", etag);
  static const char *const other = "\"0000000000000000\"";
  const struct {
    const char *inm;
    unsigned want;
  } cases[] = {
      {etag, 304}, {weak, 304}, {list, 304}, {"*", 304}, {other, 200}, {"garbage", 200},
      {"\"unterminated", 200}, {"", 200},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memset(&a, 0, sizeof a);
    CHECK(static_site_respond(s, "/app.js", cases[i].inm, &a) == 1, "inm %s", cases[i].inm);
    CHECK(a.status == cases[i].want, "If-None-Match %s: status %u want %u", cases[i].inm, a.status,
          cases[i].want);
    CHECK(a.etag && strcmp(a.etag, etag) == 0, "304 keeps the ETag");
    if (a.status == 304)
      CHECK(a.body == NULL && a.len == 0 && a.content_type == NULL, "304 has no body");
  }
  /* Different bodies, different tags; the SPA routes share index.html's. */
  static_site_answer r1, r2, r3;
  static_site_respond(s, "/", NULL, &r1);
  static_site_respond(s, "/messages", NULL, &r2);
  static_site_respond(s, "/style.css", NULL, &r3);
  CHECK(strcmp(r1.etag, r2.etag) == 0, "routes share index.html's ETag");
  CHECK(strcmp(r1.etag, r3.etag) != 0, "distinct files, distinct ETags");
}

static void rm_rf(const char *path) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", path);
}

int main(void) {
  char tmp[] = "/tmp/static_files_test.XXXXXX";
  if (mkdtemp(tmp) == NULL) {
    perror("mkdtemp");
    return 2;
  }
  char root[512];
  snprintf(root, sizeof root, "%s/web", tmp);
  mkdir(root, 0755);
  make_site(root);

  test_open_errors(root, tmp);
  static_site *s = open_site(root, "http://127.0.0.1:9229");
  test_routes(s);
  test_etags(s);
  test_bodies(s);
  static_site_free(s);

  /* AWS: endpoint derived from the region; the CSP names its origin. */
  static_site_config cfg = {.root_dir = root, .cognito_client_id = "c", .region = "ca-central-1"};
  s = NULL;
  CHECK(static_site_open(&cfg, &s) == STATIC_SITE_OK, "aws open");
  if (s) {
    static_site_answer a;
    static_site_respond(s, "/", NULL, &a);
    const char *csp = a.csp;
    CHECK(csp && strstr(csp, "connect-src 'self' https://cognito-idp.ca-central-1.amazonaws.com;"),
          "aws CSP %s", csp ? csp : "");
    static_site_free(s);
  }
  static_site_free(NULL);
  rm_rf(tmp);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("static_files_test: all checks passed\n");
  return 0;
}
