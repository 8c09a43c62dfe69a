/* aws_creds.c - where the AWS credentials come from, and their refresh.
 *
 * Kinds: static (env vars, config, local dummy), web identity (IRSA on EKS:
 * a projected token file exchanged with STS AssumeRoleWithWebIdentity) and
 * container credentials (EKS Pod Identity / ECS: an HTTP endpoint answering
 * JSON). Fetched credentials are refreshed AWSI_REFRESH_BEFORE_S before they
 * expire by one thread at a time; the others keep using the current set while
 * it is still valid. Nothing here ever logs a key, secret or token.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "aws_internal.h"
#include "cruddur/dbuf.h"
#include "cruddur/log.h"

#define AWSI_REFRESH_BEFORE_S 300 /* refresh 5 minutes before expiry */
#define AWSI_MIN_VALID_S 10       /* below this a set is treated as expired */
#define AWSI_RETRY_AFTER_MS 1000  /* after a failed fetch, wait before the next */
#define AWSI_FETCH_TIMEOUT_MS 5000
#define AWSI_FETCH_CAP ((size_t)64 << 10)
#define AWSI_TOKEN_FILE_CAP ((size_t)16 << 10)
#define AWSI_FIELD_CAP 4096 /* one key, secret, session token or date */

enum { KIND_STATIC, KIND_WEB_IDENTITY, KIND_CONTAINER };

struct awsi_provider {
  int kind;
  const char *source;
  pthread_mutex_t mu;         /* guards cur and next_try_ms */
  pthread_mutex_t refresh_mu; /* one refresher at a time */
  awsi_creds *cur;
  int64_t next_try_ms;
  /* web identity */
  char *token_file, *role_arn, *session_name, *sts_url;
  /* container */
  char *uri, *auth_file, *auth_token;
};

/* ---- credentials objects ------------------------------------------------ */

static void creds_free(awsi_creds *c) {
  if (!c) return;
  /* Wipe secrets before handing memory back. */
  if (c->secret) explicit_bzero(c->secret, strlen(c->secret));
  if (c->token) explicit_bzero(c->token, strlen(c->token));
  free(c->key);
  free(c->secret);
  free(c->token);
  free(c);
}

static awsi_creds *creds_new(const char *key, const char *secret, const char *token,
                             int64_t expires_s) {
  static uint64_t next_id; /* atomic via __atomic builtins */
  awsi_creds *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->refs = 1;
  c->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
  c->key = strdup(key);
  c->secret = strdup(secret);
  c->token = token && token[0] ? strdup(token) : NULL;
  c->expires_s = expires_s;
  if (!c->key || !c->secret || (token && token[0] && !c->token)) {
    creds_free(c);
    return NULL;
  }
  return c;
}

static void creds_retain(awsi_creds *c) { __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED); }

void awsi_creds_release(awsi_creds *c) {
  if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) creds_free(c);
}

/* ---- providers ----------------------------------------------------------- */

static awsi_provider *provider_alloc(int kind, const char *source) {
  awsi_provider *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->kind = kind;
  p->source = source;
  pthread_mutex_init(&p->mu, NULL);
  pthread_mutex_init(&p->refresh_mu, NULL);
  return p;
}

awsi_provider *awsi_provider_static(const char *key, const char *secret, const char *token,
                                    const char *source) {
  awsi_provider *p = provider_alloc(KIND_STATIC, source);
  if (!p) return NULL;
  p->cur = creds_new(key, secret, token, 0);
  if (!p->cur) {
    awsi_provider_free(p);
    return NULL;
  }
  return p;
}

void awsi_provider_free(awsi_provider *p) {
  if (!p) return;
  awsi_creds_release(p->cur);
  pthread_mutex_destroy(&p->mu);
  pthread_mutex_destroy(&p->refresh_mu);
  free(p->token_file);
  free(p->role_arn);
  free(p->session_name);
  free(p->sts_url);
  free(p->uri);
  free(p->auth_file);
  if (p->auth_token) explicit_bzero(p->auth_token, strlen(p->auth_token));
  free(p->auth_token);
  free(p);
}

const char *awsi_provider_source(const awsi_provider *p) { return p ? p->source : "none"; }

static const char *env_nonempty(const char *name) {
  const char *v = getenv(name);
  return v && v[0] ? v : NULL;
}

/* Hosts the SDKs accept for plain-http container credentials: loopback, the
 * ECS agent and the EKS Pod Identity agent. */
static bool container_host_ok(const char *url) {
  if (strncmp(url, "https://", 8) == 0) return true;
  if (strncmp(url, "http://", 7) != 0) return false;
  CURLU *u = curl_url();
  char *host = NULL;
  bool ok = false;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
    ok = strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
         strcmp(host, "[::1]") == 0 || strcmp(host, "169.254.170.2") == 0 ||
         strcmp(host, "169.254.170.23") == 0 || strcasecmp(host, "[fd00:ec2::23]") == 0;
  }
  curl_free(host);
  curl_url_cleanup(u);
  return ok;
}

bool awsi_endpoint_is_local(const char *url) {
  if (!url) return false;
  if (strncmp(url, "http://", 7) == 0) return true;
  CURLU *u = curl_url();
  char *host = NULL;
  bool local = false;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
    local = strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
            strcmp(host, "[::1]") == 0;
  }
  curl_free(host);
  curl_url_cleanup(u);
  return local;
}

int awsi_provider_from_env_chain(const char *region, awsi_provider **out, char *errbuf,
                                 size_t errcap) {
  const char *tf = env_nonempty("AWS_WEB_IDENTITY_TOKEN_FILE");
  const char *arn = env_nonempty("AWS_ROLE_ARN");
  if (tf || arn) {
    if (!tf || !arn) {
      snprintf(errbuf, errcap,
               "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN must be set together");
      return -1;
    }
    awsi_provider *p = provider_alloc(KIND_WEB_IDENTITY, "web-identity");
    if (!p) goto nomem;
    const char *sts = env_nonempty("AWS_ENDPOINT_URL_STS");
    const char *sn = env_nonempty("AWS_ROLE_SESSION_NAME");
    char def_sn[64];
    snprintf(def_sn, sizeof def_sn, "cruddur-%lld", (long long)awsi_wall_s());
    p->token_file = strdup(tf);
    p->role_arn = strdup(arn);
    p->session_name = strdup(sn ? sn : def_sn);
    if (sts) {
      p->sts_url = strdup(sts);
    } else if (asprintf(&p->sts_url, "https://sts.%s.amazonaws.com", region) < 0) {
      p->sts_url = NULL;
    }
    if (!p->token_file || !p->role_arn || !p->session_name || !p->sts_url) {
      awsi_provider_free(p);
      goto nomem;
    }
    *out = p;
    return 0;
  }
  const char *full = env_nonempty("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  const char *rel = env_nonempty("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  if (full || rel) {
    awsi_provider *p = provider_alloc(KIND_CONTAINER, "container");
    if (!p) goto nomem;
    if (rel) { /* the SDKs prefer the ECS relative form when both are set */
      if (asprintf(&p->uri, "http://169.254.170.2%s%s", rel[0] == '/' ? "" : "/", rel) < 0)
        p->uri = NULL;
    } else {
      p->uri = strdup(full);
    }
    const char *af = env_nonempty("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *at = env_nonempty("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (af) p->auth_file = strdup(af);
    else if (at) p->auth_token = strdup(at);
    if (!p->uri || (af && !p->auth_file) || (!af && at && !p->auth_token)) {
      awsi_provider_free(p);
      goto nomem;
    }
    if (!container_host_ok(p->uri)) {
      snprintf(errbuf, errcap,
               "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https or a loopback / "
               "ECS / EKS agent address");
      awsi_provider_free(p);
      return -1;
    }
    *out = p;
    return 0;
  }
  *out = NULL;
  return 0;
nomem:
  snprintf(errbuf, errcap, "out of memory");
  return -1;
}

/* ---- small parsers ------------------------------------------------------- */

int awsi_xml_value(const char *xml, size_t len, const char *tag, char *out, size_t cap) {
  char open[64], close[64];
  int on = snprintf(open, sizeof open, "<%s>", tag);
  int cn = snprintf(close, sizeof close, "</%s>", tag);
  if (on <= 0 || cn <= 0 || (size_t)cn >= sizeof close || cap == 0) return -1;
  const char *s = memmem(xml, len, open, (size_t)on);
  if (!s) return -1;
  s += on;
  const char *e = memmem(s, len - (size_t)(s - xml), close, (size_t)cn);
  if (!e) return -1;
  size_t o = 0;
  for (const char *p = s; p < e;) {
    char ch = *p;
    if (ch == '<') return -1; /* nested markup: not a plain value */
    if (ch == '&') {
      static const struct { const char *ent; char ch; } ents[] = {
          {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
      size_t k = 0, nents = sizeof ents / sizeof ents[0];
      for (; k < nents; k++) {
        size_t el = strlen(ents[k].ent);
        if ((size_t)(e - p) >= el && memcmp(p, ents[k].ent, el) == 0) {
          ch = ents[k].ch;
          p += el;
          break;
        }
      }
      if (k == nents) return -1;
    } else {
      p++;
    }
    if (o + 1 >= cap) return -1;
    out[o++] = ch;
  }
  /* Trim surrounding whitespace (pretty-printed XML). */
  size_t b = 0;
  while (b < o && isspace((unsigned char)out[b])) b++;
  while (o > b && isspace((unsigned char)out[o - 1])) o--;
  memmove(out, out + b, o - b);
  out[o - b] = '\0';
  return 0;
}

/* Reads exactly n decimal digits (no sign, no space) into *v. */
static int read_digits(const char *s, int n, int *v) {
  int x = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i])) return -1;
    x = x * 10 + (s[i] - '0');
  }
  *v = x;
  return 0;
}

/* Strict: every field at its place, the day checked against the month,
 * nothing for timegm() to normalise into another instant (an expiry read
 * wrongly would keep stale credentials or refresh in a loop). */
int awsi_parse_iso8601(const char *s, int64_t *out) {
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int y, mo, d, h, mi, sec;
  if (!s || strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
      s[13] != ':' || s[16] != ':' || read_digits(s, 4, &y) || read_digits(s + 5, 2, &mo) ||
      read_digits(s + 8, 2, &d) || read_digits(s + 11, 2, &h) || read_digits(s + 14, 2, &mi) ||
      read_digits(s + 17, 2, &sec))
    return -1;
  const char *r = s + 19;
  if (*r == '.') {
    r++;
    if (!isdigit((unsigned char)*r)) return -1;
    while (isdigit((unsigned char)*r)) r++;
  }
  if (!(strcmp(r, "Z") == 0 || strcmp(r, "+00:00") == 0 || strcmp(r, "z") == 0)) return -1;
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
      sec > 59)
    return -1;
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo == 2 && d == 29 && !leap) return -1;
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                  .tm_hour = h, .tm_min = mi, .tm_sec = sec};
  *out = (int64_t)timegm(&tm);
  return 0;
}

/* ---- fetching ------------------------------------------------------------ */

/* One HTTP exchange with a fresh handle (refreshes are rare). `post` NULL
 * means GET. Returns the status (0 on transport failure, reason in why). */
static long http_fetch(const char *url, const char *post, struct curl_slist *hdrs,
                       int64_t timeout_ms, dbuf *b, char *why, size_t whycap) {
  CURL *e = curl_easy_init();
  if (!e) {
    snprintf(why, whycap, "out of memory");
    return 0;
  }
  char cerr[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, dbuf_curl_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)AWSI_FETCH_CAP);
  if (hdrs) curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
  if (post) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, post);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(post));
  }
  long status = 0;
  CURLcode rc = curl_easy_perform(e);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  } else {
    snprintf(why, whycap, "%s", b->toobig ? "answer too large"
                                            : (cerr[0] ? cerr : curl_easy_strerror(rc)));
  }
  curl_easy_cleanup(e);
  return status;
}

/* Reads a small secret file (token), trimmed. Caller frees (and wipes). */
static char *read_small_file(const char *path, char *why, size_t whycap) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(why, whycap, "cannot read token file %s", path);
    return NULL;
  }
  char *buf = malloc(AWSI_TOKEN_FILE_CAP + 1);
  size_t n = buf ? fread(buf, 1, AWSI_TOKEN_FILE_CAP + 1, f) : 0;
  fclose(f);
  if (!buf) {
    snprintf(why, whycap, "out of memory");
    return NULL;
  }
  if (n > AWSI_TOKEN_FILE_CAP) {
    free(buf);
    snprintf(why, whycap, "token file %s is too large", path);
    return NULL;
  }
  while (n > 0 && isspace((unsigned char)buf[n - 1])) n--;
  buf[n] = '\0';
  if (n == 0) {
    free(buf);
    snprintf(why, whycap, "token file %s is empty", path);
    return NULL;
  }
  return buf;
}

static void wipe_free(char *s) {
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

static awsi_creds *fetch_web_identity(awsi_provider *p, int64_t timeout_ms, char *why,
                                      size_t whycap) {
  awsi_creds *c = NULL;
  char *tok = read_small_file(p->token_file, why, whycap);
  if (!tok) return NULL;
  char *e_arn = curl_easy_escape(NULL, p->role_arn, 0);
  char *e_sn = curl_easy_escape(NULL, p->session_name, 0);
  char *e_tok = curl_easy_escape(NULL, tok, 0);
  char *body = NULL;
  if (e_arn && e_sn && e_tok &&
      asprintf(&body,
               "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=%s"
               "&RoleSessionName=%s&WebIdentityToken=%s",
               e_arn, e_sn, e_tok) < 0)
    body = NULL;
  curl_free(e_arn);
  curl_free(e_sn);
  if (e_tok) {
    explicit_bzero(e_tok, strlen(e_tok));
    curl_free(e_tok);
  }
  wipe_free(tok);
  if (!body) {
    snprintf(why, whycap, "out of memory");
    return NULL;
  }
  struct curl_slist *h =
      curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
  struct curl_slist *h2 = h ? curl_slist_append(h, "Accept: application/xml") : NULL;
  if (h2) h = h2;
  dbuf b = DBUF_INIT(AWSI_FETCH_CAP);
  char url[1024];
  snprintf(url, sizeof url, "%s/", p->sts_url);
  size_t ul = strlen(url);
  if (ul >= 2 && url[ul - 2] == '/') url[ul - 1] = '\0'; /* no double slash */
  long status = h ? http_fetch(url, body, h, timeout_ms, &b, why, whycap) : 0;
  if (!h) snprintf(why, whycap, "out of memory");
  curl_slist_free_all(h);
  wipe_free(body);

  char *key = malloc(AWSI_FIELD_CAP), *secret = malloc(AWSI_FIELD_CAP),
       *token = malloc(AWSI_FIELD_CAP), exp[64];
  if (status == 0 || !key || !secret || !token) {
    if (status != 0) snprintf(why, whycap, "out of memory");
  } else if (status != 200) {
    char code[128] = "";
    if (b.buf) awsi_xml_value(b.buf, b.len, "Code", code, sizeof code);
    snprintf(why, whycap, "STS answered HTTP %ld %s", status, code);
  } else {
    /* Look only inside <Credentials>..</Credentials>. */
    const char *s = memmem(b.buf, b.len, "<Credentials>", 13);
    const char *e = s ? memmem(s, b.len - (size_t)(s - b.buf), "</Credentials>", 14) : NULL;
    int64_t exp_s = 0;
    if (!s || !e) {
      snprintf(why, whycap, "STS answer has no Credentials");
    } else {
      size_t n = (size_t)(e - s);
      if (awsi_xml_value(s, n, "AccessKeyId", key, AWSI_FIELD_CAP) != 0 ||
          awsi_xml_value(s, n, "SecretAccessKey", secret, AWSI_FIELD_CAP) != 0 ||
          awsi_xml_value(s, n, "SessionToken", token, AWSI_FIELD_CAP) != 0 ||
          awsi_xml_value(s, n, "Expiration", exp, sizeof exp) != 0 ||
          awsi_parse_iso8601(exp, &exp_s) != 0 || !key[0] || !secret[0] || !token[0]) {
        snprintf(why, whycap, "STS answer is malformed");
      } else {
        c = creds_new(key, secret, token, exp_s);
        if (!c) snprintf(why, whycap, "out of memory");
      }
    }
  }
  if (secret) explicit_bzero(secret, AWSI_FIELD_CAP);
  if (token) explicit_bzero(token, AWSI_FIELD_CAP);
  free(key);
  free(secret);
  free(token);
  if (b.buf) explicit_bzero(b.buf, b.len);
  dbuf_free(&b);
  return c;
}

static awsi_creds *fetch_container(awsi_provider *p, int64_t timeout_ms, char *why,
                                   size_t whycap) {
  awsi_creds *c = NULL;
  char *auth = NULL;
  if (p->auth_file) {
    /* Re-read each time: the EKS agent's token file is rotated. */
    auth = read_small_file(p->auth_file, why, whycap);
    if (!auth) return NULL;
  } else if (p->auth_token) {
    auth = strdup(p->auth_token);
    if (!auth) {
      snprintf(why, whycap, "out of memory");
      return NULL;
    }
  }
  struct curl_slist *h = NULL;
  if (auth) {
    if (strpbrk(auth, "\r\n")) { /* would inject headers */
      wipe_free(auth);
      snprintf(why, whycap, "container authorization token has a line break");
      return NULL;
    }
    char *hv = NULL;
    if (asprintf(&hv, "Authorization: %s", auth) < 0) hv = NULL;
    wipe_free(auth);
    h = hv ? curl_slist_append(NULL, hv) : NULL;
    wipe_free(hv);
    if (!h) {
      snprintf(why, whycap, "out of memory");
      return NULL;
    }
  }
  dbuf b = DBUF_INIT(AWSI_FETCH_CAP);
  long status = http_fetch(p->uri, NULL, h, timeout_ms, &b, why, whycap);
  if (h) {
    explicit_bzero(h->data, strlen(h->data));
    curl_slist_free_all(h);
  }
  if (status == 0) {
    /* why is set */
  } else if (status != 200) {
    snprintf(why, whycap, "container credentials endpoint answered HTTP %ld", status);
  } else {
    cJSON *j = cJSON_ParseWithLength(b.buf, b.len);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "AccessKeyId");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "Token");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, "Expiration");
    int64_t exp_s = 0;
    if (!cJSON_IsString(k) || !cJSON_IsString(s) || !k->valuestring[0] ||
        !s->valuestring[0] || (t && !cJSON_IsString(t)) ||
        (x && (!cJSON_IsString(x) || awsi_parse_iso8601(x->valuestring, &exp_s) != 0))) {
      snprintf(why, whycap, "container credentials answer is malformed");
    } else {
      c = creds_new(k->valuestring, s->valuestring, t ? t->valuestring : NULL, exp_s);
      if (!c) snprintf(why, whycap, "out of memory");
    }
    if (s && cJSON_IsString(s)) explicit_bzero(s->valuestring, strlen(s->valuestring));
    if (t && cJSON_IsString(t)) explicit_bzero(t->valuestring, strlen(t->valuestring));
    cJSON_Delete(j);
  }
  if (b.buf) explicit_bzero(b.buf, b.len);
  dbuf_free(&b);
  return c;
}

/* ---- acquire / refresh ----------------------------------------------------- */

static bool fresh(const awsi_creds *c, int64_t now_s) {
  return c && (c->expires_s == 0 || c->expires_s - now_s > AWSI_REFRESH_BEFORE_S);
}

static bool usable(const awsi_creds *c, int64_t now_s) {
  return c && (c->expires_s == 0 || c->expires_s - now_s > AWSI_MIN_VALID_S);
}

static awsi_creds *take_current(awsi_provider *p) {
  pthread_mutex_lock(&p->mu);
  awsi_creds *c = p->cur;
  if (c) creds_retain(c);
  pthread_mutex_unlock(&p->mu);
  return c;
}

static int fail(aws_error *err, const char *why) {
  err->code = AWS_E_UNREACHABLE;
  err->http_status = 0;
  snprintf(err->name, sizeof err->name, "CredentialsUnavailable");
  snprintf(err->message, sizeof err->message, "%s", why);
  return -1;
}

int awsi_provider_acquire(awsi_provider *p, int64_t deadline_ms, awsi_creds **out,
                          aws_error *err) {
  int64_t now_s = awsi_wall_s();
  awsi_creds *c = take_current(p);
  if (p->kind == KIND_STATIC || fresh(c, now_s)) {
    if (!c) return fail(err, "no credentials");
    *out = c;
    return 0;
  }
  /* Needs a refresh. With still-valid credentials nobody waits: whoever gets
   * the refresh lock fetches, the others carry on with the current set. */
  if (usable(c, now_s)) {
    if (pthread_mutex_trylock(&p->refresh_mu) != 0) {
      *out = c;
      return 0;
    }
  } else {
    pthread_mutex_lock(&p->refresh_mu);
  }
  /* Another thread may have refreshed while we waited. */
  awsi_creds *now_cur = take_current(p);
  if (fresh(now_cur, awsi_wall_s())) {
    pthread_mutex_unlock(&p->refresh_mu);
    awsi_creds_release(c);
    *out = now_cur;
    return 0;
  }
  awsi_creds_release(now_cur);

  pthread_mutex_lock(&p->mu);
  bool may_try = awsi_mono_ms() >= p->next_try_ms;
  pthread_mutex_unlock(&p->mu);
  char why[200] = "credential fetch failed recently";
  awsi_creds *n = NULL;
  if (may_try) {
    int64_t budget = deadline_ms - awsi_mono_ms();
    if (budget > AWSI_FETCH_TIMEOUT_MS) budget = AWSI_FETCH_TIMEOUT_MS;
    if (budget < 1) budget = 1;
    n = p->kind == KIND_WEB_IDENTITY ? fetch_web_identity(p, budget, why, sizeof why)
                                     : fetch_container(p, budget, why, sizeof why);
  }
  pthread_mutex_lock(&p->mu);
  awsi_creds *old = NULL;
  if (n) {
    old = p->cur;
    p->cur = n; /* the provider's reference */
    creds_retain(n);
    p->next_try_ms = 0;
  } else if (may_try) {
    p->next_try_ms = awsi_mono_ms() + AWSI_RETRY_AFTER_MS;
  }
  pthread_mutex_unlock(&p->mu);
  pthread_mutex_unlock(&p->refresh_mu);
  awsi_creds_release(old);

  if (n) {
    awsi_creds_release(c);
    *out = n;
    return 0;
  }
  if (may_try) log_warn("aws: credential refresh (%s) failed: %s", p->source, why);
  if (usable(c, awsi_wall_s())) {
    *out = c;
    return 0;
  }
  awsi_creds_release(c);
  return fail(err, why);
}
