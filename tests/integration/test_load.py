"""it_load: load and lifecycle (issue 7). One stack, three parts:

1. Concurrency: CLIENTS clients post PER_CLIENT messages each into ONE group
   (both participants' tokens, half each) and CLIENTS more clients post into
   CLIENTS different groups (loadNN <-> andrewbrown). Afterwards the counts are
   exact, every text is there once and in each client's order, and both
   participants' group lists show each group's latest message.
2. Soak (SOAK_S seconds, mixed reads and writes): VmRSS of each binary is
   sampled; after WARMUP_S its growth must stay under RSS_BOUND_KIB. The
   sanitizer build keeps freed memory in a quarantine, so the binaries run here
   with ASAN_OPTIONS quarantine_size_mb=QUARANTINE_MB to keep that bounded.
3. Graceful shutdown: SIGTERM to users-svc, messages-svc and the gateway while
   requests are in flight, then a second SIGTERM during the drain: the
   in-flight requests complete, the second signal is logged and ignored, the
   binary exits 0 within its drain time (10 s) plus a margin; services are
   restarted in between and the stack recovers. No sleep decides what is in
   flight: the proxy in front of DynamoDB (PostgreSQL for users-svc) holds
   every answer until IN_FLIGHT requests are waiting in it, so they are
   provably inside the handlers (inside the gateway) when the signals come,
   and lets them go only once the log shows the drain under way.

Run: CRUDDUR_BUILD_DIR=build/asan CRUDDUR_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_load.py
Environment: LOAD_SOAK_S (default 60) changes the soak length.
"""
import collections
import os
import signal
import sys
import threading
import time
import unittest

SOURCE_DIR = os.environ.get("CRUDDUR_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "hostile"))
import hostile  # noqa: E402

CLIENTS = 32
PER_CLIENT = 8
SOAK_S = float(os.environ.get("LOAD_SOAK_S", "60"))
WARMUP_S = 15.0
RSS_BOUND_KIB = 16 * 1024     # growth allowed after warm-up, per binary
QUARANTINE_MB = 8
DRAIN_BOUND_S = 13.0          # drain time (10 s) + start-up slack
BINARIES = ("users-svc", "messages-svc", "gateway")
IN_FLIGHT = 4                 # = RPC_WORKERS and PG_POOL_SIZE: calls a service worker holds
ASAN = ("detect_leaks=1:abort_on_error=0:exitcode=23:quarantine_size_mb=%d:"
        "thread_local_quarantine_size_kb=64" % QUARANTINE_MB)


def run_threads(fn, n):
    out = [None] * n

    def one(i):
        try:
            out[i] = fn(i)
        except Exception as e:
            out[i] = e
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return out


def groups_of(client):
    """{group uuid: entry} over every page of GET /api/message_groups."""
    out = {}
    for page in hostile.walk_pages(client, "/api/message_groups"):
        for g in page:
            out[g["uuid"]] = g
    return out


class HoldProxy(hostile.DelayProxy):
    """A DelayProxy that can also hold every answer. While held, requests
    still reach the target but nothing comes back; wait_held(n) waits for n
    client connections that sent something since hold(): each is one request
    waiting for its answer (HTTP/1.1 to DynamoDB and libpq do not pipeline),
    so one handler inside its upstream call."""

    def __init__(self, target_port):
        super().__init__(target_port, 0.0)
        self._open = threading.Event()
        self._open.set()
        self._cv = threading.Condition()
        self._waiting = set()

    def hold(self):
        with self._cv:
            self._waiting = set()
            self._open.clear()

    def release(self):
        self._open.set()

    def wait_held(self, n, timeout):
        with self._cv:
            return self._cv.wait_for(lambda: len(self._waiting) >= n, timeout)

    def _pump(self, src, dst, delayed):
        super()._pump(_Held(self, src, delayed), dst, delayed)


class _Held:
    """One side of a HoldProxy connection: an answer read from the target
    waits while the proxy holds; a request read from the client is counted."""

    def __init__(self, proxy, sock, answer):
        self.proxy, self.sock, self.answer = proxy, sock, answer

    def recv(self, n):
        data = self.sock.recv(n)
        if data and self.answer:
            self.proxy._open.wait()
        elif data and not self.proxy._open.is_set():
            with self.proxy._cv:
                self.proxy._waiting.add(self.sock)
                self.proxy._cv.notify_all()
        return data

    def __getattr__(self, name):
        return getattr(self.sock, name)


class LoadAndLifecycle(unittest.TestCase):
    def test_load_and_lifecycle(self):
        # users-svc reaches PostgreSQL and messages-svc reaches dynalite through
        # proxies that hold answers in the shutdown part (and pass them before).
        port, pg_port = hostile.free_port(), hostile.free_port()
        proxy, pg_proxy = HoldProxy(port), HoldProxy(pg_port)
        # The gateway gives every connection its own thread (the default), so the
        # slow requests below are really in flight at the service at SIGTERM.
        # The gateway's upstream deadline outlasts the time answers are held.
        w = hostile.World(extra_users=CLIENTS, svc_env={"ASAN_OPTIONS": ASAN},
                          gateway_env=dict(hostile.LOAD_TEST_LIMITS, GATEWAY_RPC_TIMEOUT_MS="15000"),
                          messages_env={"AWS_ENDPOINT_URL_DYNAMODB": proxy.url},
                          # New pool connections wait out held answers (libpq's 2 s
                          # connect_timeout would fail them).
                          users_env={"CONNECTION_URL": "postgresql://postgres@127.0.0.1:%d/cruddur"
                                     "?connect_timeout=30" % pg_proxy.port})
        w.s.fixed_ports = {"dynalite": port, "postgres": pg_port}
        w.proxies += [proxy, pg_proxy]
        with w:
            t0 = time.time()
            self.concurrency(w)
            t1 = time.time()
            self.soak(w)
            t2 = time.time()
            self.shutdown(w, proxy, pg_proxy)
            print("\nload: concurrency %.0fs, soak %.0fs, shutdown %.0fs" % (
                t1 - t0, t2 - t1, time.time() - t2))

    # ---- 1. concurrency --------------------------------------------------
    def concurrency(self, w):
        a = w.client("andrewbrown")
        r = a.call("POST", "/api/messages", {"message": "shared start", "handle": "bayko"})
        self.assertEqual(r.status, 200, r.body[:200])
        shared = r.json()["message_group_uuid"]
        own = {}
        for i in range(CLIENTS):
            h = "load%02d" % i
            r = w.client(h).call("POST", "/api/messages", {"message": "start", "handle": "andrewbrown"})
            self.assertEqual(r.status, 200, r.body[:200])
            own[h] = r.json()["message_group_uuid"]

        def shared_client(i):
            c = w.client(("andrewbrown", "bayko")[i % 2], timeout=30)
            got = []
            for k in range(PER_CLIENT):
                text = "s%02d-%02d" % (i, k)
                r = c.call("POST", "/api/messages", {"message": text, "message_group_uuid": shared},
                           {"Idempotency-Key": "load-s-%d-%d" % (i, k)})
                got.append((text, r.status))
            return got

        def own_client(i):
            h = "load%02d" % i
            c = w.client(h, timeout=30)
            got = []
            for k in range(PER_CLIENT):
                text = "o%02d-%02d" % (i, k)
                r = c.call("POST", "/api/messages", {"message": text, "message_group_uuid": own[h]})
                got.append((text, r.status))
            return got

        t = time.time()
        res = run_threads(lambda i: shared_client(i) if i < CLIENTS else own_client(i - CLIENTS),
                          2 * CLIENTS)
        took = time.time() - t
        errors = [r for r in res if isinstance(r, Exception)]
        self.assertEqual(errors, [], "client threads failed")
        statuses = collections.Counter(st for r in res for _, st in r)
        print("\nconcurrency: %d posts in %.1fs: %s" % (sum(statuses.values()), took, dict(statuses)))
        self.assertEqual(dict(statuses), {200: 2 * CLIENTS * PER_CLIENT})

        # Exact counts, each text once, each client's order kept.
        msgs = hostile.all_messages(a, shared)
        texts = [m["message"] for m in msgs]
        self.assertEqual(len(texts), 1 + CLIENTS * PER_CLIENT, "messages in the shared group")
        self.assertEqual(len(set(texts)), len(texts), "duplicated texts in the shared group")
        for i in range(CLIENTS):
            mine = [x for x in texts if x.startswith("s%02d-" % i)]
            self.assertEqual(mine, ["s%02d-%02d" % (i, k) for k in range(PER_CLIENT)])
        stamps = [m["created_at"] for m in msgs]
        self.assertEqual(stamps, sorted(stamps), "shared group not in chronological order")
        for i in range(CLIENTS):
            h = "load%02d" % i
            got = [m["message"] for m in hostile.all_messages(w.client(h), own[h])]
            self.assertEqual(got, ["start"] + ["o%02d-%02d" % (i, k) for k in range(PER_CLIENT)], h)

        # Both participants' group lists show each group's latest message.
        ga, gb = groups_of(a), groups_of(w.client("bayko"))
        self.assertEqual(ga[shared]["message"], texts[-1], "andrewbrown's preview of the shared group")
        self.assertEqual(gb[shared]["message"], texts[-1], "bayko's preview of the shared group")
        self.assertEqual(len(ga), 1 + CLIENTS, "andrewbrown's group count")
        for i in range(CLIENTS):
            h = "load%02d" % i
            last = "o%02d-%02d" % (i, PER_CLIENT - 1)
            self.assertEqual(ga[own[h]]["message"], last, "andrewbrown's preview of %s" % h)
            self.assertEqual(ga[own[h]]["handle"], h)
            mine = groups_of(w.client(h))
            self.assertEqual(mine[own[h]]["message"], last, "%s's own preview" % h)
            self.assertEqual(mine[own[h]]["handle"], "andrewbrown")
        self.shared, self.own = shared, own

    # ---- 2. soak ------------------------------------------------------------
    def soak(self, w):
        stop = threading.Event()
        stats = collections.Counter()
        lat = []
        lock = threading.Lock()

        def worker(i):
            h = "load%02d" % i
            c = w.client(h, timeout=15)
            n = 0
            while not stop.is_set():
                n += 1
                t = time.time()
                try:
                    if n % 3 == 0:
                        r = c.call("POST", "/api/messages", {"message": "soak %d" % n,
                                                             "message_group_uuid": self.own[h]})
                    elif n % 3 == 1:
                        r = c.call("GET", "/api/messages/%s?limit=20" % self.own[h])
                    else:
                        r = c.call("GET", "/api/message_groups")
                    st = r.status
                except Exception as e:
                    st = type(e).__name__
                with lock:
                    stats[st] += 1
                    lat.append(time.time() - t)

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(6)]
        for t in threads:
            t.start()
        pids = {n: w.s.procs[n].pid for n in BINARIES}
        series = {n: [] for n in BINARIES}
        t0 = time.time()
        while time.time() - t0 < SOAK_S:
            for n in BINARIES:
                series[n].append((time.time() - t0, hostile.rss_kib(pids[n])))
            time.sleep(2)
        stop.set()
        for t in threads:
            t.join(30)
        lat.sort()
        print("soak: %ds, %d requests %s, p50 %.1f ms p99 %.1f ms" % (
            SOAK_S, len(lat), dict(stats), 1000 * lat[len(lat) // 2], 1000 * lat[int(len(lat) * .99)]))
        self.assertEqual(set(stats), {200}, "soak answers: %s" % dict(stats))
        for n in BINARIES:
            after = [k for t, k in series[n] if t >= WARMUP_S]
            base, peak = after[0], max(after)
            print("  %-12s VmRSS KiB at warm-up %d, peak %d, end %d (growth %+d, bound %d)" % (
                n, base, peak, after[-1], peak - base, RSS_BOUND_KIB))
            self.assertLessEqual(peak - base, RSS_BOUND_KIB, "%s VmRSS grew after warm-up: %s" % (
                n, series[n]))

    # ---- 3. graceful shutdown ---------------------------------------------
    def shutdown(self, w, proxy, pg_proxy):
        for name in BINARIES:
            with self.subTest(binary=name):
                self.drain_one(w, proxy, pg_proxy, name)

    def drain_one(self, w, proxy, pg_proxy, name):
        """IN_FLIGHT requests held in the upstream proxy, SIGTERM, a second
        SIGTERM once the drain is under way, then the answers: every request
        completes with 200 and the binary exits 0."""
        if name == "users-svc":
            # The public lookup reaches users-svc (no gateway cache for it) and
            # PostgreSQL, anonymously (no token lookup before it); the others
            # reach messages-svc and DynamoDB.
            held, who = pg_proxy, None

            def req(c):
                return c.call("GET", "/api/users/@bayko/short")
        else:
            held, who = proxy, "andrewbrown"

            def req(c):
                return c.call("GET", "/api/messages/%s?limit=5" % self.shared)
        results = [None] * IN_FLIGHT

        def one(i):
            c = w.client(who, timeout=30)
            t = time.time()
            try:
                results[i] = (req(c).status, time.time() - t)
            except Exception as e:
                results[i] = (type(e).__name__, time.time() - t)
        held.hold()
        ts = [threading.Thread(target=one, args=(i,)) for i in range(IN_FLIGHT)]
        try:
            for t in ts:
                t.start()
            self.assertTrue(held.wait_held(IN_FLIGHT, 30),
                            "%d requests never reached the upstream of %s" % (IN_FLIGHT, name))
            proc = w.s.procs[name]
            mark = w.s.log_mark(name)
            t_sig = time.time()
            proc.signal(signal.SIGTERM)
            draining = w.s.wait_log(name, "draining", since=mark)
            proc.signal(signal.SIGTERM)
            ignored = w.s.wait_log(name, "received while draining: ignored", since=mark, timeout=5)
        finally:
            held.release()
        try:
            status = proc.popen.wait(20)
        except Exception:
            proc.popen.kill()
            status = "timeout"
        took = time.time() - t_sig
        for t in ts:
            t.join(30)
        got = [r[0] for r in results]
        print("drain %-12s exit %s after %.2fs; in-flight answers %s" % (name, status, took, got))
        log = w.s.tail(name, 30)
        refused = True
        if name == "gateway":
            # New connections are refused once it is gone.
            try:
                hostile.raw_request(w.port, "GET", "/healthz", timeout=2)
                refused = False
            except Exception:
                pass
        # Restarted before the verdict, so the next binary's drain runs on a
        # whole stack whatever this one's is.
        w.s.restart(name)
        deadline = time.time() + 10
        while time.time() < deadline and not w.ready():
            time.sleep(0.2)
        self.assertTrue(w.ready(), "not ready again after restarting %s" % name)
        self.assertTrue(draining, "%s never logged its drain\n%s" % (name, log))
        self.assertEqual(status, 0, "%s exit status after a second SIGTERM during the drain\n%s" % (
            name, log))
        self.assertEqual(got, [200] * IN_FLIGHT,
                         "requests in flight at SIGTERM to %s must complete" % name)
        self.assertTrue(ignored, "%s did not log the second SIGTERM as ignored\n%s" % (name, log))
        self.assertLess(took, DRAIN_BOUND_S, "%s took %.1fs to exit" % (name, took))
        self.assertTrue(refused, "the gateway still answered after its drain")


if __name__ == "__main__":
    unittest.main(verbosity=2)
