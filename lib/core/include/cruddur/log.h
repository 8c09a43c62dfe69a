/* log.h - one JSON object per line on stderr.
 *
 * Never pass tokens, passwords, e-mail addresses or message text: fields are
 * written as given. Lines are written with one write(2) so concurrent
 * threads do not interleave.
 */
#ifndef CRUDDUR_LOG_H
#define CRUDDUR_LOG_H

#include <stdint.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Sets the process's component name ("users-svc") and minimum level (from
 * LOG_LEVEL=debug|info|warn|error if set). Call once at start. */
void log_init(const char *component);

/* {"ts":..,"level":..,"svc":..,"msg":"<formatted>"} */
void log_msg(log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One line per RPC or HTTP request: method/route, status name, duration in
 * microseconds, request id (may be NULL). */
void log_request(const char *kind, const char *method, const char *status,
                 int64_t duration_us, const char *request_id);

#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
