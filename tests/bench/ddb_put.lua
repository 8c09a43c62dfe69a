-- The PutItem messages-svc sends for a new message (pk MSG#{group},
-- sk {ts27}#{uuid}, the same attributes, attribute_not_exists(pk)), sent
-- straight to dynalite with a new key on every request: the raw ceiling of
-- POST /api/messages. Env: GROUP, DDB_TABLE, AWS_REGION.
local group = os.getenv("GROUP")
local table_name = os.getenv("DDB_TABLE") or "cruddur-messages"
local region = os.getenv("AWS_REGION") or "us-east-1"
local day = os.date("!%Y%m%d")
local headers = {
  ["Content-Type"] = "application/x-amz-json-1.0",
  ["X-Amz-Target"] = "DynamoDB_20120810.PutItem",
  ["X-Amz-Date"] = os.date("!%Y%m%dT%H%M%SZ"),
  -- dynalite wants a SigV4-shaped header and never checks the signature.
  ["Authorization"] = "AWS4-HMAC-SHA256 Credential=local/" .. day .. "/" .. region ..
    "/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
}
local body = '{"TableName":"%s","ConditionExpression":"attribute_not_exists(pk)",' ..
  '"Item":{"pk":{"S":"MSG#%s"},"sk":{"S":"%s#%s"},"message_uuid":{"S":"%s"},' ..
  '"message":{"S":"benchmark message"},"user_uuid":{"S":"00000000-0000-4000-8000-000000000001"},' ..
  '"user_handle":{"S":"andrewbrown"},"user_display_name":{"S":"Andrew Brown"},"created_at":{"S":"%s"}}}'

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local n = 0
function request()
  n = n + 1
  -- wrk's Lua has whole seconds only: the counter fills the microseconds
  -- and the uuid, so every key is new.
  local ts = os.date("!%Y-%m-%dT%H:%M:%S") .. string.format(".%06dZ", n % 1000000)
  local id = string.format("%08x-0000-4000-8000-%012x", tid or 0, n)
  return wrk.format("POST", "/", headers, string.format(body, table_name, group, ts, id, id, ts))
end
