#!/usr/bin/env bash
# Benchmark of messages-svc against dynalite (not a test; takes a few minutes).
#
#   tests/bench/messages.sh [CALLS] [THREADS]     defaults: 200000 16
#
# Builds an optimised tree (build/bench-messages, no sanitizers), starts an
# in-memory dynalite and messages-svc on free ports, and runs three phases,
# each against a fresh messages-svc so that its DynamoDB request counter
# (logged at shutdown) belongs to that phase alone:
#   list        ListMessages (page 20) vs the same Query sent straight to dynalite
#   create      CreateMessage (no request_id) vs a raw PutItem
#   create-rid  CreateMessage with a request_id
#   mem         MEM_CALLS (default 500000) calls of a mix (1 in 25 each of
#               ListMessages, CreateMessage, ListMessageGroups, the rest
#               refused before any I/O): VmRSS/VmHWM idle and at the end
# Prints calls/s, p50/p99, the ratios (CreateMessage also against the raw
# PutItem rate divided by its DynamoDB request count), DynamoDB requests per
# call and the service's RSS at 10k calls and at the end. With BENCH_RECORDS
# set, appends the figures as JSON lines to that file (tests/bench/run).
# The rig is pinned as in benchlib.pin (BENCH_PIN=0: not): dynalite on core 0,
# messages-svc and the client (which also sends the raw requests) on core 1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CALLS=${1:-200000}
THREADS=${2:-16}
CREATE_CALLS=${CREATE_CALLS:-20000}
MEM_CALLS=${MEM_CALLS:-500000}
BUILD=${BENCH_BUILD:-$ROOT/build/bench-messages}

if [ -z "${BENCH_NO_BUILD:-}" ]; then  # BENCH_NO_BUILD=1 reuses the last build
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCRUDDUR_SANITIZE=OFF >/dev/null
  cmake --build "$BUILD" --target messages-svc messages_bench -j2 >/dev/null
fi

TMP=$(mktemp -d)
DYN_PID=""
SVC_PID=""
cleanup() {
  [ -n "$SVC_PID" ] && kill "$SVC_PID" 2>/dev/null || true
  [ -n "$DYN_PID" ] && kill "$DYN_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "${KEEP_TMP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DPORT=$(free_port)
"$ROOT/deploy/local/node_modules/.bin/dynalite" --host 127.0.0.1 --port "$DPORT" \
  --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 >"$TMP/dynalite.log" 2>&1 &
DYN_PID=$!
for _ in $(seq 100); do curl -s "http://127.0.0.1:$DPORT/" >/dev/null && break; sleep 0.1; done
ON_CHAIN=()  # the command prefix that puts our processes and the client on core 1
LAYOUT=unpinned
if [ "${BENCH_PIN:-1}" != 0 ] && [ "$(nproc)" -ge 2 ]; then
  taskset -a -p -c 0 "$DYN_PID" >/dev/null
  ON_CHAIN=(taskset -c 1)
  LAYOUT="pinned: dynalite on core 0; client and messages-svc on core 1"
fi

export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DPORT" DDB_MESSAGE_TABLE=cruddur-messages
export PAGE_TOKEN_SECRET=bench-page-token-secret-0123456789abcdef
export RPC_WORKERS=${RPC_WORKERS:-16}
SVC="$BUILD/messages-svc/messages-svc"
"${ON_CHAIN[@]}" "$SVC" schema-load >/dev/null

start_svc() {
  MPORT=$(free_port)
  MESSAGES_LISTEN="127.0.0.1:$MPORT" LOG_LEVEL=${BENCH_LOG_LEVEL:-info} "${ON_CHAIN[@]}" "$SVC" >"$TMP/svc-$1.log" 2>&1 &
  SVC_PID=$!
  for _ in $(seq 100); do
    grep -q listening "$TMP/svc-$1.log" 2>/dev/null && break
    sleep 0.05
  done
}
stop_svc() {
  kill -TERM "$SVC_PID"
  wait "$SVC_PID" || true
  SVC_PID=""
}

phase() {
  local name=$1 calls=$2
  start_svc "$name"
  "${ON_CHAIN[@]}" "$BUILD/messages-svc/messages_bench" "$name" --addr "127.0.0.1:$MPORT" --ddb "$AWS_ENDPOINT_URL_DYNAMODB" \
    --threads "$THREADS" --calls "$calls" --pid "$SVC_PID" | tee "$TMP/$name.out"
  stop_svc
  local reqs
  reqs=$(grep -o 'requests=[0-9]*' "$TMP/svc-$name.log" | tail -1 | cut -d= -f2)
  # The setup's own DynamoDB requests (printed by the client) are subtracted.
  local setup warm=0
  setup=$(sed -n 's/.*setup_ddb=\([0-9]*\).*/\1/p' "$TMP/$name.out")
  [ "$name" = list ] && warm=200
  echo "dynamodb requests in phase $name: $reqs (setup $setup) for $calls measured + $warm warmup RPCs"
  /usr/bin/python3 -c "print('  => %.3f DynamoDB requests per $name RPC' % (($reqs - $setup) / ($calls + $warm)))" \
    | tee -a "$TMP/$name.out"
}

# The service's memory: idle right after start, then after MEM_CALLS calls.
mem_phase() {
  start_svc mem
  "${ON_CHAIN[@]}" "$BUILD/messages-svc/messages_bench" mem --addr "127.0.0.1:$MPORT" --ddb "$AWS_ENDPOINT_URL_DYNAMODB" \
    --threads "$THREADS" --calls "$MEM_CALLS" --pid "$SVC_PID" | tee "$TMP/mem.out"
  stop_svc
}

echo "== messages-svc benchmark: $THREADS in flight, dynalite in memory, $(nproc) cores; $LAYOUT"
phase list "$CALLS"
phase create "$CREATE_CALLS"
phase create-rid "$CREATE_CALLS"
mem_phase

BENCH_TMP=$TMP CRUDDUR_SOURCE_DIR=$ROOT THREADS=$THREADS /usr/bin/python3 - <<'PY'
import os, re, sys
sys.path.insert(0, os.path.join(os.environ.get("CRUDDUR_SOURCE_DIR", "."), "tests", "bench"))
from benchlib import record, target, MIB

tmp = os.environ["BENCH_TMP"]
res, per = {}, {}
for name in ("list", "create", "create-rid", "mem"):
    try:
        text = open(os.path.join(tmp, name + ".out")).read()
    except OSError:
        continue
    for m in re.finditer(r"^result (.+?)\s+calls=(\d+) threads=\d+ errors=(\d+) rate=(\d+)/s "
                         r"p50=([\d.]+)ms p99=([\d.]+)ms(.*)$", text, re.M):
        extra = dict(re.findall(r"(\w+)=(\d+)", m.group(7)))
        res[m.group(1)] = {"calls": int(m.group(2)), "errors": int(m.group(3)), "rps": float(m.group(4)),
                           "p50": float(m.group(5)), "p99": float(m.group(6)),
                           "rss_10k": int(extra["rss_10k"]) if "rss_10k" in extra else None,
                           "rss_end": int(extra["rss_end"]) if "rss_end" in extra else None,
                           "cpu": int(extra["svc_cpu"]) if "svc_cpu" in extra else None}
    m = re.search(r"=> ([\d.]+) DynamoDB requests per", text)
    if m:
        per[name] = float(m.group(1))
    m = re.search(r"^mem (.*)$", text, re.M)
    if m:
        res["mem"] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}

T = "messages-svc over gRPC (C client, %s in flight) vs raw dynalite" % os.environ.get("THREADS", "16")
ceil = {"grpc ListMessages": "raw Query", "grpc CreateMessage": "raw PutItem"}
for name, r in res.items():
    if name == "mem" or name == "warmup":
        continue
    cols = {"calls": r["calls"], "errors": r["errors"], "rps": r["rps"], "p50_ms": r["p50"], "p99_ms": r["p99"]}
    if r["cpu"] is not None:
        cols["svc_cpu_us_per_call"] = r["cpu"]
    if r["rss_10k"] is not None:
        cols["rss_10k_kib"], cols["rss_end_kib"] = r["rss_10k"], r["rss_end"]
    key = {"grpc ListMessages": "list", "grpc CreateMessage": "create", "grpc CreateMessage+rid": "create-rid"}.get(name)
    if key in per:
        cols["ddb_requests_per_call"] = per[key]
    if name in ceil and ceil[name] in res:
        cols["ratio_to_raw"] = round(r["rps"] / res[ceil[name]]["rps"], 3)
    record("messages", T, name, **cols)

lst, q = res.get("grpc ListMessages"), res.get("raw Query")
if lst and q:
    target("messages", "ListMessages / raw Query rate", lst["rps"] / q["rps"], ">=", 0.8, issue=4)
    if lst["rss_10k"] and lst["rss_end"]:
        target("messages", "messages-svc RSS growth 10k -> %d ListMessages calls (%%)" % lst["calls"],
               100.0 * (lst["rss_end"] - lst["rss_10k"]) / lst["rss_10k"], "<=", 10, issue=4,
               fmt="%.1f", label="target")
cr, put = res.get("grpc CreateMessage"), res.get("raw PutItem")
if "create" in per:
    target("messages", "DynamoDB requests per CreateMessage (gRPC, existing group)", per["create"], "<=", 4, issue=8,
           fmt="%.3f", label="target")
if "create-rid" in per:
    target("messages", "DynamoDB requests per CreateMessage with request_id", per["create-rid"], "<=", 4, issue=4,
           fmt="%.3f", label="target")
if cr and put and per.get("create"):
    target("messages", "CreateMessage / (raw PutItem rate / %.3f DynamoDB requests)" % per["create"],
           cr["rps"] / (put["rps"] / per["create"]), ">=", 0.6, issue=8)
mem = res.get("mem")
if mem:
    mix = res.get("grpc mix (mem)", {})
    record("memory", "Resident memory of each binary (VmRSS / VmHWM, KiB)", "messages-svc",
           workload="gRPC from the C client: %d real calls (ListMessages, CreateMessage, ListMessageGroups "
                    "in turn; %d ListMessageGroups answered OK but empty, see messages_bench.c) among "
                    "ListMessages refused before any I/O" % (mem["real"], mem["groups_empty"]),
           requests=mem["calls"], errors=mix.get("errors"),
           idle_rss_kib=mem["idle_rss"], idle_hwm_kib=mem["idle_hwm"],
           end_rss_kib=mem["end_rss"], end_hwm_kib=mem["end_hwm"])
    # The memory targets (RssAnon and Pss with the three binaries running)
    # are checked in scale.sh, where the three run together.
PY
