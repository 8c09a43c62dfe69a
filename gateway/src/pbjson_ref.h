/* pbjson_ref.h - for tests only: what the list pages were before pbjson.c,
 * protobuf-c's unpacking printed by wire.c. pbjson_test and fuzz_gw_pbjson
 * hold the reader to it. */
#ifndef GW_PBJSON_REF_H
#define GW_PBJSON_REF_H

#include <stdlib.h>
#include <string.h>

#include "pbjson.h"
#include "wire.h"

/* protobuf-c's answer for d[0, n): 0 with *json and *next set (malloc'd,
 * the caller frees both), or -1 when protobuf-c refuses the bytes. */
static inline int gw_pbj_reference(gw_pbj_list list, const uint8_t *d, size_t n, char **json,
                                   char **next) {
  const ProtobufCMessageDescriptor *desc =
      list == GW_PBJ_MESSAGES ? &cruddur__messages__v1__list_messages_response__descriptor
                              : &cruddur__messages__v1__list_message_groups_response__descriptor;
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, n, d);
  if (m == NULL) return -1;
  const Cruddur__Messages__V1__ListMessagesResponse *ml = (const void *)m;
  const Cruddur__Messages__V1__ListMessageGroupsResponse *gl = (const void *)m;
  *json = list == GW_PBJ_MESSAGES ? gw_json_messages(ml) : gw_json_groups(gl);
  *next = strdup(list == GW_PBJ_MESSAGES ? ml->next_page_token : gl->next_page_token);
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}

#endif
