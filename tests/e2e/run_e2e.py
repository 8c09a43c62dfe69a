#!/usr/bin/python3
"""Browser end-to-end test: the whole stack on free ports, the gateway serving
web/, and tests/e2e/messaging.test.mjs then live.test.mjs (two browser
contexts: live delivery) driving Debian's headless Chromium.

    CRUDDUR_SOURCE_DIR=... CRUDDUR_BUILD_DIR=... /usr/bin/python3 tests/e2e/run_e2e.py

Installs chromium and playwright-core first when missing (tests/e2e/install.sh).
Screenshots go to tests/artifacts/e2e/ (E2E_ARTIFACTS overrides). Exit status:
0 when every browser check passed and every binary stopped cleanly.
"""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("CRUDDUR_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
os.environ.setdefault("CRUDDUR_SOURCE_DIR", SOURCE_DIR)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "stack"))
from stack import Stack, DEV_PASSWORD  # noqa: E402

USERS = (("andrewbrown", "Andrew Brown", "andrew@exampro.co"),
         ("bayko", "Andrew Bayko", "bayko@exampro.co"),
         ("londo", "Londo Mollari", "lmollari@centari.com"))
ARTIFACTS = os.environ.get("E2E_ARTIFACTS") or os.path.join(SOURCE_DIR, "tests", "artifacts", "e2e")
TEST_TIMEOUT = 200  # seconds per browser script; ctest allows 480 in all


def main():
    r = subprocess.run([os.path.join(HERE, "install.sh")])
    if r.returncode != 0:
        print("e2e: installing chromium / playwright-core failed", file=sys.stderr)
        return 1
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    os.makedirs(ARTIFACTS, exist_ok=True)

    with Stack() as s:
        s.postgres()
        s.dynalite()
        s.cognito()
        for handle, name, email in USERS:
            s.cognito_user(handle, name, email)
        s.users_svc(migrate=True, seed=True)
        s.run("users-svc", "sync-cognito", check=True)
        s.messages_svc(schema=True)
        s.run("messages-svc", "seed", check=True)
        s.gateway(env={"GATEWAY_STATIC_DIR": os.path.join(SOURCE_DIR, "web")})

        env = os.environ.copy()
        env.update({
            "E2E_BASE_URL": s.gateway_url,
            "E2E_ARTIFACTS": ARTIFACTS,
            "E2E_PASSWORD": DEV_PASSWORD,
            "E2E_COGNITO_URL": s.cognito_url,
            "E2E_CLIENT_ID": s.client_id,
            "CHROMIUM": os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            "E2E_LONDO_TOKEN": s.token("londo"),
        })
        code = 0
        # The pages, then live delivery between two browser contexts.
        for script in ("messaging.test.mjs", "live.test.mjs"):
            try:
                r = subprocess.run(["node", os.path.join(HERE, script)], env=env,
                                   cwd=HERE, timeout=TEST_TIMEOUT)
                code = code or r.returncode
            except subprocess.TimeoutExpired:
                print("e2e: %s did not finish in %d s" % (script, TEST_TIMEOUT))
                code = 1
        if code != 0:
            for name in ("gateway", "messages-svc", "users-svc"):
                print(s.tail(name, 25))
            print("e2e: screenshots in %s" % ARTIFACTS)
            return 1
    # Leaving the with block stopped the stack; a binary that did not exit 0
    # (sanitizer report) raised StackError there.
    return 0


if __name__ == "__main__":
    sys.exit(main())
