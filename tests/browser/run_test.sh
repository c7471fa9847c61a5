#!/bin/sh
# Runs alerts_page_test.js under node's test runner: the alert page in
# headless Chromium against evsse-alerts nodes on a private redis-server.
#
#   run_test.sh NODE EVSSE_ALERTS_BIN REDIS_SERVER CONF_DIR
#
# Exits 77 (ctest: skipped) only when Debian's chromium is not installed
# (bash .ci/deps test installs it), and not even then under CI=true: CI
# must run it. A missing node_modules is a failure that names install.sh.
set -u
NODE=$1
export EVSSE_ALERTS_BIN="$2"
export EVSSE_REDIS_SERVER="$3"
export EVSSE_ALERTS_REDIS_CONF="$4/alerts-redis.conf"
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
exec "$NODE" --test --test-reporter=spec --test-timeout=90000 alerts_page_test.js
