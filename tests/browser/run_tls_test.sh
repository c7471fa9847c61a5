#!/bin/sh
# Runs tls_page_test.js: an EventSource in headless Chromium over HTTPS
# against evsse-alerts, trusting the test certificate by its SPKI hash.
#
#   run_tls_test.sh NODE EVSSE_ALERTS_BIN
#
# Exits 77 (ctest: skipped) only when Debian's chromium is not installed,
# and not even then under CI=true. A missing node_modules is a failure that
# names install.sh.
set -u
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
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bash ../support/make_test_certs.sh "$dir" || exit 1
export EVSSE_CERT_DIR="$dir"
"$NODE" --test --test-reporter=spec --test-timeout=90000 tls_page_test.js
