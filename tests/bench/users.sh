#!/usr/bin/env bash
# Benchmark of users-svc GetUser by handle (not a test; see users-svc/README.md).
#
#   tests/bench/users.sh [-c CONCURRENCY] [-n CALLS] [-T PGBENCH_SECONDS]
#
# Builds an optimised, sanitizer-free build in build/bench, starts PostgreSQL
# and users-svc on free ports (tests/stack), then measures in the same run:
#   1. users_bench: CONCURRENCY GetUser calls in flight over gRPC on loopback
#      (one client thread, one completion queue)
#      until CALLS calls (calls/s, p50, p99, users-svc RSS at 10k and 200k);
#   2. pgbench -M prepared -c CONCURRENCY with the same SELECT users-svc runs;
# and prints the ratio gRPC calls/s / pgbench transactions/s, the service's
# CPU per call and its VmRSS / VmHWM idle (right after start) and at the end.
# Both run on the pinned rig (benchlib.pin: PostgreSQL on core 0, users-svc,
# users_bench and pgbench on core 1: the target); then a shorter pair runs
# unpinned, for information (BENCH_PIN=0: unpinned only).
# With BENCH_RECORDS set, appends the figures as JSON lines to that file.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CONC=4
CALLS=200000
PG_SECONDS=15
while getopts "c:n:T:" o; do
  case $o in
    c) CONC=$OPTARG ;;
    n) CALLS=$OPTARG ;;
    T) PG_SECONDS=$OPTARG ;;
    *) echo "usage: $0 [-c CONCURRENCY] [-n CALLS] [-T PGBENCH_SECONDS]" >&2; exit 2 ;;
  esac
done
BUILD=${CRUDDUR_BENCH_BUILD:-$ROOT/build/bench}
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCRUDDUR_SANITIZE=OFF >/dev/null
cmake --build "$BUILD" --target users-svc users_bench -j "$(nproc)" >/dev/null

export CRUDDUR_SOURCE_DIR=$ROOT CRUDDUR_BUILD_DIR=$BUILD BENCH_CONC=$CONC BENCH_CALLS=$CALLS \
  BENCH_PG_SECONDS=$PG_SECONDS
exec /usr/bin/python3 - <<'PY'
import os, subprocess, sys, tempfile
sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "bench"))
from stack import Stack, pg_bindir
from benchlib import cpu_s, mem_kib, pin, record, stack_pids, target

conc = int(os.environ["BENCH_CONC"])
calls = int(os.environ["BENCH_CALLS"])
pg_secs = int(os.environ["BENCH_PG_SECONDS"])
build = os.environ["CRUDDUR_BUILD_DIR"]
# The statement users-svc prepares for GetUser by handle (src/usr_db.c).
SQL = ("SELECT uuid::text, handle, display_name, coalesce(cognito_user_id, ''),"
       " (extract(epoch FROM created_at) * 1000000)::int8"
       " FROM users WHERE lower(handle) = lower(:h);\n")

def pgbench(s):
    """pgbench -M prepared with users-svc's statement: (tps, latency text)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(SQL.replace(":h", "'andrewbrown'"))
        script = f.name
    pb = subprocess.run([os.path.join(pg_bindir(), "pgbench"), "-n", "-M", "prepared",
                         "-c", str(conc), "-j", str(conc), "-T", str(pg_secs), "-f", script,
                         s.pg_url], capture_output=True, text=True, check=True)
    os.unlink(script)
    tps = lat = None
    for line in pb.stdout.splitlines():
        if line.startswith("tps ="):
            tps = float(line.split()[2])
        if line.startswith("latency average"):
            lat = line.split("=")[1].strip()
    return tps, lat


def bench(s, pid, n):
    """users_bench for n calls: its key=value figures."""
    r = subprocess.run([os.path.join(build, "users-svc", "users_bench"), "-a", s.users_addr,
                        "-c", str(conc), "-n", str(n), "-T", "300", "-p", str(pid)],
                       capture_output=True, text=True, check=True)
    return dict(l.split("=", 1) for l in r.stdout.split())


with Stack() as s:
    s.postgres()
    s.users_svc(migrate=True, seed=True,
                env={"RPC_WORKERS": str(conc), "PG_POOL_SIZE": str(conc), "LOG_LEVEL": "warn"})
    pid = s.procs["users-svc"].pid
    layout_pids = stack_pids(s, ("postgres", "users-svc"))
    pinned = os.environ.get("BENCH_PIN", "1") != "0"
    layout = pin(layout_pids, pinned)
    idle = mem_kib(pid)
    cpu0 = cpu_s(pid)
    g = bench(s, pid, calls)
    cpu_per_call = (cpu_s(pid) - cpu0) / max(1, int(g["calls"])) * 1e6
    end = mem_kib(pid)
    tps, lat = pgbench(s)
    print("users-svc GetUser by handle over gRPC (%d in flight, %s calls in %s s; %s)" % (
        conc, g["calls"], g["seconds"], layout))
    print("  calls/s %s   p50 %s us   p99 %s us   p99.9 %s us   errors %s" % (
        g["calls_per_s"], g["p50_us"], g["p99_us"], g["p999_us"], g["errors"]))
    print("  users-svc RSS: start %s kB, after 10k calls %s kB, after 200k calls %s kB (%s%%)" % (
        g.get("rss_start_kb"), g.get("rss_10k_kb"), g.get("rss_200k_kb"),
        g.get("rss_growth_pct", "n/a")))
    print("pgbench -M prepared -c %d -T %d, same SELECT" % (conc, pg_secs))
    print("  tps %.0f   latency average %s" % (tps, lat))
    print("ratio gRPC/pgbench: %.2f" % (float(g["calls_per_s"]) / tps))
    print("  users-svc CPU %.0f us/call; VmRSS idle %d kB -> %d kB after %s calls (VmHWM %d kB)" % (
        cpu_per_call, idle["rss"], end["rss"], g["calls"], end["hwm"]))
    T = "users-svc GetUser by handle over gRPC (C client, c=%d) vs pgbench" % conc
    record("users", T, "gRPC GetUser", calls=int(g["calls"]), errors=int(g["errors"]),
           rps=float(g["calls_per_s"]), p50_ms=int(g["p50_us"]) / 1000, p99_ms=int(g["p99_us"]) / 1000,
           svc_cpu_us_per_call=round(cpu_per_call), rss_10k_kib=int(g.get("rss_10k_kb", -1)),
           rss_200k_kib=int(g.get("rss_200k_kb", -1)), rss_end_kib=end["rss"],
           ratio_to_raw=round(float(g["calls_per_s"]) / tps, 3))
    record("users", T, "raw pgbench -M prepared (same SELECT)", rps=tps,
           avg_ms=float(lat.split()[0]) if lat else None)
    record("memory", "Resident memory of each binary (VmRSS / VmHWM, KiB)", "users-svc",
           workload="GetUser by handle over gRPC from the C client (PostgreSQL behind)",
           requests=int(g["calls"]), errors=int(g["errors"]), idle_rss_kib=idle["rss"],
           idle_hwm_kib=idle["hwm"], idle_anon_kib=idle["anon"], idle_pss_kib=idle["pss"], end_rss_kib=end["rss"], end_hwm_kib=end["hwm"])
    target("users", "GetUser gRPC / pgbench rate (%s)" % ("pinned" if pinned else "unpinned"),
           float(g["calls_per_s"]) / tps, ">=", 0.25, issue=16)
    if pinned:  # the same pair unpinned, shorter, for information
        pin(layout_pids, False)
        gu = bench(s, pid, min(calls, 100000))
        tps_u, lat_u = pgbench(s)
        print("unpinned (for information): calls/s %s, pgbench tps %.0f, ratio gRPC/pgbench: %.2f" % (
            gu["calls_per_s"], tps_u, float(gu["calls_per_s"]) / tps_u))
        record("users", T, "gRPC GetUser, unpinned", calls=int(gu["calls"]), errors=int(gu["errors"]),
               rps=float(gu["calls_per_s"]), p50_ms=int(gu["p50_us"]) / 1000, p99_ms=int(gu["p99_us"]) / 1000,
               ratio_to_raw=round(float(gu["calls_per_s"]) / tps_u, 3))
        record("users", T, "raw pgbench, unpinned", rps=tps_u, avg_ms=float(lat_u.split()[0]) if lat_u else None)
    target("users", "GetUser p99 (ms)", int(g["p99_us"]) / 1000, "<", 2, issue=3, fmt="%.3f", label="target")
    if int(g.get("rss_10k_kb", -1)) > 0 and int(g.get("rss_200k_kb", -1)) > 0:
        target("users", "users-svc RSS growth 10k -> 200k calls (%)", float(g["rss_growth_pct"]), "<=", 10,
               issue=3, fmt="%.1f", label="target")
    # The memory targets (RssAnon and Pss with the three binaries running)
    # are checked in scale.sh, where the three run together.
PY
