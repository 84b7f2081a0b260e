#!/usr/bin/env bash
# Vendor GraphiQL's browser bundles so /graphql's IDE works without internet access.
#
#   scripts/build-graphiql.sh [OUT_DIR]      (default: gateway/static/graphiql/vendor)
#
# Installs the exact versions pinned in dashboard/graphiql/package-lock.json from the npm
# registry (`npm ci`), then copies the UMD bundles, the stylesheet and their licences into
# OUT_DIR, which is generated (keep it git-ignored). A stamp made from the lockfile and this
# script makes a second run a no-op; delete OUT_DIR (or pass FORCE=1) to rebuild.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG_DIR="$ROOT/dashboard/graphiql"
OUT_DIR="${1:-$ROOT/gateway/static/graphiql/vendor}"
FORCE="${FORCE:-0}"

# source (inside node_modules) -> name served at /graphiql/vendor/<name>
ASSETS=(
  "react/umd/react.production.min.js:react.production.min.js"
  "react-dom/umd/react-dom.production.min.js:react-dom.production.min.js"
  "graphiql/graphiql.min.js:graphiql.min.js"
  "graphiql/graphiql.min.css:graphiql.min.css"
)
LICENSES=(react react-dom graphiql)

log() { printf 'graphiql: %s\n' "$*" >&2; }

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
      "(until then /graphql shows a 'GraphiQL assets are not built' page)"
  exit 1
fi

# npm ci wipes node_modules each time, so skip it when the installed tree already matches.
NM_STAMP="$PKG_DIR/node_modules/.cep-build-stamp"
if [[ "$FORCE" == 1 || ! -f "$NM_STAMP" || "$(cat "$NM_STAMP")" != "$STAMP_VALUE" ]]; then
  log "installing pinned packages (npm ci in ${PKG_DIR#"$ROOT"/})"
  (cd "$PKG_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  printf '%s\n' "$STAMP_VALUE" >"$NM_STAMP"
fi

mkdir -p "$OUT_DIR/licenses"
rm -f "$STAMP_FILE"
for pair in "${ASSETS[@]}"; do
  src="$PKG_DIR/node_modules/${pair%%:*}"
  dst="$OUT_DIR/${pair#*:}"
  if [[ ! -s "$src" ]]; then
    log "missing $src after npm ci; is the lockfile's graphiql still shipping a UMD build?"
    exit 1
  fi
  cp "$src" "$dst.tmp" && mv -f "$dst.tmp" "$dst"
done
for pkg in "${LICENSES[@]}"; do
  cp "$PKG_DIR/node_modules/$pkg/LICENSE" "$OUT_DIR/licenses/$pkg.LICENSE"
done

versions="$(cd "$PKG_DIR/node_modules" && for pkg in graphiql react react-dom; do
  node -p "'$pkg@' + require('./$pkg/package.json').version" 2>/dev/null || echo "$pkg@?"
done | paste -sd' ' -)"
printf '%s\n' "$versions" >"$OUT_DIR/VERSIONS"
printf '%s\n' "$STAMP_VALUE" >"$STAMP_FILE"
log "built $versions into $OUT_DIR"
