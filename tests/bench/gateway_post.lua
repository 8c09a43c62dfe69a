-- POST /api/messages into one conversation, as the frontend sends it.
-- Env: TOKEN (Cognito access token), GROUP (message_group_uuid).
wrk.method = "POST"
wrk.body = string.format('{"message":"benchmark message","message_group_uuid":"%s"}', os.getenv("GROUP"))
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Accept"] = "application/json"
wrk.headers["Content-Type"] = "application/json"
