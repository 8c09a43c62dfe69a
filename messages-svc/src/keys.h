/* keys.h - the table's key formats (see messages-svc/README.md).
 *
 *   message      pk MSG#{group}             sk {ts27}#{message_uuid}
 *   group row    pk GRP#{owner}             sk {group}
 *   pair         pk PAIR#{min(a,b)}#{max}   sk PAIR
 *   request      pk REQ#{sender}            sk {request_id}
 *   seed marker  pk SEED#v1                 sk SEED
 *
 * A message sort key is unique even for two messages stored in the same
 * microsecond (the uuid breaks the tie) and sorts by time as text.
 */
#ifndef MSGS_KEYS_H
#define MSGS_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEYS_MSG_SK_LEN 64 /* 27 + '#' + 36 */
#define KEYS_PK_MAX 80     /* "PAIR#" + 36 + '#' + 36 = 78 */

/* "MSG#", "GRP#", "REQ#" followed by a uuid (or request owner). Writes a
 * NUL-terminated key into out (KEYS_PK_MAX + 1 bytes). */
void keys_pk(const char *prefix, const char *uuid, char out[KEYS_PK_MAX + 1]);

/* The pair item's pk for two participants, in either order. */
void keys_pair_pk(const char *a, const char *b, char out[KEYS_PK_MAX + 1]);

/* Builds a message sort key. Returns 0, or -1 when `us` is out of the time
 * format's range or msg_uuid is malformed (out untouched). */
int keys_msg_sk(int64_t us, const char *msg_uuid, char out[KEYS_MSG_SK_LEN + 1]);

/* Splits a message sort key. Returns 0 and sets the outs (either may be NULL),
 * or -1 when malformed (outs untouched). */
int keys_msg_sk_parse(const char *sk, int64_t *us, char uuid_out[37]);

/* A deterministic uuid (RFC 9562 version 8 layout) from SHA-256 of
 * "namespace/index": the seed's stable keys. */
void keys_stable_uuid(const char *ns, unsigned idx, char out[37]);

#endif
