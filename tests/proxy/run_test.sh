#!/bin/sh
# Runs one proxy test (tests/proxy/*_test.js) under node's test runner:
# Debian's nginx in front of examples/evhttp_hello nodes on a private
# redis-server, with the npm eventsource client (tests/js/node_modules) and
# headless Chromium (playwright-core from tests/browser/node_modules).
#
#   run_test.sh TEST.js NODE EVHTTP_HELLO REDIS_SERVER CONF_DIR [CERT_SCRIPT]
#
# Exits 77 (ctest: skipped) with the reason when nginx, chromium or the
# node_modules are missing, or (h2 test) when CERT_SCRIPT does not exist;
# under CI=true each of these is a failure instead.
set -u
TEST=$1
NODE=$2
export EVSSE_EVHTTP_HELLO="$3"
export EVSSE_REDIS_SERVER="$4"
export EVSSE_CONF_DIR="$5"
CERT_SCRIPT=${6:-}
export EVSSE_NGINX="${EVSSE_NGINX:-/usr/sbin/nginx}"
export EVSSE_CHROMIUM="${EVSSE_CHROMIUM:-/usr/bin/chromium}"
cd "$(dirname "$0")" || exit 1

missing() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL (CI=true): $1"
    exit 1
  fi
  echo "SKIP: $1"
  exit 77
}
[ -x "$EVSSE_NGINX" ] || missing "$EVSSE_NGINX not found; install Debian's nginx (bash .ci/deps test)"
[ -x "$EVSSE_CHROMIUM" ] || missing "$EVSSE_CHROMIUM not found; install Debian's chromium (bash .ci/deps test)"
[ -f ../js/node_modules/eventsource/package.json ] ||
  missing "tests/js/node_modules is missing; run sh tests/js/install.sh"
[ -f ../browser/node_modules/playwright-core/package.json ] ||
  missing "tests/browser/node_modules is missing; run sh tests/browser/install.sh"
if [ -n "$CERT_SCRIPT" ]; then
  [ -f "$CERT_SCRIPT" ] || missing "$CERT_SCRIPT not found"
  command -v openssl >/dev/null 2>&1 || missing "the openssl CLI is not installed"
  command -v curl >/dev/null 2>&1 || missing "curl is not installed"
  EVSSE_TEST_CERTS=$(mktemp -d "${TMPDIR:-/tmp}/evsse-proxy-certs.XXXXXX") || exit 1
  export EVSSE_TEST_CERTS
  trap 'rm -rf "$EVSSE_TEST_CERTS"' EXIT
  # nginx's worker runs as an unprivileged user when started by root.
  chmod 755 "$EVSSE_TEST_CERTS"
  bash "$CERT_SCRIPT" "$EVSSE_TEST_CERTS" >/dev/null || {
    echo "FAIL: $CERT_SCRIPT $EVSSE_TEST_CERTS"
    exit 1
  }
  chmod 644 "$EVSSE_TEST_CERTS"/*
fi
"$NODE" --test --test-reporter=spec --test-timeout=170000 "$TEST"
