#!/usr/bin/env bash
# Debian's chromium for headless browser tests (GraphiQL, the dashboard). Never a browser
# download from a test tool: the distribution's package only. Idempotent.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium: installing Debian's chromium (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
  command -v chromium
else
  echo "chromium: not installed and cannot install it here (needs root and apt-get);" \
       "browser tests will be skipped (they fail under CI=true)" >&2
fi
