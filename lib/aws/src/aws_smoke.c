/* aws_smoke.c - test helper for tests/integration/test_aws.py: real calls
 * through lib/aws against dynalite and cognito-local.
 *
 * Usage: aws_smoke dynamodb   (endpoint from AWS_ENDPOINT_URL_DYNAMODB)
 *        aws_smoke cognito    (endpoint from AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER)
 * Exit 0 when every assertion holds; one line per failure on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cruddur/aws.h"

static int failures;
#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "aws_smoke:%d: CHECK(%s) failed\n", __LINE__, #cond);          \
      failures++;                                                                    \
    }                                                                                \
  } while (0)

/* Calls op with the JSON text `body`; returns the code, *out on success. */
static aws_code call(aws_client *c, const char *op, const char *body, cJSON **out,
                     aws_error *err) {
  cJSON *b = cJSON_Parse(body);
  if (!b) {
    fprintf(stderr, "aws_smoke: bad JSON for %s\n", op);
    exit(2);
  }
  cJSON *o = NULL;
  aws_code rc = aws_call(c, op, b, 5000, &o, err);
  cJSON_Delete(b);
  if (rc != AWS_OK)
    fprintf(stderr, "aws_smoke: %s: %s %s %s\n", op, aws_strerror(rc), err->name, err->message);
  if (rc != AWS_OK && rc != AWS_E_CLIENT) exit(3); /* nothing sensible follows */
  if (out) *out = o;
  else cJSON_Delete(o);
  return rc;
}

static const char *str_at(const cJSON *j, const char *a, const char *b) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
  if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
  return cJSON_IsString(x) ? x->valuestring : "";
}

static void dynamodb(void) {
  aws_client *c = aws_client_from_env("dynamodb", "DYNAMODB", "DynamoDB_20120810",
                                      "application/x-amz-json-1.0");
  if (!c) exit(2);
  aws_error err;
  cJSON *out = NULL;
  CHECK(call(c, "CreateTable",
             "{\"TableName\":\"smoke\",\"BillingMode\":\"PAY_PER_REQUEST\","
             "\"AttributeDefinitions\":[{\"AttributeName\":\"pk\",\"AttributeType\":\"S\"},"
             "{\"AttributeName\":\"sk\",\"AttributeType\":\"S\"}],"
             "\"KeySchema\":[{\"AttributeName\":\"pk\",\"KeyType\":\"HASH\"},"
             "{\"AttributeName\":\"sk\",\"KeyType\":\"RANGE\"}]}",
             &out, &err) == AWS_OK);
  CHECK(strcmp(str_at(out, "TableDescription", "TableName"), "smoke") == 0);
  cJSON_Delete(out);
  /* As on DynamoDB, a new table takes writes only once ACTIVE (dynalite
   * flips it on a timer even with --createTableMs 0). */
  int active = 0;
  for (int i = 0; i < 100 && !active; i++) {
    CHECK(call(c, "DescribeTable", "{\"TableName\":\"smoke\"}", &out, &err) == AWS_OK);
    active = strcmp(str_at(out, "Table", "TableStatus"), "ACTIVE") == 0;
    cJSON_Delete(out);
    if (!active) nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000}, NULL);
  }
  CHECK(active);
  const char *items[] = {
      "{\"TableName\":\"smoke\",\"Item\":{\"pk\":{\"S\":\"GRP#a\"},\"sk\":{\"S\":\"MSG#1\"},"
      "\"text\":{\"S\":\"h\\u00e9llo\"}}}",
      "{\"TableName\":\"smoke\",\"Item\":{\"pk\":{\"S\":\"GRP#a\"},\"sk\":{\"S\":\"MSG#2\"}}}",
      "{\"TableName\":\"smoke\",\"Item\":{\"pk\":{\"S\":\"GRP#a\"},\"sk\":{\"S\":\"OTHER\"}}}",
      "{\"TableName\":\"smoke\",\"Item\":{\"pk\":{\"S\":\"GRP#b\"},\"sk\":{\"S\":\"MSG#1\"}}}"};
  for (size_t i = 0; i < 4; i++) CHECK(call(c, "PutItem", items[i], NULL, &err) == AWS_OK);
  CHECK(call(c, "GetItem",
             "{\"TableName\":\"smoke\",\"ConsistentRead\":true,"
             "\"Key\":{\"pk\":{\"S\":\"GRP#a\"},\"sk\":{\"S\":\"MSG#1\"}}}",
             &out, &err) == AWS_OK);
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(out, "Item"), "text");
  CHECK(strcmp(str_at(text, "S", NULL), "h\xc3\xa9llo") == 0);
  cJSON_Delete(out);
  CHECK(call(c, "Query",
             "{\"TableName\":\"smoke\",\"KeyConditionExpression\":"
             "\"pk = :p AND begins_with(sk, :s)\",\"ScanIndexForward\":false,"
             "\"ExpressionAttributeValues\":{\":p\":{\"S\":\"GRP#a\"},\":s\":{\"S\":\"MSG#\"}}}",
             &out, &err) == AWS_OK);
  const cJSON *count = cJSON_GetObjectItemCaseSensitive(out, "Count");
  CHECK(cJSON_IsNumber(count) && count->valueint == 2);
  const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(out, "Items"), 0);
  CHECK(strcmp(str_at(first, "sk", "S"), "MSG#2") == 0); /* newest first */
  cJSON_Delete(out);
  /* A conditional put on an existing key: a client error, not retried. */
  aws_stats before, after;
  aws_client_stats(c, &before);
  CHECK(call(c, "PutItem",
             "{\"TableName\":\"smoke\",\"Item\":{\"pk\":{\"S\":\"GRP#a\"},\"sk\":{\"S\":\"MSG#1\"}},"
             "\"ConditionExpression\":\"attribute_not_exists(pk)\"}",
             NULL, &err) == AWS_E_CLIENT);
  CHECK(strcmp(err.name, "ConditionalCheckFailedException") == 0);
  CHECK(err.http_status == 400);
  aws_client_stats(c, &after);
  CHECK(after.requests == before.requests + 1);
  CHECK(call(c, "GetItem",
             "{\"TableName\":\"nope\",\"Key\":{\"pk\":{\"S\":\"x\"},\"sk\":{\"S\":\"y\"}}}", NULL,
             &err) == AWS_E_CLIENT);
  CHECK(strcmp(err.name, "ResourceNotFoundException") == 0);
  CHECK(call(c, "GetItem", "{\"TableName\":\"smoke\"}", NULL, &err) == AWS_E_CLIENT);
  CHECK(strcmp(err.name, "ValidationException") == 0);
  CHECK(call(c, "NoSuchOperation", "{}", NULL, &err) == AWS_E_CLIENT);
  CHECK(strcmp(err.name, "UnknownOperationException") == 0);
  aws_client_free(c);
}

static void cognito(void) {
  aws_client *c = aws_client_from_env("cognito-idp", "COGNITO_IDENTITY_PROVIDER",
                                      "AWSCognitoIdentityProviderService",
                                      "application/x-amz-json-1.1");
  if (!c) exit(2);
  aws_error err;
  cJSON *out = NULL;
  CHECK(call(c, "CreateUserPool", "{\"PoolName\":\"smoke\"}", &out, &err) == AWS_OK);
  char pool[128];
  snprintf(pool, sizeof pool, "%s", str_at(out, "UserPool", "Id"));
  cJSON_Delete(out);
  CHECK(pool[0] != '\0');
  char body[512];
  snprintf(body, sizeof body,
           "{\"UserPoolId\":\"%s\",\"Username\":\"andrewbrown\",\"MessageAction\":\"SUPPRESS\","
           "\"UserAttributes\":[{\"Name\":\"email\",\"Value\":\"andrew@exampro.co\"}]}",
           pool);
  CHECK(call(c, "AdminCreateUser", body, NULL, &err) == AWS_OK);
  snprintf(body, sizeof body, "{\"UserPoolId\":\"%s\",\"Filter\":\"username = \\\"andrewbrown\\\"\"}",
           pool);
  CHECK(call(c, "ListUsers", body, &out, &err) == AWS_OK);
  const cJSON *users = cJSON_GetObjectItemCaseSensitive(out, "Users");
  CHECK(cJSON_GetArraySize(users) == 1);
  CHECK(strcmp(str_at(cJSON_GetArrayItem(users, 0), "Username", NULL), "andrewbrown") == 0);
  cJSON_Delete(out);
  CHECK(call(c, "ListUsers", "{\"UserPoolId\":\"local_nope\"}", NULL, &err) == AWS_E_CLIENT);
  CHECK(strcmp(err.name, "ResourceNotFoundException") == 0);
  aws_client_free(c);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: aws_smoke dynamodb|cognito\n");
    return 2;
  }
  if (strcmp(argv[1], "dynamodb") == 0) dynamodb();
  else if (strcmp(argv[1], "cognito") == 0) cognito();
  else return 2;
  if (failures) return 1;
  printf("aws_smoke %s: ok\n", argv[1]);
  return 0;
}
