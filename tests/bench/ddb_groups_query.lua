-- The DynamoDB Query that messages-svc sends for GET /api/message_groups
-- (first page of a user's conversations, newest activity first, on the
-- local index), sent straight to dynalite: the raw ceiling of that route.
-- Env: OWNER (the user's uuid), DDB_TABLE, AWS_REGION.
local owner = os.getenv("OWNER")
local table_name = os.getenv("DDB_TABLE") or "cruddur-messages"
local region = os.getenv("AWS_REGION") or "us-east-1"
local day = os.date("!%Y%m%d")
wrk.method = "POST"
wrk.body = string.format(
  '{"TableName":"%s","IndexName":"last-activity-index","KeyConditionExpression":"pk = :pk",' ..
  '"ExpressionAttributeValues":{":pk":{"S":"GRP#%s"}},' ..
  '"ScanIndexForward":false,"ConsistentRead":true,"Limit":21}', table_name, owner)
wrk.headers["Content-Type"] = "application/x-amz-json-1.0"
wrk.headers["X-Amz-Target"] = "DynamoDB_20120810.Query"
wrk.headers["X-Amz-Date"] = os.date("!%Y%m%dT%H%M%SZ")
-- dynalite wants a SigV4-shaped header and never checks the signature.
wrk.headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=local/" .. day .. "/" .. region ..
  "/dynamodb/aws4_request, SignedHeaders=host, Signature=0"
