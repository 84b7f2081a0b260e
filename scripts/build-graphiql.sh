#!/usr/bin/env bash
# Vendor GraphiQL's browser bundles so /graphql's IDE works without internet access.
#
#   scripts/build-graphiql.sh [OUT_DIR]      (default: gateway/static/graphiql/vendor)
#
# Installs the exact versions pinned in dashboard/graphiql/package-lock.json from the npm
# registry (`npm ci`), then copies the UMD bundles, the stylesheet and their licences into
# OUT_DIR, which is generated (keep it git-ignored). See scripts/lib/vendor-npm.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME=graphiql
PKG_DIR="$ROOT/dashboard/graphiql"
OUT_DIR="${1:-$ROOT/gateway/static/graphiql/vendor}"
MISSING="until then /graphql shows a 'GraphiQL assets are not built' page"
# source (inside node_modules) -> name served at /graphiql/vendor/<name>
ASSETS=(
  "react/umd/react.production.min.js:react.production.min.js"
  "react-dom/umd/react-dom.production.min.js:react-dom.production.min.js"
  "graphiql/graphiql.min.js:graphiql.min.js"
  "graphiql/graphiql.min.css:graphiql.min.css"
)
LICENSES=(
  "react/LICENSE:react.LICENSE"
  "react-dom/LICENSE:react-dom.LICENSE"
  "graphiql/LICENSE:graphiql.LICENSE"
)
VERSIONS=(graphiql react react-dom)

# shellcheck source=lib/vendor-npm.sh
source "$ROOT/scripts/lib/vendor-npm.sh"
vendor_npm
