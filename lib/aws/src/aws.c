/* aws.c - AWS JSON-protocol calls over libcurl with SigV4, retries and a
 * time budget. Credentials come from aws_creds.c, signatures from sigv4.c. */
#define _GNU_SOURCE
#include "cruddur/aws.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aws_internal.h"
#include "cruddur/dbuf.h"
#include "sigv4.h"
#include "cruddur/jarena.h"

/* An answer larger than this is refused (AWS_E_PROTOCOL): DynamoDB's largest
 * answers (1 MB pages, BatchGetItem 16 MB) fit. */
#define AWS_RESP_CAP ((size_t)16 << 20)
/* Response buffers above this are shrunk after a call so one big answer does
 * not pin memory in every worker thread. */
#define AWS_RESP_KEEP ((size_t)256 << 10)
#define AWS_CONNECT_TIMEOUT_MS 3000
/* The canonical request and string to sign of one call: headers and a hash. */
#define AWS_SIGN_SCRATCH_CAP ((size_t)64 << 10)

/* One curl handle and response buffer per (client, thread): kept-alive
 * connections without locks. Linked into the client so aws_client_free can
 * release the handles of threads that are still alive. */
typedef struct aws_thread {
  struct aws_client *client;
  CURL *easy;
  dbuf body; /* the last answer, at most AWS_RESP_CAP bytes */
  char type_hdr[128]; /* x-amzn-ErrorType of the last answer */
  char curl_err[CURL_ERROR_SIZE];
  sigv4_key key; /* this thread's signing key for the client's region/service */
  dbuf scratch;  /* canonical request + string to sign */
  uint64_t rng;
  struct aws_thread *prev, *next;
} aws_thread;

struct aws_client {
  char *service, *region, *endpoint, *url;
  char *host, *path; /* as sent and signed: "name[:port]" (port when not the default) */
  char *target_prefix, *content_type;
  int max_attempts, base_backoff_ms, max_backoff_ms;
  awsi_provider *creds;
  pthread_key_t key;
  pthread_mutex_t mu; /* guards threads */
  aws_thread *threads;
  atomic_uint_fast64_t requests, retries, failures;
};

/* ---- small helpers ------------------------------------------------------ */

int64_t awsi_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t awsi_wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec;
}


static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...) {
  va_list ap;
  char *out = NULL;
  va_start(ap, fmt);
  int n = vasprintf(&out, fmt, ap);
  va_end(ap);
  return n < 0 ? NULL : out;
}

static void copy_trunc(char *dst, size_t cap, const char *src) {
  if (cap == 0) return;
  size_t n = src ? strnlen(src, cap - 1) : 0;
  if (n) memcpy(dst, src, n);
  dst[n] = '\0';
}

void awsi_error_name(const char *type, char *out, size_t cap) {
  const char *s = type ? type : "";
  const char *hash = strrchr(s, '#');
  if (hash) s = hash + 1;
  size_t n = strcspn(s, ":");
  if (n >= cap) n = cap - 1;
  memcpy(out, s, n);
  out[n] = '\0';
}

bool awsi_is_throttle_name(const char *name) {
  static const char *const names[] = {
      "ThrottlingException", "Throttling", "ProvisionedThroughputExceededException",
      "RequestLimitExceeded", "TooManyRequestsException", "ThrottledException",
      "RequestThrottledException", "SlowDown"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(name, names[i]) == 0) return true;
  return false;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

const char *aws_strerror(aws_code code) {
  switch (code) {
  case AWS_OK: return "ok";
  case AWS_E_UNREACHABLE: return "unreachable";
  case AWS_E_TIMEOUT: return "timeout";
  case AWS_E_THROTTLED: return "throttled";
  case AWS_E_CLIENT: return "client error";
  case AWS_E_PROTOCOL: return "protocol error";
  case AWS_E_NOMEM: return "out of memory";
  }
  return "unknown";
}

/* ---- client lifecycle --------------------------------------------------- */

static void thread_free(aws_thread *t) {
  if (t->easy) curl_easy_cleanup(t->easy);
  sigv4_key_wipe(&t->key);
  /* The last canonical request holds the session token. */
  if (t->scratch.buf) explicit_bzero(t->scratch.buf, t->scratch.cap);
  dbuf_free(&t->scratch);
  dbuf_free(&t->body);
  free(t);
}

/* pthread key destructor: the thread exits, its handle goes. */
static void thread_destroy(void *p) {
  aws_thread *t = p;
  aws_client *c = t->client;
  pthread_mutex_lock(&c->mu);
  if (t->prev) t->prev->next = t->next;
  else c->threads = t->next;
  if (t->next) t->next->prev = t->prev;
  pthread_mutex_unlock(&c->mu);
  thread_free(t);
}

/* The Host header value and the path of url, as curl will send them: the
 * port only when it is not the scheme's default. Both malloc'd; 0 ok. */
static int url_host_path(const char *url, char **host, char **path) {
  CURLU *u = curl_url();
  char *h = NULL, *port = NULL, *p = NULL;
  int rc = -1;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PATH, &p, CURLU_URLDECODE) == CURLUE_OK) {
    CURLUcode pc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT);
    *host = pc == CURLUE_OK ? str_printf("%s:%s", h, port) : strdup(h);
    *path = strdup(p);
    rc = *host && *path ? 0 : -1;
    if (rc != 0) {
      free(*host);
      free(*path);
      *host = *path = NULL;
    }
  }
  curl_free(h);
  curl_free(port);
  curl_free(p);
  curl_url_cleanup(u);
  return rc;
}

static aws_client *client_alloc(const aws_client_config *cfg) {
  pthread_once(&curl_once, curl_init_once);
  aws_client *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  if (pthread_key_create(&c->key, thread_destroy) != 0) {
    free(c);
    return NULL;
  }
  pthread_mutex_init(&c->mu, NULL);
  c->service = strdup(cfg->service);
  c->region = strdup(cfg->region);
  c->target_prefix = strdup(cfg->target_prefix);
  c->content_type = strdup(cfg->content_type);
  if (cfg->endpoint && cfg->endpoint[0])
    c->endpoint = strdup(cfg->endpoint);
  else
    c->endpoint = str_printf("https://%s.%s.amazonaws.com", cfg->service, cfg->region);
  if (c->endpoint) {
    size_t n = strlen(c->endpoint);
    while (n > 0 && c->endpoint[n - 1] == '/') c->endpoint[--n] = '\0';
    c->url = str_printf("%s/", c->endpoint);
  }
  if (c->url) url_host_path(c->url, &c->host, &c->path); /* failure: c->host stays NULL */
  c->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 4;
  c->base_backoff_ms = cfg->base_backoff_ms > 0 ? cfg->base_backoff_ms : 25;
  c->max_backoff_ms = cfg->max_backoff_ms > 0 ? cfg->max_backoff_ms : 1000;
  if (!c->service || !c->region || !c->target_prefix || !c->content_type ||
      !c->endpoint || !c->url || !c->host) {
    aws_client_free(c);
    return NULL;
  }
  return c;
}

static bool config_ok(const aws_client_config *cfg) {
  return cfg && cfg->service && cfg->service[0] && cfg->region && cfg->region[0] &&
         cfg->target_prefix && cfg->target_prefix[0] && cfg->content_type &&
         cfg->content_type[0];
}

aws_client *aws_client_new(const aws_client_config *cfg) {
  if (!config_ok(cfg)) return NULL;
  aws_client *c = client_alloc(cfg);
  if (!c) return NULL;
  if (cfg->access_key && cfg->secret_key) {
    c->creds = awsi_provider_static(cfg->access_key, cfg->secret_key,
                                    cfg->session_token, "config");
  } else if (awsi_endpoint_is_local(c->endpoint)) {
    /* dynalite needs an AWS4 Authorization header and X-Amz-Date even though
     * it checks no signature: sign with fixed dummy credentials. */
    c->creds = awsi_provider_static("local", "local", NULL, "local-dummy");
  } else {
    char why[256] = "no credentials configured";
    awsi_provider *p = NULL;
    if (awsi_provider_from_env_chain(c->region, &p, why, sizeof why) == 0 && p) {
      c->creds = p;
    } else {
      fprintf(stderr, "aws: %s: %s for endpoint %s\n", c->service, why, c->endpoint);
      aws_client_free(c);
      return NULL;
    }
  }
  if (!c->creds) {
    aws_client_free(c);
    return NULL;
  }
  return c;
}

void aws_client_free(aws_client *c) {
  if (!c) return;
  /* After key_delete no destructor runs for this client; free every handle
   * here, including those of threads still alive (they must no longer use
   * this client). */
  pthread_key_delete(c->key);
  pthread_mutex_lock(&c->mu);
  aws_thread *t = c->threads;
  c->threads = NULL;
  pthread_mutex_unlock(&c->mu);
  while (t) {
    aws_thread *next = t->next;
    thread_free(t);
    t = next;
  }
  pthread_mutex_destroy(&c->mu);
  awsi_provider_free(c->creds);
  free(c->service);
  free(c->region);
  free(c->endpoint);
  free(c->url);
  free(c->host);
  free(c->path);
  free(c->target_prefix);
  free(c->content_type);
  free(c);
}

const char *aws_client_endpoint(const aws_client *c) { return c->endpoint; }

const char *aws_client_credential_source(const aws_client *c) {
  return awsi_provider_source(c->creds);
}

bool aws_endpoint_is_local(const char *url) { return awsi_endpoint_is_local(url); }

void aws_client_stats(const aws_client *c, aws_stats *out) {
  aws_stats s;
  s.requests = atomic_load(&((aws_client *)c)->requests);
  s.retries = atomic_load(&((aws_client *)c)->retries);
  s.failures = atomic_load(&((aws_client *)c)->failures);
  *out = s;
}

/* ---- from the environment ----------------------------------------------- */

static const char *env_nonempty(const char *name) {
  const char *v = getenv(name);
  return v && v[0] ? v : NULL;
}

aws_client *aws_client_from_env(const char *service, const char *service_env_id,
                                const char *target_prefix, const char *content_type) {
  const char *region = env_nonempty("AWS_REGION");
  if (!region) region = env_nonempty("AWS_DEFAULT_REGION");
  if (!region) {
    fprintf(stderr, "aws: AWS_REGION (or AWS_DEFAULT_REGION) is required\n");
    return NULL;
  }
  const char *endpoint = NULL;
  if (service_env_id && service_env_id[0]) {
    char name[128];
    snprintf(name, sizeof name, "AWS_ENDPOINT_URL_%s", service_env_id);
    endpoint = env_nonempty(name);
  }
  if (!endpoint) endpoint = env_nonempty("AWS_ENDPOINT_URL");
  if (endpoint && strncmp(endpoint, "http://", 7) != 0 &&
      strncmp(endpoint, "https://", 8) != 0) {
    fprintf(stderr, "aws: endpoint for %s must start with http:// or https://\n",
            service ? service : "?");
    return NULL;
  }
  const char *key = env_nonempty("AWS_ACCESS_KEY_ID");
  const char *secret = env_nonempty("AWS_SECRET_ACCESS_KEY");
  if ((key == NULL) != (secret == NULL)) {
    fprintf(stderr, "aws: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together\n");
    return NULL;
  }
  aws_client_config cfg = {.service = service, .target_prefix = target_prefix,
                           .content_type = content_type, .endpoint = endpoint,
                           .region = region};
  if (!config_ok(&cfg)) {
    fprintf(stderr, "aws: client for %s: missing service/target/content type\n",
            service ? service : "?");
    return NULL;
  }
  aws_client *c = client_alloc(&cfg);
  if (!c) {
    fprintf(stderr, "aws: out of memory\n");
    return NULL;
  }
  /* The SDKs' order: env vars, web identity, container, (then for local
   * stand-ins only) fixed dummy credentials. */
  if (key) {
    c->creds = awsi_provider_static(key, secret, env_nonempty("AWS_SESSION_TOKEN"), "env");
  } else {
    char why[256] = "";
    awsi_provider *p = NULL;
    if (awsi_provider_from_env_chain(region, &p, why, sizeof why) != 0) {
      fprintf(stderr, "aws: %s\n", why);
      aws_client_free(c);
      return NULL;
    }
    if (p) {
      c->creds = p;
    } else if (awsi_endpoint_is_local(c->endpoint)) {
      c->creds = awsi_provider_static("local", "local", NULL, "local-dummy");
    } else {
      fprintf(stderr,
              "aws: no AWS credentials for %s at %s (set AWS_ACCESS_KEY_ID/"
              "AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE+AWS_ROLE_ARN or "
              "AWS_CONTAINER_CREDENTIALS_FULL_URI)\n",
              service, c->endpoint);
      aws_client_free(c);
      return NULL;
    }
  }
  if (!c->creds) {
    fprintf(stderr, "aws: out of memory\n");
    aws_client_free(c);
    return NULL;
  }
  return c;
}

/* ---- per-thread handle -------------------------------------------------- */

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
  aws_thread *t = ud;
  size_t n = size * nmemb;
  static const char name[] = "x-amzn-errortype:";
  size_t nl = sizeof name - 1;
  if (n > nl && strncasecmp(data, name, nl) == 0) {
    const char *v = data + nl;
    size_t vn = n - nl;
    while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
    while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' ')) vn--;
    if (vn >= sizeof t->type_hdr) vn = sizeof t->type_hdr - 1;
    memcpy(t->type_hdr, v, vn);
    t->type_hdr[vn] = '\0';
  }
  return n;
}

static aws_thread *thread_get(aws_client *c) {
  aws_thread *t = pthread_getspecific(c->key);
  if (t) return t;
  t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->client = c;
  t->body = (dbuf)DBUF_INIT(AWS_RESP_CAP);
  t->scratch = (dbuf)DBUF_INIT(AWS_SIGN_SCRATCH_CAP);
  t->easy = curl_easy_init();
  if (!t->easy) {
    free(t);
    return NULL;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  t->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)t ^ (uint64_t)ts.tv_sec;
  if (t->rng == 0) t->rng = 0x9E3779B97F4A7C15ull;
  CURL *e = t->easy;
  curl_easy_setopt(e, CURLOPT_URL, c->url);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, dbuf_curl_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t->body);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->curl_err);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)AWS_RESP_CAP);
  if (pthread_setspecific(c->key, t) != 0) {
    thread_free(t);
    return NULL;
  }
  pthread_mutex_lock(&c->mu);
  t->next = c->threads;
  if (c->threads) c->threads->prev = t;
  c->threads = t;
  pthread_mutex_unlock(&c->mu);
  return t;
}

static uint64_t rng_next(aws_thread *t) {
  uint64_t x = t->rng; /* xorshift64: jitter needs spread, not secrecy */
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  t->rng = x;
  return x;
}

/* ---- one call ------------------------------------------------------------ */

static void err_set(aws_error *err, aws_code code, int status, const char *name,
                    const char *msg) {
  if (!err) return;
  err->code = code;
  err->http_status = status;
  copy_trunc(err->name, sizeof err->name, name ? name : "");
  copy_trunc(err->message, sizeof err->message, msg ? msg : "");
}

/* Reads name and message of an error answer (JSON body, else the header). */
static void parse_error_body(aws_thread *t, char *name, size_t ncap, char *msg,
                             size_t mcap) {
  name[0] = msg[0] = '\0';
  cJSON *j = t->body.len ? cJSON_ParseWithLength(t->body.buf, t->body.len) : NULL;
  if (cJSON_IsObject(j)) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "__type");
    if (!cJSON_IsString(ty)) ty = cJSON_GetObjectItemCaseSensitive(j, "code");
    if (cJSON_IsString(ty)) awsi_error_name(ty->valuestring, name, ncap);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    if (!cJSON_IsString(m)) m = cJSON_GetObjectItemCaseSensitive(j, "Message");
    if (cJSON_IsString(m)) copy_trunc(msg, mcap, m->valuestring);
  }
  cJSON_Delete(j);
  if (!name[0] && t->type_hdr[0]) awsi_error_name(t->type_hdr, name, ncap);
}

/* Appends "name: value" (built without snprintf, which costs more than the
 * rest of the header work). -1 on no memory or a line longer than 4 KiB. */
static int slist_add(struct curl_slist **h, const char *name, const char *value) {
  char line[4096];
  size_t nl = strlen(name), vl = strlen(value);
  if (nl + 2 + vl >= sizeof line) return -1;
  memcpy(line, name, nl);
  memcpy(line + nl, ": ", 2);
  memcpy(line + nl + 2, value, vl + 1);
  struct curl_slist *n = curl_slist_append(*h, line);
  explicit_bzero(line, nl + 2 + vl); /* it may hold the session token */
  if (!n) return -1;
  *h = n;
  return 0;
}

/* The headers of one attempt, signed now with cr (sigv4.c): Host,
 * Content-Type, X-Amz-Target, X-Amz-Date, X-Amz-Security-Token when the
 * credentials have one, and Authorization. AWS_OK and *out, AWS_E_NOMEM,
 * or AWS_E_CLIENT when the request cannot be signed (a session token with a
 * control byte, a region or service name too long, an oversize target). */
static aws_code build_headers(aws_client *c, aws_thread *t, const char *op,
                              const awsi_creds *cr, const char *payload_hash,
                              struct curl_slist **out) {
  char target[160], date[17], auth[1536];
  size_t pl = strlen(c->target_prefix), ol = strlen(op); /* valid_op: ol < 64 */
  if (pl + 1 + ol >= sizeof target) return AWS_E_CLIENT;
  memcpy(target, c->target_prefix, pl);
  target[pl] = '.';
  memcpy(target + pl + 1, op, ol + 1);
  sigv4_amz_date(awsi_wall_s(), date);
  sigv4_header hs[] = {{"Host", c->host},
                       {"Content-Type", c->content_type},
                       {"X-Amz-Target", target},
                       {"X-Amz-Date", date},
                       {"X-Amz-Security-Token", cr->token}};
  sigv4_request r = {.method = "POST", .path = c->path, .normalize_path = true,
                     .headers = hs, .nheaders = cr->token ? 5 : 4,
                     .payload_hash = payload_hash};
  if (sigv4_key_get(&t->key, cr->id, cr->secret, date, c->region, c->service) != 0 ||
      sigv4_authorization(&r, &t->key, cr->key, date, &t->scratch, auth, sizeof auth) != 0)
    return AWS_E_CLIENT;
  struct curl_slist *h = NULL;
  int rc = slist_add(&h, "Host", c->host) | slist_add(&h, "Content-Type", c->content_type) |
           slist_add(&h, "X-Amz-Target", target) | slist_add(&h, "X-Amz-Date", date) |
           slist_add(&h, "Authorization", auth);
  if (cr->token) rc |= slist_add(&h, "X-Amz-Security-Token", cr->token);
  if (rc != 0) {
    curl_slist_free_all(h);
    return AWS_E_NOMEM;
  }
  *out = h;
  return AWS_OK;
}

static bool valid_op(const char *op) {
  size_t n = 0;
  for (; op[n]; n++)
    if (!isalnum((unsigned char)op[n])) return false;
  return n > 0 && n < 64;
}

/* aws_call and aws_call_read: a 2xx answer goes to `read` when it is set,
 * else it is parsed into *out. */
static aws_code call(aws_client *c, const char *op, const cJSON *body, int64_t timeout_ms,
                     aws_reader read, void *ud, cJSON **out, aws_error *err) {
  int64_t deadline = awsi_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  aws_code last = AWS_E_TIMEOUT;
  int last_status = 0;
  char name[64] = "", msg[256] = "";
  char *payload = NULL;

  if (!c || !op || !valid_op(op) || (!out && !read)) {
    err_set(err, AWS_E_CLIENT, 0, "InvalidArgument", "bad aws_call arguments");
    if (c) atomic_fetch_add(&c->failures, 1);
    return AWS_E_CLIENT;
  }
  aws_thread *t = thread_get(c);
  payload = body ? cJSON_PrintUnformatted(body) : strdup("{}"); /* cJSON_free takes either */
  if (!t || !payload) {
    cJSON_free(payload);
    err_set(err, AWS_E_NOMEM, 0, "", "out of memory");
    atomic_fetch_add(&c->failures, 1);
    return AWS_E_NOMEM;
  }
  CURL *e = t->easy;
  size_t payload_len = strlen(payload);
  char payload_hash[65];
  if (sigv4_sha256_hex(payload, payload_len, payload_hash) != 0) {
    cJSON_free(payload);
    err_set(err, AWS_E_NOMEM, 0, "", "out of memory");
    atomic_fetch_add(&c->failures, 1);
    return AWS_E_NOMEM;
  }
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, payload);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)payload_len);

  for (int attempt = 0;; attempt++) {
    int64_t remaining = deadline - awsi_mono_ms();
    if (remaining <= 0) {
      /* No time for (another) attempt: a retryable failure that used the
       * whole budget still says what happened, a fresh call says timeout. */
      if (attempt == 0) last = AWS_E_TIMEOUT;
      break;
    }
    awsi_creds *cr = NULL;
    aws_error cerr;
    if (awsi_provider_acquire(c->creds, deadline, &cr, &cerr) != 0) {
      last = cerr.code;
      last_status = 0;
      copy_trunc(name, sizeof name, cerr.name);
      copy_trunc(msg, sizeof msg, cerr.message);
      break;
    }
    struct curl_slist *hdrs = NULL;
    aws_code hrc = build_headers(c, t, op, cr, payload_hash, &hdrs);
    if (hrc != AWS_OK) {
      awsi_creds_release(cr);
      last = hrc;
      if (hrc == AWS_E_CLIENT) {
        copy_trunc(name, sizeof name, "SigningFailed");
        copy_trunc(msg, sizeof msg, "the request cannot be signed");
      } else {
        copy_trunc(msg, sizeof msg, "out of memory");
      }
      break;
    }
    remaining = deadline - awsi_mono_ms();
    if (remaining < 1) remaining = 1;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)remaining);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(remaining < AWS_CONNECT_TIMEOUT_MS ? remaining
                                                               : AWS_CONNECT_TIMEOUT_MS));
    dbuf_reset(&t->body);
    t->type_hdr[0] = '\0';
    t->curl_err[0] = '\0';
    atomic_fetch_add(&c->requests, 1);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    awsi_creds_release(cr);

    bool retry = false;
    name[0] = msg[0] = '\0';
    if (rc == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      last_status = (int)status;
      if (status >= 200 && status < 300 && read) {
        /* The buffer is NUL-terminated (dbuf) and stays ours: the reader
         * copies what it keeps before the next call reuses it. */
        last = read(ud, t->body.len ? t->body.buf : "", t->body.len);
        if (last != AWS_OK)
          snprintf(msg, sizeof msg, "%s",
                   last == AWS_E_NOMEM ? "out of memory" : "answer not readable");
        break;
      }
      if (status >= 200 && status < 300) {
        /* The answer tree lives in this thread's arena (jarena.h): a page
         * of items is a thousand nodes, each a malloc/free pair otherwise. */
        cJSON *j = t->body.len ? jarena_parse(t->body.buf, t->body.len) : cJSON_CreateObject();
        if (cJSON_IsObject(j)) {
          *out = j;
          last = AWS_OK;
        } else {
          cJSON_Delete(j);
          last = AWS_E_PROTOCOL;
          copy_trunc(msg, sizeof msg, "answer is not a JSON object");
        }
        break;
      }
      parse_error_body(t, name, sizeof name, msg, sizeof msg);
      if (status == 429 || (status == 400 && awsi_is_throttle_name(name))) {
        last = AWS_E_THROTTLED;
        retry = true;
      } else if (status >= 500) {
        last = AWS_E_UNREACHABLE;
        retry = true;
      } else if (status >= 400) {
        last = AWS_E_CLIENT;
        break;
      } else {
        last = AWS_E_PROTOCOL;
        snprintf(msg, sizeof msg, "unexpected HTTP status %ld", status);
        break;
      }
    } else if (t->body.toobig || rc == CURLE_FILESIZE_EXCEEDED) {
      last = AWS_E_PROTOCOL;
      last_status = 0;
      snprintf(msg, sizeof msg, "answer larger than %zu bytes", AWS_RESP_CAP);
      break;
    } else if (rc == CURLE_OUT_OF_MEMORY || (rc == CURLE_WRITE_ERROR && !t->body.toobig)) {
      last = AWS_E_NOMEM;
      copy_trunc(msg, sizeof msg, "out of memory");
      break;
    } else {
      last_status = 0;
      copy_trunc(msg, sizeof msg, t->curl_err[0] ? t->curl_err : curl_easy_strerror(rc));
      if (rc == CURLE_OPERATION_TIMEDOUT && awsi_mono_ms() >= deadline - 5) {
        last = AWS_E_TIMEOUT;
        break;
      }
      last = AWS_E_UNREACHABLE;
      retry = true;
    }
    if (!retry || attempt + 1 >= c->max_attempts) break;

    /* Capped exponential backoff with full jitter; never sleep past the
     * budget: then the last failure is the answer. */
    int64_t cap = c->base_backoff_ms;
    for (int i = 0; i < attempt && cap < c->max_backoff_ms; i++) cap *= 2;
    if (cap > c->max_backoff_ms) cap = c->max_backoff_ms;
    int64_t sleep_ms = (int64_t)(rng_next(t) % (uint64_t)(cap + 1));
    if (sleep_ms >= deadline - awsi_mono_ms()) break;
    struct timespec ts = {.tv_sec = sleep_ms / 1000, .tv_nsec = (sleep_ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    atomic_fetch_add(&c->retries, 1);
  }

  curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
  cJSON_free(payload); /* printed by cJSON, maybe into an arena (jarena.h) */
  if (t->body.cap > AWS_RESP_KEEP) dbuf_free(&t->body);
  if (last != AWS_OK) {
    atomic_fetch_add(&c->failures, 1);
    err_set(err, last, last_status, name, msg);
  } else if (err) {
    err_set(err, AWS_OK, last_status, "", "");
  }
  return last;
}

aws_code aws_call(aws_client *c, const char *op, const cJSON *body, int64_t timeout_ms,
                  cJSON **out, aws_error *err) {
  return call(c, op, body, timeout_ms, NULL, NULL, out, err);
}

aws_code aws_call_read(aws_client *c, const char *op, const cJSON *body, int64_t timeout_ms,
                       aws_reader read, void *ud, aws_error *err) {
  return call(c, op, body, timeout_ms, read, ud, NULL, err);
}
