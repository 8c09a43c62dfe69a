"""Live delivery end to end: GET /api/events (server-sent events) on two
gateways, each on its own messages-svc replica, over one dynalite. Real
PostgreSQL, dynalite, cognito-local, users-svc, two messages-svc, two
gateways, real Cognito access tokens.

  - a message posted through one gateway reaches a stream on the other;
  - a stream dropped again and again and resumed with Last-Event-ID (on
    either gateway) misses nothing and repeats nothing, over hundreds of
    messages from concurrent senders;
  - SIGTERM to a gateway ends its open streams at once, it exits 0, and the
    clients lose nothing after resuming on the other gateway;
  - hostile: malformed Last-Event-ID, another user's token, floods past the
    per-user and total caps: 400/429/503 with JSON bodies, never a 5xx for a
    client's mistake, never a hang;
  - every stream of a gateway rides one WatchMany call: streams of many
    users share it, closing one leaves the others delivering, and SIGTERM
    to the replica under it loses nothing once the streams resume.
"""
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "hostile"))
from stack import LOAD_TEST_LIMITS, Stack  # noqa: E402

FRONTEND = "http://localhost:3000"
USERS = {"andrewbrown": ("Andrew Brown", "andrew@exampro.co"),
         "bayko": ("Andrew Bayko", "bayko@exampro.co"),
         "londo": ("Londo Mollari", "lmollari@centari.com")}
PER_USER = 4      # GATEWAY_SSE_MAX_STREAMS_PER_USER on gateway A
TOTAL_B = 6       # GATEWAY_SSE_MAX_STREAMS on gateway B
# How long a message may take to reach a stream on the other replica: the
# cross-replica poll interval plus scheduling slack on a shared, sanitized box.
CROSS_S = 10


class SseError(Exception):
    pass


class Sse:
    """A raw SSE client on one socket: the head, then events as they come."""

    def __init__(self, base, token, last_id=None, origin=None, extra=None, timeout=10):
        host, port = base.split("//")[1].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        lines = ["GET /api/events HTTP/1.1", "Host: %s:%s" % (host, port),
                 "Accept: text/event-stream"]
        if token is not None:
            lines.append("Authorization: Bearer " + token)
        if last_id is not None:
            lines.append("Last-Event-ID: " + last_id)
        if origin is not None:
            lines.append("Origin: " + origin)
        lines += extra or []
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SseError("closed before the head")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *hdrs = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for h in hdrs:
            k, v = h.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        self.comments = 0
        self.body = None
        if self.status != 200:
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
            self.body = json.loads(self.buf[:n]) if n else None
            self.close()

    def next_event(self, timeout=10.0):
        """The next event as {"id","event","data"}; None on timeout; raises
        EOFError when the server closed the stream."""
        deadline = time.time() + timeout
        while True:
            while b"\n\n" in self.buf:
                block, self.buf = self.buf.split(b"\n\n", 1)
                ev = {"id": None, "event": "message", "data": []}
                for line in block.decode("utf-8").split("\n"):
                    if line.startswith(":"):
                        self.comments += 1
                        continue
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "data":
                        ev["data"].append(value)
                    elif field in ("id", "event"):
                        ev[field] = value
                if ev["data"]:
                    ev["data"] = json.loads("\n".join(ev["data"]))
                    return ev
            left = deadline - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except OSError as e:
                raise EOFError(str(e))
            if not chunk:
                raise EOFError("closed")
            self.buf += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class EventsTest(unittest.TestCase):
    s = None

    @classmethod
    def setUpClass(cls):
        cls.s = s = Stack()
        cls.extra = {}
        try:
            s.postgres()
            s.dynalite()
            s.cognito()
            cls.subs = {h: s.cognito_user(h, n, e) for h, (n, e) in USERS.items()}
            s.users_svc(migrate=True, seed=True)
            r = s.run("users-svc", "sync-cognito")
            assert r.returncode == 0, r.stderr
            s.messages_svc(schema=True)
            cls.msgs_a = s.messages_addr
            cls.msgs_b = s.messages_replica(2)
            # The churn tests post as fast as they go: the send limits must not refuse them.
            s.gateway(env=dict(LOAD_TEST_LIMITS, FRONTEND_URL=FRONTEND,
                               GATEWAY_SSE_MAX_STREAMS_PER_USER=str(PER_USER)))
            cls.gw_a = s.gateway_url
            cls.gw_b_env = {**LOAD_TEST_LIMITS, "FRONTEND_URL": FRONTEND, "MESSAGES_ADDR": cls.msgs_b,
                            "GATEWAY_SSE_MAX_STREAMS": str(TOTAL_B),
                            "GATEWAY_SSE_KEEPALIVE_S": "1",
                            "GATEWAY_LISTEN": "127.0.0.1:%d" % s._port("gateway_b")}
            cls.gw_b = cls.start_gateway_b()
            cls.tokens = {h: s.token(h) for h in USERS}
            # The conversation the tests post into.
            st, m = cls.post(cls.gw_a, "andrewbrown", {"message": "hello", "handle": "bayko"})
            assert st == 200, (st, m)
            cls.group = m["message_group_uuid"]
        except Exception:
            cls.stop_extras()
            s.__exit__(*sys.exc_info())
            raise

    @classmethod
    def tearDownClass(cls):
        codes = cls.stop_extras()
        if cls.s is not None:
            cls.s.__exit__(None, None, None)  # raises when a binary did not exit 0
        bad = {n: c for n, c in codes.items() if c != 0}
        assert not bad, "did not exit 0 after SIGTERM: %s\n%s" % (
            bad, "\n".join(cls.s.tail(n, 40) for n in bad))

    # ---- the second replica and gateway -------------------------------------
    @classmethod
    def start_gateway_b(cls):
        """The second gateway (Stack knows one): ours to stop and check."""
        s = cls.s
        url = "http://127.0.0.1:%d" % s.ports["gateway_b"]
        e = s.env()
        e.update(cls.gw_b_env)
        s._spawn("gateway-b", [s.binary("gateway")], env=e)
        cls.extra["gateway-b"] = s.procs.pop("gateway-b")
        deadline = time.time() + 30
        while not _http_ok(url + "/healthz"):
            if not cls.extra["gateway-b"].alive() or time.time() > deadline:
                raise RuntimeError("gateway-b did not start\n%s" % s.tail("gateway-b"))
            time.sleep(0.05)
        return url

    @classmethod
    def stop_extras(cls):
        codes = {}
        for name, p in list(cls.extra.items()):
            if p.popen is not None and p.popen.returncode is None:
                codes[name] = p.stop()
            elif p.popen is not None:
                codes[name] = p.popen.returncode
        cls.extra = {}
        return codes

    # ---- HTTP helpers ---------------------------------------------------------
    @classmethod
    def post(cls, base, who, body):
        conn = http.client.HTTPConnection(base.split("//")[1], timeout=15)
        try:
            conn.request("POST", "/api/messages", json.dumps(body),
                         {"Authorization": "Bearer " + cls.tokens[who],
                          "Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, json.loads(r.read() or b"null")
        finally:
            conn.close()

    def open(self, base, who, last_id=None, **kw):
        """A 200 stream (retrying while a just-closed one still counts
        against the per-user cap) with its first event."""
        deadline = time.time() + 10
        while True:
            sse = Sse(base, self.tokens[who], last_id, **kw)
            if sse.status != 429 or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(sse.status, 200, sse.body)
        self.addCleanup(sse.close)
        return sse

    def wait_for(self, sse, pred, timeout=CROSS_S):
        """Events until pred(ev) holds; returns (that event, those before)."""
        seen = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            ev = sse.next_event(deadline - time.time())
            if ev is None:
                break
            if pred(ev):
                return ev, seen
            seen.append(ev)
        self.fail("no matching event within %ss; got %s" % (timeout, [e["event"] for e in seen]))

    # ---- delivery ---------------------------------------------------------------
    def test_a_first_event_headers_and_cors(self):
        sse = self.open(self.gw_a, "bayko", origin=FRONTEND)
        self.assertEqual(sse.headers["content-type"], "text/event-stream")
        self.assertEqual(sse.headers["access-control-allow-origin"], FRONTEND)
        self.assertEqual(sse.headers["cache-control"], "no-store")
        self.assertNotIn("content-length", sse.headers)
        ev = sse.next_event(5)
        self.assertEqual(ev["event"], "ready")
        self.assertTrue(ev["id"])
        conn = http.client.HTTPConnection(self.gw_a.split("//")[1], timeout=10)
        conn.request("GET", "/metrics")
        metrics = conn.getresponse().read().decode()
        conn.close()
        self.assertRegex(metrics, r"\ngateway_sse_streams [1-9]")

    def test_b_cross_gateway_delivery(self):
        """Posted through gateway A (replica A), seen on gateway B (replica B)."""
        sse = self.open(self.gw_b, "bayko")
        self.assertEqual(sse.next_event(5)["event"], "ready")
        text = "cross " + uuid.uuid4().hex
        st, m = self.post(self.gw_a, "andrewbrown", {"message": text, "message_group_uuid": self.group})
        self.assertEqual(st, 200, m)
        ev, _ = self.wait_for(sse, lambda e: e["event"] == "message" and e["data"]["uuid"] == m["uuid"])
        self.assertEqual(ev["data"], m)  # the POST answer's object, message_group_uuid included
        grp, _ = self.wait_for(sse, lambda e: e["event"] == "message_group")
        self.assertEqual(grp["data"]["uuid"], self.group)
        self.assertEqual(grp["data"]["handle"], "andrewbrown")  # the other person, for bayko
        self.assertEqual(grp["data"]["message"], text)
        self.assertEqual(set(grp["data"]), {"uuid", "display_name", "handle", "message", "created_at"})

    def test_c_keepalive_comment(self):
        sse = self.open(self.gw_b, "londo")  # GATEWAY_SSE_KEEPALIVE_S=1 there
        self.assertEqual(sse.next_event(5)["event"], "ready")
        self.assertIsNone(sse.next_event(2.5))
        self.assertGreaterEqual(sse.comments, 1)

    def churn(self, total, senders, rate, tag):
        """`total` messages from `senders` concurrent senders (both
        participants, through both gateways) at about `rate` messages/s in all
        (0: as fast as they go), while the reader drops its stream every ~40
        events and resumes with Last-Event-ID, alternating gateways
        (replicas). Returns (posted, events received, resync events, drops)."""
        posted, errors = [], []
        lock = threading.Lock()
        gap = senders / rate if rate else 0

        def send(k):
            who = ("andrewbrown", "bayko")[k % 2]
            base = (self.gw_a, self.gw_b)[k % 2]
            for i in range(total // senders):
                t = time.time()
                st, m = self.post(base, who, {"message": "%s %d.%d" % (tag, k, i),
                                              "message_group_uuid": self.group})
                with lock:
                    (posted if st == 200 else errors).append(m if st == 200 else (st, m))
                time.sleep(max(0.0, gap - (time.time() - t)))

        sse = self.open(self.gw_a, "bayko")
        first = sse.next_event(5)
        self.assertEqual(first["event"], "ready")
        last_id = first["id"]
        threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
        for t in threads:
            t.start()
        got, resyncs, drops, since_drop, base_i = [], [], 0, 0, 0
        deadline = time.time() + 180
        while time.time() < deadline:
            done = not any(t.is_alive() for t in threads)
            if done and {m["uuid"] for m in posted} <= {m["uuid"] for m in got}:
                break
            ev = sse.next_event(CROSS_S if done else 2)
            if ev is None:
                if done:
                    break
                continue
            last_id = ev["id"]
            if ev["event"] == "message":
                got.append(ev["data"])
                since_drop += 1
            elif ev["event"] == "resync":
                resyncs.append(dict(ev, at=time.time()))
            if since_drop >= 40:  # drop and resume elsewhere
                sse.close()
                drops += 1
                since_drop = 0
                base_i ^= 1
                sse = self.open((self.gw_a, self.gw_b)[base_i], "bayko", last_id=last_id)
        for t in threads:
            t.join()
        sse.close()
        self.assertEqual(errors, [])
        self.assertGreaterEqual(drops, 5)
        ids = [m["uuid"] for m in got]
        self.assertEqual(len(ids), len(set(ids)), "repeated events")
        # In order per sender (each sends one after another; only messages
        # racing each other may arrive late, see messages-svc's README).
        for k in range(senders):
            seq = [int(m["message"].split(".")[1]) for m in got
                   if m["message"].startswith("%s %d." % (tag, k))]
            self.assertEqual(seq, sorted(seq), "sender %d out of order" % k)
        return posted, got, resyncs, drops

    def test_d_resume_misses_nothing_repeats_nothing(self):
        """300 messages from 4 concurrent senders at ~10/s; drops every ~40
        events, each resumed on the other gateway: every message exactly once,
        no resync."""
        posted, got, resyncs, _ = self.churn(300, 4, 10, "paced")
        self.assertEqual(resyncs, [], "a resync where the position was known")
        self.assertEqual({m["uuid"] for m in got}, {m["uuid"] for m in posted}, "missed events")

    def test_d3_burst_resumes_without_resync(self):
        """300 messages as fast as 4 senders go, same drops. A resume re-reads
        the token's 15 s window page by page (messages-svc's README, "Live
        events": up to 512 messages per window), so even in a burst every
        message arrives exactly once and no resync is needed."""
        posted, got, resyncs, _ = self.churn(300, 4, 0, "burst")
        self.assertEqual(resyncs, [], "a resync where the position was known")
        self.assertEqual({m["uuid"] for m in got}, {m["uuid"] for m in posted}, "missed events")

    def test_e_sigterm_ends_streams_and_nothing_is_lost(self):
        """Streams on gateway B end at SIGTERM (well within the drain), B
        exits 0, and resuming on A misses nothing posted meanwhile."""
        streams = [self.open(self.gw_b, who) for who in ("bayko", "andrewbrown", "bayko")]
        last = [s.next_event(5)["id"] for s in streams]
        proc = self.extra["gateway-b"]
        t0 = time.time()
        proc.signal(15)
        for s in streams:
            with self.assertRaises(EOFError):
                while s.next_event(5) is not None:
                    pass
        self.assertLess(time.time() - t0, 3.0, "streams not ended promptly at SIGTERM")
        proc.popen.wait(20)
        self.assertEqual(proc.popen.returncode, 0, self.s.tail("gateway-b", 40))
        posted = []
        for i in range(10):
            st, m = self.post(self.gw_a, "andrewbrown", {"message": "after sigterm %d" % i,
                                                         "message_group_uuid": self.group})
            self.assertEqual(st, 200, m)
            posted.append(m["uuid"])
        for who, lid in (("bayko", last[0]), ("andrewbrown", last[1])):
            sse = self.open(self.gw_a, who, last_id=lid)
            self.assert_gets_each_once(sse, posted)
            sse.close()
        self.start_gateway_b()

    def assert_gets_each_once(self, sse, posted):
        """A resumed stream: every message of `posted` arrives, none twice,
        and no resync (the position was known)."""
        got = []
        while set(posted) - set(got):
            ev = sse.next_event(CROSS_S)
            self.assertIsNotNone(ev, "missing after resume: %s" % (set(posted) - set(got)))
            self.assertNotEqual(ev["event"], "resync")
            if ev["event"] == "message":
                got.append(ev["data"]["uuid"])
        self.assertEqual(len(got), len(set(got)), "repeated events")

    def test_d2_stream_ends_when_the_token_expires(self):
        """A token that expires in 3 s (signed with cognito-local's key): the
        stream is open, then closed by the gateway once exp passes."""
        from hostile import Minter
        minter = Minter(self.s.issuer, self.s.client_id)
        exp = int(time.time()) + 3
        token = minter.rs256(None, minter.claims(self.subs["londo"], exp=exp))
        sse = Sse(self.gw_a, token)
        self.assertEqual(sse.status, 200, sse.body)
        self.assertEqual(sse.next_event(5)["event"], "ready")
        with self.assertRaises(EOFError):
            while sse.next_event(8) is not None:
                pass
        self.assertGreaterEqual(time.time(), exp - 0.5)
        self.assertLess(time.time(), exp + 3)

    # ---- hostile ----------------------------------------------------------------
    def assert_json_error(self, sse, status, code):
        self.assertEqual(sse.status, status, sse.body)
        self.assertTrue(sse.headers["content-type"].startswith("application/json"))
        self.assertEqual(sse.body, [code])

    def test_f_malformed_last_event_id(self):
        for bad in ["a b", "x" * 513, "\x7fabc", "caf\xe9", "a\tb"]:
            sse = Sse(self.gw_a, self.tokens["bayko"], last_id=bad)
            self.assert_json_error(sse, 400, "last_event_id_invalid")
        # Well-formed but not a token messages-svc made.
        for bad in ["garbage", "A" * 100, "eyJ0eXAiOiJKV1QifQ.e30.x"]:
            sse = Sse(self.gw_a, self.tokens["bayko"], last_id=bad)
            self.assert_json_error(sse, 400, "last_event_id_invalid")

    def test_g_other_users_token(self):
        mine = self.open(self.gw_a, "andrewbrown")
        token = mine.next_event(5)["id"]
        mine.close()
        sse = Sse(self.gw_a, self.tokens["londo"], last_id=token)
        self.assert_json_error(sse, 400, "last_event_id_invalid")
        # The owner may still use it.
        self.open(self.gw_a, "andrewbrown", last_id=token)

    def test_h_unauthenticated(self):
        sse = Sse(self.gw_a, None)
        self.assertEqual(sse.status, 401)
        sse = Sse(self.gw_a, "not-a-token")
        self.assertEqual(sse.status, 401)

    def test_i_per_user_cap(self):
        time.sleep(0.5)  # streams of earlier tests are gone
        held = [self.open(self.gw_a, "londo") for _ in range(PER_USER)]
        over = Sse(self.gw_a, self.tokens["londo"])
        self.assert_json_error(over, 429, "too_many_streams")
        self.assertGreaterEqual(int(over.headers["retry-after"]), 1)
        # Another user is not affected.
        self.open(self.gw_a, "bayko").close()
        for h in held:
            h.close()
        self.open(self.gw_a, "londo")  # a place again once one closed

    def test_j_total_cap_flood(self):
        """A flood of streams on gateway B (cap TOTAL_B): 200 or 503/429,
        never anything else, and the gateway stays healthy."""
        held, statuses = [], []
        for i in range(TOTAL_B * 3):
            sse = Sse(self.gw_b, self.tokens[("andrewbrown", "bayko", "londo")[i % 3]])
            statuses.append(sse.status)
            if sse.status == 200:
                held.append(sse)
            else:
                self.assertIn(sse.status, (429, 503))
                self.assertIn("retry-after", sse.headers)
                self.assertIn(sse.body, (["streams_unavailable"], ["too_many_streams"]))
        self.assertEqual(statuses.count(200), TOTAL_B)
        self.assertIn(503, statuses)
        for h in held:
            h.close()
        self.assertTrue(_http_ok(self.gw_b + "/healthz"))
        time.sleep(0.5)
        self.open(self.gw_b, "bayko")

    def test_k_client_talks_and_vanishes(self):
        """Bytes sent on an open stream, half-open sockets, resets: the
        gateway shrugs them off."""
        sse = self.open(self.gw_a, "bayko")
        sse.sock.sendall(b"x" * 10000)  # more than a stream client may send
        with self.assertRaises(EOFError):
            while sse.next_event(5) is not None:
                pass
        for _ in range(20):  # connect, ask, vanish before the answer
            host, port = self.gw_a.split("//")[1].split(":")
            sk = socket.create_connection((host, int(port)), timeout=5)
            sk.sendall(("GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                        % self.tokens["bayko"]).encode())
            sk.close()
        time.sleep(0.5)
        self.assertTrue(_http_ok(self.gw_a + "/healthz"))
        self.open(self.gw_a, "bayko")

    # ---- many streams on one upstream call (gateway/src/wmux.c) -----------------
    def metrics(self, base):
        """The gateway's event-stream figures from /metrics, as ints."""
        conn = http.client.HTTPConnection(base.split("//")[1], timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        out = {}
        for name in ("gateway_sse_streams", "gateway_sse_watches", "gateway_sse_upstream_calls",
                     "gateway_sse_upstream_calls_total"):
            m = re.search(r"^%s (\d+)$" % name, text, re.M)
            self.assertIsNotNone(m, "%s missing from /metrics" % name)
            out[name] = int(m.group(1))
        return out

    def wait_metric(self, base, name, want, timeout=5):
        deadline = time.time() + timeout
        while True:
            got = self.metrics(base)
            if got[name] == want or time.time() > deadline:
                self.assertEqual(got[name], want, got)
                return got
            time.sleep(0.05)

    def test_l_streams_of_many_users_share_one_upstream_call(self):
        """Streams of three users on gateway A ride one WatchMany call: the
        gateway opens no call per stream, and each stream still gets its
        own user's events."""
        time.sleep(0.5)  # streams of earlier tests are gone
        before = self.wait_metric(self.gw_a, "gateway_sse_watches", 0)
        mark = self.s.log_mark("messages-svc")
        streams = {who: [self.open(self.gw_a, who) for _ in range(3)] for who in USERS}
        for group in streams.values():
            for sse in group:
                self.assertEqual(sse.next_event(5)["event"], "ready")
        got = self.metrics(self.gw_a)
        self.assertEqual(got["gateway_sse_streams"], 9, got)
        self.assertEqual(got["gateway_sse_watches"], 9, got)
        self.assertEqual(got["gateway_sse_upstream_calls"], 1, got)
        # At most the one call this test needed, whatever the earlier tests left.
        self.assertLessEqual(got["gateway_sse_upstream_calls_total"],
                             before["gateway_sse_upstream_calls_total"] + 1, got)
        text = "shared " + uuid.uuid4().hex
        st, m = self.post(self.gw_a, "andrewbrown", {"message": text, "message_group_uuid": self.group})
        self.assertEqual(st, 200, m)
        for who in ("andrewbrown", "bayko"):  # both are in the conversation
            for sse in streams[who]:
                self.wait_for(sse, lambda e: e["event"] == "message" and e["data"]["uuid"] == m["uuid"])
        for sse in streams["londo"]:  # not in it: nothing of it
            ev = sse.next_event(1.5)
            self.assertTrue(ev is None or ev["data"].get("uuid") != m["uuid"], ev)
        # messages-svc's side: the streams' ends made no call end there (it
        # logs each call as it ends; a WatchEvents call per stream would).
        for group in streams.values():
            for sse in group:
                sse.close()
        self.wait_metric(self.gw_a, "gateway_sse_watches", 0)
        time.sleep(0.5)
        with open(self.s.log_path("messages-svc"), "rb") as f:
            f.seek(mark)
            ended = [ln for ln in f.read().decode("utf-8", "replace").splitlines()
                     if "MessagesService/Watch" in ln]
        self.assertEqual(ended, [], "calls ended upstream when streams closed")

    def test_m_closing_one_stream_leaves_the_others_delivering(self):
        """A stream closed by its client ends its watch only: the other
        streams on the call, of the same user too, keep delivering."""
        time.sleep(0.5)
        self.wait_metric(self.gw_a, "gateway_sse_watches", 0)
        a1, a2, b1 = (self.open(self.gw_a, w) for w in ("bayko", "bayko", "andrewbrown"))
        for sse in (a1, a2, b1):
            self.assertEqual(sse.next_event(5)["event"], "ready")
        calls = self.metrics(self.gw_a)["gateway_sse_upstream_calls_total"]
        a1.close()
        self.wait_metric(self.gw_a, "gateway_sse_watches", 2)
        for i in range(3):
            st, m = self.post(self.gw_a, "andrewbrown",
                              {"message": "after close %d" % i, "message_group_uuid": self.group})
            self.assertEqual(st, 200, m)
            for sse in (a2, b1):
                self.wait_for(sse, lambda e: e["event"] == "message" and e["data"]["uuid"] == m["uuid"])
        got = self.metrics(self.gw_a)
        self.assertEqual(got["gateway_sse_upstream_calls_total"], calls, "a call was reopened")
        self.assertEqual(got["gateway_sse_upstream_calls"], 1, got)

    def test_n_messages_svc_sigterm_nothing_lost(self):
        """SIGTERM to replica B with streams open on gateway B: its WatchMany
        call ends (UNAVAILABLE), so every stream on it ends promptly; while
        the replica is down a new stream is refused 503; once it is back,
        streams resumed with Last-Event-ID on gateway B get every message
        posted meanwhile (through A), once, without a resync, on a new call."""
        streams = [self.open(self.gw_b, who) for who in ("bayko", "andrewbrown", "bayko")]
        last = [sse.next_event(5)["id"] for sse in streams]
        calls = self.metrics(self.gw_b)["gateway_sse_upstream_calls_total"]
        t0 = time.time()
        code = self.s.terminate("messages-svc-2")
        for sse in streams:
            with self.assertRaises(EOFError):
                while sse.next_event(5) is not None:
                    pass
        self.assertLess(time.time() - t0, 12.0, "streams not ended within the replica's drain")
        self.assertEqual(code, 0, self.s.tail("messages-svc-2", 40))
        self.wait_metric(self.gw_b, "gateway_sse_upstream_calls", 0)
        posted = []
        try:
            for i in range(8):
                st, m = self.post(self.gw_a, ("andrewbrown", "bayko")[i % 2],
                                  {"message": "replica down %d" % i, "message_group_uuid": self.group})
                self.assertEqual(st, 200, m)
                posted.append(m["uuid"])
            down = Sse(self.gw_b, self.tokens["bayko"], last_id=last[0])
            self.assertEqual(down.status, 503, down.body)
            self.assertIn("retry-after", down.headers)
        finally:
            self.s.messages_replica(2, env=None)
        for who, lid in (("bayko", last[0]), ("andrewbrown", last[1]), ("bayko", last[2])):
            deadline = time.time() + 10
            while True:  # the gateway may still be in its reconnect backoff
                sse = Sse(self.gw_b, self.tokens[who], last_id=lid)
                if sse.status != 503 or time.time() > deadline:
                    break
                time.sleep(0.2)
            self.assertEqual(sse.status, 200, sse.body)
            self.addCleanup(sse.close)
            self.assert_gets_each_once(sse, posted)
        got = self.metrics(self.gw_b)
        self.assertEqual(got["gateway_sse_upstream_calls"], 1, got)
        self.assertGreater(got["gateway_sse_upstream_calls_total"], calls, got)


def _http_ok(url, timeout=2.0):
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


if __name__ == "__main__":
    unittest.main(verbosity=2)
