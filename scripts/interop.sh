#!/usr/bin/env bash
# Stock clients against one real authgate server (SPEC 7): pytest
# (tests/interop/test_*.py: requests, PyJWT, authlib, and selenium driving
# Debian's chromium on the account page), node --test
# (tests/interop/*.test.mjs: jose) and schemathesis (GET /openapi.json).
#
# Needs DATABASE_URL (any database of a PostgreSQL 15 server: a fresh
# database is created there for this run and dropped after). scripts/test.sh
# runs it after `cargo test`. Installs what it needs: a venv in .venv-interop/
# (pip install -r tests/interop/requirements.txt) and tests/interop/node_modules
# (npm ci), and as root Debian's chromium and chromium-driver when missing.
# A tool that cannot be installed fails the run: nothing is skipped.
#
# The tests get AUTHGATE_URL, AUTHGATE_BIN (absolute), DATABASE_URL (the
# server's database), AUTHGATE_ENV=test, and for the browser tests
# AUTHGATE_CHROMIUM, AUTHGATE_CHROMEDRIVER and AUTHGATE_ARTIFACTS (where
# they save screenshots: target/interop-artifacts/, git-ignored).
#
# Prints the totals as a last line `N passed, N failed` (schemathesis counts
# as one test), and writes `N N` (passed failed) to $AUTHGATE_INTEROP_SUMMARY
# when that is set. Exits non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/pg.sh
. scripts/pg.sh

log() { printf 'interop: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ -n "${DATABASE_URL:-}" ] || die "DATABASE_URL is unset (scripts/test.sh sets it)"
command -v python3 >/dev/null || die "python3 not found"
command -v node >/dev/null || die "node not found"
command -v npm >/dev/null || die "npm not found"
command -v psql >/dev/null || die "psql not found"

started=$(date +%s)

# --- Python: a venv of pinned packages, reinstalled when the pins change.
venv=.venv-interop
requirements=tests/interop/requirements.txt
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv ($(python3 --version 2>&1))"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 needs python3-venv for ensurepip.
    rm -rf "$venv"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing Debian's python3-venv"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv "$venv" || die "cannot create a Python venv"
  fi
fi
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "pip install -r $requirements"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" \
    || die "pip install failed"
  echo "$want" >"$stamp"
fi

# --- Chromium and its driver (Debian's, the same version), for the account
# page's test. Selenium is pointed at them: it never downloads a driver.
chromium=/usr/bin/chromium
chromedriver=/usr/bin/chromedriver
if [ ! -x "$chromium" ] || [ ! -x "$chromedriver" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian's chromium and chromium-driver"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
      || die "cannot install chromium and chromium-driver"
  fi
  [ -x "$chromium" ] && [ -x "$chromedriver" ] \
    || die "$chromium and $chromedriver are needed (apt-get install chromium chromium-driver)"
fi
export AUTHGATE_CHROMIUM=$chromium AUTHGATE_CHROMEDRIVER=$chromedriver
# Selenium Manager (which would look for drivers online) stays offline.
export SE_OFFLINE=true
export AUTHGATE_ARTIFACTS="$PWD/target/interop-artifacts"
mkdir -p "$AUTHGATE_ARTIFACTS"

# --- Node: exactly the lock file.
log "npm ci (tests/interop)"
(cd tests/interop && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed"

# --- The server: its own database, a free port.
target_dir=${CARGO_TARGET_DIR:-target}
bin="$target_dir/debug/authgate"
if [ ! -x "$bin" ]; then
  log "building $bin"
  cargo build --locked --bin authgate
fi
bin="$(cd "$(dirname "$bin")" && pwd)/authgate"

work=$(mktemp -d /tmp/authgate-interop.XXXXXX)
db="authgate_interop_$(date +%s)_$$"
admin_url=$DATABASE_URL
server_pid=
cleanup() {
  local status=$?
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql -q -v ON_ERROR_STOP=1 "$admin_url" -c "CREATE DATABASE $db" >/dev/null || die "cannot create database $db"
export DATABASE_URL="${admin_url%/*}/$db"
port=$(pg_free_port)
export AUTHGATE_URL="http://127.0.0.1:$port"
export AUTHGATE_BIN="$bin"
export AUTHGATE_ENV=test
export PYTHONDONTWRITEBYTECODE=1
# Hypothesis (under schemathesis) keeps caches of Unicode tables there; the
# example database is off (tests/interop/schemathesis.toml).
export HYPOTHESIS_STORAGE_DIRECTORY="$PWD/$venv/hypothesis"

# Reuse grace 0 (theft detection is immediate) and EdDSA with keys
# published at once (SPEC 7.1), as the stock clients' tests expect.
AUTHGATE__SERVER__BIND="127.0.0.1:$port" \
AUTHGATE__SERVER__PUBLIC_URL="$AUTHGATE_URL" \
AUTHGATE__JWT__ALGORITHM=EdDSA \
AUTHGATE__JWT__KEY_PUBLISH_AHEAD_SECS=0 \
AUTHGATE__SESSIONS__REUSE_GRACE_SECS=0 \
RUST_LOG=warn \
  "$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!

ready=
for _ in $(seq 1 120); do
  if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  if "$venv/bin/python" -c 'import sys, urllib.request
try: sys.exit(urllib.request.urlopen(sys.argv[1], timeout=1).status != 200)
except Exception: sys.exit(1)' "$AUTHGATE_URL/readyz"; then
    ready=1
    break
  fi
  sleep 0.5
done
if [ -z "$ready" ]; then
  tail -n 30 "$work/server.log" >&2
  die "the server did not become ready on $AUTHGATE_URL"
fi
log "authgate serve on $AUTHGATE_URL, database $db (setup took $(($(date +%s) - started)) s)"

passed=0
failed=0
results=()

# --- pytest: every tests/interop/test_*.py.
set +e
"$venv/bin/python" -m pytest -q -p no:cacheprovider --junitxml="$work/pytest.xml" tests/interop
pytest_status=$?
set -e
read -r p f < <("$venv/bin/python" - "$work/pytest.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print(0, 1)
    sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
total = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get(k, 0)) for s in suites for k in ("failures", "errors", "skipped"))
# A skipped test counts as failed: nothing is skipped silently.
print(total - bad, bad)
PY
)
if [ "$pytest_status" != 0 ] && [ "$f" = 0 ]; then f=1; fi # no tests collected, or a crash
passed=$((passed + p)); failed=$((failed + f))
results+=("pytest: $p passed, $f failed")

# --- node --test: every tests/interop/*.test.mjs.
shopt -s nullglob
node_tests=(tests/interop/*.test.mjs)
shopt -u nullglob
if [ ${#node_tests[@]} = 0 ]; then
  p=0 f=1
  log "no tests/interop/*.test.mjs"
else
  set +e
  node --test --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$work/node.tap" "${node_tests[@]}"
  node_status=$?
  set -e
  tap_count() { awk -v k="$1" '$1 == "#" && $2 == k { n = $3 } END { print n + 0 }' "$work/node.tap" 2>/dev/null || echo 0; }
  p=$(tap_count pass)
  f=$(($(tap_count fail) + $(tap_count cancelled) + $(tap_count skipped) + $(tap_count todo)))
  if [ "$node_status" != 0 ] && [ "$f" = 0 ]; then f=1; fi
fi
passed=$((passed + p)); failed=$((failed + f))
results+=("node: $p passed, $f failed")

# --- schemathesis: the server against its own OpenAPI document.
set +e
SCHEMATHESIS_HOOKS="$PWD/tests/interop/schemathesis_hooks.py" \
  "$venv/bin/schemathesis" --config-file tests/interop/schemathesis.toml \
  run "$AUTHGATE_URL/openapi.json"
st_status=$?
set -e
if [ "$st_status" = 0 ]; then
  passed=$((passed + 1)); results+=("schemathesis: passed")
else
  failed=$((failed + 1)); results+=("schemathesis: FAILED (exit $st_status)")
fi

if [ "$failed" != 0 ]; then
  log "server log (last lines):"
  tail -n 20 "$work/server.log" >&2
fi
for r in "${results[@]}"; do log "$r"; done
log "screenshots of the account page: $AUTHGATE_ARTIFACTS"
log "took $(($(date +%s) - started)) s"
if [ -n "${AUTHGATE_INTEROP_SUMMARY:-}" ]; then
  echo "$passed $failed" >"$AUTHGATE_INTEROP_SUMMARY"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
