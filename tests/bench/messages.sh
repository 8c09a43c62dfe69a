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
# Prints calls/s, p50/p99, the ratios, DynamoDB requests per call and the
# service's RSS at 10k calls and at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CALLS=${1:-200000}
THREADS=${2:-16}
CREATE_CALLS=${CREATE_CALLS:-20000}
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

export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DPORT" DDB_MESSAGE_TABLE=cruddur-messages
export PAGE_TOKEN_SECRET=bench-page-token-secret-0123456789abcdef
export RPC_WORKERS=${RPC_WORKERS:-16}
SVC="$BUILD/messages-svc/messages-svc"
"$SVC" schema-load >/dev/null

start_svc() {
  MPORT=$(free_port)
  MESSAGES_LISTEN="127.0.0.1:$MPORT" LOG_LEVEL=${BENCH_LOG_LEVEL:-info} "$SVC" >"$TMP/svc-$1.log" 2>&1 &
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
  "$BUILD/messages-svc/messages_bench" "$name" --addr "127.0.0.1:$MPORT" --ddb "$AWS_ENDPOINT_URL_DYNAMODB" \
    --threads "$THREADS" --calls "$calls" --pid "$SVC_PID" | tee "$TMP/$name.out"
  stop_svc
  local reqs
  reqs=$(grep -o 'requests=[0-9]*' "$TMP/svc-$name.log" | tail -1 | cut -d= -f2)
  # The setup's own DynamoDB requests (printed by the client) are subtracted.
  local setup warm=0
  setup=$(sed -n 's/.*setup_ddb=\([0-9]*\).*/\1/p' "$TMP/$name.out")
  [ "$name" = list ] && warm=200
  echo "dynamodb requests in phase $name: $reqs (setup $setup) for $calls measured + $warm warmup RPCs"
  /usr/bin/python3 -c "print('  => %.3f DynamoDB requests per $name RPC' % (($reqs - $setup) / ($calls + $warm)))"
}

echo "== messages-svc benchmark: $THREADS in flight, dynalite in memory, $(nproc) cores"
phase list "$CALLS"
phase create "$CREATE_CALLS"
phase create-rid "$CREATE_CALLS"
