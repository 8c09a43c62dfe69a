/* mcache_mem.c - what one membership-cache entry costs, measured.
 *
 *   cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release
 *   cmake --build build/bench --target mcache_mem && build/bench/messages-svc/mcache_mem [CAPACITY]
 * or, without the rest of the tree:
 *   gcc -O2 -I messages-svc/src tests/bench/mcache_mem.c messages-svc/src/mcache.c -o mcache_mem
 *
 * Fills a cache of CAPACITY entries (default 1,048,576) with distinct keys
 * shaped like the service's (two uuids) and full-length names, then prints
 * the growth of the process's heap (mallinfo2: bytes in use, arena and
 * mmap'd) and of its resident set (VmRSS), each divided by the entries held.
 * Build it without sanitizers: ASan's allocator pads every block.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcache.h"

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
  fclose(f);
  return kb;
}

static size_t heap_bytes(void) {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

int main(int argc, char **argv) {
  size_t cap = argc > 1 ? strtoul(argv[1], NULL, 10) : 1048576;
  long rss0 = rss_kb();
  size_t heap0 = heap_bytes();
  mcache *c = mcache_new(cap);
  if (c == NULL) return 1;
  mcache_other o;
  memset(&o, 0, sizeof o);
  memset(o.display_name, 'n', sizeof o.display_name - 1);
  memcpy(o.uuid, "00000000-0000-4000-8000-000000000000", 37);
  memcpy(o.handle, "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh", 33);
  char g[37], u[37];
  /* Four times the capacity: every way of every set ends up holding one. */
  for (size_t i = 0; i < 4 * mcache_capacity(c); i++) {
    snprintf(g, sizeof g, "%08x-0000-4000-8000-000000000000", (unsigned)i);
    snprintf(u, sizeof u, "%08x-1111-4000-8000-111111111111", (unsigned)i);
    mcache_put(c, g, u, &o);
  }
  size_t n = mcache_size(c);
  double heap = (double)(heap_bytes() - heap0) / (double)n;
  double rss = (double)(rss_kb() - rss0) * 1024.0 / (double)n;
  printf("capacity %zu, entries %zu: heap %.1f bytes/entry, RSS %.1f bytes/entry\n",
         mcache_capacity(c), n, heap, rss);
  mcache_free(c);
  return 0;
}
