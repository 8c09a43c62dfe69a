/* users-svc: the identity service of Cruddur Messaging.
 *
 *   users-svc [serve]            gRPC server (cruddur.users.v1.UsersService)
 *   users-svc migrate            apply the embedded schema migrations
 *   users-svc seed               insert the dev users (idempotent)
 *   users-svc sync-cognito [--json] [--pool POOL_ID]
 *                                link Cognito subs to users, print the report
 *
 * Configuration comes from the environment (README.md); a missing or bad
 * required variable stops the program with one line on stderr, exit 2.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cruddur/aws.h"
#include "cruddur/cfg.h"
#include "cruddur/log.h"
#include "cruddur/rpc.h"
#include "cruddur/ts.h"
#include "usr_db.h"
#include "usr_migrate.h"
#include "usr_svc.h"
#include "usr_sync.h"
#include "usr_valid.h"

#define USR_CLI_TIMEOUT_US (120 * 1000000LL)

static void usage(FILE *f) {
  fprintf(f, "usage: users-svc [serve]               run the gRPC server (USERS_LISTEN)\n"
             "       users-svc migrate               apply schema migrations\n"
             "       users-svc seed                  insert the dev users (idempotent)\n"
             "       users-svc sync-cognito [--json] [--pool POOL_ID]\n"
             "                                       link Cognito subs to users by handle\n"
             "environment: CONNECTION_URL (required), PG_POOL_SIZE, USERS_LISTEN, RPC_WORKERS,\n"
             "  RPC_MAX_CONNECTION_AGE_S, AWS_REGION, AWS_COGNITO_USER_POOL_ID,\n"
             "  AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER,\n"
             "  LOG_LEVEL (see users-svc/README.md)\n");
}

static const char *connection_url(void) {
  return cfg_require("CONNECTION_URL", "the libpq URL of the users database");
}

static aws_client *cognito_client(void) {
  const char *region[] = {"AWS_REGION", "AWS_DEFAULT_REGION", NULL};
  if (cfg_first(region, NULL) == NULL) return NULL;
  return aws_client_from_env("cognito-idp", "COGNITO_IDENTITY_PROVIDER",
                             "AWSCognitoIdentityProviderService", "application/x-amz-json-1.1");
}

/* ---- migrate / seed ----------------------------------------------------- */

static int cmd_migrate(void) {
  char err[1024];
  if (usr_mig_apply(connection_url(), stdout, err, sizeof err) != 0) {
    err[strcspn(err, "\n")] = '\0';
    fprintf(stderr, "users-svc migrate: %s\n", err);
    return 1;
  }
  return 0;
}

static int cmd_seed(void) {
  upg_pool *pool;
  if (udb_pool_new(connection_url(), 1, &pool) != 0) {
    fprintf(stderr, "users-svc seed: out of memory\n");
    return 1;
  }
  int inserted = 0;
  usr_err e = udb_seed(pool, ts_mono_us() + 30 * 1000000LL, &inserted);
  upg_pool_free(pool);
  if (e != USR_OK) {
    fprintf(stderr, "users-svc seed: %s\n", usr_strerror(e));
    return 1;
  }
  printf("seed: %d inserted, %d already present\n", inserted, 3 - inserted);
  return 0;
}

/* ---- sync-cognito ------------------------------------------------------- */

static void print_report_text(const usr_sync_report *r) {
  printf("scanned:    %d\n", r->scanned);
  printf("matched:    %d\n", r->matched);
  printf("updated:    %d\n", r->updated);
  printf("unmatched:  %d\n", r->unmatched);
  printf("incomplete: %d\n", r->incomplete);
  printf("conflicts:  %d\n", r->conflicts);
  printf("pages:      %d\n", r->pages);
  for (size_t i = 0; i < r->n_names; i++)
    printf("unmatched or incomplete: %s\n", r->names[i]);
  for (size_t i = 0; i < r->n_conflict_names; i++)
    printf("conflict: %s\n", r->conflict_names[i]);
}

static int print_report_json(const usr_sync_report *r) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) return -1;
  cJSON_AddNumberToObject(o, "scanned", r->scanned);
  cJSON_AddNumberToObject(o, "matched", r->matched);
  cJSON_AddNumberToObject(o, "updated", r->updated);
  cJSON_AddNumberToObject(o, "unmatched", r->unmatched);
  cJSON_AddNumberToObject(o, "incomplete", r->incomplete);
  cJSON_AddNumberToObject(o, "conflicts", r->conflicts);
  cJSON_AddNumberToObject(o, "pages", r->pages);
  cJSON *names = cJSON_AddArrayToObject(o, "unmatched_usernames");
  for (size_t i = 0; names != NULL && i < r->n_names; i++)
    cJSON_AddItemToArray(names, cJSON_CreateString(r->names[i]));
  cJSON *conf = cJSON_AddArrayToObject(o, "conflict_usernames");
  for (size_t i = 0; conf != NULL && i < r->n_conflict_names; i++)
    cJSON_AddItemToArray(conf, cJSON_CreateString(r->conflict_names[i]));
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (s == NULL) return -1;
  printf("%s\n", s);
  cJSON_free(s);
  return 0;
}

static int cmd_sync(int argc, char **argv) {
  int json = 0;
  const char *pool_id = cfg_str("AWS_COGNITO_USER_POOL_ID", NULL);
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) {
      json = 1;
    } else if (strcmp(argv[i], "--pool") == 0 && i + 1 < argc) {
      pool_id = argv[++i];
    } else {
      fprintf(stderr, "users-svc sync-cognito: unknown argument \"%s\"\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (pool_id == NULL || uv_pool_id(pool_id) != UV_OK) {
    fprintf(stderr, "users-svc sync-cognito: AWS_COGNITO_USER_POOL_ID (or --pool) is %s\n",
            pool_id == NULL ? "required" : "malformed");
    return 2;
  }
  const char *url = connection_url();
  aws_client *cognito = cognito_client();
  if (cognito == NULL) {
    fprintf(stderr, "users-svc sync-cognito: no usable Cognito client (set AWS_REGION)\n");
    return 2;
  }
  upg_pool *pool;
  if (udb_pool_new(url, 1, &pool) != 0) {
    aws_client_free(cognito);
    fprintf(stderr, "users-svc sync-cognito: out of memory\n");
    return 1;
  }
  usr_sync_report rep;
  memset(&rep, 0, sizeof rep);
  usr_err e = usr_sync_run(pool, cognito, pool_id, ts_mono_us() + USR_CLI_TIMEOUT_US, &rep);
  int rc = 0;
  if (e != USR_OK) {
    fprintf(stderr, "users-svc sync-cognito: %s\n", usr_strerror(e));
    rc = 1;
  } else if (json) {
    rc = print_report_json(&rep) == 0 ? 0 : 1;
  } else {
    print_report_text(&rep);
  }
  usr_sync_report_free(&rep);
  upg_pool_free(pool);
  aws_client_free(cognito);
  return rc;
}

/* ---- serve -------------------------------------------------------------- */

static int cmd_serve(void) {
  const char *url = connection_url();
  const char *listen = cfg_str("USERS_LISTEN", "127.0.0.1:50051");
  int pool_size = (int)cfg_int("PG_POOL_SIZE", 4, 1, UPG_MAX_SIZE);
  int workers = (int)cfg_int("RPC_WORKERS", 0, 0, 256);
  int conn_age_s = (int)cfg_int("RPC_MAX_CONNECTION_AGE_S", 300, 1, 86400);
  const char *pool_id = cfg_str("AWS_COGNITO_USER_POOL_ID", NULL);
  if (pool_id != NULL && uv_pool_id(pool_id) != UV_OK) {
    fprintf(stderr, "AWS_COGNITO_USER_POOL_ID is malformed (want REGION_ID)\n");
    return 2;
  }

  usr_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  pthread_mutex_init(&ctx.health_mu, NULL);
  ctx.pool_id = pool_id;
  /* Without a configured pool a request may still name one, so the client is
   * made whenever a region is set. */
  ctx.cognito = cognito_client();
  if (ctx.cognito == NULL) log_warn("Cognito not configured: SyncCognitoUsers will fail");
  if (udb_pool_new(url, pool_size, &ctx.pool) != 0) {
    fprintf(stderr, "users-svc: cannot create the connection pool\n");
    aws_client_free(ctx.cognito);
    return 1;
  }
  rpc_service svc = {0};
  if (usr_svc_service(&svc) != 0) {
    upg_pool_free(ctx.pool);
    aws_client_free(ctx.cognito);
    return 1;
  }
  rpc_server_config cfg = {.listen = listen,
                           .services = &svc,
                           .n_services = 1,
                           .workers = workers,
                           .max_conn_age_ms = conn_age_s * 1000,
                           .health = usr_svc_health,
                           .user = &ctx};
  rpc_server *srv;
  if (rpc_server_start(&cfg, &srv) != 0) {
    upg_pool_free(ctx.pool);
    aws_client_free(ctx.cognito);
    return 1;
  }
  log_info("users-svc listening on %s (pool %d, cognito %s)", listen, pool_size,
           ctx.cognito != NULL ? aws_client_endpoint(ctx.cognito) : "off");
  rpc_server_wait(srv);
  rpc_server_destroy(srv);
  upg_pool_free(ctx.pool);
  aws_client_free(ctx.cognito);
  pthread_mutex_destroy(&ctx.health_mu);
  log_info("users-svc stopped");
  return 0;
}

int main(int argc, char **argv) {
  log_init("users-svc");
  const char *cmd = argc > 1 ? argv[1] : "serve";
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(cmd, "sync-cognito") == 0) return cmd_sync(argc - 2, argv + 2);
  int known = strcmp(cmd, "serve") == 0 || strcmp(cmd, "migrate") == 0 || strcmp(cmd, "seed") == 0;
  if (!known) {
    fprintf(stderr, "users-svc: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
  }
  if (argc > 2) {
    fprintf(stderr, "users-svc %s: unexpected argument \"%s\"\n", cmd, argv[2]);
    usage(stderr);
    return 2;
  }
  if (strcmp(cmd, "migrate") == 0) return cmd_migrate();
  if (strcmp(cmd, "seed") == 0) return cmd_seed();
  return cmd_serve();
}
