#!/usr/bin/env bash
# Live delivery through the gateway (GET /api/events, server-sent events):
# the cost of idle streams and the delivery latency. Not a test.
#
#   tests/bench/sse.sh [-n IDLE_STREAMS] [-m MESSAGES]
#
# Builds the optimised build in build/bench, starts the whole stack on free
# ports (tests/stack) with two messages-svc replicas over one dynalite and a
# gateway on each, then:
#  1. reads gateway A's (and its messages-svc's) VmRSS, RssAnon and thread
#     count, opens IDLE_STREAMS (default 10000) event streams on gateway A
#     for users nobody writes to (1000 each: messages-svc allows at most 1024
#     streams per user; rows added to PostgreSQL, tokens minted with
#     cognito-local's key), waits, and reads them again: targets <= 64 MiB
#     more RSS and <= 8 more threads;
#  2. with those streams still open, posts MESSAGES (default 200) messages
#     one after another through gateway A and times each from the POST to its
#     `message` event on a stream of the recipient on gateway A (same replica)
#     and on gateway B (the other replica): p50 and p99. Targets: same
#     replica p99 <= 50 ms; other replica p99 <= 1100 ms (busy poll interval
#     <= 1 s, + 100 ms).
# With BENCH_RECORDS set, appends every figure as JSON lines to that file.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STREAMS=10000
MESSAGES=200
while getopts "n:m:" o; do
  case $o in
    n) STREAMS=$OPTARG ;;
    m) MESSAGES=$OPTARG ;;
    *) echo "usage: $0 [-n IDLE_STREAMS] [-m MESSAGES]" >&2; exit 2 ;;
  esac
done
BUILD=${CRUDDUR_BENCH_BUILD:-$ROOT/build/bench}
if [ -z "${BENCH_NO_BUILD:-}" ]; then  # BENCH_NO_BUILD=1 reuses the last build
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCRUDDUR_SANITIZE=OFF >/dev/null
  cmake --build "$BUILD" --target users-svc messages-svc gateway -j "$(nproc)" >/dev/null
fi
export CRUDDUR_SOURCE_DIR=$ROOT CRUDDUR_BUILD_DIR=$BUILD BENCH_DIR=$ROOT/tests/bench \
  BENCH_STREAMS=$STREAMS BENCH_MESSAGES=$MESSAGES
exec /usr/bin/python3 - <<'PY'
import os, resource, sys, threading, time
sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "integration"))
sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "hostile"))
sys.path.insert(0, os.environ["BENCH_DIR"])
import subprocess  # noqa: E402
from hostile import Minter  # noqa: E402
from stack import LOAD_TEST_LIMITS, Stack  # noqa: E402
from benchlib import mem_kib, record, target  # noqa: E402
from test_events import USERS, Sse, EventsTest  # noqa: E402  (the raw SSE client, the POST helper)

N = int(os.environ["BENCH_STREAMS"])
M = int(os.environ["BENCH_MESSAGES"])
# Every stream is a socket here and in the gateway: the children inherit this.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = min(hard, max(soft, 2 * N + 4096))
resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
if want < N + 1024:
    sys.exit("the descriptor limit (%d) is too low for %d streams: raise ulimit -n" % (want, N))


def threads(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


class Bench(EventsTest):
    """EventsTest's stack (two replicas, two gateways) with the caps opened up."""


s = Stack()
extra = {}
try:
    s.postgres(); s.dynalite(); s.cognito()
    for h, (n, e) in USERS.items():
        s.cognito_user(h, n, e)
    s.users_svc(migrate=True, seed=True)
    s.run("users-svc", "sync-cognito", check=True)
    watch_caps = {"WATCH_MAX_STREAMS": str(N + 100), "WATCH_MAX_STREAMS_PER_USER": "1024"}
    s.messages_svc(schema=True, env=watch_caps)
    Bench.s, Bench.extra = s, extra
    msgs_b = s.messages_replica(2, env=watch_caps)
    caps = {**LOAD_TEST_LIMITS,  # -m messages posted one after another: no 429
            "GATEWAY_SSE_MAX_STREAMS": str(N + 100), "GATEWAY_SSE_MAX_STREAMS_PER_USER": "1000",
            "GATEWAY_MAX_CONNECTIONS": "4096"}
    gw_a = s.gateway(env=dict(caps))
    Bench.gw_b_env = dict(caps, MESSAGES_ADDR=msgs_b, GATEWAY_LISTEN="127.0.0.1:%d" % s._port("gateway_b"))
    gw_b = Bench.start_gateway_b()
    Bench.tokens = tokens = {h: s.token(h) for h in USERS}
    gpid, mpid = s.procs["gateway"].pid, s.procs["messages-svc"].pid
    # Idle users: 1000 streams each.
    minter = Minter(s.issuer, s.client_id)
    idle_tokens = []
    for i in range((N + 999) // 1000):
        sub = "bench-idle-%d" % i
        subprocess.run(["psql", "-q", s.pg_url, "-c",
                        "INSERT INTO users (display_name, handle, email, cognito_user_id) "
                        "VALUES ('Idle %d', 'idle%d', 'idle%d@example.test', '%s')" % (i, i, i, sub)],
                       check=True, capture_output=True)
        idle_tokens.append(minter.rs256(None, minter.claims(sub)))

    # ---- 1. idle streams --------------------------------------------------
    time.sleep(1)
    m0, t0 = mem_kib(gpid), threads(gpid)
    ms0, mt0 = mem_kib(mpid), threads(mpid)
    held, failures, lock = [], [], threading.Lock()

    def opener(first, count):
        for j in range(first, first + count):
            try:
                sse = Sse(gw_a, idle_tokens[j // 1000], timeout=30)
                ok = sse.status == 200 and sse.next_event(10) is not None
                why = sse.status
            except Exception as e:  # noqa: BLE001 (counted, reported)
                ok, why = False, type(e).__name__
            with lock:
                if ok:
                    held.append(sse)
                else:
                    failures.append(why)

    t_open = time.time()
    per = (N + 7) // 8
    workers = [threading.Thread(target=opener, args=(i * per, max(0, min(per, N - i * per))))
               for i in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    open_s = time.time() - t_open
    time.sleep(3)
    m1, t1 = mem_kib(gpid), threads(gpid)
    ms1, mt1 = mem_kib(mpid), threads(mpid)
    print("opened %d of %d idle streams in %.1f s (%d failed: %s)" % (
        len(held), N, open_s, len(failures), sorted(set(map(str, failures)))[:5]), flush=True)
    d_rss = (m1["rss"] - m0["rss"]) / 1024.0
    d_thr = t1 - t0
    print("gateway: VmRSS %d -> %d KiB (+%.1f MiB), RssAnon %d -> %d KiB, threads %d -> %d" % (
        m0["rss"], m1["rss"], d_rss, m0["anon"], m1["anon"], t0, t1), flush=True)
    print("messages-svc: VmRSS %d -> %d KiB, threads %d -> %d" % (ms0["rss"], ms1["rss"], mt0, mt1), flush=True)
    for name, a, b, ta, tb in (("gateway", m0, m1, t0, t1), ("messages-svc", ms0, ms1, mt0, mt1)):
        record("sse", "Idle event streams (%d on gateway A)" % len(held), name,
               rss_before_kib=a["rss"], rss_after_kib=b["rss"], anon_before_kib=a["anon"],
               anon_after_kib=b["anon"], threads_before=ta, threads_after=tb)
    target("sse", "gateway extra RSS with %d idle SSE streams (MiB)" % len(held), d_rss, "<=", 64,
           issue=15, fmt="%.1f", label="memory")
    target("sse", "gateway extra threads with %d idle SSE streams" % len(held), d_thr, "<=", 8,
           issue=15, fmt="%d", label="threads")

    # ---- 2. delivery latency ------------------------------------------------
    arrived = {"same": {}, "cross": {}}
    ended = {}

    def reader(kind, sse):
        while True:
            try:
                ev = sse.next_event(60)
            except EOFError as e:
                ended[kind] = "closed by the gateway (%s)" % e
                return
            if ev is None:
                ended[kind] = "silent for 60 s"
                return
            if ev["event"] == "message":
                arrived[kind][ev["data"]["uuid"]] = time.time()

    readers = []
    for kind, base in (("same", gw_a), ("cross", gw_b)):
        sse = Sse(base, tokens["bayko"])
        assert sse.status == 200, sse.body
        sse.next_event(10)
        th = threading.Thread(target=reader, args=(kind, sse), daemon=True)
        th.start()
        readers.append(sse)
    st, first = Bench.post(gw_a, "andrewbrown", {"message": "bench", "handle": "bayko"})
    assert st == 200, first
    group = first["message_group_uuid"]
    # Warm-up: the cross-replica poller of a user nothing happened to polls
    # every 5 s; a delivery makes it busy (every 1 s) for the next 10 s. The
    # targets are for the busy state, so wake it first.
    for i in range(3):
        Bench.post(gw_a, "andrewbrown", {"message": "warm-up %d" % i, "message_group_uuid": group})
    time.sleep(6)
    sent, acked = {}, {}
    for i in range(M):
        t = time.time()
        st, m = Bench.post(gw_a, "andrewbrown", {"message": "latency %d" % i, "message_group_uuid": group})
        assert st == 200, m
        sent[m["uuid"]], acked[m["uuid"]] = t, time.time()
        deadline = time.time() + 5
        while m["uuid"] not in arrived["same"] and time.time() < deadline:
            time.sleep(0.0005)
        time.sleep(0.05)  # one message at a time, not a burst
    deadline = time.time() + 15
    while len(arrived["cross"]) < len(sent) and time.time() < deadline:
        time.sleep(0.1)
    # Delivery latency: from the POST's answer (the message is stored) to its
    # event on the stream (0 when the event came first); from the POST's
    # start too, which adds the write itself.
    for kind, name in (("same", "same replica"), ("cross", "other replica")):
        lat = [max(0.0, arrived[kind][u] - acked[u]) * 1000 for u in sent if u in arrived[kind]]
        full = [(arrived[kind][u] - sent[u]) * 1000 for u in sent if u in arrived[kind]]
        lost = len(sent) - len(lat)
        if lost:
            order = list(sent)
            missing = [order.index(u) for u in sent if u not in arrived[kind]]
            print("  not delivered within 15 s: message(s) #%s of %d" % (missing, len(order)), flush=True)
        if kind in ended:
            print("  the %s stream ended: %s" % (name, ended[kind]), flush=True)
        nan = float("nan")
        p50, p99 = (pct(lat, 50), pct(lat, 99)) if lat else (nan, nan)
        f50, f99 = (pct(full, 50), pct(full, 99)) if full else (nan, nan)
        print("delivery %s: %d messages, after the POST's answer p50 %.1f ms p99 %.1f ms; "
              "from the POST's start p50 %.1f ms p99 %.1f ms; %d not delivered" % (
                  name, len(lat), p50, p99, f50, f99, lost), flush=True)
        record("sse", "Delivery latency to an SSE stream (%d idle streams open)" % len(held), name,
               messages=len(lat), p50_ms=p50, p99_ms=p99, from_post_start_p50_ms=f50,
               from_post_start_p99_ms=f99, lost=lost)
        target("sse", "%s delivery p99 after the POST's answer (ms)" % name, p99, "<=",
               50 if kind == "same" else 1100, issue=15, fmt="%.1f", label="latency")
    for r in readers + held:
        r.close()
finally:
    for p in extra.values():
        p.stop()
    s.stop()
PY
