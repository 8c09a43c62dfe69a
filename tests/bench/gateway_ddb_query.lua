-- The DynamoDB Query that messages-svc sends for GET /api/messages/{uuid}
-- (newest page of a conversation), sent straight to dynalite: the raw
-- ceiling the gateway's rate is compared with. Env: GROUP, DDB_TABLE, AWS_REGION.
local group = os.getenv("GROUP")
local table_name = os.getenv("DDB_TABLE") or "cruddur-messages"
local region = os.getenv("AWS_REGION") or "us-east-1"
local day = os.date("!%Y%m%d")
wrk.method = "POST"
wrk.body = string.format(
  '{"TableName":"%s","KeyConditionExpression":"pk = :pk",' ..
  '"ExpressionAttributeValues":{":pk":{"S":"MSG#%s"}},' ..
  '"ScanIndexForward":false,"ConsistentRead":true,"Limit":21}', table_name, group)
wrk.headers["Content-Type"] = "application/x-amz-json-1.0"
wrk.headers["X-Amz-Target"] = "DynamoDB_20120810.Query"
wrk.headers["X-Amz-Date"] = os.date("!%Y%m%dT%H%M%SZ")
-- dynalite wants a SigV4-shaped header and never checks the signature.
wrk.headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=local/" .. day .. "/" .. region ..
  "/dynamodb/aws4_request, SignedHeaders=host, Signature=0"
