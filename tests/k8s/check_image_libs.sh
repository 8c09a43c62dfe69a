#!/usr/bin/env bash
# Checks, without a Docker engine, that the runtime image can run the binaries:
# every shared library each binary links (per ldd) must come from a package
# the image installs, i.e. the packages on the runtime stage's `apt-get
# install` line of deploy/docker/Dockerfile plus everything they depend on.
#
#   tests/k8s/check_image_libs.sh [-f DOCKERFILE] PATH...
#
# PATH is a build tree (its users-svc/users-svc, messages-svc/messages-svc and
# gateway/gateway are checked against their image targets) or one binary
# (checked against the `runtime` stage). Uses this machine's dpkg database
# (lib -> package) and apt-cache (dependency closure), so run it on Debian
# bookworm, as the images are. Sanitizer runtimes (libasan, libubsan) are
# skipped: images are built without sanitizers.
#
# Prints `ok - ...` / `not ok - ...` per binary, notes, and exits 1 on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DOCKERFILE=$ROOT/deploy/docker/Dockerfile
if [ "${1:-}" = "-f" ]; then DOCKERFILE=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: $0 [-f DOCKERFILE] BUILD_DIR_OR_BINARY..." >&2; exit 2; }
BINARIES=(users-svc messages-svc gateway)

# ---- the Dockerfile: packages installed by each stage, and stage parents ----
# Joins continuation lines, then prints "stage STAGE PARENT" for each FROM and
# "pkg STAGE NAME" for each package named after `apt-get install` in a RUN.
parse_dockerfile() {
  sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$1" | awk '
    toupper($1) == "FROM" {
      parent = $2; stage = parent
      for (i = 3; i <= NF; i++) if (toupper($i) == "AS") stage = $(i + 1)
      print "stage", stage, parent; next
    }
    toupper($1) == "RUN" {
      for (i = 2; i <= NF; i++) {
        if ($i != "apt-get") continue
        k = i + 1; while (k <= NF && $k ~ /^-/) k++    # apt-get -y install ...
        if ($k == "install") {
          for (j = k + 1; j <= NF; j++) {
            if ($j == "&&" || $j == ";" || $j == "|" || $j == "||") break
            if ($j !~ /^-/) print "pkg", stage, $j
          }
        }
      }
    }'
}
declare -A PARENT PKGS
while read -r what a b; do
  case $what in
    stage) PARENT[$a]=$b; PKGS[$a]="${PKGS[$a]:-}" ;;
    pkg) PKGS[$a]="${PKGS[$a]:-} $b" ;;
  esac
done < <(parse_dockerfile "$DOCKERFILE")
[ -n "${PARENT[runtime]:-}" ] || { echo "not ok - $DOCKERFILE has no stage named runtime"; exit 1; }

# Packages a stage installs, following FROM to earlier stages of this file.
stage_packages() {
  local s=$1 out="" n=0
  while [ -n "${PARENT[$s]+x}" ] && [ $n -lt 20 ]; do
    out="$out${PKGS[$s]}"; s=${PARENT[$s]}; n=$((n + 1))
  done
  echo "${out# }"
}

# Dependency closure of a package list (Depends and PreDepends, recursively;
# every alternative of an `a | b` dependency counts, a slight over-approximation).
# Sets CLOSURE (" pkg pkg ... "); cached per list, as the three targets share one.
declare -A CLOSURE_CACHE
closure() {
  local key="$*"
  if [ -z "${CLOSURE_CACHE[$key]+x}" ]; then
    CLOSURE_CACHE[$key]=" $(apt-cache depends --recurse --no-recommends --no-suggests \
        --no-conflicts --no-breaks --no-replaces --no-enhances "$@" 2>/dev/null |
      awk '/^[^ <]/ { sub(/:.*/, ""); print }' | sort -u | tr '\n' ' ')"
  fi
  CLOSURE=${CLOSURE_CACHE[$key]}
}

# ---- the binaries -----------------------------------------------------------
TARGETS=()   # "binary|stage"
for p in "$@"; do
  if [ -f "$p" ]; then
    TARGETS+=("$p|runtime")
  elif [ -d "$p" ]; then
    for b in "${BINARIES[@]}"; do
      if [ -f "$p/$b/$b" ] && [ -x "$p/$b/$b" ]; then TARGETS+=("$p/$b/$b|$b")
      elif [ -f "$p/$b" ] && [ -x "$p/$b" ]; then TARGETS+=("$p/$b|$b")
      else echo "not ok - $b: no binary in $p"; fail=1
      fi
    done
  else
    echo "not ok - $p: no such file or directory"; fail=1
  fi
done
fail=${fail:-0}

# Which package owns each library: one dpkg -S call for all of them (one call
# per library is slow). dpkg -S wants the path as the package registered it;
# with merged /usr a library found as /lib/x may be registered as /usr/lib/x,
# or the reverse, so both spellings are asked.
declare -A OWNER
both_spellings() {
  local f
  for f in "$@"; do
    echo "$f"
    case $f in /usr/lib/*) echo "${f#/usr}" ;; /lib/* | /lib64/*) echo "/usr$f" ;; esac
  done
}
LDD=$(mktemp); trap 'rm -f "$LDD"' EXIT
for t in "${TARGETS[@]}"; do
  { ldd "${t%|*}" 2>&1 || true; } | sed -n "s|^[[:space:]]*|${t%|*}\t|p"
done > "$LDD"
mapfile -t LIBPATHS < <(awk -F'\t' '{ n = split($2, w, " "); p = (w[2] == "=>") ? w[3] : w[1]
                                        if (p ~ /^\//) print p }' "$LDD" | sort -u)
if [ ${#LIBPATHS[@]} -gt 0 ]; then
  while IFS= read -r line; do
    case $line in diversion* | "") continue ;; esac
    pkg=${line%%: /*} path=${line#*: }
    pkg=${pkg%%,*}; pkg=${pkg%%:*}
    OWNER[$path]=$pkg
    case $path in /usr/lib/*) OWNER[${path#/usr}]=$pkg ;; /lib/* | /lib64/*) OWNER[/usr$path]=$pkg ;; esac
  done < <(mapfile -t ask < <(both_spellings "${LIBPATHS[@]}"); dpkg -S "${ask[@]}" 2>/dev/null)
fi

for t in "${TARGETS[@]}"; do
  bin=${t%|*} stage=${t#*|}
  [ -n "${PARENT[$stage]+x}" ] || stage=runtime
  name=$(basename "$bin")
  # shellcheck disable=SC2046
  closure $(stage_packages "$stage")
  provided=$CLOSURE
  problems=() n=0 skipped=()
  while IFS=$'\t' read -r file rest; do
    [ "$file" = "$bin" ] || continue
    read -r lib arrow path _ <<<"$rest"
    case $lib in linux-vdso* | linux-gate*) continue ;; esac
    if [ "$arrow" = "=>" ] && [ "$path" = "not" ]; then problems+=("$lib: not found by ldd"); continue; fi
    if [ "$arrow" != "=>" ]; then path=$lib; fi      # /lib64/ld-linux-x86-64.so.2 (0x...)
    case $path in /*) ;; *) problems+=("ldd: $rest"); continue ;; esac
    case ${path##*/} in
      libasan.so* | libubsan.so* | liblsan.so* | libtsan.so*) skipped+=("${path##*/}"); continue ;;
    esac
    n=$((n + 1))
    pkg=${OWNER[$path]:-}
    if [ -z "$pkg" ]; then
      problems+=("$path: no Debian package owns it")
    elif [[ $provided != *" $pkg "* ]]; then
      problems+=("$path: from package $pkg, which the $stage image does not install")
    fi
  done < "$LDD"
  if [ $n -eq 0 ] && [ ${#problems[@]} -eq 0 ]; then problems+=("ldd listed no libraries"); fi
  if [ ${#problems[@]} -eq 0 ]; then
    echo "ok - $name: all $n linked libraries come from the $stage image's packages"
  else
    echo "not ok - $name: ${#problems[@]} of its libraries would be missing in the $stage image"
    printf '    %s\n' "${problems[@]}"
    fail=1
  fi
  [ ${#skipped[@]} -eq 0 ] || echo "    note: skipped sanitizer runtimes ${skipped[*]} (a sanitizer build; images are not)"
done

exit "$fail"
