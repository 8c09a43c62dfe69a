# Shared by deploy/local/up and tests/run: install what is missing, build.
# Source it; it defines functions only.

CRUDDUR_ROOT=${CRUDDUR_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_packages FILE...: apt-get installs the listed packages that are missing.
ensure_packages() {
  local missing=() pkg
  for pkg in $(grep -hv '^\s*#' "$@" | tr -s ' \n' '\n'); do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || die "apt-get install failed: ${missing[*]}"
}

# ensure_node_modules: dynalite and cognito-local, pinned by package-lock.json.
ensure_node_modules() {
  local dir="$CRUDDUR_ROOT/deploy/local"
  # Node may come from Debian or from another packaging of node that bundles
  # npm; only install Debian's when there is none at all.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    ensure_packages <(printf 'nodejs\nnpm\n')
  fi
  local stamp="$dir/node_modules/.lock-stamp"
  if [ -x "$dir/node_modules/.bin/dynalite" ] && [ -x "$dir/node_modules/.bin/cognito-local" ] &&
     [ -f "$stamp" ] && cmp -s "$stamp" "$dir/package-lock.json"; then
    return 0
  fi
  say "installing dynalite and cognito-local (npm ci)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
  cp "$dir/package-lock.json" "$stamp"
}

# build DIR [cmake args...]: configure once, build everything.
build() {
  local dir=$1; shift
  say "building in $dir"
  cmake -S "$CRUDDUR_ROOT" -B "$dir" "$@" >/dev/null || die "cmake configure failed in $dir"
  compile "$dir"
}

# compile DIR [cmake --build args...]: builds, showing only the compiler's own
# messages (warnings, errors); stops the calling script when the build fails.
compile() {
  local dir=$1; shift
  local status=0
  # The exit status is cmake's, read before anything else runs: grep finding
  # nothing to show must not count as a failure, nor hide one.
  cmake --build "$dir" -j "$(nproc)" "$@" 2>&1 | grep -Ev '^\[ *[0-9]+%\]|^-- ' ||
    status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] || die "build failed in $dir (cmake --build exited $status)"
}
