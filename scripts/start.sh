#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and starts the migration service
# (`ferry serve`, embedded SQLite store in ./data). With arguments it runs them instead:
# `npm start -- migrate --source ... --target ...`, `npm start -- --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
if [ ! -f dist/cli.js ] || [ -n "$(find src -newer dist/cli.js -name '*.ts' -print -quit)" ]; then
  npm run --silent build
fi
if [ "$#" -eq 0 ]; then set -- serve; fi
exec node dist/cli.js "$@"
