/* tools.h - the table tools (subcommands of messages-svc).
 *
 * Each returns the process exit status: 0 success, 1 failure (a line on
 * stderr says why), 2 bad usage. Output is human-readable on stdout, or one
 * JSON document with `json`.
 */
#ifndef MSGS_TOOLS_H
#define MSGS_TOOLS_H

#include "cruddur/aws.h"

typedef struct tools_ctx {
  aws_client *ddb;   /* reference */
  const char *table; /* reference */
  int json;
  const char *users_addr; /* users-svc, for seed and list-conversations */
} tools_ctx;

int tools_schema_load(tools_ctx *t, int provisioned, long rcu, long wcu);
int tools_list_tables(tools_ctx *t);
int tools_drop(tools_ctx *t, const char *table, int yes);
int tools_seed(tools_ctx *t);
int tools_scan(tools_ctx *t);
int tools_get_conversation(tools_ctx *t, const char *group);
int tools_list_conversations(tools_ctx *t, const char *handle);

/* 1 when the endpoint URL points at this machine (127.0.0.1, localhost, ::1). */
int tools_endpoint_is_local(const char *url);

/* The first `max` code points of UTF-8 `s`, plus "..." when longer, into
 * out (cap bytes, always NUL-terminated). */
void tools_preview(const char *s, int max, char *out, size_t cap);

#endif
