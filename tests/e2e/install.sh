#!/usr/bin/env bash
# Installs what the browser test needs, once: Debian's chromium (/usr/bin/chromium)
# and playwright-core from npm, pinned by package-lock.json (npm ci). Quick and
# silent when both are already there. Called by tests/e2e/run_e2e.py; tests/run
# may call it in its install step too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

stamp=$here/node_modules/.lock-stamp
if [ -f "$here/node_modules/playwright-core/package.json" ] && [ -f "$stamp" ] &&
   cmp -s "$stamp" "$here/package-lock.json"; then
  exit 0
fi
echo "==> installing playwright-core (npm ci in tests/e2e)"
# playwright-core never downloads a browser; the variable makes sure of it.
(cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
cp "$here/package-lock.json" "$stamp"
