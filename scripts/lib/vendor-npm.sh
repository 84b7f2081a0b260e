# Shared by scripts/build-graphiql.sh and scripts/build-dashboard.sh: install the npm
# packages pinned in a package-lock.json and copy chosen files out of node_modules into a
# generated (git-ignored) folder the gateway serves, so the browser needs no CDN.
#
# The caller sets, then calls `vendor_npm`:
#   NAME        log prefix ("graphiql")
#   PKG_DIR     folder holding package.json and package-lock.json
#   OUT_DIR     where the files go
#   ASSETS      "src-in-node_modules:name-in-OUT_DIR" pairs
#   LICENSES    the same, copied into OUT_DIR/licenses
#   VERSIONS    packages whose versions are written to OUT_DIR/VERSIONS
#   MISSING     what to tell the user when npm is absent
# A stamp made from the lockfile, the caller and this file makes a second run a no-op;
# delete OUT_DIR (or pass FORCE=1) to rebuild.

log() { printf '%s: %s\n' "$NAME" "$*" >&2; }

_vendor_copy() {  # copy SRC (inside node_modules) to DST atomically
  local src="$PKG_DIR/node_modules/$1"
  if [[ ! -s "$src" ]]; then
    log "missing $src after npm ci; has the pinned package moved its files?"
    return 1
  fi
  cp "$src" "$2.tmp" && mv -f "$2.tmp" "$2"
}

vendor_npm() {
  local force="${FORCE:-0}" stamp stamp_file nm_stamp pair versions
  # content only, so the stamp is the same in any checkout
  stamp="$(cat "$PKG_DIR/package.json" "$PKG_DIR/package-lock.json" "${BASH_SOURCE[1]}" \
    "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
  stamp_file="$OUT_DIR/.build-stamp"

  if [[ "$force" != 1 && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
    local complete=1
    for pair in "${ASSETS[@]}"; do
      [[ -s "$OUT_DIR/${pair#*:}" ]] || complete=0
    done
    if [[ "$complete" == 1 ]]; then
      log "up to date in $OUT_DIR"
      return 0
    fi
  fi

  if ! command -v npm >/dev/null 2>&1; then
    log "npm is not installed; install Node.js + npm and run this again ($MISSING)"
    return 1
  fi

  # npm ci wipes node_modules each time, so skip it when the installed tree already matches.
  nm_stamp="$PKG_DIR/node_modules/.cep-build-stamp"
  if [[ "$force" == 1 || ! -f "$nm_stamp" || "$(cat "$nm_stamp")" != "$stamp" ]]; then
    log "installing pinned packages (npm ci in ${PKG_DIR#"$ROOT"/})"
    (cd "$PKG_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
    printf '%s\n' "$stamp" >"$nm_stamp"
  fi

  mkdir -p "$OUT_DIR/licenses"
  rm -f "$stamp_file"
  for pair in "${ASSETS[@]}"; do
    _vendor_copy "${pair%%:*}" "$OUT_DIR/${pair#*:}" || return 1
  done
  for pair in "${LICENSES[@]}"; do
    _vendor_copy "${pair%%:*}" "$OUT_DIR/licenses/${pair#*:}" || return 1
  done
  versions="$(cd "$PKG_DIR/node_modules" && for pkg in "${VERSIONS[@]}"; do
    node -p "'$pkg@' + require('./$pkg/package.json').version" 2>/dev/null || echo "$pkg@?"
  done | paste -sd' ' -)"
  printf '%s\n' "$versions" >"$OUT_DIR/VERSIONS"
  printf '%s\n' "$stamp" >"$stamp_file"
  log "built $versions into $OUT_DIR"
}
