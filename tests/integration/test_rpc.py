#!/usr/bin/python3
"""Black-box tests of lib/rpc through its test server (lib/rpc/rpc_test_server).

A real python3-grpcio client checks health, server reflection v1 and v1alpha
(answers loadable by a python DescriptorPool, then a dynamic call built from
them, as grpcurl does), bidirectional and client-streaming calls built the
same way (the test-only cruddur.rpctest.v1.EchoService), error statuses, request ids, the one-JSON-line-per-RPC
log, a busy port, and a graceful SIGTERM with a call in flight.

Stubs for health and reflection are generated at test time with protoc and
grpc_python_plugin into a temp dir (the protos are copied under distinct names
so the two reflection.proto files do not collide in python's default pool,
and no local `grpc/` folder shadows the installed grpc package).

Env: CRUDDUR_BUILD_DIR (the CMake build dir with lib/rpc/rpc_test_server).
"""
import importlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

BUILD = os.environ.get("CRUDDUR_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SERVER_BIN = os.path.join(BUILD, "lib", "rpc", "rpc_test_server")
GRPC_PROTO = "/usr/share/grpc-proto"
USERS_SVC = "cruddur.users.v1.UsersService"
ECHO_SVC = "cruddur.rpctest.v1.EchoService"
ALL_SERVICES = {
    USERS_SVC,
    ECHO_SVC,
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}
TIMEOUT = 5

_STUB_DIR = tempfile.mkdtemp(prefix="cruddur-rpc-stubs-")


def _generate_stubs():
    src = os.path.join(_STUB_DIR, "protos")
    os.makedirs(src)
    copies = {
        "grpc/health/v1/health.proto": "health.proto",
        "grpc/reflection/v1/reflection.proto": "reflection_v1.proto",
        "grpc/reflection/v1alpha/reflection.proto": "reflection_v1alpha.proto",
    }
    for rel, name in copies.items():
        shutil.copy(os.path.join(GRPC_PROTO, rel), os.path.join(src, name))
    subprocess.run(
        ["protoc", "-I" + src, "--python_out=" + _STUB_DIR, "--grpc_out=" + _STUB_DIR,
         "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin"] + list(copies.values()),
        check=True)
    sys.path.insert(0, _STUB_DIR)
    mods = {}
    for base in ("health", "reflection_v1", "reflection_v1alpha"):
        mods[base] = importlib.import_module(base + "_pb2")
        mods[base + "_grpc"] = importlib.import_module(base + "_pb2_grpc")
    return mods


STUBS = _generate_stubs()
health_pb2 = STUBS["health"]
health_grpc = STUBS["health_grpc"]
REFLECTION = {
    "v1": (STUBS["reflection_v1"], STUBS["reflection_v1_grpc"]),
    "v1alpha": (STUBS["reflection_v1alpha"], STUBS["reflection_v1alpha_grpc"]),
}


class Server:
    """rpc_test_server on a kernel-chosen port; stderr kept for the log checks."""

    def __init__(self, listen="127.0.0.1:0", env_extra=None):
        env = dict(os.environ)
        env.update(env_extra or {})
        self.err = tempfile.NamedTemporaryFile(prefix="rpc-test-server-", suffix=".log",
                                               dir=_STUB_DIR, delete=False)
        self.err_path = self.err.name
        self.proc = subprocess.Popen([SERVER_BIN, listen], stdout=subprocess.PIPE,
                                     stderr=self.err, env=env)
        line = self.proc.stdout.readline().decode()
        self.port = int(line.split()[1]) if line.startswith("PORT ") else None
        self.addr = "127.0.0.1:%s" % self.port
        self.channel = grpc.insecure_channel(self.addr) if self.port else None

    def stderr(self):
        self.err.flush()
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.channel is not None:
            self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.err.close()
        return self.proc.returncode


def reflection_ask(channel, version, requests):
    """Sends all requests on one stream; returns the responses in order."""
    pb2, pb2_grpc = REFLECTION[version]
    stub = pb2_grpc.ServerReflectionStub(channel)
    return list(stub.ServerReflectionInfo(iter(requests), timeout=TIMEOUT))


def pool_from(files):
    """A DescriptorPool holding every file of a reflection answer. python's
    C++ pool builds a file when it is added, so each goes in after its
    imports; every import must be among the files (else KeyError)."""
    by_name = {f.name: f for f in files}
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        added.add(name)
        for dep in by_name[name].dependency:
            add(dep)
        pool.Add(by_name[name])

    for f in files:
        add(f.name)
    return pool


def pool_for_symbol(channel, symbol, version="v1"):
    pb2, _ = REFLECTION[version]
    (resp,) = reflection_ask(channel, version, [pb2.ServerReflectionRequest(file_containing_symbol=symbol)])
    return pool_from([descriptor_pb2.FileDescriptorProto.FromString(b)
                      for b in resp.file_descriptor_response.file_descriptor_proto])


def message_class(factory, desc):
    get = getattr(message_factory, "GetMessageClass", None)
    return get(desc) if get is not None else factory.GetPrototype(desc)


class RuntimeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server()
        if cls.srv.port is None:
            raise RuntimeError("test server did not start: " + cls.srv.stderr())

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        if rc != 0:
            raise AssertionError("test server exited %s:\n%s" % (rc, cls.srv.stderr()[-4000:]))

    # ---- health --------------------------------------------------------

    def test_health_check(self):
        stub = health_grpc.HealthStub(self.srv.channel)
        for name in ("", USERS_SVC):
            with self.subTest(service=name):
                resp = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=TIMEOUT)
                self.assertEqual(resp.status, health_pb2.HealthCheckResponse.SERVING)
        with self.assertRaises(grpc.RpcError) as cm:
            stub.Check(health_pb2.HealthCheckRequest(service="cruddur.nope.v1.Nope"), timeout=TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("cruddur.nope.v1.Nope", cm.exception.details())

    def test_health_watch_streams(self):
        # Watch sends the status at once and keeps the stream open; an
        # unknown name is SERVICE_UNKNOWN, not an error (health protocol).
        stub = health_grpc.HealthStub(self.srv.channel)
        for name, want in (("", health_pb2.HealthCheckResponse.SERVING),
                           (USERS_SVC, health_pb2.HealthCheckResponse.SERVING),
                           ("cruddur.nope.v1.Nope", health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)):
            with self.subTest(service=name):
                it = stub.Watch(health_pb2.HealthCheckRequest(service=name), timeout=TIMEOUT)
                self.assertEqual(next(it).status, want)
                it.cancel()
        # The stream stays open: only the deadline ends it.
        it = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
        self.assertEqual(next(it).status, health_pb2.HealthCheckResponse.SERVING)
        with self.assertRaises(grpc.RpcError) as cm:
            next(it)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)

    # ---- reflection ----------------------------------------------------

    def test_list_services(self):
        for version, (pb2, _) in REFLECTION.items():
            with self.subTest(version=version):
                (resp,) = reflection_ask(self.srv.channel, version,
                                         [pb2.ServerReflectionRequest(list_services="")])
                self.assertEqual(resp.WhichOneof("message_response"), "list_services_response")
                self.assertEqual({s.name for s in resp.list_services_response.service}, ALL_SERVICES)
                self.assertEqual(resp.original_request.list_services, "")

    def test_symbol_loads_into_pool_and_calls(self):
        for version, (pb2, _) in REFLECTION.items():
            with self.subTest(version=version):
                (resp,) = reflection_ask(self.srv.channel, version, [
                    pb2.ServerReflectionRequest(file_containing_symbol=USERS_SVC)])
                self.assertEqual(resp.WhichOneof("message_response"), "file_descriptor_response")
                files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                         for b in resp.file_descriptor_response.file_descriptor_proto]
                names = [f.name for f in files]
                # The file asked for first (grpcurl takes files[0] as the
                # answer), then its imports.
                self.assertEqual(names, ["cruddur/users/v1/users.proto",
                                         "google/protobuf/timestamp.proto"])
                self.assertEqual(len(names), len(set(names)))

                pool = pool_from(files)
                svc = pool.FindServiceByName(USERS_SVC)
                self.assertEqual([m.name for m in svc.methods],
                                 ["GetUser", "BatchGetUsers", "CreateUser", "SyncCognitoUsers"])
                method = svc.FindMethodByName("GetUser")
                factory = message_factory.MessageFactory(pool)
                req_cls = message_class(factory, method.input_type)
                resp_cls = message_class(factory, method.output_type)
                call = self.srv.channel.unary_unary(
                    "/%s/%s" % (USERS_SVC, method.name),
                    request_serializer=req_cls.SerializeToString,
                    response_deserializer=resp_cls.FromString)
                out = call(req_cls(handle="andrewbrown"), timeout=TIMEOUT)
                self.assertEqual(out.user.handle, "andrewbrown")
                self.assertEqual(out.user.display_name, "Andrew Brown")
                self.assertEqual(out.user.uuid, "1b2c3d4e-0000-4000-8000-000000000001")
                self.assertEqual(out.user.created_at.seconds, 1700000000)
                self.assertEqual(out.user.created_at.nanos, 123456000)
                with self.assertRaises(grpc.RpcError) as cm:
                    call(req_cls(handle="ghost"), timeout=TIMEOUT)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
                self.assertEqual(cm.exception.details(), "no user with handle ghost")

    def test_streaming_method_through_reflection(self):
        # A grpcurl-style client: the descriptor says Watch is
        # server-streaming, and the call works from reflection alone.
        health_svc = "grpc.health.v1.Health"
        for version, (pb2, _) in REFLECTION.items():
            with self.subTest(version=version):
                (resp,) = reflection_ask(self.srv.channel, version, [
                    pb2.ServerReflectionRequest(file_containing_symbol=health_svc)])
                files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                         for b in resp.file_descriptor_response.file_descriptor_proto]
                (fd,) = [f for f in files if f.name == "grpc/health/v1/health.proto"]
                (svc_proto,) = [s for s in fd.service if s.name == "Health"]
                streams = {m.name: (m.client_streaming, m.server_streaming) for m in svc_proto.method}
                self.assertEqual(streams["Watch"], (False, True))
                self.assertEqual(streams["Check"], (False, False))
                pool = pool_from(files)
                method = pool.FindServiceByName(health_svc).FindMethodByName("Watch")
                factory = message_factory.MessageFactory(pool)
                req_cls = message_class(factory, method.input_type)
                resp_cls = message_class(factory, method.output_type)
                call = self.srv.channel.unary_stream(
                    "/%s/Watch" % health_svc,
                    request_serializer=req_cls.SerializeToString,
                    response_deserializer=resp_cls.FromString)
                it = call(req_cls(service=""), timeout=TIMEOUT)
                self.assertEqual(next(it).status, 1)  # SERVING
                it.cancel()

    def echo_methods(self, version):
        """EchoService through reflection alone: its shapes as the server
        describes them, and callables built from the descriptors."""
        pb2, _ = REFLECTION[version]
        (resp,) = reflection_ask(self.srv.channel, version, [
            pb2.ServerReflectionRequest(file_containing_symbol=ECHO_SVC)])
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in resp.file_descriptor_response.file_descriptor_proto]
        self.assertEqual([f.name for f in files], ["cruddur/rpctest/v1/echo.proto"])
        (svc_proto,) = files[0].service
        shapes = {m.name: (m.client_streaming, m.server_streaming) for m in svc_proto.method}
        pool = pool_from(files)
        svc = pool.FindServiceByName(ECHO_SVC)
        factory = message_factory.MessageFactory(pool)
        req_cls = message_class(factory, svc.FindMethodByName("Chat").input_type)
        resp_cls = message_class(factory, svc.FindMethodByName("Chat").output_type)
        kw = dict(request_serializer=req_cls.SerializeToString,
                  response_deserializer=resp_cls.FromString)
        chat = self.srv.channel.stream_stream("/%s/Chat" % ECHO_SVC, **kw)
        total = self.srv.channel.stream_unary("/%s/Sum" % ECHO_SVC, **kw)
        return shapes, req_cls, chat, total

    def test_bidi_through_reflection(self):
        # Reflection says which methods stream which way, and a grpcurl-style
        # client drives the bidirectional and client-streaming ones.
        for version in REFLECTION:
            with self.subTest(version=version):
                shapes, req_cls, chat, total = self.echo_methods(version)
                self.assertEqual(shapes, {"Chat": (True, True), "Sum": (True, False),
                                          "Count": (False, True), "Get": (False, False)})
                reqs = [req_cls(n=i, text="m%d" % i) for i in range(300)]
                replies = list(chat(iter(reqs), timeout=TIMEOUT))
                self.assertEqual([(r.n, r.text) for r in replies],
                                 [(i, "m%d" % i) for i in range(300)])
                self.assertEqual(list(chat(iter([]), timeout=TIMEOUT)), [])
                self.assertEqual(total(iter(req_cls(n=i) for i in range(1, 101)),
                                       timeout=TIMEOUT).n, 5050)

    def test_bidi_replies_before_half_close(self):
        # Each reply comes while the client still holds its side open: the
        # server reads and answers message by message, not at the end.
        _, req_cls, chat, _ = self.echo_methods("v1")
        outbox = queue.Queue()
        replies = chat(iter(outbox.get, None), timeout=TIMEOUT)
        for i in range(20):
            outbox.put(req_cls(n=i, text="ping"))
            self.assertEqual(next(replies).n, i)
        outbox.put(None)  # half-close
        self.assertEqual(list(replies), [])
        self.assertEqual(replies.code(), grpc.StatusCode.OK)

    def test_bidi_undecodable_message_is_invalid_argument(self):
        chat = self.srv.channel.stream_stream("/%s/Chat" % ECHO_SVC,
                                              request_serializer=lambda b: b,
                                              response_deserializer=lambda b: b)
        good = b"\x08\x07"  # n = 7
        with self.assertRaises(grpc.RpcError) as cm:
            list(chat(iter([good, b"\xff\xff\xff", good]), timeout=TIMEOUT))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("cruddur.rpctest.v1.EchoRequest", cm.exception.details())

    def test_many_requests_on_one_stream(self):
        for version, (pb2, _) in REFLECTION.items():
            with self.subTest(version=version):
                R = pb2.ServerReflectionRequest
                reqs = [
                    R(file_by_filename="cruddur/users/v1/users.proto"),
                    R(file_containing_symbol="cruddur.users.v1.UsersService.GetUser"),
                    R(file_containing_symbol="cruddur.users.v1.GetUserResponse"),
                    R(file_containing_symbol="cruddur.messages.v1.MessagesService"),
                    R(file_containing_symbol="grpc.health.v1.HealthCheckResponse.ServingStatus"),
                    R(file_containing_symbol="cruddur.users.v1.NoSuchThing"),
                    R(file_by_filename="no/such/file.proto"),
                    R(file_containing_extension=pb2.ExtensionRequest(
                        containing_type="cruddur.users.v1.User", extension_number=100)),
                    R(all_extension_numbers_of_type="cruddur.users.v1.User"),
                    R(all_extension_numbers_of_type="cruddur.users.v1.Nope"),
                    R(list_services="*"),
                ]
                resps = reflection_ask(self.srv.channel, version, reqs)
                self.assertEqual(len(resps), len(reqs))

                def asked_file(r):  # the file asked for comes first
                    self.assertEqual(r.WhichOneof("message_response"), "file_descriptor_response")
                    return descriptor_pb2.FileDescriptorProto.FromString(
                        r.file_descriptor_response.file_descriptor_proto[0]).name

                self.assertEqual(asked_file(resps[0]), "cruddur/users/v1/users.proto")
                self.assertEqual(len(resps[0].file_descriptor_response.file_descriptor_proto), 2)
                self.assertEqual(asked_file(resps[1]), "cruddur/users/v1/users.proto")
                self.assertEqual(asked_file(resps[2]), "cruddur/users/v1/users.proto")
                self.assertEqual(asked_file(resps[3]), "cruddur/messages/v1/messages.proto")
                self.assertEqual(asked_file(resps[4]), "grpc/health/v1/health.proto")
                for i in (5, 6, 7, 9):
                    self.assertEqual(resps[i].WhichOneof("message_response"), "error_response", i)
                    self.assertEqual(resps[i].error_response.error_code, 5, i)
                self.assertIn("cruddur.users.v1.NoSuchThing", resps[5].error_response.error_message)
                self.assertEqual(resps[8].all_extension_numbers_response.base_type_name,
                                 "cruddur.users.v1.User")
                self.assertEqual(list(resps[8].all_extension_numbers_response.extension_number), [])
                self.assertEqual(len(resps[10].list_services_response.service), len(ALL_SERVICES))
                for req, resp in zip(reqs, resps):
                    self.assertEqual(resp.original_request, req)

    def test_undecodable_reflection_request(self):
        call = self.srv.channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with self.assertRaises(grpc.RpcError) as cm:
            list(call(iter([b"\xff\xff\xff"]), timeout=TIMEOUT))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_field_number_zero_is_refused(self):
        # 82 00 is an overlong varint tag for field 0 (wire type 2), then an
        # empty value: protobuf-c decodes it, so the server must refuse it.
        bad = b"\x12\x0bandrewbrown\x82\x00\x00"
        call = self.srv.channel.unary_unary("/%s/GetUser" % USERS_SVC,
                                            request_serializer=lambda b: b,
                                            response_deserializer=lambda b: b)
        with self.assertRaises(grpc.RpcError) as cm:
            call(bad, timeout=TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertGreater(len(call(bad[:-3], timeout=TIMEOUT)), 0)  # the rest is fine
        refl = self.srv.channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with self.assertRaises(grpc.RpcError) as cm:
            list(refl(iter([b"\x3a\x00\x82\x00\x00"]), timeout=TIMEOUT))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    # ---- unary runtime ---------------------------------------------------

    def test_undecodable_request_is_invalid_argument(self):
        call = self.srv.channel.unary_unary("/%s/GetUser" % USERS_SVC,
                                            request_serializer=lambda b: b,
                                            response_deserializer=lambda b: b)
        with self.assertRaises(grpc.RpcError) as cm:
            call(b"\xff\xff\xff\xff", timeout=TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("cruddur.users.v1.GetUserRequest", cm.exception.details())

    def test_oversized_request_is_refused(self):
        # The server caps requests at max_recv_bytes (1 MiB by default).
        call = self.srv.channel.unary_unary("/%s/GetUser" % USERS_SVC,
                                            request_serializer=lambda b: b,
                                            response_deserializer=lambda b: b)
        handle = b"x" * (2 << 20)
        body = b"\x12" + bytes([0x80, 0x80, 0x80, 0x01]) + handle  # field 2, len 2 MiB
        with self.assertRaises(grpc.RpcError) as cm:
            call(body, timeout=TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)

    def _log_line(self, request_id, wait_s=5):
        """The server's JSON log line of the call with this x-request-id."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for raw in self.srv.stderr().splitlines():
                if raw.startswith("{") and '"request_id":"%s"' % request_id in raw:
                    return json.loads(raw)
            time.sleep(0.05)
        self.fail("no log line for the call %s" % request_id)

    def _get_user_call(self):
        pool = pool_for_symbol(self.srv.channel, USERS_SVC)
        factory = message_factory.MessageFactory(pool)
        req_cls = message_class(factory, pool.FindMessageTypeByName("cruddur.users.v1.GetUserRequest"))
        resp_cls = message_class(factory, pool.FindMessageTypeByName("cruddur.users.v1.GetUserResponse"))
        return req_cls, self.srv.channel.unary_unary(
            "/%s/GetUser" % USERS_SVC, request_serializer=req_cls.SerializeToString,
            response_deserializer=resp_cls.FromString)

    def test_compressed_request_is_read(self):
        # The server runs without the compression filter (it never
        # compresses answers); a gzip request is still decompressed and read.
        # gRPC sends a message uncompressed when gzip would not shrink it, so
        # the request carries 4,000 bytes of an unknown field (15), which
        # the server skips.
        req_cls, _ = self._get_user_call()
        call = self.srv.channel.unary_unary("/%s/GetUser" % USERS_SVC,
                                            request_serializer=lambda b: b,
                                            response_deserializer=lambda b: b)
        body = (req_cls(handle="andrewbrown").SerializeToString()
                + b"\x7a" + bytes([0xa0, 0x1f]) + b"x" * 4000)
        plain = call(body, timeout=TIMEOUT)
        gz = call(body, timeout=TIMEOUT, compression=grpc.Compression.Gzip)
        self.assertIn(b"andrewbrown", gz)
        self.assertEqual(gz, plain)

    def test_deadline_passing_in_a_handler(self):
        # The server has no deadline filter: the client's own deadline ends
        # the call (it cancels), and the server logs it as DEADLINE_EXCEEDED.
        req_cls, call = self._get_user_call()
        t0 = time.monotonic()
        with self.assertRaises(grpc.RpcError) as cm:
            call(req_cls(handle="slow"), timeout=0.3, metadata=[("x-request-id", "it-rpc-slow")])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(time.monotonic() - t0, 1.2)
        line = self._log_line("it-rpc-slow")
        self.assertEqual(line["status"], "DEADLINE_EXCEEDED")
        # The server goes on serving.
        self.assertEqual(call(req_cls(handle="andrewbrown"), timeout=TIMEOUT).user.handle,
                         "andrewbrown")

    def test_unknown_method_is_unimplemented_at_once(self):
        call = self.srv.channel.unary_unary("/cruddur.nope.v1.Nope/Get",
                                            request_serializer=lambda b: b,
                                            response_deserializer=lambda b: b)
        t0 = time.monotonic()
        with self.assertRaises(grpc.RpcError) as cm:
            call(b"", timeout=TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertLess(time.monotonic() - t0, 1.0)

    def test_request_id_echo_and_log_line(self):
        pool = pool_for_symbol(self.srv.channel, USERS_SVC)
        factory = message_factory.MessageFactory(pool)
        req_cls = message_class(factory, pool.FindMessageTypeByName("cruddur.users.v1.GetUserRequest"))
        resp_cls = message_class(factory, pool.FindMessageTypeByName("cruddur.users.v1.GetUserResponse"))
        call = self.srv.channel.unary_unary("/%s/GetUser" % USERS_SVC,
                                            request_serializer=req_cls.SerializeToString,
                                            response_deserializer=resp_cls.FromString)
        out, info = call.with_call(req_cls(handle="echo_rid"), timeout=TIMEOUT,
                                   metadata=[("x-request-id", "it-rpc-42")])
        self.assertEqual(out.user.display_name, "it-rpc-42")
        self.assertIn(("x-request-id", "it-rpc-42"), list(info.initial_metadata()))
        # A malformed id is dropped, not echoed.
        out, info = call.with_call(req_cls(handle="echo_rid"), timeout=TIMEOUT,
                                   metadata=[("x-request-id", "bad id/!")])
        self.assertEqual(out.user.display_name, "")
        self.assertNotIn("x-request-id", [k for k, _ in info.initial_metadata()])

        line = self._log_line("it-rpc-42")
        self.assertEqual(line["kind"], "rpc")
        self.assertEqual(line["method"], "/cruddur.users.v1.UsersService/GetUser")
        self.assertEqual(line["status"], "OK")
        self.assertIsInstance(line["duration_us"], int)

    def test_busy_port_fails_naming_the_address(self):
        other = Server(listen=self.srv.addr)
        try:
            self.assertIsNone(other.port)
            self.assertEqual(other.proc.wait(timeout=10), 1)
            self.assertIn("cannot listen on %s" % self.srv.addr, other.stderr())
        finally:
            other.stop()


class HealthDownTest(unittest.TestCase):
    def test_not_serving(self):
        srv = Server(env_extra={"RPC_TEST_HEALTH": "down"})
        try:
            stub = health_grpc.HealthStub(srv.channel)
            for name in ("", USERS_SVC):
                resp = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=TIMEOUT)
                self.assertEqual(resp.status, health_pb2.HealthCheckResponse.NOT_SERVING)
        finally:
            self.assertEqual(srv.stop(), 0)


class GracefulShutdownTest(unittest.TestCase):
    def test_sigterm_with_call_in_flight(self):
        srv = Server()
        try:
            pool = pool_for_symbol(srv.channel, USERS_SVC, "v1alpha")
            factory = message_factory.MessageFactory(pool)
            req_cls = message_class(factory, pool.FindMessageTypeByName("cruddur.users.v1.GetUserRequest"))
            resp_cls = message_class(factory, pool.FindMessageTypeByName("cruddur.users.v1.GetUserResponse"))
            call = srv.channel.unary_unary("/%s/GetUser" % USERS_SVC,
                                           request_serializer=req_cls.SerializeToString,
                                           response_deserializer=resp_cls.FromString)
            result = {}

            def slow():
                try:
                    result["resp"] = call(req_cls(handle="slow"), timeout=10)
                except grpc.RpcError as e:
                    result["err"] = e

            t = threading.Thread(target=slow)
            t.start()
            time.sleep(0.4)  # the handler sleeps 1.5 s
            srv.proc.send_signal(signal.SIGTERM)
            t.join(timeout=10)
            self.assertNotIn("err", result, result.get("err"))
            self.assertEqual(result["resp"].user.handle, "slow")
            self.assertEqual(srv.proc.wait(timeout=10), 0, srv.stderr()[-4000:])
            log = srv.stderr()
            self.assertIn("SIGTERM received", log)
            self.assertIn('"method":"/cruddur.users.v1.UsersService/GetUser","status":"OK"', log)
        finally:
            srv.stop()


if __name__ == "__main__":
    try:
        unittest.main(verbosity=2)
    finally:
        shutil.rmtree(_STUB_DIR, ignore_errors=True)
