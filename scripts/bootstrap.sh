#!/usr/bin/env bash
# Installs what the build and the tests need and is missing, and nothing else. Safe to run again: each step
# checks first. Everything comes from the package registries (rustup, crates.io, Debian, npm). wasm-opt is
# the `binaryen` npm package (see scripts/build.sh for why not Debian's).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "'$*' needs root, and sudo is not available. Run it as root, then run this command again."
  fi
}

step "bootstrap: checking the toolchain"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  info "installing the Rust target wasm32-unknown-unknown (rustup target add)"
  rustup target add wasm32-unknown-unknown || die "rustup could not add the wasm32-unknown-unknown target"
else
  info "rust target wasm32-unknown-unknown: present"
fi

wb_version="$(pinned_wasm_bindgen_version)"
[ -n "$wb_version" ] || die "could not read the pinned wasm-bindgen version (=0.2.N) from Cargo.toml"
have_wb=""
if command -v wasm-bindgen >/dev/null && command -v wasm-bindgen-test-runner >/dev/null; then
  have_wb="$(wasm-bindgen --version | awk '{print $2}')"
fi
if [ "$have_wb" != "$wb_version" ]; then
  info "installing wasm-bindgen-cli $wb_version (found: ${have_wb:-none}); this compiles for a few minutes"
  # No --locked: the crates index can lag behind the CLI's own lock file.
  cargo install wasm-bindgen-cli --version "$wb_version" ||
    die "cargo install wasm-bindgen-cli --version $wb_version failed"
else
  info "wasm-bindgen-cli $wb_version: present"
fi

missing_pkgs=()
command -v chromium >/dev/null || missing_pkgs+=(chromium)
command -v chromedriver >/dev/null || missing_pkgs+=(chromium-driver)
# The server tests run against a throw-away PostgreSQL cluster too (scripts/pg-scratch.sh). The driver is
# pure Rust (tokio-postgres), so the server binaries are all it needs: no libpq.
if ! command -v initdb >/dev/null && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  missing_pkgs+=(postgresql)
fi
if [ ${#missing_pkgs[@]} -gt 0 ]; then
  info "installing Debian packages: ${missing_pkgs[*]} (apt-get)"
  as_root apt-get update -qq || die "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_pkgs[@]}" >/dev/null ||
    die "apt-get install ${missing_pkgs[*]} failed"
else
  info "chromium, chromedriver, postgresql: present"
fi

command -v node >/dev/null || die "node is not installed; the JS tooling needs Node.js 20 or newer"
if [ ! -d "$REPO_ROOT/node_modules" ] || [ "$REPO_ROOT/package-lock.json" -nt "$REPO_ROOT/node_modules/.package-lock.json" ]; then
  info "installing the JS dev dependencies (npm ci)"
  (cd "$REPO_ROOT" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
else
  info "node_modules: up to date"
fi
