/* ts.h - the one time format of the system.
 *
 * Times are int64 microseconds since the Unix epoch, UTC. Stored form (sort
 * keys): "YYYY-MM-DDTHH:MM:SS.ffffffZ", always 27 characters, so text order is
 * time order. Wire form for the HTTP API (the original's shape, fixed width):
 * "YYYY-MM-DDTHH:MM:SS.ffffff+00:00", always 32 characters.
 */
#ifndef CRUDDUR_TS_H
#define CRUDDUR_TS_H

#include <stdint.h>

#define TS_STORED_LEN 27
#define TS_WIRE_LEN 32

/* Current time (CLOCK_REALTIME) in microseconds. */
int64_t ts_now_us(void);

/* Monotonic clock in microseconds, for durations. */
int64_t ts_mono_us(void);

/* Writes the stored form and a NUL (28 bytes). Years 0001..9999 only;
 * returns 0, or -1 out of range (out untouched). */
int ts_format_stored(int64_t us, char out[TS_STORED_LEN + 1]);

/* Writes the wire form and a NUL (33 bytes). Same range rule. */
int ts_format_wire(int64_t us, char out[TS_WIRE_LEN + 1]);

/* Parses the stored form (exactly 27 characters). Returns 0 and sets *us, or
 * -1 when malformed (*us untouched). */
int ts_parse_stored(const char *s, int64_t *us);

#endif
