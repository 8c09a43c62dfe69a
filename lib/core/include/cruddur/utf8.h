/* utf8.h - validation for text that crosses our boundaries. */
#ifndef CRUDDUR_UTF8_H
#define CRUDDUR_UTF8_H

#include <stddef.h>

/* Number of code points in s[0..len) when it is valid UTF-8 (no overlongs,
 * no surrogates, nothing above U+10FFFF, no NUL byte); -1 otherwise. */
long utf8_count(const char *s, size_t len);

/* 1 when s[0..len) holds only white space (ASCII space, \t \n \v \f \r, and
 * the Unicode spaces U+0085 U+00A0 U+1680 U+2000..U+200A U+2028 U+2029 U+202F
 * U+205F U+3000 U+FEFF) or is empty; 0 otherwise. Assumes valid UTF-8. */
int utf8_is_blank(const char *s, size_t len);

#endif
