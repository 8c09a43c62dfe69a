/* jarena.h - parsed cJSON trees in a per-thread arena.
 *
 * cJSON allocates every node and every string of a parsed document one by
 * one; for a DynamoDB Query page that is about a thousand malloc/free pairs,
 * a quarter of messages-svc's instructions per ListMessages. jarena_parse
 * places the whole tree in a bump arena owned by the calling thread
 * instead, and cJSON_Delete of that tree costs a walk, no free().
 *
 * How: jarena installs cJSON hooks (cJSON_InitHooks, process-wide, once).
 * Outside jarena_parse they are plain malloc/free, so every other cJSON
 * use is unchanged. An arena allocation is counted live; freeing it (the
 * hook sees the address is in this thread's arena) counts it down, and at
 * zero the arena is rewound. So any number of trees may be alive at once.
 *
 * Rules: a tree from jarena_parse is freed (cJSON_Delete) on the thread
 * that parsed it, and nodes are not moved into trees that outlive the
 * thread. Memory: a thread keeps at most one JARENA_CHUNK-sized chunk
 * between documents (freed when the thread exits); bigger documents use
 * more chunks, returned when the arena is rewound; past JARENA_MAX bytes
 * per thread, allocations fall back to malloc.
 */
#ifndef CRUDDUR_JARENA_H
#define CRUDDUR_JARENA_H

#include <stddef.h>

#include <cjson/cJSON.h>

#define JARENA_CHUNK (64 * 1024)
#define JARENA_MAX (16 * 1024 * 1024)

/* Like cJSON_ParseWithLength: NULL on malformed text or out of memory.
 * The tree is the caller's; free it with cJSON_Delete on this thread. */
cJSON *jarena_parse(const char *text, size_t len);

/* Between jarena_open and jarena_close, every cJSON allocation of this
 * thread comes from its arena too: for a tree built only to be printed
 * and deleted on this thread (a request body; messages-svc's store.c),
 * which otherwise costs a malloc/free pair per node and per string. The
 * same rules hold; in addition, text that cJSON prints while the arena is
 * open is freed with cJSON_free, never free(). Out of memory in the arena
 * falls back to malloc, as in jarena_parse. jarena_close rewinds the arena
 * when nothing in it is live. */
void jarena_open(void);
void jarena_close(void);

/* This thread's arena bytes in chunks and live allocations (for tests). */
void jarena_stats(size_t *bytes, size_t *live);

#endif
