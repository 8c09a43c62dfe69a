/* pbjson.h - the list answers' JSON, read straight from the upstream's bytes.
 *
 * GET /api/messages/{uuid} and GET /api/message_groups answer a page of up
 * to 100 items. protobuf-c would unpack the page into a tree of C structs
 * (a struct per item, participant and timestamp, a copy of every string)
 * only for wire.c to print it once: that unpacking was a fifth of the
 * messages route's instructions. These readers walk the serialized
 * ListMessagesResponse / ListMessageGroupsResponse once and write each
 * item's JSON (gw_json_item) from views into the bytes.
 *
 * The contract is protobuf-c 1.4.1's, which the rest of the gateway uses:
 * the same bytes are refused (bad varints, lengths past the end, wire types
 * 3, 4, 6 and 7, a known field with the wrong wire type, a single-byte tag
 * of field 0), unknown fields are skipped, a field given twice keeps the
 * later value (a participant merges field by field; a timestamp is the
 * later one whole, as protobuf-c's merge leaves proto3 scalars), and a
 * string ends at its first NUL byte as protobuf-c's C strings do. For
 * every input, the JSON and the next-page token are byte for byte what
 * gw_json_messages / gw_json_groups give for protobuf-c's unpacking, and
 * one reader refuses exactly what the other refuses: fuzz_gw_pbjson
 * checks it against the library.
 */
#ifndef GW_PBJSON_H
#define GW_PBJSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  GW_PBJ_OK = 0,
  GW_PBJ_MALFORMED, /* not a message protobuf-c would unpack */
  GW_PBJ_NOMEM      /* out of memory, or the JSON would pass GW_JSON_MAX */
} gw_pbj_code;

/* Which list: the item shapes differ in field numbers only. */
typedef enum {
  GW_PBJ_MESSAGES = 0, /* ListMessagesResponse: Message items */
  GW_PBJ_GROUPS        /* ListMessageGroupsResponse: MessageGroup items */
} gw_pbj_list;

/* A page read from data[0, len). On GW_PBJ_OK: *json is the answer body
 * (malloc'd, NUL-terminated, the caller frees it) and next[0, *next_len)
 * the next_page_token (a view into data, "" when absent). On any other
 * code nothing is allocated and the outputs are untouched. */
gw_pbj_code gw_pbj_page(gw_pbj_list list, const uint8_t *data, size_t len, char **json,
                        const char **next, size_t *next_len);

#endif
