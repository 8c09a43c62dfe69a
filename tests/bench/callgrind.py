"""Instructions per request under callgrind; run through tests/bench/callgrind."""
import http.client
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
from stack import LOAD_TEST_LIMITS, Stack, http_ok, stubs  # noqa: E402

N = int(os.environ["PROF_N"])
OUT = os.environ["PROF_OUT"]
WARM = 50


class Client:
    """One keep-alive HTTP/1.1 connection to the gateway."""

    def __init__(self, url, token):
        host, port = url.split("//")[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.token = token

    def call(self, method, path, body=None):
        h = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json"}
        self.conn.request(method, path, body=body and json.dumps(body), headers=h)
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError("%s %s -> %d %s" % (method, path, r.status, data[:200]))
        return json.loads(data)


def under_callgrind(s, name, start):
    """Restarts `name` under callgrind with instrumentation off at start."""
    s.terminate(name)
    out = os.path.join(OUT, "callgrind.%s.out" % name)
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + out,
            s.binary(name)]
    s._spawn(name, argv, env=dict(s.env(), **(s._envs.get(name) or {})))
    start()
    return out


def toggle(pid, on):
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(pid)],
                   check=True, capture_output=True)


def measure(s, name, out, fn):
    """Ir per call of fn() in process `name` (N calls after WARM)."""
    for i in range(WARM):
        try:
            fn()
        except RuntimeError:  # a 504 while valgrind translates the first calls on a loaded machine
            if i >= WARM // 2:
                raise
            time.sleep(1)
    pid = s.procs[name].pid
    toggle(pid, True)
    for _ in range(N):
        fn()
    toggle(pid, False)
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    time.sleep(0.5)
    total = 0
    for f in os.listdir(OUT):
        if re.fullmatch(re.escape(os.path.basename(out)) + r"\.\d+", f):
            with open(os.path.join(OUT, f)) as fh:
                m = re.search(r"^totals:\s+(\d+)", fh.read(), re.M)
            if m:
                total += int(m.group(1))
            os.rename(os.path.join(OUT, f), os.path.join(OUT, f + ".done"))
    return total / N


def main():
    rows = []
    with Stack() as s:
        s.postgres(); s.dynalite(); s.cognito()
        for h, n, e in (("andrewbrown", "Andrew Brown", "andrew@exampro.co"),
                        ("bayko", "Andrew Bayko", "bayko@exampro.co")):
            s.cognito_user(h, n, e)
        s.users_svc(migrate=True, seed=True)
        s.run("users-svc", "sync-cognito", check=True)
        s.messages_svc(schema=True)
        s.gateway(env=dict(LOAD_TEST_LIMITS, LOG_LEVEL="warn"))
        token = s.token("andrewbrown")
        c = Client(s.gateway_url, token)
        group = c.call("POST", "/api/messages", {"message": "start", "handle": "bayko"})["message_group_uuid"]
        for i in range(29):
            c.call("POST", "/api/messages", {"message": "seed %d" % i, "message_group_uuid": group})

        def list_msgs():
            c.call("GET", "/api/messages/" + group)

        def short():
            c.call("GET", "/api/users/@andrewbrown/short")

        seq = [0]

        def post():
            seq[0] += 1
            c.call("POST", "/api/messages", {"message": "m %d" % seq[0], "message_group_uuid": group})

        def gw_up():
            s._wait("gateway", lambda: http_ok(s.gateway_url + "/healthz"), 120)

        out = under_callgrind(s, "gateway", gw_up)
        c = Client(s.gateway_url, token)
        rows.append(("gateway", "GET /api/messages/{uuid}", measure(s, "gateway", out, list_msgs)))
        rows.append(("gateway", "GET /api/users/@handle/short", measure(s, "gateway", out, short)))
        rows.append(("gateway", "POST /api/messages", measure(s, "gateway", out, post)))
        s.terminate("gateway")
        s.gateway(env=dict(LOAD_TEST_LIMITS, LOG_LEVEL="warn"))
        c = Client(s.gateway_url, token)

        addr = s.messages_addr
        out = under_callgrind(s, "messages-svc", lambda: s._wait(
            "messages-svc", lambda: s._grpc_serving(addr), 120))
        rows.append(("messages-svc", "ListMessages (page of 20)", measure(s, "messages-svc", out, list_msgs)))
        rows.append(("messages-svc", "CreateMessage", measure(s, "messages-svc", out, post)))

        import grpc
        # Only our client may talk to users-svc while it is measured: the
        # gateway's channel would reconnect to the restarted users-svc at a
        # moment of its own (backoff), and a connection's setup counted in
        # the window was 380k instructions, 1.9k a call.
        s.terminate("gateway")
        uaddr = s.users_addr
        out = under_callgrind(s, "users-svc", lambda: s._wait(
            "users-svc", lambda: s._grpc_serving(uaddr), 120))
        ch = grpc.insecure_channel(uaddr)
        stub = stubs.users_pb2_grpc.UsersServiceStub(ch)
        req = stubs.users_pb2.GetUserRequest(handle="andrewbrown")
        rows.append(("users-svc", "GetUser by handle", measure(s, "users-svc", out,
                                                               lambda: stub.GetUser(req, timeout=30))))
        ch.close()
    print("instructions per request (callgrind Ir, %d requests after %d warm-up, one at a time)" % (N, WARM))
    for proc, what, ir in rows:
        print("  %-13s %-32s %10.0f Ir" % (proc, what, ir))


main()
