#!/bin/sh
# Runs one npm eventsource test under node's test runner:
#
#   run_test.sh path/to/node path/to/sse_test_server
#     eventsource_test.js against sse_test_server.
#   run_test.sh --tls path/to/node path/to/evsse-alerts
#     tls_eventsource_test.js over HTTPS against evsse-alerts, with the test
#     certificates in a temporary directory and NODE_EXTRA_CA_CERTS pointing
#     at their CA.
#
# Exits 77 (ctest: skipped) when node_modules was never installed (run
# tests/js/install.sh) or node is older than 18 (no node --test).
set -u
TLS=0
if [ "${1:-}" = --tls ]; then
  TLS=1
  shift
fi
NODE=$1
cd "$(dirname "$0")" || exit 1
if ! [ -f node_modules/eventsource/package.json ]; then
  echo "SKIP: tests/js/node_modules is missing; run tests/js/install.sh"
  exit 77
fi
if ! "$NODE" -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)'; then
  echo "SKIP: node $("$NODE" --version) has no test runner; node >= 18 is needed"
  exit 77
fi
if [ "$TLS" = 0 ]; then
  export EVSSE_SSE_TEST_SERVER="$2"
  exec "$NODE" --test --test-reporter=spec eventsource_test.js
fi
export EVSSE_ALERTS_BIN="$2"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bash ../support/make_test_certs.sh "$dir" || exit 1
export EVSSE_CERT_DIR="$dir"
export NODE_EXTRA_CA_CERTS="$dir/ca.pem"
"$NODE" --test --test-reporter=spec tls_eventsource_test.js
