#!/bin/sh
# Runs tls_eventsource_test.js (npm eventsource over HTTPS against
# evsse-alerts) with the test certificates in a temporary directory and
# NODE_EXTRA_CA_CERTS pointing at their CA. Exits 77 (ctest: skipped) when
# node_modules is missing (tests/js/install.sh) or node is older than 18.
#
#   run_tls_test.sh path/to/node path/to/evsse-alerts
set -u
NODE=$1
export EVSSE_ALERTS_BIN="$2"
cd "$(dirname "$0")" || exit 1
if ! [ -f node_modules/eventsource/package.json ]; then
  echo "SKIP: tests/js/node_modules is missing; run tests/js/install.sh"
  exit 77
fi
if ! "$NODE" -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)'; then
  echo "SKIP: node $("$NODE" --version) has no test runner; node >= 18 is needed"
  exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bash ../support/make_test_certs.sh "$dir" || exit 1
export EVSSE_CERT_DIR="$dir"
export NODE_EXTRA_CA_CERTS="$dir/ca.pem"
"$NODE" --test --test-reporter=spec tls_eventsource_test.js
