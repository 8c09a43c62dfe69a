"""messages-svc with N idle watches: threads, RSS and DynamoDB requests per
second per idle watched user, for N WatchEvents calls and for N watches on
one WatchMany call (each on a fresh messages-svc).

Run: CRUDDUR_BUILD_DIR=build/rel CRUDDUR_SOURCE_DIR=. /usr/bin/python3 tests/bench/watch_idle.py [N] [events|many]
(both kinds when the second argument is absent). One watch per user (N
watched users); the watches are opened, each reads its `ready`, then nothing
moves. Figures are read from /proc of the service and from its shutdown
line `dynamodb stats: requests=...`. QUIET_S (default 70) is how long the
idle watches are held for the DynamoDB figure.
"""
import os
import queue
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
from stack import Stack, stubs  # noqa: E402

import grpc  # noqa: E402

from benchlib import record, target  # noqa: E402


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "Threads"):
                out[k] = int(v.split()[0])
    return out


def open_events(stub, pb, n):
    """N WatchEvents calls, each read to its `ready`. Returns a closer."""
    calls = []
    # In batches: the worker queue (1024 calls) answers RESOURCE_EXHAUSTED
    # to a burst beyond it, as it should.
    while len(calls) < n:
        batch = [stub.WatchEvents(pb.WatchEventsRequest(user_uuid=str(uuid.uuid4())),
                                  timeout=3600) for _ in range(min(500, n - len(calls)))]
        for it in batch:
            assert next(it).WhichOneof("event") == "ready"
        calls += batch

    def close():
        for it in calls:
            it.cancel()
    return close


def open_many(stub, pb, n):
    """N watches on one WatchMany call, read to N `ready`s. Returns a closer."""
    q = queue.Queue()
    call = stub.WatchMany(iter(q.get, None), timeout=3600)
    for i in range(1, n + 1):
        q.put(pb.WatchControl(id=i, open=pb.WatchEventsRequest(user_uuid=str(uuid.uuid4()))))
    ready = set()
    while len(ready) < n:
        ev = next(call)
        assert ev.WhichOneof("body") == "event" and ev.event.WhichOneof("event") == "ready", ev
        ready.add(ev.id)

    def close():
        call.cancel()
        q.put(None)
    return close


def measure(kind, n, quiet_s):
    with Stack() as s:
        s.dynalite()
        s.messages_svc(schema=True, env={"WATCH_MAX_USERS": str(n + 10),
                                         "WATCH_MAX_STREAMS": str(n + 10)})
        pid = s.procs["messages-svc"].pid
        ch = grpc.insecure_channel(s.messages_addr)
        stub = stubs.messages_pb2_grpc.MessagesServiceStub(ch)
        time.sleep(1)
        before = proc_status(pid)
        t0 = time.time()
        close = (open_events if kind == "events" else open_many)(stub, stubs.messages_pb2, n)
        opened = time.time() - t0
        time.sleep(2)
        after = proc_status(pid)
        what = "WatchEvents calls" if kind == "events" else "watches on one WatchMany call"
        print("%d %s opened in %.1f s" % (n, what, opened))
        print("  threads %d -> %d (+%d)" % (before["Threads"], after["Threads"],
                                            after["Threads"] - before["Threads"]))
        rss = (after["VmRSS"] - before["VmRSS"]) / 1024.0
        print("  RSS %d -> %d KiB (+%.1f MiB, %.2f KiB a watch); RssAnon +%.1f MiB" % (
            before["VmRSS"], after["VmRSS"], rss, rss * 1024 / n,
            (after["RssAnon"] - before["RssAnon"]) / 1024.0))
        # Idle cost: the service logs its DynamoDB request count at exit.
        time.sleep(quiet_s)
        close()
        ch.close()
        code = s.terminate("messages-svc")
        total_s = time.time() - t0
        with open(s.log_path("messages-svc")) as f:
            m = re.findall(r"dynamodb stats: requests=(\d+)", f.read())
        reqs = int(m[-1]) if m else -1
        # A new watched user starts at the busy interval (1 s), reaching the
        # idle one (5 s) after a minute of quiet: QUIET_S >= 70 measures mostly idle.
        per_user_s = reqs / total_s / n if reqs > 0 else -1
        print("  exit %s; dynamodb requests %d over %.0f s with %d watched users: "
              "%.3f per user per s" % (code, reqs, total_s, n, per_user_s))
        table = "messages-svc with %d idle watches" % n
        record("watch", table, what, opened_s=round(opened, 1),
               threads_before=before["Threads"], threads_after=after["Threads"],
               rss_before_kib=before["VmRSS"], rss_after_kib=after["VmRSS"],
               anon_before_kib=before["RssAnon"], anon_after_kib=after["RssAnon"],
               ddb_requests_per_user_s=round(per_user_s, 4))
        # The targets are for watches as the gateway holds them (one WatchMany
        # call); N WatchEvents calls cost gRPC core ~13 KiB each and are
        # reported for information (messages-svc/README.md).
        if kind == "many":
            target("watch", "messages-svc extra RSS with %d idle watches (MiB)" % n, rss, "<=", 64,
                   issue=15, fmt="%.1f", label="memory")
            target("watch", "messages-svc extra threads with %d idle watches" % n,
                   after["Threads"] - before["Threads"], "<=", 8, issue=15, fmt="%d",
                   label="threads")
        # Over the whole run, the first busy minute (1 s polls) included, and
        # with 10,000 users the pollers run at dynalite's Query rate: for
        # information. The idle interval itself is 5 s (messages-svc README,
        # "Cost model").
        print("cost DynamoDB requests per watched user per 5 s over the run = %.2f "
              "(%.0f s, the first busy minute included)" % (per_user_s * 5, total_s))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    kinds = sys.argv[2:] or ["events", "many"]
    quiet_s = float(os.environ.get("QUIET_S", "70"))
    for kind in kinds:
        if kind not in ("events", "many"):
            sys.exit("kinds: events, many")
        measure(kind, n, quiet_s)


if __name__ == "__main__":
    main()
