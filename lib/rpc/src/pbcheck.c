/* pbcheck.c - protobuf-c next to gRPC: encoding a message for a send, the
 * bytes of a received one, and what protobuf-c accepts on decode but a
 * request may not hold. */
#include "rpc_internal.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

grpc_byte_buffer *rpc__pack(const ProtobufCMessage *m) {
  size_t len = protobuf_c_message_get_packed_size(m);
  /* A gRPC-owned slice: the transport may hold it after the batch ends. */
  grpc_slice body = grpc_slice_malloc(len);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(body));
  grpc_byte_buffer *buf = grpc_raw_byte_buffer_create(&body, 1);
  grpc_slice_unref(body);
  return buf;
}

int rpc__bytes_open(rpc__bytes *b, grpc_byte_buffer *buf) {
  b->joined = grpc_empty_slice();
  b->data = (const uint8_t *)"";
  b->len = 0;
  if (!grpc_byte_buffer_reader_init(&b->reader, buf)) return -1;
  /* peek lends the reader's slices without a copy; a second one means the
   * bytes must be joined. */
  grpc_slice *one = NULL, *more = NULL;
  if (!grpc_byte_buffer_reader_peek(&b->reader, &one)) return 0; /* no bytes */
  if (grpc_byte_buffer_reader_peek(&b->reader, &more)) {
    /* readall reads on from where the reader is: start it again. */
    grpc_byte_buffer_reader_destroy(&b->reader);
    if (!grpc_byte_buffer_reader_init(&b->reader, buf)) return -1;
    b->joined = grpc_byte_buffer_reader_readall(&b->reader);
    one = &b->joined;
  }
  b->data = GRPC_SLICE_START_PTR(*one);
  b->len = GRPC_SLICE_LENGTH(*one);
  return 0;
}

void rpc__bytes_close(rpc__bytes *b) {
  grpc_slice_unref(b->joined);
  grpc_byte_buffer_reader_destroy(&b->reader);
}

/* protobuf-c decodes a field tag written as an overlong varint of 0 (e.g.
 * 80 00) and keeps it as an unknown field numbered 0. Field number 0 is
 * invalid in protobuf, protobuf-c re-encodes it as a lone 00 byte that no
 * decoder accepts, and reflection echoes the request back: so such a
 * request is refused as malformed (tests/fuzz/README.md, F2). Our request
 * types nest a few levels at most, which bounds the recursion. */
int rpc__pb_has_field0(const ProtobufCMessage *m) {
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
        if (rpc__pb_has_field0(v[k])) return 1;
      continue;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      uint32_t which = *(const uint32_t *)((const char *)m + f->quantifier_offset);
      if (which != f->id) continue;
    }
    if (rpc__pb_has_field0(*(ProtobufCMessage *const *)base)) return 1;
  }
  return 0;
}
