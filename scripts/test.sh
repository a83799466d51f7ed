#!/usr/bin/env bash
# The whole test suite, in order. Installs what is missing first; stops at the first failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

scripts/bootstrap.sh

step "test: cargo fmt --check"
cargo fmt --all --check

step "test: clippy (native, all targets)"
cargo clippy --workspace --all-targets -- -D warnings

step "test: clippy (wasm32)"
cargo clippy --target wasm32-unknown-unknown -p outbox-sync --lib --tests -- -D warnings
cargo clippy --target wasm32-unknown-unknown -p outbox-core --lib -- -D warnings

step "test: native tests (the server suite runs against SQLite and a throw-away PostgreSQL)"
cargo test --workspace

step "test: simulation (outbox-sim, release): 1,000 seeds x 200 ops, crashes at every effect boundary"
SIM_SEEDS="${SIM_SEEDS:-1000}" SIM_OPS="${SIM_OPS:-200}" cargo run --quiet --release -p outbox-sim

step "test: simulation, 3 tabs under the leader lock: 300 seeds x 200 ops (from seed 458: sim/README.md says why)"
SIM_TABS=3 SIM_FIRST_SEED=504 SIM_SEEDS=300 SIM_OPS=200 cargo run --quiet --release -p outbox-sim

step "test: browser tests (wasm-bindgen-test in headless Chromium)"
CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}" \
  cargo test --target wasm32-unknown-unknown -p outbox-sync --lib --tests --features debug-panic-hook

step "test: release build of the package"
scripts/build.sh
scripts/stage-demo.sh

step "test: size guard (shipped brotli within pkg/size-budget.json)"
# The guard's own unit tests first (the module-graph walk and the budget check), then the guard itself.
node --test tests/scripts/
node scripts/size.mjs --check

step "test: TypeScript (tsc --strict against the built package's types, and the READMEs' code blocks)"
node tests/types/extract-snippets.mjs
node_modules/.bin/tsc -p tests/types

step "test: end-to-end (playwright-core, headless Chromium)"
node --test tests/e2e/

step "test: end-to-end against the PostgreSQL store (package API, exactly-once; OUTBOX_E2E_DB=postgres, a throw-away cluster)"
OUTBOX_E2E_DB=postgres node --test tests/e2e/package_api.test.mjs tests/e2e/exactly_once.test.mjs

step "test: benchmark runner, smoke mode (tiny N: checks that every metric is produced, not the timings)"
node bench/run.mjs --smoke
