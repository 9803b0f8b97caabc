#!/usr/bin/env bash
# `npm run bench`: builds Ferry and runs the full-sync benchmark (see bench/full-sync.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
exec node --import tsx bench/full-sync.ts "$@"
