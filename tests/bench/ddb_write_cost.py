"""dynalite's own CPU per DynamoDB write, by the kind of write a post makes.

    /usr/bin/python3 tests/bench/ddb_write_cost.py [REQUESTS_PER_KIND] [CONNECTIONS]

Not a test, and not part of tests/bench/run: it backs the README's account
of POST /api/messages (issue 16). It starts dynalite alone (tests/stack) with
the cruddur-messages table (both indexes), then, kind by kind, sends
REQUESTS_PER_KIND requests (default 3000) over CONNECTIONS keep-alive
connections (default 8, one thread each, so dynalite stays busy) and prints
dynalite's CPU time (/proc, user + system) per request:
  - the message PutItem of a post, attribute_not_exists(pk): new key each
    time, no index attribute (the raw baseline of tests/bench/gateway.sh);
  - the same PutItem without its condition;
  - a group row's conditional PutItem (last_sk, message_group_uuid: one LSI
    and one GSI entry move) and the same without its condition;
  - a group row's conditional UpdateItem with if_not_exists (the other
    participant's row of a post);
  - a GetItem, for scale;
  - a whole post: the message PutItem and both group rows' writes, in order.
Group rows are the two rows of one conversation, rewritten by every request,
as a conversation's posts rewrite them.
"""
import http.client
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "stack"))
sys.path.insert(0, HERE)
from benchlib import cpu_s  # noqa: E402
from stack import Stack, aws_json  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
CONNS = int(sys.argv[2]) if len(sys.argv) > 2 else 8
TABLE = "cruddur-messages"
GROUP = "0b8b2e2c-0000-4000-8000-000000000001"


def S(v):
    return {"S": v}


def headers(op):
    day = time.strftime("%Y%m%d", time.gmtime())
    return {"Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810." + op,
            "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
            # dynalite wants a SigV4-shaped header and never checks the signature.
            "Authorization": "AWS4-HMAC-SHA256 Credential=local/%s/us-east-1/dynamodb/"
                             "aws4_request, SignedHeaders=host, Signature=0" % day}


def sk(i):
    return "2026-12-05T10:%02d:%02d.%06dZ#%08d" % (i // 60000000 % 60, i // 1000000 % 60,
                                                 i % 1000000, i)


def message_put(i, cond=True):
    b = {"TableName": TABLE, "Item": {
        "pk": S("MSG#" + GROUP), "sk": S(sk(i)), "message_uuid": S("%036d" % i),
        "message": S("benchmark message"), "user_uuid": S("00000000-0000-4000-8000-000000000001"),
        "user_handle": S("andrewbrown"), "user_display_name": S("Andrew Brown"),
        "created_at": S(sk(i)[:27])}}
    if cond:
        b["ConditionExpression"] = "attribute_not_exists(pk)"
    return "PutItem", b


def group_put(i, cond=True):
    b = {"TableName": TABLE, "Item": {
        "pk": S("GRP#00000000-0000-4000-8000-000000000001"), "sk": S(GROUP),
        "message_group_uuid": S(GROUP), "user_uuid": S("00000000-0000-4000-8000-000000000002"),
        "user_handle": S("bayko"), "user_display_name": S("Andrew Bayko"),
        "message": S("benchmark message"), "last_sk": S(sk(i)),
        "last_message_at": S(sk(i)[:27]), "name_sk": S(sk(i))}}
    if cond:
        b["ConditionExpression"] = "attribute_not_exists(last_sk) OR last_sk < :s"
        b["ExpressionAttributeValues"] = {":s": S(sk(i))}
    return "PutItem", b


def group_update(i):
    return "UpdateItem", {
        "TableName": TABLE,
        "Key": {"pk": S("GRP#00000000-0000-4000-8000-000000000002"), "sk": S(GROUP)},
        "UpdateExpression": "SET message_group_uuid = :g, #msg = :m, last_sk = :s, "
                            "last_message_at = :t, user_uuid = if_not_exists(user_uuid, :ou), "
                            "user_handle = if_not_exists(user_handle, :oh), "
                            "user_display_name = if_not_exists(user_display_name, :on), "
                            "name_sk = if_not_exists(name_sk, :z)",
        "ConditionExpression": "attribute_not_exists(last_sk) OR last_sk < :s",
        "ExpressionAttributeNames": {"#msg": "message"},
        "ExpressionAttributeValues": {
            ":g": S(GROUP), ":m": S("benchmark message"), ":s": S(sk(i)), ":t": S(sk(i)[:27]),
            ":ou": S("00000000-0000-4000-8000-000000000001"), ":oh": S("andrewbrown"),
            ":on": S("Andrew Brown"), ":z": S("0")}}


def get_item(i):
    return "GetItem", {"TableName": TABLE, "Key": {
        "pk": S("GRP#00000000-0000-4000-8000-000000000001"), "sk": S(GROUP)}}


def post(i):
    """The three writes of one post, in messages-svc's order."""
    return [message_put(i), group_put(i), group_update(i)]


KINDS = [
    ("message PutItem, attribute_not_exists(pk) (raw baseline)", message_put),
    ("message PutItem, no condition", lambda i: message_put(i, False)),
    ("group row PutItem, conditional (LSI + GSI move)", group_put),
    ("group row PutItem, no condition (LSI + GSI move)", lambda i: group_put(i, False)),
    ("group row UpdateItem, conditional, if_not_exists", group_update),
    ("GetItem", get_item),
    ("a whole post: the three writes above, in order (per post)", post),
]


def drive(url, fn, first, count, errors, refused):
    host, port = url.split("//")[1].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    # Interleaved keys (first, first + CONNS, ...): the connections' time
    # stamps rise together, as concurrent posts' do, so few conditions fail.
    for i in range(first, first + count * CONNS, CONNS):
        reqs = fn(i)
        for op, body in reqs if isinstance(reqs, list) else [reqs]:
            c.request("POST", "/", json.dumps(body), headers(op))
            r = c.getresponse()
            data = r.read()
            # A refused condition (a newer row is there) is an answer, not an error.
            if b"ConditionalCheckFailed" in data:
                refused.append(i)
            elif r.status != 200:
                errors.append(data[:200])
    c.close()


def run_kind(url, fn, base, count):
    errors, refused = [], []
    per = count // CONNS
    ts = [threading.Thread(target=drive, args=(url, fn, base + k, per, errors, refused))
          for k in range(CONNS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError("dynalite refused a request: %r" % errors[0])
    return per * CONNS, len(refused)


def main():
    with Stack() as s:
        url = s.dynalite()
        pid = s.procs["dynalite"].pid
        aws_json(url, "DynamoDB_20120810.CreateTable", {
            "TableName": TABLE,
            "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"}
                                     for a in ("pk", "sk", "last_sk", "message_group_uuid")],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                          {"AttributeName": "sk", "KeyType": "RANGE"}],
            "LocalSecondaryIndexes": [{
                "IndexName": "last-activity-index",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                              {"AttributeName": "last_sk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"}}],
            "GlobalSecondaryIndexes": [{
                "IndexName": "message-group-sk-index",
                "KeySchema": [{"AttributeName": "message_group_uuid", "KeyType": "HASH"},
                              {"AttributeName": "sk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"}}],
            "BillingMode": "PAY_PER_REQUEST"}, version="1.0")
        print("dynalite CPU per request (%d requests per kind, %d connections)" % (N, CONNS))
        base = 1
        for name, fn in KINDS:
            run_kind(url, fn, base, min(N, 400))  # warm-up: JIT, LevelDB files
            base += N
            c0, t0 = cpu_s(pid), time.time()
            n, refused = run_kind(url, fn, base, N)
            c1, t1 = cpu_s(pid), time.time()
            base += N
            print("  %-56s %6.0f us CPU  (%5.0f/s, %d refused by their condition)"
                  % (name, (c1 - c0) * 1e6 / n, n / (t1 - t0), refused))


if __name__ == "__main__":
    main()
