#!/bin/sh
# Installs tests/browser/node_modules from package-lock.json (npm ci) when it
# is missing or does not hold the locked playwright-core version. Playwright
# never downloads a browser here (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1): the
# test drives Debian's chromium (bash .ci/deps test installs it). Without
# npm it says so; the test is then not registered (no node) or fails with a
# message naming this script.
#
#   sh tests/browser/install.sh
set -eu
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "tests/browser: node or npm not found; browser_alerts_page_test cannot run"
  exit 0
fi
want=$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version')
have=$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch (e) { "" }')
if [ "$have" = "$want" ]; then
  echo "tests/browser: playwright-core $have already installed"
  exit 0
fi
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
echo "tests/browser: installed playwright-core $want"
