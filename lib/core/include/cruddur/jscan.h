/* jscan.h - find the bytes of a JSON string that need care, eight at a time.
 *
 * A JSON string ends at '"', escapes with '\\', and may not hold raw bytes
 * below 0x20: the writer (jw.c) must escape those bytes and a reader must
 * stop at them. Most strings have none, so both skip plain runs a 64-bit
 * word at a time (SWAR) instead of testing byte by byte.
 */
#ifndef CRUDDUR_JSCAN_H
#define CRUDDUR_JSCAN_H

#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The high bit of each byte of the 8 at p that is '"', '\\' or below 0x20
 * is set; the subtractions may also set it in more significant bytes than
 * a real hit (a borrow moves up), never in less significant ones. So the
 * answer is zero exactly when no byte is special, and on a little-endian
 * machine its lowest set bit marks the first special byte. */
static inline uint64_t jscan_special8(const char *p) {
  const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  uint64_t v;
  memcpy(&v, p, 8);
  uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
  return (((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v)) & high;
}

static inline int jscan_special(char c) {
  return c == '"' || c == '\\' || (unsigned char)c < 0x20;
}

/* The first of the n bytes at p that is '"', '\\' or below 0x20, or p + n
 * when there is none. */
static inline const char *jscan_plain(const char *p, size_t n) {
  const char *end = p + n;
#ifdef __SSE2__
  /* Sixteen bytes a step where the CPU has it (every x86-64). */
  const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                ctl = _mm_set1_epi8(0x1f);
  for (; end - p >= 16; p += 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                               _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v)); /* v <= 0x1f */
    int m = _mm_movemask_epi8(hit);
    if (m != 0) return p + __builtin_ctz((unsigned)m);
  }
#endif
  for (; end - p >= 8; p += 8) {
    uint64_t hit = jscan_special8(p);
    if (hit == 0) continue;
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return p + (__builtin_ctzll(hit) >> 3);
#else
    break; /* the byte loop below finds it */
#endif
  }
  while (p < end && !jscan_special(*p)) p++;
  return p;
}

#endif
