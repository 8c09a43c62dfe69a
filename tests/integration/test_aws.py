#!/usr/bin/python3
"""it_aws: lib/aws against the real local stand-ins.

Starts dynalite and cognito-local itself (free ports, temp dirs, stopped
afterwards) and runs the C helper aws_smoke, which asserts the answers of
CreateTable/PutItem/GetItem/Query (and error names) on dynalite and
CreateUserPool/AdminCreateUser/ListUsers on cognito-local (AWS JSON 1.1).
Also checks that a stopped dynalite is reported as unreachable, not hung.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

SRC = os.environ.get("CRUDDUR_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("CRUDDUR_BUILD_DIR", os.path.join(SRC, "build"))
NODE_BIN = os.path.join(SRC, "deploy", "local", "node_modules", ".bin")
SMOKE = os.path.join(BUILD, "lib", "aws", "aws_smoke")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.read()
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("not ready: " + url)


class LocalService:
    """One node process in its own temp dir; stopped and removed on close."""

    def __init__(self, argv, env, ready_url):
        self.dir = tempfile.mkdtemp(prefix="it_aws_")
        self.log = open(os.path.join(self.dir, "out.log"), "wb")
        self.argv, self.env, self.ready_url = argv, env, ready_url
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.argv, cwd=self.dir, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_http(self.ready_url)
        except RuntimeError:
            self.stop()
            raise

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self):
        self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_dynalite():
    port = free_port()
    svc = LocalService([os.path.join(NODE_BIN, "dynalite"), "--host", "127.0.0.1",
                        "--port", str(port), "--createTableMs", "0",
                        "--deleteTableMs", "0", "--updateTableMs", "0"],
                       dict(os.environ), "http://127.0.0.1:%d/" % port)
    svc.url = "http://127.0.0.1:%d" % port
    svc.start()
    return svc


def start_cognito():
    port = free_port()
    env = dict(os.environ, HOST="127.0.0.1", PORT=str(port))
    svc = LocalService([os.path.join(NODE_BIN, "cognito-local")], env,
                       "http://127.0.0.1:%d/health" % port)
    os.makedirs(os.path.join(svc.dir, ".cognito"))
    with open(os.path.join(svc.dir, ".cognito", "config.json"), "w") as f:
        json.dump({"TokenConfig": {"IssuerDomain": "http://127.0.0.1:%d" % port},
                   "UserPoolDefaults": {"UsernameAttributes": []}}, f)
    svc.url = "http://127.0.0.1:%d" % port
    svc.start()
    return svc


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_REGION="us-east-1", ASAN_OPTIONS="detect_leaks=1")
    env.update(extra)
    return env


class AwsClientIT(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(SMOKE, os.X_OK):
            raise unittest.SkipTest("aws_smoke not built: " + SMOKE)
        cls.ddb = start_dynalite()
        try:
            cls.cognito = start_cognito()
        except Exception:
            cls.ddb.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.ddb.close()
        cls.cognito.close()

    def run_smoke(self, what, env):
        p = subprocess.run([SMOKE, what], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("aws_smoke %s: ok" % what, p.stdout)

    def test_dynamodb_with_dummy_credentials(self):
        # No credentials at all: a local endpoint gets the documented dummies.
        self.run_smoke("dynamodb", clean_env(AWS_ENDPOINT_URL_DYNAMODB=self.ddb.url))

    def test_cognito_with_env_credentials_and_session_token(self):
        self.run_smoke("cognito", clean_env(
            AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=self.cognito.url,
            AWS_ACCESS_KEY_ID="AKIDLOCAL", AWS_SECRET_ACCESS_KEY="secret",
            AWS_SESSION_TOKEN="session"))

    def test_generic_endpoint_variable(self):
        # AWS_ENDPOINT_URL applies when the service-specific one is unset.
        self.run_smoke("cognito", clean_env(AWS_ENDPOINT_URL=self.cognito.url))

    def test_stopped_dynalite_is_unreachable(self):
        svc = start_dynalite()
        url = svc.url
        svc.close()
        t0 = time.time()
        p = subprocess.run([SMOKE, "dynamodb"], env=clean_env(AWS_ENDPOINT_URL_DYNAMODB=url),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("CreateTable: unreachable", p.stderr)
        self.assertLess(time.time() - t0, 10)


if __name__ == "__main__":
    unittest.main(verbosity=2)
