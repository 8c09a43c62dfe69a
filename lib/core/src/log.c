/* log.c - JSON lines on stderr, one write(2) per line. */
#include "cruddur/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

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
 * requires; stops silently at the buffer's end (the line is then cut). */
static size_t json_escape(char *dst, size_t cap, size_t pos, const char *s) {
  static const char hex[] = "0123456789abcdef";
  for (; s != NULL && *s != '\0' && pos + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      dst[pos++] = '\\';
      dst[pos++] = (char)c;
    } else if (c < 0x20) {
      dst[pos++] = '\\';
      dst[pos++] = 'u';
      dst[pos++] = '0';
      dst[pos++] = '0';
      dst[pos++] = hex[c >> 4];
      dst[pos++] = hex[c & 15];
    } else {
      dst[pos++] = (char)c;
    }
  }
  return pos;
}

static size_t put(char *dst, size_t cap, size_t pos, const char *s) {
  size_t n = strlen(s);
  if (pos + n >= cap) n = cap - pos - 1;
  memcpy(dst + pos, s, n);
  return pos + n;
}

static size_t line_start(char *buf, size_t cap, log_level level) {
  char ts[TS_STORED_LEN + 1];
  size_t pos = 0;
  if (ts_format_stored(ts_now_us(), ts) != 0) strcpy(ts, "?");
  pos = put(buf, cap, pos, "{\"ts\":\"");
  pos = put(buf, cap, pos, ts);
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
  char num[32];
  if (LOG_INFO < log_min) return;
  size_t pos = line_start(buf, sizeof buf, LOG_INFO);
  pos = put(buf, sizeof buf, pos, ",\"kind\":\"");
  pos = json_escape(buf, sizeof buf, pos, kind);
  pos = put(buf, sizeof buf, pos, "\",\"method\":\"");
  pos = json_escape(buf, sizeof buf, pos, method);
  pos = put(buf, sizeof buf, pos, "\",\"status\":\"");
  pos = json_escape(buf, sizeof buf, pos, status);
  snprintf(num, sizeof num, "\",\"duration_us\":%lld", (long long)duration_us);
  pos = put(buf, sizeof buf, pos, num);
  if (request_id != NULL && request_id[0] != '\0') {
    pos = put(buf, sizeof buf, pos, ",\"request_id\":\"");
    pos = json_escape(buf, sizeof buf, pos, request_id);
    pos = put(buf, sizeof buf, pos, "\"");
  }
  line_end(buf, sizeof buf, pos);
}
