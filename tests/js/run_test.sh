#!/bin/sh
# Runs eventsource_test.js under node's test runner against sse_test_server.
# Exits 77 (ctest: skipped) when node_modules was never installed (run
# tests/js/install.sh) or node is older than 18 (no node --test).
#
#   run_test.sh path/to/node path/to/sse_test_server
set -u
NODE=$1
export EVSSE_SSE_TEST_SERVER="$2"
cd "$(dirname "$0")" || exit 1
if ! [ -f node_modules/eventsource/package.json ]; then
  echo "SKIP: tests/js/node_modules is missing; run tests/js/install.sh"
  exit 77
fi
if ! "$NODE" -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)'; then
  echo "SKIP: node $("$NODE" --version) has no test runner; node >= 18 is needed"
  exit 77
fi
exec "$NODE" --test --test-reporter=spec eventsource_test.js
