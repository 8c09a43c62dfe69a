/* fuzz_reflection.c - the server reflection handler of both services
 * (lib/rpc reflection.c rpc__reflection_answer): one serialized
 * ServerReflectionRequest (v1 and v1alpha share the wire format) in, one
 * response out.
 *
 * Invariants: undecodable input is refused with nothing allocated; a decoded
 * one always gets a response that decodes, echoes the request, and holds
 * exactly one answer (a file set, a service list, extension numbers or an
 * error). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>

#include "grpc/reflection/v1/reflection.pb-c.h"
#include "rpc_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rpc_reflection *g_refl;

static void teardown(void) {
  rpc__reflection_free(g_refl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (g_refl == NULL) {
    static const char *const names[] = {"cruddur.users.v1.UsersService",
                                        "cruddur.messages.v1.MessagesService",
                                        "grpc.health.v1.Health"};
    if (rpc__reflection_new(names, 3, &g_refl) != 0) abort();
    atexit(teardown);
  }
  if (size > 65536) return 0;
  grpc_byte_buffer *bb = NULL;
  int rc = rpc__reflection_answer(g_refl, data, size, &bb);
  if (rc != 0) {
    if (rc != -1 || bb != NULL) abort();
    return 0;
  }
  if (bb == NULL) abort();
  grpc_byte_buffer_reader rd;
  if (!grpc_byte_buffer_reader_init(&rd, bb)) abort();
  grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  grpc_byte_buffer_destroy(bb);
  Grpc__Reflection__V1__ServerReflectionResponse *resp =
      grpc__reflection__v1__server_reflection_response__unpack(NULL, GRPC_SLICE_LENGTH(all),
                                                               GRPC_SLICE_START_PTR(all));
  grpc_slice_unref(all);
  Grpc__Reflection__V1__ServerReflectionRequest *req =
      grpc__reflection__v1__server_reflection_request__unpack(NULL, size, data);
  if (req == NULL) abort();
  /* A request holding a field numbered 0 is refused above (F2). */
  if (rpc__pb_has_field0(&req->base)) abort();
  if (resp == NULL || resp->original_request == NULL) abort();
  if (strcmp(resp->valid_host, req->host) != 0 ||
      resp->original_request->message_request_case != req->message_request_case)
    abort();
  switch (resp->message_response_case) {
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE:
    if (resp->file_descriptor_response == NULL ||
        resp->file_descriptor_response->n_file_descriptor_proto < 1)
      abort();
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE:
    if (req->message_request_case !=
            GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES ||
        resp->list_services_response == NULL || resp->list_services_response->n_service != 3)
      abort();
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE:
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE:
    if (resp->error_response == NULL || resp->error_response->error_code == 0) abort();
    break;
  default:
    abort(); /* every request gets one answer */
  }
  grpc__reflection__v1__server_reflection_request__free_unpacked(req, NULL);
  grpc__reflection__v1__server_reflection_response__free_unpacked(resp, NULL);
  return 0;
}
