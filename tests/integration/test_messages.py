"""messages-svc against dynalite (and a real users-svc for the table tools).

Run: CRUDDUR_BUILD_DIR=build/messages CRUDDUR_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_messages.py
One stack for the whole file (the services are started once); each test uses
fresh random users so tests do not see each other's conversations.
"""
import base64
import json
import os
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
from stack import Stack, stubs  # noqa: E402

import grpc  # noqa: E402

S = None        # the Stack
STUB = None     # MessagesService stub
CHANNEL = None
HAVE_USERS = False


def pb():
    return stubs.messages_pb2


def party(handle=None):
    u = str(uuid.uuid4())
    h = handle or ("u" + u[:8])
    return pb().Participant(uuid=u, handle=h, display_name="User " + h)


def code_of(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def start_group(a, b, text="hello", rid=""):
    return STUB.CreateMessageGroup(pb().CreateMessageGroupRequest(
        sender=a, recipient=b, text=text, request_id=rid), timeout=10)


def post(group, sender, text, rid=""):
    return STUB.CreateMessage(pb().CreateMessageRequest(
        message_group_uuid=group, sender=sender, text=text, request_id=rid), timeout=10)


def list_msgs(group, user, size=0, token=""):
    return STUB.ListMessages(pb().ListMessagesRequest(
        message_group_uuid=group, user_uuid=user, page_size=size, page_token=token), timeout=10)


def list_groups(user, size=0, token=""):
    return STUB.ListMessageGroups(pb().ListMessageGroupsRequest(
        user_uuid=user, page_size=size, page_token=token), timeout=10)


def all_messages(group, user, size=100):
    out, token = [], ""
    while True:
        r = list_msgs(group, user, size, token)
        out = list(r.messages) + out  # pages walk back in time
        token = r.next_page_token
        if not token:
            return out


def ts_us(t):
    return t.seconds * 1000000 + t.nanos // 1000


def setUpModule():
    global S, STUB, CHANNEL, HAVE_USERS
    S = Stack()
    try:
        S.postgres()
        S.dynalite()
        try:
            S.binary("users-svc")
            HAVE_USERS = True
        except Exception:
            HAVE_USERS = False
        if HAVE_USERS:
            S.users_svc(migrate=True, seed=True)
        S.messages_svc(schema=True)
    except Exception:
        S.__exit__(*sys.exc_info())
        raise
    CHANNEL = grpc.insecure_channel(S.messages_addr)
    STUB = stubs.messages_pb2_grpc.MessagesServiceStub(CHANNEL)


def tearDownModule():
    CHANNEL.close()
    S.__exit__(None, None, None)  # raises when a binary did not exit cleanly (leaks, UB)


class Conversations(unittest.TestCase):
    def test_create_group_and_list_both_sides(self):
        a, b = party(), party()
        r = start_group(a, b, "first words")
        self.assertTrue(r.created)
        g = r.message_group_uuid
        self.assertEqual(r.message.message_group_uuid, g)
        self.assertEqual(r.message.text, "first words")
        self.assertEqual(r.message.sender.uuid, a.uuid)
        for me, other in ((a, b), (b, a)):
            groups = list_groups(me.uuid).groups
            self.assertEqual(len(groups), 1)
            self.assertEqual(groups[0].message_group_uuid, g)
            self.assertEqual(groups[0].other.uuid, other.uuid)
            self.assertEqual(groups[0].other.handle, other.handle)
            self.assertEqual(groups[0].other.display_name, other.display_name)
            self.assertEqual(groups[0].last_message, "first words")
            msgs = list_msgs(g, me.uuid).messages
            self.assertEqual([m.text for m in msgs], ["first words"])
        # Starting again from the other side posts into the same group.
        r2 = start_group(b, a, "reply via create")
        self.assertFalse(r2.created)
        self.assertEqual(r2.message_group_uuid, g)
        self.assertEqual(len(list_msgs(g, a.uuid).messages), 2)

    def test_create_message_returns_its_own_uuid(self):
        a, b = party(), party()
        g = start_group(a, b).message_group_uuid
        r = post(g, b, "answer").message
        self.assertNotEqual(r.message_uuid, b.uuid)
        uuid.UUID(r.message_uuid)
        self.assertEqual(r.sender.uuid, b.uuid)
        self.assertEqual(r.message_group_uuid, g)
        stored = list_msgs(g, a.uuid).messages
        self.assertEqual(stored[-1].message_uuid, r.message_uuid)
        self.assertEqual(ts_us(stored[-1].created_at), ts_us(r.created_at))

    def test_concurrent_writers_lose_nothing(self):
        a, b = party(), party()
        g = start_group(a, b, "start").message_group_uuid
        errors = []

        def writer(k):
            who = a if k % 2 == 0 else b
            for i in range(25):
                try:
                    post(g, who, "w%d-%02d" % (k, i))
                except grpc.RpcError as e:
                    errors.append(e.code())

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        msgs = all_messages(g, a.uuid)
        self.assertEqual(len(msgs), 201)
        texts = [m.text for m in msgs[1:]]
        self.assertEqual(len(set(texts)), 200)
        self.assertEqual(len({m.message_uuid for m in msgs}), 201)
        times = [ts_us(m.created_at) for m in msgs]
        self.assertEqual(times, sorted(times))
        # Each writer's own messages are in its sending order.
        for k in range(8):
            mine = [t for t in texts if t.startswith("w%d-" % k)]
            self.assertEqual(mine, sorted(mine))
        # Both previews show the newest message.
        for me in (a, b):
            self.assertEqual(list_groups(me.uuid).groups[0].last_message, msgs[-1].text)

    def test_request_id_retry_stores_one(self):
        a, b = party(), party()
        r1 = start_group(a, b, "hi once", rid="grp-1")
        r2 = start_group(a, b, "hi once", rid="grp-1")
        self.assertTrue(r1.created)
        self.assertTrue(r2.created)  # the recorded answer
        self.assertEqual(r1.message.message_uuid, r2.message.message_uuid)
        g = r1.message_group_uuid
        m1 = post(g, a, "only one", rid="req-42").message
        m2 = post(g, a, "only one", rid="req-42").message
        self.assertEqual(m1.message_uuid, m2.message_uuid)
        self.assertEqual(ts_us(m1.created_at), ts_us(m2.created_at))
        texts = [m.text for m in list_msgs(g, b.uuid).messages]
        self.assertEqual(texts, ["hi once", "only one"])
        # Concurrent retries of one request: still one message.
        res = []
        ths = [threading.Thread(target=lambda: res.append(post(g, a, "burst", rid="req-43")))
               for _ in range(6)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        self.assertEqual(len({r.message.message_uuid for r in res}), 1)
        self.assertEqual([m.text for m in list_msgs(g, b.uuid).messages].count("burst"), 1)
        # A request id reused for another group is refused.
        c = party()
        g2 = start_group(a, c).message_group_uuid
        self.assertEqual(code_of(post, g2, a, "other", rid="req-42"),
                         grpc.StatusCode.INVALID_ARGUMENT)
        # Another sender may use the same request id.
        self.assertEqual(post(g, b, "b's own", rid="req-42").message.sender.uuid, b.uuid)

    def test_simultaneous_creation_one_group(self):
        for round_ in range(10):
            a, b = party(), party()
            barrier = threading.Barrier(2)
            results, errors = [], []

            def go(s, r):
                barrier.wait()
                try:
                    results.append(start_group(s, r, "hello from " + s.handle))
                except grpc.RpcError as e:
                    errors.append(e.code())

            ts = [threading.Thread(target=go, args=(a, b)), threading.Thread(target=go, args=(b, a))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(errors, [])
            self.assertEqual(len({r.message_group_uuid for r in results}), 1, "round %d" % round_)
            self.assertEqual(sum(1 for r in results if r.created), 1, "round %d" % round_)
            g = results[0].message_group_uuid
            for me in (a, b):
                groups = list_groups(me.uuid).groups
                self.assertEqual([x.message_group_uuid for x in groups], [g])
            self.assertEqual(len(list_msgs(g, a.uuid).messages), 2)

    def test_non_member_gets_not_found(self):
        a, b, eve = party(), party(), party()
        g = start_group(a, b).message_group_uuid
        missing = str(uuid.uuid4())
        for group in (g, missing):
            with self.assertRaises(grpc.RpcError) as cm:
                list_msgs(group, eve.uuid)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
            details = cm.exception.details()
            with self.assertRaises(grpc.RpcError) as cm2:
                post(group, eve, "let me in")
            self.assertEqual(cm2.exception.code(), grpc.StatusCode.NOT_FOUND)
            self.assertEqual(cm2.exception.details(), details)  # no oracle
        # Nothing leaked into the participants' previews.
        self.assertEqual(list_groups(a.uuid).groups[0].last_message, "hello")
        self.assertEqual([m.text for m in list_msgs(g, a.uuid).messages], ["hello"])

    def test_member_recognised_immediately(self):
        for _ in range(5):
            a, b = party(), party()
            g = start_group(a, b).message_group_uuid
            self.assertEqual(len(list_msgs(g, b.uuid).messages), 1)
            self.assertEqual(post(g, b, "right away").message.message_group_uuid, g)

    def test_pagination_walks_all_history(self):
        a, b = party(), party()
        g = start_group(a, b, "m00").message_group_uuid
        for i in range(1, 45):
            post(g, a if i % 2 else b, "m%02d" % i)
        pages, token = [], ""
        while True:
            r = list_msgs(g, b.uuid, 20, token)
            pages.append([m.text for m in r.messages])
            token = r.next_page_token
            if not token:
                break
        self.assertEqual([len(p) for p in pages], [20, 20, 5])
        self.assertEqual(pages[0], ["m%02d" % i for i in range(25, 45)])
        self.assertEqual(pages[1], ["m%02d" % i for i in range(5, 25)])
        self.assertEqual(pages[2], ["m%02d" % i for i in range(0, 5)])
        # Default page size is 20; exactly one full page has no token.
        self.assertEqual(len(list_msgs(g, a.uuid).messages), 20)
        c, d = party(), party()
        g2 = start_group(c, d, "x00").message_group_uuid
        for i in range(1, 20):
            post(g2, c, "x%02d" % i)
        r = list_msgs(g2, d.uuid, 20)
        self.assertEqual(len(r.messages), 20)
        self.assertEqual(r.next_page_token, "")

    def test_page_tokens_are_tamper_proof(self):
        a, b, c = party(), party(), party()
        g = start_group(a, b, "t0").message_group_uuid
        for i in range(1, 5):
            post(g, a, "t%d" % i)
        tok = list_msgs(g, a.uuid, 2).next_page_token
        self.assertTrue(tok)
        g2 = start_group(a, c, "other").message_group_uuid
        payload, mac = tok.split(".")
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        forged_payload = raw.replace(a.uuid.encode(), c.uuid.encode())
        forged = base64.urlsafe_b64encode(forged_payload).decode().rstrip("=") + "." + mac
        flipped = tok[:-1] + ("A" if tok[-1] != "A" else "B")
        cases = [
            ("other user", lambda: list_msgs(g, b.uuid, 2, tok)),
            ("other group", lambda: list_msgs(g2, a.uuid, 2, tok)),
            ("group list", lambda: list_groups(a.uuid, 2, tok)),
            ("forged caller", lambda: list_msgs(g, c.uuid, 2, forged)),
            ("flipped mac", lambda: list_msgs(g, a.uuid, 2, flipped)),
            ("garbage", lambda: list_msgs(g, a.uuid, 2, "not-a-token")),
            ("huge", lambda: list_msgs(g, a.uuid, 2, "A" * 5000)),
        ]
        for name, fn in cases:
            self.assertEqual(code_of(fn), grpc.StatusCode.INVALID_ARGUMENT, name)
        # The genuine token still works for its own list and caller.
        self.assertEqual([m.text for m in list_msgs(g, a.uuid, 2, tok).messages], ["t1", "t2"])

    def test_group_list_order_and_monotonic_preview(self):
        me = party()
        others = [party() for _ in range(3)]
        gs = [start_group(me, o, "hi %d" % i).message_group_uuid for i, o in enumerate(others)]
        self.assertEqual([x.message_group_uuid for x in list_groups(me.uuid).groups], gs[::-1])
        old = post(gs[0], me, "old news", rid="mono-1").message
        self.assertEqual(list_groups(me.uuid).groups[0].message_group_uuid, gs[0])
        post(gs[0], others[0], "newest")
        # Retrying the older request does not move the preview backwards.
        again = post(gs[0], me, "old news", rid="mono-1").message
        self.assertEqual(again.message_uuid, old.message_uuid)
        for who in (me, others[0]):
            top = list_groups(who.uuid).groups[0]
            self.assertEqual(top.message_group_uuid, gs[0])
            self.assertEqual(top.last_message, "newest")
        post(gs[1], others[1], "bump")
        order = [x.message_group_uuid for x in list_groups(me.uuid).groups]
        self.assertEqual(order, [gs[1], gs[0], gs[2]])
        # Group list pagination: 1 + 1 + 1, no overlap.
        seen, token = [], ""
        while True:
            r = list_groups(me.uuid, 1, token)
            seen += [x.message_group_uuid for x in r.groups]
            token = r.next_page_token
            if not token:
                break
        self.assertEqual(seen, order)
        times = [ts_us(x.last_message_at) for x in list_groups(me.uuid).groups]
        self.assertEqual(times, sorted(times, reverse=True))

    def test_validation_codes(self):
        a, b = party(), party()
        g = start_group(a, b).message_group_uuid
        INV = grpc.StatusCode.INVALID_ARGUMENT
        bad_sender = pb().Participant(uuid=a.uuid, handle="no spaces!", display_name="A")
        cases = [
            (lambda: post(g, a, ""), INV),
            (lambda: post(g, a, " \n\t"), INV),
            (lambda: post(g, a, "x" * 1025), INV),
            (lambda: post(g, bad_sender, "x"), INV),
            (lambda: post(g.upper(), a, "x"), INV),
            (lambda: post(g, a, "x", rid="bad id"), INV),
            (lambda: start_group(a, pb().Participant(uuid=a.uuid, handle="me", display_name="Me")), INV),
            (lambda: list_msgs(g, a.uuid, 101), INV),
            (lambda: list_groups("nope"), INV),
        ]
        for i, (fn, want) in enumerate(cases):
            self.assertEqual(code_of(fn), want, "case %d" % i)
        self.assertEqual(post(g, a, "\U0001F600" * 1024).message.text, "\U0001F600" * 1024)


@unittest.skipUnless(os.path.exists(os.path.join(os.environ["CRUDDUR_BUILD_DIR"], "users-svc", "users-svc")),
                     "users-svc is not built")
class Tools(unittest.TestCase):
    def scan_items(self):
        r = S.run("messages-svc", "scan", "--json", check=True)
        return json.loads(r.stdout)

    def test_seed_twice_changes_nothing_and_tools_read_it(self):
        r1 = S.run("messages-svc", "seed", "--json", check=True)
        first = json.loads(r1.stdout)
        before = self.scan_items()
        r2 = S.run("messages-svc", "seed", "--json", check=True)
        second = json.loads(r2.stdout)
        after = self.scan_items()
        key = lambda it: (it["pk"], it["sk"])
        self.assertEqual(sorted(before, key=key), sorted(after, key=key))
        self.assertEqual(first[0]["message_group_uuid"], second[0]["message_group_uuid"])
        self.assertGreaterEqual(first[0]["messages"], 30)
        self.assertEqual(second[0]["added"], 0)
        self.assertEqual(second[1]["added"], 0)
        g = first[0]["message_group_uuid"]

        # The app sees the seeded conversation (same model).
        users = stubs.users_pb2_grpc.UsersServiceStub(grpc.insecure_channel(S.users_addr))
        found = users.BatchGetUsers(stubs.users_pb2.BatchGetUsersRequest(
            handles=["andrewbrown", "bayko"]), timeout=10).users
        ids = {u.handle: u.uuid for u in found}
        msgs = all_messages(g, ids["bayko"])
        self.assertEqual(len(msgs), first[0]["messages"])
        now_us = int(time.time() * 1e6)
        self.assertTrue(all(ts_us(m.created_at) < now_us for m in msgs), "seeded in the past")
        self.assertEqual({m.sender.handle for m in msgs}, {"andrewbrown", "bayko"})
        top = list_groups(ids["andrewbrown"]).groups[0]
        self.assertEqual(top.message_group_uuid, g)
        self.assertEqual(top.last_message, msgs[-1].text)

        conv = S.run("messages-svc", "get-conversation", g, check=True).stdout.splitlines()
        self.assertEqual(len(conv), len(msgs))
        self.assertTrue(conv[0].startswith("andrewbrown "))
        self.assertRegex(conv[0], r"^andrewbrown\s+\d{4}-\d\d-\d\d \d\d:\d\d [AP]M\s+\S")
        long_lines = [l for l in conv if l.endswith("...")]
        self.assertTrue(long_lines)
        cj = json.loads(S.run("messages-svc", "get-conversation", g, "--json", check=True).stdout)
        self.assertEqual([m["message"] for m in cj["messages"]], [m.text for m in msgs])

        lc = S.run("messages-svc", "list-conversations", "bayko", check=True).stdout.splitlines()
        self.assertEqual(lc[0], "my-uuid: " + ids["bayko"])
        self.assertEqual(len(lc), 3)  # andrewbrown and londo
        lj = json.loads(S.run("messages-svc", "list-conversations", "bayko", "--json", check=True).stdout)
        self.assertEqual({c["handle"] for c in lj["conversations"]}, {"andrewbrown", "londo"})
        bad = S.run("messages-svc", "list-conversations", "nobody_here")
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("nobody_here", bad.stderr)

def ddb(op, body):
    """A raw DynamoDB call to dynalite (it needs SigV4-shaped headers, not valid ones)."""
    import urllib.request
    req = urllib.request.Request(S.ddb_url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810." + op,
        "X-Amz-Date": "20260101T000000Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/"
                         "aws4_request, SignedHeaders=host, Signature=00"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


class CrashRepair(unittest.TestCase):
    """States a crash between two writes can leave behind, made by hand."""

    def test_missing_group_row_is_recreated_by_next_message(self):
        a, b = party(), party()
        g = start_group(a, b, "one").message_group_uuid
        # Crash between the two row updates of a start: b's row never written.
        ddb("DeleteItem", {"TableName": "cruddur-messages",
                           "Key": {"pk": {"S": "GRP#" + b.uuid}, "sk": {"S": g}}})
        self.assertEqual(list(list_groups(b.uuid).groups), [])
        post(g, a, "two")
        rows = list_groups(b.uuid).groups
        self.assertEqual([r.message_group_uuid for r in rows], [g])
        self.assertEqual(rows[0].other.uuid, a.uuid)
        self.assertEqual(rows[0].last_message, "two")
        self.assertEqual([m.text for m in list_msgs(g, b.uuid).messages], ["one", "two"])

    def test_pair_without_rows_is_completed_by_next_start(self):
        a, b = party(), party()
        g = str(uuid.uuid4())
        lo, hi = sorted([a.uuid, b.uuid])
        # Crash right after the pair claim: no rows, no message.
        ddb("PutItem", {"TableName": "cruddur-messages", "Item": {
            "pk": {"S": "PAIR#%s#%s" % (lo, hi)}, "sk": {"S": "PAIR"}, "group_uuid": {"S": g}}})
        self.assertEqual(code_of(list_msgs, g, a.uuid), grpc.StatusCode.NOT_FOUND)
        r = start_group(b, a, "finally")
        self.assertFalse(r.created)
        self.assertEqual(r.message_group_uuid, g)
        for me in (a, b):
            self.assertEqual([x.message_group_uuid for x in list_groups(me.uuid).groups], [g])
        self.assertEqual([m.text for m in list_msgs(g, a.uuid).messages], ["finally"])

    def test_group_rows_are_never_duplicated(self):
        a, b = party(), party()
        g = start_group(a, b, "x").message_group_uuid
        for i in range(5):
            post(g, a if i % 2 else b, "m%d" % i)
        start_group(b, a, "again")
        for me in (a, b):
            out = ddb("Query", {"TableName": "cruddur-messages",
                                "KeyConditionExpression": "pk = :p",
                                "ExpressionAttributeValues": {":p": {"S": "GRP#" + me.uuid}},
                                "ConsistentRead": True})
            self.assertEqual(out["Count"], 1)
        # The tools' GSI holds exactly the two group rows of the conversation.
        out = ddb("Query", {"TableName": "cruddur-messages", "IndexName": "message-group-sk-index",
                            "KeyConditionExpression": "message_group_uuid = :g",
                            "ExpressionAttributeValues": {":g": {"S": g}}})
        self.assertEqual(sorted(i["pk"]["S"] for i in out["Items"]),
                         sorted(["GRP#" + a.uuid, "GRP#" + b.uuid]))


def spawn_messages_svc(extra, wait=True):
    """Another messages-svc on the module's dynalite, with extra env, output
    piped; returns (process, address), once it accepts calls when `wait`."""
    import socket
    import subprocess
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    env = S.env()
    env.update(extra)
    env["MESSAGES_LISTEN"] = "127.0.0.1:%d" % port
    p = subprocess.Popen([S.binary("messages-svc")], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    addr = "127.0.0.1:%d" % port
    if wait:
        with grpc.insecure_channel(addr) as ch:
            grpc.channel_ready_future(ch).result(timeout=15)
    return p, addr


def stop_messages_svc(test, p):
    p.terminate()
    out, _ = p.communicate(timeout=15)
    test.assertEqual(p.returncode, 0, out[-2000:])


def expire_request(sender_uuid, rid):
    """What a record looks like after its window when DynamoDB's TTL has not
    deleted it yet (DynamoDB deletes lazily, dynalite never)."""
    ddb("UpdateItem", {"TableName": "cruddur-messages",
                       "Key": {"pk": {"S": "REQ#" + sender_uuid}, "sk": {"S": rid}},
                       "UpdateExpression": "SET expires_at = :t",
                       "ConditionExpression": "attribute_exists(pk)",
                       "ExpressionAttributeValues": {":t": {"N": str(int(time.time()) - 5)}}})


def concurrently(n, fn):
    res, errs = [], []

    def run():
        try:
            res.append(fn())
        except Exception as e:  # noqa: BLE001 (reported below)
            errs.append(e)
    ths = [threading.Thread(target=run) for _ in range(n)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if errs:
        raise errs[0]
    return res


class Idempotency(unittest.TestCase):
    def test_expired_request_id_is_a_new_request(self):
        a, b = party(), party()
        g = start_group(a, b, "start").message_group_uuid
        first = post(g, a, "monday", rid="daily").message
        self.assertEqual(post(g, a, "monday", rid="daily").message.message_uuid,
                         first.message_uuid)
        expire_request(a.uuid, "daily")
        second = post(g, a, "tuesday", rid="daily").message
        self.assertNotEqual(second.message_uuid, first.message_uuid)
        self.assertEqual(second.text, "tuesday")
        self.assertEqual([m.text for m in list_msgs(g, b.uuid).messages],
                         ["start", "monday", "tuesday"])
        # The new record holds the key for a new window: a retry now is the
        # second message again.
        self.assertEqual(post(g, a, "tuesday", rid="daily").message.message_uuid,
                         second.message_uuid)
        # Concurrent retries of an expired key: exactly one new message.
        expire_request(a.uuid, "daily")
        res = concurrently(8, lambda: post(g, a, "wednesday", rid="daily").message.message_uuid)
        self.assertEqual(len(set(res)), 1, res)
        self.assertNotIn(res[0], (first.message_uuid, second.message_uuid))
        self.assertEqual([m.text for m in list_msgs(g, b.uuid).messages],
                         ["start", "monday", "tuesday", "wednesday"])
        # The same for CreateMessageGroup.
        c = party()
        r1 = start_group(a, c, "hello c", rid="intro")
        expire_request(a.uuid, "intro")
        r2 = start_group(a, c, "hello again", rid="intro")
        self.assertEqual(r2.message_group_uuid, r1.message_group_uuid)
        self.assertNotEqual(r2.message.message_uuid, r1.message.message_uuid)
        self.assertFalse(r2.created)
        self.assertEqual([m.text for m in list_msgs(r1.message_group_uuid, c.uuid).messages],
                         ["hello c", "hello again"])

    def test_window_is_configurable(self):
        p, addr = spawn_messages_svc({"IDEMPOTENCY_WINDOW_S": "5"})
        try:
            with grpc.insecure_channel(addr) as ch:
                stub = stubs.messages_pb2_grpc.MessagesServiceStub(ch)

                def send(text):
                    return stub.CreateMessage(pb().CreateMessageRequest(
                        message_group_uuid=g, sender=a, text=text, request_id="k1"),
                        timeout=10).message
                a, b = party(), party()
                g = start_group(a, b, "start").message_group_uuid
                t0 = int(time.time())
                first = send("one")
                t1 = int(time.time())
                item = ddb("GetItem", {"TableName": "cruddur-messages", "ConsistentRead": True,
                                       "Key": {"pk": {"S": "REQ#" + a.uuid}, "sk": {"S": "k1"}}})
                self.assertTrue(t0 + 5 <= int(item["Item"]["expires_at"]["N"]) <= t1 + 5, item)
                # Within the window, concurrent retries store exactly one.
                res = concurrently(6, lambda: send("one").message_uuid)
                self.assertEqual(set(res), {first.message_uuid})
                self.assertLess(time.time(), t0 + 5, "the retries must run inside the window")
                time.sleep(max(0.0, t1 + 6.5 - time.time()))
                second = send("two")
                self.assertNotEqual(second.message_uuid, first.message_uuid)
                self.assertEqual([m.text for m in list_msgs(g, b.uuid).messages],
                                 ["start", "one", "two"])
        finally:
            stop_messages_svc(self, p)
        for bad in ("0", "-1", "x", "99999999999"):
            env = S.env()
            env.update({"IDEMPOTENCY_WINDOW_S": bad, "MESSAGES_LISTEN": "127.0.0.1:0"})
            import subprocess
            r = subprocess.run([S.binary("messages-svc")], env=env, capture_output=True,
                               text=True, timeout=15)
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assertIn("IDEMPOTENCY_WINDOW_S", r.stderr)


class Names(unittest.TestCase):
    """Display names are copied into the group rows; a rename must win."""

    def test_renamed_user_name_converges(self):
        a, b = party(), party()
        g = start_group(a, b, "hi b").message_group_uuid
        post(g, b, "hi a")
        post(g, a, "how are you")  # fills this replica's cache both ways
        b_new = pb().Participant(uuid=b.uuid, handle=b.handle, display_name="B Renamed")
        post(g, b_new, "I have a new name")
        rows = list_groups(a.uuid).groups
        self.assertEqual(rows[0].other.display_name, "B Renamed")
        # a replies: their row must keep b's current name, not the cached one.
        post(g, a, "nice name")
        self.assertEqual(list_groups(a.uuid).groups[0].other.display_name, "B Renamed")
        post(g, a, "really")
        self.assertEqual(list_groups(a.uuid).groups[0].other.display_name, "B Renamed")
        self.assertEqual(list_groups(b.uuid).groups[0].other.display_name, a.display_name)
        # a's row lost (a crash): a's next message recreates it whole from the
        # cache, which b's post refreshed on this replica.
        ddb("DeleteItem", {"TableName": "cruddur-messages",
                           "Key": {"pk": {"S": "GRP#" + a.uuid}, "sk": {"S": g}}})
        post(g, a, "still here")
        rows = list_groups(a.uuid).groups
        self.assertEqual((rows[0].other.uuid, rows[0].other.handle, rows[0].other.display_name,
                          rows[0].last_message), (b.uuid, b.handle, "B Renamed", "still here"))
        # b renames again while a newer message is already shown on a's row
        # (a's reply won the race): the preview stays, the name still moves
        # on; a name older than the one shown (name_sk) does not.
        key = {"pk": {"S": "GRP#" + a.uuid}, "sk": {"S": g}}
        row = ddb("GetItem", {"TableName": "cruddur-messages", "Key": key,
                              "ConsistentRead": True})["Item"]
        future = "2099" + row["last_sk"]["S"][4:]
        ddb("UpdateItem", {"TableName": "cruddur-messages", "Key": key,
                           "UpdateExpression": "SET last_sk = :f, message = :m",
                           "ExpressionAttributeValues": {":f": {"S": future},
                                                         ":m": {"S": "from the future"}}})
        b_again = pb().Participant(uuid=b.uuid, handle=b.handle, display_name="B Again")
        post(g, b_again, "renamed twice")
        rows = list_groups(a.uuid).groups
        self.assertEqual((rows[0].other.display_name, rows[0].last_message),
                         ("B Again", "from the future"))
        ddb("UpdateItem", {"TableName": "cruddur-messages", "Key": key,
                           "UpdateExpression": "SET name_sk = :f",
                           "ExpressionAttributeValues": {":f": {"S": future}}})
        post(g, b_new, "stale name")
        self.assertEqual(list_groups(a.uuid).groups[0].other.display_name, "B Again")
        ddb("UpdateItem", {"TableName": "cruddur-messages", "Key": key,
                           "UpdateExpression": "SET last_sk = :s, name_sk = :s",
                           "ExpressionAttributeValues": {":s": row["last_sk"]}})
        # A second replica (its own cache, filled before the rename) agrees.
        p, addr = spawn_messages_svc({})
        try:
            with grpc.insecure_channel(addr) as ch:
                stub = stubs.messages_pb2_grpc.MessagesServiceStub(ch)

                def send(sender, text):
                    stub.CreateMessage(pb().CreateMessageRequest(
                        message_group_uuid=g, sender=sender, text=text), timeout=10)
                c, d = party(), party()
                g2 = start_group(c, d, "x").message_group_uuid
                stub.CreateMessage(pb().CreateMessageRequest(
                    message_group_uuid=g2, sender=d, text="y"), timeout=10)
                send(a, "from replica 2")
                # d is renamed; the rename reaches replica 1, c answers on replica 2.
                d_new = pb().Participant(uuid=d.uuid, handle=d.handle, display_name="D Renamed")
                post(g2, d_new, "renamed")
                stub.CreateMessage(pb().CreateMessageRequest(
                    message_group_uuid=g2, sender=c, text="ok"), timeout=10)
                self.assertEqual(list_groups(c.uuid).groups[0].other.display_name, "D Renamed")
                self.assertEqual(list_groups(a.uuid).groups[0].other.display_name, "B Again")
        finally:
            stop_messages_svc(self, p)


class Schema(unittest.TestCase):
    def test_schema_load_is_idempotent(self):
        r = S.run("messages-svc", "schema-load", "--json", check=True)
        self.assertFalse(json.loads(r.stdout)["created"])
        tables = json.loads(S.run("messages-svc", "list-tables", "--json", check=True).stdout)
        self.assertIn("cruddur-messages", tables)
        r = S.run("messages-svc", "drop", "cruddur-messages",
                  env={"AWS_ENDPOINT_URL_DYNAMODB": "https://dynamodb.us-east-1.amazonaws.com"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("--yes", r.stderr)


class Startup(unittest.TestCase):
    def spawn(self, extra):
        return spawn_messages_svc(extra, wait=False)

    def test_missing_table_is_unavailable_and_not_serving(self):
        p, addr = self.spawn({"DDB_MESSAGE_TABLE": "no-such-table"})
        try:
            h = stubs.health_pb2
            with grpc.insecure_channel(addr) as ch:
                grpc.channel_ready_future(ch).result(timeout=10)
                st = stubs.health_pb2_grpc.HealthStub(ch).Check(h.HealthCheckRequest(service=""),
                                                                  timeout=5).status
                self.assertNotEqual(st, h.HealthCheckResponse.SERVING)
                stub = stubs.messages_pb2_grpc.MessagesServiceStub(ch)
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.ListMessageGroups(pb().ListMessageGroupsRequest(user_uuid=str(uuid.uuid4())),
                                           timeout=5)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
                self.assertIn("schema-load", cm.exception.details())
        finally:
            p.terminate()
            out, _ = p.communicate(timeout=15)
        self.assertEqual(p.returncode, 0, out[-2000:])

    def test_bad_configuration_exits_2(self):
        for extra in ({"PAGE_TOKEN_SECRET": "too-short"}, {"DDB_MESSAGE_TABLE": "x"},
                      {"RPC_WORKERS": "lots"}):
            p, _ = self.spawn(extra)
            out, _ = p.communicate(timeout=15)
            self.assertEqual(p.returncode, 2, (extra, out))
            self.assertEqual(len(out.strip().splitlines()), 1, out)


class ZOutage(unittest.TestCase):
    """Runs last (unittest sorts classes by name): stops and restarts dynalite."""

    def test_dynalite_down_then_back(self):
        a, b = party(), party()
        g = start_group(a, b, "before").message_group_uuid
        S.kill("dynalite")
        try:
            t0 = time.time()
            c = party()
            for fn in (lambda: post(g, a, "during"), lambda: list_groups(b.uuid),
                       lambda: list_msgs(g, c.uuid), lambda: start_group(c, a)):
                self.assertEqual(code_of(fn), grpc.StatusCode.UNAVAILABLE)
            self.assertLess(time.time() - t0, 5.0, "failures must be fast")
        finally:
            S.restart("dynalite")
        t0 = time.time()
        while True:
            try:
                post(g, b, "after")
                break
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE)
                self.assertLess(time.time() - t0, 5.0, "no recovery within 5 s")
                time.sleep(0.1)
        self.assertEqual([m.text for m in list_msgs(g, a.uuid).messages], ["before", "after"])
        h = stubs.health_pb2
        with grpc.insecure_channel(S.messages_addr) as ch:
            deadline = time.time() + 5
            while True:
                st = stubs.health_pb2_grpc.HealthStub(ch).Check(h.HealthCheckRequest(service=""),
                                                                  timeout=2).status
                if st == h.HealthCheckResponse.SERVING or time.time() > deadline:
                    break
                time.sleep(0.2)
            self.assertEqual(st, h.HealthCheckResponse.SERVING)


if __name__ == "__main__":
    unittest.main(verbosity=2)
