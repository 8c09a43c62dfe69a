/* static_files: serves web/ from memory; see static_files.h for the rules. */
#define _GNU_SOURCE /* O_NOFOLLOW, O_DIRECTORY, O_CLOEXEC, fdopendir, openat */
#include "static_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SS_MAX_REL_PATH 255     /* "/a/b.js" incl. the leading slash */
#define SS_MAX_ENDPOINT 256
#define SS_ETAG_LEN 18          /* '"' + 16 hex + '"' */

typedef struct {
  char *path;                 /* "/app.js": leading slash, owned */
  unsigned char *body;        /* owned, len bytes (may be 0) */
  size_t len;
  const char *content_type;   /* static string */
  int is_html;
  char etag[SS_ETAG_LEN + 1];
} ss_file;

struct static_site {
  ss_file files[STATIC_SITE_MAX_FILES];
  size_t nfiles;
  size_t total_bytes;
  const ss_file *index;       /* "/index.html", answers the client-side routes */
  char *csp;                  /* Content-Security-Policy for HTML, owned */
};

/* ---- small helpers ------------------------------------------------------ */

static const struct {
  const char *ext;
  const char *type;
} ss_types[] = {
  {"html", "text/html; charset=utf-8"},
  {"js", "text/javascript; charset=utf-8"},
  {"mjs", "text/javascript; charset=utf-8"},
  {"css", "text/css; charset=utf-8"},
  {"json", "application/json"},
  {"svg", "image/svg+xml"},
  {"png", "image/png"},
  {"webp", "image/webp"},
  {"ico", "image/x-icon"},
  {"txt", "text/plain; charset=utf-8"},
  {"woff2", "font/woff2"},
  {"webmanifest", "application/manifest+json"},
};

/* The content type for a file name, or NULL when the extension is not served
 * (README.md, editor backups, ... stay private). */
static const char *ss_content_type(const char *name) {
  const char *dot = strrchr(name, '.');
  if (dot == NULL || dot == name) return NULL;
  for (size_t i = 0; i < sizeof ss_types / sizeof ss_types[0]; i++)
    if (strcmp(dot + 1, ss_types[i].ext) == 0) return ss_types[i].type;
  return NULL;
}

/* A name we index: 1-64 of [A-Za-z0-9._-], not starting with '.', so neither
 * "..", dot files nor anything needing escaping can ever be a key. */
static int ss_name_ok(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 64 || name[0] == '.') return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

/* 64-bit FNV-1a: a cache validator, not a security hash. */
static void ss_etag(const unsigned char *p, size_t n, char out[SS_ETAG_LEN + 1]) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  snprintf(out, SS_ETAG_LEN + 1, "\"%016llx\"", (unsigned long long)h);
}

static int ss_cmp_file(const void *a, const void *b) {
  return strcmp(((const ss_file *)a)->path, ((const ss_file *)b)->path);
}

/* Takes ownership of body (freed here on error). */
static static_site_status ss_add(static_site *s, const char *path, unsigned char *body,
                                 size_t len, const char *type) {
  if (s->nfiles >= STATIC_SITE_MAX_FILES || len > STATIC_SITE_MAX_FILE_BYTES ||
      len > STATIC_SITE_MAX_TOTAL_BYTES - s->total_bytes) {
    free(body);
    return STATIC_SITE_ELIMIT;
  }
  char *p = strdup(path);
  if (p == NULL) {
    free(body);
    return STATIC_SITE_ENOMEM;
  }
  ss_file *f = &s->files[s->nfiles++];
  f->path = p;
  f->body = body;
  f->len = len;
  f->content_type = type;
  f->is_html = strncmp(type, "text/html", 9) == 0;
  ss_etag(body, len, f->etag);
  s->total_bytes += len;
  return STATIC_SITE_OK;
}

/* ---- loading ------------------------------------------------------------ */

/* Reads one regular file relative to dfd without following a symlink. */
static static_site_status ss_load_file(static_site *s, int dfd, const char *name,
                                       const char *rel, const char *type) {
  int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ELOOP ? STATIC_SITE_OK : STATIC_SITE_EIO; /* raced to a symlink: skip */
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return STATIC_SITE_EIO;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return STATIC_SITE_OK;
  }
  if (st.st_size < 0 || (uint64_t)st.st_size > STATIC_SITE_MAX_FILE_BYTES) {
    close(fd);
    return STATIC_SITE_ELIMIT;
  }
  size_t want = (size_t)st.st_size;
  unsigned char *buf = malloc(want ? want : 1);
  if (buf == NULL) {
    close(fd);
    return STATIC_SITE_ENOMEM;
  }
  size_t got = 0;
  int failed = 0;
  while (got < want) {
    ssize_t r = read(fd, buf + got, want - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) failed = 1;
    if (r <= 0) break; /* 0: the file shrank while we read; keep what is there */
    got += (size_t)r;
  }
  close(fd);
  if (failed) {
    free(buf);
    return STATIC_SITE_EIO;
  }
  return ss_add(s, rel, buf, got, type);
}

/* Walks the directory open on dfd (consumed: closed here in every case);
 * rel is its path from the root ("" for the root itself). */
static static_site_status ss_walk(static_site *s, int dfd, const char *rel, int depth) {
  DIR *d = fdopendir(dfd);
  if (d == NULL) {
    close(dfd);
    return STATIC_SITE_EIO;
  }
  static_site_status st = STATIC_SITE_OK;
  struct dirent *e;
  errno = 0;
  while (st == STATIC_SITE_OK && (e = readdir(d)) != NULL) {
    const char *name = e->d_name;
    if (!ss_name_ok(name)) continue;
    if (depth == 0 && strcmp(name, "config.json") == 0) continue; /* rendered, not read */
    char child[SS_MAX_REL_PATH + 1];
    int n = snprintf(child, sizeof child, "%s/%s", rel, name);
    if (n < 0 || (size_t)n >= sizeof child) {
      st = STATIC_SITE_ELIMIT;
      break;
    }
    struct stat sb;
    if (fstatat(dirfd(d), name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
      st = STATIC_SITE_EIO;
      break;
    }
    if (S_ISDIR(sb.st_mode)) {
      if (depth + 1 >= STATIC_SITE_MAX_DEPTH) {
        st = STATIC_SITE_ELIMIT;
        break;
      }
      int cfd = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd < 0) {
        if (errno == ELOOP || errno == ENOTDIR) continue; /* swapped for a symlink */
        st = STATIC_SITE_EIO;
        break;
      }
      st = ss_walk(s, cfd, child, depth + 1);
    } else if (S_ISREG(sb.st_mode)) {
      const char *type = ss_content_type(name);
      if (type != NULL) st = ss_load_file(s, dirfd(d), name, child, type);
    }
    /* symlinks, sockets, devices: never served */
    errno = 0;
  }
  closedir(d);
  return st;
}

/* ---- configuration ------------------------------------------------------ */

static int ss_chars_ok(const char *v, size_t max, const char *extra, int lower_only) {
  size_t n = v ? strlen(v) : 0;
  if (n == 0 || n > max) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = v[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             (!lower_only && c >= 'A' && c <= 'Z') || (c != '\0' && strchr(extra, c) != NULL);
    if (!ok) return 0;
  }
  return 1;
}

/* Checks an http(s) URL and copies its origin (scheme://host[:port]) into
 * origin. Only characters that are inert in a CSP header and in JSON pass. */
static int ss_endpoint_origin(const char *url, char *origin, size_t cap) {
  size_t len = strlen(url);
  if (len > SS_MAX_ENDPOINT) return 0;
  const char *p;
  if (strncmp(url, "https://", 8) == 0) p = url + 8;
  else if (strncmp(url, "http://", 7) == 0) p = url + 7;
  else return 0;
  const char *host = p;
  if (*p == '[') {
    p++;
    while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') ||
           *p == ':' || *p == '.')
      p++;
    if (*p != ']' || p == host + 1) return 0;
    p++;
  } else {
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '.' || *p == '-')
      p++;
    if (p == host) return 0;
  }
  if (*p == ':') {
    const char *digits = ++p;
    unsigned long port = 0;
    while (*p >= '0' && *p <= '9' && p - digits < 5) port = port * 10 + (unsigned long)(*p++ - '0');
    if (p == digits || port == 0 || port > 65535) return 0;
  }
  size_t origin_len = (size_t)(p - url);
  if (*p == '/') {
    for (const char *q = p; *q; q++) {
      char c = *q;
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '/' || c == '.' || c == '_' || c == '-' || c == '~'))
        return 0;
    }
  } else if (*p != '\0') {
    return 0;
  }
  if (origin_len + 1 > cap) return 0;
  memcpy(origin, url, origin_len);
  origin[origin_len] = '\0';
  return 1;
}

static static_site_status ss_render_config(static_site *s, const static_site_config *cfg,
                                           char *origin, size_t origin_cap) {
  char endpoint[SS_MAX_ENDPOINT + 64];
  if (cfg->cognito_endpoint != NULL && cfg->cognito_endpoint[0] != '\0') {
    if (strlen(cfg->cognito_endpoint) >= sizeof endpoint) return STATIC_SITE_EINVAL;
    strcpy(endpoint, cfg->cognito_endpoint);
  } else {
    snprintf(endpoint, sizeof endpoint, "https://cognito-idp.%s.amazonaws.com/", cfg->region);
  }
  if (!ss_endpoint_origin(endpoint, origin, origin_cap)) return STATIC_SITE_EINVAL;
  /* Every value was checked to hold no '"', '\\' or control character, so it
   * needs no JSON escaping. */
  char json[SS_MAX_ENDPOINT + 512];
  int n = snprintf(json, sizeof json,
                   "{\"cognitoEndpoint\":\"%s\",\"clientId\":\"%s\",\"region\":\"%s\"}\n",
                   endpoint, cfg->cognito_client_id, cfg->region);
  if (n < 0 || (size_t)n >= sizeof json) return STATIC_SITE_EINVAL;
  unsigned char *body = malloc((size_t)n);
  if (body == NULL) return STATIC_SITE_ENOMEM;
  memcpy(body, json, (size_t)n);
  return ss_add(s, "/config.json", body, (size_t)n, "application/json");
}

/* ---- public ------------------------------------------------------------- */

void static_site_free(static_site *s) {
  if (s == NULL) return;
  for (size_t i = 0; i < s->nfiles; i++) {
    free(s->files[i].path);
    free(s->files[i].body);
  }
  free(s->csp);
  free(s);
}

static_site_status static_site_open(const static_site_config *cfg, static_site **out) {
  if (cfg == NULL || out == NULL || cfg->root_dir == NULL || cfg->root_dir[0] == '\0' ||
      !ss_chars_ok(cfg->cognito_client_id, 128, "_+", 0) ||
      !ss_chars_ok(cfg->region, 32, "-", 1))
    return STATIC_SITE_EINVAL;
  static_site *s = calloc(1, sizeof *s);
  if (s == NULL) return STATIC_SITE_ENOMEM;
  char origin[SS_MAX_ENDPOINT + 64];
  static_site_status st = ss_render_config(s, cfg, origin, sizeof origin);
  if (st == STATIC_SITE_OK) {
    /* The root itself may be a symlink (an operator's choice); nothing under it may. */
    int rfd = open(cfg->root_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    st = rfd < 0 ? STATIC_SITE_EIO : ss_walk(s, rfd, "", 0);
  }
  if (st == STATIC_SITE_OK) {
    qsort(s->files, s->nfiles, sizeof s->files[0], ss_cmp_file);
    ss_file key = {.path = (char *)"/index.html"};
    s->index = bsearch(&key, s->files, s->nfiles, sizeof s->files[0], ss_cmp_file);
    if (s->index == NULL) st = STATIC_SITE_ENOINDEX;
  }
  if (st == STATIC_SITE_OK) {
    /* Only what the page needs: its own scripts and styles, the API on the same
     * origin, and Cognito's InitiateAuth, which the browser calls directly. */
    static const char fmt[] =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' %s; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
    size_t cap = sizeof fmt + strlen(origin);
    s->csp = malloc(cap);
    if (s->csp == NULL) st = STATIC_SITE_ENOMEM;
    else snprintf(s->csp, cap, fmt, origin);
  }
  if (st != STATIC_SITE_OK) {
    static_site_free(s);
    return st;
  }
  *out = s;
  return STATIC_SITE_OK;
}

size_t static_site_file_count(const static_site *s) { return s ? s->nfiles : 0; }

/* "/messages/new/{handle}" and "/messages/{uuid}" and the fixed pages. */
static int ss_is_client_route(const char *path) {
  if (strcmp(path, "/") == 0 || strcmp(path, "/signin") == 0 || strcmp(path, "/messages") == 0)
    return 1;
  if (strncmp(path, "/messages/new/", 14) == 0) {
    const char *h = path + 14;
    size_t n = strlen(h);
    if (n == 0 || n > 32) return 0;
    for (size_t i = 0; i < n; i++) {
      char c = h[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
        return 0;
    }
    return 1;
  }
  if (strncmp(path, "/messages/", 10) == 0) {
    const char *u = path + 10;
    if (strlen(u) != 36) return 0;
    for (size_t i = 0; i < 36; i++) {
      char c = u[i];
      if (i == 8 || i == 13 || i == 18 || i == 23) {
        if (c != '-') return 0;
      } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
        return 0;
      }
    }
    return 1;
  }
  return 0;
}

/* If-None-Match: "*" or a list of [W/]"tag"; weak comparison (RFC 9110 13.1.2). */
static int ss_etag_matches(const char *header, const char *etag) {
  size_t elen = strlen(etag);
  const char *p = header;
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    if (*p == '\0') return 0;
    if (*p == '*') return 1;
    if (p[0] == 'W' && p[1] == '/') p += 2;
    if (*p != '"') return 0;
    const char *end = strchr(p + 1, '"');
    if (end == NULL) return 0;
    if ((size_t)(end - p + 1) == elen && memcmp(p, etag, elen) == 0) return 1;
    p = end + 1;
  }
}

int static_site_respond(const static_site *s, const char *path, const char *if_none_match,
                        static_site_answer *out) {
  if (s == NULL || path == NULL || out == NULL) return 0;
  const ss_file *f = NULL;
  if (ss_is_client_route(path)) {
    f = s->index;
  } else if (path[0] == '/' && strlen(path) <= SS_MAX_REL_PATH) {
    ss_file key = {.path = (char *)path};
    f = bsearch(&key, s->files, s->nfiles, sizeof s->files[0], ss_cmp_file);
  }
  if (f == NULL) return 0;
  static_site_answer a = {200,     (const char *)f->body,     f->len, f->content_type,
                          f->etag, f->is_html ? s->csp : NULL};
  if (if_none_match != NULL && ss_etag_matches(if_none_match, f->etag)) {
    a.status = 304;
    a.body = NULL;
    a.len = 0;
    a.content_type = NULL;
  }
  *out = a;
  return 1;
}

const char *static_site_strerror(static_site_status st) {
  switch (st) {
    case STATIC_SITE_OK: return "ok";
    case STATIC_SITE_EINVAL: return "invalid static site configuration (root, Cognito endpoint, client id or region)";
    case STATIC_SITE_EIO: return "cannot read the static site folder";
    case STATIC_SITE_ELIMIT: return "static site too large (files, bytes, depth or path length)";
    case STATIC_SITE_ENOINDEX: return "static site has no index.html";
    case STATIC_SITE_ENOMEM: return "out of memory";
  }
  return "unknown error";
}
