/* main.c - messages-svc: the MessagesService server and the table tools.
 *
 *   messages-svc [serve]                   gRPC server (MESSAGES_LISTEN)
 *   messages-svc schema-load [--provisioned RCU WCU]
 *   messages-svc list-tables | scan
 *   messages-svc drop TABLE [--yes]
 *   messages-svc seed
 *   messages-svc get-conversation GROUP_UUID
 *   messages-svc list-conversations HANDLE
 * Add --json for machine-readable output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cruddur/aws.h"
#include "cruddur/cfg.h"
#include "cruddur/log.h"
#include "cruddur/rpc.h"
#include "cruddur/sig.h"
#include "service.h"
#include "tools.h"

static void usage(void) {
  fprintf(stderr, "usage: messages-svc [serve]\n"
                  "       messages-svc schema-load [--provisioned RCU WCU] [--json]\n"
                  "       messages-svc list-tables [--json]\n"
                  "       messages-svc drop TABLE [--yes] [--json]\n"
                  "       messages-svc seed [--json]\n"
                  "       messages-svc scan [--json]\n"
                  "       messages-svc get-conversation GROUP_UUID [--json]\n"
                  "       messages-svc list-conversations HANDLE [--json]\n");
}

/* DynamoDB table names: 3 to 255 of [A-Za-z0-9_.-]. */
static int table_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n < 3 || n > 255) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '.' || c == '-'))
      return 0;
  }
  return 1;
}

static aws_client *ddb_from_env(void) {
  aws_client *c = aws_client_from_env("dynamodb", "DYNAMODB", "DynamoDB_20120810",
                                      "application/x-amz-json-1.0");
  if (c == NULL) exit(2); /* aws_client_from_env printed the reason */
  return c;
}

static const char *table_from_env(void) {
  const char *t = cfg_str("DDB_MESSAGE_TABLE", "cruddur-messages");
  if (!table_name_ok(t)) {
    fprintf(stderr, "DDB_MESSAGE_TABLE is malformed: 3 to 255 of [A-Za-z0-9_.-]\n");
    exit(2);
  }
  return t;
}

static void log_stats(aws_client *ddb) {
  aws_stats st;
  aws_client_stats(ddb, &st);
  log_info("dynamodb stats: requests=%llu retries=%llu failures=%llu",
           (unsigned long long)st.requests, (unsigned long long)st.retries,
           (unsigned long long)st.failures);
}

static int serve(void) {
  /* Before any thread starts (sig.h): a second SIGTERM during the drain is
   * then logged and ignored instead of killing the process. */
  sig_block_stop();
  log_init("messages-svc");
  const char *listen = cfg_str("MESSAGES_LISTEN", "127.0.0.1:50052");
  const char *table = table_from_env();
  /* Handlers block on DynamoDB round trips, so more workers than cores keep
   * requests in flight; 16 matched dynalite's best rate on 2 cores. */
  long workers = cfg_int("RPC_WORKERS", 16, 1, 256);
  long conn_age_s = cfg_int("RPC_MAX_CONNECTION_AGE_S", 300, 1, 86400);
  long cache = cfg_int("MEMBERSHIP_CACHE_ENTRIES", 65536, 8, 4194304);
  long window = cfg_int("IDEMPOTENCY_WINDOW_S", STORE_REQ_TTL_S, 1, 30L * 24 * 3600);
  watch_limits wl = {
      .max_users = (int)cfg_int("WATCH_MAX_USERS", 10000, 1, 1000000),
      .max_streams = (int)cfg_int("WATCH_MAX_STREAMS", 20000, 1, 1000000),
      .max_streams_per_user = (int)cfg_int("WATCH_MAX_STREAMS_PER_USER", 16, 1, 1024),
      .pollers = (int)cfg_int("WATCH_POLLERS", 4, 1, WATCH_POLLERS_MAX),
  };
  msgs_svc svc;
  memset(&svc, 0, sizeof svc);
  const char *secret = getenv("PAGE_TOKEN_SECRET");
  int k = token_key_init(&svc.key, secret);
  if (k < 0) {
    if (secret != NULL && secret[0] != '\0' && strlen(secret) < TOKEN_SECRET_MIN)
      fprintf(stderr, "PAGE_TOKEN_SECRET is malformed: at least %d bytes\n", TOKEN_SECRET_MIN);
    else
      fprintf(stderr, "cannot set up the page-token key: out of memory or OpenSSL failed\n");
    return 2;
  }
  if (k == 1)
    log_warn("PAGE_TOKEN_SECRET is not set: using a random key, so page tokens do not survive "
             "a restart and are not accepted by other replicas");
  aws_client *ddb = ddb_from_env();
  if (msgs_svc_init(&svc, ddb, table, (size_t)cache) != 0) {
    fprintf(stderr, "out of memory\n");
    token_key_free(&svc.key);
    aws_client_free(ddb);
    return 1;
  }
  svc.req_window_s = window;
  if (watch_hub_new(&svc.st, &svc.key, &wl, &svc.watch) != 0) {
    fprintf(stderr, "cannot start the watch poller\n");
    msgs_svc_destroy(&svc);
    aws_client_free(ddb);
    return 1;
  }
  rpc_server_config cfg;
  memset(&cfg, 0, sizeof cfg);
  /* The watch streams plus room for Health/Watch probes. */
  cfg.max_streams = wl.max_streams + 64;
  cfg.listen = listen;
  cfg.services = msgs_service();
  cfg.n_services = 1;
  cfg.workers = (int)workers;
  cfg.max_conn_age_ms = (int)conn_age_s * 1000;
  cfg.health = msgs_health;
  cfg.user = &svc;
  rpc_server *srv = NULL;
  if (rpc_server_start(&cfg, &srv) != 0) {
    watch_hub_free(svc.watch);
    msgs_svc_destroy(&svc);
    aws_client_free(ddb);
    return 1;
  }
  log_info("messages-svc listening on port %d, table %s, dynamodb %s", rpc_server_port(srv), table,
           aws_client_endpoint(ddb) ? aws_client_endpoint(ddb) : "(default)");
  log_info("signal %d: draining", sig_wait_stop());
  rpc_server_shutdown(srv);
  rpc_server_wait(srv); /* ends every stream; holders released them */
  watch_hub_free(svc.watch);
  rpc_server_destroy(srv);
  log_stats(ddb);
  msgs_svc_destroy(&svc);
  aws_client_free(ddb);
  sig_watch_end();
  return 0;
}

int main(int argc, char **argv) {
  /* --json and --yes may appear anywhere; the rest are positional. */
  int json = 0, yes = 0;
  const char *pos[8];
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = 1;
    else if (strcmp(argv[i], "--yes") == 0)
      yes = 1;
    else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage();
      return 0;
    } else if (npos < 8)
      pos[npos++] = argv[i];
    else {
      usage();
      return 2;
    }
  }
  const char *cmd = npos > 0 ? pos[0] : "serve";
  if (strcmp(cmd, "serve") == 0) {
    if (npos > 1) {
      usage();
      return 2;
    }
    return serve();
  }

  log_init("messages-svc");
  tools_ctx t;
  memset(&t, 0, sizeof t);
  t.json = json;
  t.table = table_from_env();
  t.users_addr = cfg_str("USERS_ADDR", "127.0.0.1:50051");
  int rc = 2;
  if (strcmp(cmd, "schema-load") == 0) {
    int provisioned = 0;
    long rcu = 5, wcu = 5;
    if (npos == 4 && strcmp(pos[1], "--provisioned") == 0) {
      provisioned = 1;
      rcu = strtol(pos[2], NULL, 10);
      wcu = strtol(pos[3], NULL, 10);
      if (rcu < 1 || wcu < 1 || rcu > 40000 || wcu > 40000) {
        usage();
        return 2;
      }
    } else if (npos != 1) {
      usage();
      return 2;
    }
    t.ddb = ddb_from_env();
    rc = tools_schema_load(&t, provisioned, rcu, wcu);
  } else if (strcmp(cmd, "list-tables") == 0 && npos == 1) {
    t.ddb = ddb_from_env();
    rc = tools_list_tables(&t);
  } else if (strcmp(cmd, "drop") == 0 && npos == 2) {
    t.ddb = ddb_from_env();
    rc = tools_drop(&t, pos[1], yes);
  } else if (strcmp(cmd, "seed") == 0 && npos == 1) {
    t.ddb = ddb_from_env();
    rc = tools_seed(&t);
  } else if (strcmp(cmd, "scan") == 0 && npos == 1) {
    t.ddb = ddb_from_env();
    rc = tools_scan(&t);
  } else if (strcmp(cmd, "get-conversation") == 0 && npos == 2) {
    t.ddb = ddb_from_env();
    rc = tools_get_conversation(&t, pos[1]);
  } else if (strcmp(cmd, "list-conversations") == 0 && npos == 2) {
    t.ddb = ddb_from_env();
    rc = tools_list_conversations(&t, pos[1]);
  } else {
    usage();
    return 2;
  }
  aws_client_free(t.ddb);
  return rc;
}
