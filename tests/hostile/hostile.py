"""Shared pieces of the black-box reliability and security suites.

- raw_request(): an HTTP/1.1 client on a raw socket, so a test can send bytes no
  library would (NUL in the path, broken headers, a body that lies about its length);
- Minter: builds Cognito-shaped access tokens, well signed (cognito-local's own key,
  shipped in its npm package) or deliberately broken;
- DelayProxy: a TCP proxy that delays (or holds) a dependency's answers;
- World: a whole stack with known users, tokens and one conversation;
- snapshot helpers (DynamoDB scan digest, PostgreSQL users digest) and page walking.

Everything listens and connects on 127.0.0.1 only. Run with /usr/bin/python3.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid as uuidlib

SOURCE_DIR = os.environ.get("CRUDDUR_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "stack"))
from stack import (Stack, aws_json, free_port, pg_bindir, stubs, NODE_BIN,  # noqa: E402,F401
                   LOAD_TEST_LIMITS)

COGNITO_KEY_JSON = os.path.join(NODE_BIN, "..", "cognito-local", "lib", "keys",
                                "cognitoLocal.private.json")
COGNITO_KID = "CognitoLocal"


# ---- raw HTTP ---------------------------------------------------------------
class Response:
    def __init__(self, status, reason, headers, body, elapsed):
        self.status, self.reason, self.headers, self.body, self.elapsed = (
            status, reason, headers, body, elapsed)

    def header(self, name):
        """First value of a header (case-insensitive), or None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.reason, self.body[:200])


class NoResponse(Exception):
    """The server closed or reset the connection without an answer."""


def _read_response(sock, deadline, head_only=False):
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.time()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no response head before the deadline")
        except (ConnectionResetError, BrokenPipeError) as e:
            raise NoResponse("reset before a response: %s" % e)
        if not chunk:
            raise NoResponse("closed before a response (%d bytes read)" % len(buf))
        buf += chunk
        if len(buf) > 1 << 20:
            raise NoResponse("response head over 1 MiB")
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
    if not m:
        raise NoResponse("bad status line %r" % lines[0])
    status, reason = int(m.group(1)), m.group(2)
    if 100 <= status < 200 and status != 101:
        # An interim answer (100 Continue): the real one follows.
        return _read_response_rest(sock, deadline, rest, head_only)
    headers = []
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            headers.append((k.strip(), v.strip()))
    hmap = {k.lower(): v for k, v in headers}
    if head_only or status in (204, 304) or 100 <= status < 200:
        return status, reason, headers, b""

    def more():
        sock.settimeout(max(0.01, deadline - time.time()))
        try:
            c = sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("body not complete before the deadline")
        except ConnectionResetError:
            c = b""
        return c

    if "chunked" in hmap.get("transfer-encoding", "").lower():
        body, data = b"", rest
        while True:
            while b"\r\n" not in data:
                c = more()
                if not c:
                    raise NoResponse("chunked body cut")
                data += c
            size_line, data = data.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(data) < size + 2:
                c = more()
                if not c:
                    raise NoResponse("chunked body cut")
                data += c
            body += data[:size]
            data = data[size + 2:]
            if size == 0:
                return status, reason, headers, body
    if "content-length" in hmap:
        n = int(hmap["content-length"])
        body = rest
        while len(body) < n:
            c = more()
            if not c:
                raise NoResponse("body cut at %d of %d" % (len(body), n))
            body += c
        return status, reason, headers, body[:n]
    body = rest
    while True:
        c = more()
        if not c:
            return status, reason, headers, body
        body += c


def _read_response_rest(sock, deadline, rest, head_only):
    class _Pre:
        """A socket whose first recv() returns bytes already read."""
        def __init__(self, s, pre):
            self.s, self.pre = s, pre

        def recv(self, n):
            if self.pre:
                out, self.pre = self.pre, b""
                return out
            return self.s.recv(n)

        def settimeout(self, t):
            self.s.settimeout(t)
    return _read_response(_Pre(sock, rest), deadline, head_only)


def raw_request(port, method, path, headers=None, body=b"", timeout=10.0, host="127.0.0.1",
                raw=None, add_length=True):
    """Sends one request on a fresh connection (Connection: close) and reads the answer.

    path and header values may be str or bytes and are sent as given (no encoding,
    no normalisation). `raw` replaces the whole request. Raises NoResponse,
    TimeoutError or ConnectionRefusedError."""
    def b(x):
        return x if isinstance(x, bytes) else x.encode("utf-8")
    if raw is None:
        hdrs = [(b"Host", b"127.0.0.1:%d" % port), (b"Connection", b"close")]
        names = set()
        for k, v in (headers or {}).items() if isinstance(headers, dict) else (headers or []):
            hdrs.append((b(k), b(v)))
            names.add(b(k).lower())
        body = b(body or b"")
        if add_length and b"content-length" not in names and b"transfer-encoding" not in names \
                and (body or method in ("POST", "PUT", "PATCH")):
            hdrs.append((b"Content-Length", str(len(body)).encode()))
        req = b(method) + b" " + b(path) + b" HTTP/1.1\r\n"
        req += b"".join(k + b": " + v + b"\r\n" for k, v in hdrs) + b"\r\n" + body
    else:
        req = raw
    t0 = time.time()
    deadline = t0 + timeout
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send_err = None
        try:
            sock.sendall(req)
        except (BrokenPipeError, ConnectionResetError) as e:
            # The server may answer (413, 431) and close before reading everything.
            send_err = e
        try:
            status, reason, hdrs, rbody = _read_response(sock, deadline, method == "HEAD")
        except NoResponse:
            if send_err is not None:
                raise NoResponse("send failed (%s) and no answer" % send_err)
            raise
        return Response(status, reason, hdrs, rbody, time.time() - t0)
    finally:
        sock.close()


class Client:
    """A tiny keep-alive-free JSON client for load threads (http.client based)."""

    def __init__(self, port, token=None, timeout=10.0):
        self.port, self.token, self.timeout = port, token, timeout

    def call(self, method, path, body=None, headers=None):
        import http.client
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        t0 = time.time()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            rbody = r.read()
            return Response(r.status, r.reason, r.getheaders(), rbody, time.time() - t0)
        finally:
            conn.close()


LINK_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


def next_link(resp):
    v = resp.header("Link")
    if not v:
        return None
    m = LINK_NEXT.search(v)
    return m.group(1) if m else None


def walk_pages(client, path, limit=100, max_pages=1000):
    """Follows Link rel=next from path?limit=N; returns all items (each page as sent)."""
    items, url, pages = [], "%s?limit=%d" % (path, limit), 0
    while url:
        r = client.call("GET", url)
        if r.status != 200:
            raise AssertionError("GET %s -> %d %r" % (url, r.status, r.body[:200]))
        items.append(r.json())
        url = next_link(r)
        if url and url.startswith("http"):
            url = "/" + url.split("/", 3)[3]
        pages += 1
        if pages > max_pages:
            raise AssertionError("more than %d pages at %s" % (max_pages, path))
    return items


def all_messages(client, group):
    """Every message of a group, oldest first: pages come newest first, each
    page chronological, so the page order is reversed."""
    pages = walk_pages(client, "/api/messages/" + group)
    out = []
    for p in reversed(pages):
        out.extend(p)
    return out


# ---- tokens -------------------------------------------------------------------
def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")))


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Minter:
    """Signs Cognito-shaped tokens. `good` uses cognito-local's private key (the
    key behind the pool's JWKS), so a minted token with correct claims is
    accepted; each hostile variant changes exactly one thing."""

    def __init__(self, issuer, client_id):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.issuer, self.client_id = issuer, client_id
        with open(COGNITO_KEY_JSON) as f:
            pem = json.load(f)["pem"]
        self.key = serialization.load_pem_private_key(pem.encode(), password=None)
        self.public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        # A key nobody published.
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def claims(self, subject, **over):
        now = int(time.time())
        c = {"sub": subject, "iss": self.issuer, "client_id": self.client_id,
             "token_use": "access", "scope": "aws.cognito.signin.user.admin",
             "auth_time": now, "iat": now, "exp": now + 3600,
             "jti": str(uuidlib.uuid4()), "username": "x"}
        for k, v in over.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def rs256(self, header, claims, key=None):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        h = {"alg": "RS256", "typ": "JWT", "kid": COGNITO_KID}
        h.update(header or {})
        h = {k: v for k, v in h.items() if v is not None}
        signing = (b64u_json(h) + "." + b64u_json(claims)).encode()
        sig = (key or self.key).sign(signing, padding.PKCS1v15(), hashes.SHA256())
        return signing.decode() + "." + b64u(sig)

    def hs256(self, secret, claims, kid=COGNITO_KID):
        h = {"alg": "HS256", "typ": "JWT", "kid": kid}
        signing = (b64u_json(h) + "." + b64u_json(claims)).encode()
        return signing.decode() + "." + b64u(hmac.new(secret, signing, hashlib.sha256).digest())

    def unsigned(self, claims, alg="none"):
        h = {"alg": alg, "typ": "JWT", "kid": COGNITO_KID}
        return b64u_json(h) + "." + b64u_json(claims) + "."

    def variant(self, kind, sub, real_token=None):
        """The Authorization header value for a token kind (None = no header)."""
        now = int(time.time())
        if kind == "minted":
            return "Bearer " + self.rs256(None, self.claims(sub))
        if kind == "alg_none":
            return "Bearer " + self.unsigned(self.claims(sub))
        if kind == "alg_none_upper":
            return "Bearer " + self.unsigned(self.claims(sub), alg="None")
        if kind == "alg_none_with_sig":
            t = self.rs256(None, self.claims(sub))
            h, p, s = t.split(".")
            return "Bearer " + b64u_json({"alg": "none", "kid": COGNITO_KID}) + "." + p + "." + s
        if kind == "hs256_pubkey":
            return "Bearer " + self.hs256(self.public_pem, self.claims(sub))
        if kind == "hs256_pubkey_stripped":
            pem = self.public_pem.decode().replace("\n", "").encode()
            return "Bearer " + self.hs256(pem, self.claims(sub))
        if kind == "rs384":
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding
            h = {"alg": "RS384", "typ": "JWT", "kid": COGNITO_KID}
            signing = (b64u_json(h) + "." + b64u_json(self.claims(sub))).encode()
            sig = self.key.sign(signing, padding.PKCS1v15(), hashes.SHA384())
            return "Bearer " + signing.decode() + "." + b64u(sig)
        if kind == "ps256":
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding
            h = {"alg": "PS256", "typ": "JWT", "kid": COGNITO_KID}
            signing = (b64u_json(h) + "." + b64u_json(self.claims(sub))).encode()
            sig = self.key.sign(signing, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                     salt_length=32), hashes.SHA256())
            return "Bearer " + signing.decode() + "." + b64u(sig)
        if kind == "stranger_kid_exists":
            return "Bearer " + self.rs256(None, self.claims(sub), key=self.stranger)
        if kind == "stranger_kid_unknown":
            return "Bearer " + self.rs256({"kid": "no-such-kid-" + uuidlib.uuid4().hex[:8]},
                                          self.claims(sub), key=self.stranger)
        if kind == "unknown_kid_real_key":
            return "Bearer " + self.rs256({"kid": "rotated-away"}, self.claims(sub))
        if kind == "no_kid":
            return "Bearer " + self.rs256({"kid": None}, self.claims(sub))
        if kind == "tampered_sub":
            t = self.rs256(None, self.claims(sub))
            h, p, s = t.split(".")
            c = json.loads(unb64u(p))
            c["sub"] = str(uuidlib.uuid4())
            return "Bearer " + h + "." + b64u_json(c) + "." + s
        if kind == "tampered_real":
            # The real cognito-local token with its payload changed (exp pushed out).
            h, p, s = real_token.split(".")
            c = json.loads(unb64u(p))
            c["exp"] = c["exp"] + 10 ** 6
            return "Bearer " + h + "." + b64u_json(c) + "." + s
        if kind == "sig_flipped":
            h, p, s = real_token.split(".")
            raw = bytearray(unb64u(s))
            raw[len(raw) // 2] ^= 0x01
            return "Bearer " + h + "." + p + "." + b64u(bytes(raw))
        if kind == "sig_truncated":
            h, p, s = real_token.split(".")
            return "Bearer " + h + "." + p + "." + s[: len(s) // 2]
        if kind == "sig_empty":
            h, p, s = real_token.split(".")
            return "Bearer " + h + "." + p + "."
        if kind == "expired":
            return "Bearer " + self.rs256(None, self.claims(sub, iat=now - 7200, exp=now - 3600,
                                                           auth_time=now - 7200))
        if kind == "expired_leeway_plus":
            # Past any sane leeway (documented leeways are seconds to a few minutes).
            return "Bearer " + self.rs256(None, self.claims(sub, iat=now - 4000, exp=now - 600))
        if kind == "no_exp":
            return "Bearer " + self.rs256(None, self.claims(sub, exp=None))
        if kind == "exp_string":
            return "Bearer " + self.rs256(None, self.claims(sub, exp=str(now + 3600)))
        if kind == "nbf_future":
            return "Bearer " + self.rs256(None, self.claims(sub, nbf=now + 3600))
        if kind == "iat_future":
            return "Bearer " + self.rs256(None, self.claims(sub, iat=now + 3600, exp=now + 7200))
        if kind == "wrong_iss":
            return "Bearer " + self.rs256(None, self.claims(
                sub, iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_evil"))
        if kind == "iss_prefix":
            return "Bearer " + self.rs256(None, self.claims(sub, iss=self.issuer + "x"))
        if kind == "iss_trailing_slash":
            return "Bearer " + self.rs256(None, self.claims(sub, iss=self.issuer + "/"))
        if kind == "no_iss":
            return "Bearer " + self.rs256(None, self.claims(sub, iss=None))
        if kind == "wrong_client":
            return "Bearer " + self.rs256(None, self.claims(sub, client_id="someoneelse123"))
        if kind == "no_client":
            return "Bearer " + self.rs256(None, self.claims(sub, client_id=None))
        if kind == "token_use_id":
            return "Bearer " + self.rs256(None, self.claims(sub, token_use="id"))
        if kind == "no_token_use":
            return "Bearer " + self.rs256(None, self.claims(sub, token_use=None))
        if kind == "no_sub":
            return "Bearer " + self.rs256(None, self.claims(sub, sub=None))
        if kind == "sub_not_string":
            return "Bearer " + self.rs256(None, self.claims(sub, sub=12345))
        if kind == "sub_injection":
            return "Bearer " + self.rs256(None, self.claims(sub, sub="' OR '1'='1"))
        if kind == "oversized":
            return "Bearer " + self.rs256(None, self.claims(sub, pad="x" * 9000))
        if kind == "garbage":
            return "Bearer " + "not-a-jwt"
        if kind == "garbage_dots":
            return "Bearer ..."
        if kind == "garbage_b64":
            return "Bearer " + "%%%.***.$$$"
        if kind == "two_parts":
            h, p, s = real_token.split(".")
            return "Bearer " + h + "." + p
        if kind == "four_parts":
            return "Bearer " + real_token + ".AAAA"
        if kind == "header_not_json":
            h, p, s = real_token.split(".")
            return "Bearer " + b64u("{not json") + "." + p + "." + s
        if kind == "payload_array":
            return "Bearer " + self._rs256_raw_payload(b'["' + sub.encode() + b'"]')
        if kind == "basic":
            return "Basic " + base64.b64encode(b"andrewbrown:Cruddur-dev-1").decode()
        if kind == "bearer_empty":
            return "Bearer "
        if kind == "bearer_only":
            return "Bearer"
        if kind == "no_scheme":
            return real_token
        if kind == "double_bearer":
            return "Bearer Bearer " + real_token
        if kind == "token_with_space":
            return "Bearer " + real_token[:20] + " " + real_token[20:]
        raise KeyError("unknown token kind " + kind)

    def _rs256_raw_payload(self, payload):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        h = b64u_json({"alg": "RS256", "typ": "JWT", "kid": COGNITO_KID})
        signing = (h + "." + b64u(payload)).encode()
        sig = self.key.sign(signing, padding.PKCS1v15(), hashes.SHA256())
        return signing.decode() + "." + b64u(sig)


# ---- a delaying TCP proxy ---------------------------------------------------
class DelayProxy:
    """Listens on 127.0.0.1:<port> and forwards to 127.0.0.1:<target_port>.
    `delay` seconds are slept before each chunk from the target is passed back
    (so every answer is late); change it at any time. `hold` > 0 additionally
    refuses nothing but answers nothing for that long."""

    def __init__(self, target_port, delay=0.0):
        self.target_port, self.delay = target_port, delay
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._stop = False
        self._conns = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            with self._lock:
                self._conns += [c, u]
            threading.Thread(target=self._pump, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, True), daemon=True).start()

    def _pump(self, src, dst, delayed):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if delayed and self.delay > 0:
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop_all(self):
        """Closes every proxied connection (the dependency 'went away')."""
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def close(self):
        self._stop = True
        try:
            self.lsock.close()
        except OSError:
            pass
        self.drop_all()


# ---- the world: a stack with known users ---------------------------------------

SEEDED = (("andrewbrown", "Andrew Brown", "andrew@exampro.co"),
          ("bayko", "Andrew Bayko", "bayko@exampro.co"),
          ("londo", "Londo Mollari", "lmollari@centari.com"))


class World:
    """Starts PostgreSQL, dynalite, cognito-local and the three binaries on
    loopback, links the seeded users to Cognito users and provisions `extra`
    more users. `ghost` is a Cognito user with no users-svc row.

    svc_env: extra environment for all three binaries (e.g. ASAN_OPTIONS).
    messages_env: extra environment for messages-svc only (e.g. a DynamoDB proxy)."""

    def __init__(self, extra_users=0, svc_env=None, messages_env=None, users_env=None,
                 gateway_env=None, start_gateway=True):
        self.s = Stack()
        self.extra_users = extra_users
        self.svc_env = svc_env or {}
        self.messages_env = messages_env or {}
        self.users_env = users_env or {}
        self.gateway_env = gateway_env or {}
        self.start_gateway = start_gateway
        self.subs, self.tokens, self.uuids = {}, {}, {}
        self.proxies = []

    def __enter__(self):
        s = self.s
        s.__enter__()
        try:
            s.postgres()
            s.dynalite()
            s.cognito()
            for h, n, e in SEEDED:
                self.subs[h] = s.cognito_user(h, n, e)
            s.users_svc(migrate=True, seed=True, env=dict(self.svc_env, **self.users_env))
            s.run("users-svc", "sync-cognito", check=True)
            self.subs["ghost"] = s.cognito_user("ghost", "Ghost User", "ghost@example.test")
            s.messages_svc(schema=True, env=dict(self.svc_env, **self.messages_env))
            self._provision_extra()
            if self.start_gateway:
                s.gateway(env=dict(self.svc_env, **self.gateway_env))
                self.port = s.ports["gateway"]
            for h in list(self.subs):
                self.tokens[h] = s.token(h)
            self._lookup_uuids()
        except BaseException:
            s.__exit__(*sys.exc_info())
            raise
        return self

    def _provision_extra(self):
        if not self.extra_users:
            return
        import grpc
        pb = stubs.users_pb2
        with grpc.insecure_channel(self.s.users_addr) as ch:
            stub = stubs.users_pb2_grpc.UsersServiceStub(ch)
            for i in range(self.extra_users):
                h = "load%02d" % i
                sub = self.s.cognito_user(h, "Load User %d" % i, "%s@example.test" % h)
                stub.CreateUser(pb.CreateUserRequest(display_name="Load User %d" % i, handle=h,
                                                     email="%s@example.test" % h,
                                                     cognito_user_id=sub), timeout=10)
                self.subs[h] = sub

    def _lookup_uuids(self):
        import grpc
        pb = stubs.users_pb2
        with grpc.insecure_channel(self.s.users_addr) as ch:
            stub = stubs.users_pb2_grpc.UsersServiceStub(ch)
            for h in self.subs:
                if h == "ghost":
                    continue
                self.uuids[h] = stub.GetUser(pb.GetUserRequest(handle=h), timeout=10).user.uuid

    def __exit__(self, *exc):
        for p in self.proxies:
            p.close()
        return self.s.__exit__(*exc)

    def client(self, handle=None, timeout=10.0):
        return Client(self.s.ports["gateway"], self.tokens.get(handle) if handle else None,
                      timeout)

    def proxy(self, target_port, delay=0.0):
        p = DelayProxy(target_port, delay)
        self.proxies.append(p)
        return p

    # -- snapshots: "nothing was written" --
    def ddb_digest(self):
        """{table: (item count, sha256 of all items)} for every DynamoDB table
        (the messages table and anything else, e.g. idempotency records)."""
        out = {}
        tables = aws_json(self.s.ddb_url, "DynamoDB_20120810.ListTables", {},
                          version="1.0").get("TableNames", [])
        for t in tables:
            items, start = [], None
            while True:
                body = {"TableName": t, "ConsistentRead": True}
                if start:
                    body["ExclusiveStartKey"] = start
                r = aws_json(self.s.ddb_url, "DynamoDB_20120810.Scan", body, version="1.0")
                items.extend(r.get("Items", []))
                start = r.get("LastEvaluatedKey")
                if not start:
                    break
            dump = sorted(json.dumps(i, sort_keys=True) for i in items)
            out[t] = (len(items), hashlib.sha256("\n".join(dump).encode()).hexdigest())
        return out

    def ddb_count(self, table="cruddur-messages"):
        return self.ddb_digest().get(table, (0, ""))[0]

    def psql(self, sql):
        r = subprocess.run([os.path.join(pg_bindir(), "psql"), self.s.pg_url, "-tAc", sql],
                           capture_output=True, text=True, check=True, timeout=30)
        return r.stdout.strip()

    def pg_digest(self):
        """'table=count ...' for every table in the public schema, plus a digest
        of the users table."""
        tables = self.psql("SELECT string_agg(quote_ident(table_name), ' ' ORDER BY table_name) "
                           "FROM information_schema.tables WHERE table_schema = 'public' "
                           "AND table_type = 'BASE TABLE'").split()
        counts = [("%s=" % t) + self.psql("SELECT count(*) FROM %s" % t) for t in tables]
        users = self.psql("SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '-') "
                          "FROM users t")
        return " ".join(counts) + " users_md5=" + users

    def pg_users(self):
        return int(self.psql("SELECT count(*) FROM users"))

    def ready(self):
        try:
            return raw_request(self.s.ports["gateway"], "GET", "/readyz", timeout=3).status == 200
        except Exception:
            return False


def rss_kib(pid):
    """VmRSS of a process in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0
