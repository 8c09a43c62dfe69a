/* aws_internal.h - pieces of lib/aws shared between its files and its tests.
 * Not part of the public contract (cruddur/aws.h). */
#ifndef CRUDDUR_AWS_INTERNAL_H
#define CRUDDUR_AWS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cruddur/aws.h"

/* ---- clocks ------------------------------------------------------------ */
int64_t awsi_mono_ms(void); /* monotonic, for budgets */
int64_t awsi_wall_s(void);  /* Unix seconds, for credential expiry */

/* ---- endpoints --------------------------------------------------------- */
/* True when `url` is a local stand-in (plain http://, or a loopback host):
 * real AWS endpoints are always https. */
bool awsi_endpoint_is_local(const char *url);

/* ---- credentials ------------------------------------------------------- */
/* One immutable set of credentials, shared by reference count so a refresh
 * can replace it while calls still use the old one. */
typedef struct awsi_creds {
  int refs; /* atomic via __atomic builtins */
  uint64_t id; /* unique per set (never reused): a signing key cache keys on it */
  char *key;
  char *secret;
  char *token;       /* NULL when none */
  int64_t expires_s; /* Unix seconds; 0 = never expires */
} awsi_creds;

typedef struct awsi_provider awsi_provider;

/* A provider that always answers the same credentials (strings copied).
 * `source` is a static string for logs ("env", "config", "local-dummy").
 * NULL on out-of-memory. */
awsi_provider *awsi_provider_static(const char *key, const char *secret,
                                    const char *token, const char *source);

/* The SDKs' chain after the static env vars: web identity
 * (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN), then container credentials
 * (AWS_CONTAINER_CREDENTIALS_FULL_URI / _RELATIVE_URI). Returns 0 and sets
 * *out (NULL when neither is configured); -1 when one is configured but
 * unusable, with a reason in errbuf. Nothing is fetched yet. */
int awsi_provider_from_env_chain(const char *region, awsi_provider **out,
                                 char *errbuf, size_t errcap);

void awsi_provider_free(awsi_provider *p);
const char *awsi_provider_source(const awsi_provider *p);

/* Current credentials, refreshed first when they expire within a few
 * minutes (one refresher at a time; others keep using still-valid ones).
 * Returns 0 and a reference in *out (release with awsi_creds_release), or -1
 * with err filled (AWS_E_UNREACHABLE, name "CredentialsUnavailable"). */
int awsi_provider_acquire(awsi_provider *p, int64_t deadline_ms,
                          awsi_creds **out, aws_error *err);
void awsi_creds_release(awsi_creds *c);

/* ---- small parsers (exposed for unit tests) ---------------------------- */
/* Copies the text of the first <tag>..</tag> inside xml[0..len) to out,
 * decoding the five XML entities. 0 ok; -1 not found, malformed or too long. */
int awsi_xml_value(const char *xml, size_t len, const char *tag, char *out,
                   size_t cap);

/* "2026-11-24T17:02:48Z" (fraction and "+00:00" accepted) -> Unix seconds.
 * 0 ok (*out set), -1 malformed. */
int awsi_parse_iso8601(const char *s, int64_t *out);

/* The error name from an AWS "__type" value or x-amzn-ErrorType header:
 * the part after the last '#', cut at the first ':'. */
void awsi_error_name(const char *type, char *out, size_t cap);

/* True for the error names AWS uses for throttling. */
bool awsi_is_throttle_name(const char *name);

#endif
