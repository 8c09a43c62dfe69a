#!/usr/bin/env bash
# Benchmark of the gateway with wrk on loopback (not a test; see gateway/README.md).
#
#   tests/bench/gateway.sh [-d SECONDS] [-c CONNECTIONS] [-t WRK_THREADS] [-w GATEWAY_WORKERS]
#
# Builds an optimised, sanitizer-free build in build/bench, starts the whole
# stack on free ports (tests/stack: PostgreSQL, dynalite, cognito-local,
# users-svc, messages-svc, gateway), seeds one conversation, then measures in
# the same run, route by route: requests/s, p50 and p99 (wrk --latency), and
# beside them the raw ceilings:
#   - GET /api/messages/{uuid}  vs the same DynamoDB Query sent straight to
#     dynalite (wrk + gateway_ddb_query.lua), on a freshly started dynalite,
#     six runs each in short alternating runs (ours, raw, raw, ours, 3 times),
#     on the pinned rig (benchlib.pin: dynalite and PostgreSQL on core 0, wrk,
#     pgbench and our processes on core 1: the targets) and unpinned (for
#     information); every other figure is taken pinned (BENCH_PIN=0: none);
#   - GET /api/users/@{handle}/short  vs the same SELECT from pgbench -M prepared
#     (the gateway caches found handles for 5 s; an unknown handle, never
#     cached, shows the uncached path through users-svc);
# plus the gateway's own overhead (routes answered from its process and
# caches, measured unloaded with one connection, since p99 at saturation is
# queueing on 2 cores), POST /api/messages (beside the same PutItem sent
# straight to dynalite, ddb_put.lua, and the DynamoDB requests per post counted
# by messages-svc, restarted around that run so that its shutdown line
# "dynamodb stats: requests=N" covers the posts alone), the CPU per request of
# our three processes together against dynalite's per raw Query (from /proc),
# and the gateway's resident memory after warm-up and at the end (over a
# million requests). Prints the ratios; with BENCH_RECORDS set, appends every
# figure as JSON lines to that file (tests/bench/run).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_PER_RUN=10
CONNS=16
THREADS=2
WORKERS=
while getopts "d:c:t:w:" o; do
  case $o in
    d) SECONDS_PER_RUN=$OPTARG ;;
    c) CONNS=$OPTARG ;;
    t) THREADS=$OPTARG ;;
    w) WORKERS=$OPTARG ;;
    *) echo "usage: $0 [-d SECONDS] [-c CONNECTIONS] [-t WRK_THREADS] [-w GATEWAY_WORKERS]" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
BUILD=${CRUDDUR_BENCH_BUILD:-$ROOT/build/bench}
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCRUDDUR_SANITIZE=OFF >/dev/null
cmake --build "$BUILD" --target users-svc messages-svc gateway -j "$(nproc)" >/dev/null

export CRUDDUR_SOURCE_DIR=$ROOT CRUDDUR_BUILD_DIR=$BUILD BENCH_SECONDS=$SECONDS_PER_RUN \
  BENCH_CONNS=$CONNS BENCH_THREADS=$THREADS BENCH_DIR=$ROOT/tests/bench BENCH_WORKERS=$WORKERS
exec /usr/bin/python3 - <<'PY'
import json, os, re, subprocess, sys, tempfile, time, urllib.error, urllib.request
sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
sys.path.insert(0, os.environ["BENCH_DIR"])
from stack import LOAD_TEST_LIMITS, Stack, pg_bindir
from benchlib import cpu_all, cpu_us_per, mem_kib, pin, record, stack_pids, target, wrk as wrk_run

secs = int(os.environ["BENCH_SECONDS"])
conns = int(os.environ["BENCH_CONNS"])
threads = int(os.environ["BENCH_THREADS"])
TABLE = "gateway routes (wrk, %d connections unless noted, %d s each)" % (conns, secs)


def wrk(url, script=None, env=None, duration=secs, c=None, t=None):
    return wrk_run(url, script, env, duration=duration, conns=c or conns, threads=t or threads)


def http(method, url, token=None, body=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=body and json.dumps(body).encode(), method=method, headers=h)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def ddb_stats(stack):
    """The DynamoDB request count of messages-svc's last life (its shutdown line)."""
    with open(stack.log_path("messages-svc"), errors="replace") as f:
        found = re.findall(r"dynamodb stats: requests=(\d+) retries=(\d+) failures=(\d+)", f.read())
    return tuple(int(x) for x in found[-1]) if found else (None, None, None)


with Stack() as s:
    s.postgres(); s.dynalite(); s.cognito()
    for h, n, e in (("andrewbrown", "Andrew Brown", "andrew@exampro.co"),
                    ("bayko", "Andrew Bayko", "bayko@exampro.co"), ("londo", "Londo Mollari", "lmollari@centari.com")):
        s.cognito_user(h, n, e)
    s.users_svc(migrate=True, seed=True, env={"RPC_WORKERS": str(max(4, conns))})
    s.run("users-svc", "sync-cognito", check=True)
    # Upstream worker pools sized to the load (the stack's default is 4), so
    # the comparison measures the path, not a queue in front of dynalite.
    s.messages_svc(schema=True, env={"RPC_WORKERS": str(max(4, conns))})
    gw_env = dict(LOAD_TEST_LIMITS, LOG_LEVEL="warn")
    if os.environ.get("BENCH_WORKERS"):
        gw_env["GATEWAY_WORKERS"] = os.environ["BENCH_WORKERS"]
    s.gateway(env=gw_env)
    gw = s.gateway_url
    token = s.token("andrewbrown")
    group = http("POST", gw + "/api/messages", token, {"message": "bench start", "handle": "bayko"})["message_group_uuid"]
    for i in range(40):
        http("POST", gw + "/api/messages", token, {"message": "seed %d" % i, "message_group_uuid": group})
    gw_pid = s.procs["gateway"].pid
    layout_pids = stack_pids(s, ("dynalite", "postgres", "cognito", "users-svc", "messages-svc", "gateway"))
    pinned = os.environ.get("BENCH_PIN", "1") != "0"
    layout = pin(layout_pids, pinned)
    env = {"TOKEN": token, "GROUP": group, "DDB_TABLE": "cruddur-messages", "AWS_REGION": "us-east-1"}
    results = {}

    def run(name, *a, cpu=None, **kw):
        """One wrk run, printed and recorded; cpu: {name: pid} whose CPU per request is reported."""
        before = cpu_all(cpu) if cpu else None
        r = wrk(*a, **kw)
        results[name] = r
        cols = {"rps": r["rps"], "p50_ms": r["p50"], "p99_ms": r["p99"], "requests": r["total"],
                "non2xx": r["non2xx"]}
        if kw.get("c"):
            cols["connections"] = kw["c"]
        if cpu:
            r["cpu"] = cpu_us_per(before, cpu_all(cpu), r["total"])
            cols.update({"cpu_us_per_req_" + n: round(v) for n, v in r["cpu"].items()})
        record("gateway", TABLE, name, **cols)
        print("%-44s %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  (%d requests, non-2xx %d%s)" % (
            name, r["rps"], r["p50"], r["p99"], r["total"], r["non2xx"],
            ", socket errors: " + r["sockerr"] if r["sockerr"] else ""), flush=True)
        return r

    print("gateway benchmark: %d s per run, %d connections, %d wrk threads, %d cores, GATEWAY_WORKERS=%s; %s" % (
        secs, conns, threads, os.cpu_count(), os.environ.get("BENCH_WORKERS") or "default", layout), flush=True)
    # Warm up (JWKS, token and user caches, channels) and take the first RSS.
    wrk(gw + "/api/users/@andrewbrown/short", duration=2)
    wrk(gw + "/api/messages/" + group, "gateway_auth.lua", env, duration=2)
    rss_start = mem_kib(gw_pid)["rss"]

    run("gateway GET /healthz (own overhead, 1 conn)", gw + "/healthz", c=1, t=1)
    run("gateway GET /api/messages/{bad} (caches, 1 conn)", gw + "/api/messages/not-a-uuid",
        "gateway_auth.lua", env, c=1, t=1)
    run("gateway GET /healthz (saturated)", gw + "/healthz")
    run("gateway GET /api/messages/{bad} (caches, saturated)", gw + "/api/messages/not-a-uuid",
        "gateway_auth.lua", env)
    run("gateway GET /api/users/@{handle}/short", gw + "/api/users/@andrewbrown/short")
    # Never cached (unknown handle, 404): every request goes through users-svc.
    run("gateway GET /api/users/@{unknown}/short (uncached)", gw + "/api/users/@nobody_here/short")
    # The raw ceiling for the handle lookup: users-svc's statement from pgbench.
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write("SELECT uuid::text, handle, display_name, coalesce(cognito_user_id, ''), created_at "
                "FROM users WHERE lower(handle) = lower('andrewbrown');\n")
        sql = f.name
    out = subprocess.run([os.path.join(pg_bindir(), "pgbench"), "-n", "-M", "prepared", "-c", str(conns),
                          "-j", str(threads), "-T", str(secs), "-f", sql, s.pg_url],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(sql)
    pg_tps = float(re.search(r"tps = ([\d.]+) \(without", out).group(1))
    pg_lat = re.search(r"latency average = ([\d.]+) ms", out)
    pg_avg = float(pg_lat.group(1)) if pg_lat else float("nan")
    record("gateway", TABLE, "raw pgbench SELECT by handle", rps=pg_tps, avg_ms=pg_avg)
    print("%-44s %9.0f tx/s   avg %7.3f ms" % ("raw pgbench SELECT by handle", pg_tps, pg_avg), flush=True)
    # Where the CPU goes on this route (2 cores shared by wrk, the gateway,
    # users-svc, messages-svc and dynalite): CPU time per request, by process.
    ours = ("gateway", "users-svc", "messages-svc")
    pids = {n: s.procs[n].pid for n in ours + ("dynalite",)}

    def fresh_dynalite(pin_it=pinned):
        """A new dynalite process (its data stays on disk), pinned or not."""
        s.restart("dynalite")
        pids["dynalite"] = layout_pids["dynalite"] = s.procs["dynalite"].pid
        pin(layout_pids, pin_it)

    # dynalite (4.0.0) keeps part of every Query on its heap for good: with
    # node --trace-gc its live heap after each full collection grew from 23 to
    # 217 MB over 20k Queries, and RSS passes 1 GB within a minute of load.
    # Its collections grow with that heap, so its rate drifts through a run
    # (back-to-back raw runs of 3 s: 728 to 1,196 req/s) and a long pause
    # lands on whichever run it hits. So the pairs alternate in short runs,
    # ours, raw, raw, ours, three blocks per layout, so the drift falls on
    # both alike; each side's rate is its mean over its six runs. Each block
    # starts on a fresh dynalite (its data is on disk) with both paths warm:
    # with one per layout the raw rate still fell by half over its twelve
    # runs (1,717 to 923/s pinned), and the last block decided the ratio.
    pair_secs, blocks = max(2, secs // 2), 3
    runs = {}

    def pair_run(mode, who, i):
        if who == "ours":
            r = run("gateway GET /api/messages/{uuid} (%s #%d)" % (mode, i), gw + "/api/messages/" + group,
                    "gateway_auth.lua", env, duration=pair_secs, cpu=pids)
        else:
            r = run("raw dynalite Query, same as ListMessages (%s #%d)" % (mode, i), s.ddb_url + "/",
                    "gateway_ddb_query.lua", env, duration=pair_secs, cpu={"dynalite": pids["dynalite"]})
        runs.setdefault((mode, who), []).append(r)

    for mode in (("pinned", "unpinned") if pinned else ("unpinned",)):
        for b in range(blocks):
            fresh_dynalite(mode == "pinned")
            wrk(gw + "/api/messages/" + group, "gateway_auth.lua", env, duration=2)
            wrk(s.ddb_url + "/", "gateway_ddb_query.lua", env, duration=2)
            for i, who in enumerate(("ours", "raw", "raw", "ours")):
                pair_run(mode, who, 2 * b + 1 + i // 2)
    pin(layout_pids, pinned)
    first = "pinned" if pinned else "unpinned"
    rate = {k: sum(r["rps"] for r in v) / len(v) for k, v in runs.items()}

    def cpu_per_req(rs):
        """CPU per request by process over runs rs (weighted by requests)."""
        n = sum(r["total"] for r in rs)
        return {p: sum(r["cpu"][p] * r["total"] for r in rs) / max(1, n) for p in rs[0]["cpu"]}

    msgs_cpu, raw_cpu = cpu_per_req(runs[first, "ours"]), cpu_per_req(runs[first, "raw"])
    run("gateway GET /api/message_groups", gw + "/api/message_groups", "gateway_auth.lua", env, cpu=pids)
    # POST into the existing group, with messages-svc restarted before and
    # after so that its request counter covers these posts alone, on a fresh
    # dynalite (see the GET pairs: its heap grows with every Query).
    fresh_dynalite()
    s.restart("messages-svc")
    pids["messages-svc"] = s.procs["messages-svc"].pid
    warm, deadline = 0, time.time() + 10
    while warm < 5 and time.time() < deadline:  # the gateway's channel reconnects first
        try:
            http("POST", gw + "/api/messages", token, {"message": "warm", "message_group_uuid": group})
            warm += 1
        except urllib.error.URLError:  # HTTPError included
            time.sleep(0.2)
    # Then 3 s of posts under load, not measured: the runs before never
    # wrote, so dynalite's write path (PutItem, UpdateItem, conditions) was
    # still cold (V8 had not compiled it), while the raw PutItem run below
    # comes after the posts and finds it warm. Measured cold, the posts
    # showed half their rate.
    warm_run = wrk(gw + "/api/messages", "gateway_post.lua", env, duration=3)
    warm += warm_run["total"] - warm_run["non2xx"]
    post = run("gateway POST /api/messages (into group)", gw + "/api/messages", "gateway_post.lua", env,
               duration=max(4, secs), cpu=pids)
    s.restart("messages-svc")
    pids["messages-svc"] = s.procs["messages-svc"].pid
    ddb_reqs, ddb_retries, ddb_failures = ddb_stats(s)
    posts = warm + post["total"] - post["non2xx"]
    per_post = ddb_reqs / max(1, posts) if ddb_reqs is not None else float("nan")
    print("dynamodb requests by messages-svc during the posts: %s (retries %s, failures %s; the start's "
          "health check and the first membership read included) for %d posts (%d warm-up) "
          "=> %.3f DynamoDB requests per POST" % (ddb_reqs, ddb_retries, ddb_failures, posts, warm, per_post),
          flush=True)
    put = run("raw dynalite PutItem (same as a post's message)", s.ddb_url + "/", "ddb_put.lua", env,
              duration=max(4, secs), cpu={"dynalite": pids["dynalite"]})
    rss_mid = mem_kib(gw_pid)["rss"]
    # Many cheap requests for the memory check.
    run("gateway GET /healthz (long, for RSS)", gw + "/healthz", duration=secs * 3)
    rss_end = mem_kib(gw_pid)
    with urllib.request.urlopen(gw + "/metrics") as r:
        metrics = r.read().decode()
    served = sum(int(v) for v in re.findall(r"^gateway_http_requests_total\{.*\} (\d+)$", metrics, re.M))

    print()
    short = results["gateway GET /api/users/@{handle}/short"]
    own = results["gateway GET /api/messages/{bad} (caches, 1 conn)"]
    if pinned:
        target("gateway", "GET /api/messages/{uuid} / raw dynalite Query, pinned (%d runs each)" % (2 * blocks),
               rate["pinned", "ours"] / rate["pinned", "raw"], ">=", 0.95, issue=16,
               note="%.0f vs %.0f req/s" % (rate["pinned", "ours"], rate["pinned", "raw"]))
    target("gateway", "GET /api/messages/{uuid} / raw dynalite Query, unpinned (%d runs each)" % (2 * blocks),
           rate["unpinned", "ours"] / rate["unpinned", "raw"], ">=", 0.75, issue=16,
           note="%.0f vs %.0f req/s" % (rate["unpinned", "ours"], rate["unpinned", "raw"]))
    c = msgs_cpu
    ours_cpu = sum(c[n] for n in ours)
    print("CPU per GET /api/messages/{uuid} (%s): gateway %.0f us, users-svc %.0f us, messages-svc %.0f us, "
          "dynalite %.0f us (dynalite per raw Query: %.0f us)" % (first, c["gateway"], c["users-svc"],
                                                                 c["messages-svc"], c["dynalite"], raw_cpu["dynalite"]))
    target("gateway", "CPU per GET /api/messages/{uuid} of gateway+users-svc+messages-svc / dynalite CPU per raw Query",
           ours_cpu / raw_cpu["dynalite"], "<=", 0.25, issue=8,
           note="%.0f us vs %.0f us" % (ours_cpu, raw_cpu["dynalite"]))
    target("gateway", "GET /api/users/@{handle}/short / raw pgbench", short["rps"] / pg_tps, ">=", 0.5, issue=8,
           note="handle cache on")
    print("ratio same, uncached (unknown handle via users-svc)   = %.2f" % (
        results["gateway GET /api/users/@{unknown}/short (uncached)"]["rps"] / pg_tps))
    target("gateway", "DynamoDB requests per POST /api/messages (existing group)", per_post, "<=", 4, issue=8,
           fmt="%.3f", label="target")
    target("gateway", "POST /api/messages / (raw PutItem rate / %.3f DynamoDB requests)" % per_post,
           post["rps"] / (put["rps"] / per_post), ">=", 0.6, issue=8,
           note="%.0f vs %.0f/%.3f req/s" % (post["rps"], put["rps"], per_post))
    target("gateway", "gateway own overhead p99, cached auth route, 1 conn (ms)", own["p99"], "<", 1, issue=5,
           fmt="%.3f", label="target")
    print("gateway own overhead p99 (/healthz, 1 conn)           = %.3f ms" % results["gateway GET /healthz (own overhead, 1 conn)"]["p99"])
    print("gateway RSS: %d KiB after warm-up, %d KiB mid-run, %d KiB after %d requests served (VmHWM %d KiB)" % (
        rss_start, rss_mid, rss_end["rss"], served, rss_end["hwm"]))
    record("gateway", "gateway resident memory in this run (KiB)", "VmRSS",
           after_warmup=rss_start, mid_run=rss_mid, end=rss_end["rss"], end_hwm=rss_end["hwm"], requests_served=served)
    target("gateway", "gateway RSS growth warm-up -> %d requests (%%)" % served,
           100.0 * (rss_end["rss"] - rss_start) / rss_start, "<=", 10, issue=5, fmt="%.1f", label="target")
PY
