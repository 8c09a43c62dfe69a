"""The test harness: every dependency starts on a free port, survives a restart
with its data, and stops cleanly."""
import http.client
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
from stack import Stack, aws_json, pg_bindir  # noqa: E402


def ddb(url, op, body):
    return aws_json(url, "DynamoDB_20120810." + op, body, version="1.0")


class StackTest(unittest.TestCase):
    def test_parts_start_restart_and_stop(self):
        with Stack() as s:
            s.postgres()
            s.dynalite()
            s.cognito()
            psql = [os.path.join(pg_bindir(), "psql"), s.pg_url, "-tAc"]
            subprocess.run(psql + ["CREATE TABLE t(x int); INSERT INTO t VALUES (7)"], check=True,
                           capture_output=True)
            ddb(s.ddb_url, "CreateTable", {
                "TableName": "ttt", "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]})
            # As on DynamoDB, a new table takes writes only once ACTIVE.
            deadline = time.time() + 10
            while ddb(s.ddb_url, "DescribeTable", {"TableName": "ttt"})["Table"]["TableStatus"] != "ACTIVE":
                self.assertLess(time.time(), deadline, "table never became ACTIVE")
                time.sleep(0.05)
            ddb(s.ddb_url, "PutItem", {"TableName": "ttt", "Item": {"pk": {"S": "a"}}})
            sub = s.cognito_user("andrewbrown", "Andrew Brown", "andrew@exampro.co")
            self.assertRegex(sub, r"^[0-9a-f-]{36}$")
            # A real access token for the pool and client, with the issuer we configure.
            tok = s.token("andrewbrown")
            import base64
            claims = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
            self.assertEqual(claims["iss"], s.issuer)
            self.assertEqual(claims["token_use"], "access")
            self.assertEqual(claims["client_id"], s.client_id)
            self.assertEqual(claims["sub"], sub)

            s.kill("postgres")
            r = subprocess.run(psql + ["SELECT x FROM t"], capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0)
            s.restart("postgres")
            r = subprocess.run(psql + ["SELECT x FROM t"], capture_output=True, text=True, check=True)
            self.assertEqual(r.stdout.strip(), "7")

            s.kill("dynalite")
            s.restart("dynalite")
            got = ddb(s.ddb_url, "GetItem", {"TableName": "ttt", "Key": {"pk": {"S": "a"}}})
            self.assertEqual(got["Item"]["pk"]["S"], "a")
            root = s.root
            pids = [s.procs[n].pid for n in ("dynalite", "cognito")]
        for pid in pids:
            self.assertFalse(os.path.exists("/proc/%d" % pid) and
                             open("/proc/%d/stat" % pid).read().split()[2] != "Z",
                             "process %d still running" % pid)
        self.assertFalse(os.path.exists(root), "temp dir removed")

    def test_gateway_settings_come_from_the_environment(self):
        """deploy/local/up and the tests take the gateway's settings from the
        environment; the stack's own values only fill in what is unset."""
        names = ("FRONTEND_URL", "BACKEND_URL", "GATEWAY_MAX_CONNECTIONS")
        saved = {k: os.environ.pop(k, None) for k in names}
        origin = "http://127.0.0.1:8081"
        try:
            with Stack() as s:
                self.assertEqual(s.env()["FRONTEND_URL"], "http://localhost:3000")
            os.environ.update(FRONTEND_URL=origin, BACKEND_URL="", GATEWAY_MAX_CONNECTIONS="77")
            with Stack() as s:
                self.assertEqual(s.env()["GATEWAY_MAX_CONNECTIONS"], "77")
                s.cognito()  # the gateway needs a user pool to start
                s.gateway()
                host = s.gateway_url.split("//")[1]
                for asked, allowed in ((origin, origin), ("http://localhost:3000", None)):
                    conn = http.client.HTTPConnection(host, timeout=10)
                    conn.request("OPTIONS", "/api/message_groups", headers={
                        "Origin": asked, "Access-Control-Request-Method": "GET",
                        "Access-Control-Request-Headers": "authorization"})
                    r = conn.getresponse()
                    r.read()
                    conn.close()
                    self.assertEqual(r.getheader("Access-Control-Allow-Origin"), allowed, asked)
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None)
                if v is not None:
                    os.environ[k] = v


if __name__ == "__main__":
    unittest.main()
