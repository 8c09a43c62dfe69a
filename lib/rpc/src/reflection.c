/* reflection.c - grpc.reflection.v1 and v1alpha ServerReflectionInfo.
 *
 * The build embeds one FileDescriptorSet (protoc --include_imports) holding
 * our protos, their imports, health and reflection. It is parsed once at
 * start: every file keeps its serialized FileDescriptorProto, and every
 * service, method, message (nested too) and enum is indexed by its
 * fully-qualified name. Answers carry the requested file followed by its
 * transitive dependencies, which is what grpcurl and python's descriptor
 * pool need to resolve the types (the file asked for first, as grpcurl
 * expects, then its imports).
 *
 * v1 and v1alpha messages have the same field numbers and types, so both
 * versions are decoded and encoded with the v1 C types.
 *
 * Each stream is a small state machine run by the poller (lookups are in
 * memory and quick): send initial metadata + receive, answer, receive again,
 * ... until the client half-closes, then send status OK.
 */
#include "rpc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>

#include "cruddur/log.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"

/* From cruddur_proto (xxd -i of the build's descriptor set). */
extern unsigned char cruddur_descriptor_set[];
extern unsigned int cruddur_descriptor_set_len;

/* The set served and used for method shapes: the embedded one, or a copy
 * of it followed by test files (rpc__descriptor_set_extend). Serialized
 * messages concatenate into their merge, and `file` is a repeated field,
 * so the copy is a set holding both lists of files. Kept until exit. */
static unsigned char *g_set_extended;
static size_t g_set_extended_len;
static atomic_int g_set_read; /* the set was parsed: too late to extend */

static const unsigned char *descriptor_set(size_t *len) {
  atomic_store(&g_set_read, 1);
  if (g_set_extended != NULL) {
    *len = g_set_extended_len;
    return g_set_extended;
  }
  *len = cruddur_descriptor_set_len;
  return cruddur_descriptor_set;
}

int rpc__descriptor_set_extend(const unsigned char *set, size_t len) {
  if (atomic_load(&g_set_read) || g_set_extended != NULL) return -1;
  size_t base = cruddur_descriptor_set_len;
  unsigned char *all = malloc(base + len);
  if (all == NULL) return -1;
  memcpy(all, cruddur_descriptor_set, base);
  memcpy(all + base, set, len);
  g_set_extended = all;
  g_set_extended_len = base + len;
  return 0;
}

/* Symbol names and file names echoed in error messages are cut here. */
#define REFL_NAME_ECHO_MAX 200

typedef enum { SYM_SERVICE, SYM_METHOD, SYM_MESSAGE, SYM_ENUM } sym_kind;

typedef struct {
  char *name;  /* owned, fully qualified without a leading dot */
  size_t file; /* index into files */
  sym_kind kind;
} refl_sym;

struct rpc_reflection {
  Google__Protobuf__FileDescriptorSet *set; /* owned; free_unpacked */
  ProtobufCBinaryData *files;               /* owned; .data malloc'd, per set->file */
  size_t n_files;
  refl_sym *syms; /* owned, sorted by name */
  size_t n_syms, cap_syms;
  char **services; /* owned copies, listed by list_services */
  size_t n_services;
};

/* ======================================================================
 * Index
 * ==================================================================== */

static int sym_add(struct rpc_reflection *r, const char *scope, const char *name,
                   size_t file, sym_kind kind, char **full_out) {
  if (name == NULL) return 0;
  if (r->n_syms == r->cap_syms) {
    size_t cap = r->cap_syms ? r->cap_syms * 2 : 64;
    refl_sym *n = realloc(r->syms, cap * sizeof *n);
    if (n == NULL) return -1;
    r->syms = n;
    r->cap_syms = cap;
  }
  size_t len = (scope[0] ? strlen(scope) + 1 : 0) + strlen(name) + 1;
  char *full = malloc(len);
  if (full == NULL) return -1;
  if (scope[0])
    snprintf(full, len, "%s.%s", scope, name);
  else
    snprintf(full, len, "%s", name);
  r->syms[r->n_syms++] = (refl_sym){full, file, kind};
  if (full_out != NULL) *full_out = full;
  return 0;
}

static int index_message(struct rpc_reflection *r, const char *scope,
                         const Google__Protobuf__DescriptorProto *m, size_t file,
                         int depth) {
  char *full = NULL;
  /* protobuf itself limits nesting far below this; it bounds recursion on
   * a corrupt set. */
  if (depth > 64 || m->name == NULL) return 0;
  if (sym_add(r, scope, m->name, file, SYM_MESSAGE, &full) != 0) return -1;
  for (size_t i = 0; i < m->n_nested_type; i++)
    if (index_message(r, full, m->nested_type[i], file, depth + 1) != 0) return -1;
  for (size_t i = 0; i < m->n_enum_type; i++)
    if (sym_add(r, full, m->enum_type[i]->name, file, SYM_ENUM, NULL) != 0) return -1;
  return 0;
}

static int index_file(struct rpc_reflection *r, size_t f) {
  const Google__Protobuf__FileDescriptorProto *fd = r->set->file[f];
  const char *pkg = fd->package != NULL ? fd->package : "";
  for (size_t i = 0; i < fd->n_message_type; i++)
    if (index_message(r, pkg, fd->message_type[i], f, 0) != 0) return -1;
  for (size_t i = 0; i < fd->n_enum_type; i++)
    if (sym_add(r, pkg, fd->enum_type[i]->name, f, SYM_ENUM, NULL) != 0) return -1;
  for (size_t i = 0; i < fd->n_service; i++) {
    const Google__Protobuf__ServiceDescriptorProto *sd = fd->service[i];
    char *full = NULL;
    if (sd->name == NULL) continue;
    if (sym_add(r, pkg, sd->name, f, SYM_SERVICE, &full) != 0) return -1;
    for (size_t k = 0; k < sd->n_method; k++)
      if (sym_add(r, full, sd->method[k]->name, f, SYM_METHOD, NULL) != 0) return -1;
  }
  return 0;
}

static int sym_cmp(const void *a, const void *b) {
  return strcmp(((const refl_sym *)a)->name, ((const refl_sym *)b)->name);
}

static const refl_sym *sym_find(const struct rpc_reflection *r, const char *name) {
  refl_sym key = {(char *)name, 0, SYM_SERVICE};
  return bsearch(&key, r->syms, r->n_syms, sizeof *r->syms, sym_cmp);
}

static int file_find(const struct rpc_reflection *r, const char *name, size_t *out) {
  for (size_t i = 0; i < r->n_files; i++) {
    const char *fn = r->set->file[i]->name;
    if (fn != NULL && strcmp(fn, name) == 0) {
      *out = i;
      return 0;
    }
  }
  return -1;
}

void rpc__reflection_free(struct rpc_reflection *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->n_syms; i++) free(r->syms[i].name);
  free(r->syms);
  for (size_t i = 0; i < r->n_files; i++) free(r->files[i].data);
  free(r->files);
  for (size_t i = 0; i < r->n_services; i++) free(r->services[i]);
  free(r->services);
  if (r->set != NULL) google__protobuf__file_descriptor_set__free_unpacked(r->set, NULL);
  free(r);
}

int rpc__reflection_new(const char *const *names, size_t n,
                        struct rpc_reflection **out) {
  struct rpc_reflection *r = calloc(1, sizeof *r);
  if (r == NULL) goto oom;
  size_t set_len;
  const unsigned char *set = descriptor_set(&set_len);
  r->set = google__protobuf__file_descriptor_set__unpack(NULL, set_len, set);
  if (r->set == NULL) {
    fprintf(stderr, "rpc: the embedded descriptor set cannot be decoded\n");
    rpc__reflection_free(r);
    return -1;
  }
  r->files = calloc(r->set->n_file ? r->set->n_file : 1, sizeof *r->files);
  if (r->files == NULL) goto oom;
  for (size_t i = 0; i < r->set->n_file; i++) {
    const Google__Protobuf__FileDescriptorProto *fd = r->set->file[i];
    size_t len = google__protobuf__file_descriptor_proto__get_packed_size(fd);
    r->files[i].data = malloc(len ? len : 1);
    if (r->files[i].data == NULL) goto oom;
    r->files[i].len = google__protobuf__file_descriptor_proto__pack(fd, r->files[i].data);
    r->n_files = i + 1;
    if (index_file(r, i) != 0) goto oom;
  }
  qsort(r->syms, r->n_syms, sizeof *r->syms, sym_cmp);

  r->services = calloc(n ? n : 1, sizeof *r->services);
  if (r->services == NULL) goto oom;
  for (size_t i = 0; i < n; i++) {
    const refl_sym *s = sym_find(r, names[i]);
    if (s == NULL || s->kind != SYM_SERVICE)
      fprintf(stderr, "rpc: warning: service %s is not in the embedded descriptor set; "
                      "reflection cannot describe it\n", names[i]);
    r->services[i] = strdup(names[i]);
    if (r->services[i] == NULL) goto oom;
    r->n_services = i + 1;
  }
  *out = r;
  return 0;
oom:
  fprintf(stderr, "rpc: out of memory building the reflection index\n");
  rpc__reflection_free(r);
  return -1;
}

/* ======================================================================
 * Answers
 * ==================================================================== */

/* Appends, each once and dependencies before dependents, everything file f
 * imports transitively (not f itself). */
static void collect_deps(const struct rpc_reflection *r, size_t f, unsigned char *seen,
                         size_t *order, size_t *n) {
  const Google__Protobuf__FileDescriptorProto *fd = r->set->file[f];
  for (size_t i = 0; i < fd->n_dependency; i++) {
    size_t dep;
    if (file_find(r, fd->dependency[i], &dep) != 0 || seen[dep]) continue;
    seen[dep] = 1;
    collect_deps(r, dep, seen, order, n);
    order[(*n)++] = dep;
  }
}

/* The file asked for comes FIRST: grpcurl's client (jhump/protoreflect)
 * takes the first file of a response as the answer, as grpc-go and grpc C++
 * send it. Its imports follow, dependencies before dependents. */
static void collect_files(const struct rpc_reflection *r, size_t f, unsigned char *seen,
                          size_t *order, size_t *n) {
  seen[f] = 1;
  order[(*n)++] = f;
  collect_deps(r, f, seen, order, n);
}

int rpc__reflection_answer(const struct rpc_reflection *r, const uint8_t *data,
                           size_t len, grpc_byte_buffer **out) {
  Grpc__Reflection__V1__ServerReflectionRequest *req =
      grpc__reflection__v1__server_reflection_request__unpack(NULL, len, data);
  if (req == NULL) return -1;
  if (rpc__pb_has_field0(&req->base)) {
    grpc__reflection__v1__server_reflection_request__free_unpacked(req, NULL);
    return -1;
  }

  Grpc__Reflection__V1__ServerReflectionResponse resp =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
  Grpc__Reflection__V1__FileDescriptorResponse fdr =
      GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
  Grpc__Reflection__V1__ListServiceResponse lsr =
      GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
  Grpc__Reflection__V1__ExtensionNumberResponse enr =
      GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
  Grpc__Reflection__V1__ErrorResponse err = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
  char err_msg[REFL_NAME_ECHO_MAX + 64];
  ProtobufCBinaryData *fds = NULL;
  size_t *order = NULL;
  unsigned char *seen = NULL;
  Grpc__Reflection__V1__ServiceResponse *srs = NULL;
  Grpc__Reflection__V1__ServiceResponse **srp = NULL;
  int rc = -1;

  resp.valid_host = req->host;
  resp.original_request = req;

  long start_file = -1; /* set when a file (and its imports) is the answer */
  switch (req->message_request_case) {
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
    srs = calloc(r->n_services ? r->n_services : 1, sizeof *srs);
    srp = calloc(r->n_services ? r->n_services : 1, sizeof *srp);
    if (srs == NULL || srp == NULL) goto done;
    for (size_t i = 0; i < r->n_services; i++) {
      grpc__reflection__v1__service_response__init(&srs[i]);
      srs[i].name = r->services[i];
      srp[i] = &srs[i];
    }
    lsr.n_service = r->n_services;
    lsr.service = srp;
    resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    resp.list_services_response = &lsr;
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME: {
    size_t f;
    if (file_find(r, req->file_by_filename, &f) == 0) {
      start_file = (long)f;
    } else {
      err.error_code = GRPC_STATUS_NOT_FOUND;
      snprintf(err_msg, sizeof err_msg, "file not found: %.*s", REFL_NAME_ECHO_MAX,
               req->file_by_filename);
    }
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
    const char *name = req->file_containing_symbol;
    if (name[0] == '.') name++; /* tolerate ".pkg.Type" */
    const refl_sym *s = sym_find(r, name);
    if (s != NULL) {
      start_file = (long)s->file;
    } else {
      err.error_code = GRPC_STATUS_NOT_FOUND;
      snprintf(err_msg, sizeof err_msg, "symbol not found: %.*s", REFL_NAME_ECHO_MAX,
               req->file_containing_symbol);
    }
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
    /* None of our files declares an extension. */
    err.error_code = GRPC_STATUS_NOT_FOUND;
    snprintf(err_msg, sizeof err_msg, "extension not found: %.*s(%d)",
             REFL_NAME_ECHO_MAX,
             req->file_containing_extension != NULL &&
                     req->file_containing_extension->containing_type != NULL
                 ? req->file_containing_extension->containing_type
                 : "",
             req->file_containing_extension != NULL
                 ? req->file_containing_extension->extension_number
                 : 0);
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
    const char *name = req->all_extension_numbers_of_type;
    if (name[0] == '.') name++;
    const refl_sym *s = sym_find(r, name);
    if (s != NULL && s->kind == SYM_MESSAGE) {
      enr.base_type_name = s->name; /* known type, no extensions */
      resp.message_response_case =
          GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
      resp.all_extension_numbers_response = &enr;
    } else {
      err.error_code = GRPC_STATUS_NOT_FOUND;
      snprintf(err_msg, sizeof err_msg, "message type not found: %.*s",
               REFL_NAME_ECHO_MAX, req->all_extension_numbers_of_type);
    }
    break;
  }
  default:
    err.error_code = GRPC_STATUS_INVALID_ARGUMENT;
    snprintf(err_msg, sizeof err_msg, "no request set in ServerReflectionRequest");
    break;
  }

  if (start_file >= 0) {
    fds = calloc(r->n_files, sizeof *fds);
    order = calloc(r->n_files, sizeof *order);
    seen = calloc(r->n_files, 1);
    if (fds == NULL || order == NULL || seen == NULL) goto done;
    size_t n = 0;
    collect_files(r, (size_t)start_file, seen, order, &n);
    for (size_t i = 0; i < n; i++) fds[i] = r->files[order[i]];
    fdr.n_file_descriptor_proto = n;
    fdr.file_descriptor_proto = fds;
    resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    resp.file_descriptor_response = &fdr;
  } else if (err.error_code != 0) {
    err.error_message = err_msg;
    resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    resp.error_response = &err;
  }

  size_t out_len = grpc__reflection__v1__server_reflection_response__get_packed_size(&resp);
  grpc_slice s = grpc_slice_malloc(out_len);
  grpc__reflection__v1__server_reflection_response__pack(&resp, GRPC_SLICE_START_PTR(s));
  *out = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  rc = 0;
done: /* success and failure alike */
  free(fds);
  free(order);
  free(seen);
  free(srs);
  free(srp);
  grpc__reflection__v1__server_reflection_request__free_unpacked(req, NULL);
  return rc;
}

/* ======================================================================
 * Stream state machine (poller thread)
 * ==================================================================== */

static void stream_start(rpc_call *c, grpc_op *ops, size_t n, rpc_stream_state next) {
  c->stream_state = next;
  c->tag.kind = RPC_TAG_STREAM;
  grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->tag, NULL);
  if (e != GRPC_CALL_OK) {
    log_error("rpc: reflection start_batch failed (%d)", (int)e);
    if (c->status == GRPC_STATUS_OK) c->status = GRPC_STATUS_INTERNAL;
    rpc__call_log(c);
    rpc__call_free(c);
  }
}

static void stream_end(rpc_call *c, grpc_status_code code, const char *msg) {
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  c->status = code;
  ops[0].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[0].data.send_status_from_server.status = code;
  if (msg != NULL && !c->has_status_slice) {
    c->status_slice = grpc_slice_from_copied_string(msg);
    c->has_status_slice = 1;
    ops[0].data.send_status_from_server.status_details = &c->status_slice;
  }
  ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[1].data.recv_close_on_server.cancelled = &c->cancelled;
  stream_start(c, ops, 2, RPC_STREAM_STATUS);
}

static void stream_recv(rpc_call *c, int with_metadata) {
  grpc_op ops[2];
  size_t n = 0;
  memset(ops, 0, sizeof ops);
  if (with_metadata) {
    rpc__call_prepare_md(c);
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = c->n_send_md;
    ops[n].data.send_initial_metadata.metadata = c->send_md;
    n++;
  }
  ops[n].op = GRPC_OP_RECV_MESSAGE;
  ops[n].data.recv_message.recv_message = &c->recv_buf;
  n++;
  stream_start(c, ops, n, RPC_STREAM_RECV);
}

void rpc__reflection_begin(rpc_call *c) { stream_recv(c, 1); }

void rpc__reflection_step(rpc_call *c, int ok) {
  switch (c->stream_state) {
  case RPC_STREAM_RECV: {
    if (!ok) {
      stream_end(c, GRPC_STATUS_CANCELLED, NULL);
      return;
    }
    if (c->recv_buf == NULL) { /* the client half-closed: done */
      stream_end(c, GRPC_STATUS_OK, NULL);
      return;
    }
    rpc__bytes in;
    int rc = -1;
    if (rpc__bytes_open(&in, c->recv_buf) == 0) {
      rc = rpc__reflection_answer(c->srv->refl, in.data, in.len, &c->send_buf);
      rpc__bytes_close(&in);
    }
    grpc_byte_buffer_destroy(c->recv_buf);
    c->recv_buf = NULL;
    if (rc != 0) {
      stream_end(c, GRPC_STATUS_INVALID_ARGUMENT,
                 "request is not a valid ServerReflectionRequest");
      return;
    }
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = c->send_buf;
    stream_start(c, &op, 1, RPC_STREAM_SEND);
    return;
  }
  case RPC_STREAM_SEND:
    grpc_byte_buffer_destroy(c->send_buf);
    c->send_buf = NULL;
    if (!ok) {
      stream_end(c, GRPC_STATUS_CANCELLED, NULL);
      return;
    }
    stream_recv(c, 0);
    return;
  case RPC_STREAM_STATUS:
    if (!ok) c->cancelled = 1;
    rpc__call_log(c);
    rpc__call_free(c);
    return;
  }
}

/* ======================================================================
 * Method shapes
 * ==================================================================== */

/* protoc-c's ProtobufCMethodDescriptor does not say whether a method
 * streams, so the shape comes from the embedded descriptor set, parsed once
 * per process and kept (reachable) until exit. */
static Google__Protobuf__FileDescriptorSet *g_shape_set;
static pthread_once_t g_shape_once = PTHREAD_ONCE_INIT;

static void shape_set_load(void) {
  size_t len;
  const unsigned char *set = descriptor_set(&len);
  g_shape_set = google__protobuf__file_descriptor_set__unpack(NULL, len, set);
}

/* 1 when `full` is "<pkg>.<name>" (or just name without a package). */
static int full_name_is(const char *full, const char *pkg, const char *name) {
  size_t pl = pkg != NULL ? strlen(pkg) : 0;
  if (pl == 0) return strcmp(full, name) == 0;
  return strncmp(full, pkg, pl) == 0 && full[pl] == '.' && strcmp(full + pl + 1, name) == 0;
}

rpc_method_shape rpc__method_shape(const char *service, const char *method) {
  pthread_once(&g_shape_once, shape_set_load);
  if (g_shape_set == NULL || service == NULL || method == NULL) return RPC_SHAPE_UNKNOWN;
  for (size_t f = 0; f < g_shape_set->n_file; f++) {
    const Google__Protobuf__FileDescriptorProto *fd = g_shape_set->file[f];
    for (size_t s = 0; s < fd->n_service; s++) {
      const Google__Protobuf__ServiceDescriptorProto *sd = fd->service[s];
      if (sd->name == NULL || !full_name_is(service, fd->package, sd->name)) continue;
      for (size_t m = 0; m < sd->n_method; m++) {
        const Google__Protobuf__MethodDescriptorProto *md = sd->method[m];
        if (md->name == NULL || strcmp(md->name, method) != 0) continue;
        if (md->client_streaming)
          return md->server_streaming ? RPC_SHAPE_BIDI : RPC_SHAPE_CLIENT_STREAM;
        return md->server_streaming ? RPC_SHAPE_SERVER_STREAM : RPC_SHAPE_UNARY;
      }
      return RPC_SHAPE_UNKNOWN;
    }
  }
  return RPC_SHAPE_UNKNOWN;
}
