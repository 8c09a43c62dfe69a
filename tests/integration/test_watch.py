"""WatchEvents and WatchMany across two messages-svc replicas on one dynalite.

Run: CRUDDUR_BUILD_DIR=build/asan CRUDDUR_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_watch.py
Replica 1 and replica 2 share the table and the token secret, as two pods
behind one Service would. Each test uses fresh random users.
"""
import base64
import hashlib
import hmac
import os
import queue
import random
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


def four_senders(b):
    """Two conversations of b (with a and with c) started now, and four
    threads (not started) posting 60 messages each from both sides of both
    through both replicas. Returns (posted message uuids, threads)."""
    a, c = party(), party()
    g1 = start_group(1, a, b, "g1 start").message_group_uuid
    g2 = start_group(2, c, b, "g2 start").message_group_uuid
    posted, lock = [], threading.Lock()

    def sender(replica, group, who, n, tag):
        for i in range(n):
            m = post(replica, group, who, "%s %d" % (tag, i))
            with lock:
                posted.append(m.message_uuid)

    return posted, [threading.Thread(target=sender, args=args) for args in (
        (1, g1, a, 60, "a1"), (2, g1, b, 60, "b2"), (1, g2, c, 60, "c1"), (2, g2, b, 60, "b2"))]


def all_once(test, posted, threads, got):
    """After four_senders: everything posted was received (got), once."""
    for t in threads:
        t.join()
    test.assertEqual(len(posted), 240)
    test.assertEqual(len(got), len(set(got)), "an event was repeated")
    test.assertEqual(set(got), set(posted), "an event was missed")


class Reader:
    """A streaming call read on a thread: take(ev) for each event, then the
    final code and details."""

    def __init__(self, call):
        self.code = None
        self.details = None
        self.cv = threading.Condition()
        self.call = call
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        try:
            for ev in self.call:
                with self.cv:
                    self.take(ev)
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

    def cancel(self):
        self.call.cancel()
        self.th.join(10)


class Watch(Reader):
    """One WatchEvents stream: events in order, then the end."""

    def __init__(self, replica, user, token="", timeout=120):
        self.events = []
        super().__init__(STUBS[replica].WatchEvents(
            pb().WatchEventsRequest(user_uuid=user, resume_token=token), timeout=timeout))

    def take(self, ev):
        self.events.append(ev)

    def messages(self):
        with self.cv:
            return [e.message for e in self.events if e.WhichOneof("event") == "message"]

    def kinds(self):
        with self.cv:
            return [e.WhichOneof("event") for e in self.events]

    def last_token(self):
        with self.cv:
            return self.events[-1].resume_token if self.events else ""


def has_ready(w):
    return len(w.events) >= 1


def ended(w):
    return w.code is not None


class Many(Reader):
    """One WatchMany call: controls go out from a queue, events are kept per
    watch id, ends apart. cancel() fails the test on an event after an end."""

    def __init__(self, replica, timeout=120):
        self.q = queue.Queue()
        self.events = {}  # id -> [WatchEvent]
        self.ends = {}    # id -> WatchEnd
        self.bad = []     # ids that had an event or an end after their end
        super().__init__(STUBS[replica].WatchMany(iter(self.q.get, None), timeout=timeout))

    def take(self, ev):
        if ev.id in self.ends:
            self.bad.append(ev.id)
        elif ev.WhichOneof("body") == "end":
            self.ends[ev.id] = ev.end
        else:
            self.events.setdefault(ev.id, []).append(ev.event)

    def cancel(self):
        super().cancel()
        self.q.put(None)  # lets the control iterator finish
        assert not self.bad, "events after the end of watches %s" % self.bad

    def open(self, wid, user, token=""):
        self.q.put(pb().WatchControl(id=wid, open=pb().WatchEventsRequest(
            user_uuid=user, resume_token=token)))

    def close(self, wid):
        self.q.put(pb().WatchControl(id=wid, close=pb().WatchClose()))

    def half_close(self):
        self.q.put(None)

    def kinds(self, wid):
        with self.cv:
            return [e.WhichOneof("event") for e in self.events.get(wid, [])]

    def messages(self, wid):
        with self.cv:
            return [e.message for e in self.events.get(wid, [])
                    if e.WhichOneof("event") == "message"]

    def resyncs(self, wid):
        with self.cv:
            return [e.resync.reason for e in self.events.get(wid, [])
                    if e.WhichOneof("event") == "resync"]

    def ready(self, *wids):
        return self.wait(lambda m: all(m.events.get(w) for w in wids))

    def last_token(self, wid):
        with self.cv:
            evs = self.events.get(wid, [])
            return evs[-1].resume_token if evs else ""


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
        b = party()
        posted, threads = four_senders(b)
        w = Watch(1, b.uuid)
        self.assertTrue(w.wait(has_ready))
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
        all_once(self, posted, threads, got)
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


class WatchMany(unittest.TestCase):
    def test_many_watches_of_many_users_each_get_theirs_once_in_order(self):
        """Twelve conversations, both sides watched on one call (and one
        user twice, sharing its polls), posts through both replicas: every
        watch gets exactly its conversation's messages, once, in order,
        after `ready`, each followed by its list item."""
        pairs = [(party(), party()) for _ in range(12)]
        m = Many(1)
        wids, who = {}, {}
        for i, (a, b) in enumerate(pairs):
            for u in (a, b):
                wid = random.getrandbits(64) or 1  # the whole uint64 range
                wids[u.uuid], who[wid] = wid, u.uuid
                m.open(wid, u.uuid)
        twin = 7  # a second watch of pairs[0]'s b on the same call
        m.open(twin, pairs[0][1].uuid)
        self.assertTrue(m.ready(twin, *who), m.details)
        posted = {}  # user -> [message_uuid] of their conversation, in order
        for i, (a, b) in enumerate(pairs):
            r = start_group(1 + i % 2, a, b, "start %d" % i)
            ids = [r.message.message_uuid]
            for k in range(4):
                sender = (a, b)[k % 2]
                ids.append(post(1 + (i + k) % 2, r.message_group_uuid, sender,
                                "m%d.%d" % (i, k)).message_uuid)
            posted[a.uuid] = posted[b.uuid] = ids
        want = dict((wid, posted[u]) for wid, u in who.items())
        want[twin] = posted[pairs[0][1].uuid]
        self.assertTrue(m.wait(lambda m: all(len(m.messages(w)) >= 5 for w in want), 20),
                        [(w, len(m.messages(w))) for w in want])
        time.sleep(1.5)  # one more poll: nothing repeated after the last
        for wid, ids in want.items():
            with self.subTest(wid=wid):
                self.assertEqual([x.message_uuid for x in m.messages(wid)], ids)
                kinds = m.kinds(wid)
                self.assertEqual(kinds[0], "ready")
                self.assertNotIn("resync", kinds)
                self.assertEqual(kinds[-1], "message_group")
        self.assertEqual(m.ends, {})
        self.assertIsNone(m.code)
        m.cancel()

    def test_resume_on_a_new_call_misses_nothing_and_repeats_nothing(self):
        """240 messages from four concurrent senders through both replicas;
        the call is dropped every 25 events of the watch and the watch opened
        again with its last token on a new call on the other replica (beside
        an idle watch of another user): none missed, none repeated."""
        b, idle = party(), party()
        posted, threads = four_senders(b)
        m = Many(1)
        m.open(5, idle.uuid)
        m.open(9, b.uuid)
        self.assertTrue(m.ready(5, 9))
        for t in threads:
            t.start()
        got, calls, replica = [], 0, 1
        deadline = time.time() + 120
        while time.time() < deadline:
            m.wait(lambda m: len(m.events.get(9, [])) >= 25 or ended(m), 2)
            m.cancel()  # joins the reader: nothing arrives after this
            self.assertIsNone(m.ends.get(9))
            self.assertNotIn("resync", m.kinds(9), m.resyncs(9))
            got += [x.message_uuid for x in m.messages(9)]
            tok = m.last_token(9)
            calls += 1
            if not any(t.is_alive() for t in threads) and set(got) >= set(posted):
                break
            replica = 3 - replica
            m = Many(replica)
            m.open(5, idle.uuid)
            m.open(9, b.uuid, tok)
            self.assertTrue(m.ready(5, 9))
            self.assertEqual(m.kinds(9)[0], "ready")
        all_once(self, posted, threads, got)
        self.assertGreater(calls, 3)

    def test_hundreds_of_resumes_on_one_call(self):
        """As a gateway after a drain: 200 watches reopened at once with their
        tokens on a new call (their resumes queue for the workers, a few at a
        time): every one gets `ready` and no resync, and what was posted
        meanwhile arrives once."""
        users = [party() for _ in range(200)]
        m = Many(1)
        for i, u in enumerate(users):
            m.open(i + 1, u.uuid)
        self.assertTrue(m.wait(lambda m: len(m.events) == 200, 20))
        toks = [m.last_token(i + 1) for i in range(len(users))]
        m.cancel()
        a, b = users[0], users[1]
        g = start_group(2, a, b, "while away").message_group_uuid
        m = Many(2)
        for i, u in enumerate(users):
            m.open(i + 1, u.uuid, toks[i])
        self.assertTrue(m.wait(lambda m: len(m.events) == 200, 30), len(m.events))
        self.assertTrue(m.wait(lambda m: len(m.messages(1)) == 1 and len(m.messages(2)) == 1, 8))
        post(1, g, b, "back")
        self.assertTrue(m.wait(lambda m: len(m.messages(1)) == 2 and len(m.messages(2)) == 2, 8))
        time.sleep(1.5)
        for i in range(200):
            kinds = m.kinds(i + 1)
            self.assertEqual(kinds[0], "ready")
            self.assertNotIn("resync", kinds)
        self.assertEqual([x.text for x in m.messages(2)], ["while away", "back"])
        self.assertEqual(m.ends, {})
        m.cancel()

    def test_token_moves_between_watchmany_and_watchevents(self):
        a, b = party(), party()
        g = start_group(1, a, b, "before").message_group_uuid
        m = Many(1)
        m.open(1, b.uuid)
        self.assertTrue(m.ready(1))
        first = post(2, g, a, "one").message_uuid
        self.assertTrue(m.wait(lambda m: len(m.messages(1)) == 1, 8))
        m.cancel()
        later = [post(1, g, a, "later %d" % i).message_uuid for i in range(3)]
        w = Watch(2, b.uuid, m.last_token(1))
        self.assertTrue(w.wait(lambda w: len(w.messages()) == 3, 8), w.kinds())
        self.assertEqual([x.message_uuid for x in w.messages()], later)
        self.assertNotIn(first, [x.message_uuid for x in w.messages()])
        w.cancel()
        last = post(2, g, a, "last").message_uuid
        m = Many(2)
        m.open(1, b.uuid, w.last_token())
        self.assertTrue(m.wait(lambda m: len(m.messages(1)) == 1, 8), m.kinds(1))
        self.assertEqual([x.message_uuid for x in m.messages(1)], [last])
        self.assertNotIn("resync", m.kinds(1))
        m.cancel()

    def test_close_of_one_watch_leaves_the_others(self):
        a, b, c = party(), party(), party()
        m = Many(1)
        m.open(1, a.uuid)
        m.open(2, b.uuid)
        m.open(3, c.uuid)
        self.assertTrue(m.ready(1, 2, 3))
        m.close(2)
        time.sleep(0.3)
        g1 = start_group(1, a, b, "to b").message_group_uuid
        g2 = start_group(2, c, a, "to a").message_group_uuid
        self.assertTrue(m.wait(lambda m: len(m.messages(1)) == 2 and len(m.messages(3)) == 1, 8))
        time.sleep(1.5)
        self.assertEqual(m.kinds(2), ["ready"])  # nothing after its close, and no end
        self.assertEqual(m.ends, {})
        self.assertEqual(sorted(x.message_group_uuid for x in m.messages(1)), sorted([g1, g2]))
        # The id is free again: a new watch under it starts with `ready`.
        with m.cv:
            m.events.pop(2)
        m.open(2, b.uuid)
        self.assertTrue(m.ready(2))
        post(2, g1, a, "again")
        self.assertTrue(m.wait(lambda m: len(m.messages(2)) == 1, 8), m.kinds(2))
        self.assertEqual(m.messages(2)[0].text, "again")
        # A close of an id that is not open is no error.
        m.close(12345)
        time.sleep(0.3)
        self.assertIsNone(m.code)
        m.cancel()

    def test_zero_or_duplicate_id_ends_the_call(self):
        a = party()
        for first, second in ((1, 0), (4, 4)):
            with self.subTest(second=second):
                m = Many(2)
                m.open(first, a.uuid)
                self.assertTrue(m.ready(first))
                m.open(second, party().uuid)
                self.assertTrue(m.wait(ended, 5))
                self.assertEqual(m.code, grpc.StatusCode.INVALID_ARGUMENT)
                self.assertIn("id", m.details)
                self.assertEqual(list(m.events), [first])
        m = Many(2)
        m.close(0)
        self.assertTrue(m.wait(ended, 5))
        self.assertEqual(m.code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_bad_open_ends_that_watch_only(self):
        a, b = party(), party()
        w = Watch(1, a.uuid)
        self.assertTrue(w.wait(has_ready))
        tok_a = w.last_token()
        w.cancel()
        m = Many(1)
        m.open(1, b.uuid)
        m.open(2, b.uuid, tok_a)                 # another user's token
        m.open(3, "not-a-uuid")
        m.open(4, b.uuid, tok_a[:-2] + ("AA" if not tok_a.endswith("AA") else "BB"))
        self.assertTrue(m.wait(lambda m: len(m.ends) == 3 and m.events.get(1)))
        for wid in (2, 3, 4):
            with self.subTest(wid=wid):
                self.assertEqual(m.ends[wid].code, grpc.StatusCode.INVALID_ARGUMENT.value[0])
                self.assertNotIn(wid, m.events)
                self.assertNotIn(tok_a[:40], m.ends[wid].message)
        self.assertIn("resume_token", m.ends[2].message)
        start_group(2, a, b, "still here")
        self.assertTrue(m.wait(lambda m: len(m.messages(1)) == 1, 8))
        self.assertIsNone(m.code)
        m.cancel()

    def test_half_close_ends_the_call_once_no_watch_is_left(self):
        a = party()
        m = Many(1)
        m.open(1, a.uuid)
        self.assertTrue(m.ready(1))
        m.half_close()
        time.sleep(0.5)
        self.assertIsNone(m.code)  # the watch goes on
        m.cancel()
        m = Many(1)
        m.half_close()
        self.assertTrue(m.wait(ended, 5))
        self.assertEqual(m.code, grpc.StatusCode.OK)

    def test_watches_count_against_the_replica_cap(self):
        """A replica with WATCH_MAX_STREAMS=4: one WatchEvents stream and
        three watches on a call fill it; a fourth watch ends at once with
        RESOURCE_EXHAUSTED (the call and the others go on), and gets in once
        another watch is closed."""
        addr = S.messages_replica(3, env={"WATCH_MAX_STREAMS": "4"})
        ADDR[3] = addr
        connect(3)
        try:
            w = Watch(3, party().uuid)
            self.assertTrue(w.wait(has_ready))
            m = Many(3)
            for wid in (1, 2, 3):
                m.open(wid, party().uuid)
            self.assertTrue(m.ready(1, 2, 3))
            m.open(4, party().uuid)
            self.assertTrue(m.wait(lambda m: 4 in m.ends))
            self.assertEqual(m.ends[4].code, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
            self.assertNotIn(4, m.events)
            extra = Watch(3, party().uuid)
            self.assertTrue(extra.wait(ended, 5))
            self.assertEqual(extra.code, grpc.StatusCode.RESOURCE_EXHAUSTED)
            m.close(2)
            time.sleep(0.3)
            with m.cv:
                m.ends.pop(4)  # the id is free again
            m.open(4, party().uuid)
            self.assertTrue(m.ready(4))
            self.assertIsNone(m.code)
            m.cancel()
            w.cancel()
        finally:
            CHANNELS.pop(3).close()
            self.assertEqual(S.terminate("messages-svc-3"), 0)

    def test_sigterm_ends_the_call_unavailable(self):
        a, b, c = party(), party(), party()
        g = start_group(1, a, b, "before").message_group_uuid
        m = Many(2)
        m.open(1, b.uuid)
        m.open(2, c.uuid)
        self.assertTrue(m.ready(1, 2))
        post(1, g, a, "one")
        self.assertTrue(m.wait(lambda m: len(m.messages(1)) == 1, 8))
        tok = m.last_token(1)
        t0 = time.time()
        self.assertEqual(S.terminate("messages-svc-2"), 0)  # no leak, all released
        self.assertTrue(m.wait(ended, 5))
        self.assertEqual(m.code, grpc.StatusCode.UNAVAILABLE)
        self.assertIn("reconnect", m.details)
        self.assertEqual(m.ends, {})
        self.assertLess(time.time() - t0, 10)
        later = [post(1, g, a, "after %d" % i).message_uuid for i in range(5)]
        m2 = Many(1)
        m2.open(1, b.uuid, tok)
        self.assertTrue(m2.wait(lambda m: len(m.messages(1)) == 5, 8), m2.kinds(1))
        self.assertEqual([x.message_uuid for x in m2.messages(1)], later)
        self.assertNotIn("resync", m2.kinds(1))
        m2.cancel()
        ADDR[2] = S.messages_replica(2, env={"WATCH_MAX_STREAMS_PER_USER": str(PER_USER_CAP)})
        CHANNELS[2].close()
        connect(2)


def reflected(replica, method_name):
    """MessagesService's method as the server's reflection alone describes
    it: (MethodDescriptorProto, a class for a message type by full name)."""
    refl = stubs.reflection_v1_pb2
    stub = stubs.reflection_v1_pb2_grpc.ServerReflectionStub(CHANNELS[replica])
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
    (m,) = [m for m in svc.method if m.name == method_name]
    factory = message_factory.MessageFactory(pool)
    get = getattr(message_factory, "GetMessageClass", None)

    def cls(name):
        d = pool.FindMessageTypeByName(name.lstrip("."))
        return get(d) if get else factory.GetPrototype(d)
    return m, cls


class Reflection(unittest.TestCase):
    def test_watch_through_reflection_alone(self):
        m, cls = reflected(2, "WatchEvents")
        self.assertTrue(m.server_streaming)
        self.assertFalse(m.client_streaming)
        req_cls, resp_cls = cls(m.input_type), cls(m.output_type)
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

    def test_watchmany_through_reflection_alone(self):
        m, cls = reflected(1, "WatchMany")
        self.assertTrue(m.server_streaming)
        self.assertTrue(m.client_streaming)
        ctl_cls, ev_cls = cls(m.input_type), cls(m.output_type)
        req_cls = cls("cruddur.messages.v1.WatchEventsRequest")
        call = CHANNELS[1].stream_stream("/%s/WatchMany" % SVC,
                                         request_serializer=ctl_cls.SerializeToString,
                                         response_deserializer=ev_cls.FromString)
        a, b = party(), party()
        q = queue.Queue()
        q.put(ctl_cls(id=3, open=req_cls(user_uuid=b.uuid)))
        it = call(iter(q.get, None), timeout=30)
        first = next(it)
        self.assertEqual(first.id, 3)
        self.assertEqual(first.event.WhichOneof("event"), "ready")
        self.assertTrue(first.event.resume_token)
        start_group(1, a, b, "seen by a dynamic client")
        ev = next(it)
        self.assertEqual(ev.id, 3)
        self.assertEqual(ev.event.WhichOneof("event"), "message")
        self.assertEqual(ev.event.message.text, "seen by a dynamic client")
        it.cancel()
        q.put(None)

if __name__ == "__main__":
    unittest.main(verbosity=2)
