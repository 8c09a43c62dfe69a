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
#     dynalite (wrk + gateway_ddb_query.lua);
#   - GET /api/users/@{handle}/short  vs the same SELECT from pgbench -M prepared
#     (the gateway caches found handles for 5 s; an unknown handle, never
#     cached, shows the uncached path through users-svc);
# plus the gateway's own overhead (routes answered from its process and
# caches, measured unloaded with one connection, since p99 at saturation is
# queueing on 2 cores), POST /api/messages, and the gateway's resident memory
# after warm-up and at the end (over a million requests). Prints the ratios.
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
import json, os, re, subprocess, sys, tempfile, urllib.request
sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
from stack import Stack, pg_bindir

secs = int(os.environ["BENCH_SECONDS"])
conns = int(os.environ["BENCH_CONNS"])
threads = int(os.environ["BENCH_THREADS"])
bench = os.environ["BENCH_DIR"]
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)$", v)
    return float(m.group(1)) * UNIT[m.group(2)] if m else float("nan")


def wrk(url, script=None, env=None, duration=secs, c=None, t=None):
    cmd = ["wrk", "-t%d" % (t or threads), "-c%d" % (c or conns), "-d%ds" % duration, "--latency"]
    if script:
        cmd += ["-s", os.path.join(bench, script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, env=dict(os.environ, **(env or {})),
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "total": total,
            "non2xx": int(bad.group(1)) if bad else 0, "sockerr": errs.group(1) if errs else ""}


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def cpu_s(pid):
    """User + system CPU seconds a process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http(method, url, token=None, body=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=body and json.dumps(body).encode(), method=method, headers=h)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


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
    gw_env = {"LOG_LEVEL": "warn"}
    if os.environ.get("BENCH_WORKERS"):
        gw_env["GATEWAY_WORKERS"] = os.environ["BENCH_WORKERS"]
    s.gateway(env=gw_env)
    gw = s.gateway_url
    token = s.token("andrewbrown")
    group = http("POST", gw + "/api/messages", token, {"message": "bench start", "handle": "bayko"})["message_group_uuid"]
    for i in range(40):
        http("POST", gw + "/api/messages", token, {"message": "seed %d" % i, "message_group_uuid": group})
    gw_pid = s.procs["gateway"].pid
    env = {"TOKEN": token, "GROUP": group, "DDB_TABLE": "cruddur-messages", "AWS_REGION": "us-east-1"}
    results = {}

    def run(name, *a, **kw):
        r = wrk(*a, **kw)
        results[name] = r
        print("%-44s %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  (%d requests, non-2xx %d%s)" % (
            name, r["rps"], r["p50"], r["p99"], r["total"], r["non2xx"],
            ", socket errors: " + r["sockerr"] if r["sockerr"] else ""), flush=True)
        return r

    print("gateway benchmark: %d s per run, %d connections, %d wrk threads, %d cores, GATEWAY_WORKERS=%s" % (
        secs, conns, threads, os.cpu_count(), os.environ.get("BENCH_WORKERS") or "default"), flush=True)
    # Warm up (JWKS, token and user caches, channels) and take the first RSS.
    wrk(gw + "/api/users/@andrewbrown/short", duration=2)
    wrk(gw + "/api/messages/" + group, "gateway_auth.lua", env, duration=2)
    rss_start = rss_kb(gw_pid)

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
    print("%-44s %9.0f tx/s   avg %7.3f ms" % ("raw pgbench SELECT by handle", pg_tps,
                                               float(pg_lat.group(1)) if pg_lat else float("nan")), flush=True)
    # Where the CPU goes on this route (2 cores shared by wrk, the gateway,
    # messages-svc and dynalite): CPU time per request, by process.
    pids = {n: s.procs[n].pid for n in ("gateway", "messages-svc", "dynalite")}
    before = {n: cpu_s(p) for n, p in pids.items()}
    r = run("gateway GET /api/messages/{uuid}", gw + "/api/messages/" + group, "gateway_auth.lua", env)
    cpu_per_req = {n: (cpu_s(p) - before[n]) / max(1, r["total"]) * 1e6 for n, p in pids.items()}
    before_raw = cpu_s(pids["dynalite"])
    r = run("raw dynalite Query (same as ListMessages)", s.ddb_url + "/", "gateway_ddb_query.lua", env)
    raw_cpu = (cpu_s(pids["dynalite"]) - before_raw) / max(1, r["total"]) * 1e6
    run("gateway GET /api/message_groups", gw + "/api/message_groups", "gateway_auth.lua", env)
    run("gateway POST /api/messages (into group)", gw + "/api/messages", "gateway_post.lua", env,
        duration=max(2, secs // 2))
    rss_mid = rss_kb(gw_pid)
    # Many cheap requests for the memory check.
    run("gateway GET /healthz (long, for RSS)", gw + "/healthz", duration=secs * 3)
    rss_end = rss_kb(gw_pid)
    with urllib.request.urlopen(gw + "/metrics") as r:
        metrics = r.read().decode()
    served = sum(int(v) for v in re.findall(r"^gateway_http_requests_total\{[^}]*\} (\d+)$", metrics, re.M))

    print()
    short, msgs = results["gateway GET /api/users/@{handle}/short"], results["gateway GET /api/messages/{uuid}"]
    raw_q = results["raw dynalite Query (same as ListMessages)"]
    own = results["gateway GET /api/messages/{bad} (caches, 1 conn)"]
    print("ratio GET /api/messages/{uuid} / raw dynalite Query   = %.2f  (target >= 0.8)" % (msgs["rps"] / raw_q["rps"]))
    print("CPU per GET /api/messages/{uuid}: gateway %.0f us, messages-svc %.0f us, dynalite %.0f us "
          "(dynalite per raw Query: %.0f us)" % (cpu_per_req["gateway"], cpu_per_req["messages-svc"],
                                                 cpu_per_req["dynalite"], raw_cpu))
    print("ratio GET /api/users/@{handle}/short / raw pgbench    = %.2f  (target >= 0.5; handle cache on)" % (short["rps"] / pg_tps))
    print("ratio same, uncached (unknown handle via users-svc)   = %.2f" % (
        results["gateway GET /api/users/@{unknown}/short (uncached)"]["rps"] / pg_tps))
    print("gateway own overhead p99 (cached auth route, 1 conn)  = %.3f ms (target < 1 ms)" % own["p99"])
    print("gateway own overhead p99 (/healthz, 1 conn)           = %.3f ms" % results["gateway GET /healthz (own overhead, 1 conn)"]["p99"])
    print("gateway RSS: %d KiB after warm-up, %d KiB mid-run, %d KiB after %d requests served" % (
        rss_start, rss_mid, rss_end, served))
PY
