"""WatchEvents delivery latency, same replica and across replicas.

Run: CRUDDUR_BUILD_DIR=build/rel CRUDDUR_SOURCE_DIR=. /usr/bin/python3 tests/bench/watch_latency.py
Two messages-svc replicas on one dynalite; a message is posted through
replica 1 and timed until it arrives on a stream opened on replica 1 (same)
or replica 2 (other). The time includes the CreateMessage call itself.
Posts alternate 0.3 s and 1.7 s apart, so both land at random points of the
other replica's 1 s busy interval.
"""
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
from stack import Stack, stubs  # noqa: E402

import grpc  # noqa: E402

pb = stubs.messages_pb2


def party():
    u = str(uuid.uuid4())
    return pb.Participant(uuid=u, handle="u" + u[:8], display_name="x")


def main():
    with Stack() as S:
        S.dynalite()
        a1 = S.messages_svc(schema=True)
        a2 = S.messages_replica(2)
        st = {1: stubs.messages_pb2_grpc.MessagesServiceStub(grpc.insecure_channel(a1)),
              2: stubs.messages_pb2_grpc.MessagesServiceStub(grpc.insecure_channel(a2))}
        for where in (1, 2):
            a, b = party(), party()
            g = st[1].CreateMessageGroup(pb.CreateMessageGroupRequest(sender=a, recipient=b, text="x"), timeout=10).message_group_uuid
            it = st[where].WatchEvents(pb.WatchEventsRequest(user_uuid=b.uuid), timeout=600)
            next(it)
            lat = []
            for i in range(40):
                time.sleep(0.3 if i % 2 else 1.7)
                t0 = time.time()
                st[1].CreateMessage(pb.CreateMessageRequest(message_group_uuid=g, sender=a, text="m%d" % i), timeout=10)
                while True:
                    ev = next(it)
                    if ev.WhichOneof("event") == "message":
                        break
                lat.append((time.time() - t0) * 1000)
            lat.sort()
            print("%s replica: p50 %.1f ms p99 %.1f ms max %.1f ms (n=%d, post included)" % (
                "same" if where == 1 else "other", lat[len(lat)//2], lat[int(len(lat)*0.99)], lat[-1], len(lat)))
            it.cancel()


if __name__ == "__main__":
    main()
