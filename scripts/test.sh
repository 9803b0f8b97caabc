#!/usr/bin/env bash
# Ferry test entry point (npm test): install deps if stale, find redis-server, typecheck,
# build, then run the unit and e2e tests on real redis-server processes.
#
#   npm test                               # everything
#   npm test -- test/unit/resp.test.ts     # only these files
#   npm test -- resp                       # files whose path contains "resp"
#   npm test -- --test-name-pattern=TTL    # options starting with -- go to node --test
#
# Env: REDIS_SERVER=/path/to/redis-server (default: redis-server on PATH).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# (a) dependencies: npm ci when node_modules is missing or older than the lock file
if [[ ! -d node_modules ]] || [[ ! -f node_modules/.package-lock.json ]] ||
  { [[ -f package-lock.json ]] && [[ package-lock.json -nt node_modules/.package-lock.json ]]; }; then
  if [[ -f package-lock.json ]]; then
    echo "test.sh: installing dependencies (npm ci)"
    npm ci --no-audit --no-fund
  else
    echo "test.sh: installing dependencies (npm install, no package-lock.json)"
    npm install --no-audit --no-fund
  fi
fi

# (b) redis-server
REDIS_SERVER="${REDIS_SERVER:-redis-server}"
if ! command -v "$REDIS_SERVER" >/dev/null 2>&1; then
  # install only for the default name: an explicit path that is missing is the caller's mistake
  if [[ "$REDIS_SERVER" == redis-server ]] && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: $REDIS_SERVER not found, installing redis-server with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y redis-server
    # the package starts a service on 6379; the tests never use it, leave it alone
  fi
fi
if ! resolved="$(command -v "$REDIS_SERVER" 2>/dev/null)"; then
  echo "redis-server not found: install it (Debian/Ubuntu: sudo apt-get install redis-server) or set REDIS_SERVER=/path/to/redis-server" >&2
  exit 1
fi
export REDIS_SERVER="$resolved"
echo "test.sh: using $REDIS_SERVER: $("$REDIS_SERVER" --version)"

# (b2) chromium, for the console's browser tests (playwright-core drives Debian's chromium)
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]] && [[ "$CHROMIUM" == /usr/bin/chromium ]] && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "test.sh: $CHROMIUM not found, installing chromium with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y chromium
fi
if [[ ! -x "$CHROMIUM" ]]; then
  echo "chromium not found at $CHROMIUM: install it (Debian/Ubuntu: sudo apt-get install chromium) or set CHROMIUM=/path/to/chromium" >&2
  exit 1
fi
export CHROMIUM

# (b3) PostgreSQL, for the store conformance suite and the multi-node tests: started when it is
# installed and not running. Without one, those tests are reported as skipped, with the reason.
if [[ -z "${FERRY_TEST_DATABASE_URL:-}" ]] && command -v pg_ctlcluster >/dev/null 2>&1 && [[ -d /etc/postgresql ]]; then
  if ! (command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432); then
    for pg_version in $(ls /etc/postgresql); do
      echo "test.sh: starting PostgreSQL $pg_version (main)"
      pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start ||
        echo "test.sh: could not start PostgreSQL $pg_version: the PostgreSQL tests will be skipped" >&2
    done
  fi
elif [[ -z "${FERRY_TEST_DATABASE_URL:-}" ]] && ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "test.sh: pg_ctlcluster not found: the PostgreSQL tests run only if a server answers on 127.0.0.1:5432 (or FERRY_TEST_DATABASE_URL)"
fi

# (c) typecheck (sources and tests) and build
npx tsc -p tsconfig.test.json
npm run build

# (d) the tests: unit first, then e2e; one file at a time (each file starts its own servers,
# and running several at once only makes their timings flaky)
shopt -s nullglob
all_files=(test/unit/*.test.ts test/e2e/*.test.ts)
node_opts=()
files=()
for arg in "$@"; do
  if [[ "$arg" == --* ]]; then
    node_opts+=("$arg")
  elif [[ -f "$arg" ]]; then
    files+=("$arg")
  else
    matched=0
    for f in "${all_files[@]}"; do
      if [[ "$f" == *"$arg"* ]]; then
        files+=("$f")
        matched=1
      fi
    done
    if [[ $matched == 0 ]]; then
      echo "test.sh: no test file matches '$arg'" >&2
      exit 1
    fi
  fi
done
if [[ ${#files[@]} == 0 ]]; then
  files=("${all_files[@]}")
fi
if [[ ${#files[@]} == 0 ]]; then
  echo "test.sh: no test files found under test/unit or test/e2e" >&2
  exit 1
fi

# a hung test must not hang CI: per-test timeout where this node supports it (20.11+);
# --test-concurrency needs 20.10+ (older 20.x runs files in parallel, which still works)
node_help="$(node --help 2>/dev/null || true)"
if grep -q -- '--test-timeout' <<<"$node_help"; then
  node_opts=("--test-timeout=${FERRY_TEST_TIMEOUT_MS:-600000}" "${node_opts[@]}")
fi
if grep -q -- '--test-concurrency' <<<"$node_help"; then
  node_opts=("--test-concurrency=1" "${node_opts[@]}")
fi

rc=0
node --import tsx --test "${node_opts[@]}" "${files[@]}" || rc=$?
exit "$rc"
