#!/usr/bin/env bash
# `npm run bench:all`: every benchmark of bench/ in one go, each against native replication
# where one exists (the ratio is printed by each script). Sizes are chosen for a few minutes on
# the project's 2-core machine; each script's own BENCH_* variables still apply. Output is kept in
# bench-results/<date>/ (one file per benchmark) as well as printed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
out="bench-results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
run() {
  local name="$1"; shift
  echo "== $name ($*)"
  env "$@" node --import tsx "bench/$name.ts" 2>&1 | tee "$out/$name.txt"
}
only="${BENCH_ONLY:-full-sync,cluster-sync,incremental,big-values,verify}"
for b in ${only//,/ }; do
  case "$b" in
    full-sync) run full-sync BENCH_KEYS="${BENCH_KEYS:-1000000}" BENCH_RUNS="${BENCH_RUNS:-3}" BENCH_REWRITE=1 ;;
    cluster-sync) run cluster-sync BENCH_KEYS="${BENCH_CLUSTER_KEYS:-300000}" BENCH_RUNS="${BENCH_RUNS:-3}" ;;
    incremental) run incremental BENCH_N="${BENCH_N:-1000000}" BENCH_RUNS="${BENCH_RUNS:-3}" ;;
    big-values) run big-values BENCH_MB="${BENCH_MB:-400}" BENCH_RUNS="${BENCH_RUNS:-3}" ;;
    verify) run verify BENCH_KEYS="${BENCH_VERIFY_KEYS:-200000}" BENCH_RUNS="${BENCH_RUNS:-3}" ;;
    bandwidth) run bandwidth BENCH_LIMITS=0 BENCH_SECONDS="${BENCH_SECONDS:-6}" ;;
    *) echo "unknown benchmark $b" >&2; exit 2 ;;
  esac
done
echo "results in $out"
