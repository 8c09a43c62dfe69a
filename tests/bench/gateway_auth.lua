-- Adds the bearer token (env TOKEN) to every request of a GET benchmark.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Accept"] = "application/json"
