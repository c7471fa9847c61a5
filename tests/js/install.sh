#!/bin/sh
# Installs tests/js/node_modules from package-lock.json (npm ci) when it is
# missing or does not hold the locked eventsource version. Needs npm and the
# npm registry; without npm it says so and leaves the test to be skipped.
#
#   sh tests/js/install.sh
set -eu
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "tests/js: node or npm not found; js_eventsource_test will be skipped"
  exit 0
fi
want=$(node -p 'require("./package-lock.json").packages["node_modules/eventsource"].version')
have=$(node -p 'try { require("./node_modules/eventsource/package.json").version } catch (e) { "" }')
if [ "$have" = "$want" ]; then
  echo "tests/js: eventsource $have already installed"
  exit 0
fi
npm ci --no-audit --no-fund
echo "tests/js: installed eventsource $want"
