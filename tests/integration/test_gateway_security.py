"""it_gateway_security: the gateway's defences against a real stack
(PostgreSQL, dynalite, cognito-local, users-svc, messages-svc).

- token keys: a key removed from the JWKS (served here by a small HTTP
  server in front of cognito-local's own JWKS) stops being trusted within
  GATEWAY_JWKS_REFRESH_S, cached tokens included;
- settings out of range stop the binary at start with one line;
- HEAD answers like GET without the body; an unknown Expect gets 417;
- behind a load balancer: idle keep-alive outlasts the ALB's 60 s, and the
  per-address connection cap spares the trusted proxy;
- abuse limits: per-user sends and conversation starts, per-address public
  card lookups (X-Forwarded-For believed only from a trusted proxy), exact
  under concurrent requests, 429 + Retry-After + JSON, counted in /metrics.

Loopback has a whole /8: connections from 127.0.0.2 play the load balancer
(GATEWAY_TRUSTED_PROXIES), other 127.0.0.x addresses are distinct clients.
"""
import http.client
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import Stack  # noqa: E402
from test_gateway import USERS, check_schema, resolve  # noqa: E402

PROXY = "127.0.0.2"      # the trusted proxy
IDLE_CLIENT = "127.0.0.3"
PLAIN_CLIENT = "127.0.0.4"
ALB_IDLE_S = 60          # an ALB's default idle timeout
PER_IP = 4
SENDS_BURST, STARTS_BURST, SHORT_BURST = 5, 3, 5
LIMITS = {
    "GATEWAY_JWKS_REFRESH_S": "1",
    "GATEWAY_TRUSTED_PROXIES": PROXY + "/32",
    "GATEWAY_MAX_CONNECTIONS_PER_IP": str(PER_IP),
    # One token a minute: nothing refills while a test runs.
    "GATEWAY_LIMIT_SENDS_BURST": str(SENDS_BURST), "GATEWAY_LIMIT_SENDS_PER_MIN": "1",
    "GATEWAY_LIMIT_STARTS_BURST": str(STARTS_BURST), "GATEWAY_LIMIT_STARTS_PER_MIN": "1",
    "GATEWAY_LIMIT_SHORT_BURST": str(SHORT_BURST), "GATEWAY_LIMIT_SHORT_PER_MIN": "1",
}


class JwksServer:
    """Serves a JWKS document that the test can change."""

    def __init__(self, body):
        self.body = body
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = outer.body
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/jwks.json" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class GatewaySecurityTest(unittest.TestCase):
    s = None

    @classmethod
    def setUpClass(cls):
        cls.s = s = Stack()
        try:
            s.postgres()
            s.dynalite()
            s.cognito()
            for h, (n, e) in USERS.items():
                s.cognito_user(h, n, e)
            s.users_svc(migrate=True, seed=True)
            r = s.run("users-svc", "sync-cognito")
            assert r.returncode == 0, r.stderr
            s.messages_svc(schema=True)
            with urllib.request.urlopen(s.issuer + "/.well-known/jwks.json", timeout=10) as f:
                cls.jwks_real = f.read()
            cls.jwks = JwksServer(cls.jwks_real)
            env = dict(LIMITS, GATEWAY_JWKS_URL=cls.jwks.url)
            s.gateway(env=env)
            cls.port = int(s.gateway_url.rsplit(":", 1)[1])
            cls.tokens = {h: s.token(h) for h in USERS}
            st, _, body = cls.http("GET", "/openapi.json")
            cls.spec = json.loads(body)
            # A keep-alive connection that will sit idle for longer than an
            # ALB's idle timeout (checked by the last test).
            cls.idle = http.client.HTTPConnection("127.0.0.1", cls.port, timeout=10,
                                                  source_address=(IDLE_CLIENT, 0))
            cls.idle.request("GET", "/healthz")
            assert cls.idle.getresponse().read() == b'{"status":"ok"}'
            cls.idle_since = time.monotonic()
        except Exception:
            s.__exit__(*sys.exc_info())
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "idle", None) is not None:
            cls.idle.close()
        if getattr(cls, "jwks", None) is not None:
            cls.jwks.close()
        if cls.s is not None:
            cls.s.__exit__(None, None, None)  # raises when a binary did not exit 0

    # ---- helpers ---------------------------------------------------------------
    @classmethod
    def http(cls, method, path, headers=None, body=None, source=PLAIN_CLIENT, token=None):
        conn = http.client.HTTPConnection("127.0.0.1", cls.port, timeout=15,
                                          source_address=(source, 0))
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + cls.tokens[token]
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def documented(self, method, tmpl, status, body):
        """The answer is the one openapi.json documents for it."""
        op = self.spec["paths"][tmpl][method.lower()]
        resp = op["responses"].get(str(status))
        self.assertIsNotNone(resp, "%s %s: %d not documented" % (method, tmpl, status))
        resp = resolve(self.spec, resp)
        schema = resp.get("content", {}).get("application/json", {}).get("schema")
        if schema is not None:
            check_schema(self.spec, schema, json.loads(body))

    def limited_count(self, limit):
        _, _, body = self.http("GET", "/metrics")
        m = re.search(r'^gateway_rate_limited_total\{limit="%s"\} (\d+)$' % limit,
                      body.decode(), re.M)
        self.assertIsNotNone(m, "gateway_rate_limited_total{limit=%s} missing" % limit)
        return int(m.group(1))

    def concurrently(self, n, fn):
        """Runs fn(i) in n threads released together; returns the results."""
        out = [None] * n
        gate = threading.Barrier(n)

        def run(i):
            gate.wait()
            out[i] = fn(i)

        ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        return out

    def assert_429(self, st, hd, body, method, tmpl):
        self.assertEqual(st, 429, body)
        self.assertEqual(json.loads(body), ["rate_limited"])
        self.assertTrue(hd["content-type"].startswith("application/json"))
        self.assertRegex(hd.get("retry-after", ""), r"^[1-9][0-9]*$")
        self.assertLessEqual(int(hd["retry-after"]), 60)
        self.documented(method, tmpl, st, body)

    # ---- token keys (defect: a removed key stayed trusted) -------------------
    def test_jwks_removed_key_is_dropped(self):
        def groups():
            st, _, _ = self.http("GET", "/api/message_groups", token="bayko")
            return st
        self.assertEqual(groups(), 200)
        self.assertEqual(groups(), 200)  # now from the verified-token cache
        # The pool retires its key: the JWKS now holds another kid only.
        doc = json.loads(self.jwks_real)
        for k in doc["keys"]:
            k["kid"] = k["kid"] + "-next"
        self.jwks.body = json.dumps(doc).encode()
        try:
            deadline = time.monotonic() + 1 + 3 + 2  # refresh + one fetch + slack
            st = groups()
            while st == 200 and time.monotonic() < deadline:
                time.sleep(0.2)
                st = groups()
            self.assertEqual(st, 401, "a token signed with a removed key is still accepted")
        finally:
            self.jwks.body = self.jwks_real
        deadline = time.monotonic() + 6
        while groups() != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(groups(), 200, "the key is back in the JWKS")

    # ---- settings out of range stop the binary --------------------------------
    def test_bad_settings_stop_at_start(self):
        for name, value in (("GATEWAY_TOKEN_LEEWAY_S", "301"), ("GATEWAY_TOKEN_LEEWAY_S", "-1"),
                            ("GATEWAY_JWKS_REFRESH_S", "0"), ("GATEWAY_TRUSTED_PROXIES", "10.0.0.1/8"),
                            ("GATEWAY_TRUSTED_PROXIES", "not-an-address"),
                            ("GATEWAY_LIMIT_SENDS_BURST", "-1"),
                            ("GATEWAY_LIMIT_SHORT_PER_MIN", "0")):
            e = self.s.env()
            e.update({name: value, "GATEWAY_LISTEN": "127.0.0.1:0"})
            p = subprocess.run([self.s.binary("gateway")], env=e, capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(p.returncode, 2, (name, value, p.stderr))
            lines = p.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, (name, value, p.stderr))
            self.assertIn(name, lines[0])

    # ---- HEAD and Expect --------------------------------------------------------
    def test_head_is_get_without_body(self):
        for path, token in (("/api/message_groups", "bayko"), ("/api/users/@bayko/short", None),
                            ("/healthz", None)):
            gst, ghd, gbody = self.http("GET", path, token=token, source=PLAIN_CLIENT)
            hst, hhd, hbody = self.http("HEAD", path, token=token, source=PLAIN_CLIENT)
            self.assertEqual((hst, hbody), (gst, b""), path)
            self.assertEqual(gst, 200, path)
            for name in ("content-type", "content-length", "cache-control", "vary"):
                self.assertEqual(hhd.get(name), ghd.get(name), (path, name))
            self.assertEqual(int(hhd["content-length"]), len(gbody), path)
        st, hd, body = self.http("HEAD", "/api/messages", token="bayko")
        self.assertEqual((st, hd.get("allow"), body), (405, "POST, OPTIONS", b""))

    def test_unknown_expectation_gets_417(self):
        for method, path, body in (("GET", "/api/users/@bayko/short", None),
                                   ("POST", "/api/messages", {"message": "x", "handle": "londo"})):
            st, hd, data = self.http(method, path, headers={"Expect": "200-ok"}, body=body,
                                     token="bayko" if body else None)
            self.assertEqual((st, json.loads(data)), (417, ["expectation_failed"]), path)
            self.assertTrue(hd["content-type"].startswith("application/json"))
            self.assertTrue(hd.get("x-request-id"))
            tmpl = "/api/users/@{handle}/short" if method == "GET" else "/api/messages"
            self.documented(method, tmpl, st, data)

    # ---- behind a load balancer -----------------------------------------------------
    def test_per_address_cap_spares_the_trusted_proxy(self):
        def hold(source, n):
            conns, answered = [], 0
            try:
                for _ in range(n):
                    c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5,
                                                   source_address=(source, 0))
                    conns.append(c)
                    try:
                        c.request("GET", "/healthz")
                        if c.getresponse().read() == b'{"status":"ok"}':
                            answered += 1
                    except (ConnectionError, http.client.HTTPException, OSError):
                        pass
            finally:
                for c in conns:
                    c.close()
            return answered
        self.assertEqual(hold(PROXY, 3 * PER_IP), 3 * PER_IP)
        time.sleep(0.3)  # the closes above reach the gateway
        self.assertEqual(hold("127.0.0.5", PER_IP + 2), PER_IP, "the cap holds for others")

    def test_zz_idle_keepalive_outlasts_the_load_balancer(self):
        # Runs last (names sort): most of the wait overlaps the other tests.
        left = self.idle_since + ALB_IDLE_S + 5 - time.monotonic()
        if left > 0:
            time.sleep(left)
        self.idle.request("GET", "/healthz")
        r = self.idle.getresponse()
        self.assertEqual((r.status, r.read()), (200, b'{"status":"ok"}'))

    # ---- abuse limits ---------------------------------------------------------------
    def group_of(self, a, b):
        st, _, body = self.http("POST", "/api/messages", token=a, source=PROXY,
                                body={"message": "hello", "handle": b})
        self.assertEqual(st, 200, body)
        return json.loads(body)["message_group_uuid"]

    def test_sends_limit_holds_under_concurrency(self):
        group = self.group_of("londo", "bayko")  # a start, not a send
        before = self.limited_count("sends")

        def post(i):
            return self.http("POST", "/api/messages", token="londo", source=PROXY,
                             body={"message": "burst %d" % i, "message_group_uuid": group})
        res = self.concurrently(12, post)
        ok = [r for r in res if r[0] == 200]
        self.assertEqual(len(ok), SENDS_BURST, [r[0] for r in res])
        for st, hd, body in res:
            if st != 200:
                self.assert_429(st, hd, body, "POST", "/api/messages")
        self.assertEqual(self.limited_count("sends") - before, 12 - SENDS_BURST)
        # Nothing past the limit was stored.
        st, _, body = self.http("GET", "/api/messages/%s?limit=100" % group, token="londo")
        stored = [m["message"] for m in json.loads(body) if m["message"].startswith("burst ")]
        self.assertEqual(len(stored), SENDS_BURST)
        # Another user in the same conversation has a bucket of their own.
        st, _, body = self.http("POST", "/api/messages", token="bayko", source=PROXY,
                                body={"message": "still fine", "message_group_uuid": group})
        self.assertEqual(st, 200, body)

    def test_starts_limit_holds_under_concurrency(self):
        def start(i):
            return self.http("POST", "/api/messages", token="andrewbrown", source=PROXY,
                             body={"message": "hi %d" % i, "handle": ("bayko", "londo")[i % 2]})
        res = self.concurrently(8, start)
        self.assertEqual(sum(1 for r in res if r[0] == 200), STARTS_BURST, [r[0] for r in res])
        for st, hd, body in res:
            if st != 200:
                self.assert_429(st, hd, body, "POST", "/api/messages")
        # Sends are a separate bucket: andrewbrown can still post into a group.
        group = json.loads(next(r[2] for r in res if r[0] == 200))["message_group_uuid"]
        st, _, body = self.http("POST", "/api/messages", token="andrewbrown", source=PROXY,
                                body={"message": "reply", "message_group_uuid": group})
        self.assertEqual(st, 200, body)

    def test_legitimate_traffic_under_the_limit_never_sees_429(self):
        # bayko's own bucket: a few sends (under the burst), reads are never limited.
        group = self.group_of("bayko", "andrewbrown")
        statuses = []
        for i in range(SENDS_BURST - 2):  # test_sends may have spent one of bayko's
            st, _, _ = self.http("POST", "/api/messages", token="bayko", source=PROXY,
                                 body={"message": "m%d" % i, "message_group_uuid": group})
            statuses.append(st)
        for _ in range(30):
            st, _, _ = self.http("GET", "/api/messages/" + group, token="bayko", source=PROXY)
            statuses.append(st)
        self.assertEqual(set(statuses), {200})
        # Each client behind the proxy has its own card budget.
        for i in range(20):
            st, _, _ = self.http("GET", "/api/users/@bayko/short", source=PROXY,
                                 headers={"X-Forwarded-For": "192.0.2.%d" % (100 + i)})
            self.assertEqual(st, 200)

    def test_short_limit_per_client_address(self):
        before = self.limited_count("user_short")

        def card(xff, source=PROXY):
            return self.http("GET", "/api/users/@londo/short", source=source,
                             headers={"X-Forwarded-For": xff})
        # Behind the trusted proxy: the client in X-Forwarded-For is limited,
        # whatever it wrote to the left of the proxy's entry.
        res = self.concurrently(10, lambda i: card("10.9.9.%d, 203.0.113.7" % i))
        self.assertEqual(sum(1 for r in res if r[0] == 200), SHORT_BURST, [r[0] for r in res])
        for st, hd, body in res:
            if st != 200:
                self.assert_429(st, hd, body, "GET", "/api/users/@{handle}/short")
        self.assertEqual(card("203.0.113.8")[0], 200)  # another client
        # Unknown handles count too (enumeration is mostly misses).
        st, hd, body = self.http("GET", "/api/users/@nobody_here/short", source=PROXY,
                                 headers={"X-Forwarded-For": "203.0.113.7"})
        self.assert_429(st, hd, body, "GET", "/api/users/@{handle}/short")
        # From an untrusted peer the header is ignored: rotating it does not help.
        res = [card("198.51.100.%d" % i, source="127.0.0.6") for i in range(SHORT_BURST + 3)]
        self.assertEqual([r[0] for r in res], [200] * SHORT_BURST + [429] * 3)
        self.assertEqual(self.limited_count("user_short") - before, 5 + 1 + 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
