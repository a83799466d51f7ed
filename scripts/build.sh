#!/usr/bin/env bash
# Builds the wasm module into pkg/ (the npm package root) and prints its size.
#
# Output: pkg/wasm/ holds wasm-bindgen's `--target web` output. Only that one flavour is shipped: its loader
# finds the .wasm with `new URL('outbox_sync_bg.wasm', import.meta.url)`, which Vite, webpack 5 and a plain
# <script type="module"> all understand, so a second bundler-specific copy would only double the package.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

out="pkg/wasm"
# A panic's message names its source file, so the module carries the path of every file that can panic.
# Without remapping, a dependency's path starts with the builder's cargo home
# (`<cargo home>/registry/src/index.crates.io-<hash>/serde_json-1.0.154/src/raw.rs`): shipped to every user,
# and different on every machine. Remapped, it is `serde_json-1.0.154/src/raw.rs`. The sources are fetched
# first, so that on a fresh machine the folders to remap exist before the flags are made.
cargo fetch --quiet
remap=""
for registry in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/ "${CARGO_HOME:-$HOME/.cargo}"/git/checkouts/*/; do
  [ -d "$registry" ] && remap+=" --remap-path-prefix=$registry="
done
step "build: cargo build --profile wasm-release --target wasm32-unknown-unknown"
RUSTFLAGS="${RUSTFLAGS:-}$remap" cargo build --profile wasm-release --target wasm32-unknown-unknown -p outbox-sync

step "build: wasm-bindgen --target web -> $out"
rm -rf "$out"
wasm-bindgen --target web --out-dir "$out" --out-name outbox_sync \
  target/wasm32-unknown-unknown/wasm-release/outbox_sync.wasm

# src/js/sync-error.js reaches the package as a wasm-bindgen snippet under a hashed folder; a fixed-name
# re-export lets the entry point hand users the very class Rust constructs.
snippet=$(cd "$out" && ls snippets/*/src/js/sync-error.js)
echo "export { SyncError } from './$snippet';" > "$out/sync-error.js"

step "build: wasm-opt -Oz --converge"
# wasm-opt comes from the `binaryen` npm package, pinned in package-lock.json. Debian bookworm's binaryen (108)
# corrupts the externref table that wasm-bindgen sets up ("WebAssembly.Table.set(): Argument 1 is invalid"),
# which the end-to-end test caught. wasm-opt reads the enabled wasm features from the module's
# target_features section, which is why the wasm-release profile does not strip.
# --converge repeats -Oz until it stops shrinking the module: about 1 KB brotli for ~15 s of build.
node_modules/.bin/wasm-opt -Oz --converge --strip-debug --strip-producers "$out/outbox_sync_bg.wasm" -o "$out/outbox_sync_bg.wasm"

step "build: dist/ (the package as published: pkg/'s files, each script minified, with source maps)"
node scripts/dist.mjs

step "size"
node scripts/size.mjs
