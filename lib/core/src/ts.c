/* ts.c - microsecond UTC timestamps in one fixed-width text form.
 *
 * Civil-date conversion uses the days-from-civil algorithm (proleptic
 * Gregorian calendar) so it needs neither the C library's time zone state
 * nor gmtime_r's 32-bit quirks.
 */
#include "cruddur/ts.h"

#include <string.h>
#include <time.h>

#define US_PER_S INT64_C(1000000)
#define S_PER_DAY INT64_C(86400)
/* 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z in seconds. */
#define TS_MIN_S INT64_C(-62135596800)
#define TS_MAX_S INT64_C(253402300800)

int64_t ts_now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * US_PER_S + t.tv_nsec / 1000;
}

int64_t ts_mono_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * US_PER_S + t.tv_nsec / 1000;
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Days since 1970-01-01 -> y/m/d. */
static void civil_from_days(int64_t z, int *y, int *m, int *d) {
  z += 719468;
  int64_t era = floor_div(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int64_t days_from_civil(int y, int m, int d) {
  y -= m <= 2;
  int64_t era = floor_div(y, 400);
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* Writes the low `n` decimal digits of v, zero-padded. */
static void put_digits(char *out, unsigned v, int n) {
  for (int i = n - 1; i >= 0; i--) {
    out[i] = (char)('0' + v % 10);
    v /= 10;
  }
}

/* Writes the common 26-character prefix "YYYY-MM-DDTHH:MM:SS.ffffff". */
static int format_prefix(int64_t us, char *out) {
  int64_t s = floor_div(us, US_PER_S);
  int64_t frac = us - s * US_PER_S;
  if (s < TS_MIN_S || s >= TS_MAX_S) return -1;
  int64_t days = floor_div(s, S_PER_DAY);
  int64_t sod = s - days * S_PER_DAY;
  int y, m, d;
  civil_from_days(days, &y, &m, &d);
  /* Every field is range-checked above, so the widths are exact. Written
   * digit by digit: snprintf was a tenth of the gateway's instructions per
   * message list (20 timestamps a page). */
  put_digits(out, (unsigned)y, 4);
  out[4] = '-';
  put_digits(out + 5, (unsigned)m, 2);
  out[7] = '-';
  put_digits(out + 8, (unsigned)d, 2);
  out[10] = 'T';
  put_digits(out + 11, (unsigned)(sod / 3600), 2);
  out[13] = ':';
  put_digits(out + 14, (unsigned)(sod / 60 % 60), 2);
  out[16] = ':';
  put_digits(out + 17, (unsigned)(sod % 60), 2);
  out[19] = '.';
  put_digits(out + 20, (unsigned)frac, 6);
  out[26] = '\0';
  return 0;
}

int ts_format_stored(int64_t us, char out[TS_STORED_LEN + 1]) {
  char tmp[27];
  if (format_prefix(us, tmp) != 0) return -1;
  memcpy(out, tmp, 26);
  out[26] = 'Z';
  out[27] = '\0';
  return 0;
}

int ts_format_wire(int64_t us, char out[TS_WIRE_LEN + 1]) {
  char tmp[27];
  if (format_prefix(us, tmp) != 0) return -1;
  memcpy(out, tmp, 26);
  memcpy(out + 26, "+00:00", 7);
  return 0;
}

/* Reads exactly n decimal digits. */
static int digits(const char *s, int n, int *v) {
  int x = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    x = x * 10 + (s[i] - '0');
  }
  *v = x;
  return 0;
}

int ts_parse_stored(const char *s, int64_t *us) {
  int y, mo, d, h, mi, se, f;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (s == NULL || strlen(s) != TS_STORED_LEN) return -1;
  if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != '.' || s[26] != 'Z')
    return -1;
  if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
      digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) ||
      digits(s + 17, 2, &se) || digits(s + 20, 6, &f))
    return -1;
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
      mi > 59 || se > 59)
    return -1;
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo == 2 && d == 29 && !leap) return -1;
  int64_t days = days_from_civil(y, mo, d);
  *us = ((days * S_PER_DAY) + h * 3600 + mi * 60 + se) * US_PER_S + f;
  return 0;
}
