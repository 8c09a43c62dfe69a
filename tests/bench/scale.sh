#!/usr/bin/env bash
# Scaling, worker/connection matrix and memory of the whole stack through
# the gateway (issue 8; not a test, part of tests/bench/run).
#
#   tests/bench/scale.sh [-d SECONDS_PER_MATRIX_RUN] [-l SECONDS_PER_LATENCY_RUN]
#                        [-w WORKERS_LIST] [-n MEMORY_REQUESTS]
#
# Builds the optimised build in build/bench, starts the whole stack on free
# ports (tests/stack), reads each binary's VmRSS/VmHWM right after its start,
# then:
#  1. seeds dynalite directly (BatchWriteItem, 25 items a call, 4 in
#     parallel) with the items messages-svc itself writes (README "Items"):
#     conversations of 100, 10k and 200k messages for andrewbrown, and users
#     with 10, 1k and 10k conversations (pair item, both group rows, the last
#     message of each); checks that the routes answer the newest page;
#  2. latency of GET /api/messages/{uuid} per conversation size and of
#     GET /api/message_groups per list size, beside the same Query sent
#     straight to dynalite, and the ratio p50(largest)/p50(smallest);
#  3. memory: the gateway after MEMORY_REQUESTS (default 500k) cheap requests
#     (/healthz), then after as many more of a messages-route mix
#     (gateway_mix.lua); users-svc and messages-svc after what that sent them;
#  4. throughput of GET /api/messages/{uuid}, GET /api/message_groups,
#     GET /api/users/@{handle}/short and POST /api/messages with 1, 2, 4, 8
#     worker threads per service (RPC_WORKERS = PG_POOL_SIZE = GATEWAY_WORKERS
#     = N; GATEWAY_WORKERS=N is a pool of N threads, idle connections parked in epoll) and 16, 64, 256
#     wrk connections, the services (not PostgreSQL, dynalite, Cognito)
#     restarted for each N; "default" in the list adds the shipped defaults
#     (gateway thread per connection, messages-svc 16 workers, users-svc one
#     per core, pool 4).
# With BENCH_RECORDS set, appends every figure as JSON lines to that file.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MATRIX_SECONDS=2
LAT_SECONDS=3
WORKERS_LIST=1,2,4,8
MEM_REQUESTS=500000
while getopts "d:l:w:n:" o; do
  case $o in
    d) MATRIX_SECONDS=$OPTARG ;;
    l) LAT_SECONDS=$OPTARG ;;
    w) WORKERS_LIST=$OPTARG ;;
    n) MEM_REQUESTS=$OPTARG ;;
    *) echo "usage: $0 [-d SECONDS_PER_MATRIX_RUN] [-l SECONDS_PER_LATENCY_RUN] [-w WORKERS_LIST] [-n MEMORY_REQUESTS]" >&2
       exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
BUILD=${CRUDDUR_BENCH_BUILD:-$ROOT/build/bench}
if [ -z "${BENCH_NO_BUILD:-}" ]; then  # BENCH_NO_BUILD=1 reuses the last build
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCRUDDUR_SANITIZE=OFF >/dev/null
  cmake --build "$BUILD" --target users-svc messages-svc gateway -j "$(nproc)" >/dev/null
fi

export CRUDDUR_SOURCE_DIR=$ROOT CRUDDUR_BUILD_DIR=$BUILD BENCH_DIR=$ROOT/tests/bench \
  BENCH_MATRIX_SECONDS=$MATRIX_SECONDS BENCH_LAT_SECONDS=$LAT_SECONDS BENCH_WORKERS_LIST=$WORKERS_LIST \
  BENCH_MEM_REQUESTS=$MEM_REQUESTS
exec /usr/bin/python3 - <<'PY'
import http.client, json, os, re, subprocess, sys, threading, time, uuid
sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
sys.path.insert(0, os.environ["BENCH_DIR"])
from stack import LOAD_TEST_LIMITS, Stack, pg_bindir, REGION
from benchlib import cpu_all, cpu_s, cpu_us_per, mem_kib, record, target, wrk

MATRIX_SECS = int(os.environ["BENCH_MATRIX_SECONDS"])
LAT_SECS = int(os.environ["BENCH_LAT_SECONDS"])
WORKERS = [w.strip() for w in os.environ["BENCH_WORKERS_LIST"].split(",") if w.strip()]
MEM_N = int(os.environ["BENCH_MEM_REQUESTS"])
TABLE = "cruddur-messages"
OURS = ("gateway", "users-svc", "messages-svc")
MSG_SIZES = (100, 10000, 200000)
GROUP_SIZES = (10, 1000, 10000)
LAT_CONNS = 8
T_MSGS = "GET /api/messages/{uuid} by conversation size (wrk, %d connections, %d s each)" % (LAT_CONNS, LAT_SECS)
T_GROUPS = "GET /api/message_groups by number of conversations (wrk, %d connections, %d s each)" % (LAT_CONNS, LAT_SECS)
T_MEM = "Resident memory of each binary (VmRSS / VmHWM, KiB)"


def ts27(us):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1000000)) + ".%06dZ" % (us % 1000000)


def ts_api(us):
    return ts27(us)[:-1] + "+00:00"


def S(v):
    return {"S": v}


# ---- the items messages-svc writes (messages-svc/README.md, src/store.c) ----
def msg_item(group, us, mid, text, sender):
    t = ts27(us)
    return {"pk": S("MSG#" + group), "sk": S(t + "#" + mid), "message_uuid": S(mid), "message": S(text),
            "user_uuid": S(sender[0]), "user_handle": S(sender[1]), "user_display_name": S(sender[2]),
            "created_at": S(t)}


def group_row(owner, group, other, text, last_sk, us):
    return {"pk": S("GRP#" + owner), "sk": S(group), "message_group_uuid": S(group), "user_uuid": S(other[0]),
            "user_handle": S(other[1]), "user_display_name": S(other[2]), "message": S(text),
            "last_sk": S(last_sk), "last_message_at": S(ts27(us))}


def pair_item(a, b, group):
    lo, hi = sorted((a, b))
    return {"pk": S("PAIR#%s#%s" % (lo, hi)), "sk": S("PAIR"), "group_uuid": S(group)}


def ddb_headers(target_name):
    return {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810." + target_name,
            "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
            "Authorization": "AWS4-HMAC-SHA256 Credential=local/%s/%s/dynamodb/aws4_request, "
                             "SignedHeaders=host, Signature=0" % (time.strftime("%Y%m%d", time.gmtime()), REGION)}


def batch_write(port, items, parallel=4):
    """Writes items with BatchWriteItem, 25 a call, `parallel` calls at once,
    retrying whatever dynalite leaves unprocessed."""
    batches = [[{"PutRequest": {"Item": it}} for it in items[i:i + 25]] for i in range(0, len(items), 25)]
    lock, nxt, errors = threading.Lock(), [0], []
    hdr = ddb_headers("BatchWriteItem")

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while not errors:
                with lock:
                    if nxt[0] >= len(batches):
                        return
                    b = batches[nxt[0]]
                    nxt[0] += 1
                for _ in range(20):
                    c.request("POST", "/", json.dumps({"RequestItems": {TABLE: b}}), hdr)
                    r = c.getresponse()
                    d = json.loads(r.read())
                    if r.status != 200:
                        errors.append("BatchWriteItem: HTTP %d %s" % (r.status, str(d)[:200]))
                        return
                    b = d.get("UnprocessedItems", {}).get(TABLE, [])
                    if not b:
                        break
                    time.sleep(0.05)
                else:
                    errors.append("BatchWriteItem: items left unprocessed after 20 tries")
        finally:
            c.close()

    th = [threading.Thread(target=worker) for _ in range(parallel)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    if errors:
        raise RuntimeError(errors[0])


def api(url, path, token=None, method="GET", body=None):
    """(status, headers, parsed body) of one gateway request."""
    host, port = url.split("//")[1].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    h = {"Accept": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        h["Content-Type"] = "application/json"
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(data) if data else None
    finally:
        c.close()


def until_ok(url, path, token=None, method="GET", body=None, timeout=15):
    """Retries a request until 2xx (channels reconnecting after a restart)."""
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            st, h, b = api(url, path, token, method, body)
            if 200 <= st < 300:
                return b
            last = "HTTP %d %s" % (st, b)
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise RuntimeError("%s %s never answered 2xx: %s" % (method, path, last))


def psql(s, sql):
    return subprocess.run([os.path.join(pg_bindir(), "psql"), s.pg_url, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


def metrics(url):
    host, port = url.split("//")[1].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    served = sum(int(v) for v in re.findall(r"^gateway_http_requests_total\{.*\} (\d+)$", text, re.M))
    up = {}
    for m, v in re.findall(r'^gateway_upstream_requests_total\{method="([^"]+)",code="[^"]+"\} (\d+)$', text, re.M):
        svc = "users-svc" if m.startswith("users.") else "messages-svc" if m.startswith("messages.") else "other"
        up[svc] = up.get(svc, 0) + int(v)
    return served, up


def svc_env(w):
    """Worker settings for one matrix column ("default": the shipped defaults)."""
    if w == "default":
        return ({"RPC_WORKERS": str(os.cpu_count()), "PG_POOL_SIZE": "4"}, {"RPC_WORKERS": "16"},
                {"GATEWAY_WORKERS": "0"})
    return ({"RPC_WORKERS": w, "PG_POOL_SIZE": w}, {"RPC_WORKERS": w}, {"GATEWAY_WORKERS": w})


GW_COMMON = dict(LOAD_TEST_LIMITS, LOG_LEVEL="warn", GATEWAY_MAX_CONNECTIONS_PER_IP="0",
                 GATEWAY_DRAIN_MS="2000")


def start_services(s, w, first=False):
    u, m, g = svc_env(w)
    if not first:
        for n in ("gateway", "messages-svc", "users-svc"):
            s.procs[n].stop()
    s.users_svc(migrate=first, seed=first, env=u)
    s.messages_svc(schema=first, env=m)
    s.gateway(env=dict(GW_COMMON, **g))
    return {n: s.procs[n].pid for n in OURS}


t_start = time.time()
with Stack() as s:
    s.postgres(); s.dynalite(); s.cognito()
    users = {"andrewbrown": ("Andrew Brown", "andrew@exampro.co"), "bayko": ("Andrew Bayko", "bayko@exampro.co"),
             "londo": ("Londo Mollari", "lmollari@centari.com")}
    bench_users = {"bench_g%d" % n: ("Bench %d groups" % n, "bench_g%d@example.test" % n) for n in GROUP_SIZES}
    for h, (n, e) in list(users.items()) + list(bench_users.items()):
        s.cognito_user(h, n, e)
    pids = start_services(s, "default", first=True)
    idle = {n: mem_kib(p) for n, p in pids.items()}  # right after start (health checks only)
    print("scale benchmark: %d cores; idle VmRSS: %s" % (
        os.cpu_count(), ", ".join("%s %d KiB" % (n, idle[n]["rss"]) for n in OURS)), flush=True)
    psql(s, "INSERT INTO users (display_name, handle, email) VALUES %s ON CONFLICT DO NOTHING" % ", ".join(
        "('%s', '%s', '%s')" % (n, h, e) for h, (n, e) in bench_users.items()))
    s.run("users-svc", "sync-cognito", check=True)
    uid = dict(l.split("|") for l in psql(s, "SELECT handle, uuid FROM users").splitlines())
    me = (uid["andrewbrown"], "andrewbrown", "Andrew Brown")
    gw = s.gateway_url
    tokens = {h: s.token(h) for h in ["andrewbrown"] + list(bench_users)}
    ddb_port = int(s.ddb_url.rsplit(":", 1)[1])

    # ---- 1. seed -----------------------------------------------------------
    t0 = time.time()
    now = int(time.time() * 1e6) - 60 * 1000000
    items, expect_msgs, msg_groups = [], {}, {}
    for n in MSG_SIZES:
        g, peer = str(uuid.uuid4()), (str(uuid.uuid4()), "peer_m%d" % n, "Peer of %d" % n)
        base, ids = now - n * 1000000, []
        for i in range(n):
            sender = me if i % 2 else peer
            mid = str(uuid.uuid4())
            items.append(msg_item(g, base + i * 1000000, mid, "seeded message %d of %d" % (i, n), sender))
            ids.append(mid)
        last = items[-1]
        items.append(pair_item(me[0], peer[0], g))
        items.append(group_row(me[0], g, peer, last["message"]["S"], last["sk"]["S"], base + (n - 1) * 1000000))
        items.append(group_row(peer[0], g, me, last["message"]["S"], last["sk"]["S"], base + (n - 1) * 1000000))
        msg_groups[n] = g
        expect_msgs[n] = (ids[-20:], ts_api(base + (n - 1) * 1000000))
    expect_groups, owners = {}, {}
    for n in GROUP_SIZES:
        h = "bench_g%d" % n
        owner = (uid[h], h, bench_users[h][0])
        owners[n] = owner
        base, order = now - n * 1000000, []
        for j in range(n):
            g, peer = str(uuid.uuid4()), (str(uuid.uuid4()), "peer_g%d_%d" % (n, j), "Peer %d" % j)
            us, mid = base + j * 1000000, str(uuid.uuid4())
            m = msg_item(g, us, mid, "latest of conversation %d" % j, peer)
            items += [m, pair_item(owner[0], peer[0], g),
                      group_row(owner[0], g, peer, m["message"]["S"], m["sk"]["S"], us),
                      group_row(peer[0], g, owner, m["message"]["S"], m["sk"]["S"], us)]
            order.append(g)
        expect_groups[n] = order[::-1][:20]
    t_build = time.time() - t0
    batch_write(ddb_port, items)
    t_seed = time.time() - t0
    print("seeded %d items straight into dynalite in %.1f s (%.1f s to build them; BatchWriteItem, 25 a call, "
          "4 in parallel): conversations of %s messages, users with %s conversations" % (
              len(items), t_seed, t_build, "/".join(map(str, MSG_SIZES)), "/".join(map(str, GROUP_SIZES))),
          flush=True)
    record("scaling", "seed", "BatchWriteItem straight into dynalite", items=len(items), seconds=round(t_seed, 1))
    del items

    # dynalite (LevelDB) goes on compacting for a while after a bulk load:
    # wait until it idles, so that the first latency runs are not charged for it.
    dyn, t_settle = s.procs["dynalite"].pid, time.time()
    while time.time() - t_settle < 20:
        c0 = cpu_s(dyn)
        time.sleep(0.5)
        if cpu_s(dyn) - c0 < 0.05:
            break
    print("dynalite idle again %.1f s after the load" % (time.time() - t_settle), flush=True)

    # The routes must answer the newest page for every size.
    for n, g in msg_groups.items():
        st, h, body = api(gw, "/api/messages/" + g, tokens["andrewbrown"])
        want, last_at = expect_msgs[n]
        got = [m["uuid"] for m in body] if st == 200 else None
        ok = got == want and body[-1]["created_at"] == last_at and "rel=\"next\"" in h.get("link", "")
        print("check GET /api/messages/{uuid} with %d messages: %s" % (
            n, "newest page of 20, oldest first, Link to the next" if ok else "WRONG (status %d)" % st), flush=True)
        if not ok:
            raise SystemExit("GET /api/messages/%s did not answer the newest page" % g)
    for n, owner in owners.items():
        st, h, body = api(gw, "/api/message_groups", tokens[owner[1]])
        got = [x["uuid"] for x in body] if st == 200 else None
        ok = got == expect_groups[n][:len(got or [])] and len(got) == min(20, n)
        print("check GET /api/message_groups with %d conversations: %s" % (
            n, "newest %d first" % len(got) if ok else "WRONG (status %d)" % st), flush=True)
        if not ok:
            raise SystemExit("GET /api/message_groups for %s did not answer the newest page" % owner[1])

    # ---- 2. latency by size ------------------------------------------------
    def lat_run(table, row, url, script, env, cpu_pids, kind):
        before = cpu_all(cpu_pids)
        r = wrk(url, script, env, duration=LAT_SECS, conns=LAT_CONNS)
        cpu = cpu_us_per(before, cpu_all(cpu_pids), r["total"])
        cols = {"rps": r["rps"], "p50_ms": r["p50"], "p99_ms": r["p99"], "requests": r["total"],
                "non2xx": r["non2xx"]}
        if kind == "route":
            cols["cpu_us_per_req_ours"] = round(sum(cpu[n] for n in OURS))
        cols["cpu_us_per_req_dynalite"] = round(cpu["dynalite"])
        record("scaling", table, row, **cols)
        print("%-58s %7.0f req/s  p50 %7.3f ms  p99 %7.3f ms  (%d requests, non-2xx %d)" % (
            row, r["rps"], r["p50"], r["p99"], r["total"], r["non2xx"]), flush=True)
        return r

    allp = dict(pids, dynalite=s.procs["dynalite"].pid)
    # The first runs on a fresh stack are slower (node's JIT in dynalite, the
    # gateway's and services' first connections): warm up on the smallest size.
    wenv = {"TOKEN": tokens["andrewbrown"], "GROUP": msg_groups[MSG_SIZES[0]], "DDB_TABLE": TABLE, "AWS_REGION": REGION}
    wrk(gw + "/api/messages/" + wenv["GROUP"], "gateway_auth.lua", wenv, duration=2, conns=LAT_CONNS)
    wrk(s.ddb_url + "/", "gateway_ddb_query.lua", wenv, duration=1, conns=LAT_CONNS)
    lat = {}
    for n, g in msg_groups.items():
        env = {"TOKEN": tokens["andrewbrown"], "GROUP": g, "DDB_TABLE": TABLE, "AWS_REGION": REGION}
        lat[("m", n)] = lat_run(T_MSGS, "gateway, %d messages" % n, gw + "/api/messages/" + g,
                                "gateway_auth.lua", env, allp, "route")
        lat[("mq", n)] = lat_run(T_MSGS, "raw dynalite Query, %d messages" % n, s.ddb_url + "/",
                                 "gateway_ddb_query.lua", env, {"dynalite": allp["dynalite"]}, "raw")
    for n, owner in owners.items():
        env = {"TOKEN": tokens[owner[1]], "OWNER": owner[0], "DDB_TABLE": TABLE, "AWS_REGION": REGION}
        lat[("g", n)] = lat_run(T_GROUPS, "gateway, %d conversations" % n, gw + "/api/message_groups",
                                "gateway_auth.lua", env, allp, "route")
        lat[("gq", n)] = lat_run(T_GROUPS, "raw dynalite Query (index), %d conversations" % n, s.ddb_url + "/",
                                 "ddb_groups_query.lua", env, {"dynalite": allp["dynalite"]}, "raw")
    lo, hi = MSG_SIZES[0], MSG_SIZES[-1]
    target("scaling", "p50 GET /api/messages/{uuid} %dk messages / %d messages" % (hi // 1000, lo),
           lat[("m", hi)]["p50"] / lat[("m", lo)]["p50"], "<=", 1.5, issue=8,
           note="flat means O(page); raw Query %.2f" % (lat[("mq", hi)]["p50"] / lat[("mq", lo)]["p50"]))
    lo, hi = GROUP_SIZES[0], GROUP_SIZES[-1]
    target("scaling", "p50 GET /api/message_groups %dk conversations / %d conversations" % (hi // 1000, lo),
           lat[("g", hi)]["p50"] / lat[("g", lo)]["p50"], "<=", 1.5, issue=8,
           note="flat means O(page); raw Query %.2f" % (lat[("gq", hi)]["p50"] / lat[("gq", lo)]["p50"]))

    # ---- 3. memory ---------------------------------------------------------
    post_group = until_ok(gw, "/api/messages", tokens["andrewbrown"], "POST",
                          {"message": "bench start", "handle": "bayko"})["message_group_uuid"]
    menv = {"TOKEN": tokens["andrewbrown"], "GROUP": post_group}

    def drive(url, script, env, n):
        """wrk runs until n requests; returns (requests, non-2xx, seconds)."""
        done = bad = 0
        t = time.time()
        rate = None
        while done < n:
            d = 2 if rate is None else max(1, min(20, int((n - done) / rate + 0.999)))
            r = wrk(url, script, env, duration=d, conns=16)
            done, bad, rate = done + r["total"], bad + r["non2xx"], max(1.0, r["rps"])
        return done, bad, time.time() - t

    served0, up0 = metrics(gw)
    n1, bad1, t1 = drive(gw + "/healthz", None, None, MEM_N)
    after_cheap = mem_kib(pids["gateway"])
    n2, bad2, t2 = drive(gw + "/", "gateway_mix.lua", menv, MEM_N)
    after_mix = {n: mem_kib(p) for n, p in pids.items()}
    served, up = metrics(gw)
    print("memory: gateway /healthz x %d in %.0f s, then messages-route mix x %d in %.0f s (%d non-2xx: the "
          "malformed-id requests of the mix); upstream calls: users-svc %d, messages-svc %d" % (
              n1, t1, n2, t2, bad2, up.get("users-svc", 0), up.get("messages-svc", 0)), flush=True)
    record("memory", T_MEM, "gateway (cheap route)",
           workload="GET /healthz (wrk, 16 connections)", requests=n1, idle_rss_kib=idle["gateway"]["rss"],
           idle_hwm_kib=idle["gateway"]["hwm"], idle_anon_kib=idle["gateway"]["anon"],
           idle_pss_kib=idle["gateway"]["pss"], end_rss_kib=after_cheap["rss"], end_hwm_kib=after_cheap["hwm"],
           end_anon_kib=after_cheap["anon"], end_pss_kib=after_cheap["pss"])
    record("memory", T_MEM, "gateway (+ messages-route mix)",
           workload="then gateway_mix.lua: 3%% real (GET messages, GET groups, POST), 97%% answered after "
                    "the token check; %d requests served in all" % served,
           requests=n2, idle_rss_kib=idle["gateway"]["rss"], idle_hwm_kib=idle["gateway"]["hwm"],
           idle_anon_kib=idle["gateway"]["anon"], idle_pss_kib=idle["gateway"]["pss"],
           end_rss_kib=after_mix["gateway"]["rss"], end_hwm_kib=after_mix["gateway"]["hwm"],
           end_anon_kib=after_mix["gateway"]["anon"], end_pss_kib=after_mix["gateway"]["pss"])
    for n in ("users-svc", "messages-svc"):
        record("memory", T_MEM, n + " (behind the gateway)",
               workload="everything the gateway sent it in this run (seed checks, latency runs, the mix)",
               requests=up.get(n, 0), idle_rss_kib=idle[n]["rss"], idle_hwm_kib=idle[n]["hwm"],
               idle_anon_kib=idle[n]["anon"], idle_pss_kib=idle[n]["pss"],
               end_rss_kib=after_mix[n]["rss"], end_hwm_kib=after_mix[n]["hwm"],
               end_anon_kib=after_mix[n]["anon"], end_pss_kib=after_mix[n]["pss"])
    # Issue 16: a binary's own pages (RssAnon), with its share of the
    # libraries the three map (Pss, all three running) beside it. VmRSS counts
    # Debian's libgrpc, libcrypto... in full in each process.
    for n in OURS:
        target("memory", "%s idle RssAnon (MiB)" % n, idle[n]["anon"] / 1024, "<=", 6, issue=16, fmt="%.1f",
               label="target", note="Pss %.1f MiB, VmRSS %.1f MiB" % (idle[n]["pss"] / 1024, idle[n]["rss"] / 1024))
    target("memory", "gateway RssAnon after %dk cheap requests (MiB)" % (n1 // 1000), after_cheap["anon"] / 1024,
           "<=", 16, issue=16, fmt="%.1f", label="target", note="Pss %.1f MiB" % (after_cheap["pss"] / 1024))
    for n in OURS:
        what = ("gateway RssAnon after %dk more of the messages-route mix (MiB)" % (n2 // 1000) if n == "gateway"
                else "%s RssAnon at the end, behind the gateway (MiB)" % n)
        target("memory", what, after_mix[n]["anon"] / 1024, "<=", 16, issue=16, fmt="%.1f", label="target",
               note="Pss %.1f MiB" % (after_mix[n]["pss"] / 1024))

    # ---- 4. workers x connections -----------------------------------------
    # GET /api/message_groups as the user with 10 conversations: under
    # dynalite, a Query on the local index slows down as the user's own rows
    # are rewritten (each post moves last_sk; LevelDB keeps the old index
    # entries as tombstones until a compaction), and andrewbrown's rows are
    # rewritten by every POST of this run. DynamoDB has no such effect.
    g10 = owners[GROUP_SIZES[0]][1]
    routes = [("GET /api/messages/{uuid}", "/api/messages/" + msg_groups[MSG_SIZES[0]], "gateway_auth.lua",
               None, "andrewbrown"),
              ("GET /api/message_groups", "/api/message_groups", "gateway_auth.lua", None, g10),
              ("GET /api/users/@{handle}/short", "/api/users/@andrewbrown/short", None, None, None),
              ("POST /api/messages", "/api/messages", "gateway_post.lua",
               {"message": "warm", "message_group_uuid": post_group}, "andrewbrown")]

    def drain(cap=30):
        """Waits until the gateway has answered everything wrk left queued
        (a small pool works through its backlog after wrk has gone); seconds."""
        t = time.time()
        host, port = gw.split("//")[1].split(":")
        while time.time() - t < cap:
            try:
                c = http.client.HTTPConnection(host, int(port), timeout=cap)
                c.request("GET", "/metrics")
                m = re.search(r"^gateway_http_in_flight (\d+)$", c.getresponse().read().decode(), re.M)
                c.close()
                if m and int(m.group(1)) <= 1:  # the /metrics request itself
                    break
            except OSError:
                pass
            time.sleep(0.1)
        return time.time() - t
    T_MATRIX = "Throughput by worker threads per service and wrk connections (%d s each)" % MATRIX_SECS
    for w in WORKERS:
        pids = start_services(s, w)
        allp = dict(pids, dynalite=s.procs["dynalite"].pid)
        for name, path, script, body, who in routes:
            until_ok(gw, path, tokens.get(who), "POST" if body else "GET", body)
        label = ("defaults (gateway thread per connection, RPC_WORKERS 16 / %d)" % os.cpu_count()
                 if w == "default" else "%s worker%s" % (w, "" if w == "1" else "s"))
        for name, path, script, body, who in routes:
            cells = []
            renv = dict(menv, TOKEN=tokens.get(who) or "")
            for c in (16, 64, 256):
                before = cpu_all(allp)
                r = wrk(gw + path, script, renv, duration=MATRIX_SECS, conns=c, timeout_s=5)
                cpu = cpu_us_per(before, cpu_all(allp), r["total"])
                backlog = drain()
                record("matrix", T_MATRIX, "%s, %s, %d conns" % (name, label, c), route=name, workers=w,
                       connections=c, rps=r["rps"], p50_ms=r["p50"], p99_ms=r["p99"], requests=r["total"],
                       non2xx=r["non2xx"], timeouts=r["timeouts"],
                       busy_conns=round(r["busy"], 1) if r["total"] else 0,
                       cpu_us_per_req_ours=round(sum(cpu[n] for n in OURS)) if r["total"] else None,
                       cpu_us_per_req_dynalite=round(cpu["dynalite"]) if r["total"] else None,
                       backlog_drain_s=round(backlog, 2))
                cells.append("%3d conns %7.0f req/s p99 %8.2f ms%s%s" % (
                    c, r["rps"], r["p99"], " (non-2xx %d, timeouts %d)" % (r["non2xx"], r["timeouts"])
                    if r["non2xx"] or r["timeouts"] else "",
                    " (served ~%.0f)" % r["busy"] if r["total"] and r["busy"] < c / 2 else ""))
            print("matrix %-30s workers %-7s | %s" % (name, w, " | ".join(cells)), flush=True)
    print("scale benchmark took %.0f s" % (time.time() - t_start), flush=True)
PY
