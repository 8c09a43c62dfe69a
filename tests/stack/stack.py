"""Starts the parts of Cruddur Messaging on loopback for tests and for deploy/local/up.

    with Stack() as s:            # temp dir, free ports, everything stopped on exit
        s.postgres(); s.dynalite(); s.cognito()
        s.users_svc(migrate=True, seed=True); s.messages_svc(schema=True); s.gateway()

Every process writes its output to <root>/logs/<name>.log. When a test stack
stops, each of our binaries must exit 0 after SIGTERM: a sanitizer report
(leak, UB) makes the exit status non-zero and fails the test that owns the
stack. deploy/local/up uses the same code with fixed ports, a kept data folder
and detached processes (pid files under <root>/run/).
Run with /usr/bin/python3 (Debian's python3-grpcio).
"""
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("CRUDDUR_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BUILD_DIR = os.environ.get("CRUDDUR_BUILD_DIR") or os.path.join(SOURCE_DIR, "build", "asan")
NODE_BIN = os.path.join(SOURCE_DIR, "deploy", "local", "node_modules", ".bin")
DEV_PASSWORD = "Cruddur-dev-1"
REGION = "us-east-1"
TEST_PAGE_SECRET = "test-page-token-secret-0123456789abcdef"
OUR_BINARIES = ("users-svc", "messages-svc", "gateway")
PORT_VARS = {"postgres": "POSTGRES_PORT", "dynalite": "DYNALITE_PORT", "cognito": "COGNITO_PORT",
             "users": "USERS_PORT", "messages": "MESSAGES_PORT", "gateway": "GATEWAY_PORT"}


# The gateway's abuse limits for suites that post and read as fast as they can
# (load, soak, faults, benchmarks): set explicitly, high enough never to refuse them, so
# the limiter still runs on every request they make. The defaults (gateway
# README) are sized for people, not for these.
LOAD_TEST_LIMITS = {
    "GATEWAY_LIMIT_SENDS_BURST": "1000000", "GATEWAY_LIMIT_SENDS_PER_MIN": "1000000",
    "GATEWAY_LIMIT_STARTS_BURST": "1000000", "GATEWAY_LIMIT_STARTS_PER_MIN": "1000000",
    "GATEWAY_LIMIT_SHORT_BURST": "1000000", "GATEWAY_LIMIT_SHORT_PER_MIN": "1000000",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_busy(port):
    """True when something listens on 127.0.0.1:port. SO_REUSEADDR as servers
    use it, so connections left in TIME_WAIT by a stopped server don't count."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True


def pg_bindir():
    for cand in ("/usr/lib/postgresql/15/bin",):
        if os.path.exists(os.path.join(cand, "initdb")):
            return cand
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
    return out.stdout.strip()


def _as_postgres(cmd):
    """initdb refuses root: run PostgreSQL tools as the postgres user when root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def postgres_can_reach(path):
    """True when the postgres user can enter path (every folder above it searchable)."""
    return subprocess.run(_as_postgres(["test", "-x", path]), capture_output=True).returncode == 0


def pg_data_home():
    """Where PostgreSQL data goes when the stack's folder is out of the postgres
    user's reach (a clone in /root, mode 0700): postgres's own home, which the
    postgresql package creates."""
    try:
        return os.path.join(pwd.getpwnam("postgres").pw_dir, "cruddur")
    except KeyError:
        raise StackError("no postgres user: install the postgresql package "
                         "(deploy/local/packages.apt)")


def remove_stack_folder(path):
    """Deletes a stack's folder and, when its PostgreSQL data lives elsewhere
    (a symlink, see Stack._pg_folder), that data too."""
    pg = os.path.join(path, "postgres")
    if os.path.islink(pg):
        shutil.rmtree(os.path.realpath(pg), ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)


# The gateway's settings a caller may give in the environment; these values only
# fill in what is unset.
GATEWAY_DEFAULTS = {"FRONTEND_URL": "http://localhost:3000", "BACKEND_URL": "",
                    "RPC_WORKERS": "4", "GATEWAY_STATIC_DIR": os.path.join(SOURCE_DIR, "web")}


def aws_json(url, target, body, version="1.1", timeout=10):
    """One AWS JSON-protocol call (cognito-local needs x-amz-json-1.1)."""
    headers = {"Content-Type": "application/x-amz-json-" + version, "X-Amz-Target": target}
    if version == "1.0":
        # dynalite wants a SigV4-shaped header and never checks the signature.
        headers["X-Amz-Date"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=local/%s/%s/dynamodb/aws4_request, "
                                    "SignedHeaders=host, Signature=0" % (
                                        time.strftime("%Y%m%d", time.gmtime()), REGION))
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raise RuntimeError("%s failed: HTTP %d %s" % (target, e.code, e.read()[:300]))


def http_ok(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= r.status < 300
    except Exception:
        return False


class StackError(RuntimeError):
    pass


def _pg_tool(argv):
    """Runs a PostgreSQL client tool; its own error line becomes a StackError."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True)
    except OSError as e:
        raise StackError("%s: %s" % (argv[0], e))
    if r.returncode != 0:
        tool = os.path.basename(next(a for a in argv if a.startswith("/")))
        lines = (r.stderr or r.stdout).strip().splitlines() or ["exit status %d" % r.returncode]
        raise StackError("%s failed: %s" % (tool, lines[-1]))
    return r.stdout


class Proc:
    def __init__(self, name, argv, env, cwd, log, detach):
        self.name, self.argv, self.env, self.cwd, self.log, self.detach = name, argv, env, cwd, log, detach
        self.popen = None
        self.pid = None

    def start(self):
        logf = open(self.log, "ab")
        self.popen = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=logf,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        logf.close()
        self.pid = self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=15):
        """SIGTERM, wait, then SIGKILL. Returns the exit status (negative = signal)."""
        if self.popen is None:
            return 0
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
                return "timeout"
        return self.popen.returncode


class Stack:
    def __init__(self, root=None, ports=None, detach=False, keep=False):
        """root: folder for data and logs (a new temp dir when None).
        ports: fixed ports by name (postgres, dynalite, cognito, users, messages, gateway).
        detach: processes outlive this object (deploy/local/up); pid files in root/run."""
        self.tmp = root is None
        self.root = os.path.abspath(root or tempfile.mkdtemp(prefix="cruddur-stack-"))
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o755)  # the postgres user must reach its data dir
        self.logs = os.path.join(self.root, "logs")
        self.run_dir = os.path.join(self.root, "run")
        os.makedirs(self.logs, exist_ok=True)
        os.makedirs(self.run_dir, exist_ok=True)
        self.fixed_ports = ports or {}
        self.detach = detach
        self.keep = keep
        self.procs = {}
        self.ports = {}
        self.pool_id = self.client_id = self.issuer = None
        self.pg_url = self.ddb_url = self.cognito_url = None
        self.users_addr = self.messages_addr = self.gateway_url = None
        self.extra_env = {}
        self._pg_data = None

    # ---- context -------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        codes = self.stop()
        if not self.tmp or self.keep:
            pass
        elif exc_type is None:
            remove_stack_folder(self.root)
        bad = {n: c for n, c in codes.items() if n not in ("cognito", "dynalite", "postgres")
               and c != 0}
        if bad and exc_type is None:
            raise StackError("binaries did not exit cleanly after SIGTERM: %s\n%s" % (
                bad, "\n".join(self.tail(n, 40) for n in bad)))
        return False

    def _port(self, name):
        if name not in self.ports:
            p = self.fixed_ports.get(name) or free_port()
            if name in self.fixed_ports and port_busy(p):
                raise StackError("port %d for %s is busy: set %s to another port" % (
                    p, name, PORT_VARS.get(name, name.upper() + "_PORT")))
            self.ports[name] = p
        return self.ports[name]

    def log_path(self, name):
        if name == "postgres" and self._pg_data:
            return os.path.join(self._pg_data, "postgres.log")  # writable by postgres
        return os.path.join(self.logs, name + ".log")

    def tail(self, name, n=30):
        try:
            with open(self.log_path(name), "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()[-n:]
        except OSError:
            return "(no log for %s)" % name
        return "---- %s (last %d lines) ----\n%s" % (name, n, "\n".join(lines))

    def _spawn(self, name, argv, env=None, cwd=None):
        p = Proc(name, argv, env or os.environ.copy(), cwd or self.root, self.log_path(name), self.detach)
        p.start()
        self.procs[name] = p
        with open(os.path.join(self.run_dir, name + ".pid"), "w") as f:
            f.write(str(p.pid))
        return p

    def _wait(self, name, ready, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            p = self.procs.get(name)
            if p is not None and p.popen is not None and not p.alive():
                raise StackError("%s exited with %s while starting\n%s" % (
                    name, p.popen.returncode, self.tail(name)))
            if ready():
                return
            time.sleep(0.05)
        raise StackError("%s not ready after %ds\n%s" % (name, timeout, self.tail(name)))

    # ---- PostgreSQL ----------------------------------------------------
    def postgres(self, db="cruddur"):
        port = self._port("postgres")
        self._pg_data = self._pg_folder()
        bindir = pg_bindir()
        if not os.path.exists(os.path.join(self._pg_data, "data", "PG_VERSION")):
            os.makedirs(self._pg_data, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self._pg_data, "postgres", "postgres")
            _pg_tool(_as_postgres([
                os.path.join(bindir, "initdb"), "-D", os.path.join(self._pg_data, "data"),
                "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]))
        self._pg_start()
        self.pg_url = "postgresql://postgres@127.0.0.1:%d/%s" % (port, db)
        exists = _pg_tool([os.path.join(bindir, "psql"), "-h", "127.0.0.1", "-p", str(port),
                           "-U", "postgres", "-tAc",
                           "SELECT 1 FROM pg_database WHERE datname='%s'" % db]).strip()
        if exists != "1":
            _pg_tool([os.path.join(bindir, "createdb"), "-h", "127.0.0.1", "-p", str(port),
                      "-U", "postgres", db])
        return self.pg_url

    def _pg_folder(self):
        """<root>/postgres, or a symlink there to a folder the postgres user can
        reach when <root> is out of its reach (see pg_data_home). Returns the
        real path: the postgres user could not follow the link."""
        link = os.path.join(self.root, "postgres")
        if os.geteuid() != 0 or os.path.islink(link) or postgres_can_reach(self.root):
            return os.path.realpath(link)
        key = hashlib.sha256(self.root.encode()).hexdigest()[:12]
        target = os.path.join(pg_data_home(), "%s-%s" % (os.path.basename(
            os.path.dirname(self.root)) or "stack", key))
        os.makedirs(target, exist_ok=True)
        shutil.chown(os.path.dirname(target), "postgres", "postgres")
        shutil.chown(target, "postgres", "postgres")
        os.symlink(target, link)
        return target

    def _pg_start(self):
        port = self.ports["postgres"]
        bindir = pg_bindir()
        r = subprocess.run(_as_postgres([
            os.path.join(bindir, "pg_ctl"), "-D", os.path.join(self._pg_data, "data"),
            "-l", self.log_path("postgres"), "-w", "-t", "30", "-o",
            "-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off" % (port, self._pg_data),
            "start"]), capture_output=True, text=True)
        if r.returncode != 0:
            raise StackError("postgres did not start: %s\n%s" % (r.stdout + r.stderr, self.tail("postgres")))
        with open(os.path.join(self._pg_data, "data", "postmaster.pid")) as f:
            pid = int(f.readline())
        with open(os.path.join(self.run_dir, "postgres.pid"), "w") as f:
            f.write(str(pid))

    def _pg_stop(self, mode="fast"):
        if self._pg_data is None:
            return 0
        r = subprocess.run(_as_postgres([
            os.path.join(pg_bindir(), "pg_ctl"), "-D", os.path.join(self._pg_data, "data"),
            "-m", mode, "-w", "stop"]), capture_output=True, text=True)
        return 0 if r.returncode == 0 else r.returncode

    # ---- dynalite ------------------------------------------------------
    def dynalite(self):
        port = self._port("dynalite")
        data = os.path.join(self.root, "dynalite")
        os.makedirs(data, exist_ok=True)
        self._spawn("dynalite", [os.path.join(NODE_BIN, "dynalite"), "--host", "127.0.0.1",
                                 "--port", str(port), "--path", data, "--createTableMs", "0",
                                 "--deleteTableMs", "0", "--updateTableMs", "0"])
        self.ddb_url = "http://127.0.0.1:%d" % port
        self._wait("dynalite", lambda: http_ok(self.ddb_url + "/"))
        return self.ddb_url

    # ---- cognito-local -------------------------------------------------
    def cognito(self):
        port = self._port("cognito")
        home = os.path.join(self.root, "cognito")
        os.makedirs(os.path.join(home, ".cognito"), exist_ok=True)
        self.cognito_url = "http://127.0.0.1:%d" % port
        with open(os.path.join(home, ".cognito", "config.json"), "w") as f:
            json.dump({"TokenConfig": {"IssuerDomain": self.cognito_url},
                       "UserPoolDefaults": {"UsernameAttributes": []}}, f)
        env = os.environ.copy()
        env.update(HOST="127.0.0.1", PORT=str(port))
        self._spawn("cognito", [os.path.join(NODE_BIN, "cognito-local")], env=env, cwd=home)
        self._wait("cognito", lambda: http_ok(self.cognito_url + "/health"))
        self._cognito_pool(home)
        return self.cognito_url

    def _cognito_call(self, op, body):
        return aws_json(self.cognito_url, "AWSCognitoIdentityProviderService." + op, body)

    def _cognito_pool(self, home):
        """Creates the pool and app client once; later calls reuse them."""
        state = os.path.join(home, "pool.json")
        if os.path.exists(state):
            with open(state) as f:
                st = json.load(f)
        else:
            pool = self._cognito_call("CreateUserPool", {"PoolName": "cruddur"})["UserPool"]["Id"]
            client = self._cognito_call("CreateUserPoolClient", {
                "UserPoolId": pool, "ClientName": "cruddur-web",
                "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]})
            st = {"pool_id": pool, "client_id": client["UserPoolClient"]["ClientId"]}
            with open(state, "w") as f:
                json.dump(st, f)
        self.pool_id, self.client_id = st["pool_id"], st["client_id"]
        self.issuer = "%s/%s" % (self.cognito_url, self.pool_id)

    def cognito_user(self, handle, name=None, email=None, password=DEV_PASSWORD,
                     preferred_username=True):
        """Creates (or finds) a confirmed Cognito user; returns its sub."""
        attrs = [{"Name": "name", "Value": name or handle},
                 {"Name": "email", "Value": email or "%s@example.test" % handle}]
        if preferred_username:
            attrs.append({"Name": "preferred_username", "Value": handle})
        try:
            self._cognito_call("AdminCreateUser", {
                "UserPoolId": self.pool_id, "Username": handle, "MessageAction": "SUPPRESS",
                "TemporaryPassword": password, "UserAttributes": attrs})
        except RuntimeError as e:
            if "UsernameExists" not in str(e):
                raise
        self._cognito_call("AdminSetUserPassword", {
            "UserPoolId": self.pool_id, "Username": handle, "Password": password, "Permanent": True})
        got = self._cognito_call("AdminGetUser", {"UserPoolId": self.pool_id, "Username": handle})
        return {a["Name"]: a["Value"] for a in got["UserAttributes"]}["sub"]

    def token(self, handle, password=DEV_PASSWORD, kind="AccessToken"):
        r = self._cognito_call("InitiateAuth", {
            "AuthFlow": "USER_PASSWORD_AUTH", "ClientId": self.client_id,
            "AuthParameters": {"USERNAME": handle, "PASSWORD": password}})
        return r["AuthenticationResult"][kind]

    # ---- our binaries --------------------------------------------------
    def binary(self, name):
        path = os.path.join(BUILD_DIR, name, name)
        if not os.path.exists(path):
            raise StackError("binary not built: %s" % path)
        return path

    def env(self):
        e = os.environ.copy()
        e.update({
            "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
            "DDB_MESSAGE_TABLE": "cruddur-messages", "PAGE_TOKEN_SECRET": TEST_PAGE_SECRET,
        })
        for k, v in GATEWAY_DEFAULTS.items():
            e.setdefault(k, v)
        e.pop("AWS_SESSION_TOKEN", None)
        e.pop("AWS_PROFILE", None)
        supp = os.path.join(SOURCE_DIR, "tests", "lsan.supp")
        if os.path.exists(supp):
            e["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % supp
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=23")
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=24")
        if self.pg_url:
            e["CONNECTION_URL"] = self.pg_url
        if self.ddb_url:
            e["AWS_ENDPOINT_URL_DYNAMODB"] = self.ddb_url
        if self.cognito_url:
            e["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] = self.cognito_url
            e["COGNITO_ENDPOINT"] = self.cognito_url
            e["AWS_COGNITO_USER_POOL_ID"] = self.pool_id
            e["AWS_COGNITO_USER_POOL_CLIENT_ID"] = self.client_id
            e["COGNITO_ISSUER"] = self.issuer
        if "users" in self.ports:
            e["USERS_LISTEN"] = "127.0.0.1:%d" % self.ports["users"]
            e["USERS_ADDR"] = "127.0.0.1:%d" % self.ports["users"]
        if "messages" in self.ports:
            e["MESSAGES_LISTEN"] = "127.0.0.1:%d" % self.ports["messages"]
            e["MESSAGES_ADDR"] = "127.0.0.1:%d" % self.ports["messages"]
        if "gateway" in self.ports:
            e["GATEWAY_LISTEN"] = "127.0.0.1:%d" % self.ports["gateway"]
            e["GATEWAY_URL"] = "http://127.0.0.1:%d" % self.ports["gateway"]
        e.update(self.extra_env)
        return e

    def run(self, name, *args, env=None, timeout=120, check=False):
        """Runs one of our binaries' subcommands against this stack."""
        e = self.env()
        if env:
            e.update(env)
        r = subprocess.run([self.binary(name)] + list(args), env=e, capture_output=True,
                           text=True, timeout=timeout, cwd=self.root)
        if check and r.returncode != 0:
            raise StackError("%s %s exited %d\nstdout: %s\nstderr: %s" % (
                name, " ".join(args), r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
        return r

    def _grpc_serving(self, addr):
        try:
            import grpc
        except ImportError as e:  # else every wait would only time out
            raise StackError("%s: install python3-grpcio (deploy/local/packages.apt)" % e)
        h = stubs.health_pb2
        try:
            with grpc.insecure_channel(addr) as ch:
                resp = stubs.health_pb2_grpc.HealthStub(ch).Check(
                    h.HealthCheckRequest(service=""), timeout=1)
                return resp.status == h.HealthCheckResponse.SERVING
        except Exception:
            return False

    def _start_service(self, name, port_name, env=None, wait=True, timeout=30):
        self._port(port_name)
        e = self.env()
        if env:
            e.update(env)
        self._spawn(name, [self.binary(name)], env=e)
        self._envs = getattr(self, "_envs", {})
        self._envs[name] = env
        addr = "127.0.0.1:%d" % self.ports[port_name]
        if wait:
            self._wait(name, lambda: self._grpc_serving(addr), timeout)
        return addr

    def users_svc(self, migrate=True, seed=True, env=None, wait=True):
        self._port("users")
        if migrate:
            self.run("users-svc", "migrate", check=True)
        if seed:
            self.run("users-svc", "seed", check=True)
        self.users_addr = self._start_service("users-svc", "users", env, wait)
        return self.users_addr

    def messages_svc(self, schema=True, env=None, wait=True):
        self._port("messages")
        if schema:
            self.run("messages-svc", "schema-load", check=True)
        self.messages_addr = self._start_service("messages-svc", "messages", env, wait)
        return self.messages_addr

    def messages_replica(self, name, env=None, wait=True):
        """One more messages-svc process on the same table, on a port of its
        own, for tests with several replicas. `name` is the process name (and
        its key in ports); an int n >= 2 means "messages-svc-<n>". Started
        again by calling this again; stopped with terminate(name) or stop().
        Returns its address."""
        if isinstance(name, int):
            name = "messages-svc-%d" % name
        e = self.env()
        e.update(env or {})
        e["MESSAGES_LISTEN"] = "127.0.0.1:%d" % self._port(name)
        self._spawn(name, [self.binary("messages-svc")], env=e)
        addr = e["MESSAGES_LISTEN"]
        if wait:
            self._wait(name, lambda: self._grpc_serving(addr))
        return addr

    def gateway(self, env=None, wait=True):
        port = self._port("gateway")
        e = self.env()
        if env:
            e.update(env)
        self._spawn("gateway", [self.binary("gateway")], env=e)
        self._envs = getattr(self, "_envs", {})
        self._envs["gateway"] = env
        self.gateway_url = "http://127.0.0.1:%d" % port
        if wait:
            self._wait("gateway", lambda: http_ok(self.gateway_url + "/healthz"))
        return self.gateway_url

    # ---- faults --------------------------------------------------------
    def kill(self, name, sig=signal.SIGKILL):
        """Stops a part abruptly (PostgreSQL: immediate shutdown)."""
        if name == "postgres":
            return self._pg_stop("immediate")
        p = self.procs[name]
        p.signal(sig)
        p.popen.wait(15)
        return p.popen.returncode

    def log_mark(self, name):
        """The current end of a part's log: pass it to wait_log as `since`."""
        try:
            return os.path.getsize(self.log_path(name))
        except OSError:
            return 0

    def wait_log(self, name, text, since=0, timeout=15):
        """Waits until `text` appears in the part's log after offset `since`.
        Returns True, or False after `timeout` s or once the part has exited
        (so a dead process fails the caller at once, not after the timeout)."""
        deadline = time.time() + timeout
        p = self.procs.get(name)
        while True:
            gone = p is not None and not p.alive()  # before the read: its last lines count
            try:
                with open(self.log_path(name), "rb") as f:
                    f.seek(since)
                    if text.encode() in f.read():
                        return True
            except OSError:
                pass
            if gone or time.time() >= deadline:
                return False
            time.sleep(0.05)

    def terminate(self, name, timeout=15):
        """SIGTERM and wait: returns the exit status."""
        if name == "postgres":
            return self._pg_stop("fast")
        return self.procs[name].stop(timeout)

    def restart(self, name, wait=True):
        if name == "postgres":
            self._pg_start()
            return
        if name in self.procs and self.procs[name].alive():
            self.procs[name].stop()
        if name == "dynalite":
            self.dynalite()
        elif name == "cognito":
            self.cognito()
        elif name == "users-svc":
            self._start_service("users-svc", "users", self._envs.get(name), wait)
        elif name == "messages-svc":
            self._start_service("messages-svc", "messages", self._envs.get(name), wait)
        elif name == "gateway":
            self.gateway(self._envs.get(name), wait)
        else:
            raise StackError("unknown part " + name)

    def stop(self):
        """Stops everything this object started (not when detached). Returns exit codes."""
        codes = {}
        if self.detach:
            return codes
        replicas = [n for n in self.procs if n not in OUR_BINARIES + ("cognito", "dynalite")]
        for name in ["gateway"] + replicas + ["messages-svc", "users-svc"]:
            if name in self.procs:
                codes[name] = self.procs[name].stop()
        for name in ("cognito", "dynalite"):
            if name in self.procs:
                codes[name] = self.procs[name].stop()
        codes["postgres"] = self._pg_stop("fast")
        return codes


# ---- generated python gRPC modules ---------------------------------------
class _Stubs:
    """protoc --python_out/--grpc_out into a temp dir on first use."""

    def __init__(self):
        self._loaded = False

    def _load(self):
        import importlib
        out = tempfile.mkdtemp(prefix="cruddur-pystubs-")
        protos = os.path.join(SOURCE_DIR, "proto")
        plugin = "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin"
        # Copies under distinct names: both reflection versions are "reflection.proto",
        # and generating under grpc/ would shadow the grpc package itself.
        src = tempfile.mkdtemp(prefix="cruddur-protos-")
        gp = "/usr/share/grpc-proto/grpc"
        shutil.copy(os.path.join(gp, "health/v1/health.proto"), os.path.join(src, "health.proto"))
        shutil.copy(os.path.join(gp, "reflection/v1/reflection.proto"),
                    os.path.join(src, "reflection_v1.proto"))
        shutil.copy(os.path.join(gp, "reflection/v1alpha/reflection.proto"),
                    os.path.join(src, "reflection_v1alpha.proto"))
        subprocess.run(["protoc", "-I", protos, "-I", "/usr/include", "--python_out", out,
                        "--grpc_out", out, plugin, "cruddur/users/v1/users.proto",
                        "cruddur/messages/v1/messages.proto"], check=True)
        subprocess.run(["protoc", "-I", src, "--python_out", out, "--grpc_out", out, plugin,
                        "health.proto", "reflection_v1.proto", "reflection_v1alpha.proto"], check=True)
        shutil.rmtree(src, ignore_errors=True)
        sys.path.insert(0, out)
        for attr, mod in (("users_pb2", "cruddur.users.v1.users_pb2"),
                          ("users_pb2_grpc", "cruddur.users.v1.users_pb2_grpc"),
                          ("messages_pb2", "cruddur.messages.v1.messages_pb2"),
                          ("messages_pb2_grpc", "cruddur.messages.v1.messages_pb2_grpc"),
                          ("health_pb2", "health_pb2"), ("health_pb2_grpc", "health_pb2_grpc"),
                          ("reflection_v1_pb2", "reflection_v1_pb2"),
                          ("reflection_v1_pb2_grpc", "reflection_v1_pb2_grpc"),
                          ("reflection_v1alpha_pb2", "reflection_v1alpha_pb2"),
                          ("reflection_v1alpha_pb2_grpc", "reflection_v1alpha_pb2_grpc")):
            object.__setattr__(self, attr, importlib.import_module(mod))
        self._loaded = True

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if not self._loaded:
            self._load()
        return object.__getattribute__(self, name)


stubs = _Stubs()
