"""The long soak (issue 7): mixed reads and writes against a whole stack on
loopback for a given time; every INTERVAL seconds prints a line with the
requests, errors, latency percentiles and each binary's VmRSS since the last
line, and at the end a summary. Exit status 1 when any request failed or
resident memory grew more than --rss-bound-mib after the first tenth.

    tests/soak/run [SECONDS] [--clients N] [--interval S] [--rss-bound-mib M]
"""
import argparse
import collections
import os
import sys
import threading
import time

SOURCE_DIR = os.environ.get("CRUDDUR_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "hostile"))
import hostile  # noqa: E402

BINARIES = ("users-svc", "messages-svc", "gateway")


def pct(xs, p):
    return 1000 * xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("seconds", nargs="?", type=float, default=3600)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--interval", type=float, default=60)
    ap.add_argument("--rss-bound-mib", type=float, default=32)
    args = ap.parse_args()
    # A small quarantine keeps the sanitizer build's RSS meaningful.
    asan = "detect_leaks=1:abort_on_error=0:exitcode=23:quarantine_size_mb=8"
    lock = threading.Lock()
    window = {"lat": [], "st": collections.Counter()}
    total = collections.Counter()
    stop = threading.Event()
    with hostile.World(extra_users=args.clients, svc_env={"ASAN_OPTIONS": asan},
                       gateway_env=hostile.LOAD_TEST_LIMITS) as w:
        groups = {}
        for i in range(args.clients):
            h = "load%02d" % i
            r = w.client(h).call("POST", "/api/messages", {"message": "soak start",
                                                           "handle": "andrewbrown"})
            groups[h] = r.json()["message_group_uuid"]

        def worker(i):
            h = "load%02d" % i
            c = w.client(h, timeout=15)
            n = 0
            while not stop.is_set():
                n += 1
                t = time.time()
                try:
                    if n % 4 == 0:
                        r = c.call("POST", "/api/messages", {"message": "soak %d" % n,
                                                             "message_group_uuid": groups[h]},
                                   {"Idempotency-Key": "soak-%d-%d" % (i, n)})
                    elif n % 4 == 1:
                        r = c.call("GET", "/api/message_groups")
                    elif n % 4 == 2:
                        r = c.call("GET", "/api/messages/%s?limit=20" % groups[h])
                    else:
                        r = c.call("GET", "/api/users/@andrewbrown/short")
                    st = r.status
                except Exception as e:
                    st = type(e).__name__
                with lock:
                    window["lat"].append(time.time() - t)
                    window["st"][st] += 1
        ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.clients)]
        for t in ts:
            t.start()
        t0 = time.time()
        pids = {n: w.s.procs[n].pid for n in BINARIES}
        rss = {n: [] for n in BINARIES}
        print("%8s %9s %7s %8s %8s %8s  %s" % ("t_s", "requests", "errors", "p50_ms", "p99_ms",
                                              "max_ms", "  ".join("%s_kib" % n for n in BINARIES)))
        while time.time() - t0 < args.seconds:
            time.sleep(min(args.interval, max(0.1, args.seconds - (time.time() - t0))))
            with lock:
                lat, st = sorted(window["lat"]), window["st"]
                window["lat"], window["st"] = [], collections.Counter()
            total.update(st)
            cur = {n: hostile.rss_kib(pids[n]) for n in BINARIES}
            for n in BINARIES:
                rss[n].append((time.time() - t0, cur[n]))
            errs = sum(v for k, v in st.items() if k != 200)
            print("%8.0f %9d %7d %8.1f %8.1f %8.1f  %s" % (
                time.time() - t0, len(lat), errs, pct(lat, .5), pct(lat, .99), pct(lat, 1.0),
                "  ".join("%d" % cur[n] for n in BINARIES)), flush=True)
        stop.set()
        for t in ts:
            t.join(30)
        ok = True
        errs = {k: v for k, v in total.items() if k != 200}
        print("total: %d requests, errors %s" % (sum(total.values()), errs or "none"))
        if errs:
            ok = False
        for n in BINARIES:
            after = [k for t, k in rss[n] if t >= args.seconds / 10] or [k for _, k in rss[n]]
            growth = (max(after) - after[0]) / 1024.0
            print("%-12s VmRSS after warm-up %d KiB, peak %d KiB, growth %.1f MiB (bound %.0f)" % (
                n, after[0], max(after), growth, args.rss_bound_mib))
            if growth > args.rss_bound_mib:
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
