/* fuzz_proto.h - helpers shared by the protobuf fuzz harnesses. */
#ifndef CRUDDUR_FUZZ_PROTO_H
#define CRUDDUR_FUZZ_PROTO_H

#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

/* protobuf-c quirk (finding F2 in README.md): a field tag spelled as an
 * overlong varint of 0 (e.g. 80 00) is accepted on decode and kept as an
 * unknown field with tag 0, which protobuf-c then re-encodes as a plain 00
 * byte that no decoder accepts. True when m (or a message inside it) holds
 * such a field; those inputs skip the round-trip checks. */
static inline int has_tag0_unknown(const ProtobufCMessage *m) {
  if (m == NULL) return 0;
  for (unsigned i = 0; i < m->n_unknown_fields; i++)
    if (m->unknown_fields[i].tag == 0) return 1;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const char *base = (const char *)m + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
      ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)base;
      for (size_t k = 0; k < n; k++)
        if (has_tag0_unknown(v[k])) return 1;
    } else {
      if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t which = *(const uint32_t *)((const char *)m + f->quantifier_offset);
        if (which != f->id) continue;
      }
      if (has_tag0_unknown(*(ProtobufCMessage *const *)base)) return 1;
    }
  }
  return 0;
}

#endif
