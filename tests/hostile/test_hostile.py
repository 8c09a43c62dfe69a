"""it_hostile: the black-box hostile input suite (issue 7).

Starts the whole stack on loopback, creates three conversations through the
gateway, records what DynamoDB and PostgreSQL hold, then sends every case in
tests/hostile/cases/*.json (see runner.py for the format) while slow-loris
clients hold connections open. Afterwards the gateway must still be ready and
nothing may have been written.

Run: CRUDDUR_BUILD_DIR=build/asan CRUDDUR_SOURCE_DIR=. /usr/bin/python3 tests/hostile/test_hostile.py
Only some families: HOSTILE_CASES='tokens*' (a glob over the case files).
"""
import os
import sys
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hostile  # noqa: E402
import runner  # noqa: E402

# The slow-loris cases rely on this idle timeout (the default is 15 s).
CONN_TIMEOUT_S = 4


def cursor_of(resp):
    """The raw (still percent-encoded) cursor of a response's Link rel=next."""
    link = hostile.next_link(resp)
    if not link:
        return None
    q = urllib.parse.urlsplit(link).query
    for part in q.split("&"):
        if part.startswith("cursor="):
            return part[len("cursor="):]
    return None


def tamper(raw_cursor):
    """The same cursor with one character in the middle changed."""
    c = urllib.parse.unquote(raw_cursor)
    i = len(c) // 2
    repl = "A" if c[i] != "A" else "B"
    return urllib.parse.quote(c[:i] + repl + c[i + 1:], safe="")


class HostileInput(unittest.TestCase):
    def test_hostile_input(self):
        t_start = time.time()
        cases = runner.load_cases(os.environ.get("HOSTILE_CASES", "*") + ".json")
        if "HOSTILE_CASES" not in os.environ:
            self.assertGreaterEqual(len(cases), 150, "issue 7 asks for at least 150 cases")
        with hostile.World(gateway_env={"GATEWAY_CONN_TIMEOUT_S": str(CONN_TIMEOUT_S)}) as w:
            ctx = self.setup_data(w)
            before = (w.ddb_digest(), w.pg_digest())
            minter = hostile.Minter(w.s.issuer, w.s.client_id)
            kinds = [(f, c) for f, c in cases if c.get("kind")]
            kind_out = {}
            kt = threading.Thread(target=lambda: kind_out.update(
                runner.run_kinds(w, minter, ctx, kinds)))
            kt.start()
            report, took = runner.run_all(w, minter, ctx, cases)
            kt.join()
            for (fam, name), (outcome, detail) in kind_out.items():
                report[outcome].append((fam, name, detail, None))

            # The services stay healthy and nothing was written.
            deadline = time.time() + 5
            while not w.ready() and time.time() < deadline:
                time.sleep(0.2)
            ready = w.ready()
            alive = {n: w.s.procs[n].alive() for n in ("users-svc", "messages-svc", "gateway")}
            after = (w.ddb_digest(), w.pg_digest())

        n = sum(len(v) for v in report.values())
        print("\nhostile: %d cases in %.1fs (suite %.1fs): %d pass, %d fail, %d known issue, %d fixed"
              % (n, time.time() - t_start, took, len(report["pass"]), len(report["fail"]),
                 len(report["known"]), len(report["fixed"])))
        for fam, name, detail, st in report["known"]:
            print("  known issue %s/%s (%s): %s" % (fam, name, st, detail))
        for fam, name, detail, st in report["fixed"]:
            print("  FIXED? %s/%s: %s (remove known_issue)" % (fam, name, detail))
        self.assertTrue(ready, "/readyz is not 200 after the suite")
        self.assertEqual(alive, {k: True for k in alive}, "a binary died during the suite")
        self.assertEqual(before[0], after[0], "DynamoDB changed: (items, digest) before/after")
        self.assertEqual(before[1], after[1], "PostgreSQL changed: rows before/after")
        self.assertEqual(report["fail"], [], "failing cases:\n" + "\n".join(
            "%s/%s: %s" % (f, nm, d) for f, nm, d, _ in report["fail"]))

    def setup_data(self, w):
        """Three conversations (andrewbrown-bayko with 3 messages, andrewbrown-
        londo with 2, bayko-londo with 1) and cursors from real responses."""
        a, b = w.client("andrewbrown"), w.client("bayko")
        idem = "hostile-setup-1"

        def post(c, body, key=None):
            r = c.call("POST", "/api/messages", body, {"Idempotency-Key": key} if key else None)
            self.assertEqual(r.status, 200, "setup POST %r: %d %r" % (body, r.status, r.body[:200]))
            return r.json()
        first = post(a, {"message": "hello 1", "handle": "bayko"}, idem)
        g_ab = first["message_group_uuid"]
        post(a, {"message": "hello 2", "message_group_uuid": g_ab})
        post(a, {"message": "hello 3", "message_group_uuid": g_ab})
        g_al = post(a, {"message": "hi londo 1", "handle": "londo"})["message_group_uuid"]
        post(a, {"message": "hi londo 2", "message_group_uuid": g_al})
        g_bl = post(b, {"message": "hi londo", "handle": "londo"})["message_group_uuid"]
        cur = {}
        for key, client, path in (("cursor_groups_a", a, "/api/message_groups?limit=1"),
                                  ("cursor_msgs_ab_a", a, "/api/messages/%s?limit=1" % g_ab),
                                  ("cursor_msgs_ab_b", b, "/api/messages/%s?limit=1" % g_ab)):
            r = client.call("GET", path)
            self.assertEqual(r.status, 200, "setup GET %s: %d" % (path, r.status))
            cur[key] = cursor_of(r)
            self.assertTrue(cur[key], "setup: %s has no Link rel=next (Link: %r)" % (
                path, r.header("Link")))
        nodash = g_ab.replace("-", "")
        ctx = {
            "group_ab": g_ab, "group_al": g_al, "group_bl": g_bl, "msg_ab": first["uuid"],
            "group_ab_upper": g_ab.upper(), "group_ab_nodash": nodash,
            "group_ab_short": g_ab[:-1], "group_ab_tail35": g_ab[1:],
            "group_ab_dash_moved": nodash[:7] + "-" + nodash[7:11] + "-" + nodash[11:15] + "-" +
                                   nodash[15:19] + "-" + nodash[19:],
            "group_ab_neighbour": g_ab[:-1] + ("0" if g_ab[-1] != "0" else "1"),
            "random_uuid": "5f3c7a10-9d1e-4b8a-a6f2-3e4d5c6b7a89",
            "uuid_andrewbrown": w.uuids["andrewbrown"], "uuid_bayko": w.uuids["bayko"],
            "token_andrewbrown": w.tokens["andrewbrown"], "setup_idem_key": idem,
            "long_cursor": "A" * 600,
            "cursor_groups_a_tampered": tamper(cur["cursor_groups_a"]),
            "cursor_msgs_ab_a_tampered": tamper(cur["cursor_msgs_ab_a"]),
        }
        ctx.update(cur)
        return ctx


if __name__ == "__main__":
    unittest.main(verbosity=2)
