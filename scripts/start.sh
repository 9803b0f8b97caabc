#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and runs Ferry with the given
# arguments (no arguments: the help). Until the HTTP service exists, this is the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
if [ ! -f dist/cli.js ] || [ -n "$(find src -newer dist/cli.js -name '*.ts' -print -quit)" ]; then
  npm run --silent build
fi
if [ "$#" -eq 0 ]; then set -- --help; fi
exec node dist/cli.js "$@"
