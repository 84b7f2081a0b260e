#!/usr/bin/env bash
# Vendor Apache ECharts' browser bundle so the dashboard at / draws its charts offline.
#
#   scripts/build-dashboard.sh [OUT_DIR]      (default: gateway/static/dashboard/vendor)
#
# Installs the exact version pinned in dashboard/app/package-lock.json from the npm registry
# (`npm ci`), then copies the minified bundle and its licence and notice files into OUT_DIR,
# which is generated (keep it git-ignored). The dashboard's own pages and modules are plain
# files in gateway/static/dashboard/ and need no build. See scripts/lib/vendor-npm.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME=dashboard
PKG_DIR="$ROOT/dashboard/app"
OUT_DIR="${1:-$ROOT/gateway/static/dashboard/vendor}"
MISSING="until then / shows a 'dashboard assets are not built' page"
# source (inside node_modules) -> name served at /dashboard/vendor/<name>
ASSETS=(
  "echarts/dist/echarts.min.js:echarts.min.js"
)
# The bundle includes ZRender (BSD-3-Clause) and parts of d3 (BSD-3-Clause, per ECharts' NOTICE).
LICENSES=(
  "echarts/LICENSE:echarts.LICENSE"
  "echarts/NOTICE:echarts.NOTICE"
  "echarts/licenses/LICENSE-d3:d3.LICENSE"
  "zrender/LICENSE:zrender.LICENSE"
)
VERSIONS=(echarts)

# shellcheck source=lib/vendor-npm.sh
source "$ROOT/scripts/lib/vendor-npm.sh"
vendor_npm
