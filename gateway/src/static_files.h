/* static_files: the web client (web/) served by the gateway at "/".
 *
 * Every file is read into memory once by static_site_open() and looked up by
 * exact relative path at request time: no file is opened while serving, so
 * "..", encoded or not, NUL bytes and symlinks cannot reach outside the root
 * (names that are not plain [A-Za-z0-9._-] segments, dot files, symlinks,
 * non-regular files and unknown extensions are never indexed). Changing web/
 * needs a gateway restart.
 *
 * Caching: every response carries a strong ETag (64-bit FNV-1a of the body)
 * and "Cache-Control: no-cache", so a browser revalidates each time and gets a
 * 304 when nothing changed. Without a build step the files have no hashed
 * names, and this keeps a deploy visible at the next page load.
 *
 * Thread safety: after static_site_open() the site is read-only; any number
 * of connection threads may call static_site_respond() at once.
 */
#ifndef CRUDDUR_GATEWAY_STATIC_FILES_H
#define CRUDDUR_GATEWAY_STATIC_FILES_H

#include <stddef.h>
#include <stdint.h>

/* Bounds on what static_site_open() loads (exceeding one is an error). */
#define STATIC_SITE_MAX_FILES 256
#define STATIC_SITE_MAX_TOTAL_BYTES (4u * 1024u * 1024u)
#define STATIC_SITE_MAX_FILE_BYTES (1024u * 1024u)
#define STATIC_SITE_MAX_DEPTH 8

typedef enum {
  STATIC_SITE_OK = 0,
  STATIC_SITE_EINVAL,   /* a bad argument: empty root, malformed endpoint/client id/region */
  STATIC_SITE_EIO,      /* the root or a file under it could not be read */
  STATIC_SITE_ELIMIT,   /* more than the bounds above */
  STATIC_SITE_ENOINDEX, /* no index.html at the root */
  STATIC_SITE_ENOMEM
} static_site_status;

typedef struct static_site static_site;

typedef struct {
  /* Folder to serve (web/ of the repo); required. */
  const char *root_dir;
  /* Cognito endpoint the BROWSER calls for InitiateAuth, e.g.
   * "http://127.0.0.1:9229" (cognito-local) or NULL/"" for AWS, which derives
   * "https://cognito-idp.<region>.amazonaws.com/". http or https, a host of
   * [A-Za-z0-9.-] or [v6], optional :port, optional path. Its origin goes into
   * the CSP connect-src; the whole URL into /config.json. */
  const char *cognito_endpoint;
  /* App client id (AWS_COGNITO_USER_POOL_CLIENT_ID): 1-128 of [A-Za-z0-9_+]; required. */
  const char *cognito_client_id;
  /* AWS region, 1-32 of [a-z0-9-]; required. */
  const char *region;
} static_site_config;

/* Loads and indexes every servable file under cfg->root_dir and renders
 * /config.json ({"cognitoEndpoint","clientId","region"}) from cfg. The
 * strings in cfg are copied. On success *out is set and the caller frees it
 * with static_site_free(); on error *out is untouched, nothing stays
 * allocated, and the status says why (static_site_strerror()). */
static_site_status static_site_open(const static_site_config *cfg, static_site **out);

/* Frees the site (NULL is fine). No static_site_respond() may be running. */
void static_site_free(static_site *s);

/* Number of files indexed (config.json included), for logs and tests. */
size_t static_site_file_count(const static_site *s);

/* What to answer for a file; every pointer lives as long as the site. */
typedef struct static_site_answer {
  unsigned status;  /* 200, or 304 when If-None-Match matched */
  const char *body; /* the file (NULL and len 0 for a 304) */
  size_t len;
  const char *content_type; /* NULL for a 304 */
  const char *etag;         /* strong ETag, quoted */
  const char *csp;          /* Content-Security-Policy for HTML, else NULL */
} static_site_answer;

/* For a GET or HEAD (call only for those methods; the server drops the body
 * of a HEAD answer itself). `path` is the request's path without the query
 * string, percent-decoded by the caller, and is matched byte for byte (a
 * name with an encoded character simply matches nothing, since no servable
 * name needs escaping). `if_none_match` is the request's If-None-Match
 * header or NULL. The caller adds the headers ETag, Content-Type, CSP from
 * *out and Cache-Control: no-cache, X-Content-Type-Options: nosniff,
 * Referrer-Policy: no-referrer.
 * Returns 1 and fills *out when `path` is a file of the site, /config.json,
 * or one of the client-side routes that answer index.html: "/", "/signin",
 * "/messages", "/messages/new/{handle}" (1-32 of [A-Za-z0-9_]),
 * "/messages/{uuid}" (8-4-4-4-12 hex). Returns 0 and leaves *out untouched
 * when `path` is none of these (the caller routes on or answers 404). */
int static_site_respond(const static_site *s, const char *path, const char *if_none_match,
                        static_site_answer *out);

/* A static English description of a status. */
const char *static_site_strerror(static_site_status st);

#endif
