/* uuid.h - random (version 4) uuids in canonical lower-case text form. */
#ifndef CRUDDUR_UUID_H
#define CRUDDUR_UUID_H

#include <stddef.h>

#define UUID_STR_LEN 36 /* without the NUL */

/* Writes a new random uuid and a NUL into out (37 bytes). Returns 0, or -1
 * when the system's random source fails (out is then untouched). */
int uuid_new(char out[UUID_STR_LEN + 1]);

/* 1 when s is exactly 36 characters of canonical lower-case 8-4-4-4-12 hex. */
int uuid_valid(const char *s);

#endif
