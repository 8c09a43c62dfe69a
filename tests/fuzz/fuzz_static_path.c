/* fuzz_static_path.c - the web client's file lookup in the gateway
 * (static_files.c static_site_respond): request paths and If-None-Match.
 *
 * The site is a small folder made at start-up in a temp dir (index.html, a
 * script, a stylesheet, a nested file), plus a file OUTSIDE the root that no
 * path may ever reach. Input: "path\nIf-None-Match" (the header is optional).
 * Invariants: an answered path is a file of the site, /config.json or one
 * of the documented client-side routes; nothing with "..", a NUL, a
 * backslash or a dot segment is ever answered; 200 and 304 are the only
 * statuses, and a 304 only when If-None-Match was sent. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "static_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[64];
static char g_root[96];
static static_site *g_site;

static const char *const files[] = {"index.html", "app.js", "style.css", "img/logo.svg"};

static void put(const char *dir, const char *rel, const char *text) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  FILE *f = fopen(p, "w");
  if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) abort();
}

static void teardown(void) {
  static_site_free(g_site);
  char p[256];
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", g_root, files[i]);
    unlink(p);
  }
  snprintf(p, sizeof p, "%s/img", g_root);
  rmdir(p);
  rmdir(g_root);
  snprintf(p, sizeof p, "%s/secret.txt", g_dir);
  unlink(p);
  rmdir(g_dir);
}

static void setup(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/fuzz_static_XXXXXX");
  if (mkdtemp(g_dir) == NULL) abort();
  snprintf(g_root, sizeof g_root, "%s/web", g_dir);
  char img[128];
  snprintf(img, sizeof img, "%s/img", g_root);
  if (mkdir(g_root, 0700) != 0 || mkdir(img, 0700) != 0) abort();
  put(g_root, "index.html", "<!doctype html><title>Cruddur</title>");
  put(g_root, "app.js", "console.log('x');");
  put(g_root, "style.css", "body{}");
  put(g_root, "img/logo.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>");
  put(g_dir, "secret.txt", "outside the root");
  static_site_config cfg = {.root_dir = g_root,
                            .cognito_endpoint = "http://127.0.0.1:9229",
                            .cognito_client_id = "fuzzclient",
                            .region = "us-east-1"};
  if (static_site_open(&cfg, &g_site) != STATIC_SITE_OK) abort();
  atexit(teardown);
}

static int is_handle(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 32) return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '_') return 0;
  return 1;
}

static int is_uuid(const char *s) {
  if (strlen(s) != 36) return 0;
  for (int i = 0; i < 36; i++) {
    int dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i])) return 0;
  }
  return 1;
}

/* The documented set of answerable paths. */
static int may_answer(const char *p) {
  static const char *const fixed[] = {"/",          "/signin",    "/messages",
                                      "/config.json", "/index.html", "/app.js",
                                      "/style.css",   "/img/logo.svg"};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    if (strcmp(p, fixed[i]) == 0) return 1;
  if (strncmp(p, "/messages/new/", 14) == 0) return is_handle(p + 14);
  if (strncmp(p, "/messages/", 10) == 0) return is_uuid(p + 10);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (g_site == NULL) setup();
  if (size > 4096) return 0;
  char *buf = malloc(size + 1);
  if (buf == NULL) return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  char *inm = strchr(buf, '\n');
  if (inm) *inm++ = '\0';
  static_site_answer a;
  memset(&a, 0, sizeof a);
  int rc = static_site_respond(g_site, buf, inm, &a);
  if (rc == 1) {
    if (a.status != 200 && a.status != 304) abort();
    if (a.etag == NULL || (a.status == 200 && a.content_type == NULL)) abort();
    if (a.status == 304 && (inm == NULL || a.body != NULL || a.len != 0)) abort();
    if (!may_answer(buf)) abort();
    if (strstr(buf, "..") || strchr(buf, '\\') || strstr(buf, "/./") || strstr(buf, "//")) abort();
  } else if (rc == 0) {
    if (a.status != 0 || a.body != NULL) abort();
  } else {
    abort();
  }
  free(buf);
  return 0;
}
