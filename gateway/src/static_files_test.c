/* Unit tests for static_files: loading rules, routing, headers, and a real
 * MHD daemon on loopback for bodies, HEAD and 304s. */
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
  snprintf(path, sizeof path, "%s/%s", dir, rel);
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
    struct MHD_Response *r = (struct MHD_Response *)0x1;
    unsigned status = 7;
    int got = static_site_respond(s, cases[i].path, NULL, &r, &status);
    CHECK(got == cases[i].want, "%s: got %d want %d", cases[i].path, got, cases[i].want);
    if (got != 1) {
      CHECK(r == (struct MHD_Response *)0x1 && status == 7, "%s: outputs touched", cases[i].path);
      continue;
    }
    CHECK(status == 200, "%s: status %u", cases[i].path, status);
    const char *ct = MHD_get_response_header(r, "Content-Type");
    CHECK(ct && strcmp(ct, cases[i].type) == 0, "%s: Content-Type %s", cases[i].path, ct ? ct : "(none)");
    const char *v = MHD_get_response_header(r, "X-Content-Type-Options");
    CHECK(v && strcmp(v, "nosniff") == 0, "%s: nosniff", cases[i].path);
    v = MHD_get_response_header(r, "Referrer-Policy");
    CHECK(v && strcmp(v, "no-referrer") == 0, "%s: Referrer-Policy", cases[i].path);
    v = MHD_get_response_header(r, "Cache-Control");
    CHECK(v && strcmp(v, "no-cache") == 0, "%s: Cache-Control", cases[i].path);
    v = MHD_get_response_header(r, "ETag");
    CHECK(v && strlen(v) == 18 && v[0] == '"' && v[17] == '"', "%s: ETag %s", cases[i].path, v ? v : "(none)");
    v = MHD_get_response_header(r, "Content-Security-Policy");
    if (cases[i].html)
      CHECK(v && strcmp(v, CSP_LOCAL) == 0, "%s: CSP %s", cases[i].path, v ? v : "(none)");
    else
      CHECK(v == NULL, "%s: CSP on a non-HTML response", cases[i].path);
    MHD_destroy_response(r);
  }
  CHECK(static_site_respond(NULL, "/", NULL, NULL, NULL) == 0, "NULL site");
}

static void test_etags(static_site *s) {
  struct MHD_Response *r = NULL;
  unsigned status = 0;
  CHECK(static_site_respond(s, "/app.js", NULL, &r, &status) == 1, "app.js");
  char etag[64];
  snprintf(etag, sizeof etag, "%s", MHD_get_response_header(r, "ETag"));
  MHD_destroy_response(r);
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
    r = NULL;
    status = 0;
    CHECK(static_site_respond(s, "/app.js", cases[i].inm, &r, &status) == 1, "inm %s", cases[i].inm);
    CHECK(status == cases[i].want, "If-None-Match %s: status %u want %u", cases[i].inm, status, cases[i].want);
    if (r != NULL) {
      const char *v = MHD_get_response_header(r, "ETag");
      CHECK(v && strcmp(v, etag) == 0, "304 keeps the ETag");
      MHD_destroy_response(r);
    }
  }
  /* Different bodies, different tags; the SPA routes share index.html's. */
  const char *a, *b;
  struct MHD_Response *r1 = NULL, *r2 = NULL, *r3 = NULL;
  static_site_respond(s, "/", NULL, &r1, &status);
  static_site_respond(s, "/messages", NULL, &r2, &status);
  static_site_respond(s, "/style.css", NULL, &r3, &status);
  a = MHD_get_response_header(r1, "ETag");
  b = MHD_get_response_header(r2, "ETag");
  CHECK(strcmp(a, b) == 0, "routes share index.html's ETag");
  CHECK(strcmp(a, MHD_get_response_header(r3, "ETag")) != 0, "distinct files, distinct ETags");
  MHD_destroy_response(r1);
  MHD_destroy_response(r2);
  MHD_destroy_response(r3);
}

/* ---- over a real socket ------------------------------------------------- */

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **req) {
  static_site *s = cls;
  struct MHD_Response *r = NULL;
  unsigned status = 0;
  const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
  int got = static_site_respond(s, url, inm, &r, &status);
  if (got != 1) {
    static char nf[] = "[\"not_found\"]";
    r = MHD_create_response_from_buffer(sizeof nf - 1, nf, MHD_RESPMEM_PERSISTENT);
    status = 404;
  }
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* Sends one raw request, returns the whole answer (caller frees) or NULL. */
static char *http(unsigned port, const char *request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    if (fd >= 0) close(fd);
    return NULL;
  }
  size_t n = strlen(request);
  if (write(fd, request, n) != (ssize_t)n) {
    close(fd);
    return NULL;
  }
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap + 1);
  ssize_t r;
  while (len < cap && (r = read(fd, buf + len, cap - len)) > 0) len += (size_t)r;
  buf[len] = '\0';
  close(fd);
  return buf;
}

/* The gateway keeps URLs percent-encoded (MHD_OPTION_UNESCAPE_CALLBACK). */
static size_t keep_raw(void *cls, struct MHD_Connection *c, char *s) { return strlen(s); }

static void test_daemon_raw(static_site *s) {
  struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
                                          NULL, NULL, handler, s, MHD_OPTION_UNESCAPE_CALLBACK,
                                          keep_raw, NULL, MHD_OPTION_END);
  CHECK(d != NULL, "raw daemon");
  if (d == NULL) return;
  unsigned port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
  static const struct {
    const char *request;
    const char *status;
  } cases[] = {
      {"GET /messages/new/londo HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK"},
      {"GET /app.js HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK"},
      {"GET /app.js%00.html HTTP/1.0\r\n\r\n", "HTTP/1.1 404"},
      {"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.0\r\n\r\n", "HTTP/1.1 404"},
      {"GET /img%2flogo.svg HTTP/1.0\r\n\r\n", "HTTP/1.1 404"},
      {"GET /messages/new/lon%64o HTTP/1.0\r\n\r\n", "HTTP/1.1 404"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *ans = http(port, cases[i].request);
    CHECK(ans && strncmp(ans, cases[i].status, strlen(cases[i].status)) == 0, "raw %.40s: %.40s",
          cases[i].request, ans ? ans : "(no answer)");
    free(ans);
  }
  MHD_stop_daemon(d);
}

static void test_daemon(static_site *s) {
  struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
                                          NULL, NULL, handler, s, MHD_OPTION_END);
  CHECK(d != NULL, "daemon");
  if (d == NULL) return;
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  unsigned port = info ? info->port : 0;
  static const struct {
    const char *request;
    const char *must[4];      /* substrings the answer must contain */
    const char *must_not;     /* and one it must not */
  } cases[] = {
      {"GET /messages/new/londo HTTP/1.0\r\n\r\n",
       {"HTTP/1.1 200 OK", "Content-Type: text/html; charset=utf-8", INDEX_HTML, "Content-Security-Policy: default-src 'none'"},
       NULL},
      {"GET /app.js HTTP/1.0\r\n\r\n", {"HTTP/1.1 200 OK", "text/javascript", APP_JS, "nosniff"},
       "Content-Security-Policy"},
      {"HEAD /app.js HTTP/1.0\r\n\r\n", {"HTTP/1.1 200 OK", "Content-Length: 20", "nosniff", NULL}, APP_JS},
      {"GET /config.json HTTP/1.0\r\n\r\n",
       {"HTTP/1.1 200 OK",
        "{\"cognitoEndpoint\":\"http://127.0.0.1:9229\",\"clientId\":\"abc123client\",\"region\":\"us-east-1\"}\n",
        NULL, NULL},
       "evil"},
      {"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.0\r\n\r\n", {"HTTP/1.1 404", NULL, NULL, NULL}, "root:"},
      {"GET /../../etc/passwd HTTP/1.0\r\n\r\n", {"HTTP/1.1 404", NULL, NULL, NULL}, "root:"},
      {"GET /etc/passwd HTTP/1.0\r\n\r\n", {"HTTP/1.1 404", NULL, NULL, NULL}, "root:"},
      {"GET /passwd.txt HTTP/1.0\r\n\r\n", {"HTTP/1.1 404", NULL, NULL, NULL}, "root:"},
      /* MHD decodes %00 and the path ends there: only a file that is itself
       * served can be named, with its own type, never index.html's. */
      {"GET /app.js%00.html HTTP/1.0\r\n\r\n", {"HTTP/1.1 200 OK", "text/javascript", NULL, NULL},
       "Content-Security-Policy"},
      {"GET /passwd.txt%00.js HTTP/1.0\r\n\r\n", {"HTTP/1.1 404", NULL, NULL, NULL}, "root:"},
      {"GET /etc%2fpasswd HTTP/1.0\r\n\r\n", {"HTTP/1.1 404", NULL, NULL, NULL}, "root:"},
      {"GET /index.html?x=1 HTTP/1.0\r\n\r\n", {"HTTP/1.1 200 OK", INDEX_HTML, NULL, NULL}, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *ans = http(port, cases[i].request);
    CHECK(ans != NULL, "request %zu", i);
    if (ans == NULL) continue;
    for (int k = 0; k < 4 && cases[i].must[k]; k++)
      CHECK(strstr(ans, cases[i].must[k]) != NULL, "%.40s: missing %s in\n%s", cases[i].request,
            cases[i].must[k], ans);
    if (cases[i].must_not)
      CHECK(strstr(ans, cases[i].must_not) == NULL, "%.40s: has %s", cases[i].request, cases[i].must_not);
    free(ans);
  }
  /* A 304 over the wire: no body. */
  struct MHD_Response *r = NULL;
  unsigned status;
  static_site_respond(s, "/app.js", NULL, &r, &status);
  char req[256];
  snprintf(req, sizeof req, "GET /app.js HTTP/1.0\r\nIf-None-Match: %s\r\n\r\n",
           MHD_get_response_header(r, "ETag"));
  MHD_destroy_response(r);
  char *ans = http(port, req);
  CHECK(ans && strstr(ans, "HTTP/1.1 304") && !strstr(ans, APP_JS), "304 over the wire: %s", ans ? ans : "");
  free(ans);
  MHD_stop_daemon(d);
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
  test_daemon(s);
  test_daemon_raw(s);
  static_site_free(s);

  /* AWS: endpoint derived from the region; the CSP names its origin. */
  static_site_config cfg = {.root_dir = root, .cognito_client_id = "c", .region = "ca-central-1"};
  s = NULL;
  CHECK(static_site_open(&cfg, &s) == STATIC_SITE_OK, "aws open");
  if (s) {
    struct MHD_Response *r = NULL;
    unsigned status;
    static_site_respond(s, "/", NULL, &r, &status);
    const char *csp = MHD_get_response_header(r, "Content-Security-Policy");
    CHECK(csp && strstr(csp, "connect-src 'self' https://cognito-idp.ca-central-1.amazonaws.com;"),
          "aws CSP %s", csp ? csp : "");
    MHD_destroy_response(r);
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
