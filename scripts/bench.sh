#!/usr/bin/env bash
# `npm run bench` / `npm run bench:cluster`: builds Ferry and runs one benchmark script
# (bench/full-sync.ts by default). Results go in BENCHMARKS.md by hand, with the command.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
script="${1:-bench/full-sync.ts}"
shift || true
exec node --import tsx "$script" "$@"
