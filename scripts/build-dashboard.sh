#!/usr/bin/env bash
# Vendor Apache ECharts' browser bundle so the dashboard at / draws its charts offline.
#
#   scripts/build-dashboard.sh [OUT_DIR]      (default: gateway/static/dashboard/vendor)
#
# Installs the exact version pinned in dashboard/app/package-lock.json from the npm registry
# (`npm ci`), then copies the minified bundle and its licence and notice files into OUT_DIR,
# which is generated (keep it git-ignored). The dashboard's own pages and modules are plain
# files in gateway/static/dashboard/ and need no build. A stamp made from the lockfile and
# this script makes a second run a no-op; delete OUT_DIR (or pass FORCE=1) to rebuild.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG_DIR="$ROOT/dashboard/app"
OUT_DIR="${1:-$ROOT/gateway/static/dashboard/vendor}"
FORCE="${FORCE:-0}"

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

log() { printf 'dashboard: %s\n' "$*" >&2; }

# content only, so the stamp is the same in any checkout
STAMP_VALUE="$(cat "$PKG_DIR/package.json" "$PKG_DIR/package-lock.json" "${BASH_SOURCE[0]}" \
  | sha256sum | cut -c1-16)"
STAMP_FILE="$OUT_DIR/.build-stamp"

built() {
  [[ -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$STAMP_VALUE" ]] || return 1
  local pair
  for pair in "${ASSETS[@]}"; do
    [[ -s "$OUT_DIR/${pair#*:}" ]] || return 1
  done
}

if [[ "$FORCE" != 1 ]] && built; then
  log "up to date in $OUT_DIR"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  log "npm is not installed; install Node.js + npm and run this again" \
      "(until then / shows a 'dashboard assets are not built' page)"
  exit 1
fi

# npm ci wipes node_modules each time, so skip it when the installed tree already matches.
NM_STAMP="$PKG_DIR/node_modules/.cep-build-stamp"
if [[ "$FORCE" == 1 || ! -f "$NM_STAMP" || "$(cat "$NM_STAMP")" != "$STAMP_VALUE" ]]; then
  log "installing pinned packages (npm ci in ${PKG_DIR#"$ROOT"/})"
  (cd "$PKG_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  printf '%s\n' "$STAMP_VALUE" >"$NM_STAMP"
fi

copy() {  # copy SRC (inside node_modules) to DST atomically
  local src="$PKG_DIR/node_modules/$1"
  if [[ ! -s "$src" ]]; then
    log "missing $src after npm ci; has the pinned echarts moved its files?"
    exit 1
  fi
  cp "$src" "$2.tmp" && mv -f "$2.tmp" "$2"
}

mkdir -p "$OUT_DIR/licenses"
rm -f "$STAMP_FILE"
for pair in "${ASSETS[@]}"; do
  copy "${pair%%:*}" "$OUT_DIR/${pair#*:}"
done
for pair in "${LICENSES[@]}"; do
  copy "${pair%%:*}" "$OUT_DIR/licenses/${pair#*:}"
done

version="$(cd "$PKG_DIR/node_modules" \
  && node -p "'echarts@' + require('./echarts/package.json').version" 2>/dev/null \
  || echo "echarts@?")"
printf '%s\n' "$version" >"$OUT_DIR/VERSIONS"
printf '%s\n' "$STAMP_VALUE" >"$STAMP_FILE"
log "built $version into $OUT_DIR"
