"""Loads the hostile-input cases (tests/hostile/cases/*.json) and runs them
against a running gateway.

A case file is {"family": ..., "defaults": {...}, "cases": [ {...}, ... ]}; each
case (defaults merged in, headers merged key by key) has:
  name       unique within the file
  method     "GET", "POST", ... (sent as given, also unknown methods)
  path       raw request target, sent byte for byte; may hold {placeholders}
  headers    {"Name": "value"}; values may hold {placeholders}
  body       "text" | {"json": any} | {"base64": "..."} | {"hex": "..."} |
             {"repeat": "a", "times": N, "prefix": "", "suffix": ""} |
             {"nest": "[", "close": "]", "depth": N, "inner": "1", "prefix": "", "suffix": ""}
  raw        instead of method/path/headers/body: the whole request as text
             (placeholders allowed; "\r\n" written out) or {"base64"|"hex": ...}
  token      "none" | a user ("andrewbrown", "bayko", "londo", "ghost") |
             "id_token" / "refresh_token" (andrewbrown's other Cognito tokens) |
             "mint:<variant>" (see hostile.Minter.variant; signed for andrewbrown) |
             "raw:<Authorization header value>"
  expect     {"status": 404 or [404, 422] ("closed": the server may hang up
              without an answer, only for bytes that are not HTTP),
              "shape": "codes" | "empty_object" | "array" | "object" | "json" | "empty" | "any",
              "codes": [required codes], "exact_codes": true,
              "any_codes": [at least one of these codes],
              "keys": [required object keys],
              "headers": {"Name": "regex"}, "absent_headers": ["Name"],
              "same_as": "<name of an earlier case in the file>"}
  why        optional: why an expectation allows more than one status
  known_issue  a tracked defect of the code under test: a failure is reported
               but does not fail the suite; a pass is reported as "fixed".

Every answer is also checked for: no 5xx unless expected, a JSON body (never
HTML) whenever there is a body, an X-Request-Id header.
"""
import base64
import glob
import json
import os
import re
import time

from hostile import NoResponse, raw_request

CASES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def load_cases(pattern="*.json"):
    """[(family, case)] in file order; raises on duplicate names or bad keys."""
    out = []
    allowed = {"name", "method", "path", "headers", "body", "token", "expect", "why",
               "known_issue", "timeout", "raw", "kind", "params"}
    for path in sorted(glob.glob(os.path.join(CASES_DIR, pattern))):
        with open(path) as f:
            doc = json.load(f)
        fam = doc.get("family") or os.path.basename(path)[:-5]
        defaults = doc.get("defaults", {})
        seen = set()
        for c in doc["cases"]:
            case = json.loads(json.dumps(defaults))
            for k, v in c.items():
                if k == "headers":
                    case.setdefault("headers", {}).update(v)
                elif k == "expect":
                    case["expect"] = dict(defaults.get("expect", {}), **v)
                else:
                    case[k] = v
            bad = set(case) - allowed
            if bad:
                raise ValueError("%s/%s: unknown keys %s" % (fam, c.get("name"), bad))
            if case["name"] in seen:
                raise ValueError("%s: duplicate case %s" % (fam, case["name"]))
            seen.add(case["name"])
            out.append((fam, case))
    return out


def subst(value, ctx):
    """Replaces {name} for names in ctx (others stay, e.g. JSON braces)."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: str(ctx[m.group(1)]) if m.group(1) in ctx else m.group(0),
                               value)
    if isinstance(value, list):
        return [subst(v, ctx) for v in value]
    if isinstance(value, dict):
        return {subst(k, ctx): subst(v, ctx) for k, v in value.items()}
    return value


def build_body(spec, ctx):
    if spec is None:
        return b""
    if isinstance(spec, str):
        return subst(spec, ctx).encode("utf-8")
    if "json" in spec:
        return json.dumps(subst(spec["json"], ctx), ensure_ascii=False).encode("utf-8")
    if "base64" in spec or "hex" in spec:
        # Arbitrary bytes; {placeholders} (ASCII) inside them are still filled in.
        data = base64.b64decode(spec["base64"]) if "base64" in spec else bytes.fromhex(spec["hex"])
        return subst(data.decode("latin-1"), ctx).encode("latin-1")
    if "repeat" in spec:
        return (subst(spec.get("prefix", ""), ctx) + spec["repeat"] * spec["times"] +
                subst(spec.get("suffix", ""), ctx)).encode("utf-8")
    if "nest" in spec:
        d = spec["depth"]
        return (subst(spec.get("prefix", ""), ctx) + spec["nest"] * d + spec.get("inner", "") +
                spec["close"] * d + subst(spec.get("suffix", ""), ctx)).encode("utf-8")
    raise ValueError("bad body spec %r" % spec)


def auth_header(kind, world, minter):
    if kind in (None, "none"):
        return None
    if kind.startswith("raw:"):
        return kind[4:]
    if kind.startswith("mint:"):
        return minter.variant(kind[5:], world.subs["andrewbrown"], world.tokens["andrewbrown"])
    if kind == "id_token":
        return "Bearer " + world.s.token("andrewbrown", kind="IdToken")
    if kind == "refresh_token":
        return "Bearer " + world.s.token("andrewbrown", kind="RefreshToken")
    return "Bearer " + world.tokens[kind]


def check(case, resp, results):
    """Returns a list of problems (empty = pass)."""
    exp = case.get("expect", {})
    probs = []
    want = exp.get("status")
    wants = want if isinstance(want, list) else [want]
    if resp.status not in wants:
        probs.append("status %d, want %s" % (resp.status, want))
    if resp.status >= 500 and 500 > max(wants):
        probs.append("server error")
    ctype = (resp.header("Content-Type") or "").lower()
    data = None
    if resp.body and exp.get("shape") == "any":
        if "html" in ctype or resp.body.lstrip()[:1] == b"<":
            probs.append("HTML body")
    elif resp.body:
        if "html" in ctype or resp.body.lstrip()[:1] == b"<":
            probs.append("HTML body")
        try:
            data = json.loads(resp.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            probs.append("body is not JSON: %r" % resp.body[:120])
        if "application/json" not in ctype and exp.get("shape") != "any":
            probs.append("Content-Type %r for a JSON body" % ctype)
    shape = exp.get("shape", "json")
    if shape == "codes":
        if not (isinstance(data, list) and data and all(isinstance(x, str) for x in data)):
            probs.append("want a JSON array of code strings, got %r" % resp.body[:200])
        else:
            for c in exp.get("codes", []):
                if c not in data:
                    probs.append("code %s missing from %s" % (c, data))
            if exp.get("exact_codes") and sorted(data) != sorted(exp.get("codes", [])):
                probs.append("codes %s, want exactly %s" % (data, exp.get("codes")))
            anyc = exp.get("any_codes")
            if anyc and not set(anyc) & set(data):
                probs.append("codes %s, want one of %s" % (data, anyc))
    elif shape == "empty_object":
        if data != {}:
            probs.append("want {} got %r" % resp.body[:200])
    elif shape == "array":
        if not isinstance(data, list):
            probs.append("want an array, got %r" % resp.body[:200])
    elif shape == "object":
        if not isinstance(data, dict):
            probs.append("want an object, got %r" % resp.body[:200])
        else:
            for k in exp.get("keys", []):
                if k not in data:
                    probs.append("key %s missing" % k)
    elif shape == "empty":
        if resp.body:
            probs.append("want an empty body, got %r" % resp.body[:200])
    elif shape == "json":
        if resp.body and data is None:
            pass  # already reported
    for name, rx in exp.get("headers", {}).items():
        v = resp.header(name)
        if v is None or not re.search(rx, v):
            probs.append("header %s = %r, want /%s/" % (name, v, rx))
    for name in exp.get("absent_headers", []):
        if resp.header(name) is not None:
            probs.append("header %s should be absent, is %r" % (name, resp.header(name)))
    if resp.header("X-Request-Id") is None and exp.get("shape") != "any":
        probs.append("no X-Request-Id")
    same = exp.get("same_as")
    if same:
        other = results.get(same)
        if other is None:
            probs.append("same_as %s: that case has no answer" % same)
        elif (other.status, other.body) != (resp.status, resp.body):
            probs.append("differs from %s: %d %r vs %d %r" % (
                same, resp.status, resp.body[:100], other.status, other.body[:100]))
    return probs


def run_case(world, minter, ctx, case, results):
    """Sends one case; returns (outcome, detail, response or None) where outcome is
    pass | fail | known (a known issue still failing) | fixed (known issue passing)."""
    headers = {k: v for k, v in subst(case.get("headers", {}), ctx).items() if v is not None}
    authz = auth_header(case.get("token", "none"), world, minter)
    if authz is not None:
        headers["Authorization"] = authz
    body = build_body(case.get("body"), ctx)
    path = subst(case.get("path", "/"), ctx)
    raw = case.get("raw")
    if raw is not None:
        raw = build_body(raw, ctx)
        if authz is not None:
            raw = raw.replace(b"{authorization}", authz.encode())
    try:
        resp = raw_request(world.port, case.get("method", "GET"), path.encode("utf-8"),
                           headers, body, timeout=case.get("timeout", 10), raw=raw)
        probs = check(case, resp, results)
        results[case["name"]] = resp
    except (NoResponse, TimeoutError, ConnectionError, OSError) as e:
        want = case.get("expect", {}).get("status")
        wants = want if isinstance(want, list) else [want]
        resp, probs = None, ["no answer: %s: %s" % (type(e).__name__, e)]
        if "closed" in wants and isinstance(e, (NoResponse, ConnectionError)):
            probs = []  # closing on bytes that are not HTTP is an accepted answer
    if case.get("known_issue"):
        if probs:
            return "known", "; ".join(probs), resp
        return "fixed", "known issue no longer reproduces: " + case["known_issue"], resp
    return ("fail" if probs else "pass"), "; ".join(probs), resp


def run_all(world, minter, ctx, cases, log=print):
    """Runs every case; returns {outcome: [(family, name, detail, status)]} and the
    time taken."""
    t0 = time.time()
    report = {"pass": [], "fail": [], "known": [], "fixed": []}
    by_family = {}
    for fam, case in cases:
        if case.get("kind"):
            continue  # connection-level: run_kinds()
        res = by_family.setdefault(fam, {})
        outcome, detail, resp = run_case(world, minter, ctx, case, res)
        report[outcome].append((fam, case["name"], detail, resp.status if resp else None))
        if outcome != "pass":
            log("%-6s %s/%s: %s" % (outcome.upper(), fam, case["name"], detail))
    return report, time.time() - t0


# ---- connection-level cases ("kind") -------------------------------------------
def _slow_client(port, params, authz, stop_at):
    """One slow client: sends the start of a request, then (mode "drip") one
    byte every `interval` s, or (mode "idle") nothing. Returns the seconds until
    the server closed the connection, or None if it was still open at stop_at."""
    import socket
    t0 = time.time()
    mode = params.get("mode", "drip")
    if mode == "body_drip":
        head = ("POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" % authz).encode()
    else:
        head = b"GET /api/message_groups HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    drip = b"X-Slow-Loris-Header-" + b"a" * 100000
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(head)
        i = 0
        while time.time() < stop_at:
            s.settimeout(params.get("interval", 1.0))
            try:
                if s.recv(4096) == b"":
                    return time.time() - t0
                # Any answer (e.g. 408) also ends the attack; wait for the close.
                continue
            except socket.timeout:
                pass
            except OSError:
                return time.time() - t0
            if mode in ("drip", "body_drip"):
                try:
                    s.send(drip[i:i + 1])
                except OSError:
                    return time.time() - t0
                i += 1
        return None
    finally:
        s.close()


def run_kind(world, minter, ctx, case):
    """Runs a connection-level case; returns (outcome, detail)."""
    import threading
    kind = case["kind"]
    params = case.get("params", {})
    probs = []
    if kind != "slowloris":
        raise ValueError("unknown kind " + kind)
    bound = params.get("bound", 12)
    conns = params.get("conns", 8)
    stop_at = time.time() + bound
    authz = auth_header("andrewbrown", world, minter)
    closed = [None] * conns
    errors = []

    def one(i):
        try:
            closed[i] = _slow_client(world.port, params, authz, stop_at)
        except Exception as e:  # refused outright also counts as cut off
            closed[i] = 0.0
            errors.append(repr(e))
    ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(conns)]
    for t in ts:
        t.start()
    # Meanwhile ordinary requests must keep working, promptly.
    slow_ok = 0
    while any(t.is_alive() for t in ts):
        try:
            r = raw_request(world.port, "GET", "/api/message_groups",
                            {"Authorization": authz}, timeout=3)
            if r.status == 200:
                slow_ok += 1
            else:
                probs.append("ordinary request during the attack: %d" % r.status)
        except Exception as e:
            probs.append("ordinary request during the attack failed: %r" % e)
        time.sleep(0.5)
    for t in ts:
        t.join(bound + 10)
    still = sum(1 for c in closed if c is None)
    if still:
        probs.append("%d of %d slow connections still open after %ss (%s)" % (
            still, conns, bound, params.get("mode")))
    if slow_ok == 0:
        probs.append("no ordinary request succeeded during the attack")
    detail = "; ".join(probs) or "closed after %s s; %d ordinary requests ok" % (
        ", ".join("%.1f" % c for c in closed if c is not None), slow_ok)
    if case.get("known_issue"):
        return ("known" if probs else "fixed"), detail
    return ("fail" if probs else "pass"), detail


def run_kinds(world, minter, ctx, cases, log=print):
    """Runs every connection-level case at once (each is bounded in time)."""
    import threading
    out = {}

    def one(fam, case):
        try:
            out[(fam, case["name"])] = run_kind(world, minter, ctx, case)
        except Exception as e:
            out[(fam, case["name"])] = ("fail", "crashed: %r" % e)
    ts = [threading.Thread(target=one, args=fc) for fc in cases]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for (fam, name), (outcome, detail) in sorted(out.items()):
        log("%-6s %s/%s: %s" % (outcome.upper(), fam, name, detail))
    return out
