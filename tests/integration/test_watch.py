"""WatchEvents across two messages-svc replicas on one dynalite.

Run: CRUDDUR_BUILD_DIR=build/asan CRUDDUR_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_watch.py
Replica 1 and replica 2 share the table and the token secret, as two pods
behind one Service would. Each test uses fresh random users.
"""
import base64
import hashlib
import hmac
import os
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
from stack import TEST_PAGE_SECRET, Stack, stubs  # noqa: E402

import grpc  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402

S = None
ADDR = {}    # replica number -> address
STUBS = {}   # replica number -> MessagesService stub
CHANNELS = {}
PER_USER_CAP = 6
SVC = "cruddur.messages.v1.MessagesService"


def pb():
    return stubs.messages_pb2


def party():
    u = str(uuid.uuid4())
    h = "u" + u[:8]
    return pb().Participant(uuid=u, handle=h, display_name="User " + h)


def connect(n):
    CHANNELS[n] = grpc.insecure_channel(ADDR[n])
    STUBS[n] = stubs.messages_pb2_grpc.MessagesServiceStub(CHANNELS[n])


def setUpModule():
    global S
    S = Stack(keep=bool(os.environ.get("KEEP_STACK")))
    if os.environ.get("KEEP_STACK"):
        print("stack root:", S.root, file=sys.stderr)
    try:
        S.dynalite()
        env = {"WATCH_MAX_STREAMS_PER_USER": str(PER_USER_CAP)}
        ADDR[1] = S.messages_svc(schema=True, env=env)
        ADDR[2] = S.messages_replica(2, env=env)
    except Exception:
        S.__exit__(*sys.exc_info())
        raise
    connect(1)
    connect(2)


def tearDownModule():
    for ch in CHANNELS.values():
        ch.close()
    S.__exit__(None, None, None)  # raises when a replica did not exit cleanly


def start_group(replica, a, b, text="hello"):
    return STUBS[replica].CreateMessageGroup(pb().CreateMessageGroupRequest(
        sender=a, recipient=b, text=text), timeout=10)


def post(replica, group, sender, text):
    return STUBS[replica].CreateMessage(pb().CreateMessageRequest(
        message_group_uuid=group, sender=sender, text=text), timeout=10).message


class Watch:
    """One WatchEvents stream read on a thread: events in order, then the end."""

    def __init__(self, replica, user, token="", timeout=120):
        self.events = []
        self.code = None
        self.details = None
        self.cv = threading.Condition()
        self.call = STUBS[replica].WatchEvents(
            pb().WatchEventsRequest(user_uuid=user, resume_token=token), timeout=timeout)
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        try:
            for ev in self.call:
                with self.cv:
                    self.events.append(ev)
                    self.cv.notify_all()
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            code, details = e.code(), e.details()
        with self.cv:
            self.code, self.details = code, details
            self.cv.notify_all()

    def wait(self, pred, timeout=10):
        end = time.time() + timeout
        with self.cv:
            while not pred(self) and time.time() < end:
                self.cv.wait(0.05)
            return pred(self)

    def messages(self):
        with self.cv:
            return [e.message for e in self.events if e.WhichOneof("event") == "message"]

    def kinds(self):
        with self.cv:
            return [e.WhichOneof("event") for e in self.events]

    def last_token(self):
        with self.cv:
            return self.events[-1].resume_token if self.events else ""

    def cancel(self):
        self.call.cancel()
        self.th.join(10)


def has_ready(w):
    return len(w.events) >= 1


def ended(w):
    return w.code is not None


class CrossReplica(unittest.TestCase):
    def test_post_on_one_replica_reaches_the_other(self):
        a, b = party(), party()
        wb = Watch(2, b.uuid)
        wa = Watch(1, a.uuid)
        self.assertTrue(wb.wait(has_ready) and wa.wait(has_ready))
        self.assertEqual(wb.kinds()[0], "ready")
        t0 = time.time()
        r = start_group(1, a, b, "across")
        g = r.message_group_uuid
        # The other replica finds it with its next poll (busy interval 1 s,
        # idle up to 5 s for a user quiet for a minute; here it just started).
        self.assertTrue(wb.wait(lambda w: len(w.messages()) == 1, 8), wb.kinds())
        cross = time.time() - t0
        # The sender's own replica is woken by the post itself.
        self.assertTrue(wa.wait(lambda w: len(w.messages()) == 1, 3), wa.kinds())
        for w, other in ((wb, a), (wa, b)):
            m = w.messages()[0]
            self.assertEqual(m.message_uuid, r.message.message_uuid)
            self.assertEqual(m.message_group_uuid, g)
            self.assertEqual(m.text, "across")
            self.assertEqual(m.sender.uuid, a.uuid)
            self.assertTrue(w.wait(lambda w: "message_group" in w.kinds(), 3))
            (grp,) = [e.message_group for e in w.events if e.WhichOneof("event") == "message_group"]
            self.assertEqual(grp.message_group_uuid, g)
            self.assertEqual(grp.other.uuid, other.uuid)
            self.assertEqual(grp.last_message, "across")
            self.assertEqual(w.kinds()[:3], ["ready", "message", "message_group"])
        self.assertLess(cross, 8)
        # A reply through replica 2 reaches both, in order.
        post(2, g, b, "back")
        for w in (wa, wb):
            self.assertTrue(w.wait(lambda w: len(w.messages()) == 2, 8))
            self.assertEqual([m.text for m in w.messages()], ["across", "back"])
        wa.cancel()
        wb.cancel()

    def test_resume_misses_nothing_and_repeats_nothing(self):
        a, b, c = party(), party(), party()
        g1 = start_group(1, a, b, "g1 start").message_group_uuid
        g2 = start_group(2, c, b, "g2 start").message_group_uuid
        posted, lock = [], threading.Lock()

        def sender(replica, group, who, n, tag):
            for i in range(n):
                m = post(replica, group, who, "%s %d" % (tag, i))
                with lock:
                    posted.append(m.message_uuid)

        w = Watch(1 + len(posted) % 2, b.uuid)
        self.assertTrue(w.wait(has_ready))
        threads = [threading.Thread(target=sender, args=args) for args in (
            (1, g1, a, 60, "a1"), (2, g1, b, 60, "b2"), (1, g2, c, 60, "c1"), (2, g2, b, 60, "b2"))]
        for t in threads:
            t.start()
        got, streams, replica = [], 0, 2
        # Drop the stream after a few events each time and resume on the
        # other replica with the last token, until the senders are done and
        # everything arrived.
        deadline = time.time() + 120
        while time.time() < deadline:
            w.wait(lambda w: len(w.events) >= 25 or ended(w), 2)
            w.cancel()  # joins the reader: nothing arrives after this
            tok = w.last_token()
            self.assertNotIn("resync", w.kinds(),
                             [e.resync.reason for e in w.events if e.WhichOneof("event") == "resync"])
            got += [m.message_uuid for m in w.messages()]
            streams += 1
            if not any(t.is_alive() for t in threads) and set(got) >= set(posted):
                break
            replica = 3 - replica
            w = Watch(replica, b.uuid, tok)
            self.assertTrue(w.wait(has_ready))
            self.assertEqual(w.kinds()[0], "ready")
        for t in threads:
            t.join()
        self.assertEqual(len(posted), 240)
        self.assertEqual(len(got), len(set(got)), "an event was repeated")
        self.assertEqual(set(got), set(posted), "an event was missed")
        self.assertGreater(streams, 3)

    def test_resume_past_more_than_one_query_page(self):
        """250 messages posted while the client is away, more than one
        DynamoDB Query page (200): the resume pages through the token's
        window and the polls page through the backlog, so all 250 arrive,
        once each, in order, with no resync."""
        a, b = party(), party()
        g = start_group(1, a, b, "before").message_group_uuid
        w = Watch(1, b.uuid)
        self.assertTrue(w.wait(has_ready))
        w.cancel()
        tok = w.last_token()
        posted = [post(1 + i % 2, g, a, "away %d" % i).message_uuid for i in range(250)]
        w = Watch(2, b.uuid, tok)
        w.wait(lambda w: len(w.messages()) >= 250 or "resync" in w.kinds(), 30)
        time.sleep(1.5)  # one more poll: nothing repeated after the last
        w.cancel()
        self.assertNotIn("resync", w.kinds())
        self.assertEqual([m.message_uuid for m in w.messages()], posted)

    def test_sigterm_ends_streams_and_the_token_continues_elsewhere(self):
        a, b = party(), party()
        g = start_group(1, a, b, "before").message_group_uuid
        w = Watch(2, b.uuid)
        self.assertTrue(w.wait(has_ready))
        first = post(1, g, a, "one").message_uuid
        self.assertTrue(w.wait(lambda w: len(w.messages()) == 1, 8))
        tok = w.last_token()
        t0 = time.time()
        rc = S.terminate("messages-svc-2")
        self.assertEqual(rc, 0)  # clean exit: no leak, streams released
        self.assertTrue(w.wait(ended, 5))
        self.assertEqual(w.code, grpc.StatusCode.UNAVAILABLE)
        self.assertIn("reconnect", w.details)
        self.assertLess(time.time() - t0, 10)
        # Messages posted while the client reconnects are not lost.
        later = [post(1, g, a, "after %d" % i).message_uuid for i in range(5)]
        w2 = Watch(1, b.uuid, tok)
        self.assertTrue(w2.wait(lambda w: len(w.messages()) == 5, 8), w2.kinds())
        self.assertEqual([m.message_uuid for m in w2.messages()], later)
        self.assertNotIn(first, [m.message_uuid for m in w2.messages()])
        self.assertNotIn("resync", w2.kinds())
        w2.cancel()
        ADDR[2] = S.messages_replica(2, env={"WATCH_MAX_STREAMS_PER_USER": str(PER_USER_CAP)})
        CHANNELS[2].close()
        connect(2)


def forge(user, cur, low, h, n):
    """A token signed with the test secret (the service's own format), to
    reach the resync paths without waiting ten minutes."""
    pk = "GRP#" + user
    payload = "v1|w|%s|%s|%s|%s~%016x~%d" % (user, pk, cur, low, h, n)
    key = TEST_PAGE_SECRET.encode()
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
    return b64(payload.encode()) + "." + b64(mac)


class Hostile(unittest.TestCase):
    def test_bad_requests(self):
        a, b = party(), party()
        w = Watch(1, a.uuid)
        self.assertTrue(w.wait(has_ready))
        tok_a = w.last_token()
        w.cancel()
        cases = [
            ("not-a-uuid", ""),
            (b.uuid, tok_a),                       # another user's token
            (a.uuid, "garbage"),
            (a.uuid, "x.y"),
            (a.uuid, tok_a[:-2] + ("AA" if not tok_a.endswith("AA") else "BB")),
            (a.uuid, "A" * 5000),
            (a.uuid, tok_a.replace(".", "..", 1)),
        ]
        for user, tok in cases:
            with self.subTest(user=user, tok=tok[:20]):
                w = Watch(1, user, tok)
                self.assertTrue(w.wait(ended, 5))
                self.assertEqual(w.code, grpc.StatusCode.INVALID_ARGUMENT)
                self.assertEqual(w.events, [])
                self.assertNotIn(tok[:40] or "\0", w.details)

    def test_stale_or_unverifiable_token_gets_one_resync(self):
        a = party()
        old = forge(a.uuid, "2020-01-01T00:00:00.000000Z", "2020-01-01T00:00:00.000000Z", 0, 0)
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        wrong = forge(a.uuid, now, now, 12345, 1)  # claims a delivery that never happened
        for tok, why in ((old, "too old"), (wrong, "cannot be verified")):
            with self.subTest(why=why):
                w = Watch(2, a.uuid, tok)
                self.assertTrue(w.wait(lambda w: len(w.events) >= 2))
                self.assertEqual(w.kinds(), ["ready", "resync"])
                self.assertIn(why, w.events[1].resync.reason)
                # The resync's token continues from now.
                tok2 = w.events[1].resume_token
                w.cancel()
                w2 = Watch(1, a.uuid, tok2)
                self.assertTrue(w2.wait(has_ready))
                time.sleep(0.3)
                self.assertEqual(w2.kinds(), ["ready"])
                w2.cancel()

    def test_stream_flood_per_user(self):
        a = party()
        ws = [Watch(1, a.uuid) for _ in range(PER_USER_CAP)]
        for w in ws:
            self.assertTrue(w.wait(has_ready))
        extra = Watch(1, a.uuid)
        self.assertTrue(extra.wait(ended, 5))
        self.assertEqual(extra.code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        ws[0].cancel()
        time.sleep(0.3)
        again = Watch(1, a.uuid)
        self.assertTrue(again.wait(has_ready))
        for w in ws[1:] + [again]:
            w.cancel()


class Reflection(unittest.TestCase):
    def test_watch_through_reflection_alone(self):
        refl = stubs.reflection_v1_pb2
        stub = stubs.reflection_v1_pb2_grpc.ServerReflectionStub(CHANNELS[2])
        (resp,) = list(stub.ServerReflectionInfo(
            iter([refl.ServerReflectionRequest(file_containing_symbol=SVC)]), timeout=10))
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in resp.file_descriptor_response.file_descriptor_proto]
        pool = descriptor_pool.DescriptorPool()
        pending = list(files)
        while pending:  # dependencies first
            f = pending.pop(0)
            try:
                pool.Add(f)
            except TypeError:
                pending.append(f)
        (fd,) = [f for f in files if f.name == "cruddur/messages/v1/messages.proto"]
        (svc,) = [s for s in fd.service if s.name == "MessagesService"]
        (m,) = [m for m in svc.method if m.name == "WatchEvents"]
        self.assertTrue(m.server_streaming)
        self.assertFalse(m.client_streaming)
        method = pool.FindServiceByName(SVC).FindMethodByName("WatchEvents")
        factory = message_factory.MessageFactory(pool)
        get = getattr(message_factory, "GetMessageClass", None)
        req_cls = get(method.input_type) if get else factory.GetPrototype(method.input_type)
        resp_cls = get(method.output_type) if get else factory.GetPrototype(method.output_type)
        call = CHANNELS[2].unary_stream("/%s/WatchEvents" % SVC,
                                        request_serializer=req_cls.SerializeToString,
                                        response_deserializer=resp_cls.FromString)
        a, b = party(), party()
        it = call(req_cls(user_uuid=b.uuid), timeout=30)
        first = next(it)
        self.assertEqual(first.WhichOneof("event"), "ready")
        self.assertTrue(first.resume_token)
        start_group(2, a, b, "seen by a dynamic client")
        ev = next(it)
        self.assertEqual(ev.WhichOneof("event"), "message")
        self.assertEqual(ev.message.text, "seen by a dynamic client")
        it.cancel()


if __name__ == "__main__":
    unittest.main(verbosity=2)
