#!/usr/bin/python3
"""it_auth: the gateway's token verifier (gateway/src/auth.c) against real
cognito-local tokens and its real JWKS endpoint.

Starts cognito-local itself, creates a pool, an app client and a user, signs
in with USER_PASSWORD_AUTH, and runs the C helper auth_check (token on stdin).
"""
import json
import os
import subprocess
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_aws import BUILD, start_cognito  # noqa: E402

AUTH_CHECK = os.environ.get("AUTH_CHECK", os.path.join(BUILD, "gateway", "auth_check"))


def cognito_call(url, op, body):
    req = urllib.request.Request(url + "/", data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityProviderService." + op})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


class AuthIT(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(AUTH_CHECK, os.X_OK):
            raise unittest.SkipTest("auth_check not built: " + AUTH_CHECK)
        cls.cognito = start_cognito()
        url = cls.cognito.url
        pool = cognito_call(url, "CreateUserPool", {"PoolName": "it"})["UserPool"]["Id"]
        client = cognito_call(url, "CreateUserPoolClient", {
            "UserPoolId": pool, "ClientName": "web",
            "ExplicitAuthFlows": ["USER_PASSWORD_AUTH"]})["UserPoolClient"]["ClientId"]
        cognito_call(url, "AdminCreateUser", {
            "UserPoolId": pool, "Username": "andrewbrown", "MessageAction": "SUPPRESS",
            "UserAttributes": [{"Name": "email", "Value": "andrew@exampro.co"}]})
        cognito_call(url, "AdminSetUserPassword", {
            "UserPoolId": pool, "Username": "andrewbrown", "Password": "Cruddur-dev-1",
            "Permanent": True})
        user = cognito_call(url, "AdminGetUser", {"UserPoolId": pool, "Username": "andrewbrown"})
        cls.sub = next(a["Value"] for a in user["UserAttributes"] if a["Name"] == "sub")
        auth = cognito_call(url, "InitiateAuth", {
            "ClientId": client, "AuthFlow": "USER_PASSWORD_AUTH",
            "AuthParameters": {"USERNAME": "andrewbrown", "PASSWORD": "Cruddur-dev-1"}})
        cls.access = auth["AuthenticationResult"]["AccessToken"]
        cls.id_token = auth["AuthenticationResult"]["IdToken"]
        cls.issuer = url + "/" + pool
        cls.client = client

    @classmethod
    def tearDownClass(cls):
        cls.cognito.close()

    def check(self, token, issuer=None, client=None):
        return subprocess.run([AUTH_CHECK, issuer or self.issuer, client or self.client],
                              input=token, capture_output=True, text=True, timeout=30)

    def test_real_access_token_verifies(self):
        p = self.check(self.access)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("ok %s\n" % self.sub, p.stdout)
        # JWKS fetched once; the second verification came from the cache.
        self.assertIn("cache_hits 1 jwks_fetches 1", p.stdout)

    def test_id_token_is_refused(self):
        p = self.check(self.id_token)
        self.assertEqual(p.returncode, 1)
        self.assertIn("rejected bad_token_use", p.stdout)

    def test_other_client_is_refused(self):
        p = self.check(self.access, client="someoneelse")
        self.assertIn("rejected bad_client", p.stdout)

    def test_other_pool_is_refused(self):
        p = self.check(self.access, issuer=self.cognito.url + "/local_other")
        self.assertIn("rejected bad_issuer", p.stdout)

    def test_tampered_token_is_refused(self):
        h, pl, sig = self.access.split(".")
        flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
        p = self.check(".".join([h, pl, flipped]))
        self.assertIn("rejected bad_signature", p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
