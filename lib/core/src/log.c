/* log.c - JSON lines on stderr, one write(2) per line. */
#include "cruddur/log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cruddur/jscan.h"
#include "cruddur/ts.h"

#define LOG_LINE_MAX 2048

static const char *log_component = "cruddur";
static log_level log_min = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *component) {
  const char *lvl = getenv("LOG_LEVEL");
  if (component != NULL) log_component = component;
  if (lvl == NULL) return;
  for (int i = LOG_DEBUG; i <= LOG_ERROR; i++) {
    if (strcasecmp(lvl, level_names[i]) == 0) log_min = (log_level)i;
  }
}

/* Appends s as JSON string content (without quotes), escaping what JSON
 * requires; stops silently at the buffer's end (the line is then cut).
 * Runs that need no escape (nearly every line) are found by jscan_plain
 * and copied whole: a request's line is a few hundred of these bytes. */
static size_t json_escape(char *dst, size_t cap, size_t pos, const char *s) {
  static const char hex[] = "0123456789abcdef";
  if (s == NULL) return pos;
  const char *end = s + strlen(s);
  for (;;) {
    size_t n = (size_t)(jscan_plain(s, (size_t)(end - s)) - s);
    if (pos + n + 7 >= cap) n = cap > pos + 7 ? cap - pos - 7 : 0; /* room for one escape */
    memcpy(dst + pos, s, n);
    pos += n;
    s += n;
    if (s == end || pos + 7 >= cap) return pos;
    unsigned char c = (unsigned char)*s;
    dst[pos++] = '\\';
    if (c == '"' || c == '\\') {
      dst[pos++] = (char)c;
    } else {
      memcpy(dst + pos, "u00", 3);
      dst[pos + 3] = hex[c >> 4];
      dst[pos + 4] = hex[c & 15];
      pos += 5;
    }
    s++;
  }
}

/* Appends v in decimal (no snprintf: one of these on every request line). */
static size_t put_i64(char *dst, size_t cap, size_t pos, int64_t v) {
  char tmp[24];
  size_t n = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0) tmp[n++] = '-';
  if (pos + n >= cap) return pos;
  while (n > 0) dst[pos++] = tmp[--n];
  return pos;
}

static size_t put(char *dst, size_t cap, size_t pos, const char *s) {
  size_t n = strlen(s);
  if (pos + n >= cap) n = cap - pos - 1;
  memcpy(dst + pos, s, n);
  return pos + n;
}

/* Appends the time stamp (the stored form). Lines come many a second, so
 * each thread keeps the part up to the second and writes only the
 * microseconds anew: formatting the whole stamp was 370 instructions of
 * every request's line. */
static size_t put_ts(char *buf, size_t cap, size_t pos) {
  static _Thread_local int64_t head_s = INT64_MIN;
  static _Thread_local char head[20]; /* "YYYY-MM-DDTHH:MM:SS." */
  int64_t us = ts_now_us();
  int64_t s = us / 1000000, frac = us % 1000000;
  if (frac < 0) { /* before 1970: the second below */
    s--;
    frac += 1000000;
  }
  if (s != head_s) {
    char ts[TS_STORED_LEN + 1];
    if (ts_format_stored(us, ts) != 0) return put(buf, cap, pos, "?");
    memcpy(head, ts, sizeof head);
    head_s = s;
  }
  if (pos + TS_STORED_LEN >= cap) return pos;
  memcpy(buf + pos, head, sizeof head);
  for (int i = TS_STORED_LEN - 2; i >= (int)sizeof head; i--) {
    buf[pos + i] = (char)('0' + frac % 10);
    frac /= 10;
  }
  buf[pos + TS_STORED_LEN - 1] = 'Z';
  return pos + TS_STORED_LEN;
}

static size_t line_start(char *buf, size_t cap, log_level level) {
  size_t pos = 0;
  pos = put(buf, cap, pos, "{\"ts\":\"");
  pos = put_ts(buf, cap, pos);
  pos = put(buf, cap, pos, "\",\"level\":\"");
  pos = put(buf, cap, pos, level_names[level]);
  pos = put(buf, cap, pos, "\",\"svc\":\"");
  pos = json_escape(buf, cap, pos, log_component);
  return put(buf, cap, pos, "\"");
}

static void line_end(char *buf, size_t cap, size_t pos) {
  if (pos > cap - 3) pos = cap - 3;
  buf[pos++] = '}';
  buf[pos++] = '\n';
  /* A failed log write has nowhere to be reported; ignore it. */
  ssize_t w = write(STDERR_FILENO, buf, pos);
  (void)w;
}

void log_msg(log_level level, const char *fmt, ...) {
  char msg[LOG_LINE_MAX / 2];
  char buf[LOG_LINE_MAX];
  va_list ap;
  if (level < log_min || level > LOG_ERROR) return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t pos = line_start(buf, sizeof buf, level);
  pos = put(buf, sizeof buf, pos, ",\"msg\":\"");
  pos = json_escape(buf, sizeof buf, pos, msg);
  pos = put(buf, sizeof buf, pos, "\"");
  line_end(buf, sizeof buf, pos);
}

void log_request(const char *kind, const char *method, const char *status,
                 int64_t duration_us, const char *request_id) {
  char buf[LOG_LINE_MAX];
  if (LOG_INFO < log_min) return;
  size_t pos = line_start(buf, sizeof buf, LOG_INFO);
  pos = put(buf, sizeof buf, pos, ",\"kind\":\"");
  pos = json_escape(buf, sizeof buf, pos, kind);
  pos = put(buf, sizeof buf, pos, "\",\"method\":\"");
  pos = json_escape(buf, sizeof buf, pos, method);
  pos = put(buf, sizeof buf, pos, "\",\"status\":\"");
  pos = json_escape(buf, sizeof buf, pos, status);
  pos = put(buf, sizeof buf, pos, "\",\"duration_us\":");
  pos = put_i64(buf, sizeof buf, pos, duration_us);
  if (request_id != NULL && request_id[0] != '\0') {
    pos = put(buf, sizeof buf, pos, ",\"request_id\":\"");
    pos = json_escape(buf, sizeof buf, pos, request_id);
    pos = put(buf, sizeof buf, pos, "\"");
  }
  line_end(buf, sizeof buf, pos);
}
