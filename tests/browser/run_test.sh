#!/bin/sh
# Runs one browser test under node's test runner:
#
#   run_test.sh NODE EVSSE_ALERTS_BIN REDIS_SERVER CONF_DIR
#     alerts_page_test.js: the alert page in headless Chromium against
#     evsse-alerts nodes on a private redis-server.
#   run_test.sh --tls NODE EVSSE_ALERTS_BIN
#     tls_page_test.js: an EventSource in headless Chromium over HTTPS
#     against evsse-alerts, trusting the test certificate (made here in a
#     temp dir by tests/support/make_test_certs.sh) by its SPKI hash.
#
# Exits 77 (ctest: skipped) only when Debian's chromium is not installed
# (bash .ci/deps test installs it), and not even then under CI=true: CI
# must run it. A missing node_modules is a failure that names install.sh.
set -u
TLS=0
if [ "${1:-}" = --tls ]; then
  TLS=1
  shift
fi
NODE=$1
export EVSSE_ALERTS_BIN="$2"
export EVSSE_CHROMIUM="${EVSSE_CHROMIUM:-/usr/bin/chromium}"
cd "$(dirname "$0")" || exit 1
if ! [ -x "$EVSSE_CHROMIUM" ]; then
  if [ "${CI:-}" = true ]; then
    echo "FAIL: $EVSSE_CHROMIUM not found under CI=true; bash .ci/deps test installs chromium"
    exit 1
  fi
  echo "SKIP: $EVSSE_CHROMIUM not found; install Debian's chromium (bash .ci/deps test)"
  exit 77
fi
if ! [ -f node_modules/playwright-core/package.json ]; then
  echo "FAIL: tests/browser/node_modules is missing; run sh tests/browser/install.sh"
  exit 1
fi
if [ "$TLS" = 0 ]; then
  export EVSSE_REDIS_SERVER="$3"
  export EVSSE_ALERTS_REDIS_CONF="$4/alerts-redis.conf"
  exec "$NODE" --test --test-reporter=spec --test-timeout=90000 alerts_page_test.js
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bash ../support/make_test_certs.sh "$dir" || exit 1
export EVSSE_CERT_DIR="$dir"
"$NODE" --test --test-reporter=spec --test-timeout=90000 tls_page_test.js
