"""deploy/local/{up,down,token}: the local stack on fixed ports under .local/.

Uses the test harness (tests/stack/stack.py) in detached mode: processes keep
running after this script exits; their pids are in .local/run/*.pid so that
`down` stops exactly what `up` started.
"""
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCAL = os.path.join(ROOT, ".local")
os.environ.setdefault("CRUDDUR_SOURCE_DIR", ROOT)
os.environ.setdefault("CRUDDUR_BUILD_DIR", os.path.join(ROOT, "build", "local"))
sys.path.insert(0, os.path.join(ROOT, "tests", "stack"))
import stack  # noqa: E402

SEED_USERS = [("andrewbrown", "Andrew Brown", "andrew@exampro.co"),
              ("bayko", "Andrew Bayko", "bayko@exampro.co"),
              ("londo", "Londo Mollari", "lmollari@centari.com")]
PORTS = {"postgres": ("POSTGRES_PORT", 5432), "dynalite": ("DYNALITE_PORT", 8000),
         "cognito": ("COGNITO_PORT", 9229), "users": ("USERS_PORT", 50051),
         "messages": ("MESSAGES_PORT", 50052), "gateway": ("GATEWAY_PORT", 4567)}
STOP_ORDER = ("gateway", "messages-svc", "users-svc", "cognito", "dynalite")


def ports():
    out = {}
    for name, (var, default) in PORTS.items():
        val = os.environ.get(var, str(default))
        if not val.isdigit() or not 0 < int(val) < 65536:
            sys.exit("%s must be a port number (got %r)" % (var, val))
        out[name] = int(val)
    return out


def step(msg):
    print("==> " + msg, flush=True)


def write_env(s):
    e = s.env()
    keys = ["GATEWAY_URL", "USERS_ADDR", "MESSAGES_ADDR", "CONNECTION_URL",
            "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
            "COGNITO_ENDPOINT", "COGNITO_ISSUER", "AWS_COGNITO_USER_POOL_ID",
            "AWS_COGNITO_USER_POOL_CLIENT_ID", "AWS_REGION", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "DDB_MESSAGE_TABLE", "FRONTEND_URL", "BACKEND_URL",
            "PAGE_TOKEN_SECRET", "USERS_LISTEN", "MESSAGES_LISTEN", "GATEWAY_LISTEN"]
    keys += sorted(k for k in e if k.startswith("GATEWAY_") and k not in keys)
    with open(os.path.join(LOCAL, "env"), "w") as f:
        f.write("# Written by deploy/local/up. Source it to run any binary against the stack.\n")
        for k in keys:
            f.write("export %s=%s\n" % (k, shlex_quote(e.get(k, ""))))


def shlex_quote(v):
    import shlex
    return shlex.quote(v)


def up():
    down(quiet=True)  # running up twice restarts the services, keeps the data
    s = stack.Stack(root=LOCAL, ports=ports(), detach=True)
    # Local dev secret for page tokens: stable across restarts, never used on AWS.
    secret_file = os.path.join(LOCAL, "page-token-secret")
    if not os.path.exists(secret_file):
        with open(secret_file, "w") as f:
            f.write(os.urandom(32).hex())
    with open(secret_file) as f:
        s.extra_env["PAGE_TOKEN_SECRET"] = f.read().strip()
    s.extra_env["LOG_LEVEL"] = "info"
    step("PostgreSQL on 127.0.0.1:%d" % s._port("postgres"))
    s.postgres()
    step("dynalite on 127.0.0.1:%d" % s._port("dynalite"))
    s.dynalite()
    step("cognito-local on 127.0.0.1:%d" % s._port("cognito"))
    s.cognito()
    for handle, name, email in SEED_USERS:
        s.cognito_user(handle, name, email)
    step("users-svc: migrate, seed, serve on 127.0.0.1:%d" % s._port("users"))
    s.users_svc(migrate=True, seed=True)
    out = s.run("users-svc", "sync-cognito", check=True)
    print(out.stdout.strip())
    step("messages-svc: schema-load, serve on 127.0.0.1:%d" % s._port("messages"))
    s.messages_svc(schema=True)
    out = s.run("messages-svc", "seed", check=True)
    print(out.stdout.strip())
    step("gateway on 127.0.0.1:%d" % s._port("gateway"))
    s.gateway()
    s._port("gateway")
    write_env(s)
    g, u, m = s.gateway_url, s.users_addr, s.messages_addr
    print("""
Cruddur Messaging is up.
  gateway        %(g)s
  users-svc      %(u)s   (gRPC, reflection on)
  messages-svc   %(m)s   (gRPC, reflection on)
  PostgreSQL     %(pg)s
  dynalite       %(ddb)s
  cognito-local  %(cg)s   pool %(pool)s, client %(client)s
  dev users      andrewbrown, bayko, londo (password %(pw)s)

Try:
  curl %(g)s/api/users/@andrewbrown/short
  TOKEN=$(deploy/local/token andrewbrown)
  curl -H "Authorization: Bearer $TOKEN" %(g)s/api/message_groups
  grpcurl -plaintext %(u)s list
  grpcurl -plaintext -d '{"handle":"andrewbrown"}' %(u)s cruddur.users.v1.UsersService/GetUser

Environment for running binaries by hand: source .local/env
Logs: .local/logs/   Stop: deploy/local/down  (add --purge to delete the data)
PostgreSQL data: %(pgdata)s
""" % dict(g=g, u=u, m=m, pg=s.pg_url, ddb=s.ddb_url, cg=s.cognito_url, pool=s.pool_id,
           client=s.client_id, pw=stack.DEV_PASSWORD, pgdata=os.path.realpath(s._pg_data)))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def stop_pid(name, pid):
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 15
    while time.time() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        print("%s did not stop in 15 s: killed" % name)


def down(purge=False, quiet=False):
    run_dir = os.path.join(LOCAL, "run")
    stopped = []
    for name in STOP_ORDER:
        pidfile = os.path.join(run_dir, name + ".pid")
        if os.path.exists(pidfile):
            with open(pidfile) as f:
                pid = int(f.read().strip() or 0)
            if pid and pid_alive(pid):
                stop_pid(name, pid)
                stopped.append(name)
            os.remove(pidfile)
    # The real path: the postgres user may not be able to follow .local/postgres.
    pgdata = os.path.join(os.path.realpath(os.path.join(LOCAL, "postgres")), "data")
    if os.path.exists(os.path.join(pgdata, "postmaster.pid")):
        subprocess.run(stack._as_postgres([os.path.join(stack.pg_bindir(), "pg_ctl"), "-D", pgdata,
                                           "-m", "fast", "-w", "stop"]), capture_output=True)
        stopped.append("postgres")
    pidfile = os.path.join(run_dir, "postgres.pid")
    if os.path.exists(pidfile):
        os.remove(pidfile)
    if purge and os.path.exists(LOCAL):
        stack.remove_stack_folder(LOCAL)
    if not quiet:
        print("stopped: %s%s" % (", ".join(stopped) or "nothing was running",
                                 "; data deleted" if purge else "; data kept in .local/"))


def token(handle):
    env = {}
    path = os.path.join(LOCAL, "env")
    if not os.path.exists(path):
        sys.exit("no .local/env: run deploy/local/up first")
    with open(path) as f:
        for line in f:
            if line.startswith("export "):
                k, _, v = line[7:].strip().partition("=")
                env[k] = v.strip("'")
    s = stack.Stack.__new__(stack.Stack)
    s.cognito_url = env["COGNITO_ENDPOINT"]
    s.client_id = env["AWS_COGNITO_USER_POOL_CLIENT_ID"]
    try:
        print(s.token(handle))
    except RuntimeError as e:
        sys.exit("no token for %r: %s" % (handle, e))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "up":
        try:
            up()
        except (stack.StackError, OSError) as e:
            sys.exit("up failed: %s" % e)
        except subprocess.CalledProcessError as e:
            lines = (e.stderr or b"").decode("utf-8", "replace").strip().splitlines()
            sys.exit("up failed: %s exited %d%s" % (e.cmd[0], e.returncode,
                                                   ": " + lines[-1] if lines else ""))
    elif cmd == "down":
        down(purge="--purge" in sys.argv[2:])
    elif cmd == "token" and len(sys.argv) == 3:
        token(sys.argv[2])
    else:
        sys.exit("usage: local_stack.py up | down [--purge] | token HANDLE")
