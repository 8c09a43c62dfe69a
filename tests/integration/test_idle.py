"""it_idle: an idle minute of the whole stack logs no error line.

An operator learns to ignore error lines that mean nothing, so none may come
from a stack that only sits there. The stack serves a few requests first, so
every gRPC channel holds a connection (and pings it), then idles for IDLE_S
seconds (default 60). gRPC's keepalive trace is on, so the test also sees a
connection closed by its own keepalive watchdog: an idle, healthy connection
must never be (it was, with a keepalive timeout no longer than the 5 s
between reads of an idle client connection; see lib/rpc/src/rpc_internal.h).

Run: CRUDDUR_BUILD_DIR=build/asan CRUDDUR_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_idle.py
"""
import os
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
from stack import Stack  # noqa: E402

IDLE_S = float(os.environ.get("IDLE_S", "60"))
BINARIES = ("users-svc", "messages-svc", "gateway")
# gRPC core's keepalive trace, at info level (our log routes it as JSON lines).
TRACE = {"GRPC_TRACE": "http_keepalive", "GRPC_VERBOSITY": "INFO"}


class IdleStack(unittest.TestCase):
    def test_idle_minute_logs_no_error(self):
        with Stack() as s:
            s.postgres()
            s.dynalite()
            s.cognito()
            s.users_svc(env=TRACE)
            s.messages_svc(env=TRACE)
            s.gateway(env=TRACE)
            # /readyz asks both services; the lookup reaches users-svc and PostgreSQL.
            for _ in range(3):
                for path in ("/readyz", "/api/users/@andrewbrown/short"):
                    with urllib.request.urlopen(s.gateway_url + path, timeout=10) as r:
                        self.assertEqual(r.status, 200, path)
            marks = {n: s.log_mark(n) for n in BINARIES}
            time.sleep(IDLE_S)  # the idle minute itself: nothing races it
            for n in BINARIES:
                with open(s.log_path(n), "rb") as f:
                    f.seek(marks[n])
                    lines = f.read().decode("utf-8", "replace").splitlines()
                errors = [ln for ln in lines if '"level":"error"' in ln]
                closed = [ln for ln in lines if "Keepalive watchdog fired" in ln]
                self.assertEqual(errors, [], "%s logged errors while idle" % n)
                self.assertEqual(closed, [], "%s closed idle connections by keepalive" % n)


if __name__ == "__main__":
    unittest.main(verbosity=2)
