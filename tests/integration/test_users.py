"""users-svc against a real PostgreSQL and cognito-local (tests/stack).

One stack for the whole file (start-up is the slow part); tests run in name
order and each states what it relies on. The PostgreSQL restart is last.
"""
import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
import unittest
import uuid as uuidlib

sys.path.insert(0, os.path.join(os.environ["CRUDDUR_SOURCE_DIR"], "tests", "stack"))
from stack import Stack, stubs, pg_bindir  # noqa: E402

import grpc  # noqa: E402

SC = grpc.StatusCode


class UsersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Stack()
        s = cls.s
        try:
            s.postgres()
            s.cognito()
            cls.subs = {
                "andrewbrown": s.cognito_user("andrewbrown", "Andrew Brown", "andrew@exampro.co"),
                "bayko": s.cognito_user("bayko", "Andrew Bayko", "bayko@exampro.co"),
                "londo": s.cognito_user("londo", "Londo Mollari", "lmollari@centari.com"),
            }
            # A Cognito user whose preferred_username matches no handle, and one without it.
            s._cognito_call("AdminCreateUser", {
                "UserPoolId": s.pool_id, "Username": "ghostuser", "MessageAction": "SUPPRESS",
                "UserAttributes": [{"Name": "preferred_username", "Value": "ghost"},
                                   {"Name": "email", "Value": "ghost@example.test"}]})
            cls.subs["nopref"] = s.cognito_user("nopref", "No Pref", preferred_username=False)
            cls.first_migrate = s.run("users-svc", "migrate", check=True)
            cls.first_seed = s.run("users-svc", "seed", check=True)
            s.users_svc(migrate=False, seed=False)
            cls.ch = grpc.insecure_channel(s.users_addr)
            cls.users = stubs.users_pb2_grpc.UsersServiceStub(cls.ch)
            cls.health = stubs.health_pb2_grpc.HealthStub(cls.ch)
        except Exception:
            cls.s.__exit__(None, None, None)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()
        cls.s.__exit__(None, None, None)  # raises if users-svc did not exit 0 (leaks, UB)

    # ---- helpers ----------------------------------------------------------
    def psql(self, sql, url=None):
        r = subprocess.run([os.path.join(pg_bindir(), "psql"), url or self.s.pg_url, "-tAc", sql],
                           capture_output=True, text=True, check=True)
        return r.stdout.strip()

    def code(self, fn, req, timeout=5):
        try:
            fn(req, timeout=timeout)
            return SC.OK
        except grpc.RpcError as e:
            return e.code()

    def get(self, **key):
        return self.users.GetUser(stubs.users_pb2.GetUserRequest(**key), timeout=5).user

    def get_code(self, **key):
        return self.code(self.users.GetUser, stubs.users_pb2.GetUserRequest(**key))

    # ---- 01 migrations and seed ----------------------------------------------
    def test_01_migrate_and_seed_are_idempotent(self):
        self.assertIn("applied: 0001_users.sql", self.first_migrate.stdout)
        again = self.s.run("users-svc", "migrate", check=True)
        self.assertIn("already applied: 0001_users.sql", again.stdout)
        self.assertIn("0 applied", again.stdout)
        self.assertEqual(self.psql("SELECT count(*) FROM schema_migrations"), "1")
        self.assertIn("3 inserted", self.first_seed.stdout)
        again = self.s.run("users-svc", "seed", check=True)
        self.assertIn("0 inserted", again.stdout)
        self.assertEqual(self.psql(
            "SELECT string_agg(handle || '|' || display_name || '|' || email, ',' ORDER BY handle)"
            " FROM users WHERE handle IN ('andrewbrown','bayko','londo')"),
            "andrewbrown|Andrew Brown|andrew@exampro.co,bayko|Andrew Bayko|bayko@exampro.co,"
            "londo|Londo Mollari|lmollari@centari.com")

    def test_01b_two_migrations_at_once_apply_once(self):
        self.psql("CREATE DATABASE race")
        url = self.s.pg_url.rsplit("/", 1)[0] + "/race"
        env = dict(self.s.env(), CONNECTION_URL=url)
        procs = [subprocess.Popen([self.s.binary("users-svc"), "migrate"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        outs = [p.communicate(timeout=60) for p in procs]
        for p, (out, err) in zip(procs, outs):
            self.assertEqual(p.returncode, 0, err)
        self.assertEqual(sum("1 applied" in o for o, _ in outs), 1, outs)
        self.assertEqual(self.psql("SELECT count(*) FROM schema_migrations", url), "1")

    def test_01c_database_enforces_the_formats(self):
        for bad in ["('X', 'bad-handle', 'a@b.c')", "('X', repeat('a', 33), 'a@b.c')",
                    "('   ', 'okhandle1', 'a@b.c')", "(repeat('x', 101), 'okhandle2', 'a@b.c')",
                    "('X', 'okhandle3', 'no-at-sign')", "('X', 'okhandle4', 'a b@c.d')",
                    "('X', 'ANDREWBROWN', 'a@b.c')"]:
            r = subprocess.run([os.path.join(pg_bindir(), "psql"), self.s.pg_url, "-v",
                                "ON_ERROR_STOP=1", "-c",
                                "INSERT INTO users (display_name, handle, email) VALUES " + bad],
                               capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0, bad)
        r = subprocess.run([os.path.join(pg_bindir(), "psql"), self.s.pg_url, "-v",
                            "ON_ERROR_STOP=1", "-c",
                            "UPDATE users SET cognito_user_id = 'has space' WHERE handle = 'londo'"],
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)

    def test_01d_cli_usage(self):
        r = self.s.run("users-svc", "frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: users-svc", r.stderr)
        r = self.s.run("users-svc", "sync-cognito", "--bogus")
        self.assertEqual(r.returncode, 2)
        r = self.s.run("users-svc", "migrate", env={"CONNECTION_URL": ""})
        self.assertEqual(r.returncode, 2)
        self.assertIn("CONNECTION_URL", r.stderr)

    # ---- 02 GetUser --------------------------------------------------------------
    def test_02_get_user_by_each_key(self):
        names = {"andrewbrown": "Andrew Brown", "bayko": "Andrew Bayko", "londo": "Londo Mollari"}
        for handle, name in names.items():
            u = self.get(handle=handle)
            self.assertEqual((u.handle, u.display_name), (handle, name))
            self.assertEqual(str(uuidlib.UUID(u.uuid)), u.uuid)
            self.assertLess(abs(u.created_at.seconds - time.time()), 600)
            self.assertEqual(self.get(uuid=u.uuid).handle, handle)
        self.assertEqual(self.get(handle="BAYKO").handle, "bayko")
        self.assertEqual(self.get(handle="LoNdO").handle, "londo")

    def test_02b_get_user_not_found(self):
        self.assertEqual(self.get_code(handle="nosuchuser"), SC.NOT_FOUND)
        self.assertEqual(self.get_code(uuid=str(uuidlib.uuid4())), SC.NOT_FOUND)
        self.assertEqual(self.get_code(cognito_user_id=str(uuidlib.uuid4())), SC.NOT_FOUND)

    def test_02c_get_user_invalid_argument(self):
        cases = {
            "empty oneof": {},
            "empty handle": {"handle": ""},
            "bad handle": {"handle": "bad-handle"},
            "handle with space": {"handle": "a b"},
            "handle too long": {"handle": "a" * 33},
            "bad uuid": {"uuid": "not-a-uuid"},
            "upper-case uuid": {"uuid": str(uuidlib.uuid4()).upper()},
            "empty uuid": {"uuid": ""},
            "bad sub": {"cognito_user_id": "a:b"},
            "sub too long": {"cognito_user_id": "a" * 129},
        }
        for name, key in cases.items():
            self.assertEqual(self.get_code(**key), SC.INVALID_ARGUMENT, name)

    # ---- 03 CreateUser -------------------------------------------------------------
    def test_03_create_user_is_idempotent_on_sub(self):
        req = stubs.users_pb2.CreateUserRequest(display_name="Vir Cotto", handle="vir",
                                                email="vir@centari.com",
                                                cognito_user_id=str(uuidlib.uuid4()))
        first = self.users.CreateUser(req, timeout=5)
        self.assertTrue(first.created)
        self.assertEqual((first.user.handle, first.user.display_name), ("vir", "Vir Cotto"))
        self.assertEqual(first.user.cognito_user_id, req.cognito_user_id)
        again = self.users.CreateUser(req, timeout=5)
        self.assertFalse(again.created)
        self.assertEqual(again.user.uuid, first.user.uuid)
        self.assertEqual(self.get(cognito_user_id=req.cognito_user_id).uuid, first.user.uuid)
        # The e-mail is stored, never returned.
        self.assertEqual(self.psql("SELECT email FROM users WHERE handle = 'vir'"), "vir@centari.com")
        self.assertNotIn("email", [f.name for f, _ in first.user.ListFields()])

    def test_03b_create_user_handle_taken(self):
        for handle in ("Bayko", "bayko", "VIR2"):
            if handle == "VIR2":
                self.users.CreateUser(stubs.users_pb2.CreateUserRequest(
                    display_name="Vir", handle="vir2", email="v@c.com",
                    cognito_user_id=str(uuidlib.uuid4())), timeout=5)
            req = stubs.users_pb2.CreateUserRequest(display_name="Impostor", handle=handle,
                                                    email="x@y.z",
                                                    cognito_user_id=str(uuidlib.uuid4()))
            self.assertEqual(self.code(self.users.CreateUser, req), SC.ALREADY_EXISTS, handle)
        self.assertEqual(self.psql("SELECT count(*) FROM users WHERE lower(handle) = 'bayko'"), "1")

    def test_03c_create_user_invalid_argument(self):
        ok = dict(display_name="Lennier", handle="lennier", email="lennier@minbar.org",
                  cognito_user_id=str(uuidlib.uuid4()))
        cases = {
            "blank name": {"display_name": " \t "},
            "empty name": {"display_name": ""},
            "long name": {"display_name": "x" * 101},
            "bad handle": {"handle": "len-nier"},
            "empty handle": {"handle": ""},
            "long handle": {"handle": "l" * 33},
            "no at": {"email": "lennier.minbar.org"},
            "two ats": {"email": "a@b@c"},
            "email space": {"email": "len nier@minbar.org"},
            "long email": {"email": "a" * 250 + "@b.cd"},
            "empty sub": {"cognito_user_id": ""},
            "bad sub": {"cognito_user_id": "a/b"},
        }
        for name, change in cases.items():
            req = stubs.users_pb2.CreateUserRequest(**dict(ok, **change))
            self.assertEqual(self.code(self.users.CreateUser, req), SC.INVALID_ARGUMENT, name)
        # Exactly 100 code points of a 3-byte character is fine.
        req = stubs.users_pb2.CreateUserRequest(**dict(ok, display_name="\u2603" * 100))
        self.assertTrue(self.users.CreateUser(req, timeout=5).created)

    def test_03d_create_user_races(self):
        # The same handle from 8 subs at once: exactly one wins.
        def create(i, handle, sub):
            req = stubs.users_pb2.CreateUserRequest(display_name="Racer %d" % i, handle=handle,
                                                    email="r%d@x.io" % i, cognito_user_id=sub)
            try:
                return self.users.CreateUser(req, timeout=10).created
            except grpc.RpcError as e:
                return e.code()
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            got = list(ex.map(lambda i: create(i, "racer", str(uuidlib.uuid4())), range(8)))
        self.assertEqual(got.count(True), 1, got)
        self.assertEqual(got.count(SC.ALREADY_EXISTS), 7, got)
        # The same sub 8 times at once: one row, one created=True.
        sub = str(uuidlib.uuid4())
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            got = list(ex.map(lambda i: create(i, "samesub", sub), range(8)))
        self.assertEqual(got.count(True), 1, got)
        self.assertEqual(got.count(False), 7, got)

    # ---- 04 BatchGetUsers ----------------------------------------------------------
    def test_04_batch_get_users(self):
        ab = self.get(handle="andrewbrown")
        unknown = str(uuidlib.uuid4())
        r = self.users.BatchGetUsers(stubs.users_pb2.BatchGetUsersRequest(
            uuids=[ab.uuid, unknown], handles=["andrewbrown", "BAYKO", "londo", "ghost"]), timeout=5)
        self.assertEqual(sorted(u.handle for u in r.users), ["andrewbrown", "bayko", "londo"])
        self.assertEqual(sorted(r.missing), sorted([unknown, "ghost"]))
        empty = self.users.BatchGetUsers(stubs.users_pb2.BatchGetUsersRequest(), timeout=5)
        self.assertEqual((len(empty.users), len(empty.missing)), (0, 0))

    def test_04b_batch_get_users_limits(self):
        B = stubs.users_pb2.BatchGetUsersRequest
        hundred = B(uuids=[str(uuidlib.uuid4()) for _ in range(50)],
                    handles=["h%d" % i for i in range(50)])
        r = self.users.BatchGetUsers(hundred, timeout=5)
        self.assertEqual(len(r.missing), 100)
        too_many = B(uuids=[str(uuidlib.uuid4()) for _ in range(50)],
                     handles=["h%d" % i for i in range(51)])
        self.assertEqual(self.code(self.users.BatchGetUsers, too_many), SC.INVALID_ARGUMENT)
        self.assertEqual(self.code(self.users.BatchGetUsers, B(handles=["ok", "not ok"])),
                         SC.INVALID_ARGUMENT)
        self.assertEqual(self.code(self.users.BatchGetUsers, B(uuids=["nope"])),
                         SC.INVALID_ARGUMENT)

    # ---- 05 SyncCognitoUsers -------------------------------------------------------
    def test_05_sync_cognito_users(self):
        S = stubs.users_pb2.SyncCognitoUsersRequest
        r = self.users.SyncCognitoUsers(S(), timeout=30)
        self.assertEqual((r.scanned, r.matched, r.updated, r.unmatched, r.incomplete, r.pages),
                         (5, 3, 3, 1, 1, 1))
        self.assertEqual((r.conflicts, list(r.conflict_usernames)), (0, []))
        self.assertEqual(sorted(r.unmatched_usernames), ["ghostuser", "nopref"])
        for handle in ("andrewbrown", "bayko", "londo"):
            self.assertEqual(self.get(cognito_user_id=self.subs[handle]).handle, handle)
        # Again from the command line: everything already linked.
        cli = self.s.run("users-svc", "sync-cognito", check=True)
        for line in ("scanned:    5", "matched:    3", "updated:    0", "unmatched:  1",
                     "incomplete: 1", "pages:      1"):
            self.assertIn(line, cli.stdout)
        js = json.loads(self.s.run("users-svc", "sync-cognito", "--json", check=True).stdout)
        self.assertEqual((js["scanned"], js["matched"], js["updated"], js["conflicts"]),
                         (5, 3, 0, 0))
        # No e-mail address in any output or log.
        self.assertNotIn("exampro", cli.stdout + cli.stderr)
        with open(self.s.log_path("users-svc")) as f:
            self.assertNotIn("@exampro.co", f.read())

    def test_05b_sync_bad_pools(self):
        S = stubs.users_pb2.SyncCognitoUsersRequest
        self.assertEqual(self.code(self.users.SyncCognitoUsers, S(user_pool_id="no/such")),
                         SC.INVALID_ARGUMENT)
        self.assertEqual(self.code(self.users.SyncCognitoUsers, S(user_pool_id="local_nosuchpool")),
                         SC.NOT_FOUND)
        r = self.s.run("users-svc", "sync-cognito", env={"AWS_COGNITO_USER_POOL_ID": ""})
        self.assertEqual(r.returncode, 2)

    def test_05c_sync_conflicts_are_reported_not_fatal(self):
        # Another Cognito user claims handle "Londo" (other case). londo is
        # linked by sub (test_05), so the row stays theirs; the claimant is a
        # conflict, named, and nothing changes.
        self.s._cognito_call("AdminCreateUser", {
            "UserPoolId": self.s.pool_id, "Username": "impostor", "MessageAction": "SUPPRESS",
            "UserAttributes": [{"Name": "preferred_username", "Value": "Londo"}]})
        before = self.get(handle="londo").cognito_user_id
        js = json.loads(self.s.run("users-svc", "sync-cognito", "--json", check=True).stdout)
        self.assertEqual((js["scanned"], js["matched"], js["conflicts"], js["updated"]),
                         (6, 3, 1, 0))
        self.assertEqual(js["conflict_usernames"], ["impostor"])
        r = self.users.SyncCognitoUsers(stubs.users_pb2.SyncCognitoUsersRequest(), timeout=30)
        self.assertEqual((r.scanned, r.matched, r.unmatched, r.incomplete, r.conflicts),
                         (6, 3, 1, 1, 1))
        self.assertEqual(list(r.conflict_usernames), ["impostor"])
        self.assertEqual(self.get(handle="londo").cognito_user_id, before)
        self.s._cognito_call("AdminDeleteUser", {"UserPoolId": self.s.pool_id,
                                                 "Username": "impostor"})
        # Two unlinked identities claiming one unlinked row: both conflicts,
        # the row stays unlinked.
        self.psql("INSERT INTO users (display_name, handle, email) VALUES ('Na Toth', 'natoth',"
                  " 'nt@narn.org')")
        for name in ("natoth1", "natoth2"):
            self.s._cognito_call("AdminCreateUser", {
                "UserPoolId": self.s.pool_id, "Username": name, "MessageAction": "SUPPRESS",
                "UserAttributes": [{"Name": "preferred_username", "Value": "NaToth"}]})
        try:
            js = json.loads(self.s.run("users-svc", "sync-cognito", "--json", check=True).stdout)
            self.assertEqual((js["conflicts"], sorted(js["conflict_usernames"]), js["updated"]),
                             (2, ["natoth1", "natoth2"], 0))
            self.assertEqual(self.get(handle="natoth").cognito_user_id, "")
        finally:
            for name in ("natoth1", "natoth2"):
                self.s._cognito_call("AdminDeleteUser", {"UserPoolId": self.s.pool_id,
                                                         "Username": name})
            self.psql("DELETE FROM users WHERE handle = 'natoth'")

    def test_05d_only_an_operator_moves_a_link(self):
        # bayko's row holds andrewbrown's sub and vice versa (a swap). The sync
        # moves neither: rows linked to a sub are only changed by an operator.
        a, b = self.subs["andrewbrown"], self.subs["bayko"]
        self.psql("BEGIN; UPDATE users SET cognito_user_id = NULL WHERE handle IN ('andrewbrown','bayko');"
                  " UPDATE users SET cognito_user_id = '%s' WHERE handle = 'bayko';"
                  " UPDATE users SET cognito_user_id = '%s' WHERE handle = 'andrewbrown'; COMMIT" % (a, b))
        r = self.users.SyncCognitoUsers(stubs.users_pb2.SyncCognitoUsersRequest(), timeout=30)
        self.assertEqual((r.matched, r.updated, r.conflicts), (3, 0, 0))
        self.assertEqual(self.get(cognito_user_id=a).handle, "bayko")
        self.assertEqual(self.get(cognito_user_id=b).handle, "andrewbrown")
        # The operator puts it right, by handle and sub; each change is
        # printed and logged with the old and the new sub.
        r = self.s.run("users-svc", "link", "andrewbrown", a)
        self.assertEqual(r.returncode, 1)
        self.assertIn("linked to user bayko", r.stderr)
        self.assertEqual(self.get(cognito_user_id=a).handle, "bayko")
        r = self.s.run("users-svc", "unlink", "Bayko", check=True)
        self.assertEqual(r.stdout.strip(), "bayko: %s -> (none)" % a)
        self.assertIn("identity link changed by operator: user bayko from sub %s to sub (none)" % a,
                      r.stderr)
        r = self.s.run("users-svc", "link", "andrewbrown", a, check=True)
        self.assertEqual(r.stdout.strip(), "andrewbrown: %s -> %s" % (b, a))
        self.assertIn("user andrewbrown from sub %s to sub %s" % (b, a), r.stderr)
        r = self.s.run("users-svc", "link", "bayko", b, check=True)
        self.assertEqual(r.stdout.strip(), "bayko: (none) -> %s" % b)
        r = self.s.run("users-svc", "link", "bayko", b, check=True)
        self.assertEqual(r.stdout.strip(), "bayko: unchanged, linked to %s" % b)
        self.assertNotIn("identity link changed", r.stderr)
        self.assertEqual(self.get(cognito_user_id=a).handle, "andrewbrown")
        self.assertEqual(self.get(cognito_user_id=b).handle, "bayko")
        # Bad input: exit 2 before touching the database; unknown handle: 1.
        for args in (("link", "bayko"), ("link", "bay-ko", b), ("link", "bayko", "a/b"),
                     ("unlink",), ("unlink", "bayko", b)):
            self.assertEqual(self.s.run("users-svc", *args).returncode, 2, args)
        r = self.s.run("users-svc", "link", "nosuchuser", str(uuidlib.uuid4()))
        self.assertEqual(r.returncode, 1)
        self.assertIn("no such user", r.stderr)
        r = self.users.SyncCognitoUsers(stubs.users_pb2.SyncCognitoUsersRequest(), timeout=30)
        self.assertEqual((r.matched, r.updated, r.conflicts), (3, 0, 0))

    def test_05e_sync_never_hands_a_linked_row_to_another_identity(self):
        # londo (linked by test_05) renames their own preferred_username with
        # their own token; mallory signs up claiming "londo". The row stays
        # londo's; mallory is a named conflict and gets nothing.
        S = stubs.users_pb2.SyncCognitoUsersRequest
        londo_sub = self.subs["londo"]
        self.assertEqual(self.get(handle="londo").cognito_user_id, londo_sub)
        self.s._cognito_call("UpdateUserAttributes", {
            "AccessToken": self.s.token("londo"),
            "UserAttributes": [{"Name": "preferred_username", "Value": "londo_m"}]})
        got = self.s._cognito_call("AdminGetUser", {"UserPoolId": self.s.pool_id,
                                                    "Username": "londo"})
        self.assertIn({"Name": "preferred_username", "Value": "londo_m"}, got["UserAttributes"])
        self.s._cognito_call("AdminCreateUser", {
            "UserPoolId": self.s.pool_id, "Username": "mallory", "MessageAction": "SUPPRESS",
            "UserAttributes": [{"Name": "preferred_username", "Value": "londo"},
                               {"Name": "email", "Value": "mallory@example.test"}]})
        got = self.s._cognito_call("AdminGetUser", {"UserPoolId": self.s.pool_id,
                                                    "Username": "mallory"})
        mallory_sub = {a["Name"]: a["Value"] for a in got["UserAttributes"]}["sub"]
        try:
            js = json.loads(self.s.run("users-svc", "sync-cognito", "--json", check=True).stdout)
            self.assertEqual((js["updated"], js["conflicts"], js["conflict_usernames"]),
                             (0, 1, ["mallory"]), js)
            r = self.users.SyncCognitoUsers(S(), timeout=30)
            self.assertEqual((r.updated, r.conflicts, list(r.conflict_usernames)),
                             (0, 1, ["mallory"]))
            self.assertEqual(r.scanned, r.matched + r.unmatched + r.incomplete + r.conflicts)
            row = self.get(handle="londo")
            self.assertEqual(row.cognito_user_id, londo_sub)
            self.assertEqual(self.get(cognito_user_id=londo_sub).handle, "londo")
            self.assertEqual(self.get_code(cognito_user_id=mallory_sub), SC.NOT_FOUND)
            # CreateUser is no back door: the handle in any case stays londo's.
            for handle in ("londo", "LONDO"):
                req = stubs.users_pb2.CreateUserRequest(display_name="Mallory", handle=handle,
                                                        email="mallory@example.test",
                                                        cognito_user_id=mallory_sub)
                self.assertEqual(self.code(self.users.CreateUser, req), SC.ALREADY_EXISTS, handle)
            self.assertEqual(self.get_code(cognito_user_id=mallory_sub), SC.NOT_FOUND)
            self.assertEqual(self.get(handle="londo").cognito_user_id, londo_sub)
            self.assertEqual(self.psql("SELECT count(*) FROM users WHERE lower(handle) = 'londo'"
                                       " OR cognito_user_id = '%s'" % mallory_sub), "1")
            with open(self.s.log_path("users-svc")) as f:
                self.assertIn("mallory", f.read())
        finally:
            self.s._cognito_call("AdminDeleteUser", {"UserPoolId": self.s.pool_id,
                                                     "Username": "mallory"})
            self.s._cognito_call("AdminUpdateUserAttributes", {
                "UserPoolId": self.s.pool_id, "Username": "londo",
                "UserAttributes": [{"Name": "preferred_username", "Value": "londo"}]})

    # ---- 06 timeouts -----------------------------------------------------------------
    def test_06_statement_timeout_and_deadline(self):
        # Someone holds an exclusive lock on users: lookups must end with
        # UNAVAILABLE after the 2 s statement_timeout, or at the caller's
        # deadline if that is sooner, and the service must be fine afterwards.
        locker = subprocess.Popen([os.path.join(pg_bindir(), "psql"), self.s.pg_url, "-c",
                                   "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE;"
                                   " SELECT pg_sleep(4); COMMIT"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 5
            while time.time() < deadline and self.psql(
                    "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock'"
                    " AND relation = 'users'::regclass AND granted") != "1":
                time.sleep(0.05)
            t0 = time.time()
            self.assertEqual(self.code(self.users.GetUser, stubs.users_pb2.GetUserRequest(
                handle="andrewbrown"), timeout=10), SC.UNAVAILABLE)
            self.assertTrue(1.5 < time.time() - t0 < 3.5, time.time() - t0)
            t0 = time.time()
            self.assertEqual(self.code(self.users.GetUser, stubs.users_pb2.GetUserRequest(
                handle="bayko"), timeout=0.5), SC.DEADLINE_EXCEEDED)
            self.assertLess(time.time() - t0, 1.5)
            self.assertTrue(self.serving(), "SELECT 1 still answers")
        finally:
            locker.wait(10)
        self.assertEqual(self.get(handle="bayko").handle, "bayko")

    def test_07_pool_wait_is_bounded_by_the_deadline(self):
        # A second server with ONE connection and four workers: while that
        # connection is stuck behind a lock, other callers wait for it only
        # until their own deadline, and everything works once it is free.
        from stack import free_port
        port = free_port()
        env = dict(self.s.env(), PG_POOL_SIZE="1", RPC_WORKERS="4",
                   USERS_LISTEN="127.0.0.1:%d" % port)
        log = open(os.path.join(self.s.logs, "users-svc-pool1.log"), "wb")
        proc = subprocess.Popen([self.s.binary("users-svc")], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        log.close()
        try:
            with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
                users = stubs.users_pb2_grpc.UsersServiceStub(ch)
                grpc.channel_ready_future(ch).result(timeout=10)
                req = stubs.users_pb2.GetUserRequest(handle="londo")
                self.assertEqual(self.code(users.GetUser, req), SC.OK)
                locker = subprocess.Popen([os.path.join(pg_bindir(), "psql"), self.s.pg_url, "-c",
                                           "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE;"
                                           " SELECT pg_sleep(2.5); COMMIT"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    time.sleep(0.3)
                    with concurrent.futures.ThreadPoolExecutor(1) as ex:
                        holder = ex.submit(self.code, users.GetUser, req, 10)
                        time.sleep(0.2)
                        t0 = time.time()
                        # The server gives up at the caller's deadline with UNAVAILABLE;
                        # which of the two the client sees first is a race.
                        self.assertIn(self.code(users.GetUser, req, timeout=0.7),
                                      (SC.UNAVAILABLE, SC.DEADLINE_EXCEEDED))
                        self.assertLess(time.time() - t0, 1.5)
                        self.assertIn(holder.result(), (SC.OK, SC.UNAVAILABLE))
                finally:
                    locker.wait(10)
                self.assertEqual(self.code(users.GetUser, req), SC.OK)
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(15), 0, "clean exit (sanitizers) after SIGTERM")

    # ---- 09 PostgreSQL restart (last) ---------------------------------------------
    def serving(self, name=""):
        h = stubs.health_pb2
        try:
            return self.health.Check(h.HealthCheckRequest(service=name), timeout=3).status == \
                h.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def test_09_postgres_restart(self):
        self.assertTrue(self.serving())
        stop = threading.Event()
        seen = []

        def load():
            while not stop.is_set():
                seen.append(self.get_code(handle="andrewbrown"))
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        self.s.kill("postgres")
        t0 = time.time()
        self.assertEqual(self.get_code(handle="bayko"), SC.UNAVAILABLE)
        self.assertLess(time.time() - t0, 3, "UNAVAILABLE comes fast, not after a hang")
        deadline = time.time() + 5
        while self.serving() and time.time() < deadline:
            time.sleep(0.1)
        self.assertFalse(self.serving(), "NOT_SERVING while PostgreSQL is down")
        self.assertTrue(self.serving("liveness"), "the process is alive: no restart for it")
        self.s.restart("postgres")
        t0 = time.time()
        ok = False
        while time.time() - t0 < 5 and not ok:
            ok = self.get_code(handle="bayko") == SC.OK
            time.sleep(0.05)
        self.assertTrue(ok, "calls succeed within 5 s of the restart")
        while time.time() - t0 < 5 and not self.serving():
            time.sleep(0.1)
        self.assertTrue(self.serving())
        stop.set()
        for t in threads:
            t.join()
        self.assertGreater(seen.count(SC.OK), 0)
        self.assertGreater(seen.count(SC.UNAVAILABLE), 0)
        self.assertEqual(set(seen) - {SC.OK, SC.UNAVAILABLE}, set(), "only OK or UNAVAILABLE")
        # All connections recovered: a burst wider than the pool succeeds.
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            codes = list(ex.map(lambda _: self.get_code(handle="londo"), range(32)))
        self.assertEqual(codes, [SC.OK] * 32)


if __name__ == "__main__":
    unittest.main(verbosity=2)
