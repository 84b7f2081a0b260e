#!/usr/bin/env bash
# Debian packages the tests need: chromium (headless browser tests — the distribution's
# package, never a test tool's browser download) and redis-server (the dev stack's Redis).
# Idempotent; installs only what is missing, as root with apt-get.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "debian: installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "debian: ${missing[*]} missing and cannot be installed here (needs root and apt-get);" \
       "the tests that need them skip locally and fail under CI=true" >&2
fi
