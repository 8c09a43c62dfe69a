-- Mixed traffic for the gateway's memory check: in every 100 requests of a
-- wrk thread, one GET /api/messages/{GROUP}, one GET /api/message_groups and
-- one POST /api/messages into GROUP (real work through both services and
-- dynalite), and 97 that the gateway answers alone after checking the token
-- (the cached short card, a malformed group id: 404). The real share is kept
-- small so that half a million requests fit in the time dynalite allows.
-- Env: TOKEN, GROUP.
local reqs = {}

function init(args)
  local auth = {["Authorization"] = "Bearer " .. os.getenv("TOKEN"), ["Accept"] = "application/json"}
  local post = {["Authorization"] = auth["Authorization"], ["Accept"] = "application/json",
                ["Content-Type"] = "application/json"}
  local group = os.getenv("GROUP")
  reqs.messages = wrk.format("GET", "/api/messages/" .. group, auth)
  reqs.groups = wrk.format("GET", "/api/message_groups", auth)
  reqs.post = wrk.format("POST", "/api/messages", post,
    string.format('{"message":"memory check","message_group_uuid":"%s"}', group))
  reqs.short = wrk.format("GET", "/api/users/@andrewbrown/short", auth)
  reqs.bad = wrk.format("GET", "/api/messages/not-a-uuid", auth)
end

local n = 0
function request()
  n = n + 1
  local k = n % 100
  if k == 0 then return reqs.messages end
  if k == 1 then return reqs.groups end
  if k == 2 then return reqs.post end
  if k % 2 == 0 then return reqs.short end
  return reqs.bad
end
