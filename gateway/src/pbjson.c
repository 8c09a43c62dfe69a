/* pbjson.c - list pages from protobuf bytes to JSON (see pbjson.h).
 *
 * Written by hand because no library reads protobuf into views: protobuf-c
 * (and upb, nanopb) decode into their own structs first. The reader below
 * follows protobuf-c 1.4.1's parsing rule for rule, function by function
 * (named at each), so that the two agree on every input. */
#include "pbjson.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cruddur/dbuf.h"
#include "cruddur/jw.h"
#include "wire.h"

enum { WT_VARINT = 0, WT_64BIT = 1, WT_LEN = 2, WT_32BIT = 5 };

/* The unread bytes of one message. */
typedef struct pbr {
  const uint8_t *p, *end;
} pbr;

/* A field's key (protobuf-c's parse_tag_and_wiretype): at most 5 bytes; a
 * first byte with no field bits is refused, even in a longer key. */
static int rd_key(pbr *r, uint32_t *field, unsigned *wt) {
  const uint8_t *d = r->p;
  size_t max = (size_t)(r->end - d) < 5 ? (size_t)(r->end - d) : 5;
  if ((d[0] & 0xf8) == 0) return -1;
  *wt = d[0] & 7;
  uint32_t tag = (uint32_t)(d[0] & 0x7f) >> 3;
  if ((d[0] & 0x80) == 0) {
    *field = tag;
    r->p += 1;
    return 0;
  }
  for (size_t i = 1, shift = 4; i < max; i++, shift += 7) {
    if (d[i] & 0x80) {
      tag |= (uint32_t)(d[i] & 0x7f) << shift;
    } else {
      tag |= (uint32_t)d[i] << shift;
      *field = tag;
      r->p += i + 1;
      return 0;
    }
  }
  return -1;
}

/* A varint's length: its last byte within 10 (protobuf-c's scan). */
static int rd_varint_len(const pbr *r, size_t *n) {
  size_t rem = (size_t)(r->end - r->p), max = rem < 10 ? rem : 10;
  for (size_t i = 0; i < max; i++) {
    if ((r->p[i] & 0x80) == 0) {
      *n = i + 1;
      return 0;
    }
  }
  return -1;
}

/* A length-prefixed value (scan_length_prefixed_data): a prefix of at most
 * 5 bytes, a length of at most INT_MAX that fits in what is left. */
static int rd_len(pbr *r, const uint8_t **p, size_t *n) {
  size_t rem = (size_t)(r->end - r->p), max = rem < 5 ? rem : 5, val = 0, i = 0;
  if (rem > 0 && r->p[0] < 0x80) {
    val = r->p[0]; /* one byte (i = 0): the usual case, below 128 */
  } else {
    for (; i < max; i++) {
      val |= (size_t)(r->p[i] & 0x7f) << (7 * i);
      if ((r->p[i] & 0x80) == 0) break;
    }
    if (i == max) return -1;
  }
  if (val > INT_MAX || i + 1 + val > rem) return -1;
  *p = r->p + i + 1;
  *n = val;
  r->p += i + 1 + val;
  return 0;
}

/* Past a field of wire type wt (an unknown one: protobuf-c keeps its bytes
 * and refuses only the framing). */
static int rd_skip(pbr *r, unsigned wt) {
  size_t rem = (size_t)(r->end - r->p), n;
  const uint8_t *p;
  switch (wt) {
  case WT_VARINT:
    if (rd_varint_len(r, &n) != 0) return -1;
    r->p += n;
    return 0;
  case WT_64BIT:
    if (rem < 8) return -1;
    r->p += 8;
    return 0;
  case WT_LEN:
    return rd_len(r, &p, &n);
  case WT_32BIT:
    if (rem < 4) return -1;
    r->p += 4;
    return 0;
  default: /* groups (3, 4) and 6, 7 */
    return -1;
  }
}

/* A string field: protobuf-c copies it into a C string, which ends at its
 * first NUL wherever the gateway reads it. */
static int rd_str(pbr *r, unsigned wt, const char **s, size_t *n) {
  const uint8_t *p;
  size_t len;
  if (wt != WT_LEN || rd_len(r, &p, &len) != 0) return -1;
  const uint8_t *nul = memchr(p, '\0', len);
  *s = (const char *)p;
  *n = nul != NULL ? (size_t)(nul - p) : len;
  return 0;
}

/* An embedded message's bytes, as a reader of their own. */
static int rd_sub(pbr *r, unsigned wt, pbr *sub) {
  const uint8_t *p;
  size_t n;
  if (wt != WT_LEN || rd_len(r, &p, &n) != 0) return -1;
  sub->p = p;
  sub->end = p + n;
  return 0;
}

/* Participant {uuid = 1; handle = 2; display_name = 3}, into it: a second
 * participant field in the same item overwrites only what it holds, as
 * protobuf-c's merge of the two does. */
static int rd_participant(pbr *r, gw_item *it) {
  while (r->p < r->end) {
    uint32_t f;
    unsigned wt;
    const char *ignored;
    size_t ignored_len;
    if (rd_key(r, &f, &wt) != 0) return -1;
    int rc = f == 1   ? rd_str(r, wt, &ignored, &ignored_len)
             : f == 2 ? rd_str(r, wt, &it->handle, &it->handle_len)
             : f == 3 ? rd_str(r, wt, &it->display_name, &it->display_name_len)
                      : rd_skip(r, wt);
    if (rc != 0) return -1;
  }
  return 0;
}

/* google.protobuf.Timestamp {int64 seconds = 1; int32 nanos = 2}. Both
 * start from 0 at each occurrence: protobuf-c's merge keeps the later
 * message's proto3 scalars whether they were on the wire or not. */
static int rd_timestamp(pbr *r, gw_item *it) {
  it->seconds = 0;
  it->nanos = 0;
  while (r->p < r->end) {
    uint32_t f;
    unsigned wt;
    size_t n;
    if (rd_key(r, &f, &wt) != 0) return -1;
    if (f != 1 && f != 2) {
      if (rd_skip(r, wt) != 0) return -1;
      continue;
    }
    if (wt != WT_VARINT || rd_varint_len(r, &n) != 0) return -1;
    const uint8_t *d = r->p;
    r->p += n;
    if (f == 1) { /* parse_uint64: every 7-bit group, past bit 63 dropped */
      uint64_t v = 0;
      for (size_t i = 0; i < n; i++)
        v |= (uint64_t)(d[i] & 0x7f) << (7 * i);
      it->seconds = (int64_t)v;
    } else { /* parse_uint32: four 7-bit groups, then the fifth byte whole */
      uint32_t v = 0;
      for (size_t i = 0; i < n && i < 4; i++)
        v |= (uint32_t)(d[i] & 0x7f) << (7 * i);
      if (n > 4) v |= (uint32_t)d[4] << 28;
      it->nanos = (int32_t)v;
    }
  }
  return 0;
}

/* Field numbers of an item's parts; `other` is a string field the answer
 * does not show (Message.message_group_uuid), 0 for none. */
typedef struct item_shape {
  uint32_t uuid, who, text, at, other;
} item_shape;

static const item_shape shapes[] = {
    [GW_PBJ_MESSAGES] = {1, 3, 4, 5, 2}, /* Message */
    [GW_PBJ_GROUPS] = {1, 2, 3, 4, 0},   /* MessageGroup */
};

static int rd_item(pbr *r, const item_shape *sh, gw_item *it) {
  static const gw_item empty = {"", "", "", "", 0, 0, 0, 0, 0, 0};
  *it = empty;
  while (r->p < r->end) {
    uint32_t f;
    unsigned wt;
    pbr sub;
    const char *ignored;
    size_t ignored_len;
    int rc;
    if (rd_key(r, &f, &wt) != 0) return -1;
    if (f == sh->uuid)
      rc = rd_str(r, wt, &it->uuid, &it->uuid_len);
    else if (f == sh->text)
      rc = rd_str(r, wt, &it->text, &it->text_len);
    else if (f == sh->who)
      rc = rd_sub(r, wt, &sub) != 0 ? -1 : rd_participant(&sub, it);
    else if (f == sh->at)
      rc = rd_sub(r, wt, &sub) != 0 ? -1 : rd_timestamp(&sub, it);
    else if (f == sh->other && f != 0)
      rc = rd_str(r, wt, &ignored, &ignored_len);
    else
      rc = rd_skip(r, wt);
    if (rc != 0) return -1;
  }
  return 0;
}

gw_pbj_code gw_pbj_page(gw_pbj_list list, const uint8_t *data, size_t len, char **json,
                        const char **next, size_t *next_len) {
  const item_shape *sh = &shapes[list == GW_PBJ_GROUPS ? GW_PBJ_GROUPS : GW_PBJ_MESSAGES];
  dbuf b = DBUF_INIT(GW_JSON_MAX);
  jw w = {&b, false};
  pbr r = {data, data + len};
  const char *tok = "";
  size_t tok_len = 0, n = 0;
  jw_raw(&w, "[", 1);
  while (r.p < r.end) {
    uint32_t f;
    unsigned wt;
    int rc;
    if (rd_key(&r, &f, &wt) != 0) goto malformed;
    if (f == 1) { /* repeated items = 1 */
      pbr sub;
      gw_item it;
      rc = rd_sub(&r, wt, &sub) != 0 || rd_item(&sub, sh, &it) != 0 ? -1 : 0;
      if (rc == 0) {
        if (n++ > 0) jw_raw(&w, ",", 1);
        gw_json_item(&w, &it);
      }
    } else if (f == 2) { /* string next_page_token = 2 */
      rc = rd_str(&r, wt, &tok, &tok_len);
    } else {
      rc = rd_skip(&r, wt);
    }
    if (rc != 0) goto malformed;
  }
  jw_raw(&w, "]", 1);
  if (w.failed) {
    dbuf_free(&b);
    return GW_PBJ_NOMEM;
  }
  *json = b.buf;
  *next = tok;
  *next_len = tok_len;
  return GW_PBJ_OK;
malformed:
  dbuf_free(&b);
  return GW_PBJ_MALFORMED;
}
