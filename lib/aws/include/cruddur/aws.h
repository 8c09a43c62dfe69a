/* aws.h - AWS JSON-protocol calls (DynamoDB, Cognito) over libcurl.
 *
 * Requests are signed with our own SigV4 signer (src/sigv4.c; the derived
 * key is cached per credentials, day, region and service, see README.md),
 * including X-Amz-Security-Token when a session token is configured;
 * libcurl is the transport only. Each
 * thread keeps its own kept-alive curl handle per client (connection reuse
 * without locks). Throttling and 5xx answers are retried with capped
 * exponential backoff and full jitter, within the caller's time budget;
 * validation and condition failures are not retried.
 */
#ifndef CRUDDUR_AWS_H
#define CRUDDUR_AWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

typedef struct aws_client aws_client;

typedef enum {
  AWS_OK = 0,
  AWS_E_UNREACHABLE, /* connect/DNS/transport failure, or 5xx past the retries */
  AWS_E_TIMEOUT,     /* the time budget ran out */
  AWS_E_THROTTLED,   /* throttling outlasted the retries */
  AWS_E_CLIENT,      /* a 4xx error answer: see aws_error.name */
  AWS_E_PROTOCOL,    /* an answer we could not parse */
  AWS_E_NOMEM
} aws_code;

typedef struct aws_error {
  aws_code code;
  int http_status;    /* 0 when no answer */
  char name[64];      /* e.g. "ConditionalCheckFailedException" (after '#') */
  char message[256];  /* the service's message, truncated; may be empty */
} aws_error;

typedef struct aws_client_config {
  const char *service;      /* signing name: "dynamodb", "cognito-idp" */
  const char *target_prefix;/* "DynamoDB_20120810", "AWSCognitoIdentityProviderService" */
  const char *content_type; /* "application/x-amz-json-1.0" or "...-1.1" */
  const char *endpoint;     /* "http://127.0.0.1:8000"; NULL means the regional default */
  const char *region;       /* required */
  const char *access_key;   /* NULL with secret_key NULL: for a local endpoint
                             (aws_endpoint_is_local) fixed dummy credentials
                             "local"/"local" (dynalite wants an AWS4
                             Authorization header but checks nothing); for
                             AWS, the web-identity / container chain below */
  const char *secret_key;
  const char *session_token;/* may be NULL */
  int max_attempts;         /* <= 0 means 4 */
  int base_backoff_ms;      /* <= 0 means 25 */
  int max_backoff_ms;       /* <= 0 means 1000 */
} aws_client_config;

/* Creates a client; strings are copied. Returns NULL on out-of-memory, a
 * missing service/region/target/content type, or (one line on stderr) no
 * usable credentials for a non-local endpoint. Free with aws_client_free. */
aws_client *aws_client_new(const aws_client_config *cfg);

/* Frees the client. Per-thread curl handles are freed when their thread
 * exits, or here for all threads: call it only once no thread uses the client
 * any more (threads may still be alive). NULL is a no-op. */
void aws_client_free(aws_client *c);

/* Builds a client for `service` from the environment with the AWS SDK
 * conventions: endpoint from AWS_ENDPOINT_URL_<SERVICE_ID> (e.g.
 * AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER), then
 * AWS_ENDPOINT_URL, else https://<service>.<region>.amazonaws.com; region from
 * AWS_REGION, then AWS_DEFAULT_REGION (required); credentials in the SDKs'
 * order: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN; then
 * web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
 * [+ AWS_ROLE_SESSION_NAME], exchanged with STS AssumeRoleWithWebIdentity at
 * AWS_ENDPOINT_URL_STS or https://sts.<region>.amazonaws.com); then container
 * credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI or _RELATIVE_URI, with
 * AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE / AWS_CONTAINER_AUTHORIZATION_TOKEN);
 * then, for a local endpoint only, dummy credentials "local"/"local".
 * Fetched credentials are refreshed 5 minutes before they expire; they are
 * fetched on the first call, not here. Credentials are never logged.
 * `service_env_id` is the SDK's env suffix ("DYNAMODB",
 * "COGNITO_IDENTITY_PROVIDER"). Returns NULL and writes one line to stderr
 * when the environment is unusable. */
aws_client *aws_client_from_env(const char *service, const char *service_env_id,
                                const char *target_prefix,
                                const char *content_type);

/* The endpoint in use (for logs and the "local endpoint" check). */
const char *aws_client_endpoint(const aws_client *c);

/* Where the credentials come from, for start-up logs: "env", "config",
 * "web-identity", "container" or "local-dummy". Static string. */
const char *aws_client_credential_source(const aws_client *c);

/* True when `url` is a local stand-in rather than AWS: a plain http:// URL
 * (AWS endpoints are always https) or a loopback host. */
bool aws_endpoint_is_local(const char *url);

/* Calls operation `op` (e.g. "Query") with the JSON `body` (not consumed;
 * NULL sends {}), within timeout_ms in all, retries included (transport
 * failures, 5xx, 429 and throttling names are retried; other 4xx are not).
 * Answers above 16 MiB are AWS_E_PROTOCOL. Failing to get credentials is
 * AWS_E_UNREACHABLE with name "CredentialsUnavailable". On AWS_OK, *out is
 * the parsed answer (a JSON object), owned by the caller: cJSON_Delete it on
 * the calling thread (it lives in that thread's arena, jarena.h). On
 * error *out is untouched and `err` (may be NULL) says why. Thread-safe. */
aws_code aws_call(aws_client *c, const char *op, const cJSON *body,
                  int64_t timeout_ms, cJSON **out, aws_error *err);

/* Reads a 2xx answer's bytes (text[len] is NUL; len may be 0) on the
 * calling thread; they are valid only during the call. Returns AWS_OK, or
 * AWS_E_PROTOCOL / AWS_E_NOMEM, which aws_call_read then returns. */
typedef aws_code (*aws_reader)(void *ud, const char *text, size_t len);

/* aws_call for callers that read the answer themselves (a streaming reader
 * instead of a cJSON tree): `read` is called once, with the successful
 * answer; retries, errors and the time budget are as for aws_call. */
aws_code aws_call_read(aws_client *c, const char *op, const cJSON *body,
                       int64_t timeout_ms, aws_reader read, void *ud, aws_error *err);

/* Counters since start, for metrics and benchmarks. */
typedef struct aws_stats {
  uint64_t requests;   /* HTTP requests sent, retries included */
  uint64_t retries;
  uint64_t failures;   /* calls that returned an error */
} aws_stats;
void aws_client_stats(const aws_client *c, aws_stats *out);

/* "ok", "unreachable", ... */
const char *aws_strerror(aws_code code);

#endif
