"""it_rolling: messages-svc replicas replaced one at a time under load.

Two messages-svc replicas serve the gateway (MESSAGES_ADDR lists both; calls
go round-robin). Readers and writers run without pause while each replica in
turn gets SIGTERM, drains, exits 0 and starts again, the other one serving
meanwhile, ROUNDS times. Every read answers 200: a read refused by the
replica that is shutting down (before any handler saw it) is tried again on
the other one. A write may answer 503 only when no handler saw it (gRPC core
cancels a call that reaches a replica whose shutdown began): such a message
is never stored, and every acknowledged one is stored exactly once.

Run: CRUDDUR_BUILD_DIR=build/asan CRUDDUR_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_rolling.py
"""
import collections
import os
import sys
import threading
import time
import unittest

SOURCE_DIR = os.environ.get("CRUDDUR_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "hostile"))
import hostile  # noqa: E402

ROUNDS = 3
READERS, WRITERS = 4, 2


class Rolling(unittest.TestCase):
    def test_replicas_replaced_under_load(self):
        w = hostile.World(start_gateway=False)
        with w:
            s = w.s
            s.messages_replica("messages-b")
            s.gateway(env={"MESSAGES_ADDR": "ipv4:127.0.0.1:%d,127.0.0.1:%d" % (
                s.ports["messages"], s.ports["messages-b"])})
            r = w.client("andrewbrown").call("POST", "/api/messages",
                                             {"message": "start", "handle": "bayko"})
            self.assertEqual(r.status, 200, r.body[:200])
            group = r.json()["message_group_uuid"]
            stop = threading.Event()
            lock = threading.Lock()
            reads = collections.Counter()
            writes = {}  # text -> status

            def reader():
                c = w.client("andrewbrown", timeout=15)
                while not stop.is_set():
                    st = c.call("GET", "/api/messages/%s?limit=5" % group).status
                    with lock:
                        reads[st] += 1

            def writer(i):
                c = w.client("bayko", timeout=15)
                k = 0
                while not stop.is_set():
                    k += 1
                    text = "w%d-%d" % (i, k)
                    st = c.call("POST", "/api/messages",
                                {"message": text, "message_group_uuid": group}).status
                    with lock:
                        writes[text] = st
            ts = [threading.Thread(target=reader) for _ in range(READERS)]
            ts += [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
            for t in ts:
                t.start()
            exits = []
            try:
                for _ in range(ROUNDS):
                    exits.append(s.terminate("messages-svc"))
                    s.restart("messages-svc")
                    exits.append(s.terminate("messages-b"))
                    s.messages_replica("messages-b")
            finally:
                stop.set()
                for t in ts:
                    t.join(30)
            wst = collections.Counter(writes.values())
            print("\nrolling: %d rounds; reads %s; writes %s" % (ROUNDS, dict(reads), dict(wst)))
            self.assertEqual(exits, [0] * (2 * ROUNDS), "replica exit statuses")
            self.assertEqual(set(reads), {200}, "reads during the rolling: %s" % dict(reads))
            self.assertLessEqual(set(wst), {200, 503}, "writes: %s" % dict(wst))
            stored = collections.Counter(m["message"] for m in hostile.all_messages(
                w.client("andrewbrown"), group))
            for text, st in writes.items():
                self.assertEqual(stored[text], 1 if st == 200 else 0,
                                 "%s (answered %s) stored %d times" % (text, st, stored[text]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
