"""The gateway end to end: real PostgreSQL, dynalite and cognito-local, real
users-svc and messages-svc, real Cognito access tokens. Every route, every
status the contract names, the original frontend's exact request shapes, and
every response checked against the served /openapi.json."""
import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
from stack import Stack  # noqa: E402

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
WIRE_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$")
FRONTEND = "http://localhost:3000"
OTHER_ALLOWED = "https://app.example.test"
USERS = {"andrewbrown": ("Andrew Brown", "andrew@exampro.co"),
         "bayko": ("Andrew Bayko", "bayko@exampro.co"),
         "londo": ("Londo Mollari", "lmollari@centari.com")}


# ---- a small OpenAPI 3 schema checker (the subset our document uses) ----------
class SchemaError(AssertionError):
    pass


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        parts = node["$ref"].lstrip("#/").split("/")
        node = doc
        for p in parts:
            node = node[p]
    return node


def check_schema(doc, schema, value, where="$"):
    schema = resolve(doc, schema)
    t = schema.get("type")
    if value is None:
        if schema.get("nullable"):
            return
        raise SchemaError("%s: null not allowed" % where)
    if t == "object":
        if not isinstance(value, dict):
            raise SchemaError("%s: want object, got %r" % (where, value))
        for k in schema.get("required", []):
            if k not in value:
                raise SchemaError("%s: missing %s" % (where, k))
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            extra = set(value) - set(props)
            if extra:
                raise SchemaError("%s: unexpected keys %s" % (where, sorted(extra)))
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            raise SchemaError("%s: too many properties" % where)
        for k, v in value.items():
            if k in props:
                check_schema(doc, props[k], v, where + "." + k)
    elif t == "array":
        if not isinstance(value, list):
            raise SchemaError("%s: want array, got %r" % (where, value))
        if len(value) < schema.get("minItems", 0):
            raise SchemaError("%s: fewer than %d items" % (where, schema["minItems"]))
        for i, v in enumerate(value):
            check_schema(doc, schema.get("items", {}), v, "%s[%d]" % (where, i))
    elif t == "string":
        if not isinstance(value, str):
            raise SchemaError("%s: want string, got %r" % (where, value))
        if "enum" in schema and value not in schema["enum"]:
            raise SchemaError("%s: %r not in documented enum" % (where, value))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaError("%s: %r does not match %s" % (where, value, schema["pattern"]))
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 1 << 30):
            raise SchemaError("%s: length %d out of range" % (where, len(value)))
    elif t == "integer":
        if not isinstance(value, int):
            raise SchemaError("%s: want integer" % where)


def match_path(doc, path):
    """The documented path template for a raw request path (segments are
    percent-decoded one by one, so an encoded '/' never forms a segment)."""
    from urllib.parse import unquote
    segs = path.split("?", 1)[0].split("/")
    segs = [unquote(x) for x in segs]
    if any("/" in x for x in segs):
        return None
    path = "/".join(segs)
    for tmpl in doc["paths"]:
        rx = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(tmpl)) + "$"
        if re.match(rx, path):
            return tmpl
    return None


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def json(self):
        return json.loads(self.body)


class GatewayTest(unittest.TestCase):
    s = None
    spec = None
    checked = 0

    @classmethod
    def setUpClass(cls):
        cls.s = s = Stack()
        try:
            s.postgres()
            s.dynalite()
            s.cognito()
            cls.subs = {h: s.cognito_user(h, n, e) for h, (n, e) in USERS.items()}
            # A Cognito user with no users row: a valid token, nobody here (403).
            s.cognito_user("stranger", "Stranger", "stranger@example.test")
            s.users_svc(migrate=True, seed=True)
            r = s.run("users-svc", "sync-cognito")
            assert r.returncode == 0, r.stderr
            s.messages_svc(schema=True)
            s.gateway(env={"FRONTEND_URL": FRONTEND + ", " + OTHER_ALLOWED,
                           "BACKEND_URL": "", "GATEWAY_RPC_TIMEOUT_MS": "1000",
                           "GATEWAY_CONN_TIMEOUT_S": "2"})
            cls.tokens = {h: s.token(h) for h in list(USERS) + ["stranger"]}
            st, _, body = cls.raw("GET", "/openapi.json")
            assert st == 200, st
            cls.spec = json.loads(body)
        except Exception:
            s.__exit__(*sys.exc_info())
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.s is not None:
            cls.s.__exit__(None, None, None)  # raises when a binary did not exit 0

    # ---- HTTP helpers --------------------------------------------------------
    @classmethod
    def raw(cls, method, path, headers=None, body=None, chunks=None):
        host = cls.s.gateway_url.split("//")[1]
        conn = http.client.HTTPConnection(host, timeout=10)
        try:
            if chunks is not None:
                conn.putrequest(method, path, skip_accept_encoding=True)
                for k, v in (headers or {}).items():
                    conn.putheader(k, v)
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                try:
                    for c in chunks:
                        conn.send(b"%x\r\n%s\r\n" % (len(c), c))
                    conn.send(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
            else:
                conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def req(self, method, path, token=None, headers=None, body=None, chunks=None, check=True):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        st, hd, data = self.raw(method, path, h, body, chunks)
        r = Resp(st, hd, data)
        # Every answer: JSON (or the metrics text / an empty 204), a request id, Vary.
        self.assertTrue(r.header("x-request-id"), path)
        self.assertIn("Origin", r.header("vary") or "", path)
        if st != 204 and path != "/metrics":
            self.assertTrue((r.header("content-type") or "").startswith("application/json"), (path, st))
            json.loads(data)  # never HTML
        self.assertNotEqual(st, 500, (method, path, data))
        if check:
            self.check_against_spec(method, path, r)
        return r

    def check_against_spec(self, method, path, r):
        doc = self.spec
        tmpl = match_path(doc, path)
        if tmpl is None or (r.status == 405) or method.lower() not in doc["paths"][tmpl]:
            # Unknown route / method: the generic error array.
            if r.status in (404, 405):
                check_schema(doc, {"$ref": "#/components/schemas/Errors"}, r.json)
                type(self).checked += 1
                return
            self.fail("%s %s answered %d but is not documented" % (method, path, r.status))
        op = doc["paths"][tmpl][method.lower()]
        resp = op["responses"].get(str(r.status))
        self.assertIsNotNone(resp, "%s %s: status %d not documented" % (method, path, r.status))
        resp = resolve(doc, resp)
        content = resp.get("content", {})
        if "application/json" in content:
            check_schema(doc, content["application/json"]["schema"], r.json,
                         "%s %s %d" % (method, tmpl, r.status))
        for name in resp.get("headers", {}):
            if name in ("Link",):
                continue  # only when there is a next page
            self.assertIsNotNone(r.header(name), "%s %s %d: header %s documented but missing" % (
                method, path, r.status, name))
        type(self).checked += 1

    def frontend_headers(self, handle):
        # Exactly what MessageForm.js sends.
        return {"Authorization": "Bearer " + self.tokens[handle], "Accept": "application/json",
                "Content-Type": "application/json"}

    def post_message(self, sender, body, extra=None, check=True):
        h = self.frontend_headers(sender)
        h.update(extra or {})
        return self.req("POST", "/api/messages", headers=h, body=json.dumps(body).encode(), check=check)

    def conversation(self, a, b):
        r = self.post_message(a, {"message": "hello from %s" % a, "handle": b})
        self.assertEqual(r.status, 200, r.body)
        return r.json["message_group_uuid"]

    # ---- the vertical slice -------------------------------------------------
    def test_user_short(self):
        r = self.req("GET", "/api/users/@andrewbrown/short", headers={"Accept": "application/json"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(set(r.json), {"uuid", "handle", "display_name"})
        self.assertEqual(r.json["handle"], "andrewbrown")
        self.assertEqual(r.json["display_name"], "Andrew Brown")
        self.assertRegex(r.json["uuid"], UUID_RE)
        self.assertEqual(self.req("GET", "/api/users/%40andrewbrown/short").json, r.json)
        self.assertEqual(self.req("GET", "/api/users/@AndrewBrown/short").json["uuid"], r.json["uuid"])
        for path in ("/api/users/@nobody_here/short", "/api/users/@a-b/short", "/api/users/@/short"):
            r2 = self.req("GET", path)
            self.assertEqual((r2.status, r2.json), (404, ["user_not_found"]), path)
        for path in ("/api/users/andrewbrown/short", "/api/users/@andrewbrown/short/",
                     "/api/users/@andrewbrown"):
            r2 = self.req("GET", path)
            self.assertEqual((r2.status, r2.json), (404, ["not_found"]), path)

    # ---- authentication ----------------------------------------------------------
    def test_401_variants(self):
        id_token = self.s.token("bayko", kind="IdToken")
        good = self.tokens["bayko"]
        tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
        for method, path in (("GET", "/api/message_groups"),
                             ("GET", "/api/messages/5ae290ed-55d1-47a0-bc6d-fe2bc2700399"),
                             ("POST", "/api/messages")):
            for authz in (None, "Bearer garbage", "Basic YW5kcmV3OnB3", "Bearer " + id_token,
                          "Bearer " + tampered, "Bearer", good):
                h = {"Content-Type": "application/json"}
                if authz is not None:
                    h["Authorization"] = authz
                r = self.req(method, path, headers=h, body=b'{"message":"x","handle":"londo"}'
                             if method == "POST" else None)
                self.assertEqual((r.status, r.json), (401, {}), (path, authz and authz[:12]))
                challenge = r.header("www-authenticate")
                if authz is None or not authz.startswith("Bearer"):
                    self.assertEqual(challenge, "Bearer")
                else:
                    self.assertEqual(challenge, 'Bearer error="invalid_token"', authz[:20])

    def test_403_not_provisioned(self):
        for path in ("/api/message_groups", "/api/messages/5ae290ed-55d1-47a0-bc6d-fe2bc2700399"):
            r = self.req("GET", path, token=self.tokens["stranger"])
            self.assertEqual((r.status, r.json), (403, ["user_not_provisioned"]), path)
        r = self.req("POST", "/api/messages", token=self.tokens["stranger"],
                     body={"message": "hi", "handle": "bayko"})
        self.assertEqual((r.status, r.json), (403, ["user_not_provisioned"]))

    def test_auth_before_body(self):
        r = self.req("POST", "/api/messages", headers={"Content-Type": "application/json"}, body=b"{not json")
        self.assertEqual((r.status, r.json), (401, {}))
        r = self.req("POST", "/api/messages", headers={"Content-Type": "text/plain"}, body=b"x" * 20000)
        self.assertEqual((r.status, r.json), (401, {}))

    # ---- the conversation flow, as the frontend does it ---------------------
    def test_conversation_flow(self):
        # MessageGroupNewPage: the public card, then the first message by handle.
        card = self.req("GET", "/api/users/@bayko/short").json
        first = self.post_message("andrewbrown", {"message": "Hi Bayko! ünïcødé", "handle": card["handle"]})
        self.assertEqual(first.status, 200, first.body)
        j = first.json
        self.assertEqual(list(sorted(j)), sorted(["message_group_uuid", "uuid", "display_name", "handle",
                                                  "message", "created_at"]))
        self.assertEqual((j["handle"], j["display_name"], j["message"]),
                         ("andrewbrown", "Andrew Brown", "Hi Bayko! ünïcødé"))
        self.assertRegex(j["created_at"], WIRE_TS)
        self.assertEqual(len(j["created_at"]), 32)
        me = self.req("GET", "/api/users/@andrewbrown/short").json
        self.assertNotEqual(j["uuid"], me["uuid"], "uuid is the message's, not the sender's")
        group = j["message_group_uuid"]

        # MessageGroupPage: bayko's list shows andrewbrown; andrewbrown's shows bayko.
        groups = self.req("GET", "/api/message_groups", headers={"Authorization": "Bearer " + self.tokens["bayko"]})
        self.assertEqual(groups.status, 200)
        g = [x for x in groups.json if x["uuid"] == group]
        self.assertEqual(len(g), 1)
        self.assertEqual((g[0]["handle"], g[0]["display_name"]), ("andrewbrown", "Andrew Brown"))
        mine = [x for x in self.req("GET", "/api/message_groups", token=self.tokens["andrewbrown"]).json
                if x["uuid"] == group]
        self.assertEqual(mine[0]["handle"], "bayko")

        # A reply into the group (the update mode) and the chronological list.
        reply = self.post_message("bayko", {"message": "Hello Andrew", "message_group_uuid": group})
        self.assertEqual(reply.status, 200, reply.body)
        self.assertEqual(reply.json["message_group_uuid"], group)
        self.assertEqual(reply.json["handle"], "bayko")
        msgs = self.req("GET", "/api/messages/" + group, token=self.tokens["andrewbrown"]).json
        self.assertEqual([m["message"] for m in msgs][-2:], ["Hi Bayko! ünïcødé", "Hello Andrew"])
        self.assertEqual([m["handle"] for m in msgs][-2:], ["andrewbrown", "bayko"])
        self.assertEqual(msgs[-1]["uuid"], reply.json["uuid"])
        self.assertEqual([m["created_at"] for m in msgs], sorted(m["created_at"] for m in msgs))
        # Upper-case uuid in the path names the same group.
        self.assertEqual(self.req("GET", "/api/messages/" + group.upper(), token=self.tokens["bayko"]).json, msgs)
        # Newest activity first: bayko's latest message is now the group's preview.
        top = self.req("GET", "/api/message_groups", token=self.tokens["andrewbrown"]).json[0]
        self.assertEqual((top["uuid"], top["message"]), (group, "Hello Andrew"))

        # Starting again by handle reuses the conversation, from either side.
        again = self.post_message("bayko", {"message": "same group?", "handle": "andrewbrown"})
        self.assertEqual(again.json["message_group_uuid"], group)

        # Outsiders: londo cannot read or write; same answer as a group that does not exist.
        for path in ("/api/messages/" + group, "/api/messages/00000000-0000-4000-8000-000000000000",
                     "/api/messages/not-a-uuid"):
            r = self.req("GET", path, token=self.tokens["londo"])
            self.assertEqual((r.status, r.json), (404, ["message_group_not_found"]), path)
        r = self.post_message("londo", {"message": "let me in", "message_group_uuid": group})
        self.assertEqual((r.status, r.json), (404, ["message_group_not_found"]))
        r = self.post_message("londo", {"message": "hi", "handle": "nobody_here"})
        self.assertEqual((r.status, r.json), (404, ["user_not_found"]))

    # ---- validation ----------------------------------------------------------
    def test_422_every_code(self):
        cases = [
            ({}, ["message_blank", "user_reciever_handle_blank"]),
            ({"message_group_uuid": ""}, ["message_blank", "message_group_uuid_blank"]),
            ({"message": "   \n\t", "handle": ""}, ["message_blank", "user_reciever_handle_blank"]),
            ({"message": "é" * 1025, "message_group_uuid": "nope"},
             ["message_exceed_max_chars", "message_group_uuid_invalid"]),
            ({"message": "x", "handle": "not a handle"}, ["handle_invalid"]),
            ({"message": "x", "handle": "andrewbrown"}, ["cannot_message_self"]),
            ({"message": "x", "handle": "AndrewBrown"}, ["cannot_message_self"]),
        ]
        for body, codes in cases:
            r = self.post_message("andrewbrown", body)
            self.assertEqual((r.status, r.json), (422, codes), body if len(str(body)) < 80 else codes)
        r = self.post_message("andrewbrown", {}, extra={"Idempotency-Key": "has space"})
        self.assertEqual((r.status, r.json), (422, ["message_blank", "user_reciever_handle_blank",
                                                     "idempotency_key_invalid"]))
        # 1024 code points is fine (code points, not bytes or UTF-16 units).
        r = self.post_message("andrewbrown", {"message": "€" * 1024, "handle": "londo"})
        self.assertEqual(r.status, 200, r.body)
        # Invalid UTF-8 inside a JSON string.
        h = self.frontend_headers("andrewbrown")
        r = self.req("POST", "/api/messages", headers=h, body=b'{"message":"\xff\xfe","handle":"londo"}')
        self.assertEqual((r.status, r.json), (422, ["message_invalid_utf8"]))

    def test_400_shapes(self):
        h = self.frontend_headers("andrewbrown")
        for body, code in ((b"{not json", "invalid_json"), (b"", "invalid_json"), (b"{}{}", "invalid_json"),
                           (b'{"message":"a\\u0000b","handle":"bayko"}', "invalid_json"),
                           (b"[1,2]", "body_not_object"), (b'"hello"', "body_not_object"),
                           (b'{"message":5,"handle":"bayko"}', "field_type_invalid"),
                           (b'{"message":"x","message_group_uuid":123}', "field_type_invalid")):
            r = self.req("POST", "/api/messages", headers=h, body=body)
            self.assertEqual((r.status, r.json), (400, [code]), body)

    def test_413_415(self):
        h = self.frontend_headers("andrewbrown")
        big = json.dumps({"message": "x" * 17000, "handle": "bayko"}).encode()
        r = self.req("POST", "/api/messages", headers=h, body=big)
        self.assertEqual((r.status, r.json), (413, ["payload_too_large"]))
        # Streamed (chunked, no Content-Length): cut off while reading.
        r = self.req("POST", "/api/messages", headers=h, chunks=[b'{"message":"' + b"y" * 4000] * 6)
        self.assertEqual((r.status, r.json), (413, ["payload_too_large"]))
        # A chunked body under the cap is fine.
        r = self.req("POST", "/api/messages", headers=h, chunks=[b'{"message":"chunked",', b'"handle":"londo"}'])
        self.assertEqual(r.status, 200, r.body)
        for ct in ("text/plain", "application/x-www-form-urlencoded", None):
            hh = dict(h)
            hh.pop("Content-Type")
            if ct:
                hh["Content-Type"] = ct
            r = self.req("POST", "/api/messages", headers=hh, body=b'{"message":"x","handle":"bayko"}')
            self.assertEqual((r.status, r.json), (415, ["unsupported_media_type"]), ct)
        hh = dict(h)
        hh["Content-Type"] = "application/json; charset=utf-8"
        r = self.req("POST", "/api/messages", headers=hh, body=b'{"message":"charset ok","handle":"londo"}')
        self.assertEqual(r.status, 200)

    def test_404_405(self):
        for path in ("/api/nope", "/nope.txt", "/api/message_groups/", "/api//message_groups",
                     "/api/messages/a%2Fb", "/api/users/@andrewbrown/short/", "/../etc/passwd"):
            r = self.req("GET", path)
            self.assertEqual((r.status, r.json), (404, ["not_found"]), path)
        # The web client (GATEWAY_STATIC_DIR, set by the stack) answers outside /api only.
        st, hd, body = self.raw("GET", "/")
        if st == 200:
            self.assertTrue(hd["content-type"].startswith("text/html"))
            st, _, _ = self.raw("GET", "/messages/new/bayko")
            self.assertEqual(st, 200)
        else:
            self.assertEqual((st, json.loads(body)), (404, ["not_found"]))
        r = self.req("DELETE", "/api/messages")
        self.assertEqual((r.status, r.json), (405, ["method_not_allowed"]))
        self.assertEqual(r.header("allow"), "POST, OPTIONS")
        r = self.req("GET", "/api/messages", token=self.tokens["andrewbrown"])
        self.assertEqual(r.status, 405)
        r = self.req("POST", "/api/message_groups", token=self.tokens["andrewbrown"], body={})
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("allow"), "GET, HEAD, OPTIONS")
        r = self.req("PUT", "/api/users/@bayko/short")
        self.assertEqual((r.status, r.header("allow")), (405, "GET, HEAD, OPTIONS"))

    # ---- CORS ------------------------------------------------------------------
    def test_cors(self):
        for origin in (FRONTEND, OTHER_ALLOWED):
            for method, path, tok in (("GET", "/api/users/@bayko/short", None),
                                      ("GET", "/api/message_groups", "bayko"),
                                      ("GET", "/api/nope", None)):
                r = self.req(method, path, token=self.tokens[tok] if tok else None, headers={"Origin": origin})
                self.assertEqual(r.header("access-control-allow-origin"), origin, path)
                self.assertIn("Link", r.header("access-control-expose-headers"))
                self.assertIn("X-Request-Id", r.header("access-control-expose-headers"))
        r = self.post_message("bayko", {"message": "cors", "handle": "londo"}, extra={"Origin": "https://evil.test"})
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("access-control-allow-origin"), "POST must not allow any origin")
        r = self.req("GET", "/api/users/@bayko/short", headers={"Origin": "http://localhost:3001"})
        self.assertIsNone(r.header("access-control-allow-origin"))
        # Preflight, as a browser sends it before the frontend's POST.
        pre = {"Origin": FRONTEND, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization,content-type"}
        for path in ("/api/messages", "/api/message_groups", "/api/users/@bayko/short"):
            r = self.req("OPTIONS", path, headers=pre)
            self.assertEqual(r.status, 204, path)
            self.assertEqual(r.header("access-control-allow-origin"), FRONTEND)
            self.assertEqual(r.header("access-control-allow-methods"), "GET, POST, OPTIONS")
            for hname in ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"):
                self.assertIn(hname, r.header("access-control-allow-headers"))
        r = self.req("OPTIONS", "/api/messages", headers=dict(pre, Origin="https://evil.test"))
        self.assertEqual(r.status, 204)
        self.assertIsNone(r.header("access-control-allow-origin"))
        self.assertIsNone(r.header("access-control-allow-methods"))
        r = self.req("OPTIONS", "/api/nope", headers=dict(pre, Origin="https://evil.test"))
        self.assertEqual(r.status, 404)
        r = self.req("OPTIONS", "/api/nope")  # not a preflight
        self.assertEqual(r.status, 404)

    def test_cors_unknown_api_path_answers_404_to_the_browser(self):
        # The original frontend's home feed calls GET /api/activities/home
        # with an Authorization header, so the browser sends a preflight
        # first. A 404 preflight fails the fetch as a CORS error; the page
        # must instead see the route's own 404 with a JSON body.
        pre = {"Origin": FRONTEND, "Access-Control-Request-Method": "GET",
               "Access-Control-Request-Headers": "authorization"}
        for path in ("/api/activities/home", "/api/activities/notifications", "/api/activities/@bayko"):
            r = self.req("OPTIONS", path, headers=pre, check=False)  # not in openapi.json: not ours
            self.assertEqual(r.status, 204, path)
            self.assertEqual(r.header("access-control-allow-origin"), FRONTEND, path)
            self.assertIn("Authorization", r.header("access-control-allow-headers") or "", path)
            self.assertIsNone(r.header("allow"), path)
            r = self.req("GET", path, token=self.tokens["bayko"], headers={"Origin": FRONTEND})
            self.assertEqual(r.status, 404, path)
            self.assertEqual(r.header("access-control-allow-origin"), FRONTEND, path)
            self.assertEqual(r.json, ["not_found"], path)
        # Outside /api/ (the web client's files) nothing changes.
        r = self.req("OPTIONS", "/nope.txt", headers=pre)
        self.assertEqual(r.status, 404)

    # ---- pagination --------------------------------------------------------------
    def walk(self, path, token):
        pages, seen = [], []
        while True:
            r = self.req("GET", path, token=token)
            self.assertEqual(r.status, 200, r.body)
            pages.append(r.json)
            seen.extend(r.json)
            link = r.header("link")
            if not link:
                return pages, seen
            m = re.match(r'^<(/api/[^>]+)>; rel="next"$', link)
            self.assertIsNotNone(m, link)
            path = m.group(1)
            self.assertLess(len(pages), 50)

    def test_pagination(self):
        group = self.conversation("londo", "bayko")
        # Other tests may share this conversation: count what is there first.
        _, before = self.walk("/api/messages/%s?limit=100" % group, self.tokens["bayko"])
        total = len(before) + 44
        for i in range(44):
            r = self.post_message("londo" if i % 2 else "bayko", {"message": "m%02d" % i, "message_group_uuid": group})
            self.assertEqual(r.status, 200, r.body)
        pages, seen = self.walk("/api/messages/%s?limit=20" % group, self.tokens["bayko"])
        sizes = [20] * (total // 20) + ([total % 20] if total % 20 else [])
        self.assertEqual([len(p) for p in pages], sizes)
        for p in pages:
            self.assertEqual([m["created_at"] for m in p], sorted(m["created_at"] for m in p))
        # Pages walk back in time: each later page is older than the one before.
        self.assertLess(pages[1][-1]["created_at"], pages[0][0]["created_at"])
        self.assertEqual(len({m["uuid"] for m in seen}), total)
        self.assertEqual(pages[0][-1]["message"], "m43")
        # Default page size 20, and the group list pages too.
        self.assertEqual(len(self.req("GET", "/api/messages/" + group, token=self.tokens["londo"]).json), 20)
        self.conversation("londo", "andrewbrown")
        _, groups = self.walk("/api/message_groups?limit=1", self.tokens["londo"])
        self.assertGreaterEqual(len(groups), 2)
        self.assertEqual(len({g["uuid"] for g in groups}), len(groups))
        # Bad paging parameters: every failing code at once.
        for q, codes in (("limit=0", ["limit_invalid"]), ("limit=101", ["limit_invalid"]),
                         ("limit=abc&cursor=", ["limit_invalid", "cursor_invalid"]),
                         ("cursor=not-a-real-cursor", ["cursor_invalid"]), ("cursor=%zz", ["cursor_invalid"])):
            for path in ("/api/message_groups?" + q, "/api/messages/%s?%s" % (group, q)):
                r = self.req("GET", path, token=self.tokens["londo"])
                self.assertEqual((r.status, r.json), (422, codes), path)
        # A cursor from bayko's walk is not andrewbrown's (bound to the caller and list).
        _, seen = self.walk("/api/message_groups?limit=1", self.tokens["londo"])
        r = self.req("GET", "/api/message_groups?limit=1", token=self.tokens["londo"])
        cursor = re.search(r"cursor=([^>&]+)", r.header("link")).group(1)
        r = self.req("GET", "/api/message_groups?limit=1&cursor=" + cursor, token=self.tokens["andrewbrown"])
        self.assertEqual((r.status, r.json), (422, ["cursor_invalid"]))

    # ---- idempotency and request ids ------------------------------------------
    def test_idempotency_key(self):
        key = "retry-%d" % time.time_ns()
        a = self.post_message("bayko", {"message": "exactly once", "handle": "londo"}, extra={"Idempotency-Key": key})
        b = self.post_message("bayko", {"message": "exactly once", "handle": "londo"}, extra={"Idempotency-Key": key})
        self.assertEqual(a.status, 200)
        self.assertEqual(b.json["uuid"], a.json["uuid"])
        group = a.json["message_group_uuid"]
        c = self.post_message("bayko", {"message": "into group", "message_group_uuid": group},
                              extra={"Idempotency-Key": key + "-g"})
        d = self.post_message("bayko", {"message": "into group", "message_group_uuid": group},
                              extra={"Idempotency-Key": key + "-g"})
        self.assertEqual(c.json["uuid"], d.json["uuid"])
        _, msgs = self.walk("/api/messages/%s?limit=100" % group, self.tokens["londo"])
        uuids = [m["uuid"] for m in msgs]
        self.assertEqual(uuids.count(a.json["uuid"]), 1)
        self.assertEqual(uuids.count(c.json["uuid"]), 1)

    def test_request_id_and_logs(self):
        # An unknown handle: never cached, so the call reaches users-svc.
        r = self.req("GET", "/api/users/@nobody_traced/short", headers={"X-Request-Id": "trace-abc.123_X"})
        self.assertEqual((r.status, r.header("x-request-id")), (404, "trace-abc.123_X"))
        for bad in ("has space", "x" * 129, "semi;colon"):
            r = self.req("GET", "/healthz", headers={"X-Request-Id": bad})
            self.assertRegex(r.header("x-request-id"), UUID_RE)
        secret_text = "very-private-text-%d" % time.time_ns()
        r = self.post_message("bayko", {"message": secret_text, "handle": "londo"},
                              extra={"X-Request-Id": "rid-post-1"})
        self.assertEqual(r.header("x-request-id"), "rid-post-1")
        time.sleep(0.2)
        logs = {}
        for n in ("gateway", "users-svc", "messages-svc"):
            with open(self.s.log_path(n), encoding="utf-8", errors="replace") as f:
                logs[n] = f.read()
        self.assertIn('"request_id":"trace-abc.123_X"', logs["gateway"])
        self.assertIn("trace-abc.123_X", logs["users-svc"], "passed to the RPC as x-request-id")
        self.assertIn("rid-post-1", logs["messages-svc"])
        for name, text in logs.items():
            self.assertNotIn(secret_text, text, name)
            for tok in self.tokens.values():
                self.assertNotIn(tok[-40:], text, name)

    # ---- operations ----------------------------------------------------------------
    def test_health_metrics_openapi(self):
        self.assertEqual(self.req("GET", "/healthz").json, {"status": "ok"})
        self.assertEqual(self.req("GET", "/readyz").status, 200)
        self.req("GET", "/api/users/@bayko/short")
        self.req("GET", "/api/message_groups", token=self.tokens["bayko"])
        self.req("GET", "/api/message_groups", token=self.tokens["bayko"])
        r = self.req("GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("content-type").startswith("text/plain"))
        text = r.body.decode()
        m = re.search(r'gateway_http_requests_total\{route="/api/users/@\{handle\}/short",status="200"\} (\d+)', text)
        self.assertTrue(m and int(m.group(1)) >= 1, text[:500])
        self.assertRegex(text, r'gateway_http_request_duration_seconds_bucket\{route="/api/message_groups",le="\+Inf"\} [1-9]')
        self.assertRegex(text, r'gateway_upstream_requests_total\{method="users.GetUser",code="OK"\} [1-9]')
        self.assertRegex(text, r'gateway_upstream_duration_seconds_count\{method="messages.ListMessageGroups"\} [1-9]')
        self.assertRegex(text, r'gateway_token_cache_requests_total\{result="hit"\} [1-9]')
        self.assertRegex(text, r'gateway_jwks_fetches_total [1-9]')
        self.assertRegex(text, r'gateway_user_cache_requests_total\{result="hit"\} [1-9]')
        self.assertRegex(text, r'gateway_handle_cache_requests_total\{result="hit"\} [1-9]')
        self.assertIn("gateway_upstream_errors_total", text)
        spec = self.req("GET", "/openapi.json").json
        with open(os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "gateway", "openapi.json")) as f:
            self.assertEqual(spec, json.load(f), "serves the committed document")
        self.assertTrue(spec["openapi"].startswith("3."))
        for p, ms in (("/api/message_groups", ["get"]), ("/api/messages/{message_group_uuid}", ["get"]),
                      ("/api/messages", ["post"]), ("/api/users/@{handle}/short", ["get"]),
                      ("/healthz", ["get"]), ("/readyz", ["get"]), ("/metrics", ["get"]), ("/openapi.json", ["get"])):
            for m in ms:
                self.assertIn(m, spec["paths"][p])
        self.assertEqual(spec["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer")

    def test_slow_client_is_cut_off(self):
        # A client that opens a connection and sends half a request line holds
        # nothing for long: GATEWAY_CONN_TIMEOUT_S is 2 here.
        host, port = self.s.gateway_url.split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            t0 = time.time()
            got = sock.recv(100)
            self.assertEqual(got, b"", "closed without an answer")
            self.assertLess(time.time() - t0, 6)
        # Over-long headers are refused (64 KiB per connection, headers included).
        st, _, _ = self.raw("GET", "/healthz", {"X-Big": "a" * 70000})
        self.assertIn(st, (413, 431))

    # ---- the HTTP layer (gateway/src/server.c, h1.c) ---------------------------
    def sock(self):
        host, port = self.s.gateway_url.split("//")[1].split(":")
        return socket.create_connection((host, int(port)), timeout=10)

    @staticmethod
    def read_answers(sock, n):
        """Reads n answers (head + Content-Length body) off a socket."""
        buf, out = b"", []
        while len(out) < n:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = buf[:end].decode("latin-1")
                m = re.search(r"(?im)^content-length: (\d+)$", head)
                size = int(m.group(1)) if m else 0
                if len(buf) >= end + 4 + size:
                    status = int(head.split(" ", 2)[1])
                    hdrs = dict(l.split(": ", 1) for l in head.split("\r\n")[1:])
                    out.append((status, {k.lower(): v for k, v in hdrs.items()},
                                buf[end + 4:end + 4 + size]))
                    buf = buf[end + 4 + size:]
                    continue
            d = sock.recv(65536)
            if not d:
                break
            buf += d
        return out, buf

    def test_pipelined_in_order(self):
        reqs = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-%d\r\n%s\r\n" % (
            p, i, b"Connection: close\r\n" if i == 3 else b"")
            for i, p in enumerate((b"/healthz", b"/api/users/@bayko/short", b"/nothing", b"/healthz")))
        with self.sock() as s:
            s.sendall(reqs)
            got, rest = self.read_answers(s, 5)
        self.assertEqual([(st, h["x-request-id"]) for st, h, _ in got],
                         [(200, "pipe-0"), (200, "pipe-1"), (404, "pipe-2"), (200, "pipe-3")])
        self.assertEqual(got[3][1].get("connection"), "close")
        self.assertEqual(json.loads(got[1][2])["handle"], "bayko")
        self.assertEqual(rest, b"")

    def test_expect_100_continue(self):
        body = json.dumps({"message": "after a 100", "handle": "londo"}).encode()
        head = ("POST /api/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                % (self.tokens["andrewbrown"], len(body))).encode()
        with self.sock() as s:
            s.sendall(head)
            self.assertEqual(s.recv(100), b"HTTP/1.1 100 Continue\r\n\r\n")
            s.sendall(body)
            got, _ = self.read_answers(s, 1)
        self.assertEqual(got[0][0], 200, got)
        self.assertEqual(json.loads(got[0][2])["message"], "after a 100")
        # Refused before the body: no 100, the answer, then the connection closes.
        with self.sock() as s:
            s.sendall(head.replace(b"Bearer ", b"Bearer x"))
            got, rest = self.read_answers(s, 2)
        self.assertEqual([(st, h.get("connection")) for st, h, _ in got], [(401, "close")])

    def test_refusals_are_json(self):
        cases = ((b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
                 (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400, "bad_request"),
                 (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n", 400, "bad_request"),
                 (b"GET /" + b"u" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
                 (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 300 + b"\r\n", 431,
                  "request_header_fields_too_large"))
        for raw, status, code in cases:
            with self.sock() as s:
                s.sendall(raw)
                got, _ = self.read_answers(s, 1)
            self.assertEqual([(st, json.loads(b), h.get("connection")) for st, h, b in got],
                             [(status, [code], "close")], raw[:40])
            self.assertTrue(got[0][1].get("x-request-id"))

    def wait_stopped(self, pid):
        deadline = time.time() + 5
        while time.time() < deadline:  # wait until every thread is stopped
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "T":
                    return
            time.sleep(0.02)

    # ---- upstream failures (runs last: it stops and restarts messages-svc) ----
    def test_pool_mode_parks_idle_connections(self):
        """GATEWAY_WORKERS=1: one pool thread still serves every client, since
        an idle keep-alive connection (or one that has sent nothing yet) waits
        in the acceptor's epoll set, not on the thread; parked connections
        close after GATEWAY_CONN_TIMEOUT_S and at the drain."""
        from stack import free_port
        port = free_port()
        env = dict(self.s.env(), GATEWAY_WORKERS="1", GATEWAY_CONN_TIMEOUT_S="2",
                   GATEWAY_LISTEN="127.0.0.1:%d" % port, LOG_LEVEL="warn")
        log = open(os.path.join(self.s.root, "gateway-pool.log"), "ab")
        gw = subprocess.Popen([self.s.binary("gateway")], env=env, stdout=log, stderr=log,
                              stdin=subprocess.DEVNULL)
        try:
            deadline = time.time() + 20
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            a = socket.create_connection(("127.0.0.1", port), timeout=5)
            silent = socket.create_connection(("127.0.0.1", port), timeout=5)
            a.sendall(get)
            self.assertEqual(self.read_answers(a, 1)[0][0][0], 200)
            # a is idle (keep-alive) and `silent` never spoke: both parked.
            for i in range(3):
                t0 = time.time()
                with socket.create_connection(("127.0.0.1", port), timeout=5) as b:
                    b.sendall(get)
                    self.assertEqual(self.read_answers(b, 1)[0][0][0], 200)
                self.assertLess(time.time() - t0, 1.0, "answered while others sit idle")
            a.sendall(get)  # a wakes up from the parked set and is served again
            self.assertEqual(self.read_answers(a, 1)[0][0][0], 200)
            t0 = time.time()
            self.assertEqual(a.recv(100), b"", "an idle parked connection is closed")
            self.assertLess(time.time() - t0, 6)
            self.assertEqual(silent.recv(100), b"")
            a.close()
            silent.close()
            idle = socket.create_connection(("127.0.0.1", port), timeout=5)
            idle.sendall(get)
            self.assertEqual(self.read_answers(idle, 1)[0][0][0], 200)
            gw.send_signal(signal.SIGTERM)  # with a parked connection open
            self.assertEqual(gw.wait(15), 0)
            self.assertEqual(idle.recv(100), b"")
            idle.close()
        finally:
            if gw.poll() is None:
                gw.kill()
                gw.wait()
            log.close()

    def test_rename_reaches_the_partner(self):
        """A display name renamed in PostgreSQL (users-svc's table) shows on
        the partner's side after the renamed user's next message, and the
        partner's replies never bring the old name back. A second gateway
        without the sub-to-user cache, so the rename is seen at once."""
        from stack import free_port, stubs, pg_bindir
        import grpc
        s = self.s
        subs = {h: s.cognito_user(h, n) for h, n in (("vir", "Vir Cotto"), ("lennier", "Lennier"))}
        with grpc.insecure_channel(s.users_addr) as ch:
            users = stubs.users_pb2_grpc.UsersServiceStub(ch)
            for h, n in (("vir", "Vir Cotto"), ("lennier", "Lennier")):
                users.CreateUser(stubs.users_pb2.CreateUserRequest(
                    display_name=n, handle=h, email="%s@example.test" % h,
                    cognito_user_id=subs[h]), timeout=10)
        tok = {h: s.token(h) for h in subs}
        port = free_port()
        env = dict(s.env(), GATEWAY_USER_CACHE_TTL_S="0", GATEWAY_LISTEN="127.0.0.1:%d" % port)
        log = open(os.path.join(s.root, "gateway-rename.log"), "ab")
        gw = subprocess.Popen([s.binary("gateway")], env=env, stdout=log, stderr=log,
                              stdin=subprocess.DEVNULL)

        def call(method, path, who, body=None):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                h = {"Authorization": "Bearer " + tok[who], "Content-Type": "application/json"}
                conn.request(method, path, body=json.dumps(body) if body else None, headers=h)
                r = conn.getresponse()
                data = r.read()
                self.assertEqual(r.status, 200, (method, path, data))
                return json.loads(data)
            finally:
                conn.close()

        def partner_name(who, group):
            rows = [g for g in call("GET", "/api/message_groups", who) if g["uuid"] == group]
            return rows[0]["display_name"]

        def rename(handle, name):
            subprocess.run([os.path.join(pg_bindir(), "psql"), s.pg_url, "-qc",
                            "UPDATE users SET display_name = '%s' WHERE handle = '%s'" % (name, handle)],
                           check=True, capture_output=True)
        try:
            deadline = time.time() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    self.assertLess(time.time(), deadline, "second gateway did not start")
                    time.sleep(0.05)
            g = call("POST", "/api/messages", "vir", {"message": "hi", "handle": "lennier"})
            g = g["message_group_uuid"]
            call("POST", "/api/messages", "lennier", {"message": "hello", "message_group_uuid": g})
            call("POST", "/api/messages", "vir", {"message": "how are you", "message_group_uuid": g})
            self.assertEqual(partner_name("vir", g), "Lennier")
            rename("lennier", "Lennier of Minbar")
            m = call("POST", "/api/messages", "lennier", {"message": "new name", "message_group_uuid": g})
            self.assertEqual(m["display_name"], "Lennier of Minbar")
            self.assertEqual(partner_name("vir", g), "Lennier of Minbar")
            for text in ("nice", "really nice"):
                call("POST", "/api/messages", "vir", {"message": text, "message_group_uuid": g})
                self.assertEqual(partner_name("vir", g), "Lennier of Minbar")
            self.assertEqual(partner_name("lennier", g), "Vir Cotto")
            msgs = call("GET", "/api/messages/" + g, "vir")
            self.assertEqual([(x["handle"], x["display_name"]) for x in msgs][-3:],
                             [("lennier", "Lennier of Minbar"), ("vir", "Vir Cotto"),
                              ("vir", "Vir Cotto")])
            gw.send_signal(signal.SIGTERM)
            self.assertEqual(gw.wait(15), 0)
        finally:
            if gw.poll() is None:
                gw.kill()
                gw.wait()
            log.close()

    def test_zz_upstream_down(self):
        tok = self.tokens["andrewbrown"]
        self.req("GET", "/api/message_groups", token=tok)  # warm the user cache
        proc = self.s.procs["messages-svc"]
        # A hung upstream: the deadline (1 s here) answers 504, never a hang.
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            self.wait_stopped(proc.pid)
            t0 = time.time()
            r = self.req("GET", "/api/message_groups", token=tok)
            self.assertEqual((r.status, r.json), (504, ["upstream_timeout"]))
            self.assertLess(time.time() - t0, 5)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        self.s.kill("messages-svc")
        try:
            r = self.req("GET", "/readyz")
            self.assertEqual((r.status, r.json), (503, ["messages_unavailable"]))
            self.assertEqual(r.header("retry-after"), "1")
            r = self.req("GET", "/api/message_groups", token=tok)
            self.assertEqual((r.status, r.json), (503, ["upstream_unavailable"]))
            self.assertEqual(r.header("retry-after"), "1")
            r = self.post_message("andrewbrown", {"message": "x", "handle": "bayko"})
            self.assertEqual((r.status, r.json), (503, ["upstream_unavailable"]))
            # Routes that do not need messages-svc keep working.
            self.assertEqual(self.req("GET", "/api/users/@bayko/short").status, 200)
            self.assertEqual(self.req("GET", "/healthz").status, 200)
        finally:
            self.s.restart("messages-svc")
        deadline = time.time() + 10
        while self.req("GET", "/readyz").status != 200 and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.req("GET", "/readyz").status, 200)

    def test_zzz_graceful_shutdown(self):
        """SIGTERM with a request in flight: the listener closes at once, the
        request still gets its answer, the process exits 0."""
        tok = self.tokens["andrewbrown"]
        self.req("GET", "/api/message_groups", token=tok)
        msvc, gw = self.s.procs["messages-svc"], self.s.procs["gateway"]
        os.kill(msvc.pid, signal.SIGSTOP)
        answer = {}

        def call():
            answer["r"] = self.raw("GET", "/api/message_groups", {"Authorization": "Bearer " + tok})

        try:
            self.wait_stopped(msvc.pid)
            t = threading.Thread(target=call)
            t.start()
            deadline = time.time() + 5  # until the request waits on messages-svc
            while time.time() < deadline:
                _, _, m = self.raw("GET", "/metrics")
                if int(re.search(rb"gateway_http_in_flight (\d+)", m).group(1)) >= 2:  # it + /metrics
                    break
                time.sleep(0.05)
            gw.signal(signal.SIGTERM)
            time.sleep(0.2)
            host, port = self.s.gateway_url.split("//")[1].split(":")
            with self.assertRaises(OSError):
                socket.create_connection((host, int(port)), timeout=2).close()
            t.join(10)
            self.assertEqual(answer["r"][0], 504)  # the deadline, not a dropped connection
            self.assertEqual(gw.popen.wait(10), 0)
        finally:
            os.kill(msvc.pid, signal.SIGCONT)
        self.s.restart("gateway")
        self.assertEqual(self.req("GET", "/healthz").status, 200)
        self.assertGreater(type(self).checked, 100, "responses checked against the OpenAPI document")


if __name__ == "__main__":
    unittest.main(verbosity=2)
